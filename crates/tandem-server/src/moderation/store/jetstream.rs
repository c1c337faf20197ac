//! The store of a cluster: NATS JetStream key-value buckets, one per [`Bucket`], named
//! `tandem_<cluster>_<bucket>`, so that a cluster needs nothing but NATS.
//!
//! Each bucket's stream is created explicitly with the key-value layout (one value per key,
//! rollups allowed, deletes denied, direct gets allowed) and then opened as a bucket: servers
//! of the 2.9 line answer the account query that creating a bucket in one step makes in a
//! form this client cannot read. Compare-and-set is JetStream's expected last sequence per
//! subject. Removing a key purges its subject from the stream, history and markers included.
//!
//! Durability is the operator's to configure (docs/moderation.md): JetStream acknowledges a
//! write before it reaches the disk unless the servers run with `sync_interval: always`, and
//! keeps one copy unless the buckets have replicas (`--store-replicas 3`).

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::kv::{CreateErrorKind, Operation, Store, UpdateErrorKind};
use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};
use async_nats::jetstream::Context;
use async_trait::async_trait;
use futures_util::StreamExt;

use super::{Bucket, Change, Changes, Kv, StoreError, Versioned};

/// How long one store operation may take before it counts as unavailable.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The cluster's store.
pub struct JetStream {
    buckets: HashMap<Bucket, Store>,
    context: Context,
}

impl JetStream {
    /// Opens the buckets of cluster `cluster` on `client`'s NATS, making them if needed,
    /// with `replicas` copies each.
    pub async fn open(
        client: async_nats::Client,
        cluster: &str,
        replicas: usize,
    ) -> Result<Self, StoreError> {
        let context = async_nats::jetstream::new(client);
        let mut buckets = HashMap::new();
        for bucket in Bucket::ALL {
            let name = format!("tandem_{cluster}_{}", bucket.name());
            let config = Config {
                name: format!("KV_{name}"),
                subjects: vec![format!("$KV.{name}.>")],
                max_messages_per_subject: 1,
                discard: DiscardPolicy::New,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                storage: StorageType::File,
                num_replicas: replicas.max(1),
                max_age: bucket.max_age().unwrap_or_default(),
                ..Config::default()
            };
            within(context.get_or_create_stream(config)).await?;
            let store = within(context.get_key_value(name)).await?;
            buckets.insert(bucket, store);
        }
        Ok(Self { buckets, context })
    }

    fn bucket(&self, bucket: Bucket) -> &Store {
        &self.buckets[&bucket]
    }
}

/// Runs a NATS call with the store's timeout.
async fn within<T, E: std::fmt::Display>(
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(StoreError::Unavailable(err.to_string())),
        Err(_) => Err(StoreError::Unavailable("timed out".into())),
    }
}

#[async_trait]
impl Kv for JetStream {
    async fn get(&self, bucket: Bucket, key: &str) -> Result<Option<Versioned>, StoreError> {
        let entry = within(self.bucket(bucket).entry(key)).await?;
        Ok(entry
            .filter(|e| e.operation == Operation::Put)
            .map(|e| Versioned {
                value: e.value.to_vec(),
                revision: e.revision,
            }))
    }

    async fn create(&self, bucket: Bucket, key: &str, value: Vec<u8>) -> Result<u64, StoreError> {
        let created = tokio::time::timeout(TIMEOUT, self.bucket(bucket).create(key, value.into()));
        match created.await {
            Ok(Ok(revision)) => Ok(revision),
            Ok(Err(err)) if err.kind() == CreateErrorKind::AlreadyExists => {
                Err(StoreError::Conflict)
            }
            Ok(Err(err)) => Err(StoreError::Unavailable(err.to_string())),
            Err(_) => Err(StoreError::Unavailable("timed out".into())),
        }
    }

    async fn update(
        &self,
        bucket: Bucket,
        key: &str,
        value: Vec<u8>,
        revision: u64,
    ) -> Result<u64, StoreError> {
        let updated = self.bucket(bucket).update(key, value.into(), revision);
        match tokio::time::timeout(TIMEOUT, updated).await {
            Ok(Ok(revision)) => Ok(revision),
            Ok(Err(err)) if err.kind() == UpdateErrorKind::WrongLastRevision => {
                Err(StoreError::Conflict)
            }
            Ok(Err(err)) => Err(StoreError::Unavailable(err.to_string())),
            Err(_) => Err(StoreError::Unavailable("timed out".into())),
        }
    }

    async fn remove(&self, bucket: Bucket, key: &str) -> Result<(), StoreError> {
        let store = self.bucket(bucket);
        // The purge marker tells watchers; purging the subject then drops it too.
        within(store.purge(key)).await?;
        let stream = within(self.context.get_stream(&store.stream_name)).await?;
        let subject = format!("{}{key}", store.prefix);
        within(async { stream.purge().filter(subject).await }).await?;
        Ok(())
    }

    async fn list(&self, bucket: Bucket) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let store = self.bucket(bucket);
        let mut keys = within(store.keys()).await?;
        let mut names = Vec::new();
        while let Some(key) = within(async { Ok::<_, String>(keys.next().await) }).await? {
            names.push(key.map_err(|err| StoreError::Unavailable(err.to_string()))?);
        }
        let mut out = Vec::with_capacity(names.len());
        for key in names {
            if let Some(found) = self.get(bucket, &key).await? {
                out.push((key, found.value));
            }
        }
        Ok(out)
    }

    async fn watch(&self, bucket: Bucket) -> Result<Changes, StoreError> {
        let watch = within(self.bucket(bucket).watch_all()).await?;
        let changes = watch.filter_map(|entry| async move {
            let entry = entry.ok()?;
            Some(Change {
                key: entry.key,
                value: (entry.operation == Operation::Put).then(|| entry.value.to_vec()),
            })
        });
        Ok(Box::pin(changes))
    }
}
