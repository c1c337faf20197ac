//! `tandem loadtest` with user profiles (mode, language, interests, countries, filters)
//! against an in-process node that trusts the country header: the node honours every
//! preference, so the generator's checks find nothing, and some chats are made on shared
//! interests.

mod common;

use std::time::Duration;

use common::{generous_args, loadtest_args, run_loadtest, start_server_with};
use tandem_loadtest::LoadtestArgs;

/// A node that takes each user's country from `X-Country`, with rate limits that do not get
/// in the way of fast simulated users.
fn generous_server_trusting_x_country() -> tandem_server::RunningServer {
    let mut args = generous_args();
    args.country_header = Some("X-Country".into());
    start_server_with(args)
}

#[actix_rt::test]
async fn users_with_profiles_are_paired_as_their_preferences_say() {
    let server = generous_server_trusting_x_country();
    let target = format!("ws://{}/ws", server.addr);
    let args = loadtest_args([
        "loadtest",
        "--target",
        &target,
        "--clients",
        "80",
        "--duration",
        "3s",
        "--ramp",
        "0.5s",
        "--dwell",
        "100ms..400ms",
        "--msgs-per-chat",
        "2",
        "--seed",
        "11",
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

    let report = run_loadtest(&args)
        .await
        .expect("the load test could not run");

    assert_eq!(report.violations, 0, "{report}");
    assert_eq!(report.errors, 0, "{report}");
    assert_eq!(report.connection_failures, 0, "{report}");
    assert!(report.matches > 0, "{report}");
    assert!(report.msgs_received > 0, "{report}");
    assert!(report.matches_with_common_interests > 0, "{report}");
    for kind in [
        "filter_violated",
        "partition_violated",
        "common_interests_wrong",
    ] {
        assert_eq!(report.violations_by_kind.get(kind), Some(&0), "{report}");
    }
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn without_a_trusted_country_header_filtered_users_are_never_paired() {
    // Without `--country-header` every user is `ZZ`, which no filter accepts: users that all
    // have a filter find nobody (the counterpart of the test below).
    let server = start_server_with(generous_args());
    let args = LoadtestArgs {
        targets: vec![format!("ws://{}/ws", server.addr)],
        clients: 20,
        duration: Duration::from_millis(1500),
        ramp: Duration::from_millis(100),
        quiet: true,
        seed: Some(5),
        ..loadtest_args(["loadtest", "--countries", "2", "--filter-share", "1"])
    };

    let report = run_loadtest(&args)
        .await
        .expect("the load test could not run");

    assert_eq!(report.violations, 0, "{report}");
    assert_eq!(report.connection_failures, 0, "{report}");
    assert_eq!(report.matches, 0, "{report}");
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn the_country_header_reaches_the_node() {
    // Every user has a filter: were its country not read from `X-Country`, it would be `ZZ`
    // and no filter would accept it, so no chat at all would be made.
    let server = generous_server_trusting_x_country();
    let args = LoadtestArgs {
        targets: vec![format!("ws://{}/ws", server.addr)],
        clients: 20,
        duration: Duration::from_millis(1500),
        ramp: Duration::from_millis(100),
        quiet: true,
        seed: Some(5),
        ..loadtest_args(["loadtest", "--countries", "2", "--filter-share", "1"])
    };

    let report = run_loadtest(&args)
        .await
        .expect("the load test could not run");

    assert_eq!(report.violations, 0, "{report}");
    assert!(report.matches > 0, "{report}");
    server.shutdown().await.unwrap();
}
