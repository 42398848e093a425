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
        Fault::Delay(Duration::from_secs(3)),
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
