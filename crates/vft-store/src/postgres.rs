use crate::shared::impl_store;
use crate::{Result, StoreError, StoreOptions, migrations};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// PostgreSQL. Prefer a Unix socket (`?host=/run/postgresql`) where the database is local: it
/// sidesteps Nagle's algorithm on TCP, which some sqlx releases leave on.
#[derive(Clone)]
pub struct PostgresStore {
    writer: PgPool,
    reader: PgPool,
}

impl PostgresStore {
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)?;
        probe(&connect, options.connect_timeout).await?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .before_acquire(|conn, _| {
                Box::pin(async move { Ok(crate::idle_connection_is_sound::<sqlx::Postgres>(conn)) })
            })
            .connect_with(connect)
            .await?;
        migrations::postgres().run(&pool).await?;
        let store = Self {
            writer: pool.clone(),
            reader: pool,
        };
        store.build_pending_derived_state().await?;
        Ok(store)
    }
}

impl PostgresStore {
    /// A live copy of a PostgreSQL database is PostgreSQL's job (consistent, compressed,
    /// restorable into another server version).
    pub(crate) async fn backup_file(&self, dest: &std::path::Path) -> Result<()> {
        Err(StoreError::Backup {
            path: dest.display().to_string(),
            why: "vft backup copies SQLite stores only; back up PostgreSQL with its own tools: \
                  pg_dump -Fc -f vft.dump DATABASE (restore with pg_restore; see the README)"
                .into(),
        })
    }
}

/// Where the options point, for errors: the socket file, or host:port. Never the password.
fn target(connect: &PgConnectOptions) -> String {
    let port = connect.get_port();
    let socket_dir = connect
        .get_socket()
        .map(|d| d.display().to_string())
        .or_else(|| {
            let host = connect.get_host();
            host.starts_with('/').then(|| host.to_owned())
        });
    let place = match socket_dir {
        Some(dir) => format!("socket {}/.s.PGSQL.{port}", dir.trim_end_matches('/')),
        None => format!("{}:{port}", connect.get_host()),
    };
    format!(
        "{place} (database {}, user {})",
        connect.get_database().unwrap_or("(default)"),
        connect.get_username()
    )
}

/// One connection attempt, bounded, before the pool is built: the pool retries a refused
/// connection until its acquire timeout (30 s) and then reports only "pool timed out".
async fn probe(connect: &PgConnectOptions, bound: Duration) -> Result<()> {
    let unreachable = |reason: String| StoreError::Unreachable {
        target: target(connect),
        reason,
    };
    match tokio::time::timeout(bound, PgConnection::connect_with(connect)).await {
        Ok(Ok(conn)) => {
            // Closing politely is a courtesy; the connection is gone either way.
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!(
            "no answer within {} s",
            bound.as_secs_f32()
        ))),
    }
}

impl_store!(PostgresStore, sqlx::Postgres, "postgres");
crate::access::impl_access!(PostgresStore, sqlx::Postgres);
crate::ingest::impl_ingest!(PostgresStore, sqlx::Postgres);
crate::fleet::impl_fleet!(PostgresStore, sqlx::Postgres);
crate::figures::impl_figures!(PostgresStore, sqlx::Postgres);
crate::imports::impl_imports!(PostgresStore, sqlx::Postgres);
crate::notify::impl_notify!(PostgresStore, sqlx::Postgres);
crate::derived::impl_derived!(PostgresStore, sqlx::Postgres);
crate::response::impl_response!(PostgresStore, sqlx::Postgres);
