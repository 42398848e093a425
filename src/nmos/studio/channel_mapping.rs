//! IS-08 v1.0 Channel Mapping API of one device (stub, being written).

use std::sync::Arc;

use axum::http::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Shared;
use super::reply::Reply;
use super::spec::{ChannelMappingSpec, DeviceSpec};

/// A device's IS-08 state.
#[derive(Debug)]
pub(crate) struct DeviceChannelMapping {}

impl DeviceChannelMapping {
    pub(crate) fn new(
        _dev: Uuid,
        _d: &DeviceSpec,
        _cm: &ChannelMappingSpec,
    ) -> Result<Self, String> {
        Ok(DeviceChannelMapping {})
    }

    pub(crate) fn active_json(&self) -> Value {
        json!({})
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
