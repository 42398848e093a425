//! A DTD reader and validator for MOS messages.
//!
//! [`Dtd::parse`] reads a plain DTD made of `<!ELEMENT>` and `<!ATTLIST>`
//! declarations and comments:
//!
//! - content: `EMPTY`, `ANY`, `(#PCDATA)`, mixed `(#PCDATA | a | b)*`, or element
//!   content built from names, `,` sequences, `|` choices, nested groups and the
//!   `?` `*` `+` indicators;
//! - attribute types `CDATA`, `NMTOKEN`, `ID` and enumerations of NMTOKENs;
//! - defaults `#REQUIRED`, `#IMPLIED`, `#FIXED "v"` and `"v"`.
//!
//! Anything else (entities, parameter entities, conditional sections,
//! notations, other attribute types) is rejected with a [`DtdError`].
//!
//! [`Dtd::validate`] checks one XML document against the DTD and returns every
//! well-formedness and validity problem it finds, each with its line.
//! Content models are matched with a Glushkov automaton (linear in the number
//! of children, no backtracking) and the document is walked without recursion,
//! so hostile nesting depth cannot overflow the stack.

mod model;
pub(crate) mod names;
mod parse;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use model::{Automaton, Particle};

/// The project's MOS 2.8.1 DTD text.
const MOS_2_8_1_DTD: &str = include_str!("../../dtd/mos-2.8.1.dtd");

/// A parsed DTD, ready to validate documents.
#[derive(Debug, Clone)]
pub struct Dtd {
    /// Every element name mentioned in the DTD, indexed by symbol id.
    names: Vec<String>,
    index: HashMap<String, u32>,
    /// Element declarations by symbol id (`None`: mentioned but not declared).
    elements: Vec<Option<ElementDecl>>,
    /// Attribute declarations by symbol id.
    attlists: Vec<Vec<AttrDecl>>,
}

#[derive(Debug, Clone)]
struct ElementDecl {
    line: usize,
    content: Content,
}

#[derive(Debug, Clone)]
enum Content {
    Empty,
    Any,
    /// `(#PCDATA)` when empty, else `(#PCDATA | a | b)*`.
    Mixed(Vec<u32>),
    Children(Particle, Automaton),
}

#[derive(Debug, Clone)]
struct AttrDecl {
    name: String,
    #[allow(dead_code)]
    line: usize,
    ty: AttrType,
    default: AttrDefault,
}

#[derive(Debug, Clone)]
enum AttrType {
    Cdata,
    Nmtoken,
    Id,
    Enum(Vec<String>),
}

#[derive(Debug, Clone)]
enum AttrDefault {
    Required,
    Implied,
    Fixed(String),
    Value(#[allow(dead_code)] String),
}

/// Options for [`Dtd::validate_with`].
#[derive(Debug, Clone, Default)]
pub struct ValidateOptions {
    /// Required name of the root element (e.g. `Some("mos".into())`).
    pub root: Option<String>,
    /// Report undeclared elements found inside `ANY` content (as xmllint does).
    /// When false, such elements and everything below them are accepted unchecked,
    /// since MOS payloads under `ANY` are opaque.
    pub strict_any: bool,
}

/// One problem found in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// 1-based line in the document.
    pub line: usize,
    /// 1-based column (in characters) in that line.
    pub column: usize,
    /// Element path such as `mos/roCreate/story[3]/item[2]`; `[n]` marks the n-th
    /// same-named sibling (n ≥ 2). Empty outside the root element.
    pub path: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            write!(f, "line {}: {}: {}", self.line, self.path, self.message)
        }
    }
}

/// Why a DTD could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtdError {
    /// Malformed declaration: what was expected and what was found.
    #[error("DTD line {line}: {message}")]
    Syntax {
        /// 1-based line of the problem.
        line: usize,
        /// Description, including what was found.
        message: String,
    },
    /// Valid DTD syntax outside the supported subset.
    #[error("DTD line {line}: {what} is not supported")]
    Unsupported {
        /// 1-based line of the construct.
        line: usize,
        /// The construct found.
        what: String,
    },
    /// An element declared a second time.
    #[error(
        "DTD line {line}: element {name} is declared twice (first declaration at line {first})"
    )]
    DuplicateElement {
        /// 1-based line of the second declaration.
        line: usize,
        /// The element name.
        name: String,
        /// 1-based line of the first declaration.
        first: usize,
    },
}

impl DtdError {
    /// 1-based line in the DTD where the problem was found.
    pub fn line(&self) -> usize {
        match self {
            DtdError::Syntax { line, .. }
            | DtdError::Unsupported { line, .. }
            | DtdError::DuplicateElement { line, .. } => *line,
        }
    }
}

impl Dtd {
    /// Parses DTD text in the supported subset (see the module documentation).
    pub fn parse(text: &str) -> Result<Dtd, DtdError> {
        parse::parse(text)
    }

    /// The project's MOS 2.8.1 DTD (`dtd/mos-2.8.1.dtd`, compiled in), parsed once.
    ///
    /// # Panics
    /// Only if the shipped DTD file itself is malformed (checked by the test suite).
    pub fn mos_2_8_1() -> &'static Dtd {
        static DTD: OnceLock<Dtd> = OnceLock::new();
        DTD.get_or_init(|| match Dtd::parse(MOS_2_8_1_DTD) {
            Ok(dtd) => dtd,
            Err(e) => panic!("the bundled dtd/mos-2.8.1.dtd is invalid: {e}"),
        })
    }

    /// Validates one XML document (a single root element) with default options.
    /// Returns every violation found; empty means valid.
    pub fn validate(&self, xml: &str) -> Vec<Violation> {
        self.validate_with(xml, &ValidateOptions::default())
    }

    /// Validates one XML document with `options`. At most
    /// [`MAX_VIOLATIONS`] violations are returned (the last one then says so).
    pub fn validate_with(&self, xml: &str, options: &ValidateOptions) -> Vec<Violation> {
        validate::validate(self, xml, options)
    }

    /// Whether `name` is a declared element.
    pub fn declares(&self, name: &str) -> bool {
        self.index
            .get(name)
            .is_some_and(|&s| self.elements[s as usize].is_some())
    }

    /// Names of the declared elements, in no particular order.
    pub fn element_names(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .zip(&self.elements)
            .filter(|(_, d)| d.is_some())
            .map(|(n, _)| n.as_str())
    }

    /// The content model of element `name` in DTD syntax, e.g. `(a, b?)`.
    pub fn content_model(&self, name: &str) -> Option<String> {
        let decl = self
            .elements
            .get(*self.index.get(name)? as usize)?
            .as_ref()?;
        Some(self.render_content(&decl.content))
    }

    fn render_content(&self, content: &Content) -> String {
        match content {
            Content::Empty => "EMPTY".to_string(),
            Content::Any => "ANY".to_string(),
            Content::Mixed(syms) if syms.is_empty() => "(#PCDATA)".to_string(),
            Content::Mixed(syms) => {
                let mut s = "(#PCDATA".to_string();
                for &sym in syms {
                    s.push_str(" | ");
                    s.push_str(&self.names[sym as usize]);
                }
                s.push_str(")*");
                s
            }
            Content::Children(p, _) => {
                let mut s = String::new();
                p.render(&self.names, &mut s);
                s
            }
        }
    }
}

/// Most violations reported for one document.
pub const MAX_VIOLATIONS: usize = 1000;

/// Expands references in an attribute value and turns literal white space into
/// spaces (XML 1.0 §3.3.3). Values are deliberately not trimmed or collapsed for
/// tokenized types: documents carry no DOCTYPE, so, as with `xmllint --dtdvalid`,
/// the DTD is applied after parsing and `" READY "` is not `READY`.
fn expand_attr_value(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => return Err("'<' is not allowed in an attribute value".to_string()),
            '&' => {
                let Some(end) = rest.find(';') else {
                    return Err("'&' not followed by a reference ending with ';'".to_string());
                };
                let name = &rest[1..end];
                out.push(resolve_reference(name)?);
                rest = &rest[end + 1..];
                continue;
            }
            '\r' if rest[1..].starts_with('\n') => {}
            '\t' | '\n' | '\r' => out.push(' '),
            c if !names::is_xml_char(c) => {
                return Err(format!(
                    "character U+{:04X} is not allowed in XML",
                    c as u32
                ));
            }
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
}

/// Resolves the body of a reference (`amp`, `#160`, `#x1F3A5`).
fn resolve_reference(name: &str) -> Result<char, String> {
    let bad = || format!("invalid character reference &{name};");
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix('x') {
            Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                u32::from_str_radix(hex, 16).ok()
            }
            None if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) => num.parse().ok(),
            _ => None,
        };
        return code
            .and_then(char::from_u32)
            .filter(|&c| names::is_xml_char(c))
            .ok_or_else(bad);
    }
    match name {
        "amp" => Ok('&'),
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "quot" => Ok('"'),
        "apos" => Ok('\''),
        _ if names::is_name(name) => Err(format!(
            "undefined entity &{name}; (only &amp; &lt; &gt; &quot; &apos; and character references are allowed)"
        )),
        _ => Err(format!("malformed reference &{name};")),
    }
}

#[cfg(test)]
mod tests;
