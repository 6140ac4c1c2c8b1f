use crate::shared::impl_store;
use crate::{Result, StoreError, StoreOptions, migrations};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

/// SQLite in WAL mode. One writer connection (SQLite has one writer at a time; a single
/// connection avoids busy retries) and a small pool of readers that WAL lets run beside it.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self> {
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if options.sqlite_synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // SQLite's default page cache (2 MB) makes the writer re-read index pages through
            // the kernel on every batch; profiles showed the kernel copying pages half the time.
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory");
        if let Some(dir) = connect
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect.clone())
            .await?;
        migrations::sqlite().run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .connect_with(connect.read_only(true))
            .await?;
        Ok(Self { writer, reader })
    }
}

impl_store!(SqliteStore, sqlx::Sqlite, "sqlite");
