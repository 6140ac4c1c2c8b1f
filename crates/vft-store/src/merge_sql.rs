//! SQL for the order-independent upserts of device and alarm state: each column group takes the
//! incoming values only when the incoming event key is newer (or older, for "earliest" groups).
//! The same rules in Rust are `vft_domain::DeviceDelta::merge` / `AlarmDelta::merge`.

use std::sync::LazyLock;

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

pub(crate) const DEVICE_COLUMNS: &str = "vendor, device, lc_ts, lc_rank, lc_event_id, lc_installed, lc_municipality, lc_gateway, \
     inst_ts, inst_rank, inst_event_id, kind, recipient, replaces, first_installed_ts, \
     contact_ts, contact_rank, contact_event_id, contact_municipality, contact_gateway, \
     battery_ts, battery_rank, battery_event_id, battery, last_fault_ts, last_heartbeat_ts, \
     contact_received_at";

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

pub(crate) const ALARM_COLUMNS: &str = "vendor, alarm, origin_rank, origin_ts, origin_event_id, device, municipality, kind, cause, \
     triggered_ts, received_ts, acknowledged_ts, closed_ts, closed_event_id, outcome";

pub(crate) static ALARM_UPSERT: LazyLock<String> = LazyLock::new(|| {
    let t = "alarms";
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
    format!(
        " ON CONFLICT (vendor, alarm) DO UPDATE SET {}",
        sets.join(", ")
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
}
