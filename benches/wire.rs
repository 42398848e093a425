//! Wire-layer benchmark: decode + parse of roCreate messages from UTF-16BE bytes, and the
//! write path (typed message → XML → UTF-16BE bytes).
//!
//! `cargo bench --bench wire`. Criterion prints time per message; the throughput lines give
//! messages/s (elements) and MB/s (bytes) for the same runs.

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mos_gateway::mos::codec::{CodecConfig, MosCodec, WireEncoding, encode_text};
use mos_gateway::mos::messages::RoCreate;
use mos_gateway::mos::structures::{Item, RoHeader, RunningOrder, Story};
use mos_gateway::mos::{Message, Mos, ParseOptions};
use std::hint::black_box;
use tokio_util::codec::Decoder;

/// A realistic running order: `stories` stories with `items` items each.
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

fn decode_and_parse(wire: &[u8]) -> Mos {
    let mut codec = MosCodec::new(CodecConfig::default());
    let mut buf = BytesMut::from(wire);
    let frame = codec.decode(&mut buf).unwrap().unwrap().unwrap();
    Mos::parse(&frame.text, ParseOptions::lenient())
        .unwrap()
        .mos
}

fn bench(c: &mut Criterion) {
    for (stories, items) in [(50, 10), (2000, 10)] {
        let mos = ro_create(stories, items);
        let wire = encode_text(&mos.to_xml(), WireEncoding::Utf16Be);
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
            g.bench_function(BenchmarkId::new("write+encode", &label), |b| {
                b.iter(|| encode_text(&black_box(&mos).to_xml(), WireEncoding::Utf16Be))
            });
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
