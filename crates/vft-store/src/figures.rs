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
    /// The spans come in no particular order, each once.
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
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!("{} WHERE a.origin_ts >= ", $crate::response::alarm_select("alarms")));
                qb.push_bind($crate::shared::micros(from)).push(" AND a.origin_ts < ").push_bind($crate::shared::micros(to));
                qb.push(" ORDER BY a.origin_ts, a.vendor, a.alarm");
                let rows: Vec<$crate::response::AlarmRecordRow> = qb.build_query_as().fetch_all(&self.reader).await?;
                rows.iter().map($crate::response::alarm_record).collect()
            }

            /// An alarm whose events all come from one municipality is that municipality's
            /// own merge as it stands in `alarms`; one with events from several is kept per
            /// municipality in `own_alarm_states` (migration 0028, decision 0026). Both read in
            /// one statement (one snapshot), each an index range of the municipality's alarms.
            async fn own_alarm_records(
                &self,
                municipality: &vft_domain::MunicipalityCode,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Vec<vft_domain::response::AlarmRecord>> {
                use $crate::shared::micros;
                // The same columns from both tables, each aliased `a` in its own SELECT.
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!("{} WHERE a.municipality = ", $crate::response::alarm_select("alarms")));
                qb.push_bind(municipality.to_string());
                qb.push(" AND a.origin_ts >= ").push_bind(micros(from));
                qb.push(" AND a.origin_ts < ").push_bind(micros(to));
                qb.push(" AND a.several_municipalities = 0 UNION ALL ");
                qb.push(format!("{} WHERE a.municipality = ", $crate::response::alarm_select("own_alarm_states")));
                qb.push_bind(municipality.to_string());
                qb.push(" AND a.origin_ts >= ").push_bind(micros(from));
                qb.push(" AND a.origin_ts < ").push_bind(micros(to));
                qb.push(" ORDER BY 1, 2, 3");
                let rows: Vec<$crate::response::AlarmRecordRow> = qb.build_query_as().fetch_all(&self.reader).await?;
                rows.iter().map($crate::response::alarm_record).collect()
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
