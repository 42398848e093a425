//! The answer a studio handler gives, turned into an HTTP response by the dispatcher.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A handler's answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: ReplyBody,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub(crate) enum ReplyBody {
    Json(Value),
    Text { text: String, content_type: String },
    Empty,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: ReplyBody::Json(body),
            headers: Vec::new(),
        }
    }

    /// 200 with JSON.
    pub fn ok(body: Value) -> Reply {
        Reply::json(200, body)
    }

    /// An NMOS error `{code, error, debug}`.
    pub fn error(status: u16, error: impl Into<String>, debug: Option<String>) -> Reply {
        Reply::json(
            status,
            json!({"code": status, "error": error.into(), "debug": debug}),
        )
    }

    /// 404 for an unknown path.
    pub fn not_found(what: &str) -> Reply {
        Reply::error(404, format!("not found: {what}"), None)
    }

    /// 405 for a known path with the wrong method.
    pub fn method_not_allowed(method: &str, allowed: &str) -> Reply {
        Reply::error(
            405,
            format!("method {method} not allowed here (allowed: {allowed})"),
            None,
        )
        .header("Allow", allowed)
    }

    /// 400 with every problem found.
    pub fn bad_request(error: impl Into<String>, problems: &[String]) -> Reply {
        let debug = (!problems.is_empty()).then(|| problems.join("; "));
        Reply::error(400, error, debug)
    }

    /// A body-less answer.
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: ReplyBody::Empty,
            headers: Vec::new(),
        }
    }

    /// A text answer.
    pub fn text(status: u16, text: String, content_type: &str) -> Reply {
        Reply {
            status,
            body: ReplyBody::Text {
                text,
                content_type: content_type.to_owned(),
            },
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// A JSON array of child names for a tree level.
    pub fn children(names: &[&str]) -> Reply {
        Reply::ok(Value::Array(
            names
                .iter()
                .map(|n| Value::String((*n).to_owned()))
                .collect(),
        ))
    }

    /// The HTTP response.
    pub fn into_http(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = match self.body {
            ReplyBody::Json(v) => (status, axum::Json(v)).into_response(),
            ReplyBody::Text { text, content_type } => {
                let mut r = (status, text).into_response();
                if let Ok(v) = HeaderValue::from_str(&content_type) {
                    r.headers_mut().insert(axum::http::header::CONTENT_TYPE, v);
                }
                r
            }
            ReplyBody::Empty => status.into_response(),
        };
        for (k, v) in self.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                resp.headers_mut().append(k, v);
            }
        }
        resp
    }
}
