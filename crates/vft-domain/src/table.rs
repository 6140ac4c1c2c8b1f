//! The monthly device table (Contract 2's `rollups/devices` shape) and its CSV form.

use crate::kind::TechnologyKind;
use crate::month::YearMonth;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRow {
    pub kind: TechnologyKind,
    pub label: String,
    pub counts: Vec<Option<u64>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceTable {
    pub year: i32,
    pub months: Vec<YearMonth>,
    pub rows: Vec<TableRow>,
    pub total: Vec<Option<u64>>,
}

/// A CSV cell as a spreadsheet may open it: a text starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return gets a leading `'`, so Excel and LibreOffice show it rather than run it as
/// a formula (`=HYPERLINK(…)`, OWASP "CSV injection"). A plain number (`-27`, `+3`, `0.5`,
/// `1e3`) stays as it is: it is a number to the spreadsheet, not a formula. Every CSV vft
/// writes goes through this.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    let risky = cell
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'));
    if risky && !plain_number(cell) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// `[+-]digits[.digits][e[+-]digits]`, with at least one digit before the exponent.
fn plain_number(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['+', '-']).unwrap_or(e))),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    !(int.is_empty() && frac.is_empty())
        && digits(int)
        && digits(frac)
        && exponent.is_none_or(|e| !e.is_empty() && digits(e))
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("table CSV: {0}")]
    Csv(String),
}

impl DeviceTable {
    /// Builds the table from per-month counts in table order; `None` marks a month with no
    /// figure yet (in the future).
    pub fn from_counts(year: i32, months: Vec<YearMonth>, counts: &[Option<[u64; 6]>]) -> Self {
        let rows = TechnologyKind::ALL
            .into_iter()
            .map(|kind| TableRow {
                kind,
                label: kind.label_nb().to_owned(),
                counts: counts.iter().map(|c| c.map(|c| c[kind.index()])).collect(),
            })
            .collect();
        let total = counts.iter().map(|c| c.map(|c| c.iter().sum())).collect();
        Self {
            year,
            months,
            rows,
            total,
        }
    }

    /// `kind,label,2025-01,…` with one row per technology type; empty cells for `null`.
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["kind".to_owned(), "label".to_owned()];
        header.extend(self.months.iter().map(ToString::to_string));
        // Writing to a Vec cannot fail; errors would only come from I/O.
        let _ = w.write_record(header.iter().map(|c| spreadsheet_safe(c).into_owned()));
        for row in &self.rows {
            let mut rec = vec![row.kind.id().to_owned(), row.label.clone()];
            rec.extend(
                row.counts
                    .iter()
                    .map(|c| c.map(|n| n.to_string()).unwrap_or_default()),
            );
            let _ = w.write_record(rec.iter().map(|c| spreadsheet_safe(c).into_owned()));
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    /// Reads a table in the fixture's shape (`kind,label…,YYYY-MM…`, `#` comments).
    pub fn from_csv(text: &str) -> Result<Self, TableError> {
        let err = |s: String| TableError::Csv(s);
        let mut reader = csv::ReaderBuilder::new()
            .comment(Some(b'#'))
            .from_reader(text.as_bytes());
        let header = reader.headers().map_err(|e| err(e.to_string()))?.clone();
        let months: Vec<YearMonth> = header
            .iter()
            .skip(2)
            .map(|h| {
                h.parse()
                    .map_err(|e: crate::month::MonthError| err(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let year = months
            .first()
            .map(|m| m.year())
            .ok_or_else(|| err("no month columns".into()))?;
        let mut counts: Vec<Option<[u64; 6]>> = vec![Some([0; 6]); months.len()];
        let mut seen = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| err(e.to_string()))?;
            let kind_id = record.get(0).unwrap_or("");
            let kind = TechnologyKind::from_id(kind_id)
                .ok_or_else(|| err(format!("unknown kind {kind_id:?}")))?;
            seen.push(kind);
            for (i, cell) in record.iter().skip(2).enumerate() {
                let slot = counts
                    .get_mut(i)
                    .ok_or_else(|| err(format!("too many cells in row {kind_id}")))?;
                if cell.is_empty() {
                    *slot = None;
                } else if let Some(c) = slot {
                    c[kind.index()] = cell
                        .parse()
                        .map_err(|_| err(format!("{kind_id}: {cell:?} is not a count")))?;
                }
            }
        }
        seen.sort();
        if seen != TechnologyKind::ALL {
            return Err(err("expected exactly one row per technology type".into()));
        }
        Ok(Self::from_counts(year, months, &counts))
    }

    /// The count of one type in one month.
    pub fn cell(&self, kind: TechnologyKind, month_index: usize) -> Option<u64> {
        self.rows
            .get(kind.index())
            .and_then(|r| r.counts.get(month_index).copied().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_run_are_neutralised_and_numbers_stay_numbers() {
        for (cell, shown) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+SUM(A1)", "'+SUM(A1)"),
            ("-2+3", "'-2+3"),
            ("-cmd|' /C calc'!A0", "'-cmd|' /C calc'!A0"),
            ("@SUM(1)", "'@SUM(1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("-", "'-"),
            ("+", "'+"),
            ("-.", "'-."),
            ("-1e", "'-1e"),
            ("-27", "-27"),
            ("+3", "+3"),
            ("-0.5", "-0.5"),
            ("-.5", "-.5"),
            ("-1.5e-3", "-1.5e-3"),
            ("27", "27"),
            ("HP-SA-1", "HP-SA-1"),
            ("a=b", "a=b"),
            ("2025-01", "2025-01"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_safe(cell), shown, "{cell:?}");
        }
    }

    const FIXTURE: &str = "# note\nkind,label_nb,2025-01,2025-02\nmedication_support,M,63,64\ndigital_supervision,D,25,26\ntracking,T,60,59\nsafety_alarm,S,550,561\nsmoke_detector,R,303,313\ndoor_lock_alarm,L,32,27\n";

    #[test]
    fn reads_the_fixture_shape_and_writes_the_contract_shape() {
        let t = DeviceTable::from_csv(FIXTURE).expect("valid");
        assert_eq!(t.year, 2025);
        assert_eq!(t.cell(TechnologyKind::SafetyAlarm, 1), Some(561));
        assert_eq!(t.total, vec![Some(1033), Some(1050)]);
        let csv = t.to_csv();
        assert!(csv.starts_with(
            "kind,label,2025-01,2025-02\nmedication_support,Medisineringsstøtte,63,64\n"
        ));
        let json = serde_json::to_value(&t).expect("json");
        assert_eq!(json["months"][0], "2025-01");
        assert_eq!(json["rows"][3]["kind"], "safety_alarm");
        assert_eq!(json["rows"][3]["counts"][1], 561);
    }

    #[test]
    fn null_months_stay_empty() {
        let months = YearMonth::months_of_year(2026).expect("year");
        let mut counts = vec![Some([1, 2, 3, 4, 5, 6]); 10];
        counts.extend([None, None]);
        let t = DeviceTable::from_counts(2026, months, &counts);
        assert_eq!(t.total[9], Some(21));
        assert_eq!(t.total[10], None);
        assert!(t.to_csv().lines().nth(1).expect("row").ends_with(",1,,"));
        assert!(
            DeviceTable::from_csv("kind,label,2025-01\nsafety_alarm,S,1\n").is_err(),
            "missing rows"
        );
    }
}
