//! What the cluster side of a node counts, for `/metrics`.
//!
//! The pair `tandem_cluster_spilled_total` / `tandem_matches_total` shows that cross-node
//! traffic follows the leftovers, not the skips: spills happen only for tickets that found
//! no partner on their own node within `--spill-after`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::Histogram;

/// Bounds for hops through NATS: tens of microseconds on loopback to a second when a
/// server is failing over.
const HOP_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Counters and histograms of one node's cluster traffic.
#[derive(Debug)]
pub struct ClusterStats {
    /// Local tickets sent to their bucket's owner on another node.
    pub spilled: AtomicU64,
    /// Spilled tickets that came back to wait here again (owner changed, died, or the
    /// proposed partner was gone).
    pub requeued: AtomicU64,
    /// Pairings of a user here with a user on another node, completed on this side.
    pub cross_matches: AtomicU64,
    /// Cross-node claims that failed because one side no longer waited (retried).
    pub claims_refused: AtomicU64,
    /// Reservations whose partner's node never answered in time.
    pub claims_expired: AtomicU64,
    /// Chats ended on the partner's side because this side's user left while the claim
    /// was in flight.
    pub claims_compensated: AtomicU64,
    /// Envelopes published to NATS.
    pub envelopes_out: AtomicU64,
    /// Envelopes received from NATS.
    pub envelopes_in: AtomicU64,
    /// Envelopes not sent: the outgoing queue was full (NATS unreachable for long).
    pub envelopes_dropped: AtomicU64,
    /// Payloads refused: unknown version.
    pub refused_version: AtomicU64,
    /// Payloads refused: undecodable.
    pub refused_malformed: AtomicU64,
    /// Payloads refused: not sealed with the cluster key (or altered, or for another
    /// subject).
    pub refused_unsealed: AtomicU64,
    /// Drains refused: sealed, but older than a minute (a replay).
    pub refused_stale: AtomicU64,
    /// Nodes declared dead.
    pub nodes_died: AtomicU64,
    /// Times this node's NATS connection came back.
    pub reconnects: AtomicU64,
    /// Live nodes, this one included.
    pub nodes_live: AtomicU64,
    /// 1 while connected to NATS.
    pub connected: AtomicU64,
    /// 1 while cut off from NATS for longer than the node timeout: the other nodes have
    /// declared this one dead, and its chats with their users end when it is back.
    pub isolated: AtomicU64,
    /// A probe from this node to itself through the NATS server.
    pub nats_rtt: Histogram,
    /// An envelope's time from publish on one node to receipt on another (clocks of the
    /// two hosts; on one host, exact).
    pub transit: Histogram,
    /// From reserving a seat to the partner node's answer.
    pub claim_rtt: Histogram,
}

impl Default for ClusterStats {
    fn default() -> Self {
        Self {
            spilled: AtomicU64::new(0),
            requeued: AtomicU64::new(0),
            cross_matches: AtomicU64::new(0),
            claims_refused: AtomicU64::new(0),
            claims_expired: AtomicU64::new(0),
            claims_compensated: AtomicU64::new(0),
            envelopes_out: AtomicU64::new(0),
            envelopes_in: AtomicU64::new(0),
            envelopes_dropped: AtomicU64::new(0),
            refused_version: AtomicU64::new(0),
            refused_malformed: AtomicU64::new(0),
            refused_unsealed: AtomicU64::new(0),
            refused_stale: AtomicU64::new(0),
            nodes_died: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            nodes_live: AtomicU64::new(1),
            connected: AtomicU64::new(0),
            isolated: AtomicU64::new(0),
            nats_rtt: Histogram::new(HOP_BOUNDS),
            transit: Histogram::new(HOP_BOUNDS),
            claim_rtt: Histogram::new(HOP_BOUNDS),
        }
    }
}

impl ClusterStats {
    /// Appends the Prometheus text exposition.
    pub fn render(&self, out: &mut String, node: &str) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counters: [(&str, &str, u64); 15] = [
            (
                "tandem_cluster_spilled_total",
                "Local tickets sent to their bucket's owner on another node.",
                load(&self.spilled),
            ),
            (
                "tandem_cluster_requeued_total",
                "Spilled tickets placed again on their home node.",
                load(&self.requeued),
            ),
            (
                "tandem_cluster_cross_matches_total",
                "Pairings with a user on another node, completed here.",
                load(&self.cross_matches),
            ),
            (
                "tandem_cluster_claims_refused_total",
                "Cross-node claims refused because one side no longer waited.",
                load(&self.claims_refused),
            ),
            (
                "tandem_cluster_claims_expired_total",
                "Cross-node claims whose partner node did not answer in time.",
                load(&self.claims_expired),
            ),
            (
                "tandem_cluster_claims_compensated_total",
                "Cross-node chats ended at once because this side left during the claim.",
                load(&self.claims_compensated),
            ),
            (
                "tandem_cluster_envelopes_out_total",
                "Envelopes published to NATS.",
                load(&self.envelopes_out),
            ),
            (
                "tandem_cluster_envelopes_in_total",
                "Envelopes received from NATS.",
                load(&self.envelopes_in),
            ),
            (
                "tandem_cluster_envelopes_dropped_total",
                "Envelopes dropped because the outgoing queue was full.",
                load(&self.envelopes_dropped),
            ),
            (
                "tandem_cluster_refused_version_total",
                "Envelopes refused for an unknown version.",
                load(&self.refused_version),
            ),
            (
                "tandem_cluster_refused_malformed_total",
                "Envelopes refused as undecodable.",
                load(&self.refused_malformed),
            ),
            (
                "tandem_cluster_refused_unsealed_total",
                "Payloads refused: not sealed with the cluster key, altered, or for another subject.",
                load(&self.refused_unsealed),
            ),
            (
                "tandem_cluster_refused_stale_total",
                "Operator commands refused as older than a minute (replays).",
                load(&self.refused_stale),
            ),
            (
                "tandem_cluster_nodes_died_total",
                "Nodes declared dead by this node.",
                load(&self.nodes_died),
            ),
            (
                "tandem_cluster_reconnects_total",
                "Times this node's NATS connection came back.",
                load(&self.reconnects),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{node=\"{node}\"}} {value}"
            );
        }
        for (name, help, value) in [
            (
                "tandem_cluster_nodes_live",
                "Live nodes of the cluster, this one included.",
                load(&self.nodes_live),
            ),
            (
                "tandem_cluster_connected",
                "1 while this node is connected to NATS.",
                load(&self.connected),
            ),
            (
                "tandem_cluster_isolated",
                "1 while this node has been cut off from NATS for longer than the node timeout.",
                load(&self.isolated),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{node=\"{node}\"}} {value}"
            );
        }
        self.nats_rtt.render(
            out,
            "tandem_nats_rtt_seconds",
            "Round trip from this node through the NATS server back to it.",
            node,
        );
        self.transit.render(
            out,
            "tandem_cluster_transit_seconds",
            "Envelope time from publish on one node to receipt on this one (relays, claims).",
            node,
        );
        self.claim_rtt.render(
            out,
            "tandem_cluster_claim_seconds",
            "From reserving a seat for a cross-node pairing to the partner node's answer.",
            node,
        );
    }
}
