//! The NMOS bridge end to end: an NCS builds a running order over TCP whose items are the
//! virtual studio's senders; resolution, READY, EXECUTE and STOP go to the studio over HTTP;
//! statuses come back to the NCS's upper port.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mos_gateway::config::Config;
use mos_gateway::mos::Message;
use mos_gateway::mos::messages::RoAck;
use mos_gateway::nmos::schemas::SchemaSet;
use mos_gateway::nmos::service::NmosService;
use mos_gateway::nmos::studio::{
    Fault, FaultTarget, RequestRecord, StudioHandle, StudioSpec, VirtualStudio,
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
"#;

struct Studio {
    studio: StudioHandle,
    gw: Running,
    ncs: FakeNcs,
    _service: NmosService,
    _dir: tempfile::TempDir,
}

fn gateway_config(
    dir: &std::path::Path,
    studio: &StudioHandle,
    ncs_upper: u16,
    nmos: &str,
) -> Config {
    let [l, u, q] = free_ports();
    let text = format!(
        r#"
[mos]
id = "{MOS_ID}"
listen = "127.0.0.1"
lower_port = {l}
upper_port = {u}
query_port = {q}
data_dir = "{dir}"

[[ncs]]
id = "{NCS_ID}"
host = "127.0.0.1"
lower_port = 1
upper_port = {ncs_upper}
heartbeat_interval_s = 0
ack_timeout_s = 2

[nmos]
registry = "{url}"
allow_http = true
http_timeout_ms = 500
debounce_ms = 300
{nmos}

[[destination]]
name = "PGM"
receivers = ["MIX-IN1"]

[[destination]]
name = "AUX"
receivers = ["MIX-IN2"]
"#,
        dir = dir.display(),
        url = studio.query_url(),
    );
    Config::from_toml_str(&text, "test").unwrap()
}

async fn start(nmos: &str) -> Studio {
    let spec = StudioSpec::from_toml(STUDIO).unwrap();
    let schemas = Arc::new(SchemaSet::load_default().unwrap());
    let studio = VirtualStudio::start(spec, "127.0.0.1:0".parse().unwrap(), schemas)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ncs = FakeNcs::bind().await;
    let config = gateway_config(dir.path(), &studio, ncs.port(), nmos);
    let gw = Gateway::bind(config.clone()).await.unwrap();
    let shutdown = CancellationToken::new();
    let service = NmosService::start(&gw, &config, shutdown.clone()).unwrap();
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
    Studio {
        studio,
        gw: running,
        ncs,
        _service: service,
        _dir: dir,
    }
}

fn item(id: &str, obj: &str, channel: &str) -> String {
    format!(
        "<item><itemID>{id}</itemID><objID>{obj}</objID><mosID>{MOS_ID}</mosID>\
         <itemChannel>{channel}</itemChannel></item>"
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

#[tokio::test]
async fn items_resolve_stage_take_and_report_back() {
    let s = start("").await;
    let cam1 = s.studio.sender_id("CAM1-V").unwrap().to_string();
    let cam2 = s.studio.sender_id("CAM2-V").unwrap().to_string();
    let in1 = s.studio.receiver_id("MIX-IN1").unwrap().to_string();
    let mut ncs = Ncs::connect(s.gw.upper).await;
    ncs.ok(&ro_create(&[
        item("I1", &cam1, "PGM"),
        item("I2", &cam2, "PGM"),
        item("I3", "NO-SUCH-OBJECT", "PGM"),
        item("I4", &cam1, "STUDIO-Z"),
    ]))
    .await;
    let mut upper = s.ncs.accept().await;
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

#[tokio::test]
async fn device_faults_end_in_error_statuses_and_acks_never_wait() {
    let s = start("").await;
    let cam1 = s.studio.sender_id("CAM1-V").unwrap().to_string();
    let mixer = s.studio.device_id("MIXER").unwrap();
    let mut ncs = Ncs::connect(s.gw.upper).await;
    ncs.ok(&ro_create(&[item("I1", &cam1, "PGM")])).await;
    let mut upper = s.ncs.accept().await;
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
