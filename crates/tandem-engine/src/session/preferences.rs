//! A user's checked preferences: what every ticket of a session is made from, from its
//! last accepted `join` until the next.

use std::time::{Duration, Instant};

use tandem_match::{CountryFilter, Gender, GenderFilter, Interests, Lang, Mode, SpyMode, Tag};

/// Checked preferences; what a ticket is made from at every (re-)queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preferences {
    pub mode: Mode,
    pub lang: Lang,
    /// Re-queue at once when the partner skips.
    pub auto_reroll: bool,
    pub interests: Interests,
    /// Never fall back to a partner without shared interests.
    pub interests_only: bool,
    /// How long to look for a shared interest first.
    pub interest_wait: Duration,
    /// Partners' countries accepted.
    pub countries: CountryFilter,
    /// Self-declared gender.
    pub gender: Option<Gender>,
    /// Partners' genders accepted (entitled).
    pub want_gender: GenderFilter,
    /// College mode: the verified college domain (entitled).
    pub college: Option<Tag>,
    /// College mode: the same college only.
    pub same_college: bool,
    /// When the entitlement behind `want_gender` or `college` runs out: re-queues after it
    /// are refused, so a connection kept open does not keep a premium filter for ever.
    pub premium_until: Option<Instant>,
    /// Spy mode: asking a question, or discussing one.
    pub spy: SpyMode,
}

impl Preferences {
    /// Random pairing in one partition: no interests, no filters.
    pub fn random(mode: Mode, lang: Lang, auto_reroll: bool) -> Self {
        Self {
            mode,
            lang,
            auto_reroll,
            interests: Interests::default(),
            interests_only: false,
            interest_wait: Duration::ZERO,
            countries: CountryFilter::default(),
            gender: None,
            want_gender: GenderFilter::default(),
            college: None,
            same_college: false,
            premium_until: None,
            spy: SpyMode::Off,
        }
    }
}
