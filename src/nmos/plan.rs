//! What resolution produces and takes consume: a planned route per item, or the reason it has
//! none. Plain data, no I/O; the contract between [`resolve`](super) (running order + catalogue
//! + mapping → plans) and the take engine (plans → IS-05 / IS-08 requests).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

use super::is08_check::{ChannelMap, Is08Input, Is08Output, Violation};

/// Which item of which running order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemKey {
    /// roID.
    pub ro_id: String,
    /// storyID.
    pub story_id: String,
    /// itemID.
    pub item_id: String,
}

/// One receiver to connect to a sender (or to disconnect when `sender_id` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The receiver's UUID.
    pub receiver_id: String,
    /// The receiver's label (for logs and status texts).
    pub receiver_label: String,
    /// The receiver's device UUID.
    pub device_id: String,
    /// IS-05 v1.1 Connection API base of the receiver's device, from its `controls`
    /// (ends with `/`, e.g. `http://host/x-nmos/connection/v1.1/`).
    pub connection_api: String,
    /// `true` when that control requires an IS-10 bearer token.
    pub authorization: bool,
    /// The sender's UUID; `None` = disconnect (master_enable false, sender_id null).
    pub sender_id: Option<String>,
    /// The sender's IS-04 `manifest_href` (where its transport file is), if any.
    pub sender_manifest_href: Option<String>,
    /// The sender's IS-04 `version` when the item was resolved: a take prepared at READY
    /// under another version fetches the transport file again (the stream may have moved
    /// behind the same `manifest_href`). Not part of the routing.
    pub sender_version: Option<String>,
    /// IS-05 v1.1 Connection API base of the sender's device, if it has one (the transport
    /// file is also at `single/senders/{id}/transportfile`).
    pub sender_connection_api: Option<String>,
    /// `true` when the sender's device's connection control requires an IS-10 bearer
    /// token: the transport file is fetched with one (the receiver's control may differ).
    pub sender_authorization: bool,
    /// The sender's transport (`urn:x-nmos:transport:rtp`...), to tell whether a transport file
    /// is needed.
    pub transport: String,
    /// The receiver's legs (its IS-04 `interface_bindings`: 2 for SMPTE 2022-7), so that the
    /// staged `transport_params` has one element per leg.
    pub receiver_legs: usize,
}

/// An IS-08 map to apply on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioMap {
    /// The device's UUID.
    pub device_id: String,
    /// IS-08 v1.0 Channel Mapping API base of the device, from its `controls` (ends with `/`).
    pub channel_mapping_api: String,
    /// `true` when that control requires an IS-10 bearer token.
    pub authorization: bool,
    /// The map: outputs (and only those) to change.
    pub map: ChannelMap,
}

/// A device's IS-08 inputs and outputs with their constraints (`GET io`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceIo {
    /// Inputs by id.
    pub inputs: BTreeMap<String, Is08Input>,
    /// Outputs by id.
    pub outputs: BTreeMap<String, Is08Output>,
}

/// A route planned for one item: what a take does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The item's objID (a sender UUID, a preset's objID or a bound placeholder).
    pub object_id: String,
    /// The destination (or preset) name the route goes to, for logs and statuses.
    pub destination: String,
    /// Receivers to connect, in configuration order.
    pub connections: Vec<Connection>,
    /// IS-08 maps to apply, in configuration order.
    pub audio_maps: Vec<AudioMap>,
    /// A scheduled (absolute) activation time, from the item's metadata override.
    pub scheduled: Option<DateTime<Utc>>,
}

impl Route {
    /// The receivers this route drives.
    pub fn receiver_ids(&self) -> impl Iterator<Item = &str> {
        self.connections.iter().map(|c| c.receiver_id.as_str())
    }

    /// Whether `other` drives the devices exactly as this route does, only names differing
    /// (the destination's, the receivers' labels) or the objID that resolved to it.
    pub fn same_routing(&self, other: &Route) -> bool {
        self.scheduled == other.scheduled
            && self.audio_maps == other.audio_maps
            && self.connections.len() == other.connections.len()
            && self
                .connections
                .iter()
                .zip(&other.connections)
                .all(|(a, b)| a.same_routing(b))
    }
}

impl Connection {
    /// Whether `other` connects the same sender to the same receiver in the same way (the
    /// receiver's label aside).
    pub fn same_routing(&self, other: &Connection) -> bool {
        let Connection {
            receiver_id,
            receiver_label: _,
            device_id,
            connection_api,
            authorization,
            sender_id,
            sender_manifest_href,
            sender_version: _,
            sender_connection_api,
            sender_authorization,
            transport,
            receiver_legs,
        } = self;
        *receiver_id == other.receiver_id
            && *device_id == other.device_id
            && *connection_api == other.connection_api
            && *authorization == other.authorization
            && *sender_id == other.sender_id
            && *sender_manifest_href == other.sender_manifest_href
            && *sender_connection_api == other.sender_connection_api
            && *sender_authorization == other.sender_authorization
            && *transport == other.transport
            && *receiver_legs == other.receiver_legs
    }
}

/// Why an item has no route. `Display` is the NOT READY status text's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// The objID is neither a sender, a preset nor a placeholder.
    UnknownObject(String),
    /// A placeholder (mosObjCreate) that no configuration binding names.
    PlaceholderNotBound(String),
    /// A sender that the configuration (preset, binding) names is not in the registry.
    SenderGone(String),
    /// A receiver of the destination is not in the registry.
    ReceiverGone(String),
    /// The item's destination (channel, override or default) is not configured.
    DestinationUnknown(String),
    /// No channel, no override and no default destination.
    NoDestination,
    /// The device has no IS-05 v1.1 control in its IS-04 `controls`.
    NoConnectionApi(String),
    /// The device has no IS-08 v1.0 control in its IS-04 `controls`.
    NoChannelMappingApi(String),
    /// The device's IS-08 io could not be read (yet).
    Is08IoUnknown(String),
    /// The IS-08 map breaks the device's constraints.
    Is08(Vec<Violation>),
    /// The item's metadata override cannot be used.
    BadOverride(String),
    /// A label in the configuration matches several resources (the text says which).
    Ambiguous(String),
    /// The device an IS-08 map is for is not in the registry.
    DeviceGone(String),
    /// No receiver of the destination takes the sender's flow (format, media type, transport).
    NoMatchingReceiver {
        /// The sender (label, or id).
        sender: String,
        /// The destination name.
        destination: String,
        /// What the sender sends, e.g. `video (video/raw)`.
        format: String,
    },
    /// A preset connects a sender to a receiver that cannot take it.
    Incompatible {
        /// The sender (label, or id).
        sender: String,
        /// The receiver (label, or id).
        receiver: String,
        /// Why, e.g. `video sender, audio receiver`.
        reason: String,
    },
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::UnknownObject(id) => write!(f, "unknown object {id}"),
            NotReady::PlaceholderNotBound(id) => write!(f, "placeholder not bound ({id})"),
            NotReady::SenderGone(s) => write!(f, "sender gone: {s}"),
            NotReady::ReceiverGone(r) => write!(f, "receiver gone: {r}"),
            NotReady::DestinationUnknown(d) => write!(f, "destination unknown: {d}"),
            NotReady::NoDestination => write!(f, "no destination (no channel and no default)"),
            NotReady::NoConnectionApi(d) => write!(f, "device {d} has no IS-05 v1.1 control"),
            NotReady::NoChannelMappingApi(d) => write!(f, "device {d} has no IS-08 v1.0 control"),
            NotReady::Is08IoUnknown(d) => write!(f, "IS-08 io of device {d} not read"),
            NotReady::Is08(v) => match v.first() {
                Some(first) if v.len() > 1 => write!(f, "IS-08: {first} (+{} more)", v.len() - 1),
                Some(first) => write!(f, "IS-08: {first}"),
                None => write!(f, "IS-08 constraint violated"),
            },
            NotReady::BadOverride(why) => write!(f, "bad override: {why}"),
            NotReady::Ambiguous(what) => write!(f, "ambiguous: {what}"),
            NotReady::DeviceGone(d) => write!(f, "device gone: {d}"),
            NotReady::NoMatchingReceiver {
                sender,
                destination,
                format,
            } => write!(f, "no receiver of {destination} takes {sender} ({format})"),
            NotReady::Incompatible {
                sender,
                receiver,
                reason,
            } => write!(f, "{receiver} cannot take {sender}: {reason}"),
        }
    }
}

/// An item's plan: a route, or why it has none.
pub type ItemPlan = Result<Route, NotReady>;
