//! Test support: a gateway started in-process on free loopback ports, and an NCS client
//! that speaks UTF-16BE over real TCP.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use mos_gateway::config::Config;
use mos_gateway::mos::codec::{CodecConfig, MosCodec, WireEncoding, encode_text};
use mos_gateway::mos::{Message, Mos, ParseOptions};
use mos_gateway::server::{Gateway, NcsLinks, StatusSender};
use mos_gateway::session::PortRole;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

pub const MOS_ID: &str = "nmos.gateway.mos";
pub const NCS_ID: &str = "ENPS.NCS";

/// Three free loopback ports.
pub fn free_ports() -> [u16; 3] {
    let ls: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    [0, 1, 2].map(|i| ls[i].local_addr().unwrap().port())
}

pub fn config(data_dir: &Path, extra_ncs: &str) -> Config {
    config_with(data_dir, 1, 2, extra_ncs)
}

/// A configuration whose NCS listens on `ncs_lower`/`ncs_upper` (for the gateway's
/// outbound links).
pub fn config_with(data_dir: &Path, ncs_lower: u16, ncs_upper: u16, extra_ncs: &str) -> Config {
    let text = config_text(data_dir, ncs_lower, ncs_upper, extra_ncs);
    Config::from_toml_str(&text, "test").unwrap()
}

/// The text of [`config_with`]'s configuration (free loopback ports), for tests that add
/// tables of their own after the `[[ncs]]` table.
pub fn config_text(data_dir: &Path, ncs_lower: u16, ncs_upper: u16, extra_ncs: &str) -> String {
    let [l, u, q] = free_ports();
    format!(
        r#"
[mos]
id = "{MOS_ID}"
listen = "127.0.0.1"
lower_port = {l}
upper_port = {u}
query_port = {q}
data_dir = "{}"

[[ncs]]
id = "{NCS_ID}"
host = "127.0.0.1"
lower_port = {ncs_lower}
upper_port = {ncs_upper}
{extra_ncs}
"#,
        data_dir.display()
    )
}

pub struct Running {
    pub lower: SocketAddr,
    pub upper: SocketAddr,
    #[allow(dead_code)] // the query-port family arrives with the objects issue
    pub query: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
    #[allow(dead_code)] // used by the outbound tests
    pub links: Option<NcsLinks>,
    #[allow(dead_code)] // used by the status tests
    pub status: StatusSender,
    #[allow(dead_code)] // used by the object tests
    pub catalogue: std::sync::Arc<mos_gateway::objects::MemoryCatalogue>,
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

pub async fn start(config: Config) -> Running {
    let gw = Gateway::bind(config).await.unwrap();
    let lower = gw.local_addr(PortRole::Lower).unwrap();
    let upper = gw.local_addr(PortRole::Upper).unwrap();
    let query = gw.local_addr(PortRole::Query).unwrap();
    let links = gw.links(NCS_ID);
    let status = gw.status_sender();
    let catalogue = gw.catalogue();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(gw.run(shutdown.clone()));
    Running {
        lower,
        upper,
        query,
        shutdown,
        task,
        links,
        status,
        catalogue,
    }
}

/// An NCS-side connection to one of the gateway's ports.
pub struct Ncs {
    rd: FramedRead<OwnedReadHalf, MosCodec>,
    wr: OwnedWriteHalf,
    pub encoding: WireEncoding,
    next_id: u32,
}

impl Ncs {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::connect_with(addr, WireEncoding::Utf16Be).await
    }

    pub async fn connect_with(addr: SocketAddr, encoding: WireEncoding) -> Self {
        let s = TcpStream::connect(addr).await.unwrap();
        Self::from_stream(s, encoding)
    }

    /// A connection from another loopback address (`127.0.0.x`): a peer that is not the
    /// configured NCS's address.
    #[allow(dead_code)]
    pub async fn connect_from(source: std::net::Ipv4Addr, addr: SocketAddr) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((source, 0).into()).unwrap();
        let s = socket.connect(addr).await.unwrap();
        Self::from_stream(s, WireEncoding::Utf16Be)
    }

    fn from_stream(s: TcpStream, encoding: WireEncoding) -> Self {
        let (rd, wr) = s.into_split();
        Self {
            rd: FramedRead::new(rd, MosCodec::new(CodecConfig::default())),
            wr,
            encoding,
            next_id: 100,
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.wr.write_all(bytes).await.unwrap();
    }

    pub async fn send_text(&mut self, text: &str) {
        let b = encode_text(text, self.encoding);
        self.send_raw(&b).await;
    }

    /// The next reply as text (fails after 5 s).
    pub async fn recv_text(&mut self) -> String {
        let item = tokio::time::timeout(Duration::from_secs(5), self.rd.next())
            .await
            .expect("no reply within 5 s")
            .expect("connection closed")
            .expect("io");
        item.expect("reply framing").text
    }

    pub async fn recv(&mut self) -> Mos {
        let t = self.recv_text().await;
        Mos::parse(&t, ParseOptions::strict())
            .unwrap_or_else(|e| panic!("reply not strictly valid: {e}\n{t}"))
            .mos
    }

    /// The next reply, read leniently (for replies to off-spec requests, which echo the
    /// missing messageID or the unknown envelope).
    pub async fn recv_lenient(&mut self) -> Mos {
        let t = self.recv_text().await;
        Mos::parse(&t, ParseOptions::lenient())
            .unwrap_or_else(|e| panic!("{e}\n{t}"))
            .mos
    }

    /// Nothing arrives within `ms`.
    /// The gateway closes the connection within `ms`, answering nothing.
    #[allow(dead_code)]
    pub async fn expect_closed(&mut self, ms: u64) {
        match tokio::time::timeout(Duration::from_millis(ms), self.rd.next()).await {
            Ok(None) | Ok(Some(Err(_))) => {}
            Ok(Some(Ok(x))) => panic!("answered instead of closed: {x:?}"),
            Err(_) => panic!("still open after {ms} ms"),
        }
    }

    pub async fn expect_silence(&mut self, ms: u64) {
        if let Ok(Some(x)) = tokio::time::timeout(Duration::from_millis(ms), self.rd.next()).await {
            panic!("unexpected reply: {x:?}");
        }
    }

    /// Wraps a message body in our envelope with a fresh messageID; returns the ID.
    pub fn envelope(&mut self, body: &str) -> (String, String) {
        self.next_id += 1;
        let id = self.next_id.to_string();
        (
            id.clone(),
            format!(
                "<mos><mosID>{MOS_ID}</mosID><ncsID>{NCS_ID}</ncsID><messageID>{id}</messageID>{body}</mos>"
            ),
        )
    }

    /// Sends `body` and returns the reply.
    pub async fn request(&mut self, body: &str) -> Mos {
        let (id, text) = self.envelope(body);
        self.send_text(&text).await;
        let reply = self.recv().await;
        assert_eq!(
            reply.message_id.as_deref(),
            Some(id.as_str()),
            "reply echoes the messageID"
        );
        reply
    }

    /// Sends `body`, expects roAck OK.
    pub async fn ok(&mut self, body: &str) {
        let r = self.request(body).await;
        match &r.message {
            Message::RoAck(a) if a.is_ok() => {}
            other => panic!("expected roAck OK for {body}, got {other:?}"),
        }
    }

    /// Sends `body`, expects a roAck error; returns its text.
    pub async fn refused(&mut self, body: &str) -> String {
        let r = self.request(body).await;
        match r.message {
            Message::RoAck(a) if !a.is_ok() => a.status,
            other => panic!("expected roAck error for {body}, got {other:?}"),
        }
    }

    /// roReq: the story IDs, each with its item IDs.
    pub async fn order(&mut self, ro_id: &str) -> Vec<(String, Vec<String>)> {
        let r = self
            .request(&format!("<roReq><roID>{ro_id}</roID></roReq>"))
            .await;
        let Message::RoList(list) = r.message else {
            panic!("expected roList, got {:?}", r.message)
        };
        list.0
            .stories
            .iter()
            .map(|s| (s.id.clone(), s.items.iter().map(|i| i.id.clone()).collect()))
            .collect()
    }
}

/// `<story>` with items, each item referencing an object.
pub fn story(id: &str, items: &[&str]) -> String {
    let items: String = items
        .iter()
        .map(|i| {
            format!(
                "<item><itemID>{i}</itemID><objID>OBJ-{i}</objID><mosID>{MOS_ID}</mosID></item>"
            )
        })
        .collect();
    format!("<story><storyID>{id}</storyID><storySlug>Story {id}</storySlug>{items}</story>")
}

pub fn ro_create(ro_id: &str, stories: &[(&str, &[&str])]) -> String {
    let s: String = stories.iter().map(|(id, items)| story(id, items)).collect();
    format!("<roCreate><roID>{ro_id}</roID><roSlug>Show {ro_id}</roSlug>{s}</roCreate>")
}

/// Story IDs of an order.
pub fn ids(order: &[(String, Vec<String>)]) -> Vec<&str> {
    order.iter().map(|(s, _)| s.as_str()).collect()
}

/// The NCS side of the gateway's outbound links: a listener on "the NCS's" port.
pub struct FakeNcs {
    pub listener: tokio::net::TcpListener,
}

/// One connection the gateway opened to the fake NCS.
pub struct FakeConn {
    rd: FramedRead<OwnedReadHalf, MosCodec>,
    wr: OwnedWriteHalf,
}

impl FakeNcs {
    pub async fn bind() -> Self {
        Self {
            listener: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        }
    }
    pub fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }
    /// A port where no NCS listens yet (it is down): [`FakeNcs::up_on`] brings it up.
    #[allow(dead_code)]
    pub async fn down_port() -> u16 {
        Self::bind().await.port()
    }

    /// The NCS comes up on `port`.
    #[allow(dead_code)]
    pub async fn up_on(port: u16) -> Self {
        Self {
            listener: tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap(),
        }
    }

    pub async fn accept(&self) -> FakeConn {
        let (s, _) = tokio::time::timeout(Duration::from_secs(10), self.listener.accept())
            .await
            .expect("the gateway did not connect within 10 s")
            .unwrap();
        let (rd, wr) = s.into_split();
        FakeConn {
            rd: FramedRead::new(rd, MosCodec::new(CodecConfig::default())),
            wr,
        }
    }
}

impl FakeConn {
    /// The next message from the gateway (heartbeats are answered and skipped unless
    /// `keep_heartbeats`).
    pub async fn recv(&mut self) -> Mos {
        loop {
            let item = tokio::time::timeout(Duration::from_secs(10), self.rd.next())
                .await
                .expect("nothing from the gateway within 10 s")
                .expect("closed")
                .expect("io")
                .expect("framing");
            let m = Mos::parse(&item.text, ParseOptions::strict())
                .unwrap_or_else(|e| panic!("gateway sent an invalid message: {e}\n{}", item.text))
                .mos;
            if let Message::Heartbeat(_) = m.message {
                let reply = Mos {
                    message_id: m.message_id.clone(),
                    ..m.clone()
                };
                self.send(&reply).await;
                continue;
            }
            return m;
        }
    }
    /// The next message from the gateway, unanswered; `None` when the gateway closes the
    /// connection or sends nothing within `ms`.
    #[allow(dead_code)]
    pub async fn next_or_closed(&mut self, ms: u64) -> Option<Mos> {
        let item = tokio::time::timeout(Duration::from_millis(ms), self.rd.next())
            .await
            .ok()??
            .ok()?
            .ok()?;
        Some(Mos::parse(&item.text, ParseOptions::strict()).unwrap().mos)
    }

    /// The next message from the gateway that answers one of ours (skips and answers
    /// the gateway's own heartbeat requests, whose messageIDs are not `mine`).
    pub async fn recv_any(&mut self) -> Mos {
        loop {
            let item = tokio::time::timeout(Duration::from_secs(10), self.rd.next())
                .await
                .expect("nothing from the gateway within 10 s")
                .expect("closed")
                .expect("io")
                .expect("framing");
            let m = Mos::parse(&item.text, ParseOptions::strict()).unwrap().mos;
            if m.message_id.as_deref() == Some("777") {
                return m;
            }
            if let Message::Heartbeat(_) = m.message {
                let reply = Mos {
                    message_id: m.message_id.clone(),
                    ..m.clone()
                };
                self.send(&reply).await;
            }
        }
    }

    /// Nothing but heartbeats arrives within `ms`.
    #[allow(dead_code)]
    pub async fn expect_nothing(&mut self, ms: u64) {
        let got = tokio::time::timeout(Duration::from_millis(ms), self.recv()).await;
        if let Ok(m) = got {
            panic!("unexpected message from the gateway: {:?}", m.message);
        }
    }

    pub async fn send(&mut self, m: &Mos) {
        self.wr
            .write_all(&encode_text(&m.to_xml(), WireEncoding::Utf16Be))
            .await
            .unwrap();
    }
    pub async fn reply(&mut self, to: &Mos, message: Message) {
        let r = Mos {
            message_id: to.message_id.clone(),
            message,
            ..to.clone()
        };
        self.send(&r).await;
    }
}
