//! A blocking MOS client for the benches: one connection, UTF-16BE out, whole `<mos>`
//! documents in (framed by the gateway's own codec).
#![allow(dead_code)] // each bench uses its own part

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use mos_gateway::mos::codec::{CodecConfig, Frame, MosCodec};
use tokio_util::codec::Decoder;

/// A MOS connection to the gateway.
pub struct MosClient {
    pub stream: TcpStream,
    codec: MosCodec,
    buf: BytesMut,
    chunk: Vec<u8>,
    next_id: u64,
}

impl MosClient {
    /// Connects (TCP_NODELAY, 30 s read timeout).
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connecting to the gateway");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        Self {
            stream,
            codec: MosCodec::new(CodecConfig::default()),
            buf: BytesMut::with_capacity(64 * 1024),
            chunk: vec![0; 64 * 1024],
            next_id: 0,
        }
    }

    /// The next messageID of this connection.
    pub fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The next whole document from the gateway.
    pub fn recv(&mut self) -> Frame {
        loop {
            if let Some(item) = self.codec.decode(&mut self.buf).expect("reading a reply") {
                return item.expect("a well-framed reply");
            }
            let n = self.stream.read(&mut self.chunk).expect("reading a reply");
            assert!(n > 0, "the gateway closed the connection");
            self.buf.extend_from_slice(&self.chunk[..n]);
        }
    }

    /// Reads the reply to message `id`; checks that it echoes the ID and contains `expect`.
    pub fn expect_reply(&mut self, id: u64, expect: &str) {
        let reply = self.recv();
        let echoed = format!("<messageID>{id}</messageID>");
        assert!(
            reply.text.contains(&echoed) && reply.text.contains(expect),
            "expected {expect} for message {id}, got:\n{}",
            reply.text
        );
    }

    /// Sends `wire` (message `id`) and checks its reply ([`MosClient::expect_reply`]).
    pub fn round_trip(&mut self, id: u64, wire: &[u8], expect: &str) {
        self.stream.write_all(wire).expect("sending");
        self.expect_reply(id, expect);
    }
}
