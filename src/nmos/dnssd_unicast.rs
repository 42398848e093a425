//! Finding the registry's Query API by unicast DNS-SD (RFC 6763 over ordinary DNS).
//!
//! For each browse domain (configured, or the system's search domains from
//! `/etc/resolv.conf`), [`browse_unicast`] asks the name servers for PTR
//! `_nmos-query._tcp.<domain>.`, then SRV, TXT, A and AAAA of every instance found, and returns
//! the same [`DnsSdService`] values the mDNS browse gives, for [`super::dnssd::rank`].
//!
//! Every lookup has a timeout; a failed lookup is logged (with the name asked) and counts as
//! "no answer". Nothing here panics on what a name server sends.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::future::join_all;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use super::dnssd::DnsSdService;

/// The Query API service type, without a domain.
pub const QUERY_SERVICE_TYPE: &str = "_nmos-query._tcp";

/// Most instances resolved per browse domain (a defence against a runaway zone).
const MAX_INSTANCES: usize = 64;

/// Where and how to browse by unicast DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnicastConfig {
    /// Name servers to ask (UDP).
    pub servers: Vec<SocketAddr>,
    /// Browse domains, e.g. `studio.example` (a trailing dot is allowed).
    pub domains: Vec<String>,
    /// Timeout of each lookup.
    pub timeout: Duration,
}

impl UnicastConfig {
    /// The system's name servers and search domains (`/etc/resolv.conf`); `domain`, when given,
    /// replaces the search domains. A configuration that cannot be read gives no servers (and
    /// a warning), so unicast finds nothing.
    pub fn system(domain: Option<&str>, timeout: Duration) -> UnicastConfig {
        let mut cfg = UnicastConfig {
            servers: Vec::new(),
            domains: domain.map(|d| vec![d.to_owned()]).unwrap_or_default(),
            timeout,
        };
        match hickory_resolver::system_conf::read_system_conf() {
            Ok((sys, _)) => {
                cfg.servers = sys
                    .name_servers()
                    .iter()
                    .map(|ns| {
                        let port = ns.connections.first().map_or(53, |c| c.port);
                        SocketAddr::new(ns.ip, port)
                    })
                    .collect();
                if domain.is_none() {
                    cfg.domains = if sys.search().is_empty() {
                        sys.domain().map(Name::to_ascii).into_iter().collect()
                    } else {
                        sys.search().iter().map(Name::to_ascii).collect()
                    };
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "unicast DNS-SD: the system DNS configuration is unusable");
            }
        }
        cfg
    }
}

/// Browses `service_type` (e.g. [`QUERY_SERVICE_TYPE`]) in every configured domain and returns
/// every instance that has an SRV record. No servers or no domains: nothing (logged).
pub async fn browse_unicast(service_type: &str, config: &UnicastConfig) -> Vec<DnsSdService> {
    if config.servers.is_empty() || config.domains.is_empty() {
        tracing::debug!(
            servers = config.servers.len(),
            domains = config.domains.len(),
            "unicast DNS-SD skipped: no name server or no browse domain"
        );
        return Vec::new();
    }
    let resolver = match resolver(config) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "unicast DNS-SD: cannot build the resolver");
            return Vec::new();
        }
    };
    let mut found: BTreeMap<String, DnsSdService> = BTreeMap::new();
    for domain in &config.domains {
        let domain = domain.trim().trim_end_matches('.');
        if domain.is_empty() {
            continue;
        }
        let ptr = format!("{service_type}.{domain}.");
        let Ok(ptr_name) = Name::from_ascii(&ptr) else {
            tracing::warn!(name = %ptr, "unicast DNS-SD: not a valid DNS name");
            continue;
        };
        let mut instances: Vec<Name> = Vec::new();
        let mut seen = BTreeSet::new();
        for rdata in lookup(&resolver, ptr_name, RecordType::PTR, config.timeout).await {
            if let RData::PTR(p) = rdata
                && seen.insert(p.0.to_ascii().to_ascii_lowercase())
            {
                instances.push(p.0);
            }
        }
        if instances.len() > MAX_INSTANCES {
            tracing::warn!(name = %ptr, count = instances.len(), "unicast DNS-SD: too many instances; only the first {MAX_INSTANCES} are used");
            instances.truncate(MAX_INSTANCES);
        }
        tracing::debug!(name = %ptr, count = instances.len(), "unicast DNS-SD instances");
        let resolved = join_all(
            instances
                .into_iter()
                .map(|i| resolve_instance(&resolver, i, config.timeout)),
        )
        .await;
        for s in resolved.into_iter().flatten() {
            found.entry(s.instance.to_ascii_lowercase()).or_insert(s);
        }
    }
    found.into_values().collect()
}

/// A resolver that asks only `config.servers`, over UDP, without hosts file or search list.
fn resolver(config: &UnicastConfig) -> Result<TokioResolver, hickory_resolver::net::NetError> {
    let servers = config
        .servers
        .iter()
        .map(|s| {
            let mut udp = ConnectionConfig::udp();
            udp.port = s.port();
            let mut ns = NameServerConfig::udp(s.ip());
            ns.connections = vec![udp];
            ns
        })
        .collect();
    let mut opts = ResolverOpts::default();
    opts.timeout = config.timeout;
    opts.attempts = 1;
    opts.use_hosts_file = ResolveHosts::Never;
    Resolver::builder_with_config(
        ResolverConfig::from_name_servers(servers),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
}

/// One lookup; failures and timeouts are logged and give no records.
async fn lookup(
    resolver: &TokioResolver,
    name: Name,
    rtype: RecordType,
    timeout: Duration,
) -> Vec<RData> {
    let shown = name.to_ascii();
    // The resolver's own timeout applies per attempt; this one bounds the whole lookup.
    match tokio::time::timeout(timeout * 2, resolver.lookup(name, rtype)).await {
        Ok(Ok(l)) => l
            .answers()
            .iter()
            .filter(|r| r.record_type() == rtype)
            .map(|r| r.data.clone())
            .collect(),
        Ok(Err(e)) if e.is_no_records_found() => {
            tracing::debug!(name = %shown, ?rtype, "unicast DNS-SD: no such record");
            Vec::new()
        }
        Ok(Err(e)) => {
            tracing::warn!(name = %shown, ?rtype, error = %e, "unicast DNS-SD lookup failed");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!(name = %shown, ?rtype, "unicast DNS-SD lookup timed out");
            Vec::new()
        }
    }
}

/// SRV, TXT, A and AAAA of one instance; `None` without a usable SRV record.
async fn resolve_instance(
    resolver: &TokioResolver,
    instance: Name,
    timeout: Duration,
) -> Option<DnsSdService> {
    let shown = instance.to_ascii();
    let (srv, txt) = tokio::join!(
        lookup(resolver, instance.clone(), RecordType::SRV, timeout),
        lookup(resolver, instance, RecordType::TXT, timeout),
    );
    // The best SRV record (lowest priority, then highest weight); TXT `pri` ranks instances.
    let srv = srv
        .into_iter()
        .filter_map(|r| match r {
            RData::SRV(s) if !s.target.is_root() => Some(s),
            _ => None,
        })
        .min_by_key(|s| (s.priority, u16::MAX - s.weight));
    let Some(srv) = srv else {
        tracing::info!(instance = %shown, "unicast DNS-SD instance has no usable SRV record");
        return None;
    };
    let txt = parse_txt(txt.iter().filter_map(|r| match r {
        RData::TXT(t) => Some(t.txt_data.iter().map(|b| b.as_ref())),
        _ => None,
    }));
    let mut target = srv.target.clone();
    target.set_fqdn(true);
    let (a, aaaa) = tokio::join!(
        lookup(resolver, target.clone(), RecordType::A, timeout),
        lookup(resolver, target.clone(), RecordType::AAAA, timeout),
    );
    let mut addresses: Vec<IpAddr> = a
        .into_iter()
        .chain(aaaa)
        .filter_map(|r| match r {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    addresses.sort();
    addresses.dedup();
    Some(DnsSdService {
        instance: shown,
        host: target.to_ascii(),
        port: srv.port,
        addresses,
        txt,
    })
}

/// TXT strings `key=value` (RFC 6763 §6): keys lower-cased, the first occurrence of a key
/// wins, a key without `=` has the empty value, strings starting with `=` are ignored.
pub fn parse_txt<'a, I, S>(records: I) -> BTreeMap<String, String>
where
    I: IntoIterator<Item = S>,
    S: IntoIterator<Item = &'a [u8]>,
{
    let mut out = BTreeMap::new();
    for strings in records {
        for s in strings {
            let text = String::from_utf8_lossy(s);
            let (key, value) = text.split_once('=').unwrap_or((&text, ""));
            if key.is_empty() {
                continue;
            }
            out.entry(key.to_ascii_lowercase())
                .or_insert_with(|| value.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_keys_are_lower_cased_and_the_first_wins() {
        let rec: Vec<&[u8]> = vec![
            b"API_Proto=https",
            b"pri=10",
            b"pri=20",
            b"flag",
            b"=orphan",
            b"api_ver=v1.2,v1.3",
        ];
        let txt = parse_txt([rec]);
        assert_eq!(txt.get("api_proto").map(String::as_str), Some("https"));
        assert_eq!(txt.get("pri").map(String::as_str), Some("10"));
        assert_eq!(txt.get("flag").map(String::as_str), Some(""));
        assert_eq!(txt.get("api_ver").map(String::as_str), Some("v1.2,v1.3"));
        assert_eq!(txt.len(), 4);
    }

    #[tokio::test]
    async fn no_servers_or_domains_gives_nothing() {
        let cfg = UnicastConfig {
            servers: Vec::new(),
            domains: vec!["studio.test".into()],
            timeout: Duration::from_millis(100),
        };
        assert!(browse_unicast(QUERY_SERVICE_TYPE, &cfg).await.is_empty());
    }
}
