//! Gateway configuration: TOML → [`RawConfig`] (exactly the file) → validated [`Config`].
//!
//! `config/gateway.toml` documents every key and is compiled in as the default
//! ([`DEFAULT_TOML`]), so the gateway runs with no file. Command-line [`Overrides`] apply
//! between the two stages. Every problem is a [`ConfigError`] naming the file, the key path and
//! what was expected; nothing after startup sees [`RawConfig`].

mod error;
pub mod nmos;
pub mod raw;
mod validate;

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::mos::structures::ObjType;

pub use error::ConfigError;
pub use nmos::{
    AudioMapConfig, AuthConfig, BindingConfig, BindingTarget, ConnectionRef, DestinationConfig,
    NmosConfig, On423, OnStop, PresetConfig, Registry, ResourceRef, SecretSource,
};
pub use raw::RawConfig;

/// The documented example configuration, used when no file is given.
pub const DEFAULT_TOML: &str = include_str!("../../config/gateway.toml");

/// What [`Config::origin`] says for the embedded default.
pub const EMBEDDED_ORIGIN: &str = "embedded default (config/gateway.toml)";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// This gateway as a MOS device.
    pub mos: MosConfig,
    /// Logging.
    pub log: LogConfig,
    /// The newsroom systems allowed to connect, in file order.
    pub ncs: Vec<NcsConfig>,
    /// Objects declared with `[[object]]`, in file order.
    pub objects: Vec<ObjectConfig>,
    /// `[nmos]`: discovery, HTTP, takes, IS-10.
    pub nmos: NmosConfig,
    /// `[[destination]]`s, in file order.
    pub destinations: Vec<DestinationConfig>,
    /// `[[preset]]`s, in file order.
    pub presets: Vec<PresetConfig>,
    /// `[[binding]]`s, in file order.
    pub bindings: Vec<BindingConfig>,
    origin: String,
    warnings: Vec<String>,
    effective_toml: String,
}

/// Compares the settings only, not where they came from.
impl PartialEq for Config {
    fn eq(&self, other: &Self) -> bool {
        self.mos == other.mos
            && self.log == other.log
            && self.ncs == other.ncs
            && self.objects == other.objects
            && self.nmos == other.nmos
            && self.destinations == other.destinations
            && self.presets == other.presets
            && self.bindings == other.bindings
    }
}

/// `[mos]`: this gateway as a MOS device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosConfig {
    /// Our mosID (1–128 characters).
    pub id: String,
    /// Address the listeners bind to.
    pub listen: IpAddr,
    /// Our lower port (mos* family).
    pub lower_port: u16,
    /// Our upper port (ro* family).
    pub upper_port: u16,
    /// Our query port (mosReqObjList family), if any.
    pub query_port: Option<u16>,
    /// Directory for durable state (relative paths are taken from the working directory).
    pub data_dir: PathBuf,
    /// Labs: accept any ncsID from any address.
    pub accept_any_ncs: bool,
    /// Largest accepted message, in bytes as received.
    pub max_message_bytes: usize,
    /// How long a connection may fall silent in the middle of a message before the message
    /// is taken as cut off (NACKed and dropped with what followed it).
    pub message_stall: Duration,
    /// Most simultaneous connections on each of our ports.
    pub max_connections: usize,
    /// URL of the schema of searchable fields, announced in mosListSearchableSchema and
    /// expected as mosSchema of mosReqObjList; empty = field search not offered.
    pub searchable_schema_url: String,
    /// Capture settings (`capture*` keys of `[mos]`).
    pub capture: CaptureConfig,
}

/// The `capture*` keys of `[mos]`: recording MOS traffic under `data_dir/capture/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// Record every NCS's traffic (per-NCS `capture = true` records one NCS).
    pub all: bool,
    /// Include heartbeats.
    pub heartbeats: bool,
    /// A capture file is rotated when the next line would make it larger than this.
    pub max_bytes: u64,
    /// How many capture files are kept, the current one included.
    pub files: usize,
    /// Lines queued for the writer; when full, new lines are dropped and counted.
    pub queue: usize,
}

impl MosConfig {
    /// Where the lower-port listener binds.
    pub fn lower_addr(&self) -> SocketAddr {
        SocketAddr::new(self.listen, self.lower_port)
    }

    /// Where the upper-port listener binds.
    pub fn upper_addr(&self) -> SocketAddr {
        SocketAddr::new(self.listen, self.upper_port)
    }

    /// Where the query-port listener binds, if there is one.
    pub fn query_addr(&self) -> Option<SocketAddr> {
        self.query_port.map(|p| SocketAddr::new(self.listen, p))
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A `tracing_subscriber::EnvFilter` directive, checked at load (e.g. `info`).
    pub level: String,
}

/// One `[[ncs]]` entry: a newsroom system allowed to connect.
#[derive(Debug, Clone, PartialEq)]
pub struct NcsConfig {
    /// Its ncsID (1–128 characters, unique).
    pub id: String,
    /// Host name or IP address, as written.
    pub host: String,
    /// `host`'s addresses, resolved at load (empty when a name could not be resolved).
    pub addresses: Vec<IpAddr>,
    /// Extra source addresses allowed to connect as this NCS.
    pub allowed_addresses: Vec<IpAddr>,
    /// The NCS's lower port, where we send mos* messages.
    pub lower_port: u16,
    /// The NCS's upper port, where we send ro* messages.
    pub upper_port: u16,
    /// The NCS's query port, if it has one.
    pub query_port: Option<u16>,
    /// Wire encoding.
    pub encoding: Encoding,
    /// Interval of our heartbeats; `None` = we send none.
    pub heartbeat_interval: Option<Duration>,
    /// How long we wait for a reply before resending.
    pub ack_timeout: Duration,
    /// Longest pause between reconnection attempts.
    pub reconnect_max: Duration,
    /// Most messages queued per port behind the one in flight.
    pub queue_limit: usize,
    /// NACK off-spec messages instead of tolerating them.
    pub strict: bool,
    /// roReqAll, then roReq for each running order, when our upper link comes up.
    pub resync_on_connect: bool,
    /// Layout of our listMachInfo.
    pub listmachinfo_style: ListMachInfoStyle,
    /// Which messages carry statuses.
    pub status_messages: StatusMessages,
    /// Which statuses are sent, and how.
    pub status_options: StatusOptions,
    /// Record this NCS's traffic under `data_dir`.
    pub capture: bool,
    /// The NCS's standby server, if any.
    pub buddy: Option<BuddyConfig>,
    /// How the buddy is used (meaningful only with a buddy).
    pub failover: Failover,
}

impl NcsConfig {
    /// The settings used for an NCS that is not configured but accepted because
    /// `accept_any_ncs = true`: the documented per-NCS defaults, with `address` as host.
    pub fn for_unlisted(id: &str, address: IpAddr) -> NcsConfig {
        let raw = raw::RawNcs::default();
        NcsConfig {
            id: id.to_owned(),
            host: address.to_string(),
            addresses: vec![address],
            allowed_addresses: Vec::new(),
            lower_port: raw.lower_port,
            upper_port: raw.upper_port,
            query_port: None,
            encoding: raw.encoding,
            heartbeat_interval: secs(raw.heartbeat_interval_s).filter(|d| !d.is_zero()),
            ack_timeout: secs(raw.ack_timeout_s).unwrap_or(Duration::from_secs(10)),
            reconnect_max: secs(raw.reconnect_max_s).unwrap_or(Duration::from_secs(30)),
            queue_limit: raw.queue_limit as usize,
            strict: raw.strict,
            resync_on_connect: raw.resync_on_connect,
            listmachinfo_style: raw.listmachinfo_style,
            status_messages: raw.status_messages,
            status_options: StatusOptions::from_raw(&raw),
            capture: raw.capture,
            buddy: None,
            failover: raw.failover,
        }
    }

    /// Whether a connection from `ip` may be this NCS (its host, its buddy's host, or an
    /// allowed address).
    pub fn accepts_address(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let same = |a: &IpAddr| a.to_canonical() == ip;
        self.addresses.iter().any(same)
            || self.allowed_addresses.iter().any(same)
            || self
                .buddy
                .as_ref()
                .is_some_and(|b| b.addresses.iter().any(same))
    }

    /// The NCS's lower-port addresses to connect to (one per resolved address).
    pub fn lower_targets(&self) -> Vec<SocketAddr> {
        targets(&self.addresses, self.lower_port)
    }

    /// The NCS's upper-port addresses to connect to.
    pub fn upper_targets(&self) -> Vec<SocketAddr> {
        targets(&self.addresses, self.upper_port)
    }
}

fn secs(s: raw::Seconds) -> Option<Duration> {
    Duration::try_from_secs_f64(s.0).ok()
}

fn targets(addresses: &[IpAddr], port: u16) -> Vec<SocketAddr> {
    addresses
        .iter()
        .map(|a| SocketAddr::new(*a, port))
        .collect()
}

/// The operator's choices about statuses sent to one NCS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusOptions {
    /// Send only PLAY.
    pub play_only: bool,
    /// Never send STOP.
    pub never_stop: bool,
    /// No statuses while the running order is not ready to air (roReadyToAir).
    pub require_ready_to_air: bool,
    /// Append the reason to NOT READY and ERROR ("NOT READY: sender gone").
    pub reasons: bool,
}

impl StatusOptions {
    fn from_raw(raw: &raw::RawNcs) -> Self {
        Self {
            play_only: raw.status_play_only,
            never_stop: raw.status_never_stop,
            require_ready_to_air: raw.status_require_ready_to_air,
            reasons: raw.status_reasons,
        }
    }
}

/// `buddy = { ... }`: an NCS's standby server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuddyConfig {
    /// Host name or IP address, as written.
    pub host: String,
    /// `host`'s addresses, resolved at load.
    pub addresses: Vec<IpAddr>,
    /// The buddy's lower port.
    pub lower_port: u16,
    /// The buddy's upper port.
    pub upper_port: u16,
    /// The buddy's query port, if any.
    pub query_port: Option<u16>,
}

/// One `[[object]]` entry: an object of the catalogue declared in the configuration.
///
/// Such objects are announced READY; a duration is written as objDur in milliseconds with
/// objTB 1000 (see [`ObjectConfig::TIME_BASE`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectConfig {
    /// objID (1–128 characters, unique among the objects).
    pub id: String,
    /// objSlug (1–128 characters).
    pub slug: String,
    /// objType.
    pub obj_type: ObjType,
    /// objGroup (1–128 characters when given).
    pub group: Option<String>,
    /// Plain-text description.
    pub description: Option<String>,
    /// Duration in seconds (finite, ≥ 0), if given.
    pub duration_s: Option<f64>,
}

impl ObjectConfig {
    /// objTB of objects declared in the configuration: 1000 samples per second, so objDur
    /// is the duration in milliseconds whatever the frame rate of the material.
    pub const TIME_BASE: f64 = 1000.0;

    /// objDur: the duration in milliseconds, rounded; 0 when no duration is given.
    pub fn duration_samples(&self) -> u32 {
        match self.duration_s {
            Some(s) if s.is_finite() && s > 0.0 => {
                (s * Self::TIME_BASE).round().min(f64::from(u32::MAX)) as u32
            }
            _ => 0,
        }
    }
}

/// objType as written in `[[object]]` tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ObjectType {
    /// A still image.
    Still,
    /// Audio.
    Audio,
    /// Video.
    Video,
    /// Anything else.
    Other,
}

impl From<ObjectType> for ObjType {
    fn from(t: ObjectType) -> ObjType {
        match t {
            ObjectType::Still => ObjType::Still,
            ObjectType::Audio => ObjType::Audio,
            ObjectType::Video => ObjType::Video,
            ObjectType::Other => ObjType::Other,
        }
    }
}

/// Character encoding on an NCS's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Detect each incoming connection's encoding from its first bytes; send UTF-16BE.
    #[default]
    Auto,
    /// UTF-16 big-endian, the MOS standard.
    Utf16Be,
    /// UTF-16 little-endian.
    Utf16Le,
    /// UTF-8.
    Utf8,
}

impl Encoding {
    /// The configuration name (`auto`, `utf16be`, `utf16le`, `utf8`).
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Auto => "auto",
            Encoding::Utf16Be => "utf16be",
            Encoding::Utf16Le => "utf16le",
            Encoding::Utf8 => "utf8",
        }
    }
}

/// Layout of our listMachInfo reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ListMachInfoStyle {
    /// MOS 2.8.1: profile flags directly inside listMachInfo.
    #[default]
    Flat,
    /// MOS 2.8.4: profile flags inside a `supportedProfiles` container.
    Container,
}

/// Which messages carry our statuses to an NCS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StatusMessages {
    /// roItemStat and roStat (MOS 2.8.1 peers, iNEWS).
    #[default]
    RoItemStat,
    /// roElementStat (ENPS, Octopus, MOS 2.8.3 and later).
    RoElementStat,
}

/// How an NCS's buddy server is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failover {
    /// ENPS style: switch on timeout or close, resend the queue, return to the main server.
    #[default]
    Buddy,
    /// OpenMedia style: the standby stays disconnected until needed.
    HotStandby,
}

/// Command-line flags that override the most used keys; applied before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct Overrides {
    /// Our mosID (overrides `mos.id`).
    #[arg(long = "mos-id", value_name = "ID")]
    pub mos_id: Option<String>,
    /// IP address to listen on, e.g. 0.0.0.0 (overrides `mos.listen`).
    #[arg(long, value_name = "IP")]
    pub listen: Option<IpAddr>,
    /// Directory for durable state (overrides `mos.data_dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Our lower port (overrides `mos.lower_port`).
    #[arg(long, value_name = "PORT")]
    pub lower_port: Option<u16>,
    /// Our upper port (overrides `mos.upper_port`).
    #[arg(long, value_name = "PORT")]
    pub upper_port: Option<u16>,
    /// Our query port, 0 = none (overrides `mos.query_port`).
    #[arg(long, value_name = "PORT")]
    pub query_port: Option<u16>,
}

impl Overrides {
    /// Applies the flags to a raw configuration; returns `(key, flag)` for each key set.
    fn apply(&self, raw: &mut RawConfig) -> Vec<(&'static str, &'static str)> {
        let mut set = Vec::new();
        if let Some(v) = &self.mos_id {
            raw.mos.id = v.clone();
            set.push(("mos.id", "--mos-id"));
        }
        if let Some(v) = self.listen {
            raw.mos.listen = v.to_string();
            set.push(("mos.listen", "--listen"));
        }
        if let Some(v) = &self.data_dir {
            raw.mos.data_dir = v.clone();
            set.push(("mos.data_dir", "--data-dir"));
        }
        if let Some(v) = self.lower_port {
            raw.mos.lower_port = v;
            set.push(("mos.lower_port", "--lower-port"));
        }
        if let Some(v) = self.upper_port {
            raw.mos.upper_port = v;
            set.push(("mos.upper_port", "--upper-port"));
        }
        if let Some(v) = self.query_port {
            raw.mos.query_port = v;
            set.push(("mos.query_port", "--query-port"));
        }
        set
    }
}

impl Config {
    /// Loads `path`, or the embedded default when `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with(path, &Overrides::default())
    }

    /// Loads `path` (or the embedded default) and applies command-line overrides before
    /// validating.
    pub fn load_with(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        match path {
            None => Config::from_toml_str_with(DEFAULT_TOML, EMBEDDED_ORIGIN, overrides),
            Some(p) => {
                let origin = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    origin: origin.clone(),
                    source,
                })?;
                Config::from_toml_str_with(&text, &origin, overrides)
            }
        }
    }

    /// Parses and validates TOML text; `origin` names it in errors (usually the file name).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str_with(text, origin, &Overrides::default())
    }

    /// [`from_toml_str`](Self::from_toml_str) with command-line overrides.
    pub fn from_toml_str_with(
        text: &str,
        origin: &str,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let doc = toml::de::DeTable::parse(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            line: e.span().map(|s| error::line_of(text, s.start)),
            detail: e.message().trim_end().to_owned(),
        })?;
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span();
            let key = span
                .as_ref()
                .and_then(|s| error::path_at(doc.get_ref(), s.start))
                .unwrap_or_else(|| "(document)".to_owned());
            ConfigError::Invalid {
                origin: origin.to_owned(),
                line: span.map(|s| error::line_of(text, s.start)),
                key,
                detail: e.message().trim_end().to_owned(),
            }
        })?;
        let overridden = overrides.apply(&mut raw);
        let source = validate::Source {
            origin,
            text,
            doc: doc.get_ref(),
            overridden: &overridden,
        };
        let (mos, log, ncs, objects, warnings) = validate::validate(&raw, &source)?;
        let mut mapping = nmos::validate(&raw, &source, &objects)?;
        let mut warnings = warnings;
        warnings.append(&mut mapping.warnings);
        let effective_toml = toml::to_string(&raw)
            .unwrap_or_else(|e| format!("# the effective configuration cannot be shown: {e}\n"));
        Ok(Config {
            mos,
            log,
            ncs,
            objects,
            nmos: mapping.nmos,
            destinations: mapping.destinations,
            presets: mapping.presets,
            bindings: mapping.bindings,
            origin: origin.to_owned(),
            warnings,
            effective_toml,
        })
    }

    /// Where the configuration came from: a file name or the embedded default.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Things worth a warning at startup that do not stop the gateway (e.g. a host name that
    /// did not resolve, `accept_any_ncs` on).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The effective configuration (file plus overrides, every default filled in) as TOML.
    pub fn effective_toml(&self) -> &str {
        &self.effective_toml
    }

    /// The configured NCS with this ncsID (case-sensitive).
    pub fn ncs(&self, ncs_id: &str) -> Option<&NcsConfig> {
        self.ncs.iter().find(|n| n.id == ncs_id)
    }

    /// The object declared with this objID, if any.
    pub fn object(&self, obj_id: &str) -> Option<&ObjectConfig> {
        self.objects.iter().find(|o| o.id == obj_id)
    }

    /// The configured NCSs that accept connections from `ip` (host, buddy host or allowed
    /// address), in file order.
    pub fn ncs_for_address(&self, ip: IpAddr) -> Vec<&NcsConfig> {
        self.ncs.iter().filter(|n| n.accepts_address(ip)).collect()
    }

    /// One line per fact for the startup log: origin, what we listen on, which NCSs we expect.
    pub fn summary(&self) -> String {
        let m = &self.mos;
        let mut s = String::new();
        let _ = writeln!(s, "configuration: {}", self.origin);
        let query = match m.query_port {
            Some(p) => format!("query {p}"),
            None => "no query port".to_owned(),
        };
        let _ = writeln!(
            s,
            "mosID {} listening on {}: lower {}, upper {}, {query}; data in {}",
            m.id,
            m.listen,
            m.lower_port,
            m.upper_port,
            m.data_dir.display()
        );
        if m.accept_any_ncs {
            let _ = writeln!(
                s,
                "accepting any ncsID from any address (accept_any_ncs = true)"
            );
        } else if self.ncs.is_empty() {
            let _ = writeln!(s, "no NCS configured: every NCS will be refused");
        }
        for n in &self.ncs {
            let _ = writeln!(s, "{}", ncs_line(n));
        }
        if !self.objects.is_empty() {
            let _ = writeln!(
                s,
                "{} object(s) declared in the configuration",
                self.objects.len()
            );
        }
        let registry = match &self.nmos.registry {
            Registry::Auto => "NMOS registry found by DNS-SD".to_owned(),
            Registry::Url(u) => format!("NMOS registry {u}"),
            Registry::None => format!("no NMOS registry, {} node(s) polled", self.nmos.nodes.len()),
        };
        let _ = writeln!(
            s,
            "{registry}; {} destination(s), {} preset(s), {} binding(s)",
            self.destinations.len(),
            self.presets.len(),
            self.bindings.len()
        );
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s.truncate(s.trim_end().len());
        s
    }
}

fn ports_text(lower: u16, upper: u16, query: Option<u16>) -> String {
    match query {
        Some(q) => format!("lower {lower}, upper {upper}, query {q}"),
        None => format!("lower {lower}, upper {upper}"),
    }
}

fn ncs_line(n: &NcsConfig) -> String {
    let mut line = format!(
        "expecting NCS {} at {}: {}; encoding {}, ",
        n.id,
        n.host,
        ports_text(n.lower_port, n.upper_port, n.query_port),
        n.encoding.name()
    );
    match n.heartbeat_interval {
        Some(d) => {
            let _ = write!(line, "heartbeat every {}s, ", d.as_secs_f64());
        }
        None => line.push_str("no heartbeats, "),
    }
    let _ = write!(
        line,
        "ack timeout {}s, {}",
        n.ack_timeout.as_secs_f64(),
        if n.strict { "strict" } else { "lenient" }
    );
    if !n.allowed_addresses.is_empty() {
        let list: Vec<String> = n.allowed_addresses.iter().map(|a| a.to_string()).collect();
        let _ = write!(line, ", also from {}", list.join(", "));
    }
    if let Some(b) = &n.buddy {
        let style = match n.failover {
            Failover::Buddy => "buddy",
            Failover::HotStandby => "hot_standby",
        };
        let _ = write!(
            line,
            ", buddy {} ({}, {style})",
            b.host,
            ports_text(b.lower_port, b.upper_port, b.query_port)
        );
    }
    line
}

#[cfg(test)]
mod tests;
