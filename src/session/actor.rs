//! `UserSession`: the actix actor behind one WebSocket connection.
//!
//! It reads frames (a stream added to the actor), checks limits, decodes, runs the
//! [`SessionCore`] and carries out its effects. Outgoing frames go through one bounded queue
//! to one writer task that owns the `actix_ws::Session`: frames leave in order, and a client
//! that cannot keep up is disconnected rather than buffered without bound.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, StreamHandler};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, ProtocolError};
use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, info, warn, Span};

use super::limits::Kind;
use super::{ChatInput, Effect, Peer, RateLimits, SessionCore, SessionEvent, Verdict};
use crate::ids::{ClientId, SessionId};
use crate::matching::{Country, JoinRules, Lang, Preferences};
use crate::metrics::{CloseCause, RelayKind};
use crate::node::Node;
use crate::protocol::{
    ClientMsg, Codec, DecodeError, ErrorCode, Frame, ServerMsg, Welcome, PROTOCOL_VERSION,
};

/// Everything a session needs from the handshake.
pub struct UserSessionParams {
    pub node: Arc<Node>,
    pub codec: Codec,
    pub client_id: ClientId,
    /// From `Accept-Language`, for joins that name no language.
    pub default_lang: Lang,
    /// Decided by the server, never the client.
    pub country: Country,
    pub ws: actix_ws::Session,
    pub frames: AggregatedMessageStream,
}

/// One frame (or the close) for the writer.
enum Outgoing {
    Frame(Frame),
    Ping,
    Pong(Bytes),
    Close(CloseReason),
}

/// The actor.
pub struct UserSession {
    core: SessionCore,
    node: Arc<Node>,
    codec: Codec,
    client_id: ClientId,
    /// From `Accept-Language`, for joins that name no language.
    default_lang: Lang,
    /// The writer's queue; `None` once closing.
    out: Option<mpsc::Sender<Outgoing>>,
    /// The writer task, aborted when the client is too slow to drain it.
    writer: actix_rt::task::JoinHandle<()>,
    limits: RateLimits,
    /// Last frame of any kind from the client, for the heartbeat.
    last_heard: Instant,
    /// Reused for every input.
    effects: Vec<Effect>,
    span: Span,
}

impl UserSession {
    /// Starts the actor for a just-upgraded connection.
    pub fn start(params: UserSessionParams) -> actix::Addr<Self> {
        let UserSessionParams {
            node,
            codec,
            client_id,
            default_lang,
            country,
            ws,
            frames,
        } = params;
        UserSession::create(move |ctx| {
            let id = SessionId::random();
            let me = Peer {
                session: id,
                link: Arc::new(ctx.address().recipient::<SessionEvent>()),
            };
            let (tx, rx) = mpsc::channel(node.settings.out_queue);
            let writer = actix_rt::spawn(write_frames(ws, rx));
            ctx.add_stream(frames);
            let now = Instant::now();
            UserSession {
                core: SessionCore::new(me, country),
                span: tracing::info_span!("session", session = %id, node = %node.id),
                limits: RateLimits::new(&node.settings.limits, now),
                default_lang,
                node,
                codec,
                client_id,
                out: Some(tx),
                writer,
                last_heard: now,
                effects: Vec::with_capacity(8),
            }
        })
    }

    /// Defaults and bounds for this connection's joins: the node's, with its language.
    fn join_rules(&self) -> JoinRules {
        let settings = &self.node.settings;
        JoinRules {
            entitlements: settings.entitlements.clone(),
            default_lang: self.default_lang,
            default_interest_wait: settings.default_interest_wait,
            max_interest_wait: settings.max_interest_wait,
        }
    }

    /// Queues a message for the client.
    fn send(&mut self, msg: &ServerMsg, ctx: &mut Context<Self>) {
        if let ServerMsg::Error { code, .. } = msg {
            self.node.metrics.error(*code);
        }
        self.push(Outgoing::Frame(self.codec.encode(msg)), ctx);
    }

    fn push(&mut self, item: Outgoing, ctx: &mut Context<Self>) {
        let Some(out) = &self.out else { return };
        match out.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // The client does not read: drop it rather than buffer without bound.
                warn!(parent: &self.span, "client too slow, disconnecting");
                self.node.metrics.close(CloseCause::SlowConsumer);
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
        self.node.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
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
                self.node.metrics.close(CloseCause::Flood);
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
        match msg {
            ClientMsg::Join(join) => match Preferences::from_join(&join, &self.join_rules()) {
                Ok(prefs) => {
                    self.node.metrics.joins.fetch_add(1, Ordering::Relaxed);
                    self.core.join(prefs, now, &mut effects);
                }
                Err(err) => {
                    effects.push(Effect::Send(ServerMsg::error(err.code(), err.to_string())))
                }
            },
            ClientMsg::Next => self.core.next(now, &mut effects),
            ClientMsg::Leave => self.core.leave(now, &mut effects),
            ClientMsg::Msg { chat, text } => {
                self.core
                    .input(chat, ChatInput::Msg(text), now, &mut effects)
            }
            ClientMsg::Typing { chat, on } => {
                self.core
                    .input(chat, ChatInput::Typing(on), now, &mut effects)
            }
            ClientMsg::Signal { chat, data } => {
                self.core
                    .input(chat, ChatInput::Signal(data), now, &mut effects)
            }
            ClientMsg::Report { chat, reason } => {
                match self.core.chat_check(chat, now, &mut effects) {
                    Ok(partner) => {
                        self.node.metrics.reports.fetch_add(1, Ordering::Relaxed);
                        let reason: String = reason.chars().take(64).collect();
                        info!(parent: &self.span, %chat, reported = %partner.session,
                            client = %self.client_id, reason, "user report");
                    }
                    Err(refusal) => effects.push(*refusal),
                }
            }
            ClientMsg::SaveLog { chat } => match self.core.chat_check(chat, now, &mut effects) {
                Ok(_) => effects.push(Effect::Send(ServerMsg::error(
                    ErrorCode::Unsupported,
                    "this node does not store chat logs",
                ))),
                Err(refusal) => effects.push(*refusal),
            },
            ClientMsg::Ping => effects.push(Effect::Send(ServerMsg::Pong)),
        }
        self.apply(effects, ctx);
    }

    /// Carries out the core's effects, in order.
    fn apply(&mut self, mut effects: Vec<Effect>, ctx: &mut Context<Self>) {
        let metrics = Arc::clone(&self.node.metrics);
        for effect in effects.drain(..) {
            match effect {
                Effect::Send(msg) => self.send(&msg, ctx),
                Effect::Place(ticket) => self.node.router.place(ticket),
                Effect::Withdraw { ticket, bucket } => self.node.router.withdraw(ticket, &bucket),
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
                    if reason == crate::protocol::EndReason::Skipped {
                        metrics.skips.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Effect::DroppedStale => {
                    metrics.dropped_stale.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.effects = effects;
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.last_heard.elapsed() > self.node.settings.heartbeat_timeout {
            info!(parent: &self.span, "heartbeat timed out");
            self.node.metrics.close(CloseCause::Heartbeat);
            return self.close(CloseCode::Away, "heartbeat timed out", ctx);
        }
        self.push(Outgoing::Ping, ctx);
    }
}

impl Actor for UserSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let node = Arc::clone(&self.node);
        node.metrics
            .connections_opened
            .fetch_add(1, Ordering::Relaxed);
        node.sessions
            .insert(self.core.id(), ctx.address().recipient());
        if !node.is_ready() {
            // Shutdown began between the upgrade and this registration, so the broadcast may
            // have missed this session: tell it now.
            ctx.notify(SessionEvent::Shutdown);
        }
        ctx.run_interval(node.settings.heartbeat_interval, |act, ctx| {
            act.heartbeat(ctx)
        });
        let welcome = ServerMsg::Welcome(Welcome {
            session: self.core.id(),
            client_id: self.client_id.to_string(),
            ice_servers: node
                .settings
                .web
                .ice
                .servers_for(&self.client_id, crate::entitlement::unix_now()),
            limits: node.settings.client_limits(),
            proto: PROTOCOL_VERSION,
            node: node.id.to_string(),
        });
        self.send(&welcome, ctx);
        debug!(parent: &self.span, client = %self.client_id, "connected");
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        let mut effects = std::mem::take(&mut self.effects);
        self.core.disconnect(Instant::now(), &mut effects);
        self.apply(effects, ctx);
        self.node.sessions.remove(self.core.id());
        self.node
            .metrics
            .connections_closed
            .fetch_add(1, Ordering::Relaxed);
        debug!(parent: &self.span, "disconnected");
    }
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for UserSession {
    fn handle(&mut self, item: Result<AggregatedMessage, ProtocolError>, ctx: &mut Context<Self>) {
        self.last_heard = Instant::now();
        match item {
            Ok(AggregatedMessage::Text(text)) => {
                let decoded = self.codec.decode_text(&text);
                self.on_frame(decoded, ctx);
            }
            Ok(AggregatedMessage::Binary(bytes)) => {
                let decoded = self.codec.decode_binary(&bytes);
                self.on_frame(decoded, ctx);
            }
            Ok(AggregatedMessage::Ping(bytes)) => self.push(Outgoing::Pong(bytes), ctx),
            Ok(AggregatedMessage::Pong(_)) => {}
            Ok(AggregatedMessage::Close(_)) => self.close(CloseCode::Normal, "bye", ctx),
            Err(ProtocolError::Overflow) => {
                info!(parent: &self.span, "frame too big, closing");
                self.node.metrics.close(CloseCause::TooBig);
                self.close(CloseCode::Size, "frame larger than 64 KiB", ctx);
            }
            Err(err) => {
                debug!(parent: &self.span, error = %err, "protocol error, closing");
                self.node.metrics.close(CloseCause::Protocol);
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
        if let SessionEvent::Shutdown = event {
            let msg = ServerMsg::error(
                ErrorCode::ServerShutdown,
                "this node is shutting down; reconnect",
            );
            self.send(&msg, ctx);
            self.node.metrics.close(CloseCause::Shutdown);
            return self.close(CloseCode::Restart, "server shutting down", ctx);
        }
        let mut effects = std::mem::take(&mut self.effects);
        self.core.event(event, Instant::now(), &mut effects);
        self.apply(effects, ctx);
    }
}

/// The one writer of a connection: drains the queue into the socket, in order.
async fn write_frames(mut ws: actix_ws::Session, mut queue: mpsc::Receiver<Outgoing>) {
    while let Some(item) = queue.recv().await {
        let sent = match item {
            Outgoing::Frame(Frame::Text(text)) => ws.text(text).await,
            Outgoing::Frame(Frame::Binary(bytes)) => ws.binary(bytes).await,
            Outgoing::Ping => ws.ping(b"").await,
            Outgoing::Pong(bytes) => ws.pong(&bytes).await,
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
