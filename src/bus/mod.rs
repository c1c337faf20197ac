//! The bus: how nodes reach each other. One trait, two implementations: [`LocalBus`], in
//! process (the embedded default, and several nodes in one test process), and NATS (the
//! cluster; its own issue). Sessions and shards never see which one carries their events:
//! a partner on another node is just a [`Peer`](crate::session::Peer) whose link is a
//! [`RemoteLink`].
//!
//! Envelopes here are the inter-node vocabulary, kept apart from the client protocol and
//! from actor messages. A networked bus encodes them (bincode, behind a version byte).

mod local;

use std::sync::Arc;

pub use local::LocalBus;

use crate::ids::{NodeId, SessionId};
use crate::session::{SessionEvent, SessionLink};

/// What one node sends another.
#[derive(Clone, Debug)]
pub enum Envelope {
    /// An event for a session connected to the receiving node.
    ToSession {
        session: SessionId,
        event: SessionEvent,
    },
}

/// Node-to-node transport.
pub trait Bus: Send + Sync + 'static {
    /// Sends an envelope to `to`'s inbox without waiting. At most once, and in order for
    /// each (sender, receiver) pair, as core NATS delivers.
    fn send(&self, to: &NodeId, envelope: Envelope);
}

/// A link to a session on another node: events go through the bus to that node's inbox.
pub struct RemoteLink {
    pub node: NodeId,
    pub session: SessionId,
    pub bus: Arc<dyn Bus>,
}

impl SessionLink for RemoteLink {
    fn deliver(&self, event: SessionEvent) {
        self.bus.send(
            &self.node,
            Envelope::ToSession {
                session: self.session,
                event,
            },
        );
    }
}
