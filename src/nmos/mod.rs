//! The NMOS side of the gateway (being built): IS-04 discovery, IS-05 connections, IS-08
//! channel maps, and the pieces they share.
//!
//! - [`tai`]: TAI timestamps (`<seconds>:<nanoseconds>`) and the leap-second table.
//! - [`is08_check`]: checking an IS-08 map against a device's constraints before sending.
//! - [`schemas`]: validating request bodies against the official AMWA JSON schemas.
//! - [`is04`]: the IS-04 Query API client.
//! - [`plan`]: planned routes per item (resolution's output, the take engine's input).
//! - [`subscribe`]: IS-04 Query API WebSocket subscriptions (live catalogue).
//! - [`dnssd`]: finding the registry by DNS-SD and ranking the candidates.
//! - [`node_poll`]: polling Node APIs on sites without a registry.
//! - [`discovery`]: the running task that keeps the catalogue and publishes snapshots.
//! - [`sender_objects`]: NMOS senders as MOS objects (NEW / UPDATED / debounced DELETED).
//! - [`studio`]: a virtual NMOS studio (registry + devices) for tests and dry runs.

pub mod discovery;
pub mod dnssd;
pub mod is04;
pub mod is08_check;
pub mod node_poll;
pub mod plan;
pub mod schemas;
pub mod sender_objects;
pub mod studio;
pub mod subscribe;
pub mod tai;
