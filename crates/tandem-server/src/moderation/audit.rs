//! The audit log: every moderator action (and every automatic one), who, what, when.

use std::sync::atomic::{AtomicU64, Ordering};

use super::bans::StoreSlot;
use super::records::{new_id, unix_now, AuditEntry};
use super::retention::Retention;
use super::store::{Bucket, StoreError};

/// Microseconds since the epoch, strictly increasing within this process, so
/// two actions in the same second list in the order they were taken.
fn sort_stamp() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// A node's audit log.
pub struct Audit {
    store: StoreSlot,
    retention: Retention,
}

impl Audit {
    /// The log kept in `store` for `retention`.
    pub fn new(store: StoreSlot, retention: Retention) -> Self {
        Self { store, retention }
    }

    /// Records an action: `who` did `action` to `target`.
    pub async fn record(
        &self,
        who: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<AuditEntry, StoreError> {
        let entry = AuditEntry {
            id: new_id(),
            at: unix_now(),
            who: who.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail: detail.to_owned(),
        };
        // Keys sort by time, and within one node strictly in the order recorded.
        let key = format!("{:020}-{}", sort_stamp(), entry.id);
        self.store
            .get()
            .await?
            .create(Bucket::Audit, &key, &entry)
            .await?;
        tracing::info!(who, action, target, "moderation action");
        Ok(entry)
    }

    /// Every entry, the newest first.
    pub async fn all(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let store = self.store.get().await?;
        let mut entries: Vec<(String, AuditEntry)> = store.all(Bucket::Audit).await?;
        entries.sort_by(|a, b| b.0.cmp(&a.0));
        let now = unix_now();
        Ok(entries
            .into_iter()
            .map(|(_, entry)| entry)
            .filter(|entry| now < self.retention.audit_ends(entry))
            .collect())
    }
}
