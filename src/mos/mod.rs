//! The MOS wire layer: bytes ⇄ documents ⇄ typed messages. Pure: no sockets, no I/O.
//!
//! - [`codec`]: framing of a TCP byte stream into complete `<mos>` documents and back.
//! - [`xml`]: a small element tree with source spans, and an escaping writer.
//! - [`time`], [`number`]: MOS time, duration and number formats.
//! - [`structures`]: items, stories, running-order headers, mosObj, story bodies.
//! - [`messages`]: one type per message and the [`Message`] enum.
//! - [`message`]: the `<mos>` envelope, strict and lenient parsing, writing.
//! - [`error`]: parse errors (what a NACK carries) and tolerated deviations.

pub mod codec;
pub mod error;
pub mod message;
pub mod messages;
pub mod number;
pub mod read;
pub mod sample;
pub mod structures;
pub mod time;
pub mod xml;

pub use error::{Deviation, DeviationKind, ParseError};
pub use message::{
    Envelope, Mos, ParseOptions, Parsed, Rejected, peek_message_id, peek_message_name,
};
pub use messages::Message;
