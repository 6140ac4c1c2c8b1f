//! The vendor transition of the simulated region: the inventory exports parse with the example
//! import formats, and reconciling them against the events finds every class and every planted
//! discrepancy. No network, no store: the domain's rules on the simulation's events.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use vft_domain::import::{ImportFormat, parse_inventory};
use vft_domain::reconcile::{
    Listing, ReconcileClass, ReconcileInput, ReconcileRow, Reporting, SubjectKey, reconcile,
};
use vft_domain::{DeviceId, Event, EventType, InService, VendorId};
use vft_sim::{
    Discrepancy, InventoryExport, Plan, Simulation, generate, inventory_exports, last_simulated_day,
};

const HEPRO_FORMAT: &str = include_str!("../../../config/imports/hepro.example.toml");
const ATEA_FORMAT: &str = include_str!("../../../config/imports/atea.example.toml");

fn sim() -> &'static Simulation {
    static SIM: OnceLock<Simulation> = OnceLock::new();
    SIM.get_or_init(|| generate(&Plan::hallingdal_2025()).expect("generates"))
}

fn formats() -> BTreeMap<String, ImportFormat> {
    [("hepro", HEPRO_FORMAT), ("atea", ATEA_FORMAT)]
        .into_iter()
        .map(|(v, text)| (v.to_owned(), toml::from_str(text).expect("example format")))
        .collect()
}

fn vendor(v: &str) -> VendorId {
    VendorId::parse(v).expect("vendor")
}

fn exports() -> &'static (NaiveDate, Vec<InventoryExport>) {
    static EXPORTS: OnceLock<(NaiveDate, Vec<InventoryExport>)> = OnceLock::new();
    EXPORTS.get_or_init(|| {
        let day = last_simulated_day(sim()).expect("a simulated month");
        let exports =
            inventory_exports(sim(), &Plan::hallingdal_2025(), &formats(), day).expect("exports");
        (day, exports)
    })
}

/// The last instant of a day in Europe/Oslo, as `GET /reconciliation?at=` takes it.
fn end_of(day: NaiveDate) -> DateTime<Utc> {
    let next = day
        .succ_opt()
        .expect("day")
        .and_hms_opt(0, 0, 0)
        .expect("midnight");
    chrono_tz::Europe::Oslo
        .from_local_datetime(&next)
        .earliest()
        .expect("exists")
        .with_timezone(&Utc)
        - Duration::microseconds(1)
}

/// Devices in service at `t` by the events (latest lifecycle event at or before `t`).
fn in_service(events: &[Event], t: DateTime<Utc>) -> Vec<InService> {
    let mut latest: BTreeMap<(&VendorId, &DeviceId), (&Event, Option<&Event>)> = BTreeMap::new();
    for e in events.iter().filter(|e| e.ts_utc() <= t) {
        let key = (&e.vendor, &e.device);
        match e.event_type {
            EventType::Installed => {
                latest.insert(key, (e, None));
            }
            EventType::Decommissioned => {
                if let Some(slot) = latest.get_mut(&key) {
                    slot.1 = Some(e);
                }
            }
            _ => {}
        }
    }
    latest
        .into_values()
        .filter(|(_, gone)| gone.is_none())
        .map(|(e, _)| install(e))
        .collect()
}

fn install(e: &Event) -> InService {
    InService {
        vendor: e.vendor.clone(),
        device: e.device.clone(),
        kind: e.kind.expect("installed has a kind"),
        municipality: e.municipality.clone(),
        recipient: e.recipient.clone(),
        replaces: e.replaces.clone(),
    }
}

fn listings(exports: &[InventoryExport]) -> Vec<Listing> {
    let formats = formats();
    exports
        .iter()
        .flat_map(|x| {
            parse_inventory(&formats[x.vendor.as_str()], &x.vendor, &x.bytes)
                .expect("parses")
                .rows
                .into_iter()
                .map(|(_, l)| l)
        })
        .collect()
}

/// The reconciliation at the end of the exports' day, with vft's default settings.
fn reconciled() -> &'static Vec<ReconcileRow> {
    static ROWS: OnceLock<Vec<ReconcileRow>> = OnceLock::new();
    ROWS.get_or_init(|| {
        let (day, exports) = exports();
        let at = end_of(*day);
        let (grace, silent_after) = (Duration::days(30), Duration::days(7));
        let events = &sim().events;
        let ever_old: Vec<InService> = events
            .iter()
            .filter(|e| e.event_type == EventType::Installed && e.vendor.as_str() == "hepro")
            .filter(|e| e.ts_utc() <= at)
            .map(install)
            .collect();
        let mut contact: BTreeMap<(VendorId, DeviceId), DateTime<Utc>> = BTreeMap::new();
        for e in events
            .iter()
            .filter(|e| e.event_type.lifecycle_rank().is_none())
        {
            if e.ts_utc() <= at {
                let slot = contact
                    .entry((e.vendor.clone(), e.device.clone()))
                    .or_insert(e.ts_utc());
                *slot = (*slot).max(e.ts_utc());
            }
        }
        let reporting: Vec<Reporting> = contact
            .into_iter()
            .map(|((vendor, device), t)| Reporting {
                vendor,
                device,
                last_contact: Some(t),
            })
            .collect();
        reconcile(&ReconcileInput {
            at,
            old: &vendor("hepro"),
            new: &vendor("atea"),
            in_service: &in_service(events, at).iter().collect::<Vec<_>>(),
            in_service_grace_ago: &in_service(events, at - grace).iter().collect::<Vec<_>>(),
            ever_old: &ever_old.iter().collect::<Vec<_>>(),
            listings: &listings(exports),
            reporting: &reporting,
            silent_after,
        })
    })
}

#[test]
fn the_exports_parse_with_the_example_formats_and_report_the_planted_rows() {
    let (day, exports) = exports();
    assert_eq!(*day, NaiveDate::from_ymd_opt(2025, 12, 31).expect("date"));
    assert_eq!(
        exports
            .iter()
            .map(|x| x.vendor.as_str())
            .collect::<Vec<_>>(),
        ["hepro", "atea"]
    );
    let formats = formats();
    let known: BTreeSet<(&str, &str)> = sim()
        .events
        .iter()
        .map(|e| (e.vendor.as_str(), e.device.as_str()))
        .collect();
    for x in exports {
        let format = &formats[x.vendor.as_str()];
        let parsed = parse_inventory(format, &x.vendor, &x.bytes).expect("header");
        assert_eq!(
            parsed.rows.len() + parsed.errors.len() + parsed.duplicates.len(),
            x.lines,
            "{}: every line is a row, an error or a duplicate",
            x.vendor
        );
        assert!(
            parsed.rows.len() > 300,
            "{}: {} rows",
            x.vendor,
            parsed.rows.len()
        );
        let planted_lines = |pred: fn(Discrepancy) -> bool| -> Vec<u64> {
            let mut lines: Vec<u64> = x
                .planted
                .iter()
                .filter(|p| pred(p.discrepancy))
                .filter_map(|p| p.line)
                .collect();
            lines.sort();
            lines
        };
        let error_lines: Vec<u64> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(
            error_lines,
            planted_lines(Discrepancy::is_row_error),
            "{}: {:?}",
            x.vendor,
            parsed.errors
        );
        assert_eq!(
            parsed.duplicates,
            planted_lines(|d| d == Discrepancy::DuplicateLine),
            "{}",
            x.vendor
        );
        for e in &parsed.errors {
            let planted = x
                .planted
                .iter()
                .find(|p| p.line == Some(e.line))
                .expect("planted");
            let column = match planted.discrepancy {
                Discrepancy::BadDate => format.columns.installed.clone(),
                _ => Some(format.columns.kind.clone()),
            };
            assert_eq!(e.column, column, "{}: {e:?}", x.vendor);
        }
        // Every listed unit is a simulated one, except the one registered but never installed.
        let strangers: Vec<&str> = parsed
            .rows
            .iter()
            .map(|(_, l)| l.device.as_str())
            .filter(|d| !known.contains(&(x.vendor.as_str(), *d)))
            .collect();
        let never: Vec<&str> = x
            .planted
            .iter()
            .filter(|p| p.discrepancy == Discrepancy::NeverInstalled)
            .map(|p| p.device.as_str())
            .collect();
        assert_eq!(strangers, never, "{}", x.vendor);
    }

    let hepro = &exports[0];
    assert!(
        std::str::from_utf8(&hepro.bytes).is_err(),
        "Windows-1252, not UTF-8"
    );
    assert!(hepro.bytes.contains(&0xC5), "Ål written in Windows-1252");
    assert!(hepro.bytes.windows(2).any(|w| w == b"\r\n"));
    let text = encoding_text(&hepro.bytes);
    assert!(
        text.starts_with("Serienr;Produkt;Kommunenr;Kommune;Brukerref;Status;Installert;Merknad")
    );
    assert!(text.contains(";Returnert;") && text.contains("00.00.0000"));
    let atea = std::str::from_utf8(&exports[1].bytes).expect("Atea writes UTF-8");
    assert!(
        atea.starts_with("serial,category,municipality_no,client_ref,state,installed_on,site\n")
    );
    assert!(atea.contains(",Ål\n") && atea.contains(",bed_sensor,"));

    // Each kind the old vendor should have, planted.
    let kinds = |x: &InventoryExport| -> BTreeSet<Discrepancy> {
        x.planted.iter().map(|p| p.discrepancy).collect()
    };
    assert_eq!(
        kinds(hepro),
        BTreeSet::from([
            Discrepancy::MovedStillListed,
            Discrepancy::ReturnedStillListed,
            Discrepancy::Missing,
            Discrepancy::ListedAsReturned,
            Discrepancy::BadDate,
            Discrepancy::UnknownProductCode,
            Discrepancy::DuplicateLine,
        ])
    );
    assert_eq!(
        kinds(&exports[1]),
        BTreeSet::from([
            Discrepancy::Missing,
            Discrepancy::NeverInstalled,
            Discrepancy::UnknownProductCode,
        ])
    );
}

fn encoding_text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[test]
fn reconciliation_finds_every_class_and_every_planted_discrepancy() {
    let rows = reconciled();
    let total = |class: ReconcileClass| -> u64 {
        rows.iter()
            .filter(|r| r.class == class)
            .map(|r| r.count)
            .sum()
    };
    for class in ReconcileClass::ALL {
        assert!(total(class) > 0, "no {class}");
    }
    // Few doubles and few data-quality flags: they are the exceptions to chase up.
    assert!(total(ReconcileClass::Double) >= 2 && total(ReconcileClass::Double) <= 4);
    assert!(total(ReconcileClass::Migrated) > 100);
    assert!(total(ReconcileClass::ReportingUnlisted) < 20);
    assert!(total(ReconcileClass::ListedSilent) < 60);
    // A move under way: on both platforms within the grace period, still pending.
    assert!(rows.iter().any(|r| r.class == ReconcileClass::Pending
        && r.subjects.iter().any(|s| {
            let vendors: BTreeSet<&str> = s.devices.iter().map(|(v, _)| v.as_str()).collect();
            vendors.len() == 2
        })));

    let flagged: BTreeSet<(ReconcileClass, &str, &str)> = rows
        .iter()
        .filter(|r| !r.class.is_partition())
        .flat_map(|r| r.subjects.iter().map(move |s| (r.class, s)))
        .filter_map(|(class, s)| match &s.key {
            SubjectKey::Device(v, d) => Some((class, v.as_str(), d.as_str())),
            SubjectKey::Recipient(_) => None,
        })
        .collect();
    for x in &exports().1 {
        for p in &x.planted {
            if let Some(class) = p.discrepancy.flag() {
                assert!(
                    flagged.contains(&(class, x.vendor.as_str(), p.device.as_str())),
                    "{} {:?} {} not flagged {class}",
                    x.vendor,
                    p.discrepancy,
                    p.device
                );
            }
        }
    }
}

#[test]
fn the_exports_are_deterministic_for_a_seed_and_differ_between_seeds() {
    let (day, exports) = exports();
    let again =
        inventory_exports(sim(), &Plan::hallingdal_2025(), &formats(), *day).expect("exports");
    assert_eq!(&again, exports);
    let plan = Plan {
        seed: 7,
        ..Plan::hallingdal_2025()
    };
    let other = generate(&plan).expect("generates");
    let theirs = inventory_exports(&other, &plan, &formats(), *day).expect("exports");
    assert_ne!(theirs[0].bytes, exports[0].bytes);
}
