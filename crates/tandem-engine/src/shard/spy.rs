//! Spy mode's waiting room (Omegle's question mode): spies with their questions, and users
//! willing to discuss one, per bucket, first come first served. A spy and two discussers
//! make a group of three, claimed at once ([`claim_trio`]) so that nobody is in two chats.
//!
//! Kept apart from the pool's queues: spy mode has no interests or filters to match, and a
//! group needs three members, not two. Spy-mode tickets are never spilled to other nodes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tandem_ids::{ChatId, TicketId};
use tandem_match::{BucketKey, SpyMode, Waiting};

use super::claimant::Claimant;
use crate::session::{claim_trio, Group, Pairing, SessionEvent};

/// Spies and discussers waiting, per bucket.
#[derive(Debug, Default)]
pub struct SpyPool {
    spies: HashMap<BucketKey, VecDeque<Waiting<Claimant>>>,
    discussers: HashMap<BucketKey, VecDeque<Waiting<Claimant>>>,
}

/// What became of a placement in the spy pool.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Grouped {
    /// Groups formed (each member told).
    pub chats: Vec<ChatId>,
    /// Entries dropped because their users had moved on.
    pub stale: u64,
}

impl SpyPool {
    /// Users waiting in spy mode.
    pub(super) fn len(&self) -> usize {
        self.spies
            .values()
            .chain(self.discussers.values())
            .map(VecDeque::len)
            .sum()
    }

    /// Adds a local spy-mode entry and forms every group its bucket now allows.
    pub fn place(&mut self, entry: Waiting<Claimant>) -> Grouped {
        let bucket = entry.ticket.bucket;
        match entry.ticket.spy {
            SpyMode::Asks(_) => self.spies.entry(bucket).or_default().push_back(entry),
            SpyMode::Discusses => self.discussers.entry(bucket).or_default().push_back(entry),
            SpyMode::Off => unreachable!("only spy-mode tickets come here"),
        }
        self.form_groups(bucket)
    }

    /// Takes a ticket out (its user left the wait). A scan of the spy pool, which is small.
    pub fn remove(&mut self, ticket: TicketId) -> bool {
        for queue in self.spies.values_mut().chain(self.discussers.values_mut()) {
            if let Some(at) = queue.iter().position(|w| w.ticket.id == ticket) {
                queue.remove(at);
                return true;
            }
        }
        false
    }

    fn form_groups(&mut self, bucket: BucketKey) -> Grouped {
        let mut grouped = Grouped::default();
        loop {
            let spies = self.spies.entry(bucket).or_default();
            let discussers = self.discussers.entry(bucket).or_default();
            if spies.is_empty() || discussers.len() < 2 {
                break;
            }
            let members = [
                spies.pop_front().expect("checked"),
                discussers.pop_front().expect("checked"),
                discussers.pop_front().expect("checked"),
            ];
            let chat = ChatId::random();
            if claim_group(chat, &members) {
                grouped.chats.push(chat);
                continue;
            }
            // Someone moved on: drop them, put the others back where they were.
            let [spy, first, second] = members;
            for (entry, is_spy) in [(second, false), (first, false), (spy, true)] {
                if still_waits(&entry) {
                    let queue = if is_spy {
                        self.spies.entry(bucket).or_default()
                    } else {
                        self.discussers.entry(bucket).or_default()
                    };
                    queue.push_front(entry);
                } else {
                    grouped.stale += 1;
                }
            }
        }
        grouped
    }
}

fn still_waits(entry: &Waiting<Claimant>) -> bool {
    match &entry.payload {
        Claimant::Local { seat, .. } => seat.waits_with(entry.ticket.id),
        Claimant::Remote { .. } => false,
    }
}

/// Claims a spy and two discussers for `chat`; tells all three if it succeeded.
fn claim_group(chat: ChatId, [spy, first, second]: &[Waiting<Claimant>; 3]) -> bool {
    let (
        Claimant::Local {
            seat: spy_seat,
            peer: spy_peer,
            ..
        },
        Claimant::Local {
            seat: first_seat,
            peer: first_peer,
            public: first_public,
        },
        Claimant::Local {
            seat: second_seat,
            peer: second_peer,
            public: second_public,
        },
    ) = (&spy.payload, &first.payload, &second.payload)
    else {
        return false; // Spy-mode tickets are local; anything else cannot be claimed here.
    };
    let SpyMode::Asks(question) = &spy.ticket.spy else {
        return false;
    };
    let question: Arc<str> = Arc::clone(question);
    let waits = claim_trio(
        [
            (spy_seat, spy.ticket.id),
            (first_seat, first.ticket.id),
            (second_seat, second.ticket.id),
        ],
        || {
            let pairing =
                |partner: &crate::session::Peer, info: &tandem_proto::PartnerInfo| Pairing {
                    chat,
                    partner: partner.clone(),
                    initiator: false,
                    common_interests: Vec::new(),
                    partner_info: info.clone(),
                    group: None,
                };
            let for_spy = Pairing {
                group: Some(Group::Spying {
                    second: second_peer.clone(),
                    second_info: second_public.clone(),
                    question: Arc::clone(&question),
                }),
                ..pairing(first_peer, first_public)
            };
            let for_first = Pairing {
                // Text only, but one side still "starts", as in every chat.
                initiator: true,
                group: Some(Group::Watched {
                    spy: spy_peer.clone(),
                    index: 1,
                    question: Arc::clone(&question),
                }),
                ..pairing(second_peer, second_public)
            };
            let for_second = Pairing {
                group: Some(Group::Watched {
                    spy: spy_peer.clone(),
                    index: 2,
                    question: Arc::clone(&question),
                }),
                ..pairing(first_peer, first_public)
            };
            [for_spy, for_first, for_second]
        },
    );
    if waits.iter().all(|&w| w) {
        for peer in [spy_peer, first_peer, second_peer] {
            peer.send(SessionEvent::SeatChanged);
        }
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tandem_ids::SessionId;
    use tandem_match::{Lang, Mode, TicketInfo};
    use tandem_proto::PartnerInfo;

    use super::*;
    use crate::session::{Peer, Seat, SessionLink};

    struct Nowhere;

    impl SessionLink for Nowhere {
        fn deliver(&self, _: SessionEvent) {}
    }

    fn entry(session: u64, spy: SpyMode) -> (Waiting<Claimant>, Arc<Seat>) {
        let seat = Arc::new(Seat::new(SessionId(session)));
        let id = TicketId::next();
        assert!(seat.start_waiting(id));
        let bucket = BucketKey {
            mode: Mode::Text,
            lang: Lang::EN,
        };
        let mut info = TicketInfo::plain(id, SessionId(session), bucket, Instant::now());
        info.spy = spy;
        let payload = Claimant::Local {
            seat: Arc::clone(&seat),
            peer: Peer {
                session: SessionId(session),
                link: Arc::new(Nowhere),
                who: Arc::new(crate::session::Identity::of(
                    tandem_ids::ClientId::parse(&format!("client-{session}")).expect("well formed"),
                )),
            },
            public: PartnerInfo::default(),
        };
        (
            Waiting {
                ticket: info,
                payload,
            },
            seat,
        )
    }

    fn is_matched(seat: &Seat) -> bool {
        // A matched seat no longer waits with any ticket and cannot start waiting.
        !seat.start_waiting(TicketId(0)) && !seat.waits_with(TicketId(0))
    }

    #[test]
    fn a_spy_and_two_discussers_make_a_group_skipping_one_who_left() {
        let mut pool = SpyPool::default();
        let question = SpyMode::Asks(Arc::from("Tea or coffee?"));
        let (gone, gone_seat) = entry(1, SpyMode::Discusses);
        let gone_ticket = gone.ticket.id;
        let (d1, d1_seat) = entry(2, SpyMode::Discusses);
        let (spy, spy_seat) = entry(3, question);
        assert_eq!(pool.place(gone), Grouped::default());
        // The first discusser's seat moves on (here: held for another chat) before any
        // group forms.
        assert!(gone_seat.reserve(gone_ticket, ChatId(9)));
        assert_eq!(pool.place(d1), Grouped::default());
        // The spy's arrival tries (spy, gone, d1): the one who left is dropped, and with
        // one live discusser no group forms yet.
        let tried = pool.place(spy);
        assert_eq!((tried.chats.len(), tried.stale), (0, 1));
        let (d2, d2_seat) = entry(4, SpyMode::Discusses);
        let grouped = pool.place(d2);
        assert_eq!((grouped.chats.len(), grouped.stale), (1, 0));
        assert!(is_matched(&spy_seat) && is_matched(&d1_seat) && is_matched(&d2_seat));
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn a_withdrawn_ticket_leaves_the_spy_pool() {
        let mut pool = SpyPool::default();
        let (d, _seat) = entry(1, SpyMode::Discusses);
        let id = d.ticket.id;
        pool.place(d);
        assert!(pool.remove(id));
        assert!(!pool.remove(id));
        assert_eq!(pool.len(), 0);
    }
}
