//! The reading context shared by every message parser: strict or lenient, the element
//! path for error messages, and the list of tolerated deviations.

use super::error::{Deviation, DeviationKind, ParseError, truncate_chars};
use super::number;
use super::time::{MosTime, RoDuration, TimeConformance};
use super::xml::{El, Helper};

/// Maximum length of the spec's 128-character strings.
pub const STRING128: usize = 128;

/// Enumerated MOS values: parsed case-insensitively (a case mismatch is a deviation),
/// written in the spec's spelling.
pub trait MosEnum: Sized + 'static {
    /// Every value with its spec spelling.
    const VALUES: &'static [(&'static str, Self)];
    /// The value for an exact spec spelling.
    fn from_wire(text: &str) -> Option<Self>
    where
        Self: Clone,
    {
        Self::VALUES
            .iter()
            .find(|(s, _)| *s == text)
            .map(|(_, v)| v.clone())
    }
}

/// Reading state for one message.
pub struct Cx {
    strict: bool,
    message: &'static str,
    path: Vec<(&'static str, Option<usize>)>,
    offset: Option<usize>,
    /// Deviations tolerated so far (lenient mode).
    pub deviations: Vec<Deviation>,
}

impl Cx {
    /// A context for a message named `message`.
    pub fn new(strict: bool) -> Self {
        Self {
            strict,
            message: "",
            path: vec![("mos", None)],
            offset: None,
            deviations: Vec::new(),
        }
    }

    /// A context for reading, on another thread, what follows the part of a list this
    /// one reads: same mode, message and path; no deviations and no position yet.
    fn fork(&self) -> Self {
        Self {
            strict: self.strict,
            message: self.message,
            path: self.path.clone(),
            offset: None,
            deviations: Vec::new(),
        }
    }

    /// Takes back a [`Cx::fork`] that read what follows everything read here, leaving
    /// this context as if it had read both: deviations in document order, the position
    /// last noted.
    fn absorb(&mut self, later: Self) {
        self.deviations.extend(later.deviations);
        if later.offset.is_some() {
            self.offset = later.offset;
        }
    }

    /// Whether off-spec input is refused.
    pub fn strict(&self) -> bool {
        self.strict
    }

    /// Sets the message name used in errors.
    pub fn set_message(&mut self, name: &'static str) {
        self.message = name;
    }

    /// Descends into a child element (for paths in errors).
    pub fn enter(&mut self, name: &'static str, index: Option<usize>) {
        self.path.push((name, index));
    }

    /// Leaves the element entered last.
    pub fn leave(&mut self) {
        self.path.pop();
    }

    /// Runs `f` inside a child element's path.
    pub fn within<T>(
        &mut self,
        name: &'static str,
        index: Option<usize>,
        f: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        self.enter(name, index);
        let r = f(self);
        self.leave();
        r
    }

    /// The current path, with an optional last segment.
    pub fn path(&self, leaf: Option<&str>) -> String {
        let mut s = String::new();
        for (i, (name, idx)) in self.path.iter().enumerate() {
            if i > 0 {
                s.push('/');
            }
            s.push_str(name);
            if let Some(n) = idx {
                s.push_str(&format!("[{}]", n + 1));
            }
        }
        if let Some(l) = leaf {
            s.push('/');
            s.push_str(l);
        }
        s
    }

    /// Remembers the line of the element being read, for errors.
    pub fn at(&mut self, el: El<'_, '_>) {
        self.offset = Some(el.offset());
    }

    /// An error at the current path.
    pub fn error(&self, leaf: Option<&str>, detail: impl Into<String>) -> ParseError {
        ParseError {
            message: (!self.message.is_empty()).then(|| self.message.to_string()),
            path: self.path(leaf),
            detail: detail.into(),
            line: None,
            offset: self.offset,
            kind: None,
        }
    }

    /// Accepts an off-spec construct in lenient mode (recording it), refuses it in strict mode.
    pub fn tolerate(
        &mut self,
        kind: DeviationKind,
        leaf: Option<&str>,
        detail: impl Into<String>,
    ) -> Result<(), ParseError> {
        let detail = detail.into();
        if self.strict {
            let mut e = self.error(leaf, detail);
            e.kind = Some(kind);
            return Err(e);
        }
        self.deviations.push(Deviation {
            kind,
            path: self.path(leaf),
            detail,
        });
        Ok(())
    }

    /// Checks that the known children of `el` appear in spec order (unknown ones are
    /// ignored). `order` lists the known names in spec order.
    pub fn check_order(&mut self, el: El<'_, '_>, order: &[&str]) -> Result<(), ParseError> {
        let mut last = 0usize;
        let mut last_name = "";
        for c in el.children() {
            let name = c.name();
            if let Some(pos) = order.iter().position(|n| *n == name) {
                if pos < last {
                    self.at(c);
                    return self.tolerate(
                        DeviationKind::OutOfOrder,
                        None,
                        format!(
                            "<{name}> after <{last_name}>; expected order ({})",
                            order.join(", ")
                        ),
                    );
                }
                last = pos;
                last_name = name;
            }
        }
        Ok(())
    }

    /// Finds, in one pass over the children of `el`, the first child named by each entry
    /// of `order` (slot `i` for `order[i]`), checking spec order on the way exactly as
    /// [`Cx::check_order`] does (at most one deviation, reported at the first child out of
    /// order). Replaces a `check_order` followed by one [`El::child`] scan per field.
    pub fn fields<'d, 'a, const N: usize>(
        &mut self,
        el: El<'d, 'a>,
        order: &[&str; N],
    ) -> Result<[Option<El<'d, 'a>>; N], ParseError> {
        let mut slots = [None; N];
        let mut last = 0usize;
        let mut last_name = "";
        let mut in_order = true;
        // Children usually come in spec order, so each search starts at the slot after the
        // one found last.
        let mut next = 0usize;
        for c in el.children() {
            let name = c.name();
            let Some(pos) = position_from(order, next, name) else {
                continue;
            };
            next = pos + 1;
            slots[pos].get_or_insert(c);
            if !in_order {
                continue;
            }
            if pos < last {
                in_order = false;
                self.at(c);
                self.tolerate(
                    DeviationKind::OutOfOrder,
                    None,
                    format!(
                        "<{name}> after <{last_name}>; expected order ({})",
                        order.join(", ")
                    ),
                )?;
                continue;
            }
            last = pos;
            last_name = name;
        }
        Ok(slots)
    }

    /// Checks a 128-character limit.
    fn check_len(&mut self, name: &str, value: &str) -> Result<(), ParseError> {
        if value.len() > STRING128 {
            let n = value.chars().count();
            if n > STRING128 {
                return self.tolerate(
                    DeviationKind::OverlongString,
                    Some(name),
                    format!("{n} characters, at most {STRING128} allowed"),
                );
            }
        }
        Ok(())
    }

    /// A required string element (at most 128 characters).
    pub fn req_str(&mut self, el: El<'_, '_>, name: &'static str) -> Result<String, ParseError> {
        self.req_str_of(el, el.child(name), name)
    }

    /// [`Cx::req_str`] with the child already looked up (e.g. by [`Cx::fields`]).
    pub fn req_str_of(
        &mut self,
        el: El<'_, '_>,
        child: Option<El<'_, '_>>,
        name: &'static str,
    ) -> Result<String, ParseError> {
        match child {
            Some(c) => {
                let v = text_of(c);
                self.check_len(name, &v)?;
                Ok(v)
            }
            None => {
                self.at(el);
                self.missing(name)?;
                Ok(String::new())
            }
        }
    }

    /// Records a missing required element.
    pub fn missing(&mut self, name: &str) -> Result<(), ParseError> {
        self.tolerate(
            DeviationKind::MissingElement,
            Some(name),
            "required element missing",
        )
    }

    /// An optional string element (at most 128 characters). Present but empty is `Some("")`.
    pub fn opt_str(
        &mut self,
        el: El<'_, '_>,
        name: &'static str,
    ) -> Result<Option<String>, ParseError> {
        self.opt_str_of(el.child(name), name)
    }

    /// [`Cx::opt_str`] with the child already looked up (e.g. by [`Cx::fields`]).
    pub fn opt_str_of(
        &mut self,
        child: Option<El<'_, '_>>,
        name: &'static str,
    ) -> Result<Option<String>, ParseError> {
        match child {
            Some(c) => {
                let v = text_of(c);
                self.check_len(name, &v)?;
                Ok(Some(v))
            }
            None => Ok(None),
        }
    }

    /// An optional text element of unlimited length.
    pub fn opt_text(&mut self, el: El<'_, '_>, name: &'static str) -> Option<String> {
        el.child(name).map(text_of)
    }

    /// Every value of a repeated string element.
    pub fn str_list(
        &mut self,
        el: El<'_, '_>,
        name: &'static str,
    ) -> Result<Vec<String>, ParseError> {
        let mut out = Vec::new();
        for c in el.children_named(name) {
            let v = text_of(c);
            self.check_len(name, &v)?;
            out.push(v);
        }
        Ok(out)
    }

    /// A time value read from an element's text, with its conformance checked.
    pub fn time_value(&mut self, name: &str, text: &str) -> Result<MosTime, ParseError> {
        let t = MosTime::from_wire(text);
        match t.conformance() {
            TimeConformance::Spec => {}
            TimeConformance::Empty => {
                self.tolerate(DeviationKind::EmptyTime, Some(name), "empty time")?
            }
            TimeConformance::Variant => self.tolerate(
                DeviationKind::NonstandardTime,
                Some(name),
                format!("{text:?} is not YYYY-MM-DDThh:mm:ss[,ddd][Z|±hh:mm]"),
            )?,
            TimeConformance::Unparseable => self.tolerate(
                DeviationKind::InvalidTime,
                Some(name),
                format!("{text:?} is not a time (YYYY-MM-DDThh:mm:ss[,ddd][Z|±hh:mm])"),
            )?,
        }
        Ok(t)
    }

    /// A required time element.
    pub fn req_time(&mut self, el: El<'_, '_>, name: &'static str) -> Result<MosTime, ParseError> {
        match el.child(name) {
            Some(c) => {
                self.at(c);
                let raw = c.text();
                self.time_value(name, &raw)
            }
            None => {
                self.at(el);
                self.missing(name)?;
                Ok(MosTime::from_wire(""))
            }
        }
    }

    /// An optional time element.
    pub fn opt_time(
        &mut self,
        el: El<'_, '_>,
        name: &'static str,
    ) -> Result<Option<MosTime>, ParseError> {
        match el.child(name) {
            Some(c) => {
                self.at(c);
                let raw = c.text();
                self.time_value(name, &raw).map(Some)
            }
            None => Ok(None),
        }
    }

    /// An optional roEdDur-style duration.
    pub fn opt_duration(
        &mut self,
        el: El<'_, '_>,
        name: &'static str,
    ) -> Result<Option<RoDuration>, ParseError> {
        let Some(c) = el.child(name) else {
            return Ok(None);
        };
        let raw = c.text();
        let d = RoDuration::from_wire(&raw);
        match d.conformance() {
            TimeConformance::Spec | TimeConformance::Empty => {}
            TimeConformance::Variant => self.tolerate(
                DeviationKind::NonstandardTime,
                Some(name),
                format!("{raw:?} is not hh:mm:ss"),
            )?,
            TimeConformance::Unparseable => self.tolerate(
                DeviationKind::InvalidTime,
                Some(name),
                format!("{raw:?} is not a duration (hh:mm:ss)"),
            )?,
        }
        Ok(Some(d))
    }

    /// Reads a number with `parse`, recording non-standard spellings. Returns None
    /// (after a deviation) for a value that is not a number.
    fn number<T>(
        &mut self,
        name: &str,
        text: &str,
        parse: impl Fn(&str) -> Result<T, number::NumberError>,
    ) -> Result<Option<T>, ParseError> {
        match parse(text) {
            Ok(v) => {
                if !number::is_spec_number(text) {
                    self.tolerate(
                        DeviationKind::NonstandardNumber,
                        Some(name),
                        format!("{text:?} is not a plain decimal or hex number"),
                    )?;
                }
                Ok(Some(v))
            }
            Err(e) => {
                self.tolerate(DeviationKind::InvalidValue, Some(name), e.to_string())?;
                Ok(None)
            }
        }
    }

    /// An optional unsigned number (samples, revisions). Empty counts as absent.
    pub fn opt_u32(
        &mut self,
        el: El<'_, '_>,
        name: &'static str,
    ) -> Result<Option<u32>, ParseError> {
        self.opt_u32_of(el.child(name), name)
    }

    /// [`Cx::opt_u32`] with the child already looked up (e.g. by [`Cx::fields`]).
    pub fn opt_u32_of(
        &mut self,
        child: Option<El<'_, '_>>,
        name: &'static str,
    ) -> Result<Option<u32>, ParseError> {
        let Some(c) = child else {
            return Ok(None);
        };
        let raw = c.text();
        if let Some(v) = plain_u32(&raw) {
            return Ok(Some(v));
        }
        if raw.trim().is_empty() {
            return Ok(None);
        }
        self.at(c);
        self.number(name, &raw, number::parse_u32)
    }

    /// A required unsigned number; missing or invalid reads as 0 in lenient mode.
    pub fn req_u32(&mut self, el: El<'_, '_>, name: &'static str) -> Result<u32, ParseError> {
        let Some(c) = el.child(name) else {
            self.at(el);
            self.missing(name)?;
            return Ok(0);
        };
        let raw = c.text();
        self.at(c);
        if raw.trim().is_empty() {
            self.tolerate(
                DeviationKind::InvalidValue,
                Some(name),
                "empty, a number is required",
            )?;
            return Ok(0);
        }
        Ok(self.number(name, &raw, number::parse_u32)?.unwrap_or(0))
    }

    /// A time base (objTB): positive, may be fractional.
    pub fn opt_time_base(
        &mut self,
        el: El<'_, '_>,
        name: &'static str,
    ) -> Result<Option<f64>, ParseError> {
        let Some(c) = el.child(name) else {
            return Ok(None);
        };
        let raw = c.text();
        if raw.trim().is_empty() {
            return Ok(None);
        }
        self.at(c);
        match number::parse_time_base(&raw) {
            Ok(v) => {
                let plain = raw.bytes().all(|b| b.is_ascii_digit() || b == b'.');
                if !plain {
                    self.tolerate(
                        DeviationKind::NonstandardNumber,
                        Some(name),
                        format!("{raw:?} is not a plain number"),
                    )?;
                }
                Ok(Some(v))
            }
            Err(e) => {
                self.tolerate(DeviationKind::InvalidValue, Some(name), e.to_string())?;
                Ok(None)
            }
        }
    }

    /// Reads an enumerated value from text: exact spelling, or (a deviation) another
    /// letter case. Unknown values are a deviation and read as None.
    pub fn enum_value<T: MosEnum + Clone>(
        &mut self,
        name: &str,
        text: &str,
    ) -> Result<Option<T>, ParseError> {
        let t = text.trim();
        if let Some(v) = T::from_wire(t) {
            return Ok(Some(v));
        }
        if let Some((spelling, v)) = T::VALUES.iter().find(|(s, _)| s.eq_ignore_ascii_case(t)) {
            self.tolerate(
                DeviationKind::EnumCase,
                Some(name),
                format!("{t:?} should be spelled {spelling:?}"),
            )?;
            return Ok(Some(v.clone()));
        }
        let allowed: Vec<&str> = T::VALUES.iter().map(|(s, _)| *s).collect();
        self.tolerate(
            DeviationKind::InvalidValue,
            Some(name),
            format!("{t:?} is not one of {}", allowed.join(" | ")),
        )?;
        Ok(None)
    }

    /// An optional enumerated element.
    pub fn opt_enum<T: MosEnum + Clone>(
        &mut self,
        el: El<'_, '_>,
        name: &'static str,
    ) -> Result<Option<T>, ParseError> {
        match el.child(name) {
            Some(c) => {
                self.at(c);
                let t = c.text();
                if t.trim().is_empty() {
                    return Ok(None);
                }
                self.enum_value(name, &t)
            }
            None => Ok(None),
        }
    }

    /// A required enumerated element; `default` when missing or invalid (lenient).
    pub fn req_enum<T: MosEnum + Clone>(
        &mut self,
        el: El<'_, '_>,
        name: &'static str,
        default: T,
    ) -> Result<T, ParseError> {
        match el.child(name) {
            Some(c) => {
                self.at(c);
                let t = c.text();
                Ok(self.enum_value(name, &t)?.unwrap_or(default))
            }
            None => {
                self.at(el);
                self.missing(name)?;
                Ok(default)
            }
        }
    }
}

/// Where `name` is in `order`, searching from `start` and wrapping around.
fn position_from(order: &[&str], start: usize, name: &str) -> Option<usize> {
    let (head, tail) = order.split_at(start.min(order.len()));
    tail.iter()
        .position(|n| *n == name)
        .map(|p| p + start)
        .or_else(|| head.iter().position(|n| *n == name))
}

/// A decimal number of at most nine digits with nothing around it: the common case, read
/// without the general number parser (which it agrees with).
fn plain_u32(text: &str) -> Option<u32> {
    let b = text.as_bytes();
    if b.is_empty() || b.len() > 9 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |v, d| v * 10 + u32::from(d - b'0')))
}

/// An element's text, trimmed of surrounding XML whitespace.
pub fn text_of(el: El<'_, '_>) -> String {
    let t = el.text();
    let trimmed = trim_xml_space(&t);
    if trimmed.len() == t.len() {
        t.into_owned()
    } else {
        trimmed.to_string()
    }
}

/// `s` without leading and trailing XML whitespace (space, tab, CR, LF; all ASCII, so the
/// cut is found bytewise and always falls on a character boundary).
fn trim_xml_space(s: &str) -> &str {
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let b = s.as_bytes();
    let start = b.iter().position(|c| !space(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !space(c)).map_or(start, |e| e + 1);
    &s[start..end]
}

/// Truncates a value to 128 characters for sending.
pub fn clip128(s: &str) -> String {
    truncate_chars(s, STRING128)
}

/// Lists spanning this much of the document or more, with at least [`LIST_SPLIT_MIN`]
/// entries, are read in two halves at once ([`read_list`]).
const LIST_SPLIT_MIN_BYTES: usize = 32 * 1024;

/// See [`LIST_SPLIT_MIN_BYTES`].
const LIST_SPLIT_MIN: usize = 8;

/// Reads every child of `el` named `name` with `read`, each within its numbered path, in
/// document order. A long list (the stories of a large running order) is read in two
/// halves at once when a helper thread is free ([`read_halves`]).
pub fn read_list<'d, 'a: 'd, T, F>(
    el: El<'d, 'a>,
    name: &'static str,
    cx: &mut Cx,
    read: F,
) -> Result<Vec<T>, ParseError>
where
    T: Send,
    F: Fn(El<'d, 'a>, &mut Cx) -> Result<T, ParseError> + Sync,
{
    if el.raw_inner().len() >= LIST_SPLIT_MIN_BYTES {
        let list: Vec<El<'d, 'a>> = el.children_named(name).collect();
        if list.len() >= LIST_SPLIT_MIN
            && let Some(helper) = Helper::claim()
        {
            #[cfg(test)]
            tests::SPLIT_READS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return read_halves(cx, &list, name, &read, Some(helper));
        }
    }
    read_in_order(cx, el.children_named(name), 0, name, &read)
}

/// Reads `list` from index `from` on, in order.
fn read_in_order<'d, 'a: 'd, T>(
    cx: &mut Cx,
    list: impl Iterator<Item = El<'d, 'a>>,
    from: usize,
    name: &'static str,
    read: &impl Fn(El<'d, 'a>, &mut Cx) -> Result<T, ParseError>,
) -> Result<Vec<T>, ParseError> {
    let mut out = Vec::with_capacity(list.size_hint().0);
    for (i, c) in list.enumerate() {
        out.push(cx.within(name, Some(from + i), |cx| read(c, cx))?);
    }
    Ok(out)
}

/// Reads the first half of `list` on this thread and the second with a [`Cx::fork`], on
/// the helper at once (without one, in order on this thread, the second half first: the
/// tests' way of using the two contexts as the helper does). The outcome is exactly that
/// of reading in order: on success the values, and the deviations in document order; if
/// either half fails, the list is read again in order, for the error a reading in order
/// meets first.
fn read_halves<'d, 'a: 'd, T, F>(
    cx: &mut Cx,
    list: &[El<'d, 'a>],
    name: &'static str,
    read: &F,
    helper: Option<Helper>,
) -> Result<Vec<T>, ParseError>
where
    T: Send,
    F: Fn(El<'d, 'a>, &mut Cx) -> Result<T, ParseError> + Sync,
{
    let (first, second) = list.split_at(list.len() / 2);
    let (before, offset) = (cx.deviations.len(), cx.offset);
    let mut later = cx.fork();
    let (a, b) = {
        let reader = &mut *cx;
        let mut here = move || read_in_order(reader, first.iter().copied(), 0, name, read);
        let there = || {
            let r = read_in_order(&mut later, second.iter().copied(), first.len(), name, read);
            (r, later)
        };
        match helper {
            Some(helper) => helper.join(here, there),
            None => {
                let b = there();
                (here(), Some(b))
            }
        }
    };
    if let (Ok(mut values), Some((Ok(rest), later))) = (a, b) {
        cx.absorb(later);
        values.extend(rest);
        return Ok(values);
    }
    cx.deviations.truncate(before);
    cx.offset = offset;
    read_in_order(cx, list.iter().copied(), 0, name, read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Lists read in two halves at once so far.
    pub(super) static SPLIT_READS: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);

    #[test]
    fn position_from_wraps_around() {
        let order = ["a", "b", "c"];
        assert_eq!(position_from(&order, 0, "c"), Some(2));
        assert_eq!(position_from(&order, 2, "a"), Some(0));
        assert_eq!(position_from(&order, 3, "b"), Some(1));
        assert_eq!(position_from(&order, 1, "x"), None);
    }

    #[test]
    fn xml_space_is_trimmed_other_space_kept() {
        assert_eq!(trim_xml_space(" \t\r\n a b \n"), "a b");
        assert_eq!(trim_xml_space("\u{a0}x\u{3000}"), "\u{a0}x\u{3000}");
        assert_eq!(trim_xml_space("  "), "");
    }

    /// A roCreate of `stories` stories of 10 items; story `i` in `overlong` has a slug of
    /// 200 characters, story `i` in `no_id` has no storyID (deviations, or errors when strict).
    fn ro_create(stories: usize, overlong: &[usize], no_id: &[usize]) -> String {
        let mut body = String::from("<roCreate><roID>R</roID><roSlug>Show</roSlug>");
        for s in 0..stories {
            body.push_str("<story>");
            if !no_id.contains(&s) {
                body.push_str(&format!("<storyID>S{s}</storyID>"));
            }
            let slug = if overlong.contains(&s) {
                "x".repeat(200)
            } else {
                format!("Story {s}")
            };
            body.push_str(&format!("<storySlug>{slug}</storySlug>"));
            for i in 0..10 {
                body.push_str(&format!(
                    "<item><itemID>{i}</itemID><itemSlug>CAM{i} live</itemSlug><objID>O-{s}-{i}</objID>\
                     <mosID>GW</mosID><itemChannel>CAM1</itemChannel><itemEdDur>250</itemEdDur></item>"
                ));
            }
            body.push_str("</story>");
        }
        format!(
            "<mos><mosID>GW</mosID><ncsID>NCS</ncsID><messageID>1</messageID>{body}</roCreate></mos>"
        )
    }

    /// Cases: clean, off-spec stories in the first half, the second, both.
    const CASES: [(&[usize], &[usize]); 5] = [
        (&[], &[]),
        (&[3], &[]),
        (&[], &[30]),
        (&[3], &[30]),
        (&[30, 31], &[4, 5]),
    ];

    /// A list read in two halves (here the second half first, then the first, each with
    /// its own context) reads exactly as in order: values, deviations and their paths in
    /// document order, the position noted last, and in strict mode the first error.
    #[test]
    fn a_list_read_in_halves_reads_as_in_order() {
        use crate::mos::structures::Story;
        use crate::mos::xml::Document;
        for strict in [false, true] {
            for (overlong, no_id) in CASES {
                let text = ro_create(40, overlong, no_id);
                let doc = Document::parse(&text).unwrap();
                let ro = doc.root().child("roCreate").unwrap();
                let stories: Vec<El<'_, '_>> = ro.children_named("story").collect();
                let outcome = |cx: Cx, r: Result<Vec<Story>, ParseError>| {
                    (format!("{r:?}"), format!("{:?}", cx.deviations), cx.offset)
                };
                let mut cx = Cx::new(strict);
                let r = read_in_order(&mut cx, stories.iter().copied(), 0, "story", &Story::read);
                let in_order = outcome(cx, r);
                let mut cx = Cx::new(strict);
                let r = read_halves(&mut cx, &stories, "story", &Story::read, None);
                let halves = outcome(cx, r);
                assert_eq!(in_order, halves, "strict {strict}, {overlong:?} {no_id:?}");
                let deviations = overlong.len() + no_id.len();
                if !strict {
                    assert!(in_order.0.starts_with("Ok"));
                    assert_eq!(in_order.1.matches("Deviation {").count(), deviations);
                } else if deviations > 0 {
                    assert!(in_order.0.starts_with("Err"));
                }
            }
        }
    }

    /// Through the whole parse: with a helper free (halves at once) and with every helper
    /// taken (in order), the same message and deviations, or the same error. On a machine
    /// with a second core the halves must have been read at once at least once (other
    /// tests may hold the helper for a moment: the parse is repeated until then).
    #[test]
    fn a_large_running_order_parses_the_same_with_or_without_a_helper() {
        use crate::mos::{Mos, ParseOptions};
        use std::sync::atomic::Ordering;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for (overlong, no_id) in CASES {
            let text = ro_create(60, overlong, no_id);
            assert!(text.len() > 2 * LIST_SPLIT_MIN_BYTES);
            for options in [ParseOptions::lenient(), ParseOptions::strict()] {
                let parse = || match Mos::parse(&text, options) {
                    Ok(p) => format!("{:?} {:?}", p.mos, p.deviations),
                    Err(r) => format!("error {}", r.error),
                };
                let taken: Vec<Helper> = std::iter::from_fn(Helper::claim).collect();
                let alone = parse();
                drop(taken);
                for attempt in 0.. {
                    let before = SPLIT_READS.load(Ordering::SeqCst);
                    assert_eq!(parse(), alone, "{overlong:?} {no_id:?}");
                    if cores < 2 || SPLIT_READS.load(Ordering::SeqCst) > before {
                        break;
                    }
                    assert!(attempt < 200, "the halves were never read at once");
                }
            }
        }
    }

    proptest! {
        /// The fast path reads exactly what the general parser reads, and leaves everything
        /// else (signs, spaces, hex, overflow) to it.
        #[test]
        fn plain_u32_agrees_with_the_number_parser(text in "[0-9 x+-]{0,12}") {
            if let Some(v) = plain_u32(&text) {
                prop_assert_eq!(number::parse_u32(&text), Ok(v));
                prop_assert!(number::is_spec_number(&text));
            }
        }
    }
}
