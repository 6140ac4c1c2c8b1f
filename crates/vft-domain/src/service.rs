//! The vendors' service level: per vendor and month, how many hours its devices in service
//! were without contact (availability), its faults, and how the response centre answered its
//! alarms. What a contract with a vendor is followed up on.
//!
//! **Without contact** at instant t: the device is in service and more than its timeout has
//! passed since its reference, which is its latest contact at or before t or, if it has sent
//! none since, its install (a new unit gets its timeout to report). Any event but a lifecycle
//! event is a contact (heartbeat, battery, fault, alarm, dose). Hours are counted within the
//! month (Europe/Oslo) and within each in-service interval: a device silent across a month
//! boundary counts in each month only the silent hours that fall in it, and a device removed
//! mid-month counts only until its removal.

use crate::ids::{DeviceId, VendorId};
use crate::month::YearMonth;
use crate::response::{AlarmRecord, MonthResponse, ResponseStandard, response_figures};
use crate::rollup::LifecycleRecord;
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// One device's history as the figure needs it.
#[derive(Debug, Clone)]
pub struct DeviceHistory<'a> {
    pub vendor: &'a VendorId,
    pub device: &'a DeviceId,
    /// Its lifecycle events, in any order.
    pub lifecycle: Vec<&'a LifecycleRecord>,
    /// Its contacts (any order); those before the month only matter within one timeout of it.
    pub contacts: Vec<DateTime<Utc>>,
    pub timeout: Duration,
}

/// One vendor's service in one month.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorMonth {
    pub vendor: VendorId,
    pub month: YearMonth,
    /// Devices in service at some instant of the month.
    pub devices: u64,
    /// Device-hours in service within the month.
    pub hours_in_service: f64,
    /// Device-hours in service without contact within the month.
    pub hours_without_contact: f64,
    /// 1 − without / in service; `None` with no device in service.
    pub availability: Option<f64>,
    /// `fault` events of its devices in the month.
    pub faults: u64,
    /// The response centre's figures for alarms of its devices triggered in the month.
    pub response: MonthResponse,
}

/// In-service intervals `[from, to)` of a device (to = `None`: still in service).
fn in_service_intervals(
    lifecycle: &[&LifecycleRecord],
) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let mut events = lifecycle.to_vec();
    // The total order that decides being in service (see `LifecycleRecord`).
    events.sort_by(|a, b| {
        (a.ts, !a.installed, a.event_id.as_str()).cmp(&(b.ts, !b.installed, b.event_id.as_str()))
    });
    let mut intervals = Vec::new();
    let mut open: Option<DateTime<Utc>> = None;
    for e in events {
        match (e.installed, open) {
            (true, None) => open = Some(e.ts),
            (false, Some(from)) => {
                intervals.push((from, Some(e.ts)));
                open = None;
            }
            // A second install while in service (a move, a kind change) keeps the interval.
            _ => {}
        }
    }
    if let Some(from) = open {
        intervals.push((from, None));
    }
    intervals
}

fn hours(d: Duration) -> f64 {
    d.num_microseconds().unwrap_or(i64::MAX) as f64 / 3.6e9
}

/// Device-hours in service and without contact, within `[start, end)`.
pub fn device_hours(
    history: &DeviceHistory<'_>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> (f64, f64) {
    let mut contacts = history.contacts.clone();
    contacts.sort_unstable();
    let (mut in_service, mut silent) = (Duration::zero(), Duration::zero());
    for (from, to) in in_service_intervals(&history.lifecycle) {
        let to = to.unwrap_or(end);
        let (a, b) = (from.max(start), to.min(end));
        if a >= b {
            continue;
        }
        in_service += b - a;
        // References within the interval: its install, then each contact in it.
        let mut refs = vec![from];
        refs.extend(contacts.iter().copied().filter(|c| from <= *c && *c < to));
        for (k, r) in refs.iter().enumerate() {
            let next = refs.get(k + 1).copied().unwrap_or(to);
            let (s, e) = ((*r + history.timeout).max(a), next.min(b));
            if s < e {
                silent += e - s;
            }
        }
    }
    (hours(in_service), hours(silent))
}

/// Per vendor (ordered by id), the month's service level. `faults` are the instants of
/// `fault` events per vendor; `alarms` the month's alarm records (any vendor).
pub fn vendor_service(
    month: YearMonth,
    histories: &[DeviceHistory<'_>],
    faults: &BTreeMap<VendorId, u64>,
    alarms: &[AlarmRecord],
    standard: &ResponseStandard,
) -> Vec<VendorMonth> {
    let (start, end) = (month.start(), month.end_exclusive());
    let mut per_vendor: BTreeMap<VendorId, (u64, f64, f64)> = BTreeMap::new();
    for h in histories {
        let (in_service, silent) = device_hours(h, start, end);
        if in_service > 0.0 {
            let v = per_vendor.entry(h.vendor.clone()).or_default();
            v.0 += 1;
            v.1 += in_service;
            v.2 += silent;
        }
    }
    for vendor in faults.keys().chain(alarms.iter().map(|a| &a.vendor)) {
        per_vendor.entry(vendor.clone()).or_default();
    }
    per_vendor
        .into_iter()
        .map(
            |(vendor, (devices, hours_in_service, hours_without_contact))| {
                let own: Vec<AlarmRecord> = alarms
                    .iter()
                    .filter(|a| a.vendor == vendor)
                    .cloned()
                    .collect();
                // One month asked, one month answered (an empty one without alarms).
                let mut figures = response_figures(&own, &[month], standard);
                let response = figures.swap_remove(0);
                VendorMonth {
                    faults: faults.get(&vendor).copied().unwrap_or(0),
                    availability: (hours_in_service > 0.0)
                        .then(|| 1.0 - hours_without_contact / hours_in_service),
                    vendor,
                    month,
                    devices,
                    hours_in_service,
                    hours_without_contact,
                    response,
                }
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EventId, MunicipalityCode};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("ts")
            .with_timezone(&Utc)
    }

    fn life(id: &str, ts: &str, installed: bool) -> LifecycleRecord {
        LifecycleRecord {
            vendor: VendorId::parse("hepro").expect("vendor"),
            device: DeviceId::parse("D").expect("device"),
            event_id: EventId::parse(id).expect("id"),
            ts: t(ts),
            installed,
            kind: None,
            municipality: MunicipalityCode::parse("3328").expect("code"),
        }
    }

    #[test]
    fn silent_hours_are_counted_by_hand() {
        let vendor = VendorId::parse("hepro").expect("vendor");
        let device = DeviceId::parse("D").expect("device");
        let june = YearMonth::new(2025, 6).expect("month");
        // June 2025 in Oslo: 2025-05-31T22:00Z .. 2025-06-30T22:00Z, 720 hours.
        let (start, end) = (june.start(), june.end_exclusive());
        assert_eq!(hours(end - start), 720.0);
        let day = Duration::hours(24);

        // In service all month, timeout 24 h, contacts ten days apart: the one before the month
        // (05-30T22:00Z) leaves it silent from the month's first instant (05-31T22:00Z) to
        // 06-10T22:00Z: 240 h; then 06-11T22 to 06-20T22: 216 h; 06-21T22 to 06-28T22: 168 h;
        // 06-29T22 to the month's end: 24 h.
        let install = life("i", "2025-01-01T00:00:00Z", true);
        let all_month = DeviceHistory {
            vendor: &vendor,
            device: &device,
            lifecycle: vec![&install],
            contacts: vec![
                t("2025-05-30T22:00:00Z"),
                t("2025-06-10T22:00:00Z"),
                t("2025-06-20T22:00:00Z"),
                t("2025-06-28T22:00:00Z"),
            ],
            timeout: day,
        };
        assert_eq!(
            device_hours(&all_month, start, end),
            (720.0, 240.0 + 216.0 + 168.0 + 24.0)
        );
        // Silent across the May → June boundary: last May contact 05-20T22, then 06-05T22. May
        // counts 05-21T22 to its end (05-31T22): 240 h; June the rest, 05-31T22 to 06-05T22
        // (120 h), and after the second contact's day, 06-06T22 to the end (576 h).
        let across = DeviceHistory {
            // Daily through May up to 05-20T22, then one on 06-05T22.
            contacts: (0..=20)
                .map(|d| t("2025-04-30T22:00:00Z") + Duration::days(d))
                .chain([t("2025-06-05T22:00:00Z")])
                .collect(),
            ..all_month.clone()
        };
        let may = YearMonth::new(2025, 5).expect("month");
        let (_, silent_may) = device_hours(&across, may.start(), may.end_exclusive());
        assert_eq!(silent_may, 240.0);
        assert_eq!(device_hours(&across, start, end), (720.0, 120.0 + 576.0));

        // Removed mid-month (2025-06-15T22:00Z) after its last contact on 2025-06-12T22:00Z:
        // in service 360 h; silent from 06-01T22 to 06-12T22 (264 h) and from 06-13T22 to the
        // removal (48 h); nothing after it.
        let removal = life("r", "2025-06-15T22:00:00Z", false);
        let removed = DeviceHistory {
            lifecycle: vec![&install, &removal],
            contacts: vec![t("2025-05-31T22:00:00Z"), t("2025-06-12T22:00:00Z")],
            ..all_month.clone()
        };
        let (in_service, silent) = device_hours(&removed, start, end);
        assert_eq!(in_service, 360.0);
        assert_eq!(silent, 264.0 + 48.0);

        // Installed mid-month and never heard from: its timeout runs from the install.
        let late = life("l", "2025-06-25T22:00:00Z", true);
        let never = DeviceHistory {
            lifecycle: vec![&late],
            contacts: vec![],
            ..all_month.clone()
        };
        assert_eq!(device_hours(&never, start, end), (120.0, 96.0));
    }

    #[test]
    fn vendors_get_their_own_hours_faults_and_alarms() {
        let hepro = VendorId::parse("hepro").expect("vendor");
        let atea = VendorId::parse("atea").expect("vendor");
        let device = DeviceId::parse("D").expect("device");
        let june = YearMonth::new(2025, 6).expect("month");
        let install = life("i", "2025-01-01T00:00:00Z", true);
        let h = DeviceHistory {
            vendor: &hepro,
            device: &device,
            lifecycle: vec![&install],
            // Daily, from an hour before the month.
            contacts: (0..31)
                .map(|d| june.start() + Duration::days(d) - Duration::hours(1))
                .collect(),
            timeout: Duration::hours(36),
        };
        let faults = BTreeMap::from([(atea.clone(), 2)]);
        let rows = vendor_service(june, &[h], &faults, &[], &ResponseStandard::default());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].vendor, atea);
        assert_eq!(
            (rows[0].devices, rows[0].faults, rows[0].availability),
            (0, 2, None)
        );
        assert_eq!(rows[1].vendor, hepro);
        assert_eq!(rows[1].devices, 1);
        assert_eq!(
            rows[1].availability,
            Some(1.0),
            "daily contact, 36 h timeout"
        );
        assert_eq!(rows[1].response.triggered, 0);
    }
}
