//! Unicast DNS-SD against a real (tiny) authoritative DNS server on 127.0.0.1: the browse
//! (PTR → SRV → TXT → A/AAAA), the ranking of what it found, and discovery in DNS-SD mode
//! finding a registry through it. Nothing here asks the machine's own DNS.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, PTR, SRV, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use mos_gateway::nmos::discovery::{Discovery, DiscoverySettings, RegistrySource};
use mos_gateway::nmos::dnssd::{self, ApiProto, DnsSdMode, RankPolicy};
use mos_gateway::nmos::dnssd_unicast::{QUERY_SERVICE_TYPE, UnicastConfig, browse_unicast};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

const PTR_NAME: &str = "_nmos-query._tcp.studio.test.";

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("test name")
}

/// One registry instance in the zone: PTR, SRV, TXT and its host's addresses.
struct Instance {
    label: &'static str,
    host: &'static str,
    port: u16,
    txt: &'static [&'static str],
    addresses: Vec<IpAddr>,
}

fn zone(instances: &[Instance]) -> Vec<Record> {
    let mut records = Vec::new();
    for i in instances {
        let instance = name(&format!("{}.{PTR_NAME}", i.label));
        records.push(Record::from_rdata(
            name(PTR_NAME),
            60,
            RData::PTR(PTR(instance.clone())),
        ));
        records.push(Record::from_rdata(
            instance.clone(),
            60,
            RData::SRV(SRV::new(0, 0, i.port, name(i.host))),
        ));
        records.push(Record::from_rdata(
            instance,
            60,
            RData::TXT(TXT::new(i.txt.iter().map(|s| (*s).to_owned()).collect())),
        ));
        for a in &i.addresses {
            let rdata = match a {
                IpAddr::V4(v4) => RData::A(A(*v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
            };
            records.push(Record::from_rdata(name(i.host), 60, rdata));
        }
    }
    records
}

/// An authoritative UDP DNS server for `records`: answers matching records, NODATA for a
/// known name without the asked type, NXDOMAIN otherwise. Counts the queries it answered.
async fn start_dns(records: Vec<Record>) -> (SocketAddr, Arc<AtomicUsize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind DNS");
    let addr = socket.local_addr().expect("DNS address");
    let count = Arc::new(AtomicUsize::new(0));
    let answered = count.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(request) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            let mut response =
                Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
            response.metadata.authoritative = true;
            response.metadata.recursion_desired = request.metadata.recursion_desired;
            response.edns = request.edns.clone();
            let mut known = false;
            for q in &request.queries {
                response.add_query(q.clone());
                for r in &records {
                    if r.name.eq_ignore_root_case(&q.name) {
                        known = true;
                        if r.record_type() == q.query_type || q.query_type == RecordType::ANY {
                            response.add_answer(r.clone());
                        }
                    }
                }
            }
            if !known {
                response.metadata.response_code = ResponseCode::NXDomain;
            }
            if let Ok(bytes) = response.to_vec() {
                answered.fetch_add(1, Ordering::SeqCst);
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    (addr, count)
}

fn studio() -> Vec<Instance> {
    vec![
        Instance {
            label: "reg-a",
            host: "reg-a.studio.test.",
            port: 3211,
            txt: &[
                "api_proto=http",
                "api_ver=v1.2,v1.3",
                "api_auth=false",
                "pri=10",
            ],
            addresses: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))],
        },
        Instance {
            label: "reg-b",
            host: "reg-b.studio.test.",
            port: 8080,
            txt: &["api_proto=http", "api_ver=v1.3", "api_auth=false", "pri=5"],
            addresses: vec![
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11)),
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11)),
            ],
        },
        Instance {
            label: "lab",
            host: "lab.studio.test.",
            port: 3211,
            txt: &[
                "api_proto=http",
                "api_ver=v1.3",
                "api_auth=false",
                "pri=100",
            ],
            addresses: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99))],
        },
        Instance {
            label: "secure",
            host: "secure.studio.test.",
            port: 8443,
            txt: &["api_proto=https", "api_ver=v1.3", "api_auth=false", "pri=1"],
            addresses: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 12))],
        },
    ]
}

fn config(server: SocketAddr, domain: &str) -> UnicastConfig {
    UnicastConfig {
        servers: vec![server],
        domains: vec![domain.to_owned()],
        timeout: Duration::from_secs(2),
    }
}

#[tokio::test]
async fn unicast_browse_finds_every_instance_with_its_records() {
    let (dns, count) = start_dns(zone(&studio())).await;
    let found = browse_unicast(QUERY_SERVICE_TYPE, &config(dns, "studio.test")).await;
    let by_name: BTreeMap<&str, &dnssd::DnsSdService> =
        found.iter().map(|s| (s.instance.as_str(), s)).collect();
    assert_eq!(
        by_name.keys().copied().collect::<Vec<_>>(),
        [
            "lab._nmos-query._tcp.studio.test.",
            "reg-a._nmos-query._tcp.studio.test.",
            "reg-b._nmos-query._tcp.studio.test.",
            "secure._nmos-query._tcp.studio.test.",
        ]
    );
    let b = by_name["reg-b._nmos-query._tcp.studio.test."];
    assert_eq!(b.host, "reg-b.studio.test.");
    assert_eq!(b.port, 8080);
    assert_eq!(
        b.addresses,
        vec![
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11)),
        ]
    );
    assert_eq!(b.txt.get("pri").map(String::as_str), Some("5"));
    assert_eq!(b.txt.get("api_ver").map(String::as_str), Some("v1.3"));
    assert!(count.load(Ordering::SeqCst) > 0);
}

#[tokio::test]
async fn unicast_answers_rank_by_pri_and_build_urls() {
    let (dns, _) = start_dns(zone(&studio())).await;
    // A trailing dot on the configured domain is accepted.
    let found = browse_unicast(QUERY_SERVICE_TYPE, &config(dns, "studio.test.")).await;

    // Plain HTTP: pri 5 before pri 10; the lab registry (pri 100) is outside the default
    // range; the https one is not our protocol. HTTP URLs use the resolved IPv4 address.
    let (ok, rejected) = dnssd::rank(&found, &RankPolicy::default(), |_| 0);
    let urls: Vec<&str> = ok.iter().map(|c| c.base_url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "http://192.0.2.11:8080/x-nmos/query/",
            "http://192.0.2.10:3211/x-nmos/query/",
        ]
    );
    assert_eq!(
        ok.iter().map(|c| c.pri).collect::<Vec<_>>(),
        [5, 10],
        "lower pri first"
    );
    let mut rejected: Vec<(String, String)> = rejected
        .into_iter()
        .map(|r| (r.instance, r.reason))
        .collect();
    rejected.sort();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(rejected[0].0.starts_with("lab.") && rejected[0].1.contains("pri 100"));
    assert!(rejected[1].0.starts_with("secure.") && rejected[1].1.contains("api_proto"));

    // HTTPS (allow_http = false): the name, trailing dot stripped, for the TLS check.
    let https = RankPolicy {
        proto: ApiProto::Https,
        ..RankPolicy::default()
    };
    let (ok, _) = dnssd::rank(&found, &https, |_| 0);
    assert_eq!(ok.len(), 1);
    assert_eq!(
        ok[0].base_url,
        "https://secure.studio.test:8443/x-nmos/query/"
    );

    // A wider range lets the lab registry in, last.
    let lab = RankPolicy {
        lowest_pri: 200,
        ..RankPolicy::default()
    };
    let (ok, _) = dnssd::rank(&found, &lab, |_| 0);
    assert_eq!(
        ok.last().map(|c| c.base_url.as_str()),
        Some("http://192.0.2.99:3211/x-nmos/query/")
    );
}

#[tokio::test]
async fn unicast_without_answers_is_empty_not_an_error() {
    let (dns, count) = start_dns(zone(&studio())).await;
    // NXDOMAIN for the PTR name.
    assert!(
        browse_unicast(QUERY_SERVICE_TYPE, &config(dns, "other.test"))
            .await
            .is_empty()
    );
    assert!(count.load(Ordering::SeqCst) > 0, "the server was asked");
    // A server that never answers: every lookup times out, nothing is found.
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut cfg = config(silent.local_addr().expect("address"), "studio.test");
    cfg.timeout = Duration::from_millis(200);
    assert!(browse_unicast(QUERY_SERVICE_TYPE, &cfg).await.is_empty());
    drop(silent);
}

#[tokio::test]
async fn an_instance_without_srv_is_skipped() {
    let mut records = zone(&studio()[..1]);
    // A PTR to an instance that has no SRV record.
    records.push(Record::from_rdata(
        name(PTR_NAME),
        60,
        RData::PTR(PTR(name(&format!("ghost.{PTR_NAME}")))),
    ));
    let (dns, _) = start_dns(records).await;
    let found = browse_unicast(QUERY_SERVICE_TYPE, &config(dns, "studio.test")).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].instance, "reg-a._nmos-query._tcp.studio.test.");
}

/// A Query API root that offers v1.3 (enough for discovery to pick the registry).
async fn start_query_root() -> u16 {
    let app = Router::new().route("/x-nmos/query/", get(|| async { axum::Json(["v1.3/"]) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind registry");
    let port = listener.local_addr().expect("registry address").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

#[tokio::test]
async fn discovery_in_auto_mode_uses_the_unicast_registry() {
    let port = start_query_root().await;
    // The lab registry (pri 100) would win on SRV order alone; the TXT pri range keeps it out.
    let (dns, _) = start_dns(zone(&[
        Instance {
            label: "lab",
            host: "lab.studio.test.",
            port: 9,
            txt: &[
                "api_proto=http",
                "api_ver=v1.3",
                "api_auth=false",
                "pri=100",
            ],
            addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        },
        Instance {
            label: "live",
            host: "live.studio.test.",
            port,
            txt: &["api_proto=http", "api_ver=v1.3", "api_auth=false", "pri=20"],
            addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        },
    ]))
    .await;
    let stop = CancellationToken::new();
    let settings = DiscoverySettings {
        registry: RegistrySource::Auto { fallback: None },
        // Auto: unicast answers, so mDNS is not consulted.
        dnssd_mode: DnsSdMode::Auto,
        dnssd_domain: Some("studio.test".into()),
        dnssd_servers: vec![dns],
        dnssd_lookup_timeout: Duration::from_secs(2),
        http_timeout: Duration::from_secs(2),
        ..DiscoverySettings::default()
    };
    let handle = Discovery::spawn(settings, stop.clone());
    let mut status = handle.status();
    let want = format!("http://127.0.0.1:{port}/x-nmos/query/");
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if status.borrow().registry.as_deref() == Some(want.as_str()) {
                return true;
            }
            if status.changed().await.is_err() {
                return false;
            }
        }
    })
    .await;
    stop.cancel();
    assert_eq!(seen, Ok(true), "status: {:?}", status.borrow().clone());
}
