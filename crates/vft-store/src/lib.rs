//! One storage interface ([`Store`]) with two backends behind it: SQLite (the embedded default)
//! and PostgreSQL. The backend is chosen by the database URL. Only this crate touches sqlx.

mod access;
mod derived;
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
use vft_domain::attribution::InService;
use vft_domain::reconcile::{Listing, Reporting};
use vft_domain::response::AlarmRecord;
use vft_domain::{
    Connectivity, DeviceId, Event, LifecycleRecord, MunicipalityCode, RollupFilter, TechnologyKind,
    VendorId, YearMonth,
};

pub use access::{
    AccessStore, AuditHead, AuditQuery, NewUser, TokenListing, TokenRecord, UserChange, UserRecord,
};
pub use derived::{ContactRow, DerivedStore, RebuildOutcome};
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

/// One service interval (kept by ingest, `vft_domain::interval`) with the unit its install
/// replaces: the in-service snapshot at many instants from one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpan {
    pub interval: vft_domain::interval::Interval,
    pub replaces: Option<DeviceId>,
}

impl ServiceSpan {
    /// The device as [`Store::in_service_snapshot`] shows it at an instant the interval covers
    /// (stored intervals always have a kind).
    pub fn in_service(&self) -> Option<InService> {
        let iv = &self.interval;
        Some(InService {
            vendor: iv.vendor.clone(),
            device: iv.device.clone(),
            kind: iv.kind?,
            municipality: iv.municipality.clone(),
            recipient: iv.recipient.clone(),
            replaces: self.replaces.clone(),
        })
    }
}

/// See [`Store::service_changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceChanges {
    pub breakdown: Vec<BreakdownRow>,
    pub spans: Vec<ServiceSpan>,
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
pub trait Store: AccessStore + NotifyStore + DerivedStore + Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Stores events (once per vendor and id) and dead letters in one transaction.
    async fn write_batch(
        &self,
        events: &[Event],
        dead_letters: &[NewDeadLetter],
        received_at: DateTime<Utc>,
    ) -> Result<WriteOutcome>;

    /// Devices in service just before each instant, per technology type in table order.
    async fn device_counts(
        &self,
        before: &[DateTime<Utc>],
        filter: &RollupFilter,
    ) -> Result<Vec<[u64; 6]>>;

    /// All lifecycle events (for checks against the domain rules and for exports).
    async fn lifecycle_records(&self) -> Result<Vec<LifecycleRecord>>;

    async fn event_count(&self) -> Result<u64>;

    /// Dead letters, newest first, optionally only those older than `before_id` (paging).
    async fn dead_letters(&self, limit: u32, before_id: Option<i64>) -> Result<Vec<DeadLetter>> {
        self.dead_letter_page(limit, before_id, None).await
    }

    /// Like [`Store::dead_letters`], only open ones (`Some(false)`) or handled ones.
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

    /// Month-end figures just before each instant, per municipality, vendor and type.
    async fn month_end_breakdown(&self, before: &[DateTime<Utc>]) -> Result<Vec<BreakdownRow>>;

    /// Every device in service just before `before`, with what its latest install said.
    async fn in_service_snapshot(&self, before: DateTime<Utc>) -> Result<Vec<InService>>;

    /// Every service interval that covers some instant in `[first, last]`, in no particular
    /// order. For any such instant `c`, the spans whose interval covers `c` (`from < c <= to`)
    /// are [`Store::in_service_snapshot`]`(c)`: many instants' snapshots from one read.
    async fn service_spans(
        &self,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
    ) -> Result<Vec<ServiceSpan>>;

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

    /// Like [`Store::alarm_records`], but each alarm merged from `municipality`'s own events
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

    /// Devices matching a query, in its order, at most `limit`.
    async fn devices(&self, query: &DeviceQuery) -> Result<Vec<DeviceRecord>>;

    /// Every vendor with a device, in order (the dashboard's vendor filters).
    async fn vendors(&self) -> Result<Vec<VendorId>>;

    /// How many devices match a query's filters (every page together: `after`, the sort and
    /// `limit` do not count).
    async fn count_devices(&self, query: &DeviceQuery) -> Result<u64>;

    /// Devices of the same vendor whose `replaces` names this one.
    async fn replaced_by(&self, vendor: &VendorId, device: &DeviceId) -> Result<Vec<DeviceId>>;

    /// Stored events of these devices of one vendor, oldest first, at most `limit`; with
    /// `municipality`, only the events that name it.
    async fn device_events(
        &self,
        vendor: &VendorId,
        devices: &[DeviceId],
        municipality: Option<&MunicipalityCode>,
        limit: u32,
    ) -> Result<Vec<Event>>;

    /// Every contact (any event but a lifecycle event) with `from <= ts < to`: vendor, device,
    /// time, and whether it is a `fault`.
    async fn contacts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(VendorId, DeviceId, DateTime<Utc>, bool)>>;

    /// For each device, the reason its latest lifecycle event before `before` gave, when that
    /// event is a decommissioning (a device with none, or whose latest lifecycle event is an
    /// install, is absent; a decommissioning without a reason maps to `None`).
    async fn decommission_reasons(
        &self,
        devices: &[(VendorId, DeviceId)],
        before: DateTime<Utc>,
    ) -> Result<
        std::collections::HashMap<(VendorId, DeviceId), Option<vft_domain::DecommissionReason>>,
    >;

    /// Sets or clears a device's own offline timeout. False if the device is unknown.
    async fn set_device_timeout(
        &self,
        vendor: &VendorId,
        device: &DeviceId,
        secs: Option<u64>,
    ) -> Result<bool>;

    /// Records a gateway's status message (`online` / `offline`, e.g. its last will).
    async fn set_gateway_status(
        &self,
        vendor: &VendorId,
        gateway: &str,
        online: bool,
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// Deletes events of these types older than `before` (raw status traffic past retention;
    /// device state keeps what they said). Returns how many.
    async fn purge_events(
        &self,
        types: &[vft_domain::EventType],
        before: DateTime<Utc>,
    ) -> Result<u64>;

    /// Keeps a vendor's inventory export as a snapshot as of `as_of`, once per file hash:
    /// the same vendor and hash again returns the first import with `new: false`.
    async fn import_inventory(
        &self,
        vendor: &VendorId,
        as_of: DateTime<Utc>,
        imported_at: DateTime<Utc>,
        file_sha256: &str,
        rows: &[Listing],
        errors: &[vft_domain::import::RowError],
    ) -> Result<ImportOutcome>;

    /// Rows of imports that could not be read: newest import first, then by line; at most
    /// `limit`. Only the first [`MAX_KEPT_IMPORT_ERRORS`] of each import are kept.
    async fn import_errors(&self, limit: u32) -> Result<Vec<ImportErrorRecord>>;

    /// The newest event time (lifecycle or contact) of any device, or of one municipality's:
    /// where the data ends, so a page can open on the year that has data.
    async fn latest_activity(
        &self,
        municipality: Option<&MunicipalityCode>,
    ) -> Result<Option<DateTime<Utc>>>;

    /// Import history, oldest snapshot first (one vendor or all).
    async fn imports(&self, vendor: Option<&VendorId>) -> Result<Vec<ImportSummary>>;

    /// The rows of the vendor's latest import with `as_of <= at` (empty when none).
    async fn listing_at(&self, vendor: &VendorId, at: DateTime<Utc>) -> Result<Vec<Listing>>;

    /// Every install of the vendor's devices before `before`, oldest first, with what it said.
    async fn ever_in_service(
        &self,
        vendor: &VendorId,
        before: DateTime<Utc>,
    ) -> Result<Vec<InService>>;

    /// [`Store::ever_in_service`] with each install's time: the entries before any earlier
    /// instant `c` are the prefix with time `< c`, so several instants need one read.
    async fn installs_before(
        &self,
        vendor: &VendorId,
        before: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, InService)>>;

    /// Whether any device of `vendor` is in [`Store::reporting_at`]`(at, since)`, without
    /// reading every device's contact history.
    async fn vendor_reporting(
        &self,
        vendor: &VendorId,
        at: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> Result<bool>;

    /// Per device, its latest contact (any event but installed/decommissioned) in
    /// `(since, at]`, read from the contact history ingest keeps (`contact_months`), which
    /// retention never purges. Devices without contact in the window are left out.
    async fn reporting_at(&self, at: DateTime<Utc>, since: DateTime<Utc>)
    -> Result<Vec<Reporting>>;

    /// Writes a consistent copy of the whole store to a new file at `dest` while writes go on
    /// (SQLite: `VACUUM INTO`); never overwrites. PostgreSQL refuses: use `pg_dump`.
    async fn backup(&self, dest: &std::path::Path) -> Result<()>;

    /// Cheap round trip for readiness checks.
    async fn ping(&self) -> Result<()>;

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
