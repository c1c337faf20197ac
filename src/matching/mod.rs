//! The matching policy: who may be paired with whom, and the waiting pool that finds them.
//!
//! Plain code, no actors and no I/O: time is passed in, and the pool knows nothing of
//! sessions or sockets (it carries an opaque payload per ticket). The shard actor drives it;
//! property tests and benchmarks drive it alone. It must never block, allocate per pool
//! entry on the hot path beyond the entry itself, or scan the pool.

mod country;
mod deadlines;
mod gender;
mod hash;
mod huge;
mod index;
mod interests;
mod pool;
#[cfg(test)]
mod pool_model;
mod prefs;
mod ring;
mod slab;
mod tags;
mod ticket;

pub use country::{Country, CountryFilter};
pub use gender::{Gender, GenderFilter};
pub use hash::FastHasher;
pub use interests::{Fingerprint, Interest, InterestError, Interests, Tag};
pub use pool::{WaitingPool, NARROW_SCAN_LIMIT, SCAN_LIMIT};
pub use prefs::{JoinRules, Lang, Mode, PrefError, Preferences, SpyMode};
pub use ticket::{
    BucketKey, RecentPartners, RecentSet, TicketInfo, Waiting, RECENT_FOR, RECENT_PARTNERS,
};
