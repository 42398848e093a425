//! The virtual NMOS studio, driven over real HTTP and WebSockets on 127.0.0.1.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mos_gateway::nmos::is04::{Catalogue, QueryClient, QueryClientConfig};
use mos_gateway::nmos::schemas::SchemaSet;
use mos_gateway::nmos::studio::{
    Fault, FaultTarget, ResourceType, StudioHandle, StudioSpec, VirtualStudio,
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

fn schemas() -> Arc<SchemaSet> {
    Arc::new(SchemaSet::load_default().expect("schemas load"))
}

fn example_spec() -> StudioSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/virtual-studio.toml");
    StudioSpec::load(&path).expect("config/virtual-studio.toml loads")
}

async fn start(spec: StudioSpec) -> StudioHandle {
    VirtualStudio::start(spec, "127.0.0.1:0".parse().unwrap(), schemas())
        .await
        .expect("studio starts")
}

async fn example() -> StudioHandle {
    start(example_spec()).await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get_json(url: &str) -> (u16, Value) {
    let r = http().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn q(studio: &StudioHandle, rest: &str) -> String {
    format!("{}v1.3/{rest}", studio.query_url())
}

fn assert_error_body(body: &Value, code: u16) {
    assert_eq!(body["code"], json!(code), "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert!(body.get("debug").is_some(), "{body}");
}

// ----- spec ----------------------------------------------------------------------------------

#[tokio::test]
async fn example_config_loads_and_starts() {
    let spec = example_spec();
    assert_eq!(spec.devices.len(), 6);
    let studio = start(spec).await;
    let (status, body) = get_json(&studio.query_url()).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!(["v1.2/", "v1.3/"]));
    let fixed = studio.device_id("PLAYOUT1").unwrap();
    assert_eq!(fixed.to_string(), "3f2b8c1e-6d4a-4f7b-9c2e-1a5d7e9f0b31");
    // Derived ids are stable across starts.
    let again = example().await;
    assert_eq!(studio.sender_id("CAM1-V"), again.sender_id("CAM1-V"));
    assert_eq!(
        studio.receiver_id("MIX-IN1"),
        again.receiver_id("MIXER/MIX-IN1")
    );
    assert!(studio.sender_id("nope").is_none());
    studio.shutdown().await;
    again.shutdown().await;
}

#[test]
fn bad_specs_are_refused() {
    let dup = "[[devices]]\nlabel = \"A\"\n[[devices]]\nlabel = \"A\"\n";
    assert!(StudioSpec::from_toml(dup).is_err());
    let upper = "[[devices]]\nlabel = \"A\"\nid = \"3F2B8C1E-6D4A-4F7B-9C2E-1A5D7E9F0B31\"\n";
    assert!(StudioSpec::from_toml(upper).is_err());
    let bad_map = r#"
        [[devices]]
        label = "A"
        [devices.channel_mapping]
        inputs = [{ id = "in1", channels = 2, block_size = 2, reordering = false }]
        outputs = [{ id = "out", channels = 2 }]
        [devices.channel_mapping.map]
        out = ["in1:1", "in1:0"]
    "#;
    let err = StudioSpec::from_toml(bad_map).unwrap_err().to_string();
    assert!(err.contains("initial map"), "{err}");
    assert!(StudioSpec::from_toml("[[devices]]\nlabel = \"A\"\nbogus = 1\n").is_err());
}

// ----- Query API -----------------------------------------------------------------------------

#[tokio::test]
async fn query_api_pages_with_links_and_headers() {
    let studio = example().await;
    // 6 device nodes + the registry node.
    let url = q(
        &studio,
        "nodes?paging.limit=3&paging.order=create&paging.since=0:0",
    );
    let mut all = Vec::new();
    let mut next = url;
    for _ in 0..10 {
        let r = http().get(&next).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers().clone();
        assert_eq!(h["x-paging-limit"], "3");
        assert!(h.contains_key("x-paging-since"));
        let until = h["x-paging-until"].to_str().unwrap().to_owned();
        let link = h["link"].to_str().unwrap().to_owned();
        assert!(link.contains("rel=\"next\""), "{link}");
        let page: Vec<Value> = r.json().await.unwrap();
        assert!(page.len() <= 3);
        // Descending order inside a page.
        let versions: Vec<&str> = page
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        let mut sorted = versions.clone();
        sorted.sort_by_key(|v| {
            let (s, n) = v.split_once(':').unwrap();
            (s.parse::<u64>().unwrap(), n.parse::<u32>().unwrap())
        });
        sorted.reverse();
        assert_eq!(versions, sorted);
        if page.is_empty() {
            break;
        }
        all.extend(page);
        next = q(
            &studio,
            &format!("nodes?paging.limit=3&paging.order=create&paging.since={until}"),
        );
    }
    assert_eq!(all.len(), 7);
    let mut ids: Vec<&str> = all.iter().map(|n| n["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7);

    // Default: the most recent 10, newest first.
    let r = http().get(q(&studio, "sources")).send().await.unwrap();
    assert_eq!(r.headers()["x-paging-limit"], "10");
    let page: Vec<Value> = r.json().await.unwrap();
    assert_eq!(page.len(), 10); // of 8 sender sources + 3 IS-08 output sources
    let r = http()
        .get(q(&studio, "sources?paging.limit=100"))
        .send()
        .await
        .unwrap();
    let page: Vec<Value> = r.json().await.unwrap();
    assert_eq!(page.len(), 11);
    studio.shutdown().await;
}

#[tokio::test]
async fn query_client_reads_the_whole_catalogue() {
    let studio = example().await;
    let client = QueryClient::new(
        &studio.query_url(),
        QueryClientConfig {
            page_limit: 4,
            ..Default::default()
        },
    )
    .unwrap();
    let senders = client.list_senders().await.unwrap();
    assert_eq!(senders.len(), 8);
    let cat = Catalogue::from_lists(
        client.list_nodes().await.unwrap(),
        client.list_devices().await.unwrap(),
        client.list_sources().await.unwrap(),
        client.list_flows().await.unwrap(),
        senders,
        client.list_receivers().await.unwrap(),
    );
    let audio = studio.device_id("AUDIO").unwrap().to_string();
    let cam = studio.device_id("CAM1").unwrap().to_string();
    assert_eq!(cat.connection_controls(&audio).len(), 1);
    assert_eq!(cat.channel_mapping_controls(&audio).len(), 1);
    assert!(cat.channel_mapping_controls(&cam).is_empty());
    let s = studio.sender_id("PLAYOUT1-A").unwrap().to_string();
    assert!(cat.sender_flow(&s).is_some());
    studio.shutdown().await;
}

#[tokio::test]
async fn query_filters_single_resources_and_errors() {
    let studio = example().await;
    let mixer = studio.device_id("MIXER").unwrap();
    let (status, body) = get_json(&q(&studio, &format!("receivers?device_id={mixer}"))).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 4);
    let (_, body) = get_json(&q(&studio, "senders?label=CAM2-V")).await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    let (_, body) = get_json(&q(&studio, "flows?format=urn:x-nmos:format:audio")).await;
    assert_eq!(body.as_array().unwrap().len(), 2);
    let (_, body) = get_json(&q(&studio, "senders?no.such.attr=1")).await;
    assert_eq!(body, json!([]));
    // v1.2 paths too.
    let (status, body) = get_json(&format!("{}v1.2/devices/{mixer}", studio.query_url())).await;
    assert_eq!(status, 200);
    assert_eq!(body["label"], "MIXER");
    let (status, body) =
        get_json(&q(&studio, "devices/00000000-0000-4000-8000-000000000000")).await;
    assert_eq!(status, 404);
    assert_error_body(&body, 404);
    let (status, body) = get_json(&q(&studio, "senders?paging.limit=x")).await;
    assert_eq!(status, 400);
    assert_error_body(&body, 400);
    let (status, _) = get_json(&q(&studio, "senders?query.rql=eq(label,x)")).await;
    assert_eq!(status, 501);
    let r = http().delete(q(&studio, "senders")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let (status, _) = get_json(&format!("{}v9.9/", studio.query_url())).await;
    assert_eq!(status, 404);
    // CORS, for browser controllers.
    let r = http()
        .request(reqwest::Method::OPTIONS, q(&studio, "subscriptions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    studio.shutdown().await;
}

// ----- WebSocket subscriptions ---------------------------------------------------------------

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(studio: &StudioHandle, resource_path: &str, params: Value) -> (Value, Ws) {
    let r = http()
        .post(q(studio, "subscriptions"))
        .json(
            &json!({"max_update_rate_ms": 0, "resource_path": resource_path,
            "params": params, "persist": false}),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status() == 200 || r.status() == 201, "{}", r.status());
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .contains("/subscriptions/")
    );
    let sub: Value = r.json().await.unwrap();
    let href = sub["ws_href"].as_str().unwrap().to_owned();
    let (ws, _) = tokio_tungstenite::connect_async(href).await.unwrap();
    (sub, ws)
}

async fn next_grain(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a grain in time")
            .expect("socket open")
            .expect("no socket error");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// A socket with the events of grains already read but not yet consumed.
struct Events {
    ws: Ws,
    queue: std::collections::VecDeque<Value>,
}

impl Events {
    fn new(ws: Ws) -> Events {
        Events {
            ws,
            queue: Default::default(),
        }
    }

    /// The next event for which `pred` holds (events before it are dropped).
    async fn wait(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            while let Some(e) = self.queue.pop_front() {
                if pred(&e) {
                    return e;
                }
            }
            let g = next_grain(&mut self.ws).await;
            self.queue
                .extend(g["grain"]["data"].as_array().unwrap().iter().cloned());
        }
    }
}

#[tokio::test]
async fn subscription_sync_then_changes() {
    let studio = example().await;
    let (sub, mut ws) = subscribe(&studio, "/senders", json!({})).await;
    let sync = next_grain(&mut ws).await;
    assert_eq!(sync["grain_type"], "event");
    assert_eq!(sync["flow_id"], sub["id"]);
    assert_eq!(sync["grain"]["type"], "urn:x-nmos:format:data.event");
    assert_eq!(sync["grain"]["topic"], "/senders/");
    for k in [
        "origin_timestamp",
        "sync_timestamp",
        "creation_timestamp",
        "source_id",
    ] {
        assert!(sync[k].is_string(), "{k}");
    }
    let data = sync["grain"]["data"].as_array().unwrap();
    assert_eq!(data.len(), 8);
    assert!(data.iter().all(|e| e["pre"] == e["post"]));

    // Same request again: 200 with the existing subscription.
    let r = http()
        .post(q(&studio, "subscriptions"))
        .json(
            &json!({"max_update_rate_ms": 0, "resource_path": "/senders",
            "params": {}, "persist": false}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], sub["id"]);

    let mut ws = Events::new(ws);
    // A device going away: removed events (pre only), then back: added (post only).
    let cam1 = studio.device_id("CAM1").unwrap();
    let cam1_v = studio.sender_id("CAM1-V").unwrap().to_string();
    assert!(studio.remove_device(cam1));
    let e = ws.wait(|e| e["path"] == cam1_v.as_str()).await;
    assert!(e.get("post").is_none() && e["pre"]["id"] == cam1_v.as_str());
    let (status, _) = get_json(&q(&studio, &format!("senders/{cam1_v}"))).await;
    assert_eq!(status, 404);
    assert!(studio.restore_device(cam1));
    let e = ws.wait(|e| e["path"] == cam1_v.as_str()).await;
    assert!(e.get("pre").is_none() && e["post"]["id"] == cam1_v.as_str());

    // Re-registration: removal then addition, same id.
    assert!(studio.reregister_device(cam1));
    let e = ws.wait(|e| e["path"] == cam1_v.as_str()).await;
    assert!(e.get("post").is_none());
    let e = ws.wait(|e| e["path"] == cam1_v.as_str()).await;
    assert!(e.get("pre").is_none());
    studio.shutdown().await;
}

#[tokio::test]
async fn subscription_params_filter_and_validation() {
    let studio = example().await;
    let mixer = studio.device_id("MIXER").unwrap().to_string();
    let (_, mut ws) = subscribe(&studio, "/receivers", json!({"device_id": mixer})).await;
    let sync = next_grain(&mut ws).await;
    assert_eq!(sync["grain"]["data"].as_array().unwrap().len(), 4);
    for bad in [
        json!({"resource_path": "/senders", "params": {}, "persist": false}),
        json!({"max_update_rate_ms": 100, "resource_path": "/things", "params": {}, "persist": false}),
        json!({"max_update_rate_ms": 100, "resource_path": "/senders", "params": {}, "persist": false, "secure": true}),
    ] {
        let r = http()
            .post(q(&studio, "subscriptions"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert_error_body(&r.json().await.unwrap(), 400);
    }
    // Trailing slash on a POST is refused.
    let r = http()
        .post(format!("{}/", q(&studio, "subscriptions")))
        .json(&json!({"max_update_rate_ms": 0, "resource_path": "/senders", "params": {}, "persist": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    studio.shutdown().await;
}

#[tokio::test]
async fn persistent_subscription_delete_and_non_persistent_403() {
    let studio = example().await;
    let r = http()
        .post(q(&studio, "subscriptions"))
        .json(&json!({"max_update_rate_ms": 100, "resource_path": "/flows", "params": {}, "persist": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sub: Value = r.json().await.unwrap();
    let url = q(
        &studio,
        &format!("subscriptions/{}", sub["id"].as_str().unwrap()),
    );
    let (status, got) = get_json(&url).await;
    assert_eq!((status, &got["id"]), (200, &sub["id"]));
    assert_eq!(http().delete(&url).send().await.unwrap().status(), 204);
    assert_eq!(http().delete(&url).send().await.unwrap().status(), 404);

    let (sub, _ws) = subscribe(&studio, "/flows", json!({})).await;
    let url = q(
        &studio,
        &format!("subscriptions/{}", sub["id"].as_str().unwrap()),
    );
    assert_eq!(http().delete(&url).send().await.unwrap().status(), 403);
    studio.shutdown().await;
}

#[tokio::test]
async fn drop_websockets_closes_the_socket() {
    let studio = example().await;
    let (sub, mut ws) = subscribe(&studio, "/devices", json!({})).await;
    next_grain(&mut ws).await;
    assert!(studio.wait_for_websockets(|n| n == 1, WAIT).await);
    studio.drop_websockets();
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "socket not closed");
    assert!(studio.wait_for_websockets(|n| n == 0, WAIT).await);
    // The non-persistent subscription went with its last socket: reconnecting fails.
    let href = sub["ws_href"].as_str().unwrap();
    assert!(tokio_tungstenite::connect_async(href).await.is_err());
    // The handshake attempts are in the request log.
    let r = studio
        .wait_for_request(|r| r.path == "/ws/" && r.status == 404, WAIT)
        .await;
    assert!(r.is_some());
    let _ = ws.close(None).await;
    studio.shutdown().await;
}

// ----- fault injection (Query API) -----------------------------------------------------------

#[tokio::test]
async fn query_faults_status_and_delay() {
    let studio = example().await;
    studio.set_fault(FaultTarget::query().method("GET"), Fault::once(500));
    let (status, body) = get_json(&q(&studio, "senders")).await;
    assert_eq!(status, 500);
    assert_error_body(&body, 500);
    let (status, _) = get_json(&q(&studio, "senders")).await;
    assert_eq!(status, 200);

    studio.set_fault(
        FaultTarget::path("/senders"),
        Fault::Delay(Duration::from_secs(1)),
    );
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = quick.get(q(&studio, "senders")).send().await.unwrap_err();
    assert!(err.is_timeout());
    studio.clear_faults();
    let (status, _) = get_json(&q(&studio, "senders")).await;
    assert_eq!(status, 200);
    let log = studio.requests();
    assert!(
        log.iter()
            .any(|r| r.status == 500 && r.path.ends_with("/senders"))
    );
    let r = studio.resource(ResourceType::Senders, studio.sender_id("CAM1-V").unwrap());
    assert!(r.is_some());
    studio.shutdown().await;
}

// ----- controls and IS-05 --------------------------------------------------------------------

fn control_href(device: &Value, kind: &str) -> Option<String> {
    device["controls"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["href"].as_str())
        .map(|h| h.trim_end_matches('/').to_owned())
}

#[tokio::test]
async fn controls_point_at_working_endpoints() {
    let studio = example().await;
    let (_, devices) = get_json(&q(&studio, "devices?paging.limit=100")).await;
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), 6);
    for d in devices {
        let label = d["label"].as_str().unwrap();
        let conn = control_href(d, "urn:x-nmos:control:sr-ctrl/v1.1").expect("sr-ctrl/v1.1");
        let (status, body) = get_json(&format!("{conn}/")).await;
        assert_eq!(
            (status, body),
            (200, json!(["bulk/", "single/"])),
            "{label}"
        );
        let (status, receivers) = get_json(&format!("{conn}/single/receivers/")).await;
        assert_eq!(status, 200);
        let (_, listed) = get_json(&q(
            &studio,
            &format!("receivers?device_id={}", d["id"].as_str().unwrap()),
        ))
        .await;
        assert_eq!(
            receivers.as_array().unwrap().len(),
            listed.as_array().unwrap().len()
        );
        // The v1.2 control exists but is not served: a client must choose v1.1.
        let v12 = control_href(d, "urn:x-nmos:control:sr-ctrl/v1.2").expect("sr-ctrl/v1.2");
        let (status, _) = get_json(&format!("{v12}/single/receivers/")).await;
        assert_eq!(status, 404);
        match control_href(d, "urn:x-nmos:control:cm-ctrl/v1.0") {
            Some(cm) => {
                assert_eq!(label, "AUDIO");
                let (status, body) = get_json(&format!("{cm}/")).await;
                assert_eq!(status, 200, "{body}");
                let (status, io) = get_json(&format!("{cm}/io")).await;
                assert_eq!(status, 200);
                assert_eq!(
                    io["inputs"]["in1"]["caps"],
                    json!({"reordering": false, "block_size": 2})
                );
                assert_eq!(
                    io["outputs"]["Mon"]["caps"]["routable_inputs"],
                    json!(["tone", "in2"])
                );
                assert_eq!(
                    io["outputs"]["OutA"]["caps"]["routable_inputs"],
                    json!(["in1", "in2", null])
                );
                let rid = studio.receiver_id("AUD-IN1").unwrap().to_string();
                assert_eq!(
                    io["inputs"]["in1"]["parent"],
                    json!({"id": rid, "type": "receiver"})
                );
                let src = io["outputs"]["OutA"]["source_id"].as_str().unwrap();
                let (status, _) = get_json(&q(&studio, &format!("sources/{src}"))).await;
                assert_eq!(status, 200);
            }
            None => assert_ne!(label, "AUDIO"),
        }
    }
    // Sender SDP through manifest_href.
    let s = studio.sender_id("CAM3-V").unwrap();
    let (_, sender) = get_json(&q(&studio, &format!("senders/{s}"))).await;
    let r = http()
        .get(sender["manifest_href"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/sdp");
    let sdp = r.text().await.unwrap();
    assert!(sdp.starts_with("v=0\r\n"));
    assert!(sdp.contains("a=group:DUP"), "{sdp}");
    assert_eq!(sdp.matches("m=video").count(), 2);
    studio.shutdown().await;
}

struct Rx {
    studio: StudioHandle,
    id: uuid::Uuid,
    url: String,
}

fn mixer_rx(studio: &StudioHandle, label: &str) -> Rx {
    let id = studio.receiver_id(label).unwrap();
    let dev = studio.device_id("MIXER").unwrap();
    Rx {
        studio: studio.clone(),
        id,
        url: format!("{}/single/receivers/{id}", studio.connection_url(dev)),
    }
}

async fn patch(url: &str, body: Value) -> (u16, Value) {
    let r = http().patch(url).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn sdp_of(studio: &StudioHandle, sender: &str) -> String {
    let s = studio.sender_id(sender).unwrap();
    let (_, sender) = get_json(&q(studio, &format!("senders/{s}"))).await;
    http()
        .get(sender["manifest_href"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn is05_stage_then_activate_updates_active_and_is04() {
    let studio = example().await;
    let rx = mixer_rx(&studio, "MIX-IN1");
    let cam2 = studio.sender_id("CAM2-V").unwrap().to_string();
    let sdp = sdp_of(&studio, "CAM2-V").await;
    let (_, before) = get_json(&q(&studio, &format!("receivers/{}", rx.id))).await;
    let (_, mut sub) = subscribe(&studio, "/receivers", json!({"label": "MIX-IN1"})).await;
    next_grain(&mut sub).await;

    let (status, staged) = patch(
        &format!("{}/staged", rx.url),
        json!({"sender_id": cam2, "master_enable": true,
            "transport_file": {"data": sdp, "type": "application/sdp"},
            "transport_params": [{"rtp_enabled": true}]}),
    )
    .await;
    assert_eq!(status, 200, "{staged}");
    assert_eq!(staged["sender_id"], cam2.as_str());
    assert_eq!(staged["activation"]["mode"], Value::Null);
    // Filled from the SDP.
    let leg = &staged["transport_params"][0];
    assert!(
        leg["multicast_ip"].as_str().unwrap().starts_with("239."),
        "{leg}"
    );
    assert_eq!(leg["destination_port"], 5004);
    assert!(leg["source_ip"].is_string());
    // Active unchanged so far.
    assert_eq!(
        rx.studio.receiver_active(rx.id).unwrap()["sender_id"],
        Value::Null
    );

    let (status, resp) = patch(
        &format!("{}/staged", rx.url),
        json!({"activation": {"mode": "activate_immediate"}}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["activation"]["mode"], "activate_immediate");
    assert!(resp["activation"]["activation_time"].is_string());
    let (_, active) = get_json(&format!("{}/active", rx.url)).await;
    assert_eq!(active["sender_id"], cam2.as_str());
    assert_eq!(active["master_enable"], true);
    assert_eq!(
        active["transport_params"][0]["interface_ip"],
        "192.168.10.105"
    );
    let (_, staged) = get_json(&format!("{}/staged", rx.url)).await;
    assert_eq!(staged["activation"]["mode"], Value::Null);

    let (_, after) = get_json(&q(&studio, &format!("receivers/{}", rx.id))).await;
    assert_eq!(
        after["subscription"],
        json!({"sender_id": cam2, "active": true})
    );
    assert_ne!(after["version"], before["version"]);
    // The subscription sees the modification.
    let mut sub = Events::new(sub);
    let e = sub
        .wait(|e| e["post"]["subscription"]["active"] == true)
        .await;
    assert_eq!(e["pre"]["subscription"]["active"], false);
    assert_eq!(e["post"]["subscription"]["sender_id"], cam2.as_str());

    // Disconnect.
    let (status, _) = patch(
        &format!("{}/staged", rx.url),
        json!({"sender_id": null, "master_enable": false,
            "transport_file": {"data": null, "type": null},
            "activation": {"mode": "activate_immediate"}}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, after) = get_json(&q(&studio, &format!("receivers/{}", rx.id))).await;
    assert_eq!(
        after["subscription"],
        json!({"sender_id": null, "active": false})
    );
    studio.shutdown().await;
}

#[tokio::test]
async fn is05_invalid_patches_get_400_and_change_nothing() {
    let studio = example().await;
    let rx = mixer_rx(&studio, "MIX-IN4"); // two legs
    let staged_before = studio.receiver_staged(rx.id).unwrap();
    for (body, needle) in [
        (json!({"sender_id": "NOT-A-UUID"}), "sender_id"),
        (json!({"transport_file": {"data": "v=0"}}), "transport_file"),
        (
            json!({"transport_params": {"rtp_enabled": true}}),
            "transport_params",
        ),
        (json!({"master_enable": true, "bogus": 1}), "bogus"),
        (
            json!({"transport_params": [{"source_ip": "not-an-ip"}, {}]}),
            "transport_params",
        ),
        (json!({"transport_params": [{"rtp_enabled": true}]}), "leg"),
        (
            json!({"transport_params": [{"interface_ip": "10.9.9.9"}, {}]}),
            "interface_ip",
        ),
        (
            json!({"master_enable": true, "activation": {"mode": "activate_scheduled_relative",
                "requested_time": "18446744073709551615:0"}}),
            "requested_time",
        ),
    ] {
        let (status, err) = patch(&format!("{}/staged", rx.url), body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_error_body(&err, 400);
        let text = format!("{} {}", err["error"], err["debug"]);
        assert!(text.contains(needle), "{body}: {text}");
    }
    assert_eq!(studio.receiver_staged(rx.id).unwrap(), staged_before);
    let log = studio.requests();
    let patches: Vec<_> = log.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 8);
    assert!(patches.iter().all(|r| r.status == 400 && r.body.is_some()));
    // Unknown receiver, wrong method, unknown path.
    let dev = studio.device_id("MIXER").unwrap();
    let base = studio.connection_url(dev);
    let (status, _) = patch(
        &format!("{base}/single/receivers/00000000-0000-4000-8000-000000000000/staged"),
        json!({}),
    )
    .await;
    assert_eq!(status, 404);
    let r = http()
        .post(format!("{}/active", rx.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let (status, body) = get_json(&format!("{base}/nowhere")).await;
    assert_eq!(status, 404);
    assert_error_body(&body, 404);
    // Trailing slash on PATCH.
    let (status, _) = patch(&format!("{}/staged/", rx.url), json!({})).await;
    assert_eq!(status, 404);
    studio.shutdown().await;
}

#[tokio::test]
async fn is05_scheduled_activation_locks_then_applies() {
    let studio = example().await;
    let rx = mixer_rx(&studio, "MIX-IN2");
    let cam1 = studio.sender_id("CAM1-V").unwrap().to_string();
    let (status, resp) = patch(
        &format!("{}/staged", rx.url),
        json!({"sender_id": cam1, "master_enable": true,
            "activation": {"mode": "activate_scheduled_relative", "requested_time": "1:0"}}),
    )
    .await;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(resp["activation"]["mode"], "activate_scheduled_relative");
    assert!(resp["activation"]["activation_time"].is_string());
    let (status, err) = patch(
        &format!("{}/staged", rx.url),
        json!({"master_enable": false}),
    )
    .await;
    assert_eq!(status, 423);
    assert_error_body(&err, 423);
    let (status, _) = patch(
        &format!("{}/staged", rx.url),
        json!({"activation": {"mode": "activate_immediate"}}),
    )
    .await;
    assert_eq!(status, 423);
    assert_eq!(
        studio.receiver_active(rx.id).unwrap()["sender_id"],
        Value::Null
    );
    // Applied at its time: wait for the IS-04 change on a subscription.
    let (_, ws) = subscribe(&studio, "/receivers", json!({"id": rx.id.to_string()})).await;
    let mut ws = Events::new(ws);
    let e = ws
        .wait(|e| e["post"]["subscription"]["active"] == true)
        .await;
    assert_eq!(e["post"]["subscription"]["sender_id"], cam1.as_str());
    let active = studio.receiver_active(rx.id).unwrap();
    assert_eq!(active["activation"]["mode"], "activate_scheduled_relative");
    // Unlocked again.
    let (status, _) = patch(
        &format!("{}/staged", rx.url),
        json!({"master_enable": true}),
    )
    .await;
    assert_eq!(status, 200);

    // Scheduled then cancelled: never applied.
    let rx3 = mixer_rx(&studio, "MIX-IN3");
    let (status, _) = patch(
        &format!("{}/staged", rx3.url),
        json!({"sender_id": cam1, "master_enable": true,
            "activation": {"mode": "activate_scheduled_relative", "requested_time": "0:500000000"}}),
    )
    .await;
    assert_eq!(status, 202);
    // The cancel and the later activation happen well before the scheduled time (0.5 s), so a
    // cancel that did nothing would show as the scheduled activation firing after them.
    let (status, staged) = patch(
        &format!("{}/staged", rx3.url),
        json!({"activation": {"mode": null}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(staged["activation"]["mode"], Value::Null);
    // A later immediate activation is the only one that counts.
    let (status, _) = patch(
        &format!("{}/staged", rx3.url),
        json!({"master_enable": false, "activation": {"mode": "activate_immediate"}}),
    )
    .await;
    assert_eq!(status, 200);
    // Past the cancelled activation's time: it must not have fired.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        studio.receiver_active(rx3.id).unwrap()["master_enable"],
        false
    );
    studio.shutdown().await;
}

#[tokio::test]
async fn is05_bulk_with_one_bad_element() {
    let studio = example().await;
    let a = mixer_rx(&studio, "MIX-IN1");
    let b = mixer_rx(&studio, "MIX-IN2");
    let cam1 = studio.sender_id("CAM1-V").unwrap().to_string();
    let dev = studio.device_id("MIXER").unwrap();
    let url = format!("{}/bulk/receivers", studio.connection_url(dev));
    let r = http()
        .post(&url)
        .json(&json!([
            {"id": a.id.to_string(), "params": {"sender_id": cam1, "master_enable": true,
                "activation": {"mode": "activate_immediate"}}},
            {"id": b.id.to_string(), "params": {"transport_params": [{}, {}]}},
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let results: Value = r.json().await.unwrap();
    assert_eq!(results[0], json!({"id": a.id.to_string(), "code": 200}));
    assert_eq!(results[1]["id"], b.id.to_string());
    assert_eq!(results[1]["code"], 400);
    assert!(results[1]["error"].is_string());
    assert_eq!(
        studio.receiver_active(a.id).unwrap()["sender_id"],
        cam1.as_str()
    );
    // Malformed outer body.
    let r = http()
        .post(&url)
        .json(&json!({"id": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(http().get(&url).send().await.unwrap().status(), 405);
    studio.shutdown().await;
}

#[tokio::test]
async fn is05_faults_and_removed_devices() {
    let studio = example().await;
    let rx = mixer_rx(&studio, "MIX-IN1");
    studio.set_fault(
        FaultTarget::resource(rx.id).method("PATCH"),
        Fault::once(500),
    );
    let (status, body) = patch(
        &format!("{}/staged", rx.url),
        json!({"master_enable": true}),
    )
    .await;
    assert_eq!(status, 500);
    assert_error_body(&body, 500);
    let (status, _) = patch(
        &format!("{}/staged", rx.url),
        json!({"master_enable": true}),
    )
    .await;
    assert_eq!(status, 200);
    studio.set_fault(FaultTarget::resource(rx.id), Fault::sticky(423));
    for _ in 0..2 {
        let (status, _) = get_json(&format!("{}/active", rx.url)).await;
        assert_eq!(status, 423);
    }
    studio.clear_faults();
    studio.set_fault(
        FaultTarget::device(studio.device_id("MIXER").unwrap()),
        Fault::Delay(Duration::from_secs(1)),
    );
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(
        quick
            .get(format!("{}/active", rx.url))
            .send()
            .await
            .unwrap_err()
            .is_timeout()
    );
    studio.clear_faults();

    // A removed device stops answering until restored.
    let mixer = studio.device_id("MIXER").unwrap();
    assert!(studio.remove_device(mixer));
    assert!(!studio.remove_device(mixer));
    assert!(
        quick
            .get(format!("{}/active", rx.url))
            .send()
            .await
            .unwrap_err()
            .is_timeout()
    );
    let pending = tokio::spawn({
        let url = format!("{}/active", rx.url);
        async move { http().get(url).send().await.unwrap().status() }
    });
    assert!(
        studio
            .wait_for_request(
                |r| r.path.ends_with("/active") && r.status == 200,
                Duration::from_millis(300)
            )
            .await
            .is_none()
    );
    assert!(studio.restore_device(mixer));
    assert_eq!(pending.await.unwrap(), 200);
    studio.shutdown().await;
}

// ----- IS-08 ---------------------------------------------------------------------------------

async fn post(url: &str, body: Value) -> (u16, Value) {
    let r = http().post(url).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn is08_immediate_activation_and_constraints() {
    let studio = example().await;
    let dev = studio.device_id("AUDIO").unwrap();
    let cm = studio.channel_mapping_url(dev);
    let (_, active) = get_json(&format!("{cm}/map/active")).await;
    assert_eq!(
        active["map"]["OutA"]["0"],
        json!({"input": "in1", "channel_index": 0})
    );
    assert_eq!(
        active["map"]["OutB"]["1"],
        json!({"input": null, "channel_index": null})
    );
    let (_, device_before) = get_json(&q(&studio, &format!("devices/{dev}"))).await;

    let (status, resp) = post(
        &format!("{cm}/map/activations"),
        json!({"activation": {"mode": "activate_immediate"},
            "action": {"OutA": {"2": {"input": "in1", "channel_index": 2}, "3": {"input": "in1", "channel_index": 3}}}}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let (id, entry) = resp.as_object().unwrap().iter().next().unwrap();
    assert_eq!(entry["activation"]["mode"], "activate_immediate");
    assert!(entry["activation"]["activation_time"].is_string());
    assert_eq!(entry["action"]["OutA"]["2"]["channel_index"], 2);
    let active = studio.channel_map_active(dev).unwrap();
    assert_eq!(
        active["map"]["OutA"]["3"],
        json!({"input": "in1", "channel_index": 3})
    );
    assert_eq!(active["activation"]["mode"], "activate_immediate");
    let (status, _) = get_json(&format!("{cm}/map/activations/{id}")).await;
    assert_eq!(status, 404, "immediate activations are not listed");
    let (_, device_after) = get_json(&q(&studio, &format!("devices/{dev}"))).await;
    assert_ne!(device_before["version"], device_after["version"]);
    let (_, one) = get_json(&format!("{cm}/map/active/OutA")).await;
    assert_eq!(one["map"].as_object().unwrap().len(), 1);

    let before = studio.channel_map_active(dev).unwrap();
    for (action, needle) in [
        // Block of 2 split (block_size 2 on in1).
        (
            json!({"OutB": {"0": {"input": "in1", "channel_index": 1}, "1": {"input": "in1", "channel_index": 2}}}),
            "block",
        ),
        // Not routable.
        (
            json!({"Mon": {"0": {"input": "in1", "channel_index": 0}}}),
            "in1",
        ),
        // Unrouted not allowed on Mon.
        (
            json!({"Mon": {"0": {"input": null, "channel_index": null}}}),
            "Mon",
        ),
        // Out of range and unknown.
        (
            json!({"OutB": {"0": {"input": "in2", "channel_index": 7}}}),
            "in2",
        ),
        (
            json!({"OutB": {"0": {"input": "nope", "channel_index": 0}}}),
            "nope",
        ),
        (
            json!({"OutZ": {"0": {"input": "in2", "channel_index": 0}}}),
            "OutZ",
        ),
        (
            json!({"OutB": {"5": {"input": "in2", "channel_index": 0}}}),
            "5",
        ),
        // Half null.
        (
            json!({"OutB": {"0": {"input": "in2", "channel_index": null}}}),
            "OutB",
        ),
    ] {
        let (status, err) = post(
            &format!("{cm}/map/activations"),
            json!({"activation": {"mode": "activate_immediate"}, "action": action}),
        )
        .await;
        assert_eq!(status, 400, "{action}: {err}");
        assert_error_body(&err, 400);
        let text = format!("{} {}", err["error"], err["debug"]);
        assert!(text.contains(needle), "{action}: {text}");
    }
    // Schema violations.
    for body in [
        json!({"action": {}}),
        json!({"activation": {"mode": "activate_immediate"}, "action": {"OutB": {"0": null}}}),
        json!({"activation": {"mode": null}, "action": {}}),
        json!({"activation": {"mode": "activate_scheduled_relative",
            "requested_time": "18446744073709551615:0"}, "action": {}}),
    ] {
        let (status, err) = post(&format!("{cm}/map/activations"), body.clone()).await;
        assert_eq!(status, 400, "{body}: {err}");
    }
    assert_eq!(studio.channel_map_active(dev).unwrap(), before);
    studio.shutdown().await;
}

#[tokio::test]
async fn is08_scheduled_activation_locks_and_delete() {
    let studio = example().await;
    let dev = studio.device_id("AUDIO").unwrap();
    let cm = studio.channel_mapping_url(dev);
    let url = format!("{cm}/map/activations");
    let (status, resp) = post(
        &url,
        json!({"activation": {"mode": "activate_scheduled_relative", "requested_time": "0:500000000"},
            "action": {"OutB": {"0": {"input": "in2", "channel_index": 1}, "1": {"input": "in2", "channel_index": 0}}}}),
    )
    .await;
    assert_eq!(status, 202, "{resp}");
    let (id, entry) = resp
        .as_object()
        .unwrap()
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    assert_eq!(entry["activation"]["mode"], "activate_scheduled_relative");
    let (_, pending) = get_json(&url).await;
    assert!(pending.get(&id).is_some(), "{pending}");
    let (status, err) = post(
        &url,
        json!({"activation": {"mode": "activate_immediate"},
            "action": {"OutB": {"0": {"input": "in2", "channel_index": 0}}}}),
    )
    .await;
    assert_eq!(status, 423);
    assert!(err["error"].as_str().unwrap().contains("OutB"));
    // Another output is not locked.
    let (status, _) = post(
        &url,
        json!({"activation": {"mode": "activate_immediate"},
            "action": {"OutA": {"2": {"input": "in2", "channel_index": 0}, "3": {"input": "in2", "channel_index": 1}}}}),
    )
    .await;
    assert_eq!(status, 200);
    // Applied at its time: the device's version changes on the devices subscription.
    let (_, ws) = subscribe(&studio, "/devices", json!({"id": dev.to_string()})).await;
    let mut ws = Events::new(ws);
    ws.wait(|e| e.get("pre").is_some() && e["pre"] != e["post"])
        .await;
    let active = studio.channel_map_active(dev).unwrap();
    assert_eq!(
        active["map"]["OutB"]["0"],
        json!({"input": "in2", "channel_index": 1})
    );
    assert_eq!(active["activation"]["mode"], "activate_scheduled_relative");
    let (status, _) = get_json(&format!("{url}/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(
        http()
            .delete(format!("{url}/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Scheduled far ahead, then deleted: never applied.
    let (status, resp) = post(
        &url,
        json!({"activation": {"mode": "activate_scheduled_relative", "requested_time": "60:0"},
            "action": {"OutB": {"0": {"input": null, "channel_index": null}}}}),
    )
    .await;
    assert_eq!(status, 202);
    let id = resp.as_object().unwrap().keys().next().unwrap().clone();
    let (status, got) = get_json(&format!("{url}/{id}")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        http()
            .delete(format!("{url}/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let (status, _) = post(
        &url,
        json!({"activation": {"mode": "activate_immediate"},
            "action": {"OutB": {"0": {"input": "in2", "channel_index": 0}}}}),
    )
    .await;
    assert_eq!(status, 200, "unlocked after DELETE");
    studio.shutdown().await;
}

// ----- responses against the official schemas ------------------------------------------------

/// Validators for the IS-04 v1.3 schema folder (siblings resolved from memory).
struct Is04Schemas {
    files: Arc<std::collections::HashMap<String, Value>>,
}

struct Is04Retriever(Arc<std::collections::HashMap<String, Value>>);

const IS04_BASE: &str = "file:///nmos/is-04/v1.3/schemas/";

impl jsonschema::Retrieve for Is04Retriever {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let uri = uri.as_str();
        let name = uri.split('#').next().unwrap_or(uri);
        name.strip_prefix(IS04_BASE)
            .and_then(|n| self.0.get(n))
            .cloned()
            .ok_or_else(|| format!("{uri}: not in the folder").into())
    }
}

impl Is04Schemas {
    fn load() -> Is04Schemas {
        let dir = mos_gateway::nmos::schemas::default_dir().join("is-04/v1.3/APIs/schemas");
        let mut files = std::collections::HashMap::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            files.insert(
                name,
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            );
        }
        Is04Schemas {
            files: Arc::new(files),
        }
    }

    fn check(&self, file: &str, instance: &Value) {
        let errors = self.errors(file, instance);
        assert!(errors.is_empty(), "{file}: {errors:?}\n{instance}");
    }

    fn errors(&self, file: &str, instance: &Value) -> Vec<String> {
        let v = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(true)
            .with_base_uri(format!("{IS04_BASE}{file}"))
            .with_retriever(Is04Retriever(self.files.clone()))
            .build(&self.files[file])
            .unwrap();
        v.iter_errors(instance).map(|e| e.to_string()).collect()
    }
}

fn check_schema(api: mos_gateway::nmos::schemas::NmosApi, file: &str, instance: &Value) {
    let r = schemas().validate_with_file(api, file, instance).unwrap();
    assert!(r.is_ok(), "{file}: {r:?}\n{instance}");
}

#[tokio::test]
async fn responses_match_the_official_schemas() {
    use mos_gateway::nmos::schemas::NmosApi::{Is05V1_1, Is08V1_0};
    let studio = example().await;
    let is04 = Is04Schemas::load();
    // The checker does catch a bad resource.
    assert!(
        !is04
            .errors("senders.json", &json!([{"id": "x"}]))
            .is_empty()
    );
    for kind in [
        "nodes",
        "devices",
        "sources",
        "flows",
        "senders",
        "receivers",
    ] {
        let (_, list) = get_json(&q(&studio, &format!("{kind}?paging.limit=100"))).await;
        assert!(!list.as_array().unwrap().is_empty());
        is04.check(&format!("{kind}.json"), &list);
    }
    let (_, err) = get_json(&q(&studio, "senders/nope")).await;
    is04.check("error.json", &err);
    let (sub, mut ws) = subscribe(&studio, "/receivers", json!({})).await;
    is04.check("queryapi-subscription-response.json", &sub);
    is04.check(
        "queryapi-subscriptions-websocket.json",
        &next_grain(&mut ws).await,
    );
    let (_, subs) = get_json(&q(&studio, "subscriptions")).await;
    is04.check("queryapi-subscriptions-response.json", &subs);

    // IS-05, before and after an activation.
    let rx = mixer_rx(&studio, "MIX-IN4");
    let sdp = sdp_of(&studio, "CAM3-V").await;
    let cam3 = studio.sender_id("CAM3-V").unwrap().to_string();
    let (status, resp) = patch(
        &format!("{}/staged", rx.url),
        json!({"sender_id": cam3, "master_enable": true,
            "transport_file": {"data": sdp, "type": "application/sdp"},
            "transport_params": [{"rtp_enabled": true}, {"rtp_enabled": true}],
            "activation": {"mode": "activate_immediate"}}),
    )
    .await;
    assert_eq!(status, 200);
    check_schema(Is05V1_1, "receiver-response-schema.json", &resp);
    for part in ["staged", "active"] {
        let (_, v) = get_json(&format!("{}/{part}", rx.url)).await;
        check_schema(Is05V1_1, "receiver-response-schema.json", &v);
    }
    assert_eq!(
        studio.receiver_active(rx.id).unwrap()["transport_params"][1]["multicast_ip"],
        json!("239.11.3.1")
    );
    let (_, c) = get_json(&format!("{}/constraints", rx.url)).await;
    check_schema(Is05V1_1, "constraints-schema.json", &c);
    let (_, t) = get_json(&format!("{}/transporttype", rx.url)).await;
    assert_eq!(t, "urn:x-nmos:transport:rtp");
    check_schema(Is05V1_1, "transporttype-response-schema.json", &t);
    let s = studio.sender_id("PLAYOUT1-A").unwrap();
    let dev = studio.device_id("PLAYOUT1").unwrap();
    let surl = format!("{}/single/senders/{s}", studio.connection_url(dev));
    for part in ["staged", "active"] {
        let (_, v) = get_json(&format!("{surl}/{part}")).await;
        check_schema(Is05V1_1, "sender-response-schema.json", &v);
    }
    let (_, c) = get_json(&format!("{surl}/constraints")).await;
    check_schema(Is05V1_1, "constraints-schema.json", &c);
    let (status, err) = patch(&format!("{surl}/staged"), json!({"sender_id": null})).await;
    assert_eq!(status, 400, "a sender has no sender_id");
    check_schema(Is05V1_1, "error.json", &err);
    let (_, bulk) = post(
        &format!(
            "{}/bulk/receivers",
            studio.connection_url(studio.device_id("MIXER").unwrap())
        ),
        json!([{"id": rx.id.to_string(), "params": {"master_enable": false}}]),
    )
    .await;
    check_schema(Is05V1_1, "bulk-response-schema.json", &bulk);

    // IS-08.
    let dev = studio.device_id("AUDIO").unwrap();
    let cm = studio.channel_mapping_url(dev);
    for (path, file) in [
        ("io", "io-response-schema.json"),
        ("map/active", "map-active-response-schema.json"),
        ("map/active/OutA", "map-active-output-response-schema.json"),
        ("inputs/in1/caps", "input-caps-response-schema.json"),
        ("inputs/in1/channels", "input-channels-response-schema.json"),
        ("inputs/in1/parent", "input-parent-response-schema.json"),
        ("inputs/in1/properties", "input-properties-schema.json"),
        ("outputs/OutA/caps", "output-caps-response-schema.json"),
        (
            "outputs/OutA/channels",
            "output-channels-response-schema.json",
        ),
        (
            "outputs/OutA/sourceid",
            "output-sourceid-response-schema.json",
        ),
        ("outputs/OutA/properties", "output-properties-schema.json"),
        (
            "map/activations",
            "map-activations-get-response-schema.json",
        ),
    ] {
        let (status, v) = get_json(&format!("{cm}/{path}")).await;
        assert_eq!(status, 200, "{path}");
        check_schema(Is08V1_0, file, &v);
    }
    let (status, resp) = post(
        &format!("{cm}/map/activations"),
        json!({"activation": {"mode": "activate_scheduled_relative", "requested_time": "30:0"},
            "action": {"OutB": {"0": {"input": "in2", "channel_index": 0}}}}),
    )
    .await;
    assert_eq!(status, 202);
    check_schema(Is08V1_0, "map-activations-post-response-schema.json", &resp);
    let id = resp.as_object().unwrap().keys().next().unwrap().clone();
    let (_, one) = get_json(&format!("{cm}/map/activations/{id}")).await;
    check_schema(
        Is08V1_0,
        "map-activations-activation-get-response-schema.json",
        &one,
    );
    let (_, all) = get_json(&format!("{cm}/map/activations")).await;
    check_schema(Is08V1_0, "map-activations-get-response-schema.json", &all);
    let (_, err) = get_json(&format!("{cm}/inputs/nope/caps")).await;
    check_schema(Is08V1_0, "error.json", &err);
    studio.shutdown().await;
}

#[tokio::test]
async fn restart_device_forgets_connections_and_maps() {
    let studio = example().await;
    let rx = mixer_rx(&studio, "MIX-IN1");
    let cam1 = studio.sender_id("CAM1-V").unwrap().to_string();
    let (status, _) = patch(
        &format!("{}/staged", rx.url),
        json!({"sender_id": cam1, "master_enable": true, "activation": {"mode": "activate_immediate"}}),
    )
    .await;
    assert_eq!(status, 200);
    let audio = studio.device_id("AUDIO").unwrap();
    let initial_map = studio.channel_map_active(audio).unwrap();
    let (status, _) = post(
        &format!("{}/map/activations", studio.channel_mapping_url(audio)),
        json!({"activation": {"mode": "activate_immediate"},
            "action": {"OutB": {"0": {"input": "in2", "channel_index": 0}}}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(
        studio.channel_map_active(audio).unwrap()["map"],
        initial_map["map"]
    );

    let (_, ws) = subscribe(&studio, "/receivers", json!({"id": rx.id.to_string()})).await;
    let mut ws = Events::new(ws);
    let mixer = studio.device_id("MIXER").unwrap();
    assert!(studio.restart_device(mixer));
    assert!(studio.restart_device(audio));
    let e = ws.wait(|e| e.get("post").is_none()).await;
    assert_eq!(e["pre"]["subscription"]["active"], true);
    let e = ws.wait(|e| e.get("pre").is_none()).await;
    assert_eq!(
        e["post"]["subscription"],
        json!({"sender_id": null, "active": false})
    );
    assert_eq!(
        studio.receiver_active(rx.id).unwrap()["master_enable"],
        false
    );
    assert_eq!(
        studio.channel_map_active(audio).unwrap()["map"],
        initial_map["map"]
    );
    // The same change seen through the handle.
    let connected = |v: Option<&Value>| v.is_some_and(|v| v["subscription"]["active"] == true);
    assert!(
        !studio
            .wait_for_resource(
                ResourceType::Receivers,
                rx.id,
                connected,
                Duration::from_millis(50)
            )
            .await
    );
    let (status, _) = patch(
        &format!("{}/staged", rx.url),
        json!({"master_enable": true, "activation": {"mode": "activate_scheduled_relative", "requested_time": "0:50000000"}}),
    )
    .await;
    assert_eq!(status, 202);
    assert!(
        studio
            .wait_for_resource(ResourceType::Receivers, rx.id, connected, WAIT)
            .await
    );

    // A WebSocket handshake can be failed too.
    studio.set_fault(FaultTarget::path("/ws/"), Fault::once(503));
    let r = http()
        .post(q(&studio, "subscriptions"))
        .json(&json!({"max_update_rate_ms": 0, "resource_path": "/nodes", "params": {}, "persist": false}))
        .send()
        .await
        .unwrap();
    let sub: Value = r.json().await.unwrap();
    assert!(
        tokio_tungstenite::connect_async(sub["ws_href"].as_str().unwrap())
            .await
            .is_err()
    );
    assert!(
        tokio_tungstenite::connect_async(sub["ws_href"].as_str().unwrap())
            .await
            .is_ok()
    );
    studio.shutdown().await;
}

#[tokio::test]
async fn is05_sender_patch_and_odd_bodies() {
    let studio = example().await;
    let s = studio.sender_id("PLAYOUT1-V").unwrap();
    let dev = studio.device_id("PLAYOUT1").unwrap();
    let surl = format!("{}/single/senders/{s}", studio.connection_url(dev));
    let (status, resp) = patch(
        &format!("{surl}/staged"),
        json!({"master_enable": false, "activation": {"mode": "activate_immediate"}}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(studio.sender_active(s).unwrap()["master_enable"], false);
    let (_, sender) = get_json(&q(&studio, &format!("senders/{s}"))).await;
    assert_eq!(sender["subscription"]["active"], false);
    let (status, body) = get_json(&format!("{surl}/transportfile")).await;
    assert_eq!(status, 404);
    assert_error_body(&body, 404);
    // A new destination shows in the SDP once enabled again.
    let (status, _) = patch(
        &format!("{surl}/staged"),
        json!({"master_enable": true, "transport_params": [{"destination_ip": "239.99.0.1"}],
            "activation": {"mode": "activate_immediate"}}),
    )
    .await;
    assert_eq!(status, 200);
    let sdp = http()
        .get(format!("{surl}/transportfile"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(sdp.contains("c=IN IP4 239.99.0.1/64"), "{sdp}");

    // Odd bodies: a 4xx, never a 5xx, and the server goes on.
    let rx = mixer_rx(&studio, "MIX-IN1");
    for body in [
        "[]",
        "null",
        "\"x\"",
        "{",
        "{\"transport_params\": [null]}",
        "{\"activation\": \"now\"}",
        "{\"activation\": {\"mode\": \"activate_later\"}}",
        "{\"transport_file\": {\"data\": \"m=video x RTP/AVP 96\\r\\nc=IN\", \"type\": \"application/sdp\"}}",
    ] {
        let r = http()
            .patch(format!("{}/staged", rx.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!((200..500).contains(&status), "{body}: {status}");
    }
    let (status, _) = get_json(&format!("{}/staged", rx.url)).await;
    assert_eq!(status, 200);
    studio.shutdown().await;
}

#[tokio::test]
async fn query_paging_until_returns_the_older_page() {
    let studio = example().await;
    let r = http()
        .get(q(&studio, "senders?paging.limit=3"))
        .send()
        .await
        .unwrap();
    let since = r.headers()["x-paging-since"].to_str().unwrap().to_owned();
    let newest: Vec<Value> = r.json().await.unwrap();
    assert_eq!(newest.len(), 3);
    // The previous page: until = this page's since.
    let r = http()
        .get(q(
            &studio,
            &format!("senders?paging.limit=3&paging.until={since}"),
        ))
        .send()
        .await
        .unwrap();
    let older: Vec<Value> = r.json().await.unwrap();
    assert_eq!(older.len(), 3);
    assert!(older.iter().all(|o| !newest.contains(o)));
    studio.shutdown().await;
}

/// The shipped demo (config/demo.toml) resolves against the shipped studio: every channel,
/// the preset and the bound placeholder give a route; the audio map fits the device.
#[tokio::test]
async fn the_shipped_demo_mapping_resolves_against_the_shipped_studio() {
    use mos_gateway::mos::{Message, Mos, ParseOptions};
    use mos_gateway::nmos::http::{HttpSettings, NmosHttp};
    use mos_gateway::nmos::is08::{ChannelMappingClient, Is08Settings};
    use mos_gateway::nmos::mapping::Mapping;
    use mos_gateway::nmos::resolve::{ResolveContext, resolve_rundown};
    use mos_gateway::rundown::Rundown;
    use std::collections::BTreeMap;

    let studio = example().await;
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml");
    let config = mos_gateway::config::Config::load(Some(&demo)).unwrap();
    let mapping = Mapping::from_config(&config);
    let catalogue = QueryClient::new(&studio.query_url(), QueryClientConfig::default())
        .unwrap()
        .catalogue()
        .await
        .unwrap();
    let audio = studio.device_id("AUDIO").unwrap();
    let http = NmosHttp::new(HttpSettings {
        allow_http: true,
        ..HttpSettings::default()
    })
    .unwrap();
    let schemas = Arc::new(SchemaSet::load_default().unwrap());
    let io = ChannelMappingClient::new(http, schemas, Is08Settings::default())
        .read_io(&format!("{}/", studio.channel_mapping_url(audio)), false)
        .await
        .unwrap();
    let io = BTreeMap::from([(audio.to_string(), (*io).clone())]);

    let sender = |label: &str| studio.sender_id(label).unwrap().to_string();
    let item = |id: &str, obj: &str, channel: &str| {
        format!(
            "<item><itemID>{id}</itemID><objID>{obj}</objID><mosID>demo.gateway.mos</mosID><itemChannel>{channel}</itemChannel></item>"
        )
    };
    let xml = format!(
        "<mos><mosID>demo.gateway.mos</mosID><ncsID>DEMO.NCS</ncsID><messageID>1</messageID><roCreate><roID>R</roID><roSlug>Demo</roSlug><story><storyID>S</storyID>{}{}{}{}{}</story></roCreate></mos>",
        item("PGM", &sender("CAM1-V"), "PGM"),
        item("PVW", &sender("CAM2-V"), "PVW"),
        item("SOUND", &sender("PLAYOUT1-A"), "SOUND"),
        item("SALVO", "PRESET-2SHOT", ""),
        item("REMOTE", "PH-1", "PGM"),
    );
    let Message::RoCreate(ro) = Mos::parse(&xml, ParseOptions::strict())
        .unwrap()
        .mos
        .message
    else {
        panic!("not a roCreate")
    };
    let rundown = Rundown::from_running_order(ro.0).unwrap();
    // The placeholder the NCS would have created with objSlug "Remote feed".
    let placeholders = BTreeMap::from([("PH-1".to_string(), "Remote feed".to_string())]);
    let labels = mos_gateway::nmos::mapping::LabelIndex::new(&catalogue);
    let ctx = ResolveContext {
        catalogue: &catalogue,
        labels: &labels,
        io: &io,
        mapping: &mapping,
        objects: &placeholders,
    };
    let routes: BTreeMap<String, _> = resolve_rundown(&rundown, &ctx)
        .into_iter()
        .map(|(key, plan)| {
            let route = plan.unwrap_or_else(|e| panic!("{}: {e}", key.item_id));
            assert!(!route.connections.is_empty(), "{}", key.item_id);
            (key.item_id, route)
        })
        .collect();
    assert_eq!(
        routes.keys().map(String::as_str).collect::<Vec<_>>(),
        ["PGM", "PVW", "REMOTE", "SALVO", "SOUND"]
    );
    assert_eq!(routes["SOUND"].audio_maps.len(), 1);
    assert_eq!(routes["SALVO"].connections.len(), 2);
}
