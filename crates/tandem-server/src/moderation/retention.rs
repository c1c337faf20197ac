//! How long each kind of moderation record is kept, and the purge that removes what is past
//! it. Every record has an end: a report some time after its last change, a ban some time
//! after it stopped banning (a permanent ban is kept while it bans), an audit entry some time
//! after the action, a client's blocks some time after it last reported someone, a tally once
//! the automatic rule's windows have passed, a saved chat log some time after it was saved, a
//! spent challenge once its challenge has expired, a flagged snapshot some time after it was
//! flagged. Reads leave out what is past its end
//! before the purge has removed it, so nothing expired is served in between.

use std::collections::BTreeSet;
use std::time::Duration;

use super::records::{AuditEntry, Ban, Blocks, Report, SavedLog, Spent, Tally, UnixSecs};
use super::rules::Rule;
use super::store::{Bucket, ModerationStore, StoreError};

/// How long records are kept (`--*-retention`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// A report and its evidence, after it was filed, last reported again or resolved.
    pub reports: Duration,
    /// A ban (with the address it names), after it ended or was lifted.
    pub bans: Duration,
    /// An audit entry, after the action.
    pub audit: Duration,
    /// A client's blocks, after it last reported someone.
    pub blocks: Duration,
    /// A saved chat log, after it was saved.
    pub logs: Duration,
    /// A flagged video snapshot, after it was flagged.
    pub snapshots: Duration,
}

const DAY: u64 = 86_400;

impl Default for Retention {
    fn default() -> Self {
        Self {
            reports: Duration::from_secs(90 * DAY),
            bans: Duration::from_secs(30 * DAY),
            audit: Duration::from_secs(365 * DAY),
            blocks: Duration::from_secs(365 * DAY),
            logs: Duration::from_secs(120 * DAY),
            snapshots: Duration::from_secs(7 * DAY),
        }
    }
}

impl Retention {
    /// When `report` goes.
    pub fn report_ends(&self, report: &Report) -> UnixSecs {
        let filed = report
            .reporters
            .iter()
            .map(|r| r.at)
            .max()
            .unwrap_or(report.at);
        let resolved = report.resolution.as_ref().map_or(0, |r| r.at);
        filed.max(resolved).max(report.at) + self.reports.as_secs()
    }

    /// When `ban` goes; `None` while it bans for good.
    pub fn ban_ends(&self, ban: &Ban) -> Option<UnixSecs> {
        let ended = match (&ban.lifted, ban.until) {
            (Some(lifted), Some(until)) => lifted.at.min(until),
            (Some(lifted), None) => lifted.at,
            (None, Some(until)) => until,
            (None, None) => return None,
        };
        Some(ended.saturating_add(self.bans.as_secs()))
    }

    /// When an audit entry goes.
    pub fn audit_ends(&self, entry: &AuditEntry) -> UnixSecs {
        entry.at + self.audit.as_secs()
    }

    /// When a client's blocks go.
    pub fn blocks_end(&self, blocks: &Blocks) -> UnixSecs {
        blocks.at + self.blocks.as_secs()
    }

    /// When a saved log goes.
    pub fn log_ends(&self, log: &SavedLog) -> UnixSecs {
        log.saved_at + self.logs.as_secs()
    }

    /// Whether `report` is still kept at `now`: within its retention, or for as long as a
    /// ban issued on it bans (`active` holds the ids of the bans active now), since it is
    /// that ban's grounds.
    pub fn keeps_report(&self, report: &Report, now: UnixSecs, active: &BTreeSet<String>) -> bool {
        now < self.report_ends(report) || report.bans().any(|ban| active.contains(ban))
    }

    /// Whether `ban` is still kept at `now`.
    pub fn keeps_ban(&self, ban: &Ban, now: UnixSecs) -> bool {
        self.ban_ends(ban).is_none_or(|end| now < end)
    }
}

/// What one purge removed, per bucket (in [`Bucket::ALL`] order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged(pub [u64; Bucket::ALL.len()]);

impl Purged {
    /// Records removed from `bucket`.
    pub fn of(&self, bucket: Bucket) -> u64 {
        self.0[index(bucket)]
    }

    /// Records removed in all.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

fn index(bucket: Bucket) -> usize {
    Bucket::ALL
        .iter()
        .position(|&b| b == bucket)
        .expect("every bucket is listed")
}

/// Removes every record of `store` past its end at `now` (history included: the store's
/// `remove` leaves nothing of a key behind).
pub async fn purge(
    store: &ModerationStore,
    retention: &Retention,
    rule: &Rule,
    now: UnixSecs,
) -> Result<Purged, StoreError> {
    let mut purged = Purged::default();
    let active = active_bans(store, now).await?;
    let lists = [
        (
            Bucket::Reports,
            expired(store, Bucket::Reports, |r: &Report| {
                !retention.keeps_report(r, now, &active)
            })
            .await?,
        ),
        (
            Bucket::Bans,
            expired(store, Bucket::Bans, |b: &Ban| !retention.keeps_ban(b, now)).await?,
        ),
        (
            Bucket::Audit,
            expired(store, Bucket::Audit, |e: &AuditEntry| {
                retention.audit_ends(e) <= now
            })
            .await?,
        ),
        (
            Bucket::Tallies,
            expired(store, Bucket::Tallies, |t: &Tally| rule.expires(t) <= now).await?,
        ),
        (
            Bucket::Blocks,
            expired(store, Bucket::Blocks, |b: &Blocks| {
                retention.blocks_end(b) <= now
            })
            .await?,
        ),
        (
            Bucket::Logs,
            expired(store, Bucket::Logs, |l: &SavedLog| {
                retention.log_ends(l) <= now
            })
            .await?,
        ),
        (
            Bucket::Spent,
            expired(store, Bucket::Spent, |s: &Spent| s.expires <= now).await?,
        ),
        (
            Bucket::Snapshots,
            expired(store, Bucket::Snapshots, |s: &SnapshotTime| {
                s.at + retention.snapshots.as_secs() <= now
            })
            .await?,
        ),
    ];
    for (bucket, keys) in lists {
        for key in keys {
            store.remove(bucket, &key).await?;
            purged.0[index(bucket)] += 1;
        }
    }
    Ok(purged)
}

/// When a stored snapshot was flagged: all the purge reads of it.
#[derive(serde::Deserialize)]
struct SnapshotTime {
    at: UnixSecs,
}

/// The ids of the bans active at `now`.
pub async fn active_bans(
    store: &ModerationStore,
    now: UnixSecs,
) -> Result<BTreeSet<String>, StoreError> {
    Ok((store.all::<Ban>(Bucket::Bans).await?)
        .into_iter()
        .filter(|(_, ban)| ban.active(now))
        .map(|(_, ban)| ban.id)
        .collect())
}

/// The keys of `bucket` whose records `ended` says are past their end.
async fn expired<T: serde::de::DeserializeOwned>(
    store: &ModerationStore,
    bucket: Bucket,
    ended: impl Fn(&T) -> bool,
) -> Result<Vec<String>, StoreError> {
    Ok(store
        .all::<T>(bucket)
        .await?
        .into_iter()
        .filter(|(_, record)| ended(record))
        .map(|(key, _)| key)
        .collect())
}

/// The purge's behaviour, run against each store by its tests (the JetStream one against a
/// real nats-server, from the workspace's end-to-end tests).
#[cfg(any(test, feature = "test-support"))]
pub mod contract {
    use std::sync::Arc;

    use serde::Serialize;

    use super::*;
    use crate::moderation::records::{Issuer, Reason, Reported, Reporter, Status, Subject};
    use crate::moderation::store::Kv;

    /// A report filed at `at`.
    pub fn report(id: &str, at: UnixSecs) -> Report {
        Report {
            id: id.into(),
            chat: "1".into(),
            reported: Reported {
                client: "x".into(),
                ip: Some("192.0.2.1".parse().expect("an address")),
                device: None,
                country: "ZZ".into(),
            },
            reporters: vec![Reporter {
                client: "y".into(),
                reason: Reason::Spam,
                note: Some("note".into()),
                at,
            }],
            evidence: Vec::new(),
            at,
            status: Status::Open,
            auto_bans: Vec::new(),
            resolution: None,
        }
    }

    /// A ban issued at 0 that ends at `until` (`None`: permanent).
    pub fn ban(id: &str, until: Option<UnixSecs>) -> Ban {
        Ban {
            id: id.into(),
            subject: Subject::Ip("192.0.2.0/24".into()),
            reason: "r".into(),
            issued_by: Issuer::Moderator { name: "ana".into() },
            at: 0,
            until,
            lifted: None,
            confirmed: true,
        }
    }

    /// An audit entry of a moderator's action at `at`.
    pub fn entry(id: &str, at: UnixSecs) -> AuditEntry {
        AuditEntry {
            id: id.into(),
            at,
            who: "ana".into(),
            action: "ban".into(),
            target: "b".into(),
            detail: String::new(),
        }
    }

    /// Fills every bucket with one record past its retention and one still kept at a fixed
    /// time, purges at that time, and checks that exactly the kept ones remain. Returns the
    /// number of records left (one per bucket).
    pub async fn purge_leaves_only_what_is_kept(kv: Arc<dyn Kv>) -> usize {
        use crate::moderation::records::SavedLog;
        use crate::moderation::rules::Rule;

        const DAY: u64 = 86_400;
        let now = 1_000 * DAY;
        let store = ModerationStore::new(kv);
        let (retention, rule) = (Retention::default(), Rule::default());
        let old = now - 91 * DAY;
        let put = |bucket, key: &'static str, value: serde_json::Value| {
            let store = store.clone();
            async move { store.create(bucket, key, &value).await.unwrap() }
        };
        fn json(record: impl Serialize) -> serde_json::Value {
            serde_json::to_value(record).expect("records serialize")
        }
        put(Bucket::Reports, "old", json(report("old", old))).await;
        put(Bucket::Reports, "new", json(report("new", now - DAY))).await;
        put(
            Bucket::Bans,
            "ended",
            json(ban("ended", Some(now - 31 * DAY))),
        )
        .await;
        put(Bucket::Bans, "forever", json(ban("forever", None))).await;
        put(Bucket::Audit, "old", json(entry("old", now - 366 * DAY))).await;
        put(Bucket::Audit, "new", json(entry("new", now))).await;
        let tally = |at| Tally {
            reports: vec![(1, at)],
            bans: Vec::new(),
        };
        put(Bucket::Tallies, "old", json(tally(now - DAY))).await;
        put(Bucket::Tallies, "new", json(tally(now - 60))).await;
        let blocks = |at| Blocks {
            clients: vec![7],
            at,
        };
        put(Bucket::Blocks, "old", json(blocks(now - 366 * DAY))).await;
        put(Bucket::Blocks, "new", json(blocks(now - DAY))).await;
        let log = |id: &str, saved_at| SavedLog {
            id: id.into(),
            secret_hash: "h".into(),
            saver: "y".into(),
            started_ms: 0,
            ended_ms: None,
            saved_at,
            common_interests: Vec::new(),
            lines: Vec::new(),
        };
        put(Bucket::Logs, "old", json(log("old", now - 121 * DAY))).await;
        put(Bucket::Logs, "new", json(log("new", now - 119 * DAY))).await;
        let spent = |expires| crate::moderation::records::Spent { expires };
        put(Bucket::Spent, "old", json(spent(now))).await;
        put(Bucket::Spent, "new", json(spent(now + 1))).await;
        let snapshot = |at: UnixSecs| serde_json::json!({ "at": at, "sealed": "…" });
        put(Bucket::Snapshots, "old", snapshot(now - 7 * DAY)).await;
        put(Bucket::Snapshots, "new", snapshot(now - 7 * DAY + 1)).await;

        let purged = purge(&store, &retention, &rule, now).await.unwrap();
        for bucket in Bucket::ALL {
            assert_eq!(purged.of(bucket), 1, "{bucket:?}");
            let left: Vec<String> = (store.kv().list(bucket).await.unwrap())
                .into_iter()
                .map(|(key, _)| key)
                .collect();
            let kept = if bucket == Bucket::Bans {
                "forever"
            } else {
                "new"
            };
            assert_eq!(left, [kept], "{bucket:?}");
        }
        let again = purge(&store, &retention, &rule, now).await.unwrap();
        assert_eq!(again.total(), 0, "nothing more to purge");
        Bucket::ALL.len()
    }
}

#[cfg(test)]
mod tests {
    use super::contract::{ban as ban_of, entry, report as report_of};
    use super::*;
    use crate::moderation::records::{Lifted, Resolution, Status};

    fn report(at: UnixSecs) -> Report {
        report_of("r", at)
    }

    fn ban(until: Option<UnixSecs>) -> Ban {
        ban_of("b", until)
    }

    #[test]
    fn each_record_ends_a_retention_after_its_last_change() {
        let keep = Retention::default();
        let mut r = report(1_000);
        assert_eq!(keep.report_ends(&r), 1_000 + 90 * DAY);
        r.reporters[0].at = 2_000;
        r.resolution = Some(Resolution {
            by: "ana".into(),
            action: Status::Dismissed,
            at: 5_000,
            note: None,
            ban: None,
        });
        assert_eq!(
            keep.report_ends(&r),
            5_000 + 90 * DAY,
            "from the resolution"
        );
        let none = BTreeSet::new();
        assert!(keep.keeps_report(&r, 5_000 + 90 * DAY - 1, &none));
        assert!(!keep.keeps_report(&r, 5_000 + 90 * DAY, &none));
        // The grounds of a ban that still bans are kept as long as it does.
        r.resolution.as_mut().unwrap().ban = Some("b".into());
        let active = BTreeSet::from(["b".to_owned()]);
        assert!(keep.keeps_report(&r, 5_000 + 900 * DAY, &active));

        assert_eq!(keep.ban_ends(&ban(Some(100))), Some(100 + 30 * DAY));
        assert_eq!(keep.ban_ends(&ban(None)), None, "kept while it bans");
        let mut lifted = ban(None);
        lifted.lifted = Some(Lifted {
            by: "ana".into(),
            at: 50,
        });
        assert_eq!(keep.ban_ends(&lifted), Some(50 + 30 * DAY), "from the lift");
        assert!(keep.keeps_ban(&ban(None), UnixSecs::MAX));
        assert!(!keep.keeps_ban(&lifted, 50 + 30 * DAY));

        let entry = entry("e", 7);
        assert_eq!(keep.audit_ends(&entry), 7 + 365 * DAY);
        let blocks = Blocks {
            clients: vec![1],
            at: 9,
        };
        assert_eq!(keep.blocks_end(&blocks), 9 + 365 * DAY);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_purge_leaves_only_what_is_kept_in_the_embedded_database() {
        let dir = tempfile::tempdir().unwrap();
        let kv = crate::moderation::store::Embedded::open(dir.path()).unwrap();
        contract::purge_leaves_only_what_is_kept(std::sync::Arc::new(kv)).await;
    }
}
