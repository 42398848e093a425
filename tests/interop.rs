//! Interoperability: `@mos-connection/connector` (npm) plays the newsroom system against the
//! gateway started in-process, through `tests/interop/ncs.mjs`.
//!
//! The script needs `npm ci` in `tests/interop` first (`.ci/run` does it). Without
//! `tests/interop/node_modules` the test is skipped with a note, except in CI (`CI` set), where
//! it fails so that the check cannot silently disappear.

#[allow(dead_code)] // the shared helpers include the raw-TCP NCS client, unused here
#[path = "gateway/support.rs"]
mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// The whole script, connection to exit, must finish within this.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mos_connection_library_as_the_ncs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    if !dir.join("node_modules/@mos-connection/connector").is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "tests/interop/node_modules is missing: CI must run `npm ci` in tests/interop (see .ci/run)"
        );
        eprintln!(
            "interop test skipped: run `npm ci` in tests/interop to install @mos-connection/connector"
        );
        return;
    }

    let data = tempfile::tempdir().unwrap();
    // The connector reads listMachInfo only in the MOS 2.8.4 container form (its strict parser
    // refuses the flat 2.8.1 form), so this NCS is configured the way a Sofie peer would be.
    let config = support::config(data.path(), "listmachinfo_style = \"container\"");
    let gw = support::start(config).await;

    let mut child = Command::new("node")
        .arg("ncs.mjs")
        .args(["--host", &gw.lower.ip().to_string()])
        .args(["--lower", &gw.lower.port().to_string()])
        .args(["--upper", &gw.upper.port().to_string()])
        .args(["--query", &gw.query.port().to_string()])
        .args(["--mos-id", support::MOS_ID])
        .args(["--ncs-id", support::NCS_ID])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `node` (Node.js 20 is needed): {e}"));

    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let read_out = tokio::spawn(async move {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s).await;
        s
    });
    let read_err = tokio::spawn(async move {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s).await;
        s
    });

    let status = match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait()).await {
        Ok(status) => Some(status.unwrap()),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    let stdout = read_out.await.unwrap();
    let stderr = read_err.await.unwrap();
    gw.stop().await;

    let report = format!("--- ncs.mjs stdout ---\n{stdout}--- ncs.mjs stderr ---\n{stderr}");
    let Some(status) = status else {
        panic!("ncs.mjs did not finish within {SCRIPT_TIMEOUT:?}; killed\n{report}");
    };
    assert!(status.success(), "ncs.mjs failed ({status})\n{report}");

    // Every step reported, and reported a pass (the exit status already says so; this guards
    // against a script that exits 0 without running).
    let steps: Vec<&str> = stdout.lines().filter(|l| l.starts_with('{')).collect();
    for expected in [
        "\"step\":\"connect+heartbeat\"",
        "\"step\":\"reqMachInfo\"",
        "\"step\":\"roCreate\"",
        "\"step\":\"roStorySend S2\"",
        "\"step\":\"roDelete\"",
        "\"step\":\"summary\",\"ok\":true",
    ] {
        assert!(
            steps.iter().any(|l| l.contains(expected)),
            "no {expected} line\n{report}"
        );
    }
    assert!(
        steps.iter().all(|l| l.contains("\"ok\":true")),
        "a step failed\n{report}"
    );
}
