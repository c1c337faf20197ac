//! Admission: the checks a connection passes at the WebSocket handshake, and a `join` before
//! its user enters the pool. Today: bans, by client id, device id and address.
//!
//! Every refusal is typed ([`Refusal`]) and maps to what the client is told: at the
//! handshake the first frame is `error {code: "banned", message, until, ban}` and the
//! connection closes with 1008, without `welcome`; at `join` the same error.

use std::sync::Arc;

use tandem_engine::session::Identity;
use tandem_proto::{ErrorCode, ServerMsg};

use super::bans::Bans;
use super::records::Ban;

/// Why a connection or a `join` is turned away.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A ban in force names the client, its device or its address.
    #[error("you are banned: {}", .0.reason)]
    Banned(Box<Ban>),
}

impl Refusal {
    /// The message the client is told.
    pub fn message(&self) -> ServerMsg {
        match self {
            Self::Banned(ban) => ServerMsg::Error {
                code: ErrorCode::Banned,
                message: self.to_string(),
                until: Some(ban.until),
                ban: Some(ban.id.clone()),
                challenge: None,
            },
        }
    }
}

/// The node's admission rules.
pub struct Admission {
    bans: Arc<Bans>,
}

impl Admission {
    /// Admission by these bans.
    pub fn new(bans: Arc<Bans>) -> Self {
        Self { bans }
    }

    /// Whether the user `who` may open a WebSocket (waiting, when the node has just
    /// started, until it knows the bans).
    pub async fn handshake(&self, who: &Identity) -> Result<(), Refusal> {
        if !self.bans.loaded().await {
            tracing::warn!("the bans are not loaded (store unreachable): admitting");
        }
        self.join(who)
    }

    /// Whether a connection's `join` may enter the pool.
    pub fn join(&self, who: &Identity) -> Result<(), Refusal> {
        match self.bans.check(who) {
            Some(ban) => Err(Refusal::Banned(Box::new(ban))),
            None => Ok(()),
        }
    }
}
