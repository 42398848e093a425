//! Round trips over one connection to the gateway's upper port, with the floors they are
//! bounded by.
//!
//! `cargo bench --bench roundtrip` starts the gateway in-process (tokio runtime, data
//! directory in a temporary directory, no log output) and measures, one request at a time
//! over one UTF-16BE connection:
//!
//! - heartbeat → heartbeat;
//! - roCreate (50 stories × 10 items) → roAck, then roDelete → roAck: one round trip of
//!   the roCreate kind is the pair; each half is also reported alone;
//!
//! and, in the same run, the floors:
//!
//! - a raw TCP echo over loopback (a tokio echo server on the same runtime) with the same
//!   wire sizes as the heartbeat and the roCreate, taken alternately with them (a heartbeat
//!   then an echo, a pair then an echo), since the loopback wake-up latency of this VM
//!   moves between runs;
//! - the fdatasync latency of the disk holding the data directory (60 KB written, then
//!   `File::sync_data`), since every acknowledged edit waits for a durable commit;
//! - in process, the same roCreate decoded and parsed, decoded only, and quick-xml's event
//!   reader alone over its text (the least any parser built on quick-xml can take); and its
//!   XML tree read in one part and in two parts at once, alternately (the gateway reads
//!   documents of 64 KB or more in two parts when the machine has a second core).
//!
//! It prints round trips/s, p50 and p99 for each, the ratios heartbeat / echo,
//! roCreate / fsync and two parts / one part, the roCreate rate against its target, and
//! the floor of a pair: both echoes, the decode + parse and two fdatasyncs added up (and
//! the same with the decode and quick-xml's reader alone in place of the decode + parse).
//! Counts come from the environment:
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `ROUNDTRIP_HEARTBEATS` | 2000 | heartbeats (and small echoes) measured |
//! | `ROUNDTRIP_PAIRS` | 300 | roCreate/roDelete pairs (and large echoes) measured |
//! | `ROUNDTRIP_FSYNCS` | 300 | 60 KB write + fdatasync measured |
//! | `ROUNDTRIP_WARMUP` | 50 | unmeasured iterations before each kind |
//! | `ROUNDTRIP_STORIES` / `ROUNDTRIP_ITEMS` | 50 / 10 | size of the roCreate |
//! | `ROUNDTRIP_DIR` | the system temp dir | where the data directory and fsync file go |

#[path = "common/stats.rs"]
mod stats;
use stats::{Sample, env_usize, fmt_duration};
#[path = "common/mos_client.rs"]
mod mos_client;
#[path = "common/wire_steps.rs"]
mod wire_steps;
use mos_client::MosClient;
use wire_steps::{decode_frame, quick_xml_events};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mos_gateway::config::Config;
use mos_gateway::mos::codec::{WireEncoding, encode_text};
use mos_gateway::mos::xml::Document;
use mos_gateway::mos::{Mos, ParseOptions};
use mos_gateway::server::Gateway;
use mos_gateway::session::PortRole;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The gateway binary's allocator, so the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MOS_ID: &str = "nmos.gateway.mos";
const NCS_ID: &str = "ENPS.NCS";
const RO_ID: &str = "RO-BENCH";
const FSYNC_BYTES: usize = 60 * 1024;

/// Runs `f` `warmup` times unmeasured, then `n` times measured.
fn measure(warmup: usize, n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..warmup {
        f();
    }
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

/// Like [`measure`], for two kinds of round trip taken alternately (one of each per
/// iteration), so that both meet the same machine state: on a shared VM the wake-up latency
/// of a loopback round trip itself moves between runs (15 µs in one, 55 µs in the next).
fn measure_alternately(
    warmup: usize,
    n: usize,
    mut f: impl FnMut(),
    mut g: impl FnMut(),
) -> (Vec<Duration>, Vec<Duration>) {
    for _ in 0..warmup {
        f();
        g();
    }
    let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        f();
        a.push(t.elapsed());
        let t = Instant::now();
        g();
        b.push(t.elapsed());
    }
    (a, b)
}

// ---------------------------------------------------------------------------------------
// Messages.

fn envelope(id: u64, body: &str) -> String {
    format!(
        "<mos><mosID>{MOS_ID}</mosID><ncsID>{NCS_ID}</ncsID><messageID>{id}</messageID>{body}</mos>"
    )
}

fn heartbeat(id: u64) -> String {
    envelope(
        id,
        "<heartbeat><time>2026-11-25T18:00:00,000Z</time></heartbeat>",
    )
}

/// A roCreate shaped like a newsroom's: slugs, page numbers, channels and timings.
fn ro_create(id: u64, stories: usize, items: usize) -> String {
    let mut body = format!("<roCreate><roID>{RO_ID}</roID><roSlug>Evening news</roSlug>");
    for s in 0..stories {
        body.push_str(&format!(
            "<story><storyID>NEWS;STORY;{s:05}</storyID><storySlug>Story {s}: council budget vote</storySlug><storyNum>A{s}</storyNum>"
        ));
        for i in 0..items {
            body.push_str(&format!(
                "<item><itemID>{i}</itemID><itemSlug>CAM{} live</itemSlug><objID>OBJ-{s:05}-{i:03}</objID><mosID>{MOS_ID}</mosID><itemChannel>CAM{}</itemChannel><itemEdStart>0</itemEdStart><itemEdDur>{}</itemEdDur></item>",
                i % 4 + 1,
                i % 4 + 1,
                250 * (i + 1)
            ));
        }
        body.push_str("</story>");
    }
    body.push_str("</roCreate>");
    envelope(id, &body)
}

fn ro_delete(id: u64) -> String {
    envelope(id, &format!("<roDelete><roID>{RO_ID}</roID></roDelete>"))
}

// ---------------------------------------------------------------------------------------
// Clients (blocking, on the main thread).

/// A raw TCP client of the echo server.
struct EchoClient {
    stream: TcpStream,
    back: Vec<u8>,
}

impl EchoClient {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connecting to the echo server");
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            back: Vec::new(),
        }
    }

    fn round_trip(&mut self, wire: &[u8]) {
        self.stream.write_all(wire).expect("echo send");
        self.back.resize(wire.len(), 0);
        self.stream.read_exact(&mut self.back).expect("echo reply");
    }
}

/// Echoes every byte back, per connection, as it arrives.
async fn echo_server(listener: tokio::net::TcpListener) {
    while let Ok((mut socket, _)) = listener.accept().await {
        let _ = socket.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if socket.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
}

/// `n` times: append 60 KB to a file and `sync_data` it.
fn fsync_floor(dir: &std::path::Path, warmup: usize, n: usize) -> Vec<Duration> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("creating the fsync probe file");
    let block: Vec<u8> = (0..FSYNC_BYTES).map(|i| (i % 251) as u8).collect();
    let times = measure(warmup, n, || {
        file.write_all(&block).expect("write");
        file.sync_data().expect("fdatasync");
    });
    drop(file);
    let _ = std::fs::remove_file(path);
    times
}

fn free_ports() -> [u16; 3] {
    let ls: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    [0, 1, 2].map(|i| ls[i].local_addr().unwrap().port())
}

fn main() {
    let heartbeats = env_usize("ROUNDTRIP_HEARTBEATS", 2_000);
    let pairs = env_usize("ROUNDTRIP_PAIRS", 300);
    let fsyncs = env_usize("ROUNDTRIP_FSYNCS", 300);
    let warmup = env_usize("ROUNDTRIP_WARMUP", 50);
    let stories = env_usize("ROUNDTRIP_STORIES", 50);
    let items = env_usize("ROUNDTRIP_ITEMS", 10);
    let parent = std::env::var_os("ROUNDTRIP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&parent).expect("creating a temporary directory");
    let data_dir = dir.path().join("data");

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let [lower, upper, query] = free_ports();
    let config = Config::from_toml_str(
        &format!(
            r#"
[mos]
id = "{MOS_ID}"
listen = "127.0.0.1"
lower_port = {lower}
upper_port = {upper}
query_port = {query}
data_dir = "{}"

[[ncs]]
id = "{NCS_ID}"
host = "127.0.0.1"
lower_port = 1
upper_port = 2
heartbeat_interval_s = 0
"#,
            data_dir.display()
        ),
        "roundtrip bench",
    )
    .expect("bench configuration");
    let gateway = runtime
        .block_on(Gateway::bind(config))
        .expect("starting the gateway");
    let upper_addr = gateway.local_addr(PortRole::Upper).expect("upper port");
    let shutdown = CancellationToken::new();
    let served = runtime.spawn(gateway.run(shutdown.clone()));
    let echo_listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("echo listener");
    let echo_addr = echo_listener.local_addr().unwrap();
    runtime.spawn(echo_server(echo_listener));

    println!("mos-gateway round trips over one upper-port connection (UTF-16BE, loopback)");
    println!(
        "  {} cores; data directory and fsync probe in {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        parent.display()
    );

    // Gateway: heartbeats, each followed by a TCP echo of the same size (the floor).
    let mut mos = MosClient::connect(upper_addr);
    let mut echo = EchoClient::connect(echo_addr);
    let hb_wire_len = encode_text(&heartbeat(1), WireEncoding::Utf16Be).len();
    let small = vec![0x3cu8; hb_wire_len];
    let (hb, echo_small) = measure_alternately(
        warmup,
        heartbeats,
        || {
            let id = mos.fresh_id();
            let wire = encode_text(&heartbeat(id), WireEncoding::Utf16Be);
            mos.round_trip(id, &wire, "<heartbeat>");
        },
        || echo.round_trip(&small),
    );

    // Gateway: roCreate then roDelete; the messages are built before the clock starts.
    let create_wire_len = encode_text(&ro_create(1, stories, items), WireEncoding::Utf16Be).len();
    let large = vec![0x3cu8; create_wire_len];
    let mut creates = Vec::with_capacity(pairs);
    let mut deletes = Vec::with_capacity(pairs);
    let mut echo_large = Vec::with_capacity(pairs);
    for i in 0..warmup + pairs {
        let cid = mos.fresh_id();
        let create = encode_text(&ro_create(cid, stories, items), WireEncoding::Utf16Be);
        let did = mos.fresh_id();
        let delete = encode_text(&ro_delete(did), WireEncoding::Utf16Be);
        let t = Instant::now();
        mos.round_trip(cid, &create, "<roStatus>OK</roStatus>");
        let c = t.elapsed();
        let t = Instant::now();
        mos.round_trip(did, &delete, "<roStatus>OK</roStatus>");
        let d = t.elapsed();
        // The floor for the roCreate: the same bytes echoed, right after the pair.
        let t = Instant::now();
        echo.round_trip(&large);
        let e = t.elapsed();
        if i >= warmup {
            creates.push(c);
            deletes.push(d);
            echo_large.push(e);
        }
    }
    let pair_times: Vec<Duration> = creates.iter().zip(&deletes).map(|(c, d)| *c + *d).collect();

    // Floor: fdatasync.
    let fsync = fsync_floor(dir.path(), warmup.min(20), fsyncs);
    // In-process floors: what the gateway must do with a roCreate before it can even
    // validate it (framing + UTF-16 decoding, then parsing), and quick-xml's event reader
    // alone over the same text (the XML crate the parser is built on).
    let create_wire = encode_text(&ro_create(1, stories, items), WireEncoding::Utf16Be);
    let create_text = decode_frame(&create_wire).text;
    let decode_parse = measure(warmup, pairs, || {
        let frame = decode_frame(std::hint::black_box(&create_wire));
        std::hint::black_box(Mos::parse(&frame.text, ParseOptions::lenient()).expect("parse"));
    });
    let decode_only = measure(warmup, pairs, || {
        std::hint::black_box(decode_frame(std::hint::black_box(&create_wire)));
    });
    let tokenize = measure(warmup, pairs, || {
        std::hint::black_box(quick_xml_events(std::hint::black_box(&create_text)));
    });
    // The XML tree alone, read in one part and in two parts at once, alternately.
    let (mut tree_one, mut tree_two) = (Vec::new(), Vec::new());
    for i in 0..warmup + pairs {
        for (two, out) in [(false, &mut tree_one), (true, &mut tree_two)] {
            let t = Instant::now();
            let doc = if two {
                Document::parse(std::hint::black_box(&create_text))
            } else {
                Document::parse_in_one_part(std::hint::black_box(&create_text))
            };
            std::hint::black_box(doc.expect("parse"));
            if i >= warmup {
                out.push(t.elapsed());
            }
        }
    }

    shutdown.cancel();
    runtime.block_on(served).expect("gateway task");

    let rows = [
        Sample::new(format!("heartbeat ({hb_wire_len} B)"), hb),
        Sample::new(
            format!("roCreate {stories}×{items} + roDelete (pair)"),
            pair_times,
        ),
        Sample::new(
            format!(
                "  roCreate {stories}×{items} alone ({:.0} KB)",
                create_wire_len as f64 / 1024.0
            ),
            creates,
        ),
        Sample::new("  roDelete alone", deletes),
        Sample::new(format!("floor: TCP echo {hb_wire_len} B"), echo_small),
        Sample::new(
            format!("floor: TCP echo {:.0} KB", create_wire_len as f64 / 1024.0),
            echo_large,
        ),
        Sample::new(
            format!("floor: {} KB write + fdatasync", FSYNC_BYTES / 1024),
            fsync,
        ),
        Sample::new(
            format!("in process: decode + parse roCreate {stories}×{items}"),
            decode_parse,
        ),
        Sample::new("in process: decode only (framing, UTF-16)", decode_only),
        Sample::new("in process: quick-xml events only", tokenize),
        Sample::new("in process: XML tree, one part", tree_one),
        Sample::new("in process: XML tree, two parts at once", tree_two),
    ];
    println!();
    println!(
        "{:<40} {:>7} {:>14} {:>11} {:>11}",
        "round trip", "n", "round trips/s", "p50", "p99"
    );
    println!("{}", "-".repeat(87));
    for r in &rows {
        println!(
            "{:<40} {:>7} {:>14.0} {:>11} {:>11}",
            r.name,
            r.times.len(),
            r.per_second(),
            fmt_duration(r.p50()),
            fmt_duration(r.p99())
        );
    }
    let ratio = |a: &Sample, b: &Sample| {
        let b = b.p50().as_secs_f64();
        if b > 0.0 {
            a.p50().as_secs_f64() / b
        } else {
            f64::NAN
        }
    };
    let [
        hb,
        pair,
        create,
        delete,
        echo_small,
        echo_large,
        fsync,
        decode_parse,
        decode_only,
        tokenize,
        tree_one,
        tree_two,
    ] = &rows;
    println!();
    println!(
        "heartbeat p50 / echo p50            = {:>6.2}×   (target: within 3×)",
        ratio(hb, echo_small)
    );
    println!(
        "roCreate p50 / fdatasync p50        = {:>6.2}×",
        ratio(create, fsync)
    );
    println!(
        "roDelete p50 / fdatasync p50        = {:>6.2}×",
        ratio(delete, fsync)
    );
    println!(
        "roCreate round trips/s              = {:>6.0}    (target: 1,000/s or more)",
        create.per_second()
    );
    println!(
        "roCreate+roDelete pairs/s           = {:>6.0}",
        pair.per_second()
    );
    println!(
        "XML tree two parts p50 / one part   = {:>6.2}×",
        ratio(tree_two, tree_one)
    );
    // The least a pair can take with the gateway's stack: both messages over TCP, the
    // roCreate decoded and parsed (in the second sum: decoded, then only quick-xml's reader
    // run over it), and one durable commit each; no bookkeeping at all.
    let p50 = |s: &Sample| s.p50().as_secs_f64();
    let transfer = p50(echo_large) + p50(echo_small);
    let floor = transfer + p50(decode_parse) + 2.0 * p50(fsync);
    let floor_qx = transfer + p50(decode_only) + p50(tokenize) + 2.0 * p50(fsync);
    println!(
        "pair floor (echoes + decode/parse + 2 fdatasync) = {} → at most {:.0} pairs/s",
        fmt_duration(Duration::from_secs_f64(floor)),
        1.0 / floor
    );
    println!(
        "pair floor with decode + quick-xml events only   = {} → at most {:.0} pairs/s",
        fmt_duration(Duration::from_secs_f64(floor_qx)),
        1.0 / floor_qx
    );
    println!(
        "pair p50 / pair floor                            = {:>6.2}×",
        pair.p50().as_secs_f64() / floor
    );
}
