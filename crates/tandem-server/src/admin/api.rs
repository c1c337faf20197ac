//! The moderation API, JSON behind the moderators' bearer tokens:
//!
//! - `GET /admin/api/reports?status=open`: the review queue (`minor` first, then the oldest);
//! - `POST /admin/api/reports/{id}/resolve` `{"action": "dismiss" | "ban", "duration_s": N |
//!   null, "note": ...}`;
//! - `GET /admin/api/bans`, `POST /admin/api/bans` `{"subject": {"kind", "value"},
//!   "duration_s", "reason"}` (201 with the ban), `DELETE /admin/api/bans/{id}`;
//! - `GET /admin/api/audit`: every action, the newest first.
//!
//! Every route answers 401 without a valid token (404 when no token is configured at all),
//! and every action is written to the audit log under the name of the token's moderator.
//! Errors are `{"error": "..."}` with 400 (bad input), 404 (no such report or ban), 409 (a
//! report already resolved) or 503 (the store cannot be reached).

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use tandem_ids::{ClientId, DeviceId};

use super::Dashboard;
use crate::moderation::banlist::IpRange;
use crate::moderation::records::{new_id, unix_now, Ban, Issuer, Reason, Report, Status, Subject};
use crate::moderation::reports::{Decision, ResolveError, MAX_NOTE_CHARS};
use crate::moderation::store::StoreError;
use crate::privacy::Privacy;
use crate::web::secured;

/// The longest ban reason a moderator may write, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/api/reports", web::get().to(reports))
        .route("/admin/api/reports/{id}/resolve", web::post().to(resolve))
        .route("/admin/api/bans", web::get().to(bans))
        .route("/admin/api/bans", web::post().to(ban))
        .route("/admin/api/bans/{id}", web::delete().to(lift))
        .route("/admin/api/audit", web::get().to(audit))
        .route(
            "/admin/api/reports/{id}/snapshots",
            web::get().to(report_snapshots),
        )
        .route("/admin/api/snapshots/{id}", web::get().to(snapshot));
}

/// A JSON answer that no cache keeps.
fn json(status: actix_web::http::StatusCode, body: &impl Serialize) -> HttpResponse {
    secured(HttpResponse::build(status))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

fn error(status: actix_web::http::StatusCode, message: impl std::fmt::Display) -> HttpResponse {
    json(status, &serde_json::json!({ "error": message.to_string() }))
}

fn bad_request(message: impl std::fmt::Display) -> HttpResponse {
    error(actix_web::http::StatusCode::BAD_REQUEST, message)
}

impl Dashboard {
    /// The 503 of a store that failed, counted.
    fn store_failed(&self, err: StoreError) -> HttpResponse {
        tracing::warn!(error = %err, "moderation store");
        let errors = &self.moderation.stats.store_errors;
        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        error(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, err)
    }
}

fn ok(body: &impl Serialize) -> HttpResponse {
    json(actix_web::http::StatusCode::OK, body)
}

/// A JSON body, or the 400 that says what is wrong with it.
#[allow(clippy::result_large_err)] // The error is the answer, returned at once.
fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, HttpResponse> {
    serde_json::from_slice(bytes).map_err(|err| bad_request(format!("bad JSON: {err}")))
}

/// A report as the queue shows it: the record, and what a moderator reads first.
#[derive(Serialize)]
struct ReportView<'a> {
    #[serde(flatten)]
    report: &'a Report,
    /// The most serious reason given (`minor` above all).
    reason: &'static str,
    /// The first reporter's note, if any.
    note: Option<&'a str>,
    /// How many distinct users reported this chat.
    reporter_count: usize,
}

impl<'a> ReportView<'a> {
    fn of(report: &'a Report) -> Self {
        Self {
            reason: report.reason().as_str(),
            note: report.reporters.iter().find_map(|r| r.note.as_deref()),
            reporter_count: report.reporters.len(),
            report,
        }
    }
}

#[derive(Deserialize)]
struct ReportsQuery {
    status: Option<String>,
}

async fn reports(req: HttpRequest, dashboard: web::Data<Dashboard>) -> HttpResponse {
    if let Err(refused) = dashboard.moderator(&req) {
        return refused;
    }
    let query = match web::Query::<ReportsQuery>::from_query(req.query_string()) {
        Ok(query) => query.into_inner(),
        Err(err) => return bad_request(err),
    };
    let status = match query.status.as_deref() {
        None | Some("all") => None,
        Some(name) => match Status::parse(name) {
            Some(status) => Some(status),
            None => return bad_request("status must be open, dismissed, banned or all"),
        },
    };
    match dashboard.moderation.reports.list(status).await {
        Ok(reports) => ok(&reports.iter().map(ReportView::of).collect::<Vec<_>>()),
        Err(err) => dashboard.store_failed(err),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    action: String,
    #[serde(default)]
    duration_s: Option<u64>,
    #[serde(default)]
    note: Option<String>,
}

async fn resolve(
    req: HttpRequest,
    path: web::Path<String>,
    bytes: web::Bytes,
    dashboard: web::Data<Dashboard>,
    privacy: web::Data<Arc<Privacy>>,
) -> HttpResponse {
    let by = match dashboard.moderator(&req) {
        Ok(by) => by,
        Err(refused) => return refused,
    };
    let body: ResolveBody = match body(&bytes) {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let decision = match body.action.as_str() {
        "dismiss" => Decision::Dismiss,
        "ban" => Decision::Ban(body.duration_s.map(Duration::from_secs)),
        _ => return bad_request("action must be dismiss or ban"),
    };
    if body.duration_s == Some(0) {
        return bad_request("duration_s must be positive, or null for a permanent ban");
    }
    if let Some(note) = &body.note {
        if note.chars().count() > MAX_NOTE_CHARS {
            return bad_request(format!("note: at most {MAX_NOTE_CHARS} characters"));
        }
    }
    let id = path.into_inner();
    let reports = &dashboard.moderation.reports;
    match reports.resolve(&id, decision, body.note, &by).await {
        Ok(report) => match erase_if_minor(&report, &by, &dashboard, &privacy).await {
            Ok(()) => ok(&ReportView::of(&report)),
            Err(err) => dashboard.store_failed(err),
        },
        Err(ResolveError::NotFound) => {
            error(actix_web::http::StatusCode::NOT_FOUND, "no such report")
        }
        Err(ResolveError::AlreadyResolved) => {
            // A minor's erasure that failed after the ban (the store went away) is done on
            // the next try, which finds the report resolved: erasing twice is harmless.
            if let Ok(Some(report)) = reports.get(&id).await {
                if let Err(err) = erase_if_minor(&report, &by, &dashboard, &privacy).await {
                    return dashboard.store_failed(err);
                }
            }
            error(
                actix_web::http::StatusCode::CONFLICT,
                "the report was resolved already",
            )
        }
        Err(ResolveError::Store(err)) => dashboard.store_failed(err),
    }
}

/// A `minor` report resolved with a ban: the reported client's data goes, all but what
/// enforces the ban (docs/privacy.md), and the audit log says so.
async fn erase_if_minor(
    report: &Report,
    by: &str,
    dashboard: &Dashboard,
    privacy: &Privacy,
) -> Result<(), StoreError> {
    if report.status != Status::Banned || report.reason() != Reason::Minor {
        return Ok(());
    }
    let Some(client) = ClientId::parse(&report.reported.client) else {
        return Ok(());
    };
    let erasure = privacy
        .access
        .erase_unlimited(&client)
        .await
        .inspect_err(|err| {
            tracing::warn!(report = %report.id, error = %err, "a minor's data could not be erased");
        })?;
    let detail = format!("a minor's data erased: {:?}", erasure.removed);
    dashboard
        .moderation
        .audit
        .record(by, "erase", &report.id, &detail)
        .await
        .map(drop)
}

/// A ban as the API shows it: the record, and whether it bans now.
#[derive(Serialize)]
struct BanView<'a> {
    #[serde(flatten)]
    ban: &'a Ban,
    active: bool,
}

impl<'a> BanView<'a> {
    fn of(ban: &'a Ban) -> Self {
        Self {
            active: ban.active(unix_now()),
            ban,
        }
    }
}

async fn bans(req: HttpRequest, dashboard: web::Data<Dashboard>) -> HttpResponse {
    if let Err(refused) = dashboard.moderator(&req) {
        return refused;
    }
    match dashboard.moderation.bans.all().await {
        Ok(bans) => ok(&bans.iter().map(BanView::of).collect::<Vec<_>>()),
        Err(err) => dashboard.store_failed(err),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BanBody {
    subject: Subject,
    #[serde(default)]
    duration_s: Option<u64>,
    reason: String,
}

/// The subject as it is stored: an id checked, an address range in canonical form.
fn checked(subject: Subject) -> Result<Subject, &'static str> {
    match subject {
        Subject::Client(value) => ClientId::parse(&value)
            .map(|id| Subject::Client(id.as_str().to_owned()))
            .ok_or("subject.value: not a client id"),
        Subject::Device(value) => DeviceId::parse(&value)
            .map(|id| Subject::Device(id.as_str().to_owned()))
            .ok_or("subject.value: a device id is 8 to 64 of A-Z a-z 0-9 _ -"),
        Subject::Ip(value) => IpRange::parse(value.trim())
            .map(|range| Subject::Ip(range.to_string()))
            .ok_or("subject.value: an IP address or a CIDR range"),
    }
}

async fn ban(req: HttpRequest, bytes: web::Bytes, dashboard: web::Data<Dashboard>) -> HttpResponse {
    let by = match dashboard.moderator(&req) {
        Ok(by) => by,
        Err(refused) => return refused,
    };
    let body: BanBody = match body(&bytes) {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let subject = match checked(body.subject) {
        Ok(subject) => subject,
        Err(message) => return bad_request(message),
    };
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return bad_request(format!("reason: 1 to {MAX_REASON_CHARS} characters"));
    }
    if body.duration_s == Some(0) {
        return bad_request("duration_s must be positive, or null for a permanent ban");
    }
    let now = unix_now();
    let ban = Ban {
        id: new_id(),
        subject,
        reason: reason.to_owned(),
        issued_by: Issuer::Moderator { name: by.clone() },
        at: now,
        until: body.duration_s.map(|d| now.saturating_add(d)),
        lifted: None,
        confirmed: true,
    };
    let moderation = &dashboard.moderation;
    let ban = match moderation.bans.issue(ban).await {
        Ok(ban) => ban,
        Err(err) => return dashboard.store_failed(err),
    };
    let length = ban
        .until
        .map_or("permanent".to_owned(), |u| format!("{} s", u - now));
    if let Err(err) = (moderation.audit)
        .record(&by, "ban", &ban.id, &format!("{length}: {}", ban.reason))
        .await
    {
        return dashboard.store_failed(err);
    }
    json(actix_web::http::StatusCode::CREATED, &BanView::of(&ban))
}

async fn lift(
    req: HttpRequest,
    path: web::Path<String>,
    dashboard: web::Data<Dashboard>,
) -> HttpResponse {
    let by = match dashboard.moderator(&req) {
        Ok(by) => by,
        Err(refused) => return refused,
    };
    let id = path.into_inner();
    let moderation = &dashboard.moderation;
    let (ban, lifted_now) = match moderation.bans.lift(&id, &by).await {
        Ok(Some(found)) => found,
        Ok(None) => return error(actix_web::http::StatusCode::NOT_FOUND, "no such ban"),
        Err(err) => return dashboard.store_failed(err),
    };
    // Only a lift made by this call is an action (lifting twice changes nothing).
    if lifted_now {
        if let Err(err) = moderation
            .audit
            .record(&by, "lift", &ban.id, &ban.reason)
            .await
        {
            return dashboard.store_failed(err);
        }
    }
    ok(&BanView::of(&ban))
}

/// A flagged snapshot as the queue lists it (the image itself comes from its own route).
#[derive(Serialize)]
struct SnapshotView<'a> {
    id: &'a str,
    at: u64,
    kind: crate::abuse::snapshots::ImageKind,
    classes: &'a [crate::abuse::snapshots::Class],
    url: String,
}

/// The flagged snapshots a report holds.
async fn report_snapshots(
    req: HttpRequest,
    path: web::Path<String>,
    dashboard: web::Data<Dashboard>,
) -> HttpResponse {
    if let Err(refused) = dashboard.moderator(&req) {
        return refused;
    }
    let Some(snapshots) = &dashboard.abuse.snapshots else {
        return ok(&Vec::<()>::new());
    };
    match snapshots.of_report(&dashboard.moderation, &path).await {
        Ok(found) => {
            let views: Vec<SnapshotView> = (found.iter())
                .map(|s| SnapshotView {
                    id: &s.id,
                    at: s.at,
                    kind: s.kind,
                    classes: &s.classes,
                    url: format!("/admin/api/snapshots/{}", s.id),
                })
                .collect();
            ok(&views)
        }
        Err(err) => dashboard.store_failed(err),
    }
}

/// A flagged snapshot, decrypted with the operator's key; the viewing is audited.
async fn snapshot(
    req: HttpRequest,
    path: web::Path<String>,
    dashboard: web::Data<Dashboard>,
) -> HttpResponse {
    let by = match dashboard.moderator(&req) {
        Ok(by) => by,
        Err(refused) => return refused,
    };
    let Some(snapshots) = &dashboard.abuse.snapshots else {
        return error(actix_web::http::StatusCode::NOT_FOUND, "no such snapshot");
    };
    let record = match snapshots.get(&dashboard.moderation, &path).await {
        Ok(Some(record)) => record,
        Ok(None) => return error(actix_web::http::StatusCode::NOT_FOUND, "no such snapshot"),
        Err(err) => return dashboard.store_failed(err),
    };
    let image = match snapshots.vault.open(&record.sealed) {
        Ok(image) => image,
        Err(err) => return error(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, err),
    };
    let audit = &dashboard.moderation.audit;
    if let Err(err) = audit
        .record(&by, "view snapshot", &record.id, &record.report)
        .await
    {
        return dashboard.store_failed(err);
    }
    HttpResponse::Ok()
        .content_type(record.kind.media_type())
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .insert_header((actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(image)
}

async fn audit(req: HttpRequest, dashboard: web::Data<Dashboard>) -> HttpResponse {
    if let Err(refused) = dashboard.moderator(&req) {
        return refused;
    }
    match dashboard.moderation.audit.all().await {
        Ok(entries) => ok(&entries),
        Err(err) => dashboard.store_failed(err),
    }
}
