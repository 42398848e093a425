//! `mos-gateway validate`: checks MOS message files against the MOS 2.8.1 DTD and the
//! message structure, message by message.

use std::fmt::Write as _;
use std::path::Path;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::dtd::{Dtd, ValidateOptions};
use crate::mos::codec::{CodecConfig, MosCodec, WireEncoding, decode_bytes};
use crate::mos::{Mos, ParseOptions};

/// The verdict on one message of a file.
#[derive(Debug, Clone)]
pub struct MessageReport {
    /// 1-based line of the message's `<mos>` in the file.
    pub line: usize,
    /// The message element name, when it could be read.
    pub message: Option<String>,
    /// Each problem: (line in the file, text). Empty when valid.
    pub problems: Vec<(usize, String)>,
}

impl MessageReport {
    /// Whether the message is valid.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The verdict on one file.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The encoding found on disk.
    pub encoding: Option<WireEncoding>,
    /// One report per message, in order.
    pub messages: Vec<MessageReport>,
    /// Problems not tied to a message (unreadable file, bytes that are no message).
    pub problems: Vec<(usize, String)>,
}

impl FileReport {
    /// Whether every message is valid and nothing else was wrong.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
            && !self.messages.is_empty()
            && self.messages.iter().all(MessageReport::is_valid)
    }
}

/// Validates every MOS message in `bytes` (UTF-16BE, UTF-16LE or UTF-8).
pub fn validate_bytes(bytes: &[u8]) -> FileReport {
    let (text, encoding) = match decode_bytes(bytes) {
        Ok(t) => t,
        Err(e) => {
            return FileReport {
                encoding: None,
                messages: Vec::new(),
                problems: vec![(1, e.to_string())],
            };
        }
    };
    let mut report = FileReport {
        encoding: Some(encoding),
        messages: Vec::new(),
        problems: Vec::new(),
    };
    let mut codec = MosCodec::new(CodecConfig {
        encoding: Some(WireEncoding::Utf8),
        max_message_bytes: usize::MAX / 2,
    });
    let mut buf = BytesMut::from(text.as_bytes());
    let mut pos = 0usize;
    loop {
        let next = match codec.decode(&mut buf) {
            Ok(None) => codec.decode_eof(&mut buf),
            other => other,
        };
        let item = match next {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(e) => {
                report
                    .problems
                    .push((crate::mos::xml::line_of(&text, pos), e.to_string()));
                break;
            }
        };
        match item {
            Ok(frame) => {
                let start = text[pos..]
                    .find(&frame.text)
                    .map(|i| pos + i)
                    .unwrap_or(pos);
                pos = start + frame.text.len();
                let first_line = crate::mos::xml::line_of(&text, start);
                report
                    .messages
                    .push(validate_message(&frame.text, first_line));
            }
            Err(e) => report
                .problems
                .push((crate::mos::xml::line_of(&text, pos), e.to_string())),
        }
    }
    if report.messages.is_empty() && report.problems.is_empty() {
        report.problems.push((1, "no MOS message found".into()));
    }
    report
}

/// Validates one message; `first_line` is the line of its start in the file.
fn validate_message(text: &str, first_line: usize) -> MessageReport {
    let mut problems = Vec::new();
    let options = ValidateOptions {
        root: Some("mos".into()),
        strict_any: false,
    };
    for v in Dtd::mos_2_8_1().validate_with(text, &options) {
        problems.push((
            first_line + v.line - 1,
            format!("{}: {}", v.path, v.message),
        ));
    }
    let message = match Mos::parse(text, ParseOptions::strict()) {
        Ok(p) => Some(p.mos.message.name().to_string()),
        Err(rejected) => {
            let line = first_line + rejected.error.line.unwrap_or(1) - 1;
            let detail = rejected.error.to_string();
            // Report structure problems the DTD did not already report on that line.
            if !problems.iter().any(|(l, _)| *l == line) {
                problems.push((line, detail));
            }
            rejected.envelope.and_then(|e| e.message_name)
        }
    };
    MessageReport {
        line: first_line,
        message,
        problems,
    }
}

/// Validates a file.
pub fn validate_file(path: &Path) -> FileReport {
    match std::fs::read(path) {
        Ok(bytes) => validate_bytes(&bytes),
        Err(e) => FileReport {
            encoding: None,
            messages: Vec::new(),
            problems: vec![(0, format!("cannot read: {e}"))],
        },
    }
}

/// Renders a report the way `mos-gateway validate` prints it.
pub fn render(path: &Path, report: &FileReport) -> String {
    let mut out = String::new();
    let name = path.display();
    for (line, p) in &report.problems {
        let _ = writeln!(out, "{name}:{line}: error: {p}");
    }
    for m in &report.messages {
        let kind = m.message.as_deref().unwrap_or("?");
        if m.is_valid() {
            let _ = writeln!(out, "{name}:{}: {kind}: valid", m.line);
        } else {
            let _ = writeln!(out, "{name}:{}: {kind}: INVALID", m.line);
            for (line, p) in &m.problems {
                let _ = writeln!(out, "{name}:{line}:   {p}");
            }
        }
    }
    out
}
