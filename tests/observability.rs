//! What an operator watches: `/metrics` on a listener of its own when asked, every series
//! labelled with its node (the id escaped as the text format wants), the build and process
//! series, and the shipped Grafana dashboard and Prometheus alerts naming only series a node
//! exports.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::nats::NatsServer;
use common::{http_get, start_server_with, test_args};

/// The metric names a node exports (its `# TYPE` lines).
fn exported(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The `tandem_*` and `process_*` names a file of queries uses, without the histogram
/// suffixes.
fn used(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    for prefix in ["tandem_", "process_"] {
        let mut from = 0;
        while let Some(at) = text[from..].find(prefix) {
            let start = from + at;
            let boundary = start == 0
                || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            let end = (text[start..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
                .map_or(text.len(), |n| start + n);
            if boundary {
                let name = &text[start..end];
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name);
                names.insert(base.to_owned());
            }
            from = end;
        }
    }
    names
}

#[actix_rt::test]
async fn metrics_on_their_own_listener_label_every_series_with_the_node() {
    let nats = NatsServer::start();
    let seen = Arc::new(common::classifier::Seen::default());
    let mut args = test_args();
    args.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    args.node_id = Some("watch-1".into());
    args.cluster.nats = vec![nats.url()];
    args.cluster.cluster_name = "watch".into();
    args.id_secret = Some("the observability test's secret".into());
    args.cluster.cluster_key = Some(common::CLUSTER_KEY.into());
    args.moderation_webhook = Some(common::classifier::classifier(seen).await);
    args.snapshot_key = Some("KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=".into());
    let server = start_server_with(args);
    let (status, _) = http_get(server.addr, "/metrics").await;
    assert_eq!(status, 404, "not where users connect");
    let at = server.metrics_addr.expect("a listener of its own");
    let (status, metrics) = http_get(at, "/metrics").await;
    assert_eq!(status, 200);

    let label = r#"node="watch-1""#;
    let samples: Vec<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(samples.len() > 50, "{metrics}");
    for sample in &samples {
        assert!(sample.contains(label), "no node label: {sample}");
    }
    for name in [
        "tandem_build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "tandem_match_wait_seconds",
        "tandem_nats_rtt_seconds",
    ] {
        assert!(exported(&metrics).contains(name), "{name}");
    }
    let version = format!("version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    assert!(metrics
        .lines()
        .any(|l| l.starts_with("tandem_build_info") && l.ends_with(&version)));
    let rss = samples
        .iter()
        .find(|l| l.starts_with("process_resident_memory_bytes"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap();
    assert!(rss > 1e6, "{rss}");

    // What the shipped dashboard and alerts ask for, the node exports.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster/observability");
    let dashboard = std::fs::read_to_string(root.join("grafana-dashboard.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    assert!(parsed["panels"].as_array().unwrap().len() >= 10);
    let alerts = std::fs::read_to_string(root.join("alerts.yaml")).unwrap();
    let names = exported(&metrics);
    for (file, text) in [
        ("grafana-dashboard.json", &dashboard),
        ("alerts.yaml", &alerts),
    ] {
        let wanted = used(text);
        assert!(wanted.len() >= 8, "{file}: {wanted:?}");
        let missing: Vec<&String> = wanted.iter().filter(|n| !names.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "{file} names series no node exports: {missing:?}"
        );
    }
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn without_metrics_listen_metrics_stay_on_the_main_listener_with_the_node_escaped() {
    // A node alone may be named anything; quotes and backslashes are escaped in labels.
    let mut args = test_args();
    args.node_id = Some(r#"n "one" \ two"#.into());
    let server = start_server_with(args);
    assert_eq!(server.metrics_addr, None);
    let (status, metrics) = http_get(server.addr, "/metrics").await;
    assert_eq!(status, 200);
    let label = r#"node="n \"one\" \\ two""#;
    for sample in metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(sample.contains(label), "no escaped node label: {sample}");
    }
    assert!(metrics.contains("tandem_build_info{node="), "{metrics}");
    server.shutdown().await.unwrap();
}

/// Kubernetes probes the metrics listener, which a shutdown stops only after `--listen`:
/// `/readyz` turns 503 as the drain begins, `/livez` stays 200 until the node is gone.
#[actix_rt::test]
async fn the_probes_answer_on_the_metrics_listener() {
    let mut args = test_args();
    args.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = start_server_with(args);
    let at = server.metrics_addr.unwrap();
    assert_eq!(http_get(at, "/livez").await.0, 200);
    assert_eq!(http_get(at, "/readyz").await.0, 200);
    assert_eq!(http_get(server.addr, "/readyz").await.0, 200);

    // The first step of a shutdown (and of a cluster drain).
    server.node.set_draining();
    assert_eq!(http_get(at, "/readyz").await.0, 503);
    assert_eq!(
        http_get(at, "/livez").await.0,
        200,
        "a drain is not a failure"
    );
    server.shutdown().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(at).await.is_err(),
        "the metrics listener closes with the node"
    );
}
