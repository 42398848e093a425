//! The running-order model through its public API: messages as the NCS sends them
//! (parsed from XML), every legacy message, every roElementAction case, errors, and a
//! property test of atomicity and ID uniqueness.

use mos_gateway::mos::messages::RoStorySend;
use mos_gateway::mos::structures::{
    AirStatus, BodyElement, Item, RoHeader, RunningOrder, Story, StoryBody,
};
use mos_gateway::mos::{Message, Mos, ParseOptions};
use mos_gateway::rundown::{Applied, Change, Edit, EditError, Rundowns, edit_from_message};
use proptest::prelude::*;
use std::collections::HashSet;

const ENV: &str = "<mosID>gfx.studio1.mos</mosID><ncsID>ncs1</ncsID><messageID>1</messageID>";

fn message(body: &str) -> Message {
    let xml = format!("<mos>{ENV}{body}</mos>");
    Mos::parse(&xml, ParseOptions::lenient())
        .unwrap_or_else(|e| panic!("{e}\n{xml}"))
        .mos
        .message
}

fn send(rs: &mut Rundowns, body: &str) -> Result<Applied, EditError> {
    let (ro_id, edit) = edit_from_message(&message(body)).expect("a running-order edit")?;
    rs.update(&ro_id, &edit)
}

fn xml_item(id: &str) -> String {
    format!("<item><itemID>{id}</itemID><objID>M{id}</objID><mosID>gfx.studio1.mos</mosID></item>")
}

fn xml_story(id: &str, items: &str) -> String {
    let items: String = items.split_whitespace().map(xml_item).collect();
    format!("<story><storyID>{id}</storyID><storySlug>slug {id}</storySlug>{items}</story>")
}

/// RO1 with stories 1..6; story 1 holds items 1..6.
fn six() -> Rundowns {
    let mut rs = Rundowns::new();
    let stories = xml_story("1", "1 2 3 4 5 6")
        + &["2", "3", "4", "5", "6"]
            .iter()
            .map(|s| xml_story(s, ""))
            .collect::<String>();
    send(
        &mut rs,
        &format!("<roCreate><roID>RO1</roID><roSlug>6PM</roSlug>{stories}</roCreate>"),
    )
    .unwrap();
    rs
}

fn order(rs: &Rundowns) -> String {
    let r = rs.get("RO1").expect("RO1 held");
    r.stories()
        .map(|s| s.story.id.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn items(rs: &Rundowns, story: &str) -> String {
    let r = rs.get("RO1").expect("RO1 held");
    r.story(story)
        .expect("story held")
        .story
        .items
        .iter()
        .map(|i| i.id.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs each message on a fresh RO1 and compares the story order (or, with a storyID,
/// that story's item order), or the error reason. A refused message must change nothing.
fn run_table(cases: &[(&str, Option<&str>, Result<&str, &str>)]) {
    for (body, story, want) in cases {
        let mut rs = six();
        let before = rs.clone();
        let got = send(&mut rs, body).map(|_| match story {
            Some(s) => items(&rs, s),
            None => order(&rs),
        });
        match (got, want) {
            (Ok(got), Ok(want)) => assert_eq!(&got, want, "{body}"),
            (Err(e), Err(want)) => {
                assert_eq!(&e.reason(), want, "{body}");
                assert_eq!(rs, before, "refused {body} changed the state");
            }
            (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn every_legacy_story_message_edits_the_story_order() {
    let s9 = xml_story("9", "");
    run_table(&[
        (
            &format!("<roStoryAppend><roID>RO1</roID>{s9}</roStoryAppend>"),
            None,
            Ok("1 2 3 4 5 6 9"),
        ),
        (
            &format!("<roStoryInsert><roID>RO1</roID><storyID>2</storyID>{s9}</roStoryInsert>"),
            None,
            Ok("1 9 2 3 4 5 6"),
        ),
        (
            &format!("<roStoryReplace><roID>RO1</roID><storyID>2</storyID>{s9}</roStoryReplace>"),
            None,
            Ok("1 9 3 4 5 6"),
        ),
        (
            "<roStoryMove><roID>RO1</roID><storyID>3</storyID><storyID>1</storyID></roStoryMove>",
            None,
            Ok("3 1 2 4 5 6"),
        ),
        (
            "<roStoryMove><roID>RO1</roID><storyID>3</storyID><storyID></storyID></roStoryMove>",
            None,
            Ok("1 2 4 5 6 3"),
        ),
        (
            "<roStoryMove><roID>RO1</roID><storyID>3</storyID></roStoryMove>",
            None,
            Ok("1 2 4 5 6 3"),
        ),
        (
            "<roStorySwap><roID>RO1</roID><storyID>1</storyID><storyID>3</storyID></roStorySwap>",
            None,
            Ok("3 2 1 4 5 6"),
        ),
        (
            "<roStoryDelete><roID>RO1</roID><storyID>3</storyID><storyID>5</storyID></roStoryDelete>",
            None,
            Ok("1 2 4 6"),
        ),
        (
            "<roStoryMoveMultiple><roID>RO1</roID><storyID>2</storyID><storyID>3</storyID><storyID>5</storyID><storyID>6</storyID><storyID>1</storyID><storyID>4</storyID></roStoryMoveMultiple>",
            None,
            Ok("2 3 5 6 1 4"),
        ),
        (
            "<roStoryMoveMultiple><roID>RO1</roID><storyID>2</storyID><storyID>1</storyID><storyID></storyID></roStoryMoveMultiple>",
            None,
            Ok("3 4 5 6 2 1"),
        ),
        (
            "<roStoryMoveMultiple><roID>RO1</roID><storyID>2</storyID></roStoryMoveMultiple>",
            None,
            Ok("1 3 4 5 6 2"),
        ),
        (
            "<roStoryMoveMultiple><roID>RO1</roID><storyID>2</storyID><storyID>3</storyID><storyID>2</storyID><storyID>1</storyID></roStoryMoveMultiple>",
            None,
            Err("2 listed twice in running order RO1 edit"),
        ),
        (
            "<roStoryMoveMultiple><roID>RO1</roID><storyID>2</storyID><storyID>1</storyID><storyID>2</storyID></roStoryMoveMultiple>",
            None,
            Err("2 listed twice in running order RO1 edit"),
        ),
        (
            &format!("<roStoryInsert><roID>RO1</roID><storyID>S9</storyID>{s9}</roStoryInsert>"),
            None,
            Err("Unknown storyID S9 in running order RO1"),
        ),
        (
            &format!(
                "<roStoryAppend><roID>RO1</roID>{}</roStoryAppend>",
                xml_story("4", "")
            ),
            None,
            Err("Duplicate storyID 4 in running order RO1"),
        ),
        (
            "<roStorySwap><roID>RO1</roID><storyID>1</storyID><storyID>1</storyID></roStorySwap>",
            None,
            Err("SWAP of 1 with itself in running order RO1"),
        ),
    ]);
}

#[test]
fn every_legacy_item_message_edits_the_item_order_of_one_story() {
    let i7 = xml_item("7");
    let one = Some("1");
    run_table(&[
        (
            &format!(
                "<roItemInsert><roID>RO1</roID><storyID>1</storyID><itemID>3</itemID>{i7}</roItemInsert>"
            ),
            one,
            Ok("1 2 7 3 4 5 6"),
        ),
        (
            &format!(
                "<roItemInsert><roID>RO1</roID><storyID>1</storyID><itemID></itemID>{i7}</roItemInsert>"
            ),
            one,
            Ok("1 2 3 4 5 6 7"),
        ),
        (
            &format!(
                "<roItemReplace><roID>RO1</roID><storyID>1</storyID><itemID>2</itemID>{i7}{}</roItemReplace>",
                xml_item("8")
            ),
            one,
            Ok("1 7 8 3 4 5 6"),
        ),
        (
            "<roItemMoveMultiple><roID>RO1</roID><storyID>1</storyID><itemID>2</itemID><itemID>3</itemID><itemID>5</itemID><itemID>6</itemID><itemID>1</itemID><itemID>4</itemID></roItemMoveMultiple>",
            one,
            Ok("2 3 5 6 1 4"),
        ),
        (
            "<roItemMoveMultiple><roID>RO1</roID><storyID>1</storyID><itemID>1</itemID><itemID></itemID></roItemMoveMultiple>",
            one,
            Ok("2 3 4 5 6 1"),
        ),
        (
            "<roItemMoveMultiple><roID>RO1</roID><storyID>1</storyID><itemID>2</itemID></roItemMoveMultiple>",
            one,
            Ok("1 3 4 5 6 2"),
        ),
        (
            "<roItemMoveMultiple><roID>RO1</roID><storyID>1</storyID><itemID>2</itemID><itemID>2</itemID><itemID>1</itemID></roItemMoveMultiple>",
            one,
            Err("2 listed twice in running order RO1 edit"),
        ),
        (
            "<roItemDelete><roID>RO1</roID><storyID>1</storyID><itemID>2</itemID><itemID>4</itemID></roItemDelete>",
            one,
            Ok("1 3 5 6"),
        ),
        (
            "<roItemDelete><roID>RO1</roID><storyID>1</storyID><itemID>9</itemID></roItemDelete>",
            one,
            Err("Unknown itemID 9 in story 1 of running order RO1"),
        ),
        (
            &format!(
                "<roItemInsert><roID>RO1</roID><storyID>1</storyID><itemID></itemID>{}</roItemInsert>",
                xml_item("3")
            ),
            one,
            Err("Duplicate itemID 3 in story 1 of running order RO1"),
        ),
        (
            &format!(
                "<roItemReplace><roID>RO1</roID><storyID>1</storyID><itemID></itemID>{i7}</roItemReplace>"
            ),
            one,
            Err("roItemReplace needs a target itemID (running order RO1)"),
        ),
        (
            &format!(
                "<roItemInsert><roID>RO1</roID><storyID>S9</storyID><itemID></itemID>{i7}</roItemInsert>"
            ),
            one,
            Err("Unknown storyID S9 in running order RO1"),
        ),
    ]);
}

fn action(op: &str, target: &str, source: &str) -> String {
    format!(
        "<roElementAction operation=\"{op}\"><roID>RO1</roID>{target}<element_source>{source}</element_source></roElementAction>"
    )
}

fn tgt(story: &str, item: Option<&str>) -> String {
    let item = item
        .map(|i| format!("<itemID>{i}</itemID>"))
        .unwrap_or_default();
    format!("<element_target><storyID>{story}</storyID>{item}</element_target>")
}

#[test]
fn element_action_story_cases_follow_the_reference_table() {
    let s9 = xml_story("9", "");
    let ids = |v: &[&str]| -> String {
        v.iter()
            .map(|i| format!("<storyID>{i}</storyID>"))
            .collect()
    };
    run_table(&[
        (
            &action("INSERT", &tgt("2", None), &s9),
            None,
            Ok("1 9 2 3 4 5 6"),
        ),
        (
            &action("INSERT", &tgt("", None), &s9),
            None,
            Ok("1 2 3 4 5 6 9"),
        ),
        (&action("INSERT", "", &s9), None, Ok("1 2 3 4 5 6 9")),
        (
            &action("REPLACE", &tgt("2", None), &s9),
            None,
            Ok("1 9 3 4 5 6"),
        ),
        (
            &action("REPLACE", &tgt("2", None), &xml_story("2", "x")),
            None,
            Ok("1 2 3 4 5 6"),
        ),
        (
            &action("MOVE", &tgt("1", None), &ids(&["5", "6"])),
            None,
            Ok("5 6 1 2 3 4"),
        ),
        (
            &action("MOVE", &tgt("", None), &ids(&["1"])),
            None,
            Ok("2 3 4 5 6 1"),
        ),
        (
            &action("MOVE", "", &ids(&["2", "1"])),
            None,
            Ok("3 4 5 6 2 1"),
        ),
        (&action("DELETE", "", &ids(&["6"])), None, Ok("1 2 3 4 5")),
        (
            &action("SWAP", "", &ids(&["1", "2"])),
            None,
            Ok("2 1 3 4 5 6"),
        ),
        (
            &action("SWAP", &tgt("", None), &ids(&["1", "6"])),
            None,
            Ok("6 2 3 4 5 1"),
        ),
        (
            &action("SWAP", "", &ids(&["1", "2", "3"])),
            None,
            Err("SWAP needs exactly 2 IDs, got 3 in running order RO1"),
        ),
        (
            &action("MOVE", &tgt("2", None), &ids(&["1", "2"])),
            None,
            Err("Target 2 is also moved in running order RO1"),
        ),
        (
            &action("REPLACE", &tgt("", None), &s9),
            None,
            Err("REPLACE needs a target storyID (running order RO1)"),
        ),
        (
            &action("REPLACE", &tgt("2", None), &xml_story("3", "")),
            None,
            Err("Duplicate storyID 3 in running order RO1"),
        ),
        (
            &action("DELETE", "", &s9),
            None,
            Err("DELETE cannot use story elements (running order RO1)"),
        ),
        (
            &action("INSERT", &tgt("2", None), &ids(&["3"])),
            None,
            Err("INSERT cannot use storyID elements (running order RO1)"),
        ),
        (
            &action("DELETE", "", &ids(&["S9"])),
            None,
            Err("Unknown storyID S9 in running order RO1"),
        ),
    ]);
}

#[test]
fn element_action_item_cases_follow_the_reference_table() {
    let i7 = xml_item("7");
    let ids =
        |v: &[&str]| -> String { v.iter().map(|i| format!("<itemID>{i}</itemID>")).collect() };
    let one = Some("1");
    run_table(&[
        (
            &action("INSERT", &tgt("1", Some("2")), &i7),
            one,
            Ok("1 7 2 3 4 5 6"),
        ),
        (
            &action("INSERT", &tgt("1", Some("")), &i7),
            one,
            Ok("1 2 3 4 5 6 7"),
        ),
        (
            &action("INSERT", &tgt("1", None), &i7),
            one,
            Ok("1 2 3 4 5 6 7"),
        ),
        (
            &action("REPLACE", &tgt("1", Some("5")), &i7),
            one,
            Ok("1 2 3 4 7 6"),
        ),
        (
            &action("MOVE", &tgt("1", Some("1")), &ids(&["5"])),
            one,
            Ok("5 1 2 3 4 6"),
        ),
        (
            &action("MOVE", &tgt("1", None), &ids(&["1", "2"])),
            one,
            Ok("3 4 5 6 1 2"),
        ),
        (
            &action("DELETE", &tgt("1", None), &ids(&["5"])),
            one,
            Ok("1 2 3 4 6"),
        ),
        (
            &action("SWAP", &tgt("1", None), &ids(&["1", "2"])),
            one,
            Ok("2 1 3 4 5 6"),
        ),
        (
            &action("SWAP", &tgt("1", None), &ids(&["1"])),
            one,
            Err("SWAP needs exactly 2 IDs, got 1 in running order RO1"),
        ),
        (
            &action("DELETE", "", &ids(&["5"])),
            one,
            Err("DELETE needs a target storyID (running order RO1)"),
        ),
        (
            &action("INSERT", &tgt("", Some("")), &i7),
            one,
            Err("INSERT needs a target storyID (running order RO1)"),
        ),
        (
            &action("REPLACE", &tgt("1", None), &i7),
            one,
            Err("REPLACE needs a target itemID (running order RO1)"),
        ),
        (
            &action("MOVE", &tgt("1", Some("9")), &ids(&["1"])),
            one,
            Err("Unknown itemID 9 in story 1 of running order RO1"),
        ),
        (
            &action("MOVE", &tgt("1", Some("2")), &ids(&["2"])),
            one,
            Err("Target 2 is also moved in running order RO1"),
        ),
    ]);
}

#[test]
fn messages_that_are_not_running_order_edits_give_none() {
    for body in [
        "<heartbeat><time>2024-05-01T18:00:00</time></heartbeat>",
        "<roReq><roID>RO1</roID></roReq>",
        "<roReqAll/>",
        "<roAck><roID>RO1</roID><roStatus>OK</roStatus></roAck>",
    ] {
        assert!(edit_from_message(&message(body)).is_none(), "{body}");
    }
}

#[test]
fn nack_leaves_running_order_unchanged() {
    let mut rs = six();
    let before = rs.clone();
    let e = send(
        &mut rs,
        &action(
            "MOVE",
            &tgt("1", None),
            "<storyID>2</storyID><storyID>S9</storyID>",
        ),
    )
    .unwrap_err();
    assert!(e.needs_resync());
    assert_eq!(rs, before);
}

#[test]
fn story_send_stores_the_body_and_it_follows_the_story() {
    let mut rs = six();
    let a = send(
        &mut rs,
        "<roStorySend><roID>RO1</roID><storyID>2</storyID><storySlug>Fire</storySlug><storyNum>A1</storyNum><storyBody><storyPresenter>Anna</storyPresenter><p>Good evening.</p><storyItem><itemID>1</itemID><objID>M0001</objID><mosID>gfx.studio1.mos</mosID></storyItem></storyBody></roStorySend>",
    )
    .unwrap();
    assert_eq!(a.change(), &Change::Body { story: "2".into() });
    send(&mut rs, &action("MOVE", "", "<storyID>2</storyID>")).unwrap();
    assert_eq!(order(&rs), "1 3 4 5 6 2");
    let body = rs.get("RO1").unwrap().body("2").expect("body kept");
    assert_eq!(body.number.as_deref(), Some("A1"));
    assert_eq!(body.body.items().count(), 1);
    assert_eq!(
        body.body.elements.first(),
        Some(&BodyElement::Presenter("Anna".into()))
    );
    // The running order's own story fields stay as the construction messages gave them.
    assert_eq!(
        rs.get("RO1")
            .unwrap()
            .story("2")
            .unwrap()
            .story
            .slug
            .as_deref(),
        Some("slug 2")
    );
    send(
        &mut rs,
        "<roStoryDelete><roID>RO1</roID><storyID>2</storyID></roStoryDelete>",
    )
    .unwrap();
    let e = send(
        &mut rs,
        "<roStorySend><roID>RO1</roID><storyID>2</storyID><storyBody/></roStorySend>",
    )
    .unwrap_err();
    assert!(e.needs_resync());
    let e = send(
        &mut rs,
        "<roStorySend><roID>RO7</roID><storyID>2</storyID><storyBody/></roStorySend>",
    )
    .unwrap_err();
    assert_eq!(e.reason(), "Unknown roID RO7");
}

#[test]
fn running_order_level_messages_create_replace_and_delete() {
    let mut rs = six();
    let a = send(
        &mut rs,
        "<roReadyToAir><roID>RO1</roID><roAir>READY</roAir></roReadyToAir>",
    )
    .unwrap();
    assert_eq!(a.change(), &Change::Readiness);
    assert_eq!(
        rs.get("RO1").unwrap().ready_to_air(),
        Some(AirStatus::Ready)
    );
    send(
        &mut rs,
        "<roMetadataReplace><roID>RO1</roID><roSlug>6PM LATE</roSlug></roMetadataReplace>",
    )
    .unwrap();
    assert_eq!(
        rs.get("RO1").unwrap().header().slug.as_deref(),
        Some("6PM LATE")
    );
    assert_eq!(order(&rs), "1 2 3 4 5 6");
    let e = send(
        &mut rs,
        "<roReadyToAir><roID>RO2</roID><roAir>READY</roAir></roReadyToAir>",
    )
    .unwrap_err();
    assert!(e.needs_resync());
    send(
        &mut rs,
        &format!(
            "<roReplace><roID>RO1</roID><roSlug>6PM</roSlug>{}</roReplace>",
            xml_story("4", "") + &xml_story("1", "")
        ),
    )
    .unwrap();
    assert_eq!(order(&rs), "4 1");
    let a = send(
        &mut rs,
        &format!(
            "<roList><roID>RO2</roID><roSlug>7PM</roSlug>{}</roList>",
            xml_story("A", "")
        ),
    )
    .unwrap();
    assert_eq!(a.change(), &Change::Resynced { created: true });
    assert_eq!(rs.len(), 2);
    send(&mut rs, "<roDelete><roID>RO1</roID></roDelete>").unwrap();
    assert!(rs.get("RO1").is_none());
    let e = send(&mut rs, "<roDelete><roID>RO1</roID></roDelete>").unwrap_err();
    assert_eq!(e.reason(), "Unknown roID RO1");
}

#[test]
fn create_for_a_held_ro_id_replaces_it_and_says_so() {
    let mut rs = six();
    let a = send(
        &mut rs,
        &format!(
            "<roCreate><roID>RO1</roID><roSlug>6PM</roSlug>{}</roCreate>",
            xml_story("X", "")
        ),
    )
    .unwrap();
    assert_eq!(
        a.change(),
        &Change::Created {
            replaced_existing: true
        }
    );
    assert_eq!(order(&rs), "X");
    let e = send(
        &mut rs,
        &format!(
            "<roCreate><roID>RO3</roID><roSlug>x</roSlug>{}</roCreate>",
            xml_story("X", "") + &xml_story("X", "")
        ),
    )
    .unwrap_err();
    assert_eq!(e.reason(), "Duplicate storyID X in running order RO3");
    assert!(rs.get("RO3").is_none());
}

#[test]
fn roundtrip_to_running_order_matches_what_the_ncs_sent() {
    let mut rs = Rundowns::new();
    let m = message(&format!(
        "<roCreate><roID>RO1</roID><roSlug>6PM</roSlug><roEdDur>00:30:00</roEdDur>{}</roCreate>",
        xml_story("B", "2 1") + &xml_story("A", "")
    ));
    let (id, edit) = edit_from_message(&m).unwrap().unwrap();
    rs.update(&id, &edit).unwrap();
    let Message::RoCreate(sent) = m else {
        unreachable!()
    };
    assert_eq!(rs.get("RO1").unwrap().to_running_order(), sent.0);
}

// ---- property test -------------------------------------------------------------------

fn item(id: String) -> Item {
    Item {
        object_id: format!("O{id}"),
        mos_id: "gfx".into(),
        id,
        ..Item::default()
    }
}

fn sid() -> impl Strategy<Value = String> {
    (0..6u8).prop_map(|i| format!("S{i}"))
}

fn iid() -> impl Strategy<Value = String> {
    (0..4u8).prop_map(|i| format!("i{i}"))
}

fn story_target() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![4 => sid(), 1 => Just(String::new())])
}

fn item_target() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![4 => iid(), 1 => Just(String::new())])
}

fn a_story() -> impl Strategy<Value = Story> {
    (sid(), prop::collection::vec(iid().prop_map(item), 0..4)).prop_map(|(id, items)| Story {
        id,
        items,
        ..Story::default()
    })
}

/// Stories with random (possibly repeated) IDs: often invalid.
fn stories(max: usize) -> impl Strategy<Value = Vec<Story>> {
    prop::collection::vec(a_story(), 0..max)
}

/// A valid story list: distinct storyIDs, distinct itemIDs per story, random order.
fn valid_stories() -> impl Strategy<Value = Vec<Story>> {
    let all: Vec<u8> = (0..6).collect();
    prop::sample::subsequence(all, 0..=6)
        .prop_shuffle()
        .prop_flat_map(|ids| {
            let n = ids.len();
            (
                Just(ids),
                prop::collection::vec(prop::sample::subsequence(vec![0u8, 1, 2, 3], 0..=4), n),
            )
        })
        .prop_map(|(ids, items)| {
            ids.into_iter()
                .zip(items)
                .map(|(s, its)| Story {
                    id: format!("S{s}"),
                    items: its.into_iter().map(|i| item(format!("i{i}"))).collect(),
                    ..Story::default()
                })
                .collect()
        })
}

fn any_stories() -> impl Strategy<Value = Vec<Story>> {
    prop_oneof![3 => valid_stories(), 1 => stories(7)]
}

fn some_items(max: usize) -> impl Strategy<Value = Vec<Item>> {
    prop::collection::vec(iid().prop_map(item), 0..max)
}

fn whole(stories: Vec<Story>) -> RunningOrder {
    RunningOrder {
        header: RoHeader {
            id: "R".into(),
            slug: Some("s".into()),
            ..RoHeader::default()
        },
        stories,
    }
}

fn an_edit() -> impl Strategy<Value = Edit> {
    let ids = || prop::collection::vec(sid(), 0..4);
    let item_ids = || prop::collection::vec(iid(), 0..4);
    prop_oneof![
        2 => any_stories().prop_map(|s| Edit::Create(whole(s))),
        1 => any_stories().prop_map(|s| Edit::Replace(whole(s))),
        1 => any_stories().prop_map(|s| Edit::List(whole(s))),
        1 => Just(Edit::Delete),
        1 => Just(Edit::ReadyToAir(AirStatus::Ready)),
        1 => Just(Edit::ReplaceMetadata(RoHeader { id: "R".into(), slug: Some("t".into()), ..RoHeader::default() })),
        3 => (story_target(), stories(3)).prop_map(|(before, stories)| Edit::InsertStories { before, stories }),
        3 => (sid(), stories(3)).prop_map(|(target, stories)| Edit::ReplaceStory { target, stories }),
        3 => (story_target(), ids()).prop_map(|(before, ids)| Edit::MoveStories { before, ids }),
        2 => ids().prop_map(|ids| Edit::DeleteStories { ids }),
        2 => (sid(), sid()).prop_map(|(a, b)| Edit::SwapStories { a, b }),
        3 => (sid(), item_target(), some_items(3)).prop_map(|(story, before, items)| Edit::InsertItems { story, before, items }),
        3 => (sid(), iid(), some_items(3)).prop_map(|(story, target, items)| Edit::ReplaceItem { story, target, items }),
        3 => (sid(), item_target(), item_ids()).prop_map(|(story, before, ids)| Edit::MoveItems { story, before, ids }),
        2 => (sid(), item_ids()).prop_map(|(story, ids)| Edit::DeleteItems { story, ids }),
        2 => (sid(), iid(), iid()).prop_map(|(story, a, b)| Edit::SwapItems { story, a, b }),
        2 => sid().prop_map(|story_id| Edit::StorySend(RoStorySend {
            ro_id: "R".into(),
            story_id,
            slug: None,
            number: None,
            body: StoryBody::default(),
            metadata: vec![],
        })),
    ]
}

fn ids_unique(rs: &Rundowns) -> bool {
    rs.iter().all(|(_, r)| {
        let mut stories = HashSet::new();
        r.stories().all(|s| {
            let mut items = HashSet::new();
            stories.insert(s.story.id.clone())
                && s.story.items.iter().all(|i| items.insert(i.id.clone()))
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn rejected_edits_change_nothing_and_accepted_edits_keep_ids_unique(
        start in valid_stories(),
        edits in prop::collection::vec((prop_oneof![6 => Just("R"), 1 => Just("X")], an_edit()), 1..40),
    ) {
        let mut rs = Rundowns::new();
        let _ = rs.update("R", &Edit::Create(whole(start)));
        for (ro_id, edit) in &edits {
            let before = rs.clone();
            match rs.update(ro_id, edit) {
                Err(e) => {
                    prop_assert_eq!(&rs, &before, "refused {:?} ({}) changed the state", edit, e);
                    prop_assert!(e.reason().chars().count() <= 128);
                }
                Ok(a) => {
                    prop_assert!(ids_unique(&rs), "{:?} broke uniqueness", edit);
                    prop_assert_eq!(a.rundown(), rs.get(ro_id));
                }
            }
        }
    }

    #[test]
    fn moves_and_swaps_keep_the_same_stories(
        start in valid_stories(),
        before in story_target(),
        ids in prop::collection::vec(sid(), 0..4),
    ) {
        let mut rs = Rundowns::new();
        if rs.update("R", &Edit::Create(whole(start))).is_ok() {
            let sorted = |rs: &Rundowns| {
                let mut v: Vec<Story> = rs.get("R").unwrap().stories().map(|s| s.story.clone()).collect();
                v.sort_by(|a, b| a.id.cmp(&b.id));
                v
            };
            let was = sorted(&rs);
            if rs.update("R", &Edit::MoveStories { before, ids }).is_ok() {
                prop_assert_eq!(sorted(&rs), was);
            }
        }
    }
}
