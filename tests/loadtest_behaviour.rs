//! `tandem loadtest` with signaling traffic, users who leave or reconnect at the end of a
//! chat, and settings read from a `--scenario` file, against an in-process node: the node
//! keeps every promise, so the generator's checks find nothing, and the file's settings apply
//! except where a flag says otherwise.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{generous_server, loadtest_args, run_loadtest};
use tandem_loadtest::{LoadtestArgs, LoadtestError, ScenarioError};

fn parse(flags: &[&str]) -> LoadtestArgs {
    loadtest_args(std::iter::once("loadtest").chain(flags.iter().copied()))
}

/// A file in the temporary directory, removed when dropped.
struct ScratchFile(PathBuf);

impl ScratchFile {
    fn with(name: &str, contents: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("tandem-loadtest-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[actix_rt::test]
async fn users_who_signal_leave_and_reconnect_break_no_promise() {
    let server = generous_server();
    let target = format!("ws://{}/ws", server.addr);
    let args = parse(&[
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
        "--signals-per-chat",
        "4",
        "--leave-share",
        "0.2",
        "--reconnect-share",
        "0.2",
        "--seed",
        "5",
        "--quiet",
    ]);

    let report = run_loadtest(&args)
        .await
        .expect("the load test could not run");

    assert_eq!(report.violations, 0, "{report}");
    assert_eq!(report.connection_failures, 0, "{report}");
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.signals_sent > 0, "{report}");
    assert!(report.signal_latency_ms.count > 0, "{report}");
    assert_eq!(
        report.signal_latency_ms.count, report.signals_received,
        "{report}"
    );
    assert!(report.leaves > 0 && report.reconnects > 0, "{report}");
    assert!(report.skips > 0 && report.msgs_received > 0, "{report}");
    assert_eq!(report.violations_by_kind["client_id_not_kept"], 0);
    let json = serde_json::to_value(&report).unwrap();
    for figure in ["p50", "p99", "max"] {
        assert!(json["signal_latency_ms"][figure].is_number(), "{json:#}");
    }
    assert!(report.to_string().contains("signal "), "{report}");
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_scenario_file_sets_the_run_and_flags_win_over_it() {
    let server = generous_server();
    let target = format!("ws://{}/ws", server.addr);
    let scenario = ScratchFile::with(
        "scenario.json",
        r#"{"clients": 6, "duration": "5s", "ramp": "0.1s", "dwell": "50ms..150ms",
            "msgs_per_chat": 1, "signals_per_chat": 2, "langs": "en"}"#,
    );
    let args = parse(&[
        "--target",
        &target,
        "--scenario",
        scenario.path(),
        "--duration",
        "1s",
        "--quiet",
    ]);

    let report = run_loadtest(&args)
        .await
        .expect("the load test could not run");

    assert_eq!(report.clients, 6, "from the file: {report}");
    assert_eq!(report.duration_secs, 1.0, "the flag wins: {report}");
    assert!(report.signals_received > 0, "{report}");
    assert_eq!(report.violations, 0, "{report}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_scenario_with_an_unknown_key_is_refused_before_the_run() {
    let scenario = ScratchFile::with("unknown.json", r#"{"clients": 6, "clinets": 6}"#);
    // Nobody listens there: the run must stop before it connects anyone.
    let args = parse(&[
        "--target",
        "ws://127.0.0.1:9/ws",
        "--scenario",
        scenario.path(),
    ]);
    match run_loadtest(&args).await {
        Err(LoadtestError::Scenario(ScenarioError::UnknownKey { key, .. })) => {
            assert_eq!(key, "clinets")
        }
        other => panic!("expected an unknown-key error, got {other:?}"),
    }

    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(["loadtest", "--quiet", "--target", "ws://127.0.0.1:9/ws"])
            .args(["--scenario", scenario.path()])
            .output(),
    )
    .await
    .expect("the binary finishes")
    .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown key `clinets`"), "{stderr}");
}

#[test]
fn a_malformed_scenario_is_refused() {
    let scenario = ScratchFile::with("malformed.json", r#"{"clients": 6,"#);
    let args = parse(&["--scenario", scenario.path()]);
    let err = args.with_scenario().unwrap_err();
    assert!(matches!(err, ScenarioError::Malformed { .. }), "{err}");
}
