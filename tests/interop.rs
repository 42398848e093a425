//! Interoperability: `@mos-connection/connector` (npm) plays the newsroom system against the
//! gateway started in-process: through `tests/interop/ncs.mjs` it connects to the gateway and
//! sends running orders; through `tests/interop/ncs-listener.mjs` it also listens for the
//! gateway's own connections and receives what the gateway originates (mosListAll, mosObj,
//! statuses in both flavours, heartbeats).
//!
//! The scripts need `npm ci` in `tests/interop` first (`.ci/run` does it). Without
//! `tests/interop/node_modules` the tests are skipped with a note, except in CI (`CI` set),
//! where they fail so that the check cannot silently disappear.

#[allow(dead_code)] // the shared helpers include the raw-TCP NCS client, unused here
#[path = "gateway/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mos_gateway::server::StatusError;
use mos_gateway::status::{Dropped, ElementState, StatusReport, StatusTarget};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

/// The whole script, connection to exit, must finish within this.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// `tests/interop`, or None (after a note) when its `node_modules` is missing and `CI` is unset.
fn interop_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    if !dir.join("node_modules/@mos-connection/connector").is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "tests/interop/node_modules is missing: CI must run `npm ci` in tests/interop (see .ci/run)"
        );
        eprintln!(
            "interop test skipped: run `npm ci` in tests/interop to install @mos-connection/connector"
        );
        return None;
    }
    Some(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mos_connection_library_as_the_ncs() {
    let Some(dir) = interop_dir() else { return };

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

// ---------------------------------------------------------------------------------------------
// The connector as the listening NCS: the gateway's outbound links go to it.

/// An `[[object]]` of the gateway's configuration, also given to the script to check.
struct Object {
    id: &'static str,
    slug: &'static str,
    kind: &'static str,
    group: &'static str,
    duration_s: Option<f64>,
}

/// Few and small: the connector decodes each TCP read on its listening sockets on its own, so a
/// message split across reads can be garbled (its bug); a short mosListAll arrives in one read.
const OBJECTS: [Object; 3] = [
    Object {
        id: "CAM-1",
        slug: "Camera one",
        kind: "VIDEO",
        group: "Studio A",
        duration_s: None,
    },
    Object {
        id: "CLIP-7",
        slug: "Weather clip",
        kind: "VIDEO",
        group: "Clips",
        duration_s: Some(12.5),
    },
    Object {
        id: "LOGO",
        slug: "Station logo",
        kind: "STILL",
        group: "Graphics",
        duration_s: None,
    },
];

fn objects_toml() -> String {
    OBJECTS
        .iter()
        .map(|o| {
            let dur = o
                .duration_s
                .map(|d| format!("duration_s = {d}\n"))
                .unwrap_or_default();
            format!(
                "[[object]]\nid = \"{}\"\nslug = \"{}\"\ntype = \"{}\"\ngroup = \"{}\"\n{dur}\n",
                o.id, o.slug, o.kind, o.group
            )
        })
        .collect()
}

/// What the script expects in the mosListAll (objDur in ms with objTB 1000, as documented).
fn objects_json() -> String {
    let list: Vec<serde_json::Value> = OBJECTS
        .iter()
        .map(|o| {
            let mut v = serde_json::json!({
                "id": o.id, "slug": o.slug, "type": o.kind, "group": o.group,
            });
            if let Some(d) = o.duration_s {
                v["dur"] = serde_json::json!((d * 1000.0).round() as u64);
                v["tb"] = serde_json::json!(1000);
            }
            v
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// The statuses `ncs-listener.mjs` waits for, in its order (see its header).
fn statuses(ro_id: &str) -> Vec<StatusReport> {
    let item = |item_id: &str, channel: Option<&str>, state| StatusReport {
        target: StatusTarget::Item {
            ro_id: ro_id.into(),
            story_id: "S1".into(),
            item_id: item_id.into(),
            object_id: format!("OBJ-{item_id}"),
            channel: channel.map(Into::into),
        },
        state,
    };
    vec![
        item("I11", Some("CAM1"), ElementState::Play),
        item(
            "I12",
            None,
            ElementState::NotReady("placeholder not bound".into()),
        ),
        StatusReport {
            target: StatusTarget::Story {
                ro_id: ro_id.into(),
                story_id: "S1".into(),
            },
            state: ElementState::Ready,
        },
        StatusReport {
            target: StatusTarget::RunningOrder {
                ro_id: ro_id.into(),
            },
            state: ElementState::Ready,
        },
    ]
}

/// The capture of the gateway's outbound sockets (what it sent the connector and what the
/// connector answered), for the failure report.
fn outbound_capture(data_dir: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(data_dir.join("capture")) else {
        return "(no capture)\n".into();
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let mut out = String::new();
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap_or_default().lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v["socket"] == "outbound" {
                out.push_str(&format!(
                    "{} {} {}: {}\n",
                    v["dir"].as_str().unwrap_or("?"),
                    v["port"].as_str().unwrap_or("?"),
                    v["message"].as_str().unwrap_or("?"),
                    v["text"].as_str().unwrap_or("")
                ));
            }
        }
    }
    out
}

/// Runs `ncs-listener.mjs` against a gateway whose NCS is the connector, listening on free
/// ports, with `status_messages` as given; sends the statuses when the script asks.
async fn listening_ncs(status_messages: &str) {
    let Some(dir) = interop_dir() else { return };
    let data = tempfile::tempdir().unwrap();
    let [listen_lower, listen_upper, listen_query] = support::free_ports();
    let extra = format!(
        "status_messages = \"{status_messages}\"\nheartbeat_interval_s = 1\nreconnect_max_s = 1\n\
         listmachinfo_style = \"container\"\ncapture = true\nresync_on_connect = true\n\n{}",
        objects_toml()
    );
    let config = support::config_with(data.path(), listen_lower, listen_upper, &extra);
    let gw = support::start(config).await;

    let mut child = Command::new("node")
        .arg("ncs-listener.mjs")
        .args(["--host", &gw.lower.ip().to_string()])
        .args(["--lower", &gw.lower.port().to_string()])
        .args(["--upper", &gw.upper.port().to_string()])
        .args(["--listen-lower", &listen_lower.to_string()])
        .args(["--listen-upper", &listen_upper.to_string()])
        .args(["--listen-query", &listen_query.to_string()])
        .args(["--mos-id", support::MOS_ID])
        .args(["--ncs-id", support::NCS_ID])
        .args(["--statuses", status_messages])
        .args(["--objects", &objects_json()])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `node` (Node.js 20 is needed): {e}"));

    let mut err = child.stderr.take().unwrap();
    let read_err = tokio::spawn(async move {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s).await;
        s
    });

    // Read the script's lines as they come; send the statuses when it says the running order
    // exists. Each send's outcome is kept for the checks below.
    let deadline = tokio::time::Instant::now() + SCRIPT_TIMEOUT;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = String::new();
    let mut sent: Option<Vec<Result<(), StatusError>>> = None;
    let mut timed_out = false;
    loop {
        match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Err(_) => {
                timed_out = true;
                break;
            }
            Ok(Ok(Some(line))) => {
                stdout.push_str(&line);
                stdout.push('\n');
                if line.contains("\"step\":\"await statuses\"") && sent.is_none() {
                    let mut outcomes = Vec::new();
                    for report in statuses("INTEROP.RO.STATUS") {
                        outcomes.push(gw.status.send(support::NCS_ID, report).await);
                    }
                    sent = Some(outcomes);
                }
            }
            Ok(Ok(None)) | Ok(Err(_)) => break,
        }
    }
    let status = if timed_out {
        let _ = child.kill().await;
        None
    } else {
        match tokio::time::timeout_at(deadline, child.wait()).await {
            Ok(status) => Some(status.unwrap()),
            Err(_) => {
                let _ = child.kill().await;
                None
            }
        }
    };
    let stderr = read_err.await.unwrap();
    gw.stop().await;

    let report = format!(
        "--- ncs-listener.mjs stdout ---\n{stdout}--- ncs-listener.mjs stderr ---\n{stderr}\
         --- gateway's outbound sockets (capture) ---\n{}",
        outbound_capture(data.path())
    );
    let Some(status) = status else {
        panic!("ncs-listener.mjs did not finish within {SCRIPT_TIMEOUT:?}; killed\n{report}");
    };

    let sent = sent.unwrap_or_else(|| panic!("the script never asked for the statuses\n{report}"));
    // roItemStat cannot say how a story stands: the gateway drops that one and says why.
    let story_expected = if status_messages == "roItemStat" {
        Err(StatusError::Dropped(Dropped::Inexpressible))
    } else {
        Ok(())
    };
    assert_eq!(
        sent,
        vec![Ok(()), Ok(()), story_expected, Ok(())],
        "status API outcomes\n{report}"
    );

    assert!(
        status.success(),
        "ncs-listener.mjs failed ({status})\n{report}"
    );
    let steps: Vec<&str> = stdout.lines().filter(|l| l.starts_with('{')).collect();
    let status_step = if status_messages == "roItemStat" {
        "\"step\":\"roItemStat/roStat parsed by the connector's XML reader\",\"ok\":true"
    } else {
        "\"step\":\"roElementStat ITEM/STORY/RO parsed\",\"ok\":true"
    };
    for expected in [
        "\"step\":\"listen+connect\",\"ok\":true",
        "\"step\":\"gateway connects and its heartbeats are answered\",\"ok\":true",
        "\"step\":\"mosReqAll pause 0 → mosListAll parsed\",\"ok\":true",
        "\"step\":\"mosObjCreate → mosAck with the new objID → mosObj NEW parsed\",\"ok\":true",
        "\"step\":\"roCreate\",\"ok\":true",
        status_step,
        "\"step\":\"roDelete\",\"ok\":true",
        "\"step\":\"no unparsed or refused message from the gateway\",\"ok\":true",
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
    // A known limitation of the connector is worth seeing in the test log.
    for l in steps.iter().filter(|l| l.contains("\"limitation\":\"")) {
        eprintln!("note: {l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mos_connection_library_as_the_listening_ncs_with_ro_element_stat() {
    listening_ncs("roElementStat").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mos_connection_library_as_the_listening_ncs_with_ro_item_stat() {
    listening_ncs("roItemStat").await;
}
