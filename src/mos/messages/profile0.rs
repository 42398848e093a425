//! Profile 0: heartbeat, reqMachInfo, listMachInfo.

use super::Body;
use crate::mos::error::ParseError;
use crate::mos::read::{Cx, text_of};
use crate::mos::structures::MosExternalMetadata;
use crate::mos::time::MosTime;
use crate::mos::xml::{El, XmlWriter};

/// heartbeat: continuity check and clock exchange. The reply carries the same messageID
/// and the responder's time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The sender's time; absent in some peers' heartbeats.
    pub time: Option<MosTime>,
}

impl Body for Heartbeat {
    const NAME: &'static str = "heartbeat";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        Ok(Self {
            time: cx.opt_time(el, "time")?,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        match &self.time {
            Some(t) => {
                w.open(Self::NAME);
                w.leaf("time", t.as_wire());
                w.close(Self::NAME);
            }
            None => w.empty(Self::NAME),
        }
    }
}

/// reqMachInfo: asks for listMachInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReqMachInfo;

impl Body for ReqMachInfo {
    const NAME: &'static str = "reqMachInfo";
    fn read(_: El<'_, '_>, _: &mut Cx) -> Result<Self, ParseError> {
        Ok(Self)
    }
    fn write(&self, w: &mut XmlWriter) {
        w.empty(Self::NAME);
    }
}

/// The profiles a machine states in listMachInfo.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProfileSupport {
    /// No profile information (OpenMedia sends none).
    #[default]
    None,
    /// The 2.8.1 flat form: `mosProfile0`…`mosProfile7` with YES/NO, in order.
    Flat(Vec<bool>),
    /// The 2.8.4 container form: one `supportedProfiles` per device type.
    Container(Vec<SupportedProfiles>),
}

/// One `supportedProfiles` container (2.8.4+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedProfiles {
    /// deviceType attribute: MOS or NCS.
    pub device_type: String,
    /// (profile number, supported).
    pub profiles: Vec<(u8, bool)>,
}

/// defaultActiveX: an ActiveX control the machine offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultActiveX {
    /// mode: MODALDIALOG, MODELESS, CONTAINED or TOOLBAR.
    pub mode: String,
    /// controlFileLocation.
    pub file_location: String,
    /// controlSlug.
    pub slug: String,
    /// controlName.
    pub name: String,
    /// controlDefaultParams.
    pub default_params: String,
}

/// listMachInfo: who the machine is and what it supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListMachInfo {
    /// manufacturer.
    pub manufacturer: String,
    /// model.
    pub model: String,
    /// hwRev.
    pub hw_rev: String,
    /// swRev.
    pub sw_rev: String,
    /// DOM: date of manufacture, free text in practice.
    pub dom: String,
    /// SN.
    pub serial: String,
    /// ID.
    pub id: String,
    /// time: the machine's current time.
    pub time: MosTime,
    /// opTime: when the machine last started.
    pub op_time: Option<MosTime>,
    /// mosRev.
    pub mos_rev: String,
    /// Supported profiles.
    pub profiles: ProfileSupport,
    /// defaultActiveX entries.
    pub active_x: Vec<DefaultActiveX>,
    /// mosExternalMetadata blocks.
    pub metadata: Vec<MosExternalMetadata>,
}

fn yes(text: &str) -> bool {
    text.trim().eq_ignore_ascii_case("YES")
}

fn yes_no(v: bool) -> &'static str {
    if v { "YES" } else { "NO" }
}

const FLAT: [&str; 8] = [
    "mosProfile0",
    "mosProfile1",
    "mosProfile2",
    "mosProfile3",
    "mosProfile4",
    "mosProfile5",
    "mosProfile6",
    "mosProfile7",
];

impl Body for ListMachInfo {
    const NAME: &'static str = "listMachInfo";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(
            el,
            &[
                "manufacturer",
                "model",
                "hwRev",
                "swRev",
                "DOM",
                "SN",
                "ID",
                "time",
                "opTime",
                "mosRev",
            ],
        )?;
        let profiles = if el.child("supportedProfiles").is_some() {
            ProfileSupport::Container(
                el.children_named("supportedProfiles")
                    .map(|sp| SupportedProfiles {
                        device_type: sp.attr("deviceType").unwrap_or_default().to_string(),
                        profiles: sp
                            .children_named("mosProfile")
                            .filter_map(|p| {
                                let n = p.attr("number")?.trim().parse().ok()?;
                                Some((n, yes(&p.text())))
                            })
                            .collect(),
                    })
                    .collect(),
            )
        } else {
            let flat: Vec<bool> = FLAT
                .iter()
                .map_while(|n| el.child(n).map(|c| yes(&c.text())))
                .collect();
            if flat.is_empty() {
                ProfileSupport::None
            } else {
                ProfileSupport::Flat(flat)
            }
        };
        let mut active_x = Vec::new();
        for ax in el.children_named("defaultActiveX") {
            let f = |n| ax.child(n).map(text_of).unwrap_or_default();
            active_x.push(DefaultActiveX {
                mode: f("mode"),
                file_location: f("controlFileLocation"),
                slug: f("controlSlug"),
                name: f("controlName"),
                default_params: f("controlDefaultParams"),
            });
        }
        Ok(Self {
            manufacturer: cx.req_str(el, "manufacturer")?,
            model: cx.req_str(el, "model")?,
            hw_rev: cx.req_str(el, "hwRev")?,
            sw_rev: cx.req_str(el, "swRev")?,
            dom: cx.req_str(el, "DOM")?,
            serial: cx.req_str(el, "SN")?,
            id: cx.req_str(el, "ID")?,
            time: cx.req_time(el, "time")?,
            op_time: cx.opt_time(el, "opTime")?,
            mos_rev: cx.req_str(el, "mosRev")?,
            profiles,
            active_x,
            metadata: MosExternalMetadata::read_all(el, cx)?,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        w.leaf("manufacturer", &self.manufacturer);
        w.leaf("model", &self.model);
        w.leaf("hwRev", &self.hw_rev);
        w.leaf("swRev", &self.sw_rev);
        w.leaf("DOM", &self.dom);
        w.leaf("SN", &self.serial);
        w.leaf("ID", &self.id);
        w.leaf("time", self.time.as_wire());
        w.opt_leaf("opTime", self.op_time.as_ref().map(|t| t.as_wire()));
        w.leaf("mosRev", &self.mos_rev);
        match &self.profiles {
            ProfileSupport::None => {}
            ProfileSupport::Flat(flags) => {
                for (name, v) in FLAT.iter().zip(flags) {
                    w.leaf(name, yes_no(*v));
                }
            }
            ProfileSupport::Container(list) => {
                for sp in list {
                    w.open_with("supportedProfiles", &[("deviceType", &sp.device_type)]);
                    for (n, v) in &sp.profiles {
                        w.open_with("mosProfile", &[("number", &n.to_string())]);
                        w.text(yes_no(*v));
                        w.close("mosProfile");
                    }
                    w.close("supportedProfiles");
                }
            }
        }
        for ax in &self.active_x {
            w.open("defaultActiveX");
            w.leaf("mode", &ax.mode);
            w.leaf("controlFileLocation", &ax.file_location);
            w.leaf("controlSlug", &ax.slug);
            w.leaf("controlName", &ax.name);
            w.leaf("controlDefaultParams", &ax.default_params);
            w.close("defaultActiveX");
        }
        MosExternalMetadata::write_all(&self.metadata, w);
        w.close(Self::NAME);
    }
}
