//! Live discovery against a scripted registry (axum on 127.0.0.1:0, real HTTP and
//! WebSockets): initial catalogue, changes over the subscription, a device re-registering
//! (no DELETED pushed), a dropped socket (resubscribe + resync), a registry down at start,
//! bad registry input, and Node API polling.

#[path = "common/tls.rs"]
mod tls;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mos_gateway::nmos::discovery::{Discovery, DiscoveryHandle, DiscoverySettings, RegistrySource};
use mos_gateway::nmos::sender_objects::{SenderObjectSettings, spawn_sender_objects};
use mos_gateway::objects::{Catalogue as _, ChangeKind, MemoryCatalogue, ObjectChange};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

fn uuid(kind: u8, n: u8) -> String {
    format!("{kind:02x}{n:06x}-0000-4000-8000-000000000000")
}

fn node(n: u8) -> Value {
    json!({"id": uuid(1, n), "version": "1:0", "label": format!("node {n}"), "description": "", "tags": {},
           "href": "http://10.0.0.1/", "api": {"versions": ["v1.3"], "endpoints": []}, "services": []})
}

fn device(n: u8, label: &str) -> Value {
    json!({"id": uuid(2, n), "version": "1:0", "label": label, "description": "", "tags": {},
           "node_id": uuid(1, n), "type": "urn:x-nmos:device:generic", "senders": [], "receivers": [],
           "controls": [{"type": "urn:x-nmos:control:sr-ctrl/v1.1", "href": "http://10.0.0.1/x-nmos/connection/v1.1"}]})
}

fn flow(n: u8) -> Value {
    json!({"id": uuid(4, n), "version": "1:0", "label": "flow", "description": "", "tags": {},
           "format": "urn:x-nmos:format:video", "media_type": "video/raw", "source_id": uuid(3, n),
           "device_id": uuid(2, n), "parents": [], "grain_rate": {"numerator": 50, "denominator": 1}})
}

fn sender(n: u8, dev: u8, label: &str) -> Value {
    json!({"id": uuid(5, n), "version": "1:0", "label": label, "description": "", "tags": {},
           "flow_id": uuid(4, dev), "transport": "urn:x-nmos:transport:rtp.mcast", "device_id": uuid(2, dev),
           "manifest_href": null, "interface_bindings": [], "subscription": {"receiver_id": null, "active": true}})
}

// ----- the scripted registry -------------------------------------------------------------------

#[derive(Default)]
struct Registry {
    resources: Mutex<BTreeMap<String, BTreeMap<String, Value>>>,
    sockets: Mutex<Vec<(String, mpsc::UnboundedSender<Option<String>>)>>,
    up: AtomicBool,
    /// Sockets send the initial sync, then nothing, and never read (so never answer pings).
    mute: AtomicBool,
    /// POST /subscriptions answers 501.
    no_subscriptions: AtomicBool,
    posts: AtomicUsize,
    next_ws: AtomicUsize,
    addr: Mutex<String>,
    /// Sockets are offered as `wss://` (the registry serves TLS).
    tls: AtomicBool,
}

impl Registry {
    fn put(&self, kind: &str, value: Value) {
        let id = value["id"].as_str().unwrap().to_owned();
        let pre = self
            .resources
            .lock()
            .unwrap()
            .entry(kind.to_owned())
            .or_default()
            .insert(id.clone(), value.clone());
        let mut item = json!({"path": id, "post": value});
        if let Some(p) = pre {
            item["pre"] = p;
        }
        self.push(kind, vec![item]);
    }

    fn delete(&self, kind: &str, id: &str) {
        let pre = self
            .resources
            .lock()
            .unwrap()
            .entry(kind.to_owned())
            .or_default()
            .remove(id);
        if let Some(p) = pre {
            self.push(kind, vec![json!({"path": id, "pre": p})]);
        }
    }

    /// Changes the data without telling any subscriber (as if it happened while disconnected).
    fn put_silently(&self, kind: &str, value: Value) {
        let id = value["id"].as_str().unwrap().to_owned();
        self.resources
            .lock()
            .unwrap()
            .entry(kind.to_owned())
            .or_default()
            .insert(id, value);
    }

    fn delete_silently(&self, kind: &str, id: &str) {
        if let Some(m) = self.resources.lock().unwrap().get_mut(kind) {
            m.remove(id);
        }
    }

    fn push(&self, kind: &str, data: Vec<Value>) {
        self.push_raw(kind, grain(kind, data).to_string());
    }

    fn push_raw(&self, kind: &str, text: String) {
        let sockets = self.sockets.lock().unwrap();
        for (k, tx) in sockets.iter() {
            if k == kind {
                let _ = tx.send(Some(text.clone()));
            }
        }
    }

    /// Closes every WebSocket.
    fn drop_sockets(&self) {
        for (_, tx) in self.sockets.lock().unwrap().drain(..) {
            let _ = tx.send(None);
        }
    }

    fn list(&self, kind: &str) -> Vec<Value> {
        self.resources
            .lock()
            .unwrap()
            .get(kind)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

fn grain(kind: &str, data: Vec<Value>) -> Value {
    json!({"grain_type": "event", "source_id": uuid(9, 1), "flow_id": uuid(9, 2),
           "origin_timestamp": "1:0", "sync_timestamp": "1:0", "creation_timestamp": "1:0",
           "rate": {"numerator": 0, "denominator": 1}, "duration": {"numerator": 0, "denominator": 1},
           "grain": {"type": "urn:x-nmos:format:data.event", "topic": format!("/{kind}/"), "data": data}})
}

fn down() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"code": 503, "error": "starting", "debug": null})),
    )
        .into_response()
}

async fn versions(State(reg): State<Arc<Registry>>) -> Response {
    if !reg.up.load(Ordering::SeqCst) {
        return down();
    }
    axum::Json(json!(["v1.3/"])).into_response()
}

async fn collection(State(reg): State<Arc<Registry>>, Path(kind): Path<String>) -> Response {
    if !reg.up.load(Ordering::SeqCst) {
        return down();
    }
    axum::Json(Value::Array(reg.list(&kind))).into_response()
}

async fn subscribe(
    State(reg): State<Arc<Registry>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !reg.up.load(Ordering::SeqCst) {
        return down();
    }
    reg.posts.fetch_add(1, Ordering::SeqCst);
    if reg.no_subscriptions.load(Ordering::SeqCst) {
        let body = json!({"code": 501, "error": "subscriptions not implemented", "debug": null});
        return (StatusCode::NOT_IMPLEMENTED, axum::Json(body)).into_response();
    }
    let path = body["resource_path"]
        .as_str()
        .unwrap_or("")
        .trim_matches('/')
        .to_owned();
    assert_eq!(body["persist"], false);
    assert_eq!(body["params"], json!({}));
    let n = reg.next_ws.fetch_add(1, Ordering::SeqCst);
    let addr = reg.addr.lock().unwrap().clone();
    let mut response = body.clone();
    response["id"] = json!(uuid(8, n as u8));
    let scheme = if reg.tls.load(Ordering::SeqCst) {
        "wss"
    } else {
        "ws"
    };
    response["ws_href"] = json!(format!("{scheme}://{addr}/ws/{path}/{n}"));
    (StatusCode::CREATED, axum::Json(response)).into_response()
}

async fn ws(
    State(reg): State<Arc<Registry>>,
    Path((kind, _n)): Path<(String, usize)>,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade.on_upgrade(move |socket| serve_socket(reg, kind, socket))
}

async fn serve_socket(reg: Arc<Registry>, kind: String, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Initial sync: every resource with pre == post.
    let data: Vec<Value> = reg
        .list(&kind)
        .into_iter()
        .map(|v| json!({"path": v["id"], "pre": v, "post": v}))
        .collect();
    let _ = tx.send(Some(grain(&kind, data).to_string()));
    if reg.mute.load(Ordering::SeqCst) {
        if let Some(Some(text)) = rx.recv().await {
            let _ = socket.send(Message::Text(text.into())).await;
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        return;
    }
    reg.sockets.lock().unwrap().push((kind, tx));
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Some(text)) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                _ => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

async fn start_registry(up: bool) -> (String, Arc<Registry>) {
    start_registry_with(up, None).await
}

/// A registry that, with `token`, answers 401 to every request (HTTP and WebSocket handshake)
/// without `Authorization: Bearer <token>`, counting them.
/// The registry over HTTPS (and WSS) with a certificate from a fresh CA; returns the CA's PEM.
async fn start_tls_registry() -> (String, Arc<Registry>, String) {
    let reg = Arc::new(Registry::default());
    reg.up.store(true, Ordering::SeqCst);
    reg.tls.store(true, Ordering::SeqCst);
    let router = registry_router(reg.clone());
    let (ca_pem, acceptor) = tls::test_pki();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    *reg.addr.lock().unwrap() = addr.to_string();
    let listener = tls::TlsListener { tcp, acceptor };
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("https://{addr}"), reg, ca_pem)
}

fn registry_router(reg: Arc<Registry>) -> Router {
    Router::new()
        .route("/x-nmos/query/", get(versions))
        .route("/x-nmos/query/v1.3/subscriptions", post(subscribe))
        .route("/x-nmos/query/v1.3/{kind}", get(collection))
        .route("/ws/{kind}/{n}", get(ws))
        .with_state(reg)
}

async fn start_registry_with(
    up: bool,
    token: Option<(&'static str, Arc<AtomicUsize>)>,
) -> (String, Arc<Registry>) {
    let reg = Arc::new(Registry::default());
    reg.up.store(up, Ordering::SeqCst);
    let mut router = registry_router(reg.clone());
    if let Some((token, refused)) = token {
        router = router.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let refused = refused.clone();
                async move {
                    let want = format!("Bearer {token}");
                    let ok = req
                        .headers()
                        .get(axum::http::header::AUTHORIZATION)
                        .is_some_and(|v| v.as_bytes() == want.as_bytes());
                    if ok {
                        next.run(req).await
                    } else {
                        refused.fetch_add(1, Ordering::SeqCst);
                        StatusCode::UNAUTHORIZED.into_response()
                    }
                }
            },
        ));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    *reg.addr.lock().unwrap() = addr.to_string();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}"), reg)
}

fn populate(reg: &Registry, devices: u8) {
    for n in 1..=devices {
        reg.put_silently("nodes", node(n));
        reg.put_silently("devices", device(n, &format!("Camera {n}")));
        reg.put_silently("flows", flow(n));
        reg.put_silently("senders", sender(n, n, &format!("CAM {n}")));
    }
}

fn settings(url: &str) -> DiscoverySettings {
    DiscoverySettings {
        registry: RegistrySource::Url(url.to_owned()),
        http_timeout: Duration::from_secs(2),
        backoff_initial: Duration::from_millis(20),
        resubscribe_backoff_max: Duration::from_millis(200),
        max_update_rate_ms: 0,
        initial_sync_grace: Duration::from_secs(2),
        ..DiscoverySettings::default()
    }
}

/// Waits (at most [`WAIT`]) until `rx` holds a value `f` accepts (a catalogue snapshot, a
/// discovery status) and returns it.
async fn wait_for<T: Clone>(
    rx: &mut watch::Receiver<T>,
    what: &str,
    f: impl FnMut(&T) -> bool,
) -> T {
    match tokio::time::timeout(WAIT, rx.wait_for(f)).await {
        Ok(Ok(c)) => c.clone(),
        _ => panic!("timed out waiting for {what}"),
    }
}

async fn next_change(rx: &mut broadcast::Receiver<ObjectChange>) -> ObjectChange {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no object change in time")
        .expect("change channel closed")
}

fn spawn(url: &str, stop: &CancellationToken) -> DiscoveryHandle {
    Discovery::spawn(settings(url), stop.clone())
}

// ----- tests ------------------------------------------------------------------------------------

#[tokio::test]
async fn a_registry_that_wants_tokens_gets_them_on_every_call() {
    let refused = Arc::new(AtomicUsize::new(0));
    let (url, reg) = start_registry_with(true, Some(("T0K3N", refused.clone()))).await;
    populate(&reg, 1);
    let stop = CancellationToken::new();
    let tokens: Arc<dyn mos_gateway::nmos::http::TokenSource> =
        Arc::new(mos_gateway::nmos::auth::StaticToken("T0K3N".into()));
    let handle = Discovery::spawn(
        DiscoverySettings {
            tokens: Some(tokens),
            ..settings(&url)
        },
        stop.clone(),
    );
    let mut cat = handle.catalogue();
    wait_for(&mut cat, "the sender", |c| c.senders.len() == 1).await;
    // Live changes arrive too: the WebSocket handshake carried the token.
    reg.put("senders", sender(2, 1, "CAM 1 ISO"));
    wait_for(&mut cat, "sender 2", |c| c.senders.len() == 2).await;
    assert_eq!(refused.load(Ordering::SeqCst), 0);
    stop.cancel();

    // Without a token the registry refuses, and the catalogue stays empty.
    let stop = CancellationToken::new();
    let handle = Discovery::spawn(settings(&url), stop.clone());
    let mut status = handle.status();
    wait_for(&mut status, "a 401 is reported", |s| {
        s.last_error.as_deref().is_some_and(|e| e.contains("401"))
    })
    .await;
    assert!(refused.load(Ordering::SeqCst) > 0);
    assert!(handle.catalogue().borrow().senders.is_empty());
    stop.cancel();
}

/// The studio's CA certificate written to a bundle file (the directory lives as long as the
/// returned guard).
fn ca_bundle_file(pem: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("studio-ca.pem");
    std::fs::write(&bundle, pem).unwrap();
    (dir, bundle)
}

#[tokio::test]
async fn an_https_registry_is_trusted_through_the_ca_bundle_sockets_included() {
    let (url, reg, ca_pem) = start_tls_registry().await;
    populate(&reg, 1);
    let (_dir, bundle) = ca_bundle_file(&ca_pem);
    let stop = CancellationToken::new();
    let handle = Discovery::spawn(
        DiscoverySettings {
            ca_bundle: Some(bundle),
            ..settings(&url)
        },
        stop.clone(),
    );
    let mut cat = handle.catalogue();
    wait_for(&mut cat, "the sender", |c| c.senders.len() == 1).await;
    // Changes arrive over wss:// (a failed socket would only list again at each retry, and
    // the registry would count more subscription POSTs than the six types).
    reg.put("senders", sender(2, 1, "CAM 1 ISO"));
    wait_for(&mut cat, "sender 2", |c| c.senders.len() == 2).await;
    assert_eq!(reg.posts.load(Ordering::SeqCst), 6);
    stop.cancel();

    // Without the studio's CA the registry is not trusted.
    let stop = CancellationToken::new();
    let handle = Discovery::spawn(settings(&url), stop.clone());
    let mut status = handle.status();
    wait_for(&mut status, "an error is reported", |s| {
        s.last_error.is_some()
    })
    .await;
    assert!(handle.catalogue().borrow().senders.is_empty());
    stop.cancel();
}

#[tokio::test]
async fn initial_catalogue_then_live_changes() {
    let (url, reg) = start_registry(true).await;
    populate(&reg, 2);
    let stop = CancellationToken::new();
    let handle = spawn(&url, &stop);
    let mut cat = handle.catalogue();
    let c = wait_for(&mut cat, "two senders", |c| c.senders.len() == 2).await;
    // The first snapshot is complete: devices and flows came with the senders.
    assert_eq!(c.devices.len(), 2);
    assert_eq!(c.flows.len(), 2);
    assert_eq!(c.sender_device(&uuid(5, 1)).unwrap().core.label, "Camera 1");

    let mut status = handle.status();
    wait_for(&mut status, "the discovery status", |s| s.connected()).await;
    assert_eq!(
        status.borrow().registry.as_deref(),
        Some(format!("{url}/x-nmos/query/").as_str())
    );

    // Added, modified, removed over the WebSocket.
    reg.put("senders", sender(3, 1, "CAM 1 ISO"));
    wait_for(&mut cat, "sender 3", |c| {
        c.senders.contains_key(&uuid(5, 3))
    })
    .await;
    reg.put("senders", sender(3, 1, "CAM 1 ISO B"));
    wait_for(&mut cat, "sender 3 relabelled", |c| {
        c.sender(&uuid(5, 3))
            .is_some_and(|s| s.core.label == "CAM 1 ISO B")
    })
    .await;
    reg.delete("senders", &uuid(5, 3));
    wait_for(&mut cat, "sender 3 gone", |c| {
        !c.senders.contains_key(&uuid(5, 3))
    })
    .await;
    // Exactly one subscription per resource type so far.
    assert_eq!(reg.posts.load(Ordering::SeqCst), 6);
    stop.cancel();
    handle.stopped().await;
}

#[tokio::test]
async fn a_quick_reregistration_pushes_no_deleted() {
    let (url, reg) = start_registry(true).await;
    populate(&reg, 2);
    let stop = CancellationToken::new();
    let handle = spawn(&url, &stop);
    let objects = Arc::new(MemoryCatalogue::new());
    let mut changes = objects.subscribe();
    let so = SenderObjectSettings {
        debounce: Duration::from_millis(800),
        ..SenderObjectSettings::default()
    };
    spawn_sender_objects(handle.catalogue(), objects.clone(), so, stop.clone());

    let mut news = Vec::new();
    for _ in 0..2 {
        let ch = next_change(&mut changes).await;
        assert_eq!(ch.kind, ChangeKind::New);
        news.push(ch.object);
    }
    news.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(news[0].slug, "CAM 1");
    assert_eq!(news[0].group.as_deref(), Some("Camera 1"));
    assert_eq!(news[0].obj_type.as_wire(), "VIDEO");

    // Device 1 re-registers: sender, flow, device, node deleted, then added back.
    let mut cat = handle.catalogue();
    reg.delete("senders", &uuid(5, 1));
    reg.delete("flows", &uuid(4, 1));
    reg.delete("devices", &uuid(2, 1));
    reg.delete("nodes", &uuid(1, 1));
    wait_for(&mut cat, "device 1 gone", |c| {
        c.senders.len() == 1 && c.devices.len() == 1
    })
    .await;
    reg.put("nodes", node(1));
    reg.put("devices", device(1, "Camera 1"));
    reg.put("flows", flow(1));
    reg.put("senders", sender(1, 1, "CAM 1"));
    wait_for(&mut cat, "device 1 back", |c| c.senders.len() == 2).await;

    // Sender 2 goes for good: its DELETED must be the next change; a DELETED (or NEW) of
    // sender 1 would have come first, its deadline being earlier.
    reg.delete("senders", &uuid(5, 2));
    let ch = next_change(&mut changes).await;
    assert_eq!(ch.kind, ChangeKind::Deleted, "{:?}", ch.object.id);
    assert_eq!(ch.object.id, uuid(5, 2));
    assert!(objects.get(&uuid(5, 1)).is_some());
    assert!(changes.try_recv().is_err());

    // A relabel is an UPDATED.
    reg.put("devices", device(1, "Camera One"));
    let ch = next_change(&mut changes).await;
    assert_eq!(ch.kind, ChangeKind::Updated);
    assert_eq!(ch.object.group.as_deref(), Some("Camera One"));
    assert_eq!(ch.object.revision, 2);
    stop.cancel();
}

#[tokio::test]
async fn a_dropped_websocket_resubscribes_and_resyncs() {
    let (url, reg) = start_registry(true).await;
    populate(&reg, 2);
    let stop = CancellationToken::new();
    let handle = spawn(&url, &stop);
    let mut cat = handle.catalogue();
    wait_for(&mut cat, "two senders", |c| c.senders.len() == 2).await;
    let mut status = handle.status();
    wait_for(&mut status, "the discovery status", |s| s.connected()).await;

    // The registry drops every socket; what changes meanwhile is announced to nobody.
    reg.up.store(false, Ordering::SeqCst);
    reg.drop_sockets();
    wait_for(&mut status, "the discovery status", |s| !s.connected()).await;
    reg.delete_silently("senders", &uuid(5, 2));
    reg.put_silently("senders", sender(7, 1, "CAM 7"));
    reg.up.store(true, Ordering::SeqCst);

    let c = wait_for(&mut cat, "resynchronised senders", |c| {
        c.senders.len() == 2 && c.senders.contains_key(&uuid(5, 7))
    })
    .await;
    assert!(!c.senders.contains_key(&uuid(5, 2)));
    assert!(
        reg.posts.load(Ordering::SeqCst) >= 12,
        "every type subscribed again"
    );
    assert!(status.borrow().last_error.is_some());

    // And the new subscription is live.
    reg.put("senders", sender(8, 1, "CAM 8"));
    wait_for(&mut cat, "sender 8", |c| {
        c.senders.contains_key(&uuid(5, 8))
    })
    .await;
    stop.cancel();
}

#[tokio::test]
async fn a_registry_down_at_start_is_retried_until_it_answers() {
    let (url, reg) = start_registry(false).await;
    populate(&reg, 1);
    let stop = CancellationToken::new();
    let handle = spawn(&url, &stop);
    let mut status = handle.status();
    let s = wait_for(&mut status, "the discovery status", |s| {
        s.last_error.is_some()
    })
    .await;
    assert!(s.last_error.unwrap().contains("503"));
    assert!(handle.catalogue().borrow().senders.is_empty());

    reg.up.store(true, Ordering::SeqCst);
    let mut cat = handle.catalogue();
    wait_for(&mut cat, "catalogue after the registry came up", |c| {
        c.senders.len() == 1
    })
    .await;
    wait_for(&mut status, "the discovery status", |s| s.connected()).await;
    stop.cancel();
}

#[tokio::test]
async fn bad_registry_input_is_skipped() {
    let (url, reg) = start_registry(true).await;
    populate(&reg, 1);
    // A sender in the listing that is not a sender at all.
    reg.put_silently(
        "senders",
        json!({"id": uuid(5, 9), "label": 5, "flow_id": []}),
    );
    let stop = CancellationToken::new();
    let handle = spawn(&url, &stop);
    let mut cat = handle.catalogue();
    let c = wait_for(&mut cat, "the good sender", |c| c.senders.len() == 1).await;
    assert!(c.senders.contains_key(&uuid(5, 1)));

    // Garbage on the socket, then a grain with one bad and one good element.
    reg.push_raw("senders", "this is not json".to_owned());
    reg.push_raw("senders", json!({"grain": {"data": "nope"}}).to_string());
    reg.push(
        "senders",
        vec![
            json!({"path": uuid(5, 10), "post": {"id": uuid(5, 10), "transport": []}}),
            json!({"path": uuid(5, 11), "post": sender(11, 1, "CAM 11")}),
        ],
    );
    wait_for(&mut cat, "sender 11", |c| {
        c.senders.contains_key(&uuid(5, 11))
    })
    .await;
    assert!(!cat.borrow().senders.contains_key(&uuid(5, 10)));
    // Still subscribed once per type: garbage did not cost the subscription.
    assert_eq!(reg.posts.load(Ordering::SeqCst), 6);
    stop.cancel();
}

#[tokio::test]
async fn without_subscriptions_the_catalogue_is_listed_at_each_retry() {
    let (url, reg) = start_registry(true).await;
    populate(&reg, 1);
    reg.no_subscriptions.store(true, Ordering::SeqCst);
    let stop = CancellationToken::new();
    let handle = spawn(&url, &stop);
    let mut cat = handle.catalogue();
    wait_for(&mut cat, "the sender, listed", |c| c.senders.len() == 1).await;
    reg.put_silently("senders", sender(2, 1, "CAM 1 ISO"));
    wait_for(&mut cat, "the new sender, listed again", |c| {
        c.senders.len() == 2
    })
    .await;
    let status = handle.status().borrow().clone();
    assert!(!status.connected());
    assert!(status.last_error.unwrap().contains("501"));
    stop.cancel();
}

#[tokio::test]
async fn pings_keep_a_quiet_socket_alive() {
    let (url, reg) = start_registry(true).await;
    populate(&reg, 1);
    let stop = CancellationToken::new();
    let handle = Discovery::spawn(
        DiscoverySettings {
            ping_interval: Duration::from_millis(50),
            idle_timeout: Duration::from_millis(300),
            ..settings(&url)
        },
        stop.clone(),
    );
    let mut status = handle.status();
    wait_for(&mut status, "the discovery status", |s| s.connected()).await;
    // Several idle timeouts without any registry traffic: the pongs keep it alive.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(reg.posts.load(Ordering::SeqCst), 6);
    assert!(status.borrow().connected());
    stop.cancel();
}

#[tokio::test]
async fn a_silent_socket_is_dropped_and_renewed() {
    let (url, reg) = start_registry(true).await;
    populate(&reg, 1);
    reg.mute.store(true, Ordering::SeqCst);
    let stop = CancellationToken::new();
    let handle = Discovery::spawn(
        DiscoverySettings {
            ping_interval: Duration::from_millis(50),
            idle_timeout: Duration::from_millis(200),
            ..settings(&url)
        },
        stop.clone(),
    );
    let mut cat = handle.catalogue();
    wait_for(&mut cat, "the sender", |c| c.senders.len() == 1).await;
    let mut status = handle.status();
    let s = wait_for(&mut status, "a silent socket reported", |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("nothing received"))
    })
    .await;
    assert!(s.last_error.unwrap().contains("/ws/"));
    let deadline = tokio::time::Instant::now() + WAIT;
    while reg.posts.load(Ordering::SeqCst) < 12 {
        assert!(tokio::time::Instant::now() < deadline, "no resubscription");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
}

#[tokio::test]
async fn auto_mode_falls_back_to_the_configured_url() {
    // No registry is advertised by mDNS here (and multicast may not even work): the fallback
    // URL is used after the browse window.
    let (url, reg) = start_registry(true).await;
    populate(&reg, 1);
    let stop = CancellationToken::new();
    let handle = Discovery::spawn(
        DiscoverySettings {
            registry: RegistrySource::Auto {
                fallback: Some(url.clone()),
            },
            dnssd_browse: Duration::from_millis(200),
            ..settings(&url)
        },
        stop.clone(),
    );
    let mut cat = handle.catalogue();
    wait_for(&mut cat, "the sender via the fallback", |c| {
        c.senders.len() == 1
    })
    .await;
    assert_eq!(
        handle.status().borrow().registry.as_deref(),
        Some(format!("{url}/x-nmos/query/").as_str())
    );
    stop.cancel();
}

// ----- Node API polling -------------------------------------------------------------------------

struct FakeNode {
    n: u8,
    /// The newest Node API version offered (v1.3 offers v1.2 as well).
    version: &'static str,
    up: AtomicBool,
    gets: AtomicUsize,
}

async fn node_api(State(fake): State<Arc<FakeNode>>, Path(rest): Path<String>) -> Response {
    fake.gets.fetch_add(1, Ordering::SeqCst);
    if !fake.up.load(Ordering::SeqCst) {
        return down();
    }
    let n = fake.n;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        let versions = if fake.version == "v1.3" {
            json!(["v1.2/", "v1.3/"])
        } else {
            json!(["v1.2/"])
        };
        return axum::Json(versions).into_response();
    }
    // Answer only at the version the gateway should have chosen.
    let Some(path) = rest.strip_prefix(&format!("{}/", fake.version)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body = match path {
        "self" => node(n),
        "devices" => json!([device(n, &format!("Node device {n}"))]),
        "flows" => json!([flow(n)]),
        "senders" => json!([sender(n, n, &format!("N{n} sender"))]),
        "sources" | "receivers" => json!([]),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    axum::Json(body).into_response()
}

async fn node_root(state: State<Arc<FakeNode>>) -> Response {
    node_api(state, Path(String::new())).await
}

async fn start_node(n: u8, version: &'static str) -> (String, Arc<FakeNode>) {
    let (fake, router) = node_router(n, version);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}"), fake)
}

/// [`start_node`] over HTTPS with a certificate from a fresh CA; also returns the CA's PEM.
async fn start_tls_node(n: u8) -> (String, String) {
    let (_, router) = node_router(n, "v1.3");
    let (ca_pem, acceptor) = tls::test_pki();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = tls::TlsListener { tcp, acceptor };
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("https://{addr}"), ca_pem)
}

fn node_router(n: u8, version: &'static str) -> (Arc<FakeNode>, Router) {
    let fake = Arc::new(FakeNode {
        n,
        version,
        up: AtomicBool::new(true),
        gets: AtomicUsize::new(0),
    });
    let router = Router::new()
        .route("/x-nmos/node/", get(node_root))
        .route("/x-nmos/node/{*rest}", get(node_api))
        .with_state(fake.clone());
    (fake, router)
}

#[tokio::test]
async fn https_node_apis_are_trusted_through_the_ca_bundle() {
    let (url, ca_pem) = start_tls_node(3).await;
    let (_dir, bundle) = ca_bundle_file(&ca_pem);
    let stop = CancellationToken::new();
    let handle = Discovery::spawn(
        DiscoverySettings {
            registry: RegistrySource::Nodes(vec![url]),
            poll_interval: Duration::from_millis(30),
            ca_bundle: Some(bundle),
            ..DiscoverySettings::default()
        },
        stop.clone(),
    );
    let mut cat = handle.catalogue();
    let c = wait_for(&mut cat, "the node's sender", |c| c.senders.len() == 1).await;
    assert!(c.senders.contains_key(&uuid(5, 3)));
    stop.cancel();
}

#[tokio::test]
async fn node_apis_are_polled_merged_and_dropped_after_the_grace_polls() {
    let (a, _node_a) = start_node(1, "v1.3").await;
    let (b, node_b) = start_node(2, "v1.2").await;
    let stop = CancellationToken::new();
    let handle = Discovery::spawn(
        DiscoverySettings {
            registry: RegistrySource::Nodes(vec![a, format!("{b}/x-nmos/node/v1.3/")]),
            poll_interval: Duration::from_millis(30),
            http_timeout: Duration::from_secs(2),
            node_grace_polls: 2,
            ..DiscoverySettings::default()
        },
        stop.clone(),
    );
    let mut cat = handle.catalogue();
    let c = wait_for(&mut cat, "both nodes", |c| c.senders.len() == 2).await;
    assert_eq!(c.nodes.len(), 2);
    assert_eq!(
        c.sender_device(&uuid(5, 2)).unwrap().core.label,
        "Node device 2"
    );

    node_b.up.store(false, Ordering::SeqCst);
    let before = node_b.gets.load(Ordering::SeqCst);
    let c = wait_for(&mut cat, "node 2 dropped", |c| c.senders.len() == 1).await;
    assert!(c.senders.contains_key(&uuid(5, 1)));
    // At least two failed polls happened before the drop.
    assert!(node_b.gets.load(Ordering::SeqCst) >= before + 2);

    node_b.up.store(true, Ordering::SeqCst);
    wait_for(&mut cat, "node 2 back", |c| c.senders.len() == 2).await;
    stop.cancel();
}

// ----- against the virtual studio (wip-studio) --------------------------------------------------

mod studio {
    use super::*;
    use mos_gateway::nmos::schemas::SchemaSet;
    use mos_gateway::nmos::studio::{Fault, FaultTarget, StudioHandle, StudioSpec, VirtualStudio};
    use mos_gateway::objects::MemoryCatalogue;

    async fn example() -> StudioHandle {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/virtual-studio.toml");
        let spec = StudioSpec::load(&path).expect("studio spec");
        let schemas = Arc::new(SchemaSet::load_default().expect("schemas"));
        VirtualStudio::start(spec, "127.0.0.1:0".parse().unwrap(), schemas)
            .await
            .expect("studio starts")
    }

    fn sender_count(studio: &StudioHandle) -> usize {
        studio.spec().devices.iter().map(|d| d.senders.len()).sum()
    }

    struct Gateway {
        handle: DiscoveryHandle,
        objects: Arc<MemoryCatalogue>,
        changes: broadcast::Receiver<ObjectChange>,
        stop: CancellationToken,
    }

    fn gateway(studio: &StudioHandle, debounce: Duration) -> Gateway {
        let stop = CancellationToken::new();
        let handle = spawn(&studio.query_url(), &stop);
        let objects = Arc::new(MemoryCatalogue::new());
        let changes = objects.subscribe();
        let so = SenderObjectSettings {
            debounce,
            ..SenderObjectSettings::default()
        };
        spawn_sender_objects(handle.catalogue(), objects.clone(), so, stop.clone());
        Gateway {
            handle,
            objects,
            changes,
            stop,
        }
    }

    async fn initial_news(gw: &mut Gateway, n: usize) -> Vec<ObjectChange> {
        let mut out = Vec::new();
        for _ in 0..n {
            let ch = next_change(&mut gw.changes).await;
            assert_eq!(ch.kind, ChangeKind::New, "{:?}", ch.object.slug);
            out.push(ch);
        }
        out
    }

    #[tokio::test]
    async fn the_studio_senders_become_mos_objects() {
        let studio = example().await;
        let mut gw = gateway(&studio, Duration::from_millis(300));
        let news = initial_news(&mut gw, sender_count(&studio)).await;
        let by_slug = |slug: &str| {
            news.iter()
                .find(|c| c.object.slug == slug)
                .map(|c| c.object.clone())
                .unwrap_or_else(|| panic!("no object {slug}"))
        };
        let v = by_slug("PLAYOUT1-V");
        assert_eq!(v.id, studio.sender_id("PLAYOUT1-V").unwrap().to_string());
        assert_eq!(v.obj_type.as_wire(), "VIDEO");
        assert_eq!(v.group.as_deref(), Some("PLAYOUT1"));
        assert_eq!(by_slug("PLAYOUT1-A").obj_type.as_wire(), "AUDIO");
        assert_eq!(by_slug("PLAYOUT1-ANC").obj_type.as_wire(), "OTHER");
        assert_eq!(by_slug("CAM1-V").group.as_deref(), Some("CAM1"));
        let payload = v.metadata[0].payload.as_str().to_owned();
        assert!(
            payload.contains("<format>urn:x-nmos:format:video</format>"),
            "{payload}"
        );
        assert_eq!(gw.objects.len(), sender_count(&studio));

        // Every type has exactly one subscription, opened by POST without a trailing slash.
        let posts = studio
            .requests()
            .into_iter()
            .filter(|r| r.is("POST", "/x-nmos/query/v1.3/subscriptions"))
            .count();
        assert_eq!(posts, 6);
        gw.stop.cancel();
        studio.shutdown().await;
    }

    #[tokio::test]
    async fn devices_removed_restored_and_reregistered() {
        let studio = example().await;
        let mut gw = gateway(&studio, Duration::from_millis(800));
        initial_news(&mut gw, sender_count(&studio)).await;
        let mut cat = gw.handle.catalogue();
        let cam1 = studio.sender_id("CAM1-V").unwrap().to_string();
        let cam2 = studio.sender_id("CAM2-V").unwrap().to_string();
        let cam3 = studio.sender_id("CAM3-V").unwrap().to_string();

        // CAM1 restarts: removals then additions, same ids, new versions.
        let version_before = cat.borrow().sender(&cam1).unwrap().core.version.clone();
        assert!(studio.reregister_device(studio.device_id("CAM1").unwrap()));
        wait_for(&mut cat, "CAM1 re-registered", |c| {
            c.sender(&cam1)
                .is_some_and(|s| s.core.version != version_before)
                && c.devices
                    .contains_key(&studio.device_id("CAM1").unwrap().to_string())
        })
        .await;

        // CAM2 goes away for good: its DELETED is the next change (nothing for CAM1).
        assert!(studio.remove_device(studio.device_id("CAM2").unwrap()));
        let ch = next_change(&mut gw.changes).await;
        assert_eq!(
            (ch.kind, ch.object.id.as_str()),
            (ChangeKind::Deleted, cam2.as_str())
        );

        // And comes back: NEW.
        assert!(studio.restore_device(studio.device_id("CAM2").unwrap()));
        let ch = next_change(&mut gw.changes).await;
        assert_eq!(
            (ch.kind, ch.object.id.as_str()),
            (ChangeKind::New, cam2.as_str())
        );

        // CAM3 removed and restored within the debounce window: nothing is pushed; the
        // removal of CAM2 afterwards is the next change.
        assert!(studio.remove_device(studio.device_id("CAM3").unwrap()));
        wait_for(&mut cat, "CAM3 gone", |c| !c.senders.contains_key(&cam3)).await;
        assert!(studio.restore_device(studio.device_id("CAM3").unwrap()));
        wait_for(&mut cat, "CAM3 back", |c| c.senders.contains_key(&cam3)).await;
        assert!(studio.remove_device(studio.device_id("CAM2").unwrap()));
        let ch = next_change(&mut gw.changes).await;
        assert_eq!(
            (ch.kind, ch.object.id.as_str()),
            (ChangeKind::Deleted, cam2.as_str())
        );
        assert!(gw.objects.get(&cam1).is_some() && gw.objects.get(&cam3).is_some());
        gw.stop.cancel();
        studio.shutdown().await;
    }

    #[tokio::test]
    async fn dropped_websockets_resubscribe_and_resync() {
        let studio = example().await;
        let gw = gateway(&studio, Duration::from_millis(300));
        let mut status = gw.handle.status();
        wait_for(&mut status, "the discovery status", |s| s.connected()).await;
        assert!(studio.wait_for_websockets(|n| n == 6, WAIT).await);

        // The registry refuses new subscriptions for a while and drops every socket; a device
        // disappears while nobody is subscribed.
        studio.set_fault(FaultTarget::query(), Fault::sticky(503));
        studio.drop_websockets();
        assert!(studio.wait_for_websockets(|n| n == 0, WAIT).await);
        let cam2 = studio.sender_id("CAM2-V").unwrap().to_string();
        assert!(gw.handle.catalogue().borrow().senders.contains_key(&cam2));
        assert!(studio.remove_device(studio.device_id("CAM2").unwrap()));
        wait_for(&mut status, "a 503 reported", |s| {
            s.last_error.as_deref().is_some_and(|e| e.contains("503"))
        })
        .await;

        studio.clear_faults();
        let mut cat = gw.handle.catalogue();
        wait_for(&mut cat, "CAM2 gone after the resync", |c| {
            !c.senders.contains_key(&cam2)
        })
        .await;
        wait_for(&mut status, "the discovery status", |s| s.connected()).await;
        assert!(studio.wait_for_websockets(|n| n == 6, WAIT).await);

        // Live again: a restore arrives over the new sockets.
        assert!(studio.restore_device(studio.device_id("CAM2").unwrap()));
        wait_for(&mut cat, "CAM2 back", |c| c.senders.contains_key(&cam2)).await;
        gw.stop.cancel();
        studio.shutdown().await;
    }

    #[tokio::test]
    async fn a_studio_registry_down_at_start_is_caught_up() {
        let studio = example().await;
        studio.set_fault(FaultTarget::query(), Fault::sticky(503));
        let mut gw = gateway(&studio, Duration::from_millis(300));
        let mut status = gw.handle.status();
        wait_for(&mut status, "the discovery status", |s| {
            s.last_error.is_some()
        })
        .await;
        assert!(gw.objects.is_empty());
        studio.clear_faults();
        initial_news(&mut gw, sender_count(&studio)).await;
        gw.stop.cancel();
        studio.shutdown().await;
    }
}
