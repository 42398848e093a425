//! The IS-04 Query API client against a small fake registry (axum on 127.0.0.1:0).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mos_gateway::nmos::is04::{
    ApiVersion, Catalogue, ControlKind, Format, MosObjType, QueryClient, QueryClientConfig,
    QueryError, Receiver, Sender,
};
use serde_json::{Value, json};

// ----- fixtures ------------------------------------------------------------------------------

fn uuid(kind: u8, n: u8) -> String {
    format!("{kind:02x}{n:06x}-0000-4000-8000-000000000000")
}

const NODE: u8 = 1;
const DEVICE: u8 = 2;
const SOURCE: u8 = 3;
const FLOW: u8 = 4;
const SENDER: u8 = 5;
const RECEIVER: u8 = 6;

fn core(kind: u8, n: u8, label: &str) -> serde_json::Map<String, Value> {
    let Value::Object(m) = json!({
        "id": uuid(kind, n),
        "version": format!("1700000000:{n}"),
        "label": label,
        "description": "",
        "tags": {},
        "x-vendor-extra": {"ignored": true}
    }) else {
        unreachable!()
    };
    m
}

fn with(mut base: serde_json::Map<String, Value>, extra: Value) -> Value {
    if let Value::Object(e) = extra {
        base.extend(e);
    }
    Value::Object(base)
}

fn resources() -> HashMap<&'static str, Vec<Value>> {
    let mut r = HashMap::new();
    r.insert(
        "nodes",
        vec![
            with(
                core(NODE, 1, "node one"),
                json!({"href": "http://10.0.0.1/", "hostname": "n1",
                   "api": {"versions": ["v1.3"], "endpoints": [{"host": "10.0.0.1", "port": 80, "protocol": "http"}]},
                   "services": [], "caps": {}, "clocks": [], "interfaces": []}),
            ),
            with(
                core(NODE, 2, "node two"),
                json!({"href": "http://10.0.0.2/", "api": {"versions": ["v1.2", "v1.3"], "endpoints": []}, "services": []}),
            ),
        ],
    );
    r.insert(
        "devices",
        vec![
            with(
                core(DEVICE, 1, "Camera 1"),
                json!({"node_id": uuid(NODE, 1), "type": "urn:x-nmos:device:generic", "senders": [], "receivers": [],
                   "controls": [
                       {"type": "urn:x-nmos:control:sr-ctrl/v1.0", "href": "http://10.0.0.1/x-nmos/connection/v1.0/"},
                       {"type": "urn:x-nmos:control:sr-ctrl/v1.2", "href": "http://10.0.0.1/x-nmos/connection/v1.2/"},
                       {"type": "urn:x-nmos:control:sr-ctrl/v1.1", "href": "http://10.0.0.1/x-nmos/connection/v1.1/", "authorization": false},
                       {"type": "urn:x-nmos:control:cm-ctrl/v1.0", "href": "http://10.0.0.1/x-nmos/channelmapping/v1.0/slot2B/"},
                       {"type": "urn:x-nmos:control:sr-ctrl/v1.1", "href": "http://10.0.1.1/x-nmos/connection/v1.1/", "authorization": true}
                   ]}),
            ),
            with(
                core(DEVICE, 2, "Audio desk"),
                json!({"node_id": uuid(NODE, 2), "type": "urn:x-nmos:device:audio", "senders": [], "receivers": [],
                   "controls": [{"type": "urn:x-nmos:control:sr-ctrl/v1.0", "href": "http://10.0.0.2/x-nmos/connection/v1.0/"}]}),
            ),
            with(
                core(DEVICE, 3, "Graphics"),
                json!({"node_id": uuid(NODE, 2), "type": "urn:x-nmos:device:generic", "senders": [], "receivers": [], "controls": []}),
            ),
        ],
    );
    r.insert(
        "sources",
        vec![
            with(
                core(SOURCE, 1, "cam src"),
                json!({"format": "urn:x-nmos:format:video", "device_id": uuid(DEVICE, 1), "parents": [], "caps": {}, "clock_name": "clk0"}),
            ),
            with(
                core(SOURCE, 2, "mic src"),
                json!({"format": "urn:x-nmos:format:audio", "device_id": uuid(DEVICE, 2), "parents": [], "caps": {},
                   "channels": [{"label": "L", "symbol": "L"}, {"label": "R", "symbol": "R"}]}),
            ),
        ],
    );
    r.insert(
        "flows",
        vec![
            with(
                core(FLOW, 1, "cam flow"),
                json!({"format": "urn:x-nmos:format:video", "source_id": uuid(SOURCE, 1), "device_id": uuid(DEVICE, 1), "parents": [],
                   "media_type": "video/raw", "frame_width": 1920, "frame_height": 1080, "colorspace": "BT709",
                   "interlace_mode": "progressive", "grain_rate": {"numerator": 50}, "components": []}),
            ),
            with(
                core(FLOW, 2, "mic flow"),
                json!({"format": "urn:x-nmos:format:audio", "source_id": uuid(SOURCE, 2), "device_id": uuid(DEVICE, 2), "parents": [],
                   "media_type": "audio/L24", "sample_rate": {"numerator": 48000}, "bit_depth": 24}),
            ),
            with(
                core(FLOW, 3, "anc flow"),
                json!({"format": "urn:x-nmos:format:data", "source_id": uuid(SOURCE, 1), "device_id": uuid(DEVICE, 1), "parents": [],
                   "media_type": "video/smpte291"}),
            ),
            with(
                core(FLOW, 4, "mux flow"),
                json!({"format": "urn:x-nmos:format:mux", "source_id": uuid(SOURCE, 1), "device_id": uuid(DEVICE, 1), "parents": [],
                   "media_type": "video/SMPTE2022-6"}),
            ),
        ],
    );
    let sender = |n: u8, label: &str, flow: Option<u8>, device: u8| {
        with(
            core(SENDER, n, label),
            json!({"flow_id": flow.map(|f| uuid(FLOW, f)), "transport": "urn:x-nmos:transport:rtp.mcast",
               "device_id": uuid(DEVICE, device),
               "manifest_href": format!("http://10.0.0.1/sdp/{n}.sdp"), "interface_bindings": ["eth0"],
               "subscription": {"receiver_id": null, "active": true}}),
        )
    };
    r.insert(
        "senders",
        vec![
            sender(1, "CAM 1", Some(1), 1),
            sender(2, "MIC 1", Some(2), 2),
            sender(3, "CAM 1 ANC", Some(3), 1),
            sender(4, "CAM 1 2022-6", Some(4), 1),
            sender(5, "Idle", None, 3),
        ],
    );
    r.insert(
        "receivers",
        vec![
            with(
                core(RECEIVER, 1, "MON 1"),
                json!({"format": "urn:x-nmos:format:video", "caps": {"media_types": ["video/raw"]},
                   "transport": "urn:x-nmos:transport:rtp.mcast", "device_id": uuid(DEVICE, 3), "interface_bindings": [],
                   "subscription": {"sender_id": uuid(SENDER, 1), "active": true}}),
            ),
            with(
                core(RECEIVER, 2, "SPK 1"),
                json!({"format": "urn:x-nmos:format:audio", "caps": {"media_types": ["audio/L24"]},
                   "transport": "urn:x-nmos:transport:rtp", "device_id": uuid(DEVICE, 2), "interface_bindings": [],
                   "subscription": {"sender_id": null, "active": false}}),
            ),
            with(
                core(RECEIVER, 3, "MON 2"),
                json!({"format": "urn:x-nmos:format:video", "caps": {},
                   "transport": "urn:x-nmos:transport:rtp.mcast", "device_id": uuid(DEVICE, 3), "interface_bindings": [],
                   "subscription": {"sender_id": null, "active": true}}),
            ),
        ],
    );
    r
}

// ----- fake registry -------------------------------------------------------------------------

struct Registry {
    versions: Vec<&'static str>,
    resources: HashMap<&'static str, Vec<Value>>,
    /// Server-side cap on `paging.limit`.
    max_limit: usize,
    /// Send `Link` headers (otherwise only `X-Paging-*`).
    links: bool,
    requests: AtomicUsize,
    paths: std::sync::Mutex<Vec<String>>,
}

async fn versions(State(reg): State<Arc<Registry>>) -> Response {
    reg.requests.fetch_add(1, Ordering::SeqCst);
    axum::Json(
        reg.versions
            .iter()
            .map(|v| format!("{v}/"))
            .collect::<Vec<_>>(),
    )
    .into_response()
}

fn error(status: StatusCode, text: &str) -> Response {
    (
        status,
        axum::Json(json!({"code": status.as_u16(), "error": text, "debug": null})),
    )
        .into_response()
}

async fn collection(
    State(reg): State<Arc<Registry>>,
    Path((version, kind)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    reg.requests.fetch_add(1, Ordering::SeqCst);
    let via = if q.contains_key("via") {
        "?via=link"
    } else {
        ""
    };
    reg.paths
        .lock()
        .unwrap()
        .push(format!("{version}/{kind}{via}"));
    if !reg.versions.contains(&version.as_str()) {
        return error(StatusCode::NOT_FOUND, "no such version");
    }
    let Some(all) = reg.resources.get(kind.as_str()) else {
        return error(StatusCode::NOT_FOUND, "no such resource type");
    };
    // Basic queries, applied before paging (`paging.*`/`query.*` are not filters).
    let filtered: Vec<(usize, &Value)> = all
        .iter()
        .enumerate()
        .filter(|(_, item)| {
            q.iter()
                .filter(|(k, _)| {
                    !k.starts_with("paging.") && !k.starts_with("query.") && *k != "via"
                })
                .all(|(k, v)| item.get(k).and_then(Value::as_str) == Some(v.as_str()))
        })
        .collect();
    // Creation time of item i is (i + 1):0; `since` is exclusive.
    let since: usize = q
        .get("paging.since")
        .map(|s| s.split(':').next().unwrap().parse().unwrap())
        .unwrap_or(0);
    let limit = q
        .get("paging.limit")
        .map(|l| l.parse::<usize>().unwrap())
        .unwrap_or(reg.max_limit)
        .min(reg.max_limit);
    let page: Vec<(usize, &Value)> = filtered
        .into_iter()
        .filter(|(i, _)| i + 1 > since)
        .take(limit)
        .collect();
    let until = page.last().map_or(since, |(i, _)| i + 1);
    let mut headers = HeaderMap::new();
    headers.insert("X-Paging-Limit", HeaderValue::from(limit));
    headers.insert(
        "X-Paging-Since",
        HeaderValue::from_str(&format!("{since}:0")).unwrap(),
    );
    headers.insert(
        "X-Paging-Until",
        HeaderValue::from_str(&format!("{until}:0")).unwrap(),
    );
    if reg.links {
        let mut keep: Vec<String> = q
            .iter()
            .filter(|(k, _)| *k != "paging.since" && *k != "paging.until" && *k != "via")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        keep.sort();
        let keep = keep.join("&");
        let link = format!(
            "</x-nmos/query/{version}/{kind}?{keep}&via=link&paging.since={until}:0>; rel=\"next\", \
             </x-nmos/query/{version}/{kind}?{keep}&paging.until={since}:0>; rel=\"prev\""
        );
        headers.insert("Link", HeaderValue::from_str(&link).unwrap());
    }
    let body: Vec<Value> = page.into_iter().map(|(_, v)| v.clone()).collect();
    (headers, axum::Json(body)).into_response()
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn start(versions_offered: Vec<&'static str>, links: bool) -> (String, Arc<Registry>) {
    let reg = Arc::new(Registry {
        versions: versions_offered,
        resources: resources(),
        max_limit: 2,
        links,
        requests: AtomicUsize::new(0),
        paths: Default::default(),
    });
    let router = Router::new()
        .route("/x-nmos/query/", get(versions))
        .route("/x-nmos/query/{version}/{kind}", get(collection))
        .with_state(reg.clone());
    (serve(router).await, reg)
}

fn config() -> QueryClientConfig {
    QueryClientConfig {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        page_limit: 10, // the fake registry caps it at 2
        ca_bundle: None,
        tokens: None,
    }
}

// ----- tests ---------------------------------------------------------------------------------

#[tokio::test]
async fn reads_every_page_following_link_headers() {
    let (base, reg) = start(vec!["v1.0", "v1.1", "v1.2", "v1.3"], true).await;
    let client = QueryClient::new(&base, config()).unwrap();
    assert_eq!(client.api_version().await.unwrap(), ApiVersion::V1_3);
    let before = reg.requests.load(Ordering::SeqCst);
    let senders: Vec<Sender> = client.list_senders().await.unwrap();
    let labels: Vec<&str> = senders.iter().map(|s| s.core.label.as_str()).collect();
    assert_eq!(
        labels,
        ["CAM 1", "MIC 1", "CAM 1 ANC", "CAM 1 2022-6", "Idle"]
    );
    // 5 senders at 2 a page: 3 pages and the empty one that ends the walk.
    assert_eq!(reg.requests.load(Ordering::SeqCst) - before, 4);
    assert!(
        reg.paths
            .lock()
            .unwrap()
            .iter()
            .all(|p| p.starts_with("v1.3/"))
    );
    // Pages after the first came from the `next` links.
    let via_link = reg
        .paths
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.ends_with("?via=link"))
        .count();
    assert_eq!(via_link, 3);
    assert_eq!(senders[4].flow_id, None);
    assert_eq!(
        senders[0].manifest_href.as_deref(),
        Some("http://10.0.0.1/sdp/1.sdp")
    );
    assert!(senders[0].subscription.active);
    assert_eq!(senders[0].transport, "urn:x-nmos:transport:rtp.mcast");
}

#[tokio::test]
async fn reads_every_page_from_x_paging_until_without_links() {
    let (base, reg) = start(vec!["v1.3"], false).await;
    let client = QueryClient::new(&format!("{base}/x-nmos/query/v1.3/"), config()).unwrap();
    let receivers: Vec<Receiver> = client.list_receivers().await.unwrap();
    assert_eq!(receivers.len(), 3);
    assert!(receivers[0].is_receiving_from(&uuid(SENDER, 1)));
    assert_eq!(receivers[0].caps.media_types, ["video/raw"]);
    assert!(!receivers[2].is_receiving_from(&uuid(SENDER, 1)));
    assert_eq!(receivers[1].format, Format::Audio);
    assert!(
        reg.paths
            .lock()
            .unwrap()
            .iter()
            .all(|p| !p.contains("via=link"))
    );
    // versions + 2 pages + the empty page.
    assert_eq!(reg.requests.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn filters_are_sent_as_basic_queries() {
    let (base, _reg) = start(vec!["v1.3"], true).await;
    let client = QueryClient::new(&base, config()).unwrap();
    let on_cam: Vec<Sender> = client
        .list(&[("device_id", uuid(DEVICE, 1).as_str())])
        .await
        .unwrap();
    let labels: Vec<&str> = on_cam.iter().map(|s| s.core.label.as_str()).collect();
    assert_eq!(labels, ["CAM 1", "CAM 1 ANC", "CAM 1 2022-6"]);
}

#[tokio::test]
async fn catalogue_answers_the_gateways_questions() {
    let (base, _reg) = start(vec!["v1.2", "v1.3"], true).await;
    let client = QueryClient::new(&base, config()).unwrap();
    let cat: Catalogue = client.catalogue().await.unwrap();
    assert_eq!(cat.api_version, Some(ApiVersion::V1_3));
    assert_eq!(
        (
            cat.nodes.len(),
            cat.devices.len(),
            cat.sources.len(),
            cat.flows.len(),
            cat.senders.len(),
            cat.receivers.len()
        ),
        (2, 3, 2, 4, 5, 3)
    );

    let obj = |n| cat.sender_obj_type(&uuid(SENDER, n));
    assert_eq!(obj(1), Some(MosObjType::Video));
    assert_eq!(obj(2), Some(MosObjType::Audio));
    assert_eq!(obj(3), Some(MosObjType::Other)); // data
    assert_eq!(obj(4), Some(MosObjType::Other)); // mux
    assert_eq!(obj(5), Some(MosObjType::Other)); // flow_id null
    assert_eq!(cat.sender_obj_type(&uuid(SENDER, 99)), None);
    assert_eq!(MosObjType::Video.as_str(), "VIDEO");
    assert_eq!(cat.sender_format(&uuid(SENDER, 3)), Some(&Format::Data));

    let cam = uuid(DEVICE, 1);
    assert_eq!(cat.device_label(&cam), Some("Camera 1"));
    assert_eq!(
        cat.sender_device(&uuid(SENDER, 2))
            .map(|d| d.core.label.as_str()),
        Some("Audio desk")
    );
    assert_eq!(cat.senders_of_device(&cam).count(), 3);
    assert_eq!(cat.receivers_of_device(&uuid(DEVICE, 3)).count(), 2);

    let flow = cat.flow(&uuid(FLOW, 1)).unwrap();
    assert_eq!(
        (flow.frame_width, flow.frame_height),
        (Some(1920), Some(1080))
    );
    assert_eq!(
        flow.grain_rate.map(|r| (r.numerator, r.denominator)),
        Some((50, 1))
    );
    let audio = cat.flow(&uuid(FLOW, 2)).unwrap();
    assert_eq!(audio.bit_depth, Some(24));
    assert_eq!(cat.sources[&uuid(SOURCE, 2)].channels.len(), 2);
    assert_eq!(cat.nodes[&uuid(NODE, 1)].api.endpoints[0].port, 80);
}

#[tokio::test]
async fn device_controls_pick_is05_v1_1_and_is08_v1_0_exactly() {
    let (base, _reg) = start(vec!["v1.3"], true).await;
    let client = QueryClient::new(&base, config()).unwrap();
    let cat = client.catalogue().await.unwrap();
    let cam = uuid(DEVICE, 1);

    // v1.0 and the unreleased v1.2 are advertised too; only the v1.1 hrefs, in order.
    let is05: Vec<(&str, bool)> = cat
        .connection_controls(&cam)
        .iter()
        .map(|c| (c.href.as_str(), c.authorization))
        .collect();
    assert_eq!(
        is05,
        [
            ("http://10.0.0.1/x-nmos/connection/v1.1/", false),
            ("http://10.0.1.1/x-nmos/connection/v1.1/", true)
        ]
    );
    let is08: Vec<&str> = cat
        .channel_mapping_controls(&cam)
        .iter()
        .map(|c| c.href.as_str())
        .collect();
    assert_eq!(is08, ["http://10.0.0.1/x-nmos/channelmapping/v1.0/slot2B/"]);

    // A device offering only IS-05 v1.0 has no usable control: nothing is guessed.
    assert!(cat.connection_controls(&uuid(DEVICE, 2)).is_empty());
    assert!(
        cat.controls(&uuid(DEVICE, 2), ControlKind::ChannelMappingV1_0)
            .is_empty()
    );
    assert!(cat.connection_controls(&uuid(DEVICE, 3)).is_empty());
    assert!(cat.connection_controls(&uuid(DEVICE, 99)).is_empty());
}

#[tokio::test]
async fn falls_back_to_v1_2_when_that_is_all_the_registry_offers() {
    let (base, reg) = start(vec!["v1.0", "v1.1", "v1.2"], true).await;
    let client = QueryClient::new(&base, config()).unwrap();
    let cat = client.catalogue().await.unwrap();
    assert_eq!(cat.api_version, Some(ApiVersion::V1_2));
    assert_eq!(cat.senders.len(), 5);
    let paths = reg.paths.lock().unwrap();
    assert!(!paths.is_empty());
    assert!(paths.iter().all(|p| p.starts_with("v1.2/")), "{paths:?}");
}

#[tokio::test]
async fn a_registry_without_v1_2_or_v1_3_is_refused() {
    let (base, _reg) = start(vec!["v1.0", "v1.1"], true).await;
    let client = QueryClient::new(&base, config()).unwrap();
    let err = client.list_senders().await.unwrap_err();
    assert!(
        matches!(err, QueryError::NoSupportedVersion { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&format!("{base}/x-nmos/query/")));
}

#[tokio::test]
async fn a_500_names_the_url_status_and_body() {
    async fn fail() -> Response {
        error(StatusCode::INTERNAL_SERVER_ERROR, "database on fire")
    }
    let router = Router::new()
        .route(
            "/x-nmos/query/",
            get(|| async { axum::Json(json!(["v1.3/"])) }),
        )
        .route("/x-nmos/query/v1.3/senders", get(fail));
    let base = serve(router).await;
    let client = QueryClient::new(&base, config()).unwrap();
    let err = client.list_senders().await.unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert!(
        err.url()
            .starts_with(&format!("{base}/x-nmos/query/v1.3/senders?"))
    );
    let text = err.to_string();
    assert!(text.contains("HTTP 500"), "{text}");
    assert!(text.contains("database on fire"), "{text}");
    assert!(
        text.contains(&format!("{base}/x-nmos/query/v1.3/senders")),
        "{text}"
    );
}

#[tokio::test]
async fn a_silent_registry_times_out_naming_the_url() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock); // accept, read nothing, answer nothing
        }
    });
    let base = format!("http://{addr}");
    let client = QueryClient::new(&base, config())
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = client.list_senders().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(err, QueryError::Timeout { .. }), "{err:?}");
    assert_eq!(err.url(), format!("{base}/x-nmos/query/"));
    assert!(err.to_string().contains(&format!("{base}/x-nmos/query/")));
}

#[tokio::test]
async fn a_refused_connection_names_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let base = format!("http://{addr}");
    let client = QueryClient::new(&base, config()).unwrap();
    let err = client.api_version().await.unwrap_err();
    assert!(
        err.to_string().contains(&format!("{base}/x-nmos/query/")),
        "{err}"
    );
}

#[tokio::test]
async fn bad_json_names_the_url_and_body() {
    let router = Router::new()
        .route(
            "/x-nmos/query/",
            get(|| async { axum::Json(json!(["v1.3/"])) }),
        )
        .route(
            "/x-nmos/query/v1.3/flows",
            get(|| async { "not json at all" }),
        );
    let base = serve(router).await;
    let client = QueryClient::new(&base, config()).unwrap();
    let err = client.list_flows().await.unwrap_err();
    assert!(matches!(err, QueryError::Decode { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("not json at all"), "{text}");
    assert!(text.contains("/x-nmos/query/v1.3/flows"), "{text}");
}

#[tokio::test]
async fn an_unpaged_registry_is_read_in_one_go() {
    let all: Vec<Value> = resources()["devices"].clone();
    let router = Router::new()
        .route(
            "/x-nmos/query/",
            get(|| async { axum::Json(json!(["v1.3/"])) }),
        )
        .route(
            "/x-nmos/query/v1.3/devices",
            get(move || {
                let all = all.clone();
                async move { axum::Json(all) }
            }),
        );
    let base = serve(router).await;
    let client = QueryClient::new(&base, config()).unwrap();
    assert_eq!(client.list_devices().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_registry_answering_501_to_paging_is_read_without_it() {
    let all: Vec<Value> = resources()["senders"].clone();
    let router = Router::new()
        .route(
            "/x-nmos/query/",
            get(|| async { axum::Json(json!(["v1.3/"])) }),
        )
        .route(
            "/x-nmos/query/v1.3/senders",
            get(move |Query(q): Query<HashMap<String, String>>| {
                let all = all.clone();
                async move {
                    if q.keys().any(|k| k.starts_with("paging.")) {
                        error(StatusCode::NOT_IMPLEMENTED, "paging not supported")
                    } else {
                        axum::Json(all).into_response()
                    }
                }
            }),
        );
    let base = serve(router).await;
    let client = QueryClient::new(&base, config()).unwrap();
    assert_eq!(client.list_senders().await.unwrap().len(), 5);
}
