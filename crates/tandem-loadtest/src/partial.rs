//! What one `--workers` child measured, as it hands it to the parent, and how the parent
//! merges every child's share into one [`Recorder`] that reports like a single-process run.
//!
//! Counters are added; histograms are sent as their recorded (value, count) pairs and
//! rebuilt exactly; per-second counts are added second by second. The checks that need both
//! sides of a chat are not judged in the children (the two sides are often in different
//! processes): each child sends every side it saw and every line sender it could not check,
//! and the parent replays them all through one [`ChatLedger`](super::checks::ChatLedger).
//! That costs the parent one side per `matched` received, as the ledger of a single-process
//! run costs that process.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tandem_proto::ids::{ChatId, SessionId};

use super::checks::{CommonSeen, SideRecord, ViolationKind};
use super::recorder::{latency_histogram, Event, Recorder, SenderClaim};

/// One worker's results.
#[derive(Debug, Serialize, Deserialize)]
pub struct Partial {
    /// `join` sent.
    pub joins: u64,
    /// `next` sent.
    pub skips: u64,
    /// `matched` received.
    pub matched: u64,
    /// `msg` sent.
    pub msgs_sent: u64,
    /// `msg` received.
    pub msgs_received: u64,
    /// `signal` sent.
    #[serde(default)]
    pub signals_sent: u64,
    /// `signal` received.
    #[serde(default)]
    pub signals_received: u64,
    /// `leave` sent at the end of a chat.
    #[serde(default)]
    pub leaves: u64,
    /// Connections closed and opened again.
    #[serde(default)]
    pub reconnects: u64,
    /// Signal latency, as recorded (value, count) pairs in µs.
    #[serde(default)]
    pub signal_latency: Vec<(u64, u64)>,
    /// Match latency, as recorded (value, count) pairs in µs.
    pub match_latency: Vec<(u64, u64)>,
    /// Message latency, likewise.
    pub msg_latency: Vec<(u64, u64)>,
    /// Connect latency, likewise.
    pub connect_latency: Vec<(u64, u64)>,
    /// Challenge solve time, likewise.
    #[serde(default)]
    pub solve_latency: Vec<(u64, u64)>,
    /// `error` messages by code.
    pub errors: BTreeMap<String, u64>,
    /// Connection failures by kind.
    pub connection_failures: BTreeMap<String, u64>,
    /// Violations judged in the worker, by kind (those that need both sides left out).
    pub violations: BTreeMap<String, u64>,
    /// Per second of the run: skips and lines received (matches are recounted from `sides`).
    pub seconds: Vec<(u64, u64)>,
    /// Every side of every chat the worker's users were matched into.
    pub sides: Vec<SideRecord>,
    /// Lines whose sender only the parent can check.
    pub sender_claims: Vec<SenderClaim>,
}

/// One worker's own totals, kept in the merged report so that an operator sees how the load
/// was shared (and a test, that the whole is the sum of its parts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerShare {
    /// The worker's number, from 0.
    pub worker: usize,
    /// Its users that got `welcome`.
    pub connected: u64,
    /// `join` sent.
    pub joins: u64,
    /// `next` sent.
    pub skips: u64,
    /// `matched` received.
    pub matched_received: u64,
    /// `msg` sent.
    pub msgs_sent: u64,
    /// `msg` received.
    pub msgs_received: u64,
    /// Its users whose connection failed or broke.
    pub connection_failures: u64,
}

impl Partial {
    /// This worker's totals.
    pub fn share(&self, worker: usize) -> WorkerShare {
        WorkerShare {
            worker,
            connected: self.connect_latency.iter().map(|&(_, count)| count).sum(),
            joins: self.joins,
            skips: self.skips,
            matched_received: self.matched,
            msgs_sent: self.msgs_sent,
            msgs_received: self.msgs_received,
            connection_failures: self.connection_failures.values().sum(),
        }
    }

    /// Takes everything out of a worker's recorder once its users have finished.
    pub fn from_recorder(rec: &Recorder) -> Self {
        Self {
            joins: rec.joins.load(Ordering::Relaxed),
            skips: rec.skips.load(Ordering::Relaxed),
            matched: rec.matched.load(Ordering::Relaxed),
            msgs_sent: rec.msgs_sent.load(Ordering::Relaxed),
            msgs_received: rec.msgs_received.load(Ordering::Relaxed),
            signals_sent: rec.signals_sent.load(Ordering::Relaxed),
            signals_received: rec.signals_received.load(Ordering::Relaxed),
            leaves: rec.leaves.load(Ordering::Relaxed),
            reconnects: rec.reconnects.load(Ordering::Relaxed),
            signal_latency: recorded_pairs(&rec.signal_latency.lock()),
            match_latency: recorded_pairs(&rec.match_latency.lock()),
            msg_latency: recorded_pairs(&rec.msg_latency.lock()),
            connect_latency: recorded_pairs(&rec.connect_latency.lock()),
            solve_latency: recorded_pairs(&rec.solve_latency.lock()),
            errors: rec.errors.lock().clone(),
            connection_failures: rec.connection_failures.lock().clone(),
            violations: rec
                .violations
                .by_kind()
                .into_iter()
                .filter(|(name, _)| {
                    ViolationKind::from_name(name).is_some_and(|kind| !kind.needs_both_sides())
                })
                .collect(),
            seconds: rec.seconds().iter().map(|s| (s.skips, s.msgs)).collect(),
            sides: rec.ledger.sides(),
            sender_claims: rec.sender_claims(),
        }
    }
}

/// Adds every worker's share to `rec`, then judges what needs both sides of a chat over the
/// union (the end-of-run `chat_seen_once` check included).
pub fn merge(partials: Vec<Partial>, rec: &Recorder) {
    let mut sides = Vec::new();
    let mut claims = Vec::new();
    for part in partials {
        rec.joins.fetch_add(part.joins, Ordering::Relaxed);
        rec.skips.fetch_add(part.skips, Ordering::Relaxed);
        rec.matched.fetch_add(part.matched, Ordering::Relaxed);
        rec.msgs_sent.fetch_add(part.msgs_sent, Ordering::Relaxed);
        rec.msgs_received
            .fetch_add(part.msgs_received, Ordering::Relaxed);
        rec.signals_sent
            .fetch_add(part.signals_sent, Ordering::Relaxed);
        rec.signals_received
            .fetch_add(part.signals_received, Ordering::Relaxed);
        rec.leaves.fetch_add(part.leaves, Ordering::Relaxed);
        rec.reconnects.fetch_add(part.reconnects, Ordering::Relaxed);
        add_pairs(&rec.signal_latency, &part.signal_latency);
        add_pairs(&rec.match_latency, &part.match_latency);
        add_pairs(&rec.msg_latency, &part.msg_latency);
        add_pairs(&rec.connect_latency, &part.connect_latency);
        add_pairs(&rec.solve_latency, &part.solve_latency);
        add_counts(&mut rec.errors.lock(), part.errors);
        add_counts(
            &mut rec.connection_failures.lock(),
            part.connection_failures,
        );
        for (name, count) in part.violations {
            if let Some(kind) = ViolationKind::from_name(&name) {
                rec.violations.add(kind, count);
            }
        }
        for (second, (skips, msgs)) in part.seconds.into_iter().enumerate() {
            rec.count_in(second, Event::Skip, skips);
            rec.count_in(second, Event::MsgReceived, msgs);
        }
        sides.extend(part.sides);
        claims.extend(part.sender_claims);
    }
    // In the order they happened, so a chat's first side is the one that counts its match.
    sides.sort_by_key(|side| side.4);
    for SideRecord(chat, session, initiator, partner_disconnected, at_us, digest, fits_own) in sides
    {
        let (chat, session) = (ChatId(chat), SessionId(session));
        let common = CommonSeen { digest, fits_own };
        let sighting = rec
            .ledger
            .matched(chat, session, initiator, at_us, common, &rec.violations);
        if sighting.first {
            rec.count_in((at_us / 1_000_000) as usize, Event::Match, 1);
        }
        if partner_disconnected {
            rec.ledger.partner_disconnected(chat, session);
        }
    }
    for SenderClaim(chat, receiver, sender) in claims {
        let partner = rec.ledger.partner_of(ChatId(chat), SessionId(receiver));
        if partner != Some(SessionId(sender)) {
            rec.violations.record(ViolationKind::MsgWrongSender);
        }
    }
    rec.ledger.finish(&rec.violations);
}

/// A histogram as its recorded (value, count) pairs: each value stands for its bucket, so
/// recording them again rebuilds the same buckets.
pub fn recorded_pairs(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Rebuilds a histogram from [`recorded_pairs`].
pub fn from_pairs(pairs: &[(u64, u64)]) -> Histogram<u64> {
    let mut h = latency_histogram();
    for &(value, count) in pairs {
        h.saturating_record_n(value, count);
    }
    h
}

fn add_pairs(into: &Mutex<Histogram<u64>>, pairs: &[(u64, u64)]) {
    into.lock()
        .add(from_pairs(pairs))
        .expect("histograms of the same bounds add up");
}

fn add_counts(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (key, count) in from {
        *into.entry(key).or_default() += count;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn histogram_of(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = latency_histogram();
        for value in values {
            h.record(value).unwrap();
        }
        h
    }

    #[test]
    fn histograms_merged_through_pairs_equal_histograms_added_directly() {
        let a = histogram_of((1..5_000).map(|i| i * 37 % 90_001 + 1));
        let b = histogram_of((1..3_000).map(|i| i * i % 2_000_003 + 1));
        let mut direct = a.clone();
        direct.add(&b).unwrap();

        let mut merged = from_pairs(&recorded_pairs(&a));
        merged.add(from_pairs(&recorded_pairs(&b))).unwrap();

        assert_eq!(merged.len(), direct.len());
        assert_eq!(merged.max(), direct.max());
        assert_eq!(merged.min(), direct.min());
        assert_eq!(merged.mean(), direct.mean());
        for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                merged.value_at_quantile(q),
                direct.value_at_quantile(q),
                "q={q}"
            );
        }
        assert!(merged == direct);
    }

    #[test]
    fn a_chat_split_over_two_workers_is_judged_over_both() {
        let worker = |session: u64, initiator: bool, sender: u64| Partial {
            joins: 1,
            skips: 0,
            matched: 1,
            msgs_sent: 1,
            msgs_received: 1,
            signals_sent: 0,
            signals_received: 0,
            leaves: 0,
            reconnects: 0,
            signal_latency: Vec::new(),
            match_latency: recorded_pairs(&histogram_of([1000])),
            msg_latency: Vec::new(),
            connect_latency: recorded_pairs(&histogram_of([500])),
            solve_latency: recorded_pairs(&histogram_of([300])),
            errors: BTreeMap::from([("stale_chat".to_owned(), 1)]),
            connection_failures: BTreeMap::new(),
            violations: BTreeMap::new(),
            seconds: vec![(0, 0), (0, 1)],
            sides: vec![SideRecord(
                7,
                session,
                initiator,
                false,
                1_500_000 + session,
                0,
                true,
            )],
            sender_claims: vec![SenderClaim(7, session, sender)],
        };
        let rec = Recorder::new(Instant::now());
        let mut signaller = worker(2, false, 1);
        signaller.signals_received = 3;
        signaller.signal_latency = recorded_pairs(&histogram_of([700, 800, 900]));
        signaller.leaves = 1;
        signaller.reconnects = 2;
        merge(vec![worker(1, true, 2), signaller], &rec);
        assert_eq!(rec.violations.total(), 0);
        assert_eq!(rec.signals_received.load(Ordering::Relaxed), 3);
        assert_eq!(rec.signal_latency.lock().len(), 3);
        assert_eq!(rec.leaves.load(Ordering::Relaxed), 1);
        assert_eq!(rec.reconnects.load(Ordering::Relaxed), 2);
        assert_eq!(rec.ledger.chats(), 1);
        assert_eq!(rec.connect_latency.lock().len(), 2);
        assert_eq!(rec.solve_latency.lock().len(), 2, "solve times merge too");
        assert_eq!(rec.errors.lock()["stale_chat"], 2);
        let seconds = rec.seconds();
        assert_eq!((seconds[1].matches, seconds[1].msgs), (1, 2));

        // The same chat, but one side claims a line from a stranger, and a lone chat.
        let mut liar = worker(2, false, 99);
        liar.sides.push(SideRecord(8, 2, true, false, 0, 0, true));
        let rec = Recorder::new(Instant::now());
        merge(vec![worker(1, true, 2), liar], &rec);
        let by_kind = rec.violations.by_kind();
        assert_eq!(by_kind["msg_wrong_sender"], 1);
        assert_eq!(by_kind["chat_seen_once"], 1);
        assert_eq!(rec.violations.total(), 2);
    }
}
