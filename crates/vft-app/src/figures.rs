//! The response centre's and medication figures per month, as
//! `GET /api/v1/rollups/response-centre` and `/rollups/medication` serve them and the monthly
//! report shows them.

use crate::AppError;
use crate::selection::Selection;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use vft_domain::response::{MonthResponse, ResponseStandard, response_figures};
use vft_domain::{TechnologyKind, YearMonth};
use vft_store::Store;

/// `kind=`: a technology type id, if given.
pub fn technology_kind(kind: Option<&str>) -> Result<Option<TechnologyKind>, AppError> {
    kind.map(|k| {
        TechnologyKind::from_id(k)
            .ok_or_else(|| AppError::Invalid(format!("unknown technology type {k:?}")))
    })
    .transpose()
}

/// The months of `GET /api/v1/rollups/response-centre` as it serves them; the monthly report
/// reads the same. `own` is the municipality a municipality user acts for: its figures are
/// made of its own events only.
pub async fn response_months(
    store: &dyn Store,
    selection: &Selection,
    own: Option<&vft_domain::MunicipalityCode>,
    kind: Option<TechnologyKind>,
    months: &[YearMonth],
    standard: &ResponseStandard,
) -> Result<Vec<MonthResponse>, AppError> {
    // The coordinator's figures (by municipality too) merge every event of an alarm, counted
    // where it was raised, so the municipalities add up to the region: ingest keeps their sums
    // per month, municipality and kind (the kind an alarm's own, else its device's current
    // one), and they are read from there. A municipality user's figures come from its own
    // events only: its sums, corrected by the few alarms with events from several
    // municipalities (decision 0026).
    let kept = !selection.has_vendor_or_cooperation();
    let tallies = match own {
        None if kept => Some(
            store
                .response_tallies(months, selection.municipality(), kind)
                .await?,
        ),
        Some(own) if kept && selection.municipality().is_none_or(|m| m == own) => {
            Some(store.own_response_tallies(months, own, kind).await?)
        }
        _ => None,
    };
    if let Some(tallies) = tallies {
        return Ok(months
            .iter()
            .zip(tallies)
            .map(|(m, t)| t.figures(*m, standard))
            .collect());
    }
    // A selection by vendor or cooperation (whose memberships are day-aligned, not
    // month-aligned) is computed from the alarms of the months asked for: a municipality
    // user's merged from its own events only (an alarm raised here and acknowledged by another
    // municipality's gateway is unanswered here, and that answer is counted there).
    let (Some(first), Some(last)) = (months.iter().min(), months.iter().max()) else {
        return Ok(Vec::new());
    };
    // An alarm's month is its origin's (the `alarm` event, else its earliest event), which is
    // what the store selects by: these are all the alarms of the months.
    let (start, end) = (first.start(), last.end_exclusive());
    let mut alarms = match &own {
        Some(own) => store.own_alarm_records(own, start, end).await?,
        None => store.alarm_records(start, end).await?,
    };
    alarms.retain(|a| {
        let cut = a.anchor().unwrap_or(start) + chrono::Duration::microseconds(1);
        selection.admits(&a.municipality, &a.vendor, cut) && kind.is_none_or(|k| a.kind == Some(k))
    });
    Ok(response_figures(&alarms, months, standard))
}

/// `GET /api/v1/rollups/medication`: doses per month of the year.
#[derive(Debug, Serialize, ToSchema)]
pub struct MedicationView {
    pub year: i32,
    pub months: Vec<MedicationMonthView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MedicationMonthView {
    #[schema(value_type = crate::schema::Month)]
    pub month: YearMonth,
    pub taken: u64,
    pub missed: u64,
}

/// Doses taken and missed per month of `months`, of the municipalities `selection` admits at
/// each month's end.
pub async fn medication(
    store: &dyn Store,
    selection: &Selection,
    months: &[YearMonth],
) -> Result<MedicationView, AppError> {
    let periods: Vec<(DateTime<Utc>, DateTime<Utc>)> = months
        .iter()
        .map(|m| (m.start(), m.end_exclusive()))
        .collect();
    let mut taken = vec![0u64; months.len()];
    let mut missed = vec![0u64; months.len()];
    for (i, municipality, t, m) in store.dose_counts(&periods).await? {
        if selection.admits_municipality(&municipality, periods[i].1) {
            taken[i] += t;
            missed[i] += m;
        }
    }
    let rows = months
        .iter()
        .enumerate()
        .map(|(i, m)| MedicationMonthView {
            month: *m,
            taken: taken[i],
            missed: missed[i],
        })
        .collect();
    Ok(MedicationView {
        year: months[0].year(),
        months: rows,
    })
}
