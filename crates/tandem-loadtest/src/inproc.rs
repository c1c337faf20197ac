//! In-process mode: a million virtual users driving the real shard actors, no sockets.
//!
//! Each virtual user is a real [`SessionCore`] (the same state machine a WebSocket session
//! runs) whose link delivers events to the driver thread that owns it. Driver threads play
//! the users: join once (with auto re-roll), and after every `matched` say hello to the
//! partner and skip after a dwell drawn from the configured range. The shards are a real
//! [`Engine`]'s actors on their own threads, as a node that runs alone has them. What this
//! measures is the engine itself: state machines, router, shard pools and seat claims, at a
//! scale one machine's sockets cannot reach.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use tandem_engine::router::Router;
use tandem_engine::session::Preferences;
use tandem_engine::session::{
    ChatInput, Effect, Identity, Peer, Phase, SessionCore, SessionEvent, SessionLink,
};
use tandem_engine::shard::{Alone, ShardStats};
use tandem_engine::Engine;
use tandem_match::{Country, Lang, Mode};
use tandem_proto::ids::{ChatId, ClientId, SessionId};
use tandem_proto::ServerMsg;

use super::report::{distribution, summarize, LatencySummary, Report, SecondSample};

/// What an in-process run does.
#[derive(Clone, Debug)]
pub struct InprocConfig {
    /// Virtual users, all connected for the whole run.
    pub users: usize,
    /// How long users skip after all have joined.
    pub duration: Duration,
    /// Time in a chat before skipping, drawn uniformly from this range.
    pub dwell: (Duration, Duration),
    /// Shard actors.
    pub shards: usize,
    /// Driver threads playing the users.
    pub drivers: usize,
    /// Seed for dwell times.
    pub seed: u64,
}

/// A progress sample, once per second.
#[derive(Clone, Debug)]
pub struct InprocProgress {
    pub elapsed: Duration,
    pub chatting: u64,
    pub skips_per_sec: f64,
    pub match_p50_us: u64,
    pub match_p99_us: u64,
}

/// What an in-process run measured.
#[derive(Debug)]
pub struct InprocReport {
    pub users: usize,
    /// Measured window (after every user had joined).
    pub elapsed: Duration,
    pub skips: u64,
    pub matches: u64,
    pub relays: u64,
    /// Every user's `matched` latency: from the scheduled skip (or the partner's skip
    /// reaching it) to `matched`, in microseconds.
    pub match_latency_us: Histogram<u64>,
    /// Skips and matches in each second of the measured window.
    pub per_second: Vec<SecondSample>,
    /// Hellos that reached a user who was not in that chat with that sender.
    pub misrouted: u64,
    /// Users paired while still in a chat.
    pub double_matched: u64,
}

impl InprocReport {
    /// Skips per second over the measured window.
    pub fn skips_per_sec(&self) -> f64 {
        self.skips as f64 / self.elapsed.as_secs_f64()
    }

    /// Pairs made per second over the measured window.
    pub fn matches_per_sec(&self) -> f64 {
        self.matches as f64 / self.elapsed.as_secs_f64()
    }

    /// Invariant violations seen.
    pub fn violations(&self) -> u64 {
        self.misrouted + self.double_matched
    }

    /// The figures in the shape of a socket run's report, for the same table and files.
    pub fn into_report(self, seed: u64) -> Report {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let violations_by_kind: BTreeMap<String, u64> = [
            ("msg_wrong_sender".to_owned(), self.misrouted),
            ("matched_while_in_chat".to_owned(), self.double_matched),
        ]
        .into_iter()
        .collect();
        Report {
            targets: vec!["inproc".to_owned()],
            codec: "none".to_owned(),
            clients: self.users,
            duration_secs: secs,
            seed,
            connected: self.users as u64,
            joins: self.users as u64,
            skips: self.skips,
            matches: self.matches,
            matched_received: 2 * self.matches,
            matches_with_common_interests: 0,
            msgs_sent: self.relays,
            msgs_received: self.relays,
            signals_sent: 0,
            signals_received: 0,
            leaves: 0,
            reconnects: 0,
            skips_per_sec: self.skips_per_sec(),
            matches_per_sec: self.matches_per_sec(),
            msgs_per_sec: self.relays as f64 / secs,
            match_latency_ms: summarize(&self.match_latency_us),
            msg_latency_ms: LatencySummary::default(),
            signal_latency_ms: LatencySummary::default(),
            connect_latency_ms: LatencySummary::default(),
            solve_latency_ms: LatencySummary::default(),
            errors: 0,
            errors_by_code: BTreeMap::new(),
            connection_failures: 0,
            connection_failures_by_kind: BTreeMap::new(),
            violations: self.violations(),
            violations_by_kind,
            throughput: self.per_second,
            match_latency_distribution: distribution(&self.match_latency_us),
            msg_latency_distribution: Vec::new(),
            failed_assertions: Vec::new(),
            server_rss_kib: Vec::new(),
            server_rss_per_user_kib: None,
            server_cpu_per_skip_us: None,
            workers: Vec::new(),
        }
    }
}

/// Counters every driver adds to.
#[derive(Default)]
struct Shared {
    skips: AtomicU64,
    /// Sessions told `matched` (two per pair).
    matched_sessions: AtomicU64,
    chatting: AtomicU64,
    relays: AtomicU64,
    misrouted: AtomicU64,
    double_matched: AtomicU64,
    /// Set once every user has joined: latencies count from then on.
    measuring: AtomicBool,
    stop: AtomicBool,
}

/// Delivers a virtual user's events to its driver.
struct DriverLink {
    user: u32,
    inbox: mpsc::Sender<(u32, SessionEvent)>,
}

impl SessionLink for DriverLink {
    fn deliver(&self, event: SessionEvent) {
        let _ = self.inbox.send((self.user, event));
    }
}

struct VirtualUser {
    core: SessionCore,
    /// When the user's current wait was scheduled to begin (open-model start of latency).
    wait_from: Instant,
    /// The chat this user's client saw last, for the hello check.
    chat: Option<ChatId>,
}

/// Runs the engine under a million-user skip load. Needs no actix `System` around it (it
/// starts its own); call it from a plain thread, not from inside an async runtime.
pub fn run(config: &InprocConfig, mut progress: impl FnMut(&InprocProgress)) -> InprocReport {
    let system = actix_rt::System::new();
    let stats: Vec<Arc<ShardStats>> = (0..config.shards.max(1)).map(|_| Arc::default()).collect();
    let engine = system.block_on(async { Engine::start(&stats, || Arc::new(Alone), None) });
    let shared = Arc::new(Shared::default());
    let drivers = config.drivers.max(1);
    let histograms: Vec<Arc<Mutex<Histogram<u64>>>> = (0..drivers)
        .map(|_| Arc::new(Mutex::new(latency_histogram())))
        .collect();
    let joined = Arc::new(AtomicU64::new(0));

    let mut handles = Vec::new();
    for (d, histogram) in histograms.iter().enumerate() {
        let (tx, rx) = mpsc::channel();
        let first = config.users * d / drivers;
        let last = config.users * (d + 1) / drivers;
        let driver = Driver {
            users: Vec::new(),
            first: first as u32,
            inbox: rx,
            timers: TimerWheel::new(config.dwell.1),
            router: engine.router().clone(),
            shared: Arc::clone(&shared),
            histogram: Arc::clone(histogram),
            rng: rand::rngs::SmallRng::seed_from_u64(config.seed ^ d as u64),
            dwell: config.dwell,
            effects: Vec::new(),
            pending: Vec::new(),
        };
        let joined = Arc::clone(&joined);
        handles.push(std::thread::spawn(move || {
            let mut driver = driver;
            driver.create_users(first as u32..last as u32, &tx);
            drop(tx);
            driver.join_all();
            joined.fetch_add(1, Ordering::Release);
            driver.run();
        }));
    }

    // Wait for every driver to have joined its users, then measure.
    while joined.load(Ordering::Acquire) < drivers as u64 {
        std::thread::sleep(Duration::from_millis(20));
    }
    for h in &histograms {
        h.lock().expect("histogram lock").reset();
    }
    shared.skips.store(0, Ordering::Relaxed);
    shared.matched_sessions.store(0, Ordering::Relaxed);
    shared.relays.store(0, Ordering::Relaxed);
    shared.measuring.store(true, Ordering::Release);
    let started = Instant::now();
    let mut last_skips = 0;
    let mut last_matches = 0;
    let mut per_second = Vec::new();
    let mut last_tick = started;
    while started.elapsed() < config.duration {
        let tick = (last_tick + Duration::from_secs(1)).min(started + config.duration);
        std::thread::sleep(tick.saturating_duration_since(Instant::now()));
        let now = Instant::now();
        let skips = shared.skips.load(Ordering::Relaxed);
        let merged = merge(&histograms);
        progress(&InprocProgress {
            elapsed: now - started,
            chatting: shared.chatting.load(Ordering::Relaxed),
            skips_per_sec: (skips - last_skips) as f64 / (now - last_tick).as_secs_f64(),
            match_p50_us: merged.value_at_quantile(0.5),
            match_p99_us: merged.value_at_quantile(0.99),
        });
        let matches = shared.matched_sessions.load(Ordering::Relaxed) / 2;
        per_second.push(SecondSample {
            second: per_second.len() as u64,
            skips: skips - last_skips,
            matches: matches - last_matches,
            msgs: 0,
        });
        last_skips = skips;
        last_matches = matches;
        last_tick = now;
    }
    let elapsed = started.elapsed();
    let report = InprocReport {
        users: config.users,
        elapsed,
        skips: shared.skips.load(Ordering::Relaxed),
        matches: shared.matched_sessions.load(Ordering::Relaxed) / 2,
        relays: shared.relays.load(Ordering::Relaxed),
        match_latency_us: merge(&histograms),
        per_second,
        misrouted: 0,
        double_matched: 0,
    };
    shared.stop.store(true, Ordering::Release);
    for handle in handles {
        let _ = handle.join();
    }
    engine.stop();
    InprocReport {
        misrouted: shared.misrouted.load(Ordering::Relaxed),
        double_matched: shared.double_matched.load(Ordering::Relaxed),
        ..report
    }
}

fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

fn merge(histograms: &[Arc<Mutex<Histogram<u64>>>]) -> Histogram<u64> {
    let mut merged = latency_histogram();
    for h in histograms {
        let _ = merged.add(&*h.lock().expect("histogram lock"));
    }
    merged
}

struct Driver {
    users: Vec<VirtualUser>,
    /// Index of `users[0]` among all users.
    first: u32,
    inbox: mpsc::Receiver<(u32, SessionEvent)>,
    /// Skips scheduled.
    timers: TimerWheel,
    router: Router,
    shared: Arc<Shared>,
    histogram: Arc<Mutex<Histogram<u64>>>,
    rng: rand::rngs::SmallRng,
    dwell: (Duration, Duration),
    effects: Vec<Effect>,
    /// Hellos to send once the current batch of effects is carried out: (user, chat).
    pending: Vec<(u32, ChatId)>,
}

impl Driver {
    fn create_users(
        &mut self,
        range: std::ops::Range<u32>,
        inbox: &mpsc::Sender<(u32, SessionEvent)>,
    ) {
        let now = Instant::now();
        self.users.reserve(range.len());
        for user in range {
            let link = DriverLink {
                user,
                inbox: inbox.clone(),
            };
            let client = ClientId::parse(&format!("inproc-{user}")).expect("a well-formed id");
            let me = Peer {
                session: SessionId(user as u64 + 1),
                link: Arc::new(link),
                who: Arc::new(Identity::of(client)),
            };
            self.users.push(VirtualUser {
                core: SessionCore::new(me, Country::UNKNOWN),
                wait_from: now,
                chat: None,
            });
        }
    }

    fn join_all(&mut self) {
        let prefs = Preferences::random(Mode::Text, Lang::EN, true);
        for local in 0..self.users.len() {
            let now = Instant::now();
            let user = &mut self.users[local];
            user.wait_from = now;
            user.core.join(prefs.clone(), now, &mut self.effects);
            self.apply(self.first + local as u32);
        }
    }

    fn run(&mut self) {
        while !self.shared.stop.load(Ordering::Acquire) {
            let mut worked = false;
            for _ in 0..1024 {
                match self.inbox.try_recv() {
                    Ok((user, event)) => {
                        worked = true;
                        self.on_event(user, event);
                    }
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            while let Some((due, users)) = self.timers.next_due(now) {
                worked |= !users.is_empty();
                for &user in &users {
                    self.skip(user, due);
                }
                self.timers.recycle(users);
            }
            if !worked {
                if let Ok((user, event)) = self.inbox.recv_timeout(Duration::from_millis(1)) {
                    self.on_event(user, event);
                }
            }
        }
    }

    fn local(&mut self, user: u32) -> &mut VirtualUser {
        &mut self.users[(user - self.first) as usize]
    }

    fn skip(&mut self, user: u32, scheduled: Instant) {
        let now = Instant::now();
        let u = &mut self.users[(user - self.first) as usize];
        if !matches!(u.core.phase(), Phase::Chatting { .. }) {
            return;
        }
        u.wait_from = scheduled;
        u.core.next(now, &mut self.effects);
        self.apply(user);
    }

    fn on_event(&mut self, user: u32, event: SessionEvent) {
        let now = Instant::now();
        let u = &mut self.users[(user - self.first) as usize];
        if let SessionEvent::PartnerEnded { .. } = event {
            // Auto re-roll starts a new wait now.
            u.wait_from = now;
        }
        u.core.event(event, now, &mut self.effects);
        self.apply(user);
    }

    /// Carries out the effects of `user`'s last input, then any hellos it triggered.
    fn apply(&mut self, user: u32) {
        let mut effects = std::mem::take(&mut self.effects);
        for effect in effects.drain(..) {
            match effect {
                Effect::Send(ServerMsg::Matched(matched)) => self.on_matched(user, matched.chat),
                Effect::Send(ServerMsg::Msg { chat, text }) => self.on_hello(user, chat, &text),
                Effect::Send(ServerMsg::Ended { .. }) => {
                    self.local(user).chat = None;
                    self.shared.chatting.fetch_sub(1, Ordering::Relaxed);
                }
                Effect::Send(_) => {}
                Effect::Place(ticket) => self.router.place(ticket),
                Effect::Withdraw { ticket, bucket } => self.router.withdraw(ticket, &bucket),
                Effect::Notify { to, event } => to.send(event),
                Effect::Ended { reason } => {
                    if reason == tandem_proto::EndReason::Skipped {
                        self.shared.skips.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Effect::Matched { .. }
                | Effect::DroppedStale
                | Effect::Report { .. }
                | Effect::SaveLog { .. } => {}
            }
        }
        self.effects = effects;
        while let Some((from, chat)) = self.pending.pop() {
            let now = Instant::now();
            let text = from.to_string();
            self.users[(from - self.first) as usize].core.input(
                chat,
                ChatInput::Msg(text),
                now,
                &mut self.effects,
            );
            let mut effects = std::mem::take(&mut self.effects);
            for effect in effects.drain(..) {
                if let Effect::Notify { to, event } = effect {
                    self.shared.relays.fetch_add(1, Ordering::Relaxed);
                    to.send(event);
                }
            }
            self.effects = effects;
        }
    }

    fn on_matched(&mut self, user: u32, chat: ChatId) {
        let now = Instant::now();
        let measuring = self.shared.measuring.load(Ordering::Relaxed);
        let dwell = if self.dwell.1 > self.dwell.0 {
            self.rng.random_range(self.dwell.0..self.dwell.1)
        } else {
            self.dwell.0
        };
        let u = &mut self.users[(user - self.first) as usize];
        if u.chat.replace(chat).is_some() {
            self.shared.double_matched.fetch_add(1, Ordering::Relaxed);
        }
        let waited = now.saturating_duration_since(u.wait_from);
        self.shared.chatting.fetch_add(1, Ordering::Relaxed);
        if measuring {
            self.shared.matched_sessions.fetch_add(1, Ordering::Relaxed);
            self.histogram
                .lock()
                .expect("histogram lock")
                .saturating_record(waited.as_micros().max(1) as u64);
        }
        self.timers.schedule(now + dwell, user);
        self.pending.push((user, chat));
    }

    fn on_hello(&mut self, user: u32, chat: ChatId, text: &str) {
        let u = self.local(user);
        let from_partner = match u.core.phase() {
            Phase::Chatting { chat: c, partner } => {
                *c == chat && text.parse::<u64>().ok().map(|n| n + 1) == Some(partner.session.0)
            }
            _ => false,
        };
        if !from_partner || u.chat != Some(chat) {
            self.shared.misrouted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Skips due, by the millisecond: a ring of slots spanning the longest dwell plus slack. A
/// binary heap over half a million timers was the driver's top cost (17% of a profile); the
/// wheel schedules and fires in O(1).
struct TimerWheel {
    slots: Vec<Vec<u32>>,
    epoch: Instant,
    /// The first millisecond not yet fired.
    next_ms: u64,
    /// Emptied slot vectors, reused to keep allocation off the hot path.
    spare: Vec<Vec<u32>>,
}

impl TimerWheel {
    fn new(longest: Duration) -> Self {
        // Slack for a driver that falls behind by a few hundred ms between two looks.
        let span = (longest.as_millis() as usize + 2048).next_power_of_two();
        Self {
            slots: vec![Vec::new(); span],
            epoch: Instant::now(),
            next_ms: 0,
            spare: Vec::new(),
        }
    }

    fn schedule(&mut self, due: Instant, user: u32) {
        let ms = (due.saturating_duration_since(self.epoch).as_millis() as u64).max(self.next_ms);
        let slot = (ms as usize) & (self.slots.len() - 1);
        self.slots[slot].push(user);
    }

    /// The users of the next due millisecond, with its time; `None` when caught up.
    fn next_due(&mut self, now: Instant) -> Option<(Instant, Vec<u32>)> {
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        if self.next_ms > now_ms {
            return None;
        }
        let ms = self.next_ms;
        self.next_ms += 1;
        let slot = (ms as usize) & (self.slots.len() - 1);
        let fresh = self.spare.pop().unwrap_or_default();
        let users = std::mem::replace(&mut self.slots[slot], fresh);
        Some((self.epoch + Duration::from_millis(ms), users))
    }

    fn recycle(&mut self, mut users: Vec<u32>) {
        users.clear();
        self.spare.push(users);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_skips_and_finds_no_violation() {
        let config = InprocConfig {
            users: 2_000,
            duration: Duration::from_millis(1500),
            dwell: (Duration::from_millis(1), Duration::from_millis(20)),
            shards: 2,
            drivers: 2,
            seed: 7,
        };
        let mut samples = 0;
        let report = run(&config, |_| samples += 1);
        assert!(samples >= 1, "progress is reported every second");
        assert!(report.skips > 1_000, "{report:?}");
        assert!(report.matches > 1_000, "{report:?}");
        assert!(report.relays > 0);
        assert_eq!(report.violations(), 0, "{report:?}");
        assert!(!report.match_latency_us.is_empty());
    }
}
