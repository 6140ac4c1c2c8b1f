//! ARCHITECTURE.md's dependency invariants, checked against the workspace's real metadata
//! (`cargo metadata`): a crate that starts depending on what the invariants forbid fails here,
//! naming the crate, the dependency and the rule.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Each workspace crate's normal (not dev or build) dependencies, by package name.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .args(["--manifest-path", manifest])
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().expect("name").to_owned())
                .collect();
            (p["name"].as_str().expect("name").to_owned(), deps)
        })
        .collect()
}

/// Crates that do I/O of some kind: none of them in `vft-domain`.
const IO_CRATES: &[&str] = &[
    "tokio",
    "sqlx",
    "rumqttc",
    "axum",
    "reqwest",
    "hyper",
    "ntex-mqtt",
    "tempfile",
    "libc",
];

#[test]
fn the_dependency_invariants_hold() {
    let broken = violations(&dependencies());
    assert!(
        broken.is_empty(),
        "ARCHITECTURE.md's invariants are broken:\n{}",
        broken.join("\n")
    );
}

/// The rules can fail: each forbidden edge added to the real graph is named.
#[test]
fn the_rules_notice_forbidden_dependencies() {
    for (krate, dep, words) in [
        ("vft-domain", "tokio", "the domain does no I/O"),
        ("vft-api", "vft-ingest", "dependency direction"),
        ("vft-ingest", "axum", "only [\"vft-api\"] may"),
        ("vft-api", "sqlx", "only [\"vft-store\"] may"),
        ("vft-sim", "vft-store", "dependency direction"),
    ] {
        let mut deps = dependencies();
        deps.get_mut(krate).expect("crate").insert(dep.into());
        let broken = violations(&deps);
        assert!(
            broken
                .iter()
                .any(|b| b.contains(krate) && b.contains(dep) && b.contains(words)),
            "{krate} → {dep} not caught: {broken:?}"
        );
    }
}

fn violations(deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let libraries = [
        "vft-domain",
        "vft-store",
        "vft-ingest",
        "vft-api",
        "vft-sim",
        "vft-notify",
        "vft",
    ];
    for crate_name in libraries {
        assert!(
            deps.contains_key(crate_name),
            "{crate_name} is a workspace member"
        );
    }
    let mut broken = Vec::new();
    let mut rule = |ok: bool, what: String| {
        if !ok {
            broken.push(what);
        }
    };
    let uses = |krate: &str, dep: &str| deps[krate].contains(dep);
    // Dependency direction: domain ← store ← {ingest, api, notify} ← vft; sim on domain only.
    let vft_crates = |krate: &str| -> BTreeSet<&str> {
        deps[krate]
            .iter()
            .filter(|d| d.starts_with("vft"))
            .map(String::as_str)
            .collect()
    };
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("vft-domain", &[][..]),
        ("vft-store", &["vft-domain"][..]),
        ("vft-ingest", &["vft-domain", "vft-store"][..]),
        ("vft-api", &["vft-domain", "vft-store"][..]),
        ("vft-sim", &["vft-domain"][..]),
        ("vft-notify", &["vft-domain", "vft-store"][..]),
        (
            "vft",
            &[
                "vft-api",
                "vft-domain",
                "vft-ingest",
                "vft-notify",
                "vft-sim",
                "vft-store",
            ][..],
        ),
    ]);
    for (krate, allowed) in &allowed {
        for dep in vft_crates(krate) {
            rule(
                allowed.contains(&dep),
                format!("{krate} depends on {dep}: the dependency direction forbids it"),
            );
        }
    }
    // Who touches what.
    for dep in IO_CRATES {
        rule(
            !uses("vft-domain", dep),
            format!("vft-domain depends on {dep}: the domain does no I/O"),
        );
    }
    for (dep, only) in [
        ("sqlx", &["vft-store"][..]),
        ("rumqttc", &["vft-ingest", "vft-sim"][..]),
        ("ntex-mqtt", &["vft-ingest"][..]),
        ("axum", &["vft-api"][..]),
        ("figment", &["vft"][..]),
        ("anyhow", &["vft", "vft-e2e"][..]),
        ("lettre", &["vft-notify"][..]),
    ] {
        for (krate, its) in deps {
            if its.contains(dep) {
                rule(
                    only.contains(&krate.as_str()),
                    format!("{krate} depends on {dep}: only {only:?} may"),
                );
            }
        }
    }
    // Library crates report errors with thiserror enums.
    for krate in [
        "vft-domain",
        "vft-store",
        "vft-ingest",
        "vft-api",
        "vft-sim",
        "vft-notify",
    ] {
        rule(
            uses(krate, "thiserror"),
            format!("{krate} has no thiserror: library crates use thiserror enums"),
        );
    }
    broken
}
