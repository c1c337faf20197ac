//! The client protocol, v1: what clients and the server say to each other over WebSocket.
//!
//! The same message types travel as JSON text frames (`{"type": "join", ...}`) and as bincode
//! binary frames (`/ws?codec=bincode`). serde's internally tagged enums give the JSON shape;
//! bincode's own derives (which ignore serde attributes) encode the enum as a variant index
//! followed by its fields. Variants and fields are therefore only ever appended, never
//! reordered or removed: that order is the bincode wire format. docs/protocol.md is the
//! contract; this module must never hold session or matching logic.

mod client;
mod codec;
mod server;
mod signal;

pub use client::{ClientMsg, Join};
pub use codec::{Codec, DecodeError, Frame, WireMessage, MAX_FRAME_BYTES};
pub use server::{
    EndReason, ErrorCode, IceServer, Limits, Matched, PartnerInfo, ServerMsg, SpyInfo, SpyRole,
    Welcome,
};
pub use signal::SignalData;

/// The protocol version this server speaks, sent as `welcome.proto`.
pub const PROTOCOL_VERSION: u32 = 1;
