//! The seat: the part of a session's state that shards may change, and the claim protocol
//! that makes a pairing real.
//!
//! A shard that picked two waiting tickets locks both seats (in session-id order, so two
//! shards never deadlock) and pairs them only if both still wait with exactly those tickets.
//! Either both seats change or neither does: there is no moment in which one user is paired
//! and the other is not, so a user is never paired twice and never stranded half-paired.
//! Locks are held for a few instructions and never across an await.

use parking_lot::Mutex;
use tandem_ids::{ChatId, SessionId, TicketId};
use tandem_proto::PartnerInfo;

use super::Peer;

/// Where a session stands, as far as shards are concerned.
#[derive(Debug)]
pub enum SeatState {
    /// Not in the pool.
    Idle,
    /// In the pool with this ticket; a shard may claim it.
    Waiting(TicketId),
    /// Held for a cross-node pairing (`chat`) while the partner's node confirms its side.
    /// Nothing else may claim it meanwhile; the session may still abandon it (next, leave,
    /// close), and then the confirmation finds it gone and the partner is told the chat
    /// ended. See docs/cluster.md, "The claim across nodes".
    Reserved { ticket: TicketId, chat: ChatId },
    /// A shard paired it; the session has not taken the pairing yet.
    Matched(Box<Pairing>),
    /// The session took the pairing and is chatting.
    Chatting(ChatId),
    /// The connection is gone; nothing may claim it again.
    Closed,
}

/// A new chat, as one side sees it.
#[derive(Clone, Debug)]
pub struct Pairing {
    pub chat: ChatId,
    pub partner: Peer,
    pub initiator: bool,
    pub common_interests: Vec<String>,
    pub partner_info: PartnerInfo,
    /// In spy mode: the third member and the question (`None`: a one-on-one chat).
    pub group: Option<Group>,
}

/// A spy-mode chat of three, as one member sees it.
#[derive(Clone, Debug)]
pub enum Group {
    /// One of the two strangers: `partner` is the other; the spy watches, and numbers this
    /// side `index` (1 or 2).
    Watched {
        spy: Peer,
        index: u8,
        question: std::sync::Arc<str>,
    },
    /// The spy: `partner` is stranger 1, `second` stranger 2.
    Spying {
        second: Peer,
        second_info: PartnerInfo,
        question: std::sync::Arc<str>,
    },
}

/// A session's seat.
#[derive(Debug)]
pub struct Seat {
    session: SessionId,
    state: Mutex<SeatState>,
}

/// The outcome of trying to pair two tickets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Both seats now hold the pairing.
    Paired,
    /// The first ticket no longer waits (left, re-queued or closed); the second is untouched.
    FirstStale,
    /// The second ticket no longer waits; the first is untouched.
    SecondStale,
    /// Neither waits.
    BothStale,
}

impl Seat {
    /// A fresh, idle seat.
    pub fn new(session: SessionId) -> Self {
        Self {
            session,
            state: Mutex::new(SeatState::Idle),
        }
    }

    /// Whose seat this is.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Locks the state. Only the owning session holds it across a decision; shards go
    /// through [`claim_pair`].
    pub(super) fn state_lock(&self) -> parking_lot::MutexGuard<'_, SeatState> {
        self.state.lock()
    }

    /// Puts an idle seat in the pool with `ticket`, for drivers other than a session (the
    /// in-process load generator and benchmarks). `false` if the seat was not idle.
    pub fn start_waiting(&self, ticket: TicketId) -> bool {
        let mut state = self.state.lock();
        if matches!(*state, SeatState::Idle) {
            *state = SeatState::Waiting(ticket);
            true
        } else {
            false
        }
    }

    /// Whether the seat still waits with `ticket` (for a shard to drop stale tickets early).
    pub fn waits_with(&self, ticket: TicketId) -> bool {
        matches!(*self.state.lock(), SeatState::Waiting(t) if t == ticket)
    }

    /// Whether the seat is held for `chat` while a cross-node claim completes.
    pub fn reserved_for(&self, chat: ChatId) -> bool {
        matches!(*self.state.lock(), SeatState::Reserved { chat: held, .. } if held == chat)
    }

    /// First half of a cross-node claim: holds a seat that waits with `ticket` for `chat`.
    /// `false` if it no longer waits with that ticket.
    pub fn reserve(&self, ticket: TicketId, chat: ChatId) -> bool {
        let mut state = self.state.lock();
        if matches!(*state, SeatState::Waiting(t) if t == ticket) {
            *state = SeatState::Reserved { ticket, chat };
            true
        } else {
            false
        }
    }

    /// Second half, on the reserving side: the partner's node paired its side, so the held
    /// seat takes the pairing. `false` if the session abandoned the reservation meanwhile
    /// (then the partner must be told the chat is over).
    pub fn commit_reserved(&self, pairing: Pairing) -> bool {
        let mut state = self.state.lock();
        if matches!(*state, SeatState::Reserved { chat, .. } if chat == pairing.chat) {
            *state = SeatState::Matched(Box::new(pairing));
            true
        } else {
            false
        }
    }

    /// The partner's side failed (or never answered): a seat still held for `chat` waits
    /// again with its ticket, which is returned so it can be placed again.
    pub fn release_reserved(&self, chat: ChatId) -> Option<TicketId> {
        let mut state = self.state.lock();
        match *state {
            SeatState::Reserved { ticket, chat: held } if held == chat => {
                *state = SeatState::Waiting(ticket);
                Some(ticket)
            }
            _ => None,
        }
    }

    /// The committing side of a cross-node claim: a seat that waits with `ticket` takes the
    /// pairing at once. `false` if it no longer waits with it.
    pub fn claim_single(&self, ticket: TicketId, pairing: Pairing) -> bool {
        let mut state = self.state.lock();
        if matches!(*state, SeatState::Waiting(t) if t == ticket) {
            *state = SeatState::Matched(Box::new(pairing));
            true
        } else {
            false
        }
    }
}

/// Claims three waiting tickets at once (a spy-mode chat): all three seats take their
/// pairings, or none does. Returns, per member, whether it still waited with its ticket;
/// the claim succeeded only if all are `true`. Seats are locked in session-id order, as in
/// [`claim_pair`]; two members of one session (never both current) count as stale.
pub fn claim_trio(
    members: [(&Seat, TicketId); 3],
    make: impl FnOnce() -> [Pairing; 3],
) -> [bool; 3] {
    let sessions = members.map(|(seat, _)| seat.session);
    if sessions[0] == sessions[1] || sessions[0] == sessions[2] || sessions[1] == sessions[2] {
        // No group forms. A seat is locked once at a time; a session's later entry counts
        // as stale even if it is the current one, so the caller drops it and tries again.
        let mut waits = members.map(|(seat, ticket)| seat.waits_with(ticket));
        for later in 1..3 {
            if (0..later).any(|earlier| sessions[earlier] == sessions[later]) {
                waits[later] = false;
            }
        }
        return waits;
    }
    let mut order = [0usize, 1, 2];
    order.sort_by_key(|&i| sessions[i]);
    let mut guards: [Option<parking_lot::MutexGuard<'_, SeatState>>; 3] = [None, None, None];
    for i in order {
        guards[i] = Some(members[i].0.state.lock());
    }
    let waits: [bool; 3] = std::array::from_fn(|i| {
        let ticket = members[i].1;
        matches!(guards[i].as_deref(), Some(SeatState::Waiting(t)) if *t == ticket)
    });
    if waits.iter().all(|&w| w) {
        let pairings = make();
        for (guard, pairing) in guards.iter_mut().zip(pairings) {
            if let Some(state) = guard.as_deref_mut() {
                *state = SeatState::Matched(Box::new(pairing));
            }
        }
    }
    waits
}

/// Pairs two waiting tickets atomically, or tells which one is stale. `make` builds the two
/// pairings (first's view, second's view) and runs only when both are claimable.
pub fn claim_pair(
    first: (&Seat, TicketId),
    second: (&Seat, TicketId),
    make: impl FnOnce() -> (Pairing, Pairing),
) -> Claim {
    let (a, ta) = first;
    let (b, tb) = second;
    if a.session == b.session {
        // Two tickets of one user: at most one is current, and nobody meets themselves.
        return match *a.state.lock() {
            SeatState::Waiting(t) if t == ta => Claim::SecondStale,
            SeatState::Waiting(t) if t == tb => Claim::FirstStale,
            _ => Claim::BothStale,
        };
    }
    // Lock in session-id order so that concurrent claims cannot deadlock.
    let (mut guard_a, mut guard_b) = if a.session < b.session {
        let ga = a.state.lock();
        (ga, b.state.lock())
    } else {
        let gb = b.state.lock();
        (a.state.lock(), gb)
    };
    let a_waits = matches!(*guard_a, SeatState::Waiting(t) if t == ta);
    let b_waits = matches!(*guard_b, SeatState::Waiting(t) if t == tb);
    match (a_waits, b_waits) {
        (true, true) => {
            let (for_a, for_b) = make();
            *guard_a = SeatState::Matched(Box::new(for_a));
            *guard_b = SeatState::Matched(Box::new(for_b));
            Claim::Paired
        }
        (false, true) => Claim::FirstStale,
        (true, false) => Claim::SecondStale,
        (false, false) => Claim::BothStale,
    }
}
