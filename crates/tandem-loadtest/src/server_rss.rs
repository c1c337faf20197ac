//! `--server-pid`: the resident memory and the CPU time of local server processes, sampled
//! during the run, so an operator reads memory per connected user and CPU per skip directly
//! from the report.
//!
//! Memory comes from `VmRSS` in `/proc/PID/status` and CPU time (user and system) from
//! `/proc/PID/stat`, once at the start (before any user connects), once a second, once at the
//! end of `--duration` (every user still connected: the "final" figure), and once more when
//! the users have left. A plain thread does it, so it works the same under the tokio runtime
//! and in the parent of `--workers`.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::LoadtestError;

/// How often memory is sampled.
const PERIOD: Duration = Duration::from_secs(1);

/// What one server process's resident memory did during the run, in KiB.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRss {
    /// The process, as given with `--server-pid`.
    pub pid: u32,
    /// Before any user connected.
    pub start: u64,
    /// The largest sample, the leaving phase included.
    pub peak: u64,
    /// At the end of `--duration`, before the users leave.
    #[serde(rename = "final")]
    pub at_end: u64,
    /// CPU time (user and system) the process used from the start sample to the final one,
    /// in milliseconds.
    #[serde(default)]
    pub cpu_ms: u64,
}

/// Samples the processes on a thread until [`RssSampler::finish`].
pub struct RssSampler {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Vec<ServerRss>>,
}

impl RssSampler {
    /// Takes the start sample of every pid and starts sampling; `None` without pids. A pid
    /// whose memory cannot be read is an error, so a typo fails before any load is sent.
    pub fn start(pids: &[u32], end_at: Instant) -> Result<Option<Self>, LoadtestError> {
        if pids.is_empty() {
            return Ok(None);
        }
        let mut figures = Vec::with_capacity(pids.len());
        let mut cpu_start = Vec::with_capacity(pids.len());
        for &pid in pids {
            let refused = |reason| LoadtestError::ServerPid { pid, reason };
            let kib = vm_rss_kib(pid).map_err(refused)?;
            cpu_start.push(cpu_ms(pid).map_err(refused)?);
            figures.push(ServerRss {
                pid,
                start: kib,
                peak: kib,
                at_end: kib,
                cpu_ms: 0,
            });
        }
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("server-rss".into())
            .spawn(move || sample_until_stopped(figures, &cpu_start, end_at, &stopped))
            .expect("spawning a thread");
        Ok(Some(Self { stop, thread }))
    }

    /// Takes a last sample and returns the figures.
    pub fn finish(self) -> Vec<ServerRss> {
        let _ = self.stop.send(());
        self.thread.join().expect("the sampler does not panic")
    }
}

/// Server CPU time per skip over every sampled process, in microseconds.
pub fn cpu_per_skip_us(figures: &[ServerRss], skips: u64) -> Option<f64> {
    if figures.is_empty() || skips == 0 {
        return None;
    }
    let cpu_ms: u64 = figures.iter().map(|f| f.cpu_ms).sum();
    Some(cpu_ms as f64 * 1000.0 / skips as f64)
}

/// Memory growth per connected user over every sampled process: (final − start) / users.
pub fn per_user_kib(figures: &[ServerRss], connected: u64) -> Option<f64> {
    if figures.is_empty() || connected == 0 {
        return None;
    }
    let growth: i64 = figures
        .iter()
        .map(|f| f.at_end as i64 - f.start as i64)
        .sum();
    Some(growth as f64 / connected as f64)
}

fn sample_until_stopped(
    mut figures: Vec<ServerRss>,
    cpu_start: &[u64],
    end_at: Instant,
    stopped: &mpsc::Receiver<()>,
) -> Vec<ServerRss> {
    let mut final_taken = false;
    loop {
        let now = Instant::now();
        // Wake at the end of the run even between two ticks: that sample is the "final" one.
        let wait = if final_taken {
            PERIOD
        } else {
            PERIOD.min(end_at.saturating_duration_since(now))
        };
        let stop = match stopped.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        };
        let at_end = !final_taken && (stop || Instant::now() >= end_at);
        for (figure, &cpu_start) in figures.iter_mut().zip(cpu_start) {
            // A process that exited keeps its last figures.
            if let Ok(kib) = vm_rss_kib(figure.pid) {
                figure.peak = figure.peak.max(kib);
                if at_end {
                    figure.at_end = kib;
                }
            }
            if let (true, Ok(cpu)) = (at_end, cpu_ms(figure.pid)) {
                figure.cpu_ms = cpu.saturating_sub(cpu_start);
            }
        }
        final_taken |= at_end;
        if stop {
            return figures;
        }
    }
}

/// The resident memory of `pid` in KiB.
fn vm_rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => format!("no such process ({path} does not exist)"),
        _ => format!("reading {path}: {err}"),
    })?;
    parse_vm_rss(&status).ok_or_else(|| format!("{path} has no VmRSS line"))
}

/// The CPU time (user and system) `pid` has used, in milliseconds.
fn cpu_ms(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => format!("no such process ({path} does not exist)"),
        _ => format!("reading {path}: {err}"),
    })?;
    let ticks = parse_cpu_ticks(&stat).ok_or_else(|| format!("{path} has no CPU times"))?;
    // SAFETY: sysconf only reads a constant of the system.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_sec = u64::try_from(per_sec)
        .ok()
        .filter(|&t| t > 0)
        .unwrap_or(100);
    Ok(ticks * 1000 / per_sec)
}

/// User plus system time, in clock ticks, of a `/proc/PID/stat` text: fields 14 and 15,
/// counted after the command name (which may hold spaces and parentheses).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// The `VmRSS:   1234 kB` figure of a `/proc/PID/status` text.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_from_the_status_text() {
        let status = "Name:\ttandem\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(5120));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        let stat = "4242 (tan dem) (x)) S 1 4242 4242 0 -1 4194560 500 0 0 0 120 35 0 0 20 0";
        assert_eq!(parse_cpu_ticks(stat), Some(155));
        assert_eq!(parse_cpu_ticks("4242 (tandem) S 1"), None);
    }

    #[test]
    fn this_process_has_memory_and_cpu_and_a_missing_pid_is_an_error() {
        assert!(vm_rss_kib(std::process::id()).unwrap() > 0);
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(spin.elapsed());
        }
        assert!(cpu_ms(std::process::id()).unwrap() > 0);
        let missing = u32::MAX - 1;
        let err = RssSampler::start(&[missing], Instant::now())
            .err()
            .expect("a missing pid is refused");
        assert!(err.to_string().contains("no such process"), "{err}");
    }

    #[test]
    fn growth_is_shared_among_the_connected_users_and_cpu_among_the_skips() {
        let figures = [
            ServerRss {
                pid: 1,
                start: 1000,
                peak: 3000,
                at_end: 2000,
                cpu_ms: 300,
            },
            ServerRss {
                pid: 2,
                start: 1000,
                peak: 1500,
                at_end: 1500,
                cpu_ms: 100,
            },
        ];
        assert_eq!(per_user_kib(&figures, 100), Some(15.0));
        assert_eq!(per_user_kib(&figures, 0), None);
        assert_eq!(per_user_kib(&[], 10), None);
        assert_eq!(cpu_per_skip_us(&figures, 2000), Some(200.0));
        assert_eq!(cpu_per_skip_us(&figures, 0), None);
    }
}
