//! The user session: one actix actor per WebSocket connection, running the engine's
//! [`SessionCore`](tandem_engine::session::SessionCore) for its user.
//!
//! - [`UserSession`] owns the socket, the writer queue, the heartbeat and the rate limits,
//!   and carries the core's effects out, with what it needs of its node in a
//!   [`SessionEnv`];
//! - [`preferences`] turns a `join` into checked preferences under the node's
//!   [`JoinRules`]; [`RateLimits`] bound what a connection may send.

mod actor;
mod env;
mod join;
mod limits;

pub use self::actor::{UserSession, UserSessionParams};
pub use self::env::{SessionEnv, SessionSettings};
pub use self::join::{preferences, JoinRules, PrefError};
pub use self::limits::{Kind, LimitConfig, RateLimits, Verdict};
