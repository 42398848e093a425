//! The take engine's [`Devices`] over the real clients: IS-05 ([`ConnectionClient`]) and
//! IS-08 ([`ChannelMappingClient`]).
//!
//! READY stages every receiver (transport file fetched from the sender's `manifest_href`) and
//! prepares the take: the bodies of the EXECUTE requests are built, validated and kept, so
//! that EXECUTE only writes them (one PATCH per receiver, or one bulk POST per device). Each
//! body restates what READY staged, transport file included, since another item may have
//! been staged on the same receiver in between. A take without READY stages first, then
//! activates; a timed take of a readied item, and one whose senders' IS-04 `version`
//! changed since READY (the stream may have moved behind the same `manifest_href`), fetch
//! the transport files again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use tracing::{debug, info};

use super::is05::{Activation, ConnectionClient, Is05Error, PreparedTake, TransportFiles};
use super::is08::ChannelMappingClient;
use super::plan::{AudioMap, Connection, DeviceIo, Route};
use super::tai::TaiTime;
use super::takes::{DeviceError, Devices};

/// The studio's devices, reached over HTTP.
pub struct NmosDevices {
    is05: ConnectionClient,
    is08: ChannelMappingClient,
    /// Takes prepared by READY, by route.
    prepared: Mutex<HashMap<String, Prepared>>,
}

/// A take prepared by READY, with its senders' IS-04 versions at the time.
struct Prepared {
    take: Arc<PreparedTake>,
    versions: Vec<Option<String>>,
}

impl NmosDevices {
    /// Devices driven through these clients.
    pub fn new(is05: ConnectionClient, is08: ChannelMappingClient) -> Self {
        NmosDevices {
            is05,
            is08,
            prepared: Mutex::new(HashMap::new()),
        }
    }

    fn prepared(&self) -> std::sync::MutexGuard<'_, HashMap<String, Prepared>> {
        self.prepared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The transport file of each of the route's senders (fetched once per sender, however
    /// many receivers it feeds); a failure is named by the first receiver of that sender.
    async fn transport_files(&self, route: &Route) -> Result<TransportFiles, DeviceError> {
        self.is05
            .transport_files(&route.connections)
            .await
            .map_err(|(sender, e)| {
                let reason = format!("transport file: {}", is05_reason(&e));
                match route
                    .connections
                    .iter()
                    .find(|c| c.sender_id.as_deref() == Some(sender.as_str()))
                {
                    Some(c) => fail(c, &reason),
                    None => DeviceError(format!("sender {sender}: {reason}")),
                }
            })
    }

    /// Stages every connection concurrently (nothing is staged when a transport file cannot
    /// be fetched); the first failure (named by receiver) wins. Returns the transport files
    /// staged, which the take restates.
    async fn stage_connections(&self, route: &Route) -> Result<TransportFiles, DeviceError> {
        let files = self.transport_files(route).await?;
        let files_ref = &files;
        let stages = route.connections.iter().map(|c| async move {
            let tf = c
                .sender_id
                .as_ref()
                .and_then(|sender| files_ref.get(sender))
                .and_then(Option::as_ref);
            self.is05
                .stage(c, tf)
                .await
                .map_err(|e| fail(c, &is05_reason(&e)))?;
            Ok::<(), DeviceError>(())
        });
        let maps = route.audio_maps.iter().map(|m| async move {
            self.is08
                .check(m)
                .await
                .map_err(|e| DeviceError(format!("IS-08 {}: {}", m.device_id, e.reason())))
        });
        let (stages, maps) = futures_util::future::join(join_all(stages), join_all(maps)).await;
        stages
            .into_iter()
            .chain(maps)
            .collect::<Result<Vec<()>, _>>()?;
        Ok(files)
    }
}

/// A failure named by the receiver's label.
fn fail(c: &Connection, reason: &str) -> DeviceError {
    DeviceError(format!("{}: {reason}", c.receiver_label))
}

/// An IS-05 failure with the receiver's real state as re-read after it (IS-05 guidance: after
/// any error, say what the receiver really does).
fn is05_reason(e: &Is05Error) -> String {
    let reason = e.reason();
    match e.state() {
        Some(state) => {
            let active = &state.active;
            let now = match (
                active["master_enable"].as_bool(),
                active["sender_id"].as_str(),
            ) {
                (Some(true), Some(sender)) => format!("active: sender {sender}"),
                (Some(false), _) | (Some(true), None) => "active: disabled".to_string(),
                _ => "active: unknown".to_string(),
            };
            format!("{reason} ({now})")
        }
        None => reason,
    }
}

/// The IS-04 versions of a route's senders, in connection order.
fn sender_versions(route: &Route) -> Vec<Option<String>> {
    route
        .connections
        .iter()
        .map(|c| c.sender_version.clone())
        .collect()
}

/// The identity of a route's connections (receiver ← sender pairs, and where the receiver's
/// Connection API is: a take prepared for a device's old address, by a READY still in
/// flight when the device moved, must not be taken for the new one).
fn route_key(route: &Route) -> String {
    let mut key = String::new();
    for c in &route.connections {
        key.push_str(&c.connection_api);
        key.push(' ');
        key.push_str(&c.receiver_id);
        key.push('<');
        key.push_str(c.sender_id.as_deref().unwrap_or("-"));
        key.push(';');
    }
    key
}

impl Devices for NmosDevices {
    async fn stage(&self, route: &Route) -> Result<(), DeviceError> {
        let files = self.stage_connections(route).await?;
        let take = self
            .is05
            .prepare_take(&route.connections, &files, Activation::Immediate)
            .await;
        let prepared = Prepared {
            take: Arc::new(take),
            versions: sender_versions(route),
        };
        self.prepared().insert(route_key(route), prepared);
        Ok(())
    }

    async fn take(
        &self,
        route: &Route,
        at: Option<TaiTime>,
        staged: bool,
    ) -> Result<Vec<(AudioMap, String)>, DeviceError> {
        let activation = at.map_or(Activation::Immediate, Activation::ScheduledAbsolute);
        // READY's prepared bodies are taken out in any case (a timed take writes its own,
        // with the scheduled activation), so none is left behind.
        let prepared = if staged {
            self.prepared().remove(&route_key(route))
        } else {
            None
        };
        let ready = prepared.filter(|_| at.is_none()).and_then(|p| {
            let now = route.connections.iter().map(|c| &c.sender_version);
            if p.versions.iter().eq(now) {
                return Some(p.take);
            }
            info!(
                receivers = route.connections.len(),
                "a sender changed since READY: its transport file is fetched again for the take"
            );
            None
        });
        let take = match ready {
            Some(t) => t,
            None => {
                // Staged by READY but timed, or a sender changed since: the take restates
                // the transport files, so they are fetched again (the staged ones may have
                // been overwritten since, or the stream moved).
                let files = if staged {
                    self.transport_files(route).await?
                } else {
                    self.stage_connections(route).await?
                };
                let take = self
                    .is05
                    .prepare_take(&route.connections, &files, activation)
                    .await;
                Arc::new(take)
            }
        };
        let report = self.is05.take(&take).await;
        if !report.all_ok() {
            // A timed take that failed: the receivers that accepted it (and were not
            // rolled back) must not switch at its time.
            let rolled: Vec<&str> = report
                .rolled_back
                .iter()
                .map(|(id, _)| id.as_str())
                .collect();
            let pending = report.results.iter().filter_map(|(id, r)| {
                let accepted = r.as_ref().ok()?;
                (accepted.scheduled && !rolled.contains(&id.as_str())).then_some(id)
            });
            for id in pending {
                if let Some(c) = route.connections.iter().find(|c| c.receiver_id == *id) {
                    self.cancel_activation(c).await;
                }
            }
            let labels: HashMap<&str, &str> = route
                .connections
                .iter()
                .map(|c| (c.receiver_id.as_str(), c.receiver_label.as_str()))
                .collect();
            let mut reasons: Vec<String> = report
                .results
                .iter()
                .filter_map(|(id, r)| {
                    let e = r.as_ref().err()?;
                    let label = labels.get(id.as_str()).copied().unwrap_or(id);
                    Some(format!("{label}: {}", is05_reason(e)))
                })
                .collect();
            if !report.rolled_back.is_empty() {
                reasons.push(format!("{} rolled back", report.rolled_back.len()));
            }
            return Err(DeviceError(reasons.join("; ")));
        }
        let mut scheduled: Vec<(AudioMap, String)> = Vec::new();
        for m in &route.audio_maps {
            let done = match self.is08.apply(m, activation).await {
                Ok(done) => done,
                Err(e) => {
                    if at.is_some() {
                        // Nothing of a failed timed take may fire at its time: the maps
                        // scheduled so far and the receivers' activations are cancelled.
                        for (m, id) in &scheduled {
                            self.cancel_map(m, id).await;
                        }
                        for c in &route.connections {
                            self.cancel_activation(c).await;
                        }
                    }
                    return Err(DeviceError(format!(
                        "IS-08 {}: {}",
                        m.device_id,
                        e.reason()
                    )));
                }
            };
            if let (true, Some(id)) = (done.scheduled, done.id) {
                scheduled.push((m.clone(), id));
            }
        }
        Ok(scheduled)
    }

    async fn cancel_map(&self, m: &AudioMap, id: &str) {
        match self
            .is08
            .delete_activation(&m.channel_mapping_api, id, m.authorization)
            .await
        {
            Ok(true) => info!(device = %m.device_id, id, "scheduled IS-08 activation cancelled"),
            Ok(false) => {
                debug!(device = %m.device_id, id, "scheduled IS-08 activation already gone")
            }
            Err(e) => {
                tracing::warn!(device = %m.device_id, id, "cannot cancel a scheduled IS-08 activation: {}", e.reason())
            }
        }
    }

    async fn cancel_activation(&self, c: &Connection) {
        match self.is05.cancel_scheduled(c).await {
            Ok(_) => info!(receiver = %c.receiver_label, "scheduled IS-05 activation cancelled"),
            Err(e) => tracing::warn!(
                receiver = %c.receiver_label,
                "cannot cancel a scheduled IS-05 activation: {}",
                is05_reason(&e)
            ),
        }
    }

    async fn disconnect(&self, c: &Connection) -> Result<(), DeviceError> {
        self.is05
            .disconnect(c)
            .await
            .map(|_| ())
            .map_err(|e| fail(c, &is05_reason(&e)))
    }

    async fn read_io(&self, api: &str, authorization: bool) -> Result<DeviceIo, DeviceError> {
        self.is08
            .read_io(api, authorization)
            .await
            .map(|io| (*io).clone())
            .map_err(|e| DeviceError(e.reason()))
    }

    async fn active_sender(&self, c: &Connection) -> Result<Option<String>, DeviceError> {
        let active = self
            .is05
            .active_sender(&c.connection_api, &c.receiver_id, c.authorization)
            .await
            .map_err(|e| fail(c, &e.reason()))?;
        Ok(active.sender_id.filter(|_| active.master_enable))
    }
}
