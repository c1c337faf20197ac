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
use tandem_proto::ids::{ChatId, SessionId};

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
    /// A `msg` or `signal` arrived outside any chat, or for a chat that is not the
    /// receiver's current one.
    MsgWrongChat,
    /// A `msg` or `signal` was written by someone other than the receiver's current partner.
    MsgWrongSender,
    /// A `msg` (or a `signal`) arrived after a later `msg` (`signal`) from the same sender in
    /// the same chat.
    MsgOutOfOrder,
    /// A `msg` text or `signal` data that this load generator did not write.
    MsgUnreadable,
    /// `ended` named a chat that is not the user's current one.
    EndedWrongChat,
    /// `matched.partner.country` is not one the user's `countries` filter accepts.
    FilterViolated,
    /// A line or signal came from a partner who joined with another mode or language.
    PartitionViolated,
    /// A side's `matched.common_interests` is not a sorted subset of its own interests, or
    /// the two sides were told different lists.
    CommonInterestsWrong,
    /// A reconnection with `?client_id=` got a `welcome` with another `client_id`.
    ClientIdNotKept,
}

impl ViolationKind {
    /// Every kind, in report order.
    pub const ALL: [ViolationKind; 14] = [
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
        Self::FilterViolated,
        Self::PartitionViolated,
        Self::CommonInterestsWrong,
        Self::ClientIdNotKept,
    ];

    /// Judged by the [`ChatLedger`] over both sides of a chat. With `--workers` the two sides
    /// may live in different processes, so only the parent, over the union, counts these.
    /// `common_interests_wrong` is among them: a side's own check travels with its side
    /// ([`CommonSeen`]), so that the ledger counts both halves of the rule in one place.
    pub fn needs_both_sides(self) -> bool {
        matches!(
            self,
            Self::ChatOverfull
                | Self::ChatSeenOnce
                | Self::ChatWithSelf
                | Self::InitiatorNotUnique
                | Self::CommonInterestsWrong
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
            Self::FilterViolated => "filter_violated",
            Self::PartitionViolated => "partition_violated",
            Self::CommonInterestsWrong => "common_interests_wrong",
            Self::ClientIdNotKept => "client_id_not_kept",
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

/// What one side was told about the interests it shares with its partner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommonSeen {
    /// [`common_digest`] of `matched.common_interests`: 0 for an empty list. A digest rather
    /// than the list, so that the ledger (and a worker's file) stays one word per side.
    pub digest: u64,
    /// The list was sorted, without duplicates, and a subset of the side's own interests.
    pub fits_own: bool,
}

impl CommonSeen {
    /// Judges `common` against the user's own (sorted) `interests`.
    pub fn judge(common: &[String], interests: &[String]) -> Self {
        let sorted = common.windows(2).all(|pair| pair[0] < pair[1]);
        let subset = common.iter().all(|tag| interests.contains(tag));
        Self {
            digest: common_digest(common),
            fits_own: sorted && subset,
        }
    }
}

/// A 64-bit FNV-1a digest of a list of tags, 0 only for the empty list.
pub fn common_digest(tags: &[String]) -> u64 {
    if tags.is_empty() {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in tags.iter().flat_map(|tag| tag.bytes().chain([0])) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash.max(1)
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
    /// What it was told of the shared interests.
    common: CommonSeen,
}

/// One side of a chat as a worker process hands it to the parent: chat, session, initiator,
/// partner disconnected, µs since the epoch, common-interests digest, whether the list fitted
/// the side's own interests. A JSON array, because there is one per `matched` received and
/// the parent holds them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideRecord(
    pub u64,
    pub u64,
    pub bool,
    pub bool,
    pub u64,
    pub u64,
    pub bool,
);

/// Which sessions were matched into which chat, over the whole run.
#[derive(Default)]
pub struct ChatLedger {
    chats: Mutex<HashMap<ChatId, Vec<Side>>>,
    /// Chats whose first side was told a non-empty `common_interests`.
    with_common_interests: AtomicU64,
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
        common: CommonSeen,
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
            common,
        });
        if !common.fits_own {
            violations.record(ViolationKind::CommonInterestsWrong);
        }
        match sides.len() {
            1 if common.digest != 0 => {
                self.with_common_interests.fetch_add(1, Ordering::Relaxed);
            }
            2 => {
                if sides[0].session == sides[1].session {
                    violations.record(ViolationKind::ChatWithSelf);
                }
                if sides[0].initiator == sides[1].initiator {
                    violations.record(ViolationKind::InitiatorNotUnique);
                }
                if sides[0].common.digest != sides[1].common.digest {
                    violations.record(ViolationKind::CommonInterestsWrong);
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
                        side.common.digest,
                        side.common.fits_own,
                    )
                })
            })
            .collect()
    }

    /// How many distinct chats were seen.
    pub fn chats(&self) -> usize {
        self.chats.lock().len()
    }

    /// How many chats were made on shared interests (a non-empty `common_interests`, as
    /// the first side to report the chat saw it).
    pub fn chats_with_common_interests(&self) -> u64 {
        self.with_common_interests.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A side told no shared interests, as a random pair is.
    const OK: CommonSeen = CommonSeen {
        digest: 0,
        fits_own: true,
    };

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|tag| (*tag).to_owned()).collect()
    }

    #[test]
    fn common_interests_must_fit_each_side_and_agree_across_sides() {
        let own = tags(&["t0", "t3", "t7"]);
        assert!(CommonSeen::judge(&tags(&["t0", "t7"]), &own).fits_own);
        assert!(
            !CommonSeen::judge(&tags(&["t7", "t0"]), &own).fits_own,
            "unsorted"
        );
        assert!(
            !CommonSeen::judge(&tags(&["t1"]), &own).fits_own,
            "not ours"
        );
        assert_eq!(CommonSeen::judge(&[], &own), OK);

        let (ledger, violations) = (ChatLedger::default(), Violations::default());
        let agreed = CommonSeen::judge(&tags(&["t0"]), &own);
        ledger.matched(ChatId(1), SessionId(10), true, 0, agreed, &violations);
        ledger.matched(ChatId(1), SessionId(11), false, 0, agreed, &violations);
        assert_eq!(violations.total(), 0);
        assert_eq!(ledger.chats_with_common_interests(), 1);

        let other = CommonSeen::judge(&tags(&["t3"]), &own);
        ledger.matched(ChatId(2), SessionId(12), true, 0, agreed, &violations);
        ledger.matched(ChatId(2), SessionId(13), false, 0, other, &violations);
        let lone_liar = CommonSeen::judge(&tags(&["t9"]), &own);
        ledger.matched(ChatId(3), SessionId(14), true, 0, lone_liar, &violations);
        assert_eq!(violations.by_kind()["common_interests_wrong"], 2);
    }

    #[test]
    fn a_proper_chat_breaks_no_rule() {
        let (ledger, violations) = (ChatLedger::default(), Violations::default());
        let first = ledger.matched(ChatId(1), SessionId(10), true, 0, OK, &violations);
        assert!(first.first && first.partner.is_none());
        let second = ledger.matched(ChatId(1), SessionId(11), false, 0, OK, &violations);
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
        ledger.matched(ChatId(1), SessionId(10), true, 0, OK, &violations);
        ledger.matched(ChatId(1), SessionId(11), true, 0, OK, &violations);
        ledger.matched(ChatId(1), SessionId(12), false, 0, OK, &violations);
        ledger.matched(ChatId(2), SessionId(13), false, 0, OK, &violations);
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
        ledger.matched(ChatId(3), SessionId(10), true, 0, OK, &violations);
        ledger.partner_disconnected(ChatId(3), SessionId(10));
        ledger.finish(&violations);
        assert_eq!(violations.total(), 0);
    }
}
