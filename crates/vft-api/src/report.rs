//! The monthly report's routes (`GET /api/v1/reports/monthly.pdf|.xlsx`) over
//! `vft_app::report`, which gathers the figures and lays out the documents.

use crate::auth::Caller;
use crate::{ApiError, AppState};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use vft_app::report::{
    ReportFormat, ReportScope, ReportSources, Transition, last_ended_month, render_report,
};

/// The server's sources of a report, with the default transition (Hepro → Atea).
pub fn sources(state: &AppState) -> ReportSources {
    ReportSources {
        store: state.store.clone(),
        registry: state.registry.clone(),
        timeouts: state.timeouts,
        reconciliation: state.reconciliation,
        transition: Transition::default(),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `YYYY-MM` (Europe/Oslo); default: the month before this one. The current month is
    /// counted up to now.
    pub month: Option<String>,
    /// One municipality (a municipality user: its own, also without asking); without it the
    /// region's report, which needs a coordinator.
    pub municipality: Option<String>,
    /// The old vendor of the transition (default hepro).
    pub from: Option<String>,
    /// The new vendor (default atea).
    pub to: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/reports/monthly.pdf", tag = "reports", params(ReportQuery), responses((status = 200, description = "The month's report as a PDF (A4, Norwegian): the monthly table, recipients, the month's changes explained, the response centre against the standard, the vendors' service level and the vendor transition, with charts; the same figures as the API's.", content_type = "application/pdf", body = Vec<u8>), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody), (status = 503, description = "The audit log cannot be written", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/reports/monthly.pdf?month=&municipality=`: the monthly report as a PDF.
pub async fn monthly_pdf(
    State(state): State<AppState>,
    caller: Caller,
    note: crate::audit_slot::AuditNote,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    monthly(&state, &caller, &note, &q, ReportFormat::Pdf).await
}

#[utoipa::path(get, path = "/api/v1/reports/monthly.xlsx", tag = "reports", params(ReportQuery), responses((status = 200, description = "The month's report as an XLSX workbook: the same figures as the PDF, one sheet per part.", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody), (status = 503, description = "The audit log cannot be written", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/reports/monthly.xlsx?month=&municipality=`: the monthly report as a workbook.
pub async fn monthly_xlsx(
    State(state): State<AppState>,
    caller: Caller,
    note: crate::audit_slot::AuditNote,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    monthly(&state, &caller, &note, &q, ReportFormat::Xlsx).await
}

async fn monthly(
    state: &AppState,
    caller: &Caller,
    note: &crate::audit_slot::AuditNote,
    q: &ReportQuery,
    format: ReportFormat,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let month = match q.month.as_deref() {
        Some(m) => vft_app::selection::begun_month(Some(m), now)?,
        None => last_ended_month(now),
    };
    let asked = vft_app::transition::municipality(&state.registry, q.municipality.as_deref())?;
    // A municipality user gets its own municipality's report (also without asking, as every
    // route answers it) and never another's (403); the region's needs a coordinator.
    let scope = match (caller.own(), caller.scope(asked)?) {
        (Some(_), Some(m)) => ReportScope::Own(m),
        (Some(own), None) => ReportScope::Own(own.clone()),
        (None, Some(m)) => ReportScope::Municipality(m),
        (None, None) => ReportScope::Region,
    };
    let mut sources = sources(state);
    if let Some(from) = &q.from {
        sources.transition.from = from.clone();
    }
    if let Some(to) = &q.to {
        sources.transition.to = to.clone();
    }
    // The audit record says which report was read (the route and municipality say the rest).
    note.subjects([format!("report={month}")]);
    let report = render_report(&sources, &scope, month.year(), month.month(), format, now).await?;
    Ok((
        [
            (header::CONTENT_TYPE, report.content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", report.filename),
            ),
        ],
        report.bytes,
    )
        .into_response())
}
