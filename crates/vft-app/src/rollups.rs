//! The monthly table of a year and the change attribution of a month, as
//! `GET /api/v1/rollups/devices` and `/rollups/devices/changes` serve them and the monthly
//! report shows them.

use crate::AppError;
use crate::selection::{Selection, month_cuts};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use vft_domain::attribution::{Scope, attribute_changes};
use vft_domain::{ChangeCause, DeviceTable, MunicipalityCode, Registry, TechnologyKind, YearMonth};

/// A published count that later events changed: `difference` = `current` − `published`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectionView {
    #[schema(value_type = crate::schema::Month)]
    pub month: YearMonth,
    #[schema(value_type = crate::schema::Kind)]
    pub kind: TechnologyKind,
    pub published: u64,
    pub current: u64,
    pub difference: i64,
}

/// The monthly table of a year as the API serves it: devices and recipients per type at each
/// month end (published months as published), which months are published, and corrections.
pub struct TableFigures {
    pub devices: DeviceTable,
    pub recipients: DeviceTable,
    pub published: Vec<bool>,
    pub corrections: Vec<CorrectionView>,
}

/// The table behind `GET /api/v1/rollups/devices`; the monthly report reads the same.
pub async fn table_figures(
    store: &dyn vft_store::Store,
    selection: &Selection,
    year: i32,
    now: DateTime<Utc>,
) -> Result<TableFigures, AppError> {
    let months = YearMonth::months_of_year(year).map_err(|e| AppError::Invalid(e.to_string()))?;
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

/// Devices listed per change line; the count is always complete.
const MAX_LISTED: usize = 500;

/// `GET /api/v1/rollups/devices/changes`: why each row moved since the month before.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangesView {
    #[schema(value_type = crate::schema::Month)]
    pub month: YearMonth,
    #[schema(value_type = crate::schema::Month)]
    pub previous_month: YearMonth,
    /// One row per technology type, in table order.
    pub rows: Vec<ChangeRowView>,
}

/// One technology type: devices counted at the start (`before`) and end (`after`) of the month;
/// its lines add up to `delta`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeRowView {
    #[schema(value_type = crate::schema::Kind)]
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
pub async fn attribution(
    store: &dyn vft_store::Store,
    registry: &Registry,
    selection: &Selection,
    month: YearMonth,
    now: DateTime<Utc>,
) -> Result<ChangesView, AppError> {
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
    // Each span taken apart into the snapshot(s) it is in, copied only when in both.
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for span in changes.spans {
        match (span.covers(before_cut), span.covers(after_cut)) {
            (true, true) => {
                if let Some(d) = span.into_in_service() {
                    before.push(d.clone());
                    after.push(d);
                }
            }
            (true, false) => before.extend(span.into_in_service()),
            (false, true) => after.extend(span.into_in_service()),
            (false, false) => {}
        }
    }
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
