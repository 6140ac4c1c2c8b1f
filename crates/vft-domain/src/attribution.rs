//! Why a row of the monthly table moved. The coordinator must explain every jump in the
//! table; this turns two month-end snapshots into lines like "safety alarms +3 installed,
//! −1 decommissioned, 0 replaced (2 devices)".
//!
//! The guarantee: for every technology kind, the deltas of its lines add up to exactly the
//! change of its row. Every device that enters or leaves the counted set is named in a line of
//! that kind, and a device is named only in the lines its ±1 goes to.

use crate::ids::{DeviceId, MunicipalityCode, RecipientRef, VendorId};
use crate::kind::TechnologyKind;
use ahash::AHashMap as HashMap;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One device in service at a month end, as `in_service_at` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InService {
    pub vendor: VendorId,
    pub device: DeviceId,
    pub kind: TechnologyKind,
    pub municipality: MunicipalityCode,
    pub recipient: Option<RecipientRef>,
    pub replaces: Option<DeviceId>,
}

/// Which devices a table counts at one instant: municipalities (None = all) and vendor
/// (None = all). The municipalities are usually a cooperation's members at that instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub municipalities: Option<BTreeSet<MunicipalityCode>>,
    pub vendor: Option<VendorId>,
}

impl Scope {
    /// Every device, of every municipality and vendor.
    pub fn all() -> Self {
        Self::default()
    }

    pub fn admits(&self, municipality: &MunicipalityCode, vendor: &VendorId) -> bool {
        self.municipalities
            .as_ref()
            .is_none_or(|set| set.contains(municipality))
            && self.vendor.as_ref().is_none_or(|v| v == vendor)
    }

    pub fn counts(&self, d: &InService) -> bool {
        self.admits(&d.municipality, &d.vendor)
    }
}

/// Why a device entered or left the counted set. Ordered as the lines are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeCause {
    /// New device, neither a replacement nor a vendor migration.
    Installed,
    /// Gone, and no new device replaced it or took over its recipient.
    Decommissioned,
    /// A new device whose `replaces` names a gone device of the same vendor.
    Replaced,
    /// A new device of one vendor for a recipient whose device of another vendor is gone.
    VendorMigration,
    /// Kept, moved to a municipality the table counts.
    MovedIn,
    /// Kept, moved to a municipality the table does not count.
    MovedOut,
    /// Kept, counted at both month ends, but its technology kind changed.
    KindChanged,
    /// Kept in the same municipality, which the table started counting (joined the scope).
    MunicipalityJoined,
    /// Kept in the same municipality, which the table stopped counting (left the scope).
    MunicipalityLeft,
}

/// One explanation line of a table row: `delta` is the sum of the ±1 of `devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeLine {
    pub kind: TechnologyKind,
    pub cause: ChangeCause,
    pub delta: i64,
    /// The devices behind the line, sorted by (vendor, device).
    pub devices: Vec<(VendorId, DeviceId)>,
}

type Key<'a> = (&'a VendorId, &'a DeviceId);

fn key(d: &InService) -> Key<'_> {
    (&d.vendor, &d.device)
}

/// Lines being collected, keyed by (kind, cause) so the output comes out sorted. A line's
/// devices are sorted once, when the lines are handed out.
#[derive(Default)]
struct Lines<'a> {
    map: BTreeMap<(TechnologyKind, ChangeCause), (i64, Vec<Key<'a>>)>,
}

impl<'a> Lines<'a> {
    fn add(&mut self, d: &'a InService, delta: i64, cause: ChangeCause) {
        let (sum, devices) = self.map.entry((d.kind, cause)).or_default();
        *sum += delta;
        devices.push(key(d));
    }

    /// A new device taking over from a gone one: each side counts only where its scope
    /// admits it.
    fn pair(
        &mut self,
        now: &'a InService,
        after_scope: &Scope,
        was: &'a InService,
        before_scope: &Scope,
        cause: ChangeCause,
    ) {
        if after_scope.counts(now) {
            self.add(now, 1, cause);
        }
        if before_scope.counts(was) {
            self.add(was, -1, cause);
        }
    }

    fn into_vec(self) -> Vec<ChangeLine> {
        self.map
            .into_iter()
            .map(|((kind, cause), (delta, mut devices))| {
                devices.sort_unstable();
                devices.dedup();
                ChangeLine {
                    kind,
                    cause,
                    delta,
                    devices: devices
                        .into_iter()
                        .map(|(v, d)| (v.clone(), d.clone()))
                        .collect(),
                }
            })
            .collect()
    }
}

/// Devices only in `before` that no pair has claimed yet, indexed by key and by recipient.
/// Hashed: a month's changes at national size are over ten thousand devices, and
/// string-keyed B-trees were a fifth of an attribution's time.
struct Gone<'a> {
    by_key: HashMap<Key<'a>, &'a InService>,
    /// Each recipient's gone devices, sorted by key; a claimed one stays listed here and is
    /// skipped because `by_key` no longer has it.
    by_recipient: HashMap<&'a RecipientRef, Vec<Key<'a>>>,
}

impl<'a> Gone<'a> {
    fn new(devices: impl Iterator<Item = &'a InService>) -> Self {
        let mut gone = Self {
            by_key: HashMap::new(),
            by_recipient: HashMap::new(),
        };
        for d in devices {
            gone.by_key.insert(key(d), d);
            if let Some(r) = &d.recipient {
                gone.by_recipient.entry(r).or_default().push(key(d));
            }
        }
        for keys in gone.by_recipient.values_mut() {
            keys.sort_unstable();
        }
        gone
    }

    fn take(&mut self, k: Key<'a>) -> Option<&'a InService> {
        self.by_key.remove(&k)
    }

    /// The gone device of another vendor with the same recipient, lowest key first; with
    /// `same_kind`, only one of the new device's kind.
    fn migration_source(&self, new: &InService, same_kind: bool) -> Option<Key<'a>> {
        let keys = self.by_recipient.get(new.recipient.as_ref()?)?;
        keys.iter().copied().find(|k| {
            self.by_key
                .get(k)
                .is_some_and(|old| old.vendor != new.vendor && (!same_kind || old.kind == new.kind))
        })
    }
}

/// Explains, per technology kind, the change between two month ends.
///
/// `before` and `after` are all devices in service at the two month ends, unfiltered, one
/// entry per (vendor, device) (a repeated key is taken once, at its first occurrence);
/// `before_scope` and `after_scope` say which of them the table counts at each instant.
///
/// Classification, in this order of precedence:
/// 1. **In both snapshots**: counted at both ends → `KindChanged` if its kind changed (−1 old
///    kind, +1 new kind), else nothing. Counted at one end only → `MovedIn`/`MovedOut` if its
///    municipality changed, else `MunicipalityJoined`/`MunicipalityLeft` (the scope changed).
/// 2. **Only in `after`, with `replaces`** naming a device of the same vendor only in `before`
///    → `Replaced`. Explicit replacements are resolved first, for every new device, so a
///    recipient inference can never steal a device that was explicitly replaced.
/// 3. **Only in `after`, with a recipient** that an unclaimed device of another vendor only in
///    `before` had → `VendorMigration`. Candidates of the same kind are paired first, then any
///    kind; among candidates the lowest (vendor, device) wins, new devices in key order.
/// 4. Otherwise only in `after` → `Installed`; only in `before` and unclaimed →
///    `Decommissioned`.
///
/// A pair gives +1 to the new device's kind if it counts after and −1 to the old one's kind if
/// it counted before, so under a vendor filter only one side of a migration shows. A device is
/// listed in a line only when it contributes to it; a replacement within scope therefore gives
/// a line with delta 0 and both devices, which explains a flat row.
pub fn attribute_changes(
    before: &[InService],
    before_scope: &Scope,
    after: &[InService],
    after_scope: &Scope,
) -> Vec<ChangeLine> {
    let before_by_key = index(before);
    let after_by_key = index(after);
    let mut lines = Lines::default();

    for (k, &now) in &after_by_key {
        let Some(&was) = before_by_key.get(k) else {
            continue;
        };
        let moved = was.municipality != now.municipality;
        match (before_scope.counts(was), after_scope.counts(now)) {
            (true, true) if was.kind != now.kind => {
                lines.add(was, -1, ChangeCause::KindChanged);
                lines.add(now, 1, ChangeCause::KindChanged);
            }
            (true, false) => {
                let cause = if moved {
                    ChangeCause::MovedOut
                } else {
                    ChangeCause::MunicipalityLeft
                };
                lines.add(was, -1, cause);
            }
            (false, true) => {
                let cause = if moved {
                    ChangeCause::MovedIn
                } else {
                    ChangeCause::MunicipalityJoined
                };
                lines.add(now, 1, cause);
            }
            _ => {}
        }
    }

    let mut gone = Gone::new(
        before_by_key
            .iter()
            .filter(|(k, _)| !after_by_key.contains_key(*k))
            .map(|(_, &d)| d),
    );
    let mut new: Vec<&InService> = after_by_key
        .iter()
        .filter(|(k, _)| !before_by_key.contains_key(*k))
        .map(|(_, &d)| d)
        .collect();
    // Pairing claims in this order (see above): by key, whatever order the map holds them in.
    new.sort_unstable_by(|a, b| key(a).cmp(&key(b)));

    // All explicit replacements first, then migrations (same kind, then any kind): see above.
    let mut unpaired: Vec<&InService> = Vec::new();
    for now in new {
        let was = now
            .replaces
            .as_ref()
            .and_then(|old| gone.take((&now.vendor, old)));
        match was {
            Some(was) => lines.pair(now, after_scope, was, before_scope, ChangeCause::Replaced),
            None => unpaired.push(now),
        }
    }
    for same_kind in [true, false] {
        let mut still: Vec<&InService> = Vec::new();
        for now in unpaired {
            match gone
                .migration_source(now, same_kind)
                .and_then(|k| gone.take(k))
            {
                Some(was) => lines.pair(
                    now,
                    after_scope,
                    was,
                    before_scope,
                    ChangeCause::VendorMigration,
                ),
                None => still.push(now),
            }
        }
        unpaired = still;
    }
    for now in unpaired {
        if after_scope.counts(now) {
            lines.add(now, 1, ChangeCause::Installed);
        }
    }
    for was in gone.by_key.values() {
        if before_scope.counts(was) {
            lines.add(was, -1, ChangeCause::Decommissioned);
        }
    }
    lines.into_vec()
}

fn index(devices: &[InService]) -> HashMap<Key<'_>, &InService> {
    let mut map = HashMap::with_capacity(devices.len());
    for d in devices {
        map.entry(key(d)).or_insert(d);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChangeCause::*;
    use TechnologyKind::{SafetyAlarm, SmokeDetector, Tracking};
    use proptest::prelude::*;

    fn dev(vendor: &str, device: &str, kind: TechnologyKind, municipality: &str) -> InService {
        InService {
            vendor: VendorId::parse(vendor).expect("vendor"),
            device: DeviceId::parse(device).expect("device"),
            kind,
            municipality: MunicipalityCode::parse(municipality).expect("code"),
            recipient: None,
            replaces: None,
        }
    }

    fn for_recipient(mut d: InService, r: &str) -> InService {
        d.recipient = Some(RecipientRef::parse(r).expect("recipient"));
        d
    }

    fn replacing(mut d: InService, old: &str) -> InService {
        d.replaces = Some(DeviceId::parse(old).expect("device"));
        d
    }

    fn scope(municipalities: Option<&[&str]>, vendor: Option<&str>) -> Scope {
        Scope {
            municipalities: municipalities.map(|list| {
                list.iter()
                    .map(|m| MunicipalityCode::parse(m).expect("code"))
                    .collect()
            }),
            vendor: vendor.map(|v| VendorId::parse(v).expect("vendor")),
        }
    }

    fn line(
        kind: TechnologyKind,
        cause: ChangeCause,
        delta: i64,
        devices: &[(&str, &str)],
    ) -> ChangeLine {
        ChangeLine {
            kind,
            cause,
            delta,
            devices: devices
                .iter()
                .map(|(v, d)| {
                    (
                        VendorId::parse(v).expect("vendor"),
                        DeviceId::parse(d).expect("device"),
                    )
                })
                .collect(),
        }
    }

    fn count(devices: &[InService], scope: &Scope, kind: TechnologyKind) -> i64 {
        index(devices)
            .values()
            .filter(|d| d.kind == kind && scope.counts(d))
            .count() as i64
    }

    /// Attributes and checks the row invariant on the way.
    fn explain(
        before: &[InService],
        before_scope: &Scope,
        after: &[InService],
        after_scope: &Scope,
    ) -> Vec<ChangeLine> {
        let lines = attribute_changes(before, before_scope, after, after_scope);
        for kind in TechnologyKind::ALL {
            let sum: i64 = lines
                .iter()
                .filter(|l| l.kind == kind)
                .map(|l| l.delta)
                .sum();
            assert_eq!(
                sum,
                count(after, after_scope, kind) - count(before, before_scope, kind),
                "{kind}: {lines:?}"
            );
        }
        lines
    }

    #[test]
    fn installed_and_decommissioned() {
        let before = [dev("hepro", "H1", SafetyAlarm, "3328")];
        let after = [dev("hepro", "H2", SafetyAlarm, "3328")];
        let all = Scope::all();
        assert_eq!(
            explain(&before, &all, &after, &all),
            [
                line(SafetyAlarm, Installed, 1, &[("hepro", "H2")]),
                line(SafetyAlarm, Decommissioned, -1, &[("hepro", "H1")]),
            ]
        );
        // Nothing changed: nothing to explain.
        assert_eq!(explain(&before, &all, &before, &all), []);
    }

    #[test]
    fn a_replacement_within_scope_is_a_flat_line_naming_both_devices() {
        let before = [dev("hepro", "H1", SafetyAlarm, "3328")];
        let after = [replacing(dev("hepro", "H2", SafetyAlarm, "3328"), "H1")];
        let all = Scope::all();
        assert_eq!(
            explain(&before, &all, &after, &all),
            [line(
                SafetyAlarm,
                Replaced,
                0,
                &[("hepro", "H1"), ("hepro", "H2")]
            )]
        );
        // A replacement by another kind moves one unit between rows.
        let after = [replacing(dev("hepro", "H2", SmokeDetector, "3328"), "H1")];
        assert_eq!(
            explain(&before, &all, &after, &all),
            [
                line(SafetyAlarm, Replaced, -1, &[("hepro", "H1")]),
                line(SmokeDetector, Replaced, 1, &[("hepro", "H2")]),
            ]
        );
        // `replaces` only pairs within a vendor: an Atea unit naming a Hepro id is installed.
        let after = [replacing(dev("atea", "H2", SafetyAlarm, "3328"), "H1")];
        assert_eq!(
            explain(&before, &all, &after, &all),
            [
                line(SafetyAlarm, Installed, 1, &[("atea", "H2")]),
                line(SafetyAlarm, Decommissioned, -1, &[("hepro", "H1")]),
            ]
        );
    }

    #[test]
    fn vendor_migration_shows_one_side_under_a_vendor_filter() {
        let before = [for_recipient(dev("hepro", "H1", SafetyAlarm, "3328"), "r1")];
        let after = [for_recipient(dev("atea", "A1", SafetyAlarm, "3328"), "r1")];
        let all = Scope::all();
        assert_eq!(
            explain(&before, &all, &after, &all),
            [line(
                SafetyAlarm,
                VendorMigration,
                0,
                &[("atea", "A1"), ("hepro", "H1")]
            )]
        );
        let hepro = scope(None, Some("hepro"));
        assert_eq!(
            explain(&before, &hepro, &after, &hepro),
            [line(SafetyAlarm, VendorMigration, -1, &[("hepro", "H1")])]
        );
        let atea = scope(None, Some("atea"));
        assert_eq!(
            explain(&before, &atea, &after, &atea),
            [line(SafetyAlarm, VendorMigration, 1, &[("atea", "A1")])]
        );
    }

    #[test]
    fn a_recipient_moving_municipality_while_migrating_vendor() {
        // The recipient moves from Nesbyen (Hepro) to Ål (Atea) between the month ends.
        let before = [for_recipient(dev("hepro", "H1", SafetyAlarm, "3322"), "r1")];
        let after = [for_recipient(dev("atea", "A1", SafetyAlarm, "3328"), "r1")];
        let all = Scope::all();
        assert_eq!(
            explain(&before, &all, &after, &all),
            [line(
                SafetyAlarm,
                VendorMigration,
                0,
                &[("atea", "A1"), ("hepro", "H1")]
            )]
        );
        let nesbyen = scope(Some(&["3322"]), None);
        assert_eq!(
            explain(&before, &nesbyen, &after, &nesbyen),
            [line(SafetyAlarm, VendorMigration, -1, &[("hepro", "H1")])]
        );
        let aal = scope(Some(&["3328"]), None);
        assert_eq!(
            explain(&before, &aal, &after, &aal),
            [line(SafetyAlarm, VendorMigration, 1, &[("atea", "A1")])]
        );
    }

    #[test]
    fn an_explicit_replacement_wins_over_a_same_day_vendor_migration() {
        // Same recipient: Hepro replaced H1 by H2, and Atea installed A1 that day. "atea"
        // sorts before "hepro", so a single pass in key order would let A1 claim H1 as a
        // migration and leave H2 unexplained; explicit replacements are resolved first.
        let before = [for_recipient(dev("hepro", "H1", SafetyAlarm, "3328"), "r1")];
        let after = [
            for_recipient(dev("atea", "A1", SafetyAlarm, "3328"), "r1"),
            for_recipient(
                replacing(dev("hepro", "H2", SafetyAlarm, "3328"), "H1"),
                "r1",
            ),
        ];
        let all = Scope::all();
        assert_eq!(
            explain(&before, &all, &after, &all),
            [
                line(SafetyAlarm, Installed, 1, &[("atea", "A1")]),
                line(
                    SafetyAlarm,
                    Replaced,
                    0,
                    &[("hepro", "H1"), ("hepro", "H2")]
                ),
            ]
        );
    }

    #[test]
    fn migrations_pair_devices_of_the_same_kind_first() {
        // One recipient with a safety alarm and a smoke detector moves both to Atea. A0 sorts
        // first and is a smoke detector; pairing by key alone would cross the kinds.
        let before = [
            for_recipient(dev("hepro", "H1", SafetyAlarm, "3328"), "r1"),
            for_recipient(dev("hepro", "H2", SmokeDetector, "3328"), "r1"),
        ];
        let after = [
            for_recipient(dev("atea", "A0", SmokeDetector, "3328"), "r1"),
            for_recipient(dev("atea", "A1", SafetyAlarm, "3328"), "r1"),
        ];
        let all = Scope::all();
        assert_eq!(
            explain(&before, &all, &after, &all),
            [
                line(
                    SafetyAlarm,
                    VendorMigration,
                    0,
                    &[("atea", "A1"), ("hepro", "H1")]
                ),
                line(
                    SmokeDetector,
                    VendorMigration,
                    0,
                    &[("atea", "A0"), ("hepro", "H2")]
                ),
            ]
        );
    }

    #[test]
    fn moves_between_municipalities() {
        let in_flaa = [dev("hepro", "H1", SafetyAlarm, "3320")];
        let in_aal = [dev("hepro", "H1", SafetyAlarm, "3328")];
        let aal = scope(Some(&["3328"]), None);
        assert_eq!(
            explain(&in_flaa, &aal, &in_aal, &aal),
            [line(SafetyAlarm, MovedIn, 1, &[("hepro", "H1")])]
        );
        assert_eq!(
            explain(&in_aal, &aal, &in_flaa, &aal),
            [line(SafetyAlarm, MovedOut, -1, &[("hepro", "H1")])]
        );
        // A move inside the scope does not change the row.
        let both = scope(Some(&["3320", "3328"]), None);
        assert_eq!(explain(&in_flaa, &both, &in_aal, &both), []);
    }

    #[test]
    fn kind_changed() {
        let before = [dev("hepro", "H1", SafetyAlarm, "3328")];
        let after = [dev("hepro", "H1", Tracking, "3328")];
        let all = Scope::all();
        assert_eq!(
            explain(&before, &all, &after, &all),
            [
                line(Tracking, KindChanged, 1, &[("hepro", "H1")]),
                line(SafetyAlarm, KindChanged, -1, &[("hepro", "H1")]),
            ]
        );
    }

    #[test]
    fn municipalities_joining_and_leaving_the_scope() {
        // Nesbyen leaves the cooperation on 1 July: June's scope has it, July's does not.
        let devices = [
            dev("hepro", "N1", SafetyAlarm, "3322"),
            dev("hepro", "G1", SafetyAlarm, "3324"),
        ];
        let june = scope(Some(&["3322", "3324"]), None);
        let july = scope(Some(&["3324"]), None);
        assert_eq!(
            explain(&devices, &june, &devices, &july),
            [line(SafetyAlarm, MunicipalityLeft, -1, &[("hepro", "N1")])]
        );
        assert_eq!(
            explain(&devices, &july, &devices, &june),
            [line(SafetyAlarm, MunicipalityJoined, 1, &[("hepro", "N1")])]
        );
        // Leaving while moving out of the scope is a move.
        let moved = [
            dev("hepro", "N1", SafetyAlarm, "3320"),
            dev("hepro", "G1", SafetyAlarm, "3324"),
        ];
        assert_eq!(
            explain(&devices, &june, &moved, &july),
            [line(SafetyAlarm, MovedOut, -1, &[("hepro", "N1")])]
        );
    }

    #[test]
    fn serializes_causes_in_snake_case() {
        let json = serde_json::to_value(line(SafetyAlarm, VendorMigration, 0, &[("atea", "A1")]))
            .expect("json");
        assert_eq!(json["cause"], "vendor_migration");
        assert_eq!(json["kind"], "safety_alarm");
        assert_eq!(json["devices"][0], serde_json::json!(["atea", "A1"]));
    }

    const VENDORS: [&str; 2] = ["hepro", "atea"];
    const MUNICIPALITIES: [&str; 3] = ["3320", "3322", "3328"];

    fn arb_device() -> impl Strategy<Value = InService> {
        (
            0usize..2,
            0u8..6,
            0usize..3,
            0usize..3,
            prop::option::of(0u8..3),
            prop::option::of(0u8..6),
        )
            .prop_map(|(v, d, k, m, r, rep)| InService {
                vendor: VendorId::parse(VENDORS[v]).expect("vendor"),
                device: DeviceId::parse(&format!("D{d}")).expect("device"),
                kind: [SafetyAlarm, SmokeDetector, Tracking][k],
                municipality: MunicipalityCode::parse(MUNICIPALITIES[m]).expect("code"),
                recipient: r.map(|r| RecipientRef::parse(&format!("r{r}")).expect("recipient")),
                replaces: rep.map(|x| DeviceId::parse(&format!("D{x}")).expect("device")),
            })
    }

    fn arb_snapshot() -> impl Strategy<Value = Vec<InService>> {
        // One entry per key, as a month-end snapshot has.
        prop::collection::vec(arb_device(), 0..10)
            .prop_map(|v| index(&v).into_values().cloned().collect())
    }

    fn arb_scope() -> impl Strategy<Value = Scope> {
        (prop::option::of(0u8..8), prop::option::of(0usize..2)).prop_map(|(bits, v)| Scope {
            municipalities: bits.map(|bits| {
                MUNICIPALITIES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bits & (1 << i) != 0)
                    .map(|(_, m)| MunicipalityCode::parse(m).expect("code"))
                    .collect()
            }),
            vendor: v.map(|v| VendorId::parse(VENDORS[v]).expect("vendor")),
        })
    }

    /// (vendor, device, kind) of the devices a scope counts.
    fn counted(
        devices: &[InService],
        scope: &Scope,
    ) -> BTreeSet<(VendorId, DeviceId, TechnologyKind)> {
        devices
            .iter()
            .filter(|d| scope.counts(d))
            .map(|d| (d.vendor.clone(), d.device.clone(), d.kind))
            .collect()
    }

    proptest! {
        /// What the store reads for an attribution (`Store::service_changes`): only devices
        /// whose entry differs between the two ends, and those kept in a municipality the
        /// selection took in or let go. The rest, left out, change no line.
        #[test]
        fn devices_the_same_at_both_ends_explain_nothing(
            before in arb_snapshot(),
            after in arb_snapshot(),
            before_scope in arb_scope(),
            after_municipalities in arb_scope(),
        ) {
            // One selection at two instants: its vendor is the same, its members may differ.
            let after_scope = Scope { vendor: before_scope.vendor.clone(), ..after_municipalities };
            let shifted = |m: &MunicipalityCode| match (&before_scope.municipalities, &after_scope.municipalities) {
                (None, None) => false,
                (Some(b), Some(a)) => b.contains(m) != a.contains(m),
                _ => true,
            };
            let (was, now) = (index(&before), index(&after));
            let explains = |d: &InService| was.get(&key(d)) != now.get(&key(d)) || shifted(&d.municipality);
            let only = |v: &[InService]| v.iter().filter(|d| explains(d)).cloned().collect::<Vec<_>>();
            prop_assert_eq!(
                attribute_changes(&only(&before), &before_scope, &only(&after), &after_scope),
                attribute_changes(&before, &before_scope, &after, &after_scope)
            );
        }
    }

    proptest! {
        #[test]
        fn lines_add_up_and_name_every_device_that_moved_the_row(
            before in arb_snapshot(),
            after in arb_snapshot(),
            before_scope in arb_scope(),
            after_scope in arb_scope(),
        ) {
            let lines = attribute_changes(&before, &before_scope, &after, &after_scope);
            for kind in TechnologyKind::ALL {
                let sum: i64 = lines.iter().filter(|l| l.kind == kind).map(|l| l.delta).sum();
                prop_assert_eq!(
                    sum,
                    count(&after, &after_scope, kind) - count(&before, &before_scope, kind)
                );
            }

            // A device "moved the row of kind k" when it is counted with kind k at exactly one
            // of the two ends. Those, and only those, are named in lines of kind k.
            let (was, now) = (counted(&before, &before_scope), counted(&after, &after_scope));
            let moved: BTreeSet<_> = was.symmetric_difference(&now).cloned().collect();
            let named: BTreeSet<_> = lines
                .iter()
                .flat_map(|l| l.devices.iter().map(|(v, d)| (v.clone(), d.clone(), l.kind)))
                .collect();
            prop_assert_eq!(&named, &moved);
            prop_assert!(lines.iter().all(|l| !l.devices.is_empty()));
            prop_assert!(lines.windows(2).all(|w| (w[0].kind, w[0].cause) < (w[1].kind, w[1].cause)));

            // Input order never changes the answer.
            let reversed = |v: &[InService]| v.iter().rev().cloned().collect::<Vec<_>>();
            prop_assert_eq!(
                attribute_changes(&reversed(&before), &before_scope, &reversed(&after), &after_scope),
                lines
            );
        }
    }
}
