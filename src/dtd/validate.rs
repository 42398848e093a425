//! Streaming, non-recursive validation of one XML document against a [`Dtd`].

use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::errors::Error as XmlError;
use quick_xml::events::{BytesStart, Event};

use super::model::render_list;
use super::names::{is_name, is_xml_char, is_xml_space};
use super::{
    AttrDefault, AttrType, Content, Dtd, MAX_VIOLATIONS, ValidateOptions, Violation,
    expand_attr_value, resolve_reference,
};

/// How many children of an element are remembered for messages.
const SHOWN_CHILDREN: usize = 8;
/// Paths deeper than this are shortened in the middle.
const MAX_PATH_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Below an undeclared element inside lax `ANY`: nothing is checked.
    Unchecked,
    /// `ANY` content.
    Any,
    /// An undeclared (reported) element: its children are validated on their own.
    Unknown,
    Empty,
    Mixed,
    Children,
}

struct Frame {
    sym: u32,
    /// 1-based index among same-named siblings.
    index: u32,
    offset: usize,
    mode: Mode,
    states: Vec<u32>,
    failed: bool,
    children: Vec<u32>,
    child_count: usize,
    siblings: Vec<(u32, u32)>,
}

struct Validator<'d, 's> {
    dtd: &'d Dtd,
    opts: &'d ValidateOptions,
    src: &'s str,
    /// Offset of the parsed body within `src` (a byte order mark is skipped).
    base: usize,
    line_starts: Vec<usize>,
    col_cache: (usize, usize, usize),
    extra_names: Vec<String>,
    extra_index: HashMap<String, u32>,
    stack: Vec<Frame>,
    open: HashMap<u32, usize>,
    ids: HashMap<String, usize>,
    root_seen: bool,
    out: Vec<Violation>,
    stopped: bool,
}

pub(crate) fn validate(dtd: &Dtd, xml: &str, opts: &ValidateOptions) -> Vec<Violation> {
    let base = if xml.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let mut line_starts = vec![0];
    line_starts.extend(
        xml.bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'\n')
            .map(|(i, _)| i + 1),
    );
    let mut v = Validator {
        dtd,
        opts,
        src: xml,
        base,
        line_starts,
        col_cache: (usize::MAX, 0, 0),
        extra_names: Vec::new(),
        extra_index: HashMap::new(),
        stack: Vec::new(),
        open: HashMap::new(),
        ids: HashMap::new(),
        root_seen: false,
        out: Vec::new(),
        stopped: false,
    };
    v.run(&xml[base..]);
    v.out
}

fn is_blank(s: &str) -> bool {
    s.chars().all(is_xml_space)
}

impl<'d, 's> Validator<'d, 's> {
    fn run(&mut self, body: &'s str) {
        let mut reader = Reader::from_str(body);
        {
            let cfg = reader.config_mut();
            cfg.check_end_names = false;
            cfg.allow_unmatched_ends = true;
            cfg.check_comments = true;
            cfg.expand_empty_elements = false;
            cfg.trim_text(false);
        }
        loop {
            if self.stopped {
                return;
            }
            let before = self.base + reader.buffer_position() as usize;
            match reader.read_event() {
                Err(e) => {
                    let at = self.base + reader.error_position() as usize;
                    let recoverable = matches!(e, XmlError::IllFormed(_));
                    self.report_wf(at, format!("not well-formed: {e}"));
                    let after = self.base + reader.buffer_position() as usize;
                    if !recoverable || after <= before {
                        return;
                    }
                }
                Ok(Event::Eof) => break,
                Ok(Event::Start(e)) => self.start(&e, before, body),
                Ok(Event::Empty(e)) => {
                    self.start(&e, before, body);
                    self.close_top();
                }
                Ok(Event::End(e)) => self.end_tag(e.name().as_ref(), before),
                Ok(Event::Text(t)) => self.text(&t, before, false),
                Ok(Event::CData(t)) => self.text(&t, before, true),
                Ok(Event::GeneralRef(r)) => self.reference(&r, before),
                Ok(Event::Decl(_)) => {
                    if before != self.base {
                        self.report_wf(
                            before,
                            "XML declaration is only allowed at the very start of the document"
                                .into(),
                        );
                    }
                }
                Ok(Event::Comment(_) | Event::PI(_)) => self.content_text(before, false, true),
                Ok(Event::DocType(_)) => {}
            }
        }
        let end = self.src.len();
        if let Some((sym, offset)) = self.stack.last().map(|t| (t.sym, t.offset)) {
            let (line, _) = self.line_col(offset);
            let msg = format!(
                "not well-formed: document ended with {} unclosed element(s); innermost <{}> opened at line {line}",
                self.stack.len(),
                self.name(sym)
            );
            self.report(end, msg);
        } else if !self.root_seen {
            self.report_wf(end, "not well-formed: no root element".into());
        }
    }

    // ----- names, positions, reporting -------------------------------------------------

    fn name(&self, sym: u32) -> &str {
        let n = self.dtd.names.len();
        let i = sym as usize;
        if i < n {
            &self.dtd.names[i]
        } else {
            self.extra_names.get(i - n).map_or("?", String::as_str)
        }
    }

    fn lookup(&self, name: &str) -> Option<u32> {
        self.dtd
            .index
            .get(name)
            .or_else(|| self.extra_index.get(name))
            .copied()
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(s) = self.lookup(name) {
            return s;
        }
        let s = (self.dtd.names.len() + self.extra_names.len()) as u32;
        self.extra_names.push(name.to_string());
        self.extra_index.insert(name.to_string(), s);
        s
    }

    fn line_col(&mut self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let line_start = self.line_starts[line - 1];
        let (c_line, c_off, c_col) = self.col_cache;
        let col = if c_line == line && c_off <= offset {
            c_col + count_chars(self.src, c_off, offset)
        } else {
            1 + count_chars(self.src, line_start, offset)
        };
        self.col_cache = (line, offset, col);
        (line, col)
    }

    fn path(&self) -> String {
        let part = |f: &Frame| {
            if f.index > 1 {
                format!("{}[{}]", self.name(f.sym), f.index)
            } else {
                self.name(f.sym).to_string()
            }
        };
        let n = self.stack.len();
        let parts: Vec<String> = if n > MAX_PATH_DEPTH {
            let head = self.stack[..4].iter().map(part);
            let tail = self.stack[n - (MAX_PATH_DEPTH - 5)..].iter().map(part);
            head.chain(std::iter::once(format!(
                "...({} levels)...",
                n - MAX_PATH_DEPTH + 1
            )))
            .chain(tail)
            .collect()
        } else {
            self.stack.iter().map(part).collect()
        };
        parts.join("/")
    }

    fn report(&mut self, offset: usize, message: String) {
        if self.stopped {
            return;
        }
        let (line, column) = self.line_col(offset);
        if self.out.len() + 1 >= MAX_VIOLATIONS {
            self.out.push(Violation {
                line,
                column,
                path: self.path(),
                message: format!("too many violations; stopped after {}", self.out.len()),
            });
            self.stopped = true;
            return;
        }
        let path = self.path();
        self.out.push(Violation {
            line,
            column,
            path,
            message,
        });
    }

    fn report_wf(&mut self, offset: usize, message: String) {
        self.report(offset, message);
    }

    fn model_of(&self, sym: u32) -> String {
        match self.dtd.elements.get(sym as usize).and_then(Option::as_ref) {
            Some(decl) => self.dtd.render_content(&decl.content),
            None => "ANY".to_string(),
        }
    }

    fn render_children(&self, f: &Frame) -> String {
        let mut s: Vec<&str> = f.children.iter().map(|&c| self.name(c)).collect();
        if f.child_count > f.children.len() {
            s.push("...");
        }
        format!("({})", s.join(", "))
    }

    // ----- events -----------------------------------------------------------------------

    fn start(&mut self, e: &BytesStart<'_>, offset: usize, body: &str) {
        let name = e.name();
        let name = name.as_ref();
        if !is_name(name) {
            self.report_wf(
                offset,
                format!("not well-formed: invalid element name \"{name}\""),
            );
        }
        let sym = self.intern(name);
        let strict = self.opts.strict_any;

        // Where this element sits, and what its parent says about it.
        let mut index = 1;
        let mut parent_mode = None;
        if let Some(parent) = self.stack.last_mut() {
            match parent.siblings.iter_mut().find(|(s, _)| *s == sym) {
                Some((_, c)) => {
                    *c += 1;
                    index = *c;
                }
                None => parent.siblings.push((sym, 1)),
            }
            if parent.children.len() < SHOWN_CHILDREN {
                parent.children.push(sym);
            }
            parent.child_count += 1;
            parent_mode = Some(parent.mode);
        } else if self.root_seen {
            self.report_wf(
                offset,
                format!("not well-formed: extra content after the root element: <{name}>"),
            );
        } else {
            self.root_seen = true;
            if let Some(root) = &self.opts.root
                && root != name
            {
                let msg = format!("root element is <{name}>, expected <{root}>");
                self.report(offset, msg);
            }
        }

        let decl = self.dtd.elements.get(sym as usize).and_then(Option::as_ref);
        let mode = match (parent_mode, decl) {
            (Some(Mode::Unchecked), _) => Mode::Unchecked,
            (_, Some(d)) => match d.content {
                Content::Empty => Mode::Empty,
                Content::Any => Mode::Any,
                Content::Mixed(_) => Mode::Mixed,
                Content::Children(..) => Mode::Children,
            },
            (Some(Mode::Any), None) if !strict => Mode::Unchecked,
            (_, None) => Mode::Unknown,
        };

        // Check the parent's content model before pushing (messages name the child's path).
        let parent_msg = self.check_child(sym, name);
        self.stack.push(Frame {
            sym,
            index,
            offset,
            mode,
            states: vec![0],
            failed: false,
            children: Vec::new(),
            child_count: 0,
            siblings: Vec::new(),
        });
        *self.open.entry(sym).or_insert(0) += 1;
        if let Some(msg) = parent_msg {
            self.report(offset, msg);
        }
        if mode == Mode::Unknown {
            self.report(
                offset,
                format!("element <{name}> is not declared in the DTD"),
            );
        }
        self.attributes(
            e,
            sym,
            offset,
            body,
            decl.is_some() && mode != Mode::Unchecked,
        );
    }

    /// Feeds child `sym` to the current element's content model.
    fn check_child(&mut self, sym: u32, name: &str) -> Option<String> {
        let dtd = self.dtd;
        let parent = self.stack.last()?;
        let psym = parent.sym;
        let pname = self.name(psym).to_string();
        let content = dtd
            .elements
            .get(psym as usize)
            .and_then(Option::as_ref)
            .map(|d| &d.content);
        match (parent.mode, content) {
            (Mode::Empty, _) if !parent.failed => {
                self.stack.last_mut()?.failed = true;
                Some(format!(
                    "element <{name}> not allowed: <{pname}> is declared EMPTY"
                ))
            }
            (Mode::Mixed, Some(Content::Mixed(allowed))) if !allowed.contains(&sym) => {
                if allowed.is_empty() {
                    if parent.failed {
                        return None;
                    }
                    self.stack.last_mut()?.failed = true;
                    Some(format!(
                        "element <{name}> not allowed: <{pname}> is declared (#PCDATA), text only"
                    ))
                } else {
                    Some(format!(
                        "element <{name}> not allowed in <{pname}>; expected text or {}",
                        self.model_of(psym)
                    ))
                }
            }
            (Mode::Children, Some(Content::Children(_, automaton))) if !parent.failed => {
                let frame = self.stack.last_mut()?;
                if automaton.step(&mut frame.states, sym) {
                    return None;
                }
                frame.failed = true;
                let expected = automaton.expected(&frame.states);
                let accepts = automaton.accepts(&frame.states);
                let frame = self.stack.last()?;
                let found = self.render_children(frame);
                let list = match expected.len() {
                    0 => String::new(),
                    1 => render_list(&expected, &dtd.names, 1, false),
                    _ => format!(
                        "one of {}",
                        render_list(&expected, &dtd.names, SHOWN_CHILDREN, false)
                    ),
                };
                let next = match (expected.is_empty(), accepts) {
                    (true, _) => format!("end of <{pname}>"),
                    (false, false) => list,
                    (false, true) => format!("{list} or end of <{pname}>"),
                };
                Some(format!(
                    "element <{name}> not expected here in <{pname}>; expected {next}; content model {}; children {found}",
                    self.model_of(psym)
                ))
            }
            _ => None,
        }
    }

    fn attributes(&mut self, e: &BytesStart<'_>, sym: u32, offset: usize, body: &str, check: bool) {
        let dtd = self.dtd;
        let decls: &[super::AttrDecl] = if check {
            &dtd.attlists[sym as usize]
        } else {
            &[]
        };
        let mut seen = vec![false; decls.len()];
        let ename = e.name();
        let ename = ename.as_ref();
        for attr in e.attributes().with_checks(true) {
            let attr = match attr {
                Ok(a) => a,
                Err(err) => {
                    self.report_wf(
                        offset,
                        format!("not well-formed: bad attributes in <{ename}>: {err}"),
                    );
                    break;
                }
            };
            let key = attr.key.as_ref();
            let raw: &str = &attr.value;
            let at = offset_within(body, raw).map_or(offset, |o| self.base + o);
            if !is_name(key) {
                self.report_wf(
                    at,
                    format!("not well-formed: invalid attribute name \"{key}\""),
                );
            }
            let decl_index = decls.iter().position(|d| d.name == key);
            let value = match expand_attr_value(raw) {
                Ok(v) => v,
                Err(msg) => {
                    self.report_wf(at, format!("not well-formed: attribute {key}: {msg}"));
                    continue;
                }
            };
            if !check {
                continue;
            }
            let Some(i) = decl_index else {
                let declared: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
                let expected = if declared.is_empty() {
                    "it has no attributes".to_string()
                } else {
                    format!("declared: {}", declared.join(", "))
                };
                self.report(
                    at,
                    format!("attribute {key} is not declared for <{ename}> ({expected})"),
                );
                continue;
            };
            seen[i] = true;
            let d = &decls[i];
            let problem = match &d.ty {
                AttrType::Cdata => None,
                AttrType::Nmtoken => (!super::names::is_nmtoken(&value))
                    .then(|| format!("attribute {key}=\"{value}\" is not a valid NMTOKEN")),
                AttrType::Id => {
                    if !is_name(&value) {
                        Some(format!(
                            "attribute {key}=\"{value}\" is not a valid ID (must be an XML name)"
                        ))
                    } else if let Some(&first) = self.ids.get(&value) {
                        Some(format!("ID \"{value}\" is already used (line {first})"))
                    } else {
                        let (line, _) = self.line_col(at);
                        self.ids.insert(value.clone(), line);
                        None
                    }
                }
                AttrType::Enum(tokens) => (!tokens.contains(&value)).then(|| {
                    format!(
                        "attribute {key}=\"{value}\" is not one of ({})",
                        tokens.join(" | ")
                    )
                }),
            };
            let problem = problem.or_else(|| match &d.default {
                AttrDefault::Fixed(fixed) if *fixed != value => Some(format!(
                    "attribute {key}=\"{value}\" must have the #FIXED value \"{fixed}\""
                )),
                _ => None,
            });
            if let Some(msg) = problem {
                self.report(at, msg);
            }
        }
        for (d, seen) in decls.iter().zip(seen) {
            if !seen && matches!(d.default, AttrDefault::Required) {
                self.report(
                    offset,
                    format!("required attribute {} missing on <{ename}>", d.name),
                );
            }
        }
    }

    fn end_tag(&mut self, name: &str, offset: usize) {
        let Some(top) = self.stack.last() else {
            self.report_wf(
                offset,
                format!("not well-formed: end tag </{name}> without a matching start tag"),
            );
            return;
        };
        let top_name = self.name(top.sym).to_string();
        if top_name == name {
            self.close_top();
            return;
        }
        let open = self
            .lookup(name)
            .and_then(|s| self.open.get(&s).copied())
            .unwrap_or(0);
        if open == 0 {
            self.report_wf(
                offset,
                format!("not well-formed: end tag </{name}> does not match start tag <{top_name}>"),
            );
            return;
        }
        self.report_wf(
            offset,
            format!("not well-formed: end tag </{name}> does not match start tag <{top_name}> (closing the elements in between)"),
        );
        while let Some(top) = self.stack.last() {
            if self.name(top.sym) == name {
                self.close_top();
                return;
            }
            self.pop();
        }
    }

    fn pop(&mut self) -> Option<Frame> {
        let f = self.stack.pop()?;
        if let Some(c) = self.open.get_mut(&f.sym) {
            *c = c.saturating_sub(1);
        }
        Some(f)
    }

    /// Ends the current element, checking that its content is complete.
    fn close_top(&mut self) {
        let dtd = self.dtd;
        let Some(top) = self.stack.last() else { return };
        if top.mode == Mode::Children
            && !top.failed
            && let Some(Content::Children(_, automaton)) = dtd
                .elements
                .get(top.sym as usize)
                .and_then(Option::as_ref)
                .map(|d| &d.content)
            && !automaton.accepts(&top.states)
        {
            let pname = self.name(top.sym).to_string();
            let expected = automaton.expected(&top.states);
            let found = self.render_children(top);
            let model = self.model_of(top.sym);
            let msg = if expected.len() == 1 {
                format!(
                    "element {} missing in <{pname}>; expected {model}; children {found}",
                    render_list(&expected, &dtd.names, 1, false)
                )
            } else {
                format!(
                    "content of <{pname}> is incomplete; expected one of {} next; content model {model}; children {found}",
                    render_list(&expected, &dtd.names, SHOWN_CHILDREN, false)
                )
            };
            let offset = top.offset;
            self.report(offset, msg);
        }
        self.pop();
    }

    fn text(&mut self, t: &str, offset: usize, cdata: bool) {
        if let Some(bad) = t.chars().find(|&c| !is_xml_char(c)) {
            self.report_wf(
                offset,
                format!(
                    "not well-formed: character U+{:04X} is not allowed in XML",
                    bad as u32
                ),
            );
        }
        let lead = if cdata {
            0
        } else {
            t.len() - t.trim_start_matches(is_xml_space).len()
        };
        let at = if lead < t.len() {
            offset + lead
        } else {
            offset
        };
        self.content_text(at, cdata || !is_blank(t), cdata || !t.is_empty());
    }

    /// Applies the content rules to character data (or a comment or PI, which
    /// are neither `significant` text nor allowed in EMPTY) at `offset`.
    fn content_text(&mut self, offset: usize, significant: bool, any: bool) {
        let Some(top) = self.stack.last() else {
            if significant {
                self.report_wf(
                    offset,
                    "not well-formed: text outside the root element".into(),
                );
            }
            return;
        };
        if top.failed && matches!(top.mode, Mode::Empty | Mode::Children) {
            return;
        }
        let name = self.name(top.sym).to_string();
        let msg = match top.mode {
            Mode::Empty if any => format!("<{name}> is declared EMPTY but has content"),
            Mode::Children if significant => format!(
                "text not allowed in <{name}>: element-only content {}",
                self.model_of(top.sym)
            ),
            _ => return,
        };
        if let Some(top) = self.stack.last_mut() {
            top.failed = true;
        }
        self.report(offset, msg);
    }

    fn reference(&mut self, r: &str, offset: usize) {
        let significant = match resolve_reference(r) {
            Ok(c) => !is_xml_space(c),
            Err(msg) => {
                self.report_wf(offset, format!("not well-formed: {msg}"));
                true
            }
        };
        self.content_text(offset, significant, true);
    }
}

/// Number of characters in `src[from..to]` (0 if the range is not on char boundaries).
fn count_chars(src: &str, from: usize, to: usize) -> usize {
    src.get(from..to)
        .map_or(to.saturating_sub(from), |s| s.chars().count())
}

/// Byte offset of `part` inside `whole`, when `part` borrows from it.
fn offset_within(whole: &str, part: &str) -> Option<usize> {
    let start = whole.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    (p >= start && p + part.len() <= start + whole.len()).then(|| p - start)
}
