//! The NMOS side of the configuration: `[nmos]` (discovery, HTTP, takes, IS-10), and the
//! mapping tables `[[destination]]`, `[[preset]]` and `[[binding]]`.
//!
//! The raw tables (every key optional, defaults as documented in `config/gateway.toml`) are
//! checked by [`validate`] into [`NmosConfig`], [`DestinationConfig`], [`PresetConfig`] and
//! [`BindingConfig`]. Senders, receivers and devices are named by [`ResourceRef`]: a text that
//! parses as a UUID is an id (normalised to lower case, as NMOS writes them), anything else a
//! label (labels survive a device's ID change).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::raw::{RawConfig, Seconds};
use super::validate::{Source, check_id, check_text};
use super::{ConfigError, ObjectConfig, ObjectType};
use crate::mos::structures::ObjType;
pub use crate::nmos::dnssd::DnsSdMode;
use crate::nmos::is08_check::{ChannelMap, MapEntry};

/// The documented default of `nmos.mos_schema`.
pub const DEFAULT_MOS_SCHEMA: &str = "http://nmos-gateway.local/mos/nmos.xsd";
/// The documented default of `nmos.auth.scope`.
pub const DEFAULT_AUTH_SCOPE: &str = "query connection channelmapping";

/// The documented default of `nmos.dnssd_priorities` (production registries only).
pub const DNSSD_PRIORITIES: std::ops::RangeInclusive<u32> = crate::nmos::dnssd::DEFAULT_PRIORITIES;

/// Longest URL accepted, in characters.
const MAX_URL_CHARS: usize = 2048;
/// Longest MOS-facing URL (mosSchema), in characters.
const MAX_SCHEMA_CHARS: usize = 255;
/// Longest `http_timeout_ms`: ten minutes.
const MAX_HTTP_TIMEOUT_MS: u64 = 600_000;
/// Longest `debounce_ms`: one hour.
const MAX_DEBOUNCE_MS: u64 = 3_600_000;
/// Longest `poll_interval_s`: one day.
const MAX_POLL_S: f64 = 86_400.0;
/// Most channels an audio map gives one output.
const MAX_MAP_CHANNELS: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Raw tables
// ---------------------------------------------------------------------------------------------

/// `[nmos]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNmos {
    /// Query API base URL, `auto` (DNS-SD) or `""` (none).
    pub registry: String,
    /// DNS-SD browses: `auto` (unicast, then mDNS), `unicast` or `mdns`.
    pub dnssd_mode: DnsSdMode,
    /// Unicast DNS-SD browse domain; `""` = the system's search domains.
    pub dnssd_domain: String,
    /// Accepted TXT `pri` range `[highest, lowest]` (lower numbers preferred).
    pub dnssd_priorities: Vec<i64>,
    /// Node API base URLs polled when there is no registry.
    pub nodes: Vec<String>,
    /// Seconds between polls of `nodes`.
    pub poll_interval_s: Seconds,
    /// Timeout of every NMOS HTTP call, in milliseconds.
    pub http_timeout_ms: u64,
    /// Plain HTTP allowed.
    pub allow_http: bool,
    /// PEM CA bundle for HTTPS; `""` = system roots.
    pub ca_bundle: String,
    /// A sender gone and back within this many milliseconds is not deleted.
    pub debounce_ms: u64,
    /// The gateway's own mosSchema URL.
    pub mos_schema: String,
    /// Destination of items that name none; `""` = none.
    pub default_destination: String,
    /// roReadyToAir READY stages every item of the running order.
    pub ready_to_air_stages: bool,
    /// A take that fails on one receiver rolls back the others.
    pub take_all_or_nothing: bool,
    /// What a 423 (pending scheduled activation) leads to.
    pub on_423: On423,
    /// What STOP / PAUSE / SIGNAL do on the network.
    pub on_stop: OnStop,
    /// `[nmos.auth]`: IS-10 (last: a sub-table is written after the plain keys).
    pub auth: RawAuth,
}

impl Default for RawNmos {
    fn default() -> Self {
        RawNmos {
            registry: "auto".to_owned(),
            dnssd_mode: DnsSdMode::Auto,
            dnssd_domain: String::new(),
            dnssd_priorities: vec![
                i64::from(*DNSSD_PRIORITIES.start()),
                i64::from(*DNSSD_PRIORITIES.end()),
            ],
            nodes: Vec::new(),
            poll_interval_s: Seconds(5.0),
            http_timeout_ms: 2000,
            allow_http: true,
            ca_bundle: String::new(),
            debounce_ms: 2000,
            mos_schema: DEFAULT_MOS_SCHEMA.to_owned(),
            default_destination: String::new(),
            ready_to_air_stages: false,
            take_all_or_nothing: true,
            on_423: On423::Report,
            on_stop: OnStop::None,
            auth: RawAuth::default(),
        }
    }
}

/// `[nmos.auth]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    /// Token endpoint; `""` = no tokens.
    pub token_url: String,
    /// OAuth2 client id.
    pub client_id: String,
    /// Name of the environment variable holding the client secret.
    pub client_secret_env: String,
    /// File holding the client secret.
    pub client_secret_file: String,
    /// Scopes asked for, space-separated.
    pub scope: String,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            token_url: String::new(),
            client_id: String::new(),
            client_secret_env: String::new(),
            client_secret_file: String::new(),
            scope: DEFAULT_AUTH_SCOPE.to_owned(),
        }
    }
}

/// One `[[destination]]` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDestination {
    /// The name items use as itemChannel.
    pub name: String,
    /// Receivers by UUID or label.
    pub receivers: Vec<String>,
    /// Device (UUID or label) the audio map is applied on; `""` = none.
    pub audio_device: String,
    /// IS-08 map: output id → one `"<input>:<channel>"` or `""` per output channel.
    pub audio_map: BTreeMap<String, Vec<String>>,
}

/// One `{ sender = ..., receiver = ... }` of a preset.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConnection {
    /// Sender by UUID or label.
    pub sender: String,
    /// Receiver by UUID or label.
    pub receiver: String,
}

/// One `[[preset]]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPreset {
    /// Its objID.
    pub id: String,
    /// Its objSlug.
    pub slug: String,
    /// Its objType.
    #[serde(rename = "type")]
    pub obj_type: ObjectType,
    /// Device (UUID or label) the audio map is applied on; `""` = none.
    pub audio_device: String,
    /// Sender → receiver connections.
    pub connections: Vec<RawConnection>,
    /// IS-08 map, as in `[[destination]]`.
    pub audio_map: BTreeMap<String, Vec<String>>,
}

impl Default for RawPreset {
    fn default() -> Self {
        RawPreset {
            id: String::new(),
            slug: String::new(),
            obj_type: ObjectType::Video,
            audio_device: String::new(),
            connections: Vec::new(),
            audio_map: BTreeMap::new(),
        }
    }
}

/// One `[[binding]]` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBinding {
    /// The placeholder's objID or objSlug.
    pub placeholder: String,
    /// Sender by UUID or label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Preset objID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Validated settings
// ---------------------------------------------------------------------------------------------

/// What a 423 (a receiver or output locked by a pending scheduled activation) leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum On423 {
    /// Report it (ERROR with the reason); leave the device alone.
    #[default]
    Report,
    /// Cancel the pending scheduled activation, then retry once.
    Clear,
}

/// What STOP / PAUSE / SIGNAL do on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStop {
    /// Nothing; only the status changes.
    #[default]
    None,
    /// Disconnect the item's receivers (master_enable false, sender_id null).
    Disconnect,
}

/// Where the IS-04 registry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registry {
    /// Found by DNS-SD (`_nmos-query._tcp`, highest priority first).
    Auto,
    /// This Query API base URL.
    Url(String),
    /// No registry: poll [`NmosConfig::nodes`].
    None,
}

/// Where the IS-10 client secret is read from (never stored in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// This environment variable.
    Env(String),
    /// This file (its content, surrounding white space trimmed).
    File(PathBuf),
}

/// `[nmos.auth]` when a token URL is given: OAuth2 client credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The authorization server's token endpoint.
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// Where the secret is.
    pub secret: SecretSource,
    /// Scopes, space-separated (non-empty).
    pub scope: String,
}

/// `[nmos]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NmosConfig {
    /// Where the registry is.
    pub registry: Registry,
    /// Which DNS-SD browses find it (with [`Registry::Auto`]).
    pub dnssd_mode: DnsSdMode,
    /// Unicast DNS-SD browse domain (lower case, no trailing dot); `None` = the system's
    /// search domains.
    pub dnssd_domain: Option<String>,
    /// Accepted TXT `pri` values (registries outside are not used).
    pub dnssd_priorities: std::ops::RangeInclusive<u32>,
    /// Node API base URLs polled when there is no registry.
    pub nodes: Vec<String>,
    /// Interval of node polls.
    pub poll_interval: Duration,
    /// Timeout of every NMOS HTTP call.
    pub http_timeout: Duration,
    /// Plain HTTP allowed (false: HTTPS only, BCP-003-01).
    pub allow_http: bool,
    /// PEM CA bundle for HTTPS; `None` = system roots.
    pub ca_bundle: Option<PathBuf>,
    /// A sender gone and back within this is not deleted.
    pub debounce: Duration,
    /// The gateway's own mosSchema URL.
    pub mos_schema: String,
    /// Destination (a configured name) of items that name none.
    pub default_destination: Option<String>,
    /// roReadyToAir READY stages every item of the running order.
    pub ready_to_air_stages: bool,
    /// A take that fails on one receiver rolls back the others.
    pub take_all_or_nothing: bool,
    /// What a 423 leads to.
    pub on_423: On423,
    /// What STOP / PAUSE / SIGNAL do.
    pub on_stop: OnStop,
    /// IS-10 client credentials; `None` = no tokens.
    pub auth: Option<AuthConfig>,
}

/// A sender, receiver or device named in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceRef {
    /// By UUID (lower case, hyphenated).
    Id(String),
    /// By IS-04 label (compared exactly).
    Label(String),
}

impl ResourceRef {
    /// A text that parses as a UUID is an id (normalised), anything else a label (trimmed).
    pub fn parse(text: &str) -> ResourceRef {
        let t = text.trim();
        match uuid::Uuid::try_parse(t) {
            Ok(u) => ResourceRef::Id(u.hyphenated().to_string()),
            Err(_) => ResourceRef::Label(t.to_owned()),
        }
    }
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceRef::Id(id) => f.write_str(id),
            ResourceRef::Label(l) => write!(f, "\"{l}\""),
        }
    }
}

/// An IS-08 map to apply on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioMapConfig {
    /// The device (UUID or label).
    pub device: ResourceRef,
    /// Whole outputs: one entry per output channel.
    pub map: ChannelMap,
}

/// One `[[destination]]`: receivers an item's channel names, and an optional IS-08 map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationConfig {
    /// The name (unique, compared without regard to case or surrounding spaces).
    pub name: String,
    /// The receivers, in file order (at least one).
    pub receivers: Vec<ResourceRef>,
    /// The IS-08 map applied with every route to this destination.
    pub audio: Option<AudioMapConfig>,
}

/// One sender → receiver connection of a preset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRef {
    /// The sender.
    pub sender: ResourceRef,
    /// The receiver.
    pub receiver: ResourceRef,
}

/// One `[[preset]]`: a salvo offered as a MOS object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresetConfig {
    /// Its objID (unique among presets and `[[object]]`s, not a UUID).
    pub id: String,
    /// Its objSlug.
    pub slug: String,
    /// Its objType.
    pub obj_type: ObjType,
    /// Connections, in file order (no receiver twice).
    pub connections: Vec<ConnectionRef>,
    /// Its IS-08 map.
    pub audio: Option<AudioMapConfig>,
}

/// What a placeholder is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingTarget {
    /// A sender.
    Sender(ResourceRef),
    /// A configured preset (its objID).
    Preset(String),
}

/// One `[[binding]]`: a placeholder (mosObjCreate) bound to a sender or preset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingConfig {
    /// The placeholder's objID or objSlug (unique).
    pub placeholder: String,
    /// What it stands for.
    pub target: BindingTarget,
}

/// What [`validate`] produces.
pub(super) struct ValidatedNmos {
    pub nmos: NmosConfig,
    pub destinations: Vec<DestinationConfig>,
    pub presets: Vec<PresetConfig>,
    pub bindings: Vec<BindingConfig>,
    /// Things worth a warning at startup.
    pub warnings: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// Checks `[nmos]`, `[[destination]]`, `[[preset]]` and `[[binding]]` (`objects`: the
/// validated `[[object]]`s, whose objIDs presets must not reuse).
pub(super) fn validate(
    raw: &RawConfig,
    src: &Source<'_>,
    objects: &[ObjectConfig],
) -> Result<ValidatedNmos, ConfigError> {
    let mut nmos = settings(&raw.nmos, src)?;

    let mut destinations = Vec::with_capacity(raw.destination.len());
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, d) in raw.destination.iter().enumerate() {
        let key = format!("destination[{i}]");
        let dest = destination(d, &key, src)?;
        if let Some(first) = names.insert(fold(&dest.name), i) {
            return Err(src.err(
                &format!("{key}.name"),
                format!(
                    "\"{}\" is already the name of destination[{first}] (names are compared \
                     without regard to case); every destination name must be unique",
                    d.name
                ),
            ));
        }
        destinations.push(dest);
    }

    let mut presets = Vec::with_capacity(raw.preset.len());
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, p) in raw.preset.iter().enumerate() {
        let key = format!("preset[{i}]");
        let preset = preset(p, &key, src)?;
        if let Some(first) = ids.insert(p.id.as_str(), i) {
            return Err(src.err(
                &format!("{key}.id"),
                format!(
                    "\"{}\" is already the id of preset[{first}]; every preset id must be unique",
                    p.id
                ),
            ));
        }
        if let Some(j) = objects.iter().position(|o| o.id == p.id) {
            return Err(src.err(
                &format!("{key}.id"),
                format!(
                    "\"{}\" is already the id of object[{j}]; presets are objects too, their \
                     objIDs must differ",
                    p.id
                ),
            ));
        }
        presets.push(preset);
    }

    let mut bindings = Vec::with_capacity(raw.binding.len());
    let mut placeholders: HashMap<String, usize> = HashMap::new();
    for (i, b) in raw.binding.iter().enumerate() {
        let key = format!("binding[{i}]");
        let binding = binding(b, &key, &presets, src)?;
        if let Some(first) = placeholders.insert(fold(&binding.placeholder), i) {
            return Err(src.err(
                &format!("{key}.placeholder"),
                format!(
                    "\"{}\" is already bound by binding[{first}]; a placeholder can be bound once",
                    b.placeholder
                ),
            ));
        }
        bindings.push(binding);
    }

    if let Some(default) = &nmos.default_destination {
        match destinations.iter().find(|d| fold(&d.name) == fold(default)) {
            Some(d) => nmos.default_destination = Some(d.name.clone()),
            None => {
                return Err(src.err(
                    "nmos.default_destination",
                    format!(
                        "\"{default}\" is not the name of any [[destination]]; expected one of \
                         the configured names, or \"\" for none"
                    ),
                ));
            }
        }
    }

    let mut warnings = Vec::new();
    if nmos.registry == Registry::Auto && *nmos.dnssd_priorities.end() >= 100 {
        warnings.push(format!(
            "nmos.dnssd_priorities accepts pri {} to {}: registries for development and \
             testing (pri 100 and above) may be used",
            nmos.dnssd_priorities.start(),
            nmos.dnssd_priorities.end()
        ));
    }
    match (&nmos.registry, nmos.nodes.is_empty()) {
        (Registry::None, true) => warnings.push(
            "nmos.registry = \"\" and no nmos.nodes: no NMOS senders or receivers will be found"
                .to_owned(),
        ),
        (Registry::Auto | Registry::Url(_), false) => warnings.push(
            "nmos.nodes is ignored while nmos.registry is set (use registry = \"\" to poll nodes)"
                .to_owned(),
        ),
        _ => {}
    }
    Ok(ValidatedNmos {
        nmos,
        destinations,
        presets,
        bindings,
        warnings,
    })
}

/// Names compared without regard to case or surrounding spaces.
pub(crate) fn fold(text: &str) -> String {
    text.trim().to_lowercase()
}

fn settings(n: &RawNmos, src: &Source<'_>) -> Result<NmosConfig, ConfigError> {
    let registry = match n.registry.trim() {
        "" => Registry::None,
        r if r.eq_ignore_ascii_case("auto") => Registry::Auto,
        r => {
            url(src, "nmos.registry", r, n.allow_http, "\"auto\", \"\" or ")?;
            Registry::Url(r.to_owned())
        }
    };
    let dnssd_domain = dnssd_domain(&n.dnssd_domain, src)?;
    let dnssd_priorities = dnssd_priorities(&n.dnssd_priorities, src)?;
    let mut nodes = Vec::with_capacity(n.nodes.len());
    for (i, node) in n.nodes.iter().enumerate() {
        let node = node.trim();
        url(src, &format!("nmos.nodes[{i}]"), node, n.allow_http, "")?;
        nodes.push(node.to_owned());
    }
    let poll = n.poll_interval_s.0;
    if !(poll.is_finite() && poll > 0.0 && poll <= MAX_POLL_S) {
        return Err(src.err(
            "nmos.poll_interval_s",
            format!("{poll} is out of range; expected more than 0 up to {MAX_POLL_S} seconds"),
        ));
    }
    let poll_interval = Duration::try_from_secs_f64(poll)
        .map_err(|e| src.err("nmos.poll_interval_s", format!("{poll}: {e}")))?;
    if !(1..=MAX_HTTP_TIMEOUT_MS).contains(&n.http_timeout_ms) {
        return Err(src.err(
            "nmos.http_timeout_ms",
            format!(
                "{} is out of range; expected 1 to {MAX_HTTP_TIMEOUT_MS} milliseconds",
                n.http_timeout_ms
            ),
        ));
    }
    if n.debounce_ms > MAX_DEBOUNCE_MS {
        return Err(src.err(
            "nmos.debounce_ms",
            format!(
                "{} is out of range; expected 0 to {MAX_DEBOUNCE_MS} milliseconds",
                n.debounce_ms
            ),
        ));
    }
    let ca_bundle = match n.ca_bundle.trim() {
        "" => None,
        path => {
            let p = PathBuf::from(path);
            if !p.is_file() {
                return Err(src.err(
                    "nmos.ca_bundle",
                    format!(
                        "\"{path}\" is not a readable file; expected the path of a PEM CA \
                         bundle, or \"\" for the system's roots"
                    ),
                ));
            }
            Some(p)
        }
    };
    let schema = n.mos_schema.trim();
    url(src, "nmos.mos_schema", schema, true, "")?;
    if schema.chars().count() > MAX_SCHEMA_CHARS {
        return Err(src.err(
            "nmos.mos_schema",
            format!(
                "is too long; expected at most {MAX_SCHEMA_CHARS} characters (a MOS mosSchema)"
            ),
        ));
    }
    let default_destination = match n.default_destination.trim() {
        "" => None,
        d => Some(d.to_owned()),
    };
    let auth = auth(&n.auth, n.allow_http, src)?;
    Ok(NmosConfig {
        registry,
        dnssd_mode: n.dnssd_mode,
        dnssd_domain,
        dnssd_priorities,
        nodes,
        poll_interval,
        http_timeout: Duration::from_millis(n.http_timeout_ms),
        allow_http: n.allow_http,
        ca_bundle,
        debounce: Duration::from_millis(n.debounce_ms),
        mos_schema: schema.to_owned(),
        default_destination,
        ready_to_air_stages: n.ready_to_air_stages,
        take_all_or_nothing: n.take_all_or_nothing,
        on_423: n.on_423,
        on_stop: n.on_stop,
        auth,
    })
}

/// `nmos.dnssd_domain`: `""` or a DNS name (letters, digits, `-`, `_`; labels of 1 to 63
/// characters; at most 253 in all), not `local` (that is mDNS). Lower-cased, trailing dot
/// removed.
fn dnssd_domain(text: &str, src: &Source<'_>) -> Result<Option<String>, ConfigError> {
    let d = text.trim();
    let d = d.strip_suffix('.').unwrap_or(d).to_ascii_lowercase();
    if d.is_empty() {
        return Ok(None);
    }
    let key = "nmos.dnssd_domain";
    if d.len() > 253 {
        return Err(src.err(
            key,
            format!("\"{text}\" is too long; expected a DNS domain of at most 253 characters"),
        ));
    }
    for label in d.split('.') {
        let ok_chars = label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if label.is_empty() || label.len() > 63 || !ok_chars {
            return Err(src.err(
                key,
                format!(
                    "\"{text}\" is not a DNS domain; expected labels of 1 to 63 letters, digits, \
                     '-' or '_' separated by dots (e.g. \"studio.example.com\"), or \"\" for \
                     the system's search domains"
                ),
            ));
        }
    }
    if d == "local" || d.ends_with(".local") {
        return Err(src.err(
            key,
            format!(
                "\"{text}\" is a multicast DNS domain; unicast DNS-SD needs an ordinary DNS \
                 domain (use dnssd_mode = \"mdns\" for .local)"
            ),
        ));
    }
    Ok(Some(d))
}

/// `nmos.dnssd_priorities`: `[highest, lowest]`, `0 <= highest <= lowest`.
fn dnssd_priorities(
    values: &[i64],
    src: &Source<'_>,
) -> Result<std::ops::RangeInclusive<u32>, ConfigError> {
    let key = "nmos.dnssd_priorities";
    let [hi, lo] = values else {
        return Err(src.err(
            key,
            format!(
                "has {} value(s); expected two, [highest, lowest] accepted pri, e.g. [0, 99]",
                values.len()
            ),
        ));
    };
    let (Ok(hi), Ok(lo)) = (u32::try_from(*hi), u32::try_from(*lo)) else {
        return Err(src.err(
            key,
            format!(
                "[{hi}, {lo}] is out of range; each pri is 0 to {} (0 is the highest priority)",
                u32::MAX
            ),
        ));
    };
    if hi > lo {
        return Err(src.err(
            key,
            format!(
                "[{hi}, {lo}] is reversed; expected [highest, lowest] with highest <= lowest \
                 (lower numbers are preferred), e.g. [0, 99]"
            ),
        ));
    }
    Ok(hi..=lo)
}

/// An http(s) URL with a host; plain http only when `allow_http`. `alternatives` is put before
/// the expectation (e.g. `"auto", "" or `).
fn url(
    src: &Source<'_>,
    key: &str,
    text: &str,
    allow_http: bool,
    alternatives: &str,
) -> Result<(), ConfigError> {
    let expected = if allow_http {
        "an http:// or https:// URL"
    } else {
        "an https:// URL"
    };
    let bad = |why: &str| {
        src.err(
            key,
            format!("\"{text}\" {why}; expected {alternatives}{expected}"),
        )
    };
    if text.chars().count() > MAX_URL_CHARS {
        return Err(src.err(
            key,
            format!("is too long; expected at most {MAX_URL_CHARS} characters"),
        ));
    }
    let parsed = reqwest::Url::parse(text).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(bad(
                "uses plain HTTP but nmos.allow_http = false (HTTPS only, BCP-003-01)",
            ));
        }
        other => return Err(bad(&format!("has the scheme {other}:"))),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    Ok(())
}

fn auth(
    a: &RawAuth,
    allow_http: bool,
    src: &Source<'_>,
) -> Result<Option<AuthConfig>, ConfigError> {
    let token_url = a.token_url.trim();
    if token_url.is_empty() {
        return Ok(None);
    }
    url(
        src,
        "nmos.auth.token_url",
        token_url,
        allow_http,
        "\"\" or ",
    )?;
    if a.client_id.trim().is_empty() {
        return Err(src.err(
            "nmos.auth.client_id",
            "must not be empty when token_url is set; expected the client id the \
             authorization server registered for this gateway",
        ));
    }
    let env = a.client_secret_env.trim();
    let file = a.client_secret_file.trim();
    let secret = match (env.is_empty(), file.is_empty()) {
        (false, true) => {
            let valid = env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !env.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(src.err(
                    "nmos.auth.client_secret_env",
                    format!(
                        "\"{env}\" is not an environment variable name; expected letters, \
                         digits and _ (e.g. \"NMOS_CLIENT_SECRET\")"
                    ),
                ));
            }
            SecretSource::Env(env.to_owned())
        }
        (true, false) => SecretSource::File(PathBuf::from(file)),
        (true, true) => {
            return Err(src.err(
                "nmos.auth",
                "token_url is set but no secret: give client_secret_env (an environment \
                 variable name) or client_secret_file (a file path)",
            ));
        }
        (false, false) => {
            return Err(src.err(
                "nmos.auth.client_secret_file",
                "client_secret_env is set too; give one of client_secret_env and \
                 client_secret_file",
            ));
        }
    };
    let scope = a.scope.split_whitespace().collect::<Vec<_>>().join(" ");
    if scope.is_empty() {
        return Err(src.err(
            "nmos.auth.scope",
            format!("must not be empty; expected e.g. \"{DEFAULT_AUTH_SCOPE}\""),
        ));
    }
    Ok(Some(AuthConfig {
        token_url: token_url.to_owned(),
        client_id: a.client_id.trim().to_owned(),
        secret,
        scope,
    }))
}

/// A sender/receiver/device reference: not empty, no control characters.
fn reference(
    src: &Source<'_>,
    key: &str,
    text: &str,
    what: &str,
) -> Result<ResourceRef, ConfigError> {
    if text.trim().is_empty() {
        return Err(src.err(
            key,
            format!("must not be empty; expected the {what}'s UUID or IS-04 label"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(src.err(
            key,
            "contains a control character; expected a UUID or a label",
        ));
    }
    Ok(ResourceRef::parse(text))
}

/// An IS-08 input or output id (`^[a-zA-Z0-9\-_]+$`).
fn is08_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// One audio map entry: `"<input id>:<channel>"`, or `""` for an unrouted channel.
pub fn parse_map_entry(text: &str) -> Result<MapEntry, String> {
    let t = text.trim();
    if t.is_empty() || t == "-" {
        return Ok(MapEntry::unrouted());
    }
    let Some((input, channel)) = t.rsplit_once(':') else {
        return Err(format!(
            "\"{t}\" is not <input id>:<channel index> (e.g. \"input1:0\"), \"\" or \"-\" (unrouted)"
        ));
    };
    if !is08_id(input) {
        return Err(format!(
            "\"{input}\" is not an IS-08 input id (letters, digits, - and _)"
        ));
    }
    let digits = !channel.is_empty() && channel.bytes().all(|b| b.is_ascii_digit());
    let index = channel.parse::<usize>().ok().filter(|_| digits);
    match index {
        Some(i) if i < MAX_MAP_CHANNELS => Ok(MapEntry::routed(input, i)),
        _ => Err(format!(
            "\"{channel}\" is not a channel index (0 to {})",
            MAX_MAP_CHANNELS - 1
        )),
    }
}

/// `audio_device` + `audio_map` of a destination or preset: both or neither.
fn audio(
    src: &Source<'_>,
    key: &str,
    device: &str,
    map: &BTreeMap<String, Vec<String>>,
) -> Result<Option<AudioMapConfig>, ConfigError> {
    match (device.trim().is_empty(), map.is_empty()) {
        (true, true) => return Ok(None),
        (true, false) => {
            return Err(src.err(
                &format!("{key}.audio_device"),
                "missing; audio_map needs the device it is applied on (its UUID or IS-04 label)",
            ));
        }
        (false, true) => {
            return Err(src.err(
                &format!("{key}.audio_map"),
                "missing; audio_device is set but there is no audio_map to apply on it",
            ));
        }
        (false, false) => {}
    }
    let device = reference(src, &format!("{key}.audio_device"), device, "device")?;
    let mut out = ChannelMap::new();
    for (output, entries) in map {
        let okey = format!("{key}.audio_map.{output}");
        if !is08_id(output) {
            return Err(src.err(
                &okey,
                format!("\"{output}\" is not an IS-08 output id (letters, digits, - and _)"),
            ));
        }
        if entries.is_empty() || entries.len() > MAX_MAP_CHANNELS {
            return Err(src.err(
                &okey,
                format!(
                    "gives {} channels; expected one entry per channel of the output (1 to \
                     {MAX_MAP_CHANNELS})",
                    entries.len()
                ),
            ));
        }
        let mut parsed = Vec::with_capacity(entries.len());
        for (j, e) in entries.iter().enumerate() {
            let entry = parse_map_entry(e).map_err(|why| src.err(&format!("{okey}[{j}]"), why))?;
            parsed.push(entry);
        }
        out.insert(output.clone(), parsed);
    }
    Ok(Some(AudioMapConfig { device, map: out }))
}

fn destination(
    d: &RawDestination,
    key: &str,
    src: &Source<'_>,
) -> Result<DestinationConfig, ConfigError> {
    check_id(src, &format!("{key}.name"), &d.name, "the destination name")?;
    if d.receivers.is_empty() {
        return Err(src.err(
            &format!("{key}.receivers"),
            "is empty; expected at least one receiver (UUID or IS-04 label)",
        ));
    }
    let mut receivers = Vec::with_capacity(d.receivers.len());
    for (j, r) in d.receivers.iter().enumerate() {
        let rkey = format!("{key}.receivers[{j}]");
        let reference = reference(src, &rkey, r, "receiver")?;
        if let Some(first) = receivers.iter().position(|x| *x == reference) {
            return Err(src.err(
                &rkey,
                format!("{reference} is already receivers[{first}]; name each receiver once"),
            ));
        }
        receivers.push(reference);
    }
    Ok(DestinationConfig {
        name: d.name.clone(),
        receivers,
        audio: audio(src, key, &d.audio_device, &d.audio_map)?,
    })
}

fn preset(p: &RawPreset, key: &str, src: &Source<'_>) -> Result<PresetConfig, ConfigError> {
    check_id(src, &format!("{key}.id"), &p.id, "the preset's objID")?;
    if uuid::Uuid::try_parse(p.id.trim()).is_ok() {
        return Err(src.err(
            &format!("{key}.id"),
            format!(
                "\"{}\" is a UUID; senders' objIDs are UUIDs, so a preset needs another id \
                 (e.g. \"PRESET-INTERVIEW\")",
                p.id
            ),
        ));
    }
    check_text(src, &format!("{key}.slug"), &p.slug, "the objSlug")?;
    if p.connections.is_empty() && p.audio_map.is_empty() {
        return Err(src.err(
            &format!("{key}.connections"),
            "is empty and there is no audio_map; a preset needs at least one connection or an \
             audio map",
        ));
    }
    let mut connections: Vec<ConnectionRef> = Vec::with_capacity(p.connections.len());
    for (j, c) in p.connections.iter().enumerate() {
        let ckey = format!("{key}.connections[{j}]");
        let sender = reference(src, &format!("{ckey}.sender"), &c.sender, "sender")?;
        let receiver = reference(src, &format!("{ckey}.receiver"), &c.receiver, "receiver")?;
        if let Some(first) = connections.iter().position(|x| x.receiver == receiver) {
            return Err(src.err(
                &format!("{ckey}.receiver"),
                format!(
                    "{receiver} is already the receiver of connections[{first}]; a receiver \
                     can take one sender"
                ),
            ));
        }
        connections.push(ConnectionRef { sender, receiver });
    }
    let obj_type: ObjType = p.obj_type.into();
    Ok(PresetConfig {
        id: p.id.clone(),
        slug: p.slug.clone(),
        obj_type,
        connections,
        audio: audio(src, key, &p.audio_device, &p.audio_map)?,
    })
}

fn binding(
    b: &RawBinding,
    key: &str,
    presets: &[PresetConfig],
    src: &Source<'_>,
) -> Result<BindingConfig, ConfigError> {
    check_text(
        src,
        &format!("{key}.placeholder"),
        &b.placeholder,
        "the placeholder's objID or objSlug",
    )?;
    let sender = b.sender.as_deref().filter(|s| !s.trim().is_empty());
    let preset = b.preset.as_deref().filter(|s| !s.trim().is_empty());
    let target = match (sender, preset) {
        (Some(s), None) => {
            BindingTarget::Sender(reference(src, &format!("{key}.sender"), s, "sender")?)
        }
        (None, Some(p)) => match presets.iter().find(|x| x.id == p.trim()) {
            Some(found) => BindingTarget::Preset(found.id.clone()),
            None => {
                return Err(src.err(
                    &format!("{key}.preset"),
                    format!("\"{p}\" is not the id of any [[preset]]"),
                ));
            }
        },
        (None, None) => {
            return Err(src.err(
                key,
                "binds to nothing; give sender = \"<UUID or label>\" or preset = \"<preset id>\"",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(src.err(
                &format!("{key}.preset"),
                "sender is set too; a placeholder is bound to a sender or to a preset, not both",
            ));
        }
    };
    Ok(BindingConfig {
        placeholder: b.placeholder.trim().to_owned(),
        target,
    })
}
