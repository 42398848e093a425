//! Checking an IS-08 channel map against a device's input and output caps before the gateway
//! posts it, so a bad request becomes a MOS status text instead of an HTTP 400.
//!
//! Pass the **resulting** map (the active map with the action applied): the block and order rules
//! involve channels the action does not touch (reference `nmos.md` §7.4). Outputs absent from
//! the map are not checked.
//!
//! The rules, as read from the reference (§7.4) and the IS-08 behaviour text:
//!
//! 1. **Shape.** A mapped output must exist and the map must give exactly one entry per output
//!    channel. An entry is either unrouted (`input` and `channel_index` both null) or routed
//!    (both set); one null without the other is rejected. A routed entry names a known input and
//!    a `channel_index` below that input's channel count.
//! 2. **`routable_inputs`** (output caps). `None` (JSON null or absent) allows any input. A list
//!    allows only the inputs it names, and a `null` inside the list is what allows unrouted
//!    channels on that output: a list without `null` makes every unrouted channel a violation.
//!    (For re-entrant devices the device leaves an output's own input out of its list; nothing
//!    more is needed here.)
//! 3. **`block_size`** (input caps, `1` = no constraint; `0`, which the schema forbids, is treated
//!    as `1`). The input's channels form blocks `[0, b)`, `[b, 2b)`, … Walking one output's
//!    channels in order, each channel from that input starts a run of exactly `b` consecutive
//!    output channels, all from that input, all from the one block the first channel belongs to,
//!    with no input channel repeated in the run. So a block is routed whole, to one output run.
//!    The run's position in the output is free, and the same block may feed several outputs (or
//!    several runs of one output): the reference forbids neither.
//! 4. **`reordering = false`** (input caps). Inside one output, every channel taken from that
//!    input has the same offset `channel_index − output_channel`; different outputs may use
//!    different offsets. Unrouted channels in between are allowed (the offset still holds).
//!
//! [`check`] reports every violation it finds, each with a short reason usable as a MOS status
//! text ([`Violation`]'s `Display`). To avoid a cascade, a broken block run is reported once at
//! its first channel, and a reordering problem once per output and input.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// An IS-08 output as the gateway reads it (`/io` → `outputs.<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Is08Output {
    /// Number of entries in the output's `channels` array.
    pub channels: usize,
    /// `caps.routable_inputs`: `None` = any input; `Some(list)` = only these, where a `None`
    /// element allows unrouted channels.
    #[serde(default)]
    pub routable_inputs: Option<Vec<Option<String>>>,
}

/// An IS-08 input as the gateway reads it (`/io` → `inputs.<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Is08Input {
    /// Number of entries in the input's `channels` array.
    pub channels: usize,
    /// `caps.block_size` (1 = no block constraint).
    pub block_size: usize,
    /// `caps.reordering`.
    pub reordering: bool,
}

/// One output channel's entry in a map: both `None` = unrouted (silence).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MapEntry {
    /// Input id, or `None`.
    pub input: Option<String>,
    /// Index into the input's `channels`, or `None`.
    pub channel_index: Option<usize>,
}

impl MapEntry {
    /// A routed entry.
    pub fn routed(input: &str, channel_index: usize) -> MapEntry {
        MapEntry {
            input: Some(input.to_owned()),
            channel_index: Some(channel_index),
        }
    }

    /// An unrouted (muted) entry.
    pub fn unrouted() -> MapEntry {
        MapEntry::default()
    }
}

/// A map: output id → one entry per output channel, in channel order.
pub type ChannelMap = BTreeMap<String, Vec<MapEntry>>;

/// One reason a map cannot be posted. `Display` gives the status text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The map names an output the device does not have.
    UnknownOutput { output: String },
    /// The map does not give one entry per output channel.
    ChannelCount {
        output: String,
        channels: usize,
        given: usize,
    },
    /// `input` and `channel_index` are not both null or both set.
    HalfNull { output: String, channel: usize },
    /// The entry names an input the device does not have.
    UnknownInput {
        output: String,
        channel: usize,
        input: String,
    },
    /// `channel_index` is not below the input's channel count.
    InputChannelOutOfRange {
        output: String,
        channel: usize,
        input: String,
        channel_index: usize,
        channels: usize,
    },
    /// The input is not in the output's `routable_inputs`.
    NotRoutable {
        output: String,
        channel: usize,
        input: String,
    },
    /// The channel is unrouted but the output's `routable_inputs` has no `null`.
    UnroutedNotAllowed { output: String, channel: usize },
    /// The run starting at `channel` is not one whole block of the input.
    Block {
        output: String,
        channel: usize,
        input: String,
        block_size: usize,
    },
    /// The input's channels are not at one constant offset in this output.
    Reordering {
        output: String,
        channel: usize,
        input: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::UnknownOutput { output } => write!(f, "unknown output {output}"),
            Violation::ChannelCount {
                output,
                channels,
                given,
            } => write!(
                f,
                "output {output} has {channels} channels, map gives {given}"
            ),
            Violation::HalfNull { output, channel } => write!(
                f,
                "output {output} channel {channel}: input and channel index must both be set or both null"
            ),
            Violation::UnknownInput {
                output,
                channel,
                input,
            } => write!(
                f,
                "output {output} channel {channel}: unknown input {input}"
            ),
            Violation::InputChannelOutOfRange {
                output,
                channel,
                input,
                channel_index,
                channels,
            } => write!(
                f,
                "output {output} channel {channel}: input {input} has {channels} channels, no channel {channel_index}"
            ),
            Violation::NotRoutable {
                output,
                channel,
                input,
            } => write!(
                f,
                "output {output} channel {channel}: input {input} not routable to {output}"
            ),
            Violation::UnroutedNotAllowed { output, channel } => write!(
                f,
                "output {output} channel {channel}: {output} does not allow unrouted channels"
            ),
            Violation::Block {
                output,
                channel,
                input,
                block_size,
            } => write!(
                f,
                "output {output} channel {channel}: input {input} block size {block_size}: channels must be taken in blocks of {block_size} starting at a multiple of {block_size}"
            ),
            Violation::Reordering {
                output,
                channel,
                input,
            } => write!(
                f,
                "output {output} channel {channel}: input {input} does not allow reordering"
            ),
        }
    }
}

/// Checks `map` against the device's `inputs` and `outputs`; `Err` lists every violation, in
/// output order then channel order per rule. See the module documentation for the rules.
pub fn check(
    map: &ChannelMap,
    inputs: &BTreeMap<String, Is08Input>,
    outputs: &BTreeMap<String, Is08Output>,
) -> Result<(), Vec<Violation>> {
    let mut violations = Vec::new();
    for (output_id, entries) in map {
        check_output(output_id, entries, inputs, outputs, &mut violations);
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

fn check_output(
    output_id: &str,
    entries: &[MapEntry],
    inputs: &BTreeMap<String, Is08Input>,
    outputs: &BTreeMap<String, Is08Output>,
    violations: &mut Vec<Violation>,
) {
    let output = output_id.to_owned();
    let Some(out) = outputs.get(output_id) else {
        violations.push(Violation::UnknownOutput { output });
        return;
    };
    if entries.len() != out.channels {
        violations.push(Violation::ChannelCount {
            output: output.clone(),
            channels: out.channels,
            given: entries.len(),
        });
    }
    let allows = |wanted: Option<&str>| {
        out.routable_inputs
            .as_ref()
            .is_none_or(|list| list.iter().any(|r| r.as_deref() == wanted))
    };

    // Shape and routability; `resolved[k]` is the valid (input, index) of channel k, if any.
    let mut resolved: Vec<Option<(&str, &Is08Input, usize)>> = Vec::with_capacity(entries.len());
    for (channel, entry) in entries.iter().enumerate() {
        let mut valid = None;
        match (&entry.input, entry.channel_index) {
            (None, None) => {
                if !allows(None) {
                    violations.push(Violation::UnroutedNotAllowed {
                        output: output.clone(),
                        channel,
                    });
                }
            }
            (Some(input_id), Some(index)) => match inputs.get(input_id) {
                None => violations.push(Violation::UnknownInput {
                    output: output.clone(),
                    channel,
                    input: input_id.clone(),
                }),
                Some(input) => {
                    if index >= input.channels {
                        violations.push(Violation::InputChannelOutOfRange {
                            output: output.clone(),
                            channel,
                            input: input_id.clone(),
                            channel_index: index,
                            channels: input.channels,
                        });
                    } else {
                        valid = Some((input_id.as_str(), input, index));
                    }
                    if !allows(Some(input_id)) {
                        violations.push(Violation::NotRoutable {
                            output: output.clone(),
                            channel,
                            input: input_id.clone(),
                        });
                    }
                }
            },
            _ => violations.push(Violation::HalfNull {
                output: output.clone(),
                channel,
            }),
        }
        resolved.push(valid);
    }

    // Blocks: each channel of a blocked input starts a run of one whole block.
    let mut k = 0;
    while k < resolved.len() {
        let Some((input_id, input, index)) = resolved[k] else {
            k += 1;
            continue;
        };
        let b = input.block_size.max(1);
        if b == 1 {
            k += 1;
            continue;
        }
        let block = index / b;
        let mut seen = HashSet::new();
        let whole = k + b <= resolved.len()
            && resolved[k..k + b].iter().all(|r| {
                matches!(r, Some((id, _, i)) if *id == input_id && i / b == block && seen.insert(*i))
            });
        if whole {
            k += b;
        } else {
            violations.push(Violation::Block {
                output: output.clone(),
                channel: k,
                input: input_id.to_owned(),
                block_size: b,
            });
            // Skip the rest of this stretch of the input's channels (one report per stretch).
            k += 1;
            while k < resolved.len() && matches!(resolved[k], Some((id, _, _)) if id == input_id) {
                k += 1;
            }
        }
    }

    // Order: inputs without reordering keep one offset within this output.
    let mut offsets: BTreeMap<&str, Option<i64>> = BTreeMap::new();
    for (channel, r) in resolved.iter().enumerate() {
        let Some((input_id, input, index)) = *r else {
            continue;
        };
        if input.reordering {
            continue;
        }
        let offset = index as i64 - channel as i64;
        match offsets.get(input_id) {
            None => {
                offsets.insert(input_id, Some(offset));
            }
            Some(Some(first)) if *first != offset => {
                violations.push(Violation::Reordering {
                    output: output.clone(),
                    channel,
                    input: input_id.to_owned(),
                });
                offsets.insert(input_id, None); // reported once
            }
            Some(_) => {}
        }
    }
}
