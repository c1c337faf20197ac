//! The user session's state machine and its seat: the single source of truth for whether a
//! user is free.
//!
//! - [`SessionCore`] is the state machine (`Idle → Waiting(ticket) → Chatting(partner)`), pure
//!   code that turns inputs into [`Effect`]s;
//! - [`Seat`] is the one piece of it that shards touch: the claim that makes a pairing real;
//! - [`Preferences`] are what every ticket of a session is made from.
//!
//! A session never reads another session's state; it only sends it [`SessionEvent`]s, through
//! a [`SessionLink`] that may lead to an actor on this node, to another node, or to a test.

mod core;
mod identity;
mod preferences;
mod seat;
mod transcript;

use std::sync::Arc;

use tandem_ids::{ChatId, NodeId, SessionId};
use tandem_proto::EndReason;

pub use self::core::{ChatInput, Effect, Line, Phase, SessionCore, MAX_TEXT_CHARS};
pub use self::identity::Identity;
pub use self::preferences::Preferences;
pub use self::seat::{claim_pair, claim_trio, Claim, Group, Pairing, Seat, SeatState};
pub use self::transcript::{KEPT_AFTER_END, REPORT_WINDOW};

/// What other parts of the system tell a session. Delivered through a [`SessionLink`], so a
/// sender does not care whether the session is an actor here, on another node, or a probe
/// in a test.
#[derive(Clone, Debug)]
pub enum SessionEvent {
    /// A shard wrote a pairing into this session's seat; the session should look.
    SeatChanged,
    /// The partner of `chat` ended it; `reason` is already from this side's view
    /// (`partner_skipped`, ...).
    PartnerEnded { chat: ChatId, reason: EndReason },
    /// Something the partner of `chat` wrote.
    Relay { chat: ChatId, item: ChatInput },
    /// For the spy of `chat`: something stranger `from` (1 or 2) wrote or typed.
    Watched {
        chat: ChatId,
        from: u8,
        item: ChatInput,
    },
    /// The node is going down (shutdown or drain): say so and close.
    Shutdown,
    /// Another node of the cluster was declared dead: a chat with a partner there is over.
    NodeLost(NodeId),
    /// The user was banned while connected: say so and close.
    Banned {
        ban: String,
        until: Option<u64>,
        reason: String,
    },
}

impl actix::Message for SessionEvent {
    type Result = ();
}

/// A way to deliver [`SessionEvent`]s to one session. At most once, in order per sender.
pub trait SessionLink: Send + Sync + 'static {
    /// Queues the event; never blocks. An event for a session that is gone is dropped.
    fn deliver(&self, event: SessionEvent);

    /// The node the session lives on, when that is another node (`None`: this one).
    fn remote_node(&self) -> Option<&NodeId> {
        None
    }
}

impl SessionLink for actix::Recipient<SessionEvent> {
    fn deliver(&self, event: SessionEvent) {
        self.do_send(event);
    }
}

/// The other side of a chat (or a ticket's owner): who it is and how to reach it.
#[derive(Clone)]
pub struct Peer {
    pub session: SessionId,
    pub link: Arc<dyn SessionLink>,
    /// The user behind the session (never told to the other side).
    pub who: Arc<Identity>,
}

impl Peer {
    /// Delivers an event to this peer.
    pub fn send(&self, event: SessionEvent) {
        self.link.deliver(event);
    }

    /// Whether the peer lives on `node` (another node of the cluster).
    pub fn lives_on(&self, node: &NodeId) -> bool {
        self.link.remote_node() == Some(node)
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Peer({})", self.session)
    }
}
