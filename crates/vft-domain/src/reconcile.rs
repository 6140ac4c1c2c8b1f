//! Reconciliation between an old and a new vendor (the Hepro → Atea transition) at one
//! instant, per municipality and technology type, and migration progress month by month.
//!
//! No vendor portal can answer "who has moved, who is still only on the old platform, who is
//! on both" because each sees only itself; the events of both vendors can. This module is the
//! pure rule: the caller (store, API, CLI) gathers the snapshots and exports described in
//! [`ReconcileInput`] and renders the rows as JSON or CSV.
//!
//! # Subjects
//!
//! A **subject** is one service of one technology type for one recipient, or, where the data
//! has no recipient, one device: its identity is ([`SubjectKey`], [`TechnologyKind`]).
//! Matching is on the service recipient where the device has one, otherwise on the device
//! serial, and the serial matches across vendors only when the same serial appears under both
//! (usually it does not, so a recipient-less Hepro device stands on its own). In detail, a
//! device in service on the old or new vendor gets the key:
//! - `Recipient(r)` when it has recipient `r`;
//! - otherwise the key of its counterpart (same serial on the other vendor, in service at the
//!   same instant; for a new-vendor device also the latest `ever_old` entry of that serial):
//!   `Recipient(r)` if the counterpart has one, else `Device(old vendor, serial)`;
//! - otherwise `Device(its vendor, serial)`.
//!
//! A subject now only on the new vendor "was ever on the old vendor" when `ever_old` has an
//! entry with the same key and kind, or a recipient-less old entry with the serial and kind of
//! one of its devices (Hepro did not know the recipient, Atea does: matched on the device).
//!
//! The kind is part of the identity because a recipient with a Hepro safety alarm and a Hepro
//! dispenser who has moved only the alarm has one migrated service and one pending service,
//! not one "double" recipient. It follows that a service whose kind changes in the move
//! (Hepro safety alarm → Atea tracker) shows as `new` tracking; the ended alarm is not in
//! service and so not counted. Devices of vendors other than the two are ignored.
//!
//! # Classes
//!
//! The first four classes partition the subjects in service at `at` on either vendor: every
//! such subject is in exactly one of them.
//! - [`Migrated`](ReconcileClass::Migrated): in service only on the new vendor, and was ever on
//!   the old vendor (the old service has ended).
//! - [`Pending`](ReconcileClass::Pending): in service on the old vendor only, **or on both but
//!   not yet for longer than the grace period**. The issue leaves the overlap within grace
//!   open; a coordinator thinks of such a recipient as "not moved yet" until the old unit is
//!   collected, and the short overlap is the normal way a move happens, so it stays pending and
//!   its device list names the new device too.
//! - [`Double`](ReconcileClass::Double): in service on both vendors at `at` and already on
//!   both at `at - grace` (the overlap is longer than the grace period: paid twice). Only the
//!   two instants are compared; a gap in between is not seen.
//! - [`New`](ReconcileClass::New): in service only on the new vendor and never on the old one.
//!
//! The last two are data-quality flags about one vendor's export, on top of the partition: a
//! device can be flagged and its subject also be, say, pending. They are per device (key
//! `Device(vendor, serial)`), since the thing to chase up is a unit in a vendor's books, and
//! only the old and new vendor's exports are looked at.
//! - [`ListedSilent`](ReconcileClass::ListedSilent): in the vendor's latest export as in
//!   service, but no contact within `silent_after` before `at` (never contacted is silent).
//! - [`ReportingUnlisted`](ReconcileClass::ReportingUnlisted): has contact within
//!   `silent_after` before `at`, but its vendor's latest export does not list it as in service
//!   (absent, or listed as out of service: both mean the vendor does not count a unit that
//!   evidently works). Only for a vendor that has an export at all: with no export (or an empty
//!   one) nothing can be "unlisted".
//!
//! A contact counts when `at - silent_after < last_contact <= at`. The caller should pass the
//! latest contact at or before `at`; one after `at` (reconciling a past date with today's
//! figure) counts as no contact, since it says nothing about the window before `at`.
//!
//! # Where a subject is counted
//!
//! Municipality: that of its preferred in-service device, new vendor first. [`InService`]
//! carries no install time, so "newest" is approximated: among the same vendor's devices one
//! that no other in-service device of the subject replaces, then the lowest serial. A recipient
//! who moved municipality during the migration is therefore counted once, in the municipality
//! of the current (new-vendor) device, also while the old unit is still in service elsewhere.
//! A flagged device is placed by its own in-service entry, else its export row, else (old
//! vendor) its latest `ever_old` entry, field by field; one that cannot be placed in a
//! municipality and kind is left out.

use crate::attribution::InService;
use crate::ids::{DeviceId, MunicipalityCode, RecipientRef, VendorId};
use crate::kind::TechnologyKind;
use crate::month::YearMonth;
use ahash::{AHashMap as HashMap, AHashSet as HashSet};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One row of a vendor's latest inventory export (snapshot) at or before `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub vendor: VendorId,
    pub device: DeviceId,
    pub kind: Option<TechnologyKind>,
    pub municipality: Option<MunicipalityCode>,
    pub recipient: Option<RecipientRef>,
    /// The export lists the unit as in service (not in stock, returned, decommissioned).
    pub in_service: bool,
}

/// A vendor known only by its exports (no device of it in the events) is taken at its word:
/// the units an export lists as in service, with a type and a municipality, as devices in
/// service (without a unit they replace). So the two vendors' lists alone already show who is
/// on both, before any gateway reports.
pub fn listed_in_service<'a>(listings: impl IntoIterator<Item = &'a Listing>) -> Vec<InService> {
    listings
        .into_iter()
        .filter(|l| l.in_service)
        .filter_map(|l| {
            Some(InService {
                vendor: l.vendor.clone(),
                device: l.device.clone(),
                kind: l.kind?,
                municipality: l.municipality.clone()?,
                recipient: l.recipient.clone(),
                replaces: None,
            })
        })
        .collect()
}

/// A device known from events, with its latest contact (any event) at or before `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reporting {
    pub vendor: VendorId,
    pub device: DeviceId,
    pub last_contact: Option<DateTime<Utc>>,
}

/// Everything the reconciliation at `at` looks at. Slices may hold other vendors (ignored) and
/// repeated devices (the first entry of a (vendor, device) in a snapshot wins).
#[derive(Debug, Clone, Copy)]
pub struct ReconcileInput<'a> {
    pub at: DateTime<Utc>,
    pub old: &'a VendorId,
    pub new: &'a VendorId,
    /// Devices in service at `at` by the events (both vendors), see [`InService`].
    pub in_service: &'a [&'a InService],
    /// Devices in service at `at - grace` by the events, computed the same way: a subject on
    /// both vendors at both instants is `double`.
    pub in_service_grace_ago: &'a [&'a InService],
    /// Every (device, recipient, kind) ever in service on the old vendor before `at`, oldest
    /// first (where order matters, the last entry of a serial wins): tells `migrated` from
    /// `new`, and names the old devices behind a migration.
    pub ever_old: &'a [&'a InService],
    /// The latest export of each vendor at or before `at` (none or empty for a vendor: no
    /// `reporting_unlisted` for it).
    pub listings: &'a [Listing],
    /// Every device known from events, with its last contact.
    pub reporting: &'a [Reporting],
    /// Listed in service but no contact for this long: `listed_silent`.
    pub silent_after: Duration,
}

/// Ordered as the rows are listed within a municipality and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconcileClass {
    Migrated,
    Pending,
    Double,
    New,
    ListedSilent,
    ReportingUnlisted,
}

impl ReconcileClass {
    pub const ALL: [ReconcileClass; 6] = [
        Self::Migrated,
        Self::Pending,
        Self::Double,
        Self::New,
        Self::ListedSilent,
        Self::ReportingUnlisted,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Self::Migrated => "migrated",
            Self::Pending => "pending",
            Self::Double => "double",
            Self::New => "new",
            Self::ListedSilent => "listed_silent",
            Self::ReportingUnlisted => "reporting_unlisted",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.id() == id)
    }

    /// One of the four classes that partition the subjects (the other two are flags).
    pub fn is_partition(self) -> bool {
        !matches!(self, Self::ListedSilent | Self::ReportingUnlisted)
    }
}

impl std::fmt::Display for ReconcileClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// Who or what a subject is: a service recipient, or a device where there is no recipient.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKey {
    Recipient(RecipientRef),
    Device(VendorId, DeviceId),
}

/// One entry of the list behind a count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub key: SubjectKey,
    pub municipality: MunicipalityCode,
    pub kind: TechnologyKind,
    /// Sorted by (vendor, device): the subject's devices in service at `at`; for `migrated`
    /// also the old-vendor devices it had (from `ever_old`), so a same-day replacement chain
    /// shows whole; for the flags, the flagged device.
    pub devices: Vec<(VendorId, DeviceId)>,
}

/// One count with the subjects behind it; `count == subjects.len()`, never 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileRow {
    pub municipality: MunicipalityCode,
    pub kind: TechnologyKind,
    pub class: ReconcileClass,
    pub count: u64,
    /// Sorted by key.
    pub subjects: Vec<Subject>,
}

type Key<'a> = (&'a VendorId, &'a DeviceId);
/// A subject as the reconciliation matches it: borrowed from the devices, so matching a fleet
/// copies no string ([`SubjectKey`] is its owned form, made only for a listed subject).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SubjectRef<'a> {
    Recipient(&'a RecipientRef),
    Device(&'a VendorId, &'a DeviceId),
}

impl SubjectRef<'_> {
    fn to_key(self) -> SubjectKey {
        match self {
            Self::Recipient(r) => SubjectKey::Recipient(r.clone()),
            Self::Device(v, d) => SubjectKey::Device(v.clone(), d.clone()),
        }
    }
}

type Identity<'a> = (SubjectRef<'a>, TechnologyKind);

fn key(d: &InService) -> Key<'_> {
    (&d.vendor, &d.device)
}

/// The old vendor's history, indexed for matching.
struct EverOld<'a> {
    /// Old-vendor serials ever in each subject, keyed as a current device would be keyed; in
    /// install order, with repeats (a set is made only for a subject that is asked about: a
    /// B-tree node per subject was about 60 MB at national size).
    subjects: HashMap<Identity<'a>, Vec<&'a DeviceId>>,
    /// Recipient-less entries: a new-vendor device with the same serial and kind matches them
    /// whatever its own recipient ("both sides have one, else the device").
    bare: HashSet<(&'a DeviceId, TechnologyKind)>,
    /// The latest entry of each serial, to key a recipient-less new device whose old
    /// counterpart is gone, and to place flagged old devices.
    last: HashMap<&'a DeviceId, &'a InService>,
}

impl<'a> EverOld<'a> {
    fn new(entries: &[&'a InService], old: &'a VendorId) -> Self {
        let mut ever = Self {
            subjects: HashMap::default(),
            bare: HashSet::default(),
            last: HashMap::default(),
        };
        for &e in entries.iter().filter(|e| e.vendor == *old) {
            let subject = match &e.recipient {
                Some(r) => SubjectRef::Recipient(r),
                None => {
                    ever.bare.insert((&e.device, e.kind));
                    SubjectRef::Device(old, &e.device)
                }
            };
            // Nearly every subject has one device: room for one, not the four of a first push.
            ever.subjects
                .entry((subject, e.kind))
                .or_insert_with(|| Vec::with_capacity(1))
                .push(&e.device);
            ever.last.insert(&e.device, e);
        }
        ever
    }

    /// Whether a subject now only on the new vendor was ever on the old one, and with which
    /// old serials.
    fn history(
        &self,
        id: &Identity<'a>,
        devices: &[&'a InService],
    ) -> Option<BTreeSet<&'a DeviceId>> {
        let mut serials: Option<BTreeSet<&'a DeviceId>> = self
            .subjects
            .get(id)
            .map(|serials| serials.iter().copied().collect());
        for &d in devices {
            if self.bare.contains(&(&d.device, id.1)) {
                serials.get_or_insert_with(BTreeSet::new).insert(&d.device);
            }
        }
        serials
    }
}

/// The old and new vendor's devices of a snapshot, one per (vendor, device). Hashed: these
/// maps are only looked up (a fleet's worth of string-keyed B-tree searches was most of
/// migration progress's time); every output is sorted where it is built.
fn snapshot<'a>(
    devices: &[&'a InService],
    old: &VendorId,
    new: &VendorId,
) -> HashMap<Key<'a>, &'a InService> {
    let mut map = HashMap::with_capacity_and_hasher(devices.len(), Default::default());
    for &d in devices
        .iter()
        .filter(|d| d.vendor == *old || d.vendor == *new)
    {
        map.entry(key(d)).or_insert(d);
    }
    map
}

/// The subject a device of a snapshot belongs to (see the module docs for the keying).
fn subject_of<'a>(
    d: &'a InService,
    snap: &HashMap<Key<'a>, &'a InService>,
    old: &'a VendorId,
    new: &'a VendorId,
    ever: &EverOld<'a>,
) -> SubjectRef<'a> {
    let by_recipient_or_serial = |c: &'a InService| match &c.recipient {
        Some(r) => SubjectRef::Recipient(r),
        None => SubjectRef::Device(old, &c.device),
    };
    let other = if d.vendor == *old { new } else { old };
    if let Some(r) = &d.recipient {
        SubjectRef::Recipient(r)
    } else if let Some(c) = snap.get(&(other, &d.device)) {
        by_recipient_or_serial(c)
    } else if d.vendor == *old {
        SubjectRef::Device(old, &d.device)
    } else if let Some(e) = ever.last.get(&d.device) {
        by_recipient_or_serial(e)
    } else {
        SubjectRef::Device(&d.vendor, &d.device)
    }
}

/// A snapshot's devices grouped into subjects.
fn subjects<'a>(
    snap: &HashMap<Key<'a>, &'a InService>,
    old: &'a VendorId,
    new: &'a VendorId,
    ever: &EverOld<'a>,
) -> HashMap<Identity<'a>, Vec<&'a InService>> {
    let mut map: HashMap<Identity<'a>, Vec<&InService>> =
        HashMap::with_capacity_and_hasher(snap.len(), Default::default());
    for &d in snap.values() {
        // Nearly every subject has one device: room for one, not the four of a first push.
        map.entry((subject_of(d, snap, old, new, ever), d.kind))
            .or_insert_with(|| Vec::with_capacity(1))
            .push(d);
    }
    map
}

/// The subjects of a snapshot with devices of both vendors: [`subjects`] filtered, with two
/// bits per subject instead of its devices (the snapshot a grace period ago is asked only
/// this, once per month end of progress).
fn on_both_vendors<'a>(
    snap: &HashMap<Key<'a>, &'a InService>,
    old: &'a VendorId,
    new: &'a VendorId,
    ever: &EverOld<'a>,
) -> HashSet<Identity<'a>> {
    let mut vendors: HashMap<Identity<'a>, u8> =
        HashMap::with_capacity_and_hasher(snap.len(), Default::default());
    for &d in snap.values() {
        let bit = if d.vendor == *old { 1 } else { 2 };
        *vendors
            .entry((subject_of(d, snap, old, new, ever), d.kind))
            .or_default() |= bit;
    }
    vendors
        .into_iter()
        .filter(|(_, bits)| *bits == 3)
        .map(|(id, _)| id)
        .collect()
}

/// The device whose municipality a subject is counted in: new vendor first, then one no other
/// device of the subject replaces (the end of a replacement chain), then the lowest serial.
fn preferred<'a>(devices: &[&'a InService], new: &VendorId) -> Option<&'a InService> {
    let replaced = |d: &InService| {
        devices
            .iter()
            .any(|o| o.vendor == d.vendor && o.replaces.as_ref() == Some(&d.device))
    };
    devices
        .iter()
        .copied()
        .min_by_key(|&d| (d.vendor != *new, replaced(d), &d.device))
}

/// Rows being collected: each row's count, and its subjects unless only counts are asked for.
struct Rows {
    subjects: bool,
    map: BTreeMap<(MunicipalityCode, TechnologyKind, ReconcileClass), (u64, Vec<Subject>)>,
}

impl Rows {
    fn add(
        &mut self,
        row: (MunicipalityCode, TechnologyKind, ReconcileClass),
        subject: impl FnOnce() -> Subject,
    ) {
        let (count, subjects) = self.map.entry(row).or_default();
        *count += 1;
        if self.subjects {
            subjects.push(subject());
        }
    }
}

/// Classifies every subject and flag at `input.at` (see the module docs for each class).
/// Rows come sorted by municipality, kind and class, and only non-empty ones.
pub fn reconcile(input: &ReconcileInput) -> Vec<ReconcileRow> {
    classify(input, true)
}

/// [`reconcile`]'s rows with their counts only (no subjects): what migration progress sums,
/// without naming every unit of the fleet for every month end.
pub fn reconcile_counts(input: &ReconcileInput) -> Vec<ReconcileRow> {
    classify(input, false)
}

fn classify(input: &ReconcileInput, with_subjects: bool) -> Vec<ReconcileRow> {
    let (old, new) = (input.old, input.new);
    let ever = EverOld::new(input.ever_old, old);
    let now = snapshot(input.in_service, old, new);
    let on_both = |devices: &[&InService]| {
        devices.iter().any(|d| d.vendor == *old) && devices.iter().any(|d| d.vendor == *new)
    };
    // A grace period ago, only which subjects had both vendors: that snapshot is dropped
    // before the subjects of now are grouped (one fleet-sized map fewer at the peak).
    let on_both_then = on_both_vendors(
        &snapshot(input.in_service_grace_ago, old, new),
        old,
        new,
        &ever,
    );

    let mut rows = Rows {
        subjects: with_subjects,
        map: BTreeMap::new(),
    };
    for (id, devices) in subjects(&now, old, new, &ever) {
        let mut history = None;
        let class = if on_both(&devices) {
            if on_both_then.contains(&id) {
                ReconcileClass::Double
            } else {
                ReconcileClass::Pending
            }
        } else if devices.iter().any(|d| d.vendor == *old) {
            ReconcileClass::Pending
        } else if let Some(serials) = ever.history(&id, &devices) {
            history = Some(serials);
            ReconcileClass::Migrated
        } else {
            ReconcileClass::New
        };
        let Some(home) = preferred(&devices, new) else {
            continue;
        };
        let (subject, kind) = id;
        rows.add((home.municipality.clone(), kind, class), || {
            let listed: BTreeSet<(VendorId, DeviceId)> = devices
                .iter()
                .map(|d| (d.vendor.clone(), d.device.clone()))
                .chain(
                    history
                        .into_iter()
                        .flatten()
                        .map(|s| (old.clone(), s.clone())),
                )
                .collect();
            Subject {
                key: subject.to_key(),
                municipality: home.municipality.clone(),
                kind,
                devices: listed.into_iter().collect(),
            }
        });
    }

    flag_devices(input, &now, &ever, &mut rows);

    rows.map
        .into_iter()
        .map(|((municipality, kind, class), (count, mut subjects))| {
            subjects.sort_by(|a, b| a.key.cmp(&b.key));
            ReconcileRow {
                municipality,
                kind,
                class,
                count,
                subjects,
            }
        })
        .collect()
}

/// Adds the `listed_silent` and `reporting_unlisted` flags.
fn flag_devices<'a>(
    input: &ReconcileInput<'a>,
    now: &HashMap<Key<'a>, &'a InService>,
    ever: &EverOld<'a>,
    rows: &mut Rows,
) {
    let (old, new, at) = (input.old, input.new, input.at);
    let ours = |v: &VendorId| v == old || v == new;
    let in_window = |t: DateTime<Utc>| t <= at && at - t < input.silent_after;

    // Hashed, as the snapshots: each holds a fleet's worth of devices, and the flagged
    // subjects are sorted where the rows are handed out.
    let mut contact: HashMap<Key<'a>, Option<DateTime<Utc>>> =
        HashMap::with_capacity(input.reporting.len());
    for r in input.reporting.iter().filter(|r| ours(&r.vendor)) {
        // Repeated devices: a contact in the window anywhere wins.
        let slot = contact.entry((&r.vendor, &r.device)).or_default();
        if let Some(t) = r.last_contact.filter(|&t| in_window(t)) {
            *slot = Some(t);
        }
    }
    let mut exported: BTreeSet<&'a VendorId> = BTreeSet::new();
    let mut listing: HashMap<Key<'a>, &'a Listing> = HashMap::with_capacity(input.listings.len());
    for l in input.listings.iter().filter(|l| ours(&l.vendor)) {
        exported.insert(&l.vendor);
        // A repeated row: "in service" wins, so a duplicate line cannot hide a listed unit.
        let slot = listing.entry((&l.vendor, &l.device)).or_insert(l);
        if l.in_service && !slot.in_service {
            *slot = l;
        }
    }

    let mut flag = |k: Key<'a>, l: Option<&'a Listing>, class: ReconcileClass| {
        let current = now.get(&k);
        let history = (k.0 == old).then(|| ever.last.get(k.1)).flatten();
        let municipality = current
            .map(|d| d.municipality.clone())
            .or_else(|| l.and_then(|l| l.municipality.clone()))
            .or_else(|| history.map(|d| d.municipality.clone()));
        let kind = current
            .map(|d| d.kind)
            .or_else(|| l.and_then(|l| l.kind))
            .or_else(|| history.map(|d| d.kind));
        // Unplaceable (no municipality or kind anywhere): no row can hold it.
        if let (Some(municipality), Some(kind)) = (municipality, kind) {
            rows.add((municipality.clone(), kind, class), || Subject {
                key: SubjectKey::Device(k.0.clone(), k.1.clone()),
                municipality,
                kind,
                devices: vec![(k.0.clone(), k.1.clone())],
            });
        }
    };

    for (&k, &l) in listing.iter().filter(|(_, l)| l.in_service) {
        if contact.get(&k).copied().flatten().is_none() {
            flag(k, Some(l), ReconcileClass::ListedSilent);
        }
    }
    for (&k, _) in contact.iter().filter(|(_, t)| t.is_some()) {
        let l = listing.get(&k).copied();
        if exported.contains(k.0) && !l.is_some_and(|l| l.in_service) {
            flag(k, l, ReconcileClass::ReportingUnlisted);
        }
    }
}

/// One municipality's migration in one month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationProgress {
    pub municipality: MunicipalityCode,
    pub month: YearMonth,
    pub migrated: u64,
    pub pending: u64,
    pub double: u64,
    pub new: u64,
    /// `migrated / (migrated + pending + double)`: of the services that were on the old vendor,
    /// the part that has left it. `None` when there are none (nothing to migrate).
    pub share_migrated: Option<f64>,
}

/// Migration progress per municipality per month, from one [`reconcile`] result per month end.
///
/// Counts are subjects (services: recipient × technology type, or recipient-less devices)
/// summed over technology types. Every municipality that has a partition row in any month gets
/// every month given (zeros where it had none), so series have no gaps. Output is sorted by
/// municipality, then month; a month given twice counts once, its last entry.
pub fn migration_progress(per_month: &[(YearMonth, Vec<ReconcileRow>)]) -> Vec<MigrationProgress> {
    let months: BTreeMap<YearMonth, &[ReconcileRow]> = per_month
        .iter()
        .map(|(m, rows)| (*m, rows.as_slice()))
        .collect();
    let mut counts: BTreeMap<(&MunicipalityCode, YearMonth), [u64; 4]> = BTreeMap::new();
    for (&month, rows) in &months {
        for row in rows.iter() {
            let slot = match row.class {
                ReconcileClass::Migrated => 0,
                ReconcileClass::Pending => 1,
                ReconcileClass::Double => 2,
                ReconcileClass::New => 3,
                ReconcileClass::ListedSilent | ReconcileClass::ReportingUnlisted => continue,
            };
            counts.entry((&row.municipality, month)).or_default()[slot] += row.count;
        }
    }
    let municipalities: BTreeSet<&MunicipalityCode> = counts.keys().map(|(m, _)| *m).collect();
    let (counts, months) = (&counts, &months);
    municipalities
        .into_iter()
        .flat_map(move |municipality| {
            months.keys().map(move |&month| {
                let [migrated, pending, double, new] = counts
                    .get(&(municipality, month))
                    .copied()
                    .unwrap_or_default();
                let was_old = migrated + pending + double;
                MigrationProgress {
                    municipality: municipality.clone(),
                    month,
                    migrated,
                    pending,
                    double,
                    new,
                    share_migrated: (was_old > 0).then(|| migrated as f64 / was_old as f64),
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::EventId;
    use crate::rollup::{LifecycleRecord, in_service_at};
    use TechnologyKind::{MedicationSupport, SafetyAlarm, SmokeDetector, Tracking};
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid")
            .with_timezone(&Utc)
    }

    fn vendor(v: &str) -> VendorId {
        VendorId::parse(v).expect("vendor")
    }

    fn dev(vendor_id: &str, device: &str, kind: TechnologyKind, municipality: &str) -> InService {
        InService {
            vendor: vendor(vendor_id),
            device: DeviceId::parse(device).expect("device"),
            kind,
            municipality: MunicipalityCode::parse(municipality).expect("code"),
            recipient: None,
            replaces: None,
        }
    }

    fn of(r: &str, mut d: InService) -> InService {
        d.recipient = Some(RecipientRef::parse(r).expect("recipient"));
        d
    }

    fn listed(vendor_id: &str, device: &str, kind: TechnologyKind, municipality: &str) -> Listing {
        Listing {
            vendor: vendor(vendor_id),
            device: DeviceId::parse(device).expect("device"),
            kind: Some(kind),
            municipality: Some(MunicipalityCode::parse(municipality).expect("code")),
            recipient: None,
            in_service: true,
        }
    }

    fn seen(vendor_id: &str, device: &str, last_contact: Option<DateTime<Utc>>) -> Reporting {
        Reporting {
            vendor: vendor(vendor_id),
            device: DeviceId::parse(device).expect("device"),
            last_contact,
        }
    }

    /// Everything but the snapshots, with defaults: Hepro → Atea, 14 days of silence.
    struct Case {
        at: DateTime<Utc>,
        old: VendorId,
        new: VendorId,
        now: Vec<InService>,
        grace_ago: Vec<InService>,
        ever_old: Vec<InService>,
        listings: Vec<Listing>,
        reporting: Vec<Reporting>,
        silent_after: Duration,
    }

    impl Case {
        fn at(at: &str) -> Self {
            Self {
                at: utc(at),
                old: vendor("hepro"),
                new: vendor("atea"),
                now: vec![],
                grace_ago: vec![],
                ever_old: vec![],
                listings: vec![],
                reporting: vec![],
                silent_after: Duration::days(14),
            }
        }

        fn run(&self) -> Vec<ReconcileRow> {
            reconcile(&ReconcileInput {
                at: self.at,
                old: &self.old,
                new: &self.new,
                in_service: &self.now.iter().collect::<Vec<_>>(),
                in_service_grace_ago: &self.grace_ago.iter().collect::<Vec<_>>(),
                ever_old: &self.ever_old.iter().collect::<Vec<_>>(),
                listings: &self.listings,
                reporting: &self.reporting,
                silent_after: self.silent_after,
            })
        }

        /// Rows as "municipality kind class count: key [devices]; ...", checking on the way
        /// what every row promises.
        fn lines(&self) -> Vec<String> {
            render(&self.run())
        }
    }

    fn render(rows: &[ReconcileRow]) -> Vec<String> {
        rows.iter()
            .map(|row| {
                assert_eq!(row.count, row.subjects.len() as u64);
                let subjects: Vec<String> = row
                    .subjects
                    .iter()
                    .map(|s| {
                        assert_eq!((&s.municipality, s.kind), (&row.municipality, row.kind));
                        let key = match &s.key {
                            SubjectKey::Recipient(r) => r.to_string(),
                            SubjectKey::Device(v, d) => format!("{v}/{d}"),
                        };
                        let devices: Vec<String> =
                            s.devices.iter().map(|(v, d)| format!("{v}/{d}")).collect();
                        format!("{key} [{}]", devices.join(" "))
                    })
                    .collect();
                format!(
                    "{} {} {} {}: {}",
                    row.municipality,
                    row.kind,
                    row.class,
                    row.count,
                    subjects.join("; ")
                )
            })
            .collect()
    }

    #[test]
    fn every_class_on_a_hand_built_region() {
        let mut case = Case::at("2025-12-31T23:00:00Z");
        let recent = Some(case.at - Duration::days(1));
        case.now = vec![
            of("r1", dev("atea", "A1", SafetyAlarm, "3324")),
            of("r7", dev("atea", "A7", SafetyAlarm, "3324")),
            of("r2", dev("hepro", "H2", SafetyAlarm, "3324")),
            // r2's new tracker is a new service, not r2's alarm being on both vendors.
            of("r2", dev("atea", "AT2", Tracking, "3324")),
            of("r3", dev("hepro", "H3", SafetyAlarm, "3328")),
            of("r3", dev("atea", "A3", SafetyAlarm, "3328")),
            of("r4", dev("hepro", "H4", MedicationSupport, "3328")),
            of("r4", dev("atea", "A4", MedicationSupport, "3328")),
            of("r5", dev("atea", "A5", SafetyAlarm, "3320")),
            dev("hepro", "HS1", SmokeDetector, "3320"),
            dev("atea", "AS1", SmokeDetector, "3320"),
            // A third vendor is not part of this reconciliation.
            of("r1", dev("telenor", "T1", SafetyAlarm, "3320")),
        ];
        case.grace_ago = vec![
            of("r1", dev("hepro", "H1", SafetyAlarm, "3324")),
            of("r7", dev("hepro", "H7", SafetyAlarm, "3324")),
            of("r2", dev("hepro", "H2", SafetyAlarm, "3324")),
            of("r3", dev("hepro", "H3", SafetyAlarm, "3328")),
            of("r3", dev("atea", "A3", SafetyAlarm, "3328")),
            // r4's Atea dispenser came within the grace period.
            of("r4", dev("hepro", "H4", MedicationSupport, "3328")),
            dev("hepro", "HS1", SmokeDetector, "3320"),
        ];
        case.ever_old = vec![
            of("r1", dev("hepro", "H1", SafetyAlarm, "3324")),
            of("r7", dev("hepro", "H7", SafetyAlarm, "3324")),
            of("r2", dev("hepro", "H2", SafetyAlarm, "3324")),
            of("r3", dev("hepro", "H3", SafetyAlarm, "3328")),
            of("r4", dev("hepro", "H4", MedicationSupport, "3328")),
            dev("hepro", "HS1", SmokeDetector, "3320"),
        ];
        let mut returned = listed("hepro", "H1", SafetyAlarm, "3324");
        returned.in_service = false;
        case.listings = vec![
            returned,
            listed("hepro", "H2", SafetyAlarm, "3324"),
            listed("hepro", "H3", SafetyAlarm, "3328"),
            listed("hepro", "HS1", SmokeDetector, "3320"),
            // Listed, billed, never heard of: placed by its export row.
            listed("hepro", "H9", SafetyAlarm, "3324"),
            listed("atea", "A1", SafetyAlarm, "3324"),
            listed("atea", "A7", SafetyAlarm, "3324"),
            listed("atea", "A3", SafetyAlarm, "3328"),
            listed("atea", "A4", MedicationSupport, "3328"),
            listed("atea", "A5", SafetyAlarm, "3320"),
            listed("atea", "AS1", SmokeDetector, "3320"),
        ];
        case.reporting = ["H2", "H3", "H4", "HS1"]
            .iter()
            .map(|d| seen("hepro", d, recent))
            .chain(
                ["A1", "A7", "A3", "A4", "AS1", "AT2"]
                    .iter()
                    .map(|d| seen("atea", d, recent)),
            )
            .chain([
                seen("hepro", "H1", Some(case.at - Duration::days(60))),
                seen("atea", "A5", Some(case.at - Duration::days(20))),
                seen("telenor", "T1", recent),
            ])
            .collect();

        assert_eq!(
            case.lines(),
            [
                "3320 safety_alarm new 1: r5 [atea/A5]",
                "3320 safety_alarm listed_silent 1: atea/A5 [atea/A5]",
                "3320 smoke_detector pending 1: hepro/HS1 [hepro/HS1]",
                "3320 smoke_detector new 1: atea/AS1 [atea/AS1]",
                "3324 tracking new 1: r2 [atea/AT2]",
                "3324 tracking reporting_unlisted 1: atea/AT2 [atea/AT2]",
                "3324 safety_alarm migrated 2: r1 [atea/A1 hepro/H1]; r7 [atea/A7 hepro/H7]",
                "3324 safety_alarm pending 1: r2 [hepro/H2]",
                "3324 safety_alarm listed_silent 1: hepro/H9 [hepro/H9]",
                "3328 medication_support pending 1: r4 [atea/A4 hepro/H4]",
                "3328 medication_support reporting_unlisted 1: hepro/H4 [hepro/H4]",
                "3328 safety_alarm double 1: r3 [atea/A3 hepro/H3]",
            ]
        );
    }

    #[test]
    fn a_recipient_moving_municipality_is_counted_once_where_the_new_device_is() {
        // r6 had a Hepro alarm in Nesbyen and gets an Atea alarm after moving to Ål.
        let hepro_nesbyen = of("r6", dev("hepro", "H6", SafetyAlarm, "3322"));
        let atea_aal = of("r6", dev("atea", "A6", SafetyAlarm, "3328"));
        let mut case = Case::at("2025-12-31T23:00:00Z");
        case.ever_old = vec![hepro_nesbyen.clone()];

        // Hepro unit collected: migrated, in Ål only.
        case.now = vec![atea_aal.clone()];
        case.grace_ago = vec![hepro_nesbyen.clone()];
        assert_eq!(
            case.lines(),
            ["3328 safety_alarm migrated 1: r6 [atea/A6 hepro/H6]"]
        );

        // Hepro unit still in service in Nesbyen, Atea's came within grace: pending, in Ål.
        case.now = vec![hepro_nesbyen.clone(), atea_aal.clone()];
        assert_eq!(
            case.lines(),
            ["3328 safety_alarm pending 1: r6 [atea/A6 hepro/H6]"]
        );

        // Both for longer than the grace period: double, still once and in Ål.
        case.grace_ago = case.now.clone();
        assert_eq!(
            case.lines(),
            ["3328 safety_alarm double 1: r6 [atea/A6 hepro/H6]"]
        );
    }

    /// One installation, as the events describe it: in service from `from` to `until`.
    struct Install {
        device: InService,
        from: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    }

    fn install(device: InService, from: &str, until: Option<&str>) -> Install {
        Install {
            device,
            from: utc(from),
            until: until.map(utc),
        }
    }

    /// The three snapshots the caller would compute, using the real in-service rule.
    fn snapshots(history: &[Install], at: DateTime<Utc>, grace: Duration) -> Case {
        let records: Vec<LifecycleRecord> = history
            .iter()
            .flat_map(|i| {
                let record = |ts, installed: bool| LifecycleRecord {
                    vendor: i.device.vendor.clone(),
                    device: i.device.device.clone(),
                    event_id: EventId::parse(&format!("{}-{installed}", i.device.device))
                        .expect("id"),
                    ts,
                    installed,
                    kind: Some(i.device.kind),
                    municipality: i.device.municipality.clone(),
                };
                std::iter::once(record(i.from, true)).chain(i.until.map(|t| record(t, false)))
            })
            .collect();
        let at_instant = |t| -> Vec<InService> {
            let live = in_service_at(&records, t);
            history
                .iter()
                .filter(|i| live.contains_key(&(&i.device.vendor, &i.device.device)))
                .map(|i| i.device.clone())
                .collect()
        };
        let mut case = Case::at("2025-01-01T00:00:00Z");
        case.at = at;
        case.now = at_instant(at);
        case.grace_ago = at_instant(at - grace);
        case.ever_old = history
            .iter()
            .filter(|i| i.device.vendor == case.old && i.from < at)
            .map(|i| i.device.clone())
            .collect();
        case
    }

    #[test]
    fn a_device_replaced_on_the_day_it_migrates_is_one_migrated_subject() {
        // 15 October: Hepro A is replaced by Hepro B at 08:00, B is taken down at 11:00 and
        // Atea C installed at 13:00, all for r8.
        let a = of("r8", dev("hepro", "A", SafetyAlarm, "3324"));
        let mut b = of("r8", dev("hepro", "B", SafetyAlarm, "3324"));
        b.replaces = Some(a.device.clone());
        let c = of("r8", dev("atea", "C", SafetyAlarm, "3324"));
        let history = [
            install(a, "2024-03-01T10:00:00Z", Some("2025-10-15T06:00:00Z")),
            install(b, "2025-10-15T06:00:00Z", Some("2025-10-15T09:00:00Z")),
            install(c, "2025-10-15T11:00:00Z", None),
        ];
        let expected = ["3324 safety_alarm migrated 1: r8 [atea/C hepro/A hepro/B]"];
        // At the end of that day, and at the month end, with a 30-day grace period.
        for at in ["2025-10-15T22:00:00Z", "2025-10-31T23:00:00Z"] {
            let case = snapshots(&history, utc(at), Duration::days(30));
            assert_eq!(case.lines(), expected, "{at}");
        }
        // Mid-morning B was the recipient's only unit: pending.
        let case = snapshots(&history, utc("2025-10-15T08:00:00Z"), Duration::days(30));
        assert_eq!(case.lines(), ["3324 safety_alarm pending 1: r8 [hepro/B]"]);
    }

    #[test]
    fn double_only_when_the_overlap_is_longer_than_the_grace_period() {
        let history = [
            install(
                of("r1", dev("hepro", "H1", SafetyAlarm, "3324")),
                "2024-01-01T00:00:00Z",
                None,
            ),
            install(
                of("r1", dev("atea", "A1", SafetyAlarm, "3324")),
                "2025-11-01T12:00:00Z",
                None,
            ),
        ];
        let grace = Duration::days(30);
        let on_both_since = utc("2025-11-01T12:00:00Z");
        let at = |overlap: Duration| snapshots(&history, on_both_since + overlap, grace).lines();
        assert_eq!(
            at(grace),
            ["3324 safety_alarm pending 1: r1 [atea/A1 hepro/H1]"]
        );
        assert_eq!(
            at(grace + Duration::seconds(1)),
            ["3324 safety_alarm double 1: r1 [atea/A1 hepro/H1]"]
        );
    }

    #[test]
    fn no_reporting_unlisted_for_a_vendor_without_an_export() {
        let mut case = Case::at("2025-12-31T23:00:00Z");
        let recent = Some(case.at - Duration::hours(1));
        case.now = vec![
            dev("hepro", "H1", SafetyAlarm, "3324"),
            dev("atea", "A1", SafetyAlarm, "3324"),
        ];
        case.ever_old = vec![dev("hepro", "H1", SafetyAlarm, "3324")];
        case.reporting = vec![seen("hepro", "H1", recent), seen("atea", "A1", recent)];
        // Hepro's export lists another unit only; Atea has none.
        case.listings = vec![listed("hepro", "H2", SafetyAlarm, "3324")];
        case.silent_after = Duration::days(7);
        assert_eq!(
            case.lines(),
            [
                "3324 safety_alarm pending 1: hepro/H1 [hepro/H1]",
                "3324 safety_alarm new 1: atea/A1 [atea/A1]",
                "3324 safety_alarm listed_silent 1: hepro/H2 [hepro/H2]",
                "3324 safety_alarm reporting_unlisted 1: hepro/H1 [hepro/H1]",
            ]
        );
        // An Atea export that lists something else makes A1 unlisted.
        case.listings
            .push(listed("atea", "A2", SafetyAlarm, "3324"));
        case.reporting.push(seen("atea", "A2", recent));
        assert!(
            case.lines().contains(
                &"3324 safety_alarm reporting_unlisted 2: atea/A1 [atea/A1]; hepro/H1 [hepro/H1]"
                    .to_string()
            )
        );
    }

    #[test]
    fn silence_starts_exactly_silent_after_without_contact() {
        let mut case = Case::at("2025-12-31T23:00:00Z");
        case.listings = vec![listed("atea", "A1", SafetyAlarm, "3324")];
        let silent = ["3324 safety_alarm listed_silent 1: atea/A1 [atea/A1]"];
        for (last, expected) in [
            (None, &silent[..]),
            (Some(case.at - case.silent_after), &silent[..]),
            (
                Some(case.at - case.silent_after + Duration::seconds(1)),
                &[][..],
            ),
            // A contact after `at` says nothing about the window before it.
            (Some(case.at + Duration::seconds(1)), &silent[..]),
        ] {
            case.reporting = vec![seen("atea", "A1", last)];
            assert_eq!(case.lines(), expected, "{last:?}");
        }
    }

    #[test]
    fn the_same_serial_under_both_vendors_matches_when_a_side_has_no_recipient() {
        let mut case = Case::at("2025-12-31T23:00:00Z");
        // Re-registered on Atea's platform with the same serial, no recipient on either side.
        case.ever_old = vec![dev("hepro", "S1", SmokeDetector, "3326")];
        case.now = vec![dev("atea", "S1", SmokeDetector, "3326")];
        assert_eq!(
            case.lines(),
            ["3326 smoke_detector migrated 1: hepro/S1 [atea/S1 hepro/S1]"]
        );
        // While both are in service they are one subject, keyed by the old device.
        case.now.push(dev("hepro", "S1", SmokeDetector, "3326"));
        assert_eq!(
            case.lines(),
            ["3326 smoke_detector pending 1: hepro/S1 [atea/S1 hepro/S1]"]
        );
        // Hepro knew the recipient and Atea does not: matched on the device, keyed by r1.
        case.ever_old = vec![of("r1", dev("hepro", "S1", SmokeDetector, "3326"))];
        case.now = vec![dev("atea", "S1", SmokeDetector, "3326")];
        assert_eq!(
            case.lines(),
            ["3326 smoke_detector migrated 1: r1 [atea/S1 hepro/S1]"]
        );
        // Atea knows the recipient and Hepro did not.
        case.ever_old = vec![dev("hepro", "S1", SmokeDetector, "3326")];
        case.now = vec![of("r1", dev("atea", "S1", SmokeDetector, "3326"))];
        assert_eq!(
            case.lines(),
            ["3326 smoke_detector migrated 1: r1 [atea/S1 hepro/S1]"]
        );
        // Different serials and no recipient: nothing ties them together.
        case.now = vec![dev("atea", "S2", SmokeDetector, "3326")];
        assert_eq!(
            case.lines(),
            ["3326 smoke_detector new 1: atea/S2 [atea/S2]"]
        );
    }

    #[test]
    fn serializes_for_the_api() {
        let mut case = Case::at("2025-12-31T23:00:00Z");
        case.now = vec![of("r1", dev("atea", "A1", SafetyAlarm, "3324"))];
        let json = serde_json::to_value(case.run()).expect("json");
        assert_eq!(
            json,
            serde_json::json!([{
                "municipality": "3324",
                "kind": "safety_alarm",
                "class": "new",
                "count": 1,
                "subjects": [{
                    "key": {"recipient": "r1"},
                    "municipality": "3324",
                    "kind": "safety_alarm",
                    "devices": [["atea", "A1"]],
                }],
            }])
        );
        assert_eq!(
            serde_json::to_value(SubjectKey::Device(
                vendor("hepro"),
                DeviceId::parse("H1").expect("device")
            ))
            .expect("json"),
            serde_json::json!({"device": ["hepro", "H1"]})
        );
        for class in ReconcileClass::ALL {
            assert_eq!(ReconcileClass::from_id(class.id()), Some(class));
            assert_eq!(serde_json::to_value(class).expect("json"), class.id());
        }
    }

    fn row(municipality: &str, class: ReconcileClass, count: u64) -> ReconcileRow {
        ReconcileRow {
            municipality: MunicipalityCode::parse(municipality).expect("code"),
            kind: SafetyAlarm,
            class,
            count,
            subjects: vec![],
        }
    }

    #[test]
    fn migration_progress_month_by_month() {
        use ReconcileClass::*;
        let month = |m: &str| m.parse::<YearMonth>().expect("month");
        let per_month = vec![
            (
                month("2025-10"),
                vec![row("3324", Pending, 8), row("3324", New, 1)],
            ),
            (
                month("2025-11"),
                vec![
                    row("3324", Migrated, 3),
                    row("3324", Pending, 4),
                    row("3324", Double, 1),
                    row("3324", ListedSilent, 5),
                    row("3328", Migrated, 2),
                ],
            ),
        ];
        let progress = migration_progress(&per_month);
        let summary: Vec<String> = progress
            .iter()
            .map(|p| {
                format!(
                    "{} {} {}/{}/{}/{} {:?}",
                    p.municipality,
                    p.month,
                    p.migrated,
                    p.pending,
                    p.double,
                    p.new,
                    p.share_migrated
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                "3324 2025-10 0/8/0/1 Some(0.0)",
                "3324 2025-11 3/4/1/0 Some(0.375)",
                // Ål had nothing in October: a zero month, not a gap.
                "3328 2025-10 0/0/0/0 None",
                "3328 2025-11 2/0/0/0 Some(1.0)",
            ]
        );
        assert!(migration_progress(&[]).is_empty());
    }

    const VENDORS: [&str; 3] = ["hepro", "atea", "telenor"];

    fn arb_device() -> impl Strategy<Value = InService> {
        (
            0usize..3,
            0u8..5,
            0usize..2,
            0usize..2,
            prop::option::of(0u8..3),
            prop::option::of(0u8..5),
        )
            .prop_map(|(v, d, k, m, r, rep)| InService {
                vendor: vendor(VENDORS[v]),
                device: DeviceId::parse(&format!("D{d}")).expect("device"),
                kind: [SafetyAlarm, SmokeDetector][k],
                municipality: MunicipalityCode::parse(["3320", "3328"][m]).expect("code"),
                recipient: r.map(|r| RecipientRef::parse(&format!("r{r}")).expect("recipient")),
                replaces: rep.map(|x| DeviceId::parse(&format!("D{x}")).expect("device")),
            })
    }

    fn arb_devices() -> impl Strategy<Value = Vec<InService>> {
        prop::collection::vec(arb_device(), 0..12)
    }

    proptest! {
        #[test]
        fn the_four_classes_partition_the_subjects_in_service(
            now in arb_devices(),
            grace_ago in arb_devices(),
            ever_old in arb_devices(),
            listed_devices in arb_devices(),
            contacts in prop::collection::vec((0usize..3, 0u8..5, prop::option::of(0i64..30)), 0..10),
        ) {
            let mut case = Case::at("2025-12-31T23:00:00Z");
            case.now = now;
            case.grace_ago = grace_ago;
            case.ever_old = ever_old;
            case.listings = listed_devices
                .iter()
                .map(|d| Listing {
                    vendor: d.vendor.clone(),
                    device: d.device.clone(),
                    kind: Some(d.kind),
                    municipality: Some(d.municipality.clone()),
                    recipient: d.recipient.clone(),
                    in_service: d.replaces.is_none(),
                })
                .collect();
            case.reporting = contacts
                .iter()
                .map(|&(v, d, days)| {
                    seen(VENDORS[v], &format!("D{d}"), days.map(|n| case.at - Duration::days(n)))
                })
                .collect();
            let rows = case.run();
            render(&rows); // checks count == subjects and each subject sits in its row
            let counted = reconcile_counts(&ReconcileInput {
                at: case.at,
                old: &case.old,
                new: &case.new,
                in_service: &case.now.iter().collect::<Vec<_>>(),
                in_service_grace_ago: &case.grace_ago.iter().collect::<Vec<_>>(),
                ever_old: &case.ever_old.iter().collect::<Vec<_>>(),
                listings: &case.listings,
                reporting: &case.reporting,
                silent_after: case.silent_after,
            });
            let without_subjects: Vec<ReconcileRow> = rows
                .iter()
                .map(|r| ReconcileRow { subjects: Vec::new(), ..r.clone() })
                .collect();
            prop_assert_eq!(counted, without_subjects);

            prop_assert!(rows.iter().all(|r| r.count > 0));
            let order = |r: &ReconcileRow| (r.municipality.clone(), r.kind, r.class);
            prop_assert!(rows.windows(2).all(|w| order(&w[0]) < order(&w[1])), "rows out of order");

            // No subject twice across the four classes.
            let partition: Vec<(&ReconcileRow, &Subject)> = rows
                .iter()
                .filter(|r| r.class.is_partition())
                .flat_map(|r| r.subjects.iter().map(move |s| (r, s)))
                .collect();
            let identities: BTreeSet<(&SubjectKey, TechnologyKind)> =
                partition.iter().map(|(_, s)| (&s.key, s.kind)).collect();
            prop_assert_eq!(identities.len(), partition.len());

            // Every old- or new-vendor device in service at `at` sits in exactly one subject.
            // A migrated subject also names its past old-vendor devices; those are history.
            let (old, new) = (&case.old, &case.new);
            let mut named: Vec<(VendorId, DeviceId)> = partition
                .iter()
                .flat_map(|&(r, s)| {
                    s.devices
                        .iter()
                        .filter(move |(v, _)| !(r.class == ReconcileClass::Migrated && v == old))
                        .cloned()
                })
                .collect();
            named.sort();
            let expected: Vec<(VendorId, DeviceId)> = case
                .now
                .iter()
                .filter(|d| d.vendor == case.old || d.vendor == case.new)
                .map(|d| (d.vendor.clone(), d.device.clone()))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            prop_assert_eq!(named, expected);

            // Each class has the devices its definition needs. (A migrated subject's old devices
            // are history: one of them may be in service again, for another recipient.)
            for (r, s) in &partition {
                let names = |v: &VendorId| s.devices.iter().any(|(dv, _)| dv == v);
                let live = |v: &VendorId| {
                    s.devices.iter().any(|(dv, dd)| {
                        dv == v && case.now.iter().any(|d| &d.vendor == dv && &d.device == dd)
                    })
                };
                match r.class {
                    ReconcileClass::Migrated => prop_assert!(live(new) && names(old)),
                    ReconcileClass::New => prop_assert!(live(new) && !names(old)),
                    ReconcileClass::Pending => prop_assert!(live(old)),
                    ReconcileClass::Double => prop_assert!(live(old) && live(new)),
                    _ => unreachable!(),
                }
            }
        }
    }
}
