//! Profile 3: object creation, mosItemReplace and the mosReqObjList query family;
//! mosReqObjAction (2.8.2+) is read so it can be refused with a reason.

use super::Body;
use crate::mos::error::ParseError;
use crate::mos::read::{Cx, text_of};
use crate::mos::structures::{
    Item, MosExternalMetadata, MosObj, ObjType, RawXml, format_number, mos_enum, write_opt_u32,
};
use crate::mos::time::MosTime;
use crate::mos::xml::{El, XmlWriter};

fn username(el: El<'_, '_>) -> Option<String> {
    el.attr("username").map(str::to_string)
}

fn open_user(w: &mut XmlWriter, name: &str, user: &Option<String>) {
    match user {
        Some(u) => w.open_with(name, &[("username", u)]),
        None => w.open(name),
    }
}

/// mosReqSearchableSchema: asks which fields can be searched.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MosReqSearchableSchema {
    /// username attribute (2.8.3+).
    pub username: Option<String>,
}

impl Body for MosReqSearchableSchema {
    const NAME: &'static str = "mosReqSearchableSchema";
    fn read(el: El<'_, '_>, _: &mut Cx) -> Result<Self, ParseError> {
        Ok(Self {
            username: username(el),
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        match &self.username {
            Some(u) => {
                w.open_with(Self::NAME, &[("username", u)]);
                w.close(Self::NAME);
            }
            None => w.empty(Self::NAME),
        }
    }
}

/// mosListSearchableSchema: the URL of the searchable-fields schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosListSearchableSchema {
    /// username attribute (2.8.3+).
    pub username: Option<String>,
    /// mosSchema URL; empty means no field search.
    pub schema: String,
}

impl Body for MosListSearchableSchema {
    const NAME: &'static str = "mosListSearchableSchema";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        let schema = match el.child("mosSchema") {
            Some(c) => text_of(c),
            None => {
                cx.missing("mosSchema")?;
                String::new()
            }
        };
        Ok(Self {
            username: username(el),
            schema,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        open_user(w, Self::NAME, &self.username);
        w.leaf("mosSchema", &self.schema);
        w.close(Self::NAME);
    }
}

/// One searchField: an XPath over the searchable schema, with optional sorting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchField {
    /// XPath attribute.
    pub xpath: String,
    /// sortByOrder attribute.
    pub sort_by_order: Option<String>,
    /// sortType attribute (e.g. DESCENDING).
    pub sort_type: Option<String>,
}

/// A searchGroup: its fields are ANDed; groups are ORed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchGroup {
    /// The fields.
    pub fields: Vec<SearchField>,
}

/// mosReqObjList: a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosReqObjList {
    /// username attribute (2.8.3+).
    pub username: Option<String>,
    /// queryID: lets the device cache a query's results.
    pub query_id: String,
    /// listReturnStart (1-based).
    pub list_return_start: Option<u32>,
    /// listReturnEnd; empty = all.
    pub list_return_end: Option<u32>,
    /// generalSearch: free text (may be empty).
    pub general_search: String,
    /// mosSchema the fields refer to.
    pub schema: String,
    /// searchGroups.
    pub groups: Vec<SearchGroup>,
}

impl Body for MosReqObjList {
    const NAME: &'static str = "mosReqObjList";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(
            el,
            &[
                "queryID",
                "listReturnStart",
                "listReturnEnd",
                "generalSearch",
                "mosSchema",
                "searchGroup",
            ],
        )?;
        if el.child("listReturnStart").is_none() {
            cx.at(el);
            cx.missing("listReturnStart")?;
        }
        let groups = el
            .children_named("searchGroup")
            .map(|g| SearchGroup {
                fields: g
                    .children_named("searchField")
                    .map(|f| SearchField {
                        xpath: f.attr("XPath").unwrap_or_default().to_string(),
                        sort_by_order: f.attr("sortByOrder").map(str::to_string),
                        sort_type: f.attr("sortType").map(str::to_string),
                    })
                    .collect(),
            })
            .collect();
        Ok(Self {
            username: username(el),
            query_id: cx.req_str(el, "queryID")?,
            list_return_start: cx.opt_u32(el, "listReturnStart")?,
            list_return_end: cx.opt_u32(el, "listReturnEnd")?,
            general_search: cx.opt_str(el, "generalSearch")?.unwrap_or_default(),
            schema: cx.opt_text(el, "mosSchema").unwrap_or_default(),
            groups,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        open_user(w, Self::NAME, &self.username);
        w.leaf("queryID", &self.query_id);
        w.leaf(
            "listReturnStart",
            &self
                .list_return_start
                .map(|n| n.to_string())
                .unwrap_or_default(),
        );
        w.leaf(
            "listReturnEnd",
            &self
                .list_return_end
                .map(|n| n.to_string())
                .unwrap_or_default(),
        );
        w.leaf("generalSearch", &self.general_search);
        w.leaf("mosSchema", &self.schema);
        for g in &self.groups {
            w.open("searchGroup");
            for f in &g.fields {
                let mut attrs = vec![("XPath", f.xpath.as_str())];
                if let Some(o) = &f.sort_by_order {
                    attrs.push(("sortByOrder", o));
                }
                if let Some(t) = &f.sort_type {
                    attrs.push(("sortType", t));
                }
                w.open_with("searchField", &attrs);
                w.close("searchField");
            }
            w.close("searchGroup");
        }
        w.close(Self::NAME);
    }
}

/// mosObjList: a page of search results.
#[derive(Debug, Clone, PartialEq)]
pub struct MosObjList {
    /// username attribute (2.8.3+).
    pub username: Option<String>,
    /// queryID echoed.
    pub query_id: String,
    /// listReturnStart actually returned (0 when nothing).
    pub list_return_start: u32,
    /// listReturnEnd actually returned.
    pub list_return_end: u32,
    /// listReturnTotal: all matches; None = "more than one" (sent empty).
    pub list_return_total: Option<u32>,
    /// listReturnStatus: a note, e.g. why nothing matched.
    pub list_return_status: Option<String>,
    /// The objects of this page.
    pub objects: Vec<MosObj>,
}

impl Body for MosObjList {
    const NAME: &'static str = "mosObjList";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(
            el,
            &[
                "queryID",
                "listReturnStart",
                "listReturnEnd",
                "listReturnTotal",
                "listReturnStatus",
                "list",
            ],
        )?;
        let objects = match el.child("list") {
            Some(l) => cx.within("list", None, |cx| MosObj::read_all(l, cx))?,
            None => Vec::new(),
        };
        Ok(Self {
            username: username(el),
            query_id: cx.req_str(el, "queryID")?,
            list_return_start: cx.req_u32(el, "listReturnStart")?,
            list_return_end: cx.req_u32(el, "listReturnEnd")?,
            list_return_total: cx.opt_u32(el, "listReturnTotal")?,
            list_return_status: cx.opt_str(el, "listReturnStatus")?,
            objects,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        open_user(w, Self::NAME, &self.username);
        w.leaf("queryID", &self.query_id);
        w.leaf("listReturnStart", &self.list_return_start.to_string());
        w.leaf("listReturnEnd", &self.list_return_end.to_string());
        w.leaf(
            "listReturnTotal",
            &self
                .list_return_total
                .map(|n| n.to_string())
                .unwrap_or_default(),
        );
        w.opt_leaf("listReturnStatus", self.list_return_status.as_deref());
        if !self.objects.is_empty() {
            w.open("list");
            for o in &self.objects {
                o.write(w);
            }
            w.close("list");
        }
        w.close(Self::NAME);
    }
}

/// mosObjCreate: the NCS asks the device to create an object (often a placeholder).
#[derive(Debug, Clone, PartialEq)]
pub struct MosObjCreate {
    /// objSlug.
    pub slug: String,
    /// objGroup.
    pub group: Option<String>,
    /// objType.
    pub obj_type: ObjType,
    /// objTB.
    pub time_base: Option<f64>,
    /// objDur.
    pub duration: Option<u32>,
    /// time.
    pub time: Option<MosTime>,
    /// createdBy.
    pub created_by: Option<String>,
    /// description.
    pub description: Option<RawXml>,
    /// mosExternalMetadata blocks.
    pub metadata: Vec<MosExternalMetadata>,
}

impl Body for MosObjCreate {
    const NAME: &'static str = "mosObjCreate";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(
            el,
            &[
                "objSlug",
                "objGroup",
                "objType",
                "objTB",
                "objDur",
                "time",
                "createdBy",
                "description",
                "mosExternalMetadata",
            ],
        )?;
        let time_base = cx.opt_time_base(el, "objTB")?;
        if el.child("objTB").is_none() {
            cx.at(el);
            cx.missing("objTB")?;
        }
        Ok(Self {
            slug: cx.req_str(el, "objSlug")?,
            group: cx.opt_str(el, "objGroup")?,
            obj_type: cx.req_enum(el, "objType", ObjType::Other)?,
            time_base,
            duration: cx.opt_u32(el, "objDur")?,
            time: cx.opt_time(el, "time")?,
            created_by: cx.opt_str(el, "createdBy")?,
            description: el
                .child("description")
                .map(|d| RawXml(d.raw_inner().to_string())),
            metadata: MosExternalMetadata::read_all(el, cx)?,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        w.leaf("objSlug", &self.slug);
        w.opt_leaf("objGroup", self.group.as_deref());
        w.leaf("objType", self.obj_type.as_wire());
        w.leaf(
            "objTB",
            &self.time_base.map(format_number).unwrap_or_default(),
        );
        write_opt_u32(w, "objDur", self.duration);
        w.opt_leaf("time", self.time.as_ref().map(|t| t.as_wire()));
        w.opt_leaf("createdBy", self.created_by.as_deref());
        if let Some(d) = &self.description {
            w.raw_leaf("description", d.as_str());
        }
        MosExternalMetadata::write_all(&self.metadata, w);
        w.close(Self::NAME);
    }
}

/// mosItemReplace: the device updates an item it owns in an NCS story (sent on the upper port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosItemReplace {
    /// roID.
    pub ro_id: String,
    /// storyID.
    pub story_id: String,
    /// The item; its itemID selects the target.
    pub item: Item,
}

impl Body for MosItemReplace {
    const NAME: &'static str = "mosItemReplace";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(el, &["roID", "storyID", "item"])?;
        let item = match el.child("item") {
            Some(i) => cx.within("item", None, |cx| Item::read(i, cx))?,
            None => return Err(cx.error(Some("item"), "required element missing")),
        };
        Ok(Self {
            ro_id: cx.req_str(el, "roID")?,
            story_id: cx.req_str(el, "storyID")?,
            item,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        w.leaf("roID", &self.ro_id);
        w.leaf("storyID", &self.story_id);
        self.item.write(w);
        w.close(Self::NAME);
    }
}

mos_enum!(
    /// mosReqObjAction operation (2.8.2+).
    ObjActionOperation { New = "NEW", Update = "UPDATE", Delete = "DELETE" }
);

/// mosReqObjAction (2.8.2+): create, update or delete an object. Parsed so that a
/// 2.8.1 device can refuse it with a reason.
#[derive(Debug, Clone, PartialEq)]
pub struct MosReqObjAction {
    /// operation attribute.
    pub operation: Option<ObjActionOperation>,
    /// objID attribute (UPDATE, DELETE).
    pub object_id: Option<String>,
    /// objSlug.
    pub slug: Option<String>,
    /// objGroup.
    pub group: Option<String>,
    /// objType.
    pub obj_type: Option<ObjType>,
    /// objTB.
    pub time_base: Option<f64>,
    /// objDur.
    pub duration: Option<u32>,
    /// time.
    pub time: Option<MosTime>,
    /// createdBy.
    pub created_by: Option<String>,
    /// changedBy.
    pub changed_by: Option<String>,
    /// changed.
    pub changed: Option<MosTime>,
    /// description.
    pub description: Option<RawXml>,
    /// mosExternalMetadata blocks.
    pub metadata: Vec<MosExternalMetadata>,
}

impl Body for MosReqObjAction {
    const NAME: &'static str = "mosReqObjAction";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        let operation = match el.attr("operation") {
            Some(op) => cx.enum_value("@operation", op)?,
            None => {
                cx.missing("@operation")?;
                None
            }
        };
        Ok(Self {
            operation,
            object_id: el.attr("objID").map(str::to_string),
            slug: cx.opt_str(el, "objSlug")?,
            group: cx.opt_str(el, "objGroup")?,
            obj_type: cx.opt_enum(el, "objType")?,
            time_base: cx.opt_time_base(el, "objTB")?,
            duration: cx.opt_u32(el, "objDur")?,
            time: cx.opt_time(el, "time")?,
            created_by: cx.opt_str(el, "createdBy")?,
            changed_by: cx.opt_str(el, "changedBy")?,
            changed: cx.opt_time(el, "changed")?,
            description: el
                .child("description")
                .map(|d| RawXml(d.raw_inner().to_string())),
            metadata: MosExternalMetadata::read_all(el, cx)?,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        let mut attrs = Vec::new();
        if let Some(op) = self.operation {
            attrs.push(("operation", op.as_wire()));
        }
        if let Some(id) = &self.object_id {
            attrs.push(("objID", id.as_str()));
        }
        w.open_with(Self::NAME, &attrs);
        w.opt_leaf("objSlug", self.slug.as_deref());
        w.opt_leaf("objGroup", self.group.as_deref());
        w.opt_leaf("objType", self.obj_type.map(|t| t.as_wire()));
        w.opt_leaf("objTB", self.time_base.map(format_number).as_deref());
        write_opt_u32(w, "objDur", self.duration);
        w.opt_leaf("time", self.time.as_ref().map(|t| t.as_wire()));
        w.opt_leaf("createdBy", self.created_by.as_deref());
        w.opt_leaf("changedBy", self.changed_by.as_deref());
        w.opt_leaf("changed", self.changed.as_ref().map(|t| t.as_wire()));
        if let Some(d) = &self.description {
            w.raw_leaf("description", d.as_str());
        }
        MosExternalMetadata::write_all(&self.metadata, w);
        w.close(Self::NAME);
    }
}
