//! Real `nats-server` processes for the cluster tests: each on free loopback ports, alone or
//! as a cluster with routes, stopped (killed and reaped) on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound and released; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `nats-server` process.
pub struct NatsServer {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// A lone server on a free port.
    pub fn start() -> Self {
        let port = free_port();
        Self::spawn(port, Vec::new())
    }

    /// `n` servers routed into one NATS cluster.
    pub fn start_cluster(n: usize) -> Vec<Self> {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let routes = ports
            .iter()
            .map(|(_, route)| format!("nats://127.0.0.1:{route}"))
            .collect::<Vec<_>>()
            .join(",");
        let servers: Vec<Self> = ports
            .iter()
            .enumerate()
            .map(|(i, (port, route))| {
                Self::spawn(
                    *port,
                    vec![
                        "--name".into(),
                        format!("nats-{i}"),
                        "--cluster_name".into(),
                        "tandem-test".into(),
                        "--cluster".into(),
                        format!("nats://127.0.0.1:{route}"),
                        "--routes".into(),
                        routes.clone(),
                    ],
                )
            })
            .collect();
        servers
    }

    fn spawn(port: u16, extra: Vec<String>) -> Self {
        let mut args = vec![
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
        ];
        args.extend(extra);
        let mut server = Self {
            port,
            args,
            child: None,
        };
        server.run();
        server
    }

    fn run(&mut self) {
        let child = Command::new("nats-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on PATH (scripts/test installs it)");
        self.child = Some(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
