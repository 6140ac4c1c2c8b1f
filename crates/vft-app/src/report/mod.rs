//! The monthly report (issue 12 item 4): for the region or one municipality, a PDF (A4,
//! Norwegian) and an XLSX workbook with the same figures, generated on demand
//! (`GET /api/v1/reports/monthly.pdf|.xlsx`, `vft report`) or by a scheduler
//! ([`render_report`]).
//!
//! Every number comes from the use cases the API's handlers call (`figures::gather`), never a
//! second computation, so the report equals `/api/v1/rollups/…` and
//! `/api/v1/reconciliation/progress` for the same scope and month, cell for cell. The pages are
//! laid out with krilla and the embedded DejaVu font (`assets/fonts/`), the workbook written
//! with rust_xlsxwriter, both in Norwegian (`text`).

mod figures;
mod pdf;
mod text;
mod xlsx;

use crate::AppError;
use chrono::{DateTime, Duration, Utc};
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
    pub fn parse(s: &str) -> Result<Self, AppError> {
        match s {
            "pdf" => Ok(Self::Pdf),
            "xlsx" => Ok(Self::Xlsx),
            other => Err(AppError::Invalid(format!(
                "format must be pdf or xlsx, got {:?}",
                other.chars().take(64).collect::<String>()
            ))),
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
/// is made (`AppError::Invalid`, "transition: …").
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

/// What the report reads: the parts of the server's state its figures need, so the command
/// line and a scheduler can make one without an HTTP server.
#[derive(Clone)]
pub struct ReportSources {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub timeouts: vft_store::Timeouts,
    pub reconciliation: crate::transition::ReconcileSettings,
    pub transition: Transition,
}

/// A rendered document and the name to save it under.
#[derive(Debug, Clone)]
pub struct RenderedReport {
    pub bytes: Vec<u8>,
    /// `vft-rapport-{region|municipality}-{YYYY-MM}.{pdf|xlsx}`
    pub filename: String,
    pub content_type: &'static str,
}

/// The month a report is about: it must have begun by `now` (the current month is counted up
/// to now, as the API counts it).
pub fn report_month(year: i32, month: u32, now: DateTime<Utc>) -> Result<YearMonth, AppError> {
    let m = YearMonth::new(year, month).map_err(|e| AppError::Invalid(format!("month: {e}")))?;
    if m.start() > now {
        return Err(AppError::Invalid(format!(
            "{m} has not begun: a report covers a month that has begun"
        )));
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
) -> Result<RenderedReport, AppError> {
    let month = report_month(year, month, now)?;
    if let Some(m) = scope.municipality()
        && !sources.registry.contains(m)
    {
        return Err(AppError::Invalid(format!("unknown municipality {m}")));
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
    .map_err(|_| AppError::Interrupted("rendering the report"))??;
    Ok(RenderedReport {
        bytes,
        filename,
        content_type: format.content_type(),
    })
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
            assert!(matches!(e, AppError::Invalid(_)), "a bad request: {e}");
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
