//! Fault injection and the request log.

use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

/// Which requests a fault applies to. Every field set must match; the default matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultTarget {
    /// Only this HTTP method (e.g. `"PATCH"`), any when `None`.
    pub method: Option<String>,
    /// Only paths containing this text, any when `None`.
    pub path_contains: Option<String>,
}

impl FaultTarget {
    /// Every request.
    pub fn any() -> FaultTarget {
        FaultTarget::default()
    }

    /// Requests to one device's APIs (`/dev/{id}/…`).
    pub fn device(id: Uuid) -> FaultTarget {
        FaultTarget {
            path_contains: Some(format!("/dev/{id}/")),
            ..Default::default()
        }
    }

    /// Requests whose path names this resource (a sender, receiver, …).
    pub fn resource(id: Uuid) -> FaultTarget {
        FaultTarget {
            path_contains: Some(id.to_string()),
            ..Default::default()
        }
    }

    /// Requests to the Query API.
    pub fn query() -> FaultTarget {
        FaultTarget {
            path_contains: Some("/x-nmos/query/".to_owned()),
            ..Default::default()
        }
    }

    /// Requests whose path contains `text`.
    pub fn path(text: &str) -> FaultTarget {
        FaultTarget {
            path_contains: Some(text.to_owned()),
            ..Default::default()
        }
    }

    /// Restricts the target to one method.
    pub fn method(mut self, method: &str) -> FaultTarget {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Whether a request matches.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }
}

/// What happens to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with an NMOS error body instead of handling the request; `sticky`
    /// keeps the fault, otherwise it fires once.
    Status {
        /// HTTP status, e.g. 400, 423, 500.
        code: u16,
        /// Keep firing until cleared.
        sticky: bool,
    },
    /// Wait this long before handling the request normally (to make a client time out); always
    /// sticky.
    Delay(Duration),
}

impl Fault {
    /// A status answered once.
    pub fn once(code: u16) -> Fault {
        Fault::Status {
            code,
            sticky: false,
        }
    }

    /// A status answered until the fault is cleared.
    pub fn sticky(code: u16) -> Fault {
        Fault::Status { code, sticky: true }
    }
}

/// What the studio does with a request after consulting the faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FaultAction {
    None,
    Status(u16),
    Delay(Duration),
}

/// The installed faults, first match wins.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    list: Vec<(FaultTarget, Fault)>,
}

impl Faults {
    pub(crate) fn set(&mut self, target: FaultTarget, fault: Fault) {
        self.list.push((target, fault));
    }

    pub(crate) fn clear(&mut self) {
        self.list.clear();
    }

    /// The action for a request, consuming a one-shot fault.
    pub(crate) fn take(&mut self, method: &str, path: &str) -> FaultAction {
        let Some(pos) = self.list.iter().position(|(t, _)| t.matches(method, path)) else {
            return FaultAction::None;
        };
        match self.list[pos].1.clone() {
            Fault::Delay(d) => FaultAction::Delay(d),
            Fault::Status { code, sticky } => {
                if !sticky {
                    self.list.remove(pos);
                }
                FaultAction::Status(code)
            }
        }
    }
}

/// One request the studio received, with the status it answered.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// HTTP method, upper case.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The body as JSON (a JSON string holding the text if it was not JSON); `None` if empty.
    pub body: Option<Value>,
    /// Status answered (101 for a WebSocket upgrade).
    pub status: u16,
    /// When the request arrived.
    pub received: Instant,
}

impl RequestRecord {
    /// Whether this is `method` on a path ending with `suffix`.
    pub fn is(&self, method: &str, suffix: &str) -> bool {
        self.method.eq_ignore_ascii_case(method) && self.path.ends_with(suffix)
    }
}
