//! Response-centre figures per month: how many alarms came in, how fast the centre answered
//! them and how they ended, measured against the standard in DESIGN.md.
//!
//! These are the product's definitions; the stores and the API report exactly these numbers.
//!
//! - **Month of an alarm**: the Europe/Oslo month of its `triggered` time; if that is missing
//!   (the `alarm` event was lost), the earliest of its other known times. An alarm with no
//!   known time at all belongs to no month. An alarm triggered on 31 January and acknowledged
//!   on 1 February belongs to January, and so does everything counted about it.
//! - **Response time** = `acknowledged − triggered`, only when both are known. A negative
//!   difference (clock skew between device and response centre) counts as 0 ms.
//! - **Counts** (`triggered`, `received`, `acknowledged`, `closed`): alarms of the month that
//!   have that time, wherever in time it falls. `never_acknowledged`: alarms of the month with a
//!   triggered time and no acknowledgement.
//! - **Shares within 60 s / 180 s**: numerator = alarms of the month with a response time of at
//!   most 60 000 / 180 000 ms; denominator = alarms of the month with a triggered time.
//!   `None` when that denominator is 0.
//! - **Percentiles**: nearest-rank over the response times of the month (median = p50).
//! - **Meets**: share ≥ the standard.
//!
//! Input is one record per alarm (vendor, alarm reference); the caller folds the four
//! response-centre events of an alarm into its record.

use crate::event::{Cause, Outcome};
use crate::ids::{AlarmRef, DeviceId, MunicipalityCode, VendorId};
use crate::kind::TechnologyKind;
use crate::month::YearMonth;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One alarm as the response centre saw it: the times of its `alarm`, `alarm_received`,
/// `alarm_acknowledged` and `alarm_closed` events, any of which may be missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmRecord {
    pub vendor: VendorId,
    pub alarm: AlarmRef,
    pub device: DeviceId,
    pub municipality: MunicipalityCode,
    pub kind: Option<TechnologyKind>,
    pub cause: Option<Cause>,
    pub triggered: Option<DateTime<Utc>>,
    pub received: Option<DateTime<Utc>>,
    pub acknowledged: Option<DateTime<Utc>>,
    pub closed: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
}

impl AlarmRecord {
    /// The instant that places the alarm in a month: `triggered`, else the earliest known time.
    pub fn anchor(&self) -> Option<DateTime<Utc>> {
        self.triggered.or_else(|| {
            [self.received, self.acknowledged, self.closed]
                .into_iter()
                .flatten()
                .min()
        })
    }

    /// The Europe/Oslo month the alarm belongs to (see the module documentation).
    pub fn month(&self) -> Option<YearMonth> {
        self.anchor().map(YearMonth::containing)
    }

    /// `acknowledged − triggered` in whole milliseconds, 0 when negative (clock skew);
    /// `None` unless both are known.
    pub fn response_ms(&self) -> Option<u64> {
        let elapsed = self.acknowledged? - self.triggered?;
        Some(u64::try_from(elapsed.num_milliseconds()).unwrap_or(0))
    }
}

/// What one alarm contributes to its month's figures: all a [`ResponseTally`] needs of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmFact {
    pub month: Option<YearMonth>,
    pub triggered: bool,
    pub received: bool,
    pub acknowledged: bool,
    pub closed: bool,
    pub response_ms: Option<u64>,
    pub outcome: Option<Outcome>,
}

impl AlarmRecord {
    pub fn fact(&self) -> AlarmFact {
        AlarmFact {
            month: self.month(),
            triggered: self.triggered.is_some(),
            received: self.received.is_some(),
            acknowledged: self.acknowledged.is_some(),
            closed: self.closed.is_some(),
            response_ms: self.response_ms(),
            outcome: self.outcome,
        }
    }
}

/// The share of alarms that must be answered within 60 s and within 180 s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResponseStandard {
    pub within_60s: f64,
    pub within_180s: f64,
}

impl Default for ResponseStandard {
    /// 97.5 % within 60 s and 99 % within 180 s (DESIGN.md, Contract 1).
    fn default() -> Self {
        Self {
            within_60s: 0.975,
            within_180s: 0.99,
        }
    }
}

/// Response-time distribution of a month's answered alarms, nearest-rank percentiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseTimes {
    pub median_ms: u64,
    pub p90_ms: u64,
    pub max_ms: u64,
}

impl ResponseTimes {
    /// `None` for no samples: there is no distribution to describe.
    pub fn from_samples(mut samples: Vec<u64>) -> Option<Self> {
        samples.sort_unstable();
        Some(Self {
            median_ms: nearest_rank(&samples, 50)?,
            p90_ms: nearest_rank(&samples, 90)?,
            max_ms: *samples.last()?,
        })
    }
}

impl ResponseTimes {
    /// The same from ascending (value, how many times) pairs with no zero counts: nearest
    /// rank is the smallest value whose running count reaches the rank.
    pub fn from_counts(counts: &[(u64, u64)]) -> Option<Self> {
        Some(Self {
            median_ms: value_at_rank(counts, 50)?,
            p90_ms: value_at_rank(counts, 90)?,
            max_ms: counts.last()?.0,
        })
    }
}

/// Nearest rank over ascending (value, how many times) pairs: the smallest value whose
/// running count reaches rank ⌈p/100 · n⌉.
fn value_at_rank(counts: &[(u64, u64)], percent: u64) -> Option<u64> {
    let n: u64 = counts.iter().map(|(_, c)| c).sum();
    let rank = (percent * n).div_ceil(100).max(1);
    let mut seen = 0;
    counts.iter().find_map(|(v, c)| {
        seen += c;
        (seen >= rank).then_some(*v)
    })
}

/// Nearest-rank percentile of ascending `sorted`: the value at rank ⌈p/100 · n⌉ (1-based).
/// Always a value that occurred, never an interpolation, so it can be looked up in the data.
fn nearest_rank(sorted: &[u64], percent: usize) -> Option<u64> {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// One month of response-centre figures. See the module documentation for the definitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthResponse {
    pub month: YearMonth,
    pub triggered: u64,
    pub received: u64,
    pub acknowledged: u64,
    pub closed: u64,
    pub never_acknowledged: u64,
    pub response: Option<ResponseTimes>,
    pub share_within_60s: Option<f64>,
    pub share_within_180s: Option<f64>,
    pub meets_60s: Option<bool>,
    pub meets_180s: Option<bool>,
    /// Closed alarms per outcome id. Every outcome id is present (0 when none), so the shape of
    /// the figures does not depend on what happened that month.
    pub outcomes: BTreeMap<String, u64>,
}

const WITHIN_60S_MS: u64 = 60_000;
const WITHIN_180S_MS: u64 = 180_000;

/// Figures for each of `months`, in the order given. Alarms of other months are ignored.
pub fn response_figures(
    alarms: &[AlarmRecord],
    months: &[YearMonth],
    standard: &ResponseStandard,
) -> Vec<MonthResponse> {
    let wanted: BTreeSet<YearMonth> = months.iter().copied().collect();
    let mut by_month: BTreeMap<YearMonth, Vec<&AlarmRecord>> = BTreeMap::new();
    for a in alarms {
        if let Some(m) = a.month().filter(|m| wanted.contains(m)) {
            by_month.entry(m).or_default().push(a);
        }
    }
    months
        .iter()
        .map(|&m| month_figures(m, by_month.get(&m).map_or(&[][..], Vec::as_slice), standard))
        .collect()
}

fn month_figures(
    month: YearMonth,
    alarms: &[&AlarmRecord],
    standard: &ResponseStandard,
) -> MonthResponse {
    let mut tally = ResponseTally::default();
    for a in alarms {
        tally.add(a, 1);
    }
    tally.figures(month, standard)
}

/// What a month's figures are made of, summed over its alarms: counts, how many alarms had each
/// response time (to the millisecond, so percentiles stay exact) and each outcome. Tallies add
/// and subtract alarm by alarm, which is how the store keeps them current (`add` with -1 takes
/// an alarm's earlier contribution back), and [`ResponseTally::figures`] turns one into the
/// month's figures by the rules above.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseTally {
    pub triggered: i64,
    pub received: i64,
    pub acknowledged: i64,
    pub closed: i64,
    pub never_acknowledged: i64,
    /// Response time in ms → alarms.
    pub times: BTreeMap<u64, i64>,
    pub outcomes: BTreeMap<Outcome, i64>,
}

impl ResponseTally {
    /// Adds (`sign` 1) or takes back (`sign` -1) one alarm's contribution.
    pub fn add(&mut self, a: &AlarmRecord, sign: i64) {
        self.add_fact(&a.fact(), sign);
    }

    /// The same from what the alarm contributes ([`AlarmRecord::fact`]).
    pub fn add_fact(&mut self, f: &AlarmFact, sign: i64) {
        let flag = |b: bool| if b { sign } else { 0 };
        self.triggered += flag(f.triggered);
        self.received += flag(f.received);
        self.acknowledged += flag(f.acknowledged);
        self.closed += flag(f.closed);
        self.never_acknowledged += flag(f.triggered && !f.acknowledged);
        if let Some(ms) = f.response_ms {
            *self.times.entry(ms).or_default() += sign;
        }
        if let Some(o) = f.outcome {
            *self.outcomes.entry(o).or_default() += sign;
        }
    }

    /// Adds another tally (of other alarms of the same month).
    pub fn merge(&mut self, o: &ResponseTally) {
        self.triggered += o.triggered;
        self.received += o.received;
        self.acknowledged += o.acknowledged;
        self.closed += o.closed;
        self.never_acknowledged += o.never_acknowledged;
        for (ms, n) in &o.times {
            *self.times.entry(*ms).or_default() += n;
        }
        for (outcome, n) in &o.outcomes {
            *self.outcomes.entry(*outcome).or_default() += n;
        }
    }

    /// The month's figures (see the module documentation).
    pub fn figures(&self, month: YearMonth, standard: &ResponseStandard) -> MonthResponse {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let times: Vec<(u64, u64)> = self
            .times
            .iter()
            .map(|(ms, n)| (*ms, count(*n)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let triggered = count(self.triggered);
        let within = |limit: u64| -> u64 {
            times
                .iter()
                .filter(|(ms, _)| *ms <= limit)
                .map(|(_, n)| n)
                .sum()
        };
        // Strict: the denominator is every triggered alarm, so one that was never answered counts
        // as a miss. Leaving it out would reward the centre for the calls it did not pick up.
        let share = |limit: u64| (triggered > 0).then(|| within(limit) as f64 / triggered as f64);
        let share_within_60s = share(WITHIN_60S_MS);
        let share_within_180s = share(WITHIN_180S_MS);
        let mut outcomes: BTreeMap<String, u64> = Outcome::ALL
            .iter()
            .map(|o| (o.id().to_owned(), 0))
            .collect();
        for (o, n) in &self.outcomes {
            *outcomes.entry(o.id().to_owned()).or_default() += count(*n);
        }
        MonthResponse {
            month,
            triggered,
            received: count(self.received),
            acknowledged: count(self.acknowledged),
            closed: count(self.closed),
            never_acknowledged: count(self.never_acknowledged),
            response: ResponseTimes::from_counts(&times),
            share_within_60s,
            share_within_180s,
            meets_60s: share_within_60s.map(|s| s >= standard.within_60s),
            meets_180s: share_within_180s.map(|s| s >= standard.within_180s),
            outcomes,
        }
    }
}

/// The whole second a response time falls in, rounded up (0 ms is second 0, 1–1 000 ms second
/// 1, 59 001–60 000 ms second 60), so that "within 60 s" (at most 60 000 ms) is exactly
/// "second at most 60". Response times counted per second ([`seconds_read_exactly`],
/// [`times_from_seconds`]) let the region's figures be read without reading every distinct
/// millisecond, which grows with the fleet.
pub fn response_second(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// Of a month's answered alarms counted per second ([`response_second`] → alarms), the seconds
/// whose times [`ResponseTally::figures`] needs to the millisecond: those holding the median's
/// and the 90th percentile's nearest ranks, and the last (the maximum). The shares need only
/// whole seconds. Counts of 0 or less are no alarms.
pub fn seconds_read_exactly(seconds: &BTreeMap<u64, i64>) -> BTreeSet<u64> {
    let counted: Vec<(u64, u64)> = seconds
        .iter()
        .filter_map(|(s, n)| u64::try_from(*n).ok().filter(|n| *n > 0).map(|n| (*s, n)))
        .collect();
    // The ranks `ResponseTimes::from_counts` reads, found among seconds instead of times.
    [50, 90]
        .into_iter()
        .filter_map(|percent| value_at_rank(&counted, percent))
        .chain(counted.last().map(|(s, _)| *s))
        .collect()
}

/// A tally's `times` from a month's answered alarms counted per second and the exact times
/// (ms → alarms) of at least the seconds [`seconds_read_exactly`] names. Every other second's
/// alarms stand at its last millisecond: that changes no figure, since the shares compare
/// whole seconds and the percentiles and the maximum fall in seconds given exactly. Exact
/// times of other seconds are ignored (their second's count stands for them).
pub fn times_from_seconds(
    seconds: &BTreeMap<u64, i64>,
    exact: impl IntoIterator<Item = (u64, i64)>,
) -> BTreeMap<u64, i64> {
    let read_exactly = seconds_read_exactly(seconds);
    let mut times: BTreeMap<u64, i64> = exact
        .into_iter()
        .filter(|(ms, _)| read_exactly.contains(&response_second(*ms)))
        .collect();
    for (s, n) in seconds {
        if *n > 0 && !read_exactly.contains(s) {
            *times.entry(s.saturating_mul(1000)).or_default() += n;
        }
    }
    times
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Option<DateTime<Utc>> {
        Some(
            DateTime::parse_from_rfc3339(s)
                .expect("rfc3339")
                .with_timezone(&Utc),
        )
    }

    fn month(s: &str) -> YearMonth {
        s.parse().expect("month")
    }

    fn alarm(id: &str) -> AlarmRecord {
        AlarmRecord {
            vendor: VendorId::parse("hepro").expect("vendor"),
            alarm: AlarmRef::parse(id).expect("alarm"),
            device: DeviceId::parse("D1").expect("device"),
            municipality: MunicipalityCode::parse("3328").expect("code"),
            kind: Some(TechnologyKind::SafetyAlarm),
            cause: Some(Cause::Button),
            triggered: None,
            received: None,
            acknowledged: None,
            closed: None,
            outcome: None,
        }
    }

    fn outcomes(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        let mut m: BTreeMap<String, u64> = Outcome::ALL
            .iter()
            .map(|o| (o.id().to_owned(), 0))
            .collect();
        for (id, n) in pairs {
            m.insert((*id).to_owned(), *n);
        }
        m
    }

    /// Eight alarms over January and February 2025 (Oslo is UTC+1 in both), plus one with no
    /// time at all and one in March, which the figures for January–February must ignore.
    fn example() -> Vec<AlarmRecord> {
        vec![
            // A1 January: answered after 20 s.
            AlarmRecord {
                triggered: t("2025-01-10T08:00:00+01:00"),
                received: t("2025-01-10T08:00:02+01:00"),
                acknowledged: t("2025-01-10T08:00:20+01:00"),
                closed: t("2025-01-10T08:05:00+01:00"),
                outcome: Some(Outcome::FalseAlarm),
                ..alarm("A1")
            },
            // A2 January: answered after exactly 60 s, which is still within 60 s.
            AlarmRecord {
                triggered: t("2025-01-12T12:00:00+01:00"),
                received: t("2025-01-12T12:00:01+01:00"),
                acknowledged: t("2025-01-12T12:01:00+01:00"),
                closed: t("2025-01-12T12:10:00+01:00"),
                outcome: Some(Outcome::ResolvedRemotely),
                ..alarm("A2")
            },
            // A3 January: answered after 150 s.
            AlarmRecord {
                triggered: t("2025-01-20T03:00:00+01:00"),
                acknowledged: t("2025-01-20T03:02:30+01:00"),
                closed: t("2025-01-20T04:00:00+01:00"),
                outcome: Some(Outcome::HelpDispatched),
                ..alarm("A3")
            },
            // A4 January, across the month boundary: 23:59:30 → 00:00:40 is 70 s.
            AlarmRecord {
                triggered: t("2025-01-31T23:59:30+01:00"),
                acknowledged: t("2025-02-01T00:00:40+01:00"),
                closed: t("2025-02-01T00:10:00+01:00"),
                outcome: Some(Outcome::ResolvedRemotely),
                ..alarm("A4")
            },
            // A5 January: received but never acknowledged, closed as no contact.
            AlarmRecord {
                triggered: t("2025-01-25T10:00:00+01:00"),
                received: t("2025-01-25T10:00:03+01:00"),
                closed: t("2025-01-25T10:30:00+01:00"),
                outcome: Some(Outcome::NoContact),
                ..alarm("A5")
            },
            // A6 February: acknowledged 2 s *before* it was triggered (clock skew) → 0 ms.
            AlarmRecord {
                triggered: t("2025-02-03T09:00:00+01:00"),
                acknowledged: t("2025-02-03T08:59:58+01:00"),
                closed: t("2025-02-03T09:03:00+01:00"),
                outcome: Some(Outcome::FalseAlarm),
                ..alarm("A6")
            },
            // A7 February: the `alarm` event was lost; placed by its earliest time (received).
            AlarmRecord {
                received: t("2025-02-10T10:00:05+01:00"),
                acknowledged: t("2025-02-10T10:00:30+01:00"),
                closed: t("2025-02-10T10:05:00+01:00"),
                outcome: Some(Outcome::ResolvedRemotely),
                ..alarm("A7")
            },
            // A8 February: answered after 200 s, still open.
            AlarmRecord {
                triggered: t("2025-02-14T18:00:00+01:00"),
                acknowledged: t("2025-02-14T18:03:20+01:00"),
                ..alarm("A8")
            },
            // No time at all: belongs to no month.
            alarm("A9"),
            // March: not asked for.
            AlarmRecord {
                triggered: t("2025-03-01T00:00:00+01:00"),
                ..alarm("A10")
            },
        ]
    }

    #[test]
    fn hand_computed_january_and_february() {
        let figures = response_figures(
            &example(),
            &[month("2025-01"), month("2025-02")],
            &ResponseStandard::default(),
        );
        assert_eq!(figures.len(), 2);

        // January: A1..A5 (A4 by its trigger time, though answered in February).
        // triggered 5; received A1, A2, A5 = 3; acknowledged A1..A4 = 4; closed A1..A5 = 5;
        // never acknowledged A5 = 1.
        // Response times sorted: 20 000, 60 000, 70 000, 150 000 (n = 4).
        //   median rank ⌈0.5·4⌉ = 2 → 60 000; p90 rank ⌈0.9·4⌉ = ⌈3.6⌉ = 4 → 150 000; max 150 000.
        // Within 60 s: A1, A2 = 2 of 5 triggered = 0.4 (< 0.975, fails).
        // Within 180 s: A1..A4 = 4 of 5 = 0.8 (< 0.99, fails; A5 never answered counts as a miss).
        // Outcomes: false_alarm A1, resolved_remotely A2 + A4, help_dispatched A3, no_contact A5.
        assert_eq!(
            figures[0],
            MonthResponse {
                month: month("2025-01"),
                triggered: 5,
                received: 3,
                acknowledged: 4,
                closed: 5,
                never_acknowledged: 1,
                response: Some(ResponseTimes {
                    median_ms: 60_000,
                    p90_ms: 150_000,
                    max_ms: 150_000
                }),
                share_within_60s: Some(0.4),
                share_within_180s: Some(0.8),
                meets_60s: Some(false),
                meets_180s: Some(false),
                outcomes: outcomes(&[
                    ("false_alarm", 1),
                    ("resolved_remotely", 2),
                    ("help_dispatched", 1),
                    ("no_contact", 1),
                ]),
            }
        );

        // February: A6, A7, A8 (A4's acknowledgement and closing do not count here).
        // triggered A6, A8 = 2; received A7 = 1; acknowledged A6, A7, A8 = 3; closed A6, A7 = 2;
        // never acknowledged 0 (A7 has no trigger time, so it has no response time either).
        // Response times sorted: 0 (A6, skew clamped), 200 000 (A8) (n = 2).
        //   median rank ⌈0.5·2⌉ = 1 → 0; p90 rank ⌈0.9·2⌉ = ⌈1.8⌉ = 2 → 200 000; max 200 000.
        // Within 60 s: A6 = 1 of 2 = 0.5. Within 180 s: A6 = 1 of 2 = 0.5 (200 s > 180 s).
        // Outcomes: false_alarm A6, resolved_remotely A7 (A8 still open).
        assert_eq!(
            figures[1],
            MonthResponse {
                month: month("2025-02"),
                triggered: 2,
                received: 1,
                acknowledged: 3,
                closed: 2,
                never_acknowledged: 0,
                response: Some(ResponseTimes {
                    median_ms: 0,
                    p90_ms: 200_000,
                    max_ms: 200_000
                }),
                share_within_60s: Some(0.5),
                share_within_180s: Some(0.5),
                meets_60s: Some(false),
                meets_180s: Some(false),
                outcomes: outcomes(&[("false_alarm", 1), ("resolved_remotely", 1)]),
            }
        );
    }

    #[test]
    fn a_month_without_alarms_has_zero_counts_and_no_shares() {
        let figures = response_figures(
            &example(),
            &[month("2024-12")],
            &ResponseStandard::default(),
        );
        assert_eq!(
            figures,
            vec![MonthResponse {
                month: month("2024-12"),
                triggered: 0,
                received: 0,
                acknowledged: 0,
                closed: 0,
                never_acknowledged: 0,
                response: None,
                share_within_60s: None,
                share_within_180s: None,
                meets_60s: None,
                meets_180s: None,
                outcomes: outcomes(&[]),
            }]
        );
    }

    #[test]
    fn the_standard_is_met_at_exactly_its_share() {
        // 40 alarms: 39 answered in 60 s, one in 61 s. 39/40 = 0.975 meets 97.5 %;
        // 40/40 = 1.0 meets 99 %. One more unanswered alarm: 39/41 and 40/41 ≈ 0.9756 fail 99 %.
        let start = t("2025-05-05T12:00:00+02:00").expect("ts");
        let mut alarms: Vec<AlarmRecord> = (0..40)
            .map(|i| {
                let secs = if i == 0 { 61 } else { 60 };
                AlarmRecord {
                    triggered: Some(start),
                    acknowledged: Some(start + chrono::Duration::seconds(secs)),
                    ..alarm(&format!("M{i}"))
                }
            })
            .collect();
        let may = [month("2025-05")];
        let f = &response_figures(&alarms, &may, &ResponseStandard::default())[0];
        assert_eq!(f.share_within_60s, Some(0.975));
        assert_eq!((f.meets_60s, f.meets_180s), (Some(true), Some(true)));

        alarms.push(AlarmRecord {
            triggered: Some(start),
            ..alarm("M40")
        });
        let f = &response_figures(&alarms, &may, &ResponseStandard::default())[0];
        assert_eq!(f.never_acknowledged, 1);
        assert_eq!((f.meets_60s, f.meets_180s), (Some(false), Some(false)));
    }

    #[test]
    fn month_of_an_alarm_follows_oslo_time() {
        // 22:30 UTC on 30 June is 00:30 on 1 July in Oslo.
        let a = AlarmRecord {
            triggered: t("2025-06-30T22:30:00Z"),
            ..alarm("X")
        };
        assert_eq!(a.month(), Some(month("2025-07")));
        // Without a trigger time, the earliest known time places it.
        let b = AlarmRecord {
            closed: t("2025-07-01T00:10:00+02:00"),
            received: t("2025-06-30T23:59:00+02:00"),
            ..alarm("Y")
        };
        assert_eq!(b.month(), Some(month("2025-06")));
    }

    #[test]
    fn nearest_rank_picks_observed_values() {
        let one = ResponseTimes::from_samples(vec![7]).expect("one sample");
        assert_eq!((one.median_ms, one.p90_ms, one.max_ms), (7, 7, 7));
        // n = 10: median rank 5, p90 rank 9.
        let ten = ResponseTimes::from_samples((1..=10).rev().map(|x| x * 1000).collect())
            .expect("samples");
        assert_eq!(
            (ten.median_ms, ten.p90_ms, ten.max_ms),
            (5000, 9000, 10_000)
        );
        assert_eq!(ResponseTimes::from_samples(vec![]), None);
    }

    #[test]
    fn counted_percentiles_equal_sampled_ones() {
        // Small values repeat, so ranks fall inside runs of equal values and on their edges.
        let mut x: u64 = 7;
        for n in 1..60 {
            let samples: Vec<u64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x % 9
                })
                .collect();
            let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
            for s in &samples {
                *counts.entry(*s).or_default() += 1;
            }
            let counts: Vec<(u64, u64)> = counts.into_iter().collect();
            assert_eq!(
                ResponseTimes::from_counts(&counts),
                ResponseTimes::from_samples(samples.clone()),
                "{samples:?}"
            );
        }
        assert_eq!(ResponseTimes::from_counts(&[]), None);
    }

    #[test]
    fn a_tally_takes_back_what_it_added() {
        let alarms = example();
        let mut tally = ResponseTally::default();
        for a in &alarms {
            tally.add(a, 1);
        }
        let mut other = ResponseTally::default();
        for a in &alarms[..4] {
            other.add(a, -1);
        }
        tally.merge(&other);
        for a in &alarms[4..] {
            tally.add(a, -1);
        }
        let empty = tally.figures(month("2025-01"), &ResponseStandard::default());
        assert_eq!(
            empty,
            ResponseTally::default().figures(month("2025-01"), &ResponseStandard::default())
        );
        assert!(tally.times.values().all(|n| *n == 0));
    }

    #[test]
    fn figures_serialize_with_the_month_as_text() {
        let figures = response_figures(
            &example(),
            &[month("2025-01")],
            &ResponseStandard::default(),
        );
        let json = serde_json::to_value(&figures[0]).expect("json");
        assert_eq!(json["month"], "2025-01");
        assert_eq!(json["response"]["median_ms"], 60_000);
        assert_eq!(json["outcomes"]["resolved_remotely"], 2);
    }

    mod by_seconds {
        use super::*;
        use proptest::prelude::*;

        fn figures_of(times: &BTreeMap<u64, i64>) -> MonthResponse {
            let answered: i64 = times.values().sum();
            let tally = ResponseTally {
                triggered: answered + 3,
                acknowledged: answered,
                times: times.clone(),
                ..Default::default()
            };
            tally.figures(
                YearMonth::new(2025, 3).expect("month"),
                &ResponseStandard::default(),
            )
        }

        #[test]
        fn seconds_round_up_so_the_standard_compares_whole_seconds() {
            assert_eq!(response_second(0), 0);
            assert_eq!(response_second(1), 1);
            assert_eq!(response_second(60_000), 60);
            assert_eq!(response_second(60_001), 61);
        }

        proptest! {
            /// Per-second counts plus the exact times of the seconds named give the same
            /// figures as every time to the millisecond: shares, percentiles and maximum.
            #[test]
            fn give_the_figures_of_every_time(
                // Clustered around the 60 s and 180 s limits, and spread out.
                times in proptest::collection::vec(
                    prop_oneof![59_000u64..61_500, 179_000u64..181_500, 0u64..400_000],
                    0..300,
                ),
                // Alarms taken back leave zero counts behind, as the sums do.
                zeroed in proptest::collection::vec(0u64..400_000, 0..5),
            ) {
                let mut full: BTreeMap<u64, i64> = BTreeMap::new();
                for ms in &times {
                    *full.entry(*ms).or_default() += 1;
                }
                for ms in &zeroed {
                    full.entry(*ms).or_insert(0);
                }
                let mut seconds: BTreeMap<u64, i64> = BTreeMap::new();
                for (ms, n) in &full {
                    *seconds.entry(response_second(*ms)).or_default() += n;
                }
                let read = seconds_read_exactly(&seconds);
                prop_assert!(read.len() <= 3);
                let exact = full
                    .iter()
                    .filter(|(ms, _)| read.contains(&response_second(**ms)))
                    .map(|(ms, n)| (*ms, *n));
                let rebuilt = times_from_seconds(&seconds, exact);
                prop_assert_eq!(figures_of(&rebuilt), figures_of(&full));
            }
        }
    }
}
