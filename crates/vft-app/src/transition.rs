//! The vendor transition: inventory imports (vendors' CSV exports kept as dated snapshots) and
//! the reconciliation between an old and a new vendor (classes defined in
//! `vft_domain::reconcile`), with its month-by-month progress. `POST /api/v1/imports/…`,
//! `GET /api/v1/reconciliation[/progress]`, `vft import`, `vft reconcile` and the monthly report
//! all come here.

use crate::AppError;
use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vft_domain::attribution::InService;
use vft_domain::import::{ImportFormat, file_sha256, parse_inventory_at};
use vft_domain::interval::stretch_covers;
use vft_domain::reconcile::{
    Listing, MigrationProgress, ReconcileClass, ReconcileInput, ReconcileRow, Reporting,
    SubjectKey, migration_progress, reconcile,
};
use vft_domain::{
    MunicipalityCode, PlausibleTimes, Registry, VendorId, YearMonth, spreadsheet_safe,
};
use vft_store::Store;

/// Import formats per vendor id.
pub type ImportFormats = BTreeMap<String, ImportFormat>;

/// Reconciliation settings from configuration (`[reconciliation]`).
#[derive(Debug, Clone, Copy)]
pub struct ReconcileSettings {
    /// On both vendors longer than this: `double`.
    pub grace: Duration,
    /// Listed in service but no contact for this long: `listed_silent`.
    pub silent_after: Duration,
}

fn bad(msg: String) -> AppError {
    AppError::Invalid(msg)
}

/// A vendor id given as `what` (a query parameter, a flag).
pub fn vendor(what: &str, v: &str) -> Result<VendorId, AppError> {
    VendorId::parse(v).map_err(|e| bad(format!("{what}: {e}")))
}

fn date(what: &str, s: &str) -> Result<NaiveDate, AppError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| bad(format!("{what} must be a date (YYYY-MM-DD), got {s:?}")))
}

/// An export's date: it lists the fleet from the start of that day (Europe/Oslo). Default: today.
pub fn as_of_instant(s: Option<&str>, now: DateTime<Utc>) -> Result<DateTime<Utc>, AppError> {
    let d = match s {
        Some(s) => date("as_of", s)?,
        None => vft_domain::month::oslo_date(now),
    };
    Ok(vft_domain::month::oslo_midnight(d))
}

/// A reconciliation date: the last instant of that day (Europe/Oslo), so the day's events and
/// that day's export count.
pub fn end_of_day(s: &str) -> Result<DateTime<Utc>, AppError> {
    let d = date("at", s)?;
    vft_domain::month::oslo_end_of_day(d).ok_or_else(|| bad(format!("at {s:?} is out of range")))
}

/// One row left out of an import.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowErrorView {
    pub line: u64,
    /// Header of the offending cell, when one cell is to blame.
    pub column: Option<String>,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportReport {
    pub import_id: i64,
    /// False when this vendor's same file was imported before: nothing changed.
    pub new: bool,
    pub vendor: String,
    pub as_of: DateTime<Utc>,
    pub file_sha256: String,
    /// Rows kept.
    pub rows: u64,
    pub errors: Vec<RowErrorView>,
    /// Lines that repeat an earlier line exactly (kept once).
    pub duplicates: Vec<u64>,
}

/// What an export is read and checked against: the region's municipalities, each vendor's
/// export format, and the dates vft believes.
#[derive(Debug, Clone, Copy)]
pub struct ImportRules<'a> {
    pub registry: &'a Registry,
    pub formats: &'a ImportFormats,
    pub times: &'a PlausibleTimes,
}

/// Parses a vendor's export with its configured format and keeps it as a snapshot. An `as_of`
/// outside `rules.times` is refused, and rows installed outside them are unreadable rows.
/// `now` is when it is imported.
pub async fn import_file(
    store: &dyn Store,
    rules: ImportRules<'_>,
    vendor_id: &str,
    as_of: DateTime<Utc>,
    bytes: Bytes,
    now: DateTime<Utc>,
) -> Result<ImportReport, AppError> {
    let ImportRules {
        registry,
        formats,
        times,
    } = rules;
    times
        .check(as_of, now)
        .map_err(|why| bad(format!("as_of is implausible: {why}")))?;
    let v = vendor("vendor", vendor_id)?;
    let format = formats.get(v.as_str()).cloned().ok_or_else(|| {
        bad(format!(
            "no import format for vendor {v} (configure [imports.{v}]); known: {}",
            formats.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let municipality_column = format.columns.municipality.clone();
    // Parsing half a million rows is CPU work: off the async workers.
    let (parsed, sha) = {
        let (v, times) = (v.clone(), *times);
        tokio::task::spawn_blocking(move || {
            (
                parse_inventory_at(&format, &v, &bytes, &times, now),
                file_sha256(&bytes),
            )
        })
        .await
        .map_err(|_| AppError::Interrupted("parsing the export"))?
    };
    let mut parsed = parsed.map_err(|e| bad(e.to_string()))?;
    parsed.reject_unknown_municipalities(registry, &municipality_column);
    let listings: Vec<_> = parsed.rows.iter().map(|(_, l)| l.clone()).collect();
    let outcome = store
        .import_inventory(&v, as_of, now, &sha, &listings, &parsed.errors)
        .await?;
    Ok(ImportReport {
        import_id: outcome.import_id,
        new: outcome.new,
        vendor: v.to_string(),
        as_of,
        file_sha256: sha,
        rows: listings.len() as u64,
        errors: parsed
            .errors
            .into_iter()
            .map(|e| RowErrorView {
                line: e.line,
                column: e.column,
                reason: e.why,
            })
            .collect(),
        duplicates: parsed.duplicates,
    })
}

/// Whose reconciliation is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileScope<'a> {
    /// The region's (a coordinator; the CLI), all rows or those of one municipality. A subject
    /// is one recipient's service across the region, counted in one municipality.
    Region(Option<&'a MunicipalityCode>),
    /// A municipality's own (its token): subjects are formed from its own devices only, so a
    /// recipient it shares with another municipality shows with this municipality's devices
    /// (never the other's) and its class is what this municipality's own devices make it (a
    /// unit here and one of the other vendor there is not `double` here). The export flags are
    /// the region's rows placed here: each names one device that is this municipality's.
    Own(&'a MunicipalityCode),
}

/// What the reconciliation at one instant looks at.
struct Gathered {
    at: DateTime<Utc>,
    old: VendorId,
    new: VendorId,
    silent_after: Duration,
    /// The two vendors' devices in service at `at` or a grace period before it, one copy each
    /// (at 500 000 devices a second copy was about 90 MB): each with whether it is in service
    /// at `at`, and at `at - grace`.
    devices: Vec<(InService, bool, bool)>,
    /// Units a vendor without events has in service by its exports, at `at` and at
    /// `at - grace`.
    listed: Vec<InService>,
    listed_grace_ago: Vec<InService>,
    ever_old: Vec<InService>,
    listings: Vec<Listing>,
    reporting: Vec<Reporting>,
}

impl Gathered {
    async fn at(
        store: &dyn Store,
        old: &VendorId,
        new: &VendorId,
        at: DateTime<Utc>,
        settings: ReconcileSettings,
    ) -> Result<Self, AppError> {
        // The snapshot query counts events strictly before its argument: 1 µs on includes `at`.
        let tick = Duration::microseconds(1);
        // Both snapshots from one read of the intervals covering either instant. The reads
        // below go one after another: asked at once they were no faster on two cores, and each
        // reader connection they held filled its own page cache (the server's peak memory).
        let (now, then) = (at + tick, at - settings.grace + tick);
        let spans = store.service_spans(then, now).await?;
        let devices: Vec<(InService, bool, bool)> = spans
            .into_iter()
            .filter(|s| s.vendor == *old || s.vendor == *new)
            .filter_map(|s| {
                let (covers_now, covers_then) = (s.covers(now), s.covers(then));
                if !(covers_now || covers_then) {
                    return None;
                }
                Some((s.into_in_service()?, covers_now, covers_then))
            })
            .collect();
        let (mut listed, mut listed_grace_ago) = (Vec::new(), Vec::new());
        let mut ever_old = store.ever_in_service(old, now).await?;
        let old_listing = store.listing_at(old, at).await?;
        let new_listing = store.listing_at(new, at).await?;
        let reporting = store.reporting_at(at, at - settings.silent_after).await?;
        let mut listings = old_listing;
        listings.extend(new_listing);
        // A vendor with no device in the events is taken at its exports' word
        // (`listed_in_service`): its latest export at `at`, the one at `at - grace`, and, for
        // the old vendor, every export up to `at` as what was ever in service.
        for vendor in [old, new] {
            if reporting.iter().any(|r| &r.vendor == vendor) {
                continue;
            }
            listed.extend(vft_domain::reconcile::listed_in_service(
                listings.iter().filter(|l| &l.vendor == vendor),
            ));
            listed_grace_ago.extend(vft_domain::reconcile::listed_in_service(
                &store.listing_at(vendor, at - settings.grace).await?,
            ));
            if vendor == old {
                ever_old.extend(listed_ever(store, old, at).await?);
            }
        }
        Ok(Self {
            at,
            old: old.clone(),
            new: new.clone(),
            silent_after: settings.silent_after,
            devices,
            listed,
            listed_grace_ago,
            ever_old,
            listings,
            reporting,
        })
    }

    fn rows(&self, scope: ReconcileScope<'_>, flags: bool) -> Vec<ReconcileRow> {
        let in_service: Vec<&InService> = (self.devices.iter())
            .filter(|(_, now, _)| *now)
            .map(|(d, _, _)| d)
            .chain(&self.listed)
            .collect();
        let grace_ago: Vec<&InService> = (self.devices.iter())
            .filter(|(_, _, then)| *then)
            .map(|(d, _, _)| d)
            .chain(&self.listed_grace_ago)
            .collect();
        let ever_old: Vec<&InService> = self.ever_old.iter().collect();
        Looked {
            at: self.at,
            old: &self.old,
            new: &self.new,
            silent_after: self.silent_after,
            in_service: &in_service,
            grace_ago: &grace_ago,
            ever_old: &ever_old,
            listings: &self.listings,
            reporting: &self.reporting,
            counts_only: false,
        }
        .rows(scope, flags)
    }
}

/// Every export of the old vendor up to `at`, as devices ever in service (a vendor known only
/// by its exports).
async fn listed_ever(
    store: &dyn Store,
    old: &VendorId,
    at: DateTime<Utc>,
) -> Result<Vec<InService>, AppError> {
    let mut ever = Vec::new();
    for import in store.imports(Some(old)).await? {
        if import.as_of <= at {
            ever.extend(vft_domain::reconcile::listed_in_service(
                &store.listing_at(old, import.as_of).await?,
            ));
        }
    }
    Ok(ever)
}

/// What the reconciliation at one instant looks at, borrowed: gathered for one instant, or cut
/// out of what was read once for many (migration progress) without copying a device.
#[derive(Clone, Copy)]
struct Looked<'a> {
    at: DateTime<Utc>,
    old: &'a VendorId,
    new: &'a VendorId,
    silent_after: Duration,
    in_service: &'a [&'a InService],
    grace_ago: &'a [&'a InService],
    ever_old: &'a [&'a InService],
    listings: &'a [Listing],
    reporting: &'a [Reporting],
    /// Rows with their counts only, no subjects (migration progress sums counts).
    counts_only: bool,
}

impl<'a> Looked<'a> {
    fn reconcile(
        &self,
        in_service: &[&InService],
        grace_ago: &[&InService],
        ever_old: &[&InService],
    ) -> Vec<ReconcileRow> {
        let input = ReconcileInput {
            at: self.at,
            old: self.old,
            new: self.new,
            in_service,
            in_service_grace_ago: grace_ago,
            ever_old,
            listings: self.listings,
            reporting: self.reporting,
            silent_after: self.silent_after,
        };
        if self.counts_only {
            vft_domain::reconcile::reconcile_counts(&input)
        } else {
            reconcile(&input)
        }
    }

    /// The rows `scope` sees, sorted as `reconcile` sorts them; `flags: false` leaves the
    /// export flags out (migration progress counts only the four classes).
    fn rows(&self, scope: ReconcileScope<'_>, flags: bool) -> Vec<ReconcileRow> {
        let keep = |r: &ReconcileRow| flags || r.class.is_partition();
        match scope {
            ReconcileScope::Region(filter) => {
                let mut rows = self.reconcile(self.in_service, self.grace_ago, self.ever_old);
                rows.retain(|r| keep(r) && filter.is_none_or(|m| r.municipality == *m));
                rows
            }
            ReconcileScope::Own(own) => {
                let mine = |devices: &[&'a InService]| -> Vec<&'a InService> {
                    devices
                        .iter()
                        .copied()
                        .filter(|d| d.municipality == *own)
                        .collect()
                };
                let mut rows: Vec<ReconcileRow> = self
                    .reconcile(
                        &mine(self.in_service),
                        &mine(self.grace_ago),
                        &mine(self.ever_old),
                    )
                    .into_iter()
                    .filter(|r| r.class.is_partition() && r.municipality == *own)
                    .collect();
                if flags {
                    rows.extend(
                        self.rows(ReconcileScope::Region(Some(own)), true)
                            .into_iter()
                            .filter(|r| !r.class.is_partition()),
                    );
                    rows.sort_by(|a, b| {
                        (&a.municipality, a.kind, a.class).cmp(&(&b.municipality, b.kind, b.class))
                    });
                }
                rows
            }
        }
    }
}

/// The reconciliation as the API and CLI show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReconcileReport {
    pub from: String,
    pub to: String,
    pub at: String,
    pub instant: DateTime<Utc>,
    pub grace_days: i64,
    pub silent_after_days: i64,
    /// Subjects per class over the rows shown.
    pub totals: BTreeMap<ReconcileClass, u64>,
    /// Per municipality × technology type × class: count and the subjects behind it.
    pub rows: Vec<ReconcileRow>,
}

/// The old and the new vendor, both required and different.
pub fn vendors(from: Option<&str>, to: Option<&str>) -> Result<(VendorId, VendorId), AppError> {
    let from = vendor(
        "from",
        from.ok_or_else(|| bad("from (the old vendor) is required".into()))?,
    )?;
    let to = vendor(
        "to",
        to.ok_or_else(|| bad("to (the new vendor) is required".into()))?,
    )?;
    if from == to {
        return Err(bad("from and to must be different vendors".into()));
    }
    Ok((from, to))
}

/// A municipality asked for, checked against the region.
pub fn municipality(
    registry: &Registry,
    m: Option<&str>,
) -> Result<Option<MunicipalityCode>, AppError> {
    m.map(|m| {
        let code = MunicipalityCode::parse(m).map_err(|e| bad(e.to_string()))?;
        if registry.contains(&code) {
            Ok(code)
        } else {
            Err(bad(format!("unknown municipality {code}")))
        }
    })
    .transpose()
}

/// The reconciliation `scope` (already checked against the caller) asks for, between the
/// vendors `from` and `to` at the end of the day `at` (YYYY-MM-DD, Europe/Oslo; default: today).
pub async fn reconciliation(
    store: &dyn Store,
    settings: ReconcileSettings,
    from: Option<&str>,
    to: Option<&str>,
    at: Option<&str>,
    scope: ReconcileScope<'_>,
    now: DateTime<Utc>,
) -> Result<ReconcileReport, AppError> {
    let (from, to) = vendors(from, to)?;
    let day = match at {
        Some(d) => d.to_owned(),
        None => vft_domain::month::oslo_date(now).to_string(),
    };
    let at = end_of_day(&day)?;
    let rows = Gathered::at(store, &from, &to, at, settings)
        .await?
        .rows(scope, true);
    let mut totals: BTreeMap<ReconcileClass, u64> =
        ReconcileClass::ALL.iter().map(|c| (*c, 0)).collect();
    for r in &rows {
        *totals.entry(r.class).or_default() += r.count;
    }
    Ok(ReconcileReport {
        from: from.to_string(),
        to: to.to_string(),
        at: day,
        instant: at,
        grace_days: settings.grace.num_days(),
        silent_after_days: settings.silent_after.num_days(),
        totals,
        rows,
    })
}

/// A subject's key as text: the recipient reference, or `vendor/device`.
pub fn subject_text(key: &SubjectKey) -> String {
    match key {
        SubjectKey::Recipient(r) => r.to_string(),
        SubjectKey::Device(v, d) => format!("{v}/{d}"),
    }
}

/// One line per subject: municipality, kind, class, subject, devices (space-separated).
pub fn reconciliation_csv(rows: &[ReconcileRow]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["municipality", "kind", "class", "subject", "devices"]);
    for r in rows {
        for s in &r.subjects {
            let devices: Vec<String> = s.devices.iter().map(|(v, d)| format!("{v}/{d}")).collect();
            let cells = [
                r.municipality.as_str(),
                r.kind.id(),
                r.class.id(),
                &subject_text(&s.key),
                &devices.join(" "),
            ];
            // A recipient reference is the sender's text: never a formula in a spreadsheet.
            let _ = w.write_record(cells.map(|c| spreadsheet_safe(c).into_owned()));
        }
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// What a month end adds to what was read for all of them (a vendor known only by its
/// exports).
#[derive(Default)]
struct Added {
    in_service: Vec<InService>,
    grace_ago: Vec<InService>,
    ever_old: Vec<InService>,
}

/// A [`ReconcileScope`] that owns its municipality, to move to another thread.
enum OwnedScope {
    Region(Option<MunicipalityCode>),
    Own(MunicipalityCode),
}

impl OwnedScope {
    fn of(scope: ReconcileScope<'_>) -> Self {
        match scope {
            ReconcileScope::Region(m) => Self::Region(m.cloned()),
            ReconcileScope::Own(m) => Self::Own(m.clone()),
        }
    }

    fn borrow(&self) -> ReconcileScope<'_> {
        match self {
            Self::Region(m) => ReconcileScope::Region(m.as_ref()),
            Self::Own(m) => ReconcileScope::Own(m),
        }
    }
}

/// Reconciles at each month's last instant and summarises per municipality. What the months
/// share is read once: the service intervals covering every instant looked at (each month
/// end's snapshots are cut from them) and the old vendor's installs up to the last month end
/// (each month's are a prefix). Only the four classes are counted, so the contact history and
/// the exports are asked only whether a vendor reports at all.
pub async fn migration_progress_of(
    store: &dyn Store,
    from: &VendorId,
    to: &VendorId,
    months: &[YearMonth],
    settings: ReconcileSettings,
    scope: ReconcileScope<'_>,
) -> Result<Vec<MigrationProgress>, AppError> {
    // As in `Gathered::at`: the snapshots count what happened strictly before their instant.
    let tick = Duration::microseconds(1);
    let ends: Vec<DateTime<Utc>> = months
        .iter()
        .map(|m| m.end_exclusive() - Duration::microseconds(1))
        .collect();
    let (Some(&first), Some(&last)) = (ends.iter().min(), ends.iter().max()) else {
        return Ok(migration_progress(&[]));
    };
    let spans = store
        .service_spans(first - settings.grace + tick, last + tick)
        .await?;
    let installs = store.installs_before(from, last + tick).await?;
    let (install_times, ever_all): (Vec<DateTime<Utc>>, Vec<InService>) =
        installs.into_iter().unzip();
    // What a month adds for a vendor known only by its exports (usually nothing), as
    // `Gathered::at` adds it.
    let mut added = Vec::with_capacity(ends.len());
    for &at in &ends {
        let mut add = Added::default();
        for vendor in [from, to] {
            if store
                .vendor_reporting(vendor, at, at - settings.silent_after)
                .await?
            {
                continue;
            }
            add.in_service
                .extend(vft_domain::reconcile::listed_in_service(
                    &store.listing_at(vendor, at).await?,
                ));
            add.grace_ago
                .extend(vft_domain::reconcile::listed_in_service(
                    &store.listing_at(vendor, at - settings.grace).await?,
                ));
            if vendor == from {
                add.ever_old.extend(listed_ever(store, from, at).await?);
            }
        }
        added.push(add);
    }
    // The month ends are CPU work and independent: off the async workers, a thread per core.
    let (old, new, scope) = (from.clone(), to.clone(), OwnedScope::of(scope));
    let per_month_rows = tokio::task::spawn_blocking(move || {
        // Each span of the two vendors as a device once, taken apart rather than copied (a
        // copy was about 100 MB at 500 000 devices); a month end's snapshots point into these.
        let (stretches, devices): (Vec<_>, Vec<Option<InService>>) = spans
            .into_iter()
            .filter(|s| s.vendor == old || s.vendor == new)
            .map(|s| (s.stretch(), s.into_in_service()))
            .unzip();
        let month = |i: usize| -> Vec<ReconcileRow> {
            let at = ends[i];
            fn covering<'d>(
                stretches: &[(DateTime<Utc>, Option<DateTime<Utc>>)],
                devices: &'d [Option<InService>],
                c: DateTime<Utc>,
                add: &'d [InService],
            ) -> Vec<&'d InService> {
                stretches
                    .iter()
                    .zip(devices)
                    .filter(|(stretch, _)| stretch_covers(**stretch, c))
                    .filter_map(|(_, d)| d.as_ref())
                    .chain(add)
                    .collect()
            }
            let in_service = covering(&stretches, &devices, at + tick, &added[i].in_service);
            let grace_ago = covering(
                &stretches,
                &devices,
                at - settings.grace + tick,
                &added[i].grace_ago,
            );
            let before = &ever_all[..install_times.partition_point(|t| *t < at + tick)];
            let ever_old: Vec<&InService> = before.iter().chain(&added[i].ever_old).collect();
            Looked {
                at,
                old: &old,
                new: &new,
                silent_after: settings.silent_after,
                in_service: &in_service,
                grace_ago: &grace_ago,
                ever_old: &ever_old,
                // The flags are not counted: nothing to flag from.
                listings: &[],
                reporting: &[],
                // Only the counts are summed: naming every unit of the fleet for every month
                // end was most of the work and, kept, most of the memory.
                counts_only: true,
            }
            .rows(scope.borrow(), false)
        };
        let n = ends.len();
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, n.max(1));
        let mut rows: Vec<(usize, Vec<ReconcileRow>)> = std::thread::scope(|threads| {
            let month = &month;
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    threads.spawn(move || {
                        (w..n)
                            .step_by(workers)
                            .map(|i| (i, month(i)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        rows.sort_by_key(|(i, _)| *i);
        rows
    })
    .await
    .map_err(|_| AppError::Interrupted("reconciling the month ends"))?;
    let per_month: Vec<(YearMonth, Vec<ReconcileRow>)> = per_month_rows
        .into_iter()
        .map(|(i, rows)| (months[i], rows))
        .collect();
    Ok(migration_progress(&per_month))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid<T: std::fmt::Debug>(r: Result<T, AppError>) -> String {
        match r {
            Err(AppError::Invalid(why)) => why,
            other => panic!("expected bad input, got {other:?}"),
        }
    }

    #[test]
    fn inputs_are_parsed_or_refused_with_what_was_wrong() {
        let now = "2025-06-15T10:00:00Z".parse().expect("now");
        // An export's date is the start of that Oslo day; default today.
        assert_eq!(
            as_of_instant(Some("2025-03-01"), now).expect("date"),
            "2025-02-28T23:00:00Z"
                .parse::<DateTime<Utc>>()
                .expect("instant")
        );
        assert_eq!(
            as_of_instant(None, now).expect("today"),
            "2025-06-14T22:00:00Z"
                .parse::<DateTime<Utc>>()
                .expect("instant")
        );
        assert!(invalid(as_of_instant(Some("2025-13-01"), now)).contains("as_of"));
        assert!(invalid(end_of_day("yesterday")).contains("at must be a date"));
        assert!(invalid(vendors(None, Some("atea"))).contains("from"));
        assert!(invalid(vendors(Some("atea"), Some("atea"))).contains("different"));
        let registry = Registry::new(vec![vft_domain::Municipality {
            code: MunicipalityCode::parse("3328").expect("code"),
            name: "Ål".into(),
            population: 4_600,
        }])
        .expect("registry");
        assert_eq!(
            municipality(&registry, Some("3328")).expect("known"),
            Some(MunicipalityCode::parse("3328").expect("code"))
        );
        assert!(invalid(municipality(&registry, Some("0301"))).contains("unknown municipality"));
    }
}
