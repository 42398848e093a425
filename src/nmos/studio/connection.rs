//! IS-05 v1.1 Connection API of one virtual device: `single/{senders,receivers}/{id}/…`
//! (`constraints`, `staged` GET/PATCH, `active`, `transporttype`, senders' `transportfile`) and
//! `bulk/{senders,receivers}`.
//!
//! PATCH semantics as a real device: schema validation (400 with the reasons), leg count and
//! parameter checks against `/constraints`, merge into `/staged`, immediate activation (200),
//! scheduled activation (202, applied by a timer; the resource answers 423 to anything but a
//! cancel until then), and the IS-04 `subscription` and `version` update on every activation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::registry::{Registry, ResourceType};
use super::reply::Reply;
use super::spec::{self, DeviceSpec, FormatSpec};
use super::{Shared, StudioState, route_get};
use crate::nmos::schemas::NmosApi;
use crate::nmos::tai::TaiTime;

/// Schema of a sender PATCH body.
const SENDER_STAGE_SCHEMA: &str = "sender-stage-schema.json";

/// One sender's or receiver's IS-05 state.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub label: String,
    pub sender: bool,
    pub format: FormatSpec,
    pub channels: usize,
    /// IS-04 transport URN.
    pub transport: String,
    pub staged: Value,
    pub active: Value,
    pub constraints: Value,
    /// Local interface address per leg (what `interface_ip: auto` resolves to).
    pub interfaces: Vec<String>,
    /// The generation of the pending scheduled activation, if any.
    pub pending: Option<u64>,
    pub generation: u64,
}

/// A device's senders and receivers.
#[derive(Debug, Default)]
pub(crate) struct DeviceConnection {
    senders: BTreeMap<Uuid, Endpoint>,
    receivers: BTreeMap<Uuid, Endpoint>,
}

fn null_activation() -> Value {
    json!({"mode": null, "requested_time": null, "activation_time": null})
}

impl DeviceConnection {
    /// The initial state: senders enabled on fixed multicast groups, receivers disabled.
    pub(crate) fn new(d: &DeviceSpec, index: usize) -> DeviceConnection {
        let mut c = DeviceConnection::default();
        let n = index % 250 + 1;
        for (i, s) in d.senders.iter().enumerate() {
            let id = spec::sender_id(d, s);
            let interfaces: Vec<String> = (0..s.legs)
                .map(|leg| format!("192.168.{}.{n}", 10 + leg))
                .collect();
            let legs: Vec<Value> = (0..s.legs)
                .map(|leg| {
                    json!({
                        "source_ip": interfaces[leg],
                        "destination_ip": format!("239.{}.{n}.{}", 10 + leg, i % 250 + 1),
                        "source_port": 5004, "destination_port": 5004, "rtp_enabled": true
                    })
                })
                .collect();
            let constraints: Vec<Value> = interfaces
                .iter()
                .map(|ip| {
                    json!({"source_ip": {"enum": [ip]}, "destination_ip": {},
                        "source_port": {}, "destination_port": {}, "rtp_enabled": {}})
                })
                .collect();
            let staged = json!({"receiver_id": null, "master_enable": true,
                "activation": null_activation(), "transport_params": legs});
            c.senders.insert(
                id,
                Endpoint {
                    label: s.label.clone(),
                    sender: true,
                    format: s.format,
                    channels: s.channels.unwrap_or(2),
                    transport: s.transport.clone(),
                    active: staged.clone(),
                    staged,
                    constraints: Value::Array(constraints),
                    interfaces,
                    pending: None,
                    generation: 0,
                },
            );
        }
        for r in &d.receivers {
            let id = spec::receiver_id(d, r);
            let interfaces: Vec<String> = (0..r.legs)
                .map(|leg| format!("192.168.{}.{}", 10 + leg, n + 100))
                .collect();
            let legs: Vec<Value> = (0..r.legs)
                .map(|_| {
                    json!({"source_ip": null, "multicast_ip": null, "interface_ip": "auto",
                        "destination_port": "auto", "rtp_enabled": true})
                })
                .collect();
            let constraints: Vec<Value> = interfaces
                .iter()
                .map(|ip| {
                    json!({"source_ip": {}, "multicast_ip": {}, "interface_ip": {"enum": [ip]},
                        "destination_port": {}, "rtp_enabled": {}})
                })
                .collect();
            let staged = json!({"sender_id": null, "master_enable": false,
                "activation": null_activation(),
                "transport_file": {"data": null, "type": null}, "transport_params": legs});
            let mut ep = Endpoint {
                label: r.label.clone(),
                sender: false,
                format: r.format,
                channels: 2,
                transport: r.transport.clone(),
                active: Value::Null,
                staged,
                constraints: Value::Array(constraints),
                interfaces,
                pending: None,
                generation: 0,
            };
            ep.active = ep.resolved(null_activation());
            c.receivers.insert(id, ep);
        }
        c
    }

    /// A sender's (`sender`) or receiver's state.
    pub(crate) fn endpoint(&self, id: Uuid, sender: bool) -> Option<&Endpoint> {
        if sender {
            self.senders.get(&id)
        } else {
            self.receivers.get(&id)
        }
    }

    fn endpoint_mut(&mut self, id: Uuid, sender: bool) -> Option<&mut Endpoint> {
        if sender {
            self.senders.get_mut(&id)
        } else {
            self.receivers.get_mut(&id)
        }
    }
}

impl Endpoint {
    /// The staged parameters as they take effect (`auto` resolved), with `activation`.
    fn resolved(&self, activation: Value) -> Value {
        let mut v = self.staged.clone();
        v["activation"] = activation;
        if let Some(legs) = v["transport_params"].as_array_mut() {
            for (i, leg) in legs.iter_mut().enumerate() {
                if leg.get("interface_ip") == Some(&json!("auto")) {
                    leg["interface_ip"] =
                        json!(self.interfaces.get(i).cloned().unwrap_or_default());
                }
                for port in ["destination_port", "source_port"] {
                    if leg.get(port) == Some(&json!("auto")) {
                        leg[port] = json!(5004);
                    }
                }
            }
        }
        v
    }

    /// The IS-04 `subscription` matching the active parameters.
    pub(crate) fn subscription(&self) -> Value {
        let enabled = self.active["master_enable"] == json!(true);
        if self.sender {
            json!({"receiver_id": self.active["receiver_id"].clone(), "active": enabled})
        } else {
            let sender_id = if enabled {
                self.active["sender_id"].clone()
            } else {
                Value::Null
            };
            json!({"sender_id": sender_id, "active": enabled})
        }
    }

    fn kind(&self) -> ResourceType {
        if self.sender {
            ResourceType::Senders
        } else {
            ResourceType::Receivers
        }
    }

    /// The SDP of a sender, from its active parameters.
    fn sdp(&self, id: Uuid) -> String {
        let legs = self.active["transport_params"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let first_src = legs
            .first()
            .and_then(|l| l["source_ip"].as_str())
            .unwrap_or("0.0.0.0")
            .to_owned();
        let mut s = format!(
            "v=0\r\no=- {} {} IN IP4 {first_src}\r\ns={}\r\nt=0 0\r\n",
            id.as_u128() % 1_000_000_000,
            self.generation,
            self.label
        );
        if legs.len() > 1 {
            let mids: Vec<String> = (0..legs.len()).map(|i| format!("leg{i}")).collect();
            s.push_str(&format!("a=group:DUP {}\r\n", mids.join(" ")));
        }
        for (i, leg) in legs.iter().enumerate() {
            let dst = leg["destination_ip"].as_str().unwrap_or("0.0.0.0");
            let src = leg["source_ip"].as_str().unwrap_or("0.0.0.0");
            let port = leg["destination_port"].as_u64().unwrap_or(5004);
            let (media, pt, rtpmap, fmtp) = match self.format {
                FormatSpec::Video => (
                    "video",
                    96,
                    "raw/90000".to_owned(),
                    Some(
                        "sampling=YCbCr-4:2:2; width=1920; height=1080; exactframerate=25; depth=10; TCS=SDR; colorimetry=BT709; PM=2110GPM; SSN=ST2110-20:2017",
                    ),
                ),
                FormatSpec::Audio => ("audio", 97, format!("L24/48000/{}", self.channels), None),
                FormatSpec::Data => ("video", 100, "smpte291/90000".to_owned(), None),
            };
            s.push_str(&format!(
                "m={media} {port} RTP/AVP {pt}\r\nc=IN IP4 {dst}/64\r\n"
            ));
            s.push_str(&format!("a=source-filter: incl IN IP4 {dst} {src}\r\n"));
            s.push_str(&format!("a=rtpmap:{pt} {rtpmap}\r\n"));
            if let Some(f) = fmtp {
                s.push_str(&format!("a=fmtp:{pt} {f}\r\n"));
            }
            if self.format == FormatSpec::Audio {
                s.push_str("a=ptime:1\r\n");
            }
            s.push_str("a=mediaclk:direct=0\r\na=ts-refclk:localmac=02-00-00-00-00-00\r\n");
            if legs.len() > 1 {
                s.push_str(&format!("a=mid:leg{i}\r\n"));
            }
        }
        s
    }
}

/// One media section of an SDP: destination port, connection address, source filter address.
type SdpLeg = (Option<u64>, Option<String>, Option<String>);

/// Per leg (media section): what a receiver takes from the SDP. A session-level `c=` or
/// `a=source-filter` applies to media sections without their own.
fn sdp_legs(sdp: &str) -> Vec<SdpLeg> {
    let mut session: SdpLeg = (None, None, None);
    let mut legs: Vec<SdpLeg> = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            let port = m.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            legs.push((port, None, None));
            continue;
        }
        let target = legs.last_mut().unwrap_or(&mut session);
        if let Some(c) = line.strip_prefix("c=") {
            target.1 = c
                .split_whitespace()
                .nth(2)
                .map(|a| a.split('/').next().unwrap_or(a).to_owned());
        } else if let Some(f) = line.strip_prefix("a=source-filter:") {
            target.2 = f.split_whitespace().nth(4).map(str::to_owned);
        }
    }
    for leg in &mut legs {
        if leg.1.is_none() {
            leg.1.clone_from(&session.1);
        }
        if leg.2.is_none() {
            leg.2.clone_from(&session.2);
        }
    }
    legs
}

fn is_multicast(ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>()
        .map(|a| a.is_multicast())
        .unwrap_or(false)
}

/// Deep merge of a PATCH object into the staged object (arrays merge element by element).
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing)
                        if existing.is_object() && v.is_object() && k != "transport_file" =>
                    {
                        merge(existing, v)
                    }
                    Some(existing) if existing.is_array() && v.is_array() => merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(p)) => {
            for (i, v) in p.iter().enumerate() {
                match t.get_mut(i) {
                    Some(existing) => merge(existing, v),
                    None => t.push(v.clone()),
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Routes `…/x-nmos/connection/v1.1/…` of device `dev`.
pub(crate) fn route(
    shared: &Arc<Shared>,
    dev: Uuid,
    method: &Method,
    rest: &[&str],
    body: Option<&Value>,
) -> Reply {
    match rest {
        [] => route_get(method, Reply::children(&["bulk/", "single/"])),
        ["bulk"] | ["single"] => route_get(method, Reply::children(&["senders/", "receivers/"])),
        ["bulk", kind @ ("senders" | "receivers")] => {
            if *method != Method::POST {
                return Reply::method_not_allowed(method.as_str(), "POST");
            }
            bulk(shared, dev, *kind == "senders", body)
        }
        ["single", kind @ ("senders" | "receivers"), rest @ ..] => {
            let sender = *kind == "senders";
            match rest {
                [] => {
                    let st = shared.lock();
                    let Some(d) = st.devices.get(&dev) else {
                        return Reply::not_found(kind);
                    };
                    let ids: Vec<Value> = if sender {
                        d.connection
                            .senders
                            .keys()
                            .map(|id| json!(format!("{id}/")))
                            .collect()
                    } else {
                        d.connection
                            .receivers
                            .keys()
                            .map(|id| json!(format!("{id}/")))
                            .collect()
                    };
                    route_get(method, Reply::ok(Value::Array(ids)))
                }
                [id, rest @ ..] => {
                    let Ok(id) = Uuid::parse_str(id) else {
                        return Reply::error(404, format!("no {kind} with id {id}"), None);
                    };
                    single(shared, dev, sender, id, method, rest, body)
                }
            }
        }
        _ => Reply::not_found(&rest.join("/")),
    }
}

fn single(
    shared: &Arc<Shared>,
    dev: Uuid,
    sender: bool,
    id: Uuid,
    method: &Method,
    rest: &[&str],
    body: Option<&Value>,
) -> Reply {
    let what = if sender { "sender" } else { "receiver" };
    if let ["staged"] = rest
        && *method == Method::PATCH
    {
        let Some(body) = body else {
            return Reply::error(400, "PATCH without a body", None);
        };
        let mut st = shared.lock();
        return patch(shared, &mut st, dev, id, sender, body);
    }
    let st = shared.lock();
    let Some(ep) = st
        .devices
        .get(&dev)
        .and_then(|d| d.connection.endpoint(id, sender))
    else {
        return Reply::error(404, format!("no {what} {id} on this device"), None);
    };
    match rest {
        [] => {
            let mut children = vec!["constraints/", "staged/", "active/"];
            if sender {
                children.push("transportfile/");
            }
            children.push("transporttype/");
            route_get(method, Reply::children(&children))
        }
        ["constraints"] => route_get(method, Reply::ok(ep.constraints.clone())),
        ["staged"] => {
            if *method == Method::GET || *method == Method::HEAD {
                Reply::ok(ep.staged.clone())
            } else {
                Reply::method_not_allowed(method.as_str(), "GET, PATCH")
            }
        }
        ["active"] => route_get(method, Reply::ok(ep.active.clone())),
        ["transporttype"] => {
            let base = match ep.transport.rsplit_once(':') {
                Some((head, tail)) => {
                    format!("{head}:{}", tail.split('.').next().unwrap_or(tail))
                }
                None => ep.transport.clone(),
            };
            route_get(method, Reply::ok(json!(base)))
        }
        ["transportfile"] if sender => {
            if ep.active["master_enable"] != json!(true) {
                return route_get(
                    method,
                    Reply::error(404, "the sender is not enabled: no transport file", None),
                );
            }
            route_get(
                method,
                Reply::text(200, ep.sdp(id), "application/sdp").header("Cache-Control", "no-cache"),
            )
        }
        _ => Reply::not_found(&rest.join("/")),
    }
}

/// Checks a PATCH body's transport parameters against the constraints.
fn check_params(ep: &Endpoint, body: &Value) -> Result<(), Vec<String>> {
    let Some(legs) = body.get("transport_params").and_then(Value::as_array) else {
        return Ok(());
    };
    let constraints = ep.constraints.as_array().cloned().unwrap_or_default();
    if legs.len() != constraints.len() {
        return Err(vec![format!(
            "transport_params has {} element(s); this {} has {} leg(s) (see /constraints)",
            legs.len(),
            if ep.sender { "sender" } else { "receiver" },
            constraints.len()
        )]);
    }
    let mut problems = Vec::new();
    for (i, (leg, c)) in legs.iter().zip(&constraints).enumerate() {
        let Some(leg) = leg.as_object() else { continue };
        for (k, v) in leg {
            if k.starts_with("ext_") {
                continue;
            }
            let Some(rule) = c.get(k) else {
                problems.push(format!(
                    "transport_params[{i}].{k} is not supported by this device"
                ));
                continue;
            };
            if let Some(allowed) = rule.get("enum").and_then(Value::as_array)
                && v != &json!("auto")
                && !allowed.contains(v)
            {
                problems.push(format!(
                    "transport_params[{i}].{k} = {v} is not one of {}",
                    Value::Array(allowed.clone())
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// One staged PATCH (also one element of a bulk request), under the lock.
fn patch(
    shared: &Arc<Shared>,
    st: &mut StudioState,
    dev: Uuid,
    id: Uuid,
    sender: bool,
    body: &Value,
) -> Reply {
    let what = if sender { "sender" } else { "receiver" };
    if !body.is_object() {
        return Reply::error(
            400,
            format!("a {what} PATCH body must be a JSON object"),
            None,
        );
    }
    let valid = if sender {
        match shared
            .schemas
            .validate_with_file(NmosApi::Is05V1_1, SENDER_STAGE_SCHEMA, body)
        {
            Ok(r) => r,
            Err(e) => return Reply::error(500, format!("schema unavailable: {e}"), None),
        }
    } else {
        shared.schemas.validate_is05_staged_patch(body)
    };
    if let Err(problems) = valid {
        tracing::info!(%dev, %id, ?problems, "virtual studio: IS-05 PATCH refused (schema)");
        return Reply::bad_request(
            format!(
                "the request does not match the {what} staged schema: {}",
                problems.join("; ")
            ),
            &problems,
        );
    }
    let StudioState {
        registry, devices, ..
    } = st;
    let Some(ep) = devices
        .get_mut(&dev)
        .and_then(|d| d.connection.endpoint_mut(id, sender))
    else {
        return Reply::error(404, format!("no {what} {id} on this device"), None);
    };
    let mode = body
        .get("activation")
        .map(|a| a.get("mode").cloned().unwrap_or(Value::Null));
    let cancel = matches!(mode, Some(Value::Null));
    if ep.pending.is_some() && !cancel {
        return Reply::error(
            423,
            format!("{what} {id} is locked by a pending scheduled activation"),
            Some("cancel it with {\"activation\": {\"mode\": null}}".to_owned()),
        );
    }
    if let Err(problems) = check_params(ep, body) {
        return Reply::bad_request(problems.join("; "), &problems);
    }
    let plan = match plan_of(body) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let mut staged = ep.staged.clone();
    let mut changes = body.clone();
    if let Some(obj) = changes.as_object_mut() {
        obj.remove("activation");
    }
    // A receiver takes its transport parameters from the SDP; values in the PATCH win.
    if !sender
        && let Some(sdp) = body
            .get("transport_file")
            .and_then(|f| f.get("data"))
            .and_then(Value::as_str)
    {
        let legs = sdp_legs(sdp);
        if legs.is_empty() {
            return Reply::bad_request(
                "transport_file.data is not a usable SDP (no media description)",
                &[],
            );
        }
        if let Some(params) = staged["transport_params"].as_array_mut() {
            for (i, leg) in params.iter_mut().enumerate() {
                let Some((port, addr, src)) = legs.get(i) else {
                    break;
                };
                if !leg.is_object() {
                    continue;
                }
                if let Some(p) = port {
                    leg["destination_port"] = json!(p);
                }
                if let Some(a) = addr {
                    if is_multicast(a) {
                        leg["multicast_ip"] = json!(a);
                    } else {
                        leg["multicast_ip"] = Value::Null;
                        leg["interface_ip"] = json!(a);
                    }
                }
                leg["source_ip"] = src.as_ref().map_or(Value::Null, |s| json!(s));
            }
        }
    }
    merge(&mut staged, &changes);
    ep.staged = staged;
    match plan {
        Plan::Stage => {
            if cancel && ep.pending.take().is_some() {
                tracing::info!(%dev, %id, "virtual studio: scheduled activation cancelled");
            }
            ep.staged["activation"] = null_activation();
            Reply::ok(ep.staged.clone())
        }
        Plan::Immediate => {
            let activation = json!({"mode": "activate_immediate", "requested_time": null,
                "activation_time": TaiTime::now().to_string()});
            activate(registry, id, ep, activation.clone());
            let mut response = ep.staged.clone();
            response["activation"] = activation;
            Reply::ok(response)
        }
        Plan::Scheduled {
            mode,
            requested,
            at,
            delay,
        } => {
            ep.generation += 1;
            let generation = ep.generation;
            ep.pending = Some(generation);
            let activation = json!({"mode": mode, "requested_time": requested.to_string(),
                "activation_time": at.to_string()});
            ep.staged["activation"] = activation.clone();
            schedule(
                shared.clone(),
                dev,
                id,
                sender,
                generation,
                delay,
                activation,
            );
            tracing::info!(%dev, %id, %at, "virtual studio: IS-05 scheduled activation");
            Reply::json(202, ep.staged.clone())
        }
    }
}

/// What a PATCH asks for, decided before anything is changed.
enum Plan {
    /// Stage only (or cancel a pending activation).
    Stage,
    /// Activate now.
    Immediate,
    /// Activate at `at` (TAI), `delay` from now.
    Scheduled {
        mode: &'static str,
        requested: TaiTime,
        at: TaiTime,
        delay: Duration,
    },
}

/// The plan for a PATCH's `activation`, or the 400 it deserves.
fn plan_of(body: &Value) -> Result<Plan, Reply> {
    let Some(activation) = body.get("activation") else {
        return Ok(Plan::Stage);
    };
    let mode: &'static str = match activation.get("mode").and_then(Value::as_str) {
        None => return Ok(Plan::Stage),
        Some("activate_immediate") => return Ok(Plan::Immediate),
        Some("activate_scheduled_absolute") => "activate_scheduled_absolute",
        Some("activate_scheduled_relative") => "activate_scheduled_relative",
        Some(other) => {
            return Err(Reply::bad_request(
                format!("unknown activation mode {other:?}"),
                &[],
            ));
        }
    };
    let Some(requested) = activation
        .get("requested_time")
        .and_then(Value::as_str)
        .and_then(|t| TaiTime::parse(t).ok())
    else {
        return Err(Reply::bad_request(
            format!("{mode} needs a TAI requested_time"),
            &[],
        ));
    };
    let Some((at, delay)) =
        super::activation_instant(mode == "activate_scheduled_absolute", requested)
    else {
        return Err(Reply::bad_request(
            format!("requested_time {requested} is too far in the future"),
            &[],
        ));
    };
    Ok(Plan::Scheduled {
        mode,
        requested,
        at,
        delay,
    })
}

/// Makes the staged parameters active and updates the IS-04 resource (version bump).
fn activate(registry: &mut Registry, id: Uuid, ep: &mut Endpoint, activation: Value) {
    log_route(registry, id, ep, &activation);
    ep.generation += 1;
    ep.active = ep.resolved(activation);
    ep.staged["activation"] = null_activation();
    ep.pending = None;
    let subscription = ep.subscription();
    registry.modify(ep.kind(), id, |v| v["subscription"] = subscription);
}

/// Says at info level what an activation does, by label (what an engineer watching a dry run
/// wants to read): "receiver MIX-IN1 now takes CAM2-V".
fn log_route(registry: &Registry, id: Uuid, ep: &Endpoint, activation: &Value) {
    let staged = &ep.staged;
    let enabled = staged["master_enable"] == json!(true);
    let mode = activation["mode"].as_str().unwrap_or("?");
    if ep.sender {
        tracing::info!(sender = %ep.label, %id, enabled, mode, "virtual studio: IS-05 sender activated");
        return;
    }
    let source = staged["sender_id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .map(|s| {
            registry
                .get(ResourceType::Senders, s)
                .and_then(|v| v["label"].as_str())
                .map_or_else(|| format!("unknown sender {s}"), str::to_owned)
        });
    match (enabled, source) {
        (true, Some(sender)) => tracing::info!(
            receiver = %ep.label, %id, %sender, mode,
            "virtual studio: IS-05 route: receiver {} now takes {sender}", ep.label
        ),
        (true, None) => tracing::info!(
            receiver = %ep.label, %id, mode,
            "virtual studio: IS-05 route: receiver {} enabled on a non-NMOS stream", ep.label
        ),
        (false, _) => tracing::info!(
            receiver = %ep.label, %id, mode,
            "virtual studio: IS-05 route: receiver {} disconnected", ep.label
        ),
    }
}

/// Applies a scheduled activation at its time, unless cancelled or superseded meanwhile.
fn schedule(
    shared: Arc<Shared>,
    dev: Uuid,
    id: Uuid,
    sender: bool,
    generation: u64,
    delay: Duration,
    activation: Value,
) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let mut st = shared.lock();
        let StudioState {
            registry, devices, ..
        } = &mut *st;
        if let Some(ep) = devices
            .get_mut(&dev)
            .and_then(|d| d.connection.endpoint_mut(id, sender))
            && ep.pending == Some(generation)
        {
            activate(registry, id, ep, activation);
            tracing::info!(%dev, %id, "virtual studio: IS-05 scheduled activation applied");
        }
    });
}

fn bulk(shared: &Arc<Shared>, dev: Uuid, sender: bool, body: Option<&Value>) -> Reply {
    let Some(body) = body else {
        return Reply::error(400, "bulk request without a body", None);
    };
    if !sender && let Some(Err(problems)) = shared.schemas.validate_is05_bulk_receivers(body) {
        return Reply::bad_request(
            format!(
                "the request does not match the bulk schema: {}",
                problems.join("; ")
            ),
            &problems,
        );
    }
    let Some(items) = body.as_array() else {
        return Reply::error(400, "a bulk request is an array of {id, params}", None);
    };
    let mut st = shared.lock();
    let mut results = Vec::new();
    for item in items {
        let id_text = item.get("id").and_then(Value::as_str).unwrap_or("");
        let mut result = Map::new();
        result.insert("id".to_owned(), json!(id_text));
        let reply = match (Uuid::parse_str(id_text), item.get("params")) {
            (Ok(id), Some(params)) => patch(shared, &mut st, dev, id, sender, params),
            _ => Reply::error(400, "each element needs an id and params", None),
        };
        result.insert("code".to_owned(), json!(reply.status));
        if reply.status >= 400
            && let super::reply::ReplyBody::Json(b) = &reply.body
        {
            result.insert("error".to_owned(), b["error"].clone());
            result.insert("debug".to_owned(), b["debug"].clone());
        }
        results.push(Value::Object(result));
    }
    Reply::ok(Value::Array(results))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_legs_take_media_and_session_level_lines() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=x\r\nc=IN IP4 239.1.1.1/32\r\nt=0 0\r\n\
                   m=video 5000 RTP/AVP 96\r\na=source-filter: incl IN IP4 239.1.1.1 10.0.0.1\r\n\
                   m=video 5002 RTP/AVP 96\r\nc=IN IP4 239.2.2.2/32\r\n";
        let legs = sdp_legs(sdp);
        assert_eq!(
            legs,
            vec![
                (
                    Some(5000),
                    Some("239.1.1.1".into()),
                    Some("10.0.0.1".into())
                ),
                (Some(5002), Some("239.2.2.2".into()), None),
            ]
        );
        assert!(sdp_legs("not an sdp").is_empty());
    }

    #[test]
    fn merge_is_deep_and_per_leg() {
        let mut staged = json!({"master_enable": false,
            "transport_file": {"data": "x", "type": "application/sdp"},
            "transport_params": [{"rtp_enabled": true, "source_ip": null}, {"rtp_enabled": true}]});
        merge(
            &mut staged,
            &json!({"master_enable": true, "transport_file": {"data": null, "type": null},
                "transport_params": [{}, {"rtp_enabled": false}]}),
        );
        assert_eq!(
            staged,
            json!({"master_enable": true, "transport_file": {"data": null, "type": null},
                "transport_params": [{"rtp_enabled": true, "source_ip": null}, {"rtp_enabled": false}]})
        );
    }
}
