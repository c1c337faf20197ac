//! What the simulated users measured, shared by all of them while the run goes on.
//!
//! Latencies go into HdrHistograms in microseconds; events are counted in total and per second
//! of the run (for the throughput chart). Everything is behind short locks or atomics, because
//! every client task writes here and the progress line reads it once a second.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tandem_proto::ids::{ChatId, SessionId};

use super::checks::{ChatLedger, Violations};

/// Highest latency a histogram can hold (an hour); longer ones are clamped to it.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram in µs with 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant bounds are valid")
}

/// Events counted per second of the run.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    /// A user sent `next`.
    Skip,
    /// A chat began (counted once per chat, by its first side).
    Match,
    /// A chat line reached its receiver.
    MsgReceived,
}

/// A line whose sender could not be checked in this process because the receiver's partner
/// is played by another `--workers` process: chat, receiver, sender (session numbers). The
/// parent checks it against the union of every worker's chats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderClaim(pub u64, pub u64, pub u64);

/// Counts of each event in one second of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Second {
    /// `next` sent.
    pub skips: u64,
    /// Chats begun.
    pub matches: u64,
    /// Chat lines received.
    pub msgs: u64,
}

/// The run's shared measurements.
pub struct Recorder {
    /// The instant every schedule and chat-line timestamp counts from.
    pub epoch: Instant,
    /// Scheduled `join`/`next` to `matched` received.
    pub match_latency: Mutex<Histogram<u64>>,
    /// Scheduled `msg` send to its receipt by the partner.
    pub msg_latency: Mutex<Histogram<u64>>,
    /// Scheduled `signal` send to its receipt by the partner.
    pub signal_latency: Mutex<Histogram<u64>>,
    /// Scheduled connect to `welcome` received.
    pub connect_latency: Mutex<Histogram<u64>>,
    /// `welcome` to a solved challenge (only when the node asks one).
    pub solve_latency: Mutex<Histogram<u64>>,
    /// Users with an open connection right now.
    pub connected: AtomicI64,
    /// Users in a chat right now.
    pub in_chat: AtomicI64,
    /// `join` sent (the first one and those after a partner ended the chat).
    pub joins: AtomicU64,
    /// `next` sent.
    pub skips: AtomicU64,
    /// `matched` received (two per chat when all goes well).
    pub matched: AtomicU64,
    /// `msg` sent.
    pub msgs_sent: AtomicU64,
    /// `msg` received.
    pub msgs_received: AtomicU64,
    /// `signal` sent.
    pub signals_sent: AtomicU64,
    /// `signal` received.
    pub signals_received: AtomicU64,
    /// `leave` sent at the end of a chat instead of `next` (`--leave-share`; the `leave` at
    /// the end of the run is not counted).
    pub leaves: AtomicU64,
    /// Connections closed at the end of a chat and opened again (`--reconnect-share`).
    pub reconnects: AtomicU64,
    /// `error` messages by code.
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// Users whose connection failed or broke, by what went wrong.
    pub connection_failures: Mutex<BTreeMap<String, u64>>,
    /// Broken promises by kind.
    pub violations: Violations,
    /// Which sessions were in which chat.
    pub ledger: ChatLedger,
    /// This process plays only some of the users (a `--workers` child): a partner missing
    /// from the ledger is in another process, so its lines become [`SenderClaim`]s.
    pub partners_elsewhere: bool,
    sender_claims: Mutex<Vec<SenderClaim>>,
    seconds: Mutex<Vec<Second>>,
}

impl Recorder {
    /// An empty recorder whose epoch is now.
    pub fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            match_latency: Mutex::new(latency_histogram()),
            msg_latency: Mutex::new(latency_histogram()),
            signal_latency: Mutex::new(latency_histogram()),
            connect_latency: Mutex::new(latency_histogram()),
            solve_latency: Mutex::new(latency_histogram()),
            connected: AtomicI64::new(0),
            in_chat: AtomicI64::new(0),
            joins: AtomicU64::new(0),
            skips: AtomicU64::new(0),
            matched: AtomicU64::new(0),
            msgs_sent: AtomicU64::new(0),
            msgs_received: AtomicU64::new(0),
            signals_sent: AtomicU64::new(0),
            signals_received: AtomicU64::new(0),
            leaves: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            errors: Mutex::default(),
            connection_failures: Mutex::default(),
            violations: Violations::default(),
            ledger: ChatLedger::default(),
            partners_elsewhere: false,
            sender_claims: Mutex::default(),
            seconds: Mutex::default(),
        }
    }

    /// Time since the epoch in µs, the unit of every timestamp in a chat line.
    pub fn micros_since_epoch(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// Records `done - scheduled` into `histogram` (zero if it finished "early").
    pub fn record_latency(histogram: &Mutex<Histogram<u64>>, scheduled: Instant, done: Instant) {
        let micros = done.saturating_duration_since(scheduled).as_micros() as u64;
        histogram.lock().saturating_record(micros.max(1));
    }

    /// Counts an event in the second of the run it happened in.
    pub fn count(&self, event: Event, at: Instant) {
        let second = at.saturating_duration_since(self.epoch).as_secs() as usize;
        self.count_in(second, event, 1);
    }

    /// Counts `n` events in the given second of the run.
    pub fn count_in(&self, second: usize, event: Event, n: u64) {
        let mut seconds = self.seconds.lock();
        if seconds.len() <= second {
            seconds.resize(second + 1, Second::default());
        }
        let slot = &mut seconds[second];
        match event {
            Event::Skip => slot.skips += n,
            Event::Match => slot.matches += n,
            Event::MsgReceived => slot.msgs += n,
        }
    }

    /// Every second counted so far, leaving phase included.
    pub fn seconds(&self) -> Vec<Second> {
        self.seconds.lock().clone()
    }

    /// Notes that `receiver` got a line from `sender` in `chat`, to be checked by the parent.
    pub fn claim_sender(&self, chat: ChatId, receiver: SessionId, sender: SessionId) {
        self.sender_claims
            .lock()
            .push(SenderClaim(chat.0, receiver.0, sender.0));
    }

    /// The claims made so far.
    pub fn sender_claims(&self) -> Vec<SenderClaim> {
        self.sender_claims.lock().clone()
    }

    /// Counts one `error` from the server.
    pub fn error(&self, code: &str) {
        *self.errors.lock().entry(code.to_owned()).or_default() += 1;
    }

    /// Counts one user whose connection failed, by what failed.
    pub fn connection_failure(&self, what: &str) {
        *self
            .connection_failures
            .lock()
            .entry(what.to_owned())
            .or_default() += 1;
    }

    /// Per-second counts over the run's `length` (zeros where nothing happened); what
    /// happened while the users were leaving is left out.
    pub fn per_second(&self, length: Duration) -> Vec<Second> {
        let mut seconds = self.seconds.lock().clone();
        seconds.resize(length.as_secs_f64().ceil() as usize, Second::default());
        seconds
    }
}
