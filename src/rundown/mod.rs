//! The running-order model: every running order exactly as the NCS has it, and the pure
//! state transitions that MOS running-order messages ask for. No I/O.
//!
//! - [`edit_from_message`] turns a message (roCreate … roElementAction, the eleven legacy
//!   roStory*/roItem* messages, roStorySend, roList) into one [`Edit`] of one roID.
//! - [`Rundowns::apply`] computes the new state of that running order without touching
//!   the current one; [`Rundowns::commit`] installs it. A refused edit changes nothing
//!   ([`EditError::reason`] is the roAck text, [`EditError::needs_resync`] says whether to
//!   send roReq).
//!
//! Semantics decisions (see the MOS reference §3.2, §3.3, §4.4, §4.5):
//! - Blank or absent targets mean "the end" for story INSERT/MOVE and item INSERT/MOVE.
//! - Bodies (roStorySend) follow their story through MOVE, SWAP and REPLACE by a story
//!   with the same storyID; a deleted or replaced-away story loses its body.
//! - roCreate for a held roID replaces it completely (no bodies, no readiness kept);
//!   [`Change::Created`] reports that so the session can log it.
//! - roReplace and roList keep the bodies of stories whose storyID is still present, and
//!   the readiness; roList creates the running order if it is not held.
//! - roDelete, roReplace, roMetadataReplace, roReadyToAir, roStorySend and every story or
//!   item edit refuse an unknown roID (needs resync).

mod edit;
mod error;
mod model;
mod seq;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use edit::{Edit, edit_from_message, into_edit};
pub use error::EditError;
pub use model::{Rundown, RundownStory, StoryContent};

use crate::mos::structures::{Item, MosExternalMetadata, RoHeader, RunningOrder, Story};
use model::{check_items, check_stories};
use seq::SeqError;

/// What an accepted edit changed (for re-planning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// roCreate; `replaced_existing` when the roID was already held.
    Created {
        /// Whether a running order with this roID was replaced.
        replaced_existing: bool,
    },
    /// roReplace: everything may have changed.
    Replaced,
    /// roList: our copy was replaced (or created) from the NCS's.
    Resynced {
        /// Whether the roID was not held before.
        created: bool,
    },
    /// roDelete.
    Deleted,
    /// roMetadataReplace: header only.
    Header,
    /// roReadyToAir.
    Readiness,
    /// Story edits: the storyIDs inserted, removed, moved, swapped or replaced.
    Stories {
        /// The storyIDs touched (targets of REPLACE included).
        ids: Vec<String>,
    },
    /// Item edits within one story: the itemIDs touched.
    Items {
        /// The storyID.
        story: String,
        /// The itemIDs touched (targets of REPLACE included).
        ids: Vec<String>,
    },
    /// roStorySend: a story body.
    Body {
        /// The storyID.
        story: String,
    },
}

/// The result of [`Rundowns::apply`]: the new state of one running order, not yet
/// installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    rundown: Option<Rundown>,
    change: Change,
    description: String,
}

impl Applied {
    /// The new running order; `None` when it was deleted.
    pub fn rundown(&self) -> Option<&Rundown> {
        self.rundown.as_ref()
    }
    /// What changed.
    pub fn change(&self) -> &Change {
        &self.change
    }
    /// A one-line description for logs, e.g. `MOVE stories S3 to the end`.
    pub fn description(&self) -> &str {
        &self.description
    }
}

/// Every running order held, by roID.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rundowns {
    by_id: BTreeMap<String, Rundown>,
}

impl Rundowns {
    /// No running orders.
    pub fn new() -> Self {
        Self::default()
    }

    /// A running order by roID.
    pub fn get(&self, ro_id: &str) -> Option<&Rundown> {
        self.by_id.get(ro_id)
    }

    /// The running orders, by roID.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Rundown)> {
        self.by_id.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many running orders are held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no running order is held.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Installs the result of [`Rundowns::apply`] for `ro_id`.
    pub fn commit(&mut self, ro_id: &str, applied: Applied) {
        match applied.rundown {
            Some(r) => {
                debug_assert!(model::invariants_hold(&r));
                self.by_id.insert(ro_id.to_string(), r);
            }
            None => {
                self.by_id.remove(ro_id);
            }
        }
    }

    /// Applies and commits in one step; on error nothing changes.
    pub fn update(&mut self, ro_id: &str, edit: &Edit) -> Result<Applied, EditError> {
        let applied = self.apply(ro_id, edit)?;
        self.commit(ro_id, applied.clone());
        Ok(applied)
    }

    /// [`Rundowns::apply`] taking the edit by value: a whole running order (roCreate,
    /// roReplace, roList) moves into the new state instead of being copied.
    pub fn apply_owned(&self, ro_id: &str, edit: Edit) -> Result<Applied, EditError> {
        match edit {
            Edit::Create(ro) => self.apply_whole(ro_id, Whole::Create, ro),
            Edit::Replace(ro) => self.apply_whole(ro_id, Whole::Replace, ro),
            Edit::List(ro) => self.apply_whole(ro_id, Whole::List, ro),
            other => self.apply(ro_id, &other),
        }
    }

    /// roCreate, roReplace or roList: the running order `ro` becomes `ro_id`.
    fn apply_whole(
        &self,
        ro_id: &str,
        kind: Whole,
        ro: RunningOrder,
    ) -> Result<Applied, EditError> {
        let held = self.by_id.get(ro_id);
        let (rundown, change, description) = match kind {
            Whole::Create => {
                let r = whole(ro_id, ro, None)?;
                let replaced_existing = held.is_some();
                let d = format!(
                    "roCreate with {} stories{}",
                    r.stories.len(),
                    if replaced_existing {
                        ", replacing the held running order"
                    } else {
                        ""
                    }
                );
                (r, Change::Created { replaced_existing }, d)
            }
            Whole::Replace => {
                let known = held.ok_or_else(|| EditError::UnknownRunningOrder {
                    ro_id: ro_id.to_string(),
                })?;
                let r = whole(ro_id, ro, Some(known))?;
                let d = format!("roReplace with {} stories", r.stories.len());
                (r, Change::Replaced, d)
            }
            Whole::List => {
                let r = whole(ro_id, ro, held)?;
                let d = format!("roList with {} stories", r.stories.len());
                let created = held.is_none();
                (r, Change::Resynced { created }, d)
            }
        };
        Ok(Applied {
            rundown: Some(rundown),
            change,
            description: crate::mos::read::clip128(&description),
        })
    }

    /// Computes the state of `ro_id` after `edit` without changing anything.
    pub fn apply(&self, ro_id: &str, edit: &Edit) -> Result<Applied, EditError> {
        let held = self.by_id.get(ro_id);
        let known = || {
            held.ok_or_else(|| EditError::UnknownRunningOrder {
                ro_id: ro_id.to_string(),
            })
        };
        let ctx = Ctx { ro_id };
        let (rundown, change, description) = match edit {
            Edit::Create(ro) => return self.apply_whole(ro_id, Whole::Create, ro.clone()),
            Edit::Replace(ro) => return self.apply_whole(ro_id, Whole::Replace, ro.clone()),
            Edit::List(ro) => return self.apply_whole(ro_id, Whole::List, ro.clone()),
            Edit::Delete => {
                known()?;
                (None, Change::Deleted, "roDelete".to_string())
            }
            Edit::ReplaceMetadata(h) => {
                let old = known()?;
                if h.id != ro_id {
                    return Err(EditError::MismatchedRoId {
                        ro_id: ro_id.to_string(),
                        header_id: h.id.clone(),
                    });
                }
                let r = Rundown {
                    header: merge_header(&old.header, h),
                    stories: old.stories.clone(),
                    ready: old.ready,
                };
                (Some(r), Change::Header, "roMetadataReplace".to_string())
            }
            Edit::ReadyToAir(air) => {
                let old = known()?;
                let r = Rundown {
                    ready: Some(*air),
                    ..old.clone()
                };
                (Some(r), Change::Readiness, format!("roReadyToAir {air}"))
            }
            Edit::StorySend(m) => {
                let old = known()?;
                let at = ctx.story_at(old, &m.story_id)?;
                let mut stories = old.stories.clone();
                stories[at] = Arc::new(RundownStory {
                    story: old.stories[at].story.clone(),
                    content: Some(m.into()),
                });
                let r = old.with_stories(stories);
                let change = Change::Body {
                    story: m.story_id.clone(),
                };
                (Some(r), change, format!("roStorySend {}", m.story_id))
            }
            Edit::InsertStories { before, stories } => {
                let old = known()?;
                check_stories(ro_id, stories)?;
                let new = stories.iter().cloned().map(bare).collect();
                let list = seq::insert(&old.stories, before.as_deref(), new)
                    .map_err(|e| ctx.story_err(e, edit))?;
                let ids = stories.iter().map(|s| s.id.clone()).collect();
                let d = format!("INSERT stories before {}", place(before.as_deref()));
                (Some(old.with_stories(list)), Change::Stories { ids }, d)
            }
            Edit::ReplaceStory { target, stories } => {
                let old = known()?;
                check_stories(ro_id, stories)?;
                let body = old.stories[ctx.story_at(old, target)?].content.clone();
                let new = stories
                    .iter()
                    .map(|s| {
                        Arc::new(RundownStory {
                            story: s.clone(),
                            content: if s.id == *target { body.clone() } else { None },
                        })
                    })
                    .collect();
                let list =
                    seq::replace(&old.stories, target, new).map_err(|e| ctx.story_err(e, edit))?;
                let mut ids = vec![target.clone()];
                ids.extend(
                    stories
                        .iter()
                        .filter(|s| s.id != *target)
                        .map(|s| s.id.clone()),
                );
                let d = format!("REPLACE story {target}");
                (Some(old.with_stories(list)), Change::Stories { ids }, d)
            }
            Edit::MoveStories { before, ids } => {
                let old = known()?;
                let list = seq::move_before(&old.stories, before.as_deref(), ids)
                    .map_err(|e| ctx.story_err(e, edit))?;
                let d = format!(
                    "MOVE stories {} before {}",
                    ids.join(" "),
                    place(before.as_deref())
                );
                let change = Change::Stories { ids: ids.clone() };
                (Some(old.with_stories(list)), change, d)
            }
            Edit::DeleteStories { ids } => {
                let old = known()?;
                let list = seq::delete(&old.stories, ids).map_err(|e| ctx.story_err(e, edit))?;
                let d = format!("DELETE stories {}", ids.join(" "));
                let change = Change::Stories { ids: ids.clone() };
                (Some(old.with_stories(list)), change, d)
            }
            Edit::SwapStories { a, b } => {
                let old = known()?;
                let list = seq::swap(&old.stories, a, b).map_err(|e| ctx.story_err(e, edit))?;
                let change = Change::Stories {
                    ids: vec![a.clone(), b.clone()],
                };
                (
                    Some(old.with_stories(list)),
                    change,
                    format!("SWAP stories {a} {b}"),
                )
            }
            Edit::InsertItems {
                story,
                before,
                items,
            } => {
                let old = known()?;
                check_items(ro_id, story, items)?;
                let r = ctx.edit_items(old, story, edit, |list| {
                    seq::insert(list, before.as_deref(), items.clone())
                })?;
                let ids = items.iter().map(|i| i.id.clone()).collect();
                let d = format!(
                    "INSERT items in story {story} before {}",
                    place(before.as_deref())
                );
                let change = Change::Items {
                    story: story.clone(),
                    ids,
                };
                (Some(r), change, d)
            }
            Edit::ReplaceItem {
                story,
                target,
                items,
            } => {
                let old = known()?;
                check_items(ro_id, story, items)?;
                let r = ctx.edit_items(old, story, edit, |list| {
                    seq::replace(list, target, items.clone())
                })?;
                let mut ids = vec![target.clone()];
                ids.extend(
                    items
                        .iter()
                        .filter(|i| i.id != *target)
                        .map(|i| i.id.clone()),
                );
                let change = Change::Items {
                    story: story.clone(),
                    ids,
                };
                (
                    Some(r),
                    change,
                    format!("REPLACE item {target} in story {story}"),
                )
            }
            Edit::MoveItems { story, before, ids } => {
                let old = known()?;
                let r = ctx.edit_items(old, story, edit, |list| {
                    seq::move_before(list, before.as_deref(), ids)
                })?;
                let d = format!(
                    "MOVE items {} in story {story} before {}",
                    ids.join(" "),
                    place(before.as_deref())
                );
                let change = Change::Items {
                    story: story.clone(),
                    ids: ids.clone(),
                };
                (Some(r), change, d)
            }
            Edit::DeleteItems { story, ids } => {
                let old = known()?;
                let r = ctx.edit_items(old, story, edit, |list| seq::delete(list, ids))?;
                let d = format!("DELETE items {} in story {story}", ids.join(" "));
                let change = Change::Items {
                    story: story.clone(),
                    ids: ids.clone(),
                };
                (Some(r), change, d)
            }
            Edit::SwapItems { story, a, b } => {
                let old = known()?;
                let r = ctx.edit_items(old, story, edit, |list| seq::swap(list, a, b))?;
                let change = Change::Items {
                    story: story.clone(),
                    ids: vec![a.clone(), b.clone()],
                };
                (
                    Some(r),
                    change,
                    format!("SWAP items {a} {b} in story {story}"),
                )
            }
        };
        Ok(Applied {
            rundown,
            change,
            description: crate::mos::read::clip128(&description),
        })
    }
}

impl Rundown {
    fn with_stories(&self, stories: Vec<Arc<RundownStory>>) -> Self {
        Self {
            header: self.header.clone(),
            stories,
            ready: self.ready,
        }
    }
}

fn bare(story: Story) -> Arc<RundownStory> {
    Arc::new(RundownStory {
        story,
        content: None,
    })
}

fn place(before: Option<&str>) -> String {
    match seq::target(before) {
        Some(b) => b.to_string(),
        None => "the end".to_string(),
    }
}

/// A whole running order (roCreate, roReplace, roList); `keep` supplies bodies and
/// readiness to carry over.
/// Which message brought a whole running order.
#[derive(Debug, Clone, Copy)]
enum Whole {
    Create,
    Replace,
    List,
}

fn whole(ro_id: &str, ro: RunningOrder, keep: Option<&Rundown>) -> Result<Rundown, EditError> {
    if ro.header.id != ro_id {
        return Err(EditError::MismatchedRoId {
            ro_id: ro_id.to_string(),
            header_id: ro.header.id.clone(),
        });
    }
    let mut r = Rundown::from_running_order(ro)?;
    if let Some(old) = keep {
        r.ready = old.ready;
        let bodies: std::collections::HashMap<&str, &StoryContent> = old
            .stories
            .iter()
            .filter_map(|s| s.content.as_ref().map(|c| (s.story.id.as_str(), c)))
            .collect();
        if !bodies.is_empty() {
            for s in &mut r.stories {
                if let Some(c) = bodies.get(s.story.id.as_str()) {
                    Arc::make_mut(s).content = Some((*c).clone());
                }
            }
        }
    }
    Ok(r)
}

/// roMetadataReplace: present fields replace, absent optional fields are kept; each
/// mosExternalMetadata block replaces the first held block with the same mosSchema or
/// is added.
fn merge_header(old: &RoHeader, new: &RoHeader) -> RoHeader {
    fn pick<T: Clone>(new: &Option<T>, old: &Option<T>) -> Option<T> {
        new.clone().or_else(|| old.clone())
    }
    let mut metadata: Vec<MosExternalMetadata> = old.metadata.clone();
    for block in &new.metadata {
        match metadata.iter_mut().find(|m| m.schema == block.schema) {
            Some(m) => *m = block.clone(),
            None => metadata.push(block.clone()),
        }
    }
    RoHeader {
        id: old.id.clone(),
        slug: pick(&new.slug, &old.slug),
        channel: pick(&new.channel, &old.channel),
        ed_start: pick(&new.ed_start, &old.ed_start),
        ed_dur: pick(&new.ed_dur, &old.ed_dur),
        trigger: pick(&new.trigger, &old.trigger),
        macro_in: pick(&new.macro_in, &old.macro_in),
        macro_out: pick(&new.macro_out, &old.macro_out),
        metadata,
    }
}

/// Error context for one edit of one running order.
struct Ctx<'a> {
    ro_id: &'a str,
}

impl Ctx<'_> {
    fn story_at(&self, r: &Rundown, story_id: &str) -> Result<usize, EditError> {
        r.position(story_id).ok_or_else(|| EditError::UnknownStory {
            ro_id: self.ro_id.to_string(),
            story_id: story_id.to_string(),
        })
    }

    fn story_err(&self, e: SeqError, edit: &Edit) -> EditError {
        let ro_id = self.ro_id.to_string();
        match e {
            SeqError::Unknown(story_id) => EditError::UnknownStory { ro_id, story_id },
            SeqError::Duplicate(story_id) => EditError::DuplicateStory { ro_id, story_id },
            e => self.common_err(e, edit),
        }
    }

    fn item_err(&self, e: SeqError, story_id: &str, edit: &Edit) -> EditError {
        let ro_id = self.ro_id.to_string();
        let story_id = story_id.to_string();
        match e {
            SeqError::Unknown(item_id) => EditError::UnknownItem {
                ro_id,
                story_id,
                item_id,
            },
            SeqError::Duplicate(item_id) => EditError::DuplicateItem {
                ro_id,
                story_id,
                item_id,
            },
            e => self.common_err(e, edit),
        }
    }

    fn common_err(&self, e: SeqError, edit: &Edit) -> EditError {
        let ro_id = self.ro_id.to_string();
        match e {
            SeqError::Empty => EditError::EmptySource {
                ro_id,
                operation: edit.name().to_string(),
            },
            SeqError::Repeated(id) => EditError::RepeatedId { ro_id, id },
            SeqError::TargetInSource(target) => EditError::TargetInSource { ro_id, target },
            SeqError::SwapSame(id) => EditError::SwapSameId { ro_id, id },
            // Handled by the callers; kept total so no input can panic.
            SeqError::Unknown(id) | SeqError::Duplicate(id) => EditError::RepeatedId { ro_id, id },
        }
    }

    /// Applies `f` to the items of `story`: one story is copied, the others are shared.
    fn edit_items(
        &self,
        old: &Rundown,
        story: &str,
        edit: &Edit,
        f: impl FnOnce(&[Item]) -> Result<Vec<Item>, SeqError>,
    ) -> Result<Rundown, EditError> {
        let at = self.story_at(old, story)?;
        let held = &old.stories[at];
        let items = f(&held.story.items).map_err(|e| self.item_err(e, story, edit))?;
        let mut stories = old.stories.clone();
        stories[at] = Arc::new(RundownStory {
            story: Story {
                id: held.story.id.clone(),
                slug: held.story.slug.clone(),
                number: held.story.number.clone(),
                metadata: held.story.metadata.clone(),
                items,
            },
            content: held.content.clone(),
        });
        Ok(old.with_stories(stories))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mos::messages::RoStorySend;
    use crate::mos::structures::{AirStatus, BodyElement, MosScope, RawXml, StoryBody};

    fn item(id: &str) -> Item {
        Item {
            id: id.into(),
            object_id: format!("O{id}"),
            mos_id: "gfx.mos".into(),
            ..Item::default()
        }
    }

    fn story(id: &str, items: &str) -> Story {
        Story {
            id: id.into(),
            slug: Some(format!("slug {id}")),
            items: items.split_whitespace().map(item).collect(),
            ..Story::default()
        }
    }

    fn ro(id: &str, stories: &[(&str, &str)]) -> RunningOrder {
        RunningOrder {
            header: RoHeader {
                id: id.into(),
                slug: Some("6PM".into()),
                ..RoHeader::default()
            },
            stories: stories.iter().map(|(s, i)| story(s, i)).collect(),
        }
    }

    /// Taking a whole running order by value gives exactly what taking it by reference
    /// gives: the same state, change, description and errors.
    #[test]
    fn apply_owned_matches_apply_for_whole_running_orders() {
        let mut rs = Rundowns::new();
        let edits = [
            Edit::Replace(ro("R", &[("1", "a")])),
            Edit::Create(ro("X", &[])),
            Edit::Create(ro("R", &[("1", "a b"), ("2", "")])),
            Edit::Create(ro("R", &[("1", "a a")])),
            Edit::Replace(ro("R", &[("2", "c"), ("1", "a")])),
            Edit::List(ro("R", &[("3", "")])),
            Edit::List(ro("Q", &[("1", "")])),
            Edit::Create(ro("R", &[("1", "")])),
        ];
        for edit in edits {
            let id = match &edit {
                Edit::List(r) if r.header.id == "Q" => "Q",
                _ => "R",
            };
            let by_ref = rs.apply(id, &edit);
            let by_value = rs.apply_owned(id, edit);
            assert_eq!(by_ref, by_value);
            if let Ok(applied) = by_value {
                rs.commit(id, applied);
            }
        }
        assert_eq!(rs.len(), 2);
    }

    /// RO1 with stories 1..6, story 1 holding items 1..6.
    fn six() -> Rundowns {
        let mut rs = Rundowns::new();
        let ro = ro(
            "RO1",
            &[
                ("1", "1 2 3 4 5 6"),
                ("2", ""),
                ("3", "a"),
                ("4", ""),
                ("5", ""),
                ("6", ""),
            ],
        );
        rs.update("RO1", &Edit::Create(ro)).unwrap();
        rs
    }

    fn order(rs: &Rundowns) -> String {
        let r = rs.get("RO1").unwrap();
        r.stories()
            .map(|s| s.story.id.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn items_of(rs: &Rundowns, story: &str) -> String {
        let r = rs.get("RO1").unwrap();
        r.story(story)
            .unwrap()
            .story
            .items
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn ids(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn send_body(story: &str, text: &str) -> Edit {
        Edit::StorySend(RoStorySend {
            ro_id: "RO1".into(),
            story_id: story.into(),
            slug: None,
            number: None,
            body: StoryBody {
                read_first_mem_as_body: None,
                elements: vec![BodyElement::Paragraph(RawXml(text.into()))],
            },
            metadata: vec![],
        })
    }

    fn body_text(rs: &Rundowns, story: &str) -> Option<String> {
        let c = rs.get("RO1")?.body(story)?;
        match c.body.elements.first() {
            Some(BodyElement::Paragraph(p)) => Some(p.as_str().to_string()),
            _ => None,
        }
    }

    type Case = (Edit, Result<&'static str, EditError>);

    fn unknown_story(id: &str) -> EditError {
        EditError::UnknownStory {
            ro_id: "RO1".into(),
            story_id: id.into(),
        }
    }

    fn run_story_cases(cases: Vec<Case>) {
        for (edit, want) in cases {
            let mut rs = six();
            let before = rs.clone();
            let got = rs.update("RO1", &edit).map(|_| order(&rs));
            assert_eq!(got, want.clone().map(str::to_string), "{edit:?}");
            if want.is_err() {
                assert_eq!(rs, before, "refused {edit:?} changed the state");
            }
        }
    }

    #[test]
    fn story_operations_follow_the_reference_table() {
        let e = |s: &str| Err(unknown_story(s));
        run_story_cases(vec![
            (
                Edit::InsertStories {
                    before: Some("3".into()),
                    stories: vec![story("a", ""), story("b", "")],
                },
                Ok("1 2 a b 3 4 5 6"),
            ),
            (
                Edit::InsertStories {
                    before: None,
                    stories: vec![story("a", "")],
                },
                Ok("1 2 3 4 5 6 a"),
            ),
            (
                Edit::InsertStories {
                    before: Some(String::new()),
                    stories: vec![story("a", "")],
                },
                Ok("1 2 3 4 5 6 a"),
            ),
            (
                Edit::InsertStories {
                    before: Some("9".into()),
                    stories: vec![story("a", "")],
                },
                e("9"),
            ),
            (
                Edit::ReplaceStory {
                    target: "2".into(),
                    stories: vec![story("a", ""), story("b", "")],
                },
                Ok("1 a b 3 4 5 6"),
            ),
            (
                Edit::ReplaceStory {
                    target: "9".into(),
                    stories: vec![story("a", "")],
                },
                e("9"),
            ),
            (
                Edit::MoveStories {
                    before: Some("4".into()),
                    ids: ids("2 3 5 6 1"),
                },
                Ok("2 3 5 6 1 4"),
            ),
            (
                Edit::MoveStories {
                    before: None,
                    ids: ids("2"),
                },
                Ok("1 3 4 5 6 2"),
            ),
            (
                Edit::MoveStories {
                    before: Some("1".into()),
                    ids: ids("9"),
                },
                e("9"),
            ),
            (Edit::DeleteStories { ids: ids("2 5") }, Ok("1 3 4 6")),
            (Edit::DeleteStories { ids: ids("2 9") }, e("9")),
            (
                Edit::SwapStories {
                    a: "1".into(),
                    b: "6".into(),
                },
                Ok("6 2 3 4 5 1"),
            ),
            (
                Edit::SwapStories {
                    a: "1".into(),
                    b: "9".into(),
                },
                e("9"),
            ),
        ]);
    }

    #[test]
    fn story_edits_refuse_malformed_requests() {
        let ro_id = || "RO1".to_string();
        run_story_cases(vec![
            (
                Edit::InsertStories {
                    before: None,
                    stories: vec![story("3", "")],
                },
                Err(EditError::DuplicateStory {
                    ro_id: ro_id(),
                    story_id: "3".into(),
                }),
            ),
            (
                Edit::InsertStories {
                    before: None,
                    stories: vec![story("a", ""), story("a", "")],
                },
                Err(EditError::DuplicateStory {
                    ro_id: ro_id(),
                    story_id: "a".into(),
                }),
            ),
            (
                Edit::InsertStories {
                    before: None,
                    stories: vec![story("a", "x x")],
                },
                Err(EditError::DuplicateItem {
                    ro_id: ro_id(),
                    story_id: "a".into(),
                    item_id: "x".into(),
                }),
            ),
            (
                Edit::InsertStories {
                    before: None,
                    stories: vec![],
                },
                Err(EditError::EmptySource {
                    ro_id: ro_id(),
                    operation: "INSERT stories".into(),
                }),
            ),
            (
                Edit::ReplaceStory {
                    target: "2".into(),
                    stories: vec![story("3", "")],
                },
                Err(EditError::DuplicateStory {
                    ro_id: ro_id(),
                    story_id: "3".into(),
                }),
            ),
            (
                Edit::ReplaceStory {
                    target: "2".into(),
                    stories: vec![],
                },
                Err(EditError::EmptySource {
                    ro_id: ro_id(),
                    operation: "REPLACE story".into(),
                }),
            ),
            (
                Edit::MoveStories {
                    before: Some("3".into()),
                    ids: ids("2 3"),
                },
                Err(EditError::TargetInSource {
                    ro_id: ro_id(),
                    target: "3".into(),
                }),
            ),
            (
                Edit::MoveStories {
                    before: None,
                    ids: ids("2 2"),
                },
                Err(EditError::RepeatedId {
                    ro_id: ro_id(),
                    id: "2".into(),
                }),
            ),
            (
                Edit::MoveStories {
                    before: None,
                    ids: vec![],
                },
                Err(EditError::EmptySource {
                    ro_id: ro_id(),
                    operation: "MOVE stories".into(),
                }),
            ),
            (
                Edit::DeleteStories { ids: ids("4 4") },
                Err(EditError::RepeatedId {
                    ro_id: ro_id(),
                    id: "4".into(),
                }),
            ),
            (
                Edit::SwapStories {
                    a: "2".into(),
                    b: "2".into(),
                },
                Err(EditError::SwapSameId {
                    ro_id: ro_id(),
                    id: "2".into(),
                }),
            ),
        ]);
    }

    #[test]
    fn item_operations_follow_the_reference_table() {
        let unknown = |i: &str| {
            Err(EditError::UnknownItem {
                ro_id: "RO1".into(),
                story_id: "1".into(),
                item_id: i.into(),
            })
        };
        let s = || "1".to_string();
        let cases: Vec<Case> = vec![
            (
                Edit::InsertItems {
                    story: s(),
                    before: Some("3".into()),
                    items: vec![item("a"), item("b")],
                },
                Ok("1 2 a b 3 4 5 6"),
            ),
            (
                Edit::InsertItems {
                    story: s(),
                    before: None,
                    items: vec![item("a")],
                },
                Ok("1 2 3 4 5 6 a"),
            ),
            (
                Edit::InsertItems {
                    story: s(),
                    before: Some(String::new()),
                    items: vec![item("a")],
                },
                Ok("1 2 3 4 5 6 a"),
            ),
            (
                Edit::InsertItems {
                    story: s(),
                    before: Some("9".into()),
                    items: vec![item("a")],
                },
                unknown("9"),
            ),
            (
                Edit::InsertItems {
                    story: s(),
                    before: None,
                    items: vec![item("2")],
                },
                Err(EditError::DuplicateItem {
                    ro_id: "RO1".into(),
                    story_id: "1".into(),
                    item_id: "2".into(),
                }),
            ),
            (
                Edit::ReplaceItem {
                    story: s(),
                    target: "2".into(),
                    items: vec![item("2")],
                },
                Ok("1 2 3 4 5 6"),
            ),
            (
                Edit::ReplaceItem {
                    story: s(),
                    target: "2".into(),
                    items: vec![item("a"), item("b")],
                },
                Ok("1 a b 3 4 5 6"),
            ),
            (
                Edit::ReplaceItem {
                    story: s(),
                    target: "9".into(),
                    items: vec![item("a")],
                },
                unknown("9"),
            ),
            (
                Edit::MoveItems {
                    story: s(),
                    before: Some("4".into()),
                    ids: ids("2 3 5 6 1"),
                },
                Ok("2 3 5 6 1 4"),
            ),
            (
                Edit::MoveItems {
                    story: s(),
                    before: None,
                    ids: ids("1"),
                },
                Ok("2 3 4 5 6 1"),
            ),
            (
                Edit::MoveItems {
                    story: s(),
                    before: Some("2".into()),
                    ids: ids("2"),
                },
                Err(EditError::TargetInSource {
                    ro_id: "RO1".into(),
                    target: "2".into(),
                }),
            ),
            (
                Edit::DeleteItems {
                    story: s(),
                    ids: ids("6 1"),
                },
                Ok("2 3 4 5"),
            ),
            (
                Edit::DeleteItems {
                    story: s(),
                    ids: ids("9"),
                },
                unknown("9"),
            ),
            (
                Edit::SwapItems {
                    story: s(),
                    a: "1".into(),
                    b: "2".into(),
                },
                Ok("2 1 3 4 5 6"),
            ),
            (
                Edit::SwapItems {
                    story: s(),
                    a: "1".into(),
                    b: "1".into(),
                },
                Err(EditError::SwapSameId {
                    ro_id: "RO1".into(),
                    id: "1".into(),
                }),
            ),
            (
                Edit::DeleteItems {
                    story: "9".into(),
                    ids: ids("1"),
                },
                Err(unknown_story("9")),
            ),
        ];
        for (edit, want) in cases {
            let mut rs = six();
            let before = rs.clone();
            let got = rs.update("RO1", &edit).map(|_| items_of(&rs, "1"));
            assert_eq!(got, want.clone().map(str::to_string), "{edit:?}");
            if want.is_err() {
                assert_eq!(rs, before, "refused {edit:?} changed the state");
            } else {
                assert_eq!(order(&rs), "1 2 3 4 5 6", "{edit:?} moved stories");
            }
        }
    }

    #[test]
    fn bodies_follow_stories_through_move_swap_and_self_replace() {
        let mut rs = six();
        rs.update("RO1", &send_body("2", "two")).unwrap();
        rs.update("RO1", &send_body("5", "five")).unwrap();
        rs.update(
            "RO1",
            &Edit::MoveStories {
                before: Some("1".into()),
                ids: ids("5"),
            },
        )
        .unwrap();
        assert_eq!(body_text(&rs, "5").as_deref(), Some("five"));
        rs.update(
            "RO1",
            &Edit::SwapStories {
                a: "2".into(),
                b: "5".into(),
            },
        )
        .unwrap();
        assert_eq!(order(&rs), "2 1 5 3 4 6");
        assert_eq!(body_text(&rs, "2").as_deref(), Some("two"));
        let edited = Story {
            slug: Some("edited".into()),
            ..story("2", "x")
        };
        rs.update(
            "RO1",
            &Edit::ReplaceStory {
                target: "2".into(),
                stories: vec![edited.clone()],
            },
        )
        .unwrap();
        let r = rs.get("RO1").unwrap();
        assert_eq!(r.story("2").unwrap().story, edited);
        assert_eq!(body_text(&rs, "2").as_deref(), Some("two"));
        // Item edits keep the body too.
        rs.update(
            "RO1",
            &Edit::DeleteItems {
                story: "2".into(),
                ids: ids("x"),
            },
        )
        .unwrap();
        assert_eq!(body_text(&rs, "2").as_deref(), Some("two"));
    }

    #[test]
    fn bodies_are_dropped_with_deleted_or_replaced_away_stories() {
        let mut rs = six();
        rs.update("RO1", &send_body("2", "two")).unwrap();
        rs.update("RO1", &send_body("3", "three")).unwrap();
        rs.update("RO1", &Edit::DeleteStories { ids: ids("2") })
            .unwrap();
        rs.update(
            "RO1",
            &Edit::InsertStories {
                before: None,
                stories: vec![story("2", "")],
            },
        )
        .unwrap();
        assert_eq!(body_text(&rs, "2"), None);
        rs.update(
            "RO1",
            &Edit::ReplaceStory {
                target: "3".into(),
                stories: vec![story("7", "")],
            },
        )
        .unwrap();
        assert_eq!(body_text(&rs, "7"), None);
        assert!(rs.get("RO1").unwrap().story("3").is_none());
    }

    #[test]
    fn replace_and_list_keep_bodies_of_surviving_stories_and_readiness() {
        let mut rs = six();
        rs.update("RO1", &send_body("2", "two")).unwrap();
        rs.update("RO1", &send_body("3", "three")).unwrap();
        rs.update("RO1", &Edit::ReadyToAir(AirStatus::Ready))
            .unwrap();
        let a = rs
            .update("RO1", &Edit::Replace(ro("RO1", &[("3", ""), ("8", "")])))
            .unwrap();
        assert_eq!(a.change(), &Change::Replaced);
        assert_eq!(order(&rs), "3 8");
        assert_eq!(body_text(&rs, "3").as_deref(), Some("three"));
        assert_eq!(
            rs.get("RO1").unwrap().ready_to_air(),
            Some(AirStatus::Ready)
        );
        rs.update("RO1", &Edit::List(ro("RO1", &[("8", ""), ("3", "")])))
            .unwrap();
        assert_eq!(order(&rs), "8 3");
        assert_eq!(body_text(&rs, "3").as_deref(), Some("three"));
        // roCreate starts afresh.
        let a = rs
            .update("RO1", &Edit::Create(ro("RO1", &[("3", "")])))
            .unwrap();
        assert_eq!(
            a.change(),
            &Change::Created {
                replaced_existing: true
            }
        );
        assert_eq!(body_text(&rs, "3"), None);
        assert_eq!(rs.get("RO1").unwrap().ready_to_air(), None);
    }

    #[test]
    fn list_creates_an_unknown_running_order_but_replace_refuses_it() {
        let mut rs = Rundowns::new();
        let e = rs
            .update("RO2", &Edit::Replace(ro("RO2", &[("1", "")])))
            .unwrap_err();
        assert!(e.needs_resync());
        let a = rs
            .update("RO2", &Edit::List(ro("RO2", &[("1", "")])))
            .unwrap();
        assert_eq!(a.change(), &Change::Resynced { created: true });
        assert_eq!(rs.len(), 1);
    }

    #[test]
    fn running_order_edits_on_an_unknown_ro_id_ask_for_resync() {
        let rs = six();
        let edits = [
            Edit::Delete,
            Edit::ReadyToAir(AirStatus::NotReady),
            Edit::ReplaceMetadata(RoHeader {
                id: "RO9".into(),
                ..RoHeader::default()
            }),
            Edit::DeleteStories { ids: ids("1") },
            Edit::InsertItems {
                story: "1".into(),
                before: None,
                items: vec![item("z")],
            },
        ];
        for edit in edits {
            let e = rs.apply("RO9", &edit).unwrap_err();
            assert_eq!(
                e,
                EditError::UnknownRunningOrder {
                    ro_id: "RO9".into()
                }
            );
            assert!(e.needs_resync());
            assert_eq!(e.reason(), "Unknown roID RO9");
        }
    }

    #[test]
    fn story_send_for_an_unknown_story_asks_for_resync() {
        let rs = six();
        let e = rs.apply("RO1", &send_body("S9", "x")).unwrap_err();
        assert_eq!(e.reason(), "Unknown storyID S9 in running order RO1");
        assert!(e.needs_resync());
    }

    #[test]
    fn create_refuses_repeated_story_and_item_ids() {
        let rs = Rundowns::new();
        let e = rs
            .apply("R", &Edit::Create(ro("R", &[("1", ""), ("1", "")])))
            .unwrap_err();
        assert!(matches!(e, EditError::DuplicateStory { .. }), "{e:?}");
        let e = rs
            .apply("R", &Edit::Create(ro("R", &[("1", "a b a")])))
            .unwrap_err();
        assert!(matches!(e, EditError::DuplicateItem { .. }), "{e:?}");
        let e = rs.apply("R", &Edit::Create(ro("X", &[]))).unwrap_err();
        assert!(matches!(e, EditError::MismatchedRoId { .. }), "{e:?}");
    }

    fn mem(schema: &str, payload: &str) -> MosExternalMetadata {
        MosExternalMetadata {
            scope: Some(MosScope::Playlist),
            schema: schema.into(),
            payload: RawXml(payload.into()),
        }
    }

    #[test]
    fn metadata_replace_merges_fields_and_blocks_by_schema() {
        let mut rs = Rundowns::new();
        let mut created = ro("RO1", &[("1", "")]);
        created.header.channel = Some("A".into());
        created.header.trigger = Some("MANUAL".into());
        created.header.metadata = vec![mem("s1", "old1"), mem("s2", "old2"), mem("s1", "dup")];
        rs.update("RO1", &Edit::Create(created)).unwrap();
        let a = rs
            .update(
                "RO1",
                &Edit::ReplaceMetadata(RoHeader {
                    id: "RO1".into(),
                    slug: Some("6PM LATE".into()),
                    channel: Some("B".into()),
                    metadata: vec![mem("s1", "new1")],
                    ..RoHeader::default()
                }),
            )
            .unwrap();
        assert_eq!(a.change(), &Change::Header);
        let h = rs.get("RO1").unwrap().header();
        assert_eq!(h.slug.as_deref(), Some("6PM LATE"));
        assert_eq!(h.channel.as_deref(), Some("B"));
        assert_eq!(h.trigger.as_deref(), Some("MANUAL"));
        assert_eq!(
            h.metadata,
            vec![mem("s1", "new1"), mem("s2", "old2"), mem("s1", "dup")]
        );
        rs.update(
            "RO1",
            &Edit::ReplaceMetadata(RoHeader {
                id: "RO1".into(),
                metadata: vec![mem("s3", "added")],
                ..RoHeader::default()
            }),
        )
        .unwrap();
        let h = rs.get("RO1").unwrap().header();
        assert_eq!(h.metadata.len(), 4);
        assert_eq!(h.slug.as_deref(), Some("6PM LATE"));
        assert_eq!(order(&rs), "1");
    }

    #[test]
    fn delete_removes_the_running_order() {
        let mut rs = six();
        let a = rs.apply("RO1", &Edit::Delete).unwrap();
        assert!(a.rundown().is_none());
        assert_eq!(rs.len(), 1, "apply alone changes nothing");
        rs.commit("RO1", a);
        assert!(rs.is_empty());
    }

    #[test]
    fn to_running_order_returns_the_ncs_order() {
        let mut rs = six();
        rs.update(
            "RO1",
            &Edit::MoveStories {
                before: Some("1".into()),
                ids: ids("6 5"),
            },
        )
        .unwrap();
        let out = rs.get("RO1").unwrap().to_running_order();
        let got: Vec<_> = out.stories.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(got, ["6", "5", "1", "2", "3", "4"]);
        assert_eq!(out.stories[2], story("1", "1 2 3 4 5 6"));
        assert_eq!(out.header.id, "RO1");
    }

    #[test]
    fn item_edit_shares_untouched_stories_with_the_previous_state() {
        let mut rs = Rundowns::new();
        let stories: Vec<(String, String)> = (0..2000)
            .map(|i| (format!("S{i}"), "1 2".to_string()))
            .collect();
        let refs: Vec<(&str, &str)> = stories
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        rs.update("RO1", &Edit::Create(ro("RO1", &refs))).unwrap();
        let a = rs
            .apply(
                "RO1",
                &Edit::InsertItems {
                    story: "S1999".into(),
                    before: None,
                    items: vec![item("3")],
                },
            )
            .unwrap();
        let old = rs.get("RO1").unwrap();
        let new = a.rundown().unwrap();
        assert!(Arc::ptr_eq(&old.stories[0], &new.stories[0]));
        assert!(!Arc::ptr_eq(&old.stories[1999], &new.stories[1999]));
        assert_eq!(new.story("S1999").unwrap().story.items.len(), 3);
    }
}
