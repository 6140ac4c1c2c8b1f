//! The vendor transition's routes: inventory imports and the reconciliation between an old and
//! a new vendor. The work is `vft_app::transition`'s, which the CLI calls too (`vft import`,
//! `vft reconcile`), so both give the same answers; this module parses queries, checks who
//! asks, and shapes the answer.

use crate::auth::{Caller, Coordinator};
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vft_app::transition::{
    ImportRules, ReconcileScope, as_of_instant, import_file, migration_progress_of, municipality,
    reconciliation_csv, subject_text, vendor, vendors,
};
use vft_domain::reconcile::MigrationProgress;
use vft_domain::{MunicipalityCode, YearMonth};

// Schema only: `vft_app::transition::RowErrorView` as serialized; never built. Keep it in
// step with that struct.
/// One row left out of an import.
#[derive(ToSchema)]
#[schema(as = RowErrorView)]
#[allow(dead_code)]
pub struct RowErrorSchema {
    line: u64,
    /// Header of the offending cell, when one cell is to blame.
    #[schema(required = true)]
    column: Option<String>,
    reason: String,
}

// Schema only: `vft_app::transition::ImportReport` as serialized; never built.
/// What an import did.
#[derive(ToSchema)]
#[schema(as = ImportReport)]
#[allow(dead_code)]
pub struct ImportReportSchema {
    import_id: i64,
    /// False when this vendor's same file was imported before: nothing changed.
    new: bool,
    vendor: String,
    as_of: DateTime<Utc>,
    file_sha256: String,
    /// Rows kept.
    rows: u64,
    #[schema(value_type = Vec<RowErrorSchema>)]
    errors: Vec<()>,
    /// Lines that repeat an earlier line exactly (kept once).
    duplicates: Vec<u64>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Date the export was taken (YYYY-MM-DD, Europe/Oslo); default today.
    pub as_of: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/imports/{vendor}", tag = "vendor transition", params(("vendor" = String, Path), ImportQuery), request_body(content = String, content_type = "text/csv", description = "The vendor's inventory export as exported (encoding per its format)."), responses((status = 200, body = ImportReportSchema), (status = 400, description = "Unknown vendor format, bad date or unreadable header", body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, description = "Needs a coordinator token", body = crate::schemas::ErrorBody)))]
/// `POST /api/v1/imports/{vendor}?as_of=` (coordinator): imports a vendor's inventory export.
/// Rows that cannot be read are reported by line and left out; the rest are kept. The same
/// file again changes nothing (`new: false`).
pub async fn post_import(
    State(state): State<AppState>,
    // Before the body: anyone but a coordinator is refused without vft reading the upload.
    _coordinator: Coordinator,
    Path(vendor_id): Path<String>,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let as_of = as_of_instant(q.as_of.as_deref(), Utc::now())?;
    let report = import_file(
        state.store.as_ref(),
        ImportRules {
            registry: &state.registry,
            formats: &state.imports,
            times: &state.plausible_times,
        },
        &vendor_id,
        as_of,
        body,
        Utc::now(),
    )
    .await?;
    Ok(Json(report).into_response())
}

/// One import as the history shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportView {
    pub id: i64,
    pub vendor: String,
    pub as_of: DateTime<Utc>,
    pub imported_at: DateTime<Utc>,
    pub file_sha256: String,
    pub rows: u64,
    pub errors: u64,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    pub vendor: Option<String>,
}

/// The import history.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportHistory {
    /// Oldest snapshot first.
    pub imports: Vec<ImportView>,
}

#[utoipa::path(get, path = "/api/v1/imports", tag = "vendor transition", params(HistoryQuery), responses((status = 200, description = "The imports, oldest snapshot first.", body = ImportHistory), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/imports[?vendor=]`: the import history (dated snapshots).
pub async fn history(
    State(state): State<AppState>,
    _caller: Caller,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<ImportHistory>, ApiError> {
    let v = q
        .vendor
        .as_deref()
        .map(|v| vendor("vendor", v))
        .transpose()?;
    let imports: Vec<ImportView> = state
        .store
        .imports(v.as_ref())
        .await?
        .into_iter()
        .map(|i| ImportView {
            id: i.id,
            vendor: i.vendor.to_string(),
            as_of: i.as_of,
            imported_at: i.imported_at,
            file_sha256: i.file_sha256,
            rows: i.rows,
            errors: i.errors,
        })
        .collect();
    Ok(Json(ImportHistory { imports }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportErrorsQuery {
    /// At most this many (1-1000, default 200).
    pub limit: Option<u32>,
}

/// One unreadable row of an import.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportErrorView {
    pub import_id: i64,
    pub vendor: String,
    pub as_of: DateTime<Utc>,
    pub imported_at: DateTime<Utc>,
    /// Line in the file (1 = the header).
    pub line: u64,
    /// Header of the offending cell, when one cell is to blame.
    #[schema(required = true)]
    pub column: Option<String>,
    pub why: String,
}

/// Unreadable rows of imports.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportErrors {
    /// Newest import first, then by line.
    pub items: Vec<ImportErrorView>,
}

#[utoipa::path(get, path = "/api/v1/imports/errors", tag = "vendor transition", params(ImportErrorsQuery), responses((status = 200, description = "Newest import first, then by line. The first 1000 of each import are kept; the import history has the full count.", body = ImportErrors), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, description = "Needs a coordinator token", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/imports/errors` (coordinator): the rows imports could not read, with why. A
/// row may name any municipality, so like dead letters this is the coordinator's.
pub async fn errors(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ImportErrorsQuery>,
) -> Result<Json<ImportErrors>, ApiError> {
    caller.require_coordinator()?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1-1000".into()));
    }
    let items: Vec<ImportErrorView> = state
        .store
        .import_errors(limit)
        .await?
        .into_iter()
        .map(|e| ImportErrorView {
            import_id: e.import_id,
            vendor: e.vendor.to_string(),
            as_of: e.as_of,
            imported_at: e.imported_at,
            line: e.line,
            column: e.column,
            why: e.why,
        })
        .collect();
    Ok(Json(ImportErrors { items }))
}

/// Query of a reconciliation, as strings (parsed by `vft_app::transition::reconciliation`).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReconcileParams {
    /// The old vendor, e.g. hepro.
    pub from: Option<String>,
    /// The new vendor, e.g. atea.
    pub to: Option<String>,
    /// Date (YYYY-MM-DD): reconciled at the end of that day, Europe/Oslo. Default today.
    pub at: Option<String>,
    pub municipality: Option<String>,
    /// json | csv
    pub format: Option<String>,
}

// Schema only: `vft_app::transition::ReconcileReport` as serialized; never built.
/// The reconciliation as the API and CLI show it.
#[derive(ToSchema)]
#[schema(as = ReconcileReport)]
#[allow(dead_code)]
pub struct ReconcileReportSchema {
    from: String,
    to: String,
    at: String,
    instant: DateTime<Utc>,
    grace_days: i64,
    silent_after_days: i64,
    /// Subjects per class over the rows shown.
    #[schema(value_type = crate::schemas::ReconcileTotals)]
    totals: (),
    /// Per municipality × technology type × class: count and the subjects behind it.
    #[schema(value_type = Vec<ReconcileRowSchema>)]
    rows: (),
}

// Schema only: `vft_domain::reconcile::ReconcileRow` as serialized (the report and the CLI
// share the domain rows); never built. Keep it in step with the domain struct.
/// One count with the subjects behind it (`count` is the number of subjects, never 0).
#[derive(ToSchema)]
#[schema(as = ReconcileRow)]
#[allow(dead_code)]
pub struct ReconcileRowSchema {
    municipality: String,
    #[schema(value_type = crate::schemas::Kind)]
    kind: String,
    #[schema(value_type = crate::schemas::ReconcileClassId)]
    class: String,
    count: u64,
    /// Sorted by key.
    subjects: Vec<SubjectSchema>,
}

// Schema only: `vft_domain::reconcile::Subject` as serialized; never built.
/// A service recipient (or a device without one) of one technology type.
#[derive(ToSchema)]
#[schema(as = Subject)]
#[allow(dead_code)]
pub struct SubjectSchema {
    #[schema(value_type = crate::schemas::SubjectKey)]
    key: String,
    municipality: String,
    #[schema(value_type = crate::schemas::Kind)]
    kind: String,
    /// Its devices in service; for `migrated` also the old vendor's devices it had; for the
    /// flags, the flagged device.
    #[schema(value_type = Vec<crate::schemas::VendorDevicePair>)]
    devices: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/reconciliation", tag = "vendor transition", params(ReconcileParams), responses((status = 200, description = "The reconciliation; with format=csv one line per subject: municipality,kind,class,subject,devices.", content((ReconcileReportSchema = "application/json"), (String = "text/csv"))), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/reconciliation?from=&to=&at=[&municipality=][&format=csv]`: every subject
/// classed as migrated, pending, double or new, and the export flags listed_silent and
/// reporting_unlisted, per municipality and technology type (see `vft_domain::reconcile`). A
/// municipality user's subjects are made of its own devices only (`ReconcileScope::Own`).
pub async fn reconciliation(
    State(state): State<AppState>,
    caller: Caller,
    note: crate::audit_slot::AuditNote,
    headers: HeaderMap,
    Query(params): Query<ReconcileParams>,
) -> Result<Response, ApiError> {
    let asked = municipality(&state.registry, params.municipality.as_deref())?;
    let scope = caller.scope(asked)?;
    let csv = crate::wants_csv(params.format.as_deref(), &headers)?;
    let report = vft_app::transition::reconciliation(
        state.store.as_ref(),
        state.reconciliation,
        params.from.as_deref(),
        params.to.as_deref(),
        params.at.as_deref(),
        reconcile_scope(&caller, scope.as_ref()),
        Utc::now(),
    )
    .await?;
    // Who was looked at: every subject (recipient or device) the answer names.
    note.subjects(
        report
            .rows
            .iter()
            .flat_map(|r| r.subjects.iter())
            .map(|s| subject_text(&s.key)),
    );
    if let Some(dialect) = csv {
        let scope = scope
            .as_ref()
            .or(caller.own())
            .map_or_else(|| "region".to_owned(), ToString::to_string);
        return Ok(crate::csv_response(
            dialect,
            "leverandorbytte",
            &scope,
            reconciliation_csv(&report.rows),
        ));
    }
    // About 110 bytes per subject at national size (53 MB for 480 000 subjects).
    let subjects: usize = report.rows.iter().map(|r| r.subjects.len()).sum();
    crate::sized_json(&report, 4096 + 160 * subjects)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProgressQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    /// Default: this year.
    pub year: Option<String>,
    pub municipality: Option<String>,
}

/// Migration progress per municipality and month (the reconciliation at each month end).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressView {
    pub from: String,
    pub to: String,
    pub year: i32,
    /// The months of the year that have begun.
    #[schema(value_type = Vec<crate::schemas::Month>)]
    pub months: Vec<YearMonth>,
    /// By municipality, then month; every month for each municipality that has any subject.
    pub progress: Vec<ProgressRowView>,
}

/// One municipality's migration at one month end, in subjects.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressRowView {
    pub municipality: String,
    #[schema(value_type = crate::schemas::Month)]
    pub month: YearMonth,
    pub migrated: u64,
    pub pending: u64,
    pub double: u64,
    pub new: u64,
    /// migrated / (migrated + pending + double); `null` when that is 0.
    #[schema(required = true)]
    pub share_migrated: Option<f64>,
}

impl From<MigrationProgress> for ProgressRowView {
    fn from(p: MigrationProgress) -> Self {
        // Destructured in full, so a field added to the domain is a compile error here.
        let MigrationProgress {
            municipality,
            month,
            migrated,
            pending,
            double,
            new,
            share_migrated,
        } = p;
        Self {
            municipality: municipality.to_string(),
            month,
            migrated,
            pending,
            double,
            new,
            share_migrated,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/reconciliation/progress", tag = "vendor transition", params(ProgressQuery), responses((status = 200, description = "Per municipality and month: migrated, pending, double, new, share_migrated. Months not yet begun are left out.", body = ProgressView), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/reconciliation/progress?from=&to=&year=[&municipality=]`: the reconciliation at
/// each month end (Europe/Oslo), as migration progress per municipality (a municipality
/// token's from its own devices only, as its reconciliation).
pub async fn progress(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ProgressQuery>,
) -> Result<Json<ProgressView>, ApiError> {
    let asked = municipality(&state.registry, q.municipality.as_deref())?;
    let scope = caller.scope(asked)?;
    let (from, to) = vendors(q.from.as_deref(), q.to.as_deref())?;
    let now = Utc::now();
    let year = vft_app::selection::parse_year(q.year.as_deref(), now)?;
    let months: Vec<YearMonth> = YearMonth::months_of_year(year)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?
        .into_iter()
        .filter(|m| m.start() <= now)
        .collect();
    let progress = migration_progress_of(
        state.store.as_ref(),
        &from,
        &to,
        &months,
        state.reconciliation,
        reconcile_scope(&caller, scope.as_ref()),
    )
    .await?;
    Ok(Json(ProgressView {
        from: from.to_string(),
        to: to.to_string(),
        year,
        months,
        progress: progress.into_iter().map(ProgressRowView::from).collect(),
    }))
}

/// A municipality user gets its own reconciliation; a coordinator the region's, all of it or
/// one municipality's rows (`scope`, already checked against the caller).
fn reconcile_scope<'a>(
    caller: &'a Caller,
    scope: Option<&'a MunicipalityCode>,
) -> ReconcileScope<'a> {
    match caller.own() {
        Some(own) => ReconcileScope::Own(own),
        None => ReconcileScope::Region(scope),
    }
}
