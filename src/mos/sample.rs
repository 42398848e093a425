//! A realistic running order of any size, for benchmarks and profiling (the same input
//! everywhere, so figures compare).

use super::messages::RoCreate;
use super::structures::{Item, RoHeader, RunningOrder, Story};
use super::{Message, Mos};

/// roCreate with `stories` stories of `items` items each, with ENPS-style composite story
/// IDs and NMOS-style object IDs.
pub fn ro_create(stories: usize, items: usize) -> Mos {
    let stories = (0..stories)
        .map(|s| Story {
            id: format!("HOST;P_NEWS\\W\\R_{s:06};{s:08X}-0000-4000-8000-00000000A1B2"),
            slug: Some(format!("Story {s}: Oslo city council votes on the budget")),
            number: Some(format!("A{s}")),
            metadata: Vec::new(),
            items: (0..items)
                .map(|i| Item {
                    id: i.to_string(),
                    slug: Some(format!("CAM{} live", i % 4 + 1)),
                    object_id: format!("{s:08x}-7d4e-4a43-9a2e-{i:012x}"),
                    mos_id: "nmos.gateway.mos".into(),
                    channel: Some(format!("CAM{}", i % 4 + 1)),
                    ed_start: Some(0),
                    ed_dur: Some(250 * (i as u32 + 1)),
                    ..Item::default()
                })
                .collect(),
        })
        .collect();
    Mos::new(
        "nmos.gateway.mos",
        "ENPS.NCS",
        Some("12345".into()),
        Message::RoCreate(RoCreate(RunningOrder {
            header: RoHeader {
                id: "RO-EVENING-NEWS".into(),
                slug: Some("Evening news 18:00".into()),
                ..RoHeader::default()
            },
            stories,
        })),
    )
}
