//! The vendor transition: inventory imports (vendors' CSV exports kept as dated snapshots) and
//! the reconciliation between an old and a new vendor (classes defined in
//! `vft_domain::reconcile`). The shaping here is shared with the CLI (`vft import`,
//! `vft reconcile`), so both give the same answers.

use crate::auth::{Caller, Coordinator};
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use vft_domain::attribution::InService;
use vft_domain::import::{ImportFormat, file_sha256, parse_inventory_at};
use vft_domain::reconcile::{
    Listing, MigrationProgress, ReconcileClass, ReconcileInput, ReconcileRow, Reporting,
    SubjectKey, migration_progress, reconcile,
};
use vft_domain::{
    MunicipalityCode, PlausibleTimes, Registry, VendorId, YearMonth, spreadsheet_safe,
};
use vft_store::Store;

/// Import formats per vendor id.
pub type ImportFormats = BTreeMap<String, ImportFormat>;

/// Reconciliation settings from configuration (`[reconciliation]`).
#[derive(Debug, Clone, Copy)]
pub struct ReconcileSettings {
    /// On both vendors longer than this: `double`.
    pub grace: Duration,
    /// Listed in service but no contact for this long: `listed_silent`.
    pub silent_after: Duration,
}

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

fn vendor(what: &str, v: &str) -> Result<VendorId, ApiError> {
    VendorId::parse(v).map_err(|e| bad(format!("{what}: {e}")))
}

fn date(what: &str, s: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| bad(format!("{what} must be a date (YYYY-MM-DD), got {s:?}")))
}

/// An export's date: it lists the fleet from the start of that day (Europe/Oslo). Default: today.
pub fn as_of_instant(s: Option<&str>, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    let d = match s {
        Some(s) => date("as_of", s)?,
        None => vft_domain::month::oslo_date(now),
    };
    Ok(vft_domain::month::oslo_midnight(d))
}

/// A reconciliation date: the last instant of that day (Europe/Oslo), so the day's events and
/// that day's export count.
pub fn end_of_day(s: &str) -> Result<DateTime<Utc>, ApiError> {
    let d = date("at", s)?;
    vft_domain::month::oslo_end_of_day(d).ok_or_else(|| bad(format!("at {s:?} is out of range")))
}

/// One row left out of an import.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RowErrorView {
    pub line: u64,
    /// Header of the offending cell, when one cell is to blame.
    #[schema(required = true)]
    pub column: Option<String>,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub import_id: i64,
    /// False when this vendor's same file was imported before: nothing changed.
    pub new: bool,
    pub vendor: String,
    pub as_of: DateTime<Utc>,
    pub file_sha256: String,
    /// Rows kept.
    pub rows: u64,
    pub errors: Vec<RowErrorView>,
    /// Lines that repeat an earlier line exactly (kept once).
    pub duplicates: Vec<u64>,
}

/// Parses a vendor's export with its configured format and keeps it as a snapshot. An `as_of`
/// outside `times` is refused, and rows installed outside them are unreadable rows.
pub async fn import_file(
    store: &dyn Store,
    registry: &Registry,
    formats: &ImportFormats,
    vendor_id: &str,
    as_of: DateTime<Utc>,
    times: &PlausibleTimes,
    bytes: Bytes,
) -> Result<ImportReport, ApiError> {
    let now = Utc::now();
    times
        .check(as_of, now)
        .map_err(|why| bad(format!("as_of is implausible: {why}")))?;
    let v = vendor("vendor", vendor_id)?;
    let format = formats.get(v.as_str()).cloned().ok_or_else(|| {
        bad(format!(
            "no import format for vendor {v} (configure [imports.{v}]); known: {}",
            formats.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let municipality_column = format.columns.municipality.clone();
    // Parsing half a million rows is CPU work: off the async workers.
    let (parsed, sha) = {
        let (v, times) = (v.clone(), *times);
        tokio::task::spawn_blocking(move || {
            (
                parse_inventory_at(&format, &v, &bytes, &times, now),
                file_sha256(&bytes),
            )
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
    };
    let mut parsed = parsed.map_err(|e| bad(e.to_string()))?;
    parsed.reject_unknown_municipalities(registry, &municipality_column);
    let listings: Vec<_> = parsed.rows.iter().map(|(_, l)| l.clone()).collect();
    let outcome = store
        .import_inventory(&v, as_of, now, &sha, &listings, &parsed.errors)
        .await?;
    Ok(ImportReport {
        import_id: outcome.import_id,
        new: outcome.new,
        vendor: v.to_string(),
        as_of,
        file_sha256: sha,
        rows: listings.len() as u64,
        errors: parsed
            .errors
            .into_iter()
            .map(|e| RowErrorView {
                line: e.line,
                column: e.column,
                reason: e.why,
            })
            .collect(),
        duplicates: parsed.duplicates,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Date the export was taken (YYYY-MM-DD, Europe/Oslo); default today.
    pub as_of: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/imports/{vendor}", tag = "vendor transition", params(("vendor" = String, Path), ImportQuery), request_body(content = String, content_type = "text/csv", description = "The vendor's inventory export as exported (encoding per its format)."), responses((status = 200, body = ImportReport), (status = 400, description = "Unknown vendor format, bad date or unreadable header", body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, description = "Needs a coordinator token", body = crate::schemas::ErrorBody)))]
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
        &state.registry,
        &state.imports,
        &vendor_id,
        as_of,
        &state.plausible_times,
        body,
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

/// Gathers what the reconciliation at instant `at` looks at, and runs it for the region.
pub async fn reconcile_at(
    store: &dyn Store,
    old: &VendorId,
    new: &VendorId,
    at: DateTime<Utc>,
    settings: ReconcileSettings,
) -> Result<Vec<ReconcileRow>, ApiError> {
    Ok(Gathered::at(store, old, new, at, settings)
        .await?
        .rows(ReconcileScope::Region(None), true))
}

/// Whose reconciliation is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileScope<'a> {
    /// The region's (a coordinator; the CLI), all rows or those of one municipality. A subject
    /// is one recipient's service across the region, counted in one municipality.
    Region(Option<&'a MunicipalityCode>),
    /// A municipality's own (its token): subjects are formed from its own devices only, so a
    /// recipient it shares with another municipality shows with this municipality's devices
    /// (never the other's) and its class is what this municipality's own devices make it (a
    /// unit here and one of the other vendor there is not `double` here). The export flags are
    /// the region's rows placed here: each names one device that is this municipality's.
    Own(&'a MunicipalityCode),
}

/// What the reconciliation at one instant looks at.
struct Gathered {
    at: DateTime<Utc>,
    old: VendorId,
    new: VendorId,
    silent_after: Duration,
    in_service: Vec<InService>,
    grace_ago: Vec<InService>,
    ever_old: Vec<InService>,
    listings: Vec<Listing>,
    reporting: Vec<Reporting>,
}

impl Gathered {
    async fn at(
        store: &dyn Store,
        old: &VendorId,
        new: &VendorId,
        at: DateTime<Utc>,
        settings: ReconcileSettings,
    ) -> Result<Self, ApiError> {
        // The snapshot query counts events strictly before its argument: 1 µs on includes `at`.
        let tick = Duration::microseconds(1);
        let mut in_service = store.in_service_snapshot(at + tick).await?;
        let mut grace_ago = store
            .in_service_snapshot(at - settings.grace + tick)
            .await?;
        let mut ever_old = store.ever_in_service(old, at + tick).await?;
        let mut listings = store.listing_at(old, at).await?;
        listings.extend(store.listing_at(new, at).await?);
        let reporting = store.reporting_at(at, at - settings.silent_after).await?;
        // A vendor with no device in the events is taken at its exports' word
        // (`listed_in_service`): its latest export at `at`, the one at `at - grace`, and, for
        // the old vendor, every export up to `at` as what was ever in service.
        for vendor in [old, new] {
            if reporting.iter().any(|r| &r.vendor == vendor) {
                continue;
            }
            in_service.extend(vft_domain::reconcile::listed_in_service(
                listings.iter().filter(|l| &l.vendor == vendor),
            ));
            grace_ago.extend(vft_domain::reconcile::listed_in_service(
                &store.listing_at(vendor, at - settings.grace).await?,
            ));
            if vendor == old {
                for import in store.imports(Some(old)).await? {
                    if import.as_of <= at {
                        ever_old.extend(vft_domain::reconcile::listed_in_service(
                            &store.listing_at(old, import.as_of).await?,
                        ));
                    }
                }
            }
        }
        Ok(Self {
            at,
            old: old.clone(),
            new: new.clone(),
            silent_after: settings.silent_after,
            in_service,
            grace_ago,
            ever_old,
            listings,
            reporting,
        })
    }

    fn reconcile(
        &self,
        in_service: &[InService],
        grace_ago: &[InService],
        ever_old: &[InService],
    ) -> Vec<ReconcileRow> {
        reconcile(&ReconcileInput {
            at: self.at,
            old: &self.old,
            new: &self.new,
            in_service,
            in_service_grace_ago: grace_ago,
            ever_old,
            listings: &self.listings,
            reporting: &self.reporting,
            silent_after: self.silent_after,
        })
    }

    /// The rows `scope` sees, sorted as `reconcile` sorts them; `flags: false` leaves the
    /// export flags out (migration progress counts only the four classes).
    fn rows(&self, scope: ReconcileScope<'_>, flags: bool) -> Vec<ReconcileRow> {
        let keep = |r: &ReconcileRow| flags || r.class.is_partition();
        match scope {
            ReconcileScope::Region(filter) => {
                let mut rows = self.reconcile(&self.in_service, &self.grace_ago, &self.ever_old);
                rows.retain(|r| keep(r) && filter.is_none_or(|m| r.municipality == *m));
                rows
            }
            ReconcileScope::Own(own) => {
                let mine = |devices: &[InService]| -> Vec<InService> {
                    devices
                        .iter()
                        .filter(|d| d.municipality == *own)
                        .cloned()
                        .collect()
                };
                let mut rows: Vec<ReconcileRow> = self
                    .reconcile(
                        &mine(&self.in_service),
                        &mine(&self.grace_ago),
                        &mine(&self.ever_old),
                    )
                    .into_iter()
                    .filter(|r| r.class.is_partition() && r.municipality == *own)
                    .collect();
                if flags {
                    rows.extend(
                        self.rows(ReconcileScope::Region(Some(own)), true)
                            .into_iter()
                            .filter(|r| !r.class.is_partition()),
                    );
                    rows.sort_by(|a, b| {
                        (&a.municipality, a.kind, a.class).cmp(&(&b.municipality, b.kind, b.class))
                    });
                }
                rows
            }
        }
    }
}

/// Query of a reconciliation, as strings: parsed here so the API and the CLI agree.
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

/// The reconciliation as the API and CLI show it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReconcileReport {
    pub from: String,
    pub to: String,
    pub at: String,
    pub instant: DateTime<Utc>,
    pub grace_days: i64,
    pub silent_after_days: i64,
    /// Subjects per class over the rows shown.
    #[schema(value_type = crate::schemas::ReconcileTotals)]
    pub totals: BTreeMap<ReconcileClass, u64>,
    /// Per municipality × technology type × class: count and the subjects behind it.
    #[schema(value_type = Vec<ReconcileRowSchema>)]
    pub rows: Vec<ReconcileRow>,
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

fn vendors(from: Option<&str>, to: Option<&str>) -> Result<(VendorId, VendorId), ApiError> {
    let from = vendor(
        "from",
        from.ok_or_else(|| bad("from (the old vendor) is required".into()))?,
    )?;
    let to = vendor(
        "to",
        to.ok_or_else(|| bad("to (the new vendor) is required".into()))?,
    )?;
    if from == to {
        return Err(bad("from and to must be different vendors".into()));
    }
    Ok((from, to))
}

/// A municipality asked for, checked against the region.
pub fn municipality(
    registry: &Registry,
    m: Option<&str>,
) -> Result<Option<MunicipalityCode>, ApiError> {
    m.map(|m| {
        let code = MunicipalityCode::parse(m).map_err(|e| bad(e.to_string()))?;
        if registry.contains(&code) {
            Ok(code)
        } else {
            Err(bad(format!("unknown municipality {code}")))
        }
    })
    .transpose()
}

impl ReconcileParams {
    /// Runs the region's reconciliation; `scope` keeps one municipality's rows. Filtering after
    /// computing keeps each subject where the rule put it.
    pub async fn run(
        &self,
        store: &dyn Store,
        settings: ReconcileSettings,
        scope: Option<&MunicipalityCode>,
        now: DateTime<Utc>,
    ) -> Result<ReconcileReport, ApiError> {
        self.run_for(store, settings, ReconcileScope::Region(scope), now)
            .await
    }

    /// Runs the reconciliation `scope` (already checked against the caller) asks for.
    pub async fn run_for(
        &self,
        store: &dyn Store,
        settings: ReconcileSettings,
        scope: ReconcileScope<'_>,
        now: DateTime<Utc>,
    ) -> Result<ReconcileReport, ApiError> {
        let (from, to) = vendors(self.from.as_deref(), self.to.as_deref())?;
        let day = match &self.at {
            Some(d) => d.clone(),
            None => vft_domain::month::oslo_date(now).to_string(),
        };
        let at = end_of_day(&day)?;
        let rows = Gathered::at(store, &from, &to, at, settings)
            .await?
            .rows(scope, true);
        let mut totals: BTreeMap<ReconcileClass, u64> =
            ReconcileClass::ALL.iter().map(|c| (*c, 0)).collect();
        for r in &rows {
            *totals.entry(r.class).or_default() += r.count;
        }
        Ok(ReconcileReport {
            from: from.to_string(),
            to: to.to_string(),
            at: day,
            instant: at,
            grace_days: settings.grace.num_days(),
            silent_after_days: settings.silent_after.num_days(),
            totals,
            rows,
        })
    }
}

/// A subject's key as text: the recipient reference, or `vendor/device`.
pub fn subject_text(key: &SubjectKey) -> String {
    match key {
        SubjectKey::Recipient(r) => r.to_string(),
        SubjectKey::Device(v, d) => format!("{v}/{d}"),
    }
}

/// One line per subject: municipality, kind, class, subject, devices (space-separated).
pub fn reconciliation_csv(rows: &[ReconcileRow]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["municipality", "kind", "class", "subject", "devices"]);
    for r in rows {
        for s in &r.subjects {
            let devices: Vec<String> = s.devices.iter().map(|(v, d)| format!("{v}/{d}")).collect();
            let cells = [
                r.municipality.as_str(),
                r.kind.id(),
                r.class.id(),
                &subject_text(&s.key),
                &devices.join(" "),
            ];
            // A recipient reference is the sender's text: never a formula in a spreadsheet.
            let _ = w.write_record(cells.map(|c| spreadsheet_safe(c).into_owned()));
        }
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[utoipa::path(get, path = "/api/v1/reconciliation", tag = "vendor transition", params(ReconcileParams), responses((status = 200, description = "The reconciliation; with format=csv one line per subject: municipality,kind,class,subject,devices.", content((ReconcileReport = "application/json"), (String = "text/csv"))), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody)))]
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
    let report = params
        .run_for(
            state.store.as_ref(),
            state.reconciliation,
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
    Ok(Json(report).into_response())
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
    let year = crate::rollups::parse_year(q.year.as_deref(), now)?;
    let months: Vec<YearMonth> = YearMonth::months_of_year(year)
        .map_err(|e| bad(e.to_string()))?
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

/// Reconciles at each month's last instant and summarises per municipality.
pub async fn migration_progress_of(
    store: &dyn Store,
    from: &VendorId,
    to: &VendorId,
    months: &[YearMonth],
    settings: ReconcileSettings,
    scope: ReconcileScope<'_>,
) -> Result<Vec<MigrationProgress>, ApiError> {
    let mut per_month = Vec::with_capacity(months.len());
    for m in months {
        let at = m.end_exclusive() - Duration::microseconds(1);
        let rows = Gathered::at(store, from, to, at, settings)
            .await?
            .rows(scope, false);
        per_month.push((*m, rows));
    }
    Ok(migration_progress(&per_month))
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
