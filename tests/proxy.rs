//! The reverse proxy of docs/deploy.md: the very file `cluster/nginx/tandem.conf`, its
//! ports, upstream and certificate paths put to a test's, run by a real nginx (Debian's
//! package, which scripts/test installs) that terminates TLS with a certificate of a CA made
//! for the test, in front of a node started with `--client-ip-header X-Forwarded-For` and
//! `--behind-https`. Clients come from addresses of their own on loopback, so what the node
//! takes for their address is observable through its per-address cap.

mod common;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::nats::free_port;
use common::tls::{https_get, wss_connect, TestCa};
use common::{generous_args, http_get_with, start_server_with};
use tandem_proto::ServerMsg;
use tandem_server::config::ServeArgs;

/// The proxy configuration that docs/deploy.md shows.
const SITE: &str = include_str!("../cluster/nginx/tandem.conf");

/// `nginx` on PATH, else where Debian puts it (`/usr/sbin`, not on every user's PATH).
fn nginx_path() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("nginx"))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
        .expect("nginx: `apt-get install nginx` (scripts/test does it)")
}

/// `SITE` with each `(from, to)` replaced; each `from` must be there exactly once, so that
/// a change to the file that the test no longer matches fails here.
fn substituted(replacements: &[(&str, String)]) -> String {
    let mut site = SITE.to_owned();
    for (from, to) in replacements {
        assert_eq!(
            site.matches(from).count(),
            1,
            "cluster/nginx/tandem.conf should hold `{from}` once"
        );
        site = site.replace(from, to);
    }
    site
}

/// An nginx in the foreground running `SITE`, killed and reaped on drop.
struct Nginx {
    /// Where it serves https.
    https: SocketAddr,
    /// Where it serves plain http (the redirect).
    http: SocketAddr,
    child: Child,
    /// Its configuration, pid file, error log and temporary files.
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx with the site's TLS from `ca` in front of the node at `upstream`, on
    /// free loopback ports (again on others if one was taken meanwhile).
    fn start(ca: &TestCa, upstream: SocketAddr) -> Nginx {
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let https: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let site = substituted(&[
                ("server 127.0.0.1:8080;", format!("server {upstream};")),
                ("listen 80;", format!("listen {http};")),
                ("listen 443 ssl;", format!("listen {https} ssl;")),
                (
                    "/etc/letsencrypt/live/chat.example.org/fullchain.pem",
                    ca.cert().display().to_string(),
                ),
                (
                    "/etc/letsencrypt/live/chat.example.org/privkey.pem",
                    ca.key().display().to_string(),
                ),
            ]);
            std::fs::write(dir.path().join("tandem.conf"), site).unwrap();
            let at = |name: &str| dir.path().join(name).display().to_string();
            // Run by root (as on this project's test machines), the workers stay root so that
            // they can reach the temporary directory; otherwise nginx runs as its caller.
            let user = if running_as_root() { "user root;" } else { "" };
            let main = format!(
                "{user}\nworker_processes 1;\npid {pid};\nerror_log {log} info;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n    access_log off;\n    client_body_temp_path {tmp}/body;\n    \
                 proxy_temp_path {tmp}/proxy;\n    fastcgi_temp_path {tmp}/fastcgi;\n    \
                 uwsgi_temp_path {tmp}/uwsgi;\n    scgi_temp_path {tmp}/scgi;\n    \
                 include {site};\n}}\n",
                pid = at("nginx.pid"),
                log = at("error.log"),
                tmp = dir.path().display(),
                site = at("tandem.conf"),
            );
            std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
            let child = Command::new(nginx_path())
                .args([
                    "-e",
                    &at("error.log"),
                    "-p",
                    &at(""),
                    "-c",
                    &at("nginx.conf"),
                ])
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("could not start nginx");
            let mut nginx = Nginx {
                https,
                http,
                child,
                dir,
            };
            if nginx.listening() {
                return nginx;
            }
        }
        panic!("nginx did not start three times over");
    }

    /// Whether both ports accept before nginx exits (a port taken meanwhile) or 10 s pass.
    fn listening(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.child.try_wait().unwrap().is_some() {
                eprintln!("nginx exited:\n{}", self.log());
                return false;
            }
            let accepts = |addr| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok();
            if accepts(self.https) && accepts(self.http) {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this process runs as root (`/proc/self` belongs to the effective user).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A node as docs/deploy.md starts one behind the proxy, with two connections per address
/// and loopback counted, so that the address it takes for each client is observable.
fn node_args() -> ServeArgs {
    let mut args = generous_args();
    args.client_ip_header = Some("X-Forwarded-For".into());
    args.behind_https = true;
    args.max_conns_per_ip = 2;
    args.limit_loopback = true;
    args
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

#[actix_rt::test]
async fn through_nginx_two_users_chat_and_the_node_counts_each_by_the_address_nginx_saw() {
    let ca = TestCa::new();
    let node = start_server_with(node_args());
    let nginx = Nginx::start(&ca, node.addr);
    let at = nginx.https;

    // Through the proxy, over TLS and WebSocket: paired, and a line each way.
    let mut alice = wss_connect(at, &ca, ip("127.0.0.2"), &[]).await.unwrap();
    let mut bob = wss_connect(at, &ca, ip("127.0.0.3"), &[]).await.unwrap();
    alice.join().await;
    bob.join().await;
    let chat = alice.matched().await.chat;
    assert_eq!(bob.matched().await.chat, chat);
    alice.say(chat, "through the proxy").await;
    match bob.recv().await {
        ServerMsg::Msg { text, .. } => assert_eq!(text, "through the proxy"),
        other => panic!("expected alice's line, got {other:?}"),
    }
    bob.say(chat, "and back").await;
    match alice.recv().await {
        ServerMsg::Msg { text, .. } => assert_eq!(text, "and back"),
        other => panic!("expected bob's line, got {other:?}"),
    }

    // Every connection reaches the node from nginx (127.0.0.1); the node counts each by the
    // last X-Forwarded-For entry, the address that connected to nginx, and ignores what a
    // client writes there itself. A second from 127.0.0.2 fills its cap of two...
    let spoof = [("x-forwarded-for", "198.51.100.7")];
    let second = wss_connect(at, &ca, ip("127.0.0.2"), &spoof).await;
    assert!(second.is_ok(), "127.0.0.2's second connection");
    // ...a third is refused whatever it claims...
    let (status, body) = wss_connect(at, &ca, ip("127.0.0.2"), &spoof)
        .await
        .err()
        .expect("127.0.0.2's third connection is over its cap");
    assert_eq!(status, 429, "{body}");
    // ...while other addresses still come in (counted by nginx's own address, alice, bob
    // and the second would have filled one cap of two long before).
    assert!(wss_connect(at, &ca, ip("127.0.0.4"), &[]).await.is_ok());

    // The page over the proxy is https-only: HSTS, a Secure cookie at the handshake.
    let (status, head, _) = https_get(at, &ca, "/").await;
    assert_eq!(status, 200);
    assert!(
        head.contains("strict-transport-security: max-age=31536000"),
        "{head}"
    );
    assert_eq!(https_get(at, &ca, "/readyz").await.0, 200);
    // Plain http is sent to https.
    let (status, head, _) = http_get_with(nginx.http, "/", &[]).await;
    assert_eq!(status, 301, "{head}");
    assert!(head.contains("location: https://"), "{head}");

    drop((alice, bob, second));
    drop(nginx);
    node.shutdown().await.unwrap();
}

/// The seconds of an nginx duration directive (`75s`, `2m`, `90`) in `site`.
fn directive_secs(site: &str, name: &str) -> u64 {
    let value = site
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix(name)?.strip_suffix(';'))
        .unwrap_or_else(|| panic!("no {name} in cluster/nginx/tandem.conf"))
        .trim();
    let (digits, unit) = value.split_at(
        value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    );
    let n: u64 = digits.parse().unwrap();
    match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        other => panic!("{name} {value}: unit {other}"),
    }
}

#[test]
fn the_proxy_keeps_idle_chats_open_longer_than_the_heartbeat_takes() {
    let defaults = ServeArgs::default();
    let heartbeat = defaults.heartbeat_timeout.max(defaults.heartbeat_interval);
    for name in ["proxy_read_timeout", "proxy_send_timeout"] {
        let secs = directive_secs(SITE, name);
        assert!(
            Duration::from_secs(secs) > heartbeat,
            "{name} {secs}s must outlast the heartbeat ({heartbeat:?}): nginx would cut idle chats"
        );
    }
    for needed in [
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    ] {
        assert!(
            SITE.contains(needed),
            "cluster/nginx/tandem.conf lacks {needed}"
        );
    }
}

#[test]
fn docs_deploy_shows_the_configuration_this_test_runs() {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/deploy.md"))
            .unwrap();
    let block = docs
        .split("```nginx\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("an ```nginx block in docs/deploy.md");
    assert_eq!(
        block, SITE,
        "docs/deploy.md's nginx block must be cluster/nginx/tandem.conf, verbatim"
    );
}
