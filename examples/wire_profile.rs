//! Profiling harness for the wire path, one phase at a time, for `valgrind --tool=callgrind`
//! or `perf stat` (Criterion's warm-up and adaptive iteration counts make its runs
//! unsuitable for instruction counts).
//!
//! `cargo run --release --example wire_profile -- PHASE [STORIES] [ITEMS] [REPEAT]` where
//! PHASE is `decode` (UTF-16BE → text), `parse` (text → typed message), `tokenize`
//! (quick-xml's event reader alone over the text, the floor under `parse`), `tree` (the XML
//! tree alone, read in two parts at once when a helper is free), `tree1` (in one part),
//! `decode+parse`,
//! `write` (typed message → text), `encode` (text → UTF-16BE) or `write+encode`. Only the
//! chosen phase is repeated; building the input happens once, before it.

#[path = "../benches/common/wire_steps.rs"]
mod wire_steps;
use wire_steps::{decode_frame, quick_xml_events};

use mos_gateway::mos::codec::{WireEncoding, encode_text};
use mos_gateway::mos::{Mos, ParseOptions};
use std::hint::black_box;
use std::time::Instant;

use mos_gateway::mos::sample::ro_create;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[inline(never)]
fn decode(wire: &[u8]) -> String {
    decode_frame(wire).text
}

#[inline(never)]
fn parse(text: &str) -> Mos {
    Mos::parse(text, ParseOptions::lenient()).unwrap().mos
}

/// quick-xml's event reader alone over the text: the floor under `parse`.
#[inline(never)]
fn tokenize(text: &str) -> usize {
    quick_xml_events(text)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let phase = args.first().map_or("decode+parse", String::as_str);
    let num = |i: usize, d: usize| args.get(i).map_or(d, |s| s.parse().unwrap());
    let (stories, items, repeat) = (num(1, 2000), num(2, 10), num(3, 1));
    let mos = ro_create(stories, items);
    let text = mos.to_xml();
    let wire = encode_text(&text, WireEncoding::Utf16Be);
    let mut times = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let t = Instant::now();
        match phase {
            "decode" => drop(black_box(decode(black_box(&wire)))),
            "parse" => drop(black_box(parse(black_box(&text)))),
            "tree" => drop(black_box(
                mos_gateway::mos::xml::Document::parse(black_box(&text)).unwrap(),
            )),
            "tree1" => drop(black_box(
                mos_gateway::mos::xml::Document::parse_in_one_part(black_box(&text)).unwrap(),
            )),
            "tokenize" => drop(black_box(tokenize(black_box(&text)))),
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
        times.push(t.elapsed());
    }
    times.sort();
    let (min, median) = (times[0], times[times.len() / 2]);
    eprintln!(
        "{phase} {stories}x{items}: min {min:?}, median {median:?} over {repeat} runs ({} wire bytes)",
        wire.len()
    );
}
