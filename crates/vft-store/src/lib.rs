//! One storage interface ([`Store`]) with two backends behind it: SQLite (the embedded default)
//! and PostgreSQL. The backend is chosen by the database URL. Only this crate touches sqlx.

mod access;
mod derived;
mod figures;
mod fleet;
mod imports;
mod ingest;
mod merge_sql;
mod migrations;
mod named;
mod notify;
mod postgres;
mod response;
mod shared;
mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use vft_domain::{Connectivity, DeviceId, MunicipalityCode, TechnologyKind, VendorId, YearMonth};

pub use access::{
    AccessStore, AuditHead, AuditQuery, NewUser, TokenListing, TokenRecord, UserChange, UserRecord,
};
pub use derived::{ContactRow, DerivedStore, RebuildOutcome};
pub use figures::FigureStore;
pub use fleet::FleetStore;
pub use imports::ImportStore;
pub use ingest::IngestStore;
pub use notify::{
    Channel, IncidentQuery, IncidentRecord, NoticeRecord, NotifyStore, PendingNotice, RuleRecord,
};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: expected sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("no database at {path}")]
    NoDatabase { path: String },
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("backup to {path} failed: {why}")]
    Backup { path: String, why: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    /// A unique name taken (a username), or an identity bound elsewhere.
    #[error("{0}")]
    Conflict(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A payload that broke the contract, as ingest hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeadLetter {
    pub topic: String,
    pub payload: Vec<u8>,
    pub reason_code: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub topic: String,
    pub payload: Vec<u8>,
    pub reason_code: String,
    pub reason: String,
    pub received_at: DateTime<Utc>,
    /// When and by whom it was marked handled (or replayed); `None` while open.
    pub handled: Option<(DateTime<Utc>, String)>,
    /// Events its payload gave when replayed.
    pub replayed_events: Option<u64>,
}

/// What one committed batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    pub events_inserted: u64,
    /// Events whose (vendor, id) was already stored: replays and redeliveries.
    pub events_duplicate: u64,
    pub dead_letters_inserted: u64,
    /// Indices (into the batch) of events whose (vendor, id) was stored before, or earlier in
    /// the batch, with other content. The first arrival is kept; these are the caller's to
    /// report (ingest makes them dead letters).
    pub conflicting: Vec<usize>,
}

/// An ingest replica and its latest heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSeen {
    pub client_id: String,
    pub shared_group: Option<String>,
    pub seen_at: DateTime<Utc>,
}

/// A gateway credential for the embedded MQTT listener (`mqtt_credentials`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttCredential {
    pub username: String,
    /// Argon2id PHC string (`vft_domain::mqtt_access::hash_password`).
    pub password_hash: String,
    pub scope: vft_domain::mqtt_access::CredentialScope,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Offline timeouts in seconds: per technology type (table order) and for a device of unknown
/// type. A device's own `timeout_secs` overrides them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub per_kind: [u64; 6],
    pub unknown_kind: u64,
}

/// Stable orders for device lists (stable so that cursor paging neither skips nor repeats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceSort {
    #[default]
    Device,
    Installed,
    Municipality,
    Kind,
}

/// Where a page ended: the sort value and key of its last device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCursor {
    pub sort_value: SortValue,
    pub vendor: VendorId,
    pub device: DeviceId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortValue {
    Int(i64),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct DeviceQuery {
    /// Only these municipalities (`None` = all).
    pub municipalities: Option<Vec<MunicipalityCode>>,
    /// A municipality token's own view: only this municipality's devices, each as this
    /// municipality's own events show it. `first_installed` is its first install here (not
    /// one in the municipality it came from); the recipient and replaced device only when its
    /// latest install was here; contact, battery, faults, gateway and connectivity only when
    /// its latest contact was made here (else never seen, with the lifecycle's gateway).
    pub own: Option<MunicipalityCode>,
    pub device: Option<(VendorId, DeviceId)>,
    pub kind: Option<TechnologyKind>,
    pub vendor: Option<VendorId>,
    pub connectivity: Option<Connectivity>,
    pub battery_below: Option<u8>,
    pub installed_before: Option<DateTime<Utc>>,
    pub installed_after: Option<DateTime<Utc>>,
    pub in_service: Option<bool>,
    /// Substring of the device id.
    pub search: Option<String>,
    pub sort: DeviceSort,
    pub descending: bool,
    pub after: Option<DeviceCursor>,
    /// At most this many (0 = all).
    pub limit: u32,
    pub now: DateTime<Utc>,
    pub timeouts: Timeouts,
}

impl DeviceQuery {
    pub fn new(now: DateTime<Utc>, timeouts: Timeouts) -> Self {
        Self {
            municipalities: None,
            own: None,
            device: None,
            kind: None,
            vendor: None,
            connectivity: None,
            battery_below: None,
            installed_before: None,
            installed_after: None,
            in_service: None,
            search: None,
            sort: DeviceSort::default(),
            descending: false,
            after: None,
            limit: 100,
            now,
            timeouts,
        }
    }
}

/// A device as the inventory shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub vendor: VendorId,
    pub device: DeviceId,
    pub kind: Option<TechnologyKind>,
    pub municipality: MunicipalityCode,
    pub gateway: Option<String>,
    pub in_service: bool,
    /// Time of the latest lifecycle event (installed or decommissioned).
    pub lifecycle_at: Option<DateTime<Utc>>,
    pub first_installed: Option<DateTime<Utc>>,
    pub recipient: Option<String>,
    pub replaces: Option<DeviceId>,
    pub last_contact: Option<DateTime<Utc>>,
    pub battery: Option<u8>,
    pub battery_at: Option<DateTime<Utc>>,
    pub fault_open: bool,
    pub timeout_override_secs: Option<u64>,
    pub connectivity: Connectivity,
    /// Where this record sits in its sort order (for the next page's cursor).
    pub cursor: DeviceCursor,
}

/// Month-end figures of one municipality, vendor and technology type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakdownRow {
    /// Index into the instants asked for.
    pub idx: usize,
    pub municipality: MunicipalityCode,
    pub vendor: VendorId,
    pub kind: TechnologyKind,
    pub devices: u64,
    /// Distinct service recipients among those devices.
    pub recipients: u64,
}

/// See [`FigureStore::service_changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceChanges {
    pub breakdown: Vec<BreakdownRow>,
    pub spans: Vec<vft_domain::interval::Interval>,
}

/// A published month's figures as they were published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedMonth {
    pub month: YearMonth,
    pub published_at: DateTime<Utc>,
    pub published_by: Option<String>,
    pub rows: Vec<BreakdownRow>,
}

/// What importing one inventory file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOutcome {
    pub import_id: i64,
    /// False when this vendor's same file (by SHA-256) was imported before: nothing changed.
    pub new: bool,
}

/// One unreadable row of a stored import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportErrorRecord {
    pub import_id: i64,
    pub vendor: VendorId,
    pub as_of: DateTime<Utc>,
    pub imported_at: DateTime<Utc>,
    pub line: u64,
    pub column: Option<String>,
    pub why: String,
}

/// Unreadable rows kept per import: a broken export can have millions, and the first ones
/// show what is wrong.
pub const MAX_KEPT_IMPORT_ERRORS: usize = 1000;

/// One stored inventory import (a dated snapshot of a vendor's export).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub id: i64,
    pub vendor: VendorId,
    pub as_of: DateTime<Utc>,
    pub imported_at: DateTime<Utc>,
    pub file_sha256: String,
    pub rows: u64,
    pub errors: u64,
}

/// Tuning that only some backends use.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// SQLite `synchronous`: `true` = FULL (a commit survives power loss), `false` = NORMAL
    /// (survives a process crash, may lose the last commits on power loss; faster).
    pub sqlite_synchronous_full: bool,
    pub max_connections: u32,
    /// SQLite: create the file (and its directory) when it does not exist. Off for commands
    /// that only read or add to an existing store, so a typo or the wrong working directory
    /// is an error naming the path rather than a new empty database.
    pub create_if_missing: bool,
    /// PostgreSQL: bound on the first connection, so an unreachable server is an error
    /// within seconds rather than after the pool's 30 s of retries.
    pub connect_timeout: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            sqlite_synchronous_full: true,
            max_connections: 8,
            create_if_missing: true,
            connect_timeout: std::time::Duration::from_secs(5),
        }
    }
}

/// The storage interface. Every write is one transaction and idempotent.
#[async_trait]
pub trait Store:
    AccessStore
    + NotifyStore
    + DerivedStore
    + IngestStore
    + FleetStore
    + FigureStore
    + ImportStore
    + Send
    + Sync
    + 'static
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Writes a consistent copy of the whole store to a new file at `dest` while writes go on
    /// (SQLite: `VACUUM INTO`); never overwrites. PostgreSQL refuses: use `pg_dump`.
    async fn backup(&self, dest: &std::path::Path) -> Result<()>;

    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> Result<()>;
}

/// Opens (creating and migrating as needed) the store a URL names.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, options).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url, options).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// Whether an idle pooled connection may be handed out again: it must hold no transaction.
///
/// After a failed `COMMIT` (disk full, I/O error), SQLite may already have rolled the
/// transaction back while sqlx still counts it open; the rollback sqlx then sends fails, the
/// count stays at one, and every later "transaction" on that connection becomes a savepoint
/// inside a transaction that is never committed: writes reported as committed and lost. A
/// connection in that state is closed here and the pool opens a fresh one, so the next write
/// starts from a clean connection whatever the failure was.
pub(crate) fn idle_connection_is_sound<DB: sqlx::Database>(conn: &DB::Connection) -> bool {
    use sqlx::TransactionManager;
    let depth = DB::TransactionManager::get_transaction_depth(conn);
    if depth != 0 {
        tracing::warn!(
            depth,
            "discarding a database connection left inside a transaction"
        );
    }
    depth == 0
}

/// The URL with any password replaced, fit for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_once('/').map_or((rest, ""), |(a, t)| (a, t));
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    let sep = if rest.contains('/') { "/" } else { "" };
    let masked = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        user.to_owned()
    };
    format!("{scheme}://{masked}@{host}{sep}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://vft:s3cret@db:5432/vft"),
            "postgres://vft:***@db:5432/vft"
        );
        assert_eq!(redact_url("postgres://vft@db/vft"), "postgres://vft@db/vft");
        assert_eq!(redact_url("sqlite://data/vft.db"), "sqlite://data/vft.db");
        assert_eq!(redact_url("postgres://u:p@h"), "postgres://u:***@h");
    }
}
