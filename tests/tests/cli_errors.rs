//! The command line shows the cause of a database error instead of a bare "internal error": on
//! the server's own console the operator needs it. The use case's error (`vft_app::AppError`)
//! carries it to the console.

mod support;

use support::*;

#[tokio::test]
async fn a_database_error_in_an_import_names_its_cause() {
    let scratch = Scratch::new();
    let db = scratch.database_url();
    vft_store::open(
        &db,
        &vft_store::StoreOptions {
            create_if_missing: true,
            ..Default::default()
        },
    )
    .await
    .expect("create the store");
    // A damaged database: the table imports go to is gone.
    let path = db.strip_prefix("sqlite://").expect("sqlite path");
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nc.execute('PRAGMA foreign_keys=OFF')\nc.execute('DROP TABLE inventory_import_errors')\nc.execute('DROP TABLE inventory_imports')\nc.commit()\n",
            path,
        ])
        .status()
        .expect("python3");
    assert!(status.success());
    let export = workspace_root().join("config/imports/atea.example.csv");
    let err = vft_cli(
        &[
            "import",
            "inventory",
            "--database-url",
            &db,
            "--vendor",
            "atea",
            "--as-of",
            "2025-12-01",
            &export.display().to_string(),
        ],
        scratch.dir.path(),
    )
    .expect_err("the import fails");
    assert!(err.contains("the database failed"), "{err}");
    assert!(
        err.contains("inventory_imports"),
        "the cause is named: {err}"
    );
}
