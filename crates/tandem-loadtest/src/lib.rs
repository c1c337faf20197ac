//! `tandem loadtest`: drives nodes with simulated users over real WebSockets and reports what
//! they experienced: match, message and connect latency, throughput, errors, and every broken
//! promise of the protocol (docs/loadtest.md).
//!
//! Users are tasks on one tokio runtime, in this process or spread over `--workers` child
//! processes ([`workers`]) that count from one common start; either way they share one
//! clock: a chat line carries the time it was due, and its receiver measures the latency.
//! This module owns the run (plan, progress, report); [`profile`] draws who each user is;
//! [`client`] owns what one user does; [`checks`] owns the rules. It must never reach into a
//! node's internals: it sees only what a client sees (and, with `--server-pid`, a local
//! server's memory from `/proc`).

mod args;
mod assertions;
mod challenge;
mod chat_line;
mod checks;
mod client;
mod failure;
mod given;
mod html;
#[cfg(feature = "inproc")]
pub mod inproc;
mod partial;
mod profile;
mod recorder;
mod report;
mod scenario;
mod server_rss;
mod source_ips;
mod worker_progress;
mod workers;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use args::{CodecArg, DwellRange, LoadtestArgs, WorkerFlags, CLIENTS_PER_WORKER};
pub use assertions::{Assertion, Comparison};
pub use checks::ViolationKind;
use client::UserPlan;
pub use given::GivenFlags;
pub use partial::WorkerShare;
pub use profile::{CountRange, Langs, ProfileArgs, COUNTRY_CODES};
use recorder::Recorder;
pub use report::{LatencySummary, PercentilePoint, Report, SecondSample};
pub use scenario::{ScenarioError, SCENARIO_KEYS};
use server_rss::RssSampler;
pub use server_rss::ServerRss;
pub use source_ips::{parse_source_ips, SourceIps};
use tokio::task::JoinSet;
pub use workers::{run_worker, run_workers};

/// Why a run could not be made or its files not written. Problems of the users (failed
/// connections, errors, violations) are not errors: they are in the [`Report`].
#[derive(Debug, thiserror::Error)]
pub enum LoadtestError {
    /// A `--target` is not a `ws://host:port/path` URL.
    #[error("target `{0}` is not a ws:// URL")]
    BadTarget(String),
    /// `--clients 0` or no target.
    #[error("nothing to run: give at least one target and one client")]
    Empty,
    /// The JSON or HTML report could not be written.
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A `--server-pid` whose memory cannot be read (no such process, or no `VmRSS`).
    #[error("--server-pid {pid}: {reason}")]
    ServerPid { pid: u32, reason: String },
    /// A `--workers` child could not be started, failed, or left no readable results.
    #[error("worker {index}: {reason}")]
    Worker { index: usize, reason: String },
    /// The `--scenario` file cannot be read, is not JSON, or holds an unknown key or a bad
    /// value.
    #[error("--scenario {0}")]
    Scenario(#[from] ScenarioError),
    /// `--leave-share` and `--reconnect-share` together exceed 1.
    #[error("--leave-share {leave} plus --reconnect-share {reconnect} exceeds 1")]
    Shares { leave: f64, reconnect: f64 },
}

/// Which of the planned users this process plays: those whose index is `index` modulo
/// `count`, so every worker's users are spread over the whole ramp.
#[derive(Clone, Copy, Debug)]
struct Share {
    index: usize,
    count: usize,
}

impl Share {
    /// Every user, in this process.
    const ALL: Share = Share { index: 0, count: 1 };
}

/// What the once-a-second progress line looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProgressLine {
    /// For a person.
    Human,
    /// For the parent of `--workers` to add up.
    Worker,
}

/// Runs the load as `args` describe, every user in this process (`--workers` is
/// [`run_workers`]), prints progress on stderr (unless `--quiet`), writes the `--json` and
/// `--html` files, and returns the report with the assertions checked.
pub async fn run(args: &LoadtestArgs) -> Result<Report, LoadtestError> {
    let args = &args.with_scenario()?;
    let urls = target_urls(args)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let epoch = Instant::now();
    let sampler = RssSampler::start(&args.server_pids, epoch + args.duration)?;
    let rec = Arc::new(Recorder::new(epoch));
    play(args, &urls, seed, Share::ALL, &rec, ProgressLine::Human).await;
    rec.ledger.finish(&rec.violations);
    let report = Report::build(
        &rec,
        args.targets.clone(),
        args.codec.as_str(),
        args.clients,
        args.duration,
        seed,
    );
    conclude(report, sampler, args)
}

/// Plays this process's share of the users from `rec.epoch` until they have all finished.
async fn play(
    args: &LoadtestArgs,
    urls: &[String],
    seed: u64,
    share: Share,
    rec: &Arc<Recorder>,
    line: ProgressLine,
) {
    let epoch = rec.epoch;
    let end_at = epoch + args.duration;
    let mut users = JoinSet::new();
    for index in (share.index..args.clients).step_by(share.count) {
        let plan = UserPlan {
            url: urls[index % urls.len()].clone(),
            start_at: epoch + args.ramp.mul_f64(index as f64 / args.clients as f64),
            end_at,
            dwell: args.dwell,
            msgs_per_chat: args.msgs_per_chat,
            signals_per_chat: args.signals_per_chat,
            leave_share: args.leave_share,
            reconnect_share: args.reconnect_share,
            codec: args.codec.codec(),
            step_timeout: args.step_timeout,
            seed: seed.wrapping_add(index as u64),
            profile: args.profile.draw(&mut profile_rng(seed, index)),
            country_header: args.profile.country_header.clone(),
            source_ip: args.source_ips.as_ref().map(|ips| ips.for_user(index)),
        };
        let rec = Arc::clone(rec);
        users.spawn(async move { client::run_user(plan, &rec).await });
    }
    let progress = (!args.quiet).then(|| tokio::spawn(progress(Arc::clone(rec), end_at, line)));
    while users.join_next().await.is_some() {}
    if let Some(progress) = progress {
        progress.abort();
    }
}

/// The random source of user `index`'s profile: seeded by `--seed` like its dwell times, but
/// a stream of its own, so that adding a profile flag does not change the dwells drawn.
fn profile_rng(seed: u64, index: usize) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(index as u64) ^ 0x9e37_79b9_7f4a_7c15)
}

/// Adds the memory figures, checks the assertions and writes the report files.
fn conclude(
    mut report: Report,
    sampler: Option<RssSampler>,
    args: &LoadtestArgs,
) -> Result<Report, LoadtestError> {
    if let Some(sampler) = sampler {
        report.server_rss_kib = sampler.finish();
        report.server_rss_per_user_kib =
            server_rss::per_user_kib(&report.server_rss_kib, report.connected);
        report.server_cpu_per_skip_us =
            server_rss::cpu_per_skip_us(&report.server_rss_kib, report.skips);
    }
    report.check(&args.assertions);
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).expect("a report is plain data");
        write(path, json)?;
    }
    if let Some(path) = &args.html {
        write(path, html::render(&report))?;
    }
    Ok(report)
}

#[cfg(feature = "inproc")]
/// Runs `--inproc`: a node's shards in this process, driven by virtual users. Blocking; call
/// it outside any async runtime. Writes the same `--json` and `--html` files as a socket run.
pub fn run_inproc(args: &LoadtestArgs) -> Result<Report, LoadtestError> {
    let args = &args.with_scenario()?;
    if args.users < 2 {
        return Err(LoadtestError::Empty);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let seed = args.seed.unwrap_or_else(rand::random);
    let config = inproc::InprocConfig {
        users: args.users,
        duration: args.duration,
        dwell: (args.dwell.min, args.dwell.max),
        shards: args.shards.unwrap_or(cores),
        drivers: args.drivers.unwrap_or(cores),
        seed,
    };
    let quiet = args.quiet;
    let outcome = inproc::run(&config, |p| {
        if !quiet {
            eprintln!(
                "{:>5.1}s  users {:>8}  in chat {:>8}  skips/s {:>9.0}  match p50 {:.2}ms p99 {:.2}ms",
                p.elapsed.as_secs_f64(),
                config.users,
                p.chatting,
                p.skips_per_sec,
                p.match_p50_us as f64 / 1000.0,
                p.match_p99_us as f64 / 1000.0,
            );
        }
    });
    conclude(outcome.into_report(seed), None, args)
}

fn write(path: &PathBuf, contents: String) -> Result<(), LoadtestError> {
    std::fs::write(path, contents).map_err(|source| LoadtestError::Write {
        path: path.clone(),
        source,
    })
}

/// Every target's URL, checked; an error without clients or targets, or with shares of
/// chat ends that add up to more than all of them.
fn target_urls(args: &LoadtestArgs) -> Result<Vec<String>, LoadtestError> {
    if args.clients == 0 || args.targets.is_empty() {
        return Err(LoadtestError::Empty);
    }
    if args.leave_share + args.reconnect_share > 1.0 {
        return Err(LoadtestError::Shares {
            leave: args.leave_share,
            reconnect: args.reconnect_share,
        });
    }
    args.targets
        .iter()
        .map(|target| target_url(target, args.codec))
        .collect()
}

/// The target with the codec parameter the server expects for bincode.
fn target_url(target: &str, codec: CodecArg) -> Result<String, LoadtestError> {
    if !target.starts_with("ws://") {
        return Err(LoadtestError::BadTarget(target.to_owned()));
    }
    Ok(match codec {
        CodecArg::Json => target.to_owned(),
        CodecArg::Bincode if target.contains('?') => format!("{target}&codec=bincode"),
        CodecArg::Bincode => format!("{target}?codec=bincode"),
    })
}

/// One line on stderr per second until the end of the run.
async fn progress(rec: Arc<Recorder>, end_at: Instant, line: ProgressLine) {
    // A worker's lines fall on whole seconds of the common start, so the parent, which
    // samples them just after, adds up counters of one instant.
    let first = match line {
        ProgressLine::Human => tokio::time::Instant::now(),
        ProgressLine::Worker => rec.epoch.into(),
    };
    let mut tick = tokio::time::interval_at(first, Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    let (mut last_skips, mut last_matches) = (0, 0);
    loop {
        tick.tick().await;
        if line == ProgressLine::Worker {
            eprintln!("{}", worker_progress::WorkerProgress::of(&rec).line());
            continue;
        }
        let skips = rec.skips.load(Ordering::Relaxed);
        let matches = rec.ledger.chats();
        let (p50, p99) = {
            let h = rec.match_latency.lock();
            (h.value_at_quantile(0.5), h.value_at_quantile(0.99))
        };
        eprintln!(
            "{:>5.1}s  connected {:>6}  in chat {:>6}  skips/s {:>6}  matches/s {:>6}  match p50 {:.2}ms p99 {:.2}ms",
            rec.epoch.elapsed().as_secs_f64(),
            rec.connected.load(Ordering::Relaxed),
            rec.in_chat.load(Ordering::Relaxed),
            skips - last_skips,
            matches - last_matches,
            p50 as f64 / 1000.0,
            p99 as f64 / 1000.0,
        );
        (last_skips, last_matches) = (skips, matches);
        if Instant::now() >= end_at {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bincode_targets_ask_for_bincode() {
        assert_eq!(
            target_url("ws://h:1/ws", CodecArg::Bincode).unwrap(),
            "ws://h:1/ws?codec=bincode"
        );
        assert_eq!(
            target_url("ws://h:1/ws?client_id=a", CodecArg::Bincode).unwrap(),
            "ws://h:1/ws?client_id=a&codec=bincode"
        );
        assert!(target_url("http://h:1/ws", CodecArg::Json).is_err());
    }
}
