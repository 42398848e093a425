//! Tests of the take engine against fake devices.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::*;
use crate::nmos::plan::NotReady;

#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<String>>,
    active: Mutex<HashMap<String, Option<String>>>,
    fail_activate: Mutex<HashSet<String>>,
    fail_stage: Mutex<HashSet<String>>,
    /// Activations of these senders take this long (a slow device, or a take that first
    /// fetches a transport file and stages).
    slow_sender: Mutex<HashMap<String, Duration>>,
}

impl Fake {
    fn log(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Devices for Fake {
    async fn stage(&self, route: &Route) -> Result<(), DeviceError> {
        for c in &route.connections {
            self.log(format!("stage {}", c.receiver_id));
            if self.fail_stage.lock().unwrap().contains(&c.receiver_id) {
                return Err(DeviceError(format!("{}: HTTP 500", c.receiver_label)));
            }
        }
        Ok(())
    }
    async fn take(
        &self,
        route: &Route,
        at: Option<TaiTime>,
        staged: bool,
    ) -> Result<Vec<(AudioMap, String)>, DeviceError> {
        let mut failed = Vec::new();
        let mut done = Vec::new();
        for c in &route.connections {
            let delay = c
                .sender_id
                .as_ref()
                .and_then(|s| self.slow_sender.lock().unwrap().get(s).copied());
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            self.log(format!(
                "activate {} staged={staged} at={}",
                c.receiver_id,
                at.is_some()
            ));
            if self.fail_activate.lock().unwrap().contains(&c.receiver_id) {
                failed.push(format!("{}: HTTP 400", c.receiver_label));
                continue;
            }
            self.active
                .lock()
                .unwrap()
                .insert(c.receiver_id.clone(), c.sender_id.clone());
            done.push(c.receiver_id.clone());
        }
        if !failed.is_empty() {
            for r in done {
                self.log(format!("roll back {r}"));
                self.active.lock().unwrap().insert(r, None);
            }
            return Err(DeviceError(failed.join("; ")));
        }
        // A timed take's maps are accepted as scheduled, each with an activation id.
        Ok(match at {
            Some(_) => route
                .audio_maps
                .iter()
                .enumerate()
                .map(|(i, m)| (m.clone(), format!("act-{i}")))
                .collect(),
            None => Vec::new(),
        })
    }
    async fn cancel_activation(&self, c: &Connection) {
        self.log(format!("cancel receiver {}", c.receiver_id));
    }
    async fn cancel_map(&self, m: &AudioMap, id: &str) {
        self.log(format!("cancel {} {id}", m.device_id));
    }
    async fn disconnect(&self, c: &Connection) -> Result<(), DeviceError> {
        self.log(format!("disconnect {}", c.receiver_id));
        self.active
            .lock()
            .unwrap()
            .insert(c.receiver_id.clone(), None);
        Ok(())
    }
    async fn read_io(
        &self,
        _api: &str,
        _auth: bool,
    ) -> Result<crate::nmos::plan::DeviceIo, DeviceError> {
        Ok(Default::default())
    }
    async fn active_sender(&self, c: &Connection) -> Result<Option<String>, DeviceError> {
        Ok(self
            .active
            .lock()
            .unwrap()
            .get(&c.receiver_id)
            .cloned()
            .flatten())
    }
}

fn conn(receiver: &str, sender: &str) -> Connection {
    Connection {
        receiver_id: receiver.into(),
        receiver_label: format!("label-{receiver}"),
        device_id: "dev".into(),
        connection_api: "http://127.0.0.1:1/x-nmos/connection/v1.1/".into(),
        authorization: false,
        sender_id: Some(sender.into()),
        sender_manifest_href: None,
        sender_version: None,
        sender_connection_api: None,
        sender_authorization: false,
        transport: "urn:x-nmos:transport:rtp".into(),
        receiver_legs: 1,
    }
}

fn item(story: &str, id: &str, plan: ItemPlan) -> ItemInfo {
    ItemInfo {
        key: ItemKey {
            ro_id: "RO1".into(),
            story_id: story.into(),
            item_id: id.into(),
        },
        object_id: "obj".into(),
        channel: None,
        plan,
    }
}

fn route(sender: &str, receivers: &[&str]) -> ItemPlan {
    Ok(Route {
        object_id: sender.into(),
        destination: "PGM".into(),
        connections: receivers.iter().map(|r| conn(r, sender)).collect(),
        audio_maps: Vec::new(),
        scheduled: None,
    })
}

fn ctrl(story: &str, item: &str, command: RoCtrlCommand) -> RoCtrl {
    RoCtrl {
        ro_id: "RO1".into(),
        story_id: story.into(),
        item_id: item.into(),
        command,
        metadata: Vec::new(),
    }
}

type Engine = (
    TakeEngine<Fake>,
    Arc<Fake>,
    mpsc::UnboundedReceiver<ItemStatus>,
);

fn engine(settings: TakeSettings) -> Engine {
    let fake = Arc::new(Fake::default());
    let (tx, rx) = mpsc::unbounded_channel();
    (TakeEngine::new(fake.clone(), settings, tx), fake, rx)
}

fn drain(rx: &mut mpsc::UnboundedReceiver<ItemStatus>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Ok(s) = rx.try_recv() {
        out.push((s.item.key.item_id.clone(), s.state.text(true)));
    }
    out
}

async fn settle(e: &mut TakeEngine<Fake>, n: usize) {
    for _ in 0..n {
        let c = e.completion().await;
        e.complete(c);
    }
}

#[tokio::test]
async fn plans_give_ready_and_not_ready_then_only_changes() {
    let (mut e, _fake, mut rx) = engine(TakeSettings::default());
    e.set_plans(
        "RO1",
        vec![
            item("S1", "I1", route("CAM1", &["R1"])),
            item("S1", "I2", Err(NotReady::UnknownObject("X".into()))),
        ],
    );
    assert_eq!(
        drain(&mut rx),
        vec![
            ("I1".into(), "READY".into()),
            ("I2".into(), "NOT READY: unknown object X".into())
        ]
    );
    // Same plans again: nothing to say.
    e.set_plans(
        "RO1",
        vec![
            item("S1", "I1", route("CAM1", &["R1"])),
            item("S1", "I2", Err(NotReady::UnknownObject("X".into()))),
        ],
    );
    assert!(drain(&mut rx).is_empty());
    // I2 now resolves.
    e.set_plans(
        "RO1",
        vec![
            item("S1", "I1", route("CAM1", &["R1"])),
            item("S1", "I2", route("CAM2", &["R1"])),
        ],
    );
    assert_eq!(drain(&mut rx), vec![("I2".into(), "READY".into())]);
}

#[tokio::test]
async fn ready_stages_execute_activates_confirms_and_stops_the_previous_item() {
    let (mut e, fake, mut rx) = engine(TakeSettings::default());
    e.set_plans(
        "RO1",
        vec![
            item("S1", "I1", route("CAM1", &["R1", "R2"])),
            item("S2", "I2", route("CAM2", &["R1", "R2"])),
        ],
    );
    drain(&mut rx);
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Ready)).unwrap();
    settle(&mut e, 1).await;
    let key = |s: &str, i: &str| ItemKey {
        ro_id: "RO1".into(),
        story_id: s.into(),
        item_id: i.into(),
    };
    assert_eq!(e.phase(&key("S1", "I1")), Some(Phase::Staged));
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    settle(&mut e, 1).await;
    assert_eq!(drain(&mut rx), vec![("I1".into(), "PLAY".into())]);
    assert!(
        fake.calls()
            .contains(&"activate R1 staged=true at=false".to_string())
    );
    // EXECUTE without READY: the request carries everything.
    e.control(&ctrl("S2", "I2", RoCtrlCommand::Execute))
        .unwrap();
    settle(&mut e, 1).await;
    assert!(
        fake.calls()
            .contains(&"activate R1 staged=false at=false".to_string())
    );
    assert_eq!(
        drain(&mut rx),
        vec![("I2".into(), "PLAY".into()), ("I1".into(), "STOP".into())]
    );
    assert_eq!(e.on_air("R2"), Some(&key("S2", "I2")));
}

#[tokio::test]
async fn a_failed_take_rolls_back_and_says_error() {
    let (mut e, fake, mut rx) = engine(TakeSettings::default());
    fake.fail_activate.lock().unwrap().insert("R2".into());
    e.set_plans("RO1", vec![item("S1", "I1", route("CAM1", &["R1", "R2"]))]);
    drain(&mut rx);
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    settle(&mut e, 1).await;
    assert_eq!(
        drain(&mut rx),
        vec![("I1".into(), "ERROR: label-R2: HTTP 400".into())]
    );
    assert!(fake.calls().contains(&"roll back R1".to_string()));
    assert!(!fake.calls().contains(&"roll back R2".to_string()));
}

#[tokio::test]
async fn a_failed_stage_says_error() {
    let (mut e, fake, mut rx) = engine(TakeSettings::default());
    fake.fail_stage.lock().unwrap().insert("R1".into());
    e.set_plans("RO1", vec![item("S1", "I1", route("CAM1", &["R1"]))]);
    drain(&mut rx);
    e.control(&ctrl("S1", "", RoCtrlCommand::Ready)).unwrap();
    settle(&mut e, 1).await;
    assert_eq!(
        drain(&mut rx),
        vec![("I1".into(), "ERROR: stage: label-R1: HTTP 500".into())]
    );
}

#[tokio::test]
async fn control_names_unknown_targets_and_not_ready_items() {
    let (mut e, _fake, _rx) = engine(TakeSettings::default());
    e.set_plans(
        "RO1",
        vec![
            item("S1", "I1", route("CAM1", &["R1"])),
            item("S1", "I2", Err(NotReady::PlaceholderNotBound("P1".into()))),
        ],
    );
    let mut bad = ctrl("S1", "I1", RoCtrlCommand::Execute);
    bad.ro_id = "RO9".into();
    assert_eq!(e.control(&bad).unwrap_err(), "Unknown roID RO9");
    assert!(
        e.control(&ctrl("S9", "", RoCtrlCommand::Ready))
            .unwrap_err()
            .contains("S9")
    );
    assert!(
        e.control(&ctrl("S1", "I9", RoCtrlCommand::Ready))
            .unwrap_err()
            .contains("I9")
    );
    assert_eq!(
        e.control(&ctrl("S1", "I2", RoCtrlCommand::Execute))
            .unwrap_err(),
        "Item I2 is NOT READY: placeholder not bound (P1)"
    );
}

#[tokio::test]
async fn stop_is_status_only_by_default_and_disconnects_when_configured() {
    let (mut e, fake, mut rx) = engine(TakeSettings::default());
    e.set_plans("RO1", vec![item("S1", "I1", route("CAM1", &["R1"]))]);
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    settle(&mut e, 1).await;
    drain(&mut rx);
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Stop)).unwrap();
    assert_eq!(drain(&mut rx), vec![("I1".into(), "STOP".into())]);
    assert!(!fake.calls().iter().any(|c| c.starts_with("disconnect")));

    let settings = TakeSettings {
        on_stop: StopAction::Disconnect,
        ..TakeSettings::default()
    };
    let (mut e, fake, mut rx) = engine(settings);
    e.set_plans("RO1", vec![item("S1", "I1", route("CAM1", &["R1"]))]);
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    settle(&mut e, 1).await;
    drain(&mut rx);
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Pause)).unwrap();
    settle(&mut e, 1).await;
    assert_eq!(drain(&mut rx), vec![("I1".into(), "STOP".into())]);
    assert!(fake.calls().contains(&"disconnect R1".to_string()));
}

#[tokio::test]
async fn a_recreated_running_order_keeps_what_is_on_air() {
    let (mut e, fake, mut rx) = engine(TakeSettings::default());
    let plans = || {
        vec![
            item("S1", "I1", route("CAM1", &["R1"])),
            item("S1", "I2", route("CAM2", &["R2"])),
        ]
    };
    e.set_plans("RO1", plans());
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    settle(&mut e, 1).await;
    drain(&mut rx);
    let calls_before = fake.calls().len();
    e.ro_deleted("RO1");
    let mut again = plans();
    again[1] = item("S1", "I2", route("CAM3", &["R2"]));
    e.set_plans("RO1", again);
    // Only the changed item is re-planned; nothing touched the network.
    assert_eq!(drain(&mut rx), vec![("I2".into(), "READY".into())]);
    assert_eq!(fake.calls().len(), calls_before);
    let k1 = ItemKey {
        ro_id: "RO1".into(),
        story_id: "S1".into(),
        item_id: "I1".into(),
    };
    assert_eq!(e.phase(&k1), Some(Phase::Playing));
    assert_eq!(e.on_air("R1"), Some(&k1));
}

#[tokio::test]
async fn a_result_for_an_earlier_plan_is_ignored() {
    let (mut e, _fake, mut rx) = engine(TakeSettings::default());
    e.set_plans("RO1", vec![item("S1", "I1", route("CAM1", &["R1"]))]);
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    // Re-planned before the take's result is applied.
    e.set_plans("RO1", vec![item("S1", "I1", route("CAM2", &["R1"]))]);
    drain(&mut rx);
    settle(&mut e, 1).await;
    assert!(drain(&mut rx).is_empty());
}

#[tokio::test]
async fn a_receiver_switched_elsewhere_stops_its_item() {
    let (mut e, _fake, mut rx) = engine(TakeSettings::default());
    e.set_plans("RO1", vec![item("S1", "I1", route("CAM1", &["R1", "R2"]))]);
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    settle(&mut e, 1).await;
    drain(&mut rx);
    // The registry catching up with our own take: nothing to say.
    e.receiver_changed("R1", Some("CAM1"));
    assert!(drain(&mut rx).is_empty());
    // A panel switched R2 to another source: the item is off air.
    e.receiver_changed("R2", Some("CAM9"));
    assert_eq!(drain(&mut rx), vec![("I1".into(), "STOP".into())]);
    assert!(e.on_air("R1").is_none() && e.on_air("R2").is_none());
    // Once stopped, further changes say nothing.
    e.receiver_changed("R1", None);
    assert!(drain(&mut rx).is_empty());
}

/// A route to R1 with an IS-08 map on device `dev-audio`, scheduled `ms` from now.
fn timed_route(ms: i64) -> ItemPlan {
    let mut plan = route("CAM1", &["R1"]);
    if let Ok(r) = &mut plan {
        r.audio_maps.push(AudioMap {
            device_id: "dev-audio".into(),
            channel_mapping_api: "http://127.0.0.1:1/x-nmos/channelmapping/v1.0/".into(),
            authorization: false,
            map: Default::default(),
        });
        r.scheduled = Some(chrono::Utc::now() + chrono::Duration::milliseconds(ms));
    }
    plan
}

#[tokio::test]
async fn an_item_removed_before_its_time_has_its_scheduled_maps_cancelled() {
    let (mut e, fake, _rx) = engine(TakeSettings::default());
    e.set_plans("RO1", vec![item("S1", "I1", timed_route(10_000))]);
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    // The scheduled maps are known as soon as the devices accept them.
    settle(&mut e, 1).await;
    e.set_plans("RO1", Vec::new());
    tokio::task::yield_now().await;
    wait_for_calls(&fake, &["cancel dev-audio act-0", "cancel receiver R1"]).await;
}

#[tokio::test]
async fn scheduled_maps_of_a_re_planned_item_are_cancelled_when_they_arrive() {
    let (mut e, fake, _rx) = engine(TakeSettings::default());
    e.set_plans("RO1", vec![item("S1", "I1", timed_route(10_000))]);
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    // Re-planned before the take's scheduled maps are applied.
    e.set_plans("RO1", vec![item("S1", "I1", route("CAM2", &["R1"]))]);
    settle(&mut e, 1).await;
    wait_for_calls(&fake, &["cancel dev-audio act-0"]).await;
}

#[tokio::test]
async fn scheduled_maps_survive_a_running_order_deleted_and_re_created() {
    let (mut e, fake, _rx) = engine(TakeSettings::default());
    let timed = timed_route(10_000);
    let plans = || vec![item("S1", "I1", timed.clone())];
    e.set_plans("RO1", plans());
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    e.ro_deleted("RO1");
    settle(&mut e, 1).await;
    e.set_plans("RO1", plans());
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        !fake.calls().iter().any(|c| c.starts_with("cancel")),
        "{:?}",
        fake.calls()
    );
    // ... and still go with the item when it is removed afterwards.
    e.set_plans("RO1", Vec::new());
    wait_for_calls(&fake, &["cancel dev-audio act-0"]).await;
}

#[tokio::test]
async fn a_deleted_running_order_not_re_created_in_time_has_its_schedules_cancelled() {
    let settings = TakeSettings {
        keep_deleted: Duration::ZERO,
        ..TakeSettings::default()
    };
    let (mut e, fake, _rx) = engine(settings);
    e.set_plans("RO1", vec![item("S1", "I1", timed_route(10_000))]);
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    settle(&mut e, 1).await;
    e.ro_deleted("RO1");
    // Any later change to the running orders forgets what waited too long.
    e.set_plans("RO2", Vec::new());
    wait_for_calls(&fake, &["cancel dev-audio act-0", "cancel receiver R1"]).await;
}

/// Yields to the engine's tasks (up to ten times) until the fake has seen every call in
/// `wanted`; panics with the calls seen otherwise.
async fn wait_for_calls(fake: &Fake, wanted: &[&str]) {
    for _ in 0..10 {
        let calls = fake.calls();
        if wanted.iter().all(|w| calls.iter().any(|c| c == w)) {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("not cancelled: {:?}", fake.calls());
}

fn key(story: &str, item: &str) -> ItemKey {
    ItemKey {
        ro_id: "RO1".into(),
        story_id: story.into(),
        item_id: item.into(),
    }
}

#[tokio::test]
async fn a_story_wide_execute_ends_with_its_last_item_on_air_whatever_the_timings() {
    let (mut e, fake, mut rx) = engine(TakeSettings::default());
    // The first item's take is slow, the second's quick: without ordering, the first would
    // land last and stay on air.
    fake.slow_sender
        .lock()
        .unwrap()
        .insert("CAM1".into(), Duration::from_millis(50));
    e.set_plans(
        "RO1",
        vec![
            item("S1", "I1", route("CAM1", &["R1"])),
            item("S1", "I2", route("CAM2", &["R1"])),
        ],
    );
    drain(&mut rx);
    e.control(&ctrl("S1", "", RoCtrlCommand::Execute)).unwrap();
    settle(&mut e, 2).await;
    let activations: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("activate"))
        .collect();
    assert_eq!(activations.len(), 2, "{activations:?}");
    assert_eq!(fake.active.lock().unwrap()["R1"].as_deref(), Some("CAM2"));
    assert_eq!(e.on_air("R1"), Some(&key("S1", "I2")));
    let statuses = drain(&mut rx);
    assert_eq!(
        statuses.last(),
        Some(&("I1".to_string(), "STOP".to_string())),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn ready_or_execute_again_while_a_take_is_under_way_changes_nothing() {
    let (mut e, fake, mut rx) = engine(TakeSettings::default());
    fake.slow_sender
        .lock()
        .unwrap()
        .insert("CAM1".into(), Duration::from_millis(30));
    e.set_plans("RO1", vec![item("S1", "I1", route("CAM1", &["R1"]))]);
    drain(&mut rx);
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    assert_eq!(e.phase(&key("S1", "I1")), Some(Phase::Taking));
    // A repeated EXECUTE and a READY (an roReadyToAir re-sent mid-show) while it runs.
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Ready)).unwrap();
    e.stage_running_order("RO1");
    settle(&mut e, 1).await;
    assert_eq!(drain(&mut rx), vec![("I1".into(), "PLAY".into())]);
    let calls = fake.calls();
    assert_eq!(
        calls,
        vec!["activate R1 staged=false at=false".to_string()],
        "the take was restarted"
    );
    // On air: READY changes nothing either.
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Ready)).unwrap();
    tokio::task::yield_now().await;
    assert_eq!(fake.calls().len(), 1);
    assert_eq!(e.phase(&key("S1", "I1")), Some(Phase::Playing));
}

#[tokio::test]
async fn stop_before_its_time_cancels_a_timed_take() {
    for on_stop in [StopAction::None, StopAction::Disconnect] {
        let settings = TakeSettings {
            on_stop,
            ..TakeSettings::default()
        };
        let (mut e, fake, mut rx) = engine(settings);
        e.set_plans("RO1", vec![item("S1", "I1", timed_route(10_000))]);
        e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
            .unwrap();
        // The scheduled activations are known.
        settle(&mut e, 1).await;
        e.control(&ctrl("S1", "I1", RoCtrlCommand::Stop)).unwrap();
        wait_for_calls(&fake, &["cancel dev-audio act-0", "cancel receiver R1"]).await;
        if on_stop == StopAction::Disconnect {
            settle(&mut e, 1).await;
            let calls = fake.calls();
            let cancel = calls.iter().position(|c| c == "cancel receiver R1");
            let disconnect = calls.iter().position(|c| c == "disconnect R1");
            assert!(cancel < disconnect && disconnect.is_some(), "{calls:?}");
        }
        let statuses = drain(&mut rx);
        assert!(
            statuses.iter().any(|(_, s)| s == "STOP"),
            "{on_stop:?}: {statuses:?}"
        );
    }
}

#[tokio::test]
async fn a_failed_timed_take_cancels_what_was_scheduled() {
    let (mut e, fake, mut rx) = engine(TakeSettings::default());
    e.set_plans("RO1", vec![item("S1", "I1", timed_route(20))]);
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    settle(&mut e, 1).await;
    // At its time the receiver does not show the sender (another controller, a fault):
    // the take fails, and what it had scheduled is cancelled rather than forgotten.
    fake.active.lock().unwrap().insert("R1".into(), None);
    fake.active.lock().unwrap().clear();
    settle(&mut e, 1).await;
    let statuses = drain(&mut rx);
    assert!(
        statuses.iter().any(|(_, s)| s.starts_with("ERROR")),
        "{statuses:?}"
    );
    wait_for_calls(&fake, &["cancel dev-audio act-0", "cancel receiver R1"]).await;
}

#[tokio::test]
async fn a_plan_changed_in_names_only_leaves_an_item_on_air_alone() {
    let (mut e, _fake, mut rx) = engine(TakeSettings::default());
    e.set_plans("RO1", vec![item("S1", "I1", route("CAM1", &["R1"]))]);
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    settle(&mut e, 1).await;
    drain(&mut rx);
    // The receiver is relabelled and the destination renamed in IS-04 / the mapping.
    let mut renamed = route("CAM1", &["R1"]);
    if let Ok(r) = &mut renamed {
        r.destination = "PROGRAM".into();
        r.connections[0].receiver_label = "MIX input 1".into();
    }
    e.set_plans("RO1", vec![item("S1", "I1", renamed)]);
    assert!(drain(&mut rx).is_empty(), "an item on air was told READY");
    assert_eq!(e.phase(&key("S1", "I1")), Some(Phase::Playing));
    assert_eq!(e.on_air("R1"), Some(&key("S1", "I1")));
    // A real change (another sender) is a new plan: READY.
    e.set_plans("RO1", vec![item("S1", "I1", route("CAM2", &["R1"]))]);
    assert_eq!(drain(&mut rx), vec![("I1".into(), "READY".into())]);
    assert_eq!(e.phase(&key("S1", "I1")), Some(Phase::Planned));
}

#[tokio::test]
async fn execute_right_after_a_disconnecting_stop_is_carried_out() {
    let settings = TakeSettings {
        on_stop: StopAction::Disconnect,
        ..TakeSettings::default()
    };
    let (mut e, fake, mut rx) = engine(settings);
    e.set_plans("RO1", vec![item("S1", "I1", route("CAM1", &["R1"]))]);
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    settle(&mut e, 1).await;
    drain(&mut rx);
    // STOP disconnects; the operator takes the item again before the disconnect is done.
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Stop)).unwrap();
    assert_eq!(e.phase(&key("S1", "I1")), Some(Phase::Stopping));
    e.control(&ctrl("S1", "I1", RoCtrlCommand::Execute))
        .unwrap();
    // The disconnect's answer (for the earlier command, ignored), then the take's.
    settle(&mut e, 2).await;
    let calls = fake.calls();
    let disconnect = calls.iter().position(|c| c == "disconnect R1");
    let retake = calls.iter().rposition(|c| c.starts_with("activate"));
    assert!(
        disconnect < retake,
        "the take overtook the disconnect: {calls:?}"
    );
    let activations = fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("activate"))
        .count();
    assert_eq!(activations, 2, "{:?}", fake.calls());
    assert_eq!(e.phase(&key("S1", "I1")), Some(Phase::Playing));
    assert_eq!(drain(&mut rx).last(), Some(&("I1".into(), "PLAY".into())));
}
