//! The object catalogue: what mosReqObj, mosReqAll and mosReqObjList answer from, and where
//! mosObjCreate puts its placeholders.
//!
//! [`Catalogue`] is the interface the session layer uses; [`MemoryCatalogue`] implements it
//! with the objects declared in the configuration, the placeholders NCSs create (persisted
//! through a [`PlaceholderStore`], normally the SQLite [`Store`]) and, later, the sources the
//! NMOS bridge feeds in with [`MemoryCatalogue::upsert`] and [`MemoryCatalogue::remove`].
//!
//! Every change is broadcast as an [`ObjectChange`], in the order the changes were made, so the
//! session layer can push mosObj NEW / UPDATED / DELETED to every NCS.
//!
//! Revisions: a new object has objRev 1; each update or deletion adds 1, and 999 is followed by
//! 1 (objRev is at most 999 in MOS).
//!
//! Placeholders (mosObjCreate) get an objID `PH-` followed by a random UUID, status NEW, objAir
//! NOT READY (nothing is bound to them yet), objRev 1, created and changed now, createdBy from
//! the request or else the NCS's ncsID. Creation is refused with a [`CreateError`] when:
//! - objSlug is empty (or only spaces), or longer than 128 characters; objGroup longer than 128;
//! - objTB is missing, not a number, or ≤ 0;
//! - objType is OTHER (a placeholder stands for a video, audio or still source that an
//!   operator binds later; OTHER has nothing to bind to). An objType the parser did not know
//!   arrives as OTHER and is refused the same way;
//! - an object with the same objSlug already exists in the same objGroup (compared without
//!   regard to case or surrounding spaces; objects without a group form one group). This stops
//!   a booking made twice from producing two placeholders nobody can tell apart; the reason
//!   names the existing objID so the user can pick it instead.
//!
//! The `time` element of mosObjCreate is not used.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::config::{Config, ObjectConfig};
use crate::mos::messages::{Message, MosObjCreate};
use crate::mos::read::clip128;
use crate::mos::structures::{AirStatus, MosObj, ObjType, RawXml, format_number};
use crate::mos::time::MosTime;
use crate::mos::{Mos, ParseOptions};
use crate::store::{Store, StoreError};

/// Events kept for a subscriber that has not read them yet; a subscriber that falls further
/// behind gets `RecvError::Lagged` and should resynchronise from [`Catalogue::list`].
pub const CHANGE_CAPACITY: usize = 1024;

/// The objID prefix of placeholders created by mosObjCreate.
pub const PLACEHOLDER_PREFIX: &str = "PH-";

/// Longest objSlug / objGroup, in characters (MOS String128).
const MAX_CHARS: usize = 128;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The object is new: mosObj status NEW.
    New,
    /// The object's metadata changed: mosObj status UPDATED.
    Updated,
    /// The object is gone: mosObj status DELETED.
    Deleted,
}

impl ChangeKind {
    /// The mosObj status that announces the change.
    pub fn status(self) -> &'static str {
        match self {
            ChangeKind::New => "NEW",
            ChangeKind::Updated => "UPDATED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

/// One change of the catalogue, as broadcast to subscribers.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectChange {
    /// What happened.
    pub kind: ChangeKind,
    /// The object after the change (for a deletion: its last state, status DELETED), ready to
    /// be sent as a mosObj.
    pub object: MosObj,
}

/// Why a mosObjCreate was refused. [`CreateError::reason`] is the statusDescription of the
/// NACK: at most 128 characters, telling the user what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// objSlug is empty or only spaces.
    #[error("objSlug is empty; give the new object a name")]
    EmptySlug,
    /// objSlug is longer than 128 characters.
    #[error("objSlug is {chars} characters long; use at most 128")]
    SlugTooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// objGroup is longer than 128 characters.
    #[error("objGroup is {chars} characters long; use at most 128")]
    GroupTooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// objTB is missing.
    #[error("objTB is missing; give the time base in samples per second, e.g. 50")]
    MissingTimeBase,
    /// objTB is not a positive number.
    #[error("objTB {} is not valid; give the samples per second, more than 0, e.g. 50", format_number(*.0))]
    InvalidTimeBase(f64),
    /// objType cannot be created.
    #[error("objType {0} cannot be created here; use VIDEO, AUDIO or STILL")]
    UnsupportedType(ObjType),
    /// An object with the same slug exists in the same group.
    #[error("an object named \"{slug}\" already exists in {} ({existing}); use it or choose another objSlug", group_text(.group.as_deref()))]
    DuplicateSlug {
        /// The requested objSlug.
        slug: String,
        /// The objGroup.
        group: Option<String>,
        /// objID of the existing object.
        existing: String,
    },
    /// The placeholder could not be stored.
    #[error("the gateway could not store the new object; try again or call an operator")]
    Storage(#[source] StoreError),
}

fn group_text(group: Option<&str>) -> String {
    match group {
        Some(g) => format!("group \"{g}\""),
        None => "no group".to_owned(),
    }
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

impl CreateError {
    /// The NACK's statusDescription: what to change, at most 128 characters.
    pub fn reason(&self) -> String {
        match self {
            CreateError::DuplicateSlug {
                slug,
                group,
                existing,
            } => {
                // Long names are shortened so that the advice at the end survives.
                let short = CreateError::DuplicateSlug {
                    slug: shorten(slug, 24),
                    group: group.as_deref().map(|g| shorten(g, 16)),
                    existing: shorten(existing, 40),
                };
                clip128(&short.to_string())
            }
            other => clip128(&other.to_string()),
        }
    }
}

/// Where placeholder objects are kept across restarts: documents by objID.
pub trait PlaceholderStore: Send {
    /// Every stored placeholder as `(objID, document)`.
    fn load(&mut self) -> Result<Vec<(String, String)>, StoreError>;
    /// Stores (or replaces) one placeholder.
    fn put(&mut self, obj_id: &str, doc: &str) -> Result<(), StoreError>;
    /// Forgets one placeholder.
    fn delete(&mut self, obj_id: &str) -> Result<(), StoreError>;
}

/// The SQLite store keeps placeholders in its `placeholder` table. The catalogue may use its
/// own [`Store`] opened on the same data directory as the running-order state: SQLite (WAL)
/// serialises the two connections.
impl PlaceholderStore for Store {
    fn load(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        self.placeholders()
    }
    fn put(&mut self, obj_id: &str, doc: &str) -> Result<(), StoreError> {
        self.put_placeholder(obj_id, doc)
    }
    fn delete(&mut self, obj_id: &str) -> Result<(), StoreError> {
        self.delete_placeholder(obj_id)
    }
}

/// Keeps nothing: placeholders last until the process ends (tests, tools).
#[derive(Debug, Clone, Copy, Default)]
pub struct VolatilePlaceholders;

impl PlaceholderStore for VolatilePlaceholders {
    fn load(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(Vec::new())
    }
    fn put(&mut self, _: &str, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    fn delete(&mut self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The objects the gateway offers, as the session layer sees them.
pub trait Catalogue: Send + Sync {
    /// The object with this objID (case-sensitive), if any.
    fn get(&self, obj_id: &str) -> Option<MosObj>;

    /// Every object, in a stable order (the order they were added).
    fn list(&self) -> Vec<MosObj>;

    /// A receiver of every change made from now on, in order.
    fn subscribe(&self) -> broadcast::Receiver<ObjectChange>;

    /// mosObjCreate: creates and stores a placeholder object and announces it as
    /// [`ChangeKind::New`]; `created_by_ncs` (the ncsID) is its createdBy when the request
    /// names nobody. See the module documentation for the rules.
    fn create(&self, request: &MosObjCreate, created_by_ncs: &str) -> Result<MosObj, CreateError>;
}

/// A mosObj for an object declared in the configuration: objAir READY, status NEW, objRev 1,
/// objTB 1000 and objDur in milliseconds ([`ObjectConfig::TIME_BASE`]), description as plain
/// text.
pub fn object_from_config(o: &ObjectConfig, created_by: &str, now: &MosTime) -> MosObj {
    MosObj {
        id: o.id.clone(),
        slug: o.slug.clone(),
        abstract_: None,
        group: o.group.clone(),
        obj_type: o.obj_type,
        time_base: ObjectConfig::TIME_BASE,
        revision: 1,
        duration: o.duration_samples(),
        status: ChangeKind::New.status().to_owned(),
        air: AirStatus::Ready,
        paths: Vec::new(),
        created_by: created_by.to_owned(),
        created: now.clone(),
        changed_by: created_by.to_owned(),
        changed: now.clone(),
        description: RawXml::from_text(o.description.as_deref().unwrap_or("")),
        metadata: Vec::new(),
    }
}

/// The revision after `rev`: 1 to 999, then 1 again.
pub fn next_revision(rev: u32) -> u32 {
    if (1..999).contains(&rev) { rev + 1 } else { 1 }
}

/// A placeholder as a stored document (a `<mos>` document holding the mosObj).
fn to_doc(obj: &MosObj) -> String {
    Mos::new("", "", None, Message::MosObj(obj.clone())).to_xml()
}

/// A stored document back as a mosObj.
fn from_doc(doc: &str) -> Option<MosObj> {
    match Mos::parse(doc, ParseOptions::lenient()) {
        Ok(parsed) => match parsed.mos.message {
            Message::MosObj(o) => Some(o),
            _ => None,
        },
        Err(_) => None,
    }
}

struct State {
    objects: Vec<MosObj>,
    placeholders: HashSet<String>,
    store: Box<dyn PlaceholderStore>,
}

impl State {
    fn index(&self, obj_id: &str) -> Option<usize> {
        self.objects.iter().position(|o| o.id == obj_id)
    }
}

/// The catalogue in memory: objects from the configuration, placeholders (persisted), and
/// whatever [`upsert`](Self::upsert) adds.
pub struct MemoryCatalogue {
    state: Mutex<State>,
    changes: broadcast::Sender<ObjectChange>,
    author: String,
}

impl Default for MemoryCatalogue {
    fn default() -> Self {
        MemoryCatalogue::new()
    }
}

impl std::fmt::Debug for MemoryCatalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("MemoryCatalogue")
            .field("objects", &s.objects.len())
            .field("placeholders", &s.placeholders.len())
            .finish()
    }
}

impl MemoryCatalogue {
    /// An empty catalogue that keeps placeholders in memory only.
    pub fn new() -> Self {
        MemoryCatalogue {
            state: Mutex::new(State {
                objects: Vec::new(),
                placeholders: HashSet::new(),
                store: Box::new(VolatilePlaceholders),
            }),
            changes: broadcast::channel(CHANGE_CAPACITY).0,
            author: "mos-gateway".to_owned(),
        }
    }

    /// A catalogue holding `objects` (in this order, as given: no events), then the
    /// placeholders stored in `store`. `author` is the createdBy/changedBy of objects the
    /// gateway itself makes or changes when they name nobody (our mosID). Stored documents that
    /// cannot be read, or whose objID is already taken, are skipped with a warning.
    pub fn open(
        objects: Vec<MosObj>,
        mut store: Box<dyn PlaceholderStore>,
        author: &str,
    ) -> Result<Self, StoreError> {
        let stored = store.load()?;
        let mut objects = objects;
        let mut placeholders = HashSet::new();
        for (id, doc) in stored {
            match from_doc(&doc) {
                Some(o) if o.id == id && !objects.iter().any(|x| x.id == id) => {
                    placeholders.insert(id);
                    objects.push(o);
                }
                Some(_) => {
                    tracing::warn!(obj_id = %id, "stored placeholder skipped: its objID is taken or does not match")
                }
                None => {
                    tracing::warn!(obj_id = %id, "stored placeholder skipped: not a readable mosObj")
                }
            }
        }
        Ok(MemoryCatalogue {
            state: Mutex::new(State {
                objects,
                placeholders,
                store,
            }),
            changes: broadcast::channel(CHANGE_CAPACITY).0,
            author: author.to_owned(),
        })
    }

    /// The catalogue of a configuration: its `[[object]]` entries (created now, createdBy our
    /// mosID), then the placeholders of `store`.
    pub fn from_config(
        config: &Config,
        store: Box<dyn PlaceholderStore>,
    ) -> Result<Self, StoreError> {
        let now = MosTime::now();
        let objects = config
            .objects
            .iter()
            .map(|o| object_from_config(o, &config.mos.id, &now))
            .collect();
        MemoryCatalogue::open(objects, store, &config.mos.id)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent data: every change is
        // made in one assignment after the fallible steps.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, change: ObjectChange) {
        // No subscriber is not an error.
        let _ = self.changes.send(change);
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.lock().objects.len()
    }

    /// Whether there are no objects.
    pub fn is_empty(&self) -> bool {
        self.lock().objects.is_empty()
    }

    /// Whether `obj_id` is a placeholder created by mosObjCreate.
    pub fn is_placeholder(&self, obj_id: &str) -> bool {
        self.lock().placeholders.contains(obj_id)
    }

    /// Adds or replaces an object (the NMOS bridge's entry point) and announces it.
    ///
    /// A new objID is added at the end with objRev 1 and status NEW (created = now when the
    /// object has no created time). An existing one is replaced, keeping its created and
    /// createdBy, with objRev + 1 (999 → 1) and status UPDATED. changed is set to now;
    /// empty createdBy/changedBy become the catalogue's author. Returns the change broadcast,
    /// or `None` when the object is the same as before apart from revision, status and times
    /// (nothing is announced). A placeholder stays a placeholder and is stored again.
    pub fn upsert(&self, object: MosObj) -> Result<Option<ObjectChange>, StoreError> {
        let mut s = self.lock();
        let now = MosTime::now();
        let mut object = object;
        if object.changed_by.is_empty() {
            object.changed_by = self.author.clone();
        }
        let change = match s.index(&object.id) {
            Some(i) => {
                let old = &s.objects[i];
                object.created = old.created.clone();
                object.created_by = old.created_by.clone();
                if same_content(old, &object) {
                    return Ok(None);
                }
                object.revision = next_revision(old.revision);
                object.status = ChangeKind::Updated.status().to_owned();
                object.changed = now;
                if s.placeholders.contains(&object.id) {
                    let doc = to_doc(&object);
                    s.store.put(&object.id, &doc)?;
                }
                s.objects[i] = object.clone();
                ObjectChange {
                    kind: ChangeKind::Updated,
                    object,
                }
            }
            None => {
                object.revision = 1;
                object.status = ChangeKind::New.status().to_owned();
                if object.created.is_empty() {
                    object.created = now.clone();
                }
                if object.created_by.is_empty() {
                    object.created_by = self.author.clone();
                }
                object.changed = now;
                s.objects.push(object.clone());
                ObjectChange {
                    kind: ChangeKind::New,
                    object,
                }
            }
        };
        self.emit(change.clone());
        Ok(Some(change))
    }

    /// Removes an object and announces it as DELETED (objRev + 1, changed now). Returns the
    /// change, or `None` for an unknown objID. A placeholder is deleted from the store too.
    pub fn remove(&self, obj_id: &str) -> Result<Option<ObjectChange>, StoreError> {
        let mut s = self.lock();
        let Some(i) = s.index(obj_id) else {
            return Ok(None);
        };
        if s.placeholders.contains(obj_id) {
            s.store.delete(obj_id)?;
            s.placeholders.remove(obj_id);
        }
        let mut object = s.objects.remove(i);
        object.revision = next_revision(object.revision);
        object.status = ChangeKind::Deleted.status().to_owned();
        object.changed = MosTime::now();
        object.changed_by = self.author.clone();
        let change = ObjectChange {
            kind: ChangeKind::Deleted,
            object,
        };
        self.emit(change.clone());
        Ok(Some(change))
    }
}

/// Equal apart from what the catalogue itself sets (revision, status, changed, changedBy).
pub(crate) fn same_content(a: &MosObj, b: &MosObj) -> bool {
    let mut b = b.clone();
    b.revision = a.revision;
    b.status = a.status.clone();
    b.changed = a.changed.clone();
    b.changed_by = a.changed_by.clone();
    *a == b
}

/// Comparison key of slugs and groups for the duplicate rule.
fn fold(text: &str) -> String {
    text.trim().to_lowercase()
}

/// Checks a mosObjCreate against the rules; returns the trimmed slug and group.
fn check_create(
    request: &MosObjCreate,
    objects: &[MosObj],
) -> Result<(String, Option<String>, f64), CreateError> {
    let slug = request.slug.trim();
    if slug.is_empty() {
        return Err(CreateError::EmptySlug);
    }
    let chars = slug.chars().count();
    if chars > MAX_CHARS {
        return Err(CreateError::SlugTooLong { chars });
    }
    let group = request
        .group
        .as_deref()
        .map(str::trim)
        .filter(|g| !g.is_empty());
    if let Some(g) = group {
        let chars = g.chars().count();
        if chars > MAX_CHARS {
            return Err(CreateError::GroupTooLong { chars });
        }
    }
    let time_base = match request.time_base {
        None => return Err(CreateError::MissingTimeBase),
        Some(tb) if !(tb.is_finite() && tb > 0.0) => return Err(CreateError::InvalidTimeBase(tb)),
        Some(tb) => tb,
    };
    if !matches!(
        request.obj_type,
        ObjType::Video | ObjType::Audio | ObjType::Still
    ) {
        return Err(CreateError::UnsupportedType(request.obj_type));
    }
    let key = fold(slug);
    let group_key = group.map(fold);
    if let Some(existing) = objects.iter().find(|o| {
        fold(&o.slug) == key && o.group.as_deref().map(fold).filter(|g| !g.is_empty()) == group_key
    }) {
        return Err(CreateError::DuplicateSlug {
            slug: slug.to_owned(),
            group: group.map(str::to_owned),
            existing: existing.id.clone(),
        });
    }
    Ok((slug.to_owned(), group.map(str::to_owned), time_base))
}

impl Catalogue for MemoryCatalogue {
    fn get(&self, obj_id: &str) -> Option<MosObj> {
        let s = self.lock();
        s.index(obj_id).map(|i| s.objects[i].clone())
    }

    fn list(&self) -> Vec<MosObj> {
        self.lock().objects.clone()
    }

    fn subscribe(&self) -> broadcast::Receiver<ObjectChange> {
        self.changes.subscribe()
    }

    fn create(&self, request: &MosObjCreate, created_by_ncs: &str) -> Result<MosObj, CreateError> {
        let mut s = self.lock();
        let (slug, group, time_base) = check_create(request, &s.objects)?;
        let created_by = request
            .created_by
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .unwrap_or(created_by_ncs);
        let created_by = clip128(created_by);
        let now = MosTime::now();
        let object = MosObj {
            id: format!("{PLACEHOLDER_PREFIX}{}", uuid::Uuid::new_v4()),
            slug,
            abstract_: None,
            group,
            obj_type: request.obj_type,
            time_base,
            revision: 1,
            duration: request.duration.unwrap_or(0),
            status: ChangeKind::New.status().to_owned(),
            air: AirStatus::NotReady,
            paths: Vec::new(),
            created_by: created_by.clone(),
            created: now.clone(),
            changed_by: created_by,
            changed: now,
            description: request.description.clone().unwrap_or_default(),
            metadata: request.metadata.clone(),
        };
        let doc = to_doc(&object);
        s.store
            .put(&object.id, &doc)
            .map_err(CreateError::Storage)?;
        s.placeholders.insert(object.id.clone());
        s.objects.push(object.clone());
        self.emit(ObjectChange {
            kind: ChangeKind::New,
            object: object.clone(),
        });
        Ok(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create_req(slug: &str) -> MosObjCreate {
        MosObjCreate {
            slug: slug.to_owned(),
            group: None,
            obj_type: ObjType::Video,
            time_base: Some(50.0),
            duration: Some(1500),
            time: None,
            created_by: None,
            description: None,
            metadata: Vec::new(),
        }
    }

    #[test]
    fn revisions_wrap_after_999() {
        assert_eq!(next_revision(0), 1);
        assert_eq!(next_revision(1), 2);
        assert_eq!(next_revision(998), 999);
        assert_eq!(next_revision(999), 1);
        assert_eq!(next_revision(5000), 1);
    }

    #[test]
    fn every_reason_fits_128_characters() {
        let long = "x".repeat(300);
        let errors = [
            CreateError::EmptySlug,
            CreateError::SlugTooLong { chars: 300 },
            CreateError::GroupTooLong { chars: 300 },
            CreateError::MissingTimeBase,
            CreateError::InvalidTimeBase(-1.0),
            CreateError::UnsupportedType(ObjType::Other),
            CreateError::DuplicateSlug {
                slug: long.clone(),
                group: Some(long.clone()),
                existing: long,
            },
        ];
        for e in errors {
            let r = e.reason();
            assert!(r.chars().count() <= 128, "{r}");
            assert!(!r.is_empty());
        }
        let dup = CreateError::DuplicateSlug {
            slug: "a".repeat(100),
            group: None,
            existing: "PH-1".into(),
        };
        assert!(
            dup.reason().ends_with("choose another objSlug"),
            "{}",
            dup.reason()
        );
    }

    #[test]
    fn placeholder_document_round_trips() {
        let c = MemoryCatalogue::new();
        let mut req = create_req("Remote: Oslo reporter");
        req.description = Some(RawXml("<p>Feed &amp; <em>talkback</em></p>".into()));
        let o = c.create(&req, "NCS1").unwrap();
        assert_eq!(from_doc(&to_doc(&o)), Some(o));
    }

    #[test]
    fn duplicate_slug_ignores_case_and_spaces_but_not_groups() {
        let c = MemoryCatalogue::new();
        c.create(&create_req("Oslo"), "N").unwrap();
        assert!(matches!(
            c.create(&create_req("  oslo "), "N"),
            Err(CreateError::DuplicateSlug { .. })
        ));
        let mut other_group = create_req("Oslo");
        other_group.group = Some("Remotes".into());
        c.create(&other_group, "N").unwrap();
        other_group.group = Some("remotes ".into());
        assert!(c.create(&other_group, "N").is_err());
    }
}
