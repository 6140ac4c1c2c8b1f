//! Months in Europe/Oslo. A month's figures are taken at its last instant in Oslo time, so
//! `2025-06-30T22:30:00Z` (00:30 on 1 July in Oslo) already belongs to July.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Oslo;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct YearMonth {
    year: i32,
    month: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a month (YYYY-MM between 1970 and 9999): {0:?}")]
pub struct MonthError(String);

impl YearMonth {
    pub fn new(year: i32, month: u32) -> Result<Self, MonthError> {
        if (1970..=9999).contains(&year) && (1..=12).contains(&month) {
            Ok(Self { year, month })
        } else {
            Err(MonthError(format!("{year}-{month}")))
        }
    }
    pub fn year(self) -> i32 {
        self.year
    }
    pub fn month(self) -> u32 {
        self.month
    }
    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }
    pub fn months_of_year(year: i32) -> Result<Vec<Self>, MonthError> {
        (1..=12).map(|m| Self::new(year, m)).collect()
    }

    /// First instant of the month in Oslo, as UTC. Midnight always exists in Oslo (DST
    /// changes happen at 02:00/03:00), so the mapping is unambiguous.
    pub fn start(self) -> DateTime<Utc> {
        oslo_midnight(NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or_default())
    }

    /// Exclusive end: the first instant of the next month. "At the last instant of M" means
    /// "strictly before `end_exclusive()`".
    pub fn end_exclusive(self) -> DateTime<Utc> {
        self.next().start()
    }

    /// The Oslo month an instant falls in.
    pub fn containing(t: DateTime<Utc>) -> Self {
        use chrono::Datelike;
        let local = t.with_timezone(&Oslo);
        Self {
            year: local.year(),
            month: local.month(),
        }
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl From<YearMonth> for String {
    fn from(m: YearMonth) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for YearMonth {
    type Error = MonthError;
    fn try_from(s: String) -> Result<Self, MonthError> {
        s.parse()
    }
}

impl std::str::FromStr for YearMonth {
    type Err = MonthError;
    fn from_str(s: &str) -> Result<Self, MonthError> {
        let (y, m) = s.split_once('-').ok_or_else(|| MonthError(s.into()))?;
        if y.len() != 4 || m.len() != 2 {
            return Err(MonthError(s.into()));
        }
        let year = y.parse().map_err(|_| MonthError(s.into()))?;
        let month = m.parse().map_err(|_| MonthError(s.into()))?;
        Self::new(year, month)
    }
}

/// Exclusive month-end instants for the given months.
pub fn month_end_instants(months: &[YearMonth]) -> Vec<DateTime<Utc>> {
    months.iter().map(|m| m.end_exclusive()).collect()
}

/// The first instant of a calendar date in Europe/Oslo, as UTC: the one place vft turns an
/// Oslo date into an instant (month starts, membership periods, API dates, export dates).
/// Oslo's midnight always exists (DST changes at 02:00/03:00); were it ever skipped, the
/// date's UTC midnight stands in.
pub fn oslo_midnight(date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    Oslo.from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

/// The last instant (to the microsecond) of a calendar date in Europe/Oslo, as UTC.
pub fn oslo_end_of_day(date: NaiveDate) -> Option<DateTime<Utc>> {
    Some(oslo_midnight(date.succ_opt()?) - chrono::Duration::microseconds(1))
}

/// The Oslo calendar date an instant falls on.
pub fn oslo_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&Oslo).date_naive()
}

const MONTH_NAMES_NB: [&str; 12] = [
    "januar",
    "februar",
    "mars",
    "april",
    "mai",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "desember",
];

/// The Norwegian (bokmål) name of a month, `januar` … `desember` (1-12; out of range clamps).
pub fn month_name_nb(month: u32) -> &'static str {
    MONTH_NAMES_NB[(month.clamp(1, 12) - 1) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oslo_days_across_summer_time() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("date");
        let utc = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("ts")
                .with_timezone(&Utc)
        };
        // Winter (UTC+1), the spring-forward day (a 23-hour day), summer (UTC+2).
        assert_eq!(oslo_midnight(d(2025, 1, 15)), utc("2025-01-14T23:00:00Z"));
        assert_eq!(oslo_midnight(d(2025, 3, 30)), utc("2025-03-29T23:00:00Z"));
        assert_eq!(oslo_midnight(d(2025, 3, 31)), utc("2025-03-30T22:00:00Z"));
        assert_eq!(
            oslo_end_of_day(d(2025, 10, 26)),
            Some(utc("2025-10-26T22:59:59.999999Z")),
            "the 25-hour autumn day ends at 23:00 UTC"
        );
        assert_eq!(oslo_date(utc("2025-06-30T22:30:00Z")), d(2025, 7, 1));
        assert_eq!(oslo_date(utc("2025-06-30T21:59:59Z")), d(2025, 6, 30));
        assert_eq!(
            YearMonth::new(2025, 7).expect("month").start(),
            oslo_midnight(d(2025, 7, 1))
        );
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn month_boundaries_follow_oslo_time_including_dst() {
        let june = YearMonth::new(2025, 6).expect("valid");
        // Summer time (UTC+2): July starts at 22:00 UTC on 30 June.
        assert_eq!(june.end_exclusive(), utc("2025-06-30T22:00:00Z"));
        // Winter time (UTC+1): February starts at 23:00 UTC on 31 January.
        let jan = YearMonth::new(2025, 1).expect("valid");
        assert_eq!(jan.end_exclusive(), utc("2025-01-31T23:00:00Z"));
        assert_eq!(jan.start(), utc("2024-12-31T23:00:00Z"));
        // March ends in summer time (DST began on 30 March 2025).
        let march = YearMonth::new(2025, 3).expect("valid");
        assert_eq!(march.end_exclusive(), utc("2025-03-31T22:00:00Z"));
        // December rolls over the year.
        let dec = YearMonth::new(2025, 12).expect("valid");
        assert_eq!(dec.end_exclusive(), utc("2025-12-31T23:00:00Z"));
    }

    #[test]
    fn containing_uses_oslo_time() {
        assert_eq!(
            YearMonth::containing(utc("2025-06-30T22:30:00Z")).to_string(),
            "2025-07"
        );
        assert_eq!(
            YearMonth::containing(utc("2025-06-30T21:59:59Z")).to_string(),
            "2025-06"
        );
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            "2025-07".parse::<YearMonth>().map(|m| m.to_string()),
            Ok("2025-07".to_string())
        );
        for bad in ["2025-13", "2025-7", "25-07", "2025/07", "abcd-ef"] {
            assert!(bad.parse::<YearMonth>().is_err(), "{bad}");
        }
    }
}
