//! The IS-05 v1.1 Connection API client the take engine drives (reference `nmos.md` §6).
//!
//! - READY: [`ConnectionClient::transport_file`] fetches the sender's SDP, then
//!   [`ConnectionClient::stage`] PATCHes the receiver's `/staged` with `sender_id`,
//!   `master_enable: true` and the transport file, **without** activation.
//! - EXECUTE: [`ConnectionClient::prepare_take`] builds and schema-validates every request
//!   body once (so the take engine may prepare at READY), [`ConnectionClient::execute`] sends
//!   them all concurrently: one PATCH per receiver restating everything READY staged
//!   (`sender_id`, `master_enable`, `transport_file`, the RTP legs) with the activation
//!   (immediate or scheduled absolute), or one `POST bulk/receivers` for the receivers behind
//!   one Connection API when it offers `bulk/` (checked with `GET {api}`, cached per API
//!   base). [`ConnectionClient::activate`] fetches the transport files and does both.
//!   The take restates the transport file because `/staged` belongs to the receiver, not to
//!   the item: another item readied or taken on the same receiver since this item's READY
//!   has overwritten it, and a take that restated only `sender_id` would activate this
//!   item's sender with the other item's stream.
//! - Failures: after any 4xx/5xx the client re-reads `/staged` and `/active` and puts the real
//!   state in the error ([`Is05Error::state`]). `423` (a pending scheduled activation) is
//!   [`Is05Error::Locked`]; with [`On423::Clear`] the pending activation is cancelled
//!   (`{"activation": {"mode": null}}`) and the request repeated once.
//!
//! ## Rollback (all-or-nothing takes)
//!
//! With [`Is05Settings::take_all_or_nothing`], [`ConnectionClient::take`] first reads each
//! receiver's `/active` (concurrently, right before the take: a take prepared at READY may
//! be executed long after, when another item is on air) and keeps its `sender_id`,
//! `master_enable` and `transport_file`. When any receiver of the take fails, it undoes the
//! receivers that succeeded, in parallel:
//!
//! - an immediate activation that was applied: PATCH the previous `sender_id`,
//!   `master_enable` and `transport_file` (when it was a complete `{data, type}` pair) with
//!   `activate_immediate`; when the previous state could not be read, the receiver is
//!   disconnected instead (`master_enable: false`, `sender_id: null`): off air is safer than a
//!   half-taken salvo whose previous state is unknown;
//! - a scheduled activation that was accepted (202, still pending): cancel it
//!   (`{"activation": {"mode": null}}`), which leaves `/active` untouched.
//!
//! Rollback results are reported per receiver next to the take results ([`TakeReport`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use super::http::{HttpError, HttpReply, NmosHttp, api_key, checked, join_url};
use super::is04::Urn;
use super::plan::Connection;
use super::schemas::SchemaSet;
use super::tai::TaiTime;

/// When to activate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `activate_immediate`.
    Immediate,
    /// `activate_scheduled_absolute` at a TAI instant.
    ScheduledAbsolute(TaiTime),
}

impl Activation {
    /// The `activation` object of a request body (IS-05 and IS-08 share the shape).
    pub fn to_json(self) -> Value {
        match self {
            Activation::Immediate => {
                json!({"mode": "activate_immediate", "requested_time": null})
            }
            Activation::ScheduledAbsolute(at) => {
                json!({"mode": "activate_scheduled_absolute", "requested_time": at.to_string()})
            }
        }
    }
}

/// What to do when a receiver answers 423: the configuration's `on_423` itself.
pub use crate::config::nmos::On423;

/// IS-05 client behaviour (`on_423`, `take_all_or_nothing` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Is05Settings {
    /// 423 handling.
    pub on_423: On423,
    /// Undo the receivers that succeeded when another receiver of the take failed.
    pub take_all_or_nothing: bool,
    /// Use `bulk/receivers` where offered (two or more receivers on one API).
    pub use_bulk: bool,
}

impl Default for Is05Settings {
    fn default() -> Self {
        Is05Settings {
            on_423: On423::Report,
            take_all_or_nothing: false,
            use_bulk: true,
        }
    }
}

/// A sender's transport file, as a receiver's `transport_file` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportFile {
    /// The file text, as received.
    pub data: String,
    /// Its media type (`application/sdp`).
    pub media_type: String,
}

impl TransportFile {
    /// `{"data": …, "type": …}`.
    pub fn to_json(&self) -> Value {
        json!({"data": self.data, "type": self.media_type})
    }
}

/// A receiver's `/staged` and `/active` as re-read from the device.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverState {
    /// `GET single/receivers/{id}/staged`.
    pub staged: Value,
    /// `GET single/receivers/{id}/active`.
    pub active: Value,
}

/// The sender a receiver is really taking (`/active`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSender {
    /// `sender_id` (`None` = null).
    pub sender_id: Option<String>,
    /// `master_enable`.
    pub master_enable: bool,
}

/// A failed IS-05 operation.
#[derive(Debug, thiserror::Error)]
pub enum Is05Error {
    /// The body did not validate against the official schema; nothing was sent.
    #[error("{url}: request body is not schema-valid, not sent: {}", problems.join("; "))]
    Invalid { url: String, problems: Vec<String> },
    /// 423: the receiver is locked by a pending scheduled activation.
    #[error("locked by a pending scheduled activation: {source}")]
    Locked {
        #[source]
        source: HttpError,
        /// The state re-read after the failure (`None` if the re-read failed too).
        state: Option<Box<ReceiverState>>,
    },
    /// Any other failure (status ≥ 400, timeout, transport, undecodable body).
    #[error("{source}")]
    Failed {
        #[source]
        source: HttpError,
        /// The state re-read after a 4xx/5xx (`None` for transport failures or if the
        /// re-read failed too).
        state: Option<Box<ReceiverState>>,
    },
    /// A bulk answer that does not mention the receiver.
    #[error("POST {url}: no result for receiver {receiver_id} in the bulk answer")]
    MissingBulkResult { url: String, receiver_id: String },
}

/// A failed request with no state re-read.
impl From<HttpError> for Is05Error {
    fn from(source: HttpError) -> Self {
        Is05Error::Failed {
            source,
            state: None,
        }
    }
}

impl Is05Error {
    /// The receiver state re-read after the failure, when there is one.
    pub fn state(&self) -> Option<&ReceiverState> {
        match self {
            Is05Error::Locked { state, .. } | Is05Error::Failed { state, .. } => state.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status the device answered, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Is05Error::Locked { source, .. } | Is05Error::Failed { source, .. } => source.status(),
            _ => None,
        }
    }

    /// Whether this is a 423.
    pub fn is_locked(&self) -> bool {
        matches!(self, Is05Error::Locked { .. })
    }

    /// Short reason for a status text: the device's `error`, or the message.
    pub fn reason(&self) -> String {
        match self {
            Is05Error::Locked { source, .. } => {
                format!("locked by a pending activation: {}", source.reason())
            }
            Is05Error::Failed { source, .. } => source.reason(),
            other => other.to_string(),
        }
    }
}

/// One receiver activated (or its scheduled activation accepted).
#[derive(Debug, Clone, PartialEq)]
pub struct Activated {
    /// The receiver.
    pub receiver_id: String,
    /// `true` for 202 (scheduled, pending), `false` for 200 (applied).
    pub scheduled: bool,
    /// `activation.activation_time` from a single PATCH response.
    pub activation_time: Option<TaiTime>,
}

/// Per receiver, in the order of the connections given.
pub type TakeResults = Vec<(String, Result<Activated, Is05Error>)>;

/// A take and, when it was all-or-nothing and something failed, its rollback.
#[derive(Debug)]
pub struct TakeReport {
    /// Per receiver results of the take.
    pub results: TakeResults,
    /// Per receiver results of the rollback (empty when nothing was rolled back).
    pub rolled_back: Vec<(String, Result<(), Is05Error>)>,
}

impl TakeReport {
    /// Whether every receiver succeeded.
    pub fn all_ok(&self) -> bool {
        self.results.iter().all(|(_, r)| r.is_ok())
    }
}

/// One receiver's prepared PATCH.
#[derive(Debug, Clone)]
struct SingleRequest {
    /// Position in the connections given.
    index: usize,
    receiver_id: String,
    api: String,
    url: String,
    body: Bytes,
    auth: bool,
}

/// Requests going to one Connection API.
#[derive(Debug, Clone)]
enum TakeGroup {
    Single(SingleRequest),
    Bulk {
        url: String,
        body: Bytes,
        auth: bool,
        items: Vec<SingleRequest>,
    },
}

/// A take ready to send: URLs and bodies built and validated ([`ConnectionClient::prepare_take`]).
#[derive(Debug, Clone)]
pub struct PreparedTake {
    groups: Vec<TakeGroup>,
    /// Receivers whose body failed validation (never sent).
    invalid: Vec<(usize, String, Vec<String>, String)>,
    /// Receiver id → (API base, auth), for rollback.
    targets: HashMap<String, (String, bool)>,
    count: usize,
}

impl PreparedTake {
    /// Number of bulk requests (for logs and tests).
    pub fn bulk_requests(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| matches!(g, TakeGroup::Bulk { .. }))
            .count()
    }
}

/// The transport files of a take's senders, by sender ID, as fetched for READY (or for an
/// EXECUTE without READY): what the receivers are staged with and what the take restates.
pub type TransportFiles = HashMap<String, Option<TransportFile>>;

/// The body that points a receiver at `conn`'s sender: `sender_id`, `master_enable`, the
/// transport file (nulls when there is none) and, for RTP, one `rtp_enabled` per receiver
/// leg (IS-04 interface_bindings), restated every time; a single-leg sender on a 2022-7
/// receiver enables the first leg only. No activation.
fn connection_body(conn: &Connection, transport_file: Option<&TransportFile>) -> Value {
    let tf = transport_file
        .map(TransportFile::to_json)
        .unwrap_or_else(|| json!({"data": null, "type": null}));
    let mut body = json!({
        "sender_id": conn.sender_id,
        "master_enable": conn.sender_id.is_some(),
        "transport_file": tf,
    });
    if conn.sender_id.is_some() && Urn::parse(&conn.transport).base == "urn:x-nmos:transport:rtp" {
        let legs = conn.receiver_legs.max(1);
        let sender_legs = transport_file
            .map_or(1, |t| sdp_media_count(&t.data))
            .max(1);
        let params: Vec<Value> = (0..legs)
            .map(|leg| json!({"rtp_enabled": leg < sender_legs}))
            .collect();
        body["transport_params"] = Value::Array(params);
    }
    body
}

/// The IS-05 client. Clone-cheap; clones share the HTTP pool and the bulk cache.
#[derive(Debug, Clone)]
pub struct ConnectionClient {
    http: NmosHttp,
    schemas: Arc<SchemaSet>,
    settings: Is05Settings,
    /// API base (no trailing slash) → whether `GET {api}` lists `bulk/`.
    bulk: Arc<Mutex<HashMap<String, bool>>>,
}

/// Number of media descriptions (`m=` lines) in an SDP: the sender's legs (2 for SMPTE 2022-7).
fn sdp_media_count(sdp: &str) -> usize {
    sdp.lines().filter(|l| l.starts_with("m=")).count()
}

/// `{api}single/receivers/{id}/{leaf}`.
fn receiver_url(api: &str, receiver_id: &str, leaf: &str) -> String {
    join_url(api, &format!("single/receivers/{receiver_id}/{leaf}"))
}

/// API base without trailing slash (the grouping and cache key).
fn to_bytes(body: &Value) -> Bytes {
    Bytes::from(body.to_string())
}

impl ConnectionClient {
    /// A client on the shared HTTP client and schema set.
    pub fn new(http: NmosHttp, schemas: Arc<SchemaSet>, settings: Is05Settings) -> Self {
        ConnectionClient {
            http,
            schemas,
            settings,
            bulk: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Is05Settings {
        &self.settings
    }

    /// The sender's transport file: `GET manifest_href`, else
    /// `{sender_connection_api}single/senders/{id}/transportfile` (redirects followed),
    /// with a bearer token when the sender's device's control requires one.
    /// `Ok(None)` for a disconnect and for transports without one (WebSocket, MQTT), or an
    /// unknown transport with no manifest.
    pub async fn transport_file(
        &self,
        conn: &Connection,
    ) -> Result<Option<TransportFile>, Is05Error> {
        let Some(sender_id) = &conn.sender_id else {
            return Ok(None);
        };
        let base = Urn::parse(&conn.transport).base;
        let is_rtp = base == "urn:x-nmos:transport:rtp";
        let no_file = matches!(
            base,
            "urn:x-nmos:transport:websocket" | "urn:x-nmos:transport:mqtt"
        );
        if no_file {
            return Ok(None);
        }
        let url = match (&conn.sender_manifest_href, &conn.sender_connection_api) {
            (Some(href), _) if !href.is_empty() => href.clone(),
            (_, Some(api)) if is_rtp => {
                join_url(api, &format!("single/senders/{sender_id}/transportfile"))
            }
            _ if is_rtp => {
                return Err(Is05Error::Failed {
                    source: HttpError::Refused {
                        method: Method::GET,
                        url: String::new(),
                        reason: format!(
                            "sender {sender_id} has neither a manifest_href nor a Connection API"
                        ),
                    },
                    state: None,
                });
            }
            _ => return Ok(None),
        };
        let reply = self
            .http
            .get_reply(&url, conn.sender_authorization)
            .await
            .and_then(|r| checked(Method::GET, &url, r))
            .map_err(Is05Error::from)?;
        let media_type = reply
            .content_type
            .as_deref()
            .and_then(|ct| ct.split(';').next())
            .map(|ct| ct.trim().to_ascii_lowercase())
            .filter(|ct| !ct.is_empty() && ct != "application/octet-stream")
            .unwrap_or_else(|| "application/sdp".to_owned());
        Ok(Some(TransportFile {
            data: reply.text(),
            media_type,
        }))
    }

    /// READY: stages the connection without activating it. The body is
    /// `{"sender_id", "master_enable": true, "transport_file"}` (`transport_file` nulls when
    /// there is none); for a disconnect, `sender_id: null, master_enable: false`. Returns the
    /// staged set the device answered.
    pub async fn stage(
        &self,
        conn: &Connection,
        transport_file: Option<&TransportFile>,
    ) -> Result<Value, Is05Error> {
        self.patch_conn(conn, &connection_body(conn, transport_file))
            .await
    }

    /// The transport file of every distinct sender of `conns` (one GET each, concurrently).
    /// Err names the first sender whose file could not be fetched.
    pub async fn transport_files(
        &self,
        conns: &[Connection],
    ) -> Result<TransportFiles, (String, Is05Error)> {
        let mut files = TransportFiles::new();
        for (sender, file) in self.fetch_transport_files(conns).await {
            files.insert(sender.clone(), file.map_err(|e| (sender, e))?);
        }
        Ok(files)
    }

    /// Each distinct sender of `conns` with its transport file or why it could not be had
    /// (one GET per sender, concurrently), in the order of `conns`.
    async fn fetch_transport_files(
        &self,
        conns: &[Connection],
    ) -> Vec<(String, Result<Option<TransportFile>, Is05Error>)> {
        let mut senders: Vec<&Connection> = Vec::new();
        for c in conns {
            if c.sender_id.is_some() && !senders.iter().any(|s| s.sender_id == c.sender_id) {
                senders.push(c);
            }
        }
        join_all(senders.iter().map(|c| async move {
            let sender = c.sender_id.clone().unwrap_or_default();
            (sender, self.transport_file(c).await)
        }))
        .await
    }

    /// PATCHes `body` to the connection's receiver's `/staged`.
    async fn patch_conn(&self, conn: &Connection, body: &Value) -> Result<Value, Is05Error> {
        self.patch_staged(
            &conn.connection_api,
            &conn.receiver_id,
            body,
            conn.authorization,
        )
        .await
    }

    /// Disconnects the receiver now: `master_enable: false`, `sender_id: null`, transport file
    /// cleared, `activate_immediate`.
    pub async fn disconnect(&self, conn: &Connection) -> Result<Value, Is05Error> {
        self.patch_conn(conn, &disconnect_body()).await
    }

    /// Cancels the receiver's pending scheduled activation (`{"activation": {"mode": null}}`);
    /// `/active` is left as it is.
    pub async fn cancel_scheduled(&self, conn: &Connection) -> Result<Value, Is05Error> {
        self.patch_conn(conn, &cancel_body()).await
    }

    /// Reads a receiver's `/staged` and `/active` (concurrently).
    pub async fn read_state(
        &self,
        api: &str,
        receiver_id: &str,
        auth: bool,
    ) -> Result<ReceiverState, HttpError> {
        let staged_url = receiver_url(api, receiver_id, "staged");
        let active_url = receiver_url(api, receiver_id, "active");
        let (staged, active) = tokio::join!(
            self.http.get_json::<Value>(&staged_url, auth),
            self.http.get_json::<Value>(&active_url, auth)
        );
        Ok(ReceiverState {
            staged: staged?,
            active: active?,
        })
    }

    /// The sender a receiver is really taking and its `master_enable` (`GET /active`), to
    /// confirm PLAY.
    pub async fn active_sender(
        &self,
        api: &str,
        receiver_id: &str,
        auth: bool,
    ) -> Result<ActiveSender, HttpError> {
        let url = receiver_url(api, receiver_id, "active");
        let active: Value = self.http.get_json(&url, auth).await?;
        Ok(active_sender_of(&active))
    }

    /// EXECUTE in one call: the senders' transport files ([`Self::transport_files`]), then
    /// [`Self::prepare_take`] and [`Self::execute`]. Results per receiver, in the order
    /// given; a receiver whose sender's transport file could not be fetched is not sent
    /// anything (its result says why).
    pub async fn activate(&self, conns: &[Connection], activation: Activation) -> TakeResults {
        let mut files = TransportFiles::new();
        for (sender, file) in self.fetch_transport_files(conns).await {
            match file {
                Ok(file) => {
                    files.insert(sender, file);
                }
                Err(e) => tracing::warn!(sender, error = %e, "no transport file: not taken"),
            }
        }
        let prepared = self.prepare_take(conns, &files, activation).await;
        self.execute(&prepared).await
    }

    /// Builds and validates every request of a take: one body per receiver restating all
    /// that READY stages (`sender_id`, `master_enable`, the sender's transport file from
    /// `files`, the RTP legs) with the activation; receivers sharing a Connection API that
    /// offers `bulk/` are grouped into one bulk POST. A receiver whose sender has no entry
    /// in `files` is not sent anything (reported invalid). Nothing is activated.
    pub async fn prepare_take(
        &self,
        conns: &[Connection],
        files: &TransportFiles,
        activation: Activation,
    ) -> PreparedTake {
        let activation_json = activation.to_json();
        let mut invalid = Vec::new();
        let mut by_api: BTreeMap<String, Vec<SingleRequest>> = BTreeMap::new();
        let mut targets = HashMap::new();
        for (index, conn) in conns.iter().enumerate() {
            let url = receiver_url(&conn.connection_api, &conn.receiver_id, "staged");
            targets.insert(
                conn.receiver_id.clone(),
                (conn.connection_api.clone(), conn.authorization),
            );
            let file = match &conn.sender_id {
                None => None,
                Some(sender) => match files.get(sender) {
                    Some(file) => file.as_ref(),
                    None => {
                        let problem = format!("no transport file fetched for sender {sender}");
                        invalid.push((index, conn.receiver_id.clone(), vec![problem], url));
                        continue;
                    }
                },
            };
            let mut body = connection_body(conn, file);
            body["activation"] = activation_json.clone();
            if let Err(problems) = self.schemas.validate_is05_staged_patch(&body) {
                tracing::warn!(url, ?problems, "IS-05 take body not schema-valid");
                invalid.push((index, conn.receiver_id.clone(), problems, url));
                continue;
            }
            by_api
                .entry(api_key(&conn.connection_api))
                .or_default()
                .push(SingleRequest {
                    index,
                    receiver_id: conn.receiver_id.clone(),
                    api: conn.connection_api.clone(),
                    url,
                    body: to_bytes(&body),
                    auth: conn.authorization,
                });
        }
        let mut groups = Vec::new();
        for (api, items) in by_api {
            let distinct: HashSet<&str> = items.iter().map(|i| i.receiver_id.as_str()).collect();
            let auth = items.iter().any(|i| i.auth);
            let bulk = self.settings.use_bulk
                && items.len() > 1
                && distinct.len() == items.len()
                && self.bulk_offered(&api, auth).await;
            if !bulk {
                groups.extend(items.into_iter().map(TakeGroup::Single));
                continue;
            }
            let body = Value::Array(
                items
                    .iter()
                    .map(|i| {
                        let params: Value = serde_json::from_slice(&i.body).unwrap_or(Value::Null);
                        json!({"id": i.receiver_id, "params": params})
                    })
                    .collect(),
            );
            let url = join_url(&api, "bulk/receivers");
            match self.schemas.validate_is05_bulk_receivers(&body) {
                Some(Err(problems)) => {
                    tracing::warn!(
                        url,
                        ?problems,
                        "IS-05 bulk body not schema-valid, sending single PATCHes"
                    );
                    groups.extend(items.into_iter().map(TakeGroup::Single));
                }
                _ => groups.push(TakeGroup::Bulk {
                    url,
                    body: to_bytes(&body),
                    auth,
                    items,
                }),
            }
        }
        PreparedTake {
            groups,
            invalid,
            targets,
            count: conns.len(),
        }
    }

    /// Sends a prepared take: every request concurrently (across devices and receivers).
    /// Results per receiver, in the order the connections were given.
    pub async fn execute(&self, take: &PreparedTake) -> TakeResults {
        let runs = take.groups.iter().map(|group| self.run_group(group));
        let mut indexed: Vec<(usize, String, Result<Activated, Is05Error>)> =
            join_all(runs).await.into_iter().flatten().collect();
        for (index, receiver_id, problems, url) in &take.invalid {
            indexed.push((
                *index,
                receiver_id.clone(),
                Err(Is05Error::Invalid {
                    url: url.clone(),
                    problems: problems.clone(),
                }),
            ));
        }
        indexed.sort_by_key(|(index, _, _)| *index);
        debug_assert_eq!(indexed.len(), take.count);
        indexed.into_iter().map(|(_, id, r)| (id, r)).collect()
    }

    /// [`Self::execute`], then, with [`Is05Settings::take_all_or_nothing`] and at least one
    /// failure, [`Self::rollback`] of the receivers that succeeded.
    pub async fn take(&self, take: &PreparedTake) -> TakeReport {
        let previous = if self.settings.take_all_or_nothing {
            self.read_previous(take).await
        } else {
            HashMap::new()
        };
        let results = self.execute(take).await;
        let failed = results.iter().any(|(_, r)| r.is_err());
        let rolled_back = if failed && self.settings.take_all_or_nothing {
            self.rollback(take, &previous, &results).await
        } else {
            Vec::new()
        };
        TakeReport {
            results,
            rolled_back,
        }
    }

    /// Undoes the receivers of `results` that succeeded (see the module documentation):
    /// applied activations get their previous `/active` back (or are disconnected when it is
    /// unknown), pending scheduled ones are cancelled.
    pub async fn rollback(
        &self,
        take: &PreparedTake,
        previous: &HashMap<String, Option<Value>>,
        results: &TakeResults,
    ) -> Vec<(String, Result<(), Is05Error>)> {
        let undo = results.iter().filter_map(|(receiver_id, result)| {
            let activated = result.as_ref().ok()?;
            let (api, auth) = take.targets.get(receiver_id)?.clone();
            let body = if activated.scheduled {
                cancel_body()
            } else {
                match previous.get(receiver_id) {
                    Some(Some(active)) => restore_body(active),
                    _ => disconnect_body(),
                }
            };
            Some(async move {
                tracing::info!(
                    receiver_id,
                    api,
                    "rolling back the receiver (all-or-nothing take failed)"
                );
                let result = self
                    .patch_staged(&api, receiver_id, &body, auth)
                    .await
                    .map(|_| ());
                (receiver_id.clone(), result)
            })
        });
        join_all(undo).await
    }

    /// Each receiver's `/active` now (concurrently), for the rollback of an all-or-nothing
    /// take; `None` where it cannot be read (the rollback then disconnects that receiver).
    async fn read_previous(&self, take: &PreparedTake) -> HashMap<String, Option<Value>> {
        let reads = take.targets.iter().map(|(receiver_id, (api, auth))| async move {
            let url = receiver_url(api, receiver_id, "active");
            let active = match self.http.get_json::<Value>(&url, *auth).await {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the receiver's state before the take; rollback would disconnect it");
                    None
                }
            };
            (receiver_id.clone(), active)
        });
        join_all(reads).await.into_iter().collect()
    }

    /// Whether the Connection API lists `bulk/` (`GET {api}`), cached per API base. A failed
    /// read counts as "no" and is not cached.
    async fn bulk_offered(&self, api: &str, auth: bool) -> bool {
        let key = api_key(api);
        if let Some(known) = self.bulk_cache().get(&key) {
            return *known;
        }
        let url = join_url(&key, "");
        match self.http.get_json::<Vec<String>>(&url, auth).await {
            Ok(children) => {
                let offered = children.iter().any(|c| c.trim_end_matches('/') == "bulk");
                self.bulk_cache().insert(key, offered);
                offered
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot list the Connection API; using single PATCHes");
                false
            }
        }
    }

    fn bulk_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        self.bulk.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one group; results carry their connection index.
    async fn run_group(
        &self,
        group: &TakeGroup,
    ) -> Vec<(usize, String, Result<Activated, Is05Error>)> {
        match group {
            TakeGroup::Single(req) => {
                let result = self.run_single(req).await;
                vec![(req.index, req.receiver_id.clone(), result)]
            }
            TakeGroup::Bulk {
                url,
                body,
                auth,
                items,
            } => self.run_bulk(url, body, *auth, items).await,
        }
    }

    /// One prepared receiver PATCH.
    async fn run_single(&self, req: &SingleRequest) -> Result<Activated, Is05Error> {
        let (status, response) = self
            .send_staged(
                &req.api,
                &req.receiver_id,
                &req.url,
                req.body.clone(),
                req.auth,
            )
            .await?;
        Ok(activated(&req.receiver_id, status, response))
    }

    /// One bulk POST and its per-receiver results.
    async fn run_bulk(
        &self,
        url: &str,
        body: &Bytes,
        auth: bool,
        items: &[SingleRequest],
    ) -> Vec<(usize, String, Result<Activated, Is05Error>)> {
        let reply = match self.http.post_json(url, body.clone(), auth).await {
            Ok(reply) => reply,
            Err(source) => {
                // Unknown outcome: report every receiver with the same error, and the state
                // of each as re-read.
                let reads = items.iter().map(|i| async {
                    let state = self.reread(&i.api, &i.receiver_id, i.auth).await;
                    let source = HttpError::Shared {
                        method: Method::POST,
                        url: url.to_owned(),
                        message: source.to_string(),
                    };
                    (
                        i.index,
                        i.receiver_id.clone(),
                        Err(Is05Error::Failed { source, state }),
                    )
                });
                return join_all(reads).await;
            }
        };
        if matches!(reply.status, 404 | 405 | 501) {
            // The API listed bulk/ but does not take it: remember and send single PATCHes.
            tracing::warn!(
                url,
                status = reply.status,
                "bulk/receivers refused; falling back to single PATCHes"
            );
            if let Some(first) = items.first() {
                self.bulk_cache().insert(api_key(&first.api), false);
            }
            let singles = items
                .iter()
                .map(|i| async { (i.index, i.receiver_id.clone(), self.run_single(i).await) });
            return join_all(singles).await;
        }
        let per_item: Result<Vec<Value>, HttpError> =
            checked(Method::POST, url, reply).and_then(|r| r.json(Method::POST, url));
        let per_item = match per_item {
            Ok(list) => list,
            Err(source) => {
                let message = source.to_string();
                let status = source.status();
                let reads = items.iter().map(|i| {
                    let message = message.clone();
                    async move {
                        let state = self.reread(&i.api, &i.receiver_id, i.auth).await;
                        let source = match status {
                            Some(status) => HttpError::Status {
                                method: Method::POST,
                                url: url.to_owned(),
                                status,
                                reason: message,
                                body: None,
                            },
                            None => HttpError::Shared {
                                method: Method::POST,
                                url: url.to_owned(),
                                message,
                            },
                        };
                        (
                            i.index,
                            i.receiver_id.clone(),
                            Err(Is05Error::Failed { source, state }),
                        )
                    }
                });
                return join_all(reads).await;
            }
        };
        let by_id: HashMap<&str, &Value> = per_item
            .iter()
            .filter_map(|v| Some((v.get("id")?.as_str()?, v)))
            .collect();
        let outcomes = items.iter().map(|i| {
            let item = by_id.get(i.receiver_id.as_str()).copied();
            async move {
                let result = match item {
                    None => Err(Is05Error::MissingBulkResult {
                        url: url.to_owned(),
                        receiver_id: i.receiver_id.clone(),
                    }),
                    Some(item) => self.bulk_item_result(url, i, item).await,
                };
                (i.index, i.receiver_id.clone(), result)
            }
        });
        join_all(outcomes).await
    }

    /// Interprets one entry of a bulk answer.
    async fn bulk_item_result(
        &self,
        url: &str,
        req: &SingleRequest,
        item: &Value,
    ) -> Result<Activated, Is05Error> {
        let code = item
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(500);
        if (200..300).contains(&code) {
            return Ok(Activated {
                receiver_id: req.receiver_id.clone(),
                scheduled: code == 202,
                activation_time: None,
            });
        }
        if code == 423 && self.settings.on_423 == On423::Clear {
            tracing::info!(
                url,
                receiver_id = req.receiver_id,
                "receiver locked in bulk: cancelling its pending activation and retrying alone"
            );
            return self.run_single(req).await;
        }
        let source = HttpError::from_status(Method::POST, url, code, &item.to_string());
        let state = self.reread(&req.api, &req.receiver_id, req.auth).await;
        Err(if code == 423 {
            Is05Error::Locked { source, state }
        } else {
            Is05Error::Failed { source, state }
        })
    }

    /// Validates and PATCHes a body to a receiver's `/staged` (423 and errors handled).
    async fn patch_staged(
        &self,
        api: &str,
        receiver_id: &str,
        body: &Value,
        auth: bool,
    ) -> Result<Value, Is05Error> {
        let url = receiver_url(api, receiver_id, "staged");
        if let Err(problems) = self.schemas.validate_is05_staged_patch(body) {
            return Err(Is05Error::Invalid { url, problems });
        }
        self.send_staged(api, receiver_id, &url, to_bytes(body), auth)
            .await
            .map(|(_, response)| response)
    }

    /// Sends a validated PATCH to `/staged`; on 423 with [`On423::Clear`] cancels the pending
    /// activation and repeats once; after a 4xx/5xx re-reads the state into the error.
    async fn send_staged(
        &self,
        api: &str,
        receiver_id: &str,
        url: &str,
        body: Bytes,
        auth: bool,
    ) -> Result<(u16, Value), Is05Error> {
        let mut reply = self.patch_once(url, body.clone(), auth).await?;
        if reply.status == 423 && self.settings.on_423 == On423::Clear {
            tracing::info!(
                url,
                "receiver locked by a pending activation: cancelling it and retrying once"
            );
            let cancel = to_bytes(&cancel_body());
            let cancelled = self.patch_once(url, cancel, auth).await?;
            if (200..300).contains(&cancelled.status) {
                reply = self.patch_once(url, body, auth).await?;
            } else {
                reply = cancelled;
            }
        }
        if (200..300).contains(&reply.status) {
            let response = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            return Ok((reply.status, response));
        }
        let source = HttpError::from_status(Method::PATCH, url, reply.status, &reply.text());
        tracing::warn!(error = %source, "IS-05 PATCH failed; re-reading the receiver's state");
        let state = self.reread(api, receiver_id, auth).await;
        Err(if reply.status == 423 {
            Is05Error::Locked { source, state }
        } else {
            Is05Error::Failed { source, state }
        })
    }

    async fn patch_once(&self, url: &str, body: Bytes, auth: bool) -> Result<HttpReply, Is05Error> {
        self.http
            .patch_json(url, body, auth)
            .await
            .map_err(Is05Error::from)
    }

    /// [`Self::read_state`] for an error report (`None` if it fails too).
    async fn reread(&self, api: &str, receiver_id: &str, auth: bool) -> Option<Box<ReceiverState>> {
        match self.read_state(api, receiver_id, auth).await {
            Ok(state) => Some(Box::new(state)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read the receiver's state");
                None
            }
        }
    }
}

/// The disconnect body.
/// The body cancelling a pending scheduled activation (`/active` is left as it is).
fn cancel_body() -> Value {
    json!({"activation": {"mode": null}})
}

fn disconnect_body() -> Value {
    json!({
        "sender_id": null,
        "master_enable": false,
        "transport_file": {"data": null, "type": null},
        "activation": {"mode": "activate_immediate", "requested_time": null},
    })
}

/// The body restoring a receiver's previous `/active` (sender, enable, transport file).
fn restore_body(active: &Value) -> Value {
    let previous = active_sender_of(active);
    let mut body = json!({
        "sender_id": previous.sender_id,
        "master_enable": previous.master_enable,
        "activation": {"mode": "activate_immediate", "requested_time": null},
    });
    if let Some(tf) = active.get("transport_file")
        && let (Some(data), Some(kind)) = (tf.get("data"), tf.get("type"))
        && ((data.is_string() && kind.is_string()) || (data.is_null() && kind.is_null()))
    {
        body["transport_file"] = json!({"data": data, "type": kind});
    }
    body
}

/// `sender_id` and `master_enable` of an `/active` body.
fn active_sender_of(active: &Value) -> ActiveSender {
    ActiveSender {
        sender_id: active
            .get("sender_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        master_enable: active
            .get("master_enable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    }
}

/// An [`Activated`] from a single PATCH status and response.
fn activated(receiver_id: &str, status: u16, response: Value) -> Activated {
    let activation_time = response
        .pointer("/activation/activation_time")
        .and_then(Value::as_str)
        .and_then(|t| TaiTime::parse(t).ok());
    Activated {
        receiver_id: receiver_id.to_owned(),
        scheduled: status == 202,
        activation_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_body_keeps_a_complete_transport_file_only() {
        let active = json!({"sender_id": "s", "master_enable": true, "transport_file": {"data": "v=0", "type": "application/sdp"}});
        assert_eq!(
            restore_body(&active)["transport_file"],
            json!({"data": "v=0", "type": "application/sdp"})
        );
        let half = json!({"sender_id": null, "master_enable": false, "transport_file": {"data": "v=0", "type": null}});
        let body = restore_body(&half);
        assert!(body.get("transport_file").is_none());
        assert_eq!(body["sender_id"], Value::Null);
        assert_eq!(body["master_enable"], json!(false));
    }

    #[test]
    fn activation_json_shapes() {
        assert_eq!(
            Activation::Immediate.to_json(),
            json!({"mode": "activate_immediate", "requested_time": null})
        );
        let at = TaiTime::new(10, 20).unwrap_or_default();
        assert_eq!(
            Activation::ScheduledAbsolute(at).to_json(),
            json!({"mode": "activate_scheduled_absolute", "requested_time": "10:20"})
        );
    }
}
