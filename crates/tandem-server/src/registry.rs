//! The sessions connected to this node, by id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::Recipient;
use parking_lot::Mutex;
use tandem_engine::session::{Identity, SessionEvent};
use tandem_ids::SessionId;

/// A registered session: how to reach it, and who its user is (for bans issued while it is
/// connected).
#[derive(Clone)]
struct Entry {
    link: Recipient<SessionEvent>,
    who: Arc<Identity>,
}

/// The sessions connected to this node, by id: for broadcasts (shutdown) and for events
/// addressed by id (from other nodes). Striped so that connects and disconnects on
/// different threads rarely meet on one lock. Once closed (shutdown began), it takes no
/// session: one that registers too late is told so and closes itself.
pub struct Registry {
    stripes: Vec<Mutex<HashMap<SessionId, Entry>>>,
    closed: AtomicBool,
}

impl Registry {
    const STRIPES: usize = 32;

    /// An empty registry.
    pub fn new() -> Self {
        Self {
            stripes: (0..Self::STRIPES)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            closed: AtomicBool::new(false),
        }
    }

    fn stripe(&self, id: SessionId) -> &Mutex<HashMap<SessionId, Entry>> {
        &self.stripes[(id.0 % Self::STRIPES as u64) as usize]
    }

    /// Adds a session of user `who`; `false` once the registry is closed (then the session
    /// must close).
    pub fn insert(&self, id: SessionId, link: Recipient<SessionEvent>, who: Arc<Identity>) -> bool {
        let mut stripe = self.stripe(id).lock();
        // Read under the stripe's lock: a close either happened before (seen here) or will
        // reach this session with its broadcast.
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        stripe.insert(id, Entry { link, who });
        true
    }

    /// Sends `event` to every session whose user `pick` selects; returns how many.
    pub fn send_where(&self, pick: impl Fn(&Identity) -> bool, event: &SessionEvent) -> usize {
        let mut sent = 0;
        for stripe in &self.stripes {
            for entry in stripe.lock().values().filter(|e| pick(&e.who)) {
                entry.link.do_send(event.clone());
                sent += 1;
            }
        }
        sent
    }

    /// Takes no session from now on, and sends `event` to every session registered.
    pub fn close(&self, event: &SessionEvent) {
        self.closed.store(true, Ordering::Release);
        self.broadcast(event);
    }

    /// Removes a session.
    pub fn remove(&self, id: SessionId) {
        self.stripe(id).lock().remove(&id);
    }

    /// Delivers an event to a session by id; `false` if it is not here.
    pub fn deliver(&self, id: SessionId, event: SessionEvent) -> bool {
        let link = self.stripe(id).lock().get(&id).map(|e| e.link.clone());
        match link {
            Some(link) => {
                link.do_send(event);
                true
            }
            None => false,
        }
    }

    /// Sends an event to every session.
    pub fn broadcast(&self, event: &SessionEvent) {
        for stripe in &self.stripes {
            for entry in stripe.lock().values() {
                entry.link.do_send(event.clone());
            }
        }
    }

    /// Sessions registered.
    pub fn len(&self) -> usize {
        self.stripes.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether no session is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}
