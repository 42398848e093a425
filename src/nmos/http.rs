//! The one HTTP client every NMOS call (IS-05, IS-08, IS-10 token requests) goes through.
//!
//! [`NmosHttp`] wraps a single pooled, keep-alive `reqwest` client (cloning it is cheap: the
//! pool is shared), so a take reuses warm connections instead of opening new ones:
//!
//! - every request carries `Connection: keep-alive`; sockets use `TCP_NODELAY`;
//! - a per-call timeout and a connect timeout ([`HttpSettings`]);
//! - `http://` URLs are refused before anything is sent unless [`HttpSettings::allow_http`]
//!   (BCP-003-01: a secure deployment talks HTTPS only);
//! - TLS is rustls, TLS 1.2 minimum; with a CA bundle ([`HttpSettings::ca_bundle`]) the server
//!   chains are verified against that bundle's roots **only** (the studio PKI), otherwise
//!   against the built-in web roots;
//! - requests to controls with `authorization: true` get `Authorization: Bearer <token>` from
//!   the [`TokenSource`] (never fetched inline: the source answers from its cache);
//! - GET and DELETE are retried with exponential back-off on transport failures, timeouts and
//!   502/503/504; PATCH and POST are never repeated (a repeated activation is not harmless);
//! - any status ≥ 400 becomes [`HttpError::Status`] naming method, URL and status, with the
//!   NMOS error body (`{code, error, debug}`) parsed into the message, or a body excerpt.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

/// Longest body excerpt kept in an error.
const BODY_EXCERPT_CHARS: usize = 200;

/// Settings of the shared NMOS HTTP client (the integrator maps `[nmos]` configuration keys
/// `http_timeout_ms`, `allow_http` and `ca_bundle` onto it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Time allowed for one request, from sending to the end of the response body.
    pub timeout: Duration,
    /// Time allowed to establish a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Accept `http://` URLs. `false` in a secure (BCP-003-01) deployment.
    pub allow_http: bool,
    /// PEM file with the CA certificates to trust (the studio PKI); `None` = built-in roots.
    pub ca_bundle: Option<PathBuf>,
    /// Extra attempts for GET and DELETE after a transport failure, timeout or 502/503/504.
    pub retries: u32,
    /// Wait before the first retry; doubled on each further retry.
    pub retry_backoff: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_millis(2000),
            connect_timeout: Duration::from_millis(1000),
            allow_http: false,
            ca_bundle: None,
            retries: 2,
            retry_backoff: Duration::from_millis(50),
        }
    }
}

/// Where bearer tokens come from (IS-10). Implementations answer from a cache, immediately.
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// The current access token, or `None` with the reason none is available.
    fn bearer(&self) -> Result<Arc<str>, String>;
    /// Called after a resource server answered 401: a hint to renew soon (must not block).
    fn on_unauthorized(&self) {}
}

/// The JSON error body every NMOS API returns with a status ≥ 400.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NmosErrorBody {
    /// The status code repeated.
    #[serde(default)]
    pub code: Option<u16>,
    /// Text for a human (what the operator sees).
    #[serde(default)]
    pub error: Option<String>,
    /// Extra detail for a programmer.
    #[serde(default)]
    pub debug: Option<Value>,
}

/// A failed NMOS HTTP call; every variant names method and URL.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Not sent: bad URL, `http://` refused, or no token for a control that needs one.
    #[error("{method} {url}: refused: {reason}")]
    Refused {
        method: Method,
        url: String,
        reason: String,
    },
    /// No complete answer within the per-call timeout.
    #[error("{method} {url}: no answer within {timeout:?}")]
    Timeout {
        method: Method,
        url: String,
        timeout: Duration,
    },
    /// Connection refused or reset, TLS handshake failure, ...
    #[error("{method} {url}: {source}")]
    Transport {
        method: Method,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a status ≥ 400 (or an unexpected one).
    #[error("{method} {url}: HTTP {status}: {reason}")]
    Status {
        method: Method,
        url: String,
        status: u16,
        /// The device's `error` text (plus `debug` when given), or an excerpt of the body.
        reason: String,
        /// The parsed NMOS error body, when the body was one.
        body: Option<Box<NmosErrorBody>>,
    },
    /// One failure reported for several results (the receivers of a failed bulk request).
    #[error("{method} {url}: {message}")]
    Shared {
        method: Method,
        url: String,
        message: String,
    },
    /// A 2xx answer whose body is not what was expected.
    #[error("{method} {url}: unexpected body ({detail}): {excerpt}")]
    Decode {
        method: Method,
        url: String,
        detail: String,
        excerpt: String,
    },
}

impl HttpError {
    /// The URL the error concerns.
    pub fn url(&self) -> &str {
        match self {
            HttpError::Refused { url, .. }
            | HttpError::Timeout { url, .. }
            | HttpError::Transport { url, .. }
            | HttpError::Status { url, .. }
            | HttpError::Shared { url, .. }
            | HttpError::Decode { url, .. } => url,
        }
    }

    /// The HTTP status, when the server answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The reason to show an operator: the device's `error` text for a status error, the
    /// whole message otherwise.
    pub fn reason(&self) -> String {
        match self {
            HttpError::Status { reason, .. } => reason.clone(),
            other => other.to_string(),
        }
    }

    /// Builds a status error from a status and a response body (also used for the per-item
    /// results of an IS-05 bulk POST).
    pub fn from_status(method: Method, url: &str, status: u16, body: &str) -> HttpError {
        let parsed = serde_json::from_str::<NmosErrorBody>(body)
            .ok()
            .filter(|b| b.error.is_some() || b.code.is_some());
        let reason = match &parsed {
            Some(b) => error_text(b.error.as_deref(), b.debug.as_ref()),
            None if body.trim().is_empty() => "(empty body)".to_owned(),
            None => excerpt(body),
        };
        HttpError::Status {
            method,
            url: url.to_owned(),
            status,
            reason,
            body: parsed.map(Box::new),
        }
    }

    /// Whether repeating the same safe request may succeed.
    fn is_transient(&self) -> bool {
        match self {
            HttpError::Timeout { .. } | HttpError::Transport { .. } => true,
            HttpError::Refused { .. }
            | HttpError::Status { .. }
            | HttpError::Shared { .. }
            | HttpError::Decode { .. } => false,
        }
    }
}

/// `error` with `debug` appended when it says something.
pub(crate) fn error_text(error: Option<&str>, debug: Option<&Value>) -> String {
    let error = error.unwrap_or("(no error text)");
    match debug {
        Some(Value::String(d)) if !d.is_empty() => format!("{error} (debug: {})", excerpt(d)),
        Some(Value::Null) | None => error.to_owned(),
        Some(other) => format!("{error} (debug: {})", excerpt(&other.to_string())),
    }
}

/// The first [`BODY_EXCERPT_CHARS`] characters of a body, whitespace collapsed.
pub(crate) fn excerpt(body: &str) -> String {
    let collapsed: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = collapsed.chars().take(BODY_EXCERPT_CHARS).collect();
    if collapsed.chars().count() > BODY_EXCERPT_CHARS {
        out.push('…');
    }
    out
}

/// An API base as a map key: the same API with or without its trailing `/`.
pub(crate) fn api_key(api: &str) -> String {
    api.trim_end_matches('/').to_owned()
}

/// Joins an API base (with or without a trailing `/`) and a relative path with exactly one
/// slash between them. `path` must not start with `/`; pass `""` for the base itself (which
/// then ends with `/`).
pub fn join_url(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    let mut url = String::with_capacity(base.len() + 1 + path.len());
    url.push_str(base);
    url.push('/');
    url.push_str(path);
    url
}

/// A response that arrived (any status).
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Bytes,
}

impl HttpReply {
    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
    ) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Decode {
            method,
            url: url.to_owned(),
            detail: e.to_string(),
            excerpt: excerpt(&self.text()),
        })
    }
}

/// A failure to build the client from its settings.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    /// The CA bundle file could not be read.
    #[error("cannot read CA bundle {}: {source}", path.display())]
    CaBundleRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The CA bundle holds no usable PEM certificate.
    #[error("CA bundle {} has no usable PEM certificate{}", path.display(), detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    CaBundleEmpty {
        path: PathBuf,
        detail: Option<String>,
    },
    /// `reqwest` refused the configuration.
    #[error("cannot build the NMOS HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// The shared NMOS HTTP client. Clone it freely: clones share the connection pool.
#[derive(Clone)]
pub struct NmosHttp {
    client: reqwest::Client,
    settings: Arc<HttpSettings>,
    tokens: Option<Arc<dyn TokenSource>>,
}

impl fmt::Debug for NmosHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NmosHttp")
            .field("settings", &self.settings)
            .field("tokens", &self.tokens.is_some())
            .finish()
    }
}

impl NmosHttp {
    /// Builds the client (reads the CA bundle once).
    pub fn new(settings: HttpSettings) -> Result<NmosHttp, HttpSetupError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
        let builder = reqwest::Client::builder()
            .use_rustls_tls()
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .default_headers(headers)
            .user_agent(concat!("mos-gateway/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true)
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .https_only(!settings.allow_http);
        let client = trusting(builder, settings.ca_bundle.as_deref())?
            .build()
            .map_err(HttpSetupError::Build)?;
        Ok(NmosHttp {
            client,
            settings: Arc::new(settings),
            tokens: None,
        })
    }

    /// The same client (same pool) that adds bearer tokens from `tokens` where required.
    pub fn with_tokens(&self, tokens: Arc<dyn TokenSource>) -> NmosHttp {
        NmosHttp {
            tokens: Some(tokens),
            ..self.clone()
        }
    }

    /// The settings the client was built with.
    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// GET returning the reply whatever its status (retried when transient).
    pub async fn get_reply(&self, url: &str, auth: bool) -> Result<HttpReply, HttpError> {
        self.with_retries(Method::GET, url, auth).await
    }

    /// GET, status checked (2xx), body parsed as JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        auth: bool,
    ) -> Result<T, HttpError> {
        let reply = checked(Method::GET, url, self.get_reply(url, auth).await?)?;
        reply.json(Method::GET, url)
    }

    /// DELETE, returning the reply whatever its status (retried when transient).
    pub async fn delete(&self, url: &str, auth: bool) -> Result<HttpReply, HttpError> {
        self.with_retries(Method::DELETE, url, auth).await
    }

    /// PATCH a JSON body (already serialised), returning the reply whatever its status.
    /// Never retried.
    pub async fn patch_json(
        &self,
        url: &str,
        body: Bytes,
        auth: bool,
    ) -> Result<HttpReply, HttpError> {
        self.send(Method::PATCH, url, Some(body), auth).await
    }

    /// POST a JSON body (already serialised), returning the reply whatever its status.
    /// Never retried.
    pub async fn post_json(
        &self,
        url: &str,
        body: Bytes,
        auth: bool,
    ) -> Result<HttpReply, HttpError> {
        self.send(Method::POST, url, Some(body), auth).await
    }

    /// POST an `application/x-www-form-urlencoded` body with HTTP Basic authentication (the
    /// IS-10 token request). Never retried, never carries a bearer token.
    pub async fn post_form_basic(
        &self,
        url: &str,
        form: &[(&str, &str)],
        user: &str,
        password: &str,
    ) -> Result<HttpReply, HttpError> {
        let method = Method::POST;
        let parsed = self.check_url(&method, url)?;
        let request = self
            .client
            .post(parsed)
            .timeout(self.settings.timeout)
            .basic_auth(user, Some(password))
            .form(form);
        self.finish(method, url, request).await
    }

    /// GET or DELETE with retries on transient failures.
    async fn with_retries(
        &self,
        method: Method,
        url: &str,
        auth: bool,
    ) -> Result<HttpReply, HttpError> {
        let mut attempt = 0u32;
        loop {
            let result = self.send(method.clone(), url, None, auth).await;
            let transient = match &result {
                Ok(reply) => matches!(reply.status, 502..=504),
                Err(e) => e.is_transient(),
            };
            if !transient || attempt >= self.settings.retries {
                return result;
            }
            let wait = self.settings.retry_backoff * 2u32.saturating_pow(attempt);
            match &result {
                Ok(reply) => {
                    tracing::debug!(%method, url, attempt, status = reply.status, ?wait, "NMOS request failed, retrying")
                }
                Err(e) => {
                    tracing::debug!(%method, url, attempt, error = %e, ?wait, "NMOS request failed, retrying")
                }
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// One request.
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
        auth: bool,
    ) -> Result<HttpReply, HttpError> {
        let parsed = self.check_url(&method, url)?;
        let mut request = self
            .client
            .request(method.clone(), parsed)
            .timeout(self.settings.timeout);
        if auth {
            request = request.header(AUTHORIZATION, self.bearer(&method, url)?);
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body);
        }
        let reply = self.finish(method, url, request).await?;
        if reply.status == StatusCode::UNAUTHORIZED.as_u16()
            && let Some(tokens) = &self.tokens
        {
            tokens.on_unauthorized();
        }
        Ok(reply)
    }

    /// Sends a built request and reads the whole reply.
    async fn finish(
        &self,
        method: Method,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<HttpReply, HttpError> {
        let transport = |source: reqwest::Error| {
            if source.is_timeout() {
                HttpError::Timeout {
                    method: method.clone(),
                    url: url.to_owned(),
                    timeout: self.settings.timeout,
                }
            } else {
                HttpError::Transport {
                    method: method.clone(),
                    url: url.to_owned(),
                    source,
                }
            }
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(transport)?;
        Ok(HttpReply {
            status,
            content_type,
            body,
        })
    }

    /// Parses the URL and applies the scheme policy.
    fn check_url(&self, method: &Method, url: &str) -> Result<Url, HttpError> {
        let refused = |reason: String| HttpError::Refused {
            method: method.clone(),
            url: url.to_owned(),
            reason,
        };
        let parsed = Url::parse(url).map_err(|e| refused(format!("invalid URL: {e}")))?;
        match parsed.scheme() {
            "https" => Ok(parsed),
            "http" if self.settings.allow_http => Ok(parsed),
            "http" => Err(refused(
                "plain http:// is not allowed (allow_http = false); use https://".to_owned(),
            )),
            other => Err(refused(format!("unsupported scheme {other:?}"))),
        }
    }

    /// The `Authorization` header value.
    fn bearer(&self, method: &Method, url: &str) -> Result<HeaderValue, HttpError> {
        let refused = |reason: String| HttpError::Refused {
            method: method.clone(),
            url: url.to_owned(),
            reason,
        };
        let Some(tokens) = &self.tokens else {
            return Err(refused(
                "the control requires authorization but no IS-10 token source is configured"
                    .to_owned(),
            ));
        };
        let token = tokens
            .bearer()
            .map_err(|why| refused(format!("no IS-10 access token available: {why}")))?;
        let mut value = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| refused("the access token is not a valid header value".to_owned()))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// Turns a reply with a status ≥ 300 into [`HttpError::Status`].
pub fn checked(method: Method, url: &str, reply: HttpReply) -> Result<HttpReply, HttpError> {
    if (200..300).contains(&reply.status) {
        Ok(reply)
    } else {
        Err(HttpError::from_status(
            method,
            url,
            reply.status,
            &reply.text(),
        ))
    }
}

/// `builder` trusting only the CA bundle at `ca_bundle` when one is given (else the built-in
/// roots): every NMOS HTTP client (shared client, Query API, Node API poller) is built so.
pub(crate) fn trusting(
    mut builder: reqwest::ClientBuilder,
    ca_bundle: Option<&std::path::Path>,
) -> Result<reqwest::ClientBuilder, HttpSetupError> {
    if let Some(path) = ca_bundle {
        for cert in load_ca_bundle(path)? {
            builder = builder.add_root_certificate(cert);
        }
        builder = builder.tls_built_in_root_certs(false);
    }
    Ok(builder)
}

/// Reads the PEM certificates of a CA bundle.
pub fn load_ca_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, HttpSetupError> {
    let pem = std::fs::read(path).map_err(|source| HttpSetupError::CaBundleRead {
        path: path.to_path_buf(),
        source,
    })?;
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| HttpSetupError::CaBundleEmpty {
            path: path.to_path_buf(),
            detail: Some(e.to_string()),
        })?;
    if certs.is_empty() {
        return Err(HttpSetupError::CaBundleEmpty {
            path: path.to_path_buf(),
            detail: None,
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_url_puts_exactly_one_slash() {
        assert_eq!(
            join_url("http://h/x/v1.1/", "single"),
            "http://h/x/v1.1/single"
        );
        assert_eq!(
            join_url("http://h/x/v1.1", "single"),
            "http://h/x/v1.1/single"
        );
        assert_eq!(join_url("http://h/x/v1.1//", ""), "http://h/x/v1.1/");
    }

    #[test]
    fn status_error_uses_the_nmos_error_body_or_an_excerpt() {
        let e = HttpError::from_status(
            Method::PATCH,
            "http://h/s",
            400,
            r#"{"code":400,"error":"bad leg","debug":null}"#,
        );
        assert_eq!(e.reason(), "bad leg");
        assert_eq!(e.to_string(), "PATCH http://h/s: HTTP 400: bad leg");
        let e = HttpError::from_status(
            Method::GET,
            "http://h/s",
            502,
            "<html>  proxy\n error</html>",
        );
        assert_eq!(e.reason(), "<html> proxy error</html>");
        let e = HttpError::from_status(Method::GET, "http://h/s", 500, "");
        assert_eq!(e.reason(), "(empty body)");
    }
}
