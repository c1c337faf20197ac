//! Spy mode (Omegle's question mode) as the pool sees a ticket: off, asking, or discussing.

use std::sync::Arc;

/// Spy mode (Omegle's question mode): a spy asks a question and watches two strangers
/// discuss it. Text only; interests and filters do not apply; pairing is first come, first
/// served within the language, on the node the users are connected to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SpyMode {
    /// An ordinary one-on-one chat.
    #[default]
    Off,
    /// Asks this question, and only watches.
    Asks(Arc<str>),
    /// One of the two strangers who discuss a spy's question.
    Discusses,
}

impl SpyMode {
    /// The longest question, in characters.
    pub const MAX_QUESTION_CHARS: usize = 300;

    /// Whether this is a spy-mode ticket.
    pub fn is_on(&self) -> bool {
        !matches!(self, Self::Off)
    }
}
