//! Fuzz target: a sequence of MOS documents (separated by NUL bytes) parsed leniently and
//! applied, one after another, to the pure running-order model.
//!
//! Checks, beyond "never panics" (the model's own invariants are `debug_assert`ed at each
//! commit, and fuzz builds keep debug assertions):
//! - applying by reference and by value give the same result;
//! - a refused edit leaves every running order as it was;
//! - every running order held survives what a restart or a roReq does to it: written as
//!   roList, parsed back and rebuilt, it is the same running order.
//!
//! Run with `cargo +nightly fuzz run rundown fuzz/seeds/rundown` from the repository root
//! (`fuzz/seeds/rundown` holds a few edit sequences to start from).

#![no_main]

use libfuzzer_sys::fuzz_target;
use mos_gateway::mos::messages::RoList;
use mos_gateway::mos::{Message, Mos, ParseOptions};
use mos_gateway::rundown::{Rundown, Rundowns, edit_from_message};

fuzz_target!(|data: &[u8]| {
    let mut rundowns = Rundowns::new();
    for doc in data.split(|b| *b == 0).take(64) {
        let Ok(text) = std::str::from_utf8(doc) else {
            continue;
        };
        let Ok(parsed) = Mos::parse(text, ParseOptions::lenient()) else {
            continue;
        };
        let Some(Ok((ro_id, edit))) = edit_from_message(&parsed.mos.message) else {
            continue;
        };
        let before = rundowns.clone();
        let by_ref = rundowns.apply(&ro_id, &edit);
        let by_value = rundowns.apply_owned(&ro_id, edit.clone());
        assert_eq!(by_ref, by_value, "apply and apply_owned disagree");
        match by_ref {
            Ok(applied) => rundowns.commit(&ro_id, applied),
            Err(_) => assert_eq!(rundowns, before, "a refused edit changed the model"),
        }
        if let Some(rundown) = rundowns.get(&ro_id) {
            check_round_trip(rundown);
        }
    }
});

/// A running order written as roList and read back is the same running order (what a
/// roReq answers, and what the store's snapshot keeps).
fn check_round_trip(rundown: &Rundown) {
    let ro = rundown.to_running_order();
    let xml = Mos::new("M", "N", Some("1".into()), Message::RoList(RoList(ro.clone()))).to_xml();
    let parsed = Mos::parse(&xml, ParseOptions::lenient())
        .unwrap_or_else(|e| panic!("our roList does not parse: {e:?}\n{xml}"));
    let Message::RoList(RoList(back)) = parsed.mos.message else {
        panic!("our roList reads as another message:\n{xml}");
    };
    assert_eq!(back, ro, "roList round trip changed the running order:\n{xml}");
    let rebuilt = Rundown::from_running_order(back)
        .unwrap_or_else(|e| panic!("a held running order is refused when read back: {e:?}"));
    assert_eq!(
        rebuilt.to_running_order(),
        ro,
        "rebuilding changed the running order"
    );
}
