//! Every running-order edit of the model's tables (`tests/common/edit_tables.rs`: every
//! legacy roStory*/roItem* message and every roElementAction case) sent over TCP, each
//! checked with roReq: the story order, or the item order of the story the case names, or
//! the NACK's reason with the running order unchanged.

use std::cell::RefCell;

use mos_gateway::mos::Message;

#[path = "../common/edit_tables.rs"]
#[allow(dead_code)]
mod edit_tables;
use edit_tables::Case;

use crate::support::*;

/// A case with owned text.
type Owned = (String, Option<String>, Result<String, String>);

fn all_cases() -> Vec<Owned> {
    let all = RefCell::new(Vec::new());
    let keep = |table: &[Case<'_>]| {
        all.borrow_mut()
            .extend(table.iter().map(|(body, story, want)| {
                (
                    body.to_string(),
                    story.map(str::to_string),
                    want.map(str::to_string).map_err(str::to_string),
                )
            }))
    };
    edit_tables::legacy_story_messages(keep);
    edit_tables::legacy_item_messages(keep);
    edit_tables::element_action_story_cases(keep);
    edit_tables::element_action_item_cases(keep);
    all.into_inner()
}

/// The story order, or the item order of `story`, as roReq shows it.
fn view(order: &[(String, Vec<String>)], story: Option<&str>) -> String {
    match story {
        None => ids(order).join(" "),
        Some(s) => order
            .iter()
            .find(|(id, _)| id == s)
            .map(|(_, items)| items.join(" "))
            .unwrap_or_else(|| panic!("story {s} not in {order:?}")),
    }
}

#[tokio::test]
async fn every_edit_of_the_model_tables_over_tcp_checked_with_ro_req() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(config(dir.path(), "")).await;
    let mut ncs = Ncs::connect(gw.upper).await;
    let create = format!(
        "<roCreate><roID>RO1</roID><roSlug>6PM</roSlug>{}</roCreate>",
        edit_tables::six_stories()
    );
    let cases = all_cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    for (body, story, want) in &cases {
        // A fresh RO1 (a roCreate for a held roID replaces it).
        ncs.ok(&create).await;
        let before = ncs.order("RO1").await;
        let r = ncs.request(body).await;
        let Message::RoAck(ack) = &r.message else {
            panic!("{body}: {:?}", r.message)
        };
        let after = ncs.order("RO1").await;
        match want {
            Ok(order) => {
                assert!(ack.is_ok(), "{body}: refused: {}", ack.status);
                assert_eq!(&view(&after, story.as_deref()), order, "{body}");
            }
            Err(reason) => {
                assert_eq!(&ack.status, reason, "{body}");
                assert_eq!(after, before, "refused {body} changed the running order");
            }
        }
    }
    gw.stop().await;
}
