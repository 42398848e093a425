//! MOS time and duration values. (Being written.)
