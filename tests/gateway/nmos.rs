//! The NMOS bridge end to end: an NCS builds a running order over TCP whose items are the
//! virtual studio's senders; resolution, READY, EXECUTE and STOP go to the studio over HTTP;
//! statuses come back to the NCS's upper port.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mos_gateway::config::Config;
use mos_gateway::mos::Message;
use mos_gateway::mos::messages::{AckStatus, MosAck, RoAck};
use mos_gateway::mos::structures::MosObj;
use mos_gateway::nmos::schemas::SchemaSet;
use mos_gateway::nmos::service::NmosService;
use mos_gateway::nmos::studio::{
    Fault, FaultTarget, RequestRecord, ResourceType, StudioHandle, StudioSpec, VirtualStudio,
};
use mos_gateway::server::Gateway;
use mos_gateway::session::PortRole;
use tokio_util::sync::CancellationToken;

use super::support::*;

const STUDIO: &str = r#"
[[devices]]
label = "CAM1"
senders = [{ label = "CAM1-V", format = "video" }]

[[devices]]
label = "CAM2"
senders = [{ label = "CAM2-V", format = "video" }]

[[devices]]
label = "MIXER"
receivers = [{ label = "MIX-IN1", format = "video" }, { label = "MIX-IN2", format = "video" }]

[[devices]]
label = "PLAYOUT1"
senders = [{ label = "PLAYOUT1-A", format = "audio", channels = 8 }]

[[devices]]
label = "AUDIO"
receivers = [{ label = "AUD-IN1", format = "audio" }]

[devices.channel_mapping]
inputs = [
  { id = "in1", channels = 8, block_size = 2, reordering = false, parent_receiver = "AUD-IN1" },
  { id = "in2", channels = 2 },
  { id = "tone", channels = 2 },
]
outputs = [
  { id = "OutA", channels = 4, routable_inputs = ["in1", "in2"] },
  { id = "Mon", channels = 2, routable_inputs = ["tone", "in2"], allow_unrouted = false },
]

[devices.channel_mapping.map]
OutA = ["in1:0", "in1:1", "-", "-"]
Mon = ["tone:0", "tone:1"]
"#;

/// The gateway's own mosSchema in these tests (overrides are read under it).
const SCHEMA: &str = "http://test.example/mos/nmos-overrides.xsd";

/// The mapping every test starts with (unless it gives its own).
const MAPPING: &str = r#"
[[destination]]
name = "PGM"
receivers = ["MIX-IN1"]

[[destination]]
name = "AUX"
receivers = ["MIX-IN2"]

[[destination]]
name = "AUDIO-PGM"
receivers = ["AUD-IN1"]
audio_device = "AUDIO"
audio_map = { "OutA" = ["in1:0", "in1:1", "in2:0", "in2:1"] }

[[destination]]
name = "AUDIO-BAD"
receivers = ["AUD-IN1"]
audio_device = "AUDIO"
audio_map = { "OutA" = ["tone:0", "tone:1", "-", "-"] }
"#;

struct Studio {
    studio: StudioHandle,
    gw: Running,
    /// The NCS's upper port (statuses arrive there).
    ncs: FakeNcs,
    /// The NCS's lower port (mosObj pushes arrive there).
    lower: FakeNcs,
    service: NmosService,
    /// The configuration text before the mapping (same ports on reload).
    base: String,
    _dir: tempfile::TempDir,
}

impl Studio {
    /// An NCS on the upper port creates the running order with `items`; returns it and the
    /// gateway's connection to the NCS's upper port, where the statuses arrive.
    async fn create(&self, items: &[String]) -> (Ncs, FakeConn) {
        let mut ncs = Ncs::connect(self.gw.upper).await;
        ncs.ok(&ro_create(items)).await;
        (ncs, self.ncs.accept().await)
    }

    /// The running gateway's configuration (same ports, same `[nmos]`) with another mapping
    /// (`[[destination]]`, `[[preset]]`, `[[binding]]` tables): what SIGHUP would read.
    fn config_with_mapping(&self, mapping: &str) -> Config {
        Config::from_toml_str(&format!("{}\n{mapping}", self.base), "test").unwrap()
    }
}

/// The configuration text without the mapping: `nmos` is added to the `[nmos]` table.
fn gateway_config_text(
    dir: &std::path::Path,
    studio: &StudioHandle,
    ncs_lower: u16,
    ncs_upper: u16,
    nmos: &str,
) -> String {
    let mos = config_text(
        dir,
        ncs_lower,
        ncs_upper,
        "heartbeat_interval_s = 0\nack_timeout_s = 2",
    );
    format!(
        r#"{mos}
[nmos]
registry = "{url}"
allow_http = true
http_timeout_ms = 500
debounce_ms = 300
mos_schema = "{SCHEMA}"
{nmos}
"#,
        url = studio.query_url(),
    )
}

/// The gateway and its NMOS side, started as `mos-gateway run` starts them.
async fn launch(config: &Config) -> (Running, NmosService) {
    let gw = Gateway::bind(config.clone()).await.unwrap();
    let shutdown = CancellationToken::new();
    let service = NmosService::start(&gw, config, shutdown.clone()).unwrap();
    let running = Running {
        lower: gw.local_addr(PortRole::Lower).unwrap(),
        upper: gw.local_addr(PortRole::Upper).unwrap(),
        query: gw.local_addr(PortRole::Query).unwrap(),
        links: gw.links(NCS_ID),
        status: gw.status_sender(),
        catalogue: gw.catalogue(),
        shutdown: shutdown.clone(),
        task: tokio::spawn(gw.run(shutdown)),
    };
    (running, service)
}

/// Stops the gateway and starts it again on the same ports, data directory and studio (a
/// restart mid-show).
async fn restart(s: Studio) -> Studio {
    restart_after(s, async {}).await
}

/// [`restart`], with `meanwhile` run while the gateway is stopped.
async fn restart_after(s: Studio, meanwhile: impl std::future::Future<Output = ()>) -> Studio {
    let Studio {
        studio,
        gw,
        ncs,
        lower,
        service,
        base,
        _dir,
    } = s;
    gw.stop().await;
    drop(service);
    meanwhile.await;
    let config = Config::from_toml_str(&format!("{base}\n{MAPPING}"), "test").unwrap();
    let (running, service) = launch(&config).await;
    Studio {
        studio,
        gw: running,
        ncs,
        lower,
        service,
        base,
        _dir,
    }
}

async fn start(nmos: &str) -> Studio {
    start_with(nmos, MAPPING).await
}

/// A studio, a gateway with the NMOS service on it (`nmos` in its `[nmos]` table, `mapping`
/// after it), and the fake NCS's two listeners.
async fn start_with(nmos: &str, mapping: &str) -> Studio {
    let spec = StudioSpec::from_toml(STUDIO).unwrap();
    let schemas = Arc::new(SchemaSet::load_default().unwrap());
    let studio = VirtualStudio::start(spec, "127.0.0.1:0".parse().unwrap(), schemas)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ncs = FakeNcs::bind().await;
    let lower = FakeNcs::bind().await;
    let base = gateway_config_text(dir.path(), &studio, lower.port(), ncs.port(), nmos);
    let config = Config::from_toml_str(&format!("{base}\n{mapping}"), "test").unwrap();
    let (running, service) = launch(&config).await;
    Studio {
        studio,
        gw: running,
        ncs,
        lower,
        service,
        base,
        _dir: dir,
    }
}

fn item(id: &str, obj: &str, channel: &str) -> String {
    item_with(id, obj, channel, "")
}

/// An item whose mosExternalMetadata under the gateway's schema carries `payload` (none when
/// empty); no itemChannel when `channel` is empty.
fn item_with(id: &str, obj: &str, channel: &str, payload: &str) -> String {
    let channel = if channel.is_empty() {
        String::new()
    } else {
        format!("<itemChannel>{channel}</itemChannel>")
    };
    let metadata = if payload.is_empty() {
        String::new()
    } else {
        format!(
            "<mosExternalMetadata><mosScope>PLAYLIST</mosScope><mosSchema>{SCHEMA}</mosSchema>\
             <mosPayload><nmos>{payload}</nmos></mosPayload></mosExternalMetadata>"
        )
    };
    format!(
        "<item><itemID>{id}</itemID><objID>{obj}</objID><mosID>{MOS_ID}</mosID>{channel}{metadata}</item>"
    )
}

fn ro_create(items: &[String]) -> String {
    format!(
        "<roCreate><roID>RO1</roID><roSlug>Show</roSlug><story><storyID>S1</storyID>{}</story></roCreate>",
        items.concat()
    )
}

fn ro_ctrl(item: &str, command: &str) -> String {
    format!(
        "<roCtrl><roID>RO1</roID><storyID>S1</storyID><itemID>{item}</itemID><command>{command}</command></roCtrl>"
    )
}

/// Statuses from the gateway's upper link, each acknowledged: (itemID, status).
async fn next_status(conn: &mut FakeConn) -> (String, String) {
    loop {
        let m = conn.recv().await;
        if let Message::RoItemStat(s) = &m.message {
            let out = (s.item_id.clone(), s.status.clone());
            conn.reply(&m, Message::RoAck(RoAck::ok(&s.ro_id))).await;
            return out;
        }
        conn.reply(&m, Message::RoAck(RoAck::ok(""))).await;
    }
}

/// Reads statuses until every item in `want` has that status (the last one wins), within
/// `secs`; returns the statuses seen in order.
async fn wait_statuses(
    conn: &mut FakeConn,
    want: &[(&str, &str)],
    secs: u64,
) -> Vec<(String, String)> {
    let mut latest: HashMap<String, String> = HashMap::new();
    let mut seen = Vec::new();
    let done = |latest: &HashMap<String, String>| {
        want.iter()
            .all(|(i, s)| latest.get(*i).is_some_and(|got| got.starts_with(s)))
    };
    let r = tokio::time::timeout(Duration::from_secs(secs), async {
        while !done(&latest) {
            let (i, s) = next_status(conn).await;
            seen.push((i.clone(), s.clone()));
            latest.insert(i, s);
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "statuses {want:?} not reached within {secs} s; saw {seen:?}"
    );
    seen
}

fn is_patch_of(r: &RequestRecord, receiver: &str) -> bool {
    r.method == "PATCH"
        && r.path
            .ends_with(&format!("single/receivers/{receiver}/staged"))
}

async fn patch_to(
    studio: &StudioHandle,
    receiver: &str,
    activation: Option<&str>,
) -> RequestRecord {
    let receiver = receiver.to_string();
    let activation = activation.map(str::to_string);
    studio
        .wait_for_request(
            move |r| {
                is_patch_of(r, &receiver)
                    && r.body
                        .as_ref()
                        .and_then(|b| b["activation"]["mode"].as_str())
                        == activation.as_deref()
            },
            Duration::from_secs(5),
        )
        .await
        .expect("no PATCH of the receiver")
}

/// The PATCH that cancels a receiver's scheduled activation (`activation.mode: null`, no
/// sender), once the studio has it.
async fn cancel_patch_to(studio: &StudioHandle, receiver: &str) -> RequestRecord {
    let receiver = receiver.to_string();
    studio
        .wait_for_request(
            move |r| {
                is_patch_of(r, &receiver)
                    && r.body.as_ref().is_some_and(|b| {
                        b["activation"]["mode"].is_null() && b.get("sender_id").is_none()
                    })
            },
            Duration::from_secs(5),
        )
        .await
        .expect("the scheduled IS-05 activation was not cancelled")
}

/// Waits until just past `at`, then checks that `receiver` does not take `sender`.
async fn assert_not_switched_at(
    studio: &StudioHandle,
    at: chrono::DateTime<chrono::Utc>,
    receiver: &str,
    sender: &str,
) {
    let wait = (at - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(300)).await;
    let active = studio.receiver_active(receiver.parse().unwrap()).unwrap();
    assert_ne!(active["sender_id"], sender, "switched at {at}: {active}");
}

#[tokio::test]
async fn items_resolve_stage_take_and_report_back() {
    let s = start("").await;
    let cam1 = s.studio.sender_id("CAM1-V").unwrap().to_string();
    let cam2 = s.studio.sender_id("CAM2-V").unwrap().to_string();
    let in1 = s.studio.receiver_id("MIX-IN1").unwrap().to_string();
    let (mut ncs, mut upper) = s
        .create(&[
            item("I1", &cam1, "PGM"),
            item("I2", &cam2, "PGM"),
            item("I3", "NO-SUCH-OBJECT", "PGM"),
            item("I4", &cam1, "STUDIO-Z"),
        ])
        .await;
    wait_statuses(
        &mut upper,
        &[
            ("I1", "READY"),
            ("I2", "READY"),
            ("I3", "NOT READY: unknown object NO-SUCH-OBJECT"),
            ("I4", "NOT READY: destination unknown"),
        ],
        10,
    )
    .await;

    // READY stages: sender, master_enable and the transport file, no activation.
    s.studio.clear_requests();
    ncs.ok(&ro_ctrl("I1", "READY")).await;
    let staged = patch_to(&s.studio, &in1, None).await;
    let body = staged.body.unwrap();
    assert_eq!(body["sender_id"], cam1.as_str());
    assert_eq!(body["master_enable"], true);
    assert!(
        body["transport_file"]["data"]
            .as_str()
            .is_some_and(|d| d.contains("v=0")),
        "{body}"
    );
    assert!(
        body.get("activation").is_none() || body["activation"]["mode"].is_null(),
        "{body}"
    );
    assert_eq!(staged.status, 200);

    // EXECUTE activates immediately, restating sender and master_enable; PLAY after /active.
    ncs.ok(&ro_ctrl("I1", "EXECUTE")).await;
    let take = patch_to(&s.studio, &in1, Some("activate_immediate")).await;
    let body = take.body.unwrap();
    assert_eq!(body["sender_id"], cam1.as_str());
    assert_eq!(body["master_enable"], true);
    wait_statuses(&mut upper, &[("I1", "PLAY")], 5).await;
    let active = s.studio.receiver_active(in1.parse().unwrap()).unwrap();
    assert_eq!(active["sender_id"], cam1.as_str());

    // A later take on the same receiver (without READY): the earlier item stops.
    ncs.ok(&ro_ctrl("I2", "EXECUTE")).await;
    let seen = wait_statuses(&mut upper, &[("I2", "PLAY"), ("I1", "STOP")], 5).await;
    assert_eq!(seen.last().map(|(i, _)| i.as_str()), Some("I1"), "{seen:?}");
    let active = s.studio.receiver_active(in1.parse().unwrap()).unwrap();
    assert_eq!(active["sender_id"], cam2.as_str());

    // Items that cannot resolve are refused with the reason; unknown targets too.
    let refused = ncs.refused(&ro_ctrl("I3", "EXECUTE")).await;
    assert!(refused.contains("NOT READY: unknown object"), "{refused}");
    let refused = ncs.refused(&ro_ctrl("I9", "READY")).await;
    assert!(refused.contains("I9"), "{refused}");

    // An edit re-plans: I4 now goes to AUX and becomes READY.
    ncs.ok(&format!(
        "<roElementAction operation=\"REPLACE\"><roID>RO1</roID><element_target><storyID>S1</storyID><itemID>I4</itemID></element_target><element_source>{}</element_source></roElementAction>",
        item("I4", &cam1, "AUX")
    ))
    .await;
    wait_statuses(&mut upper, &[("I4", "READY")], 5).await;

    // listMachInfo states Profile 5 now that roCtrl works.
    let info = ncs.request("<reqMachInfo/>").await;
    let Message::ListMachInfo(info) = info.message else {
        panic!("{:?}", info.message)
    };
    match info.profiles {
        mos_gateway::mos::messages::ProfileSupport::Flat(p) => assert!(p[5], "{p:?}"),
        other => panic!("{other:?}"),
    }
    s.gw.stop().await;
}

/// An NCS resending a roCtrl (its roAck was lost with the socket) gets the same roAck
/// again and the take is not made twice; the same messageID with another command is
/// refused.
#[tokio::test]
async fn a_resent_ro_ctrl_is_answered_again_not_carried_out_twice() {
    let s = start("").await;
    let cam1 = s.studio.sender_id("CAM1-V").unwrap().to_string();
    let in1 = s.studio.receiver_id("MIX-IN1").unwrap().to_string();
    let (mut ncs, mut upper) = s.create(&[item("I1", &cam1, "PGM")]).await;
    wait_statuses(&mut upper, &[("I1", "READY")], 10).await;
    s.studio.clear_requests();
    let (id, text) = ncs.envelope(&ro_ctrl("I1", "EXECUTE"));
    ncs.send_text(&text).await;
    let first = ncs.recv().await;
    wait_statuses(&mut upper, &[("I1", "PLAY")], 5).await;
    // The resend, on a new socket as an NCS does after a drop.
    let mut again = Ncs::connect(s.gw.upper).await;
    again.send_text(&text).await;
    let second = again.recv().await;
    assert_eq!(second.message_id.as_deref(), Some(id.as_str()));
    assert_eq!(second.message, first.message);
    upper.expect_nothing(500).await;
    let takes = s
        .studio
        .requests()
        .into_iter()
        .filter(|r| {
            is_patch_of(r, &in1)
                && r.body
                    .as_ref()
                    .is_some_and(|b| b["activation"]["mode"] == "activate_immediate")
        })
        .count();
    assert_eq!(takes, 1, "the resend took the item again");
    // The same messageID for another command: refused.
    let other = text.replace("EXECUTE", "STOP");
    again.send_text(&other).await;
    let refused = again.recv().await;
    let Message::RoAck(ack) = refused.message else {
        panic!("{:?}", refused.message)
    };
    assert!(ack.status.contains("messageID"), "{}", ack.status);
    upper.expect_nothing(300).await;
    s.gw.stop().await;
}

/// `/staged` belongs to the receiver, not to the item: a readied item taken after another
/// item used the same receiver must put its own stream on air, not the other item's.
#[tokio::test]
async fn a_readied_item_taken_after_another_plays_its_own_stream() {
    let s = start("").await;
    let cam1 = s.studio.sender_id("CAM1-V").unwrap().to_string();
    let cam2 = s.studio.sender_id("CAM2-V").unwrap().to_string();
    let in1 = s.studio.receiver_id("MIX-IN1").unwrap().to_string();
    let (mut ncs, mut upper) = s
        .create(&[item("I1", &cam1, "PGM"), item("I2", &cam2, "PGM")])
        .await;
    wait_statuses(&mut upper, &[("I1", "READY"), ("I2", "READY")], 10).await;

    s.studio.clear_requests();
    ncs.ok(&ro_ctrl("I1", "READY")).await;
    let staged = patch_to(&s.studio, &in1, None).await;
    let cam1_sdp = staged.body.unwrap()["transport_file"]["data"]
        .as_str()
        .expect("READY stages CAM1's transport file")
        .to_string();

    // Another item takes the receiver without READY: it stages its own stream there.
    ncs.ok(&ro_ctrl("I2", "EXECUTE")).await;
    wait_statuses(&mut upper, &[("I2", "PLAY")], 5).await;
    let active = s.studio.receiver_active(in1.parse().unwrap()).unwrap();
    assert_eq!(active["sender_id"], cam2.as_str());
    assert_ne!(active["transport_file"]["data"], cam1_sdp.as_str());

    // The readied item is taken: its sender and its stream go on air.
    ncs.ok(&ro_ctrl("I1", "EXECUTE")).await;
    wait_statuses(&mut upper, &[("I1", "PLAY")], 5).await;
    let active = s.studio.receiver_active(in1.parse().unwrap()).unwrap();
    assert_eq!(active["sender_id"], cam1.as_str());
    assert_eq!(
        active["transport_file"]["data"],
        cam1_sdp.as_str(),
        "CAM1 taken with another sender's stream"
    );
    s.gw.stop().await;
}

#[tokio::test]
async fn device_faults_end_in_error_statuses_and_acks_never_wait() {
    let s = start("").await;
    let cam1 = s.studio.sender_id("CAM1-V").unwrap().to_string();
    let mixer = s.studio.device_id("MIXER").unwrap();
    let (mut ncs, mut upper) = s.create(&[item("I1", &cam1, "PGM")]).await;
    wait_statuses(&mut upper, &[("I1", "READY")], 10).await;

    for (code, reason) in [(400, "ERROR"), (423, "ERROR"), (500, "ERROR")] {
        s.studio.set_fault(
            FaultTarget::device(mixer).method("PATCH"),
            Fault::Status { code, sticky: true },
        );
        ncs.ok(&ro_ctrl("I1", "EXECUTE")).await;
        let seen = wait_statuses(&mut upper, &[("I1", reason)], 2).await;
        let (_, text) = seen.last().unwrap();
        assert!(text.contains("MIX-IN1"), "HTTP {code}: {text}");
        // The receiver's real state, re-read after the error, is part of the report.
        assert!(text.contains("active:"), "HTTP {code}: {text}");
        s.studio.clear_faults();
    }

    // A device that does not answer: the take times out (http_timeout_ms = 500) into ERROR,
    // while the NCS's edits keep being acknowledged.
    s.studio.set_fault(
        FaultTarget::device(mixer),
        Fault::Delay(Duration::from_secs(3)),
    );
    ncs.ok(&ro_ctrl("I1", "EXECUTE")).await;
    ncs.ok("<roReadyToAir><roID>RO1</roID><roAir>READY</roAir></roReadyToAir>")
        .await;
    wait_statuses(&mut upper, &[("I1", "ERROR")], 2).await;
    s.studio.clear_faults();

    // The device leaves the registry: the item is NOT READY with the reason.
    assert!(s.studio.remove_device(mixer));
    wait_statuses(&mut upper, &[("I1", "NOT READY: receiver gone")], 3).await;
    assert!(s.studio.restore_device(mixer));
    wait_statuses(&mut upper, &[("I1", "READY")], 3).await;

    // The registry drops the WebSocket: the gateway resubscribes and still follows changes.
    s.studio.drop_websockets();
    let cam1_device = s.studio.device_id("CAM1").unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(s.studio.remove_device(cam1_device));
    wait_statuses(&mut upper, &[("I1", "NOT READY")], 5).await;
    s.gw.stop().await;
}

#[tokio::test]
async fn a_restart_mid_show_does_not_flash_items_not_ready() {
    let s = start("").await;
    let cam1 = s.studio.sender_id("CAM1-V").unwrap().to_string();
    let cam2 = s.studio.sender_id("CAM2-V").unwrap().to_string();
    let (ncs, mut upper) = s
        .create(&[item("I1", &cam1, "PGM"), item("I2", &cam2, "PGM")])
        .await;
    wait_statuses(&mut upper, &[("I1", "READY"), ("I2", "READY")], 10).await;
    drop(ncs);

    // The gateway restarts with the running order in its store: the NCS sees READY again,
    // never a NOT READY while the catalogue is still loading.
    let s = restart(s).await;
    let mut upper = s.ncs.accept().await;
    let seen = wait_statuses(&mut upper, &[("I1", "READY"), ("I2", "READY")], 10).await;
    assert!(seen.iter().all(|(_, st)| st == "READY"), "{seen:?}");
    s.gw.stop().await;
}

/// An item on air when the gateway restarts is told PLAY again, not READY, and still
/// owns its receiver: the next take there stops it.
#[tokio::test]
async fn a_restart_mid_show_keeps_the_item_on_air_playing() {
    let s = start("").await;
    let cam1 = s.studio.sender_id("CAM1-V").unwrap().to_string();
    let cam2 = s.studio.sender_id("CAM2-V").unwrap().to_string();
    let (mut ncs, mut upper) = s
        .create(&[item("I1", &cam1, "PGM"), item("I2", &cam2, "PGM")])
        .await;
    wait_statuses(&mut upper, &[("I1", "READY"), ("I2", "READY")], 10).await;
    ncs.ok(&ro_ctrl("I1", "EXECUTE")).await;
    wait_statuses(&mut upper, &[("I1", "PLAY")], 5).await;
    drop(ncs);

    let s = restart(s).await;
    let mut upper = s.ncs.accept().await;
    let seen = wait_statuses(&mut upper, &[("I1", "PLAY"), ("I2", "READY")], 10).await;
    assert!(
        !seen.iter().any(|(i, st)| i == "I1" && st != "PLAY"),
        "{seen:?}"
    );
    let mut ncs = Ncs::connect(s.gw.upper).await;
    ncs.ok(&ro_ctrl("I2", "EXECUTE")).await;
    wait_statuses(&mut upper, &[("I2", "PLAY"), ("I1", "STOP")], 5).await;

    // While the gateway is down, a router panel puts CAM1 back on the receiver: I2, on air
    // before the stop, is STOP after it.
    let url = staged_url(&s.studio, "MIXER", "receivers", "MIX-IN1");
    let switch = activate_elsewhere(
        url,
        serde_json::json!({"sender_id": cam1, "master_enable": true}),
    );
    drop(ncs);
    let s = restart_after(s, switch).await;
    let mut upper = s.ncs.accept().await;
    let seen = wait_statuses(&mut upper, &[("I2", "STOP")], 10).await;
    assert_eq!(last_of(&seen, "I2"), "STOP", "{seen:?}");
    s.gw.stop().await;
}

#[tokio::test]
async fn a_receiver_switched_by_another_controller_stops_its_item() {
    let s = start("").await;
    let cam1 = s.studio.sender_id("CAM1-V").unwrap().to_string();
    let cam2 = s.studio.sender_id("CAM2-V").unwrap().to_string();
    let (mut ncs, mut upper) = s.create(&[item("I1", &cam1, "PGM")]).await;
    wait_statuses(&mut upper, &[("I1", "READY")], 10).await;
    ncs.ok(&ro_ctrl("I1", "EXECUTE")).await;
    wait_statuses(&mut upper, &[("I1", "PLAY")], 5).await;

    // A router panel (another IS-05 controller) puts CAM2 on the receiver: the registry
    // shows it, and the item is no longer on air.
    activate_elsewhere(
        staged_url(&s.studio, "MIXER", "receivers", "MIX-IN1"),
        serde_json::json!({"sender_id": cam2, "master_enable": true}),
    )
    .await;
    wait_statuses(&mut upper, &[("I1", "STOP")], 5).await;
    s.gw.stop().await;
}

#[tokio::test]
async fn a_sender_whose_stream_moved_after_ready_is_taken_with_its_new_transport_file() {
    let s = start("").await;
    let cam1 = s.studio.sender_id("CAM1-V").unwrap();
    let in1 = s.studio.receiver_id("MIX-IN1").unwrap().to_string();
    let (mut ncs, mut upper) = s.create(&[item("I1", &cam1.to_string(), "PGM")]).await;
    wait_statuses(&mut upper, &[("I1", "READY")], 10).await;
    s.studio.clear_requests();
    ncs.ok(&ro_ctrl("I1", "READY")).await;
    let staged = patch_to(&s.studio, &in1, None).await;
    let old_sdp = staged.body.unwrap()["transport_file"]["data"]
        .as_str()
        .unwrap()
        .to_string();

    // CAM1's stream moves to another multicast group (its own IS-05 sender activated by
    // someone else): same manifest_href, new SDP, new IS-04 version.
    activate_elsewhere(
        staged_url(&s.studio, "CAM1", "senders", "CAM1-V"),
        serde_json::json!({"transport_params": [{"destination_ip": "239.77.77.77"}]}),
    )
    .await;
    let version = s.studio.resource(ResourceType::Senders, cam1).unwrap()["version"].clone();
    let mut catalogue = s.service.discovery().catalogue();
    let seen = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let now = catalogue
                .borrow_and_update()
                .sender(&cam1.to_string())
                .map(|x| x.core.version.clone());
            if now.as_deref() == version.as_str() {
                return;
            }
            catalogue.changed().await.unwrap();
        }
    })
    .await;
    assert!(seen.is_ok(), "the gateway did not see CAM1's new version");
    // The bridge re-resolves on the same change.
    tokio::time::sleep(Duration::from_millis(300)).await;

    ncs.ok(&ro_ctrl("I1", "EXECUTE")).await;
    wait_statuses(&mut upper, &[("I1", "PLAY")], 5).await;
    let active = s.studio.receiver_active(in1.parse().unwrap()).unwrap();
    let sdp = active["transport_file"]["data"].as_str().unwrap();
    assert_ne!(
        sdp, old_sdp,
        "taken with the transport file of before the move"
    );
    assert!(sdp.contains("239.77.77.77"), "{sdp}");
    s.gw.stop().await;
}

/// The IS-05 `staged` URL of the receiver or sender (`kind`) labelled `label` on `device`.
fn staged_url(studio: &StudioHandle, device: &str, kind: &str, label: &str) -> String {
    let id = match kind {
        "receivers" => studio.receiver_id(label),
        _ => studio.sender_id(label),
    }
    .unwrap();
    let device = studio.device_id(device).unwrap();
    format!(
        "{}/single/{kind}/{id}/staged",
        studio.connection_url(device)
    )
}

/// Another IS-05 controller (a router panel) PATCHes `url` with `body` and an immediate
/// activation; the device must accept it.
async fn activate_elsewhere(url: String, mut body: serde_json::Value) {
    body["activation"] = serde_json::json!({"mode": "activate_immediate"});
    let answer = reqwest::Client::new()
        .patch(&url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Helpers of the tests below.

/// The last status of `item` in `seen`.
fn last_of<'a>(seen: &'a [(String, String)], item: &str) -> &'a str {
    seen.iter()
        .rev()
        .find(|(i, _)| i == item)
        .map(|(_, s)| s.as_str())
        .unwrap_or_else(|| panic!("no status for {item}: {seen:?}"))
}

/// Index in the studio's log of the first request matching `pred`.
fn index_of(log: &[RequestRecord], pred: impl Fn(&RequestRecord) -> bool) -> Option<usize> {
    log.iter().position(pred)
}

/// Reads the gateway's pushes on the NCS's lower port, acknowledging each mosObj, until
/// `done` holds for the objects seen so far (within `secs`); returns them in order.
async fn objects_until(
    conn: &mut FakeConn,
    secs: u64,
    done: impl Fn(&[MosObj]) -> bool,
) -> Vec<MosObj> {
    let mut seen: Vec<MosObj> = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(secs), async {
        while !done(&seen) {
            let m = conn.recv().await;
            if let Message::MosObj(o) = &m.message {
                seen.push(o.clone());
            }
            conn.reply(&m, Message::MosAck(MosAck::ack("", ""))).await;
        }
    })
    .await;
    let brief: Vec<(String, String)> = seen
        .iter()
        .map(|o| (o.id.clone(), o.status.clone()))
        .collect();
    assert!(
        r.is_ok(),
        "lower port: not reached within {secs} s; saw {brief:?}"
    );
    seen
}

/// Every mosObj pushed on the lower port during `ms` milliseconds (each acknowledged).
async fn objects_during(conn: &mut FakeConn, ms: u64) -> Vec<MosObj> {
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(Duration::from_millis(ms), async {
        loop {
            let m = conn.recv().await;
            if let Message::MosObj(o) = &m.message {
                seen.push(o.clone());
            }
            conn.reply(&m, Message::MosAck(MosAck::ack("", ""))).await;
        }
    })
    .await;
    seen
}

/// The studio's pending IS-08 activations of a device (ids), read over HTTP.
async fn pending_activations(studio: &StudioHandle, device: uuid::Uuid) -> Vec<String> {
    let url = format!("{}/map/activations", studio.channel_mapping_url(device));
    let body: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    body.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn is_connection_api(r: &RequestRecord) -> bool {
    r.path.contains("/x-nmos/connection/")
}

// ---------------------------------------------------------------------------------------------
// IS-08

#[tokio::test]
async fn audio_destination_maps_channels_with_is08_after_the_is05_take() {
    let s = start("").await;
    let audio = s.studio.sender_id("PLAYOUT1-A").unwrap().to_string();
    let aud_in = s.studio.receiver_id("AUD-IN1").unwrap().to_string();
    let device = s.studio.device_id("AUDIO").unwrap();
    let (mut ncs, mut upper) = s
        .create(&[
            item("A1", &audio, "AUDIO-PGM"),
            item("A2", &audio, "AUDIO-BAD"),
            item_with(
                "A3",
                &audio,
                "AUDIO-PGM",
                r#"<audioMap output="OutA">in1:1 in1:2 in2:0 in2:1</audioMap>"#,
            ),
        ])
        .await;
    // Maps that break the device's constraints are refused when the running order arrives.
    let seen = wait_statuses(
        &mut upper,
        &[
            ("A1", "READY"),
            (
                "A2",
                "NOT READY: IS-08: output OutA channel 0: input tone not routable to OutA",
            ),
            (
                "A3",
                "NOT READY: IS-08: output OutA channel 0: input in1 block size 2",
            ),
        ],
        10,
    )
    .await;
    assert!(last_of(&seen, "A2").contains("+1 more"), "{seen:?}");
    // ... before any take: nothing but reads went to the devices.
    let writes: Vec<String> = s
        .studio
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/dev/") && r.method != "GET" && r.method != "HEAD")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    let refused = ncs.refused(&ro_ctrl("A2", "EXECUTE")).await;
    assert!(refused.contains("IS-08"), "{refused}");

    // EXECUTE: the IS-05 take on the receiver, then the map on the audio device.
    s.studio.clear_requests();
    ncs.ok(&ro_ctrl("A1", "EXECUTE")).await;
    let activations = format!("/dev/{device}/x-nmos/channelmapping/v1.0/map/activations");
    let post = s
        .studio
        .wait_for_request(
            |r| r.method == "POST" && r.path.ends_with("map/activations"),
            Duration::from_secs(5),
        )
        .await
        .expect("no IS-08 activation");
    assert_eq!(post.path, activations);
    assert_eq!(post.status, 200);
    let body = post.body.unwrap();
    let ch = |input: &str, index: u32| serde_json::json!({"input": input, "channel_index": index});
    let expected = serde_json::json!({
        "activation": {"mode": "activate_immediate", "requested_time": null},
        "action": {"OutA": {
            "0": ch("in1", 0), "1": ch("in1", 1), "2": ch("in2", 0), "3": ch("in2", 1)
        }}
    });
    assert_eq!(body, expected);
    let schemas = SchemaSet::load_default().unwrap();
    assert!(schemas.validate_is08_activation(&body).is_ok());
    let log = s.studio.requests();
    let patch = index_of(&log, |r| {
        is_patch_of(r, &aud_in)
            && r.body.as_ref().is_some_and(|b| {
                b["activation"]["mode"] == "activate_immediate" && b["sender_id"] == audio.as_str()
            })
    })
    .expect("no IS-05 take of AUD-IN1");
    let map = index_of(&log, |r| r.method == "POST" && r.path == activations).unwrap();
    assert!(patch < map, "the map went before the IS-05 take: {log:?}");
    wait_statuses(&mut upper, &[("A1", "PLAY")], 5).await;
    let active = s.studio.channel_map_active(device).unwrap();
    assert_eq!(active["map"]["OutA"], expected["action"]["OutA"]);
    assert_eq!(
        active["map"]["Mon"]["0"],
        ch("tone", 0),
        "other outputs left alone"
    );
    assert_eq!(
        s.studio.receiver_active(aud_in.parse().unwrap()).unwrap()["sender_id"],
        audio.as_str()
    );
    s.gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Timed items

/// A whole second between 2 and 3 s from now.
fn soon() -> chrono::DateTime<chrono::Utc> {
    let t = chrono::Utc::now() + chrono::Duration::seconds(3);
    chrono::DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}

#[tokio::test]
async fn timed_item_is_scheduled_in_tai_and_plays_once_its_time_has_come() {
    let s = start("").await;
    let cam1 = s.studio.sender_id("CAM1-V").unwrap().to_string();
    let in1 = s.studio.receiver_id("MIX-IN1").unwrap().to_string();
    let at = soon();
    let (mut ncs, mut upper) = s
        .create(&[item_with(
            "T1",
            &cam1,
            "PGM",
            &format!("<at>{}</at>", at.to_rfc3339()),
        )])
        .await;
    wait_statuses(&mut upper, &[("T1", "READY")], 10).await;
    ncs.ok(&ro_ctrl("T1", "EXECUTE")).await;
    let take = patch_to(&s.studio, &in1, Some("activate_scheduled_absolute")).await;
    let body = take.body.unwrap();
    // TAI = UTC + 37 s since 2017.
    assert_eq!(
        body["activation"]["requested_time"],
        format!("{}:0", at.timestamp() + 37).as_str(),
        "{body}"
    );
    assert_eq!(body["sender_id"], cam1.as_str());
    assert_eq!(body["master_enable"], true);
    assert_eq!(take.status, 202);
    wait_statuses(&mut upper, &[("T1", "PLAY")], 6).await;
    assert!(
        chrono::Utc::now() >= at,
        "PLAY before the scheduled time {at}"
    );
    let active = s.studio.receiver_active(in1.parse().unwrap()).unwrap();
    assert_eq!(active["sender_id"], cam1.as_str());
    assert_eq!(active["master_enable"], true);
    s.gw.stop().await;
}

#[tokio::test]
async fn deleting_an_item_cancels_its_scheduled_is08_activation() {
    let s = start("").await;
    let audio = s.studio.sender_id("PLAYOUT1-A").unwrap().to_string();
    let device = s.studio.device_id("AUDIO").unwrap();
    let at = soon();
    let (mut ncs, mut upper) = s
        .create(&[
            item_with(
                "T2",
                &audio,
                "AUDIO-PGM",
                &format!("<at>{}</at>", at.to_rfc3339()),
            ),
            item("T3", &audio, "AUDIO-PGM"),
        ])
        .await;
    wait_statuses(&mut upper, &[("T2", "READY"), ("T3", "READY")], 10).await;
    ncs.ok(&ro_ctrl("T2", "EXECUTE")).await;
    let post = s
        .studio
        .wait_for_request(
            |r| r.method == "POST" && r.path.ends_with("map/activations"),
            Duration::from_secs(5),
        )
        .await
        .expect("no IS-08 activation");
    assert_eq!(post.status, 202, "scheduled");
    let body = post.body.unwrap();
    assert_eq!(body["activation"]["mode"], "activate_scheduled_absolute");
    assert_eq!(
        body["activation"]["requested_time"],
        format!("{}:0", at.timestamp() + 37).as_str()
    );
    let pending = pending_activations(&s.studio, device).await;
    assert_eq!(pending.len(), 1, "{pending:?}");

    // The item leaves the running order before its time: its activation is deleted.
    ncs.ok("<roElementAction operation=\"DELETE\"><roID>RO1</roID><element_target><storyID>S1</storyID></element_target><element_source><itemID>T2</itemID></element_source></roElementAction>")
        .await;
    let suffix = format!("map/activations/{}", pending[0]);
    let delete = s
        .studio
        .wait_for_request(
            |r| r.method == "DELETE" && r.path.ends_with(&suffix),
            Duration::from_secs(5),
        )
        .await
        .expect("the scheduled IS-08 activation was not deleted");
    assert_eq!(delete.status, 204);
    assert!(pending_activations(&s.studio, device).await.is_empty());
    // And the receiver's scheduled IS-05 activation is cancelled: it will not switch.
    let aud_in = s.studio.receiver_id("AUD-IN1").unwrap().to_string();
    assert_eq!(cancel_patch_to(&s.studio, &aud_in).await.status, 200);
    s.gw.stop().await;
}

/// A timed take whose IS-08 map is refused after the receiver accepted its scheduled IS-05
/// activation: ERROR, and the receiver's activation is cancelled so the audio does not
/// switch at the time anyway.
#[tokio::test]
async fn a_timed_take_that_fails_leaves_nothing_to_fire_at_its_time() {
    let s = start("").await;
    let audio = s.studio.sender_id("PLAYOUT1-A").unwrap().to_string();
    let aud_in = s.studio.receiver_id("AUD-IN1").unwrap().to_string();
    let at = soon();
    let (mut ncs, mut upper) = s
        .create(&[item_with(
            "T4",
            &audio,
            "AUDIO-PGM",
            &format!("<at>{}</at>", at.to_rfc3339()),
        )])
        .await;
    wait_statuses(&mut upper, &[("T4", "READY")], 10).await;
    s.studio.set_fault(
        FaultTarget {
            method: Some("POST".into()),
            path_contains: Some("map/activations".into()),
        },
        Fault::Status {
            code: 500,
            sticky: true,
        },
    );
    ncs.ok(&ro_ctrl("T4", "EXECUTE")).await;
    let take = patch_to(&s.studio, &aud_in, Some("activate_scheduled_absolute")).await;
    assert_eq!(take.status, 202, "the receiver accepted the timed take");
    let seen = wait_statuses(&mut upper, &[("T4", "ERROR")], 5).await;
    assert!(seen.last().unwrap().1.contains("IS-08"), "{seen:?}");
    assert_eq!(cancel_patch_to(&s.studio, &aud_in).await.status, 200);
    assert_not_switched_at(&s.studio, at, &aud_in, &audio).await;
    s.gw.stop().await;
}

/// A timed take one of whose receivers refuses it: ERROR, and the receiver that accepted it
/// has its activation cancelled, so it does not switch alone at the time (by the rollback
/// of an all-or-nothing take, and without it too).
#[tokio::test]
async fn a_timed_take_refused_by_one_receiver_does_not_switch_the_other() {
    for nmos in ["take_all_or_nothing = true", "take_all_or_nothing = false"] {
        timed_take_refused_by_one_receiver(nmos).await;
    }
}

async fn timed_take_refused_by_one_receiver(nmos: &str) {
    let mapping = format!(
        "{MAPPING}\n[[destination]]\nname = \"BOTH\"\nreceivers = [\"MIX-IN1\", \"MIX-IN2\"]\n"
    );
    let s = start_with(nmos, &mapping).await;
    let cam1 = s.studio.sender_id("CAM1-V").unwrap().to_string();
    let in1 = s.studio.receiver_id("MIX-IN1").unwrap().to_string();
    let in2 = s.studio.receiver_id("MIX-IN2").unwrap();
    let at = soon();
    let (mut ncs, mut upper) = s
        .create(&[item_with(
            "T5",
            &cam1,
            "BOTH",
            &format!("<at>{}</at>", at.to_rfc3339()),
        )])
        .await;
    wait_statuses(&mut upper, &[("T5", "READY")], 10).await;
    ncs.ok(&ro_ctrl("T5", "READY")).await;
    patch_to(&s.studio, &in2.to_string(), None).await;
    // (The stage's answer reaches the engine: the item is staged.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another controller has since put a later activation on MIX-IN2: it refuses ours (423).
    let mixer = s.studio.device_id("MIXER").unwrap();
    let later = format!("{}:0", at.timestamp() + 37 + 3600);
    let url = format!(
        "{}/single/receivers/{in2}/staged",
        s.studio.connection_url(mixer)
    );
    let pending = reqwest::Client::new()
        .patch(&url)
        .json(&serde_json::json!({"activation": {"mode": "activate_scheduled_absolute", "requested_time": later}}))
        .send()
        .await
        .unwrap();
    assert_eq!(pending.status(), 202);
    ncs.ok(&ro_ctrl("T5", "EXECUTE")).await;
    wait_statuses(&mut upper, &[("T5", "ERROR")], 5).await;
    eprintln!("case: {nmos}");
    cancel_patch_to(&s.studio, &in1).await;
    assert_not_switched_at(&s.studio, at, &in1, &cam1).await;
    s.gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// On-air safety

#[tokio::test]
async fn running_order_deleted_and_recreated_keeps_what_is_on_air() {
    let s = start("").await;
    let cam1 = s.studio.sender_id("CAM1-V").unwrap().to_string();
    let cam2 = s.studio.sender_id("CAM2-V").unwrap().to_string();
    let in1 = s.studio.receiver_id("MIX-IN1").unwrap();
    let mut ncs = Ncs::connect(s.gw.upper).await;
    let items = [
        item("I1", &cam1, "PGM"),
        item("I2", &cam2, "AUX"),
        item("I3", &cam2, "AUX"),
    ];
    ncs.ok(&ro_create(&items)).await;
    let mut upper = s.ncs.accept().await;
    wait_statuses(
        &mut upper,
        &[("I1", "READY"), ("I2", "READY"), ("I3", "READY")],
        10,
    )
    .await;
    ncs.ok(&ro_ctrl("I1", "EXECUTE")).await;
    wait_statuses(&mut upper, &[("I1", "PLAY")], 5).await;

    // ENPS re-enabling MOS control: roDelete, then roCreate of the same roID; only I3 changed.
    s.studio.clear_requests();
    ncs.ok("<roDelete><roID>RO1</roID></roDelete>").await;
    ncs.ok(&ro_create(&[
        items[0].clone(),
        items[1].clone(),
        item("I3", &cam2, "PGM"),
    ]))
    .await;
    let seen = wait_statuses(&mut upper, &[("I3", "READY")], 5).await;
    assert_eq!(seen, [("I3".to_string(), "READY".to_string())]);
    let sent: Vec<String> = s
        .studio
        .requests()
        .iter()
        .filter(|r| is_connection_api(r))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(sent.is_empty(), "IS-05 requests: {sent:?}");
    let active = s.studio.receiver_active(in1).unwrap();
    assert_eq!(active["sender_id"], cam1.as_str(), "still on air");

    // The engine still knows I1 is on air: a later take on its receiver stops it.
    ncs.ok(&ro_ctrl("I3", "EXECUTE")).await;
    let seen = wait_statuses(&mut upper, &[("I3", "PLAY"), ("I1", "STOP")], 5).await;
    assert!(
        !seen.iter().any(|(i, _)| i == "I2"),
        "unchanged I2 got a status: {seen:?}"
    );
    assert_eq!(
        s.studio.receiver_active(in1).unwrap()["sender_id"],
        cam2.as_str()
    );
    s.gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Reload (SIGHUP)

#[tokio::test]
async fn reload_resolves_again_and_publishes_new_presets_without_reconnecting() {
    let mut s = start("").await;
    let cam1 = s.studio.sender_id("CAM1-V").unwrap().to_string();
    let mut lower = s.lower.accept().await;
    let (mut ncs, mut upper) = s
        .create(&[item("I1", &cam1, "STUDIO-B"), item("I2", &cam1, "PGM")])
        .await;
    wait_statuses(
        &mut upper,
        &[
            ("I1", "NOT READY: destination unknown: STUDIO-B"),
            ("I2", "READY"),
        ],
        10,
    )
    .await;

    let fresh = s.config_with_mapping(&format!(
        r#"{MAPPING}
[[destination]]
name = "STUDIO-B"
receivers = ["MIX-IN2"]

[[preset]]
id = "PRESET-NEW"
slug = "New two-shot"
connections = [{{ sender = "CAM1-V", receiver = "MIX-IN1" }}, {{ sender = "CAM2-V", receiver = "MIX-IN2" }}]
"#
    ));
    s.service.reload(&fresh);
    // The same upper connection carries the new status; nothing else changed.
    let seen = wait_statuses(&mut upper, &[("I1", "READY")], 5).await;
    assert!(!seen.iter().any(|(i, _)| i == "I2"), "{seen:?}");
    let objects = objects_until(&mut lower, 5, |seen| {
        seen.iter().any(|o| o.id == "PRESET-NEW")
    })
    .await;
    let preset = objects.iter().find(|o| o.id == "PRESET-NEW").unwrap();
    assert_eq!(
        (
            preset.status.as_str(),
            preset.slug.as_str(),
            preset.group.as_deref()
        ),
        ("NEW", "New two-shot", Some("Presets"))
    );
    // No reconnection: the NCS connections are the same ones, still answered.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), s.ncs.listener.accept())
            .await
            .is_err(),
        "the gateway reconnected to the upper port"
    );
    ncs.ok(&ro_ctrl("I1", "EXECUTE")).await;
    wait_statuses(&mut upper, &[("I1", "PLAY")], 5).await;
    s.gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Presets and placeholders

#[tokio::test]
async fn presets_connect_all_receivers_and_placeholders_follow_their_bindings() {
    let mapping = format!(
        r#"{MAPPING}
[[preset]]
id = "PRESET-2SHOT"
slug = "Two shot"
connections = [{{ sender = "CAM1-V", receiver = "MIX-IN1" }}, {{ sender = "CAM2-V", receiver = "MIX-IN2" }}]

[[binding]]
placeholder = "remote berlin"
sender = "CAM2-V"
"#
    );
    let s = start_with("", &mapping).await;
    let cam1 = s.studio.sender_id("CAM1-V").unwrap().to_string();
    let cam2 = s.studio.sender_id("CAM2-V").unwrap().to_string();
    let in1 = s.studio.receiver_id("MIX-IN1").unwrap();
    let in2 = s.studio.receiver_id("MIX-IN2").unwrap();

    // Two placeholders, one bound by its slug (case aside), one not.
    let mut objects = Ncs::connect(s.gw.lower).await;
    let mut ids = Vec::new();
    for slug in ["Remote Berlin", "Remote Oslo"] {
        let r = objects
            .request(&format!(
                "<mosObjCreate><objSlug>{slug}</objSlug><objType>VIDEO</objType><objTB>50</objTB></mosObjCreate>"
            ))
            .await;
        let Message::MosAck(a) = r.message else {
            panic!("{:?}", r.message)
        };
        assert_eq!(a.status, AckStatus::Ack, "{a:?}");
        ids.push(a.description);
    }
    let (berlin, oslo) = (ids[0].clone(), ids[1].clone());

    let (mut ncs, mut upper) = s
        .create(&[
            item_with("P1", "PRESET-2SHOT", "", ""),
            item("P2", &berlin, "PGM"),
            item("P3", &oslo, "PGM"),
        ])
        .await;
    wait_statuses(
        &mut upper,
        &[
            ("P1", "READY"),
            ("P2", "READY"),
            ("P3", "NOT READY: placeholder not bound"),
        ],
        10,
    )
    .await;

    // The preset takes both connections at once.
    s.studio.clear_requests();
    ncs.ok(&ro_ctrl("P1", "EXECUTE")).await;
    wait_statuses(&mut upper, &[("P1", "PLAY")], 5).await;
    assert_eq!(
        s.studio.receiver_active(in1).unwrap()["sender_id"],
        cam1.as_str()
    );
    assert_eq!(
        s.studio.receiver_active(in2).unwrap()["sender_id"],
        cam2.as_str()
    );
    let takes: Vec<RequestRecord> = s
        .studio
        .requests()
        .into_iter()
        .filter(|r| matches!(r.method.as_str(), "PATCH" | "POST") && is_connection_api(r))
        .collect();
    let activated = |receiver: uuid::Uuid, sender: &str| {
        takes.iter().any(|r| {
            let Some(b) = &r.body else { return false };
            let mut params = Vec::new();
            if is_patch_of(r, &receiver.to_string()) {
                params.push(b);
            }
            if r.path.ends_with("bulk/receivers") {
                params.extend(b.as_array().into_iter().flatten().filter_map(|e| {
                    (e["id"] == receiver.to_string().as_str()).then_some(&e["params"])
                }));
            }
            params.iter().any(|p| {
                p["activation"]["mode"] == "activate_immediate" && p["sender_id"] == sender
            })
        })
    };
    assert!(activated(in1, &cam1), "{takes:?}");
    assert!(activated(in2, &cam2), "{takes:?}");

    // The bound placeholder stands for its sender.
    ncs.ok(&ro_ctrl("P2", "EXECUTE")).await;
    wait_statuses(&mut upper, &[("P2", "PLAY")], 5).await;
    assert_eq!(
        s.studio.receiver_active(in1).unwrap()["sender_id"],
        cam2.as_str()
    );
    let refused = ncs.refused(&ro_ctrl("P3", "EXECUTE")).await;
    assert!(refused.contains("placeholder not bound"), "{refused}");
    s.gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// roReadyToAir

#[tokio::test]
async fn ready_to_air_stages_every_item_when_configured() {
    let s = start("ready_to_air_stages = true").await;
    let cam1 = s.studio.sender_id("CAM1-V").unwrap().to_string();
    let cam2 = s.studio.sender_id("CAM2-V").unwrap().to_string();
    let in1 = s.studio.receiver_id("MIX-IN1").unwrap().to_string();
    let in2 = s.studio.receiver_id("MIX-IN2").unwrap().to_string();
    let (mut ncs, mut upper) = s
        .create(&[item("I1", &cam1, "PGM"), item("I2", &cam2, "AUX")])
        .await;
    wait_statuses(&mut upper, &[("I1", "READY"), ("I2", "READY")], 10).await;
    assert!(
        !s.studio.requests().iter().any(|r| r.method == "PATCH"),
        "nothing staged before roReadyToAir"
    );
    ncs.ok("<roReadyToAir><roID>RO1</roID><roAir>READY</roAir></roReadyToAir>")
        .await;
    for (receiver, sender) in [(&in1, &cam1), (&in2, &cam2)] {
        let staged = patch_to(&s.studio, receiver, None).await;
        assert_eq!(staged.status, 200);
        let body = staged.body.unwrap();
        assert_eq!(body["sender_id"], sender.as_str());
        assert_eq!(body["master_enable"], true);
        let staged_now = s.studio.receiver_staged(receiver.parse().unwrap()).unwrap();
        assert_eq!(staged_now["sender_id"], sender.as_str());
        // Staged only: nothing activated.
        let active = s.studio.receiver_active(receiver.parse().unwrap()).unwrap();
        assert_ne!(active["sender_id"], sender.as_str());
    }
    s.gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Senders as MOS objects

#[tokio::test]
async fn senders_are_mos_objects_and_a_quick_reregistration_deletes_nothing() {
    let s = start("").await;
    let mut lower = s.lower.accept().await;
    let senders: Vec<(uuid::Uuid, &str, &str)> = [
        ("CAM1-V", "CAM1"),
        ("CAM2-V", "CAM2"),
        ("PLAYOUT1-A", "PLAYOUT1"),
    ]
    .into_iter()
    .map(|(label, device)| (s.studio.sender_id(label).unwrap(), label, device))
    .collect();
    let objects = objects_until(&mut lower, 10, |seen| {
        senders
            .iter()
            .all(|(id, _, _)| seen.iter().any(|o| o.id == id.to_string()))
    })
    .await;
    for (id, label, device) in &senders {
        let o = objects.iter().find(|o| o.id == id.to_string()).unwrap();
        assert_eq!(
            (o.status.as_str(), o.slug.as_str(), o.group.as_deref()),
            ("NEW", *label, Some(*device)),
            "{o:?}"
        );
    }
    let audio = objects
        .iter()
        .find(|o| o.id == senders[2].0.to_string())
        .unwrap();
    assert_eq!(audio.obj_type.as_wire(), "AUDIO");

    // A device re-registering (delete then add, same ids): no DELETED.
    let cam1_device = s.studio.device_id("CAM1").unwrap();
    assert!(s.studio.reregister_device(cam1_device));
    let after = objects_during(&mut lower, 1000).await;
    assert!(
        !after.iter().any(|o| o.status == "DELETED"),
        "{:?}",
        after.iter().map(|o| (&o.id, &o.status)).collect::<Vec<_>>()
    );

    // A device gone for longer than the debounce: its sender is DELETED.
    let cam2_device = s.studio.device_id("CAM2").unwrap();
    assert!(s.studio.remove_device(cam2_device));
    let cam2 = senders[1].0.to_string();
    let gone = objects_until(&mut lower, 5, |seen| {
        seen.iter().any(|o| o.id == cam2 && o.status == "DELETED")
    })
    .await;
    assert!(
        !gone
            .iter()
            .any(|o| o.id == senders[0].0.to_string() && o.status == "DELETED"),
        "CAM1 deleted too"
    );
    s.gw.stop().await;
}
