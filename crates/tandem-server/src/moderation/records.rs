//! What the moderation store keeps, as records: bans, reports with their evidence, the audit
//! log, the automatic rules' tallies, and each client's blocks. These are also the shapes of
//! the operator API's JSON (docs/moderation.md).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch.
pub type UnixSecs = u64;

/// Who or what a ban bans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Subject {
    /// A client id.
    Client(String),
    /// An address or a range in CIDR notation (`203.0.113.0/24`); an IPv6 address is
    /// banned by its /64 at least, since one host holds a whole /64.
    Ip(String),
    /// A device id (the page's hint).
    Device(String),
}

/// Who issued a ban.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Issuer {
    /// A named moderator (the name of the admin token used).
    Moderator { name: String },
    /// An automatic rule, on the report that tripped it.
    Rule { rule: String, report: String },
}

/// A ban.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    pub id: String,
    pub subject: Subject,
    pub reason: String,
    pub issued_by: Issuer,
    pub at: UnixSecs,
    /// When it ends; `None`: permanent.
    pub until: Option<UnixSecs>,
    /// Lifted before its end: by whom and when.
    #[serde(default)]
    pub lifted: Option<Lifted>,
    /// An automatic ban a moderator has looked at and kept.
    #[serde(default)]
    pub confirmed: bool,
}

/// A ban's early end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifted {
    pub by: String,
    pub at: UnixSecs,
}

impl Ban {
    /// Whether it bans at `now`.
    pub fn active(&self, now: UnixSecs) -> bool {
        self.lifted.is_none() && self.until.is_none_or(|until| now < until)
    }
}

/// Why a user reports another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Nudity,
    Minor,
    Harassment,
    Hate,
    Spam,
    Scam,
    Other,
}

impl Reason {
    /// Every reason, in the order the page offers them.
    pub const ALL: [Reason; 7] = [
        Self::Nudity,
        Self::Minor,
        Self::Harassment,
        Self::Hate,
        Self::Spam,
        Self::Scam,
        Self::Other,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nudity => "nudity",
            Self::Minor => "minor",
            Self::Harassment => "harassment",
            Self::Hate => "hate",
            Self::Spam => "spam",
            Self::Scam => "scam",
            Self::Other => "other",
        }
    }

    /// The reason named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// Who a report is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reported {
    pub client: String,
    pub ip: Option<IpAddr>,
    pub device: Option<String>,
    /// The country the reporter was told.
    pub country: String,
}

/// One user who reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reporter {
    pub client: String,
    pub reason: Reason,
    pub note: Option<String>,
    pub at: UnixSecs,
}

/// One line of a reported chat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceLine {
    /// When it was written, in Unix milliseconds.
    pub at_ms: u64,
    /// `reported` or `reporter`.
    pub from: String,
    pub text: String,
}

/// Where a report stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Dismissed,
    Banned,
}

impl Status {
    /// The status named `text` (`open`, `dismissed`, `banned`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(Self::Open),
            "dismissed" => Some(Self::Dismissed),
            "banned" => Some(Self::Banned),
            _ => None,
        }
    }
}

/// What a moderator decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub by: String,
    pub action: Status,
    pub at: UnixSecs,
    pub note: Option<String>,
    /// The ban it issued or kept.
    pub ban: Option<String>,
}

/// A report: one chat, one reported client, every reporter of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub id: String,
    pub chat: String,
    pub reported: Reported,
    /// Distinct reporters, the first first.
    pub reporters: Vec<Reporter>,
    /// The chat's last lines, from the first reporter's side.
    pub evidence: Vec<EvidenceLine>,
    pub at: UnixSecs,
    pub status: Status,
    /// Bans an automatic rule issued on this report, for a moderator to confirm or lift.
    #[serde(default)]
    pub auto_bans: Vec<String>,
    #[serde(default)]
    pub resolution: Option<Resolution>,
}

impl Report {
    /// The bans issued on this report: by a moderator's resolution, or by the automatic rule.
    pub fn bans(&self) -> impl Iterator<Item = &String> {
        let resolution = self.resolution.as_ref().and_then(|r| r.ban.as_ref());
        resolution.into_iter().chain(&self.auto_bans)
    }

    /// The most serious reason given: `minor` above all.
    pub fn reason(&self) -> Reason {
        let reasons = self.reporters.iter().map(|r| r.reason);
        if reasons.clone().any(|r| r == Reason::Minor) {
            return Reason::Minor;
        }
        reasons.min().unwrap_or(Reason::Other)
    }
}

/// One moderator action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: String,
    pub at: UnixSecs,
    /// The moderator's name, or `rule:<name>` for an automatic action.
    pub who: String,
    /// `ban`, `lift`, `dismiss`, `confirm`.
    pub action: String,
    /// The ban or report acted on.
    pub target: String,
    pub detail: String,
}

/// What the automatic rules remember of one reported client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Reports against it in the rule's window: reporter client key and time.
    pub reports: Vec<(u64, UnixSecs)>,
    /// When the rules banned it, in the escalation window.
    pub bans: Vec<UnixSecs>,
}

/// The clients one client reported, by key: it is never paired with them again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocks {
    pub clients: Vec<u64>,
    /// When it last changed: the record goes when it is this old (docs/moderation.md).
    pub at: UnixSecs,
}

/// A proof-of-work challenge that was solved: its solution is not accepted again; kept
/// until `expires`, a little after the challenge itself expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spent {
    pub expires: UnixSecs,
}

/// A chat log a user saved: what that user's session saw of one chat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedLog {
    /// 32 hex digits (128 random bits): the log's address, `/logs/<id>`.
    pub id: String,
    /// The SHA-256 (hex) of the secret `delete_url` carries.
    pub secret_hash: String,
    /// The client that saved it (for its own access and erasure; never shown).
    pub saver: String,
    /// When the chat began, and ended (Unix milliseconds).
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    /// When it was (last) saved.
    pub saved_at: UnixSecs,
    pub common_interests: Vec<String>,
    /// Both sides' lines, oldest first; `from` is `you` (the saver) or `stranger`.
    pub lines: Vec<EvidenceLine>,
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> UnixSecs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DD HH:MM:SS` of Unix seconds, in UTC.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let of_day = secs % 86_400;
    // Days to the civil date (proleptic Gregorian), after Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        of_day / 3_600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// A fresh random id: 16 hex digits.
pub fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_787_318_580), "2026-08-21 13:23:00");
    }

    #[test]
    fn subjects_and_issuers_read_as_the_api_writes_them() {
        let subject: Subject =
            serde_json::from_str(r#"{"kind": "ip", "value": "203.0.113.0/24"}"#).unwrap();
        assert_eq!(subject, Subject::Ip("203.0.113.0/24".into()));
        let json = serde_json::to_value(Issuer::Moderator { name: "ana".into() }).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "moderator", "name": "ana"})
        );
    }

    #[test]
    fn a_minor_report_ranks_first_whatever_came_before() {
        let reporter = |reason| Reporter {
            client: "c".into(),
            reason,
            note: None,
            at: 0,
        };
        let mut report = Report {
            id: "r".into(),
            chat: "c".into(),
            reported: Reported {
                client: "x".into(),
                ip: None,
                device: None,
                country: "ZZ".into(),
            },
            reporters: vec![reporter(Reason::Spam)],
            evidence: Vec::new(),
            at: 0,
            status: Status::Open,
            auto_bans: Vec::new(),
            resolution: None,
        };
        assert_eq!(report.reason(), Reason::Spam);
        report.reporters.push(reporter(Reason::Nudity));
        assert_eq!(report.reason(), Reason::Nudity);
        report.reporters.push(reporter(Reason::Minor));
        assert_eq!(report.reason(), Reason::Minor);
        assert_eq!(Reason::parse("hate"), Some(Reason::Hate));
        assert_eq!(Reason::parse("rude"), None);
    }

    #[test]
    fn a_ban_bans_until_its_end_unless_lifted() {
        let mut ban = Ban {
            id: "b".into(),
            subject: Subject::Client("c".into()),
            reason: "spam".into(),
            issued_by: Issuer::Moderator { name: "ana".into() },
            at: 100,
            until: Some(200),
            lifted: None,
            confirmed: false,
        };
        assert!(ban.active(199) && !ban.active(200));
        ban.until = None;
        assert!(ban.active(u64::MAX), "permanent");
        ban.lifted = Some(Lifted {
            by: "ana".into(),
            at: 150,
        });
        assert!(!ban.active(151));
    }
}
