//! The MOS 2.8.1 ⇄ NMOS gateway.
//!
//! Data flows one way through the modules, each with one job:
//!
//! ```text
//! bytes (TCP 10540 lower / 10541 upper / 10542 query)
//!   → mos::codec     UTF-16/UTF-8 bytes ⇄ complete <mos> documents (text)
//!   → mos::message   document text ⇄ typed messages (every MOS 2.8.1 message)
//!   → session        ack discipline, messageID, heartbeats, queues   (later issues)
//!   → rundown        pure running-order state transitions            (later issues)
//!   → mapping / nmos running-order items → IS-05 / IS-08 routes      (later issues)
//! ```
//!
//! Layout:
//! - [`mos`]: the MOS wire layer (framing, XML, typed messages, times and numbers).
//! - [`dtd`]: a small DTD reader and validator used by `mos-gateway validate`.
//! - [`objects`]: the object catalogue (Profiles 1 and 3) and mosReqObjList search.
//! - [`rundown`]: the pure running-order model and its edits (no I/O).
//! - [`session`]: inbound message decisions: envelope checks, heartbeats, NACKs.
//! - [`store`]: the durable SQLite store of running orders and processed messages.
//! - [`validate`]: `mos-gateway validate`, message files checked against the DTD.
//! - [`capture`]: recording every MOS message in and out to JSON Lines files.
//! - [`replay`]: `mos-gateway replay`, captured conversations sent again and compared.
//! - [`cli`]: the command-line interface of the `mos-gateway` binary.

pub mod capture;
pub mod cli;
pub mod config;
pub mod dtd;
pub mod mos;
pub mod nmos;
pub mod objects;
pub mod outbound;
pub mod recent;
pub mod replay;
pub mod rundown;
pub mod server;
pub mod session;
pub mod state;
pub mod status;
pub mod store;
pub mod validate;
