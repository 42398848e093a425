//! The studio's IS-04 registry: resources by type with creation and update times, a clock that
//! gives every change a unique TAI stamp (the resource `version`), and a broadcast of changes
//! for the WebSocket subscriptions.

use std::collections::BTreeMap;

use serde_json::Value;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::nmos::tai::TaiTime;

/// The IS-04 resource types the Query API lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    /// `/nodes`
    Nodes,
    /// `/devices`
    Devices,
    /// `/sources`
    Sources,
    /// `/flows`
    Flows,
    /// `/senders`
    Senders,
    /// `/receivers`
    Receivers,
}

impl ResourceType {
    /// Every type, in registration order (parents first).
    pub const ALL: [ResourceType; 6] = [
        ResourceType::Nodes,
        ResourceType::Devices,
        ResourceType::Sources,
        ResourceType::Flows,
        ResourceType::Senders,
        ResourceType::Receivers,
    ];

    /// The path segment, e.g. `"senders"`.
    pub fn segment(self) -> &'static str {
        match self {
            ResourceType::Nodes => "nodes",
            ResourceType::Devices => "devices",
            ResourceType::Sources => "sources",
            ResourceType::Flows => "flows",
            ResourceType::Senders => "senders",
            ResourceType::Receivers => "receivers",
        }
    }

    /// Parses a path segment.
    pub fn from_segment(s: &str) -> Option<ResourceType> {
        ResourceType::ALL.into_iter().find(|t| t.segment() == s)
    }
}

/// One change to the registry, as the subscriptions see it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resource's type.
    pub kind: ResourceType,
    /// The resource's id.
    pub id: Uuid,
    /// The resource before (absent when added).
    pub pre: Option<Value>,
    /// The resource after (absent when removed).
    pub post: Option<Value>,
}

#[derive(Debug, Clone)]
struct Record {
    created: TaiTime,
    updated: TaiTime,
    value: Value,
}

/// Which timestamp paging uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingOrder {
    /// `paging.order=create`
    Create,
    /// `paging.order=update` (default)
    Update,
}

/// The resources and their history stamps.
#[derive(Debug)]
pub struct Registry {
    resources: BTreeMap<ResourceType, BTreeMap<Uuid, Record>>,
    last_stamp: TaiTime,
    changes: broadcast::Sender<Change>,
}

impl Registry {
    /// An empty registry publishing to `changes`.
    pub fn new(changes: broadcast::Sender<Change>) -> Registry {
        Registry {
            resources: BTreeMap::new(),
            last_stamp: TaiTime::ZERO,
            changes,
        }
    }

    /// A fresh stamp: TAI now, strictly after the previous one.
    pub fn stamp(&mut self) -> TaiTime {
        let now = TaiTime::now();
        let next = if now > self.last_stamp {
            now
        } else {
            let d = self.last_stamp.as_duration() + std::time::Duration::from_nanos(1);
            TaiTime::from(d)
        };
        self.last_stamp = next;
        next
    }

    /// The most recent stamp given.
    pub fn latest(&self) -> TaiTime {
        self.last_stamp
    }

    fn publish(&self, change: Change) {
        // No subscriber is fine.
        let _ = self.changes.send(change);
    }

    /// Adds (or replaces, as a modification) a resource; its `version` is set here.
    pub fn add(&mut self, kind: ResourceType, id: Uuid, mut value: Value) {
        let stamp = self.stamp();
        value["version"] = Value::String(stamp.to_string());
        let map = self.resources.entry(kind).or_default();
        let pre = map.get(&id).map(|r| r.value.clone());
        let created = map.get(&id).map(|r| r.created).unwrap_or(stamp);
        map.insert(
            id,
            Record {
                created,
                updated: stamp,
                value: value.clone(),
            },
        );
        self.publish(Change {
            kind,
            id,
            pre,
            post: Some(value),
        });
    }

    /// Changes a resource with `f` and bumps its `version` (even when `f` changed nothing, as
    /// a node does on a re-activation). False if there is no such resource.
    pub fn modify(&mut self, kind: ResourceType, id: Uuid, f: impl FnOnce(&mut Value)) -> bool {
        let stamp = self.stamp();
        let Some(rec) = self.resources.get_mut(&kind).and_then(|m| m.get_mut(&id)) else {
            return false;
        };
        let pre = rec.value.clone();
        f(&mut rec.value);
        rec.value["version"] = Value::String(stamp.to_string());
        rec.updated = stamp;
        let post = rec.value.clone();
        self.publish(Change {
            kind,
            id,
            pre: Some(pre),
            post: Some(post),
        });
        true
    }

    /// Removes a resource, returning it.
    pub fn remove(&mut self, kind: ResourceType, id: Uuid) -> Option<Value> {
        let rec = self.resources.get_mut(&kind)?.remove(&id)?;
        self.publish(Change {
            kind,
            id,
            pre: Some(rec.value.clone()),
            post: None,
        });
        Some(rec.value)
    }

    /// One resource.
    pub fn get(&self, kind: ResourceType, id: Uuid) -> Option<&Value> {
        self.resources.get(&kind)?.get(&id).map(|r| &r.value)
    }

    /// Every resource of a type, by id.
    pub fn all(&self, kind: ResourceType) -> Vec<&Value> {
        self.resources
            .get(&kind)
            .map(|m| m.values().map(|r| &r.value).collect())
            .unwrap_or_default()
    }

    /// Resources of a type matching `filter`, each with its paging timestamp for `order`.
    pub fn stamped(
        &self,
        kind: ResourceType,
        order: PagingOrder,
        filter: impl Fn(&Value) -> bool,
    ) -> Vec<(TaiTime, &Value)> {
        self.resources
            .get(&kind)
            .map(|m| {
                m.values()
                    .filter(|r| filter(&r.value))
                    .map(|r| {
                        let t = match order {
                            PagingOrder::Create => r.created,
                            PagingOrder::Update => r.updated,
                        };
                        (t, &r.value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Whether a resource matches basic query parameters (`attr=value`, dotted paths, arrays
/// match when one element matches). An unknown attribute matches nothing.
pub fn matches_filters(resource: &Value, filters: &[(String, String)]) -> bool {
    filters
        .iter()
        .all(|(path, want)| value_matches(lookup(resource, path), want))
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path.split('.') {
        cur = cur.get(seg)?;
    }
    Some(cur)
}

fn value_matches(v: Option<&Value>, want: &str) -> bool {
    match v {
        None => false,
        Some(Value::String(s)) => s == want,
        Some(Value::Null) => want == "null",
        Some(Value::Bool(b)) => b.to_string() == want,
        Some(Value::Number(n)) => n.to_string() == want,
        Some(Value::Array(items)) => items.iter().any(|i| value_matches(Some(i), want)),
        Some(Value::Object(_)) => false,
    }
}
