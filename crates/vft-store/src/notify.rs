//! Notification rules, incidents and the outbox of notices (migration 0017). An evaluation's
//! new incidents, resolutions and their notices are written in one transaction; a notice is
//! delivered from the outbox afterwards, so a crash between the two delays a notice but
//! never loses one, and an open incident is never opened twice (a partial unique index).

use crate::shared::{corrupt, from_micros};
use crate::{Result, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use vft_domain::MunicipalityCode;
use vft_domain::notify::{Channels, NoticeEvent, OpenIncident, Plan, RuleDefinition, RuleKind};

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRecord {
    pub id: i64,
    pub definition: RuleDefinition,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// How a notice travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    pub fn id(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Webhook => "webhook",
        }
    }

    fn parse(id: &str) -> Result<Self> {
        match id {
            "email" => Ok(Self::Email),
            "webhook" => Ok(Self::Webhook),
            other => Err(StoreError::Corrupt(format!("notice channel {other:?}"))),
        }
    }
}

/// A notice and how its delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRecord {
    pub id: i64,
    pub incident_id: i64,
    pub event: NoticeEvent,
    pub channel: Channel,
    pub digest: bool,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// An incident, with its rule's kind and its notices (history page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRecord {
    pub id: i64,
    pub rule_id: i64,
    pub kind: RuleKind,
    pub subject: String,
    pub municipality: Option<MunicipalityCode>,
    pub summary: String,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub notices: Vec<NoticeRecord>,
}

/// A notice to deliver, with what it is about and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingNotice {
    pub notice: NoticeRecord,
    pub incident: IncidentRecord,
    pub channels: Channels,
}

/// Which incidents to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentQuery {
    /// Only incidents about this municipality (a municipality user's history).
    pub municipality: Option<MunicipalityCode>,
    pub open_only: bool,
    pub before_id: Option<i64>,
    pub limit: u32,
}

#[async_trait]
pub trait NotifyStore: Send + Sync {
    async fn create_rule(
        &self,
        rule: &RuleDefinition,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<RuleRecord>;

    /// Rules in force (not deleted), oldest first.
    async fn rules(&self) -> Result<Vec<RuleRecord>>;

    /// Deletes a rule: its open incidents close without a notice and its undelivered notices
    /// are dropped. False when there was no such rule in force.
    async fn delete_rule(&self, id: i64, at: DateTime<Utc>) -> Result<bool>;

    async fn open_incidents(&self, rule_id: i64) -> Result<Vec<OpenIncident>>;

    /// Opens and resolves incidents as `plan` says, with one notice per channel of the rule
    /// for each, in one transaction. Returns how many opened and resolved (an incident opened
    /// meanwhile by another notifier is not opened again).
    async fn apply_plan(
        &self,
        rule: &RuleRecord,
        plan: &Plan,
        at: DateTime<Utc>,
    ) -> Result<(u64, u64)>;

    /// Undelivered immediate notices due at `now`, oldest first, at most `limit`.
    async fn due_notices(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<PendingNotice>>;

    /// Undelivered digest notices created before `before`, oldest first (retries included).
    async fn digest_notices(&self, before: DateTime<Utc>) -> Result<Vec<PendingNotice>>;

    async fn notices_delivered(&self, ids: &[i64], at: DateTime<Utc>) -> Result<()>;

    /// Whether a digest of this rule went out by this channel at or after `since`.
    async fn digest_delivered_since(
        &self,
        rule_id: i64,
        channel: Channel,
        since: DateTime<Utc>,
    ) -> Result<bool>;

    /// A failed attempt: counts it and sets when to try again.
    async fn notice_failed(&self, id: i64, error: &str, retry_at: DateTime<Utc>) -> Result<()>;

    async fn incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentRecord>>;
}

pub(crate) type RuleRow = (
    i64,
    Option<String>,
    String,
    Option<i64>,
    String,
    Option<String>,
    i64,
    i64,
    String,
);

/// A rule's e-mail addresses as stored: one per line.
fn stored_emails(text: &str) -> Vec<String> {
    text.split('\n')
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) const RULE_COLUMNS: &str =
    "id, municipality, kind, threshold, emails, webhook, digest, created_at, created_by";

pub(crate) fn rule_record(row: RuleRow) -> Result<RuleRecord> {
    let (id, municipality, kind, threshold, emails, webhook, digest, created_at, created_by) = row;
    Ok(RuleRecord {
        id,
        definition: RuleDefinition {
            municipality: municipality
                .map(|m| MunicipalityCode::parse(&m))
                .transpose()
                .map_err(corrupt)?,
            kind: RuleKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("rule kind {kind:?}")))?,
            threshold: threshold
                .map(|t| u64::try_from(t).map_err(corrupt))
                .transpose()?,
            channels: Channels {
                emails: stored_emails(&emails),
                webhook,
            },
            digest: digest != 0,
        },
        created_at: from_micros(created_at)?,
        created_by,
    })
}

/// Incident columns of `i`, then its rule's kind as `r.kind`.
pub(crate) const INCIDENT_COLUMNS: &str =
    "i.id, i.rule_id, r.kind, i.subject, i.municipality, i.summary, i.opened_at, i.resolved_at";

pub(crate) type IncidentRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
);

pub(crate) fn incident_record(row: IncidentRow) -> Result<IncidentRecord> {
    let (id, rule_id, kind, subject, municipality, summary, opened_at, resolved_at) = row;
    Ok(IncidentRecord {
        id,
        rule_id,
        kind: RuleKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("rule kind {kind:?}")))?,
        subject,
        municipality: municipality
            .map(|m| MunicipalityCode::parse(&m))
            .transpose()
            .map_err(corrupt)?,
        summary,
        opened_at: from_micros(opened_at)?,
        resolved_at: resolved_at.map(from_micros).transpose()?,
        notices: Vec::new(),
    })
}

pub(crate) const NOTICE_COLUMNS: &str = "n.id, n.incident_id, n.event, n.channel, n.digest, \
     n.created_at, n.attempts, n.delivered_at, n.last_error";

pub(crate) type NoticeRow = (
    i64,
    i64,
    String,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
);

pub(crate) fn notice_record(row: NoticeRow) -> Result<NoticeRecord> {
    let (id, incident_id, event, channel, digest, created_at, attempts, delivered_at, last_error) =
        row;
    Ok(NoticeRecord {
        id,
        incident_id,
        event: NoticeEvent::parse(&event)
            .ok_or_else(|| StoreError::Corrupt(format!("notice event {event:?}")))?,
        channel: Channel::parse(&channel)?,
        digest: digest != 0,
        created_at: from_micros(created_at)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        delivered_at: delivered_at.map(from_micros).transpose()?,
        last_error,
    })
}

/// A pending notice: notice columns, incident columns, then the rule's emails and webhook.
pub(crate) fn pending_sql(filter: &str) -> String {
    format!(
        "SELECT {NOTICE_COLUMNS}, {INCIDENT_COLUMNS}, r.emails, r.webhook \
         FROM notices n JOIN incidents i ON i.id = n.incident_id \
         JOIN notification_rules r ON r.id = i.rule_id \
         WHERE n.delivered_at IS NULL AND r.deleted_at IS NULL AND {filter} \
         ORDER BY n.id"
    )
}

/// One row of [`pending_sql`]: wider than sqlx's tuples go, so read by position.
pub(crate) struct PendingRow(pub(crate) PendingNotice);

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for PendingRow
where
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> std::result::Result<Self, sqlx::Error> {
        let notice: NoticeRow = (
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
            row.try_get(5)?,
            row.try_get(6)?,
            row.try_get(7)?,
            row.try_get(8)?,
        );
        let incident: IncidentRow = (
            row.try_get(9)?,
            row.try_get(10)?,
            row.try_get(11)?,
            row.try_get(12)?,
            row.try_get(13)?,
            row.try_get(14)?,
            row.try_get(15)?,
            row.try_get(16)?,
        );
        let emails: String = row.try_get(17)?;
        let webhook: Option<String> = row.try_get(18)?;
        let decode =
            |e: StoreError| sqlx::Error::Decode(Box::new(std::io::Error::other(e.to_string())));
        Ok(Self(PendingNotice {
            notice: notice_record(notice).map_err(decode)?,
            incident: incident_record(incident).map_err(decode)?,
            channels: Channels {
                emails: stored_emails(&emails),
                webhook,
            },
        }))
    }
}

/// The channels a rule's notices go to.
pub(crate) fn rule_channels(rule: &RuleDefinition) -> Vec<Channel> {
    let mut channels = Vec::new();
    if !rule.channels.emails.is_empty() {
        channels.push(Channel::Email);
    }
    if rule.channels.webhook.is_some() {
        channels.push(Channel::Webhook);
    }
    channels
}

macro_rules! impl_notify {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::notify::NotifyStore for $store {
            async fn create_rule(
                &self,
                rule: &vft_domain::notify::RuleDefinition,
                by: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<$crate::notify::RuleRecord> {
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO notification_rules \
                     (municipality, kind, threshold, emails, webhook, digest, created_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                )
                .bind(rule.municipality.as_ref().map(|m| m.as_str().to_owned()))
                .bind(rule.kind.id())
                .bind(rule.threshold.map(|t| i64::try_from(t).unwrap_or(i64::MAX)))
                .bind(rule.channels.emails.join("\n"))
                .bind(&rule.channels.webhook)
                .bind(i64::from(rule.digest))
                .bind($crate::shared::micros(at))
                .bind(by)
                .fetch_one(&self.writer)
                .await?;
                Ok($crate::notify::RuleRecord {
                    id,
                    definition: rule.clone(),
                    created_at: $crate::shared::from_micros($crate::shared::micros(at))?,
                    created_by: by.to_owned(),
                })
            }

            async fn rules(&self) -> $crate::Result<Vec<$crate::notify::RuleRecord>> {
                let rows: Vec<$crate::notify::RuleRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM notification_rules WHERE deleted_at IS NULL ORDER BY id",
                    $crate::notify::RULE_COLUMNS
                ))
                .fetch_all(&self.reader)
                .await?;
                rows.into_iter().map($crate::notify::rule_record).collect()
            }

            async fn delete_rule(
                &self,
                id: i64,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<bool> {
                let at = $crate::shared::micros(at);
                let mut tx = self.writer.begin().await?;
                let done = sqlx::query::<$db>(
                    "UPDATE notification_rules SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL",
                )
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query::<$db>(
                    "DELETE FROM notices WHERE delivered_at IS NULL AND incident_id IN \
                     (SELECT id FROM incidents WHERE rule_id = $1)",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                sqlx::query::<$db>(
                    "UPDATE incidents SET resolved_at = $1 WHERE rule_id = $2 AND resolved_at IS NULL",
                )
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn open_incidents(
                &self,
                rule_id: i64,
            ) -> $crate::Result<Vec<vft_domain::notify::OpenIncident>> {
                let rows: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT id, subject FROM incidents WHERE rule_id = $1 AND resolved_at IS NULL",
                )
                .bind(rule_id)
                .fetch_all(&self.writer)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, subject)| vft_domain::notify::OpenIncident { id, subject })
                    .collect())
            }

            async fn apply_plan(
                &self,
                rule: &$crate::notify::RuleRecord,
                plan: &vft_domain::notify::Plan,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<(u64, u64)> {
                if plan.open.is_empty() && plan.resolve.is_empty() {
                    return Ok((0, 0));
                }
                let at = $crate::shared::micros(at);
                let channels = $crate::notify::rule_channels(&rule.definition);
                let digest = i64::from(rule.definition.digest);
                let mut tx = self.writer.begin().await?;
                let mut notices: Vec<(i64, &'static str)> = Vec::new();
                let mut opened = 0;
                for finding in &plan.open {
                    let id: Option<(i64,)> = sqlx::query_as(
                        "INSERT INTO incidents (rule_id, subject, municipality, summary, opened_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id",
                    )
                    .bind(rule.id)
                    .bind(&finding.subject)
                    .bind(finding.municipality.as_ref().map(|m| m.as_str().to_owned()))
                    .bind(&finding.summary)
                    .bind(at)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some((id,)) = id {
                        opened += 1;
                        notices.push((id, "opened"));
                    }
                }
                let mut resolved = 0;
                for &id in &plan.resolve {
                    let done = sqlx::query::<$db>(
                        "UPDATE incidents SET resolved_at = $1 \
                         WHERE id = $2 AND rule_id = $3 AND resolved_at IS NULL",
                    )
                    .bind(at)
                    .bind(id)
                    .bind(rule.id)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() > 0 {
                        resolved += 1;
                        notices.push((id, "resolved"));
                    }
                }
                for (incident, event) in notices {
                    for channel in &channels {
                        sqlx::query::<$db>(
                            "INSERT INTO notices (incident_id, event, channel, digest, created_at, next_attempt_at) \
                             VALUES ($1, $2, $3, $4, $5, $5)",
                        )
                        .bind(incident)
                        .bind(event)
                        .bind(channel.id())
                        .bind(digest)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok((opened, resolved))
            }

            async fn due_notices(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> $crate::Result<Vec<$crate::notify::PendingNotice>> {
                let sql = $crate::notify::pending_sql("n.digest = 0 AND n.next_attempt_at <= $1")
                    + " LIMIT $2";
                let rows: Vec<$crate::notify::PendingRow> = sqlx::query_as(&sql)
                    .bind($crate::shared::micros(now))
                    .bind(i64::from(limit))
                    .fetch_all(&self.writer)
                    .await?;
                Ok(rows.into_iter().map(|r| r.0).collect())
            }

            async fn digest_notices(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Vec<$crate::notify::PendingNotice>> {
                let sql = $crate::notify::pending_sql("n.digest = 1 AND n.created_at < $1");
                let rows: Vec<$crate::notify::PendingRow> = sqlx::query_as(&sql)
                    .bind($crate::shared::micros(before))
                    .fetch_all(&self.writer)
                    .await?;
                Ok(rows.into_iter().map(|r| r.0).collect())
            }

            async fn notices_delivered(
                &self,
                ids: &[i64],
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<()> {
                let mut tx = self.writer.begin().await?;
                for &id in ids {
                    sqlx::query::<$db>(
                        "UPDATE notices SET delivered_at = $1, attempts = attempts + 1, last_error = NULL \
                         WHERE id = $2 AND delivered_at IS NULL",
                    )
                    .bind($crate::shared::micros(at))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn digest_delivered_since(
                &self,
                rule_id: i64,
                channel: $crate::notify::Channel,
                since: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<bool> {
                let row: Option<(i64,)> = sqlx::query_as(
                    "SELECT n.id FROM notices n JOIN incidents i ON i.id = n.incident_id \
                     WHERE i.rule_id = $1 AND n.channel = $2 AND n.digest = 1 AND n.delivered_at >= $3 \
                     LIMIT 1",
                )
                .bind(rule_id)
                .bind(channel.id())
                .bind($crate::shared::micros(since))
                .fetch_optional(&self.writer)
                .await?;
                Ok(row.is_some())
            }

            async fn notice_failed(
                &self,
                id: i64,
                error: &str,
                retry_at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<()> {
                sqlx::query::<$db>(
                    "UPDATE notices SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 \
                     WHERE id = $3 AND delivered_at IS NULL",
                )
                .bind(vft_domain::nin::masked_prefix(error, 300))
                .bind($crate::shared::micros(retry_at))
                .bind(id)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn incidents(
                &self,
                query: &$crate::notify::IncidentQuery,
            ) -> $crate::Result<Vec<$crate::notify::IncidentRecord>> {
                let sql = format!(
                    "SELECT {} FROM incidents i JOIN notification_rules r ON r.id = i.rule_id \
                     WHERE ($1 IS NULL OR i.municipality = $1) AND ($2 = 0 OR i.resolved_at IS NULL) \
                     AND i.id < $3 ORDER BY i.id DESC LIMIT $4",
                    $crate::notify::INCIDENT_COLUMNS
                );
                let rows: Vec<$crate::notify::IncidentRow> = sqlx::query_as(&sql)
                    .bind(query.municipality.as_ref().map(|m| m.as_str().to_owned()))
                    .bind(i64::from(query.open_only))
                    .bind(query.before_id.unwrap_or(i64::MAX))
                    .bind(i64::from(query.limit.clamp(1, 1000)))
                    .fetch_all(&self.reader)
                    .await?;
                let mut incidents: Vec<$crate::notify::IncidentRecord> = rows
                    .into_iter()
                    .map($crate::notify::incident_record)
                    .collect::<$crate::Result<_>>()?;
                let (Some(lo), Some(hi)) = (
                    incidents.iter().map(|i| i.id).min(),
                    incidents.iter().map(|i| i.id).max(),
                ) else {
                    return Ok(incidents);
                };
                let notices: Vec<$crate::notify::NoticeRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM notices n WHERE n.incident_id BETWEEN $1 AND $2 ORDER BY n.id",
                    $crate::notify::NOTICE_COLUMNS
                ))
                .bind(lo)
                .bind(hi)
                .fetch_all(&self.reader)
                .await?;
                let mut by_incident: std::collections::HashMap<i64, Vec<$crate::notify::NoticeRecord>> =
                    std::collections::HashMap::new();
                for n in notices {
                    let n = $crate::notify::notice_record(n)?;
                    by_incident.entry(n.incident_id).or_default().push(n);
                }
                for i in &mut incidents {
                    i.notices = by_incident.remove(&i.id).unwrap_or_default();
                }
                Ok(incidents)
            }
        }
    };
}
pub(crate) use impl_notify;
