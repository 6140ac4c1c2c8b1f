use crate::auth::Caller;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vft_domain::attribution::{Scope, attribute_changes};
use vft_domain::membership::Cooperation;
use vft_domain::{
    ChangeCause, DeviceTable, MunicipalityCode, Registry, TableRow, TechnologyKind, VendorId,
    YearMonth,
};
use vft_store::BreakdownRow;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DevicesQuery {
    /// The year (default: this year).
    year: Option<String>,
    /// One municipality number (a municipality user gets its own without asking).
    municipality: Option<String>,
    /// One vendor, e.g. hepro.
    vendor: Option<String>,
    /// A configured cooperation: only its members in each month count.
    cooperation: Option<String>,
    /// json (default) or csv; `Accept: text/csv` works too.
    format: Option<String>,
}

/// The required `month=YYYY-MM` of a figure about one month, which must have begun by `now`.
pub(crate) fn begun_month(month: Option<&str>, now: DateTime<Utc>) -> Result<YearMonth, ApiError> {
    let month = parse_month(
        month.ok_or_else(|| ApiError::BadRequest("month=YYYY-MM is required".into()))?,
    )?;
    if month.start() > now {
        return Err(ApiError::BadRequest(format!("{month} has not begun")));
    }
    Ok(month)
}

pub(crate) fn parse_month(s: &str) -> Result<YearMonth, ApiError> {
    s.parse()
        .map_err(|e: vft_domain::month::MonthError| ApiError::BadRequest(e.to_string()))
}

pub(crate) fn parse_year(year: Option<&str>, now: DateTime<Utc>) -> Result<i32, ApiError> {
    match year {
        None => Ok(YearMonth::containing(now).year()),
        Some(y) => y
            .parse::<i32>()
            .ok()
            .filter(|y| (1970..=9999).contains(y))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "year must be a year between 1970 and 9999, got {y:?}"
                ))
            }),
    }
}

/// Which devices a figure counts: one municipality and/or vendor, and/or the members of a
/// cooperation at the instant the figure is taken.
pub(crate) struct Selection {
    municipality: Option<MunicipalityCode>,
    vendor: Option<VendorId>,
    cooperation: Option<Cooperation>,
}

impl Selection {
    /// One municipality or the whole region, no vendor or cooperation: a report's scope,
    /// already checked against whoever asked for it.
    pub(crate) fn of_municipality(municipality: Option<MunicipalityCode>) -> Self {
        Self {
            municipality,
            vendor: None,
            cooperation: None,
        }
    }

    /// The one municipality asked for (or the caller's own), if any.
    pub(crate) fn municipality(&self) -> Option<&MunicipalityCode> {
        self.municipality.as_ref()
    }

    /// Whether a vendor or a cooperation narrows the selection beyond one municipality.
    pub(crate) fn has_vendor_or_cooperation(&self) -> bool {
        self.vendor.is_some() || self.cooperation.is_some()
    }

    /// How a download names what it holds: the municipality, the cooperation or the region,
    /// and the vendor if one.
    pub(crate) fn file_scope(&self) -> String {
        let scope = match (&self.municipality, &self.cooperation) {
            (Some(m), _) => m.to_string(),
            (None, Some(c)) => c.id.clone(),
            (None, None) => "region".to_owned(),
        };
        match &self.vendor {
            Some(v) => format!("{scope}-{v}"),
            None => scope,
        }
    }

    pub(crate) fn parse(
        state: &AppState,
        caller: &Caller,
        municipality: Option<&str>,
        vendor: Option<&str>,
        cooperation: Option<&str>,
    ) -> Result<Self, ApiError> {
        let asked = municipality
            .map(|m| {
                let code =
                    MunicipalityCode::parse(m).map_err(|e| ApiError::BadRequest(e.to_string()))?;
                if state.registry.contains(&code) {
                    Ok(code)
                } else {
                    Err(ApiError::BadRequest(format!("unknown municipality {code}")))
                }
            })
            .transpose()?;
        let municipality = caller.scope(asked)?;
        let vendor = vendor
            .map(|v| VendorId::parse(v).map_err(|e| ApiError::BadRequest(e.to_string())))
            .transpose()?;
        let cooperation = cooperation
            .map(|c| {
                state
                    .cooperations
                    .iter()
                    .find(|k| k.id == c)
                    .cloned()
                    .ok_or_else(|| {
                        let known: Vec<&str> =
                            state.cooperations.iter().map(|k| k.id.as_str()).collect();
                        ApiError::BadRequest(format!(
                            "unknown cooperation {c:?}; known: {}",
                            known.join(", ")
                        ))
                    })
            })
            .transpose()?;
        Ok(Self {
            municipality,
            vendor,
            cooperation,
        })
    }

    /// Whether a municipality and vendor count in a figure taken just before `cut`.
    pub(crate) fn admits(
        &self,
        municipality: &MunicipalityCode,
        vendor: &VendorId,
        cut: DateTime<Utc>,
    ) -> bool {
        self.vendor.as_ref().is_none_or(|v| v == vendor)
            && self.admits_municipality(municipality, cut)
    }

    /// The municipality part alone, for figures that have no vendor (medication).
    pub(crate) fn admits_municipality(
        &self,
        municipality: &MunicipalityCode,
        cut: DateTime<Utc>,
    ) -> bool {
        let at = cut - chrono::Duration::microseconds(1);
        self.municipality.as_ref().is_none_or(|m| m == municipality)
            && self
                .cooperation
                .as_ref()
                .is_none_or(|c| c.is_member(municipality, at))
    }

    /// The same selection as an attribution scope at one cut.
    pub(crate) fn scope(&self, registry: &Registry, cut: DateTime<Utc>) -> Scope {
        let municipalities =
            (self.municipality.is_some() || self.cooperation.is_some()).then(|| {
                registry
                    .iter()
                    .map(|x| x.code.clone())
                    .filter(|code| self.admits_municipality(code, cut))
                    .collect()
            });
        Scope {
            municipalities,
            vendor: self.vendor.clone(),
        }
    }

    /// Devices and recipients per type, summed over the admitted rows of one cut.
    fn sum(&self, rows: &[BreakdownRow], idx: usize, cut: DateTime<Utc>) -> ([u64; 6], [u64; 6]) {
        let mut devices = [0; 6];
        let mut recipients = [0; 6];
        for r in rows
            .iter()
            .filter(|r| r.idx == idx && self.admits(&r.municipality, &r.vendor, cut))
        {
            devices[r.kind.index()] += r.devices;
            recipients[r.kind.index()] += r.recipients;
        }
        (devices, recipients)
    }
}

/// Past months are taken at their last instant, the current month as of now; months not begun
/// have no figure (`None`).
pub(crate) fn month_cuts(months: &[YearMonth], now: DateTime<Utc>) -> Vec<Option<DateTime<Utc>>> {
    months
        .iter()
        .map(|m| (m.start() <= now).then(|| m.end_exclusive().min(now)))
        .collect()
}

/// `GET /api/v1/rollups/devices` as JSON: Contract 2's table (`year`, `months`, `rows`,
/// `total`) and, beside it, recipients, published months, corrections and the cooperation.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceTableView {
    pub year: i32,
    /// The twelve months of the year.
    #[schema(value_type = Vec<crate::schemas::Month>)]
    pub months: Vec<YearMonth>,
    /// One row per technology type, in table order.
    pub rows: Vec<TableRowView>,
    /// Per month, the sum of the rows; `null` for a month not begun.
    pub total: Vec<Option<u64>>,
    pub recipients: RecipientTableView,
    /// Per month, whether it is published (closed): its counts are then the published ones.
    pub published: Vec<bool>,
    /// Where later events changed a published count.
    pub corrections: Vec<CorrectionView>,
    /// The cooperation asked for; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub cooperation: Option<String>,
}

/// One technology type's devices in service at each month end.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableRowView {
    #[schema(value_type = crate::schemas::Kind)]
    pub kind: TechnologyKind,
    /// The type's Norwegian label.
    pub label: String,
    /// Per month; `null` for a month not begun.
    pub counts: Vec<Option<u64>>,
}

/// Distinct service recipients per technology type (summed over municipalities).
#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientTableView {
    pub rows: Vec<RecipientRowView>,
    /// Per month, the sum of the rows; `null` for a month not begun.
    pub total: Vec<Option<u64>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientRowView {
    #[schema(value_type = crate::schemas::Kind)]
    pub kind: TechnologyKind,
    /// Per month; `null` for a month not begun.
    pub counts: Vec<Option<u64>>,
}

/// A published count that later events changed: `difference` = `current` − `published`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectionView {
    #[schema(value_type = crate::schemas::Month)]
    pub month: YearMonth,
    #[schema(value_type = crate::schemas::Kind)]
    pub kind: TechnologyKind,
    pub published: u64,
    pub current: u64,
    pub difference: i64,
}

#[utoipa::path(get, path = "/api/v1/rollups/devices", tag = "rollups", params(DevicesQuery), responses((status = 200, description = "The monthly table (Contract 2) with recipients, published months and corrections; CSV with format=csv.", content((DeviceTableView = "application/json"), (String = "text/csv"))), (status = 400, description = "Bad parameter", body = crate::schemas::ErrorBody), (status = 401, description = "No or unknown token", body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/rollups/devices`: devices in service at each month end of a year (Contract 2),
/// with, beside the contract's fields, distinct service recipients per type, which months are
/// published, and corrections where later events changed a published figure.
pub async fn devices(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<DevicesQuery>,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let year = parse_year(q.year.as_deref(), now)?;
    let selection = Selection::parse(
        &state,
        &caller,
        q.municipality.as_deref(),
        q.vendor.as_deref(),
        q.cooperation.as_deref(),
    )?;
    let csv = crate::wants_csv(q.format.as_deref(), &headers)?;
    let TableFigures {
        devices: table,
        recipients: recipient_table,
        published,
        corrections,
    } = table_figures(state.store.as_ref(), &selection, year, now).await?;
    if let Some(dialect) = csv {
        return Ok(crate::csv_response(
            dialect,
            &format!("tabell-{year}"),
            &selection.file_scope(),
            table.to_csv(),
        ));
    }
    // Destructured in full, so a field added to the domain table is a compile error here.
    let DeviceTable {
        year,
        months,
        rows,
        total,
    } = table;
    let body = DeviceTableView {
        year,
        months,
        rows: rows
            .into_iter()
            .map(
                |TableRow {
                     kind,
                     label,
                     counts,
                 }| TableRowView {
                    kind,
                    label,
                    counts,
                },
            )
            .collect(),
        total,
        recipients: RecipientTableView {
            rows: recipient_table
                .rows
                .into_iter()
                .map(|r| RecipientRowView {
                    kind: r.kind,
                    counts: r.counts,
                })
                .collect(),
            total: recipient_table.total,
        },
        published,
        corrections,
        cooperation: selection.cooperation.as_ref().map(|c| c.id.clone()),
    };
    Ok(Json(body).into_response())
}

/// The monthly table of a year as the API serves it: devices and recipients per type at each
/// month end (published months as published), which months are published, and corrections.
pub(crate) struct TableFigures {
    pub devices: DeviceTable,
    pub recipients: DeviceTable,
    pub published: Vec<bool>,
    pub corrections: Vec<CorrectionView>,
}

/// The table behind `GET /api/v1/rollups/devices`; the monthly report reads the same.
pub(crate) async fn table_figures(
    store: &dyn vft_store::Store,
    selection: &Selection,
    year: i32,
    now: DateTime<Utc>,
) -> Result<TableFigures, ApiError> {
    let months =
        YearMonth::months_of_year(year).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let cuts = month_cuts(&months, now);
    let instants: Vec<DateTime<Utc>> = cuts.iter().flatten().copied().collect();
    let live = store.month_end_breakdown(&instants).await?;
    let published = store.published_months(&months).await?;

    let mut shown: Vec<Option<[u64; 6]>> = Vec::new();
    let mut recipients: Vec<Option<[u64; 6]>> = Vec::new();
    let mut corrections = Vec::new();
    let mut next_idx = 0;
    for (m, cut) in months.iter().zip(&cuts) {
        let Some(cut) = *cut else {
            shown.push(None);
            recipients.push(None);
            continue;
        };
        let (live_devices, live_recipients) = selection.sum(&live, next_idx, cut);
        next_idx += 1;
        match published.iter().find(|p| p.month == *m) {
            Some(p) => {
                let (pub_devices, pub_recipients) =
                    selection.sum(&p.rows, p.rows.first().map_or(0, |r| r.idx), cut);
                for kind in TechnologyKind::ALL {
                    let (was, is) = (pub_devices[kind.index()], live_devices[kind.index()]);
                    if was != is {
                        corrections.push(CorrectionView {
                            month: *m,
                            kind,
                            published: was,
                            current: is,
                            difference: is as i64 - was as i64,
                        });
                    }
                }
                shown.push(Some(pub_devices));
                recipients.push(Some(pub_recipients));
            }
            None => {
                shown.push(Some(live_devices));
                recipients.push(Some(live_recipients));
            }
        }
    }
    Ok(TableFigures {
        devices: DeviceTable::from_counts(year, months.clone(), &shown),
        recipients: DeviceTable::from_counts(year, months.clone(), &recipients),
        published: months
            .iter()
            .map(|m| published.iter().any(|p| p.month == *m))
            .collect(),
        corrections,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// The month to explain (YYYY-MM), against the month before.
    month: Option<String>,
    municipality: Option<String>,
    vendor: Option<String>,
    cooperation: Option<String>,
}

/// Devices listed per change line; the count is always complete.
const MAX_LISTED: usize = 500;

/// `GET /api/v1/rollups/devices/changes`: why each row moved since the month before.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangesView {
    #[schema(value_type = crate::schemas::Month)]
    pub month: YearMonth,
    #[schema(value_type = crate::schemas::Month)]
    pub previous_month: YearMonth,
    /// One row per technology type, in table order.
    pub rows: Vec<ChangeRowView>,
}

/// One technology type: devices counted at the start (`before`) and end (`after`) of the month;
/// its lines add up to `delta`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeRowView {
    #[schema(value_type = crate::schemas::Kind)]
    pub kind: TechnologyKind,
    pub label: String,
    pub before: i64,
    pub after: i64,
    pub delta: i64,
    pub lines: Vec<ChangeLineView>,
}

/// One cause of a row's change. `devices` lists at most 500; `device_count` is all of them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeLineView {
    pub cause: ChangeCauseView,
    /// Only on `decommissioned` lines, which are split by it: `returned`,
    /// `moved_to_institution`, `deceased`, `no_longer_needed`, `replaced`, `broken`, `lost`,
    /// `other`, or `not_given` (the event said none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub delta: i64,
    pub device_count: u64,
    pub devices: Vec<DeviceKeyView>,
}

/// A device by vendor and device id.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceKeyView {
    pub vendor: String,
    pub device: String,
}

// `vft_domain::ChangeCause` with the same ids; the conversion below names every domain
// variant, so a new one does not compile until it is added here.
/// Why a device entered or left the counted set.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ChangeCause)]
pub enum ChangeCauseView {
    Installed,
    Decommissioned,
    Replaced,
    VendorMigration,
    MovedIn,
    MovedOut,
    KindChanged,
    MunicipalityJoined,
    MunicipalityLeft,
}

impl From<ChangeCause> for ChangeCauseView {
    fn from(c: ChangeCause) -> Self {
        match c {
            ChangeCause::Installed => Self::Installed,
            ChangeCause::Decommissioned => Self::Decommissioned,
            ChangeCause::Replaced => Self::Replaced,
            ChangeCause::VendorMigration => Self::VendorMigration,
            ChangeCause::MovedIn => Self::MovedIn,
            ChangeCause::MovedOut => Self::MovedOut,
            ChangeCause::KindChanged => Self::KindChanged,
            ChangeCause::MunicipalityJoined => Self::MunicipalityJoined,
            ChangeCause::MunicipalityLeft => Self::MunicipalityLeft,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/rollups/devices/changes", tag = "rollups", params(ChangesQuery), responses((status = 200, description = "Per technology type: before, after, delta and the lines adding up to delta.", body = ChangesView), (status = 400, description = "Bad parameter", body = crate::schemas::ErrorBody), (status = 401, description = "No or unknown token", body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/rollups/devices/changes?month=YYYY-MM`: why each row moved since the month
/// before, line by line; the lines of a row add up to its change.
pub async fn changes(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ChangesQuery>,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let month = begun_month(q.month.as_deref(), now)?;
    let selection = Selection::parse(
        &state,
        &caller,
        q.municipality.as_deref(),
        q.vendor.as_deref(),
        q.cooperation.as_deref(),
    )?;
    // Read from the service state ingest keeps: the cost follows the month's changes, not the
    // fleet, so nothing is kept and a GET writes nothing.
    let view = attribution(
        state.store.as_ref(),
        &state.registry,
        &selection,
        month,
        now,
    )
    .await?;
    Ok(Json(view).into_response())
}

/// A line as the API shows it; a `decommissioned` line becomes one line per reason (in the
/// contract's order, `not_given` last), each with its devices and its share of the delta.
fn split_by_reason(
    line: &vft_domain::ChangeLine,
    reasons: &std::collections::HashMap<
        (vft_domain::VendorId, vft_domain::DeviceId),
        Option<vft_domain::DecommissionReason>,
    >,
) -> Vec<ChangeLineView> {
    let view = |reason: Option<String>,
                devices: Vec<&(vft_domain::VendorId, vft_domain::DeviceId)>| {
        // Every device of a line moves the row the same way: the line's delta per device.
        let per_device = if line.devices.is_empty() {
            0
        } else {
            line.delta / line.devices.len() as i64
        };
        ChangeLineView {
            cause: line.cause.into(),
            reason,
            delta: per_device * devices.len() as i64,
            device_count: devices.len() as u64,
            devices: devices
                .iter()
                .take(MAX_LISTED)
                .map(|(v, d)| DeviceKeyView {
                    vendor: v.to_string(),
                    device: d.to_string(),
                })
                .collect(),
        }
    };
    if line.cause != vft_domain::ChangeCause::Decommissioned {
        return vec![view(None, line.devices.iter().collect())];
    }
    let mut by_reason: std::collections::BTreeMap<
        Option<vft_domain::DecommissionReason>,
        Vec<&(vft_domain::VendorId, vft_domain::DeviceId)>,
    > = Default::default();
    for key in &line.devices {
        by_reason
            .entry(reasons.get(key).copied().flatten())
            .or_default()
            .push(key);
    }
    // Reasons in the contract's order; devices without one ("not given") last.
    let mut views: Vec<ChangeLineView> = by_reason
        .iter()
        .filter_map(|(r, devices)| r.map(|r| view(Some(r.id().to_owned()), devices.clone())))
        .collect();
    if let Some(devices) = by_reason.get(&None) {
        views.push(view(Some("not_given".to_owned()), devices.clone()));
    }
    views
}

/// The month's change attribution against the month before, computed from the snapshots
/// (`GET /api/v1/rollups/devices/changes`, and the monthly report).
pub(crate) async fn attribution(
    store: &dyn vft_store::Store,
    registry: &Registry,
    selection: &Selection,
    month: YearMonth,
    now: DateTime<Utc>,
) -> Result<ChangesView, ApiError> {
    let before_cut = month.start();
    let after_cut = month.end_exclusive().min(now);
    let before_scope = selection.scope(registry, before_cut);
    let after_scope = selection.scope(registry, after_cut);
    // Besides the devices that changed, a device kept through the month moves a row only if
    // its municipality joined or left the selection (a cooperation's membership).
    let shifted: Vec<MunicipalityCode> =
        match (&before_scope.municipalities, &after_scope.municipalities) {
            (None, None) => Vec::new(),
            (Some(b), Some(a)) => b.symmetric_difference(a).cloned().collect(),
            _ => registry.iter().map(|m| m.code.clone()).collect(),
        };
    let changes = store
        .service_changes(before_cut, after_cut, &shifted)
        .await?;
    let at = |cut: DateTime<Utc>| -> Vec<vft_domain::attribution::InService> {
        changes
            .spans
            .iter()
            .filter(|s| s.covers(cut))
            .filter_map(vft_domain::interval::Interval::in_service)
            .collect()
    };
    let (before, after) = (at(before_cut), at(after_cut));
    let lines = attribute_changes(&before, &before_scope, &after, &after_scope);
    // Why the decommissioned devices left: their latest lifecycle event before the month end.
    let gone: Vec<(vft_domain::VendorId, vft_domain::DeviceId)> = lines
        .iter()
        .filter(|l| l.cause == vft_domain::ChangeCause::Decommissioned)
        .flat_map(|l| l.devices.iter().cloned())
        .collect();
    let reasons = if gone.is_empty() {
        Default::default()
    } else {
        store.decommission_reasons(&gone, after_cut).await?
    };
    // The rows' counts from the breakdown read in the same snapshot as the spans, so the lines
    // add up to each row's change.
    let count = |idx: usize, scope: &Scope, kind: TechnologyKind| -> i64 {
        changes
            .breakdown
            .iter()
            .filter(|r| r.idx == idx && r.kind == kind && scope.admits(&r.municipality, &r.vendor))
            .map(|r| r.devices as i64)
            .sum()
    };
    let previous = YearMonth::containing(before_cut - chrono::Duration::microseconds(1));
    let rows = TechnologyKind::ALL
        .into_iter()
        .map(|kind| {
            let (b, a) = (count(0, &before_scope, kind), count(1, &after_scope, kind));
            let kind_lines = lines
                .iter()
                .filter(|l| l.kind == kind)
                .flat_map(|l| split_by_reason(l, &reasons))
                .collect();
            ChangeRowView {
                kind,
                label: kind.label_nb().to_owned(),
                before: b,
                after: a,
                delta: a - b,
                lines: kind_lines,
            }
        })
        .collect();
    Ok(ChangesView {
        month,
        previous_month: previous,
        rows,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLettersQuery {
    /// At most this many (1-1000, default 100).
    limit: Option<u32>,
    /// Only those older than this id (`next_before` of the previous page).
    before: Option<i64>,
    /// `false`: only open ones; `true`: only those handled (or replayed).
    handled: Option<bool>,
}

/// One page of dead letters, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetterView>,
    /// Pass as `before` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_before: Option<i64>,
}

/// A message (or one element of a batch) that broke the contract, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    pub id: i64,
    pub topic: String,
    /// A bounded code, e.g. `malformed_json`.
    pub reason_code: String,
    pub reason: String,
    /// RFC 3339 with offset (`+00:00`).
    #[schema(format = DateTime)]
    pub received_at: String,
    /// The payload as text (invalid UTF-8 replaced); national identity numbers masked.
    pub payload: String,
    /// Size of the stored payload.
    pub payload_bytes: u64,
    /// When it was marked handled (or replayed); `null` while open.
    pub handled_at: Option<String>,
    /// Who marked it (as the audit log names them).
    pub handled_by: Option<String>,
    /// Whether it was replayed into events (and how many), once the configuration allowed.
    pub replayed: bool,
    pub replayed_events: Option<u64>,
}

impl From<vft_store::DeadLetter> for DeadLetterView {
    fn from(d: vft_store::DeadLetter) -> Self {
        Self {
            id: d.id,
            topic: d.topic,
            reason_code: d.reason_code,
            reason: d.reason,
            received_at: d.received_at.to_rfc3339(),
            payload: String::from_utf8_lossy(&d.payload).into_owned(),
            payload_bytes: d.payload.len() as u64,
            handled_at: d.handled.as_ref().map(|(at, _)| at.to_rfc3339()),
            handled_by: d.handled.map(|(_, by)| by),
            replayed: d.replayed_events.is_some(),
            replayed_events: d.replayed_events,
        }
    }
}

#[utoipa::path(post, path = "/api/v1/dead-letters/{id}/handled", tag = "ingest", params(("id" = i64, Path)), responses((status = 200, body = DeadLetterView), (status = 401, body = crate::schemas::ErrorBody), (status = 403, body = crate::schemas::ErrorBody), (status = 404, body = crate::schemas::ErrorBody)))]
/// `POST /api/v1/dead-letters/{id}/handled` (coordinator, operator): marks a rejected message
/// as dealt with. A second mark keeps the first (who and when).
pub async fn mark_handled(
    State(state): State<AppState>,
    crate::auth::DeadLetterReader(who): crate::auth::DeadLetterReader,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> Result<Json<DeadLetterView>, ApiError> {
    if !state
        .store
        .mark_dead_letter_handled(id, &who.actor(), Utc::now(), None)
        .await?
    {
        return Err(ApiError::NotFound(format!("no dead letter {id}")));
    }
    let letter = state
        .store
        .dead_letter(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dead letter {id}")))?;
    Ok(Json(letter.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayView {
    pub replayed: bool,
    /// Events the payload gave (stored once: a replay of what is stored is a duplicate).
    pub events: u64,
    pub dead_letter: DeadLetterView,
}

#[utoipa::path(post, path = "/api/v1/dead-letters/{id}/replay", tag = "ingest", params(("id" = i64, Path)), responses((status = 200, description = "Every item of its payload is now a valid event: stored, and the dead letter marked handled.", body = ReplayView), (status = 401, body = crate::schemas::ErrorBody), (status = 403, body = crate::schemas::ErrorBody), (status = 404, body = crate::schemas::ErrorBody), (status = 422, description = "Still not valid (the reason says why), or not replayable (an identity number was masked in it, or it came on a vendor adapter's topic).", body = crate::schemas::ErrorBody)))]
/// `POST /api/v1/dead-letters/{id}/replay` (coordinator): parses the stored payload again with
/// today's configuration (a municipality added, say); if every item is now a valid event, the
/// events are stored as ingest would store them and the dead letter is marked handled.
pub async fn replay(
    State(state): State<AppState>,
    crate::auth::Coordinator(who): crate::auth::Coordinator,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> Result<Json<ReplayView>, ApiError> {
    let letter = state
        .store
        .dead_letter(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dead letter {id}")))?;
    if letter.replayed_events.is_some() {
        let events = letter.replayed_events.unwrap_or(0);
        return Ok(Json(ReplayView {
            replayed: true,
            events,
            dead_letter: letter.into(),
        }));
    }
    // Its payload was stored with the number masked: it can never become the events it was.
    if letter.reason_code == "national_identity_number" {
        return Err(ApiError::NotReplayable(
            "it held a national identity number, which was masked; ask the sender to send it again without".into(),
        ));
    }
    let topic = vft_domain::EventTopic::parse(&state.topic_prefix, &letter.topic).map_err(|_| {
        ApiError::NotReplayable(
            "only messages on vft's own event topics can be replayed here; a vendor adapter's messages come again from the vendor".into(),
        )
    })?;
    let now = Utc::now();
    let items = vft_domain::parse_payload_at(
        Ok(&topic),
        &letter.payload,
        &state.registry,
        letter.payload.len().max(1),
        &state.plausible_times,
        now,
    );
    let mut events = Vec::with_capacity(items.len());
    for item in items {
        match item {
            vft_domain::ParsedItem::Event(e) => events.push(*e),
            vft_domain::ParsedItem::Dead { reason, .. } => {
                return Err(ApiError::NotReplayable(format!(
                    "still not valid: {}",
                    vft_domain::nin::masked_prefix(&reason.to_string(), 300)
                )));
            }
        }
    }
    let outcome = state.store.write_batch(&events, &[], now).await?;
    if !outcome.conflicting.is_empty() {
        return Err(ApiError::NotReplayable(format!(
            "{} of its events have ids already stored with other content",
            outcome.conflicting.len()
        )));
    }
    let count = events.len() as u64;
    state
        .store
        .mark_dead_letter_handled(id, &who.actor(), now, Some(count))
        .await?;
    let letter = state
        .store
        .dead_letter(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dead letter {id}")))?;
    tracing::info!(dead_letter = id, events = count, "dead letter replayed");
    Ok(Json(ReplayView {
        replayed: true,
        events: count,
        dead_letter: letter.into(),
    }))
}

#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "ingest", params(DeadLettersQuery), responses((status = 200, description = "Dead letters, newest first, and next_before.", body = DeadLetterPage), (status = 400, description = "Bad parameter", body = crate::schemas::ErrorBody), (status = 401, description = "No or unknown token", body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/dead-letters`: what broke the contract, newest first. Coordinator and
/// operator only: a dead letter may not say which municipality it belongs to.
pub async fn dead_letters(
    State(state): State<AppState>,
    _reader: crate::auth::DeadLetterReader,
    note: crate::audit_slot::AuditNote,
    Query(q): Query<DeadLettersQuery>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = state
        .store
        .dead_letter_page(limit, q.before, q.handled)
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|d| d.id))
        .flatten();
    note.subjects(rows.iter().map(|d| format!("dead_letter={}", d.id)));
    let items = rows.into_iter().map(DeadLetterView::from).collect();
    Ok(Json(DeadLetterPage {
        items,
        next_before: next,
    }))
}
