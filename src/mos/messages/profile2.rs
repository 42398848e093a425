//! Profile 2: running-order construction, roAck, status messages and roElementAction.
//! The 2.6 legacy roStory*/roItem* messages are in `legacy`.

use super::Body;
use crate::mos::error::{DeviationKind, ParseError};
use crate::mos::read::{Cx, text_of};
use crate::mos::structures::{AirStatus, Item, RoHeader, RunningOrder, Story, mos_enum};
use crate::mos::time::MosTime;
use crate::mos::xml::{El, XmlWriter};

/// One per-object status group of a roAck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoAckItem {
    /// storyID.
    pub story_id: String,
    /// itemID.
    pub item_id: String,
    /// objID.
    pub object_id: String,
    /// itemChannel (2.8.2+).
    pub channel: Option<String>,
    /// status: free text (LOADED, UNKNOWN, ...).
    pub status: String,
}

/// roAck: the reply on the upper port. `status` is `OK` or an error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoAck {
    /// roID the reply is about (empty from an ENPS buddy).
    pub ro_id: String,
    /// roStatus: `OK` or the reason of a failure.
    pub status: String,
    /// Optional per-object statuses.
    pub items: Vec<RoAckItem>,
}

impl RoAck {
    /// A successful roAck.
    pub fn ok(ro_id: &str) -> Self {
        Self {
            ro_id: ro_id.to_string(),
            status: "OK".into(),
            items: Vec::new(),
        }
    }
    /// A refusal with a reason (clipped to 128 characters).
    pub fn error(ro_id: &str, reason: &str) -> Self {
        Self {
            ro_id: ro_id.to_string(),
            status: crate::mos::read::clip128(reason),
            items: Vec::new(),
        }
    }
    /// Whether roStatus says OK (case-insensitive, trimmed).
    pub fn is_ok(&self) -> bool {
        self.status.trim().eq_ignore_ascii_case("OK")
    }
}

impl Body for RoAck {
    const NAME: &'static str = "roAck";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        let mut items: Vec<RoAckItem> = Vec::new();
        let mut current: Option<RoAckItem> = None;
        for c in el.children() {
            let v = || text_of(c);
            match c.name() {
                "storyID" => {
                    if let Some(done) = current.take() {
                        items.push(done);
                    }
                    current = Some(RoAckItem {
                        story_id: v(),
                        item_id: String::new(),
                        object_id: String::new(),
                        channel: None,
                        status: String::new(),
                    });
                }
                "itemID" => {
                    if let Some(g) = current.as_mut() {
                        g.item_id = v();
                    }
                }
                "objID" => {
                    if let Some(g) = current.as_mut() {
                        g.object_id = v();
                    }
                }
                "itemChannel" => {
                    if let Some(g) = current.as_mut() {
                        g.channel = Some(v());
                    }
                }
                // A status outside a group (a non-standard NACK marker some peers add) is ignored.
                "status" => {
                    if let Some(g) = current.as_mut() {
                        g.status = v();
                    }
                }
                _ => {}
            }
        }
        if let Some(done) = current.take() {
            items.push(done);
        }
        let status = match el.child("roStatus") {
            Some(_) => cx.opt_str(el, "roStatus")?.unwrap_or_default(),
            None => {
                cx.at(el);
                cx.missing("roStatus")?;
                String::new()
            }
        };
        let ro_id = cx.opt_str(el, "roID")?.unwrap_or_default();
        if ro_id.is_empty() {
            // ENPS buddy servers answer with an empty roID.
            cx.at(el);
            cx.tolerate(
                DeviationKind::MissingElement,
                Some("roID"),
                "empty or missing roID",
            )?;
        }
        Ok(Self {
            ro_id,
            status,
            items,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        w.leaf("roID", &self.ro_id);
        w.leaf("roStatus", &self.status);
        for i in &self.items {
            w.leaf("storyID", &i.story_id);
            w.leaf("itemID", &i.item_id);
            w.leaf("objID", &i.object_id);
            w.opt_leaf("itemChannel", i.channel.as_deref());
            w.leaf("status", &i.status);
        }
        w.close(Self::NAME);
    }
}

macro_rules! running_order_message {
    ($(#[$m:meta])* $name:ident, $wire:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub RunningOrder);
        impl Body for $name {
            const NAME: &'static str = $wire;
            fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
                RunningOrder::read(el, cx).map(Self)
            }
            fn write(&self, w: &mut XmlWriter) {
                self.0.write_as(Self::NAME, w)
            }
        }
    };
}

running_order_message!(
    /// roCreate: a new running order (replaces one with the same roID).
    RoCreate, "roCreate"
);
running_order_message!(
    /// roReplace: the whole running order again.
    RoReplace, "roReplace"
);
running_order_message!(
    /// roList: a running order in reply to roReq.
    RoList, "roList"
);

/// roMetadataReplace: new header fields, stories untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoMetadataReplace {
    /// The header (at most one mosExternalMetadata block).
    pub header: RoHeader,
}

impl Body for RoMetadataReplace {
    const NAME: &'static str = "roMetadataReplace";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(el, RoHeader::ORDER)?;
        Ok(Self {
            header: RoHeader::read(el, cx, true)?,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        self.header.write_fields(w);
        w.close(Self::NAME);
    }
}

macro_rules! ro_id_message {
    ($(#[$m:meta])* $name:ident, $wire:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// roID.
            pub ro_id: String,
        }
        impl Body for $name {
            const NAME: &'static str = $wire;
            fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
                Ok(Self { ro_id: cx.req_str(el, "roID")? })
            }
            fn write(&self, w: &mut XmlWriter) {
                w.open(Self::NAME);
                w.leaf("roID", &self.ro_id);
                w.close(Self::NAME);
            }
        }
    };
}

ro_id_message!(
    /// roDelete: the running order is gone.
    RoDelete, "roDelete"
);
ro_id_message!(
    /// roReq: asks for a running order (answered with roList).
    RoReq, "roReq"
);

/// roStat: status of a whole running order (MOS → NCS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoStat {
    /// roID.
    pub ro_id: String,
    /// status.
    pub status: String,
    /// time.
    pub time: MosTime,
}

impl Body for RoStat {
    const NAME: &'static str = "roStat";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(el, &["roID", "status", "time"])?;
        Ok(Self {
            ro_id: cx.req_str(el, "roID")?,
            status: cx.req_str(el, "status")?,
            time: cx.req_time(el, "time")?,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        w.leaf("roID", &self.ro_id);
        w.leaf("status", &self.status);
        w.leaf("time", self.time.as_wire());
        w.close(Self::NAME);
    }
}

/// roItemStat: status of one item (MOS → NCS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoItemStat {
    /// roID.
    pub ro_id: String,
    /// storyID.
    pub story_id: String,
    /// itemID.
    pub item_id: String,
    /// objID.
    pub object_id: String,
    /// itemChannel (2.8.2+).
    pub channel: Option<String>,
    /// status.
    pub status: String,
    /// time.
    pub time: MosTime,
}

impl Body for RoItemStat {
    const NAME: &'static str = "roItemStat";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(
            el,
            &[
                "roID",
                "storyID",
                "itemID",
                "objID",
                "itemChannel",
                "status",
                "time",
            ],
        )?;
        Ok(Self {
            ro_id: cx.req_str(el, "roID")?,
            story_id: cx.req_str(el, "storyID")?,
            item_id: cx.req_str(el, "itemID")?,
            object_id: cx.req_str(el, "objID")?,
            channel: cx.opt_str(el, "itemChannel")?,
            status: cx.req_str(el, "status")?,
            time: cx.req_time(el, "time")?,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        w.leaf("roID", &self.ro_id);
        w.leaf("storyID", &self.story_id);
        w.leaf("itemID", &self.item_id);
        w.leaf("objID", &self.object_id);
        w.opt_leaf("itemChannel", self.channel.as_deref());
        w.leaf("status", &self.status);
        w.leaf("time", self.time.as_wire());
        w.close(Self::NAME);
    }
}

mos_enum!(
    /// roElementStat element attribute.
    StatElement { Ro = "RO", Story = "STORY", Item = "ITEM" }
);

/// roElementStat (2.8.3+): status of a running order, story or item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoElementStat {
    /// element attribute.
    pub element: StatElement,
    /// roID.
    pub ro_id: String,
    /// storyID (STORY, ITEM).
    pub story_id: Option<String>,
    /// itemID (ITEM).
    pub item_id: Option<String>,
    /// objID (ITEM).
    pub object_id: Option<String>,
    /// itemChannel.
    pub channel: Option<String>,
    /// status.
    pub status: String,
    /// time.
    pub time: MosTime,
}

impl Body for RoElementStat {
    const NAME: &'static str = "roElementStat";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(
            el,
            &[
                "roID",
                "storyID",
                "itemID",
                "objID",
                "itemChannel",
                "status",
                "time",
            ],
        )?;
        let element = match el.attr("element") {
            Some(e) => cx.enum_value("@element", e)?,
            None => {
                cx.missing("@element")?;
                None
            }
        };
        let story_id = cx.opt_str(el, "storyID")?;
        let item_id = cx.opt_str(el, "itemID")?;
        let element = element.unwrap_or(if item_id.is_some() {
            StatElement::Item
        } else if story_id.is_some() {
            StatElement::Story
        } else {
            StatElement::Ro
        });
        Ok(Self {
            element,
            ro_id: cx.req_str(el, "roID")?,
            story_id,
            item_id,
            object_id: cx.opt_str(el, "objID")?,
            channel: cx.opt_str(el, "itemChannel")?,
            status: cx.req_str(el, "status")?,
            time: cx.req_time(el, "time")?,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open_with(Self::NAME, &[("element", self.element.as_wire())]);
        w.leaf("roID", &self.ro_id);
        w.opt_leaf("storyID", self.story_id.as_deref());
        w.opt_leaf("itemID", self.item_id.as_deref());
        w.opt_leaf("objID", self.object_id.as_deref());
        w.opt_leaf("itemChannel", self.channel.as_deref());
        w.leaf("status", &self.status);
        w.leaf("time", self.time.as_wire());
        w.close(Self::NAME);
    }
}

/// roReadyToAir: the running order is (not) editorially approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoReadyToAir {
    /// roID.
    pub ro_id: String,
    /// roAir.
    pub air: AirStatus,
}

impl Body for RoReadyToAir {
    const NAME: &'static str = "roReadyToAir";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(el, &["roID", "roAir"])?;
        Ok(Self {
            ro_id: cx.req_str(el, "roID")?,
            air: cx.req_enum(el, "roAir", AirStatus::NotReady)?,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        w.leaf("roID", &self.ro_id);
        w.leaf("roAir", self.air.as_wire());
        w.close(Self::NAME);
    }
}

mos_enum!(
    /// roElementAction operation (SWAP from 2.8.2 peers).
    ElementOperation { Insert = "INSERT", Replace = "REPLACE", Move = "MOVE", Delete = "DELETE", Swap = "SWAP" }
);

/// element_target: where in the running order an action happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementTarget {
    /// storyID (may be empty: the end of the running order).
    pub story_id: String,
    /// itemID within the story (may be empty: the end of the story).
    pub item_id: Option<String>,
}

/// element_source: what the action works on, all of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementSource {
    /// New or replacing stories.
    Stories(Vec<Story>),
    /// New or replacing items.
    Items(Vec<Item>),
    /// Existing stories by ID.
    StoryIds(Vec<String>),
    /// Existing items by ID.
    ItemIds(Vec<String>),
}

impl ElementSource {
    /// How many elements the source names.
    pub fn len(&self) -> usize {
        match self {
            Self::Stories(v) => v.len(),
            Self::Items(v) => v.len(),
            Self::StoryIds(v) => v.len(),
            Self::ItemIds(v) => v.len(),
        }
    }
    /// Whether the source is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// roElementAction: one edit of a running order's sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoElementAction {
    /// operation attribute.
    pub operation: ElementOperation,
    /// roID.
    pub ro_id: String,
    /// element_target, if present.
    pub target: Option<ElementTarget>,
    /// element_source.
    pub source: ElementSource,
}

impl Body for RoElementAction {
    const NAME: &'static str = "roElementAction";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(el, &["roID", "element_target", "element_source"])?;
        let operation = match el.attr("operation") {
            Some(op) => cx.enum_value::<ElementOperation>("@operation", op)?,
            None => None,
        };
        let Some(operation) = operation else {
            return Err(cx.error(
                Some("@operation"),
                "operation must be INSERT, REPLACE, MOVE, DELETE or SWAP",
            ));
        };
        let target = match el.child("element_target") {
            Some(t) => Some(ElementTarget {
                story_id: cx.within("element_target", None, |cx| cx.req_str(t, "storyID"))?,
                item_id: cx.within("element_target", None, |cx| cx.opt_str(t, "itemID"))?,
            }),
            None => None,
        };
        let Some(src) = el.child("element_source") else {
            cx.at(el);
            return Err(cx.error(Some("element_source"), "required element missing"));
        };
        cx.enter("element_source", None);
        let kinds: Vec<&str> = {
            let mut k: Vec<&str> = src
                .children()
                .map(|c| c.name())
                .filter(|n| matches!(*n, "story" | "item" | "storyID" | "itemID"))
                .collect();
            k.dedup();
            k.sort_unstable();
            k.dedup();
            k
        };
        let source = match kinds.as_slice() {
            ["story"] => ElementSource::Stories(Story::read_all(src, cx)?),
            ["item"] => ElementSource::Items(Item::read_all(src, "item", cx)?),
            ["storyID"] => ElementSource::StoryIds(cx.str_list(src, "storyID")?),
            ["itemID"] => ElementSource::ItemIds(cx.str_list(src, "itemID")?),
            [] => {
                cx.at(src);
                let e = cx.error(None, "needs story, item, storyID or itemID elements");
                cx.leave();
                return Err(e);
            }
            many => {
                cx.at(src);
                let e = cx.error(
                    None,
                    format!(
                        "mixes {}; all elements must be of one kind",
                        many.join(" and ")
                    ),
                );
                cx.leave();
                return Err(e);
            }
        };
        cx.leave();
        Ok(Self {
            operation,
            ro_id: cx.req_str(el, "roID")?,
            target,
            source,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open_with(Self::NAME, &[("operation", self.operation.as_wire())]);
        w.leaf("roID", &self.ro_id);
        if let Some(t) = &self.target {
            w.open("element_target");
            w.leaf("storyID", &t.story_id);
            w.opt_leaf("itemID", t.item_id.as_deref());
            w.close("element_target");
        }
        w.open("element_source");
        match &self.source {
            ElementSource::Stories(v) => v.iter().for_each(|s| s.write(w)),
            ElementSource::Items(v) => v.iter().for_each(|i| i.write(w)),
            ElementSource::StoryIds(v) => v.iter().for_each(|s| w.leaf("storyID", s)),
            ElementSource::ItemIds(v) => v.iter().for_each(|i| w.leaf("itemID", i)),
        }
        w.close("element_source");
        w.close(Self::NAME);
    }
}
