//! The second stage: [`RawConfig`] → the validated parts of [`Config`](super::Config).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use toml::de::DeTable;

use super::error::{ConfigError, line_of, span_of};
use super::raw::{RawBuddy, RawConfig, RawMos, RawNcs, RawObject, Seconds};
use super::{BuddyConfig, CaptureConfig, Failover, LogConfig, MosConfig, NcsConfig, ObjectConfig};

/// Longest accepted time setting: one day.
const MAX_SECONDS: f64 = 86_400.0;
/// Longest ncsID / mosID, in characters (MOS String128).
const MAX_ID_CHARS: usize = 128;
const MIN_MESSAGE_BYTES: u64 = 1024;
const MAX_MESSAGE_BYTES: u64 = 1 << 30;
const MAX_QUEUE_LIMIT: u32 = 1_000_000;
/// Longest searchable-schema URL, in characters (MOS paths are ≤ 255).
const MAX_URL_CHARS: usize = 255;
/// Longest object duration: objDur in milliseconds must fit the MOS sample count (u32).
const MAX_OBJECT_SECONDS: f64 = u32::MAX as f64 / ObjectConfig::TIME_BASE;

/// Where the raw configuration came from, to point errors at the right place.
pub(super) struct Source<'a> {
    pub origin: &'a str,
    pub text: &'a str,
    pub doc: &'a DeTable<'a>,
    /// `(key, flag)` for every key a command-line flag set.
    pub overridden: &'a [(&'static str, &'static str)],
}

impl Source<'_> {
    pub(super) fn err(&self, key: &str, detail: impl Into<String>) -> ConfigError {
        let detail = detail.into();
        if let Some((_, flag)) = self.overridden.iter().find(|(k, _)| *k == key) {
            return ConfigError::Invalid {
                origin: self.origin.to_owned(),
                line: None,
                key: format!("{key} (set by {flag})"),
                detail,
            };
        }
        // The key itself, or failing that (a default was used) the nearest enclosing entry.
        let mut path = key;
        let mut line = None;
        loop {
            if let Some(span) = span_of(self.doc, path) {
                line = Some(line_of(self.text, span.start));
                break;
            }
            match path.rfind('.') {
                Some(i) => path = &path[..i],
                None => break,
            }
        }
        ConfigError::Invalid {
            origin: self.origin.to_owned(),
            line,
            key: key.to_owned(),
            detail,
        }
    }
}

type Validated = (
    MosConfig,
    LogConfig,
    Vec<NcsConfig>,
    Vec<ObjectConfig>,
    Vec<String>,
);

pub(super) fn validate(raw: &RawConfig, src: &Source<'_>) -> Result<Validated, ConfigError> {
    let mut warnings = Vec::new();
    let mos = mos(&raw.mos, src)?;
    let log = log(raw, src)?;
    let mut ncs: Vec<NcsConfig> = Vec::with_capacity(raw.ncs.len());
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, n) in raw.ncs.iter().enumerate() {
        let key = format!("ncs[{i}]");
        let entry = one_ncs(n, &key, &mos, src, &mut warnings)?;
        if let Some(first) = ids.insert(n.id.as_str(), i) {
            return Err(src.err(
                &format!("{key}.id"),
                format!(
                    "\"{}\" is already the id of ncs[{first}]; every ncsID must be unique",
                    n.id
                ),
            ));
        }
        ncs.push(entry);
    }
    let mut objects: Vec<ObjectConfig> = Vec::with_capacity(raw.object.len());
    let mut object_ids: HashMap<&str, usize> = HashMap::new();
    for (i, o) in raw.object.iter().enumerate() {
        let key = format!("object[{i}]");
        let entry = one_object(o, &key, src)?;
        if let Some(first) = object_ids.insert(o.id.as_str(), i) {
            return Err(src.err(
                &format!("{key}.id"),
                format!(
                    "\"{}\" is already the id of object[{first}]; every objID must be unique",
                    o.id
                ),
            ));
        }
        objects.push(entry);
    }
    if mos.accept_any_ncs {
        warnings.push(
            "mos.accept_any_ncs = true: any ncsID is accepted from any address (meant for labs)"
                .to_owned(),
        );
    } else if ncs.is_empty() {
        warnings.push(
            "no [[ncs]] configured and accept_any_ncs = false: every NCS will be refused"
                .to_owned(),
        );
    }
    Ok((mos, log, ncs, objects, warnings))
}

/// One `[[object]]`: objID as an ID (1–128, no surrounding spaces), slug 1–128 characters,
/// a type, an optional non-empty group of at most 128 characters, a duration ≥ 0.
fn one_object(o: &RawObject, key: &str, src: &Source<'_>) -> Result<ObjectConfig, ConfigError> {
    check_id(src, &format!("{key}.id"), &o.id, "the objID")?;
    check_text(src, &format!("{key}.slug"), &o.slug, "the objSlug")?;
    let Some(obj_type) = o.obj_type else {
        return Err(src.err(
            &format!("{key}.type"),
            "missing; expected \"STILL\", \"AUDIO\", \"VIDEO\" or \"OTHER\"",
        ));
    };
    if let Some(g) = &o.group {
        check_text(src, &format!("{key}.group"), g, "the objGroup")?;
    }
    if let Some(d) = o.duration_s {
        let v = d.0;
        if !(v.is_finite() && (0.0..=MAX_OBJECT_SECONDS).contains(&v)) {
            return Err(src.err(
                &format!("{key}.duration_s"),
                format!(
                    "{v} is out of range; expected 0 up to {} seconds",
                    MAX_OBJECT_SECONDS.floor()
                ),
            ));
        }
    }
    Ok(ObjectConfig {
        id: o.id.clone(),
        slug: o.slug.clone(),
        obj_type: obj_type.into(),
        group: o.group.clone(),
        description: o.description.clone(),
        duration_s: o.duration_s.map(|d| d.0),
    })
}

/// A MOS String128 shown to people: 1–128 characters, not only white space, no control
/// characters.
pub(super) fn check_text(
    src: &Source<'_>,
    key: &str,
    text: &str,
    what: &str,
) -> Result<(), ConfigError> {
    let count = text.chars().count();
    if text.trim().is_empty() {
        return Err(src.err(
            key,
            format!("must not be empty; expected {what} (1 to 128 characters)"),
        ));
    }
    if count > MAX_ID_CHARS {
        return Err(src.err(
            key,
            format!(
                "is {count} characters long; expected {what} of at most {MAX_ID_CHARS} characters"
            ),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(src.err(key, "contains a control character; expected printable text"));
    }
    Ok(())
}

/// `mos.searchable_schema_url`: empty, or an http(s) URL of at most 255 characters.
fn schema_url(src: &Source<'_>, url: &str) -> Result<(), ConfigError> {
    let key = "mos.searchable_schema_url";
    if url.is_empty() {
        return Ok(());
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    if rest.is_none_or(str::is_empty) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(src.err(
            key,
            format!(
                "\"{url}\" is not an http:// or https:// URL; expected e.g. \
                 \"http://nmos-gateway.local/mos/search.xsd\", or \"\" for no field search"
            ),
        ));
    }
    let count = url.chars().count();
    if count > MAX_URL_CHARS {
        return Err(src.err(
            key,
            format!("is {count} characters long; expected at most {MAX_URL_CHARS}"),
        ));
    }
    Ok(())
}

fn mos(m: &RawMos, src: &Source<'_>) -> Result<MosConfig, ConfigError> {
    check_id(src, "mos.id", &m.id, "our mosID")?;
    let listen = parse_ip(&m.listen).ok_or_else(|| {
        src.err(
            "mos.listen",
            format!(
                "expected an IP address to listen on, such as \"127.0.0.1\", \"0.0.0.0\" (all \
                 IPv4 interfaces) or \"::\" (all interfaces); got \"{}\"",
                m.listen
            ),
        )
    })?;
    nonzero_port(src, "mos.lower_port", m.lower_port)?;
    nonzero_port(src, "mos.upper_port", m.upper_port)?;
    distinct_ports(src, "mos", m.lower_port, m.upper_port, m.query_port)?;
    if m.data_dir.as_os_str().is_empty() {
        return Err(src.err(
            "mos.data_dir",
            "must not be empty; expected a directory path",
        ));
    }
    if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&m.max_message_bytes) {
        return Err(src.err(
            "mos.max_message_bytes",
            format!(
                "{} is out of range; expected {MIN_MESSAGE_BYTES} to {MAX_MESSAGE_BYTES} bytes",
                m.max_message_bytes
            ),
        ));
    }
    let max_message_bytes = usize::try_from(m.max_message_bytes).map_err(|_| {
        src.err(
            "mos.max_message_bytes",
            "too large for this machine's address space",
        )
    })?;
    let message_stall = seconds(src, "mos.message_stall_s", m.message_stall_s, false)?;
    if !(2..=65_535).contains(&m.max_connections) {
        return Err(src.err(
            "mos.max_connections",
            format!(
                "{} is out of range; expected 2 to 65535 (MOS asks for at least 2 connections \
                 per port)",
                m.max_connections
            ),
        ));
    }
    if m.capture_max_bytes < 1024 {
        return Err(src.err(
            "mos.capture_max_bytes",
            format!(
                "{} is too small; expected at least 1024 bytes",
                m.capture_max_bytes
            ),
        ));
    }
    if !(1..=100_000).contains(&m.capture_files) {
        return Err(src.err(
            "mos.capture_files",
            format!(
                "{} is out of range; expected 1 to 100000 files",
                m.capture_files
            ),
        ));
    }
    if !(1..=1_000_000).contains(&m.capture_queue) {
        return Err(src.err(
            "mos.capture_queue",
            format!(
                "{} is out of range; expected 1 to 1000000 lines",
                m.capture_queue
            ),
        ));
    }
    schema_url(src, &m.searchable_schema_url)?;
    Ok(MosConfig {
        id: m.id.clone(),
        listen,
        lower_port: m.lower_port,
        upper_port: m.upper_port,
        query_port: optional_port(m.query_port),
        data_dir: m.data_dir.clone(),
        accept_any_ncs: m.accept_any_ncs,
        max_message_bytes,
        message_stall,
        max_connections: m.max_connections as usize,
        capture: CaptureConfig {
            all: m.capture,
            heartbeats: m.capture_heartbeats,
            max_bytes: m.capture_max_bytes,
            files: m.capture_files as usize,
            queue: m.capture_queue as usize,
        },
        searchable_schema_url: m.searchable_schema_url.clone(),
    })
}

fn log(raw: &RawConfig, src: &Source<'_>) -> Result<LogConfig, ConfigError> {
    let level = raw.log.level.trim();
    if level.is_empty() {
        return Err(src.err(
            "log.level",
            "must not be empty; expected e.g. \"info\" or \"info,mos_gateway=debug\"",
        ));
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(level) {
        return Err(src.err(
            "log.level",
            format!(
                "\"{level}\" is not a valid log filter ({e}); expected error, warn, info, debug, \
                 trace, or directives such as \"info,mos_gateway=debug\""
            ),
        ));
    }
    Ok(LogConfig {
        level: level.to_owned(),
    })
}

fn one_ncs(
    n: &RawNcs,
    key: &str,
    mos: &MosConfig,
    src: &Source<'_>,
    warnings: &mut Vec<String>,
) -> Result<NcsConfig, ConfigError> {
    check_id(src, &format!("{key}.id"), &n.id, "the NCS's ncsID")?;
    let addresses = host(src, &format!("{key}.host"), &n.host, warnings)?;
    let mut allowed_addresses = Vec::with_capacity(n.allowed_addresses.len());
    for (j, a) in n.allowed_addresses.iter().enumerate() {
        let ip = parse_ip(a).ok_or_else(|| {
            src.err(
                &format!("{key}.allowed_addresses[{j}]"),
                format!("expected an IP address (not a host name or network); got \"{a}\""),
            )
        })?;
        allowed_addresses.push(ip);
    }
    nonzero_port(src, &format!("{key}.lower_port"), n.lower_port)?;
    nonzero_port(src, &format!("{key}.upper_port"), n.upper_port)?;
    distinct_ports(src, key, n.lower_port, n.upper_port, n.query_port)?;
    let query_port = optional_port(n.query_port);
    not_ourselves(
        src,
        key,
        &n.host,
        &addresses,
        [n.lower_port, n.upper_port, n.query_port],
        mos,
    )?;

    let heartbeat = seconds(
        src,
        &format!("{key}.heartbeat_interval_s"),
        n.heartbeat_interval_s,
        true,
    )?;
    let ack_timeout = seconds(src, &format!("{key}.ack_timeout_s"), n.ack_timeout_s, false)?;
    let reconnect_max = seconds(
        src,
        &format!("{key}.reconnect_max_s"),
        n.reconnect_max_s,
        false,
    )?;
    if !(1..=MAX_QUEUE_LIMIT).contains(&n.queue_limit) {
        return Err(src.err(
            &format!("{key}.queue_limit"),
            format!(
                "{} is out of range; expected 1 to {MAX_QUEUE_LIMIT} messages",
                n.queue_limit
            ),
        ));
    }

    let buddy = match &n.buddy {
        Some(b) => Some(buddy(b, n, key, mos, src, warnings)?),
        None => None,
    };
    if buddy.is_none() && n.failover == Failover::HotStandby {
        return Err(src.err(
            &format!("{key}.failover"),
            "\"hot_standby\" needs a buddy; add buddy = { host = ..., lower_port = ..., \
             upper_port = ... } or remove failover",
        ));
    }

    Ok(NcsConfig {
        id: n.id.clone(),
        host: n.host.clone(),
        addresses,
        allowed_addresses,
        lower_port: n.lower_port,
        upper_port: n.upper_port,
        query_port,
        encoding: n.encoding,
        heartbeat_interval: Some(heartbeat).filter(|d| !d.is_zero()),
        ack_timeout,
        reconnect_max,
        queue_limit: n.queue_limit as usize,
        strict: n.strict,
        resync_on_connect: n.resync_on_connect,
        listmachinfo_style: n.listmachinfo_style,
        status_messages: n.status_messages,
        status_options: super::StatusOptions::from_raw(n),
        capture: n.capture,
        buddy,
        failover: n.failover,
    })
}

fn buddy(
    b: &RawBuddy,
    n: &RawNcs,
    ncs_key: &str,
    mos: &MosConfig,
    src: &Source<'_>,
    warnings: &mut Vec<String>,
) -> Result<BuddyConfig, ConfigError> {
    let key = format!("{ncs_key}.buddy");
    let addresses = host(src, &format!("{key}.host"), &b.host, warnings)?;
    nonzero_port(src, &format!("{key}.lower_port"), b.lower_port)?;
    nonzero_port(src, &format!("{key}.upper_port"), b.upper_port)?;
    distinct_ports(src, &key, b.lower_port, b.upper_port, b.query_port)?;
    if b.host.eq_ignore_ascii_case(&n.host)
        && b.lower_port == n.lower_port
        && b.upper_port == n.upper_port
    {
        return Err(src.err(
            &key,
            format!(
                "the buddy has the same host and ports as {ncs_key} itself; expected the \
                 standby server's host and ports"
            ),
        ));
    }
    not_ourselves(
        src,
        &key,
        &b.host,
        &addresses,
        [b.lower_port, b.upper_port, b.query_port],
        mos,
    )?;
    Ok(BuddyConfig {
        host: b.host.clone(),
        addresses,
        lower_port: b.lower_port,
        upper_port: b.upper_port,
        query_port: optional_port(b.query_port),
    })
}

/// mosID / ncsID: 1–128 characters, no surrounding spaces, no control characters.
pub(super) fn check_id(
    src: &Source<'_>,
    key: &str,
    id: &str,
    what: &str,
) -> Result<(), ConfigError> {
    let count = id.chars().count();
    if count == 0 {
        return Err(src.err(
            key,
            format!("must not be empty; expected {what} (1 to 128 characters)"),
        ));
    }
    if count > MAX_ID_CHARS {
        return Err(src.err(
            key,
            format!(
                "is {count} characters long; expected {what} of at most {MAX_ID_CHARS} characters"
            ),
        ));
    }
    if id.trim() != id {
        return Err(src.err(
            key,
            format!("\"{id}\" starts or ends with white space; MOS compares IDs exactly"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(src.err(key, "contains a control character; expected printable text"));
    }
    Ok(())
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    let t = text.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(t);
    t.parse().ok()
}

/// A host's addresses: an IP literal as is, `localhost` as loopback, a name resolved now (a
/// name that does not resolve gives no addresses and a warning).
fn host(
    src: &Source<'_>,
    key: &str,
    host: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<IpAddr>, ConfigError> {
    if host.trim().is_empty() {
        return Err(src.err(key, "missing; expected a host name or IP address"));
    }
    if let Some(ip) = parse_ip(host) {
        return Ok(vec![ip]);
    }
    if host.contains(':') {
        return Err(src.err(
            key,
            format!(
                "\"{host}\" is not a host name or IP address; give the host without a port \
                 (ports are the separate lower_port, upper_port and query_port keys)"
            ),
        ));
    }
    let valid = host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !valid {
        return Err(src.err(
            key,
            format!("\"{host}\" is not a valid host name or IP address"),
        ));
    }
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return Ok(vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]);
    }
    match (host, 0u16).to_socket_addrs() {
        Ok(addrs) => {
            let mut ips: Vec<IpAddr> = Vec::new();
            for a in addrs {
                if !ips.contains(&a.ip()) {
                    ips.push(a.ip());
                }
            }
            if ips.is_empty() {
                warnings.push(format!(
                    "{key}: \"{host}\" has no address; connections to it will fail until it does"
                ));
            }
            Ok(ips)
        }
        Err(e) => {
            warnings.push(format!(
                "{key}: \"{host}\" could not be resolved ({e}); inbound connections are accepted \
                 only from allowed addresses until a restart"
            ));
            Ok(Vec::new())
        }
    }
}

fn nonzero_port(src: &Source<'_>, key: &str, port: u16) -> Result<(), ConfigError> {
    if port == 0 {
        return Err(src.err(
            key,
            "must be a port from 1 to 65535 (0, meaning none, is allowed only for query_port)",
        ));
    }
    Ok(())
}

/// `prefix.lower_port`, `prefix.upper_port` and a non-zero `prefix.query_port` must differ.
fn distinct_ports(
    src: &Source<'_>,
    prefix: &str,
    lower: u16,
    upper: u16,
    query: u16,
) -> Result<(), ConfigError> {
    if upper == lower {
        return Err(src.err(
            &format!("{prefix}.upper_port"),
            format!(
                "{upper} is also {prefix}.lower_port; lower, upper and query ports must differ"
            ),
        ));
    }
    for (other, name) in [(lower, "lower_port"), (upper, "upper_port")] {
        if query != 0 && query == other {
            return Err(src.err(
                &format!("{prefix}.query_port"),
                format!(
                    "{query} is also {prefix}.{name}; lower, upper and query ports must differ \
                     (0 = no query port)"
                ),
            ));
        }
    }
    Ok(())
}

fn optional_port(port: u16) -> Option<u16> {
    (port != 0).then_some(port)
}

/// A time setting: finite, at most a day, and non-zero unless `zero_ok`.
fn seconds(
    src: &Source<'_>,
    key: &str,
    value: Seconds,
    zero_ok: bool,
) -> Result<Duration, ConfigError> {
    let v = value.0;
    let lower = if zero_ok { "0" } else { "more than 0" };
    let ok = v.is_finite() && (0.0..=MAX_SECONDS).contains(&v) && (zero_ok || v > 0.0);
    if !ok {
        return Err(src.err(
            key,
            format!("{v} is out of range; expected {lower} up to {MAX_SECONDS} seconds"),
        ));
    }
    Duration::try_from_secs_f64(v)
        .map_err(|e| src.err(key, format!("{v} is not a valid number of seconds ({e})")))
}

/// Refuses an NCS or buddy that is this gateway: an address of this machine (loopback, the
/// listen address, or any local address when we listen on all interfaces) with one of our
/// listening ports.
fn not_ourselves(
    src: &Source<'_>,
    key: &str,
    host: &str,
    addresses: &[IpAddr],
    ports: [u16; 3],
    mos: &MosConfig,
) -> Result<(), ConfigError> {
    let ours = [
        (mos.lower_port, "mos.lower_port"),
        (mos.upper_port, "mos.upper_port"),
        (mos.query_port.unwrap_or(0), "mos.query_port"),
    ];
    let names = ["lower_port", "upper_port", "query_port"];
    for ip in addresses {
        if !is_this_machine(*ip, mos.listen) {
            continue;
        }
        for (port, name) in ports.iter().zip(names) {
            if *port == 0 {
                continue;
            }
            if let Some((_, our_key)) = ours.iter().find(|(p, _)| p == port) {
                return Err(src.err(
                    &format!("{key}.{name}"),
                    format!(
                        "{host} port {port} is this gateway's own listening port ({our_key} = \
                         {port}, mos.listen = {}): the gateway would connect to itself; give \
                         the NCS's real host, or ports that are not ours",
                        mos.listen
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn is_this_machine(ip: IpAddr, listen: IpAddr) -> bool {
    let ip = ip.to_canonical();
    let listen = listen.to_canonical();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip == listen
        || (listen.is_unspecified() && UdpSocket::bind((ip, 0)).is_ok())
}
