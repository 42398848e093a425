//! The gateway over real TCP: Profile 0 and the running-order messages of Profiles 2 and
//! 4, retries, bad input, restarts.

mod edits;
mod nmos;
mod objects;
mod outbound;
mod support;

use mos_gateway::mos::Message;
use mos_gateway::mos::codec::{WireEncoding, encode_text};
use mos_gateway::mos::messages::ProfileSupport;
use support::*;

#[tokio::test]
async fn heartbeats_are_answered_on_every_port_with_the_same_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(config(dir.path(), "")).await;
    for addr in [gw.lower, gw.upper] {
        let mut ncs = Ncs::connect(addr).await;
        let r = ncs
            .request("<heartbeat><time>2026-11-25T18:00:00,000Z</time></heartbeat>")
            .await;
        let Message::Heartbeat(h) = r.message else {
            panic!("{r:?}")
        };
        assert!(h.time.is_some());
        assert_eq!((r.mos_id.as_str(), r.ncs_id.as_str()), (MOS_ID, NCS_ID));
    }
    gw.stop().await;
}

#[tokio::test]
async fn req_mach_info_lists_profiles_zero_to_four() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(config(dir.path(), "")).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    let r = ncs.request("<reqMachInfo/>").await;
    let Message::ListMachInfo(info) = r.message else {
        panic!()
    };
    assert_eq!(info.id, MOS_ID);
    assert_eq!(info.mos_rev, "2.8.1");
    assert_eq!(
        info.profiles,
        ProfileSupport::Flat(vec![true, true, true, true, true, false, false])
    );
    gw.stop().await;
}

#[tokio::test]
async fn every_encoding_is_answered_in_kind() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(config(dir.path(), "")).await;
    for enc in [
        WireEncoding::Utf16Le,
        WireEncoding::Utf8,
        WireEncoding::Utf16Be,
    ] {
        let mut ncs = Ncs::connect_with(gw.lower, enc).await;
        let (_, text) = ncs.envelope("<heartbeat/>");
        ncs.send_text(&text).await;
        assert!(ncs.recv_text().await.contains("<heartbeat>"));
    }
    gw.stop().await;
}

#[tokio::test]
async fn running_order_is_built_and_edited_as_the_ncs_orders_it() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(config(dir.path(), "")).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    ncs.ok(&ro_create(
        "RO1",
        &[("S1", &["1", "2"]), ("S2", &["1"]), ("S3", &[])],
    ))
    .await;
    assert_eq!(ids(&ncs.order("RO1").await), ["S1", "S2", "S3"]);

    // roElementAction: insert before, append with an empty target, move, swap, delete.
    ncs.ok(&format!(
        "<roElementAction operation=\"INSERT\"><roID>RO1</roID><element_target><storyID>S2</storyID></element_target><element_source>{}</element_source></roElementAction>",
        story("S9", &["1"])
    ))
    .await;
    ncs.ok(&format!(
        "<roElementAction operation=\"INSERT\"><roID>RO1</roID><element_target><storyID></storyID></element_target><element_source>{}</element_source></roElementAction>",
        story("S10", &[])
    ))
    .await;
    assert_eq!(
        ids(&ncs.order("RO1").await),
        ["S1", "S9", "S2", "S3", "S10"]
    );
    ncs.ok("<roElementAction operation=\"MOVE\"><roID>RO1</roID><element_target><storyID>S1</storyID></element_target><element_source><storyID>S3</storyID><storyID>S10</storyID></element_source></roElementAction>").await;
    assert_eq!(
        ids(&ncs.order("RO1").await),
        ["S3", "S10", "S1", "S9", "S2"]
    );
    ncs.ok("<roElementAction operation=\"SWAP\"><roID>RO1</roID><element_source><storyID>S3</storyID><storyID>S2</storyID></element_source></roElementAction>").await;
    assert_eq!(
        ids(&ncs.order("RO1").await),
        ["S2", "S10", "S1", "S9", "S3"]
    );
    ncs.ok("<roElementAction operation=\"DELETE\"><roID>RO1</roID><element_source><storyID>S10</storyID></element_source></roElementAction>").await;
    // Items: insert before, move, delete.
    ncs.ok(&format!(
        "<roElementAction operation=\"INSERT\"><roID>RO1</roID><element_target><storyID>S1</storyID><itemID>2</itemID></element_target><element_source>{}</element_source></roElementAction>",
        "<item><itemID>5</itemID><objID>O5</objID><mosID>nmos.gateway.mos</mosID></item>"
    ))
    .await;
    ncs.ok("<roElementAction operation=\"MOVE\"><roID>RO1</roID><element_target><storyID>S1</storyID><itemID>1</itemID></element_target><element_source><itemID>2</itemID></element_source></roElementAction>").await;
    let order = ncs.order("RO1").await;
    assert_eq!(ids(&order), ["S2", "S1", "S9", "S3"]);
    assert_eq!(order[1].1, ["2", "1", "5"]);

    // The 2.6 legacy messages.
    ncs.ok(&format!(
        "<roStoryAppend><roID>RO1</roID>{}</roStoryAppend>",
        story("S4", &["1"])
    ))
    .await;
    ncs.ok("<roStoryMoveMultiple><roID>RO1</roID><storyID>S4</storyID><storyID>S3</storyID><storyID>S2</storyID></roStoryMoveMultiple>").await;
    assert_eq!(ids(&ncs.order("RO1").await), ["S4", "S3", "S2", "S1", "S9"]);
    ncs.ok("<roStoryMove><roID>RO1</roID><storyID>S4</storyID><storyID></storyID></roStoryMove>")
        .await;
    ncs.ok("<roStorySwap><roID>RO1</roID><storyID>S3</storyID><storyID>S9</storyID></roStorySwap>")
        .await;
    ncs.ok("<roStoryDelete><roID>RO1</roID><storyID>S2</storyID></roStoryDelete>")
        .await;
    assert_eq!(ids(&ncs.order("RO1").await), ["S9", "S1", "S3", "S4"]);
    ncs.ok(&format!(
        "<roStoryInsert><roID>RO1</roID><storyID>S9</storyID>{}</roStoryInsert>",
        story("S5", &[])
    ))
    .await;
    ncs.ok(&format!(
        "<roStoryReplace><roID>RO1</roID><storyID>S5</storyID>{}{}</roStoryReplace>",
        story("S6", &[]),
        story("S7", &[])
    ))
    .await;
    assert_eq!(
        ids(&ncs.order("RO1").await),
        ["S6", "S7", "S9", "S1", "S3", "S4"]
    );
    ncs.ok("<roItemInsert><roID>RO1</roID><storyID>S1</storyID><itemID></itemID><item><itemID>7</itemID><objID>O7</objID><mosID>nmos.gateway.mos</mosID></item></roItemInsert>").await;
    ncs.ok("<roItemMoveMultiple><roID>RO1</roID><storyID>S1</storyID><itemID>7</itemID><itemID>5</itemID><itemID>2</itemID></roItemMoveMultiple>").await;
    ncs.ok("<roItemReplace><roID>RO1</roID><storyID>S1</storyID><itemID>1</itemID><item><itemID>8</itemID><objID>O8</objID><mosID>nmos.gateway.mos</mosID></item></roItemReplace>").await;
    ncs.ok("<roItemDelete><roID>RO1</roID><storyID>S1</storyID><itemID>5</itemID></roItemDelete>")
        .await;
    let order = ncs.order("RO1").await;
    assert_eq!(
        order[3],
        (
            "S1".to_string(),
            vec!["7".to_string(), "2".to_string(), "8".to_string()]
        )
    );

    // Readiness, metadata, body, delete.
    ncs.ok("<roReadyToAir><roID>RO1</roID><roAir>READY</roAir></roReadyToAir>")
        .await;
    ncs.ok("<roMetadataReplace><roID>RO1</roID><roSlug>Late show</roSlug></roMetadataReplace>")
        .await;
    ncs.ok("<roStorySend><roID>RO1</roID><storyID>S1</storyID><storySlug>Fire</storySlug><storyBody><p>Good evening.</p><storyItem><itemID>7</itemID><objID>O7</objID><mosID>nmos.gateway.mos</mosID></storyItem></storyBody></roStorySend>").await;
    ncs.ok("<roDelete><roID>RO1</roID></roDelete>").await;
    assert!(
        ncs.refused("<roReq><roID>RO1</roID></roReq>")
            .await
            .contains("RO1")
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_refused_edit_changes_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(config(dir.path(), "")).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    ncs.ok(&ro_create("RO1", &[("S1", &["1"]), ("S2", &[])]))
        .await;
    let before = ncs.order("RO1").await;
    let why = ncs.refused("<roElementAction operation=\"MOVE\"><roID>RO1</roID><element_target><storyID>S2</storyID></element_target><element_source><storyID>S1</storyID><storyID>S404</storyID></element_source></roElementAction>").await;
    assert!(why.contains("S404"), "{why}");
    let why = ncs
        .refused(
            "<roStorySwap><roID>RO1</roID><storyID>S1</storyID><storyID>S1</storyID></roStorySwap>",
        )
        .await;
    assert!(!why.is_empty());
    let why = ncs
        .refused(&format!(
            "<roStoryAppend><roID>RO1</roID>{}</roStoryAppend>",
            story("S1", &[])
        ))
        .await;
    assert!(why.contains("S1"), "{why}");
    assert_eq!(ncs.order("RO1").await, before);
    gw.stop().await;
}

#[tokio::test]
async fn empty_ids_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(config(dir.path(), "")).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    // A roCreate with an empty roID, or with a story or item without ID.
    for body in [
        ro_create("", &[("S1", &["1"])]),
        "<roCreate><roID>  </roID><roSlug>Show</roSlug></roCreate>".to_string(),
        ro_create("RO1", &[("", &["1"])]),
        ro_create("RO1", &[("S1", &[""])]),
    ] {
        let (_, text) = ncs.envelope(&body);
        ncs.send_text(&text).await;
        // The reply echoes the empty roID, so it is itself off-spec: read leniently.
        match ncs.recv_lenient().await.message {
            Message::RoAck(a) => assert!(!a.is_ok() && a.status.starts_with("Empty "), "{a:?}"),
            other => panic!("expected a roAck error, got {other:?}"),
        }
    }
    assert!(
        ncs.refused("<roReq><roID>RO1</roID></roReq>")
            .await
            .contains("RO1")
    );
    // Edits that bring in stories or items without ID.
    ncs.ok(&ro_create("RO1", &[("S1", &["1"])])).await;
    let before = ncs.order("RO1").await;
    let why = ncs
        .refused(&format!(
            "<roElementAction operation=\"INSERT\"><roID>RO1</roID><element_target><storyID>S1</storyID></element_target><element_source>{}</element_source></roElementAction>",
            story("", &["2"])
        ))
        .await;
    assert!(why.contains("Empty storyID"), "{why}");
    let why = ncs
        .refused("<roItemInsert><roID>RO1</roID><storyID>S1</storyID><itemID></itemID><item><itemID></itemID><objID>O</objID><mosID>m</mosID></item></roItemInsert>")
        .await;
    assert!(why.contains("Empty itemID"), "{why}");
    assert_eq!(ncs.order("RO1").await, before);
    gw.stop().await;
}

#[tokio::test]
async fn a_retried_message_is_not_applied_twice_and_a_reused_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(config(dir.path(), "")).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    ncs.ok(&ro_create("RO1", &[("S1", &[])])).await;
    let append = format!(
        "<mos><mosID>{MOS_ID}</mosID><ncsID>{NCS_ID}</ncsID><messageID>5000</messageID><roStoryAppend><roID>RO1</roID>{}</roStoryAppend></mos>",
        story("S2", &[])
    );
    ncs.send_text(&append).await;
    let first = ncs.recv_text().await;
    // The retry (same ID, same content), e.g. after a timeout, on a fresh socket.
    let mut again = Ncs::connect(gw.upper).await;
    again.send_text(&append).await;
    assert_eq!(again.recv_text().await, first);
    assert_eq!(ids(&ncs.order("RO1").await), ["S1", "S2"]);
    let other = append.replace("S2", "S3");
    ncs.send_text(&other).await;
    let r = ncs.recv().await;
    let Message::RoAck(a) = r.message else {
        panic!()
    };
    assert!(a.status.contains("already used"), "{}", a.status);
    assert_eq!(ids(&ncs.order("RO1").await), ["S1", "S2"]);
    gw.stop().await;
}

#[tokio::test]
async fn a_refused_message_is_remembered_under_its_message_id_like_an_applied_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let gw = start(cfg.clone()).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    ncs.ok(&ro_create("RO1", &[("S1", &[])])).await;
    let msg = |body: &str| {
        format!(
            "<mos><mosID>{MOS_ID}</mosID><ncsID>{NCS_ID}</ncsID><messageID>6000</messageID>{body}</mos>"
        )
    };
    // Refused: S9 is not in the running order.
    let delete_s9 = msg("<roStoryDelete><roID>RO1</roID><storyID>S9</storyID></roStoryDelete>");
    ncs.send_text(&delete_s9).await;
    let first = ncs.recv_text().await;
    assert!(first.contains("S9"), "{first}");
    // S9 appears meanwhile; the retry of the refused message gets the same NACK and
    // changes nothing (it is not judged again against the new state).
    ncs.ok(&format!(
        "<roStoryAppend><roID>RO1</roID>{}</roStoryAppend>",
        story("S9", &[])
    ))
    .await;
    ncs.send_text(&delete_s9).await;
    assert_eq!(ncs.recv_text().await, first);
    assert_eq!(ids(&ncs.order("RO1").await), ["S1", "S9"]);
    // Another message under the refused one's messageID is refused, not applied.
    ncs.send_text(&msg(
        "<roStoryDelete><roID>RO1</roID><storyID>S1</storyID></roStoryDelete>",
    ))
    .await;
    let Message::RoAck(a) = ncs.recv().await.message else {
        panic!()
    };
    assert!(a.status.contains("already used"), "{}", a.status);
    assert_eq!(ids(&ncs.order("RO1").await), ["S1", "S9"]);
    // Also after a restart.
    drop(ncs);
    gw.stop().await;
    let gw = start(cfg).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    ncs.send_text(&delete_s9).await;
    assert_eq!(ncs.recv_text().await, first);
    assert_eq!(ids(&ncs.order("RO1").await), ["S1", "S9"]);
    gw.stop().await;
}

#[tokio::test]
async fn accept_any_ncs_serves_an_ncs_that_is_not_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "");
    cfg.mos.accept_any_ncs = true;
    let gw = start(cfg).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    let lab = |id: u32, body: &str| {
        format!(
            "<mos><mosID>{MOS_ID}</mosID><ncsID>LAB.NCS</ncsID><messageID>{id}</messageID>{body}</mos>"
        )
    };
    ncs.send_text(&lab(1, &ro_create("LAB1", &[("S1", &["1"])])))
        .await;
    let r = ncs.recv().await;
    assert!(
        matches!(&r.message, Message::RoAck(a) if a.is_ok()),
        "{:?}",
        r.message
    );
    assert_eq!(r.ncs_id, "LAB.NCS");
    ncs.send_text(&lab(2, "<heartbeat/>")).await;
    assert!(matches!(ncs.recv().await.message, Message::Heartbeat(_)));
    gw.stop().await;
}

#[tokio::test]
async fn unknown_ncs_and_wrong_mos_id_get_distinct_nacks() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(config(dir.path(), "")).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    ncs.send_text("<mos><mosID>other.mos</mosID><ncsID>ENPS.NCS</ncsID><messageID>1</messageID><roReq><roID>R</roID></roReq></mos>").await;
    let Message::RoAck(a) = ncs.recv().await.message else {
        panic!()
    };
    assert!(a.status.contains("Wrong mosID"), "{}", a.status);
    ncs.send_text("<mos><mosID>nmos.gateway.mos</mosID><ncsID>STRANGER</ncsID><messageID>2</messageID><roReq><roID>R</roID></roReq></mos>").await;
    let Message::RoAck(a) = ncs.recv().await.message else {
        panic!()
    };
    assert!(a.status.contains("Unknown ncsID"), "{}", a.status);
    gw.stop().await;
}

#[tokio::test]
async fn bad_bytes_get_a_nack_and_the_connection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(config(dir.path(), "")).await;
    let mut ncs = Ncs::connect(gw.lower).await;
    // Garbage, malformed XML, an unknown message, then a heartbeat on the same socket.
    // Junk is reported when the next message starts, which is still answered.
    let (_, hb) = ncs.envelope("<heartbeat/>");
    ncs.send_text(&format!("this is not xml{hb}")).await;
    assert!(ncs.recv_text().await.contains("NACK"));
    assert!(ncs.recv_text().await.contains("<heartbeat>"));
    ncs.send_text("<mos><mosID>nmos.gateway.mos</mosID><ncsID>ENPS.NCS</ncsID><messageID>3</messageID><heartbeat></mos>").await;
    // Not well-formed: still NACKed under its messageID, so the NCS can match the reply.
    let nacked = ncs.recv_text().await;
    assert!(nacked.contains("NACK"), "{nacked}");
    assert!(nacked.contains("<messageID>3</messageID>"), "{nacked}");
    // Unreadable content from a wrong sender: the envelope is the reason given.
    ncs.send_text("<mos><mosID>someone.else</mosID><ncsID>ENPS.NCS</ncsID><messageID>4</messageID><roElementAction operation=\"BOGUS\"><roID>R</roID></roElementAction></mos>").await;
    let refused = ncs.recv_lenient().await;
    assert_eq!(refused.message_id.as_deref(), Some("4"));
    let reason = match refused.message {
        Message::RoAck(a) => a.status,
        Message::MosAck(a) => a.description,
        other => panic!("{other:?}"),
    };
    assert!(reason.starts_with("Wrong mosID"), "{reason}");
    let r = ncs.request("<fancyNewMessage/>").await;
    let Message::MosAck(a) = r.message else {
        panic!()
    };
    assert_eq!(a.description, "Unsupported message: fancyNewMessage");
    let r = ncs.request("<heartbeat/>").await;
    assert!(matches!(r.message, Message::Heartbeat(_)));
    // keepAlive gets no reply.
    let (_, k) = ncs.envelope("<keepAlive/>");
    ncs.send_text(&k).await;
    ncs.expect_silence(200).await;
    // Other connections are served meanwhile.
    let mut other = Ncs::connect(gw.lower).await;
    assert!(matches!(
        other.request("<heartbeat/>").await.message,
        Message::Heartbeat(_)
    ));
    gw.stop().await;
}

#[tokio::test]
async fn a_message_cut_off_or_in_the_wrong_encoding_is_nacked_and_the_next_answered() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "");
    cfg.mos.message_stall = std::time::Duration::from_millis(300);
    let gw = start(cfg).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    // Half a roCreate (the NCS gave up writing it), then a heartbeat on the same socket:
    // read as nested inside the unfinished roCreate until the connection falls silent.
    let (id, ro) = ncs.envelope(&ro_create("CUT", &[("S1", &["1", "2"])]));
    let cut = ro.rfind("<item>").unwrap();
    ncs.send_text(&ro[..cut]).await;
    let (_, swallowed) = ncs.envelope("<heartbeat/>");
    ncs.send_text(&swallowed).await;
    let nack = ncs.recv_lenient().await;
    assert_eq!(nack.message_id.as_deref(), Some(id.as_str()));
    let Message::RoAck(a) = nack.message else {
        panic!("{:?}", nack.message)
    };
    assert!(a.status.contains("cut off"), "{}", a.status);
    // What came after the cut went with it (the NCS resends what gets no answer); the
    // connection goes on.
    ncs.expect_silence(200).await;
    let r = ncs.request("<heartbeat/>").await;
    assert!(
        matches!(r.message, Message::Heartbeat(_)),
        "{:?}",
        r.message
    );
    // Nothing of the cut-off roCreate was applied.
    let r = ncs.request("<roReq><roID>CUT</roID></roReq>").await;
    assert!(
        matches!(&r.message, Message::RoAck(a) if a.status != "OK"),
        "{:?}",
        r.message
    );
    // A payload carrying a whole <mos> message still reads as part of its message.
    ncs.ok(&format!(
        "<roCreate><roID>NEST</roID><roSlug>N</roSlug><mosExternalMetadata><mosScope>PLAYLIST</mosScope><mosSchema>http://x</mosSchema><mosPayload>{swallowed}</mosPayload></mosExternalMetadata></roCreate>"
    ))
    .await;
    // A message that is not valid UTF-16 (an unpaired surrogate in a slug), then a heartbeat.
    let (_, bad) = ncs.envelope("<roReq><roID>X\u{FFFF}</roID></roReq>");
    let mut wire = encode_text(&bad, WireEncoding::Utf16Be);
    let at = wire
        .windows(2)
        .position(|w| w == [0xFF, 0xFF])
        .expect("the marker");
    wire[at..at + 2].copy_from_slice(&[0xD8, 0x00]);
    ncs.send_raw(&wire).await;
    let nacked = ncs.recv_text().await;
    assert!(nacked.contains("invalid"), "{nacked}");
    let r = ncs.request("<heartbeat/>").await;
    assert!(matches!(r.message, Message::Heartbeat(_)));
    gw.stop().await;
}

/// Connections from addresses of no configured NCS may take half of a port's slots at
/// most: the newsroom's own connections are still served.
#[tokio::test]
async fn strangers_cannot_take_every_connection_slot() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "");
    cfg.mos.max_connections = 4;
    let gw = start(cfg).await;
    let stranger = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = Ncs::connect_from(stranger, gw.lower).await;
        // Served (refused for its address, which needs a slot to say so).
        let reply = c.request("<heartbeat/>").await;
        assert!(
            matches!(reply.message, Message::MosAck(_)),
            "{:?}",
            reply.message
        );
        held.push(c);
    }
    // A third from elsewhere is closed at once ...
    let mut third = Ncs::connect_from(stranger, gw.lower).await;
    let (_, hb) = third.envelope("<heartbeat/>");
    third.send_text(&hb).await;
    third.expect_closed(2000).await;
    // ... while the NCS's own address still gets its connections.
    for _ in 0..2 {
        let mut ncs = Ncs::connect(gw.lower).await;
        let reply = ncs.request("<heartbeat/>").await;
        assert!(matches!(reply.message, Message::Heartbeat(_)));
        held.push(ncs);
    }
    gw.stop().await;
}

#[tokio::test]
async fn running_orders_and_bodies_survive_a_restart() {
    use mos_gateway::mos::{Mos, ParseOptions};
    use mos_gateway::rundown::{Rundowns, edit_from_message};
    use mos_gateway::state::State;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let gw = start(cfg.clone()).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    // Every acknowledged message is also applied to the model the restart must give back.
    let mut model = Rundowns::new();
    let mut send = async |ncs: &mut Ncs, body: String| {
        let (_, text) = ncs.envelope(&body);
        ncs.send_text(&text).await;
        assert!(
            matches!(ncs.recv().await.message, Message::RoAck(a) if a.is_ok()),
            "{body}"
        );
        let message = Mos::parse(&text, ParseOptions::lenient())
            .unwrap()
            .mos
            .message;
        let (ro_id, edit) = edit_from_message(&message).unwrap().unwrap();
        model.update(&ro_id, &edit).unwrap();
    };
    send(&mut ncs, ro_create("RO1", &[("S1", &["1"]), ("S2", &[])])).await;
    for i in 0..300 {
        let appended = story(&format!("A{i}"), &["1"]);
        send(
            &mut ncs,
            format!("<roStoryAppend><roID>RO1</roID>{appended}</roStoryAppend>"),
        )
        .await;
    }
    // Story bodies, one then moved and replaced: the body follows its story.
    for id in ["S1", "A5", "A299"] {
        send(
            &mut ncs,
            format!(
                "<roStorySend><roID>RO1</roID><storyID>{id}</storyID><storySlug>{id} body</storySlug>\
                 <storyBody><p>Text of {id}.</p></storyBody></roStorySend>"
            ),
        )
        .await;
    }
    send(
        &mut ncs,
        "<roStoryMove><roID>RO1</roID><storyID>A5</storyID><storyID>S1</storyID></roStoryMove>"
            .into(),
    )
    .await;
    send(
        &mut ncs,
        format!(
            "<roStoryReplace><roID>RO1</roID><storyID>A299</storyID>{}</roStoryReplace>",
            story("A299", &["2"])
        ),
    )
    .await;
    send(
        &mut ncs,
        "<roReadyToAir><roID>RO1</roID><roAir>READY</roAir></roReadyToAir>".into(),
    )
    .await;
    let before = ncs.order("RO1").await;
    drop(ncs);
    gw.stop().await;
    // What the store gives back is the model: order, items, bodies, readiness.
    {
        let state = State::open(dir.path()).unwrap();
        let restored = state.rundowns().get("RO1").expect("RO1 restored");
        let expected = model.get("RO1").unwrap();
        assert_eq!(restored, expected);
        assert!(restored.body("A5").is_some() && restored.body("S1").is_some());
        assert!(restored.ready_to_air().is_some());
    }
    let gw = start(cfg).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    assert_eq!(ncs.order("RO1").await, before);
    gw.stop().await;
}

/// A running order big enough to go through the inbox (see server.rs `INBOX_MIN_BYTES`).
fn big_ro_create(ro_id: &str, tag: &str) -> String {
    let names: Vec<String> = (0..80).map(|i| format!("{tag}{i}")).collect();
    let stories: Vec<(&str, &[&str])> = names
        .iter()
        .map(|n| (n.as_str(), &["1", "2"][..]))
        .collect();
    let doc = ro_create(ro_id, &stories);
    assert!(doc.len() > 16 * 1024, "{} bytes", doc.len());
    doc
}

/// A document from `ncs_id` with messageID `id`.
fn from_ncs(ncs_id: &str, id: u32, body: &str) -> String {
    format!(
        "<mos><mosID>{MOS_ID}</mosID><ncsID>{ncs_id}</ncsID><messageID>{id}</messageID>{body}</mos>"
    )
}

/// roReq of each roID is refused: the gateway holds none of them.
async fn assert_unknown(ncs: &mut Ncs, ro_ids: &[&str]) {
    for ro in ro_ids {
        let r = ncs
            .request(&format!("<roReq><roID>{ro}</roID></roReq>"))
            .await;
        assert!(matches!(r.message, Message::RoAck(a) if !a.is_ok()), "{ro}");
    }
}

fn inbox_rows(dir: &std::path::Path) -> i64 {
    rusqlite::Connection::open(dir.join("gateway.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM inbox", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn large_edits_are_kept_in_the_inbox_applied_once_refused_cleanly_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let gw = start(cfg.clone()).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    let (id, create) = ncs.envelope(&big_ro_create("RO1", "A"));
    ncs.send_text(&create).await;
    assert!(matches!(ncs.recv().await.message, Message::RoAck(a) if a.is_ok()));
    // The retry of the same message: same reply, not applied twice.
    ncs.send_text(&create).await;
    let again = ncs.recv().await;
    assert_eq!(again.message_id.as_deref(), Some(id.as_str()));
    assert!(matches!(again.message, Message::RoAck(a) if a.is_ok()));
    ncs.ok(&format!(
        "<roStoryAppend><roID>RO1</roID>{}</roStoryAppend>",
        story("LAST", &["9"])
    ))
    .await;
    // Large messages refused after they were kept: nothing changes.
    let duplicate = big_ro_create("RO9", "B").replace("<storyID>B1<", "<storyID>B0<");
    let why = ncs.refused(&duplicate).await;
    assert!(why.contains("B0"), "{why}");
    let wrong = big_ro_create("RO2", "C").replace("<roCreate>", "<roCreate><bad>");
    let (_, wrong) = ncs.envelope(&wrong);
    ncs.send_text(&wrong).await;
    assert!(matches!(ncs.recv_lenient().await.message, Message::RoAck(a) if !a.is_ok()));
    let mut lower = Ncs::connect(gw.lower).await;
    let why = lower.refused(&big_ro_create("RO3", "D")).await;
    assert!(why.contains("upper port"), "{why}");
    let before = ncs.order("RO1").await;
    assert_eq!(before.len(), 81);
    assert_eq!(ids(&before)[..2], ["A0", "A1"]);
    assert_eq!(ids(&before)[80], "LAST");
    assert_unknown(&mut ncs, &["RO2", "RO3", "RO9"]).await;
    drop((ncs, lower));
    gw.stop().await;
    // Only the roCreate is left in the inbox: as its running order's document.
    assert_eq!(inbox_rows(dir.path()), 1);
    let gw = start(cfg).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    assert_eq!(ncs.order("RO1").await, before);
    // New messageIDs: the ones used before the restart are remembered.
    for _ in 0..20 {
        ncs.envelope("");
    }
    // A large roReplace replaces the document; roDelete removes it.
    let replace = big_ro_create("RO1", "E").replace("roCreate>", "roReplace>");
    ncs.ok(&replace).await;
    assert_eq!(ids(&ncs.order("RO1").await)[0], "E0");
    ncs.ok("<roDelete><roID>RO1</roID></roDelete>").await;
    drop(ncs);
    gw.stop().await;
    assert_eq!(inbox_rows(dir.path()), 0);
}

/// A power cut after a message was kept in the inbox, before its commit reached the disk:
/// the message is in the inbox only. At start the gateway applies it, with the session's
/// checks, before serving anyone.
#[tokio::test]
async fn messages_left_in_the_inbox_by_a_power_cut_are_applied_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    {
        let mut store = mos_gateway::store::Store::open(dir.path()).unwrap();
        let append_z = format!(
            "<roStoryAppend><roID>RO1</roID>{}</roStoryAppend>",
            story("Z", &[])
        );
        let kept = [
            ("upper", from_ncs(NCS_ID, 7, &big_ro_create("RO1", "A"))),
            (
                "upper",
                from_ncs("UNKNOWN.NCS", 8, &big_ro_create("RO2", "B")),
            ),
            ("lower", from_ncs(NCS_ID, 9, &big_ro_create("RO3", "C"))),
            ("upper", from_ncs(NCS_ID, 10, &append_z)),
        ];
        for (port, doc) in kept {
            store.receive(port, Some("127.0.0.1"), &doc).unwrap();
        }
    }
    let gw = start(cfg).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    let order = ncs.order("RO1").await;
    assert_eq!(order.len(), 81);
    assert_eq!(ids(&order)[80], "Z");
    assert_unknown(&mut ncs, &["RO2", "RO3"]).await;
    // The NCS, which never got the ack, retries: recognised, not applied twice.
    let retry = from_ncs(
        NCS_ID,
        10,
        &format!(
            "<roStoryAppend><roID>RO1</roID>{}</roStoryAppend>",
            story("Z", &[])
        ),
    );
    ncs.send_text(&retry).await;
    assert!(matches!(ncs.recv().await.message, Message::RoAck(a) if a.is_ok()));
    assert_eq!(ncs.order("RO1").await, order);
    drop(ncs);
    gw.stop().await;
    assert_eq!(inbox_rows(dir.path()), 1);
}

#[tokio::test]
async fn a_strict_ncs_gets_off_spec_messages_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(config(dir.path(), "strict = true")).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    // roAir in lower case is tolerated leniently, refused strictly.
    ncs.ok(&ro_create("R", &[("S", &[])])).await;
    let why = ncs
        .refused("<roReadyToAir><roID>R</roID><roAir>ready</roAir></roReadyToAir>")
        .await;
    assert!(why.contains("roAir") && why.contains("READY"), "{why}");
    // A message without messageID: refused, and the reply carries none.
    ncs.send_text("<mos><mosID>nmos.gateway.mos</mosID><ncsID>ENPS.NCS</ncsID><roReq><roID>R</roID></roReq></mos>").await;
    let r = ncs.recv_lenient().await;
    assert_eq!(r.message_id, None);
    let Message::RoAck(a) = r.message else {
        panic!()
    };
    assert!(a.status.contains("messageID"), "{}", a.status);
    gw.stop().await;
}

#[tokio::test]
async fn a_lenient_ncs_gets_off_spec_messages_applied() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(config(dir.path(), "")).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    ncs.ok(&ro_create("R", &[("S", &[])])).await;
    ncs.ok("<roReadyToAir><roID>R</roID><roAir>ready</roAir></roReadyToAir>")
        .await;
    // No messageID: applied, answered without one.
    ncs.send_text(&format!(
        "<mos><ncsID>ENPS.NCS</ncsID><mosID>nmos.gateway.mos</mosID><roStoryAppend><roID>R</roID>{}</roStoryAppend></mos>",
        story("T", &[])
    ))
    .await;
    let r = ncs.recv_lenient().await;
    assert_eq!(r.message_id, None);
    assert!(
        matches!(&r.message, Message::RoAck(a) if a.is_ok()),
        "{r:?}"
    );
    assert_eq!(ids(&ncs.order("R").await), ["S", "T"]);
    gw.stop().await;
}

#[tokio::test]
async fn an_ncs_connecting_from_another_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "");
    cfg.ncs[0].addresses = vec!["127.0.0.2".parse().unwrap()];
    let gw = start(cfg).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    let r = ncs.request("<roReq><roID>R</roID></roReq>").await;
    let Message::RoAck(a) = r.message else {
        panic!()
    };
    assert!(a.status.contains("not allowed"), "{}", a.status);
    gw.stop().await;
}

#[tokio::test]
async fn an_oversize_message_is_refused_and_the_next_one_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "");
    cfg.mos.max_message_bytes = 4096;
    let gw = start(cfg).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    let big: Vec<(String, Vec<&str>)> = (0..100).map(|i| (format!("S{i}"), vec!["1"])).collect();
    let big: Vec<(&str, &[&str])> = big
        .iter()
        .map(|(s, i)| (s.as_str(), i.as_slice()))
        .collect();
    let (_, text) = ncs.envelope(&ro_create("BIG", &big));
    ncs.send_text(&text).await;
    let r = ncs.recv_lenient().await;
    let Message::RoAck(a) = r.message else {
        panic!("{r:?}")
    };
    assert!(a.status.to_lowercase().contains("large"), "{}", a.status);
    let r = ncs.request("<heartbeat/>").await;
    assert!(matches!(r.message, Message::Heartbeat(_)));
    assert!(
        ncs.refused("<roReq><roID>BIG</roID></roReq>")
            .await
            .contains("BIG")
    );
    gw.stop().await;
}
