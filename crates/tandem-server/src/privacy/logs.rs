//! Saved chat logs: a user saves what its session saw of a chat (during it, or up to five
//! minutes after it ended) and gets an address anyone holding it can read, `/logs/<id>`,
//! and one that deletes it, `/logs/<id>/delete?key=<secret>`. A log holds both sides' lines
//! with their times, the interests both named and when the chat took place; nothing else
//! about either user. The store keeps who saved it (for that user's access and erasure), and
//! the secret only as a hash. Nobody can list logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tandem_ids::ClientId;

use crate::moderation::allowance::Hourly;
use crate::moderation::identity::same_secret;
use crate::moderation::records::{unix_now, EvidenceLine, SavedLog};
use crate::moderation::store::{Bucket, StoreError};
use crate::moderation::{Retention, StoreSlot};

/// Logs one client may save per hour (saving a chat again counts too).
pub const SAVES_PER_HOUR: usize = 30;

/// What a session hands over to save.
#[derive(Clone, Debug)]
pub struct Draft {
    /// When the chat began, and ended (Unix milliseconds).
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    pub common_interests: Vec<String>,
    /// Oldest first; `from` is `you` or `stranger`.
    pub lines: Vec<EvidenceLine>,
}

/// Where a saved log is: its id and the secret that deletes it. A session keeps it to save
/// the same chat again at the same address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    pub id: String,
    pub secret: String,
}

impl Saved {
    /// The log's address.
    pub fn url(&self) -> String {
        format!("/logs/{}", self.id)
    }

    /// The address that deletes it.
    pub fn delete_url(&self) -> String {
        format!("/logs/{}/delete?key={}", self.id, self.secret)
    }
}

/// Why a log was not saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("too many saved logs: at most {SAVES_PER_HOUR} an hour")]
    RateLimited,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a log was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("no such log")]
    NotFound,
    #[error("wrong key")]
    WrongKey,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the logs counted since the node started.
#[derive(Default)]
pub struct LogStats {
    pub saved: AtomicU64,
    pub deleted: AtomicU64,
}

/// A node's saved logs.
pub struct SavedLogs {
    store: StoreSlot,
    retention: Retention,
    allowance: Hourly,
    pub stats: Arc<LogStats>,
}

/// 128 random bits as 32 hex digits.
fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `id` has the shape of a log id (anything else is not looked up).
pub fn well_formed(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl SavedLogs {
    /// Logs kept in `store` for `retention`.
    pub fn new(store: StoreSlot, retention: Retention) -> Self {
        Self {
            store,
            retention,
            allowance: Hourly::new(SAVES_PER_HOUR),
            stats: Arc::default(),
        }
    }

    /// Saves `draft` for `saver`: at a new address, or at `again`'s when the session saved
    /// this chat before (the log then holds the lines up to now).
    pub async fn save(
        &self,
        saver: &ClientId,
        draft: Draft,
        again: Option<Saved>,
    ) -> Result<Saved, SaveError> {
        let now = unix_now();
        if !self.allowance.take(saver.key(), now) {
            return Err(SaveError::RateLimited);
        }
        let store = self.store.get().await?;
        // Saved again: at the same address, unless the log was deleted meanwhile (with its
        // key, or by an erasure): a deleted address never comes back to life.
        let again = match again {
            Some(saved) => (store.get::<SavedLog>(Bucket::Logs, &saved.id).await?).map(|_| saved),
            None => None,
        };
        let saved = again.unwrap_or_else(|| Saved {
            id: random_hex(),
            secret: random_hex(),
        });
        let log = SavedLog {
            id: saved.id.clone(),
            secret_hash: hash(&saved.secret),
            saver: saver.as_str().to_owned(),
            started_ms: draft.started_ms,
            ended_ms: draft.ended_ms,
            saved_at: now,
            common_interests: draft.common_interests,
            lines: draft.lines,
        };
        store
            .modify::<SavedLog, _>(Bucket::Logs, &saved.id, |_| Some(log.clone()))
            .await?;
        self.stats.saved.fetch_add(1, Ordering::Relaxed);
        Ok(saved)
    }

    /// The log `id`, unless it is gone or past its retention.
    pub async fn get(&self, id: &str) -> Result<Option<SavedLog>, StoreError> {
        if !well_formed(id) {
            return Ok(None);
        }
        let log = self
            .store
            .get()
            .await?
            .get::<SavedLog>(Bucket::Logs, id)
            .await?;
        let now = unix_now();
        Ok(log.filter(|log| now < self.retention.log_ends(log)))
    }

    /// Deletes the log `id` if `secret` is the one its `delete_url` carries.
    pub async fn delete(&self, id: &str, secret: &str) -> Result<(), DeleteError> {
        let log = self.get(id).await?.ok_or(DeleteError::NotFound)?;
        if !same_secret(&hash(secret), &log.secret_hash) {
            return Err(DeleteError::WrongKey);
        }
        self.store.get().await?.remove(Bucket::Logs, id).await?;
        self.stats.deleted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_secrets_are_128_random_bits() {
        let (a, b) = (random_hex(), random_hex());
        assert!(well_formed(&a) && well_formed(&b));
        assert_ne!(a, b);
        assert!(!well_formed("../../etc/passwd"));
        assert!(!well_formed(&a.to_uppercase()));
        let saved = Saved {
            id: a.clone(),
            secret: b.clone(),
        };
        assert_eq!(saved.url(), format!("/logs/{a}"));
        assert_eq!(saved.delete_url(), format!("/logs/{a}/delete?key={b}"));
    }
}
