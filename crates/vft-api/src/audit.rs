//! The audit log, as the API writes and serves it.
//!
//! A middleware around the API gives each request an [`AuditSlot`]; the extractors note who
//! made it and for which municipality, handlers note what they showed ([`crate::audit_slot::AuditNote`]). When the
//! response is ready the middleware decides whether the request is recorded:
//! - every change (any method but GET/HEAD), whatever its outcome;
//! - every read of personal data that succeeded ([`PERSONAL_READS`]);
//! - every refusal of a presented credential (401) or of a role (403).
//!
//! Reads of personal data fail closed: when the record cannot be written the response is
//! withheld (503). A change is already done when its record is written; a failure to record it
//! is logged as an error and counted (`vft_audit_write_failures_total`).
//!
//! Records are written by one task in batches (group commit): a request waits for the commit
//! of the batch holding its record, and many requests share one transaction.

use crate::audit_slot::AuditSlot;
use crate::auth::AuditReader;
use crate::client_ip::ClientIp;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use vft_domain::audit::{AuditAction, AuditEntry, ChainedEntry};
use vft_domain::{MunicipalityCode, Principal};
use vft_store::{AuditQuery, Store};

/// GET routes whose answers carry personal data (device detail and history, inventory pages
/// and exports, recipient references, reconciliation subjects, dead-letter payloads, import
/// errors, accounts, and the audit log itself).
pub const PERSONAL_READS: &[&str] = &[
    "/api/v1/devices",
    "/api/v1/devices/{vendor}/{device}",
    "/api/v1/dead-letters",
    "/api/v1/imports/errors",
    "/api/v1/reconciliation",
    "/api/v1/reconciliation/progress",
    // The monthly report carries the reconciliation's progress and recipient counts.
    "/api/v1/reports/monthly.pdf",
    "/api/v1/reports/monthly.xlsx",
    "/api/v1/users",
    "/api/v1/tokens",
    "/api/v1/mqtt-credentials",
    "/api/v1/audit",
    // Devices by alarm, with times.
    "/api/v1/rollups/response-centre/unanswered",
    // Staff e-mail addresses.
    "/api/v1/notification-rules",
];

/// The audit log's writer: one task appending batches of records to the store's chain.
pub struct AuditTrail {
    queue: mpsc::Sender<(AuditEntry, oneshot::Sender<bool>)>,
    /// Record reads of personal data (on unless configured off, for measurements).
    pub record_reads: bool,
}

/// Records per transaction at most.
const MAX_BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
#[error("the audit log could not be written")]
pub struct AuditUnavailable;

impl AuditTrail {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Arc<dyn Store>, record_reads: bool) -> Arc<Self> {
        let (queue, mut inbox) =
            mpsc::channel::<(AuditEntry, oneshot::Sender<bool>)>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while inbox.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let entries: Vec<AuditEntry> = batch.iter().map(|(e, _)| e.clone()).collect();
                // `instrument`, not `enter`: a span entered across an await is left open on
                // whatever task runs next, and tracing panicked on it once, killing this writer.
                let span = tracing::info_span!("audit_batch", records = entries.len());
                let ok = match store.append_audit(&entries).instrument(span).await {
                    Ok(_) => {
                        metrics::counter!("vft_audit_records_total")
                            .increment(entries.len() as u64);
                        true
                    }
                    Err(e) => {
                        tracing::error!(error = %e, records = entries.len(), "cannot write the audit log");
                        metrics::counter!("vft_audit_write_failures_total")
                            .increment(entries.len() as u64);
                        false
                    }
                };
                for (_, done) in batch.drain(..) {
                    let _ = done.send(ok);
                }
            }
        });
        Arc::new(Self {
            queue,
            record_reads,
        })
    }

    /// Appends a record; returns once it is committed.
    pub async fn record(&self, entry: AuditEntry) -> Result<(), AuditUnavailable> {
        let (done, committed) = oneshot::channel();
        self.queue
            .send((entry, done))
            .await
            .map_err(|_| AuditUnavailable)?;
        match committed.await {
            Ok(true) => Ok(()),
            _ => Err(AuditUnavailable),
        }
    }
}

/// The values of a route's `{parameters}` in a request's path, as `name=value`.
fn path_parameters(template: &str, path: &str) -> Vec<String> {
    template
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(t, p)| {
            let name = t.strip_prefix('{')?.strip_suffix('}')?;
            let value = percent_encoding_decode(p);
            Some(format!("{}={value}", name.trim_start_matches('*')))
        })
        .collect()
}

fn percent_encoding_decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(|| segment.to_owned(), |(_, v)| v.into_owned())
}

/// What an audit record says of a request's caller: actor and role.
pub(crate) fn actor_and_role(
    principal: Option<&Principal>,
    unknown_credential: bool,
) -> (String, String) {
    match principal {
        Some(p) => (p.actor(), p.role.to_string()),
        None if unknown_credential => ("unknown credential".into(), String::new()),
        None => ("anonymous".into(), String::new()),
    }
}

/// The middleware (see the module docs).
pub async fn record_requests(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let slot = AuditSlot::default();
    request.extensions_mut().insert(slot.clone());
    let method = request.method().clone();
    // Inside a nested router the URI lost its prefix; the route template did not.
    let path = request
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| request.uri().path().to_owned(), |u| u.path().to_owned());
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let ClientIp(client) = {
        let (parts, body) = request.into_parts();
        let ip = ClientIp::from_parts(&parts);
        request = Request::from_parts(parts, body);
        ip
    };
    let response = next.run(request).await;
    let status = response.status();
    let Some(template) = template else {
        return response;
    };
    let data = slot.take();
    let is_read = matches!(method, Method::GET | Method::HEAD);
    let action = if status == StatusCode::UNAUTHORIZED {
        // Requests without any credential are not recorded: they are anonymous noise.
        data.unknown_credential.then_some(AuditAction::Denied)
    } else if status == StatusCode::FORBIDDEN {
        Some(AuditAction::Denied)
    } else if !is_read {
        Some(AuditAction::Change)
    } else if state.audit.record_reads
        && status.is_success()
        && PERSONAL_READS.contains(&template.as_str())
    {
        Some(AuditAction::Read)
    } else {
        None
    };
    let Some(action) = action else {
        return response;
    };
    let (actor, role) = actor_and_role(data.principal.as_ref(), data.unknown_credential);
    let mut subjects = path_parameters(&template, &path);
    subjects.extend(data.subjects);
    if data.more_subjects > 0 {
        subjects.push(format!("… and {} more", data.more_subjects));
    }
    let entry = AuditEntry {
        at_micros: Utc::now().timestamp_micros(),
        actor,
        role,
        action,
        route: format!("{method} {template}"),
        municipality: data.municipality,
        subjects,
        client: client.to_string(),
        status: status.as_u16(),
    };
    match state.audit.record(entry).await {
        Ok(()) => response,
        Err(AuditUnavailable) if action == AuditAction::Read => {
            // Fail closed: personal data is not shown when its reading cannot be recorded.
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({
                    "error": "audit_unavailable",
                    "message": "this read cannot be recorded in the audit log right now; try again later",
                })),
            )
                .into_response()
        }
        Err(AuditUnavailable) => {
            tracing::error!(route = %template, %status, "a request was answered but could not be recorded in the audit log");
            response
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Records from this instant (RFC 3339), inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Records before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Exactly this actor (`user:kari@hol.kommune.no`, `token:…`).
    pub actor: Option<String>,
    /// `read`, `change`, `sign_in`, `sign_in_failed`, `sign_out` or `denied`.
    pub action: Option<String>,
    pub municipality: Option<String>,
    /// Records older than this sequence number (the `next_before` of the previous page).
    pub before: Option<i64>,
    /// At most this many (JSON: default 100, at most 1000; CSV: default and most 100 000).
    pub limit: Option<u32>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditRecordView {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub route: String,
    pub municipality: Option<String>,
    pub subjects: Vec<String>,
    pub client: String,
    pub status: u16,
    pub hash: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub records: Vec<AuditRecordView>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    pub next_before: Option<i64>,
}

fn view(r: ChainedEntry) -> AuditRecordView {
    AuditRecordView {
        seq: r.seq,
        at: DateTime::from_timestamp_micros(r.entry.at_micros).unwrap_or_default(),
        actor: r.entry.actor,
        role: r.entry.role,
        action: r.entry.action.id().to_owned(),
        route: r.entry.route,
        municipality: r.entry.municipality,
        subjects: r.entry.subjects,
        client: r.entry.client,
        status: r.entry.status,
        hash: r.hash,
    }
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams), responses((status = 200, description = "Audit records, newest first; CSV with format=csv.", body = AuditPage), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, description = "Only the auditor and coordinator roles read the audit log.", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/audit`: who read and changed what.
pub async fn list(
    State(state): State<AppState>,
    _reader: AuditReader,
    headers: axum::http::HeaderMap,
    Query(params): Query<AuditParams>,
) -> Result<Response, ApiError> {
    let csv = crate::wants_csv(params.format.as_deref(), &headers)?;
    let action = params
        .action
        .as_deref()
        .map(|a| {
            AuditAction::parse(a).ok_or_else(|| {
                ApiError::BadRequest(
                    "action is one of read, change, sign_in, sign_in_failed, sign_out, denied"
                        .into(),
                )
            })
        })
        .transpose()?;
    let municipality = params
        .municipality
        .as_deref()
        .map(|m| MunicipalityCode::parse(m).map_err(|e| ApiError::BadRequest(e.to_string())))
        .transpose()?;
    let max = if csv.is_some() { 100_000 } else { 1000 };
    // A CSV export is everything asked for (up to its maximum), not one page.
    let limit = params
        .limit
        .unwrap_or(if csv.is_some() { max } else { 100 })
        .clamp(1, max);
    let query = AuditQuery {
        from: params.from,
        to: params.to,
        actor: params.actor,
        action,
        municipality,
        before_seq: params.before,
        limit,
    };
    let records = state.store.audit_records(&query).await?;
    let next_before = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    let views: Vec<AuditRecordView> = records.into_iter().map(view).collect();
    if let Some(dialect) = csv {
        return Ok(crate::csv_response(
            dialect,
            "revisjonslogg",
            query
                .municipality
                .as_ref()
                .map_or("alle".to_owned(), ToString::to_string)
                .as_str(),
            audit_csv(&views),
        ));
    }
    Ok(Json(AuditPage {
        records: views,
        next_before,
    })
    .into_response())
}

fn audit_csv(records: &[AuditRecordView]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "seq",
        "at",
        "actor",
        "role",
        "action",
        "route",
        "municipality",
        "subjects",
        "client",
        "status",
        "hash",
    ]);
    for r in records {
        let cells = [
            r.seq.to_string(),
            r.at.to_rfc3339(),
            r.actor.clone(),
            r.role.clone(),
            r.action.clone(),
            r.route.clone(),
            r.municipality.clone().unwrap_or_default(),
            r.subjects.join(" "),
            r.client.clone(),
            r.status.to_string(),
            r.hash.clone(),
        ];
        let _ = w.write_record(
            cells
                .iter()
                .map(|c| vft_domain::spreadsheet_safe(c).into_owned()),
        );
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_are_named_and_decoded() {
        assert_eq!(
            path_parameters(
                "/api/v1/devices/{vendor}/{device}",
                "/api/v1/devices/hepro/AL%2012"
            ),
            vec!["vendor=hepro".to_owned(), "device=AL 12".to_owned()]
        );
        assert_eq!(
            path_parameters("/api/v1/devices/{vendor}/{device}", "/api/v1/devices/a/b+c"),
            vec!["vendor=a".to_owned(), "device=b+c".to_owned()]
        );
        assert!(path_parameters("/api/v1/devices", "/api/v1/devices").is_empty());
    }
}
