use crate::shared::impl_store;
use crate::{Result, StoreOptions, migrations};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;

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
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .connect_with(connect)
            .await?;
        migrations::postgres().run(&pool).await?;
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
        })
    }
}

impl_store!(PostgresStore, sqlx::Postgres, "postgres");
