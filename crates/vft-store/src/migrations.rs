//! Migrations are embedded in the binary from `migrations/{sqlite,postgres}` at the workspace
//! root. sqlx's `migrate!` macro would pull in sqlx-macros (a second build of both drivers on
//! this 2-core machine), so the migrator is assembled here from the same files.

use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::borrow::Cow;

fn migrator(files: &[(i64, &'static str, &'static str)]) -> Migrator {
    let migrations: Vec<Migration> = files
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

pub fn sqlite() -> Migrator {
    migrator(&[
        (
            1,
            "events",
            include_str!("../../../migrations/sqlite/0001_events.sql"),
        ),
        (
            2,
            "state",
            include_str!("../../../migrations/sqlite/0002_state.sql"),
        ),
    ])
}

pub fn postgres() -> Migrator {
    migrator(&[
        (
            1,
            "events",
            include_str!("../../../migrations/postgres/0001_events.sql"),
        ),
        (
            2,
            "state",
            include_str!("../../../migrations/postgres/0002_state.sql"),
        ),
    ])
}
