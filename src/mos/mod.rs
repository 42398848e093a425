//! The MOS wire layer: bytes ⇄ documents ⇄ typed messages. Pure: no sockets, no I/O.
//!
//! - [`codec`]: framing of a TCP byte stream into complete `<mos>` documents and back.
//! - [`xml`]: a small element tree with source spans, and an escaping writer.
//! - [`time`], [`number`]: MOS time, duration and number formats.
//! - [`message`]: the typed messages, parsing (strict or lenient) and writing.

pub mod codec;
pub mod number;
pub mod time;
