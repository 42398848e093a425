//! The bridge task: running orders and the NMOS catalogue in, planned routes, takes and
//! statuses out. One task owns the take engine; nothing here blocks a MOS ack.
//!
//! ```text
//! GatewayEvent::RunningOrder ─┐
//! catalogue snapshot (IS-04) ─┼→ resolve (pure) → TakeEngine::set_plans → READY / NOT READY
//! device io (IS-08) ──────────┘
//! GatewayEvent::Control (roCtrl) → TakeEngine::control → IS-05 / IS-08 → PLAY / STOP / ERROR
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::is04::{Catalogue, ControlKind};
use super::mapping::{LabelIndex, Mapping};
use super::plan::{DeviceIo, ItemKey};
use super::resolve::{ResolveContext, resolve_rundown};
use super::takes::{Devices, ItemInfo, ItemStatus, TakeEngine, TakeSettings};
use crate::mos::structures::AirStatus;
use crate::objects::MemoryCatalogue;
use crate::rundown::Rundown;
use crate::server::{GatewayEvent, StatusSender};
use crate::state::StateHandle;
use crate::status::{ElementState, StatusReport, StatusTarget};

/// What the bridge is configured to do (replaced as a whole on reload).
#[derive(Debug, Clone)]
pub struct BridgeSettings {
    /// Destinations, presets, bindings.
    pub mapping: Mapping,
    /// Take behaviour.
    pub takes: TakeSettings,
    /// roReadyToAir READY stages every item of the running order.
    pub ready_to_air_stages: bool,
}

/// Everything the bridge task works with.
pub struct BridgeParts<D: Devices> {
    /// The studio's devices (IS-05 / IS-08).
    pub devices: Arc<D>,
    /// Running-order changes and roCtrl from the gateway.
    pub events: mpsc::UnboundedReceiver<GatewayEvent>,
    /// The running orders.
    pub state: StateHandle,
    /// The IS-04 catalogue, a new snapshot after each change.
    pub catalogue: watch::Receiver<Arc<Catalogue>>,
    /// The MOS object catalogue (placeholders are looked up there).
    pub objects: Arc<MemoryCatalogue>,
    /// Where statuses go.
    pub statuses: StatusSender,
    /// Every configured NCS (statuses of a running order whose NCS is unknown go to all).
    pub ncs_ids: Vec<String>,
    /// Settings; a new value (SIGHUP) re-resolves every item.
    pub settings: watch::Receiver<Arc<BridgeSettings>>,
}

/// Runs the bridge until `stop`.
pub async fn run<D: Devices>(mut parts: BridgeParts<D>, stop: CancellationToken) {
    let (status_tx, mut status_rx) = mpsc::unbounded_channel::<ItemStatus>();
    let settings = parts.settings.borrow_and_update().clone();
    let mut engine = TakeEngine::new(parts.devices.clone(), settings.takes.clone(), status_tx);
    let catalogue = parts.catalogue.borrow_and_update().clone();
    let mut bridge = Bridge {
        settings,
        labels: LabelIndex::new(&catalogue),
        catalogue,
        io: BTreeMap::new(),
        io_asked: HashSet::new(),
        owners: HashMap::new(),
        noted_on_air: HashSet::new(),
        ready_to_air: HashMap::new(),
        rundowns: None,
        versions: HashMap::new(),
    };
    // Statuses about the running orders held before a restart go to the NCS that changed
    // each last, not to every NCS.
    bridge.owners.extend(parts.state.owners().await);
    // What was on air when the gateway stopped is told PLAY again, not READY (checked
    // against the registry once the running orders are resolved).
    let on_air: Vec<ItemKey> = parts
        .state
        .on_air()
        .await
        .iter()
        .filter_map(|k| item_key(k))
        .collect();
    bridge.noted_on_air.extend(on_air.iter().cloned());
    engine.restore_on_air(on_air);
    let (io_tx, mut io_rx) = mpsc::unbounded_channel::<(String, Result<DeviceIo, String>)>();
    // Start-up: nothing is resolved until the first catalogue and the IS-08 io of its devices
    // are in (or STARTUP_GRACE has passed), so a restart mid-show does not flash every item
    // NOT READY at the NCS.
    let mut ready = false;
    let mut catalogue_seen = false;
    let warm_until = tokio::time::Instant::now() + STARTUP_GRACE;
    if !bridge.catalogue.nodes.is_empty() {
        // Discovery published before the bridge started.
        catalogue_seen = true;
        bridge.read_missing_io(&parts.devices, &io_tx);
        if warmed_up(&mut ready, catalogue_seen, &bridge) {
            bridge.resolve_all(&parts, &mut engine).await;
        }
    }
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            event = parts.events.recv() => match event {
                Some(GatewayEvent::Control { ncs_id, ctrl, reply }) if !ready => {
                    debug!(ncs = %ncs_id, ro = %ctrl.ro_id, "roCtrl before the catalogue is in");
                    let _ = reply.send(Err(
                        "the NMOS catalogue is still loading: try again in a moment".to_string(),
                    ));
                }
                Some(GatewayEvent::RunningOrder { ncs_id, ro_id }) if !ready => {
                    // Resolved with every other running order once the catalogue is in.
                    bridge.owners.insert(ro_id, ncs_id);
                }
                Some(GatewayEvent::Control { ncs_id, ctrl, reply }) => {
                    let answer = engine.control(&ctrl);
                    debug!(ncs = %ncs_id, ro = %ctrl.ro_id, "roCtrl {:?}: {answer:?}", ctrl.command);
                    bridge.owners.insert(ctrl.ro_id.clone(), ncs_id);
                    let _ = reply.send(answer);
                }
                Some(GatewayEvent::RunningOrder { ncs_id, ro_id }) => {
                    bridge.owners.insert(ro_id.clone(), ncs_id);
                    bridge.resolve_one(&parts, &mut engine, &ro_id).await;
                }
                None => break,
            },
            done = engine.completion() => engine.complete(done),
            Some(status) = status_rx.recv() => {
                if status.state == ElementState::Play {
                    bridge.note_versions(&status);
                }
                bridge.send_status(&parts, status).await;
            }
            changed = parts.catalogue.changed() => {
                if changed.is_err() {
                    break;
                }
                bridge.set_catalogue(parts.catalogue.borrow_and_update().clone());
                bridge.read_missing_io(&parts.devices, &io_tx);
                if ready {
                    bridge.check_receivers(&mut engine);
                }
                catalogue_seen = true;
                if warmed_up(&mut ready, catalogue_seen, &bridge) {
                    bridge.resolve_all(&parts, &mut engine).await;
                }
            }
            Some((device, io)) = io_rx.recv() => {
                match io {
                    Ok(io) => {
                        bridge.io.insert(device, io);
                    }
                    Err(e) => {
                        warn!(device = %device, "IS-08 io not read: {e}");
                        bridge.io_asked.remove(&device);
                    }
                }
                if warmed_up(&mut ready, catalogue_seen, &bridge) {
                    bridge.resolve_all(&parts, &mut engine).await;
                }
            }
            _ = tokio::time::sleep_until(warm_until), if !ready => {
                ready = true;
                warn!(
                    "NMOS catalogue not complete after {STARTUP_GRACE:?}: resolving with what is known"
                );
                bridge.resolve_all(&parts, &mut engine).await;
            }
            changed = parts.settings.changed() => {
                if changed.is_err() {
                    break;
                }
                let settings = parts.settings.borrow_and_update().clone();
                info!("configuration reloaded: re-resolving every item");
                engine.set_settings(settings.takes.clone());
                bridge.settings = settings;
                if ready {
                    bridge.resolve_all(&parts, &mut engine).await;
                }
            }
        }
    }
    // Statuses already decided still go out.
    while let Ok(status) = status_rx.try_recv() {
        bridge.send_status(&parts, status).await;
    }
}

/// The key under which an item is noted on air (that of its statuses).
fn element_key(key: &ItemKey) -> String {
    crate::status::item_element_key(&key.ro_id, &key.story_id, &key.item_id)
}

/// The item of a key made by [`element_key`].
fn item_key(element: &str) -> Option<ItemKey> {
    let (ro_id, story_id, item_id) = crate::status::parse_item_element_key(element)?;
    Some(ItemKey {
        ro_id: ro_id.to_string(),
        story_id: story_id.to_string(),
        item_id: item_id.to_string(),
    })
}

/// Whether resolution may run: already, or now that the catalogue was seen and every IS-08
/// io asked for has been answered (start-up; logged once).
fn warmed_up(ready: &mut bool, catalogue_seen: bool, bridge: &Bridge) -> bool {
    if !*ready && catalogue_seen && bridge.io_complete() {
        *ready = true;
        info!("NMOS catalogue in: resolving every running order");
    }
    *ready
}

/// Longest wait at start-up for the catalogue (and the IS-08 io of its devices) before the
/// running orders are resolved with what is known.
const STARTUP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

struct Bridge {
    settings: Arc<BridgeSettings>,
    catalogue: Arc<Catalogue>,
    /// The label index of `catalogue`.
    labels: LabelIndex,
    io: BTreeMap<String, DeviceIo>,
    /// Devices whose io has been asked for (answer pending or received).
    io_asked: HashSet<String>,
    /// The NCS each running order came from.
    owners: HashMap<String, String>,
    /// Items noted on air in the store (see `StateHandle::set_on_air`).
    noted_on_air: HashSet<ItemKey>,
    /// roReadyToAir as last seen, per running order.
    ready_to_air: HashMap<String, Option<AirStatus>>,
    /// The running orders as last read from the state (`None` until first read).
    rundowns: Option<HashMap<String, Rundown>>,
    /// IS-04 version of each receiver on air when its take was confirmed (or last checked).
    versions: HashMap<String, String>,
}

impl Bridge {
    /// Takes a new catalogue snapshot, with its label index.
    fn set_catalogue(&mut self, catalogue: Arc<Catalogue>) {
        self.labels = LabelIndex::new(&catalogue);
        self.catalogue = catalogue;
    }

    /// Every IS-08 io asked for has been answered.
    fn io_complete(&self) -> bool {
        self.io_asked.iter().all(|d| self.io.contains_key(d))
    }

    /// A take confirmed: remember its receivers' IS-04 versions, so that only a later change
    /// (not the registry catching up with this take) is checked.
    fn note_versions(&mut self, status: &ItemStatus) {
        let Ok(route) = &status.item.plan else { return };
        for r in route.receiver_ids() {
            if let Some(rx) = self.catalogue.receivers.get(r) {
                self.versions.insert(r.to_string(), rx.core.version.clone());
            }
        }
    }

    /// Receivers on air whose IS-04 subscription changed since: the engine checks they still
    /// take what their item put there.
    fn check_receivers<D: Devices>(&mut self, engine: &mut TakeEngine<D>) {
        let on_air: Vec<String> = engine
            .on_air_receivers()
            .map(|(r, _)| r.to_string())
            .collect();
        self.versions.retain(|r, _| on_air.contains(r));
        for r in on_air {
            let Some(rx) = self.catalogue.receivers.get(&r) else {
                continue;
            };
            if self.versions.get(&r) == Some(&rx.core.version) {
                continue;
            }
            self.versions.insert(r.clone(), rx.core.version.clone());
            let sender = rx
                .subscription
                .sender_id
                .as_deref()
                .filter(|_| rx.subscription.active);
            engine.receiver_changed(&r, sender);
        }
    }

    /// Asks every IS-08 device whose io is unknown for it; devices that left are forgotten.
    fn read_missing_io<D: Devices>(
        &mut self,
        devices: &Arc<D>,
        tx: &mpsc::UnboundedSender<(String, Result<DeviceIo, String>)>,
    ) {
        let present: HashSet<String> = self.catalogue.devices.keys().cloned().collect();
        self.io.retain(|id, _| present.contains(id));
        self.io_asked.retain(|id| present.contains(id));
        for device in self.catalogue.devices.values() {
            let id = &device.core.id;
            if self.io_asked.contains(id) {
                continue;
            }
            let Some(control) = device
                .controls_of(ControlKind::ChannelMappingV1_0)
                .into_iter()
                .next()
            else {
                continue;
            };
            self.io_asked.insert(id.clone());
            let (devices, tx, id) = (devices.clone(), tx.clone(), id.clone());
            let (api, auth) = (control.href.clone(), control.authorization);
            tokio::spawn(async move {
                let io = devices.read_io(&api, auth).await.map_err(|e| e.0);
                let _ = tx.send((id, io));
            });
        }
    }

    /// Resolves every running order: read from the state the first time, from the bridge's
    /// own copies afterwards (a catalogue change costs no round trip to the state thread,
    /// which the ack path uses).
    async fn resolve_all<D: Devices>(
        &mut self,
        parts: &BridgeParts<D>,
        engine: &mut TakeEngine<D>,
    ) {
        if self.rundowns.is_none() {
            self.rundowns = Some(HashMap::new());
            for ro_id in parts.state.ro_ids().await {
                self.resolve_one(parts, engine, &ro_id).await;
            }
            // Items restored on air: their receivers must still take their senders. Items
            // noted on air that are no longer planned (their running order went) are
            // forgotten.
            engine.forget_restored();
            self.check_receivers(engine);
            let gone: Vec<ItemKey> = self
                .noted_on_air
                .iter()
                .filter(|k| engine.phase(k).is_none())
                .cloned()
                .collect();
            for key in gone {
                self.noted_on_air.remove(&key);
                parts.state.set_on_air(element_key(&key), false);
            }
            return;
        }
        let ro_ids: Vec<String> = self
            .rundowns
            .iter()
            .flatten()
            .map(|(id, _)| id.clone())
            .collect();
        for ro_id in ro_ids {
            self.plan(parts, engine, &ro_id);
        }
    }

    /// A running order changed: its new content is read from the state, then resolved.
    async fn resolve_one<D: Devices>(
        &mut self,
        parts: &BridgeParts<D>,
        engine: &mut TakeEngine<D>,
        ro_id: &str,
    ) {
        let rundown = parts.state.rundown(ro_id).await;
        let rundowns = self.rundowns.get_or_insert_with(HashMap::new);
        match rundown {
            Some(r) => {
                rundowns.insert(ro_id.to_string(), r);
                self.plan(parts, engine, ro_id);
            }
            None => {
                rundowns.remove(ro_id);
                self.ready_to_air.remove(ro_id);
                engine.ro_deleted(ro_id);
            }
        }
    }

    /// Resolves one running order from the bridge's copy and hands the plans to the engine.
    fn plan<D: Devices>(
        &mut self,
        parts: &BridgeParts<D>,
        engine: &mut TakeEngine<D>,
        ro_id: &str,
    ) {
        let Some(rundown) = self.rundowns.as_ref().and_then(|r| r.get(ro_id)) else {
            return;
        };
        let ctx = ResolveContext {
            catalogue: &self.catalogue,
            labels: &self.labels,
            io: &self.io,
            mapping: &self.settings.mapping,
            objects: parts.objects.as_ref(),
        };
        let items: Vec<ItemInfo> = resolve_rundown(rundown, &ctx)
            .into_iter()
            .map(|(key, plan)| {
                let item = rundown.item(&key.story_id, &key.item_id);
                ItemInfo {
                    object_id: item.map(|i| i.object_id.clone()).unwrap_or_default(),
                    channel: item.and_then(|i| i.channel.clone()),
                    key,
                    plan,
                }
            })
            .collect();
        let now = rundown.ready_to_air();
        engine.set_plans(ro_id, items);
        let before = self.ready_to_air.insert(ro_id.to_string(), now);
        if self.settings.ready_to_air_stages
            && now == Some(AirStatus::Ready)
            && before.flatten() != Some(AirStatus::Ready)
        {
            info!(ro = %ro_id, "roReadyToAir READY: staging every item");
            engine.stage_running_order(ro_id);
        }
    }

    async fn send_status<D: Devices>(&mut self, parts: &BridgeParts<D>, status: ItemStatus) {
        let key = &status.item.key;
        // What is on air is noted, so that a restart says PLAY again.
        let on = status.state == ElementState::Play;
        if on != self.noted_on_air.contains(key) {
            if on {
                self.noted_on_air.insert(key.clone());
            } else {
                self.noted_on_air.remove(key);
            }
            parts.state.set_on_air(element_key(key), on);
        }
        let report = StatusReport {
            target: StatusTarget::Item {
                ro_id: key.ro_id.clone(),
                story_id: key.story_id.clone(),
                item_id: key.item_id.clone(),
                object_id: status.item.object_id.clone(),
                channel: status.item.channel.clone(),
            },
            state: status.state,
        };
        let targets: Vec<&String> = match self.owners.get(&key.ro_id) {
            Some(ncs) => vec![ncs],
            None => parts.ncs_ids.iter().collect(),
        };
        for ncs in targets {
            if let Err(e) = parts.statuses.send(ncs, report.clone()).await {
                debug!(ncs = %ncs, item = ?key, "status not sent: {e}");
            }
        }
    }
}
