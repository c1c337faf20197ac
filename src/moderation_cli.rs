//! `tandem moderation`: a node's operator API (`/admin/api/…`, behind `--admin-token`) from a
//! shell: the review queue, the bans, banning, lifting and resolving a report. One blocking
//! HTTP request per command, over http:// or https://; tables for people, `--json` for
//! scripts. It acts only through the API, so the node checks every input and audits every
//! action under the name of the token's moderator; nothing here decides what a ban means.

use std::fmt;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;
use tandem_server::moderation::records::{utc, Ban, Issuer, Report, Status, Subject};

/// How long connecting to the node (and the TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one request may take, its answer read.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest answer read: the whole review queue, evidence included.
const MAX_ANSWER_BYTES: u64 = 64 * 1024 * 1024;

/// The widest a free-text cell of a table is; the rest is cut to `…` (`--json` has it whole).
const MAX_CELL_CHARS: usize = 40;

/// `tandem moderation`: which node, as which moderator, and what to do.
#[derive(Args)]
pub struct ModerationArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[command(subcommand)]
    command: ModerationCommand,
}

/// Where the operator API is and the token to use it with; accepted before or after the
/// subcommand.
#[derive(Args)]
struct ApiArgs {
    /// The node's base URL, http:// or https:// (the API is at URL/admin/api/…).
    #[arg(
        long,
        env = "TANDEM_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,

    /// A moderator's token: the TOKEN of the node's `--admin-token NAME=TOKEN`. The node
    /// audits what is done under its NAME. Prefer the environment variable (a flag shows in
    /// the process list).
    #[arg(
        long,
        env = "TANDEM_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    admin_token: Option<String>,
}

#[derive(Subcommand)]
enum ModerationCommand {
    /// The review queue: reports about `minor` first, then the oldest.
    Reports {
        /// Which reports: open, dismissed, banned or all.
        #[arg(long, default_value = "open", value_parser = ["open", "dismissed", "banned", "all"])]
        status: String,
        /// Print the node's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The bans, lifted and expired ones included.
    Bans {
        /// Only the bans that ban now.
        #[arg(long)]
        active: bool,
        /// Print the node's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Ban a client, an address or range, or a device; prints the new ban's id.
    Ban(BanArgs),
    /// Lift a ban before its end.
    Lift {
        /// The ban's id (`tandem moderation bans` lists them).
        ban: String,
    },
    /// Resolve an open report: dismiss it (lifting the bans a rule issued on it), or ban the
    /// reported client (confirming them).
    Resolve(ResolveArgs),
}

#[derive(Args)]
struct BanArgs {
    #[command(flatten)]
    subject: SubjectArgs,
    /// How long the ban lasts: 10m, 12h, 7d… (fractions of a second round up). Without it,
    /// the ban is permanent.
    #[arg(long = "for", value_name = "DURATION", value_parser = whole_seconds)]
    duration_s: Option<u64>,
    /// Why, for the audit log and the other moderators (1 to 500 characters).
    #[arg(long)]
    reason: String,
}

/// Who or what a ban bans: exactly one of them.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct SubjectArgs {
    /// A client id, whole (`reports --json` shows it).
    #[arg(long, value_name = "ID")]
    client: Option<String>,
    /// An address, or a range in CIDR notation (an IPv6 address is banned by its /64).
    #[arg(long, value_name = "ADDR_OR_CIDR")]
    ip: Option<String>,
    /// A device id.
    #[arg(long, value_name = "ID")]
    device: Option<String>,
}

impl SubjectArgs {
    fn subject(self) -> Subject {
        match (self.client, self.ip, self.device) {
            (Some(client), _, _) => Subject::Client(client),
            (_, Some(ip), _) => Subject::Ip(ip),
            // clap requires exactly one of the three.
            (_, _, device) => Subject::Device(device.unwrap_or_default()),
        }
    }
}

#[derive(Args)]
struct ResolveArgs {
    /// The report's id (`tandem moderation reports` lists them).
    report: String,
    /// Dismiss the report.
    #[arg(long, required_unless_present = "ban", conflicts_with = "ban")]
    dismiss: bool,
    /// Ban the reported client.
    #[arg(long)]
    ban: bool,
    /// How long the ban lasts (with --ban; default: permanent).
    #[arg(long = "for", value_name = "DURATION", value_parser = whole_seconds, requires = "ban")]
    duration_s: Option<u64>,
    /// A note for the audit log.
    #[arg(long)]
    note: Option<String>,
}

/// A ban's length in whole seconds, as the API takes it: at least one.
fn whole_seconds(text: &str) -> Result<u64, String> {
    let length = tandem_proto::duration::parse_duration(text)?;
    if length < Duration::from_secs(1) {
        return Err(format!("`{text}`: a ban lasts at least 1s"));
    }
    Ok(length.as_secs() + u64::from(length.subsec_nanos() > 0))
}

/// Runs the command against the node; returns what to print.
pub fn run(args: ModerationArgs) -> anyhow::Result<String> {
    let api = Api::new(&args.api)?;
    match args.command {
        ModerationCommand::Reports { status, json } => {
            let body = api.call(Method::Get, &format!("reports?status={status}"), None)?;
            if json {
                return Ok(with_newline(body));
            }
            let reports = api.parse::<Vec<Report>>(&body, "reports")?;
            if reports.is_empty() {
                return Ok(format!("no reports ({status})\n"));
            }
            Ok(reports_table(&reports))
        }
        ModerationCommand::Bans { active, json } => {
            let body = api.call(Method::Get, "bans", None)?;
            let mut views = api.parse::<Vec<Value>>(&body, "bans")?;
            if active {
                views.retain(|view| view["active"] == Value::Bool(true));
            }
            if json {
                let body = if active {
                    serde_json::to_string(&views)?
                } else {
                    body
                };
                return Ok(with_newline(body));
            }
            let bans = views
                .into_iter()
                .map(|view| {
                    let active = view["active"] == Value::Bool(true);
                    Ok((api.parse_value::<Ban>(view, "bans")?, active))
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            if bans.is_empty() {
                return Ok(if active {
                    "no active bans\n"
                } else {
                    "no bans\n"
                }
                .to_owned());
            }
            Ok(bans_table(&bans))
        }
        ModerationCommand::Ban(ban) => {
            let request = serde_json::json!({
                "subject": ban.subject.subject(),
                "duration_s": ban.duration_s,
                "reason": ban.reason,
            });
            let body = api.call(Method::Post, "bans", Some(&request))?;
            let ban = api.parse::<Ban>(&body, "bans")?;
            Ok(format!("{}\n", ban.id))
        }
        ModerationCommand::Lift { ban } => {
            let id = checked_id("ban", &ban)?;
            let path = format!("bans/{id}");
            let body = api.call(Method::Delete, &path, None)?;
            let ban = api.parse::<Ban>(&body, &path)?;
            let by = ban.lifted.as_ref().map_or_else(String::new, |lifted| {
                format!(", by {} at {}", cell(&lifted.by), utc(lifted.at))
            });
            Ok(format!(
                "lifted {} ({}{by})\n",
                ban.id,
                subject_cell(&ban.subject)
            ))
        }
        ModerationCommand::Resolve(resolve) => {
            let id = checked_id("report", &resolve.report)?;
            let request = serde_json::json!({
                "action": if resolve.ban { "ban" } else { "dismiss" },
                "duration_s": resolve.duration_s,
                "note": resolve.note,
            });
            let path = format!("reports/{id}/resolve");
            let body = api.call(Method::Post, &path, Some(&request))?;
            let report = api.parse::<Report>(&body, &path)?;
            let ban = report.resolution.and_then(|r| r.ban);
            Ok(match ban {
                Some(ban) => format!("{}: banned the reported client (ban {ban})\n", report.id),
                None => format!("{}: {}\n", report.id, status_name(report.status)),
            })
        }
    }
}

fn with_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// An id fit to be a path segment (the node's ids are 16 hex digits).
fn checked_id<'a>(kind: &str, id: &'a str) -> anyhow::Result<&'a str> {
    let fits = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    anyhow::ensure!(fits, "`{id}` is not a {kind} id");
    Ok(id)
}

/// The HTTP methods the API uses.
#[derive(Clone, Copy)]
enum Method {
    Get,
    Post,
    Delete,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Delete => "DELETE",
        })
    }
}

/// Why a request to the API did not give its answer; each reads as one line.
#[derive(Debug)]
enum ApiError {
    /// The node answered with an error status; `message` is its `error` text, or what else
    /// it said.
    Refused {
        request: String,
        status: u16,
        message: String,
    },
    /// No answer: the connection, TLS or the request failed, or it took too long.
    Unreachable { base: String, reason: String },
    /// The node answered success with something other than the API's JSON.
    Unexpected { request: String, reason: String },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused {
                request,
                status,
                message,
            } => {
                let name = ureq::http::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                write!(f, "{request}: the node answered {status} {name}: {message}")
            }
            Self::Unreachable { base, reason } => {
                write!(f, "cannot reach the node at {base}: {reason}")
            }
            Self::Unexpected { request, reason } => {
                write!(f, "{request}: not the operator API's answer: {reason}")
            }
        }
    }
}

impl std::error::Error for ApiError {}

/// One node's operator API, as one moderator.
struct Api {
    agent: ureq::Agent,
    /// The base URL, without a trailing `/`.
    base: String,
    /// `Bearer <token>`.
    authorization: String,
}

impl Api {
    fn new(args: &ApiArgs) -> anyhow::Result<Self> {
        let base = args.url.trim().trim_end_matches('/').to_owned();
        anyhow::ensure!(
            base.starts_with("http://") || base.starts_with("https://"),
            "--url must start with http:// or https:// (got `{}`)",
            args.url
        );
        let token = args.admin_token.as_deref().map(str::trim).unwrap_or("");
        anyhow::ensure!(
            !token.is_empty(),
            "--admin-token (or TANDEM_ADMIN_TOKEN) is required: a moderator's token of the node"
        );
        anyhow::ensure!(
            !token.chars().any(char::is_control),
            "--admin-token must not hold control characters"
        );
        let config = ureq::Agent::config_builder()
            // Error statuses are answers: their `error` text is what the operator reads.
            .http_status_as_error(false)
            // A redirect is reported, not followed: the token would not go with it, and a
            // POST cannot follow one.
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .user_agent(format!("tandem/{}", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self {
            agent: ureq::Agent::new_with_config(config),
            base,
            authorization: format!("Bearer {token}"),
        })
    }

    /// `method` on `/admin/api/{path}` with a JSON body; the answer's text on success.
    fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<String, ApiError> {
        let url = format!("{}/admin/api/{path}", self.base);
        let sent = match method {
            Method::Get => self
                .agent
                .get(&url)
                .header("Authorization", &self.authorization)
                .call(),
            Method::Delete => self
                .agent
                .delete(&url)
                .header("Authorization", &self.authorization)
                .call(),
            Method::Post => self
                .agent
                .post(&url)
                .header("Authorization", &self.authorization)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(&Value::Null).to_string()),
        };
        let unreachable = |err: ureq::Error| ApiError::Unreachable {
            base: self.base.clone(),
            reason: match err {
                ureq::Error::Io(err) => err.to_string(),
                other => other.to_string(),
            },
        };
        let mut answer = sent.map_err(unreachable)?;
        let status = answer.status();
        let location = answer
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let text = answer
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(unreachable)?;
        if status.is_success() {
            return Ok(text);
        }
        Err(ApiError::Refused {
            request: format!("{method} {url}"),
            status: status.as_u16(),
            message: refusal(status.as_u16(), &text, location.as_deref()),
        })
    }

    /// The answer of `/admin/api/{path}` read as `T`.
    fn parse<T: serde::de::DeserializeOwned>(&self, text: &str, path: &str) -> Result<T, ApiError> {
        serde_json::from_str(text).map_err(|err| self.unexpected(path, err))
    }

    /// One item of an answer read as `T`.
    fn parse_value<T: serde::de::DeserializeOwned>(
        &self,
        value: Value,
        path: &str,
    ) -> Result<T, ApiError> {
        serde_json::from_value(value).map_err(|err| self.unexpected(path, err))
    }

    fn unexpected(&self, path: &str, err: serde_json::Error) -> ApiError {
        ApiError::Unexpected {
            request: format!("{}/admin/api/{path}", self.base),
            reason: err.to_string(),
        }
    }
}

/// What to tell of an error answer: the API's `error` text, else what the status means here.
fn refusal(status: u16, text: &str, location: Option<&str>) -> String {
    if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) {
        if let Some(Value::String(error)) = object.get("error") {
            return cell_of(error, 200);
        }
    }
    match (status, location) {
        (300..=399, Some(location)) => {
            format!(
                "redirected to {}: use that as --url",
                cell_of(location, 200)
            )
        }
        (404, _) => "no operator API there: is --url the node's base URL, and does the node run \
                     with --admin-token?"
            .to_owned(),
        _ if text.trim().is_empty() => "no explanation given".to_owned(),
        _ => cell_of(text.trim(), 200),
    }
}

/// The review queue as a table.
fn reports_table(reports: &[Report]) -> String {
    let rows = reports
        .iter()
        .map(|report| {
            let reported = &report.reported;
            let client = tandem_ids::ClientId::parse(&reported.client)
                .map_or_else(|| cell(&reported.client), |id| id.to_string());
            vec![
                report.id.clone(),
                utc(report.at),
                report.reason().as_str().to_owned(),
                report.reporters.len().to_string(),
                client,
                reported
                    .ip
                    .map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
                or_dash(cell(&reported.country)),
                status_name(report.status).to_owned(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "TIME (UTC)",
            "REASON",
            "REPORTERS",
            "CLIENT",
            "IP",
            "COUNTRY",
            "STATUS",
        ],
        rows,
    )
}

/// The bans, each with whether it bans now, as a table.
fn bans_table(bans: &[(Ban, bool)]) -> String {
    let rows = bans
        .iter()
        .map(|(ban, active)| {
            let issued_by = match &ban.issued_by {
                Issuer::Moderator { name } => cell(name),
                Issuer::Rule { rule, .. } => format!("rule:{}", cell(rule)),
            };
            let state = match (&ban.lifted, active) {
                (Some(lifted), _) => format!("lifted by {}", cell(&lifted.by)),
                (None, true) if !ban.confirmed => "active, unconfirmed".to_owned(),
                (None, true) => "active".to_owned(),
                (None, false) => "expired".to_owned(),
            };
            vec![
                ban.id.clone(),
                subject_cell(&ban.subject),
                or_dash(cell(&ban.reason)),
                issued_by,
                ban.until.map_or_else(|| "permanent".to_owned(), utc),
                state,
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "SUBJECT",
            "REASON",
            "ISSUED BY",
            "UNTIL (UTC)",
            "STATE",
        ],
        rows,
    )
}

/// `kind:value`; a client id by its first characters only, as logs show it.
fn subject_cell(subject: &Subject) -> String {
    match subject {
        Subject::Client(value) => match tandem_ids::ClientId::parse(value) {
            Some(id) => format!("client:{id}"),
            None => format!("client:{}", cell(value)),
        },
        Subject::Ip(value) => format!("ip:{}", cell(value)),
        Subject::Device(value) => format!("device:{}", cell(value)),
    }
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Open => "open",
        Status::Dismissed => "dismissed",
        Status::Banned => "banned",
    }
}

fn or_dash(text: String) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text
    }
}

/// Free text fit for one cell: on one line, without control characters (a terminal would
/// act on them), at most [`MAX_CELL_CHARS`].
fn cell(text: &str) -> String {
    cell_of(text, MAX_CELL_CHARS)
}

fn cell_of(text: &str, max_chars: usize) -> String {
    let clean: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= max_chars {
        return clean;
    }
    let mut cut: String = clean.chars().take(max_chars - 1).collect();
    cut.push('…');
    cut
}

/// Left-aligned columns two spaces apart, under a header.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, value) in widths.iter_mut().zip(row) {
            *width = (*width).max(value.chars().count());
        }
    }
    let header = header.iter().map(|h| (*h).to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows) {
        let mut line = String::new();
        for (value, width) in row.iter().zip(&widths) {
            line.push_str(value);
            let pad = width - value.chars().count() + 2;
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_lengths_are_whole_seconds_of_at_least_one() {
        assert_eq!(whole_seconds("7d"), Ok(7 * 86_400));
        assert_eq!(whole_seconds("10m"), Ok(600));
        assert_eq!(whole_seconds("1.5s"), Ok(2));
        assert!(whole_seconds("250ms").is_err());
        assert!(whole_seconds("soon").is_err());
    }

    #[test]
    fn cells_are_one_line_and_cut() {
        assert_eq!(cell("spam\nand\x1b[31m more"), "spam and [31m more");
        let long = cell(&"x".repeat(100));
        assert_eq!(long.chars().count(), MAX_CELL_CHARS);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn refusals_tell_the_api_error_or_what_the_status_means() {
        assert_eq!(
            refusal(401, r#"{"error":"wrong token"}"#, None),
            "wrong token"
        );
        assert!(refusal(404, "not found\n", None).contains("--admin-token"));
        assert!(refusal(301, "", Some("https://mod.example/")).contains("https://mod.example/"));
        assert_eq!(refusal(502, "", None), "no explanation given");
    }

    #[test]
    fn tables_align_columns() {
        let out = table(
            &["ID", "NAME"],
            vec![
                vec!["1".into(), "ana".into()],
                vec!["22".into(), "bo".into()],
            ],
        );
        assert_eq!(out, "ID  NAME\n1   ana\n22  bo\n");
    }
}
