//! The eleven 2.6 legacy story and item messages (still part of Profile 2 in 2.8.1).

use super::Body;
use crate::mos::error::ParseError;
use crate::mos::read::Cx;
use crate::mos::structures::{Item, Story};
use crate::mos::xml::{El, XmlWriter};

/// roStoryAppend: stories appended at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoStoryAppend {
    /// roID.
    pub ro_id: String,
    /// The new stories.
    pub stories: Vec<Story>,
}

impl Body for RoStoryAppend {
    const NAME: &'static str = "roStoryAppend";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(el, &["roID", "story"])?;
        Ok(Self {
            ro_id: cx.req_str(el, "roID")?,
            stories: Story::read_all(el, cx)?,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        w.leaf("roID", &self.ro_id);
        self.stories.iter().for_each(|s| s.write(w));
        w.close(Self::NAME);
    }
}

macro_rules! stories_at_target {
    ($(#[$m:meta])* $name:ident, $wire:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// roID.
            pub ro_id: String,
            /// The target storyID.
            pub story_id: String,
            /// The stories.
            pub stories: Vec<Story>,
        }
        impl Body for $name {
            const NAME: &'static str = $wire;
            fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
                cx.check_order(el, &["roID", "storyID", "story"])?;
                Ok(Self {
                    ro_id: cx.req_str(el, "roID")?,
                    story_id: cx.req_str(el, "storyID")?,
                    stories: Story::read_all(el, cx)?,
                })
            }
            fn write(&self, w: &mut XmlWriter) {
                w.open(Self::NAME);
                w.leaf("roID", &self.ro_id);
                w.leaf("storyID", &self.story_id);
                self.stories.iter().for_each(|s| s.write(w));
                w.close(Self::NAME);
            }
        }
    };
}

stories_at_target!(
    /// roStoryInsert: stories inserted before storyID.
    RoStoryInsert, "roStoryInsert"
);
stories_at_target!(
    /// roStoryReplace: storyID replaced by the given stories.
    RoStoryReplace, "roStoryReplace"
);

/// roStoryMove: the first story moved before the second; a blank second moves it to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoStoryMove {
    /// roID.
    pub ro_id: String,
    /// The story to move.
    pub story_id: String,
    /// The story to move it before; empty = the end.
    pub before: String,
}

impl Body for RoStoryMove {
    const NAME: &'static str = "roStoryMove";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(el, &["roID", "storyID"])?;
        let ids = cx.str_list(el, "storyID")?;
        let (story_id, before) = match ids.as_slice() {
            [a, b] => (a.clone(), b.clone()),
            [a] => {
                cx.at(el);
                cx.tolerate(
                    crate::mos::error::DeviationKind::MissingElement,
                    Some("storyID"),
                    "one storyID where two are required; read as a move to the end",
                )?;
                (a.clone(), String::new())
            }
            other => {
                cx.at(el);
                return Err(cx.error(
                    Some("storyID"),
                    format!("{} storyIDs, expected exactly 2", other.len()),
                ));
            }
        };
        Ok(Self {
            ro_id: cx.req_str(el, "roID")?,
            story_id,
            before,
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        w.leaf("roID", &self.ro_id);
        w.leaf("storyID", &self.story_id);
        w.leaf("storyID", &self.before);
        w.close(Self::NAME);
    }
}

/// roStorySwap: two stories exchange places.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoStorySwap {
    /// roID.
    pub ro_id: String,
    /// One story.
    pub first: String,
    /// The other.
    pub second: String,
}

impl Body for RoStorySwap {
    const NAME: &'static str = "roStorySwap";
    fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
        cx.check_order(el, &["roID", "storyID"])?;
        let ids = cx.str_list(el, "storyID")?;
        let [first, second] = ids.as_slice() else {
            cx.at(el);
            return Err(cx.error(
                Some("storyID"),
                format!("{} storyIDs, expected exactly 2", ids.len()),
            ));
        };
        Ok(Self {
            ro_id: cx.req_str(el, "roID")?,
            first: first.clone(),
            second: second.clone(),
        })
    }
    fn write(&self, w: &mut XmlWriter) {
        w.open(Self::NAME);
        w.leaf("roID", &self.ro_id);
        w.leaf("storyID", &self.first);
        w.leaf("storyID", &self.second);
        w.close(Self::NAME);
    }
}

macro_rules! story_id_list {
    ($(#[$m:meta])* $name:ident, $wire:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// roID.
            pub ro_id: String,
            /// The storyIDs.
            pub story_ids: Vec<String>,
        }
        impl Body for $name {
            const NAME: &'static str = $wire;
            fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
                cx.check_order(el, &["roID", "storyID"])?;
                let story_ids = cx.str_list(el, "storyID")?;
                if story_ids.is_empty() {
                    cx.at(el);
                    return Err(cx.error(Some("storyID"), "at least one storyID is required"));
                }
                Ok(Self { ro_id: cx.req_str(el, "roID")?, story_ids })
            }
            fn write(&self, w: &mut XmlWriter) {
                w.open(Self::NAME);
                w.leaf("roID", &self.ro_id);
                self.story_ids.iter().for_each(|s| w.leaf("storyID", s));
                w.close(Self::NAME);
            }
        }
    };
}

story_id_list!(
    /// roStoryDelete: stories removed.
    RoStoryDelete, "roStoryDelete"
);
story_id_list!(
    /// roStoryMoveMultiple: all but the last storyID move, in order, before the last
    /// (blank last = the end).
    RoStoryMoveMultiple, "roStoryMoveMultiple"
);

macro_rules! items_at_target {
    ($(#[$m:meta])* $name:ident, $wire:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// roID.
            pub ro_id: String,
            /// The story.
            pub story_id: String,
            /// The target itemID (roItemInsert: blank = end of story).
            pub item_id: String,
            /// The items.
            pub items: Vec<Item>,
        }
        impl Body for $name {
            const NAME: &'static str = $wire;
            fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
                cx.check_order(el, &["roID", "storyID", "itemID", "item"])?;
                Ok(Self {
                    ro_id: cx.req_str(el, "roID")?,
                    story_id: cx.req_str(el, "storyID")?,
                    item_id: cx.req_str(el, "itemID")?,
                    items: Item::read_all(el, "item", cx)?,
                })
            }
            fn write(&self, w: &mut XmlWriter) {
                w.open(Self::NAME);
                w.leaf("roID", &self.ro_id);
                w.leaf("storyID", &self.story_id);
                w.leaf("itemID", &self.item_id);
                self.items.iter().for_each(|i| i.write(w));
                w.close(Self::NAME);
            }
        }
    };
}

items_at_target!(
    /// roItemInsert: items inserted before itemID (blank = end of the story).
    RoItemInsert, "roItemInsert"
);
items_at_target!(
    /// roItemReplace: itemID replaced by the given items.
    RoItemReplace, "roItemReplace"
);

macro_rules! item_id_list {
    ($(#[$m:meta])* $name:ident, $wire:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// roID.
            pub ro_id: String,
            /// The story.
            pub story_id: String,
            /// The itemIDs.
            pub item_ids: Vec<String>,
        }
        impl Body for $name {
            const NAME: &'static str = $wire;
            fn read(el: El<'_, '_>, cx: &mut Cx) -> Result<Self, ParseError> {
                cx.check_order(el, &["roID", "storyID", "itemID"])?;
                let item_ids = cx.str_list(el, "itemID")?;
                if item_ids.is_empty() {
                    cx.at(el);
                    return Err(cx.error(Some("itemID"), "at least one itemID is required"));
                }
                Ok(Self {
                    ro_id: cx.req_str(el, "roID")?,
                    story_id: cx.req_str(el, "storyID")?,
                    item_ids,
                })
            }
            fn write(&self, w: &mut XmlWriter) {
                w.open(Self::NAME);
                w.leaf("roID", &self.ro_id);
                w.leaf("storyID", &self.story_id);
                self.item_ids.iter().for_each(|i| w.leaf("itemID", i));
                w.close(Self::NAME);
            }
        }
    };
}

item_id_list!(
    /// roItemMoveMultiple: all but the last itemID move, in order, before the last
    /// (blank last = end of the story).
    RoItemMoveMultiple, "roItemMoveMultiple"
);
item_id_list!(
    /// roItemDelete: items removed from the story.
    RoItemDelete, "roItemDelete"
);
