//! Profiles 1 and 3 over TCP: mosReqObj, mosReqAll (both modes), searches on the query and
//! lower ports, mosObjCreate with the pushed mosObj NEW, mosReqObjAction refused.

use std::time::Duration;

use mos_gateway::mos::Message;
use mos_gateway::mos::messages::{AckStatus, MosAck};
use mos_gateway::objects::Catalogue;

use crate::support::*;

const OBJECTS: &str = r#"
[[object]]
id = "CAM-1"
slug = "Camera one"
type = "VIDEO"
group = "Studio A"
description = "Main presenter camera"

[[object]]
id = "CLIP-7"
slug = "Weather clip"
type = "VIDEO"
group = "Clips"
duration_s = 12.5

[[object]]
id = "LOGO"
slug = "Station logo"
type = "STILL"
group = "Graphics"
"#;

fn extra(more: &str) -> String {
    format!("heartbeat_interval_s = 0\n{more}\n{OBJECTS}")
}

async fn ack_obj(conn: &mut FakeConn, m: &mos_gateway::mos::Mos) {
    conn.reply(m, Message::MosAck(MosAck::ack("", ""))).await;
}

#[tokio::test]
async fn mos_req_obj_answers_the_object_or_names_the_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(config_with(dir.path(), 1, 2, &extra(""))).await;
    let mut ncs = Ncs::connect(gw.lower).await;
    let r = ncs
        .request("<mosReqObj><objID>CLIP-7</objID></mosReqObj>")
        .await;
    let Message::MosObj(o) = r.message else {
        panic!("{:?}", r.message)
    };
    assert_eq!(
        (o.slug.as_str(), o.group.as_deref(), o.duration, o.time_base),
        ("Weather clip", Some("Clips"), 12500, 1000.0)
    );
    let r = ncs
        .request("<mosReqObj><objID>NOPE</objID></mosReqObj>")
        .await;
    let Message::MosAck(a) = r.message else {
        panic!()
    };
    assert_eq!(a.status, AckStatus::Nack);
    assert!(a.description.contains("NOPE"), "{}", a.description);
    let r = ncs
        .request("<mosReqObjAction operation=\"NEW\"><objSlug>x</objSlug></mosReqObjAction>")
        .await;
    let Message::MosAck(a) = r.message else {
        panic!()
    };
    assert_eq!(
        a.description,
        "mosReqObjAction is not supported in MOS 2.8.1"
    );
    gw.stop().await;
}

#[tokio::test]
async fn mos_req_all_with_pause_zero_sends_one_mos_list_all_on_our_connection() {
    let dir = tempfile::tempdir().unwrap();
    let lower = FakeNcs::bind().await;
    let gw = start(config_with(dir.path(), lower.port(), 2, &extra(""))).await;
    let mut ncs = Ncs::connect(gw.lower).await;
    let r = ncs.request("<mosReqAll><pause>0</pause></mosReqAll>").await;
    assert!(
        matches!(&r.message, Message::MosAck(a) if a.status == AckStatus::Ack),
        "{r:?}"
    );
    let mut conn = lower.accept().await;
    let m = conn.recv().await;
    let Message::MosListAll(all) = &m.message else {
        panic!("{:?}", m.message)
    };
    let ids: Vec<&str> = all.objects.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["CAM-1", "CLIP-7", "LOGO"]);
    ack_obj(&mut conn, &m).await;
    gw.stop().await;
}

#[tokio::test]
async fn mos_req_all_with_a_pause_sends_paced_mos_obj_each_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let lower = FakeNcs::bind().await;
    let gw = start(config_with(dir.path(), lower.port(), 2, &extra(""))).await;
    let mut ncs = Ncs::connect(gw.lower).await;
    let r = ncs.request("<mosReqAll><pause>1</pause></mosReqAll>").await;
    assert!(matches!(&r.message, Message::MosAck(a) if a.status == AckStatus::Ack));
    let mut conn = lower.accept().await;
    let first = conn.recv().await;
    let Message::MosObj(o) = &first.message else {
        panic!("{:?}", first.message)
    };
    assert_eq!(o.id, "CAM-1");
    // Nothing more until the first is acknowledged.
    conn.expect_nothing(300).await;
    let t = std::time::Instant::now();
    ack_obj(&mut conn, &first).await;
    let second = conn.recv().await;
    assert!(matches!(&second.message, Message::MosObj(o) if o.id == "CLIP-7"));
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "paced by the requested pause"
    );
    ack_obj(&mut conn, &second).await;
    gw.stop().await;
}

#[tokio::test]
async fn searches_are_answered_on_the_query_port_and_on_the_lower_port() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(config_with(dir.path(), 1, 2, &extra(""))).await;
    for addr in [gw.query, gw.lower] {
        let mut ncs = Ncs::connect(addr).await;
        let r = ncs.request("<mosReqSearchableSchema/>").await;
        let Message::MosListSearchableSchema(s) = r.message else {
            panic!()
        };
        assert!(s.schema.ends_with(".xsd"), "{}", s.schema);
        // General search, then a field search (AND within, OR across groups), paged.
        let r = ncs.request("<mosReqObjList><queryID>q1</queryID><listReturnStart>1</listReturnStart><listReturnEnd></listReturnEnd><generalSearch>camera</generalSearch><mosSchema></mosSchema></mosReqObjList>").await;
        let Message::MosObjList(l) = r.message else {
            panic!()
        };
        assert_eq!((l.query_id.as_str(), l.list_return_total), ("q1", Some(1)));
        assert_eq!(l.objects[0].id, "CAM-1");
        let r = ncs.request(&format!(
            "<mosReqObjList><queryID>q2</queryID><listReturnStart>2</listReturnStart><listReturnEnd>2</listReturnEnd><generalSearch></generalSearch><mosSchema>{}</mosSchema><searchGroup><searchField XPath=\"/mosObj[objType='VIDEO']\" sortByOrder=\"1\"/></searchGroup><searchGroup><searchField XPath=\"/mosObj[objGroup='Graphics']\"/></searchGroup></mosReqObjList>",
            s.schema
        ))
        .await;
        let Message::MosObjList(l) = r.message else {
            panic!()
        };
        assert_eq!(
            (l.list_return_start, l.list_return_end, l.list_return_total),
            (2, 2, Some(3))
        );
        assert_eq!(l.objects.len(), 1);
    }
    gw.stop().await;
}

#[tokio::test]
async fn mos_obj_create_makes_a_placeholder_announced_with_mos_obj_new() {
    let dir = tempfile::tempdir().unwrap();
    let lower = FakeNcs::bind().await;
    let gw = start(config_with(dir.path(), lower.port(), 2, &extra(""))).await;
    let mut ncs = Ncs::connect(gw.lower).await;
    let r = ncs
        .request("<mosObjCreate><objSlug>Remote: Oslo reporter</objSlug><objGroup>Remotes</objGroup><objType>VIDEO</objType><objTB>50</objTB><objDur>0</objDur></mosObjCreate>")
        .await;
    let Message::MosAck(a) = r.message else {
        panic!()
    };
    assert_eq!(a.status, AckStatus::Ack);
    let new_id = a.description.clone();
    assert!(!new_id.is_empty());
    let mut conn = lower.accept().await;
    let m = conn.recv().await;
    let Message::MosObj(o) = &m.message else {
        panic!("{:?}", m.message)
    };
    assert_eq!(
        (o.id.as_str(), o.status.as_str(), o.slug.as_str()),
        (new_id.as_str(), "NEW", "Remote: Oslo reporter")
    );
    assert_eq!(o.air.as_wire(), "NOT READY");
    ack_obj(&mut conn, &m).await;
    // The NCS resends a create (its ack was lost with the socket): the same objID again,
    // and no second placeholder (nor a duplicate-slug refusal).
    let (_, text) = ncs.envelope(
        "<mosObjCreate><objSlug>Remote: Bergen</objSlug><objType>VIDEO</objType><objTB>50</objTB></mosObjCreate>",
    );
    ncs.send_text(&text).await;
    let Message::MosAck(first) = ncs.recv().await.message else {
        panic!()
    };
    assert_eq!(first.status, AckStatus::Ack);
    let pushed = conn.recv().await;
    ack_obj(&mut conn, &pushed).await;
    let mut resend = Ncs::connect(gw.lower).await;
    resend.send_text(&text).await;
    let Message::MosAck(again) = resend.recv().await.message else {
        panic!()
    };
    assert_eq!(
        (again.status, again.description.as_str()),
        (AckStatus::Ack, first.description.as_str())
    );
    conn.expect_nothing(300).await;
    // It is in the catalogue now, and survives a restart.
    let r = ncs
        .request(&format!("<mosReqObj><objID>{new_id}</objID></mosReqObj>"))
        .await;
    assert!(matches!(r.message, Message::MosObj(_)));
    // An invalid request gets a reason the user can act on.
    let r = ncs.request("<mosObjCreate><objSlug></objSlug><objType>VIDEO</objType><objTB>50</objTB></mosObjCreate>").await;
    let Message::MosAck(a) = r.message else {
        panic!()
    };
    assert_eq!(a.status, AckStatus::Nack);
    assert!(
        a.description.to_lowercase().contains("slug"),
        "{}",
        a.description
    );
    drop(conn);
    gw.stop().await;
}

#[tokio::test]
async fn catalogue_changes_reach_every_ncs_in_order_each_acknowledged_before_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let lower = FakeNcs::bind().await;
    let gw = start(config_with(dir.path(), lower.port(), 2, &extra(""))).await;
    let mut cam = gw.catalogue.get("CAM-1").unwrap();
    cam.slug = "Camera one (left)".into();
    gw.catalogue.upsert(cam).unwrap();
    gw.catalogue.remove("LOGO").unwrap();
    let mut conn = lower.accept().await;
    let first = conn.recv().await;
    let Message::MosObj(o) = &first.message else {
        panic!("{:?}", first.message)
    };
    assert_eq!(
        (
            o.id.as_str(),
            o.status.as_str(),
            o.slug.as_str(),
            o.revision
        ),
        ("CAM-1", "UPDATED", "Camera one (left)", 2)
    );
    conn.expect_nothing(300).await;
    ack_obj(&mut conn, &first).await;
    let second = conn.recv().await;
    let Message::MosObj(o) = &second.message else {
        panic!()
    };
    assert_eq!((o.id.as_str(), o.status.as_str()), ("LOGO", "DELETED"));
    ack_obj(&mut conn, &second).await;
    gw.stop().await;
}

/// A gateway whose NCS's lower port is down for now (it reconnects every 0.2 s), and that
/// port.
async fn start_with_ncs_away(dir: &std::path::Path) -> (Running, u16) {
    let port = FakeNcs::down_port().await;
    let gw = start(config_with(dir, port, 2, &extra("reconnect_max_s = 0.2"))).await;
    (gw, port)
}

/// The NCS comes up on `port`: every mosObj pushed until the gateway goes quiet, each
/// acknowledged, as (objID, status, slug).
async fn mos_objs_once_up(port: u16) -> Vec<(String, String, String)> {
    let lower = FakeNcs::up_on(port).await;
    let mut conn = lower.accept().await;
    let mut got = Vec::new();
    while let Some(m) = conn.next_or_closed(1500).await {
        let Message::MosObj(o) = &m.message else {
            panic!("{:?}", m.message)
        };
        got.push((o.id.clone(), o.status.clone(), o.slug.clone()));
        ack_obj(&mut conn, &m).await;
    }
    got
}

#[tokio::test]
async fn changes_made_while_the_ncs_is_away_all_reach_it_merged_per_object() {
    use std::collections::HashMap;
    let dir = tempfile::tempdir().unwrap();
    let (gw, port) = start_with_ncs_away(dir.path()).await;
    // Far more changes than the broadcast keeps for a subscriber (1,024), made while the
    // first one waits for the NCS: the deletion of LOGO comes early.
    let mut clip = gw.catalogue.get("CLIP-7").unwrap();
    clip.slug = "Weather clip (new)".into();
    gw.catalogue.upsert(clip.clone()).unwrap();
    gw.catalogue.remove("LOGO").unwrap();
    for i in 0..1500 {
        let mut cam = gw.catalogue.get("CAM-1").unwrap();
        cam.slug = format!("Camera one v{i}");
        gw.catalogue.upsert(cam).unwrap();
    }
    for i in 0..600 {
        let mut o = clip.clone();
        o.id = format!("N-{i}");
        o.slug = format!("New {i}");
        gw.catalogue.upsert(o).unwrap();
    }
    for i in (0..600).step_by(2) {
        gw.catalogue.remove(&format!("N-{i}")).unwrap();
    }
    let pushed = mos_objs_once_up(port).await;
    let count = pushed.len();
    let told: HashMap<String, (String, String)> = pushed
        .into_iter()
        .map(|(id, st, slug)| (id, (st, slug)))
        .collect();
    let status = |id: &str| told.get(id).map(|(s, _)| s.as_str());
    assert_eq!(status("LOGO"), Some("DELETED"), "LOGO's deletion was lost");
    assert_eq!(
        told.get("CAM-1"),
        Some(&("UPDATED".to_string(), "Camera one v1499".to_string()))
    );
    assert_eq!(
        told.get("CLIP-7"),
        Some(&("UPDATED".to_string(), "Weather clip (new)".to_string()))
    );
    for i in 0..600 {
        let id = format!("N-{i}");
        let want = (i % 2 == 1).then_some("NEW");
        assert_eq!(status(&id), want, "{id}");
    }
    // One message per object changed (and CLIP-7's first, sent while the rest piled up):
    // CLIP-7, LOGO, CAM-1 and the 300 new objects that stayed.
    assert!(
        count <= 303,
        "{count} mosObj messages for 303 objects changed"
    );
    gw.stop().await;
}

#[tokio::test]
async fn while_the_ncs_is_away_each_object_waits_as_its_latest_change() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, port) = start_with_ncs_away(dir.path()).await;
    let pause = || tokio::time::sleep(Duration::from_millis(20));
    for i in 0..5 {
        let mut cam = gw.catalogue.get("CAM-1").unwrap();
        cam.slug = format!("Camera one v{i}");
        gw.catalogue.upsert(cam).unwrap();
        pause().await;
    }
    let mut x = gw.catalogue.get("CLIP-7").unwrap();
    x.id = "X".into();
    gw.catalogue.upsert(x).unwrap();
    pause().await;
    gw.catalogue.remove("X").unwrap();
    pause().await;
    gw.catalogue.remove("LOGO").unwrap();
    pause().await;
    let got: Vec<String> = mos_objs_once_up(port)
        .await
        .into_iter()
        .map(|(id, st, slug)| format!("{id} {st} {slug}"))
        .collect();
    assert_eq!(
        got,
        [
            // Sent before the others piled up behind it.
            "CAM-1 UPDATED Camera one v0",
            // Its four later changes as one; X came and went unseen.
            "CAM-1 UPDATED Camera one v4",
            "LOGO DELETED Station logo",
        ]
    );
    gw.stop().await;
}
