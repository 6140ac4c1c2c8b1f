//! Vendor inventory exports (CSV) read into [`Listing`]s, the snapshots reconciliation compares
//! against the events. Each vendor's export is described by an [`ImportFormat`] in
//! configuration (delimiter, encoding, column names, codes), never by code.
//!
//! Parsing never gives up on a row's account: a row that cannot be read (bad encoding, a bad
//! value, a national identity number) is reported with its line number and left out, every
//! other row is kept, and an exact repeat of an earlier line is reported and kept once.

use crate::adapter::DeviceIdRules;
use crate::ids::{DeviceId, MunicipalityCode, RecipientRef, VendorId};
use crate::kind::TechnologyKind;
use crate::nin;
use crate::reconcile::Listing;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// How one vendor's inventory export is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportFormat {
    pub delimiter: char,
    pub encoding: Encoding,
    /// chrono pattern of the installed date, e.g. `%d.%m.%Y`.
    pub date_format: String,
    /// IANA zone the export's dates are local to (checked; dates are validated, not stored).
    pub time_zone: String,
    pub columns: Columns,
    /// The vendor's product codes → technology type. A code not listed is a row error.
    #[serde(default)]
    pub kind_codes: BTreeMap<String, TechnologyKind>,
    /// Values of the status column that mean "in service" (compared trimmed, ignoring case).
    #[serde(default)]
    pub in_service_values: Vec<String>,
    /// The same rules as the vendor's adapter, so both name a device alike.
    #[serde(default)]
    pub device_id: DeviceIdRules,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "windows-1252")]
    Windows1252,
}

/// Header names of the columns vft reads; other columns are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    pub device: String,
    pub kind: String,
    pub municipality: String,
    pub recipient: Option<String>,
    /// Without a status column every row counts as in service.
    pub status: Option<String>,
    pub installed: Option<String>,
}

/// A problem with the file as a whole: nothing can be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the import format is invalid: {0}")]
    Format(String),
    #[error("the file has no header line")]
    NoHeader,
    #[error("the header line is not valid {0}")]
    HeaderEncoding(&'static str),
    #[error("the header has no column {0:?}")]
    MissingColumn(String),
}

/// One row left out, and why. `column` names the header of the offending cell, if one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub line: u64,
    pub column: Option<String>,
    pub why: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportParse {
    /// Every readable row, with its line number (1 = the header).
    pub rows: Vec<(u64, Listing)>,
    pub errors: Vec<RowError>,
    /// Lines that repeat an earlier line exactly (kept once).
    pub duplicates: Vec<u64>,
}

impl ImportParse {
    /// Moves rows whose municipality is not in the region to the errors: a snapshot row that
    /// no figure or reconciliation can place is a mistake in the export, not a fact to keep.
    pub fn reject_unknown_municipalities(
        &mut self,
        registry: &crate::Registry,
        municipality_column: &str,
    ) {
        let (kept, unknown): (Vec<_>, Vec<_>) = std::mem::take(&mut self.rows)
            .into_iter()
            .partition(|(_, l)| l.municipality.as_ref().is_none_or(|m| registry.contains(m)));
        self.rows = kept;
        if unknown.is_empty() {
            return;
        }
        self.errors
            .extend(unknown.into_iter().map(|(line, l)| RowError {
                line,
                column: Some(municipality_column.to_owned()),
                why: format!(
                    "unknown municipality {}: not in the configured region",
                    l.municipality.map(|m| m.to_string()).unwrap_or_default()
                ),
            }));
        self.errors.sort_by_key(|e| e.line);
    }
}

impl ImportFormat {
    /// Checks what can be checked without a file, so a typo fails at startup.
    pub fn validate(&self) -> Result<(), ImportError> {
        let bad = |s: String| Err(ImportError::Format(s));
        if !self.delimiter.is_ascii() || matches!(self.delimiter, '"' | '\n' | '\r') {
            return bad(format!(
                "delimiter {:?} must be one ASCII character other than a quote or newline",
                self.delimiter
            ));
        }
        if self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return bad(format!("unknown time zone {:?}", self.time_zone));
        }
        if chrono::format::StrftimeItems::new(&self.date_format)
            .any(|i| matches!(i, chrono::format::Item::Error))
        {
            return bad(format!("invalid date format {:?}", self.date_format));
        }
        if self.columns.status.is_some() && self.in_service_values.is_empty() {
            return bad("a status column needs in_service_values".into());
        }
        Ok(())
    }
}

/// Splits into lines (LF or CRLF), numbered from 1, without their line ends.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.strip_suffix(b"\r").unwrap_or(l)))
}

fn decode(encoding: Encoding, line: &[u8]) -> Option<String> {
    match encoding {
        Encoding::Utf8 => std::str::from_utf8(line).ok().map(str::to_owned),
        // Every byte means something in Windows-1252: decoding cannot fail.
        Encoding::Windows1252 => Some(
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(line)
                .0
                .into_owned(),
        ),
    }
}

fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Utf8 => "UTF-8",
        Encoding::Windows1252 => "Windows-1252",
    }
}

/// Reads one vendor's export. Only a file whose header cannot be read fails as a whole.
pub fn parse_inventory(
    format: &ImportFormat,
    vendor: &VendorId,
    bytes: &[u8],
) -> Result<ImportParse, ImportError> {
    parse_inventory_with(format, vendor, bytes, None)
}

/// [`parse_inventory`], and a row whose installed date is outside `times` (by date, at `now`)
/// is left out as unreadable, as events with such times are dead letters.
pub fn parse_inventory_at(
    format: &ImportFormat,
    vendor: &VendorId,
    bytes: &[u8],
    times: &crate::event::PlausibleTimes,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ImportParse, ImportError> {
    let window = DateWindow {
        earliest: times.earliest.date_naive(),
        latest: times.latest(now).map(|t| t.date_naive()),
    };
    parse_inventory_with(format, vendor, bytes, Some(window))
}

/// Plausible installed dates, inclusive (`latest: None`: no upper bound).
#[derive(Debug, Clone, Copy)]
struct DateWindow {
    earliest: chrono::NaiveDate,
    latest: Option<chrono::NaiveDate>,
}

fn parse_inventory_with(
    format: &ImportFormat,
    vendor: &VendorId,
    bytes: &[u8],
    window: Option<DateWindow>,
) -> Result<ImportParse, ImportError> {
    format.validate()?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut out = ImportParse::default();
    let mut all = lines(bytes).filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace));
    let (_, header) = all.next().ok_or(ImportError::NoHeader)?;
    let header = decode(format.encoding, header)
        .ok_or(ImportError::HeaderEncoding(encoding_name(format.encoding)))?;
    let mut reader = csv_reader(format);
    let names: Vec<String> = reader_record(&mut reader, &header)
        .map(|r| r.iter().map(|c| c.trim().to_owned()).collect())
        .ok_or(ImportError::NoHeader)?;
    let col = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| ImportError::MissingColumn(name.to_owned()))
    };
    let c = &format.columns;
    let idx = Indexes {
        device: col(&c.device)?,
        kind: col(&c.kind)?,
        municipality: col(&c.municipality)?,
        recipient: c.recipient.as_deref().map(col).transpose()?,
        status: c.status.as_deref().map(col).transpose()?,
        installed: c.installed.as_deref().map(col).transpose()?,
    };
    let in_service: Vec<String> = format
        .in_service_values
        .iter()
        .map(|v| v.trim().to_lowercase())
        .collect();
    let mut seen: HashSet<&[u8]> = HashSet::new();
    for (line, raw) in all {
        if !seen.insert(raw) {
            out.duplicates.push(line);
            continue;
        }
        // Kept and shown: a header or an echoed cell may hold a national identity number.
        let error = |column: Option<&str>, why: String| RowError {
            line,
            column: column.map(|c| nin::mask_str(c).0),
            why: nin::mask_str(&why).0,
        };
        let Some(text) = decode(format.encoding, raw) else {
            out.errors.push(error(
                None,
                format!(
                    "not valid {} (the format declares that encoding)",
                    encoding_name(format.encoding)
                ),
            ));
            continue;
        };
        let Some(cells) = reader_record(&mut reader, &text) else {
            out.errors
                .push(error(None, "not a CSV line (unbalanced quotes?)".into()));
            continue;
        };
        if cells.len() != names.len() {
            out.errors.push(error(
                None,
                format!("{} cells, the header has {}", cells.len(), names.len()),
            ));
            continue;
        }
        match row(format, &idx, &in_service, vendor, &cells, window) {
            Ok(listing) => out.rows.push((line, listing)),
            Err((i, why)) => out.errors.push(error(Some(&names[i]), why)),
        }
    }
    Ok(out)
}

/// Hex SHA-256 of a whole file (as `sha256sum` prints it): the identity of an import.
pub fn file_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

struct Indexes {
    device: usize,
    kind: usize,
    municipality: usize,
    recipient: Option<usize>,
    status: Option<usize>,
    installed: Option<usize>,
}

fn csv_reader(format: &ImportFormat) -> csv::ReaderBuilder {
    let mut b = csv::ReaderBuilder::new();
    b.has_headers(false)
        .flexible(true)
        .delimiter(format.delimiter as u8)
        // One reader per line (errors are per line): the default 8 KiB buffer, allocated and
        // zeroed for every line, dominated a 500 000-row import.
        .buffer_capacity(256);
    b
}

/// Parses one physical line as one record (a quoted newline is not supported: lines are the
/// unit errors are reported in).
fn reader_record(builder: &mut csv::ReaderBuilder, line: &str) -> Option<Vec<String>> {
    let mut reader = builder.from_reader(line.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => {
            let cells = record.iter().map(str::to_owned).collect();
            // A second record means a quote swallowed the delimiter structure.
            let mut rest = csv::StringRecord::new();
            match reader.read_record(&mut rest) {
                Ok(false) => Some(cells),
                _ => None,
            }
        }
        _ => None,
    }
}

/// One data row, or the index of the offending cell and why.
fn row(
    format: &ImportFormat,
    idx: &Indexes,
    in_service_values: &[String],
    vendor: &VendorId,
    cells: &[String],
    window: Option<DateWindow>,
) -> Result<Listing, (usize, String)> {
    // Refused before anything else, and never echoed: such a number must not be stored. Any
    // cell, read columns or not, in any shape `nin` reads (inside text, with separators…).
    let refused = || "holds a national identity number; the row is refused".to_owned();
    if let Some(i) = cells.iter().position(|c| nin::find(c)) {
        return Err((i, refused()));
    }
    let cell = |i: usize| cells[i].trim();
    let optional = |i: usize| Some(cell(i)).filter(|c| !c.is_empty());
    // The device-id rules may join digit groups (`remove = " -"`): checked once applied too.
    let device_text = format.device_id.apply(&cells[idx.device]);
    if nin::find(&device_text) {
        return Err((idx.device, refused()));
    }
    let device = DeviceId::parse(&device_text).map_err(|e| (idx.device, e.to_string()))?;
    let kind = optional(idx.kind)
        .map(|code| {
            format
                .kind_codes
                .get(code)
                .copied()
                .ok_or_else(|| (idx.kind, format!("unknown product code {code:?}")))
        })
        .transpose()?;
    let municipality = optional(idx.municipality)
        .map(|m| MunicipalityCode::parse(m).map_err(|e| (idx.municipality, e.to_string())))
        .transpose()?;
    let recipient = idx
        .recipient
        .and_then(optional)
        .map(|r| RecipientRef::parse(r).map_err(|e| (idx.recipient.unwrap_or(0), e.to_string())))
        .transpose()?;
    if let Some(i) = idx.installed
        && let Some(date) = optional(i)
    {
        let Ok(day) = chrono::NaiveDate::parse_from_str(date, &format.date_format) else {
            return Err((
                i,
                format!("date {date:?} does not match {:?}", format.date_format),
            ));
        };
        if let Some(w) = window
            && (day < w.earliest || w.latest.is_some_and(|latest| day > latest))
        {
            return Err((
                i,
                format!(
                    "date {date:?} is implausible: before {} (ingest.earliest_event) or in the future",
                    w.earliest
                ),
            ));
        }
    }
    let in_service = idx.status.is_none_or(|i| {
        let v = cell(i).to_lowercase();
        in_service_values.contains(&v)
    });
    Ok(Listing {
        vendor: vendor.clone(),
        device,
        kind,
        municipality,
        recipient,
        in_service,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEPRO: &str = include_str!("../../../config/imports/hepro.example.toml");
    const ATEA: &str = include_str!("../../../config/imports/atea.example.toml");
    const HEPRO_CSV: &[u8] = include_bytes!("../../../config/imports/hepro.example.csv");
    const ATEA_CSV: &[u8] = include_bytes!("../../../config/imports/atea.example.csv");

    fn format(toml_text: &str) -> ImportFormat {
        let f: ImportFormat = toml::from_str(toml_text).expect("format");
        f.validate().expect("valid");
        f
    }

    fn vendor(v: &str) -> VendorId {
        VendorId::parse(v).expect("vendor")
    }

    fn summary(p: &ImportParse) -> Vec<String> {
        p.rows
            .iter()
            .map(|(line, l)| {
                format!(
                    "{line} {} {} {} {} {}",
                    l.device,
                    l.kind.map_or("-", |k| k.id()),
                    l.municipality.as_ref().map_or("-", |m| m.as_str()),
                    l.recipient.as_ref().map_or("-", |r| r.as_str()),
                    l.in_service
                )
            })
            .collect()
    }

    #[test]
    fn the_windows_1252_example_is_decoded_and_its_broken_rows_reported() {
        let p = parse_inventory(&format(HEPRO), &vendor("hepro"), HEPRO_CSV).expect("parse");
        assert_eq!(
            summary(&p),
            [
                "2 H1002 safety_alarm 3324 r-pend true",
                "3 H1003 safety_alarm 3328 r-dbl true",
                "4 H1004 safety_alarm 3328 r-ovl true",
                "5 H1001 safety_alarm 3324 r-mig false",
                "6 H1006 safety_alarm 3324 r-move true",
                "7 H1007 medication_support 3330 r-rep false",
                "8 H1009 safety_alarm 3320 - true",
            ]
        );
        assert_eq!(p.duplicates, [9]);
        let errors: Vec<(u64, Option<&str>)> = p
            .errors
            .iter()
            .map(|e| (e.line, e.column.as_deref()))
            .collect();
        assert_eq!(
            errors,
            [
                (10, Some("Produkt")),
                (11, Some("Kommunenr")),
                (12, Some("Brukerref")),
                (13, Some("Installert")),
                (14, None),
            ]
        );
        // The refusal never repeats the number.
        assert!(p.errors.iter().all(|e| !e.why.contains("01019012480")));
    }

    #[test]
    fn windows_1252_letters_survive_and_utf8_would_misread_them() {
        let f = ImportFormat {
            columns: Columns {
                device: "Serienr".into(),
                kind: "Produkt".into(),
                municipality: "Kommunenr".into(),
                recipient: Some("Brukerref".into()),
                status: None,
                installed: None,
            },
            ..format(HEPRO)
        };
        let file = "Serienr;Produkt;Kommunenr;Brukerref\nX1;TA;3328;bruker-æøå\n";
        let bytes: Vec<u8> = encoding_rs::WINDOWS_1252.encode(file).0.into_owned();
        assert_eq!(bytes.iter().filter(|&&b| b >= 0x80).count(), 3);
        let p = parse_inventory(&f, &vendor("hepro"), &bytes).expect("parse");
        assert_eq!(
            p.rows[0].1.recipient.as_ref().map(|r| r.as_str()),
            Some("bruker-æøå")
        );
        let utf8 = ImportFormat {
            encoding: Encoding::Utf8,
            ..f
        };
        let p = parse_inventory(&utf8, &vendor("hepro"), &bytes).expect("parse");
        assert!(p.rows.is_empty());
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].line, 2);
        assert!(p.errors[0].why.contains("UTF-8"), "{:?}", p.errors);
    }

    #[test]
    fn the_utf8_example_reports_its_invalid_byte_with_the_line() {
        let p = parse_inventory(&format(ATEA), &vendor("atea"), ATEA_CSV).expect("parse");
        assert_eq!(
            summary(&p),
            [
                "2 A2001 safety_alarm 3324 r-mig true",
                "3 A2003 safety_alarm 3328 r-dbl true",
                "4 A2005 safety_alarm 3320 r-new true",
                "5 A2006 safety_alarm 3328 r-move true",
                "6 A2007 medication_support 3330 r-rep true",
                "7 A2008 medication_support 3330 r-rep true",
                "9 A2010 tracking 3326 - false",
            ]
        );
        assert_eq!(p.errors.len(), 1);
        assert_eq!((p.errors[0].line, p.errors[0].column.as_deref()), (8, None));
        assert!(p.duplicates.is_empty());
    }

    #[test]
    fn duplicates_broken_rows_and_missing_columns() {
        let f = format(ATEA);
        let v = vendor("atea");
        let file = "serial,category,municipality_no,client_ref,state,installed_on,site\n\
                    A1,alarm,3324,,active,2025-01-01,x\n\
                    A1,alarm,3324,,active,2025-01-01,x\n\
                    \"A2,alarm,3324,,active,2025-01-01,x\n\
                    A3,alarm,3324,,active\n\
                    A1,alarm,3324,,inactive,2025-01-01,x\n";
        let p = parse_inventory(&f, &v, file.as_bytes()).expect("parse");
        assert_eq!(
            summary(&p),
            [
                "2 A1 safety_alarm 3324 - true",
                "6 A1 safety_alarm 3324 - false"
            ]
        );
        assert_eq!(p.duplicates, [3]);
        assert_eq!(p.errors.iter().map(|e| e.line).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(
            parse_inventory(&f, &v, b"serial,category\nA1,alarm\n"),
            Err(ImportError::MissingColumn("municipality_no".into()))
        );
        assert_eq!(parse_inventory(&f, &v, b"\n\n"), Err(ImportError::NoHeader));
        let bad = ImportFormat {
            time_zone: "Mars/Olympus".into(),
            ..f
        };
        assert!(matches!(bad.validate(), Err(ImportError::Format(_))));
    }

    #[test]
    fn rows_outside_the_region_become_errors_in_line_order() {
        let registry = crate::Registry::new(
            crate::municipality::parse_csv("code,name,population\n3328,Ål,4700\n").expect("csv"),
        )
        .expect("registry");
        let listing = |m: Option<&str>| Listing {
            vendor: crate::VendorId::parse("hepro").expect("vendor"),
            device: crate::DeviceId::parse("D1").expect("device"),
            kind: None,
            municipality: m.map(|m| MunicipalityCode::parse(m).expect("code")),
            recipient: None,
            in_service: true,
        };
        let mut parsed = ImportParse {
            rows: vec![
                (2, listing(Some("3328"))),
                (3, listing(Some("9999"))),
                (5, listing(None)),
            ],
            errors: vec![RowError {
                line: 4,
                column: None,
                why: "bad".into(),
            }],
            duplicates: vec![],
        };
        parsed.reject_unknown_municipalities(&registry, "Kommunenr");
        assert_eq!(
            parsed.rows.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            [2, 5]
        );
        assert_eq!(
            parsed.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            [3, 4]
        );
        assert_eq!(parsed.errors[0].column.as_deref(), Some("Kommunenr"));
        assert!(parsed.errors[0].why.contains("9999"));
    }

    #[test]
    fn implausible_installed_dates_are_row_errors_when_a_window_is_given() {
        let f = format(ATEA);
        let v = vendor("atea");
        let file = "serial,category,municipality_no,client_ref,state,installed_on,site\n\
                    A1,alarm,3324,,active,2025-01-01,x\n\
                    A2,alarm,3324,,active,0000-01-01,x\n\
                    A3,alarm,3324,,active,9999-12-31,x\n\
                    A4,alarm,3324,,active,2026-03-13,x\n\
                    A5,alarm,3324,,active,2026-03-11,x\n\
                    A6,alarm,3324,,active,1999-12-31,x\n\
                    A7,alarm,3324,,active,2000-01-01,x\n";
        let now = "2026-03-10T12:00:00Z".parse().expect("now");
        let times = crate::event::PlausibleTimes::default();
        let p = parse_inventory_at(&f, &v, file.as_bytes(), &times, now).expect("parse");
        let kept: Vec<u64> = p.rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(kept, [2, 6, 8]);
        assert_eq!(
            p.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            [3, 4, 5, 7]
        );
        assert!(p.errors.iter().all(|e| {
            e.column.as_deref() == Some("installed_on") && e.why.contains("implausible")
        }));
        // Without a window, as before: every well-formed date is read.
        let all = parse_inventory(&f, &v, file.as_bytes()).expect("parse");
        assert_eq!(all.rows.len(), 7);
    }
}
