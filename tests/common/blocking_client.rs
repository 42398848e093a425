//! A blocking NCS client speaking UTF-16BE, for tests that drive the `mos-gateway` binary
//! from a plain thread.
#![allow(dead_code)] // each test crate uses its own part

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use mos_gateway::mos::codec::{CodecConfig, MosCodec, WireEncoding, encode_text};
use mos_gateway::mos::{Mos, ParseOptions};
use tokio_util::codec::Decoder;

/// One connection to the gateway; replies time out after 10 s.
pub struct Client {
    stream: TcpStream,
    codec: MosCodec,
    buf: BytesMut,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Self {
            stream,
            codec: MosCodec::new(CodecConfig::default()),
            buf: BytesMut::new(),
        }
    }

    pub fn send(&mut self, text: &str) -> std::io::Result<()> {
        self.stream
            .write_all(&encode_text(text, WireEncoding::Utf16Be))
    }

    /// The next reply; an error when the connection ends first.
    pub fn recv(&mut self) -> std::io::Result<Mos> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(item) = self.codec.decode(&mut self.buf)? {
                let frame = item.map_err(|e| std::io::Error::other(e.reason()))?;
                let parsed = Mos::parse(&frame.text, ParseOptions::strict())
                    .unwrap_or_else(|e| panic!("reply not valid: {}\n{}", e.error, frame.text));
                return Ok(parsed.mos);
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a whole message and returns its reply, checking that it echoes `id`.
    pub fn request(&mut self, id: &str, text: &str) -> std::io::Result<Mos> {
        self.send(text)?;
        let reply = self.recv()?;
        assert_eq!(reply.message_id.as_deref(), Some(id), "reply echoes the ID");
        Ok(reply)
    }
}
