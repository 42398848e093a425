//! Resolution: running-order items + IS-04 catalogue + mapping → a planned [`Route`] per item,
//! or the reason it has none ([`NotReady`]). Pure: no I/O, same inputs give the same plans.
//!
//! For one item:
//!
//! 1. **Overrides** under the gateway's mosSchema are read from the item, its story and the
//!    running order header ([`Override`]); a bad one is `BadOverride`.
//! 2. **Object.** The objID is, in this order: a sender in the catalogue (a UUID in any case),
//!    a configured preset, or a placeholder (per [`ObjectLookup`]) or objID that a binding
//!    names (by objID, else by the placeholder's slug) → its sender or preset. A placeholder
//!    without binding is `PlaceholderNotBound`; anything else `UnknownObject` (a sender UUID
//!    that left the registry included: the catalogue no longer knows it).
//! 3. **Destination**, first found: the item's override, its `itemChannel`, the story's
//!    override, the running order's override, its `roChannel`, `nmos.default_destination`.
//!    A sender item needs one (`NoDestination`); a preset item makes its own connections and
//!    uses a destination only for its audio map, when one is named. A name that is not
//!    configured is `DestinationUnknown`.
//! 4. **Connections.** A sender item connects the sender to every receiver of the destination
//!    that can take it: same format (video → video receivers, audio → audio, ...), same
//!    transport (base URN), and a media type the receiver lists in `caps.media_types` (when
//!    both sides say). Every receiver must be in the registry (`ReceiverGone`); when none can
//!    take the sender the item is `NoMatchingReceiver`. A preset item makes each of its
//!    connections (`SenderGone`, `ReceiverGone`, `Incompatible`). Each receiver's device must
//!    have an IS-05 v1.1 control (`NoConnectionApi`).
//! 5. **Audio maps**, merged per device in this order, a later output replacing an earlier one:
//!    the preset's, the destination's, then the `audioMap` overrides of the running order, the
//!    story and the item. Each device must be in the registry (`DeviceGone`), have an IS-08
//!    v1.0 control (`NoChannelMappingApi`) and known io (`Is08IoUnknown`), and the map must
//!    pass [`is08_check::check`] (`Is08`). Maps give whole outputs, so checking the outputs
//!    they name is checking the resulting map.
//! 6. **Time**: the `at` override of the item, else the story's, else the running order's.
//!
//! A label matching several resources is `Ambiguous`.

use std::collections::{BTreeMap, HashMap};

use super::is04::{Catalogue, Control, Format, Receiver, Sender, Urn};
use super::is08_check::{self, ChannelMap};
use super::mapping::{LabelIndex, Lookup, Mapping, find_device, find_receiver, find_sender};
use super::overrides::Override;
use super::plan::{AudioMap, Connection, DeviceIo, ItemKey, ItemPlan, NotReady, Route};
use crate::config::{BindingTarget, DestinationConfig, PresetConfig, ResourceRef};
use crate::mos::structures::{Item, RoHeader, Story};
use crate::objects::catalogue::{Catalogue as _, MemoryCatalogue};
use crate::rundown::Rundown;

/// What resolution needs to know about MOS objects that are not senders or presets (`Send +
/// Sync` so that a [`ResolveContext`] can cross threads).
pub trait ObjectLookup: Send + Sync {
    /// `Some(objSlug)` when `obj_id` is a placeholder created by mosObjCreate.
    fn placeholder_slug(&self, obj_id: &str) -> Option<String>;
}

impl ObjectLookup for MemoryCatalogue {
    fn placeholder_slug(&self, obj_id: &str) -> Option<String> {
        if self.is_placeholder(obj_id) {
            self.get(obj_id).map(|o| o.slug)
        } else {
            None
        }
    }
}

/// Placeholders as objID → objSlug (tests, tools).
impl ObjectLookup for BTreeMap<String, String> {
    fn placeholder_slug(&self, obj_id: &str) -> Option<String> {
        self.get(obj_id).cloned()
    }
}

/// Everything resolution reads.
pub struct ResolveContext<'a> {
    /// The IS-04 snapshot.
    pub catalogue: &'a Catalogue,
    /// Its label index ([`LabelIndex::new`] of the same snapshot).
    pub labels: &'a LabelIndex,
    /// IS-08 io of the devices read so far, by device id.
    pub io: &'a BTreeMap<String, DeviceIo>,
    /// The configured mapping.
    pub mapping: &'a Mapping,
    /// Placeholders.
    pub objects: &'a dyn ObjectLookup,
}

/// What an item's object stands for.
enum Source<'a> {
    Sender(&'a Sender),
    Preset(&'a PresetConfig),
}

/// Plans one item of the running order whose header is `header`. See the module
/// documentation for the rules.
pub fn resolve_item(
    header: &RoHeader,
    story: &Story,
    item: &Item,
    ctx: &ResolveContext<'_>,
) -> ItemPlan {
    let story_ov = story_override(story, ctx);
    plan_item(header, item, &story_ov, &ro_override(header, ctx), ctx)
}

/// A story's override (its metadata for our mosSchema), read once for all its items.
fn story_override(story: &Story, ctx: &ResolveContext<'_>) -> Result<Override, NotReady> {
    Override::from_metadata(&story.metadata, ctx.mapping.mos_schema())
        .map_err(|e| within("story", e))
}

/// The running order's override, read once for all its items.
fn ro_override(header: &RoHeader, ctx: &ResolveContext<'_>) -> Result<Override, NotReady> {
    Override::from_metadata(&header.metadata, ctx.mapping.mos_schema())
        .map_err(|e| within("running order", e))
}

/// [`resolve_item`] with the story's and running order's overrides already read (a bad
/// one is the NOT READY reason of every item under it, after the item's own).
fn plan_item(
    header: &RoHeader,
    item: &Item,
    story_ov: &Result<Override, NotReady>,
    ro_ov: &Result<Override, NotReady>,
    ctx: &ResolveContext<'_>,
) -> ItemPlan {
    let item_ov = Override::from_metadata(&item.metadata, ctx.mapping.mos_schema())?;
    let story_ov = story_ov.as_ref().map_err(Clone::clone)?;
    let ro_ov = ro_ov.as_ref().map_err(Clone::clone)?;

    let source = object(&item.object_id, ctx)?;
    let dest_name = [
        item_ov.destination.as_deref(),
        item.channel.as_deref(),
        story_ov.destination.as_deref(),
        ro_ov.destination.as_deref(),
        header.channel.as_deref(),
        ctx.mapping.default_destination(),
    ]
    .into_iter()
    .flatten()
    .map(str::trim)
    .find(|n| !n.is_empty());
    let destination = match dest_name {
        Some(name) => Some(
            ctx.mapping
                .destination(name)
                .ok_or_else(|| NotReady::DestinationUnknown(name.to_owned()))?,
        ),
        None => None,
    };

    let (connections, route_name, preset) = match source {
        Source::Sender(sender) => {
            let dest = destination.ok_or(NotReady::NoDestination)?;
            (
                sender_connections(sender, dest, ctx)?,
                dest.name.clone(),
                None,
            )
        }
        Source::Preset(p) => {
            let name = destination.map_or_else(|| p.id.clone(), |d| d.name.clone());
            (preset_connections(p, ctx)?, name, Some(p))
        }
    };

    let overrides = [ro_ov, story_ov, &item_ov];
    let audio_maps = audio_maps(preset, destination, &overrides, ctx)?;
    let scheduled = item_ov.at.or(story_ov.at).or(ro_ov.at);
    Ok(Route {
        object_id: item.object_id.clone(),
        destination: route_name,
        connections,
        audio_maps,
        scheduled,
    })
}

/// A story's or running order's bad override, saying where it is.
fn within(place: &str, e: NotReady) -> NotReady {
    match e {
        NotReady::BadOverride(why) => NotReady::BadOverride(format!("{place}: {why}")),
        other => other,
    }
}

/// Plans every item of a running order, in running-order order.
pub fn resolve_rundown(rundown: &Rundown, ctx: &ResolveContext<'_>) -> Vec<(ItemKey, ItemPlan)> {
    let header = rundown.header();
    let ro_ov = ro_override(header, ctx);
    let mut out = Vec::new();
    for story in rundown.stories() {
        let story_ov = story_override(&story.story, ctx);
        for item in &story.story.items {
            let key = ItemKey {
                ro_id: header.id.clone(),
                story_id: story.story.id.clone(),
                item_id: item.id.clone(),
            };
            out.push((key, plan_item(header, item, &story_ov, &ro_ov, ctx)));
        }
    }
    out
}

/// The items to re-plan after a re-resolution: those whose plan differs, the new ones (in
/// `new` order), then the removed ones (in `old` order).
pub fn changed_items(old: &[(ItemKey, ItemPlan)], new: &[(ItemKey, ItemPlan)]) -> Vec<ItemKey> {
    let before: HashMap<&ItemKey, &ItemPlan> = old.iter().map(|(k, p)| (k, p)).collect();
    let after: HashMap<&ItemKey, &ItemPlan> = new.iter().map(|(k, p)| (k, p)).collect();
    let mut out: Vec<ItemKey> = new
        .iter()
        .filter(|(k, p)| before.get(k) != Some(&p))
        .map(|(k, _)| k.clone())
        .collect();
    out.extend(
        old.iter()
            .filter(|(k, _)| !after.contains_key(k))
            .map(|(k, _)| k.clone()),
    );
    out
}

// ---------------------------------------------------------------------------------------------
// Object
// ---------------------------------------------------------------------------------------------

fn object<'a>(obj_id: &str, ctx: &ResolveContext<'a>) -> Result<Source<'a>, NotReady> {
    let id = obj_id.trim();
    if let Some(s) = ctx.catalogue.sender(id) {
        return Ok(Source::Sender(s));
    }
    if let ResourceRef::Id(uuid) = ResourceRef::parse(id)
        && let Some(s) = ctx.catalogue.sender(&uuid)
    {
        return Ok(Source::Sender(s));
    }
    if let Some(p) = ctx.mapping.preset(id) {
        return Ok(Source::Preset(p));
    }
    let slug = ctx.objects.placeholder_slug(id);
    match ctx.mapping.binding(id, slug.as_deref()) {
        Some(BindingTarget::Sender(r)) => match find_sender(ctx.catalogue, ctx.labels, r) {
            Lookup::Found(s) => Ok(Source::Sender(s)),
            Lookup::Missing => Err(NotReady::SenderGone(r.to_string())),
            Lookup::Ambiguous(n) => Err(ambiguous("senders", r, n)),
        },
        Some(BindingTarget::Preset(p)) => ctx
            .mapping
            .preset(p)
            .map(Source::Preset)
            .ok_or_else(|| NotReady::UnknownObject(p.clone())),
        None if slug.is_some() => Err(NotReady::PlaceholderNotBound(match slug {
            Some(s) if !s.is_empty() => format!("{id} \"{s}\""),
            _ => id.to_owned(),
        })),
        None => Err(NotReady::UnknownObject(id.to_owned())),
    }
}

fn ambiguous(what: &str, r: &ResourceRef, n: usize) -> NotReady {
    NotReady::Ambiguous(format!("{r} names {n} {what}"))
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

fn name_of(label: &str, id: &str) -> String {
    if label.trim().is_empty() {
        id.to_owned()
    } else {
        label.to_owned()
    }
}

fn receiver<'a>(r: &ResourceRef, ctx: &ResolveContext<'a>) -> Result<&'a Receiver, NotReady> {
    match find_receiver(ctx.catalogue, ctx.labels, r) {
        Lookup::Found(x) => Ok(x),
        Lookup::Missing => Err(NotReady::ReceiverGone(r.to_string())),
        Lookup::Ambiguous(n) => Err(ambiguous("receivers", r, n)),
    }
}

/// A control's href with a trailing `/`.
fn base(control: &Control) -> String {
    let href = control.href.trim();
    if href.ends_with('/') {
        href.to_owned()
    } else {
        format!("{href}/")
    }
}

/// A device named for status texts: its label, else its id.
fn device_name(device_id: &str, ctx: &ResolveContext<'_>) -> String {
    match ctx.catalogue.device_label(device_id) {
        Some(l) => name_of(l, device_id),
        None => device_id.to_owned(),
    }
}

fn connection(
    sender: &Sender,
    rx: &Receiver,
    ctx: &ResolveContext<'_>,
) -> Result<Connection, NotReady> {
    let control = ctx
        .catalogue
        .connection_controls(&rx.device_id)
        .into_iter()
        .next()
        .ok_or_else(|| NotReady::NoConnectionApi(device_name(&rx.device_id, ctx)))?;
    let sender_control = ctx
        .catalogue
        .connection_controls(&sender.device_id)
        .into_iter()
        .next();
    Ok(Connection {
        receiver_id: rx.core.id.clone(),
        receiver_label: rx.core.label.clone(),
        device_id: rx.device_id.clone(),
        connection_api: base(control),
        authorization: control.authorization,
        sender_id: Some(sender.core.id.clone()),
        sender_manifest_href: sender.manifest_href.clone(),
        sender_version: Some(sender.core.version.clone()),
        sender_connection_api: sender_control.map(base),
        sender_authorization: sender_control.is_some_and(|c| c.authorization),
        transport: sender.transport.clone(),
        receiver_legs: rx.interface_bindings.len().max(1),
    })
}

fn format_name(f: &Format) -> String {
    match f {
        Format::Video => "video".to_owned(),
        Format::Audio => "audio".to_owned(),
        Format::Data => "data".to_owned(),
        Format::Mux => "mux".to_owned(),
        Format::Other(s) => s.clone(),
    }
}

/// What the sender sends, for status texts: `video (video/raw)`.
fn sender_format(sender: &Sender, ctx: &ResolveContext<'_>) -> String {
    match ctx.catalogue.sender_flow(&sender.core.id) {
        Some(flow) => match &flow.media_type {
            Some(m) => format!("{} ({m})", format_name(&flow.format)),
            None => format_name(&flow.format),
        },
        None => "no flow".to_owned(),
    }
}

/// `None` when `rx` can take `sender`'s flow, else why not.
fn incompatibility(sender: &Sender, rx: &Receiver, ctx: &ResolveContext<'_>) -> Option<String> {
    let Some(flow) = ctx.catalogue.sender_flow(&sender.core.id) else {
        return Some("the sender has no flow in the registry".to_owned());
    };
    let same_format = match (&flow.format, &rx.format) {
        (Format::Other(a), Format::Other(b)) => Urn::parse(a).base == Urn::parse(b).base,
        (a, b) => a == b,
    };
    if !same_format {
        return Some(format!(
            "{} sender, {} receiver",
            format_name(&flow.format),
            format_name(&rx.format)
        ));
    }
    let (st, rt) = (sender.transport.trim(), rx.transport.trim());
    if !st.is_empty() && !rt.is_empty() && Urn::parse(st).base != Urn::parse(rt).base {
        return Some(format!("transport {st}, receiver takes {rt}"));
    }
    if let Some(media) = &flow.media_type
        && !rx.caps.media_types.is_empty()
        && !rx
            .caps
            .media_types
            .iter()
            .any(|m| m.trim().eq_ignore_ascii_case(media.trim()))
    {
        return Some(format!(
            "media type {media}, receiver takes {}",
            rx.caps.media_types.join(", ")
        ));
    }
    None
}

fn sender_connections(
    sender: &Sender,
    dest: &DestinationConfig,
    ctx: &ResolveContext<'_>,
) -> Result<Vec<Connection>, NotReady> {
    let mut receivers: Vec<&Receiver> = Vec::with_capacity(dest.receivers.len());
    for r in &dest.receivers {
        let rx = receiver(r, ctx)?;
        if !receivers.iter().any(|x| x.core.id == rx.core.id) {
            receivers.push(rx);
        }
    }
    let matching: Vec<&Receiver> = receivers
        .into_iter()
        .filter(|rx| incompatibility(sender, rx, ctx).is_none())
        .collect();
    if matching.is_empty() {
        return Err(NotReady::NoMatchingReceiver {
            sender: name_of(&sender.core.label, &sender.core.id),
            destination: dest.name.clone(),
            format: sender_format(sender, ctx),
        });
    }
    matching
        .into_iter()
        .map(|rx| connection(sender, rx, ctx))
        .collect()
}

fn preset_connections(
    preset: &PresetConfig,
    ctx: &ResolveContext<'_>,
) -> Result<Vec<Connection>, NotReady> {
    let mut out: Vec<Connection> = Vec::with_capacity(preset.connections.len());
    for c in &preset.connections {
        let sender = match find_sender(ctx.catalogue, ctx.labels, &c.sender) {
            Lookup::Found(s) => s,
            Lookup::Missing => return Err(NotReady::SenderGone(c.sender.to_string())),
            Lookup::Ambiguous(n) => return Err(ambiguous("senders", &c.sender, n)),
        };
        let rx = receiver(&c.receiver, ctx)?;
        if let Some(reason) = incompatibility(sender, rx, ctx) {
            return Err(NotReady::Incompatible {
                sender: name_of(&sender.core.label, &sender.core.id),
                receiver: name_of(&rx.core.label, &rx.core.id),
                reason,
            });
        }
        // The same receiver named twice (by label and by id): the first connection stands.
        if !out.iter().any(|x| x.receiver_id == rx.core.id) {
            out.push(connection(sender, rx, ctx)?);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Audio maps
// ---------------------------------------------------------------------------------------------

fn audio_maps(
    preset: Option<&PresetConfig>,
    destination: Option<&DestinationConfig>,
    overrides: &[&Override],
    ctx: &ResolveContext<'_>,
) -> Result<Vec<AudioMap>, NotReady> {
    // (device reference, outputs) in application order.
    let mut parts: Vec<(ResourceRef, ChannelMap)> = Vec::new();
    if let Some(a) = preset.and_then(|p| p.audio.as_ref()) {
        parts.push((a.device.clone(), a.map.clone()));
    }
    if let Some(a) = destination.and_then(|d| d.audio.as_ref()) {
        parts.push((a.device.clone(), a.map.clone()));
    }
    let default_device = destination
        .and_then(|d| d.audio.as_ref())
        .or_else(|| preset.and_then(|p| p.audio.as_ref()))
        .map(|a| &a.device);
    for ov in overrides {
        for m in &ov.audio_maps {
            let device = m.device.as_ref().or(default_device).ok_or_else(|| {
                NotReady::BadOverride(format!(
                    "audioMap {} names no device and the destination has no audio_device",
                    m.output
                ))
            })?;
            let mut map = ChannelMap::new();
            map.insert(m.output.clone(), m.entries.clone());
            parts.push((device.clone(), map));
        }
    }

    // Merged per device id, in order of first appearance.
    let mut merged: Vec<(String, ChannelMap)> = Vec::new();
    for (r, map) in parts {
        let device = match find_device(ctx.catalogue, ctx.labels, &r) {
            Lookup::Found(d) => d,
            Lookup::Missing => return Err(NotReady::DeviceGone(r.to_string())),
            Lookup::Ambiguous(n) => return Err(ambiguous("devices", &r, n)),
        };
        match merged.iter_mut().find(|(id, _)| *id == device.core.id) {
            Some((_, existing)) => existing.extend(map),
            None => merged.push((device.core.id.clone(), map)),
        }
    }

    let mut out = Vec::with_capacity(merged.len());
    for (device_id, map) in merged {
        let name = device_name(&device_id, ctx);
        let control = ctx
            .catalogue
            .channel_mapping_controls(&device_id)
            .into_iter()
            .next()
            .ok_or_else(|| NotReady::NoChannelMappingApi(name.clone()))?;
        let io = ctx
            .io
            .get(&device_id)
            .ok_or_else(|| NotReady::Is08IoUnknown(name.clone()))?;
        is08_check::check(&map, &io.inputs, &io.outputs).map_err(NotReady::Is08)?;
        out.push(AudioMap {
            device_id,
            channel_mapping_api: base(control),
            authorization: control.authorization,
            map,
        });
    }
    Ok(out)
}
