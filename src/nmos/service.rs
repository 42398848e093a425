//! Starting the NMOS side of a running gateway from its configuration: the HTTP client (TLS,
//! IS-10 tokens), the IS-05 / IS-08 clients, IS-04 discovery, the senders and presets in the
//! MOS object catalogue, and the bridge task. `mos-gateway run` and the tests start it the
//! same way, through [`NmosService::start`].

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::auth::{AuthSettings, TokenManager};
use super::bridge::{self, BridgeParts, BridgeSettings};
use super::devices::NmosDevices;
use super::discovery::{Discovery, DiscoveryHandle, DiscoverySettings, RegistrySource};
use super::dnssd::{ApiProto, RankPolicy};
use super::http::{HttpSettings, NmosHttp};
use super::is05::{ConnectionClient, Is05Settings};
use super::is08::{ChannelMappingClient, Is08Settings};
use super::mapping::Mapping;
use super::schemas::SchemaSet;
use super::sender_objects::{SenderObjectSettings, spawn_sender_objects};
use super::takes::TakeSettings;
use crate::config::{self, Config, NmosConfig};
use crate::objects::MemoryCatalogue;
use crate::server::Gateway;

/// Why the NMOS side could not start (the MOS side keeps running).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The official schemas every request is validated against are not readable.
    #[error("NMOS schemas: {0} (set MOS_GATEWAY_NMOS_SCHEMAS to the nmos-schemas directory)")]
    Schemas(#[from] super::schemas::SchemaError),
    /// The HTTP client cannot be built (CA bundle unreadable, ...).
    #[error("NMOS HTTP client: {0}")]
    Http(#[from] super::http::HttpSetupError),
    /// The IS-10 client secret cannot be read.
    #[error("IS-10 client secret: {0}")]
    Secret(#[from] super::auth::AuthError),
    /// Another bridge already takes the gateway's events.
    #[error("an NMOS bridge is already attached to this gateway")]
    AlreadyAttached,
}

/// The running NMOS side.
pub struct NmosService {
    settings: watch::Sender<Arc<BridgeSettings>>,
    discovery: DiscoveryHandle,
    objects: Arc<MemoryCatalogue>,
    presets: BTreeSet<String>,
    tokens: Option<TokenManager>,
    /// The `[nmos]` settings the clients and discovery were built with.
    started: NmosConfig,
}

impl NmosService {
    /// Starts everything for `gateway` (before or after `Gateway::run`); it all stops with
    /// `stop`.
    pub fn start(
        gateway: &Gateway,
        config: &Config,
        stop: CancellationToken,
    ) -> Result<NmosService, ServiceError> {
        let nmos = &config.nmos;
        let schemas = Arc::new(SchemaSet::load_default()?);
        let mut http = NmosHttp::new(http_settings(nmos))?;
        let tokens = match &nmos.auth {
            None => None,
            Some(auth) => {
                let secret = auth.secret.read()?;
                let settings =
                    AuthSettings::new(&auth.token_url, &auth.client_id, secret, &auth.scope);
                let manager = TokenManager::spawn(http.clone(), settings);
                http = http.with_tokens(manager.source());
                info!(token_url = %auth.token_url, "IS-10: bearer tokens by client credentials");
                Some(manager)
            }
        };
        let is05 = ConnectionClient::new(
            http.clone(),
            schemas.clone(),
            Is05Settings {
                on_423: nmos.on_423,
                take_all_or_nothing: nmos.take_all_or_nothing,
                use_bulk: true,
            },
        );
        let is08 = ChannelMappingClient::new(http, schemas, Is08Settings::default());
        let devices = Arc::new(NmosDevices::new(is05, is08));
        let events = gateway.events().ok_or(ServiceError::AlreadyAttached)?;

        let mut discovery_settings = discovery_settings(nmos);
        discovery_settings.tokens = tokens.as_ref().map(TokenManager::source);
        let discovery = Discovery::spawn(discovery_settings, stop.clone());
        let objects = gateway.catalogue();
        spawn_sender_objects(
            discovery.catalogue(),
            objects.clone(),
            SenderObjectSettings {
                schema: nmos.mos_schema.clone(),
                debounce: nmos.debounce,
            },
            stop.clone(),
        );
        let settings = Arc::new(bridge_settings(config));
        let (settings_tx, settings_rx) = watch::channel(settings.clone());
        let mut service = NmosService {
            settings: settings_tx,
            discovery,
            objects: objects.clone(),
            presets: BTreeSet::new(),
            tokens,
            started: config.nmos.clone(),
        };
        service.publish_presets(&settings.mapping);
        let parts = BridgeParts {
            devices,
            events,
            state: gateway.state(),
            catalogue: service.discovery.catalogue(),
            objects,
            statuses: gateway.status_sender(),
            ncs_ids: config.ncs.iter().map(|n| n.id.clone()).collect(),
            settings: settings_rx,
        };
        tokio::spawn(bridge::run(parts, stop));
        info!(
            destinations = config.destinations.len(),
            presets = config.presets.len(),
            bindings = config.bindings.len(),
            "NMOS bridge started"
        );
        Ok(service)
    }

    /// A new configuration (SIGHUP): mapping and take settings replaced, every item
    /// re-resolved; connections (MOS and NMOS) are kept. The settings the clients and
    /// discovery were built with (registry, DNS-SD, TLS, IS-10, timeouts, debounce, on_423,
    /// take_all_or_nothing) need a restart: a warning says so when they changed.
    pub fn reload(&mut self, config: &Config) {
        if !same_start_settings(&self.started, &config.nmos) {
            warn!(
                "[nmos] settings other than the mapping, default_destination, \
                 ready_to_air_stages and on_stop changed: they take effect after a restart"
            );
        }
        let settings = bridge_settings(config);
        self.publish_presets(&settings.mapping);
        let _ = self.settings.send(Arc::new(settings));
        info!("NMOS mapping reloaded");
    }

    /// Where discovery stands (registry in use, last error).
    pub fn discovery(&self) -> &DiscoveryHandle {
        &self.discovery
    }

    /// The IS-10 token manager, when tokens are used.
    pub fn tokens(&self) -> Option<&TokenManager> {
        self.tokens.as_ref()
    }

    /// Puts the configured presets in the object catalogue; presets no longer configured go.
    fn publish_presets(&mut self, mapping: &Mapping) {
        let objects = mapping.preset_objects();
        let now: BTreeSet<String> = objects.iter().map(|o| o.id.clone()).collect();
        for gone in self.presets.difference(&now) {
            if let Err(e) = self.objects.remove(gone) {
                warn!(preset = %gone, "cannot remove a preset object: {e}");
            }
        }
        for obj in objects {
            let id = obj.id.clone();
            if let Err(e) = self.objects.upsert(obj) {
                warn!(preset = %id, "cannot publish a preset object: {e}");
            }
        }
        self.presets = now;
    }
}

/// Whether two `[nmos]` tables agree on everything [`NmosService::reload`] cannot apply.
fn same_start_settings(a: &NmosConfig, b: &NmosConfig) -> bool {
    let reloadable = |n: &NmosConfig| NmosConfig {
        default_destination: None,
        ready_to_air_stages: false,
        on_stop: config::OnStop::None,
        ..n.clone()
    };
    reloadable(a) == reloadable(b)
}

fn http_settings(nmos: &NmosConfig) -> HttpSettings {
    HttpSettings {
        timeout: nmos.http_timeout,
        connect_timeout: nmos.http_timeout.min(std::time::Duration::from_secs(2)),
        allow_http: nmos.allow_http,
        ca_bundle: nmos.ca_bundle.clone(),
        ..HttpSettings::default()
    }
}

fn discovery_settings(nmos: &NmosConfig) -> DiscoverySettings {
    let registry = match &nmos.registry {
        config::Registry::Url(url) => RegistrySource::Url(url.clone()),
        config::Registry::Auto => RegistrySource::Auto { fallback: None },
        config::Registry::None if nmos.nodes.is_empty() => RegistrySource::None,
        config::Registry::None => RegistrySource::Nodes(nmos.nodes.clone()),
    };
    // BCP-003-01: with plain HTTP refused only `api_proto=https` registries are taken; with
    // plain HTTP allowed only `http` ones (the common case of such sites).
    let proto = if nmos.allow_http {
        ApiProto::Http
    } else {
        ApiProto::Https
    };
    let dnssd_policy = RankPolicy {
        proto,
        // IS-04: keep registries whose api_auth matches whether IS-10 tokens are used.
        auth: Some(nmos.auth.is_some()),
        highest_pri: *nmos.dnssd_priorities.start(),
        lowest_pri: *nmos.dnssd_priorities.end(),
    };
    DiscoverySettings {
        registry,
        dnssd_policy,
        dnssd_mode: nmos.dnssd_mode,
        dnssd_domain: nmos.dnssd_domain.clone(),
        dnssd_lookup_timeout: nmos.http_timeout,
        ca_bundle: nmos.ca_bundle.clone(),
        poll_interval: nmos.poll_interval,
        http_timeout: nmos.http_timeout,
        ..DiscoverySettings::default()
    }
}

/// The bridge's settings from a configuration.
pub fn bridge_settings(config: &Config) -> BridgeSettings {
    let nmos = &config.nmos;
    BridgeSettings {
        mapping: Mapping::from_config(config),
        takes: TakeSettings {
            on_stop: nmos.on_stop,
            ..TakeSettings::default()
        },
        ready_to_air_stages: nmos.ready_to_air_stages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nmos(text: &str) -> NmosConfig {
        match Config::from_toml_str(text, "t.toml") {
            Ok(c) => c.nmos,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    #[test]
    fn only_settings_reload_cannot_apply_call_for_a_restart() {
        let base = nmos("");
        let mapping_only = nmos(
            "[nmos]\ndefault_destination = \"PGM\"\nready_to_air_stages = true\non_stop = \"disconnect\"\n[[destination]]\nname = \"PGM\"\nreceivers = [\"MIX-IN1\"]\n",
        );
        assert!(same_start_settings(&base, &mapping_only));
        for changed in [
            "[nmos]\nregistry = \"http://127.0.0.1:8010/x-nmos/query/\"\n",
            "[nmos]\nhttp_timeout_ms = 750\n",
            "[nmos]\non_423 = \"clear\"\n",
            "[nmos]\ntake_all_or_nothing = false\n",
        ] {
            assert!(!same_start_settings(&base, &nmos(changed)), "{changed}");
        }
    }

    #[test]
    fn dnssd_settings_are_mapped() {
        let d = discovery_settings(&nmos(""));
        assert_eq!(d.registry, RegistrySource::Auto { fallback: None });
        assert_eq!(d.dnssd_mode, super::super::dnssd::DnsSdMode::Auto);
        assert_eq!(d.dnssd_domain, None);
        assert_eq!(
            d.dnssd_policy,
            RankPolicy {
                proto: ApiProto::Http,
                auth: Some(false),
                highest_pri: 0,
                lowest_pri: 99,
            }
        );
        let d = discovery_settings(&nmos(
            "[nmos]\nallow_http = false\ndnssd_mode = \"unicast\"\ndnssd_domain = \"studio.example\"\ndnssd_priorities = [1, 50]\nhttp_timeout_ms = 750\n[nmos.auth]\ntoken_url = \"https://auth.studio.example/token\"\nclient_id = \"gw\"\nclient_secret_env = \"S\"\n",
        ));
        assert_eq!(d.dnssd_mode, super::super::dnssd::DnsSdMode::Unicast);
        assert_eq!(d.dnssd_domain.as_deref(), Some("studio.example"));
        assert_eq!(
            d.dnssd_lookup_timeout,
            std::time::Duration::from_millis(750)
        );
        assert_eq!(
            d.dnssd_policy,
            RankPolicy {
                proto: ApiProto::Https,
                auth: Some(true),
                highest_pri: 1,
                lowest_pri: 50,
            }
        );
    }
}
