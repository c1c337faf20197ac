//! The store of a node that runs alone: a redb database (`moderation.redb`) in the data
//! directory. Each bucket is a table; each value carries its key's revision in front. Every
//! write is a transaction committed to disk before it returns, so what was acknowledged
//! survives a crash. The node is the only writer, so it announces its own changes to
//! watchers.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::broadcast;

use super::{Bucket, Change, Changes, Kv, StoreError, Versioned};

/// The database file in the data directory.
pub const FILE: &str = "moderation.redb";

fn table(bucket: Bucket) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(bucket.name())
}

/// The embedded store.
pub struct Embedded {
    /// `None` once closed.
    db: parking_lot::RwLock<Option<Arc<Database>>>,
    changes: broadcast::Sender<(Bucket, Change)>,
}

impl Embedded {
    /// Opens (or makes) the database in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(unavailable)?;
        let db = Database::create(data_dir.join(FILE)).map_err(unavailable)?;
        let write = db.begin_write().map_err(unavailable)?;
        for bucket in Bucket::ALL {
            write.open_table(table(bucket)).map_err(unavailable)?;
        }
        write.commit().map_err(unavailable)?;
        Ok(Self {
            db: parking_lot::RwLock::new(Some(Arc::new(db))),
            changes: broadcast::channel(4096).0,
        })
    }

    /// Runs `work` on a blocking thread: redb reads and writes the disk.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = (self.db.read().clone()).ok_or(StoreError::Unavailable("closed".into()))?;
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|err| StoreError::Unavailable(err.to_string()))?
    }

    /// Writes `key` if `expect` says so of its current revision (`None`: absent).
    async fn write(
        &self,
        bucket: Bucket,
        key: &str,
        value: Vec<u8>,
        expect: Option<u64>,
    ) -> Result<u64, StoreError> {
        let owned = key.to_owned();
        let stored = value.clone();
        let revision = self
            .blocking(move |db| {
                let write = db.begin_write().map_err(unavailable)?;
                let revision = {
                    let mut t = write.open_table(table(bucket)).map_err(unavailable)?;
                    let current = t.get(owned.as_str()).map_err(unavailable)?;
                    let current = current.map(|v| revision_of(v.value()));
                    if current != expect {
                        return Err(StoreError::Conflict);
                    }
                    let revision = current.unwrap_or(0) + 1;
                    let mut bytes = revision.to_be_bytes().to_vec();
                    bytes.extend_from_slice(&stored);
                    t.insert(owned.as_str(), bytes.as_slice())
                        .map_err(unavailable)?;
                    revision
                };
                write.commit().map_err(unavailable)?;
                Ok(revision)
            })
            .await?;
        let change = Change {
            key: key.to_owned(),
            value: Some(value),
        };
        let _ = self.changes.send((bucket, change));
        Ok(revision)
    }
}

fn unavailable(err: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

fn revision_of(bytes: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(head)
}

#[async_trait]
impl Kv for Embedded {
    async fn get(&self, bucket: Bucket, key: &str) -> Result<Option<Versioned>, StoreError> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let read = db.begin_read().map_err(unavailable)?;
            let t = read.open_table(table(bucket)).map_err(unavailable)?;
            let found = t.get(key.as_str()).map_err(unavailable)?;
            Ok(found.map(|v| {
                let bytes = v.value();
                Versioned {
                    value: bytes[8..].to_vec(),
                    revision: revision_of(bytes),
                }
            }))
        })
        .await
    }

    async fn create(&self, bucket: Bucket, key: &str, value: Vec<u8>) -> Result<u64, StoreError> {
        self.write(bucket, key, value, None).await
    }

    async fn update(
        &self,
        bucket: Bucket,
        key: &str,
        value: Vec<u8>,
        revision: u64,
    ) -> Result<u64, StoreError> {
        self.write(bucket, key, value, Some(revision)).await
    }

    async fn remove(&self, bucket: Bucket, key: &str) -> Result<(), StoreError> {
        let owned = key.to_owned();
        let removed = self
            .blocking(move |db| {
                let write = db.begin_write().map_err(unavailable)?;
                let removed = {
                    let mut t = write.open_table(table(bucket)).map_err(unavailable)?;
                    let removed = t.remove(owned.as_str()).map_err(unavailable)?.is_some();
                    removed
                };
                write.commit().map_err(unavailable)?;
                Ok(removed)
            })
            .await?;
        if removed {
            let change = Change {
                key: key.to_owned(),
                value: None,
            };
            let _ = self.changes.send((bucket, change));
        }
        Ok(())
    }

    async fn list(&self, bucket: Bucket) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.blocking(move |db| {
            let read = db.begin_read().map_err(unavailable)?;
            let t = read.open_table(table(bucket)).map_err(unavailable)?;
            let mut out = Vec::new();
            for entry in t.iter().map_err(unavailable)? {
                let (key, value) = entry.map_err(unavailable)?;
                out.push((key.value().to_owned(), value.value()[8..].to_vec()));
            }
            Ok(out)
        })
        .await
    }

    async fn close(&self) {
        // The file is let go once the last operation under way ends.
        self.db.write().take();
    }

    async fn watch(&self, bucket: Bucket) -> Result<Changes, StoreError> {
        let receiver = self.changes.subscribe();
        let changes = futures_util::stream::unfold(receiver, move |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok((of, change)) if of == bucket => return Some((change, receiver)),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(Box::pin(changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moderation::store::{contract, ModerationStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_embedded_store_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        contract::holds(Arc::new(Embedded::open(dir.path()).unwrap())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_was_written_is_there_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = ModerationStore::new(Arc::new(Embedded::open(dir.path()).unwrap()));
            store.create(Bucket::Bans, "ban-1", &"kept").await.unwrap();
        }
        let store = ModerationStore::new(Arc::new(Embedded::open(dir.path()).unwrap()));
        assert_eq!(
            store.get::<String>(Bucket::Bans, "ban-1").await.unwrap(),
            Some("kept".into())
        );
        // Closed, the file may be opened again while the first handle still exists.
        store.kv().close().await;
        assert!(matches!(
            store.get::<String>(Bucket::Bans, "ban-1").await,
            Err(StoreError::Unavailable(_))
        ));
        let reopened = ModerationStore::new(Arc::new(Embedded::open(dir.path()).unwrap()));
        assert!(reopened
            .get::<String>(Bucket::Bans, "ban-1")
            .await
            .unwrap()
            .is_some());
    }
}
