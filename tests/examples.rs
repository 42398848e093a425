//! Every file of `examples-messages/` through the public API: framing in every encoding,
//! parsing (strict for the valid corpus; lenient with the expected deviations and strict
//! refusal for `off-spec/`), writing, re-parsing, and DTD validation of what we write with
//! a real validator (`xmllint --dtdvalid`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::BytesMut;
use mos_gateway::mos::codec::{CodecConfig, MosCodec, WireEncoding, decode_bytes, encode_text};
use mos_gateway::mos::{DeviationKind, Message, Mos, ParseOptions};
use tokio_util::codec::Decoder;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples-messages")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    out.sort();
    out
}

fn valid_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in 0..=5 {
        out.extend(files_in(&root().join(format!("profile{p}"))));
    }
    assert!(out.len() > 40, "examples corpus missing");
    out
}

/// Splits a file into its messages with the codec (as the gateway would receive them).
fn frames(bytes: &[u8], encoding: Option<WireEncoding>) -> Vec<String> {
    let mut codec = MosCodec::new(CodecConfig {
        encoding,
        ..CodecConfig::default()
    });
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(item) = codec.decode(&mut buf).expect("io") {
        out.push(item.expect("frame").text);
    }
    while let Some(item) = codec.decode_eof(&mut buf).expect("io") {
        out.push(item.expect("frame").text);
    }
    out
}

fn messages_of(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let (text, enc) = decode_bytes(&bytes).unwrap();
    assert_eq!(
        enc,
        WireEncoding::Utf8,
        "{}: examples are UTF-8 on disk",
        path.display()
    );
    let out = frames(text.as_bytes(), None);
    assert!(!out.is_empty(), "{}: no message", path.display());
    out
}

#[test]
fn every_example_frames_identically_in_every_encoding() {
    for path in valid_files()
        .into_iter()
        .chain(files_in(&root().join("off-spec")))
    {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = frames(text.as_bytes(), None);
        for enc in [
            WireEncoding::Utf16Be,
            WireEncoding::Utf16Le,
            WireEncoding::Utf8,
        ] {
            let wire = encode_text(&text, enc);
            assert_eq!(
                frames(&wire, None),
                expected,
                "{} auto-detected {enc:?}",
                path.display()
            );
            assert_eq!(
                frames(&wire, Some(enc)),
                expected,
                "{} configured {enc:?}",
                path.display()
            );
        }
    }
}

#[test]
fn every_valid_example_parses_strictly_writes_and_reparses_equal() {
    for path in valid_files() {
        for text in messages_of(&path) {
            let parsed = Mos::parse(&text, ParseOptions::strict())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                !matches!(parsed.mos.message, Message::Unknown { .. }),
                "{}: unknown message {}",
                path.display(),
                parsed.mos.message.name()
            );
            let written = parsed.mos.to_xml();
            let again = Mos::parse(&written, ParseOptions::strict())
                .unwrap_or_else(|e| panic!("{}: rewritten: {e}\n{written}", path.display()));
            assert_eq!(
                again.mos,
                parsed.mos,
                "{}: round trip changed the message",
                path.display()
            );
            assert_eq!(
                again.mos.to_xml(),
                written,
                "{}: writing is not stable",
                path.display()
            );
        }
    }
}

#[test]
fn the_corpus_covers_every_message_type() {
    let mut seen = BTreeSet::new();
    for path in valid_files() {
        for text in messages_of(&path) {
            let p = Mos::parse(&text, ParseOptions::lenient()).unwrap();
            seen.insert(p.mos.message.name().to_string());
        }
    }
    let missing: Vec<_> = Message::NAMES
        .iter()
        .filter(|n| !seen.contains(**n))
        .collect();
    assert!(missing.is_empty(), "no example for {missing:?}");
}

fn expected_deviations() -> Vec<(String, BTreeSet<DeviationKind>)> {
    let text = std::fs::read_to_string(root().join("off-spec/expected-deviations.txt")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (file, kinds) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let kinds = kinds
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| {
                    DeviationKind::from_name(k).unwrap_or_else(|| panic!("unknown kind {k:?}"))
                })
                .collect();
            (file.trim().to_string(), kinds)
        })
        .collect()
}

#[test]
fn off_spec_examples_are_accepted_leniently_with_their_deviations_and_refused_strictly() {
    let expected = expected_deviations();
    let files = files_in(&root().join("off-spec"));
    assert_eq!(
        files.len(),
        expected.len(),
        "every off-spec file needs a line in expected-deviations.txt"
    );
    for (file, kinds) in expected {
        let path = root().join("off-spec").join(&file);
        for text in messages_of(&path) {
            let parsed = Mos::parse(&text, ParseOptions::lenient())
                .unwrap_or_else(|e| panic!("{file}: lenient parse failed: {e}"));
            let got: BTreeSet<DeviationKind> = parsed.deviations.iter().map(|d| d.kind).collect();
            assert!(
                got.is_superset(&kinds),
                "{file}: expected {kinds:?}, got {:?}",
                parsed.deviations
            );
            assert!(!got.is_empty(), "{file}: no deviation reported");
            let err = Mos::parse(&text, ParseOptions::strict())
                .err()
                .unwrap_or_else(|| panic!("{file}: strict parsing accepted it"));
            let reason = err.error.reason();
            assert!(
                !reason.is_empty() && reason.chars().count() <= 128,
                "{file}: {reason}"
            );
            // What lenient parsing produced can be written spec-clean.
            let rewritten = parsed.mos.to_xml();
            Mos::parse(&rewritten, ParseOptions::lenient()).unwrap();
        }
    }
}

fn xmllint() -> Option<PathBuf> {
    let found = Command::new("xmllint").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "xmllint is required in CI (apt-get install libxml2-utils)"
        );
        eprintln!("xmllint not installed: DTD validation skipped");
        return None;
    }
    Some(PathBuf::from("xmllint"))
}

#[test]
fn everything_we_write_is_valid_against_the_dtd() {
    let Some(xmllint) = xmllint() else { return };
    let dtd = Path::new(env!("CARGO_MANIFEST_DIR")).join("dtd/mos-2.8.1.dtd");
    let dir = tempfile::tempdir().unwrap();
    let mut written_names = BTreeSet::new();
    let mut paths = Vec::new();
    for (i, path) in valid_files().iter().enumerate() {
        for (j, text) in messages_of(path).into_iter().enumerate() {
            let parsed = Mos::parse(&text, ParseOptions::lenient()).unwrap();
            written_names.insert(parsed.mos.message.name().to_string());
            let out = dir.path().join(format!(
                "{i:03}-{j}-{}",
                path.file_name().unwrap().to_string_lossy()
            ));
            std::fs::write(&out, parsed.mos.to_xml()).unwrap();
            paths.push(out);
        }
    }
    let missing: Vec<_> = Message::NAMES
        .iter()
        .filter(|n| !written_names.contains(**n))
        .collect();
    assert!(
        missing.is_empty(),
        "not checked against the DTD: {missing:?}"
    );
    for chunk in paths.chunks(50) {
        let out = Command::new(&xmllint)
            .arg("--noout")
            .arg("--dtdvalid")
            .arg(&dtd)
            .args(chunk)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "xmllint rejected what we wrote:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
