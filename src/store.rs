//! The durable store: SQLite (WAL) under the data directory.
//!
//! Running orders are kept as a snapshot (the roList document, the story bodies as
//! roStorySend documents, the roReadyToAir flag) plus a journal of the edit messages
//! accepted since the snapshot, so a small edit to a long running order writes only the
//! edit. Every acknowledged message is committed in one transaction together with its
//! reply (for retries with the same messageID) before the ack is sent.
//!
//! Two ways make a message durable:
//! - its commit is synced to disk before the ack; or
//! - the message was first kept in the `inbox` table by [`Store::receive`], synced to disk
//!   while the gateway parsed it. Its commit then removes it from the inbox and is not
//!   synced on its own: it reaches the disk with the next synced write. After a power cut
//!   the inbox still holds every message whose commit was lost, and the state applies them
//!   again, in order, at start ([`Store::received`]).
//!
//! Either way a crash or power cut at any moment loses nothing acknowledged.
//!
//! The connection runs with `synchronous = NORMAL` (WAL mode): SQLite writes each commit to
//! the write-ahead log without waiting for the disk, and a synced write is followed by an
//! `fdatasync` of the log file ([`Store::sync`]), which makes it and every commit before it
//! durable, exactly as `synchronous = FULL` would. Choosing per write this way avoids
//! switching the pragma, which recompiles statements each time. Where WAL mode is not
//! available (a file system without shared memory), every commit is synced by SQLite
//! (`synchronous = FULL`) instead.
//!
//! This module knows documents and rows, not MOS semantics.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, OptionalExtension, params};

/// Store errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The write-ahead log could not be synced to disk.
    #[error("sync to disk failed, restart the gateway ({source}; store {path})")]
    Sync {
        /// The write-ahead log file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The store was stopped ([`Store::poison`]): a sync to disk failed earlier, so what
    /// it wrote since its last good sync may never reach the disk (Linux marks the lost
    /// pages clean, so a later sync would wrongly succeed), or a panic interrupted an
    /// edit. Restart the gateway.
    #[error(
        "an earlier failure stopped the store, nothing more is written: restart the gateway (store {path})"
    )]
    Poisoned {
        /// The database file.
        path: PathBuf,
    },
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A running order as a snapshot: documents as written by the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The running order as a roList document.
    pub ro_list: String,
    /// Story bodies as roStorySend documents, by storyID.
    pub bodies: Vec<(String, String)>,
    /// roReadyToAir value, if one was received.
    pub ready: Option<String>,
}

/// A running order as stored: the snapshot and the edits accepted after it, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredRunningOrder {
    /// roID.
    pub ro_id: String,
    /// The last snapshot.
    pub snapshot: Snapshot,
    /// Edit messages accepted since the snapshot, oldest first.
    pub journal: Vec<String>,
}

/// The reply kept for a processed message, so a retry gets the same reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// A digest of the request's content.
    pub digest: String,
    /// The reply document sent.
    pub reply: String,
}

/// A message handled, under its key: (ncsID, port, messageID) and what to answer a retry.
pub type ProcessedRow = (String, String, String, Processed);

/// What one acknowledged message changes.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// The running order changed, if any.
    pub ro_id: Option<String>,
    /// How it changed.
    pub change: RoChange,
    /// The processed-message record: (ncsID, port, messageID, record).
    pub processed: Option<ProcessedRow>,
    /// The NCS whose edit this is, recorded as the running order's owner (its statuses go
    /// there, also after a restart); `None` leaves the owner as it was.
    pub owner: Option<String>,
    /// The inbox row of the message, when it was kept there first ([`Store::receive`]):
    /// the commit removes it and is not synced on its own.
    pub received: Option<i64>,
    /// The new snapshot's roList document is that received message itself (a roCreate,
    /// roReplace or roList as received): the inbox row is kept as the snapshot's document
    /// instead of being copied, and `ro_list` is not used.
    pub ro_list_received: bool,
}

/// A message kept in the inbox and not yet committed or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Its inbox row; rows are numbered in the order they were kept.
    pub seq: i64,
    /// The port it arrived on (`lower`, `upper`, `query`).
    pub port: String,
    /// The peer's address, when known.
    pub peer: Option<String>,
    /// The document as received.
    pub doc: String,
}

/// How a commit changes one running order.
#[derive(Debug, Clone, Default)]
pub enum RoChange {
    /// Nothing.
    #[default]
    None,
    /// A new snapshot replaces everything stored for the running order.
    Snapshot(Snapshot),
    /// An edit message appended to the journal.
    Journal(String),
    /// The running order is gone.
    Delete,
}

/// The SQLite store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Journal entries kept per running order before a snapshot is due.
    pub journal_limit: usize,
    /// Processed-message records kept per NCS and port.
    pub processed_limit: usize,
    /// The next `seq` of a processed-message record per NCS and port, read from the table
    /// once: SQLite prepares the query that finds it again at every run (its planner
    /// statistics depend on the bound values), at a cost like the rest of a commit's.
    processed_next: HashMap<(String, String), i64>,
    /// The write-ahead log, opened once at open (SQLite removes it only when its last
    /// connection, this one, closes); `None` when SQLite syncs every commit itself (not in
    /// WAL mode).
    wal: Option<WalSync>,
    /// Set by the first failed sync, from any thread, or by [`Store::poison`]
    /// ([`StoreError::Poisoned`]).
    poisoned: Arc<AtomicBool>,
}

/// Syncs the store's write-ahead log from any thread ([`Store::wal_sync`]).
#[derive(Clone)]
pub struct WalSync {
    file: Arc<File>,
    path: Arc<Path>,
    poisoned: Arc<AtomicBool>,
    #[cfg(test)]
    test: Arc<TestHooks>,
}

/// Tests: count syncs, make them fail.
#[cfg(test)]
#[derive(Default)]
struct TestHooks {
    fail: AtomicBool,
    fail_commits: AtomicBool,
    syncs: std::sync::atomic::AtomicUsize,
}

impl WalSync {
    /// Makes every commit written before the call durable (`fdatasync` of the log). A
    /// failure poisons the store ([`StoreError::Poisoned`]).
    pub fn sync(&self) -> Result<(), StoreError> {
        #[cfg(test)]
        let synced = if self.test.fail.load(Ordering::SeqCst) {
            Err(std::io::Error::other("sync failure injected by a test"))
        } else {
            self.test.syncs.fetch_add(1, Ordering::SeqCst);
            self.file.sync_data()
        };
        #[cfg(not(test))]
        let synced = self.file.sync_data();
        synced.map_err(|source| {
            self.poisoned.store(true, Ordering::SeqCst);
            tracing::error!(
                path = %self.path.display(),
                "sync to disk failed ({source}): the store writes nothing more; restart the gateway"
            );
            StoreError::Sync {
                path: self.path.to_path_buf(),
                source,
            }
        })
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS snapshot (ro_id TEXT PRIMARY KEY, ro_list TEXT NOT NULL, ready TEXT, inbox_seq INTEGER);
CREATE TABLE IF NOT EXISTS snapshot_body (ro_id TEXT NOT NULL, story_id TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (ro_id, story_id));
CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, ro_id TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS journal_ro ON journal (ro_id, seq);
CREATE TABLE IF NOT EXISTS processed (ncs_id TEXT NOT NULL, port TEXT NOT NULL, message_id TEXT NOT NULL, digest TEXT NOT NULL, reply TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (ncs_id, port, message_id));
CREATE INDEX IF NOT EXISTS processed_seq ON processed (ncs_id, port, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, ncs_id TEXT NOT NULL, port TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS placeholder (obj_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, port TEXT NOT NULL, peer TEXT, doc TEXT NOT NULL);
";

impl Store {
    /// Opens (or creates) `gateway.db` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join("gateway.db");
        let conn = Connection::open(&path).map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let mut store = Self {
            conn,
            path,
            journal_limit: 256,
            processed_limit: 1024,
            processed_next: HashMap::new(),
            wal: None,
            poisoned: Arc::new(AtomicBool::new(false)),
        };
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| store.err(e))?;
        let wal_mode = mode.eq_ignore_ascii_case("wal");
        let synchronous = if wal_mode {
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;"
        } else {
            tracing::warn!(
                path = %store.path.display(),
                "journal mode {mode}, not WAL: every commit is synced to disk"
            );
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF;"
        };
        store
            .conn
            .execute_batch(synchronous)
            .map_err(|e| store.err(e))?;
        store.conn.execute_batch(SCHEMA).map_err(|e| store.err(e))?;
        // Databases from before the inbox: the snapshot's document may live in the inbox.
        let has_inbox_seq = store
            .conn
            .prepare("SELECT 1 FROM pragma_table_info('snapshot') WHERE name = 'inbox_seq'")
            .and_then(|mut q| q.exists([]))
            .map_err(|e| store.err(e))?;
        if !has_inbox_seq {
            store
                .conn
                .execute_batch("ALTER TABLE snapshot ADD COLUMN inbox_seq INTEGER")
                .map_err(|e| store.err(e))?;
        }
        if wal_mode {
            store.wal = Some(store.open_wal()?);
        }
        Ok(store)
    }

    /// Opens the write-ahead log for syncing: beside the database file as SQLite resolved
    /// it (through symlinks); the statements above have created it.
    fn open_wal(&self) -> Result<WalSync, StoreError> {
        let mut path = match self.conn.path() {
            Some(p) if !p.is_empty() => PathBuf::from(p).into_os_string(),
            _ => self.path.clone().into_os_string(),
        };
        path.push("-wal");
        let path = PathBuf::from(path);
        let file = File::options()
            .write(true)
            .open(&path)
            .map_err(|source| StoreError::Sync {
                path: path.clone(),
                source,
            })?;
        Ok(WalSync {
            file: Arc::new(file),
            path: path.into(),
            poisoned: Arc::clone(&self.poisoned),
            #[cfg(test)]
            test: Arc::default(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Stops every further write ([`StoreError::Poisoned`]): for a failure after which
    /// what is held may no longer match the disk.
    pub fn poison(&self) {
        self.poisoned.store(true, Ordering::SeqCst);
    }

    /// Refuses to go on after a failed sync or a poisoning ([`StoreError::Poisoned`]).
    pub fn check_healthy(&self) -> Result<(), StoreError> {
        if self.poisoned.load(Ordering::SeqCst) {
            Err(StoreError::Poisoned {
                path: self.path.clone(),
            })
        } else {
            Ok(())
        }
    }

    /// Makes every following sync fail (tests of what follows a failed sync).
    #[cfg(test)]
    pub(crate) fn fail_syncs_for_test(&self) {
        if let Some(w) = &self.wal {
            w.test.fail.store(true, Ordering::SeqCst);
        }
    }

    /// Makes every following commit fail and roll back (tests).
    #[cfg(test)]
    pub(crate) fn fail_commits_for_test(&self) {
        if let Some(w) = &self.wal {
            w.test.fail_commits.store(true, Ordering::SeqCst);
        }
    }

    /// How many syncs of the log so far (tests).
    #[cfg(test)]
    pub(crate) fn syncs_for_test(&self) -> usize {
        self.wal
            .as_ref()
            .map_or(0, |w| w.test.syncs.load(Ordering::SeqCst))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every stored running order.
    pub fn load_running_orders(&self) -> Result<Vec<StoredRunningOrder>, StoreError> {
        let e = |x| self.err(x);
        let mut out = Vec::new();
        let mut st = self
            .conn
            .prepare(
                "SELECT s.ro_id, COALESCE(i.doc, s.ro_list), s.ready FROM snapshot s \
                 LEFT JOIN inbox i ON i.seq = s.inbox_seq ORDER BY s.ro_id",
            )
            .map_err(e)?;
        let rows = st
            .query_map([], |r| {
                Ok(StoredRunningOrder {
                    ro_id: r.get(0)?,
                    snapshot: Snapshot {
                        ro_list: r.get(1)?,
                        bodies: Vec::new(),
                        ready: r.get(2)?,
                    },
                    journal: Vec::new(),
                })
            })
            .map_err(e)?;
        for row in rows {
            out.push(row.map_err(e)?);
        }
        let mut bodies = self
            .conn
            .prepare("SELECT story_id, doc FROM snapshot_body WHERE ro_id = ?1 ORDER BY story_id")
            .map_err(e)?;
        let mut journal = self
            .conn
            .prepare("SELECT doc FROM journal WHERE ro_id = ?1 ORDER BY seq")
            .map_err(e)?;
        for ro in &mut out {
            let b = bodies
                .query_map([&ro.ro_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(e)?;
            for x in b {
                ro.snapshot.bodies.push(x.map_err(e)?);
            }
            let j = journal.query_map([&ro.ro_id], |r| r.get(0)).map_err(e)?;
            for x in j {
                ro.journal.push(x.map_err(e)?);
            }
        }
        Ok(out)
    }

    /// The reply recorded for a message, if it was processed before.
    pub fn processed(
        &self,
        ncs_id: &str,
        port: &str,
        message_id: &str,
    ) -> Result<Option<Processed>, StoreError> {
        // Asked for every message with a messageID, so the statement is cached.
        self.conn
            .prepare_cached(
                "SELECT digest, reply FROM processed WHERE ncs_id = ?1 AND port = ?2 AND message_id = ?3",
            )
            .and_then(|mut q| {
                q.query_row(params![ncs_id, port, message_id], |r| {
                    Ok(Processed {
                        digest: r.get(0)?,
                        reply: r.get(1)?,
                    })
                })
                .optional()
            })
            .map_err(|e| self.err(e))
    }

    /// Number of journal entries stored for a running order.
    pub fn journal_len(&self, ro_id: &str) -> Result<usize, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM journal WHERE ro_id = ?1",
                [ro_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(|e| self.err(e))
    }

    /// Commits one message's changes atomically; durably, with a sync, unless the message
    /// is an inbox row (`received`), whose own sync makes it durable (module docs).
    pub fn commit(&mut self, commit: &Commit) -> Result<(), StoreError> {
        self.check_healthy()?;
        // The path is copied only for an error (a commit runs per message).
        let path = &self.path;
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let processed_limit = self.processed_limit as i64;
        let tx = self.conn.transaction().map_err(err)?;
        let keep_received =
            commit.ro_list_received && matches!(commit.change, RoChange::Snapshot(_));
        if let Some(seq) = commit.received.filter(|_| !keep_received) {
            exec(&tx, "DELETE FROM inbox WHERE seq = ?1", params![seq]).map_err(err)?;
        }
        if let Some(ro_id) = &commit.ro_id
            && matches!(commit.change, RoChange::Snapshot(_) | RoChange::Delete)
        {
            // The old snapshot's document, when it was a received message.
            exec(
                &tx,
                "DELETE FROM inbox WHERE seq = (SELECT inbox_seq FROM snapshot WHERE ro_id = ?1)",
                params![ro_id],
            )
            .map_err(err)?;
        }
        if let Some(ro_id) = &commit.ro_id {
            match &commit.change {
                RoChange::None => {}
                RoChange::Snapshot(s) => {
                    exec(&tx, "DELETE FROM journal WHERE ro_id = ?1", params![ro_id])
                        .map_err(err)?;
                    exec(
                        &tx,
                        "DELETE FROM snapshot_body WHERE ro_id = ?1",
                        params![ro_id],
                    )
                    .map_err(err)?;
                    let (ro_list, inbox_seq) = match commit.received {
                        Some(seq) if keep_received => ("", Some(seq)),
                        _ => (s.ro_list.as_str(), None),
                    };
                    exec(
                        &tx,
                        "INSERT OR REPLACE INTO snapshot (ro_id, ro_list, ready, inbox_seq) VALUES (?1, ?2, ?3, ?4)",
                        params![ro_id, ro_list, s.ready, inbox_seq],
                    )
                    .map_err(err)?;
                    let mut ins = tx
                        .prepare_cached("INSERT OR REPLACE INTO snapshot_body (ro_id, story_id, doc) VALUES (?1, ?2, ?3)")
                        .map_err(err)?;
                    for (story, doc) in &s.bodies {
                        ins.execute(params![ro_id, story, doc]).map_err(err)?;
                    }
                }
                RoChange::Journal(doc) => {
                    exec(
                        &tx,
                        "INSERT INTO journal (ro_id, doc) VALUES (?1, ?2)",
                        params![ro_id, doc],
                    )
                    .map_err(err)?;
                }
                RoChange::Delete => {
                    for sql in [
                        "DELETE FROM journal WHERE ro_id = ?1",
                        "DELETE FROM snapshot_body WHERE ro_id = ?1",
                        "DELETE FROM snapshot WHERE ro_id = ?1",
                        "DELETE FROM meta WHERE key = 'owner:' || ?1",
                    ] {
                        exec(&tx, sql, params![ro_id]).map_err(err)?;
                    }
                }
            }
            // The NCS that changed it last: its statuses go there, also after a restart.
            if let (Some(ncs), RoChange::Snapshot(_) | RoChange::Journal(_)) =
                (&commit.owner, &commit.change)
            {
                exec(
                    &tx,
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('owner:' || ?1, ?2)",
                    params![ro_id, ncs],
                )
                .map_err(err)?;
            }
        }
        let mut next_processed = None;
        if let Some((ncs, port, id, p)) = &commit.processed {
            let key = (ncs.clone(), port.clone());
            let seq = match self.processed_next.get(&key) {
                Some(seq) => *seq,
                None => tx
                    .query_row(
                        "SELECT COALESCE(MAX(seq), 0) + 1 FROM processed WHERE ncs_id = ?1 AND port = ?2",
                        params![ncs, port],
                        |r| r.get(0),
                    )
                    .map_err(err)?,
            };
            next_processed = Some((key, seq + 1));
            exec(
                &tx,
                "INSERT OR REPLACE INTO processed (ncs_id, port, message_id, digest, reply, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![ncs, port, id, p.digest, p.reply, seq],
            )
            .map_err(err)?;
            exec(
                &tx,
                "DELETE FROM processed WHERE ncs_id = ?1 AND port = ?2 AND seq <= ?3",
                params![ncs, port, seq - processed_limit],
            )
            .map_err(err)?;
        }
        #[cfg(test)]
        if self
            .wal
            .as_ref()
            .is_some_and(|w| w.test.fail_commits.load(Ordering::SeqCst))
        {
            // Rolled back as the transaction is dropped.
            drop(tx);
            let full = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL);
            return Err(err(rusqlite::Error::SqliteFailure(
                full,
                Some("database or disk is full (test)".into()),
            )));
        }
        tx.commit().map_err(err)?;
        if let Some((key, next)) = next_processed {
            self.processed_next.insert(key, next);
        }
        if commit.received.is_none() {
            self.sync()?;
        }
        Ok(())
    }

    /// Makes every commit so far durable: an `fdatasync` of the write-ahead log (the
    /// database file itself is synced by SQLite at each checkpoint). Nothing to do when
    /// SQLite syncs every commit itself.
    pub fn sync(&self) -> Result<(), StoreError> {
        match &self.wal {
            Some(wal) => wal.sync(),
            None => Ok(()),
        }
    }

    /// A handle that makes every commit so far durable from another thread ([`WalSync::sync`]),
    /// so a thread can sync while this one goes on committing; `None` when SQLite syncs
    /// every commit itself (not in WAL mode).
    pub fn wal_sync(&self) -> Result<Option<WalSync>, StoreError> {
        self.check_healthy()?;
        Ok(self.wal.clone())
    }

    /// Keeps a received message in the inbox before it is parsed and applied; returns its
    /// inbox row. Not synced: the caller syncs ([`Store::sync`], or a [`WalSync`] on
    /// another thread while this one goes on) before it relies on the row. Its
    /// [`Commit::received`] or [`Store::forget_received`] removes it.
    pub fn receive(
        &mut self,
        port: &str,
        peer: Option<&str>,
        doc: &str,
    ) -> Result<i64, StoreError> {
        self.check_healthy()?;
        let e = |x| self.err(x);
        exec(
            &self.conn,
            "INSERT INTO inbox (port, peer, doc) VALUES (?1, ?2, ?3)",
            params![port, peer, doc],
        )
        .map_err(e)?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records a refusal, durably, in one transaction: the message's inbox row (if any)
    /// removed ([`Store::forget_received`] says why durably) and its messageID remembered
    /// with the NACK (if it has one), for retries. Nothing to do without either.
    pub fn refuse(
        &mut self,
        received: Option<i64>,
        processed: Option<ProcessedRow>,
    ) -> Result<(), StoreError> {
        if received.is_none() && processed.is_none() {
            return Ok(());
        }
        self.commit(&Commit {
            processed,
            received,
            ..Commit::default()
        })?;
        if received.is_some() {
            // A commit with an inbox row is not synced on its own.
            self.sync()?;
        }
        Ok(())
    }

    /// Removes a message from the inbox that was refused or not applied, durably: a removal
    /// lost in a power cut would have the message judged again at start, perhaps under a
    /// changed configuration that accepts what the NCS was told was refused. (Refusals of
    /// large edits are rare; the reply has gone out before this write.)
    pub fn forget_received(&mut self, seq: i64) -> Result<(), StoreError> {
        self.write_synced("DELETE FROM inbox WHERE seq = ?1", params![seq])
    }

    /// Runs one write statement (through the statement cache) and syncs it to disk, for a
    /// write that must be durable before the caller goes on.
    fn write_synced(&mut self, sql: &str, params: impl rusqlite::Params) -> Result<(), StoreError> {
        self.check_healthy()?;
        exec(&self.conn, sql, params).map_err(|e| self.err(e))?;
        self.sync()
    }

    /// The messages still waiting in the inbox, in the order they were kept: received
    /// before a stop, and whose commit or refusal did not reach the disk. (Rows that are a
    /// snapshot's document are not waiting.)
    pub fn received(&self) -> Result<Vec<Received>, StoreError> {
        let e = |x| self.err(x);
        let mut st = self
            .conn
            .prepare(
                "SELECT seq, port, peer, doc FROM inbox WHERE seq NOT IN \
                 (SELECT inbox_seq FROM snapshot WHERE inbox_seq IS NOT NULL) ORDER BY seq",
            )
            .map_err(e)?;
        let rows = st
            .query_map([], |r| {
                Ok(Received {
                    seq: r.get(0)?,
                    port: r.get(1)?,
                    peer: r.get(2)?,
                    doc: r.get(3)?,
                })
            })
            .map_err(e)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(e)?);
        }
        Ok(out)
    }

    /// Keeps a message queued for an NCS until it is delivered; returns its key.
    pub fn outbox_add(&mut self, ncs_id: &str, port: &str, doc: &str) -> Result<i64, StoreError> {
        self.write_synced(
            "INSERT INTO outbox (ncs_id, port, doc) VALUES (?1, ?2, ?3)",
            params![ncs_id, port, doc],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Forgets a delivered message.
    pub fn outbox_remove(&mut self, seq: i64) -> Result<(), StoreError> {
        self.write_synced("DELETE FROM outbox WHERE seq = ?1", [seq])
    }

    /// The messages still queued for an NCS's port, oldest first.
    pub fn outbox_load(&self, ncs_id: &str, port: &str) -> Result<Vec<(i64, String)>, StoreError> {
        let e = |x| self.err(x);
        let mut st = self
            .conn
            .prepare("SELECT seq, doc FROM outbox WHERE ncs_id = ?1 AND port = ?2 ORDER BY seq")
            .map_err(e)?;
        let rows = st
            .query_map(params![ncs_id, port], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(e)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(e)?);
        }
        Ok(out)
    }

    /// Reads a value of the meta table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The NCS that last changed each running order, as `(roID, ncsID)` (running orders
    /// changed only by messages without a messageID have none).
    pub fn owners(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.meta_under("owner:")
    }

    /// The meta entries whose key starts with `prefix`, as `(rest of the key, value)`.
    pub fn meta_under(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let e = |x| self.err(x);
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT substr(key, length(?1) + 1), value FROM meta \
                 WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
            )
            .map_err(e)?;
        let rows = q
            .query_map([prefix], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(e)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(e)?;
        Ok(rows)
    }

    /// Removes a meta entry (not synced: for state that may be lost, such as what is on air).
    pub fn delete_meta(&mut self, key: &str) -> Result<(), StoreError> {
        self.check_healthy()?;
        exec(&self.conn, "DELETE FROM meta WHERE key = ?1", params![key])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every stored placeholder object as `(objID, document)`, ordered by objID.
    pub fn placeholders(&self) -> Result<Vec<(String, String)>, StoreError> {
        let e = |x| self.err(x);
        let mut st = self
            .conn
            .prepare("SELECT obj_id, doc FROM placeholder ORDER BY obj_id")
            .map_err(e)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(e)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.map_err(e)?);
        }
        Ok(out)
    }

    /// Writes (or replaces) a placeholder object's document (durably).
    pub fn put_placeholder(&mut self, obj_id: &str, doc: &str) -> Result<(), StoreError> {
        self.write_synced(
            "INSERT OR REPLACE INTO placeholder (obj_id, doc) VALUES (?1, ?2)",
            params![obj_id, doc],
        )
    }

    /// Deletes a placeholder object (durably); deleting an unknown objID is not an error.
    pub fn delete_placeholder(&mut self, obj_id: &str) -> Result<(), StoreError> {
        self.write_synced("DELETE FROM placeholder WHERE obj_id = ?1", [obj_id])
    }

    /// Writes a value of the meta table (durably).
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.write_synced(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        )
    }
}

/// Runs a statement through the connection's statement cache: the commit path runs the same
/// few statements for every acknowledged message, and preparing one costs as much as running it.
fn exec(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn the_ncs_that_last_changed_a_running_order_is_kept_until_it_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let edit = |ro: &str, ncs: &str, id: &str, change: RoChange| Commit {
            ro_id: Some(ro.into()),
            change,
            processed: Some((
                ncs.into(),
                "upper".into(),
                id.into(),
                Processed {
                    digest: id.into(),
                    reply: "<ack/>".into(),
                },
            )),
            owner: Some(ncs.into()),
            received: None,
            ro_list_received: false,
        };
        {
            let mut s = Store::open(dir.path()).unwrap();
            let snap = || RoChange::Snapshot(Snapshot::default());
            s.commit(&edit("R1", "ENPS", "1", snap())).unwrap();
            s.commit(&edit("R2", "ENPS", "2", snap())).unwrap();
            // Another NCS edits R1 later; R2 goes.
            s.commit(&edit("R1", "INEWS", "3", RoChange::Journal("<e/>".into())))
                .unwrap();
            s.commit(&edit("R2", "ENPS", "4", RoChange::Delete))
                .unwrap();
            // A commit without an owner changes nothing about it.
            s.commit(&Commit {
                ro_id: Some("R1".into()),
                change: RoChange::Journal("<e2/>".into()),
                ..Commit::default()
            })
            .unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.owners().unwrap(),
            [("R1".to_string(), "INEWS".to_string())]
        );
    }

    #[test]
    fn snapshot_journal_and_delete_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Store::open(dir.path()).unwrap();
            s.commit(&Commit {
                ro_id: Some("R1".into()),
                change: RoChange::Snapshot(Snapshot {
                    ro_list: "<roList/>".into(),
                    bodies: vec![("S1".into(), "<roStorySend/>".into())],
                    ready: Some("READY".into()),
                }),
                processed: Some((
                    "N".into(),
                    "upper".into(),
                    "7".into(),
                    Processed {
                        digest: "d".into(),
                        reply: "<ack/>".into(),
                    },
                )),
                owner: None,
                received: None,
                ro_list_received: false,
            })
            .unwrap();
            s.commit(&Commit {
                ro_id: Some("R1".into()),
                change: RoChange::Journal("<edit1/>".into()),
                processed: None,
                owner: None,
                received: None,
                ro_list_received: false,
            })
            .unwrap();
            s.commit(&Commit {
                ro_id: Some("R2".into()),
                change: RoChange::Snapshot(Snapshot::default()),
                processed: None,
                owner: None,
                received: None,
                ro_list_received: false,
            })
            .unwrap();
            s.commit(&Commit {
                ro_id: Some("R2".into()),
                change: RoChange::Delete,
                processed: None,
                owner: None,
                received: None,
                ro_list_received: false,
            })
            .unwrap();
            s.set_meta("message_id", "42").unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let ros = s.load_running_orders().unwrap();
        assert_eq!(ros.len(), 1);
        assert_eq!(ros[0].snapshot.ready.as_deref(), Some("READY"));
        assert_eq!(ros[0].snapshot.bodies.len(), 1);
        assert_eq!(ros[0].journal, ["<edit1/>"]);
        assert_eq!(
            s.processed("N", "upper", "7").unwrap().unwrap().reply,
            "<ack/>"
        );
        assert_eq!(s.meta("message_id").unwrap().as_deref(), Some("42"));
    }

    #[test]
    fn placeholders_are_kept_replaced_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Store::open(dir.path()).unwrap();
            s.put_placeholder("PH-b", "<b1/>").unwrap();
            s.put_placeholder("PH-a", "<a/>").unwrap();
            s.put_placeholder("PH-b", "<b2/>").unwrap();
            s.put_placeholder("PH-c", "<c/>").unwrap();
            s.delete_placeholder("PH-c").unwrap();
            s.delete_placeholder("PH-unknown").unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.placeholders().unwrap(),
            [
                ("PH-a".to_string(), "<a/>".to_string()),
                ("PH-b".to_string(), "<b2/>".to_string())
            ]
        );
    }

    #[test]
    fn processed_records_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let record = |s: &mut Store, port: &str, i: usize| {
            s.commit(&Commit {
                processed: Some((
                    "N".into(),
                    port.into(),
                    i.to_string(),
                    Processed {
                        digest: "d".into(),
                        reply: "r".into(),
                    },
                )),
                ..Commit::default()
            })
            .unwrap();
        };
        let kept = |s: &Store, port: &str| {
            (0..30)
                .filter(|i| s.processed("N", port, &i.to_string()).unwrap().is_some())
                .collect::<Vec<_>>()
        };
        let mut s = Store::open(dir.path()).unwrap();
        s.processed_limit = 3;
        for i in 0..10 {
            record(&mut s, "upper", i);
        }
        record(&mut s, "lower", 20);
        assert_eq!(kept(&s, "upper"), [7, 8, 9]);
        drop(s);
        // The sequence goes on after a restart, per NCS and port.
        let mut s = Store::open(dir.path()).unwrap();
        s.processed_limit = 3;
        for i in 10..12 {
            record(&mut s, "upper", i);
        }
        assert_eq!(kept(&s, "upper"), [9, 10, 11]);
        assert_eq!(kept(&s, "lower"), [20]);
    }

    #[test]
    fn synced_writes_sync_the_write_ahead_log_and_inbox_commits_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let level: i64 = s
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(level, 1, "NORMAL: synced writes sync the log themselves");
        // An inbox message's commit is not synced on its own ...
        let seq = s.receive("upper", None, "<mos/>").unwrap();
        let before = s.syncs_for_test();
        s.commit(&Commit {
            received: Some(seq),
            ..Commit::default()
        })
        .unwrap();
        assert_eq!(s.syncs_for_test(), before, "an inbox commit synced the log");
        // ... a direct one is, through the log file of this database.
        s.commit(&Commit::default()).unwrap();
        assert_eq!(
            s.syncs_for_test(),
            before + 1,
            "a synced commit did not sync the log"
        );
        let wal = s.wal.as_ref().unwrap().file.metadata().unwrap();
        let meta = std::fs::metadata(dir.path().join("gateway.db-wal")).unwrap();
        assert_eq!((wal.dev(), wal.ino()), (meta.dev(), meta.ino()));
        s.set_meta("k", "v").unwrap();
        assert_eq!(s.syncs_for_test(), before + 2);
        // A refused inbox message is removed durably.
        let seq = s.receive("upper", None, "<mos/>").unwrap();
        s.forget_received(seq).unwrap();
        assert_eq!(s.syncs_for_test(), before + 3, "a removal was not synced");
        assert!(s.received().unwrap().is_empty());
    }
}
