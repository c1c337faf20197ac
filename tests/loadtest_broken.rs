//! `tandem loadtest` against deliberately broken servers: a double that speaks the protocol
//! but pairs a user twice, delivers a line or a signal to the wrong user, or ignores every
//! preference (mode, language, country filter) and tells the two sides different shared
//! interests; none keeps a reconnecting user's `client_id`. The generator must see it, count
//! it, and fail the run with a non-zero exit code.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tandem_ids::{ChatId, SessionId};
use tandem_proto::{ClientMsg, Codec, Limits, Matched, PartnerInfo, ServerMsg, Welcome};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy, PartialEq)]
enum Bug {
    /// The first waiting user is paired again with every newcomer, never leaving the queue.
    PairsOneUserTwice,
    /// Every chat line goes to some user other than the partner.
    Misroutes,
    /// Chat lines reach the partner, but every signal goes to some other user.
    MisroutesSignals,
    /// Pairs whoever waits, whatever their mode, language or country filter, reports every
    /// partner from `ZZ`, and tells only the initiator that the two share `t0`.
    IgnoresPreferences,
}

#[derive(Default)]
struct World {
    outboxes: HashMap<u64, mpsc::UnboundedSender<ServerMsg>>,
    waiting: Vec<u64>,
    partner: HashMap<u64, (u64, ChatId)>,
}

/// Starts the broken double on an ephemeral port.
async fn broken_server(bug: Bug) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let world = Arc::new(Mutex::new(World::default()));
    tokio::spawn(async move {
        let mut next_id = 1;
        while let Ok((tcp, _)) = listener.accept().await {
            let id = next_id;
            next_id += 1;
            tokio::spawn(serve(tcp, id, bug, Arc::clone(&world)));
        }
    });
    addr
}

async fn serve(tcp: tokio::net::TcpStream, id: u64, bug: Bug, world: Arc<Mutex<World>>) {
    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<ServerMsg>();
    world.lock().unwrap().outboxes.insert(id, tx.clone());
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let tandem_proto::Frame::Text(text) = Codec::Json.encode(&msg) else {
                unreachable!()
            };
            if sink.send(Message::text(text)).await.is_err() {
                return;
            }
        }
    });
    let _ = tx.send(ServerMsg::Welcome(Welcome {
        session: SessionId(id),
        client_id: format!("c{id}"),
        ice_servers: Vec::new(),
        limits: Limits {
            max_frame_bytes: 65536,
            max_text_chars: 2000,
            joins_per_sec: 1000,
            msgs_per_sec: 1000,
            signals_per_sec: 1000,
            snapshot_interval_ms: 0,
        },
        proto: 1,
        node: "broken".into(),
        challenge: None,
    }));
    while let Some(Ok(frame)) = stream.next().await {
        let Message::Text(text) = frame else { continue };
        let Ok(msg) = Codec::Json.decode_text::<ClientMsg>(text.as_str()) else {
            continue;
        };
        let mut w = world.lock().unwrap();
        match msg {
            ClientMsg::Join(_) | ClientMsg::Next => {
                if let Some((partner, chat)) = w.partner.remove(&id) {
                    w.partner.remove(&partner);
                    let reason = tandem_proto::EndReason::PartnerSkipped;
                    if let Some(out) = w.outboxes.get(&partner) {
                        let _ = out.send(ServerMsg::Ended { chat, reason });
                    }
                    let _ = tx.send(ServerMsg::Ended {
                        chat,
                        reason: tandem_proto::EndReason::Skipped,
                    });
                }
                let _ = tx.send(ServerMsg::Waiting);
                let other = match bug {
                    Bug::PairsOneUserTwice => w.waiting.first().copied(),
                    Bug::Misroutes | Bug::MisroutesSignals | Bug::IgnoresPreferences => {
                        w.waiting.pop()
                    }
                };
                match other {
                    Some(other) if other != id => {
                        let chat = ChatId::random();
                        w.partner.insert(id, (other, chat));
                        w.partner.insert(other, (id, chat));
                        for (who, initiator) in [(id, true), (other, false)] {
                            if let Some(out) = w.outboxes.get(&who) {
                                let _ = out.send(ServerMsg::Matched(Matched {
                                    chat,
                                    initiator,
                                    common_interests: if bug == Bug::IgnoresPreferences && initiator
                                    {
                                        vec!["t0".to_owned()]
                                    } else {
                                        Vec::new()
                                    },
                                    partner: PartnerInfo {
                                        country: "ZZ".into(),
                                        college: None,
                                    },
                                    spy: None,
                                    ice_servers: Vec::new(),
                                }));
                            }
                        }
                    }
                    _ => w.waiting.push(id),
                }
            }
            ClientMsg::Msg { chat, text } => {
                let to = match (bug, w.partner.get(&id)) {
                    (Bug::Misroutes, _) => w
                        .outboxes
                        .keys()
                        .copied()
                        .find(|&k| k != id && w.partner.get(&id).map(|p| p.0) != Some(k)),
                    (_, Some((partner, _))) => Some(*partner),
                    _ => None,
                };
                if let Some(out) = to.and_then(|to| w.outboxes.get(&to)) {
                    let _ = out.send(ServerMsg::Msg { chat, text });
                }
            }
            ClientMsg::Signal { chat, data } => {
                let to = match (bug, w.partner.get(&id)) {
                    (Bug::MisroutesSignals, _) => w
                        .outboxes
                        .keys()
                        .copied()
                        .find(|&k| k != id && w.partner.get(&id).map(|p| p.0) != Some(k)),
                    (_, Some((partner, _))) => Some(*partner),
                    _ => None,
                };
                if let Some(out) = to.and_then(|to| w.outboxes.get(&to)) {
                    let _ = out.send(ServerMsg::Signal { chat, data });
                }
            }
            ClientMsg::Leave => {
                w.waiting.retain(|&u| u != id);
                let _ = tx.send(ServerMsg::Idle);
            }
            _ => {}
        }
    }
    world.lock().unwrap().outboxes.remove(&id);
}

/// Runs the real `tandem` binary against `addr`, with `extra` flags; returns its exit status
/// and its JSON report.
async fn loadtest_binary(
    addr: SocketAddr,
    name: &str,
    extra: &[&str],
) -> (std::process::ExitStatus, serde_json::Value) {
    let json =
        std::env::temp_dir().join(format!("tandem-broken-{}-{name}.json", std::process::id()));
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["loadtest", "--quiet", "--target"])
        .arg(format!("ws://{addr}/ws"))
        .args(["--clients", "12", "--duration", "2s", "--ramp", "0.2s"])
        .args([
            "--dwell",
            "50ms..150ms",
            "--msgs-per-chat",
            "2",
            "--step-timeout",
            "1s",
        ])
        .args(extra)
        .arg("--json")
        .arg(&json)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), child)
        .await
        .expect("the load test finishes")
        .expect("the binary runs");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("a report is written")).unwrap();
    let _ = std::fs::remove_file(&json);
    (output.status, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_pairs_one_user_twice_fails_the_run() {
    let addr = broken_server(Bug::PairsOneUserTwice).await;
    let (status, report) = loadtest_binary(addr, "twice", &[]).await;
    assert!(!status.success(), "exit code must be non-zero");
    assert!(report["violations"].as_u64().unwrap() > 0, "{report:#}");
    let kinds = &report["violations_by_kind"];
    let twice = kinds["matched_while_in_chat"].as_u64().unwrap_or(0)
        + kinds["chat_overfull"].as_u64().unwrap_or(0);
    assert!(twice > 0, "{kinds:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_misroutes_lines_fails_the_run() {
    let addr = broken_server(Bug::Misroutes).await;
    let (status, report) = loadtest_binary(addr, "misroute", &[]).await;
    assert!(!status.success(), "exit code must be non-zero");
    let kinds = &report["violations_by_kind"];
    let misrouted = kinds["msg_wrong_sender"].as_u64().unwrap_or(0)
        + kinds["msg_wrong_chat"].as_u64().unwrap_or(0);
    assert!(misrouted > 0, "{kinds:#}");
}

/// A violation count from the report's `violations_by_kind`.
fn violations(report: &serde_json::Value, kind: &str) -> u64 {
    report["violations_by_kind"][kind]
        .as_u64()
        .unwrap_or_else(|| panic!("{kind} missing in {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_country_filters_fails_the_run() {
    let addr = broken_server(Bug::IgnoresPreferences).await;
    let flags = ["--countries", "3", "--filter-share", "1.0"];
    let (status, report) = loadtest_binary(addr, "filters", &flags).await;
    assert!(!status.success(), "exit code must be non-zero");
    // Every user has a filter of real codes and every partner is reported as `ZZ`: each
    // side of each chat sees its filter broken.
    let matched = report["matched_received"].as_u64().unwrap();
    assert!(matched > 0, "{report:#}");
    assert_eq!(
        violations(&report, "filter_violated"),
        matched,
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_mixes_modes_and_languages_fails_the_run() {
    let addr = broken_server(Bug::IgnoresPreferences).await;
    let flags = ["--video-share", "0.5", "--langs", "en:0.5,de:0.5"];
    let (status, report) = loadtest_binary(addr, "partitions", &flags).await;
    assert!(!status.success(), "exit code must be non-zero");
    assert!(violations(&report, "partition_violated") > 0, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_shared_interests_on_the_two_sides_are_seen_across_workers() {
    let addr = broken_server(Bug::IgnoresPreferences).await;
    // Two worker processes: many chats have their sides in different processes, so only
    // the parent, over the union, can compare the two lists.
    let flags = ["--interest-tags", "5", "--workers", "2"];
    let (status, report) = loadtest_binary(addr, "interests", &flags).await;
    assert!(!status.success(), "exit code must be non-zero");
    // Each chat: the sides' lists differ (one violation), and the initiator, told `t0`, may
    // not have it (a second).
    let chats = report["matches"].as_u64().unwrap();
    let wrong = violations(&report, "common_interests_wrong");
    assert!(chats > 0 && wrong >= chats, "{report:#}");
    assert_eq!(violations(&report, "filter_violated"), 0, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_misroutes_signals_fails_the_run() {
    let addr = broken_server(Bug::MisroutesSignals).await;
    let flags = ["--signals-per-chat", "2"];
    let (status, report) = loadtest_binary(addr, "signals", &flags).await;
    assert!(!status.success(), "exit code must be non-zero");
    assert!(report["msgs_received"].as_u64().unwrap() > 0, "{report:#}");
    assert!(
        report["signals_received"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert!(
        report["signal_latency_ms"]["count"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    // Lines are delivered right, so what is misrouted is a signal.
    let misrouted = violations(&report, "msg_wrong_sender") + violations(&report, "msg_wrong_chat");
    assert!(misrouted > 0, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_forgets_client_ids_fails_the_run() {
    // Every double hands out a new `client_id` on each connection, `?client_id=` or not.
    let addr = broken_server(Bug::MisroutesSignals).await;
    let flags = ["--reconnect-share", "0.5"];
    let (status, report) = loadtest_binary(addr, "client-id", &flags).await;
    assert!(!status.success(), "exit code must be non-zero");
    let reconnects = report["reconnects"].as_u64().unwrap();
    assert!(reconnects > 0, "{report:#}");
    assert_eq!(
        violations(&report, "client_id_not_kept"),
        reconnects,
        "{report:#}"
    );
}
