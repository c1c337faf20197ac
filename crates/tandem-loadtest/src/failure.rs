//! Why a simulated user stopped before the end of the run.

/// Why a user stopped early; each is counted under its name in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The TCP connection could not be made.
    Connect,
    /// The WebSocket upgrade failed.
    Handshake,
    /// No `welcome` (in time) as the first message.
    Welcome,
    /// A frame could not be written in time.
    Send,
    /// Reading failed, or the server closed the connection during the run.
    Closed,
    /// No answer to `leave` in time at the end of the run.
    Leave,
    /// The node's challenge could not be solved.
    Challenge,
}

impl Failure {
    /// The name in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Handshake => "handshake",
            Self::Welcome => "welcome",
            Self::Send => "send",
            Self::Closed => "closed",
            Self::Leave => "leave",
            Self::Challenge => "challenge",
        }
    }
}
