//! The flags of `tandem loadtest` and the small value types they parse into.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tandem_proto::duration::parse_duration;
use tandem_proto::Codec;

use super::assertions::{parse_assertion, Assertion};
use super::given::GivenFlags;
use super::profile::{parse_share, ProfileArgs};
use super::source_ips::{parse_source_ips, SourceIps};

/// `tandem loadtest`: drive one or more nodes with simulated users and report what they saw.
#[derive(Args, Clone, Debug)]
pub struct LoadtestArgs {
    /// Which flags were given on the command line, so that they win over `--scenario`.
    /// First, because clap's derive takes each value out of the matches as it fills the
    /// field, and this one must see them all.
    #[command(flatten)]
    pub given: GivenFlags,

    /// WebSocket URL of a node (repeatable); clients are spread round-robin over them.
    #[arg(long = "target", default_value = "ws://127.0.0.1:8080/ws")]
    pub targets: Vec<String>,

    /// Simulated users, each one WebSocket connection.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,

    /// Length of the whole run, ramp included; then every user sends `leave` and closes.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Users connect evenly spread over this time from the start.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub ramp: Duration,

    /// How long a user stays in a chat before `next`: drawn uniformly from `MIN..MAX`
    /// (a single duration means always that long).
    #[arg(long, default_value = "0.5s..3s", value_parser = parse_dwell)]
    pub dwell: DwellRange,

    /// Chat lines each user sends per chat, spread evenly over its dwell.
    #[arg(long, default_value_t = 3)]
    pub msgs_per_chat: u32,

    /// `signal` messages (WebRTC offer or answer, then ICE candidates) each user sends per
    /// chat, spread evenly over its dwell like the lines. Keep them under the server's signal
    /// rate (50/s, bursts of 100, by default) for the shortest dwell.
    #[arg(long, default_value_t = 0)]
    pub signals_per_chat: u32,

    /// Share of chat ends at which a user sends `leave` instead of `next`, stays idle for a
    /// pause drawn from `--dwell`, then joins again.
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    pub leave_share: f64,

    /// Share of chat ends at which a user closes its connection instead of sending `next`,
    /// reconnects with `?client_id=` (the id of its first `welcome`) and joins again.
    /// `--leave-share` plus this must not exceed 1.
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    pub reconnect_share: f64,

    /// A JSON file of profile and behaviour settings named like the flags (`clients`,
    /// `dwell`, `signals_per_chat`, `video_share`, ...); flags given on the command line win
    /// over it [default: none].
    #[arg(long)]
    pub scenario: Option<PathBuf>,

    /// Who the users are: mode, language, interests, country and country filter (boxed, so
    /// that these flags do not make every `tandem` command as large as a load test's).
    #[command(flatten)]
    pub profile: Box<ProfileArgs>,

    /// Wire format of every connection.
    #[arg(long, value_enum, default_value_t = CodecArg::Json)]
    pub codec: CodecArg,

    /// Write every figure of the report as JSON to this file [default: not written].
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Write a self-contained HTML page (inline SVG charts) to this file [default: not
    /// written].
    #[arg(long)]
    pub html: Option<PathBuf>,

    /// Conditions the run must meet, comma-separated: `NAME<VALUE`, `NAME=VALUE` or
    /// `NAME>VALUE`, e.g. `match_p99<10ms,errors=0,violations=0` (see docs/loadtest.md for
    /// the names). A failed one makes the exit code non-zero [default: none].
    #[arg(long = "assert", value_delimiter = ',', value_parser = parse_assertion)]
    pub assertions: Vec<Assertion>,

    /// Seed for the dwell times, so the same dwells are drawn again (the run itself still
    /// depends on timing) [default: random, printed in the report].
    #[arg(long)]
    pub seed: Option<u64>,

    /// Longest a single network step (connect, welcome, a send, the answer to `leave`) may
    /// take before the user counts as a connection failure.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub step_timeout: Duration,

    /// Print no progress line on stderr [default: one line per second].
    #[arg(long)]
    pub quiet: bool,

    /// A local server process whose resident memory (VmRSS) is sampled once a second and
    /// reported, with the growth per connected user; repeatable, one per local target
    /// [default: none].
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,

    /// Local addresses the users connect from, round-robin, so a run is not capped by one
    /// address's ephemeral ports: `127.0.0.1-127.0.0.8` (the last octet varies) or a
    /// comma-separated list; loopback only [default: chosen by the system].
    #[arg(long, value_parser = parse_source_ips)]
    pub source_ips: Option<SourceIps>,

    /// Processes the users are spread over (this binary run again as children), since one
    /// process may open only so many sockets; 1 keeps every user in this process [default:
    /// one per 15,000 clients].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: Option<u32>,

    /// Set by the parent of `--workers` on its children only.
    #[command(flatten)]
    pub worker: WorkerFlags,

    /// Drive the shard actors of a node started in this process instead of a node over
    /// WebSocket: virtual users with no sockets, to measure the engine itself at a scale one
    /// machine's sockets cannot reach. `--target`, `--clients`, `--codec`, `--ramp`,
    /// `--msgs-per-chat`, `--signals-per-chat`, `--leave-share`, `--reconnect-share`,
    /// `--server-pid`, `--source-ips` and `--workers` do not apply (each chat carries one
    /// hello per side).
    #[arg(long)]
    pub inproc: bool,

    /// Virtual users for `--inproc`, all connected for the whole run.
    #[arg(long, default_value_t = 1_000_000)]
    pub users: usize,

    /// Shard actors for `--inproc` [default: one per core].
    #[arg(long)]
    pub shards: Option<usize>,

    /// Driver threads playing the virtual users for `--inproc` [default: one per core].
    #[arg(long)]
    pub drivers: Option<usize>,
}

impl Default for LoadtestArgs {
    fn default() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: LoadtestArgs,
        }
        Wrapper::parse_from(["tandem"]).args
    }
}

/// Clients one worker process plays when `--workers` is not given.
pub const CLIENTS_PER_WORKER: usize = 15_000;

impl LoadtestArgs {
    /// How many processes play the users: `--workers`, or one per [`CLIENTS_PER_WORKER`]
    /// of the clients (those of `--scenario`, if it names them and can be read).
    pub fn worker_processes(&self) -> usize {
        let clients = match &self.scenario {
            Some(_) => self
                .with_scenario()
                .map_or(self.clients, |args| args.clients),
            None => self.clients,
        };
        match self.workers {
            Some(workers) => workers as usize,
            None => clients.div_ceil(CLIENTS_PER_WORKER).max(1),
        }
    }
}

/// Hidden flags that make a process one worker of a `--workers` run.
#[derive(Args, Clone, Debug, Default)]
pub struct WorkerFlags {
    /// This worker's number, from 0; it plays the users whose index is this modulo the count.
    #[arg(long, hide = true, requires_all = ["worker_count", "worker_start_unix_us", "worker_output"])]
    pub worker_index: Option<usize>,

    /// How many workers share the users.
    #[arg(long, hide = true)]
    pub worker_count: Option<usize>,

    /// The run's common start, in µs since the UNIX epoch, so every worker's ramp and chat
    /// line timestamps count from the same instant.
    #[arg(long, hide = true)]
    pub worker_start_unix_us: Option<u64>,

    /// Where the worker writes its partial results as JSON.
    #[arg(long, hide = true)]
    pub worker_output: Option<PathBuf>,
}

/// The range a chat's dwell time is drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DwellRange {
    /// Shortest stay in a chat.
    pub min: Duration,
    /// Longest stay in a chat (equal to `min` for a fixed dwell).
    pub max: Duration,
}

/// Parses `0.5s..3s` or a single duration such as `1s`.
pub fn parse_dwell(text: &str) -> Result<DwellRange, String> {
    let (min, max) = match text.split_once("..") {
        Some((min, max)) => (parse_duration(min)?, parse_duration(max)?),
        None => {
            let fixed = parse_duration(text)?;
            (fixed, fixed)
        }
    };
    if min > max {
        return Err(format!(
            "`{text}`: the shortest dwell is longer than the longest"
        ));
    }
    Ok(DwellRange { min, max })
}

/// `--codec` values, mapped onto the protocol's [`Codec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CodecArg {
    /// JSON text frames.
    Json,
    /// bincode binary frames (`/ws?codec=bincode`).
    Bincode,
}

impl CodecArg {
    /// The protocol codec this flag value names.
    pub fn codec(self) -> Codec {
        match self {
            Self::Json => Codec::Json,
            Self::Bincode => Codec::Bincode,
        }
    }

    /// The name used on the command line and in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Bincode => "bincode",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dwell_is_a_range_or_a_single_duration() {
        assert_eq!(
            parse_dwell("0.5s..3s"),
            Ok(DwellRange {
                min: Duration::from_millis(500),
                max: Duration::from_secs(3)
            })
        );
        let fixed = parse_dwell("200ms").unwrap();
        assert_eq!(fixed.min, fixed.max);
        assert!(parse_dwell("3s..1s").is_err());
        assert!(parse_dwell("soon..later").is_err());
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let args = LoadtestArgs::default();
        assert_eq!(args.targets, ["ws://127.0.0.1:8080/ws"]);
        assert_eq!(args.clients, 100);
        assert_eq!(args.duration, Duration::from_secs(10));
        assert_eq!(args.msgs_per_chat, 3);
        assert!(args.assertions.is_empty());
        assert!(args.server_pids.is_empty() && args.source_ips.is_none());
        assert_eq!(args.worker.worker_index, None);
    }

    #[test]
    fn workers_default_to_one_per_fifteen_thousand_clients() {
        let mut args = LoadtestArgs::default();
        assert_eq!(args.worker_processes(), 1);
        args.clients = 15_000;
        assert_eq!(args.worker_processes(), 1);
        args.clients = 15_001;
        assert_eq!(args.worker_processes(), 2);
        args.clients = 100_000;
        assert_eq!(args.worker_processes(), 7);
        args.workers = Some(1);
        assert_eq!(args.worker_processes(), 1);
    }
}
