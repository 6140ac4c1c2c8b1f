//! What every concern of the store shares: time and id conversions, the inventory's sort keys,
//! and the `Store` impl itself (backend, backup, ping).
//!
//! Each concern's SQL lives in its own module with its own trait (`ingest.rs`, `fleet.rs`,
//! `figures.rs`, `imports.rs`, `derived.rs`, `response.rs`, `access.rs`, `notify.rs`; `Store`
//! is all of them) and is written once, as that module's macro, so each expansion
//! type-checks against its concrete sqlx driver (generic sqlx code needs a wall of
//! higher-ranked bounds). The SQL itself is portable (SQLite ≥ 3.35 and PostgreSQL ≥ 12),
//! placeholders come from `QueryBuilder` (`?` or `$n` as the driver wants), and where the
//! backends differ the macro branches on `<$db as sqlx::Database>::NAME`.

use crate::{DeviceCursor, DeviceRecord, DeviceSort, Result, SortValue, StoreError};
use chrono::{DateTime, TimeZone, Utc};
use vft_domain::{
    Connectivity, DeviceId, Event, EventId, LifecycleRecord, MunicipalityCode, TechnologyKind,
    VendorId,
};

/// Rows per multi-row statement: the widest row (a device's 27 columns) × 512 stays under
/// both backends' parameter limits (SQLite 32 766, PostgreSQL 65 535).
pub(crate) const ROWS_PER_STATEMENT: usize = 512;

/// `rows` cut for multi-row statements: pieces of `most` rows while that many remain, then
/// the rest in power-of-two pieces (313 rows: 256, 32, 16, 8, 1).
///
/// A statement's SQL text depends on its row count, and each text is prepared once per
/// connection and kept in its statement cache. Cut at whatever size the batch left over, nearly
/// every batch of single-event messages (a few hundred rows) prepared its statements afresh:
/// 11 % of the writer thread's time in the ingest bench, against 1 % in the raw-store ceiling,
/// whose batches all had one size. This way a statement has at most a dozen texts.
pub(crate) fn statement_chunks<T>(rows: &[T], most: usize) -> StatementChunks<'_, T> {
    StatementChunks {
        rest: rows,
        most: most.max(1),
    }
}

pub(crate) struct StatementChunks<'a, T> {
    rest: &'a [T],
    most: usize,
}

impl<'a, T> Iterator for StatementChunks<'a, T> {
    type Item = &'a [T];

    fn next(&mut self) -> Option<&'a [T]> {
        if self.rest.is_empty() {
            return None;
        }
        let take = if self.rest.len() >= self.most {
            self.most
        } else {
            1 << self.rest.len().ilog2()
        };
        let (piece, rest) = self.rest.split_at(take);
        self.rest = rest;
        Some(piece)
    }
}

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

/// A value a read decodes straight from its row: `Raw` is the row's columns as the drivers
/// give them, `from_raw` the conversion (see [`Decoded`]).
pub(crate) trait FromRaw: Sized {
    type Raw;
    fn from_raw(raw: Self::Raw) -> Result<Self>;
}

/// A value decoded straight from its row, by serde from a packed read or by sqlx from a row:
/// a read of much of the fleet then holds no vector of raw rows beside the values (for the
/// fleet's intervals an estimated 130 MB at 460 000 rows; for a national vendor's installs
/// about 230 MB at 650 000).
pub(crate) struct Decoded<T>(pub T);

impl<'de, T: FromRaw> serde::Deserialize<'de> for Decoded<T>
where
    T::Raw: serde::Deserialize<'de>,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        T::from_raw(T::Raw::deserialize(d)?)
            .map(Decoded)
            .map_err(serde::de::Error::custom)
    }
}

impl<'r, R: sqlx::Row, T: FromRaw> sqlx::FromRow<'r, R> for Decoded<T>
where
    T::Raw: sqlx::FromRow<'r, R>,
{
    fn from_row(row: &'r R) -> sqlx::Result<Self> {
        T::from_raw(T::Raw::from_row(row)?)
            .map(Decoded)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }
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

/// The SQL sort key of each order ahead of (vendor, device), which makes it unique; `None`
/// when the order is (vendor, device) itself. Repeating `x.vendor` there (PostgreSQL refuses a
/// constant in ORDER BY) made SQLite sort the whole fleet for a page instead of reading its
/// primary key in order: 110–150 ms against 1 ms at 500 000 devices.
pub(crate) fn sort_expr(sort: DeviceSort) -> Option<&'static str> {
    match sort {
        DeviceSort::Device => None,
        DeviceSort::Installed => Some("COALESCE(x.first_installed_ts, -1)"),
        DeviceSort::Municipality => Some("x.municipality"),
        DeviceSort::Kind => Some("COALESCE(x.kind, '')"),
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
            /// The rows of a query that may return much of the fleet, in no particular order
            /// (sort them if it matters). `columns` are the inner query's output columns, in
            /// `T`'s order; `inner` writes the query (without ORDER BY) and its binds.
            ///
            /// On SQLite the rows come back packed into one JSON array of arrays (`json_array`
            /// keeps NULLs and escapes text): sqlx's SQLite driver costs about 7 µs per row, ten
            /// times what SQLite takes to produce it, which made a 500 000-unit read take 3 s.
            /// One aggregate, not several packs: numbering the rows into packs (a window) cost
            /// SQLite more than the read itself. A result over SQLite's 1 GB value limit (about
            /// ten million rows) fails with an error, never short. PostgreSQL's protocol has no
            /// per-row cost; its rows are read as is.
            pub(crate) async fn fetch_many<T>(
                &self,
                columns: &[&str],
                inner: impl FnOnce(&mut sqlx::QueryBuilder<'static, $db>),
            ) -> $crate::Result<Vec<T>>
            where
                T: serde::de::DeserializeOwned
                    + for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row>
                    + Send
                    + Unpin,
            {
                let mut conn = self.reader.acquire().await?;
                Self::fetch_many_in(&mut conn, columns, inner).await
            }

            /// [`Self::fetch_many`] on a given connection (a snapshot's transaction).
            pub(crate) async fn fetch_many_in<T>(
                conn: &mut <$db as sqlx::Database>::Connection,
                columns: &[&str],
                inner: impl FnOnce(&mut sqlx::QueryBuilder<'static, $db>),
            ) -> $crate::Result<Vec<T>>
            where
                T: serde::de::DeserializeOwned
                    + for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row>
                    + Send
                    + Unpin,
            {
                if <$db as sqlx::Database>::NAME != "SQLite" {
                    let mut qb = sqlx::QueryBuilder::<'static, $db>::new("");
                    inner(&mut qb);
                    return Ok(qb.build_query_as::<T>().fetch_all(&mut *conn).await?);
                }
                let mut qb = sqlx::QueryBuilder::<'static, $db>::new(format!(
                    "SELECT json_group_array(json_array({})) FROM (",
                    columns.join(", "),
                ));
                inner(&mut qb);
                qb.push(")");
                let (pack,): (String,) = qb.build_query_as().fetch_one(&mut *conn).await?;
                serde_json::from_str(&pack)
                    .map_err(|e| $crate::StoreError::Corrupt(format!("packed rows: {e}")))
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
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

#[cfg(test)]
mod tests {
    use super::{ROWS_PER_STATEMENT, statement_chunks};
    use std::collections::BTreeSet;

    #[test]
    fn statement_chunks_cover_every_row_once_in_few_sizes() {
        let mut sizes = BTreeSet::new();
        for n in 0..=3 * ROWS_PER_STATEMENT + 7 {
            let rows: Vec<usize> = (0..n).collect();
            let pieces: Vec<&[usize]> = statement_chunks(&rows, ROWS_PER_STATEMENT).collect();
            assert_eq!(pieces.concat(), rows, "{n} rows, in order, each once");
            assert!(
                pieces
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= ROWS_PER_STATEMENT)
            );
            sizes.extend(pieces.iter().map(|p| p.len()));
        }
        // 512 and the powers of two below it: the texts a statement is prepared in.
        assert_eq!(sizes.len(), 10, "{sizes:?}");
        let odd: Vec<usize> = statement_chunks(&[(); 313], 512).map(<[()]>::len).collect();
        assert_eq!(odd, [256, 32, 16, 8, 1]);
        let halves: Vec<usize> = statement_chunks(&[(); 600], 256).map(<[()]>::len).collect();
        assert_eq!(halves, [256, 256, 64, 16, 8]);
    }
}
