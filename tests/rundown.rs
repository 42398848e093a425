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

#[path = "common/edit_tables.rs"]
mod edit_tables;
use edit_tables::{action, six_stories, tgt, xml_story};

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

/// RO1 with stories 1..6; story 1 holds items 1..6.
fn six() -> Rundowns {
    let mut rs = Rundowns::new();
    let stories = six_stories();
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
    edit_tables::legacy_story_messages(run_table);
}

#[test]
fn every_legacy_item_message_edits_the_item_order_of_one_story() {
    edit_tables::legacy_item_messages(run_table);
}

#[test]
fn element_action_story_cases_follow_the_reference_table() {
    edit_tables::element_action_story_cases(run_table);
}

#[test]
fn element_action_item_cases_follow_the_reference_table() {
    edit_tables::element_action_item_cases(run_table);
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
