//! Municipalities are data, never code: the region is whatever the configuration lists.

use crate::ids::MunicipalityCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Municipality {
    pub code: MunicipalityCode,
    pub name: String,
    #[serde(default)]
    pub population: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum MunicipalityError {
    #[error("municipalities CSV line {line}: {why}")]
    Csv { line: u64, why: String },
    #[error("municipality {0} is listed twice")]
    Duplicate(MunicipalityCode),
}

/// The known municipalities, looked up by code.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_code: BTreeMap<MunicipalityCode, Municipality>,
}

impl Registry {
    pub fn new(list: impl IntoIterator<Item = Municipality>) -> Result<Self, MunicipalityError> {
        let mut by_code = BTreeMap::new();
        for m in list {
            let code = m.code.clone();
            if by_code.insert(code.clone(), m).is_some() {
                return Err(MunicipalityError::Duplicate(code));
            }
        }
        Ok(Self { by_code })
    }

    pub fn get(&self, code: &MunicipalityCode) -> Option<&Municipality> {
        self.by_code.get(code)
    }

    pub fn contains(&self, code: &MunicipalityCode) -> bool {
        self.by_code.contains_key(code)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Municipality> {
        self.by_code.values()
    }

    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }
}

/// Parses the `municipalities.csv` shape: `code,name,population,...` with `#` comment lines.
/// Columns beyond these three (membership periods) are read by later features.
pub fn parse_csv(text: &str) -> Result<Vec<Municipality>, MunicipalityError> {
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| MunicipalityError::Csv {
            line: e.position().map_or(0, |p| p.line()),
            why: e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or("").trim();
        let code = MunicipalityCode::parse(field(0)).map_err(|e| MunicipalityError::Csv {
            line,
            why: e.to_string(),
        })?;
        let population = match field(2) {
            "" => 0,
            p => p.parse().map_err(|_| MunicipalityError::Csv {
                line,
                why: format!("population {p:?} is not a whole number"),
            })?,
        };
        out.push(Municipality {
            code,
            name: field(1).to_owned(),
            population,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fixture_shape() {
        let text =
            "# comment\ncode,name,population,until\n3320,Flå,1097,\n3322,Nesbyen,3299,2025-07-01\n";
        let list = parse_csv(text).expect("valid");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name, "Flå");
        assert_eq!(list[1].population, 3299);
        let registry = Registry::new(list).expect("unique");
        assert!(registry.contains(&MunicipalityCode::parse("3322").expect("code")));
        assert!(!registry.contains(&MunicipalityCode::parse("0301").expect("code")));
    }

    #[test]
    fn reports_bad_rows_and_duplicates() {
        assert!(parse_csv("code,name,population\n33,X,1\n").is_err());
        assert!(parse_csv("code,name,population\n3320,X,many\n").is_err());
        let dup = parse_csv("code,name,population\n3320,A,1\n3320,B,2\n").expect("parses");
        assert!(matches!(
            Registry::new(dup),
            Err(MunicipalityError::Duplicate(_))
        ));
    }
}
