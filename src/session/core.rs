//! The session state machine, as pure code: inputs in, [`Effect`]s out, time passed in.
//!
//! Every transition that a shard could race with (a claim on the seat) happens under the
//! seat's lock: the session first takes any pairing a shard left in the seat, then decides.
//! So a `next`, `leave` or `join` can never overwrite a pairing it has not seen, and a user
//! is told `matched` before any `ended` of that chat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Group, Peer, Seat, SeatState, SessionEvent};
use crate::ids::{ChatId, SessionId, TicketId};
use crate::matching::{BucketKey, Country, Preferences, RecentPartners, TicketInfo};
use crate::protocol::{
    EndReason, ErrorCode, Matched, PartnerInfo, ServerMsg, SignalData, SpyInfo, SpyRole,
};
use crate::shard::Ticket;

/// Longest chat line, in characters (`limits.max_text_chars`).
pub const MAX_TEXT_CHARS: usize = 2000;

/// Something written for the partner.
#[derive(Clone, Debug, PartialEq)]
pub enum ChatInput {
    Msg(String),
    Typing(bool),
    Signal(SignalData),
}

impl ChatInput {
    /// The message the partner receives.
    fn into_server_msg(self, chat: ChatId) -> ServerMsg {
        match self {
            Self::Msg(text) => ServerMsg::Msg { chat, text },
            Self::Typing(on) => ServerMsg::Typing { chat, on },
            Self::Signal(data) => ServerMsg::Signal { chat, data },
        }
    }
}

/// Where the user stands.
#[derive(Clone, Debug)]
pub enum Phase {
    Idle,
    Waiting {
        ticket: TicketId,
        bucket: BucketKey,
        since: Instant,
    },
    Chatting {
        chat: ChatId,
        partner: Peer,
    },
}

/// What the driver (the actor, or a test) must do after an input.
#[derive(Debug)]
pub enum Effect {
    /// Send this to the user's client.
    Send(ServerMsg),
    /// Put this ticket in the pool (on the shard that owns its bucket).
    Place(Ticket),
    /// Take this ticket out of the pool (eager cleanup; a stale ticket can never be paired
    /// anyway, since its seat no longer waits with it).
    Withdraw { ticket: TicketId, bucket: BucketKey },
    /// Tell another session.
    Notify { to: Peer, event: SessionEvent },
    /// The user was paired after waiting this long (for metrics).
    Matched { waited: Duration },
    /// This side ended a chat (for metrics).
    Ended { reason: EndReason },
    /// A relayed item arrived for a chat that is over and was dropped (for metrics).
    DroppedStale,
}

/// One user's state machine.
pub struct SessionCore {
    id: SessionId,
    seat: Arc<Seat>,
    /// How shards and partners reach this session.
    me: Peer,
    /// The user's country, decided by the server: told to partners and checked against
    /// their filters.
    country: Country,
    phase: Phase,
    /// The preferences of the last accepted `join`, reused by `next` and re-rolls.
    prefs: Option<Preferences>,
    recent: RecentPartners,
    /// The chat that ended last, to tell a late line for it (`stale_chat`) from a line sent
    /// while never in a chat (`not_in_chat`).
    last_chat: Option<ChatId>,
    /// In a spy-mode chat: the third member (set and cleared with `Phase::Chatting`).
    group: Option<ChatGroup>,
}

/// The spy-mode side of the current chat.
#[derive(Clone, Debug)]
enum ChatGroup {
    /// This user is a stranger the spy watches and numbers `index`.
    Watched { spy: Peer, index: u8 },
    /// This user is the spy; `Phase::Chatting.partner` is stranger 1. The spy only watches,
    /// and leaving does not end the strangers' chat.
    Spying,
}

impl SessionCore {
    /// A new, idle session reachable through `me`, of a user from `country`.
    pub fn new(me: Peer, country: Country) -> Self {
        Self {
            id: me.session,
            seat: Arc::new(Seat::new(me.session)),
            me,
            country,
            phase: Phase::Idle,
            prefs: None,
            recent: RecentPartners::default(),
            last_chat: None,
            group: None,
        }
    }

    /// This session's id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Where the user stands now (after the last input).
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The seat shards claim.
    pub fn seat(&self) -> &Arc<Seat> {
        &self.seat
    }

    /// `join`: enter the pool, or update the wait.
    pub fn join(&mut self, prefs: Preferences, now: Instant, out: &mut Vec<Effect>) {
        let seat = Arc::clone(&self.seat);
        let mut state = seat.state_lock();
        self.take_pairing(&mut state, now, out);
        match &self.phase {
            Phase::Chatting { .. } => out.push(error(
                ErrorCode::AlreadyInChat,
                "you are in a chat: send next or leave first",
            )),
            Phase::Waiting { ticket, bucket, .. } => {
                out.push(Effect::Withdraw {
                    ticket: *ticket,
                    bucket: *bucket,
                });
                self.prefs = Some(prefs);
                self.enqueue(&mut state, now, out);
            }
            Phase::Idle => {
                self.prefs = Some(prefs);
                self.enqueue(&mut state, now, out);
            }
        }
    }

    /// `next`: end the chat if any and wait for the next stranger with the same preferences.
    pub fn next(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let seat = Arc::clone(&self.seat);
        let mut state = seat.state_lock();
        self.take_pairing(&mut state, now, out);
        match &self.phase {
            Phase::Chatting { .. } => {
                self.end_chat(&mut state, EndReason::Skipped, now, out);
                self.enqueue(&mut state, now, out);
            }
            Phase::Waiting { .. } => out.push(Effect::Send(ServerMsg::Waiting)),
            Phase::Idle if self.prefs.is_some() => self.enqueue(&mut state, now, out),
            Phase::Idle => out.push(error(
                ErrorCode::NotJoined,
                "send join (with your preferences) before next",
            )),
        }
    }

    /// `leave`: end the chat or the wait and go idle.
    pub fn leave(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let seat = Arc::clone(&self.seat);
        let mut state = seat.state_lock();
        self.take_pairing(&mut state, now, out);
        match &self.phase {
            Phase::Chatting { .. } => self.end_chat(&mut state, EndReason::Left, now, out),
            Phase::Waiting { ticket, bucket, .. } => {
                out.push(Effect::Withdraw {
                    ticket: *ticket,
                    bucket: *bucket,
                });
                *state = SeatState::Idle;
                self.phase = Phase::Idle;
                out.push(Effect::Send(ServerMsg::Idle));
            }
            Phase::Idle => out.push(Effect::Send(ServerMsg::Idle)),
        }
    }

    /// The connection is gone: free the partner, leave the pool, and never be claimed again.
    pub fn disconnect(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let seat = Arc::clone(&self.seat);
        let mut state = seat.state_lock();
        self.take_pairing(&mut state, now, out);
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Chatting { chat, partner } => {
                self.tell_chat_ended(chat, partner, EndReason::PartnerDisconnected, out)
            }
            Phase::Waiting { ticket, bucket, .. } => out.push(Effect::Withdraw { ticket, bucket }),
            Phase::Idle => {}
        }
        *state = SeatState::Closed;
    }

    /// `msg`, `typing` or `signal` written by this user for `chat`.
    pub fn input(&mut self, chat: ChatId, item: ChatInput, now: Instant, out: &mut Vec<Effect>) {
        if let ChatInput::Msg(text) = &item {
            if text.chars().count() > MAX_TEXT_CHARS {
                out.push(error(
                    ErrorCode::TextTooLong,
                    format!("msg.text is limited to {MAX_TEXT_CHARS} characters"),
                ));
                return;
            }
        }
        match self.chat_check(chat, now, out) {
            Ok(_) if matches!(self.group, Some(ChatGroup::Spying)) => out.push(error(
                ErrorCode::SpyCannotWrite,
                "you are the spy of this chat: you watch, the strangers write",
            )),
            Ok(partner) => {
                if let (Some(ChatGroup::Watched { spy, index }), false) =
                    (&self.group, matches!(item, ChatInput::Signal(_)))
                {
                    out.push(Effect::Notify {
                        to: spy.clone(),
                        event: SessionEvent::Watched {
                            chat,
                            from: *index,
                            item: item.clone(),
                        },
                    });
                }
                out.push(Effect::Notify {
                    to: partner,
                    event: SessionEvent::Relay { chat, item },
                })
            }
            Err(refusal) => out.push(*refusal),
        }
    }

    /// Checks that `chat` is the current chat (for `report` and `save_log` too) and returns
    /// the partner; otherwise the `stale_chat` or `not_in_chat` error to send.
    pub fn chat_check(
        &mut self,
        chat: ChatId,
        now: Instant,
        out: &mut Vec<Effect>,
    ) -> Result<Peer, Box<Effect>> {
        self.sync(now, out);
        match &self.phase {
            Phase::Chatting {
                chat: current,
                partner,
            } if *current == chat => Ok(partner.clone()),
            Phase::Chatting { .. } => Err(Box::new(stale(chat))),
            _ if self.last_chat == Some(chat) => Err(Box::new(stale(chat))),
            _ => Err(Box::new(error(
                ErrorCode::NotInChat,
                "you are not in a chat",
            ))),
        }
    }

    /// An event from a shard or the partner.
    pub fn event(&mut self, event: SessionEvent, now: Instant, out: &mut Vec<Effect>) {
        match event {
            SessionEvent::SeatChanged => self.sync(now, out),
            SessionEvent::PartnerEnded { chat, reason } => {
                self.partner_ended(|current, _| *current == chat, reason, now, out)
            }
            SessionEvent::NodeLost(node) => self.partner_ended(
                |_, partner| partner.lives_on(&node),
                EndReason::PartnerDisconnected,
                now,
                out,
            ),
            SessionEvent::Relay { chat, item } => {
                self.sync(now, out);
                match &self.phase {
                    Phase::Chatting { chat: current, .. } if *current == chat => {
                        out.push(Effect::Send(item.into_server_msg(chat)))
                    }
                    // Written for a chat this side already left: it must not reach anyone.
                    _ => out.push(Effect::DroppedStale),
                }
            }
            SessionEvent::Watched { chat, from, item } => {
                self.sync(now, out);
                let watching = matches!(&self.phase, Phase::Chatting { chat: current, .. } if *current == chat)
                    && matches!(self.group, Some(ChatGroup::Spying));
                match (watching, item) {
                    (true, ChatInput::Msg(text)) => {
                        out.push(Effect::Send(ServerMsg::SpyMsg { chat, from, text }))
                    }
                    (true, ChatInput::Typing(on)) => {
                        out.push(Effect::Send(ServerMsg::SpyTyping { chat, from, on }))
                    }
                    _ => out.push(Effect::DroppedStale),
                }
            }
            SessionEvent::Shutdown => {}
        }
    }

    /// Ends the current chat from the partner's side, if `which` says it is the one that
    /// ended (a chat we already left was told to the partner then).
    fn partner_ended(
        &mut self,
        which: impl FnOnce(&ChatId, &Peer) -> bool,
        reason: EndReason,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let seat = Arc::clone(&self.seat);
        let mut state = seat.state_lock();
        self.take_pairing(&mut state, now, out);
        let Phase::Chatting { chat, partner } = &self.phase else {
            return;
        };
        if !which(chat, partner) {
            return;
        }
        let chat = *chat;
        self.recent.push(partner.session, now);
        self.last_chat = Some(chat);
        self.phase = Phase::Idle;
        // The member who ended it told the others (a spy's chat ends when either stranger
        // leaves; a stranger's when the other does).
        self.group = None;
        *state = SeatState::Idle;
        out.push(Effect::Send(ServerMsg::Ended { chat, reason }));
        if self.prefs.as_ref().is_some_and(|p| p.auto_reroll) {
            self.enqueue(&mut state, now, out);
        }
    }

    /// Takes a pairing a shard left in the seat, if any.
    fn sync(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let seat = Arc::clone(&self.seat);
        let mut state = seat.state_lock();
        self.take_pairing(&mut state, now, out);
    }

    fn take_pairing(&mut self, state: &mut SeatState, now: Instant, out: &mut Vec<Effect>) {
        if !matches!(state, SeatState::Matched(_)) {
            return;
        }
        let SeatState::Matched(pairing) = std::mem::replace(state, SeatState::Idle) else {
            unreachable!("checked above");
        };
        *state = SeatState::Chatting(pairing.chat);
        let waited = match self.phase {
            Phase::Waiting { since, .. } => now.saturating_duration_since(since),
            _ => Duration::ZERO,
        };
        let (group, spy) = match pairing.group {
            None => (None, None),
            Some(Group::Watched {
                spy,
                index,
                question,
            }) => (
                Some(ChatGroup::Watched { spy, index }),
                Some(SpyInfo {
                    role: SpyRole::Discuss,
                    question: question.to_string(),
                    strangers: Vec::new(),
                }),
            ),
            Some(Group::Spying {
                second_info,
                question,
                ..
            }) => (
                Some(ChatGroup::Spying),
                Some(SpyInfo {
                    role: SpyRole::Spy,
                    question: question.to_string(),
                    strangers: vec![pairing.partner_info.clone(), second_info],
                }),
            ),
        };
        self.group = group;
        out.push(Effect::Matched { waited });
        out.push(Effect::Send(ServerMsg::Matched(Matched {
            chat: pairing.chat,
            initiator: pairing.initiator,
            common_interests: pairing.common_interests,
            partner: pairing.partner_info,
            spy,
        })));
        self.phase = Phase::Chatting {
            chat: pairing.chat,
            partner: pairing.partner,
        };
    }

    /// Tells the other members that this side ended `chat`: the partner, and in spy mode the
    /// spy too. A spy that leaves tells no one: the strangers chat on.
    fn tell_chat_ended(
        &mut self,
        chat: ChatId,
        partner: Peer,
        reason: EndReason,
        out: &mut Vec<Effect>,
    ) {
        let event = SessionEvent::PartnerEnded { chat, reason };
        match self.group.take() {
            Some(ChatGroup::Spying) => {}
            Some(ChatGroup::Watched { spy, .. }) => {
                out.push(Effect::Notify {
                    to: spy,
                    event: event.clone(),
                });
                out.push(Effect::Notify { to: partner, event });
            }
            None => out.push(Effect::Notify { to: partner, event }),
        }
    }

    fn end_chat(
        &mut self,
        state: &mut SeatState,
        reason: EndReason,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let Phase::Chatting { chat, partner } = std::mem::replace(&mut self.phase, Phase::Idle)
        else {
            return;
        };
        self.recent.push(partner.session, now);
        self.last_chat = Some(chat);
        *state = SeatState::Idle;
        self.tell_chat_ended(chat, partner, reason.for_partner(), out);
        out.push(Effect::Ended { reason });
        out.push(Effect::Send(ServerMsg::Ended { chat, reason }));
    }

    fn enqueue(&mut self, state: &mut SeatState, now: Instant, out: &mut Vec<Effect>) {
        let prefs = self.prefs.as_ref().expect("enqueue only after a join");
        if prefs.premium_until.is_some_and(|until| now >= until) {
            // The entitlement ran out since the join: no premium filter past its expiry.
            *state = SeatState::Idle;
            self.phase = Phase::Idle;
            self.prefs = None;
            out.push(error(
                ErrorCode::EntitlementRequired,
                "your entitlement has expired: join again with a new one",
            ));
            return;
        }
        let bucket = BucketKey {
            mode: prefs.mode,
            lang: prefs.lang,
        };
        let ticket = TicketId::next();
        *state = SeatState::Waiting(ticket);
        self.phase = Phase::Waiting {
            ticket,
            bucket,
            since: now,
        };
        out.push(Effect::Place(Ticket {
            info: TicketInfo {
                id: ticket,
                session: self.id,
                bucket,
                recent: self.recent.live(now),
                since: now,
                interests: prefs.interests.clone(),
                random_from: if prefs.interests.is_empty() {
                    Some(now)
                } else if prefs.interests_only {
                    None
                } else {
                    Some(now + prefs.interest_wait)
                },
                country: self.country,
                countries: prefs.countries.clone(),
                gender: prefs.gender,
                want_gender: prefs.want_gender,
                college: prefs.college.clone(),
                same_college: prefs.same_college,
                spy: prefs.spy.clone(),
            },
            seat: Arc::clone(&self.seat),
            peer: self.me.clone(),
            public: PartnerInfo {
                country: self.country.to_string(),
                college: prefs.college.as_deref().map(str::to_owned),
            },
        }));
        out.push(Effect::Send(ServerMsg::Waiting));
    }
}

fn error(code: ErrorCode, message: impl Into<String>) -> Effect {
    Effect::Send(ServerMsg::error(code, message))
}

fn stale(chat: ChatId) -> Effect {
    error(
        ErrorCode::StaleChat,
        format!("chat {chat} is over; the message was dropped"),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::matching::{Lang, Mode};
    use crate::session::SessionLink;

    struct Nowhere;
    impl SessionLink for Nowhere {
        fn deliver(&self, _: SessionEvent) {}
    }

    fn core() -> SessionCore {
        let me = Peer {
            session: SessionId(1),
            link: Arc::new(Nowhere),
        };
        SessionCore::new(me, Country::UNKNOWN)
    }

    fn sent_error(out: &[Effect]) -> Option<ErrorCode> {
        out.iter().find_map(|e| match e {
            Effect::Send(ServerMsg::Error { code, .. }) => Some(*code),
            _ => None,
        })
    }

    #[test]
    fn a_premium_filter_is_not_requeued_past_its_entitlement() {
        let now = Instant::now();
        let mut prefs = Preferences::random(Mode::Text, Lang::EN, false);
        prefs.premium_until = Some(now + Duration::from_secs(60));
        let mut session = core();
        let mut out = Vec::new();
        session.join(prefs, now, &mut out);
        assert!(matches!(session.phase(), Phase::Waiting { .. }));
        session.leave(now, &mut out);
        out.clear();
        session.next(now + Duration::from_secs(30), &mut out);
        assert!(
            matches!(session.phase(), Phase::Waiting { .. }),
            "still entitled"
        );
        session.leave(now, &mut out);
        out.clear();
        session.next(now + Duration::from_secs(61), &mut out);
        assert_eq!(sent_error(&out), Some(ErrorCode::EntitlementRequired));
        assert!(matches!(session.phase(), Phase::Idle));
        assert!(
            !out.iter().any(|e| matches!(e, Effect::Place(_))),
            "not queued"
        );
        out.clear();
        session.next(now + Duration::from_secs(62), &mut out);
        assert_eq!(
            sent_error(&out),
            Some(ErrorCode::NotJoined),
            "must join again"
        );
    }
}
