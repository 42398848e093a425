//! `mos-gateway run --virtual-studio`, run as an engineer would: it starts against the
//! virtual studio, states Profile 5, reloads its mapping on SIGHUP (refusing a broken file
//! and keeping the running configuration) and stops cleanly on SIGTERM.

#[path = "common/process.rs"]
mod process;
use process::{Process, config_text, start_gateway};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use std::time::Duration;

use bytes::BytesMut;
use mos_gateway::mos::codec::{CodecConfig, MosCodec, WireEncoding, encode_text};
use mos_gateway::mos::messages::ProfileSupport;
use mos_gateway::mos::{Message, Mos, ParseOptions};
use tokio_util::codec::Decoder;

const MOS_ID: &str = "nmos.gateway.mos";
const NCS_ID: &str = "ENPS.NCS";

const PGM: &str = r#"
[[destination]]
name = "PGM"
receivers = ["MIX-IN1"]
"#;

/// Starts the binary against the example virtual studio; returns once it listens.
fn start(dir: &Path) -> Process {
    let studio = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/virtual-studio.toml");
    let studio = studio.to_string_lossy().into_owned();
    start_gateway(dir, &["--virtual-studio", &studio], |ports| {
        config_text(
            &dir.join("data"),
            ports,
            &format!("\n[nmos]\nhttp_timeout_ms = 500\n{PGM}"),
        )
    })
}

/// Sends reqMachInfo on a fresh upper-port connection and returns the profiles listed.
fn profiles(upper: SocketAddr) -> Vec<bool> {
    let mut stream = TcpStream::connect(upper).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let text = format!(
        "<mos><mosID>{MOS_ID}</mosID><ncsID>{NCS_ID}</ncsID><messageID>7</messageID><reqMachInfo/></mos>"
    );
    stream
        .write_all(&encode_text(&text, WireEncoding::Utf16Be))
        .unwrap();
    let mut codec = MosCodec::new(CodecConfig::default());
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let reply: Mos = loop {
        if let Some(item) = codec.decode(&mut buf).unwrap() {
            let frame = item.expect("reply framing");
            break Mos::parse(&frame.text, ParseOptions::strict())
                .unwrap_or_else(|e| panic!("reply not valid: {}\n{}", e.error, frame.text))
                .mos;
        }
        let n = stream.read(&mut chunk).expect("no reply within 5 s");
        assert!(n > 0, "connection closed without a reply");
        buf.extend_from_slice(&chunk[..n]);
    };
    let Message::ListMachInfo(info) = reply.message else {
        panic!("{:?}", reply.message)
    };
    match info.profiles {
        ProfileSupport::Flat(p) => p,
        other => panic!("{other:?}"),
    }
}

/// Waits up to 10 s for the process to exit.
fn wait_exit(p: &mut Process) -> std::process::ExitStatus {
    p.wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM:\n{}", p.log_text()))
}

#[test]
fn run_with_a_virtual_studio_states_profile_5_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = start(dir.path());
    p.wait_log("virtual studio from", 1);
    p.wait_log("NMOS bridge started", 1);
    // (An answer also means the gateway runs, past installing its signal handlers.)
    let flags = profiles(p.upper);
    assert_eq!(flags.len(), 7, "{flags:?}");
    assert!(flags[..=5].iter().all(|f| *f), "Profiles 0 to 5: {flags:?}");
    p.signal("TERM");
    let status = wait_exit(&mut p);
    assert!(status.success(), "{status}:\n{}", p.log_text());
    assert!(p.log_text().contains("signal received"), "{}", p.log_text());
    assert!(!p.log_text().contains("panicked"), "{}", p.log_text());
}

#[test]
fn sighup_reloads_a_changed_configuration_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = start(dir.path());
    p.wait_log("NMOS bridge started", 1);
    // An answer means the gateway runs, so its SIGHUP handler is installed.
    assert!(profiles(p.upper)[5]);
    let text = std::fs::read_to_string(&p.config).unwrap();

    // A changed mapping: re-read and applied.
    let more = format!("{text}\n[[destination]]\nname = \"AUX\"\nreceivers = [\"MIX-IN2\"]\n");
    std::fs::write(&p.config, more).unwrap();
    p.signal("HUP");
    p.wait_log("SIGHUP: configuration re-read", 1);
    p.wait_log("configuration reloaded: re-resolving every item", 1);

    // A broken file: refused, the running configuration stays and the gateway answers.
    std::fs::write(&p.config, "[mos\nid = ").unwrap();
    p.signal("HUP");
    p.wait_log("configuration not reloaded (the running one stays)", 1);
    assert_eq!(
        p.log_text()
            .matches("SIGHUP: configuration re-read")
            .count(),
        1,
        "{}",
        p.log_text()
    );
    assert!(profiles(p.upper)[5], "Profile 5 still stated");

    // A fixed file is taken again.
    std::fs::write(&p.config, &text).unwrap();
    p.signal("HUP");
    p.wait_log("SIGHUP: configuration re-read", 2);
    p.signal("TERM");
    let status = wait_exit(&mut p);
    assert!(status.success(), "{status}:\n{}", p.log_text());
}
