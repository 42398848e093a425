//! The take engine's [`Devices`] over the real clients: IS-05 ([`ConnectionClient`]) and
//! IS-08 ([`ChannelMappingClient`]).
//!
//! READY stages every receiver (transport file fetched from the sender's `manifest_href`) and
//! prepares the take: the bodies of the EXECUTE requests are built, validated and kept, so
//! that EXECUTE only writes them (one small PATCH per receiver, or one bulk POST per device).
//! A take without READY stages first, then activates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use tracing::{debug, info};

use super::is05::{Activation, ConnectionClient, Is05Error, PreparedTake};
use super::is08::ChannelMappingClient;
use super::plan::{AudioMap, Connection, DeviceIo, Route};
use super::tai::TaiTime;
use super::takes::{DeviceError, Devices};

/// The studio's devices, reached over HTTP.
pub struct NmosDevices {
    is05: ConnectionClient,
    is08: ChannelMappingClient,
    /// Takes prepared by READY, by route.
    prepared: Mutex<HashMap<String, Arc<PreparedTake>>>,
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

    fn prepared(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<PreparedTake>>> {
        self.prepared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stages every connection concurrently; the first failure (named by receiver) wins.
    /// Each sender's transport file is fetched once, however many receivers it feeds.
    async fn stage_connections(&self, route: &Route) -> Result<(), DeviceError> {
        let mut by_sender: Vec<&Connection> = Vec::new();
        for c in &route.connections {
            if !by_sender.iter().any(|s| s.sender_id == c.sender_id) {
                by_sender.push(c);
            }
        }
        let files = join_all(by_sender.iter().map(|c| async move {
            let file = self.is05.transport_file(c).await;
            (c.sender_id.clone(), file.map_err(|e| is05_reason(&e)))
        }))
        .await;
        let files = &files;
        let stages = route.connections.iter().map(|c| async move {
            let tf = files
                .iter()
                .find(|(sender, _)| *sender == c.sender_id)
                .map(|(_, file)| file.as_ref())
                .ok_or_else(|| fail(c, "transport file: not fetched"))?
                .map_err(|reason| fail(c, &format!("transport file: {reason}")))?;
            self.is05
                .stage(c, tf.as_ref())
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
        Ok(())
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

/// The identity of a route's connections (receiver ← sender pairs).
fn route_key(route: &Route) -> String {
    let mut key = String::new();
    for c in &route.connections {
        key.push_str(&c.receiver_id);
        key.push('<');
        key.push_str(c.sender_id.as_deref().unwrap_or("-"));
        key.push(';');
    }
    key
}

impl Devices for NmosDevices {
    async fn stage(&self, route: &Route) -> Result<(), DeviceError> {
        self.stage_connections(route).await?;
        let take = self
            .is05
            .prepare_take(&route.connections, Activation::Immediate)
            .await;
        self.prepared().insert(route_key(route), Arc::new(take));
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
        let ready = prepared.filter(|_| at.is_none());
        let take = match ready {
            Some(t) => t,
            None => {
                if !staged {
                    self.stage_connections(route).await?;
                }
                Arc::new(self.is05.prepare_take(&route.connections, activation).await)
            }
        };
        let report = self.is05.take(&take).await;
        if !report.all_ok() {
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
        let mut scheduled = Vec::new();
        for m in &route.audio_maps {
            let done = self
                .is08
                .apply(m, activation)
                .await
                .map_err(|e| DeviceError(format!("IS-08 {}: {}", m.device_id, e.reason())))?;
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
