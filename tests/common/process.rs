//! A node in a child process of its own (the `tandem` binary), for tests that pause or kill
//! it, or that measure its memory apart from the test's own.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{sleep, Instant};

use super::http_get;
use super::nats::free_port;

/// A running `tandem serve` child process, killed when dropped.
pub struct NodeProcess {
    pub addr: SocketAddr,
    pub child: Child,
}

impl NodeProcess {
    /// Starts `tandem serve --listen <free port> ARGS` and waits until it is healthy; one
    /// that exits first (another process took its port meanwhile) starts again on another
    /// port. It logs warnings to where `stderr` gives for each attempt.
    pub async fn start(args: &[String], mut stderr: impl FnMut() -> Stdio) -> NodeProcess {
        for _ in 0..3 {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
                .args(["serve", "--listen", &addr.to_string()])
                .args(args)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(stderr())
                .kill_on_drop(true)
                .spawn()
                .expect("the tandem binary");
            if healthy(addr, &mut child).await {
                return NodeProcess { addr, child };
            }
        }
        panic!("the node did not start: tandem serve {}", args.join(" "));
    }

    /// The resident memory of the node's process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        rss_kib_of(&format!("/proc/{pid}/status"))
    }
}

/// `VmRSS` of a `/proc/<pid>/status` file, in KiB.
pub fn rss_kib_of(status: &str) -> u64 {
    std::fs::read_to_string(status)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Whether the node at `addr` answers `/healthz` with 200 before its process exits (or 20 s
/// pass: a debug build on a busy machine is slow to start).
async fn healthy(addr: SocketAddr, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if TcpStream::connect(addr).await.is_ok() && http_get(addr, "/healthz").await.0 == 200 {
            return true;
        }
        assert!(
            Instant::now() < deadline,
            "the node at {addr} did not start"
        );
        sleep(Duration::from_millis(20)).await;
    }
}
