//! The gateway's own connections to the NCS: resynchronisation with roReqAll/roReq,
//! reconnection, resend with the same messageID, roReq after a refused edit.

use std::time::Duration;

use mos_gateway::mos::messages::{RoList, RoListAll};
use mos_gateway::mos::structures::{RoHeader, RunningOrder, Story};
use mos_gateway::mos::{Message, Mos, ParseOptions};

use crate::support::*;

fn ncs_running_order(ro_id: &str, stories: &[&str]) -> RunningOrder {
    RunningOrder {
        header: RoHeader {
            id: ro_id.into(),
            slug: Some(format!("NCS copy of {ro_id}")),
            ..RoHeader::default()
        },
        stories: stories
            .iter()
            .map(|s| Story {
                id: s.to_string(),
                ..Story::default()
            })
            .collect(),
    }
}

/// Plays the NCS side of a resync: answers roReqAll and each roReq (checking that the
/// next roReq waits for the answer to the last).
async fn serve_resync(conn: &mut FakeConn, ros: &[(&str, &[&str])]) {
    let req = conn.recv().await;
    assert!(
        matches!(req.message, Message::RoReqAll(_)),
        "expected roReqAll, got {:?}",
        req.message
    );
    let all = RoListAll {
        running_orders: ros
            .iter()
            .map(|(id, _)| RoHeader {
                id: id.to_string(),
                ..RoHeader::default()
            })
            .collect(),
    };
    conn.reply(&req, Message::RoListAll(all)).await;
    for (id, stories) in ros {
        let req = conn.recv().await;
        let Message::RoReq(r) = &req.message else {
            panic!("expected roReq, got {:?}", req.message)
        };
        assert_eq!(r.ro_id, *id, "one roReq per running order, in order");
        // One at a time: the next roReq waits for this one's roList.
        conn.expect_nothing(100).await;
        conn.reply(
            &req,
            Message::RoList(RoList(ncs_running_order(id, stories))),
        )
        .await;
    }
}

async fn wait_for_order(gw: &Running, ro_id: &str, expected: &[&str]) {
    let mut ncs = Ncs::connect(gw.upper).await;
    for _ in 0..100 {
        let (_, text) = ncs.envelope(&format!("<roReq><roID>{ro_id}</roID></roReq>"));
        ncs.send_text(&text).await;
        let r = ncs.recv().await;
        if let Message::RoList(l) = r.message {
            let got: Vec<&str> = l.0.stories.iter().map(|s| s.id.as_str()).collect();
            if got == expected {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("running order {ro_id} never became {expected:?}");
}

#[tokio::test]
async fn resync_on_connect_replaces_our_copies_with_the_ncs_running_orders() {
    let dir = tempfile::tempdir().unwrap();
    let upper = FakeNcs::bind().await;
    let gw = start(config_with(
        dir.path(),
        1,
        upper.port(),
        "resync_on_connect = true\nheartbeat_interval_s = 0",
    ))
    .await;
    // Our stale copy of R1 is replaced; KEPT, which the NCS does not list, stays.
    let mut ncs = Ncs::connect(gw.upper).await;
    ncs.ok(&ro_create("R1", &[("OLD", &[])])).await;
    ncs.ok(&ro_create("KEPT", &[("K1", &[])])).await;
    let mut conn = upper.accept().await;
    serve_resync(&mut conn, &[("R1", &["A", "B"]), ("R2", &["C"])]).await;
    wait_for_order(&gw, "R1", &["A", "B"]).await;
    wait_for_order(&gw, "R2", &["C"]).await;
    assert_eq!(ids(&ncs.order("KEPT").await), ["K1"]);
    drop(ncs);
    gw.stop().await;
    // R2 came only from the NCS's roList (no messageID): still recorded as the NCS's, so
    // that its statuses find their way after a restart.
    let owners = mos_gateway::store::Store::open(dir.path())
        .unwrap()
        .owners()
        .unwrap();
    assert!(
        owners.contains(&("R2".to_string(), NCS_ID.to_string())),
        "{owners:?}"
    );
}

#[tokio::test]
async fn ncs_down_at_start_is_reached_when_it_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    // Reserve a port, close it: the NCS is down.
    let port = FakeNcs::bind().await.port();
    let gw = start(config_with(
        dir.path(),
        1,
        port,
        "resync_on_connect = true\nheartbeat_interval_s = 0\nreconnect_max_s = 0.2",
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = gw.links.as_ref().unwrap().upper.status();
    assert!(!status.up, "{status:?}");
    assert!(status.last_error.is_some());
    let upper = FakeNcs::up_on(port).await;
    let mut conn = upper.accept().await;
    serve_resync(&mut conn, &[("R7", &["X"])]).await;
    wait_for_order(&gw, "R7", &["X"]).await;
    assert!(gw.links.as_ref().unwrap().upper.status().up);
    gw.stop().await;
}

#[tokio::test]
async fn an_unanswered_request_is_resent_with_the_same_message_id_on_a_fresh_socket() {
    let dir = tempfile::tempdir().unwrap();
    let upper = FakeNcs::bind().await;
    let gw = start(config_with(dir.path(), 1, upper.port(), "resync_on_connect = true\nheartbeat_interval_s = 0\nack_timeout_s = 0.3\nreconnect_max_s = 0.2")).await;
    let mut first = upper.accept().await;
    let unanswered = first.recv().await;
    assert!(matches!(unanswered.message, Message::RoReqAll(_)));
    // No reply: the gateway gives up on this socket and sends the same message again.
    let mut second = upper.accept().await;
    let again = second.recv().await;
    assert_eq!(again.message_id, unanswered.message_id);
    assert_eq!(again.message, unanswered.message);
    second
        .reply(
            &again,
            Message::RoListAll(RoListAll {
                running_orders: vec![],
            }),
        )
        .await;
    gw.stop().await;
}

#[tokio::test]
async fn an_edit_refused_for_an_unknown_running_order_triggers_a_ro_req() {
    let dir = tempfile::tempdir().unwrap();
    let upper = FakeNcs::bind().await;
    let gw = start(config_with(
        dir.path(),
        1,
        upper.port(),
        "heartbeat_interval_s = 0",
    ))
    .await;
    let mut ncs = Ncs::connect(gw.upper).await;
    let why = ncs
        .refused(&format!(
            "<roStoryAppend><roID>LOST</roID>{}</roStoryAppend>",
            story("S1", &[])
        ))
        .await;
    assert!(why.contains("LOST"), "{why}");
    let mut conn = upper.accept().await;
    let req = conn.recv().await;
    let Message::RoReq(r) = &req.message else {
        panic!("{:?}", req.message)
    };
    assert_eq!(r.ro_id, "LOST");
    conn.reply(
        &req,
        Message::RoList(RoList(ncs_running_order("LOST", &["S0"]))),
    )
    .await;
    wait_for_order(&gw, "LOST", &["S0"]).await;
    // The NCS's next edit now applies.
    ncs.ok(&format!(
        "<roStoryAppend><roID>LOST</roID>{}</roStoryAppend>",
        story("S1", &[])
    ))
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn heartbeats_are_sent_on_our_links_and_theirs_answered() {
    let dir = tempfile::tempdir().unwrap();
    let lower = FakeNcs::bind().await;
    let gw = start(config_with(
        dir.path(),
        lower.port(),
        2,
        "heartbeat_interval_s = 0.1",
    ))
    .await;
    let mut conn = lower.accept().await;
    // Our heartbeat arrives; the NCS answers it (FakeConn::recv does) …
    // … and the NCS's own heartbeat on our socket is answered with its messageID.
    let hb = Mos::parse(
        "<mos><mosID>nmos.gateway.mos</mosID><ncsID>ENPS.NCS</ncsID><messageID>777</messageID><heartbeat><time>2026-11-25T18:00:00,000Z</time></heartbeat></mos>",
        ParseOptions::strict(),
    )
    .unwrap()
    .mos;
    conn.send(&hb).await;
    let reply = conn.recv_any().await;
    assert_eq!(reply.message_id.as_deref(), Some("777"));
    assert!(matches!(reply.message, Message::Heartbeat(_)));
    // Keep answering the gateway's heartbeats.
    let answering = tokio::spawn(async move {
        loop {
            conn.recv().await;
        }
    });
    for _ in 0..50 {
        if gw
            .links
            .as_ref()
            .unwrap()
            .lower
            .status()
            .last_heartbeat
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = gw.links.as_ref().unwrap().lower.status();
    assert!(
        st.up && st.last_heartbeat.is_some() && st.rtt.is_some(),
        "{st:?}"
    );
    answering.abort();
    gw.stop().await;
}

mod statuses {
    use super::*;
    use mos_gateway::mos::messages::{RoAck, StatElement};
    use mos_gateway::server::StatusError;
    use mos_gateway::status::{Dropped, ElementState, StatusReport, StatusTarget};

    fn item(ro: &str, state: ElementState) -> StatusReport {
        StatusReport {
            target: StatusTarget::Item {
                ro_id: ro.into(),
                story_id: "S1".into(),
                item_id: "1".into(),
                object_id: "OBJ-1".into(),
                channel: Some("CAM1".into()),
            },
            state,
        }
    }

    async fn ack(conn: &mut FakeConn, m: &Mos) {
        let ro = match &m.message {
            Message::RoItemStat(s) => s.ro_id.clone(),
            Message::RoElementStat(s) => s.ro_id.clone(),
            Message::RoStat(s) => s.ro_id.clone(),
            _ => String::new(),
        };
        conn.reply(m, Message::RoAck(RoAck::ok(&ro))).await;
    }

    #[tokio::test]
    async fn item_statuses_go_out_as_ro_item_stat_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let upper = FakeNcs::bind().await;
        let gw = start(config_with(
            dir.path(),
            1,
            upper.port(),
            "heartbeat_interval_s = 0",
        ))
        .await;
        let mut ncs = Ncs::connect(gw.upper).await;
        ncs.ok(&ro_create("R", &[("S1", &["1", "2"])])).await;
        gw.status
            .send(
                NCS_ID,
                item("R", ElementState::NotReady("sender gone".into())),
            )
            .await
            .unwrap();
        // (Another item: a newer status for the same item would supersede the first.)
        gw.status
            .send(NCS_ID, item_n("R", "2", ElementState::Play))
            .await
            .unwrap();
        let mut conn = upper.accept().await;
        let first = conn.recv().await;
        let Message::RoItemStat(s) = &first.message else {
            panic!("{:?}", first.message)
        };
        assert_eq!(
            (s.status.as_str(), s.item_id.as_str(), s.object_id.as_str()),
            ("NOT READY: sender gone", "1", "OBJ-1")
        );
        ack(&mut conn, &first).await;
        let second = conn.recv().await;
        let Message::RoItemStat(s) = &second.message else {
            panic!()
        };
        assert_eq!(s.status, "PLAY");
        ack(&mut conn, &second).await;
        // A status for a running order we do not hold is dropped.
        let r = gw
            .status
            .send(NCS_ID, item("GONE", ElementState::Play))
            .await;
        assert_eq!(r, Err(StatusError::Dropped(Dropped::RunningOrderGone)));
        gw.stop().await;
    }

    fn item_n(ro: &str, item_id: &str, state: ElementState) -> StatusReport {
        let mut r = item(ro, state);
        if let StatusTarget::Item { item_id: id, .. } = &mut r.target {
            *id = item_id.into();
        }
        r
    }

    /// The NCS numbers its own messages: a heartbeat of its own whose messageID matches a
    /// status we sent is still answered (only our heartbeats' IDs mark late replies).
    #[tokio::test]
    async fn an_ncs_heartbeat_with_the_id_of_one_of_our_statuses_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        let upper = FakeNcs::bind().await;
        let gw = start(config_with(
            dir.path(),
            1,
            upper.port(),
            "heartbeat_interval_s = 0",
        ))
        .await;
        let mut ncs = Ncs::connect(gw.upper).await;
        ncs.ok(&ro_create("R", &[("S1", &["1"])])).await;
        gw.status
            .send(NCS_ID, item("R", ElementState::Play))
            .await
            .unwrap();
        let mut conn = upper.accept().await;
        let status = conn.recv().await;
        ack(&mut conn, &status).await;
        let id = status.message_id.clone().unwrap();
        let heartbeat = Mos::new(
            MOS_ID,
            NCS_ID,
            Some(id.clone()),
            Message::Heartbeat(mos_gateway::mos::messages::Heartbeat { time: None }),
        );
        conn.send(&heartbeat).await;
        let answer = conn
            .next_or_closed(2000)
            .await
            .expect("the NCS's heartbeat was not answered");
        assert!(matches!(answer.message, Message::Heartbeat(_)));
        assert_eq!(answer.message_id, Some(id));
        gw.stop().await;
    }

    /// After an outage the NCS gets each item's current state, not its history.
    #[tokio::test]
    async fn a_status_still_queued_is_superseded_by_a_newer_one_for_the_same_item() {
        let dir = tempfile::tempdir().unwrap();
        let port = FakeNcs::down_port().await; // the NCS is down for now
        let gw = start(config_with(
            dir.path(),
            1,
            port,
            "heartbeat_interval_s = 0\nreconnect_max_s = 0.2",
        ))
        .await;
        let mut ncs = Ncs::connect(gw.upper).await;
        ncs.ok(&ro_create("R", &[("S1", &["1", "2"])])).await;
        for (id, state) in [
            ("1", ElementState::Ready),
            ("1", ElementState::Play),
            ("2", ElementState::Ready),
        ] {
            gw.status
                .send(NCS_ID, item_n("R", id, state))
                .await
                .unwrap();
        }
        let upper = FakeNcs::up_on(port).await;
        let mut conn = upper.accept().await;
        let mut seen = Vec::new();
        for _ in 0..2 {
            let m = conn.recv().await;
            let Message::RoItemStat(s) = &m.message else {
                panic!("{:?}", m.message)
            };
            seen.push((s.item_id.clone(), s.status.clone()));
            ack(&mut conn, &m).await;
        }
        assert_eq!(
            seen,
            [("1".into(), "PLAY".into()), ("2".into(), "READY".into())]
        );
        conn.expect_nothing(300).await;
        gw.stop().await;
    }

    /// A status the NCS does not answer is not forgotten: once the NCS answers again (here
    /// a heartbeat), the item's latest status is offered again.
    #[tokio::test]
    async fn an_unanswered_status_is_offered_again_once_the_ncs_answers() {
        let dir = tempfile::tempdir().unwrap();
        let upper = FakeNcs::bind().await;
        let gw = start(config_with(
            dir.path(),
            1,
            upper.port(),
            "heartbeat_interval_s = 1\nack_timeout_s = 0.2\nreconnect_max_s = 0.2",
        ))
        .await;
        let mut ncs = Ncs::connect(gw.upper).await;
        ncs.ok(&ro_create("R", &[("S1", &["1"])])).await;
        gw.status
            .send(NCS_ID, item("R", ElementState::Play))
            .await
            .unwrap();
        // Three attempts, each on a fresh socket, none answered.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut attempts = 0;
        while attempts < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "{attempts} attempts seen"
            );
            let mut conn = upper.accept().await;
            while let Some(m) = conn.next_or_closed(2000).await {
                assert!(
                    matches!(m.message, Message::RoItemStat(_)),
                    "{:?}",
                    m.message
                );
                attempts += 1;
            }
        }
        // The NCS answers again: its heartbeat is answered, then the status comes back.
        let mut conn = upper.accept().await;
        let m = tokio::time::timeout(Duration::from_secs(5), conn.recv())
            .await
            .expect("the unanswered status was not offered again");
        let Message::RoItemStat(s) = &m.message else {
            panic!("{:?}", m.message)
        };
        assert_eq!(s.status, "PLAY");
        // Unanswered again (the connection drops): kept again, not lost.
        drop(conn);
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut attempts = 1;
        while attempts < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "the status offered again was lost when unanswered ({attempts} attempts seen)"
            );
            let mut conn = upper.accept().await;
            while let Some(m) = conn.next_or_closed(2000).await {
                if matches!(m.message, Message::RoItemStat(_)) {
                    attempts += 1;
                }
            }
        }
        let mut conn = upper.accept().await;
        let m = tokio::time::timeout(Duration::from_secs(5), conn.recv())
            .await
            .expect("the status offered again was lost when unanswered");
        assert!(
            matches!(m.message, Message::RoItemStat(_)),
            "{:?}",
            m.message
        );
        ack(&mut conn, &m).await;
        gw.stop().await;
    }

    #[tokio::test]
    async fn statuses_go_out_as_ro_element_stat_when_configured_and_filters_apply() {
        let dir = tempfile::tempdir().unwrap();
        let upper = FakeNcs::bind().await;
        let gw = start(config_with(
            dir.path(),
            1,
            upper.port(),
            "heartbeat_interval_s = 0\nstatus_messages = \"roElementStat\"\nstatus_never_stop = true\nstatus_require_ready_to_air = true",
        ))
        .await;
        let mut ncs = Ncs::connect(gw.upper).await;
        ncs.ok(&ro_create("R", &[("S1", &["1"])])).await;
        let r = gw.status.send(NCS_ID, item("R", ElementState::Ready)).await;
        assert_eq!(r, Err(StatusError::Dropped(Dropped::NotReadyToAir)));
        ncs.ok("<roReadyToAir><roID>R</roID><roAir>READY</roAir></roReadyToAir>")
            .await;
        assert!(matches!(
            gw.status.send(NCS_ID, item("R", ElementState::Stop)).await,
            Err(StatusError::Dropped(Dropped::Filtered(_)))
        ));
        gw.status
            .send(NCS_ID, item("R", ElementState::Ready))
            .await
            .unwrap();
        let story = StatusReport {
            target: StatusTarget::Story {
                ro_id: "R".into(),
                story_id: "S1".into(),
            },
            state: ElementState::Ready,
        };
        gw.status.send(NCS_ID, story).await.unwrap();
        let mut conn = upper.accept().await;
        let m = conn.recv().await;
        let Message::RoElementStat(s) = &m.message else {
            panic!("{:?}", m.message)
        };
        assert_eq!(
            (s.element, s.status.as_str(), s.channel.as_deref()),
            (StatElement::Item, "READY", Some("CAM1"))
        );
        ack(&mut conn, &m).await;
        let m = conn.recv().await;
        let Message::RoElementStat(s) = &m.message else {
            panic!()
        };
        assert_eq!(
            (s.element, s.item_id.as_deref()),
            (StatElement::Story, None)
        );
        ack(&mut conn, &m).await;
        gw.stop().await;
    }
}

mod failover {
    use super::*;
    use mos_gateway::mos::messages::RoAck;
    use mos_gateway::outbound::Server;

    fn with_buddy(buddy_upper: u16, style: &str) -> String {
        format!(
            "heartbeat_interval_s = 0\nresync_on_connect = true\nack_timeout_s = 0.3\nreconnect_max_s = 0.2\nfailover = \"{style}\"\nbuddy = {{ host = \"127.0.0.1\", lower_port = 3, upper_port = {buddy_upper} }}"
        )
    }

    #[tokio::test]
    async fn buddy_style_fails_over_on_timeout_and_resends_the_same_message() {
        let dir = tempfile::tempdir().unwrap();
        let main = FakeNcs::bind().await;
        let buddy = FakeNcs::bind().await;
        let gw = start(config_with(
            dir.path(),
            1,
            main.port(),
            &with_buddy(buddy.port(), "buddy"),
        ))
        .await;
        let mut on_main = main.accept().await;
        let unanswered = on_main.recv().await;
        assert!(matches!(unanswered.message, Message::RoReqAll(_)));
        let mut on_buddy = buddy.accept().await;
        let again = on_buddy.recv().await;
        assert_eq!(
            again.message_id, unanswered.message_id,
            "same messageID on the buddy"
        );
        on_buddy
            .reply(
                &again,
                Message::RoListAll(RoListAll {
                    running_orders: vec![],
                }),
            )
            .await;
        let links = gw.links.as_ref().unwrap();
        for _ in 0..50 {
            if links.upper.status().up {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(links.upper.status().active, Server::Buddy);
        gw.stop().await;
    }

    #[tokio::test]
    async fn a_buddy_refusal_sends_the_gateway_back_to_the_main_server() {
        let dir = tempfile::tempdir().unwrap();
        let buddy = FakeNcs::bind().await;
        // The main server is down at first.
        let main_port = FakeNcs::bind().await.port();
        let gw = start(config_with(
            dir.path(),
            1,
            main_port,
            &with_buddy(buddy.port(), "buddy"),
        ))
        .await;
        let mut on_buddy = buddy.accept().await;
        let req = on_buddy.recv().await;
        // The main server comes back; the buddy refuses as ENPS does (empty roID).
        let main = FakeNcs::up_on(main_port).await;
        on_buddy
            .reply(
                &req,
                Message::RoAck(RoAck::error(
                    "",
                    "Buddy server cannot respond because main server is available",
                )),
            )
            .await;
        let mut on_main = main.accept().await;
        let again = on_main.recv().await;
        assert_eq!(again.message_id, req.message_id);
        on_main
            .reply(
                &again,
                Message::RoListAll(RoListAll {
                    running_orders: vec![],
                }),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            gw.links.as_ref().unwrap().upper.status().active,
            Server::Main
        );
        gw.stop().await;
    }

    #[tokio::test]
    async fn hot_standby_is_used_only_when_the_main_server_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let main = FakeNcs::bind().await;
        let standby = FakeNcs::bind().await;
        let gw = start(config_with(
            dir.path(),
            1,
            main.port(),
            &with_buddy(standby.port(), "hot_standby"),
        ))
        .await;
        // The main server is up: the standby gets no connection.
        let mut on_main = main.accept().await;
        let req = on_main.recv().await;
        on_main
            .reply(
                &req,
                Message::RoListAll(RoListAll {
                    running_orders: vec![],
                }),
            )
            .await;
        assert!(
            tokio::time::timeout(Duration::from_millis(300), standby.listener.accept())
                .await
                .is_err(),
            "the standby stays disconnected while the main server works"
        );
        // The main server is lost: the link moves to the standby (and resyncs there).
        drop(on_main);
        drop(main);
        let mut on_standby = standby.accept().await;
        let req = on_standby.recv().await;
        assert!(matches!(req.message, Message::RoReqAll(_)));
        on_standby
            .reply(
                &req,
                Message::RoListAll(RoListAll {
                    running_orders: vec![],
                }),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let st = gw.links.as_ref().unwrap().upper.status();
        assert_eq!(st.active, Server::Buddy);
        assert!(st.up);
        gw.stop().await;
    }
}

/// Acknowledges the queued message `m`, restarts the gateway and checks that it is not sent
/// again: delivered, it left the store.
async fn acknowledged_then_forgotten(
    mut conn: FakeConn,
    m: &Mos,
    gw: Running,
    cfg: mos_gateway::config::Config,
    upper: &FakeNcs,
) {
    conn.reply(
        m,
        Message::RoAck(mos_gateway::mos::messages::RoAck::ok("R1")),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.stop().await;
    drop(conn);
    let gw = start(cfg).await;
    let mut conn = upper.accept().await;
    conn.expect_nothing(400).await;
    gw.stop().await;
}

#[tokio::test]
async fn a_queued_mos_item_replace_survives_a_restart_and_is_delivered() {
    use mos_gateway::mos::structures::Item;
    let dir = tempfile::tempdir().unwrap();
    // The NCS is down.
    let port = FakeNcs::bind().await.port();
    let cfg = config_with(
        dir.path(),
        1,
        port,
        "heartbeat_interval_s = 0\nreconnect_max_s = 0.2",
    );
    let gw = start(cfg.clone()).await;
    let item = Item {
        id: "2".into(),
        object_id: "OBJ-9".into(),
        mos_id: MOS_ID.into(),
        slug: Some("CAM 2 (resolved)".into()),
        ..Item::default()
    };
    let _pending = gw
        .status
        .item_replace(NCS_ID, "R1", "S1", item.clone())
        .await
        .unwrap();
    gw.stop().await;
    // Restarted, then the NCS comes up: the message is delivered, then forgotten.
    let gw = start(cfg.clone()).await;
    let upper = FakeNcs::up_on(port).await;
    let mut conn = upper.accept().await;
    let m = conn.recv().await;
    let Message::MosItemReplace(r) = &m.message else {
        panic!("{:?}", m.message)
    };
    assert_eq!((r.ro_id.as_str(), r.story_id.as_str()), ("R1", "S1"));
    assert_eq!(r.item, item);
    acknowledged_then_forgotten(conn, &m, gw, cfg, &upper).await;
}

/// A message that must arrive keeps its messageID across a restart (the NCS may have
/// applied it and lost only its ack: it recognises the resend), and a standby's refusal
/// when no other server is configured has it offered again rather than forgotten.
#[tokio::test]
async fn a_queued_message_keeps_its_message_id_across_restarts_and_standby_refusals() {
    use mos_gateway::mos::messages::RoAck;
    use mos_gateway::mos::structures::Item;
    let dir = tempfile::tempdir().unwrap();
    let upper = FakeNcs::bind().await;
    let cfg = config_with(
        dir.path(),
        1,
        upper.port(),
        "heartbeat_interval_s = 0\nreconnect_max_s = 0.2",
    );
    let gw = start(cfg.clone()).await;
    let item = Item {
        id: "2".into(),
        object_id: "OBJ-9".into(),
        mos_id: MOS_ID.into(),
        ..Item::default()
    };
    let _pending = gw
        .status
        .item_replace(NCS_ID, "R1", "S1", item)
        .await
        .unwrap();
    let mut conn = upper.accept().await;
    let first = conn.recv().await;
    assert!(first.message_id.is_some());
    // Stopped before the NCS's ack reached it.
    gw.stop().await;
    drop(conn);
    let gw = start(cfg.clone()).await;
    let mut conn = upper.accept().await;
    let again = conn.recv().await;
    assert_eq!(again.message, first.message);
    assert_eq!(
        again.message_id, first.message_id,
        "a resend under a new messageID"
    );
    // A standby answers: offered again, on a new connection, still under the same ID.
    conn.reply(
        &again,
        Message::RoAck(RoAck::error(
            "R1",
            "Buddy server cannot respond because main server is available",
        )),
    )
    .await;
    let mut conn = upper.accept().await;
    let offered = conn.recv().await;
    assert_eq!(offered.message_id, first.message_id);
    acknowledged_then_forgotten(conn, &offered, gw, cfg, &upper).await;
}

/// An NCS (or a load balancer before a dead one) that accepts and closes at once: the
/// link backs off between attempts instead of reconnecting in a loop.
#[tokio::test]
async fn a_connection_closed_at_once_is_retried_with_a_growing_pause() {
    let dir = tempfile::tempdir().unwrap();
    let upper = FakeNcs::bind().await;
    let gw = start(config_with(
        dir.path(),
        1,
        upper.port(),
        "heartbeat_interval_s = 0\nreconnect_max_s = 30",
    ))
    .await;
    let mut accepted = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Ok((socket, _))) = tokio::time::timeout_at(until, upper.listener.accept()).await {
        accepted += 1;
        drop(socket);
    }
    // 0.1 + 0.2 + 0.4 + 0.8 s of pauses: about five connections in 1.5 s, not thousands.
    assert!(
        (2..=8).contains(&accepted),
        "{accepted} connections in 1.5 s"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_ncs_that_drops_the_connection_mid_request_gets_the_same_message_again() {
    let dir = tempfile::tempdir().unwrap();
    let upper = FakeNcs::bind().await;
    let gw = start(config_with(
        dir.path(),
        1,
        upper.port(),
        "resync_on_connect = true\nheartbeat_interval_s = 0\nreconnect_max_s = 0.2",
    ))
    .await;
    let mut first = upper.accept().await;
    let req = first.recv().await;
    drop(first); // the NCS closes without answering
    let mut second = upper.accept().await;
    let again = second.recv().await;
    assert_eq!(
        (again.message_id.clone(), again.message.clone()),
        (req.message_id.clone(), req.message.clone())
    );
    second
        .reply(
            &again,
            Message::RoListAll(RoListAll {
                running_orders: vec![],
            }),
        )
        .await;
    gw.stop().await;
}

#[tokio::test]
async fn hot_standby_hands_back_to_the_main_server_when_the_standby_fails() {
    let dir = tempfile::tempdir().unwrap();
    let main_port = FakeNcs::bind().await.port();
    let standby = FakeNcs::bind().await;
    let extra = format!(
        "heartbeat_interval_s = 0\nresync_on_connect = true\nack_timeout_s = 0.3\nreconnect_max_s = 0.2\nfailover = \"hot_standby\"\nbuddy = {{ host = \"127.0.0.1\", lower_port = 3, upper_port = {} }}",
        standby.port()
    );
    let gw = start(config_with(dir.path(), 1, main_port, &extra)).await;
    // Main down: the standby serves.
    let mut on_standby = standby.accept().await;
    let req = on_standby.recv().await;
    on_standby
        .reply(
            &req,
            Message::RoListAll(RoListAll {
                running_orders: vec![],
            }),
        )
        .await;
    // The main server comes back and the standby goes away: the link returns to main.
    let main = FakeNcs::up_on(main_port).await;
    drop(on_standby);
    drop(standby);
    let mut on_main = main.accept().await;
    let req = on_main.recv().await;
    assert!(matches!(req.message, Message::RoReqAll(_)));
    on_main
        .reply(
            &req,
            Message::RoListAll(RoListAll {
                running_orders: vec![],
            }),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let st = gw.links.as_ref().unwrap().upper.status();
    assert_eq!(st.active, mos_gateway::outbound::Server::Main);
    gw.stop().await;
}

#[tokio::test]
async fn the_query_port_link_is_opened_when_the_ncs_has_one() {
    let dir = tempfile::tempdir().unwrap();
    let query = FakeNcs::bind().await;
    let gw = start(config_with(
        dir.path(),
        1,
        2,
        &format!("heartbeat_interval_s = 0\nquery_port = {}", query.port()),
    ))
    .await;
    let _conn = query.accept().await;
    for _ in 0..50 {
        if gw
            .links
            .as_ref()
            .unwrap()
            .query
            .as_ref()
            .unwrap()
            .status()
            .up
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        gw.links
            .as_ref()
            .unwrap()
            .query
            .as_ref()
            .unwrap()
            .status()
            .up
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_ncs_follow_up_edit_is_applied_while_its_mos_item_replace_awaits_the_ack() {
    use mos_gateway::mos::messages::RoAck;
    use mos_gateway::mos::structures::Item;
    let dir = tempfile::tempdir().unwrap();
    let upper = FakeNcs::bind().await;
    let gw = start(config_with(
        dir.path(),
        1,
        upper.port(),
        "heartbeat_interval_s = 0",
    ))
    .await;
    let mut ncs = Ncs::connect(gw.upper).await;
    ncs.ok(&ro_create("R1", &[("S1", &["2"])])).await;
    let item = Item {
        id: "2".into(),
        object_id: "OBJ-2".into(),
        mos_id: MOS_ID.into(),
        slug: Some("CAM 2 (resolved)".into()),
        ..Item::default()
    };
    let pending = gw
        .status
        .item_replace(NCS_ID, "R1", "S1", item)
        .await
        .unwrap();
    let mut conn = upper.accept().await;
    let m = conn.recv().await;
    assert!(matches!(m.message, Message::MosItemReplace(_)));
    // Before acknowledging, the NCS sends its usual follow-up on its own connection.
    ncs.ok("<roItemReplace><roID>R1</roID><storyID>S1</storyID><itemID>2</itemID><item><itemID>2</itemID><itemSlug>CAM 2 (resolved)</itemSlug><objID>OBJ-2</objID><mosID>nmos.gateway.mos</mosID></item></roItemReplace>").await;
    conn.reply(&m, Message::RoAck(RoAck::ok("R1"))).await;
    let reply = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(reply.message, Message::RoAck(a) if a.is_ok()));
    gw.stop().await;
}

#[tokio::test]
async fn a_status_queued_for_a_running_order_deleted_meanwhile_is_dropped() {
    use mos_gateway::mos::messages::RoAck;
    use mos_gateway::status::{ElementState, StatusReport, StatusTarget};
    let dir = tempfile::tempdir().unwrap();
    let port = FakeNcs::down_port().await; // the NCS is down for now
    let gw = start(config_with(
        dir.path(),
        1,
        port,
        "heartbeat_interval_s = 0\nreconnect_max_s = 0.2",
    ))
    .await;
    let mut ncs = Ncs::connect(gw.upper).await;
    ncs.ok(&ro_create("GOING", &[("S1", &["1"])])).await;
    ncs.ok(&ro_create("STAYING", &[("S1", &["1"])])).await;
    let report = |ro: &str| StatusReport {
        target: StatusTarget::RunningOrder { ro_id: ro.into() },
        state: ElementState::Ready,
    };
    gw.status.send(NCS_ID, report("GOING")).await.unwrap();
    gw.status.send(NCS_ID, report("STAYING")).await.unwrap();
    ncs.ok("<roDelete><roID>GOING</roID></roDelete>").await;
    let upper = FakeNcs::up_on(port).await;
    let mut conn = upper.accept().await;
    let m = conn.recv().await;
    let Message::RoStat(s) = &m.message else {
        panic!("{:?}", m.message)
    };
    assert_eq!(
        s.ro_id, "STAYING",
        "the status of the deleted running order was dropped"
    );
    conn.reply(&m, Message::RoAck(RoAck::ok("STAYING"))).await;
    gw.stop().await;
}

#[tokio::test]
async fn our_message_ids_keep_rising_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let lower = FakeNcs::bind().await;
    let cfg = config_with(dir.path(), lower.port(), 2, "heartbeat_interval_s = 0.1");
    // The messageIDs of our heartbeats on the lower port, each answered (FakeConn::recv
    // would answer and skip them).
    let heartbeat_ids = async |lower: &FakeNcs, n: usize| {
        let mut conn = lower.accept().await;
        let mut ids = Vec::new();
        while ids.len() < n {
            let m = conn.next_or_closed(5000).await.expect("a heartbeat");
            if let Message::Heartbeat(_) = m.message {
                ids.push(m.message_id.clone().unwrap().parse::<i64>().unwrap());
            }
            conn.reply(&m, m.message.clone()).await;
        }
        ids
    };
    let gw = start(cfg.clone()).await;
    let before = heartbeat_ids(&lower, 5).await;
    gw.stop().await;
    let gw = start(cfg).await;
    let after = heartbeat_ids(&lower, 3).await;
    gw.stop().await;
    let last = *before.iter().max().unwrap();
    assert!(
        after.iter().all(|id| *id > last),
        "messageIDs reused after the restart: {before:?} then {after:?}"
    );
}

#[tokio::test]
async fn a_heartbeat_that_answers_ours_is_never_answered_even_when_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let lower = FakeNcs::bind().await;
    let gw = start(config_with(
        dir.path(),
        lower.port(),
        2,
        "heartbeat_interval_s = 0.2",
    ))
    .await;
    let mut conn = lower.accept().await;
    let ours = conn.next_or_closed(5000).await.expect("our heartbeat");
    assert!(matches!(ours.message, Message::Heartbeat(_)));
    // The NCS answers it twice (a late duplicate): neither answer is answered.
    conn.reply(&ours, ours.message.clone()).await;
    conn.reply(&ours, ours.message.clone()).await;
    let until = tokio::time::Instant::now() + Duration::from_millis(700);
    let mut later = 0;
    while tokio::time::Instant::now() < until {
        let Some(m) = conn.next_or_closed(300).await else {
            continue;
        };
        assert_ne!(
            m.message_id, ours.message_id,
            "the gateway answered a heartbeat that was a reply: {:?}",
            m.message
        );
        conn.reply(&m, m.message.clone()).await;
        later += 1;
    }
    assert!(later >= 1, "the gateway's own heartbeats stopped");
    gw.stop().await;
}
