//! The report's figures, gathered through the use cases the API's handlers call (the table,
//! the changes, the response centre, the vendors' service level, the migration progress), so
//! a report never says other numbers than the API does for the same scope and month.

use super::{ReportScope, ReportSources};
use crate::AppError;
use crate::rollups::{ChangesView, CorrectionView, TableFigures};
use crate::selection::Selection;
use crate::service_level::VendorServiceView;
use crate::transition::{ReconcileScope, migration_progress_of};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use vft_domain::reconcile::MigrationProgress;
use vft_domain::response::{MonthResponse, ResponseStandard};
use vft_domain::{DeviceTable, MunicipalityCode, VendorId, YearMonth};

/// Everything one month's report shows.
pub struct MonthlyFigures {
    pub month: YearMonth,
    /// January up to the report's month: the columns of the tables and charts.
    pub months: Vec<YearMonth>,
    /// `Hele regionen (6 kommuner)` or `Ål (3328)`.
    pub scope_title: String,
    /// `region` or the municipality number: the file name's scope.
    pub scope_file: String,
    /// A municipality's own report (made of its own data), not the coordinator's view.
    pub own_view: bool,
    pub generated_at: DateTime<Utc>,
    /// Devices in service at each month end of the year (published months as published).
    pub devices: DeviceTable,
    /// Distinct service recipients per type at each month end.
    pub recipients: DeviceTable,
    /// Per month of the year, whether it is published (closed).
    pub published: Vec<bool>,
    /// Corrections of published months up to the report's month.
    pub corrections: Vec<CorrectionView>,
    /// The report's month explained against the month before.
    pub changes: ChangesView,
    /// The response centre, January up to the report's month.
    pub response: Vec<MonthResponse>,
    pub standard: ResponseStandard,
    pub vendors: VendorServiceView,
    pub transition_from: String,
    pub transition_to: String,
    /// Migration progress per municipality, January up to the report's month.
    pub progress: Vec<MigrationProgress>,
    /// Municipality names by number.
    pub names: BTreeMap<MunicipalityCode, String>,
}

impl MonthlyFigures {
    /// How many months the tables show (January up to the report's month).
    pub fn shown(&self) -> usize {
        self.months.len()
    }

    /// The response centre's figures of the report's month.
    pub fn response_of_month(&self) -> Option<&MonthResponse> {
        self.response.iter().find(|r| r.month == self.month)
    }

    /// The migration progress at the end of the report's month, by municipality.
    pub fn progress_of_month(&self) -> impl Iterator<Item = &MigrationProgress> {
        self.progress.iter().filter(|p| p.month == self.month)
    }

    pub fn name_of(&self, code: &MunicipalityCode) -> String {
        self.names
            .get(code)
            .cloned()
            .unwrap_or_else(|| code.to_string())
    }
}

pub async fn gather(
    sources: &ReportSources,
    scope: &ReportScope,
    month: YearMonth,
    now: DateTime<Utc>,
) -> Result<MonthlyFigures, AppError> {
    let store = sources.store.as_ref();
    let year = month.year();
    let year_months =
        YearMonth::months_of_year(year).map_err(|e| AppError::Invalid(format!("month: {e}")))?;
    let shown: Vec<YearMonth> = year_months
        .iter()
        .copied()
        .filter(|m| *m <= month)
        .collect();
    let municipality = scope.municipality().cloned();
    let own = match scope {
        ReportScope::Own(m) => Some(m),
        _ => None,
    };
    let selection = Selection::of_municipality(municipality.clone());

    // The table, as `GET /api/v1/rollups/devices?year=&municipality=`.
    let TableFigures {
        devices,
        recipients,
        published,
        corrections,
    } = crate::rollups::table_figures(store, &selection, year, now).await?;
    let corrections = corrections
        .into_iter()
        .filter(|c| c.month <= month)
        .collect();

    // The changes, as `GET /api/v1/rollups/devices/changes?month=&municipality=`.
    let changes =
        crate::rollups::attribution(store, &sources.registry, &selection, month, now).await?;

    // The response centre, as `GET /api/v1/rollups/response-centre?year=&municipality=`: the
    // whole year, as the API asks for it, then the months shown.
    let standard = ResponseStandard::default();
    let response =
        crate::figures::response_months(store, &selection, own, None, &year_months, &standard)
            .await?
            .into_iter()
            .filter(|r| r.month <= month)
            .collect();

    // The vendors' service level, as `GET /api/v1/rollups/vendor-service?month=&municipality=`.
    let vendors = crate::service_level::vendor_service(
        store,
        sources.timeouts,
        own,
        month,
        municipality.clone(),
        now,
    )
    .await?;

    // The vendor transition, as `GET /api/v1/reconciliation/progress?from=&to=&year=`: every
    // begun month of the year, as the API runs it (which municipalities have rows depends on
    // the whole year), then the months shown.
    let vendor =
        |v: &str| VendorId::parse(v).map_err(|e| AppError::Invalid(format!("transition: {e}")));
    let (from, to) = (
        vendor(&sources.transition.from)?,
        vendor(&sources.transition.to)?,
    );
    if from == to {
        return Err(AppError::Invalid(
            "transition: from and to must be different vendors".into(),
        ));
    }
    let begun: Vec<YearMonth> = year_months
        .iter()
        .copied()
        .filter(|m| m.start() <= now)
        .collect();
    let reconcile_scope = match scope {
        ReportScope::Own(m) => ReconcileScope::Own(m),
        ReportScope::Municipality(m) => ReconcileScope::Region(Some(m)),
        ReportScope::Region => ReconcileScope::Region(None),
    };
    let progress = migration_progress_of(
        store,
        &from,
        &to,
        &begun,
        sources.reconciliation,
        reconcile_scope,
    )
    .await?
    .into_iter()
    .filter(|p| p.month <= month)
    .collect();

    let names: BTreeMap<MunicipalityCode, String> = sources
        .registry
        .iter()
        .map(|m| (m.code.clone(), m.name.clone()))
        .collect();
    let (scope_title, scope_file) = match &municipality {
        Some(m) => (
            format!(
                "{} ({m})",
                names.get(m).cloned().unwrap_or_else(|| m.to_string())
            ),
            m.to_string(),
        ),
        None => (
            format!("Hele regionen ({} kommuner)", sources.registry.len()),
            "region".to_owned(),
        ),
    };
    Ok(MonthlyFigures {
        month,
        months: shown,
        scope_title,
        scope_file,
        own_view: own.is_some(),
        generated_at: now,
        devices,
        recipients,
        published,
        corrections,
        changes,
        response,
        standard,
        vendors,
        transition_from: from.to_string(),
        transition_to: to.to_string(),
        progress,
        names,
    })
}
