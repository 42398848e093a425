//! The NMOS side of the gateway (being built): IS-04 discovery, IS-05 connections, IS-08
//! channel maps, and the pieces they share.
//!
//! - [`tai`]: TAI timestamps (`<seconds>:<nanoseconds>`) and the leap-second table.
//! - [`is08_check`]: checking an IS-08 map against a device's constraints before sending.
//! - [`schemas`]: validating request bodies against the official AMWA JSON schemas.
//! - [`is04`]: the IS-04 Query API client.
//! - [`plan`]: planned routes per item (resolution's output, the take engine's input).
//! - [`studio`]: a virtual NMOS studio (registry + devices) for tests and dry runs.

pub mod is04;
pub mod is08_check;
pub mod plan;
pub mod schemas;
pub mod studio;
pub mod tai;
