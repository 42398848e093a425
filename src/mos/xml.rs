//! A small element tree over a borrowed XML document, with source positions, and an
//! escaping writer.
//!
//! The tree is an arena (one `Vec` of nodes for the whole document) so a 20,000-item
//! running order parses without one allocation per element. Every element remembers
//! the byte span of its inner content, so opaque content (`mosPayload`, `mosAbstract`,
//! `description`, `p`) can be kept exactly as it was received.

use std::borrow::Cow;
use std::ops::Range;

use quick_xml::events::Event;
use quick_xml::reader::Reader;

const NONE: u32 = u32::MAX;

/// A well-formedness problem, with the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail} (line {line})")]
pub struct XmlError {
    /// Byte offset in the document.
    pub offset: usize,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub detail: String,
}

/// What a node is. Plain data (no `Drop`), so dropping a document frees three vectors
/// instead of visiting every node.
#[derive(Debug, Clone, Copy)]
enum Kind<'a> {
    Element {
        name: &'a str,
        attrs: (u32, u32),
    },
    /// Text exactly as in the source (no entity, no CR to normalise).
    Text(&'a str),
    /// Text that had to be built: the index of its string in [`Document::owned`].
    OwnedText(u32),
}

#[derive(Debug, Clone)]
struct Node<'a> {
    kind: Kind<'a>,
    first_child: u32,
    next_sibling: u32,
    /// Byte offset of the start tag (elements) or of the text.
    start: u32,
    /// Byte span of the content between the start and end tags.
    inner: Range<u32>,
}

/// An attribute: name and unescaped value.
#[derive(Debug)]
pub struct Attr<'a> {
    /// The attribute name as written.
    pub name: &'a str,
    /// The unescaped value.
    pub value: Cow<'a, str>,
}

/// A parsed document: the root element and everything below it.
#[derive(Debug)]
pub struct Document<'a> {
    src: &'a str,
    nodes: Vec<Node<'a>>,
    attrs: Vec<Attr<'a>>,
    /// Texts that are not slices of the source (entities resolved, pieces merged).
    owned: Vec<String>,
}

impl<'a> Document<'a> {
    /// Parses one XML document with a single root element. Comments, processing
    /// instructions and an XML declaration are skipped; CDATA becomes text.
    pub fn parse(src: &'a str) -> Result<Self, XmlError> {
        Builder::new(src).run()
    }

    /// The root element.
    pub fn root(&self) -> El<'_, 'a> {
        El { doc: self, idx: 0 }
    }

    /// The source text.
    pub fn source(&self) -> &'a str {
        self.src
    }

    /// 1-based line number of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        line_of(self.src, offset)
    }
}

/// 1-based line number of a byte offset in `src`.
pub fn line_of(src: &str, offset: usize) -> usize {
    let end = offset.min(src.len());
    1 + src.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// A reference to one element of a [`Document`].
#[derive(Clone, Copy)]
pub struct El<'d, 'a> {
    doc: &'d Document<'a>,
    idx: u32,
}

impl std::fmt::Debug for El<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{}>", self.name())
    }
}

impl<'d, 'a> El<'d, 'a> {
    fn node(&self) -> &'d Node<'a> {
        &self.doc.nodes[self.idx as usize]
    }

    /// The element name as written.
    pub fn name(&self) -> &'a str {
        match self.node().kind {
            Kind::Element { name, .. } => name,
            Kind::Text(_) | Kind::OwnedText(_) => "",
        }
    }

    /// The element's attributes.
    pub fn attrs(&self) -> &'d [Attr<'a>] {
        match &self.node().kind {
            Kind::Element { attrs, .. } => &self.doc.attrs[attrs.0 as usize..attrs.1 as usize],
            Kind::Text(_) | Kind::OwnedText(_) => &[],
        }
    }

    /// The value of an attribute, if present.
    pub fn attr(&self, name: &str) -> Option<&'d str> {
        self.attrs()
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_ref())
    }

    /// Child nodes in document order.
    pub fn nodes(&self) -> Nodes<'d, 'a> {
        Nodes {
            doc: self.doc,
            next: self.node().first_child,
        }
    }

    /// Child elements in document order.
    pub fn children(&self) -> impl Iterator<Item = El<'d, 'a>> + 'd {
        self.nodes().filter_map(|n| match n {
            XmlNode::Element(e) => Some(e),
            XmlNode::Text(_) => None,
        })
    }

    /// The first child element with this name.
    pub fn child(&self, name: &str) -> Option<El<'d, 'a>> {
        self.children().find(|c| c.name() == name)
    }

    /// All child elements with this name, in order.
    pub fn children_named<'n>(&self, name: &'n str) -> impl Iterator<Item = El<'d, 'a>> + 'n
    where
        'd: 'n,
    {
        self.children().filter(move |c| c.name() == name)
    }

    /// The element's text: its direct text children joined (CDATA included, entities
    /// resolved). Child elements are not included.
    pub fn text(&self) -> Cow<'d, str> {
        let mut out: Option<Cow<'d, str>> = None;
        for n in self.nodes() {
            if let XmlNode::Text(t) = n {
                out = Some(match out {
                    None => Cow::Borrowed(t),
                    Some(prev) => Cow::Owned(prev.into_owned() + t),
                });
            }
        }
        out.unwrap_or(Cow::Borrowed(""))
    }

    /// Whether the element has child elements.
    pub fn has_children(&self) -> bool {
        self.children().next().is_some()
    }

    /// The element's content exactly as it appears in the source (markup, entities and
    /// whitespace untouched).
    pub fn raw_inner(&self) -> &'a str {
        let r = &self.node().inner;
        self.doc
            .src
            .get(r.start as usize..r.end as usize)
            .unwrap_or("")
    }

    /// Byte offset of the start tag.
    pub fn offset(&self) -> usize {
        self.node().start as usize
    }

    /// 1-based line of the start tag.
    pub fn line(&self) -> usize {
        self.doc.line_of(self.offset())
    }
}

/// A child node: an element or a piece of text.
#[derive(Debug, Clone, Copy)]
pub enum XmlNode<'d, 'a> {
    /// A child element.
    Element(El<'d, 'a>),
    /// Text (entities resolved, CDATA included).
    Text(&'d str),
}

/// Iterator over the child nodes of an element.
pub struct Nodes<'d, 'a> {
    doc: &'d Document<'a>,
    next: u32,
}

impl<'d, 'a> Iterator for Nodes<'d, 'a> {
    type Item = XmlNode<'d, 'a>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.next == NONE {
            return None;
        }
        let idx = self.next;
        let node = &self.doc.nodes[idx as usize];
        self.next = node.next_sibling;
        Some(match node.kind {
            Kind::Element { .. } => XmlNode::Element(El { doc: self.doc, idx }),
            Kind::Text(t) => XmlNode::Text(t),
            Kind::OwnedText(i) => XmlNode::Text(&self.doc.owned[i as usize]),
        })
    }
}

struct Builder<'a> {
    src: &'a str,
    nodes: Vec<Node<'a>>,
    attrs: Vec<Attr<'a>>,
    owned: Vec<String>,
    /// Open elements, with the index of their last child.
    stack: Vec<(u32, u32)>,
    root_closed: bool,
}

impl<'a> Builder<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            nodes: Vec::with_capacity(node_estimate(src)),
            attrs: Vec::new(),
            owned: Vec::new(),
            stack: Vec::with_capacity(16),
            root_closed: false,
        }
    }

    fn err(&self, offset: usize, detail: impl Into<String>) -> XmlError {
        XmlError {
            offset,
            line: line_of(self.src, offset),
            detail: detail.into(),
        }
    }

    fn push(&mut self, kind: Kind<'a>, start: usize) -> Result<u32, XmlError> {
        let idx = self.nodes.len() as u32;
        let is_text = !matches!(kind, Kind::Element { .. });
        match self.stack.last_mut() {
            None if is_text => return Ok(NONE),
            None if self.root_closed || !self.nodes.is_empty() => {
                return Err(self.err(start, "more than one root element"));
            }
            None => {}
            Some((parent, last)) => {
                if *last == NONE {
                    self.nodes[*parent as usize].first_child = idx;
                } else {
                    // Merge adjacent text pieces (text, entity, CDATA) into one node.
                    let prev = &mut self.nodes[*last as usize];
                    // The previous sibling's text as an owned string (made one if needed).
                    let slot = match (is_text, prev.kind) {
                        (true, Kind::OwnedText(i)) => Some(i as usize),
                        (true, Kind::Text(t)) => {
                            prev.kind = Kind::OwnedText(self.owned.len() as u32);
                            self.owned.push(t.to_owned());
                            Some(self.owned.len() - 1)
                        }
                        _ => None,
                    };
                    if let Some(slot) = slot {
                        let more = match kind {
                            Kind::Text(t) => t.to_owned(),
                            Kind::OwnedText(i) => std::mem::take(&mut self.owned[i as usize]),
                            Kind::Element { .. } => String::new(),
                        };
                        self.owned[slot].push_str(&more);
                        return Ok(*last);
                    }
                    self.nodes[*last as usize].next_sibling = idx;
                }
                *last = idx;
            }
        }
        let s = start as u32;
        self.nodes.push(Node {
            kind,
            first_child: NONE,
            next_sibling: NONE,
            start: s,
            inner: s..s,
        });
        Ok(idx)
    }

    fn text(&mut self, text: Cow<'a, str>, start: usize) -> Result<(), XmlError> {
        if self.stack.is_empty() {
            if text.trim().is_empty() {
                return Ok(());
            }
            return Err(self.err(start, "text outside the root element"));
        }
        if !text.is_empty() {
            let kind = match text {
                Cow::Borrowed(t) => Kind::Text(t),
                Cow::Owned(t) => {
                    self.owned.push(t);
                    Kind::OwnedText(self.owned.len() as u32 - 1)
                }
            };
            self.push(kind, start)?;
        }
        Ok(())
    }

    /// `bytes` as a slice of the source, when they are one (quick-xml hands out borrowed
    /// slices of a `&str` input).
    fn in_src(&self, bytes: &str) -> Option<&'a str> {
        let base = self.src.as_ptr() as usize;
        let off = (bytes.as_ptr() as usize).checked_sub(base)?;
        self.src.get(off..off.checked_add(bytes.len())?)
    }

    fn start_element(
        &mut self,
        e: &quick_xml::events::BytesStart<'a>,
        start: usize,
        end: usize,
        empty: bool,
    ) -> Result<(), XmlError> {
        let name = match self.in_src(e.name().as_ref()) {
            Some(n) => n,
            None => element_name(self.src.get(start..end).unwrap_or("")),
        };
        let first_attr = self.attrs.len() as u32;
        // Most MOS elements have no attributes: skip the attribute parser for them.
        let has_attrs = !e
            .attributes_raw()
            .bytes()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'/'));
        for a in e.attributes().take(if has_attrs { usize::MAX } else { 0 }) {
            let a =
                a.map_err(|err| self.err(start, format!("bad attribute in <{name}>: {err}")))?;
            let key: &'a str = self.in_src(a.key.as_ref()).unwrap_or("");
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|err| {
                    self.err(start, format!("bad attribute value in <{name}>: {err}"))
                })?;
            let value = match value {
                Cow::Borrowed(v) => Cow::Owned(v.to_string()),
                Cow::Owned(v) => Cow::Owned(v),
            };
            self.attrs.push(Attr { name: key, value });
        }
        let attrs = (first_attr, self.attrs.len() as u32);
        let idx = self.push(Kind::Element { name, attrs }, start)?;
        let e32 = end as u32;
        self.nodes[idx as usize].inner = e32..e32;
        if empty {
            if self.stack.is_empty() {
                self.root_closed = true;
            }
        } else {
            self.stack.push((idx, NONE));
        }
        Ok(())
    }

    fn run(mut self) -> Result<Document<'a>, XmlError> {
        let has_cr = memchr::memchr(b'\r', self.src.as_bytes()).is_some();
        let mut reader = Reader::from_str(self.src);
        let cfg = reader.config_mut();
        // End tags are matched against the open element here, by name slices, which is
        // cheaper than quick-xml's own check (it copies every start tag's name).
        cfg.check_end_names = false;
        cfg.trim_text(false);
        loop {
            let before = reader.buffer_position() as usize;
            let event = reader.read_event().map_err(|e| {
                let at = reader.error_position() as usize;
                self.err(at, format!("malformed XML: {e}"))
            })?;
            let after = reader.buffer_position() as usize;
            match event {
                Event::Start(e) => {
                    if self.root_closed && self.stack.is_empty() {
                        return Err(self.err(before, "more than one root element"));
                    }
                    self.start_element(&e, before, after, false)?
                }
                Event::Empty(e) => {
                    if self.root_closed && self.stack.is_empty() {
                        return Err(self.err(before, "more than one root element"));
                    }
                    self.start_element(&e, before, after, true)?
                }
                Event::End(e) => {
                    let Some((idx, _)) = self.stack.pop() else {
                        return Err(self.err(before, "end tag without a start tag"));
                    };
                    if let Kind::Element { name, .. } = self.nodes[idx as usize].kind
                        && name != e.name().as_ref()
                    {
                        let found = e.name().as_ref().to_owned();
                        return Err(self.err(
                            before,
                            format!("malformed XML: end tag </{found}> does not match <{name}>"),
                        ));
                    }
                    self.nodes[idx as usize].inner.end = before as u32;
                    if self.stack.is_empty() {
                        self.root_closed = true;
                    }
                }
                Event::Text(t) => {
                    // Line ends need normalising only where there is a CR: a document
                    // without one (the usual case) hands its text slices through as they are.
                    let text = if has_cr {
                        t.xml10_content()
                    } else {
                        t.into_inner()
                    };
                    self.text(text, before)?;
                }
                Event::CData(c) => {
                    let text = c.xml10_content();
                    self.text(text, before)?;
                }
                Event::GeneralRef(r) => {
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        Ok(None) => match r.as_ref() {
                            "amp" => "&".into(),
                            "lt" => "<".into(),
                            "gt" => ">".into(),
                            "quot" => "\"".into(),
                            "apos" => "'".into(),
                            other => {
                                return Err(self.err(before, format!("unknown entity &{other};")));
                            }
                        },
                        Err(e) => {
                            return Err(self.err(before, format!("bad character reference: {e}")));
                        }
                    };
                    if self.stack.is_empty() {
                        return Err(self.err(before, "entity outside the root element"));
                    }
                    self.text(Cow::Owned(resolved), before)?;
                }
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) | Event::DocType(_) => {}
                Event::Eof => break,
            }
        }
        if let Some((idx, _)) = self.stack.last() {
            let name = match self.nodes[*idx as usize].kind {
                Kind::Element { name, .. } => name,
                Kind::Text(_) | Kind::OwnedText(_) => "",
            };
            return Err(self.err(self.src.len(), format!("element <{name}> is not closed")));
        }
        if self.nodes.is_empty() {
            return Err(self.err(0, "no root element"));
        }
        Ok(Document {
            src: self.src,
            nodes: self.nodes,
            attrs: self.attrs,
            owned: self.owned,
        })
    }
}

/// How many nodes to reserve for `src`: one per `<`. Every element starts with one, and in
/// typical documents (leaf elements holding text) so does every text node's end tag, so the
/// arena rarely grows (a growth copies all nodes so far). Counting is a fast byte scan.
fn node_estimate(src: &str) -> usize {
    memchr::memchr_iter(b'<', src.as_bytes()).count() + 1
}

/// The element name from the raw start tag text (`<name attr="...">`).
fn element_name(raw: &str) -> &str {
    let s = raw.strip_prefix('<').unwrap_or(raw);
    // The name ends at whitespace, `>` or `/`. ASCII stops are found bytewise, so slicing there
    // stays on a char boundary. (`char::is_whitespace` also stops at non-ASCII spaces
    // such as U+00A0 or U+3000.)
    let ascii_end = s
        .bytes()
        .position(|b| b.is_ascii_whitespace() || b == 0x0B || b == b'>' || b == b'/')
        .unwrap_or(s.len());
    let name = &s[..ascii_end];
    if name.is_ascii() {
        return name;
    }
    let end = name.find(|c: char| c.is_whitespace()).unwrap_or(name.len());
    &name[..end]
}

/// Escapes text for element content.
pub fn escape_text(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Escapes text for a double-quoted attribute value.
pub fn escape_attr(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Writes XML into a string: elements in the order the caller gives, text escaped.
#[derive(Debug, Default)]
pub struct XmlWriter {
    out: String,
}

impl XmlWriter {
    /// An empty writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            out: String::with_capacity(capacity),
        }
    }

    /// `<name>`
    pub fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
    }

    /// `<name a="v" ...>`
    pub fn open_with(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            self.out.push_str(&escape_attr(v));
            self.out.push('"');
        }
        self.out.push('>');
    }

    /// `</name>`
    pub fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// `<name/>`
    pub fn empty(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str("/>");
    }

    /// `<name>text</name>`, text escaped.
    pub fn leaf(&mut self, name: &str, text: &str) {
        self.open(name);
        self.out.push_str(&escape_text(text));
        self.close(name);
    }

    /// A leaf when the value is present.
    pub fn opt_leaf(&mut self, name: &str, text: Option<&str>) {
        if let Some(t) = text {
            self.leaf(name, t);
        }
    }

    /// `<name>raw</name>` with `raw` written unescaped (it is already XML).
    pub fn raw_leaf(&mut self, name: &str, raw: &str) {
        self.open(name);
        self.out.push_str(raw);
        self.close(name);
    }

    /// Escaped text.
    pub fn text(&mut self, text: &str) {
        self.out.push_str(&escape_text(text));
    }

    /// Raw XML, unescaped.
    pub fn raw(&mut self, raw: &str) {
        self.out.push_str(raw);
    }

    /// The written XML.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_keeps_order_spans_and_text() {
        let src =
            "<mos><a x=\"1 &amp; 2\">t&#160;u<![CDATA[<v>]]></a><b/><c><d>e</d> tail</c></mos>";
        let doc = Document::parse(src).unwrap();
        let root = doc.root();
        assert_eq!(root.name(), "mos");
        let names: Vec<_> = root.children().map(|c| c.name()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let a = root.child("a").unwrap();
        assert_eq!(a.attr("x"), Some("1 & 2"));
        assert_eq!(a.text(), "t\u{a0}u<v>");
        assert_eq!(a.raw_inner(), "t&#160;u<![CDATA[<v>]]>");
        assert_eq!(root.child("b").unwrap().raw_inner(), "");
        assert_eq!(root.child("c").unwrap().raw_inner(), "<d>e</d> tail");
    }

    #[test]
    fn malformed_documents_are_errors_with_lines() {
        for bad in [
            "<mos><a></b></mos>",
            "<mos>\n<a>",
            "<mos></mos><mos></mos>",
            "<mos>&nbsp;</mos>",
            "text<mos/>",
            "",
        ] {
            assert!(Document::parse(bad).is_err(), "{bad:?}");
        }
        let e = Document::parse("<mos>\n\n<a></b></mos>").unwrap_err();
        assert_eq!(e.line, 3);
    }

    #[test]
    fn line_ends_are_normalised_and_mismatched_end_tags_named() {
        let doc = Document::parse("<mos><a>x\r\ny\rz</a><b>&amp;\r\n</b></mos>").unwrap();
        assert_eq!(doc.root().child("a").unwrap().text(), "x\ny\nz");
        assert_eq!(doc.root().child("b").unwrap().text(), "&\n");
        let e = Document::parse("<mos>\n<a>t</ab></mos>").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.detail.contains("</ab>") && e.detail.contains("<a>"),
            "{e}"
        );
    }

    #[test]
    fn text_pieces_merge_in_order() {
        let doc = Document::parse("<a>1&lt;2<![CDATA[&3]]>&#52;<b/>5&gt;</a>").unwrap();
        let texts: Vec<_> = doc
            .root()
            .nodes()
            .filter_map(|n| match n {
                XmlNode::Text(t) => Some(t.to_string()),
                XmlNode::Element(_) => None,
            })
            .collect();
        assert_eq!(texts, ["1<2&34", "5>"]);
        assert_eq!(doc.root().text(), "1<2&345>");
    }

    #[test]
    fn attributes_are_read_only_where_present() {
        let doc = Document::parse("<mos v=\"2.8\"><a /><b x='1' y=\"&lt;\"/></mos>").unwrap();
        assert_eq!(doc.root().attr("v"), Some("2.8"));
        assert!(doc.root().child("a").unwrap().attrs().is_empty());
        let b = doc.root().child("b").unwrap();
        assert_eq!((b.attr("x"), b.attr("y")), (Some("1"), Some("<")));
    }

    #[test]
    fn writer_escapes() {
        let mut w = XmlWriter::default();
        w.open_with("a", &[("k", "\"<&>")]);
        w.leaf("b", "x < y & z");
        w.close("a");
        assert_eq!(
            w.finish(),
            "<a k=\"&quot;&lt;&amp;&gt;\"><b>x &lt; y &amp; z</b></a>"
        );
    }
}
