//! Response-centre figures kept by ingest (migration 0021): what each alarm contributes
//! (`response_alarms`, a `vft_domain::response::AlarmFact` per alarm) and their sums per Oslo
//! month, municipality and kind (`response_months`, `response_times`, `response_outcomes`).
//! A batch recomputes the contribution of every alarm it touches, and of every alarm of a
//! device whose install it stores (the device's kind is the kind of its alarms that have
//! none), and adds the difference to the sums, in its own transaction. The coordinator's
//! figures are read from the sums; `vft rebuild` recomputes everything from the alarm state.

use vft_domain::response::AlarmFact;

/// One alarm's stored contribution, with where it is summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FactRow {
    pub month: i64,
    pub municipality: String,
    pub kind: String,
    pub fact: AlarmFact,
}

impl FactRow {
    pub(crate) fn key(&self) -> (i64, String, String) {
        (self.month, self.municipality.clone(), self.kind.clone())
    }
}

/// An alarm (or one municipality's own merge of it, `own_alarm_states` aliased `a` too) as the
/// figures read it, joined with its device's kind: origin time, vendor, alarm, device,
/// municipality, kind (its own, else its device's), cause, the four steps' times and the
/// outcome ([`AlarmRecordRow`]).
pub(crate) const ALARM_COLUMNS: &str = "a.origin_ts, a.vendor, a.alarm, a.device, a.municipality, COALESCE(a.kind, d.kind), \
     a.cause, a.triggered_ts, a.received_ts, a.acknowledged_ts, a.closed_ts, a.outcome";

/// The join that gives [`ALARM_COLUMNS`] the device's kind.
pub(crate) const DEVICE_KIND_JOIN: &str =
    "LEFT JOIN devices d ON d.vendor = a.vendor AND d.device = a.device";

/// `SELECT` [`ALARM_COLUMNS`] from `table` (`alarms` or `own_alarm_states`).
pub(crate) fn alarm_select(table: &str) -> String {
    format!("SELECT {ALARM_COLUMNS} FROM {table} a {DEVICE_KIND_JOIN}")
}

pub(crate) type AlarmRecordRow = (
    Option<i64>,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

/// The alarm's key and its contribution (none when it belongs to no month).
pub(crate) fn fact_of(row: AlarmRecordRow) -> crate::Result<((String, String), Option<FactRow>)> {
    let record = alarm_record(&row)?;
    let (_, vendor, alarm, _, municipality, ..) = row;
    let fact = record.fact();
    let row = fact.month.map(|m| FactRow {
        month: vft_domain::contact::month_key(m),
        municipality,
        kind: record.kind.map(|k| k.id().to_owned()).unwrap_or_default(),
        fact,
    });
    Ok(((vendor, alarm), row))
}

pub(crate) fn alarm_record(
    row: &AlarmRecordRow,
) -> crate::Result<vft_domain::response::AlarmRecord> {
    use crate::shared::{corrupt, from_micros};
    let (_, vendor, alarm, device, municipality, kind, cause, t, r, a, c, outcome) = row;
    let ts = |v: &Option<i64>| v.map(from_micros).transpose();
    Ok(vft_domain::response::AlarmRecord {
        vendor: vft_domain::VendorId::parse(vendor).map_err(corrupt)?,
        alarm: vft_domain::AlarmRef::parse(alarm).map_err(corrupt)?,
        device: vft_domain::DeviceId::parse(device).map_err(corrupt)?,
        municipality: vft_domain::MunicipalityCode::parse(municipality).map_err(corrupt)?,
        kind: kind
            .as_deref()
            .and_then(vft_domain::TechnologyKind::from_id),
        cause: cause.as_deref().and_then(vft_domain::Cause::from_id),
        triggered: ts(t)?,
        received: ts(r)?,
        acknowledged: ts(a)?,
        closed: ts(c)?,
        outcome: outcome.as_deref().and_then(vft_domain::Outcome::from_id),
    })
}

pub(crate) type StoredFactRow = (
    String,
    String,
    i64,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
);

/// Takes the row lock that serialises everything changing the response-centre sums (batches
/// with alarm events or kinds, the rebuild, the first build of the own alarm states): in
/// PostgreSQL each reads an alarm's stored contribution, then replaces it.
pub(crate) const LOCK_ALARM_SUMS: &str =
    "UPDATE alarm_generation SET generation = generation + 1 WHERE id = 1";

pub(crate) const FACT_COLUMNS: &str = "vendor, alarm, month, municipality, kind, triggered, received, acknowledged, closed, response_ms, outcome";

/// An alarm's contribution as `response_alarms` keeps it.
pub(crate) fn fact_row((vendor, alarm): &(String, String), f: &FactRow) -> crate::named::NamedRow {
    let flag = |b: bool| i64::from(b).into();
    vec![
        ("vendor", vendor.clone().into()),
        ("alarm", alarm.clone().into()),
        ("month", f.month.into()),
        ("municipality", f.municipality.clone().into()),
        ("kind", f.kind.clone().into()),
        ("triggered", flag(f.fact.triggered)),
        ("received", flag(f.fact.received)),
        ("acknowledged", flag(f.fact.acknowledged)),
        ("closed", flag(f.fact.closed)),
        (
            "response_ms",
            f.fact
                .response_ms
                .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX))
                .into(),
        ),
        ("outcome", f.fact.outcome.map(|o| o.id()).into()),
    ]
}

pub(crate) fn stored_fact(row: StoredFactRow) -> crate::Result<((String, String), FactRow)> {
    let (vendor, alarm, month, municipality, kind, t, r, a, c, ms, outcome) = row;
    let fact = AlarmFact {
        month: Some(
            vft_domain::contact::month_from_key(month)
                .ok_or_else(|| crate::StoreError::Corrupt(format!("response month {month}")))?,
        ),
        triggered: t != 0,
        received: r != 0,
        acknowledged: a != 0,
        closed: c != 0,
        response_ms: ms.map(|ms| u64::try_from(ms).unwrap_or(0)),
        outcome: outcome
            .as_deref()
            .map(|o| {
                vft_domain::Outcome::from_id(o)
                    .ok_or_else(|| crate::StoreError::Corrupt(format!("outcome {o:?}")))
            })
            .transpose()?,
    };
    Ok((
        (vendor, alarm),
        FactRow {
            month,
            municipality,
            kind,
            fact,
        },
    ))
}

/// Changes to the sums, per (month, municipality, kind).
pub(crate) type Tallies =
    std::collections::BTreeMap<(i64, String, String), vft_domain::response::ResponseTally>;

/// Each municipality's own merge of the alarms `keep` admits (by vendor and alarm reference),
/// in key order (municipality, vendor, alarm): from that municipality's events only.
pub(crate) fn own_deltas(
    events: &[vft_domain::Event],
    keep: impl Fn(&(String, String)) -> bool,
) -> Vec<vft_domain::AlarmDelta> {
    let mut own: std::collections::BTreeMap<(String, String, String), vft_domain::AlarmDelta> =
        std::collections::BTreeMap::new();
    for e in events {
        let Some(d) = vft_domain::AlarmDelta::from_event(e) else {
            continue;
        };
        let key = (d.vendor.to_string(), d.alarm.to_string());
        if !keep(&key) {
            continue;
        }
        let (vendor, alarm) = key;
        own.entry((d.municipality.to_string(), vendor, alarm))
            .and_modify(|o| o.merge(&d))
            .or_insert(d);
    }
    own.into_values().collect()
}

macro_rules! impl_response {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Brings the response-centre sums in line with the alarm state for `alarms` and
            /// for every alarm of `devices` (whose kind may have changed), inside a batch's
            /// transaction that already holds the `alarm_generation` row: each alarm's stored
            /// contribution is taken back and its new one added, so replays, repeats and
            /// arrival order change nothing.
            pub(crate) async fn apply_response_facts(
                tx: &mut sqlx::Transaction<'_, $db>,
                alarms: &[(String, String)],
                devices: &[(String, String)],
            ) -> $crate::Result<()> {
                use std::collections::BTreeMap;
                use $crate::response::{alarm_select, fact_of, stored_fact, AlarmRecordRow, FactRow, StoredFactRow, FACT_COLUMNS};
                let mut new: BTreeMap<(String, String), Option<FactRow>> = BTreeMap::new();
                for (pairs, column) in [(alarms, "alarm"), (devices, "device")] {
                    for chunk in $crate::shared::statement_chunks(&pairs, $crate::shared::ROWS_PER_STATEMENT) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(format!("{} WHERE (a.vendor, a.{column}) IN (", alarm_select("alarms")));
                        qb.push_values(chunk, |mut row, (v, x)| {
                            row.push_bind(v.as_str()).push_bind(x.as_str());
                        });
                        qb.push(")");
                        let rows: Vec<AlarmRecordRow> = qb.build_query_as().fetch_all(&mut **tx).await?;
                        for row in rows {
                            let (key, fact) = fact_of(row)?;
                            new.insert(key, fact);
                        }
                    }
                }
                let keys: Vec<(String, String)> = new.keys().cloned().collect();
                let mut old: BTreeMap<(String, String), FactRow> = BTreeMap::new();
                for chunk in $crate::shared::statement_chunks(&keys, $crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {FACT_COLUMNS} FROM response_alarms WHERE (vendor, alarm) IN ("
                    ));
                    qb.push_values(chunk, |mut row, (v, a)| {
                        row.push_bind(v.as_str()).push_bind(a.as_str());
                    });
                    qb.push(")");
                    let rows: Vec<StoredFactRow> = qb.build_query_as().fetch_all(&mut **tx).await?;
                    for row in rows {
                        let (key, fact) = stored_fact(row)?;
                        old.insert(key, fact);
                    }
                }
                let mut tallies = $crate::response::Tallies::new();
                let mut changed: Vec<((String, String), FactRow)> = Vec::new();
                let mut gone: Vec<(String, String)> = Vec::new();
                for (key, fact) in new {
                    let before = old.get(&key);
                    if before == fact.as_ref() {
                        continue;
                    }
                    if let Some(b) = before {
                        tallies.entry(b.key()).or_default().add_fact(&b.fact, -1);
                    }
                    match fact {
                        Some(f) => {
                            tallies.entry(f.key()).or_default().add_fact(&f.fact, 1);
                            changed.push((key, f));
                        }
                        None => gone.push(key),
                    }
                }
                Self::write_response_facts(tx, &changed).await?;
                Self::execute_for_alarms(tx, "DELETE FROM response_alarms", &gone).await?;
                Self::add_response_tallies(tx, &tallies).await
            }

            /// Runs `statement` for `alarms` (vendor, alarm reference), in statements of a
            /// bounded number of rows: `statement WHERE (vendor, alarm) IN (…)`.
            async fn execute_for_alarms(
                tx: &mut sqlx::Transaction<'_, $db>,
                statement: &str,
                alarms: &[(String, String)],
            ) -> $crate::Result<()> {
                for chunk in $crate::shared::statement_chunks(alarms, $crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!("{statement} WHERE (vendor, alarm) IN ("));
                    qb.push_values(chunk, |mut row, (v, a)| {
                        row.push_bind(v.as_str()).push_bind(a.as_str());
                    });
                    qb.push(")");
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Merges the batch's events of `alarms` (each with events from several
            /// municipalities) into each municipality's own state of them, per municipality
            /// from its own events only. The trigger of migration 0028 has already kept the
            /// state an alarm had before its second municipality as the first one's.
            pub(crate) async fn merge_own_alarm_states(
                tx: &mut sqlx::Transaction<'_, $db>,
                events: &[vft_domain::Event],
                alarms: &std::collections::BTreeSet<(String, String)>,
            ) -> $crate::Result<()> {
                let deltas = $crate::response::own_deltas(events, |key| alarms.contains(key));
                Self::upsert_own_alarm_states(tx, &deltas).await
            }

            async fn upsert_own_alarm_states(
                tx: &mut sqlx::Transaction<'_, $db>,
                deltas: &[vft_domain::AlarmDelta],
            ) -> $crate::Result<()> {
                for chunk in $crate::shared::statement_chunks(deltas, $crate::shared::ROWS_PER_STATEMENT) {
                    let rows: Vec<$crate::named::NamedRow> = chunk.iter().map($crate::merge_sql::own_alarm_row).collect();
                    let mut qb = $crate::named::insert::<$db>("own_alarm_states", &rows);
                    qb.push($crate::merge_sql::OWN_ALARM_UPSERT.as_str());
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Finds again, from the stored events, which alarms have events from several
            /// municipalities and each municipality's own state of them.
            pub(crate) async fn rebuild_own_alarm_states(tx: &mut sqlx::Transaction<'_, $db>) -> $crate::Result<()> {
                use sqlx::Row;
                let types: Vec<&str> = vft_domain::EventType::ALL.iter().filter(|t| t.is_alarm_event()).map(|t| t.id()).collect();
                let in_types = |qb: &mut sqlx::QueryBuilder<'_, $db>| {
                    qb.push("e.alarm IS NOT NULL AND e.type IN (");
                    let mut sep = qb.separated(", ");
                    for t in &types {
                        sep.push_bind(*t);
                    }
                    qb.push(")");
                };
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT e.vendor, e.alarm FROM events e WHERE ");
                in_types(&mut qb);
                qb.push(" GROUP BY e.vendor, e.alarm HAVING MIN(e.municipality) <> MAX(e.municipality)");
                let several: std::collections::BTreeSet<(String, String)> =
                    qb.build_query_as::<(String, String)>().fetch_all(&mut **tx).await?.into_iter().collect();
                // The flags first (their trigger writes states that are replaced below).
                sqlx::query("UPDATE alarms SET several_municipalities = 0 WHERE several_municipalities <> 0")
                    .execute(&mut **tx)
                    .await?;
                let keys: Vec<(String, String)> = several.iter().cloned().collect();
                Self::execute_for_alarms(tx, "UPDATE alarms SET several_municipalities = 1", &keys).await?;
                sqlx::query("DELETE FROM own_alarm_states").execute(&mut **tx).await?;
                tracing::info!(shared = several.len(), "alarms with events from several municipalities found in the stored events");
                if several.is_empty() {
                    return Ok(());
                }
                // Every alarm event once, streamed; only those of the alarms found are kept.
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT e.vendor, e.event_id, e.gateway, e.ts, e.ts_offset, e.municipality, e.device, e.type, e.kind, \
                     e.battery, e.alarm, e.cause, e.outcome, e.recipient, e.replaces, e.reason FROM events e WHERE ",
                );
                in_types(&mut qb);
                let mut events = Vec::new();
                {
                    use futures_util::TryStreamExt;
                    let mut stream = qb.build().fetch(&mut **tx);
                    while let Some(r) = stream.try_next().await? {
                        let key: (String, String) = (r.try_get(0)?, r.try_get(10)?);
                        if !several.contains(&key) {
                            continue;
                        }
                        events.push($crate::shared::event_from_row(
                            r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?,
                            r.try_get(6)?, r.try_get(7)?, r.try_get(8)?, r.try_get(9)?, r.try_get(10)?, r.try_get(11)?,
                            r.try_get(12)?, r.try_get(13)?, r.try_get(14)?, r.try_get(15)?,
                        )?);
                    }
                }
                let deltas = $crate::response::own_deltas(&events, |_| true);
                Self::upsert_own_alarm_states(tx, &deltas).await
            }

            async fn write_response_facts(
                tx: &mut sqlx::Transaction<'_, $db>,
                facts: &[((String, String), $crate::response::FactRow)],
            ) -> $crate::Result<()> {
                for chunk in $crate::shared::statement_chunks(&facts, $crate::shared::ROWS_PER_STATEMENT) {
                    let rows: Vec<$crate::named::NamedRow> =
                        chunk.iter().map(|(key, f)| $crate::response::fact_row(key, f)).collect();
                    let mut qb = $crate::named::insert::<$db>("response_alarms", &rows);
                    qb.push(
                        " ON CONFLICT (vendor, alarm) DO UPDATE SET month = excluded.month, \
                         municipality = excluded.municipality, kind = excluded.kind, triggered = excluded.triggered, \
                         received = excluded.received, acknowledged = excluded.acknowledged, closed = excluded.closed, \
                         response_ms = excluded.response_ms, outcome = excluded.outcome",
                    );
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Adds `tallies` to the sums, in key order (two PostgreSQL writers that upsert the
            /// same rows in one order cannot deadlock), and removes the rows left at zero.
            async fn add_response_tallies(
                tx: &mut sqlx::Transaction<'_, $db>,
                tallies: &$crate::response::Tallies,
            ) -> $crate::Result<()> {
                let counts: Vec<_> = tallies
                    .iter()
                    .filter(|(_, t)| [t.triggered, t.received, t.acknowledged, t.closed, t.never_acknowledged].iter().any(|n| *n != 0))
                    .collect();
                for chunk in $crate::shared::statement_chunks(&counts, $crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO response_months (month, municipality, kind, triggered, received, acknowledged, closed, never_acknowledged) ",
                    );
                    qb.push_values(chunk, |mut row, ((month, m, k), t)| {
                        row.push_bind(*month)
                            .push_bind(m.as_str())
                            .push_bind(k.as_str())
                            .push_bind(t.triggered)
                            .push_bind(t.received)
                            .push_bind(t.acknowledged)
                            .push_bind(t.closed)
                            .push_bind(t.never_acknowledged);
                    });
                    qb.push(
                        " ON CONFLICT (month, municipality, kind) DO UPDATE SET \
                         triggered = response_months.triggered + excluded.triggered, \
                         received = response_months.received + excluded.received, \
                         acknowledged = response_months.acknowledged + excluded.acknowledged, \
                         closed = response_months.closed + excluded.closed, \
                         never_acknowledged = response_months.never_acknowledged + excluded.never_acknowledged",
                    );
                    qb.build().execute(&mut **tx).await?;
                }
                let times: Vec<(&(i64, String, String), u64, i64)> = tallies
                    .iter()
                    .flat_map(|(key, t)| t.times.iter().filter(|(_, n)| **n != 0).map(move |(ms, n)| (key, *ms, *n)))
                    .collect();
                for chunk in $crate::shared::statement_chunks(&times, $crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO response_times (month, municipality, kind, response_ms, alarms) ",
                    );
                    qb.push_values(chunk, |mut row, ((month, m, k), ms, n)| {
                        row.push_bind(*month)
                            .push_bind(m.as_str())
                            .push_bind(k.as_str())
                            .push_bind(i64::try_from(*ms).unwrap_or(i64::MAX))
                            .push_bind(*n);
                    });
                    qb.push(
                        " ON CONFLICT (month, municipality, kind, response_ms) DO UPDATE SET \
                         alarms = response_times.alarms + excluded.alarms",
                    );
                    qb.build().execute(&mut **tx).await?;
                }
                // The region's per-second counts (migration 0026), keyed in the order they are
                // upserted, like the rest.
                let mut seconds: std::collections::BTreeMap<(i64, &str, i64), i64> = Default::default();
                for ((month, _, kind), t) in tallies {
                    for (ms, n) in &t.times {
                        let second = i64::try_from(vft_domain::response::response_second(*ms)).unwrap_or(i64::MAX);
                        *seconds.entry((*month, kind.as_str(), second)).or_default() += n;
                    }
                }
                let second_counts: Vec<(&(i64, &str, i64), &i64)> = seconds.iter().filter(|(_, n)| **n != 0).collect();
                for chunk in $crate::shared::statement_chunks(&second_counts, $crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO response_seconds (month, kind, second, alarms) ",
                    );
                    qb.push_values(chunk, |mut row, ((month, k, second), n)| {
                        row.push_bind(*month).push_bind(*k).push_bind(*second).push_bind(**n);
                    });
                    qb.push(
                        " ON CONFLICT (month, kind, second) DO UPDATE SET \
                         alarms = response_seconds.alarms + excluded.alarms",
                    );
                    qb.build().execute(&mut **tx).await?;
                }
                let shrunk_seconds: Vec<&(i64, &str, i64)> =
                    seconds.iter().filter(|(_, n)| **n < 0).map(|(key, _)| key).collect();
                for chunk in $crate::shared::statement_chunks(&shrunk_seconds, $crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "DELETE FROM response_seconds WHERE alarms = 0 AND (month, kind, second) IN (",
                    );
                    qb.push_values(chunk, |mut row, (month, k, second)| {
                        row.push_bind(*month).push_bind(*k).push_bind(*second);
                    });
                    qb.push(")");
                    qb.build().execute(&mut **tx).await?;
                }
                let outcomes: Vec<(&(i64, String, String), &'static str, i64)> = tallies
                    .iter()
                    .flat_map(|(key, t)| t.outcomes.iter().filter(|(_, n)| **n != 0).map(move |(o, n)| (key, o.id(), *n)))
                    .collect();
                for chunk in $crate::shared::statement_chunks(&outcomes, $crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO response_outcomes (month, municipality, kind, outcome, alarms) ",
                    );
                    qb.push_values(chunk, |mut row, ((month, m, k), o, n)| {
                        row.push_bind(*month).push_bind(m.as_str()).push_bind(k.as_str()).push_bind(*o).push_bind(*n);
                    });
                    qb.push(
                        " ON CONFLICT (month, municipality, kind, outcome) DO UPDATE SET \
                         alarms = response_outcomes.alarms + excluded.alarms",
                    );
                    qb.build().execute(&mut **tx).await?;
                }
                // Only a key that lost an alarm can have reached zero.
                let shrunk: Vec<&(i64, String, String)> = tallies
                    .iter()
                    .filter(|(_, t)| {
                        [t.triggered, t.received, t.acknowledged, t.closed].iter().any(|n| *n < 0)
                            || t.times.values().chain(t.outcomes.values()).any(|n| *n < 0)
                    })
                    .map(|(key, _)| key)
                    .collect();
                for chunk in $crate::shared::statement_chunks(&shrunk, $crate::shared::ROWS_PER_STATEMENT) {
                    for (table, zero) in [
                        ("response_months", "triggered = 0 AND received = 0 AND acknowledged = 0 AND closed = 0"),
                        ("response_times", "alarms = 0"),
                        ("response_outcomes", "alarms = 0"),
                    ] {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                            "DELETE FROM {table} WHERE {zero} AND (month, municipality, kind) IN ("
                        ));
                        qb.push_values(chunk, |mut row, (month, m, k)| {
                            row.push_bind(*month).push_bind(m.as_str()).push_bind(k.as_str());
                        });
                        qb.push(")");
                        qb.build().execute(&mut **tx).await?;
                    }
                }
                Ok(())
            }

            /// Recomputes every alarm's contribution and the sums from the alarm state, in one
            /// transaction that holds `alarm_generation` (batches with alarms wait for it).
            /// Returns the alarms counted.
            pub(crate) async fn rebuild_response_months(&self) -> $crate::Result<u64> {
                use $crate::response::{alarm_select, fact_of, AlarmRecordRow};
                let mut tx = self.writer.begin().await?;
                sqlx::query($crate::response::LOCK_ALARM_SUMS)
                    .execute(&mut *tx)
                    .await?;
                for table in ["response_alarms", "response_months", "response_times", "response_seconds", "response_outcomes"] {
                    sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await?;
                }
                Self::rebuild_own_alarm_states(&mut tx).await?;
                Self::set_derived_built(&mut *tx, "own_alarm_states", true).await?;
                let mut tallies = $crate::response::Tallies::new();
                let mut after = (String::new(), String::new());
                let mut total = 0u64;
                loop {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!("{} WHERE (a.vendor, a.alarm) > (", alarm_select("alarms")));
                    qb.push_bind(after.0.clone()).push(", ").push_bind(after.1.clone());
                    qb.push(") ORDER BY a.vendor, a.alarm LIMIT 5000");
                    let rows: Vec<AlarmRecordRow> = qb.build_query_as().fetch_all(&mut *tx).await?;
                    let Some(last) = rows.last() else { break };
                    after = (last.1.clone(), last.2.clone());
                    total += rows.len() as u64;
                    let mut facts = Vec::with_capacity(rows.len());
                    for row in rows {
                        if let (key, Some(f)) = fact_of(row)? {
                            tallies.entry(f.key()).or_default().add_fact(&f.fact, 1);
                            facts.push((key, f));
                        }
                    }
                    Self::write_response_facts(&mut tx, &facts).await?;
                }
                Self::add_response_tallies(&mut tx, &tallies).await?;
                Self::set_derived_built(&mut *tx, "response_months", true).await?;
                tx.commit().await?;
                Ok(total)
            }

            /// What turns `municipality`'s sums into its own figures (decision 0026), for the
            /// alarms with events from several municipalities whose own origin lies in `span`:
            /// each one's own contribution (sign 1), and its region contribution (sign -1) where
            /// it is counted here (its origin is then this municipality's, so the same month).
            async fn own_corrections(
                tx: &mut sqlx::Transaction<'static, $db>,
                municipality: &vft_domain::MunicipalityCode,
                span: (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
            ) -> $crate::Result<Vec<(i64, $crate::response::FactRow, i64)>> {
                use $crate::response::{fact_of, stored_fact, AlarmRecordRow, ALARM_COLUMNS, DEVICE_KIND_JOIN};
                type Counted = (Option<i64>, Option<String>, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<String>);
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {ALARM_COLUMNS}, r.month, r.kind, r.triggered, r.received, r.acknowledged, r.closed, r.response_ms, r.outcome \
                     FROM own_alarm_states a {DEVICE_KIND_JOIN} \
                     LEFT JOIN response_alarms r ON r.vendor = a.vendor AND r.alarm = a.alarm AND r.municipality = a.municipality \
                     WHERE a.municipality = ",
                ));
                qb.push_bind(municipality.to_string());
                qb.push(" AND a.origin_ts >= ").push_bind($crate::shared::micros(span.0));
                qb.push(" AND a.origin_ts < ").push_bind($crate::shared::micros(span.1));
                let rows = qb.build().fetch_all(&mut **tx).await?;
                let mut out = Vec::new();
                for r in rows {
                    use sqlx::Row;
                    let own: AlarmRecordRow = (
                        r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?,
                        r.try_get(6)?, r.try_get(7)?, r.try_get(8)?, r.try_get(9)?, r.try_get(10)?, r.try_get(11)?,
                    );
                    let (vendor, alarm) = (own.1.clone(), own.2.clone());
                    let counted: Counted = (
                        r.try_get(12)?, r.try_get(13)?, r.try_get(14)?, r.try_get(15)?,
                        r.try_get(16)?, r.try_get(17)?, r.try_get(18)?, r.try_get(19)?,
                    );
                    if let (_, Some(f)) = fact_of(own)? {
                        out.push((f.month, f, 1));
                    }
                    if let (Some(month), Some(kind), Some(t), Some(rc), Some(a), Some(c), ms, outcome) = counted {
                        let (_, f) = stored_fact((vendor, alarm, month, municipality.to_string(), kind, t, rc, a, c, ms, outcome))?;
                        out.push((f.month, f, -1));
                    }
                }
                Ok(out)
            }

            /// One tally per month asked for, of the region or one municipality, and of every
            /// kind or one, read from the sums in one statement (one snapshot).
            pub(crate) async fn response_tallies_from_state(
                &self,
                months: &[vft_domain::YearMonth],
                municipality: Option<&vft_domain::MunicipalityCode>,
                kind: Option<vft_domain::TechnologyKind>,
                own: bool,
            ) -> $crate::Result<Vec<vft_domain::response::ResponseTally>> {
                use vft_domain::contact::month_key;
                let mut out = vec![vft_domain::response::ResponseTally::default(); months.len()];
                let (Some(first), Some(last)) = (months.iter().min(), months.iter().max()) else {
                    return Ok(out);
                };
                // The months one by one, not as a range: the keys of the tables a municipality
                // is read from lead with (month, municipality), and after a range on the month
                // every row of the months is compared instead of sought.
                let keys: std::collections::BTreeSet<i64> = months.iter().map(|m| month_key(*m)).collect();
                let filter = |qb: &mut sqlx::QueryBuilder<'static, $db>| {
                    qb.push(" WHERE month IN (");
                    let mut each = qb.separated(", ");
                    for key in &keys {
                        each.push_bind(*key);
                    }
                    qb.push(")");
                    if let Some(m) = municipality {
                        qb.push(" AND municipality = ").push_bind(m.to_string());
                    }
                    if let Some(k) = kind {
                        qb.push(" AND kind = ").push_bind(k.id());
                    }
                };
                type Row = (i64, i64, String, i64, i64, i64, i64, i64, i64);
                // The region's response times are read per second (migration 0026), then to the
                // millisecond only where the figures need it; one municipality's are few enough
                // to read to the millisecond at once. Both reads in one snapshot.
                let region = municipality.is_none();
                let mut tx = self.snapshot().await?;
                // One row per distinct response time (or second): many, so read packed.
                let rows: Vec<Row> = Self::fetch_many_in(&mut tx, &["part", "month", "outcome", "ms", "a", "b", "c", "d", "e"], |qb| {
                        qb.push(
                            "SELECT CAST(0 AS BIGINT) AS part, month, '' AS outcome, CAST(0 AS BIGINT) AS ms, \
                             CAST(SUM(triggered) AS BIGINT) AS a, CAST(SUM(received) AS BIGINT) AS b, \
                             CAST(SUM(acknowledged) AS BIGINT) AS c, CAST(SUM(closed) AS BIGINT) AS d, \
                             CAST(SUM(never_acknowledged) AS BIGINT) AS e FROM response_months",
                        );
                        filter(qb);
                        if region {
                            qb.push(
                                " GROUP BY month UNION ALL SELECT CAST(3 AS BIGINT), month, '', second, CAST(SUM(alarms) AS BIGINT), \
                                 CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT) FROM response_seconds",
                            );
                            filter(qb);
                            qb.push(" GROUP BY month, second");
                        } else {
                            // SQLite, without statistics, read one municipality's times from the
                            // covering `response_times_by_ms` (month, response_ms, …), every
                            // municipality's rows of each month: 42 ms at 500 000 devices, where
                            // the key (month, municipality, …) reads its own rows in 3 ms.
                            let table = if <$db as sqlx::Database>::NAME == "SQLite" {
                                "response_times INDEXED BY sqlite_autoindex_response_times_1"
                            } else {
                                "response_times"
                            };
                            qb.push(format!(
                                " GROUP BY month UNION ALL SELECT CAST(1 AS BIGINT), month, '', response_ms, CAST(SUM(alarms) AS BIGINT), \
                                 CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT) FROM {table}",
                            ));
                            filter(qb);
                            qb.push(" GROUP BY month, response_ms");
                        }
                        qb.push(
                            " UNION ALL SELECT CAST(2 AS BIGINT), month, outcome, CAST(0 AS BIGINT), \
                             CAST(SUM(alarms) AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT) \
                             FROM response_outcomes",
                        );
                        filter(qb);
                        qb.push(" GROUP BY month, outcome");
                    })
                    .await?;
                let index: std::collections::HashMap<i64, Vec<usize>> =
                    months.iter().enumerate().fold(Default::default(), |mut map, (i, m)| {
                        map.entry(month_key(*m)).or_insert_with(Vec::new).push(i);
                        map
                    });
                let count = |n: i64| u64::try_from(n).unwrap_or(0);
                let mut seconds: std::collections::BTreeMap<i64, std::collections::BTreeMap<u64, i64>> = Default::default();
                for (part, month, outcome, ms, a, b, c, d, e) in rows {
                    if part == 3 {
                        *seconds.entry(month).or_default().entry(count(ms)).or_default() += a;
                        continue;
                    }
                    for &i in index.get(&month).into_iter().flatten() {
                        let t = &mut out[i];
                        match part {
                            0 => {
                                t.triggered += a;
                                t.received += b;
                                t.acknowledged += c;
                                t.closed += d;
                                t.never_acknowledged += e;
                            }
                            1 => {
                                *t.times.entry(count(ms)).or_default() += a;
                            }
                            _ => {
                                let o = vft_domain::Outcome::from_id(&outcome)
                                    .ok_or_else(|| $crate::StoreError::Corrupt(format!("outcome {outcome:?}")))?;
                                *t.outcomes.entry(o).or_default() += a;
                            }
                        }
                    }
                }
                // The seconds each month's figures need to the millisecond: at most three a
                // month, each an index range of `response_times_by_ms`.
                let wanted: Vec<(i64, u64)> = seconds
                    .iter()
                    .flat_map(|(month, s)| {
                        vft_domain::response::seconds_read_exactly(s).into_iter().map(move |second| (*month, second))
                    })
                    .collect();
                let mut exact: std::collections::BTreeMap<i64, Vec<(u64, i64)>> = Default::default();
                // SQLite allows 500 terms in a compound SELECT: a long span of months is asked in
                // pieces (a year is at most 36 terms).
                for wanted in wanted.chunks(100) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("");
                    for (n, (month, second)) in wanted.iter().enumerate() {
                        if n > 0 {
                            qb.push(" UNION ALL ");
                        }
                        let last_ms = i64::try_from(second.saturating_mul(1000)).unwrap_or(i64::MAX);
                        let first_ms = if *second == 0 { 0 } else { last_ms - 999 };
                        qb.push("SELECT month, response_ms, CAST(SUM(alarms) AS BIGINT) FROM response_times WHERE month = ")
                            .push_bind(*month)
                            .push(" AND response_ms >= ")
                            .push_bind(first_ms)
                            .push(" AND response_ms <= ")
                            .push_bind(last_ms);
                        if let Some(k) = kind {
                            qb.push(" AND kind = ").push_bind(k.id());
                        }
                        qb.push(" GROUP BY month, response_ms");
                    }
                    let rows: Vec<(i64, i64, i64)> = qb.build_query_as().fetch_all(&mut *tx).await?;
                    for (month, ms, n) in rows {
                        exact.entry(month).or_default().push((count(ms), n));
                    }
                }
                if let (true, Some(m)) = (own, municipality) {
                    let span = (first.start(), last.end_exclusive());
                    for (month, fact, sign) in Self::own_corrections(&mut tx, m, span).await? {
                        if kind.is_some_and(|k| k.id() != fact.kind) {
                            continue;
                        }
                        for &i in index.get(&month).into_iter().flatten() {
                            out[i].add_fact(&fact.fact, sign);
                        }
                    }
                }
                tx.commit().await?;
                for (month, s) in &seconds {
                    let times = vft_domain::response::times_from_seconds(
                        s,
                        exact.remove(month).unwrap_or_default(),
                    );
                    for &i in index.get(month).into_iter().flatten() {
                        out[i].times = times.clone();
                    }
                }
                Ok(out)
            }
        }
    };
}

pub(crate) use impl_response;
