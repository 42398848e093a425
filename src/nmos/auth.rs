//! IS-10 bearer tokens for the gateway, obtained with the OAuth 2.0 client-credentials grant
//! (reference `nmos.md` §9).
//!
//! [`TokenManager::spawn`] starts a background refresher that asks the token endpoint for a
//! token at once and then again after [`AuthSettings::refresh_fraction`] of each token's
//! lifetime (and at least [`AuthSettings::min_margin`] before it expires, when the lifetime
//! allows), retrying with exponential back-off after a failure while the old token is still
//! served. A take therefore never waits for a token: [`TokenManager::current`] (and the
//! [`TokenSource`] handed to [`NmosHttp::with_tokens`]) answer from the cache. A `401` from a
//! device wakes the refresher early; the request that got it is not repeated.
//!
//! The client secret comes from an environment variable or a file ([`ClientSecret`]); its
//! `Debug` and `Display` are redacted and it is never logged.
//!
//! The request is `POST token_url` with `Content-Type: application/x-www-form-urlencoded`,
//! `grant_type=client_credentials&scope=<scope>`, client authentication `client_secret_basic`
//! (HTTP Basic with client id and secret). The answer `{access_token, token_type, expires_in}`
//! must have `token_type` `Bearer` (compared case-insensitively).

use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::http::{HttpError, NmosHttp, TokenSource, checked};

/// A client secret. `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct ClientSecret(Arc<str>);

impl ClientSecret {
    /// A secret given directly (tests, or already read by the caller).
    pub fn new(secret: impl Into<String>) -> ClientSecret {
        ClientSecret(Arc::from(secret.into()))
    }

    /// Reads the secret from environment variable `var`.
    pub fn from_env(var: &str) -> Result<ClientSecret, AuthError> {
        match std::env::var(var) {
            Ok(s) if !s.is_empty() => Ok(ClientSecret::new(s)),
            _ => Err(AuthError::Secret(format!(
                "environment variable {var} is not set or empty"
            ))),
        }
    }

    /// Reads the secret from a file (surrounding whitespace, e.g. the final newline, removed).
    pub fn from_file(path: &Path) -> Result<ClientSecret, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            AuthError::Secret(format!("cannot read secret file {}: {e}", path.display()))
        })?;
        let secret = text.trim();
        if secret.is_empty() {
            return Err(AuthError::Secret(format!(
                "secret file {} is empty",
                path.display()
            )));
        }
        Ok(ClientSecret::new(secret))
    }

    /// The secret itself (only for the token request).
    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

impl fmt::Display for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the secret is configured (`client_secret_env` or `client_secret_file`): the
/// configuration's own type.
pub use crate::config::nmos::SecretSource as SecretLocation;

impl SecretLocation {
    /// Reads the secret.
    pub fn read(&self) -> Result<ClientSecret, AuthError> {
        match self {
            SecretLocation::Env(var) => ClientSecret::from_env(var),
            SecretLocation::File(path) => ClientSecret::from_file(path),
        }
    }
}

/// IS-10 client settings (`[nmos.auth]`: `token_url`, `client_id`, the secret, `scope`) plus
/// the refresh policy.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The authorization server's token endpoint.
    pub token_url: String,
    /// The registered client id.
    pub client_id: String,
    /// The client secret.
    pub secret: ClientSecret,
    /// Space-separated scopes, e.g. `"query connection channelmapping"`.
    pub scope: String,
    /// Part of a token's lifetime after which a new one is requested (0.5–0.8 sensible).
    pub refresh_fraction: f64,
    /// Request a new token at least this long before expiry, when the lifetime allows.
    pub min_margin: Duration,
    /// First wait after a failed token request; doubled up to `retry_max`.
    pub retry_min: Duration,
    /// Longest wait between failed token requests.
    pub retry_max: Duration,
    /// Lifetime assumed when the answer has no `expires_in`.
    pub default_lifetime: Duration,
}

impl AuthSettings {
    /// Settings with the default refresh policy (60 % of lifetime, ≥ 15 s margin, retries
    /// from 1 s to 30 s, 60 s assumed lifetime).
    pub fn new(token_url: &str, client_id: &str, secret: ClientSecret, scope: &str) -> Self {
        AuthSettings {
            token_url: token_url.to_owned(),
            client_id: client_id.to_owned(),
            secret,
            scope: scope.to_owned(),
            refresh_fraction: 0.6,
            min_margin: Duration::from_secs(15),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            default_lifetime: Duration::from_secs(60),
        }
    }

    /// When to request the next token, for a token living `lifetime`: at
    /// `refresh_fraction × lifetime`, earlier if that leaves less than `min_margin`, but never
    /// before half the lifetime (nor before 50 ms).
    pub fn refresh_delay(&self, lifetime: Duration) -> Duration {
        let fraction = self.refresh_fraction.clamp(0.1, 0.95);
        let at_fraction = lifetime.mul_f64(fraction);
        let with_margin = lifetime.saturating_sub(self.min_margin);
        at_fraction
            .min(with_margin)
            .max(lifetime / 2)
            .max(Duration::from_millis(50))
    }
}

/// A failure to obtain a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The secret could not be read.
    #[error("IS-10 client secret: {0}")]
    Secret(String),
    /// The token request failed (transport or status).
    #[error("IS-10 token request: {0}")]
    Http(#[from] HttpError),
    /// The answer is not a usable bearer token.
    #[error("IS-10 token request: POST {url}: {detail}")]
    BadResponse { url: String, detail: String },
}

/// A token as received.
#[derive(Clone)]
pub struct AccessToken {
    /// The token text, sent as received.
    pub access_token: Arc<str>,
    /// Its lifetime (`expires_in`).
    pub lifetime: Duration,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("access_token", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    #[serde(default)]
    expires_in: Option<serde_json::Number>,
}

/// One client-credentials token request.
pub async fn request_token(
    http: &NmosHttp,
    settings: &AuthSettings,
) -> Result<AccessToken, AuthError> {
    let url = settings.token_url.as_str();
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", settings.scope.as_str()),
    ];
    let reply = http
        .post_form_basic(url, &form, &settings.client_id, settings.secret.expose())
        .await?;
    let reply = checked(reqwest::Method::POST, url, reply)?;
    let bad = |detail: String| AuthError::BadResponse {
        url: url.to_owned(),
        detail,
    };
    let parsed: TokenResponse = serde_json::from_slice(&reply.body)
        .map_err(|e| bad(format!("not a token response: {e}")))?;
    if !parsed.token_type.eq_ignore_ascii_case("bearer") {
        return Err(bad(format!(
            "token_type {:?} is not Bearer",
            parsed.token_type
        )));
    }
    if parsed.access_token.is_empty() {
        return Err(bad("empty access_token".to_owned()));
    }
    let lifetime = match parsed.expires_in.and_then(|n| n.as_f64()) {
        Some(secs) if secs.is_finite() && secs > 0.0 => Duration::from_secs_f64(secs.min(1e9)),
        Some(_) => return Err(bad("expires_in is not positive".to_owned())),
        None => settings.default_lifetime,
    };
    Ok(AccessToken {
        access_token: Arc::from(parsed.access_token),
        lifetime,
    })
}

/// What the refresher shares with the token users.
#[derive(Default)]
struct Cache {
    token: Option<(Arc<str>, Instant)>,
    last_error: Option<String>,
}

struct Shared {
    cache: RwLock<Cache>,
    nudge: Notify,
    /// Counts successful fetches (watchable, for `wait_ready` and tests).
    fetched: watch::Sender<u64>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IS-10 token cache")
    }
}

impl TokenSource for Shared {
    fn bearer(&self) -> Result<Arc<str>, String> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        match &cache.token {
            Some((token, expires)) if Instant::now() < *expires => Ok(token.clone()),
            Some(_) => Err(format!(
                "the access token expired{}",
                cache
                    .last_error
                    .as_deref()
                    .map(|e| format!(" (last refresh: {e})"))
                    .unwrap_or_default()
            )),
            None => Err(cache
                .last_error
                .clone()
                .unwrap_or_else(|| "no token obtained yet".to_owned())),
        }
    }

    fn on_unauthorized(&self) {
        self.nudge.notify_one();
    }
}

/// Keeps a fresh IS-10 token in the background; dropping it stops the refresher.
pub struct TokenManager {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("has_token", &self.current().is_some())
            .finish()
    }
}

impl Drop for TokenManager {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenManager {
    /// Starts the refresher (on the current Tokio runtime); the first request goes out at once.
    /// `http` should be the shared client without a token source.
    pub fn spawn(http: NmosHttp, settings: AuthSettings) -> TokenManager {
        let (fetched, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            cache: RwLock::new(Cache::default()),
            nudge: Notify::new(),
            fetched,
        });
        let task = tokio::spawn(refresher(http, settings, shared.clone()));
        TokenManager { shared, task }
    }

    /// The cached token if it has not expired, immediately.
    pub fn current(&self) -> Option<Arc<str>> {
        self.shared.bearer().ok()
    }

    /// Why the last token request failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .last_error
            .clone()
    }

    /// Waits until at least `count` tokens have been obtained, or `timeout` passes (then
    /// `Err` with the last error).
    pub async fn wait_fetched(&self, count: u64, timeout: Duration) -> Result<(), String> {
        let mut rx = self.shared.fetched.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|n| *n >= count)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(self
                .last_error()
                .unwrap_or_else(|| format!("no IS-10 token within {timeout:?}"))),
        }
    }

    /// The token source to give [`NmosHttp::with_tokens`].
    pub fn source(&self) -> Arc<dyn TokenSource> {
        self.shared.clone()
    }
}

/// The refresher task.
async fn refresher(http: NmosHttp, settings: AuthSettings, shared: Arc<Shared>) {
    let mut backoff = settings.retry_min;
    loop {
        let wait = match request_token(&http, &settings).await {
            Ok(token) => {
                let expires = Instant::now() + token.lifetime;
                {
                    let mut cache = shared.cache.write().unwrap_or_else(|p| p.into_inner());
                    cache.token = Some((token.access_token, expires));
                    cache.last_error = None;
                }
                shared.fetched.send_modify(|n| *n += 1);
                backoff = settings.retry_min;
                let delay = settings.refresh_delay(token.lifetime);
                tracing::debug!(url = %settings.token_url, lifetime = ?token.lifetime, next_in = ?delay, "IS-10 token obtained");
                delay
            }
            Err(e) => {
                tracing::warn!(url = %settings.token_url, error = %e, retry_in = ?backoff, "IS-10 token request failed");
                shared
                    .cache
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .last_error = Some(e.to_string());
                let wait = backoff;
                backoff = (backoff * 2).min(settings.retry_max);
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.nudge.notified() => {
                tracing::info!(url = %settings.token_url, "a device answered 401: renewing the IS-10 token early");
            }
        }
    }
}

/// A fixed token (tests, or a token provisioned by other means).
#[derive(Clone)]
pub struct StaticToken(pub Arc<str>);

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

impl TokenSource for StaticToken {
    fn bearer(&self) -> Result<Arc<str>, String> {
        Ok(self.0.clone())
    }
}
