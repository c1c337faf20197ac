//! The opaque payload of a `signal` message (WebRTC offer, answer or ICE candidate).

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use serde::{Deserialize, Serialize};

/// Any JSON value the client wants its partner to receive; the server never looks inside.
/// In bincode frames it travels as a string holding the JSON text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SignalData(pub serde_json::Value);

impl bincode::Encode for SignalData {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        self.0.to_string().encode(encoder)
    }
}

impl<Context> bincode::Decode<Context> for SignalData {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, DecodeError> {
        let text = String::decode(decoder)?;
        serde_json::from_str(&text)
            .map(SignalData)
            .map_err(|_| DecodeError::Other("signal data is not JSON"))
    }
}

bincode::impl_borrow_decode!(SignalData);
