//! Moderation: who a client is, who may connect and join, what users report, the bans and
//! the rule that issues them, the audit log, and where all of it is kept.
//!
//! - [`identity`]: server-issued, signed client ids; the client's address;
//! - [`admission`]: the checks at the WebSocket handshake and at every `join`;
//! - [`reports`]: reports with their evidence, merged per chat, and the automatic rule
//!   ([`rules`]) they feed;
//! - [`bans`]: bans issued, lifted and enforced on every node ([`banlist`] indexes them);
//! - [`audit`]: every moderator action;
//! - [`store`]: one key-value trait, an embedded database on a node alone and JetStream
//!   buckets in a cluster; [`records`]: what is kept.
//!
//! Moderation is a room of its own: sessions hand it reports and ask it at `join`, the
//! gateway asks it at the handshake, the operator API drives it, and the matching policy
//! never knows about it beyond "never pair these two". It sees a chat's lines only in a
//! report a user filed.

pub mod admission;
pub mod allowance;
pub mod audit;
pub mod banlist;
pub mod bans;
pub mod identity;
pub mod records;
pub mod reports;
pub mod retention;
pub mod rules;
pub mod stats;
pub mod store;

use std::sync::Arc;

pub use self::admission::{Admission, Refusal};
pub use self::audit::Audit;
pub use self::bans::{Bans, StoreSlot};
pub use self::identity::IdIssuer;
pub use self::reports::{Filing, Reports};
pub use self::retention::Retention;
pub use self::rules::Rule;
pub use self::stats::ModerationStats;
pub use self::store::ModerationStore;
use crate::registry::Registry;

/// A node's moderation.
pub struct Moderation {
    /// Issues and verifies client ids.
    pub issuer: IdIssuer,
    /// Who may connect and join.
    pub admission: Admission,
    /// Bans.
    pub bans: Arc<Bans>,
    /// Reports.
    pub reports: Reports,
    /// What moderators did.
    pub audit: Arc<Audit>,
    /// What it counts.
    pub stats: Arc<ModerationStats>,
    store: StoreSlot,
    rule: Rule,
    retention: Retention,
}

impl Moderation {
    /// Moderation over the store `store` (once open), closing banned sessions of
    /// `registry`, issuing ids with `issuer`, banning by `rule`, keeping records for
    /// `retention`. Start [`Bans::follow`] to keep the node's bans in step with the store,
    /// and [`Moderation::purge_every`] to remove what expired.
    pub fn new(
        store: StoreSlot,
        registry: Arc<Registry>,
        issuer: IdIssuer,
        rule: Rule,
        retention: Retention,
    ) -> Self {
        let stats = Arc::new(ModerationStats::default());
        let bans = Arc::new(Bans::new(
            store.clone(),
            registry,
            retention,
            Arc::clone(&stats),
        ));
        let audit = Arc::new(Audit::new(store.clone(), retention));
        let reports = Reports::new(
            store.clone(),
            Arc::clone(&bans),
            Arc::clone(&audit),
            rule,
            retention,
            Arc::clone(&stats),
        );
        Self {
            issuer,
            admission: Admission::new(Arc::clone(&bans)),
            bans,
            reports,
            audit,
            stats,
            store,
            rule,
            retention,
        }
    }

    /// The automatic rule.
    pub fn rule(&self) -> Rule {
        self.rule
    }

    /// How long records are kept.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The store, once open.
    pub fn store(&self) -> &StoreSlot {
        &self.store
    }

    /// Removes expired records every `interval`, for as long as it runs (every node of a
    /// cluster does; removing twice is harmless).
    pub async fn purge_every(self: Arc<Self>, interval: std::time::Duration) {
        loop {
            tokio::time::sleep(interval).await;
            let Ok(store) = self.store.get().await else {
                continue;
            };
            let now = records::unix_now();
            match retention::purge(&store, &self.retention, &self.rule, now).await {
                Ok(purged) => {
                    self.stats.purged(&purged);
                    if purged.total() > 0 {
                        tracing::info!(
                            records = purged.total(),
                            "purged expired moderation records"
                        );
                    }
                }
                Err(err) => {
                    self.stats
                        .store_errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(error = %err, "the purge failed; trying again");
                }
            }
        }
    }
}
