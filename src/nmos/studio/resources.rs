//! The IS-04 resources (v1.3 shapes) of one virtual device: its node, the device, the sources
//! and flows behind its senders, the senders, the receivers and the sources of its IS-08
//! outputs.

use serde_json::{Value, json};
use uuid::Uuid;

use super::registry::ResourceType;
use super::spec::{self, DeviceSpec, EndpointSpec, FormatSpec};

/// The base URL of one device's APIs on the studio server.
pub(crate) fn device_base(base: &str, device: Uuid) -> String {
    format!("{base}/dev/{device}")
}

fn interfaces(legs: usize) -> Value {
    Value::Array(
        (0..legs)
            .map(|i| Value::String(format!("eth{i}")))
            .collect(),
    )
}

fn audio_channels(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"label": format!("Channel {}", i + 1)}))
            .collect(),
    )
}

/// Every resource of a device, parents first, with `version` left for the registry to set.
pub(crate) fn device_resources(
    base: &str,
    port: u16,
    d: &DeviceSpec,
    advertise_v1_2: bool,
) -> Vec<(ResourceType, Uuid, Value)> {
    let dev = spec::device_id(d);
    let node = spec::node_id(d);
    let (dev_s, node_s) = (dev.to_string(), node.to_string());
    let dbase = device_base(base, dev);
    let mut out = Vec::new();
    out.push((
        ResourceType::Nodes,
        node,
        json!({
            "id": node_s, "version": "0:0", "label": d.label, "description": d.description,
            "tags": {}, "href": format!("{dbase}/"), "hostname": format!("virtual-{dev}"),
            "caps": {},
            "api": {"versions": ["v1.3"], "endpoints": [
                {"host": "127.0.0.1", "port": port, "protocol": "http", "authorization": false}]},
            "services": [],
            "clocks": [{"name": "clk0", "ref_type": "internal"}],
            "interfaces": [
                {"chassis_id": null, "port_id": "02-00-00-00-00-00", "name": "eth0"},
                {"chassis_id": null, "port_id": "02-00-00-00-00-01", "name": "eth1"}]
        }),
    ));
    let mut controls = Vec::new();
    if advertise_v1_2 {
        controls.push(json!({"type": "urn:x-nmos:control:sr-ctrl/v1.2",
            "href": format!("{dbase}/x-nmos/connection/v1.2"), "authorization": false}));
    }
    controls.push(json!({"type": "urn:x-nmos:control:sr-ctrl/v1.1",
        "href": format!("{dbase}/x-nmos/connection/v1.1"), "authorization": false}));
    if d.channel_mapping.is_some() {
        controls.push(json!({"type": "urn:x-nmos:control:cm-ctrl/v1.0",
            "href": format!("{dbase}/x-nmos/channelmapping/v1.0"), "authorization": false}));
    }
    let senders: Vec<Uuid> = d.senders.iter().map(|s| spec::sender_id(d, s)).collect();
    let receivers: Vec<Uuid> = d
        .receivers
        .iter()
        .map(|r| spec::receiver_id(d, r))
        .collect();
    let sender_strs: Vec<String> = senders.iter().map(Uuid::to_string).collect();
    let receiver_strs: Vec<String> = receivers.iter().map(Uuid::to_string).collect();
    out.push((
        ResourceType::Devices,
        dev,
        json!({
            "id": dev_s, "version": "0:0", "label": d.label, "description": d.description,
            "tags": {}, "type": "urn:x-nmos:device:generic", "node_id": node_s,
            "senders": sender_strs, "receivers": receiver_strs, "controls": controls
        }),
    ));
    for s in &d.senders {
        let sid = spec::sender_id(d, s);
        out.push((
            ResourceType::Sources,
            spec::source_id(sid),
            source(dev, spec::source_id(sid), &s.label, s),
        ));
    }
    if let Some(cm) = &d.channel_mapping {
        for o in &cm.outputs {
            let id = spec::output_source_id(dev, &o.id);
            out.push((
                ResourceType::Sources,
                id,
                json!({
                    "id": id.to_string(), "version": "0:0", "label": format!("{} {}", d.label, o.id),
                    "description": "IS-08 output", "tags": {}, "caps": {}, "parents": [],
                    "clock_name": "clk0", "device_id": dev_s,
                    "format": "urn:x-nmos:format:audio", "channels": audio_channels(o.channels)
                }),
            ));
        }
    }
    for s in &d.senders {
        let sid = spec::sender_id(d, s);
        out.push((ResourceType::Flows, spec::flow_id(sid), flow(dev, sid, s)));
    }
    for (s, sid) in d.senders.iter().zip(&senders) {
        out.push((
            ResourceType::Senders,
            *sid,
            json!({
                "id": sid.to_string(), "version": "0:0", "label": s.label, "description": "",
                "tags": {}, "flow_id": spec::flow_id(*sid).to_string(), "transport": s.transport,
                "device_id": dev_s,
                "manifest_href": format!("{dbase}/x-nmos/connection/v1.1/single/senders/{sid}/transportfile"),
                "interface_bindings": interfaces(s.legs), "caps": {},
                "subscription": {"receiver_id": null, "active": true}
            }),
        ));
    }
    for (r, rid) in d.receivers.iter().zip(&receivers) {
        let media_types: Vec<&str> = match r.format {
            FormatSpec::Video => vec!["video/raw"],
            FormatSpec::Audio => vec!["audio/L24", "audio/L16"],
            FormatSpec::Data => vec!["video/smpte291"],
        };
        out.push((
            ResourceType::Receivers,
            *rid,
            json!({
                "id": rid.to_string(), "version": "0:0", "label": r.label, "description": "",
                "tags": {}, "format": r.format.urn(), "caps": {"media_types": media_types},
                "device_id": dev_s, "transport": r.transport,
                "interface_bindings": interfaces(r.legs),
                "subscription": {"sender_id": null, "active": false}
            }),
        ));
    }
    out
}

fn source(dev: Uuid, id: Uuid, label: &str, s: &EndpointSpec) -> Value {
    let mut v = json!({
        "id": id.to_string(), "version": "0:0", "label": label, "description": "", "tags": {},
        "caps": {}, "parents": [], "clock_name": "clk0", "device_id": dev.to_string(),
        "format": s.format.urn()
    });
    match s.format {
        FormatSpec::Audio => {
            v["channels"] = audio_channels(s.channels.unwrap_or(2));
        }
        FormatSpec::Video | FormatSpec::Data => {
            v["grain_rate"] = json!({"numerator": 25, "denominator": 1});
        }
    }
    v
}

fn flow(dev: Uuid, sender: Uuid, s: &EndpointSpec) -> Value {
    let id = spec::flow_id(sender);
    let mut v = json!({
        "id": id.to_string(), "version": "0:0", "label": s.label, "description": "", "tags": {},
        "source_id": spec::source_id(sender).to_string(), "device_id": dev.to_string(), "parents": [],
        "format": s.format.urn(), "media_type": s.format.media_type()
    });
    match s.format {
        FormatSpec::Video => {
            v["grain_rate"] = json!({"numerator": 25, "denominator": 1});
            v["frame_width"] = json!(1920);
            v["frame_height"] = json!(1080);
            v["colorspace"] = json!("BT709");
            v["interlace_mode"] = json!("progressive");
            v["transfer_characteristic"] = json!("SDR");
            v["components"] = json!([
                {"name": "Y", "width": 1920, "height": 1080, "bit_depth": 10},
                {"name": "Cb", "width": 960, "height": 1080, "bit_depth": 10},
                {"name": "Cr", "width": 960, "height": 1080, "bit_depth": 10}
            ]);
        }
        FormatSpec::Audio => {
            v["sample_rate"] = json!({"numerator": 48000, "denominator": 1});
            v["bit_depth"] = json!(24);
        }
        FormatSpec::Data => {
            v["grain_rate"] = json!({"numerator": 25, "denominator": 1});
        }
    }
    v
}
