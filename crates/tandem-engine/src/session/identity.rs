//! Who a user is, as the server knows it.

use std::net::IpAddr;

use tandem_ids::{ClientId, DeviceId};

/// A user's client id, address and device hint, as the node it connected to decided them.
/// Never told to partners: a session keeps its partner's only so that a report names whom
/// it is about, and a block whom to avoid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub client: ClientId,
    pub ip: Option<IpAddr>,
    pub device: Option<DeviceId>,
}

impl Identity {
    /// An identity known only by its client id (tests, tools).
    pub fn of(client: ClientId) -> Self {
        Self {
            client,
            ip: None,
            device: None,
        }
    }
}
