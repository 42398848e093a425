//! Framing: bytes ⇄ complete `<mos>` documents. (Being written.)
