//! Access and erasure: every stored record linked to a client id, as that client may see
//! it, and its erasure.
//!
//! Linked to a client are: the logs it saved, the reports it filed, the reports against it,
//! the bans on its client id, its blocks (the clients it reported) and the automatic rule's
//! tally of reports against it. Erasure removes all of it except what enforces a ban: an
//! active ban itself and the report it was issued on (its grounds, which a moderator may
//! need to review it), reports against the client still open (awaiting a moderator: erasing
//! them would let anyone escape review), and the automatic rule's tally (kept only for the
//! rule's short windows; erasing it would let a reported client dodge the rule). A report it
//! filed that grounds an active ban on someone else stays without its name or note. The
//! audit log is the moderators' record of their own actions: it names bans and reports by
//! id, never a client, and is kept for its own retention.
//!
//! Reading every record of a bucket is linear in the store's size: export and erasure are
//! rare, limited per client ([`ACCESS_PER_HOUR`]), and at most [`AT_ONCE`] run at a time on
//! a node, so that many clients asking at once cannot hold many copies of the store.

use std::collections::BTreeSet;

use serde::Serialize;
use tandem_ids::ClientId;

use crate::moderation::allowance::Hourly;
use crate::moderation::records::{
    unix_now, Ban, EvidenceLine, Issuer, Reason, Report, SavedLog, Status, Subject, Tally, UnixSecs,
};
use crate::moderation::reports::client_key;
use crate::moderation::store::{Bucket, ModerationStore, StoreError};
use crate::moderation::{Retention, Rule, StoreSlot};

/// Exports and erasures one client may ask for per hour.
pub const ACCESS_PER_HOUR: usize = 20;

/// Exports and erasures a node runs at once; more are refused as busy.
pub const AT_ONCE: usize = 2;

/// A saved log, as its saver sees it in an export.
#[derive(Clone, Debug, Serialize)]
pub struct LogRecord {
    pub id: String,
    pub url: String,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    pub saved_at: UnixSecs,
    pub common_interests: Vec<String>,
    pub lines: Vec<EvidenceLine>,
}

/// A report the client filed: what it said, not who it reported.
#[derive(Clone, Debug, Serialize)]
pub struct FiledRecord {
    pub id: String,
    pub chat: String,
    pub reason: Reason,
    pub note: Option<String>,
    pub at: UnixSecs,
    pub status: Status,
}

/// A report against the client, without its reporters' identities or notes.
#[derive(Clone, Debug, Serialize)]
pub struct AgainstRecord {
    pub id: String,
    pub chat: String,
    pub at: UnixSecs,
    pub status: Status,
    /// The reasons given, one per reporter.
    pub reasons: Vec<Reason>,
    /// What the report holds of the client: its address, device and country.
    pub ip: Option<String>,
    pub device: Option<String>,
    pub country: String,
    /// The chat's last lines, as the first reporter's side saw them.
    pub evidence: Vec<EvidenceLine>,
}

/// A ban on the client, without the moderators' names.
#[derive(Clone, Debug, Serialize)]
pub struct BanRecord {
    pub id: String,
    pub subject: Subject,
    pub reason: String,
    /// `moderator` or `rule`.
    pub issued_by: &'static str,
    pub at: UnixSecs,
    pub until: Option<UnixSecs>,
    /// When it was lifted before its end.
    pub lifted_at: Option<UnixSecs>,
    pub active: bool,
}

/// The automatic rule's memory of reports against the client.
#[derive(Clone, Debug, Serialize)]
pub struct TallyRecord {
    /// Reports against it within the rule's window.
    pub reports: usize,
    /// Automatic bans within the repeat window.
    pub bans: usize,
}

/// A record erasure keeps, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub what: String,
    pub why: String,
}

/// Everything stored that is linked to one client.
#[derive(Clone, Debug, Serialize)]
pub struct Export {
    /// The client id, in the short form logs use.
    pub client: String,
    pub saved_logs: Vec<LogRecord>,
    pub reports_filed: Vec<FiledRecord>,
    pub reports_against: Vec<AgainstRecord>,
    pub bans: Vec<BanRecord>,
    /// How many clients it blocks (it reported them; they are never paired again).
    pub blocks: usize,
    pub automatic_rule: Option<TallyRecord>,
    /// What of the above an erasure keeps, and why.
    pub kept: Vec<Kept>,
}

/// How many records an erasure removed, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub saved_logs: usize,
    pub reports_filed: usize,
    pub reports_against: usize,
    pub bans: usize,
    pub blocks: usize,
}

/// What an erasure did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Erasure {
    pub removed: Removed,
    pub kept: Vec<Kept>,
}

/// Why an export or erasure was not done.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("too many requests: at most {ACCESS_PER_HOUR} an hour")]
    RateLimited,
    #[error("too many requests at once on this node; try again in a moment")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Access to and erasure of what a node's store keeps about a client.
pub struct Access {
    store: StoreSlot,
    retention: Retention,
    rule: Rule,
    allowance: Hourly,
    running: tokio::sync::Semaphore,
}

/// A client's records, read once.
struct Linked {
    logs: Vec<SavedLog>,
    filed: Vec<Report>,
    against: Vec<Report>,
    bans: Vec<Ban>,
    blocks: usize,
    tally: Option<Tally>,
    /// The reports erasure keeps: the grounds of an active ban, and open reports against
    /// the client.
    grounds: BTreeSet<String>,
    /// The ids of every ban active now (any subject).
    active: BTreeSet<String>,
}

impl Access {
    /// Access to what `store` keeps for `retention` (tallies: for `rule`'s windows).
    pub fn new(store: StoreSlot, retention: Retention, rule: Rule) -> Self {
        Self {
            store,
            retention,
            rule,
            allowance: Hourly::new(ACCESS_PER_HOUR),
            running: tokio::sync::Semaphore::new(AT_ONCE),
        }
    }

    /// Counts a request of `client` against its hourly allowance.
    fn allowed(&self, client: &ClientId) -> Result<(), AccessError> {
        if self.allowance.take(client.key(), unix_now()) {
            Ok(())
        } else {
            Err(AccessError::RateLimited)
        }
    }

    async fn linked(
        &self,
        store: &ModerationStore,
        client: &ClientId,
    ) -> Result<Linked, StoreError> {
        let now = unix_now();
        let me = client.as_str();
        let logs = (store.all::<SavedLog>(Bucket::Logs).await?)
            .into_iter()
            .map(|(_, log)| log)
            .filter(|log| log.saver == me && now < self.retention.log_ends(log))
            .collect();
        let all_bans: Vec<Ban> = (store.all::<Ban>(Bucket::Bans).await?)
            .into_iter()
            .map(|(_, ban)| ban)
            .filter(|ban| self.retention.keeps_ban(ban, now))
            .collect();
        let active: BTreeSet<String> = all_bans
            .iter()
            .filter(|ban| ban.active(now))
            .map(|ban| ban.id.clone())
            .collect();
        let reports: Vec<Report> = (store.all::<Report>(Bucket::Reports).await?)
            .into_iter()
            .map(|(_, report)| report)
            .filter(|report| self.retention.keeps_report(report, now, &active))
            .collect();
        let grounds = reports
            .iter()
            .filter(|report| {
                let pending = report.reported.client == me && report.status == Status::Open;
                pending || report.bans().any(|ban| active.contains(ban))
            })
            .map(|report| report.id.clone())
            .collect();
        let (against, rest): (Vec<Report>, Vec<Report>) = reports
            .into_iter()
            .partition(|report| report.reported.client == me);
        let filed = rest
            .into_iter()
            .filter(|report| report.reporters.iter().any(|r| r.client == me))
            .collect();
        let bans = all_bans
            .into_iter()
            .filter(|ban| ban.subject == Subject::Client(me.to_owned()))
            .collect();
        let key = client_key(client);
        let blocks = (store
            .get::<crate::moderation::records::Blocks>(Bucket::Blocks, &key)
            .await?)
            .filter(|blocks| now < self.retention.blocks_end(blocks))
            .map_or(0, |blocks| blocks.clients.len());
        let tally = (store.get::<Tally>(Bucket::Tallies, &key).await?)
            .filter(|tally| now < self.rule.expires(tally));
        Ok(Linked {
            logs,
            filed,
            against,
            bans,
            blocks,
            tally,
            grounds,
            active,
        })
    }

    /// Every stored record linked to `client`.
    pub async fn export(&self, client: &ClientId) -> Result<Export, AccessError> {
        let _running = self.running.try_acquire().map_err(|_| AccessError::Busy)?;
        self.allowed(client)?;
        let store = self.store.get().await?;
        let linked = self.linked(&store, client).await?;
        let me = client.as_str();
        let kept = kept(&linked);
        let now = unix_now();
        Ok(Export {
            client: client.to_string(),
            saved_logs: (linked.logs.into_iter())
                .map(|log| LogRecord {
                    url: format!("/logs/{}", log.id),
                    id: log.id,
                    started_ms: log.started_ms,
                    ended_ms: log.ended_ms,
                    saved_at: log.saved_at,
                    common_interests: log.common_interests,
                    lines: log.lines,
                })
                .collect(),
            reports_filed: (linked.filed.iter())
                .filter_map(|report| {
                    let mine = report.reporters.iter().find(|r| r.client == me)?;
                    Some(FiledRecord {
                        id: report.id.clone(),
                        chat: report.chat.clone(),
                        reason: mine.reason,
                        note: mine.note.clone(),
                        at: mine.at,
                        status: report.status,
                    })
                })
                .collect(),
            reports_against: (linked.against.into_iter())
                .map(|report| AgainstRecord {
                    id: report.id,
                    chat: report.chat,
                    at: report.at,
                    status: report.status,
                    reasons: report.reporters.iter().map(|r| r.reason).collect(),
                    ip: report.reported.ip.map(|ip| ip.to_string()),
                    device: report.reported.device,
                    country: report.reported.country,
                    evidence: report.evidence,
                })
                .collect(),
            bans: (linked.bans.into_iter())
                .map(|ban| BanRecord {
                    active: ban.active(now),
                    issued_by: match ban.issued_by {
                        Issuer::Moderator { .. } => "moderator",
                        Issuer::Rule { .. } => "rule",
                    },
                    lifted_at: ban.lifted.map(|lifted| lifted.at),
                    id: ban.id,
                    subject: ban.subject,
                    reason: ban.reason,
                    at: ban.at,
                    until: ban.until,
                })
                .collect(),
            blocks: linked.blocks,
            automatic_rule: linked.tally.map(|tally| TallyRecord {
                reports: tally.reports.len(),
                bans: tally.bans.len(),
            }),
            kept,
        })
    }

    /// Erases every record linked to `client` except what enforces an active ban.
    pub async fn erase(&self, client: &ClientId) -> Result<Erasure, AccessError> {
        let _running = self.running.try_acquire().map_err(|_| AccessError::Busy)?;
        self.allowed(client)?;
        self.erase_unlimited(client)
            .await
            .map_err(AccessError::from)
    }

    /// [`Access::erase`] without the hourly allowance: for the node's own decisions (a
    /// minor's data, erased when a moderator confirms the report).
    pub async fn erase_unlimited(&self, client: &ClientId) -> Result<Erasure, StoreError> {
        let store = self.store.get().await?;
        let linked = self.linked(&store, client).await?;
        let me = client.as_str();
        let kept = kept(&linked);
        let mut removed = Removed::default();
        for log in &linked.logs {
            store.remove(Bucket::Logs, &log.id).await?;
            removed.saved_logs += 1;
        }
        for report in &linked.against {
            if !linked.grounds.contains(&report.id) {
                store.remove(Bucket::Reports, &report.id).await?;
                removed.reports_against += 1;
            }
        }
        for report in &linked.filed {
            let grounds = linked.grounds.contains(&report.id);
            let changed = store
                .modify::<Report, _>(Bucket::Reports, &report.id, |report| {
                    let mut report = report?;
                    let mine = report.reporters.iter().position(|r| r.client == me)?;
                    if grounds {
                        // The report stays, as the grounds of a ban, without the reporter.
                        let reporter = &mut report.reporters[mine];
                        reporter.client = ERASED.to_owned();
                        reporter.note = None;
                    } else {
                        report.reporters.remove(mine);
                    }
                    Some(report)
                })
                .await?;
            if changed.is_some_and(|report| report.reporters.is_empty()) {
                store.remove(Bucket::Reports, &report.id).await?;
            }
            if !grounds {
                removed.reports_filed += 1;
            }
        }
        for ban in &linked.bans {
            if !linked.active.contains(&ban.id) {
                store.remove(Bucket::Bans, &ban.id).await?;
                removed.bans += 1;
            }
        }
        let key = client_key(client);
        if linked.blocks > 0 {
            store.remove(Bucket::Blocks, &key).await?;
            removed.blocks += 1;
        }
        Ok(Erasure { removed, kept })
    }
}

/// What a reporter's id becomes in a report kept as the grounds of a ban after that reporter
/// asked for erasure.
pub const ERASED: &str = "erased";

/// What an erasure of `linked` keeps, and why.
fn kept(linked: &Linked) -> Vec<Kept> {
    let mut kept = Vec::new();
    for ban in linked.bans.iter().filter(|b| linked.active.contains(&b.id)) {
        let until = ban.until.map_or_else(
            || "for good".to_owned(),
            |until| format!("until {until} (Unix time)"),
        );
        kept.push(Kept {
            what: format!("ban {}", ban.id),
            why: format!("it bans this client {until}; it goes when it ends"),
        });
    }
    for report in linked
        .against
        .iter()
        .filter(|r| linked.grounds.contains(&r.id))
    {
        kept.push(Kept {
            what: format!("report {}", report.id),
            why: if report.status == Status::Open {
                "a report against this client awaiting a moderator's review".to_owned()
            } else {
                "the grounds of an active ban on this client, kept while the ban bans".to_owned()
            },
        });
    }
    for report in linked
        .filed
        .iter()
        .filter(|r| linked.grounds.contains(&r.id))
    {
        kept.push(Kept {
            what: format!("report {}", report.id),
            why: "a report this client filed that grounds an active ban on someone else: kept \
                  without this client's id or note"
                .to_owned(),
        });
    }
    if linked.tally.is_some() {
        kept.push(Kept {
            what: "the automatic rule's count of reports against this client".to_owned(),
            why: "it goes by itself once the rule's windows (minutes to a day) have passed"
                .to_owned(),
        });
    }
    kept
}
