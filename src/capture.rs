//! Capture: every MOS message in and out, on every port and socket, written to JSON Lines
//! files under `data_dir/capture/` for reading, grepping and `mos-gateway replay`.
//!
//! The connection tasks call [`ConnCapture::record`]; it never waits: the line goes through a
//! bounded channel to a writer thread, and when the channel is full the line is dropped and
//! counted ([`CaptureHandle::dropped`]), with a warning at most once per second.
//!
//! # Line format
//!
//! One JSON object per line ([`CaptureLine`]):
//!
//! ```text
//! {"ts":"2026-11-25T18:00:00.123Z","dir":"in","local":"127.0.0.1:10541","remote":"127.0.0.1:50312",
//!  "port":"upper","socket":"inbound","encoding":"utf16be","ncs":"ENPS.NCS","message":"roCreate",
//!  "text":"<mos>…</mos>"}
//! ```
//!
//! - `ts`: when the message was read or written, RFC 3339 UTC with milliseconds.
//! - `dir`: `in` (read by the gateway) or `out` (written by the gateway).
//! - `local`, `remote`: the socket's addresses (the gateway's side first).
//! - `port`: `lower`, `upper` or `query`: our port for inbound sockets, the NCS's for outbound.
//! - `socket`: `inbound` (the NCS connected to us) or `outbound` (we connected to the NCS).
//! - `encoding`: `utf16be`, `utf16le` or `utf8`, as seen (or written) on the wire.
//! - `ncs`, `message`: the envelope's ncsID and the message element name, when they could be
//!   read (absent otherwise).
//! - `text`: the whole `<mos>` document as received, before any lenient correction, or as
//!   sent.
//!
//! Files are `capture-000001.jsonl`, `capture-000002.jsonl`, … (name order is time order). A
//! file is closed before the next line would make it larger than `capture_max_bytes`; only the
//! newest `capture_files` files are kept.
//!
//! Session files (see `examples-messages/sessions/`) may also hold marker lines such as
//! `{"marker":"restart"}`, which the gateway never writes: [`Marker`].

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::mos::codec::WireEncoding;
use crate::session::PortRole;

/// Capture errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The capture directory could not be created or read.
    #[error("capture directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the capture writer: {0}")]
    Thread(std::io::Error),
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Read by the gateway.
    In,
    /// Written by the gateway.
    Out,
}

/// Who opened the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SocketKind {
    /// The NCS connected to one of our ports.
    Inbound,
    /// We connected to one of the NCS's ports.
    Outbound,
}

/// One captured message: one line of a capture file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureLine {
    /// RFC 3339 UTC with milliseconds.
    pub ts: String,
    /// in / out.
    pub dir: Direction,
    /// The gateway's address on the socket.
    pub local: String,
    /// The peer's address.
    pub remote: String,
    /// lower / upper / query.
    pub port: String,
    /// inbound / outbound.
    pub socket: SocketKind,
    /// utf16be / utf16le / utf8.
    pub encoding: String,
    /// The envelope's ncsID, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ncs: Option<String>,
    /// The message element name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The `<mos>` document as received or sent.
    pub text: String,
}

/// A marker line in a session file (never written by the gateway), e.g. `restart`: the
/// device is restarted at this point of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Marker {
    /// What happens here: `restart`.
    pub marker: String,
    /// A note for the reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A line of a capture or session file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum FileLine {
    /// A marker.
    Marker(Marker),
    /// A message.
    Message(Box<CaptureLine>),
}

/// Reads the ncsID and the message element name from a document without parsing it fully
/// (cheap, never fails; `None` where they cannot be found).
pub fn sniff(text: &str) -> (Option<String>, Option<String>) {
    let ncs = text.find("<ncsID>").and_then(|start| {
        let rest = &text[start + "<ncsID>".len()..];
        rest.find("</ncsID>")
            .map(|end| rest[..end].trim().to_string())
    });
    (ncs, message_name(text))
}

/// The first element after `<mos>` that is not part of the envelope (or a comment).
fn message_name(text: &str) -> Option<String> {
    let start = text.find("<mos")?;
    let mut rest = &text[start + 4..];
    rest = &rest[rest.find('>')? + 1..];
    let mut depth_skip: Option<String> = None;
    loop {
        let lt = rest.find('<')?;
        rest = &rest[lt + 1..];
        if rest.starts_with("!--") {
            rest = &rest[rest.find("-->")? + 3..];
            continue;
        }
        if rest.starts_with('?') || rest.starts_with('!') {
            rest = &rest[rest.find('>')? + 1..];
            continue;
        }
        let skip = usize::from(rest.starts_with('/'));
        let end = rest[skip..]
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .map_or(rest.len(), |e| e + skip);
        let name = &rest[..end];
        if let Some(open) = &depth_skip {
            if name.strip_prefix('/') == Some(open.as_str()) {
                depth_skip = None;
            }
            continue;
        }
        if name.starts_with('/') {
            return None;
        }
        if matches!(name, "mosID" | "ncsID" | "messageID") {
            depth_skip = Some(name.to_string());
            continue;
        }
        return (!name.is_empty()).then(|| name.to_string());
    }
}

/// What is captured and where.
#[derive(Debug, Clone)]
pub struct CaptureSettings {
    /// The directory of the capture files.
    pub dir: PathBuf,
    /// Capture every NCS.
    pub all: bool,
    /// ncsIDs with `capture = true`.
    pub ncs: HashSet<String>,
    /// Addresses of those NCSs (for messages whose ncsID cannot be read).
    pub addresses: Vec<IpAddr>,
    /// Include heartbeats.
    pub heartbeats: bool,
    /// Rotation size.
    pub max_bytes: u64,
    /// Files kept.
    pub files: usize,
    /// Channel capacity.
    pub queue: usize,
}

impl CaptureSettings {
    /// The settings of a configuration; `None` when nothing is to be captured.
    pub fn from_config(config: &Config) -> Option<CaptureSettings> {
        let c = &config.mos.capture;
        let chosen: Vec<_> = config.ncs.iter().filter(|n| n.capture).collect();
        if !c.all && chosen.is_empty() {
            return None;
        }
        Some(CaptureSettings {
            dir: config.mos.data_dir.join("capture"),
            all: c.all,
            ncs: chosen.iter().map(|n| n.id.clone()).collect(),
            addresses: chosen
                .iter()
                .flat_map(|n| n.addresses.iter().chain(&n.allowed_addresses).copied())
                .collect(),
            heartbeats: c.heartbeats,
            max_bytes: c.max_bytes,
            files: c.files.max(1),
            queue: c.queue.max(1),
        })
    }
}

struct Inner {
    tx: mpsc::Sender<CaptureLine>,
    settings: CaptureSettings,
    dropped: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
    /// Test knob: microseconds the writer waits before each line.
    delay_us: Arc<AtomicU64>,
}

/// The gateway's side of the capture writer: cheap to clone, never blocks.
#[derive(Clone)]
pub struct CaptureHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CaptureHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureHandle")
            .field("dir", &self.inner.settings.dir)
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl CaptureHandle {
    /// Creates the directory and starts the writer thread. The thread ends when every
    /// handle is dropped, after writing what is queued.
    pub fn start(settings: CaptureSettings) -> Result<CaptureHandle, CaptureError> {
        std::fs::create_dir_all(&settings.dir).map_err(|source| CaptureError::Dir {
            path: settings.dir.clone(),
            source,
        })?;
        let (tx, rx) = mpsc::channel(settings.queue);
        let delay_us = Arc::new(AtomicU64::new(0));
        let writer = Writer::open(&settings)?;
        let delay = delay_us.clone();
        std::thread::Builder::new()
            .name("capture-writer".into())
            .spawn(move || writer.run(rx, delay))
            .map_err(CaptureError::Thread)?;
        info!(dir = %settings.dir.display(), "capturing MOS traffic");
        Ok(CaptureHandle {
            inner: Arc::new(Inner {
                tx,
                settings,
                dropped: AtomicU64::new(0),
                last_warning: Mutex::new(None),
                delay_us,
            }),
        })
    }

    /// How many lines were dropped because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Makes the writer wait this long before each line (for tests of a slow disk).
    pub fn set_write_delay(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.inner.delay_us.store(us, Ordering::Relaxed);
    }

    /// The directory of the capture files.
    pub fn dir(&self) -> &Path {
        &self.inner.settings.dir
    }

    /// A recorder for one socket.
    pub fn conn(
        &self,
        local: Option<SocketAddr>,
        remote: SocketAddr,
        port: PortRole,
        socket: SocketKind,
    ) -> ConnCapture {
        ConnCapture {
            handle: self.clone(),
            local: local.map(|a| a.to_string()).unwrap_or_default(),
            remote,
            port,
            socket,
        }
    }

    fn wanted(&self, remote: IpAddr, ncs: Option<&str>, message: Option<&str>) -> bool {
        let s = &self.inner.settings;
        if message == Some("heartbeat") && !s.heartbeats {
            return false;
        }
        if s.all {
            return true;
        }
        match ncs {
            Some(id) if s.ncs.contains(id) => true,
            Some(id) if !id.is_empty() => false,
            _ => s
                .addresses
                .iter()
                .any(|a| a.to_canonical() == remote.to_canonical()),
        }
    }

    fn send(&self, line: CaptureLine) {
        match self.inner.tx.try_send(line) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let n = self.inner.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let now = Instant::now();
                let due = self.inner.last_warning.lock().is_ok_and(|mut last| {
                    let due = last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
                    if due {
                        *last = Some(now);
                    }
                    due
                });
                if due {
                    warn!(
                        dropped = n,
                        "capture writer behind: capture lines dropped (the messages were handled)"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                debug!("capture writer stopped; line not recorded");
            }
        }
    }
}

/// Records the messages of one socket.
#[derive(Debug, Clone)]
pub struct ConnCapture {
    handle: CaptureHandle,
    local: String,
    remote: SocketAddr,
    port: PortRole,
    socket: SocketKind,
}

impl ConnCapture {
    /// Records one message read (`In`) or written (`Out`) on this socket.
    pub fn record(&self, dir: Direction, text: &str, encoding: WireEncoding) {
        let (ncs, message) = sniff(text);
        if !self
            .handle
            .wanted(self.remote.ip(), ncs.as_deref(), message.as_deref())
        {
            return;
        }
        self.handle.send(CaptureLine {
            ts: now_rfc3339(),
            dir,
            local: self.local.clone(),
            remote: self.remote.to_string(),
            port: self.port.name().to_string(),
            socket: self.socket,
            encoding: encoding.name().to_string(),
            ncs,
            message,
            text: text.to_string(),
        });
    }
}

/// Records a message on a socket, when capture is on for it.
pub fn record(cap: &Option<ConnCapture>, dir: Direction, text: &str, encoding: WireEncoding) {
    if let Some(c) = cap {
        c.record(dir, text, encoding);
    }
}

/// Now as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The capture files in `dir`, oldest first, with their sequence numbers.
pub fn capture_files(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("capture-"))
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(seq) = seq {
            out.push((seq, path));
        }
    }
    out.sort();
    Ok(out)
}

struct Writer {
    dir: PathBuf,
    max_bytes: u64,
    keep: usize,
    seq: u64,
    file: Option<File>,
    size: u64,
}

impl Writer {
    fn open(settings: &CaptureSettings) -> Result<Writer, CaptureError> {
        let existing = capture_files(&settings.dir).map_err(|source| CaptureError::Dir {
            path: settings.dir.clone(),
            source,
        })?;
        let last = existing.last().map(|(s, _)| *s).unwrap_or(0);
        Ok(Writer {
            dir: settings.dir.clone(),
            max_bytes: settings.max_bytes,
            keep: settings.files,
            // A restart starts a new file.
            seq: last,
            file: None,
            size: 0,
        })
    }

    fn run(mut self, mut rx: mpsc::Receiver<CaptureLine>, delay_us: Arc<AtomicU64>) {
        while let Some(line) = rx.blocking_recv() {
            let d = delay_us.load(Ordering::Relaxed);
            if d > 0 {
                std::thread::sleep(Duration::from_micros(d));
            }
            if let Err(e) = self.write(&line) {
                warn!("capture line not written: {e}");
            }
        }
        if let Some(f) = self.file.as_mut() {
            let _ = f.flush();
        }
        debug!("capture writer stopped");
    }

    fn write(&mut self, line: &CaptureLine) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        let len = bytes.len() as u64;
        if self.file.is_none() || (self.size > 0 && self.size + len > self.max_bytes) {
            self.rotate()?;
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(&bytes)?;
            self.size += len;
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.seq += 1;
        let path = self.dir.join(format!("capture-{:06}.jsonl", self.seq));
        self.file = Some(OpenOptions::new().create(true).append(true).open(&path)?);
        self.size = 0;
        let files = capture_files(&self.dir)?;
        if files.len() > self.keep {
            for (_, old) in &files[..files.len() - self.keep] {
                match std::fs::remove_file(old) {
                    Ok(()) => debug!(file = %old.display(), "old capture file removed"),
                    Err(e) => {
                        warn!(file = %old.display(), "cannot remove an old capture file: {e}")
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_reads_ncs_and_message_name() {
        let t = "<mos><mosID>M</mosID><ncsID>N</ncsID><messageID>5</messageID><roCreate><roID>1</roID></roCreate></mos>";
        assert_eq!(sniff(t), (Some("N".into()), Some("roCreate".into())));
        let t = "<mos>\r\n<!-- c --><ncsID>N</ncsID>\t<mosID>M</mosID><heartbeat/></mos>";
        assert_eq!(sniff(t), (Some("N".into()), Some("heartbeat".into())));
        assert_eq!(sniff("<mos></mos>"), (None, None));
        assert_eq!(sniff("garbage"), (None, None));
        assert_eq!(sniff("<mos><mosID>"), (None, None));
    }

    #[test]
    fn lines_round_trip_and_markers_are_recognised() {
        let line = CaptureLine {
            ts: now_rfc3339(),
            dir: Direction::In,
            local: "127.0.0.1:10541".into(),
            remote: "127.0.0.1:5000".into(),
            port: "upper".into(),
            socket: SocketKind::Inbound,
            encoding: "utf16be".into(),
            ncs: Some("N".into()),
            message: None,
            text: "<mos>\"é\"\n</mos>".into(),
        };
        let json = serde_json::to_string(&line).unwrap_or_default();
        assert!(!json.contains('\n'));
        assert!(!json.contains("\"message\""));
        let back: FileLine = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, FileLine::Message(Box::new(line)));
        let m: FileLine =
            serde_json::from_str(r#"{"marker":"restart"}"#).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(m, FileLine::Marker(Marker { ref marker, .. }) if marker == "restart"));
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        let ts = now_rfc3339();
        assert!(ts.ends_with('Z'), "{ts}");
        assert_eq!(ts.len(), "2026-11-25T18:00:00.123Z".len(), "{ts}");
    }
}
