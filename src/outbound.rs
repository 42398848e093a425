//! Outbound links: the connections the gateway opens to an NCS's ports for the messages
//! it originates (roReqAll, roReq, and later statuses and objects).
//!
//! One task per link: it connects (with back-off), keeps the socket open, sends
//! heartbeats at the configured interval, and sends queued requests one at a time (one
//! outstanding message per port). A reply is matched by messageID, or — leniently — a
//! reply without one when it has the expected type. On a timeout the same message is
//! sent again with the same messageID on a fresh socket. Heartbeats the NCS sends down our
//! socket are answered, never a heartbeat that is the reply to ours.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::capture::{self, CaptureHandle, ConnCapture, Direction, SocketKind};
use crate::mos::codec::{CodecConfig, MosCodec, WireEncoding, encode_text};
use crate::mos::messages::Heartbeat;
use crate::mos::time::MosTime;
use crate::mos::{Message, Mos, ParseOptions};
use crate::session::{PortRole, reply_to};
use crate::state::StateHandle;

/// Why a request on a link did not get its reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// No reply after every attempt.
    #[error("no reply after {attempts} attempts")]
    Timeout {
        /// How many times it was sent.
        attempts: u32,
    },
    /// The queue behind the link is full.
    #[error("queue full ({limit} messages)")]
    QueueFull {
        /// The configured limit.
        limit: usize,
    },
    /// The gateway is shutting down.
    #[error("shutting down")]
    Shutdown,
    /// Not sent: a status whose running order was deleted meanwhile.
    #[error("dropped: the running order no longer exists")]
    Dropped,
    /// Not sent: a newer status for the same element was queued after it.
    #[error("superseded by a newer status for the same element")]
    Superseded,
    /// No messageID could be reserved.
    #[error("messageID counter unavailable: {0}")]
    Counter(String),
}

/// Outgoing messageIDs: one counter for the whole gateway, persisted in blocks so a
/// restart never reuses an ID the NCS may still remember.
pub struct MessageIds {
    state: StateHandle,
    block: i32,
    range: tokio::sync::Mutex<(i32, i32)>,
}

impl MessageIds {
    /// A counter reserving `block` IDs at a time from the state.
    pub fn new(state: StateHandle, block: i32) -> Self {
        Self {
            state,
            block: block.max(1),
            range: tokio::sync::Mutex::new((0, 0)),
        }
    }

    /// The state the counter reserves from (also keeps durable outgoing messages).
    pub fn state(&self) -> &StateHandle {
        &self.state
    }

    /// The next messageID.
    pub async fn next(&self) -> Result<String, LinkError> {
        let mut r = self.range.lock().await;
        if r.0 >= r.1 || r.0 < 1 {
            let start = self
                .state
                .reserve_ids(self.block)
                .await
                .map_err(LinkError::Counter)?;
            *r = (start, start.saturating_add(self.block));
        }
        let id = r.0;
        r.0 = if id == i32::MAX { 1 } else { id + 1 };
        Ok(id.to_string())
    }
}

/// How a link uses the NCS's buddy server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailoverStyle {
    /// ENPS: switch to the other server on a timeout, a close or a refusal saying the main
    /// server is available; resend what was in flight there.
    #[default]
    Buddy,
    /// OpenMedia: the standby stays disconnected until the main server is lost; failing to
    /// reach it is not reported as an error.
    HotStandby,
}

/// Which of an NCS's servers a link talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Server {
    /// The main server.
    #[default]
    Main,
    /// The buddy (standby) server.
    Buddy,
}

/// Whether a reply is a standby server's refusal that names the main server as the one
/// to use (ENPS: "Buddy server cannot respond because main server is available"; also
/// "Main server back on line but not yet updated with most recent data").
pub fn is_buddy_refusal(reply: &Message) -> bool {
    let text = match reply {
        Message::RoAck(a) if !a.is_ok() => a.status.as_str(),
        Message::MosAck(a) if a.status == crate::mos::messages::AckStatus::Nack => {
            a.description.as_str()
        }
        _ => return false,
    };
    let t = text.to_ascii_lowercase();
    t.contains("main server is available") || t.contains("main server back on line")
}

/// The reason of a refusal (mosAck NACK, or a roAck whose status is not OK), `None` for an
/// acknowledgement or any other reply.
pub fn refusal(reply: &Message) -> Option<&str> {
    match reply {
        Message::RoAck(a) if !a.is_ok() => Some(a.status.as_str()),
        Message::MosAck(a) if a.status == crate::mos::messages::AckStatus::Nack => {
            Some(a.description.as_str())
        }
        _ => None,
    }
}

/// The state of one link, for the operator and the logs.
#[derive(Debug, Clone, Default)]
pub struct LinkStatus {
    /// Connected now.
    pub up: bool,
    /// The address connected to (or last tried).
    pub target: Option<SocketAddr>,
    /// When the last heartbeat reply arrived.
    pub last_heartbeat: Option<SystemTime>,
    /// Round-trip time of the last request.
    pub rtt: Option<Duration>,
    /// The last problem seen.
    pub last_error: Option<String>,
    /// How many times the link has connected.
    pub connections: u64,
    /// The server in use (main or buddy).
    pub active: Server,
}

/// Settings of one link.
#[derive(Debug, Clone)]
pub struct LinkParams {
    /// Which of the NCS's ports.
    pub role: PortRole,
    /// Addresses of the NCS's main server, tried in order.
    pub targets: Vec<SocketAddr>,
    /// Addresses of its buddy (standby) server; empty when it has none.
    pub buddy_targets: Vec<SocketAddr>,
    /// How the buddy is used.
    pub failover: FailoverStyle,
    /// Our mosID.
    pub mos_id: String,
    /// The NCS's ncsID.
    pub ncs_id: String,
    /// Wire encoding to write (None: UTF-16BE); replies are auto-detected.
    pub encoding: Option<WireEncoding>,
    /// Heartbeat interval, if any.
    pub heartbeat: Option<Duration>,
    /// How long to wait for a reply before resending.
    pub ack_timeout: Duration,
    /// Longest pause between connection attempts.
    pub reconnect_max: Duration,
    /// Messages queued behind the one in flight.
    pub queue_limit: usize,
    /// Times a request is sent before giving up (0 = until delivered).
    pub attempts: u32,
    /// Largest accepted message.
    pub max_message_bytes: usize,
    /// The capture writer, when this NCS's traffic is recorded.
    pub capture: Option<CaptureHandle>,
}

struct Outgoing {
    message: Message,
    reply: Option<oneshot::Sender<Result<Mos, LinkError>>>,
    /// Key of the persisted copy: delivered until acknowledged, also across restarts.
    durable: Option<i64>,
    /// The messageID given when it was persisted (a durable message keeps it across
    /// restarts, so that the NCS recognises a resend as one); `None`: the next at sending.
    id: Option<String>,
    /// A status: the element it is about and its place among that element's statuses
    /// ([`Statuses`]).
    status: Option<(String, u64)>,
}

/// A connection that stayed up this long before dropping is reconnected at once.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// The statuses queued on a link, latest per element (an item, a story, a running order):
/// an older status still queued when a newer one for the same element is queued is not
/// sent (after an outage the NCS gets each element's current state, not its history), and
/// the latest one, when the NCS does not answer it, is kept and offered again once the NCS
/// answers something else.
#[derive(Default)]
struct Statuses {
    next: u64,
    /// Element → the number of its latest status.
    latest: HashMap<String, u64>,
    /// Latest statuses the NCS did not answer, by element, to offer again.
    parked: HashMap<String, (u64, Message)>,
}

impl Statuses {
    /// The link's statuses, locked (a poisoned lock is taken as it is: every step leaves
    /// them whole).
    fn lock(statuses: &Mutex<Statuses>) -> std::sync::MutexGuard<'_, Statuses> {
        statuses.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_latest(&self, element: &str, n: u64) -> bool {
        self.latest.get(element) == Some(&n)
    }
}

/// A link to one port of one NCS.
#[derive(Clone)]
pub struct Link {
    tx: mpsc::Sender<Outgoing>,
    statuses: Arc<Mutex<Statuses>>,
    ids: Arc<MessageIds>,
    ncs_id: String,
    role: PortRole,
    status: Arc<Mutex<LinkStatus>>,
    connected: watch::Receiver<u64>,
    limit: usize,
}

impl Link {
    /// Starts the link's task.
    pub fn spawn(params: LinkParams, ids: Arc<MessageIds>, shutdown: CancellationToken) -> Link {
        let (tx, rx) = mpsc::channel(params.queue_limit.max(1));
        let status = Arc::new(Mutex::new(LinkStatus::default()));
        let statuses = Arc::new(Mutex::new(Statuses::default()));
        let (conn_tx, connected) = watch::channel(0u64);
        let limit = params.queue_limit;
        let (ncs_id, role) = (params.ncs_id.clone(), params.role);
        let span = info_span!("link", ncs = %params.ncs_id, port = params.role.name());
        let task_ids = ids.clone();
        let task = LinkTask {
            backlog: std::collections::VecDeque::new(),
            pause: None,
            connected_at: None,
            statuses: statuses.clone(),
            recent: Mutex::new(std::collections::VecDeque::new()),
            cap: None,
            params,
            ids: task_ids,
            rx,
            status: status.clone(),
            conn_tx,
            shutdown,
        };
        tokio::spawn(task.run().instrument(span));
        Link {
            tx,
            statuses,
            ids,
            ncs_id,
            role,
            status,
            connected,
            limit,
        }
    }

    /// Sends a request and waits for its reply (the link resends on timeouts).
    pub async fn request(&self, message: Message) -> Result<Mos, LinkError> {
        self.enqueue(message)?
            .await
            .map_err(|_| LinkError::Shutdown)?
    }

    /// Queues a request now (keeping the caller's order) and returns where its reply
    /// will arrive.
    pub fn enqueue(
        &self,
        message: Message,
    ) -> Result<oneshot::Receiver<Result<Mos, LinkError>>, LinkError> {
        self.push(message, None, None, None)
    }

    /// Queues a status about `element` (see [`Statuses`]): a status still queued for the
    /// same element is superseded by it ([`LinkError::Superseded`]). When the queue is
    /// full it is kept, as the element's latest, to offer once the NCS answers again
    /// ([`LinkError::QueueFull`]).
    pub fn enqueue_status(
        &self,
        message: Message,
        element: String,
    ) -> Result<oneshot::Receiver<Result<Mos, LinkError>>, LinkError> {
        let n = {
            let mut st = Statuses::lock(&self.statuses);
            st.next += 1;
            let n = st.next;
            st.latest.insert(element.clone(), n);
            st.parked.remove(&element);
            n
        };
        self.push(message, None, None, Some((element, n)))
    }

    /// Queues a message that must reach the NCS even across a restart of the gateway: it
    /// is persisted first, sent until acknowledged (no attempt limit), then forgotten.
    pub async fn enqueue_durable(
        &self,
        message: Message,
    ) -> Result<oneshot::Receiver<Result<Mos, LinkError>>, LinkError> {
        let id = self.ids.next().await?;
        let doc = Mos::new("", "", Some(id.clone()), message.clone()).to_xml();
        let seq = self
            .ids
            .state()
            .outbox_add(&self.ncs_id, self.role, doc)
            .await
            .map_err(LinkError::Counter)?;
        let queued = self.push(message, Some(seq), Some(id), None);
        if queued.is_err() {
            // Not queued: the caller is told, and nothing is left behind to surprise a restart.
            self.ids.state().outbox_remove(seq).await;
        }
        queued
    }

    /// Puts a request in the link's queue (bounded: a full queue is refused, never waited on).
    /// A status the full queue refuses is parked, if still the latest for its element.
    fn push(
        &self,
        message: Message,
        durable: Option<i64>,
        id: Option<String>,
        status: Option<(String, u64)>,
    ) -> Result<oneshot::Receiver<Result<Mos, LinkError>>, LinkError> {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.try_send(Outgoing {
            message,
            reply: Some(reply),
            durable,
            id,
            status,
        });
        match sent {
            Ok(()) => Ok(rx),
            Err(mpsc::error::TrySendError::Full(out)) => {
                if let Some((element, n)) = out.status {
                    let mut st = Statuses::lock(&self.statuses);
                    if st.is_latest(&element, n) {
                        st.parked.insert(element, (n, out.message));
                    }
                }
                Err(LinkError::QueueFull { limit: self.limit })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(LinkError::Shutdown),
        }
    }

    /// The link's current state.
    pub fn status(&self) -> LinkStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Changes each time the link connects (a new socket is up).
    pub fn connections(&self) -> watch::Receiver<u64> {
        self.connected.clone()
    }
}

/// The running order a status message is about.
fn status_ro_id(message: &Message) -> Option<&str> {
    match message {
        Message::RoStat(m) => Some(&m.ro_id),
        Message::RoItemStat(m) => Some(&m.ro_id),
        Message::RoElementStat(m) => Some(&m.ro_id),
        _ => None,
    }
}

/// Whether `got` answers `sent` by its type (used when the reply has no messageID).
pub fn is_reply_type(sent: &Message, got: &Message) -> bool {
    use Message as M;
    match sent {
        M::Heartbeat(_) => matches!(got, M::Heartbeat(_)),
        M::ReqMachInfo(_) => matches!(got, M::ListMachInfo(_)),
        M::RoReqAll(_) => matches!(got, M::RoListAll(_)),
        M::RoReq(_) => matches!(got, M::RoList(_) | M::RoAck(_)),
        M::MosReqSearchableSchema(_) => matches!(got, M::MosListSearchableSchema(_)),
        M::MosReqObjList(_) => matches!(got, M::MosObjList(_)),
        other if other.name().starts_with("ro") || other.name() == "mosItemReplace" => {
            matches!(got, M::RoAck(_))
        }
        _ => matches!(got, M::MosAck(_)),
    }
}

struct LinkTask {
    /// Durable messages left from before a restart, sent before anything new; statuses
    /// the NCS did not answer go here again on each new connection.
    backlog: std::collections::VecDeque<Outgoing>,
    /// The link's queued statuses (shared with [`Link`]).
    statuses: Arc<Mutex<Statuses>>,
    /// The pause before the next connection attempt: none after a reply, growing (up to
    /// `reconnect_max`) while attempts fail and while connections drop before any reply (an
    /// NCS, or a load balancer before a dead one, that accepts and closes at once).
    pause: Option<Duration>,
    /// When the current connection was made: one that stayed up a while before dropping
    /// (an idle socket closed by the NCS or a firewall) is reconnected at once.
    connected_at: Option<Instant>,
    /// The messageIDs of our last few heartbeats: a heartbeat carrying one is a (late)
    /// reply, never answered. (Only heartbeats: the NCS numbers its own messages, and a
    /// heartbeat of its own whose ID happened to match any message of ours went unanswered.)
    recent: Mutex<std::collections::VecDeque<String>>,
    /// Records this socket's messages (set on each connect when capture is on).
    cap: Option<ConnCapture>,
    params: LinkParams,
    ids: Arc<MessageIds>,
    rx: mpsc::Receiver<Outgoing>,
    status: Arc<Mutex<LinkStatus>>,
    conn_tx: watch::Sender<u64>,
    shutdown: CancellationToken,
}

type Reader = FramedRead<tokio::net::tcp::OwnedReadHalf, MosCodec>;
type Writer = tokio::net::tcp::OwnedWriteHalf;

/// A request being delivered: its bytes and messageID stay the same across resends.
struct InFlight {
    outgoing: Outgoing,
    id: String,
    text: String,
    sent: u32,
}

enum Wait {
    Reply(Box<Mos>),
    Timeout,
    Lost(String),
    Shutdown,
}

impl LinkTask {
    fn set(&self, f: impl FnOnce(&mut LinkStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// The addresses of a server.
    fn targets_of(&self, server: Server) -> Vec<SocketAddr> {
        match server {
            Server::Main => self.params.targets.clone(),
            Server::Buddy => self.params.buddy_targets.clone(),
        }
    }

    /// Switches to the other server, when there is one.
    fn switch_server(&self, why: &str) {
        if self.params.buddy_targets.is_empty() {
            return;
        }
        let mut to = Server::Main;
        self.set(|s| {
            s.active = match s.active {
                Server::Main => Server::Buddy,
                Server::Buddy => Server::Main,
            };
            to = s.active;
        });
        info!(
            "switching to the {} server: {why}",
            if to == Server::Main { "main" } else { "buddy" }
        );
    }

    /// Statuses the NCS did not answer, still the latest for their element, queued again
    /// (after the backlog) once the NCS answers something (so a status it never answers
    /// does not hold up everything behind it).
    fn unpark_statuses(&mut self) {
        let parked: Vec<(String, (u64, Message))> =
            Statuses::lock(&self.statuses).parked.drain().collect();
        for (element, (n, message)) in parked {
            if Statuses::lock(&self.statuses).is_latest(&element, n) {
                self.backlog.push_back(Outgoing {
                    message,
                    reply: None,
                    durable: None,
                    id: None,
                    status: Some((element, n)),
                });
            }
        }
    }

    fn active(&self) -> Server {
        self.status.lock().map(|s| s.active).unwrap_or_default()
    }

    /// The pause after the current one: 100 ms first, then doubling up to `reconnect_max`.
    fn grown_pause(&self) -> Duration {
        self.pause
            .map_or(Duration::from_millis(100), |p| p * 2)
            .min(self.params.reconnect_max)
    }

    async fn connect(&mut self) -> Option<(Reader, Writer)> {
        // Failing over from the main server to the buddy happens at once; the pause applies
        // between full rounds.
        let mut at_once = false;
        if self
            .connected_at
            .take()
            .is_some_and(|t| t.elapsed() >= STABLE_CONNECTION)
        {
            self.pause = None;
        }
        loop {
            if let Some(pause) = self.pause.filter(|_| !at_once) {
                debug!("next connection attempt in {pause:?}");
                tokio::select! {
                    _ = self.shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
            at_once = false;
            let server = self.active();
            for addr in self.targets_of(server) {
                self.set(|s| s.target = Some(addr));
                let attempt = tokio::select! {
                    _ = self.shutdown.cancelled() => return None,
                    r = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)) => r,
                };
                match attempt {
                    Ok(Ok(stream)) => {
                        let _ = stream.set_nodelay(true);
                        self.cap = self.params.capture.as_ref().map(|c| {
                            c.conn(
                                stream.local_addr().ok(),
                                addr,
                                self.params.role,
                                SocketKind::Outbound,
                            )
                        });
                        let (rd, wr) = stream.into_split();
                        let codec = MosCodec::new(CodecConfig {
                            encoding: self.params.encoding,
                            max_message_bytes: self.params.max_message_bytes,
                        });
                        info!(%addr, "connected");
                        // Until a reply proves the connection good, a drop waits before
                        // the next attempt.
                        self.pause = Some(self.grown_pause());
                        self.connected_at = Some(Instant::now());
                        self.set(|s| {
                            s.up = true;
                            s.connections += 1;
                            s.last_error = None;
                        });
                        self.conn_tx.send_modify(|n| *n += 1);
                        return Some((FramedRead::new(rd, codec), wr));
                    }
                    Ok(Err(e)) => self.connect_failed(server, format!("connect {addr}: {e}")),
                    Err(_) => self.connect_failed(server, format!("connect {addr}: timed out")),
                }
            }
            // No address of this server answered: try the other server next.
            if !self.params.buddy_targets.is_empty() {
                self.switch_server("cannot connect");
                if server == Server::Main {
                    at_once = true;
                    continue;
                }
            }
            self.pause = Some(self.grown_pause());
        }
    }

    fn encoding(&self, rd: &Reader) -> WireEncoding {
        self.params
            .encoding
            .or(rd.decoder().detected())
            .unwrap_or(WireEncoding::Utf16Be)
    }

    /// Loads the durable messages a previous run left undelivered.
    async fn load_backlog(&mut self) {
        let state = self.ids.state().clone();
        for (seq, doc) in state
            .outbox_load(&self.params.ncs_id, self.params.role)
            .await
        {
            match Mos::parse(&doc, ParseOptions::lenient()) {
                Ok(p) => self.backlog.push_back(Outgoing {
                    message: p.mos.message,
                    reply: None,
                    durable: Some(seq),
                    // Kept since the message was queued (rows from older builds have none).
                    id: p.mos.message_id,
                    status: None,
                }),
                Err(e) => {
                    warn!("dropping an unreadable queued message: {e}");
                    state.outbox_remove(seq).await;
                }
            }
        }
        if !self.backlog.is_empty() {
            info!(
                "{} queued message(s) from before the restart to deliver",
                self.backlog.len()
            );
        }
    }

    async fn run(mut self) {
        self.load_backlog().await;
        let mut carried: Option<InFlight> = None;
        'link: loop {
            let Some((mut rd, mut wr)) = self.connect().await else {
                break;
            };
            let mut heartbeat = self.params.heartbeat.map(|d| {
                let mut t = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            loop {
                let mut job = match carried.take() {
                    Some(j) => j,
                    None => {
                        let next = if let Some(b) = self.backlog.pop_front() {
                            b
                        } else {
                            tokio::select! {
                                _ = self.shutdown.cancelled() => break 'link,
                                m = self.rx.recv() => match m {
                                    Some(m) => m,
                                    None => break 'link,
                                },
                                _ = async {
                                    match heartbeat.as_mut() {
                                        Some(t) => { t.tick().await; }
                                        None => std::future::pending::<()>().await,
                                    }
                                } => Outgoing {
                                    message: Message::Heartbeat(Heartbeat { time: Some(MosTime::now()) }),
                                    reply: None,
                                    durable: None,
                                    id: None,
                                    status: None,
                                },
                                f = rd.next() => {
                                    match f {
                                        Some(Ok(Ok(frame))) => {
                                            capture::record(&self.cap, Direction::In, &frame.text, frame.encoding);
                                            // The NCS talks: the connection works.
                                            self.pause = None;
                                            if let Some(answer) = self.unsolicited(&frame.text) {
                                                let enc = self.encoding(&rd);
                                                capture::record(&self.cap, Direction::Out, &answer, enc);
                                                if let Err(e) = wr.write_all(&encode_text(&answer, enc)).await {
                                                    self.lost(format!("write: {e}"));
                                                    continue 'link;
                                                }
                                            }
                                            continue;
                                        }
                                        Some(Ok(Err(e))) => {
                                            warn!("bad bytes from the NCS: {e}");
                                            continue;
                                        }
                                        Some(Err(e)) => { self.lost(format!("read: {e}")); self.switch_server("connection lost"); continue 'link; }
                                        None => { self.lost("closed by the NCS".into()); self.switch_server("closed by the NCS"); continue 'link; }
                                    }
                                }
                            }
                        };
                        // A status superseded while it waited is not sent.
                        if let Some((element, n)) = &next.status
                            && !Statuses::lock(&self.statuses).is_latest(element, *n)
                        {
                            debug!(element, "status superseded by a newer one: not sent");
                            if let Some(r) = next.reply {
                                let _ = r.send(Err(LinkError::Superseded));
                            }
                            continue;
                        }
                        // A status for a running order deleted while it waited is dropped.
                        if let Some(ro_id) = status_ro_id(&next.message)
                            && self.ids.state().ro_info(ro_id).await.is_none()
                        {
                            debug!(ro = %ro_id, "status dropped: the running order was deleted");
                            if let Some((element, n)) = &next.status {
                                let mut st = Statuses::lock(&self.statuses);
                                if st.is_latest(element, *n) {
                                    st.latest.remove(element);
                                }
                            }
                            if let Some(r) = next.reply {
                                let _ = r.send(Err(LinkError::Dropped));
                            }
                            continue;
                        }
                        let id = match next.id.clone() {
                            Some(id) => Ok(id),
                            None => self.ids.next().await,
                        };
                        let id = match id {
                            Ok(id) => id,
                            Err(e) => {
                                if let Some(r) = next.reply {
                                    let _ = r.send(Err(e));
                                }
                                continue;
                            }
                        };
                        if matches!(next.message, Message::Heartbeat(_))
                            && let Ok(mut r) = self.recent.lock()
                        {
                            r.push_back(id.clone());
                            if r.len() > 4 {
                                r.pop_front();
                            }
                        }
                        let mos = Mos::new(
                            &self.params.mos_id,
                            &self.params.ncs_id,
                            Some(id.clone()),
                            next.message.clone(),
                        );
                        InFlight {
                            text: mos.to_xml(),
                            outgoing: next,
                            id,
                            sent: 0,
                        }
                    }
                };
                let enc = self.encoding(&rd);
                let started = Instant::now();
                capture::record(&self.cap, Direction::Out, &job.text, enc);
                if let Err(e) = wr.write_all(&encode_text(&job.text, enc)).await {
                    self.lost(format!("write: {e}"));
                    carried = self.retry(job);
                    continue 'link;
                }
                job.sent += 1;
                match self.wait_reply(&mut rd, &mut wr, &job).await {
                    Wait::Reply(reply)
                        if is_buddy_refusal(&reply.message)
                            && self.params.buddy_targets.is_empty()
                            && job.outgoing.durable.is_some() =>
                    {
                        // A standby answering, and no other server configured: a message
                        // that must arrive waits (the reconnection pause grows) and is
                        // offered again, rather than being forgotten as answered.
                        warn!(id = %job.id, message = job.outgoing.message.name(), "refused by a standby server; offering it again later");
                        self.lost("the NCS answered that another server is in charge".into());
                        carried = self.retry(job);
                        continue 'link;
                    }
                    Wait::Reply(reply)
                        if is_buddy_refusal(&reply.message)
                            && !self.params.buddy_targets.is_empty() =>
                    {
                        warn!(id = %job.id, "refused by a standby server; resending to the other server");
                        self.switch_server("the server answered that the other one is in charge");
                        self.set(|s| s.up = false);
                        carried = self.retry(job);
                        continue 'link;
                    }
                    Wait::Reply(reply) => {
                        // The connection works: a later drop reconnects at once, and the
                        // statuses the NCS did not answer before are offered again.
                        self.pause = None;
                        self.unpark_statuses();
                        let rtt = started.elapsed();
                        let heartbeat = matches!(reply.message, Message::Heartbeat(_));
                        self.set(|s| {
                            s.rtt = Some(rtt);
                            if heartbeat {
                                s.last_heartbeat = Some(SystemTime::now());
                            }
                        });
                        if let Some((element, n)) = &job.outgoing.status {
                            let mut st = Statuses::lock(&self.statuses);
                            if st.is_latest(element, *n) {
                                st.latest.remove(element);
                            }
                        }
                        if let Some(seq) = job.outgoing.durable {
                            // Answered, either way: a refusal is the NCS's last word on it
                            // (resending would not change it), so it is said loudly.
                            if let Some(reason) = refusal(&reply.message) {
                                warn!(id = %job.id, message = job.outgoing.message.name(), reason, "refused by the NCS; not sent again");
                            }
                            self.ids.state().outbox_remove(seq).await;
                        }
                        if let Some(r) = job.outgoing.reply {
                            let _ = r.send(Ok(*reply));
                        }
                    }
                    Wait::Timeout => {
                        warn!(id = %job.id, message = job.outgoing.message.name(), "no reply within {:?}; resending on a fresh socket", self.params.ack_timeout);
                        self.lost("reply timed out".into());
                        self.switch_server("reply timed out");
                        carried = self.retry(job);
                        continue 'link;
                    }
                    Wait::Lost(why) => {
                        self.lost(why);
                        self.switch_server("connection lost");
                        carried = self.retry(job);
                        continue 'link;
                    }
                    Wait::Shutdown => break 'link,
                }
            }
        }
        self.set(|s| s.up = false);
        debug!("link stopped");
    }

    /// Records a failed connection attempt (a hot standby's silence is not an error).
    fn connect_failed(&self, server: Server, why: String) {
        if server == Server::Buddy && self.params.failover == FailoverStyle::HotStandby {
            debug!("standby not reachable: {why}");
            return;
        }
        self.set(|s| s.last_error = Some(why));
    }

    /// Marks the link down.
    fn lost(&self, why: String) {
        warn!("link down: {why}");
        self.set(|s| {
            s.up = false;
            s.last_error = Some(why);
        });
    }

    /// Keeps a request for resending, or fails it when its attempts are used up.
    /// Heartbeats are never resent.
    fn retry(&self, job: InFlight) -> Option<InFlight> {
        // Durable messages are resent without limit; heartbeats (no reply wanted) never.
        if job.outgoing.durable.is_some() {
            return Some(job);
        }
        let unlimited = self.params.attempts == 0;
        // Statuses are resent whether or not someone waits for their reply (one offered
        // again after parking has no reply channel).
        if job.outgoing.status.is_none() {
            job.outgoing.reply.as_ref()?;
        }
        if unlimited || job.sent < self.params.attempts {
            return Some(job);
        }
        // The element's latest status is kept to offer again once the NCS answers (the
        // NCS would otherwise show an old state until the element changes again).
        if let Some((element, n)) = &job.outgoing.status {
            let mut st = Statuses::lock(&self.statuses);
            if st.is_latest(element, *n) {
                warn!(
                    element,
                    "status not answered after {} attempts; offered again once the NCS answers",
                    job.sent
                );
                st.parked
                    .insert(element.clone(), (*n, job.outgoing.message.clone()));
            }
        }
        if let Some(r) = job.outgoing.reply {
            let _ = r.send(Err(LinkError::Timeout { attempts: job.sent }));
        }
        None
    }

    async fn wait_reply(&self, rd: &mut Reader, wr: &mut Writer, job: &InFlight) -> Wait {
        let deadline = tokio::time::Instant::now() + self.params.ack_timeout;
        loop {
            let f = tokio::select! {
                _ = self.shutdown.cancelled() => return Wait::Shutdown,
                _ = tokio::time::sleep_until(deadline) => return Wait::Timeout,
                f = rd.next() => f,
            };
            let frame = match f {
                Some(Ok(Ok(frame))) => frame,
                Some(Ok(Err(e))) => {
                    warn!("bad bytes from the NCS: {e}");
                    continue;
                }
                Some(Err(e)) => return Wait::Lost(format!("read: {e}")),
                None => return Wait::Lost("closed by the NCS".into()),
            };
            capture::record(&self.cap, Direction::In, &frame.text, frame.encoding);
            let Ok(parsed) = Mos::parse(&frame.text, ParseOptions::lenient()) else {
                warn!("unreadable message from the NCS while waiting for a reply");
                continue;
            };
            let got = parsed.mos;
            let same_id = got.message_id.as_deref() == Some(job.id.as_str());
            let typed = got.message_id.as_deref().is_none_or(str::is_empty)
                && is_reply_type(&job.outgoing.message, &got.message);
            if same_id || typed {
                return Wait::Reply(Box::new(got));
            }
            // A request of the NCS's own on our socket: answer it.
            if let Some(answer) = self.unsolicited(&frame.text) {
                let enc = self.encoding(rd);
                capture::record(&self.cap, Direction::Out, &answer, enc);
                if let Err(e) = wr.write_all(&encode_text(&answer, enc)).await {
                    return Wait::Lost(format!("write: {e}"));
                }
            }
        }
    }

    /// Answers a message the NCS sends down our socket that is not a reply we wait for.
    fn unsolicited(&self, text: &str) -> Option<String> {
        let parsed = Mos::parse(text, ParseOptions::lenient()).ok()?;
        let env = parsed.mos.envelope();
        let ours = parsed
            .mos
            .message_id
            .as_ref()
            .is_some_and(|id| self.recent.lock().map(|r| r.contains(id)).unwrap_or(false));
        match parsed.mos.message {
            Message::Heartbeat(_) if ours => {
                debug!("late reply to our heartbeat; not answered");
                None
            }
            Message::Heartbeat(_) => Some(
                reply_to(
                    &env,
                    Message::Heartbeat(Heartbeat {
                        time: Some(MosTime::now()),
                    }),
                )
                .to_xml(),
            ),
            other => {
                debug!("ignored {} arriving on our outbound socket", other.name());
                None
            }
        }
    }
}
