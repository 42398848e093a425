//! `mos-gateway replay`: sends the NCS side of captured conversations to a MOS device again,
//! and compares each reply with the captured one.
//!
//! Inputs ([`load_inputs`]):
//! - gateway capture files and session files (JSON Lines, see [`crate::capture`]): the
//!   messages read on inbound sockets (`dir` `in`, `socket` `inbound`) are sent in order, on
//!   the captured port and in the captured encoding, one replay connection per captured
//!   connection; the reply the gateway wrote next on the same connection is the expectation
//!   (none written: no reply expected). A `{"marker":"restart"}` line closes every
//!   connection (the tests restart the device there);
//! - plain MOS XML files, one or many messages, in UTF-16BE, UTF-16LE or UTF-8: each message
//!   is sent on the port of its family (ro* and mosItemReplace: upper; mosReqSearchableSchema
//!   and mosReqObjList: query; others: lower); replies are shown, not checked;
//! - directories of them, read in name order.
//!
//! Replies are compared by [`compare`], a pure function: same message type and status, the
//! same content where it matters, times and messageIDs ignored.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Decoder, FramedRead};
use tracing::{debug, warn};

use crate::capture::{Direction, FileLine, SocketKind};
use crate::mos::codec::{CodecConfig, MosCodec, WireEncoding, decode_bytes, encode_text};
use crate::mos::messages::{MosAck, Port, RoAck};
use crate::mos::structures::MosObj;
use crate::mos::{Message, Mos, ParseOptions};
use crate::session::{PortRole, reply_to};

/// Replay errors (bad input, unreachable device).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file's content is not a capture or MOS messages.
    #[error("{path}:{line}: {detail}")]
    Input {
        /// The file.
        path: PathBuf,
        /// The line (1 for whole-file problems).
        line: usize,
        /// What was wrong.
        detail: String,
    },
    /// `--to` or `--listen` could not be understood.
    #[error("bad address {text:?}: {detail}")]
    Address {
        /// As given.
        text: String,
        /// What was expected.
        detail: String,
    },
    /// The device could not be reached.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Where.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// `--listen` could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Where.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Where the device listens: `HOST[:LOWER[,UPPER[,QUERY]]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP address.
    pub host: String,
    /// Lower port (default 10540).
    pub lower: u16,
    /// Upper port (default 10541).
    pub upper: u16,
    /// Query port (default 10542).
    pub query: u16,
}

/// Splits `HOST[:PORTS]`, with `[v6]` brackets allowed.
fn host_and_ports(text: &str) -> (String, Option<&str>) {
    if let Some(rest) = text.strip_prefix('[')
        && let Some(end) = rest.find(']')
    {
        let ports = rest[end + 1..].strip_prefix(':');
        return (rest[..end].to_string(), ports);
    }
    match text.split_once(':') {
        Some((h, p)) => (h.to_string(), Some(p)),
        None => (text.to_string(), None),
    }
}

fn ports(text: &str, all: &str, max: usize) -> Result<Vec<u16>, ReplayError> {
    let bad = |detail: String| ReplayError::Address {
        text: all.to_string(),
        detail,
    };
    let list: Vec<&str> = text.split(',').collect();
    if list.len() > max {
        return Err(bad(format!("at most {max} ports")));
    }
    list.iter()
        .map(|p| match p.trim().parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad(format!("{p:?} is not a port number"))),
        })
        .collect()
}

impl std::str::FromStr for Target {
    type Err = ReplayError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, p) = host_and_ports(s.trim());
        if host.is_empty() {
            return Err(ReplayError::Address {
                text: s.to_string(),
                detail: "no host".into(),
            });
        }
        let mut t = Target {
            host,
            lower: 10540,
            upper: 10541,
            query: 10542,
        };
        if let Some(p) = p {
            let list = ports(p, s, 3)?;
            for (i, n) in list.into_iter().enumerate() {
                match i {
                    0 => t.lower = n,
                    1 => t.upper = n,
                    _ => t.query = n,
                }
            }
        }
        Ok(t)
    }
}

impl Target {
    fn addr(&self, port: PortRole) -> String {
        let n = match port {
            PortRole::Lower => self.lower,
            PortRole::Upper => self.upper,
            PortRole::Query => self.query,
        };
        if self.host.contains(':') {
            format!("[{}]:{n}", self.host)
        } else {
            format!("{}:{n}", self.host)
        }
    }
}

/// `--listen HOST:LOWER,UPPER`: where to accept the device's own connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAt {
    /// Address to bind.
    pub host: String,
    /// "Our" (the NCS's) lower port.
    pub lower: u16,
    /// "Our" upper port.
    pub upper: u16,
}

impl std::str::FromStr for ListenAt {
    type Err = ReplayError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, p) = host_and_ports(s.trim());
        let list = ports(p.unwrap_or(""), s, 2)?;
        match list.as_slice() {
            [l, u] if !host.is_empty() => Ok(ListenAt {
                host,
                lower: *l,
                upper: *u,
            }),
            _ => Err(ReplayError::Address {
                text: s.to_string(),
                detail: "expected HOST:LOWER,UPPER".into(),
            }),
        }
    }
}

/// What the reply to a step should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// This reply (from a capture).
    Reply(String),
    /// No reply (the capture shows none).
    Nothing,
    /// Not known (plain XML input): the reply is shown, not checked.
    Unknown,
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Where it came from (`file:line` or `file#n`).
    pub source: String,
    /// The port to send it on.
    pub port: PortRole,
    /// The captured connection it belongs to (one replay connection each).
    pub conn: String,
    /// The encoding to send it in.
    pub encoding: WireEncoding,
    /// The document.
    pub text: String,
    /// The expected reply.
    pub expected: Expected,
    /// When it was captured, if known.
    pub at: Option<chrono::DateTime<chrono::FixedOffset>>,
}

/// An input item: a message, or a point where the device is restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// Send and compare.
    Step(Box<Step>),
    /// `{"marker":"restart"}`: every connection is closed; the device restarts here.
    Restart,
}

/// Reads every input (files and directories, the latter in name order).
pub fn load_inputs(paths: &[PathBuf]) -> Result<Vec<Item>, ReplayError> {
    let mut items = Vec::new();
    for p in paths {
        load_path(p, &mut items)?;
    }
    Ok(items)
}

fn load_path(path: &Path, items: &mut Vec<Item>) -> Result<(), ReplayError> {
    let read_err = |source| ReplayError::Read {
        path: path.to_path_buf(),
        source,
    };
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    || p.extension()
                        .is_some_and(|e| e == "jsonl" || e == "xml" || e == "mos")
            })
            .collect();
        entries.sort();
        for e in entries {
            load_path(&e, items)?;
        }
        return Ok(());
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        load_capture(path, &bytes, items)
    } else {
        load_xml(path, &bytes, items)
    }
}

/// The port of a message family: ro* (also vendor ones such as Octopus's
/// `octext_roStorySkip`) and mosItemReplace upper, the search family query, the rest lower.
pub fn port_of_name(name: &str) -> PortRole {
    let unprefixed = name.split_once('_').map_or(name, |(_, rest)| rest);
    if name.starts_with("ro") || unprefixed.starts_with("ro") || name == "mosItemReplace" {
        return PortRole::Upper;
    }
    if matches!(
        name,
        "mosReqSearchableSchema" | "mosListSearchableSchema" | "mosReqObjList" | "mosObjList"
    ) {
        return PortRole::Query;
    }
    PortRole::Lower
}

fn port_of_message(message: &Message) -> PortRole {
    match message.port() {
        Port::Upper => PortRole::Upper,
        Port::Query => PortRole::Query,
        Port::Lower => PortRole::Lower,
        Port::Any => port_of_name(message.name()),
    }
}

fn load_xml(path: &Path, bytes: &[u8], items: &mut Vec<Item>) -> Result<(), ReplayError> {
    let input = |detail: String| ReplayError::Input {
        path: path.to_path_buf(),
        line: 1,
        detail,
    };
    let (text, encoding) = decode_bytes(bytes).map_err(|e| input(e.to_string()))?;
    let mut codec = MosCodec::new(CodecConfig {
        encoding: Some(WireEncoding::Utf8),
        max_message_bytes: usize::MAX / 2,
    });
    let mut buf = BytesMut::from(text.as_bytes());
    let mut n = 0;
    loop {
        let next = match codec.decode(&mut buf) {
            Ok(None) => codec.decode_eof(&mut buf),
            other => other,
        };
        match next {
            Ok(Some(Ok(frame))) => {
                n += 1;
                let name = crate::capture::sniff(&frame.text).1;
                let port = match Mos::parse(&frame.text, ParseOptions::lenient()) {
                    Ok(p) => port_of_message(&p.mos.message),
                    Err(_) => port_of_name(name.as_deref().unwrap_or("")),
                };
                items.push(Item::Step(Box::new(Step {
                    source: format!("{}#{n}", path.display()),
                    port,
                    conn: format!("{}|{}", path.display(), port.name()),
                    encoding,
                    text: frame.text,
                    expected: Expected::Unknown,
                    at: None,
                })));
            }
            Ok(Some(Err(e))) => return Err(input(e.to_string())),
            Ok(None) => break,
            Err(e) => return Err(input(e.to_string())),
        }
    }
    if n == 0 {
        return Err(input("no MOS message found".into()));
    }
    Ok(())
}

fn load_capture(path: &Path, bytes: &[u8], items: &mut Vec<Item>) -> Result<(), ReplayError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ReplayError::Input {
        path: path.to_path_buf(),
        line: 1,
        detail: format!("a capture file must be UTF-8: {e}"),
    })?;
    // The latest step on each captured connection still waiting for its reply.
    let mut waiting: HashMap<String, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: FileLine = serde_json::from_str(line).map_err(|e| ReplayError::Input {
            path: path.to_path_buf(),
            line: i + 1,
            detail: format!("not a capture line: {e}"),
        })?;
        let line = match parsed {
            FileLine::Marker(m) => {
                if m.marker == "restart" {
                    items.push(Item::Restart);
                    waiting.clear();
                }
                continue;
            }
            FileLine::Message(l) => l,
        };
        if line.socket != SocketKind::Inbound {
            continue;
        }
        let conn = format!("{}|{}|{}", path.display(), line.local, line.remote);
        match line.dir {
            Direction::In => {
                let port = match line.port.as_str() {
                    "upper" => PortRole::Upper,
                    "query" => PortRole::Query,
                    _ => PortRole::Lower,
                };
                let encoding = line.encoding.parse().unwrap_or(WireEncoding::Utf16Be);
                waiting.insert(conn.clone(), items.len());
                items.push(Item::Step(Box::new(Step {
                    source: format!("{}:{}", path.display(), i + 1),
                    port,
                    conn,
                    encoding,
                    text: line.text,
                    expected: Expected::Nothing,
                    at: chrono::DateTime::parse_from_rfc3339(&line.ts).ok(),
                })));
            }
            Direction::Out => {
                if let Some(idx) = waiting.remove(&conn)
                    && let Some(Item::Step(step)) = items.get_mut(idx)
                {
                    step.expected = Expected::Reply(line.text);
                }
            }
        }
    }
    Ok(())
}

/// A difference between the expected and the received reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// What differs (`message`, `roStatus`, `stories`, `story S1 items`, …).
    pub field: String,
    /// The expected value.
    pub expected: String,
    /// The received value.
    pub got: String,
}

fn diff(out: &mut Vec<Difference>, field: &str, expected: String, got: String) {
    if expected != got {
        out.push(Difference {
            field: field.to_string(),
            expected,
            got,
        });
    }
}

/// A short description of a message: its name and status (`roAck OK`, `mosAck NACK`).
pub fn describe(text: &str) -> String {
    match Mos::parse(text, ParseOptions::lenient()) {
        Ok(p) => describe_message(&p.mos.message),
        Err(_) => match crate::capture::sniff(text).1 {
            Some(n) => format!("{n} (unreadable)"),
            None => "unreadable".into(),
        },
    }
}

fn describe_message(m: &Message) -> String {
    match m {
        Message::RoAck(a) => format!("roAck {}", ro_status(a)),
        Message::MosAck(a) => format!("mosAck {}", ack_status(a)),
        other => other.name().to_string(),
    }
}

fn ro_status(a: &RoAck) -> &'static str {
    if a.is_ok() { "OK" } else { "error" }
}

fn ack_status(a: &MosAck) -> String {
    format!("{:?}", a.status).to_uppercase()
}

fn join(ids: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = ids.collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(" ")
    }
}

fn compare_obj(out: &mut Vec<Difference>, prefix: &str, e: &MosObj, g: &MosObj) {
    let fields: [(&str, String, String); 13] = [
        ("objID", e.id.clone(), g.id.clone()),
        ("objSlug", e.slug.clone(), g.slug.clone()),
        (
            "mosAbstract",
            format!("{:?}", e.abstract_),
            format!("{:?}", g.abstract_),
        ),
        (
            "objGroup",
            format!("{:?}", e.group),
            format!("{:?}", g.group),
        ),
        (
            "objType",
            format!("{:?}", e.obj_type),
            format!("{:?}", g.obj_type),
        ),
        ("objTB", e.time_base.to_string(), g.time_base.to_string()),
        ("objRev", e.revision.to_string(), g.revision.to_string()),
        ("objDur", e.duration.to_string(), g.duration.to_string()),
        ("status", e.status.clone(), g.status.clone()),
        ("objAir", format!("{:?}", e.air), format!("{:?}", g.air)),
        (
            "objPaths",
            format!("{:?}", e.paths),
            format!("{:?}", g.paths),
        ),
        (
            "description",
            format!("{:?}", e.description),
            format!("{:?}", g.description),
        ),
        (
            "mosExternalMetadata",
            format!("{:?}", e.metadata),
            format!("{:?}", g.metadata),
        ),
    ];
    for (name, ev, gv) in fields {
        diff(out, &format!("{prefix}{name}"), ev, gv);
    }
}

fn compare_objs(out: &mut Vec<Difference>, e: &[MosObj], g: &[MosObj]) {
    diff(
        out,
        "objects",
        join(e.iter().map(|o| o.id.clone())),
        join(g.iter().map(|o| o.id.clone())),
    );
    for (eo, go) in e.iter().zip(g) {
        if eo.id == go.id {
            compare_obj(out, &format!("mosObj {} ", eo.id), eo, go);
        }
    }
}

/// Compares a received reply with the expected one: same message type and status, the
/// same content where it matters (roList story and item order and IDs, mosObj fields,
/// listMachInfo apart from its times); times, messageIDs and free-text reasons are ignored.
/// An empty result means the replies agree.
pub fn compare(expected: &str, got: &str) -> Vec<Difference> {
    let mut out = Vec::new();
    let (e, g) = match (
        Mos::parse(expected, ParseOptions::lenient()),
        Mos::parse(got, ParseOptions::lenient()),
    ) {
        (Ok(e), Ok(g)) => (e.mos.message, g.mos.message),
        (Err(err), _) => {
            diff(
                &mut out,
                "expected reply",
                format!("unreadable: {err}"),
                describe(got),
            );
            return out;
        }
        (Ok(e), Err(err)) => {
            diff(
                &mut out,
                "message",
                describe_message(&e.mos.message),
                format!("unreadable: {err}"),
            );
            return out;
        }
    };
    if e.name() != g.name() {
        diff(
            &mut out,
            "message",
            describe_message(&e),
            describe_message(&g),
        );
        return out;
    }
    match (&e, &g) {
        (Message::Heartbeat(_), Message::Heartbeat(_)) => {}
        (Message::RoAck(e), Message::RoAck(g)) => {
            diff(
                &mut out,
                "roStatus",
                ro_status(e).into(),
                ro_status(g).into(),
            );
            diff(&mut out, "roID", e.ro_id.clone(), g.ro_id.clone());
            diff(
                &mut out,
                "item statuses",
                format!("{:?}", e.items),
                format!("{:?}", g.items),
            );
        }
        (Message::MosAck(e), Message::MosAck(g)) => {
            diff(&mut out, "status", ack_status(e), ack_status(g));
            diff(&mut out, "objID", e.object_id.clone(), g.object_id.clone());
        }
        (Message::RoList(e), Message::RoList(g)) => {
            let (e, g) = (&e.0, &g.0);
            diff(&mut out, "roID", e.header.id.clone(), g.header.id.clone());
            diff(
                &mut out,
                "roSlug",
                format!("{:?}", e.header.slug),
                format!("{:?}", g.header.slug),
            );
            diff(
                &mut out,
                "stories",
                join(e.stories.iter().map(|s| s.id.clone())),
                join(g.stories.iter().map(|s| s.id.clone())),
            );
            for es in &e.stories {
                let Some(gs) = g.stories.iter().find(|s| s.id == es.id) else {
                    continue;
                };
                let p = format!("story {}", es.id);
                diff(
                    &mut out,
                    &format!("{p} slug"),
                    format!("{:?}", es.slug),
                    format!("{:?}", gs.slug),
                );
                diff(
                    &mut out,
                    &format!("{p} items"),
                    join(es.items.iter().map(|i| i.id.clone())),
                    join(gs.items.iter().map(|i| i.id.clone())),
                );
                for ei in &es.items {
                    if let Some(gi) = gs.items.iter().find(|i| i.id == ei.id) {
                        diff(
                            &mut out,
                            &format!("{p} item {} objID", ei.id),
                            ei.object_id.clone(),
                            gi.object_id.clone(),
                        );
                    }
                }
            }
        }
        (Message::RoListAll(e), Message::RoListAll(g)) => diff(
            &mut out,
            "running orders",
            join(e.running_orders.iter().map(|r| r.id.clone())),
            join(g.running_orders.iter().map(|r| r.id.clone())),
        ),
        (Message::ListMachInfo(e), Message::ListMachInfo(g)) => {
            let mut g = g.clone();
            g.time = e.time.clone();
            g.op_time = e.op_time.clone();
            if *e != g {
                diff(&mut out, "listMachInfo", format!("{e:?}"), format!("{g:?}"));
            }
        }
        (Message::MosObj(e), Message::MosObj(g)) => compare_obj(&mut out, "", e, g),
        (Message::MosListAll(e), Message::MosListAll(g)) => {
            compare_objs(&mut out, &e.objects, &g.objects)
        }
        (Message::MosObjList(e), Message::MosObjList(g)) => {
            diff(
                &mut out,
                "listReturnTotal",
                format!("{:?}", e.list_return_total),
                format!("{:?}", g.list_return_total),
            );
            compare_objs(&mut out, &e.objects, &g.objects)
        }
        (e, g) => {
            if e != g {
                diff(&mut out, "content", format!("{e:?}"), format!("{g:?}"));
            }
        }
    }
    out
}

/// The outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The reply matches.
    Passed,
    /// The reply differs, is missing or was not expected.
    Failed,
    /// No expectation (plain XML input).
    Unchecked,
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// 1-based position.
    pub n: usize,
    /// `file:line` of the message.
    pub source: String,
    /// The port it was sent on.
    pub port: String,
    /// What was sent (name and messageID).
    pub sent: String,
    /// What was expected.
    pub expected: String,
    /// What came back.
    pub got: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The differences, when failed.
    pub differences: Vec<Difference>,
}

/// A message the device sent to `--listen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Arrival {
    /// lower / upper.
    pub port: String,
    /// The message name and status.
    pub message: String,
    /// The document.
    pub text: String,
}

/// The whole result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// One row per message sent.
    pub rows: Vec<Row>,
    /// Rows that passed.
    pub passed: usize,
    /// Rows that failed.
    pub failed: usize,
    /// Rows without an expectation.
    pub unchecked: usize,
    /// What the device sent to `--listen` (empty without it).
    pub arrived: Vec<Arrival>,
}

impl Report {
    /// True when no row failed.
    pub fn ok(&self) -> bool {
        self.failed == 0
    }

    /// `N passed, M failed` (and unchecked rows, when any).
    pub fn summary(&self) -> String {
        let mut s = format!("{} passed, {} failed", self.passed, self.failed);
        if self.unchecked > 0 {
            s.push_str(&format!(", {} unchecked", self.unchecked));
        }
        s
    }

    /// The table: one row per message (sent, expected, got, verdict), each difference
    /// under its row, then what arrived on `--listen`, then the summary.
    pub fn render(&self) -> String {
        let head = ["#", "port", "sent", "expected", "got", "verdict"];
        let cells: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.n.to_string(),
                    r.port.clone(),
                    r.sent.clone(),
                    r.expected.clone(),
                    r.got.clone(),
                    match r.verdict {
                        Verdict::Passed => "pass".into(),
                        Verdict::Failed => "FAIL".into(),
                        Verdict::Unchecked => "-".into(),
                    },
                ]
            })
            .collect();
        let mut width = head.map(str::len);
        for c in &cells {
            for (w, v) in width.iter_mut().zip(c) {
                *w = (*w).max(v.chars().count());
            }
        }
        let line = |c: &[String]| {
            let mut s = String::new();
            for (i, (v, w)) in c.iter().zip(width).enumerate() {
                if i + 1 == c.len() {
                    s.push_str(v);
                } else {
                    s.push_str(v);
                    s.push_str(&" ".repeat(w - v.chars().count() + 2));
                }
            }
            s.push('\n');
            s
        };
        let mut out = line(&head.map(String::from));
        for (c, r) in cells.iter().zip(&self.rows) {
            out.push_str(&line(c));
            for d in &r.differences {
                out.push_str(&format!(
                    "    {} ({}): {}: expected {}, got {}\n",
                    r.sent, r.source, d.field, d.expected, d.got
                ));
            }
        }
        if !self.arrived.is_empty() {
            out.push_str("\nthe device sent:\n");
            for a in &self.arrived {
                out.push_str(&format!("  {} port: {}\n", a.port, a.message));
            }
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The device.
    pub target: Target,
    /// Rewrite the envelope's mosID.
    pub mos_id: Option<String>,
    /// Rewrite the envelope's ncsID.
    pub ncs_id: Option<String>,
    /// Renumber messageIDs from this value (the same captured ID keeps the same new one).
    pub renumber_from: Option<u32>,
    /// How long to wait for each reply.
    pub timeout: Duration,
    /// Captured timing divided by this (1.0 = as captured); `None` = as fast as replies allow.
    pub speed: Option<f64>,
    /// How long to make sure no reply comes when none is expected.
    pub quiet: Duration,
}

impl ReplayOptions {
    /// Defaults: no rewriting, 10 s timeout, full speed.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            mos_id: None,
            ncs_id: None,
            renumber_from: None,
            timeout: Duration::from_secs(10),
            speed: None,
            quiet: Duration::from_millis(150),
        }
    }
}

/// The text ranges of the envelope fields (`mosID`, `ncsID`, `messageID`) before the
/// message element: (name, start, end) of each value.
fn header_values(text: &str) -> Vec<(&'static str, usize, usize)> {
    let mut out = Vec::new();
    let Some(start) = text.find("<mos") else {
        return out;
    };
    let Some(gt) = text[start..].find('>') else {
        return out;
    };
    let mut pos = start + gt + 1;
    loop {
        let rest = &text[pos..];
        let trimmed = rest.trim_start();
        pos += rest.len() - trimmed.len();
        let mut found = false;
        for name in ["mosID", "ncsID", "messageID"] {
            let open = format!("<{name}>");
            let close = format!("</{name}>");
            if trimmed.starts_with(&open) {
                let vstart = pos + open.len();
                if let Some(end) = text[vstart..].find(&close) {
                    out.push((name, vstart, vstart + end));
                    pos = vstart + end + close.len();
                    found = true;
                }
                break;
            }
        }
        if !found {
            return out;
        }
    }
}

/// Rewrites envelope fields: `(name, new value)` pairs; others unchanged.
pub fn rewrite_envelope(text: &str, with: &dyn Fn(&str, &str) -> Option<String>) -> String {
    let mut out = text.to_string();
    for (name, s, e) in header_values(text).into_iter().rev() {
        if let Some(v) = with(name, &text[s..e]) {
            out.replace_range(s..e, &v);
        }
    }
    out
}

fn message_id(text: &str) -> Option<String> {
    header_values(text)
        .into_iter()
        .find(|(n, _, _)| *n == "messageID")
        .map(|(_, s, e)| text[s..e].trim().to_string())
}

type Reader = FramedRead<tokio::net::tcp::OwnedReadHalf, MosCodec>;

struct Conn {
    rd: Reader,
    wr: tokio::net::tcp::OwnedWriteHalf,
}

/// Replays steps against a device, keeping one connection per captured connection.
pub struct Replayer {
    opts: ReplayOptions,
    conns: HashMap<String, Conn>,
    ids: HashMap<String, String>,
    next_id: u32,
    pace: Option<(chrono::DateTime<chrono::FixedOffset>, tokio::time::Instant)>,
    report: Report,
    arrived: Arc<Mutex<Vec<Arrival>>>,
}

impl Replayer {
    /// A replayer with these options.
    pub fn new(opts: ReplayOptions) -> Self {
        Self {
            next_id: opts.renumber_from.unwrap_or(1).max(1),
            opts,
            conns: HashMap::new(),
            ids: HashMap::new(),
            pace: None,
            report: Report::default(),
            arrived: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Points the replayer at another device address; closes every connection.
    pub fn set_target(&mut self, target: Target) {
        self.opts.target = target;
        self.restart();
    }

    /// Closes every connection (a restart marker).
    pub fn restart(&mut self) {
        self.conns.clear();
        self.pace = None;
    }

    /// Accepts the device's own connections on `at`, answering heartbeats, acknowledging
    /// everything else with OK, and recording what arrived.
    pub async fn listen(&mut self, at: &ListenAt) -> Result<(), ReplayError> {
        for (role, port) in [(PortRole::Lower, at.lower), (PortRole::Upper, at.upper)] {
            let addr = if at.host.contains(':') {
                format!("[{}]:{port}", at.host)
            } else {
                format!("{}:{port}", at.host)
            };
            let l = TcpListener::bind(&addr)
                .await
                .map_err(|source| ReplayError::Listen { addr, source })?;
            tokio::spawn(accept_device(l, role, self.arrived.clone()));
        }
        Ok(())
    }

    async fn conn(&mut self, step: &Step) -> Result<&mut Conn, ReplayError> {
        if !self.conns.contains_key(&step.conn) {
            let addr = self.opts.target.addr(step.port);
            let s = tokio::time::timeout(self.opts.timeout, TcpStream::connect(&addr))
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "timed out",
                    ))
                })
                .map_err(|source| ReplayError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
            let _ = s.set_nodelay(true);
            let (rd, wr) = s.into_split();
            let rd = FramedRead::new(rd, MosCodec::new(CodecConfig::default()));
            self.conns.insert(step.conn.clone(), Conn { rd, wr });
        }
        self.conns
            .get_mut(&step.conn)
            .ok_or_else(|| ReplayError::Connect {
                addr: step.conn.clone(),
                source: std::io::Error::other("connection lost"),
            })
    }

    fn rewrite(&mut self, text: &str) -> String {
        let mos_id = self.opts.mos_id.clone();
        let ncs_id = self.opts.ncs_id.clone();
        let renumber = self.opts.renumber_from.is_some();
        let mut new_id = None;
        if renumber && let Some(old) = message_id(text) {
            let next = &mut self.next_id;
            let id = self
                .ids
                .entry(old)
                .or_insert_with(|| {
                    let id = next.to_string();
                    *next = if *next >= i32::MAX as u32 {
                        1
                    } else {
                        *next + 1
                    };
                    id
                })
                .clone();
            new_id = Some(id);
        }
        rewrite_envelope(text, &|name, _| match name {
            "mosID" => mos_id.clone(),
            "ncsID" => ncs_id.clone(),
            "messageID" => new_id.clone(),
            _ => None,
        })
    }

    async fn pace(&mut self, at: Option<chrono::DateTime<chrono::FixedOffset>>) {
        let (Some(speed), Some(at)) = (self.opts.speed, at) else {
            return;
        };
        if speed <= 0.0 {
            return;
        }
        match self.pace {
            None => self.pace = Some((at, tokio::time::Instant::now())),
            Some((t0, i0)) => {
                let captured = (at - t0).to_std().unwrap_or_default();
                let due = i0 + captured.div_f64(speed);
                tokio::time::sleep_until(due).await;
            }
        }
    }

    /// Sends one step, waits for its reply and records the row.
    pub async fn play(&mut self, step: &Step) -> Result<(), ReplayError> {
        self.pace(step.at).await;
        let text = self.rewrite(&step.text);
        let sent = format!(
            "{} #{}",
            describe(&text),
            message_id(&text).unwrap_or_else(|| "-".into())
        );
        let (timeout, quiet) = (self.opts.timeout, self.opts.quiet);
        let wait = match step.expected {
            Expected::Nothing => quiet.min(timeout),
            _ => timeout,
        };
        let conn = self.conn(step).await?;
        let started = Instant::now();
        let got = match conn.wr.write_all(&encode_text(&text, step.encoding)).await {
            Err(e) => Err(format!("write failed: {e}")),
            Ok(()) => match tokio::time::timeout(wait, conn.rd.next()).await {
                Err(_) => Ok(None),
                Ok(None) => Err("connection closed".to_string()),
                Ok(Some(Err(e))) => Err(format!("read failed: {e}")),
                Ok(Some(Ok(Err(e)))) => Err(format!("bad bytes: {e}")),
                Ok(Some(Ok(Ok(frame)))) => Ok(Some(frame.text)),
            },
        };
        if got.is_err() {
            self.conns.remove(&step.conn);
        }
        debug!(source = %step.source, elapsed = ?started.elapsed(), "replayed");
        let (expected, got_text, verdict, differences) = match (&step.expected, &got) {
            (Expected::Reply(e), Ok(Some(g))) => {
                let d = compare(e, g);
                let v = if d.is_empty() {
                    Verdict::Passed
                } else {
                    Verdict::Failed
                };
                (describe(e), describe(g), v, d)
            }
            (Expected::Reply(e), Ok(None)) => (
                describe(e),
                "no reply".into(),
                Verdict::Failed,
                vec![Difference {
                    field: "reply".into(),
                    expected: describe(e),
                    got: format!("nothing within {timeout:?}"),
                }],
            ),
            (Expected::Nothing, Ok(Some(g))) => (
                "no reply".into(),
                describe(g),
                Verdict::Failed,
                vec![Difference {
                    field: "reply".into(),
                    expected: "no reply".into(),
                    got: describe(g),
                }],
            ),
            (Expected::Nothing, Ok(None)) => (
                "no reply".into(),
                "no reply".into(),
                Verdict::Passed,
                vec![],
            ),
            (Expected::Unknown, Ok(g)) => (
                "-".into(),
                g.as_deref()
                    .map(describe)
                    .unwrap_or_else(|| "no reply".into()),
                Verdict::Unchecked,
                vec![],
            ),
            (e, Err(why)) => {
                let exp = match e {
                    Expected::Reply(t) => describe(t),
                    Expected::Nothing => "no reply".into(),
                    Expected::Unknown => "-".into(),
                };
                (
                    exp.clone(),
                    why.clone(),
                    Verdict::Failed,
                    vec![Difference {
                        field: "connection".into(),
                        expected: exp,
                        got: why.clone(),
                    }],
                )
            }
        };
        match verdict {
            Verdict::Passed => self.report.passed += 1,
            Verdict::Failed => self.report.failed += 1,
            Verdict::Unchecked => self.report.unchecked += 1,
        }
        let n = self.report.rows.len() + 1;
        self.report.rows.push(Row {
            n,
            source: step.source.clone(),
            port: step.port.name().into(),
            sent,
            expected,
            got: got_text,
            verdict,
            differences,
        });
        Ok(())
    }

    /// Plays every item; a restart marker closes the connections and calls nothing else.
    pub async fn play_all(&mut self, items: &[Item]) -> Result<(), ReplayError> {
        for item in items {
            match item {
                Item::Step(s) => self.play(s).await?,
                Item::Restart => self.restart(),
            }
        }
        Ok(())
    }

    /// The report so far (with what arrived on `--listen`).
    pub fn report(&self) -> Report {
        let mut r = self.report.clone();
        r.arrived = self.arrived.lock().map(|a| a.clone()).unwrap_or_default();
        r
    }
}

async fn accept_device(l: TcpListener, role: PortRole, arrived: Arc<Mutex<Vec<Arrival>>>) {
    loop {
        let Ok((s, peer)) = l.accept().await else {
            return;
        };
        tokio::spawn(serve_device(s, peer, role, arrived.clone()));
    }
}

/// Answers what the device sends: heartbeats with heartbeats, requests with OK.
async fn serve_device(
    s: TcpStream,
    peer: SocketAddr,
    role: PortRole,
    arrived: Arc<Mutex<Vec<Arrival>>>,
) {
    let (rd, mut wr) = s.into_split();
    let mut rd = FramedRead::new(rd, MosCodec::new(CodecConfig::default()));
    while let Some(Ok(item)) = rd.next().await {
        let Ok(frame) = item else { continue };
        let enc = rd.decoder().write_encoding();
        let Ok(parsed) = Mos::parse(&frame.text, ParseOptions::lenient()) else {
            warn!(%peer, "unreadable message from the device");
            continue;
        };
        let mos = parsed.mos;
        if let Ok(mut a) = arrived.lock() {
            a.push(Arrival {
                port: role.name().into(),
                message: describe_message(&mos.message),
                text: frame.text.clone(),
            });
        }
        let env = mos.envelope();
        let answer = match &mos.message {
            Message::Heartbeat(_) => Some(Message::Heartbeat(crate::mos::messages::Heartbeat {
                time: Some(crate::mos::time::MosTime::now()),
            })),
            Message::RoAck(_) | Message::MosAck(_) => None,
            m if port_of_message(m) == PortRole::Upper => {
                Some(Message::RoAck(RoAck::ok(crate::session::ro_id_of(m))))
            }
            _ => Some(Message::MosAck(MosAck {
                object_id: String::new(),
                object_rev: None,
                status: crate::mos::messages::AckStatus::Ack,
                description: String::new(),
            })),
        };
        if let Some(m) = answer {
            let text = reply_to(&env, m).to_xml();
            if wr.write_all(&encode_text(&text, enc)).await.is_err() {
                return;
            }
        }
    }
}

/// Loads the inputs, replays them, and returns the report (the CLI's body).
pub async fn replay(
    inputs: &[PathBuf],
    opts: ReplayOptions,
    listen: Option<ListenAt>,
) -> Result<Report, ReplayError> {
    let items = load_inputs(inputs)?;
    let mut r = Replayer::new(opts);
    if let Some(at) = &listen {
        r.listen(at).await?;
    }
    r.play_all(&items).await?;
    if listen.is_some() {
        // Give the device a moment to send what the replay caused.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(r.report())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(body: &str) -> String {
        format!("<mos><mosID>M</mosID><ncsID>N</ncsID><messageID>7</messageID>{body}</mos>")
    }

    fn ro_list(stories: &[(&str, &[&str])]) -> String {
        let s: String = stories
            .iter()
            .map(|(id, items)| {
                let i: String = items
                    .iter()
                    .map(|i| {
                        format!(
                            "<item><itemID>{i}</itemID><objID>O{i}</objID><mosID>M</mosID></item>"
                        )
                    })
                    .collect();
                format!("<story><storyID>{id}</storyID>{i}</story>")
            })
            .collect();
        env(&format!(
            "<roList><roID>R</roID><roSlug>Show</roSlug>{s}</roList>"
        ))
    }

    #[test]
    fn equal_replies_agree_whatever_their_message_ids() {
        let a = env("<roAck><roID>R</roID><roStatus>OK</roStatus></roAck>");
        let b = a.replace(">7<", ">99<");
        assert!(compare(&a, &b).is_empty());
    }

    #[test]
    fn ro_status_ok_versus_error_is_a_difference_but_the_reason_text_is_not() {
        let ok = env("<roAck><roID>R</roID><roStatus>OK</roStatus></roAck>");
        let err = env("<roAck><roID>R</roID><roStatus>Unknown storyID S9</roStatus></roAck>");
        let err2 = env("<roAck><roID>R</roID><roStatus>Story S9 not found</roStatus></roAck>");
        let d = compare(&ok, &err);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "roStatus");
        assert_eq!((d[0].expected.as_str(), d[0].got.as_str()), ("OK", "error"));
        assert!(compare(&err, &err2).is_empty());
    }

    #[test]
    fn another_message_type_is_named() {
        let a = env("<roAck><roID>R</roID><roStatus>OK</roStatus></roAck>");
        let b = env(
            "<mosAck><objID/><objRev>0</objRev><status>NACK</status><statusDescription>x</statusDescription></mosAck>",
        );
        let d = compare(&a, &b);
        assert_eq!(d[0].field, "message");
        assert_eq!(d[0].expected, "roAck OK");
        assert_eq!(d[0].got, "mosAck NACK");
    }

    #[test]
    fn mos_ack_status_is_compared() {
        let a = env(
            "<mosAck><objID>1</objID><objRev>0</objRev><status>ACK</status><statusDescription/></mosAck>",
        );
        let b = a.replace("ACK<", "NACK<");
        assert_eq!(compare(&a, &b)[0].field, "status");
    }

    #[test]
    fn ro_list_story_and_item_order_matter() {
        let a = ro_list(&[("S1", &["1", "2"]), ("S2", &[])]);
        assert!(compare(&a, &a).is_empty());
        let b = ro_list(&[("S2", &[]), ("S1", &["1", "2"])]);
        let d = compare(&a, &b);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "stories");
        assert_eq!(
            (d[0].expected.as_str(), d[0].got.as_str()),
            ("S1 S2", "S2 S1")
        );
        let c = ro_list(&[("S1", &["2", "1"]), ("S2", &[])]);
        assert_eq!(compare(&a, &c)[0].field, "story S1 items");
    }

    #[test]
    fn list_mach_info_times_are_ignored() {
        let info = |time: &str, model: &str| {
            env(&format!(
                "<listMachInfo><manufacturer>X</manufacturer><model>{model}</model><hwRev/><swRev>1</swRev><DOM/><SN>1</SN><ID>M</ID><time>{time}</time><mosRev>2.8.1</mosRev></listMachInfo>"
            ))
        };
        let a = info("2026-01-01T00:00:00,000Z", "A");
        assert!(compare(&a, &info("2026-02-02T10:00:00,000Z", "A")).is_empty());
        assert_eq!(
            compare(&a, &info("2026-01-01T00:00:00,000Z", "B"))[0].field,
            "listMachInfo"
        );
    }

    #[test]
    fn mos_obj_fields_are_compared_but_not_times() {
        let obj = |slug: &str, changed: &str| {
            env(&format!(
                "<mosObj><objID>O1</objID><objSlug>{slug}</objSlug><objType>VIDEO</objType><objTB>50</objTB><objRev>1</objRev><objDur>100</objDur><status>NEW</status><objAir>READY</objAir><createdBy>a</createdBy><created>2026-01-01T00:00:00</created><changedBy>a</changedBy><changed>{changed}</changed><description/></mosObj>"
            ))
        };
        let a = obj("Cam", "2026-01-01T00:00:00");
        assert!(compare(&a, &obj("Cam", "2026-03-01T00:00:00")).is_empty());
        let d = compare(&a, &obj("Cam 2", "2026-01-01T00:00:00"));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "objSlug");
    }

    #[test]
    fn envelope_rewriting_touches_only_the_header() {
        let t = "<mos><mosID>M</mosID><ncsID>N</ncsID><messageID>7</messageID><roCreate><roID>R</roID><story><storyID>S</storyID><item><itemID>1</itemID><objID>O</objID><mosID>M</mosID></item></story></roCreate></mos>";
        let out = rewrite_envelope(t, &|n, old| match n {
            "mosID" => Some("X".into()),
            "messageID" => Some(format!("{old}0")),
            _ => None,
        });
        assert!(out.starts_with("<mos><mosID>X</mosID><ncsID>N</ncsID><messageID>70</messageID>"));
        assert!(out.contains("<objID>O</objID><mosID>M</mosID>"));
        assert_eq!(message_id(t).as_deref(), Some("7"));
    }

    #[test]
    fn targets_and_listen_addresses_parse() {
        let t: Target = "gw.local".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.lower, t.upper, t.query), (10540, 10541, 10542));
        let t: Target = "127.0.0.1:1,2".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.lower, t.upper, t.query), (1, 2, 10542));
        let t: Target = "[::1]:1,2,3".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.addr(PortRole::Query), "[::1]:3");
        assert!("h:1,2,3,4".parse::<Target>().is_err());
        assert!("h:x".parse::<Target>().is_err());
        let l: ListenAt = "127.0.0.1:5,6".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((l.lower, l.upper), (5, 6));
        assert!("127.0.0.1:5".parse::<ListenAt>().is_err());
    }

    #[test]
    fn ports_follow_the_message_family() {
        assert_eq!(port_of_name("roCreate"), PortRole::Upper);
        assert_eq!(port_of_name("mosItemReplace"), PortRole::Upper);
        assert_eq!(port_of_name("mosReqObjList"), PortRole::Query);
        assert_eq!(port_of_name("mosReqObj"), PortRole::Lower);
        assert_eq!(port_of_name("heartbeat"), PortRole::Lower);
        assert_eq!(port_of_name("octext_roStorySkip"), PortRole::Upper);
    }

    #[test]
    fn a_capture_pairs_each_message_with_the_next_reply_on_its_connection() {
        let dir = std::env::temp_dir().join(format!("replay-unit-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("c.jsonl");
        let line = |dir: &str, remote: &str, text: &str| {
            format!(
                "{{\"ts\":\"2026-01-01T00:00:00.000Z\",\"dir\":\"{dir}\",\"local\":\"l\",\"remote\":\"{remote}\",\"port\":\"upper\",\"socket\":\"inbound\",\"encoding\":\"utf8\",\"text\":{}}}\n",
                serde_json::to_string(text).unwrap_or_default()
            )
        };
        let content = [
            line("in", "a", "A1"),
            line("in", "b", "B1"),
            line("out", "a", "ra1"),
            line("in", "a", "A2"),
            line("in", "a", "A3"),
            line("out", "a", "ra3"),
            "{\"marker\":\"restart\"}\n".to_string(),
        ]
        .concat();
        let _ = std::fs::write(&path, content);
        let items = load_inputs(std::slice::from_ref(&path)).unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_dir_all(&dir);
        let exp: Vec<(String, Expected)> = items
            .iter()
            .filter_map(|i| match i {
                Item::Step(s) => Some((s.text.clone(), s.expected.clone())),
                Item::Restart => None,
            })
            .collect();
        assert_eq!(
            exp,
            vec![
                ("A1".into(), Expected::Reply("ra1".into())),
                ("B1".into(), Expected::Nothing),
                ("A2".into(), Expected::Nothing),
                ("A3".into(), Expected::Reply("ra3".into())),
            ]
        );
        assert_eq!(items.last(), Some(&Item::Restart));
    }
}
