use crate::shared::impl_store;
use crate::{Result, StoreError, StoreOptions, migrations};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
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
            .create_if_missing(options.create_if_missing)
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
        let file = connect.get_filename();
        if !options.create_if_missing && file != Path::new(":memory:") && !file.exists() {
            return Err(StoreError::NoDatabase {
                path: std::path::absolute(file)
                    .unwrap_or_else(|_| file.to_path_buf())
                    .display()
                    .to_string(),
            });
        }
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .before_acquire(|conn, _| {
                Box::pin(async move { Ok(crate::idle_connection_is_sound::<sqlx::Sqlite>(conn)) })
            })
            .connect_with(connect.clone())
            .await?;
        migrations::sqlite().run(&writer).await?;
        // Readers keep a smaller page cache than the writer: each pooled reader has its own,
        // so at the writer's size eight of them alone would hold 512 MiB once warm, and the
        // kernel's page cache serves what theirs no longer holds. SQLite's default size: at
        // 8 MiB each the national bench's peak was 559 MiB against 471 MiB, for 5–10 % on
        // the figures' warm times.
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .connect_with(
                connect
                    .read_only(true)
                    .pragma("cache_size", format!("-{READER_CACHE_KIB}")),
            )
            .await?;
        let store = Self { writer, reader };
        store.build_pending_derived_state().await?;
        Ok(store)
    }
}

/// Each reader connection's page cache, in KiB (the writer's is 64 MiB).
const READER_CACHE_KIB: u32 = 2 * 1024;

impl SqliteStore {
    /// `VACUUM INTO` on a reader: one read transaction, so the copy is the state of one commit
    /// while the writer goes on. The copy is written beside `dest` under a temporary name and
    /// linked into place only when complete and synced, so a crash never leaves a half-written
    /// file named like a backup, and an existing file is never replaced.
    pub(crate) async fn backup_file(&self, dest: &Path) -> Result<()> {
        let failed = |why: String| StoreError::Backup {
            path: dest.display().to_string(),
            why,
        };
        if dest.exists() {
            return Err(failed("the file exists; vft does not overwrite it".into()));
        }
        let name = dest
            .file_name()
            .ok_or_else(|| failed("not a file name".into()))?;
        let mut partial_name = std::ffi::OsString::from(".");
        partial_name.push(name);
        partial_name.push(".partial");
        let partial = dest.with_file_name(partial_name);
        // A leftover from an interrupted backup is ours to replace; VACUUM INTO refuses a
        // non-empty file.
        let _ = std::fs::remove_file(&partial);
        let target = partial
            .to_str()
            .ok_or_else(|| failed("the path is not UTF-8".into()))?;
        let result = async {
            sqlx::query("VACUUM INTO ?")
                .bind(target)
                .execute(&self.reader)
                .await
                .map_err(|e| failed(e.to_string()))?;
            // SQLite writes the copy without syncing it.
            let sync = |p: &Path| std::fs::File::open(p).and_then(|f| f.sync_all());
            sync(&partial).map_err(|e| failed(format!("syncing {}: {e}", partial.display())))?;
            // hard_link fails when `dest` exists, unlike rename, which would replace it.
            std::fs::hard_link(&partial, dest).map_err(|e| failed(e.to_string()))?;
            if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
                sync(dir).map_err(|e| failed(format!("syncing {}: {e}", dir.display())))?;
            }
            Ok(())
        }
        .await;
        let _ = std::fs::remove_file(&partial);
        result
    }
}

impl_store!(SqliteStore, sqlx::Sqlite, "sqlite");
crate::access::impl_access!(SqliteStore, sqlx::Sqlite);
crate::ingest::impl_ingest!(SqliteStore, sqlx::Sqlite);
crate::fleet::impl_fleet!(SqliteStore, sqlx::Sqlite);
crate::figures::impl_figures!(SqliteStore, sqlx::Sqlite);
crate::imports::impl_imports!(SqliteStore, sqlx::Sqlite);
crate::notify::impl_notify!(SqliteStore, sqlx::Sqlite);
crate::derived::impl_derived!(SqliteStore, sqlx::Sqlite);
crate::response::impl_response!(SqliteStore, sqlx::Sqlite);

#[cfg(test)]
mod tests {
    use super::*;

    /// The readers' smaller cache is a later pragma of the same name: it must win over the
    /// writer's, or memory grows by 56 MiB per reader unseen.
    #[tokio::test]
    async fn readers_keep_a_smaller_page_cache_than_the_writer() {
        let dir = std::env::temp_dir().join(format!("vft-cache-{}", std::process::id()));
        let url = format!("sqlite://{}/vft.db", dir.display());
        let store = SqliteStore::open(&url, &StoreOptions::default())
            .await
            .expect("open");
        let cache = |pool: &SqlitePool| {
            let pool = pool.clone();
            async move {
                let (kib,): (i64,) = sqlx::query_as("PRAGMA cache_size")
                    .fetch_one(&pool)
                    .await
                    .expect("pragma");
                kib
            }
        };
        assert_eq!(cache(&store.writer).await, -65536);
        assert_eq!(cache(&store.reader).await, -i64::from(READER_CACHE_KIB));
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
