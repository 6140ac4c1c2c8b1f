//! The in-service rule and month-end counting, as pure functions. The stores compute the same
//! figures in SQL for speed; their shared test suite checks them against these functions.

use crate::event::{Event, EventType};
use crate::ids::{DeviceId, EventId, MunicipalityCode, VendorId};
use crate::kind::TechnologyKind;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// The part of a lifecycle event (`installed` / `decommissioned`) that decides service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleRecord {
    pub vendor: VendorId,
    pub device: DeviceId,
    pub event_id: EventId,
    pub ts: DateTime<Utc>,
    pub installed: bool,
    pub kind: Option<TechnologyKind>,
    pub municipality: MunicipalityCode,
}

impl LifecycleRecord {
    pub fn from_event(e: &Event) -> Option<Self> {
        e.event_type.lifecycle_rank()?;
        Some(Self {
            vendor: e.vendor.clone(),
            device: e.device.clone(),
            event_id: e.id.clone(),
            ts: e.ts_utc(),
            installed: e.event_type == EventType::Installed,
            kind: e.kind,
            municipality: e.municipality.clone(),
        })
    }

    /// Total order of a device's lifecycle events: time, then installed before decommissioned,
    /// then event id. See [`EventType::lifecycle_rank`].
    fn order_key(&self) -> (DateTime<Utc>, bool, &str) {
        (self.ts, !self.installed, self.event_id.as_str())
    }
}

/// Which devices count: all, or those of one municipality and/or one vendor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupFilter {
    pub municipality: Option<MunicipalityCode>,
    pub vendor: Option<VendorId>,
}

impl RollupFilter {
    fn admits(&self, r: &LifecycleRecord) -> bool {
        self.municipality
            .as_ref()
            .is_none_or(|m| *m == r.municipality)
            && self.vendor.as_ref().is_none_or(|v| *v == r.vendor)
    }
}

/// Devices in service just before `before` (exclusive): for each (vendor, device), its latest
/// lifecycle event with `ts < before`, kept only if that event is `installed`.
pub fn in_service_at(
    records: &[LifecycleRecord],
    before: DateTime<Utc>,
) -> BTreeMap<(&VendorId, &DeviceId), &LifecycleRecord> {
    let mut latest: BTreeMap<(&VendorId, &DeviceId), &LifecycleRecord> = BTreeMap::new();
    for r in records.iter().filter(|r| r.ts < before) {
        let slot = latest.entry((&r.vendor, &r.device)).or_insert(r);
        if r.order_key() > slot.order_key() {
            *slot = r;
        }
    }
    latest.retain(|_, r| r.installed);
    latest
}

/// Count per technology type (table order) of devices in service just before each instant.
pub fn month_end_counts(
    records: &[LifecycleRecord],
    instants: &[DateTime<Utc>],
    filter: &RollupFilter,
) -> Vec<[u64; 6]> {
    instants
        .iter()
        .map(|t| {
            let mut counts = [0u64; 6];
            for r in in_service_at(records, *t)
                .values()
                .filter(|r| filter.admits(r))
            {
                if let Some(k) = r.kind {
                    counts[k.index()] += 1;
                }
            }
            counts
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::month::{YearMonth, month_end_instants};
    use proptest::prelude::*;

    fn rec(
        device: &str,
        id: &str,
        ts: &str,
        installed: bool,
        municipality: &str,
    ) -> LifecycleRecord {
        LifecycleRecord {
            vendor: VendorId::parse("hepro").expect("vendor"),
            device: DeviceId::parse(device).expect("device"),
            event_id: EventId::parse(id).expect("id"),
            ts: DateTime::parse_from_rfc3339(ts)
                .expect("ts")
                .with_timezone(&Utc),
            installed,
            kind: installed.then_some(TechnologyKind::SafetyAlarm),
            municipality: MunicipalityCode::parse(municipality).expect("code"),
        }
    }

    fn months_2025() -> Vec<DateTime<Utc>> {
        month_end_instants(&YearMonth::months_of_year(2025).expect("year"))
    }

    #[test]
    fn an_install_at_half_past_midnight_oslo_on_1_july_counts_in_july_not_june() {
        let records = [rec("D1", "e1", "2025-06-30T22:30:00Z", true, "3328")];
        let counts = month_end_counts(&records, &months_2025(), &RollupFilter::default());
        let safety = |m: usize| counts[m][TechnologyKind::SafetyAlarm.index()];
        assert_eq!((safety(5), safety(6)), (0, 1));
    }

    #[test]
    fn decommission_ends_service_and_moves_follow_the_latest_install() {
        let records = [
            rec("D1", "a", "2025-01-10T10:00:00+01:00", true, "3320"),
            rec("D1", "b", "2025-03-10T10:00:00+01:00", true, "3328"),
            rec("D1", "c", "2025-05-10T10:00:00+02:00", false, "3328"),
        ];
        let only = |m: &str| RollupFilter {
            municipality: Some(MunicipalityCode::parse(m).expect("code")),
            vendor: None,
        };
        let k = TechnologyKind::SafetyAlarm.index();
        let flaa: Vec<u64> = month_end_counts(&records, &months_2025(), &only("3320"))
            .iter()
            .map(|c| c[k])
            .collect();
        let aal: Vec<u64> = month_end_counts(&records, &months_2025(), &only("3328"))
            .iter()
            .map(|c| c[k])
            .collect();
        assert_eq!(&flaa[..5], &[1, 1, 0, 0, 0]);
        assert_eq!(&aal[..5], &[0, 0, 1, 1, 0]);
    }

    #[test]
    fn same_instant_install_and_decommission_ends_out_of_service() {
        let records = [
            rec("D1", "z", "2025-02-01T12:00:00Z", true, "3328"),
            rec("D1", "a", "2025-02-01T12:00:00Z", false, "3328"),
        ];
        let counts = month_end_counts(&records, &months_2025(), &RollupFilter::default());
        assert_eq!(counts[1][TechnologyKind::SafetyAlarm.index()], 0);
    }

    fn arb_records() -> impl Strategy<Value = Vec<LifecycleRecord>> {
        // Few devices and a coarse clock so collisions (same device, same instant) are common.
        let one = (0u8..6, 0u32..400, any::<bool>(), 0usize..2, 0u8..6, 0u8..2).prop_map(
            |(device, hour, installed, municipality, kind, vendor)| LifecycleRecord {
                vendor: VendorId::parse(["hepro", "atea"][usize::from(vendor)]).expect("vendor"),
                device: DeviceId::parse(&format!("D{device}")).expect("device"),
                event_id: EventId::parse(&format!("e{device}-{hour}-{installed}")).expect("id"),
                // Hours around the June/July boundary in 2025, UTC.
                ts: DateTime::parse_from_rfc3339("2025-06-22T00:00:00Z")
                    .expect("ts")
                    .with_timezone(&Utc)
                    + chrono::Duration::hours(i64::from(hour) / 2),
                installed,
                kind: installed.then(|| TechnologyKind::ALL[usize::from(kind)]),
                municipality: MunicipalityCode::parse(["3320", "3328"][municipality])
                    .expect("code"),
            },
        );
        prop::collection::vec(one, 0..40)
    }

    proptest! {
        #[test]
        fn arrival_order_duplicates_and_replays_never_change_the_table(
            records in arb_records(),
            seed in any::<u64>(),
            dup_every in 1usize..5,
        ) {
            // Events with the same id are the same event (the store keeps the first copy),
            // so model that: one record per id.
            let mut unique: BTreeMap<(VendorId, EventId), LifecycleRecord> = BTreeMap::new();
            for r in records {
                unique.entry((r.vendor.clone(), r.event_id.clone())).or_insert(r);
            }
            let base: Vec<LifecycleRecord> = unique.into_values().collect();
            let instants = months_2025();
            let expected = month_end_counts(&base, &instants, &RollupFilter::default());

            // Shuffle deterministically, duplicate some, and replay the whole stream once more.
            let mut shuffled = base.clone();
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                shuffled.swap(i, (state as usize) % (i + 1));
            }
            let mut stream: Vec<LifecycleRecord> = Vec::new();
            for (i, r) in shuffled.iter().enumerate() {
                stream.push(r.clone());
                if i % dup_every == 0 { stream.push(r.clone()); }
            }
            stream.extend(base.iter().rev().cloned());
            prop_assert_eq!(month_end_counts(&stream, &instants, &RollupFilter::default()), expected.clone());

            // Filters partition the total: the municipalities add up to the region.
            for (m, month) in expected.iter().enumerate().skip(6).take(2) {
                let sum: u64 = ["3320", "3328"].iter().map(|code| {
                    let f = RollupFilter { municipality: Some(MunicipalityCode::parse(code).expect("code")), vendor: None };
                    month_end_counts(&stream, &instants, &f)[m].iter().sum::<u64>()
                }).sum();
                prop_assert_eq!(sum, month.iter().sum::<u64>());
            }
        }
    }
}
