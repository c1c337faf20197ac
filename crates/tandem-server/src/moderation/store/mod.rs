//! Where moderation data is kept: one key-value trait ([`Kv`]) with two implementations, so
//! that a node alone keeps its data in an embedded database in its data directory
//! ([`Embedded`], redb: ACID, a stable file format) and a cluster in NATS JetStream
//! key-value buckets ([`JetStream`]), with the same behaviour. On top of it,
//! [`ModerationStore`] reads and writes typed records as JSON.
//!
//! Decisions (a ban lifted, a report resolved, a report merged into, a tally counted) are
//! made by compare-and-set on the key's revision, never on a value read earlier: two nodes
//! or two moderators acting at once cannot both win. Every record carries the time it
//! expires; the purge removes what has.

mod embedded;
mod jetstream;

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use self::embedded::Embedded;
pub use self::jetstream::JetStream;

/// A set of records of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// Bans, by id.
    Bans,
    /// Reports, by id (one per chat and reported client: repeated reports merge).
    Reports,
    /// What moderators did, by time and id.
    Audit,
    /// The recent reports and bans of each reported client, for the automatic rules.
    Tallies,
    /// The clients each client reported, which it is never paired with again.
    Blocks,
    /// Chat logs users saved, by id.
    Logs,
    /// Proof-of-work challenges already solved, by nonce, until they expire: a solution is
    /// accepted once, on any node.
    Spent,
    /// Video snapshots the classifier flagged, encrypted, by id.
    Snapshots,
}

impl Bucket {
    /// Every bucket.
    pub const ALL: [Bucket; 8] = [
        Self::Bans,
        Self::Reports,
        Self::Audit,
        Self::Tallies,
        Self::Blocks,
        Self::Logs,
        Self::Spent,
        Self::Snapshots,
    ];

    /// The bucket's name (a table, or a part of a key-value bucket's name).
    pub fn name(self) -> &'static str {
        match self {
            Self::Bans => "bans",
            Self::Reports => "reports",
            Self::Audit => "audit",
            Self::Tallies => "tallies",
            Self::Blocks => "blocks",
            Self::Logs => "logs",
            Self::Spent => "spent",
            Self::Snapshots => "snapshots",
        }
    }

    /// How long the bucket keeps a record whatever the purge does, where it has such a
    /// bound: a spent challenge is worthless once its challenge has expired (a challenge
    /// lives an hour at most), and a cluster spends one per connection, so its key-value
    /// bucket drops them by age itself.
    pub fn max_age(self) -> Option<std::time::Duration> {
        match self {
            Self::Spent => Some(std::time::Duration::from_secs(2 * 3600)),
            _ => None,
        }
    }
}

/// A value and the revision it was written at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub value: Vec<u8>,
    pub revision: u64,
}

/// A change to a bucket, as a watch sees it: the key's new value, or `None` when it went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// What a store operation can fail with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Compare-and-set lost: the key exists (create), or moved on (update).
    #[error("the record changed meanwhile")]
    Conflict,
    /// The store cannot be reached or failed to write.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A record that does not decode.
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
}

/// The changes of one bucket, from when the watch began.
pub type Changes = Pin<Box<dyn Stream<Item = Change> + Send>>;

/// A key-value store with compare-and-set.
#[async_trait]
pub trait Kv: Send + Sync + 'static {
    /// The value of `key`, and its revision.
    async fn get(&self, bucket: Bucket, key: &str) -> Result<Option<Versioned>, StoreError>;

    /// Writes `key` if it does not exist; [`StoreError::Conflict`] if it does.
    async fn create(&self, bucket: Bucket, key: &str, value: Vec<u8>) -> Result<u64, StoreError>;

    /// Writes `key` if its revision is still `revision`; [`StoreError::Conflict`] if not.
    async fn update(
        &self,
        bucket: Bucket,
        key: &str,
        value: Vec<u8>,
        revision: u64,
    ) -> Result<u64, StoreError>;

    /// Removes `key` and every earlier value of it.
    async fn remove(&self, bucket: Bucket, key: &str) -> Result<(), StoreError>;

    /// Every key and value of the bucket.
    async fn list(&self, bucket: Bucket) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// The bucket's changes from now on, including those made by other nodes.
    async fn watch(&self, bucket: Bucket) -> Result<Changes, StoreError>;

    /// Lets go of what the store holds (an embedded database's file lock), so that another
    /// process or node may open it; every later call fails as unavailable.
    async fn close(&self) {}
}

/// How many times a compare-and-set is tried before giving up.
const CAS_ATTEMPTS: usize = 16;

/// Typed records over a [`Kv`], as JSON.
#[derive(Clone)]
pub struct ModerationStore {
    kv: Arc<dyn Kv>,
}

impl ModerationStore {
    /// Records kept in `kv`.
    pub fn new(kv: Arc<dyn Kv>) -> Self {
        Self { kv }
    }

    /// The key-value store underneath.
    pub fn kv(&self) -> &Arc<dyn Kv> {
        &self.kv
    }

    /// The record at `key`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        bucket: Bucket,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.kv.get(bucket, key).await? {
            Some(found) => decode(&found.value).map(Some),
            None => Ok(None),
        }
    }

    /// Writes a new record at `key`; [`StoreError::Conflict`] if one is there.
    pub async fn create<T: Serialize>(
        &self,
        bucket: Bucket,
        key: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        self.kv.create(bucket, key, encode(record)).await.map(drop)
    }

    /// Changes the record at `key` by compare-and-set: `change` gets the record as it is
    /// (`None`: absent) and returns what to write (`None`: leave it), and runs again if
    /// another writer got there first. Returns what was written.
    pub async fn modify<T, F>(
        &self,
        bucket: Bucket,
        key: &str,
        change: F,
    ) -> Result<Option<T>, StoreError>
    where
        T: Serialize + DeserializeOwned + Send,
        F: Fn(Option<T>) -> Option<T> + Send + Sync,
    {
        for attempt in 0..CAS_ATTEMPTS {
            if attempt > 0 {
                // Writers that collided wait apart, a random while that grows, so that one of
                // them wins the next round.
                let most = 200 * (1u64 << attempt.min(6));
                let pause = rand::random::<u64>() % most;
                tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
            }
            let found = self.kv.get(bucket, key).await?;
            let (current, revision) = match found {
                Some(found) => (Some(decode::<T>(&found.value)?), Some(found.revision)),
                None => (None, None),
            };
            let Some(next) = change(current) else {
                return Ok(None);
            };
            let written = match revision {
                Some(revision) => self.kv.update(bucket, key, encode(&next), revision).await,
                None => self.kv.create(bucket, key, encode(&next)).await,
            };
            match written {
                Ok(_) => return Ok(Some(next)),
                Err(StoreError::Conflict) => continue,
                Err(err) => return Err(err),
            }
        }
        Err(StoreError::Unavailable(format!(
            "{key}: lost {CAS_ATTEMPTS} compare-and-set rounds in a row"
        )))
    }

    /// Every record of the bucket, by key; unreadable ones are skipped.
    pub async fn all<T: DeserializeOwned>(
        &self,
        bucket: Bucket,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let entries = self.kv.list(bucket).await?;
        Ok(entries
            .into_iter()
            .filter_map(|(key, value)| match decode(&value) {
                Ok(record) => Some((key, record)),
                Err(err) => {
                    tracing::warn!(bucket = bucket.name(), %key, error = %err, "skipped a record");
                    None
                }
            })
            .collect())
    }

    /// Removes the record at `key`, history included.
    pub async fn remove(&self, bucket: Bucket, key: &str) -> Result<(), StoreError> {
        self.kv.remove(bucket, key).await
    }
}

fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("records are plain data")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|err| StoreError::Corrupt(err.to_string()))
}

/// The behaviour both implementations must show, run by each one's tests (the JetStream one
/// against a real nats-server, from the workspace's end-to-end tests).
#[cfg(any(test, feature = "test-support"))]
pub mod contract {
    use futures_util::StreamExt;

    use super::*;

    /// Panics where `kv` breaks the contract.
    pub async fn holds(kv: Arc<dyn Kv>) {
        let bucket = Bucket::Bans;
        assert_eq!(kv.get(bucket, "a").await.unwrap(), None);
        let mut changes = kv.watch(bucket).await.unwrap();
        let first = kv.create(bucket, "a", b"1".to_vec()).await.unwrap();
        assert_eq!(
            kv.create(bucket, "a", b"2".to_vec()).await,
            Err(StoreError::Conflict),
            "create never overwrites"
        );
        let found = kv.get(bucket, "a").await.unwrap().unwrap();
        assert_eq!((found.value.as_slice(), found.revision), (&b"1"[..], first));
        let second = kv.update(bucket, "a", b"3".to_vec(), first).await.unwrap();
        assert_eq!(
            kv.update(bucket, "a", b"4".to_vec(), first).await,
            Err(StoreError::Conflict),
            "an update from a stale revision loses"
        );
        assert_eq!(kv.get(bucket, "a").await.unwrap().unwrap().revision, second);
        kv.create(bucket, "b", b"5".to_vec()).await.unwrap();
        kv.create(Bucket::Reports, "a", b"other".to_vec())
            .await
            .unwrap();
        let mut listed = kv.list(bucket).await.unwrap();
        listed.sort();
        assert_eq!(
            listed,
            vec![("a".into(), b"3".to_vec()), ("b".into(), b"5".to_vec())],
            "buckets are apart"
        );
        kv.remove(bucket, "a").await.unwrap();
        assert_eq!(kv.get(bucket, "a").await.unwrap(), None);
        kv.create(bucket, "a", b"6".to_vec()).await.unwrap();
        let seen: Vec<Change> = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            changes.by_ref().take(5).collect(),
        )
        .await
        .expect("the watch sees every change");
        let expected = [
            ("a", Some(&b"1"[..])),
            ("a", Some(&b"3"[..])),
            ("b", Some(&b"5"[..])),
            ("a", None),
            ("a", Some(&b"6"[..])),
        ]
        .map(|(key, value)| Change {
            key: key.into(),
            value: value.map(<[u8]>::to_vec),
        });
        assert_eq!(seen, expected);

        // Compare-and-set holds under contention: 20 increments from 4 writers.
        let store = ModerationStore::new(Arc::clone(&kv));
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    for _ in 0..5 {
                        store
                            .modify::<u32, _>(Bucket::Tallies, "count", |n| {
                                Some(n.unwrap_or(0) + 1)
                            })
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        assert_eq!(
            store.get::<u32>(Bucket::Tallies, "count").await.unwrap(),
            Some(20)
        );
    }
}
