//! What moderation counts, for `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::records::Reason;
use super::retention::Purged;
use super::store::Bucket;

/// Why a handshake was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A ban names the client, its device or its address.
    Banned,
    /// The page's origin is not allowed.
    Origin,
    /// Its address holds as many connections as it may.
    PerIpConnections,
    /// Its address opened connections faster than it may.
    PerIpRate,
    /// The node holds as many users as it may.
    Full,
}

impl Refused {
    const ALL: [Refused; 5] = [
        Self::Banned,
        Self::Origin,
        Self::PerIpConnections,
        Self::PerIpRate,
        Self::Full,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Banned => "banned",
            Self::Origin => "origin",
            Self::PerIpConnections => "per_ip_connections",
            Self::PerIpRate => "per_ip_rate",
            Self::Full => "full",
        }
    }
}

/// Moderation's counters.
#[derive(Debug, Default)]
pub struct ModerationStats {
    reports: [AtomicU64; Reason::ALL.len()],
    bans_by_moderator: AtomicU64,
    bans_by_rule: AtomicU64,
    /// Bans in force (a gauge, set as the list changes).
    pub active_bans: AtomicU64,
    refused: [AtomicU64; Refused::ALL.len()],
    /// Store operations that failed.
    pub store_errors: AtomicU64,
    /// Records purged, per bucket.
    purged: [AtomicU64; Bucket::ALL.len()],
}

impl ModerationStats {
    /// A report filed.
    pub fn report(&self, reason: Reason) {
        let at = Reason::ALL.iter().position(|&r| r == reason).unwrap_or(0);
        self.reports[at].fetch_add(1, Ordering::Relaxed);
    }

    /// A ban issued, by a moderator or by a rule.
    pub fn ban(&self, by_rule: bool) {
        let counter = if by_rule {
            &self.bans_by_rule
        } else {
            &self.bans_by_moderator
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// What a purge removed.
    pub fn purged(&self, purged: &Purged) {
        for (counter, bucket) in self.purged.iter().zip(Bucket::ALL) {
            counter.fetch_add(purged.of(bucket), Ordering::Relaxed);
        }
    }

    /// A handshake refused.
    pub fn refused(&self, cause: Refused) {
        let at = Refused::ALL.iter().position(|&c| c == cause).unwrap_or(0);
        self.refused[at].fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the Prometheus text exposition.
    pub fn render(&self, out: &mut String, node: &str) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP tandem_reports_by_reason_total Reports filed, by reason.\n# TYPE tandem_reports_by_reason_total counter"
        );
        for (reason, count) in Reason::ALL.iter().zip(&self.reports) {
            let _ = writeln!(
                out,
                "tandem_reports_by_reason_total{{node=\"{node}\",reason=\"{}\"}} {}",
                reason.as_str(),
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tandem_bans_issued_total Bans issued, by source.\n# TYPE tandem_bans_issued_total counter\ntandem_bans_issued_total{{node=\"{node}\",source=\"moderator\"}} {}\ntandem_bans_issued_total{{node=\"{node}\",source=\"rule\"}} {}",
            load(&self.bans_by_moderator),
            load(&self.bans_by_rule)
        );
        let _ = writeln!(
            out,
            "# HELP tandem_bans_active Bans in force.\n# TYPE tandem_bans_active gauge\ntandem_bans_active{{node=\"{node}\"}} {}",
            load(&self.active_bans)
        );
        let _ = writeln!(
            out,
            "# HELP tandem_handshakes_refused_total WebSocket handshakes refused, by cause.\n# TYPE tandem_handshakes_refused_total counter"
        );
        for (cause, count) in Refused::ALL.iter().zip(&self.refused) {
            let _ = writeln!(
                out,
                "tandem_handshakes_refused_total{{node=\"{node}\",cause=\"{}\"}} {}",
                cause.as_str(),
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tandem_purged_total Stored records removed by the purge once past their retention, by bucket.\n# TYPE tandem_purged_total counter"
        );
        for (bucket, count) in Bucket::ALL.iter().zip(&self.purged) {
            let _ = writeln!(
                out,
                "tandem_purged_total{{node=\"{node}\",bucket=\"{}\"}} {}",
                bucket.name(),
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tandem_moderation_store_errors_total Moderation store operations that failed.\n# TYPE tandem_moderation_store_errors_total counter\ntandem_moderation_store_errors_total{{node=\"{node}\"}} {}",
            load(&self.store_errors)
        );
    }
}
