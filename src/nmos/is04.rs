//! The IS-04 Query API client: typed resources, a paging-aware [`QueryClient`] and the
//! [`Catalogue`] snapshot the gateway builds its MOS objects from.
//!
//! - Resources are deserialized leniently: unknown keys are ignored and keys added after v1.2
//!   are optional, so a registry answering at v1.2 (or with `query.downgrade`) still parses.
//! - [`QueryClient`] picks the API version from `GET /x-nmos/query/` (v1.3, else v1.2), reads
//!   every page of a list (`paging.order=create`, `paging.since=0:0`, then the `next` link or
//!   `X-Paging-Until`, until a page comes back empty) and puts a timeout on every HTTP call.
//! - [`Catalogue`] answers the gateway's questions: a sender's flow format and MOS `objType`,
//!   a device's label, and a device's IS-05 v1.1 / IS-08 v1.0 control hrefs (exact types only).
//!
//! - [`ResourceType`] and [`Catalogue::apply`] / [`Catalogue::replace_type`] let the live
//!   subscription client ([`super::subscribe`]) and the Node API poller keep a catalogue up to
//!   date from raw JSON, one resource at a time, skipping (and reporting) resources that do not
//!   parse.

use super::http::excerpt;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{HeaderMap, LINK};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

/// Control type of the IS-05 Connection API v1.1 in a device's `controls`.
pub const CONTROL_IS05_V1_1: &str = "urn:x-nmos:control:sr-ctrl/v1.1";
/// Control type of the IS-08 Channel Mapping API v1.0 in a device's `controls`.
pub const CONTROL_IS08_V1_0: &str = "urn:x-nmos:control:cm-ctrl/v1.0";

/// Longest body excerpt kept in an error.
/// Guard against a registry whose cursors never advance.
const MAX_PAGES: usize = 100_000;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A failed Query API call; every variant names the URL it concerns.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The configured base URL cannot be used.
    #[error("invalid Query API base URL {url:?}: {detail}")]
    BadUrl { url: String, detail: String },
    /// No answer within the per-call timeout.
    #[error("GET {url}: no answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    /// Connection refused, reset, TLS failure, ...
    #[error("GET {url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with a status other than 2xx.
    #[error("GET {url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    /// The body is not the JSON expected.
    #[error("GET {url}: unexpected body ({detail}): {body}")]
    Decode {
        url: String,
        detail: String,
        body: String,
    },
    /// The registry offers neither v1.3 nor v1.2.
    #[error("GET {url}: no supported Query API version (offered: {offered:?}; want v1.3 or v1.2)")]
    NoSupportedVersion { url: String, offered: Vec<String> },
    /// The paging cursors did not advance.
    #[error("GET {url}: paging does not advance (stopped after {pages} pages)")]
    PagingStuck { url: String, pages: usize },
}

impl QueryError {
    /// The URL the error concerns.
    pub fn url(&self) -> &str {
        match self {
            QueryError::BadUrl { url, .. }
            | QueryError::Timeout { url, .. }
            | QueryError::Transport { url, .. }
            | QueryError::Status { url, .. }
            | QueryError::Decode { url, .. }
            | QueryError::NoSupportedVersion { url, .. }
            | QueryError::PagingStuck { url, .. } => url,
        }
    }

    /// The HTTP status, when the registry answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            QueryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// URNs, versions, formats
// ---------------------------------------------------------------------------------------------

/// An NMOS URN split as `<base>[.<subclassification>][/<version>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Urn<'a> {
    /// E.g. `urn:x-nmos:transport:rtp` or `urn:x-nmos:control:sr-ctrl`.
    pub base: &'a str,
    /// E.g. `mcast` in `urn:x-nmos:transport:rtp.mcast`.
    pub subclassification: Option<&'a str>,
    /// E.g. `v1.1` in `urn:x-nmos:control:sr-ctrl/v1.1`.
    pub version: Option<&'a str>,
}

impl<'a> Urn<'a> {
    /// Splits a URN; anything is accepted (unknown URNs are normal).
    pub fn parse(s: &'a str) -> Urn<'a> {
        let (rest, version) = match s.rsplit_once('/') {
            Some((rest, v)) => (rest, Some(v)),
            None => (s, None),
        };
        let last_colon = rest.rfind(':').map_or(0, |i| i + 1);
        let (base, subclassification) = match rest[last_colon..].find('.') {
            Some(dot) => (
                &rest[..last_colon + dot],
                Some(&rest[last_colon + dot + 1..]),
            ),
            None => (rest, None),
        };
        Urn {
            base,
            subclassification,
            version,
        }
    }
}

/// An NMOS API version `v<major>.<minor>`, ordered numerically (`v1.12` > `v1.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: u32,
    pub minor: u32,
}

impl ApiVersion {
    pub const V1_2: ApiVersion = ApiVersion { major: 1, minor: 2 };
    pub const V1_3: ApiVersion = ApiVersion { major: 1, minor: 3 };

    /// Parses `v1.3` (a trailing `/` as in the API listing is accepted).
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let s = s.trim().trim_end_matches('/').strip_prefix('v')?;
        let (major, minor) = s.split_once('.')?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(major) || !digits(minor) {
            return None;
        }
        Some(ApiVersion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}", self.major, self.minor)
    }
}

/// The format of a source, flow or receiver (`urn:x-nmos:format:...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "String")]
pub enum Format {
    Video,
    Audio,
    Data,
    Mux,
    /// A format this code does not know (kept verbatim).
    Other(String),
}

impl From<String> for Format {
    fn from(s: String) -> Format {
        match Urn::parse(&s).base {
            "urn:x-nmos:format:video" => Format::Video,
            "urn:x-nmos:format:audio" => Format::Audio,
            "urn:x-nmos:format:data" => Format::Data,
            "urn:x-nmos:format:mux" => Format::Mux,
            _ => Format::Other(s),
        }
    }
}

impl Format {
    /// The format URN (`urn:x-nmos:format:video`, ... or the unknown URN as received).
    pub fn urn(&self) -> &str {
        match self {
            Format::Video => "urn:x-nmos:format:video",
            Format::Audio => "urn:x-nmos:format:audio",
            Format::Data => "urn:x-nmos:format:data",
            Format::Mux => "urn:x-nmos:format:mux",
            Format::Other(s) => s,
        }
    }

    /// The MOS `objType` for content of this format.
    pub fn mos_obj_type(&self) -> MosObjType {
        match self {
            Format::Video => MosObjType::Video,
            Format::Audio => MosObjType::Audio,
            _ => MosObjType::Other,
        }
    }
}

/// The MOS `objType` values (MOS 2.8.1: `STILL`, `AUDIO`, `VIDEO`, `OTHER`; senders are never
/// stills).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MosObjType {
    Video,
    Audio,
    Other,
}

impl MosObjType {
    pub fn as_str(self) -> &'static str {
        match self {
            MosObjType::Video => "VIDEO",
            MosObjType::Audio => "AUDIO",
            MosObjType::Other => "OTHER",
        }
    }
}

impl fmt::Display for MosObjType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

/// The keys every IS-04 resource has.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ResourceCore {
    pub id: String,
    /// TAI `<seconds>:<nanoseconds>`; changes on every modification.
    pub version: String,
    pub label: String,
    pub description: String,
    pub tags: BTreeMap<String, Vec<String>>,
}

/// `api.endpoints[]` of a node.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NodeEndpoint {
    pub host: String,
    pub port: u16,
    #[serde(default = "default_http")]
    pub protocol: String,
    #[serde(default)]
    pub authorization: bool,
}

fn default_http() -> String {
    "http".to_owned()
}

/// `api` of a node.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NodeApi {
    pub versions: Vec<String>,
    pub endpoints: Vec<NodeEndpoint>,
}

/// `services[]` of a node, and `controls[]` of a device share this shape.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Service {
    pub href: String,
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub authorization: bool,
}

/// An IS-04 node.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Node {
    #[serde(flatten)]
    pub core: ResourceCore,
    #[serde(default)]
    pub href: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub api: NodeApi,
    #[serde(default)]
    pub services: Vec<Service>,
}

/// One entry of a device's `controls`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Control {
    pub href: String,
    #[serde(rename = "type")]
    pub type_: String,
    /// `true` when the endpoint wants an IS-10 bearer token.
    #[serde(default)]
    pub authorization: bool,
}

/// The control APIs the gateway drives, each at the one version it implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlKind {
    /// IS-05 Connection API v1.1 ([`CONTROL_IS05_V1_1`]).
    ConnectionV1_1,
    /// IS-08 Channel Mapping API v1.0 ([`CONTROL_IS08_V1_0`]).
    ChannelMappingV1_0,
}

impl ControlKind {
    /// The exact control type URN.
    pub fn urn(self) -> &'static str {
        match self {
            ControlKind::ConnectionV1_1 => CONTROL_IS05_V1_1,
            ControlKind::ChannelMappingV1_0 => CONTROL_IS08_V1_0,
        }
    }

    /// Whether a `controls[].type` designates this API at exactly this version.
    pub fn matches(self, control_type: &str) -> bool {
        let want = Urn::parse(self.urn());
        let got = Urn::parse(control_type.trim());
        got.base == want.base
            && got.subclassification == want.subclassification
            && got.version == want.version
    }
}

/// An IS-04 device.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Device {
    #[serde(flatten)]
    pub core: ResourceCore,
    #[serde(default)]
    pub node_id: String,
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub controls: Vec<Control>,
    /// Deprecated and possibly stale: use the senders' `device_id`.
    #[serde(default)]
    pub senders: Vec<String>,
    /// Deprecated and possibly stale: use the receivers' `device_id`.
    #[serde(default)]
    pub receivers: Vec<String>,
}

impl Device {
    /// The device's controls of one kind, in advertised order (try them in that order).
    pub fn controls_of(&self, kind: ControlKind) -> Vec<&Control> {
        self.controls
            .iter()
            .filter(|c| kind.matches(&c.type_))
            .collect()
    }
}

/// A rational number (`grain_rate`, `sample_rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Rational {
    pub numerator: i64,
    #[serde(default = "one")]
    pub denominator: i64,
}

fn one() -> i64 {
    1
}

/// `channels[]` of an audio source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Channel {
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub symbol: Option<String>,
}

/// An IS-04 source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Source {
    #[serde(flatten)]
    pub core: ResourceCore,
    pub format: Format,
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub parents: Vec<String>,
    #[serde(default)]
    pub clock_name: Option<String>,
    #[serde(default)]
    pub grain_rate: Option<Rational>,
    #[serde(default)]
    pub channels: Vec<Channel>,
}

/// An IS-04 flow (all flow kinds in one struct; kind-specific keys are optional).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Flow {
    #[serde(flatten)]
    pub core: ResourceCore,
    pub format: Format,
    #[serde(default)]
    pub source_id: String,
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub parents: Vec<String>,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub grain_rate: Option<Rational>,
    #[serde(default)]
    pub frame_width: Option<u32>,
    #[serde(default)]
    pub frame_height: Option<u32>,
    #[serde(default)]
    pub colorspace: Option<String>,
    #[serde(default)]
    pub interlace_mode: Option<String>,
    #[serde(default)]
    pub sample_rate: Option<Rational>,
    #[serde(default)]
    pub bit_depth: Option<u32>,
}

/// `subscription` of a sender.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SenderSubscription {
    /// Non-null only for a unicast push sender aimed at an NMOS receiver.
    pub receiver_id: Option<String>,
    pub active: bool,
}

/// An IS-04 sender (the gateway's MOS objects).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Sender {
    #[serde(flatten)]
    pub core: ResourceCore,
    /// `None` when no flow is routed into the sender.
    #[serde(default)]
    pub flow_id: Option<String>,
    #[serde(default)]
    pub transport: String,
    #[serde(default)]
    pub device_id: String,
    /// SDP URL; `None` when the transport needs no transport file.
    #[serde(default)]
    pub manifest_href: Option<String>,
    #[serde(default)]
    pub interface_bindings: Vec<String>,
    #[serde(default)]
    pub subscription: SenderSubscription,
}

/// `subscription` of a receiver: what it takes right now.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ReceiverSubscription {
    /// The NMOS sender it receives from (`None` unless active and fed by an NMOS sender).
    pub sender_id: Option<String>,
    pub active: bool,
}

/// `caps` of a receiver (only what the gateway reads).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ReceiverCaps {
    pub media_types: Vec<String>,
}

/// An IS-04 receiver.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Receiver {
    #[serde(flatten)]
    pub core: ResourceCore,
    pub format: Format,
    #[serde(default)]
    pub caps: ReceiverCaps,
    #[serde(default)]
    pub transport: String,
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub interface_bindings: Vec<String>,
    #[serde(default)]
    pub subscription: ReceiverSubscription,
}

impl Receiver {
    /// Whether the catalogue shows this receiver taking `sender_id` (how a take is confirmed).
    pub fn is_receiving_from(&self, sender_id: &str) -> bool {
        self.subscription.active && self.subscription.sender_id.as_deref() == Some(sender_id)
    }
}

/// Anything with a [`ResourceCore`].
pub trait Resource: DeserializeOwned {
    /// The Query API collection path (`senders`, ...).
    const PATH: &'static str;
    fn core(&self) -> &ResourceCore;
    fn id(&self) -> &str {
        &self.core().id
    }
}

macro_rules! resource {
    ($ty:ty, $path:literal) => {
        impl Resource for $ty {
            const PATH: &'static str = $path;
            fn core(&self) -> &ResourceCore {
                &self.core
            }
        }
    };
}

resource!(Node, "nodes");
resource!(Device, "devices");
resource!(Source, "sources");
resource!(Flow, "flows");
resource!(Sender, "senders");
resource!(Receiver, "receivers");

/// The six IS-04 resource types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Node,
    Device,
    Source,
    Flow,
    Sender,
    Receiver,
}

impl ResourceType {
    /// Every type, in registration order (a node before its devices, ..., senders, receivers).
    pub const ALL: [ResourceType; 6] = [
        ResourceType::Node,
        ResourceType::Device,
        ResourceType::Source,
        ResourceType::Flow,
        ResourceType::Sender,
        ResourceType::Receiver,
    ];

    /// The collection name (`nodes`, `devices`, ...), as in Query API paths.
    pub fn path(self) -> &'static str {
        match self {
            ResourceType::Node => "nodes",
            ResourceType::Device => "devices",
            ResourceType::Source => "sources",
            ResourceType::Flow => "flows",
            ResourceType::Sender => "senders",
            ResourceType::Receiver => "receivers",
        }
    }

    /// The type of a collection name or subscription topic (`senders`, `/senders/`,
    /// `/senders`); `None` for anything else.
    pub fn from_path(path: &str) -> Option<ResourceType> {
        let name = path.trim().trim_matches('/');
        ResourceType::ALL.into_iter().find(|t| t.path() == name)
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

/// A resource that could not be taken into the catalogue.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The JSON is not a valid resource of this type.
    #[error("{resource_type} {id:?}: not a valid resource: {detail}")]
    Invalid {
        resource_type: ResourceType,
        id: String,
        detail: String,
    },
    /// The body's `id` is not the id it was announced under.
    #[error("{resource_type} {id:?}: body has id {body_id:?}")]
    IdMismatch {
        resource_type: ResourceType,
        id: String,
        body_id: String,
    },
    /// The resource has no usable id.
    #[error("{resource_type}: resource without an id")]
    MissingId { resource_type: ResourceType },
}

// ---------------------------------------------------------------------------------------------
// Catalogue
// ---------------------------------------------------------------------------------------------

/// A snapshot of the registry, keyed by resource id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalogue {
    /// The Query API version the snapshot was read at.
    pub api_version: Option<ApiVersion>,
    pub nodes: BTreeMap<String, Arc<Node>>,
    pub devices: BTreeMap<String, Arc<Device>>,
    pub sources: BTreeMap<String, Arc<Source>>,
    pub flows: BTreeMap<String, Arc<Flow>>,
    pub senders: BTreeMap<String, Arc<Sender>>,
    pub receivers: BTreeMap<String, Arc<Receiver>>,
}

fn by_id<T: Resource>(items: Vec<T>) -> BTreeMap<String, Arc<T>> {
    items
        .into_iter()
        .map(|r| (r.id().to_owned(), Arc::new(r)))
        .collect()
}

/// [`Catalogue::apply`] on one typed map.
fn apply_in<T: Resource + PartialEq>(
    map: &mut BTreeMap<String, Arc<T>>,
    resource_type: ResourceType,
    id: &str,
    value: Option<serde_json::Value>,
) -> Result<bool, ApplyError> {
    let Some(value) = value else {
        return Ok(map.remove(id).is_some());
    };
    if id.is_empty() {
        return Err(ApplyError::MissingId { resource_type });
    }
    let parsed: T = serde_json::from_value(value).map_err(|e| ApplyError::Invalid {
        resource_type,
        id: id.to_owned(),
        detail: e.to_string(),
    })?;
    if parsed.id() != id {
        return Err(ApplyError::IdMismatch {
            resource_type,
            id: id.to_owned(),
            body_id: parsed.id().to_owned(),
        });
    }
    if map.get(id).map(Arc::as_ref) == Some(&parsed) {
        return Ok(false);
    }
    map.insert(id.to_owned(), Arc::new(parsed));
    Ok(true)
}

impl Catalogue {
    /// Builds a catalogue from lists (a later duplicate id replaces an earlier one).
    pub fn from_lists(
        nodes: Vec<Node>,
        devices: Vec<Device>,
        sources: Vec<Source>,
        flows: Vec<Flow>,
        senders: Vec<Sender>,
        receivers: Vec<Receiver>,
    ) -> Catalogue {
        Catalogue {
            api_version: None,
            nodes: by_id(nodes),
            devices: by_id(devices),
            sources: by_id(sources),
            flows: by_id(flows),
            senders: by_id(senders),
            receivers: by_id(receivers),
        }
    }

    /// Adds, replaces (`Some(json)`) or removes (`None`) one resource. Returns whether the
    /// catalogue changed. A body that does not parse, or whose `id` differs from `id`, is
    /// refused and the catalogue is left as it was.
    pub fn apply(
        &mut self,
        resource_type: ResourceType,
        id: &str,
        value: Option<serde_json::Value>,
    ) -> Result<bool, ApplyError> {
        match resource_type {
            ResourceType::Node => apply_in(&mut self.nodes, resource_type, id, value),
            ResourceType::Device => apply_in(&mut self.devices, resource_type, id, value),
            ResourceType::Source => apply_in(&mut self.sources, resource_type, id, value),
            ResourceType::Flow => apply_in(&mut self.flows, resource_type, id, value),
            ResourceType::Sender => apply_in(&mut self.senders, resource_type, id, value),
            ResourceType::Receiver => apply_in(&mut self.receivers, resource_type, id, value),
        }
    }

    /// Replaces every resource of one type with `values` (a full listing). Resources that do
    /// not parse are skipped and returned as errors; the others are taken. Returns whether the
    /// catalogue changed, and the errors.
    pub fn replace_type(
        &mut self,
        resource_type: ResourceType,
        values: Vec<serde_json::Value>,
    ) -> (bool, Vec<ApplyError>) {
        let mut fresh = Catalogue::default();
        let mut errors = Vec::new();
        for value in values {
            let id = value
                .get("id")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned);
            let result = match id {
                Some(id) => fresh.apply(resource_type, &id, Some(value)),
                None => Err(ApplyError::MissingId { resource_type }),
            };
            if let Err(e) = result {
                errors.push(e);
            }
        }
        let changed = self.take_type(resource_type, fresh);
        (changed, errors)
    }

    /// Copies one type's map from `other` into `self`; whether anything changed.
    fn take_type(&mut self, resource_type: ResourceType, other: Catalogue) -> bool {
        fn swap<T: PartialEq>(a: &mut BTreeMap<String, T>, b: BTreeMap<String, T>) -> bool {
            let changed = *a != b;
            *a = b;
            changed
        }
        match resource_type {
            ResourceType::Node => swap(&mut self.nodes, other.nodes),
            ResourceType::Device => swap(&mut self.devices, other.devices),
            ResourceType::Source => swap(&mut self.sources, other.sources),
            ResourceType::Flow => swap(&mut self.flows, other.flows),
            ResourceType::Sender => swap(&mut self.senders, other.senders),
            ResourceType::Receiver => swap(&mut self.receivers, other.receivers),
        }
    }

    /// Adds every resource of `other` (replacing same ids); used to merge several nodes.
    pub fn merge(&mut self, other: &Catalogue) {
        fn add<T: Clone>(a: &mut BTreeMap<String, T>, b: &BTreeMap<String, T>) {
            a.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        add(&mut self.nodes, &other.nodes);
        add(&mut self.devices, &other.devices);
        add(&mut self.sources, &other.sources);
        add(&mut self.flows, &other.flows);
        add(&mut self.senders, &other.senders);
        add(&mut self.receivers, &other.receivers);
    }

    /// Number of resources of one type.
    pub fn count(&self, resource_type: ResourceType) -> usize {
        match resource_type {
            ResourceType::Node => self.nodes.len(),
            ResourceType::Device => self.devices.len(),
            ResourceType::Source => self.sources.len(),
            ResourceType::Flow => self.flows.len(),
            ResourceType::Sender => self.senders.len(),
            ResourceType::Receiver => self.receivers.len(),
        }
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id).map(Arc::as_ref)
    }

    pub fn sender(&self, id: &str) -> Option<&Sender> {
        self.senders.get(id).map(Arc::as_ref)
    }

    pub fn receiver(&self, id: &str) -> Option<&Receiver> {
        self.receivers.get(id).map(Arc::as_ref)
    }

    pub fn device(&self, id: &str) -> Option<&Device> {
        self.devices.get(id).map(Arc::as_ref)
    }

    pub fn flow(&self, id: &str) -> Option<&Flow> {
        self.flows.get(id).map(Arc::as_ref)
    }

    /// The flow currently routed into a sender (`None` if the sender is unknown, has
    /// `flow_id: null`, or the flow is not in the catalogue).
    pub fn sender_flow(&self, sender_id: &str) -> Option<&Flow> {
        let flow_id = self.sender(sender_id)?.flow_id.as_deref()?;
        self.flow(flow_id)
    }

    /// The format of a sender's flow.
    pub fn sender_format(&self, sender_id: &str) -> Option<&Format> {
        self.sender_flow(sender_id).map(|f| &f.format)
    }

    /// The MOS `objType` of a sender: from its flow's format; `OTHER` when the sender has no
    /// (known) flow; `None` when the sender itself is unknown.
    pub fn sender_obj_type(&self, sender_id: &str) -> Option<MosObjType> {
        self.sender(sender_id)?;
        Some(
            self.sender_format(sender_id)
                .map_or(MosObjType::Other, Format::mos_obj_type),
        )
    }

    /// A device's label.
    pub fn device_label(&self, device_id: &str) -> Option<&str> {
        self.device(device_id).map(|d| d.core.label.as_str())
    }

    /// The device a sender belongs to.
    pub fn sender_device(&self, sender_id: &str) -> Option<&Device> {
        self.device(&self.sender(sender_id)?.device_id)
    }

    /// The device a receiver belongs to.
    pub fn receiver_device(&self, receiver_id: &str) -> Option<&Device> {
        self.device(&self.receiver(receiver_id)?.device_id)
    }

    /// A device's controls of one kind (exact type and version), in advertised order; empty if
    /// the device is unknown or has none.
    pub fn controls(&self, device_id: &str, kind: ControlKind) -> Vec<&Control> {
        self.device(device_id)
            .map(|d| d.controls_of(kind))
            .unwrap_or_default()
    }

    /// A device's IS-05 v1.1 Connection API controls.
    pub fn connection_controls(&self, device_id: &str) -> Vec<&Control> {
        self.controls(device_id, ControlKind::ConnectionV1_1)
    }

    /// A device's IS-08 v1.0 Channel Mapping API controls.
    pub fn channel_mapping_controls(&self, device_id: &str) -> Vec<&Control> {
        self.controls(device_id, ControlKind::ChannelMappingV1_0)
    }

    /// The senders whose `device_id` is this device (the device's own `senders` is deprecated).
    pub fn senders_of_device<'a>(&'a self, device_id: &'a str) -> impl Iterator<Item = &'a Sender> {
        self.senders
            .values()
            .map(Arc::as_ref)
            .filter(move |s| s.device_id == device_id)
    }

    /// The receivers whose `device_id` is this device.
    pub fn receivers_of_device<'a>(
        &'a self,
        device_id: &'a str,
    ) -> impl Iterator<Item = &'a Receiver> {
        self.receivers
            .values()
            .map(Arc::as_ref)
            .filter(move |r| r.device_id == device_id)
    }
}

// ---------------------------------------------------------------------------------------------
// Query client
// ---------------------------------------------------------------------------------------------

/// Settings of a [`QueryClient`].
#[derive(Debug, Clone)]
pub struct QueryClientConfig {
    /// Timeout of each HTTP call (each page is one call).
    pub timeout: Duration,
    /// Timeout of establishing a connection.
    pub connect_timeout: Duration,
    /// `paging.limit` asked for (the registry may cap it).
    pub page_limit: u32,
    /// PEM file of the CAs that sign the registry's certificate (BCP-003-01); `None` = the
    /// built-in roots.
    pub ca_bundle: Option<std::path::PathBuf>,
    /// IS-10 bearer tokens for a registry that requires them; `None` = no token sent.
    pub tokens: Option<std::sync::Arc<dyn super::http::TokenSource>>,
}

impl Default for QueryClientConfig {
    fn default() -> Self {
        QueryClientConfig {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            page_limit: 100,
            ca_bundle: None,
            tokens: None,
        }
    }
}

/// A client of one registry's Query API.
#[derive(Debug, Clone)]
pub struct QueryClient {
    http: reqwest::Client,
    /// `.../x-nmos/query` (no trailing slash).
    root: Url,
    timeout: Duration,
    page_limit: u32,
    version: std::sync::Arc<OnceCell<ApiVersion>>,
    tokens: Option<std::sync::Arc<dyn super::http::TokenSource>>,
}

impl QueryClient {
    /// A client for the registry at `base`: `http://host:port`, or a URL already ending in
    /// `/x-nmos/query/` or `/x-nmos/query/<version>/` (the version is negotiated anyway).
    pub fn new(base: &str, config: QueryClientConfig) -> Result<QueryClient, QueryError> {
        let root = query_root(base)?;
        let builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout);
        let builder = super::http::trusting(builder, config.ca_bundle.as_deref()).map_err(|e| {
            QueryError::BadUrl {
                url: base.to_owned(),
                detail: e.to_string(),
            }
        })?;
        let http = builder.build().map_err(|e| QueryError::BadUrl {
            url: base.to_owned(),
            detail: e.to_string(),
        })?;
        Ok(QueryClient {
            http,
            root,
            timeout: config.timeout,
            page_limit: config.page_limit.max(1),
            version: std::sync::Arc::new(OnceCell::new()),
            tokens: config.tokens,
        })
    }

    /// The same client (same connections, same negotiated version) with another per-call
    /// timeout.
    pub fn with_timeout(&self, timeout: Duration) -> QueryClient {
        QueryClient {
            timeout,
            ..self.clone()
        }
    }

    /// Uses this version without asking the registry.
    pub fn with_version(self, version: ApiVersion) -> QueryClient {
        QueryClient {
            version: std::sync::Arc::new(OnceCell::new_with(Some(version))),
            ..self
        }
    }

    /// `.../x-nmos/query/` as a string.
    pub fn root_url(&self) -> String {
        format!("{}/", self.root)
    }

    /// The version in use: v1.3 when offered, else v1.2 (asked once from `GET /x-nmos/query/`).
    pub async fn api_version(&self) -> Result<ApiVersion, QueryError> {
        self.version
            .get_or_try_init(|| self.negotiate())
            .await
            .copied()
    }

    async fn negotiate(&self) -> Result<ApiVersion, QueryError> {
        let url = self.root_url();
        let (_, body) = self.get(&url).await?;
        let offered: Vec<String> = decode(&url, &body)?;
        let versions: Vec<ApiVersion> = offered
            .iter()
            .filter_map(|v| ApiVersion::parse(v))
            .collect();
        [ApiVersion::V1_3, ApiVersion::V1_2]
            .into_iter()
            .find(|want| versions.contains(want))
            .ok_or(QueryError::NoSupportedVersion { url, offered })
    }

    /// One GET with this client's timeout: status checked, body read.
    async fn get(&self, url: &str) -> Result<(HeaderMap, String), QueryError> {
        let transport = |source: reqwest::Error| {
            if source.is_timeout() {
                QueryError::Timeout {
                    url: url.to_owned(),
                    timeout: self.timeout,
                }
            } else {
                QueryError::Transport {
                    url: url.to_owned(),
                    source,
                }
            }
        };
        let mut request = self
            .http
            .get(url)
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(bearer) = self.authorization() {
            request = request.header(reqwest::header::AUTHORIZATION, bearer);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(transport)?;
        if !status.is_success() {
            return Err(QueryError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
                body: excerpt(&body),
            });
        }
        Ok((headers, body))
    }

    /// The URL of a collection with the given filters (basic queries: `attr=value`).
    fn collection_url(
        &self,
        version: ApiVersion,
        path: &str,
        filters: &[(&str, &str)],
        paging: bool,
    ) -> Url {
        let mut url = self.root.clone();
        url.set_path(&format!("{}/{version}/{path}", self.root.path()));
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in filters {
                q.append_pair(k, v);
            }
            if paging {
                q.append_pair("paging.order", "create");
                q.append_pair("paging.since", "0:0");
                q.append_pair("paging.limit", &self.page_limit.to_string());
            }
        }
        url
    }

    /// Every resource of a collection matching `filters`, all pages read.
    pub async fn list<T: Resource>(&self, filters: &[(&str, &str)]) -> Result<Vec<T>, QueryError> {
        let version = self.api_version().await?;
        let first = self.collection_url(version, T::PATH, filters, true);
        match self.list_pages(first).await {
            // Paging is a "should"; a registry without it answers 501.
            Err(QueryError::Status { status: 501, .. }) => {
                let plain = self.collection_url(version, T::PATH, filters, false);
                let (_, body) = self.get(plain.as_str()).await?;
                decode(plain.as_str(), &body)
            }
            other => other,
        }
    }

    async fn list_pages<T: DeserializeOwned>(&self, first: Url) -> Result<Vec<T>, QueryError> {
        let mut all = Vec::new();
        let mut url = first;
        for pages in 1..=MAX_PAGES {
            let (headers, body) = self.get(url.as_str()).await?;
            let page: Vec<T> = decode(url.as_str(), &body)?;
            if !headers.contains_key("x-paging-limit") || page.is_empty() {
                // Not paged: that was the whole collection. Paged and empty: the end.
                all.extend(page);
                return Ok(all);
            }
            all.extend(page);
            let next = next_page_url(&url, &headers).ok_or_else(|| QueryError::Decode {
                url: url.to_string(),
                detail: "paged response without a next link or X-Paging-Until".to_owned(),
                body: String::new(),
            })?;
            if next == url {
                return Err(QueryError::PagingStuck {
                    url: url.to_string(),
                    pages,
                });
            }
            url = next;
        }
        Err(QueryError::PagingStuck {
            url: url.to_string(),
            pages: MAX_PAGES,
        })
    }

    /// Every resource of one type as raw JSON (all pages read), for callers that take
    /// resources one by one and skip the ones that do not parse.
    pub async fn list_raw(
        &self,
        resource_type: ResourceType,
    ) -> Result<Vec<serde_json::Value>, QueryError> {
        let version = self.api_version().await?;
        let first = self.collection_url(version, resource_type.path(), &[], true);
        match self.list_pages(first).await {
            Err(QueryError::Status { status: 501, .. }) => {
                let plain = self.collection_url(version, resource_type.path(), &[], false);
                let (_, body) = self.get(plain.as_str()).await?;
                decode(plain.as_str(), &body)
            }
            other => other,
        }
    }

    /// The HTTP client (shared connection pool), for other calls to the same registry.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The `Authorization` header value (IS-10 bearer token) for the registry, when tokens
    /// are configured and one is available.
    pub fn authorization(&self) -> Option<String> {
        let tokens = self.tokens.as_ref()?;
        match tokens.bearer() {
            Ok(token) => Some(format!("Bearer {token}")),
            Err(why) => {
                tracing::debug!("no bearer token for the registry: {why}");
                None
            }
        }
    }

    pub async fn list_nodes(&self) -> Result<Vec<Node>, QueryError> {
        self.list(&[]).await
    }

    pub async fn list_devices(&self) -> Result<Vec<Device>, QueryError> {
        self.list(&[]).await
    }

    pub async fn list_sources(&self) -> Result<Vec<Source>, QueryError> {
        self.list(&[]).await
    }

    pub async fn list_flows(&self) -> Result<Vec<Flow>, QueryError> {
        self.list(&[]).await
    }

    pub async fn list_senders(&self) -> Result<Vec<Sender>, QueryError> {
        self.list(&[]).await
    }

    pub async fn list_receivers(&self) -> Result<Vec<Receiver>, QueryError> {
        self.list(&[]).await
    }

    /// One resource by id (`GET /{type}/{id}`).
    pub async fn get_resource<T: Resource>(&self, id: &str) -> Result<T, QueryError> {
        let version = self.api_version().await?;
        let mut url = self.root.clone();
        url.path_segments_mut()
            .map_err(|()| QueryError::BadUrl {
                url: self.root.to_string(),
                detail: "cannot be a base".to_owned(),
            })?
            .push(&version.to_string())
            .push(T::PATH)
            .push(id);
        let (_, body) = self.get(url.as_str()).await?;
        decode(url.as_str(), &body)
    }

    /// A snapshot of every collection.
    pub async fn catalogue(&self) -> Result<Catalogue, QueryError> {
        let version = self.api_version().await?;
        let (nodes, devices, sources, flows, senders, receivers) = tokio::try_join!(
            self.list_nodes(),
            self.list_devices(),
            self.list_sources(),
            self.list_flows(),
            self.list_senders(),
            self.list_receivers(),
        )?;
        let mut catalogue =
            Catalogue::from_lists(nodes, devices, sources, flows, senders, receivers);
        catalogue.api_version = Some(version);
        Ok(catalogue)
    }
}

fn decode<T: DeserializeOwned>(url: &str, body: &str) -> Result<T, QueryError> {
    serde_json::from_str(body).map_err(|e| QueryError::Decode {
        url: url.to_owned(),
        detail: e.to_string(),
        body: excerpt(body),
    })
}

/// `.../x-nmos/query` (no trailing slash) from what the operator configured.
fn query_root(base: &str) -> Result<Url, QueryError> {
    let bad = |detail: &str| QueryError::BadUrl {
        url: base.to_owned(),
        detail: detail.to_owned(),
    };
    let mut url = Url::parse(base.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("scheme must be http or https"));
    }
    if url.cannot_be_a_base() {
        return Err(bad("not a base URL"));
    }
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_end_matches('/').to_owned();
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments
        .last()
        .is_some_and(|s| ApiVersion::parse(s).is_some())
    {
        segments.pop();
    }
    if segments.ends_with(&["x-nmos", "query"]) {
        segments.truncate(segments.len() - 2);
    }
    let mut new_path = String::new();
    for s in segments {
        new_path.push('/');
        new_path.push_str(s);
    }
    new_path.push_str("/x-nmos/query");
    url.set_path(&new_path);
    Ok(url)
}

/// The URL of the next page: the `Link` `rel="next"` target when it stays on the same origin,
/// else the current URL with `paging.since` set to `X-Paging-Until`.
fn next_page_url(current: &Url, headers: &HeaderMap) -> Option<Url> {
    let from_link = headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_link_header)
        .find(|(_, rels)| {
            rels.split_whitespace()
                .any(|r| r.eq_ignore_ascii_case("next"))
        })
        .and_then(|(target, _)| current.join(&target).ok())
        .filter(|u| u.origin() == current.origin());
    if from_link.is_some() {
        return from_link;
    }
    let until = headers
        .get("x-paging-until")?
        .to_str()
        .ok()?
        .trim()
        .to_owned();
    let mut next = current.clone();
    let kept: Vec<(String, String)> = current
        .query_pairs()
        .filter(|(k, _)| k != "paging.since" && k != "paging.until")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    next.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("paging.since", &until);
    Some(next)
}

/// `<url>; rel="next", <url>; rel="prev"` → `[(url, "next"), (url, "prev")]`.
fn parse_link_header(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let target = rest[open + 1..open + close].trim().to_owned();
        rest = &rest[open + close + 1..];
        // Parameters run until the next link (a `,` followed by `<`).
        let end = rest
            .find(",")
            .filter(|&c| rest[c + 1..].trim_start().starts_with('<'))
            .unwrap_or_else(|| {
                // A comma inside a quoted parameter is rare; look for the next `<` instead.
                rest.find('<').unwrap_or(rest.len())
            });
        let params = &rest[..end];
        let rel = params
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("rel"))
            .map(|(_, v)| v.trim().trim_matches('"').to_owned())
            .unwrap_or_default();
        out.push((target, rel));
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urns_split() {
        let u = Urn::parse("urn:x-nmos:transport:rtp.mcast");
        assert_eq!(u.base, "urn:x-nmos:transport:rtp");
        assert_eq!(u.subclassification, Some("mcast"));
        assert_eq!(u.version, None);
        let c = Urn::parse(CONTROL_IS05_V1_1);
        assert_eq!(c.base, "urn:x-nmos:control:sr-ctrl");
        assert_eq!(c.version, Some("v1.1"));
        assert!(ControlKind::ConnectionV1_1.matches("urn:x-nmos:control:sr-ctrl/v1.1"));
        assert!(!ControlKind::ConnectionV1_1.matches("urn:x-nmos:control:sr-ctrl/v1.10"));
        assert!(!ControlKind::ConnectionV1_1.matches("urn:x-nmos:control:sr-ctrl"));
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(ApiVersion::parse("v1.12/").unwrap() > ApiVersion::parse("v1.5").unwrap());
        assert_eq!(ApiVersion::parse("1.3"), None);
        assert_eq!(ApiVersion::V1_3.to_string(), "v1.3");
    }

    #[test]
    fn roots_normalise() {
        for base in [
            "http://r:8080",
            "http://r:8080/",
            "http://r:8080/x-nmos/query/",
            "http://r:8080/x-nmos/query/v1.3/",
        ] {
            assert_eq!(
                query_root(base).unwrap().as_str(),
                "http://r:8080/x-nmos/query"
            );
        }
        assert!(query_root("ftp://r/").is_err());
    }

    #[test]
    fn link_headers_parse() {
        let links = parse_link_header(
            r#"<http://r/x-nmos/query/v1.3/senders?paging.since=2:0&paging.limit=2>; rel="next", </x?a=1>; rel="prev""#,
        );
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].1, "next");
        assert!(links[0].0.ends_with("paging.since=2:0&paging.limit=2"));
        assert_eq!(links[1], ("/x?a=1".to_owned(), "prev".to_owned()));
    }

    #[test]
    fn resource_types_from_topics() {
        assert_eq!(
            ResourceType::from_path("/senders/"),
            Some(ResourceType::Sender)
        );
        assert_eq!(ResourceType::from_path("nodes"), Some(ResourceType::Node));
        assert_eq!(ResourceType::from_path("/subscriptions/"), None);
    }

    #[test]
    fn apply_and_replace_type() {
        let id = "02000001-0000-4000-8000-000000000000";
        let dev = |label: &str| serde_json::json!({"id": id, "version": "1:0", "label": label, "node_id": "n"});
        let mut c = Catalogue::default();
        assert!(c.apply(ResourceType::Device, id, Some(dev("a"))).unwrap());
        assert!(!c.apply(ResourceType::Device, id, Some(dev("a"))).unwrap());
        assert!(matches!(
            c.apply(ResourceType::Device, "other", Some(dev("b"))),
            Err(ApplyError::IdMismatch { .. })
        ));
        assert!(matches!(
            c.apply(ResourceType::Flow, id, Some(dev("no format"))),
            Err(ApplyError::Invalid { .. })
        ));
        let (changed, errors) = c.replace_type(
            ResourceType::Device,
            vec![
                dev("b"),
                serde_json::json!({"label": "no id"}),
                serde_json::json!(3),
            ],
        );
        assert!(changed);
        assert_eq!(errors.len(), 2);
        assert_eq!(c.device_label(id), Some("b"));
        let (changed, _) = c.replace_type(ResourceType::Device, vec![]);
        assert!(changed);
        assert_eq!(c.count(ResourceType::Device), 0);
        assert!(!c.apply(ResourceType::Device, id, None).unwrap());
    }
}
