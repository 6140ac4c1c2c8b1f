//! The monthly report (issue 12 item 4): for the region or one municipality, a PDF (A4,
//! Norwegian) and an XLSX workbook with the same figures, generated on demand
//! (`GET /api/v1/reports/monthly.pdf|.xlsx`, `vft report`) or by a scheduler
//! ([`render_report`]).
//!
//! Every number comes from the functions the API's handlers call (`figures::gather`), never a
//! second computation, so the report equals `/api/v1/rollups/…` and
//! `/api/v1/reconciliation/progress` for the same scope and month, cell for cell.

mod figures;
mod pdf;
mod text;
mod xlsx;

use crate::auth::Caller;
use crate::{ApiError, AppState};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use std::sync::Arc;
use vft_domain::{MunicipalityCode, Registry, YearMonth};
use vft_store::Store;

pub use figures::MonthlyFigures;

/// The two documents of a month's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Pdf,
    Xlsx,
}

impl ReportFormat {
    pub fn parse(s: &str) -> Result<Self, ReportError> {
        match s {
            "pdf" => Ok(Self::Pdf),
            "xlsx" => Ok(Self::Xlsx),
            other => Err(ReportError::Format(
                other.chars().take(64).collect::<String>(),
            )),
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Xlsx => "xlsx",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

/// Whose report, and seen by whom. The two municipality variants differ where data crosses
/// municipalities, exactly as the API's answers do (ARCHITECTURE.md, tenant isolation): the
/// coordinator's view of a municipality is the region's figures placed there; a municipality's
/// own report is made of its own data only (alarms from its own events, the reconciliation
/// from its own devices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportScope {
    /// The whole region (a coordinator).
    Region,
    /// One municipality as the coordinator sees it.
    Municipality(MunicipalityCode),
    /// One municipality's own report, as its users see it.
    Own(MunicipalityCode),
}

impl ReportScope {
    pub fn municipality(&self) -> Option<&MunicipalityCode> {
        match self {
            Self::Region => None,
            Self::Municipality(m) | Self::Own(m) => Some(m),
        }
    }
}

/// The vendor transition the report follows: old → new vendor ids, checked when the report
/// is made ([`ReportError::Vendor`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: String,
    pub to: String,
}

impl Default for Transition {
    /// Hepro → Atea, the region's transition, as the dashboard's Leverandørbytte page defaults.
    fn default() -> Self {
        Self {
            from: "hepro".to_owned(),
            to: "atea".to_owned(),
        }
    }
}

/// What the report reads: the parts of [`AppState`] its figures need, so the command line and
/// a scheduler can make one without an HTTP server.
#[derive(Clone)]
pub struct ReportSources {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub timeouts: vft_store::Timeouts,
    pub reconciliation: vft_app::transition::ReconcileSettings,
    pub transition: Transition,
}

impl ReportSources {
    /// The server's sources, with the default transition (Hepro → Atea).
    pub fn of(state: &AppState) -> Self {
        Self {
            store: state.store.clone(),
            registry: state.registry.clone(),
            timeouts: state.timeouts,
            reconciliation: state.reconciliation,
            transition: Transition::default(),
        }
    }
}

/// A rendered document and the name to save it under.
#[derive(Debug, Clone)]
pub struct RenderedReport {
    pub bytes: Vec<u8>,
    /// `vft-rapport-{region|municipality}-{YYYY-MM}.{pdf|xlsx}`
    pub filename: String,
    pub content_type: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("month: {0}")]
    Month(String),
    #[error("{0} has not begun: a report covers a month that has begun")]
    NotBegun(YearMonth),
    #[error("unknown municipality {0}")]
    UnknownMunicipality(MunicipalityCode),
    #[error("format must be pdf or xlsx, got {0:?}")]
    Format(String),
    /// The transition's vendors: not vendor ids, or the same one twice.
    #[error("transition: {0}")]
    Vendor(String),
    /// Reading the figures failed (as the API would have: a store error, say).
    #[error(transparent)]
    Figures(#[from] ApiError),
    #[error("cannot write the PDF: {0}")]
    Pdf(String),
    #[error("cannot write the workbook: {0}")]
    Xlsx(String),
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Figures(e) => e,
            e @ (ReportError::Month(_)
            | ReportError::NotBegun(_)
            | ReportError::UnknownMunicipality(_)
            | ReportError::Format(_)
            | ReportError::Vendor(_)) => ApiError::BadRequest(e.to_string()),
            e @ (ReportError::Pdf(_) | ReportError::Xlsx(_)) => ApiError::Internal(e.to_string()),
        }
    }
}

/// The month a report is about: it must have begun by `now` (the current month is counted up
/// to now, as the API counts it).
pub fn report_month(year: i32, month: u32, now: DateTime<Utc>) -> Result<YearMonth, ReportError> {
    let m = YearMonth::new(year, month).map_err(|e| ReportError::Month(e.to_string()))?;
    if m.start() > now {
        return Err(ReportError::NotBegun(m));
    }
    Ok(m)
}

/// The month before the one `now` is in: the month a monthly report is usually about.
pub fn last_ended_month(now: DateTime<Utc>) -> YearMonth {
    YearMonth::containing(YearMonth::containing(now).start() - Duration::microseconds(1))
}

/// Renders the report of `year`-`month` for `scope` as `format`: the figures as the API gives
/// them at `now`, laid out as a PDF or a workbook. For a scheduler or the command line; the
/// HTTP routes call it too.
pub async fn render_report(
    sources: &ReportSources,
    scope: &ReportScope,
    year: i32,
    month: u32,
    format: ReportFormat,
    now: DateTime<Utc>,
) -> Result<RenderedReport, ReportError> {
    let month = report_month(year, month, now)?;
    if let Some(m) = scope.municipality()
        && !sources.registry.contains(m)
    {
        return Err(ReportError::UnknownMunicipality(m.clone()));
    }
    let figures = figures::gather(sources, scope, month, now).await?;
    let filename = format!(
        "vft-rapport-{}-{month}.{}",
        figures.scope_file,
        format.extension()
    );
    // Laying out pages, subsetting fonts and zipping a workbook are CPU work: off the async
    // workers, as imports parse theirs.
    let bytes = tokio::task::spawn_blocking(move || match format {
        ReportFormat::Pdf => pdf::render(&figures),
        ReportFormat::Xlsx => xlsx::render(&figures),
    })
    .await
    .map_err(|e| ReportError::Figures(ApiError::Internal(e.to_string())))??;
    Ok(RenderedReport {
        bytes,
        filename,
        content_type: format.content_type(),
    })
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
        Some(m) => crate::rollups::begun_month(Some(m), now)?,
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
    let mut sources = ReportSources::of(state);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_a_bad_request_not_a_panic() {
        let now: DateTime<Utc> = "2026-01-15T12:00:00Z".parse().expect("time");
        for e in [
            ReportFormat::parse("csv").expect_err("csv"),
            report_month(2025, 13, now).expect_err("month 13"),
            report_month(2025, 0, now).expect_err("month 0"),
            report_month(2026, 2, now).expect_err("not begun"),
        ] {
            assert!(
                matches!(ApiError::from(e), ApiError::BadRequest(_)),
                "a bad request"
            );
        }
        assert_eq!(ReportFormat::parse("xlsx").ok(), Some(ReportFormat::Xlsx));
        assert_eq!(
            report_month(2026, 1, now).ok(),
            YearMonth::new(2026, 1).ok(),
            "the current month has begun"
        );
        // 2026-01-01T00:30 in Oslo is still 2025-12-31 in UTC: the month before is December.
        let early: DateTime<Utc> = "2025-12-31T23:30:00Z".parse().expect("time");
        assert_eq!(
            last_ended_month(early),
            YearMonth::new(2025, 12).expect("month")
        );
        assert_eq!(
            last_ended_month(now),
            YearMonth::new(2025, 12).expect("month")
        );
    }
}
