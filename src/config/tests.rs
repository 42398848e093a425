use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::nmos;
use super::raw::{RawConfig, RawNcs};
use super::*;
use crate::mos::structures::ObjType;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, "t.toml")
}

fn ok(text: &str) -> Config {
    match load(text) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// Loads `text` and checks the error names `key` and contains every fragment.
fn fails(text: &str, key: &str, fragments: &[&str]) {
    let err = match load(text) {
        Ok(_) => panic!("accepted, expected an error at {key}:\n{text}"),
        Err(e) => e,
    };
    let message = err.to_string();
    assert!(message.starts_with("t.toml"), "{message}");
    assert_eq!(err.key(), Some(key), "{message}");
    for f in fragments {
        assert!(message.contains(f), "{message:?} lacks {f:?}");
    }
}

/// A minimal valid NCS entry followed by `extra` lines.
fn ncs(extra: &str) -> String {
    format!(
        "[[ncs]]\nid = \"N1\"\nhost = \"127.0.0.1\"\nlower_port = 10550\nupper_port = 10551\n{extra}\n"
    )
}

#[test]
fn empty_text_gives_the_documented_defaults() {
    let empty = ok("");
    let example = ok(DEFAULT_TOML);
    assert_eq!(empty.mos, example.mos);
    assert_eq!(empty.log, example.log);
    assert!(empty.ncs.is_empty());
    assert!(
        empty
            .warnings()
            .iter()
            .any(|w| w.contains("every NCS will be refused"))
    );
    // An entry with only the keys that have no default equals the example's entry.
    let minimal = ok(
        "[[ncs]]\nid = \"ENPS.NCS\"\nhost = \"127.0.0.1\"\nlower_port = 10550\nupper_port = 10551\n",
    );
    assert_eq!(minimal.ncs, example.ncs);
}

#[test]
fn raw_defaults_round_trip_through_toml() {
    let mut raw = RawConfig::default();
    raw.ncs.push(RawNcs {
        id: "N".into(),
        host: "127.0.0.1".into(),
        lower_port: 1,
        upper_port: 2,
        ..RawNcs::default()
    });
    let text = toml::to_string(&raw).unwrap_or_default();
    let back: RawConfig = toml::from_str(&text).unwrap_or_default();
    assert_eq!(back, raw);
}

#[test]
fn effective_toml_loads_back_to_the_same_config() {
    let lab = include_str!("../../config/lab.toml");
    let c = ok(lab);
    let again = ok(c.effective_toml());
    assert_eq!(c, again);
}

#[test]
fn syntax_errors_name_the_line() {
    let e = load("[mos]\nid = \"x\"\nlower_port = = 3\n").err();
    let m = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(m.starts_with("t.toml:3: not valid TOML"), "{m}");
}

#[test]
fn wrong_types_and_values_name_the_key() {
    fails(
        "[mos]\nlower_port = \"x\"\n",
        "mos.lower_port",
        &["t.toml:2:", "u16"],
    );
    fails("[mos]\nlower_port = 70000\n", "mos.lower_port", &["70000"]);
    fails(
        &ncs("ack_timeout_s = \"ten\""),
        "ncs[0].ack_timeout_s",
        &["number of seconds"],
    );
    fails("ncs = 3\n", "ncs", &["invalid type"]);
}

#[test]
fn unknown_keys_are_named() {
    fails(
        "[mos]\nlisten_port = 1\n",
        "mos.listen_port",
        &["unknown field `listen_port`"],
    );
    fails("[logging]\n", "logging", &["unknown field `logging`"]);
    fails(
        &ncs("heartbeat_s = 1"),
        "ncs[0].heartbeat_s",
        &["unknown field `heartbeat_s`"],
    );
    fails(
        &ncs("buddy = { host = \"127.0.0.1\", port = 1 }"),
        "ncs[0].buddy.port",
        &["unknown field `port`"],
    );
}

#[test]
fn enumerations_list_the_allowed_values() {
    fails(
        &ncs("encoding = \"utf16\""),
        "ncs[0].encoding",
        &["`auto`, `utf16be`, `utf16le`, `utf8`"],
    );
    fails(
        &ncs("listmachinfo_style = \"nested\""),
        "ncs[0].listmachinfo_style",
        &["`flat` or `container`"],
    );
    fails(
        &ncs("status_messages = \"roStat\""),
        "ncs[0].status_messages",
        &["`roItemStat` or `roElementStat`"],
    );
    fails(
        &ncs("failover = \"hot\""),
        "ncs[0].failover",
        &["`buddy` or `hot_standby`"],
    );
    let c = ok(&ncs(
        "encoding = \"utf16le\"\nlistmachinfo_style = \"container\"\nstatus_messages = \"roElementStat\"",
    ));
    assert_eq!(c.ncs[0].encoding, Encoding::Utf16Le);
    assert_eq!(c.ncs[0].listmachinfo_style, ListMachInfoStyle::Container);
    assert_eq!(c.ncs[0].status_messages, StatusMessages::RoElementStat);
}

#[test]
fn mos_id_rules() {
    fails(
        "[mos]\nid = \"\"\n",
        "mos.id",
        &["must not be empty", "mosID"],
    );
    let long = "m".repeat(129);
    fails(
        &format!("[mos]\nid = \"{long}\"\n"),
        "mos.id",
        &["129 characters", "at most 128"],
    );
    ok(&format!("[mos]\nid = \"{}\"\n", "é".repeat(128)));
    fails("[mos]\nid = \" gw.mos\"\n", "mos.id", &["white space"]);
    fails(
        "[mos]\nid = \"gw\\tmos\"\n",
        "mos.id",
        &["control character"],
    );
}

#[test]
fn ncs_id_rules() {
    fails(
        "[[ncs]]\nhost = \"127.0.0.1\"\nlower_port = 10550\nupper_port = 10551\n",
        "ncs[0].id",
        &["t.toml:1:", "must not be empty", "ncsID"],
    );
    let long = "n".repeat(129);
    fails(
        &ncs("").replace("\"N1\"", &format!("\"{long}\"")),
        "ncs[0].id",
        &["at most 128"],
    );
    let two = format!(
        "{}{}",
        ncs(""),
        ncs("").replace("10550", "10560").replace("10551", "10561")
    );
    fails(
        &two,
        "ncs[1].id",
        &["t.toml:8:", "\"N1\" is already the id of ncs[0]", "unique"],
    );
}

#[test]
fn listen_must_be_an_ip_address() {
    fails(
        "[mos]\nlisten = \"gateway.local\"\n",
        "mos.listen",
        &["expected an IP address", "0.0.0.0"],
    );
    let c = ok("[mos]\nlisten = \"::\"\n");
    assert_eq!(c.mos.listen, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    let c = ok("[mos]\nlisten = \"[::1]\"\n");
    assert_eq!(c.mos.listen, IpAddr::V6(Ipv6Addr::LOCALHOST));
}

#[test]
fn our_ports_must_be_distinct_and_nonzero() {
    fails("[mos]\nlower_port = 0\n", "mos.lower_port", &["1 to 65535"]);
    fails("[mos]\nupper_port = 0\n", "mos.upper_port", &["1 to 65535"]);
    fails(
        "[mos]\nupper_port = 10540\n",
        "mos.upper_port",
        &["also mos.lower_port", "must differ"],
    );
    fails(
        "[mos]\nquery_port = 10540\n",
        "mos.query_port",
        &["also mos.lower_port"],
    );
    fails(
        "[mos]\nquery_port = 10541\n",
        "mos.query_port",
        &["also mos.upper_port"],
    );
    let c = ok("[mos]\nquery_port = 0\n");
    assert_eq!(c.mos.query_port, None);
    assert_eq!(c.mos.query_addr(), None);
    assert_eq!(c.mos.lower_addr().port(), 10540);
}

#[test]
fn mos_limits() {
    fails(
        "[mos]\ndata_dir = \"\"\n",
        "mos.data_dir",
        &["must not be empty"],
    );
    fails(
        "[mos]\nmax_message_bytes = 100\n",
        "mos.max_message_bytes",
        &["1024 to"],
    );
    fails(
        "[mos]\nmax_message_bytes = 2000000000\n",
        "mos.max_message_bytes",
        &["out of range"],
    );
    fails(
        "[mos]\nmessage_stall_s = 0\n",
        "mos.message_stall_s",
        &["more than 0"],
    );
    fails(
        "[mos]\nmax_connections = 1\n",
        "mos.max_connections",
        &["2 to 65535"],
    );
    fails(
        "[mos]\nmax_connections = -1\n",
        "mos.max_connections",
        &["u32"],
    );
}

#[test]
fn log_level_must_be_a_filter() {
    fails("[log]\nlevel = \"\"\n", "log.level", &["must not be empty"]);
    fails(
        "[log]\nlevel = \"loud=[\"\n",
        "log.level",
        &["not a valid log filter"],
    );
    assert_eq!(
        ok("[log]\nlevel = \"warn,mos_gateway=trace\"\n").log.level,
        "warn,mos_gateway=trace"
    );
}

#[test]
fn ncs_ports_must_be_distinct_and_nonzero() {
    fails(
        &ncs("").replace("10550", "0"),
        "ncs[0].lower_port",
        &["1 to 65535"],
    );
    fails(
        &ncs("").replace("10551", "0"),
        "ncs[0].upper_port",
        &["1 to 65535"],
    );
    fails(
        &ncs("").replace("10551", "10550"),
        "ncs[0].upper_port",
        &["also ncs[0].lower_port"],
    );
    fails(
        &ncs("query_port = 10551"),
        "ncs[0].query_port",
        &["also ncs[0].upper_port"],
    );
    assert_eq!(
        ok(&ncs("query_port = 10552")).ncs[0].query_port,
        Some(10552)
    );
}

#[test]
fn hosts_and_addresses() {
    fails(
        &ncs("").replace("host = \"127.0.0.1\"\n", ""),
        "ncs[0].host",
        &["missing"],
    );
    fails(
        &ncs("").replace("\"127.0.0.1\"", "\"127.0.0.1:10540\""),
        "ncs[0].host",
        &["without a port"],
    );
    fails(
        &ncs("").replace("\"127.0.0.1\"", "\"enps main\""),
        "ncs[0].host",
        &["not a valid host name"],
    );
    fails(
        &ncs("allowed_addresses = [\"127.0.0.3\", \"ws.local\"]"),
        "ncs[0].allowed_addresses[1]",
        &["t.toml:6:", "expected an IP address"],
    );
    let c = ok(&ncs("").replace("\"127.0.0.1\"", "\"localhost\""));
    assert!(
        c.ncs[0]
            .addresses
            .contains(&IpAddr::V4(Ipv4Addr::LOCALHOST))
    );
}

#[test]
fn times_are_typed_and_checked() {
    let c = ok(&ncs(
        "heartbeat_interval_s = 0\nack_timeout_s = 0.25\nreconnect_max_s = 5",
    ));
    let n = &c.ncs[0];
    assert_eq!(n.heartbeat_interval, None);
    assert_eq!(n.ack_timeout, Duration::from_millis(250));
    assert_eq!(n.reconnect_max, Duration::from_secs(5));
    fails(
        &ncs("ack_timeout_s = 0"),
        "ncs[0].ack_timeout_s",
        &["more than 0"],
    );
    fails(
        &ncs("reconnect_max_s = 0.0"),
        "ncs[0].reconnect_max_s",
        &["more than 0"],
    );
    fails(
        &ncs("heartbeat_interval_s = -1"),
        "ncs[0].heartbeat_interval_s",
        &["out of range"],
    );
    fails(
        &ncs("ack_timeout_s = nan"),
        "ncs[0].ack_timeout_s",
        &["out of range"],
    );
    fails(
        &ncs("ack_timeout_s = 1e30"),
        "ncs[0].ack_timeout_s",
        &["out of range"],
    );
    fails(
        &ncs("queue_limit = 0"),
        "ncs[0].queue_limit",
        &["1 to 1000000"],
    );
}

#[test]
fn buddy_rules() {
    let c = ok(&ncs(
        "failover = \"hot_standby\"\nbuddy = { host = \"127.0.0.1\", lower_port = 10552, upper_port = 10553 }",
    ));
    let b = c.ncs[0]
        .buddy
        .as_ref()
        .map(|b| (b.lower_port, b.upper_port, b.query_port));
    assert_eq!(b, Some((10552, 10553, None)));
    assert_eq!(c.ncs[0].failover, Failover::HotStandby);
    fails(
        &ncs("failover = \"hot_standby\""),
        "ncs[0].failover",
        &["needs a buddy"],
    );
    fails(
        &ncs("buddy = { lower_port = 10552, upper_port = 10553 }"),
        "ncs[0].buddy.host",
        &["missing"],
    );
    fails(
        &ncs("buddy = { host = \"127.0.0.1\", lower_port = 10552, upper_port = 10552 }"),
        "ncs[0].buddy.upper_port",
        &["also ncs[0].buddy.lower_port"],
    );
    fails(
        &ncs("buddy = { host = \"127.0.0.1\", lower_port = 10550, upper_port = 10551 }"),
        "ncs[0].buddy",
        &["same host and ports"],
    );
}

#[test]
fn self_connection_is_refused() {
    // NCS on our lower port over loopback.
    fails(
        &ncs("").replace("10550", "10540"),
        "ncs[0].lower_port",
        &["connect to itself", "mos.lower_port = 10540"],
    );
    // NCS query port on our query port.
    fails(
        &ncs("query_port = 10542"),
        "ncs[0].query_port",
        &["mos.query_port"],
    );
    // Any loopback address counts, and `localhost` too.
    fails(
        &ncs("")
            .replace("10551", "10541")
            .replace("\"127.0.0.1\"", "\"127.0.0.9\""),
        "ncs[0].upper_port",
        &["connect to itself"],
    );
    fails(
        &ncs("")
            .replace("10551", "10541")
            .replace("\"127.0.0.1\"", "\"localhost\""),
        "ncs[0].upper_port",
        &["connect to itself"],
    );
    // The listen address itself (not loopback) and all-interfaces listening.
    fails(
        &format!(
            "[mos]\nlisten = \"10.1.2.3\"\n{}",
            ncs("")
                .replace("\"127.0.0.1\"", "\"10.1.2.3\"")
                .replace("10550", "10540")
        ),
        "ncs[0].lower_port",
        &["mos.listen = 10.1.2.3"],
    );
    fails(
        &format!(
            "[mos]\nlisten = \"0.0.0.0\"\n{}",
            ncs("").replace("10550", "10540")
        ),
        "ncs[0].lower_port",
        &["connect to itself"],
    );
    // Buddy on our ports.
    fails(
        &ncs("buddy = { host = \"127.0.0.1\", lower_port = 10540, upper_port = 10553 }"),
        "ncs[0].buddy.lower_port",
        &["connect to itself"],
    );
    // A different host with our port numbers is fine, and so are our ports with query off.
    ok(&ncs("")
        .replace("\"127.0.0.1\"", "\"192.0.2.10\"")
        .replace("10550", "10540")
        .replace("10551", "10541"));
    ok(&format!(
        "[mos]\nquery_port = 0\n{}",
        ncs("query_port = 10542")
    ));
}

#[test]
fn lookups() {
    let text = format!(
        "{}allowed_addresses = [\"127.0.0.5\"]\nbuddy = {{ host = \"127.0.0.7\", lower_port = 10552, upper_port = 10553 }}\n{}",
        ncs(""),
        ncs("")
            .replace("N1", "N2")
            .replace("10550", "10560")
            .replace("10551", "10561"),
    );
    let c = ok(&text);
    assert_eq!(c.ncs("N1").map(|n| n.upper_port), Some(10551));
    assert!(c.ncs("n1").is_none());
    let ids = |ip: IpAddr| {
        c.ncs_for_address(ip)
            .iter()
            .map(|n| n.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(IpAddr::V4(Ipv4Addr::LOCALHOST)), ["N1", "N2"]);
    assert_eq!(ids(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5))), ["N1"]);
    assert_eq!(ids(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7))), ["N1"]);
    // An IPv4-mapped IPv6 peer address matches its IPv4 form.
    assert_eq!(
        ids("::ffff:127.0.0.5"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))),
        ["N1"]
    );
    assert!(ids(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6))).is_empty());
}

#[test]
fn summary_lists_listeners_and_ncss() {
    let c = ok(DEFAULT_TOML);
    let s = c.summary();
    let lines: Vec<&str> = s.lines().collect();
    assert!(
        lines[0].contains("embedded default") || lines[0].contains("t.toml"),
        "{s}"
    );
    assert!(
        s.contains(
            "mosID nmos.gateway.mos listening on 127.0.0.1: lower 10540, upper 10541, query 10542"
        ),
        "{s}"
    );
    assert!(
        s.contains("expecting NCS ENPS.NCS at 127.0.0.1: lower 10550, upper 10551;"),
        "{s}"
    );
    let lab = ok(include_str!("../../config/lab.toml"));
    let s = lab.summary();
    assert!(s.contains("accept_any_ncs = true"), "{s}");
    assert!(
        s.contains("buddy 127.0.0.1 (lower 10592, upper 10593, hot_standby)"),
        "{s}"
    );
    assert!(s.contains("no heartbeats"), "{s}");
    assert!(lab.warnings().iter().any(|w| w.contains("accept_any_ncs")));
}

#[test]
fn unlisted_ncs_gets_the_documented_defaults() {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4));
    let n = NcsConfig::for_unlisted("LAB.NCS", ip);
    let documented = ok(&ncs("")).ncs.remove(0);
    assert_eq!(n.encoding, documented.encoding);
    assert_eq!(n.heartbeat_interval, documented.heartbeat_interval);
    assert_eq!(n.ack_timeout, documented.ack_timeout);
    assert_eq!(n.queue_limit, documented.queue_limit);
    assert!(n.accepts_address(ip));
    assert_eq!(
        n.upper_targets(),
        vec![std::net::SocketAddr::new(ip, 10541)]
    );
}

/// A minimal valid `[[object]]` followed by `extra` lines.
fn object(extra: &str) -> String {
    format!("[[object]]\nid = \"CLIP-1\"\nslug = \"Clip one\"\ntype = \"VIDEO\"\n{extra}\n")
}

#[test]
fn objects_load_in_file_order() {
    let c = ok(&format!(
        "{}group = \"Clips\"\ndescription = \"d\"\nduration_s = 12.5\n\n[[object]]\nid = \"S\"\nslug = \"Still\"\ntype = \"STILL\"\nduration_s = 3\n",
        object("")
    ));
    assert_eq!(c.objects.len(), 2);
    let clip = &c.objects[0];
    assert_eq!(clip.id, "CLIP-1");
    assert_eq!(clip.obj_type, ObjType::Video);
    assert_eq!(clip.group.as_deref(), Some("Clips"));
    assert_eq!(clip.description.as_deref(), Some("d"));
    assert_eq!(clip.duration_s, Some(12.5));
    assert_eq!(clip.duration_samples(), 12_500);
    assert_eq!(c.objects[1].duration_samples(), 3_000);
    assert_eq!(c.object("S").map(|o| o.obj_type), Some(ObjType::Still));
    assert!(c.object("nope").is_none());
    let plain = ok(&object(""));
    assert_eq!(plain.objects[0].group, None);
    assert_eq!(plain.objects[0].duration_samples(), 0);
    assert!(ok("").objects.is_empty());
    assert!(plain.summary().contains("1 object(s) declared"));
    // The effective configuration keeps them.
    let again = ok(c.effective_toml());
    assert_eq!(again.objects, c.objects);
}

#[test]
fn object_rules() {
    fails(
        &format!("{}{}", object(""), object("")),
        "object[1].id",
        &["\"CLIP-1\" is already the id of object[0]"],
    );
    fails(
        "[[object]]\nslug = \"x\"\ntype = \"VIDEO\"\n",
        "object[0].id",
        &["must not be empty"],
    );
    fails(
        &format!(
            "[[object]]\nid = \"{}\"\nslug = \"x\"\ntype = \"VIDEO\"\n",
            "i".repeat(129)
        ),
        "object[0].id",
        &["129 characters"],
    );
    fails(
        "[[object]]\nid = \" A\"\nslug = \"x\"\ntype = \"VIDEO\"\n",
        "object[0].id",
        &["white space"],
    );
    fails(
        "[[object]]\nid = \"A\"\nslug = \"  \"\ntype = \"VIDEO\"\n",
        "object[0].slug",
        &["must not be empty", "objSlug"],
    );
    fails(
        &format!(
            "[[object]]\nid = \"A\"\nslug = \"{}\"\ntype = \"VIDEO\"\n",
            "s".repeat(129)
        ),
        "object[0].slug",
        &["129 characters", "at most 128"],
    );
    fails(
        "[[object]]\nid = \"A\"\nslug = \"x\"\n",
        "object[0].type",
        &["missing", "\"VIDEO\""],
    );
    fails(
        &object("").replace("\"VIDEO\"", "\"video\""),
        "object[0].type",
        &["`STILL`, `AUDIO`, `VIDEO`, `OTHER`"],
    );
    fails(
        &object("group = \"\""),
        "object[0].group",
        &["must not be empty"],
    );
    fails(
        &object(&format!("group = \"{}\"", "g".repeat(130))),
        "object[0].group",
        &["130 characters"],
    );
    fails(
        &object("duration_s = -1"),
        "object[0].duration_s",
        &["-1 is out of range", "expected 0 up to"],
    );
    fails(
        &object("duration_s = nan"),
        "object[0].duration_s",
        &["out of range"],
    );
    fails(
        &object("duration_s = 5e9"),
        "object[0].duration_s",
        &["out of range"],
    );
    fails(
        &object("duration = 3"),
        "object[0].duration",
        &["unknown field `duration`"],
    );
    ok(&object("duration_s = 0"));
}

#[test]
fn searchable_schema_url_rules() {
    assert_eq!(
        ok("").mos.searchable_schema_url,
        "http://nmos-gateway.local/mos/search.xsd"
    );
    assert_eq!(
        ok("[mos]\nsearchable_schema_url = \"\"\n")
            .mos
            .searchable_schema_url,
        ""
    );
    ok("[mos]\nsearchable_schema_url = \"https://x.example/s.xsd\"\n");
    fails(
        "[mos]\nsearchable_schema_url = \"ftp://x/s.xsd\"\n",
        "mos.searchable_schema_url",
        &["not an http:// or https:// URL"],
    );
    fails(
        "[mos]\nsearchable_schema_url = \"http://\"\n",
        "mos.searchable_schema_url",
        &["not an http"],
    );
    fails(
        "[mos]\nsearchable_schema_url = \"http://a b/\"\n",
        "mos.searchable_schema_url",
        &["not an http"],
    );
    fails(
        &format!(
            "[mos]\nsearchable_schema_url = \"http://x/{}\"\n",
            "a".repeat(300)
        ),
        "mos.searchable_schema_url",
        &["at most 255"],
    );
}

// ---------------------------------------------------------------------------------------------
// [nmos], [[destination]], [[preset]], [[binding]]
// ---------------------------------------------------------------------------------------------

const CAM1: &str = "5a8e6f0c-3b1d-4c2a-9f7e-1d2c3b4a5f60";
const MIXER_IN1: &str = "c0ffee00-1234-4abc-8def-0123456789ab";

fn dest(extra: &str) -> String {
    format!("[[destination]]\nname = \"PGM\"\nreceivers = [\"{MIXER_IN1}\"]\n{extra}\n")
}

fn preset_entry(extra: &str) -> String {
    format!(
        "[[preset]]\nid = \"PRESET-INTERVIEW\"\nslug = \"Interview 2-shot\"\nconnections = [{{ sender = \"Camera 1\", receiver = \"{MIXER_IN1}\" }}]\n{extra}\n"
    )
}

#[test]
fn nmos_defaults_match_the_example() {
    let empty = ok("");
    let example = ok(DEFAULT_TOML);
    assert_eq!(empty.nmos, example.nmos);
    let n = &empty.nmos;
    assert_eq!(n.registry, Registry::Auto);
    assert!(n.nodes.is_empty());
    assert_eq!(n.poll_interval, Duration::from_secs(5));
    assert_eq!(n.http_timeout, Duration::from_millis(2000));
    assert!(n.allow_http);
    assert_eq!(n.ca_bundle, None);
    assert_eq!(n.debounce, Duration::from_millis(2000));
    assert_eq!(n.mos_schema, nmos::DEFAULT_MOS_SCHEMA);
    assert_eq!(n.default_destination, None);
    assert!(!n.ready_to_air_stages);
    assert!(n.take_all_or_nothing);
    assert_eq!(n.on_423, On423::Report);
    assert_eq!(n.on_stop, OnStop::None);
    assert_eq!(n.auth, None);
    assert!(empty.destinations.is_empty() && empty.presets.is_empty());
    assert!(empty.bindings.is_empty());
    // The example maps nothing (its mapping tables are commented examples); the demo's load.
    assert!(example.destinations.is_empty() && example.presets.is_empty());
    let demo = ok(include_str!("../../config/demo.toml"));
    assert_eq!(demo.destinations[0].name, "PGM");
    assert_eq!(demo.presets[0].id, "PRESET-2SHOT");
    assert_eq!(demo.presets[0].obj_type, ObjType::Video);
    assert_eq!(
        demo.bindings[0].target,
        BindingTarget::Sender(ResourceRef::Label("PLAYOUT1-V".into()))
    );
    assert!(
        demo.summary()
            .contains("3 destination(s), 1 preset(s), 1 binding(s)")
    );
}

#[test]
fn nmos_settings_load() {
    let c = ok(&(
        "[nmos]\nregistry = \"https://registry.studio.example:8443/x-nmos/query/\"\nnodes = [\"http://192.0.2.10:3212/x-nmos/node/\"]\npoll_interval_s = 0.5\nhttp_timeout_ms = 750\ndebounce_ms = 0\ndefault_destination = \"pgm\"\nready_to_air_stages = true\ntake_all_or_nothing = false\non_423 = \"clear\"\non_stop = \"disconnect\"\n[nmos.auth]\ntoken_url = \"https://auth.studio.example/token\"\nclient_id = \"mos-gateway-1\"\nclient_secret_env = \"NMOS_CLIENT_SECRET\"\nscope = \" query   connection \"\n"
            .to_owned()
            + &dest("")),
    );
    let n = &c.nmos;
    assert_eq!(
        n.registry,
        Registry::Url("https://registry.studio.example:8443/x-nmos/query/".into())
    );
    assert_eq!(
        n.nodes,
        vec!["http://192.0.2.10:3212/x-nmos/node/".to_owned()]
    );
    assert_eq!(n.poll_interval, Duration::from_millis(500));
    assert_eq!(n.http_timeout, Duration::from_millis(750));
    assert_eq!(n.debounce, Duration::ZERO);
    // Matched without regard to case, stored as configured.
    assert_eq!(n.default_destination.as_deref(), Some("PGM"));
    assert!(n.ready_to_air_stages && !n.take_all_or_nothing);
    assert_eq!((n.on_423, n.on_stop), (On423::Clear, OnStop::Disconnect));
    let auth = n.auth.as_ref().expect("auth configured");
    assert_eq!(auth.secret, SecretSource::Env("NMOS_CLIENT_SECRET".into()));
    assert_eq!(auth.scope, "query connection");
    assert_eq!(
        ok("[nmos]\nregistry = \"\"\n").nmos.registry,
        Registry::None
    );
    let again = ok(c.effective_toml());
    assert_eq!(again, c);
}

#[test]
fn nmos_setting_rules() {
    fails(
        "[nmos]\nregistry = \"registry.local\"\n",
        "nmos.registry",
        &["\"auto\", \"\" or an http:// or https:// URL"],
    );
    fails(
        "[nmos]\nregistry = \"ftp://r/\"\n",
        "nmos.registry",
        &["scheme ftp"],
    );
    fails(
        "[nmos]\nallow_http = false\nregistry = \"http://r:80/\"\n",
        "nmos.registry",
        &["allow_http = false", "https:// URL"],
    );
    fails(
        "[nmos]\nnodes = [\"https://n1/\", \"n2\"]\n",
        "nmos.nodes[1]",
        &["not a URL"],
    );
    fails(
        "[nmos]\npoll_interval_s = 0\n",
        "nmos.poll_interval_s",
        &["out of range"],
    );
    fails(
        "[nmos]\nhttp_timeout_ms = 0\n",
        "nmos.http_timeout_ms",
        &["1 to 600000"],
    );
    fails(
        "[nmos]\ndebounce_ms = 3600001\n",
        "nmos.debounce_ms",
        &["0 to 3600000"],
    );
    fails(
        "[nmos]\nca_bundle = \"/nonexistent/ca.pem\"\n",
        "nmos.ca_bundle",
        &["not a readable file"],
    );
    fails(
        "[nmos]\nmos_schema = \"\"\n",
        "nmos.mos_schema",
        &["not a URL"],
    );
    fails(
        "[nmos]\non_423 = \"retry\"\n",
        "nmos.on_423",
        &["`report` or `clear`"],
    );
    fails(
        "[nmos]\non_stop = \"stop\"\n",
        "nmos.on_stop",
        &["`none` or `disconnect`"],
    );
    fails(
        "[nmos]\ndefault_destination = \"STUDIO-B\"\n",
        "nmos.default_destination",
        &["not the name of any [[destination]]"],
    );
    fails(
        "[nmos.auth]\ntoken_url = \"https://a/token\"\nclient_secret_env = \"S\"\n",
        "nmos.auth.client_id",
        &["must not be empty"],
    );
    fails(
        "[nmos.auth]\ntoken_url = \"https://a/token\"\nclient_id = \"c\"\n",
        "nmos.auth",
        &["no secret"],
    );
    fails(
        "[nmos.auth]\ntoken_url = \"https://a/token\"\nclient_id = \"c\"\nclient_secret_env = \"S\"\nclient_secret_file = \"/run/secret\"\n",
        "nmos.auth.client_secret_file",
        &["one of"],
    );
    fails(
        "[nmos.auth]\ntoken_url = \"https://a/token\"\nclient_id = \"c\"\nclient_secret_env = \"MY-SECRET\"\n",
        "nmos.auth.client_secret_env",
        &["not an environment variable name"],
    );
    fails(
        "[nmos.auth]\ntoken_url = \"https://a/token\"\nclient_id = \"c\"\nclient_secret_file = \"/run/s\"\nscope = \" \"\n",
        "nmos.auth.scope",
        &["must not be empty"],
    );
    fails(
        "[nmos]\nallow_http = false\n[nmos.auth]\ntoken_url = \"http://a/token\"\n",
        "nmos.auth.token_url",
        &["allow_http = false"],
    );
    fails(
        "[nmos]\nregistr = \"auto\"\n",
        "nmos.registr",
        &["unknown field"],
    );
    // No token URL: the other auth keys are not needed.
    assert_eq!(ok("[nmos.auth]\nclient_id = \"c\"\n").nmos.auth, None);
    let file = ok(
        "[nmos.auth]\ntoken_url = \"https://a/token\"\nclient_id = \"c\"\nclient_secret_file = \"/run/secrets/nmos\"\n",
    );
    assert_eq!(
        file.nmos.auth.map(|a| a.secret),
        Some(SecretSource::File("/run/secrets/nmos".into()))
    );
}

#[test]
fn references_are_ids_or_labels() {
    assert_eq!(
        ResourceRef::parse(" 5A8E6F0C-3B1D-4C2A-9F7E-1D2C3B4A5F60 "),
        ResourceRef::Id(CAM1.to_owned())
    );
    assert_eq!(
        ResourceRef::parse("Camera 1"),
        ResourceRef::Label("Camera 1".to_owned())
    );
    assert_eq!(ResourceRef::parse("Camera 1").to_string(), "\"Camera 1\"");
}

#[test]
fn destinations_load_with_audio_maps() {
    let c = ok(&dest(
        "audio_device = \"Vision mixer\"\naudio_map = { \"mixer-in1\" = [\"in1:0\", \"in1:1\", \"\", \"-\"] }",
    ));
    let d = &c.destinations[0];
    assert_eq!(d.receivers, vec![ResourceRef::Id(MIXER_IN1.to_owned())]);
    let audio = d.audio.as_ref().expect("audio map");
    assert_eq!(audio.device, ResourceRef::Label("Vision mixer".into()));
    use crate::nmos::is08_check::MapEntry;
    assert_eq!(
        audio.map["mixer-in1"],
        vec![
            MapEntry::routed("in1", 0),
            MapEntry::routed("in1", 1),
            MapEntry::unrouted(),
            MapEntry::unrouted()
        ]
    );
}

#[test]
fn destination_rules() {
    fails(
        &format!("{}{}", dest(""), dest("").replace("PGM", "pgm")),
        "destination[1].name",
        &["already the name of destination[0]"],
    );
    fails(
        "[[destination]]\nreceivers = [\"x\"]\n",
        "destination[0].name",
        &["must not be empty"],
    );
    fails(
        "[[destination]]\nname = \"PGM\"\n",
        "destination[0].receivers",
        &["at least one receiver"],
    );
    fails(
        "[[destination]]\nname = \"PGM\"\nreceivers = [\"A\", \" \"]\n",
        "destination[0].receivers[1]",
        &["must not be empty"],
    );
    fails(
        &format!(
            "[[destination]]\nname = \"PGM\"\nreceivers = [\"{MIXER_IN1}\", \"{}\"]\n",
            MIXER_IN1.to_uppercase()
        ),
        "destination[0].receivers[1]",
        &["already receivers[0]"],
    );
    fails(
        &dest("audio_map = { out1 = [\"in1:0\"] }"),
        "destination[0].audio_device",
        &["audio_map needs the device"],
    );
    fails(
        &dest("audio_device = \"Mixer\""),
        "destination[0].audio_map",
        &["no audio_map"],
    );
    fails(
        &dest("audio_device = \"Mixer\"\naudio_map = { out1 = [\"in1:0\", \"in1\"] }"),
        "destination[0].audio_map.out1[1]",
        &["not <input id>:<channel index>"],
    );
    fails(
        &dest("audio_device = \"Mixer\"\naudio_map = { out1 = [\"in1:x\"] }"),
        "destination[0].audio_map.out1[0]",
        &["not a channel index"],
    );
    fails(
        &dest("audio_device = \"Mixer\"\naudio_map = { out1 = [\"in 1:0\"] }"),
        "destination[0].audio_map.out1[0]",
        &["not an IS-08 input id"],
    );
    fails(
        &dest("audio_device = \"Mixer\"\naudio_map = { \"out/1\" = [\"in1:0\"] }"),
        "destination[0].audio_map.out/1",
        &["not an IS-08 output id"],
    );
    fails(
        &dest("audio_device = \"Mixer\"\naudio_map = { out1 = [] }"),
        "destination[0].audio_map.out1",
        &["gives 0 channels"],
    );
    fails(
        &dest("audio_device = \"Mixer\"\naudio_map = { out1 = \"in1:0\" }"),
        "destination[0].audio_map.out1",
        &["invalid type"],
    );
}

#[test]
fn presets_and_bindings_load() {
    let c = ok(&format!(
        "{}type = \"AUDIO\"\naudio_device = \"Mixer\"\naudio_map = {{ out1 = [\"in1:0\"] }}\n[[binding]]\nplaceholder = \" Remote Berlin \"\npreset = \"PRESET-INTERVIEW\"\n[[binding]]\nplaceholder = \"PH-1\"\nsender = \"{CAM1}\"\n",
        preset_entry("")
    ));
    let p = &c.presets[0];
    assert_eq!(p.obj_type, ObjType::Audio);
    assert_eq!(
        p.connections[0].sender,
        ResourceRef::Label("Camera 1".into())
    );
    assert_eq!(p.connections[0].receiver, ResourceRef::Id(MIXER_IN1.into()));
    assert!(p.audio.is_some());
    assert_eq!(c.bindings[0].placeholder, "Remote Berlin");
    assert_eq!(
        c.bindings[0].target,
        BindingTarget::Preset("PRESET-INTERVIEW".into())
    );
    assert_eq!(
        c.bindings[1].target,
        BindingTarget::Sender(ResourceRef::Id(CAM1.into()))
    );
    let again = ok(c.effective_toml());
    assert_eq!(again, c);
}

#[test]
fn preset_rules() {
    fails(
        &format!("{}{}", preset_entry(""), preset_entry("")),
        "preset[1].id",
        &["already the id of preset[0]"],
    );
    fails(
        &format!(
            "{}{}",
            object(""),
            preset_entry("").replace("PRESET-INTERVIEW", "CLIP-1")
        ),
        "preset[0].id",
        &["already the id of object[0]"],
    );
    fails(
        &preset_entry("").replace("PRESET-INTERVIEW", CAM1),
        "preset[0].id",
        &["is a UUID"],
    );
    fails(
        &preset_entry("").replace("Interview 2-shot", ""),
        "preset[0].slug",
        &["must not be empty"],
    );
    fails(
        "[[preset]]\nid = \"P\"\nslug = \"P\"\n",
        "preset[0].connections",
        &["at least one connection or an audio map"],
    );
    fails(
        "[[preset]]\nid = \"P\"\nslug = \"P\"\nconnections = [{ sender = \"\", receiver = \"R\" }]\n",
        "preset[0].connections[0].sender",
        &["must not be empty"],
    );
    fails(
        "[[preset]]\nid = \"P\"\nslug = \"P\"\nconnections = [{ sender = \"A\", receiver = \"R\" }, { sender = \"B\", receiver = \"R\" }]\n",
        "preset[0].connections[1].receiver",
        &["already the receiver of connections[0]"],
    );
    fails(
        "[[preset]]\nid = \"P\"\nslug = \"P\"\nconnections = [{ sender = \"A\", receiver = \"R\", leg = 2 }]\n",
        "preset[0].connections[0].leg",
        &["unknown field"],
    );
    fails(
        &preset_entry("type = \"CLIP\""),
        "preset[0].type",
        &["`STILL`, `AUDIO`, `VIDEO`, `OTHER`"],
    );
}

#[test]
fn binding_rules() {
    fails(
        &format!("{}[[binding]]\nplaceholder = \"X\"\n", preset_entry("")),
        "binding[0]",
        &["binds to nothing"],
    );
    fails(
        &format!(
            "{}[[binding]]\nplaceholder = \"X\"\nsender = \"Camera 1\"\npreset = \"PRESET-INTERVIEW\"\n",
            preset_entry("")
        ),
        "binding[0].preset",
        &["not both"],
    );
    fails(
        "[[binding]]\nplaceholder = \"X\"\npreset = \"PRESET-NOPE\"\n",
        "binding[0].preset",
        &["not the id of any [[preset]]"],
    );
    fails(
        "[[binding]]\nsender = \"Camera 1\"\n",
        "binding[0].placeholder",
        &["must not be empty"],
    );
    fails(
        "[[binding]]\nplaceholder = \"X\"\nsender = \"A\"\n[[binding]]\nplaceholder = \"x\"\nsender = \"B\"\n",
        "binding[1].placeholder",
        &["already bound by binding[0]"],
    );
}

// ---------------------------------------------------------------------------------------------
// [nmos] DNS-SD settings
// ---------------------------------------------------------------------------------------------

#[test]
fn dnssd_defaults_match_the_example_and_the_rank_policy() {
    let n = ok("").nmos;
    assert_eq!(n.dnssd_mode, nmos::DnsSdMode::Auto);
    assert_eq!(n.dnssd_domain, None);
    assert_eq!(n.dnssd_priorities, 0..=99);
    assert_eq!(n.dnssd_priorities, nmos::DNSSD_PRIORITIES);
    let policy = crate::nmos::dnssd::RankPolicy::default();
    assert_eq!(
        (policy.highest_pri, policy.lowest_pri),
        (*n.dnssd_priorities.start(), *n.dnssd_priorities.end())
    );
    let example = ok(DEFAULT_TOML).nmos;
    assert_eq!(
        (
            example.dnssd_mode,
            example.dnssd_domain,
            example.dnssd_priorities
        ),
        (n.dnssd_mode, n.dnssd_domain, n.dnssd_priorities)
    );
    assert!(!ok("").warnings().iter().any(|w| w.contains("dnssd")));
}

#[test]
fn dnssd_settings_load() {
    let c = ok(
        "[nmos]\ndnssd_mode = \"unicast\"\ndnssd_domain = \" Studio.Example.COM. \"\ndnssd_priorities = [10, 150]\n",
    );
    let n = &c.nmos;
    assert_eq!(n.dnssd_mode, nmos::DnsSdMode::Unicast);
    assert_eq!(n.dnssd_domain.as_deref(), Some("studio.example.com"));
    assert_eq!(n.dnssd_priorities, 10..=150);
    // Accepting lab registries is allowed but said.
    assert!(
        c.warnings()
            .iter()
            .any(|w| w.contains("nmos.dnssd_priorities") && w.contains("100 and above"))
    );
    assert_eq!(
        ok("[nmos]\ndnssd_mode = \"mdns\"\n").nmos.dnssd_mode,
        nmos::DnsSdMode::Mdns
    );
    assert_eq!(
        ok("[nmos]\ndnssd_priorities = [5, 5]\n")
            .nmos
            .dnssd_priorities,
        5..=5
    );
    let again = ok(c.effective_toml());
    assert_eq!(again, c);
}

#[test]
fn dnssd_setting_rules() {
    fails(
        "[nmos]\ndnssd_mode = \"dns\"\n",
        "nmos.dnssd_mode",
        &["dns"],
    );
    fails(
        "[nmos]\ndnssd_domain = \"studio example\"\n",
        "nmos.dnssd_domain",
        &["is not a DNS domain", "studio.example.com"],
    );
    fails(
        "[nmos]\ndnssd_domain = \"a..b\"\n",
        "nmos.dnssd_domain",
        &["is not a DNS domain"],
    );
    fails(
        &format!("[nmos]\ndnssd_domain = \"{}.com\"\n", "a".repeat(64)),
        "nmos.dnssd_domain",
        &["1 to 63"],
    );
    fails(
        &format!(
            "[nmos]\ndnssd_domain = \"{}\"\n",
            vec!["abcdefghi"; 26].join(".")
        ),
        "nmos.dnssd_domain",
        &["at most 253"],
    );
    fails(
        "[nmos]\ndnssd_domain = \"studio.local\"\n",
        "nmos.dnssd_domain",
        &["multicast", "dnssd_mode = \"mdns\""],
    );
    fails(
        "[nmos]\ndnssd_priorities = [0]\n",
        "nmos.dnssd_priorities",
        &["1 value(s)", "[highest, lowest]"],
    );
    fails(
        "[nmos]\ndnssd_priorities = [0, 1, 2]\n",
        "nmos.dnssd_priorities",
        &["3 value(s)"],
    );
    fails(
        "[nmos]\ndnssd_priorities = [-1, 99]\n",
        "nmos.dnssd_priorities",
        &["out of range"],
    );
    fails(
        "[nmos]\ndnssd_priorities = [0, 5000000000]\n",
        "nmos.dnssd_priorities",
        &["out of range"],
    );
    fails(
        "[nmos]\ndnssd_priorities = [99, 0]\n",
        "nmos.dnssd_priorities",
        &["reversed", "highest <= lowest"],
    );
}
