//! The NMOS side of the gateway: IS-04 discovery, IS-05 connections, IS-08 channel maps,
//! running-order items resolved into routes, takes, and the pieces they share.
//!
//! - [`tai`]: TAI timestamps (`<seconds>:<nanoseconds>`) and the leap-second table.
//! - [`is08_check`]: checking an IS-08 map against a device's constraints before sending.
//! - [`schemas`]: validating request bodies against the official AMWA JSON schemas.
//! - [`is04`]: the IS-04 Query API client.
//! - [`http`]: the one pooled HTTP client for NMOS APIs (TLS, bearer tokens, retries).
//! - [`auth`]: IS-10 bearer tokens (OAuth2 client credentials, refreshed before expiry).
//! - [`is05`]: the IS-05 Connection API client (stage, activate, bulk, roll back, re-read).
//! - [`is08`]: the IS-08 Channel Mapping API client (io, activations).
//! - [`subscribe`]: IS-04 Query API WebSocket subscriptions (live catalogue).
//! - [`dnssd`]: finding the registry by DNS-SD and ranking the candidates.
//! - [`dnssd_unicast`]: browsing DNS-SD over unicast DNS (search domains).
//! - [`node_poll`]: polling Node APIs on sites without a registry.
//! - [`discovery`]: the running task that keeps the catalogue and publishes snapshots.
//! - [`sender_objects`]: NMOS senders as MOS objects (NEW / UPDATED / debounced DELETED).
//! - [`mapping`]: the configured destinations, presets and bindings, ready for lookups.
//! - [`overrides`]: destination / audio map / time overrides in mosExternalMetadata.
//! - [`resolve`]: running-order items + catalogue + mapping → planned routes.
//! - [`plan`]: planned routes per item (resolution's output, the take engine's input).
//! - [`takes`]: the take engine (READY stages, EXECUTE activates and confirms, STOP).
//! - [`devices`]: the take engine's devices over the IS-05 / IS-08 clients.
//! - [`service`]: starting all of it from the configuration (`run` and the tests).
//! - [`studio`]: the virtual NMOS studio (tests and `run --virtual-studio`).
//! - [`bridge`]: the task that ties running orders, the catalogue and takes together.

pub mod auth;
pub mod bridge;
pub mod devices;
pub mod discovery;
pub mod dnssd;
pub mod dnssd_unicast;
pub mod http;
pub mod is04;
pub mod is05;
pub mod is08;
pub mod is08_check;
pub mod mapping;
pub mod node_poll;
pub mod overrides;
pub mod plan;
pub mod resolve;
pub mod schemas;
pub mod sender_objects;
pub mod service;
pub mod studio;
pub mod subscribe;
pub mod tai;
pub mod takes;
