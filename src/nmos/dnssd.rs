//! Finding the registry's Query API by multicast DNS-SD (`_nmos-query._tcp.local.`), and
//! ranking what DNS-SD (multicast here, unicast in [`super::dnssd_unicast`]) found.
//!
//! [`browse`] collects resolved services for a while with the `mdns-sd` crate; [`rank`] (pure,
//! unit-tested) keeps those that fit (`api_proto`, `api_ver` with v1.3 or v1.2, `api_auth`,
//! `pri` within the accepted range), orders them by TXT `pri` (lower first) and shuffles equal
//! priorities, and builds each base URL `{proto}://{host}:{port}/x-nmos/query/`.
//!
//! The multicast part cannot be tested on a CI machine without multicast; [`rank`] can.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::is04::ApiVersion;

/// The Query API service type in `.local`.
pub const QUERY_SERVICE: &str = "_nmos-query._tcp.local.";

/// Which DNS-SD browses discovery uses (`nmos.dnssd_mode`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DnsSdMode {
    /// Unicast first; mDNS only when unicast found no usable registry (IS-04 order).
    #[default]
    Auto,
    /// Unicast DNS only (search domains or the configured domain).
    Unicast,
    /// Multicast DNS in `.local` only.
    Mdns,
}

/// The default accepted TXT `pri` range: production registries only (100+ is for labs).
pub const DEFAULT_PRIORITIES: std::ops::RangeInclusive<u32> = 0..=99;

/// One resolved DNS-SD service instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSdService {
    /// Full instance name, for logs.
    pub instance: String,
    /// SRV target host (a trailing dot is allowed).
    pub host: String,
    /// SRV port.
    pub port: u16,
    /// A/AAAA addresses found.
    pub addresses: Vec<IpAddr>,
    /// TXT records (keys lower-cased).
    pub txt: BTreeMap<String, String>,
}

/// URL scheme of the Query API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiProto {
    Http,
    Https,
}

impl ApiProto {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiProto::Http => "http",
            ApiProto::Https => "https",
        }
    }
}

/// Which services are acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankPolicy {
    /// Only services with this `api_proto` (absent TXT means `http`).
    pub proto: ApiProto,
    /// Only services with this `api_auth` (absent means `false`); `None` accepts both.
    pub auth: Option<bool>,
    /// Highest priority accepted (smallest `pri`), e.g. 0.
    pub highest_pri: u32,
    /// Lowest priority accepted (largest `pri`); the default 99 refuses lab registries (100+).
    pub lowest_pri: u32,
}

impl Default for RankPolicy {
    fn default() -> Self {
        RankPolicy {
            proto: ApiProto::Http,
            auth: None,
            highest_pri: *DEFAULT_PRIORITIES.start(),
            lowest_pri: *DEFAULT_PRIORITIES.end(),
        }
    }
}

/// A usable registry, best first in [`rank`]'s output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryCandidate {
    /// `{proto}://{host}:{port}/x-nmos/query/`.
    pub base_url: String,
    /// TXT `pri`.
    pub pri: u32,
    /// The instance name, for logs.
    pub instance: String,
}

/// Why a service was not taken (for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub instance: String,
    pub reason: String,
}

/// Filters and orders services. `random(n)` returns a number below `n` (used to shuffle
/// equal priorities; pass a fixed function in tests).
pub fn rank(
    services: &[DnsSdService],
    policy: &RankPolicy,
    mut random: impl FnMut(usize) -> usize,
) -> (Vec<RegistryCandidate>, Vec<Rejected>) {
    let mut ok = Vec::new();
    let mut rejected = Vec::new();
    for s in services {
        match check(s, policy) {
            Ok(c) => ok.push(c),
            Err(reason) => rejected.push(Rejected {
                instance: s.instance.clone(),
                reason,
            }),
        }
    }
    ok.sort_by_key(|c| c.pri);
    // Fisher-Yates within each run of equal priority.
    let mut start = 0;
    while start < ok.len() {
        let pri = ok[start].pri;
        let end = start + ok[start..].iter().take_while(|c| c.pri == pri).count();
        for i in (start + 1..end).rev() {
            let j = start + random(i - start + 1) % (i - start + 1);
            ok.swap(i, j);
        }
        start = end;
    }
    (ok, rejected)
}

fn check(s: &DnsSdService, policy: &RankPolicy) -> Result<RegistryCandidate, String> {
    let txt = |k: &str| s.txt.get(k).map(|v| v.trim());
    let proto = txt("api_proto").unwrap_or("http");
    if !proto.eq_ignore_ascii_case(policy.proto.as_str()) {
        return Err(format!("api_proto {proto}, want {}", policy.proto.as_str()));
    }
    let versions: Vec<ApiVersion> = txt("api_ver")
        .unwrap_or("")
        .split(',')
        .filter_map(ApiVersion::parse)
        .collect();
    if !versions.contains(&ApiVersion::V1_3) && !versions.contains(&ApiVersion::V1_2) {
        return Err(format!(
            "api_ver {:?} has neither v1.3 nor v1.2",
            txt("api_ver").unwrap_or("")
        ));
    }
    if let Some(want) = policy.auth {
        let auth = txt("api_auth").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if auth != want {
            return Err(format!("api_auth {auth}, want {want}"));
        }
    }
    let pri: u32 = txt("pri")
        .ok_or("no pri")?
        .parse()
        .map_err(|_| format!("pri {:?} is not a number", txt("pri").unwrap_or("")))?;
    if pri < policy.highest_pri || pri > policy.lowest_pri {
        return Err(format!(
            "pri {pri} outside {}..={}",
            policy.highest_pri, policy.lowest_pri
        ));
    }
    if s.port == 0 {
        return Err("port 0".to_owned());
    }
    let host = url_host(s, policy.proto).ok_or("no host")?;
    Ok(RegistryCandidate {
        base_url: format!(
            "{}://{host}:{}/x-nmos/query/",
            policy.proto.as_str(),
            s.port
        ),
        pri,
        instance: s.instance.clone(),
    })
}

/// The host part of the URL. HTTPS needs the name (TLS checks it; trailing dot removed);
/// plain HTTP uses an address when one was resolved (`.local` names need mDNS to resolve),
/// IPv4 first.
fn url_host(s: &DnsSdService, proto: ApiProto) -> Option<String> {
    let name = s.host.trim().trim_end_matches('.');
    if proto == ApiProto::Http {
        let v4 = s.addresses.iter().find(|a| a.is_ipv4());
        let any = v4.or_else(|| s.addresses.first());
        match any {
            Some(IpAddr::V4(a)) => return Some(a.to_string()),
            Some(IpAddr::V6(a)) => return Some(format!("[{a}]")),
            None => {}
        }
    }
    (!name.is_empty()).then(|| name.to_owned())
}

/// A failure of the mDNS machinery itself (not "nothing found").
#[derive(Debug, thiserror::Error)]
#[error("mDNS browse of {service}: {detail}")]
pub struct BrowseError {
    pub service: String,
    pub detail: String,
}

/// Browses `service` (e.g. [`QUERY_SERVICE`]) for `wait` and returns every instance resolved.
pub async fn browse(service: &str, wait: Duration) -> Result<Vec<DnsSdService>, BrowseError> {
    let err = |detail: String| BrowseError {
        service: service.to_owned(),
        detail,
    };
    let daemon = mdns_sd::ServiceDaemon::new().map_err(|e| err(e.to_string()))?;
    let events = daemon.browse(service).map_err(|e| err(e.to_string()))?;
    let mut found: BTreeMap<String, DnsSdService> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let next = tokio::time::timeout_at(deadline, events.recv_async()).await;
        match next {
            Err(_) | Ok(Err(_)) => break,
            Ok(Ok(mdns_sd::ServiceEvent::ServiceResolved(r))) => {
                let txt = r
                    .get_properties()
                    .iter()
                    .map(|p| (p.key().to_ascii_lowercase(), p.val_str().to_owned()))
                    .collect();
                let mut addresses: Vec<IpAddr> =
                    r.get_addresses().iter().map(|a| a.to_ip_addr()).collect();
                addresses.sort();
                found.insert(
                    r.get_fullname().to_owned(),
                    DnsSdService {
                        instance: r.get_fullname().to_owned(),
                        host: r.get_hostname().to_owned(),
                        port: r.get_port(),
                        addresses,
                        txt,
                    },
                );
            }
            Ok(Ok(mdns_sd::ServiceEvent::ServiceRemoved(_, name))) => {
                found.remove(&name);
            }
            Ok(Ok(_)) => {}
        }
    }
    let _ = daemon.stop_browse(service);
    let _ = daemon.shutdown();
    Ok(found.into_values().collect())
}

/// A random number below `n` (`n` > 0), from the OS random source via UUID v4.
pub fn os_random(n: usize) -> usize {
    let r = uuid::Uuid::new_v4().as_u128();
    (r % n.max(1) as u128) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, pri: &str, proto: &str, ver: &str) -> DnsSdService {
        let mut txt = BTreeMap::new();
        txt.insert("pri".to_owned(), pri.to_owned());
        txt.insert("api_proto".to_owned(), proto.to_owned());
        txt.insert("api_ver".to_owned(), ver.to_owned());
        DnsSdService {
            instance: name.to_owned(),
            host: format!("{name}.local."),
            port: 3211,
            addresses: vec!["192.168.1.7".parse().unwrap()],
            txt,
        }
    }

    #[test]
    fn lowest_pri_first_and_filters_apply() {
        let services = vec![
            svc("b", "10", "http", "v1.2,v1.3"),
            svc("a", "0", "http", "v1.3"),
            svc("secure", "0", "https", "v1.3"),
            svc("old", "0", "http", "v1.0,v1.1"),
            svc("v12", "20", "http", "v1.2"),
            svc("nopri", "x", "http", "v1.3"),
            svc("lab", "100", "http", "v1.3"),
        ];
        let policy = RankPolicy {
            lowest_pri: 99,
            ..RankPolicy::default()
        };
        let (ok, rejected) = rank(&services, &policy, |_| 0);
        let names: Vec<&str> = ok.iter().map(|c| c.instance.as_str()).collect();
        assert_eq!(names, ["a", "b", "v12"]);
        assert_eq!(ok[0].base_url, "http://192.168.1.7:3211/x-nmos/query/");
        let mut rej: Vec<&str> = rejected.iter().map(|r| r.instance.as_str()).collect();
        rej.sort();
        assert_eq!(rej, ["lab", "nopri", "old", "secure"]);
    }

    #[test]
    fn https_uses_the_name_without_trailing_dot() {
        let services = vec![svc("reg", "1", "https", "v1.3")];
        let policy = RankPolicy {
            proto: ApiProto::Https,
            ..RankPolicy::default()
        };
        let (ok, _) = rank(&services, &policy, |_| 0);
        assert_eq!(ok[0].base_url, "https://reg.local:3211/x-nmos/query/");
    }

    #[test]
    fn auth_mode_filters() {
        let mut s = svc("auth", "1", "http", "v1.3");
        s.txt.insert("api_auth".to_owned(), "true".to_owned());
        let services = vec![s, svc("open", "1", "http", "v1.3")];
        let policy = RankPolicy {
            auth: Some(false),
            ..RankPolicy::default()
        };
        let (ok, _) = rank(&services, &policy, |_| 0);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].instance, "open");
    }

    #[test]
    fn equal_priorities_are_shuffled_only_among_themselves() {
        let services = vec![
            svc("x", "5", "http", "v1.3"),
            svc("y", "5", "http", "v1.3"),
            svc("z", "5", "http", "v1.3"),
            svc("best", "1", "http", "v1.3"),
            svc("worst", "9", "http", "v1.3"),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..30usize {
            let mut k = seed;
            let (ok, _) = rank(&services, &RankPolicy::default(), |n| {
                k = k.wrapping_mul(7).wrapping_add(3);
                k % n
            });
            assert_eq!(ok[0].instance, "best");
            assert_eq!(ok[4].instance, "worst");
            seen.insert(ok[1].instance.clone());
        }
        assert!(seen.len() > 1, "equal priorities never reordered: {seen:?}");
    }

    #[test]
    fn ipv6_only_addresses_are_bracketed() {
        let mut s = svc("v6", "1", "http", "v1.3");
        s.addresses = vec!["fe80::1".parse().unwrap()];
        let (ok, _) = rank(&[s], &RankPolicy::default(), |_| 0);
        assert_eq!(ok[0].base_url, "http://[fe80::1]:3211/x-nmos/query/");
    }
}
