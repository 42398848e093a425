//! Statuses to the NCS: how an item, story or running order stands (READY, NOT READY,
//! PLAY, STOP, ERROR), rendered as roItemStat/roStat (MOS 2.8.1 peers, iNEWS) or
//! roElementStat (ENPS, Octopus, 2.8.3+) according to the NCS's configuration, filtered
//! by the operator's options, and queued on the NCS's upper link.

use crate::config::{StatusMessages, StatusOptions};
use crate::mos::Message;
use crate::mos::messages::{RoElementStat, RoItemStat, RoStat, StatElement};
use crate::mos::read::clip128;
use crate::mos::time::MosTime;

/// How an element stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementState {
    /// Resolved and ready to play.
    Ready,
    /// Cannot be played, with the reason (e.g. "placeholder not bound").
    NotReady(String),
    /// On air.
    Play,
    /// Taken off air.
    Stop,
    /// A fault, with the reason.
    Error(String),
}

impl ElementState {
    /// The status word of the MOS vocabulary.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Ready => "READY",
            Self::NotReady(_) => "NOT READY",
            Self::Play => "PLAY",
            Self::Stop => "STOP",
            Self::Error(_) => "ERROR",
        }
    }

    /// The status text: the word, with the reason after a colon when asked and present;
    /// at most 128 characters.
    pub fn text(&self, reasons: bool) -> String {
        match self {
            Self::NotReady(r) | Self::Error(r) if reasons && !r.is_empty() => {
                clip128(&format!("{}: {}", self.word(), r))
            }
            _ => self.word().to_string(),
        }
    }
}

/// What a status is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusTarget {
    /// A whole running order.
    RunningOrder {
        /// roID.
        ro_id: String,
    },
    /// A story.
    Story {
        /// roID.
        ro_id: String,
        /// storyID.
        story_id: String,
    },
    /// An item.
    Item {
        /// roID.
        ro_id: String,
        /// storyID.
        story_id: String,
        /// itemID.
        item_id: String,
        /// objID of the item.
        object_id: String,
        /// itemChannel, if the item has one.
        channel: Option<String>,
    },
}

/// Separates the IDs in an element key (a character no MOS ID contains).
const KEY_SEP: char = '\u{1f}';

/// [`StatusTarget::element_key`] of an item.
pub fn item_element_key(ro_id: &str, story_id: &str, item_id: &str) -> String {
    format!("{ro_id}{KEY_SEP}{story_id}{KEY_SEP}{item_id}")
}

/// The (roID, storyID, itemID) of an item's element key.
pub fn parse_item_element_key(key: &str) -> Option<(&str, &str, &str)> {
    let mut ids = key.split(KEY_SEP);
    let parsed = (ids.next()?, ids.next()?, ids.next()?);
    ids.next().is_none().then_some(parsed)
}

impl StatusTarget {
    /// The element's identity (roID, storyID, itemID): statuses with the same key are about
    /// the same element, the later replacing the earlier.
    pub fn element_key(&self) -> String {
        match self {
            Self::RunningOrder { ro_id } => ro_id.clone(),
            Self::Story { ro_id, story_id } => format!("{ro_id}{KEY_SEP}{story_id}"),
            Self::Item {
                ro_id,
                story_id,
                item_id,
                ..
            } => item_element_key(ro_id, story_id, item_id),
        }
    }

    /// The running order the status belongs to.
    pub fn ro_id(&self) -> &str {
        match self {
            Self::RunningOrder { ro_id } | Self::Story { ro_id, .. } | Self::Item { ro_id, .. } => {
                ro_id
            }
        }
    }
}

/// One status for one NCS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// What it is about.
    pub target: StatusTarget,
    /// How it stands.
    pub state: ElementState,
}

/// Why a status was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// The operator's options exclude it.
    Filtered(&'static str),
    /// The running order is not ready to air and the NCS wants none before.
    NotReadyToAir,
    /// The running order no longer exists.
    RunningOrderGone,
    /// The NCS's status messages cannot express it (story status with roItemStat).
    Inexpressible,
}

/// Renders a status as the message the NCS expects, or says why none is sent.
/// `ready_to_air` is the running order's roReadyToAir state (None when never received);
/// `exists` whether we hold the running order.
pub fn render(
    report: &StatusReport,
    flavour: StatusMessages,
    options: &StatusOptions,
    exists: bool,
    ready_to_air: Option<bool>,
) -> Result<Message, Dropped> {
    if !exists {
        return Err(Dropped::RunningOrderGone);
    }
    if options.play_only && report.state != ElementState::Play {
        return Err(Dropped::Filtered("only PLAY is sent to this NCS"));
    }
    if options.never_stop && report.state == ElementState::Stop {
        return Err(Dropped::Filtered("STOP is never sent to this NCS"));
    }
    if options.require_ready_to_air && ready_to_air != Some(true) {
        return Err(Dropped::NotReadyToAir);
    }
    let status = report.state.text(options.reasons);
    let time = MosTime::now();
    Ok(match (flavour, &report.target) {
        (StatusMessages::RoItemStat, StatusTarget::RunningOrder { ro_id }) => {
            Message::RoStat(RoStat {
                ro_id: ro_id.clone(),
                status,
                time,
            })
        }
        (StatusMessages::RoItemStat, StatusTarget::Story { .. }) => {
            return Err(Dropped::Inexpressible);
        }
        (
            StatusMessages::RoItemStat,
            StatusTarget::Item {
                ro_id,
                story_id,
                item_id,
                object_id,
                channel: _,
            },
        ) => Message::RoItemStat(RoItemStat {
            ro_id: ro_id.clone(),
            story_id: story_id.clone(),
            item_id: item_id.clone(),
            object_id: object_id.clone(),
            // itemChannel in roItemStat is 2.8.2+: not sent to a 2.8.1 peer.
            channel: None,
            status,
            time,
        }),
        (StatusMessages::RoElementStat, target) => {
            let (element, story_id, item_id, object_id, channel) = match target {
                StatusTarget::RunningOrder { .. } => (StatElement::Ro, None, None, None, None),
                StatusTarget::Story { story_id, .. } => {
                    (StatElement::Story, Some(story_id.clone()), None, None, None)
                }
                StatusTarget::Item {
                    story_id,
                    item_id,
                    object_id,
                    channel,
                    ..
                } => (
                    StatElement::Item,
                    Some(story_id.clone()),
                    Some(item_id.clone()),
                    Some(object_id.clone()),
                    channel.clone(),
                ),
            };
            Message::RoElementStat(RoElementStat {
                element,
                ro_id: report.target.ro_id().to_string(),
                story_id,
                item_id,
                object_id,
                channel,
                status,
                time,
            })
        }
    })
}

/// Whether a message is a status message (stale after a restart: not resent).
pub fn is_status(message: &Message) -> bool {
    matches!(
        message,
        Message::RoStat(_) | Message::RoItemStat(_) | Message::RoElementStat(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(state: ElementState) -> StatusReport {
        StatusReport {
            target: StatusTarget::Item {
                ro_id: "R".into(),
                story_id: "S".into(),
                item_id: "1".into(),
                object_id: "O".into(),
                channel: Some("CAM1".into()),
            },
            state,
        }
    }

    const ALL: StatusOptions = StatusOptions {
        play_only: false,
        never_stop: false,
        require_ready_to_air: false,
        reasons: true,
    };

    #[test]
    fn item_status_in_both_flavours() {
        let r = item(ElementState::NotReady("sender gone".into()));
        let Ok(Message::RoItemStat(m)) = render(&r, StatusMessages::RoItemStat, &ALL, true, None)
        else {
            panic!()
        };
        assert_eq!(m.status, "NOT READY: sender gone");
        assert_eq!(m.channel, None);
        let Ok(Message::RoElementStat(m)) =
            render(&r, StatusMessages::RoElementStat, &ALL, true, None)
        else {
            panic!()
        };
        assert_eq!(m.element, StatElement::Item);
        assert_eq!(m.channel.as_deref(), Some("CAM1"));
        let plain = StatusOptions {
            reasons: false,
            ..ALL
        };
        let Ok(Message::RoElementStat(m)) =
            render(&r, StatusMessages::RoElementStat, &plain, true, None)
        else {
            panic!()
        };
        assert_eq!(m.status, "NOT READY");
    }

    #[test]
    fn options_filter_statuses() {
        let play_only = StatusOptions {
            play_only: true,
            ..ALL
        };
        assert!(
            render(
                &item(ElementState::Ready),
                StatusMessages::RoItemStat,
                &play_only,
                true,
                None
            )
            .is_err()
        );
        assert!(
            render(
                &item(ElementState::Play),
                StatusMessages::RoItemStat,
                &play_only,
                true,
                None
            )
            .is_ok()
        );
        let no_stop = StatusOptions {
            never_stop: true,
            ..ALL
        };
        assert!(
            render(
                &item(ElementState::Stop),
                StatusMessages::RoItemStat,
                &no_stop,
                true,
                None
            )
            .is_err()
        );
        let rta = StatusOptions {
            require_ready_to_air: true,
            ..ALL
        };
        assert_eq!(
            render(
                &item(ElementState::Play),
                StatusMessages::RoItemStat,
                &rta,
                true,
                Some(false)
            ),
            Err(Dropped::NotReadyToAir)
        );
        assert!(
            render(
                &item(ElementState::Play),
                StatusMessages::RoItemStat,
                &rta,
                true,
                Some(true)
            )
            .is_ok()
        );
        assert_eq!(
            render(
                &item(ElementState::Play),
                StatusMessages::RoItemStat,
                &ALL,
                false,
                None
            ),
            Err(Dropped::RunningOrderGone)
        );
    }

    #[test]
    fn story_status_needs_ro_element_stat() {
        let r = StatusReport {
            target: StatusTarget::Story {
                ro_id: "R".into(),
                story_id: "S".into(),
            },
            state: ElementState::Ready,
        };
        assert_eq!(
            render(&r, StatusMessages::RoItemStat, &ALL, true, None),
            Err(Dropped::Inexpressible)
        );
        assert!(render(&r, StatusMessages::RoElementStat, &ALL, true, None).is_ok());
        let ro = StatusReport {
            target: StatusTarget::RunningOrder { ro_id: "R".into() },
            state: ElementState::Error("device 500".into()),
        };
        let Ok(Message::RoStat(m)) = render(&ro, StatusMessages::RoItemStat, &ALL, true, None)
        else {
            panic!()
        };
        assert_eq!(m.status, "ERROR: device 500");
    }
}
