//! Query API WebSocket subscriptions (IS-04 v1.3 §"Query API WebSockets"): creation, listing,
//! deletion, and the socket task that sends the sync grain then one grain per batch of changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::faults::{FaultAction, RequestRecord};
use super::registry::{Change, ResourceType, matches_filters};
use super::reply::Reply;
use super::{Shared, query_pairs, record};
use crate::nmos::tai::TaiTime;

/// One subscription.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub id: Uuid,
    pub version: String,
    pub max_update_rate_ms: u64,
    pub kind: ResourceType,
    pub params: Map<String, Value>,
    pub persist: bool,
    pub ws_href: String,
    /// Open sockets.
    pub sockets: usize,
}

impl Subscription {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id.to_string(),
            "ws_href": self.ws_href,
            "max_update_rate_ms": self.max_update_rate_ms,
            "persist": self.persist,
            "secure": false,
            "resource_path": format!("/{}", self.kind.segment()),
            "params": self.params,
        });
        if self.version == "v1.3" {
            v["authorization"] = json!(false);
        }
        v
    }

    fn filters(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// The event a change makes for this subscription, if any.
    fn event(&self, change: &Change, filters: &[(String, String)]) -> Option<Value> {
        if change.kind != self.kind {
            return None;
        }
        let pre = change.pre.as_ref().filter(|v| matches_filters(v, filters));
        let post = change.post.as_ref().filter(|v| matches_filters(v, filters));
        let mut e = json!({"path": change.id.to_string()});
        match (pre, post) {
            (None, None) => return None,
            (Some(p), None) => e["pre"] = p.clone(),
            (None, Some(p)) => e["post"] = p.clone(),
            (Some(a), Some(b)) => {
                e["pre"] = a.clone();
                e["post"] = b.clone();
            }
        }
        Some(e)
    }
}

/// Routes `…/subscriptions[/{id}]`.
pub(crate) fn route(
    shared: &Arc<Shared>,
    version: &str,
    method: &Method,
    rest: &[&str],
    body: Option<&Value>,
) -> Reply {
    match rest {
        [] => match *method {
            Method::GET | Method::HEAD => {
                let st = shared.lock();
                Reply::ok(Value::Array(
                    st.subscriptions.values().map(|s| s.to_json()).collect(),
                ))
            }
            Method::POST => create(shared, version, body),
            _ => Reply::method_not_allowed(method.as_str(), "GET, POST"),
        },
        [id] => {
            let Ok(id) = Uuid::parse_str(id) else {
                return Reply::error(404, format!("no subscription {id}"), None);
            };
            match *method {
                Method::GET | Method::HEAD => match shared.lock().subscriptions.get(&id) {
                    Some(s) => Reply::ok(s.to_json()),
                    None => Reply::error(404, format!("no subscription {id}"), None),
                },
                Method::DELETE => {
                    let mut st = shared.lock();
                    match st.subscriptions.get(&id) {
                        None => Reply::error(404, format!("no subscription {id}"), None),
                        Some(s) if !s.persist => Reply::error(
                            403,
                            "a non-persistent subscription is managed by the server",
                            None,
                        ),
                        Some(_) => {
                            st.subscriptions.remove(&id);
                            tracing::info!(%id, "virtual studio: subscription deleted");
                            Reply::empty(204)
                        }
                    }
                }
                _ => Reply::method_not_allowed(method.as_str(), "GET, DELETE"),
            }
        }
        _ => Reply::not_found(&rest.join("/")),
    }
}

fn create(shared: &Arc<Shared>, version: &str, body: Option<&Value>) -> Reply {
    let Some(obj) = body.and_then(Value::as_object) else {
        return Reply::error(400, "subscription request must be a JSON object", None);
    };
    let mut problems = Vec::new();
    let rate = match obj.get("max_update_rate_ms") {
        Some(v) => v.as_u64().unwrap_or_else(|| {
            problems.push("max_update_rate_ms must be a non-negative integer".to_owned());
            0
        }),
        None => {
            problems.push("max_update_rate_ms is required".to_owned());
            0
        }
    };
    let persist = match obj.get("persist") {
        Some(Value::Bool(b)) => *b,
        _ => {
            problems.push("persist is required and must be a boolean".to_owned());
            false
        }
    };
    let kind = match obj.get("resource_path").and_then(Value::as_str) {
        Some(p) => match p.strip_prefix('/').and_then(ResourceType::from_segment) {
            Some(k) => Some(k),
            None => {
                problems.push(format!("resource_path {p:?} is not one of /nodes, /devices, /sources, /flows, /senders, /receivers"));
                None
            }
        },
        None => {
            problems.push("resource_path is required and must be a string".to_owned());
            None
        }
    };
    let params = match obj.get("params") {
        Some(Value::Object(m)) => m.clone(),
        _ => {
            problems.push("params is required and must be an object".to_owned());
            Map::new()
        }
    };
    for key in ["secure", "authorization"] {
        match obj.get(key) {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => problems.push(format!(
                "{key}: true cannot be honoured (this registry serves plain ws:// without authorization)"
            )),
            Some(_) => problems.push(format!("{key} must be a boolean")),
        }
    }
    let Some(kind) = kind.filter(|_| problems.is_empty()) else {
        return Reply::bad_request("invalid subscription request", &problems);
    };
    let mut st = shared.lock();
    let location = |id: Uuid| format!("/x-nmos/query/{version}/subscriptions/{id}");
    if let Some(existing) = st.subscriptions.values().find(|s| {
        s.kind == kind
            && s.params == params
            && s.persist == persist
            && s.max_update_rate_ms == rate
            && s.version == version
    }) {
        return Reply::ok(existing.to_json()).header("Location", location(existing.id));
    }
    let id = Uuid::new_v4();
    let ws_href = format!(
        "{}/ws/?uid={id}",
        shared.base.replacen("http://", "ws://", 1)
    );
    let sub = Subscription {
        id,
        version: version.to_owned(),
        max_update_rate_ms: rate,
        kind,
        params,
        persist,
        ws_href,
        sockets: 0,
    };
    let body = sub.to_json();
    st.subscriptions.insert(id, sub);
    tracing::info!(%id, resource = kind.segment(), "virtual studio: subscription created");
    Reply::json(201, body).header("Location", location(id))
}

/// `GET /ws/?uid=…`: the WebSocket of a subscription.
pub(crate) async fn ws_handler(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let received = Instant::now();
    let action = shared
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take("GET", uri.path());
    match action {
        FaultAction::Status(code) => {
            record(
                &shared,
                RequestRecord {
                    method: "GET".to_owned(),
                    path: uri.path().to_owned(),
                    query: uri.query().map(str::to_owned),
                    body: None,
                    status: code,
                    received,
                },
            );
            return Reply::error(code, format!("injected fault: {code}"), None).into_http();
        }
        FaultAction::Delay(d) => tokio::time::sleep(d).await,
        FaultAction::None => {}
    }
    let uid = query_pairs(uri.query())
        .into_iter()
        .find(|(k, _)| k == "uid")
        .and_then(|(_, v)| Uuid::parse_str(&v).ok());
    let known = uid.filter(|id| shared.lock().subscriptions.contains_key(id));
    let log = |status: u16| {
        record(
            &shared,
            RequestRecord {
                method: "GET".to_owned(),
                path: uri.path().to_owned(),
                query: uri.query().map(str::to_owned),
                body: None,
                status,
                received,
            },
        );
    };
    match (known, ws) {
        (Some(id), Ok(ws)) => {
            log(101);
            let shared2 = shared.clone();
            ws.on_upgrade(move |socket| run_socket(shared2, id, socket))
        }
        (Some(_), Err(_)) => {
            log(400);
            Reply::error(400, "expected a WebSocket upgrade", None).into_http()
        }
        (None, _) => {
            log(404);
            Reply::error(404, "no such subscription", None).into_http()
        }
    }
    .into_response()
}

/// A socket closed: forget a non-persistent subscription with no socket left.
fn release(shared: &Shared, id: Uuid) {
    let mut st = shared.lock();
    if let Some(s) = st.subscriptions.get_mut(&id) {
        s.sockets = s.sockets.saturating_sub(1);
        if s.sockets == 0 && !s.persist {
            st.subscriptions.remove(&id);
            tracing::info!(%id, "virtual studio: non-persistent subscription removed");
        }
    }
    shared.ws_open.send_modify(|n| *n = n.saturating_sub(1));
}

fn grain(shared: &Shared, sub: &Subscription, data: Vec<Value>) -> String {
    let now = TaiTime::now().to_string();
    json!({
        "grain_type": "event",
        "source_id": shared.instance_id.to_string(),
        "flow_id": sub.id.to_string(),
        "origin_timestamp": now,
        "sync_timestamp": now,
        "creation_timestamp": now,
        "rate": {"numerator": 0, "denominator": 1},
        "duration": {"numerator": 0, "denominator": 1},
        "grain": {
            "type": "urn:x-nmos:format:data.event",
            "topic": format!("/{}/", sub.kind.segment()),
            "data": data
        }
    })
    .to_string()
}

async fn run_socket(shared: Arc<Shared>, id: Uuid, mut socket: WebSocket) {
    let mut drop_rx = shared.ws_drop.subscribe();
    let start = {
        let mut guard = shared.lock();
        let st = &mut *guard;
        st.subscriptions.get_mut(&id).map(|sub| {
            sub.sockets += 1;
            shared.ws_open.send_modify(|n| *n += 1);
            let sub = sub.clone();
            // Subscribe under the lock so no change falls between the snapshot and the stream.
            let rx = shared.changes.subscribe();
            let filters = sub.filters();
            let sync: Vec<Value> = st
                .registry
                .all(sub.kind)
                .into_iter()
                .filter(|v| matches_filters(v, &filters))
                .map(|v| {
                    json!({"path": v.get("id").cloned().unwrap_or(Value::Null), "pre": v, "post": v})
                })
                .collect();
            (sub, rx, filters, sync)
        })
    };
    let Some((sub, mut rx, filters, sync)) = start else {
        // Deleted between the handshake and now.
        let _ = socket.send(Message::Close(None)).await;
        return;
    };
    tracing::info!(%id, resource = sub.kind.segment(), "virtual studio: WebSocket open");
    let rate = Duration::from_millis(sub.max_update_rate_ms);
    let mut last_sent = Instant::now();
    let mut ok = socket
        .send(Message::Text(grain(&shared, &sub, sync).into()))
        .await
        .is_ok();
    while ok {
        tokio::select! {
            _ = drop_rx.changed() => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(Message::Ping(p))) => {
                    ok = socket.send(Message::Pong(p)).await.is_ok();
                }
                Some(Ok(_)) => {}
            },
            change = rx.recv() => {
                let mut batch = Vec::new();
                match change {
                    Ok(c) => batch.extend(sub.event(&c, &filters)),
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => {
                        tracing::warn!(%id, "virtual studio: WebSocket lagged, closing it");
                        let _ = socket.send(Message::Close(None)).await;
                        break;
                    }
                }
                let wait = rate.saturating_sub(last_sent.elapsed());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                loop {
                    match rx.try_recv() {
                        Ok(c) => batch.extend(sub.event(&c, &filters)),
                        Err(tokio::sync::broadcast::error::TryRecvError::Empty) => break,
                        Err(_) => { ok = false; break; }
                    }
                }
                if !batch.is_empty() {
                    ok = ok && socket.send(Message::Text(grain(&shared, &sub, batch).into())).await.is_ok();
                    last_sent = Instant::now();
                }
            }
        }
    }
    tracing::info!(%id, "virtual studio: WebSocket closed");
    release(&shared, id);
}
