//! The client protocol, v1: what clients and the server say to each other over WebSocket.
//!
//! The same message types travel as JSON text frames (`{"type": "join", ...}`) and as bincode
//! binary frames (`/ws?codec=bincode`). serde's internally tagged enums give the JSON shape;
//! bincode's own derives (which ignore serde attributes) encode the enum as a variant index
//! followed by its fields. Variants and fields are therefore only ever appended, never
//! reordered or removed: that order is the bincode wire format. docs/protocol.md is the
//! contract; this crate must never hold session or matching logic.
//!
//! It also carries what every client of the protocol shares: the identifiers
//! ([`ids`], re-exported from `tandem-ids`) and the durations that command lines and scenario
//! files write ([`duration`]).

mod challenge;
mod client;
mod codec;
pub mod duration;
mod scan;
mod server;
mod signal;
mod snapshot;

pub use challenge::{Challenge, ChallengeParameters};
pub use client::{ClientMsg, Join};
pub use codec::{Codec, DecodeError, Frame, WireMessage, MAX_FRAME_BYTES};
pub use server::{
    EndReason, ErrorCode, IceServer, Limits, Matched, PartnerInfo, ServerMsg, SpyInfo, SpyRole,
    Welcome,
};
pub use signal::{SignalData, SignalError, MAX_SIGNAL_BYTES, MAX_SIGNAL_DEPTH};
pub use snapshot::{encode_snapshot_frame, snapshot_frame, MAX_SNAPSHOT_BYTES, MAX_SNAPSHOT_WIDTH};
pub use tandem_ids as ids;

/// The protocol version this server speaks, sent as `welcome.proto`.
pub const PROTOCOL_VERSION: u32 = 1;
