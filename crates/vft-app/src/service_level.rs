//! The vendors' service level in one month (see `vft_domain::service`): availability
//! (device-hours in service without contact), faults and the response centre's answers to
//! each vendor's alarms, as `GET /api/v1/rollups/vendor-service` serves it and the monthly
//! report shows it.

use crate::AppError;
use chrono::{Duration, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use vft_domain::service::DeviceHistory;
use vft_domain::{MunicipalityCode, ResponseStandard, YearMonth};
use vft_store::DeviceQuery;

/// One vendor's month.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VendorServiceRow {
    pub vendor: String,
    /// Devices in service at some instant of the month.
    pub devices: u64,
    pub hours_in_service: f64,
    /// Device-hours in service with no contact within the device's timeout.
    pub hours_without_contact: f64,
    /// 1 − without / in service; `null` with no device in service.
    pub availability: Option<f64>,
    /// `fault` events of its devices.
    pub faults: u64,
    /// Its devices' alarms triggered in the month.
    pub alarms: u64,
    pub never_acknowledged: u64,
    pub share_within_60s: Option<f64>,
    pub share_within_180s: Option<f64>,
    pub response_median_ms: Option<u64>,
    pub response_p90_ms: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VendorServiceView {
    #[schema(value_type = crate::schema::Month)]
    pub month: YearMonth,
    pub municipality: Option<String>,
    pub rows: Vec<VendorServiceRow>,
}

/// The vendors' service level as `GET /api/v1/rollups/vendor-service` serves it; the monthly
/// report reads the same. `own` is the municipality a municipality user acts for (its alarms
/// are made of its own events); `scope` the municipality asked for, if any.
pub async fn vendor_service(
    store: &dyn vft_store::Store,
    timeouts: vft_store::Timeouts,
    own: Option<&MunicipalityCode>,
    month: YearMonth,
    scope: Option<MunicipalityCode>,
    now: chrono::DateTime<Utc>,
) -> Result<VendorServiceView, AppError> {
    let start = month.start();
    let end = month.end_exclusive().min(now);
    // The devices the scope holds (by their municipality now), with their timeouts.
    let mut query = DeviceQuery::new(now, timeouts);
    query.limit = 0;
    query.municipalities = scope.clone().map(|m| vec![m]);
    let devices = store.devices(&query).await?;
    let timeout = |d: &vft_store::DeviceRecord| {
        let secs = d.timeout_override_secs.unwrap_or_else(|| {
            d.kind
                .map_or(timeouts.unknown_kind, |k| timeouts.per_kind[k.index()])
        });
        Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1_000_000))
    };
    let longest = devices
        .iter()
        .map(timeout)
        .max()
        .unwrap_or_else(Duration::zero);
    let lifecycle = store.lifecycle_records().await?;
    let mut by_device: HashMap<
        (&vft_domain::VendorId, &vft_domain::DeviceId),
        Vec<&vft_domain::LifecycleRecord>,
    > = HashMap::new();
    for r in &lifecycle {
        by_device.entry((&r.vendor, &r.device)).or_default().push(r);
    }
    // Contacts from one timeout before the month: the last one before it decides its start.
    let contacts = store.contacts(start - longest, end).await?;
    let mut contacts_of: HashMap<
        (&vft_domain::VendorId, &vft_domain::DeviceId),
        Vec<chrono::DateTime<Utc>>,
    > = HashMap::new();
    let mut faults: BTreeMap<vft_domain::VendorId, u64> = BTreeMap::new();
    let in_scope: std::collections::HashSet<(&vft_domain::VendorId, &vft_domain::DeviceId)> =
        devices.iter().map(|d| (&d.vendor, &d.device)).collect();
    for (v, d, ts, fault) in &contacts {
        if !in_scope.contains(&(v, d)) {
            continue;
        }
        contacts_of.entry((v, d)).or_default().push(*ts);
        if *fault && start <= *ts && *ts < end {
            *faults.entry(v.clone()).or_default() += 1;
        }
    }
    let histories: Vec<DeviceHistory<'_>> = devices
        .iter()
        .map(|d| DeviceHistory {
            vendor: &d.vendor,
            device: &d.device,
            lifecycle: by_device
                .get(&(&d.vendor, &d.device))
                .cloned()
                .unwrap_or_default(),
            contacts: contacts_of
                .remove(&(&d.vendor, &d.device))
                .unwrap_or_default(),
            timeout: timeout(d),
        })
        .collect();
    // Alarms as the response-centre figures count them: a municipality's from its own events.
    let alarms = match (own, &scope) {
        (Some(own), _) => store.own_alarm_records(own, start, end).await?,
        (None, Some(m)) => store
            .alarm_records(start, end)
            .await?
            .into_iter()
            .filter(|a| a.municipality == *m)
            .collect(),
        (None, None) => store.alarm_records(start, end).await?,
    };
    let rows = vft_domain::service::vendor_service(
        month,
        &histories,
        &faults,
        &alarms,
        &ResponseStandard::default(),
    )
    .into_iter()
    .map(|v| VendorServiceRow {
        vendor: v.vendor.to_string(),
        devices: v.devices,
        hours_in_service: round2(v.hours_in_service),
        hours_without_contact: round2(v.hours_without_contact),
        availability: v.availability,
        faults: v.faults,
        alarms: v.response.triggered,
        never_acknowledged: v.response.never_acknowledged,
        share_within_60s: v.response.share_within_60s,
        share_within_180s: v.response.share_within_180s,
        response_median_ms: v.response.response.as_ref().map(|r| r.median_ms),
        response_p90_ms: v.response.response.as_ref().map(|r| r.p90_ms),
    })
    .collect();
    Ok(VendorServiceView {
        month,
        municipality: scope.map(|m| m.to_string()),
        rows,
    })
}

/// Hundredths of an hour: what a report shows, and what makes sums read back exactly.
fn round2(h: f64) -> f64 {
    (h * 100.0).round() / 100.0
}

/// The same rows as CSV, one line per vendor.
pub fn service_csv(view: &VendorServiceView) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "month",
        "vendor",
        "devices",
        "hours_in_service",
        "hours_without_contact",
        "availability",
        "faults",
        "alarms",
        "never_acknowledged",
        "share_within_60s",
        "share_within_180s",
        "response_median_ms",
        "response_p90_ms",
    ]);
    let opt = |v: Option<String>| v.unwrap_or_default();
    for r in &view.rows {
        let cells = [
            view.month.to_string(),
            r.vendor.clone(),
            r.devices.to_string(),
            r.hours_in_service.to_string(),
            r.hours_without_contact.to_string(),
            opt(r.availability.map(|a| format!("{a:.4}"))),
            r.faults.to_string(),
            r.alarms.to_string(),
            r.never_acknowledged.to_string(),
            opt(r.share_within_60s.map(|a| format!("{a:.4}"))),
            opt(r.share_within_180s.map(|a| format!("{a:.4}"))),
            opt(r.response_median_ms.map(|v| v.to_string())),
            opt(r.response_p90_ms.map(|v| v.to_string())),
        ];
        let _ = w.write_record(
            cells
                .iter()
                .map(|c| vft_domain::spreadsheet_safe(c).into_owned()),
        );
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}
