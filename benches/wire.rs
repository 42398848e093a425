//! Wire-layer benchmark: decode + parse of roCreate messages from UTF-16BE bytes, and the
//! write path (typed message → XML → UTF-16BE bytes).
//!
//! `cargo bench --bench wire`. Criterion prints time per message; the throughput lines give
//! messages/s (elements) and MB/s (bytes) for the same runs.

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mos_gateway::mos::codec::{CodecConfig, MosCodec, WireEncoding, encode_text};
use mos_gateway::mos::{Mos, ParseOptions};
use std::hint::black_box;
use tokio_util::codec::Decoder;

use mos_gateway::mos::sample::ro_create;

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
