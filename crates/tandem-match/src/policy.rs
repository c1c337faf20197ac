//! The matching rule, written once: who may be paired with whom ([`verdict`],
//! [`compatible`]), and which of two candidates is the better partner ([`Rank`]).
//!
//! The pool does not call these on its hot path: it judges candidates from one-line
//! summaries, in lanes, past country sets (`slab.rs`, `pool.rs`), and that is where its
//! speed comes from. Each of those fast paths must say exactly what this module says, and
//! its tests check it against these functions: the summary's verdict against [`verdict`]
//! for every pair of ticket variants, the pool's choice against a model that ranks with
//! [`Rank`] and filters with [`verdict`], the engine's property test every pairing against
//! [`compatible`].

use std::time::Instant;

use super::TicketInfo;

/// How a candidate stands with a newcomer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The two may not be paired: the same user, or a filter of either turns the other
    /// away.
    No,
    /// They may, but they met recently: only if nobody else will do.
    Recent,
    /// They may.
    Yes,
}

/// How `candidate` stands with `newcomer` by who they are: never oneself; filters mutual
/// (countries, genders, college mode); a recent partner of either side a last resort.
pub fn verdict(newcomer: &TicketInfo, candidate: &TicketInfo) -> Verdict {
    if newcomer.session == candidate.session || !newcomer.filters_accept(candidate) {
        Verdict::No
    } else if newcomer.recently_met(candidate) {
        Verdict::Recent
    } else {
        Verdict::Yes
    }
}

/// Whether the two may be paired at `now`: the same bucket, [`verdict`] not `No`, and a
/// shared interest unless both accept a random partner by now. (Recent partners are a
/// preference, not a rule: see [`Verdict::Recent`].)
pub fn compatible(a: &TicketInfo, b: &TicketInfo, now: Instant) -> bool {
    a.bucket == b.bucket
        && verdict(a, b) != Verdict::No
        && ((a.random_ok(now) && b.random_ok(now)) || a.interests.overlap_count(&b.interests) > 0)
}

/// How good a compatible candidate is for a newcomer: more shared interests first, then the
/// one who has waited longer. `T` is the time the candidate started waiting, in whatever
/// form the caller keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rank<T> {
    /// Interests shared with the newcomer.
    pub shared: usize,
    /// When the candidate started waiting.
    pub since: T,
}

impl<T: Ord> Rank<T> {
    /// Whether a candidate of this rank is a better partner than one of `other`.
    pub fn beats(&self, other: &Self) -> bool {
        self.shared > other.shared || (self.shared == other.shared && self.since < other.since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_shared_interests_beat_a_longer_wait_and_a_tie_goes_to_the_longer_wait() {
        let rank = |shared, since| Rank { shared, since };
        assert!(rank(2, 10).beats(&rank(1, 0)));
        assert!(!rank(1, 0).beats(&rank(2, 10)));
        assert!(rank(1, 0).beats(&rank(1, 5)));
        assert!(!rank(1, 5).beats(&rank(1, 5)), "a tie is not better");
    }
}
