//! The SQL both backends share. Written once as a macro so each expansion type-checks against
//! its concrete sqlx driver (generic sqlx code needs a wall of higher-ranked bounds); the SQL
//! itself is portable (SQLite ≥ 3.35 and PostgreSQL ≥ 12) and placeholders come from
//! `QueryBuilder`, which writes `?` or `$n` as the driver wants.

use crate::{DeviceCursor, DeviceRecord, DeviceSort, Result, SortValue, StoreError};
use chrono::{DateTime, TimeZone, Utc};
use vft_domain::{
    Connectivity, DeviceId, Event, EventId, LifecycleRecord, MunicipalityCode, TechnologyKind,
    VendorId,
};

/// Rows per multi-row INSERT: 18 columns × 500 stays under both backends' parameter limits.
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

/// What an event says, as stored (instant, not its written offset; not the gateway that
/// relayed it): two events with one id and different contents conflict.
pub(crate) type EventContent = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub(crate) fn event_content(e: &Event) -> EventContent {
    (
        micros(e.ts_utc()),
        e.municipality.to_string(),
        e.device.to_string(),
        e.event_type.id().to_owned(),
        e.kind.map(|k| k.id().to_owned()),
        e.battery.map(i64::from),
        e.alarm.as_ref().map(ToString::to_string),
        e.cause.map(|c| c.id().to_owned()),
        e.outcome.map(|o| o.id().to_owned()),
        e.recipient.as_ref().map(ToString::to_string),
        e.replaces.as_ref().map(ToString::to_string),
        e.reason.map(|r| r.id().to_owned()),
    )
}

/// The columns of [`EventContent`], in its order.
pub(crate) const EVENT_CONTENT_COLUMNS: &str = "ts, municipality, device, type, kind, battery, alarm, cause, outcome, recipient, replaces, reason";

pub(crate) const DEAD_LETTER_COLUMNS: &str =
    "id, topic, payload, reason_code, reason, received_at, handled_at, handled_by, replayed_events";

pub(crate) type DeadLetterRow = (
    i64,
    String,
    Vec<u8>,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

pub(crate) fn dead_letter(
    (id, topic, payload, reason_code, reason, received_at, handled_at, handled_by, replayed): DeadLetterRow,
) -> Result<crate::DeadLetter> {
    Ok(crate::DeadLetter {
        id,
        topic,
        payload,
        reason_code,
        reason,
        received_at: from_micros(received_at)?,
        handled: match (handled_at, handled_by) {
            (Some(at), by) => Some((from_micros(at)?, by.unwrap_or_default())),
            (None, _) => None,
        },
        replayed_events: replayed.map(|n| u64::try_from(n).unwrap_or(0)),
    })
}

/// A row of `mqtt_credentials`: username, hash, vendor, gateway, label, created, revoked.
pub(crate) type CredentialRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
);

pub(crate) fn mqtt_credential(
    (username, password_hash, vendor, gateway, label, created, revoked): CredentialRow,
) -> Result<crate::MqttCredential> {
    Ok(crate::MqttCredential {
        username,
        password_hash,
        scope: vft_domain::mqtt_access::CredentialScope {
            vendor: VendorId::parse(&vendor).map_err(corrupt)?,
            gateway: gateway
                .map(|g| vft_domain::GatewayId::parse(&g))
                .transpose()
                .map_err(corrupt)?,
        },
        label,
        created_at: from_micros(created)?,
        revoked_at: revoked.map(from_micros).transpose()?,
    })
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

/// `%text%` for LIKE, with the wildcards in `text` escaped.
pub(crate) fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The SQL sort key of each order; paired with (vendor, device) it is unique.
pub(crate) fn sort_expr(sort: DeviceSort) -> &'static str {
    match sort {
        // PostgreSQL refuses a constant in ORDER BY, so the vendor stands in.
        DeviceSort::Device => "x.vendor",
        DeviceSort::Installed => "COALESCE(x.first_installed_ts, -1)",
        DeviceSort::Municipality => "x.municipality",
        DeviceSort::Kind => "COALESCE(x.kind, '')",
    }
}

/// A device row as read, before parsing into domain types.
pub(crate) struct RawDevice {
    pub vendor: String,
    pub device: String,
    pub kind: Option<String>,
    pub municipality: String,
    pub gateway: Option<String>,
    pub lc_installed: Option<i64>,
    pub lifecycle_at: Option<DateTime<Utc>>,
    pub first_installed: Option<DateTime<Utc>>,
    pub recipient: Option<String>,
    pub replaces: Option<String>,
    pub last_contact: Option<DateTime<Utc>>,
    pub battery: Option<i64>,
    pub battery_at: Option<DateTime<Utc>>,
    pub last_fault: Option<DateTime<Utc>>,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub timeout_secs: Option<i64>,
    pub connectivity: String,
}

impl RawDevice {
    pub(crate) fn into_record(self, sort: DeviceSort) -> Result<DeviceRecord> {
        let vendor = VendorId::parse(&self.vendor).map_err(corrupt)?;
        let device = DeviceId::parse(&self.device).map_err(corrupt)?;
        let sort_value = match sort {
            DeviceSort::Device => SortValue::Text(self.vendor.clone()),
            DeviceSort::Installed => SortValue::Int(self.first_installed.map_or(-1, micros)),
            DeviceSort::Municipality => SortValue::Text(self.municipality.clone()),
            DeviceSort::Kind => SortValue::Text(self.kind.clone().unwrap_or_default()),
        };
        Ok(DeviceRecord {
            kind: self.kind.as_deref().and_then(TechnologyKind::from_id),
            municipality: MunicipalityCode::parse(&self.municipality).map_err(corrupt)?,
            gateway: self.gateway,
            in_service: self.lc_installed == Some(1),
            lifecycle_at: self.lifecycle_at,
            first_installed: self.first_installed,
            recipient: self.recipient,
            replaces: self
                .replaces
                .as_deref()
                .map(DeviceId::parse)
                .transpose()
                .map_err(corrupt)?,
            last_contact: self.last_contact,
            battery: self.battery.and_then(|b| u8::try_from(b).ok()),
            battery_at: self.battery_at,
            fault_open: vft_domain::fault_open(self.last_fault, self.last_heartbeat),
            timeout_override_secs: self.timeout_secs.and_then(|s| u64::try_from(s).ok()),
            connectivity: Connectivity::from_id(&self.connectivity).ok_or_else(|| {
                StoreError::Corrupt(format!("connectivity {:?}", self.connectivity))
            })?,
            cursor: DeviceCursor {
                sort_value,
                vendor: vendor.clone(),
                device: device.clone(),
            },
            vendor,
            device,
        })
    }
}

pub(crate) fn in_service(
    vendor: String,
    device: String,
    kind: Option<String>,
    municipality: String,
    recipient: Option<String>,
    replaces: Option<String>,
) -> Result<vft_domain::attribution::InService> {
    Ok(vft_domain::attribution::InService {
        vendor: VendorId::parse(&vendor).map_err(corrupt)?,
        device: DeviceId::parse(&device).map_err(corrupt)?,
        kind: kind
            .as_deref()
            .and_then(TechnologyKind::from_id)
            .ok_or_else(|| StoreError::Corrupt(format!("installed without kind: {kind:?}")))?,
        municipality: MunicipalityCode::parse(&municipality).map_err(corrupt)?,
        recipient: recipient
            .as_deref()
            .map(vft_domain::RecipientRef::parse)
            .transpose()
            .map_err(corrupt)?,
        replaces: replaces
            .as_deref()
            .map(DeviceId::parse)
            .transpose()
            .map_err(corrupt)?,
    })
}

pub(crate) fn listing(
    vendor: &VendorId,
    device: String,
    kind: Option<String>,
    municipality: Option<String>,
    recipient: Option<String>,
    in_service: i64,
) -> Result<vft_domain::reconcile::Listing> {
    Ok(vft_domain::reconcile::Listing {
        vendor: vendor.clone(),
        device: DeviceId::parse(&device).map_err(corrupt)?,
        kind: kind.as_deref().and_then(TechnologyKind::from_id),
        municipality: municipality
            .as_deref()
            .map(MunicipalityCode::parse)
            .transpose()
            .map_err(corrupt)?,
        recipient: recipient
            .as_deref()
            .map(vft_domain::RecipientRef::parse)
            .transpose()
            .map_err(corrupt)?,
        in_service: in_service != 0,
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn event_from_row(
    vendor: String,
    event_id: String,
    gateway: String,
    ts: i64,
    ts_offset: i64,
    municipality: String,
    device: String,
    event_type: String,
    kind: Option<String>,
    battery: Option<i64>,
    alarm: Option<String>,
    cause: Option<String>,
    outcome: Option<String>,
    recipient: Option<String>,
    replaces: Option<String>,
    reason: Option<String>,
) -> Result<Event> {
    let offset = i32::try_from(ts_offset)
        .ok()
        .and_then(chrono::FixedOffset::east_opt)
        .ok_or_else(|| StoreError::Corrupt(format!("offset {ts_offset}")))?;
    Ok(Event {
        vendor: VendorId::parse(&vendor).map_err(corrupt)?,
        gateway: vft_domain::GatewayId::parse(&gateway).map_err(corrupt)?,
        id: EventId::parse(&event_id).map_err(corrupt)?,
        ts: from_micros(ts)?.with_timezone(&offset),
        municipality: MunicipalityCode::parse(&municipality).map_err(corrupt)?,
        device: DeviceId::parse(&device).map_err(corrupt)?,
        event_type: vft_domain::EventType::from_id(&event_type)
            .ok_or_else(|| StoreError::Corrupt(format!("event type {event_type:?}")))?,
        kind: kind.as_deref().and_then(TechnologyKind::from_id),
        battery: battery.and_then(|b| u8::try_from(b).ok()),
        alarm: alarm
            .as_deref()
            .map(vft_domain::AlarmRef::parse)
            .transpose()
            .map_err(corrupt)?,
        cause: cause.as_deref().and_then(vft_domain::Cause::from_id),
        outcome: outcome.as_deref().and_then(vft_domain::Outcome::from_id),
        recipient: recipient
            .as_deref()
            .map(vft_domain::RecipientRef::parse)
            .transpose()
            .map_err(corrupt)?,
        replaces: replaces
            .as_deref()
            .map(DeviceId::parse)
            .transpose()
            .map_err(corrupt)?,
        reason: reason
            .as_deref()
            .and_then(vft_domain::DecommissionReason::from_id),
    })
}

/// A column of `devices d` as a municipality's own view shows it (`DeviceQuery::own`), where
/// `d.municipality` is that municipality: from its own events only. Lifecycle events are never
/// purged, so the first install here and where the latest install was are exact; what the
/// device itself sent (contact, battery, faults, the gateway that relayed it) is shown only
/// when its latest contact was made here.
pub(crate) fn own_view(column: &str) -> String {
    const CONTACT_HERE: &str = "d.contact_municipality = d.municipality";
    const INSTALLED_HERE: &str = "(SELECT e.municipality FROM events e WHERE e.vendor = d.vendor \
         AND e.event_id = d.inst_event_id) = d.municipality";
    match column {
        "first_installed_ts" => {
            "(SELECT MIN(e.ts) FROM events e WHERE e.vendor = d.vendor AND e.device = d.device \
             AND e.lifecycle_rank = 0 AND e.municipality = d.municipality)"
                .to_owned()
        }
        "recipient" | "replaces" => format!("CASE WHEN {INSTALLED_HERE} THEN d.{column} END"),
        "gateway" => format!("CASE WHEN {CONTACT_HERE} THEN d.gateway ELSE d.lc_gateway END"),
        _ => format!("CASE WHEN {CONTACT_HERE} THEN d.{column} END"),
    }
}

macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:literal) => {
        impl $store {
            /// The inventory query up to its filters (`SELECT {outer} FROM (…) x WHERE …`),
            /// shared by the device list (`*`) and its count (`COUNT(*)`); `None` when it can
            /// match nothing.
            fn device_filter<'q>(q: &'q $crate::DeviceQuery, outer: &str) -> Option<sqlx::QueryBuilder<'q, $db>> {
                let now = $crate::shared::micros(q.now);
                // A municipality's own view (see `DeviceQuery::own`): its rows are that
                // municipality's (filtered below), so there `d.municipality` is it.
                let own = q.own.is_some();
                let column = |c: &str| if own { $crate::shared::own_view(c) } else { format!("d.{c}") };
                let (gateway, first_installed, recipient, replaces) =
                    (column("gateway"), column("first_installed_ts"), column("recipient"), column("replaces"));
                let contact = column("contact_ts");
                // In service now: the stored latest lifecycle event, unless it lies in the
                // future (planned); then the latest one up to now decides (rare: a lookup).
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {outer} FROM (SELECT d.vendor, d.device, d.kind, d.municipality, {gateway} AS gateway, \
                     CASE WHEN d.lc_ts IS NULL OR d.lc_ts <= ",
                ));
                qb.push_bind(now).push(
                    " THEN d.lc_installed ELSE (SELECT CASE WHEN e.lifecycle_rank = 0 THEN 1 ELSE 0 END FROM events e \
                     WHERE e.vendor = d.vendor AND e.device = d.device AND e.lifecycle_rank IS NOT NULL AND e.ts <= ",
                );
                qb.push_bind(now).push(format!(
                    " ORDER BY e.ts DESC, e.lifecycle_rank DESC, e.event_id DESC LIMIT 1) END AS lc_installed, d.lc_ts, \
                     {first_installed} AS first_installed_ts, {recipient} AS recipient, {replaces} AS replaces, \
                     {contact} AS contact_ts, {} AS battery, {} AS battery_ts, {} AS last_fault_ts, \
                     {} AS last_heartbeat_ts, d.timeout_secs, CASE WHEN {contact} IS NULL THEN 'never_seen' WHEN d.contact_ts < ",
                    column("battery"),
                    column("battery_ts"),
                    column("last_fault_ts"),
                    column("last_heartbeat_ts"),
                ));
                qb.push_bind(now).push(" - COALESCE(d.timeout_secs, CASE d.kind");
                for kind in vft_domain::TechnologyKind::ALL {
                    qb.push(" WHEN ").push_bind(kind.id()).push(" THEN ");
                    qb.push_bind(i64::try_from(q.timeouts.per_kind[kind.index()]).unwrap_or(i64::MAX / 2_000_000));
                }
                qb.push(" ELSE ").push_bind(i64::try_from(q.timeouts.unknown_kind).unwrap_or(i64::MAX / 2_000_000));
                qb.push(
                    " END) * 1000000 THEN 'offline' WHEN g.online = 0 AND g.changed_at >= COALESCE(d.contact_received_at, d.contact_ts) THEN 'offline' \
                     ELSE 'online' END AS connectivity FROM devices d \
                     LEFT JOIN gateway_status g ON g.vendor = d.vendor AND g.gateway = d.gateway) x WHERE 1 = 1",
                );
                if let Some(m) = &q.own {
                    qb.push(" AND x.municipality = ").push_bind(m.to_string());
                }
                if let Some(ms) = &q.municipalities {
                    if ms.is_empty() {
                        return None;
                    }
                    qb.push(" AND x.municipality IN (");
                    let mut sep = qb.separated(", ");
                    for m in ms {
                        sep.push_bind(m.to_string());
                    }
                    qb.push(")");
                }
                if let Some((v, d)) = &q.device {
                    qb.push(" AND x.vendor = ").push_bind(v.to_string()).push(" AND x.device = ").push_bind(d.to_string());
                }
                if let Some(k) = q.kind {
                    qb.push(" AND x.kind = ").push_bind(k.id());
                }
                if let Some(v) = &q.vendor {
                    qb.push(" AND x.vendor = ").push_bind(v.to_string());
                }
                if let Some(c) = q.connectivity {
                    qb.push(" AND x.connectivity = ").push_bind(c.id());
                }
                if let Some(b) = q.battery_below {
                    qb.push(" AND x.battery < ").push_bind(i64::from(b));
                }
                if let Some(t) = q.installed_before {
                    qb.push(" AND x.first_installed_ts < ").push_bind($crate::shared::micros(t));
                }
                if let Some(t) = q.installed_after {
                    qb.push(" AND x.first_installed_ts >= ").push_bind($crate::shared::micros(t));
                }
                if let Some(s) = q.in_service {
                    qb.push(if s { " AND x.lc_installed = 1" } else { " AND (x.lc_installed IS NULL OR x.lc_installed = 0)" });
                }
                if let Some(text) = &q.search {
                    // LOWER on both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
                    qb.push(" AND LOWER(x.device) LIKE LOWER(").push_bind($crate::shared::like_pattern(text)).push(") ESCAPE '\\'");
                }
                Some(qb)
            }
        }

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
                    // Also first: in PostgreSQL this row lock serialises the batches (and the
                    // rebuild) that change the response-centre sums (apply_response_facts reads
                    // an alarm's stored contribution, then replaces it).
                    sqlx::query("UPDATE alarm_generation SET generation = generation + 1 WHERE id = 1")
                        .execute(&mut *tx)
                        .await?;
                }
                for chunk in unique.chunks(ROWS_PER_STATEMENT) {
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
                    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
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
                for chunk in deltas.chunks(ROWS_PER_STATEMENT) {
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
                for chunk in alarms.chunks(ROWS_PER_STATEMENT) {
                    let rows: Vec<$crate::named::NamedRow> =
                        chunk.iter().map($crate::merge_sql::alarm_row).collect();
                    let mut qb = $crate::named::insert::<$db>("alarms", &rows);
                    qb.push($crate::merge_sql::ALARM_UPSERT.as_str());
                    qb.build().execute(&mut *tx).await?;
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
                for chunk in dead_letters.chunks(ROWS_PER_STATEMENT) {
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

            async fn device_counts(
                &self,
                before: &[chrono::DateTime<chrono::Utc>],
                filter: &vft_domain::RollupFilter,
            ) -> $crate::Result<Vec<[u64; 6]>> {
                let mut counts = vec![[0u64; 6]; before.len()];
                for row in self.breakdown_from_state(before).await? {
                    let admitted = filter.municipality.as_ref().is_none_or(|m| *m == row.municipality)
                        && filter.vendor.as_ref().is_none_or(|v| *v == row.vendor);
                    if let (true, Some(slot)) = (admitted, counts.get_mut(row.idx)) {
                        slot[row.kind.index()] += row.devices;
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

            async fn month_end_breakdown(&self, before: &[chrono::DateTime<chrono::Utc>]) -> $crate::Result<Vec<$crate::BreakdownRow>> {
                // From the service state ingest keeps (derived.rs): its cost does not grow
                // with the fleet's history, so nothing is kept per month end.
                self.breakdown_from_state(before).await
            }

            /// A device whose newest lifecycle event is before `before` is as the device state
            /// says (its newest lifecycle event is then also its newest install, whose kind,
            /// recipient and replaces the state keeps). Only devices with lifecycle events at
            /// or after `before` are worked out from their events: for a recent month end that
            /// is a few, instead of every lifecycle event of the fleet.
            async fn in_service_snapshot(&self, before: chrono::DateTime<chrono::Utc>) -> $crate::Result<Vec<vft_domain::attribution::InService>> {
                let cut = $crate::shared::micros(before);
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT vendor, device, kind, lc_municipality, recipient, replaces FROM devices \
                     WHERE lc_installed = 1 AND lc_ts < ",
                );
                qb.push_bind(cut);
                qb.push(
                    " UNION ALL SELECT vendor, device, kind, municipality, recipient, replaces FROM (SELECT e.vendor, e.device, \
                     e.kind, e.municipality, e.recipient, e.replaces, e.lifecycle_rank, ROW_NUMBER() OVER (PARTITION BY e.vendor, \
                     e.device ORDER BY e.ts DESC, e.lifecycle_rank DESC, e.event_id DESC) AS rn FROM devices d \
                     JOIN events e ON e.vendor = d.vendor AND e.device = d.device \
                     WHERE d.lc_ts >= ",
                );
                qb.push_bind(cut);
                qb.push(" AND e.lifecycle_rank IS NOT NULL AND e.ts < ");
                qb.push_bind(cut);
                qb.push(") x WHERE rn = 1 AND lifecycle_rank = 0 ORDER BY vendor, device");
                let rows: Vec<(String, String, Option<String>, String, Option<String>, Option<String>)> =
                    qb.build_query_as().fetch_all(&self.reader).await?;
                rows.into_iter().map(|(v, d, k, m, r, rep)| $crate::shared::in_service(v, d, k, m, r, rep)).collect()
            }

            async fn service_spans(&self, first: chrono::DateTime<chrono::Utc>, last: chrono::DateTime<chrono::Utc>) -> $crate::Result<Vec<$crate::ServiceSpan>> {
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
                qb.push(" AND e.municipality = ").push_bind(municipality.to_string());
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
                let rows = qb.build().fetch_all(&self.reader).await?;
                let mut events = Vec::with_capacity(rows.len());
                let mut device_kinds = std::collections::HashMap::new();
                for r in &rows {
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
                    events.push(e);
                }
                let mut records: Vec<_> = vft_domain::AlarmDelta::fold(&events)
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
                self.response_tallies_from_state(months, municipality, kind).await
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
                for chunk in rows.chunks($crate::shared::ROWS_PER_STATEMENT) {
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

            async fn vendors(&self) -> $crate::Result<Vec<vft_domain::VendorId>> {
                let rows: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT vendor FROM devices ORDER BY vendor")
                    .fetch_all(&self.reader)
                    .await?;
                rows.into_iter()
                    .map(|(v,)| vft_domain::VendorId::parse(&v).map_err($crate::shared::corrupt))
                    .collect()
            }

            async fn count_devices(&self, q: &$crate::DeviceQuery) -> $crate::Result<u64> {
                let Some(mut qb) = Self::device_filter(q, "COUNT(*)") else {
                    return Ok(0);
                };
                let (n,): (i64,) = qb.build_query_as().fetch_one(&self.reader).await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn devices(&self, q: &$crate::DeviceQuery) -> $crate::Result<Vec<$crate::DeviceRecord>> {
                use sqlx::Row;
                let Some(mut qb) = Self::device_filter(q, "*") else {
                    return Ok(Vec::new());
                };
                let sort_expr = $crate::shared::sort_expr(q.sort);
                let (cmp, dir) = if q.descending { ("<", "DESC") } else { (">", "ASC") };
                if let Some(c) = &q.after {
                    qb.push(format!(" AND ({sort_expr}, x.vendor, x.device) {cmp} ("));
                    match &c.sort_value {
                        $crate::SortValue::Int(i) => qb.push_bind(*i),
                        $crate::SortValue::Text(t) => qb.push_bind(t.clone()),
                    };
                    qb.push(", ").push_bind(c.vendor.to_string()).push(", ").push_bind(c.device.to_string()).push(")");
                }
                qb.push(format!(" ORDER BY {sort_expr} {dir}, x.vendor {dir}, x.device {dir}"));
                if q.limit > 0 {
                    qb.push(" LIMIT ").push_bind(i64::from(q.limit));
                }
                let rows = qb.build().fetch_all(&self.reader).await?;
                rows.iter()
                    .map(|r| {
                        let ts = |i: usize| -> $crate::Result<Option<chrono::DateTime<chrono::Utc>>> {
                            r.try_get::<Option<i64>, _>(i)?.map($crate::shared::from_micros).transpose()
                        };
                        let raw = $crate::shared::RawDevice {
                            vendor: r.try_get(0)?,
                            device: r.try_get(1)?,
                            kind: r.try_get(2)?,
                            municipality: r.try_get(3)?,
                            gateway: r.try_get(4)?,
                            lc_installed: r.try_get(5)?,
                            lifecycle_at: ts(6)?,
                            first_installed: ts(7)?,
                            recipient: r.try_get(8)?,
                            replaces: r.try_get(9)?,
                            last_contact: ts(10)?,
                            battery: r.try_get(11)?,
                            battery_at: ts(12)?,
                            last_fault: ts(13)?,
                            last_heartbeat: ts(14)?,
                            timeout_secs: r.try_get(15)?,
                            connectivity: r.try_get(16)?,
                        };
                        raw.into_record(q.sort)
                    })
                    .collect()
            }

            async fn replaced_by(&self, vendor: &vft_domain::VendorId, device: &vft_domain::DeviceId) -> $crate::Result<Vec<vft_domain::DeviceId>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT device FROM devices WHERE vendor = ");
                qb.push_bind(vendor.to_string()).push(" AND replaces = ").push_bind(device.to_string()).push(" ORDER BY device");
                let rows: Vec<(String,)> = qb.build_query_as().fetch_all(&self.reader).await?;
                rows.into_iter()
                    .map(|(d,)| vft_domain::DeviceId::parse(&d).map_err($crate::shared::corrupt))
                    .collect()
            }

            async fn contacts(
                &self,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Vec<(vft_domain::VendorId, vft_domain::DeviceId, chrono::DateTime<chrono::Utc>, bool)>> {
                // By type, so the (type, ts) index serves the range.
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT vendor, device, ts, type FROM events WHERE type IN (");
                let mut sep = qb.separated(", ");
                for t in vft_domain::EventType::ALL.iter().filter(|t| t.lifecycle_rank().is_none()) {
                    sep.push_bind(t.id());
                }
                qb.push(") AND ts >= ").push_bind($crate::shared::micros(from));
                qb.push(" AND ts < ").push_bind($crate::shared::micros(to));
                let rows: Vec<(String, String, i64, String)> = qb.build_query_as().fetch_all(&self.reader).await?;
                rows.into_iter()
                    .map(|(v, d, ts, t)| {
                        Ok((
                            vft_domain::VendorId::parse(&v).map_err($crate::shared::corrupt)?,
                            vft_domain::DeviceId::parse(&d).map_err($crate::shared::corrupt)?,
                            $crate::shared::from_micros(ts)?,
                            t == vft_domain::EventType::Fault.id(),
                        ))
                    })
                    .collect()
            }

            async fn decommission_reasons(
                &self,
                devices: &[(vft_domain::VendorId, vft_domain::DeviceId)],
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<std::collections::HashMap<(vft_domain::VendorId, vft_domain::DeviceId), Option<vft_domain::DecommissionReason>>> {
                use sqlx::Row;
                // The latest lifecycle event of each device before `before`, in the total order
                // of (ts, lifecycle_rank, event_id) that decides being in service.
                let mut latest: std::collections::HashMap<(String, String), (i64, i64, String, String, Option<String>)> =
                    std::collections::HashMap::new();
                for chunk in devices.chunks($crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT vendor, device, ts, lifecycle_rank, event_id, type, reason FROM events \
                         WHERE lifecycle_rank IS NOT NULL AND ts < ",
                    );
                    qb.push_bind($crate::shared::micros(before));
                    qb.push(" AND (vendor, device) IN (");
                    let mut sep = qb.separated(", ");
                    for (v, d) in chunk {
                        sep.push("(");
                        sep.push_bind_unseparated(v.to_string());
                        sep.push_unseparated(", ");
                        sep.push_bind_unseparated(d.to_string());
                        sep.push_unseparated(")");
                    }
                    qb.push(")");
                    for r in qb.build().fetch_all(&self.reader).await? {
                        let key: (String, String) = (r.try_get(0)?, r.try_get(1)?);
                        let row: (i64, i64, String, String, Option<String>) =
                            (r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?, r.try_get(6)?);
                        let newer = latest
                            .get(&key)
                            .is_none_or(|old| (row.0, row.1, &row.2) > (old.0, old.1, &old.2));
                        if newer {
                            latest.insert(key, row);
                        }
                    }
                }
                let mut reasons = std::collections::HashMap::new();
                for ((v, d), (_, _, _, t, reason)) in latest {
                    if t == vft_domain::EventType::Decommissioned.id() {
                        reasons.insert(
                            (
                                vft_domain::VendorId::parse(&v).map_err($crate::shared::corrupt)?,
                                vft_domain::DeviceId::parse(&d).map_err($crate::shared::corrupt)?,
                            ),
                            reason.as_deref().and_then(vft_domain::DecommissionReason::from_id),
                        );
                    }
                }
                Ok(reasons)
            }

            async fn device_events(
                &self,
                vendor: &vft_domain::VendorId,
                devices: &[vft_domain::DeviceId],
                municipality: Option<&vft_domain::MunicipalityCode>,
                limit: u32,
            ) -> $crate::Result<Vec<vft_domain::Event>> {
                use sqlx::Row;
                if devices.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT vendor, event_id, gateway, ts, ts_offset, municipality, device, type, kind, battery, alarm, cause, \
                     outcome, recipient, replaces, reason FROM events WHERE vendor = ",
                );
                qb.push_bind(vendor.to_string()).push(" AND device IN (");
                let mut sep = qb.separated(", ");
                for d in devices {
                    sep.push_bind(d.to_string());
                }
                qb.push(")");
                if let Some(m) = municipality {
                    qb.push(" AND municipality = ").push_bind(m.to_string());
                }
                qb.push(" ORDER BY ts, COALESCE(lifecycle_rank, -1), event_id LIMIT ").push_bind(i64::from(limit));
                let rows = qb.build().fetch_all(&self.reader).await?;
                rows.iter()
                    .map(|r| {
                        $crate::shared::event_from_row(
                            r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?,
                            r.try_get(6)?, r.try_get(7)?, r.try_get(8)?, r.try_get(9)?, r.try_get(10)?, r.try_get(11)?,
                            r.try_get(12)?, r.try_get(13)?, r.try_get(14)?, r.try_get(15)?,
                        )
                    })
                    .collect()
            }

            async fn set_device_timeout(&self, vendor: &vft_domain::VendorId, device: &vft_domain::DeviceId, secs: Option<u64>) -> $crate::Result<bool> {
                let mut qb = sqlx::QueryBuilder::<$db>::new("UPDATE devices SET timeout_secs = ");
                qb.push_bind(secs.map(|s| i64::try_from(s).unwrap_or(i64::MAX)))
                    .push(" WHERE vendor = ")
                    .push_bind(vendor.to_string())
                    .push(" AND device = ")
                    .push_bind(device.to_string());
                Ok(qb.build().execute(&self.writer).await?.rows_affected() > 0)
            }

            async fn set_gateway_status(&self, vendor: &vft_domain::VendorId, gateway: &str, online: bool, at: chrono::DateTime<chrono::Utc>) -> $crate::Result<()> {
                let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO gateway_status (vendor, gateway, online, changed_at) ");
                qb.push_values([()], |mut row, ()| {
                    row.push_bind(vendor.to_string())
                        .push_bind(gateway)
                        .push_bind(i64::from(online))
                        .push_bind($crate::shared::micros(at));
                });
                qb.push(
                    " ON CONFLICT (vendor, gateway) DO UPDATE SET online = excluded.online, changed_at = excluded.changed_at \
                     WHERE excluded.changed_at >= gateway_status.changed_at",
                );
                qb.build().execute(&self.writer).await?;
                Ok(())
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

            async fn import_inventory(
                &self,
                vendor: &vft_domain::VendorId,
                as_of: chrono::DateTime<chrono::Utc>,
                imported_at: chrono::DateTime<chrono::Utc>,
                file_sha256: &str,
                rows: &[vft_domain::reconcile::Listing],
                errors: &[vft_domain::import::RowError],
            ) -> $crate::Result<$crate::ImportOutcome> {
                use $crate::shared::{micros, ROWS_PER_STATEMENT};
                let mut tx = self.writer.begin().await?;
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO inventory_imports (vendor, as_of, imported_at, file_sha256, rows, errors) ",
                );
                qb.push_values([()], |mut row, ()| {
                    row.push_bind(vendor.to_string())
                        .push_bind(micros(as_of))
                        .push_bind(micros(imported_at))
                        .push_bind(file_sha256)
                        .push_bind(i64::try_from(rows.len()).unwrap_or(i64::MAX))
                        .push_bind(i64::try_from(errors.len()).unwrap_or(i64::MAX));
                });
                qb.push(" ON CONFLICT (vendor, file_sha256) DO NOTHING RETURNING id");
                let inserted: Option<(i64,)> = qb.build_query_as().fetch_optional(&mut *tx).await?;
                let Some((import_id,)) = inserted else {
                    // The same file again: report the first import, touch nothing.
                    let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT id FROM inventory_imports WHERE vendor = ");
                    qb.push_bind(vendor.to_string()).push(" AND file_sha256 = ").push_bind(file_sha256);
                    let (import_id,): (i64,) = qb.build_query_as().fetch_one(&mut *tx).await?;
                    return Ok($crate::ImportOutcome { import_id, new: false });
                };
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO inventory_rows (import_id, vendor, device, kind, municipality, recipient, in_service) ",
                    );
                    qb.push_values(chunk, |mut row, l| {
                        row.push_bind(import_id)
                            .push_bind(vendor.to_string())
                            .push_bind(l.device.to_string())
                            .push_bind(l.kind.map(|k| k.id()))
                            .push_bind(l.municipality.as_ref().map(|m| m.to_string()))
                            .push_bind(l.recipient.as_ref().map(|r| r.to_string()))
                            .push_bind(i64::from(l.in_service));
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                let kept = &errors[..errors.len().min($crate::MAX_KEPT_IMPORT_ERRORS)];
                for chunk in kept.chunks(ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO inventory_import_errors (import_id, line, col, why) ",
                    );
                    qb.push_values(chunk, |mut row, e| {
                        // The last line, as for dead letters: the parser masks already.
                        row.push_bind(import_id)
                            .push_bind(i64::try_from(e.line).unwrap_or(i64::MAX))
                            .push_bind(e.column.as_deref().map(|c| vft_domain::nin::mask_str(c).0))
                            .push_bind(vft_domain::nin::mask_str(&e.why).0);
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok($crate::ImportOutcome { import_id, new: true })
            }

            async fn import_errors(&self, limit: u32) -> $crate::Result<Vec<$crate::ImportErrorRecord>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT i.id, i.vendor, i.as_of, i.imported_at, e.line, e.col, e.why \
                     FROM inventory_import_errors e JOIN inventory_imports i ON i.id = e.import_id \
                     ORDER BY i.imported_at DESC, i.id DESC, e.line LIMIT ",
                );
                qb.push_bind(i64::from(limit));
                let rows: Vec<(i64, String, i64, i64, i64, Option<String>, String)> =
                    qb.build_query_as().fetch_all(&self.reader).await?;
                rows.into_iter()
                    .map(|(import_id, v, as_of, at, line, column, why)| {
                        Ok($crate::ImportErrorRecord {
                            import_id,
                            vendor: vft_domain::VendorId::parse(&v).map_err($crate::shared::corrupt)?,
                            as_of: $crate::shared::from_micros(as_of)?,
                            imported_at: $crate::shared::from_micros(at)?,
                            line: u64::try_from(line).unwrap_or(0),
                            column,
                            why,
                        })
                    })
                    .collect()
            }

            async fn latest_activity(
                &self,
                municipality: Option<&vft_domain::MunicipalityCode>,
            ) -> $crate::Result<Option<chrono::DateTime<chrono::Utc>>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT MAX(CASE WHEN contact_ts IS NULL OR lc_ts > contact_ts THEN lc_ts ELSE contact_ts END) FROM devices",
                );
                if let Some(m) = municipality {
                    qb.push(" WHERE municipality = ").push_bind(m.as_str());
                }
                let (latest,): (Option<i64>,) = qb.build_query_as().fetch_one(&self.reader).await?;
                latest.map($crate::shared::from_micros).transpose()
            }

            async fn imports(&self, vendor: Option<&vft_domain::VendorId>) -> $crate::Result<Vec<$crate::ImportSummary>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, vendor, as_of, imported_at, file_sha256, rows, errors FROM inventory_imports",
                );
                if let Some(v) = vendor {
                    qb.push(" WHERE vendor = ").push_bind(v.to_string());
                }
                qb.push(" ORDER BY as_of, id");
                let rows: Vec<(i64, String, i64, i64, String, i64, i64)> = qb.build_query_as().fetch_all(&self.reader).await?;
                rows.into_iter()
                    .map(|(id, v, as_of, at, sha, n, errors)| {
                        Ok($crate::ImportSummary {
                            id,
                            vendor: vft_domain::VendorId::parse(&v).map_err($crate::shared::corrupt)?,
                            as_of: $crate::shared::from_micros(as_of)?,
                            imported_at: $crate::shared::from_micros(at)?,
                            file_sha256: sha,
                            rows: u64::try_from(n).unwrap_or(0),
                            errors: u64::try_from(errors).unwrap_or(0),
                        })
                    })
                    .collect()
            }

            async fn listing_at(&self, vendor: &vft_domain::VendorId, at: chrono::DateTime<chrono::Utc>) -> $crate::Result<Vec<vft_domain::reconcile::Listing>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT r.device, r.kind, r.municipality, r.recipient, r.in_service FROM inventory_rows r \
                     WHERE r.import_id = (SELECT id FROM inventory_imports WHERE vendor = ",
                );
                qb.push_bind(vendor.to_string())
                    .push(" AND as_of <= ")
                    .push_bind($crate::shared::micros(at))
                    .push(" ORDER BY as_of DESC, id DESC LIMIT 1) ORDER BY r.device");
                let rows: Vec<(String, Option<String>, Option<String>, Option<String>, i64)> =
                    qb.build_query_as().fetch_all(&self.reader).await?;
                rows.into_iter()
                    .map(|(d, k, m, r, s)| $crate::shared::listing(vendor, d, k, m, r, s))
                    .collect()
            }

            async fn ever_in_service(&self, vendor: &vft_domain::VendorId, before: chrono::DateTime<chrono::Utc>) -> $crate::Result<Vec<vft_domain::attribution::InService>> {
                Ok(self.installs_before(vendor, before).await?.into_iter().map(|(_, d)| d).collect())
            }

            async fn installs_before(&self, vendor: &vft_domain::VendorId, before: chrono::DateTime<chrono::Utc>) -> $crate::Result<Vec<(chrono::DateTime<chrono::Utc>, vft_domain::attribution::InService)>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT ts, vendor, device, kind, municipality, recipient, replaces FROM events \
                     WHERE lifecycle_rank = 0 AND vendor = ",
                );
                qb.push_bind(vendor.to_string())
                    .push(" AND ts < ")
                    .push_bind($crate::shared::micros(before))
                    .push(" ORDER BY ts, event_id");
                let rows: Vec<(i64, String, String, Option<String>, String, Option<String>, Option<String>)> =
                    qb.build_query_as().fetch_all(&self.reader).await?;
                rows.into_iter()
                    .map(|(ts, v, d, k, m, r, rep)| Ok(($crate::shared::from_micros(ts)?, $crate::shared::in_service(v, d, k, m, r, rep)?)))
                    .collect()
            }

            /// A month row can only give a contact after `since` when its latest contact is
            /// after `since`: those rows are read a page at a time, and the first that gives one
            /// (usually the first row) answers.
            async fn vendor_reporting(&self, vendor: &vft_domain::VendorId, at: chrono::DateTime<chrono::Utc>, since: chrono::DateTime<chrono::Utc>) -> $crate::Result<bool> {
                const PAGE: i64 = 1000;
                let (first, last) = vft_domain::contact::window_months(since, at);
                let mut offset = 0;
                loop {
                    let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(
                        "SELECT month, device, days, last_ts FROM contact_months \
                         WHERE month >= $1 AND month <= $2 AND vendor = $3 AND last_ts > $4 \
                         ORDER BY month, device LIMIT $5 OFFSET $6",
                    )
                    .bind(first)
                    .bind(last)
                    .bind(vendor.as_str())
                    .bind($crate::shared::micros(since))
                    .bind(PAGE)
                    .bind(offset)
                    .fetch_all(&self.reader)
                    .await?;
                    for (month, device, days, last_ts) in &rows {
                        let row = vft_domain::contact::ContactMonth {
                            vendor: vendor.clone(),
                            device: vft_domain::DeviceId::parse(device).map_err($crate::shared::corrupt)?,
                            month: vft_domain::contact::month_from_key(*month)
                                .ok_or_else(|| $crate::StoreError::Corrupt(format!("contact month {month}")))?,
                            days: u32::try_from(*days)
                                .map_err(|_| $crate::StoreError::Corrupt(format!("contact days {days}")))?,
                            last: $crate::shared::from_micros(*last_ts)?,
                        };
                        if row.latest_at_or_before(at).is_some_and(|t| t > since) {
                            return Ok(true);
                        }
                    }
                    if (rows.len() as i64) < PAGE {
                        return Ok(false);
                    }
                    offset += PAGE;
                }
            }

            async fn reporting_at(&self, at: chrono::DateTime<chrono::Utc>, since: chrono::DateTime<chrono::Utc>) -> $crate::Result<Vec<vft_domain::reconcile::Reporting>> {
                // From the contact history, never the raw events: retention purges those, and a
                // past date's answer must not change when it does.
                self.reporting_from_history(at, since).await
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

            async fn backup(&self, dest: &std::path::Path) -> $crate::Result<()> {
                self.backup_file(dest).await
            }

            async fn ping(&self) -> $crate::Result<()> {
                sqlx::query("SELECT 1").execute(&self.reader).await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_store;
