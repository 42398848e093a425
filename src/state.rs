//! The running-order state: the pure model ([`crate::rundown`]) kept durable in the
//! [`crate::store`]. One owner applies every edit in arrival order: check for a retried
//! messageID, apply, commit to disk, then install and reply. A refused edit changes
//! nothing.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::mos::messages::{RoAck, RoList, RoStorySend};
use crate::mos::structures::{AirStatus, RunningOrder};
use crate::mos::{Message, Mos, ParseOptions, Parsed};
use crate::rundown::{Applied, Change, Edit, Rundown, Rundowns, edit_from_message, into_edit};
use crate::session::{PortRole, reply_to};
use crate::store::{
    Commit, Processed, ProcessedRow, RoChange, Snapshot, Store, StoreError, WalSync,
};

/// State errors: only storage failures; refused edits are replies, not errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The store failed; nothing was acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What happened to a message handed to the state.
#[derive(Debug)]
pub struct Outcome {
    /// The reply to send.
    pub reply: Mos,
    /// What changed, when an edit was applied now.
    pub change: Option<(String, Change)>,
    /// A retry of a message already applied (the stored reply is sent again).
    pub duplicate: bool,
    /// The edit was refused because an ID is unknown: the NCS's copy should be requested.
    pub needs_resync: Option<String>,
}

/// The running orders and their store.
pub struct State {
    rundowns: Rundowns,
    store: Store,
    journal_len: HashMap<String, usize>,
    /// Problems met while restoring (logged by the caller).
    pub restore_warnings: Vec<String>,
}

/// A stable digest of a document (XXH3, 128 bits, written as hex): the same text gives the
/// same digest on every machine and version, as the stored digests require.
pub fn digest(text: &str) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
}

/// The content of a request without its messageID, for comparing retries.
/// What to remember of a message handled under a messageID (`key`: ncsID, port, messageID)
/// with this content digest: the reply a retry gets. `None` without a messageID.
fn processed_row(
    key: Option<(String, String, String)>,
    content: Option<String>,
    reply: &Mos,
) -> Option<ProcessedRow> {
    key.zip(content).map(|((ncs, port, id), digest)| {
        let reply = reply.to_xml();
        (ncs, port, id, Processed { digest, reply })
    })
}

fn content_digest(request: &Mos) -> String {
    let mut m = request.clone();
    m.message_id = None;
    digest(&m.to_xml())
}

/// A snapshot of a running order. `ro_doc` is the document that defined the whole running
/// order just now (roCreate, roReplace or roList as received), used as is instead of
/// writing a roList again.
fn snapshot_of(rundown: &Rundown, mos_id: &str, ncs_id: &str, ro_doc: Option<&str>) -> Snapshot {
    let ro_list = match ro_doc {
        Some(doc) => doc.to_string(),
        None => Mos::new(
            mos_id,
            ncs_id,
            None,
            Message::RoList(RoList(rundown.to_running_order())),
        )
        .to_xml(),
    };
    let bodies = rundown
        .stories()
        .filter_map(|s| {
            let c = s.content.as_ref()?;
            let send = RoStorySend {
                ro_id: rundown.id().to_string(),
                story_id: s.story.id.clone(),
                slug: c.slug.clone(),
                number: c.number.clone(),
                body: c.body.clone(),
                metadata: c.metadata.clone(),
            };
            let doc = Mos::new(mos_id, ncs_id, None, Message::RoStorySend(send)).to_xml();
            Some((s.story.id.clone(), doc))
        })
        .collect();
    Snapshot {
        ro_list,
        bodies,
        ready: rundown.ready_to_air().map(|a| a.as_wire().to_string()),
    }
}

fn parse_doc(doc: &str) -> Option<Message> {
    Mos::parse(doc, ParseOptions::lenient())
        .ok()
        .map(|p| p.mos.message)
}

impl State {
    /// Opens the store under `data_dir` and restores every running order.
    pub fn open(data_dir: &Path) -> Result<Self, StateError> {
        let store = Store::open(data_dir)?;
        let mut state = Self {
            rundowns: Rundowns::new(),
            store,
            journal_len: HashMap::new(),
            restore_warnings: Vec::new(),
        };
        for stored in state.store.load_running_orders()? {
            let ro_id = stored.ro_id.clone();
            let mut warn = |w: String| {
                state
                    .restore_warnings
                    .push(format!("running order {ro_id}: {w}"))
            };
            let ro = match parse_doc(&stored.snapshot.ro_list) {
                Some(Message::RoList(RoList(ro))) => Some(ro),
                Some(Message::RoCreate(crate::mos::messages::RoCreate(ro))) => Some(ro),
                Some(Message::RoReplace(crate::mos::messages::RoReplace(ro))) => Some(ro),
                _ => None,
            };
            let Some(ro) = ro else {
                warn("unreadable snapshot; dropped".into());
                continue;
            };
            if let Err(e) = state.rundowns.update(&ro_id, &Edit::Create(ro)) {
                warn(format!("snapshot refused: {e}"));
                continue;
            }
            for (story, doc) in &stored.snapshot.bodies {
                match parse_doc(doc) {
                    Some(Message::RoStorySend(s)) => {
                        if let Err(e) = state.rundowns.update(&ro_id, &Edit::StorySend(s)) {
                            warn(format!("body of {story} refused: {e}"));
                        }
                    }
                    _ => warn(format!("unreadable body of {story}")),
                }
            }
            if let Some(ready) = &stored.snapshot.ready {
                let air = if ready == "READY" {
                    AirStatus::Ready
                } else {
                    AirStatus::NotReady
                };
                let _ = state.rundowns.update(&ro_id, &Edit::ReadyToAir(air));
            }
            for doc in &stored.journal {
                let edit = parse_doc(doc).as_ref().and_then(edit_from_message);
                match edit {
                    Some(Ok((id, edit))) if id == ro_id => {
                        if let Err(e) = state.rundowns.update(&ro_id, &edit) {
                            warn(format!("journal entry refused: {e}"));
                        }
                    }
                    _ => warn("unreadable journal entry".into()),
                }
            }
            state
                .journal_len
                .insert(ro_id.clone(), stored.journal.len());
        }
        Ok(state)
    }

    /// The running orders.
    pub fn rundowns(&self) -> &Rundowns {
        &self.rundowns
    }

    /// The running order `ro_id` as the NCS sent it, for roList.
    pub fn running_order(&self, ro_id: &str) -> Option<RunningOrder> {
        self.rundowns.get(ro_id).map(Rundown::to_running_order)
    }

    /// Answers roReq: roList, or roAck with an error.
    pub fn answer_ro_req(&self, request: &Mos, ro_id: &str) -> Mos {
        let env = request.envelope();
        match self.running_order(ro_id) {
            Some(ro) => reply_to(&env, Message::RoList(RoList(ro))),
            None => reply_to(
                &env,
                Message::RoAck(RoAck::error(ro_id, &format!("Unknown roID {ro_id}"))),
            ),
        }
    }

    /// Applies a running-order message from `ncs_id` received on `port`: dedup by
    /// messageID, apply, commit durably, then reply.
    /// `raw` is the document as received, when there is one: retries are recognised by its
    /// digest (a retry resends the identical message), and it is what the journal keeps.
    ///
    /// `received` is the message's inbox row when it was kept there first
    /// ([`Store::receive`]): applied, its commit removes the row and need not be synced on
    /// its own; refused (or a retry), the row is removed, durably, before the reply.
    ///
    /// A refusal is remembered under its messageID like an applied edit, durably before
    /// the reply: a retry gets the same NACK (not a new judgement against a state that
    /// moved on), and another message under the same messageID is refused.
    pub fn handle(
        &mut self,
        port: PortRole,
        request: Mos,
        raw: Option<&str>,
        received: Option<i64>,
    ) -> Result<Outcome, StateError> {
        let (outcome, refusal) = self.apply_and_commit(port, request, raw, received)?;
        if outcome.change.is_none()
            && let Err(e) = self.store.refuse(received, refusal)
        {
            // The row may be judged again at start; a retry may be judged again.
            tracing::error!(
                "cannot record the refusal{}: {e}",
                received.map_or(String::new(), |seq| format!(" of inbox message {seq}"))
            );
        }
        Ok(outcome)
    }

    /// [`State::handle`] but for the refusal's record: returns the outcome and, for a
    /// refusal of a message with a messageID, what to remember of it.
    fn apply_and_commit(
        &mut self,
        port: PortRole,
        request: Mos,
        raw: Option<&str>,
        received: Option<i64>,
    ) -> Result<(Outcome, Option<ProcessedRow>), StateError> {
        // After a failed sync nothing is acknowledged, not even a retry's stored reply.
        self.store.check_healthy()?;
        let env = request.envelope();
        let request_ref = &request;
        let key = request
            .message_id
            .as_ref()
            .filter(|id| !id.is_empty())
            .map(|id| (request.ncs_id.clone(), port.name().to_string(), id.clone()));
        let content = key.as_ref().map(|_| match raw {
            Some(text) => digest(text),
            None => content_digest(request_ref),
        });
        if let (Some((ncs, p, id)), Some(content)) = (&key, &content)
            && let Some(done) = self.store.processed(ncs, p, id)?
        {
            {
                let reply = if done.digest == *content {
                    parse_doc(&done.reply)
                        .map(|m| reply_to(&env, m))
                        .unwrap_or_else(|| {
                            reply_to(
                                &env,
                                Message::RoAck(RoAck::ok(crate::session::ro_id_of(
                                    &request.message,
                                ))),
                            )
                        })
                } else {
                    reply_to(
                        &env,
                        Message::RoAck(RoAck::error(
                            crate::session::ro_id_of(&request.message),
                            &format!("messageID {id} was already used for a different message"),
                        )),
                    )
                };
                let outcome = Outcome {
                    reply,
                    change: None,
                    duplicate: done.digest == *content,
                    needs_resync: None,
                };
                return Ok((outcome, None));
            }
        }
        let ro_id_hint = crate::session::ro_id_of(&request.message).to_string();
        // A refusal, remembered under the messageID (see `handle`).
        let refused = |reply: Mos, needs_resync: Option<String>| {
            let row = processed_row(key.clone(), content.clone(), &reply);
            let outcome = Outcome {
                reply,
                change: None,
                duplicate: false,
                needs_resync,
            };
            Ok((outcome, row))
        };
        let (mos_id, ncs_id) = (request.mos_id.clone(), request.ncs_id.clone());
        // Without the received text (a roList fetched by the gateway itself) the journal
        // keeps the message as written by us.
        let fallback_doc = raw.is_none().then(|| request.to_xml());
        let message_name = request.message.name().to_string();
        let (ro_id, edit) = match into_edit(request.message) {
            Some(Ok(x)) => x,
            Some(Err(e)) => {
                return refused(
                    reply_to(&env, Message::RoAck(RoAck::error(&ro_id_hint, &e.reason()))),
                    e.needs_resync().then(|| ro_id_hint.clone()),
                );
            }
            None => {
                return refused(
                    reply_to(
                        &env,
                        Message::RoAck(RoAck::error(
                            &ro_id_hint,
                            &format!("{} is not a running-order edit", message_name),
                        )),
                    ),
                    None,
                );
            }
        };
        let whole = matches!(edit, Edit::Create(_) | Edit::Replace(_) | Edit::List(_));
        let applied = match edit
            .check_ids(&ro_id)
            .and_then(|()| self.rundowns.apply_owned(&ro_id, edit))
        {
            Ok(a) => a,
            Err(e) => {
                return refused(
                    reply_to(&env, Message::RoAck(RoAck::error(&ro_id, &e.reason()))),
                    e.needs_resync().then(|| ro_id.clone()),
                );
            }
        };
        let reply = reply_to(&env, Message::RoAck(RoAck::ok(&ro_id)));
        let journal_len = self.journal_len.get(&ro_id).copied().unwrap_or(0);
        // A whole running order kept in the inbox stays there as its snapshot's document.
        let ro_list_received = whole && received.is_some();
        let change = match applied.rundown() {
            None => RoChange::Delete,
            Some(r) if whole || journal_len >= self.store.journal_limit => {
                let doc = match raw {
                    Some(_) if ro_list_received => Some(""),
                    _ if whole => raw,
                    _ => None,
                };
                RoChange::Snapshot(snapshot_of(r, &mos_id, &ncs_id, doc))
            }
            Some(_) => RoChange::Journal(match raw {
                Some(text) => text.to_string(),
                None => fallback_doc.unwrap_or_default(),
            }),
        };
        let processed = processed_row(key, content, &reply);
        let journal = matches!(change, RoChange::Journal(_));
        let committed = self.store.commit(&Commit {
            ro_id: Some(ro_id.clone()),
            change,
            processed,
            // Also without a messageID (a roList the gateway asked for on resync).
            owner: Some(ncs_id.clone()),
            received,
            ro_list_received,
        });
        let not_synced = match committed {
            Ok(()) => None,
            // Committed but not synced (the store is poisoned now): the running order held
            // here still follows the database, and the NCS gets a NACK.
            Err(e @ StoreError::Sync { .. }) => Some(e),
            // Rolled back: nothing changed.
            Err(e) => return Err(e.into()),
        };
        let what = applied.change().clone();
        self.record_commit(&ro_id, journal, applied);
        if let Some(e) = not_synced {
            return Err(e.into());
        }
        let outcome = Outcome {
            reply,
            change: Some((ro_id, what)),
            duplicate: false,
            needs_resync: None,
        };
        Ok((outcome, None))
    }

    /// Installs an applied edit whose commit (a journal entry, or else a new snapshot or
    /// a deletion) is in the database.
    fn record_commit(&mut self, ro_id: &str, journal: bool, applied: Applied) {
        if journal {
            *self.journal_len.entry(ro_id.to_string()).or_default() += 1;
        } else {
            self.journal_len.remove(ro_id);
        }
        self.rundowns.commit(ro_id, applied);
    }

    /// Applies again, in the order they arrived, the messages a stop left in the inbox:
    /// their commit or refusal had not reached the disk (a power cut), or they were still
    /// being parsed (a crash). `admit` repeats the session's checks on each (envelope, peer
    /// address, strictness, port); a message it refuses is removed. Returns a line per
    /// message, for the log.
    pub fn replay_received(
        &mut self,
        admit: impl Fn(PortRole, Option<&str>, &Parsed) -> Result<(), String>,
    ) -> Result<Vec<String>, StateError> {
        let mut log = Vec::new();
        for row in self.store.received()? {
            let port = PortRole::from_name(&row.port);
            let verdict = match (port, Mos::parse(&row.doc, ParseOptions::lenient())) {
                (None, _) => Err(format!("unknown port {:?}", row.port)),
                (_, Err(rejected)) => Err(rejected.error.to_string()),
                (Some(port), Ok(parsed)) => {
                    admit(port, row.peer.as_deref(), &parsed).map(|()| (port, parsed.mos))
                }
            };
            let line = match verdict {
                Ok((port, mos)) => {
                    let name = mos.message.name().to_string();
                    let outcome = self.handle(port, mos, Some(&row.doc), Some(row.seq))?;
                    let what = match (&outcome.change, &outcome.reply.message) {
                        (Some(_), _) => "applied".to_string(),
                        _ if outcome.duplicate => "answered before".to_string(),
                        (None, Message::RoAck(ack)) => format!("refused: {}", ack.status),
                        (None, _) => "refused".to_string(),
                    };
                    format!("inbox message {} ({name}): {what}", row.seq)
                }
                Err(why) => {
                    self.store.forget_received(row.seq)?;
                    format!("inbox message {}: refused: {why}", row.seq)
                }
            };
            log.push(line);
        }
        Ok(log)
    }

    /// Reserves the next block of outgoing messageIDs; returns the first ID to use.
    /// The block's end is stored first, so a restart never reuses an ID.
    pub fn reserve_message_ids(&mut self, block: i32) -> Result<i32, StateError> {
        let start = self
            .store
            .meta("next_message_id")?
            .and_then(|v| v.parse::<i32>().ok())
            .filter(|n| *n >= 1)
            .unwrap_or(1);
        let end = start.checked_add(block).unwrap_or(1);
        self.store.set_meta("next_message_id", &end.to_string())?;
        Ok(start)
    }
}

enum StateCmd {
    Rundown {
        ro_id: String,
        reply: oneshot::Sender<Option<Rundown>>,
    },
    RoIds {
        reply: oneshot::Sender<Vec<String>>,
    },
    Owners {
        reply: oneshot::Sender<Vec<(String, String)>>,
    },
    SetOnAir {
        element: String,
        on: bool,
    },
    OnAir {
        reply: oneshot::Sender<Vec<String>>,
    },
    Apply {
        port: PortRole,
        request: Box<Mos>,
        raw: Option<String>,
        reply: oneshot::Sender<Result<Outcome, String>>,
    },
    Receive {
        token: u64,
        port: PortRole,
        peer: Option<IpAddr>,
        doc: Arc<String>,
        kept: oneshot::Sender<Result<(), String>>,
    },
    ApplyReceived {
        token: u64,
        request: Box<Mos>,
        reply: oneshot::Sender<Result<Outcome, String>>,
    },
    Unreceive {
        token: u64,
        /// Dropped once the message has left the inbox on disk.
        done: Option<oneshot::Sender<()>>,
    },
    RoReq {
        request: Box<Mos>,
        reply: oneshot::Sender<Mos>,
    },
    ReserveIds {
        block: i32,
        reply: oneshot::Sender<Result<i32, String>>,
    },
    RoInfo {
        ro_id: String,
        reply: oneshot::Sender<Option<RoInfo>>,
    },
    OutboxAdd {
        ncs_id: String,
        port: PortRole,
        doc: String,
        reply: oneshot::Sender<Result<i64, String>>,
    },
    OutboxRemove {
        seq: i64,
    },
    OutboxLoad {
        ncs_id: String,
        port: PortRole,
        reply: oneshot::Sender<Vec<(i64, String)>>,
    },
    Close,
}

/// What the status layer needs to know about a running order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoInfo {
    /// roReadyToAir: Some(true) READY, Some(false) NOT READY, None never received.
    pub ready_to_air: Option<bool>,
}

/// Handle to the state, which runs on its own thread (SQLite is blocking). Cloneable;
/// the thread ends when every handle is dropped.
#[derive(Clone)]
pub struct StateHandle {
    tx: mpsc::UnboundedSender<StateCmd>,
    tokens: Arc<AtomicU64>,
    core: Arc<Mutex<Core>>,
}

/// What the state thread owns. A connection takes it for a moment to apply its own inbox
/// message when the thread is idle ([`Ticket::apply`]), which spares the hand-over to the
/// thread and back.
struct Core {
    /// `None` once the thread has closed the store.
    state: Option<State>,
    inbox: Inbox,
}

/// Locks the core. A panic while it was held (applying a message on a connection's
/// thread) may have left the inbox queue and the running orders half changed: the store
/// is then stopped (nothing more is written, every edit is refused) and a restart reads
/// the disk, as after a panic of the state thread.
fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(|poisoned| {
        let core = poisoned.into_inner();
        if let Some(state) = &core.state
            && state.store.check_healthy().is_ok()
        {
            state.store.poison();
            tracing::error!(
                "a panic while applying a message: the store writes nothing more; restart the gateway"
            );
        }
        core
    })
}

/// A received message kept in the inbox ([`StateHandle::receive`]) while it is parsed.
/// [`Ticket::apply`] applies it; dropping the ticket refuses it (the message was not an
/// edit after all, was refused by the session, or its connection went away).
pub struct Ticket {
    token: u64,
    tx: mpsc::UnboundedSender<StateCmd>,
    core: Arc<Mutex<Core>>,
    open: bool,
    /// Reports when the message is on disk in the inbox.
    kept: Option<oneshot::Receiver<Result<(), String>>>,
}

impl Ticket {
    /// Applies the message, parsed, in the order the inbox received it (see
    /// [`State::handle`]), and returns once it is also on disk in the inbox: the reply may
    /// then be sent. None when the state is gone.
    ///
    /// The disk write of the inbox row and the application overlap: the applied edit's
    /// commit follows the row in the write-ahead log, so a power cut before the row is on
    /// disk loses both, and the edit was not acknowledged.
    pub async fn apply(mut self, request: Mos) -> Option<Result<Outcome, String>> {
        self.open = false;
        let (reply, rx) = oneshot::channel();
        let mut resolution = Some((Box::new(request), reply));
        // When the state thread is idle and this message is next in its inbox, the message
        // is applied here, on this connection's thread: no hand-over to that thread and
        // back. (Only this message: others' would hold this thread up.)
        if let Ok(mut core) = self.core.try_lock()
            && let Core {
                state: Some(state),
                inbox,
            } = &mut *core
            && inbox.next_alone(self.token)
            && let Some((request, reply)) = resolution.take()
        {
            #[cfg(test)]
            {
                inbox.applied_by_connections += 1;
            }
            inbox.resolve(state, self.token, Resolution::Apply { request, reply });
        }
        if let Some((request, reply)) = resolution {
            let token = self.token;
            let cmd = StateCmd::ApplyReceived {
                token,
                request,
                reply,
            };
            self.tx.send(cmd).ok()?;
        }
        let outcome = rx.await.ok()?;
        let kept = match self.kept.take() {
            Some(kept) => kept.await,
            None => Ok(Ok(())),
        };
        Some(match (outcome, kept) {
            // The cause first: a failed sync also poisons the store, which the
            // application may have met already.
            (_, Ok(Err(e))) => Err(format!("cannot keep the message on disk: {e}")),
            (Err(e), _) => Err(e),
            (Ok(outcome), Ok(Ok(()))) => Ok(outcome),
            (Ok(_), Err(_)) => Err("the message was not kept".to_string()),
        })
    }

    /// Refuses the message (it was not an edit after all, or the session refused it):
    /// returns once it has left the inbox on disk, so that a reply sent after cannot be
    /// contradicted by the message being judged again at start, perhaps under a changed
    /// configuration. (Dropping the ticket refuses it without waiting.)
    pub async fn refuse(mut self) {
        self.open = false;
        let (done, rx) = oneshot::channel();
        let cmd = StateCmd::Unreceive {
            token: self.token,
            done: Some(done),
        };
        if self.tx.send(cmd).is_ok() {
            let _ = rx.await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.open {
            let _ = self.tx.send(StateCmd::Unreceive {
                token: self.token,
                done: None,
            });
        }
    }
}

/// What becomes of an inbox message.
enum Resolution {
    Apply {
        request: Box<Mos>,
        reply: oneshot::Sender<Result<Outcome, String>>,
    },
    Refuse {
        /// Dropped once the message has left the inbox on disk.
        done: Option<oneshot::Sender<()>>,
    },
}

/// An inbox message on the state thread, until its resolution comes.
struct Waiting {
    seq: i64,
    token: u64,
    port: PortRole,
    doc: Arc<String>,
    resolution: Option<Resolution>,
}

/// The inbox messages not yet resolved, in the order they were kept. They are applied in
/// that order, whatever order their parses finish in, so that applying the inbox again
/// after a power cut gives the same result.
#[derive(Default)]
struct Inbox {
    waiting: VecDeque<Waiting>,
    /// Tickets whose message the store could not keep, with the error.
    failed: HashMap<u64, String>,
    /// The thread that syncs inbox rows to disk (`None`: synced on the state thread).
    syncer: Option<std::sync::mpsc::Sender<SyncJob>>,
    /// Messages applied on their connection's thread (tests).
    #[cfg(test)]
    applied_by_connections: usize,
}

/// An inbox row to get onto the disk, and whom to tell.
struct SyncJob {
    wal: WalSync,
    kept: oneshot::Sender<Result<(), String>>,
}

/// Starts the thread that syncs inbox rows to disk while the state thread goes on
/// applying. One sync covers every row written before it starts, so rows that queue up
/// while a sync runs share the next one.
fn spawn_syncer() -> std::io::Result<(
    std::sync::mpsc::Sender<SyncJob>,
    std::thread::JoinHandle<()>,
)> {
    let (tx, rx) = std::sync::mpsc::channel::<SyncJob>();
    let thread = std::thread::Builder::new()
        .name("inbox-sync".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut jobs = vec![first];
                jobs.extend(rx.try_iter());
                // The store's one log: one sync serves the whole batch.
                let r = jobs[0].wal.sync().map_err(|e| e.to_string());
                for job in jobs {
                    let _ = job.kept.send(r.clone());
                }
            }
        })?;
    Ok((tx, thread))
}

impl Inbox {
    /// Whether the ticket's message is the next to resolve, and resolving it resolves
    /// nothing else (no later message is waiting for it with its own resolution).
    fn next_alone(&self, token: u64) -> bool {
        let mut waiting = self.waiting.iter();
        waiting.next().is_some_and(|w| w.token == token)
            && waiting.next().is_none_or(|w| w.resolution.is_none())
    }

    fn receive(
        &mut self,
        state: &mut State,
        token: u64,
        port: PortRole,
        peer: Option<IpAddr>,
        doc: Arc<String>,
        kept: oneshot::Sender<Result<(), String>>,
    ) {
        let peer = peer.map(|p| p.to_string());
        let seq = match state.store.receive(port.name(), peer.as_deref(), &doc) {
            Ok(seq) => seq,
            Err(e) => {
                tracing::error!("cannot keep a received message: {e}");
                self.failed.insert(token, e.to_string());
                return;
            }
        };
        self.waiting.push_back(Waiting {
            seq,
            token,
            port,
            doc,
            resolution: None,
        });
        match state.store.wal_sync() {
            // SQLite synced the row itself.
            Ok(None) => {
                let _ = kept.send(Ok(()));
            }
            Ok(Some(wal)) => {
                let job = SyncJob { wal, kept };
                let job = match &self.syncer {
                    Some(syncer) => match syncer.send(job) {
                        Ok(()) => return,
                        Err(std::sync::mpsc::SendError(job)) => job,
                    },
                    None => job,
                };
                let _ = job.kept.send(job.wal.sync().map_err(|e| e.to_string()));
            }
            Err(e) => {
                let _ = kept.send(Err(e.to_string()));
            }
        }
    }

    fn resolve(&mut self, state: &mut State, token: u64, resolution: Resolution) {
        if let Some(e) = self.failed.remove(&token) {
            if let Resolution::Apply { reply, .. } = resolution {
                let _ = reply.send(Err(format!("cannot keep the message: {e}")));
            }
            return;
        }
        match self.waiting.iter_mut().find(|w| w.token == token) {
            Some(w) => w.resolution = Some(resolution),
            None => {
                if let Resolution::Apply { reply, .. } = resolution {
                    let _ = reply.send(Err("the message was not kept".to_string()));
                }
                return;
            }
        }
        while self.waiting.front().is_some_and(|w| w.resolution.is_some()) {
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            match w.resolution {
                Some(Resolution::Apply { request, reply }) => {
                    let r = state
                        .handle(w.port, *request, Some(&w.doc), Some(w.seq))
                        .map_err(|e| e.to_string());
                    let _ = reply.send(r);
                }
                Some(Resolution::Refuse { done }) => {
                    if let Err(e) = state.store.forget_received(w.seq) {
                        tracing::error!("cannot remove message {} from the inbox: {e}", w.seq);
                    }
                    drop(done);
                }
                None => {}
            }
        }
    }
}

impl StateHandle {
    /// Starts the state thread.
    pub fn spawn(state: State) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (tx, mut rx) = mpsc::unbounded_channel::<StateCmd>();
        let core = Arc::new(Mutex::new(Core {
            state: Some(state),
            inbox: Inbox::default(),
        }));
        let owner = Arc::clone(&core);
        let thread = std::thread::Builder::new()
            .name("running-order-state".into())
            .spawn(move || {
                let syncer = match spawn_syncer() {
                    Ok((tx, thread)) => {
                        lock(&owner).inbox.syncer = Some(tx);
                        Some(thread)
                    }
                    Err(e) => {
                        tracing::warn!("no inbox sync thread ({e}): inbox rows are synced in turn");
                        None
                    }
                };
                let mut closed = None;
                while let Some(cmd) = rx.blocking_recv() {
                    let mut guard = lock(&owner);
                    if matches!(cmd, StateCmd::Close) {
                        // Taken under the lock: no connection applies anything after this.
                        closed = Some((guard.state.take(), std::mem::take(&mut guard.inbox)));
                        break;
                    }
                    let Core {
                        state: Some(state),
                        inbox,
                    } = &mut *guard
                    else {
                        break;
                    };
                    match cmd {
                        StateCmd::Apply {
                            port,
                            request,
                            raw,
                            reply,
                        } => {
                            let r = state
                                .handle(port, *request, raw.as_deref(), None)
                                .map_err(|e| e.to_string());
                            let _ = reply.send(r);
                        }
                        StateCmd::Receive {
                            token,
                            port,
                            peer,
                            doc,
                            kept,
                        } => inbox.receive(state, token, port, peer, doc, kept),
                        StateCmd::ApplyReceived {
                            token,
                            request,
                            reply,
                        } => inbox.resolve(state, token, Resolution::Apply { request, reply }),
                        StateCmd::Unreceive { token, done } => {
                            inbox.resolve(state, token, Resolution::Refuse { done })
                        }
                        StateCmd::RoReq { request, reply } => {
                            let ro_id = crate::session::ro_id_of(&request.message).to_string();
                            let _ = reply.send(state.answer_ro_req(&request, &ro_id));
                        }
                        // Handled above.
                        StateCmd::Close => {}
                        StateCmd::Rundown { ro_id, reply } => {
                            let _ = reply.send(state.rundowns().get(&ro_id).cloned());
                        }
                        StateCmd::RoIds { reply } => {
                            let ids = state.rundowns().iter().map(|(id, _)| id.to_string());
                            let _ = reply.send(ids.collect());
                        }
                        StateCmd::SetOnAir { element, on } => {
                            let key = format!("onair:{element}");
                            let r = if on {
                                state.store.set_meta(&key, "")
                            } else {
                                state.store.delete_meta(&key)
                            };
                            if let Err(e) = r {
                                tracing::warn!("cannot note what is on air: {e}");
                            }
                        }
                        StateCmd::OnAir { reply } => {
                            let on = state.store.meta_under("onair:").unwrap_or_else(|e| {
                                tracing::error!("cannot read what was on air: {e}");
                                Vec::new()
                            });
                            let _ = reply.send(on.into_iter().map(|(k, _)| k).collect());
                        }
                        StateCmd::Owners { reply } => {
                            let owners = state.store.owners().unwrap_or_else(|e| {
                                tracing::error!("cannot read the running orders' NCSs: {e}");
                                Vec::new()
                            });
                            let _ = reply.send(owners);
                        }
                        StateCmd::OutboxAdd {
                            ncs_id,
                            port,
                            doc,
                            reply,
                        } => {
                            let r = state.store.outbox_add(&ncs_id, port.name(), &doc);
                            let _ = reply.send(r.map_err(|e| e.to_string()));
                        }
                        StateCmd::OutboxRemove { seq } => {
                            if let Err(e) = state.store.outbox_remove(seq) {
                                tracing::error!("cannot forget delivered message {seq}: {e}");
                            }
                        }
                        StateCmd::OutboxLoad {
                            ncs_id,
                            port,
                            reply,
                        } => {
                            let r = state.store.outbox_load(&ncs_id, port.name());
                            let _ = reply.send(r.unwrap_or_else(|e| {
                                tracing::error!("cannot read queued messages: {e}");
                                Vec::new()
                            }));
                        }
                        StateCmd::RoInfo { ro_id, reply } => {
                            let info = state.rundowns().get(&ro_id).map(|r| RoInfo {
                                ready_to_air: r.ready_to_air().map(|a| a == AirStatus::Ready),
                            });
                            let _ = reply.send(info);
                        }
                        StateCmd::ReserveIds { block, reply } => {
                            let _ = reply
                                .send(state.reserve_message_ids(block).map_err(|e| e.to_string()));
                        }
                    }
                }
                // Nothing more is applied; syncs under way finish before the store closes.
                let (state, inbox) = closed.unwrap_or_else(|| {
                    let mut core = lock(&owner);
                    (core.state.take(), std::mem::take(&mut core.inbox))
                });
                drop(inbox);
                if let Some(syncer) = syncer {
                    let _ = syncer.join();
                }
                drop(state);
                info!("running-order store closed");
            })?;
        let tokens = Arc::new(AtomicU64::new(0));
        Ok((Self { tx, tokens, core }, thread))
    }

    /// Keeps a message in the inbox, synced to disk, while the caller parses it: the
    /// write overlaps the parse, and the commit of the applied message then need not wait
    /// for the disk again. For messages that are probably running-order edits; apply or
    /// drop the ticket.
    pub fn receive(&self, port: PortRole, peer: Option<IpAddr>, doc: Arc<String>) -> Ticket {
        let token = self.tokens.fetch_add(1, Ordering::Relaxed);
        let (kept, kept_rx) = oneshot::channel();
        let _ = self.tx.send(StateCmd::Receive {
            token,
            port,
            peer,
            doc,
            kept,
        });
        Ticket {
            token,
            tx: self.tx.clone(),
            core: Arc::clone(&self.core),
            open: true,
            kept: Some(kept_rx),
        }
    }

    /// Applies a running-order message (see [`State::handle`]). None when the state is gone.
    pub async fn apply(
        &self,
        port: PortRole,
        request: Mos,
        raw: Option<String>,
    ) -> Option<Result<Outcome, String>> {
        let (reply, rx) = oneshot::channel();
        let cmd = StateCmd::Apply {
            port,
            request: Box::new(request),
            raw,
            reply,
        };
        self.tx.send(cmd).ok()?;
        rx.await.ok()
    }

    /// Answers roReq with roList or a roAck error. None when the state is gone.
    pub async fn ro_req(&self, request: Mos) -> Option<Mos> {
        let (reply, rx) = oneshot::channel();
        let cmd = StateCmd::RoReq {
            request: Box::new(request),
            reply,
        };
        self.tx.send(cmd).ok()?;
        rx.await.ok()
    }

    /// Closes the store after the commands already queued; later commands get no answer.
    pub async fn close(&self) {
        let _ = self.tx.send(StateCmd::Close);
    }

    /// Persists a message queued for an NCS's port; returns its key.
    pub async fn outbox_add(
        &self,
        ncs_id: &str,
        port: PortRole,
        doc: String,
    ) -> Result<i64, String> {
        let (reply, rx) = oneshot::channel();
        let cmd = StateCmd::OutboxAdd {
            ncs_id: ncs_id.to_string(),
            port,
            doc,
            reply,
        };
        self.tx.send(cmd).map_err(|_| "store closed".to_string())?;
        rx.await.map_err(|_| "store closed".to_string())?
    }

    /// Forgets a delivered message.
    pub async fn outbox_remove(&self, seq: i64) {
        let _ = self.tx.send(StateCmd::OutboxRemove { seq });
    }

    /// The messages still queued for an NCS's port, oldest first.
    pub async fn outbox_load(&self, ncs_id: &str, port: PortRole) -> Vec<(i64, String)> {
        let (reply, rx) = oneshot::channel();
        let cmd = StateCmd::OutboxLoad {
            ncs_id: ncs_id.to_string(),
            port,
            reply,
        };
        if self.tx.send(cmd).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// A copy of a running order as held now (None when we hold none of that roID or the
    /// state is gone). Copies it: for the NMOS bridge, not for the ack path.
    pub async fn rundown(&self, ro_id: &str) -> Option<Rundown> {
        let (reply, rx) = oneshot::channel();
        let cmd = StateCmd::Rundown {
            ro_id: ro_id.to_string(),
            reply,
        };
        self.tx.send(cmd).ok()?;
        rx.await.ok()?
    }

    /// Notes that the item `element` (see `StatusTarget::element_key`) is on air (PLAY) or
    /// no longer: what is on air is told PLAY again after a restart, not READY.
    pub fn set_on_air(&self, element: String, on: bool) {
        let _ = self.tx.send(StateCmd::SetOnAir { element, on });
    }

    /// The items noted on air ([`StateHandle::set_on_air`]).
    pub async fn on_air(&self) -> Vec<String> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(StateCmd::OnAir { reply }).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The NCS that last changed each running order, as `(roID, ncsID)`, from the store
    /// (statuses go there, also after a restart).
    pub async fn owners(&self) -> Vec<(String, String)> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(StateCmd::Owners { reply }).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The roIDs of every running order held now.
    pub async fn ro_ids(&self) -> Vec<String> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(StateCmd::RoIds { reply }).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The running order's readiness, or None when we do not hold it.
    pub async fn ro_info(&self, ro_id: &str) -> Option<RoInfo> {
        let (reply, rx) = oneshot::channel();
        let cmd = StateCmd::RoInfo {
            ro_id: ro_id.to_string(),
            reply,
        };
        self.tx.send(cmd).ok()?;
        rx.await.ok()?
    }

    /// Reserves a block of outgoing messageIDs (persisted first); returns the first.
    pub async fn reserve_ids(&self, block: i32) -> Result<i32, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(StateCmd::ReserveIds { block, reply })
            .map_err(|_| "store closed".to_string())?;
        rx.await.map_err(|_| "store closed".to_string())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn doc(id: u32, body: &str) -> String {
        format!("<mos><mosID>GW</mosID><ncsID>NCS</ncsID><messageID>{id}</messageID>{body}</mos>")
    }

    fn ro_create(ro: &str, stories: &[&str]) -> String {
        let stories: String = stories
            .iter()
            .map(|s| format!("<story><storyID>{s}</storyID></story>"))
            .collect();
        format!("<roCreate><roID>{ro}</roID><roSlug>{ro}</roSlug>{stories}</roCreate>")
    }

    fn append(ro: &str, story: &str) -> String {
        format!(
            "<roStoryAppend><roID>{ro}</roID><story><storyID>{story}</storyID></story></roStoryAppend>"
        )
    }

    fn parsed(text: &str) -> Mos {
        Mos::parse(text, ParseOptions::lenient()).unwrap().mos
    }

    fn story_ids(state: &State, ro: &str) -> Vec<String> {
        state
            .running_order(ro)
            .map(|r| r.stories.into_iter().map(|s| s.id).collect())
            .unwrap_or_default()
    }

    fn inbox_rows(dir: &Path) -> i64 {
        rusqlite::Connection::open(dir.join("gateway.db"))
            .unwrap()
            .query_row("SELECT COUNT(*) FROM inbox", [], |r| r.get(0))
            .unwrap()
    }

    fn is_ok(outcome: &Option<Result<Outcome, String>>) -> bool {
        matches!(outcome, Some(Ok(o)) if matches!(&o.reply.message, Message::RoAck(a) if a.is_ok()))
    }

    #[tokio::test]
    async fn inbox_messages_are_applied_in_the_order_they_were_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (handle, thread) = StateHandle::spawn(State::open(dir.path()).unwrap()).unwrap();
        let create = doc(1, &ro_create("R", &["S1"]));
        let edit = doc(2, &append("R", "S2"));
        let first = handle.receive(PortRole::Upper, None, Arc::new(create.clone()));
        let second = handle.receive(PortRole::Upper, None, Arc::new(edit.clone()));
        // The second parse finishes first: its edit waits for the roCreate kept before it.
        let waiting = tokio::spawn(second.apply(parsed(&edit)));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(
            !waiting.is_finished(),
            "applied before the message kept first"
        );
        assert!(is_ok(&first.apply(parsed(&create)).await));
        assert!(is_ok(&waiting.await.unwrap()));
        let r = handle.rundown("R").await.unwrap();
        let ids: Vec<_> = r.stories().map(|s| s.story.id.clone()).collect();
        assert_eq!(ids, ["S1", "S2"]);
        handle.close().await;
        thread.join().unwrap();
        // The roCreate stays as the snapshot's document; the edit went to the journal.
        assert_eq!(inbox_rows(dir.path()), 1);
        let state = State::open(dir.path()).unwrap();
        assert_eq!(story_ids(&state, "R"), ["S1", "S2"]);
        assert!(state.store.received().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_dropped_ticket_is_forgotten_and_does_not_hold_up_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let (handle, thread) = StateHandle::spawn(State::open(dir.path()).unwrap()).unwrap();
        let refused = doc(1, &ro_create("X", &["S"]));
        let create = doc(2, &ro_create("R", &["S1"]));
        let dropped = handle.receive(PortRole::Upper, None, Arc::new(refused.clone()));
        let kept = handle.receive(PortRole::Upper, None, Arc::new(create.clone()));
        let applied = tokio::spawn(kept.apply(parsed(&create)));
        drop(dropped);
        assert!(is_ok(&applied.await.unwrap()));
        // A refused edit kept in the inbox is removed, and changes nothing.
        let bad = doc(3, &append("NOPE", "S9"));
        let t = handle.receive(PortRole::Upper, None, Arc::new(bad.clone()));
        assert!(!is_ok(&t.apply(parsed(&bad)).await));
        assert!(handle.rundown("X").await.is_none());
        handle.close().await;
        thread.join().unwrap();
        assert_eq!(inbox_rows(dir.path()), 1);
        let state = State::open(dir.path()).unwrap();
        assert_eq!(story_ids(&state, "R"), ["S1"]);
        assert!(state.running_order("X").is_none());
    }

    /// A power cut after the inbox write and before the commit reached the disk leaves the
    /// messages in the inbox only: at start they are applied again, in order, and a
    /// message that is refused again is dropped.
    #[test]
    fn messages_left_in_the_inbox_are_applied_again_at_start() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = Store::open(dir.path()).unwrap();
            for text in [
                doc(1, &ro_create("R", &["S1"])),
                doc(2, &append("R", "S2")),
                doc(3, &append("NOPE", "S3")),
                "<mos><mosID>GW</mos>".to_string(),
                doc(5, &ro_create("OTHER", &["S1"])),
                doc(6, &append("R", "S4")),
            ] {
                store.receive("upper", Some("127.0.0.1"), &text).unwrap();
            }
        }
        let mut state = State::open(dir.path()).unwrap();
        assert!(state.running_order("R").is_none());
        let log = state
            .replay_received(|port, peer, parsed| {
                assert_eq!((port, peer), (PortRole::Upper, Some("127.0.0.1")));
                match crate::session::ro_id_of(&parsed.mos.message) {
                    "OTHER" => Err("not admitted".into()),
                    _ => Ok(()),
                }
            })
            .unwrap();
        assert_eq!(log.len(), 6, "{log:#?}");
        for (line, want) in log.iter().zip([
            "(roCreate): applied",
            "(roStoryAppend): applied",
            "(roStoryAppend): refused",
            ": refused",
            ": refused: not admitted",
            "(roStoryAppend): applied",
        ]) {
            assert!(line.contains(want), "{line} / {want}");
        }
        assert_eq!(story_ids(&state, "R"), ["S1", "S2", "S4"]);
        assert!(state.running_order("OTHER").is_none());
        assert!(state.store.received().unwrap().is_empty());
        drop(state);
        let state = State::open(dir.path()).unwrap();
        assert_eq!(story_ids(&state, "R"), ["S1", "S2", "S4"]);
        // Applied once: the retry of message 2 is recognised.
        let mut state = state;
        let retry = doc(2, &append("R", "S2"));
        let o = state
            .handle(PortRole::Upper, parsed(&retry), Some(&retry), None)
            .unwrap();
        assert!(o.duplicate);
    }

    #[test]
    fn a_snapshot_kept_in_the_inbox_goes_with_its_running_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let apply_received = |state: &mut State, text: String| {
            let seq = state.store.receive("upper", None, &text).unwrap();
            state
                .handle(PortRole::Upper, parsed(&text), Some(&text), Some(seq))
                .unwrap()
        };
        apply_received(&mut state, doc(1, &ro_create("R", &["S1"])));
        assert_eq!(inbox_rows(dir.path()), 1);
        // roReplace: the new document replaces the old one in the inbox too.
        let replace = ro_create("R", &["S2"]).replace("roCreate>", "roReplace>");
        apply_received(&mut state, doc(2, &replace));
        assert_eq!(inbox_rows(dir.path()), 1);
        drop(state);
        let mut state = State::open(dir.path()).unwrap();
        assert_eq!(story_ids(&state, "R"), ["S2"]);
        let delete = doc(3, "<roDelete><roID>R</roID></roDelete>");
        state
            .handle(PortRole::Upper, parsed(&delete), Some(&delete), None)
            .unwrap();
        assert_eq!(inbox_rows(dir.path()), 0);
    }

    /// A failed sync poisons the store: the edit whose sync failed is NACKed but stays
    /// applied, as it is in the database; after it nothing is acknowledged, not even a retry
    /// (its stored reply may stand for a commit the disk never got). A restart reads the disk.
    #[test]
    fn after_a_failed_sync_nothing_is_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let create = doc(1, &ro_create("R", &["S1"]));
        let o = state
            .handle(PortRole::Upper, parsed(&create), Some(&create), None)
            .unwrap();
        assert!(matches!(&o.reply.message, Message::RoAck(a) if a.is_ok()));
        state.store.fail_syncs_for_test();
        let edit = doc(2, &append("R", "S2"));
        let e = state
            .handle(PortRole::Upper, parsed(&edit), Some(&edit), None)
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("sync to disk failed, restart the gateway"),
            "{e}"
        );
        // Held as the database holds it.
        assert_eq!(story_ids(&state, "R"), ["S1", "S2"]);
        for (text, what) in [
            (&create, "a retry"),
            (&edit, "a retry"),
            (&doc(3, &append("R", "S3")), "an edit"),
        ] {
            let e = state
                .handle(PortRole::Upper, parsed(text), Some(text), None)
                .expect_err(what);
            assert!(e.to_string().contains("restart the gateway"), "{e}");
        }
        assert!(state.store.receive("upper", None, &edit).is_err());
        assert_eq!(story_ids(&state, "R"), ["S1", "S2"]);
        drop(state);
        // A restart reads the disk (here the commit did reach it) and accepts edits again.
        let mut state = State::open(dir.path()).unwrap();
        assert_eq!(story_ids(&state, "R"), ["S1", "S2"]);
        let next = doc(4, &append("R", "S3"));
        let o = state
            .handle(PortRole::Upper, parsed(&next), Some(&next), None)
            .unwrap();
        assert!(matches!(&o.reply.message, Message::RoAck(a) if a.is_ok()));
    }

    /// An inbox row whose sync fails: the message is NACKed although applied, and the
    /// store is poisoned for the next.
    #[tokio::test]
    async fn an_inbox_row_whose_sync_fails_is_not_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        state.store.fail_syncs_for_test();
        let (handle, thread) = StateHandle::spawn(state).unwrap();
        let create = doc(1, &ro_create("R", &["S1"]));
        let t = handle.receive(PortRole::Upper, None, Arc::new(create.clone()));
        let e = t.apply(parsed(&create)).await.unwrap().unwrap_err();
        assert!(
            e.starts_with("cannot keep the message on disk: sync to disk failed"),
            "{e}"
        );
        let next = doc(2, &ro_create("Q", &["S1"]));
        let t = handle.receive(PortRole::Upper, None, Arc::new(next.clone()));
        let e = t.apply(parsed(&next)).await.unwrap().unwrap_err();
        assert!(e.contains("restart the gateway"), "{e}");
        assert!(handle.rundown("Q").await.is_none());
        handle.close().await;
        thread.join().unwrap();
    }

    /// An inbox message whose commit fails is NACKed and changes nothing held; the store
    /// goes on (the commit was rolled back). Its row stays in the inbox: it was not
    /// acknowledged, and the restart applies it (its retry is then recognised).
    #[tokio::test]
    async fn an_inbox_message_whose_commit_fails_is_not_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let create = doc(1, &ro_create("R", &["S1"]));
        state
            .handle(PortRole::Upper, parsed(&create), Some(&create), None)
            .unwrap();
        state.store.fail_commits_for_test();
        let (handle, thread) = StateHandle::spawn(state).unwrap();
        let edit = doc(2, &append("R", "S2"));
        let t = handle.receive(PortRole::Upper, None, Arc::new(edit.clone()));
        let e = t.apply(parsed(&edit)).await.unwrap().unwrap_err();
        assert!(e.contains("database or disk is full"), "{e}");
        let held = handle.rundown("R").await.unwrap();
        let ids: Vec<_> = held.stories().map(|s| s.story.id.clone()).collect();
        assert_eq!(ids, ["S1"]);
        handle.close().await;
        thread.join().unwrap();
        assert_eq!(inbox_rows(dir.path()), 1);
        let mut state = State::open(dir.path()).unwrap();
        assert_eq!(story_ids(&state, "R"), ["S1"]);
        let log = state.replay_received(|_, _, _| Ok(())).unwrap();
        assert_eq!(log.len(), 1, "{log:#?}");
        assert!(log[0].contains("(roStoryAppend): applied"), "{}", log[0]);
        assert_eq!(story_ids(&state, "R"), ["S1", "S2"]);
        assert_eq!(inbox_rows(dir.path()), 0);
        let o = state
            .handle(PortRole::Upper, parsed(&edit), Some(&edit), None)
            .unwrap();
        assert!(o.duplicate, "the retry is recognised");
    }

    #[tokio::test]
    async fn a_connection_applies_its_own_inbox_message_when_the_thread_is_idle() {
        let dir = tempfile::tempdir().unwrap();
        let (handle, thread) = StateHandle::spawn(State::open(dir.path()).unwrap()).unwrap();
        let create = doc(1, &ro_create("R", &["S1"]));
        let edit = doc(2, &append("R", "S2"));
        for (n, text) in [&create, &edit, &edit].into_iter().enumerate() {
            let t = handle.receive(PortRole::Upper, None, Arc::new(text.clone()));
            // A round trip through the thread: the message is kept; then the thread is idle.
            handle.ro_ids().await;
            drop(lock(&handle.core));
            let o = t.apply(parsed(text)).await.unwrap().unwrap();
            assert!(matches!(&o.reply.message, Message::RoAck(a) if a.is_ok()));
            assert_eq!(o.duplicate, n == 2, "the retry is recognised");
            assert_eq!(lock(&handle.core).inbox.applied_by_connections, n + 1);
        }
        handle.close().await;
        thread.join().unwrap();
        // Committed: nothing left to apply at start (the roCreate is its snapshot's document).
        let state = State::open(dir.path()).unwrap();
        assert!(state.store.received().unwrap().is_empty());
        assert_eq!(story_ids(&state, "R"), ["S1", "S2"]);
    }

    /// A refusal leaves the inbox on disk before the reply: judged again at start, under a
    /// changed configuration, the message could otherwise be applied after its NACK.
    #[tokio::test]
    async fn a_refused_inbox_message_leaves_the_inbox_on_disk_before_the_reply() {
        // Refused by the state (unknown running order): removed and synced before the
        // outcome (the reply) is returned.
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let edit = doc(1, &append("NOPE", "S1"));
        let seq = state.store.receive("upper", None, &edit).unwrap();
        let before = state.store.syncs_for_test();
        let o = state
            .handle(PortRole::Upper, parsed(&edit), Some(&edit), Some(seq))
            .unwrap();
        assert!(matches!(&o.reply.message, Message::RoAck(a) if !a.is_ok()));
        assert_eq!(inbox_rows(dir.path()), 0);
        assert_eq!(state.store.syncs_for_test(), before + 1, "removed durably");
        drop(state);
        // Refused by the session (the ticket): gone when the refusal returns.
        let (handle, thread) = StateHandle::spawn(State::open(dir.path()).unwrap()).unwrap();
        let create = doc(2, &ro_create("R", &["S1"]));
        let t = handle.receive(PortRole::Upper, None, Arc::new(create));
        handle.ro_ids().await;
        assert_eq!(inbox_rows(dir.path()), 1);
        t.refuse().await;
        assert_eq!(inbox_rows(dir.path()), 0);
        handle.close().await;
        thread.join().unwrap();
    }

    /// A panic while the state was taken (on a connection's thread) stops the store:
    /// what is held may be half changed, so nothing more is accepted until a restart.
    #[tokio::test]
    async fn a_panic_while_applying_stops_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let (handle, thread) = StateHandle::spawn(State::open(dir.path()).unwrap()).unwrap();
        let core = Arc::clone(&handle.core);
        let panicked = std::thread::spawn(move || {
            let _core = lock(&core);
            panic!("injected");
        })
        .join();
        assert!(panicked.is_err());
        let create = doc(1, &ro_create("R", &["S1"]));
        let e = handle
            .apply(PortRole::Upper, parsed(&create), Some(create.clone()))
            .await
            .unwrap()
            .unwrap_err();
        assert!(e.contains("restart the gateway"), "{e}");
        assert!(handle.rundown("R").await.is_none());
        handle.close().await;
        thread.join().unwrap();
        // A restart accepts edits again.
        let mut state = State::open(dir.path()).unwrap();
        let o = state
            .handle(PortRole::Upper, parsed(&create), Some(&create), None)
            .unwrap();
        assert!(matches!(&o.reply.message, Message::RoAck(a) if a.is_ok()));
    }
}
