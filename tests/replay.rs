//! Capture and replay: every session of `examples-messages/sessions/` replayed against a fresh
//! gateway; capture → replay through the real binary; rotation; dropped capture lines; a
//! wrong device reported precisely.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use mos_gateway::config::Config;
use mos_gateway::mos::codec::{CodecConfig, MosCodec, WireEncoding, encode_text};
use mos_gateway::replay::{Item, ReplayOptions, Replayer, Target, load_inputs};
use mos_gateway::server::Gateway;
use mos_gateway::session::PortRole;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

const MOS_ID: &str = "nmos.gateway.mos";

fn free_ports() -> [u16; 3] {
    let ls: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    [0, 1, 2].map(|i| ls[i].local_addr().expect("addr").port())
}

/// The four NCSs the sessions use; their own ports are closed (outbound links stay down).
fn config_text(data_dir: &Path, ports: [u16; 3], mos_extra: &str) -> String {
    let [l, u, q] = ports;
    let mut t = format!(
        "[mos]\nid = \"{MOS_ID}\"\nlisten = \"127.0.0.1\"\nlower_port = {l}\nupper_port = {u}\nquery_port = {q}\ndata_dir = \"{}\"\n{mos_extra}\n",
        data_dir.display()
    );
    for (i, id) in ["ENPS.NCS", "INEWS.NCS", "OCTOPUS.NCS", "OPENMEDIA.NCS"]
        .iter()
        .enumerate()
    {
        let enc = if *id == "OCTOPUS.NCS" { "utf8" } else { "auto" };
        t.push_str(&format!(
            "[[ncs]]\nid = \"{id}\"\nhost = \"127.0.0.1\"\nlower_port = {}\nupper_port = {}\nencoding = \"{enc}\"\n",
            1 + 2 * i,
            2 + 2 * i
        ));
    }
    t.push_str(SESSION_OBJECTS);
    t
}

/// The objects the object-queries session asks for.
const SESSION_OBJECTS: &str = r#"
[[object]]
id = "c0a8f3d2-5b1e-4f7a-9d24-6e1b3f8a2c01"
slug = "Studio camera 1"
type = "VIDEO"
group = "Studio A"
description = "Presenter camera, studio A"

[[object]]
id = "5d2e9a10-3c4b-4e8f-a1b2-c3d4e5f60718"
slug = "Remote camera Oslo"
type = "VIDEO"
group = "Remotes"

[[object]]
id = "LOGO-1"
slug = "Station logo"
type = "STILL"
group = "Graphics"
"#;

struct Running {
    target: Target,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    capture: Option<mos_gateway::capture::CaptureHandle>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("gateway task");
    }
}

async fn start(data_dir: &Path, mos_extra: &str) -> Running {
    let config = Config::from_toml_str(&config_text(data_dir, free_ports(), mos_extra), "test")
        .unwrap_or_else(|e| panic!("{e}"));
    let gw = Gateway::bind(config).await.expect("bind");
    let port = |r| gw.local_addr(r).expect("port").port();
    let target = Target {
        host: "127.0.0.1".into(),
        lower: port(PortRole::Lower),
        upper: port(PortRole::Upper),
        query: port(PortRole::Query),
    };
    let capture = gw.capture();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(gw.run(shutdown.clone()));
    Running {
        target,
        shutdown,
        task,
        capture,
    }
}

fn sessions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples-messages/sessions")
}

fn options(target: Target) -> ReplayOptions {
    let mut o = ReplayOptions::new(target);
    o.timeout = Duration::from_secs(5);
    o
}

#[tokio::test]
async fn every_session_replays_without_a_difference() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(sessions_dir())
        .expect("sessions/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "sessions missing: {files:?}");
    for file in files {
        let items = load_inputs(std::slice::from_ref(&file)).unwrap_or_else(|e| panic!("{e}"));
        let steps = items.iter().filter(|i| matches!(i, Item::Step(_))).count();
        assert!(steps >= 3, "{}: {steps} messages", file.display());
        let dir = tempfile::tempdir().expect("tempdir");
        let mut gw = start(dir.path(), "").await;
        let mut r = Replayer::new(options(gw.target.clone()));
        for item in &items {
            match item {
                Item::Step(s) => r.play(s).await.unwrap_or_else(|e| panic!("{e}")),
                Item::Restart => {
                    gw.stop().await;
                    gw = start(dir.path(), "").await;
                    r.set_target(gw.target.clone());
                }
            }
        }
        gw.stop().await;
        let report = r.report();
        assert!(
            report.ok() && report.passed == steps,
            "{}:\n{}",
            file.display(),
            report.render()
        );
    }
}

/// The real binary, stopped (SIGTERM-free: killed) when dropped.
struct Binary(Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mos-gateway"))
}

async fn wait_for_port(addr: SocketAddr) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway did not listen on {addr}");
}

fn start_binary(data_dir: &Path, ports: [u16; 3], mos_extra: &str) -> Binary {
    let cfg = data_dir.with_extension("toml");
    std::fs::write(&cfg, config_text(data_dir, ports, mos_extra)).expect("write config");
    let child = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    Binary(child)
}

/// Sends `text` on a fresh UTF-16BE connection and returns the reply.
async fn exchange(addr: SocketAddr, texts: &[String]) -> Vec<String> {
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (rd, mut wr) = s.into_split();
    let mut rd = FramedRead::new(rd, MosCodec::new(CodecConfig::default()));
    let mut out = Vec::new();
    for t in texts {
        wr.write_all(&encode_text(t, WireEncoding::Utf16Be))
            .await
            .expect("write");
        let f = tokio::time::timeout(Duration::from_secs(5), rd.next())
            .await
            .expect("reply in time")
            .expect("open")
            .expect("io")
            .expect("frame");
        out.push(f.text);
    }
    out
}

fn msg(id: u32, body: &str) -> String {
    format!(
        "<mos><mosID>{MOS_ID}</mosID><ncsID>ENPS.NCS</ncsID><messageID>{id}</messageID>{body}</mos>"
    )
}

#[tokio::test]
async fn a_capture_from_the_binary_replays_against_a_fresh_binary() {
    let root = tempfile::tempdir().expect("tempdir");
    let first = root.path().join("first");
    let ports = free_ports();
    let upper: SocketAddr = format!("127.0.0.1:{}", ports[1]).parse().expect("addr");
    let lower: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().expect("addr");
    {
        let _gw = start_binary(&first, ports, "capture = true\ncapture_heartbeats = true");
        wait_for_port(upper).await;
        exchange(lower, &[msg(1, "<heartbeat/>"), msg(2, "<reqMachInfo/>")]).await;
        let replies = exchange(
            upper,
            &[
                msg(3, "<roCreate><roID>R</roID><roSlug>Show</roSlug><story><storyID>S1</storyID><item><itemID>1</itemID><objID>O</objID><mosID>nmos.gateway.mos</mosID></item></story><story><storyID>S2</storyID></story></roCreate>"),
                msg(4, "<roElementAction operation=\"SWAP\"><roID>R</roID><element_source><storyID>S1</storyID><storyID>S2</storyID></element_source></roElementAction>"),
                msg(5, "<roStoryDelete><roID>R</roID><storyID>S9</storyID></roStoryDelete>"),
                msg(6, "<roReq><roID>R</roID></roReq>"),
            ],
        )
        .await;
        assert!(replies[3].contains("<roList>"), "{}", replies[3]);
        // Let the writer catch up before the process is killed.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let capture_dir = first.join("capture");
    let files = mos_gateway::capture::capture_files(&capture_dir).expect("capture dir");
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0].1).expect("read capture");
    assert_eq!(text.lines().count(), 12, "{text}");
    assert!(text.contains("\"dir\":\"in\"") && text.contains("\"socket\":\"inbound\""));
    assert!(text.contains("\"port\":\"upper\"") && text.contains("\"encoding\":\"utf16be\""));

    let second = root.path().join("second");
    let ports2 = free_ports();
    let _gw2 = start_binary(&second, ports2, "");
    wait_for_port(format!("127.0.0.1:{}", ports2[1]).parse().expect("addr")).await;
    let to = format!("127.0.0.1:{},{},{}", ports2[0], ports2[1], ports2[2]);
    let out = bin()
        .args(["replay", "--to", &to, "--timeout", "5"])
        .arg(&capture_dir)
        .output()
        .expect("replay runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("6 passed, 0 failed"), "{stdout}");

    // The same with --json and renumbered messageIDs.
    let out = bin()
        .args(["replay", "--json", "--renumber", "--to", &to])
        .arg(&files[0].1)
        .output()
        .expect("replay runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(v["passed"], 6, "{v}");
    assert_eq!(v["failed"], 0, "{v}");
}

#[tokio::test]
async fn capture_files_rotate_by_size_and_the_oldest_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start(
        dir.path(),
        "capture = true\ncapture_heartbeats = true\ncapture_max_bytes = 1024\ncapture_files = 3",
    )
    .await;
    let lower: SocketAddr = format!("127.0.0.1:{}", gw.target.lower)
        .parse()
        .expect("addr");
    let texts: Vec<String> = (1..=30).map(|i| msg(i, "<heartbeat/>")).collect();
    exchange(lower, &texts).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let files = mos_gateway::capture::capture_files(&dir.path().join("capture")).expect("dir");
    assert_eq!(files.len(), 3, "{files:?}");
    // 60 lines of ~400 bytes, 2 per file: about 30 files were written, the first ones removed.
    assert!(files[0].0 > 1, "{files:?}");
    for (_, f) in &files {
        let size = std::fs::metadata(f).expect("meta").len();
        assert!(size <= 1024, "{} is {size} bytes", f.display());
        for line in std::fs::read_to_string(f).expect("read").lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            assert_eq!(v["message"], "heartbeat");
        }
    }
}

#[tokio::test]
async fn a_slow_capture_writer_drops_lines_and_never_delays_acks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start(
        dir.path(),
        "capture = true\ncapture_heartbeats = true\ncapture_queue = 2",
    )
    .await;
    let capture = gw.capture.clone().expect("capture on");
    capture.set_write_delay(Duration::from_millis(300));
    let upper: SocketAddr = format!("127.0.0.1:{}", gw.target.upper)
        .parse()
        .expect("addr");
    let texts: Vec<String> = (1..=20).map(|i| msg(i, "<heartbeat/>")).collect();
    let started = std::time::Instant::now();
    let replies = exchange(upper, &texts).await;
    let elapsed = started.elapsed();
    assert_eq!(replies.len(), 20);
    assert!(replies.iter().all(|r| r.contains("<heartbeat>")));
    // 40 lines at 300 ms each would take 12 s if capture blocked the acks.
    assert!(elapsed < Duration::from_secs(3), "acks took {elapsed:?}");
    assert!(capture.dropped() > 0, "no line was dropped");
    capture.set_write_delay(Duration::ZERO);
    gw.stop().await;
}

/// A device that answers every request with roAck OK, roReq with a fixed roList, and can be
/// told to get things wrong.
async fn fake_device(wrong_status: bool, wrong_order: bool) -> (u16, u16) {
    let lower = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let upper = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ports = (
        lower.local_addr().expect("addr").port(),
        upper.local_addr().expect("addr").port(),
    );
    for l in [lower, upper] {
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (rd, mut wr) = s.into_split();
                    let mut rd = FramedRead::new(rd, MosCodec::new(CodecConfig::default()));
                    while let Some(Ok(Ok(f))) = rd.next().await {
                        let id = f
                            .text
                            .split("<messageID>")
                            .nth(1)
                            .and_then(|r| r.split('<').next())
                            .unwrap_or("1")
                            .to_string();
                        let body = if f.text.contains("<roReq>") {
                            let (a, b) = if wrong_order {
                                ("S2", "S1")
                            } else {
                                ("S1", "S2")
                            };
                            format!(
                                "<roList><roID>R</roID><roSlug>Show</roSlug><story><storyID>{a}</storyID></story><story><storyID>{b}</storyID></story></roList>"
                            )
                        } else if wrong_status && f.text.contains("<roCreate>") {
                            "<roAck><roID>R</roID><roStatus>Not today</roStatus></roAck>".into()
                        } else {
                            "<roAck><roID>R</roID><roStatus>OK</roStatus></roAck>".into()
                        };
                        let reply = format!(
                            "<mos><mosID>{MOS_ID}</mosID><ncsID>ENPS.NCS</ncsID><messageID>{id}</messageID>{body}</mos>"
                        );
                        if wr
                            .write_all(&encode_text(&reply, f.encoding))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
    }
    ports
}

/// A capture of a correct conversation: roCreate → OK, roReq → S1 S2.
fn good_capture(dir: &Path) -> PathBuf {
    let line = |d: &str, text: &str| {
        format!(
            "{{\"ts\":\"2026-11-25T18:00:00.000Z\",\"dir\":\"{d}\",\"local\":\"127.0.0.1:10541\",\"remote\":\"127.0.0.1:5000\",\"port\":\"upper\",\"socket\":\"inbound\",\"encoding\":\"utf16be\",\"ncs\":\"ENPS.NCS\",\"text\":{}}}\n",
            serde_json::to_string(text).expect("json")
        )
    };
    let content = [
        line("in", &msg(1, "<roCreate><roID>R</roID><roSlug>Show</roSlug><story><storyID>S1</storyID></story><story><storyID>S2</storyID></story></roCreate>")),
        line("out", &msg(1, "<roAck><roID>R</roID><roStatus>OK</roStatus></roAck>")),
        line("in", &msg(2, "<roReq><roID>R</roID></roReq>")),
        line("out", &msg(2, "<roList><roID>R</roID><roSlug>Show</roSlug><story><storyID>S1</storyID></story><story><storyID>S2</storyID></story></roList>")),
    ]
    .concat();
    let path = dir.join("good.jsonl");
    std::fs::write(&path, content).expect("write");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_answers_wrongly_is_reported_precisely() {
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = good_capture(dir.path());

    let (l, u) = fake_device(false, false).await;
    let out = bin()
        .args(["replay", "--to", &format!("127.0.0.1:{l},{u}")])
        .arg(&capture)
        .output()
        .expect("replay runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("2 passed, 0 failed"), "{stdout}");

    let (l, u) = fake_device(true, true).await;
    let out = bin()
        .args(["replay", "--to", &format!("127.0.0.1:{l},{u}")])
        .arg(&capture)
        .output()
        .expect("replay runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("0 passed, 2 failed"), "{stdout}");
    assert!(
        stdout.contains("roCreate #1") && stdout.contains("roStatus: expected OK, got error"),
        "{stdout}"
    );
    assert!(
        stdout.contains("roReq #2") && stdout.contains("stories: expected S1 S2, got S2 S1"),
        "{stdout}"
    );
    let table_row = stdout
        .lines()
        .find(|l| l.contains("roCreate #1") && l.contains("FAIL"))
        .unwrap_or_else(|| panic!("no FAIL row for roCreate: {stdout}"));
    assert!(
        table_row.contains("roAck OK") && table_row.contains("roAck error"),
        "{table_row}"
    );

    // An unreachable device is an error (exit 2), not a difference.
    let closed = free_ports()[0];
    let out = bin()
        .args([
            "replay",
            "--timeout",
            "1",
            "--to",
            &format!("127.0.0.1:{closed},{closed}"),
        ])
        .arg(&capture)
        .output()
        .expect("replay runs");
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn plain_xml_files_are_sent_on_the_port_of_their_family() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start(dir.path(), "").await;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples-messages");
    let items = load_inputs(&[
        examples.join("profile0/heartbeat.xml"),
        examples.join("profile2/roCreate.xml"),
        examples.join("profile3/mosReqObjList.xml"),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let ports: Vec<PortRole> = items
        .iter()
        .filter_map(|i| match i {
            Item::Step(s) => Some(s.port),
            Item::Restart => None,
        })
        .collect();
    assert_eq!(ports, [PortRole::Lower, PortRole::Upper, PortRole::Query]);
    let mut r = Replayer::new(options(gw.target.clone()));
    r.play_all(&items).await.unwrap_or_else(|e| panic!("{e}"));
    let report = r.report();
    assert_eq!(
        (report.unchecked, report.failed),
        (3, 0),
        "{}",
        report.render()
    );
    assert_eq!(report.rows[1].got, "roAck OK", "{}", report.render());
    gw.stop().await;
}
