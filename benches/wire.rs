//! Wire-layer benchmark: decode + parse of roCreate messages from UTF-16BE bytes, and the
//! write path (typed message → XML → UTF-16BE bytes).
//!
//! `cargo bench --bench wire`. Criterion prints time per message; the throughput lines give
//! messages/s (elements) and MB/s (bytes) for the same runs. Two baselines run alongside
//! (in the `roCreate-msgs` group): `decode` (framing + UTF-16 → UTF-8 alone) and
//! `quick-xml-events` (quick-xml's event reader alone over the decoded text), the floor any
//! parser built on quick-xml stands on.

#[path = "common/wire_steps.rs"]
mod wire_steps;
use wire_steps::{decode_frame, quick_xml_events};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mos_gateway::mos::codec::{WireEncoding, encode_text};
use mos_gateway::mos::{Mos, ParseOptions};
use std::hint::black_box;

use mos_gateway::mos::sample::ro_create;

/// The gateway binary's allocator, so the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn decode(wire: &[u8]) -> String {
    decode_frame(wire).text
}

fn decode_and_parse(wire: &[u8]) -> Mos {
    Mos::parse(&decode(wire), ParseOptions::lenient())
        .unwrap()
        .mos
}

fn bench(c: &mut Criterion) {
    for (stories, items) in [(50, 10), (2000, 10)] {
        let mos = ro_create(stories, items);
        let text = mos.to_xml();
        let wire = encode_text(&text, WireEncoding::Utf16Be);
        assert_eq!(decode_and_parse(&wire), mos);
        let label = format!("{stories}x{items}");
        for (unit, throughput) in [
            ("msgs", Throughput::Elements(1)),
            ("bytes", Throughput::Bytes(wire.len() as u64)),
        ] {
            let mut g = c.benchmark_group(format!("roCreate-{unit}"));
            g.throughput(throughput);
            if stories > 100 {
                g.sample_size(20);
            }
            g.bench_function(BenchmarkId::new("decode+parse", &label), |b| {
                b.iter(|| decode_and_parse(black_box(&wire)))
            });
            if unit == "msgs" {
                // Same-run baselines: the framing/decoding step alone, and quick-xml's
                // reader alone over the decoded text.
                g.bench_function(BenchmarkId::new("decode", &label), |b| {
                    b.iter(|| decode(black_box(&wire)))
                });
                g.bench_function(BenchmarkId::new("quick-xml-events", &label), |b| {
                    b.iter(|| quick_xml_events(black_box(&text)))
                });
            }
            g.bench_function(BenchmarkId::new("write+encode", &label), |b| {
                b.iter(|| encode_text(&black_box(&mos).to_xml(), WireEncoding::Utf16Be))
            });
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
