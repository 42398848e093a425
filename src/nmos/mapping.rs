//! The mapping from the configuration in a lookup-friendly form: destinations by name, presets
//! by objID, placeholder bindings by objID or slug, and finding the senders, receivers and
//! devices the configuration names in an IS-04 [`Catalogue`].
//!
//! Presets are offered to the NCSs as MOS objects ([`Mapping::preset_objects`]): objType as
//! configured (VIDEO by default: a salvo mostly switches pictures with their sound, and NCSs
//! list VIDEO objects as sources), objGroup [`PRESET_GROUP`], objAir READY, no duration, and a
//! plain-text description listing the connections.

use std::collections::{BTreeMap, HashMap};

use crate::config::nmos::fold;
use crate::config::{
    BindingConfig, BindingTarget, Config, DestinationConfig, NmosConfig, ObjectConfig,
    PresetConfig, ResourceRef,
};
use crate::mos::structures::{AirStatus, MosObj, RawXml};
use crate::mos::time::MosTime;
use crate::nmos::is04::{Catalogue, Device, Receiver, Resource, Sender};

/// objGroup of preset objects.
pub const PRESET_GROUP: &str = "Presets";

/// The validated mapping, ready for resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    mos_schema: String,
    default_destination: Option<String>,
    destinations: Vec<DestinationConfig>,
    presets: Vec<PresetConfig>,
    bindings: Vec<BindingConfig>,
    author: String,
}

/// The outcome of looking a configured name up in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lookup<'a, T> {
    /// Exactly one resource.
    Found(&'a T),
    /// None.
    Missing,
    /// A label that several resources carry (how many).
    Ambiguous(usize),
}

/// Resource ids by exact label, per resource type, for one catalogue snapshot. Configured
/// names are mostly labels; with the index, looking one up is a hash lookup instead of a scan
/// of every sender (10,000 in a large studio), once per item and per catalogue change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelIndex {
    senders: HashMap<String, Vec<String>>,
    receivers: HashMap<String, Vec<String>>,
    devices: HashMap<String, Vec<String>>,
}

impl LabelIndex {
    /// The index of `catalogue`; build it again for every new snapshot.
    pub fn new(catalogue: &Catalogue) -> Self {
        Self {
            senders: by_label(&catalogue.senders),
            receivers: by_label(&catalogue.receivers),
            devices: by_label(&catalogue.devices),
        }
    }
}

fn by_label<T: Resource>(
    items: &BTreeMap<String, std::sync::Arc<T>>,
) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (id, x) in items {
        out.entry(x.core().label.clone())
            .or_default()
            .push(id.clone());
    }
    out
}

/// Finds a resource by id (exact) or label (exact; must be unique). `labels` is the label
/// index of the same snapshot as `items`.
pub fn find<'a, T: Resource>(
    items: &'a BTreeMap<String, std::sync::Arc<T>>,
    labels: &HashMap<String, Vec<String>>,
    r: &ResourceRef,
) -> Lookup<'a, T> {
    let found = |id: &str| {
        items
            .get(id)
            .map_or(Lookup::Missing, |x| Lookup::Found(x.as_ref()))
    };
    match r {
        ResourceRef::Id(id) => found(id),
        ResourceRef::Label(label) => match labels.get(label).map(Vec::as_slice) {
            None | Some([]) => Lookup::Missing,
            Some([id]) => found(id),
            Some(ids) => Lookup::Ambiguous(ids.len()),
        },
    }
}

/// A sender the configuration names.
pub fn find_sender<'a>(
    catalogue: &'a Catalogue,
    labels: &LabelIndex,
    r: &ResourceRef,
) -> Lookup<'a, Sender> {
    find(&catalogue.senders, &labels.senders, r)
}

/// A receiver the configuration names.
pub fn find_receiver<'a>(
    catalogue: &'a Catalogue,
    labels: &LabelIndex,
    r: &ResourceRef,
) -> Lookup<'a, Receiver> {
    find(&catalogue.receivers, &labels.receivers, r)
}

/// A device the configuration names.
pub fn find_device<'a>(
    catalogue: &'a Catalogue,
    labels: &LabelIndex,
    r: &ResourceRef,
) -> Lookup<'a, Device> {
    find(&catalogue.devices, &labels.devices, r)
}

impl Mapping {
    /// The mapping of a validated configuration; `config.mos.id` is the createdBy of preset
    /// objects.
    pub fn from_config(config: &Config) -> Mapping {
        Mapping::new(
            &config.nmos,
            config.destinations.clone(),
            config.presets.clone(),
            config.bindings.clone(),
            &config.mos.id,
        )
    }

    /// A mapping from validated parts (`author`: createdBy/changedBy of preset objects).
    pub fn new(
        nmos: &NmosConfig,
        destinations: Vec<DestinationConfig>,
        presets: Vec<PresetConfig>,
        bindings: Vec<BindingConfig>,
        author: &str,
    ) -> Mapping {
        Mapping {
            mos_schema: nmos.mos_schema.clone(),
            default_destination: nmos.default_destination.clone(),
            destinations,
            presets,
            bindings,
            author: author.to_owned(),
        }
    }

    /// The gateway's own mosSchema (overrides are read from metadata under it).
    pub fn mos_schema(&self) -> &str {
        &self.mos_schema
    }

    /// The destination of items that name none.
    pub fn default_destination(&self) -> Option<&str> {
        self.default_destination.as_deref()
    }

    /// Every destination, in configuration order.
    pub fn destinations(&self) -> &[DestinationConfig] {
        &self.destinations
    }

    /// A destination by name, without regard to case or surrounding spaces.
    pub fn destination(&self, name: &str) -> Option<&DestinationConfig> {
        let want = fold(name);
        self.destinations.iter().find(|d| fold(&d.name) == want)
    }

    /// Every preset, in configuration order.
    pub fn presets(&self) -> &[PresetConfig] {
        &self.presets
    }

    /// A preset by objID (exact).
    pub fn preset(&self, id: &str) -> Option<&PresetConfig> {
        self.presets.iter().find(|p| p.id == id)
    }

    /// Every binding, in configuration order.
    pub fn bindings(&self) -> &[BindingConfig] {
        &self.bindings
    }

    /// What a placeholder is bound to: the binding naming its objID exactly, else the one
    /// naming its slug (without regard to case or surrounding spaces).
    pub fn binding(&self, obj_id: &str, slug: Option<&str>) -> Option<&BindingTarget> {
        self.bindings
            .iter()
            .find(|b| b.placeholder == obj_id)
            .or_else(|| {
                let slug = fold(slug?);
                self.bindings.iter().find(|b| fold(&b.placeholder) == slug)
            })
            .map(|b| &b.target)
    }

    /// Each preset as a MOS object for the catalogue (see the module documentation).
    pub fn preset_objects(&self) -> Vec<MosObj> {
        let now = MosTime::now();
        self.presets
            .iter()
            .map(|p| MosObj {
                id: p.id.clone(),
                slug: p.slug.clone(),
                abstract_: None,
                group: Some(PRESET_GROUP.to_owned()),
                obj_type: p.obj_type,
                time_base: ObjectConfig::TIME_BASE,
                revision: 1,
                duration: 0,
                status: "NEW".to_owned(),
                air: AirStatus::Ready,
                paths: Vec::new(),
                created_by: self.author.clone(),
                created: now.clone(),
                changed_by: self.author.clone(),
                changed: now.clone(),
                description: RawXml::from_text(&preset_description(p)),
                metadata: Vec::new(),
            })
            .collect()
    }
}

/// `Preset: Camera 1 → "Mixer in 1"; ...; audio map on "Mixer" (2 outputs)`.
fn preset_description(p: &PresetConfig) -> String {
    let mut parts: Vec<String> = p
        .connections
        .iter()
        .map(|c| format!("{} → {}", c.sender, c.receiver))
        .collect();
    if let Some(a) = &p.audio {
        parts.push(format!(
            "audio map on {} ({} output(s))",
            a.device,
            a.map.len()
        ));
    }
    format!("Preset: {}", parts.join("; "))
}
