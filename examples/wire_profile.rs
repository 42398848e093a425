//! Profiling harness for the wire path, one phase at a time, for `valgrind --tool=callgrind`
//! or `perf stat` (Criterion's warm-up and adaptive iteration counts make its runs
//! unsuitable for instruction counts).
//!
//! `cargo run --release --example wire_profile -- PHASE [STORIES] [ITEMS] [REPEAT]` where
//! PHASE is `decode` (UTF-16BE → text), `parse` (text → typed message), `decode+parse`,
//! `write` (typed message → text), `encode` (text → UTF-16BE) or `write+encode`. Only the
//! chosen phase is repeated; building the input happens once, before it.

use bytes::BytesMut;
use mos_gateway::mos::codec::{CodecConfig, MosCodec, WireEncoding, encode_text};
use mos_gateway::mos::messages::RoCreate;
use mos_gateway::mos::structures::{Item, RoHeader, RunningOrder, Story};
use mos_gateway::mos::{Message, Mos, ParseOptions};
use std::hint::black_box;
use std::time::Instant;
use tokio_util::codec::Decoder;

/// The benchmark's running order (same as `benches/wire.rs`).
fn ro_create(stories: usize, items: usize) -> Mos {
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
                    object_id: format!("{:08x}-7d4e-4a43-9a2e-{:012x}", s, i),
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

#[inline(never)]
fn decode(wire: &[u8]) -> String {
    let mut codec = MosCodec::new(CodecConfig::default());
    let mut buf = BytesMut::from(wire);
    codec.decode(&mut buf).unwrap().unwrap().unwrap().text
}

#[inline(never)]
fn parse(text: &str) -> Mos {
    Mos::parse(text, ParseOptions::lenient()).unwrap().mos
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let phase = args.first().map_or("decode+parse", String::as_str);
    let num = |i: usize, d: usize| args.get(i).map_or(d, |s| s.parse().unwrap());
    let (stories, items, repeat) = (num(1, 2000), num(2, 10), num(3, 1));
    let mos = ro_create(stories, items);
    let text = mos.to_xml();
    let wire = encode_text(&text, WireEncoding::Utf16Be);
    let t = Instant::now();
    for _ in 0..repeat {
        match phase {
            "decode" => drop(black_box(decode(black_box(&wire)))),
            "parse" => drop(black_box(parse(black_box(&text)))),
            "decode+parse" => drop(black_box(parse(&decode(black_box(&wire))))),
            "write" => drop(black_box(black_box(&mos).to_xml())),
            "encode" => drop(black_box(encode_text(
                black_box(&text),
                WireEncoding::Utf16Be,
            ))),
            "write+encode" => drop(black_box(encode_text(
                &black_box(&mos).to_xml(),
                WireEncoding::Utf16Be,
            ))),
            other => panic!("unknown phase {other:?}"),
        }
    }
    let per = t.elapsed() / repeat as u32;
    eprintln!(
        "{phase} {stories}x{items}: {per:?} per run ({} wire bytes)",
        wire.len()
    );
}
