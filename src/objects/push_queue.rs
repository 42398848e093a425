//! Catalogue changes waiting to be pushed to one NCS as mosObj NEW / UPDATED / DELETED.
//!
//! The NCS acknowledges each mosObj before the next is sent, and it may be unreachable for
//! a long time, while the catalogue goes on changing (devices appearing, senders renamed).
//! The queue keeps at most one change per objID, the latest, merged with the one it
//! replaces so that the NCS ends up with the catalogue as it is:
//!
//! | waiting | then | waiting now |
//! | --- | --- | --- |
//! | NEW | UPDATED | NEW, with the new content |
//! | NEW | DELETED | nothing (the NCS never heard of it) |
//! | UPDATED | DELETED | DELETED |
//! | DELETED | NEW or UPDATED | UPDATED, with the new content |
//! | any other | a change | that change |
//!
//! An objID keeps the place of its first waiting change, so a busy object does not hold
//! back the others. The queue also remembers what the NCS has been told exists (sent or
//! waiting), so that when changes were missed (the broadcast outran the pusher) it can
//! resynchronise from the catalogue's list: NEW for objects the NCS was not told of,
//! UPDATED for the others, DELETED for those no longer there. Pure: no I/O.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::mos::structures::MosObj;

use super::catalogue::{ChangeKind, ObjectChange, next_revision, same_content};

/// Changes waiting for one NCS (module docs).
#[derive(Debug, Default)]
pub struct PushQueue {
    order: VecDeque<String>,
    /// The change waiting per objID: what happened, and the object after it (shared with
    /// `told`: one copy per object however long the NCS is away).
    waiting: HashMap<String, (ChangeKind, Arc<MosObj>)>,
    /// Objects the NCS has been told exist (or will be, by a waiting change), as last told.
    told: HashMap<String, Arc<MosObj>>,
}

impl PushQueue {
    /// A queue for an NCS assumed to know `objects` already (the catalogue when the
    /// pusher subscribed).
    pub fn new(objects: impl IntoIterator<Item = MosObj>) -> Self {
        Self {
            told: objects
                .into_iter()
                .map(|o| (o.id.clone(), Arc::new(o)))
                .collect(),
            ..Self::default()
        }
    }

    /// Adds a change, merged with the one waiting for the same objID (module docs). A change
    /// that leaves the object as the NCS was already told (a deletion of an object it was
    /// not told of, the same revision and content again) adds nothing, nor does one older
    /// than what it was told (an UPDATED read from the broadcast after a resync that
    /// already covered it: sending it would take the NCS's revision backwards).
    pub fn add(&mut self, change: ObjectChange) {
        let id = &change.object.id;
        let redundant = match change.kind {
            ChangeKind::Deleted => !self.told.contains_key(id),
            ChangeKind::New => self
                .told
                .get(id)
                .is_some_and(|told| same_as_told(told, &change.object)),
            ChangeKind::Updated => self.told.get(id).is_some_and(|told| {
                same_as_told(told, &change.object) || older(change.object.revision, told.revision)
            }),
        };
        if redundant {
            return;
        }
        let ObjectChange { kind, object } = change;
        let object = Arc::new(object);
        match kind {
            ChangeKind::Deleted => self.told.remove(&object.id),
            ChangeKind::New | ChangeKind::Updated => {
                self.told.insert(object.id.clone(), object.clone())
            }
        };
        self.merge(kind, object);
    }

    /// Merges a change into the waiting ones (module docs), what the NCS was told aside.
    fn merge(&mut self, kind: ChangeKind, object: Arc<MosObj>) {
        let id = object.id.clone();
        let merged = match self.waiting.get(&id).map(|(k, _)| *k) {
            None => Some(kind),
            Some(ChangeKind::New) => match kind {
                ChangeKind::Deleted => None,
                _ => Some(ChangeKind::New),
            },
            Some(ChangeKind::Deleted) if kind != ChangeKind::Deleted => Some(ChangeKind::Updated),
            Some(_) => Some(kind),
        };
        match merged {
            Some(k) => {
                if self.waiting.insert(id.clone(), (k, object)).is_none() {
                    self.order.push_back(id);
                }
            }
            None => {
                self.waiting.remove(&id);
                self.order.retain(|o| *o != id);
            }
        }
    }

    /// Takes the next change to send, oldest objID first (its object's status set to the
    /// change's).
    pub fn pop(&mut self) -> Option<ObjectChange> {
        let id = self.order.pop_front()?;
        let (kind, object) = self.waiting.remove(&id)?;
        let mut object = Arc::unwrap_or_clone(object);
        object.status = kind.status().to_owned();
        Some(ObjectChange { kind, object })
    }

    /// Puts back a change taken by [`PushQueue::pop`] that could not be sent, ahead of the
    /// others; a newer change for its objID that arrived meanwhile wins.
    pub fn put_back(&mut self, change: ObjectChange) {
        let id = change.object.id.clone();
        let newer = self.waiting.remove(&id);
        if newer.is_some() {
            self.order.retain(|o| *o != id);
        }
        self.insert_front(change);
        // A newer change that arrived meanwhile is merged after it, in order.
        if let Some((kind, object)) = newer {
            self.merge(kind, object);
        }
    }

    /// After missed changes: queues whatever makes the NCS's view the catalogue's `objects`.
    pub fn resync(&mut self, objects: Vec<MosObj>) {
        let mut gone: HashMap<String, Arc<MosObj>> = std::mem::take(&mut self.told);
        for obj in objects {
            let kind = match gone.remove(&obj.id) {
                Some(old) if same_as_told(&old, &obj) => {
                    self.told.insert(obj.id.clone(), old);
                    continue;
                }
                Some(_) => ChangeKind::Updated,
                None => ChangeKind::New,
            };
            self.add(ObjectChange { kind, object: obj });
        }
        for (_, obj) in gone {
            let mut obj = Arc::unwrap_or_clone(obj);
            obj.revision = next_revision(obj.revision);
            self.merge(ChangeKind::Deleted, Arc::new(obj));
        }
    }

    /// Number of objIDs with a change waiting.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn insert_front(&mut self, change: ObjectChange) {
        let id = change.object.id.clone();
        self.order.push_front(id.clone());
        self.waiting
            .insert(id, (change.kind, Arc::new(change.object)));
    }
}

/// Whether objRev `rev` comes before `told` (revisions run 1…999 and wrap to 1: within half
/// a cycle behind counts as older).
fn older(rev: u32, told: u32) -> bool {
    let behind = (told + 999 - rev % 999) % 999;
    (1..=499).contains(&behind)
}

/// The same object as last told: the same revision of the same content (one revision of a
/// catalogue object has one content and one change time).
fn same_as_told(told: &MosObj, now: &MosObj) -> bool {
    told.revision == now.revision && same_content(told, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(id: &str, slug: &str, rev: u32) -> MosObj {
        let now = crate::mos::time::MosTime::from_wire("2026-11-27T00:00:00Z");
        let mut o = crate::objects::object_from_config(
            &crate::config::ObjectConfig {
                id: id.into(),
                slug: slug.into(),
                obj_type: crate::mos::structures::ObjType::Video,
                group: None,
                description: None,
                duration_s: None,
            },
            "test",
            &now,
        );
        o.revision = rev;
        o
    }

    fn change(kind: ChangeKind, id: &str, slug: &str, rev: u32) -> ObjectChange {
        let mut object = obj(id, slug, rev);
        object.status = kind.status().to_owned();
        ObjectChange { kind, object }
    }

    fn drain(q: &mut PushQueue) -> Vec<(String, &'static str, String)> {
        std::iter::from_fn(|| q.pop())
            .map(|c| (c.object.id.clone(), c.kind.status(), c.object.slug.clone()))
            .collect()
    }

    fn row(id: &str, kind: &'static str, slug: &str) -> (String, &'static str, String) {
        (id.into(), kind, slug.into())
    }

    #[test]
    fn changes_to_one_object_merge_into_what_the_ncs_must_hear() {
        use ChangeKind::*;
        type Case = (&'static [ChangeKind], Option<(&'static str, &'static str)>);
        let cases: &[Case] = &[
            (&[New, Updated], Some(("NEW", "s1"))),
            (&[New, Updated, Updated], Some(("NEW", "s2"))),
            (&[New, Deleted], None),
            (&[New, Updated, Deleted], None),
            (&[Updated, Updated], Some(("UPDATED", "s1"))),
            (&[Updated, Deleted], Some(("DELETED", "s1"))),
            (&[Deleted, New], Some(("UPDATED", "s1"))),
            (&[Deleted, New, Updated], Some(("UPDATED", "s2"))),
            (&[Deleted, New, Deleted], Some(("DELETED", "s2"))),
            (&[Updated], Some(("UPDATED", "s0"))),
        ];
        for (kinds, expected) in cases {
            // The NCS was told of A (at revision 999: the changes' 1, 2, 3 come after it).
            let mut q = PushQueue::new([obj("A", "old", 999)]);
            for (i, k) in kinds.iter().enumerate() {
                q.add(change(*k, "A", &format!("s{i}"), i as u32 + 1));
            }
            let got = drain(&mut q);
            let want: Vec<_> = expected.iter().map(|(k, s)| row("A", k, s)).collect();
            assert_eq!(got, want, "{kinds:?}");
        }
    }

    #[test]
    fn an_object_keeps_the_place_of_its_first_waiting_change() {
        let mut q = PushQueue::default();
        q.add(change(ChangeKind::Updated, "A", "a1", 2));
        q.add(change(ChangeKind::Updated, "B", "b1", 2));
        q.add(change(ChangeKind::Updated, "A", "a2", 3));
        q.add(change(ChangeKind::New, "C", "c1", 1));
        q.add(change(ChangeKind::Deleted, "C", "c1", 2));
        q.add(change(ChangeKind::New, "D", "d1", 1));
        assert_eq!(q.len(), 3);
        assert_eq!(
            drain(&mut q),
            vec![
                row("A", "UPDATED", "a2"),
                row("B", "UPDATED", "b1"),
                row("D", "NEW", "d1")
            ]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn a_change_put_back_goes_first_and_merges_with_a_newer_one() {
        let mut q = PushQueue::default();
        q.add(change(ChangeKind::New, "A", "a1", 1));
        q.add(change(ChangeKind::Updated, "B", "b1", 2));
        let a = q.pop().unwrap();
        q.put_back(a);
        assert_eq!(q.pop().unwrap().object.id, "A");
        let a = change(ChangeKind::New, "A", "a1", 1);
        // While A's NEW could not be sent, A was deleted: the NCS hears nothing of A.
        q.add(change(ChangeKind::Deleted, "A", "a1", 2));
        q.put_back(a);
        assert_eq!(drain(&mut q), vec![row("B", "UPDATED", "b1")]);
    }

    #[test]
    fn a_resync_tells_only_what_differs_from_what_the_ncs_was_told() {
        let mut q = PushQueue::new([obj("A", "a", 1), obj("B", "b", 1), obj("C", "c", 4)]);
        // Missed: B updated, C deleted, D new. A unchanged.
        q.resync(vec![obj("A", "a", 1), obj("B", "b2", 2), obj("D", "d", 1)]);
        let mut got = Vec::new();
        while let Some(c) = q.pop() {
            got.push((
                c.object.id,
                c.kind.status(),
                c.object.revision,
                c.object.status,
            ));
        }
        assert_eq!(
            got,
            vec![
                ("B".to_string(), "UPDATED", 2, "UPDATED".to_string()),
                ("D".to_string(), "NEW", 1, "NEW".to_string()),
                ("C".to_string(), "DELETED", 5, "DELETED".to_string()),
            ]
        );
        // And it remembers the new view: a second resync with the same list sends nothing.
        q.resync(vec![obj("A", "a", 1), obj("B", "b2", 2), obj("D", "d", 1)]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_change_that_leaves_the_object_as_told_adds_nothing() {
        let mut q = PushQueue::new([obj("A", "a", 3)]);
        // The changes a resync has already covered, read after it.
        q.add(change(ChangeKind::Updated, "A", "a", 3));
        q.add(change(ChangeKind::Deleted, "Z", "z", 2));
        assert!(q.is_empty());
        // The same content under a new revision is a change.
        q.add(change(ChangeKind::Updated, "A", "a", 4));
        assert_eq!(drain(&mut q), vec![row("A", "UPDATED", "a")]);
    }

    #[test]
    fn a_change_older_than_what_a_resync_told_is_not_sent() {
        // The resync read A at revision 3 from the catalogue; the broadcast still holds the
        // changes to revisions 2 and 3 that it covered.
        let mut q = PushQueue::new([obj("A", "a", 1)]);
        q.resync(vec![obj("A", "a3", 3)]);
        assert_eq!(drain(&mut q), vec![row("A", "UPDATED", "a3")]);
        q.add(change(ChangeKind::Updated, "A", "a2", 2));
        q.add(change(ChangeKind::Updated, "A", "a3", 3));
        assert!(q.is_empty());
        // Newer ones go, also across the wrap from 999 to 1.
        q.add(change(ChangeKind::Updated, "A", "a4", 4));
        assert_eq!(drain(&mut q), vec![row("A", "UPDATED", "a4")]);
        assert!(older(998, 999) && older(999, 1) && !older(1, 999) && !older(5, 4));
    }

    #[test]
    fn a_resync_keeps_waiting_changes_consistent() {
        let mut q = PushQueue::new([obj("A", "a", 1)]);
        q.add(change(ChangeKind::New, "B", "b", 1));
        // Then changes were missed: B was deleted again and A renamed.
        q.resync(vec![obj("A", "a2", 2)]);
        assert_eq!(drain(&mut q), vec![row("A", "UPDATED", "a2")]);
    }
}
