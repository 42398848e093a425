//! The take engine: what each item is doing (planned, staged, on air, stopped, failed), roCtrl
//! commands turned into device calls, and the statuses that follow.
//!
//! The engine is owned by one task (the bridge) and never blocks: device calls run in spawned
//! tasks whose results come back through [`TakeEngine::completion`] and are applied with
//! [`TakeEngine::complete`]. A result that arrives after the item was re-planned is ignored
//! (each dispatch carries the item's generation).
//!
//! Rules it follows:
//! - New plans change only the items whose plan differs in what it asks of the devices
//!   ([`TakeEngine::set_plans`]; a relabelled receiver is no change); the others keep their phase, so a running order deleted and re-created with the same roID (ENPS when
//!   MOS control is re-enabled) keeps what is on air.
//! - READY stages every connection of the targeted items and prepares their IS-08 maps;
//!   EXECUTE activates (immediately, or at the item's scheduled time) and confirms with IS-05
//!   `/active` before saying PLAY; a later take on the same receivers turns the earlier item
//!   to STOP.
//! - STOP / PAUSE / SIGNAL: status STOP, and a disconnect only when configured; a timed
//!   take still waiting for its time has its scheduled activations cancelled.
//! - READY for an item being staged, taken or on air, and EXECUTE for an item being taken,
//!   change nothing (a repeated command must not restart, and so cancel, a take in flight).
//! - Device calls reach each receiver in the order the commands were given: a dispatch
//!   waits for the device calls of earlier dispatches on any of its receivers (a story-wide
//!   EXECUTE of several items on one destination ends with the last item on air, whatever
//!   the HTTP timings).
//! - A failed take cancels whatever of it was accepted as scheduled, so nothing of it fires
//!   at its time.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::plan::{AudioMap, Connection, ItemKey, ItemPlan, Route};
use super::tai::TaiTime;
use crate::mos::messages::{RoCtrl, RoCtrlCommand};
use crate::status::ElementState;

/// A device call that failed; the text is what the NCS sees after "ERROR: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeviceError(pub String);

/// What the engine needs from the studio's devices. Implemented over the IS-05 / IS-08
/// clients ([`super::devices::NmosDevices`]); faked in tests.
pub trait Devices: Send + Sync + 'static {
    /// READY: stage every connection of the route (sender, master_enable, transport file; no
    /// activation) and check its IS-08 maps, so that the take only activates.
    fn stage(&self, route: &Route) -> impl Future<Output = Result<(), DeviceError>> + Send;
    /// EXECUTE: activate every connection (immediately, or at `at`), rolling back the ones
    /// that succeeded when another failed and the take is all-or-nothing; then apply the
    /// IS-08 maps. `staged` says READY staged this route. Returns the scheduled IS-08
    /// activations (map, activation id).
    fn take(
        &self,
        route: &Route,
        at: Option<TaiTime>,
        staged: bool,
    ) -> impl Future<Output = Result<Vec<(AudioMap, String)>, DeviceError>> + Send;
    /// Cancels a scheduled IS-08 activation (its item was removed).
    fn cancel_map(&self, m: &AudioMap, id: &str) -> impl Future<Output = ()> + Send;
    /// Cancels a receiver's pending scheduled IS-05 activation (its item was removed), so the
    /// receiver does not switch at the time.
    fn cancel_activation(&self, c: &Connection) -> impl Future<Output = ()> + Send;
    /// STOP with `on_stop = disconnect`: master_enable false, sender_id null, now.
    fn disconnect(&self, c: &Connection) -> impl Future<Output = Result<(), DeviceError>> + Send;
    /// Reads a device's IS-08 inputs and outputs (`GET io`) for resolution.
    fn read_io(
        &self,
        api: &str,
        authorization: bool,
    ) -> impl Future<Output = Result<super::plan::DeviceIo, DeviceError>> + Send;
    /// Confirmation: the sender IS-05 `/active` shows on the receiver (None = disabled).
    fn active_sender(
        &self,
        c: &Connection,
    ) -> impl Future<Output = Result<Option<String>, DeviceError>> + Send;
}

/// What STOP, PAUSE and SIGNAL do on the network: the configuration's `on_stop` itself.
pub use crate::config::nmos::OnStop as StopAction;

/// How takes behave.
#[derive(Debug, Clone)]
pub struct TakeSettings {
    /// STOP / PAUSE / SIGNAL.
    pub on_stop: StopAction,
    /// How long the items of a deleted running order are remembered, so a re-created one with
    /// the same roID keeps what is on air.
    pub keep_deleted: Duration,
}

impl Default for TakeSettings {
    fn default() -> Self {
        TakeSettings {
            on_stop: StopAction::None,
            keep_deleted: Duration::from_secs(600),
        }
    }
}

/// An item as resolution saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemInfo {
    /// Where it is.
    pub key: ItemKey,
    /// Its objID.
    pub object_id: String,
    /// Its itemChannel.
    pub channel: Option<String>,
    /// Its route, or why it has none.
    pub plan: ItemPlan,
}

/// A status the engine wants the NCS to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemStatus {
    /// The item.
    pub item: ItemInfo,
    /// Its new state.
    pub state: ElementState,
}

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Resolved (or not); nothing sent.
    Planned,
    /// READY sent to the devices, answers pending.
    Staging,
    /// Staged on every receiver.
    Staged,
    /// EXECUTE sent, confirmation pending.
    Taking,
    /// STOP's disconnect sent (`on_stop = disconnect`), answers pending.
    Stopping,
    /// Confirmed on air.
    Playing,
    /// Taken off (STOP) or replaced by a later take on its receivers.
    Stopped,
    /// The last device call failed.
    Failed,
}

struct Entry {
    info: ItemInfo,
    phase: Phase,
    generation: u64,
    /// Scheduled IS-08 activations to cancel if the item goes.
    scheduled_maps: Vec<(AudioMap, String)>,
    /// Receivers with a scheduled IS-05 activation to cancel if the item goes.
    scheduled_receivers: Vec<Connection>,
}

/// A device call's result, back to the engine.
#[derive(Debug)]
pub struct Completion {
    key: ItemKey,
    generation: u64,
    kind: CompletionKind,
}

#[derive(Debug)]
enum CompletionKind {
    Staged(Result<(), DeviceError>),
    /// A take's IS-08 activations accepted as scheduled (pending until its time).
    Scheduled(Vec<(AudioMap, String)>, Vec<Connection>),
    Taken(Result<(), DeviceError>),
    Stopped(Result<(), DeviceError>),
}

/// The engine. See the module documentation.
pub struct TakeEngine<D: Devices> {
    devices: Arc<D>,
    settings: TakeSettings,
    items: HashMap<ItemKey, Entry>,
    /// Item order per running order.
    order: HashMap<String, Vec<ItemKey>>,
    /// Deleted running orders, kept for a re-creation.
    retired: HashMap<String, (Instant, Vec<Entry>)>,
    /// Which item owns each receiver on air.
    on_air: HashMap<String, ItemKey>,
    /// Per receiver, the end of the device calls of the last dispatch that used it (see
    /// [`Lanes`]).
    lanes: HashMap<String, oneshot::Receiver<()>>,
    /// Items on air before a restart ([`TakeEngine::restore_on_air`]), until their first
    /// plan.
    restored: std::collections::HashSet<ItemKey>,
    next_generation: u64,
    out: mpsc::UnboundedSender<ItemStatus>,
    done_tx: mpsc::UnboundedSender<Completion>,
    done_rx: mpsc::UnboundedReceiver<Completion>,
}

impl<D: Devices> TakeEngine<D> {
    /// An engine driving `devices`; statuses go to `out`.
    pub fn new(
        devices: Arc<D>,
        settings: TakeSettings,
        out: mpsc::UnboundedSender<ItemStatus>,
    ) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        TakeEngine {
            devices,
            settings,
            items: HashMap::new(),
            order: HashMap::new(),
            retired: HashMap::new(),
            on_air: HashMap::new(),
            lanes: HashMap::new(),
            restored: std::collections::HashSet::new(),
            next_generation: 1,
            out,
            done_tx,
            done_rx,
        }
    }

    /// Items that were on air when the gateway stopped: when their first plan arrives they
    /// are on air again (PLAY, owning their receivers) instead of READY. The caller then
    /// checks their receivers against the registry, and [`TakeEngine::forget_restored`]
    /// ends the window.
    pub fn restore_on_air(&mut self, keys: impl IntoIterator<Item = ItemKey>) {
        self.restored.extend(keys);
    }

    /// Ends the restoring of items on air (the start-up resolution is done).
    pub fn forget_restored(&mut self) {
        self.restored.clear();
    }

    /// Replaces the settings (configuration reload).
    pub fn set_settings(&mut self, settings: TakeSettings) {
        self.settings = settings;
    }

    /// The phase of an item, if known.
    pub fn phase(&self, key: &ItemKey) -> Option<Phase> {
        self.items.get(key).map(|e| e.phase)
    }

    /// The item on air on a receiver, if any.
    pub fn on_air(&self, receiver_id: &str) -> Option<&ItemKey> {
        self.on_air.get(receiver_id)
    }

    /// The receivers on air now, with the item that owns each.
    pub fn on_air_receivers(&self) -> impl Iterator<Item = (&str, &ItemKey)> {
        self.on_air.iter().map(|(r, k)| (r.as_str(), k))
    }

    /// IS-04 says a receiver on air now takes `sender_id` (None = nothing). When that is not
    /// the sender its item put there (another controller or a panel switched it), the item is
    /// no longer on air: STOP.
    pub fn receiver_changed(&mut self, receiver_id: &str, sender_id: Option<&str>) {
        let Some(owner) = self.on_air.get(receiver_id).cloned() else {
            return;
        };
        let expected = self
            .items
            .get(&owner)
            .and_then(|e| e.info.plan.as_ref().ok())
            .and_then(|r| r.connections.iter().find(|c| c.receiver_id == receiver_id))
            .map(|c| c.sender_id.clone());
        if expected.as_ref().is_some_and(|e| e.as_deref() == sender_id) {
            return;
        }
        warn!(
            item = ?owner,
            receiver = receiver_id,
            now = sender_id.unwrap_or("nothing"),
            "receiver switched outside the gateway: the item is no longer on air"
        );
        self.release_receivers(&owner);
        let generation = self.bump();
        if let Some(e) = self.items.get_mut(&owner)
            && e.phase == Phase::Playing
        {
            e.phase = Phase::Stopped;
            e.generation = generation;
            let info = e.info.clone();
            self.emit(info, ElementState::Stop);
        }
    }

    /// Installs a running order's freshly resolved items. Items whose plan is unchanged keep
    /// their phase and get no status; changed and new items get READY or NOT READY; removed
    /// items have their scheduled IS-08 activations cancelled.
    pub fn set_plans(&mut self, ro_id: &str, items: Vec<ItemInfo>) {
        self.prune_retired();
        // A running order re-created after a delete: its remembered items come back first.
        if let Some((_, entries)) = self.retired.remove(ro_id) {
            info!(ro = %ro_id, "running order re-created: what is on air stays on air");
            let mut order = Vec::with_capacity(entries.len());
            for e in entries {
                order.push(e.info.key.clone());
                self.items.insert(e.info.key.clone(), e);
            }
            self.order.insert(ro_id.to_string(), order);
        }
        let old_order = self.order.remove(ro_id).unwrap_or_default();
        let mut keep: HashMap<ItemKey, Entry> = old_order
            .iter()
            .filter_map(|k| self.items.remove_entry(k))
            .collect();
        let mut order = Vec::with_capacity(items.len());
        for info in items {
            let key = info.key.clone();
            let entry = match keep.remove(&key) {
                // Unchanged, or changed in names only (a receiver relabelled, a destination
                // renamed): the devices would do the same, so the item keeps its phase, its
                // take in flight and its status (an item on air is not told READY).
                Some(mut e) if same_plan(&e.info.plan, &info.plan) => {
                    e.info = info;
                    e
                }
                previous => {
                    let was_on_air =
                        previous.is_none() && info.plan.is_ok() && self.restored.remove(&key);
                    if let Some(p) = previous {
                        self.forget(p);
                    }
                    let (state, phase) = match &info.plan {
                        Ok(_) if was_on_air => (ElementState::Play, Phase::Playing),
                        Ok(_) => (ElementState::Ready, Phase::Planned),
                        Err(reason) => (ElementState::NotReady(reason.to_string()), Phase::Planned),
                    };
                    self.emit(info.clone(), state);
                    if was_on_air {
                        info!(item = ?key, "on air before the restart: PLAY");
                        self.claim_receivers(&info);
                    }
                    Entry {
                        info,
                        phase,
                        generation: self.bump(),
                        scheduled_maps: Vec::new(),
                        scheduled_receivers: Vec::new(),
                    }
                }
            };
            order.push(key.clone());
            self.items.insert(key, entry);
        }
        for (_, gone) in keep {
            self.forget(gone);
        }
        self.order.insert(ro_id.to_string(), order);
    }

    /// A running order was deleted: nothing changes on the network; its items are remembered
    /// for a while in case it is re-created.
    pub fn ro_deleted(&mut self, ro_id: &str) {
        self.prune_retired();
        let now = Instant::now();
        let Some(order) = self.order.remove(ro_id) else {
            return;
        };
        let entries: Vec<Entry> = order.iter().filter_map(|k| self.items.remove(k)).collect();
        self.retired.insert(ro_id.to_string(), (now, entries));
    }

    /// Deleted running orders not re-created within `keep_deleted` are forgotten for good:
    /// their scheduled activations are cancelled and their receivers released.
    fn prune_retired(&mut self) {
        let keep = self.settings.keep_deleted;
        let expired: Vec<String> = self
            .retired
            .iter()
            .filter(|(_, (at, _))| at.elapsed() >= keep)
            .map(|(id, _)| id.clone())
            .collect();
        for ro_id in expired {
            if let Some((_, entries)) = self.retired.remove(&ro_id) {
                for entry in entries {
                    self.forget(entry);
                }
            }
        }
    }

    /// roCtrl: checks the target and dispatches the command. `Err` is the roAck reason; the
    /// network work runs afterwards.
    pub fn control(&mut self, ctrl: &RoCtrl) -> Result<(), String> {
        let targets = self.targets(ctrl)?;
        match ctrl.command {
            RoCtrlCommand::Ready => {
                for key in targets {
                    self.stage(&key);
                }
            }
            RoCtrlCommand::Execute => {
                for key in targets {
                    self.take(&key);
                }
            }
            RoCtrlCommand::Stop | RoCtrlCommand::Pause | RoCtrlCommand::Signal => {
                for key in targets {
                    self.stop(&key);
                }
            }
        }
        Ok(())
    }

    /// Stages every resolved item of a running order (roReadyToAir READY, when configured).
    pub fn stage_running_order(&mut self, ro_id: &str) {
        let keys = self.order.get(ro_id).cloned().unwrap_or_default();
        for key in keys {
            self.stage(&key);
        }
    }

    /// Waits for the next device result.
    pub async fn completion(&mut self) -> Completion {
        // The engine holds a sender itself, so the channel never closes.
        loop {
            if let Some(c) = self.done_rx.recv().await {
                return c;
            }
        }
    }

    /// Applies a device result.
    pub fn complete(&mut self, c: Completion) {
        if let CompletionKind::Scheduled(maps, receivers) = c.kind {
            self.scheduled(&c.key, c.generation, maps, receivers);
            return;
        }
        let Some(entry) = self.items.get_mut(&c.key) else {
            debug!(item = ?c.key, "result for an item that is gone");
            return;
        };
        if entry.generation != c.generation {
            debug!(item = ?c.key, "result for an earlier plan, ignored");
            return;
        }
        match c.kind {
            CompletionKind::Staged(Ok(())) => {
                entry.phase = Phase::Staged;
                info!(item = ?c.key, "staged");
            }
            CompletionKind::Staged(Err(e)) => {
                entry.phase = Phase::Failed;
                let info = entry.info.clone();
                warn!(item = ?c.key, "staging failed: {e}");
                self.emit(info, ElementState::Error(format!("stage: {e}")));
            }
            CompletionKind::Scheduled(..) => {}
            CompletionKind::Taken(Ok(())) => {
                entry.phase = Phase::Playing;
                // The take waited for its time: its scheduled activations have happened.
                entry.scheduled_maps.clear();
                entry.scheduled_receivers.clear();
                let info = entry.info.clone();
                info!(item = ?c.key, "on air");
                // PLAY before the STOP of the item it replaces.
                self.emit(info.clone(), ElementState::Play);
                self.claim_receivers(&info);
            }
            CompletionKind::Taken(Err(e)) => {
                entry.phase = Phase::Failed;
                // Whatever of a failed take is still pending must not fire at its time
                // (cancelling one that has happened changes nothing).
                let maps = std::mem::take(&mut entry.scheduled_maps);
                let receivers = std::mem::take(&mut entry.scheduled_receivers);
                let info = entry.info.clone();
                warn!(item = ?c.key, "take failed: {e}");
                self.emit(info, ElementState::Error(e.0));
                self.cancel_pending(maps, receivers);
            }
            CompletionKind::Stopped(Ok(())) => {
                entry.phase = Phase::Stopped;
                let info = entry.info.clone();
                self.release_receivers(&info.key);
                self.emit(info, ElementState::Stop);
            }
            CompletionKind::Stopped(Err(e)) => {
                entry.phase = Phase::Failed;
                let info = entry.info.clone();
                warn!(item = ?c.key, "stop failed: {e}");
                self.emit(info, ElementState::Error(format!("stop: {e}")));
            }
        }
    }

    /// Scheduled IS-08 activations of a take in progress: kept with the item (a live one, or
    /// one of a deleted running order that may be re-created) so they are cancelled if it
    /// goes; cancelled now when the item is gone or was re-planned meanwhile.
    fn scheduled(
        &mut self,
        key: &ItemKey,
        generation: u64,
        maps: Vec<(AudioMap, String)>,
        receivers: Vec<Connection>,
    ) {
        let entry = match self.items.get_mut(key) {
            Some(e) => Some(e),
            None => self
                .retired
                .values_mut()
                .flat_map(|(_, entries)| entries.iter_mut())
                .find(|e| e.info.key == *key),
        };
        match entry {
            Some(e) if e.generation == generation => {
                e.scheduled_maps.extend(maps);
                e.scheduled_receivers.extend(receivers);
            }
            _ => {
                debug!(item = ?key, "scheduled activations of an item that changed: cancelling");
                self.cancel_pending(maps, receivers);
            }
        }
    }

    /// Cancels pending activations, in their receivers' order of device calls ([`Lanes`]):
    /// a take dispatched later on the same receivers is not cancelled by them.
    fn cancel_pending(&mut self, maps: Vec<(AudioMap, String)>, receivers: Vec<Connection>) {
        if maps.is_empty() && receivers.is_empty() {
            return;
        }
        let lanes = self.take_lanes(receivers.iter().map(|c| c.receiver_id.as_str()));
        let devices = self.devices.clone();
        tokio::spawn(async move {
            for earlier in lanes.earlier {
                let _ = earlier.await;
            }
            for (map, id) in &maps {
                devices.cancel_map(map, id).await;
            }
            for c in &receivers {
                devices.cancel_activation(c).await;
            }
            drop(lanes.turns);
        });
    }

    fn targets(&self, ctrl: &RoCtrl) -> Result<Vec<ItemKey>, String> {
        let Some(order) = self.order.get(&ctrl.ro_id) else {
            return Err(format!("Unknown roID {}", ctrl.ro_id));
        };
        let story_id = ctrl.story_id.trim();
        let item_id = ctrl.item_id.trim();
        if story_id.is_empty() {
            return Ok(order.clone());
        }
        let in_story: Vec<ItemKey> = order
            .iter()
            .filter(|k| k.story_id == story_id)
            .cloned()
            .collect();
        if item_id.is_empty() {
            if in_story.is_empty() {
                return Err(format!(
                    "Unknown storyID {story_id} (or a story without items)"
                ));
            }
            return Ok(in_story);
        }
        let key = in_story
            .into_iter()
            .find(|k| k.item_id == item_id)
            .ok_or_else(|| format!("Unknown itemID {item_id} in story {story_id}"))?;
        if let Some(Err(reason)) = self.items.get(&key).map(|e| &e.info.plan) {
            return Err(format!("Item {item_id} is NOT READY: {reason}"));
        }
        Ok(vec![key])
    }

    fn bump(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    fn emit(&self, item: ItemInfo, state: ElementState) {
        let _ = self.out.send(ItemStatus { item, state });
    }

    /// An item that leaves the plan: cancel its scheduled maps, release its receivers.
    fn forget(&mut self, entry: Entry) {
        self.release_receivers(&entry.info.key);
        self.cancel_pending(entry.scheduled_maps, entry.scheduled_receivers);
    }

    fn release_receivers(&mut self, key: &ItemKey) {
        self.on_air.retain(|_, owner| owner != key);
    }

    /// A confirmed take owns its receivers; the items that had them stop.
    fn claim_receivers(&mut self, info: &ItemInfo) {
        let Ok(route) = &info.plan else { return };
        let mut stopped = Vec::new();
        for r in route.receiver_ids() {
            if let Some(prev) = self.on_air.insert(r.to_string(), info.key.clone())
                && prev != info.key
                && !stopped.contains(&prev)
            {
                stopped.push(prev);
            }
        }
        for prev in stopped {
            // Still owning another receiver? Only stop when it lost them all.
            if self.on_air.values().any(|k| *k == prev) {
                continue;
            }
            if let Some(e) = self.items.get_mut(&prev)
                && e.phase == Phase::Playing
            {
                e.phase = Phase::Stopped;
                let info = e.info.clone();
                self.emit(info, ElementState::Stop);
            }
        }
    }

    fn dispatch<F>(&mut self, key: &ItemKey, phase: Phase, work: F)
    where
        F: FnOnce(
            Arc<D>,
            Route,
            Progress,
        ) -> std::pin::Pin<Box<dyn Future<Output = CompletionKind> + Send>>,
    {
        let generation = self.bump();
        let Some(entry) = self.items.get_mut(key) else {
            return;
        };
        let Ok(route) = entry.info.plan.clone() else {
            return;
        };
        entry.phase = phase;
        entry.generation = generation;
        let done = self.done_tx.clone();
        let key = key.clone();
        let lanes = self.take_lanes(route.receiver_ids());
        let turns = Arc::new(std::sync::Mutex::new(Some(lanes.turns)));
        let progress = Progress {
            key: key.clone(),
            generation,
            done: done.clone(),
            turns: Arc::clone(&turns),
        };
        let fut = work(self.devices.clone(), route, progress);
        tokio::spawn(async move {
            // Earlier device calls on these receivers first.
            for earlier in lanes.earlier {
                let _ = earlier.await;
            }
            let kind = fut.await;
            release(&turns);
            let _ = done.send(Completion {
                key,
                generation,
                kind,
            });
        });
    }

    /// This dispatch's place on each of these receivers: after the dispatches before.
    fn take_lanes<'a>(&mut self, receivers: impl Iterator<Item = &'a str>) -> Lanes {
        let mut earlier = Vec::new();
        let mut turns = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for r in receivers {
            if !seen.insert(r) {
                continue;
            }
            let (turn, next) = oneshot::channel();
            if let Some(before) = self.lanes.insert(r.to_string(), next) {
                earlier.push(before);
            }
            turns.push(turn);
        }
        Lanes { earlier, turns }
    }

    fn stage(&mut self, key: &ItemKey) {
        match self.items.get(key) {
            Some(e)
                if e.info.plan.is_ok()
                    && !matches!(e.phase, Phase::Staging | Phase::Taking | Phase::Playing) => {}
            Some(e) if e.info.plan.is_ok() => {
                info!(item = ?key, phase = ?e.phase, "READY for an item already under way: nothing to do");
                return;
            }
            _ => return,
        }
        self.dispatch(key, Phase::Staging, |devices, route, _| {
            Box::pin(async move { CompletionKind::Staged(devices.stage(&route).await) })
        });
    }

    fn take(&mut self, key: &ItemKey) {
        let staged = match self.items.get(key) {
            Some(e) if e.info.plan.is_ok() && e.phase == Phase::Taking => {
                info!(item = ?key, "EXECUTE for an item being taken: nothing to do");
                return;
            }
            Some(e) if e.info.plan.is_ok() => e.phase == Phase::Staged,
            _ => return,
        };
        self.dispatch(key, Phase::Taking, move |devices, route, progress| {
            Box::pin(async move {
                CompletionKind::Taken(take_route(&*devices, &route, staged, &progress).await)
            })
        });
    }

    fn stop(&mut self, key: &ItemKey) {
        let Some(entry) = self.items.get_mut(key) else {
            return;
        };
        if entry.info.plan.is_err() {
            return;
        }
        // A timed take still waiting for its time must not fire after STOP. (Activations
        // reported after this STOP are cancelled as they arrive: the generation moves on.)
        let maps = std::mem::take(&mut entry.scheduled_maps);
        let pending = std::mem::take(&mut entry.scheduled_receivers);
        match self.settings.on_stop {
            StopAction::None => {
                let generation = self.bump();
                self.cancel_pending(maps, pending);
                if let Some(e) = self.items.get_mut(key) {
                    e.phase = Phase::Stopped;
                    e.generation = generation;
                    let info = e.info.clone();
                    self.release_receivers(key);
                    self.emit(info, ElementState::Stop);
                }
            }
            StopAction::Disconnect => {
                self.dispatch(key, Phase::Stopping, move |devices, route, _| {
                    Box::pin(async move {
                        // Pending activations first: a receiver with one refuses the
                        // disconnect (423).
                        for (m, id) in &maps {
                            devices.cancel_map(m, id).await;
                        }
                        for c in &pending {
                            devices.cancel_activation(c).await;
                        }
                        let mut result = Ok(());
                        for c in &route.connections {
                            if let Err(e) = devices.disconnect(c).await {
                                result = Err(DeviceError(format!("{}: {e}", c.receiver_label)));
                            }
                        }
                        CompletionKind::Stopped(result)
                    })
                });
            }
        }
    }
}

/// Whether two plans drive the devices alike (see [`Route::same_routing`]); reasons for NOT
/// READY must be equal.
fn same_plan(a: &ItemPlan, b: &ItemPlan) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a.same_routing(b),
        _ => a == b,
    }
}

/// A dispatch's place in the order of device calls on its receivers.
struct Lanes {
    /// The ends of the earlier dispatches' device calls on these receivers, awaited first.
    earlier: Vec<oneshot::Receiver<()>>,
    /// Dropped when this dispatch's device calls are done, which lets the next one go.
    turns: Vec<oneshot::Sender<()>>,
}

/// Reports a take's scheduled IS-08 activations to the engine before the take completes,
/// and lets later device calls on its receivers go once its own are done.
struct Progress {
    key: ItemKey,
    generation: u64,
    done: mpsc::UnboundedSender<Completion>,
    /// This dispatch's turns ([`Lanes::turns`]), released by
    /// [`Progress::device_calls_done`] or when the work ends.
    turns: Turns,
}

/// A dispatch's turns, shared by its task and its [`Progress`].
type Turns = Arc<std::sync::Mutex<Option<Vec<oneshot::Sender<()>>>>>;

/// Lets the next dispatches on these receivers go (once; later calls do nothing).
fn release(turns: &Turns) {
    let mut turns = turns.lock().unwrap_or_else(|p| p.into_inner());
    turns.take();
}

impl Progress {
    /// This dispatch has sent all its device calls: later ones on its receivers may go
    /// (a timed take then waits for its time without holding them up).
    fn device_calls_done(&self) {
        release(&self.turns);
    }

    fn scheduled(&self, maps: Vec<(AudioMap, String)>, receivers: Vec<Connection>) {
        if maps.is_empty() && receivers.is_empty() {
            return;
        }
        let _ = self.done.send(Completion {
            key: self.key.clone(),
            generation: self.generation,
            kind: CompletionKind::Scheduled(maps, receivers),
        });
    }
}

/// EXECUTE: activate (and apply maps), wait for a scheduled time, then confirm on `/active`.
/// Scheduled IS-08 activations are reported as soon as the devices accept them, so that an
/// item removed before its time has them cancelled.
async fn take_route<D: Devices>(
    devices: &D,
    route: &Route,
    staged: bool,
    progress: &Progress,
) -> Result<(), DeviceError> {
    let at = route.scheduled.map(TaiTime::from_utc);
    let taken = devices.take(route, at, staged).await;
    progress.device_calls_done();
    let scheduled = taken?;
    let receivers = if at.is_some() {
        route.connections.clone()
    } else {
        Vec::new()
    };
    progress.scheduled(scheduled, receivers);
    if let Some(when) = route.scheduled {
        let wait = (when - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait + Duration::from_millis(50)).await;
    }
    confirm(devices, route).await
}

/// PLAY only when every receiver's `/active` shows the planned sender.
async fn confirm<D: Devices>(devices: &D, route: &Route) -> Result<(), DeviceError> {
    for c in &route.connections {
        let active = devices.active_sender(c).await?;
        if active != c.sender_id {
            return Err(DeviceError(format!(
                "{}: /active shows sender {} instead of {}",
                c.receiver_label,
                active.as_deref().unwrap_or("none"),
                c.sender_id.as_deref().unwrap_or("none"),
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "takes_tests.rs"]
mod tests;
