//! MOS numbers: decimal or hexadecimal. (Being written.)
