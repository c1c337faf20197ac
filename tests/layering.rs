//! The dependency rule of the workspace (docs/architecture.md, "Crates and the dependency
//! rule"), checked on the manifests and the resolved dependency tree: each crate depends
//! only on the crates below it, the server does not build the load generator or its client
//! libraries, and the load generator's client mode needs the protocol crate alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(args)
        .current_dir(root())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Each workspace crate's tandem crates among its normal dependencies: (name, optional).
fn internal_dependencies() -> BTreeMap<String, BTreeSet<(String, bool)>> {
    let metadata = cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]);
    let metadata: serde_json::Value = serde_json::from_str(&metadata).expect("metadata is JSON");
    let mut edges = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("a name").to_owned();
        let deps = (package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter())
        .filter(|d| d["kind"].is_null())
        .filter_map(|d| {
            let dep = d["name"].as_str()?;
            dep.starts_with("tandem")
                .then(|| (dep.to_owned(), d["optional"].as_bool().unwrap_or(false)))
        })
        .collect();
        edges.insert(name, deps);
    }
    edges
}

fn set(deps: &[(&str, bool)]) -> BTreeSet<(String, bool)> {
    deps.iter().map(|(d, o)| (d.to_string(), *o)).collect()
}

#[test]
fn each_crate_depends_only_on_the_crates_below_it() {
    let edges = internal_dependencies();
    let expected: BTreeMap<&str, BTreeSet<(String, bool)>> = [
        ("tandem-ids", set(&[])),
        ("tandem-proto", set(&[("tandem-ids", false)])),
        ("tandem-match", set(&[("tandem-ids", false)])),
        (
            "tandem-engine",
            set(&[
                ("tandem-ids", false),
                ("tandem-match", false),
                ("tandem-proto", false),
            ]),
        ),
        (
            "tandem-server",
            set(&[
                ("tandem-engine", false),
                ("tandem-ids", false),
                ("tandem-match", false),
                ("tandem-proto", false),
            ]),
        ),
        (
            "tandem-loadtest",
            set(&[
                ("tandem-engine", true),
                ("tandem-match", true),
                ("tandem-proto", false),
            ]),
        ),
    ]
    .into_iter()
    .collect();
    for (krate, allowed) in &expected {
        assert_eq!(
            edges.get(*krate),
            Some(allowed),
            "{krate}'s tandem dependencies break the rule"
        );
    }
    let known: BTreeSet<&str> = expected.keys().copied().chain(["tandem"]).collect();
    for krate in edges.keys() {
        assert!(
            known.contains(krate.as_str()),
            "{krate} is not in the rule: add it to docs/architecture.md and here"
        );
    }
}

/// The packages in a crate's resolved normal-dependency tree.
fn tree(args: &[&str]) -> BTreeSet<String> {
    let mut all = vec!["tree", "-e", "normal", "--prefix", "none", "--offline"];
    all.extend_from_slice(args);
    cargo(&all)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_server_builds_neither_the_load_generator_nor_its_client_libraries() {
    let server = tree(&["-p", "tandem-server"]);
    assert!(server.contains("actix-web"), "the tree was read");
    for absent in ["tandem-loadtest", "tokio-tungstenite", "hdrhistogram"] {
        assert!(
            !server.contains(absent),
            "tandem-server depends on {absent}"
        );
    }
}

#[test]
fn the_load_generators_client_mode_needs_the_protocol_crate_alone() {
    let client = tree(&["-p", "tandem-loadtest"]);
    assert!(client.contains("tandem-proto"), "the tree was read");
    for absent in ["tandem-server", "tandem-engine", "tandem-match", "actix"] {
        assert!(
            !client.contains(absent),
            "tandem-loadtest depends on {absent}"
        );
    }
}

/// Every Rust source file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_is_borrowed_from_another_crate_by_path() {
    let mut files = Vec::new();
    for dir in ["crates", "src", "tests", "benches"] {
        sources(&root().join(dir), &mut files);
    }
    assert!(files.len() > 50, "the sources were found");
    let attribute = concat!("#[", "path");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        assert!(
            !text.contains(attribute),
            "{} uses a path attribute",
            file.display()
        );
    }
}
