//! Contact history: on which Oslo days each device was heard from, one row per device and month.
//!
//! Raw status events are purged after `retention.status_event_days`, but the reconciliation of
//! a past date asks whether a unit reported in the days before it. Ingest therefore keeps this
//! history beside the events, in the same transaction, and the reconciliation reads only the
//! history: reconciling a date gives the same answer before and after the raw events are gone.
//!
//! A month's row is a bit per day plus the month's latest contact, so it is exact to the
//! microsecond whenever the whole month lies before the date asked about, and exact to the day
//! otherwise (the reconciliation asks about whole Oslo days). Rows merge by OR and max, so
//! arrival order, duplicates and replays never change the history.

use crate::event::{Event, EventType};
use crate::ids::{DeviceId, VendorId};
use crate::month::{YearMonth, oslo_date, oslo_end_of_day, oslo_midnight};
use crate::reconcile::Reporting;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use std::collections::BTreeMap;

/// Whether an event of this type is a contact: every type that is not a lifecycle step (what
/// the device, its gateway or the response centre sent while it worked).
pub fn is_contact(t: EventType) -> bool {
    t.lifecycle_rank().is_none()
}

/// The days of one Oslo month on which one device was heard from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactMonth {
    pub vendor: VendorId,
    pub device: DeviceId,
    pub month: YearMonth,
    /// Bit `d - 1` is set when the device was heard from on day `d` of the month (Oslo).
    pub days: u32,
    /// The month's latest contact.
    pub last: DateTime<Utc>,
}

/// The bit of a date in its month's `days`.
pub fn day_bit(date: NaiveDate) -> u32 {
    1 << (date.day() - 1)
}

/// The stored form of a month: `year * 100 + month`, which orders like the months.
pub fn month_key(m: YearMonth) -> i64 {
    i64::from(m.year()) * 100 + i64::from(m.month())
}

pub fn month_from_key(key: i64) -> Option<YearMonth> {
    let year = i32::try_from(key.div_euclid(100)).ok()?;
    let month = u32::try_from(key.rem_euclid(100)).ok()?;
    YearMonth::new(year, month).ok()
}

impl ContactMonth {
    /// The month row one event contributes, if it is a contact.
    pub fn of(e: &Event) -> Option<Self> {
        if !is_contact(e.event_type) {
            return None;
        }
        Self::at(e.vendor.clone(), e.device.clone(), e.ts_utc())
    }

    /// The month row of one contact at `ts` (`None` outside the months vft knows).
    pub fn at(vendor: VendorId, device: DeviceId, ts: DateTime<Utc>) -> Option<Self> {
        let date = oslo_date(ts);
        Some(Self {
            vendor,
            device,
            month: YearMonth::new(date.year(), date.month()).ok()?,
            days: day_bit(date),
            last: ts,
        })
    }

    /// Adds another row of the same device and month. Commutative, associative, idempotent.
    pub fn merge(&mut self, other: &Self) {
        self.days |= other.days;
        self.last = self.last.max(other.last);
    }

    /// The latest contact at or before `at`: the month's latest when that is not after `at`,
    /// otherwise the end of the latest day with a contact that began by `at` (capped at `at`).
    pub fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.last <= at {
            return Some(self.last);
        }
        (1..=31u32)
            .rev()
            .filter(|d| self.days & (1 << (d - 1)) != 0)
            .filter_map(|d| NaiveDate::from_ymd_opt(self.month.year(), self.month.month(), d))
            .find(|&date| oslo_midnight(date) <= at)
            .and_then(oslo_end_of_day)
            .map(|end| end.min(at))
    }
}

/// The month rows a batch of events contributes, one per (vendor, device, month), in that order.
pub fn fold(events: &[Event]) -> Vec<ContactMonth> {
    let mut rows: BTreeMap<(&VendorId, &DeviceId, YearMonth), ContactMonth> = BTreeMap::new();
    for e in events {
        if let Some(row) = ContactMonth::of(e) {
            rows.entry((&e.vendor, &e.device, row.month))
                .and_modify(|kept| kept.merge(&row))
                .or_insert(row);
        }
    }
    rows.into_values().collect()
}

/// The months a window `(since, at]` touches, as stored keys (first, last).
pub fn window_months(since: DateTime<Utc>, at: DateTime<Utc>) -> (i64, i64) {
    (
        month_key(YearMonth::containing(since)),
        month_key(YearMonth::containing(at)),
    )
}

/// Each device's latest contact in `(since, at]`, from its month rows (any order, repeats
/// allowed); devices without one are left out. Sorted by vendor and device.
pub fn reporting(
    rows: impl IntoIterator<Item = ContactMonth>,
    at: DateTime<Utc>,
    since: DateTime<Utc>,
) -> Vec<Reporting> {
    let mut latest: BTreeMap<(VendorId, DeviceId), DateTime<Utc>> = BTreeMap::new();
    for row in rows {
        let Some(t) = row.latest_at_or_before(at).filter(|&t| t > since) else {
            continue;
        };
        latest
            .entry((row.vendor, row.device))
            .and_modify(|kept| *kept = (*kept).max(t))
            .or_insert(t);
    }
    latest
        .into_iter()
        .map(|((vendor, device), t)| Reporting {
            vendor,
            device,
            last_contact: Some(t),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TechnologyKind;
    use crate::ids::{EventId, GatewayId, MunicipalityCode};
    use proptest::prelude::*;

    fn event(id: &str, device: &str, ts: &str, kind: &str) -> Event {
        let event_type = EventType::from_id(kind).expect("type");
        Event {
            vendor: VendorId::parse("hepro").expect("vendor"),
            gateway: GatewayId::parse("gw-1").expect("gateway"),
            id: EventId::parse(id).expect("id"),
            ts: DateTime::parse_from_rfc3339(ts).expect("ts"),
            municipality: MunicipalityCode::parse("3328").expect("code"),
            device: DeviceId::parse(device).expect("device"),
            event_type,
            kind: (event_type == EventType::Installed).then_some(TechnologyKind::SafetyAlarm),
            battery: None,
            alarm: None,
            cause: None,
            outcome: None,
            recipient: None,
            replaces: None,
            reason: None,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("instant")
    }

    #[test]
    fn lifecycle_steps_are_not_contacts() {
        assert!(fold(&[event("a", "d1", "2025-03-01T10:00:00Z", "installed")]).is_empty());
        assert_eq!(
            fold(&[event("b", "d1", "2025-03-01T10:00:00Z", "heartbeat")]).len(),
            1
        );
    }

    #[test]
    fn days_are_oslo_days() {
        // 23:30 UTC on 31 March is 01:30 on 1 April in Oslo (summer time).
        let rows = fold(&[event("a", "d1", "2025-03-31T23:30:00Z", "heartbeat")]);
        assert_eq!(rows[0].month.to_string(), "2025-04");
        assert_eq!(rows[0].days, 1);
    }

    #[test]
    fn latest_is_exact_for_past_months_and_to_the_day_otherwise() {
        let rows = fold(&[
            event("a", "d1", "2025-03-03T09:00:00Z", "heartbeat"),
            event("b", "d1", "2025-03-10T09:00:00Z", "heartbeat"),
            event("c", "d1", "2025-03-20T09:00:00Z", "heartbeat"),
        ]);
        let row = &rows[0];
        let end_of_month = utc("2025-03-31T21:59:59Z");
        assert_eq!(
            row.latest_at_or_before(end_of_month),
            Some(utc("2025-03-20T09:00:00Z"))
        );
        // The end of 10 March (Oslo): that day's contact, to the day.
        let end_of_10th = oslo_end_of_day(NaiveDate::from_ymd_opt(2025, 3, 10).unwrap()).unwrap();
        assert_eq!(row.latest_at_or_before(end_of_10th), Some(end_of_10th));
        assert_eq!(row.latest_at_or_before(utc("2025-03-02T12:00:00Z")), None);
        let seen = reporting(
            rows.clone(),
            end_of_10th,
            end_of_10th - chrono::Duration::days(5),
        );
        assert_eq!(seen.len(), 1);
        let silent = reporting(
            rows,
            end_of_10th - chrono::Duration::days(1),
            utc("2025-03-04T00:00:00Z"),
        );
        assert!(silent.is_empty());
    }

    #[test]
    fn month_keys_round_trip() {
        let m = YearMonth::new(2025, 12).unwrap();
        assert_eq!(month_key(m), 202512);
        assert_eq!(month_from_key(202512), Some(m));
        assert_eq!(month_from_key(202513), None);
    }

    proptest! {
        /// Any arrival order, in any batches, with repeats, gives the same history.
        #[test]
        fn order_and_repeats_never_matter(
            times in proptest::collection::vec((0u8..3, 0i64..90 * 24), 1..40),
            seed in any::<u64>(),
            cut in 0usize..40,
        ) {
            let base = utc("2025-02-15T00:00:00Z");
            let events: Vec<Event> = times
                .iter()
                .enumerate()
                .map(|(i, (d, h))| {
                    let ts = (base + chrono::Duration::hours(*h)).to_rfc3339();
                    event(&format!("e{i}"), &format!("d{d}"), &ts, "heartbeat")
                })
                .collect();
            let whole = fold(&events);
            let mut shuffled = events.clone();
            shuffled.extend(events.iter().take(cut).cloned());
            // A deterministic shuffle from the seed.
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let split = cut.min(shuffled.len());
            let mut merged: BTreeMap<(VendorId, DeviceId, YearMonth), ContactMonth> = BTreeMap::new();
            for part in [&shuffled[..split], &shuffled[split..]] {
                for row in fold(part) {
                    merged
                        .entry((row.vendor.clone(), row.device.clone(), row.month))
                        .and_modify(|kept| kept.merge(&row))
                        .or_insert(row);
                }
            }
            prop_assert_eq!(whole, merged.into_values().collect::<Vec<_>>());
        }
    }
}
