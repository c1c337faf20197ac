//! `tandem loadtest` against an in-process node: the generator pairs, chats and skips for
//! real, breaks none of the protocol's promises, and writes a complete JSON report.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{generous_server, loadtest_args, run_loadtest};
use tandem_loadtest::{LoadtestArgs, Report};

fn scratch_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tandem-loadtest-{}-{name}", std::process::id()))
}

#[actix_rt::test]
async fn fifty_users_chat_and_skip_without_breaking_a_promise() {
    let server = generous_server();
    let json = scratch_file("fifty.json");
    let html = scratch_file("fifty.html");
    let target = format!("ws://{}/ws", server.addr);
    let args = loadtest_args([
        "loadtest",
        "--target",
        &target,
        "--clients",
        "50",
        "--duration",
        "3s",
        "--ramp",
        "0.5s",
        "--dwell",
        "100ms..400ms",
        "--msgs-per-chat",
        "3",
        "--seed",
        "7",
        "--quiet",
        "--assert",
        "violations=0,matches>0,skips>0",
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);

    let report = run_loadtest(&args)
        .await
        .expect("the load test could not run");

    assert_eq!(report.violations, 0, "{report}");
    assert_eq!(report.connection_failures, 0, "{report}");
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.matches > 0, "{report}");
    assert!(report.skips > 0, "{report}");
    assert!(report.msgs_received > 0, "{report}");
    assert!(report.passed(), "{report}");
    assert_eq!(report.solve_latency_ms.count, 0, "no challenge asked");

    let text = std::fs::read_to_string(&json).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed["violations"].as_u64(), Some(0));
    assert!(parsed["skips_per_sec"].as_f64().unwrap() > 0.0);
    assert!(parsed["matches_per_sec"].as_f64().unwrap() > 0.0);
    for latency in ["match_latency_ms", "msg_latency_ms", "connect_latency_ms"] {
        for figure in ["p50", "p90", "p99", "p999", "max"] {
            assert!(
                parsed[latency][figure].is_number(),
                "{latency}.{figure} missing in {text}"
            );
        }
    }
    for figure in [
        "errors",
        "errors_by_code",
        "connection_failures",
        "violations_by_kind",
        "msgs_per_sec",
        "throughput",
    ] {
        assert!(!parsed[figure].is_null(), "{figure} missing in {text}");
    }
    let back: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (back.matches, back.skips, back.msgs_received),
        (report.matches, report.skips, report.msgs_received)
    );

    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("99.9%"));
    assert!(!page.contains("<script"));

    let _ = std::fs::remove_file(json);
    let _ = std::fs::remove_file(html);
    server.shutdown().await.unwrap();
}

/// A node that asks the proof-of-work challenge, small (the tests run unoptimised).
fn challenging_server() -> tandem_server::RunningServer {
    let mut args = common::generous_args();
    args.challenge = true;
    args.challenge_difficulty = 20;
    args.challenge_cost = 10;
    common::start_server_with(args)
}

#[actix_rt::test]
async fn against_a_node_that_asks_challenges_users_solve_them_and_the_report_says_how_fast() {
    let server = challenging_server();
    let mut args = LoadtestArgs {
        targets: vec![format!("ws://{}/ws", server.addr)],
        clients: 20,
        duration: Duration::from_secs(2),
        ramp: Duration::from_millis(200),
        quiet: true,
        seed: Some(3),
        // Some chats end with a new connection, which brings a new challenge.
        reconnect_share: 0.3,
        ..LoadtestArgs::default()
    };
    args.dwell = tandem_loadtest::DwellRange {
        min: Duration::from_millis(50),
        max: Duration::from_millis(150),
    };

    let report = run_loadtest(&args)
        .await
        .expect("the load test could not run");

    assert_eq!(report.violations, 0, "{report}");
    assert_eq!(report.connection_failures, 0, "{report}");
    assert_eq!(report.errors, 0, "no join was refused: {report}");
    assert!(report.matches > 0 && report.reconnects > 0, "{report}");
    let solved = report.solve_latency_ms.count;
    assert_eq!(
        solved,
        report.connected + report.reconnects,
        "one challenge per connection: {report}"
    );
    assert!(report.solve_latency_ms.max > 0.0, "{report}");
    assert!(report.to_string().contains("solve"), "{report}");
    // Every connection that joined passed; one that solved at the very end of the run may
    // have closed before its join was through.
    let (_, metrics) = common::http_get(server.addr, "/metrics").await;
    let passed: u64 = metrics
        .lines()
        .find(|l| l.starts_with("tandem_challenges_passed_total{"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap();
    assert!(
        (report.connected..=solved).contains(&passed),
        "{passed} passed, {solved} solved: {report}"
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn bincode_users_are_measured_alike() {
    // Challenges on: welcome's challenge and join's proof travel in bincode too.
    let server = challenging_server();
    let mut args = LoadtestArgs {
        targets: vec![format!("ws://{}/ws", server.addr)],
        clients: 10,
        duration: Duration::from_secs(1),
        ramp: Duration::from_millis(100),
        quiet: true,
        seed: Some(1),
        ..LoadtestArgs::default()
    };
    args.codec = tandem_loadtest::CodecArg::Bincode;
    args.dwell = tandem_loadtest::DwellRange {
        min: Duration::from_millis(50),
        max: Duration::from_millis(150),
    };

    let report = run_loadtest(&args)
        .await
        .expect("the load test could not run");

    assert_eq!(report.codec, "bincode");
    assert!(report.solve_latency_ms.count >= 10, "{report}");
    assert_eq!(report.violations, 0, "{report}");
    assert_eq!(report.connection_failures, 0, "{report}");
    assert!(report.matches > 0 && report.msgs_received > 0, "{report}");
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_failed_assertion_fails_the_run() {
    let server = generous_server();
    let target = format!("ws://{}/ws", server.addr);
    let args = loadtest_args([
        "loadtest",
        "--target",
        &target,
        "--clients",
        "4",
        "--duration",
        "500ms",
        "--ramp",
        "0s",
        "--dwell",
        "100ms",
        "--quiet",
        "--assert",
        "match_p99<0ms,violations=0",
    ]);

    let report = run_loadtest(&args)
        .await
        .expect("the load test could not run");

    assert_eq!(report.failed_assertions.len(), 1, "{report}");
    assert!(report.failed_assertions[0].starts_with("match_p99<0ms"));
    assert!(!report.passed());
    server.shutdown().await.unwrap();
}
