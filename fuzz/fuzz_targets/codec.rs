//! Fuzz target: arbitrary bytes, split at a fuzzer-chosen point, through the MOS framing
//! decoder with each configured encoding and with auto-detection.
//!
//! Run with `cargo +nightly fuzz run codec` from the repository root.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mos_gateway::mos::codec::{CodecConfig, Frame, MosCodec, WireEncoding, decode_bytes};
use tokio_util::codec::Decoder;

/// Small enough that the fuzzer reaches the oversize paths.
const MAX_MESSAGE_BYTES: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the split point; the rest is the stream.
    let (split, stream) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => return,
    };
    let split = split % (stream.len() + 1);
    let encodings = [
        None,
        Some(WireEncoding::Utf16Be),
        Some(WireEncoding::Utf16Le),
        Some(WireEncoding::Utf8),
    ];
    for encoding in encodings {
        let config = CodecConfig {
            encoding,
            max_message_bytes: MAX_MESSAGE_BYTES,
        };
        decode_stream(config, &stream[..split], &stream[split..]);
    }
    let _ = decode_bytes(stream);
});

/// Feeds two reads and the end of stream, checking the decoder's invariants.
fn decode_stream(config: CodecConfig, first: &[u8], second: &[u8]) {
    let mut codec = MosCodec::new(config);
    let mut buf = BytesMut::new();
    for chunk in [first, second] {
        buf.extend_from_slice(chunk);
        while let Some(item) = codec.decode(&mut buf).expect("decode never fails") {
            if let Ok(frame) = item {
                check_frame(&frame);
            }
        }
        // Bounded buffer: one message under the limit plus the lookahead of one read.
        assert!(buf.len() <= MAX_MESSAGE_BYTES + chunk.len() + 64);
    }
    while let Some(item) = codec.decode_eof(&mut buf).expect("decode_eof never fails") {
        if let Ok(frame) = item {
            check_frame(&frame);
        }
    }
}

/// Invariants of a decoded frame; later steps (e.g. parsing the message) go here.
fn check_frame(frame: &Frame) {
    assert!(frame.text.starts_with("<mos"));
    assert!(frame.text.ends_with('>'));
    assert!(frame.wire_bytes <= MAX_MESSAGE_BYTES);
}
