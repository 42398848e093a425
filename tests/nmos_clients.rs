//! The NMOS HTTP clients (IS-05, IS-08, IS-10 tokens, TLS) against scripted servers on
//! loopback: each server records every request (method, path, headers, body) and answers
//! what the test scripts.

#[path = "common/tls.rs"]
mod tls;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use mos_gateway::nmos::auth::{AuthSettings, ClientSecret, StaticToken, TokenManager};
use mos_gateway::nmos::http::{HttpError, HttpSettings, HttpSetupError, NmosHttp};
use mos_gateway::nmos::is05::{
    Activation, ConnectionClient, Is05Error, Is05Settings, On423, TransportFile,
};
use mos_gateway::nmos::is08::{ChannelMappingClient, Is08Error, Is08Settings};
use mos_gateway::nmos::is08_check::MapEntry;
use mos_gateway::nmos::plan::{AudioMap, Connection};
use mos_gateway::nmos::schemas::SchemaSet;
use mos_gateway::nmos::tai::TaiTime;
use serde_json::{Value, json};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------------
// Scripted server
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: HeaderMap,
    body: String,
}

impl Req {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
    fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

struct Reply {
    status: u16,
    body: String,
    content_type: &'static str,
    delay: Option<Duration>,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        body: body.to_string(),
        content_type: "application/json",
        delay: None,
    }
}

fn nmos_error(status: u16, error: &str) -> Reply {
    reply(
        status,
        json!({"code": status, "error": error, "debug": "scripted"}),
    )
}

type Script = dyn Fn(&Req) -> Reply + Send + Sync;

struct ServerState {
    log: Mutex<Vec<Req>>,
    script: Box<Script>,
}

struct Server {
    base: String,
    state: Arc<ServerState>,
}

impl Server {
    fn requests(&self) -> Vec<Req> {
        self.state.log.lock().unwrap().clone()
    }
    fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.is(method, path))
            .count()
    }
    fn find(&self, method: &str, path: &str) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(|r| r.is(method, path))
            .collect()
    }
}

async fn handle(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let req = Req {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let reply = (state.script)(&req);
    state.log.lock().unwrap().push(req);
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    (
        axum::http::StatusCode::from_u16(reply.status).unwrap(),
        [("content-type", reply.content_type)],
        reply.body,
    )
        .into_response()
}

fn router(script: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> (Router, Arc<ServerState>) {
    let state = Arc::new(ServerState {
        log: Mutex::new(Vec::new()),
        script: Box::new(script),
    });
    (
        Router::new().fallback(handle).with_state(state.clone()),
        state,
    )
}

async fn serve(script: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Server {
    let (app, state) = router(script);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        base: format!("http://{addr}"),
        state,
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const S1: &str = "5709255c-c0ae-4e1e-99a0-e872e83e48e0";
const S_OLD: &str = "1b1f3f9c-8a1e-4c1a-9f0e-0d2a4f5b6c70";
const R1: &str = "a7bd7bd0-7a33-4c5e-9d5f-3b6c1a2e4f01";
const R2: &str = "b8ce8ce1-8b44-4d6f-8e60-4c7d2b3f5a02";
const R3: &str = "c9df9df2-9c55-4e70-9f71-5d8e3c4a6b03";
const SDP: &str =
    "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=cam\r\nt=0 0\r\nm=video 5004 RTP/AVP 96\r\n";

fn schemas() -> Arc<SchemaSet> {
    Arc::new(SchemaSet::load_default().expect("official schemas in shared/nmos-schemas"))
}

fn http_settings() -> HttpSettings {
    HttpSettings {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        allow_http: true,
        ca_bundle: None,
        retries: 2,
        retry_backoff: Duration::from_millis(5),
    }
}

fn http() -> NmosHttp {
    NmosHttp::new(http_settings()).unwrap()
}

fn is05(settings: Is05Settings) -> ConnectionClient {
    ConnectionClient::new(http(), schemas(), settings)
}

fn conn(api_base: &str, receiver: &str, sender: Option<&str>) -> Connection {
    Connection {
        receiver_id: receiver.to_owned(),
        receiver_label: format!("rx {receiver}"),
        device_id: "d0000000-0000-4000-8000-000000000001".to_owned(),
        connection_api: format!("{api_base}/x-nmos/connection/v1.1/"),
        authorization: false,
        sender_id: sender.map(str::to_owned),
        sender_manifest_href: None,
        sender_version: None,
        sender_connection_api: Some(format!("{api_base}/x-nmos/connection/v1.1/")),
        sender_authorization: false,
        transport: "urn:x-nmos:transport:rtp.mcast".to_owned(),
        receiver_legs: 1,
    }
}

const API: &str = "/x-nmos/connection/v1.1";

fn staged_path(receiver: &str) -> String {
    format!("{API}/single/receivers/{receiver}/staged")
}

fn active_path(receiver: &str) -> String {
    format!("{API}/single/receivers/{receiver}/active")
}

/// A full receiver staged/active body, as devices answer.
fn receiver_body(sender: Option<&str>, enabled: bool) -> Value {
    json!({
        "sender_id": sender,
        "master_enable": enabled,
        "activation": {"mode": null, "requested_time": null, "activation_time": null},
        "transport_file": {"data": if sender.is_some() { Some("v=0\r\n") } else { None }, "type": if sender.is_some() { Some("application/sdp") } else { None }},
        "transport_params": [{"rtp_enabled": true}]
    })
}

/// The SDP the scripted devices serve for `sender`.
fn sdp_for(sender: &str) -> String {
    format!("v=0\r\ns={sender}\r\nm=video 5004 RTP/AVP 96\r\n")
}

/// The transport file JSON a take restates for `sender` (single leg, RTP).
fn staged_file(sender: &str) -> Value {
    json!({"data": sdp_for(sender), "type": "application/sdp"})
}

/// A device whose staged PATCH answers 200 (immediate) or 202 (scheduled), with `single/`
/// only or `bulk/` too; GET staged/active answer `receiver_body(S_OLD)`; GET a sender's
/// transport file answers [`sdp_for`].
fn device_script(bulk: bool) -> impl Fn(&Req) -> Reply + Send + Sync + 'static {
    move |req: &Req| {
        let senders = format!("{API}/single/senders/");
        if req.method == "GET"
            && let Some(sender) = req
                .path
                .strip_prefix(&senders)
                .and_then(|rest| rest.strip_suffix("/transportfile"))
        {
            return Reply {
                status: 200,
                body: sdp_for(sender),
                content_type: "application/sdp",
                delay: None,
            };
        }
        if req.method == "GET" && req.path.trim_end_matches('/') == API {
            return if bulk {
                reply(200, json!(["bulk/", "single/"]))
            } else {
                reply(200, json!(["single/"]))
            };
        }
        if req.method == "PATCH" && req.path.ends_with("/staged") {
            let body = req.json();
            let mode = body.pointer("/activation/mode").and_then(Value::as_str);
            let mut answer = receiver_body(body["sender_id"].as_str(), true);
            return match mode {
                Some("activate_scheduled_absolute") => {
                    answer["activation"] = json!({"mode": "activate_scheduled_absolute", "requested_time": body["activation"]["requested_time"], "activation_time": body["activation"]["requested_time"]});
                    reply(202, answer)
                }
                Some("activate_immediate") => {
                    answer["activation"] = json!({"mode": "activate_immediate", "requested_time": null, "activation_time": "1700000037:5"});
                    reply(200, answer)
                }
                _ => reply(200, answer),
            };
        }
        if req.method == "POST" && req.path == format!("{API}/bulk/receivers") {
            let items: Vec<Value> = req
                .json()
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|i| {
                    let scheduled = i.pointer("/params/activation/mode")
                        == Some(&json!("activate_scheduled_absolute"));
                    json!({"id": i["id"], "code": if scheduled { 202 } else { 200 }})
                })
                .collect();
            return reply(200, Value::Array(items));
        }
        if req.method == "GET" && (req.path.ends_with("/staged") || req.path.ends_with("/active")) {
            return reply(200, receiver_body(Some(S_OLD), true));
        }
        nmos_error(404, "not scripted")
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP client: scheme policy, retries, timeouts, errors, TLS, bearer tokens
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn http_url_refused_when_allow_http_is_false() {
    let server = serve(|_| reply(200, json!([]))).await;
    let client = NmosHttp::new(HttpSettings {
        allow_http: false,
        ..http_settings()
    })
    .unwrap();
    let url = format!("{}{API}/", server.base);
    let err = client.get_json::<Value>(&url, false).await.unwrap_err();
    assert!(matches!(err, HttpError::Refused { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("GET") && text.contains(&url) && text.contains("allow_http"));
    assert!(server.requests().is_empty(), "nothing may be sent");
}

#[tokio::test]
async fn get_and_delete_are_retried_patch_and_post_never() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    // Every path: the first request answers 503, the next ones 200.
    let per_path: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let server = serve(move |req| {
        seen.fetch_add(1, Ordering::SeqCst);
        let mut paths = per_path.lock().unwrap();
        let n = paths
            .entry(format!("{} {}", req.method, req.path))
            .or_default();
        *n += 1;
        if *n == 1 {
            nmos_error(503, "busy")
        } else {
            reply(200, json!({}))
        }
    })
    .await;
    let client = http();
    let url = format!("{}/thing", server.base);
    client.get_json::<Value>(&url, false).await.unwrap();
    assert_eq!(server.count("GET", "/thing"), 2);
    assert_eq!(client.delete(&url, false).await.unwrap().status, 200);
    assert_eq!(server.count("DELETE", "/thing"), 2);
    let patch = client.patch_json(&url, "{}".into(), false).await.unwrap();
    assert_eq!(patch.status, 503);
    assert_eq!(server.count("PATCH", "/thing"), 1);
    let post = client.post_json(&url, "{}".into(), false).await.unwrap();
    assert_eq!(post.status, 503);
    assert_eq!(server.count("POST", "/thing"), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn requests_ask_for_keep_alive_and_get_has_no_body() {
    let server = serve(|_| reply(200, json!({}))).await;
    let client = http();
    client
        .get_json::<Value>(&format!("{}/a", server.base), false)
        .await
        .unwrap();
    let req = &server.requests()[0];
    assert_eq!(req.header("connection").as_deref(), Some("keep-alive"));
    assert!(req.header("content-type").is_none());
    assert!(req.body.is_empty());
    assert!(req.header("authorization").is_none());
}

#[tokio::test]
async fn timeout_is_an_error_naming_the_url() {
    let server = serve(|_| Reply {
        delay: Some(Duration::from_secs(10)),
        ..reply(200, json!({}))
    })
    .await;
    let client = NmosHttp::new(HttpSettings {
        timeout: Duration::from_millis(150),
        retries: 0,
        ..http_settings()
    })
    .unwrap();
    let url = format!("{}/slow", server.base);
    let err = client
        .patch_json(&url, "{}".into(), false)
        .await
        .unwrap_err();
    match &err {
        HttpError::Timeout {
            url: u, timeout, ..
        } => {
            assert_eq!(u, &url);
            assert_eq!(*timeout, Duration::from_millis(150));
        }
        other => panic!("expected a timeout, got {other}"),
    }
    assert!(err.to_string().starts_with("PATCH "));
}

#[tokio::test]
async fn error_body_is_parsed_into_the_message() {
    let server = serve(|_| nmos_error(400, "transport_params has 2 legs, 1 given")).await;
    let url = format!("{}/x", server.base);
    let reply = http().patch_json(&url, "{}".into(), false).await.unwrap();
    let err = mos_gateway::nmos::http::checked(reqwest::Method::PATCH, &url, reply).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("PATCH"), "{text}");
    assert!(text.contains(&url), "{text}");
    assert!(text.contains("HTTP 400"), "{text}");
    assert!(text.contains("transport_params has 2 legs"), "{text}");
    assert!(text.contains("debug: scripted"), "{text}");
    assert_eq!(err.status(), Some(400));
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and an HTTPS scripted server.
struct Tls {
    ca_pem: String,
    base: String,
    state: Arc<ServerState>,
}

async fn tls_server() -> Tls {
    let (ca_pem, acceptor) = tls::test_pki();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let (app, state) = router(|_| reply(200, json!(["single/"])));
    let listener = tls::TlsListener { tcp, acceptor };
    tokio::spawn(async move { axum::serve(listener, app).await });
    Tls {
        ca_pem,
        base: format!("https://{addr}"),
        state,
    }
}

#[tokio::test]
async fn https_verified_against_the_ca_bundle() {
    let tls = tls_server().await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, &tls.ca_pem).unwrap();
    let url = format!("{}{API}/", tls.base);

    let trusted = NmosHttp::new(HttpSettings {
        allow_http: false,
        ca_bundle: Some(bundle),
        ..http_settings()
    })
    .unwrap();
    let listing: Vec<String> = trusted.get_json(&url, false).await.unwrap();
    assert_eq!(listing, vec!["single/".to_owned()]);
    assert_eq!(tls.state.log.lock().unwrap().len(), 1);

    // Without the studio CA the handshake fails: no request reaches the server.
    let untrusting = NmosHttp::new(HttpSettings {
        allow_http: false,
        retries: 0,
        ..http_settings()
    })
    .unwrap();
    let err = untrusting.get_json::<Value>(&url, false).await.unwrap_err();
    assert!(matches!(err, HttpError::Transport { .. }), "{err}");
    assert_eq!(tls.state.log.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn ca_bundle_missing_or_without_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let err = NmosHttp::new(HttpSettings {
        ca_bundle: Some(missing),
        ..http_settings()
    })
    .unwrap_err();
    assert!(matches!(err, HttpSetupError::CaBundleRead { .. }), "{err}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let err = NmosHttp::new(HttpSettings {
        ca_bundle: Some(empty.clone()),
        ..http_settings()
    })
    .unwrap_err();
    assert!(matches!(err, HttpSetupError::CaBundleEmpty { .. }), "{err}");
    assert!(err.to_string().contains("empty.pem"));
}

#[tokio::test]
async fn bearer_token_only_where_the_control_requires_it() {
    let server = serve(device_script(false)).await;
    let client = ConnectionClient::new(
        http().with_tokens(Arc::new(StaticToken(Arc::from("tok-abc")))),
        schemas(),
        Is05Settings::default(),
    );
    let open = conn(&server.base, R1, Some(S1));
    let mut protected = conn(&server.base, R2, Some(S1));
    protected.authorization = true;
    client.stage(&open, None).await.unwrap();
    client.stage(&protected, None).await.unwrap();
    let r1 = &server.find("PATCH", &staged_path(R1))[0];
    let r2 = &server.find("PATCH", &staged_path(R2))[0];
    assert_eq!(r1.header("authorization"), None);
    assert_eq!(
        r2.header("authorization").as_deref(),
        Some("Bearer tok-abc")
    );

    // The transport file goes with a token when the sender's control requires one, not
    // the receiver's.
    let manifest = format!("{API}/single/senders/{S1}/transportfile");
    // (This script has no transport file: the requests are what counts.)
    let mut c = open.clone();
    c.sender_authorization = true;
    let _ = client.transport_file(&c).await;
    let mut c = protected.clone();
    c.sender_authorization = false;
    let _ = client.transport_file(&c).await;
    let fetched = server.find("GET", &manifest);
    assert_eq!(fetched.len(), 2);
    assert_eq!(
        fetched[0].header("authorization").as_deref(),
        Some("Bearer tok-abc")
    );
    assert_eq!(fetched[1].header("authorization"), None);

    // A protected control without any token source: refused before sending.
    let no_tokens = is05(Is05Settings::default());
    let mut other = conn(&server.base, R3, Some(S1));
    other.authorization = true;
    let err = no_tokens.stage(&other, None).await.unwrap_err();
    assert!(err.to_string().contains("authorization"), "{err}");
    assert_eq!(server.count("PATCH", &staged_path(R3)), 0);
}

// ---------------------------------------------------------------------------------------------
// IS-10 tokens
// ---------------------------------------------------------------------------------------------

const SECRET: &str = "s3cret-value";

fn auth_settings(base: &str) -> AuthSettings {
    let mut s = AuthSettings::new(
        &format!("{base}/token"),
        "gateway",
        ClientSecret::new(SECRET),
        "connection channelmapping",
    );
    s.retry_min = Duration::from_millis(10);
    s.retry_max = Duration::from_millis(50);
    s
}

#[tokio::test]
async fn token_is_requested_with_client_credentials_and_refreshed_before_expiry() {
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    let server = serve(move |_| {
        let i = count.fetch_add(1, Ordering::SeqCst) + 1;
        reply(
            200,
            json!({"access_token": format!("tok-{i}"), "token_type": "bearer", "expires_in": 1}),
        )
    })
    .await;
    let settings = auth_settings(&server.base);
    let manager = TokenManager::spawn(http(), settings.clone());
    manager
        .wait_fetched(1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(manager.current().as_deref(), Some("tok-1"));
    // expires_in 1 s: a new token comes before expiry, without anyone asking.
    manager
        .wait_fetched(2, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(manager.current().as_deref(), Some("tok-2"));

    let req = &server.find("POST", "/token")[0];
    assert_eq!(
        req.header("content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        req.body,
        "grant_type=client_credentials&scope=connection+channelmapping"
    );
    assert_eq!(
        req.header("authorization").as_deref(),
        Some("Basic Z2F0ZXdheTpzM2NyZXQtdmFsdWU=")
    );
    assert!(!req.body.contains(SECRET));

    // The secret never shows in Debug or Display.
    for text in [
        format!("{settings:?}"),
        format!("{:?}", settings.secret),
        format!("{}", settings.secret),
        format!("{manager:?}"),
    ] {
        assert!(!text.contains(SECRET), "{text}");
    }
}

#[tokio::test]
async fn token_failure_is_retried_and_a_401_renews_early() {
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    let tokens = serve(move |_| {
        let i = count.fetch_add(1, Ordering::SeqCst) + 1;
        if i == 1 {
            reply(400, json!({"error": "temporarily_unavailable"}))
        } else {
            reply(
                200,
                json!({"access_token": format!("tok-{i}"), "token_type": "Bearer", "expires_in": 3600}),
            )
        }
    })
    .await;
    let manager = TokenManager::spawn(http(), auth_settings(&tokens.base));
    manager
        .wait_fetched(1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(manager.current().as_deref(), Some("tok-2"));

    // A device answering 401 wakes the refresher (the request itself is not repeated).
    let device = serve(|_| nmos_error(401, "token revoked")).await;
    let client = http().with_tokens(manager.source());
    let url = format!(
        "{}/x-nmos/connection/v1.1/single/receivers/{R1}/staged",
        device.base
    );
    let reply = client.patch_json(&url, "{}".into(), true).await.unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(device.count("PATCH", &staged_path(R1)), 1);
    manager
        .wait_fetched(2, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(manager.current().as_deref(), Some("tok-3"));
}

#[test]
fn secret_from_file_is_trimmed_and_missing_env_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "abc-123\n").unwrap();
    let secret = ClientSecret::from_file(&file).unwrap();
    assert_eq!(format!("{secret:?}"), "ClientSecret(<redacted>)");
    assert!(ClientSecret::from_env("MOS_GATEWAY_TEST_NO_SUCH_SECRET_VAR").is_err());
    let settings = AuthSettings::new("https://auth/token", "id", secret, "connection");
    // Lifetime 60 s: 60 % is 36 s, which leaves 24 s (≥ 15 s margin).
    assert_eq!(
        settings.refresh_delay(Duration::from_secs(60)),
        Duration::from_secs(36)
    );
    // Lifetime 30 s: the 15 s margin wins over 60 % (18 s).
    assert_eq!(
        settings.refresh_delay(Duration::from_secs(30)),
        Duration::from_secs(15)
    );
}

// ---------------------------------------------------------------------------------------------
// IS-05
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn transport_file_from_manifest_else_connection_api_none_for_websocket() {
    let server = serve(|req| {
        if req.path == "/manifest.sdp"
            || req.path == format!("{API}/single/senders/{S1}/transportfile")
        {
            Reply {
                status: 200,
                body: SDP.to_owned(),
                content_type: "application/sdp; charset=utf-8",
                delay: None,
            }
        } else {
            nmos_error(404, "no")
        }
    })
    .await;
    let client = is05(Is05Settings::default());
    let mut c = conn(&server.base, R1, Some(S1));
    c.sender_manifest_href = Some(format!("{}/manifest.sdp", server.base));
    let tf = client.transport_file(&c).await.unwrap().unwrap();
    assert_eq!(
        tf,
        TransportFile {
            data: SDP.to_owned(),
            media_type: "application/sdp".to_owned()
        }
    );
    assert_eq!(server.count("GET", "/manifest.sdp"), 1);

    c.sender_manifest_href = None;
    let tf = client.transport_file(&c).await.unwrap().unwrap();
    assert_eq!(tf.data, SDP);
    assert_eq!(
        server.count("GET", &format!("{API}/single/senders/{S1}/transportfile")),
        1
    );

    c.transport = "urn:x-nmos:transport:websocket".to_owned();
    assert_eq!(client.transport_file(&c).await.unwrap(), None);
    let disconnect = conn(&server.base, R1, None);
    assert_eq!(client.transport_file(&disconnect).await.unwrap(), None);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn stage_sends_sender_enable_and_transport_file_without_activation() {
    let server = serve(device_script(false)).await;
    let client = is05(Is05Settings::default());
    let c = conn(&server.base, R1, Some(S1));
    let tf = TransportFile {
        data: SDP.to_owned(),
        media_type: "application/sdp".to_owned(),
    };
    let staged = client.stage(&c, Some(&tf)).await.unwrap();
    assert_eq!(staged["sender_id"], json!(S1));
    let req = &server.find("PATCH", &staged_path(R1))[0];
    let body = req.json();
    assert_eq!(
        body,
        json!({
            "sender_id": S1,
            "master_enable": true,
            "transport_file": {"data": SDP, "type": "application/sdp"},
            "transport_params": [{"rtp_enabled": true}]
        })
    );
    assert!(body.get("activation").is_none());
    schemas().validate_is05_staged_patch(&body).unwrap();

    // A SMPTE 2022-7 receiver (two legs) fed by a single-leg sender: the second leg is off;
    // by a two-leg sender: both on.
    let mut dual = conn(&server.base, R1, Some(S1));
    dual.receiver_legs = 2;
    client.stage(&dual, Some(&tf)).await.unwrap();
    let two_leg_sdp = format!("{SDP}m=video 5006 RTP/AVP 96\r\n");
    let tf2 = TransportFile {
        data: two_leg_sdp,
        media_type: "application/sdp".to_owned(),
    };
    client.stage(&dual, Some(&tf2)).await.unwrap();
    let patches = server.find("PATCH", &staged_path(R1));
    assert_eq!(
        patches[1].json()["transport_params"],
        json!([{"rtp_enabled": true}, {"rtp_enabled": false}])
    );
    assert_eq!(
        patches[2].json()["transport_params"],
        json!([{"rtp_enabled": true}, {"rtp_enabled": true}])
    );
    assert_eq!(
        req.header("content-type").as_deref(),
        Some("application/json")
    );
    schemas().validate_is05_staged_patch(&body).unwrap();
}

#[tokio::test]
async fn take_restates_all_it_stages_single_patch_per_receiver_without_bulk() {
    let server = serve(device_script(false)).await;
    let client = is05(Is05Settings::default());
    let conns = [
        conn(&server.base, R1, Some(S1)),
        conn(&server.base, R2, Some(S1)),
    ];
    let files = client.transport_files(&conns).await.unwrap();
    // One transport file per sender, however many receivers it feeds.
    assert_eq!(
        server.count("GET", &format!("{API}/single/senders/{S1}/transportfile")),
        1
    );
    let prepared = client
        .prepare_take(&conns, &files, Activation::Immediate)
        .await;
    assert_eq!(prepared.bulk_requests(), 0);
    assert_eq!(server.count("GET", &format!("{API}/")), 1);
    let results = client.execute(&prepared).await;
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].0, R1);
    assert_eq!(results[1].0, R2);
    for (receiver, result) in &results {
        let activated = result.as_ref().unwrap();
        assert!(!activated.scheduled);
        assert_eq!(activated.activation_time, TaiTime::new(1_700_000_037, 5));
        let req = &server.find("PATCH", &staged_path(receiver))[0];
        let body = req.json();
        // Everything READY stages, restated: /staged may hold another item's stream by now.
        assert_eq!(
            body,
            json!({"sender_id": S1, "master_enable": true,
                   "transport_file": staged_file(S1),
                   "transport_params": [{"rtp_enabled": true}],
                   "activation": {"mode": "activate_immediate", "requested_time": null}})
        );
        schemas().validate_is05_staged_patch(&body).unwrap();
    }
    assert_eq!(server.count("POST", &format!("{API}/bulk/receivers")), 0);
    // The bulk check is cached per API.
    client.activate(&conns, Activation::Immediate).await;
    assert_eq!(server.count("GET", &format!("{API}/")), 1);
}

#[tokio::test]
async fn take_uses_bulk_when_offered_with_a_scheduled_absolute_time() {
    let with_bulk = serve(device_script(true)).await;
    let single_only = serve(device_script(false)).await;
    let client = is05(Is05Settings::default());
    let at = TaiTime::new(1_800_000_000, 500).unwrap();
    let conns = [
        conn(&with_bulk.base, R1, Some(S1)),
        conn(&single_only.base, R3, None),
        conn(&with_bulk.base, R2, Some(S1)),
    ];
    let results = client
        .activate(&conns, Activation::ScheduledAbsolute(at))
        .await;
    let ids: Vec<&str> = results.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, [R1, R3, R2]);
    for (_, r) in &results {
        assert!(r.as_ref().unwrap().scheduled);
    }
    let bulk = with_bulk.find("POST", &format!("{API}/bulk/receivers"));
    assert_eq!(bulk.len(), 1);
    let body = bulk[0].json();
    schemas()
        .validate_is05_bulk_receivers(&body)
        .unwrap()
        .unwrap();
    let activation =
        json!({"mode": "activate_scheduled_absolute", "requested_time": "1800000000:500"});
    let params = json!({"sender_id": S1, "master_enable": true,
                        "transport_file": staged_file(S1),
                        "transport_params": [{"rtp_enabled": true}],
                        "activation": activation});
    assert_eq!(
        body,
        json!([{"id": R1, "params": params}, {"id": R2, "params": params}])
    );
    assert_eq!(with_bulk.count("PATCH", &staged_path(R1)), 0);
    // The lone receiver on the other device: a single PATCH (a disconnect restated).
    let single = &single_only.find("PATCH", &staged_path(R3))[0];
    assert_eq!(
        single.json(),
        json!({"sender_id": null, "master_enable": false,
               "transport_file": {"data": null, "type": null},
               "activation": activation})
    );
}

#[tokio::test]
async fn bulk_item_failure_is_reported_with_state_and_the_rest_rolled_back() {
    let server = serve(|req| {
        if req.is("POST", &format!("{API}/bulk/receivers")) {
            return reply(
                200,
                json!([{"id": R1, "code": 200}, {"id": R2, "code": 400, "error": "sender_id unknown", "debug": null}]),
            );
        }
        device_script(true)(req)
    })
    .await;
    let client = is05(Is05Settings {
        take_all_or_nothing: true,
        ..Is05Settings::default()
    });
    let conns = [
        conn(&server.base, R1, Some(S1)),
        conn(&server.base, R2, Some(S1)),
    ];
    let files = client.transport_files(&conns).await.unwrap();
    let prepared = client
        .prepare_take(&conns, &files, Activation::Immediate)
        .await;
    // The previous state is read right before the take (a take prepared at READY may run
    // long after, with another item on air), not while preparing.
    assert_eq!(server.count("GET", &active_path(R1)), 0);
    let report = client.take(&prepared).await;
    assert_eq!(server.count("GET", &active_path(R1)), 1);
    assert!(!report.all_ok());
    assert!(report.results[0].1.is_ok());
    let err = report.results[1].1.as_ref().unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.reason().contains("sender_id unknown"), "{err}");
    let state = err.state().expect("state re-read after the failure");
    assert_eq!(state.active["sender_id"], json!(S_OLD));
    assert_eq!(server.count("GET", &staged_path(R2)), 1);

    // R1 succeeded: restored to its previous sender, transport file and enable.
    assert_eq!(report.rolled_back.len(), 1);
    assert_eq!(report.rolled_back[0].0, R1);
    assert!(report.rolled_back[0].1.is_ok());
    let undo = &server.find("PATCH", &staged_path(R1))[0];
    let body = undo.json();
    assert_eq!(
        body,
        json!({"sender_id": S_OLD, "master_enable": true,
               "transport_file": {"data": "v=0\r\n", "type": "application/sdp"},
               "activation": {"mode": "activate_immediate", "requested_time": null}})
    );
    assert_eq!(server.count("PATCH", &staged_path(R2)), 0);
}

#[tokio::test]
async fn errors_400_423_500_re_read_staged_and_active() {
    let server = serve(|req| {
        if req.method == "PATCH" {
            if req.path == staged_path(R1) {
                return nmos_error(400, "bad transport_file");
            }
            if req.path == staged_path(R2) {
                return nmos_error(423, "pending activation");
            }
            if req.path == staged_path(R3) {
                return nmos_error(500, "SDP not parseable");
            }
        }
        device_script(false)(req)
    })
    .await;
    let client = is05(Is05Settings::default());
    let conns = [
        conn(&server.base, R1, Some(S1)),
        conn(&server.base, R2, Some(S1)),
        conn(&server.base, R3, Some(S1)),
    ];
    let results = client.activate(&conns, Activation::Immediate).await;
    let errs: Vec<&Is05Error> = results
        .iter()
        .map(|(_, r)| r.as_ref().unwrap_err())
        .collect();
    assert_eq!(errs[0].status(), Some(400));
    assert!(!errs[0].is_locked());
    assert!(errs[0].reason().contains("bad transport_file"));
    assert!(errs[1].is_locked(), "{}", errs[1]);
    assert_eq!(errs[1].status(), Some(423));
    assert_eq!(errs[2].status(), Some(500));
    assert!(errs[2].to_string().contains("SDP not parseable"));
    for (err, receiver) in errs.iter().zip([R1, R2, R3]) {
        let state = err.state().expect("state re-read");
        assert_eq!(state.staged["sender_id"], json!(S_OLD));
        assert_eq!(server.count("GET", &staged_path(receiver)), 1);
        assert_eq!(server.count("GET", &active_path(receiver)), 1);
        assert_eq!(server.count("PATCH", &staged_path(receiver)), 1, "no retry");
    }
}

#[tokio::test]
async fn locked_receiver_is_cleared_and_retried_once_when_configured() {
    let locked = Arc::new(AtomicUsize::new(0));
    let seen = locked.clone();
    let server = serve(move |req| {
        if req.is("PATCH", &staged_path(R1))
            && req.json().pointer("/activation/mode") != Some(&Value::Null)
            && seen.fetch_add(1, Ordering::SeqCst) == 0
        {
            return nmos_error(423, "pending activation");
        }
        device_script(false)(req)
    })
    .await;
    let client = is05(Is05Settings {
        on_423: On423::Clear,
        ..Is05Settings::default()
    });
    let results = client
        .activate(&[conn(&server.base, R1, Some(S1))], Activation::Immediate)
        .await;
    assert!(results[0].1.is_ok(), "{:?}", results[0].1);
    let patches: Vec<Value> = server
        .find("PATCH", &staged_path(R1))
        .iter()
        .map(Req::json)
        .collect();
    let take = json!({"sender_id": S1, "master_enable": true,
                      "transport_file": staged_file(S1),
                      "transport_params": [{"rtp_enabled": true}],
                      "activation": {"mode": "activate_immediate", "requested_time": null}});
    assert_eq!(
        patches,
        vec![take.clone(), json!({"activation": {"mode": null}}), take]
    );

    // Without clearing, the 423 is reported.
    let server = serve(|req| {
        if req.method == "PATCH" {
            nmos_error(423, "pending")
        } else {
            device_script(false)(req)
        }
    })
    .await;
    let results = is05(Is05Settings::default())
        .activate(&[conn(&server.base, R1, Some(S1))], Activation::Immediate)
        .await;
    assert!(results[0].1.as_ref().unwrap_err().is_locked());
    assert_eq!(server.count("PATCH", &staged_path(R1)), 1);
}

#[tokio::test]
async fn disconnect_and_active_sender() {
    let server = serve(device_script(false)).await;
    let client = is05(Is05Settings::default());
    let c = conn(&server.base, R1, Some(S1));
    client.disconnect(&c).await.unwrap();
    let body = server.find("PATCH", &staged_path(R1))[0].json();
    assert_eq!(
        body,
        json!({"sender_id": null, "master_enable": false, "transport_file": {"data": null, "type": null},
               "activation": {"mode": "activate_immediate", "requested_time": null}})
    );
    schemas().validate_is05_staged_patch(&body).unwrap();
    let api = c.connection_api.clone();
    let active = client.active_sender(&api, R1, false).await.unwrap();
    assert_eq!(active.sender_id.as_deref(), Some(S_OLD));
    assert!(active.master_enable);
    let state = client.read_state(&api, R1, false).await.unwrap();
    assert_eq!(state.staged["master_enable"], json!(true));
}

// ---------------------------------------------------------------------------------------------
// IS-08
// ---------------------------------------------------------------------------------------------

const CM: &str = "/x-nmos/channelmapping/v1.0";

fn io_body() -> Value {
    let text = std::fs::read_to_string(schemas().dir().join("is-08/v1.0/examples/io-get-200.json"))
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn cm_script(status: u16, answer: Value) -> impl Fn(&Req) -> Reply + Send + Sync + 'static {
    move |req: &Req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", p) if p == format!("{CM}/io") => reply(200, io_body()),
        ("GET", p) if p == format!("{CM}/map/active") => reply(
            200,
            json!({"activation": {"mode": null, "requested_time": null, "activation_time": null},
                   "map": {"output1": {"0": {"input": "input1", "channel_index": 0}, "1": {"input": null, "channel_index": null}}}}),
        ),
        ("GET", p) if p == format!("{CM}/map/activations") => reply(200, json!({})),
        ("POST", p) if p == format!("{CM}/map/activations") => reply(status, answer.clone()),
        ("DELETE", p) if p == format!("{CM}/map/activations/7") => Reply {
            status: 204,
            body: String::new(),
            content_type: "application/json",
            delay: None,
        },
        _ => nmos_error(404, "not found"),
    }
}

fn audio_map(base: &str, map: &[(&str, Vec<MapEntry>)]) -> AudioMap {
    AudioMap {
        device_id: "d0000000-0000-4000-8000-000000000002".to_owned(),
        channel_mapping_api: format!("{base}{CM}/"),
        authorization: false,
        map: map
            .iter()
            .map(|(o, e)| ((*o).to_owned(), e.clone()))
            .collect(),
    }
}

fn cm_client() -> ChannelMappingClient {
    ChannelMappingClient::new(http(), schemas(), Is08Settings::default())
}

#[tokio::test]
async fn is08_io_is_read_and_the_activation_body_is_exact() {
    let server = serve(cm_script(
        200,
        json!({"12": {"activation": {"mode": "activate_immediate", "requested_time": null, "activation_time": "1:0"},
                      "action": {"output1": {"0": {"input": "input1", "channel_index": 2}}}}}),
    ))
    .await;
    let client = cm_client();
    let map = audio_map(
        &server.base,
        &[(
            "output1",
            vec![MapEntry::routed("input1", 2), MapEntry::routed("input1", 3)],
        )],
    );
    let io = client
        .read_io(&map.channel_mapping_api, false)
        .await
        .unwrap();
    assert_eq!(io.inputs["input1"].channels, 4);
    assert_eq!(io.inputs["input1"].block_size, 2);
    assert!(!io.inputs["input1"].reordering);
    assert_eq!(
        io.outputs["output2"].routable_inputs,
        Some(vec![Some("input3".to_owned())])
    );
    let done = client.apply(&map, Activation::Immediate).await.unwrap();
    assert_eq!(done.id.as_deref(), Some("12"));
    assert!(!done.scheduled);
    assert_eq!(server.count("GET", &format!("{CM}/io")), 1, "io cached");
    let post = &server.find("POST", &format!("{CM}/map/activations"))[0];
    let body = post.json();
    assert_eq!(
        body,
        json!({"activation": {"mode": "activate_immediate", "requested_time": null},
               "action": {"output1": {"0": {"input": "input1", "channel_index": 2},
                                      "1": {"input": "input1", "channel_index": 3}}}})
    );
    schemas().validate_is08_activation(&body).unwrap();

    let active = client
        .active_map(&map.channel_mapping_api, false)
        .await
        .unwrap();
    assert_eq!(
        active.map["output1"],
        vec![MapEntry::routed("input1", 0), MapEntry::unrouted()]
    );
}

#[tokio::test]
async fn is08_constraint_violation_is_caught_before_sending() {
    let server = serve(cm_script(200, json!({"1": {}}))).await;
    let client = cm_client();
    // input3 is not routable to output1; input1 has blocks of 2 (channel 1 alone breaks it).
    let map = audio_map(
        &server.base,
        &[(
            "output1",
            vec![MapEntry::routed("input3", 0), MapEntry::routed("input1", 1)],
        )],
    );
    let err = client.apply(&map, Activation::Immediate).await.unwrap_err();
    match &err {
        Is08Error::Constraints { violations, .. } => assert!(violations.len() >= 2, "{err}"),
        other => panic!("expected a constraint violation, got {other}"),
    }
    assert!(err.to_string().contains("not routable"), "{err}");
    assert_eq!(server.count("POST", &format!("{CM}/map/activations")), 0);
}

#[tokio::test]
async fn is08_scheduled_activation_returns_its_id_and_can_be_deleted() {
    let server = serve(cm_script(
        202,
        json!({"7": {"activation": {"mode": "activate_scheduled_absolute", "requested_time": "1800000000:0", "activation_time": "1800000000:0"},
                     "action": {"output2": {"0": {"input": "input3", "channel_index": 0}, "1": {"input": "input3", "channel_index": 1}}}}}),
    ))
    .await;
    let client = cm_client();
    let map = audio_map(
        &server.base,
        &[(
            "output2",
            vec![MapEntry::routed("input3", 0), MapEntry::routed("input3", 1)],
        )],
    );
    let at = TaiTime::new(1_800_000_000, 0).unwrap();
    let scheduled = client
        .apply(&map, Activation::ScheduledAbsolute(at))
        .await
        .unwrap();
    assert!(scheduled.scheduled);
    let id = scheduled.id.unwrap();
    assert_eq!(id, "7");
    let body = server.find("POST", &format!("{CM}/map/activations"))[0].json();
    assert_eq!(
        body["activation"],
        json!({"mode": "activate_scheduled_absolute", "requested_time": "1800000000:0"})
    );
    assert!(
        client
            .delete_activation(&map.channel_mapping_api, &id, false)
            .await
            .unwrap()
    );
    assert_eq!(
        server.count("DELETE", &format!("{CM}/map/activations/7")),
        1
    );
    let delete = &server.find("DELETE", &format!("{CM}/map/activations/7"))[0];
    assert!(delete.body.is_empty());
    // Already gone: 404 is "nothing to delete", not an error.
    assert!(
        !client
            .delete_activation(&map.channel_mapping_api, "8", false)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn is08_400_and_423_carry_the_reason_and_the_re_read_map() {
    for (status, text) in [
        (400, "output 'output1' cannot be routed from input 'input1'"),
        (423, "Output 'output1' is locked by another activation."),
    ] {
        let server = serve(cm_script(
            status,
            json!({"code": status, "error": text, "debug": null}),
        ))
        .await;
        let client = cm_client();
        let map = audio_map(
            &server.base,
            &[(
                "output1",
                vec![MapEntry::routed("input1", 0), MapEntry::routed("input1", 1)],
            )],
        );
        let err = client.apply(&map, Activation::Immediate).await.unwrap_err();
        match (&err, status) {
            (Is08Error::Rejected { .. }, 400) | (Is08Error::Locked { .. }, 423) => {}
            (other, _) => panic!("unexpected {other}"),
        }
        assert!(err.reason().contains(text), "{err}");
        let state = err.state().expect("map re-read");
        assert!(state.active["map"]["output1"].is_object());
        assert_eq!(server.count("GET", &format!("{CM}/map/activations")), 1);
        assert_eq!(server.count("POST", &format!("{CM}/map/activations")), 1);
    }
}

#[tokio::test]
async fn invalid_body_is_not_sent() {
    let server = serve(device_script(false)).await;
    let client = is05(Is05Settings::default());
    // Upper-case UUIDs are rejected by the official schema.
    let bad = conn(&server.base, R1, Some(&S1.to_uppercase()));
    let err = client.stage(&bad, None).await.unwrap_err();
    assert!(matches!(err, Is05Error::Invalid { .. }), "{err}");
    let results = client
        .activate(
            &[bad, conn(&server.base, R2, Some(S1))],
            Activation::Immediate,
        )
        .await;
    assert!(matches!(results[0].1, Err(Is05Error::Invalid { .. })));
    assert!(results[1].1.is_ok());
    assert_eq!(server.count("PATCH", &staged_path(R1)), 0);
    assert_eq!(server.count("PATCH", &staged_path(R2)), 1);
}

#[tokio::test]
async fn scheduled_take_rollback_cancels_the_pending_activation() {
    let server = serve(|req| {
        if req.is("PATCH", &staged_path(R2)) {
            return nmos_error(500, "device failure");
        }
        device_script(false)(req)
    })
    .await;
    let client = is05(Is05Settings {
        take_all_or_nothing: true,
        ..Is05Settings::default()
    });
    let conns = [
        conn(&server.base, R1, Some(S1)),
        conn(&server.base, R2, Some(S1)),
    ];
    let at = TaiTime::new(1_800_000_000, 0).unwrap();
    let files = client.transport_files(&conns).await.unwrap();
    let prepared = client
        .prepare_take(&conns, &files, Activation::ScheduledAbsolute(at))
        .await;
    let report = client.take(&prepared).await;
    assert!(report.results[0].1.as_ref().unwrap().scheduled);
    assert_eq!(
        report.results[1].1.as_ref().unwrap_err().status(),
        Some(500)
    );
    assert_eq!(report.rolled_back.len(), 1);
    let patches: Vec<Value> = server
        .find("PATCH", &staged_path(R1))
        .iter()
        .map(Req::json)
        .collect();
    assert_eq!(patches.len(), 2);
    assert_eq!(patches[1], json!({"activation": {"mode": null}}));
}
