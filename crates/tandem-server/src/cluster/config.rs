//! The flags of `tandem serve` that make a node part of a cluster.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tandem_proto::duration::parse_duration;

use super::ClusterSettings;

/// Cluster flags (all optional: without `--nats` the node runs alone).
#[derive(Args, Clone, Debug, Default)]
pub struct ClusterArgs {
    /// NATS server URL(s), comma-separated (e.g. nats://10.0.0.1:4222,nats://10.0.0.2:4222):
    /// join a cluster. Without it the node runs alone on its in-process bus. A user and
    /// password in a URL (`nats://tandem:secret@10.0.0.1:4222`) authenticate the connection;
    /// prefer the environment variable for them.
    #[arg(long, env = "TANDEM_NATS", value_delimiter = ',')]
    pub nats: Vec<String>,

    /// The cluster's name: nodes with the same name (and NATS) form one cluster; subjects are
    /// `tandem.<name>.…`.
    #[arg(long = "cluster", env = "TANDEM_CLUSTER", default_value = "tandem")]
    pub cluster_name: String,

    /// The cluster key: 32 random bytes in base64 (`tandem cluster key` makes one), the same
    /// on every node and for the operator commands. Every envelope on NATS is sealed with it
    /// (ChaCha20-Poly1305): without it nobody reads a chat line or forges a message. Required
    /// with `--nats`. Prefer the environment variable.
    #[arg(long, env = "TANDEM_CLUSTER_KEY", hide_env_values = true)]
    pub cluster_key: Option<String>,

    /// A NATS credentials file (JWT and NKey seed) to authenticate with.
    #[arg(long, env = "TANDEM_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,

    /// A PEM file of CA certificates to verify the NATS servers' TLS certificates with (and
    /// require TLS).
    #[arg(long, env = "TANDEM_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,

    /// How long a waiting user looks for a partner on its own node before its ticket goes to
    /// the bucket's owner node, where the cluster's leftovers meet.
    #[arg(long, env = "TANDEM_SPILL_AFTER", default_value = "20ms", value_parser = parse_duration)]
    pub spill_after: Duration,

    /// How often the node announces itself to the cluster.
    #[arg(long, env = "TANDEM_CLUSTER_HEARTBEAT", default_value = "500ms", value_parser = parse_duration)]
    pub cluster_heartbeat: Duration,

    /// A node not heard from for this long is dead: its buckets move, chats with its users
    /// end, tickets it held are placed again.
    #[arg(long, env = "TANDEM_NODE_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub node_timeout: Duration,
}

impl ClusterArgs {
    /// Whether the node joins a cluster.
    pub fn enabled(&self) -> bool {
        !self.nats.is_empty()
    }

    /// The seal of envelopes under `--cluster-key`.
    pub fn seal(&self) -> anyhow::Result<super::seal::Seal> {
        let key = self.cluster_key.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "a cluster needs --cluster-key (or TANDEM_CLUSTER_KEY), the same on every node: \
                 `tandem cluster key` makes one"
            )
        })?;
        Ok(super::seal::Seal::new(&super::seal::ClusterKey::parse(
            key,
        )?))
    }

    /// The settings for a node serving HTTP at `http`.
    pub fn settings(&self, http: String) -> ClusterSettings {
        ClusterSettings {
            name: self.cluster_name.clone(),
            spill_after: self.spill_after,
            heartbeat: self.cluster_heartbeat,
            node_timeout: self.node_timeout,
            claim_timeout: self.node_timeout,
            http,
        }
    }
}
