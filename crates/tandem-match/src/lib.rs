//! The matching policy: who may be paired with whom, and the waiting pool that finds them.
//!
//! Plain code, no actors and no I/O: time is passed in, and the pool knows nothing of
//! sessions or sockets (it carries an opaque payload per ticket). The shard actor drives it;
//! property tests and benchmarks drive it alone. It must never block, allocate per pool
//! entry on the hot path beyond the entry itself, or scan the pool.

mod bucket;
mod country;
mod deadlines;
mod gender;
mod hash;
mod huge;
mod index;
mod interests;
mod policy;
mod pool;
#[cfg(test)]
mod pool_model;
mod prefetch;
mod ring;
mod slab;
mod spy;
mod tags;
mod ticket;

pub use bucket::{BucketKey, Lang, Mode};
pub use country::{Country, CountryFilter};
pub use gender::{Gender, GenderFilter};
pub use hash::FastHasher;
pub use interests::{Fingerprint, Interest, InterestError, Interests, Tag};
pub use policy::{compatible, verdict, Rank, Verdict};
pub use pool::{WaitingPool, NARROW_SCAN_LIMIT, SCAN_LIMIT};
pub use spy::SpyMode;
pub use ticket::{
    Blocked, RecentPartners, RecentSet, TicketInfo, Waiting, RECENT_FOR, RECENT_PARTNERS,
};
