//! The wire path's steps as the benches and `examples/wire_profile` time them: one frame
//! decoded from wire bytes, and quick-xml's event reader alone over decoded text (the floor
//! under parsing, since the parser is built on it).
#![allow(dead_code)] // each user takes its own part

use bytes::BytesMut;
use mos_gateway::mos::codec::{CodecConfig, Frame, MosCodec};
use tokio_util::codec::Decoder;

/// The first complete frame in `wire` (framing + decoding to UTF-8), with a fresh codec and
/// the bytes copied into a read buffer as a socket read would leave them.
pub fn decode_frame(wire: &[u8]) -> Frame {
    let mut codec = MosCodec::new(CodecConfig::default());
    let mut buf = BytesMut::from(wire);
    codec
        .decode(&mut buf)
        .expect("decoding")
        .expect("a complete message")
        .expect("a valid frame")
}

/// quick-xml's event reader over `text`, every event read and dropped; returns how many.
pub fn quick_xml_events(text: &str) -> usize {
    let mut reader = quick_xml::reader::Reader::from_str(text);
    reader.config_mut().check_end_names = false;
    let mut events = 0;
    while !matches!(
        reader.read_event(),
        Ok(quick_xml::events::Event::Eof) | Err(_)
    ) {
        events += 1;
    }
    events
}
