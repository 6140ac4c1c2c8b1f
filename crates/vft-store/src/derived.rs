//! State derived from the events that the store keeps beside them, written by `write_batch` in
//! the batch's own transaction, and the operator's way back to a state that follows the events
//! (`vft rebuild`):
//! - service state (migration 0019, `vft_domain::interval`): each device's service intervals,
//!   recipients' unions of them, and their month deltas, from which the month-end breakdown is
//!   read;
//! - doses per month and municipality (migration 0020), counted once per stored dose event;
//! - response-centre sums per month, municipality and kind (migration 0021, `response.rs`),
//!   kept by difference from each alarm's contribution;
//! - the contact history (migration 0018, `vft_domain::contact`), which outlives the raw status
//!   events, so rebuilding it merges what the remaining events say into it (a merge is
//!   idempotent) and never drops the days whose raw events retention already purged.

use crate::Result;
use async_trait::async_trait;

/// What a rebuild did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildOutcome {
    /// Contact events read.
    pub contact_events: u64,
    /// Device months of contact history written (merged into what was kept).
    pub contact_months: u64,
}

/// One stored row of the contact history, as numbers (for comparisons in tests and tools).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContactRow {
    pub month: i64,
    pub vendor: String,
    pub device: String,
    pub days: i64,
    pub last_ts: i64,
}

#[async_trait]
pub trait DerivedStore: Send + Sync {
    /// Merges the contact history of every stored contact event into the kept history, one
    /// Oslo day of events at a time and one transaction per month. With `discard`, the kept
    /// history is forgotten first, so what the events no longer show (a hand edit) goes, and so
    /// does history whose raw events retention purged; a rebuild interrupted then is finished
    /// when the store next opens. `progress` is called after each month with (months done,
    /// months in all).
    async fn rebuild_contact_history(
        &self,
        discard: bool,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<RebuildOutcome>;

    /// Recomputes the service state (intervals, recipient spans, month deltas) from the
    /// lifecycle events, by difference, some thousand devices per transaction; returns the
    /// devices done. `progress` gets (devices done, devices in all).
    async fn rebuild_service_state(
        &self,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<u64>;

    /// Recounts the doses per month and municipality from the dose events, in one
    /// transaction; returns the municipality months written.
    async fn recount_dose_months(&self) -> Result<u64>;

    /// Recomputes the response-centre sums (each alarm's contribution, and their sums per
    /// month, municipality and kind) from the alarm state, and finds again from the alarm
    /// events which alarms have events from several municipalities and each one's own state
    /// of them (decision 0026), in one transaction; returns the alarms read.
    async fn rebuild_response_months(&self) -> Result<u64>;

    /// The whole contact history, ordered.
    async fn contact_history(&self) -> Result<Vec<ContactRow>>;
}

/// The one-off fills that a migration asked for (`derived_state.built = 0`), run when a store
/// opens. A store opened by several processes at once may run one twice: it is a merge.
pub(crate) const PENDING_DERIVED_STATE: &str =
    "SELECT name FROM derived_state WHERE built = 0 ORDER BY name";

/// The identity of a recipient's union of intervals.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SpanKey {
    pub recipient: String,
    pub municipality: String,
    pub vendor: String,
    pub kind: String,
}

impl SpanKey {
    /// Device-count rows use the same key with an empty recipient.
    pub(crate) fn of(iv: &vft_domain::interval::Interval) -> Self {
        Self {
            recipient: iv
                .recipient
                .as_ref()
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default(),
            municipality: iv.municipality.as_str().to_owned(),
            vendor: iv.vendor.as_str().to_owned(),
            kind: iv.kind.map(|k| k.id().to_owned()).unwrap_or_default(),
        }
    }
}

/// A service interval as stored (`service_intervals i`), with the unit its install replaces:
/// the columns, their names in `fetch_many`'s order, and the row they decode to.
pub(crate) const INTERVAL_COLUMNS: &str =
    "i.vendor, i.device, i.from_ts, i.to_ts, i.municipality, i.kind, i.recipient, i.replaces";
pub(crate) const INTERVAL_NAMES: [&str; 8] = [
    "vendor",
    "device",
    "from_ts",
    "to_ts",
    "municipality",
    "kind",
    "recipient",
    "replaces",
];
pub(crate) type IntervalRow = (
    String,
    String,
    i64,
    Option<i64>,
    String,
    String,
    Option<String>,
    Option<String>,
);

pub(crate) fn interval_row(row: IntervalRow) -> Result<vft_domain::interval::Interval> {
    use crate::shared::{corrupt, from_micros};
    let (vendor, device, from, to, municipality, kind, recipient, replaces) = row;
    Ok(vft_domain::interval::Interval {
        vendor: vft_domain::VendorId::parse(&vendor).map_err(corrupt)?,
        device: vft_domain::DeviceId::parse(&device).map_err(corrupt)?,
        from: from_micros(from)?,
        to: to.map(from_micros).transpose()?,
        municipality: vft_domain::MunicipalityCode::parse(&municipality).map_err(corrupt)?,
        kind: Some(
            vft_domain::TechnologyKind::from_id(&kind)
                .ok_or_else(|| crate::StoreError::Corrupt(format!("unknown kind {kind:?}")))?,
        ),
        recipient: recipient
            .as_deref()
            .map(vft_domain::RecipientRef::parse)
            .transpose()
            .map_err(corrupt)?,
        replaces: replaces
            .as_deref()
            .map(vft_domain::DeviceId::parse)
            .transpose()
            .map_err(corrupt)?,
    })
}

impl crate::shared::FromRaw for vft_domain::interval::Interval {
    type Raw = IntervalRow;
    fn from_raw(row: IntervalRow) -> Result<Self> {
        interval_row(row)
    }
}

macro_rules! impl_derived {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Merges month rows of contact history inside a batch's transaction.
            pub(crate) async fn upsert_contact_months(
                tx: &mut sqlx::Transaction<'_, $db>,
                rows: &[vft_domain::contact::ContactMonth],
            ) -> $crate::Result<()> {
                for chunk in $crate::shared::statement_chunks(&rows, $crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO contact_months (month, vendor, device, days, last_ts) ",
                    );
                    qb.push_values(chunk, |mut row, c| {
                        row.push_bind(vft_domain::contact::month_key(c.month))
                            .push_bind(c.vendor.as_str())
                            .push_bind(c.device.as_str())
                            .push_bind(i64::from(c.days))
                            .push_bind($crate::shared::micros(c.last));
                    });
                    // OR and max: the merge of vft_domain::contact::ContactMonth::merge.
                    qb.push(
                        " ON CONFLICT (month, vendor, device) DO UPDATE SET \
                         days = contact_months.days | excluded.days, \
                         last_ts = CASE WHEN excluded.last_ts > contact_months.last_ts \
                         THEN excluded.last_ts ELSE contact_months.last_ts END",
                    );
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Recomputes the service intervals of `devices` from their lifecycle events, and
            /// the recipient spans and month deltas they touch, inside a batch's transaction
            /// (see `vft_domain::interval`). Only these devices' rows and their recipients'
            /// spans are read and written, so a late event costs its own device, not the fleet.
            pub(crate) async fn apply_service_state(
                tx: &mut sqlx::Transaction<'_, $db>,
                devices: &[(String, String)],
            ) -> $crate::Result<()> {
                use std::collections::{BTreeMap, BTreeSet};
                use $crate::derived::{interval_row, SpanKey, INTERVAL_COLUMNS};
                use $crate::shared::micros;
                if devices.is_empty() {
                    return Ok(());
                }
                let affected: BTreeSet<(&str, &str)> = devices.iter().map(|(v, d)| (v.as_str(), d.as_str())).collect();
                let mut steps: BTreeMap<(String, String), Vec<vft_domain::interval::Step>> = BTreeMap::new();
                let mut old: Vec<vft_domain::interval::Interval> = Vec::new();
                for chunk in $crate::shared::statement_chunks(&devices, $crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT vendor, device, ts, lifecycle_rank, event_id, municipality, kind, recipient, replaces FROM events \
                         WHERE lifecycle_rank IS NOT NULL AND (vendor, device) IN (",
                    );
                    qb.push_values(chunk, |mut row, (v, d)| {
                        row.push_bind(v.as_str()).push_bind(d.as_str());
                    });
                    qb.push(")");
                    type StepRow = (String, String, i64, i64, String, String, Option<String>, Option<String>, Option<String>);
                    let rows: Vec<StepRow> = qb.build_query_as().fetch_all(&mut **tx).await?;
                    for (v, d, ts, rank, id, m, k, r, rep) in rows {
                        steps.entry((v, d)).or_default().push(vft_domain::interval::Step {
                            ts: $crate::shared::from_micros(ts)?,
                            installed: rank == 0,
                            event_id: vft_domain::EventId::parse(&id).map_err($crate::shared::corrupt)?,
                            municipality: vft_domain::MunicipalityCode::parse(&m).map_err($crate::shared::corrupt)?,
                            kind: k.as_deref().and_then(vft_domain::TechnologyKind::from_id),
                            recipient: r.as_deref().map(vft_domain::RecipientRef::parse).transpose().map_err($crate::shared::corrupt)?,
                            replaces: rep.as_deref().map(vft_domain::DeviceId::parse).transpose().map_err($crate::shared::corrupt)?,
                        });
                    }
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {INTERVAL_COLUMNS} FROM service_intervals i WHERE (i.vendor, i.device) IN ("
                    ));
                    qb.push_values(chunk, |mut row, (v, d)| {
                        row.push_bind(v.as_str()).push_bind(d.as_str());
                    });
                    qb.push(")");
                    for row in qb.build_query_as().fetch_all(&mut **tx).await? {
                        old.push(interval_row(row)?);
                    }
                }
                let mut new: Vec<vft_domain::interval::Interval> = Vec::new();
                for ((v, d), steps) in &steps {
                    let vendor = vft_domain::VendorId::parse(v).map_err($crate::shared::corrupt)?;
                    let device = vft_domain::DeviceId::parse(d).map_err($crate::shared::corrupt)?;
                    // An install without a kind (the contract refuses one) counts nowhere.
                    new.extend(vft_domain::interval::intervals(&vendor, &device, steps).into_iter().filter(|iv| iv.kind.is_some()));
                }
                // Month deltas: (month, municipality, vendor, kind) -> (devices, recipients).
                let mut deltas: BTreeMap<(i64, String, String, String), (i64, i64)> = BTreeMap::new();
                let mut add = |key: &SpanKey, from: chrono::DateTime<chrono::Utc>, to: Option<chrono::DateTime<chrono::Utc>>, sign: i64, recipients: bool| {
                    for (month, d) in vft_domain::interval::Contribution::of(from, to).deltas(sign) {
                        let slot = deltas
                            .entry((vft_domain::contact::month_key(month), key.municipality.clone(), key.vendor.clone(), key.kind.clone()))
                            .or_default();
                        if recipients { slot.1 += d } else { slot.0 += d }
                    }
                };
                for (iv, sign) in old.iter().map(|iv| (iv, -1)).chain(new.iter().map(|iv| (iv, 1))) {
                    add(&SpanKey::of(iv), iv.from, iv.to, sign, false);
                }
                // Recipients: each touched (recipient, municipality, vendor, kind) is the union
                // of its devices' intervals, before (as stored) and after.
                let keys: BTreeSet<SpanKey> = old.iter().chain(new.iter()).filter(|iv| iv.recipient.is_some()).map(SpanKey::of).collect();
                let keys: Vec<SpanKey> = keys.into_iter().collect();
                let mut spans_after: BTreeMap<SpanKey, Vec<(chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>)>> =
                    keys.iter().map(|k| (k.clone(), Vec::new())).collect();
                for iv in new.iter().filter(|iv| iv.recipient.is_some()) {
                    spans_after.entry(SpanKey::of(iv)).or_default().push((iv.from, iv.to));
                }
                for chunk in $crate::shared::statement_chunks(&keys, $crate::shared::ROWS_PER_STATEMENT / 2) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT recipient, municipality, vendor, kind, from_ts, to_ts FROM recipient_spans \
                         WHERE (recipient, municipality, vendor, kind) IN (",
                    );
                    qb.push_values(chunk, |mut row, k| {
                        row.push_bind(k.recipient.as_str()).push_bind(k.municipality.as_str()).push_bind(k.vendor.as_str()).push_bind(k.kind.as_str());
                    });
                    qb.push(")");
                    let rows: Vec<(String, String, String, String, i64, Option<i64>)> = qb.build_query_as().fetch_all(&mut **tx).await?;
                    for (recipient, municipality, vendor, kind, from, to) in rows {
                        let key = SpanKey { recipient, municipality, vendor, kind };
                        add(&key, $crate::shared::from_micros(from)?, to.map($crate::shared::from_micros).transpose()?, -1, true);
                    }
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {INTERVAL_COLUMNS} FROM service_intervals i \
                         WHERE i.recipient IS NOT NULL AND (i.recipient, i.municipality, i.vendor, i.kind) IN ("
                    ));
                    qb.push_values(chunk, |mut row, k| {
                        row.push_bind(k.recipient.as_str()).push_bind(k.municipality.as_str()).push_bind(k.vendor.as_str()).push_bind(k.kind.as_str());
                    });
                    qb.push(")");
                    for row in qb.build_query_as().fetch_all(&mut **tx).await? {
                        let iv = interval_row(row)?;
                        if !affected.contains(&(iv.vendor.as_str(), iv.device.as_str())) {
                            spans_after.entry(SpanKey::of(&iv)).or_default().push((iv.from, iv.to));
                        }
                    }
                }
                let spans_after: Vec<(SpanKey, Vec<_>)> = spans_after
                    .into_iter()
                    .map(|(k, spans)| (k, vft_domain::interval::union(spans)))
                    .collect();
                for (key, spans) in &spans_after {
                    for (from, to) in spans {
                        add(key, *from, *to, 1, true);
                    }
                }
                // Writes: the devices' intervals, the touched spans, the deltas.
                for chunk in $crate::shared::statement_chunks(&devices, $crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("DELETE FROM service_intervals WHERE (vendor, device) IN (");
                    qb.push_values(chunk, |mut row, (v, d)| {
                        row.push_bind(v.as_str()).push_bind(d.as_str());
                    });
                    qb.push(")");
                    qb.build().execute(&mut **tx).await?;
                }
                for chunk in $crate::shared::statement_chunks(&new, $crate::shared::ROWS_PER_STATEMENT / 2) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO service_intervals (vendor, device, from_ts, to_ts, municipality, kind, recipient, replaces) ",
                    );
                    qb.push_values(chunk, |mut row, iv| {
                        row.push_bind(iv.vendor.as_str())
                            .push_bind(iv.device.as_str())
                            .push_bind(micros(iv.from))
                            .push_bind(iv.to.map(micros))
                            .push_bind(iv.municipality.as_str())
                            .push_bind(iv.kind.map(|k| k.id()).unwrap_or_default())
                            .push_bind(iv.recipient.as_ref().map(|r| r.as_str()))
                            .push_bind(iv.replaces.as_ref().map(|r| r.as_str()));
                    });
                    qb.build().execute(&mut **tx).await?;
                }
                for chunk in $crate::shared::statement_chunks(&keys, $crate::shared::ROWS_PER_STATEMENT / 2) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "DELETE FROM recipient_spans WHERE (recipient, municipality, vendor, kind) IN (",
                    );
                    qb.push_values(chunk, |mut row, k| {
                        row.push_bind(k.recipient.as_str()).push_bind(k.municipality.as_str()).push_bind(k.vendor.as_str()).push_bind(k.kind.as_str());
                    });
                    qb.push(")");
                    qb.build().execute(&mut **tx).await?;
                }
                let spans: Vec<(&SpanKey, i64, Option<i64>)> = spans_after
                    .iter()
                    .flat_map(|(k, spans)| spans.iter().map(move |(f, t)| (k, micros(*f), t.map(micros))))
                    .collect();
                for chunk in $crate::shared::statement_chunks(&spans, $crate::shared::ROWS_PER_STATEMENT / 2) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO recipient_spans (recipient, municipality, vendor, kind, from_ts, to_ts) ",
                    );
                    qb.push_values(chunk, |mut row, (k, f, t)| {
                        row.push_bind(k.recipient.as_str())
                            .push_bind(k.municipality.as_str())
                            .push_bind(k.vendor.as_str())
                            .push_bind(k.kind.as_str())
                            .push_bind(*f)
                            .push_bind(*t);
                    });
                    qb.build().execute(&mut **tx).await?;
                }
                let deltas: Vec<_> = deltas.into_iter().filter(|(_, (d, r))| *d != 0 || *r != 0).collect();
                for chunk in $crate::shared::statement_chunks(&deltas, $crate::shared::ROWS_PER_STATEMENT / 2) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO service_month_deltas (month, municipality, vendor, kind, devices, recipients) ",
                    );
                    qb.push_values(chunk, |mut row, ((month, m, v, k), (d, r))| {
                        row.push_bind(*month)
                            .push_bind(m.as_str())
                            .push_bind(v.as_str())
                            .push_bind(k.as_str())
                            .push_bind(*d)
                            .push_bind(*r);
                    });
                    qb.push(
                        " ON CONFLICT (month, municipality, vendor, kind) DO UPDATE SET \
                         devices = service_month_deltas.devices + excluded.devices, \
                         recipients = service_month_deltas.recipients + excluded.recipients",
                    );
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Recomputes the service state of every device that has lifecycle events or stored
            /// intervals, by difference (as a batch does), a chunk of devices per transaction so
            /// that ingest goes on between chunks. Converges on the events from any state the
            /// store wrote. Returns the devices done.
            pub(crate) async fn rebuild_service_state_by_chunks(
                &self,
                progress: &(dyn Fn(u64, u64) + Send + Sync),
            ) -> $crate::Result<u64> {
                let devices: Vec<(String, String)> = sqlx::query_as(
                    "SELECT vendor, device FROM events WHERE lifecycle_rank IS NOT NULL \
                     UNION SELECT vendor, device FROM service_intervals ORDER BY 1, 2",
                )
                .fetch_all(&self.reader)
                .await?;
                let total = devices.len() as u64;
                let mut done = 0;
                for chunk in devices.chunks(2000) {
                    let mut tx = self.writer.begin().await?;
                    // As a lifecycle batch does first: in PostgreSQL this row lock orders the
                    // chunk against batches that change service state.
                    sqlx::query("UPDATE lifecycle_generation SET generation = generation + 1 WHERE id = 1")
                        .execute(&mut *tx)
                        .await?;
                    Self::apply_service_state(&mut tx, chunk).await?;
                    tx.commit().await?;
                    done += chunk.len() as u64;
                    progress(done, total);
                }
                Self::set_derived_built(&self.writer, "service_state", true).await?;
                Ok(total)
            }

            /// Records whether the derived state `name` is built; the store builds at open what
            /// is not (`build_pending_derived_state`).
            pub(crate) async fn set_derived_built<'e>(
                executor: impl sqlx::Executor<'e, Database = $db>,
                name: &str,
                built: bool,
            ) -> $crate::Result<()> {
                let sql = if built {
                    "UPDATE derived_state SET built = 1 WHERE name = $1"
                } else {
                    "UPDATE derived_state SET built = 0 WHERE name = $1"
                };
                sqlx::query(sql).bind(name).execute(executor).await?;
                Ok(())
            }

            /// Devices and recipients in service just before each instant, per municipality,
            /// vendor and kind, from the service state: month deltas summed up to each
            /// instant's month, then the interval and span ends within its month before it.
            pub(crate) async fn breakdown_from_state(
                &self,
                before: &[chrono::DateTime<chrono::Utc>],
            ) -> $crate::Result<Vec<$crate::BreakdownRow>> {
                // One snapshot for every read: a batch committing between them could otherwise
                // be half seen (its install's delta missed, its removal's end counted).
                let mut tx = self.snapshot().await?;
                let out = Self::breakdown_in(&mut tx, before).await?;
                tx.commit().await?;
                Ok(out)
            }

            /// A read-only transaction whose reads all see one snapshot (in SQLite's WAL mode
            /// every read transaction does; PostgreSQL needs REPEATABLE READ).
            async fn snapshot(&self) -> $crate::Result<sqlx::Transaction<'static, $db>> {
                let mut tx = self.reader.begin().await?;
                if <$db as sqlx::Database>::NAME == "PostgreSQL" {
                    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                        .execute(&mut *tx)
                        .await?;
                }
                Ok(tx)
            }

            /// [`Self::breakdown_from_state`] inside the caller's snapshot.
            async fn breakdown_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                before: &[chrono::DateTime<chrono::Utc>],
            ) -> $crate::Result<Vec<$crate::BreakdownRow>> {
                use std::collections::BTreeMap;
                use $crate::shared::micros;
                type Key = (String, String, String);
                // A cut inside its month is read from the nearer end of that month: the deltas
                // before the month plus the changes from its start up to the cut, or the deltas
                // through the month minus the changes from the cut to its end. The current
                // month is asked as of now, which is near its end of the changes: its cost
                // stays a few rows however busy the month has been (the soak bench).
                let plans: Vec<(i64, Option<(i64, i64, i64)>)> = before
                    .iter()
                    .map(|cut| {
                        let month = vft_domain::YearMonth::containing(*cut);
                        let (start, c, end) = (micros(month.start()), micros(*cut), micros(month.end_exclusive()));
                        let key = vft_domain::contact::month_key(month);
                        if c == start {
                            (key, None)
                        } else if end - c < c - start {
                            // Deltas of months before `key + 1`: through this month.
                            (key + 1, Some((c, end, -1)))
                        } else {
                            (key, Some((start, c, 1)))
                        }
                    })
                    .collect();
                // The deltas summed up to each bound: those before the first bound summed in
                // SQL (a row per municipality, vendor and kind, however many months of
                // history), the few months from there to the last bound read as they are and
                // added up here. Summing every bound in SQL (a CASE per bound and row) took
                // three times as long at 500 000 devices.
                let mut bounds: Vec<i64> = plans.iter().map(|(bound, _)| *bound).collect();
                bounds.sort_unstable();
                bounds.dedup();
                let (Some(&first_bound), Some(&last_bound)) = (bounds.first(), bounds.last()) else {
                    return Ok(Vec::new());
                };
                type DeltaRow = (String, String, String, i64, i64);
                let base: Vec<DeltaRow> = Self::fetch_many_in(
                    &mut **tx,
                    &["municipality", "vendor", "kind", "devices", "recipients"],
                    |qb| {
                        // PostgreSQL sums BIGINT as NUMERIC: cast back.
                        qb.push(
                            "SELECT municipality, vendor, kind, CAST(SUM(devices) AS BIGINT) AS devices, \
                             CAST(SUM(recipients) AS BIGINT) AS recipients FROM service_month_deltas WHERE month < ",
                        )
                        .push_bind(first_bound)
                        .push(" GROUP BY municipality, vendor, kind");
                    },
                )
                .await?;
                let mut recent: Vec<(i64, String, String, String, i64, i64)> = Self::fetch_many_in(
                    &mut **tx,
                    &["month", "municipality", "vendor", "kind", "devices", "recipients"],
                    |qb| {
                        qb.push(
                            "SELECT month, municipality, vendor, kind, devices, recipients FROM service_month_deltas \
                             WHERE month >= ",
                        )
                        .push_bind(first_bound)
                        .push(" AND month < ")
                        .push_bind(last_bound);
                    },
                )
                .await?;
                let mut running: BTreeMap<Key, (i64, i64)> = base
                    .into_iter()
                    .map(|(m, v, k, devices, recipients)| ((m, v, k), (devices, recipients)))
                    .collect();
                recent.sort_unstable_by_key(|r| r.0);
                let mut sums: BTreeMap<i64, BTreeMap<Key, (i64, i64)>> = BTreeMap::new();
                let mut next = recent.into_iter().peekable();
                for bound in &bounds {
                    while let Some((_, m, v, k, devices, recipients)) = next.next_if(|r| r.0 < *bound) {
                        let slot = running.entry((m, v, k)).or_default();
                        slot.0 += devices;
                        slot.1 += recipients;
                    }
                    sums.insert(*bound, running.clone());
                }
                let mut out = Vec::new();
                for (idx, (bound, changes)) in plans.iter().enumerate() {
                    let mut counts = sums.get(bound).cloned().unwrap_or_default();
                    // Interval starts in [from, to) add (or, read back from the month's end,
                    // take away) one each, interval ends the opposite.
                    if let Some((from, to, direction)) = *changes {
                        for (table, recipients) in [("service_intervals", false), ("recipient_spans", true)] {
                            for (column, sign) in [("from_ts", 1), ("to_ts", -1)] {
                                let found: Vec<(String, String, String, i64)> = sqlx::query_as(&format!(
                                    "SELECT municipality, vendor, kind, COUNT(*) FROM {table} \
                                     WHERE {column} >= $1 AND {column} < $2 GROUP BY municipality, vendor, kind"
                                ))
                                .bind(from)
                                .bind(to)
                                .fetch_all(&mut **tx)
                                .await?;
                                for (m, v, k, n) in found {
                                    let slot = counts.entry((m, v, k)).or_default();
                                    let change = direction * sign * n;
                                    if recipients { slot.1 += change } else { slot.0 += change }
                                }
                            }
                        }
                    }
                    for ((m, v, k), (devices, recipients)) in counts {
                        if devices == 0 && recipients == 0 {
                            continue;
                        }
                        if devices < 0 || recipients < 0 || recipients > devices {
                            return Err($crate::StoreError::Corrupt(format!(
                                "service state of {m}/{v}/{k}: {devices} devices, {recipients} recipients (run `vft rebuild`)"
                            )));
                        }
                        out.push($crate::BreakdownRow {
                            idx,
                            municipality: vft_domain::MunicipalityCode::parse(&m).map_err($crate::shared::corrupt)?,
                            vendor: vft_domain::VendorId::parse(&v).map_err($crate::shared::corrupt)?,
                            kind: vft_domain::TechnologyKind::from_id(&k)
                                .ok_or_else(|| $crate::StoreError::Corrupt(format!("unknown kind {k:?}")))?,
                            devices: devices as u64,
                            recipients: recipients as u64,
                        });
                    }
                }
                Ok(out)
            }

            /// Counts newly stored dose events into `dose_months`, inside the batch's
            /// transaction. `events` are the events this batch stored for the first time.
            pub(crate) async fn count_dose_months(
                tx: &mut sqlx::Transaction<'_, $db>,
                events: &[&vft_domain::Event],
            ) -> $crate::Result<()> {
                let mut counts: std::collections::BTreeMap<(i64, &str), (i64, i64)> = Default::default();
                for e in events {
                    let taken = match e.event_type {
                        vft_domain::EventType::DoseTaken => true,
                        vft_domain::EventType::DoseMissed => false,
                        _ => continue,
                    };
                    let month = vft_domain::contact::month_key(vft_domain::YearMonth::containing(e.ts_utc()));
                    let slot = counts.entry((month, e.municipality.as_str())).or_default();
                    if taken { slot.0 += 1 } else { slot.1 += 1 }
                }
                let counts: Vec<_> = counts.into_iter().collect();
                for chunk in $crate::shared::statement_chunks(&counts, $crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO dose_months (month, municipality, taken, missed) ");
                    qb.push_values(chunk, |mut row, ((month, m), (taken, missed))| {
                        row.push_bind(*month).push_bind(*m).push_bind(*taken).push_bind(*missed);
                    });
                    qb.push(
                        " ON CONFLICT (month, municipality) DO UPDATE SET \
                         taken = dose_months.taken + excluded.taken, missed = dose_months.missed + excluded.missed",
                    );
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Recounts `dose_months` from the dose events, one Oslo month per statement, in
            /// one transaction (a batch with doses waits for it). Returns the municipality
            /// months written.
            pub(crate) async fn recount_dose_months(&self) -> $crate::Result<u64> {
                use $crate::shared::{from_micros, micros};
                let mut tx = self.writer.begin().await?;
                sqlx::query("DELETE FROM dose_months").execute(&mut *tx).await?;
                let (first, last): (Option<i64>, Option<i64>) = sqlx::query_as(
                    "SELECT MIN(ts), MAX(ts) FROM events WHERE type IN ('dose_taken', 'dose_missed')",
                )
                .fetch_one(&mut *tx)
                .await?;
                let mut total = 0u64;
                if let (Some(first), Some(last)) = (first, last) {
                    let mut month = vft_domain::YearMonth::containing(from_micros(first)?);
                    let last = vft_domain::YearMonth::containing(from_micros(last)?);
                    while month <= last {
                        let stored = sqlx::query(
                            "INSERT INTO dose_months (month, municipality, taken, missed) \
                             SELECT $1, municipality, SUM(CASE WHEN type = 'dose_taken' THEN 1 ELSE 0 END), \
                             SUM(CASE WHEN type = 'dose_missed' THEN 1 ELSE 0 END) FROM events \
                             WHERE type IN ('dose_taken', 'dose_missed') AND ts >= $2 AND ts < $3 GROUP BY municipality",
                        )
                        .bind(vft_domain::contact::month_key(month))
                        .bind(micros(month.start()))
                        .bind(micros(month.end_exclusive()))
                        .execute(&mut *tx)
                        .await?;
                        total += stored.rows_affected();
                        month = month.next();
                    }
                }
                Self::set_derived_built(&mut *tx, "dose_months", true).await?;
                tx.commit().await?;
                Ok(total)
            }

            /// Doses per period and municipality: whole Oslo months from `dose_months`, any
            /// other period from its dose events.
            pub(crate) async fn dose_counts_from_state(
                &self,
                periods: &[(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)],
            ) -> $crate::Result<Vec<(usize, vft_domain::MunicipalityCode, u64, u64)>> {
                use $crate::shared::micros;
                let mut out = Vec::new();
                for (idx, (start, end)) in periods.iter().enumerate() {
                    let (first, after) = (vft_domain::YearMonth::containing(*start), vft_domain::YearMonth::containing(*end));
                    let whole_months = first.start() == *start && after.start() == *end;
                    let rows: Vec<(String, i64, i64)> = if whole_months {
                        sqlx::query_as(
                            "SELECT municipality, CAST(SUM(taken) AS BIGINT), CAST(SUM(missed) AS BIGINT) FROM dose_months \
                             WHERE month >= $1 AND month < $2 GROUP BY municipality ORDER BY municipality",
                        )
                        .bind(vft_domain::contact::month_key(first))
                        .bind(vft_domain::contact::month_key(after))
                        .fetch_all(&self.reader)
                        .await?
                    } else {
                        sqlx::query_as(
                            "SELECT municipality, CAST(SUM(CASE WHEN type = 'dose_taken' THEN 1 ELSE 0 END) AS BIGINT), \
                             CAST(SUM(CASE WHEN type = 'dose_missed' THEN 1 ELSE 0 END) AS BIGINT) FROM events \
                             WHERE type IN ('dose_taken', 'dose_missed') AND ts >= $1 AND ts < $2 \
                             GROUP BY municipality ORDER BY municipality",
                        )
                        .bind(micros(*start))
                        .bind(micros(*end))
                        .fetch_all(&self.reader)
                        .await?
                    };
                    for (m, taken, missed) in rows {
                        if taken == 0 && missed == 0 {
                            continue;
                        }
                        out.push((
                            idx,
                            vft_domain::MunicipalityCode::parse(&m).map_err($crate::shared::corrupt)?,
                            u64::try_from(taken).unwrap_or(0),
                            u64::try_from(missed).unwrap_or(0),
                        ));
                    }
                }
                Ok(out)
            }

            /// Runs the fills a migration left pending (see `PENDING_DERIVED_STATE`).
            pub(crate) async fn build_pending_derived_state(&self) -> $crate::Result<()> {
                let pending: Vec<(String,)> =
                    sqlx::query_as($crate::derived::PENDING_DERIVED_STATE)
                        .fetch_all(&self.writer)
                        .await?;
                for (name,) in pending {
                    if name == "service_state" {
                        let devices = self.rebuild_service_state_by_chunks(&|_, _| {}).await?;
                        tracing::info!(devices, "service state built from the stored lifecycle events");
                    }
                    if name == "dose_months" {
                        let rows = self.recount_dose_months().await?;
                        tracing::info!(rows, "dose counts per month built from the stored dose events");
                    }
                    if name == "response_months" {
                        let alarms = self.rebuild_response_months().await?;
                        tracing::info!(alarms, "response-centre sums built from the stored alarms");
                    }
                    if name == "own_alarm_states" {
                        // As a batch with alarms: it holds `alarm_generation` meanwhile.
                        let mut tx = self.writer.begin().await?;
                        sqlx::query($crate::response::LOCK_ALARM_SUMS)
                            .execute(&mut *tx)
                            .await?;
                        Self::rebuild_own_alarm_states(&mut tx).await?;
                        tx.commit().await?;
                    }
                    if name == "contact_history" {
                        let outcome = $crate::derived::DerivedStore::rebuild_contact_history(
                            self,
                            false,
                            &|_, _| {},
                        )
                        .await?;
                        tracing::info!(
                            contact_events = outcome.contact_events,
                            contact_months = outcome.contact_months,
                            "contact history built from the stored events"
                        );
                    }
                    Self::set_derived_built(&self.writer, &name, true).await?;
                }
                Ok(())
            }

            /// The intervals ingest keeps that cover some instant in `[first, last]`, each with
            /// the unit its install replaces (see `FigureStore::service_spans`).
            pub(crate) async fn spans_from_state(&self, first: chrono::DateTime<chrono::Utc>, last: chrono::DateTime<chrono::Utc>) -> $crate::Result<Vec<vft_domain::interval::Interval>> {
                let (first, last) = ($crate::shared::micros(first), $crate::shared::micros(last));
                use $crate::derived::{INTERVAL_COLUMNS, INTERVAL_NAMES};
                use $crate::shared::Decoded;
                let rows: Vec<Decoded<vft_domain::interval::Interval>> = self
                    .fetch_many(&INTERVAL_NAMES, |qb| {
                        // `+from_ts`: not through its index. Nearly every interval starts
                        // before a recent instant, and SQLite, which cannot tell, would look
                        // each row up from the index (three times the scan's cost at 500 000).
                        qb.push(format!("SELECT {INTERVAL_COLUMNS} FROM service_intervals i WHERE +i.from_ts < "));
                        qb.push_bind(last);
                        qb.push(" AND (i.to_ts IS NULL OR i.to_ts >= ");
                        qb.push_bind(first);
                        qb.push(")");
                    })
                    .await?;
                Ok(rows.into_iter().map(|Decoded(iv)| iv).collect())
            }

            /// What a change attribution between `first` and `last` reads, in one snapshot (see
            /// [`crate::FigureStore::service_changes`]).
            pub(crate) async fn changes_from_state(
                &self,
                first: chrono::DateTime<chrono::Utc>,
                last: chrono::DateTime<chrono::Utc>,
                also_in: &[vft_domain::MunicipalityCode],
            ) -> $crate::Result<$crate::ServiceChanges> {
                use $crate::shared::micros;
                let (f, l) = (micros(first), micros(last));
                let mut tx = self.snapshot().await?;
                let breakdown = Self::breakdown_in(&mut tx, &[first, last]).await?;
                use $crate::derived::{INTERVAL_COLUMNS as COLUMNS, INTERVAL_NAMES as NAMES};
                type Row = $crate::shared::Decoded<vft_domain::interval::Interval>;
                // An interval covers an instant c when from < c <= to. A device's intervals are
                // disjoint, so one that moved between the two instants has an interval covering
                // one of them and not the other, and no other covering either: exactly the
                // intervals with an end in [first, last) that cover one of the instants. An
                // interval starting there can only cover `last`; one ending there only `first`.
                // Two index ranges, no join back to the device.
                let mut rows: Vec<Row> = Self::fetch_many_in(&mut tx, &NAMES, |qb| {
                    qb.push(format!("SELECT {COLUMNS} FROM service_intervals i WHERE i.from_ts >= "));
                    qb.push_bind(f).push(" AND i.from_ts < ").push_bind(l);
                    qb.push(" AND (i.to_ts IS NULL OR i.to_ts >= ").push_bind(l).push(")");
                    qb.push(format!(" UNION ALL SELECT {COLUMNS} FROM service_intervals i WHERE i.to_ts >= "));
                    qb.push_bind(f).push(" AND i.to_ts < ").push_bind(l);
                    // `+`: the range on `to_ts` is the narrow one; keep SQLite off the `from_ts` index.
                    qb.push(" AND +i.from_ts < ").push_bind(f);
                })
                .await?;
                if !also_in.is_empty() {
                    // Kept through both instants in a municipality the selection took in or let
                    // go between them: those move a row too (joined or left the scope).
                    let municipalities: Vec<String> = also_in.iter().map(|m| m.to_string()).collect();
                    let kept: Vec<Row> = Self::fetch_many_in(&mut tx, &NAMES, |qb| {
                        qb.push(format!("SELECT {COLUMNS} FROM service_intervals i WHERE +i.from_ts < "));
                        qb.push_bind(f).push(" AND (i.to_ts IS NULL OR i.to_ts >= ").push_bind(l);
                        qb.push(") AND i.municipality IN (");
                        let mut sep = qb.separated(", ");
                        for m in municipalities {
                            sep.push_bind(m);
                        }
                        qb.push(")");
                    })
                    .await?;
                    rows.extend(kept);
                    // An interval can be in both reads (the two ranges above cannot share one:
                    // one starts at or after `first`, the other before). The caller takes the
                    // spans in any order.
                    fn key(r: &Row) -> (&str, &str, chrono::DateTime<chrono::Utc>) {
                        (r.0.vendor.as_str(), r.0.device.as_str(), r.0.from)
                    }
                    rows.sort_by(|a, b| key(a).cmp(&key(b)));
                    rows.dedup_by(|a, b| key(a) == key(b));
                }
                tx.commit().await?;
                let spans = rows.into_iter().map(|$crate::shared::Decoded(iv)| iv).collect();
                Ok($crate::ServiceChanges { breakdown, spans })
            }

            /// Each device's latest contact in `(since, at]`, from the contact history.
            pub(crate) async fn reporting_from_history(
                &self,
                at: chrono::DateTime<chrono::Utc>,
                since: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Vec<vft_domain::reconcile::Reporting>> {
                let (first, last) = vft_domain::contact::window_months(since, at);
                let rows: Vec<(i64, String, String, i64, i64)> = self
                    .fetch_many(&["month", "vendor", "device", "days", "last_ts"], |qb| {
                        qb.push("SELECT month, vendor, device, days, last_ts FROM contact_months WHERE month >= ")
                            .push_bind(first)
                            .push(" AND month <= ")
                            .push_bind(last);
                    })
                    .await?;
                let months = rows
                    .into_iter()
                    .map(|(month, vendor, device, days, last_ts)| {
                        Ok(vft_domain::contact::ContactMonth {
                            vendor: vft_domain::VendorId::parse(&vendor)
                                .map_err($crate::shared::corrupt)?,
                            device: vft_domain::DeviceId::parse(&device)
                                .map_err($crate::shared::corrupt)?,
                            month: vft_domain::contact::month_from_key(month).ok_or_else(|| {
                                $crate::StoreError::Corrupt(format!("contact month {month}"))
                            })?,
                            days: u32::try_from(days).map_err(|_| {
                                $crate::StoreError::Corrupt(format!("contact days {days}"))
                            })?,
                            last: $crate::shared::from_micros(last_ts)?,
                        })
                    })
                    .collect::<$crate::Result<Vec<_>>>()?;
                Ok(vft_domain::contact::reporting(months, at, since))
            }
        }

        #[async_trait::async_trait]
        impl $crate::derived::DerivedStore for $store {
            async fn rebuild_contact_history(
                &self,
                discard: bool,
                progress: &(dyn Fn(u64, u64) + Send + Sync),
            ) -> $crate::Result<$crate::derived::RebuildOutcome> {
                use $crate::shared::{from_micros, micros};
                if discard {
                    let mut tx = self.writer.begin().await?;
                    Self::set_derived_built(&mut *tx, "contact_history", false).await?;
                    sqlx::query("DELETE FROM contact_months")
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                }
                // Device state keeps each device's latest contact, also when its raw event is
                // gone (purged before this history existed): that day is history too. Not when
                // discarding: then only the events count, as asked.
                let latest: Vec<(String, String, i64)> = if discard {
                    Vec::new()
                } else {
                    sqlx::query_as(
                        "SELECT vendor, device, contact_ts FROM devices WHERE contact_ts IS NOT NULL ORDER BY vendor, device",
                    )
                    .fetch_all(&self.reader)
                    .await?
                };
                let mut kept_latest = Vec::with_capacity(latest.len());
                for (vendor, device, ts) in latest {
                    let vendor = vft_domain::VendorId::parse(&vendor).map_err($crate::shared::corrupt)?;
                    let device = vft_domain::DeviceId::parse(&device).map_err($crate::shared::corrupt)?;
                    kept_latest.extend(vft_domain::contact::ContactMonth::at(vendor, device, from_micros(ts)?));
                }
                for chunk in kept_latest.chunks(10_000) {
                    let mut tx = self.writer.begin().await?;
                    Self::upsert_contact_months(&mut tx, chunk).await?;
                    tx.commit().await?;
                }
                let types: Vec<&'static str> = vft_domain::EventType::ALL
                    .iter()
                    .filter(|t| vft_domain::contact::is_contact(**t))
                    .map(|t| t.id())
                    .collect();
                let contact_types = |qb: &mut sqlx::QueryBuilder<'_, $db>| {
                    let mut sep = qb.separated(", ");
                    for t in &types {
                        sep.push_bind(*t);
                    }
                };
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT MIN(ts), MAX(ts) FROM events WHERE type IN (",
                );
                contact_types(&mut qb);
                qb.push(")");
                let (first, last): (Option<i64>, Option<i64>) =
                    qb.build_query_as().fetch_one(&self.reader).await?;
                let mut outcome = $crate::derived::RebuildOutcome::default();
                let (Some(first), Some(last)) = (first, last) else {
                    Self::set_derived_built(&self.writer, "contact_history", true).await?;
                    return Ok(outcome);
                };
                let first_month = vft_domain::YearMonth::containing(from_micros(first)?);
                let last_month = vft_domain::YearMonth::containing(from_micros(last)?);
                let mut months = vec![first_month];
                while let Some(&m) = months.last().filter(|m| **m < last_month) {
                    months.push(m.next());
                }
                let total = months.len() as u64;
                for (done, month) in months.into_iter().enumerate() {
                    // One Oslo day of events at a time keeps memory to a month's devices.
                    // Sorted, as ingest writes them: in PostgreSQL two writers that upsert the
                    // same rows in one order cannot deadlock.
                    let mut rows: std::collections::BTreeMap<(String, String), (u32, i64)> =
                        std::collections::BTreeMap::new();
                    let mut day = vft_domain::month::oslo_date(month.start());
                    let month_end = month.end_exclusive();
                    loop {
                        let start = vft_domain::month::oslo_midnight(day);
                        if start >= month_end {
                            break;
                        }
                        let next = day.succ_opt().ok_or_else(|| {
                            $crate::StoreError::Corrupt(format!("day after {day}"))
                        })?;
                        let end = vft_domain::month::oslo_midnight(next).min(month_end);
                        let mut qb = sqlx::QueryBuilder::<$db>::new(
                            "SELECT vendor, device, ts FROM events WHERE type IN (",
                        );
                        contact_types(&mut qb);
                        qb.push(") AND ts >= ").push_bind(micros(start));
                        qb.push(" AND ts < ").push_bind(micros(end));
                        let events: Vec<(String, String, i64)> =
                            qb.build_query_as().fetch_all(&self.reader).await?;
                        outcome.contact_events += events.len() as u64;
                        let bit = vft_domain::contact::day_bit(day);
                        for (vendor, device, ts) in events {
                            let slot = rows.entry((vendor, device)).or_insert((0, ts));
                            slot.0 |= bit;
                            slot.1 = slot.1.max(ts);
                        }
                        day = next;
                    }
                    let rows = rows
                        .into_iter()
                        .map(|((vendor, device), (days, last))| {
                            Ok(vft_domain::contact::ContactMonth {
                                vendor: vft_domain::VendorId::parse(&vendor)
                                    .map_err($crate::shared::corrupt)?,
                                device: vft_domain::DeviceId::parse(&device)
                                    .map_err($crate::shared::corrupt)?,
                                month,
                                days,
                                last: from_micros(last)?,
                            })
                        })
                        .collect::<$crate::Result<Vec<_>>>()?;
                    outcome.contact_months += rows.len() as u64;
                    let mut tx = self.writer.begin().await?;
                    Self::upsert_contact_months(&mut tx, &rows).await?;
                    tx.commit().await?;
                    progress(done as u64 + 1, total);
                }
                if discard {
                    Self::set_derived_built(&self.writer, "contact_history", true).await?;
                }
                Ok(outcome)
            }

            async fn rebuild_service_state(&self, progress: &(dyn Fn(u64, u64) + Send + Sync)) -> $crate::Result<u64> {
                self.rebuild_service_state_by_chunks(progress).await
            }

            async fn recount_dose_months(&self) -> $crate::Result<u64> {
                Self::recount_dose_months(self).await
            }

            async fn rebuild_response_months(&self) -> $crate::Result<u64> {
                Self::rebuild_response_months(self).await
            }

            async fn contact_history(&self) -> $crate::Result<Vec<$crate::derived::ContactRow>> {
                let rows: Vec<(i64, String, String, i64, i64)> = sqlx::query_as(
                    "SELECT month, vendor, device, days, last_ts FROM contact_months \
                     ORDER BY month, vendor, device",
                )
                .fetch_all(&self.reader)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(
                        |(month, vendor, device, days, last_ts)| $crate::derived::ContactRow {
                            month,
                            vendor,
                            device,
                            days,
                            last_ts,
                        },
                    )
                    .collect())
            }
        }
    };
}

pub(crate) use impl_derived;
