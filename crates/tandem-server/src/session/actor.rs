//! `UserSession`: the actix actor behind one WebSocket connection.
//!
//! It reads frames (a stream added to the actor), checks limits, decodes, runs the
//! [`SessionCore`] and carries out its effects. Outgoing frames go through one bounded queue
//! to one writer task that owns the `actix_ws::Session`: frames leave in order, and a client
//! that cannot keep up is disconnected rather than buffered without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, StreamHandler, WrapFuture,
};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, ProtocolError};
use bytes::Bytes;
use tandem_engine::session::{ChatInput, Effect, Identity, Line, Peer, SessionCore, SessionEvent};
use tandem_ids::{ChatId, SessionId};
use tandem_match::{Country, Lang};
use tandem_proto::{
    ClientMsg, Codec, DecodeError, ErrorCode, Frame, ServerMsg, Welcome, PROTOCOL_VERSION,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn, Span};

use super::limits::Kind;
use super::{preferences, RateLimits, SessionEnv, Verdict};
use crate::abuse::filter::{FilterRule, Sender, Verdict as Filtered, Written};
use crate::abuse::snapshots::Outcome;
use crate::abuse::ChallengeError;
use crate::gateway::frames::Breach;
use crate::metrics::{CloseCause, RelayKind};
use crate::moderation::records::{EvidenceLine, Reason};
use crate::moderation::reports::{Filing, ReportError, MAX_NOTE_CHARS};
use crate::privacy::loggable_ip;
use crate::privacy::logs::{Draft, SaveError, Saved};

/// Everything a session needs from the handshake.
pub struct UserSessionParams {
    /// What the session needs of its node.
    pub env: Arc<SessionEnv>,
    pub codec: Codec,
    /// Who connects and from where, as the gateway decided it.
    pub who: Arc<Identity>,
    /// The clients this user reported before: never paired with them.
    pub blocks: Vec<u64>,
    /// From `Accept-Language`, for joins that name no language.
    pub default_lang: Lang,
    /// Decided by the server, never the client.
    pub country: Country,
    pub ws: actix_ws::Session,
    pub frames: AggregatedMessageStream,
    /// The connection's count against its address, released with the session.
    pub slot: Option<crate::gateway::per_ip::Slot>,
    /// The connection's socket, ended once the client has closed.
    pub socket: Option<crate::gateway::socket::Socket>,
}

/// One frame (or the close) for the writer.
enum Outgoing {
    Frame(Frame),
    /// A heartbeat ping carrying its number.
    Ping(u64),
    Pong(Bytes),
    Close(CloseReason),
}

/// Bytes of frames queued for a client before it counts as too slow and is dropped. The
/// WebSocket layer below holds at most 32 more frames.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;

/// The actor.
pub struct UserSession {
    core: SessionCore,
    env: Arc<SessionEnv>,
    codec: Codec,
    who: Arc<Identity>,
    /// From `Accept-Language`, for joins that name no language.
    default_lang: Lang,
    /// The user's country, as the server decided it.
    country: Country,
    /// The writer's queue; `None` once closing.
    out: Option<mpsc::Sender<Outgoing>>,
    /// The writer task, aborted when the client is too slow to drain it.
    writer: actix_rt::task::JoinHandle<()>,
    limits: RateLimits,
    /// Last sign of life from the client, for the heartbeat: a message, or a pong that
    /// answers one of the server's own pings.
    last_heard: Instant,
    /// The number of the last heartbeat ping sent.
    pings: u64,
    /// Bytes queued for the writer and not yet handed to the socket.
    queued: Arc<AtomicUsize>,
    /// Reused for every input.
    effects: Vec<Effect>,
    /// Where the chats saved lately are (at most [`SAVED_KEPT`], the newest last), so that
    /// saving one again keeps its address.
    saved: Vec<(ChatId, Saved)>,
    /// The connection's count against its address: released when the actor goes.
    slot: Option<crate::gateway::per_ip::Slot>,
    /// Whether the connection has solved its challenge (or none is asked): it is not asked
    /// again.
    passed: bool,
    /// Whether a solved challenge is being spent, its `join` waiting for that.
    proving: bool,
    /// The challenge this connection was last given, sent again with a refusal until it
    /// expires or is spent (issuing one costs the node a key derivation).
    challenge: Option<tandem_proto::Challenge>,
    /// Counts `join`, `next` and `leave`: a join waiting for its proof to be spent goes on
    /// only if none came meanwhile.
    moves: u64,
    /// When the last snapshot was taken in.
    last_snapshot: Option<Instant>,
    /// The connection's socket, ended once the client has closed.
    socket: Option<crate::gateway::socket::Socket>,
    span: Span,
}

/// Saved chats a session remembers: the current one and the one that ended last.
const SAVED_KEPT: usize = 2;

impl UserSession {
    /// Starts the actor for a just-upgraded connection.
    pub fn start(params: UserSessionParams) -> actix::Addr<Self> {
        let UserSessionParams {
            env,
            codec,
            who,
            blocks,
            default_lang,
            country,
            ws,
            frames,
            slot,
            socket,
        } = params;
        UserSession::create(move |ctx| {
            let id = SessionId::random();
            let me = Peer {
                session: id,
                link: Arc::new(ctx.address().recipient::<SessionEvent>()),
                who: Arc::clone(&who),
            };
            let (tx, rx) = mpsc::channel(env.settings.out_queue);
            let queued = Arc::new(AtomicUsize::new(0));
            let writer = actix_rt::spawn(write_frames(ws, rx, Arc::clone(&queued)));
            ctx.add_stream(frames);
            let now = Instant::now();
            let passed = !env.abuse.challenges.on();
            let mut core = SessionCore::new(me, country);
            let mut none = Vec::new();
            for client in blocks {
                core.block(client, now, &mut none);
            }
            UserSession {
                core,
                span: tracing::info_span!(
                    "session",
                    session = %id,
                    node = %env.node,
                    client = %who.client,
                    ip = %who.ip.map_or_else(
                        || "-".to_owned(),
                        |ip| loggable_ip(ip, env.full_ips_in_logs)
                    ),
                ),
                limits: RateLimits::new(&env.settings.limits, now),
                default_lang,
                country,
                env,
                codec,
                who,
                out: Some(tx),
                writer,
                last_heard: now,
                pings: 0,
                queued,
                effects: Vec::with_capacity(8),
                saved: Vec::new(),
                passed,
                proving: false,
                challenge: None,
                moves: 0,
                last_snapshot: None,
                slot,
                socket,
            }
        })
    }

    /// Queues a message for the client.
    fn send(&mut self, msg: &ServerMsg, ctx: &mut Context<Self>) {
        if let ServerMsg::Error { code, .. } = msg {
            self.env.metrics.error(*code);
        }
        if let ServerMsg::Matched(matched) = msg {
            // Fresh TURN credentials with every chat.
            let now = crate::entitlement::unix_now();
            let matched = tandem_proto::Matched {
                ice_servers: self.env.ice.servers_for(&self.who.client, now),
                ..matched.clone()
            };
            let frame = self.codec.encode(&ServerMsg::Matched(matched));
            return self.push(Outgoing::Frame(frame), ctx);
        }
        self.push(Outgoing::Frame(self.codec.encode(msg)), ctx);
    }

    fn push(&mut self, item: Outgoing, ctx: &mut Context<Self>) {
        let Some(out) = &self.out else { return };
        let bytes = match &item {
            Outgoing::Frame(Frame::Text(text)) => text.len(),
            Outgoing::Frame(Frame::Binary(bytes)) => bytes.len(),
            Outgoing::Pong(bytes) => bytes.len(),
            Outgoing::Ping(_) | Outgoing::Close(_) => 0,
        };
        let queued = self.queued.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let sent = if queued > MAX_QUEUED_BYTES && !matches!(item, Outgoing::Close(_)) {
            Err(mpsc::error::TrySendError::Full(item))
        } else {
            out.try_send(item)
        };
        match sent {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // The client does not read: drop it rather than buffer without bound.
                warn!(parent: &self.span, "client too slow, disconnecting");
                self.env.metrics.close(CloseCause::SlowConsumer);
                self.out = None;
                self.writer.abort();
                ctx.stop();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.out = None;
                ctx.stop();
            }
        }
    }

    /// Counts a control frame (ping or pong) from the client against the frame rate;
    /// whether to act on it. Past the rate it is ignored, and a flood closes with 1008.
    fn control_frame(&mut self, ctx: &mut Context<Self>) -> bool {
        self.env.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
        match self.limits.check(Kind::Other, Instant::now()) {
            Verdict::Allow => true,
            Verdict::Refuse => false,
            Verdict::Disconnect => {
                info!(parent: &self.span, "control-frame flood, disconnecting");
                self.env.metrics.close(CloseCause::Flood);
                self.close(CloseCode::Policy, "rate limits exceeded", ctx);
                false
            }
        }
    }

    /// A frame or message over the limit: close 1009.
    fn too_big(&mut self, ctx: &mut Context<Self>) {
        info!(parent: &self.span, "frame too big, closing");
        self.env.metrics.close(CloseCause::TooBig);
        self.close(CloseCode::Size, "frame or message larger than 64 KiB", ctx);
    }

    /// Sends a close frame after whatever is queued, and stops.
    fn close(&mut self, code: CloseCode, description: &str, ctx: &mut Context<Self>) {
        self.push(
            Outgoing::Close(CloseReason {
                code,
                description: Some(description.to_owned()),
            }),
            ctx,
        );
        self.out = None;
        ctx.stop();
    }

    fn on_frame(&mut self, decoded: Result<ClientMsg, DecodeError>, ctx: &mut Context<Self>) {
        self.env.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let kind = match &decoded {
            Ok(ClientMsg::Join(_) | ClientMsg::Next | ClientMsg::Leave) => Kind::Join,
            Ok(ClientMsg::Msg { .. } | ClientMsg::Typing { .. }) => Kind::Chat,
            Ok(ClientMsg::Signal { .. }) => Kind::Signal,
            _ => Kind::Other,
        };
        match self.limits.check(kind, now) {
            Verdict::Allow => {}
            Verdict::Refuse => {
                let msg = ServerMsg::error(ErrorCode::RateLimited, "too many messages; slow down");
                return self.send(&msg, ctx);
            }
            Verdict::Disconnect => {
                info!(parent: &self.span, "flooding, disconnecting");
                self.env.metrics.close(CloseCause::Flood);
                return self.close(CloseCode::Policy, "rate limits exceeded", ctx);
            }
        }
        match decoded {
            Ok(msg) => self.dispatch(msg, now, ctx),
            Err(err) => {
                debug!(parent: &self.span, code = err.code.as_str(), "refused frame");
                self.send(&ServerMsg::error(err.code, err.message), ctx);
            }
        }
    }

    fn dispatch(&mut self, msg: ClientMsg, now: Instant, ctx: &mut Context<Self>) {
        let mut effects = std::mem::take(&mut self.effects);
        if matches!(msg, ClientMsg::Join(_) | ClientMsg::Next | ClientMsg::Leave) {
            self.moves += 1;
        }
        match msg {
            ClientMsg::Join(join) => self.join(&join, now, &mut effects, ctx),
            ClientMsg::Next => self.core.next(now, &mut effects),
            ClientMsg::Leave => self.core.leave(now, &mut effects),
            ClientMsg::Msg { chat, text } => self.msg(chat, text, now, &mut effects),
            ClientMsg::Typing { chat, on } => {
                self.core
                    .input(chat, ChatInput::Typing(on), now, &mut effects)
            }
            ClientMsg::Signal { chat, data } => {
                self.core
                    .input(chat, ChatInput::Signal(data), now, &mut effects)
            }
            ClientMsg::Report { chat, reason, note } => {
                self.report(chat, reason, note, now, &mut effects)
            }
            ClientMsg::SaveLog { chat } => self.core.save_log(chat, now, &mut effects),
            ClientMsg::Ping => self.core.ping(&mut effects),
            ClientMsg::Snapshot { chat, image } => {
                self.snapshot(chat, image, now, &mut effects, ctx)
            }
        }
        self.apply(effects, ctx);
    }

    /// `msg`: a line of the current chat passes the filter first (a withheld one goes no
    /// further), then the state machine.
    fn msg(&mut self, chat: ChatId, text: String, now: Instant, effects: &mut Vec<Effect>) {
        // Stale, foreign or over-long lines are the state machine's to refuse.
        let written = (self.core.written(chat))
            .filter(|_| text.chars().count() <= tandem_engine::session::MAX_TEXT_CHARS);
        let text = match written {
            None => text,
            Some((mine, theirs)) => {
                let sender = Sender {
                    client: self.who.client.key(),
                    ip: self.who.ip,
                };
                let written = Written { mine, theirs };
                match (self.env.abuse.filter).check(&text, written, sender, chat, now) {
                    Filtered::Pass => text,
                    Filtered::Masked(masked) => masked,
                    Filtered::Withhold(rule) => {
                        debug!(parent: &self.span, rule = rule.as_str(), "line withheld");
                        let msg = ServerMsg::error(ErrorCode::Filtered, rule.message());
                        return effects.push(Effect::Send(msg));
                    }
                    Filtered::Blast { strike } => {
                        debug!(parent: &self.span, strike, "blast withheld");
                        if strike {
                            self.strike(chat, text);
                        }
                        let message = FilterRule::Blast.message();
                        let msg = ServerMsg::error(ErrorCode::Filtered, message);
                        return effects.push(Effect::Send(msg));
                    }
                }
            }
        };
        self.core.input(chat, ChatInput::Msg(text), now, effects);
    }

    /// `snapshot`: a still of the user's own camera in its current video chat, checked and
    /// handed to the classifier; a flagged one (or a failed check, when failure is closed)
    /// ends the chat.
    fn snapshot(
        &mut self,
        chat: ChatId,
        image: Vec<u8>,
        now: Instant,
        effects: &mut Vec<Effect>,
        ctx: &mut Context<Self>,
    ) {
        let refuse = |code, message: String| Effect::Send(ServerMsg::error(code, message));
        let Some(snapshots) = self.env.abuse.snapshots.clone() else {
            let message = "this server asks no snapshots".to_owned();
            return effects.push(refuse(ErrorCode::Unsupported, message));
        };
        let video = self.core.mode() == Some(tandem_match::Mode::Video);
        if self.core.written(chat).is_none() || !video {
            let message =
                format!("{chat} is not your current video chat; the snapshot was dropped");
            return effects.push(refuse(ErrorCode::StaleChat, message));
        }
        let half = snapshots.settings.interval / 2;
        if self
            .last_snapshot
            .is_some_and(|at| now.duration_since(at) < half)
        {
            snapshots.stats.refused.fetch_add(1, Ordering::Relaxed);
            let message = "snapshots come once every snapshot_interval_ms".to_owned();
            return effects.push(refuse(ErrorCode::RateLimited, message));
        }
        let kind = match crate::abuse::snapshots::check_image(&image) {
            Ok((kind, _)) => kind,
            Err(err) => {
                snapshots.stats.refused.fetch_add(1, Ordering::Relaxed);
                return effects.push(refuse(ErrorCode::InvalidValue, err.to_string()));
            }
        };
        self.last_snapshot = Some(now);
        let env = Arc::clone(&self.env);
        let who = Arc::clone(&self.who);
        let country = self.country.to_string();
        let image: Arc<[u8]> = image.into();
        // Detached: a ban it issues closes this session, and what follows (the ban of the
        // address, the audit entry) must not go with it.
        let judged = actix_rt::spawn(async move {
            let moderation = &env.moderation;
            snapshots
                .moderate(moderation, who, country, chat, kind, image)
                .await
        });
        ctx.spawn(judged.into_actor(self).map(move |outcome, act, ctx| {
            let Ok(Outcome::Ends { flagged, .. }) = outcome else {
                return;
            };
            if act.core.written(chat).is_none() {
                return; // That chat is over already.
            }
            info!(parent: &act.span, flagged, "a snapshot ended the chat");
            let message = if flagged {
                "your video was flagged by automated moderation; the chat has ended"
            } else {
                "your video could not be checked by automated moderation; the chat has ended"
            };
            let mut effects = std::mem::take(&mut act.effects);
            effects.push(Effect::Send(ServerMsg::error(ErrorCode::Filtered, message)));
            act.core.leave(Instant::now(), &mut effects);
            act.apply(effects, ctx);
        }));
    }

    /// Hands a blast to moderation as the filter's strike against this user, with the line
    /// as its evidence.
    fn strike(&mut self, chat: ChatId, text: String) {
        let filing = Filing {
            chat,
            reporter: Arc::new(Identity::of(filter_identity())),
            reported: Arc::clone(&self.who),
            country: self.country.to_string(),
            reason: Reason::Spam,
            note: Some("the same line into many chats (blast filter)".into()),
            evidence: vec![EvidenceLine {
                at_ms: wall_ms(Instant::now(), Instant::now()),
                from: "reported".into(),
                text,
            }],
        };
        let env = Arc::clone(&self.env);
        let span = self.span.clone();
        // Detached: the strike may ban this very session, and must finish regardless.
        actix_rt::spawn(async move {
            match env.moderation.reports.strike(filing).await {
                Ok(_) => {
                    let stats = &env.abuse.filter.stats;
                    stats.strikes.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => {
                    warn!(parent: &span, error = %err, "a filter strike could not be stored");
                }
            }
        });
    }

    /// `report`: the reason and the note checked, then the state machine (which finds the
    /// chat and its evidence).
    fn report(
        &mut self,
        chat: ChatId,
        reason: String,
        note: Option<String>,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        if Reason::parse(&reason).is_none() {
            let names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
            let message = format!("reason must be one of {}", names.join(", "));
            return effects.push(Effect::Send(ServerMsg::error(
                ErrorCode::InvalidValue,
                message,
            )));
        }
        if note
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
        {
            let message = format!("note: at most {MAX_NOTE_CHARS} characters");
            return effects.push(Effect::Send(ServerMsg::error(
                ErrorCode::TextTooLong,
                message,
            )));
        }
        self.core.report(chat, reason, note, now, effects);
    }

    /// Hands a report to moderation, and tells the client its id (or why it was not filed).
    fn file(&mut self, filing: Filing, ctx: &mut Context<Self>) {
        let moderation = Arc::clone(&self.env.moderation);
        let filed = async move { moderation.reports.file(filing).await };
        ctx.spawn(filed.into_actor(self).map(|filed, act, ctx| {
            let msg = match filed {
                Ok(report) => {
                    act.env.metrics.reports.fetch_add(1, Ordering::Relaxed);
                    ServerMsg::Reported { report }
                }
                Err(ReportError::RateLimited) => {
                    ServerMsg::error(ErrorCode::RateLimited, ReportError::RateLimited.to_string())
                }
                Err(ReportError::Store(err)) => {
                    warn!(parent: &act.span, error = %err, "a report could not be stored");
                    let stats = &act.env.moderation.stats;
                    stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    let message = "the report could not be filed now; try again";
                    ServerMsg::error(ErrorCode::Unavailable, message)
                }
            };
            act.send(&msg, ctx);
        }));
    }

    /// Saves a chat's log, and tells the client where it is (or why it was not saved).
    fn save_log(&mut self, chat: ChatId, draft: Draft, ctx: &mut Context<Self>) {
        let privacy = Arc::clone(&self.env.privacy);
        let saver = Arc::clone(&self.who);
        let again = (self.saved.iter())
            .find(|(saved, _)| *saved == chat)
            .map(|(_, at)| at.clone());
        let saved = async move { privacy.logs.save(&saver.client, draft, again).await };
        ctx.spawn(saved.into_actor(self).map(move |saved, act, ctx| {
            let msg = match saved {
                Ok(saved) => {
                    act.saved.retain(|(c, _)| *c != chat);
                    act.saved.push((chat, saved.clone()));
                    if act.saved.len() > SAVED_KEPT {
                        act.saved.remove(0);
                    }
                    ServerMsg::LogSaved {
                        chat,
                        url: saved.url(),
                        delete_url: saved.delete_url(),
                    }
                }
                Err(SaveError::RateLimited) => {
                    ServerMsg::error(ErrorCode::RateLimited, SaveError::RateLimited.to_string())
                }
                Err(SaveError::Store(err)) => {
                    warn!(parent: &act.span, error = %err, "a chat log could not be stored");
                    let message = "the chat could not be saved now; try again";
                    ServerMsg::error(ErrorCode::Unavailable, message)
                }
            };
            act.send(&msg, ctx);
        }));
    }

    /// `join`: admission first, then the preferences, then the challenge (on the first
    /// join of a connection), then the state machine.
    fn join(
        &mut self,
        join: &tandem_proto::Join,
        now: Instant,
        effects: &mut Vec<Effect>,
        ctx: &mut Context<Self>,
    ) {
        if let Err(refusal) = self.env.moderation.admission.join(&self.who) {
            return effects.push(Effect::Send(refusal.message()));
        }
        let prefs = match preferences(join, &self.env.settings.join, self.default_lang) {
            Ok(prefs) => prefs,
            Err(err) => {
                return effects.push(Effect::Send(ServerMsg::error(err.code(), err.to_string())))
            }
        };
        if self.passed {
            self.env.metrics.joins.fetch_add(1, Ordering::Relaxed);
            return self.core.join(prefs, now, effects);
        }
        if self.proving {
            let message = "the proof of the previous join is still being checked";
            return effects.push(Effect::Send(ServerMsg::error(
                ErrorCode::RateLimited,
                message,
            )));
        }
        let challenges = &self.env.abuse.challenges;
        let Some(proof) = join.proof.as_deref() else {
            challenges.stats.required();
            let message = "solve the challenge and send its solution in join.proof";
            return effects.push(Effect::Send(
                self.challenge_error(ErrorCode::ChallengeRequired, message.into()),
            ));
        };
        let checked = challenges.check(proof, self.who.ip, crate::entitlement::unix_now());
        let solved = match checked {
            Ok(solved) => solved,
            Err(err) => {
                debug!(parent: &self.span, cause = err.as_str(), "proof refused");
                return effects.push(Effect::Send(
                    self.challenge_error(ErrorCode::ChallengeFailed, err.to_string()),
                ));
            }
        };
        // Spent in the store before the join goes on, so that it counts once in the
        // cluster; the join waits for that, and is dropped if a `leave` or `next` (or
        // another join) came meanwhile.
        self.proving = true;
        let moves = self.moves;
        let abuse = Arc::clone(&self.env.abuse);
        let spend = async move { abuse.challenges.spend(&solved).await };
        ctx.spawn(spend.into_actor(self).map(move |spent, act, ctx| {
            act.proving = false;
            let mut effects = std::mem::take(&mut act.effects);
            match spent {
                Ok(()) => {
                    act.passed = true;
                    act.challenge = None;
                    if act.moves == moves {
                        act.env.metrics.joins.fetch_add(1, Ordering::Relaxed);
                        act.core.join(prefs, Instant::now(), &mut effects);
                    }
                }
                Err(ChallengeError::Store(err)) => {
                    warn!(parent: &act.span, error = %err, "a proof could not be spent");
                    let message = "the proof could not be checked now; try again";
                    let msg = ServerMsg::error(ErrorCode::Unavailable, message);
                    effects.push(Effect::Send(msg));
                }
                Err(err) => {
                    if err == ChallengeError::Spent {
                        // Perhaps this connection's own: it gets another.
                        act.challenge = None;
                    }
                    let msg = act.challenge_error(ErrorCode::ChallengeFailed, err.to_string());
                    effects.push(Effect::Send(msg));
                }
            }
            act.apply(effects, ctx);
        }));
    }

    /// A `challenge_required` or `challenge_failed` error with the challenge to solve: the
    /// connection's own while it holds, else a fresh one.
    fn challenge_error(&mut self, code: ErrorCode, message: String) -> ServerMsg {
        let now = crate::entitlement::unix_now();
        let held = (self.challenge.as_ref())
            .and_then(|c| c.parameters.expires_at)
            .is_some_and(|at| u64::try_from(at).is_ok_and(|at| at > now + 30));
        if !held {
            self.challenge = self.issue_challenge(now);
        }
        ServerMsg::Error {
            code,
            message,
            until: None,
            ban: None,
            challenge: self.challenge.clone(),
        }
    }

    /// A fresh challenge for this connection, at its address's pressure.
    fn issue_challenge(&self, now: u64) -> Option<tandem_proto::Challenge> {
        let pressure = self.slot.as_ref().map_or(0, |s| s.pressure());
        (self.env.abuse.challenges).issue(pressure, self.who.ip, now)
    }

    /// Carries out the core's effects, in order.
    fn apply(&mut self, mut effects: Vec<Effect>, ctx: &mut Context<Self>) {
        let metrics = Arc::clone(&self.env.metrics);
        for effect in effects.drain(..) {
            match effect {
                Effect::Send(msg) => self.send(&msg, ctx),
                Effect::Place(ticket) => self.env.router.place(ticket),
                Effect::Withdraw { ticket, bucket } => self.env.router.withdraw(ticket, &bucket),
                Effect::Notify { to, event } => {
                    if let SessionEvent::Relay { item, .. } = &event {
                        metrics.relayed(match item {
                            ChatInput::Msg(_) => RelayKind::Msg,
                            ChatInput::Typing(_) => RelayKind::Typing,
                            ChatInput::Signal(_) => RelayKind::Signal,
                        });
                    }
                    to.send(event);
                }
                Effect::Matched { waited } => {
                    metrics.matched_sessions.fetch_add(1, Ordering::Relaxed);
                    metrics.match_wait.observe(waited);
                }
                Effect::Ended { reason } => {
                    if reason == tandem_proto::EndReason::Skipped {
                        metrics.skips.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Effect::DroppedStale => {
                    metrics.dropped_stale.fetch_add(1, Ordering::Relaxed);
                }
                Effect::Report {
                    chat,
                    reported,
                    partner_info,
                    reason,
                    note,
                    evidence,
                } => {
                    let Some(reason) = Reason::parse(&reason) else {
                        continue;
                    };
                    let filing = Filing {
                        chat,
                        reporter: Arc::clone(&self.who),
                        reported,
                        country: partner_info.country,
                        reason,
                        note,
                        evidence: lines_of(evidence, Instant::now(), ["reporter", "reported"]),
                    };
                    self.file(filing, ctx);
                }
                Effect::SaveLog {
                    chat,
                    started,
                    ended,
                    common_interests,
                    lines,
                } => {
                    let now = Instant::now();
                    let draft = Draft {
                        started_ms: wall_ms(started, now),
                        ended_ms: ended.map(|ended| wall_ms(ended, now)),
                        common_interests,
                        lines: lines_of(lines, now, ["you", "stranger"]),
                    };
                    self.save_log(chat, draft, ctx);
                }
            }
        }
        self.effects = effects;
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        // The lines of a chat that ended go once they may no longer be reported.
        self.core.expire(Instant::now());
        if self.last_heard.elapsed() > self.env.settings.heartbeat_timeout {
            info!(parent: &self.span, "heartbeat timed out");
            self.env.metrics.close(CloseCause::Heartbeat);
            return self.close(CloseCode::Away, "heartbeat timed out", ctx);
        }
        self.pings += 1;
        self.push(Outgoing::Ping(self.pings), ctx);
    }
}

impl Actor for UserSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let env = Arc::clone(&self.env);
        env.metrics
            .connections_opened
            .fetch_add(1, Ordering::Relaxed);
        if !env.registry.insert(
            self.core.id(),
            ctx.address().recipient(),
            Arc::clone(&self.who),
        ) {
            // Shutdown began between the upgrade and this registration, so the broadcast
            // missed this session: tell it now.
            ctx.notify(SessionEvent::Shutdown);
        }
        ctx.run_interval(env.settings.heartbeat_interval, |act, ctx| {
            act.heartbeat(ctx)
        });
        self.challenge = self.issue_challenge(crate::entitlement::unix_now());
        let client = &self.who.client;
        let welcome = ServerMsg::Welcome(Welcome {
            session: self.core.id(),
            client_id: client.as_str().to_owned(),
            ice_servers: env.ice.servers_for(client, crate::entitlement::unix_now()),
            limits: tandem_proto::Limits {
                snapshot_interval_ms: env.abuse.snapshot_interval_ms(),
                ..env.settings.client_limits()
            },
            proto: PROTOCOL_VERSION,
            node: env.node.to_string(),
            challenge: self.challenge.clone(),
        });
        self.send(&welcome, ctx);
        debug!(parent: &self.span, "connected");
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        let mut effects = std::mem::take(&mut self.effects);
        self.core.disconnect(Instant::now(), &mut effects);
        self.apply(effects, ctx);
        self.env.registry.remove(self.core.id());
        self.env
            .metrics
            .connections_closed
            .fetch_add(1, Ordering::Relaxed);
        debug!(parent: &self.span, "disconnected");
    }
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for UserSession {
    fn handle(&mut self, item: Result<AggregatedMessage, ProtocolError>, ctx: &mut Context<Self>) {
        match item {
            Ok(AggregatedMessage::Text(text)) => {
                self.last_heard = Instant::now();
                let decoded = self.codec.decode_text(&text);
                self.on_frame(decoded, ctx);
            }
            Ok(AggregatedMessage::Binary(bytes)) => {
                self.last_heard = Instant::now();
                let decoded = match self.codec {
                    // On a JSON connection, a binary frame is a snapshot.
                    Codec::Json => tandem_proto::snapshot_frame(&bytes).map(|(chat, image)| {
                        ClientMsg::Snapshot {
                            chat,
                            image: image.to_vec(),
                        }
                    }),
                    Codec::Bincode => self.codec.decode_binary(&bytes),
                };
                self.on_frame(decoded, ctx);
            }
            Ok(AggregatedMessage::Ping(bytes)) => {
                if self.control_frame(ctx) {
                    self.push(Outgoing::Pong(bytes), ctx);
                }
            }
            Ok(AggregatedMessage::Pong(bytes)) => {
                // Only an answer to one of the last two pings is a sign of life: unsolicited
                // pongs keep nobody's connection open.
                let answered = |n: u64| bytes.as_ref() == n.to_be_bytes();
                if self.control_frame(ctx)
                    && self.pings > 0
                    && (answered(self.pings) || answered(self.pings - 1))
                {
                    self.last_heard = Instant::now();
                }
            }
            Ok(AggregatedMessage::Close(_)) => {
                // The client closed first: its Close is answered, and as nothing more may
                // come from it, the connection ends once the answer is written.
                let answering = self.out.is_some();
                self.close(CloseCode::Normal, "bye", ctx);
                if let Some(socket) = self.socket.take().filter(|_| answering) {
                    socket.stop_reading();
                }
            }
            Err(ProtocolError::Overflow) => self.too_big(ctx),
            Err(ProtocolError::Io(err))
                if err.get_ref().and_then(|e| Breach::of(e)) == Some(Breach::TooBig) =>
            {
                self.too_big(ctx)
            }
            Err(ProtocolError::Io(err))
                if err.get_ref().and_then(|e| Breach::of(e)) != Some(Breach::Malformed) =>
            {
                // The transport failed: the client went away without a close frame (a tab
                // closed, a network lost). Not its fault, and nobody left to tell.
                debug!(parent: &self.span, error = %err, "connection lost");
                self.out = None;
                ctx.stop();
            }
            Err(err) => {
                debug!(parent: &self.span, error = %err, "protocol error, closing");
                self.env.metrics.close(CloseCause::Protocol);
                self.close(CloseCode::Protocol, "websocket protocol error", ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        // The client went away (or the read side failed): end everything.
        self.out = None;
        ctx.stop();
    }
}

impl Handler<SessionEvent> for UserSession {
    type Result = ();

    fn handle(&mut self, event: SessionEvent, ctx: &mut Context<Self>) {
        match event {
            SessionEvent::Shutdown => {
                let msg = ServerMsg::error(
                    ErrorCode::ServerShutdown,
                    "this node is shutting down; reconnect",
                );
                self.send(&msg, ctx);
                self.env.metrics.close(CloseCause::Shutdown);
                return self.close(CloseCode::Restart, "server shutting down", ctx);
            }
            SessionEvent::Banned { ban, until, reason } => {
                if self.out.is_none() {
                    return; // Closing already (another ban of the same user came first).
                }
                info!(parent: &self.span, %ban, "banned while connected, closing");
                let msg = ServerMsg::Error {
                    code: ErrorCode::Banned,
                    message: format!("you are banned: {reason}"),
                    until: Some(until),
                    ban: Some(ban),
                    challenge: None,
                };
                self.send(&msg, ctx);
                self.env.metrics.close(CloseCause::Banned);
                return self.close(CloseCode::Policy, "banned", ctx);
            }
            _ => {}
        }
        let mut effects = std::mem::take(&mut self.effects);
        self.core.event(event, Instant::now(), &mut effects);
        self.apply(effects, ctx);
    }
}

/// Who the filter's strikes are filed by, as a reporter.
fn filter_identity() -> tandem_ids::ClientId {
    tandem_ids::ClientId::parse("filter.blast").expect("a valid id")
}

/// A report's lines as the store keeps them: times in Unix milliseconds, sides named from
/// the report's view.
/// Unix milliseconds of `at`, an instant before `now`.
fn wall_ms(at: Instant, now: Instant) -> u64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let ago = u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX);
    now_ms.saturating_sub(ago)
}

/// A chat's lines with wall-clock times; `names` are what this side's lines and the
/// partner's are called.
fn lines_of(lines: Vec<Line>, now: Instant, [mine, theirs]: [&str; 2]) -> Vec<EvidenceLine> {
    lines
        .into_iter()
        .map(|line| EvidenceLine {
            at_ms: wall_ms(line.at, now),
            from: if line.mine { mine } else { theirs }.to_owned(),
            text: line.text,
        })
        .collect()
}

/// The one writer of a connection: drains the queue into the socket, in order.
async fn write_frames(
    mut ws: actix_ws::Session,
    mut queue: mpsc::Receiver<Outgoing>,
    queued: Arc<AtomicUsize>,
) {
    while let Some(item) = queue.recv().await {
        let sent = match item {
            Outgoing::Frame(Frame::Text(text)) => {
                let bytes = text.len();
                let sent = ws.text(text).await;
                queued.fetch_sub(bytes, Ordering::Relaxed);
                sent
            }
            Outgoing::Frame(Frame::Binary(bytes)) => {
                let len = bytes.len();
                let sent = ws.binary(bytes).await;
                queued.fetch_sub(len, Ordering::Relaxed);
                sent
            }
            Outgoing::Ping(n) => ws.ping(&n.to_be_bytes()).await,
            Outgoing::Pong(bytes) => {
                let sent = ws.pong(&bytes).await;
                queued.fetch_sub(bytes.len(), Ordering::Relaxed);
                sent
            }
            Outgoing::Close(reason) => {
                let _ = ws.close(Some(reason)).await;
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
    // The session ended without a close of its own (the client left first).
    let _ = ws.close(None).await;
}
