//! The discovery task: finds the registry (configured URL or DNS-SD), keeps one WebSocket
//! subscription per resource type alive on it (or polls Node APIs on sites without a
//! registry), and publishes a new [`Catalogue`] snapshot after each batch of changes.
//!
//! It never gives up: while no registry answers it logs a warning at every attempt (with
//! back-off) and keeps the last catalogue. Registry input never panics it: a resource that
//! does not parse is logged with the registry URL and its id, and skipped.
//!
//! With DNS-SD ([`RegistrySource::Auto`]) unicast DNS-SD is browsed first and mDNS only when
//! unicast found no usable registry (or as [`DnsSdMode`] forces); the candidates are tried
//! best first; a registry that
//! does not answer, or whose subscriptions all keep failing, is put aside for a while and the
//! next one is used; when none is left the service is browsed again. The first snapshot is
//! published once every resource type has been read (or `initial_sync_grace` after the first
//! one was), so that senders are not first announced without their devices.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::dnssd::{self, DnsSdMode, RankPolicy};
use super::dnssd_unicast::{self, UnicastConfig};
use super::is04::{Catalogue, QueryClient, QueryClientConfig, ResourceType};
use super::node_poll::{NodePollSettings, run_node_poller};
use super::subscribe::{Backoff, FeedEvent, SubscriptionSettings, apply_grain, run_subscription};

/// Where the catalogue comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrySource {
    /// A registry's Query API at this URL (`http://host:port`, optionally with
    /// `/x-nmos/query/[<version>/]`).
    Url(String),
    /// DNS-SD `_nmos-query._tcp` (unicast, then mDNS; see [`DnsSdMode`]); `fallback` is used when nothing usable is found.
    Auto { fallback: Option<String> },
    /// No registry: poll these Node API base URLs.
    Nodes(Vec<String>),
    /// No NMOS discovery at all (the catalogue stays empty).
    None,
}

/// Settings of the discovery task (the integrator maps the configuration onto this).
#[derive(Debug, Clone)]
pub struct DiscoverySettings {
    /// PEM CA bundle for an HTTPS registry (BCP-003-01); `None` = the built-in roots.
    pub ca_bundle: Option<std::path::PathBuf>,
    /// IS-10 bearer tokens for the registry (Query API and its WebSockets); `None` = none.
    pub tokens: Option<std::sync::Arc<dyn super::http::TokenSource>>,
    /// Where to look.
    pub registry: RegistrySource,
    /// Gap between Node API polls ([`RegistrySource::Nodes`]).
    pub poll_interval: Duration,
    /// Timeout of every HTTP call and WebSocket handshake.
    pub http_timeout: Duration,
    /// First delay before retrying a registry or a subscription.
    pub backoff_initial: Duration,
    /// Longest delay between retries (registry and resubscription).
    pub resubscribe_backoff_max: Duration,
    /// `max_update_rate_ms` of the subscriptions.
    pub max_update_rate_ms: u32,
    /// Gap between WebSocket pings.
    pub ping_interval: Duration,
    /// A subscription socket silent for this long is dropped and renewed.
    pub idle_timeout: Duration,
    /// DNS-SD: which services are acceptable.
    pub dnssd_policy: RankPolicy,
    /// DNS-SD: how long each mDNS browse listens.
    pub dnssd_browse: Duration,
    /// DNS-SD: unicast, mDNS, or unicast then mDNS.
    pub dnssd_mode: DnsSdMode,
    /// Unicast DNS-SD: the browse domain; `None` = the system's search domains.
    pub dnssd_domain: Option<String>,
    /// Unicast DNS-SD: name servers; empty = the system's (`/etc/resolv.conf`).
    pub dnssd_servers: Vec<std::net::SocketAddr>,
    /// Unicast DNS-SD: timeout of each DNS lookup.
    pub dnssd_lookup_timeout: Duration,
    /// DNS-SD: how long a registry that failed is put aside.
    pub dnssd_bad_for: Duration,
    /// Node API: failed polls in a row before a node's resources are removed.
    pub node_grace_polls: u32,
    /// Longest wait for all types' first listing before the first snapshot is published.
    pub initial_sync_grace: Duration,
}

impl Default for DiscoverySettings {
    fn default() -> Self {
        DiscoverySettings {
            ca_bundle: None,
            tokens: None,
            registry: RegistrySource::None,
            poll_interval: Duration::from_secs(5),
            http_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(500),
            resubscribe_backoff_max: Duration::from_secs(30),
            max_update_rate_ms: 100,
            ping_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(35),
            dnssd_policy: RankPolicy::default(),
            dnssd_browse: Duration::from_secs(2),
            dnssd_mode: DnsSdMode::Auto,
            dnssd_domain: None,
            dnssd_servers: Vec::new(),
            dnssd_lookup_timeout: Duration::from_secs(2),
            dnssd_bad_for: Duration::from_secs(60),
            node_grace_polls: 2,
            initial_sync_grace: Duration::from_secs(5),
        }
    }
}

impl DiscoverySettings {
    fn subscription(&self) -> SubscriptionSettings {
        SubscriptionSettings {
            max_update_rate_ms: self.max_update_rate_ms,
            http_timeout: self.http_timeout,
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            backoff_initial: self.backoff_initial,
            backoff_max: self.resubscribe_backoff_max,
            ca_bundle: self.ca_bundle.clone(),
        }
    }

    fn query_client(&self) -> QueryClientConfig {
        QueryClientConfig {
            timeout: self.http_timeout,
            connect_timeout: self.http_timeout,
            ca_bundle: self.ca_bundle.clone(),
            tokens: self.tokens.clone(),
            ..QueryClientConfig::default()
        }
    }
}

/// What discovery is doing, for logs and status pages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryStatus {
    /// The registry's Query API in use (`.../x-nmos/query/`), if one answered.
    pub registry: Option<String>,
    /// Feeds currently live (subscription URLs, or Node API URLs).
    pub live: BTreeSet<String>,
    /// Feeds expected (6 with a registry, one per node otherwise).
    pub expected: usize,
    /// The last error seen, if any.
    pub last_error: Option<String>,
    /// Whether a first complete snapshot has been published.
    pub synchronised: bool,
}

impl DiscoveryStatus {
    /// Whether every expected feed is live.
    pub fn connected(&self) -> bool {
        self.expected > 0 && self.live.len() >= self.expected
    }
}

/// The running discovery task.
#[derive(Debug)]
pub struct DiscoveryHandle {
    catalogue: watch::Receiver<Arc<Catalogue>>,
    status: watch::Receiver<DiscoveryStatus>,
    task: JoinHandle<()>,
}

impl DiscoveryHandle {
    /// The catalogue: a new snapshot after each batch of changes.
    pub fn catalogue(&self) -> watch::Receiver<Arc<Catalogue>> {
        self.catalogue.clone()
    }

    /// The status.
    pub fn status(&self) -> watch::Receiver<DiscoveryStatus> {
        self.status.clone()
    }

    /// Waits until the task has ended (after the stop token was cancelled).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// The discovery task.
#[derive(Debug)]
pub struct Discovery;

impl Discovery {
    /// Starts discovery; it runs until `stop` is cancelled.
    pub fn spawn(settings: DiscoverySettings, stop: CancellationToken) -> DiscoveryHandle {
        let (cat_tx, cat_rx) = watch::channel(Arc::new(Catalogue::default()));
        let expected = match &settings.registry {
            RegistrySource::Url(_) | RegistrySource::Auto { .. } => ResourceType::ALL.len(),
            RegistrySource::Nodes(n) => n.len(),
            RegistrySource::None => 0,
        };
        let (status_tx, status_rx) = watch::channel(DiscoveryStatus {
            expected,
            ..DiscoveryStatus::default()
        });
        let status_tx = Arc::new(status_tx);
        let (feed_tx, feed_rx) = mpsc::channel(1024);
        let registry_mode = matches!(
            settings.registry,
            RegistrySource::Url(_) | RegistrySource::Auto { .. }
        );
        match settings.registry.clone() {
            RegistrySource::Url(_) | RegistrySource::Auto { .. } => {
                tokio::spawn(run_registry(
                    settings.clone(),
                    feed_tx,
                    status_tx.clone(),
                    stop.clone(),
                ));
            }
            RegistrySource::Nodes(nodes) => {
                let ns = NodePollSettings {
                    nodes,
                    poll_interval: settings.poll_interval,
                    http_timeout: settings.http_timeout,
                    grace_polls: settings.node_grace_polls,
                    ca_bundle: settings.ca_bundle.clone(),
                };
                tokio::spawn(run_node_poller(ns, feed_tx, stop.clone()));
            }
            RegistrySource::None => {
                tracing::info!("NMOS discovery disabled: the sender catalogue stays empty");
                drop(feed_tx);
            }
        }
        let task = tokio::spawn(run_catalogue(
            feed_rx,
            cat_tx,
            status_tx,
            registry_mode,
            settings.initial_sync_grace,
            stop,
        ));
        DiscoveryHandle {
            catalogue: cat_rx,
            status: status_rx,
            task,
        }
    }
}

/// Applies one feed event; returns whether the catalogue changed.
fn handle(
    catalogue: &mut Catalogue,
    event: FeedEvent,
    synced: &mut HashSet<ResourceType>,
    status: &watch::Sender<DiscoveryStatus>,
) -> bool {
    match event {
        FeedEvent::Replace {
            resource_type,
            values,
            source,
        } => {
            let (changed, errors) = catalogue.replace_type(resource_type, values);
            for e in errors {
                tracing::warn!(url = %source, error = %e, "IS-04 resource skipped");
            }
            synced.insert(resource_type);
            changed
        }
        FeedEvent::Events {
            resource_type,
            events,
            source,
        } => {
            let (changed, errors) = apply_grain(catalogue, resource_type, &events);
            for e in errors {
                tracing::warn!(url = %source, error = %e, "IS-04 resource skipped");
            }
            changed
        }
        FeedEvent::Snapshot(mut c) => {
            c.api_version = c.api_version.or(catalogue.api_version);
            synced.extend(ResourceType::ALL);
            let changed = *catalogue != c;
            *catalogue = c;
            changed
        }
        FeedEvent::Up { feed } => {
            status.send_modify(|s| {
                s.live.insert(feed);
            });
            false
        }
        FeedEvent::Down { feed, error } => {
            status.send_modify(|s| {
                s.live.remove(&feed);
                s.last_error = Some(error);
            });
            false
        }
    }
}

/// Owns the catalogue: applies feed events in batches and publishes snapshots.
async fn run_catalogue(
    mut rx: mpsc::Receiver<FeedEvent>,
    out: watch::Sender<Arc<Catalogue>>,
    status: Arc<watch::Sender<DiscoveryStatus>>,
    registry_mode: bool,
    grace: Duration,
    stop: CancellationToken,
) {
    let mut catalogue = Catalogue::default();
    let mut synced: HashSet<ResourceType> = HashSet::new();
    let mut first_sync: Option<Instant> = None;
    let mut published = false;
    let far = Duration::from_secs(86_400 * 365);
    loop {
        let grace_end = first_sync.map_or(Instant::now() + far, |t| t + grace);
        let mut changed = false;
        tokio::select! {
            _ = stop.cancelled() => return,
            ev = rx.recv() => match ev {
                Some(ev) => {
                    changed |= handle(&mut catalogue, ev, &mut synced, &status);
                    while let Ok(ev) = rx.try_recv() {
                        changed |= handle(&mut catalogue, ev, &mut synced, &status);
                    }
                }
                None => {
                    // No feeder (discovery disabled): wait for the stop.
                    stop.cancelled().await;
                    return;
                }
            },
            _ = tokio::time::sleep_until(grace_end), if !published && first_sync.is_some() => {}
        }
        if !synced.is_empty() && first_sync.is_none() {
            first_sync = Some(Instant::now());
        }
        let complete = !registry_mode || synced.len() == ResourceType::ALL.len();
        let grace_over = first_sync.is_some_and(|t| t + grace <= Instant::now());
        if !published && (complete || grace_over) && !synced.is_empty() {
            if !complete {
                let missing: Vec<&str> = ResourceType::ALL
                    .iter()
                    .filter(|t| !synced.contains(t))
                    .map(|t| t.path())
                    .collect();
                tracing::warn!(
                    ?missing,
                    "publishing the NMOS catalogue before every resource type was read"
                );
            }
            published = true;
            changed = true;
            status.send_modify(|s| s.synchronised = true);
        }
        if published && changed {
            tracing::debug!(
                senders = catalogue.senders.len(),
                devices = catalogue.devices.len(),
                "NMOS catalogue updated"
            );
            out.send_replace(Arc::new(catalogue.clone()));
        }
    }
}

/// Finds a registry and keeps its subscriptions alive until `stop`.
async fn run_registry(
    settings: DiscoverySettings,
    tx: mpsc::Sender<FeedEvent>,
    status: Arc<watch::Sender<DiscoveryStatus>>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(settings.backoff_initial, settings.resubscribe_backoff_max);
    let mut bad: BTreeMap<String, Instant> = BTreeMap::new();
    let failover = matches!(settings.registry, RegistrySource::Auto { .. });
    loop {
        let candidates = match &settings.registry {
            RegistrySource::Url(u) => vec![u.clone()],
            RegistrySource::Auto { fallback } => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    c = dnssd_candidates(&settings, fallback.as_deref(), &mut bad) => c,
                }
            }
            _ => return,
        };
        if candidates.is_empty() {
            let msg = "no NMOS registry found by DNS-SD (_nmos-query._tcp) and no fallback URL";
            tracing::warn!("{msg}; browsing again");
            status.send_modify(|s| s.last_error = Some(msg.to_owned()));
        }
        for url in candidates {
            let client = match QueryClient::new(&url, settings.query_client()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "NMOS registry URL unusable");
                    status.send_modify(|s| s.last_error = Some(e.to_string()));
                    continue;
                }
            };
            let version = tokio::select! {
                _ = stop.cancelled() => return,
                v = client.api_version() => v,
            };
            match version {
                Ok(v) => {
                    tracing::info!(registry = %client.root_url(), version = %v, "NMOS registry answers; subscribing");
                    status.send_modify(|s| s.registry = Some(client.root_url()));
                    backoff.reset();
                    run_session(&client, &settings, &tx, &stop, failover).await;
                    if stop.is_cancelled() || tx.is_closed() {
                        return;
                    }
                    tracing::warn!(registry = %client.root_url(), "NMOS registry keeps failing; looking for another");
                    bad.insert(url, Instant::now());
                    status.send_modify(|s| s.registry = None);
                }
                Err(e) => {
                    tracing::warn!(registry = %url, error = %e, "NMOS registry not answering; will retry");
                    status.send_modify(|s| s.last_error = Some(e.to_string()));
                    bad.insert(url, Instant::now());
                }
            }
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Browses DNS-SD and returns the usable registries, best first, then the fallback URL.
async fn dnssd_candidates(
    settings: &DiscoverySettings,
    fallback: Option<&str>,
    bad: &mut BTreeMap<String, Instant>,
) -> Vec<String> {
    let unicast = || async {
        let config = unicast_config(settings);
        let services =
            dnssd_unicast::browse_unicast(dnssd_unicast::QUERY_SERVICE_TYPE, &config).await;
        (services, config.domains)
    };
    let mdns = || dnssd::browse(dnssd::QUERY_SERVICE, settings.dnssd_browse);
    candidates_from(settings, fallback, bad, unicast, mdns).await
}

/// [`dnssd_candidates`] with the two browses passed in (so the order rule can be tested
/// without a network): unicast first, unless the mode is mDNS only; mDNS only when unicast
/// gave nothing usable, unless the mode is unicast only.
async fn candidates_from<U, UF, M, MF>(
    settings: &DiscoverySettings,
    fallback: Option<&str>,
    bad: &mut BTreeMap<String, Instant>,
    unicast: U,
    mdns: M,
) -> Vec<String>
where
    U: FnOnce() -> UF,
    UF: std::future::Future<Output = (Vec<dnssd::DnsSdService>, Vec<String>)>,
    M: FnOnce() -> MF,
    MF: std::future::Future<Output = Result<Vec<dnssd::DnsSdService>, dnssd::BrowseError>>,
{
    bad.retain(|_, since| since.elapsed() < settings.dnssd_bad_for);
    let mut found = Vec::new();
    if settings.dnssd_mode != DnsSdMode::Mdns {
        let (services, domains) = unicast().await;
        found = ranked(&services, settings, "unicast");
        if found.is_empty() {
            tracing::info!(?domains, "no usable NMOS registry found by unicast DNS-SD");
        }
    }
    // IS-04: mDNS only when unicast gave nothing usable; a unicast registry that does not
    // answer is set aside and retried, never replaced by an mDNS one.
    if found.is_empty() && settings.dnssd_mode != DnsSdMode::Unicast {
        match mdns().await {
            Ok(services) => found = ranked(&services, settings, "mDNS"),
            Err(e) => tracing::warn!(error = %e, "DNS-SD browse failed"),
        }
    }
    let mut urls: Vec<String> = found.into_iter().filter(|u| !bad.contains_key(u)).collect();
    if let Some(f) = fallback
        && !urls.iter().any(|u| u == f)
    {
        urls.push(f.to_owned());
    }
    urls
}

/// The unicast browse configuration: explicit servers, or the system's (read at each browse,
/// so a DHCP change is followed).
fn unicast_config(settings: &DiscoverySettings) -> UnicastConfig {
    let domain = settings.dnssd_domain.as_deref();
    let timeout = settings.dnssd_lookup_timeout;
    if settings.dnssd_servers.is_empty() || domain.is_none() {
        let mut config = UnicastConfig::system(domain, timeout);
        if !settings.dnssd_servers.is_empty() {
            config.servers = settings.dnssd_servers.clone();
        }
        config
    } else {
        UnicastConfig {
            servers: settings.dnssd_servers.clone(),
            domains: domain.map(|d| vec![d.to_owned()]).unwrap_or_default(),
            timeout,
        }
    }
}

/// The usable registries' base URLs, best first; rejected ones are logged.
fn ranked(
    services: &[dnssd::DnsSdService],
    settings: &DiscoverySettings,
    how: &str,
) -> Vec<String> {
    let (ok, rejected) = dnssd::rank(services, &settings.dnssd_policy, dnssd::os_random);
    for r in rejected {
        tracing::info!(instance = %r.instance, reason = %r.reason, via = how, "DNS-SD registry not used");
    }
    ok.into_iter().map(|c| c.base_url).collect()
}

/// Runs the six subscriptions on one registry. Returns when stopped, or (with `failover`)
/// when every subscription has failed twice in a row without any coming back.
async fn run_session(
    client: &QueryClient,
    settings: &DiscoverySettings,
    tx: &mpsc::Sender<FeedEvent>,
    stop: &CancellationToken,
    failover: bool,
) {
    let session = stop.child_token();
    let (wtx, mut wrx) = mpsc::channel(256);
    for resource_type in ResourceType::ALL {
        tokio::spawn(run_subscription(
            client.clone(),
            resource_type,
            settings.subscription(),
            wtx.clone(),
            session.clone(),
        ));
    }
    drop(wtx);
    let limit = ResourceType::ALL.len() * 2;
    let mut failures = 0usize;
    loop {
        let ev = tokio::select! {
            _ = session.cancelled() => return,
            ev = wrx.recv() => ev,
        };
        let Some(ev) = ev else { return };
        match &ev {
            FeedEvent::Up { .. } => failures = 0,
            FeedEvent::Down { .. } => failures += 1,
            _ => {}
        }
        if tx.send(ev).await.is_err() {
            session.cancel();
            return;
        }
        if failover && failures >= limit {
            session.cancel();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const UNI: &str = "192.0.2.1";
    const MULTI: &str = "192.0.2.2";

    /// A usable registry; its URL is built from `address` (plain HTTP uses the address).
    fn registry(name: &str, address: &str) -> dnssd::DnsSdService {
        let txt = [("pri", "10"), ("api_proto", "http"), ("api_ver", "v1.3")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        dnssd::DnsSdService {
            instance: name.to_owned(),
            host: format!("{name}.example."),
            port: 80,
            addresses: vec![address.parse().unwrap()],
            txt,
        }
    }

    /// Runs the order rule with canned browse results; returns the URLs and which browses ran.
    async fn run(
        mode: DnsSdMode,
        unicast: Vec<dnssd::DnsSdService>,
        mdns: Vec<dnssd::DnsSdService>,
    ) -> (Vec<String>, bool, bool) {
        let settings = DiscoverySettings {
            dnssd_mode: mode,
            ..DiscoverySettings::default()
        };
        let (asked_unicast, asked_mdns) = (Cell::new(false), Cell::new(false));
        let urls = candidates_from(
            &settings,
            Some("http://fallback:80"),
            &mut BTreeMap::new(),
            || {
                asked_unicast.set(true);
                async move { (unicast, vec!["example.".to_owned()]) }
            },
            || {
                asked_mdns.set(true);
                async move { Ok(mdns) }
            },
        )
        .await;
        (urls, asked_unicast.get(), asked_mdns.get())
    }

    #[tokio::test]
    async fn a_unicast_registry_means_no_mdns_browse() {
        let (urls, unicast, mdns) = run(
            DnsSdMode::Auto,
            vec![registry("uni", UNI)],
            vec![registry("multi", MULTI)],
        )
        .await;
        assert!((unicast, mdns) == (true, false), "mDNS must not be browsed");
        assert_eq!(urls.len(), 2, "{urls:?}");
        assert!(urls[0].contains(UNI), "{urls:?}");
        assert_eq!(urls[1], "http://fallback:80");
    }

    #[tokio::test]
    async fn mdns_only_when_unicast_finds_nothing_usable() {
        // An unusable unicast answer (a lab priority) counts as nothing.
        let mut lab = registry("lab", UNI);
        lab.txt.insert("pri".into(), "150".into());
        let (urls, unicast, mdns) =
            run(DnsSdMode::Auto, vec![lab], vec![registry("multi", MULTI)]).await;
        assert!(unicast && mdns);
        assert!(urls[0].contains(MULTI), "{urls:?}");
    }

    #[tokio::test]
    async fn forced_modes_browse_one_way_only() {
        let (urls, unicast, mdns) = run(
            DnsSdMode::Unicast,
            Vec::new(),
            vec![registry("multi", MULTI)],
        )
        .await;
        assert_eq!((unicast, mdns), (true, false));
        assert_eq!(urls, ["http://fallback:80"]);
        let (urls, unicast, mdns) = run(
            DnsSdMode::Mdns,
            vec![registry("uni", UNI)],
            vec![registry("multi", MULTI)],
        )
        .await;
        assert_eq!((unicast, mdns), (false, true));
        assert!(urls[0].contains(MULTI), "{urls:?}");
    }
}
