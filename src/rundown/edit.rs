//! One edit vocabulary for every running-order message: roCreate, roReplace,
//! roMetadataReplace, roDelete, roReadyToAir, roElementAction, the eleven legacy
//! roStory*/roItem* messages, roStorySend and roList.

use super::error::EditError;
use crate::mos::messages::{
    ElementOperation, ElementSource, ElementTarget, Message, RoElementAction, RoStorySend,
};
use crate::mos::structures::{AirStatus, Item, RoHeader, RunningOrder, Story};

/// One change to one running order. Targets given as `None` or blank mean "the end".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// roCreate: a new running order (replaces one with the same roID).
    Create(RunningOrder),
    /// roReplace: the whole running order again.
    Replace(RunningOrder),
    /// roMetadataReplace: header fields merged into the held header.
    ReplaceMetadata(RoHeader),
    /// roDelete.
    Delete,
    /// roReadyToAir.
    ReadyToAir(AirStatus),
    /// Stories inserted before `before` (None or blank: appended).
    InsertStories {
        /// The storyID to insert before.
        before: Option<String>,
        /// The new stories, in order.
        stories: Vec<Story>,
    },
    /// `target` replaced by `stories` (which may include `target` itself).
    ReplaceStory {
        /// The storyID replaced.
        target: String,
        /// The stories put in its place.
        stories: Vec<Story>,
    },
    /// Stories moved, in the given order, to just before `before` (None or blank: the end).
    MoveStories {
        /// The storyID to move before.
        before: Option<String>,
        /// The storyIDs moved.
        ids: Vec<String>,
    },
    /// Stories removed with their items and bodies.
    DeleteStories {
        /// The storyIDs removed.
        ids: Vec<String>,
    },
    /// Two stories exchange places.
    SwapStories {
        /// One storyID.
        a: String,
        /// The other.
        b: String,
    },
    /// Items inserted into `story` before `before` (None or blank: end of the story).
    InsertItems {
        /// The storyID.
        story: String,
        /// The itemID to insert before.
        before: Option<String>,
        /// The new items, in order.
        items: Vec<Item>,
    },
    /// Item `target` of `story` replaced by `items`.
    ReplaceItem {
        /// The storyID.
        story: String,
        /// The itemID replaced.
        target: String,
        /// The items put in its place.
        items: Vec<Item>,
    },
    /// Items of `story` moved, in order, to just before `before` (None or blank: the end).
    MoveItems {
        /// The storyID.
        story: String,
        /// The itemID to move before.
        before: Option<String>,
        /// The itemIDs moved.
        ids: Vec<String>,
    },
    /// Items removed from `story`.
    DeleteItems {
        /// The storyID.
        story: String,
        /// The itemIDs removed.
        ids: Vec<String>,
    },
    /// Two items of `story` exchange places.
    SwapItems {
        /// The storyID.
        story: String,
        /// One itemID.
        a: String,
        /// The other.
        b: String,
    },
    /// roStorySend: the body of one story.
    StorySend(RoStorySend),
    /// roList (in reply to our roReq): the NCS's copy replaces ours, or creates it.
    List(RunningOrder),
}

impl Edit {
    /// Refuses an edit that brings in an empty ID: a roCreate of an empty roID, or a
    /// roCreate, roReplace or inserted/replacing story or item whose storyID or itemID is
    /// empty. IDs an edit only refers to are checked against the running order when it is
    /// applied (an empty one is unknown there), so running orders stored by earlier builds
    /// with such IDs can still be deleted or replaced; a roList is the NCS's own copy,
    /// fetched by the gateway, and is taken as it is.
    pub fn check_ids(&self, ro_id: &str) -> Result<(), EditError> {
        let empty = |field: &str| EditError::EmptyId {
            ro_id: ro_id.to_string(),
            field: field.to_string(),
        };
        if matches!(self, Self::Create(_)) && ro_id.trim().is_empty() {
            return Err(empty("roID"));
        }
        let items_ok = |items: &[Item]| {
            if items.iter().any(|i| i.id.trim().is_empty()) {
                Err(empty("itemID"))
            } else {
                Ok(())
            }
        };
        let stories_ok = |stories: &[Story]| {
            if stories.iter().any(|s| s.id.trim().is_empty()) {
                return Err(empty("storyID"));
            }
            stories.iter().try_for_each(|s| items_ok(&s.items))
        };
        match self {
            Self::Create(ro) | Self::Replace(ro) => stories_ok(&ro.stories),
            Self::InsertStories { stories, .. } | Self::ReplaceStory { stories, .. } => {
                stories_ok(stories)
            }
            Self::InsertItems { items, .. } | Self::ReplaceItem { items, .. } => items_ok(items),
            _ => Ok(()),
        }
    }

    /// A short name for logs and descriptions (`INSERT stories`, `roCreate`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Create(_) => "roCreate",
            Self::Replace(_) => "roReplace",
            Self::ReplaceMetadata(_) => "roMetadataReplace",
            Self::Delete => "roDelete",
            Self::ReadyToAir(_) => "roReadyToAir",
            Self::InsertStories { .. } => "INSERT stories",
            Self::ReplaceStory { .. } => "REPLACE story",
            Self::MoveStories { .. } => "MOVE stories",
            Self::DeleteStories { .. } => "DELETE stories",
            Self::SwapStories { .. } => "SWAP stories",
            Self::InsertItems { .. } => "INSERT items",
            Self::ReplaceItem { .. } => "REPLACE item",
            Self::MoveItems { .. } => "MOVE items",
            Self::DeleteItems { .. } => "DELETE items",
            Self::SwapItems { .. } => "SWAP items",
            Self::StorySend(_) => "roStorySend",
            Self::List(_) => "roList",
        }
    }
}

/// [`edit_from_message`] taking the message by value: the whole-running-order messages
/// (roCreate, roReplace, roList) move their stories into the edit instead of copying them.
pub fn into_edit(msg: Message) -> Option<Result<(String, Edit), EditError>> {
    use crate::mos::messages::{RoCreate, RoList, RoReplace};
    match msg {
        Message::RoCreate(RoCreate(ro)) => Some(Ok((ro.header.id.clone(), Edit::Create(ro)))),
        Message::RoReplace(RoReplace(ro)) => Some(Ok((ro.header.id.clone(), Edit::Replace(ro)))),
        Message::RoList(RoList(ro)) => Some(Ok((ro.header.id.clone(), Edit::List(ro)))),
        other => edit_from_message(&other),
    }
}

/// The running-order edit a message asks for, with its roID; `None` for messages that
/// do not edit a running order (heartbeat, roReq, roAck, ...). `Some(Err)` when the
/// message is a running-order edit that cannot be made sense of (SWAP with three IDs,
/// item operation without a target storyID, duplicates in a *MoveMultiple, ...).
pub fn edit_from_message(msg: &Message) -> Option<Result<(String, Edit), EditError>> {
    let (ro_id, edit) = match msg {
        Message::RoCreate(m) => (&m.0.header.id, Ok(Edit::Create(m.0.clone()))),
        Message::RoReplace(m) => (&m.0.header.id, Ok(Edit::Replace(m.0.clone()))),
        Message::RoList(m) => (&m.0.header.id, Ok(Edit::List(m.0.clone()))),
        Message::RoMetadataReplace(m) => {
            (&m.header.id, Ok(Edit::ReplaceMetadata(m.header.clone())))
        }
        Message::RoDelete(m) => (&m.ro_id, Ok(Edit::Delete)),
        Message::RoReadyToAir(m) => (&m.ro_id, Ok(Edit::ReadyToAir(m.air))),
        Message::RoStorySend(m) => (&m.ro_id, Ok(Edit::StorySend(m.clone()))),
        Message::RoElementAction(m) => (&m.ro_id, element_action(m)),
        Message::RoStoryAppend(m) => (
            &m.ro_id,
            Ok(Edit::InsertStories {
                before: None,
                stories: m.stories.clone(),
            }),
        ),
        Message::RoStoryInsert(m) => (
            &m.ro_id,
            Ok(Edit::InsertStories {
                before: non_blank(&m.story_id),
                stories: m.stories.clone(),
            }),
        ),
        Message::RoStoryReplace(m) => (
            &m.ro_id,
            required(&m.ro_id, "roStoryReplace", "storyID", &m.story_id).map(|target| {
                Edit::ReplaceStory {
                    target,
                    stories: m.stories.clone(),
                }
            }),
        ),
        Message::RoStoryMove(m) => (
            &m.ro_id,
            required(&m.ro_id, "roStoryMove", "storyID", &m.story_id).map(|id| Edit::MoveStories {
                before: non_blank(&m.before),
                ids: vec![id],
            }),
        ),
        Message::RoStorySwap(m) => (
            &m.ro_id,
            Ok(Edit::SwapStories {
                a: m.first.clone(),
                b: m.second.clone(),
            }),
        ),
        Message::RoStoryDelete(m) => (
            &m.ro_id,
            Ok(Edit::DeleteStories {
                ids: m.story_ids.clone(),
            }),
        ),
        Message::RoStoryMoveMultiple(m) => (
            &m.ro_id,
            move_multiple(&m.ro_id, "roStoryMoveMultiple", &m.story_ids)
                .map(|(before, ids)| Edit::MoveStories { before, ids }),
        ),
        Message::RoItemInsert(m) => (
            &m.ro_id,
            required(&m.ro_id, "roItemInsert", "storyID", &m.story_id).map(|story| {
                Edit::InsertItems {
                    story,
                    before: non_blank(&m.item_id),
                    items: m.items.clone(),
                }
            }),
        ),
        Message::RoItemReplace(m) => (
            &m.ro_id,
            required(&m.ro_id, "roItemReplace", "storyID", &m.story_id).and_then(|story| {
                required(&m.ro_id, "roItemReplace", "itemID", &m.item_id).map(|target| {
                    Edit::ReplaceItem {
                        story,
                        target,
                        items: m.items.clone(),
                    }
                })
            }),
        ),
        Message::RoItemMoveMultiple(m) => (
            &m.ro_id,
            required(&m.ro_id, "roItemMoveMultiple", "storyID", &m.story_id).and_then(|story| {
                move_multiple(&m.ro_id, "roItemMoveMultiple", &m.item_ids)
                    .map(|(before, ids)| Edit::MoveItems { story, before, ids })
            }),
        ),
        Message::RoItemDelete(m) => (
            &m.ro_id,
            required(&m.ro_id, "roItemDelete", "storyID", &m.story_id).map(|story| {
                Edit::DeleteItems {
                    story,
                    ids: m.item_ids.clone(),
                }
            }),
        ),
        _ => return None,
    };
    Some(edit.map(|e| (ro_id.clone(), e)))
}

fn non_blank(id: &str) -> Option<String> {
    (!id.is_empty()).then(|| id.to_string())
}

fn required(ro_id: &str, operation: &str, field: &str, id: &str) -> Result<String, EditError> {
    if id.is_empty() {
        Err(EditError::MissingTarget {
            ro_id: ro_id.to_string(),
            operation: operation.to_string(),
            field: field.to_string(),
        })
    } else {
        Ok(id.to_string())
    }
}

/// The *MoveMultiple convention: the last ID is the target (blank: the end), the others
/// move in the given order; a single ID moves to the end; no ID may appear twice.
fn move_multiple(
    ro_id: &str,
    operation: &str,
    ids: &[String],
) -> Result<(Option<String>, Vec<String>), EditError> {
    if let Some(id) =
        super::seq::first_repeat(ids.iter().map(String::as_str).filter(|i| !i.is_empty()))
    {
        return Err(EditError::RepeatedId {
            ro_id: ro_id.to_string(),
            id: id.to_string(),
        });
    }
    match ids {
        [] => Err(EditError::EmptySource {
            ro_id: ro_id.to_string(),
            operation: operation.to_string(),
        }),
        [only] => Ok((None, vec![only.clone()])),
        [moved @ .., last] => Ok((non_blank(last), moved.to_vec())),
    }
}

fn source_kind(source: &ElementSource) -> &'static str {
    match source {
        ElementSource::Stories(_) => "story",
        ElementSource::Items(_) => "item",
        ElementSource::StoryIds(_) => "storyID",
        ElementSource::ItemIds(_) => "itemID",
    }
}

/// Classifies a roElementAction by operation and kind of source elements.
fn element_action(m: &RoElementAction) -> Result<Edit, EditError> {
    let ro = m.ro_id.as_str();
    let op = m.operation.as_wire();
    let target_story = m.target.as_ref().map(|t| t.story_id.as_str()).unwrap_or("");
    let target_item = m
        .target
        .as_ref()
        .and_then(|t: &ElementTarget| t.item_id.as_deref())
        .unwrap_or("");
    if m.source.is_empty() {
        return Err(EditError::EmptySource {
            ro_id: ro.to_string(),
            operation: op.to_string(),
        });
    }
    let story = || required(ro, op, "storyID", target_story);
    let swap_pair = |ids: &[String]| match ids {
        [a, b] => Ok((a.clone(), b.clone())),
        _ => Err(EditError::SwapNeedsTwo {
            ro_id: ro.to_string(),
            count: ids.len(),
        }),
    };
    use ElementOperation as Op;
    use ElementSource as Src;
    match (m.operation, &m.source) {
        (Op::Insert, Src::Stories(s)) => Ok(Edit::InsertStories {
            before: non_blank(target_story),
            stories: s.clone(),
        }),
        (Op::Insert, Src::Items(i)) => Ok(Edit::InsertItems {
            story: story()?,
            before: non_blank(target_item),
            items: i.clone(),
        }),
        (Op::Replace, Src::Stories(s)) => Ok(Edit::ReplaceStory {
            target: story()?,
            stories: s.clone(),
        }),
        (Op::Replace, Src::Items(i)) => Ok(Edit::ReplaceItem {
            story: story()?,
            target: required(ro, op, "itemID", target_item)?,
            items: i.clone(),
        }),
        (Op::Move, Src::StoryIds(ids)) => Ok(Edit::MoveStories {
            before: non_blank(target_story),
            ids: ids.clone(),
        }),
        (Op::Move, Src::ItemIds(ids)) => Ok(Edit::MoveItems {
            story: story()?,
            before: non_blank(target_item),
            ids: ids.clone(),
        }),
        (Op::Delete, Src::StoryIds(ids)) => Ok(Edit::DeleteStories { ids: ids.clone() }),
        (Op::Delete, Src::ItemIds(ids)) => Ok(Edit::DeleteItems {
            story: story()?,
            ids: ids.clone(),
        }),
        (Op::Swap, Src::StoryIds(ids)) => {
            let (a, b) = swap_pair(ids)?;
            Ok(Edit::SwapStories { a, b })
        }
        (Op::Swap, Src::ItemIds(ids)) => {
            let story = story()?;
            let (a, b) = swap_pair(ids)?;
            Ok(Edit::SwapItems { story, a, b })
        }
        (_, source) => Err(EditError::WrongSource {
            ro_id: ro.to_string(),
            operation: op.to_string(),
            source_kind: source_kind(source).to_string(),
        }),
    }
}
