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
    ///
    /// A document of [`SPLIT_MIN_BYTES`] or more is read in two parts at once, on this
    /// thread and a helper thread, when the machine has more than one core; the parts are
    /// joined into exactly the tree a single reading gives (see [`parse_in_two`]).
    pub fn parse(src: &'a str) -> Result<Self, XmlError> {
        if src.len() >= SPLIT_MIN_BYTES
            && let Some(doc) = parse_in_two(src)
        {
            return Ok(doc);
        }
        Builder::new(src).run()
    }

    /// Parses like [`Document::parse`], always in one part on this thread (for comparison
    /// in benchmarks).
    pub fn parse_in_one_part(src: &'a str) -> Result<Self, XmlError> {
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

/// Which part of the document a [`Builder`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// All of it: one root element, closed.
    Whole,
    /// From the start to a split point: elements may be left open.
    Head,
    /// From a split point to the end: it begins inside elements opened before it. Its
    /// nodes hang under a stand-in parent (node 0) until an end tag closes one of those
    /// elements ([`Segment`]).
    Tail,
}

/// A run of sibling nodes of a tail part, under an element opened in the head, and the end
/// tag that closed that element (`None` for the run at the end of the document).
#[derive(Debug)]
struct Segment {
    first: u32,
    last: u32,
    close: Option<(String, u32)>,
    /// A character or entity reference appears directly in the run (an error after the
    /// root, even when it resolves to white space).
    has_reference: bool,
}

/// What a builder made of its part.
struct Built<'a> {
    nodes: Vec<Node<'a>>,
    attrs: Vec<Attr<'a>>,
    owned: Vec<String>,
    /// Elements still open at the end, with their last child.
    stack: Vec<(u32, u32)>,
    /// Tail parts only.
    segments: Vec<Segment>,
}

struct Builder<'a> {
    src: &'a str,
    /// The byte range of `src` this builder reads.
    range: Range<usize>,
    part: Part,
    /// Whether the whole document has a CR (line ends to normalise).
    has_cr: bool,
    nodes: Vec<Node<'a>>,
    attrs: Vec<Attr<'a>>,
    owned: Vec<String>,
    /// Open elements, with the index of their last child.
    stack: Vec<(u32, u32)>,
    root_closed: bool,
    segments: Vec<Segment>,
    /// Tail parts: a reference was read directly under the stand-in parent in the current run.
    run_has_reference: bool,
}

impl<'a> Builder<'a> {
    fn new(src: &'a str) -> Self {
        let has_cr = memchr::memchr(b'\r', src.as_bytes()).is_some();
        Self::part(src, 0..src.len(), Part::Whole, has_cr)
    }

    fn part(src: &'a str, range: Range<usize>, part: Part, has_cr: bool) -> Self {
        let mut b = Self {
            src,
            nodes: Vec::with_capacity(node_estimate(&src[range.clone()])),
            range,
            part,
            has_cr,
            attrs: Vec::new(),
            owned: Vec::new(),
            stack: Vec::with_capacity(16),
            root_closed: false,
            segments: Vec::new(),
            run_has_reference: false,
        };
        if part == Part::Tail {
            // The stand-in parent of the nodes under elements opened before the split.
            b.nodes.push(Node {
                kind: Kind::Element {
                    name: "",
                    attrs: (0, 0),
                },
                first_child: NONE,
                next_sibling: NONE,
                start: 0,
                inner: 0..0,
            });
            b.stack.push((0, NONE));
        }
        b
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
        if name.is_empty() {
            // `< a>` or `<\n/>`: quick-xml reads a tag whose name is empty.
            return Err(self.err(start, "malformed XML: a tag without a name"));
        }
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
        let built = self.read()?;
        if let Some((idx, _)) = built.stack.last() {
            let name = match built.nodes[*idx as usize].kind {
                Kind::Element { name, .. } => name,
                Kind::Text(_) | Kind::OwnedText(_) => "",
            };
            return Err(self.err(self.src.len(), format!("element <{name}> is not closed")));
        }
        if built.nodes.is_empty() {
            return Err(self.err(0, "no root element"));
        }
        Ok(Document {
            src: self.src,
            nodes: built.nodes,
            attrs: built.attrs,
            owned: built.owned,
        })
    }

    /// Reads the builder's part into nodes.
    fn read(&mut self) -> Result<Built<'a>, XmlError> {
        let has_cr = self.has_cr;
        let base = self.range.start;
        let mut reader = Reader::from_str(&self.src[self.range.clone()]);
        let cfg = reader.config_mut();
        // End tags are matched against the open element here, by name slices, which is
        // cheaper than quick-xml's own check (it copies every start tag's name).
        cfg.check_end_names = false;
        // A tail begins inside elements it has not seen open.
        cfg.allow_unmatched_ends = self.part == Part::Tail;
        cfg.trim_text(false);
        loop {
            let before = base + reader.buffer_position() as usize;
            let event = reader.read_event().map_err(|e| {
                let at = base + reader.error_position() as usize;
                self.err(at, format!("malformed XML: {e}"))
            })?;
            let after = base + reader.buffer_position() as usize;
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
                    let Some((idx, last)) = self.stack.pop() else {
                        return Err(self.err(before, "end tag without a start tag"));
                    };
                    if self.part == Part::Tail && idx == 0 {
                        // Closes an element opened before the split: a run of siblings ends.
                        let first = std::mem::replace(&mut self.nodes[0].first_child, NONE);
                        self.segments.push(Segment {
                            first,
                            last,
                            close: Some((e.name().as_ref().to_owned(), before as u32)),
                            has_reference: std::mem::take(&mut self.run_has_reference),
                        });
                        self.stack.push((0, NONE));
                        continue;
                    }
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
                    if self.part == Part::Tail && self.stack.len() == 1 {
                        self.run_has_reference = true;
                    }
                    self.text(Cow::Owned(resolved), before)?;
                }
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) | Event::DocType(_) => {}
                Event::Eof => break,
            }
        }
        if self.part == Part::Tail {
            let (_, last) = self.stack.pop().unwrap_or((0, NONE));
            if !self.stack.is_empty() {
                // Elements opened in the tail and not closed: the document is not whole.
                return Err(self.err(self.src.len(), "element is not closed"));
            }
            let first = std::mem::replace(&mut self.nodes[0].first_child, NONE);
            self.segments.push(Segment {
                first,
                last,
                close: None,
                has_reference: std::mem::take(&mut self.run_has_reference),
            });
        }
        Ok(Built {
            nodes: std::mem::take(&mut self.nodes),
            attrs: std::mem::take(&mut self.attrs),
            owned: std::mem::take(&mut self.owned),
            stack: std::mem::take(&mut self.stack),
            segments: std::mem::take(&mut self.segments),
        })
    }
}

/// Documents this long or longer are read in two parts at once (a running order of 50
/// stories of 10 items is about 100 KB; a heartbeat is 300 bytes).
pub const SPLIT_MIN_BYTES: usize = 64 * 1024;

/// Share of the document read by the calling thread, in twentieths: a little more than
/// half, since the helper starts later (it has to be woken).
const HEAD_TWENTIETHS: usize = 11;

/// The helper threads for [`parse_in_two`]: one per core beyond the first, at most four;
/// none on a single core.
fn helpers() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores < 2 {
            return None;
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads((cores - 1).min(4))
            .thread_name(|i| format!("xml-parse-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// Reads a large document in two parts at once: the head (up to a start or end tag a
/// little after the middle) on this thread, the tail on a helper thread, then joins them.
/// `None` when the document is not split this way (one core, no tag to split at) or
/// either part found something wrong: the caller then reads it whole, so errors are
/// reported exactly as a single reading reports them.
fn parse_in_two(src: &str) -> Option<Document<'_>> {
    let helper = Helper::claim()?;
    let split = split_point(src, src.len() / 20 * HEAD_TWENTIETHS)?;
    parse_split_at(src, split, |head, tail| helper.join(head, tail))
}

/// A helper thread claimed for one piece of work beside the caller's ([`Helper::claim`]).
pub(crate) struct Helper {
    pool: &'static rayon::ThreadPool,
    _claim: HelperClaim,
}

impl Helper {
    /// A free helper thread. `None` on a single core, or when every helper is taken (by
    /// large documents from several connections at once): work handed over would wait
    /// in a queue while the caller waits for it, so the caller does it alone.
    pub(crate) fn claim() -> Option<Self> {
        let pool = helpers()?;
        let claim = HelperClaim::take(pool.current_num_threads())?;
        Some(Self {
            pool,
            _claim: claim,
        })
    }

    /// Runs `here` on this thread and `there` on the helper at once, and returns both
    /// results when both are done (`there`'s is always `Some`).
    pub(crate) fn join<A, B>(
        self,
        here: impl FnOnce() -> A,
        there: impl FnOnce() -> B + Send,
    ) -> (A, Option<B>)
    where
        B: Send,
    {
        let mut b = None;
        let a = self.pool.in_place_scope(|s| {
            s.spawn(|_| b = Some(there()));
            here()
        });
        (a, b)
    }
}

/// One of the helper threads, claimed for one piece of work.
struct HelperClaim;

/// Helper threads claimed now.
static HELPERS_CLAIMED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl HelperClaim {
    /// Claims a helper, if one of `helpers` is free.
    fn take(helpers: usize) -> Option<Self> {
        use std::sync::atomic::Ordering;
        HELPERS_CLAIMED
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < helpers).then_some(n + 1)
            })
            .ok()
            .map(|_| HelperClaim)
    }
}

impl Drop for HelperClaim {
    fn drop(&mut self) {
        HELPERS_CLAIMED.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// The first `<` at or after `from` that begins a start or end tag (`<` then a name
/// character or `/`). Any other `<` there (comment, CDATA, PI) would make the parts
/// disagree with a single reading about what follows the split.
fn split_point(src: &str, from: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut i = from;
    while let Some(k) = memchr::memchr(b'<', bytes.get(i..)?) {
        let p = i + k;
        match bytes.get(p + 1) {
            Some(c) if p > 0 && (c.is_ascii_alphabetic() || matches!(c, b'_' | b':' | b'/')) => {
                return Some(p);
            }
            Some(_) => i = p + 1,
            None => return None,
        }
    }
    None
}

type PartResult<'a> = Result<Built<'a>, XmlError>;

/// Reads `src` as a head `..split` and a tail `split..` (`run` runs the two readings, at
/// once or not) and joins them; `None` when either reading failed or they do not join
/// (the split was not a tag boundary of the whole document, or the document is not well
/// formed).
///
/// Why the join is exact: the head is read from the true start, so it tokenises exactly as
/// a single reading does up to `split`; if it ends there cleanly (not inside a comment,
/// CDATA section, PI or tag, which are errors at its end), `split` is a token boundary of
/// the whole document and the tail tokenises as a single reading does from there. The
/// tail's nodes are numbered after the head's, which is document order, and end tags the
/// tail cannot match close the head's open elements, checked by name.
fn parse_split_at<'a, R>(src: &'a str, split: usize, run: R) -> Option<Document<'a>>
where
    R: FnOnce(
        &(dyn Fn() -> PartResult<'a> + Sync),
        &(dyn Fn() -> PartResult<'a> + Sync),
    ) -> (PartResult<'a>, Option<PartResult<'a>>),
{
    let has_cr = memchr::memchr(b'\r', src.as_bytes()).is_some();
    let head = || Builder::part(src, 0..split, Part::Head, has_cr).read();
    let tail = || Builder::part(src, split..src.len(), Part::Tail, has_cr).read();
    let (head, tail) = run(&head, &tail);
    join(src, head.ok()?, tail?.ok()?)
}

/// Joins a head and a tail read by [`parse_split_at`].
fn join<'a>(src: &'a str, head: Built<'a>, tail: Built<'a>) -> Option<Document<'a>> {
    let Built {
        mut nodes,
        mut attrs,
        mut owned,
        mut stack,
        ..
    } = head;
    if nodes.is_empty() {
        return None;
    }
    // Tail node `i` (from 1: node 0 is the stand-in parent) becomes node `base + i`.
    let base = u32::try_from(nodes.len()).ok()? - 1;
    let at = |i: u32| if i == NONE { NONE } else { base + i };
    let attr_base = u32::try_from(attrs.len()).ok()?;
    let owned_base = u32::try_from(owned.len()).ok()?;
    nodes.reserve(tail.nodes.len().saturating_sub(1));
    for n in tail.nodes.into_iter().skip(1) {
        let kind = match n.kind {
            Kind::Element {
                name,
                attrs: (a, b),
            } => Kind::Element {
                name,
                attrs: (a + attr_base, b + attr_base),
            },
            Kind::Text(t) => Kind::Text(t),
            Kind::OwnedText(i) => Kind::OwnedText(i + owned_base),
        };
        nodes.push(Node {
            kind,
            first_child: at(n.first_child),
            next_sibling: at(n.next_sibling),
            start: n.start,
            inner: n.inner,
        });
    }
    attrs.extend(tail.attrs);
    owned.extend(tail.owned);
    for seg in tail.segments {
        if seg.first != NONE && stack.is_empty() {
            // After the root: only white space may follow (not as a reference), and it is
            // not a node.
            if seg.has_reference {
                return None;
            }
            let mut i = at(seg.first);
            while i != NONE {
                let n = &nodes[i as usize];
                let blank = match n.kind {
                    Kind::Text(t) => t.trim().is_empty(),
                    Kind::OwnedText(k) => owned[k as usize].trim().is_empty(),
                    Kind::Element { .. } => false,
                };
                if !blank {
                    return None;
                }
                i = n.next_sibling;
            }
            continue;
        }
        if seg.first != NONE {
            // Siblings after the head's last child of the innermost open element (an
            // element: the split and every run start at a tag, so no text joins across).
            let (parent, last) = stack.last_mut()?;
            if *last == NONE {
                nodes[*parent as usize].first_child = at(seg.first);
            } else {
                nodes[*last as usize].next_sibling = at(seg.first);
            }
            *last = at(seg.last);
        }
        if let Some((name, offset)) = seg.close {
            let (idx, _) = stack.pop()?;
            match nodes[idx as usize].kind {
                Kind::Element { name: open, .. } if open == name => {}
                _ => return None,
            }
            nodes[idx as usize].inner.end = offset;
        }
    }
    if !stack.is_empty() {
        return None;
    }
    Some(Document {
        src,
        nodes,
        attrs,
        owned,
    })
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
            // A tag without a name (found by fuzzing: it was read, and written as `</>`).
            "<mos>a\ne<\rx=\"1\"/></mos>",
            "<mos>< a></a></mos>",
            "<mos><></></mos>",
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

    /// Everything a reader of the tree can see, in document order.
    fn dump(doc: &Document<'_>) -> String {
        fn el(e: El<'_, '_>, out: &mut String) {
            out.push_str(&format!("<{}@{}", e.name(), e.offset()));
            for a in e.attrs() {
                out.push_str(&format!(" {}={:?}", a.name, a.value));
            }
            out.push_str(&format!(" inner={:?}>", e.raw_inner()));
            for n in e.nodes() {
                match n {
                    XmlNode::Element(c) => el(c, out),
                    XmlNode::Text(t) => out.push_str(&format!("[{t:?}]")),
                }
            }
            out.push_str(&format!("</{}>", e.name()));
        }
        let mut out = String::new();
        el(doc.root(), &mut out);
        out
    }

    /// Every split point the parser may choose in `src`.
    fn split_points(src: &str) -> Vec<usize> {
        let mut points = Vec::new();
        let mut from = 0;
        while let Some(p) = split_point(src, from) {
            points.push(p);
            from = p + 1;
        }
        points
    }

    fn sequential<'a>(
        head: &(dyn Fn() -> PartResult<'a> + Sync),
        tail: &(dyn Fn() -> PartResult<'a> + Sync),
    ) -> (PartResult<'a>, Option<PartResult<'a>>) {
        (head(), Some(tail()))
    }

    /// Read in two parts at every possible split, a document gives the tree a single
    /// reading gives, or (when malformed) no tree, so the caller's single reading reports
    /// the error.
    fn assert_splits_agree(name: &str, src: &str) -> usize {
        let whole = Builder::new(src).run();
        let expected = whole.as_ref().ok().map(dump);
        let mut points = split_points(src);
        if points.len() > 400 {
            // A large document: every split costs a whole reading, so a spread of them.
            let stride = points.len() / 20;
            points = points.into_iter().step_by(stride).collect();
        }
        for &split in &points {
            let joined = parse_split_at(src, split, sequential);
            match (&expected, joined) {
                (Some(e), Some(j)) => assert_eq!(&dump(&j), e, "{name} split at {split}"),
                (None, None) => {}
                (Some(_), None) => {
                    // Allowed (the caller reads it whole), but only where the split is
                    // at the root or inside markup a single reading skips.
                    let at_root = whole.as_ref().is_ok_and(|d| split <= d.root().offset());
                    let inside = at_root
                        || src[..split]
                            .rfind("<!--")
                            .is_some_and(|c| !src[c..split].contains("-->"))
                        || src[..split]
                            .rfind("<![CDATA[")
                            .is_some_and(|c| !src[c..split].contains("]]>"))
                        || src[..split]
                            .rfind("<?")
                            .is_some_and(|c| !src[c..split].contains("?>"));
                    assert!(
                        inside,
                        "{name}: a well-formed document did not join at {split}"
                    );
                }
                (None, Some(j)) => {
                    panic!("{name}: malformed, yet joined at {split}: {}", dump(&j))
                }
            }
        }
        points.len()
    }

    #[test]
    fn a_document_read_in_two_parts_is_the_document_read_whole() {
        let cases = [
            "<mos><a x=\"1 &amp; 2\">t&#160;u<![CDATA[<v>]]></a><b/><c><d>e</d> tail</c></mos>",
            "<mos>\r\n<a>x\r\ny</a>\r\n<!-- <b></b> --><b>&lt;</b>\r\n</mos>",
            "<mos><a><![CDATA[ </a><a> ]]></a><?pi <a/> ?><b y='<'/></mos>",
            "<mos><a>1</a></mos><mos><b/></mos>",
            "<mos><a><b></a></b></mos>",
            "<mos><a>&nbsp;</a><b/></mos>",
            "<mos><a></mos>",
            "<mos><a/><b>x</b></mos>  ",
            "<mos><a/></mos>tail<b/>",
            "<mos><a>text &amp; more</a><b>t</b>after<c/>&#65;<d/></mos>",
            "<mos><a/><b/></mos>&#32;",
            "<mos><a/><b/></mos>\n&#x9;\n",
            "<mos><a/><b/></mos> <![CDATA[ ]]> ",
        ];
        let mut tried = 0;
        for (i, src) in cases.iter().enumerate() {
            tried += assert_splits_agree(&format!("case {i}"), src);
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples-messages");
        let mut files = 0;
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "xml")
                    && let Ok(src) = std::fs::read_to_string(&path)
                {
                    tried += assert_splits_agree(&path.display().to_string(), &src);
                    files += 1;
                }
            }
        }
        assert!(
            files > 100 && tried > 4_000,
            "{files} files, {tried} splits"
        );
    }

    #[test]
    fn large_documents_are_read_in_two_parts_on_two_threads() {
        let mut src = String::from("<mos><roCreate><roID>R</roID>\r\n");
        let mut n = 0;
        while src.len() < 3 * SPLIT_MIN_BYTES {
            src.push_str(&format!(
                "<story><storyID>S{n}</storyID><!-- a comment --><item a=\"&lt;{n}\"><itemID>{n}</itemID>\
                 <p>x &amp; y<![CDATA[ & ]]></p></item></story>\r\n"
            ));
            n += 1;
        }
        src.push_str("</roCreate></mos>");
        let whole = Builder::new(&src).run().unwrap();
        let doc = Document::parse(&src).unwrap();
        assert_eq!(dump(&doc), dump(&whole));
        if let Some(pool) = helpers() {
            // Other tests may hold a helper for a moment: try a few times.
            let joined = (0..200).find_map(|_| {
                parse_in_two(&src).or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    None
                })
            });
            let joined = joined.expect("never read in two parts");
            assert_eq!(dump(&joined), dump(&whole));
            // With every helper taken, the document is read in one part, as well.
            let claims: Vec<_> =
                std::iter::from_fn(|| HelperClaim::take(pool.current_num_threads()))
                    .take(pool.current_num_threads())
                    .collect();
            if claims.len() == pool.current_num_threads() {
                assert!(parse_in_two(&src).is_none());
                assert_eq!(dump(&Document::parse(&src).unwrap()), dump(&whole));
            }
        }
        // A large malformed document is refused with the single reading's error.
        let bad = src.replacen("</item></story>", "</story></item>", 1);
        assert_eq!(
            Document::parse(&bad).unwrap_err(),
            Builder::new(&bad).run().unwrap_err()
        );
        let late =
            format!("{}<x>", &src[..src.len() - "</roCreate></mos>".len()]) + "</roCreate></mos>";
        assert_eq!(
            Document::parse(&late).unwrap_err(),
            Builder::new(&late).run().unwrap_err()
        );
    }
}
