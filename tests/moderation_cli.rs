//! `tandem moderation` against a real node: the node runs in this test process with a named
//! moderator's token, the command is the real `tandem` binary, and what it did is checked
//! through its own output and the node's JSON (no mocks). Every run is bounded, so a hang
//! fails the test.

mod common;

use std::process::Output;
use std::time::Duration;

use common::{pair, start_server_with, test_args};
use serde_json::Value;
use tandem_server::RunningServer;

/// Longest one run of the binary may take before the test fails instead of hanging.
const RUN_BOUND: Duration = Duration::from_secs(30);

/// The moderator the node knows, as `--admin-token NAME=TOKEN`, and the token alone.
const ANA: &str = "ana=token-of-ana-0123456789";
const ANA_TOKEN: &str = "token-of-ana-0123456789";

/// A node whose operator API takes ana's token.
fn node() -> RunningServer {
    let mut args = test_args();
    args.admin_token = vec![ANA.into()];
    start_server_with(args)
}

fn url(server: &RunningServer) -> String {
    format!("http://{}", server.addr)
}

/// Runs `tandem moderation FLAGS` against `url` with `token` (given in the environment, as
/// an operator would); returns its exit status, stdout and stderr.
async fn moderation(url: &str, token: &str, flags: &[&str]) -> (Output, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"));
    command
        .arg("moderation")
        .args(flags)
        .env("TANDEM_URL", url)
        .env("TANDEM_ADMIN_TOKEN", token)
        .kill_on_drop(true);
    // Errors as an operator sees them, without a backtrace the test runner may ask for.
    command
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    // Straight to the node, whatever proxy this machine has.
    for proxy in ["ALL_PROXY", "HTTP_PROXY", "HTTPS_PROXY"] {
        command
            .env_remove(proxy)
            .env_remove(proxy.to_ascii_lowercase());
    }
    let output = tokio::time::timeout(RUN_BOUND, command.output())
        .await
        .expect("the command finishes")
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

/// Runs a command that must succeed; returns its stdout.
async fn succeeds(url: &str, flags: &[&str]) -> String {
    let (output, stdout, stderr) = moderation(url, ANA_TOKEN, flags).await;
    assert!(output.status.success(), "{flags:?}: {stdout}\n{stderr}");
    stdout
}

/// Runs a command that must fail; returns its stderr, which must be one line.
async fn fails(url: &str, token: &str, flags: &[&str]) -> String {
    let (output, stdout, stderr) = moderation(url, token, flags).await;
    assert!(!output.status.success(), "{flags:?}: {stdout}\n{stderr}");
    assert_eq!(stdout, "", "{flags:?}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    stderr
}

/// `bans --json`, read.
async fn bans_json(url: &str, flags: &[&str]) -> Vec<Value> {
    let flags: Vec<&str> = ["bans", "--json"].iter().chain(flags).copied().collect();
    let stdout = succeeds(url, &flags).await;
    serde_json::from_str(&stdout).expect("bans --json prints JSON")
}

fn find<'a>(bans: &'a [Value], id: &str) -> &'a Value {
    bans.iter()
        .find(|ban| ban["id"] == id)
        .unwrap_or_else(|| panic!("ban {id} listed in {bans:?}"))
}

/// A ban's id as `ban` prints it: the node's 16 hex digits, alone on its line.
fn ban_id(stdout: &str) -> String {
    let id = stdout.trim();
    assert_eq!(stdout, format!("{id}\n"));
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{stdout:?}"
    );
    id.to_owned()
}

#[actix_rt::test]
async fn bans_by_address_and_device_are_listed_under_the_moderator_and_lifted() {
    let server = node();
    let url = url(&server);

    let by_ip = ban_id(
        &succeeds(
            &url,
            &[
                "ban",
                "--ip",
                "203.0.113.7",
                "--for",
                "10m",
                "--reason",
                "spam from here",
            ],
        )
        .await,
    );
    let by_device = ban_id(
        &succeeds(
            &url,
            &[
                "ban",
                "--device",
                "device-0123456789",
                "--reason",
                "ban evasion",
            ],
        )
        .await,
    );

    let bans = bans_json(&url, &[]).await;
    let ip = find(&bans, &by_ip);
    assert_eq!(ip["subject"]["kind"], "ip");
    assert_eq!(ip["subject"]["value"], "203.0.113.7/32");
    assert_eq!(ip["issued_by"]["kind"], "moderator");
    assert_eq!(ip["issued_by"]["name"], "ana");
    assert_eq!(ip["reason"], "spam from here");
    assert_eq!(
        ip["until"].as_u64().unwrap() - ip["at"].as_u64().unwrap(),
        600
    );
    assert_eq!(ip["active"], true);
    let device = find(&bans, &by_device);
    assert_eq!(device["subject"]["kind"], "device");
    assert_eq!(device["subject"]["value"], "device-0123456789");
    assert_eq!(device["issued_by"]["name"], "ana");
    assert_eq!(device["until"], Value::Null, "permanent");

    let table = succeeds(&url, &["bans"]).await;
    let ip_row = table.lines().find(|l| l.starts_with(&by_ip)).expect(&table);
    assert!(ip_row.contains("ip:203.0.113.7/32"), "{table}");
    assert!(ip_row.contains("spam from here"), "{table}");
    assert!(ip_row.contains("ana"), "{table}");
    assert!(ip_row.trim_end().ends_with("active"), "{table}");
    let device_row = table
        .lines()
        .find(|l| l.starts_with(&by_device))
        .expect(&table);
    assert!(device_row.contains("device:device-0123456789"), "{table}");
    assert!(device_row.contains("permanent"), "{table}");

    let lifted = succeeds(&url, &["lift", &by_ip]).await;
    assert!(lifted.starts_with(&format!("lifted {by_ip} (ip:203.0.113.7/32, by ana")));

    let bans = bans_json(&url, &[]).await;
    let ip = find(&bans, &by_ip);
    assert_eq!(ip["active"], false);
    assert_eq!(ip["lifted"]["by"], "ana");
    let active = bans_json(&url, &["--active"]).await;
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["id"], by_device);
    let table = succeeds(&url, &["bans"]).await;
    let ip_row = table.lines().find(|l| l.starts_with(&by_ip)).expect(&table);
    assert!(ip_row.trim_end().ends_with("lifted by ana"), "{table}");

    // The node checks what it is given, and says what is wrong.
    let refused = fails(
        &url,
        ANA_TOKEN,
        &["ban", "--ip", "not-an-address", "--reason", "x"],
    )
    .await;
    assert!(refused.contains("400 Bad Request"), "{refused}");
    assert!(
        refused.contains("an IP address or a CIDR range"),
        "{refused}"
    );
    let refused = fails(&url, ANA_TOKEN, &["lift", "0123456789abcdef"]).await;
    assert!(refused.contains("404 Not Found: no such ban"), "{refused}");
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn an_empty_queue_lists_no_reports_and_a_report_is_listed_then_resolved_once() {
    let server = node();
    let url = url(&server);

    assert_eq!(succeeds(&url, &["reports"]).await, "no reports (open)\n");
    let json: Value = serde_json::from_str(&succeeds(&url, &["reports", "--json"]).await).unwrap();
    assert_eq!(json, serde_json::json!([]));

    let (mut a, b, chat) = pair(server.addr).await;
    let report = common::report(&mut a, chat, "spam", None).await;

    let table = succeeds(&url, &["reports"]).await;
    let row = table
        .lines()
        .find(|l| l.starts_with(&report))
        .expect(&table);
    let client_short = &b.welcome.client_id[..8];
    assert!(row.contains("spam"), "{table}");
    assert!(row.contains(&format!("{client_short}…")), "{table}");
    assert!(
        !row.contains(&b.welcome.client_id),
        "the short form: {table}"
    );
    assert!(row.contains("127.0.0.1"), "{table}");
    assert!(row.trim_end().ends_with("open"), "{table}");

    let resolved = succeeds(&url, &["resolve", &report, "--dismiss"]).await;
    assert_eq!(resolved, format!("{report}: dismissed\n"));
    assert_eq!(succeeds(&url, &["reports"]).await, "no reports (open)\n");
    let again = fails(&url, ANA_TOKEN, &["resolve", &report, "--ban"]).await;
    assert!(again.contains("409 Conflict"), "{again}");
    let dismissed = succeeds(&url, &["reports", "--status", "dismissed"]).await;
    assert!(dismissed.contains(&report), "{dismissed}");
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_wrong_token_fails_with_the_nodes_401_and_changes_nothing() {
    let server = node();
    let url = url(&server);

    let refused = fails(&url, "not-the-token-of-anyone", &["bans"]).await;
    assert!(
        refused.contains("401 Unauthorized: wrong token"),
        "{refused}"
    );
    let refused = fails(
        &url,
        "not-the-token-of-anyone",
        &["ban", "--ip", "203.0.113.9", "--reason", "no"],
    )
    .await;
    assert!(refused.contains("401"), "{refused}");
    assert_eq!(bans_json(&url, &[]).await, Vec::<Value>::new());

    // Without a token, the command says so before asking the node.
    let missing = fails(&url, "", &["bans"]).await;
    assert!(missing.contains("--admin-token"), "{missing}");
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn an_unreachable_node_fails_with_a_clear_message() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");

    let refused = fails(&url, ANA_TOKEN, &["bans"]).await;
    assert!(
        refused.contains(&format!("cannot reach the node at {url}")),
        "{refused}"
    );
    let refused = fails(&url, ANA_TOKEN, &["lift", "0123456789abcdef"]).await;
    assert!(refused.contains("cannot reach the node"), "{refused}");
}

#[actix_rt::test]
async fn a_node_without_admin_tokens_has_no_api_to_use() {
    let server = start_server_with(test_args());
    let refused = fails(&url(&server), ANA_TOKEN, &["reports"]).await;
    assert!(refused.contains("404 Not Found"), "{refused}");
    assert!(refused.contains("--admin-token"), "{refused}");
    server.shutdown().await.unwrap();
}
