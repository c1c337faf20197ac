//! The result of a run: every figure, serializable as JSON, printable as a table.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::assertions::Assertion;
use super::partial::WorkerShare;
use super::recorder::Recorder;
use super::server_rss::ServerRss;

/// Error codes that a healthy server sends under this load and that `errors` leaves out:
/// `stale_chat` answers a line that raced with the partner's skip, which the protocol allows.
const EXPECTED_ERRORS: &[&str] = &["stale_chat"];

/// Percentiles of one latency, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

/// One point of a percentile distribution curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PercentilePoint {
    /// The percentile, 0 to 100.
    pub percentile: f64,
    /// The latency at that percentile, in ms.
    pub ms: f64,
}

/// Events in one second of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecondSample {
    /// Seconds since the start (the first second is 0).
    pub second: u64,
    /// `next` sent in that second.
    pub skips: u64,
    /// Chats begun in that second.
    pub matches: u64,
    /// Chat lines received in that second.
    pub msgs: u64,
}

/// Everything a run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The `--target` URLs, as given.
    pub targets: Vec<String>,
    /// `json` or `bincode`.
    pub codec: String,
    /// Simulated users planned.
    pub clients: usize,
    /// The planned run length, ramp included, in seconds (rates are per second of it).
    pub duration_secs: f64,
    /// The seed of the dwell times (given or drawn), to repeat the run.
    pub seed: u64,
    /// Users that got `welcome`.
    pub connected: u64,
    /// `join` sent.
    pub joins: u64,
    /// `next` sent.
    pub skips: u64,
    /// Distinct chats seen.
    pub matches: u64,
    /// `matched` received (two per chat).
    pub matched_received: u64,
    /// Chats whose `matched.common_interests` was not empty (as their first side saw it).
    #[serde(default)]
    pub matches_with_common_interests: u64,
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
    /// `leave` sent at the end of a chat instead of `next` (not the one at the end of the run).
    #[serde(default)]
    pub leaves: u64,
    /// Connections closed at the end of a chat and opened again with `?client_id=`.
    #[serde(default)]
    pub reconnects: u64,
    /// `next` sent per second.
    pub skips_per_sec: f64,
    /// Chats begun per second.
    pub matches_per_sec: f64,
    /// Chat lines received per second.
    pub msgs_per_sec: f64,
    /// Scheduled `join`/`next` to `matched`.
    pub match_latency_ms: LatencySummary,
    /// Scheduled `msg` to its receipt by the partner.
    pub msg_latency_ms: LatencySummary,
    /// Scheduled `signal` to its receipt by the partner.
    #[serde(default)]
    pub signal_latency_ms: LatencySummary,
    /// Scheduled connect to `welcome`.
    pub connect_latency_ms: LatencySummary,
    /// `welcome` to its challenge solved, per connection (count 0 when the node asks none).
    #[serde(default)]
    pub solve_latency_ms: LatencySummary,
    /// `error` messages, expected ones (`stale_chat`) left out.
    pub errors: u64,
    /// Every `error` by code, expected ones included.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Users whose connection failed or broke before the end.
    pub connection_failures: u64,
    /// The same, by what failed (`connect`, `handshake`, `welcome`, `challenge`, `send`,
    /// `closed`, `leave`).
    pub connection_failures_by_kind: BTreeMap<String, u64>,
    /// Broken promises; any makes the run fail.
    pub violations: u64,
    /// The same, by kind (every kind listed, zeros included).
    pub violations_by_kind: BTreeMap<String, u64>,
    /// Events per second of the run.
    pub throughput: Vec<SecondSample>,
    /// Match latency by percentile, for plotting (the last point is the maximum, at 100).
    pub match_latency_distribution: Vec<PercentilePoint>,
    /// Message latency by percentile, likewise.
    pub msg_latency_distribution: Vec<PercentilePoint>,
    /// `--assert` conditions that did not hold, with the actual value.
    pub failed_assertions: Vec<String>,
    /// Resident memory of each `--server-pid` in KiB: at the start, peak, and final (at the
    /// end of `--duration`, every user still connected).
    #[serde(default)]
    pub server_rss_kib: Vec<ServerRss>,
    /// (final − start) summed over the `--server-pid`s, per connected user, in KiB.
    #[serde(default)]
    pub server_rss_per_user_kib: Option<f64>,
    /// CPU time the `--server-pid`s used over the run, per skip, in microseconds.
    #[serde(default)]
    pub server_cpu_per_skip_us: Option<f64>,
    /// With `--workers`, each worker process's own totals (empty for a one-process run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerShare>,
}

impl Report {
    /// Gathers the figures once every user has finished.
    pub fn build(
        rec: &Recorder,
        targets: Vec<String>,
        codec: &str,
        clients: usize,
        duration: Duration,
        seed: u64,
    ) -> Self {
        let secs = duration.as_secs_f64().max(1e-9);
        let skips = rec.skips.load(Ordering::Relaxed);
        let matches = rec.ledger.chats() as u64;
        let msgs_received = rec.msgs_received.load(Ordering::Relaxed);
        let errors_by_code = rec.errors.lock().clone();
        let connection_failures_by_kind = rec.connection_failures.lock().clone();
        let match_latency = rec.match_latency.lock();
        let msg_latency = rec.msg_latency.lock();
        let signal_latency = rec.signal_latency.lock();
        let connect_latency = rec.connect_latency.lock();
        let solve_latency = rec.solve_latency.lock();
        Report {
            targets,
            codec: codec.to_owned(),
            clients,
            duration_secs: duration.as_secs_f64(),
            seed,
            connected: connect_latency.len(),
            joins: rec.joins.load(Ordering::Relaxed),
            skips,
            matches,
            matched_received: rec.matched.load(Ordering::Relaxed),
            matches_with_common_interests: rec.ledger.chats_with_common_interests(),
            msgs_sent: rec.msgs_sent.load(Ordering::Relaxed),
            msgs_received,
            signals_sent: rec.signals_sent.load(Ordering::Relaxed),
            signals_received: rec.signals_received.load(Ordering::Relaxed),
            leaves: rec.leaves.load(Ordering::Relaxed),
            reconnects: rec.reconnects.load(Ordering::Relaxed),
            skips_per_sec: skips as f64 / secs,
            matches_per_sec: matches as f64 / secs,
            msgs_per_sec: msgs_received as f64 / secs,
            match_latency_ms: summarize(&match_latency),
            msg_latency_ms: summarize(&msg_latency),
            signal_latency_ms: summarize(&signal_latency),
            connect_latency_ms: summarize(&connect_latency),
            solve_latency_ms: summarize(&solve_latency),
            errors: errors_by_code
                .iter()
                .filter(|(code, _)| !EXPECTED_ERRORS.contains(&code.as_str()))
                .map(|(_, count)| count)
                .sum(),
            errors_by_code,
            connection_failures: connection_failures_by_kind.values().sum(),
            connection_failures_by_kind,
            violations: rec.violations.total(),
            violations_by_kind: rec.violations.by_kind(),
            throughput: rec
                .per_second(duration)
                .iter()
                .enumerate()
                .map(|(second, s)| SecondSample {
                    second: second as u64,
                    skips: s.skips,
                    matches: s.matches,
                    msgs: s.msgs,
                })
                .collect(),
            match_latency_distribution: distribution(&match_latency),
            msg_latency_distribution: distribution(&msg_latency),
            failed_assertions: Vec::new(),
            server_rss_kib: Vec::new(),
            server_rss_per_user_kib: None,
            server_cpu_per_skip_us: None,
            workers: Vec::new(),
        }
    }

    /// The value of a figure named in `--assert` (latencies in ms).
    pub fn figure(&self, name: &str) -> Option<f64> {
        if let Some((kind, stat)) = name.split_once('_') {
            let latency = match kind {
                "match" => Some(&self.match_latency_ms),
                "msg" => Some(&self.msg_latency_ms),
                "signal" => Some(&self.signal_latency_ms),
                "connect" => Some(&self.connect_latency_ms),
                "solve" => Some(&self.solve_latency_ms),
                _ => None,
            };
            if let Some(l) = latency {
                return match stat {
                    "p50" => Some(l.p50),
                    "p90" => Some(l.p90),
                    "p99" => Some(l.p99),
                    "p999" => Some(l.p999),
                    "max" => Some(l.max),
                    _ => None,
                };
            }
        }
        Some(match name {
            "errors" => self.errors as f64,
            "violations" => self.violations as f64,
            "connection_failures" => self.connection_failures as f64,
            "skips_per_sec" => self.skips_per_sec,
            "matches_per_sec" => self.matches_per_sec,
            "msgs_per_sec" => self.msgs_per_sec,
            "matches" => self.matches as f64,
            "skips" => self.skips as f64,
            "leaves" => self.leaves as f64,
            "reconnects" => self.reconnects as f64,
            "server_rss_per_user_kib" => self.server_rss_per_user_kib?,
            "server_cpu_per_skip_us" => self.server_cpu_per_skip_us?,
            _ => return None,
        })
    }

    /// Checks the assertions and keeps the ones that failed in `failed_assertions`.
    pub fn check(&mut self, assertions: &[Assertion]) {
        for assertion in assertions {
            match self.figure(&assertion.name) {
                Some(actual) if assertion.holds(actual) => {}
                Some(actual) => self.failed_assertions.push(format!(
                    "{assertion} failed: {} is {actual}",
                    assertion.name
                )),
                None => self
                    .failed_assertions
                    .push(format!("{assertion}: no such figure")),
            }
        }
    }

    /// No violations and every assertion held.
    pub fn passed(&self) -> bool {
        self.violations == 0 && self.failed_assertions.is_empty()
    }
}

fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

pub(super) fn summarize(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        count: h.len(),
        p50: micros_to_ms(h.value_at_quantile(0.50)),
        p90: micros_to_ms(h.value_at_quantile(0.90)),
        p99: micros_to_ms(h.value_at_quantile(0.99)),
        p999: micros_to_ms(h.value_at_quantile(0.999)),
        max: micros_to_ms(h.max()),
        mean: h.mean() / 1000.0,
    }
}

/// The percentile curve as HdrHistogram plots it: evenly spaced in log10(1/(1-p)) from 0%
/// up to where the samples run out, then the maximum.
pub(super) fn distribution(h: &Histogram<u64>) -> Vec<PercentilePoint> {
    if h.is_empty() {
        return Vec::new();
    }
    // Beyond 1/(1-p) = count, every percentile is the maximum: stop there.
    let top = (h.len() as f64).log10().min(6.0);
    let steps = 60;
    let mut points: Vec<PercentilePoint> = (0..=steps)
        .map(|i| {
            let x = top * f64::from(i) / f64::from(steps);
            let quantile = 1.0 - 10f64.powf(-x);
            PercentilePoint {
                percentile: quantile * 100.0,
                ms: micros_to_ms(h.value_at_quantile(quantile)),
            }
        })
        .collect();
    points.push(PercentilePoint {
        percentile: 100.0,
        ms: micros_to_ms(h.max()),
    });
    points
}

/// The final table, for stdout.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "clients {}  duration {:.1}s  codec {}  seed {}",
            self.clients, self.duration_secs, self.codec, self.seed
        )?;
        writeln!(
            f,
            "connected {}  joins {}  skips {}  matches {}  msgs sent {} received {}",
            self.connected,
            self.joins,
            self.skips,
            self.matches,
            self.msgs_sent,
            self.msgs_received
        )?;
        if self.signals_sent + self.signals_received + self.leaves + self.reconnects > 0 {
            writeln!(
                f,
                "signals sent {} received {}  leaves {}  reconnects {}",
                self.signals_sent, self.signals_received, self.leaves, self.reconnects
            )?;
        }
        if self.matches_with_common_interests > 0 {
            writeln!(
                f,
                "matches on shared interests {}",
                self.matches_with_common_interests
            )?;
        }
        writeln!(
            f,
            "skips/s {:.1}  matches/s {:.1}  messages/s {:.1}",
            self.skips_per_sec, self.matches_per_sec, self.msgs_per_sec
        )?;
        writeln!(
            f,
            "{:<10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency ms", "count", "p50", "p90", "p99", "p99.9", "max"
        )?;
        for (name, l) in [
            ("match", &self.match_latency_ms),
            ("message", &self.msg_latency_ms),
            ("signal", &self.signal_latency_ms),
            ("connect", &self.connect_latency_ms),
            ("solve", &self.solve_latency_ms),
        ] {
            writeln!(
                f,
                "{name:<10} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                l.count, l.p50, l.p90, l.p99, l.p999, l.max
            )?;
        }
        writeln!(f, "errors {} (stale_chat not counted)", self.errors)?;
        for (code, count) in &self.errors_by_code {
            writeln!(f, "  {code:<24} {count}")?;
        }
        writeln!(f, "connection failures {}", self.connection_failures)?;
        for (kind, count) in &self.connection_failures_by_kind {
            writeln!(f, "  {kind:<24} {count}")?;
        }
        for w in &self.workers {
            writeln!(
                f,
                "  worker {:<3} connected {}  skips {}  matched {}  msgs received {}  failures {}",
                w.worker,
                w.connected,
                w.skips,
                w.matched_received,
                w.msgs_received,
                w.connection_failures
            )?;
        }
        for rss in &self.server_rss_kib {
            writeln!(
                f,
                "server pid {}  rss KiB start {}  peak {}  final {}  cpu {:.2} s",
                rss.pid,
                rss.start,
                rss.peak,
                rss.at_end,
                rss.cpu_ms as f64 / 1000.0
            )?;
        }
        if let Some(per_user) = self.server_rss_per_user_kib {
            writeln!(f, "server rss per connected user {per_user:.2} KiB")?;
        }
        if let Some(per_skip) = self.server_cpu_per_skip_us {
            writeln!(f, "server cpu per skip {per_skip:.1} µs")?;
        }
        writeln!(f, "violations {}", self.violations)?;
        for (kind, count) in &self.violations_by_kind {
            writeln!(f, "  {kind:<24} {count}")?;
        }
        for failed in &self.failed_assertions {
            writeln!(f, "ASSERTION FAILED: {failed}")?;
        }
        Ok(())
    }
}
