//! State derived from the events that the store keeps beside them (migration 0018): the contact
//! history (`vft_domain::contact`), written by `write_batch` in the batch's own transaction, and
//! the operator's way back to a state that follows the events (`vft rebuild`).
//!
//! The contact history outlives the raw status events, so rebuilding it merges what the
//! remaining events say into it (a merge is idempotent) and never drops the days whose raw
//! events retention already purged.

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

    /// Forgets every kept figure (month ends, response-centre months, change attributions,
    /// dose counts) so that each is computed from the events on its next request, and moves
    /// their generations so that a figure being computed meanwhile is not kept either.
    async fn drop_kept_figures(&self) -> Result<()>;

    /// The whole contact history, ordered.
    async fn contact_history(&self) -> Result<Vec<ContactRow>>;
}

/// The one-off fills that a migration asked for (`derived_state.built = 0`), run when a store
/// opens. A store opened by several processes at once may run one twice: it is a merge.
pub(crate) const PENDING_DERIVED_STATE: &str =
    "SELECT name FROM derived_state WHERE built = 0 ORDER BY name";

macro_rules! impl_derived {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Merges month rows of contact history inside a batch's transaction.
            pub(crate) async fn upsert_contact_months(
                tx: &mut sqlx::Transaction<'_, $db>,
                rows: &[vft_domain::contact::ContactMonth],
            ) -> $crate::Result<()> {
                for chunk in rows.chunks($crate::shared::ROWS_PER_STATEMENT) {
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

            /// Runs the fills a migration left pending (see `PENDING_DERIVED_STATE`).
            pub(crate) async fn build_pending_derived_state(&self) -> $crate::Result<()> {
                let pending: Vec<(String,)> =
                    sqlx::query_as($crate::derived::PENDING_DERIVED_STATE)
                        .fetch_all(&self.writer)
                        .await?;
                for (name,) in pending {
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
                    sqlx::query("UPDATE derived_state SET built = 1 WHERE name = $1")
                        .bind(name)
                        .execute(&self.writer)
                        .await?;
                }
                Ok(())
            }

            /// Each device's latest contact in `(since, at]`, from the contact history.
            pub(crate) async fn reporting_from_history(
                &self,
                at: chrono::DateTime<chrono::Utc>,
                since: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Vec<vft_domain::reconcile::Reporting>> {
                let (first, last) = vft_domain::contact::window_months(since, at);
                let rows: Vec<(i64, String, String, i64, i64)> = sqlx::query_as(
                    "SELECT month, vendor, device, days, last_ts FROM contact_months \
                     WHERE month >= $1 AND month <= $2",
                )
                .bind(first)
                .bind(last)
                .fetch_all(&self.reader)
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
                    sqlx::query(
                        "UPDATE derived_state SET built = 0 WHERE name = 'contact_history'",
                    )
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("DELETE FROM contact_months")
                        .execute(&mut *tx)
                        .await?;
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
                    sqlx::query(
                        "UPDATE derived_state SET built = 1 WHERE name = 'contact_history'",
                    )
                    .execute(&self.writer)
                    .await?;
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
                    let mut rows: std::collections::HashMap<(String, String), (u32, i64)> =
                        std::collections::HashMap::new();
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
                        let bit = 1u32 << (chrono::Datelike::day(&day) - 1);
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
                    sqlx::query(
                        "UPDATE derived_state SET built = 1 WHERE name = 'contact_history'",
                    )
                    .execute(&self.writer)
                    .await?;
                }
                Ok(outcome)
            }

            async fn drop_kept_figures(&self) -> $crate::Result<()> {
                let mut tx = self.writer.begin().await?;
                // Generations first, as a batch does (see write_batch).
                for table in [
                    "lifecycle_generation",
                    "alarm_generation",
                    "dose_generation",
                ] {
                    sqlx::query(&format!(
                        "UPDATE {table} SET generation = generation + 1 WHERE id = 1"
                    ))
                    .execute(&mut *tx)
                    .await?;
                }
                for table in [
                    "month_end_cache",
                    "month_end_cuts",
                    "response_month_cache",
                    "change_month_cache",
                    "dose_count_cache",
                    "dose_periods",
                ] {
                    sqlx::query(&format!("DELETE FROM {table}"))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
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
