//! Privacy: what a user may keep of its chats, and what it may know and erase of what the
//! node keeps about it.
//!
//! - [`logs`]: chat logs a user saved, readable by whoever holds their address;
//! - [`access`]: every stored record linked to a client id, and its erasure;
//! - [`http`]: `/logs/…`, `/api/privacy/export`, `/api/privacy/erase`, and the `/privacy`
//!   page, written from the node's own settings.
//!
//! Privacy builds on moderation's store and identity: it reads and removes the records
//! moderation keeps, and authenticates a user by the client id moderation issued. Chat text
//! lives in sessions' memory only ([`tandem_engine::session`]); it reaches the store only in
//! a report the user filed or a log the user saved.

pub mod access;
pub mod http;
pub mod logs;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use self::access::Access;
pub use self::logs::SavedLogs;
use crate::moderation::{IdIssuer, Retention, Rule, StoreSlot};

/// What the privacy page tells users, from the node's flags.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub retention: Retention,
    /// How often the purge runs.
    pub purge_interval: Duration,
    /// Whether the node's logs hold client addresses in full.
    pub full_ips_in_logs: bool,
    /// Whether the node derives a country from addresses (a GeoIP database or a proxy's
    /// header).
    pub derives_country: bool,
    /// Whether video chats send stills to automated moderation.
    pub snapshots: bool,
}

/// A node's privacy side.
pub struct Privacy {
    pub logs: SavedLogs,
    pub access: Access,
    pub policy: Policy,
    issuer: IdIssuer,
    exports: AtomicU64,
    erasures: AtomicU64,
}

impl Privacy {
    /// The privacy side over `store`, authenticating users with `issuer`; the automatic
    /// `rule` says how long its tallies last.
    pub fn new(store: StoreSlot, issuer: IdIssuer, rule: Rule, policy: Policy) -> Self {
        Self {
            logs: SavedLogs::new(store.clone(), policy.retention),
            access: Access::new(store, policy.retention, rule),
            policy,
            issuer,
            exports: AtomicU64::new(0),
            erasures: AtomicU64::new(0),
        }
    }

    /// Appends the privacy counters to `/metrics`.
    pub fn render(&self, out: &mut String, node: &str) {
        use std::fmt::Write as _;
        let counters = [
            (
                "tandem_saved_logs_total",
                "Chat logs saved (saving a chat again counts again).",
                self.logs.stats.saved.load(Ordering::Relaxed),
            ),
            (
                "tandem_saved_logs_deleted_total",
                "Saved chat logs deleted with their secret.",
                self.logs.stats.deleted.load(Ordering::Relaxed),
            ),
            (
                "tandem_privacy_exports_total",
                "Exports of a client's data.",
                self.exports.load(Ordering::Relaxed),
            ),
            (
                "tandem_privacy_erasures_total",
                "Erasures of a client's data (asked for, or of a minor's).",
                self.erasures.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{node=\"{node}\"}} {value}"
            );
        }
    }

    fn counted(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// An address as the node's logs show it: its network (/24, /48) unless `full`.
pub fn loggable_ip(ip: IpAddr, full: bool) -> String {
    if full {
        return ip.to_string();
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// Shared with the HTTP side.
pub(crate) type Shared = Arc<Privacy>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_logs_are_cut_to_their_network() {
        let v4: IpAddr = "203.0.113.77".parse().unwrap();
        let v6: IpAddr = "2001:db8:abcd:12::1".parse().unwrap();
        assert_eq!(loggable_ip(v4, false), "203.0.113.0/24");
        assert_eq!(loggable_ip(v6, false), "2001:db8:abcd::/48");
        assert_eq!(loggable_ip(v4, true), "203.0.113.77");
    }
}
