//! What the figures read: month-end breakdowns, in-service snapshots, service spans and the
//! changes between two instants (all from the service state ingest keeps, `derived.rs`),
//! alarm records and the response-centre sums, dose counts, and published months.

use crate::{BreakdownRow, PublishedMonth, Result, ServiceChanges};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use vft_domain::attribution::InService;
use vft_domain::response::AlarmRecord;
use vft_domain::{MunicipalityCode, TechnologyKind, YearMonth};

#[async_trait]
pub trait FigureStore: Send + Sync {
    /// Month-end figures just before each instant, per municipality, vendor and type.
    async fn month_end_breakdown(&self, before: &[DateTime<Utc>]) -> Result<Vec<BreakdownRow>>;

    /// Every device in service just before `before`, with what its latest install said, by
    /// vendor and device: the intervals ingest keeps that cover `before` (a device is in
    /// service just before `c` exactly when one of its intervals has `from < c <= to`).
    async fn in_service_snapshot(&self, before: DateTime<Utc>) -> Result<Vec<InService>> {
        let mut devices: Vec<InService> = self
            .service_spans(before, before)
            .await?
            .into_iter()
            .filter(|iv| iv.covers(before))
            .filter_map(vft_domain::interval::Interval::into_in_service)
            .collect();
        devices.sort_unstable_by(|a, b| (&a.vendor, &a.device).cmp(&(&b.vendor, &b.device)));
        Ok(devices)
    }

    /// Every service interval that covers some instant in `[first, last]`, in no particular
    /// order. For any such instant `c`, the spans whose interval covers `c` (`from < c <= to`)
    /// are [`FigureStore::in_service_snapshot`]`(c)`: many instants' snapshots from one read.
    async fn service_spans(
        &self,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
    ) -> Result<Vec<vft_domain::interval::Interval>>;

    /// What explains the change between two instants `first` < `last`, read in one snapshot:
    /// the month-end breakdown just before each (`idx` 0 and 1), and the spans covering either
    /// instant of every device whose service differs between them (an interval end in
    /// `[first, last)`), plus those of devices in service at both in a municipality of
    /// `also_in` (one a selection took in or let go meanwhile). Any other device is the same at
    /// both instants and explains nothing, so the cost follows the changes, not the fleet.
    async fn service_changes(
        &self,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
        also_in: &[MunicipalityCode],
    ) -> Result<ServiceChanges>;

    /// Alarms anchored (triggered, else earliest step) in `[from, to)`.
    async fn alarm_records(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AlarmRecord>>;

    /// Like [`FigureStore::alarm_records`], but each alarm merged from `municipality`'s own events
    /// only (as `AlarmDelta` merges them), and anchored by them: what a municipality's
    /// response-centre figures count. An alarm raised in one municipality and acknowledged by
    /// another's gateway is, here, an unanswered alarm of the first and an answer without a
    /// trigger of the second; the region's `alarm_records` has it once, answered.
    async fn own_alarm_records(
        &self,
        municipality: &MunicipalityCode,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AlarmRecord>>;

    /// The sums of the response-centre figures (`vft_domain::response::ResponseTally`) of
    /// each month asked for, over the alarms whose origin lies in it, of one municipality (or
    /// the region) and one kind (or all), as `alarm_records` would give them: read from what
    /// ingest keeps, so the cost is the months', not the fleet's history.
    async fn response_tallies(
        &self,
        months: &[YearMonth],
        municipality: Option<&MunicipalityCode>,
        kind: Option<TechnologyKind>,
    ) -> Result<Vec<vft_domain::response::ResponseTally>>;

    /// [`FigureStore::response_tallies`] of `municipality`'s own events only, as
    /// `own_alarm_records` would give them: its sums, corrected by the few alarms that have
    /// events from several municipalities (each municipality's own merge of them is kept by
    /// ingest), so the cost is the months', not the municipality's alarm events.
    async fn own_response_tallies(
        &self,
        months: &[YearMonth],
        municipality: &MunicipalityCode,
        kind: Option<TechnologyKind>,
    ) -> Result<Vec<vft_domain::response::ResponseTally>>;

    /// Medication events per period `[start, end)`: (municipality, taken, missed) per period index.
    async fn dose_counts(
        &self,
        periods: &[(DateTime<Utc>, DateTime<Utc>)],
    ) -> Result<Vec<(usize, MunicipalityCode, u64, u64)>>;

    /// Stores a month's figures as published (idempotent: publishing twice keeps the first).
    /// Returns false when the month was already published.
    async fn publish_month(
        &self,
        month: YearMonth,
        rows: &[BreakdownRow],
        by: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Published months among `months`.
    async fn published_months(&self, months: &[YearMonth]) -> Result<Vec<PublishedMonth>>;
}

macro_rules! impl_figures {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::FigureStore for $store {
            async fn month_end_breakdown(&self, before: &[chrono::DateTime<chrono::Utc>]) -> $crate::Result<Vec<$crate::BreakdownRow>> {
                // From the service state ingest keeps (derived.rs): its cost does not grow
                // with the fleet's history, so nothing is kept per month end.
                self.breakdown_from_state(before).await
            }

            async fn service_spans(&self, first: chrono::DateTime<chrono::Utc>, last: chrono::DateTime<chrono::Utc>) -> $crate::Result<Vec<vft_domain::interval::Interval>> {
                self.spans_from_state(first, last).await
            }

            async fn service_changes(
                &self,
                first: chrono::DateTime<chrono::Utc>,
                last: chrono::DateTime<chrono::Utc>,
                also_in: &[vft_domain::MunicipalityCode],
            ) -> $crate::Result<$crate::ServiceChanges> {
                self.changes_from_state(first, last, also_in).await
            }

            async fn alarm_records(&self, from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> $crate::Result<Vec<vft_domain::response::AlarmRecord>> {
                use sqlx::Row;
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT a.vendor, a.alarm, a.device, a.municipality, COALESCE(a.kind, d.kind), a.cause, a.triggered_ts, \
                     a.received_ts, a.acknowledged_ts, a.closed_ts, a.outcome FROM alarms a \
                     LEFT JOIN devices d ON d.vendor = a.vendor AND d.device = a.device WHERE a.origin_ts >= ",
                );
                qb.push_bind($crate::shared::micros(from)).push(" AND a.origin_ts < ").push_bind($crate::shared::micros(to));
                qb.push(" ORDER BY a.origin_ts, a.vendor, a.alarm");
                let rows = qb.build().fetch_all(&self.reader).await?;
                rows.iter()
                    .map(|r| {
                        let ts = |i: usize| -> $crate::Result<Option<chrono::DateTime<chrono::Utc>>> {
                            r.try_get::<Option<i64>, _>(i)?.map($crate::shared::from_micros).transpose()
                        };
                        let text = |i: usize| r.try_get::<Option<String>, _>(i);
                        Ok(vft_domain::response::AlarmRecord {
                            vendor: vft_domain::VendorId::parse(&r.try_get::<String, _>(0)?).map_err($crate::shared::corrupt)?,
                            alarm: vft_domain::AlarmRef::parse(&r.try_get::<String, _>(1)?).map_err($crate::shared::corrupt)?,
                            device: vft_domain::DeviceId::parse(&r.try_get::<String, _>(2)?).map_err($crate::shared::corrupt)?,
                            municipality: vft_domain::MunicipalityCode::parse(&r.try_get::<String, _>(3)?).map_err($crate::shared::corrupt)?,
                            kind: text(4)?.as_deref().and_then(vft_domain::TechnologyKind::from_id),
                            cause: text(5)?.as_deref().and_then(vft_domain::Cause::from_id),
                            triggered: ts(6)?,
                            received: ts(7)?,
                            acknowledged: ts(8)?,
                            closed: ts(9)?,
                            outcome: text(10)?.as_deref().and_then(vft_domain::Outcome::from_id),
                        })
                    })
                    .collect()
            }

            /// The alarm state only knows the merge of every municipality's events, so this
            /// merges the municipality's own alarm events again, as ingest does. An alarm whose
            /// own anchor lies in `[from, to)` has an own event there, and none of its own events
            /// is earlier than the earliest step the region's state holds for it: reading the own
            /// events from that bound on gives every such alarm whole.
            async fn own_alarm_records(
                &self,
                municipality: &vft_domain::MunicipalityCode,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Vec<vft_domain::response::AlarmRecord>> {
                use $crate::shared::micros;
                use sqlx::Row;
                let types = || vft_domain::EventType::ALL.iter().filter(|t| t.is_alarm_event());
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT MIN(a.triggered_ts), MIN(a.received_ts), MIN(a.acknowledged_ts), MIN(a.closed_ts) \
                     FROM events e JOIN alarms a ON a.vendor = e.vendor AND a.alarm = e.alarm WHERE e.type IN (",
                );
                let mut sep = qb.separated(", ");
                for t in types() {
                    sep.push_bind(t.id());
                }
                qb.push(") AND e.ts >= ").push_bind(micros(from));
                qb.push(" AND e.ts < ").push_bind(micros(to));
                // `alarm IS NOT NULL` (the join needs it anyway): the partial index of
                // migration 0027 serves only queries that say so.
                qb.push(" AND e.municipality = ").push_bind(municipality.to_string());
                qb.push(" AND e.alarm IS NOT NULL");
                let (t, r, a, c): (Option<i64>, Option<i64>, Option<i64>, Option<i64>) =
                    qb.build_query_as().fetch_one(&self.reader).await?;
                let since = [t, r, a, c].into_iter().flatten().chain([micros(from)]).min().unwrap_or(micros(from));
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT e.vendor, e.event_id, e.gateway, e.ts, e.ts_offset, e.municipality, e.device, e.type, e.kind, \
                     e.battery, e.alarm, e.cause, e.outcome, e.recipient, e.replaces, e.reason, d.kind FROM events e \
                     LEFT JOIN devices d ON d.vendor = e.vendor AND d.device = e.device WHERE e.type IN (",
                );
                let mut sep = qb.separated(", ");
                for t in types() {
                    sep.push_bind(t.id());
                }
                qb.push(") AND e.ts >= ").push_bind(since);
                qb.push(" AND e.municipality = ").push_bind(municipality.to_string());
                qb.push(" AND e.alarm IS NOT NULL");
                // Streamed and merged row by row: the largest municipality's year is hundreds of
                // thousands of events at national size, and only its alarms are kept.
                use futures_util::TryStreamExt;
                let mut stream = qb.build().fetch(&self.reader);
                let mut alarms = vft_domain::AlarmFold::default();
                let mut device_kinds = std::collections::HashMap::new();
                while let Some(r) = stream.try_next().await? {
                    let e = $crate::shared::event_from_row(
                        r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?,
                        r.try_get(6)?, r.try_get(7)?, r.try_get(8)?, r.try_get(9)?, r.try_get(10)?, r.try_get(11)?,
                        r.try_get(12)?, r.try_get(13)?, r.try_get(14)?, r.try_get(15)?,
                    )?;
                    let kind: Option<String> = r.try_get(16)?;
                    device_kinds.insert(
                        (e.vendor.clone(), e.device.clone()),
                        kind.as_deref().and_then(vft_domain::TechnologyKind::from_id),
                    );
                    alarms.add(&e);
                }
                drop(stream);
                let mut records: Vec<_> = alarms
                    .finish()
                    .into_iter()
                    .filter(|a| from <= a.origin.1 && a.origin.1 < to)
                    .map(|a| {
                        let device_kind = device_kinds.get(&(a.vendor.clone(), a.device.clone())).copied().flatten();
                        let (closed, outcome) = match a.closed {
                            Some((t, _, outcome)) => (Some(t), outcome),
                            None => (None, None),
                        };
                        (
                            a.origin.1,
                            vft_domain::response::AlarmRecord {
                                kind: a.kind.or(device_kind),
                                vendor: a.vendor,
                                alarm: a.alarm,
                                device: a.device,
                                municipality: a.municipality,
                                cause: a.cause,
                                triggered: a.triggered,
                                received: a.received,
                                acknowledged: a.acknowledged,
                                closed,
                                outcome,
                            },
                        )
                    })
                    .collect();
                records.sort_by(|(t1, a1), (t2, a2)| (t1, &a1.vendor, &a1.alarm).cmp(&(t2, &a2.vendor, &a2.alarm)));
                Ok(records.into_iter().map(|(_, a)| a).collect())
            }

            async fn response_tallies(
                &self,
                months: &[vft_domain::YearMonth],
                municipality: Option<&vft_domain::MunicipalityCode>,
                kind: Option<vft_domain::TechnologyKind>,
            ) -> $crate::Result<Vec<vft_domain::response::ResponseTally>> {
                // From the sums ingest keeps (response.rs).
                self.response_tallies_from_state(months, municipality, kind, false).await
            }

            async fn own_response_tallies(
                &self,
                months: &[vft_domain::YearMonth],
                municipality: &vft_domain::MunicipalityCode,
                kind: Option<vft_domain::TechnologyKind>,
            ) -> $crate::Result<Vec<vft_domain::response::ResponseTally>> {
                self.response_tallies_from_state(months, Some(municipality), kind, true).await
            }

            async fn dose_counts(&self, periods: &[(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)]) -> $crate::Result<Vec<(usize, vft_domain::MunicipalityCode, u64, u64)>> {
                // Whole months from the counts ingest keeps (derived.rs).
                self.dose_counts_from_state(periods).await
            }

            async fn publish_month(&self, month: vft_domain::YearMonth, rows: &[$crate::BreakdownRow], by: Option<&str>, at: chrono::DateTime<chrono::Utc>) -> $crate::Result<bool> {
                let mut tx = self.writer.begin().await?;
                let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO published_month_log (year_month, published_at, published_by) ");
                qb.push_values([()], |mut row, ()| {
                    row.push_bind(month.to_string()).push_bind($crate::shared::micros(at)).push_bind(by);
                });
                qb.push(" ON CONFLICT (year_month) DO NOTHING");
                if qb.build().execute(&mut *tx).await?.rows_affected() == 0 {
                    return Ok(false);
                }
                for chunk in $crate::shared::statement_chunks(&rows, $crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO published_months (year_month, municipality, vendor, kind, devices, recipients) ",
                    );
                    qb.push_values(chunk, |mut row, r| {
                        row.push_bind(month.to_string())
                            .push_bind(r.municipality.to_string())
                            .push_bind(r.vendor.to_string())
                            .push_bind(r.kind.id())
                            .push_bind(i64::try_from(r.devices).unwrap_or(i64::MAX))
                            .push_bind(i64::try_from(r.recipients).unwrap_or(i64::MAX));
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn published_months(&self, months: &[vft_domain::YearMonth]) -> $crate::Result<Vec<$crate::PublishedMonth>> {
                if months.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT year_month, published_at, published_by FROM published_month_log WHERE year_month IN (");
                let mut sep = qb.separated(", ");
                for m in months {
                    sep.push_bind(m.to_string());
                }
                qb.push(") ORDER BY year_month");
                let logs: Vec<(String, i64, Option<String>)> = qb.build_query_as().fetch_all(&self.reader).await?;
                let mut out = Vec::new();
                for (ym, at, by) in logs {
                    let month: vft_domain::YearMonth = ym.parse().map_err($crate::shared::corrupt)?;
                    let idx = months.iter().position(|m| *m == month).unwrap_or(0);
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT municipality, vendor, kind, devices, recipients FROM published_months WHERE year_month = ",
                    );
                    qb.push_bind(ym.clone());
                    let rows: Vec<(String, String, String, i64, i64)> = qb.build_query_as().fetch_all(&self.reader).await?;
                    let rows = rows
                        .into_iter()
                        .map(|(m, v, k, d, r)| {
                            Ok($crate::BreakdownRow {
                                idx,
                                municipality: vft_domain::MunicipalityCode::parse(&m).map_err($crate::shared::corrupt)?,
                                vendor: vft_domain::VendorId::parse(&v).map_err($crate::shared::corrupt)?,
                                kind: vft_domain::TechnologyKind::from_id(&k).ok_or_else(|| $crate::StoreError::Corrupt(k.clone()))?,
                                devices: u64::try_from(d).unwrap_or(0),
                                recipients: u64::try_from(r).unwrap_or(0),
                            })
                        })
                        .collect::<$crate::Result<Vec<_>>>()?;
                    out.push($crate::PublishedMonth { month, published_at: $crate::shared::from_micros(at)?, published_by: by, rows });
                }
                Ok(out)
            }
        }
    };
}

pub(crate) use impl_figures;
