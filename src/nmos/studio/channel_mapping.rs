//! IS-08 v1.0 Channel Mapping API of one virtual device: inputs, outputs, `io`, `map/active`
//! and `map/activations` (POST validated against the official schema, then checked against the
//! device's caps with [`is08_check::check`]; immediate → 200, scheduled → 202 and applied by a
//! timer; outputs of a pending activation answer 423; DELETE of a pending one → 204).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::Method;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::registry::{Registry, ResourceType};
use super::reply::Reply;
use super::spec::{self, ChannelMappingSpec, DeviceSpec};
use super::{Shared, StudioState, route_get};
use crate::nmos::is08_check::{self, ChannelMap, Is08Input, Is08Output, MapEntry};
use crate::nmos::tai::TaiTime;

/// A scheduled activation not yet carried out.
#[derive(Debug, Clone)]
struct Pending {
    activation: Value,
    action: Value,
    outputs: Vec<String>,
}

/// A device's IS-08 state.
#[derive(Debug)]
pub(crate) struct DeviceChannelMapping {
    dev: Uuid,
    spec: ChannelMappingSpec,
    inputs: BTreeMap<String, Is08Input>,
    outputs: BTreeMap<String, Is08Output>,
    parents: BTreeMap<String, Value>,
    active: ChannelMap,
    last_activation: Value,
    pending: BTreeMap<String, Pending>,
    next_id: u64,
}

fn map_json(map: &ChannelMap, only: Option<&str>) -> Value {
    let mut out = Map::new();
    for (output, entries) in map {
        if only.is_some_and(|o| o != output) {
            continue;
        }
        let channels: Map<String, Value> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                (
                    i.to_string(),
                    json!({"input": e.input, "channel_index": e.channel_index}),
                )
            })
            .collect();
        out.insert(output.clone(), Value::Object(channels));
    }
    Value::Object(out)
}

fn channel_labels(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"label": format!("Channel {}", i + 1)}))
            .collect(),
    )
}

impl DeviceChannelMapping {
    /// The state of a device's IS-08 section, with its initial map.
    pub(crate) fn new(
        dev: Uuid,
        d: &DeviceSpec,
        cm: &ChannelMappingSpec,
    ) -> Result<DeviceChannelMapping, String> {
        let active = cm.initial_map()?;
        let (inputs, outputs) = cm.constraints();
        let parents = cm
            .inputs
            .iter()
            .map(|i| {
                let parent = i
                    .parent_receiver
                    .as_ref()
                    .and_then(|label| d.receivers.iter().find(|r| &r.label == label))
                    .map(|r| json!({"id": spec::receiver_id(d, r).to_string(), "type": "receiver"}))
                    .unwrap_or_else(|| json!({"id": null, "type": null}));
                (i.id.clone(), parent)
            })
            .collect();
        Ok(DeviceChannelMapping {
            dev,
            spec: cm.clone(),
            inputs,
            outputs,
            parents,
            active,
            last_activation: json!({"mode": null, "requested_time": null, "activation_time": null}),
            pending: BTreeMap::new(),
            next_id: 1,
        })
    }

    /// Back to the initial map with nothing pending, as after a device restart (activation ids
    /// keep counting, so an old id never names a new activation).
    pub(crate) fn reset(&mut self) -> Result<(), String> {
        self.active = self.spec.initial_map()?;
        self.pending.clear();
        self.last_activation =
            json!({"mode": null, "requested_time": null, "activation_time": null});
        Ok(())
    }

    /// The `map/active` body.
    pub(crate) fn active_json(&self) -> Value {
        json!({"activation": self.last_activation, "map": map_json(&self.active, None)})
    }

    fn input_json(&self, id: &str) -> Option<Value> {
        let i = self.spec.inputs.iter().find(|i| i.id == id)?;
        Some(json!({
            "properties": {"name": i.id, "description": format!("input {}", i.id)},
            "parent": self.parents.get(id).cloned().unwrap_or(Value::Null),
            "channels": channel_labels(i.channels),
            "caps": {"reordering": i.reordering, "block_size": i.block_size}
        }))
    }

    fn output_json(&self, id: &str) -> Option<Value> {
        let o = self.spec.outputs.iter().find(|o| o.id == id)?;
        Some(json!({
            "properties": {"name": o.id, "description": format!("output {}", o.id)},
            "source_id": spec::output_source_id(self.dev, id).to_string(),
            "channels": channel_labels(o.channels),
            "caps": {"routable_inputs": o.routable_inputs_caps()}
        }))
    }

    fn io_json(&self) -> Value {
        let inputs: Map<String, Value> = self
            .spec
            .inputs
            .iter()
            .filter_map(|i| Some((i.id.clone(), self.input_json(&i.id)?)))
            .collect();
        let outputs: Map<String, Value> = self
            .spec
            .outputs
            .iter()
            .filter_map(|o| Some((o.id.clone(), self.output_json(&o.id)?)))
            .collect();
        json!({"inputs": inputs, "outputs": outputs})
    }

    fn pending_json(&self, id: &str) -> Option<Value> {
        self.pending
            .get(id)
            .map(|p| json!({"activation": p.activation, "action": p.action}))
    }

    /// Applies an action to the active map and bumps the IS-04 versions (device, and the
    /// sources of the changed outputs).
    fn apply(&mut self, registry: &mut Registry, action: &ChannelMap, activation: Value) {
        for (output, entries) in action {
            let routes: Vec<String> = entries
                .iter()
                .enumerate()
                .map(|(i, e)| match (&e.input, e.channel_index) {
                    (Some(input), Some(c)) => format!("{i}←{input}:{c}"),
                    _ => format!("{i}←silence"),
                })
                .collect();
            tracing::info!(
                device = %self.dev, %output,
                "virtual studio: IS-08 map: output {output} = {}", routes.join(", ")
            );
            self.active.insert(output.clone(), entries.clone());
            registry.modify(
                ResourceType::Sources,
                spec::output_source_id(self.dev, output),
                |_| {},
            );
        }
        registry.modify(ResourceType::Devices, self.dev, |_| {});
        self.last_activation = activation;
    }
}

/// Routes `…/x-nmos/channelmapping/v1.0/…` of device `dev`.
pub(crate) fn route(
    shared: &Arc<Shared>,
    dev: Uuid,
    method: &Method,
    rest: &[&str],
    body: Option<&Value>,
) -> Reply {
    if let ["map", "activations"] = rest
        && *method == Method::POST
    {
        return post_activation(shared, dev, body);
    }
    let mut st = shared.lock();
    let Some(cm) = st
        .devices
        .get_mut(&dev)
        .and_then(|d| d.channel_mapping.as_mut())
    else {
        return Reply::not_found("channelmapping");
    };
    let missing = |what: &str, id: &str| Reply::error(404, format!("no {what} {id:?}"), None);
    let reply = match rest {
        [] => Reply::children(&["inputs/", "outputs/", "map/", "io/"]),
        ["io"] => Reply::ok(cm.io_json()),
        ["inputs"] => Reply::ok(Value::Array(
            cm.spec
                .inputs
                .iter()
                .map(|i| json!(format!("{}/", i.id)))
                .collect(),
        )),
        ["outputs"] => Reply::ok(Value::Array(
            cm.spec
                .outputs
                .iter()
                .map(|o| json!(format!("{}/", o.id)))
                .collect(),
        )),
        ["inputs", id, rest @ ..] => match (cm.input_json(id), rest) {
            (None, _) => missing("input", id),
            (Some(_), []) => Reply::children(&["caps/", "parent/", "channels/", "properties/"]),
            (Some(v), [part @ ("caps" | "parent" | "channels" | "properties")]) => {
                Reply::ok(v[*part].clone())
            }
            (Some(_), _) => Reply::not_found(&rest.join("/")),
        },
        ["outputs", id, rest @ ..] => match (cm.output_json(id), rest) {
            (None, _) => missing("output", id),
            (Some(_), []) => Reply::children(&["caps/", "sourceid/", "channels/", "properties/"]),
            (Some(v), ["sourceid"]) => Reply::ok(v["source_id"].clone()),
            (Some(v), [part @ ("caps" | "channels" | "properties")]) => Reply::ok(v[*part].clone()),
            (Some(_), _) => Reply::not_found(&rest.join("/")),
        },
        ["map"] => Reply::children(&["activations/", "active/"]),
        ["map", "active"] => Reply::ok(cm.active_json()),
        ["map", "active", out] => {
            if cm.active.contains_key(*out) {
                Reply::ok(json!({"map": map_json(&cm.active, Some(out))}))
            } else {
                missing("output", out)
            }
        }
        ["map", "activations"] => {
            if *method != Method::GET && *method != Method::HEAD {
                return Reply::method_not_allowed(method.as_str(), "GET, POST");
            }
            let all: Map<String, Value> = cm
                .pending
                .keys()
                .filter_map(|k| Some((k.clone(), cm.pending_json(k)?)))
                .collect();
            Reply::ok(Value::Object(all))
        }
        ["map", "activations", id] => match *method {
            Method::GET | Method::HEAD => match cm.pending_json(id) {
                Some(v) => Reply::ok(v),
                None => missing("pending activation", id),
            },
            Method::DELETE => {
                return if cm.pending.remove(*id).is_some() {
                    tracing::info!(%dev, activation = id, "virtual studio: IS-08 activation cancelled");
                    Reply::empty(204)
                } else {
                    missing("pending activation", id)
                };
            }
            _ => return Reply::method_not_allowed(method.as_str(), "GET, DELETE"),
        },
        _ => return Reply::not_found(&rest.join("/")),
    };
    route_get(method, reply)
}

/// Parses `action` (already schema-checked) into the entries it sets, per output.
fn parse_action(
    cm: &DeviceChannelMapping,
    action: &Map<String, Value>,
) -> Result<ChannelMap, String> {
    let mut result = ChannelMap::new();
    for (output, channels) in action {
        let Some(current) = cm.active.get(output) else {
            return Err(format!("output '{output}' does not exist on this device"));
        };
        let mut entries = current.clone();
        let Some(channels) = channels.as_object() else {
            return Err(format!("output '{output}': channels must be an object"));
        };
        for (index, entry) in channels {
            let i: usize = index
                .parse()
                .ok()
                .filter(|i| *i < entries.len() && (index == "0" || !index.starts_with('0')))
                .ok_or_else(|| {
                    format!(
                        "output '{output}' has no channel {index:?} (it has {})",
                        entries.len()
                    )
                })?;
            let input = match entry.get("input") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Null) | None => None,
                Some(other) => {
                    return Err(format!(
                        "output '{output}' channel {index}: input {other} is not a string"
                    ));
                }
            };
            let channel_index = match entry.get("channel_index") {
                Some(Value::Null) | None => None,
                Some(v) => Some(
                    v.as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| {
                            format!("output '{output}' channel {index}: bad channel_index {v}")
                        })?,
                ),
            };
            entries[i] = MapEntry {
                input,
                channel_index,
            };
        }
        result.insert(output.clone(), entries);
    }
    Ok(result)
}

fn post_activation(shared: &Arc<Shared>, dev: Uuid, body: Option<&Value>) -> Reply {
    let Some(body) = body else {
        return Reply::error(400, "POST without a body", None);
    };
    if let Err(problems) = shared.schemas.validate_is08_activation(body) {
        tracing::info!(%dev, ?problems, "virtual studio: IS-08 activation refused (schema)");
        return Reply::bad_request(
            format!(
                "Could not match the request to the schema: {}",
                problems.join("; ")
            ),
            &problems,
        );
    }
    let action_json = body.get("action").cloned().unwrap_or(Value::Null);
    let Some(action_obj) = action_json.as_object() else {
        return Reply::error(400, "action must be an object", None);
    };
    let mut st = shared.lock();
    let StudioState {
        registry, devices, ..
    } = &mut *st;
    let Some(cm) = devices
        .get_mut(&dev)
        .and_then(|d| d.channel_mapping.as_mut())
    else {
        return Reply::not_found("channelmapping");
    };
    for output in action_obj.keys() {
        if cm.pending.values().any(|p| p.outputs.contains(output)) {
            return Reply::error(
                423,
                format!(
                    "Output '{output}' is locked by another activation. No changes will be made."
                ),
                None,
            );
        }
    }
    let action = match parse_action(cm, action_obj) {
        Ok(a) => a,
        Err(e) => return Reply::bad_request(e, &[]),
    };
    if let Err(violations) = is08_check::check(&action, &cm.inputs, &cm.outputs) {
        let texts: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
        tracing::info!(%dev, ?texts, "virtual studio: IS-08 activation refused (caps)");
        return Reply::bad_request(texts.join("; "), &texts);
    }
    let activation = &body["activation"];
    let mode = activation["mode"].as_str().unwrap_or("");
    let id = cm.next_id.to_string();
    cm.next_id += 1;
    match mode {
        "activate_immediate" => {
            let act = json!({"mode": mode, "requested_time": null,
                "activation_time": TaiTime::now().to_string()});
            cm.apply(registry, &action, act.clone());
            tracing::info!(%dev, activation = %id, "virtual studio: IS-08 immediate activation");
            Reply::ok(json!({ id: {"activation": act, "action": action_json} }))
        }
        "activate_scheduled_absolute" | "activate_scheduled_relative" => {
            let Some(requested) = activation["requested_time"]
                .as_str()
                .and_then(|t| TaiTime::parse(t).ok())
            else {
                return Reply::bad_request(format!("{mode} needs a TAI requested_time"), &[]);
            };
            let Some((at, delay)) =
                super::activation_instant(mode == "activate_scheduled_absolute", requested)
            else {
                return Reply::bad_request(
                    format!("requested_time {requested} is too far in the future"),
                    &[],
                );
            };
            let act = json!({"mode": mode, "requested_time": requested.to_string(),
                "activation_time": at.to_string()});
            cm.pending.insert(
                id.clone(),
                Pending {
                    activation: act.clone(),
                    action: action_json.clone(),
                    outputs: action.keys().cloned().collect(),
                },
            );
            let shared2 = shared.clone();
            let id2 = id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let mut st = shared2.lock();
                let StudioState {
                    registry, devices, ..
                } = &mut *st;
                let Some(cm) = devices
                    .get_mut(&dev)
                    .and_then(|d| d.channel_mapping.as_mut())
                else {
                    return;
                };
                let Some(p) = cm.pending.remove(&id2) else {
                    return;
                };
                let Some(obj) = p.action.as_object() else {
                    return;
                };
                // Re-read against the map as it is now (other outputs may have changed).
                match parse_action(cm, obj) {
                    Ok(action) => {
                        cm.apply(registry, &action, p.activation);
                        tracing::info!(%dev, activation = %id2, "virtual studio: IS-08 scheduled activation applied");
                    }
                    Err(e) => {
                        tracing::warn!(%dev, activation = %id2, error = %e, "virtual studio: IS-08 scheduled activation failed");
                    }
                }
            });
            tracing::info!(%dev, activation = %id, %at, "virtual studio: IS-08 scheduled activation");
            Reply::json(
                202,
                json!({ id: {"activation": act, "action": action_json} }),
            )
        }
        other => Reply::bad_request(format!("unknown activation mode {other:?}"), &[]),
    }
}
