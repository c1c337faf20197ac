//! tandem: a matchmaking server for random one-on-one chat.
//!
//! A browser connects over WebSocket to the [`gateway`]; each connection is a
//! [`session::UserSession`] actor, the single source of truth for whether its user is free.
//! Waiting users become [`shard::Ticket`]s that the [`router::Router`] sends to the
//! [`shard::Shard`] owning their bucket; the shard's pool ([`matching`], pure policy) picks a
//! partner, and the two sessions' seats are claimed together so a pairing is all or nothing.
//! Partners then talk session to session: chat lines and WebRTC signaling go straight to the
//! partner's session, named by chat id so a late line never reaches the next stranger.
//! The node also serves its own web client and, behind a token, an operator dashboard
//! ([`web`], [`admin`]; docs/web.md). docs/architecture.md draws this map.

pub mod abuse;
pub mod admin;
pub mod bus;
pub mod cluster;
pub mod config;
pub mod entitlement;
pub mod gateway;
pub mod geoip;
pub mod ice;
pub mod metrics;
pub mod moderation;
pub mod node;
pub mod privacy;
pub mod registry;
pub mod server;
pub mod session;
pub mod tls;
pub mod web;

pub use node::Node;
pub use server::{serve, RunningServer};
