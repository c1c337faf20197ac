//! `tandem loadtest` across processes and addresses: `--workers` children whose results the
//! parent merges into one report, `--source-ips` binding each user to a loopback address, and
//! `--server-pid` sampling a server's memory. The node runs in this test process; the
//! generator is the real `tandem` binary, whose workers are that binary run again.

mod common;

use std::time::Duration;

use common::{generous_args, generous_server, start_server_with};
use tandem_loadtest::{run, LoadtestArgs};

/// Longest a whole binary run may take before the test fails instead of hanging.
const RUN_BOUND: Duration = Duration::from_secs(60);

/// Runs `tandem loadtest` with these flags; returns its exit status, stdout, stderr and its
/// JSON report.
async fn loadtest_binary(
    name: &str,
    flags: &[String],
) -> (std::process::ExitStatus, String, String, serde_json::Value) {
    let json =
        std::env::temp_dir().join(format!("tandem-workers-{}-{name}.json", std::process::id()));
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("loadtest")
        .args(flags)
        .arg("--json")
        .arg(&json)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RUN_BOUND, child)
        .await
        .expect("the load test finishes")
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report = std::fs::read(&json)
        .map(|bytes| serde_json::from_slice(&bytes).expect("the report is JSON"))
        .unwrap_or(serde_json::Value::Null);
    let _ = std::fs::remove_file(&json);
    (output.status, stdout, stderr, report)
}

fn flags(list: &[&str]) -> Vec<String> {
    list.iter().map(|flag| (*flag).to_owned()).collect()
}

#[actix_rt::test]
async fn two_workers_report_one_run_whose_counters_are_the_sum_of_theirs() {
    let server = generous_server();
    let target = format!("ws://{}/ws", server.addr);
    let pid = std::process::id().to_string();
    let args = flags(&[
        "--target",
        &target,
        "--clients",
        "40",
        "--duration",
        "3s",
        "--ramp",
        "0.5s",
        "--dwell",
        "100ms..400ms",
        "--msgs-per-chat",
        "2",
        "--workers",
        "2",
        "--server-pid",
        &pid,
        "--assert",
        "violations=0,matches>0",
    ]);

    let (status, stdout, stderr, report) = loadtest_binary("two", &args).await;

    assert!(status.success(), "{stdout}\n{stderr}");
    assert_eq!(report["clients"], 40, "{report:#}");
    assert_eq!(report["connected"], 40, "{report:#}");
    assert_eq!(report["connection_failures"], 0, "{report:#}");
    assert_eq!(report["violations"], 0, "{report:#}");
    assert!(report["matches"].as_u64().unwrap() > 0, "{report:#}");
    // Both sides of every chat were found, whichever workers played them.
    assert_eq!(
        report["matched_received"].as_u64(),
        report["matches"].as_u64().map(|m| 2 * m),
        "{report:#}"
    );

    let workers = report["workers"].as_array().expect("per-worker totals");
    assert_eq!(workers.len(), 2, "{report:#}");
    for figure in [
        "connected",
        "joins",
        "skips",
        "matched_received",
        "msgs_sent",
        "msgs_received",
    ] {
        let parts: u64 = workers.iter().map(|w| w[figure].as_u64().unwrap()).sum();
        assert_eq!(Some(parts), report[figure].as_u64(), "{figure}: {report:#}");
    }
    for worker in workers {
        assert_eq!(worker["connected"], 20, "{report:#}");
    }
    let counted: u64 = report["match_latency_ms"]["count"].as_u64().unwrap();
    assert_eq!(Some(counted), report["matched_received"].as_u64());

    let rss = &report["server_rss_kib"][0];
    assert_eq!(rss["pid"].as_u64(), Some(u64::from(std::process::id())));
    assert!(rss["final"].as_u64().unwrap() > 0, "{report:#}");
    assert!(rss["peak"].as_u64() >= rss["final"].as_u64(), "{report:#}");
    assert!(report["server_rss_per_user_kib"].is_number(), "{report:#}");
    // The server runs in this process, which did work during the run.
    assert!(rss["cpu_ms"].as_u64().unwrap() > 0, "{report:#}");
    assert!(
        report["server_cpu_per_skip_us"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );
    assert!(stdout.contains("server pid"), "{stdout}");
    assert!(stdout.contains("server cpu per skip"), "{stdout}");
    assert!(stderr.contains("workers 2"), "no progress line: {stderr}");
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn failed_connections_of_every_worker_are_counted_and_fail_the_run() {
    // No node listens on the port of a listener that was closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("ws://127.0.0.1:{port}/ws");
    let args = flags(&[
        "--target",
        &target,
        "--clients",
        "6",
        "--duration",
        "500ms",
        "--ramp",
        "0s",
        "--workers",
        "3",
        "--quiet",
        "--assert",
        "connection_failures=0",
    ]);

    let (status, _, stderr, report) = loadtest_binary("unreachable", &args).await;

    assert!(!status.success(), "{stderr}");
    assert_eq!(report["connection_failures"], 6, "{report:#}");
    assert_eq!(report["connection_failures_by_kind"]["connect"], 6);
    assert_eq!(report["failed_assertions"].as_array().unwrap().len(), 1);
}

#[actix_rt::test]
async fn a_worker_that_cannot_write_its_results_fails_the_run_and_is_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["loadtest", "--quiet", "--workers", "2", "--clients", "2"])
        .args(["--duration", "200ms", "--ramp", "0s", "--target"])
        .arg(format!("ws://127.0.0.1:{port}/ws"))
        // The workers write their results under the temporary directory.
        .env("TMPDIR", "/nonexistent-tandem-test-dir")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RUN_BOUND, child)
        .await
        .expect("the load test finishes")
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("Error: worker "), "{stderr}");
    assert!(stderr.contains("nonexistent-tandem-test-dir"), "{stderr}");
}

#[actix_rt::test]
async fn a_missing_server_pid_is_refused_before_any_load() {
    let (status, _, stderr, report) = loadtest_binary(
        "missing-pid",
        &flags(&["--server-pid", "4294967294", "--clients", "2", "--quiet"]),
    )
    .await;
    assert!(!status.success());
    assert!(stderr.contains("no such process"), "{stderr}");
    assert!(report.is_null(), "no report is written");
}

#[actix_rt::test]
async fn the_worker_flags_are_hidden_from_help() {
    let (_, stdout, _, _) = loadtest_binary("help", &flags(&["--help"])).await;
    assert!(stdout.contains("--workers") && stdout.contains("--source-ips"));
    assert!(!stdout.contains("--worker-index"), "{stdout}");
}

#[actix_rt::test]
async fn users_bound_to_two_source_addresses_all_connect() {
    let server = generous_server();
    let args = LoadtestArgs {
        targets: vec![format!("ws://{}/ws", server.addr)],
        clients: 20,
        duration: Duration::from_secs(2),
        ramp: Duration::from_millis(200),
        source_ips: Some(tandem_loadtest::parse_source_ips("127.0.0.2-127.0.0.3").unwrap()),
        server_pids: vec![std::process::id()],
        quiet: true,
        seed: Some(3),
        ..LoadtestArgs::default()
    };

    let report = tokio::time::timeout(RUN_BOUND, run(&args))
        .await
        .expect("the load test finishes")
        .expect("the load test runs");

    assert_eq!(report.connected, 20, "{report}");
    assert_eq!(report.connection_failures, 0, "{report}");
    assert_eq!(report.violations, 0, "{report}");
    assert!(report.matches > 0, "{report}");
    let rss = &report.server_rss_kib[0];
    assert!(
        rss.start > 0 && rss.at_end > 0 && rss.peak >= rss.at_end,
        "{report}"
    );
    assert!(report.server_rss_per_user_kib.is_some(), "{report}");
    assert!(
        rss.cpu_ms > 0 && report.server_cpu_per_skip_us.is_some(),
        "{report}"
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn profiles_reach_every_worker_and_are_judged_over_both_sides() {
    let mut serve = generous_args();
    serve.country_header = Some("X-Country".into());
    let server = start_server_with(serve);
    let target = format!("ws://{}/ws", server.addr);
    let args = flags(&[
        "--target",
        &target,
        "--clients",
        "40",
        "--duration",
        "3s",
        "--ramp",
        "0.5s",
        "--dwell",
        "100ms..400ms",
        "--msgs-per-chat",
        "2",
        "--workers",
        "2",
        "--quiet",
        "--video-share",
        "0.3",
        "--langs",
        "en:0.7,de:0.3",
        "--interest-tags",
        "50",
        "--countries",
        "5",
        "--filter-share",
        "0.3",
    ]);

    let (status, stdout, stderr, report) = loadtest_binary("profiles", &args).await;

    assert!(status.success(), "{stdout}\n{stderr}");
    assert_eq!(report["violations"].as_u64(), Some(0), "{report:#}");
    assert!(report["matches"].as_u64().unwrap() > 0, "{report:#}");
    // Only users that got `--interest-tags` from the parent can share interests.
    let shared = report["matches_with_common_interests"].as_u64().unwrap();
    assert!(shared > 0, "{report:#}");
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_scenario_with_signals_leaves_and_reconnects_reaches_every_worker() {
    let server = generous_server();
    let target = format!("ws://{}/ws", server.addr);
    // The parent reads the file; its children get the settings as flags.
    let scenario = std::env::temp_dir().join(format!(
        "tandem-workers-{}-scenario.json",
        std::process::id()
    ));
    std::fs::write(
        &scenario,
        r#"{"clients": 30, "duration": "3s", "ramp": "0.5s", "dwell": "100ms..400ms",
            "msgs_per_chat": 1, "signals_per_chat": 3, "leave_share": 0.25,
            "reconnect_share": 0.25}"#,
    )
    .unwrap();
    let args = flags(&[
        "--target",
        &target,
        "--scenario",
        scenario.to_str().unwrap(),
        "--workers",
        "2",
        "--quiet",
    ]);

    let (status, stdout, stderr, report) = loadtest_binary("scenario", &args).await;
    let _ = std::fs::remove_file(&scenario);

    assert!(status.success(), "{stdout}\n{stderr}");
    assert_eq!(report["clients"], 30, "{report:#}");
    assert_eq!(report["workers"].as_array().map(Vec::len), Some(2));
    assert_eq!(report["violations"], 0, "{report:#}");
    assert_eq!(report["connection_failures"], 0, "{report:#}");
    let received = report["signals_received"].as_u64().unwrap();
    assert!(received > 0, "{report:#}");
    assert_eq!(
        report["signal_latency_ms"]["count"].as_u64(),
        Some(received)
    );
    assert!(report["leaves"].as_u64().unwrap() > 0, "{report:#}");
    assert!(report["reconnects"].as_u64().unwrap() > 0, "{report:#}");
    server.shutdown().await.unwrap();
}
