//! tandem's pairing engine: everything that pairs users on one node, with no socket and no
//! network.
//!
//! - [`session`]: each user's state machine ([`SessionCore`](session::SessionCore)) and its
//!   [`Seat`](session::Seat), the claim that makes a pairing real;
//! - [`shard`]: the shard actors that own the waiting pool, each on a thread of its own, and
//!   the [`ClusterPort`](shard::ClusterPort) they hand what they cannot finish to;
//! - [`router`]: which shard owns a bucket; [`owners`]: which node owns it in a cluster;
//! - [`Engine`]: a node's shards, started and stopped together.
//!
//! The matching policy itself is `tandem-match`. This crate knows nothing of WebSocket,
//! NATS, HTTP or moderation: the server drives it through these types, and the in-process
//! load generator drives it directly.

pub mod owners;
pub mod router;
pub mod session;
pub mod shard;

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Arbiter};
use parking_lot::Mutex;

use crate::router::Router;
use crate::shard::{ClusterPort, Shard, ShardCore, ShardStats};

/// A node's shards: one actor each, on a thread of its own, and the router to them.
pub struct Engine {
    router: Router,
    /// One thread per shard.
    arbiters: Mutex<Vec<Arbiter>>,
}

impl Engine {
    /// Starts one shard per entry of `stats` (which it reports into), each with the port
    /// `port()` makes; their local tickets spill after `spill_after` (`None`: never, for a
    /// node that runs alone). Needs a running actix `System`.
    pub fn start(
        stats: &[Arc<ShardStats>],
        port: impl Fn() -> Arc<dyn ClusterPort>,
        spill_after: Option<Duration>,
    ) -> Self {
        assert!(!stats.is_empty(), "an engine needs a shard");
        let mut arbiters = Vec::with_capacity(stats.len());
        let mut addrs = Vec::with_capacity(stats.len());
        for stats in stats {
            let arbiter = Arbiter::new();
            let (stats, port) = (Arc::clone(stats), port());
            addrs.push(Shard::start_in_arbiter(&arbiter.handle(), move |_| {
                Shard::new(ShardCore::new(stats, port, spill_after))
            }));
            arbiters.push(arbiter);
        }
        Self {
            router: Router::new(addrs),
            arbiters: Mutex::new(arbiters),
        }
    }

    /// Where tickets go.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Stops the shard threads. Sessions must be gone first.
    pub fn stop(&self) {
        for arbiter in self.arbiters.lock().drain(..) {
            arbiter.stop();
            let _ = arbiter.join();
        }
    }
}
