//! Configuration errors, and finding where in the file a key is.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Why a configuration could not be loaded. The message names the file (or the embedded
/// default), the line when known, the key path (e.g. `ncs[1].lower_port`) and what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: cannot read the configuration: {source}")]
    Read {
        /// The file name.
        origin: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML.
    #[error("{origin}{}: not valid TOML: {detail}", Line(*line))]
    Syntax {
        /// The file name, or `embedded default`.
        origin: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What the TOML parser said.
        detail: String,
    },
    /// A key has a wrong type or value, is unknown, or breaks a rule.
    #[error("{origin}{}: {key}: {detail}", Line(*line))]
    Invalid {
        /// The file name, or `embedded default`.
        origin: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// Key path such as `ncs[1].lower_port`, with the flag when a command-line flag set it.
        key: String,
        /// What is wrong and what was expected.
        detail: String,
    },
}

impl ConfigError {
    /// The key path the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Formats `:LINE` when a line is known.
struct Line(Option<usize>);

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, ":{n}"),
            None => Ok(()),
        }
    }
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    let prefix = text.get(..end).unwrap_or(text);
    prefix.matches('\n').count() + 1
}

/// The key path (e.g. `ncs[0].buddy.bogus_key`) of the innermost key or value covering `offset`.
pub(crate) fn path_at(doc: &DeTable<'_>, offset: usize) -> Option<String> {
    let mut path = String::new();
    if table_path_at(doc, offset, &mut path) {
        Some(path)
    } else {
        None
    }
}

fn contains(span: Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

fn table_path_at(table: &DeTable<'_>, offset: usize, path: &mut String) -> bool {
    for (key, value) in table.iter() {
        if contains(key.span(), offset) {
            push_key(path, key.get_ref());
            return true;
        }
        if contains(value.span(), offset) || holds(value, offset) {
            push_key(path, key.get_ref());
            value_path_at(value, offset, path);
            return true;
        }
    }
    false
}

/// Whether a table or array (whose own span may not cover its children, as with `[[ncs]]`)
/// has a child covering `offset`.
fn holds(value: &Spanned<DeValue<'_>>, offset: usize) -> bool {
    match value.get_ref() {
        DeValue::Table(t) => t.iter().any(|(k, v)| {
            contains(k.span(), offset) || contains(v.span(), offset) || holds(v, offset)
        }),
        DeValue::Array(a) => a
            .iter()
            .any(|v| contains(v.span(), offset) || holds(v, offset)),
        _ => false,
    }
}

fn value_path_at(value: &Spanned<DeValue<'_>>, offset: usize, path: &mut String) {
    match value.get_ref() {
        DeValue::Table(t) => {
            table_path_at(t, offset, path);
        }
        DeValue::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                if contains(v.span(), offset) || holds(v, offset) {
                    path.push_str(&format!("[{i}]"));
                    value_path_at(v, offset, path);
                    return;
                }
            }
        }
        _ => {}
    }
}

/// The span of the value (or, failing that, the key) at a path like `ncs[1].buddy.host`.
pub(crate) fn span_of(doc: &DeTable<'_>, path: &str) -> Option<Range<usize>> {
    let mut table = doc;
    let mut found: Option<(Range<usize>, &Spanned<DeValue<'_>>)> = None;
    for segment in path.split('.') {
        if let Some((_, v)) = &found {
            table = v.get_ref().as_table()?;
        }
        let (name, indices) = split_indices(segment)?;
        let (key, mut value) = table.get_key_value(name)?;
        let mut span = if value.span().is_empty() {
            key.span()
        } else {
            value.span()
        };
        for i in indices {
            value = value.get_ref().as_array()?.get(i)?;
            if !value.span().is_empty() {
                span = value.span();
            }
        }
        found = Some((span, value));
    }
    found.map(|(span, _)| span)
}

/// `allowed_addresses[2]` → (`allowed_addresses`, [2]).
fn split_indices(segment: &str) -> Option<(&str, Vec<usize>)> {
    let mut parts = segment.split('[');
    let name = parts.next()?;
    let mut indices = Vec::new();
    for p in parts {
        indices.push(p.strip_suffix(']')?.parse().ok()?);
    }
    Some((name, indices))
}
