//! The session state machine, as pure code: inputs in, [`Effect`]s out, time passed in.
//!
//! Every transition that a shard could race with (a claim on the seat) happens under the
//! seat's lock: the session first takes any pairing a shard left in the seat, then decides.
//! So a `next`, `leave` or `join` can never overwrite a pairing it has not seen, and a user
//! is told `matched` before any `ended` of that chat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_ids::{ChatId, SessionId, TicketId};
use tandem_match::{Blocked, BucketKey, Country, RecentPartners, TicketInfo};
use tandem_proto::{
    EndReason, ErrorCode, Matched, PartnerInfo, ServerMsg, SignalData, SpyInfo, SpyRole,
};

pub use super::transcript::Line;
use super::transcript::Transcript;
use super::{Group, Identity, Peer, Preferences, Seat, SeatState, SessionEvent};
use crate::shard::Ticket;

/// Longest chat line, in characters (`limits.max_text_chars`).
pub const MAX_TEXT_CHARS: usize = 2000;

/// Most events, and most bytes of lines and signals, a session holds for a chat that has not
/// started on its side yet (see `SessionCore::early`): far more than a partner writes while a
/// claim completes, and little next to the connection's own outgoing bound.
const EARLY_MAX: usize = 256;
const EARLY_MAX_BYTES: usize = 64 * 1024;

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
    /// The user reports the partner of its current chat, or of the one that ended last, up
    /// to a minute ago; its client is blocked for this user from now on.
    Report {
        chat: ChatId,
        /// Who is reported.
        reported: Arc<Identity>,
        /// What the reporter was told of them (their country).
        partner_info: PartnerInfo,
        reason: String,
        note: Option<String>,
        /// The chat's last lines, both sides, oldest first.
        evidence: Vec<Line>,
    },
    /// The user saves a chat's text (the current chat, or the one that ended last, up to
    /// five minutes ago): what this side saw of it.
    SaveLog {
        chat: ChatId,
        /// When the chat began, and ended (if it has).
        started: Instant,
        ended: Option<Instant>,
        common_interests: Vec<String>,
        /// Both sides' lines, oldest first.
        lines: Vec<Line>,
    },
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
    /// The clients this user must never be paired with (those it reported), oldest first.
    blocked: Vec<u64>,
    /// The same, as every ticket carries it.
    blocked_set: Blocked,
    /// The lines of the current chat.
    current: Option<Transcript>,
    /// The lines of the chat that ended last, kept five minutes.
    previous: Option<Transcript>,
    /// What the partner of a chat sent (lines, its end) while this seat was still reserved
    /// for that chat: across nodes, the partner is told `matched` before the claim completes
    /// here, so what it sends at once can overtake the claim's last step. Replayed, in order,
    /// once the seat is no longer reserved: after `matched`, or as stale if the claim failed.
    early: Vec<SessionEvent>,
    /// The bytes of lines and signals in `early`.
    early_bytes: usize,
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
            blocked: Vec::new(),
            blocked_set: Blocked::default(),
            current: None,
            previous: None,
            early: Vec::new(),
            early_bytes: 0,
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
        // The connection is gone: so are the lines it kept.
        self.current = None;
        self.previous = None;
    }

    /// The mode of the user's last accepted `join`.
    pub fn mode(&self) -> Option<tandem_match::Mode> {
        self.prefs.as_ref().map(|p| p.mode)
    }

    /// Lines written so far in `chat` by this user and by the partner, if `chat` is the
    /// current chat and this user may write in it (not its spy).
    pub fn written(&self, chat: ChatId) -> Option<(u32, u32)> {
        if matches!(self.group, Some(ChatGroup::Spying)) {
            return None;
        }
        (self.current.as_ref())
            .filter(|t| t.chat == chat && t.ended.is_none())
            .map(Transcript::written)
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
                if let (ChatInput::Msg(text), Some(transcript)) = (&item, &mut self.current) {
                    transcript.push(now, true, text);
                }
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

    /// `report`: the user reports the partner of `chat`, its current chat or the one that
    /// ended last, up to a minute ago. The report carries that chat's last lines, and the
    /// reported client is blocked for this user from now on.
    pub fn report(
        &mut self,
        chat: ChatId,
        reason: String,
        note: Option<String>,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        self.sync(now, out);
        self.expire(now);
        let transcript = [self.current.as_ref(), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|t| t.chat == chat && t.reportable_at(now));
        let Some(transcript) = transcript else {
            return out.push(self.refusal(chat));
        };
        let reported = Arc::clone(&transcript.partner);
        out.push(Effect::Report {
            chat,
            reported: Arc::clone(&reported),
            partner_info: transcript.partner_info.clone(),
            reason,
            note,
            evidence: transcript.evidence(),
        });
        self.block(reported.client.key(), now, out);
    }

    /// The user must never be paired with `client` again (it reported it, now or in an
    /// earlier connection). A wait under way goes on with a new ticket that says so.
    pub fn block(&mut self, client: u64, now: Instant, out: &mut Vec<Effect>) {
        if self.blocked.contains(&client) {
            return;
        }
        self.blocked.push(client);
        if self.blocked.len() > Blocked::MAX {
            self.blocked.remove(0);
        }
        self.blocked_set = Blocked::new(self.blocked.iter().copied());
        let seat = Arc::clone(&self.seat);
        let mut state = seat.state_lock();
        self.take_pairing(&mut state, now, out);
        if let Phase::Waiting { ticket, bucket, .. } = self.phase {
            out.push(Effect::Withdraw { ticket, bucket });
            self.enqueue(&mut state, now, out);
        }
    }

    /// Forgets the lines of a chat that ended more than five minutes before `now`.
    pub fn expire(&mut self, now: Instant) {
        if self.previous.as_ref().is_some_and(|t| !t.kept_at(now)) {
            self.previous = None;
        }
    }

    /// `save_log`: the user saves what it saw of `chat`, its current chat or the one that
    /// ended last, up to five minutes ago.
    pub fn save_log(&mut self, chat: ChatId, now: Instant, out: &mut Vec<Effect>) {
        self.sync(now, out);
        self.expire(now);
        let transcript = [self.current.as_ref(), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|t| t.chat == chat);
        let Some(transcript) = transcript else {
            return out.push(self.refusal(chat));
        };
        out.push(Effect::SaveLog {
            chat,
            started: transcript.started,
            ended: transcript.ended,
            common_interests: transcript.common_interests.clone(),
            lines: transcript.lines(),
        });
    }

    /// `ping`: `pong`.
    pub fn ping(&self, out: &mut Vec<Effect>) {
        out.push(Effect::Send(ServerMsg::Pong));
    }

    /// Checks that `chat` is the current chat and returns the partner; otherwise the
    /// `stale_chat` or `not_in_chat` error to send.
    fn chat_check(
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
            _ => Err(Box::new(self.refusal(chat))),
        }
    }

    /// The error for a command about `chat`, which is not the current chat: `stale_chat` for
    /// a chat that is over, `not_in_chat` otherwise.
    fn refusal(&self, chat: ChatId) -> Effect {
        match &self.phase {
            Phase::Chatting { .. } => stale(chat),
            _ if self.last_chat == Some(chat) => stale(chat),
            _ => error(ErrorCode::NotInChat, "you are not in a chat"),
        }
    }

    /// An event from a shard or the partner.
    pub fn event(&mut self, event: SessionEvent, now: Instant, out: &mut Vec<Effect>) {
        if let SessionEvent::PartnerEnded { chat, .. } | SessionEvent::Relay { chat, .. } = &event {
            self.sync(now, out);
            if self.seat.reserved_for(*chat) {
                let bytes = match &event {
                    SessionEvent::Relay {
                        item: ChatInput::Msg(text),
                        ..
                    } => text.len(),
                    SessionEvent::Relay {
                        item: ChatInput::Signal(data),
                        ..
                    } => data.get().len(),
                    _ => 0,
                };
                if self.early.len() < EARLY_MAX && self.early_bytes + bytes <= EARLY_MAX_BYTES {
                    self.early_bytes += bytes;
                    self.early.push(event);
                }
                return;
            }
        }
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
                        if let (ChatInput::Msg(text), Some(transcript)) = (&item, &mut self.current)
                        {
                            transcript.push(now, false, text);
                        }
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
            SessionEvent::Shutdown | SessionEvent::Banned { .. } => {}
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
        self.chat_over(now);
        // The member who ended it told the others (a spy's chat ends when either stranger
        // leaves; a stranger's when the other does).
        self.group = None;
        *state = SeatState::Idle;
        out.push(Effect::Send(ServerMsg::Ended { chat, reason }));
        if self.prefs.as_ref().is_some_and(|p| p.auto_reroll) {
            self.enqueue(&mut state, now, out);
        }
    }

    /// The current chat is over: its lines are kept a minute more, in place of the last's.
    fn chat_over(&mut self, now: Instant) {
        if let Some(mut transcript) = self.current.take() {
            transcript.ended = Some(now);
            self.previous = Some(transcript);
        }
    }

    /// Takes a pairing a shard left in the seat, if any; then, once the seat is no longer
    /// reserved, what a partner sent early: the lines and end of the chat just taken, or of
    /// one whose claim failed (dropped as stale).
    fn sync(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let seat = Arc::clone(&self.seat);
        let settled = {
            let mut state = seat.state_lock();
            self.take_pairing(&mut state, now, out);
            !matches!(*state, SeatState::Reserved { .. })
        };
        if settled && !self.early.is_empty() {
            self.early_bytes = 0;
            for event in std::mem::take(&mut self.early) {
                self.event(event, now, out);
            }
        }
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
        self.current = Some(Transcript::new(
            pairing.chat,
            Arc::clone(&pairing.partner.who),
            pairing.partner_info.clone(),
            pairing.common_interests.clone(),
            now,
        ));
        out.push(Effect::Matched { waited });
        out.push(Effect::Send(ServerMsg::Matched(Matched {
            chat: pairing.chat,
            initiator: pairing.initiator,
            common_interests: pairing.common_interests,
            partner: pairing.partner_info,
            spy,
            // The node's to fill in as it sends it (credentials are not the engine's).
            ice_servers: Vec::new(),
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
        self.chat_over(now);
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
                client: self.me.who.client.key(),
                blocked: self.blocked_set.clone(),
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

    use tandem_match::{Lang, Mode};

    use super::*;
    use crate::session::{claim_pair, Claim, Pairing, SessionLink, KEPT_AFTER_END, REPORT_WINDOW};

    struct Nowhere;
    impl SessionLink for Nowhere {
        fn deliver(&self, _: SessionEvent) {}
    }

    fn core() -> SessionCore {
        core_of(1)
    }

    /// The client behind session `session`.
    fn client_of(session: u64) -> tandem_ids::ClientId {
        tandem_ids::ClientId::parse(&format!("client-{session}")).expect("well formed")
    }

    fn core_of(session: u64) -> SessionCore {
        let me = Peer {
            session: SessionId(session),
            link: Arc::new(Nowhere),
            who: Arc::new(Identity::of(client_of(session))),
        };
        SessionCore::new(me, Country::UNKNOWN)
    }

    fn random() -> Preferences {
        Preferences::random(Mode::Text, Lang::EN, false)
    }

    /// The ticket a `join` or `next` placed.
    fn placed(out: &mut Vec<Effect>) -> crate::shard::Ticket {
        let at = out
            .iter()
            .position(|e| matches!(e, Effect::Place(_)))
            .expect("a ticket was placed");
        match out.remove(at) {
            Effect::Place(ticket) => ticket,
            _ => unreachable!(),
        }
    }

    /// Two sessions that joined, paired as a shard pairs them; each has taken its pairing.
    fn chatting(now: Instant) -> (SessionCore, SessionCore, ChatId) {
        let (mut a, mut b) = (core_of(1), core_of(2));
        let mut out = Vec::new();
        a.join(random(), now, &mut out);
        let ta = placed(&mut out);
        b.join(random(), now, &mut out);
        let tb = placed(&mut out);
        let chat = ChatId(77);
        let pairing = |partner: &crate::shard::Ticket, initiator| Pairing {
            chat,
            partner: partner.peer.clone(),
            initiator,
            common_interests: Vec::new(),
            partner_info: PartnerInfo::default(),
            group: None,
        };
        let claim = claim_pair((&ta.seat, ta.info.id), (&tb.seat, tb.info.id), || {
            (pairing(&tb, true), pairing(&ta, false))
        });
        assert_eq!(claim, Claim::Paired);
        a.event(SessionEvent::SeatChanged, now, &mut out);
        b.event(SessionEvent::SeatChanged, now, &mut out);
        assert!(matches!(a.phase(), Phase::Chatting { .. }));
        assert!(matches!(b.phase(), Phase::Chatting { .. }));
        (a, b, chat)
    }

    #[test]
    fn next_requeues_the_skipper_and_frees_the_partner() {
        let now = Instant::now();
        let (mut a, _b, chat) = chatting(now);
        let mut out = Vec::new();
        a.next(now, &mut out);
        let told = out.iter().find_map(|e| match e {
            Effect::Notify {
                to,
                event: SessionEvent::PartnerEnded { chat: c, reason },
            } => Some((to.session, *c, *reason)),
            _ => None,
        });
        assert_eq!(
            told,
            Some((SessionId(2), chat, EndReason::PartnerSkipped)),
            "the partner is told it was skipped"
        );
        assert!(out.iter().any(|e| matches!(
            e,
            Effect::Send(ServerMsg::Ended {
                reason: EndReason::Skipped,
                ..
            })
        )));
        let ticket = placed(&mut out);
        assert!(
            ticket.info.recent.contains(SessionId(2)),
            "and avoided for now"
        );
        assert!(matches!(a.phase(), Phase::Waiting { .. }));
    }

    #[test]
    fn a_line_for_a_chat_that_ended_is_refused_as_stale_and_reaches_nobody() {
        let now = Instant::now();
        let (mut a, _b, chat) = chatting(now);
        let mut out = Vec::new();
        a.leave(now, &mut out);
        out.clear();
        a.input(chat, ChatInput::Msg("late".into()), now, &mut out);
        assert_eq!(sent_error(&out), Some(ErrorCode::StaleChat));
        assert!(!out.iter().any(|e| matches!(e, Effect::Notify { .. })));
        out.clear();
        a.input(ChatId(1), ChatInput::Msg("never".into()), now, &mut out);
        assert_eq!(sent_error(&out), Some(ErrorCode::NotInChat));
    }

    #[test]
    fn a_relay_for_another_chat_is_dropped_not_shown() {
        let now = Instant::now();
        let (_a, mut b, chat) = chatting(now);
        let mut out = Vec::new();
        let stale = SessionEvent::Relay {
            chat: ChatId(chat.0 + 1),
            item: ChatInput::Msg("for someone else".into()),
        };
        b.event(stale, now, &mut out);
        assert!(matches!(out.as_slice(), [Effect::DroppedStale]));
        out.clear();
        let fresh = SessionEvent::Relay {
            chat,
            item: ChatInput::Msg("hi".into()),
        };
        b.event(fresh, now, &mut out);
        assert!(matches!(
            out.as_slice(),
            [Effect::Send(ServerMsg::Msg { text, .. })] if text == "hi"
        ));
    }

    /// A session that joined and whose seat is held for `chat`, as the first half of a claim
    /// across nodes holds it.
    fn reserved(chat: ChatId, now: Instant) -> SessionCore {
        let mut a = core_of(1);
        let mut out = Vec::new();
        a.join(random(), now, &mut out);
        let ticket = placed(&mut out);
        assert!(a.seat().reserve(ticket.info.id, chat));
        a
    }

    /// What the client was sent, in order.
    fn sent(out: &[Effect]) -> Vec<&ServerMsg> {
        (out.iter())
            .filter_map(|e| match e {
                Effect::Send(msg) => Some(msg),
                _ => None,
            })
            .collect()
    }

    /// The pairing that completes a claim for `chat` with session 2.
    fn completed(chat: ChatId) -> Pairing {
        Pairing {
            chat,
            partner: core_of(2).me.clone(),
            initiator: true,
            common_interests: Vec::new(),
            partner_info: PartnerInfo::default(),
            group: None,
        }
    }

    #[test]
    fn what_the_partner_sends_before_the_claim_completes_here_follows_matched() {
        let now = Instant::now();
        let chat = ChatId(78);
        let mut a = reserved(chat, now);
        // The partner, told `matched` first, writes and skips at once; both overtake the
        // claim's last step.
        let mut out = Vec::new();
        let line = ChatInput::Msg("hi".into());
        a.event(SessionEvent::Relay { chat, item: line }, now, &mut out);
        let skipped = EndReason::PartnerSkipped;
        a.event(
            SessionEvent::PartnerEnded {
                chat,
                reason: skipped,
            },
            now,
            &mut out,
        );
        assert!(out.is_empty(), "nothing before the chat: {out:?}");
        assert!(a.seat().commit_reserved(completed(chat)));
        a.event(SessionEvent::SeatChanged, now, &mut out);
        let sent = sent(&out);
        assert!(
            matches!(
                sent.as_slice(),
                [
                    ServerMsg::Matched(m),
                    ServerMsg::Msg { text, .. },
                    ServerMsg::Ended { reason: EndReason::PartnerSkipped, .. },
                ] if m.chat == chat && text == "hi"
            ),
            "{sent:?}"
        );
        assert!(matches!(a.phase(), Phase::Idle));
    }

    #[test]
    fn what_the_partner_sent_early_follows_matched_whichever_input_takes_the_chat() {
        let now = Instant::now();
        let chat = ChatId(81);
        let mut a = reserved(chat, now);
        let mut out = Vec::new();
        let line = ChatInput::Msg("hi".into());
        a.event(SessionEvent::Relay { chat, item: line }, now, &mut out);
        assert!(a.seat().commit_reserved(completed(chat)));
        // The user's own `join` (refused: it is in a chat now) sees the chat first.
        a.join(random(), now, &mut out);
        a.event(SessionEvent::SeatChanged, now, &mut out);
        let sent = sent(&out);
        assert!(
            matches!(
                sent.as_slice(),
                [ServerMsg::Matched(_), ServerMsg::Error { .. }, ServerMsg::Msg { text, .. }]
                    if text == "hi"
            ),
            "{sent:?}"
        );
    }

    #[test]
    fn what_a_session_holds_early_is_bounded_in_bytes() {
        let now = Instant::now();
        let chat = ChatId(82);
        let mut a = reserved(chat, now);
        let mut out = Vec::new();
        let big = format!("\"{}\"", "s".repeat(tandem_proto::MAX_SIGNAL_BYTES - 2));
        for _ in 0..8 {
            let item = ChatInput::Signal(SignalData::parse(&big).unwrap());
            a.event(SessionEvent::Relay { chat, item }, now, &mut out);
        }
        assert!(a.seat().commit_reserved(completed(chat)));
        a.event(SessionEvent::SeatChanged, now, &mut out);
        let relayed = (out.iter())
            .filter(|e| matches!(e, Effect::Send(ServerMsg::Signal { .. })))
            .count();
        assert_eq!(relayed, EARLY_MAX_BYTES / tandem_proto::MAX_SIGNAL_BYTES);
    }

    #[test]
    fn what_the_partner_sent_for_a_claim_that_failed_reaches_nobody() {
        let now = Instant::now();
        let chat = ChatId(79);
        let mut a = reserved(chat, now);
        let mut out = Vec::new();
        let line = ChatInput::Msg("for a chat that never was".into());
        a.event(SessionEvent::Relay { chat, item: line }, now, &mut out);
        let ticket = a.seat().release_reserved(chat).expect("held");
        // The seat waits again; the next chat starts clean.
        assert!(a.seat().reserve(ticket, ChatId(80)));
        assert!(a.seat().commit_reserved(completed(ChatId(80))));
        a.event(SessionEvent::SeatChanged, now, &mut out);
        assert!(
            !out.iter()
                .any(|e| matches!(e, Effect::Send(ServerMsg::Msg { .. }))),
            "{out:?}"
        );
        assert!(matches!(a.phase(), Phase::Chatting { chat, .. } if *chat == ChatId(80)));
    }

    #[test]
    fn join_while_in_a_chat_is_refused_and_changes_nothing() {
        let now = Instant::now();
        let (mut a, _b, chat) = chatting(now);
        let mut out = Vec::new();
        a.join(random(), now, &mut out);
        assert_eq!(sent_error(&out), Some(ErrorCode::AlreadyInChat));
        assert!(matches!(a.phase(), Phase::Chatting { chat: c, .. } if *c == chat));
    }

    /// A report as a test reads it: (chat, client reported, reason, note, evidence as
    /// (mine, text)).
    type Filed<'a> = (
        ChatId,
        String,
        &'a str,
        Option<&'a str>,
        Vec<(bool, &'a str)>,
    );

    /// The report among `out`.
    fn filed(out: &[Effect]) -> Option<Filed<'_>> {
        out.iter().find_map(|e| match e {
            Effect::Report {
                chat,
                reported,
                reason,
                note,
                evidence,
                ..
            } => Some((
                *chat,
                reported.client.as_str().to_owned(),
                reason.as_str(),
                note.as_deref(),
                evidence.iter().map(|l| (l.mine, l.text.as_str())).collect(),
            )),
            _ => None,
        })
    }

    #[test]
    fn a_report_names_the_partner_of_the_current_chat_with_its_lines() {
        let now = Instant::now();
        let (mut a, _b, chat) = chatting(now);
        let mut out = Vec::new();
        a.input(chat, ChatInput::Msg("hello".into()), now, &mut out);
        let from_b = SessionEvent::Relay {
            chat,
            item: ChatInput::Msg("buy coins at scam.example".into()),
        };
        a.event(from_b, now, &mut out);
        a.input(chat, ChatInput::Typing(true), now, &mut out);
        out.clear();
        a.report(chat, "spam".into(), Some("a link".into()), now, &mut out);
        let expected_lines = vec![(true, "hello"), (false, "buy coins at scam.example")];
        assert_eq!(
            filed(&out),
            Some((
                chat,
                "client-2".into(),
                "spam",
                Some("a link"),
                expected_lines
            ))
        );
        out.clear();
        // In a chat, any other chat id is one that is over.
        a.report(ChatId(5), "spam".into(), None, now, &mut out);
        assert_eq!(sent_error(&out), Some(ErrorCode::StaleChat));
        assert!(filed(&out).is_none());
    }

    #[test]
    fn a_chat_that_ended_may_be_reported_for_a_minute_and_its_lines_then_go() {
        let start = Instant::now();
        let (mut a, _b, chat) = chatting(start);
        let mut out = Vec::new();
        a.input(chat, ChatInput::Msg("first chat".into()), start, &mut out);
        a.next(start, &mut out);
        let waiting = placed(&mut out);
        out.clear();
        let in_time = start + REPORT_WINDOW - Duration::from_secs(1);
        a.report(chat, "harassment".into(), None, in_time, &mut out);
        let (_, reported, _, _, lines) = filed(&out).expect("reported after next");
        assert_eq!(
            (reported.as_str(), lines),
            ("client-2", vec![(true, "first chat")])
        );
        // The wait goes on with a ticket that blocks the reported client.
        assert!(out
            .iter()
            .any(|e| matches!(e, Effect::Withdraw { ticket, .. } if *ticket == waiting.info.id)));
        let requeued = placed(&mut out);
        assert!(requeued.info.blocked.contains(client_of(2).key()));
        assert!(!waiting.info.blocked.contains(client_of(2).key()));

        let (mut c, _d, chat) = chatting(start);
        c.next(start, &mut out);
        out.clear();
        c.report(chat, "spam".into(), None, start + REPORT_WINDOW, &mut out);
        assert!(
            filed(&out).is_none(),
            "a minute later it may not be reported"
        );
        assert_eq!(sent_error(&out), Some(ErrorCode::StaleChat));
        out.clear();
        c.save_log(chat, start + REPORT_WINDOW, &mut out);
        assert!(
            matches!(&out[..], [Effect::SaveLog { chat: saved, .. }] if *saved == chat),
            "but saved, for five minutes: {out:?}"
        );
        out.clear();
        c.expire(start + KEPT_AFTER_END);
        c.save_log(chat, start + KEPT_AFTER_END, &mut out);
        assert_eq!(
            sent_error(&out),
            Some(ErrorCode::StaleChat),
            "then the lines are gone"
        );
    }

    #[test]
    fn a_blocked_client_is_in_every_ticket_and_blocks_are_bounded() {
        let now = Instant::now();
        let mut a = core();
        let mut out = Vec::new();
        for client in 0..(Blocked::MAX as u64 + 10) {
            a.block(client, now, &mut out);
        }
        assert!(out.is_empty(), "blocking while idle places nothing");
        a.join(random(), now, &mut out);
        let ticket = placed(&mut out);
        assert!(!ticket.info.blocked.contains(0), "the oldest went first");
        assert!(ticket.info.blocked.contains(Blocked::MAX as u64 + 9));
        assert!(ticket.info.blocked.contains(10));
    }

    #[test]
    fn a_disconnect_while_waiting_withdraws_the_ticket_and_closes_the_seat() {
        let now = Instant::now();
        let mut a = core();
        let mut out = Vec::new();
        a.join(random(), now, &mut out);
        let ticket = placed(&mut out);
        out.clear();
        a.disconnect(now, &mut out);
        assert!(out
            .iter()
            .any(|e| matches!(e, Effect::Withdraw { ticket: t, .. } if *t == ticket.info.id)));
        assert!(!ticket.seat.waits_with(ticket.info.id));
        assert!(
            !ticket.seat.start_waiting(TicketId::next()),
            "never claimed again"
        );
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
