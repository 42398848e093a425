//! A virtual NMOS studio in the process: an IS-04 registry (Query API v1.2/v1.3 with paging,
//! basic queries and WebSocket subscriptions) and, for every device of a [`StudioSpec`], an
//! IS-05 v1.1 Connection API and optionally an IS-08 v1.0 Channel Mapping API, all on one HTTP
//! server. Used by the gateway's tests and by `mos-gateway run --virtual-studio FILE`.
//!
//! Device APIs live under `/dev/{device-id}/x-nmos/…`; the devices' `controls` point there.
//! The [`StudioHandle`] gives the ids by label, the log of every request, the IS-05 and IS-08
//! state, and fault injection (error statuses, delays, devices disappearing or re-registering,
//! WebSockets dropped).
//!
//! Behaviour worth knowing (as nmos-cpp, see `nmos.md` §12):
//! - Query API lists are always paged: 10 per page by default, `paging.limit` up to 1000;
//!   `Link` and `X-Paging-*` headers; `query.rql` and ancestry queries answer 501.
//! - A non-persistent subscription is deleted when its last WebSocket closes (so after
//!   [`StudioHandle::drop_websockets`] a client must POST again); a persistent one stays.
//! - Devices advertise `sr-ctrl/v1.2` first (by default) but serve only v1.1 (v1.2 → 404).
//! - PATCH/POST/DELETE with a trailing slash → 404; every error has `{code, error, debug}`.
//! - Activations and IS-08 map changes are logged at info level with labels, so a dry run shows
//!   the routes the gateway makes.
//!
//! Modules: [`spec`] (the studio file and its derived ids); private ones hold the registry,
//! fault injection and the request log, and serve the Query API, the subscriptions, IS-05 and
//! IS-08.

pub mod spec;

mod channel_mapping;
mod connection;
mod faults;
mod query;
mod registry;
mod reply;
mod resources;
mod subscriptions;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::Response;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::nmos::schemas::SchemaSet;

pub use faults::{Fault, FaultTarget, RequestRecord};
pub use registry::ResourceType;
pub use spec::{
    ChannelMappingSpec, DeviceSpec, EndpointSpec, FormatSpec, Is08InputSpec, Is08OutputSpec,
    StudioSpec,
};

use faults::{FaultAction, Faults};
use registry::{Change, Registry};
use reply::Reply;

/// How long a request to a removed device hangs before it gets a 503.
const DOWN_DEVICE_HANG: Duration = Duration::from_secs(60);
/// The request log keeps this many most recent requests (a dry run may last for hours).
pub const REQUEST_LOG_LIMIT: usize = 10_000;
/// Capacity of the change broadcast (a slower WebSocket is closed, and its client resyncs).
const CHANGE_CAPACITY: usize = 4096;

/// Failure to read a studio file or to start the studio.
#[derive(Debug, thiserror::Error)]
pub enum StudioError {
    /// The studio file could not be read.
    #[error("studio file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The studio file is not valid.
    #[error("studio file: {0}")]
    Spec(String),
    /// The HTTP server could not bind.
    #[error("virtual studio cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// One device's run-time state.
#[derive(Debug)]
pub(crate) struct DeviceState {
    pub spec: spec::DeviceSpec,
    /// Position in the spec (used for its addresses).
    pub index: usize,
    /// Whether the device answers and is registered.
    pub up: watch::Sender<bool>,
    /// The IS-04 resources while registered, parents first.
    pub resources: Vec<(ResourceType, Uuid, Value)>,
    pub connection: connection::DeviceConnection,
    pub channel_mapping: Option<channel_mapping::DeviceChannelMapping>,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct StudioState {
    pub registry: Registry,
    pub devices: BTreeMap<Uuid, DeviceState>,
    pub subscriptions: BTreeMap<Uuid, subscriptions::Subscription>,
}

/// Shared between the server tasks and the handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub state: Mutex<StudioState>,
    pub schemas: Arc<SchemaSet>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub addr: SocketAddr,
    pub spec: StudioSpec,
    pub changes: broadcast::Sender<Change>,
    /// Bumped to make every WebSocket close.
    pub ws_drop: watch::Sender<u64>,
    /// Number of open WebSockets.
    pub ws_open: watch::Sender<usize>,
    pub log: Mutex<Vec<RequestRecord>>,
    /// Bumped on every logged request.
    pub log_seq: watch::Sender<u64>,
    pub faults: Mutex<Faults>,
    /// The Query API instance id (`source_id` of the grains).
    pub instance_id: Uuid,
    pub shutdown: watch::Sender<bool>,
}

impl Shared {
    /// The state, even if a panicking task poisoned the lock.
    pub(crate) fn lock(&self) -> MutexGuard<'_, StudioState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts virtual studios.
pub struct VirtualStudio;

impl VirtualStudio {
    /// Registers every device of `spec` and serves the Query API and the device APIs on `bind`
    /// (use `127.0.0.1:0` for a free port). Needs a Tokio runtime.
    pub async fn start(
        spec: StudioSpec,
        bind: SocketAddr,
        schemas: Arc<SchemaSet>,
    ) -> Result<StudioHandle, StudioError> {
        spec.check()?;
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|source| StudioError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StudioError::Bind { addr: bind, source })?;
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            addr.ip().to_string()
        };
        let base = if addr.is_ipv6() {
            format!("http://[{host}]:{}", addr.port())
        } else {
            format!("http://{host}:{}", addr.port())
        };
        let (changes, _) = broadcast::channel(CHANGE_CAPACITY);
        let mut registry = Registry::new(changes.clone());
        if spec.registry_node {
            let id = spec::stable_id("registry-node");
            registry.add(
                ResourceType::Nodes,
                id,
                serde_json::json!({
                    "id": id.to_string(), "version": "0:0", "label": "virtual-studio registry",
                    "description": "The registry's own node", "tags": {},
                    "href": format!("{base}/"), "hostname": "virtual-registry", "caps": {},
                    "api": {"versions": ["v1.2", "v1.3"], "endpoints": [
                        {"host": host, "port": addr.port(), "protocol": "http", "authorization": false}]},
                    "services": [], "clocks": [], "interfaces": []
                }),
            );
        }
        let mut devices = BTreeMap::new();
        for (index, d) in spec.devices.iter().enumerate() {
            let id = spec::device_id(d);
            let resources =
                resources::device_resources(&base, addr.port(), d, spec.advertise_sr_ctrl_v1_2);
            for (kind, rid, value) in &resources {
                registry.add(*kind, *rid, value.clone());
            }
            let resources = resources
                .into_iter()
                .map(|(k, rid, _)| {
                    let v = registry.get(k, rid).cloned().unwrap_or(Value::Null);
                    (k, rid, v)
                })
                .collect();
            let channel_mapping = match &d.channel_mapping {
                Some(cm) => Some(
                    channel_mapping::DeviceChannelMapping::new(id, d, cm)
                        .map_err(StudioError::Spec)?,
                ),
                None => None,
            };
            devices.insert(
                id,
                DeviceState {
                    spec: d.clone(),
                    index,
                    up: watch::Sender::new(true),
                    resources,
                    connection: connection::DeviceConnection::new(d, index),
                    channel_mapping,
                },
            );
            tracing::info!(device = %d.label, %id, "virtual studio: device registered");
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(StudioState {
                registry,
                devices,
                subscriptions: BTreeMap::new(),
            }),
            schemas,
            base,
            addr,
            spec,
            changes,
            ws_drop: watch::Sender::new(0),
            ws_open: watch::Sender::new(0),
            log: Mutex::new(Vec::new()),
            log_seq: watch::Sender::new(0),
            faults: Mutex::new(Faults::default()),
            instance_id: spec::stable_id("query-api"),
            shutdown: watch::Sender::new(false),
        });
        let app = Router::new()
            .route("/ws", axum::routing::get(subscriptions::ws_handler))
            .route("/ws/", axum::routing::get(subscriptions::ws_handler))
            .fallback(dispatch)
            .with_state(shared.clone());
        let mut stop = shared.shutdown.subscribe();
        let server = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "virtual studio server failed");
            }
        });
        tracing::info!(%addr, "virtual studio listening");
        Ok(StudioHandle {
            shared,
            server: Arc::new(Mutex::new(Some(server))),
        })
    }
}

/// Controls a running studio; cheap to clone.
#[derive(Debug, Clone)]
pub struct StudioHandle {
    shared: Arc<Shared>,
    server: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl StudioHandle {
    /// The Query API base, `http://127.0.0.1:PORT/x-nmos/query/`.
    pub fn query_url(&self) -> String {
        format!("{}/x-nmos/query/", self.shared.base)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        self.shared.base.clone()
    }

    /// A device's IS-05 v1.1 base (`…/dev/{id}/x-nmos/connection/v1.1`, no trailing slash).
    pub fn connection_url(&self, device: Uuid) -> String {
        format!("{}/dev/{device}/x-nmos/connection/v1.1", self.shared.base)
    }

    /// A device's IS-08 v1.0 base (`…/dev/{id}/x-nmos/channelmapping/v1.0`, no trailing slash).
    pub fn channel_mapping_url(&self, device: Uuid) -> String {
        format!(
            "{}/dev/{device}/x-nmos/channelmapping/v1.0",
            self.shared.base
        )
    }

    /// The spec the studio runs.
    pub fn spec(&self) -> &StudioSpec {
        &self.shared.spec
    }

    /// A device's id by label.
    pub fn device_id(&self, label: &str) -> Option<Uuid> {
        self.shared
            .spec
            .devices
            .iter()
            .find(|d| d.label == label)
            .map(spec::device_id)
    }

    /// A sender's id by label (`"CAM1"`), or by `"DEVICE/LABEL"` when labels repeat.
    pub fn sender_id(&self, label: &str) -> Option<Uuid> {
        self.endpoint_id(label, true)
    }

    /// A receiver's id by label, or by `"DEVICE/LABEL"`.
    pub fn receiver_id(&self, label: &str) -> Option<Uuid> {
        self.endpoint_id(label, false)
    }

    fn endpoint_id(&self, label: &str, senders: bool) -> Option<Uuid> {
        let (dev_label, ep_label) = match label.split_once('/') {
            Some((d, e)) => (Some(d), e),
            None => (None, label),
        };
        self.shared
            .spec
            .devices
            .iter()
            .filter(|d| dev_label.is_none_or(|l| d.label == l))
            .find_map(|d| {
                if senders {
                    d.senders
                        .iter()
                        .find(|s| s.label == ep_label)
                        .map(|s| spec::sender_id(d, s))
                } else {
                    d.receivers
                        .iter()
                        .find(|r| r.label == ep_label)
                        .map(|r| spec::receiver_id(d, r))
                }
            })
    }

    /// The requests received (the last [`REQUEST_LOG_LIMIT`]), in order of completion.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets the logged requests.
    pub fn clear_requests(&self) {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Waits until the log holds a request matching `pred` (one already there counts) and
    /// returns it; `None` after `timeout`.
    pub async fn wait_for_request(
        &self,
        pred: impl Fn(&RequestRecord) -> bool,
        timeout: Duration,
    ) -> Option<RequestRecord> {
        let mut seq = self.shared.log_seq.subscribe();
        let find = || self.requests().into_iter().find(|r| pred(r));
        tokio::time::timeout(timeout, async {
            loop {
                if let Some(r) = find() {
                    return Some(r);
                }
                if seq.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// A resource as the registry holds it now.
    pub fn resource(&self, kind: ResourceType, id: Uuid) -> Option<Value> {
        self.shared.lock().registry.get(kind, id).cloned()
    }

    /// Waits until the registry's view of a resource satisfies `pred` (`None` = not
    /// registered), checking now and after every change to it; false after `timeout`.
    pub async fn wait_for_resource(
        &self,
        kind: ResourceType,
        id: Uuid,
        pred: impl Fn(Option<&Value>) -> bool,
        timeout: Duration,
    ) -> bool {
        let mut rx = self.shared.changes.subscribe();
        if pred(self.resource(kind, id).as_ref()) {
            return true;
        }
        tokio::time::timeout(timeout, async {
            loop {
                match rx.recv().await {
                    Ok(c) if c.kind == kind && c.id == id => {
                        if pred(c.post.as_ref()) {
                            return true;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if pred(self.resource(kind, id).as_ref()) {
                            return true;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return false,
                }
            }
        })
        .await
        .unwrap_or(false)
    }

    /// A receiver's IS-05 `/active`.
    pub fn receiver_active(&self, id: Uuid) -> Option<Value> {
        self.endpoint_state(id, false, true)
    }

    /// A receiver's IS-05 `/staged`.
    pub fn receiver_staged(&self, id: Uuid) -> Option<Value> {
        self.endpoint_state(id, false, false)
    }

    /// A sender's IS-05 `/active`.
    pub fn sender_active(&self, id: Uuid) -> Option<Value> {
        self.endpoint_state(id, true, true)
    }

    /// A sender's IS-05 `/staged`.
    pub fn sender_staged(&self, id: Uuid) -> Option<Value> {
        self.endpoint_state(id, true, false)
    }

    fn endpoint_state(&self, id: Uuid, sender: bool, active: bool) -> Option<Value> {
        let st = self.shared.lock();
        st.devices
            .values()
            .find_map(|d| d.connection.endpoint(id, sender))
            .map(|e| {
                if active {
                    e.active.clone()
                } else {
                    e.staged.clone()
                }
            })
    }

    /// A device's IS-08 `map/active` body (`{"activation", "map"}`).
    pub fn channel_map_active(&self, device: Uuid) -> Option<Value> {
        let st = self.shared.lock();
        st.devices
            .get(&device)?
            .channel_mapping
            .as_ref()
            .map(|cm| cm.active_json())
    }

    /// Installs a fault; the first installed fault matching a request applies.
    pub fn set_fault(&self, target: FaultTarget, fault: Fault) {
        tracing::info!(?target, ?fault, "virtual studio: fault set");
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set(target, fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Unregisters a device (node, device, sources, flows, senders, receivers) and makes its
    /// APIs stop answering: requests hang until it is restored (at most 60 s, then 503), as
    /// with a node that vanished from the network. Its IS-05/IS-08 state is kept. False if
    /// unknown or already removed.
    pub fn remove_device(&self, id: Uuid) -> bool {
        self.with_device(id, true, |registry, dev| {
            dev.up.send_replace(false);
            unregister(registry, dev);
            tracing::info!(device = %dev.spec.label, %id, "virtual studio: device removed");
        })
    }

    /// Re-registers a removed device with the same ids and makes it answer again.
    pub fn restore_device(&self, id: Uuid) -> bool {
        self.with_device(id, false, |registry, dev| {
            register(registry, dev);
            dev.up.send_replace(true);
            tracing::info!(device = %dev.spec.label, %id, "virtual studio: device restored");
        })
    }

    /// Deletes and re-adds a device's resources in quick succession, as a restarting node does
    /// (same ids; the subscriptions see removals then additions). False if unknown or removed.
    pub fn reregister_device(&self, id: Uuid) -> bool {
        self.with_device(id, true, |registry, dev| {
            unregister(registry, dev);
            register(registry, dev);
            tracing::info!(device = %dev.spec.label, %id, "virtual studio: device re-registered");
        })
    }

    /// Restarts a device: unregisters it, resets its IS-05 state (receivers disconnected,
    /// senders back to their initial parameters) and its IS-08 map to the initial one (pending
    /// activations dropped), and registers it again with the same ids, as a real node that
    /// reboots. False if unknown or removed.
    pub fn restart_device(&self, id: Uuid) -> bool {
        let shared = &self.shared;
        self.with_device(id, true, |registry, dev| {
            unregister(registry, dev);
            dev.connection = connection::DeviceConnection::new(&dev.spec, dev.index);
            if let Some(cm) = dev.channel_mapping.as_mut()
                && let Err(e) = cm.reset()
            {
                tracing::warn!(device = %dev.spec.label, error = %e, "virtual studio: IS-08 reset failed");
            }
            dev.resources = resources::device_resources(
                &shared.base,
                shared.addr.port(),
                &dev.spec,
                shared.spec.advertise_sr_ctrl_v1_2,
            );
            register(registry, dev);
            tracing::info!(device = %dev.spec.label, %id, "virtual studio: device restarted");
        })
    }

    /// Runs `f` on device `id` (with the registry) when it is known and its `up` state is
    /// `up`; false, changing nothing, otherwise.
    fn with_device(
        &self,
        id: Uuid,
        up: bool,
        f: impl FnOnce(&mut Registry, &mut DeviceState),
    ) -> bool {
        let mut st = self.shared.lock();
        let StudioState {
            registry, devices, ..
        } = &mut *st;
        match devices.get_mut(&id) {
            Some(dev) if *dev.up.borrow() == up => {
                f(registry, dev);
                true
            }
            _ => false,
        }
    }

    /// Closes every subscription WebSocket (non-persistent subscriptions go with them).
    pub fn drop_websockets(&self) {
        tracing::info!("virtual studio: dropping every WebSocket");
        self.shared.ws_drop.send_modify(|g| *g += 1);
    }

    /// The number of open subscription WebSockets.
    pub fn websocket_count(&self) -> usize {
        *self.shared.ws_open.borrow()
    }

    /// Waits until the number of open WebSockets satisfies `pred`; false after `timeout`.
    pub async fn wait_for_websockets(
        &self,
        pred: impl Fn(usize) -> bool,
        timeout: Duration,
    ) -> bool {
        let mut rx = self.shared.ws_open.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| pred(*n)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Closes the WebSockets and stops the server (waits up to 2 s for it).
    pub async fn shutdown(&self) {
        self.drop_websockets();
        self.shared.shutdown.send_replace(true);
        let task = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        tracing::info!("virtual studio stopped");
    }
}

/// Takes a device's resources out of the registry (children first), keeping their last state.
fn unregister(registry: &mut Registry, dev: &mut DeviceState) {
    for (kind, id, value) in dev.resources.iter_mut().rev() {
        if let Some(v) = registry.remove(*kind, *id) {
            *value = v;
        }
    }
}

/// Puts a device's resources back (parents first), senders' and receivers' `subscription` as
/// their IS-05 state is now (a scheduled activation may have fired while unregistered).
fn register(registry: &mut Registry, dev: &mut DeviceState) {
    for (kind, id, value) in dev.resources.iter_mut() {
        let ep = match kind {
            ResourceType::Senders => dev.connection.endpoint(*id, true),
            ResourceType::Receivers => dev.connection.endpoint(*id, false),
            _ => None,
        };
        if let Some(ep) = ep {
            value["subscription"] = ep.subscription();
        }
        registry.add(*kind, *id, value.clone());
        if let Some(v) = registry.get(*kind, *id) {
            *value = v.clone();
        }
    }
}

/// When a scheduled activation happens (TAI) and how long from now: `requested` is an instant
/// (`absolute`) or a delay from now. `None` if the time cannot be represented.
pub(crate) fn activation_instant(
    absolute: bool,
    requested: crate::nmos::tai::TaiTime,
) -> Option<(crate::nmos::tai::TaiTime, Duration)> {
    let now = crate::nmos::tai::TaiTime::now().as_duration();
    let at = if absolute {
        requested.as_duration()
    } else {
        now.checked_add(requested.as_duration())?
    };
    Some((at.into(), at.saturating_sub(now)))
}

/// Parses a query string into pairs (percent-decoded).
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else {
        return Vec::new();
    };
    match reqwest::Url::parse(&format!("http://x/?{q}")) {
        Ok(url) => url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The one handler for everything but the WebSocket upgrades: faults, down devices, routing,
/// logging.
async fn dispatch(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let received = Instant::now();
    let path = uri.path().to_owned();
    let query = uri.query().map(str::to_owned);
    let body_json: Option<Value> = if body.is_empty() {
        None
    } else {
        Some(
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
        )
    };
    let body_is_json = body.is_empty() || serde_json::from_slice::<Value>(&body).is_ok();
    let reply = handle(
        &shared,
        &method,
        &path,
        query.as_deref(),
        body_json.as_ref(),
        body_is_json,
    )
    .await;
    tracing::debug!(%method, %path, status = reply.status, "virtual studio request");
    // Browser controllers (nmos-js) need CORS, as on real NMOS APIs.
    let reply = reply
        .header("Access-Control-Allow-Origin", "*")
        .header(
            "Access-Control-Allow-Methods",
            "GET, PUT, POST, PATCH, HEAD, OPTIONS, DELETE",
        )
        .header(
            "Access-Control-Allow-Headers",
            "Content-Type, Accept, Authorization",
        )
        .header("Access-Control-Max-Age", "3600");
    record(
        &shared,
        RequestRecord {
            method: method.to_string(),
            path,
            query,
            body: body_json,
            status: reply.status,
            received,
        },
    );
    reply.into_http()
}

/// Appends to the request log and wakes the waiters.
pub(crate) fn record(shared: &Shared, rec: RequestRecord) {
    {
        let mut log = shared.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() >= REQUEST_LOG_LIMIT {
            let excess = log.len() + 1 - REQUEST_LOG_LIMIT;
            log.drain(..excess);
        }
        log.push(rec);
    }
    shared.log_seq.send_modify(|n| *n += 1);
}

/// The device a path addresses, if it is under `/dev/{id}/`.
fn device_in_path(path: &str) -> Option<Uuid> {
    let rest = path.strip_prefix("/dev/")?;
    let id = rest.split('/').next()?;
    Uuid::parse_str(id).ok()
}

async fn handle(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: Option<&Value>,
    body_is_json: bool,
) -> Reply {
    let action = shared
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take(method.as_str(), path);
    match action {
        FaultAction::Status(code) => {
            tracing::info!(%method, path, code, "virtual studio: injected fault status");
            return Reply::error(
                code,
                format!("injected fault: {code}"),
                Some("virtual studio fault injection".to_owned()),
            );
        }
        FaultAction::Delay(d) => {
            tracing::info!(%method, path, ?d, "virtual studio: injected delay");
            tokio::time::sleep(d).await;
        }
        FaultAction::None => {}
    }
    if let Some(dev) = device_in_path(path) {
        let up = shared.lock().devices.get(&dev).map(|d| d.up.subscribe());
        if let Some(mut up) = up
            && !*up.borrow()
        {
            tracing::info!(%method, path, "virtual studio: request to a removed device hangs");
            let back = tokio::time::timeout(DOWN_DEVICE_HANG, up.wait_for(|u| *u)).await;
            if !matches!(back, Ok(Ok(_))) {
                return Reply::error(503, "device is not available", None);
            }
        }
    }
    if method == Method::OPTIONS {
        return Reply::empty(200);
    }
    if method != Method::GET && method != Method::HEAD && path.len() > 1 && path.ends_with('/') {
        return Reply::error(
            404,
            format!("{method} {path}: no trailing slash is allowed on {method} requests"),
            None,
        );
    }
    if (method == Method::PATCH || method == Method::POST) && !body_is_json {
        return Reply::error(400, "request body is not valid JSON", None);
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let params = query_pairs(query);
    match segs.as_slice() {
        [] => route_get(method, Reply::children(&["x-nmos/"])),
        ["x-nmos"] => route_get(method, Reply::children(&["query/"])),
        ["x-nmos", "query", rest @ ..] => query::route(shared, method, rest, &params, body),
        ["dev", dev, rest @ ..] => {
            let Ok(dev) = Uuid::parse_str(dev) else {
                return Reply::not_found(path);
            };
            route_device(shared, dev, method, rest, body, path)
        }
        _ => Reply::not_found(path),
    }
}

/// GET-only levels of a tree.
pub(crate) fn route_get(method: &Method, reply: Reply) -> Reply {
    if method == Method::GET || method == Method::HEAD {
        reply
    } else {
        Reply::method_not_allowed(method.as_str(), "GET")
    }
}

fn route_device(
    shared: &Arc<Shared>,
    dev: Uuid,
    method: &Method,
    rest: &[&str],
    body: Option<&Value>,
    path: &str,
) -> Reply {
    let (has_cm, label) = {
        let st = shared.lock();
        match st.devices.get(&dev) {
            Some(d) => (d.channel_mapping.is_some(), d.spec.label.clone()),
            None => return Reply::not_found(path),
        }
    };
    tracing::debug!(device = %label, %method, path, "virtual studio: device request");
    match rest {
        [] => route_get(method, Reply::children(&["x-nmos/"])),
        ["x-nmos"] => {
            if has_cm {
                route_get(method, Reply::children(&["connection/", "channelmapping/"]))
            } else {
                route_get(method, Reply::children(&["connection/"]))
            }
        }
        ["x-nmos", "connection"] => route_get(method, Reply::children(&["v1.1/"])),
        ["x-nmos", "connection", "v1.1", rest @ ..] => {
            connection::route(shared, dev, method, rest, body)
        }
        ["x-nmos", "channelmapping", rest @ ..] if has_cm => match rest {
            [] => route_get(method, Reply::children(&["v1.0/"])),
            ["v1.0", rest @ ..] => channel_mapping::route(shared, dev, method, rest, body),
            _ => Reply::not_found(path),
        },
        _ => Reply::not_found(path),
    }
}
