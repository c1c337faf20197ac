//! Reports: what users file against the partner of a chat, what becomes of them, and the
//! automatic rule they feed.
//!
//! A session hands over a report once its state machine found the chat (the current one, or
//! the one that ended last, up to a minute ago) and took its evidence. A report is keyed by
//! chat and reported client, so reports of one chat by its side merge into one. Filing also
//! blocks the reported client for the reporter, for good, and counts towards the automatic
//! rule ([`Rule`]). Each reporter may file [`PER_HOUR`] reports an hour.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tandem_engine::session::Identity;
use tandem_ids::{ChatId, ClientId};

use super::allowance::Hourly;
use super::audit::Audit;
use super::banlist::IpRange;
use super::bans::{Bans, StoreSlot};
use super::records::{
    new_id, unix_now, Ban, Blocks, EvidenceLine, Issuer, Reason, Report, Reported, Reporter,
    Resolution, Status, Subject, Tally,
};
use super::retention::{active_bans, Retention};
use super::rules::Rule;
use super::stats::ModerationStats;
use super::store::{Bucket, StoreError};

/// Reports one reporter may file per hour.
pub const PER_HOUR: usize = 10;

/// The longest note kept, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// A report as a session files it.
#[derive(Clone, Debug)]
pub struct Filing {
    pub chat: ChatId,
    pub reporter: Arc<Identity>,
    pub reported: Arc<Identity>,
    /// The country the reporter was told of the reported.
    pub country: String,
    pub reason: Reason,
    pub note: Option<String>,
    pub evidence: Vec<EvidenceLine>,
}

/// Why a report was not filed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("too many reports: at most {PER_HOUR} an hour")]
    RateLimited,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a report could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no such report")]
    NotFound,
    #[error("the report was resolved already")]
    AlreadyResolved,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a moderator decides of a report.
#[derive(Clone, Debug)]
pub enum Decision {
    /// Nothing to act on: automatic bans from it are lifted.
    Dismiss,
    /// Ban the reported client (and its address) for this long (`None`: for good); automatic
    /// bans from it are kept.
    Ban(Option<Duration>),
}

/// A node's reports.
pub struct Reports {
    store: StoreSlot,
    bans: Arc<Bans>,
    audit: Arc<Audit>,
    rule: Rule,
    retention: Retention,
    stats: Arc<ModerationStats>,
    /// Filings per reporter (client key), for the hourly limit.
    allowance: Hourly,
}

/// The id of the report on `chat` against `reported`, so that its reports merge: a hash,
/// since the reporter is told it and must learn nothing of the reported client's id.
pub fn report_id(chat: ChatId, reported: &ClientId) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}:{}", chat.0, reported.as_str()));
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The key of a client's records in the tallies and blocks.
pub fn client_key(client: &ClientId) -> String {
    format!("{:016x}", client.key())
}

impl Reports {
    /// Reports kept in `store` for `retention`, tripping `rule` into `bans`.
    pub fn new(
        store: StoreSlot,
        bans: Arc<Bans>,
        audit: Arc<Audit>,
        rule: Rule,
        retention: Retention,
        stats: Arc<ModerationStats>,
    ) -> Self {
        Self {
            store,
            bans,
            audit,
            rule,
            retention,
            stats,
            allowance: Hourly::new(PER_HOUR),
        }
    }

    /// Files a report (or adds its reporter to the report of the same chat), blocks the
    /// reported client for the reporter, and runs the automatic rule. Returns the report's id.
    pub async fn file(&self, filing: Filing) -> Result<String, ReportError> {
        let now = unix_now();
        if !self.allowance.take(filing.reporter.client.key(), now) {
            return Err(ReportError::RateLimited);
        }
        let id = self.merge(&filing, now).await?;
        self.block(&filing, now).await?;
        self.run_rule(&filing, &id, now).await?;
        Ok(id)
    }

    /// Files a strike by the node's own filter (`filing.reporter`, the filter's identity)
    /// against `filing.reported`: merged into the report of that chat as a user's report is,
    /// with what was withheld as evidence, and counted by the automatic rule as one more
    /// reporter. No allowance and no blocks: the filter reports only what it caught.
    pub async fn strike(&self, filing: Filing) -> Result<String, ReportError> {
        let now = unix_now();
        let id = self.merge(&filing, now).await?;
        self.run_rule(&filing, &id, now).await?;
        Ok(id)
    }

    /// Adds the filing's reporter to the report of its chat (made if new); the report's id.
    async fn merge(&self, filing: &Filing, now: u64) -> Result<String, ReportError> {
        let store = self.store.get().await?;
        let id = report_id(filing.chat, &filing.reported.client);
        let reporter = Reporter {
            client: filing.reporter.client.as_str().to_owned(),
            reason: filing.reason,
            note: (filing.note.as_deref())
                .map(|n| n.chars().take(MAX_NOTE_CHARS).collect())
                .filter(|n: &String| !n.trim().is_empty()),
            at: now,
        };
        let added = store
            .modify::<Report, _>(Bucket::Reports, &id, |report| {
                let mut report = report.unwrap_or_else(|| Report {
                    id: id.clone(),
                    chat: filing.chat.to_string(),
                    reported: Reported {
                        client: filing.reported.client.as_str().to_owned(),
                        ip: filing.reported.ip,
                        device: (filing.reported.device.as_ref()).map(|d| d.as_str().to_owned()),
                        country: filing.country.clone(),
                    },
                    reporters: Vec::new(),
                    evidence: filing.evidence.clone(),
                    at: now,
                    status: Status::Open,
                    auto_bans: Vec::new(),
                    resolution: None,
                });
                if report.reporters.iter().any(|r| r.client == reporter.client) {
                    return None;
                }
                report.reporters.push(reporter.clone());
                Some(report)
            })
            .await?
            .is_some();
        if added {
            // Counted once per reporter of a chat.
            self.stats.report(filing.reason);
        }
        Ok(id)
    }
}

impl Reports {
    /// Blocks `filing.reported` for its reporter.
    async fn block(&self, filing: &Filing, now: u64) -> Result<(), ReportError> {
        let store = self.store.get().await?;
        let blocked = filing.reported.client.key();
        store
            .modify::<Blocks, _>(
                Bucket::Blocks,
                &client_key(&filing.reporter.client),
                |blocks| {
                    let mut blocks = blocks.unwrap_or_default();
                    if !blocks.clients.contains(&blocked) {
                        blocks.clients.push(blocked);
                    }
                    let keep = tandem_match::Blocked::MAX;
                    if blocks.clients.len() > keep {
                        let extra = blocks.clients.len() - keep;
                        blocks.clients.drain(..extra);
                    }
                    blocks.at = now;
                    Some(blocks)
                },
            )
            .await?;
        Ok(())
    }

    /// Counts the report towards the automatic rule, and bans if it trips.
    async fn run_rule(&self, filing: &Filing, report: &str, now: u64) -> Result<(), StoreError> {
        let store = self.store.get().await?;
        let reporter = filing.reporter.client.key();
        let rule = self.rule;
        // The length of the ban this report tripped, in seconds (0: none), as counted by the
        // attempt that was stored (a compare-and-set may run the count more than once).
        let tripped = AtomicU64::new(0);
        store
            .modify::<Tally, _>(
                Bucket::Tallies,
                &client_key(&filing.reported.client),
                |tally| {
                    let mut tally = tally.unwrap_or_default();
                    let length = rule.count(&mut tally, reporter, now);
                    tripped.store(length.map_or(0, |l| l.as_secs()), Ordering::Relaxed);
                    Some(tally)
                },
            )
            .await?;
        let length = Duration::from_secs(tripped.load(Ordering::Relaxed));
        if length.is_zero() {
            return Ok(());
        }
        let issuer = Issuer::Rule {
            rule: Rule::NAME.into(),
            report: report.to_owned(),
        };
        let reason = format!(
            "{} reports in {} minutes",
            rule.reporters,
            rule.window.as_secs() / 60
        );
        let issued = (self.bans)
            .issue_for(&filing.reported, &reason, issuer, now, length)
            .await?;
        tracing::info!(report, minutes = length.as_secs() / 60, "automatic ban");
        let target = report.to_owned();
        self.audit
            .record(
                &format!("rule:{}", Rule::NAME),
                "ban",
                &target,
                &format!("{} s: {}", length.as_secs(), issued.join(", ")),
            )
            .await?;
        store
            .modify::<Report, _>(Bucket::Reports, report, |report| {
                let mut report = report?;
                report.auto_bans.extend(issued.iter().cloned());
                Some(report)
            })
            .await?;
        Ok(())
    }

    /// The clients `client` blocks (reported before).
    pub async fn blocks_of(&self, client: &ClientId) -> Result<Vec<u64>, StoreError> {
        let store = self.store.get().await?;
        let blocks = store
            .get::<Blocks>(Bucket::Blocks, &client_key(client))
            .await?;
        Ok(blocks.map(|b| b.clients).unwrap_or_default())
    }

    /// The reports in `status` (every one with `None`): `minor` first, then the oldest.
    pub async fn list(&self, status: Option<Status>) -> Result<Vec<Report>, StoreError> {
        let store = self.store.get().await?;
        let now = unix_now();
        let active = active_bans(&store, now).await?;
        let mut reports: Vec<Report> = (store.all::<Report>(Bucket::Reports).await?)
            .into_iter()
            .map(|(_, report)| report)
            .filter(|report| status.is_none_or(|s| report.status == s))
            .filter(|report| self.retention.keeps_report(report, now, &active))
            .collect();
        reports.sort_by_key(|r| (r.reason() != Reason::Minor, r.at, r.id.clone()));
        Ok(reports)
    }

    /// One report.
    pub async fn get(&self, id: &str) -> Result<Option<Report>, StoreError> {
        let store = self.store.get().await?;
        let Some(report) = store.get::<Report>(Bucket::Reports, id).await? else {
            return Ok(None);
        };
        let now = unix_now();
        let active = active_bans(&store, now).await?;
        Ok(Some(report).filter(|r| self.retention.keeps_report(r, now, &active)))
    }

    /// A moderator's decision on an open report (once: a second decision finds it resolved).
    pub async fn resolve(
        &self,
        id: &str,
        decision: Decision,
        note: Option<String>,
        by: &str,
    ) -> Result<Report, ResolveError> {
        let store = self.store.get().await?;
        let report = self.get(id).await?.ok_or(ResolveError::NotFound)?;
        if report.status != Status::Open {
            return Err(ResolveError::AlreadyResolved);
        }
        let now = unix_now();
        let (action, bans) = match &decision {
            Decision::Dismiss => (Status::Dismissed, Vec::new()),
            Decision::Ban(length) => {
                // A minor is banned for good, by client, device and address alike.
                let minor = report.reason() == Reason::Minor;
                let until = if minor {
                    None
                } else {
                    length.map(|l| now + l.as_secs())
                };
                let reported = &report.reported;
                let mut subjects = vec![Subject::Client(reported.client.clone())];
                if minor {
                    subjects.extend(reported.device.clone().map(Subject::Device));
                    subjects.extend(
                        (reported.ip).map(|ip| Subject::Ip(IpRange::new(ip, None).to_string())),
                    );
                }
                let bans = subjects
                    .into_iter()
                    .map(|subject| Ban {
                        id: new_id(),
                        subject,
                        reason: format!("report {id}: {}", report.reason().as_str()),
                        issued_by: Issuer::Moderator {
                            name: by.to_owned(),
                        },
                        at: now,
                        until,
                        lifted: None,
                        confirmed: true,
                    })
                    .collect();
                (Status::Banned, bans)
            }
        };
        let resolution = Resolution {
            by: by.to_owned(),
            action,
            at: now,
            note: note.clone(),
            ban: bans.first().map(|b| b.id.clone()),
        };
        // Compare-and-set: of two moderators deciding at once, one wins.
        let resolved = store
            .modify::<Report, _>(Bucket::Reports, id, |report| {
                let mut report = report?;
                if report.status != Status::Open {
                    return None;
                }
                report.status = action;
                report.resolution = Some(resolution.clone());
                Some(report)
            })
            .await?
            .ok_or(ResolveError::AlreadyResolved)?;
        for ban in bans {
            let ban = self.bans.issue(ban).await?;
            self.audit
                .record(by, "ban", &ban.id, &format!("report {id}"))
                .await?;
        }
        for auto in &resolved.auto_bans {
            match decision {
                Decision::Dismiss => {
                    if let Some((_, true)) = self.bans.lift(auto, by).await? {
                        self.audit
                            .record(by, "lift", auto, &format!("report {id} dismissed"))
                            .await?;
                    }
                }
                Decision::Ban(_) => {
                    self.bans.confirm(auto).await?;
                    self.audit
                        .record(by, "confirm", auto, &format!("report {id}"))
                        .await?;
                }
            }
        }
        let action = match decision {
            Decision::Dismiss => "dismiss",
            Decision::Ban(_) => "resolve_ban",
        };
        let detail = note.unwrap_or_default();
        self.audit.record(by, action, id, &detail).await?;
        Ok(resolved)
    }
}
