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

/// Every file of a backend's migration directory, in order. `tests::every_file_is_embedded`
/// fails when a file is added to the directory but not here.
macro_rules! embedded {
    ($dir:literal: $($version:literal $name:literal),+ $(,)?) => {
        migrator(&[$(($version, $name, include_str!(concat!("../../../migrations/", $dir, "/", $name, ".sql")))),+])
    };
}

pub fn sqlite() -> Migrator {
    embedded!("sqlite": 1 "0001_events", 2 "0002_state", 3 "0003_published", 4 "0004_imports", 5 "0005_covering_lifecycle", 6 "0006_dashboard", 7 "0007_month_end_cache", 8 "0008_response_cache", 9 "0009_dose_cache", 10 "0010_contact_received", 11 "0011_change_cache", 12 "0012_ingest_replicas", 13 "0013_mqtt_credentials", 14 "0014_accounts_audit", 15 "0015_decommission_reason", 16 "0016_dead_letter_handling", 17 "0017_notifications", 18 "0018_contact_history", 19 "0019_service_state", 20 "0020_dose_months", 21 "0021_response_months", 22 "0022_no_kept_figures", 23 "0023_interval_replaces", 24 "0024_response_times_by_ms", 25 "0025_month_deltas_by_key", 26 "0026_response_seconds", 27 "0027_own_alarm_events", 28 "0028_own_alarm_states", 29 "0029_own_alarms_from_state")
}

pub fn postgres() -> Migrator {
    embedded!("postgres": 1 "0001_events", 2 "0002_state", 3 "0003_published", 4 "0004_imports", 5 "0005_covering_lifecycle", 6 "0006_dashboard", 7 "0007_month_end_cache", 8 "0008_response_cache", 9 "0009_dose_cache", 10 "0010_contact_received", 11 "0011_change_cache", 12 "0012_ingest_replicas", 13 "0013_mqtt_credentials", 14 "0014_accounts_audit", 15 "0015_decommission_reason", 16 "0016_dead_letter_handling", 17 "0017_notifications", 18 "0018_contact_history", 19 "0019_service_state", 20 "0020_dose_months", 21 "0021_response_months", 22 "0022_no_kept_figures", 23 "0023_interval_replaces", 24 "0024_response_times_by_ms", 25 "0025_month_deltas_by_key", 26 "0026_response_seconds", 27 "0027_own_alarm_events", 28 "0028_own_alarm_states", 29 "0029_own_alarms_from_state")
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_file_is_embedded() {
        for (dir, migrator) in [("sqlite", super::sqlite()), ("postgres", super::postgres())] {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/").to_owned() + dir;
            let files = std::fs::read_dir(&path).expect("migrations dir").count();
            assert_eq!(
                files,
                migrator.migrations.len(),
                "{dir}: a migration file is not embedded"
            );
        }
    }
}
