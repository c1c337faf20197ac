//! Abuse prevention: what keeps bots and spam away from users before moderation has to act.
//!
//! - [`challenge`]: the proof-of-work challenge every connection solves before its first
//!   `join`, harder for an address that opens many connections;
//! - [`filter`]: the rules every chat line passes before it reaches the partner (the
//!   operator's phrases, links in a chat's first lines, blasts, profanity);
//! - [`snapshots`]: stills of video chats handed to the operator's classifier, and the
//!   flagged ones kept encrypted for review.
//!
//! It builds on moderation's store (spent challenges are kept there, so that a solution is
//! accepted once in a whole cluster). Sessions ask it at `join`; the gateway tells it how
//! many connections an address holds.

use std::sync::Arc;

pub mod challenge;
pub mod filter;
pub mod snapshots;

pub use self::challenge::{ChallengeError, ChallengeSettings, Challenges};
pub use self::filter::{Filter, FilterSettings};

/// A node's abuse prevention.
#[derive(Debug)]
pub struct Abuse {
    /// The proof-of-work challenge.
    pub challenges: Challenges,
    /// The text filter.
    pub filter: Arc<Filter>,
    /// Snapshot moderation, when a classifier is configured.
    pub snapshots: Option<Arc<snapshots::Snapshots>>,
}

impl Abuse {
    /// How often video clients are asked a snapshot, in milliseconds (0: never).
    pub fn snapshot_interval_ms(&self) -> u32 {
        (self.snapshots.as_ref()).map_or(0, |s| {
            u32::try_from(s.settings.interval.as_millis()).unwrap_or(u32::MAX)
        })
    }

    /// Appends what it counts to the Prometheus text exposition.
    pub fn render(&self, out: &mut String, node: &str) {
        self.challenges.stats.render(out, node);
        self.filter.stats.render(out, node);
        if let Some(snapshots) = &self.snapshots {
            snapshots.stats.render(out, node);
        }
    }
}
