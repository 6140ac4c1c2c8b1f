//! Inventory exports of the simulated region, as the vendors' platforms would write them.
//!
//! Each vendor's export lists the units it has on its books at the start of a day (Europe/Oslo),
//! written in the vendor's [`ImportFormat`] (delimiter, encoding, column names, product codes,
//! status values, date format, the serial as the vendor writes it). It agrees with the
//! simulated events except for a small, seeded set of [`Discrepancy`]s of the kinds a vendor
//! transition really has: a unit that moved to the new vendor still billed by the old one, a
//! returned unit never taken off the books, a working unit missing or listed as returned, a unit
//! registered but never installed, and rows a reader cannot use (a placeholder date, a product
//! vft does not track, a line exported twice). What was planted, and where, is returned with
//! the file, so tests can check that reconciliation finds each one.

use crate::generate::{HEPRO, VENDORS};
use crate::{Plan, SimError, Simulation};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use vft_domain::import::{Encoding, ImportFormat};
use vft_domain::reconcile::ReconcileClass;
use vft_domain::{DeviceId, EventType, MunicipalityCode, RecipientRef, TechnologyKind, VendorId};

/// A unit picked as reporting has contact this recently before the end of the export's day,
/// and one picked as silent has none for this long: the flags then hold for any
/// `silent_after_days` between the two.
const REPORTING_WITHIN: i64 = 2;
const SILENT_FOR: i64 = 30;
/// Units out of service this recently are still in the export, with an out-of-service status.
const RECENTLY_OUT_DAYS: i64 = 60;
/// Share of rows with the serial in lower case (or with a trailing blank) where the format's
/// device-id rules undo it.
const SLOPPY_SERIALS: f64 = 0.1;

/// Something in an export that does not agree with the events, or cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Discrepancy {
    /// A unit that moved to the other vendor (its recipient has a unit of the same type there)
    /// and is still listed in service: the old vendor still bills it.
    MovedStillListed,
    /// A unit taken out of service (no successor) that is still listed in service.
    ReturnedStillListed,
    /// A unit listed in service that was never installed: no event has ever named it.
    NeverInstalled,
    /// A unit in service and reporting that the export leaves out.
    Missing,
    /// A unit in service and reporting that the export lists as out of service.
    ListedAsReturned,
    /// A row whose installed date is a placeholder (`00.00.0000`), not a date: the row cannot
    /// be read, so its unit (in service and reporting) is not listed.
    BadDate,
    /// A row with a product code the format does not know (a product vft does not track).
    UnknownProductCode,
    /// A line exported twice (kept once by the import).
    DuplicateLine,
}

impl Discrepancy {
    /// The reconciliation flag this raises on its unit at the end of the export's day (with
    /// the export as that vendor's latest), if any.
    pub fn flag(self) -> Option<ReconcileClass> {
        match self {
            Self::MovedStillListed | Self::ReturnedStillListed | Self::NeverInstalled => {
                Some(ReconcileClass::ListedSilent)
            }
            Self::Missing | Self::ListedAsReturned | Self::BadDate => {
                Some(ReconcileClass::ReportingUnlisted)
            }
            Self::UnknownProductCode | Self::DuplicateLine => None,
        }
    }

    /// Whether the import reports the row as unreadable.
    pub fn is_row_error(self) -> bool {
        matches!(self, Self::BadDate | Self::UnknownProductCode)
    }
}

/// One planted discrepancy: its unit (the id as vft names it, after the format's device-id
/// rules) and, when it is in the file, its line (1 is the header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planted {
    pub discrepancy: Discrepancy,
    pub device: DeviceId,
    pub line: Option<u64>,
}

/// One vendor's inventory export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryExport {
    pub vendor: VendorId,
    /// The day it was taken: it lists the units on the vendor's books at the start of that day
    /// (Europe/Oslo), as vft reads an export's `as_of`.
    pub as_of: NaiveDate,
    /// The file, encoded as the format says.
    pub bytes: Vec<u8>,
    /// Data lines, the duplicate and unreadable ones included.
    pub lines: usize,
    pub planted: Vec<Planted>,
}

/// How many of each discrepancy to plant in the old and the new vendor's export. A kind that
/// has no candidate in the simulation (or that the format cannot express) is left out.
const OLD_VENDOR: &[(Discrepancy, usize)] = &[
    (Discrepancy::MovedStillListed, 2),
    (Discrepancy::ReturnedStillListed, 1),
    (Discrepancy::Missing, 2),
    (Discrepancy::ListedAsReturned, 1),
    (Discrepancy::BadDate, 1),
    (Discrepancy::UnknownProductCode, 1),
    (Discrepancy::DuplicateLine, 1),
];
const NEW_VENDOR: &[(Discrepancy, usize)] = &[
    (Discrepancy::Missing, 1),
    (Discrepancy::NeverInstalled, 1),
    (Discrepancy::UnknownProductCode, 1),
];

/// The exports of every simulated vendor that has a format in `formats` (keyed by vendor id,
/// as `[imports.<vendor>]` in vft's configuration), taken on `as_of`. Deterministic for the
/// plan's seed.
pub fn inventory_exports(
    sim: &Simulation,
    plan: &Plan,
    formats: &BTreeMap<String, ImportFormat>,
    as_of: NaiveDate,
) -> Result<Vec<InventoryExport>, SimError> {
    VENDORS
        .iter()
        .filter_map(|(vendor, _)| formats.get(*vendor).map(|f| (*vendor, f)))
        .map(|(vendor, format)| inventory_export(sim, plan, vendor, format, as_of))
        .collect()
}

/// The last day of the simulated months: the natural date of the exports.
pub fn last_simulated_day(sim: &Simulation) -> Option<NaiveDate> {
    let end = sim.months.last()?.end_exclusive();
    Some(vft_domain::month::oslo_date(end - Duration::seconds(1)))
}

/// One simulated vendor's export in `format`, taken on `as_of`.
pub fn inventory_export(
    sim: &Simulation,
    plan: &Plan,
    vendor: &str,
    format: &ImportFormat,
    as_of: NaiveDate,
) -> Result<InventoryExport, SimError> {
    let index = VENDORS
        .iter()
        .position(|(v, _)| *v == vendor)
        .ok_or_else(|| SimError::Plan(format!("{vendor} is not a simulated vendor")))?;
    format
        .validate()
        .map_err(|e| SimError::Plan(format!("export format of {vendor}: {e}")))?;
    let vendor_id = VendorId::parse(vendor)?;
    let start = vft_domain::month::oslo_midnight(as_of);
    let day_end = vft_domain::month::oslo_end_of_day(as_of)
        .ok_or_else(|| SimError::Plan(format!("{as_of} is out of range")))?;
    let units = units(sim, day_end);
    let rng = StdRng::seed_from_u64(plan.seed ^ 0xe3b0_c442 ^ ((index as u64 + 1) << 40));
    let mut writer = Writer::new(plan, vendor, format, rng);
    let plantings = if index == HEPRO {
        OLD_VENDOR
    } else {
        NEW_VENDOR
    };

    let ours: Vec<&Unit> = units.iter().filter(|u| u.vendor == index).collect();
    let in_service =
        |u: &Unit, t: DateTime<Utc>| u.installed <= t && u.decommissioned.is_none_or(|d| d > t);
    let reporting = |u: &Unit| {
        in_service(u, start)
            && in_service(u, day_end)
            && u.last_contact
                .is_some_and(|c| c > day_end - Duration::days(REPORTING_WITHIN))
    };
    let silent = |u: &Unit| {
        u.decommissioned.is_some_and(|d| d <= start)
            && u.last_contact
                .is_none_or(|c| c <= day_end - Duration::days(SILENT_FOR))
    };
    // Services in service at the end of the day on the other vendor: (recipient, kind).
    let elsewhere: BTreeSet<(&RecipientRef, TechnologyKind)> = units
        .iter()
        .filter(|u| u.vendor != index && in_service(u, day_end))
        .filter_map(|u| Some((u.recipient.as_ref()?, u.kind)))
        .collect();
    let anywhere: BTreeSet<(&RecipientRef, TechnologyKind)> = units
        .iter()
        .filter(|u| in_service(u, day_end))
        .filter_map(|u| Some((u.recipient.as_ref()?, u.kind)))
        .collect();
    let moved = |u: &Unit| {
        u.recipient
            .as_ref()
            .is_some_and(|r| elsewhere.contains(&(r, u.kind)))
    };
    let successor = |u: &Unit| {
        u.recipient
            .as_ref()
            .is_some_and(|r| anywhere.contains(&(r, u.kind)))
    };

    let mut used: BTreeSet<&DeviceId> = BTreeSet::new();
    let mut picks: Vec<(Discrepancy, &Unit)> = Vec::new();
    let mut fictional: Vec<Discrepancy> = Vec::new();
    let mut duplicates = 0;
    for &(what, n) in plantings {
        let candidates: Vec<&Unit> = match what {
            Discrepancy::MovedStillListed => ours
                .iter()
                .copied()
                .filter(|u| silent(u) && moved(u))
                .collect(),
            Discrepancy::ReturnedStillListed => ours
                .iter()
                .copied()
                .filter(|u| silent(u) && !successor(u))
                .collect(),
            Discrepancy::Missing => {
                // Preferably one installed in the last weeks, not registered yet.
                let recent: Vec<&Unit> = ours
                    .iter()
                    .copied()
                    .filter(|u| reporting(u) && u.installed > start - Duration::days(21))
                    .collect();
                if recent.len() >= n {
                    recent
                } else {
                    ours.iter().copied().filter(|u| reporting(u)).collect()
                }
            }
            Discrepancy::ListedAsReturned if writer.out_of_service.is_some() => {
                ours.iter().copied().filter(|u| reporting(u)).collect()
            }
            Discrepancy::BadDate if writer.bad_date().is_some() => {
                ours.iter().copied().filter(|u| reporting(u)).collect()
            }
            Discrepancy::NeverInstalled | Discrepancy::UnknownProductCode => {
                fictional.extend(std::iter::repeat_n(what, n));
                continue;
            }
            Discrepancy::DuplicateLine => {
                duplicates += n;
                continue;
            }
            Discrepancy::ListedAsReturned | Discrepancy::BadDate => continue,
        };
        let candidates: Vec<&Unit> = candidates
            .into_iter()
            .filter(|u| !used.contains(&u.device))
            .collect();
        for u in candidates.choose_multiple(&mut writer.rng, n) {
            used.insert(&u.device);
            picks.push((what, u));
        }
    }
    let planted_as: BTreeMap<&DeviceId, Discrepancy> =
        picks.iter().map(|(what, u)| (&u.device, *what)).collect();

    // The export: what is on the books at the start of the day, recently ended units with an
    // out-of-service status, and the planted discrepancies.
    let mut rows: Vec<Row> = Vec::new();
    for u in &ours {
        let planted = planted_as.get(&u.device).copied();
        let row = match planted {
            Some(Discrepancy::Missing) => None,
            Some(Discrepancy::MovedStillListed | Discrepancy::ReturnedStillListed) => {
                Some(writer.row(u, true))
            }
            Some(Discrepancy::ListedAsReturned) => Some(writer.row(u, false)),
            _ if in_service(u, start) => Some(writer.row(u, true)),
            _ if u
                .decommissioned
                .is_some_and(|d| d <= start && d > start - Duration::days(RECENTLY_OUT_DAYS))
                && writer.out_of_service.is_some() =>
            {
                Some(writer.row(u, false))
            }
            _ => None,
        };
        if let Some(mut row) = row {
            if planted == Some(Discrepancy::BadDate)
                && let Some(bad) = writer.bad_date()
            {
                row.installed = bad;
            }
            row.planted = planted;
            rows.push(row);
        }
    }
    rows.sort_by(|a, b| a.device.cmp(&b.device));
    for what in fictional {
        let row = match what {
            Discrepancy::NeverInstalled => writer.never_installed(&units, index),
            _ => writer.unknown_product(&units, index),
        };
        if let Some(mut row) = row {
            row.planted = Some(what);
            let at = writer.rng.random_range(0..=rows.len());
            rows.insert(at, row);
        }
    }
    let ordinary: Vec<usize> = (0..rows.len())
        .filter(|i| rows[*i].planted.is_none() && rows[*i].in_service)
        .collect();
    for &i in ordinary
        .choose_multiple(&mut writer.rng, duplicates)
        .collect::<Vec<_>>()
        .iter()
    {
        rows[*i].duplicated = true;
    }

    // Render; a duplicated line comes again a few lines further on.
    let mut lines: Vec<(String, Option<Planted>)> = Vec::new();
    let mut pending_copies: Vec<(usize, String, DeviceId)> = Vec::new();
    for row in &rows {
        let text = writer.render(row);
        let planted = row.planted.map(|discrepancy| Planted {
            discrepancy,
            device: row.device.clone(),
            line: None,
        });
        lines.push((text.clone(), planted));
        if row.duplicated {
            let after = lines.len() + writer.rng.random_range(0..5);
            pending_copies.push((after, text, row.device.clone()));
        }
        pending_copies.retain(|(after, text, device)| {
            if *after > lines.len() {
                return true;
            }
            lines.push((
                text.clone(),
                Some(Planted {
                    discrepancy: Discrepancy::DuplicateLine,
                    device: device.clone(),
                    line: None,
                }),
            ));
            false
        });
    }
    for (_, text, device) in pending_copies {
        lines.push((
            text,
            Some(Planted {
                discrepancy: Discrepancy::DuplicateLine,
                device,
                line: None,
            }),
        ));
    }

    let mut text = writer.header();
    let mut planted = Vec::new();
    for (i, (line, p)) in lines.iter().enumerate() {
        text.push_str(line);
        text.push_str(writer.newline);
        if let Some(mut p) = p.clone() {
            p.line = Some(i as u64 + 2);
            planted.push(p);
        }
    }
    for (what, u) in &picks {
        if *what == Discrepancy::Missing {
            planted.push(Planted {
                discrepancy: *what,
                device: u.device.clone(),
                line: None,
            });
        }
    }
    planted.sort_by_key(|p| (p.discrepancy, p.line, p.device.clone()));
    Ok(InventoryExport {
        vendor: vendor_id,
        as_of,
        bytes: encode(format.encoding, &text),
        lines: lines.len(),
        planted,
    })
}

fn encode(encoding: Encoding, text: &str) -> Vec<u8> {
    match encoding {
        Encoding::Utf8 => text.as_bytes().to_vec(),
        Encoding::Windows1252 => encoding_rs::WINDOWS_1252.encode(text).0.into_owned(),
    }
}

/// A simulated unit as the events tell it.
struct Unit {
    vendor: usize,
    device: DeviceId,
    kind: TechnologyKind,
    municipality: MunicipalityCode,
    recipient: Option<RecipientRef>,
    installed: DateTime<Utc>,
    decommissioned: Option<DateTime<Utc>>,
    /// Latest event other than a lifecycle event at or before the end of the export's day.
    last_contact: Option<DateTime<Utc>>,
}

/// Every simulated unit, in event order (the simulation installs each unit once).
fn units(sim: &Simulation, until: DateTime<Utc>) -> Vec<Unit> {
    let mut index: BTreeMap<(&VendorId, &DeviceId), usize> = BTreeMap::new();
    let mut units: Vec<Unit> = Vec::new();
    for e in &sim.events {
        let Some(vendor) = VENDORS.iter().position(|(v, _)| *v == e.vendor.as_str()) else {
            continue;
        };
        let ts = e.ts_utc();
        match e.event_type {
            EventType::Installed => {
                let Some(kind) = e.kind else { continue };
                index.insert((&e.vendor, &e.device), units.len());
                units.push(Unit {
                    vendor,
                    device: e.device.clone(),
                    kind,
                    municipality: e.municipality.clone(),
                    recipient: e.recipient.clone(),
                    installed: ts,
                    decommissioned: None,
                    last_contact: None,
                });
            }
            EventType::Decommissioned => {
                if let Some(&i) = index.get(&(&e.vendor, &e.device)) {
                    units[i].decommissioned = Some(ts);
                }
            }
            _ if ts <= until => {
                if let Some(&i) = index.get(&(&e.vendor, &e.device)) {
                    let last = &mut units[i].last_contact;
                    *last = (*last).max(Some(ts));
                }
            }
            _ => {}
        }
    }
    units
}

/// One line of an export before it is written.
struct Row {
    device: DeviceId,
    serial: String,
    kind_code: String,
    municipality: String,
    place: String,
    recipient: String,
    in_service: bool,
    status: String,
    installed: String,
    note: String,
    planted: Option<Discrepancy>,
    duplicated: bool,
}

/// The vendor's way of writing an export: the format plus what the format does not say
/// (columns vft ignores, the out-of-service status, line ends).
struct Writer<'a> {
    rng: StdRng,
    format: &'a ImportFormat,
    vendor_prefix: &'static str,
    names: BTreeMap<MunicipalityCode, String>,
    /// Status of a unit off the books but still exported; `None` without a status column.
    out_of_service: Option<String>,
    /// Header of the municipality-name column, if the vendor exports one, and whether it is
    /// the last column (else it follows the municipality number).
    place_column: Option<String>,
    place_last: bool,
    /// Header of a free-text column, if the vendor exports one, and the notes it holds.
    note_column: Option<String>,
    notes: &'static [&'static str],
    /// Products vft does not track: (the vendor's product code, its serial's type code).
    unknown_codes: &'static [(&'static str, &'static str)],
    newline: &'static str,
    codes: BTreeMap<TechnologyKind, String>,
}

/// Free-text notes as a municipality's staff write them in Hepro's portal (Nynorsk, as in
/// Hallingdal).
const HEPRO_NOTES: &[&str] = &[
    "Nøkkelboks ved inngangsdøra",
    "Brukar har hund",
    "Ring pårørande før besøk",
    "Flytta til omsorgsbustad",
    "Kontroll av batteri ved neste besøk",
];

impl<'a> Writer<'a> {
    fn new(plan: &Plan, vendor: &str, format: &'a ImportFormat, rng: StdRng) -> Self {
        let used: BTreeSet<&str> = [
            Some(format.columns.device.as_str()),
            Some(format.columns.kind.as_str()),
            Some(format.columns.municipality.as_str()),
            format.columns.recipient.as_deref(),
            format.columns.status.as_deref(),
            format.columns.installed.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let free = |name: &str| (!used.contains(name)).then(|| name.to_owned());
        // Hepro: Windows line ends, the municipality's name and a free-text note (an epilepsy
        // alarm, "EP", is a Hepro product vft does not track); Atea: the site.
        let (place_column, place_last) = match vendor {
            "hepro" => (free("Kommune"), false),
            "atea" => (free("site"), true),
            _ => (None, false),
        };
        let (note_column, out_value, newline, notes, unknown_codes) = match vendor {
            "hepro" => (
                free("Merknad"),
                "Returnert",
                "\r\n",
                HEPRO_NOTES,
                &[("EP", "EP"), ("SENSOR", "SN")][..],
            ),
            "atea" => (
                None,
                "inactive",
                "\n",
                &[][..],
                &[("bed_sensor", "BS"), ("sensor", "SN")][..],
            ),
            _ => (
                None,
                "out of service",
                "\n",
                &[][..],
                &[("unknown", "XX")][..],
            ),
        };
        let is_in_service_value = |v: &str| {
            format
                .in_service_values
                .iter()
                .any(|s| s.trim().eq_ignore_ascii_case(v))
        };
        let out_of_service = format.columns.status.as_ref().map(|_| {
            if is_in_service_value(out_value) {
                "out of service".to_owned()
            } else {
                out_value.to_owned()
            }
        });
        // The first code (in the format's order) of each kind.
        let mut codes = BTreeMap::new();
        for (code, kind) in &format.kind_codes {
            codes.entry(*kind).or_insert_with(|| code.clone());
        }
        Self {
            rng,
            format,
            vendor_prefix: VENDORS
                .iter()
                .find(|(v, _)| *v == vendor)
                .map_or("", |(_, p)| p),
            names: plan
                .municipalities
                .iter()
                .map(|m| (m.code.clone(), m.name.clone()))
                .collect(),
            out_of_service,
            place_column,
            place_last,
            note_column,
            notes,
            unknown_codes,
            newline,
            codes,
        }
    }

    fn header(&self) -> String {
        let c = &self.format.columns;
        let names = self.columns([
            Some(c.device.clone()),
            Some(c.kind.clone()),
            Some(c.municipality.clone()),
            self.place_column.clone(),
            c.recipient.clone(),
            c.status.clone(),
            c.installed.clone(),
            self.note_column.clone(),
        ]);
        let mut line = self.join(names);
        line.push_str(self.newline);
        line
    }

    fn render(&self, row: &Row) -> String {
        let c = &self.format.columns;
        self.join(self.columns([
            Some(row.serial.clone()),
            Some(row.kind_code.clone()),
            Some(row.municipality.clone()),
            self.place_column.as_ref().map(|_| row.place.clone()),
            c.recipient.as_ref().map(|_| row.recipient.clone()),
            c.status.as_ref().map(|_| row.status.clone()),
            c.installed.as_ref().map(|_| row.installed.clone()),
            self.note_column.as_ref().map(|_| row.note.clone()),
        ]))
    }

    /// The cells of the columns the vendor writes, in its order, from (device, kind,
    /// municipality, place, recipient, status, installed, note).
    fn columns(&self, mut cells: [Option<String>; 8]) -> Vec<String> {
        if self.place_last {
            cells[3..].rotate_left(1);
        }
        cells.into_iter().flatten().collect()
    }

    fn join(&self, cells: Vec<String>) -> String {
        let d = self.format.delimiter;
        cells
            .into_iter()
            .map(|c| {
                if c.contains([d, '"', '\n', '\r']) {
                    format!("\"{}\"", c.replace('"', "\"\""))
                } else {
                    c
                }
            })
            .collect::<Vec<_>>()
            .join(&d.to_string())
    }

    /// The serial as the vendor writes it: what the format's device-id rules turn into `id`,
    /// now and then in lower case or with a trailing blank.
    fn serial(&mut self, id: &DeviceId) -> String {
        let rules = &self.format.device_id;
        let plain = match &rules.strip_prefix {
            Some(p) => format!("{p}{id}"),
            None => id.to_string(),
        };
        let sloppy = if self.rng.random_bool(SLOPPY_SERIALS) {
            if self.rng.random_bool(0.7) {
                plain.to_lowercase()
            } else {
                format!("{plain} ")
            }
        } else {
            plain.clone()
        };
        if rules.apply(&sloppy) == id.as_str() {
            sloppy
        } else {
            plain
        }
    }

    fn date(&self, t: DateTime<Utc>) -> String {
        vft_domain::month::oslo_date(t)
            .format(&self.format.date_format)
            .to_string()
    }

    /// A placeholder some systems write for an unknown date (`00.00.0000`, `0000-00-00`):
    /// the format's pattern with zeros, if that indeed does not read as a date.
    fn bad_date(&self) -> Option<String> {
        self.format.columns.installed.as_ref()?;
        let some_day = NaiveDate::from_ymd_opt(2025, 12, 31)?;
        let zeros: String = some_day
            .format(&self.format.date_format)
            .to_string()
            .chars()
            .map(|c| if c.is_ascii_digit() { '0' } else { c })
            .collect();
        NaiveDate::parse_from_str(&zeros, &self.format.date_format)
            .is_err()
            .then_some(zeros)
    }

    fn row(&mut self, u: &Unit, in_service: bool) -> Row {
        let note = match self.notes.choose(&mut self.rng) {
            Some(n) if self.rng.random_bool(0.05) => (*n).to_owned(),
            _ => String::new(),
        };
        Row {
            device: u.device.clone(),
            serial: self.serial(&u.device),
            kind_code: self.codes.get(&u.kind).cloned().unwrap_or_default(),
            municipality: u.municipality.to_string(),
            place: self.names.get(&u.municipality).cloned().unwrap_or_default(),
            recipient: u
                .recipient
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            in_service,
            status: if in_service {
                self.format.in_service_values.first().cloned()
            } else {
                self.out_of_service.clone()
            }
            .unwrap_or_default(),
            installed: self.date(u.installed),
            note,
            planted: None,
            duplicated: false,
        }
    }

    /// A unit no event names and no recipient has: registered in the vendor's portal in one of
    /// its municipalities, never installed.
    fn never_installed(&mut self, units: &[Unit], vendor: usize) -> Option<Row> {
        let ours: Vec<&Unit> = units.iter().filter(|u| u.vendor == vendor).collect();
        let template = *ours.choose(&mut self.rng)?;
        let id = unused_id(units, self.vendor_prefix, "SA")?;
        let mut row = self.row(template, true);
        row.kind_code = self
            .codes
            .get(&TechnologyKind::SafetyAlarm)
            .cloned()
            .unwrap_or_default();
        row.serial = self.serial(&id);
        row.device = id;
        row.recipient = String::new();
        row.installed = String::new();
        Some(row)
    }

    /// A product vft does not track (an epilepsy sensor, a bed sensor) under a code the format
    /// does not know.
    fn unknown_product(&mut self, units: &[Unit], vendor: usize) -> Option<Row> {
        let (code, serial_code) = self
            .unknown_codes
            .iter()
            .find(|(c, _)| !self.format.kind_codes.contains_key(*c))?;
        let ours: Vec<&Unit> = units.iter().filter(|u| u.vendor == vendor).collect();
        let template = *ours.choose(&mut self.rng)?;
        let id = unused_id(units, self.vendor_prefix, serial_code)?;
        let mut row = self.row(template, true);
        row.kind_code = (*code).to_owned();
        row.serial = self.serial(&id);
        row.device = id;
        Some(row)
    }
}

/// A device id of the simulation's shape that no simulated unit has.
fn unused_id(units: &[Unit], prefix: &str, code: &str) -> Option<DeviceId> {
    let known: BTreeSet<&str> = units.iter().map(|u| u.device.as_str()).collect();
    (900_001..999_999u32)
        .map(|n| format!("{prefix}-{code}-{n:06}"))
        .find(|id| !known.contains(id.as_str()))
        .and_then(|id| DeviceId::parse(&id).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_discrepancy_names_its_flag() {
        for d in [
            Discrepancy::MovedStillListed,
            Discrepancy::ReturnedStillListed,
            Discrepancy::NeverInstalled,
        ] {
            assert_eq!(d.flag(), Some(ReconcileClass::ListedSilent));
            assert!(!d.is_row_error());
        }
        for d in [
            Discrepancy::Missing,
            Discrepancy::ListedAsReturned,
            Discrepancy::BadDate,
        ] {
            assert_eq!(d.flag(), Some(ReconcileClass::ReportingUnlisted));
        }
        assert!(Discrepancy::BadDate.is_row_error());
        assert!(Discrepancy::UnknownProductCode.is_row_error());
        assert_eq!(Discrepancy::DuplicateLine.flag(), None);
        assert!(!Discrepancy::DuplicateLine.is_row_error());
    }
}
