//! The `<mos>` envelope: reading a document into a typed [`Mos`] message (strict or
//! lenient) and writing it back.

use super::error::{Deviation, DeviationKind, ParseError};
use super::messages::Message;
use super::read::{Cx, text_of};
use super::xml::{Document, XmlWriter};

/// A complete MOS message: envelope fields and one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Mos {
    /// mosID: the MOS device's ID.
    pub mos_id: String,
    /// ncsID: the NCS's ID.
    pub ncs_id: String,
    /// messageID exactly as received (echoed verbatim in replies); None when absent.
    pub message_id: Option<String>,
    /// The message.
    pub message: Message,
}

/// The envelope fields, as far as they could be read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// mosID.
    pub mos_id: String,
    /// ncsID.
    pub ncs_id: String,
    /// messageID as received.
    pub message_id: Option<String>,
    /// The message element name, if one was found.
    pub message_name: Option<String>,
}

/// How to read messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions {
    /// Refuse off-spec constructs instead of tolerating them.
    pub strict: bool,
}

impl ParseOptions {
    /// Lenient parsing (the default).
    pub fn lenient() -> Self {
        Self { strict: false }
    }
    /// Strict parsing.
    pub fn strict() -> Self {
        Self { strict: true }
    }
}

/// A parsed message and the deviations lenient parsing tolerated.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The message.
    pub mos: Mos,
    /// Off-spec constructs accepted (empty in strict mode).
    pub deviations: Vec<Deviation>,
}

/// A message that could not be read, with whatever envelope could be read for a NACK.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}")]
pub struct Rejected {
    /// The envelope, when the document was well-formed enough to read it.
    pub envelope: Option<Box<Envelope>>,
    /// What was wrong.
    pub error: ParseError,
}

const HEADER: [&str; 3] = ["mosID", "ncsID", "messageID"];

/// The text of the first `<messageID>` element, found by scanning a document that could not
/// be parsed, so that its NACK can still echo it (`None` when there is none, or when it
/// holds markup).
pub fn peek_message_id(doc: &str) -> Option<&str> {
    let open = memchr::memmem::find(doc.as_bytes(), b"<messageID>")? + "<messageID>".len();
    let len = memchr::memmem::find(&doc.as_bytes()[open..], b"</messageID>")?;
    let id = doc.get(open..open + len)?;
    (!id.contains('<')).then_some(id)
}

/// The name of the first element under the root of a `<mos>` document other than mosID,
/// ncsID and messageID, found by scanning the text without parsing it: usually the
/// message's name. A hint for deciding early what to do with a document; None when the
/// scan finds none. [`Mos::parse`] is what decides.
pub fn peek_message_name(doc: &str) -> Option<&str> {
    let b = doc.as_bytes();
    let skip_past = |from: usize, end: &[u8]| {
        memchr::memmem::find(&b[from..], end).map(|i| from + i + end.len())
    };
    let mut at = 0;
    let mut in_root = false;
    loop {
        let lt = at + memchr::memchr(b'<', &b[at..])?;
        let rest = &b[lt + 1..];
        at = match rest.first()? {
            b'?' => skip_past(lt, b"?>")?,
            b'!' if rest.starts_with(b"!--") => skip_past(lt, b"-->")?,
            b'!' if rest.starts_with(b"![CDATA[") => skip_past(lt, b"]]>")?,
            b'!' | b'/' => skip_past(lt, b">")?,
            _ => {
                let len = rest
                    .iter()
                    .position(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>'))?;
                let name = doc.get(lt + 1..lt + 1 + len)?;
                if in_root && !HEADER.contains(&name) {
                    return Some(name);
                }
                in_root = true;
                skip_past(lt, b">")?
            }
        };
    }
}

impl Mos {
    /// A message with envelope fields.
    pub fn new(mos_id: &str, ncs_id: &str, message_id: Option<String>, message: Message) -> Self {
        Self {
            mos_id: mos_id.to_string(),
            ncs_id: ncs_id.to_string(),
            message_id,
            message,
        }
    }

    /// Reads one `<mos>` document.
    pub fn parse(text: &str, options: ParseOptions) -> Result<Parsed, Rejected> {
        let doc = Document::parse(text).map_err(|e| Rejected {
            envelope: None,
            error: ParseError {
                message: None,
                path: String::new(),
                detail: format!("not well-formed XML: {e}"),
                line: Some(e.line),
                offset: Some(e.offset),
                kind: None,
            },
        })?;
        let root = doc.root();
        let mut cx = Cx::new(options.strict);
        if root.name() != "mos" {
            return Err(Rejected {
                envelope: None,
                error: cx.error(
                    None,
                    format!("root element is <{}>, expected <mos>", root.name()),
                ),
            });
        }
        let body = root
            .children()
            .find(|c| !HEADER.contains(&c.name()) && Message::NAMES.contains(&c.name()));
        let body = body.or_else(|| root.children().find(|c| !HEADER.contains(&c.name())));
        let envelope = Envelope {
            mos_id: root.child("mosID").map(text_of).unwrap_or_default(),
            ncs_id: root.child("ncsID").map(text_of).unwrap_or_default(),
            message_id: root.child("messageID").map(text_of),
            message_name: body.map(|b| b.name().to_string()),
        };
        let reject = |mut error: ParseError| {
            if error.line.is_none() {
                error.line = error.offset.map(|o| doc.line_of(o));
            }
            Rejected {
                envelope: Some(Box::new(envelope.clone())),
                error,
            }
        };
        let Some(body) = body else {
            return Err(reject(
                cx.error(None, "no message element after mosID, ncsID, messageID"),
            ));
        };
        // Header checks, in order.
        let mut header_order: Vec<&str> = HEADER.to_vec();
        header_order.push(body.name());
        cx.check_order(root, &header_order).map_err(reject)?;
        for (name, value) in [("mosID", &envelope.mos_id), ("ncsID", &envelope.ncs_id)] {
            if root.child(name).is_none() {
                cx.missing(name).map_err(reject)?;
            } else if value.is_empty() {
                cx.tolerate(DeviationKind::EmptyMosId, Some(name), "empty")
                    .map_err(reject)?;
            }
        }
        match &envelope.message_id {
            None => cx
                .tolerate(
                    DeviationKind::MissingMessageId,
                    Some("messageID"),
                    "no messageID (required since 2.8.1)",
                )
                .map_err(reject)?,
            Some(id) if id.is_empty() => cx
                .tolerate(
                    DeviationKind::EmptyMessageId,
                    Some("messageID"),
                    "empty messageID",
                )
                .map_err(reject)?,
            Some(id) => {
                if !matches!(super::number::parse_i32(id), Ok(n) if n >= 1) {
                    cx.tolerate(
                        DeviationKind::InvalidMessageId,
                        Some("messageID"),
                        format!("{id:?} is not a number from 1 to 2147483647"),
                    )
                    .map_err(reject)?;
                }
            }
        }
        let message = Message::read(body, &mut cx).map_err(reject)?;
        Ok(Parsed {
            mos: Mos {
                mos_id: envelope.mos_id.clone(),
                ncs_id: envelope.ncs_id.clone(),
                message_id: envelope.message_id.clone(),
                message,
            },
            deviations: cx.deviations,
        })
    }

    /// Writes the message as XML text in the spec's element order (no XML declaration).
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::with_capacity(256);
        w.open("mos");
        w.leaf("mosID", &self.mos_id);
        w.leaf("ncsID", &self.ncs_id);
        if let Some(id) = &self.message_id {
            w.leaf("messageID", id);
        }
        self.message.write(&mut w);
        w.close("mos");
        w.finish()
    }

    /// The messageID as a number, when it is one.
    pub fn message_number(&self) -> Option<i32> {
        self.message_id
            .as_deref()
            .and_then(|id| super::number::parse_i32(id).ok())
    }

    /// The envelope fields.
    pub fn envelope(&self) -> Envelope {
        Envelope {
            mos_id: self.mos_id.clone(),
            ncs_id: self.ncs_id.clone(),
            message_id: self.message_id.clone(),
            message_name: Some(self.message.name().to_string()),
        }
    }
}
