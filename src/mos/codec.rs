//! Framing: a TCP byte stream ⇄ complete `<mos>` documents.
//!
//! MOS has no length prefix and no terminator: a message is one XML document whose root is
//! `<mos>`, and it ends at the `</mos>` that closes that root (reference §1.4). [`MosCodec`]
//! is a [`tokio_util::codec`] decoder/encoder that finds those boundaries and transcodes
//! between the wire encoding (UTF-16BE by default, UTF-16LE or UTF-8, §1.3) and UTF-8 text.
//!
//! How the decoder works:
//! - It scans the **wire bytes** in whole code units (an odd trailing byte waits for its
//!   partner) and only transcodes a message once it is complete, so splits inside a code unit
//!   or a surrogate pair cannot corrupt anything.
//! - The scanner is a small lexer that knows tags, quoted attribute values, comments, CDATA
//!   sections, processing instructions and declarations. It counts `<mos …>` start tags and
//!   `</mos>` end tags (not other elements, so a malformed payload such as an unclosed `<br>`
//!   does not hide the end of the message); the message ends when the root closes.
//! - It remembers where it stopped, so a large message is scanned once, in linear time.
//! - Between messages it skips whitespace, BOMs (U+FEFF), processing instructions (including
//!   the XML declaration) and comments. Anything else is reported as
//!   [`FrameError::NotAMessage`], and the decoder skips to the next `<mos` start tag.
//! - A message bigger than [`CodecConfig::max_message_bytes`] (counted in wire bytes from the
//!   end of the previous item, so leading whitespace and comments count) is reported once as
//!   [`FrameError::TooLarge`]; the decoder then discards the rest of that message, tracking
//!   `<mos>` depth as usual, consuming bytes as it goes, and carries on after its `</mos>`.
//! - `<mos>` elements nested in a message (a payload carrying a whole MOS message, seen in the
//!   field) are counted, so a message whose sender gave up mid-way never ends: everything
//!   after it reads as nested. The caller, which sees the stream fall silent,
//!   gives it up with [`MosCodec::abandon`] ([`FrameError::Truncated`]).
//! - Recoverable problems are items (`Ok(Some(Err(_)))`), so a `FramedRead` keeps going.
//!
//! The buffered input is bounded: at most one message under the limit plus a few code units of
//! lookahead; junk and discarded messages are consumed as they are scanned.
//!
//! The codec must be the only consumer of the buffer passed to `decode` (as with `FramedRead`).

use std::fmt;
use std::io;
use std::str::FromStr;

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Default for [`CodecConfig::max_message_bytes`]: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How many code units of junk a [`FrameError::NotAMessage`] excerpt shows at most.
const EXCERPT_UNITS: usize = 40;

/// Maximum length of [`FrameError::reason`] in characters.
const REASON_MAX_CHARS: usize = 128;

/// A character encoding used on a MOS connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireEncoding {
    /// UTF-16, high-order byte first: the MOS default ("UCS-2 big-endian").
    Utf16Be,
    /// UTF-16, low-order byte first.
    Utf16Le,
    /// UTF-8.
    Utf8,
}

impl WireEncoding {
    /// The configuration name: `"utf16be"`, `"utf16le"` or `"utf8"`.
    pub fn name(&self) -> &'static str {
        match self {
            WireEncoding::Utf16Be => "utf16be",
            WireEncoding::Utf16Le => "utf16le",
            WireEncoding::Utf8 => "utf8",
        }
    }

    /// Bytes per code unit: 2 for UTF-16, 1 for UTF-8.
    pub fn unit_len(&self) -> usize {
        match self {
            WireEncoding::Utf16Be | WireEncoding::Utf16Le => 2,
            WireEncoding::Utf8 => 1,
        }
    }

    /// Guesses the encoding from the first two bytes of a stream (`None` if fewer are given).
    ///
    /// BOM `FE FF` → UTF-16BE, `FF FE` → UTF-16LE; otherwise `00 xx` → UTF-16BE,
    /// `xx 00` → UTF-16LE, anything else (including the UTF-8 BOM `EF BB BF`) → UTF-8.
    pub fn detect(prefix: &[u8]) -> Option<WireEncoding> {
        match prefix {
            [0xFE, 0xFF, ..] => Some(WireEncoding::Utf16Be),
            [0xFF, 0xFE, ..] => Some(WireEncoding::Utf16Le),
            [0x00, _, ..] => Some(WireEncoding::Utf16Be),
            [_, 0x00, ..] => Some(WireEncoding::Utf16Le),
            [_, _, ..] => Some(WireEncoding::Utf8),
            _ => None,
        }
    }
}

impl fmt::Display for WireEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing a [`WireEncoding`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown wire encoding {0:?} (expected utf16be, utf16le or utf8)")]
pub struct ParseWireEncodingError(pub String);

impl FromStr for WireEncoding {
    type Err = ParseWireEncodingError;

    /// Accepts `utf16be`, `utf16le` and `utf8`, ignoring case, `-` and `_` (`UTF-16BE` works).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .trim()
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match norm.as_str() {
            "utf16be" => Ok(WireEncoding::Utf16Be),
            "utf16le" => Ok(WireEncoding::Utf16Le),
            "utf8" => Ok(WireEncoding::Utf8),
            _ => Err(ParseWireEncodingError(s.to_owned())),
        }
    }
}

/// Settings of a [`MosCodec`].
#[derive(Debug, Clone)]
pub struct CodecConfig {
    /// The wire encoding; `None` detects it from the first bytes of the connection.
    pub encoding: Option<WireEncoding>,
    /// Largest accepted message in wire bytes, counted from the end of the previous item
    /// (leading whitespace and comments included). Without a limit a peer could make the
    /// buffer grow without bound.
    pub max_message_bytes: usize,
}

impl Default for CodecConfig {
    fn default() -> Self {
        CodecConfig {
            encoding: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// One complete `<mos>` document taken off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The document as UTF-8, from `<mos` to the closing `</mos>` inclusive, unchanged.
    pub text: String,
    /// The encoding it was received in.
    pub encoding: WireEncoding,
    /// Wire bytes it took, including whitespace, BOMs and comments before it.
    pub wire_bytes: usize,
}

/// A recoverable framing problem. The decoder has skipped the offending bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A message exceeded the size limit; `seen` is how many bytes had been seen when it was
    /// noticed (the whole message if it had already arrived). The rest of it is discarded.
    #[error("message too large: {seen} bytes seen, limit is {limit}")]
    TooLarge {
        /// The configured limit in wire bytes.
        limit: usize,
        /// Wire bytes of the message seen so far.
        seen: usize,
    },
    /// Something other than a `<mos>` document appeared between messages.
    #[error("not a MOS message: found {found:?}")]
    NotAMessage {
        /// A short printable excerpt of what was found.
        found: String,
    },
    /// A message was not valid text in the wire encoding (e.g. an unpaired surrogate).
    #[error("invalid {encoding} text: {detail}")]
    InvalidEncoding {
        /// The encoding of the connection.
        encoding: WireEncoding,
        /// What was wrong and where.
        detail: String,
    },
    /// A message was given up as cut off ([`MosCodec::abandon`]): it stayed incomplete and
    /// the stream fell silent. It was dropped with whatever followed it in the buffer.
    #[error("message cut off: incomplete when the stream fell silent")]
    Truncated {
        /// The cut-off message's messageID, when it got that far (for the NACK).
        message_id: Option<String>,
    },
    /// The stream broke the framing rules, e.g. a message truncated at the end of the stream.
    #[error("malformed stream: {detail}")]
    Malformed {
        /// What was wrong.
        detail: String,
    },
}

impl FrameError {
    /// A one-line reason (at most 128 characters) for a NACK `statusDescription`.
    pub fn reason(&self) -> String {
        let full = self.to_string();
        let mut out = String::with_capacity(full.len().min(REASON_MAX_CHARS * 4));
        for (n, c) in full.chars().enumerate() {
            if n >= REASON_MAX_CHARS {
                out.pop();
                out.push('…');
                break;
            }
            out.push(if c.is_control() { ' ' } else { c });
        }
        out
    }
}

/// One decoder result: a frame, or a recoverable problem.
type Item = Result<Frame, FrameError>;

/// Framing codec for a MOS connection: wire bytes ⇄ complete `<mos>` documents.
///
/// Decoding yields `Ok(Some(Ok(frame)))` per message and `Ok(Some(Err(problem)))` for
/// recoverable problems; it never returns `Err` for bad input. Encoding writes the text in
/// [`MosCodec::write_encoding`], without a BOM.
#[derive(Debug)]
pub struct MosCodec {
    config: CodecConfig,
    detected: Option<WireEncoding>,
    /// Absolute stream offset of `src[0]`.
    base: u64,
    /// Where scanning continues (absolute, on the code unit grid).
    pos: u64,
    /// Start of the current item: the end of the previous one (absolute).
    item_start: u64,
    /// The `<` of the current root element (absolute).
    root_start: u64,
    ctx: Ctx,
    lex: Lex,
    /// The current item exceeded the limit: skip to its end without keeping it.
    discarding: bool,
}

/// Where the scanner is relative to messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// Between messages.
    Prolog,
    /// Inside a message; `depth` counts open `<mos>` elements (0 while in the root start tag).
    Message { depth: u64 },
    /// Junk found at `start`, not yet reported.
    Junk { start: u64 },
    /// Junk reported; looking for the next `<mos` start tag.
    Skip,
}

/// The lexical state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Text,
    /// At a `<` (at `pos`) that is not yet classified.
    Lt,
    /// Inside a tag; `quote` is the open quote character or 0.
    Tag {
        quote: u8,
        kind: TagKind,
    },
    /// Inside a comment; the closing `--` may start at `min` or later.
    Comment {
        min: u64,
    },
    CData {
        min: u64,
    },
    Pi {
        min: u64,
    },
    /// `<!…>` other than a comment or CDATA.
    Decl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagKind {
    StartMos,
    EndMos,
    Other,
}

/// What a `<` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Markup {
    Comment,
    CData,
    Pi,
    Decl,
    StartMos,
    EndMos,
    OtherTag,
}

enum Step {
    Continue,
    NeedMore,
    Emit(Item),
    /// The item ends at relative offset `end`; consume through it and emit `item` if any.
    Done {
        item: Option<Item>,
        end: usize,
    },
}

/// Code unit access for one wire encoding.
trait Units {
    /// Bytes per code unit.
    const W: usize;
    /// The code unit at byte offset `i`; the caller guarantees `i + W <= b.len()`.
    fn unit(b: &[u8], i: usize) -> u32;

    /// First position `>= from` (on the unit grid of `from`) of a whole code unit that is
    /// one of the ASCII characters `targets`, or `None` when `b` ends first.
    fn find_any<const N: usize>(b: &[u8], from: usize, targets: [u8; N]) -> Option<usize>;
}

/// [`Units::find_any`] for UTF-16: four code units per 64-bit word. `SHIFT` is where an
/// ASCII character's byte sits in a 16-bit lane of a word loaded little-endian (8 for
/// big-endian code units, 0 for little-endian ones).
///
/// A lane equal to the target becomes zero after XOR; `(x - 0x0001…) & !x & 0x8000…` flags
/// zero lanes. Lanes above a zero lane can be flagged falsely (the borrow runs upwards), so
/// only the lowest flag of a word is used, and it is always exact; the lowest over all
/// targets is the first unit matching any of them.
#[inline(always)]
fn find_any_utf16<const SHIFT: u32, const N: usize>(
    b: &[u8],
    from: usize,
    targets: [u8; N],
) -> Option<usize> {
    const ONES: u64 = 0x0001_0001_0001_0001;
    const HIGHS: u64 = 0x8000_8000_8000_8000;
    let pats = targets.map(|t| (u64::from(t) << SHIFT) * ONES);
    let mut i = from;
    while i + 8 <= b.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[i..i + 8]);
        let word = u64::from_le_bytes(word);
        let mut flags = 0;
        for pat in pats {
            let x = word ^ pat;
            flags |= x.wrapping_sub(ONES) & !x & HIGHS;
        }
        if flags != 0 {
            return Some(i + (flags.trailing_zeros() / 16) as usize * 2);
        }
        i += 8;
    }
    while i + 2 <= b.len() {
        let unit = if SHIFT == 8 {
            u16::from_be_bytes([b[i], b[i + 1]])
        } else {
            u16::from_le_bytes([b[i], b[i + 1]])
        };
        if targets.iter().any(|&t| unit == u16::from(t)) {
            return Some(i);
        }
        i += 2;
    }
    None
}

struct Utf8Units;
struct BeUnits;
struct LeUnits;

impl Units for Utf8Units {
    const W: usize = 1;
    #[inline(always)]
    fn unit(b: &[u8], i: usize) -> u32 {
        u32::from(b[i])
    }
    #[inline(always)]
    fn find_any<const N: usize>(b: &[u8], from: usize, targets: [u8; N]) -> Option<usize> {
        let hay = b.get(from..)?;
        let hit = match targets.as_slice() {
            [a] => memchr::memchr(*a, hay),
            [a, c] => memchr::memchr2(*a, *c, hay),
            [a, c, d] => memchr::memchr3(*a, *c, *d, hay),
            _ => hay.iter().position(|x| targets.contains(x)),
        };
        hit.map(|h| from + h)
    }
}

impl Units for BeUnits {
    const W: usize = 2;
    #[inline(always)]
    fn unit(b: &[u8], i: usize) -> u32 {
        (u32::from(b[i]) << 8) | u32::from(b[i + 1])
    }
    #[inline(always)]
    fn find_any<const N: usize>(b: &[u8], from: usize, targets: [u8; N]) -> Option<usize> {
        find_any_utf16::<8, N>(b, from, targets)
    }
}

impl Units for LeUnits {
    const W: usize = 2;
    #[inline(always)]
    fn unit(b: &[u8], i: usize) -> u32 {
        u32::from(b[i]) | (u32::from(b[i + 1]) << 8)
    }
    #[inline(always)]
    fn find_any<const N: usize>(b: &[u8], from: usize, targets: [u8; N]) -> Option<usize> {
        find_any_utf16::<0, N>(b, from, targets)
    }
}

/// The code unit at `i`, if it is complete in `b`.
#[inline(always)]
fn unit_at<E: Units>(b: &[u8], i: usize) -> Option<u32> {
    if i.checked_add(E::W)? <= b.len() {
        Some(E::unit(b, i))
    } else {
        None
    }
}

/// End of the last complete code unit at or after `from` (which is on the unit grid).
#[inline(always)]
fn aligned_end<E: Units>(len: usize, from: usize) -> usize {
    if len <= from {
        from
    } else {
        from + (len - from) / E::W * E::W
    }
}

/// First position `>= from` (on the code unit grid of `from`) of a whole code unit in
/// `b[from..to]` that is one of the ASCII characters `targets` matches.
///
/// `find_byte` finds the first byte that could be such a character (memchr: many bytes at a
/// time). In UTF-16 that byte may be the other half of an unrelated code unit (U+3C3C
/// contains `<` twice), so the code unit around each hit is checked before it counts; a hit
/// that does not count resumes the search after its code unit, so no unit is missed.
#[inline(always)]
fn find_units<E: Units>(
    b: &[u8],
    from: usize,
    to: usize,
    find_byte: impl Fn(&[u8]) -> Option<usize>,
    targets: impl Fn(u32) -> bool,
) -> Option<usize> {
    let to = aligned_end::<E>(to.min(b.len()), from);
    let mut i = from;
    while i < to {
        let hit = i + find_byte(&b[i..to])?;
        let unit = hit - (hit - i) % E::W;
        if targets(E::unit(b, unit)) {
            return Some(unit);
        }
        i = unit + E::W;
    }
    None
}

/// First position `>= from` and `< to` of a code unit equal to `t`.
#[inline(always)]
fn find_unit<E: Units>(b: &[u8], from: usize, to: usize, t: u8) -> Option<usize> {
    find_units::<E>(b, from, to, |h| memchr::memchr(t, h), |u| u == u32::from(t))
}

/// First position `>= from` of a code unit that is `>`, `"` or `'`.
#[inline(always)]
fn find_tag_stop<E: Units>(b: &[u8], from: usize) -> Option<(usize, u8)> {
    let is_stop = |u: u32| u == u32::from(b'>') || u == u32::from(b'"') || u == u32::from(b'\'');
    let i = find_units::<E>(
        b,
        from,
        b.len(),
        |h| memchr::memchr3(b'>', b'"', b'\'', h),
        is_stop,
    )?;
    Some((i, E::unit(b, i) as u8))
}

#[inline(always)]
fn is_xml_space(u: u32) -> bool {
    u == 0x20 || u == 0x09 || u == 0x0A || u == 0x0D
}

/// Whether the units after `i` spell `word` (`None` if the buffer ends before a mismatch).
fn matches_at<E: Units>(b: &[u8], i: usize, word: &[u8]) -> Option<bool> {
    for (k, &c) in word.iter().enumerate() {
        let u = unit_at::<E>(b, i + k * E::W)?;
        if u != u32::from(c) {
            return Some(false);
        }
    }
    Some(true)
}

/// Whether a `<` at `p` starts a `<mos` start tag (`<mos` then whitespace, `>` or `/`).
fn is_mos_start<E: Units>(b: &[u8], p: usize) -> Option<bool> {
    if !matches_at::<E>(b, p + E::W, b"mos")? {
        return Some(false);
    }
    let u = unit_at::<E>(b, p + 4 * E::W)?;
    Some(is_xml_space(u) || u == u32::from(b'>') || u == u32::from(b'/'))
}

/// From `i` (in text inside a message), skips text and complete ordinary tags. Returns
/// `Ok(p)` with the `<` of the first markup that needs [`MosCodec::step_lt`] (a comment,
/// CDATA, PI, declaration, `<mos>` or `</mos>`, or a tag not complete in `b`), or `Err(at)`
/// when `b` ends in text, `at` being where to resume.
///
/// The tag's `>` is found outside quoted attribute values, exactly as
/// [`MosCodec::step_tag`] does, so a `</mos>` inside an attribute value is not markup.
#[inline(always)]
fn skip_ordinary<E: Units>(b: &[u8], mut i: usize) -> Result<usize, usize> {
    let w = E::W;
    'text: loop {
        let Some(p) = E::find_any(b, i, [b'<']) else {
            return Err(aligned_end::<E>(b.len(), i));
        };
        if classify::<E>(b, p) != Some(Markup::OtherTag) {
            return Ok(p);
        }
        // An ordinary tag: its `>` outside quotes.
        let mut j = p + w;
        loop {
            let Some(q) = E::find_any(b, j, [b'>', b'"', b'\'']) else {
                return Ok(p);
            };
            let c = E::unit(b, q) as u8;
            if c == b'>' {
                i = q + w;
                continue 'text;
            }
            match E::find_any(b, q + w, [c]) {
                Some(e) => j = e + w,
                None => return Ok(p),
            }
        }
    }
}

/// Classifies the markup starting with the `<` at `p` (`None` if more bytes are needed).
#[inline(always)]
fn classify<E: Units>(b: &[u8], p: usize) -> Option<Markup> {
    let w = E::W;
    let u1 = unit_at::<E>(b, p + w)?;
    // The common case first: a start tag whose name does not begin with `m`, or an end
    // tag whose name does not.
    if matches!(u1, 0x41..=0x5A | 0x61..=0x6C | 0x6E..=0x7A) {
        return Some(Markup::OtherTag);
    }
    if u1 == u32::from(b'/') && unit_at::<E>(b, p + 2 * w)? != u32::from(b'm') {
        return Some(Markup::OtherTag);
    }
    if u1 == u32::from(b'!') {
        let u2 = unit_at::<E>(b, p + 2 * w)?;
        if u2 == u32::from(b'-') {
            let u3 = unit_at::<E>(b, p + 3 * w)?;
            return Some(if u3 == u32::from(b'-') {
                Markup::Comment
            } else {
                Markup::Decl
            });
        }
        if u2 == u32::from(b'[') {
            return Some(if matches_at::<E>(b, p + 3 * w, b"CDATA[")? {
                Markup::CData
            } else {
                Markup::Decl
            });
        }
        return Some(Markup::Decl);
    }
    if u1 == u32::from(b'?') {
        return Some(Markup::Pi);
    }
    if u1 == u32::from(b'/') {
        if !matches_at::<E>(b, p + 2 * w, b"mos")? {
            return Some(Markup::OtherTag);
        }
        let u = unit_at::<E>(b, p + 5 * w)?;
        return Some(if is_xml_space(u) || u == u32::from(b'>') {
            Markup::EndMos
        } else {
            Markup::OtherTag
        });
    }
    Some(if is_mos_start::<E>(b, p)? {
        Markup::StartMos
    } else {
        Markup::OtherTag
    })
}

impl MosCodec {
    /// A codec with the given settings.
    pub fn new(config: CodecConfig) -> Self {
        MosCodec {
            config,
            detected: None,
            base: 0,
            pos: 0,
            item_start: 0,
            root_start: 0,
            ctx: Ctx::Prolog,
            lex: Lex::Text,
            discarding: false,
        }
    }

    /// The encoding auto-detection found on this connection (`None` before the first bytes,
    /// or when an encoding is configured).
    pub fn detected(&self) -> Option<WireEncoding> {
        self.detected
    }

    /// The encoding replies are written in: the configured one, else the detected one, else
    /// UTF-16BE.
    pub fn write_encoding(&self) -> WireEncoding {
        self.config
            .encoding
            .or(self.detected)
            .unwrap_or(WireEncoding::Utf16Be)
    }

    /// Wire bytes consumed from the stream so far (those still buffered aside).
    pub fn consumed(&self) -> u64 {
        self.base
    }

    /// Whether a message, or a comment or processing instruction between messages, has begun
    /// and not ended: a `FramedRead` waiting for more of it.
    pub fn mid_message(&self) -> bool {
        match self.ctx {
            Ctx::Message { .. } => true,
            Ctx::Prolog => !matches!(self.lex, Lex::Text | Lex::Lt),
            Ctx::Junk { .. } | Ctx::Skip => false,
        }
    }

    /// Gives up on the message begun in `src` (the `FramedRead`'s buffer), for a caller
    /// that has waited long enough for the rest of it: a message whose sender gave up
    /// mid-way never ends, and every message after it would count as nested inside it.
    /// Drops what is buffered (but an odd byte of UTF-16, which keeps the code-unit
    /// alignment of what follows) and starts afresh with the next bytes. Returns the error
    /// to report: [`FrameError::Truncated`], with the messageID when the part received before
    /// any nested `<mos>` shows it; [`FrameError::Malformed`] for an unfinished comment or
    /// processing instruction between messages; `None` when nothing had begun or the message
    /// was already reported as too large.
    pub fn abandon(&mut self, src: &mut BytesMut) -> Option<FrameError> {
        if !self.mid_message() {
            return None;
        }
        let encoding = self.read_encoding().unwrap_or(WireEncoding::Utf16Be);
        let report = match self.ctx {
            Ctx::Message { .. } if self.discarding => None,
            Ctx::Message { .. } => {
                let start = self.rel(self.root_start).min(src.len());
                // The envelope comes first: a few KB show the messageID if it is there,
                // before any nested `<mos>` (that of a message after the cut).
                let head = &src[start..src.len().min(start + 8192)];
                let own = &head[..nested_mos_start(head, encoding).unwrap_or(head.len())];
                let message_id =
                    super::peek_message_id(&lossy_text(own, encoding)).map(str::to_owned);
                Some(FrameError::Truncated { message_id })
            }
            _ => Some(FrameError::Malformed {
                detail: "unfinished comment or processing instruction given up".to_owned(),
            }),
        };
        let n = match encoding {
            WireEncoding::Utf8 => src.len(),
            WireEncoding::Utf16Be | WireEncoding::Utf16Le => src.len() & !1,
        };
        self.consume(src, n);
        self.ctx = Ctx::Prolog;
        self.lex = Lex::Text;
        self.discarding = false;
        self.pos = self.base;
        self.item_start = self.pos;
        report
    }

    /// The settings.
    pub fn config(&self) -> &CodecConfig {
        &self.config
    }

    /// The encoding used for reading, once known.
    fn read_encoding(&self) -> Option<WireEncoding> {
        self.config.encoding.or(self.detected)
    }

    /// Relative offset of an absolute position (positions never lie before `base`).
    #[inline(always)]
    fn rel(&self, abs: u64) -> usize {
        abs.saturating_sub(self.base) as usize
    }

    #[inline(always)]
    fn abs(&self, rel: usize) -> u64 {
        self.base + rel as u64
    }

    /// Consumes the first `n` bytes of `src`.
    fn consume(&mut self, src: &mut BytesMut, n: usize) {
        let n = n.min(src.len());
        src.advance(n);
        self.base += n as u64;
        self.pos = self.pos.max(self.base);
    }

    /// Consumes what the current state no longer needs.
    fn release<E: Units>(&mut self, src: &mut BytesMut) {
        let keep = match self.ctx {
            Ctx::Junk { start } => start,
            Ctx::Skip => self.pos,
            Ctx::Message { .. } if !self.discarding => self.root_start,
            Ctx::Prolog | Ctx::Message { .. } => match self.lex {
                Lex::Text | Lex::Lt => self.pos,
                // Keep two code units for the look-back at `-->`, `]]>`, `?>` and `/>`.
                _ => self.pos.saturating_sub(2 * E::W as u64),
            },
        };
        if keep > self.base {
            let n = self.rel(keep);
            self.consume(src, n);
        }
    }

    /// Runs the scanner until it emits an item or needs more bytes.
    fn run<E: Units>(&mut self, src: &mut BytesMut, eof: bool) -> Option<Item> {
        loop {
            match self.step::<E>(&src[..], eof) {
                Step::Continue => {}
                Step::Emit(item) => {
                    self.release::<E>(src);
                    return Some(item);
                }
                Step::Done { item, end } => {
                    self.consume(src, end);
                    self.ctx = Ctx::Prolog;
                    self.lex = Lex::Text;
                    self.discarding = false;
                    self.item_start = self.pos;
                    if item.is_some() {
                        return item;
                    }
                }
                Step::NeedMore => {
                    let item = self.check_limit::<E>();
                    self.release::<E>(src);
                    return item;
                }
            }
        }
    }

    /// Reports an item that has grown past the limit without completing.
    fn check_limit<E: Units>(&mut self) -> Option<Item> {
        if self.discarding || !matches!(self.ctx, Ctx::Prolog | Ctx::Message { .. }) {
            return None;
        }
        let seen = self.pos.saturating_sub(self.item_start);
        let limit = self.config.max_message_bytes;
        if seen <= limit as u64 {
            return None;
        }
        if self.ctx == Ctx::Prolog && matches!(self.lex, Lex::Text | Lex::Lt) {
            // Only whitespace so far, already consumed: start counting afresh.
            self.item_start = self.pos;
        } else {
            self.discarding = true;
        }
        Some(Err(FrameError::TooLarge {
            limit,
            seen: usize::try_from(seen).unwrap_or(usize::MAX),
        }))
    }

    /// One scanner transition.
    fn step<E: Units>(&mut self, b: &[u8], eof: bool) -> Step {
        let w = E::W;
        let pos = self.rel(self.pos);
        match self.ctx {
            Ctx::Junk { start } => self.step_junk::<E>(b, self.rel(start), eof),
            Ctx::Skip => {
                let mut i = pos;
                loop {
                    match find_unit::<E>(b, i, b.len(), b'<') {
                        None => {
                            self.pos = self.abs(aligned_end::<E>(b.len(), i));
                            return Step::NeedMore;
                        }
                        Some(p) => match is_mos_start::<E>(b, p) {
                            None => {
                                self.pos = self.abs(p);
                                return Step::NeedMore;
                            }
                            Some(true) => {
                                self.pos = self.abs(p);
                                self.item_start = self.pos;
                                self.ctx = Ctx::Prolog;
                                self.lex = Lex::Lt;
                                return Step::Continue;
                            }
                            Some(false) => i = p + w,
                        },
                    }
                }
            }
            Ctx::Prolog | Ctx::Message { .. } => match self.lex {
                Lex::Text => {
                    if self.ctx == Ctx::Prolog {
                        self.step_prolog_text::<E>(b, pos)
                    } else {
                        self.step_message_text::<E>(b, pos)
                    }
                }
                Lex::Lt => self.step_lt::<E>(b, pos),
                Lex::Tag { quote, kind } => self.step_tag::<E>(b, pos, quote, kind),
                Lex::Comment { min } => self.step_close::<E>(b, pos, b'-', 2, min),
                Lex::CData { min } => self.step_close::<E>(b, pos, b']', 2, min),
                Lex::Pi { min } => self.step_close::<E>(b, pos, b'?', 1, min),
                Lex::Decl => self.step_close::<E>(b, pos, 0, 0, 0),
            },
        }
    }

    /// Inside a message, in text: skips text and complete ordinary tags (neither `<mos>`
    /// nor `</mos>`, comments, CDATA, PIs or declarations) in one loop, the bulk of a
    /// message. Stops at the `<` of anything else, or of a tag not complete in `b`, and
    /// leaves it to [`MosCodec::step_lt`].
    fn step_message_text<E: Units>(&mut self, b: &[u8], pos: usize) -> Step {
        match skip_ordinary::<E>(b, pos) {
            Ok(p) => {
                self.pos = self.abs(p);
                self.lex = Lex::Lt;
                Step::Continue
            }
            Err(resume) => {
                self.pos = self.abs(resume);
                Step::NeedMore
            }
        }
    }

    /// Between messages: skip whitespace and BOMs; stop at `<` or junk.
    fn step_prolog_text<E: Units>(&mut self, b: &[u8], pos: usize) -> Step {
        if self.discarding {
            // An oversize comment or PI before a message has ended.
            self.discarding = false;
            self.item_start = self.pos;
        }
        let w = E::W;
        let mut i = pos;
        while let Some(u) = unit_at::<E>(b, i) {
            if is_xml_space(u) || (w == 2 && u == 0xFEFF) {
                i += w;
                continue;
            }
            if u == u32::from(b'<') {
                self.pos = self.abs(i);
                self.lex = Lex::Lt;
                return Step::Continue;
            }
            if w == 1 && u == 0xEF {
                match matches_at::<E>(b, i + 1, &[0xBB, 0xBF]) {
                    Some(true) => {
                        i += 3;
                        continue;
                    }
                    None => {
                        self.pos = self.abs(i);
                        return Step::NeedMore;
                    }
                    Some(false) => {}
                }
            }
            self.pos = self.abs(i);
            self.ctx = Ctx::Junk { start: self.pos };
            return Step::Continue;
        }
        self.pos = self.abs(i);
        Step::NeedMore
    }

    /// At a `<`: decide what it starts.
    fn step_lt<E: Units>(&mut self, b: &[u8], p: usize) -> Step {
        let w = E::W;
        let Some(markup) = classify::<E>(b, p) else {
            return Step::NeedMore;
        };
        let start = self.abs(p);
        let in_prolog = self.ctx == Ctx::Prolog;
        let (lex, skip) = match markup {
            Markup::Comment => (
                Lex::Comment {
                    min: start + 4 * w as u64,
                },
                4,
            ),
            Markup::CData if !in_prolog => (
                Lex::CData {
                    min: start + 9 * w as u64,
                },
                9,
            ),
            Markup::Pi => (
                Lex::Pi {
                    min: start + 2 * w as u64,
                },
                2,
            ),
            Markup::Decl if !in_prolog => (Lex::Decl, 2),
            Markup::StartMos => {
                let kind = TagKind::StartMos;
                if in_prolog {
                    self.root_start = start;
                    self.ctx = Ctx::Message { depth: 0 };
                }
                (Lex::Tag { quote: 0, kind }, 1)
            }
            Markup::EndMos if !in_prolog => (
                Lex::Tag {
                    quote: 0,
                    kind: TagKind::EndMos,
                },
                1,
            ),
            Markup::OtherTag if !in_prolog => (
                Lex::Tag {
                    quote: 0,
                    kind: TagKind::Other,
                },
                1,
            ),
            _ => {
                // Junk before a message: a stray end tag, another root, a DOCTYPE, ...
                self.ctx = Ctx::Junk { start };
                return Step::Continue;
            }
        };
        self.lex = lex;
        self.pos = start + (skip * w) as u64;
        Step::Continue
    }

    /// Inside a tag: find its `>` outside quotes.
    fn step_tag<E: Units>(&mut self, b: &[u8], pos: usize, quote: u8, kind: TagKind) -> Step {
        let w = E::W;
        let mut i = pos;
        let mut quote = quote;
        loop {
            if quote != 0 {
                match find_unit::<E>(b, i, b.len(), quote) {
                    Some(q) => {
                        quote = 0;
                        i = q + w;
                    }
                    None => {
                        self.pos = self.abs(aligned_end::<E>(b.len(), i));
                        self.lex = Lex::Tag { quote, kind };
                        return Step::NeedMore;
                    }
                }
                continue;
            }
            match find_tag_stop::<E>(b, i) {
                Some((q, c)) if c != b'>' => {
                    quote = c;
                    i = q + w;
                }
                Some((g, _)) => {
                    let self_closing = g
                        .checked_sub(w)
                        .and_then(|k| unit_at::<E>(b, k))
                        .is_some_and(|u| u == u32::from(b'/'));
                    let end = g + w;
                    self.pos = self.abs(end);
                    self.lex = Lex::Text;
                    return self.close_tag(b, kind, self_closing, end);
                }
                None => {
                    self.pos = self.abs(aligned_end::<E>(b.len(), i));
                    self.lex = Lex::Tag { quote, kind };
                    return Step::NeedMore;
                }
            }
        }
    }

    /// A tag ended at relative offset `end`: track `<mos>` depth.
    fn close_tag(&mut self, b: &[u8], kind: TagKind, self_closing: bool, end: usize) -> Step {
        let Ctx::Message { depth } = self.ctx else {
            return Step::Continue;
        };
        let depth = match kind {
            TagKind::StartMos if self_closing => depth,
            TagKind::StartMos => depth.saturating_add(1),
            TagKind::EndMos => depth.saturating_sub(1),
            TagKind::Other => return Step::Continue,
        };
        if depth == 0 {
            return self.complete(b, end);
        }
        self.ctx = Ctx::Message { depth };
        Step::Continue
    }

    /// Finds the end of a comment, CDATA section, PI or declaration: a `>` preceded by
    /// `count` copies of `lead` that start at `min` or later.
    fn step_close<E: Units>(
        &mut self,
        b: &[u8],
        pos: usize,
        lead: u8,
        count: usize,
        min: u64,
    ) -> Step {
        let w = E::W;
        let mut i = pos;
        loop {
            let Some(g) = find_unit::<E>(b, i, b.len(), b'>') else {
                self.pos = self.abs(aligned_end::<E>(b.len(), i));
                return Step::NeedMore;
            };
            let closes = self.abs(g) >= min + (count * w) as u64
                && (1..=count).all(|k| {
                    g.checked_sub(k * w)
                        .and_then(|j| unit_at::<E>(b, j))
                        .is_some_and(|u| u == u32::from(lead))
                });
            if closes {
                self.pos = self.abs(g + w);
                self.lex = Lex::Text;
                return Step::Continue;
            }
            i = g + w;
        }
    }

    /// The root element closed at relative offset `end`.
    fn complete(&mut self, b: &[u8], end: usize) -> Step {
        let wire = self.abs(end).saturating_sub(self.item_start);
        let wire = usize::try_from(wire).unwrap_or(usize::MAX);
        let limit = self.config.max_message_bytes;
        let item = if self.discarding {
            None
        } else if wire > limit {
            Some(Err(FrameError::TooLarge { limit, seen: wire }))
        } else {
            let encoding = self.read_encoding().unwrap_or(WireEncoding::Utf16Be);
            let text = b.get(self.rel(self.root_start)..end).map_or_else(
                || {
                    Err(FrameError::Malformed {
                        detail: "message start was lost".to_owned(),
                    })
                },
                |bytes| decode_text(bytes, encoding),
            );
            Some(text.map(|text| Frame {
                text,
                encoding,
                wire_bytes: wire,
            }))
        };
        Step::Done { item, end }
    }

    /// Junk at `s`: report it with an excerpt once enough of it is visible.
    fn step_junk<E: Units>(&mut self, b: &[u8], s: usize, eof: bool) -> Step {
        let w = E::W;
        let window_end = s + EXCERPT_UNITS * w;
        let mut i = s + w;
        let end = loop {
            match find_unit::<E>(b, i, window_end, b'<') {
                Some(p) => match is_mos_start::<E>(b, p) {
                    Some(true) => break p,
                    Some(false) => i = p + w,
                    None if eof => break aligned_end::<E>(b.len(), s),
                    None => return Step::NeedMore,
                },
                None if b.len() >= window_end => break window_end,
                None if eof => break aligned_end::<E>(b.len(), s),
                None => return Step::NeedMore,
            }
        };
        let encoding = self.read_encoding().unwrap_or(WireEncoding::Utf16Be);
        let found = excerpt(b.get(s..end).unwrap_or_default(), encoding);
        self.ctx = Ctx::Skip;
        self.lex = Lex::Text;
        self.pos = self.abs(end.max(s + w).min(aligned_end::<E>(b.len(), s)));
        Step::Emit(Err(FrameError::NotAMessage { found }))
    }

    /// Runs the scanner for the connection's encoding, detecting it first if needed.
    fn decode_inner(&mut self, src: &mut BytesMut, eof: bool) -> io::Result<Option<Item>> {
        if self.pos < self.base || self.rel(self.pos) > src.len() {
            return Err(io::Error::other(
                "MosCodec: the read buffer was modified outside the codec",
            ));
        }
        let encoding = match self.read_encoding() {
            Some(e) => e,
            None => match WireEncoding::detect(src) {
                Some(e) => {
                    self.detected = Some(e);
                    e
                }
                None => return Ok(None),
            },
        };
        Ok(match encoding {
            WireEncoding::Utf16Be => self.run::<BeUnits>(src, eof),
            WireEncoding::Utf16Le => self.run::<LeUnits>(src, eof),
            WireEncoding::Utf8 => self.run::<Utf8Units>(src, eof),
        })
    }

    /// What is left at the end of the stream, as at most one error; resets the state.
    fn leftover(&mut self, src: &mut BytesMut) -> Option<Item> {
        let unscanned = src.len().saturating_sub(self.rel(self.pos));
        let all_space = src
            .get(self.rel(self.pos)..)
            .unwrap_or_default()
            .iter()
            .all(|&c| c == 0 || is_xml_space(u32::from(c)));
        let item = match (self.ctx, self.lex) {
            _ if self.discarding => None,
            (Ctx::Skip, _) => None,
            (Ctx::Message { .. }, _) => Some(format!(
                "message truncated at end of stream after {} bytes",
                self.abs(src.len()).saturating_sub(self.item_start)
            )),
            (Ctx::Prolog, Lex::Text) if unscanned == 0 || all_space => None,
            (Ctx::Prolog, Lex::Text | Lex::Lt) => Some(format!(
                "{unscanned} bytes of an incomplete character or tag at end of stream"
            )),
            (Ctx::Prolog, _) => {
                Some("unterminated comment or processing instruction at end of stream".to_owned())
            }
            (Ctx::Junk { .. }, _) => None,
        };
        let n = src.len();
        self.consume(src, n);
        self.ctx = Ctx::Prolog;
        self.lex = Lex::Text;
        self.discarding = false;
        self.item_start = self.pos;
        item.map(|detail| Err(FrameError::Malformed { detail }))
    }
}

impl Decoder for MosCodec {
    type Item = Item;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Item>> {
        self.decode_inner(src, false)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> io::Result<Option<Item>> {
        // A caller may hand the whole stream to decode_eof without calling decode first:
        // detect the encoding and decode as usual before treating what is left.
        if self.read_encoding().is_none()
            && src.len() >= 2
            && let Some(item) = self.decode_inner(src, true)?
        {
            return Ok(Some(item));
        }
        if self.read_encoding().is_none() {
            // Fewer than two bytes ever arrived.
            let junk = src.iter().any(|&c| !is_xml_space(u32::from(c)));
            let item = junk.then(|| {
                Err(FrameError::NotAMessage {
                    found: excerpt(src, WireEncoding::Utf8),
                })
            });
            let n = src.len();
            self.consume(src, n);
            return Ok(item);
        }
        if let Some(item) = self.decode_inner(src, true)? {
            return Ok(Some(item));
        }
        Ok(self.leftover(src))
    }
}

impl Encoder<&str> for MosCodec {
    type Error = io::Error;

    fn encode(&mut self, item: &str, dst: &mut BytesMut) -> io::Result<()> {
        let encoding = self.write_encoding();
        dst.reserve(item.len() * encoding.unit_len());
        dst.extend_from_slice(&encode_text(item, encoding));
        Ok(())
    }
}

impl Encoder<String> for MosCodec {
    type Error = io::Error;

    fn encode(&mut self, item: String, dst: &mut BytesMut) -> io::Result<()> {
        Encoder::<&str>::encode(self, item.as_str(), dst)
    }
}

/// Appends `text` in `encoding` (no BOM) to `dst`.
/// Appends `text` as UTF-16 (big- or little-endian). Runs of ASCII, most of a MOS message,
/// are widened in bulk; other characters go through `char::encode_utf16`.
fn push_utf16(text: &str, big_endian: bool, out: &mut Vec<u8>) {
    out.reserve(text.len() * 2);
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..]
            .iter()
            .position(|b| !b.is_ascii())
            .unwrap_or(bytes.len() - i);
        let start = out.len();
        out.resize(start + run * 2, 0);
        let at = usize::from(big_endian);
        for (unit, &b) in out[start..].chunks_exact_mut(2).zip(&bytes[i..i + run]) {
            unit[at] = b;
        }
        i += run;
        if let Some(ch) = text.get(i..).and_then(|rest| rest.chars().next()) {
            let mut units = [0u16; 2];
            for u in ch.encode_utf16(&mut units) {
                out.extend_from_slice(&if big_endian {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                });
            }
            i += ch.len_utf8();
        }
    }
}

/// Encodes text in the given encoding, without a BOM.
///
/// UTF-16 is produced here by hand: `encoding_rs` cannot encode UTF-16 (asked to, it writes
/// UTF-8).
pub fn encode_text(text: &str, encoding: WireEncoding) -> Vec<u8> {
    match encoding {
        WireEncoding::Utf8 => text.as_bytes().to_vec(),
        WireEncoding::Utf16Be | WireEncoding::Utf16Le => {
            let mut out = Vec::new();
            push_utf16(text, encoding == WireEncoding::Utf16Be, &mut out);
            out
        }
    }
}

/// Decodes a whole byte buffer (e.g. a file): detects the encoding from its start as the
/// codec does, strips a leading BOM and returns the text. An empty buffer is UTF-16BE.
pub fn decode_bytes(bytes: &[u8]) -> Result<(String, WireEncoding), FrameError> {
    let encoding = match WireEncoding::detect(bytes) {
        Some(e) => e,
        None if bytes.is_empty() => return Ok((String::new(), WireEncoding::Utf16Be)),
        None => WireEncoding::Utf8,
    };
    let body = match encoding {
        WireEncoding::Utf16Be => bytes.strip_prefix(&[0xFE, 0xFF]),
        WireEncoding::Utf16Le => bytes.strip_prefix(&[0xFF, 0xFE]),
        WireEncoding::Utf8 => bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]),
    }
    .unwrap_or(bytes);
    decode_text(body, encoding).map(|text| (text, encoding))
}

/// Decodes complete text in `encoding` strictly (no replacement characters).
fn decode_text(bytes: &[u8], encoding: WireEncoding) -> Result<String, FrameError> {
    match encoding {
        WireEncoding::Utf8 => match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(FrameError::InvalidEncoding {
                encoding,
                detail: format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            }),
        },
        WireEncoding::Utf16Be => utf16_to_string(bytes, u16::from_be_bytes, encoding),
        WireEncoding::Utf16Le => utf16_to_string(bytes, u16::from_le_bytes, encoding),
    }
}

/// Where the first `<mos` start tag after the root's begins in the wire bytes `b` of a
/// message, if one does.
fn nested_mos_start(b: &[u8], encoding: WireEncoding) -> Option<usize> {
    fn first<E: Units>(b: &[u8]) -> Option<usize> {
        let mut i = E::W;
        while let Some(p) = find_unit::<E>(b, i, b.len(), b'<') {
            if is_mos_start::<E>(b, p) == Some(true) {
                return Some(p);
            }
            i = p + E::W;
        }
        None
    }
    match encoding {
        WireEncoding::Utf16Be => first::<BeUnits>(b),
        WireEncoding::Utf16Le => first::<LeUnits>(b),
        WireEncoding::Utf8 => first::<Utf8Units>(b),
    }
}

/// Text of possibly cut bytes, bad code units replaced (for excerpts and peeking only).
fn lossy_text(bytes: &[u8], encoding: WireEncoding) -> String {
    let units = |read: fn([u8; 2]) -> u16| {
        let units = bytes.chunks_exact(2).map(|c| read([c[0], c[1]]));
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    };
    match encoding {
        WireEncoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
        WireEncoding::Utf16Be => units(u16::from_be_bytes),
        WireEncoding::Utf16Le => units(u16::from_le_bytes),
    }
}

/// Strict UTF-16 → UTF-8 with an ASCII fast path.
fn utf16_to_string(
    bytes: &[u8],
    read: fn([u8; 2]) -> u16,
    encoding: WireEncoding,
) -> Result<String, FrameError> {
    let invalid = |detail: String| FrameError::InvalidEncoding { encoding, detail };
    if !bytes.len().is_multiple_of(2) {
        return Err(invalid(format!("odd number of bytes ({})", bytes.len())));
    }
    // Index of the low byte within a code unit.
    let lo = usize::from(encoding != WireEncoding::Utf16Le);
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len() / 2 + bytes.len() / 8);
    let unit = |k: usize| read([bytes[2 * k], bytes[2 * k + 1]]);
    let n = bytes.len() / 2;
    let mut k = 0;
    while k < n {
        // Runs of ASCII (most of a MOS message) go through a block of code units at a time.
        let ascii = if lo == 1 {
            ascii_block::<1>(bytes, k)
        } else {
            ascii_block::<0>(bytes, k)
        };
        if let Some(ascii) = ascii {
            out.extend_from_slice(&ascii);
            k += ASCII_BLOCK;
            continue;
        }
        let u = unit(k);
        let start = k;
        k += 1;
        let c = if u < 0x80 {
            Some(char::from(u as u8))
        } else if !(0xD800..0xE000).contains(&u) {
            char::from_u32(u32::from(u))
        } else if u < 0xDC00 && k < n && (0xDC00..0xE000).contains(&unit(k)) {
            let lo = unit(k);
            k += 1;
            char::from_u32(0x10000 + ((u32::from(u) - 0xD800) << 10) + (u32::from(lo) - 0xDC00))
        } else {
            None
        };
        match c {
            Some(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            None => {
                return Err(invalid(format!(
                    "unpaired surrogate {u:#06X} at byte {}",
                    start * 2
                )));
            }
        }
    }
    // Only ASCII bytes and whole encoded chars were written, so this cannot fail.
    String::from_utf8(out).map_err(|e| invalid(format!("internal transcoding error: {e}")))
}

/// Code units per step of the ASCII fast path.
const ASCII_BLOCK: usize = 16;

/// The `ASCII_BLOCK` code units from unit `k` as ASCII bytes, if they all are ASCII. `LO` is
/// the index of the low byte within a code unit (1 for big-endian, 0 for little-endian).
/// Works on 64-bit words (four code units each): one mask test for the whole block, then
/// the low bytes are packed together with shifts.
#[inline(always)]
fn ascii_block<const LO: usize>(bytes: &[u8], k: usize) -> Option<[u8; ASCII_BLOCK]> {
    let block: &[u8; 2 * ASCII_BLOCK] = bytes.get(2 * k..2 * (k + ASCII_BLOCK))?.try_into().ok()?;
    let words: [u64; ASCII_BLOCK / 4] = std::array::from_fn(|i| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&block[8 * i..8 * i + 8]);
        u64::from_le_bytes(w)
    });
    // Loaded little-endian, byte `j` of a word is bits 8j..8j+8. A code unit is ASCII when
    // its high byte is 0 and its low byte is below 0x80.
    let (not_ascii, shift) = if LO == 1 {
        (0x80FF_80FF_80FF_80FF_u64, 8)
    } else {
        (0xFF80_FF80_FF80_FF80_u64, 0)
    };
    if words.iter().fold(0, |acc, w| acc | w) & not_ascii != 0 {
        return None;
    }
    // Four low bytes (one per 16-bit lane) packed into the low 32 bits, in order.
    let pack = |w: u64| {
        let y = (w >> shift) & 0x00FF_00FF_00FF_00FF;
        let y = (y | (y >> 8)) & 0x0000_FFFF_0000_FFFF;
        (y | (y >> 16)) & 0xFFFF_FFFF
    };
    let mut out = [0u8; ASCII_BLOCK];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        let packed = pack(words[2 * i]) | (pack(words[2 * i + 1]) << 32);
        chunk.copy_from_slice(&packed.to_le_bytes());
    }
    Some(out)
}

/// A short printable rendering of junk bytes.
fn excerpt(bytes: &[u8], encoding: WireEncoding) -> String {
    let text = lossy_text(bytes, encoding);
    let mut out = String::new();
    for c in text.chars().take(EXCERPT_UNITS) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [WireEncoding; 3] = [
        WireEncoding::Utf16Be,
        WireEncoding::Utf16Le,
        WireEncoding::Utf8,
    ];

    /// A decoder result reduced to something comparable.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Out {
        Frame(String),
        TooLarge,
        NotAMessage,
        InvalidEncoding,
        Malformed,
    }

    fn summarize(item: Item) -> Out {
        match item {
            Ok(f) => Out::Frame(f.text),
            Err(FrameError::TooLarge { .. }) => Out::TooLarge,
            Err(FrameError::NotAMessage { .. }) => Out::NotAMessage,
            Err(FrameError::InvalidEncoding { .. }) => Out::InvalidEncoding,
            Err(FrameError::Malformed { .. }) => Out::Malformed,
            Err(e @ FrameError::Truncated { .. }) => panic!("only abandon() reports {e}"),
        }
    }

    /// Feeds `chunks` like a `FramedRead` would, then signals end of stream.
    fn run_chunks(codec: &mut MosCodec, chunks: &[&[u8]]) -> Vec<Item> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(item) = codec.decode(&mut buf).expect("no io error") {
                out.push(item);
            }
        }
        while let Some(item) = codec.decode_eof(&mut buf).expect("no io error") {
            out.push(item);
        }
        out
    }

    fn decode_all(config: CodecConfig, chunks: &[&[u8]]) -> Vec<Out> {
        let mut codec = MosCodec::new(config);
        run_chunks(&mut codec, chunks)
            .into_iter()
            .map(summarize)
            .collect()
    }

    fn auto() -> CodecConfig {
        CodecConfig::default()
    }

    fn frames(texts: &[&str]) -> Vec<Out> {
        texts.iter().map(|t| Out::Frame((*t).to_owned())).collect()
    }

    /// Decodes `wire` split at every point (two chunks) and byte-at-a-time; all must agree.
    fn check_all_splits(config: &CodecConfig, wire: &[u8], expected: &[Out]) {
        assert_eq!(decode_all(config.clone(), &[wire]), expected, "one chunk");
        for cut in 0..=wire.len() {
            let (a, b) = wire.split_at(cut);
            assert_eq!(
                decode_all(config.clone(), &[a, b]),
                expected,
                "split at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(
            decode_all(config.clone(), &bytes),
            expected,
            "byte at a time"
        );
    }

    const SHORT: &str = "<mos><mosID>DEV</mosID><ncsID>NCS</ncsID><heartbeat/></mos>";

    #[test]
    fn short_message_every_split_in_each_encoding() {
        for enc in ALL {
            let wire = encode_text(SHORT, enc);
            check_all_splits(&auto(), &wire, &frames(&[SHORT]));
        }
    }

    #[test]
    fn surrogate_pairs_split_anywhere() {
        let msg = "<mos><slug>𝄞 music 😀 and 👍🏽</slug></mos>";
        for enc in ALL {
            let wire = encode_text(msg, enc);
            check_all_splits(&auto(), &wire, &frames(&[msg]));
        }
    }

    #[test]
    fn frame_metadata() {
        for enc in ALL {
            let wire = encode_text(&format!("\r\n{SHORT}"), enc);
            let mut codec = MosCodec::new(auto());
            let items = run_chunks(&mut codec, &[&wire]);
            let frame = items.into_iter().next().unwrap().unwrap();
            assert_eq!(frame.text, SHORT);
            assert_eq!(frame.encoding, enc);
            assert_eq!(frame.wire_bytes, wire.len());
            assert_eq!(codec.detected(), Some(enc));
            assert_eq!(codec.write_encoding(), enc);
        }
    }

    #[test]
    fn bom_whitespace_declaration_and_comments_between_messages() {
        let text = format!(
            "\u{FEFF}<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n{SHORT}\r\n\u{FEFF}\t \
             <!-- between </mos> -->\n<?pi <mos>?>{SHORT}\r\n"
        );
        for enc in ALL {
            let wire = encode_text(&text, enc);
            check_all_splits(&auto(), &wire, &frames(&[SHORT, SHORT]));
        }
    }

    #[test]
    fn bom_selects_encoding() {
        let mut be = vec![0xFE, 0xFF];
        be.extend(encode_text(SHORT, WireEncoding::Utf16Be));
        let mut le = vec![0xFF, 0xFE];
        le.extend(encode_text(SHORT, WireEncoding::Utf16Le));
        let mut u8 = vec![0xEF, 0xBB, 0xBF];
        u8.extend(encode_text(SHORT, WireEncoding::Utf8));
        for (wire, enc) in [
            (be, WireEncoding::Utf16Be),
            (le, WireEncoding::Utf16Le),
            (u8, WireEncoding::Utf8),
        ] {
            let mut codec = MosCodec::new(auto());
            let out: Vec<Out> = run_chunks(&mut codec, &[&wire])
                .into_iter()
                .map(summarize)
                .collect();
            assert_eq!(out, frames(&[SHORT]));
            assert_eq!(codec.detected(), Some(enc));
        }
    }

    #[test]
    fn several_messages_in_one_read() {
        let a = "<mos><a>1</a></mos>";
        let b = "<mos version=\"2.8.1\"><b>2</b></mos>";
        let c = "<mos/>";
        for enc in ALL {
            let wire = encode_text(&format!("{a}{b}\r\n{c}{a}"), enc);
            assert_eq!(decode_all(auto(), &[&wire]), frames(&[a, b, c, a]));
        }
    }

    #[test]
    fn depth_aware_end() {
        let cases = [
            "<mos><mosPayload><mos><x/></mos><mos/></mosPayload></mos>",
            "<mos><a><!-- </mos> --></a></mos>",
            "<mos><a><![CDATA[ </mos> ]]]]></a></mos>",
            "<mos><?pi </mos> ?></mos>",
            "<mos version=\"2.8.1\" xmlns:x='a>b'><a k=\"</mos>\" j='>'/></mos>",
            "<mos\n\tversion=\"2.8.1\"\n><mosID>x</mosID><mosIDx/><mosx></mosx></mos >",
            "<mos><br/><empty /><roID>1</roID></mos>",
            "<mos><!----><!-- - -- --></mos>",
        ];
        for msg in cases {
            for enc in ALL {
                let wire = encode_text(&format!("{msg}\r\n{SHORT}"), enc);
                check_all_splits(&auto(), &wire, &frames(&[msg, SHORT]));
            }
        }
    }

    #[test]
    fn a_message_abandoned_mid_way_is_reported_and_the_stream_starts_afresh() {
        let cut =
            "<mos><mosID>DEV</mosID><ncsID>NCS</ncsID><messageID>77</messageID><roCreate><roID>R";
        for enc in ALL {
            for (what, cut, id) in [
                ("with its messageID", cut, Some("77".to_owned())),
                ("before its messageID", &cut[..23], None),
            ] {
                let mut codec = MosCodec::new(auto());
                let mut buf = BytesMut::new();
                // What followed the cut is taken for nested messages: all waits.
                buf.extend_from_slice(&encode_text(&format!("\r\n{cut}{SHORT}"), enc));
                assert!(codec.decode(&mut buf).unwrap().is_none(), "{enc} {what}");
                assert!(codec.mid_message());
                match codec.abandon(&mut buf) {
                    Some(FrameError::Truncated { message_id }) => {
                        assert_eq!(message_id, id, "{enc} {what}")
                    }
                    other => panic!("{enc} {what}: {other:?}"),
                }
                assert!(buf.is_empty() && !codec.mid_message());
                assert!(codec.abandon(&mut buf).is_none());
                // The next message reads normally, split or not.
                let wire = encode_text(SHORT, enc);
                let (a, b) = wire.split_at(wire.len() / 2);
                buf.extend_from_slice(a);
                assert!(codec.decode(&mut buf).unwrap().is_none());
                buf.extend_from_slice(b);
                let frame = codec.decode(&mut buf).unwrap().unwrap().unwrap();
                assert_eq!(frame.text, SHORT, "{enc} {what}");
            }
        }
    }

    #[test]
    fn abandon_keeps_the_code_unit_alignment_of_utf16() {
        for enc in [WireEncoding::Utf16Be, WireEncoding::Utf16Le] {
            let cfg = CodecConfig {
                encoding: Some(enc),
                ..CodecConfig::default()
            };
            let mut codec = MosCodec::new(cfg);
            let full = encode_text("<mos><mosID>DEV</mosID><x/>", enc);
            let (head, last) = full.split_at(full.len() - 1);
            let mut buf = BytesMut::from(head);
            assert!(codec.decode(&mut buf).unwrap().is_none());
            assert!(matches!(
                codec.abandon(&mut buf),
                Some(FrameError::Truncated { .. })
            ));
            assert_eq!(buf.len(), 1, "{enc}: the odd byte is kept");
            // The rest of the stalled message arrives after all, then a heartbeat.
            buf.extend_from_slice(last);
            buf.extend_from_slice(&encode_text(SHORT, enc));
            let rest = buf.split().freeze();
            let items = run_chunks(&mut codec, &[&rest[..]]);
            let frames: Vec<&str> = items
                .iter()
                .filter_map(|i| i.as_ref().ok().map(|f| f.text.as_str()))
                .collect();
            assert_eq!(frames, [SHORT], "{enc}: {items:?}");
        }
    }

    #[test]
    fn the_message_id_of_a_cut_message_is_its_own_not_the_next_ones() {
        let next = SHORT.replace("<heartbeat/>", "<messageID>78</messageID><heartbeat/>");
        for enc in ALL {
            let mut codec = MosCodec::new(auto());
            let mut buf =
                BytesMut::from(&encode_text(&format!("<mos><mosID>DEV</mosID>{next}"), enc)[..]);
            assert!(codec.decode(&mut buf).unwrap().is_none());
            match codec.abandon(&mut buf) {
                Some(FrameError::Truncated { message_id }) => assert_eq!(message_id, None, "{enc}"),
                other => panic!("{enc}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_unfinished_comment_between_messages_is_given_up_too() {
        for enc in ALL {
            let mut codec = MosCodec::new(CodecConfig {
                encoding: Some(enc),
                ..CodecConfig::default()
            });
            let mut buf = BytesMut::from(&encode_text(&format!("{SHORT}<!-- never ends"), enc)[..]);
            assert!(matches!(codec.decode(&mut buf).unwrap(), Some(Ok(_))));
            assert!(codec.decode(&mut buf).unwrap().is_none());
            assert!(codec.mid_message(), "{enc}");
            assert!(matches!(
                codec.abandon(&mut buf),
                Some(FrameError::Malformed { .. })
            ));
            buf.extend_from_slice(&encode_text(SHORT, enc));
            let frame = codec.decode(&mut buf).unwrap().unwrap().unwrap();
            assert_eq!(frame.text, SHORT, "{enc}");
        }
    }

    #[test]
    fn an_oversize_message_abandoned_is_not_reported_twice() {
        let cfg = CodecConfig {
            encoding: Some(WireEncoding::Utf8),
            max_message_bytes: 1000,
        };
        let mut codec = MosCodec::new(cfg);
        let mut buf = BytesMut::from(format!("<mos><p>{}", "x".repeat(2000)).as_bytes());
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Err(FrameError::TooLarge { .. }))
        ));
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(codec.abandon(&mut buf).is_none());
        buf.extend_from_slice(SHORT.as_bytes());
        let frame = codec.decode(&mut buf).unwrap().unwrap().unwrap();
        assert_eq!(frame.text, SHORT);
    }

    #[test]
    fn self_closing_root_is_complete() {
        for enc in ALL {
            let wire = encode_text("<mos/><mos />", enc);
            assert_eq!(decode_all(auto(), &[&wire]), frames(&["<mos/>", "<mos />"]));
        }
    }

    #[test]
    fn junk_before_a_message_is_reported_then_skipped() {
        let cases = [
            "garbage here",
            "</mos>",
            "<other><mosx/></other>",
            "<mosID>1</mosID>",
            "<!DOCTYPE mos>",
            "x",
        ];
        for junk in cases {
            for enc in ALL {
                let cfg = CodecConfig {
                    encoding: Some(enc),
                    ..CodecConfig::default()
                };
                let wire = encode_text(&format!("{junk}{SHORT}"), enc);
                let mut expected = vec![Out::NotAMessage];
                expected.extend(frames(&[SHORT]));
                check_all_splits(&cfg, &wire, &expected);
                let wire = encode_text(&format!("{SHORT}{junk}\r\n{SHORT}"), enc);
                let mut expected = frames(&[SHORT]);
                expected.push(Out::NotAMessage);
                expected.extend(frames(&[SHORT]));
                check_all_splits(&cfg, &wire, &expected);
            }
        }
    }

    #[test]
    fn junk_excerpt_is_short_and_printable() {
        let junk = format!("HELLO\u{1}\n{}", "z".repeat(200));
        let wire = encode_text(&format!("{junk}{SHORT}"), WireEncoding::Utf16Be);
        let mut codec = MosCodec::new(auto());
        let items = run_chunks(&mut codec, &[&wire]);
        match &items[0] {
            Err(e @ FrameError::NotAMessage { found }) => {
                assert!(found.starts_with("HELLO\\u{1}\\n"), "{found}");
                assert!(found.chars().count() <= 2 * EXCERPT_UNITS);
                assert!(e.reason().chars().count() <= 128);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&items[1], Ok(f) if f.text == SHORT));
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn oversize_is_reported_once_then_recovers() {
        let big = format!("<mos><p>{}</p><mos>nested</mos></mos>", "x".repeat(5000));
        for enc in ALL {
            let cfg = CodecConfig {
                encoding: None,
                max_message_bytes: 1000,
            };
            let wire = encode_text(&format!("{SHORT}{big}\r\n{SHORT}"), enc);
            let expected = vec![
                Out::Frame(SHORT.to_owned()),
                Out::TooLarge,
                Out::Frame(SHORT.to_owned()),
            ];
            assert_eq!(decode_all(cfg.clone(), &[&wire]), expected);
            let chunks: Vec<&[u8]> = wire.chunks(7).collect();
            assert_eq!(decode_all(cfg.clone(), &chunks), expected);
            let bytes: Vec<&[u8]> = wire.chunks(1).collect();
            assert_eq!(decode_all(cfg, &bytes), expected);
        }
    }

    #[test]
    fn buffer_stays_bounded_while_discarding() {
        let cfg = CodecConfig {
            encoding: Some(WireEncoding::Utf16Be),
            max_message_bytes: 4096,
        };
        let mut codec = MosCodec::new(cfg);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut push = |codec: &mut MosCodec, buf: &mut BytesMut, text: &str| {
            buf.extend_from_slice(&encode_text(text, WireEncoding::Utf16Be));
            while let Some(item) = codec.decode(buf).unwrap() {
                out.push(summarize(item));
            }
            assert!(buf.len() <= 4096 + 64, "buffer grew to {}", buf.len());
        };
        push(&mut codec, &mut buf, "<mos><p>");
        for _ in 0..2000 {
            push(
                &mut codec,
                &mut buf,
                "<!-- </mos> --><a b='</mos>'>text</a>",
            );
        }
        push(&mut codec, &mut buf, "</p></mos>");
        for _ in 0..2000 {
            push(&mut codec, &mut buf, "junk junk junk junk junk");
        }
        push(&mut codec, &mut buf, SHORT);
        assert_eq!(
            out,
            vec![
                Out::TooLarge,
                Out::NotAMessage,
                Out::Frame(SHORT.to_owned())
            ]
        );
    }

    #[test]
    fn complete_but_oversize_message_is_rejected() {
        let cfg = CodecConfig {
            encoding: None,
            max_message_bytes: SHORT.len() - 1,
        };
        let wire = encode_text(SHORT, WireEncoding::Utf8);
        assert_eq!(decode_all(cfg.clone(), &[&wire]), vec![Out::TooLarge]);
        let cfg = CodecConfig {
            max_message_bytes: SHORT.len(),
            ..cfg
        };
        assert_eq!(decode_all(cfg, &[&wire]), frames(&[SHORT]));
    }

    #[test]
    fn truncated_message_at_eof() {
        for enc in ALL {
            let wire = encode_text(SHORT, enc);
            for cut in 1..wire.len() {
                let out = decode_all(auto(), &[&wire[..cut]]);
                assert_eq!(out.len(), 1, "{enc} cut {cut}: {out:?}");
                assert!(
                    matches!(out[0], Out::Malformed | Out::NotAMessage),
                    "{enc} cut {cut}: {out:?}"
                );
            }
            let mut with_ws = wire.clone();
            with_ws.extend(encode_text("\r\n \u{FEFF}", enc));
            assert_eq!(decode_all(auto(), &[&with_ws]), frames(&[SHORT]));
        }
    }

    #[test]
    fn configured_encoding_overrides_detection() {
        // UTF-16LE bytes read as configured UTF-16BE are junk, not a message.
        let wire = encode_text(SHORT, WireEncoding::Utf16Le);
        let cfg = CodecConfig {
            encoding: Some(WireEncoding::Utf16Be),
            ..CodecConfig::default()
        };
        let mut codec = MosCodec::new(cfg.clone());
        let out: Vec<Out> = run_chunks(&mut codec, &[&wire])
            .into_iter()
            .map(summarize)
            .collect();
        assert_eq!(out, vec![Out::NotAMessage]);
        assert_eq!(codec.detected(), None);
        assert_eq!(codec.write_encoding(), WireEncoding::Utf16Be);
        // A BOM of the configured encoding is still stripped.
        let mut wire = vec![0xFE, 0xFF];
        wire.extend(encode_text(SHORT, WireEncoding::Utf16Be));
        check_all_splits(&cfg, &wire, &frames(&[SHORT]));
        // A configured encoding is used without detection.
        let cfg = CodecConfig {
            encoding: Some(WireEncoding::Utf8),
            ..CodecConfig::default()
        };
        let mut codec = MosCodec::new(cfg);
        let wire = encode_text(SHORT, WireEncoding::Utf8);
        assert_eq!(run_chunks(&mut codec, &[&wire]).len(), 1);
        assert_eq!(codec.detected(), None);
        assert_eq!(codec.write_encoding(), WireEncoding::Utf8);
    }

    #[test]
    fn encoder_first_bytes() {
        let cases: [(WireEncoding, &[u8]); 3] = [
            (WireEncoding::Utf16Be, &[0x00, 0x3C, 0x00, 0x6D]),
            (WireEncoding::Utf16Le, &[0x3C, 0x00, 0x6D, 0x00]),
            (WireEncoding::Utf8, b"<mos"),
        ];
        for (enc, first) in cases {
            let mut codec = MosCodec::new(CodecConfig {
                encoding: Some(enc),
                ..CodecConfig::default()
            });
            let mut dst = BytesMut::new();
            codec.encode(SHORT, &mut dst).unwrap();
            assert_eq!(&dst[..4], first, "{enc}");
            codec.encode(SHORT.to_owned(), &mut dst).unwrap();
            assert_eq!(dst.len(), 2 * SHORT.len() * enc.unit_len());
        }
        // Default and detected.
        let codec = MosCodec::new(auto());
        assert_eq!(codec.write_encoding(), WireEncoding::Utf16Be);
        let mut codec = MosCodec::new(auto());
        let wire = encode_text(SHORT, WireEncoding::Utf16Le);
        run_chunks(&mut codec, &[&wire]);
        let mut dst = BytesMut::new();
        codec.encode("<mos/>", &mut dst).unwrap();
        assert_eq!(&dst[..2], &[0x3C, 0x00]);
        assert_eq!(
            encode_text("𝄞", WireEncoding::Utf16Be),
            [0xD8, 0x34, 0xDD, 0x1E]
        );
        assert_eq!(
            encode_text("𝄞", WireEncoding::Utf16Le),
            [0x34, 0xD8, 0x1E, 0xDD]
        );
    }

    #[test]
    fn non_latin_text_and_entities_are_verbatim() {
        let msg = "<mos><slug>Привет 世界 مرحبا&#160;A&amp;B &lt;x&gt;</slug></mos>";
        for enc in ALL {
            let wire = encode_text(msg, enc);
            check_all_splits(&auto(), &wire, &frames(&[msg]));
            let (text, detected) = decode_bytes(&wire).unwrap();
            assert_eq!((text.as_str(), detected), (msg, enc));
        }
    }

    #[test]
    fn markup_bytes_inside_other_code_units_are_not_markup() {
        // U+3C3C, U+3E22, U+273E, U+223C: UTF-16 code units whose bytes are `<`, `>`, `"`,
        // `'`; the byte search must check the whole unit. Long ASCII runs around them cross
        // the transcoder's block boundaries at every offset.
        for pad in 0..10 {
            let a = "a".repeat(pad);
            let msg = format!(
                "<mos><slug{a} x=\"\u{3e22}\u{273e}\">{a}\u{3c3c}\u{3e22}\u{223c}{a}</slug{a}>\
                 <b>{a}𝄞é{a}</b></mos>"
            );
            for enc in ALL {
                let wire = encode_text(&msg, enc);
                check_all_splits(&auto(), &wire, &frames(&[&msg]));
                assert_eq!(decode_bytes(&wire).unwrap().0, msg);
            }
        }
    }

    #[test]
    fn ascii_blocks_with_other_characters_at_every_offset_in_both_byte_orders() {
        for enc in [WireEncoding::Utf16Be, WireEncoding::Utf16Le] {
            for pad in 0..40 {
                for odd in [
                    "é", "\u{7F}", "\u{80}", "\u{100}", "\u{FF80}", "𝄞", "\u{3C3C}",
                ] {
                    let text = format!("<{}{odd}{}>", "a".repeat(pad), "z".repeat(40 - pad));
                    let wire = encode_text(&text, enc);
                    assert_eq!(
                        decode_text(&wire, enc).unwrap(),
                        text,
                        "{enc:?} {pad} {odd:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn unpaired_surrogate_offsets_after_ascii_blocks() {
        for pad in 0..20 {
            // Starts with `<` so the encoding is detected.
            let mut wire = encode_text(&format!("<{}", "a".repeat(pad)), WireEncoding::Utf16Be);
            wire.extend([0xD8, 0x34, 0x00, 0x61]);
            let reason = decode_bytes(&wire).unwrap_err().reason();
            assert!(
                reason.contains(&format!("0xD834 at byte {}", 2 * (pad + 1))),
                "{reason}"
            );
        }
    }

    #[test]
    fn invalid_encoding_is_reported_then_resyncs() {
        // Unpaired high surrogate inside a UTF-16BE message.
        let mut wire = encode_text("<mos><a>", WireEncoding::Utf16Be);
        wire.extend([0xD8, 0x34]);
        wire.extend(encode_text("x</a></mos>", WireEncoding::Utf16Be));
        wire.extend(encode_text(SHORT, WireEncoding::Utf16Be));
        let expected = vec![Out::InvalidEncoding, Out::Frame(SHORT.to_owned())];
        check_all_splits(&auto(), &wire, &expected);
        // Lone low surrogate in UTF-16LE.
        let mut wire = encode_text("<mos><a>", WireEncoding::Utf16Le);
        wire.extend([0x1E, 0xDD]);
        wire.extend(encode_text("</a></mos>", WireEncoding::Utf16Le));
        wire.extend(encode_text(SHORT, WireEncoding::Utf16Le));
        check_all_splits(&auto(), &wire, &expected);
        // Invalid UTF-8.
        let mut wire = b"<mos><a>".to_vec();
        wire.extend([0xC3, 0x28, 0xFF]);
        wire.extend(b"</a></mos>");
        wire.extend(SHORT.as_bytes());
        check_all_splits(&auto(), &wire, &expected);
        match decode_bytes(&[0x00, 0x3C, 0xDC, 0x00]) {
            Err(e @ FrameError::InvalidEncoding { .. }) => {
                assert!(e.reason().contains("utf16be"), "{}", e.reason());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_bytes_between_messages() {
        for enc in ALL {
            let mut wire = encode_text(SHORT, enc);
            wire.extend([0xFF, 0xFE, 0x00, 0xD8, 0x01, 0x02, 0x80, 0x81]);
            wire.extend(encode_text(SHORT, enc));
            let mut expected = frames(&[SHORT]);
            expected.push(Out::NotAMessage);
            expected.extend(frames(&[SHORT]));
            check_all_splits(&auto(), &wire, &expected);
        }
    }

    #[test]
    fn encoding_names() {
        for enc in ALL {
            assert_eq!(enc.name().parse::<WireEncoding>().unwrap(), enc);
            assert_eq!(enc.to_string(), enc.name());
        }
        assert_eq!(
            "UTF-16BE".parse::<WireEncoding>().unwrap(),
            WireEncoding::Utf16Be
        );
        assert_eq!("utf_8".parse::<WireEncoding>().unwrap(), WireEncoding::Utf8);
        assert!("latin1".parse::<WireEncoding>().is_err());
    }

    #[test]
    fn reasons_are_short_single_lines() {
        let errors = [
            FrameError::TooLarge {
                limit: 16 << 20,
                seen: 17 << 20,
            },
            FrameError::NotAMessage {
                found: "x\n".repeat(300),
            },
            FrameError::InvalidEncoding {
                encoding: WireEncoding::Utf8,
                detail: "é".repeat(300),
            },
            FrameError::Malformed {
                detail: "truncated".to_owned(),
            },
        ];
        for e in errors {
            let r = e.reason();
            assert!(r.chars().count() <= 128, "{r}");
            assert!(!r.contains('\n'));
            assert!(!r.is_empty());
        }
    }

    #[test]
    fn decode_bytes_detects_and_strips_bom() {
        let mut be = vec![0xFE, 0xFF];
        be.extend(encode_text(SHORT, WireEncoding::Utf16Be));
        assert_eq!(
            decode_bytes(&be).unwrap(),
            (SHORT.to_owned(), WireEncoding::Utf16Be)
        );
        let mut u8 = vec![0xEF, 0xBB, 0xBF];
        u8.extend(SHORT.as_bytes());
        assert_eq!(
            decode_bytes(&u8).unwrap(),
            (SHORT.to_owned(), WireEncoding::Utf8)
        );
        assert_eq!(
            decode_bytes(b"").unwrap(),
            (String::new(), WireEncoding::Utf16Be)
        );
        assert!(decode_bytes(&[0x00, 0x3C, 0x00]).is_err());
    }

    /// The word-at-a-time search agrees with a plain unit-by-unit scan, for every start
    /// offset, in both byte orders, with code units that contain the target byte in their
    /// other half (U+3C3C, U+3E00, ...) and targets at every lane of a word.
    mod find_any {
        use super::super::{BeUnits, LeUnits, Units};
        use proptest::prelude::*;

        fn naive(units: &[u16], from: usize, targets: &[u8]) -> Option<usize> {
            (from..units.len())
                .find(|&k| targets.iter().any(|&t| units[k] == u16::from(t)))
                .map(|k| 2 * k)
        }

        fn unit_strategy() -> impl Strategy<Value = u16> {
            prop_oneof![
                Just(0x003C),
                Just(0x003E),
                Just(0x0022),
                Just(0x0027),
                Just(0x3C00),
                Just(0x3C3C),
                Just(0x3E3E),
                Just(0x2200),
                Just(0x0000),
                Just(0x0001),
                Just(0xFFFF),
                Just(0x8000),
                0x20u16..0x7F,
                any::<u16>(),
            ]
        }

        proptest! {
            #[test]
            fn agrees_with_a_plain_scan(
                units in proptest::collection::vec(unit_strategy(), 0..40),
                from in 0usize..40,
            ) {
                let from = from.min(units.len());
                let be: Vec<u8> = units.iter().flat_map(|u| u.to_be_bytes()).collect();
                let le: Vec<u8> = units.iter().flat_map(|u| u.to_le_bytes()).collect();
                for targets in [&[b'<'][..], &[b'>', b'"', b'\''][..]] {
                    let expected = naive(&units, from, targets);
                    let got_be = match targets {
                        [a] => BeUnits::find_any(&be, 2 * from, [*a]),
                        [a, b, c] => BeUnits::find_any(&be, 2 * from, [*a, *b, *c]),
                        _ => unreachable!(),
                    };
                    let got_le = match targets {
                        [a] => LeUnits::find_any(&le, 2 * from, [*a]),
                        [a, b, c] => LeUnits::find_any(&le, 2 * from, [*a, *b, *c]),
                        _ => unreachable!(),
                    };
                    prop_assert_eq!(got_be, expected, "big-endian, targets {:?}", targets);
                    prop_assert_eq!(got_le, expected, "little-endian, targets {:?}", targets);
                }
            }
        }
    }
}
