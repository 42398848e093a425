//! NMOS senders as MOS objects, kept in step with the catalogue.
//!
//! Each IS-04 sender becomes a mosObj ([`sender_object`]): objID = the sender's UUID, objSlug =
//! its label (its id when the label is empty), objType from its flow's format, objGroup = its
//! device's label, objDur 0 (a live source has no duration), objTB the flow's frame rate
//! (audio: sample rate; else 1000), objAir READY when a flow is routed into the sender, the
//! IS-04 description as description, and one mosExternalMetadata block (scope OBJECT) under the
//! gateway's own mosSchema whose payload carries the NMOS details ([`payload_xml`]).
//!
//! [`SenderObjects`] remembers what it published and, for each new catalogue snapshot,
//! computes NEW / UPDATED (only when the mosObj would differ) / DELETED and applies them to a
//! [`MemoryCatalogue`]. Deletions are debounced: a sender that disappears is deleted only when
//! it is still missing `debounce` later, so a device re-registering (delete then add) produces
//! neither DELETED nor NEW. While a sender's device, node or flow is missing from a snapshot
//! (the moment between a delete and a re-add), its last known labels and format are kept
//! instead of announcing an UPDATED with blanks.
//!
//! Registry strings are made XML-safe (forbidden control characters dropped) and objSlug /
//! objGroup are cut to 128 characters (MOS String128).
//!
//! Time is passed in explicitly (`now`), so the debounce is tested without sleeping;
//! [`spawn_sender_objects`] drives it with tokio's clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::is04::{Catalogue, Format, MosObjType};
use crate::mos::read::clip128;
use crate::mos::structures::{AirStatus, MosExternalMetadata, MosObj, MosScope, ObjType, RawXml};
use crate::mos::time::MosTime;
use crate::mos::xml::escape_text;
use crate::objects::catalogue::{Catalogue as _, MemoryCatalogue, ObjectChange};
use crate::store::StoreError;

/// The default mosSchema of the NMOS details block.
pub const DEFAULT_SCHEMA: &str = "https://nmos-gateway.local/mos/nmos-sender/v1";

/// objTB when the flow gives no rate.
const DEFAULT_TIME_BASE: f64 = 1000.0;

/// Settings of [`SenderObjects`].
#[derive(Debug, Clone)]
pub struct SenderObjectSettings {
    /// mosSchema of the NMOS details block.
    pub schema: String,
    /// How long a vanished sender may stay away before it is announced DELETED.
    pub debounce: Duration,
}

impl Default for SenderObjectSettings {
    fn default() -> Self {
        SenderObjectSettings {
            schema: DEFAULT_SCHEMA.to_owned(),
            debounce: Duration::from_secs(2),
        }
    }
}

/// What the gateway shows of one sender (everything its mosObj is made from).
#[derive(Debug, Clone, PartialEq)]
pub struct SenderView {
    pub sender_id: String,
    pub label: String,
    pub description: String,
    pub device_id: String,
    pub device_label: Option<String>,
    pub node_id: Option<String>,
    pub node_label: Option<String>,
    pub flow_id: Option<String>,
    /// The flow's format URN.
    pub format: Option<String>,
    pub media_type: Option<String>,
    pub obj_type: MosObjType,
    /// objTB derived from the flow.
    pub time_base: f64,
    pub transport: String,
    pub manifest_href: Option<String>,
}

fn positive_rate(numerator: i64, denominator: i64) -> Option<f64> {
    (numerator > 0 && denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// The view of sender `sender_id` in `catalogue` (`None` if it is not there). `previous` is
/// the view last published: when the sender's device, node or flow is missing from this
/// snapshot but the sender still points at the same one, the previous labels and format
/// are kept.
pub fn sender_view(
    catalogue: &Catalogue,
    sender_id: &str,
    previous: Option<&SenderView>,
) -> Option<SenderView> {
    let s = catalogue.sender(sender_id)?;
    let device = catalogue.device(&s.device_id);
    let prev_same_device = previous.filter(|p| p.device_id == s.device_id);
    let (device_label, node_id, node_label) = match device {
        Some(d) => {
            let node = catalogue.node(&d.node_id);
            let node_label = match node {
                Some(n) => Some(n.core.label.clone()),
                None => prev_same_device
                    .filter(|p| p.node_id.as_deref() == Some(d.node_id.as_str()))
                    .and_then(|p| p.node_label.clone()),
            };
            (
                Some(d.core.label.clone()),
                (!d.node_id.is_empty()).then(|| d.node_id.clone()),
                node_label,
            )
        }
        None => match prev_same_device {
            Some(p) => (
                p.device_label.clone(),
                p.node_id.clone(),
                p.node_label.clone(),
            ),
            None => (None, None, None),
        },
    };
    let flow = s.flow_id.as_deref().and_then(|f| catalogue.flow(f));
    let (format, media_type, obj_type, time_base) = match flow {
        Some(f) => {
            let rate = match f.format {
                Format::Audio => f.sample_rate.or(f.grain_rate),
                _ => f.grain_rate.or(f.sample_rate),
            };
            (
                Some(f.format.urn().to_owned()),
                f.media_type.clone(),
                f.format.mos_obj_type(),
                rate.and_then(|r| positive_rate(r.numerator, r.denominator))
                    .unwrap_or(DEFAULT_TIME_BASE),
            )
        }
        None => match previous.filter(|p| p.flow_id.is_some() && p.flow_id == s.flow_id) {
            Some(p) => (
                p.format.clone(),
                p.media_type.clone(),
                p.obj_type,
                p.time_base,
            ),
            None => (None, None, MosObjType::Other, DEFAULT_TIME_BASE),
        },
    };
    Some(SenderView {
        sender_id: s.core.id.clone(),
        label: s.core.label.clone(),
        description: s.core.description.clone(),
        device_id: s.device_id.clone(),
        device_label,
        node_id,
        node_label,
        flow_id: s.flow_id.clone(),
        format,
        media_type,
        obj_type,
        time_base,
        transport: s.transport.clone(),
        manifest_href: s.manifest_href.clone(),
    })
}

/// The NMOS details block's payload (XML, values escaped).
pub fn payload_xml(view: &SenderView) -> String {
    let mut out = String::from("<nmosSender>");
    let mut leaf = |name: &str, value: Option<&str>| {
        if let Some(v) = value {
            out.push_str(&format!("<{name}>{}</{name}>", escape_text(&xml_safe(v))));
        }
    };
    leaf("senderId", Some(&view.sender_id));
    leaf("label", Some(&view.label));
    leaf("deviceId", Some(&view.device_id));
    leaf("deviceLabel", view.device_label.as_deref());
    leaf("nodeId", view.node_id.as_deref());
    leaf("nodeLabel", view.node_label.as_deref());
    leaf("flowId", view.flow_id.as_deref());
    leaf("format", view.format.as_deref());
    leaf("mediaType", view.media_type.as_deref());
    leaf("transport", Some(&view.transport));
    leaf("manifestHref", view.manifest_href.as_deref());
    out.push_str("</nmosSender>");
    out
}

/// `text` without the characters XML 1.0 forbids (control characters other than tab, line
/// feed and carriage return; U+FFFE, U+FFFF): registry strings go into MOS XML verbatim.
pub fn xml_safe(text: &str) -> String {
    text.chars()
        .filter(|&c| crate::dtd::names::is_xml_char(c))
        .collect()
}

fn obj_type(t: MosObjType) -> ObjType {
    match t {
        MosObjType::Video => ObjType::Video,
        MosObjType::Audio => ObjType::Audio,
        MosObjType::Other => ObjType::Other,
    }
}

/// The mosObj of a sender, ready for [`MemoryCatalogue::upsert`] (revision, status, times and
/// authors are left for the catalogue to fill in).
pub fn sender_object(view: &SenderView, schema: &str) -> MosObj {
    let label = xml_safe(&view.label);
    let slug = if label.trim().is_empty() {
        clip128(&view.sender_id)
    } else {
        clip128(&label)
    };
    MosObj {
        id: view.sender_id.clone(),
        slug,
        abstract_: None,
        group: view
            .device_label
            .as_deref()
            .map(|g| clip128(&xml_safe(g)))
            .filter(|g| !g.trim().is_empty()),
        obj_type: obj_type(view.obj_type),
        time_base: view.time_base,
        revision: 0,
        duration: 0,
        status: String::new(),
        air: if view.flow_id.is_some() {
            AirStatus::Ready
        } else {
            AirStatus::NotReady
        },
        paths: Vec::new(),
        created_by: String::new(),
        created: MosTime::from_wire(""),
        changed_by: String::new(),
        changed: MosTime::from_wire(""),
        description: RawXml::from_text(&xml_safe(&view.description)),
        metadata: vec![MosExternalMetadata {
            scope: Some(MosScope::Object),
            schema: schema.to_owned(),
            payload: RawXml(payload_xml(view)),
        }],
    }
}

/// One change to make to the object catalogue.
#[derive(Debug, Clone, PartialEq)]
pub enum SenderChange {
    /// A sender appeared.
    New(MosObj),
    /// A sender's mosObj changed.
    Updated(MosObj),
    /// A sender has been gone for the debounce window: its objID.
    Deleted(String),
}

/// The senders published as MOS objects, and the ones waiting out the debounce.
#[derive(Debug)]
pub struct SenderObjects {
    settings: SenderObjectSettings,
    published: BTreeMap<String, (SenderView, MosObj)>,
    missing_since: BTreeMap<String, Instant>,
    /// Sender ids whose objID is taken by another object (configuration, placeholder).
    foreign: BTreeSet<String>,
}

impl SenderObjects {
    /// Nothing published yet.
    pub fn new(settings: SenderObjectSettings) -> SenderObjects {
        SenderObjects {
            settings,
            published: BTreeMap::new(),
            missing_since: BTreeMap::new(),
            foreign: BTreeSet::new(),
        }
    }

    /// The objects currently published, by objID.
    pub fn published(&self) -> impl Iterator<Item = &MosObj> {
        self.published.values().map(|(_, o)| o)
    }

    /// When the next pending deletion falls due (call [`diff`](Self::diff) or
    /// [`apply`](Self::apply) again then, with the last snapshot).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.missing_since
            .values()
            .min()
            .map(|t| *t + self.settings.debounce)
    }

    /// The changes that bring the published set in line with `snapshot` at time `now`, and
    /// records them as done.
    pub fn diff(&mut self, snapshot: &Catalogue, now: Instant) -> Vec<SenderChange> {
        let mut changes = Vec::new();
        for id in snapshot.senders.keys() {
            if self.foreign.contains(id) {
                continue;
            }
            self.missing_since.remove(id);
            let previous = self.published.get(id);
            let Some(view) = sender_view(snapshot, id, previous.map(|(v, _)| v)) else {
                continue;
            };
            if previous.is_some_and(|(v, _)| *v == view) {
                // Same view, same object: skip building it (large catalogues, small changes).
                continue;
            }
            let object = sender_object(&view, &self.settings.schema);
            match previous {
                None => changes.push(SenderChange::New(object.clone())),
                Some((_, old)) if *old != object => {
                    changes.push(SenderChange::Updated(object.clone()))
                }
                Some(_) => {}
            }
            self.published.insert(id.clone(), (view, object));
        }
        self.foreign.retain(|id| snapshot.senders.contains_key(id));
        let gone: Vec<String> = self
            .published
            .keys()
            .filter(|id| !snapshot.senders.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            let since = *self.missing_since.entry(id.clone()).or_insert(now);
            if now >= since + self.settings.debounce {
                self.missing_since.remove(&id);
                self.published.remove(&id);
                changes.push(SenderChange::Deleted(id));
            }
        }
        changes
    }

    /// [`diff`](Self::diff), then the changes made to `target` (upsert / remove). A sender
    /// whose objID is already used by an object this does not own is left out (warned once).
    /// Returns the changes `target` announced.
    pub fn apply(
        &mut self,
        snapshot: &Catalogue,
        now: Instant,
        target: &MemoryCatalogue,
    ) -> Result<Vec<ObjectChange>, StoreError> {
        let mut announced = Vec::new();
        for change in self.diff(snapshot, now) {
            let result = match change {
                SenderChange::New(object) => {
                    if target.get(&object.id).is_some() {
                        tracing::warn!(
                            obj_id = %object.id,
                            "NMOS sender not published: its UUID is already the objID of another object"
                        );
                        self.published.remove(&object.id);
                        self.foreign.insert(object.id);
                        continue;
                    }
                    target.upsert(object)?
                }
                SenderChange::Updated(object) => target.upsert(object)?,
                SenderChange::Deleted(id) => target.remove(&id)?,
            };
            announced.extend(result);
        }
        Ok(announced)
    }
}

/// Keeps `target` in step with the discovery's catalogue until `stop`: applies every new
/// snapshot and wakes up when a debounced deletion falls due.
pub fn spawn_sender_objects(
    mut catalogue: watch::Receiver<Arc<Catalogue>>,
    target: Arc<MemoryCatalogue>,
    settings: SenderObjectSettings,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut objects = SenderObjects::new(settings);
        let mut snapshot = catalogue.borrow_and_update().clone();
        let far = Duration::from_secs(86_400 * 365);
        loop {
            if let Err(e) = objects.apply(&snapshot, Instant::now(), &target) {
                tracing::error!(error = %e, "NMOS sender objects: catalogue store failed");
            }
            let deadline = objects.next_deadline();
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = catalogue.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    snapshot = catalogue.borrow_and_update().clone();
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(|| Instant::now() + far)), if deadline.is_some() => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nmos::is04::ResourceType;
    use serde_json::json;

    const SENDER: &str = "05000001-0000-4000-8000-000000000000";
    const DEVICE: &str = "02000001-0000-4000-8000-000000000000";
    const NODE: &str = "01000001-0000-4000-8000-000000000000";
    const FLOW: &str = "04000001-0000-4000-8000-000000000000";

    fn studio(sender_label: &str, device_label: &str) -> Catalogue {
        let mut c = Catalogue::default();
        c.apply(
            ResourceType::Node,
            NODE,
            Some(json!({"id": NODE, "version": "1:0", "label": "cameras"})),
        )
        .unwrap();
        c.apply(
            ResourceType::Device,
            DEVICE,
            Some(
                json!({"id": DEVICE, "version": "1:0", "label": device_label, "node_id": NODE,
                        "type": "urn:x-nmos:device:generic", "controls": []}),
            ),
        )
        .unwrap();
        c.apply(
            ResourceType::Flow,
            FLOW,
            Some(json!({"id": FLOW, "version": "1:0", "label": "f", "format": "urn:x-nmos:format:video",
                        "media_type": "video/raw", "grain_rate": {"numerator": 50, "denominator": 1},
                        "device_id": DEVICE, "source_id": "s"})),
        )
        .unwrap();
        c.apply(
            ResourceType::Sender,
            SENDER,
            Some(json!({"id": SENDER, "version": "1:0", "label": sender_label, "description": "a <cam>",
                        "flow_id": FLOW, "device_id": DEVICE, "transport": "urn:x-nmos:transport:rtp.mcast",
                        "manifest_href": "http://n/sdp?a=1&b=2"})),
        )
        .unwrap();
        c
    }

    #[test]
    fn a_sender_becomes_a_mos_object() {
        let c = studio("CAM 1", "Camera 1");
        let view = sender_view(&c, SENDER, None).unwrap();
        let o = sender_object(&view, DEFAULT_SCHEMA);
        assert_eq!(o.id, SENDER);
        assert_eq!(o.slug, "CAM 1");
        assert_eq!(o.group.as_deref(), Some("Camera 1"));
        assert_eq!(o.obj_type, ObjType::Video);
        assert_eq!(o.time_base, 50.0);
        assert_eq!(o.duration, 0);
        assert_eq!(o.air, AirStatus::Ready);
        assert_eq!(o.description.as_str(), "a &lt;cam&gt;");
        assert_eq!(o.metadata.len(), 1);
        assert_eq!(o.metadata[0].schema, DEFAULT_SCHEMA);
        let p = o.metadata[0].payload.as_str();
        assert!(p.contains(&format!("<senderId>{SENDER}</senderId>")), "{p}");
        assert!(p.contains(&format!("<flowId>{FLOW}</flowId>")), "{p}");
        assert!(
            p.contains("<format>urn:x-nmos:format:video</format>"),
            "{p}"
        );
        assert!(p.contains("<nodeLabel>cameras</nodeLabel>"), "{p}");
        assert!(
            p.contains("<manifestHref>http://n/sdp?a=1&amp;b=2</manifestHref>"),
            "{p}"
        );
    }

    #[test]
    fn a_sender_without_flow_is_other_and_not_ready() {
        let mut c = studio("CAM 1", "Camera 1");
        std::sync::Arc::make_mut(c.senders.get_mut(SENDER).unwrap()).flow_id = None;
        let o = sender_object(&sender_view(&c, SENDER, None).unwrap(), DEFAULT_SCHEMA);
        assert_eq!(o.obj_type, ObjType::Other);
        assert_eq!(o.air, AirStatus::NotReady);
    }

    #[test]
    fn registry_strings_are_made_safe_for_mos() {
        let long = "L".repeat(200);
        let c = studio(&format!("bad\u{1}label{long}"), "dev\u{8}ice");
        let o = sender_object(&sender_view(&c, SENDER, None).unwrap(), DEFAULT_SCHEMA);
        assert_eq!(o.slug.chars().count(), 128);
        assert!(o.slug.starts_with("badlabelL"));
        assert_eq!(o.group.as_deref(), Some("device"));
        assert!(!o.metadata[0].payload.as_str().contains('\u{1}'));
        let mut unnamed = studio("  ", "d");
        unnamed.devices.clear();
        let o = sender_object(
            &sender_view(&unnamed, SENDER, None).unwrap(),
            DEFAULT_SCHEMA,
        );
        assert_eq!(o.slug, SENDER);
        assert_eq!(o.group, None);
    }

    #[test]
    fn new_updated_deleted_with_debounce() {
        let t0 = Instant::now();
        let mut so = SenderObjects::new(SenderObjectSettings::default());
        let c = studio("CAM 1", "Camera 1");
        let ch = so.diff(&c, t0);
        assert!(matches!(ch.as_slice(), [SenderChange::New(o)] if o.slug == "CAM 1"));
        assert!(so.diff(&c, t0).is_empty(), "same snapshot, no change");

        // Only the IS-04 version changes: nothing MOS-visible.
        let mut v = c.clone();
        std::sync::Arc::make_mut(v.senders.get_mut(SENDER).unwrap())
            .core
            .version = "2:0".into();
        assert!(so.diff(&v, t0).is_empty());

        let renamed = studio("CAM 1 wide", "Camera 1");
        assert!(
            matches!(so.diff(&renamed, t0).as_slice(), [SenderChange::Updated(o)] if o.slug == "CAM 1 wide")
        );

        // The device re-registers: everything goes, then comes back within the window.
        let empty = Catalogue::default();
        assert!(so.diff(&empty, t0).is_empty());
        assert_eq!(so.next_deadline(), Some(t0 + Duration::from_secs(2)));
        assert!(so.diff(&empty, t0 + Duration::from_millis(1500)).is_empty());
        assert!(
            so.diff(&renamed, t0 + Duration::from_millis(1600))
                .is_empty()
        );
        assert_eq!(so.next_deadline(), None);

        // Gone for good.
        let t1 = t0 + Duration::from_secs(10);
        assert!(so.diff(&empty, t1).is_empty());
        assert_eq!(
            so.diff(&empty, t1 + Duration::from_secs(2)),
            [SenderChange::Deleted(SENDER.to_owned())]
        );
        assert_eq!(so.published().count(), 0);
    }

    #[test]
    fn a_missing_device_keeps_the_last_labels() {
        let t0 = Instant::now();
        let mut so = SenderObjects::new(SenderObjectSettings::default());
        let c = studio("CAM 1", "Camera 1");
        so.diff(&c, t0);
        // The device (and its node and flow) vanish first, the sender a moment later.
        let mut partial = c.clone();
        partial.devices.clear();
        partial.nodes.clear();
        partial.flows.clear();
        assert!(so.diff(&partial, t0).is_empty());
        // A real change of the device label is an update.
        let relabelled = studio("CAM 1", "Camera One");
        assert!(
            matches!(so.diff(&relabelled, t0).as_slice(), [SenderChange::Updated(o)] if o.group.as_deref() == Some("Camera One"))
        );
    }

    #[test]
    fn apply_drives_the_memory_catalogue_and_respects_foreign_ids() {
        let target = MemoryCatalogue::new();
        let mut rx = target.subscribe();
        let t0 = Instant::now();
        let mut so = SenderObjects::new(SenderObjectSettings::default());
        let c = studio("CAM 1", "Camera 1");
        let changes = so.apply(&c, t0, &target).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(rx.try_recv().unwrap().object.status, "NEW");
        assert_eq!(target.get(SENDER).unwrap().slug, "CAM 1");
        so.apply(&Catalogue::default(), t0, &target).unwrap();
        so.apply(&Catalogue::default(), t0 + Duration::from_secs(3), &target)
            .unwrap();
        assert_eq!(rx.try_recv().unwrap().object.status, "DELETED");
        assert!(target.get(SENDER).is_none());

        // An objID already used by another object is not taken over.
        let mut other = sender_object(&sender_view(&c, SENDER, None).unwrap(), "x");
        other.slug = "configured".into();
        target.upsert(other).unwrap();
        let mut so = SenderObjects::new(SenderObjectSettings::default());
        assert!(so.apply(&c, t0, &target).unwrap().is_empty());
        assert!(so.apply(&c, t0, &target).unwrap().is_empty());
        assert_eq!(target.get(SENDER).unwrap().slug, "configured");
    }
}
