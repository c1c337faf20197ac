//! Real `nats-server` processes for the cluster tests: each on free loopback ports, alone or
//! as a cluster with routes, stopped (killed and reaped) on drop.
//!
//! A port found free can be taken by another test's server before ours binds it, so a server
//! is ready only when the port answers with its own name; when it exits instead, it starts
//! again on fresh ports.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use super::tls::TestCa;

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
    /// The server's name, which its `INFO` greeting carries.
    name: String,
    /// Where it listens for routes and serves monitoring ([`NatsServer::start_routed`]).
    pub route: u16,
    pub monitor: u16,
    args: Vec<String>,
    child: Option<Child>,
    /// JetStream's storage, removed with the server.
    _store: Option<tempfile::TempDir>,
}

impl NatsServer {
    /// A lone server on a free port, with JetStream (where a cluster keeps its moderation
    /// store) storing in a directory of its own, kept across restarts, removed on drop.
    pub fn start() -> Self {
        Self::start_lone(Vec::new())
    }

    fn start_lone(extra: Vec<String>) -> Self {
        loop {
            let store = tempfile::tempdir().unwrap();
            let dir = store.path().to_str().unwrap().to_owned();
            let mut args = vec!["-js".into(), "-sd".into(), dir];
            args.extend(extra.iter().cloned());
            let mut server = Self::new(free_port(), args);
            server._store = Some(store);
            if server.run().is_ok() {
                return server;
            }
        }
    }

    /// A lone server with JetStream that lets in only `user` with `password`.
    pub fn start_with_user(user: &str, password: &str) -> Self {
        Self::start_lone(vec![
            "--user".into(),
            user.into(),
            "--pass".into(),
            password.into(),
        ])
    }

    /// A lone server with JetStream that speaks only TLS (with `tls`'s certificate) and lets
    /// in only `user` with `password`.
    pub fn start_tls(tls: &TestCa, user: &str, password: &str) -> Self {
        Self::start_lone(vec![
            "--tls".into(),
            "--tlscert".into(),
            tls.dir.path().join("server.pem").to_str().unwrap().into(),
            "--tlskey".into(),
            tls.dir
                .path()
                .join("server-key.pem")
                .to_str()
                .unwrap()
                .into(),
            "--user".into(),
            user.into(),
            "--pass".into(),
            password.into(),
        ])
    }

    /// A server that routes to the servers listening for routes on `peers`, over mutual TLS
    /// with `cert`'s certificate and trusting `trust`'s CA, or without TLS when `cert` is
    /// `None`. Its log goes to [`NatsServer::log`]; its monitoring port is `monitor`.
    pub fn start_routed(cert: Option<&TestCa>, trust: &TestCa, peers: &[u16]) -> Self {
        loop {
            let store = tempfile::tempdir().unwrap();
            let route = free_port();
            let monitor = free_port();
            let tls = cert.map_or_else(String::new, |cert| {
                let file = |name: &str| cert.dir.path().join(name).display().to_string();
                format!(
                    "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", \
                     verify: true, timeout: 2 }}",
                    file("server.pem"),
                    file("server-key.pem"),
                    trust.ca().display(),
                )
            });
            let routes = peers
                .iter()
                .map(|port| format!("\"nats-route://127.0.0.1:{port}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let config = format!(
                "cluster {{\n  name: routed\n  listen: \"127.0.0.1:{route}\"\n  \
                 routes: [{routes}]\n  {tls}\n}}\n"
            );
            let file = store.path().join("nats.conf");
            std::fs::write(&file, config).unwrap();
            let log = store.path().join("nats.log");
            let args = vec![
                "-c".into(),
                file.display().to_string(),
                "-m".into(),
                monitor.to_string(),
                "-l".into(),
                log.display().to_string(),
            ];
            let mut server = Self::new(free_port(), args);
            server._store = Some(store);
            server.route = route;
            server.monitor = monitor;
            if server.run().is_ok() {
                return server;
            }
        }
    }

    /// What the server logged so far (servers started with [`NatsServer::start_routed`]).
    pub fn log(&self) -> String {
        let dir = self._store.as_ref().expect("a server with a directory");
        std::fs::read_to_string(dir.path().join("nats.log")).unwrap_or_default()
    }

    /// `n` servers routed into one NATS cluster, with JetStream.
    pub fn start_cluster(n: usize) -> Vec<Self> {
        loop {
            let mut servers = Self::try_cluster(n);
            if servers.iter_mut().all(|server| server.run().is_ok()) {
                return servers;
            }
        }
    }

    fn try_cluster(n: usize) -> Vec<Self> {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let routes = ports
            .iter()
            .map(|(_, route)| format!("nats://127.0.0.1:{route}"))
            .collect::<Vec<_>>()
            .join(",");
        // A cluster of its own: a route that reaches another test's cluster is refused.
        let cluster = format!("tandem-test-{}-{}", std::process::id(), ports[0].1);
        let servers: Vec<Self> = ports
            .iter()
            .map(|(port, route)| {
                let store = tempfile::tempdir().unwrap();
                let dir = store.path().to_str().unwrap().to_owned();
                let mut server = Self::new(
                    *port,
                    vec![
                        "-js".into(),
                        "-sd".into(),
                        dir,
                        "--cluster_name".into(),
                        cluster.clone(),
                        "--cluster".into(),
                        format!("nats://127.0.0.1:{route}"),
                        "--routes".into(),
                        routes.clone(),
                    ],
                );
                server._store = Some(store);
                server
            })
            .collect();
        servers
    }

    /// A server not yet started, named uniquely among all servers of this test binary.
    fn new(port: u16, extra: Vec<String>) -> Self {
        static SERVERS: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "tandem-test-{}-{}",
            std::process::id(),
            SERVERS.fetch_add(1, Ordering::Relaxed)
        );
        let mut args = vec![
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
            "--name".to_owned(),
            name.clone(),
        ];
        args.extend(extra);
        Self {
            port,
            name,
            route: 0,
            monitor: 0,
            args,
            child: None,
            _store: None,
        }
    }

    /// Starts the process and waits until its port answers with its name; `Err` when the
    /// process exited first (its port was taken).
    fn run(&mut self) -> Result<(), ()> {
        let child = Command::new("nats-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on PATH (scripts/test installs it)");
        self.child = Some(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = self.child.as_mut() {
                if child.try_wait().unwrap().is_some() {
                    self.child = None;
                    return Err(());
                }
            }
            if answers_as(&addr, &self.name) {
                return Ok(());
            }
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
        self.run().expect("nats-server restarts on its port");
    }
}

/// Whether the NATS server at `addr` greets with an `INFO` naming `name`.
fn answers_as(addr: &SocketAddr, name: &str) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(addr, Duration::from_millis(100)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut info = String::new();
    if BufReader::new(stream).read_line(&mut info).is_err() {
        return false;
    }
    info.contains(&format!("\"server_name\":\"{name}\""))
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
