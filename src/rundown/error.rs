//! Why an edit was refused: the reason an NCS operator reads in roAck roStatus, and
//! whether the refusal means our copy has drifted (then the session resyncs with roReq).

use crate::mos::read::clip128;

/// An edit the model refused. A refused edit changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// The roID is not held.
    #[error("Unknown roID {ro_id}")]
    UnknownRunningOrder {
        /// roID.
        ro_id: String,
    },
    /// The storyID is not in the running order.
    #[error("Unknown storyID {story_id} in running order {ro_id}")]
    UnknownStory {
        /// roID.
        ro_id: String,
        /// storyID.
        story_id: String,
    },
    /// The itemID is not in the story.
    #[error("Unknown itemID {item_id} in story {story_id} of running order {ro_id}")]
    UnknownItem {
        /// roID.
        ro_id: String,
        /// storyID.
        story_id: String,
        /// itemID.
        item_id: String,
    },
    /// The edit would put a storyID twice into the running order.
    #[error("Duplicate storyID {story_id} in running order {ro_id}")]
    DuplicateStory {
        /// roID.
        ro_id: String,
        /// storyID.
        story_id: String,
    },
    /// The edit would put an itemID twice into a story.
    #[error("Duplicate itemID {item_id} in story {story_id} of running order {ro_id}")]
    DuplicateItem {
        /// roID.
        ro_id: String,
        /// storyID.
        story_id: String,
        /// itemID.
        item_id: String,
    },
    /// An ID is listed twice in a MOVE, DELETE or *MoveMultiple list.
    #[error("{id} listed twice in running order {ro_id} edit")]
    RepeatedId {
        /// roID.
        ro_id: String,
        /// The storyID or itemID listed twice.
        id: String,
    },
    /// The MOVE target is one of the elements being moved.
    #[error("Target {target} is also moved in running order {ro_id}")]
    TargetInSource {
        /// roID.
        ro_id: String,
        /// The target storyID or itemID.
        target: String,
    },
    /// SWAP names other than two IDs.
    #[error("SWAP needs exactly 2 IDs, got {count} in running order {ro_id}")]
    SwapNeedsTwo {
        /// roID.
        ro_id: String,
        /// How many IDs were given.
        count: usize,
    },
    /// SWAP names the same ID twice.
    #[error("SWAP of {id} with itself in running order {ro_id}")]
    SwapSameId {
        /// roID.
        ro_id: String,
        /// The ID.
        id: String,
    },
    /// The operation has nothing to act on.
    #[error("{operation} without source elements in running order {ro_id}")]
    EmptySource {
        /// roID.
        ro_id: String,
        /// The operation (`INSERT`, `roStoryDelete`, ...).
        operation: String,
    },
    /// The operation cannot act on this kind of source element.
    #[error("{operation} cannot use {source_kind} elements (running order {ro_id})")]
    WrongSource {
        /// roID.
        ro_id: String,
        /// The operation.
        operation: String,
        /// The element kind given (`story`, `item`, `storyID`, `itemID`).
        source_kind: String,
    },
    /// A required target storyID or itemID is absent or blank.
    #[error("{operation} needs a target {field} (running order {ro_id})")]
    MissingTarget {
        /// roID.
        ro_id: String,
        /// The operation.
        operation: String,
        /// `storyID` or `itemID`.
        field: String,
    },
    /// An identifier the edit brings in (roID, storyID, itemID) is empty: nothing could
    /// refer to what it names.
    #[error("{}", empty_id_text(ro_id, field))]
    EmptyId {
        /// roID (itself possibly empty).
        ro_id: String,
        /// `roID`, `storyID` or `itemID`.
        field: String,
    },
    /// A running order's header names another roID than the one edited.
    #[error("roID {header_id} given for running order {ro_id}")]
    MismatchedRoId {
        /// The roID edited.
        ro_id: String,
        /// The roID in the header.
        header_id: String,
    },
}

fn empty_id_text(ro_id: &str, field: &str) -> String {
    if ro_id.trim().is_empty() {
        format!("Empty {field}")
    } else {
        format!("Empty {field} in running order {ro_id}")
    }
}

impl EditError {
    /// The roAck roStatus text: at most 128 characters.
    pub fn reason(&self) -> String {
        clip128(&self.to_string())
    }

    /// Whether the error is an unknown roID, storyID or itemID: our copy may have
    /// drifted from the NCS's, so the session should resync with roReq.
    pub fn needs_resync(&self) -> bool {
        matches!(
            self,
            Self::UnknownRunningOrder { .. } | Self::UnknownStory { .. } | Self::UnknownItem { .. }
        )
    }

    /// The roID the error is about.
    pub fn ro_id(&self) -> &str {
        match self {
            Self::UnknownRunningOrder { ro_id }
            | Self::UnknownStory { ro_id, .. }
            | Self::UnknownItem { ro_id, .. }
            | Self::DuplicateStory { ro_id, .. }
            | Self::DuplicateItem { ro_id, .. }
            | Self::RepeatedId { ro_id, .. }
            | Self::TargetInSource { ro_id, .. }
            | Self::SwapNeedsTwo { ro_id, .. }
            | Self::SwapSameId { ro_id, .. }
            | Self::EmptySource { ro_id, .. }
            | Self::WrongSource { ro_id, .. }
            | Self::MissingTarget { ro_id, .. }
            | Self::EmptyId { ro_id, .. }
            | Self::MismatchedRoId { ro_id, .. } => ro_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_the_unknown_story_and_running_order() {
        let e = EditError::UnknownStory {
            ro_id: "RO1".into(),
            story_id: "S9".into(),
        };
        assert_eq!(e.reason(), "Unknown storyID S9 in running order RO1");
        assert!(e.needs_resync());
        assert_eq!(e.ro_id(), "RO1");
    }

    #[test]
    fn reason_is_clipped_to_128_characters_for_long_enps_ids() {
        let long = "HOST;P_NEWS\\W\\R_".to_string() + &"ab12".repeat(40);
        let e = EditError::UnknownItem {
            ro_id: long.clone(),
            story_id: long.clone(),
            item_id: "é".repeat(50),
        };
        assert!(e.reason().chars().count() <= 128);
    }

    #[test]
    fn structural_errors_do_not_ask_for_resync() {
        let e = EditError::SwapNeedsTwo {
            ro_id: "R".into(),
            count: 3,
        };
        assert!(!e.needs_resync());
        let e = EditError::DuplicateStory {
            ro_id: "R".into(),
            story_id: "S".into(),
        };
        assert!(!e.needs_resync());
    }
}
