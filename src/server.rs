//! The TCP side: listeners on the lower, upper and query ports, one task per connection
//! handling its messages strictly in order, and the running-order state on its own
//! thread (SQLite is blocking). Every message is answered on the socket it came on.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use std::time::Instant;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::capture::{self, CaptureHandle, CaptureSettings, Direction, SocketKind};
use crate::config::{Config, Encoding, NcsConfig};
use crate::mos::Message;
use crate::mos::codec::{CodecConfig, FrameError, MosCodec, WireEncoding, encode_text};
use crate::mos::messages::{MosAck, MosListAll};
use crate::mos::messages::{RoReq, RoReqAll};
use crate::mos::{
    DeviationKind, Envelope, Mos, ParseOptions, Parsed, peek_message_id, peek_message_name,
};
use crate::objects::push_queue::PushQueue;
use crate::objects::{Catalogue, MemoryCatalogue};
use crate::outbound::{FailoverStyle, Link, LinkError, LinkParams, MessageIds};
use crate::recent::{MessageKey, Seen};
use crate::session::{Decision, PortRole, ProfileStyle, RUNNING_ORDER_EDITS, SessionPolicy, nack};
use crate::state::{State, StateError, StateHandle, Ticket};

/// Server errors at startup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A port could not be bound.
    #[error("cannot listen on {addr} ({role} port): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// lower / upper / query.
        role: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The state thread could not be started.
    #[error("cannot start the state thread: {source}")]
    Thread {
        /// The cause.
        source: std::io::Error,
    },
    /// The state could not be opened.
    #[error("cannot open the running-order store: {0}")]
    State(#[from] StateError),
    /// Capture was asked for but cannot be written.
    #[error("cannot capture: {0}")]
    Capture(#[from] crate::capture::CaptureError),
}

/// Shared by every connection.
struct Shared {
    config: Config,
    policy: SessionPolicy,
    state: StateHandle,
    /// (peer, ncsID, deviation kind) already logged.
    logged: Mutex<HashSet<(String, DeviationKind)>>,
    /// Outbound links per ncsID.
    links: HashMap<String, NcsLinks>,
    /// The MOS objects this device offers.
    catalogue: Arc<MemoryCatalogue>,
    /// When a roReq resync was last asked for, per (ncsID, roID).
    resync_asked: Mutex<HashMap<(String, String), Instant>>,
    /// The capture writer, when capture is on.
    capture: Option<CaptureHandle>,
    /// Where running-order changes and roCtrl go, once a bridge listens.
    bridge: OnceLock<mpsc::UnboundedSender<GatewayEvent>>,
    /// Replies to recent roCtrl and mosObjCreate messages, for their resends.
    recent: Mutex<crate::recent::RecentReplies>,
}

/// What the gateway tells the NMOS bridge, in the order it happened.
#[derive(Debug)]
pub enum GatewayEvent {
    /// A running order was created, edited, replaced or deleted (and is durable).
    RunningOrder {
        /// The NCS that changed it (statuses about it go there).
        ncs_id: String,
        /// roID.
        ro_id: String,
    },
    /// roCtrl from an NCS: the bridge answers at once through `reply` (Ok = roAck OK,
    /// Err = roAck with the reason) and works on the network afterwards.
    Control {
        /// The NCS that sent it.
        ncs_id: String,
        /// The command.
        ctrl: crate::mos::messages::RoCtrl,
        /// The answer to the NCS.
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// The gateway's outbound links to one NCS.
#[derive(Clone)]
pub struct NcsLinks {
    /// To the NCS's lower port (mos* family).
    pub lower: Link,
    /// To the NCS's upper port (ro* family).
    pub upper: Link,
    /// To the NCS's query port, when it has one (kept open; no heartbeats there, as NCSs
    /// do not answer them on that port).
    pub query: Option<Link>,
}

/// How often the same running order may be re-requested after a refused edit.
const RESYNC_MIN_INTERVAL: Duration = Duration::from_secs(10);

/// How long an object change that could not be queued for an NCS (its queue full) waits
/// before it is offered again.
const OBJECT_PUSH_RETRY: Duration = Duration::from_secs(1);

/// The gateway with its ports bound, ready to run.
pub struct Gateway {
    shared: Arc<Shared>,
    /// Stops the outbound links; cancelled when `run`'s token is.
    stop: CancellationToken,
    listeners: Vec<(PortRole, TcpListener)>,
    state_thread: std::thread::JoinHandle<()>,
}

/// Builds the session policy from the configuration.
pub fn policy_of(config: &Config) -> SessionPolicy {
    let mut p = SessionPolicy::new(
        &config.mos.id,
        config.ncs.iter().map(|n| n.id.clone()).collect(),
    );
    p.accept_any_ncs = config.mos.accept_any_ncs;
    p.profile_style = config
        .ncs
        .iter()
        .map(|n| {
            let style = match n.listmachinfo_style {
                crate::config::ListMachInfoStyle::Flat => ProfileStyle::Flat,
                crate::config::ListMachInfoStyle::Container => ProfileStyle::Container,
            };
            (n.id.clone(), style)
        })
        .collect();
    p
}

impl Gateway {
    /// Opens the store and binds the configured ports.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        let mut state = State::open(&config.mos.data_dir)?;
        for w in &state.restore_warnings {
            warn!("{w}");
        }
        let policy = policy_of(&config);
        let replayed = state.replay_received(|role, peer, parsed| {
            admit_received(&config, &policy, role, peer, parsed)
        })?;
        for line in &replayed {
            info!("received before the stop, not yet on disk: {line}");
        }
        info!(
            running_orders = state.rundowns().len(),
            "restored running orders from {}",
            config.mos.data_dir.display()
        );
        let mut listeners = Vec::new();
        let mut ports = vec![
            (PortRole::Lower, config.mos.lower_addr()),
            (PortRole::Upper, config.mos.upper_addr()),
        ];
        if let Some(q) = config.mos.query_addr() {
            ports.push((PortRole::Query, q));
        }
        for (role, addr) in ports {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind {
                    addr,
                    role: role.name(),
                    source,
                })?;
            listeners.push((role, l));
        }
        let (state, state_thread) =
            StateHandle::spawn(state).map_err(|source| ServerError::Thread { source })?;
        let placeholders =
            crate::store::Store::open(&config.mos.data_dir).map_err(StateError::from)?;
        let catalogue = Arc::new(
            MemoryCatalogue::from_config(&config, Box::new(placeholders))
                .map_err(StateError::from)?,
        );
        info!(objects = catalogue.list().len(), "object catalogue ready");
        let stop = CancellationToken::new();
        let capture = CaptureSettings::from_config(&config)
            .map(CaptureHandle::start)
            .transpose()?;
        let ids = Arc::new(MessageIds::new(state.clone(), 1000));
        let links = config
            .ncs
            .iter()
            .map(|n| {
                (
                    n.id.clone(),
                    spawn_links(&config, n, ids.clone(), stop.clone(), capture.clone()),
                )
            })
            .collect();
        let shared = Arc::new(Shared {
            policy,
            config,
            state,
            logged: Mutex::new(HashSet::new()),
            recent: Mutex::new(crate::recent::RecentReplies::default()),
            links,
            catalogue,
            resync_asked: Mutex::new(HashMap::new()),
            capture,
            bridge: OnceLock::new(),
        });
        for n in &shared.config.ncs {
            // Subscribed here, before any change can happen, not inside the task; the
            // objects the NCS is taken to know are those of this moment.
            let changes = shared.catalogue.subscribe();
            let queue = PushQueue::new(shared.catalogue.list());
            tokio::spawn(push_object_changes(
                shared.clone(),
                n.id.clone(),
                changes,
                queue,
                stop.clone(),
            ));
        }
        for n in shared.config.ncs.iter().filter(|n| n.resync_on_connect) {
            tokio::spawn(resync_on_connect(
                shared.clone(),
                n.id.clone(),
                stop.clone(),
            ));
        }
        Ok(Self {
            shared,
            stop,
            listeners,
            state_thread,
        })
    }

    /// The status API: statuses to the NCSs, in each NCS's flavour.
    pub fn status_sender(&self) -> StatusSender {
        StatusSender {
            shared: self.shared.clone(),
        }
    }

    /// The object catalogue (changes made through it are pushed to every NCS).
    /// Attaches the NMOS bridge: running-order changes and roCtrl are sent to the returned
    /// receiver from now on, and listMachInfo states Profile 5. Only the first call gets a
    /// receiver.
    pub fn events(&self) -> Option<mpsc::UnboundedReceiver<GatewayEvent>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared.bridge.set(tx).ok()?;
        self.shared
            .policy
            .control
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Some(rx)
    }

    /// The running orders held now, and a handle to read them.
    pub fn state(&self) -> StateHandle {
        self.shared.state.clone()
    }

    pub fn catalogue(&self) -> Arc<MemoryCatalogue> {
        self.shared.catalogue.clone()
    }

    /// The outbound links to an NCS.
    pub fn links(&self, ncs_id: &str) -> Option<NcsLinks> {
        self.shared.links.get(ncs_id).cloned()
    }

    /// The capture writer, when capture is on.
    pub fn capture(&self) -> Option<CaptureHandle> {
        self.shared.capture.clone()
    }

    /// The bound address of each port.
    pub fn local_addrs(&self) -> Vec<(PortRole, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|(r, l)| l.local_addr().ok().map(|a| (*r, a)))
            .collect()
    }

    /// The bound address of one port.
    pub fn local_addr(&self, role: PortRole) -> Option<SocketAddr> {
        self.local_addrs()
            .into_iter()
            .find(|(r, _)| *r == role)
            .map(|(_, a)| a)
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets every connection
    /// finish the message it is handling, and closes the store.
    pub async fn run(self, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        for (role, listener) in self.listeners {
            let shared = self.shared.clone();
            let shutdown = shutdown.clone();
            let conns = tracker.clone();
            let most = shared.config.mos.max_connections.max(1);
            let limit = Arc::new(Semaphore::new(most));
            // Peers that are no configured NCS's address may hold half of the slots at
            // most, so connections from elsewhere (a port scan, a misconfigured system)
            // cannot lock the newsroom out.
            let strangers = Arc::new(Semaphore::new(most.div_ceil(2)));
            tracker.spawn(async move {
                loop {
                    let accepted = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        a = listener.accept() => a,
                    };
                    let (socket, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            warn!(port = role.name(), "accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let known = shared.config.mos.accept_any_ncs
                        || shared.config.ncs.iter().any(|n| n.accepts_address(peer.ip()));
                    let stranger = if known {
                        None
                    } else {
                        match strangers.clone().try_acquire_owned() {
                            Ok(p) => Some(p),
                            Err(_) => {
                                warn!(port = role.name(), %peer, "connection refused: too many connections from addresses of no configured NCS");
                                continue;
                            }
                        }
                    };
                    let Ok(permit) = limit.clone().try_acquire_owned() else {
                        warn!(port = role.name(), %peer, "connection refused: too many connections on this port");
                        continue;
                    };
                    keep_alive(&socket);
                    let shared = shared.clone();
                    let shutdown = shutdown.clone();
                    let span = info_span!("conn", port = role.name(), %peer);
                    conns.spawn(
                        async move {
                            let _permit = (permit, stranger);
                            if let Err(e) = serve_connection(shared, role, socket, peer, shutdown).await {
                                debug!("connection ended: {e}");
                            }
                        }
                        .instrument(span),
                    );
                }
            });
        }
        tracker.close();
        shutdown.cancelled().await;
        self.stop.cancel();
        info!("shutting down: no new connections; finishing messages in flight");
        if tokio::time::timeout(Duration::from_secs(10), tracker.wait())
            .await
            .is_err()
        {
            warn!("some connections did not finish within 10 s");
        }
        self.shared.state.close().await;
        drop(self.shared);
        let _ = tokio::task::spawn_blocking(move || self.state_thread.join()).await;
        info!("stopped");
    }
}

/// The codec settings for a peer: its configured encoding when exactly its NCS is known.
fn codec_for(config: &Config, peer: SocketAddr) -> CodecConfig {
    let candidates = config.ncs_for_address(peer.ip());
    let encoding = match candidates.as_slice() {
        [one] => wire_encoding(one.encoding),
        _ => None,
    };
    CodecConfig {
        encoding,
        max_message_bytes: config.mos.max_message_bytes,
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    role: PortRole,
    socket: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let cap = shared
        .capture
        .as_ref()
        .map(|c| c.conn(socket.local_addr().ok(), peer, role, SocketKind::Inbound));
    let (rd, mut wr) = socket.into_split();
    let mut frames = FramedRead::new(rd, MosCodec::new(codec_for(&shared.config, peer)));
    debug!("connected");
    let stall = shared.config.mos.message_stall;
    // Bytes seen on the connection, and when that count last moved.
    let seen = |f: &FramedRead<_, MosCodec>| f.decoder().consumed() + f.read_buffer().len() as u64;
    let mut progress = (seen(&frames), Instant::now());
    // The silence in the middle of a message is checked four times per `stall` (one timer
    // for the connection, not one per message).
    let mut check = tokio::time::interval((stall / 4).max(Duration::from_millis(1)));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let now = seen(&frames);
        if now != progress.0 {
            progress = (now, Instant::now());
        }
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            n = frames.next() => n,
            _ = check.tick() => {
                let now = seen(&frames);
                if !frames.decoder().mid_message()
                    || now != progress.0
                    || progress.1.elapsed() < stall
                {
                    continue;
                }
                // Silent for `stall` in the middle of a message: its sender gave up.
                let mut buffered = std::mem::take(frames.read_buffer_mut());
                let given_up = frames.decoder_mut().abandon(&mut buffered);
                // What abandon keeps (an odd byte of UTF-16) stays for the next read.
                *frames.read_buffer_mut() = buffered;
                match given_up {
                    Some(e) => Some(Ok(Err(e))),
                    None => continue,
                }
            }
        };
        let Some(item) = next else { break };
        let item = item?;
        if let Ok(frame) = &item {
            capture::record(&cap, Direction::In, &frame.text, frame.encoding);
        }
        let encoding = frames.decoder().write_encoding();
        let reply = match item {
            Ok(frame) => handle_frame(&shared, role, peer, frame.text).await,
            Err(e) => Some(frame_error_reply(&shared, role, &e)),
        };
        if let Some(reply) = reply {
            capture::record(&cap, Direction::Out, &reply, encoding);
            wr.write_all(&encode_text(&reply, encoding)).await?;
        }
    }
    debug!("disconnected");
    Ok(())
}

fn frame_error_reply(shared: &Shared, role: PortRole, e: &FrameError) -> String {
    // A message cut off short is answered under its messageID, when it got that far.
    let message_id = match e {
        FrameError::Truncated { message_id } => message_id.clone(),
        _ => None,
    };
    warn!(
        message_id = message_id.as_deref().unwrap_or(""),
        "bad bytes: {e}"
    );
    let env = Envelope {
        mos_id: shared.config.mos.id.clone(),
        message_id,
        ..Envelope::default()
    };
    nack(role, &env, "", &e.reason()).to_xml()
}

/// Running-order edits at least this long (UTF-8 bytes) go through the inbox: their parse
/// takes longer than the disk write, which it hides. A shorter one is committed with one
/// synced write after its parse, which is quicker than two writes.
const INBOX_MIN_BYTES: usize = 8 * 1024;

/// Handles one complete document; returns the reply to send, if any.
async fn handle_frame(
    shared: &Arc<Shared>,
    role: PortRole,
    peer: SocketAddr,
    text: String,
) -> Option<String> {
    // A probable running-order edit is kept in the inbox, synced to disk, while it is
    // parsed; applied, its commit then need not wait for the disk again. Not applied, it
    // leaves the inbox (on disk) before the reply goes.
    // The text is shared with the state thread, not copied.
    let text = Arc::new(text);
    let mut ticket = (role == PortRole::Upper
        && text.len() >= INBOX_MIN_BYTES
        && peek_message_name(&text).is_some_and(|n| RUNNING_ORDER_EDITS.contains(&n)))
    .then(|| {
        shared
            .state
            .receive(role, Some(peer.ip()), Arc::clone(&text))
    });
    let reply = handle_document(shared, role, peer, text, &mut ticket).await;
    if let Some(ticket) = ticket {
        ticket.refuse().await;
    }
    reply
}

/// Parses and answers one document; takes the ticket when the message is applied.
async fn handle_document(
    shared: &Arc<Shared>,
    role: PortRole,
    peer: SocketAddr,
    text: Arc<String>,
    ticket: &mut Option<Ticket>,
) -> Option<String> {
    let parsed = match Mos::parse(&text, ParseOptions::lenient()) {
        Ok(p) => p,
        Err(rejected) => {
            let read = rejected.envelope.is_some();
            let env = rejected.envelope.map(|e| *e).unwrap_or_else(|| Envelope {
                mos_id: shared.config.mos.id.clone(),
                // Not well-formed: the messageID as written, if it can be found, so that
                // the NCS can match the NACK to its message.
                message_id: peek_message_id(&text).map(str::to_string),
                ..Envelope::default()
            });
            let name = env.message_name.as_deref().unwrap_or("?");
            // A wrong mosID, an unknown NCS or an address not allowed is the first reason.
            if read {
                if let Err(refusal) = shared.policy.check_envelope_fields(role, &env, "") {
                    warn!(
                        message = name,
                        "refused (and not readable: {})", rejected.error
                    );
                    return Some(refusal.to_xml());
                }
                if let Err(reason) = check_address(&shared.config, &env.ncs_id, Some(peer.ip())) {
                    warn!(message = name, "refused: {reason}");
                    return Some(nack(role, &env, "", &reason).to_xml());
                }
            }
            warn!(message = name, "rejected: {}", rejected.error);
            return Some(nack(role, &env, "", &rejected.error.reason()).to_xml());
        }
    };
    let span = info_span!(
        "msg",
        name = parsed.mos.message.name(),
        id = parsed.mos.message_id.as_deref().unwrap_or(""),
        ncs = %parsed.mos.ncs_id
    );
    async move {
        let mos = &parsed.mos;
        if let Err(reason) = check_peer(&shared.config, Some(peer.ip()), &parsed) {
            warn!("refused: {reason}");
            return Some(nack(role, &mos.envelope(), crate::session::ro_id_of(&mos.message), &reason).to_xml());
        }
        // Logged once per peer and kind, for messages from a known NCS to us: a message
        // refused for its envelope tolerates nothing, and unknown senders must not grow
        // the set.
        let envelope_ok =
            !parsed.deviations.is_empty() && shared.policy.check_envelope(role, mos).is_ok();
        for d in parsed.deviations.iter().filter(|_| envelope_ok) {
            let key = (format!("{}/{}", peer.ip(), mos.ncs_id), d.kind);
            let first = shared.logged.lock().map(|mut s| s.insert(key)).unwrap_or(false);
            if first {
                info!(kind = %d.kind, "tolerated off-spec input (logged once per peer and kind): {d}");
            }
        }
        let decision = shared.policy.decide(role, &parsed);
        let env = mos.envelope();
        let ncs_id = mos.ncs_id.clone();
        // The message is moved on from here (no copy of a large running order on the ack path).
        let request = parsed.mos;
        match decision {
            Decision::Reply(reply) => Some(reply.to_xml()),
            Decision::Ignore(why) => {
                debug!("no reply: {why}");
                None
            }
            Decision::Objects if !matches!(request.message, Message::MosObjCreate(_)) => {
                Some(answer_objects(shared, role, &request).to_xml())
            }
            // Commands carried out once: a resend gets the reply again.
            Decision::Objects | Decision::Control => {
                let key = request.message_id.clone().map(|message_id| MessageKey {
                    ncs_id: ncs_id.clone(),
                    port: role.name(),
                    message_id,
                });
                let digest = crate::state::digest(&text);
                let mut seen = match &key {
                    Some(key) => recent(shared).check(key, &digest, Instant::now()),
                    None => Seen::New,
                };
                // A resend while the first copy is being carried out waits for its reply.
                let waiting_since = Instant::now();
                while seen == Seen::InProgress && waiting_since.elapsed() < RESEND_WAIT {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if let Some(key) = &key {
                        seen = recent(shared).check(key, &digest, Instant::now());
                    }
                }
                match seen {
                    Seen::InProgress => {
                        warn!("refused: a resend of a message still being carried out");
                        let ro_id = crate::session::ro_id_of(&request.message);
                        let reason = "the same message is still being carried out";
                        return Some(nack(role, &env, ro_id, reason).to_xml());
                    }
                    Seen::Retry(reply) => {
                        info!("retry of a message carried out: same reply again, not carried out twice");
                        return Some(reply);
                    }
                    Seen::Conflict => {
                        warn!("refused: the messageID of a recent message with other content");
                        let ro_id = crate::session::ro_id_of(&request.message);
                        let reason = "messageID already used for a different message";
                        return Some(nack(role, &env, ro_id, reason).to_xml());
                    }
                    Seen::New => {
                        if let Some(key) = &key {
                            recent(shared).begin(key.clone(), digest.clone(), Instant::now());
                        }
                    }
                }
                let reply = if matches!(decision, Decision::Control) {
                    control(shared, &ncs_id, request).await.to_xml()
                } else {
                    answer_objects(shared, role, &request).to_xml()
                };
                if let Some(key) = key {
                    recent(shared).remember(key, digest, reply.clone(), Instant::now());
                }
                Some(reply)
            }
            Decision::RunningOrderRequest => match shared.state.ro_req(request).await {
                Some(reply) => Some(reply.to_xml()),
                None => Some(nack(role, &env, "", "Internal error: store closed").to_xml()),
            },
            Decision::Apply => {
                let ro_id = crate::session::ro_id_of(&request.message).to_string();
                let applied = match ticket.take() {
                    Some(ticket) => ticket.apply(request).await,
                    None => {
                        // Not shared (no ticket): the text moves on without a copy.
                        let text = Arc::try_unwrap(text).unwrap_or_else(|t| (*t).clone());
                        shared.state.apply(role, request, Some(text)).await
                    }
                };
                match applied {
                    Some(Ok(outcome)) => {
                        if outcome.duplicate {
                            info!("retry of a message already answered: same reply again, not applied twice");
                        }
                        if let Some((ro, change)) = &outcome.change {
                            match change {
                                crate::rundown::Change::Created {
                                    replaced_existing: true,
                                } => info!(ro = %ro, "roCreate for a running order already held: replaced it"),
                                _ => info!(ro = %ro, "applied: {change:?}"),
                            }
                            notify_bridge(shared, &ncs_id, ro);
                        }
                        if let Some(ro) = &outcome.needs_resync {
                            warn!(ro = %ro, "refused: unknown ID; asking the NCS for its copy (roReq)");
                            ask_for_running_order(shared, &ncs_id, ro);
                        }
                        Some(outcome.reply.to_xml())
                    }
                    Some(Err(e)) => {
                        error!("store failure, not acknowledged: {e}");
                        Some(nack(role, &env, &ro_id, &format!("Internal error: {e}")).to_xml())
                    }
                    None => Some(nack(role, &env, &ro_id, "Internal error: store closed").to_xml()),
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// The session's checks of a parsed message's sender: the NCS's address must match its
/// configuration, and a strict NCS's off-spec input is refused with the first deviation as
/// the reason. Returns the reason to refuse.
fn check_peer(config: &Config, peer: Option<IpAddr>, parsed: &Parsed) -> Result<(), String> {
    let mos = &parsed.mos;
    check_address(config, &mos.ncs_id, peer)?;
    let ncs = config.ncs(&mos.ncs_id);
    if let (Some(ncs), Some(d)) = (ncs, parsed.deviations.first())
        && ncs.strict
    {
        return Err(format!("{}: {d}", mos.message.name()));
    }
    Ok(())
}

/// Whether `ncs_id` may send from `peer` (its configured addresses, unless
/// `accept_any_ncs`). Returns the reason to refuse.
fn check_address(config: &Config, ncs_id: &str, peer: Option<IpAddr>) -> Result<(), String> {
    if let (Some(ncs), Some(ip)) = (config.ncs(ncs_id), peer)
        && !config.mos.accept_any_ncs
        && !ncs.accepts_address(ip)
    {
        return Err(format!("Address {ip} is not allowed for ncsID {}", ncs.id));
    }
    Ok(())
}

/// Whether a message left in the inbox by a stop is still one the session would apply:
/// [`check_peer`], then the policy. Returns the reason otherwise.
fn admit_received(
    config: &Config,
    policy: &SessionPolicy,
    role: PortRole,
    peer: Option<&str>,
    parsed: &Parsed,
) -> Result<(), String> {
    check_peer(config, peer.and_then(|p| p.parse().ok()), parsed)?;
    match policy.decide(role, parsed) {
        Decision::Apply => Ok(()),
        Decision::Reply(reply) => Err(match reply.message {
            Message::RoAck(a) => a.status,
            Message::MosAck(a) => a.description,
            other => format!("answered with {}", other.name()),
        }),
        _ => Err(format!(
            "{} is not a running-order edit",
            parsed.mos.message.name()
        )),
    }
}

/// How long a resend waits for the reply of its first copy, still being carried out.
const RESEND_WAIT: Duration = Duration::from_secs(5);

/// The replies kept for resends (a poisoned lock is taken as it is: the list is valid at
/// every step).
fn recent(shared: &Shared) -> std::sync::MutexGuard<'_, crate::recent::RecentReplies> {
    shared.recent.lock().unwrap_or_else(|p| p.into_inner())
}

/// TCP keepalive on an NCS's connection: a peer gone without closing (power cut, cable,
/// a NAT forgetting the flow) frees its slot within about a minute instead of never.
fn keep_alive(socket: &TcpStream) {
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    if let Err(e) = socket2::SockRef::from(socket).set_tcp_keepalive(&ka) {
        debug!("no TCP keepalive: {e}");
    }
}

/// Tells the bridge (if any) that a running order changed.
fn notify_bridge(shared: &Shared, ncs_id: &str, ro_id: &str) {
    if let Some(tx) = shared.bridge.get() {
        let _ = tx.send(GatewayEvent::RunningOrder {
            ncs_id: ncs_id.to_string(),
            ro_id: ro_id.to_string(),
        });
    }
}

/// roCtrl: handed to the bridge, which answers at once (it never waits on the network).
async fn control(shared: &Shared, ncs_id: &str, request: Mos) -> Mos {
    let env = request.envelope();
    let Message::RoCtrl(ctrl) = request.message else {
        return nack(PortRole::Upper, &env, "", "Internal error: not a roCtrl");
    };
    let ro_id = ctrl.ro_id.clone();
    let answer = match shared.bridge.get() {
        None => Err("roCtrl is not supported: no NMOS bridge is running".to_string()),
        Some(tx) => {
            let (reply, rx) = oneshot::channel();
            let event = GatewayEvent::Control {
                ncs_id: ncs_id.to_string(),
                ctrl,
                reply,
            };
            match tx.send(event) {
                Ok(()) => rx
                    .await
                    .unwrap_or_else(|_| Err("Internal error: NMOS bridge stopped".to_string())),
                Err(_) => Err("Internal error: NMOS bridge stopped".to_string()),
            }
        }
    };
    let ack = match answer {
        Ok(()) => crate::mos::messages::RoAck::ok(&ro_id),
        Err(reason) => {
            warn!(ro = %ro_id, "roCtrl refused: {reason}");
            crate::mos::messages::RoAck::error(&ro_id, &reason)
        }
    };
    crate::session::reply_to(&env, Message::RoAck(ack))
}

fn wire_encoding(e: Encoding) -> Option<WireEncoding> {
    match e {
        Encoding::Auto => None,
        Encoding::Utf16Be => Some(WireEncoding::Utf16Be),
        Encoding::Utf16Le => Some(WireEncoding::Utf16Le),
        Encoding::Utf8 => Some(WireEncoding::Utf8),
    }
}

/// Starts the lower and upper links to one NCS.
fn spawn_links(
    config: &Config,
    ncs: &NcsConfig,
    ids: Arc<MessageIds>,
    stop: CancellationToken,
    capture: Option<CaptureHandle>,
) -> NcsLinks {
    let params = |role: PortRole, targets| LinkParams {
        role,
        targets,
        buddy_targets: match (&ncs.buddy, role) {
            (Some(b), PortRole::Lower) => b
                .addresses
                .iter()
                .map(|a| SocketAddr::new(*a, b.lower_port))
                .collect(),
            (Some(b), PortRole::Upper) => b
                .addresses
                .iter()
                .map(|a| SocketAddr::new(*a, b.upper_port))
                .collect(),
            (Some(b), PortRole::Query) => match b.query_port {
                Some(q) => b.addresses.iter().map(|a| SocketAddr::new(*a, q)).collect(),
                None => Vec::new(),
            },
            (None, _) => Vec::new(),
        },
        failover: match ncs.failover {
            crate::config::Failover::Buddy => FailoverStyle::Buddy,
            crate::config::Failover::HotStandby => FailoverStyle::HotStandby,
        },
        mos_id: config.mos.id.clone(),
        ncs_id: ncs.id.clone(),
        encoding: wire_encoding(ncs.encoding),
        heartbeat: ncs.heartbeat_interval,
        ack_timeout: ncs.ack_timeout,
        reconnect_max: ncs.reconnect_max,
        queue_limit: ncs.queue_limit,
        attempts: 3,
        max_message_bytes: config.mos.max_message_bytes,
        capture: capture.clone(),
    };
    let query = ncs.query_port.map(|port| {
        let targets = ncs
            .addresses
            .iter()
            .map(|a| SocketAddr::new(*a, port))
            .collect();
        let mut p = params(PortRole::Query, targets);
        p.heartbeat = None;
        Link::spawn(p, ids.clone(), stop.clone())
    });
    NcsLinks {
        lower: Link::spawn(
            params(PortRole::Lower, ncs.lower_targets()),
            ids.clone(),
            stop.clone(),
        ),
        upper: Link::spawn(params(PortRole::Upper, ncs.upper_targets()), ids, stop),
        query,
    }
}

/// Replaces our copy of a running order with the NCS's roList.
async fn install_ro_list(shared: &Shared, ncs_id: &str, reply: Mos) -> bool {
    let Message::RoList(list) = reply.message else {
        warn!(ncs = %ncs_id, "no roList: {}", reply.message.name());
        return false;
    };
    let ro_id = list.0.header.id.clone();
    let request = Mos::new(&shared.config.mos.id, ncs_id, None, Message::RoList(list));
    match shared.state.apply(PortRole::Upper, request, None).await {
        Some(Ok(outcome)) if outcome.change.is_some() => {
            info!(ncs = %ncs_id, ro = %ro_id, "running order replaced by the NCS's copy");
            notify_bridge(shared, ncs_id, &ro_id);
            true
        }
        Some(Ok(outcome)) => {
            warn!(ncs = %ncs_id, ro = %ro_id, "the NCS's roList was refused: {:?}", outcome.reply.message);
            false
        }
        Some(Err(e)) => {
            error!(ncs = %ncs_id, ro = %ro_id, "store failure while resynchronising: {e}");
            false
        }
        None => false,
    }
}

/// After an edit refused for an unknown ID: ask the NCS for the running order (roReq),
/// at most once per running order every few seconds, without delaying any ack.
fn ask_for_running_order(shared: &Arc<Shared>, ncs_id: &str, ro_id: &str) {
    let Some(links) = shared.links.get(ncs_id).cloned() else {
        return;
    };
    let key = (ncs_id.to_string(), ro_id.to_string());
    {
        let Ok(mut asked) = shared.resync_asked.lock() else {
            return;
        };
        let now = Instant::now();
        if asked
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < RESYNC_MIN_INTERVAL)
        {
            return;
        }
        asked.insert(key, now);
    }
    let shared = shared.clone();
    let (ncs_id, ro_id) = (ncs_id.to_string(), ro_id.to_string());
    tokio::spawn(async move {
        let req = Message::RoReq(RoReq {
            ro_id: ro_id.clone(),
        });
        match links.upper.request(req).await {
            Ok(reply) => {
                install_ro_list(&shared, &ncs_id, reply).await;
            }
            Err(e) => warn!(ncs = %ncs_id, ro = %ro_id, "roReq for resync failed: {e}"),
        }
    });
}

/// Each time the upper link to an NCS comes up: roReqAll, then roReq for each running
/// order, one at a time; our copies are replaced by the NCS's. Running orders the NCS did
/// not list are kept (and named in a warning).
async fn resync_on_connect(shared: Arc<Shared>, ncs_id: String, stop: CancellationToken) {
    let Some(links) = shared.links.get(&ncs_id).cloned() else {
        return;
    };
    let mut connections = links.upper.connections();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = connections.changed() => if changed.is_err() { return },
        }
        info!(ncs = %ncs_id, "upper link up: resynchronising running orders (roReqAll)");
        let all = match links.upper.request(Message::RoReqAll(RoReqAll)).await {
            Ok(Mos {
                message: Message::RoListAll(all),
                ..
            }) => all,
            Ok(other) => {
                warn!(ncs = %ncs_id, "roReqAll answered with {}", other.message.name());
                continue;
            }
            Err(e) => {
                warn!(ncs = %ncs_id, "roReqAll failed: {e}");
                continue;
            }
        };
        let mut done = 0;
        for ro in &all.running_orders {
            let req = Message::RoReq(RoReq {
                ro_id: ro.id.clone(),
            });
            match links.upper.request(req).await {
                Ok(reply) => done += usize::from(install_ro_list(&shared, &ncs_id, reply).await),
                Err(e) => warn!(ncs = %ncs_id, ro = %ro.id, "roReq failed: {e}"),
            }
        }
        info!(ncs = %ncs_id, "resynchronised {done} of {} running orders", all.running_orders.len());
        // Running orders of this NCS it did not list are kept (an NCS may list only its
        // active ones; one may be on air): said once per resynchronisation.
        let listed: HashSet<&str> = all.running_orders.iter().map(|r| r.id.as_str()).collect();
        let unlisted: Vec<String> = shared
            .state
            .owners()
            .await
            .into_iter()
            .filter(|(ro, owner)| *owner == ncs_id && !listed.contains(ro.as_str()))
            .map(|(ro, _)| ro)
            .collect();
        if !unlisted.is_empty() {
            warn!(ncs = %ncs_id, "kept {} running order(s) the NCS did not list in roListAll, until it deletes them: {}", unlisted.len(), unlisted.join(", "));
        }
    }
}

/// Sends statuses (READY, NOT READY, PLAY, STOP, ERROR) to an NCS, as roItemStat/roStat or
/// roElementStat according to its configuration; used by the mapping layer and operators.
#[derive(Clone)]
pub struct StatusSender {
    shared: Arc<Shared>,
}

/// Why a status did not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// No such NCS is configured.
    #[error("no NCS {0} is configured")]
    UnknownNcs(String),
    /// Not sent, by rule (filtered, running order gone, not expressible).
    #[error("not sent: {0:?}")]
    Dropped(crate::status::Dropped),
    /// The link's queue refused it.
    #[error("not queued: {0}")]
    Link(crate::outbound::LinkError),
}

impl StatusSender {
    /// Sends mosItemReplace to an NCS (upper port) for an item the gateway owns, durably:
    /// queued across restarts until the NCS acknowledges it. Returns where the NCS's roAck
    /// arrives. The NCS then sends its usual roElementAction/roReplace, applied as any edit.
    pub async fn item_replace(
        &self,
        ncs_id: &str,
        ro_id: &str,
        story_id: &str,
        item: crate::mos::structures::Item,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Mos, crate::outbound::LinkError>>, StatusError>
    {
        let links = self
            .shared
            .links
            .get(ncs_id)
            .ok_or_else(|| StatusError::UnknownNcs(ncs_id.to_string()))?;
        let message = Message::MosItemReplace(crate::mos::messages::MosItemReplace {
            ro_id: ro_id.to_string(),
            story_id: story_id.to_string(),
            item,
        });
        links
            .upper
            .enqueue_durable(message)
            .await
            .map_err(StatusError::Link)
    }

    /// Queues a status for `ncs_id` (in order); returns once it is queued. The NCS's roAck
    /// is awaited in the background and logged.
    pub async fn send(
        &self,
        ncs_id: &str,
        report: crate::status::StatusReport,
    ) -> Result<(), StatusError> {
        let ncs = self
            .shared
            .config
            .ncs(ncs_id)
            .ok_or_else(|| StatusError::UnknownNcs(ncs_id.to_string()))?;
        let links = self
            .shared
            .links
            .get(ncs_id)
            .ok_or_else(|| StatusError::UnknownNcs(ncs_id.to_string()))?;
        let info = self.shared.state.ro_info(report.target.ro_id()).await;
        let message = crate::status::render(
            &report,
            ncs.status_messages,
            &ncs.status_options,
            info.is_some(),
            info.and_then(|i| i.ready_to_air),
        )
        .map_err(|d| {
            debug!(ncs = %ncs_id, "status not sent: {d:?}");
            StatusError::Dropped(d)
        })?;
        let name = message.name().to_string();
        let element = report.target.element_key();
        let rx = match links.upper.enqueue_status(message, element) {
            Ok(rx) => rx,
            Err(e) => {
                match e {
                    LinkError::QueueFull { .. } => {
                        warn!(ncs = %ncs_id, "{name} not queued ({e}): kept to offer once the NCS answers")
                    }
                    _ => warn!(ncs = %ncs_id, "{name} not queued: {e}"),
                }
                return Err(StatusError::Link(e));
            }
        };
        let ncs_id = ncs_id.to_string();
        tokio::spawn(async move {
            match rx.await {
                Ok(Ok(Mos {
                    message: Message::RoAck(a),
                    ..
                })) if a.is_ok() => {}
                Ok(Ok(reply)) => warn!(ncs = %ncs_id, "{name} answered with {:?}", reply.message),
                Ok(Err(LinkError::Superseded)) => {}
                Ok(Err(e)) => warn!(ncs = %ncs_id, "{name} not delivered: {e}"),
                Err(_) => {}
            }
        });
        Ok(())
    }
}

/// Answers the object requests of Profiles 1 and 3 on the socket they came on. mosReqAll's
/// objects follow on our own connection to the NCS's lower port.
fn answer_objects(shared: &Arc<Shared>, role: PortRole, request: &Mos) -> Mos {
    let env = request.envelope();
    let catalogue = &shared.catalogue;
    let url = &shared.config.mos.searchable_schema_url;
    let message = match &request.message {
        Message::MosReqObj(r) => match catalogue.get(&r.object_id) {
            Some(obj) => Message::MosObj(obj),
            None => Message::MosAck(MosAck::nack(
                &r.object_id,
                &format!("Unknown objID {}", r.object_id),
            )),
        },
        Message::MosReqAll(r) => {
            spawn_req_all(shared.clone(), request.ncs_id.clone(), r.pause);
            Message::MosAck(MosAck::ack("0", ""))
        }
        Message::MosReqSearchableSchema(_) => {
            Message::MosListSearchableSchema(crate::objects::searchable_schema(url))
        }
        Message::MosReqObjList(r) => {
            Message::MosObjList(crate::objects::search(&catalogue.list(), r, url))
        }
        Message::MosObjCreate(r) => match catalogue.create(r, &request.ncs_id) {
            Ok(obj) => {
                info!(obj = %obj.id, slug = %obj.slug, "placeholder created");
                Message::MosAck(MosAck::ack(&obj.id, &obj.id))
            }
            Err(e) => Message::MosAck(MosAck::nack("", &e.reason())),
        },
        other => {
            return nack(
                role,
                &env,
                "",
                &format!("Unsupported message: {}", other.name()),
            );
        }
    };
    crate::session::reply_to(&env, message)
}

/// mosReqAll's follow-up on our lower-port connection: one mosListAll (pause 0), or one
/// mosObj per object, `pause` seconds apart, each acknowledged before the next.
fn spawn_req_all(shared: Arc<Shared>, ncs_id: String, pause: u32) {
    let Some(links) = shared.links.get(&ncs_id).cloned() else {
        warn!(ncs = %ncs_id, "mosReqAll from an NCS without a configured lower port: nothing to send it on");
        return;
    };
    tokio::spawn(async move {
        let objects = shared.catalogue.list();
        if pause == 0 {
            let n = objects.len();
            match links
                .lower
                .request(Message::MosListAll(MosListAll { objects }))
                .await
            {
                Ok(reply) => {
                    info!(ncs = %ncs_id, "mosListAll with {n} objects answered with {}", reply.message.name())
                }
                Err(e) => warn!(ncs = %ncs_id, "mosListAll not delivered: {e}"),
            }
            return;
        }
        for obj in objects {
            let id = obj.id.clone();
            if let Err(e) = links.lower.request(Message::MosObj(obj)).await {
                warn!(ncs = %ncs_id, obj = %id, "mosObj not delivered: {e}");
            }
            tokio::time::sleep(Duration::from_secs(u64::from(pause))).await;
        }
    });
}

/// Pushes every catalogue change to one NCS as mosObj NEW / UPDATED / DELETED, each
/// acknowledged before the next, durably once queued (kept across restarts until
/// acknowledged). Changes made while one waits for its reply (an NCS away for a while) wait
/// in a [`PushQueue`], merged per objID, and are never dropped: if the broadcast outruns
/// this task, the queue is resynchronised from the catalogue.
async fn push_object_changes(
    shared: Arc<Shared>,
    ncs_id: String,
    mut changes: tokio::sync::broadcast::Receiver<crate::objects::ObjectChange>,
    mut queue: PushQueue,
    stop: CancellationToken,
) {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let Some(links) = shared.links.get(&ncs_id).cloned() else {
        return;
    };
    let mut in_flight: Option<(String, oneshot::Receiver<Result<Mos, LinkError>>)> = None;
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        if in_flight.is_none()
            && retry_at.is_none()
            && let Some(change) = queue.pop()
        {
            let id = change.object.id.clone();
            // The object's status is the change's (NEW, UPDATED or DELETED).
            match links
                .lower
                .enqueue_durable(Message::MosObj(change.object.clone()))
                .await
            {
                Ok(rx) => in_flight = Some((id, rx)),
                Err(LinkError::Shutdown) => return,
                Err(e) => {
                    warn!(ncs = %ncs_id, obj = %id, "mosObj not queued, trying again in {}s: {e}", OBJECT_PUSH_RETRY.as_secs());
                    queue.put_back(change);
                    retry_at = Some(tokio::time::Instant::now() + OBJECT_PUSH_RETRY);
                }
            }
        }
        let reply = async {
            match in_flight.as_mut() {
                Some((_, rx)) => rx.await,
                None => std::future::pending().await,
            }
        };
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            c = changes.recv() => match c {
                Ok(c) => queue.add(c),
                Err(RecvError::Lagged(n)) => {
                    warn!(ncs = %ncs_id, "{n} object changes went by unread; telling the NCS what differs from the catalogue");
                    // The changes still buffered are older than the list read next (the
                    // catalogue announces under its lock): dropped, not sent after it.
                    loop {
                        match changes.try_recv() {
                            Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Closed) => return,
                        }
                    }
                    queue.resync(shared.catalogue.list());
                }
                Err(RecvError::Closed) => return,
            },
            r = reply => {
                let id = in_flight.take().map(|(id, _)| id).unwrap_or_default();
                match r {
                    Ok(Ok(reply)) => match crate::outbound::refusal(&reply.message) {
                        None => debug!(ncs = %ncs_id, obj = %id, "mosObj acknowledged"),
                        Some(reason) => {
                            warn!(ncs = %ncs_id, obj = %id, reason, "mosObj refused by the NCS")
                        }
                    },
                    Ok(Err(e)) => warn!(ncs = %ncs_id, obj = %id, "mosObj not delivered: {e}"),
                    Err(_) => return,
                }
            }
            _ = retry => retry_at = None,
        }
    }
}
