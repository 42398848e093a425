//! Resolution of running-order items into planned routes: every rule and every NOT READY
//! reason, overrides, re-planning, preset objects. Pure: a `Catalogue` built from JSON, a
//! mapping from TOML.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use mos_gateway::config::Config;
use mos_gateway::mos::messages::MosObjCreate;
use mos_gateway::mos::structures::{
    AirStatus, Item, MosExternalMetadata, ObjType, RawXml, RoHeader, RunningOrder, Story,
};
use mos_gateway::nmos::is04::Catalogue;
use mos_gateway::nmos::is08_check::{Is08Input, Is08Output, MapEntry, Violation};
use mos_gateway::nmos::mapping::{LabelIndex, Mapping, PRESET_GROUP};
use mos_gateway::nmos::overrides::Override;
use mos_gateway::nmos::plan::{DeviceIo, ItemKey, ItemPlan, NotReady, Route};
use mos_gateway::nmos::resolve::{
    ObjectLookup, ResolveContext, changed_items, resolve_item, resolve_rundown,
};
use mos_gateway::objects::catalogue::{Catalogue as _, MemoryCatalogue};
use mos_gateway::rundown::Rundown;

const SCHEMA: &str = "http://nmos-gateway.local/mos/nmos.xsd";

// Devices
const CAM1_DEV: &str = "0d3c5e1a-7f2b-4e8c-9a61-1b2c3d4e5f01";
const CAM2_DEV: &str = "0d3c5e1a-7f2b-4e8c-9a61-1b2c3d4e5f02";
const MIX_DEV: &str = "0d3c5e1a-7f2b-4e8c-9a61-1b2c3d4e5f03";
const MON_DEV: &str = "0d3c5e1a-7f2b-4e8c-9a61-1b2c3d4e5f04";
const DESK_DEV: &str = "0d3c5e1a-7f2b-4e8c-9a61-1b2c3d4e5f05";
// Flows
const CAM1_VFLOW: &str = "6b1f9a2e-44c3-4b7d-8e5f-2a3b4c5d6e01";
const CAM1_AFLOW: &str = "6b1f9a2e-44c3-4b7d-8e5f-2a3b4c5d6e02";
const CAM2_VFLOW: &str = "6b1f9a2e-44c3-4b7d-8e5f-2a3b4c5d6e03";
// Senders
const CAM1_V: &str = "a4e2c6d8-1f3b-4a5c-9e7d-3c4d5e6f7a01";
const CAM1_A: &str = "a4e2c6d8-1f3b-4a5c-9e7d-3c4d5e6f7a02";
const CAM2_V: &str = "a4e2c6d8-1f3b-4a5c-9e7d-3c4d5e6f7a03";
const PATTERN: &str = "a4e2c6d8-1f3b-4a5c-9e7d-3c4d5e6f7a04";
// Receivers
const MIX_IN1_V: &str = "f7d1b3a5-9c2e-4d6f-8a1b-4d5e6f7a8b01";
const MIX_IN1_A: &str = "f7d1b3a5-9c2e-4d6f-8a1b-4d5e6f7a8b02";
const MIX_IN2_V: &str = "f7d1b3a5-9c2e-4d6f-8a1b-4d5e6f7a8b03";
const MON3_V: &str = "f7d1b3a5-9c2e-4d6f-8a1b-4d5e6f7a8b04";
const DESK5_A: &str = "f7d1b3a5-9c2e-4d6f-8a1b-4d5e6f7a8b05";
const MV_A: &str = "f7d1b3a5-9c2e-4d6f-8a1b-4d5e6f7a8b06";
const MV_B: &str = "f7d1b3a5-9c2e-4d6f-8a1b-4d5e6f7a8b07";
const GONE_RX: &str = "f7d1b3a5-9c2e-4d6f-8a1b-4d5e6f7a8bff";
// Placeholders
const PH_BERLIN: &str = "PH-9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a";
const PH_SALVO: &str = "PH-1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const PH_LOOSE: &str = "PH-77777777-5e6f-4a7b-8c9d-0e1f2a3b4c5d";

fn core(id: &str, label: &str) -> Value {
    json!({"id": id, "version": "1700000000:0", "label": label, "description": "", "tags": {}})
}

fn merge(a: Value, b: Value) -> Value {
    let (Value::Object(mut a), Value::Object(b)) = (a, b) else {
        panic!("objects expected")
    };
    a.extend(b);
    Value::Object(a)
}

fn ctl(kind: &str, href: &str, auth: bool) -> Value {
    json!({"type": kind, "href": href, "authorization": auth})
}

const SR11: &str = "urn:x-nmos:control:sr-ctrl/v1.1";
const SR10: &str = "urn:x-nmos:control:sr-ctrl/v1.0";
const CM10: &str = "urn:x-nmos:control:cm-ctrl/v1.0";

fn catalogue() -> Catalogue {
    let device = |id: &str, label: &str, controls: Vec<Value>| {
        merge(
            core(id, label),
            json!({"node_id": "11111111-2222-4333-8444-555555555555", "type": "urn:x-nmos:device:generic", "controls": controls}),
        )
    };
    let devices = vec![
        device(
            CAM1_DEV,
            "Camera 1 head",
            vec![ctl(
                SR11,
                "http://192.0.2.11/x-nmos/connection/v1.1/",
                false,
            )],
        ),
        device(
            CAM2_DEV,
            "Camera 2 head",
            vec![ctl(
                SR11,
                "http://192.0.2.12/x-nmos/connection/v1.1/",
                false,
            )],
        ),
        device(
            MIX_DEV,
            "Vision mixer",
            vec![
                ctl(SR10, "http://192.0.2.20/x-nmos/connection/v1.0/", false),
                ctl(
                    SR11,
                    "https://mixer.studio.example/x-nmos/connection/v1.1",
                    true,
                ),
                ctl(
                    CM10,
                    "https://mixer.studio.example/x-nmos/channelmapping/v1.0/",
                    true,
                ),
            ],
        ),
        device(
            MON_DEV,
            "Old monitor",
            vec![ctl(
                SR10,
                "http://192.0.2.30/x-nmos/connection/v1.0/",
                false,
            )],
        ),
        device(
            DESK_DEV,
            "Audio console",
            vec![ctl(
                SR11,
                "http://192.0.2.40/x-nmos/connection/v1.1/",
                false,
            )],
        ),
    ];
    let flow = |id: &str, format: &str, media: &str, dev: &str| {
        merge(
            core(id, "flow"),
            json!({"format": format, "media_type": media, "source_id": "22222222-3333-4444-8555-666666666666", "device_id": dev, "parents": []}),
        )
    };
    let flows = vec![
        flow(CAM1_VFLOW, "urn:x-nmos:format:video", "video/raw", CAM1_DEV),
        flow(CAM1_AFLOW, "urn:x-nmos:format:audio", "audio/L24", CAM1_DEV),
        flow(CAM2_VFLOW, "urn:x-nmos:format:video", "video/raw", CAM2_DEV),
    ];
    let sender = |id: &str, label: &str, flow: Option<&str>, dev: &str| {
        merge(
            core(id, label),
            json!({"flow_id": flow, "transport": "urn:x-nmos:transport:rtp.mcast", "device_id": dev,
                   "manifest_href": format!("http://192.0.2.11/sdp/{id}.sdp"), "interface_bindings": ["eth0"],
                   "subscription": {"receiver_id": null, "active": true}}),
        )
    };
    let senders = vec![
        sender(CAM1_V, "Camera 1", Some(CAM1_VFLOW), CAM1_DEV),
        sender(CAM1_A, "Camera 1 audio", Some(CAM1_AFLOW), CAM1_DEV),
        sender(CAM2_V, "Camera 2", Some(CAM2_VFLOW), CAM2_DEV),
        sender(PATTERN, "Test pattern", None, CAM2_DEV),
    ];
    let receiver = |id: &str, label: &str, format: &str, media: &[&str], dev: &str| {
        merge(
            core(id, label),
            json!({"format": format, "caps": {"media_types": media}, "transport": "urn:x-nmos:transport:rtp",
                   "device_id": dev, "interface_bindings": ["eth0"], "subscription": {"sender_id": null, "active": false}}),
        )
    };
    let receivers = vec![
        receiver(
            MIX_IN1_V,
            "Vision mixer in 1 video",
            "urn:x-nmos:format:video",
            &["video/raw"],
            MIX_DEV,
        ),
        receiver(
            MIX_IN1_A,
            "Vision mixer in 1 audio",
            "urn:x-nmos:format:audio",
            &["audio/L24"],
            MIX_DEV,
        ),
        receiver(
            MIX_IN2_V,
            "Vision mixer in 2 video",
            "urn:x-nmos:format:video",
            &[],
            MIX_DEV,
        ),
        receiver(
            MON3_V,
            "Monitor wall 3",
            "urn:x-nmos:format:video",
            &[],
            MON_DEV,
        ),
        receiver(
            DESK5_A,
            "Console input 5",
            "urn:x-nmos:format:audio",
            &[],
            DESK_DEV,
        ),
        receiver(MV_A, "Multiviewer", "urn:x-nmos:format:video", &[], MIX_DEV),
        receiver(MV_B, "Multiviewer", "urn:x-nmos:format:video", &[], MIX_DEV),
    ];
    Catalogue::from_lists(
        Vec::new(),
        parse(devices),
        Vec::new(),
        parse(flows),
        parse(senders),
        parse(receivers),
    )
}

fn parse<T: serde::de::DeserializeOwned>(v: Vec<Value>) -> Vec<T> {
    serde_json::from_value(Value::Array(v)).expect("fixture parses")
}

fn io() -> BTreeMap<String, DeviceIo> {
    let input = |channels, block_size, reordering| Is08Input {
        channels,
        block_size,
        reordering,
    };
    let mixer = DeviceIo {
        inputs: BTreeMap::from([
            ("in1".to_owned(), input(2, 1, true)),
            ("in2".to_owned(), input(4, 2, false)),
        ]),
        outputs: BTreeMap::from([
            (
                "mixer-in1".to_owned(),
                Is08Output {
                    channels: 2,
                    routable_inputs: None,
                },
            ),
            (
                "pgm-out".to_owned(),
                Is08Output {
                    channels: 2,
                    routable_inputs: Some(vec![Some("in1".to_owned()), None]),
                },
            ),
        ]),
    };
    BTreeMap::from([(MIX_DEV.to_owned(), mixer)])
}

fn config_text(default_destination: &str) -> String {
    format!(
        r#"
[nmos]
registry = ""
mos_schema = "{SCHEMA}"
default_destination = "{default_destination}"

[[destination]]
name = "PGM"
receivers = ["Vision mixer in 1 video", "{MIX_IN1_A}"]
audio_device = "Vision mixer"
audio_map = {{ "mixer-in1" = ["in1:0", "in1:1"] }}

[[destination]]
name = "STUDIO-B"
receivers = ["{MIX_IN2_V}"]

[[destination]]
name = "MON3"
receivers = ["Monitor wall 3"]

[[destination]]
name = "CONSOLE"
receivers = ["Console input 5"]
audio_device = "Audio console"
audio_map = {{ out1 = ["in1:0"] }}

[[destination]]
name = "MV"
receivers = ["Multiviewer"]

[[destination]]
name = "GONE"
receivers = ["{MIX_IN2_V}", "{GONE_RX}"]

[[destination]]
name = "AUDIO-ONLY"
receivers = ["Console input 5"]

[[destination]]
name = "BAD-MAP"
receivers = ["{MIX_IN2_V}"]
audio_device = "{MIX_DEV}"
audio_map = {{ "pgm-out" = ["in2:0", "in2:1"] }}

[[destination]]
name = "GHOST-DEVICE"
receivers = ["{MIX_IN2_V}"]
audio_device = "Dismantled mixer"
audio_map = {{ out1 = ["in1:0"] }}

[[preset]]
id = "PRESET-INTERVIEW"
slug = "Interview 2-shot"
connections = [
    {{ sender = "Camera 1", receiver = "Vision mixer in 1 video" }},
    {{ sender = "{CAM2_V}", receiver = "Vision mixer in 2 video" }},
]
audio_device = "Vision mixer"
audio_map = {{ "pgm-out" = ["in1:0", "in1:1"] }}

[[preset]]
id = "PRESET-BROKEN"
slug = "Audio into video"
type = "AUDIO"
connections = [{{ sender = "Camera 1 audio", receiver = "Vision mixer in 2 video" }}]

[[preset]]
id = "PRESET-GONE"
slug = "Camera 9 salvo"
connections = [{{ sender = "Camera 9", receiver = "Vision mixer in 2 video" }}]

[[binding]]
placeholder = "Remote Berlin"
sender = "Camera 2"

[[binding]]
placeholder = "{PH_SALVO}"
preset = "PRESET-INTERVIEW"

[[binding]]
placeholder = "Remote Paris"
sender = "Remote 1"
"#
    )
}

fn mapping_with(default_destination: &str) -> Mapping {
    let config = Config::from_toml_str(&config_text(default_destination), "resolve.toml")
        .unwrap_or_else(|e| panic!("{e}"));
    Mapping::from_config(&config)
}

fn placeholders() -> BTreeMap<String, String> {
    BTreeMap::from([
        (PH_BERLIN.to_owned(), "Remote Berlin".to_owned()),
        (PH_SALVO.to_owned(), "Interview booking".to_owned()),
        (PH_LOOSE.to_owned(), "Remote Madrid".to_owned()),
    ])
}

/// Resolves one item with everything configured.
struct Fixture {
    catalogue: Catalogue,
    /// The label index of `catalogue`: call [`Fixture::reindex`] after changing it.
    labels: LabelIndex,
    io: BTreeMap<String, DeviceIo>,
    mapping: Mapping,
    objects: BTreeMap<String, String>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_default("")
    }

    fn with_default(default_destination: &str) -> Fixture {
        let catalogue = catalogue();
        Fixture {
            labels: LabelIndex::new(&catalogue),
            catalogue,
            io: io(),
            mapping: mapping_with(default_destination),
            objects: placeholders(),
        }
    }

    /// Rebuilds the label index after a change to the catalogue (as the bridge does for
    /// every new snapshot).
    fn reindex(&mut self) {
        self.labels = LabelIndex::new(&self.catalogue);
    }

    fn ctx(&self) -> ResolveContext<'_> {
        ResolveContext {
            catalogue: &self.catalogue,
            labels: &self.labels,
            io: &self.io,
            mapping: &self.mapping,
            objects: &self.objects,
        }
    }

    fn resolve_in(&self, header: &RoHeader, story: &Story, item: &Item) -> ItemPlan {
        resolve_item(header, story, item, &self.ctx())
    }

    fn resolve(&self, item: &Item) -> ItemPlan {
        self.resolve_in(&header(None), &Story::default(), item)
    }

    fn route(&self, item: &Item) -> Route {
        match self.resolve(item) {
            Ok(r) => r,
            Err(e) => panic!("expected a route, got NOT READY: {e}"),
        }
    }

    fn not_ready(&self, item: &Item) -> NotReady {
        match self.resolve(item) {
            Ok(r) => panic!("expected NOT READY, got {r:?}"),
            Err(e) => e,
        }
    }
}

fn header(channel: Option<&str>) -> RoHeader {
    RoHeader {
        id: "RO-EVENING-NEWS".to_owned(),
        slug: Some("Evening news".to_owned()),
        channel: channel.map(str::to_owned),
        ..RoHeader::default()
    }
}

fn item(id: &str, obj: &str, channel: Option<&str>) -> Item {
    Item {
        id: id.to_owned(),
        object_id: obj.to_owned(),
        mos_id: "nmos.gateway.mos".to_owned(),
        channel: channel.map(str::to_owned),
        ..Item::default()
    }
}

fn ours(payload: &str) -> MosExternalMetadata {
    MosExternalMetadata {
        scope: None,
        schema: SCHEMA.to_owned(),
        payload: RawXml(payload.to_owned()),
    }
}

fn with_meta(mut it: Item, payload: &str) -> Item {
    it.metadata.push(ours(payload));
    it
}

fn receiver_ids(r: &Route) -> Vec<&str> {
    r.receiver_ids().collect()
}

// ---------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------

#[test]
fn a_video_sender_goes_to_the_video_receivers_of_its_channel_with_the_destination_map() {
    let f = Fixture::new();
    let route = f.route(&item("1", CAM1_V, Some(" pgm ")));
    assert_eq!(route.object_id, CAM1_V);
    assert_eq!(route.destination, "PGM");
    assert_eq!(receiver_ids(&route), vec![MIX_IN1_V]);
    let c = &route.connections[0];
    assert_eq!(c.receiver_label, "Vision mixer in 1 video");
    assert_eq!(c.device_id, MIX_DEV);
    // The v1.1 control, not the v1.0 one listed first; a trailing slash added.
    assert_eq!(
        c.connection_api,
        "https://mixer.studio.example/x-nmos/connection/v1.1/"
    );
    assert!(c.authorization);
    assert_eq!(c.sender_id.as_deref(), Some(CAM1_V));
    assert_eq!(
        c.sender_manifest_href.as_deref(),
        Some(format!("http://192.0.2.11/sdp/{CAM1_V}.sdp").as_str())
    );
    assert_eq!(
        c.sender_connection_api.as_deref(),
        Some("http://192.0.2.11/x-nmos/connection/v1.1/")
    );
    // The camera's own control needs no token, whatever the mixer's needs.
    assert!(!c.sender_authorization);
    assert_eq!(c.transport, "urn:x-nmos:transport:rtp.mcast");
    assert_eq!(route.audio_maps.len(), 1);
    let m = &route.audio_maps[0];
    assert_eq!(m.device_id, MIX_DEV);
    assert_eq!(
        m.channel_mapping_api,
        "https://mixer.studio.example/x-nmos/channelmapping/v1.0/"
    );
    assert!(m.authorization);
    assert_eq!(
        m.map["mixer-in1"],
        vec![MapEntry::routed("in1", 0), MapEntry::routed("in1", 1)]
    );
    assert_eq!(route.scheduled, None);
}

#[test]
fn an_audio_sender_goes_to_the_audio_receivers_only() {
    let f = Fixture::new();
    let route = f.route(&item("1", CAM1_A, Some("PGM")));
    assert_eq!(receiver_ids(&route), vec![MIX_IN1_A]);
}

#[test]
fn a_sender_objid_in_upper_case_is_found() {
    let f = Fixture::new();
    let route = f.route(&item("1", &CAM2_V.to_uppercase(), Some("STUDIO-B")));
    assert_eq!(route.connections[0].sender_id.as_deref(), Some(CAM2_V));
    assert!(route.audio_maps.is_empty());
}

#[test]
fn the_destination_comes_from_the_most_specific_place() {
    let f = Fixture::with_default("MON3");
    let ro_ov = ours("<nmos><destination>GONE</destination></nmos>");
    let story_ov = ours("<nmos><destination>AUDIO-ONLY</destination></nmos>");
    let mut hdr = header(Some("MV"));
    hdr.metadata.push(ro_ov);
    let story = Story {
        id: "S1".into(),
        metadata: vec![story_ov],
        ..Story::default()
    };
    let it = with_meta(
        item("1", CAM2_V, Some("PGM")),
        "<nmos><destination>STUDIO-B</destination></nmos>",
    );
    let dest = |h: &RoHeader, s: &Story, i: &Item| match f.resolve_in(h, s, i) {
        Ok(r) => r.destination,
        Err(e) => format!("{e}"),
    };
    // Item override.
    assert_eq!(dest(&hdr, &story, &it), "STUDIO-B");
    // itemChannel.
    let plain = item("1", CAM2_V, Some("PGM"));
    assert_eq!(dest(&hdr, &story, &plain), "PGM");
    // The story's override (AUDIO-ONLY has no video receiver).
    let bare = item("1", CAM2_V, None);
    assert!(dest(&hdr, &story, &bare).contains("no receiver of AUDIO-ONLY"));
    // The running order's override (GONE has a receiver gone).
    let story_plain = Story::default();
    assert!(dest(&hdr, &story_plain, &bare).contains(&format!("receiver gone: {GONE_RX}")));
    // roChannel (MV is ambiguous).
    let hdr_plain = header(Some("MV"));
    assert!(dest(&hdr_plain, &story_plain, &bare).contains("ambiguous"));
    // The default (MON3 has no IS-05 v1.1).
    assert!(dest(&header(None), &story_plain, &bare).contains("no IS-05 v1.1"));
    // An empty itemChannel counts as none.
    let empty = item("1", CAM2_V, Some("  "));
    assert!(dest(&header(None), &story_plain, &empty).contains("no IS-05 v1.1"));
}

#[test]
fn a_preset_makes_its_connections_and_maps_merged_per_device() {
    let f = Fixture::new();
    // Without a destination: the preset's connections and map only.
    let alone = f.route(&item("1", "PRESET-INTERVIEW", None));
    assert_eq!(alone.destination, "PRESET-INTERVIEW");
    assert_eq!(receiver_ids(&alone), vec![MIX_IN1_V, MIX_IN2_V]);
    assert_eq!(
        alone.connections[1].sender_id.as_deref(),
        Some(CAM2_V),
        "connections in configuration order"
    );
    assert_eq!(alone.audio_maps.len(), 1);
    assert_eq!(
        alone.audio_maps[0].map.keys().collect::<Vec<_>>(),
        vec!["pgm-out"]
    );
    // With PGM: its receivers are not added, its map joins the preset's on the same device.
    let with_pgm = f.route(&item("1", "PRESET-INTERVIEW", Some("PGM")));
    assert_eq!(with_pgm.destination, "PGM");
    assert_eq!(receiver_ids(&with_pgm), vec![MIX_IN1_V, MIX_IN2_V]);
    assert_eq!(with_pgm.audio_maps.len(), 1);
    assert_eq!(
        with_pgm.audio_maps[0].map.keys().collect::<Vec<_>>(),
        vec!["mixer-in1", "pgm-out"]
    );
}

#[test]
fn placeholders_resolve_through_their_bindings() {
    let f = Fixture::new();
    // Bound by slug to a sender label.
    let berlin = f.route(&item("1", PH_BERLIN, Some("STUDIO-B")));
    assert_eq!(berlin.object_id, PH_BERLIN);
    assert_eq!(berlin.connections[0].sender_id.as_deref(), Some(CAM2_V));
    // Bound by objID to a preset.
    let salvo = f.route(&item("2", PH_SALVO, None));
    assert_eq!(receiver_ids(&salvo), vec![MIX_IN1_V, MIX_IN2_V]);
}

#[test]
fn memory_catalogue_placeholders_are_looked_up() {
    let cat = MemoryCatalogue::new();
    let request = MosObjCreate {
        slug: "Remote Berlin".into(),
        group: None,
        obj_type: ObjType::Video,
        time_base: Some(50.0),
        duration: None,
        time: None,
        created_by: None,
        description: None,
        metadata: Vec::new(),
    };
    let created = cat.create(&request, "ENPS.NCS").expect("created");
    assert_eq!(
        cat.placeholder_slug(&created.id).as_deref(),
        Some("Remote Berlin")
    );
    assert_eq!(cat.placeholder_slug("CLIP-1"), None);
    let f = Fixture::new();
    let ctx = ResolveContext {
        objects: &cat,
        ..f.ctx()
    };
    let plan = resolve_item(
        &header(None),
        &Story::default(),
        &item("1", &created.id, Some("STUDIO-B")),
        &ctx,
    );
    assert_eq!(
        plan.map(|r| r.connections[0].sender_id.clone()),
        Ok(Some(CAM2_V.to_owned()))
    );
}

// ---------------------------------------------------------------------------------------------
// Every NOT READY reason
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_objects_and_unbound_placeholders() {
    let f = Fixture::new();
    let gone_sender = "a4e2c6d8-1f3b-4a5c-9e7d-3c4d5e6f7aff";
    assert_eq!(
        f.not_ready(&item("1", gone_sender, Some("PGM"))),
        NotReady::UnknownObject(gone_sender.to_owned())
    );
    assert_eq!(
        f.not_ready(&item("1", "CLIP-1", Some("PGM"))),
        NotReady::UnknownObject("CLIP-1".to_owned())
    );
    let e = f.not_ready(&item("1", PH_LOOSE, Some("PGM")));
    assert!(matches!(&e, NotReady::PlaceholderNotBound(t) if t.contains("Remote Madrid")));
    assert!(e.to_string().starts_with("placeholder not bound"));
}

#[test]
fn senders_named_by_configuration_may_be_gone() {
    let f = Fixture::new();
    assert_eq!(
        f.not_ready(&item("1", "PRESET-GONE", None)),
        NotReady::SenderGone("\"Camera 9\"".to_owned())
    );
    // A placeholder bound to a sender that is not in the registry.
    let mut objects = placeholders();
    objects.insert("PH-PARIS".into(), "remote paris".into());
    let ctx = ResolveContext {
        objects: &objects,
        ..f.ctx()
    };
    let plan = resolve_item(
        &header(None),
        &Story::default(),
        &item("1", "PH-PARIS", Some("PGM")),
        &ctx,
    );
    assert_eq!(plan, Err(NotReady::SenderGone("\"Remote 1\"".to_owned())));
}

#[test]
fn receivers_gone_destinations_unknown_or_missing() {
    let f = Fixture::new();
    assert_eq!(
        f.not_ready(&item("1", CAM1_V, Some("GONE"))),
        NotReady::ReceiverGone(GONE_RX.to_owned())
    );
    assert_eq!(
        f.not_ready(&item("1", CAM1_V, Some("STUDIO-Z"))),
        NotReady::DestinationUnknown("STUDIO-Z".to_owned())
    );
    assert_eq!(
        f.not_ready(&item("1", CAM1_V, None)),
        NotReady::NoDestination
    );
    // A preset item with an unknown destination is not silently routed.
    assert_eq!(
        f.not_ready(&item("1", "PRESET-INTERVIEW", Some("STUDIO-Z"))),
        NotReady::DestinationUnknown("STUDIO-Z".to_owned())
    );
}

#[test]
fn devices_without_the_needed_controls() {
    let f = Fixture::new();
    assert_eq!(
        f.not_ready(&item("1", CAM1_V, Some("MON3"))),
        NotReady::NoConnectionApi("Old monitor".to_owned())
    );
    assert_eq!(
        f.not_ready(&item("1", CAM1_A, Some("CONSOLE"))),
        NotReady::NoChannelMappingApi("Audio console".to_owned())
    );
    assert_eq!(
        f.not_ready(&item("1", CAM2_V, Some("GHOST-DEVICE"))),
        NotReady::DeviceGone("\"Dismantled mixer\"".to_owned())
    );
}

#[test]
fn is08_io_must_be_known_and_maps_must_fit_it() {
    let mut f = Fixture::new();
    let e = f.not_ready(&item("1", CAM2_V, Some("BAD-MAP")));
    let NotReady::Is08(violations) = &e else {
        panic!("expected IS-08 violations, got {e}")
    };
    assert!(violations.contains(&Violation::NotRoutable {
        output: "pgm-out".into(),
        channel: 0,
        input: "in2".into()
    }));
    assert!(e.to_string().starts_with("IS-08: "));
    f.io.clear();
    assert_eq!(
        f.not_ready(&item("1", CAM1_V, Some("PGM"))),
        NotReady::Is08IoUnknown("Vision mixer".to_owned())
    );
}

#[test]
fn ambiguous_labels_are_not_guessed() {
    let f = Fixture::new();
    let e = f.not_ready(&item("1", CAM1_V, Some("MV")));
    assert_eq!(
        e,
        NotReady::Ambiguous("\"Multiviewer\" names 2 receivers".to_owned())
    );
}

#[test]
fn labels_are_looked_up_in_the_snapshot_the_index_was_built_from() {
    let mut f = Fixture::new();
    // One of the two "Multiviewer" receivers leaves: the label names one receiver again.
    f.catalogue.receivers.remove(MV_B);
    f.reindex();
    let route = f.resolve(&item("1", CAM1_V, Some("MV"))).expect("routed");
    assert_eq!(route.connections[0].receiver_id, MV_A);
    // Relabelled, it no longer answers to the old label.
    let rx = std::sync::Arc::make_mut(f.catalogue.receivers.get_mut(MV_A).expect("fixture"));
    rx.core.label = "Multiviewer 1".into();
    f.reindex();
    assert_eq!(
        f.not_ready(&item("1", CAM1_V, Some("MV"))),
        NotReady::ReceiverGone("\"Multiviewer\"".to_owned())
    );
}

#[test]
fn no_matching_receiver_says_what_the_sender_sends() {
    let f = Fixture::new();
    let e = f.not_ready(&item("1", CAM1_V, Some("AUDIO-ONLY")));
    assert_eq!(
        e,
        NotReady::NoMatchingReceiver {
            sender: "Camera 1".into(),
            destination: "AUDIO-ONLY".into(),
            format: "video (video/raw)".into(),
        }
    );
    assert_eq!(
        e.to_string(),
        "no receiver of AUDIO-ONLY takes Camera 1 (video (video/raw))"
    );
    // A sender with no flow matches nothing.
    let e = f.not_ready(&item("1", PATTERN, Some("STUDIO-B")));
    assert!(matches!(e, NotReady::NoMatchingReceiver { ref format, .. } if format == "no flow"));
}

#[test]
fn a_receiver_whose_media_types_exclude_the_flow_does_not_match() {
    let mut f = Fixture::new();
    let rx = std::sync::Arc::make_mut(f.catalogue.receivers.get_mut(MIX_IN1_V).expect("fixture"));
    rx.caps.media_types = vec!["video/jxsv".into()];
    f.reindex();
    let e = f.not_ready(&item("1", CAM1_V, Some("PGM")));
    assert!(matches!(e, NotReady::NoMatchingReceiver { .. }), "{e}");
}

#[test]
fn preset_connections_must_be_compatible() {
    let f = Fixture::new();
    assert_eq!(
        f.not_ready(&item("1", "PRESET-BROKEN", None)),
        NotReady::Incompatible {
            sender: "Camera 1 audio".into(),
            receiver: "Vision mixer in 2 video".into(),
            reason: "audio sender, video receiver".into(),
        }
    );
}

#[test]
fn bad_overrides_make_the_item_not_ready() {
    let f = Fixture::new();
    for (payload, fragment) in [
        ("<nmos><at>tomorrow</at></nmos>", "not an ISO 8601 time"),
        ("<nmos><at>2026-11-26T18:00:00</at></nmos>", "time zone"),
        ("<nmos><destination>PGM</nmos>", "not XML"),
        (
            "<nmos><audioMap output=\"mixer-in1\">in1:0 in1</audioMap></nmos>",
            "not <input id>:<channel index>",
        ),
        (
            "<nmos><audioMap output=\"mixer in1\">in1:0</audioMap></nmos>",
            "not an IS-08 output id",
        ),
        (
            "<nmos><audioMap output=\"mixer-in1\"> </audioMap></nmos>",
            "no entries",
        ),
    ] {
        let e = f.not_ready(&with_meta(item("1", CAM1_V, Some("PGM")), payload));
        let NotReady::BadOverride(why) = &e else {
            panic!("{payload}: expected a bad override, got {e}")
        };
        assert!(why.contains(fragment), "{payload}: {why}");
    }
    // An audio map for a destination without audio device needs a device.
    let e = f.not_ready(&with_meta(
        item("1", CAM2_V, Some("STUDIO-B")),
        "<nmos><audioMap output=\"pgm-out\">in1:0 in1:1</audioMap></nmos>",
    ));
    assert!(
        matches!(&e, NotReady::BadOverride(w) if w.contains("names no device")),
        "{e}"
    );
    // A bad override on the story counts too.
    let story = Story {
        metadata: vec![ours("<at>soon</at>")],
        ..Story::default()
    };
    let plan = f.resolve_in(&header(None), &story, &item("1", CAM1_V, Some("PGM")));
    assert!(
        matches!(&plan, Err(NotReady::BadOverride(w)) if w.starts_with("story: at \"soon\"")),
        "{plan:?}"
    );
    let mut hdr = header(None);
    hdr.metadata.push(ours("<nmos><destination>PGM</nmos>"));
    let plan = f.resolve_in(&hdr, &Story::default(), &item("1", CAM1_V, Some("PGM")));
    assert!(
        matches!(&plan, Err(NotReady::BadOverride(w)) if w.starts_with("running order: payload is not XML")),
        "{plan:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Overrides
// ---------------------------------------------------------------------------------------------

#[test]
fn audio_map_and_time_overrides_apply() {
    let f = Fixture::new();
    let it = with_meta(
        item("1", CAM1_V, Some("PGM")),
        "<nmos><audioMap output=\"mixer-in1\">in1:1 -</audioMap>\
         <audioMap output=\"pgm-out\" device=\"Vision mixer\">in1:0 in1:1</audioMap>\
         <at>2026-11-26T19:00:00+01:00</at></nmos>",
    );
    let route = f.route(&it);
    let map = &route.audio_maps[0].map;
    assert_eq!(
        map["mixer-in1"],
        vec![MapEntry::routed("in1", 1), MapEntry::unrouted()],
        "the override replaces the destination's output"
    );
    assert!(map.contains_key("pgm-out"));
    assert_eq!(
        route.scheduled,
        Some(Utc.with_ymd_and_hms(2026, 11, 26, 18, 0, 0).unwrap())
    );
}

#[test]
fn time_overrides_cascade_from_item_to_story_to_running_order() {
    let f = Fixture::new();
    let mut hdr = header(None);
    hdr.metadata
        .push(ours("<nmos><at>2026-11-26T18:00:00Z</at></nmos>"));
    let story = Story {
        metadata: vec![ours("<nmos><at>2026-11-26T18:05:00Z</at></nmos>")],
        ..Story::default()
    };
    let plain = item("1", CAM1_V, Some("PGM"));
    let at = |h: &RoHeader, s: &Story, i: &Item| f.resolve_in(h, s, i).map(|r| r.scheduled);
    let t = |m| Some(Utc.with_ymd_and_hms(2026, 11, 26, 18, m, 0).unwrap());
    assert_eq!(at(&hdr, &Story::default(), &plain), Ok(t(0)));
    assert_eq!(at(&hdr, &story, &plain), Ok(t(5)));
    let timed = with_meta(plain.clone(), "<nmos><at>2026-11-26T18:10:00Z</at></nmos>");
    assert_eq!(at(&hdr, &story, &timed), Ok(t(10)));
}

#[test]
fn override_payloads_parse_leniently() {
    let o = Override::parse_payload(
        "\n  <nmos>\n <Destination> STUDIO-B </Destination><unknown>x</unknown>\
         <gw:audioMap gw:output=\"out1\" device=\"5A8E6F0C-3B1D-4C2A-9F7E-1D2C3B4A5F60\">in1:0  in1:1\n -</gw:audioMap>\
         <AT>2026-11-26T18:00:00Z</AT></nmos>",
    )
    .expect("parses");
    assert_eq!(o.destination.as_deref(), Some("STUDIO-B"));
    assert_eq!(o.audio_maps.len(), 1);
    let m = &o.audio_maps[0];
    assert_eq!(m.output, "out1");
    assert_eq!(
        m.device,
        Some(mos_gateway::config::ResourceRef::Id(
            "5a8e6f0c-3b1d-4c2a-9f7e-1d2c3b4a5f60".into()
        ))
    );
    assert_eq!(
        m.entries,
        vec![
            MapEntry::routed("in1", 0),
            MapEntry::routed("in1", 1),
            MapEntry::unrouted()
        ]
    );
    assert_eq!(
        o.at,
        Some(Utc.with_ymd_and_hms(2026, 11, 26, 18, 0, 0).unwrap())
    );
    // Without the wrapper; an empty destination is no override.
    let bare = Override::parse_payload("<destination/><at>2026-11-26T18:00:00Z</at>").expect("ok");
    assert_eq!(bare.destination, None);
    assert!(bare.at.is_some());
    assert!(Override::parse_payload("").expect("empty").is_empty());
    assert!(
        Override::parse_payload("just text")
            .expect("text")
            .is_empty()
    );
}

#[test]
fn only_our_schema_is_read_and_later_blocks_win() {
    let other = MosExternalMetadata {
        scope: None,
        schema: "http://ncs.example/prompter.xsd".into(),
        payload: RawXml("<destination>PGM</destination><at>garbage</at>".into()),
    };
    let first = ours("<nmos><destination>PGM</destination><at>2026-11-26T18:00:00Z</at></nmos>");
    let second = MosExternalMetadata {
        scope: None,
        schema: format!(" {} ", SCHEMA.to_uppercase()),
        payload: RawXml("<nmos><destination>STUDIO-B</destination></nmos>".into()),
    };
    let o = Override::from_metadata(&[other.clone(), first, second], SCHEMA).expect("ok");
    assert_eq!(o.destination.as_deref(), Some("STUDIO-B"));
    assert!(o.at.is_some(), "kept from the first block");
    assert!(
        Override::from_metadata(&[other], SCHEMA)
            .expect("ok")
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Running orders and re-planning
// ---------------------------------------------------------------------------------------------

fn rundown(stories: Vec<Story>) -> Rundown {
    Rundown::from_running_order(RunningOrder {
        header: header(Some("PGM")),
        stories,
    })
    .expect("valid running order")
}

fn story(id: &str, items: Vec<Item>) -> Story {
    Story {
        id: id.to_owned(),
        items,
        ..Story::default()
    }
}

fn key(story: &str, item: &str) -> ItemKey {
    ItemKey {
        ro_id: "RO-EVENING-NEWS".into(),
        story_id: story.into(),
        item_id: item.into(),
    }
}

#[test]
fn every_item_of_a_running_order_is_planned_in_order() {
    let f = Fixture::new();
    let ro = rundown(vec![
        story(
            "S1",
            vec![item("1", CAM1_V, None), item("2", "CLIP-1", None)],
        ),
        story("S2", vec![item("1", CAM2_V, Some("STUDIO-B"))]),
    ]);
    let plans = resolve_rundown(&ro, &f.ctx());
    let keys: Vec<ItemKey> = plans.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, vec![key("S1", "1"), key("S1", "2"), key("S2", "1")]);
    assert_eq!(
        plans[0].1.as_ref().map(|r| r.destination.clone()),
        Ok("PGM".to_owned()),
        "roChannel"
    );
    assert!(matches!(plans[1].1, Err(NotReady::UnknownObject(_))));
    assert!(plans[2].1.is_ok());
}

#[test]
fn only_changed_new_and_removed_items_are_re_planned() {
    let mut f = Fixture::new();
    let ro = rundown(vec![
        story(
            "S1",
            vec![item("1", CAM1_V, None), item("2", CAM2_V, Some("STUDIO-B"))],
        ),
        story("S2", vec![item("1", CAM1_A, None)]),
    ]);
    let before = resolve_rundown(&ro, &f.ctx());
    // The same running order re-created: nothing to re-plan.
    assert!(changed_items(&before, &resolve_rundown(&ro, &f.ctx())).is_empty());
    // Camera 2 leaves the registry; story S2 is replaced by S3.
    f.catalogue.senders.remove(CAM2_V);
    f.reindex();
    let edited = rundown(vec![
        story(
            "S1",
            vec![item("1", CAM1_V, None), item("2", CAM2_V, Some("STUDIO-B"))],
        ),
        story("S3", vec![item("1", CAM1_A, None)]),
    ]);
    let after = resolve_rundown(&edited, &f.ctx());
    assert_eq!(
        changed_items(&before, &after),
        vec![key("S1", "2"), key("S3", "1"), key("S2", "1")]
    );
}

// ---------------------------------------------------------------------------------------------
// Presets as objects
// ---------------------------------------------------------------------------------------------

#[test]
fn presets_are_offered_as_objects() {
    let f = Fixture::new();
    let objects = f.mapping.preset_objects();
    assert_eq!(objects.len(), 3);
    let p = &objects[0];
    assert_eq!(p.id, "PRESET-INTERVIEW");
    assert_eq!(p.slug, "Interview 2-shot");
    assert_eq!(p.group.as_deref(), Some(PRESET_GROUP));
    assert_eq!(p.obj_type, ObjType::Video);
    assert_eq!(p.air, AirStatus::Ready);
    assert_eq!((p.revision, p.duration, p.status.as_str()), (1, 0, "NEW"));
    assert_eq!(p.created_by, "nmos.gateway.mos");
    assert!(
        p.description
            .as_str()
            .contains("\"Camera 1\" → \"Vision mixer in 1 video\"")
    );
    assert!(
        p.description
            .as_str()
            .contains("audio map on \"Vision mixer\"")
    );
    assert_eq!(objects[1].obj_type, ObjType::Audio);
    // They go into the object catalogue like any other object.
    let cat = MemoryCatalogue::new();
    for o in objects {
        cat.upsert(o).expect("stored");
    }
    assert!(cat.get("PRESET-GONE").is_some());
    assert!(!cat.is_placeholder("PRESET-GONE"));
}

#[test]
fn mapping_lookups() {
    let f = Fixture::with_default("studio-b");
    let m = &f.mapping;
    assert_eq!(m.mos_schema(), SCHEMA);
    assert_eq!(m.default_destination(), Some("STUDIO-B"));
    assert_eq!(m.destination(" pgm ").map(|d| d.name.as_str()), Some("PGM"));
    assert!(m.destination("PGM2").is_none());
    assert!(m.preset("preset-interview").is_none(), "objIDs are exact");
    assert!(m.binding("PH-X", Some("REMOTE BERLIN")).is_some());
    assert!(m.binding("PH-X", None).is_none());
    assert!(m.binding(PH_SALVO, Some("anything")).is_some());
    assert_eq!(m.destinations().len(), 9);
    assert_eq!(m.presets().len(), 3);
    assert_eq!(m.bindings().len(), 3);
}
