//! The `mos-gateway` binary's subcommands, run as a user would.

use std::path::Path;
use std::process::Command;

use mos_gateway::mos::codec::{WireEncoding, encode_text};

fn gateway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mos-gateway"))
}

fn example(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples-messages")
        .join(rel)
        .display()
        .to_string()
}

#[test]
fn help_explains_each_subcommand() {
    let out = gateway().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for cmd in ["run", "validate", "replay"] {
        assert!(text.contains(cmd), "{text}");
    }
    let out = gateway().args(["validate", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("UTF-16BE"));
}

#[test]
fn validate_reports_each_message_and_succeeds_on_valid_files() {
    let out = gateway()
        .args([
            "validate",
            &example("profile2/roCreate.xml"),
            &example("profile0/heartbeat.xml"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("roCreate.xml:1: roCreate: valid"), "{text}");
    assert!(text.contains("heartbeat: valid"), "{text}");
}

#[test]
fn validate_names_each_violation_with_its_line_and_fails() {
    let out = gateway()
        .args([
            "validate",
            &example("off-spec/roElementAction-children-out-of-order.xml"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("roElementAction: INVALID"), "{text}");
    assert!(text.contains("element_target"), "{text}");
}

#[test]
fn validate_reads_many_messages_per_file_in_any_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let a = std::fs::read_to_string(example("profile0/heartbeat.xml")).unwrap();
    let b = std::fs::read_to_string(example("profile2/roDelete.xml")).unwrap();
    let bad = "<mos><mosID>m</mosID><ncsID>n</ncsID><messageID>3</messageID><roDelete/></mos>";
    for enc in [
        WireEncoding::Utf16Be,
        WireEncoding::Utf16Le,
        WireEncoding::Utf8,
    ] {
        let path = dir.path().join(format!("{enc:?}.mos"));
        std::fs::write(&path, encode_text(&format!("{a}\r\n{b}\n{bad}"), enc)).unwrap();
        let out = gateway().arg("validate").arg(&path).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{enc:?}: {text}");
        assert_eq!(text.matches(": valid").count(), 2, "{enc:?}: {text}");
        assert!(text.contains("roDelete: INVALID"), "{enc:?}: {text}");
    }
}
