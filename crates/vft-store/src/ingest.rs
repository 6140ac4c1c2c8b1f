//! What ingest writes and keeps beside the events: the batch write (events, dead letters, and
//! the state derived from them in the same transaction), dead letters and their handling,
//! retention of raw status events, ingest replicas' heartbeats, and the MQTT credentials the
//! embedded listener checks.

use crate::{DeadLetter, MqttCredential, NewDeadLetter, ReplicaSeen, Result, WriteOutcome};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use vft_domain::Event;

#[async_trait]
pub trait IngestStore: Send + Sync {
    /// Stores events (once per vendor and id) and dead letters in one transaction.
    async fn write_batch(
        &self,
        events: &[Event],
        dead_letters: &[NewDeadLetter],
        received_at: DateTime<Utc>,
    ) -> Result<WriteOutcome>;

    async fn event_count(&self) -> Result<u64>;

    /// Dead letters, newest first, optionally only those older than `before_id` (paging).
    async fn dead_letters(&self, limit: u32, before_id: Option<i64>) -> Result<Vec<DeadLetter>> {
        self.dead_letter_page(limit, before_id, None).await
    }

    /// Like [`IngestStore::dead_letters`], only open ones (`Some(false)`) or handled ones.
    async fn dead_letter_page(
        &self,
        limit: u32,
        before_id: Option<i64>,
        handled: Option<bool>,
    ) -> Result<Vec<DeadLetter>>;

    async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>>;

    /// Marks a dead letter handled (once: a second call leaves the first mark). False when
    /// there is none of that id.
    async fn mark_dead_letter_handled(
        &self,
        id: i64,
        by: &str,
        at: DateTime<Utc>,
        replayed_events: Option<u64>,
    ) -> Result<bool>;

    /// Deletes events of these types older than `before` (raw status traffic past retention;
    /// device state keeps what they said). Returns how many.
    async fn purge_events(
        &self,
        types: &[vft_domain::EventType],
        before: DateTime<Utc>,
    ) -> Result<u64>;

    /// An ingest replica's heartbeat: its row rewritten through the writer. It succeeds only
    /// when the database takes commits, which `ping` cannot tell (a full disk answers reads).
    async fn replica_heartbeat(
        &self,
        client_id: &str,
        shared_group: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// Every ingest replica that ever beat, with its latest heartbeat.
    async fn replicas(&self) -> Result<Vec<ReplicaSeen>>;

    /// Forgets a replica taken out of service for good; false when there was none.
    async fn forget_replica(&self, client_id: &str) -> Result<bool>;

    /// Stores a gateway credential for the embedded MQTT listener. False when an unrevoked
    /// credential has that username (a revoked one is replaced).
    async fn create_mqtt_credential(&self, credential: &MqttCredential) -> Result<bool>;

    /// The credential with this username, revoked or not.
    async fn mqtt_credential(&self, username: &str) -> Result<Option<MqttCredential>>;

    /// Every credential, revoked ones included, oldest first.
    async fn mqtt_credentials(&self) -> Result<Vec<MqttCredential>>;

    /// Revokes a credential at `at`; false when there is no unrevoked one of that username.
    async fn revoke_mqtt_credential(&self, username: &str, at: DateTime<Utc>) -> Result<bool>;
}

macro_rules! impl_ingest {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::IngestStore for $store {
            #[tracing::instrument(level = "debug", skip_all, fields(events = events.len(), dead_letters = dead_letters.len()))]
            async fn write_batch(
                &self,
                events: &[vft_domain::Event],
                dead_letters: &[$crate::NewDeadLetter],
                received_at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<$crate::WriteOutcome> {
                use $crate::shared::{micros, first_of_each_id};
                let received = micros(received_at);
                let unique = first_of_each_id(events);
                let mut outcome = $crate::WriteOutcome::default();
                let mut recheck: std::collections::HashSet<(&str, &str)> = Default::default();
                let earliest_lifecycle = unique
                    .iter()
                    .filter(|e| e.event_type.lifecycle_rank().is_some())
                    .map(|e| micros(e.ts_utc()))
                    .min();
                let has_alarm_events = events
                    .iter()
                    .any(|e| e.alarm.is_some() && e.event_type.is_alarm_event());
                // An install with a kind may change its device's kind, and so the kind of the
                // device's alarms that have none of their own.
                let has_kinds = unique
                    .iter()
                    .any(|e| e.event_type == vft_domain::EventType::Installed && e.kind.is_some());
                let has_doses = unique
                    .iter()
                    .any(|e| matches!(e.event_type, vft_domain::EventType::DoseTaken | vft_domain::EventType::DoseMissed));
                let mut tx = self.writer.begin().await?;
                if earliest_lifecycle.is_some() {
                    // First, so that in PostgreSQL this row lock serialises the batches (and
                    // rebuild chunks) that recompute service state (apply_service_state reads
                    // recipients' other intervals). The row is only a lock now: nothing reads
                    // the generation since no figure is kept (migration 0022).
                    sqlx::query("UPDATE lifecycle_generation SET generation = generation + 1 WHERE id = 1")
                        .execute(&mut *tx)
                        .await?;
                }
                if has_alarm_events || has_kinds {
                    // Also first: the lock on the response-centre sums (apply_response_facts
                    // reads an alarm's stored contribution, then replaces it).
                    sqlx::query($crate::response::LOCK_ALARM_SUMS)
                        .execute(&mut *tx)
                        .await?;
                }
                for chunk in $crate::shared::statement_chunks(&unique, $crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO events (vendor, event_id, gateway, ts, ts_offset, municipality, device, type, \
                         lifecycle_rank, kind, battery, alarm, cause, outcome, recipient, replaces, reason, received_at) ",
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
                            .push_bind(e.reason.map(|r| r.id()))
                            .push_bind(received);
                    });
                    qb.push(" ON CONFLICT (vendor, event_id) DO NOTHING");
                    let inserted = if has_doses {
                        // Which ones are new, so that each dose is counted once.
                        qb.push(" RETURNING vendor, event_id");
                        let new: Vec<(String, String)> = qb.build_query_as().fetch_all(&mut *tx).await?;
                        let new: std::collections::HashSet<(&str, &str)> =
                            new.iter().map(|(v, id)| (v.as_str(), id.as_str())).collect();
                        let doses: Vec<&vft_domain::Event> = chunk
                            .iter()
                            .copied()
                            .filter(|e| new.contains(&(e.vendor.as_str(), e.id.as_str())))
                            .collect();
                        Self::count_dose_months(&mut tx, &doses).await?;
                        new.len() as u64
                    } else {
                        qb.build().execute(&mut *tx).await?.rows_affected()
                    };
                    outcome.events_inserted += inserted;
                    if inserted < chunk.len() as u64 {
                        recheck.extend(chunk.iter().map(|e| (e.vendor.as_str(), e.id.as_str())));
                    }
                }
                outcome.events_duplicate = events.len() as u64 - outcome.events_inserted;
                if unique.len() < events.len() {
                    let mut seen = std::collections::HashSet::new();
                    for e in events {
                        let key = (e.vendor.as_str(), e.id.as_str());
                        if !seen.insert(key) {
                            recheck.insert(key);
                        }
                    }
                }
                if !recheck.is_empty() {
                    // Only when something was a duplicate: compare with what was kept.
                    let keys: Vec<(&str, &str)> = recheck.iter().copied().collect();
                    let mut stored = std::collections::HashMap::new();
                    for chunk in $crate::shared::statement_chunks(&keys, $crate::shared::ROWS_PER_STATEMENT) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                            "SELECT vendor, event_id, {} FROM events WHERE (vendor, event_id) IN (",
                            $crate::shared::EVENT_CONTENT_COLUMNS
                        ));
                        qb.push_values(chunk, |mut row, (v, id)| {
                            row.push_bind(*v).push_bind(*id);
                        });
                        qb.push(")");
                        use sqlx::Row;
                        for r in qb.build().fetch_all(&mut *tx).await? {
                            let key: (String, String) = (r.try_get(0)?, r.try_get(1)?);
                            let content: $crate::shared::EventContent = (
                                r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?, r.try_get(6)?,
                                r.try_get(7)?, r.try_get(8)?, r.try_get(9)?, r.try_get(10)?, r.try_get(11)?,
                                r.try_get(12)?, r.try_get(13)?,
                            );
                            stored.insert(key, content);
                        }
                    }
                    for (i, e) in events.iter().enumerate() {
                        let key = (e.vendor.to_string(), e.id.to_string());
                        if stored.get(&key).is_some_and(|kept| *kept != $crate::shared::event_content(e)) {
                            outcome.conflicting.push(i);
                        }
                    }
                }
                // Device and alarm state: merges are idempotent, so duplicates may pass through.
                // State follows the events as kept: a conflicting duplicate changes nothing.
                let consistent: std::borrow::Cow<'_, [vft_domain::Event]> = if outcome.conflicting.is_empty() {
                    std::borrow::Cow::Borrowed(events)
                } else {
                    std::borrow::Cow::Owned(
                        events
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| !outcome.conflicting.contains(i))
                            .map(|(_, e)| e.clone())
                            .collect(),
                    )
                };
                let deltas = vft_domain::DeviceDelta::fold(&consistent);
                for chunk in $crate::shared::statement_chunks(&deltas, $crate::shared::ROWS_PER_STATEMENT) {
                    let rows: Vec<$crate::named::NamedRow> =
                        chunk.iter().map(|d| $crate::merge_sql::device_row(d, received)).collect();
                    let mut qb = $crate::named::insert::<$db>("devices", &rows);
                    qb.push($crate::merge_sql::DEVICE_UPSERT.as_str());
                    qb.build().execute(&mut *tx).await?;
                }
                Self::upsert_contact_months(&mut tx, &vft_domain::contact::fold(&consistent)).await?;
                // Service state: the devices with lifecycle events here get their intervals
                // recomputed from all of their lifecycle events, as stored.
                let lifecycle_devices: Vec<(String, String)> = consistent
                    .iter()
                    .filter(|e| e.event_type.lifecycle_rank().is_some())
                    .map(|e| (e.vendor.to_string(), e.device.to_string()))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                Self::apply_service_state(&mut tx, &lifecycle_devices).await?;
                let alarms = vft_domain::AlarmDelta::fold(&consistent);
                // Alarms whose events now come from several municipalities (rare): each
                // municipality's own merge is kept too (migration 0028).
                let mut several: std::collections::BTreeSet<(String, String)> = Default::default();
                for chunk in $crate::shared::statement_chunks(&alarms, $crate::shared::ROWS_PER_STATEMENT) {
                    let rows: Vec<$crate::named::NamedRow> =
                        chunk.iter().map($crate::merge_sql::alarm_row).collect();
                    let mut qb = $crate::named::insert::<$db>("alarms", &rows);
                    qb.push($crate::merge_sql::ALARM_UPSERT.as_str());
                    let merged: Vec<(String, String, i64)> = qb.build_query_as().fetch_all(&mut *tx).await?;
                    several.extend(merged.into_iter().filter(|(_, _, n)| *n != 0).map(|(v, a, _)| (v, a)));
                }
                if !several.is_empty() {
                    Self::merge_own_alarm_states(&mut tx, &consistent, &several).await?;
                }
                // Response-centre sums: the alarms touched here, and every alarm of a device
                // whose install is here (its kind may have changed), as stored after the merges.
                let touched: Vec<(String, String)> =
                    alarms.iter().map(|a| (a.vendor.to_string(), a.alarm.to_string())).collect();
                let installed: Vec<(String, String)> = deltas
                    .iter()
                    .filter(|d| d.install.is_some())
                    .map(|d| (d.vendor.to_string(), d.device.to_string()))
                    .collect();
                Self::apply_response_facts(&mut tx, &touched, &installed).await?;
                for chunk in $crate::shared::statement_chunks(&dead_letters, $crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO dead_letters (fingerprint, topic, payload, reason_code, reason, received_at) ",
                    );
                    qb.push_values(chunk, |mut row, d| {
                        // The last line: no national identity number is stored, whoever built
                        // the dead letter (ingest masks already; masking again changes nothing).
                        let topic = vft_domain::nin::mask_str(&d.topic).0;
                        let payload = vft_domain::nin::mask_bytes(&d.payload).0;
                        let reason = vft_domain::nin::mask_str(&d.reason).0;
                        let fp = vft_domain::fingerprint(&[topic.as_bytes(), &payload, reason.as_bytes()]);
                        row.push_bind(fp)
                            .push_bind(topic)
                            .push_bind(payload)
                            .push_bind(d.reason_code.as_str())
                            .push_bind(reason)
                            .push_bind(received);
                    });
                    qb.push(" ON CONFLICT (fingerprint) DO NOTHING");
                    outcome.dead_letters_inserted += qb.build().execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(outcome)
            }

            async fn event_count(&self) -> $crate::Result<u64> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events").fetch_one(&self.reader).await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn dead_letter_page(
                &self,
                limit: u32,
                before_id: Option<i64>,
                handled: Option<bool>,
            ) -> $crate::Result<Vec<$crate::DeadLetter>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM dead_letters WHERE 1 = 1",
                    $crate::shared::DEAD_LETTER_COLUMNS
                ));
                if let Some(before) = before_id {
                    qb.push(" AND id < ").push_bind(before);
                }
                match handled {
                    Some(true) => {
                        qb.push(" AND handled_at IS NOT NULL");
                    }
                    Some(false) => {
                        qb.push(" AND handled_at IS NULL");
                    }
                    None => {}
                }
                qb.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
                let rows: Vec<$crate::shared::DeadLetterRow> = qb.build_query_as().fetch_all(&self.reader).await?;
                rows.into_iter().map($crate::shared::dead_letter).collect()
            }

            async fn dead_letter(&self, id: i64) -> $crate::Result<Option<$crate::DeadLetter>> {
                let row: Option<$crate::shared::DeadLetterRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM dead_letters WHERE id = $1",
                    $crate::shared::DEAD_LETTER_COLUMNS
                ))
                .bind(id)
                .fetch_optional(&self.reader)
                .await?;
                row.map($crate::shared::dead_letter).transpose()
            }

            async fn mark_dead_letter_handled(
                &self,
                id: i64,
                by: &str,
                at: chrono::DateTime<chrono::Utc>,
                replayed_events: Option<u64>,
            ) -> $crate::Result<bool> {
                sqlx::query::<$db>(
                    "UPDATE dead_letters SET handled_at = $1, handled_by = $2, replayed_events = $3 \
                     WHERE id = $4 AND handled_at IS NULL",
                )
                .bind($crate::shared::micros(at))
                .bind(by)
                .bind(replayed_events.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
                .bind(id)
                .execute(&self.writer)
                .await?;
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM dead_letters WHERE id = $1")
                    .bind(id)
                    .fetch_one(&self.writer)
                    .await?;
                Ok(n > 0)
            }

            async fn purge_events(&self, types: &[vft_domain::EventType], before: chrono::DateTime<chrono::Utc>) -> $crate::Result<u64> {
                if types.is_empty() {
                    return Ok(0);
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new("DELETE FROM events WHERE type IN (");
                let mut sep = qb.separated(", ");
                for t in types {
                    sep.push_bind(t.id());
                }
                qb.push(") AND ts < ").push_bind($crate::shared::micros(before));
                Ok(qb.build().execute(&self.writer).await?.rows_affected())
            }

            async fn replica_heartbeat(&self, client_id: &str, shared_group: Option<&str>, at: chrono::DateTime<chrono::Utc>) -> $crate::Result<()> {
                let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO ingest_replicas (client_id, shared_group, seen_at) ");
                qb.push_values([()], |mut row, ()| {
                    row.push_bind(client_id)
                        .push_bind(shared_group)
                        .push_bind($crate::shared::micros(at));
                });
                qb.push(" ON CONFLICT (client_id) DO UPDATE SET shared_group = excluded.shared_group, seen_at = excluded.seen_at");
                qb.build().execute(&self.writer).await?;
                Ok(())
            }

            async fn replicas(&self) -> $crate::Result<Vec<$crate::ReplicaSeen>> {
                let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(
                    "SELECT client_id, shared_group, seen_at FROM ingest_replicas ORDER BY client_id",
                )
                .fetch_all(&self.reader)
                .await?;
                rows.into_iter()
                    .map(|(client_id, shared_group, seen_at)| {
                        Ok($crate::ReplicaSeen {
                            client_id,
                            shared_group,
                            seen_at: $crate::shared::from_micros(seen_at)?,
                        })
                    })
                    .collect()
            }

            async fn forget_replica(&self, client_id: &str) -> $crate::Result<bool> {
                let mut qb = sqlx::QueryBuilder::<$db>::new("DELETE FROM ingest_replicas WHERE client_id = ");
                qb.push_bind(client_id);
                Ok(qb.build().execute(&self.writer).await?.rows_affected() > 0)
            }

            async fn create_mqtt_credential(&self, c: &$crate::MqttCredential) -> $crate::Result<bool> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO mqtt_credentials (username, password_hash, vendor, gateway, label, created_at, revoked_at) ",
                );
                qb.push_values([()], |mut row, ()| {
                    row.push_bind(c.username.as_str())
                        .push_bind(c.password_hash.as_str())
                        .push_bind(c.scope.vendor.to_string())
                        .push_bind(c.scope.gateway.as_ref().map(ToString::to_string))
                        .push_bind(c.label.as_deref())
                        .push_bind($crate::shared::micros(c.created_at))
                        .push_bind(c.revoked_at.map($crate::shared::micros));
                });
                // A revoked credential's username may be given out again; a live one may not.
                qb.push(
                    " ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, \
                     vendor = excluded.vendor, gateway = excluded.gateway, label = excluded.label, \
                     created_at = excluded.created_at, revoked_at = excluded.revoked_at \
                     WHERE mqtt_credentials.revoked_at IS NOT NULL",
                );
                Ok(qb.build().execute(&self.writer).await?.rows_affected() == 1)
            }

            async fn mqtt_credential(&self, username: &str) -> $crate::Result<Option<$crate::MqttCredential>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT username, password_hash, vendor, gateway, label, created_at, revoked_at \
                     FROM mqtt_credentials WHERE username = ",
                );
                qb.push_bind(username);
                let row: Option<$crate::shared::CredentialRow> =
                    qb.build_query_as().fetch_optional(&self.reader).await?;
                row.map($crate::shared::mqtt_credential).transpose()
            }

            async fn mqtt_credentials(&self) -> $crate::Result<Vec<$crate::MqttCredential>> {
                let rows: Vec<$crate::shared::CredentialRow> = sqlx::query_as(
                    "SELECT username, password_hash, vendor, gateway, label, created_at, revoked_at \
                     FROM mqtt_credentials ORDER BY created_at, username",
                )
                .fetch_all(&self.reader)
                .await?;
                rows.into_iter().map($crate::shared::mqtt_credential).collect()
            }

            async fn revoke_mqtt_credential(&self, username: &str, at: chrono::DateTime<chrono::Utc>) -> $crate::Result<bool> {
                let mut qb = sqlx::QueryBuilder::<$db>::new("UPDATE mqtt_credentials SET revoked_at = ");
                qb.push_bind($crate::shared::micros(at))
                    .push(" WHERE revoked_at IS NULL AND username = ")
                    .push_bind(username);
                Ok(qb.build().execute(&self.writer).await?.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_ingest;
