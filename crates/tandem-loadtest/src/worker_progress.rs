//! The progress of a `--workers` run: each child prints its counters on stderr once a second
//! of the common start, in a line meant for the parent; the parent adds them up into its own
//! line and forwards whatever else a child prints, prefixed by the child's number.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::recorder::Recorder;

/// How long after each whole second of the run the parent reads the workers' progress.
const PROGRESS_LAG: Duration = Duration::from_millis(200);

/// Starts a child's progress line on stderr.
const PROGRESS_PREFIX: &str = "@tandem-loadtest-progress";

/// One child's counters, as its progress line carries them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerProgress {
    connected: i64,
    in_chat: i64,
    skips: u64,
    matched: u64,
}

impl WorkerProgress {
    /// The counters of a worker's recorder now.
    pub fn of(rec: &Recorder) -> Self {
        Self {
            connected: rec.connected.load(Ordering::Relaxed),
            in_chat: rec.in_chat.load(Ordering::Relaxed),
            skips: rec.skips.load(Ordering::Relaxed),
            matched: rec.matched.load(Ordering::Relaxed),
        }
    }

    /// The line a child prints.
    pub fn line(&self) -> String {
        let Self {
            connected,
            in_chat,
            skips,
            matched,
        } = self;
        format!("{PROGRESS_PREFIX} {connected} {in_chat} {skips} {matched}")
    }

    /// The counters in a progress line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Self> {
        let mut fields = line.strip_prefix(PROGRESS_PREFIX)?.split_whitespace();
        let mut next = || fields.next()?.parse::<i64>().ok();
        Some(Self {
            connected: next()?,
            in_chat: next()?,
            skips: next()? as u64,
            matched: next()? as u64,
        })
    }
}

/// Reads a child's output line by line: progress lines update its counters, others are
/// forwarded to stderr with the worker's number. Returns what best explains a failure: the
/// first `Error:` line (a backtrace may follow it), else the last line forwarded.
pub fn forward(
    index: usize,
    from: impl Read + Send + 'static,
    progress: &Arc<Mutex<Vec<WorkerProgress>>>,
) -> JoinHandle<Option<String>> {
    let progress = Arc::clone(progress);
    std::thread::spawn(move || {
        let (mut error, mut last) = (None, None);
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            match WorkerProgress::parse(&line) {
                Some(counters) => progress.lock()[index] = counters,
                None => {
                    eprintln!("[worker {index}] {line}");
                    if error.is_none() && line.starts_with("Error:") {
                        error = Some(line.clone());
                    }
                    last = Some(line);
                }
            }
        }
        error.or(last)
    })
}

/// One line per second summing the workers' counters, until told to stop.
pub fn print_progress(
    progress: &Mutex<Vec<WorkerProgress>>,
    epoch: Instant,
    stopped: &mpsc::Receiver<()>,
) {
    let (mut last_skips, mut last_matched) = (0, 0);
    for second in 1u32.. {
        // Just after the workers' lines for this second (they print on whole seconds).
        let at = epoch + Duration::from_secs(second.into()) + PROGRESS_LAG;
        let wait = at.saturating_duration_since(Instant::now());
        if !matches!(
            stopped.recv_timeout(wait),
            Err(mpsc::RecvTimeoutError::Timeout)
        ) {
            return;
        }
        let workers = progress.lock().clone();
        let sum = workers
            .iter()
            .fold(WorkerProgress::default(), |a, w| WorkerProgress {
                connected: a.connected + w.connected,
                in_chat: a.in_chat + w.in_chat,
                skips: a.skips + w.skips,
                matched: a.matched + w.matched,
            });
        // Two `matched` per chat, one on each side, wherever the sides are played.
        eprintln!(
            "{:>5.1}s  workers {}  connected {:>6}  in chat {:>6}  skips/s {:>6}  matches/s {:>6}",
            f64::from(second),
            workers.len(),
            sum.connected,
            sum.in_chat,
            sum.skips - last_skips,
            (sum.matched - last_matched) / 2,
        );
        (last_skips, last_matched) = (sum.skips, sum.matched);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_round_trip_and_other_lines_are_not_progress() {
        let counters = WorkerProgress {
            connected: 12,
            in_chat: 10,
            skips: 400,
            matched: 380,
        };
        assert_eq!(WorkerProgress::parse(&counters.line()), Some(counters));
        assert_eq!(WorkerProgress::parse("Error: worker 1: boom"), None);
    }
}
