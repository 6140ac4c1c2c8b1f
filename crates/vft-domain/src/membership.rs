//! Cooperations between municipalities and their membership periods. These are data, never
//! code: a region is whatever its configuration (or the municipalities CSV) says, and a
//! municipality can join or leave a cooperation without a release.
//!
//! Dates are Europe/Oslo calendar dates. `from` is inclusive (member from the Oslo midnight
//! that starts it); `until` is exclusive (member until the Oslo midnight that starts it). So a
//! municipality with `until = 2025-07-01` is a member at the last instant of June and not at
//! the first instant of July, which is what the month-end counts of June and July need.

use crate::ids::MunicipalityCode;
use crate::month::oslo_midnight;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One membership period of one municipality. Open-ended on a side that is `None`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    pub municipality: MunicipalityCode,
    #[serde(default)]
    pub from: Option<NaiveDate>,
    #[serde(default)]
    pub until: Option<NaiveDate>,
}

impl Membership {
    /// Whether this period covers instant `t`: `from` ≤ date < `until`, dates in Oslo.
    pub fn is_active_at(&self, t: DateTime<Utc>) -> bool {
        self.from.is_none_or(|d| oslo_midnight(d) <= t)
            && self.until.is_none_or(|d| t < oslo_midnight(d))
    }
}

/// A cooperation (e.g. the e-health cooperation, Hallinghelse) and its membership periods.
/// A municipality may have several periods (left and joined again).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Cooperation {
    /// Stable id, e.g. `ehealth`, `hallinghelse`.
    pub id: String,
    pub name: String,
    pub members: Vec<Membership>,
}

impl Cooperation {
    /// The municipalities that are members at instant `t`.
    pub fn members_at(&self, t: DateTime<Utc>) -> BTreeSet<MunicipalityCode> {
        self.members
            .iter()
            .filter(|m| m.is_active_at(t))
            .map(|m| m.municipality.clone())
            .collect()
    }

    pub fn is_member(&self, municipality: &MunicipalityCode, t: DateTime<Utc>) -> bool {
        self.members
            .iter()
            .any(|m| m.municipality == *municipality && m.is_active_at(t))
    }
}

/// The first instant of an Oslo calendar date, as UTC. Midnight always exists in Oslo (DST
/// changes happen at 02:00/03:00), so the earliest mapping is the only one.

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("memberships CSV line {line}: {why}")]
    Csv { line: u64, why: String },
    #[error("memberships CSV has no `{0}` column")]
    MissingColumn(&'static str),
    #[error(
        "memberships CSV column {0:?} does not name a cooperation (want `<id>_until` with an id of a-z, 0-9, _ and -)"
    )]
    BadCooperationColumn(String),
    #[error("memberships CSV names cooperation {0:?} twice")]
    DuplicateCooperation(String),
    #[error("municipality {0} is listed twice")]
    DuplicateMunicipality(MunicipalityCode),
}

/// Display name of a cooperation id the product knows; otherwise the id itself, so a new
/// cooperation needs only a new column, not a release.
fn cooperation_name(id: &str) -> String {
    match id {
        "hallinghelse" => "Hallinghelse".to_owned(),
        "ehealth" => "E-helse/velferdsteknologi".to_owned(),
        other => other.to_owned(),
    }
}

fn valid_cooperation_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

/// Reads cooperations from the `municipalities.csv` shape (`code,name,population,<id>_until…`,
/// `#` comment lines). Every column named `<id>_until` defines cooperation `<id>`, in column
/// order; every listed municipality is a member from the beginning (`from = None`) until the
/// date in its cell (`YYYY-MM-DD`, exclusive; empty = open-ended). Rows must have every column:
/// a missing cell would silently read as "member forever".
pub fn cooperations_from_csv(text: &str) -> Result<Vec<Cooperation>, MembershipError> {
    let csv_error = |e: csv::Error| MembershipError::Csv {
        line: e.position().map_or(0, |p| p.line()),
        why: e.to_string(),
    };
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(csv_error)?.clone();
    let code_column = headers
        .iter()
        .position(|h| h == "code")
        .ok_or(MembershipError::MissingColumn("code"))?;

    let mut columns: Vec<usize> = Vec::new();
    let mut cooperations: Vec<Cooperation> = Vec::new();
    for (i, header) in headers.iter().enumerate() {
        let Some(id) = header.strip_suffix("_until") else {
            continue;
        };
        if !valid_cooperation_id(id) {
            return Err(MembershipError::BadCooperationColumn(header.to_owned()));
        }
        if cooperations.iter().any(|c| c.id == id) {
            return Err(MembershipError::DuplicateCooperation(id.to_owned()));
        }
        columns.push(i);
        cooperations.push(Cooperation {
            id: id.to_owned(),
            name: cooperation_name(id),
            members: Vec::new(),
        });
    }

    let mut seen: BTreeSet<MunicipalityCode> = BTreeSet::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, |p| p.line());
        let cell = |i: usize| record.get(i).unwrap_or("");
        let municipality =
            MunicipalityCode::parse(cell(code_column)).map_err(|e| MembershipError::Csv {
                line,
                why: e.to_string(),
            })?;
        if !seen.insert(municipality.clone()) {
            return Err(MembershipError::DuplicateMunicipality(municipality));
        }
        for (&column, cooperation) in columns.iter().zip(cooperations.iter_mut()) {
            let until = match cell(column) {
                "" => None,
                date => Some(NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
                    MembershipError::Csv {
                        line,
                        why: format!(
                            "{}_until {date:?} is not a date (YYYY-MM-DD)",
                            cooperation.id
                        ),
                    }
                })?),
            };
            cooperation.members.push(Membership {
                municipality: municipality.clone(),
                from: None,
                until,
            });
        }
    }
    Ok(cooperations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::month::YearMonth;

    /// Copy of /work/shared/fixtures/municipalities.csv.
    const FIXTURE: &str = "\
# Hallingdal municipalities. Codes are the municipality numbers in force from 2024 (Buskerud county).
# Population: as published by NAPHA in 2023 (\"Kommunene i Hallingdal samarbeider systematisk om psykiske helsetjenester\").
# Memberships (empty = open-ended): Nesbyen left the Hallinghelse cooperation on 2025-07-01
# but stays in the shared e-health / welfare-technology cooperation (Hallinghelse annual report 2025).
code,name,population,hallinghelse_until,ehealth_until
3320,Flå,1097,,
3322,Nesbyen,3299,2025-07-01,
3324,Gol,4767,,
3326,Hemsedal,2645,,
3328,Ål,4862,,
3330,Hol,4506,,
";

    fn code(s: &str) -> MunicipalityCode {
        MunicipalityCode::parse(s).expect("code")
    }

    fn codes(list: &[&str]) -> BTreeSet<MunicipalityCode> {
        list.iter().map(|s| code(s)).collect()
    }

    fn june() -> YearMonth {
        YearMonth::new(2025, 6).expect("month")
    }

    /// The last instant of June in Oslo (the stores keep microseconds).
    fn end_of_june() -> DateTime<Utc> {
        june().end_exclusive() - chrono::Duration::microseconds(1)
    }

    #[test]
    fn reads_the_fixture() {
        let coops = cooperations_from_csv(FIXTURE).expect("valid");
        let ids: Vec<(&str, &str)> = coops
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("hallinghelse", "Hallinghelse"),
                ("ehealth", "E-helse/velferdsteknologi")
            ]
        );
        assert_eq!(coops[0].members.len(), 6);
        assert_eq!(
            coops[0].members[1],
            Membership {
                municipality: code("3322"),
                from: None,
                until: NaiveDate::from_ymd_opt(2025, 7, 1),
            }
        );
        assert!(coops[1].members.iter().all(|m| m.until.is_none()));
    }

    #[test]
    fn nesbyen_leaves_hallinghelse_at_the_oslo_midnight_starting_july() {
        let coops = cooperations_from_csv(FIXTURE).expect("valid");
        let (hallinghelse, ehealth) = (&coops[0], &coops[1]);
        let all = ["3320", "3322", "3324", "3326", "3328", "3330"];
        let without_nesbyen = ["3320", "3324", "3326", "3328", "3330"];
        let july_starts = june().end_exclusive();
        // July starts at 22:00 UTC on 30 June (Oslo is UTC+2 in summer).
        assert_eq!(july_starts.to_rfc3339(), "2025-06-30T22:00:00+00:00");

        assert!(hallinghelse.is_member(&code("3322"), end_of_june()));
        assert!(!hallinghelse.is_member(&code("3322"), july_starts));
        assert_eq!(hallinghelse.members_at(end_of_june()), codes(&all));
        assert_eq!(
            hallinghelse.members_at(july_starts),
            codes(&without_nesbyen)
        );
        // The welfare-technology cooperation keeps Nesbyen.
        assert_eq!(ehealth.members_at(july_starts), codes(&all));
        assert!(ehealth.is_member(&code("3322"), july_starts));
        assert!(!ehealth.is_member(&code("0301"), july_starts));
    }

    #[test]
    fn from_is_inclusive_and_periods_can_repeat() {
        let day = |m, d| NaiveDate::from_ymd_opt(2025, m, d);
        let coop = Cooperation {
            id: "x".into(),
            name: "x".into(),
            members: vec![
                Membership {
                    municipality: code("3320"),
                    from: day(1, 1),
                    until: day(3, 1),
                },
                Membership {
                    municipality: code("3320"),
                    from: day(5, 1),
                    until: None,
                },
            ],
        };
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("ts")
                .with_timezone(&Utc)
        };
        let flaa = code("3320");
        // Oslo midnight on 1 January is 23:00 UTC on 31 December.
        assert!(!coop.is_member(&flaa, at("2024-12-31T22:59:59Z")));
        assert!(coop.is_member(&flaa, at("2024-12-31T23:00:00Z")));
        assert!(coop.is_member(&flaa, at("2025-02-28T22:59:59Z")));
        assert!(!coop.is_member(&flaa, at("2025-02-28T23:00:00Z")));
        assert!(!coop.is_member(&flaa, at("2025-04-30T21:59:59Z")));
        assert!(coop.is_member(&flaa, at("2025-04-30T22:00:00Z")));
        assert!(coop.is_member(&flaa, at("2030-01-01T00:00:00Z")));
    }

    #[test]
    fn round_trips_as_json_and_refuses_unknown_fields() {
        let coops = cooperations_from_csv(FIXTURE).expect("valid");
        let json = serde_json::to_string(&coops).expect("json");
        let back: Vec<Cooperation> = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, coops);
        let minimal: Membership =
            serde_json::from_str(r#"{"municipality":"3320"}"#).expect("defaults");
        assert_eq!((minimal.from, minimal.until), (None, None));
        assert!(
            serde_json::from_str::<Membership>(r#"{"municipality":"3320","to":"2025-01-01"}"#)
                .is_err()
        );
    }

    #[test]
    fn unknown_cooperations_are_named_by_their_id() {
        let coops = cooperations_from_csv("code,name,vestre-viken_until\n3320,Flå,2026-01-01\n")
            .expect("ok");
        assert_eq!(
            (coops[0].id.as_str(), coops[0].name.as_str()),
            ("vestre-viken", "vestre-viken")
        );
        // No `_until` columns: no cooperations.
        assert_eq!(
            cooperations_from_csv("code,name\n3320,Flå\n").expect("ok"),
            vec![]
        );
    }

    #[test]
    fn reports_bad_input() {
        let bad = [
            "name,x_until\nFlå,\n",           // no code column
            "code,x_until\n33,\n",            // bad code
            "code,x_until\n3320,1 July\n",    // bad date
            "code,x_until\n3320,\n3320,\n",   // duplicate municipality
            "code,_until\n3320,\n",           // empty id
            "code,X Y_until\n3320,\n",        // bad id
            "code,x_until,x_until\n3320,,\n", // duplicate cooperation
            "code,name,x_until\n3320,Flå\n",  // short row
        ];
        for text in bad {
            assert!(cooperations_from_csv(text).is_err(), "{text:?}");
        }
        let err =
            cooperations_from_csv("code,x_until\n3320,\n3322,2025-13-01\n").expect_err("bad date");
        assert!(err.to_string().contains("line 3"), "{err}");
    }
}
