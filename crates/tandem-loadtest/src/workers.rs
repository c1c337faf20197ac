//! `--workers N`: the users spread over N child processes, because one process may open only
//! so many sockets.
//!
//! The parent runs this very binary again N times with hidden flags (`--worker-index`,
//! `--worker-count`, `--worker-start-unix-us`, `--worker-output`). Every child plays the users
//! whose index is its own modulo N, on the same plan as a single-process run, counting from a
//! common start the parent chose a moment ahead in UNIX time, so ramps line up and a chat
//! line's timestamp means the same instant in every process. Each child writes its
//! [`Partial`] results to a file and prints a machine-readable progress line on stderr each
//! second; the parent adds the progress lines up for its own line, forwards anything else
//! prefixed by `[worker i]`, and merges the partial results into one report.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::partial::{self, Partial};
use super::recorder::Recorder;
use super::server_rss::RssSampler;
use super::worker_progress::{forward, print_progress, WorkerProgress};
use super::{
    conclude, play, target_urls, LoadtestArgs, LoadtestError, ProgressLine, Report, Share,
};

/// How far ahead of now the parent sets the common start: time for the children to start
/// and connect nothing yet, so the first users are not behind schedule from the outset.
const START_MARGIN: Duration = Duration::from_secs(1);

/// Runs one worker's share, as the hidden flags describe, and writes its partial results.
/// Prints no report: the parent judges the run.
pub async fn run_worker(args: &LoadtestArgs) -> Result<(), LoadtestError> {
    let flags = &args.worker;
    let (Some(index), Some(count), Some(start), Some(output)) = (
        flags.worker_index,
        flags.worker_count,
        flags.worker_start_unix_us,
        &flags.worker_output,
    ) else {
        return Err(LoadtestError::Worker {
            index: flags.worker_index.unwrap_or(0),
            reason: "incomplete worker flags".into(),
        });
    };
    let urls = target_urls(args)?;
    // The parent always passes the seed, so every worker draws from the same plan.
    let seed = args.seed.unwrap_or_default();
    let mut rec = Recorder::new(instant_at_unix_us(start));
    rec.partners_elsewhere = count > 1;
    let rec = Arc::new(rec);
    let share = Share { index, count };
    play(args, &urls, seed, share, &rec, ProgressLine::Worker).await;
    let json = serde_json::to_vec(&Partial::from_recorder(&rec)).expect("results are plain data");
    std::fs::write(output, json).map_err(|source| LoadtestError::Write {
        path: output.clone(),
        source,
    })
}

/// Runs the load over `args.worker_processes()` child processes, merges their results, and
/// concludes as [`run`](super::run) does. Blocking; call it outside any async runtime.
pub fn run_workers(args: &LoadtestArgs) -> Result<Report, LoadtestError> {
    // The children get the scenario's settings as flags, not the file.
    let args = &args.with_scenario()?;
    target_urls(args)?;
    let count = args.worker_processes();
    let seed = args.seed.unwrap_or_else(rand::random);
    let start_unix_us = unix_now_us() + START_MARGIN.as_micros() as u64;
    let epoch = instant_at_unix_us(start_unix_us);
    // The start sample is taken now, before any child connects a user.
    let sampler = RssSampler::start(&args.server_pids, epoch + args.duration)?;
    let exe = std::env::current_exe().map_err(|err| LoadtestError::Worker {
        index: 0,
        reason: format!("finding this binary: {err}"),
    })?;
    let progress = Arc::new(Mutex::new(vec![WorkerProgress::default(); count]));
    let mut workers = Vec::with_capacity(count);
    for index in 0..count {
        let output = std::env::temp_dir().join(format!(
            "tandem-loadtest-{}-worker-{index}.json",
            std::process::id()
        ));
        let mut child = Command::new(&exe)
            .args(child_args(args, seed, index, count, start_unix_us, &output))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| LoadtestError::Worker {
                index,
                reason: format!("starting {}: {err}", exe.display()),
            })?;
        let readers = vec![
            forward(index, child.stdout.take().expect("piped"), &progress),
            forward(index, child.stderr.take().expect("piped"), &progress),
        ];
        workers.push(WorkerProcess {
            index,
            child,
            output,
            readers,
        });
    }
    let (stop_printer, stopped) = mpsc::channel();
    let printer = (!args.quiet).then(|| {
        let progress = Arc::clone(&progress);
        std::thread::spawn(move || print_progress(&progress, epoch, &stopped))
    });
    let mut partials = Vec::with_capacity(count);
    let mut failure = None;
    for worker in workers {
        match worker.finish() {
            Ok(partial) => partials.push(partial),
            Err(err) => failure = failure.or(Some(err)),
        }
    }
    let _ = stop_printer.send(());
    if let Some(printer) = printer {
        let _ = printer.join();
    }
    if let Some(err) = failure {
        return Err(err);
    }
    let shares = partials
        .iter()
        .enumerate()
        .map(|(index, part)| part.share(index))
        .collect();
    let rec = Recorder::new(epoch);
    partial::merge(partials, &rec);
    let mut report = Report::build(
        &rec,
        args.targets.clone(),
        args.codec.as_str(),
        args.clients,
        args.duration,
        seed,
    );
    report.workers = shares;
    conclude(report, sampler, args)
}

/// A running child; killed if dropped before it finished (the parent gave up on the run).
struct WorkerProcess {
    index: usize,
    child: Child,
    output: PathBuf,
    /// Forwarding its stdout and stderr; each returns what best explains a failure.
    readers: Vec<JoinHandle<Option<String>>>,
}

impl WorkerProcess {
    /// Waits for the child and reads its results.
    fn finish(mut self) -> Result<Partial, LoadtestError> {
        let index = self.index;
        let fail = |reason: String| LoadtestError::Worker { index, reason };
        let status = self.child.wait().map_err(|err| fail(err.to_string()))?;
        let said: Vec<String> = std::mem::take(&mut self.readers)
            .into_iter()
            .filter_map(|reader| reader.join().ok().flatten())
            .collect();
        let read = std::fs::read(&self.output);
        let _ = std::fs::remove_file(&self.output);
        if !status.success() {
            return Err(fail(format!("{status}: {}", said.join(" / "))));
        }
        let bytes = read.map_err(|err| fail(format!("reading its results: {err}")))?;
        serde_json::from_slice(&bytes).map_err(|err| fail(format!("parsing its results: {err}")))
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_file(&self.output);
        }
    }
}

/// The flags of child `index`: the parent's plan, its seed, and the worker's place in it.
fn child_args(
    args: &LoadtestArgs,
    seed: u64,
    index: usize,
    count: usize,
    start_unix_us: u64,
    output: &PathBuf,
) -> Vec<OsString> {
    let mut flags: Vec<OsString> = vec!["loadtest".into()];
    let mut flag = |name: &str, value: String| {
        flags.push(name.into());
        flags.push(value.into());
    };
    for target in &args.targets {
        flag("--target", target.clone());
    }
    flag("--clients", args.clients.to_string());
    flag("--duration", duration_arg(args.duration));
    flag("--ramp", duration_arg(args.ramp));
    let dwell = format!(
        "{}..{}",
        duration_arg(args.dwell.min),
        duration_arg(args.dwell.max)
    );
    flag("--dwell", dwell);
    flag("--msgs-per-chat", args.msgs_per_chat.to_string());
    flag("--signals-per-chat", args.signals_per_chat.to_string());
    flag("--leave-share", args.leave_share.to_string());
    flag("--reconnect-share", args.reconnect_share.to_string());
    flag("--codec", args.codec.as_str().to_owned());
    flag("--seed", seed.to_string());
    flag("--step-timeout", duration_arg(args.step_timeout));
    if let Some(ips) = &args.source_ips {
        flag("--source-ips", ips.to_arg());
    }
    for (name, value) in args.profile.to_args() {
        flag(name, value);
    }
    flag("--worker-index", index.to_string());
    flag("--worker-count", count.to_string());
    flag("--worker-start-unix-us", start_unix_us.to_string());
    flags.push("--worker-output".into());
    flags.push(output.into());
    if args.quiet {
        flags.push("--quiet".into());
    }
    flags
}

/// A duration as `--duration` parses it back, to the nanosecond.
fn duration_arg(duration: Duration) -> String {
    format!("{}ms", duration.as_nanos() as f64 / 1e6)
}

fn unix_now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_micros() as u64
}

/// The monotonic instant of a UNIX time in µs, as this process's clocks relate them now.
fn instant_at_unix_us(unix_us: u64) -> Instant {
    let (now, now_us) = (Instant::now(), unix_now_us());
    if unix_us >= now_us {
        now + Duration::from_micros(unix_us - now_us)
    } else {
        now.checked_sub(Duration::from_micros(now_us - unix_us))
            .unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadtestArgs,
    }

    #[test]
    fn a_child_parses_the_parents_plan_back() {
        let parent = Cli::parse_from([
            "loadtest",
            "--target",
            "ws://127.0.0.1:1/ws",
            "--clients",
            "30",
            "--duration",
            "2.5s",
            "--dwell",
            "100ms..1.25s",
            "--signals-per-chat",
            "4",
            "--leave-share",
            "0.25",
            "--reconnect-share",
            "0.125",
            "--source-ips",
            "127.0.0.2-127.0.0.3",
            "--workers",
            "3",
            "--server-pid",
            "1",
            "--quiet",
        ])
        .args;
        let flags = child_args(&parent, 9, 1, 3, 42, &PathBuf::from("/tmp/out.json"));
        let child =
            Cli::parse_from(std::iter::once(OsString::from("x")).chain(flags.into_iter().skip(1)))
                .args;
        assert_eq!(child.targets, parent.targets);
        assert_eq!(child.clients, 30);
        assert_eq!(child.duration, parent.duration);
        assert_eq!(child.dwell, parent.dwell);
        assert_eq!(child.signals_per_chat, 4);
        assert_eq!((child.leave_share, child.reconnect_share), (0.25, 0.125));
        assert_eq!(child.step_timeout, parent.step_timeout);
        assert_eq!(child.source_ips, parent.source_ips);
        assert_eq!(child.seed, Some(9));
        assert!(child.quiet && child.server_pids.is_empty());
        assert_eq!(child.worker.worker_index, Some(1));
        assert_eq!(child.worker.worker_count, Some(3));
        assert_eq!(child.worker.worker_start_unix_us, Some(42));
    }
}
