//! The first stage: the TOML file exactly as written, every key optional.
//!
//! The defaults here are the values documented in `config/gateway.toml`; a test keeps the two
//! in step.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::nmos::{RawBinding, RawDestination, RawNmos, RawPreset};
use super::{Encoding, Failover, ListMachInfoStyle, ObjectType, StatusMessages};

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// `[mos]`: this gateway as a MOS device.
    pub mos: RawMos,
    /// `[log]`: logging.
    pub log: RawLog,
    /// `[[ncs]]`: the newsroom systems allowed to connect.
    pub ncs: Vec<RawNcs>,
    /// `[[object]]`: objects declared in the file (objects of the catalogue).
    pub object: Vec<RawObject>,
    /// `[nmos]`: discovery, HTTP, takes, IS-10.
    pub nmos: RawNmos,
    /// `[[destination]]`: where items go.
    pub destination: Vec<RawDestination>,
    /// `[[preset]]`: salvos offered as objects.
    pub preset: Vec<RawPreset>,
    /// `[[binding]]`: placeholders bound to senders or presets.
    pub binding: Vec<RawBinding>,
}

/// `[mos]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMos {
    /// Our mosID.
    pub id: String,
    /// Listening address.
    pub listen: String,
    /// Our lower port.
    pub lower_port: u16,
    /// Our upper port.
    pub upper_port: u16,
    /// Our query port; 0 = none.
    pub query_port: u16,
    /// Directory for durable state.
    pub data_dir: PathBuf,
    /// Labs: accept any ncsID from any address.
    pub accept_any_ncs: bool,
    /// Largest accepted message, in bytes.
    pub max_message_bytes: u64,
    /// Silence after which an incomplete message is taken as cut off.
    pub message_stall_s: Seconds,
    /// Most simultaneous connections per port.
    pub max_connections: u32,
    /// Record every NCS's traffic (in addition to per-NCS `capture`).
    pub capture: bool,
    /// Include heartbeats in captures.
    pub capture_heartbeats: bool,
    /// Size at which a capture file is closed and the next one started.
    pub capture_max_bytes: u64,
    /// Capture files kept (the oldest are removed).
    pub capture_files: u32,
    /// Capture lines waiting for the writer before new ones are dropped.
    pub capture_queue: u32,
    /// URL of the searchable-fields schema announced in mosListSearchableSchema; empty = none.
    pub searchable_schema_url: String,
}

impl Default for RawMos {
    fn default() -> Self {
        RawMos {
            id: "nmos.gateway.mos".to_owned(),
            listen: "127.0.0.1".to_owned(),
            lower_port: 10540,
            upper_port: 10541,
            query_port: 10542,
            data_dir: PathBuf::from("data"),
            accept_any_ncs: false,
            max_message_bytes: 16 * 1024 * 1024,
            message_stall_s: Seconds(5.0),
            max_connections: 64,
            capture: false,
            capture_heartbeats: false,
            capture_max_bytes: 64 * 1024 * 1024,
            capture_files: 10,
            capture_queue: 10_000,
            searchable_schema_url: DEFAULT_SEARCHABLE_SCHEMA_URL.to_owned(),
        }
    }
}

/// The documented default of `mos.searchable_schema_url`.
pub const DEFAULT_SEARCHABLE_SCHEMA_URL: &str = "http://nmos-gateway.local/mos/search.xsd";

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// A tracing filter directive.
    pub level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".to_owned(),
        }
    }
}

/// One `[[ncs]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNcs {
    /// Its ncsID (no default: empty is refused).
    pub id: String,
    /// Host name or IP address (no default: empty is refused).
    pub host: String,
    /// Extra source addresses allowed to connect as this NCS.
    pub allowed_addresses: Vec<String>,
    /// The NCS's lower port.
    pub lower_port: u16,
    /// The NCS's upper port.
    pub upper_port: u16,
    /// The NCS's query port; 0 = none.
    pub query_port: u16,
    /// Wire encoding.
    pub encoding: Encoding,
    /// Seconds between our heartbeats; 0 = none.
    pub heartbeat_interval_s: Seconds,
    /// Seconds to wait for a reply before resending.
    pub ack_timeout_s: Seconds,
    /// Longest pause between reconnection attempts.
    pub reconnect_max_s: Seconds,
    /// Most queued messages per port.
    pub queue_limit: u32,
    /// NACK off-spec messages.
    pub strict: bool,
    /// roReqAll + roReq when our upper link comes up.
    pub resync_on_connect: bool,
    /// listMachInfo layout.
    pub listmachinfo_style: ListMachInfoStyle,
    /// Status message flavour.
    pub status_messages: StatusMessages,
    /// Send only PLAY statuses.
    pub status_play_only: bool,
    /// Never send STOP statuses.
    pub status_never_stop: bool,
    /// Send no statuses while the running order is not ready to air.
    pub status_require_ready_to_air: bool,
    /// Add the reason to NOT READY and ERROR statuses ("NOT READY: sender gone").
    pub status_reasons: bool,
    /// Record the traffic.
    pub capture: bool,
    /// Failover style.
    pub failover: Failover,
    /// Optional buddy server (last: a sub-table is written after the plain keys).
    pub buddy: Option<RawBuddy>,
}

impl Default for RawNcs {
    fn default() -> Self {
        RawNcs {
            id: String::new(),
            host: String::new(),
            allowed_addresses: Vec::new(),
            lower_port: 10540,
            upper_port: 10541,
            query_port: 0,
            encoding: Encoding::Auto,
            heartbeat_interval_s: Seconds(30.0),
            ack_timeout_s: Seconds(10.0),
            reconnect_max_s: Seconds(30.0),
            queue_limit: 10_000,
            strict: false,
            resync_on_connect: false,
            listmachinfo_style: ListMachInfoStyle::Flat,
            status_messages: StatusMessages::RoItemStat,
            status_play_only: false,
            status_never_stop: false,
            status_require_ready_to_air: false,
            status_reasons: true,
            capture: false,
            failover: Failover::Buddy,
            buddy: None,
        }
    }
}

/// `buddy = { ... }` inside an `[[ncs]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBuddy {
    /// Host name or IP address (no default: empty is refused).
    pub host: String,
    /// The buddy's lower port.
    pub lower_port: u16,
    /// The buddy's upper port.
    pub upper_port: u16,
    /// The buddy's query port; 0 = none.
    pub query_port: u16,
}

impl Default for RawBuddy {
    fn default() -> Self {
        RawBuddy {
            host: String::new(),
            lower_port: 10540,
            upper_port: 10541,
            query_port: 0,
        }
    }
}

/// One `[[object]]` entry: an object of the catalogue declared in the file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawObject {
    /// objID (no default: empty is refused).
    pub id: String,
    /// objSlug (no default: empty is refused).
    pub slug: String,
    /// objType (no default: required).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub obj_type: Option<ObjectType>,
    /// objGroup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Plain-text description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Duration in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<Seconds>,
}

/// A number of seconds written as an integer or a decimal; checked in the second stage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(pub f64);

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            // Whole seconds are written without a decimal point, as in the example file.
            serializer.serialize_i64(v as i64)
        } else {
            serializer.serialize_f64(v)
        }
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecondsVisitor;

        impl Visitor<'_> for SecondsVisitor {
            type Value = Seconds;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds (e.g. 10 or 0.5)")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                Ok(Seconds(v as f64))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(v as f64))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
                Ok(Seconds(v))
            }
        }

        deserializer.deserialize_any(SecondsVisitor)
    }
}
