//! A real coturn (`turnserver`, Debian's `coturn`) on a free loopback port, with the TURN
//! REST API's shared secret (`use-auth-secret`), as docs/deploy.md sets it up, and loopback
//! peers allowed (both browsers of a test live on 127.0.0.1).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::nats::free_port;

/// A running `turnserver`, killed when dropped.
pub struct Coturn {
    pub port: u16,
    child: Child,
}

impl Coturn {
    /// Starts coturn with `secret` and waits until it listens.
    pub fn start(secret: &str) -> Self {
        let port = free_port();
        let relay_from = free_port().max(20_000);
        let child = Command::new("turnserver")
            .args(["-n", "--no-cli", "--no-tls", "--no-dtls", "--fingerprint"])
            .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
            .args(["--listening-port", &port.to_string()])
            .args(["--min-port", &relay_from.to_string()])
            .args(["--max-port", &(relay_from + 200).to_string()])
            .args(["--use-auth-secret", "--static-auth-secret", secret])
            .args(["--realm", "tandem.test", "--allow-loopback-peers"])
            .args(["--log-file", "stdout", "--simple-log"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver (Debian's coturn; scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "coturn did not start on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }

    /// The `--turn` URL of this server.
    pub fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
