//! Parse errors and tolerated deviations of the message layer.

use std::fmt;

/// Why a MOS document could not be turned into a typed message. Its [`reason`](Self::reason)
/// is what a NACK carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct ParseError {
    /// The message element (`roCreate`, …), when known.
    pub message: Option<String>,
    /// Element path, e.g. `mos/roCreate/story[2]/item[1]/objID`.
    pub path: String,
    /// What was wrong and what was expected.
    pub detail: String,
    /// 1-based line in the document, when known.
    pub line: Option<usize>,
    /// Byte offset in the document, when known.
    pub offset: Option<usize>,
    /// The kind of deviation, when the error is a deviation strict parsing refused.
    pub kind: Option<DeviationKind>,
}

impl ParseError {
    /// A one-line reason of at most 128 characters, for a NACK's status text.
    pub fn reason(&self) -> String {
        let full = self.to_string();
        truncate_chars(&full, 128)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = &self.message {
            write!(f, "{m}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.detail)
    }
}

/// Cuts a string to at most `max` characters (not bytes).
pub fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// The kinds of off-spec input that lenient parsing tolerates and strict parsing refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviationKind {
    /// The envelope has no messageID.
    MissingMessageId,
    /// `<messageID/>` or blank.
    EmptyMessageId,
    /// messageID not a number ≥ 1.
    InvalidMessageId,
    /// Blank mosID or ncsID.
    EmptyMosId,
    /// A blank time-typed element.
    EmptyTime,
    /// A time in a real-world variant of the spec format.
    NonstandardTime,
    /// A time that cannot be read.
    InvalidTime,
    /// A 128-character field that is longer.
    OverlongString,
    /// Children (or header fields) not in spec order.
    OutOfOrder,
    /// A required child is absent.
    MissingElement,
    /// An enumerated value in the wrong letter case.
    EnumCase,
    /// An enumerated or numeric value that is not allowed.
    InvalidValue,
    /// A number with whitespace or a decimal comma.
    NonstandardNumber,
}

impl DeviationKind {
    /// Every kind, in declaration order.
    pub const ALL: [DeviationKind; 13] = [
        Self::MissingMessageId,
        Self::EmptyMessageId,
        Self::InvalidMessageId,
        Self::EmptyMosId,
        Self::EmptyTime,
        Self::NonstandardTime,
        Self::InvalidTime,
        Self::OverlongString,
        Self::OutOfOrder,
        Self::MissingElement,
        Self::EnumCase,
        Self::InvalidValue,
        Self::NonstandardNumber,
    ];

    /// The kebab-case name used in logs and fixture files.
    pub fn name(self) -> &'static str {
        match self {
            Self::MissingMessageId => "missing-message-id",
            Self::EmptyMessageId => "empty-message-id",
            Self::InvalidMessageId => "invalid-message-id",
            Self::EmptyMosId => "empty-mos-id",
            Self::EmptyTime => "empty-time",
            Self::NonstandardTime => "nonstandard-time",
            Self::InvalidTime => "invalid-time",
            Self::OverlongString => "overlong-string",
            Self::OutOfOrder => "out-of-order",
            Self::MissingElement => "missing-element",
            Self::EnumCase => "enum-case",
            Self::InvalidValue => "invalid-value",
            Self::NonstandardNumber => "nonstandard-number",
        }
    }

    /// Looks a kind up by its [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for DeviationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One off-spec construct that lenient parsing accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deviation {
    /// What kind of deviation.
    pub kind: DeviationKind,
    /// Element path where it was found.
    pub path: String,
    /// What was found and what the spec expects.
    pub detail: String,
}

impl fmt::Display for Deviation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.kind, self.path, self.detail)
    }
}
