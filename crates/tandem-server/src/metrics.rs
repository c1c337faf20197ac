//! Counters, gauges and histograms for `GET /metrics`, in the Prometheus text format.
//!
//! Plain atomics, updated with relaxed ordering on the hot paths and read only by the
//! exporter; no locks, no allocation per event.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tandem_engine::shard::ShardStats;
use tandem_proto::ErrorCode;

/// Why the server closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCause {
    /// A frame over the size limit (1009).
    TooBig,
    /// Kept flooding past the rate limits (1008).
    Flood,
    /// Could not keep up with its own outgoing frames (1008).
    SlowConsumer,
    /// No sign of life within the heartbeat timeout.
    Heartbeat,
    /// A WebSocket protocol violation (1002).
    Protocol,
    /// The node shut down (1012).
    Shutdown,
    /// A ban was issued against the user while connected (1008).
    Banned,
}

impl CloseCause {
    const ALL: [CloseCause; 7] = [
        Self::TooBig,
        Self::Flood,
        Self::SlowConsumer,
        Self::Heartbeat,
        Self::Protocol,
        Self::Shutdown,
        Self::Banned,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::TooBig => "too_big",
            Self::Flood => "flood",
            Self::SlowConsumer => "slow_consumer",
            Self::Heartbeat => "heartbeat",
            Self::Protocol => "protocol",
            Self::Shutdown => "shutdown",
            Self::Banned => "banned",
        }
    }
}

/// What was relayed between partners.
#[derive(Clone, Copy, Debug)]
pub enum RelayKind {
    Msg = 0,
    Typing = 1,
    Signal = 2,
}

/// A histogram with fixed bucket bounds, in seconds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
}

/// Bounds for latencies from sub-millisecond pairing to a minute-long wait.
const WAIT_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

impl Histogram {
    /// A histogram with these upper bounds, in seconds.
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        let slot = self
            .bounds
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(self.bounds.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(value.as_micros() as u64, Ordering::Relaxed);
    }

    /// The upper bounds of the buckets, in seconds (the last bucket, above them, is +Inf).
    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// Observations per bucket (not cumulative), one more than [`Self::bounds`]: the last
    /// counts those above every bound. For the admin dashboard, which takes quantiles over
    /// the difference of two readings.
    pub fn counts(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Appends the histogram in the Prometheus text format, its series labelled with
    /// `node` (already escaped).
    pub fn render(&self, out: &mut String, name: &str, help: &str, node: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = match self.bounds.get(i) {
                Some(b) => b.to_string(),
                None => "+Inf".to_owned(),
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{node=\"{node}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_sum{{node=\"{node}\"}} {sum}\n{name}_count{{node=\"{node}\"}} {cumulative}"
        );
    }
}

/// Everything one node counts.
#[derive(Debug)]
pub struct Metrics {
    pub connections_opened: AtomicU64,
    pub connections_closed: AtomicU64,
    pub frames_in: AtomicU64,
    pub joins: AtomicU64,
    /// `next` that ended a chat.
    pub skips: AtomicU64,
    /// Sessions told `matched` (two per pair).
    pub matched_sessions: AtomicU64,
    pub reports: AtomicU64,
    relayed: [AtomicU64; 3],
    /// Relayed items that arrived after the receiver had left that chat, and were dropped.
    pub dropped_stale: AtomicU64,
    errors: Vec<AtomicU64>,
    closes: Vec<AtomicU64>,
    /// join/next to matched, as the session saw it.
    pub match_wait: Histogram,
    /// One per local shard.
    pub shards: Vec<Arc<ShardStats>>,
}

impl Metrics {
    /// Metrics for a node with `shards` shards.
    pub fn new(shards: usize) -> Self {
        Self {
            connections_opened: AtomicU64::new(0),
            connections_closed: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            joins: AtomicU64::new(0),
            skips: AtomicU64::new(0),
            matched_sessions: AtomicU64::new(0),
            reports: AtomicU64::new(0),
            relayed: Default::default(),
            dropped_stale: AtomicU64::new(0),
            errors: ErrorCode::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            closes: CloseCause::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            match_wait: Histogram::new(WAIT_BOUNDS),
            shards: (0..shards).map(|_| Arc::default()).collect(),
        }
    }

    /// Counts an error sent to a client.
    pub fn error(&self, code: ErrorCode) {
        let slot = ErrorCode::ALL
            .iter()
            .position(|&c| c == code)
            .expect("listed");
        self.errors[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an error by code (for tests and the dashboard).
    pub fn errors_of(&self, code: ErrorCode) -> u64 {
        let slot = ErrorCode::ALL
            .iter()
            .position(|&c| c == code)
            .expect("listed");
        self.errors[slot].load(Ordering::Relaxed)
    }

    /// Counts a connection the server closed.
    pub fn close(&self, cause: CloseCause) {
        let slot = CloseCause::ALL
            .iter()
            .position(|&c| c == cause)
            .expect("listed");
        self.closes[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a relayed item.
    pub fn relayed(&self, kind: RelayKind) {
        self.relayed[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn online(&self) -> u64 {
        let opened = self.connections_opened.load(Ordering::Relaxed);
        opened.saturating_sub(self.connections_closed.load(Ordering::Relaxed))
    }

    /// Users waiting in all local shards.
    pub fn waiting(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.waiting.load(Ordering::Relaxed))
            .sum()
    }

    /// The Prometheus text exposition.
    pub fn render(&self, node: &str) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{node=\"{node}\"}} {value}"
            );
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP tandem_users_online WebSocket sessions open now.\n# TYPE tandem_users_online gauge\ntandem_users_online{{node=\"{node}\"}} {}",
            self.online()
        );
        counter(
            &mut out,
            "tandem_connections_total",
            "WebSocket sessions opened.",
            load(&self.connections_opened),
        );
        counter(
            &mut out,
            "tandem_frames_in_total",
            "Frames received from clients.",
            load(&self.frames_in),
        );
        counter(
            &mut out,
            "tandem_joins_total",
            "join messages accepted.",
            load(&self.joins),
        );
        counter(
            &mut out,
            "tandem_skips_total",
            "next messages that ended a chat.",
            load(&self.skips),
        );
        counter(
            &mut out,
            "tandem_matches_total",
            "Pairs made (each tells two sessions).",
            load(&self.matched_sessions) / 2,
        );
        counter(
            &mut out,
            "tandem_reports_total",
            "Reports filed.",
            load(&self.reports),
        );
        counter(
            &mut out,
            "tandem_relay_dropped_stale_total",
            "Relayed items dropped because the receiver had left that chat.",
            load(&self.dropped_stale),
        );
        let _ = writeln!(
            out,
            "# HELP tandem_relayed_total Items relayed to a partner.\n# TYPE tandem_relayed_total counter"
        );
        for (kind, count) in ["msg", "typing", "signal"].iter().zip(&self.relayed) {
            let _ = writeln!(
                out,
                "tandem_relayed_total{{node=\"{node}\",kind=\"{kind}\"}} {}",
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tandem_errors_total error messages sent to clients, by code.\n# TYPE tandem_errors_total counter"
        );
        for (code, count) in ErrorCode::ALL.iter().zip(&self.errors) {
            let _ = writeln!(
                out,
                "tandem_errors_total{{node=\"{node}\",code=\"{}\"}} {}",
                code.as_str(),
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tandem_server_closes_total Connections closed by the server, by cause.\n# TYPE tandem_server_closes_total counter"
        );
        for (cause, count) in CloseCause::ALL.iter().zip(&self.closes) {
            let _ = writeln!(
                out,
                "tandem_server_closes_total{{node=\"{node}\",cause=\"{}\"}} {}",
                cause.as_str(),
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tandem_waiting Users waiting in the pool, per shard.\n# TYPE tandem_waiting gauge"
        );
        for (i, shard) in self.shards.iter().enumerate() {
            let _ = writeln!(
                out,
                "tandem_waiting{{node=\"{node}\",shard=\"{i}\"}} {}",
                load(&shard.waiting)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tandem_shard_matches_total Pairs made, per shard.\n# TYPE tandem_shard_matches_total counter"
        );
        for (i, shard) in self.shards.iter().enumerate() {
            let _ = writeln!(
                out,
                "tandem_shard_matches_total{{node=\"{node}\",shard=\"{i}\"}} {}",
                load(&shard.matches)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tandem_shard_stale_dropped_total Stale tickets dropped instead of paired, per shard.\n# TYPE tandem_shard_stale_dropped_total counter"
        );
        for (i, shard) in self.shards.iter().enumerate() {
            let _ = writeln!(
                out,
                "tandem_shard_stale_dropped_total{{node=\"{node}\",shard=\"{i}\"}} {}",
                load(&shard.stale_dropped)
            );
        }
        self.match_wait.render(
            &mut out,
            "tandem_match_wait_seconds",
            "Time from join or next to matched, per session.",
            node,
        );
        out
    }
}

/// `value` as a label value of the Prometheus text format: backslash, double quote and
/// newline escaped (an operator's `--node-id` may hold any of them).
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// What every node says of itself: `tandem_build_info` and, on Linux, the process's CPU,
/// memory, descriptors and start time (the names Prometheus's own clients use).
pub fn render_process(out: &mut String, node: &str) {
    let _ = writeln!(
        out,
        "# HELP tandem_build_info The build this node runs (always 1).\n# TYPE tandem_build_info gauge\ntandem_build_info{{node=\"{node}\",version=\"{}\"}} 1",
        escape_label(env!("CARGO_PKG_VERSION"))
    );
    let Some(process) = ProcessStats::read() else {
        return;
    };
    let gauges = [
        (
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            process.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size, in bytes.",
            process.resident_bytes as f64,
        ),
        (
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            process.open_fds as f64,
        ),
        (
            "process_max_fds",
            "gauge",
            "The limit of open file descriptors.",
            process.max_fds as f64,
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "When the process started, in seconds since the Unix epoch.",
            process.start_time,
        ),
    ];
    for (name, kind, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{node=\"{node}\"}} {value}"
        );
    }
}

/// The process's figures, from `/proc/self`.
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: u64,
    open_fds: usize,
    max_fds: u64,
    start_time: f64,
}

impl ProcessStats {
    fn read() -> Option<Self> {
        // SAFETY: sysconf has no preconditions; it only reads a system constant.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if ticks <= 0 || page <= 0 {
            return None;
        }
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The fields after the command (which may hold spaces), from field 3 on.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let number = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let cpu_seconds = (number(14)? + number(15)?) as f64 / ticks as f64;
        let started_ticks = number(22)?;
        let resident_bytes = number(24)? * page as u64;
        let uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        let start_time = now - uptime + started_ticks as f64 / ticks as f64;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
        let max_fds = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?.0;
        Some(Self {
            cpu_seconds,
            resident_bytes,
            open_fds,
            max_fds,
            start_time,
        })
    }
}
