//! What a shard keeps with each waiting user: a local user's seat, or a remote user's home.

use std::sync::Arc;

use tandem_ids::NodeId;
use tandem_proto::PartnerInfo;

use crate::session::{Identity, Peer, Seat};

/// The per-entry payload a shard keeps in its pool.
#[derive(Debug)]
pub enum Claimant {
    /// A user of this node: its seat can be claimed here and now.
    Local {
        seat: Arc<Seat>,
        peer: Peer,
        public: PartnerInfo,
    },
    /// A user of another node, spilled here; only its home can claim its seat.
    Remote {
        home: NodeId,
        /// The home's (instance, epoch) when it sent the ticket.
        tag: (u64, u32),
        public: PartnerInfo,
        /// Who the user is (for a report by its partner).
        who: Arc<Identity>,
    },
}
