//! The promises the server makes to users, checked while the load runs.
//!
//! The [`ChatLedger`] is shared by every simulated user: each one writes down the chats it is
//! matched into, so that the two sides of a chat can be compared even though no single client
//! sees both. Per-user checks (order of lines, matched while in a chat) are made by the client
//! and only counted here.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::ids::{ChatId, SessionId};

/// A broken promise, by kind. Any of them makes the run fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ViolationKind {
    /// More than two users were matched into one chat.
    ChatOverfull,
    /// A chat was seen by only one user, and its partner did not disconnect.
    ChatSeenOnce,
    /// Both sides of a chat are the same session.
    ChatWithSelf,
    /// Both sides, or neither, got `initiator: true`.
    InitiatorNotUnique,
    /// `matched` arrived while the user was still in a chat (no `ended` for it).
    MatchedWhileInChat,
    /// A `msg` arrived outside any chat, or for a chat that is not the receiver's current one.
    MsgWrongChat,
    /// A `msg` was written by someone other than the receiver's current partner.
    MsgWrongSender,
    /// A `msg` arrived after a later one from the same sender in the same chat.
    MsgOutOfOrder,
    /// A `msg` whose text is not one this load generator wrote.
    MsgUnreadable,
    /// `ended` named a chat that is not the user's current one.
    EndedWrongChat,
}

impl ViolationKind {
    /// Every kind, in report order.
    pub const ALL: [ViolationKind; 10] = [
        Self::ChatOverfull,
        Self::ChatSeenOnce,
        Self::ChatWithSelf,
        Self::InitiatorNotUnique,
        Self::MatchedWhileInChat,
        Self::MsgWrongChat,
        Self::MsgWrongSender,
        Self::MsgOutOfOrder,
        Self::MsgUnreadable,
        Self::EndedWrongChat,
    ];

    /// Judged by the [`ChatLedger`] over both sides of a chat. With `--workers` the two sides
    /// may live in different processes, so only the parent, over the union, counts these.
    pub fn needs_both_sides(self) -> bool {
        matches!(
            self,
            Self::ChatOverfull | Self::ChatSeenOnce | Self::ChatWithSelf | Self::InitiatorNotUnique
        )
    }

    /// The kind a report names `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The name in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatOverfull => "chat_overfull",
            Self::ChatSeenOnce => "chat_seen_once",
            Self::ChatWithSelf => "chat_with_self",
            Self::InitiatorNotUnique => "initiator_not_unique",
            Self::MatchedWhileInChat => "matched_while_in_chat",
            Self::MsgWrongChat => "msg_wrong_chat",
            Self::MsgWrongSender => "msg_wrong_sender",
            Self::MsgOutOfOrder => "msg_out_of_order",
            Self::MsgUnreadable => "msg_unreadable",
            Self::EndedWrongChat => "ended_wrong_chat",
        }
    }
}

/// Violation counters, one per kind, cheap to bump from any client task.
#[derive(Default)]
pub struct Violations {
    counts: [AtomicU64; ViolationKind::ALL.len()],
}

impl Violations {
    /// Counts one violation.
    pub fn record(&self, kind: ViolationKind) {
        self.add(kind, 1);
    }

    /// Counts `n` violations of one kind (a worker's share, in the parent).
    pub fn add(&self, kind: ViolationKind, n: u64) {
        self.counts[kind as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Every kind with its count (zeros included, so the report always names them all).
    pub fn by_kind(&self) -> BTreeMap<String, u64> {
        ViolationKind::ALL
            .iter()
            .map(|&kind| {
                let count = self.counts[kind as usize].load(Ordering::Relaxed);
                (kind.as_str().to_owned(), count)
            })
            .collect()
    }

    /// All violations together.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// One side of a chat as its user saw it.
#[derive(Clone, Copy, Debug)]
struct Side {
    session: SessionId,
    initiator: bool,
    /// The user was told `partner_disconnected`: a lone side is then no violation, since the
    /// partner may have died before reading `matched` (a connection failure, counted apart).
    partner_disconnected: bool,
    /// When the user received `matched`, in µs since the run's epoch.
    at_us: u64,
}

/// One side of a chat as a worker process hands it to the parent: chat, session, initiator,
/// partner disconnected, µs since the epoch. A JSON array, because there is one per
/// `matched` received and the parent holds them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideRecord(pub u64, pub u64, pub bool, pub bool, pub u64);

/// Which sessions were matched into which chat, over the whole run.
#[derive(Default)]
pub struct ChatLedger {
    chats: Mutex<HashMap<ChatId, Vec<Side>>>,
}

/// What the ledger learnt from one `matched`.
pub struct Sighting {
    /// This is the first user to report the chat: a new match.
    pub first: bool,
    /// The other side, if it has reported the chat already.
    pub partner: Option<SessionId>,
}

impl ChatLedger {
    /// Writes down that `session` was matched into `chat`; counts what breaks the rules.
    pub fn matched(
        &self,
        chat: ChatId,
        session: SessionId,
        initiator: bool,
        at_us: u64,
        violations: &Violations,
    ) -> Sighting {
        let mut chats = self.chats.lock();
        let sides = chats.entry(chat).or_default();
        let partner = sides.first().map(|side| side.session);
        sides.push(Side {
            session,
            initiator,
            partner_disconnected: false,
            at_us,
        });
        match sides.len() {
            2 => {
                if sides[0].session == sides[1].session {
                    violations.record(ViolationKind::ChatWithSelf);
                }
                if sides[0].initiator == sides[1].initiator {
                    violations.record(ViolationKind::InitiatorNotUnique);
                }
            }
            3.. => violations.record(ViolationKind::ChatOverfull),
            _ => {}
        }
        Sighting {
            first: sides.len() == 1,
            partner,
        }
    }

    /// The other side of `chat`, once both sides have reported it.
    pub fn partner_of(&self, chat: ChatId, session: SessionId) -> Option<SessionId> {
        let chats = self.chats.lock();
        chats
            .get(&chat)?
            .iter()
            .map(|side| side.session)
            .find(|&other| other != session)
    }

    /// Notes that `session`'s partner in `chat` disconnected.
    pub fn partner_disconnected(&self, chat: ChatId, session: SessionId) {
        let mut chats = self.chats.lock();
        if let Some(side) = chats
            .get_mut(&chat)
            .and_then(|sides| sides.iter_mut().find(|side| side.session == session))
        {
            side.partner_disconnected = true;
        }
    }

    /// End-of-run check, once every user has stopped reading: every chat had two sides.
    pub fn finish(&self, violations: &Violations) {
        let chats = self.chats.lock();
        for sides in chats.values() {
            if let [only] = sides.as_slice() {
                if !only.partner_disconnected {
                    violations.record(ViolationKind::ChatSeenOnce);
                }
            }
        }
    }

    /// Every side of every chat, for the parent of `--workers` to replay over the union.
    pub fn sides(&self) -> Vec<SideRecord> {
        let chats = self.chats.lock();
        chats
            .iter()
            .flat_map(|(chat, sides)| {
                sides.iter().map(|side| {
                    SideRecord(
                        chat.0,
                        side.session.0,
                        side.initiator,
                        side.partner_disconnected,
                        side.at_us,
                    )
                })
            })
            .collect()
    }

    /// How many distinct chats were seen.
    pub fn chats(&self) -> usize {
        self.chats.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proper_chat_breaks_no_rule() {
        let (ledger, violations) = (ChatLedger::default(), Violations::default());
        let first = ledger.matched(ChatId(1), SessionId(10), true, 0, &violations);
        assert!(first.first && first.partner.is_none());
        let second = ledger.matched(ChatId(1), SessionId(11), false, 0, &violations);
        assert_eq!(second.partner, Some(SessionId(10)));
        assert_eq!(
            ledger.partner_of(ChatId(1), SessionId(10)),
            Some(SessionId(11))
        );
        ledger.finish(&violations);
        assert_eq!(violations.total(), 0);
    }

    #[test]
    fn two_initiators_a_third_side_and_a_lone_side_are_violations() {
        let (ledger, violations) = (ChatLedger::default(), Violations::default());
        ledger.matched(ChatId(1), SessionId(10), true, 0, &violations);
        ledger.matched(ChatId(1), SessionId(11), true, 0, &violations);
        ledger.matched(ChatId(1), SessionId(12), false, 0, &violations);
        ledger.matched(ChatId(2), SessionId(13), false, 0, &violations);
        ledger.finish(&violations);
        let by_kind = violations.by_kind();
        assert_eq!(by_kind["initiator_not_unique"], 1);
        assert_eq!(by_kind["chat_overfull"], 1);
        assert_eq!(by_kind["chat_seen_once"], 1);
        assert_eq!(violations.total(), 3);
    }

    #[test]
    fn a_lone_side_whose_partner_disconnected_is_forgiven() {
        let (ledger, violations) = (ChatLedger::default(), Violations::default());
        ledger.matched(ChatId(3), SessionId(10), true, 0, &violations);
        ledger.partner_disconnected(ChatId(3), SessionId(10));
        ledger.finish(&violations);
        assert_eq!(violations.total(), 0);
    }
}
