//! The NMOS bridge against the virtual studio over loopback: take latency and a 10,000-sender
//! catalogue.
//!
//! `cargo bench --bench take` starts, in-process (one tokio runtime, no log output), the
//! virtual NMOS studio, the gateway and its NMOS service, and measures:
//!
//! 1. **Catalogue** (first, so the memory figures start from a clean process): a studio of
//!    `TAKE_CAT_DEVICES` devices × `TAKE_CAT_SENDERS` senders (default 1,000 × 10 = 10,000
//!    senders, each device its own node). From the gateway's start: when discovery holds every
//!    sender, when the MOS object catalogue holds every sender object, and — an NCS sending
//!    mosReqAll (pause 0) on the lower port as soon as it does — when the complete mosListAll
//!    has arrived at the NCS's lower port (a fake NCS that acknowledges everything, including
//!    the mosObj NEW pushes that share that link). Memory: VmRSS (`/proc/self/status`) before
//!    the studio, after the studio registered everything, after the mosListAll, and after the
//!    gateway was stopped again (what its stop gave back is the gateway's share, the rest the
//!    studio's), each after `malloc_trim` (glibc) so freed heap does not count; and the peak
//!    (VmHWM). The studio and the gateway share the runtime: the times
//!    include the studio serving the Query API (a profile of this bench puts most of the CPU
//!    there — its paging copies the whole collection for every page), so they are an upper
//!    bound of the gateway's own.
//! 2. **Take latency**: one receiver (MIX-IN1, destination PGM) and two items (CAM1, CAM2)
//!    taken alternately, so every take changes the route. Each take is READY (then waiting
//!    until the engine says the item is staged, i.e. the stage PATCH answered and the take's
//!    PATCH prepared) followed by EXECUTE (then waiting for PLAY of the item and STOP of the
//!    other at the NCS, so the next take starts from a quiet system). The latency is measured
//!    from the NCS's write of the EXECUTE message (instant taken just before the one
//!    `write` call over loopback, so it includes that call) to the instant the studio's
//!    handler received the activating PATCH (`RequestRecord.received`: request line, headers
//!    and body read by the studio's HTTP server — a little after its last byte hit the
//!    socket). Tracing marks taken in the same run split it in two: the NCS's write → the
//!    gateway's `msg` span (the frame read, decoded and parsed), and that → the PATCH at the
//!    studio. The take includes the all-or-nothing read of the receiver's `/active` right
//!    before the PATCH (the default `take_all_or_nothing = true`); a take that was not
//!    prepared (any other request between EXECUTE and the PATCH, such as a transport file
//!    fetched again) is counted and reported.
//!
//! Floors measured in the same run: the EXECUTE's size in bytes written by the bench's thread
//! and read by a task on the runtime (one way); a PATCH like the take's to another receiver of
//! the same studio with a pooled reqwest client, from a task on the same runtime — one way
//! (before `send` → the studio's `received`) and the round trip. The ratios compare the take
//! with the one-way floors (the take's path is both legs).
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `TAKE_TAKES` | 1000 | takes measured (and PATCHes of the floor) |
//! | `TAKE_WARMUP` | 50 | unmeasured takes (and PATCHes) first |
//! | `TAKE_CAT_DEVICES` / `TAKE_CAT_SENDERS` | 1000 / 10 | catalogue studio: devices × senders per device |
//! | `TAKE_SKIP_CATALOGUE` | unset | `1`: only the take latency |

#[path = "common/stats.rs"]
mod stats;
use stats::{Sample, env_usize, fmt_duration};
#[path = "common/mos_client.rs"]
mod mos_client;
use mos_client::MosClient;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mos_gateway::config::Config;
use mos_gateway::mos::codec::{CodecConfig, MosCodec, WireEncoding, encode_text};
use mos_gateway::mos::messages::{MosAck, RoAck};
use mos_gateway::mos::{Message, Mos, ParseOptions};
use mos_gateway::nmos::schemas::SchemaSet;
use mos_gateway::nmos::service::NmosService;
use mos_gateway::nmos::studio::spec::{DeviceSpec, EndpointSpec, FormatSpec};
use mos_gateway::nmos::studio::{RequestRecord, StudioHandle, StudioSpec, VirtualStudio};
use mos_gateway::server::Gateway;
use mos_gateway::session::PortRole;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

// This bench keeps the system allocator although the gateway binary uses mimalloc: its
// memory figures rely on glibc's `malloc_trim` handing freed heap back before VmRSS is read.

// The gateway tests' helpers: the same identities, free ports and configuration text.
#[allow(dead_code)] // the bench takes only a few of them
#[path = "../tests/gateway/support.rs"]
mod support;
use support::{MOS_ID, NCS_ID, config_text};

const RO_ID: &str = "RO-TAKE";

const TAKE_STUDIO: &str = r#"
[[devices]]
label = "CAM1"
senders = [{ label = "CAM1-V", format = "video" }]

[[devices]]
label = "CAM2"
senders = [{ label = "CAM2-V", format = "video" }]

[[devices]]
label = "MIXER"
receivers = [{ label = "MIX-IN1", format = "video" }, { label = "MIX-IN2", format = "video" }]
"#;

/// A `/proc/self/status` field in KiB (0 where there is no procfs).
fn proc_status_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Hands freed heap pages back to the system (glibc keeps them otherwise), so that VmRSS
/// shows live memory rather than what the allocator held on to.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim only returns free pages of the heap to the system.
        unsafe {
            malloc_trim(0);
        }
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

// ---------------------------------------------------------------------------------------
// Tracing marks: the few gateway events the bench times or waits for.

#[derive(Debug)]
enum Mark {
    /// The gateway opened the `msg` span of a roCtrl: the frame is read, decoded and parsed.
    Decoded,
    /// The engine finished staging an item (stage PATCH answered, take prepared).
    Staged,
    /// A take was confirmed (PLAY).
    OnAir,
    /// A device call failed.
    Failed(String),
}

/// Sends the marks, with the instant they happened, to the bench's thread.
struct Probe {
    tx: std_mpsc::Sender<(Instant, Mark)>,
}

#[derive(Default)]
struct Fields {
    name: String,
    message: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "name" => self.name = value.to_owned(),
            "message" => self.message = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for Probe {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let now = Instant::now();
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if fields.name == "roCtrl" {
            let _ = self.tx.send((now, Mark::Decoded));
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let now = Instant::now();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mark = match fields.message.as_str() {
            "staged" => Mark::Staged,
            "on air" => Mark::OnAir,
            m if m.starts_with("take failed") || m.starts_with("staging failed") => {
                Mark::Failed(fields.message)
            }
            _ => return,
        };
        let _ = self.tx.send((now, mark));
    }
}

/// Installs the probe; only the callsites it needs are enabled, so the rest of the gateway's
/// logging costs nothing.
fn install_probe() -> std_mpsc::Receiver<(Instant, Mark)> {
    let (tx, rx) = std_mpsc::channel();
    let filter = filter_fn(|meta| match meta.target() {
        "mos_gateway::server" => meta.is_span() && meta.name() == "msg",
        "mos_gateway::nmos::takes" => meta.is_event(),
        _ => false,
    });
    let subscriber = tracing_subscriber::registry().with(Probe { tx }.with_filter(filter));
    tracing::subscriber::set_global_default(subscriber).expect("one tracing subscriber");
    rx
}

// ---------------------------------------------------------------------------------------
// The NCS: a blocking client of the gateway's ports, and fake listeners for the gateway's
// outbound links.

fn envelope(id: u64, body: &str) -> String {
    format!(
        "<mos><mosID>{MOS_ID}</mosID><ncsID>{NCS_ID}</ncsID><messageID>{id}</messageID>{body}</mos>"
    )
}

/// A message for `client` ready to write: (messageID, bytes).
fn wire(client: &mut MosClient, body: &str) -> (u64, Vec<u8>) {
    let id = client.fresh_id();
    (id, encode_text(&envelope(id, body), WireEncoding::Utf16Be))
}

/// Sends `body` in an envelope and checks that its reply contains `expect`.
fn request(client: &mut MosClient, body: &str, expect: &str) {
    let (id, bytes) = wire(client, body);
    client.round_trip(id, &bytes, expect);
}

/// What a fake NCS listener saw.
#[derive(Debug)]
enum NcsEvent {
    /// roItemStat: (itemID, status).
    Status(String, String),
    /// mosObj pushed (NEW / UPDATED / DELETED).
    MosObj,
    /// mosListAll fully received (instant taken before parsing it): its object count and its
    /// size in UTF-16 bytes.
    ListAll(Instant, usize, usize),
}

/// A fake NCS port: accepts the gateway's connections, acknowledges every message (roAck for
/// the upper port's statuses, mosAck for the lower port's objects) and reports them.
async fn fake_ncs(listener: tokio::net::TcpListener, tx: std_mpsc::Sender<NcsEvent>) {
    while let Ok((socket, _)) = listener.accept().await {
        let _ = socket.set_nodelay(true);
        let tx = tx.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = socket.into_split();
            // No size limit worth the name: a 10,000-object mosListAll is larger than the
            // default 16 MiB.
            let codec = MosCodec::new(CodecConfig {
                max_message_bytes: 1 << 30,
                ..CodecConfig::default()
            });
            let mut frames = FramedRead::new(rd, codec);
            while let Some(next) = frames.next().await {
                let frame = match next {
                    Ok(Ok(frame)) => frame,
                    Ok(Err(e)) => {
                        eprintln!("fake NCS: bad frame from the gateway: {e:?}");
                        continue;
                    }
                    Err(e) => {
                        eprintln!("fake NCS: read error: {e}");
                        break;
                    }
                };
                let arrived = Instant::now();
                let Ok(parsed) = Mos::parse(&frame.text, ParseOptions::lenient()) else {
                    eprintln!("fake NCS: an unparsable message from the gateway");
                    continue;
                };
                let m = parsed.mos;
                let (event, reply) = match &m.message {
                    Message::RoItemStat(s) => (
                        Some(NcsEvent::Status(s.item_id.clone(), s.status.clone())),
                        Message::RoAck(RoAck::ok(&s.ro_id)),
                    ),
                    Message::MosObj(o) => (
                        Some(NcsEvent::MosObj),
                        Message::MosAck(MosAck::ack(&o.id, "")),
                    ),
                    Message::MosListAll(all) => (
                        Some(NcsEvent::ListAll(
                            arrived,
                            all.objects.len(),
                            frame.text.encode_utf16().count() * 2,
                        )),
                        Message::MosAck(MosAck::ack("", "")),
                    ),
                    Message::Heartbeat(_) => (None, m.message.clone()),
                    _ => (None, Message::RoAck(RoAck::ok(""))),
                };
                let reply = Mos {
                    message_id: m.message_id.clone(),
                    message: reply,
                    ..m.clone()
                };
                let bytes = encode_text(&reply.to_xml(), WireEncoding::Utf16Be);
                if wr.write_all(&bytes).await.is_err() {
                    break;
                }
                if let Some(e) = event {
                    let _ = tx.send(e);
                }
            }
        });
    }
}

/// A fake NCS port on the runtime: its port and what it sees.
fn spawn_fake_ncs(runtime: &tokio::runtime::Runtime) -> (u16, std_mpsc::Receiver<NcsEvent>) {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("fake NCS listener");
    let port = listener.local_addr().expect("fake NCS port").port();
    let (tx, rx) = std_mpsc::channel();
    runtime.spawn(fake_ncs(listener, tx));
    (port, rx)
}

// ---------------------------------------------------------------------------------------
// The gateway.

fn gateway_config(
    data_dir: &std::path::Path,
    studio: &StudioHandle,
    ncs_lower: u16,
    ncs_upper: u16,
    destinations: &str,
) -> Config {
    let text = config_text(
        data_dir,
        ncs_lower,
        ncs_upper,
        &format!(
            "heartbeat_interval_s = 0\n\n[nmos]\nregistry = \"{}\"\nallow_http = true\n{destinations}",
            studio.query_url()
        ),
    );
    Config::from_toml_str(&text, "take bench").expect("bench configuration")
}

/// A gateway and its NMOS service, running on `runtime`.
struct RunningGateway {
    gateway_task: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
    service: NmosService,
    lower: SocketAddr,
    upper: SocketAddr,
    objects: Arc<mos_gateway::objects::MemoryCatalogue>,
}

fn start_gateway(runtime: &tokio::runtime::Runtime, config: Config) -> RunningGateway {
    let _enter = runtime.enter();
    let gw = runtime
        .block_on(Gateway::bind(config.clone()))
        .expect("starting the gateway");
    let shutdown = CancellationToken::new();
    let service = NmosService::start(&gw, &config, shutdown.clone()).expect("NMOS service");
    RunningGateway {
        lower: gw.local_addr(PortRole::Lower).expect("lower port"),
        upper: gw.local_addr(PortRole::Upper).expect("upper port"),
        objects: gw.catalogue(),
        gateway_task: runtime.spawn(gw.run(shutdown.clone())),
        shutdown,
        service,
    }
}

impl RunningGateway {
    fn stop(self, runtime: &tokio::runtime::Runtime) {
        self.shutdown.cancel();
        runtime.block_on(self.gateway_task).expect("gateway task");
        drop(self.service);
    }
}

fn start_studio(runtime: &tokio::runtime::Runtime, spec: StudioSpec) -> StudioHandle {
    let schemas = Arc::new(SchemaSet::load_default().expect("NMOS schemas"));
    runtime
        .block_on(VirtualStudio::start(
            spec,
            "127.0.0.1:0".parse().expect("address"),
            schemas,
        ))
        .expect("starting the virtual studio")
}

/// Polls `done` every millisecond for up to `limit`; the instant it first held.
fn poll_until(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Instant> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

// ---------------------------------------------------------------------------------------
// 1. Catalogue.

struct CatalogueResult {
    senders: usize,
    studio_ready: Duration,
    discovered: Duration,
    objects: Duration,
    list_all: Duration,
    req_to_list: Duration,
    pushes_before_list: usize,
    list_bytes: usize,
    rss_base: u64,
    rss_studio: u64,
    rss_after: u64,
    rss_after_raw: u64,
    rss_without_gateway: u64,
    hwm: u64,
}

fn catalogue_spec(devices: usize, senders: usize) -> StudioSpec {
    let devices = (0..devices)
        .map(|d| DeviceSpec {
            label: format!("DEV{d:04}"),
            id: None,
            description: String::new(),
            senders: (0..senders)
                .map(|s| EndpointSpec {
                    label: format!("DEV{d:04}-S{s:02}"),
                    id: None,
                    format: FormatSpec::Video,
                    transport: "urn:x-nmos:transport:rtp.mcast".to_owned(),
                    legs: 1,
                    channels: None,
                })
                .collect(),
            receivers: Vec::new(),
            channel_mapping: None,
        })
        .collect();
    StudioSpec {
        advertise_sr_ctrl_v1_2: true,
        registry_node: true,
        devices,
    }
}

fn catalogue(
    runtime: &tokio::runtime::Runtime,
    devices: usize,
    per_device: usize,
) -> CatalogueResult {
    let senders = devices * per_device;
    let dir = tempfile::tempdir().expect("temporary directory");
    trim_heap();
    let rss_base = proc_status_kib("VmRSS");
    let t_studio = Instant::now();
    let studio = start_studio(runtime, catalogue_spec(devices, per_device));
    let studio_ready = t_studio.elapsed();
    trim_heap();
    let rss_studio = proc_status_kib("VmRSS");
    let (lower_port, lower_events) = spawn_fake_ncs(runtime);

    let config = gateway_config(dir.path(), &studio, lower_port, 2, "");
    let t0 = Instant::now();
    let gw = start_gateway(runtime, config);
    let limit = Duration::from_secs(300);
    let discovery = gw.service.discovery().catalogue();
    let discovered = poll_until(limit, || discovery.borrow().senders.len() >= senders)
        .expect("discovery did not see every sender within 300 s");
    let objects = gw.objects.clone();
    let objects_done = poll_until(limit, || objects.len() >= senders)
        .expect("the object catalogue did not hold every sender within 300 s");

    let mut ncs = MosClient::connect(gw.lower);
    let t_req = Instant::now();
    request(
        &mut ncs,
        "<mosReqAll><pause>0</pause></mosReqAll>",
        "<mosAck>",
    );
    let mut pushes = 0;
    let (listed, list_bytes) = loop {
        match lower_events.recv_timeout(limit) {
            Ok(NcsEvent::MosObj) => pushes += 1,
            Ok(NcsEvent::ListAll(at, n, bytes)) => {
                assert!(
                    n >= senders,
                    "mosListAll with {n} objects, {senders} expected"
                );
                break (at, bytes);
            }
            Ok(_) => {}
            Err(e) => panic!("no mosListAll at the NCS's lower port: {e}"),
        }
    };
    let rss_after_raw = proc_status_kib("VmRSS");
    let hwm = proc_status_kib("VmHWM");
    trim_heap();
    let rss_after = proc_status_kib("VmRSS");
    drop((ncs, discovery, objects));
    gw.stop(runtime);
    // The NMOS tasks stop on the same token; give them a moment to drop what they hold.
    std::thread::sleep(Duration::from_millis(300));
    trim_heap();
    let rss_without_gateway = proc_status_kib("VmRSS");
    runtime.block_on(studio.shutdown());
    CatalogueResult {
        senders,
        studio_ready,
        discovered: discovered - t0,
        objects: objects_done - t0,
        list_all: listed - t0,
        req_to_list: listed - t_req,
        pushes_before_list: pushes,
        list_bytes,
        rss_base,
        rss_studio,
        rss_after,
        rss_after_raw,
        rss_without_gateway,
        hwm,
    }
}

// ---------------------------------------------------------------------------------------
// 2. Take latency.

struct TakeResult {
    total: Sample,
    to_decoded: Sample,
    decoded_to_patch: Sample,
    floor_tcp: Sample,
    floor_one_way: Sample,
    floor_round_trip: Sample,
    unprepared: usize,
}

fn ro_ctrl(item: &str, command: &str) -> String {
    format!(
        "<roCtrl><roID>{RO_ID}</roID><storyID>S1</storyID><itemID>{item}</itemID><command>{command}</command></roCtrl>"
    )
}

/// Waits for a mark (failing on a device error); returns its instant. Earlier marks of other
/// kinds are handed to `other`.
fn wait_mark(
    marks: &std_mpsc::Receiver<(Instant, Mark)>,
    want: fn(&Mark) -> bool,
    mut other: impl FnMut(Instant, &Mark),
) -> Instant {
    loop {
        match marks.recv_timeout(Duration::from_secs(10)) {
            Ok((at, m)) if want(&m) => return at,
            Ok((_, Mark::Failed(e))) => panic!("device call failed: {e}"),
            Ok((at, m)) => other(at, &m),
            Err(e) => panic!("gateway mark not seen within 10 s: {e}"),
        }
    }
}

/// Waits until the NCS has seen each (item, status prefix).
fn wait_statuses(events: &std_mpsc::Receiver<NcsEvent>, want: &[(&str, &str)]) {
    let mut missing: Vec<(&str, &str)> = want.to_vec();
    while !missing.is_empty() {
        match events.recv_timeout(Duration::from_secs(10)) {
            Ok(NcsEvent::Status(item, status)) => {
                missing.retain(|(i, s)| !(*i == item && status.starts_with(s)));
            }
            Ok(_) => {}
            Err(e) => panic!("statuses {missing:?} not seen within 10 s: {e}"),
        }
    }
}

/// The read of a receiver's `/active` that an all-or-nothing take makes right before it (what
/// a roll back would restore): part of every such take, not a sign of a missing preparation.
fn is_active_read(r: &RequestRecord) -> bool {
    r.method == "GET" && r.path.contains("/single/receivers/") && r.path.ends_with("/active")
}

fn is_take_patch(r: &RequestRecord, receiver: &str) -> bool {
    r.method == "PATCH"
        && r.path
            .ends_with(&format!("single/receivers/{receiver}/staged"))
        && r.body
            .as_ref()
            .and_then(|b| b["activation"]["mode"].as_str())
            == Some("activate_immediate")
}

/// Floor of the MOS leg: `size` bytes written by this thread → read by a task on the runtime
/// (one way, the reading task's instant).
fn tcp_floor(
    runtime: &tokio::runtime::Runtime,
    size: usize,
    warmup: usize,
    n: usize,
) -> Vec<Duration> {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("floor listener");
    let addr = listener.local_addr().expect("floor address");
    let (tx, rx) = std_mpsc::channel();
    runtime.spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let _ = socket.set_nodelay(true);
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        while let Ok(k) = socket.read(&mut buf).await {
            if k == 0 {
                break;
            }
            got += k;
            if got >= size {
                got -= size;
                let _ = tx.send(Instant::now());
            }
        }
    });
    let mut stream = TcpStream::connect(addr).expect("floor connection");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let message = vec![b'<'; size];
    (0..warmup + n)
        .filter_map(|i| {
            let t = Instant::now();
            stream.write_all(&message).expect("floor write");
            let at = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("floor read");
            (i >= warmup).then(|| at.saturating_duration_since(t))
        })
        .collect()
}

fn takes(
    runtime: &tokio::runtime::Runtime,
    marks: &std_mpsc::Receiver<(Instant, Mark)>,
    warmup: usize,
    n: usize,
) -> TakeResult {
    let dir = tempfile::tempdir().expect("temporary directory");
    let studio = start_studio(
        runtime,
        StudioSpec::from_toml(TAKE_STUDIO).expect("take studio"),
    );
    let cam1 = studio.sender_id("CAM1-V").expect("CAM1-V").to_string();
    let cam2 = studio.sender_id("CAM2-V").expect("CAM2-V").to_string();
    let in1 = studio.receiver_id("MIX-IN1").expect("MIX-IN1").to_string();
    let in2 = studio.receiver_id("MIX-IN2").expect("MIX-IN2").to_string();
    let (upper_port, statuses) = spawn_fake_ncs(runtime);
    let config = gateway_config(
        dir.path(),
        &studio,
        1,
        upper_port,
        "[[destination]]\nname = \"PGM\"\nreceivers = [\"MIX-IN1\"]\n",
    );
    let gw = start_gateway(runtime, config);

    let mut ncs = MosClient::connect(gw.upper);
    let item = |id: &str, obj: &str| {
        format!(
            "<item><itemID>{id}</itemID><objID>{obj}</objID><mosID>{MOS_ID}</mosID><itemChannel>PGM</itemChannel></item>"
        )
    };
    request(
        &mut ncs,
        &format!(
            "<roCreate><roID>{RO_ID}</roID><roSlug>Take bench</roSlug><story><storyID>S1</storyID>{}{}</story></roCreate>",
            item("I1", &cam1),
            item("I2", &cam2)
        ),
        "<roStatus>OK</roStatus>",
    );
    wait_statuses(&statuses, &[("I1", "READY"), ("I2", "READY")]);
    while marks.try_recv().is_ok() {}

    let mut total = Vec::with_capacity(n);
    let mut to_decoded = Vec::with_capacity(n);
    let mut decoded_to_patch = Vec::with_capacity(n);
    let mut unprepared = 0;
    let mut execute_bytes = 0;
    for i in 0..warmup + n {
        let (this, other) = if i % 2 == 0 {
            ("I1", "I2")
        } else {
            ("I2", "I1")
        };
        studio.clear_requests();
        request(&mut ncs, &ro_ctrl(this, "READY"), "<roStatus>OK</roStatus>");
        wait_mark(marks, |m| matches!(m, Mark::Staged), |_, _| {});

        let (id, wire) = wire(&mut ncs, &ro_ctrl(this, "EXECUTE"));
        execute_bytes = wire.len();
        studio.clear_requests();
        let sent = Instant::now();
        ncs.stream.write_all(&wire).expect("sending EXECUTE");
        ncs.expect_reply(id, "<roStatus>OK</roStatus>");
        let mut decoded = None;
        wait_mark(
            marks,
            |m| matches!(m, Mark::OnAir),
            |at, m| {
                if matches!(m, Mark::Decoded) {
                    decoded = Some(at);
                }
            },
        );
        let mut want = vec![(this, "PLAY")];
        if i > 0 {
            want.push((other, "STOP"));
        }
        wait_statuses(&statuses, &want);

        let log = studio.requests();
        let patch = log
            .iter()
            .find(|r| is_take_patch(r, &in1))
            .expect("the take's PATCH is in the studio's log");
        let before = || log.iter().filter(|r| r.received < patch.received);
        if before().any(|r| !is_active_read(r)) {
            unprepared += 1;
        }
        if i >= warmup {
            total.push(patch.received - sent);
            if let Some(d) = decoded {
                to_decoded.push(d.saturating_duration_since(sent));
                decoded_to_patch.push(patch.received.saturating_duration_since(d));
            }
        }
    }
    drop(ncs);

    // Floor: the same kind of PATCH to the other receiver with a pooled client, from a task.
    let url = format!(
        "{}/single/receivers/{in2}/staged",
        studio.connection_url(studio.device_id("MIXER").expect("MIXER"))
    );
    let body = bytes::Bytes::from(
        serde_json::json!({
            "sender_id": cam1,
            "master_enable": true,
            "activation": {"mode": "activate_immediate", "requested_time": null},
        })
        .to_string(),
    );
    let floor_studio = studio.clone();
    let (one_way, round_trip) = runtime
        .block_on(runtime.spawn(async move {
            let client = reqwest::Client::new();
            let mut one_way = Vec::with_capacity(n);
            let mut round_trip = Vec::with_capacity(n);
            for i in 0..warmup + n {
                floor_studio.clear_requests();
                let t = Instant::now();
                let reply = client
                    .patch(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("floor PATCH");
                assert_eq!(reply.status(), 200, "floor PATCH status");
                reply.bytes().await.expect("floor PATCH reply");
                let rtt = t.elapsed();
                let received = floor_studio
                    .requests()
                    .last()
                    .map(|r| r.received)
                    .expect("floor PATCH in the log");
                if i >= warmup {
                    one_way.push(received - t);
                    round_trip.push(rtt);
                }
            }
            (one_way, round_trip)
        }))
        .expect("floor task");

    let tcp = tcp_floor(runtime, execute_bytes, warmup, n);
    gw.stop(runtime);
    runtime.block_on(studio.shutdown());
    TakeResult {
        floor_tcp: Sample::new(
            format!("floor: TCP {execute_bytes} B written → read by a task"),
            tcp,
        ),
        total: Sample::new("EXECUTE written → take PATCH at the studio", total),
        to_decoded: Sample::new("  EXECUTE written → gateway decoded it", to_decoded),
        decoded_to_patch: Sample::new(
            "  gateway decoded → take PATCH at the studio",
            decoded_to_patch,
        ),
        floor_one_way: Sample::new("floor: reqwest PATCH → at the studio", one_way),
        floor_round_trip: Sample::new("floor: reqwest PATCH round trip", round_trip),
        unprepared,
    }
}

// ---------------------------------------------------------------------------------------

fn main() {
    let n = env_usize("TAKE_TAKES", 1_000);
    let warmup = env_usize("TAKE_WARMUP", 50);
    let devices = env_usize("TAKE_CAT_DEVICES", 1_000);
    let per_device = env_usize("TAKE_CAT_SENDERS", 10);
    let skip_catalogue = std::env::var("TAKE_SKIP_CATALOGUE").is_ok_and(|v| v == "1");
    let marks = install_probe();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("mos-gateway NMOS bridge against the virtual studio (loopback, in-process)");
    println!(
        "  {} cores; load average before: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    let cat = (!skip_catalogue).then(|| catalogue(&runtime, devices, per_device));
    while marks.try_recv().is_ok() {}
    let take = takes(&runtime, &marks, warmup, n);

    if let Some(c) = &cat {
        println!();
        println!(
            "catalogue: {} devices × {} senders = {} senders (each device its own node)",
            devices, per_device, c.senders
        );
        println!("{:<58} {:>12}", "from the gateway's start", "time");
        println!("{}", "-".repeat(71));
        println!(
            "{:<58} {:>12}",
            "  studio registered everything (before the gateway)",
            fmt_duration(c.studio_ready)
        );
        println!(
            "{:<58} {:>12}",
            "discovery holds every sender",
            fmt_duration(c.discovered)
        );
        println!(
            "{:<58} {:>12}",
            "object catalogue holds every sender object",
            fmt_duration(c.objects)
        );
        println!(
            "{:<58} {:>12}",
            format!(
                "complete mosListAll at the NCS ({:.1} MiB UTF-16)",
                c.list_bytes as f64 / (1024.0 * 1024.0)
            ),
            fmt_duration(c.list_all)
        );
        println!(
            "{:<58} {:>12}",
            format!(
                "  mosReqAll → mosListAll ({} mosObj pushes ahead of it)",
                c.pushes_before_list
            ),
            fmt_duration(c.req_to_list)
        );
        println!();
        println!(
            "{:<58} {:>12}",
            "memory (VmRSS, freed heap trimmed before each reading)", ""
        );
        println!("{}", "-".repeat(71));
        println!("{:<58} {:>12}", "before the studio", mib(c.rss_base));
        println!(
            "{:<58} {:>12}",
            "studio, after it registered everything",
            mib(c.rss_studio.saturating_sub(c.rss_base))
        );
        println!(
            "{:<58} {:>12}",
            "growth, studio + gateway (after the mosListAll)",
            mib(c.rss_after.saturating_sub(c.rss_base))
        );
        println!(
            "{:<58} {:>12}",
            "gateway's share (what its stop gave back)",
            mib(c.rss_after.saturating_sub(c.rss_without_gateway))
        );
        println!(
            "{:<58} {:>12}",
            "studio's share (what was left)",
            mib(c.rss_without_gateway.saturating_sub(c.rss_base))
        );
        println!(
            "{:<58} {:>12}",
            "  growth before trimming (what the allocator still held)",
            mib(c.rss_after_raw.saturating_sub(c.rss_base))
        );
        println!("{:<58} {:>12}", "peak (VmHWM)", mib(c.hwm));
    }

    println!();
    println!(
        "take latency: {n} takes (+{warmup} warm-up), READY then EXECUTE, two items alternating on one receiver"
    );
    println!(
        "{:<48} {:>6} {:>11} {:>11} {:>11}",
        "", "n", "p50", "p99", "max"
    );
    println!("{}", "-".repeat(90));
    let rows = [
        &take.total,
        &take.to_decoded,
        &take.decoded_to_patch,
        &take.floor_tcp,
        &take.floor_one_way,
        &take.floor_round_trip,
    ];
    for r in rows {
        println!(
            "{:<48} {:>6} {:>11} {:>11} {:>11}",
            r.name,
            r.times.len(),
            fmt_duration(r.pct(50.0)),
            fmt_duration(r.pct(99.0)),
            fmt_duration(r.max())
        );
    }
    let ratio = |a: Duration, b: Duration| {
        if b.is_zero() {
            f64::NAN
        } else {
            a.as_secs_f64() / b.as_secs_f64()
        }
    };
    println!();
    println!(
        "take p50 / floor one-way p50         = {:>6.2}×",
        ratio(take.total.pct(50.0), take.floor_one_way.pct(50.0))
    );
    println!(
        "take p99 / floor one-way p99         = {:>6.2}×",
        ratio(take.total.pct(99.0), take.floor_one_way.pct(99.0))
    );
    println!(
        "take p50 / (TCP + PATCH one-way) p50 = {:>6.2}×",
        ratio(
            take.total.pct(50.0),
            take.floor_tcp.pct(50.0) + take.floor_one_way.pct(50.0)
        )
    );
    println!(
        "take p99 / (TCP + PATCH one-way) p99 = {:>6.2}×",
        ratio(
            take.total.pct(99.0),
            take.floor_tcp.pct(99.0) + take.floor_one_way.pct(99.0)
        )
    );
    println!(
        "take p50 / floor round trip p50      = {:>6.2}×",
        ratio(take.total.pct(50.0), take.floor_round_trip.pct(50.0))
    );
    println!(
        "take p99                             = {:>9}   (target: 1 ms or less: {})",
        fmt_duration(take.total.pct(99.0)),
        if take.total.pct(99.0) <= Duration::from_millis(1) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!("takes not prepared by READY         = {}", take.unprepared);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average after: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
