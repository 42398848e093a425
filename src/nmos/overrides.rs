//! Overrides carried in mosExternalMetadata under the gateway's own mosSchema
//! (`nmos.mos_schema`), on an item, a story or a running order header.
//!
//! The mosPayload (every part optional, unknown elements ignored, element names compared
//! without regard to case or namespace prefix, the `<nmos>` wrapper optional):
//!
//! ```xml
//! <nmos>
//!   <destination>STUDIO-B</destination>
//!   <audioMap output="out1" device="Vision mixer">in1:0 in1:1 -</audioMap>
//!   <at>2026-11-26T18:00:00Z</at>
//! </nmos>
//! ```
//!
//! - `destination`: a configured destination name (empty = no override).
//! - `audioMap` (any number): the whole map of one IS-08 output, entries separated by white
//!   space, `<input id>:<channel index>` or `-` (unrouted); `device` (UUID or IS-04 label) is
//!   optional and defaults to the destination's (else the preset's) audio device.
//! - `at`: a scheduled activation, ISO 8601 / RFC 3339 with a time zone (`Z` or an offset).
//!
//! Several blocks under our schema on one element are read in order, a later value winning.
//! A payload that is not XML, or a value that cannot be used, is an error (the item becomes
//! NOT READY "bad override: ..."); metadata under other schemas is ignored.

use chrono::{DateTime, Utc};

use super::is08_check::MapEntry;
use super::plan::NotReady;
use crate::config::ResourceRef;
use crate::config::nmos::parse_map_entry;
use crate::mos::structures::MosExternalMetadata;
use crate::mos::xml::{Document, El};

/// One `<audioMap>`: the whole map of one output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioMapOverride {
    /// The device, when named (else the destination's or preset's audio device).
    pub device: Option<ResourceRef>,
    /// The IS-08 output id.
    pub output: String,
    /// One entry per output channel.
    pub entries: Vec<MapEntry>,
}

/// What one element's metadata overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Override {
    /// Another destination (a configured name).
    pub destination: Option<String>,
    /// Output maps, in payload order.
    pub audio_maps: Vec<AudioMapOverride>,
    /// A scheduled activation time.
    pub at: Option<DateTime<Utc>>,
}

impl Override {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.destination.is_none() && self.audio_maps.is_empty() && self.at.is_none()
    }

    /// The overrides in `metadata` under `schema` (compared without regard to case or
    /// surrounding spaces); empty when there are none.
    pub fn from_metadata(
        metadata: &[MosExternalMetadata],
        schema: &str,
    ) -> Result<Override, NotReady> {
        let mut out = Override::default();
        for block in metadata
            .iter()
            .filter(|m| m.schema.trim().eq_ignore_ascii_case(schema.trim()))
        {
            let one =
                Override::parse_payload(block.payload.as_str()).map_err(NotReady::BadOverride)?;
            out.merge(one);
        }
        Ok(out)
    }

    /// Reads one mosPayload's content; the error says what is wrong.
    pub fn parse_payload(payload: &str) -> Result<Override, String> {
        let wrapped = format!("<payload>{payload}</payload>");
        let doc =
            Document::parse(&wrapped).map_err(|e| format!("payload is not XML: {}", e.detail))?;
        let root = doc.root();
        let top = root
            .children()
            .find(|c| local(c.name()) == "nmos")
            .unwrap_or(root);
        let mut out = Override::default();
        for el in top.children() {
            match local(el.name()).as_str() {
                "destination" => {
                    let text = el.text();
                    let name = text.trim();
                    if !name.is_empty() {
                        out.destination = Some(name.to_owned());
                    }
                }
                "audiomap" => out.audio_maps.push(audio_map(el)?),
                "at" => out.at = Some(time(el.text().trim())?),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Applies `later` over `self`: its destination and time win, its output maps come after.
    pub fn merge(&mut self, later: Override) {
        if later.destination.is_some() {
            self.destination = later.destination;
        }
        if later.at.is_some() {
            self.at = later.at;
        }
        self.audio_maps.extend(later.audio_maps);
    }
}

/// An element name without namespace prefix, in lower case.
fn local(name: &str) -> String {
    name.rsplit(':').next().unwrap_or(name).to_ascii_lowercase()
}

fn attr<'d>(el: El<'d, '_>, name: &str) -> Option<&'d str> {
    el.attrs()
        .iter()
        .find(|a| local(a.name) == name)
        .map(|a| a.value.as_ref())
}

fn audio_map(el: El<'_, '_>) -> Result<AudioMapOverride, String> {
    let output = attr(el, "output").map(str::trim).unwrap_or_default();
    let valid = !output.is_empty()
        && output
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(format!(
            "audioMap output \"{output}\" is not an IS-08 output id"
        ));
    }
    let device = attr(el, "device")
        .filter(|d| !d.trim().is_empty())
        .map(ResourceRef::parse);
    let text = el.text();
    let entries = text
        .split_whitespace()
        .map(|e| parse_map_entry(e).map_err(|why| format!("audioMap {output}: {why}")))
        .collect::<Result<Vec<_>, _>>()?;
    if entries.is_empty() {
        return Err(format!("audioMap {output} has no entries"));
    }
    Ok(AudioMapOverride {
        device,
        output: output.to_owned(),
        entries,
    })
}

fn time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!(
                "at \"{text}\" is not an ISO 8601 time with a time zone, e.g. \
                 2026-11-26T18:00:00Z ({e})"
            )
        })
}
