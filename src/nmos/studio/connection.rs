//! IS-05 v1.1 Connection API of one device (stub, being written).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::Method;
use serde_json::Value;
use uuid::Uuid;

use super::Shared;
use super::reply::Reply;
use super::spec::DeviceSpec;

/// One sender's or receiver's IS-05 state.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub staged: Value,
    pub active: Value,
}

/// A device's senders and receivers.
#[derive(Debug, Default)]
pub(crate) struct DeviceConnection {
    senders: BTreeMap<Uuid, Endpoint>,
    receivers: BTreeMap<Uuid, Endpoint>,
}

impl DeviceConnection {
    pub(crate) fn new(_d: &DeviceSpec, _index: usize) -> DeviceConnection {
        DeviceConnection::default()
    }

    pub(crate) fn endpoint(&self, id: Uuid, sender: bool) -> Option<&Endpoint> {
        if sender {
            self.senders.get(&id)
        } else {
            self.receivers.get(&id)
        }
    }
}

pub(crate) fn route(
    _shared: &Arc<Shared>,
    _dev: Uuid,
    _method: &Method,
    rest: &[&str],
    _body: Option<&Value>,
) -> Reply {
    Reply::not_found(&rest.join("/"))
}
