//! Profile 1: mosAck, mosReqObj, mosReqAll, mosListAll (mosObj is a shared structure).

use super::Body;
use crate::mos::error::ParseError;
use crate::mos::read::Cx;
use crate::mos::structures::{MosObj, mos_enum};
use crate::mos::xml::{El, XmlWriter};

mos_enum!(
    /// mosAck status.
    AckStatus { Ack = "ACK", Nack = "NACK" }
);

/// mosAck: the reply on the lower port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosAck {
    /// objID the ack is about (for mosObjCreate: the new objID goes in the description).
    pub object_id: String,
    /// objRev; empty in some peers' acks.
    pub object_rev: Option<u32>,
    /// ACK or NACK.
    pub status: AckStatus,
    /// statusDescription: the reason of a NACK, or the new objID of a created object.
    pub description: String,
}

impl MosAck {
    /// A NACK with a reason.
    pub fn nack(object_id: &str, reason: &str) -> Self {
        Self {
            object_id: object_id.to_string(),
            object_rev: Some(0),
            status: AckStatus::Nack,
            description: crate::mos::read::clip128(reason),
        }
    }
    /// An ACK.
    pub fn ack(object_id: &str, description: &str) -> Self {
        Self {
            object_id: object_id.to_string(),
            object_rev: Some(0),
            status: AckStatus::Ack,
            description: crate::mos::read::clip128(description),
        }
    }
}

impl Body for MosAck {
    const NAME: &'static str = "mosAck";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(el, &["objID", "objRev", "status", "statusDescription"])?;
        let object_rev = match el.child("objRev") {
            Some(_) => cx.opt_u32(el, "objRev")?,
            None => {
                cx.at(el);
                cx.missing("objRev")?;
                None
            }
        };
        let description = match el.child("statusDescription") {
            Some(_) => cx.opt_str(el, "statusDescription")?.unwrap_or_default(),
            None => String::new(),
        };
        Ok(Self {
            object_id: cx.req_str(el, "objID")?,
            object_rev,
            status: cx.req_enum(el, "status", AckStatus::Nack)?,
            description,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        w.leaf("objID", &self.object_id);
        match self.object_rev {
            Some(r) => w.leaf("objRev", &r.to_string()),
            None => w.leaf("objRev", ""),
        }
        w.leaf("status", self.status.as_wire());
        w.leaf("statusDescription", &self.description);
        w.close(Self::NAME);
    }
}

impl Body for MosObj {
    const NAME: &'static str = "mosObj";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        MosObj::read(el, cx)
    }
    fn write(&self, w: &mut XmlWriter) {
        MosObj::write(self, w)
    }
}

/// mosReqObj: asks for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosReqObj {
    /// objID asked for.
    pub object_id: String,
}

impl Body for MosReqObj {
    const NAME: &'static str = "mosReqObj";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        Ok(Self {
            object_id: cx.req_str(el, "objID")?,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        w.leaf("objID", &self.object_id);
        w.close(Self::NAME);
    }
}

/// mosReqAll: asks for every object, as one mosListAll (pause 0) or paced mosObj messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosReqAll {
    /// Seconds between mosObj messages; 0 asks for one mosListAll.
    pub pause: u32,
}

impl Body for MosReqAll {
    const NAME: &'static str = "mosReqAll";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        Ok(Self {
            pause: cx.req_u32(el, "pause")?,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        w.leaf("pause", &self.pause.to_string());
        w.close(Self::NAME);
    }
}

/// mosListAll: every object, after a mosReqAll with pause 0.
#[derive(Debug, Clone, PartialEq)]
pub struct MosListAll {
    /// The objects.
    pub objects: Vec<MosObj>,
}

impl Body for MosListAll {
    const NAME: &'static str = "mosListAll";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        Ok(Self {
            objects: MosObj::read_all(el, cx)?,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        for o in &self.objects {
            o.write(w);
        }
        w.close(Self::NAME);
    }
}
