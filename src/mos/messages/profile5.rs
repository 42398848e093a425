//! Profile 5 messages received from newer peers: roItemCue and roCtrl.

use super::Body;
use crate::mos::error::ParseError;
use crate::mos::read::Cx;
use crate::mos::structures::{MosExternalMetadata, mos_enum};
use crate::mos::time::MosTime;
use crate::mos::xml::{El, XmlWriter};

/// roItemCue: a time cue for an item, sent by a device such as a prompter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoItemCue {
    /// mosID of the item's parent device.
    pub mos_id: String,
    /// roID.
    pub ro_id: String,
    /// storyID.
    pub story_id: String,
    /// itemID.
    pub item_id: String,
    /// roEventType.
    pub event_type: String,
    /// roEventTime.
    pub event_time: MosTime,
    /// mosExternalMetadata blocks.
    pub metadata: Vec<MosExternalMetadata>,
}

impl Body for RoItemCue {
    const NAME: &'static str = "roItemCue";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(
            el,
            &[
                "mosID",
                "roID",
                "storyID",
                "itemID",
                "roEventType",
                "roEventTime",
                "mosExternalMetadata",
            ],
        )?;
        Ok(Self {
            mos_id: cx.req_str(el, "mosID")?,
            ro_id: cx.req_str(el, "roID")?,
            story_id: cx.req_str(el, "storyID")?,
            item_id: cx.req_str(el, "itemID")?,
            event_type: cx.req_str(el, "roEventType")?,
            event_time: cx.req_time(el, "roEventTime")?,
            metadata: MosExternalMetadata::read_all(el, cx)?,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        w.leaf("mosID", &self.mos_id);
        w.leaf("roID", &self.ro_id);
        w.leaf("storyID", &self.story_id);
        w.leaf("itemID", &self.item_id);
        w.leaf("roEventType", &self.event_type);
        w.leaf("roEventTime", self.event_time.as_wire());
        MosExternalMetadata::write_all(&self.metadata, w);
        w.close(Self::NAME);
    }
}

mos_enum!(
    /// roCtrl command.
    RoCtrlCommand { Ready = "READY", Execute = "EXECUTE", Pause = "PAUSE", Stop = "STOP", Signal = "SIGNAL" }
);

/// roCtrl: a control command for a running order, story or item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoCtrl {
    /// roID.
    pub ro_id: String,
    /// storyID; empty for the whole running order.
    pub story_id: String,
    /// itemID; empty for a whole story.
    pub item_id: String,
    /// command.
    pub command: RoCtrlCommand,
    /// mosExternalMetadata blocks.
    pub metadata: Vec<MosExternalMetadata>,
}

impl Body for RoCtrl {
    const NAME: &'static str = "roCtrl";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(
            el,
            &[
                "roID",
                "storyID",
                "itemID",
                "command",
                "mosExternalMetadata",
            ],
        )?;
        let command = match el.child("command") {
            Some(c) => {
                cx.at(c);
                cx.enum_value::<RoCtrlCommand>("command", &c.text())?
            }
            None => None,
        };
        let Some(command) = command else {
            return Err(cx.error(
                Some("command"),
                "command must be READY, EXECUTE, PAUSE, STOP or SIGNAL",
            ));
        };
        Ok(Self {
            ro_id: cx.req_str(el, "roID")?,
            story_id: cx.opt_str(el, "storyID")?.unwrap_or_default(),
            item_id: cx.opt_str(el, "itemID")?.unwrap_or_default(),
            command,
            metadata: MosExternalMetadata::read_all(el, cx)?,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        w.leaf("roID", &self.ro_id);
        w.leaf("storyID", &self.story_id);
        w.leaf("itemID", &self.item_id);
        w.leaf("command", self.command.as_wire());
        MosExternalMetadata::write_all(&self.metadata, w);
        w.close(Self::NAME);
    }
}
