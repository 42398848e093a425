//! The IS-04 Query API (v1.2 and v1.3): resource lists with basic queries and paging, single
//! resources, and the subscription endpoints.

use std::sync::Arc;

use axum::http::Method;
use serde_json::Value;
use uuid::Uuid;

use super::registry::{PagingOrder, ResourceType, matches_filters};
use super::reply::Reply;
use super::{Shared, route_get, subscriptions};
use crate::nmos::tai::TaiTime;

/// Versions served.
pub(crate) const VERSIONS: [&str; 2] = ["v1.2", "v1.3"];
/// `paging.limit` when none is given (as nmos-cpp).
const DEFAULT_LIMIT: usize = 10;
/// The largest `paging.limit` honoured.
const MAX_LIMIT: usize = 1000;

/// Routes `/x-nmos/query/…` (`rest` is what follows `query`).
pub(crate) fn route(
    shared: &Arc<Shared>,
    method: &Method,
    rest: &[&str],
    params: &[(String, String)],
    body: Option<&Value>,
) -> Reply {
    match rest {
        [] => route_get(method, Reply::children(&["v1.2/", "v1.3/"])),
        [v, rest @ ..] if VERSIONS.contains(v) => match rest {
            [] => route_get(
                method,
                Reply::children(&[
                    "nodes/",
                    "sources/",
                    "flows/",
                    "devices/",
                    "senders/",
                    "receivers/",
                    "subscriptions/",
                ]),
            ),
            ["subscriptions", rest @ ..] => subscriptions::route(shared, v, method, rest, body),
            [kind] => match ResourceType::from_segment(kind) {
                Some(kind) => route_get(method, list(shared, v, kind, params)),
                None => Reply::not_found(kind),
            },
            [kind, id] => match ResourceType::from_segment(kind) {
                Some(kind) => route_get(method, one(shared, kind, id)),
                None => Reply::not_found(kind),
            },
            _ => Reply::not_found(&rest.join("/")),
        },
        _ => Reply::not_found(&rest.join("/")),
    }
}

fn one(shared: &Shared, kind: ResourceType, id: &str) -> Reply {
    let found = Uuid::parse_str(id)
        .ok()
        .and_then(|id| shared.lock().registry.get(kind, id).cloned());
    match found {
        Some(v) => Reply::ok(v),
        None => Reply::error(404, format!("no {} with id {id}", kind.segment()), None),
    }
}

/// The paging request.
struct Paging {
    limit: usize,
    order: PagingOrder,
    since: Option<TaiTime>,
    until: Option<TaiTime>,
}

fn list(shared: &Shared, version: &str, kind: ResourceType, params: &[(String, String)]) -> Reply {
    let mut paging = Paging {
        limit: DEFAULT_LIMIT,
        order: PagingOrder::Update,
        since: None,
        until: None,
    };
    let mut filters = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "paging.limit" => match v.parse::<usize>() {
                Ok(n) => paging.limit = n.clamp(1, MAX_LIMIT),
                Err(_) => {
                    return Reply::error(
                        400,
                        format!("paging.limit {v:?} is not an integer"),
                        None,
                    );
                }
            },
            "paging.order" => match v.as_str() {
                "create" => paging.order = PagingOrder::Create,
                "update" => paging.order = PagingOrder::Update,
                _ => {
                    return Reply::error(
                        400,
                        format!("paging.order {v:?} is not create or update"),
                        None,
                    );
                }
            },
            "paging.since" | "paging.until" => match TaiTime::parse(v) {
                Ok(t) if k == "paging.since" => paging.since = Some(t),
                Ok(t) => paging.until = Some(t),
                Err(e) => return Reply::error(400, format!("{k}: {e}"), None),
            },
            "query.downgrade" => {}
            k if k.starts_with("query.") => {
                return Reply::error(501, format!("query parameter {k} is not supported"), None);
            }
            _ => filters.push((k.clone(), v.clone())),
        }
    }
    // Only the page is copied out of the registry (a large studio is listed page by page).
    let limit = paging.limit;
    let (page, since, until, latest): (Vec<(TaiTime, Value)>, TaiTime, TaiTime, TaiTime) = {
        let st = shared.lock();
        let latest = st.registry.latest();
        let mut items = st
            .registry
            .stamped(kind, paging.order, |v| matches_filters(v, &filters));
        items.sort_by_key(|(t, _)| *t);
        let window: Vec<(TaiTime, &Value)> = items
            .into_iter()
            .filter(|(t, _)| {
                paging.since.is_none_or(|s| *t > s) && paging.until.is_none_or(|u| *t <= u)
            })
            .collect();
        let owned = |page: Vec<(TaiTime, &Value)>| -> Vec<(TaiTime, Value)> {
            page.into_iter().map(|(t, v)| (t, v.clone())).collect()
        };
        match paging.since {
            Some(since) => {
                let full = window.len() > limit;
                let page: Vec<_> = window.into_iter().take(limit).collect();
                let until = match page.last() {
                    Some((t, _)) if full => *t,
                    _ => paging.until.unwrap_or(latest),
                };
                (owned(page), since, until, latest)
            }
            None => {
                let skip = window.len().saturating_sub(limit);
                let since = if skip > 0 {
                    window[skip - 1].0
                } else {
                    TaiTime::ZERO
                };
                let page: Vec<_> = window.into_iter().skip(skip).collect();
                (owned(page), since, paging.until.unwrap_or(latest), latest)
            }
        }
    };
    let body = Value::Array(page.into_iter().rev().map(|(_, v)| v).collect());
    let order = match paging.order {
        PagingOrder::Create => "create",
        PagingOrder::Update => "update",
    };
    let link = |cursor: &str, t: TaiTime| -> String {
        let mut url = match reqwest::Url::parse(&format!(
            "{}/x-nmos/query/{version}/{}/",
            shared.base,
            kind.segment()
        )) {
            Ok(u) => u,
            Err(_) => return String::new(),
        };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &filters {
                q.append_pair(k, v);
            }
            q.append_pair("paging.order", order);
            q.append_pair(cursor, &t.to_string());
            q.append_pair("paging.limit", &limit.to_string());
        }
        url.to_string()
    };
    let links = format!(
        "<{}>; rel=\"next\", <{}>; rel=\"prev\", <{}>; rel=\"first\", <{}>; rel=\"last\"",
        link("paging.since", until),
        link("paging.until", since),
        link("paging.since", TaiTime::ZERO),
        link("paging.until", latest),
    );
    Reply::ok(body)
        .header("Link", links)
        .header("X-Paging-Limit", limit.to_string())
        .header("X-Paging-Since", since.to_string())
        .header("X-Paging-Until", until.to_string())
}
