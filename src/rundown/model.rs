//! One running order as the NCS has it: header, stories in NCS order (each with the body
//! roStorySend gave it, if any) and the roReadyToAir state.

use std::collections::HashSet;
use std::sync::Arc;

use super::error::EditError;
use super::seq::{Keyed, first_repeat};
use crate::mos::messages::RoStorySend;
use crate::mos::structures::{
    AirStatus, Item, MosExternalMetadata, RoHeader, RunningOrder, Story, StoryBody,
};

/// What roStorySend said about a story: its body and the fields that came with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoryContent {
    /// storySlug as sent with the body.
    pub slug: Option<String>,
    /// storyNum as sent with the body.
    pub number: Option<String>,
    /// storyBody.
    pub body: StoryBody,
    /// The roStorySend mosExternalMetadata blocks.
    pub metadata: Vec<MosExternalMetadata>,
}

impl From<&RoStorySend> for StoryContent {
    fn from(m: &RoStorySend) -> Self {
        Self {
            slug: m.slug.clone(),
            number: m.number.clone(),
            body: m.body.clone(),
            metadata: m.metadata.clone(),
        }
    }
}

/// A story of a running order with its body, if roStorySend sent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RundownStory {
    /// The story as the construction messages gave it (storyID, slug, number, items).
    pub story: Story,
    /// The body from the latest roStorySend for this storyID.
    pub content: Option<StoryContent>,
}

impl Keyed for Arc<RundownStory> {
    fn key(&self) -> &str {
        &self.story.id
    }
}

impl Keyed for Item {
    fn key(&self) -> &str {
        &self.id
    }
}

/// One running order. Invariants: storyIDs are unique, itemIDs are unique within each
/// story, and the order is exactly the NCS's. Built only through [`super::Rundowns`]
/// edits or [`Rundown::from_running_order`], which check the invariants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rundown {
    pub(crate) header: RoHeader,
    /// Shared so that an edit copies the list of pointers, not every story.
    pub(crate) stories: Vec<Arc<RundownStory>>,
    pub(crate) ready: Option<AirStatus>,
}

impl Rundown {
    /// A running order from roCreate / roReplace / roList content, without bodies or
    /// readiness. Refuses repeated storyIDs and itemIDs repeated within a story.
    pub fn from_running_order(ro: RunningOrder) -> Result<Self, EditError> {
        let ro_id = ro.header.id.clone();
        check_stories(&ro_id, &ro.stories)?;
        Ok(Self {
            header: ro.header,
            stories: ro
                .stories
                .into_iter()
                .map(|story| {
                    Arc::new(RundownStory {
                        story,
                        content: None,
                    })
                })
                .collect(),
            ready: None,
        })
    }

    /// The roID.
    pub fn id(&self) -> &str {
        &self.header.id
    }

    /// The header.
    pub fn header(&self) -> &RoHeader {
        &self.header
    }

    /// The roReadyToAir state, if the NCS sent one.
    pub fn ready_to_air(&self) -> Option<AirStatus> {
        self.ready
    }

    /// The stories, in NCS order.
    pub fn stories(&self) -> impl ExactSizeIterator<Item = &RundownStory> {
        self.stories.iter().map(|s| s.as_ref())
    }

    /// How many stories the running order has.
    pub fn story_count(&self) -> usize {
        self.stories.len()
    }

    /// The position of a story.
    pub fn position(&self, story_id: &str) -> Option<usize> {
        self.stories.iter().position(|s| s.story.id == story_id)
    }

    /// A story with its body.
    pub fn story(&self, story_id: &str) -> Option<&RundownStory> {
        self.position(story_id).map(|i| self.stories[i].as_ref())
    }

    /// The body roStorySend gave a story.
    pub fn body(&self, story_id: &str) -> Option<&StoryContent> {
        self.story(story_id).and_then(|s| s.content.as_ref())
    }

    /// An item of a story.
    pub fn item(&self, story_id: &str, item_id: &str) -> Option<&Item> {
        self.story(story_id)
            .and_then(|s| s.story.items.iter().find(|i| i.id == item_id))
    }

    /// The running order exactly in NCS order (for roList).
    pub fn to_running_order(&self) -> RunningOrder {
        RunningOrder {
            header: self.header.clone(),
            stories: self.stories.iter().map(|s| s.story.clone()).collect(),
        }
    }
}

/// Refuses a story list with a storyID twice or an itemID twice within a story.
pub(crate) fn check_stories(ro_id: &str, stories: &[Story]) -> Result<(), EditError> {
    if let Some(id) = first_repeat(stories.iter().map(|s| s.id.as_str())) {
        return Err(EditError::DuplicateStory {
            ro_id: ro_id.to_string(),
            story_id: id.to_string(),
        });
    }
    stories
        .iter()
        .try_for_each(|s| check_items(ro_id, &s.id, &s.items))
}

/// Refuses an item list with an itemID twice.
pub(crate) fn check_items(ro_id: &str, story_id: &str, items: &[Item]) -> Result<(), EditError> {
    match first_repeat(items.iter().map(|i| i.id.as_str())) {
        Some(id) => Err(EditError::DuplicateItem {
            ro_id: ro_id.to_string(),
            story_id: story_id.to_string(),
            item_id: id.to_string(),
        }),
        None => Ok(()),
    }
}

/// Whether every storyID is unique and every itemID unique within its story.
pub(crate) fn invariants_hold(r: &Rundown) -> bool {
    let mut seen = HashSet::new();
    r.stories.iter().all(|s| {
        seen.insert(s.story.id.as_str())
            && first_repeat(s.story.items.iter().map(|i| i.id.as_str())).is_none()
    })
}
