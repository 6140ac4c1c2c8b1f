//! The SQL both backends share. Written once as a macro so each expansion type-checks against
//! its concrete sqlx driver (generic sqlx code needs a wall of higher-ranked bounds); the SQL
//! itself is portable (SQLite ≥ 3.35 and PostgreSQL ≥ 12) and placeholders come from
//! `QueryBuilder`, which writes `?` or `$n` as the driver wants.

use crate::{Result, StoreError, TokenRecord};
use chrono::{DateTime, TimeZone, Utc};
use vft_domain::{
    DeviceId, Event, EventId, LifecycleRecord, MunicipalityCode, Role, TechnologyKind, VendorId,
};

/// Rows per multi-row INSERT: 17 columns × 500 stays under both backends' parameter limits.
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_micros(us)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {us} out of range")))
}

/// Keeps the first copy of each (vendor, id) in a batch: a redelivery inside one batch is
/// a duplicate like any other, and one statement must not insert a key twice.
pub(crate) fn first_of_each_id(events: &[Event]) -> Vec<&Event> {
    let mut seen = std::collections::HashSet::new();
    events
        .iter()
        .filter(|e| seen.insert((&e.vendor, &e.id)))
        .collect()
}

pub(crate) fn corrupt<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub(crate) fn lifecycle_record(
    vendor: String,
    device: String,
    event_id: String,
    ts: i64,
    rank: i64,
    kind: Option<String>,
    municipality: String,
) -> Result<LifecycleRecord> {
    Ok(LifecycleRecord {
        vendor: VendorId::parse(&vendor).map_err(corrupt)?,
        device: DeviceId::parse(&device).map_err(corrupt)?,
        event_id: EventId::parse(&event_id).map_err(corrupt)?,
        ts: from_micros(ts)?,
        installed: rank == 0,
        kind: kind.as_deref().and_then(TechnologyKind::from_id),
        municipality: MunicipalityCode::parse(&municipality).map_err(corrupt)?,
    })
}

pub(crate) fn token_record(
    role: String,
    municipality: Option<String>,
    label: Option<String>,
    created_at: i64,
) -> Result<TokenRecord> {
    let role = match (role.as_str(), municipality) {
        ("coordinator", None) => Role::Coordinator,
        ("municipality", Some(m)) => {
            Role::Municipality(MunicipalityCode::parse(&m).map_err(corrupt)?)
        }
        (other, m) => {
            return Err(StoreError::Corrupt(format!(
                "token role {other:?} with municipality {m:?}"
            )));
        }
    };
    Ok(TokenRecord {
        role,
        label,
        created_at: from_micros(created_at)?,
    })
}

macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:literal) => {
        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            #[tracing::instrument(level = "debug", skip_all, fields(events = events.len(), dead_letters = dead_letters.len()))]
            async fn write_batch(
                &self,
                events: &[vft_domain::Event],
                dead_letters: &[$crate::NewDeadLetter],
                received_at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<$crate::WriteOutcome> {
                use $crate::shared::{micros, first_of_each_id, ROWS_PER_STATEMENT};
                let received = micros(received_at);
                let unique = first_of_each_id(events);
                let mut outcome = $crate::WriteOutcome::default();
                let mut tx = self.writer.begin().await?;
                for chunk in unique.chunks(ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO events (vendor, event_id, gateway, ts, ts_offset, municipality, device, type, \
                         lifecycle_rank, kind, battery, alarm, cause, outcome, recipient, replaces, received_at) ",
                    );
                    qb.push_values(chunk, |mut row, e| {
                        row.push_bind(e.vendor.as_str())
                            .push_bind(e.id.as_str())
                            .push_bind(e.gateway.as_str())
                            .push_bind(micros(e.ts_utc()))
                            .push_bind(i64::from(e.ts.offset().local_minus_utc()))
                            .push_bind(e.municipality.as_str())
                            .push_bind(e.device.as_str())
                            .push_bind(e.event_type.id())
                            .push_bind(e.event_type.lifecycle_rank().map(i64::from))
                            .push_bind(e.kind.map(|k| k.id()))
                            .push_bind(e.battery.map(i64::from))
                            .push_bind(e.alarm.as_ref().map(|a| a.as_str()))
                            .push_bind(e.cause.map(|c| c.id()))
                            .push_bind(e.outcome.map(|o| o.id()))
                            .push_bind(e.recipient.as_ref().map(|r| r.as_str()))
                            .push_bind(e.replaces.as_ref().map(|r| r.as_str()))
                            .push_bind(received);
                    });
                    qb.push(" ON CONFLICT (vendor, event_id) DO NOTHING");
                    outcome.events_inserted += qb.build().execute(&mut *tx).await?.rows_affected();
                }
                outcome.events_duplicate = events.len() as u64 - outcome.events_inserted;
                for chunk in dead_letters.chunks(ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO dead_letters (fingerprint, topic, payload, reason_code, reason, received_at) ",
                    );
                    qb.push_values(chunk, |mut row, d| {
                        let fp = vft_domain::fingerprint(&[d.topic.as_bytes(), &d.payload, d.reason.as_bytes()]);
                        row.push_bind(fp)
                            .push_bind(d.topic.as_str())
                            .push_bind(d.payload.as_slice())
                            .push_bind(d.reason_code.as_str())
                            .push_bind(d.reason.as_str())
                            .push_bind(received);
                    });
                    qb.push(" ON CONFLICT (fingerprint) DO NOTHING");
                    outcome.dead_letters_inserted += qb.build().execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(outcome)
            }

            async fn device_counts(
                &self,
                before: &[chrono::DateTime<chrono::Utc>],
                filter: &vft_domain::RollupFilter,
            ) -> $crate::Result<Vec<[u64; 6]>> {
                use sqlx::Row;
                let mut counts = vec![[0u64; 6]; before.len()];
                if before.is_empty() {
                    return Ok(counts);
                }
                // Each lifecycle event covers [ts, next lifecycle event's ts) of its device; an
                // installed event covering the instant just before a cut means "in service".
                let mut qb = sqlx::QueryBuilder::<$db>::new("WITH cut (idx, t) AS (VALUES ");
                let mut sep = qb.separated(", ");
                for (i, t) in before.iter().enumerate() {
                    sep.push("(");
                    sep.push_bind_unseparated(i as i64);
                    sep.push_unseparated(", ");
                    sep.push_bind_unseparated($crate::shared::micros(*t));
                    sep.push_unseparated(")");
                }
                qb.push(
                    "), lc AS (SELECT vendor, device, municipality, kind, lifecycle_rank, ts, \
                     LEAD(ts) OVER (PARTITION BY vendor, device ORDER BY ts, lifecycle_rank, event_id) AS next_ts \
                     FROM events WHERE lifecycle_rank IS NOT NULL) \
                     SELECT cut.idx, lc.kind, COUNT(*) AS n FROM lc JOIN cut \
                     ON lc.ts < cut.t AND (lc.next_ts IS NULL OR lc.next_ts >= cut.t) \
                     WHERE lc.lifecycle_rank = 0",
                );
                if let Some(m) = &filter.municipality {
                    qb.push(" AND lc.municipality = ").push_bind(m.as_str());
                }
                if let Some(v) = &filter.vendor {
                    qb.push(" AND lc.vendor = ").push_bind(v.as_str());
                }
                qb.push(" GROUP BY cut.idx, lc.kind");
                for row in qb.build().fetch_all(&self.reader).await? {
                    let idx: i64 = row.try_get(0)?;
                    let kind: Option<String> = row.try_get(1)?;
                    let n: i64 = row.try_get(2)?;
                    let kind = kind.as_deref().and_then(vft_domain::TechnologyKind::from_id);
                    if let (Some(slot), Some(kind)) = (usize::try_from(idx).ok().and_then(|i| counts.get_mut(i)), kind) {
                        slot[kind.index()] = u64::try_from(n).unwrap_or(0);
                    }
                }
                Ok(counts)
            }

            async fn lifecycle_records(&self) -> $crate::Result<Vec<vft_domain::LifecycleRecord>> {
                let rows: Vec<(String, String, String, i64, i64, Option<String>, String)> = sqlx::query_as(
                    "SELECT vendor, device, event_id, ts, lifecycle_rank, kind, municipality FROM events \
                     WHERE lifecycle_rank IS NOT NULL ORDER BY vendor, device, ts, lifecycle_rank, event_id",
                )
                .fetch_all(&self.reader)
                .await?;
                rows.into_iter()
                    .map(|(v, d, id, ts, rank, kind, m)| $crate::shared::lifecycle_record(v, d, id, ts, rank, kind, m))
                    .collect()
            }

            async fn event_count(&self) -> $crate::Result<u64> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events").fetch_one(&self.reader).await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn dead_letters(&self, limit: u32, before_id: Option<i64>) -> $crate::Result<Vec<$crate::DeadLetter>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, topic, payload, reason_code, reason, received_at FROM dead_letters",
                );
                if let Some(before) = before_id {
                    qb.push(" WHERE id < ").push_bind(before);
                }
                qb.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
                let rows: Vec<(i64, String, Vec<u8>, String, String, i64)> =
                    qb.build_query_as().fetch_all(&self.reader).await?;
                rows.into_iter()
                    .map(|(id, topic, payload, reason_code, reason, received_at)| {
                        Ok($crate::DeadLetter {
                            id,
                            topic,
                            payload,
                            reason_code,
                            reason,
                            received_at: $crate::shared::from_micros(received_at)?,
                        })
                    })
                    .collect()
            }

            async fn create_token(&self, token_hash: &str, role: &vft_domain::Role, label: Option<&str>) -> $crate::Result<()> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO api_tokens (token_hash, role, municipality, label, created_at) ",
                );
                qb.push_values([()], |mut row, ()| {
                    row.push_bind(token_hash)
                        .push_bind(role.name())
                        .push_bind(role.municipality().map(|m| m.as_str()))
                        .push_bind(label)
                        .push_bind($crate::shared::micros(chrono::Utc::now()));
                });
                qb.build().execute(&self.writer).await?;
                Ok(())
            }

            async fn find_token(&self, token_hash: &str) -> $crate::Result<Option<$crate::TokenRecord>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT role, municipality, label, created_at FROM api_tokens WHERE token_hash = ",
                );
                qb.push_bind(token_hash);
                let row: Option<(String, Option<String>, Option<String>, i64)> =
                    qb.build_query_as().fetch_optional(&self.reader).await?;
                row.map(|(role, m, label, created)| $crate::shared::token_record(role, m, label, created))
                    .transpose()
            }

            async fn ping(&self) -> $crate::Result<()> {
                sqlx::query("SELECT 1").execute(&self.reader).await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_store;
