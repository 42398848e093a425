//! Profile 4: roReqAll, roListAll, roStorySend.

use super::Body;
use crate::mos::error::ParseError;
use crate::mos::read::Cx;
use crate::mos::structures::{MosExternalMetadata, RoHeader, StoryBody};
use crate::mos::xml::{El, XmlWriter};

/// roReqAll: asks the NCS for every running order it has for this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoReqAll;

impl Body for RoReqAll {
    const NAME: &'static str = "roReqAll";
    fn read(_: El<'_, '_>, _: &mut Cx) -> Result<Self, ParseError> {
        Ok(Self)
    }
    fn write(&self, w: &mut XmlWriter) {
        w.empty(Self::NAME);
    }
}

/// roListAll: the headers of every running order (reply to roReqAll).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoListAll {
    /// One header per running order (`ro` elements).
    pub running_orders: Vec<RoHeader>,
}

impl Body for RoListAll {
    const NAME: &'static str = "roListAll";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        let mut running_orders = Vec::new();
        for (i, ro) in el.children_named("ro").enumerate() {
            running_orders.push(cx.within("ro", Some(i), |cx| {
                cx.check_order(ro, RoHeader::ORDER)?;
                RoHeader::read(ro, cx, false)
            })?);
        }
        Ok(Self { running_orders })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        for ro in &self.running_orders {
            w.open("ro");
            ro.write_fields(w);
            w.close("ro");
        }
        w.close(Self::NAME);
    }
}

/// roStorySend: the full body of one story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoStorySend {
    /// roID.
    pub ro_id: String,
    /// storyID.
    pub story_id: String,
    /// storySlug.
    pub slug: Option<String>,
    /// storyNum.
    pub number: Option<String>,
    /// storyBody.
    pub body: StoryBody,
    /// mosExternalMetadata blocks.
    pub metadata: Vec<MosExternalMetadata>,
}

impl Body for RoStorySend {
    const NAME: &'static str = "roStorySend";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(
            el,
            &[
                "roID",
                "storyID",
                "storySlug",
                "storyNum",
                "storyBody",
                "mosExternalMetadata",
            ],
        )?;
        let body = match el.child("storyBody") {
            Some(b) => cx.within("storyBody", None, |cx| StoryBody::read(b, cx))?,
            None => {
                cx.at(el);
                cx.missing("storyBody")?;
                StoryBody::default()
            }
        };
        Ok(Self {
            ro_id: cx.req_str(el, "roID")?,
            story_id: cx.req_str(el, "storyID")?,
            slug: cx.opt_str(el, "storySlug")?,
            number: cx.opt_str(el, "storyNum")?,
            body,
            metadata: MosExternalMetadata::read_all(el, cx)?,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        w.leaf("roID", &self.ro_id);
        w.leaf("storyID", &self.story_id);
        w.opt_leaf("storySlug", self.slug.as_deref());
        w.opt_leaf("storyNum", self.number.as_deref());
        self.body.write(w);
        MosExternalMetadata::write_all(&self.metadata, w);
        w.close(Self::NAME);
    }
}
