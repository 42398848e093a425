//! The shipped configuration files and the configuration contract.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mos_gateway::config::{Config, ConfigError, DEFAULT_TOML, Encoding, Overrides};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// The gateway configurations shipped in config/ (virtual studio descriptions, which are
/// another format, excepted).
fn shipped_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(config_dir())
        .expect("config/ exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("virtual-studio"))
        })
        .collect();
    files.sort();
    files
}

fn load_text(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, "test.toml")
}

fn expect_err(text: &str, fragments: &[&str]) -> String {
    let message = match load_text(text) {
        Ok(_) => panic!("expected an error containing {fragments:?}, got a valid configuration"),
        Err(e) => e.to_string(),
    };
    for f in fragments {
        assert!(message.contains(f), "{message:?} does not contain {f:?}");
    }
    message
}

#[test]
fn every_shipped_file_loads() {
    let files = shipped_files();
    assert!(
        files.len() >= 2,
        "expected gateway.toml and lab.toml, found {files:?}"
    );
    for f in files {
        let config = Config::load(Some(&f)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.origin(), f.display().to_string());
        assert!(!config.summary().is_empty());
    }
}

#[test]
fn shipped_files_use_loopback_addresses_only() {
    for f in shipped_files() {
        let config = Config::load(Some(&f)).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            config.mos.listen.is_loopback(),
            "{}: mos.listen",
            f.display()
        );
        for n in &config.ncs {
            let buddy = n.buddy.iter().flat_map(|b| b.addresses.iter());
            for ip in n.addresses.iter().chain(&n.allowed_addresses).chain(buddy) {
                assert!(ip.is_loopback(), "{}: ncs {} uses {ip}", f.display(), n.id);
            }
        }
    }
}

#[test]
fn embedded_default_equals_the_example_file() {
    let embedded = Config::load(None).unwrap_or_else(|e| panic!("{e}"));
    let file =
        Config::load(Some(&config_dir().join("gateway.toml"))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(embedded, file);
    let text = std::fs::read_to_string(config_dir().join("gateway.toml")).expect("readable");
    assert_eq!(DEFAULT_TOML, text);
    assert!(embedded.origin().contains("embedded default"));
}

#[test]
fn the_example_states_the_contract() {
    let c = Config::load(None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.mos.id, "nmos.gateway.mos");
    assert_eq!(c.mos.listen, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(
        (c.mos.lower_port, c.mos.upper_port, c.mos.query_port),
        (10540, 10541, Some(10542))
    );
    assert_eq!(c.mos.data_dir, PathBuf::from("data"));
    assert!(!c.mos.accept_any_ncs);
    assert_eq!(c.mos.max_message_bytes, 16 * 1024 * 1024);
    assert_eq!(c.mos.max_connections, 64);
    assert!(!c.mos.capture.all && !c.mos.capture.heartbeats);
    assert_eq!(c.mos.capture.max_bytes, 64 * 1024 * 1024);
    assert_eq!((c.mos.capture.files, c.mos.capture.queue), (10, 10_000));
    let enps = c.ncs("ENPS.NCS").expect("ENPS.NCS configured");
    assert_eq!(enps.host, "127.0.0.1");
    assert_eq!(
        (enps.lower_port, enps.upper_port, enps.query_port),
        (10550, 10551, None)
    );
    assert_eq!(enps.encoding, Encoding::Auto);
    assert_eq!(enps.heartbeat_interval, Some(Duration::from_secs(30)));
    assert_eq!(enps.ack_timeout, Duration::from_secs(10));
    assert!(!enps.strict);
    assert!(enps.buddy.is_none());
}

/// Every table and array-of-tables entry of `table`, as paths of keys and indices.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn table_paths(table: &toml::Table, prefix: &[Step], out: &mut Vec<Vec<Step>>) {
    out.push(prefix.to_vec());
    for (k, v) in table {
        let mut path = prefix.to_vec();
        path.push(Step::Key(k.clone()));
        match v {
            toml::Value::Table(t) => table_paths(t, &path, out),
            toml::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let toml::Value::Table(t) = item {
                        let mut p = path.clone();
                        p.push(Step::Index(i));
                        table_paths(t, &p, out);
                    }
                }
            }
            _ => {}
        }
    }
}

fn table_at<'a>(root: &'a mut toml::Table, path: &[Step]) -> &'a mut toml::Table {
    let mut value_table = root;
    let mut i = 0;
    while i < path.len() {
        let Step::Key(k) = &path[i] else {
            unreachable!("paths start with keys")
        };
        let v = value_table.get_mut(k).expect("path exists");
        if let Some(Step::Index(n)) = path.get(i + 1) {
            let item = v.as_array_mut().expect("array").get_mut(*n).expect("entry");
            value_table = item.as_table_mut().expect("table");
            i += 2;
        } else {
            value_table = v.as_table_mut().expect("table");
            i += 1;
        }
    }
    value_table
}

fn key_path(path: &[Step], key: &str) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    if !s.is_empty() {
        s.push('.');
    }
    s.push_str(key);
    s
}

#[test]
fn a_bogus_key_in_any_table_of_any_shipped_file_is_rejected_and_named() {
    for f in shipped_files() {
        let text = std::fs::read_to_string(&f).expect("readable");
        let doc: toml::Table = toml::from_str(&text).expect("valid TOML");
        let mut paths = Vec::new();
        table_paths(&doc, &[], &mut paths);
        assert!(
            paths.len() >= 4,
            "{}: too few tables: {paths:?}",
            f.display()
        );
        for path in paths {
            let mut variant = doc.clone();
            table_at(&mut variant, &path).insert("bogus_key".to_owned(), toml::Value::Integer(1));
            let text = toml::to_string(&variant).expect("serializable");
            let err = match Config::from_toml_str(&text, "variant.toml") {
                Ok(_) => panic!("{}: bogus_key at {path:?} was accepted", f.display()),
                Err(e) => e,
            };
            let message = err.to_string();
            assert!(message.contains("bogus_key"), "{message}");
            assert!(message.starts_with("variant.toml:"), "{message}");
            assert_eq!(
                err.key(),
                Some(key_path(&path, "bogus_key").as_str()),
                "{message}"
            );
        }
    }
}

#[test]
fn overrides_apply_before_validation() {
    let overrides = Overrides {
        mos_id: Some("studio7.gateway.mos".to_owned()),
        listen: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))),
        data_dir: Some(PathBuf::from("/tmp/gw-state")),
        lower_port: Some(11540),
        upper_port: Some(11541),
        query_port: Some(0),
    };
    let c = Config::load_with(None, &overrides).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.mos.id, "studio7.gateway.mos");
    assert_eq!(c.mos.listen, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    assert_eq!(c.mos.data_dir, PathBuf::from("/tmp/gw-state"));
    assert_eq!(
        (c.mos.lower_port, c.mos.upper_port, c.mos.query_port),
        (11540, 11541, None)
    );
    assert!(c.effective_toml().contains("lower_port = 11540"));

    // An override that breaks a rule is reported with its flag.
    let bad = Overrides {
        upper_port: Some(10540),
        ..Overrides::default()
    };
    let e = Config::load_with(None, &bad).expect_err("equal ports");
    let m = e.to_string();
    assert!(m.contains("mos.upper_port (set by --upper-port)"), "{m}");
    // An override that makes the example NCS point at our own ports.
    let bad = Overrides {
        lower_port: Some(10550),
        ..Overrides::default()
    };
    let m = Config::load_with(None, &bad).expect_err("self").to_string();
    assert!(
        m.contains("ncs[0].lower_port") && m.contains("connect to itself"),
        "{m}"
    );
}

#[test]
fn overrides_parse_as_clap_flags() {
    use clap::Parser;
    #[derive(Parser)]
    struct Run {
        #[command(flatten)]
        overrides: Overrides,
    }
    let run = Run::try_parse_from([
        "run",
        "--mos-id",
        "x.mos",
        "--listen",
        "::1",
        "--data-dir",
        "state",
        "--lower-port",
        "1",
        "--upper-port",
        "2",
        "--query-port",
        "0",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.overrides.mos_id.as_deref(), Some("x.mos"));
    assert_eq!(run.overrides.listen, Some("::1".parse().expect("ip")));
    assert_eq!(run.overrides.data_dir, Some(PathBuf::from("state")));
    assert_eq!(
        (
            run.overrides.lower_port,
            run.overrides.upper_port,
            run.overrides.query_port
        ),
        (Some(1), Some(2), Some(0))
    );
    assert!(Run::try_parse_from(["run", "--listen", "not-an-ip"]).is_err());
}

const OURS_ON_LOOPBACK: &str = r#"
[mos]
listen = "127.0.0.1"
lower_port = 10540
upper_port = 10541
query_port = 10542
"#;

#[test]
fn an_ncs_on_our_own_ports_is_refused() {
    let text = format!(
        "{OURS_ON_LOOPBACK}\n[[ncs]]\nid = \"ENPS.NCS\"\nhost = \"127.0.0.1\"\nlower_port = 10540\nupper_port = 10551\n"
    );
    let m = expect_err(
        &text,
        &[
            "test.toml:",
            "ncs[0].lower_port",
            "connect to itself",
            "mos.lower_port",
        ],
    );
    assert!(m.contains("10540"), "{m}");
}

#[test]
fn a_buddy_on_our_own_ports_is_refused() {
    let text = format!(
        "{OURS_ON_LOOPBACK}\n[[ncs]]\nid = \"ENPS.NCS\"\nhost = \"127.0.0.1\"\nlower_port = 10550\nupper_port = 10551\nbuddy = {{ host = \"127.0.0.1\", lower_port = 10552, upper_port = 10541 }}\n"
    );
    expect_err(
        &text,
        &[
            "ncs[0].buddy.upper_port",
            "connect to itself",
            "mos.upper_port",
        ],
    );
}

#[test]
fn missing_file_is_a_read_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.toml");
    let e = Config::load(Some(&path)).expect_err("absent");
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().contains("absent.toml"), "{e}");
}

#[test]
fn a_file_written_to_disk_loads_and_names_itself_in_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mine.toml");
    std::fs::write(&path, "[mos]\nid = \"\"\n").expect("write");
    let e = Config::load(Some(&path)).expect_err("empty id");
    let m = e.to_string();
    assert!(
        m.starts_with(&format!("{}:2: mos.id:", path.display())),
        "{m}"
    );
    std::fs::write(&path, "[mos]\nid = \"ok.mos\"\n").expect("write");
    let c = Config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.mos.id, "ok.mos");
    assert!(c.ncs.is_empty());
}

#[test]
fn capture_limits_are_checked() {
    expect_err(
        "[mos]\ncapture_files = 0\n",
        &["mos.capture_files", "1 to 100000"],
    );
    expect_err("[mos]\ncapture_queue = 0\n", &["mos.capture_queue"]);
    expect_err(
        "[mos]\ncapture_max_bytes = 10\n",
        &["mos.capture_max_bytes", "1024"],
    );
    let c = load_text("[mos]\ncapture = true\ncapture_heartbeats = true\ncapture_files = 2\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.mos.capture.all && c.mos.capture.heartbeats);
    assert_eq!(c.mos.capture.files, 2);
}
