//! Replies to recent commands that are not running-order edits (roCtrl, mosObjCreate), so
//! that an NCS resending one (its ack was lost with a dropped socket) gets the same reply
//! again and the command is not carried out twice: a second EXECUTE would take the item
//! again, a second mosObjCreate would be refused as a duplicate slug.
//!
//! Running-order edits have their own durable record (`state.rs`). These are kept in memory
//! for a short time only: an NCS resends within its ack timeout, and an NCS that restarts
//! may number its messages from the start again, so an old messageID must not stand for a
//! new command for long.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a reply is kept.
pub const KEEP: Duration = Duration::from_secs(60);

/// Most replies kept (the oldest go first).
const MOST: usize = 512;

/// Who sent a message, and its messageID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageKey {
    /// The sender's ncsID.
    pub ncs_id: String,
    /// The port it arrived on (`lower`, `upper`, `query`).
    pub port: &'static str,
    /// Its messageID as received.
    pub message_id: String,
}

/// What a message is, for the replies kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Not seen lately: [`RecentReplies::begin`], carry it out, then
    /// [`RecentReplies::remember`] the reply.
    New,
    /// A resend of a message still being carried out: its reply comes soon.
    InProgress,
    /// A resend of a message answered lately: its reply, to send again.
    Retry(String),
    /// The messageID of a recent message with other content.
    Conflict,
}

struct Kept {
    at: Instant,
    key: MessageKey,
    digest: String,
    /// `None` while it is being carried out.
    reply: Option<String>,
}

/// The replies kept (see the module documentation).
#[derive(Default)]
pub struct RecentReplies {
    kept: VecDeque<Kept>,
}

impl RecentReplies {
    /// Whether the message `key` with content `digest` was answered lately.
    pub fn check(&mut self, key: &MessageKey, digest: &str, now: Instant) -> Seen {
        while self
            .kept
            .front()
            .is_some_and(|k| now.duration_since(k.at) >= KEEP)
        {
            self.kept.pop_front();
        }
        match self.kept.iter().rev().find(|k| k.key == *key) {
            None => Seen::New,
            Some(k) if k.digest == digest => match &k.reply {
                Some(reply) => Seen::Retry(reply.clone()),
                None => Seen::InProgress,
            },
            Some(_) => Seen::Conflict,
        }
    }

    /// Notes that a message is being carried out, so that a resend meanwhile is not
    /// carried out too ([`Seen::InProgress`]).
    pub fn begin(&mut self, key: MessageKey, digest: String, now: Instant) {
        if self.kept.len() >= MOST {
            self.kept.pop_front();
        }
        self.kept.push_back(Kept {
            at: now,
            key,
            digest,
            reply: None,
        });
    }

    /// Keeps the reply to a message carried out (begun or not).
    pub fn remember(&mut self, key: MessageKey, digest: String, reply: String, now: Instant) {
        if let Some(k) = self
            .kept
            .iter_mut()
            .rev()
            .find(|k| k.key == key && k.digest == digest && k.reply.is_none())
        {
            k.reply = Some(reply);
            return;
        }
        self.begin(key.clone(), digest.clone(), now);
        if let Some(k) = self.kept.back_mut() {
            k.reply = Some(reply);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> MessageKey {
        MessageKey {
            ncs_id: "NCS".into(),
            port: "upper",
            message_id: id.into(),
        }
    }

    #[test]
    fn a_resend_gets_the_same_reply_for_a_while_and_other_content_conflicts() {
        let mut r = RecentReplies::default();
        let t0 = Instant::now();
        assert_eq!(r.check(&key("7"), "d1", t0), Seen::New);
        r.remember(key("7"), "d1".into(), "<mos>ack</mos>".into(), t0);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(
            r.check(&key("7"), "d1", later),
            Seen::Retry("<mos>ack</mos>".into())
        );
        assert_eq!(r.check(&key("7"), "d2", later), Seen::Conflict);
        // Another NCS, or another port, with the same messageID is another message.
        let other = MessageKey {
            ncs_id: "NCS2".into(),
            ..key("7")
        };
        assert_eq!(r.check(&other, "d1", later), Seen::New);
        let lower = MessageKey {
            port: "lower",
            ..key("7")
        };
        assert_eq!(r.check(&lower, "d1", later), Seen::New);
        // A resend while the first is being carried out waits for its reply.
        r.begin(key("8"), "d".into(), later);
        assert_eq!(r.check(&key("8"), "d", later), Seen::InProgress);
        r.remember(key("8"), "d".into(), "<mos>8</mos>".into(), later);
        assert_eq!(
            r.check(&key("8"), "d", later),
            Seen::Retry("<mos>8</mos>".into())
        );
        // Forgotten after a while: an NCS numbering from the start again is not mistaken.
        assert_eq!(r.check(&key("7"), "d1", t0 + KEEP), Seen::New);
    }

    #[test]
    fn at_most_a_bounded_number_are_kept() {
        let mut r = RecentReplies::default();
        let t0 = Instant::now();
        for i in 0..MOST + 10 {
            r.remember(key(&i.to_string()), "d".into(), "r".into(), t0);
        }
        assert_eq!(r.kept.len(), MOST);
        assert_eq!(r.check(&key("0"), "d", t0), Seen::New);
        assert_eq!(
            r.check(&key(&(MOST + 9).to_string()), "d", t0),
            Seen::Retry("r".into())
        );
    }
}
