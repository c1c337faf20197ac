//! Abuse prevention: what keeps bots and spam away from users before moderation has to act.
//!
//! - [`challenge`]: the proof-of-work challenge every connection solves before its first
//!   `join`, harder for an address that opens many connections.
//!
//! It builds on moderation's store (spent challenges are kept there, so that a solution is
//! accepted once in a whole cluster). Sessions ask it at `join`; the gateway tells it how
//! many connections an address holds.

pub mod challenge;

pub use self::challenge::{ChallengeError, ChallengeSettings, Challenges};

/// A node's abuse prevention.
#[derive(Debug)]
pub struct Abuse {
    /// The proof-of-work challenge.
    pub challenges: Challenges,
}

impl Abuse {
    /// Appends what it counts to the Prometheus text exposition.
    pub fn render(&self, out: &mut String, node: &str) {
        self.challenges.stats.render(out, node);
    }
}
