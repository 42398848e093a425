//! IS-04 Query API WebSocket subscriptions: the live catalogue.
//!
//! One [`run_subscription`] task per resource type: it POSTs a non-persistent subscription
//! (`{query}/<version>/subscriptions`), connects to the returned `ws_href`, re-reads the whole
//! collection with the [`QueryClient`] (a [`FeedEvent::Replace`], so nothing missed while
//! disconnected survives), then forwards every data grain as [`FeedEvent::Events`]. The socket
//! is pinged every `ping_interval`; a socket closed, failed, or silent for `idle_timeout`
//! (pongs count) is dropped and the task subscribes again with exponential back-off. While a
//! registry answers HTTP but its subscriptions fail (an error status, no `ws_href`, a failed
//! WebSocket handshake), the collection is listed at every retry instead, so the catalogue
//! still follows, at the back-off's pace.
//!
//! Order matters: the socket is connected *before* the collection is listed, so a change made
//! while listing arrives afterwards on the socket and wins.
//!
//! [`parse_grain`] and [`apply_grain`] are pure and unit-tested.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::is04::{ApplyError, Catalogue, QueryClient, QueryError, ResourceType};

/// Longest body excerpt kept in an error.
const EXCERPT: usize = 200;

/// What one event of a data grain means (IS-04 Query API, `pre`/`post`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `post` only.
    Added,
    /// `pre` only.
    Removed,
    /// Both, different.
    Modified,
    /// Both, identical: part of the initial snapshot.
    Sync,
}

/// One event of a data grain.
#[derive(Debug, Clone, PartialEq)]
pub struct GrainEvent {
    /// The resource id (`path`).
    pub id: String,
    /// What happened.
    pub kind: EventKind,
    /// The resource after the event (`None` when removed).
    pub post: Option<Value>,
}

/// A parsed data grain.
#[derive(Debug, Clone, PartialEq)]
pub struct Grain {
    /// The type named by `grain.topic` (`None` when absent or unknown).
    pub resource_type: Option<ResourceType>,
    /// The events, in order.
    pub events: Vec<GrainEvent>,
    /// Elements of `grain.data` that were skipped (no path, neither pre nor post), described.
    pub skipped: Vec<String>,
}

/// A message that is not a data grain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrainError {
    /// Not JSON.
    #[error("not JSON ({detail}): {excerpt}")]
    NotJson { detail: String, excerpt: String },
    /// JSON without `grain.data` as an array.
    #[error("no grain.data array: {excerpt}")]
    NoData { excerpt: String },
}

fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(EXCERPT).collect();
    if text.chars().count() > EXCERPT {
        out.push('…');
    }
    out
}

/// Parses one WebSocket text message.
pub fn parse_grain(text: &str) -> Result<Grain, GrainError> {
    let root: Value = serde_json::from_str(text).map_err(|e| GrainError::NotJson {
        detail: e.to_string(),
        excerpt: excerpt(text),
    })?;
    let grain = root.get("grain");
    let data = grain
        .and_then(|g| g.get("data"))
        .and_then(Value::as_array)
        .ok_or_else(|| GrainError::NoData {
            excerpt: excerpt(text),
        })?;
    let resource_type = grain
        .and_then(|g| g.get("topic"))
        .and_then(Value::as_str)
        .and_then(ResourceType::from_path);
    let mut events = Vec::with_capacity(data.len());
    let mut skipped = Vec::new();
    for (i, item) in data.iter().enumerate() {
        let Some(id) = item
            .get("path")
            .and_then(Value::as_str)
            .map(|p| p.trim().trim_matches('/'))
            .filter(|p| !p.is_empty())
        else {
            skipped.push(format!("data[{i}]: no path"));
            continue;
        };
        let present = |k: &str| item.get(k).filter(|v| !v.is_null());
        let kind = match (present("pre"), present("post")) {
            (None, Some(_)) => EventKind::Added,
            (Some(_), None) => EventKind::Removed,
            (Some(pre), Some(post)) if pre == post => EventKind::Sync,
            (Some(_), Some(_)) => EventKind::Modified,
            (None, None) => {
                skipped.push(format!("data[{i}] ({id}): neither pre nor post"));
                continue;
            }
        };
        events.push(GrainEvent {
            id: id.to_owned(),
            kind,
            post: present("post").cloned(),
        });
    }
    Ok(Grain {
        resource_type,
        events,
        skipped,
    })
}

/// Applies events of one resource type to a catalogue. Returns whether it changed, and the
/// events refused (bad resource JSON), which leave the catalogue as it was.
pub fn apply_grain(
    catalogue: &mut Catalogue,
    resource_type: ResourceType,
    events: &[GrainEvent],
) -> (bool, Vec<ApplyError>) {
    let mut changed = false;
    let mut errors = Vec::new();
    for e in events {
        match catalogue.apply(resource_type, &e.id, e.post.clone()) {
            Ok(c) => changed |= c,
            Err(err) => errors.push(err),
        }
    }
    (changed, errors)
}

/// What the feeders of the catalogue (subscriptions, node poller) report.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    /// A full listing of one type: replaces that type.
    Replace {
        resource_type: ResourceType,
        values: Vec<Value>,
        /// Where it came from (URL), for logs.
        source: String,
    },
    /// Changes of one type, in order.
    Events {
        resource_type: ResourceType,
        events: Vec<GrainEvent>,
        source: String,
    },
    /// A whole catalogue (the Node API poller's merged view).
    Snapshot(Catalogue),
    /// A feed is live (subscribed and resynchronised, or a node answered).
    Up { feed: String },
    /// A feed failed and will retry.
    Down { feed: String, error: String },
}

/// Settings of a subscription task.
#[derive(Debug, Clone)]
pub struct SubscriptionSettings {
    /// `max_update_rate_ms` asked for.
    pub max_update_rate_ms: u32,
    /// Timeout of the POST and of the WebSocket handshake.
    pub http_timeout: Duration,
    /// Gap between our pings.
    pub ping_interval: Duration,
    /// A socket with no incoming frame (data, ping or pong) for this long is dropped.
    pub idle_timeout: Duration,
    /// First delay before subscribing again.
    pub backoff_initial: Duration,
    /// Longest delay before subscribing again.
    pub backoff_max: Duration,
    /// PEM CA bundle trusted for `wss://` sockets (BCP-003-01); `None` = the built-in roots.
    pub ca_bundle: Option<std::path::PathBuf>,
}

impl Default for SubscriptionSettings {
    fn default() -> Self {
        SubscriptionSettings {
            max_update_rate_ms: 100,
            http_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(35),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            ca_bundle: None,
        }
    }
}

/// Why a subscription ended.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// POST failed (transport or timeout).
    #[error("POST {url}: {detail}")]
    Post { url: String, detail: String },
    /// POST answered with another status than 200/201.
    #[error("POST {url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    /// The POST response has no usable `ws_href`.
    #[error("POST {url}: response without a ws_href: {body}")]
    NoWsHref { url: String, body: String },
    /// The WebSocket handshake failed.
    #[error("WebSocket {url}: connect failed: {detail}")]
    Connect { url: String, detail: String },
    /// The socket failed or was closed.
    #[error("WebSocket {url}: {detail}")]
    Dropped { url: String, detail: String },
    /// Nothing came in for too long.
    #[error("WebSocket {url}: nothing received for {after:?}")]
    Idle { url: String, after: Duration },
    /// The resynchronising GET failed.
    #[error("resynchronising: {0}")]
    Query(#[from] QueryError),
    /// The receiver of the feed is gone (the discovery task stopped).
    #[error("the catalogue task is gone")]
    FeedClosed,
}

/// Exponential back-off: `initial`, doubled each time, capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A back-off starting at `initial` (at least 1 ms), at most `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    /// The delay to wait now; the following one is doubled.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Back to `initial` (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// The `POST /subscriptions` body for one type.
pub fn subscription_request(
    resource_type: ResourceType,
    max_update_rate_ms: u32,
    secure: bool,
) -> Value {
    serde_json::json!({
        "max_update_rate_ms": max_update_rate_ms,
        "resource_path": format!("/{}", resource_type.path()),
        "params": {},
        "persist": false,
        "secure": secure,
    })
}

/// Creates a subscription and returns its `ws_href`.
pub async fn create_subscription(
    client: &QueryClient,
    resource_type: ResourceType,
    settings: &SubscriptionSettings,
) -> Result<String, SubscribeError> {
    let version = client.api_version().await?;
    let url = format!("{}{version}/subscriptions", client.root_url());
    let secure = url.starts_with("https:");
    let body = subscription_request(resource_type, settings.max_update_rate_ms, secure);
    let mut request = client
        .http()
        .post(&url)
        .timeout(settings.http_timeout)
        .json(&body);
    if let Some(bearer) = client.authorization() {
        request = request.header(reqwest::header::AUTHORIZATION, bearer);
    }
    let response = request.send().await.map_err(|e| SubscribeError::Post {
        url: url.clone(),
        detail: e.to_string(),
    })?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| SubscribeError::Post {
        url: url.clone(),
        detail: e.to_string(),
    })?;
    if status != 200 && status != 201 {
        return Err(SubscribeError::Status {
            url,
            status,
            body: excerpt(&text),
        });
    }
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("ws_href").and_then(Value::as_str).map(str::to_owned))
        .filter(|h| h.starts_with("ws://") || h.starts_with("wss://"))
        .ok_or(SubscribeError::NoWsHref {
            url,
            body: excerpt(&text),
        })
}

/// Keeps one type's subscription alive until `stop`, feeding `tx`. Returns when stopped or
/// when `tx` is closed.
pub async fn run_subscription(
    client: QueryClient,
    resource_type: ResourceType,
    settings: SubscriptionSettings,
    tx: mpsc::Sender<FeedEvent>,
    stop: CancellationToken,
) {
    let feed = format!("{}{}", client.root_url(), resource_type.path());
    let mut backoff = Backoff::new(settings.backoff_initial, settings.backoff_max);
    // Built once (the CA bundle read once), used by every wss:// session.
    let tls = tls_connector(settings.ca_bundle.as_deref());
    loop {
        let (synced, result) = tokio::select! {
            _ = stop.cancelled() => return,
            r = session(&client, resource_type, &settings, &tls, &tx, &stop) => r,
        };
        let error = match result {
            Ok(()) => return,
            Err(SubscribeError::FeedClosed) => return,
            Err(e) => e,
        };
        if synced {
            backoff.reset();
        } else if matches!(
            error,
            SubscribeError::Status { .. }
                | SubscribeError::NoWsHref { .. }
                | SubscribeError::Connect { .. }
        ) {
            // The registry answers but its subscriptions do not work: keep the catalogue
            // fresh by listing at every retry meanwhile.
            if let Ok(values) = client.list_raw(resource_type).await {
                let replace = FeedEvent::Replace {
                    resource_type,
                    values,
                    source: feed.clone(),
                };
                if tx.send(replace).await.is_err() {
                    return;
                }
            }
        }
        let delay = backoff.next_delay();
        tracing::warn!(
            feed = %feed,
            error = %error,
            retry_in = ?delay,
            "IS-04 subscription lost; subscribing again and resynchronising"
        );
        let down = FeedEvent::Down {
            feed: feed.clone(),
            error: error.to_string(),
        };
        if tx.send(down).await.is_err() {
            return;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// The WebSocket handshake request, with the registry's bearer token when there is one.
fn ws_request(
    ws_href: &str,
    bearer: Option<String>,
) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = ws_href.into_client_request().map_err(|e| e.to_string())?;
    if let Some(bearer) = bearer {
        let value = bearer
            .parse()
            .map_err(|_| "bearer token is not a valid header".to_string())?;
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::header::AUTHORIZATION,
            value,
        );
    }
    Ok(request)
}

/// TLS for `wss://` sockets: the configured CA bundle, else the built-in (webpki) roots.
fn tls_connector(
    ca_bundle: Option<&std::path::Path>,
) -> Result<tokio_tungstenite::Connector, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_bundle {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(
        config,
    )))
}

/// One subscription from POST to drop. Returns whether the resync was done, and why it ended
/// (`Ok` only when stopped).
async fn session(
    client: &QueryClient,
    resource_type: ResourceType,
    settings: &SubscriptionSettings,
    tls: &Result<tokio_tungstenite::Connector, String>,
    tx: &mpsc::Sender<FeedEvent>,
    stop: &CancellationToken,
) -> (bool, Result<(), SubscribeError>) {
    let ws_href = match create_subscription(client, resource_type, settings).await {
        Ok(h) => h,
        Err(e) => return (false, Err(e)),
    };
    let request = match ws_request(&ws_href, client.authorization()) {
        Ok(r) => r,
        Err(detail) => {
            return (
                false,
                Err(SubscribeError::Connect {
                    url: ws_href,
                    detail,
                }),
            );
        }
    };
    let connector = if ws_href.starts_with("wss:") {
        match tls {
            Ok(c) => Some(c.clone()),
            Err(detail) => {
                return (
                    false,
                    Err(SubscribeError::Connect {
                        url: ws_href,
                        detail: detail.clone(),
                    }),
                );
            }
        }
    } else {
        None
    };
    let connect = tokio::time::timeout(
        settings.http_timeout,
        tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector),
    )
    .await;
    let socket = match connect {
        Ok(Ok((socket, _))) => socket,
        Ok(Err(e)) => {
            return (
                false,
                Err(SubscribeError::Connect {
                    url: ws_href,
                    detail: e.to_string(),
                }),
            );
        }
        Err(_) => {
            return (
                false,
                Err(SubscribeError::Connect {
                    url: ws_href,
                    detail: format!("no handshake within {:?}", settings.http_timeout),
                }),
            );
        }
    };
    let (mut sink, mut stream) = socket.split();
    // Resynchronise: the socket is already buffering changes made from now on.
    let values = match client.list_raw(resource_type).await {
        Ok(v) => v,
        Err(e) => return (false, Err(e.into())),
    };
    let source = format!("{}{}", client.root_url(), resource_type.path());
    let sent = tx
        .send(FeedEvent::Replace {
            resource_type,
            values,
            source: source.clone(),
        })
        .await
        .and(
            tx.send(FeedEvent::Up {
                feed: source.clone(),
            })
            .await,
        );
    if sent.is_err() {
        return (true, Err(SubscribeError::FeedClosed));
    }
    tracing::info!(feed = %source, ws = %ws_href, "IS-04 subscription live");

    let mut last_rx = Instant::now();
    let mut ping = tokio::time::interval_at(
        Instant::now() + settings.ping_interval,
        settings.ping_interval.max(Duration::from_millis(10)),
    );
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = sink.send(Message::Close(None)).await;
                return (true, Ok(()));
            }
            _ = ping.tick() => {
                if last_rx.elapsed() >= settings.idle_timeout {
                    return (true, Err(SubscribeError::Idle { url: ws_href, after: settings.idle_timeout }));
                }
                if let Err(e) = sink.send(Message::Ping(Default::default())).await {
                    return (true, Err(SubscribeError::Dropped { url: ws_href, detail: e.to_string() }));
                }
            }
            msg = stream.next() => {
                last_rx = Instant::now();
                let text = match msg {
                    None => return (true, Err(SubscribeError::Dropped { url: ws_href, detail: "closed".to_owned() })),
                    Some(Err(e)) => return (true, Err(SubscribeError::Dropped { url: ws_href, detail: e.to_string() })),
                    Some(Ok(Message::Close(frame))) => {
                        let detail = frame.map_or_else(|| "closed by the registry".to_owned(), |f| format!("closed by the registry: {} {}", f.code, f.reason));
                        return (true, Err(SubscribeError::Dropped { url: ws_href, detail }));
                    }
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                };
                match parse_grain(text.as_str()) {
                    Ok(grain) => {
                        for s in &grain.skipped {
                            tracing::warn!(feed = %source, "IS-04 grain element skipped: {s}");
                        }
                        if let Some(t) = grain.resource_type.filter(|t| *t != resource_type) {
                            tracing::warn!(feed = %source, topic = %t, "IS-04 grain for another resource type ignored");
                            continue;
                        }
                        if grain.events.is_empty() {
                            continue;
                        }
                        let ev = FeedEvent::Events { resource_type, events: grain.events, source: source.clone() };
                        if tx.send(ev).await.is_err() {
                            return (true, Err(SubscribeError::FeedClosed));
                        }
                    }
                    Err(e) => tracing::warn!(feed = %source, ws = %ws_href, error = %e, "IS-04 WebSocket message skipped"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "05000001-0000-4000-8000-000000000000";

    fn sender(label: &str) -> Value {
        json!({"id": ID, "version": "1:0", "label": label, "description": "", "tags": {},
               "flow_id": null, "transport": "urn:x-nmos:transport:rtp.mcast",
               "device_id": "02000001-0000-4000-8000-000000000000", "manifest_href": null})
    }

    fn grain(data: Value) -> String {
        json!({"grain_type": "event", "source_id": "x", "flow_id": "y",
               "origin_timestamp": "1:0", "sync_timestamp": "1:0", "creation_timestamp": "1:0",
               "rate": {"numerator": 0, "denominator": 1}, "duration": {"numerator": 0, "denominator": 1},
               "grain": {"type": "urn:x-nmos:format:data.event", "topic": "/senders/", "data": data}})
        .to_string()
    }

    #[test]
    fn grain_events_classify() {
        let text = grain(json!([
            {"path": ID, "post": sender("a")},
            {"path": ID, "pre": sender("a"), "post": sender("b")},
            {"path": ID, "pre": sender("b"), "post": sender("b")},
            {"path": ID, "pre": sender("b")},
            {"path": ID, "pre": null, "post": null},
            {"post": sender("x")},
        ]));
        let g = parse_grain(&text).unwrap();
        assert_eq!(g.resource_type, Some(ResourceType::Sender));
        let kinds: Vec<EventKind> = g.events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Added,
                EventKind::Modified,
                EventKind::Sync,
                EventKind::Removed
            ]
        );
        assert_eq!(g.events[3].post, None);
        assert_eq!(g.skipped.len(), 2);
    }

    #[test]
    fn bad_messages_are_errors() {
        assert!(matches!(
            parse_grain("{nope"),
            Err(GrainError::NotJson { .. })
        ));
        assert!(matches!(
            parse_grain(r#"{"grain": {"data": 3}}"#),
            Err(GrainError::NoData { .. })
        ));
    }

    #[test]
    fn grains_apply_and_bad_resources_are_skipped() {
        let mut c = Catalogue::default();
        let g = parse_grain(&grain(json!([{"path": ID, "post": sender("cam 1")}]))).unwrap();
        let (changed, errors) = apply_grain(&mut c, ResourceType::Sender, &g.events);
        assert!(changed && errors.is_empty());
        assert_eq!(c.senders[ID].core.label, "cam 1");

        // Sync of identical content: no change.
        let g = parse_grain(&grain(
            json!([{"path": ID, "pre": sender("cam 1"), "post": sender("cam 1")}]),
        ))
        .unwrap();
        let (changed, errors) = apply_grain(&mut c, ResourceType::Sender, &g.events);
        assert!(!changed && errors.is_empty());

        // A body that is not a sender, and one under the wrong id: refused, nothing changes.
        let other = "05000002-0000-4000-8000-000000000000";
        let g = parse_grain(&grain(json!([
            {"path": ID, "pre": sender("cam 1"), "post": {"id": ID, "transport": 5}},
            {"path": other, "post": sender("elsewhere")},
        ])))
        .unwrap();
        let (changed, errors) = apply_grain(&mut c, ResourceType::Sender, &g.events);
        assert!(!changed);
        assert_eq!(errors.len(), 2);
        assert_eq!(c.senders[ID].core.label, "cam 1");

        let g = parse_grain(&grain(json!([{"path": ID, "pre": sender("cam 1")}]))).unwrap();
        let (changed, _) = apply_grain(&mut c, ResourceType::Sender, &g.events);
        assert!(changed);
        assert!(c.senders.is_empty());
    }

    #[test]
    fn subscription_body() {
        let b = subscription_request(ResourceType::Flow, 100, false);
        assert_eq!(b["resource_path"], "/flows");
        assert_eq!(b["persist"], false);
        assert_eq!(b["params"], json!({}));
    }

    #[test]
    fn backoff_doubles_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let d: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(d, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
