//! The studio description ([`StudioSpec`]), read from a TOML file, and the deterministic ids the
//! studio derives from labels.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StudioError;
use crate::nmos::is08_check::{self, ChannelMap, Is08Input, Is08Output, MapEntry};

/// A whole virtual studio: its devices and a few behaviour switches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudioSpec {
    /// Advertise an extra `urn:x-nmos:control:sr-ctrl/v1.2` control (listed first, answering 404
    /// everywhere) on every device, as nmos-cpp does, so a client must pick v1.1 explicitly.
    #[serde(default = "yes")]
    pub advertise_sr_ctrl_v1_2: bool,
    /// Register the registry itself as a node without devices (as nmos-cpp does).
    #[serde(default = "yes")]
    pub registry_node: bool,
    /// The devices, in registration order.
    #[serde(default)]
    pub devices: Vec<DeviceSpec>,
}

fn yes() -> bool {
    true
}

fn one() -> usize {
    1
}

/// One device (each is also its own IS-04 node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Device label (unique in the studio); also the node's label.
    pub label: String,
    /// Fixed device id; when absent it is derived from the label.
    #[serde(default)]
    pub id: Option<String>,
    /// Free text for the IS-04 `description`.
    #[serde(default)]
    pub description: String,
    /// The device's senders.
    #[serde(default)]
    pub senders: Vec<EndpointSpec>,
    /// The device's receivers.
    #[serde(default)]
    pub receivers: Vec<EndpointSpec>,
    /// IS-08 audio channel mapping, if the device has it.
    #[serde(default)]
    pub channel_mapping: Option<ChannelMappingSpec>,
}

/// Essence format of a sender or receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatSpec {
    /// `urn:x-nmos:format:video` (`video/raw`).
    Video,
    /// `urn:x-nmos:format:audio` (`audio/L24`).
    Audio,
    /// `urn:x-nmos:format:data` (`video/smpte291`).
    Data,
}

impl FormatSpec {
    /// The IS-04 format URN.
    pub fn urn(self) -> &'static str {
        match self {
            FormatSpec::Video => "urn:x-nmos:format:video",
            FormatSpec::Audio => "urn:x-nmos:format:audio",
            FormatSpec::Data => "urn:x-nmos:format:data",
        }
    }

    /// The flow media type a sender of this format produces.
    pub fn media_type(self) -> &'static str {
        match self {
            FormatSpec::Video => "video/raw",
            FormatSpec::Audio => "audio/L24",
            FormatSpec::Data => "video/smpte291",
        }
    }
}

/// A sender or a receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Label (unique among the studio's senders, resp. receivers, for lookups by label).
    pub label: String,
    /// Fixed id; when absent it is derived from the device and endpoint labels.
    #[serde(default)]
    pub id: Option<String>,
    /// Essence format.
    pub format: FormatSpec,
    /// IS-04 transport URN.
    #[serde(default = "default_transport")]
    pub transport: String,
    /// Number of RTP legs (2 for SMPTE 2022-7).
    #[serde(default = "one")]
    pub legs: usize,
    /// Audio channels (audio senders; default 2).
    #[serde(default)]
    pub channels: Option<usize>,
}

fn default_transport() -> String {
    "urn:x-nmos:transport:rtp.mcast".to_owned()
}

/// The IS-08 part of a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelMappingSpec {
    /// Inputs, in order.
    #[serde(default)]
    pub inputs: Vec<Is08InputSpec>,
    /// Outputs, in order.
    #[serde(default)]
    pub outputs: Vec<Is08OutputSpec>,
    /// Initial map: output id → one entry per output channel, `"input:index"` or `"-"`
    /// (unrouted). Outputs not named start unrouted.
    #[serde(default)]
    pub map: BTreeMap<String, Vec<String>>,
}

/// One IS-08 input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Is08InputSpec {
    /// Input id (`^[a-zA-Z0-9\-_]+$`).
    pub id: String,
    /// Number of channels.
    pub channels: usize,
    /// `caps.block_size` (1 = no constraint).
    #[serde(default = "one")]
    pub block_size: usize,
    /// `caps.reordering`.
    #[serde(default = "yes")]
    pub reordering: bool,
    /// Label of one of this device's receivers feeding the input (its `parent`).
    #[serde(default)]
    pub parent_receiver: Option<String>,
}

/// One IS-08 output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Is08OutputSpec {
    /// Output id (`^[a-zA-Z0-9\-_]+$`).
    pub id: String,
    /// Number of channels.
    pub channels: usize,
    /// `caps.routable_inputs`; absent = any input.
    #[serde(default)]
    pub routable_inputs: Option<Vec<String>>,
    /// With `routable_inputs`: whether unrouted channels are allowed (a `null` in the list).
    #[serde(default = "yes")]
    pub allow_unrouted: bool,
}

impl StudioSpec {
    /// Parses and checks a studio file's text.
    pub fn from_toml(text: &str) -> Result<StudioSpec, StudioError> {
        let spec: StudioSpec =
            toml::from_str(text).map_err(|e| StudioError::Spec(e.to_string()))?;
        spec.check()?;
        Ok(spec)
    }

    /// Reads, parses and checks a studio file.
    pub fn load(path: &Path) -> Result<StudioSpec, StudioError> {
        let text = std::fs::read_to_string(path).map_err(|source| StudioError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Checks labels, ids and the IS-08 sections; the first problem is returned.
    pub fn check(&self) -> Result<(), StudioError> {
        let bad = |m: String| Err(StudioError::Spec(m));
        let mut labels = HashSet::new();
        let mut ids = HashSet::new();
        for d in &self.devices {
            let fixed = d.id.iter().chain(
                d.senders
                    .iter()
                    .chain(&d.receivers)
                    .filter_map(|e| e.id.as_ref()),
            );
            for id in fixed {
                if !valid_fixed_id(id) {
                    return bad(format!(
                        "device {:?}: id {id:?} is not a lower-case RFC 4122 UUID",
                        d.label
                    ));
                }
            }
            if !labels.insert(d.label.as_str()) {
                return bad(format!("device label {:?} is used twice", d.label));
            }
            let mut all = vec![device_id(d)];
            all.extend(d.senders.iter().map(|s| sender_id(d, s)));
            all.extend(d.receivers.iter().map(|r| receiver_id(d, r)));
            for id in all {
                if !ids.insert(id) {
                    return bad(format!("id {id} is used twice (device {:?})", d.label));
                }
            }
            for e in d.senders.iter().chain(&d.receivers) {
                if e.legs == 0 || e.legs > 2 {
                    return bad(format!("{:?}: legs must be 1 or 2", e.label));
                }
            }
            if let Some(cm) = &d.channel_mapping {
                check_channel_mapping(d, cm).map_err(|m| {
                    StudioError::Spec(format!("device {:?} channel_mapping: {m}", d.label))
                })?;
            }
        }
        Ok(())
    }
}

fn valid_io_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_channel_mapping(d: &DeviceSpec, cm: &ChannelMappingSpec) -> Result<(), String> {
    let mut seen = HashSet::new();
    for i in &cm.inputs {
        if !valid_io_id(&i.id) || !seen.insert(i.id.as_str()) {
            return Err(format!("input id {:?} invalid or repeated", i.id));
        }
        if i.channels == 0 || i.block_size == 0 {
            return Err(format!(
                "input {:?}: channels and block_size must be ≥ 1",
                i.id
            ));
        }
        if let Some(r) = &i.parent_receiver
            && !d.receivers.iter().any(|x| &x.label == r)
        {
            return Err(format!("input {:?}: no receiver labelled {r:?}", i.id));
        }
    }
    let mut seen_out = HashSet::new();
    for o in &cm.outputs {
        if !valid_io_id(&o.id) || !seen_out.insert(o.id.as_str()) {
            return Err(format!("output id {:?} invalid or repeated", o.id));
        }
        if o.channels == 0 {
            return Err(format!("output {:?}: channels must be ≥ 1", o.id));
        }
        for r in o.routable_inputs.iter().flatten() {
            if !seen.contains(r.as_str()) {
                return Err(format!("output {:?}: routable input {r:?} unknown", o.id));
            }
        }
    }
    let map = cm.initial_map()?;
    let (inputs, outputs) = cm.constraints();
    is08_check::check(&map, &inputs, &outputs).map_err(|v| {
        let texts: Vec<String> = v.iter().map(|v| v.to_string()).collect();
        format!("initial map: {}", texts.join("; "))
    })
}

impl ChannelMappingSpec {
    /// The initial map, every output present (unnamed ones unrouted).
    pub fn initial_map(&self) -> Result<ChannelMap, String> {
        let mut map = ChannelMap::new();
        for o in &self.outputs {
            map.insert(o.id.clone(), vec![MapEntry::unrouted(); o.channels]);
        }
        for (out, entries) in &self.map {
            let Some(slot) = map.get_mut(out) else {
                return Err(format!("map names unknown output {out:?}"));
            };
            let parsed: Result<Vec<MapEntry>, String> = entries
                .iter()
                .map(|e| {
                    if e == "-" {
                        return Ok(MapEntry::unrouted());
                    }
                    let (input, index) = e.rsplit_once(':').ok_or_else(|| {
                        format!("map entry {e:?}: expected \"input:index\" or \"-\"")
                    })?;
                    let index: usize = index
                        .parse()
                        .map_err(|_| format!("map entry {e:?}: bad channel index"))?;
                    Ok(MapEntry::routed(input, index))
                })
                .collect();
            *slot = parsed?;
        }
        Ok(map)
    }

    /// The inputs' and outputs' caps in the form [`is08_check::check`] takes.
    pub fn constraints(&self) -> (BTreeMap<String, Is08Input>, BTreeMap<String, Is08Output>) {
        let inputs = self
            .inputs
            .iter()
            .map(|i| {
                (
                    i.id.clone(),
                    Is08Input {
                        channels: i.channels,
                        block_size: i.block_size,
                        reordering: i.reordering,
                    },
                )
            })
            .collect();
        let outputs = self
            .outputs
            .iter()
            .map(|o| {
                (
                    o.id.clone(),
                    Is08Output {
                        channels: o.channels,
                        routable_inputs: o.routable_inputs_caps(),
                    },
                )
            })
            .collect();
        (inputs, outputs)
    }
}

impl Is08OutputSpec {
    /// `caps.routable_inputs` as IS-08 gives it.
    pub fn routable_inputs_caps(&self) -> Option<Vec<Option<String>>> {
        self.routable_inputs.as_ref().map(|list| {
            let mut v: Vec<Option<String>> = list.iter().cloned().map(Some).collect();
            if self.allow_unrouted {
                v.push(None);
            }
            v
        })
    }
}

/// A stable UUID derived from a name (hash → RFC 4122 version 4 layout), so that ids survive
/// restarts of the studio and are the same in every test run.
pub fn stable_id(name: &str) -> Uuid {
    let hash = xxhash_rust::xxh3::xxh3_128(format!("mos-gateway/virtual-studio/{name}").as_bytes());
    uuid::Builder::from_random_bytes(hash.to_be_bytes()).into_uuid()
}

/// A fixed id if given and valid (checked by [`StudioSpec::check`]), else one derived from `name`.
fn fixed_or(fixed: Option<&str>, name: &str) -> Uuid {
    fixed
        .and_then(|f| Uuid::parse_str(f).ok())
        .unwrap_or_else(|| stable_id(name))
}

/// Whether a fixed id is a UUID as NMOS writes them (lower-case hex, version 1-5, variant).
fn valid_fixed_id(id: &str) -> bool {
    let Ok(u) = Uuid::parse_str(id) else {
        return false;
    };
    u.hyphenated().to_string() == id
        && (1..=5).contains(&u.get_version_num())
        && matches!(u.get_variant(), uuid::Variant::RFC4122)
}

/// The device's id (fixed or derived).
pub fn device_id(d: &DeviceSpec) -> Uuid {
    fixed_or(d.id.as_deref(), &format!("device/{}", d.label))
}

/// The id of the node holding the device.
pub fn node_id(d: &DeviceSpec) -> Uuid {
    stable_id(&format!("node/{}", device_id(d)))
}

/// A sender's id (fixed or derived).
pub fn sender_id(d: &DeviceSpec, s: &EndpointSpec) -> Uuid {
    fixed_or(s.id.as_deref(), &format!("sender/{}/{}", d.label, s.label))
}

/// A receiver's id (fixed or derived).
pub fn receiver_id(d: &DeviceSpec, r: &EndpointSpec) -> Uuid {
    fixed_or(
        r.id.as_deref(),
        &format!("receiver/{}/{}", d.label, r.label),
    )
}

/// The id of the flow a sender sends.
pub fn flow_id(sender: Uuid) -> Uuid {
    stable_id(&format!("flow/{sender}"))
}

/// The id of the source behind a sender's flow.
pub fn source_id(sender: Uuid) -> Uuid {
    stable_id(&format!("source/{sender}"))
}

/// The id of the source an IS-08 output produces.
pub fn output_source_id(device: Uuid, output: &str) -> Uuid {
    stable_id(&format!("is08-source/{device}/{output}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_ids_are_nmos_uuids_and_stable() {
        let a = stable_id("device/CAM1");
        assert_eq!(a, stable_id("device/CAM1"));
        assert_ne!(a, stable_id("device/CAM2"));
        assert!(valid_fixed_id(&a.to_string()), "{a}");
    }

    #[test]
    fn initial_map_parses_entries() {
        let cm: ChannelMappingSpec = toml::from_str(
            "inputs = [{ id = \"in1\", channels = 2 }]\n\
             outputs = [{ id = \"o\", channels = 3 }]\n\
             [map]\no = [\"in1:1\", \"-\", \"in1:0\"]\n",
        )
        .unwrap();
        let map = cm.initial_map().unwrap();
        assert_eq!(
            map["o"],
            vec![
                MapEntry::routed("in1", 1),
                MapEntry::unrouted(),
                MapEntry::routed("in1", 0)
            ]
        );
    }
}
