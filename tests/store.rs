//! The cluster's moderation store against a real `nats-server` with JetStream: the same
//! contract the embedded store keeps (compare-and-set, buckets apart, removal, watches), and
//! what was written survives a restart of the server.

mod common;

use std::sync::Arc;

use common::nats::NatsServer;
use tandem_server::moderation::retention;
use tandem_server::moderation::store::{contract, Bucket, JetStream, ModerationStore};

async fn connect(nats: &NatsServer) -> async_nats::Client {
    async_nats::connect(nats.url())
        .await
        .expect("nats-server is up")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jetstream_store_keeps_the_contract() {
    let nats = NatsServer::start();
    let store = JetStream::open(connect(&nats).await, "contract", 1)
        .await
        .unwrap();
    contract::holds(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_leaves_only_what_is_kept_history_included() {
    let nats = NatsServer::start();
    let client = connect(&nats).await;
    let store = JetStream::open(client.clone(), "purge", 1).await.unwrap();
    let left = retention::contract::purge_leaves_only_what_is_kept(Arc::new(store)).await;
    assert_eq!(left, Bucket::ALL.len());
    // Nothing of a purged key is left in the streams: one message per bucket, the kept one.
    let jetstream = async_nats::jetstream::new(client);
    for bucket in Bucket::ALL {
        let name = format!("KV_tandem_purge_{}", bucket.name());
        let mut stream = jetstream.get_stream(&name).await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        assert_eq!(state.messages, 1, "{name}: {state:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_written_survives_a_restart_of_the_nats_server() {
    let mut nats = NatsServer::start();
    {
        let kv = JetStream::open(connect(&nats).await, "restart", 1)
            .await
            .unwrap();
        let store = ModerationStore::new(Arc::new(kv));
        store.create(Bucket::Bans, "ban-1", &"kept").await.unwrap();
    }
    nats.restart();
    let kv = JetStream::open(connect(&nats).await, "restart", 1)
        .await
        .unwrap();
    let store = ModerationStore::new(Arc::new(kv));
    assert_eq!(
        store.get::<String>(Bucket::Bans, "ban-1").await.unwrap(),
        Some("kept".into())
    );
    // Opening again finds the buckets made before, and another cluster's are apart.
    let other = JetStream::open(connect(&nats).await, "other", 1)
        .await
        .unwrap();
    let other = ModerationStore::new(Arc::new(other));
    assert_eq!(
        other.get::<String>(Bucket::Bans, "ban-1").await.unwrap(),
        None
    );
}
