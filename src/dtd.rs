//! A DTD reader and validator for MOS messages. (Being written.)
