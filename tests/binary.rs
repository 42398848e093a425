//! The `mos-gateway run` binary as an operator starts it: flags over the configuration
//! file, a configuration refused at start, and what lenient mode writes to the log.

#[path = "common/process.rs"]
mod process;
use process::{config_text, free_ports, start_gateway};
#[path = "common/blocking_client.rs"]
mod blocking_client;
use blocking_client::Client;

use std::process::Command;
use std::time::Duration;

use mos_gateway::mos::Message;

const NCS_ID: &str = "ENPS.NCS";

fn envelope(mos_id: &str, id: u32, body: &str) -> String {
    format!(
        "<mos><mosID>{mos_id}</mosID><ncsID>{NCS_ID}</ncsID><messageID>{id}</messageID>{body}</mos>"
    )
}

#[test]
fn flags_override_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("elsewhere");
    let data_arg = data.display().to_string();
    let p = start_gateway(
        dir.path(),
        &["--mos-id", "flag.mos", "--data-dir", &data_arg],
        |ports| config_text(&dir.path().join("data"), ports, ""),
    );
    let mut ncs = Client::connect(p.upper);
    // Our mosID is the flag's: a message to the file's mosID is refused, one to the flag's
    // answered.
    let refused = ncs
        .request(
            "1",
            &envelope("nmos.gateway.mos", 1, "<roReq><roID>R</roID></roReq>"),
        )
        .unwrap();
    assert!(
        matches!(&refused.message, Message::RoAck(a) if a.status.starts_with("Wrong mosID")),
        "{:?}",
        refused.message
    );
    let hb = ncs
        .request("2", &envelope("flag.mos", 2, "<heartbeat/>"))
        .unwrap();
    assert!(matches!(hb.message, Message::Heartbeat(_)));
    assert_eq!(hb.mos_id, "flag.mos");
    // The store is where the flag says.
    assert!(data.join("gateway.db").exists(), "{}", p.log_text());
    assert!(!dir.path().join("data").join("gateway.db").exists());
}

#[test]
fn a_configuration_that_would_connect_to_our_own_ports_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports();
    // The NCS "listens" on our own lower and upper ports.
    let text = config_text(&dir.path().join("data"), ports, "")
        .replace("lower_port = 1\n", &format!("lower_port = {}\n", ports[0]))
        .replace("upper_port = 2\n", &format!("upper_port = {}\n", ports[1]));
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mos-gateway"))
        .arg("run")
        .arg("--config")
        .arg(&file)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("connect to itself"), "{said}");
}

#[test]
fn lenient_mode_logs_each_tolerated_deviation_once_per_peer_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let p = start_gateway(dir.path(), &[], |ports| {
        config_text(&dir.path().join("data"), ports, "")
    });
    let line = "tolerated off-spec input";
    let mut id = 0;
    let mut send = |ncs: &mut Client, body: &str| {
        id += 1;
        ncs.request(&id.to_string(), &envelope("nmos.gateway.mos", id, body))
            .unwrap()
    };
    // Two kinds, each twice, on two connections from the same address.
    for _ in 0..2 {
        let mut ncs = Client::connect(p.upper);
        send(
            &mut ncs,
            "<roReadyToAir><roID>R</roID><roAir>ready</roAir></roReadyToAir>",
        );
        send(
            &mut ncs,
            "<heartbeat><time>2026-11-25 18:00:00</time></heartbeat>",
        );
    }
    // Every reply is in, so every log line is written (or never will be).
    std::thread::sleep(Duration::from_millis(200));
    let log = p.log_text();
    let logged: Vec<&str> = log.lines().filter(|l| l.contains(line)).collect();
    assert_eq!(logged.len(), 2, "{log}");
    assert_ne!(logged[0], logged[1]);
}

#[test]
fn a_ro_create_for_a_held_running_order_replaces_it_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let p = start_gateway(dir.path(), &[], |ports| {
        config_text(&dir.path().join("data"), ports, "")
    });
    let mut ncs = Client::connect(p.upper);
    let create = |story: &str| {
        format!(
            "<roCreate><roID>R</roID><roSlug>R</roSlug><story><storyID>{story}</storyID></story></roCreate>"
        )
    };
    for (id, story) in [(1, "FIRST"), (2, "SECOND")] {
        let r = ncs
            .request(
                &id.to_string(),
                &envelope("nmos.gateway.mos", id, &create(story)),
            )
            .unwrap();
        assert!(
            matches!(&r.message, Message::RoAck(a) if a.is_ok()),
            "{:?}",
            r.message
        );
    }
    let r = ncs
        .request(
            "3",
            &envelope("nmos.gateway.mos", 3, "<roReq><roID>R</roID></roReq>"),
        )
        .unwrap();
    let Message::RoList(list) = r.message else {
        panic!("{:?}", r.message)
    };
    let stories: Vec<&str> = list.0.stories.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(stories, ["SECOND"]);
    p.wait_log("roCreate for a running order already held: replaced it", 1);
}
