//! A node that stalls (SIGSTOP for eight seconds, as a long GC-less pause, a stolen CPU or
//! a frozen VM would) must not punish users who sent at a legal pace meanwhile: their
//! backlog arrives at once when it resumes, and every line is relayed, none refused.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{http_get, Client, STEP};
use tandem_proto::ServerMsg;

/// Sends SIGSTOP or SIGCONT to a process.
fn signal(pid: u32, which: &str) {
    let sent = std::process::Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {which} {pid}");
}

#[actix_rt::test]
async fn lines_sent_at_a_legal_pace_through_a_stall_of_the_node_are_all_relayed() {
    let port = common::nats::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut node = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(common::data_dir())
        // The heartbeat must not be what ends the test's users.
        .args([
            "--heartbeat-timeout",
            "60s",
            "--shards",
            "1",
            "--workers",
            "1",
            "--challenge",
            "off",
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the tandem binary");
    let deadline = tokio::time::Instant::now() + 3 * STEP;
    while tokio::net::TcpStream::connect(addr).await.is_err()
        || http_get(addr, "/healthz").await.0 != 200
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = node.id().expect("running");
    let mut sender = Client::connect(addr).await;
    let mut receiver = Client::connect(addr).await;
    sender.join().await;
    receiver.join().await;
    let chat = sender.matched().await.chat;
    assert_eq!(receiver.matched().await.chat, chat);

    // Nine lines a second (the limit is ten) for twelve seconds; the node is stopped for
    // eight of them.
    let every = Duration::from_secs(1) / 9;
    let mut pace = tokio::time::interval(every);
    let total = 12 * 9;
    for n in 0..total {
        pace.tick().await;
        if n == 2 * 9 {
            signal(pid, "-STOP");
        }
        if n == 10 * 9 {
            signal(pid, "-CONT");
        }
        sender.say(chat, &format!("line {n}")).await;
    }
    let mut heard = 0;
    while heard < total {
        match receiver.recv().await {
            ServerMsg::Msg { text, .. } => {
                assert_eq!(text, format!("line {heard}"), "in order, none lost");
                heard += 1;
            }
            other => panic!("after {heard} lines: {other:?}"),
        }
    }
    assert!(
        sender.drain().await.is_empty(),
        "the sender was told nothing: no rate_limited, no close"
    );
    node.kill().await.unwrap();
}
