//! The IS-08 v1.0 Channel Mapping API client (reference `nmos.md` §7).
//!
//! - [`ChannelMappingClient::read_io`]: `GET {api}io` mapped to [`DeviceIo`] (channel counts,
//!   inputs' `block_size`/`reordering`, outputs' `routable_inputs`), cached per API base.
//! - [`ChannelMappingClient::apply`]: checks the map against the device's io with
//!   [`is08_check::check`] **before** sending (a cached io older than
//!   [`Is08Settings::io_max_age`] is re-read; a violation with a cached io re-reads once, in
//!   case the device changed), validates the body against the official schemas (with the
//!   v1.0 defect workarounds of [`SchemaSet::validate_is08_activation`]) and
//!   `POST {api}map/activations` `{activation: {mode, requested_time}, action: {output:
//!   {"<channel>": {input, channel_index}}}}`. 200 = applied, 202 = scheduled (the activation
//!   id is kept for [`ChannelMappingClient::delete_activation`]), 400 = rejected with the
//!   device's reason, 423 = outputs locked by another activation. After any 4xx/5xx the
//!   client re-reads `map/active` and `map/activations` into the error.
//! - [`ChannelMappingClient::active_map`]: `GET {api}map/active`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::http::{HttpError, NmosHttp, api_key, join_url};
use super::is05::Activation;
use super::is08_check::{self, ChannelMap, Is08Input, Is08Output, MapEntry, Violation};
use super::plan::{AudioMap, DeviceIo};
use super::schemas::SchemaSet;

/// IS-08 client behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Is08Settings {
    /// A cached `io` older than this is re-read before a map is checked.
    pub io_max_age: Duration,
}

impl Default for Is08Settings {
    fn default() -> Self {
        Is08Settings {
            io_max_age: Duration::from_secs(30),
        }
    }
}

/// The device's map state, re-read after a failure.
#[derive(Debug, Clone, PartialEq)]
pub struct MapState {
    /// `GET map/active`.
    pub active: Value,
    /// `GET map/activations` (pending scheduled activations).
    pub activations: Value,
}

/// A failed IS-08 operation.
#[derive(Debug, thiserror::Error)]
pub enum Is08Error {
    /// The map breaks the device's constraints; nothing was sent.
    #[error("IS-08 map for {api} breaks the device's constraints: {}", violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Constraints {
        api: String,
        violations: Vec<Violation>,
    },
    /// The body did not validate against the official schemas; nothing was sent.
    #[error("{url}: request body is not schema-valid, not sent: {}", problems.join("; "))]
    Invalid { url: String, problems: Vec<String> },
    /// `GET io` answered something that is not an IS-08 io.
    #[error("GET {url}: not an IS-08 io: {detail}")]
    BadIo { url: String, detail: String },
    /// 400: the device rejected the activation (its reason in the source).
    #[error("rejected: {source}")]
    Rejected {
        #[source]
        source: HttpError,
        state: Option<Box<MapState>>,
    },
    /// 423: an output is locked by another (scheduled) activation.
    #[error("outputs locked by another activation: {source}")]
    Locked {
        #[source]
        source: HttpError,
        state: Option<Box<MapState>>,
    },
    /// Any other failure.
    #[error("{source}")]
    Failed {
        #[source]
        source: HttpError,
        /// Re-read after a 4xx/5xx (`None` otherwise or if the re-read failed).
        state: Option<Box<MapState>>,
    },
}

/// A failed request with no state re-read.
impl From<HttpError> for Is08Error {
    fn from(source: HttpError) -> Self {
        Is08Error::Failed {
            source,
            state: None,
        }
    }
}

impl Is08Error {
    /// The map state re-read after the failure, if any.
    pub fn state(&self) -> Option<&MapState> {
        match self {
            Is08Error::Rejected { state, .. }
            | Is08Error::Locked { state, .. }
            | Is08Error::Failed { state, .. } => state.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status the device answered, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Is08Error::Rejected { source, .. }
            | Is08Error::Locked { source, .. }
            | Is08Error::Failed { source, .. } => source.status(),
            _ => None,
        }
    }

    /// Short reason for a status text.
    pub fn reason(&self) -> String {
        match self {
            Is08Error::Rejected { source, .. } => source.reason(),
            Is08Error::Locked { source, .. } => {
                format!("outputs locked: {}", source.reason())
            }
            Is08Error::Failed { source, .. } => source.reason(),
            other => other.to_string(),
        }
    }
}

/// An accepted map activation.
#[derive(Debug, Clone, PartialEq)]
pub struct MapActivation {
    /// The activation id (the response's single key); needed to cancel a scheduled one.
    pub id: Option<String>,
    /// `true` for 202 (scheduled, pending), `false` for 200 (applied).
    pub scheduled: bool,
    /// The response body.
    pub response: Value,
}

/// A device's active map.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveMap {
    /// Output → one entry per channel, in channel order.
    pub map: ChannelMap,
    /// The last `activation` object.
    pub activation: Value,
}

/// API base → (when read, io).
type IoCache = HashMap<String, (Instant, Arc<DeviceIo>)>;

/// The IS-08 client. Clone-cheap; clones share the HTTP pool and the io cache.
#[derive(Debug, Clone)]
pub struct ChannelMappingClient {
    http: NmosHttp,
    schemas: Arc<SchemaSet>,
    settings: Is08Settings,
    io: Arc<Mutex<IoCache>>,
}

impl ChannelMappingClient {
    /// A client on the shared HTTP client and schema set.
    pub fn new(http: NmosHttp, schemas: Arc<SchemaSet>, settings: Is08Settings) -> Self {
        ChannelMappingClient {
            http,
            schemas,
            settings,
            io: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// `GET {api}io`, mapped to [`DeviceIo`]; refreshes the cache.
    pub async fn read_io(&self, api: &str, auth: bool) -> Result<Arc<DeviceIo>, Is08Error> {
        let url = join_url(api, "io");
        let body: Value = self
            .http
            .get_json(&url, auth)
            .await
            .map_err(Is08Error::from)?;
        let io = Arc::new(parse_io(&body).map_err(|detail| Is08Error::BadIo {
            url: url.clone(),
            detail,
        })?);
        self.io_cache()
            .insert(api_key(api), (Instant::now(), io.clone()));
        Ok(io)
    }

    /// The cached io when younger than [`Is08Settings::io_max_age`], else [`Self::read_io`].
    /// The `bool` tells whether it came from the cache.
    pub async fn io(&self, api: &str, auth: bool) -> Result<(Arc<DeviceIo>, bool), Is08Error> {
        let cached = self.io_cache().get(&api_key(api)).cloned();
        match cached {
            Some((at, io)) if at.elapsed() <= self.settings.io_max_age => Ok((io, true)),
            _ => Ok((self.read_io(api, auth).await?, false)),
        }
    }

    fn io_cache(&self) -> std::sync::MutexGuard<'_, IoCache> {
        self.io.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the map against the device's io (re-reading a stale or contradicted cache),
    /// without sending anything.
    pub async fn check(&self, map: &AudioMap) -> Result<(), Is08Error> {
        let api = &map.channel_mapping_api;
        let (io, from_cache) = self.io(api, map.authorization).await?;
        let violations = match is08_check::check(&map.map, &io.inputs, &io.outputs) {
            Ok(()) => return Ok(()),
            Err(_) if from_cache => {
                tracing::debug!(api, "IS-08 map violates the cached io; re-reading io");
                let io = self.read_io(api, map.authorization).await?;
                match is08_check::check(&map.map, &io.inputs, &io.outputs) {
                    Ok(()) => return Ok(()),
                    Err(v) => v,
                }
            }
            Err(v) => v,
        };
        Err(Is08Error::Constraints {
            api: api.clone(),
            violations,
        })
    }

    /// Checks, validates and posts the map activation (see the module documentation).
    pub async fn apply(
        &self,
        map: &AudioMap,
        activation: Activation,
    ) -> Result<MapActivation, Is08Error> {
        self.check(map).await?;
        let api = &map.channel_mapping_api;
        let url = join_url(api, "map/activations");
        let body = activation_body(&map.map, activation);
        if let Err(problems) = self.schemas.validate_is08_activation(&body) {
            return Err(Is08Error::Invalid { url, problems });
        }
        let reply = self
            .http
            .post_json(&url, Bytes::from(body.to_string()), map.authorization)
            .await
            .map_err(Is08Error::from)?;
        match reply.status {
            200..=202 => {
                let response: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
                let id = response.as_object().and_then(|o| o.keys().next()).cloned();
                if reply.status == 202 && id.is_none() {
                    tracing::warn!(url, "scheduled IS-08 activation accepted without an id");
                }
                Ok(MapActivation {
                    id,
                    scheduled: reply.status == 202,
                    response,
                })
            }
            status => {
                let source = HttpError::from_status(Method::POST, &url, status, &reply.text());
                tracing::warn!(error = %source, "IS-08 activation failed; re-reading the map");
                let state = self.reread(api, map.authorization).await;
                Err(match status {
                    400 => Is08Error::Rejected { source, state },
                    423 => Is08Error::Locked { source, state },
                    _ => Is08Error::Failed { source, state },
                })
            }
        }
    }

    /// `DELETE {api}map/activations/{id}` (a scheduled activation whose item was removed).
    /// `Ok(true)` when deleted, `Ok(false)` when it no longer exists (404: already fired or
    /// deleted).
    pub async fn delete_activation(
        &self,
        api: &str,
        id: &str,
        auth: bool,
    ) -> Result<bool, Is08Error> {
        let url = join_url(api, &format!("map/activations/{id}"));
        let reply = self
            .http
            .delete(&url, auth)
            .await
            .map_err(Is08Error::from)?;
        match reply.status {
            200..=299 => Ok(true),
            404 => Ok(false),
            status => Err(Is08Error::Failed {
                source: HttpError::from_status(Method::DELETE, &url, status, &reply.text()),
                state: None,
            }),
        }
    }

    /// `GET {api}map/active`, parsed.
    pub async fn active_map(&self, api: &str, auth: bool) -> Result<ActiveMap, Is08Error> {
        let url = join_url(api, "map/active");
        let body: Value = self
            .http
            .get_json(&url, auth)
            .await
            .map_err(Is08Error::from)?;
        let map = parse_map(body.get("map").unwrap_or(&Value::Null)).map_err(|detail| {
            Is08Error::Failed {
                source: HttpError::Decode {
                    method: Method::GET,
                    url: url.clone(),
                    detail,
                    excerpt: String::new(),
                },
                state: None,
            }
        })?;
        Ok(ActiveMap {
            map,
            activation: body.get("activation").cloned().unwrap_or(Value::Null),
        })
    }

    /// `map/active` and `map/activations` for an error report.
    async fn reread(&self, api: &str, auth: bool) -> Option<Box<MapState>> {
        let active_url = join_url(api, "map/active");
        let activations_url = join_url(api, "map/activations");
        let (active, activations) = tokio::join!(
            self.http.get_json::<Value>(&active_url, auth),
            self.http.get_json::<Value>(&activations_url, auth)
        );
        match (active, activations) {
            (Ok(active), Ok(activations)) => Some(Box::new(MapState {
                active,
                activations,
            })),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot re-read the IS-08 map state");
                None
            }
        }
    }
}

/// The `POST map/activations` body for `map` (every channel of each output given).
pub fn activation_body(map: &ChannelMap, activation: Activation) -> Value {
    let action: Map<String, Value> = map
        .iter()
        .map(|(output, entries)| {
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
            (output.clone(), Value::Object(channels))
        })
        .collect();
    json!({"activation": activation.to_json(), "action": Value::Object(action)})
}

/// Maps an `io` body to [`DeviceIo`]. The schema requires the input caps; when a device omits
/// them anyway, `block_size` is read as 1 and `reordering` as `false` (the cautious reading).
/// Absent or null `routable_inputs` means any input.
pub fn parse_io(body: &Value) -> Result<DeviceIo, String> {
    let mut io = DeviceIo::default();
    let section = |name: &str| -> Result<Map<String, Value>, String> {
        match body.get(name) {
            Some(Value::Object(o)) => Ok(o.clone()),
            Some(Value::Null) | None => Ok(Map::new()),
            Some(other) => Err(format!("{name} is not an object: {other}")),
        }
    };
    for (id, input) in section("inputs")? {
        let channels = input
            .get("channels")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("input {id} has no channels array"))?
            .len();
        let caps = input.get("caps");
        let block_size = caps
            .and_then(|c| c.get("block_size"))
            .and_then(Value::as_u64)
            .map_or(1, |b| usize::try_from(b).unwrap_or(usize::MAX));
        let reordering = caps
            .and_then(|c| c.get("reordering"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        io.inputs.insert(
            id,
            Is08Input {
                channels,
                block_size,
                reordering,
            },
        );
    }
    for (id, output) in section("outputs")? {
        let channels = output
            .get("channels")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("output {id} has no channels array"))?
            .len();
        let routable_inputs = match output.get("caps").and_then(|c| c.get("routable_inputs")) {
            Some(Value::Array(list)) => Some(
                list.iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        };
        io.outputs.insert(
            id,
            Is08Output {
                channels,
                routable_inputs,
            },
        );
    }
    Ok(io)
}

/// Parses a `map` object (`{output: {"<channel>": {input, channel_index}}}`) into a
/// [`ChannelMap`]; channel keys must be `0..n` without gaps.
pub fn parse_map(map: &Value) -> Result<ChannelMap, String> {
    let Some(outputs) = map.as_object() else {
        return Err("map is not an object".to_owned());
    };
    let mut result = ChannelMap::new();
    for (output, channels) in outputs {
        let Some(channels) = channels.as_object() else {
            return Err(format!("output {output} is not an object"));
        };
        let mut by_index = BTreeMap::new();
        for (key, entry) in channels {
            let index: usize = key
                .parse()
                .map_err(|_| format!("output {output}: channel key {key:?} is not an index"))?;
            let input = entry
                .get("input")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let channel_index = entry
                .get("channel_index")
                .and_then(Value::as_u64)
                .and_then(|c| usize::try_from(c).ok());
            by_index.insert(
                index,
                MapEntry {
                    input,
                    channel_index,
                },
            );
        }
        if by_index.keys().copied().ne(0..by_index.len()) {
            return Err(format!("output {output}: channel keys are not 0..n"));
        }
        result.insert(output.clone(), by_index.into_values().collect());
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_map_orders_channels_and_rejects_gaps() {
        let map = json!({"out": {"1": {"input": null, "channel_index": null}, "0": {"input": "in", "channel_index": 3}}});
        let parsed = parse_map(&map).unwrap();
        assert_eq!(
            parsed["out"],
            vec![MapEntry::routed("in", 3), MapEntry::unrouted()]
        );
        assert!(parse_map(&json!({"out": {"0": {}, "2": {}}})).is_err());
        assert!(parse_map(&json!({"out": {"x": {}}})).is_err());
        assert!(parse_map(&json!([])).is_err());
    }

    #[test]
    fn parse_io_reads_caps_and_null_routable_inputs() {
        let io = parse_io(&json!({
            "inputs": {"in": {"channels": [{}, {}], "caps": {"block_size": 2, "reordering": true}}},
            "outputs": {
                "a": {"channels": [{}], "caps": {"routable_inputs": ["in", null]}},
                "b": {"channels": [{}, {}, {}], "caps": {"routable_inputs": null}}
            }
        }))
        .unwrap();
        assert_eq!(io.inputs["in"].block_size, 2);
        assert!(io.inputs["in"].reordering);
        assert_eq!(
            io.outputs["a"].routable_inputs,
            Some(vec![Some("in".to_owned()), None])
        );
        assert_eq!(io.outputs["b"].channels, 3);
        assert_eq!(io.outputs["b"].routable_inputs, None);
        assert!(parse_io(&json!({"inputs": {"in": {}}})).is_err());
    }
}
