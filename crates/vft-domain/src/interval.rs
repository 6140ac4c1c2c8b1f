//! Service intervals: the in-service rule of [`crate::rollup`] turned into state that ingest can
//! keep, so that a month end is read from a few rows per municipality instead of worked out
//! from every lifecycle event of the fleet's history.
//!
//! A device's lifecycle steps, in their total order (time, installed before decommissioned,
//! event id), give one interval per install: from the install to the device's next step. A
//! device is in service just before instant `c` exactly when one of its intervals has
//! `from < c <= to` (`to` absent: still in service), which is [`crate::rollup::in_service_at`]
//! restated. A recipient's service of one (municipality, vendor, kind) is the union of its
//! devices' intervals there ([`union`]).
//!
//! Counting: an interval adds one at the month holding `from` and takes one away at the month
//! holding `to` ([`Contribution`]), so the count at a month end is the sum of the month deltas
//! up to that month, and at any other instant that sum up to the month before plus the
//! interval ends within its own month before it ([`count_at`] states the rule the store's SQL
//! follows).

use crate::ids::{DeviceId, EventId, MunicipalityCode, RecipientRef, VendorId};
use crate::kind::TechnologyKind;
use crate::month::YearMonth;
use chrono::{DateTime, Utc};

/// One lifecycle event of a device, as far as service goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub ts: DateTime<Utc>,
    pub installed: bool,
    pub event_id: EventId,
    pub municipality: MunicipalityCode,
    pub kind: Option<TechnologyKind>,
    pub recipient: Option<RecipientRef>,
    /// The unit an install replaces.
    pub replaces: Option<DeviceId>,
}

/// A stretch in service of one device, with what its install said.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    pub vendor: VendorId,
    pub device: DeviceId,
    pub from: DateTime<Utc>,
    /// The device's next lifecycle step; `None` while in service.
    pub to: Option<DateTime<Utc>>,
    pub municipality: MunicipalityCode,
    pub kind: Option<TechnologyKind>,
    pub recipient: Option<RecipientRef>,
    /// The unit the install replaces (a vendor swap's predecessor).
    pub replaces: Option<DeviceId>,
}

impl Interval {
    /// In service just before `c`.
    pub fn covers(&self, c: DateTime<Utc>) -> bool {
        stretch_covers(self.stretch(), c)
    }

    /// The device as the in-service snapshot shows it at an instant the interval covers;
    /// `None` for an install without a kind, which counts nowhere.
    pub fn in_service(&self) -> Option<crate::attribution::InService> {
        self.clone().into_in_service()
    }

    /// [`Self::in_service`], taking the interval apart instead of copying its fields.
    pub fn into_in_service(self) -> Option<crate::attribution::InService> {
        Some(crate::attribution::InService {
            vendor: self.vendor,
            device: self.device,
            kind: self.kind?,
            municipality: self.municipality,
            recipient: self.recipient,
            replaces: self.replaces,
        })
    }

    /// When the interval runs: `(from, to)`.
    pub fn stretch(&self) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
        (self.from, self.to)
    }
}

/// Whether a stretch `(from, to]` (`to` absent: open) holds the instant just before `c`.
pub fn stretch_covers(
    (from, to): (DateTime<Utc>, Option<DateTime<Utc>>),
    c: DateTime<Utc>,
) -> bool {
    from < c && to.is_none_or(|to| to >= c)
}

/// A device's intervals from all of its lifecycle steps (any order, repeats of an event id
/// allowed). An install followed at the same instant by a later-ordered step covers nothing
/// and is left out.
pub fn intervals(vendor: &VendorId, device: &DeviceId, steps: &[Step]) -> Vec<Interval> {
    let mut ordered: Vec<&Step> = steps.iter().collect();
    ordered.sort_by(|a, b| {
        (a.ts, !a.installed, a.event_id.as_str()).cmp(&(b.ts, !b.installed, b.event_id.as_str()))
    });
    ordered.dedup_by(|a, b| a.event_id == b.event_id);
    ordered
        .iter()
        .enumerate()
        .filter(|(_, s)| s.installed)
        .map(|(i, s)| Interval {
            vendor: vendor.clone(),
            device: device.clone(),
            from: s.ts,
            to: ordered.get(i + 1).map(|next| next.ts),
            municipality: s.municipality.clone(),
            kind: s.kind,
            recipient: s.recipient.clone(),
            replaces: s.replaces.clone(),
        })
        .filter(|iv| iv.to != Some(iv.from))
        .collect()
}

/// The union of half-open stretches `(from, to]` (`to` absent: open), as disjoint stretches in
/// order. Stretches that meet (`from` of one equal to `to` of another) join: there is no
/// instant between them at which neither covers.
pub fn union(
    mut spans: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    spans.sort();
    let mut out: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::new();
    for (from, to) in spans {
        match out.last_mut() {
            Some((_, last_to)) if last_to.is_none_or(|t| from <= t) => {
                *last_to = match (*last_to, to) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            _ => out.push((from, to)),
        }
    }
    out
}

/// What one stretch adds to the month deltas: +1 at the month holding `from`, -1 at the month
/// holding `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contribution {
    pub starts: YearMonth,
    pub ends: Option<YearMonth>,
}

impl Contribution {
    pub fn of(from: DateTime<Utc>, to: Option<DateTime<Utc>>) -> Self {
        Self {
            starts: YearMonth::containing(from),
            ends: to.map(YearMonth::containing),
        }
    }

    /// (month, +1 / -1) pairs, scaled by `sign` (-1 to take a stretch back out).
    pub fn deltas(self, sign: i64) -> impl Iterator<Item = (YearMonth, i64)> {
        std::iter::once((self.starts, sign)).chain(self.ends.map(|m| (m, -sign)))
    }
}

/// How many of `spans` cover instant `c`, by the month-delta rule: the deltas of the months
/// before `c`'s month, then the starts and ends within `c`'s month before `c`. Equal to
/// counting the spans with `from < c <= to` (property test), which is what makes the stored
/// deltas a faithful count.
pub fn count_at(spans: &[(DateTime<Utc>, Option<DateTime<Utc>>)], c: DateTime<Utc>) -> i64 {
    let month = YearMonth::containing(c);
    let start = month.start();
    let mut n = 0;
    for &(from, to) in spans {
        for (m, d) in Contribution::of(from, to).deltas(1) {
            if m < month {
                n += d;
            }
        }
        if from >= start && from < c {
            n += 1;
        }
        if to.is_some_and(|t| t >= start && t < c) {
            n -= 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::{LifecycleRecord, in_service_at};
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("instant")
    }

    fn step(id: &str, ts: DateTime<Utc>, installed: bool, m: &str) -> Step {
        Step {
            ts,
            installed,
            event_id: EventId::parse(id).expect("id"),
            municipality: MunicipalityCode::parse(m).expect("code"),
            kind: installed.then_some(TechnologyKind::SafetyAlarm),
            recipient: None,
            replaces: None,
        }
    }

    #[test]
    fn a_move_is_two_intervals_and_a_removal_ends_one() {
        let (v, d) = (
            VendorId::parse("hepro").unwrap(),
            DeviceId::parse("D1").unwrap(),
        );
        let steps = [
            step("c", utc("2025-03-01T00:00:00Z"), false, "3328"),
            step("a", utc("2025-01-01T00:00:00Z"), true, "3320"),
            step("b", utc("2025-02-01T00:00:00Z"), true, "3328"),
            step("a", utc("2025-01-01T00:00:00Z"), true, "3320"),
        ];
        let got = intervals(&v, &d, &steps);
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].municipality.as_str(), got[0].to),
            ("3320", Some(utc("2025-02-01T00:00:00Z")))
        );
        assert_eq!(
            (got[1].municipality.as_str(), got[1].to),
            ("3328", Some(utc("2025-03-01T00:00:00Z")))
        );
    }

    #[test]
    fn of_two_installs_at_one_instant_the_later_ordered_one_says_what_is_replaced() {
        let (v, d) = (
            VendorId::parse("atea").unwrap(),
            DeviceId::parse("NEW").unwrap(),
        );
        let at = utc("2025-04-01T10:00:00Z");
        let replacing = |id: &str, old: &str| Step {
            replaces: Some(DeviceId::parse(old).unwrap()),
            ..step(id, at, true, "3328")
        };
        let steps = [replacing("b", "OLD-B"), replacing("a", "OLD-A")];
        let got = intervals(&v, &d, &steps);
        assert_eq!(got.len(), 1, "{got:?}");
        let shown = got[0].in_service().expect("installed with a kind");
        assert_eq!(shown.replaces.map(|r| r.to_string()), Some("OLD-B".into()));
    }

    #[test]
    fn meeting_stretches_join() {
        let t = |h: i64| utc("2025-01-01T00:00:00Z") + chrono::Duration::hours(h);
        assert_eq!(
            union(vec![
                (t(5), Some(t(9))),
                (t(0), Some(t(5))),
                (t(20), None),
                (t(22), Some(t(30)))
            ]),
            [(t(0), Some(t(9))), (t(20), None)]
        );
    }

    proptest! {
        /// Intervals and month deltas count exactly what the in-service rule counts, at month
        /// ends and at any instant, whatever the steps (ties at one instant included).
        #[test]
        fn intervals_and_deltas_agree_with_the_in_service_rule(
            raw in proptest::collection::vec((0u8..3, 0i64..120, any::<bool>(), 0u8..2), 0..25),
            cuts in proptest::collection::vec(0i64..130 * 24, 1..6),
        ) {
            let base = utc("2025-01-20T00:00:00Z");
            let vendor = VendorId::parse("hepro").unwrap();
            let records: Vec<LifecycleRecord> = raw
                .iter()
                .enumerate()
                .map(|(i, (d, day, installed, m))| LifecycleRecord {
                    vendor: vendor.clone(),
                    device: DeviceId::parse(&format!("D{d}")).unwrap(),
                    event_id: EventId::parse(&format!("e{i}")).unwrap(),
                    // Days at Oslo midnight (23:00 UTC in winter) and at noon, so ties and
                    // month boundaries both happen.
                    ts: base + chrono::Duration::hours(day * 12 - 1),
                    installed: *installed,
                    kind: installed.then_some(TechnologyKind::SafetyAlarm),
                    municipality: MunicipalityCode::parse(if *m == 0 { "3320" } else { "3328" }).unwrap(),
                })
                .collect();
            let mut all: Vec<Interval> = Vec::new();
            for d in 0..3 {
                let device = DeviceId::parse(&format!("D{d}")).unwrap();
                let steps: Vec<Step> = records
                    .iter()
                    .filter(|r| r.device == device)
                    .map(|r| Step {
                        ts: r.ts,
                        installed: r.installed,
                        event_id: r.event_id.clone(),
                        municipality: r.municipality.clone(),
                        kind: r.kind,
                        recipient: None,
                        replaces: None,
                    })
                    .collect();
                all.extend(intervals(&vendor, &device, &steps));
            }
            let month_ends = YearMonth::months_of_year(2025).unwrap().into_iter().map(|m| m.end_exclusive());
            for c in cuts.iter().map(|h| base + chrono::Duration::hours(*h)).chain(month_ends) {
                let expected = in_service_at(&records, c).len() as i64;
                prop_assert_eq!(all.iter().filter(|iv| iv.covers(c)).count() as i64, expected);
                let spans: Vec<_> = all.iter().map(|iv| (iv.from, iv.to)).collect();
                prop_assert_eq!(count_at(&spans, c), expected, "at {}", c);
                let joined = union(spans.clone());
                let covered = spans.iter().any(|&(f, t)| f < c && t.is_none_or(|t| t >= c));
                prop_assert_eq!(count_at(&joined, c), i64::from(covered));
            }
        }
    }
}
