//! What the pool knows of one waiting user.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_ids::{SessionId, TicketId};

use super::{BucketKey, Country, CountryFilter, Gender, GenderFilter, Interests, SpyMode, Tag};

/// How many recent partners a user remembers, and for how long.
pub const RECENT_PARTNERS: usize = 4;
/// How long a recent partner is avoided.
pub const RECENT_FOR: Duration = Duration::from_secs(120);

/// The last few partners of a user, avoided while someone else is waiting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecentPartners {
    /// Newest last; `None` slots are unused.
    slots: [Option<(SessionId, Instant)>; RECENT_PARTNERS],
}

impl RecentPartners {
    /// Remembers a partner, forgetting the oldest when full.
    pub fn push(&mut self, partner: SessionId, now: Instant) {
        self.slots.rotate_left(1);
        self.slots[RECENT_PARTNERS - 1] = Some((partner, now));
    }

    /// The partners still recent at `now`, for a ticket.
    pub fn live(&self, now: Instant) -> RecentSet {
        let mut live = RecentSet::default();
        for (id, at) in self.slots.iter().flatten() {
            if now.saturating_duration_since(*at) < RECENT_FOR {
                live.ids[live.len as usize] = *id;
                live.len += 1;
            }
        }
        live
    }
}

/// The recent partners a ticket carries: bare ids, already aged, so that a pool entry stays
/// small (40 bytes instead of 128 with timestamps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecentSet {
    ids: [SessionId; RECENT_PARTNERS],
    len: u8,
}

impl Default for RecentSet {
    fn default() -> Self {
        Self {
            ids: [SessionId(0); RECENT_PARTNERS],
            len: 0,
        }
    }
}

impl RecentSet {
    /// Whether `session` is among them.
    #[inline]
    pub fn contains(&self, session: SessionId) -> bool {
        self.ids[..self.len as usize].contains(&session)
    }

    /// The ids, for a ticket sent to another node.
    pub fn ids(&self) -> &[SessionId] {
        &self.ids[..self.len as usize]
    }

    /// A set of at most [`RECENT_PARTNERS`] ids (extra ones are ignored), for a ticket
    /// received from another node.
    pub fn from_ids(ids: impl IntoIterator<Item = SessionId>) -> Self {
        let mut set = Self::default();
        for id in ids.into_iter().take(RECENT_PARTNERS) {
            set.ids[set.len as usize] = id;
            set.len += 1;
        }
        set
    }
}

/// One user's stay in the pool, as the policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketInfo {
    pub id: TicketId,
    pub session: SessionId,
    pub bucket: BucketKey,
    /// Partners to avoid while others wait (already aged by `RecentPartners::live`).
    pub recent: RecentSet,
    /// When the user started waiting; the pool prefers whoever waited longest.
    pub since: Instant,
    /// Interests; while `random_from` is in the future, only a partner sharing one will do.
    pub interests: Interests,
    /// From when a partner without shared interests is acceptable: `since` for users without
    /// interests, `since + interest_wait` for users with some, never (`None`) for
    /// `interests_only`.
    pub random_from: Option<Instant>,
    /// The user's own country, decided by the server.
    pub country: Country,
    /// The countries the user accepts partners from.
    pub countries: CountryFilter,
    /// Self-declared gender, if any.
    pub gender: Option<Gender>,
    /// The genders the user accepts partners of (an entitled filter).
    pub want_gender: GenderFilter,
    /// In college mode: the user's verified college domain. College users meet only each
    /// other.
    pub college: Option<Tag>,
    /// In college mode: only users of the same college.
    pub same_college: bool,
    /// Spy mode: such tickets wait apart from the pool's queues (see `shard::SpyPool`).
    pub spy: SpyMode,
    /// The user's client, as a key ([`tandem_ids::ClientId::key`]): what others block.
    pub client: u64,
    /// The clients this user must never be paired with (those it reported).
    pub blocked: Blocked,
}

impl TicketInfo {
    /// A ticket with no interests and no filters, waiting from `since`.
    pub fn plain(id: TicketId, session: SessionId, bucket: BucketKey, since: Instant) -> Self {
        Self {
            id,
            session,
            bucket,
            recent: RecentSet::default(),
            since,
            interests: Interests::default(),
            random_from: Some(since),
            country: Country::UNKNOWN,
            countries: CountryFilter::default(),
            gender: None,
            want_gender: GenderFilter::default(),
            college: None,
            same_college: false,
            spy: SpyMode::Off,
            client: session.0,
            blocked: Blocked::default(),
        }
    }

    /// Whether either side would rather not meet the other again so soon.
    pub fn recently_met(&self, other: &TicketInfo) -> bool {
        self.recent.contains(other.session) || other.recent.contains(self.session)
    }

    /// Whether a partner without shared interests is acceptable at `now`.
    pub fn random_ok(&self, now: Instant) -> bool {
        self.random_from.is_some_and(|from| from <= now)
    }

    /// Whether each side's filters accept the other (filters are mutual): neither blocks the
    /// other's client, countries, genders, and college mode (college users meet only college
    /// users, of the same college when either asks).
    pub fn filters_accept(&self, other: &TicketInfo) -> bool {
        !self.blocked.contains(other.client)
            && !other.blocked.contains(self.client)
            && self.countries.accepts(other.country)
            && other.countries.accepts(self.country)
            && self.want_gender.accepts(other.gender)
            && other.want_gender.accepts(self.gender)
            && match (&self.college, &other.college) {
                (None, None) => true,
                (Some(a), Some(b)) => !(self.same_college || other.same_college) || a == b,
                _ => false,
            }
    }

    /// Whether the user's own filters accept every partner: no country or gender filter,
    /// and not in college mode (college users meet only each other). The pool keeps these
    /// users in queue lanes of their own, so that users with narrow filters, who turn most
    /// newcomers away, never hide them from a search.
    pub fn accepts_everyone(&self) -> bool {
        self.countries.is_open() && self.want_gender.is_open() && self.college.is_none()
    }
}

/// The clients a user must never be paired with, by key: those it reported. Shared by every
/// ticket of a session, like its interests; empty for most users, and then no allocation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blocked(Option<Arc<[u64]>>);

impl Blocked {
    /// The most clients one user blocks; the oldest go first.
    pub const MAX: usize = 256;

    /// The set of these keys (at most [`Self::MAX`], the last ones given).
    pub fn new(keys: impl IntoIterator<Item = u64>) -> Self {
        let mut keys: Vec<u64> = keys.into_iter().collect();
        if keys.len() > Self::MAX {
            keys.drain(..keys.len() - Self::MAX);
        }
        keys.sort_unstable();
        keys.dedup();
        Self((!keys.is_empty()).then(|| Arc::from(keys)))
    }

    /// Whether `client` is blocked.
    pub fn contains(&self, client: u64) -> bool {
        self.0
            .as_deref()
            .is_some_and(|keys| keys.binary_search(&client).is_ok())
    }

    /// Whether nobody is blocked.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The keys, in order.
    pub fn keys(&self) -> &[u64] {
        self.0.as_deref().unwrap_or_default()
    }
}

/// A pool entry: the policy's view of the ticket plus the driver's payload (for the shard,
/// the handle that lets it claim the user's seat).
#[derive(Clone, Debug)]
pub struct Waiting<T> {
    pub ticket: TicketInfo,
    pub payload: T,
}
