//! One simulated user: connect, join, chat for a while, skip, and again, until the run ends.
//! At the end of a chat it may instead leave and join again after a pause, or close its
//! connection and reconnect with its `client_id` (`--leave-share`, `--reconnect-share`).
//!
//! Every action has a scheduled time, and latencies are measured from it rather than from the
//! moment the task got round to acting (an open model: a slow client or a slow server cannot
//! hide its delays by postponing the next request). The user never waits for an answer before
//! its next scheduled action, except that it only chats while it is in a chat.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tandem_proto::ids::{ChatId, SessionId};
use tandem_proto::{ClientMsg, Codec, EndReason, Frame, Matched, ServerMsg, SignalData, Welcome};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::args::DwellRange;
use super::chat_line::ChatLine;
use super::checks::{CommonSeen, ViolationKind};
use super::failure::Failure;
use super::profile::Profile;
use super::recorder::{Event, Recorder};
use super::source_ips::connect_tcp;

/// What one user does, fixed before the run starts.
#[derive(Clone, Debug)]
pub struct UserPlan {
    /// The WebSocket URL to connect to, codec parameter included.
    pub url: String,
    /// When to connect.
    pub start_at: Instant,
    /// When to leave.
    pub end_at: Instant,
    /// Where each chat's dwell time is drawn from.
    pub dwell: DwellRange,
    /// Chat lines per chat.
    pub msgs_per_chat: u32,
    /// `signal` messages per chat.
    pub signals_per_chat: u32,
    /// Share of chat ends that are a `leave`, a pause, and a new `join`.
    pub leave_share: f64,
    /// Share of chat ends that are a closed connection, a reconnection and a new `join`.
    pub reconnect_share: f64,
    /// Wire format.
    pub codec: Codec,
    /// Longest any single network step may take.
    pub step_timeout: Duration,
    /// Seed of this user's dwell times.
    pub seed: u64,
    /// The local address to connect from (`--source-ips`); the system picks one if `None`.
    pub source_ip: Option<Ipv4Addr>,
    /// Who this user is; every `join` it sends is this profile's.
    pub profile: Profile,
    /// The request header that carries `profile.country` (`--country-header`).
    pub country_header: String,
}

/// Runs one user from its start time to the end of the run; failures are counted, not
/// returned, because one broken connection must not stop the others.
pub async fn run_user(plan: UserPlan, rec: &Recorder) {
    if plan.start_at >= plan.end_at {
        // A ramp longer than the run: this user's turn never comes.
        return;
    }
    sleep_until(plan.start_at.into()).await;
    let mut user = match User::connect(&plan, rec).await {
        Ok(user) => user,
        Err(failure) => return rec.connection_failure(failure.as_str()),
    };
    rec.connected.fetch_add(1, Ordering::Relaxed);
    let outcome = user.live().await;
    if user.chat.is_some() {
        rec.in_chat.fetch_sub(1, Ordering::Relaxed);
    }
    rec.connected.fetch_sub(1, Ordering::Relaxed);
    if let Err(failure) = outcome {
        rec.connection_failure(failure.as_str());
    }
}

/// The chat a user is in, as that user sees it.
struct InChat {
    chat: ChatId,
    /// This side got `initiator: true`: its first signal is the offer.
    initiator: bool,
    /// Learnt from the ledger on the first line received (the partner reports the chat before
    /// writing to it).
    partner: Option<SessionId>,
    started: Instant,
    dwell: Duration,
    /// Lines sent so far; also the next line's sequence number.
    sent: u32,
    /// Signals sent so far; also the next signal's sequence number.
    signals_sent: u32,
    /// `next` or `leave` is on its way: no more lines, and no `join` when the partner ends
    /// first.
    skip_sent: bool,
    last_seq_received: Option<u32>,
    last_signal_seq_received: Option<u32>,
}

/// What a user does next in a chat, or after a `leave`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// Send the next chat line.
    Line,
    /// Send the next signal.
    Signal,
    /// End the chat: `next`, or `leave`, or a reconnection.
    End,
    /// Join again after the pause that followed a `leave`.
    Rejoin,
}

/// The two kinds of partner messages that are checked alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channel {
    Line,
    Signal,
}

struct User<'a> {
    ws: WebSocketStream<TcpStream>,
    plan: &'a UserPlan,
    rec: &'a Recorder,
    session: SessionId,
    /// The `client_id` of the first `welcome`, sent back on every reconnection.
    client_id: String,
    rng: StdRng,
    /// After a `leave` at the end of a chat: when to join again.
    rejoin_at: Option<Instant>,
    /// Those `leave`s not answered yet (`idle` or `ended {left}`), so that the `leave` at
    /// the end of the run does not take their answer for its own.
    unanswered_leaves: u32,
    chat: Option<InChat>,
    /// When the `join` or `next` now waiting for its `matched` was due.
    awaiting_match: Option<Instant>,
    /// `leave` is sent: answer nothing with a new `join`.
    leaving: bool,
    /// The solution of this connection's challenge, for its first `join`.
    proof: Option<String>,
}

impl<'a> User<'a> {
    async fn connect(plan: &'a UserPlan, rec: &'a Recorder) -> Result<Self, Failure> {
        let (ws, welcome) = open(plan, rec, &plan.url).await?;
        Recorder::record_latency(&rec.connect_latency, plan.start_at, Instant::now());
        let proof = solve(rec, &welcome).await?;
        Ok(User {
            ws,
            plan,
            rec,
            session: welcome.session,
            client_id: welcome.client_id,
            rng: StdRng::seed_from_u64(plan.seed),
            rejoin_at: None,
            unanswered_leaves: 0,
            chat: None,
            awaiting_match: None,
            leaving: false,
            proof,
        })
    }

    /// Joins, then chats and skips until the end of the run; then leaves and closes.
    async fn live(&mut self) -> Result<(), Failure> {
        self.join(Instant::now()).await?;
        let end_at = self.plan.end_at;
        loop {
            let due = self
                .next_action()
                .map_or(end_at, |(due, _)| due.min(end_at));
            tokio::select! {
                frame = self.ws.next() => match frame {
                    Some(Ok(frame)) => self.on_frame(frame).await?,
                    _ => return Err(Failure::Closed),
                },
                _ = sleep_until(due.into()) => {
                    if due >= end_at {
                        break;
                    }
                    self.act().await?;
                }
            }
        }
        self.leave().await
    }

    /// The next action and when it is due: in a chat, the next line or signal (each kind
    /// spread evenly over the dwell, a line first when both fall due together) and then the
    /// chat's end; after a `leave`, the new `join`.
    fn next_action(&self) -> Option<(Instant, Action)> {
        let Some(chat) = self.chat.as_ref().filter(|chat| !chat.skip_sent) else {
            return self.rejoin_at.map(|at| (at, Action::Rejoin));
        };
        // Item k of n is due at dwell × (k+1)/(n+1); the end after the last.
        let spread = |done: u32, of: u32| {
            (done < of).then(|| chat.started + chat.dwell * (done + 1) / (of + 1))
        };
        let line = spread(chat.sent, self.plan.msgs_per_chat).map(|at| (at, Action::Line));
        let signal =
            spread(chat.signals_sent, self.plan.signals_per_chat).map(|at| (at, Action::Signal));
        match (line, signal) {
            (Some(line), Some(signal)) => Some(if signal.0 < line.0 { signal } else { line }),
            (Some(one), None) | (None, Some(one)) => Some(one),
            (None, None) => Some((chat.started + chat.dwell, Action::End)),
        }
    }

    /// Does the action [`User::next_action`] named, now that it is due.
    async fn act(&mut self) -> Result<(), Failure> {
        let Some((due, action)) = self.next_action() else {
            return Ok(());
        };
        match action {
            Action::Line => {
                let chat = self.chat.as_mut().expect("a line implies a chat");
                let line = ChatLine {
                    sender: self.session,
                    chat: chat.chat,
                    seq: chat.sent,
                    scheduled_us: self.rec.micros_since_epoch(due),
                    mode: self.plan.profile.mode.to_owned(),
                    lang: self.plan.profile.lang.clone(),
                };
                chat.sent += 1;
                let msg = ClientMsg::Msg {
                    chat: line.chat,
                    text: line.encode(),
                };
                self.send(&msg).await?;
                self.rec.msgs_sent.fetch_add(1, Ordering::Relaxed);
            }
            Action::Signal => {
                let chat = self.chat.as_mut().expect("a signal implies a chat");
                let line = ChatLine {
                    sender: self.session,
                    chat: chat.chat,
                    seq: chat.signals_sent,
                    scheduled_us: self.rec.micros_since_epoch(due),
                    mode: self.plan.profile.mode.to_owned(),
                    lang: self.plan.profile.lang.clone(),
                };
                chat.signals_sent += 1;
                let msg = ClientMsg::Signal {
                    chat: line.chat,
                    data: SignalData::from_value(&line.signal_data(chat.initiator))
                        .expect("a load line is small, flat JSON"),
                };
                self.send(&msg).await?;
                self.rec.signals_sent.fetch_add(1, Ordering::Relaxed);
            }
            Action::End => self.end_chat(due).await?,
            Action::Rejoin => {
                self.rejoin_at = None;
                self.join(due).await?;
            }
        }
        Ok(())
    }

    /// Ends the current chat as drawn: `leave` (then a pause and a new `join`), a closed and
    /// reopened connection (then a new `join`), or else `next`.
    async fn end_chat(&mut self, due: Instant) -> Result<(), Failure> {
        let (leave, reconnect) = (self.plan.leave_share, self.plan.reconnect_share);
        // Drawn only when there is a choice, so that the dwells of a plain run stay the same.
        let draw: f64 = if leave + reconnect > 0.0 {
            self.rng.random()
        } else {
            1.0
        };
        if draw < leave {
            let pause = self.draw_dwell();
            self.chat.as_mut().expect("an end implies a chat").skip_sent = true;
            self.unanswered_leaves += 1;
            self.rejoin_at = Some(due + pause);
            self.send(&ClientMsg::Leave).await?;
            self.rec.leaves.fetch_add(1, Ordering::Relaxed);
        } else if draw < leave + reconnect {
            self.reconnect().await?;
        } else {
            self.chat.as_mut().expect("an end implies a chat").skip_sent = true;
            self.awaiting_match = Some(due);
            self.send(&ClientMsg::Next).await?;
            self.rec.skips.fetch_add(1, Ordering::Relaxed);
            self.rec.count(Event::Skip, Instant::now());
        }
        Ok(())
    }

    /// Closes the connection in the middle of a chat (the partner is told
    /// `partner_disconnected`), opens a new one with this user's `client_id`, checks that the
    /// server kept it, and joins again.
    async fn reconnect(&mut self) -> Result<(), Failure> {
        let _ = timeout(self.plan.step_timeout, self.ws.close(None)).await;
        if self.chat.take().is_some() {
            self.rec.in_chat.fetch_sub(1, Ordering::Relaxed);
        }
        self.awaiting_match = None;
        // Whatever the old connection still had to say is gone with it.
        self.unanswered_leaves = 0;
        let url = with_client_id(&self.plan.url, &self.client_id);
        let (ws, welcome) = open(self.plan, self.rec, &url).await?;
        self.ws = ws;
        self.session = welcome.session;
        self.proof = solve(self.rec, &welcome).await?;
        if welcome.client_id != self.client_id {
            self.rec.violations.record(ViolationKind::ClientIdNotKept);
        }
        self.rec.reconnects.fetch_add(1, Ordering::Relaxed);
        self.join(Instant::now()).await
    }

    /// A dwell time (or a pause after `leave`) drawn from `--dwell`.
    fn draw_dwell(&mut self) -> Duration {
        let DwellRange { min, max } = self.plan.dwell;
        if min < max {
            self.rng.random_range(min..=max)
        } else {
            min
        }
    }

    async fn join(&mut self, due: Instant) -> Result<(), Failure> {
        self.awaiting_match = Some(due);
        let mut join = self.plan.profile.join();
        // Only the first join of a connection proves anything; later ones need not.
        join.proof = self.proof.take();
        let join = ClientMsg::Join(join);
        self.send(&join).await?;
        self.rec.joins.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Sends `leave`, reads until it is answered, then closes.
    async fn leave(&mut self) -> Result<(), Failure> {
        self.leaving = true;
        self.send(&ClientMsg::Leave).await?;
        let answered = timeout(self.plan.step_timeout, async {
            while let Some(Ok(frame)) = self.ws.next().await {
                if let Some(msg) = self.decode(frame) {
                    // `leave` is answered by `idle` (from a wait) or `ended {left}` (from a
                    // chat), after any `matched` the server made just before it. An `error`
                    // still in flight (a `stale_chat` for an earlier line) is no answer:
                    // stopping there would miss that `matched` and make the chat look
                    // one-sided. A refused `leave` (`rate_limited`) ends the wait too: the
                    // close that follows leaves the pool as well.
                    let answer = self.unanswered_leaves == 0
                        && matches!(
                            msg,
                            ServerMsg::Idle
                                | ServerMsg::Error {
                                    code: tandem_proto::ErrorCode::RateLimited,
                                    ..
                                }
                                | ServerMsg::Ended {
                                    reason: EndReason::Left,
                                    ..
                                }
                        );
                    self.on_message(msg).await?;
                    if answer {
                        return Ok(true);
                    }
                }
            }
            Ok(false)
        })
        .await;
        let _ = timeout(self.plan.step_timeout, self.ws.close(None)).await;
        match answered {
            Ok(Ok(true)) => Ok(()),
            Ok(Err(failure)) => Err(failure),
            _ => Err(Failure::Leave),
        }
    }

    async fn send(&mut self, msg: &ClientMsg) -> Result<(), Failure> {
        let frame = match self.plan.codec.encode(msg) {
            Frame::Text(text) => Message::text(text),
            Frame::Binary(bytes) => Message::binary(bytes),
        };
        match timeout(self.plan.step_timeout, self.ws.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Failure::Send),
        }
    }

    fn decode(&self, frame: Message) -> Option<ServerMsg> {
        decode(self.plan.codec, self.rec, frame)
    }

    async fn on_frame(&mut self, frame: Message) -> Result<(), Failure> {
        if let Message::Close(_) = frame {
            return Err(Failure::Closed);
        }
        match self.decode(frame) {
            Some(msg) => self.on_message(msg).await,
            None => Ok(()),
        }
    }

    async fn on_message(&mut self, msg: ServerMsg) -> Result<(), Failure> {
        let now = Instant::now();
        match msg {
            ServerMsg::Matched(matched) => self.on_matched(matched, now),
            ServerMsg::Msg { chat, text } => {
                let rec = self.rec;
                rec.msgs_received.fetch_add(1, Ordering::Relaxed);
                rec.count(Event::MsgReceived, now);
                self.on_delivery(Channel::Line, chat, ChatLine::decode(&text), now);
            }
            ServerMsg::Signal { chat, data } => {
                self.rec.signals_received.fetch_add(1, Ordering::Relaxed);
                let line = ChatLine::from_signal_data(&data.to_value());
                self.on_delivery(Channel::Signal, chat, line, now);
            }
            ServerMsg::Idle => self.leave_answered(),
            ServerMsg::Ended {
                chat,
                reason: EndReason::Left,
            } => {
                self.leave_answered();
                return self.on_ended(chat, EndReason::Left, now).await;
            }
            ServerMsg::Ended { chat, reason } => return self.on_ended(chat, reason, now).await,
            ServerMsg::Error { code, .. } => self.rec.error(code.as_str()),
            _ => {}
        }
        Ok(())
    }

    fn on_matched(&mut self, matched: Matched, now: Instant) {
        let rec = self.rec;
        rec.matched.fetch_add(1, Ordering::Relaxed);
        if self.chat.is_some() {
            rec.violations.record(ViolationKind::MatchedWhileInChat);
        } else {
            rec.in_chat.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(due) = self.awaiting_match.take() {
            Recorder::record_latency(&rec.match_latency, due, now);
        }
        let profile = &self.plan.profile;
        // Each side checks its own filter, so both directions of the mutual rule are checked.
        if !profile.accepts(&matched.partner.country) {
            rec.violations.record(ViolationKind::FilterViolated);
        }
        let common = CommonSeen::judge(&matched.common_interests, &profile.interests);
        let sighting = rec.ledger.matched(
            matched.chat,
            self.session,
            matched.initiator,
            rec.micros_since_epoch(now),
            common,
            &rec.violations,
        );
        if sighting.first {
            rec.count(Event::Match, now);
        }
        let dwell = self.draw_dwell();
        self.chat = Some(InChat {
            chat: matched.chat,
            initiator: matched.initiator,
            partner: sighting.partner,
            started: now,
            dwell,
            sent: 0,
            signals_sent: 0,
            skip_sent: false,
            last_seq_received: None,
            last_signal_seq_received: None,
        });
    }

    /// An `idle` or `ended {left}`: the answer to a `leave` sent at the end of a chat, if
    /// one is pending.
    fn leave_answered(&mut self) {
        self.unanswered_leaves = self.unanswered_leaves.saturating_sub(1);
    }

    /// Times and checks a line or a signal from the partner (`line` is `None` when the
    /// text or data is not one this generator wrote). Both are judged by the same rules and
    /// counted under the same violation kinds; each has its own order.
    fn on_delivery(
        &mut self,
        channel: Channel,
        chat: ChatId,
        line: Option<ChatLine>,
        now: Instant,
    ) {
        let rec = self.rec;
        let Some(line) = line else {
            return rec.violations.record(ViolationKind::MsgUnreadable);
        };
        let due = rec.epoch + Duration::from_micros(line.scheduled_us);
        let histogram = match channel {
            Channel::Line => &rec.msg_latency,
            Channel::Signal => &rec.signal_latency,
        };
        Recorder::record_latency(histogram, due, now);
        let Some(current) = self.chat.as_mut() else {
            return rec.violations.record(ViolationKind::MsgWrongChat);
        };
        if chat != current.chat || line.chat != current.chat {
            return rec.violations.record(ViolationKind::MsgWrongChat);
        }
        if current.partner.is_none() {
            current.partner = rec.ledger.partner_of(current.chat, self.session);
            if current.partner.is_none() && rec.partners_elsewhere {
                // The partner is played by another worker: the parent checks this claim over
                // every worker's chats, and later lines must come from the same sender.
                rec.claim_sender(current.chat, self.session, line.sender);
                current.partner = Some(line.sender);
            }
        }
        if current.partner != Some(line.sender) {
            rec.violations.record(ViolationKind::MsgWrongSender);
        }
        let profile = &self.plan.profile;
        if line.mode != profile.mode || line.lang != profile.lang {
            rec.violations.record(ViolationKind::PartitionViolated);
        }
        let last_seq = match channel {
            Channel::Line => &mut current.last_seq_received,
            Channel::Signal => &mut current.last_signal_seq_received,
        };
        if last_seq.is_some_and(|last| line.seq <= last) {
            rec.violations.record(ViolationKind::MsgOutOfOrder);
        }
        *last_seq = Some(line.seq);
    }

    async fn on_ended(
        &mut self,
        chat: ChatId,
        reason: EndReason,
        now: Instant,
    ) -> Result<(), Failure> {
        let Some(current) = self.chat.as_ref().filter(|current| current.chat == chat) else {
            self.rec.violations.record(ViolationKind::EndedWrongChat);
            return Ok(());
        };
        let skip_sent = current.skip_sent;
        self.chat = None;
        self.rec.in_chat.fetch_sub(1, Ordering::Relaxed);
        if reason == EndReason::PartnerDisconnected {
            self.rec.ledger.partner_disconnected(chat, self.session);
        }
        let partner_ended = matches!(
            reason,
            EndReason::PartnerSkipped | EndReason::PartnerLeft | EndReason::PartnerDisconnected
        );
        // The partner left us idle; our own `next`, if on its way, re-queues us by itself.
        if partner_ended && !skip_sent && !self.leaving {
            self.join(now).await?;
        }
        Ok(())
    }
}

/// Solves the challenge of `welcome`, if it carries one, off the runtime's threads, and
/// records how long that took.
async fn solve(rec: &Recorder, welcome: &Welcome) -> Result<Option<String>, Failure> {
    let Some(challenge) = welcome.challenge.clone() else {
        return Ok(None);
    };
    let started = Instant::now();
    let solved = tokio::task::spawn_blocking(move || super::challenge::solve(&challenge)).await;
    let proof = solved.ok().flatten().ok_or(Failure::Challenge)?;
    Recorder::record_latency(&rec.solve_latency, started, Instant::now());
    Ok(Some(proof))
}

/// Opens a connection to `url` (with the user's country header) and reads its `welcome`.
async fn open(
    plan: &UserPlan,
    rec: &Recorder,
    url: &str,
) -> Result<(WebSocketStream<TcpStream>, Welcome), Failure> {
    let mut request = url.into_client_request().map_err(|_| Failure::Handshake)?;
    if let Some(country) = &plan.profile.country {
        // What a trusted proxy in front of the node would add.
        let name = HeaderName::from_bytes(plan.country_header.as_bytes())
            .map_err(|_| Failure::Handshake)?;
        let value = HeaderValue::from_str(country).map_err(|_| Failure::Handshake)?;
        request.headers_mut().insert(name, value);
    }
    let host = request.uri().host().unwrap_or("127.0.0.1").to_owned();
    let port = request.uri().port_u16().unwrap_or(80);
    let tcp = timeout(plan.step_timeout, connect_tcp(&host, port, plan.source_ip))
        .await
        .map_err(|_| Failure::Connect)?
        .map_err(|_| Failure::Connect)?;
    // Chat latency is the point: never wait for more bytes before sending.
    let _ = tcp.set_nodelay(true);
    // Thousands of users share this process: keep per-connection buffers small.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024);
    let ws = timeout(
        plan.step_timeout,
        tokio_tungstenite::client_async_with_config(request, tcp, Some(config)),
    )
    .await
    .map_err(|_| Failure::Handshake)?
    .map_err(|_| Failure::Handshake)?;
    let (mut ws, _) = ws;
    let welcome = timeout(plan.step_timeout, ws.next()).await;
    let Ok(Some(Ok(frame))) = welcome else {
        return Err(Failure::Welcome);
    };
    match decode(plan.codec, rec, frame) {
        Some(ServerMsg::Welcome(welcome)) => Ok((ws, welcome)),
        _ => Err(Failure::Welcome),
    }
}

/// The protocol message in a frame; `None` for control frames. A frame that does not decode
/// is counted as an error (`undecodable`), since the server should never send one.
fn decode(codec: Codec, rec: &Recorder, frame: Message) -> Option<ServerMsg> {
    let decoded = match frame {
        Message::Text(text) => codec.decode_text(text.as_str()),
        Message::Binary(bytes) => codec.decode_binary(&bytes),
        _ => return None,
    };
    decoded.map_err(|_| rec.error("undecodable")).ok()
}

/// The URL of a reconnection: the target's, with the user's `client_id`.
fn with_client_id(url: &str, client_id: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}client_id={client_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconnection_names_the_client_id_after_any_codec() {
        assert_eq!(
            with_client_id("ws://h:1/ws", "c-1"),
            "ws://h:1/ws?client_id=c-1"
        );
        assert_eq!(
            with_client_id("ws://h:1/ws?codec=bincode", "c-1"),
            "ws://h:1/ws?codec=bincode&client_id=c-1"
        );
    }
}
