//! Sites without a registry: poll a configured list of IS-04 Node APIs and merge them into
//! one catalogue.
//!
//! Every `poll_interval`, each node is read at `{base}/x-nmos/node/<version>/` (v1.3 when the
//! node offers it, else v1.2): `self`, `devices`, `sources`, `flows`, `senders`,
//! `receivers`. A resource that does not parse is skipped and logged with the node's URL. A
//! node that fails `grace_polls` polls in a row has its resources removed (one missed poll is
//! tolerated); they come back when it answers again. [`NodePollState`] holds that logic and is
//! tested without a network.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Url;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::is04::{ApiVersion, Catalogue, ResourceType};
use super::subscribe::FeedEvent;

/// Settings of the Node API poller.
#[derive(Debug, Clone)]
pub struct NodePollSettings {
    /// Node API base URLs (`http://host:port`, or ending in `/x-nmos/node/[<version>/]`).
    pub nodes: Vec<String>,
    /// Gap between polls.
    pub poll_interval: Duration,
    /// Timeout of each HTTP call.
    pub http_timeout: Duration,
    /// Failed polls in a row after which a node's resources are removed (at least 1).
    pub grace_polls: u32,
    /// PEM CA bundle for HTTPS nodes (BCP-003-01); `None` = the built-in roots.
    pub ca_bundle: Option<std::path::PathBuf>,
}

/// A failed poll of one node.
#[derive(Debug, thiserror::Error)]
pub enum NodePollError {
    /// The configured URL cannot be used.
    #[error("invalid Node API URL {url:?}: {detail}")]
    BadUrl { url: String, detail: String },
    /// No answer, refused, timed out.
    #[error("GET {url}: {detail}")]
    Http { url: String, detail: String },
    /// Status other than 2xx.
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    /// Body is not the JSON expected.
    #[error("GET {url}: unexpected body: {detail}")]
    Decode { url: String, detail: String },
    /// Neither v1.3 nor v1.2 offered.
    #[error("GET {url}: no supported Node API version (offered: {offered:?})")]
    NoVersion { url: String, offered: Vec<String> },
}

/// `.../x-nmos/node` (no trailing slash) from a configured base.
pub fn node_api_root(base: &str) -> Result<Url, NodePollError> {
    let bad = |detail: &str| NodePollError::BadUrl {
        url: base.to_owned(),
        detail: detail.to_owned(),
    };
    let mut url = Url::parse(base.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(bad("want an http or https base URL"));
    }
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().to_owned();
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments
        .last()
        .is_some_and(|s| ApiVersion::parse(s).is_some())
    {
        segments.pop();
    }
    if segments.ends_with(&["x-nmos", "node"]) {
        segments.truncate(segments.len() - 2);
    }
    let mut new_path: String = segments.iter().map(|s| format!("/{s}")).collect();
    new_path.push_str("/x-nmos/node");
    url.set_path(&new_path);
    Ok(url)
}

async fn get_json(
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<Value, NodePollError> {
    let response = http
        .get(url)
        .timeout(timeout)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| NodePollError::Http {
            url: url.to_owned(),
            detail: e.to_string(),
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(NodePollError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    let text = response.text().await.map_err(|e| NodePollError::Http {
        url: url.to_owned(),
        detail: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| NodePollError::Decode {
        url: url.to_owned(),
        detail: e.to_string(),
    })
}

/// Reads one node completely. Resources that do not parse are skipped (and logged).
pub async fn poll_node(
    http: &reqwest::Client,
    root: &Url,
    timeout: Duration,
) -> Result<Catalogue, NodePollError> {
    let root_s = format!("{}/", root.as_str().trim_end_matches('/'));
    let listing = get_json(http, &root_s, timeout).await?;
    let offered: Vec<String> = listing
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let versions: Vec<ApiVersion> = offered
        .iter()
        .filter_map(|v| ApiVersion::parse(v))
        .collect();
    let version = [ApiVersion::V1_3, ApiVersion::V1_2]
        .into_iter()
        .find(|v| versions.contains(v))
        .ok_or(NodePollError::NoVersion {
            url: root_s.clone(),
            offered,
        })?;
    let base = format!("{root_s}{version}/");
    let mut catalogue = Catalogue {
        api_version: Some(version),
        ..Catalogue::default()
    };
    for resource_type in ResourceType::ALL {
        let (path, single) = match resource_type {
            ResourceType::Node => ("self", true),
            other => (other.path(), false),
        };
        let url = format!("{base}{path}");
        let body = get_json(http, &url, timeout).await?;
        let values = if single {
            vec![body]
        } else {
            match body {
                Value::Array(a) => a,
                _ => {
                    return Err(NodePollError::Decode {
                        url,
                        detail: "not an array".to_owned(),
                    });
                }
            }
        };
        let (_, errors) = catalogue.replace_type(resource_type, values);
        for e in errors {
            tracing::warn!(url = %url, error = %e, "Node API resource skipped");
        }
    }
    Ok(catalogue)
}

#[derive(Debug, Clone, Default)]
struct NodeEntry {
    catalogue: Option<Catalogue>,
    failures: u32,
}

/// The resources of every polled node and their failure counts.
#[derive(Debug, Clone)]
pub struct NodePollState {
    nodes: BTreeMap<String, NodeEntry>,
    grace_polls: u32,
}

impl NodePollState {
    /// No node known yet; resources are dropped after `grace_polls` failures in a row.
    pub fn new(grace_polls: u32) -> NodePollState {
        NodePollState {
            nodes: BTreeMap::new(),
            grace_polls: grace_polls.max(1),
        }
    }

    /// Records one poll of the node at `base`. Returns whether the merged view changed.
    pub fn record(&mut self, base: &str, result: Result<Catalogue, String>) -> bool {
        let entry = self.nodes.entry(base.to_owned()).or_default();
        match result {
            Ok(c) => {
                entry.failures = 0;
                let changed = entry.catalogue.as_ref() != Some(&c);
                entry.catalogue = Some(c);
                changed
            }
            Err(_) => {
                entry.failures = entry.failures.saturating_add(1);
                if entry.failures >= self.grace_polls && entry.catalogue.is_some() {
                    entry.catalogue = None;
                    return true;
                }
                false
            }
        }
    }

    /// Whether the node at `base` answered its last poll.
    pub fn is_up(&self, base: &str) -> bool {
        self.nodes
            .get(base)
            .is_some_and(|e| e.failures == 0 && e.catalogue.is_some())
    }

    /// Every node's resources in one catalogue.
    pub fn merged(&self) -> Catalogue {
        let mut out = Catalogue::default();
        for c in self.nodes.values().filter_map(|e| e.catalogue.as_ref()) {
            out.merge(c);
            if out.api_version.is_none() {
                out.api_version = c.api_version;
            }
        }
        out
    }
}

/// Polls the nodes until `stop`, sending [`FeedEvent::Snapshot`] after each poll round that
/// changed something (and after the first), and `Up`/`Down` when a node starts or stops
/// answering.
pub async fn run_node_poller(
    settings: NodePollSettings,
    tx: mpsc::Sender<FeedEvent>,
    stop: CancellationToken,
) {
    let builder = reqwest::Client::builder().connect_timeout(settings.http_timeout);
    let http = match super::http::trusting(builder, settings.ca_bundle.as_deref())
        .map_err(|e| e.to_string())
        .and_then(|b| b.build().map_err(|e| e.to_string()))
    {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "Node API poller: no HTTP client");
            return;
        }
    };
    let mut roots = Vec::new();
    for base in &settings.nodes {
        match node_api_root(base) {
            Ok(r) => roots.push((base.clone(), r)),
            Err(e) => tracing::error!(error = %e, "Node API URL ignored"),
        }
    }
    let mut state = NodePollState::new(settings.grace_polls);
    let mut first = true;
    loop {
        let polls = roots.iter().map(|(base, root)| {
            let http = &http;
            async move { (base, poll_node(http, root, settings.http_timeout).await) }
        });
        let results = tokio::select! {
            _ = stop.cancelled() => return,
            r = futures_util::future::join_all(polls) => r,
        };
        let mut changed = first;
        for (base, result) in results {
            let was_up = state.is_up(base);
            let result = result.map_err(|e| e.to_string());
            let event = match &result {
                Ok(_) if !was_up => Some(FeedEvent::Up { feed: base.clone() }),
                Err(e) => {
                    tracing::warn!(node = %base, error = %e, "Node API poll failed");
                    Some(FeedEvent::Down {
                        feed: base.clone(),
                        error: e.clone(),
                    })
                }
                Ok(_) => None,
            };
            changed |= state.record(base, result);
            if let Some(ev) = event
                && tx.send(ev).await.is_err()
            {
                return;
            }
        }
        if changed && tx.send(FeedEvent::Snapshot(state.merged())).await.is_err() {
            return;
        }
        first = false;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(settings.poll_interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node_catalogue(n: u8, sender_label: &str) -> Catalogue {
        let mut c = Catalogue::default();
        let id = format!("05{n:06x}-0000-4000-8000-000000000000");
        let s = json!({"id": id, "version": "1:0", "label": sender_label, "flow_id": null,
                       "device_id": "d", "transport": "t"});
        c.apply(ResourceType::Sender, &id, Some(s)).unwrap();
        c
    }

    #[test]
    fn roots_normalise() {
        for b in [
            "http://n:3212",
            "http://n:3212/x-nmos/node/",
            "http://n:3212/x-nmos/node/v1.3/",
        ] {
            assert_eq!(
                node_api_root(b).unwrap().as_str(),
                "http://n:3212/x-nmos/node"
            );
        }
        assert!(node_api_root("nonsense").is_err());
    }

    #[test]
    fn nodes_merge_and_are_dropped_after_the_grace_polls() {
        let mut st = NodePollState::new(2);
        assert!(st.record("a", Ok(node_catalogue(1, "a1"))));
        assert!(st.record("b", Ok(node_catalogue(2, "b1"))));
        assert_eq!(st.merged().senders.len(), 2);
        assert!(!st.record("a", Ok(node_catalogue(1, "a1"))), "same content");
        // One failure: tolerated.
        assert!(!st.record("b", Err("down".into())));
        assert_eq!(st.merged().senders.len(), 2);
        assert!(!st.is_up("b"));
        // Second failure in a row: b's resources go.
        assert!(st.record("b", Err("down".into())));
        assert_eq!(st.merged().senders.len(), 1);
        assert!(!st.record("b", Err("down".into())));
        // Back.
        assert!(st.record("b", Ok(node_catalogue(2, "b1"))));
        assert_eq!(st.merged().senders.len(), 2);
        assert!(st.is_up("b"));
    }
}
