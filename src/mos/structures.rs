//! The data structures shared by several messages: mosExternalMetadata, item, story,
//! running-order header, mosObj, story body, and the enumerated values.
//!
//! Each structure reads itself from an element (any child order, unknown children
//! ignored) and writes itself in the spec's element order.

use super::error::ParseError;
use super::read::{Cx, MosEnum, read_list, text_of};
use super::time::{MosTime, RoDuration};
use super::xml::{El, XmlNode, XmlWriter};

macro_rules! mos_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $variant),+ }
        impl $crate::mos::read::MosEnum for $name {
            const VALUES: &'static [(&'static str, Self)] = &[$(($wire, Self::$variant)),+];
        }
        impl $name {
            /// The spec spelling.
            pub fn as_wire(self) -> &'static str {
                match self { $(Self::$variant => $wire),+ }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_wire())
            }
        }
    };
}
pub(crate) use mos_enum;

mos_enum!(
    /// How far a mosExternalMetadata block travels.
    MosScope { Object = "OBJECT", Story = "STORY", Playlist = "PLAYLIST" }
);
mos_enum!(
    /// objType.
    ObjType { Still = "STILL", Audio = "AUDIO", Video = "VIDEO", Other = "OTHER" }
);
mos_enum!(
    /// objAir and roAir.
    AirStatus { Ready = "READY", NotReady = "NOT READY" }
);

/// XML content kept exactly as received (markup, entities, whitespace), written back
/// unchanged: payloads, abstracts, descriptions, paragraphs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawXml(pub String);

impl RawXml {
    /// Content holding plain text (escaped for XML).
    pub fn from_text(text: &str) -> Self {
        RawXml(super::xml::escape_text(text).into_owned())
    }
    /// The XML content.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A mosExternalMetadata block: scope, schema and the payload verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosExternalMetadata {
    /// mosScope, if given.
    pub scope: Option<MosScope>,
    /// mosSchema: identifies the payload's schema (usually a URL).
    pub schema: String,
    /// mosPayload content exactly as received.
    pub payload: RawXml,
}

impl MosExternalMetadata {
    const ORDER: &[&str] = &["mosScope", "mosSchema", "mosPayload"];

    /// Reads one block.
    pub fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(el, Self::ORDER)?;
        let scope = cx.opt_enum(el, "mosScope")?;
        let schema = match el.child("mosSchema") {
            Some(c) => text_of(c),
            None => {
                cx.at(el);
                cx.missing("mosSchema")?;
                String::new()
            }
        };
        let payload = match el.child("mosPayload") {
            Some(p) => RawXml(p.raw_inner().to_string()),
            None => {
                cx.at(el);
                cx.missing("mosPayload")?;
                RawXml::default()
            }
        };
        Ok(Self {
            scope,
            schema,
            payload,
        })
    }

    /// Reads every block under `el`.
    pub fn read_all(el: El<'_, '_>, cx: &mut Cx) -> Result<Vec<Self>, ParseError> {
        let mut out = Vec::new();
        for (i, c) in el.children_named("mosExternalMetadata").enumerate() {
            out.push(cx.within("mosExternalMetadata", Some(i), |cx| Self::read(c, cx))?);
        }
        Ok(out)
    }

    /// Writes the block.
    pub fn write(&self, w: &mut XmlWriter) {
        w.open("mosExternalMetadata");
        if let Some(s) = self.scope {
            w.leaf("mosScope", s.as_wire());
        }
        w.leaf("mosSchema", &self.schema);
        w.raw_leaf("mosPayload", self.payload.as_str());
        w.close("mosExternalMetadata");
    }

    /// Writes every block.
    pub fn write_all(all: &[Self], w: &mut XmlWriter) {
        for m in all {
            m.write(w);
        }
    }
}

mos_enum!(
    /// The kind of an objPaths entry (2.8.2+).
    ObjPathKind { Path = "objPath", ProxyPath = "objProxyPath", MetadataPath = "objMetadataPath" }
);

/// One entry of objPaths (2.8.2+, accepted from newer peers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjPath {
    /// objPath, objProxyPath or objMetadataPath.
    pub kind: ObjPathKind,
    /// The techDescription attribute.
    pub tech_description: String,
    /// The path or URL.
    pub url: String,
}

fn read_obj_paths(el: El<'_, '_>) -> Vec<ObjPath> {
    read_obj_paths_of(el.child("objPaths"))
}

/// Reads the entries of an `objPaths` element, if there is one.
fn read_obj_paths_of(paths: Option<El<'_, '_>>) -> Vec<ObjPath> {
    let Some(paths) = paths else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for c in paths.children() {
        let Some(kind) = ObjPathKind::from_wire(c.name()) else {
            continue;
        };
        let tech = c
            .attr("techDescription")
            .map(str::to_string)
            .or_else(|| c.child("techDescription").map(text_of))
            .unwrap_or_default();
        let url = match c.child("url").or_else(|| c.child(kind.as_wire())) {
            Some(u) => text_of(u),
            None => text_of(c),
        };
        out.push(ObjPath {
            kind,
            tech_description: tech,
            url,
        });
    }
    out
}

fn write_obj_paths(paths: &[ObjPath], w: &mut XmlWriter) {
    if paths.is_empty() {
        return;
    }
    w.open("objPaths");
    for kind in [
        ObjPathKind::Path,
        ObjPathKind::ProxyPath,
        ObjPathKind::MetadataPath,
    ] {
        for p in paths.iter().filter(|p| p.kind == kind) {
            w.open_with(kind.as_wire(), &[("techDescription", &p.tech_description)]);
            w.text(&p.url);
            w.close(kind.as_wire());
        }
    }
    w.close("objPaths");
}

/// An item: a reference from a story to an object on a MOS device.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Item {
    /// itemID, unique within its story.
    pub id: String,
    /// itemSlug.
    pub slug: Option<String>,
    /// objID of the referenced object.
    pub object_id: String,
    /// mosID of the device that owns the object.
    pub mos_id: String,
    /// mosPlugInID (later MOS versions).
    pub plugin_id: Option<String>,
    /// mosAbstract, markup kept as received.
    pub abstract_: Option<RawXml>,
    /// objPaths (2.8.2+).
    pub paths: Vec<ObjPath>,
    /// itemChannel: the channel the NCS asks for.
    pub channel: Option<String>,
    /// itemEdStart in samples.
    pub ed_start: Option<u32>,
    /// itemEdDur in samples.
    pub ed_dur: Option<u32>,
    /// itemUserTimingDur in samples.
    pub user_timing_dur: Option<u32>,
    /// itemTrigger: MANUAL, TIMED or CHAINED with an optional signed value.
    pub trigger: Option<String>,
    /// macroIn.
    pub macro_in: Option<String>,
    /// macroOut.
    pub macro_out: Option<String>,
    /// mosExternalMetadata blocks.
    pub metadata: Vec<MosExternalMetadata>,
}

impl Item {
    const ORDER: [&str; 15] = [
        "itemID",
        "itemSlug",
        "objID",
        "mosID",
        "mosPlugInID",
        "mosAbstract",
        "objPaths",
        "itemChannel",
        "itemEdStart",
        "itemEdDur",
        "itemUserTimingDur",
        "itemTrigger",
        "macroIn",
        "macroOut",
        "mosExternalMetadata",
    ];

    /// Reads an `item` (or `storyItem`) element.
    pub fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        // ENPS sometimes wraps storyItem fields in an extra <mosItem>.
        let el = match el.child("itemID") {
            None => el.child("mosItem").unwrap_or(el),
            Some(_) => el,
        };
        // One pass over the children finds every field (slots in `ORDER` order).
        let [
            id,
            slug,
            object_id,
            mos_id,
            plugin_id,
            abstract_,
            paths,
            channel,
            ed_start,
            ed_dur,
            user_timing_dur,
            trigger,
            macro_in,
            macro_out,
            metadata,
        ] = cx.fields(el, &Self::ORDER)?;
        Ok(Self {
            id: cx.req_str_of(el, id, "itemID")?,
            slug: cx.opt_str_of(slug, "itemSlug")?,
            object_id: cx.req_str_of(el, object_id, "objID")?,
            mos_id: cx.req_str_of(el, mos_id, "mosID")?,
            plugin_id: cx.opt_str_of(plugin_id, "mosPlugInID")?,
            abstract_: abstract_.map(|c| RawXml(c.raw_inner().to_string())),
            paths: read_obj_paths_of(paths),
            channel: cx.opt_str_of(channel, "itemChannel")?,
            ed_start: cx.opt_u32_of(ed_start, "itemEdStart")?,
            ed_dur: cx.opt_u32_of(ed_dur, "itemEdDur")?,
            user_timing_dur: cx.opt_u32_of(user_timing_dur, "itemUserTimingDur")?,
            trigger: cx.opt_str_of(trigger, "itemTrigger")?,
            macro_in: cx.opt_str_of(macro_in, "macroIn")?,
            macro_out: cx.opt_str_of(macro_out, "macroOut")?,
            // Only scan for the (repeatable) blocks when there is at least one.
            metadata: match metadata {
                Some(_) => MosExternalMetadata::read_all(el, cx)?,
                None => Vec::new(),
            },
        })
    }

    /// Reads every child named `name` (`item` or `storyItem`).
    pub fn read_all(
        el: El<'_, '_>,
        name: &'static str,
        cx: &mut Cx,
    ) -> Result<Vec<Self>, ParseError> {
        let mut out = Vec::new();
        for (i, c) in el.children_named(name).enumerate() {
            out.push(cx.within(name, Some(i), |cx| Self::read(c, cx))?);
        }
        Ok(out)
    }

    /// Writes the item as an element named `name`.
    pub fn write_as(&self, name: &str, w: &mut XmlWriter) {
        w.open(name);
        w.leaf("itemID", &self.id);
        w.opt_leaf("itemSlug", self.slug.as_deref());
        w.leaf("objID", &self.object_id);
        w.leaf("mosID", &self.mos_id);
        w.opt_leaf("mosPlugInID", self.plugin_id.as_deref());
        if let Some(a) = &self.abstract_ {
            w.raw_leaf("mosAbstract", a.as_str());
        }
        write_obj_paths(&self.paths, w);
        w.opt_leaf("itemChannel", self.channel.as_deref());
        write_opt_u32(w, "itemEdStart", self.ed_start);
        write_opt_u32(w, "itemEdDur", self.ed_dur);
        write_opt_u32(w, "itemUserTimingDur", self.user_timing_dur);
        w.opt_leaf("itemTrigger", self.trigger.as_deref());
        w.opt_leaf("macroIn", self.macro_in.as_deref());
        w.opt_leaf("macroOut", self.macro_out.as_deref());
        MosExternalMetadata::write_all(&self.metadata, w);
        w.close(name);
    }

    /// Writes the item as `<item>`.
    pub fn write(&self, w: &mut XmlWriter) {
        self.write_as("item", w);
    }
}

/// Writes `<name>n</name>` when the number is present.
pub fn write_opt_u32(w: &mut XmlWriter, name: &str, v: Option<u32>) {
    if let Some(n) = v {
        w.leaf(name, itoa(n).as_str());
    }
}

fn itoa(n: u32) -> String {
    n.to_string()
}

/// A story of a running order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Story {
    /// storyID, unique within the running order.
    pub id: String,
    /// storySlug.
    pub slug: Option<String>,
    /// storyNum: the page number in the NCS.
    pub number: Option<String>,
    /// mosExternalMetadata blocks.
    pub metadata: Vec<MosExternalMetadata>,
    /// The items, in play order.
    pub items: Vec<Item>,
}

impl Story {
    const ORDER: [&str; 5] = [
        "storyID",
        "storySlug",
        "storyNum",
        "mosExternalMetadata",
        "item",
    ];

    /// Reads a `story` element.
    pub fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        let [id, slug, number, metadata, _item] = cx.fields(el, &Self::ORDER)?;
        Ok(Self {
            id: cx.req_str_of(el, id, "storyID")?,
            slug: cx.opt_str_of(slug, "storySlug")?,
            number: cx.opt_str_of(number, "storyNum")?,
            metadata: match metadata {
                Some(_) => MosExternalMetadata::read_all(el, cx)?,
                None => Vec::new(),
            },
            items: Item::read_all(el, "item", cx)?,
        })
    }

    /// Reads every `story` child (a long list in two halves at once: [`read_list`]).
    pub fn read_all(el: El<'_, '_>, cx: &mut Cx) -> Result<Vec<Self>, ParseError> {
        read_list(el, "story", cx, Self::read)
    }

    /// Writes `<story>`.
    pub fn write(&self, w: &mut XmlWriter) {
        w.open("story");
        w.leaf("storyID", &self.id);
        w.opt_leaf("storySlug", self.slug.as_deref());
        w.opt_leaf("storyNum", self.number.as_deref());
        MosExternalMetadata::write_all(&self.metadata, w);
        for i in &self.items {
            i.write(w);
        }
        w.close("story");
    }
}

/// The header of a running order (roCreate, roReplace, roList, roMetadataReplace, ro).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoHeader {
    /// roID.
    pub id: String,
    /// roSlug.
    pub slug: Option<String>,
    /// roChannel: the default channel.
    pub channel: Option<String>,
    /// roEdStart: requested start.
    pub ed_start: Option<MosTime>,
    /// roEdDur: editorial duration, hh:mm:ss.
    pub ed_dur: Option<RoDuration>,
    /// roTrigger.
    pub trigger: Option<String>,
    /// macroIn.
    pub macro_in: Option<String>,
    /// macroOut.
    pub macro_out: Option<String>,
    /// mosExternalMetadata blocks.
    pub metadata: Vec<MosExternalMetadata>,
}

impl RoHeader {
    /// Header element names in spec order.
    pub const ORDER: &[&str] = &[
        "roID",
        "roSlug",
        "roChannel",
        "roEdStart",
        "roEdDur",
        "roTrigger",
        "macroIn",
        "macroOut",
        "mosExternalMetadata",
    ];

    /// Reads the header fields of `el`; `slug_required` for messages whose roSlug is
    /// mandatory.
    pub fn read(el: El<'_, '_>, cx: &mut Cx, slug_required: bool) -> Result<Self, ParseError> {
        let slug = if slug_required {
            Some(cx.req_str(el, "roSlug")?)
        } else {
            cx.opt_str(el, "roSlug")?
        };
        Ok(Self {
            id: cx.req_str(el, "roID")?,
            slug,
            channel: cx.opt_str(el, "roChannel")?,
            ed_start: cx.opt_time(el, "roEdStart")?,
            ed_dur: cx.opt_duration(el, "roEdDur")?,
            trigger: cx.opt_str(el, "roTrigger")?,
            macro_in: cx.opt_str(el, "macroIn")?,
            macro_out: cx.opt_str(el, "macroOut")?,
            metadata: MosExternalMetadata::read_all(el, cx)?,
        })
    }

    /// Writes the header fields (without an enclosing element).
    pub fn write_fields(&self, w: &mut XmlWriter) {
        w.leaf("roID", &self.id);
        w.opt_leaf("roSlug", self.slug.as_deref());
        w.opt_leaf("roChannel", self.channel.as_deref());
        w.opt_leaf("roEdStart", self.ed_start.as_ref().map(|t| t.as_wire()));
        w.opt_leaf("roEdDur", self.ed_dur.as_ref().map(|d| d.as_wire()));
        w.opt_leaf("roTrigger", self.trigger.as_deref());
        w.opt_leaf("macroIn", self.macro_in.as_deref());
        w.opt_leaf("macroOut", self.macro_out.as_deref());
        MosExternalMetadata::write_all(&self.metadata, w);
    }
}

/// A whole running order: header and stories (roCreate, roReplace, roList).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunningOrder {
    /// The header.
    pub header: RoHeader,
    /// The stories, in running order.
    pub stories: Vec<Story>,
}

impl RunningOrder {
    /// Reads a roCreate/roReplace/roList element.
    pub fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        let mut order: Vec<&str> = RoHeader::ORDER.to_vec();
        order.push("story");
        cx.check_order(el, &order)?;
        Ok(Self {
            header: RoHeader::read(el, cx, true)?,
            stories: Story::read_all(el, cx)?,
        })
    }

    /// Writes the running order as an element named `name`.
    pub fn write_as(&self, name: &str, w: &mut XmlWriter) {
        w.open(name);
        self.header.write_fields(w);
        for s in &self.stories {
            s.write(w);
        }
        w.close(name);
    }
}

/// A MOS object (mosObj), as listed, pushed or searched.
#[derive(Debug, Clone, PartialEq)]
pub struct MosObj {
    /// objID, assigned by the MOS device, never changes.
    pub id: String,
    /// objSlug: the name people see.
    pub slug: String,
    /// mosAbstract.
    pub abstract_: Option<RawXml>,
    /// objGroup: a folder name.
    pub group: Option<String>,
    /// objType.
    pub obj_type: ObjType,
    /// objTB: samples per second.
    pub time_base: f64,
    /// objRev (≤ 999).
    pub revision: u32,
    /// objDur in samples.
    pub duration: u32,
    /// status (NEW, UPDATED, DELETED, ...).
    pub status: String,
    /// objAir.
    pub air: AirStatus,
    /// objPaths (2.8.2+).
    pub paths: Vec<ObjPath>,
    /// createdBy.
    pub created_by: String,
    /// created.
    pub created: MosTime,
    /// changedBy.
    pub changed_by: String,
    /// changed.
    pub changed: MosTime,
    /// description, markup kept as received.
    pub description: RawXml,
    /// mosExternalMetadata blocks.
    pub metadata: Vec<MosExternalMetadata>,
}

impl MosObj {
    const ORDER: &[&str] = &[
        "objID",
        "objSlug",
        "mosAbstract",
        "objGroup",
        "objType",
        "objTB",
        "objRev",
        "objDur",
        "status",
        "objAir",
        "objPaths",
        "createdBy",
        "created",
        "changedBy",
        "changed",
        "description",
        "mosExternalMetadata",
    ];

    /// Reads a `mosObj` element.
    pub fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(el, Self::ORDER)?;
        let time_base = match cx.opt_time_base(el, "objTB")? {
            Some(v) if v > 0.0 => v,
            Some(_) => {
                cx.tolerate(
                    super::error::DeviationKind::InvalidValue,
                    Some("objTB"),
                    "time base must be greater than 0",
                )?;
                1.0
            }
            None => {
                cx.missing("objTB")?;
                1.0
            }
        };
        Ok(Self {
            id: cx.req_str(el, "objID")?,
            slug: cx.req_str(el, "objSlug")?,
            abstract_: el
                .child("mosAbstract")
                .map(|c| RawXml(c.raw_inner().to_string())),
            group: cx.opt_str(el, "objGroup")?,
            obj_type: cx.req_enum(el, "objType", ObjType::Other)?,
            time_base,
            revision: cx.req_u32(el, "objRev")?,
            duration: cx.req_u32(el, "objDur")?,
            status: cx.req_str(el, "status")?,
            air: cx.req_enum(el, "objAir", AirStatus::NotReady)?,
            paths: read_obj_paths(el),
            created_by: cx.req_str(el, "createdBy")?,
            created: cx.req_time(el, "created")?,
            changed_by: cx.req_str(el, "changedBy")?,
            changed: cx.req_time(el, "changed")?,
            description: match el.child("description") {
                Some(d) => RawXml(d.raw_inner().to_string()),
                None => {
                    cx.at(el);
                    cx.missing("description")?;
                    RawXml::default()
                }
            },
            metadata: MosExternalMetadata::read_all(el, cx)?,
        })
    }

    /// Reads every `mosObj` child.
    pub fn read_all(el: El<'_, '_>, cx: &mut Cx) -> Result<Vec<Self>, ParseError> {
        let mut out = Vec::new();
        for (i, c) in el.children_named("mosObj").enumerate() {
            out.push(cx.within("mosObj", Some(i), |cx| Self::read(c, cx))?);
        }
        Ok(out)
    }

    /// Writes `<mosObj>`.
    pub fn write(&self, w: &mut XmlWriter) {
        w.open("mosObj");
        w.leaf("objID", &self.id);
        w.leaf("objSlug", &self.slug);
        if let Some(a) = &self.abstract_ {
            w.raw_leaf("mosAbstract", a.as_str());
        }
        w.opt_leaf("objGroup", self.group.as_deref());
        w.leaf("objType", self.obj_type.as_wire());
        w.leaf("objTB", &format_number(self.time_base));
        w.leaf("objRev", &self.revision.to_string());
        w.leaf("objDur", &self.duration.to_string());
        w.leaf("status", &self.status);
        w.leaf("objAir", self.air.as_wire());
        write_obj_paths(&self.paths, w);
        w.leaf("createdBy", &self.created_by);
        w.leaf("created", self.created.as_wire());
        w.leaf("changedBy", &self.changed_by);
        w.leaf("changed", self.changed.as_wire());
        w.raw_leaf("description", self.description.as_str());
        MosExternalMetadata::write_all(&self.metadata, w);
        w.close("mosObj");
    }
}

/// Writes a number without a trailing `.0` for whole values (50, 59.94).
pub fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// One piece of a story body, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyElement {
    /// storyPresenter: the anchor who reads what follows.
    Presenter(String),
    /// storyPresenterRR: the presenter's read rate.
    PresenterReadRate(String),
    /// A paragraph `p`, content kept as received (pi, pkg, b, i, u, em, tab).
    Paragraph(RawXml),
    /// An embedded item reference (storyItem).
    Item(Box<Item>),
    /// Text directly inside storyBody.
    Text(String),
    /// Another element, kept verbatim so the order survives.
    Other {
        /// Element name.
        name: String,
        /// Its content as received.
        content: RawXml,
    },
}

/// A story body: presenters, paragraphs and item references in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoryBody {
    /// The Read1stMEMasBody attribute (2.8.3+), if present.
    pub read_first_mem_as_body: Option<String>,
    /// The body's pieces in order.
    pub elements: Vec<BodyElement>,
}

impl StoryBody {
    /// Reads a `storyBody` element.
    pub fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        let mut elements = Vec::new();
        let mut item_index = 0;
        for n in el.nodes() {
            match n {
                XmlNode::Text(t) => {
                    if !t.trim().is_empty() {
                        elements.push(BodyElement::Text(t.trim().to_string()));
                    }
                }
                XmlNode::Element(c) => elements.push(match c.name() {
                    "storyPresenter" => BodyElement::Presenter(text_of(c)),
                    "storyPresenterRR" => BodyElement::PresenterReadRate(text_of(c)),
                    "p" => BodyElement::Paragraph(RawXml(c.raw_inner().to_string())),
                    "storyItem" => {
                        let item =
                            cx.within("storyItem", Some(item_index), |cx| Item::read(c, cx))?;
                        item_index += 1;
                        BodyElement::Item(Box::new(item))
                    }
                    other => BodyElement::Other {
                        name: other.to_string(),
                        content: RawXml(c.raw_inner().to_string()),
                    },
                }),
            }
        }
        Ok(Self {
            read_first_mem_as_body: el.attr("Read1stMEMasBody").map(str::to_string),
            elements,
        })
    }

    /// Writes `<storyBody>`.
    pub fn write(&self, w: &mut XmlWriter) {
        match &self.read_first_mem_as_body {
            Some(v) => w.open_with("storyBody", &[("Read1stMEMasBody", v)]),
            None => w.open("storyBody"),
        }
        for e in &self.elements {
            match e {
                BodyElement::Presenter(p) => w.leaf("storyPresenter", p),
                BodyElement::PresenterReadRate(r) => w.leaf("storyPresenterRR", r),
                BodyElement::Paragraph(p) => w.raw_leaf("p", p.as_str()),
                BodyElement::Item(i) => i.write_as("storyItem", w),
                BodyElement::Text(t) => w.text(t),
                BodyElement::Other { name, content } => w.raw_leaf(name, content.as_str()),
            }
        }
        w.close("storyBody");
    }

    /// The item references in the body, in order.
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.elements.iter().filter_map(|e| match e {
            BodyElement::Item(i) => Some(i.as_ref()),
            _ => None,
        })
    }
}
