//! SQL for the order-independent upserts of device and alarm state: each column group takes the
//! incoming values only when the incoming event key is newer (or older, for "earliest" groups).
//! The same rules in Rust are `vft_domain::DeviceDelta::merge` / `AlarmDelta::merge`.

use crate::named::{Cell, NamedRow};
use crate::shared::micros;
use std::sync::LazyLock;
use vft_domain::state::EventKey;
use vft_domain::{AlarmDelta, DeviceDelta};

/// `new` beats `old` when its key is present and the old is absent or compares `op` ("<" / ">")
/// lexicographically over `cols`.
fn beats(table: &str, cols: &[&str], op: &str) -> String {
    fn lexi(table: &str, cols: &[&str], op: &str) -> String {
        let (c, rest) = cols.split_first().expect("at least one key column");
        if rest.is_empty() {
            format!("excluded.{c} {op} {table}.{c}")
        } else {
            format!(
                "(excluded.{c} {op} {table}.{c} OR (excluded.{c} = {table}.{c} AND {}))",
                lexi(table, rest, op)
            )
        }
    }
    let first = cols[0];
    format!(
        "(excluded.{first} IS NOT NULL AND ({table}.{first} IS NULL OR {}))",
        lexi(table, cols, op)
    )
}

fn take_when(table: &str, cond: &str, cols: &[&str]) -> Vec<String> {
    cols.iter()
        .map(|c| format!("{c} = CASE WHEN {cond} THEN excluded.{c} ELSE {table}.{c} END"))
        .collect()
}

/// A device's state row as a batch writes it, before [`DEVICE_UPSERT`] merges it with the
/// stored one; `received` is when the batch's contact arrived.
pub(crate) fn device_row(d: &DeviceDelta, received: i64) -> NamedRow {
    let key = |k: Option<&EventKey>| {
        (
            Cell::from(k.map(|k| micros(k.0))),
            Cell::from(k.map(|k| i64::from(k.1))),
            Cell::from(k.map(|k| k.2.to_string())),
        )
    };
    let (lc_ts, lc_rank, lc_id) = key(d.lifecycle.as_ref().map(|f| &f.key));
    let (inst_ts, inst_rank, inst_id) = key(d.install.as_ref().map(|f| &f.key));
    let (contact_ts, contact_rank, contact_id) = key(d.contact.as_ref().map(|f| &f.key));
    let (battery_ts, battery_rank, battery_id) = key(d.battery.as_ref().map(|(k, _)| k));
    let lifecycle = d.lifecycle.as_ref();
    let install = d.install.as_ref();
    let contact = d.contact.as_ref();
    vec![
        ("vendor", d.vendor.to_string().into()),
        ("device", d.device.to_string().into()),
        ("lc_ts", lc_ts),
        ("lc_rank", lc_rank),
        ("lc_event_id", lc_id),
        (
            "lc_installed",
            lifecycle.map(|f| i64::from(f.installed)).into(),
        ),
        (
            "lc_municipality",
            lifecycle.map(|f| f.municipality.to_string()).into(),
        ),
        (
            "lc_gateway",
            lifecycle.map(|f| f.gateway.to_string()).into(),
        ),
        ("inst_ts", inst_ts),
        ("inst_rank", inst_rank),
        ("inst_event_id", inst_id),
        ("kind", install.map(|f| f.kind.id()).into()),
        (
            "recipient",
            install
                .and_then(|f| f.recipient.as_ref().map(|r| r.to_string()))
                .into(),
        ),
        (
            "replaces",
            install
                .and_then(|f| f.replaces.as_ref().map(|r| r.to_string()))
                .into(),
        ),
        ("first_installed_ts", d.first_installed.map(micros).into()),
        ("contact_ts", contact_ts),
        ("contact_rank", contact_rank),
        ("contact_event_id", contact_id),
        (
            "contact_municipality",
            contact.map(|f| f.municipality.to_string()).into(),
        ),
        (
            "contact_gateway",
            contact.map(|f| f.gateway.to_string()).into(),
        ),
        ("battery_ts", battery_ts),
        ("battery_rank", battery_rank),
        ("battery_event_id", battery_id),
        (
            "battery",
            d.battery.as_ref().map(|(_, b)| i64::from(*b)).into(),
        ),
        ("last_fault_ts", d.last_fault.map(micros).into()),
        ("last_heartbeat_ts", d.last_heartbeat.map(micros).into()),
        ("contact_received_at", contact.map(|_| received).into()),
    ]
}

pub(crate) static DEVICE_UPSERT: LazyLock<String> = LazyLock::new(|| {
    let t = "devices";
    let mut sets = Vec::new();
    let groups: [(&str, &[&str]); 4] = [
        ("lc", &["lc_installed", "lc_municipality", "lc_gateway"]),
        ("inst", &["kind", "recipient", "replaces"]),
        ("contact", &["contact_municipality", "contact_gateway"]),
        ("battery", &["battery"]),
    ];
    for (g, values) in groups {
        let keys = [
            format!("{g}_ts"),
            format!("{g}_rank"),
            format!("{g}_event_id"),
        ];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let cond = beats(t, &keys, ">");
        let mut cols = keys.clone();
        cols.extend_from_slice(values);
        sets.extend(take_when(t, &cond, &cols));
    }
    sets.extend(take_when(
        t,
        &beats(t, &["first_installed_ts"], "<"),
        &["first_installed_ts"],
    ));
    sets.extend(take_when(
        t,
        &beats(t, &["last_fault_ts"], ">"),
        &["last_fault_ts"],
    ));
    sets.extend(take_when(
        t,
        &beats(t, &["last_heartbeat_ts"], ">"),
        &["last_heartbeat_ts"],
    ));
    sets.extend(take_when(
        t,
        &beats(t, &["contact_received_at"], ">"),
        &["contact_received_at"],
    ));
    format!(
        " ON CONFLICT (vendor, device) DO UPDATE SET {}",
        sets.join(", ")
    )
});

/// An alarm's state row as a batch writes it, before [`ALARM_UPSERT`] merges it with the
/// stored one.
pub(crate) fn alarm_row(a: &AlarmDelta) -> NamedRow {
    let mut row = alarm_state_row(a);
    row.push(("municipality", a.municipality.to_string().into()));
    row.push((
        "several_municipalities",
        i64::from(a.several_municipalities).into(),
    ));
    row
}

/// One municipality's own merge of an alarm (`a` folded from that municipality's events
/// only), before [`OWN_ALARM_UPSERT`] merges it with the stored one.
pub(crate) fn own_alarm_row(a: &AlarmDelta) -> NamedRow {
    let mut row = alarm_state_row(a);
    row.push(("municipality", a.municipality.to_string().into()));
    row
}

/// The columns `alarms` and `own_alarm_states` share.
fn alarm_state_row(a: &AlarmDelta) -> NamedRow {
    let closed = a.closed.as_ref();
    vec![
        ("vendor", a.vendor.to_string().into()),
        ("alarm", a.alarm.to_string().into()),
        ("origin_rank", i64::from(a.origin.0).into()),
        ("origin_ts", micros(a.origin.1).into()),
        ("origin_event_id", a.origin.2.to_string().into()),
        ("device", a.device.to_string().into()),
        ("kind", a.kind.map(|k| k.id()).into()),
        ("cause", a.cause.map(|c| c.id()).into()),
        ("triggered_ts", a.triggered.map(micros).into()),
        ("received_ts", a.received.map(micros).into()),
        ("acknowledged_ts", a.acknowledged.map(micros).into()),
        ("closed_ts", closed.map(|c| micros(c.0)).into()),
        ("closed_event_id", closed.map(|c| c.1.to_string()).into()),
        ("outcome", closed.and_then(|c| c.2.map(|o| o.id())).into()),
    ]
}

/// `AlarmDelta::merge` over the columns of `table`: the origin's place with the origin, each
/// step's earliest time.
fn alarm_merge_sets(t: &str) -> Vec<String> {
    let mut sets = Vec::new();
    let origin = beats(t, &["origin_rank", "origin_ts", "origin_event_id"], "<");
    sets.extend(take_when(
        t,
        &origin,
        &[
            "origin_rank",
            "origin_ts",
            "origin_event_id",
            "device",
            "municipality",
            "kind",
            "cause",
        ],
    ));
    for c in ["triggered_ts", "received_ts", "acknowledged_ts"] {
        sets.extend(take_when(t, &beats(t, &[c], "<"), &[c]));
    }
    let closed = beats(t, &["closed_ts", "closed_event_id"], "<");
    sets.extend(take_when(
        t,
        &closed,
        &["closed_ts", "closed_event_id", "outcome"],
    ));
    sets
}

pub(crate) static ALARM_UPSERT: LazyLock<String> = LazyLock::new(|| {
    let t = "alarms";
    let mut sets = alarm_merge_sets(t);
    // Every right-hand side sees the stored row, so this compares the stored municipality
    // with the batch's. Going from 0 to 1 fires the trigger of migration 0028, which keeps the
    // stored state as the first municipality's own.
    sets.push(format!(
        "several_municipalities = CASE WHEN {t}.several_municipalities = 1 \
         OR excluded.several_municipalities = 1 OR {t}.municipality <> excluded.municipality \
         THEN 1 ELSE 0 END"
    ));
    format!(
        " ON CONFLICT (vendor, alarm) DO UPDATE SET {} RETURNING vendor, alarm, several_municipalities",
        sets.join(", ")
    )
});

pub(crate) static OWN_ALARM_UPSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        " ON CONFLICT (municipality, vendor, alarm) DO UPDATE SET {}",
        alarm_merge_sets("own_alarm_states").join(", ")
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_key_comparison_is_lexicographic_and_null_aware() {
        assert_eq!(
            beats("d", &["a_ts", "a_id"], ">"),
            "(excluded.a_ts IS NOT NULL AND (d.a_ts IS NULL OR (excluded.a_ts > d.a_ts OR (excluded.a_ts = d.a_ts AND excluded.a_id > d.a_id))))"
        );
        assert!(DEVICE_UPSERT.contains("kind = CASE WHEN"));
        assert!(ALARM_UPSERT.contains("outcome = CASE WHEN"));
    }

    /// Every column an upsert takes from `excluded` is one its row writes, and a row names
    /// no column twice.
    #[test]
    fn upserts_merge_only_columns_their_rows_write() {
        use vft_domain::{AlarmRef, DeviceId, EventId, MunicipalityCode, TechnologyKind, VendorId};
        let at = chrono::DateTime::parse_from_rfc3339("2025-03-01T10:00:00Z")
            .expect("ts")
            .with_timezone(&chrono::Utc);
        let device = DeviceDelta {
            vendor: VendorId::parse("hepro").expect("vendor"),
            device: DeviceId::parse("D1").expect("device"),
            lifecycle: None,
            install: None,
            first_installed: Some(at),
            contact: None,
            battery: None,
            last_fault: None,
            last_heartbeat: None,
        };
        let alarm = AlarmDelta {
            vendor: VendorId::parse("hepro").expect("vendor"),
            alarm: AlarmRef::parse("A1").expect("alarm"),
            origin: (0, at, EventId::parse("e1").expect("id")),
            device: DeviceId::parse("D1").expect("device"),
            municipality: MunicipalityCode::parse("3328").expect("code"),
            kind: Some(TechnologyKind::SafetyAlarm),
            cause: None,
            triggered: Some(at),
            received: None,
            acknowledged: None,
            closed: None,
            several_municipalities: false,
        };
        for (row, upsert) in [
            (device_row(&device, 0), DEVICE_UPSERT.as_str()),
            (alarm_row(&alarm), ALARM_UPSERT.as_str()),
            (own_alarm_row(&alarm), OWN_ALARM_UPSERT.as_str()),
        ] {
            let names: Vec<&str> = row.iter().map(|(c, _)| *c).collect();
            let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
            assert_eq!(unique.len(), names.len(), "a column named twice: {names:?}");
            let merged: Vec<&str> = upsert
                .split("excluded.")
                .skip(1)
                .map(|rest| {
                    rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or("")
                })
                .collect();
            assert!(merged.len() > 10, "{upsert}");
            for column in merged {
                assert!(
                    unique.contains(column),
                    "{column} is merged but not written"
                );
            }
        }
    }
}
