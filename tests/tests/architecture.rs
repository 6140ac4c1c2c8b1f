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
        ("vft-app", "vft-api", "dependency direction"),
        ("vft-app", "axum", "only [\"vft-api\"] may"),
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
        "vft-app",
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
    // Dependency direction: domain ← store ← app ← api ← vft, store ← {ingest, notify} ← vft;
    // sim on domain only.
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
        ("vft-app", &["vft-domain", "vft-store"][..]),
        ("vft-api", &["vft-app", "vft-domain", "vft-store"][..]),
        ("vft-sim", &["vft-domain"][..]),
        ("vft-notify", &["vft-domain", "vft-store"][..]),
        (
            "vft",
            &[
                "vft-api",
                "vft-app",
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
        "vft-app",
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

/// One crate's modules (the first path segment under `src/`) and which others each names with
/// a `crate::` path, in code or attributes (comments are left out). The crate root is not a
/// node: it composes the modules (declares them, builds the router, holds shared state), and
/// a name of its own that a module uses is an edge to no module.
fn module_graph(src: &std::path::Path) -> BTreeMap<String, BTreeSet<String>> {
    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    sources(src, &mut files);
    let module_of = |path: &std::path::Path| -> Option<String> {
        let first = path.strip_prefix(src).ok()?.components().next()?;
        let name = first.as_os_str().to_str()?.trim_end_matches(".rs");
        (!matches!(name, "lib" | "main")).then(|| name.to_owned())
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for file in &files {
        let Some(from) = module_of(file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        let code: String = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let named: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .collect(),
                None => vec![rest],
            };
            for path in named {
                let first: String = path
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if modules.contains(&first) && first != from {
                    graph.get_mut(&from).expect("module").insert(first);
                }
            }
        }
    }
    graph
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}

/// Below each crate's root, modules import each other in one direction only, so each can be
/// read knowing only what it names (the API's `auth` once needed `audit`, which needed `auth`).
#[test]
fn no_crate_has_an_import_circle_between_its_modules() {
    let crates = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../crates"));
    let mut checked = 0;
    for entry in std::fs::read_dir(crates).expect("crates") {
        let src = entry.expect("entry").path().join("src");
        let graph = module_graph(&src);
        checked += graph.len();
        if let Some(found) = cycle(&graph) {
            panic!(
                "{}: modules import each other in a circle: {}",
                src.display(),
                found.join(" → ")
            );
        }
    }
    assert!(
        checked > 40,
        "only {checked} modules found: is the path right?"
    );
}

/// The circle check can fail: the API's real graph with one edge back is caught.
#[test]
fn the_circle_check_notices_a_circle() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/vft-api/src");
    let mut graph = module_graph(std::path::Path::new(src));
    assert!(
        graph["audit"].contains("auth") && graph["auth"].contains("audit_slot"),
        "the API's graph is not what this test expects: {graph:?}"
    );
    assert_eq!(cycle(&graph), None);
    graph
        .get_mut("audit_slot")
        .expect("module")
        .insert("audit".into());
    let found = cycle(&graph).expect("the added edge closes a circle");
    assert!(
        found.contains(&"audit".to_owned()) && found.contains(&"audit_slot".to_owned()),
        "{found:?}"
    );
}

/// Reads of the clock in `src` (test modules included: a rule's tests pass their instants too).
fn clock_reads(src: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                if ["Utc::now", "Local::now", "SystemTime::now", "Instant::now"]
                    .iter()
                    .any(|c| code.contains(c))
                {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

/// The domain's rules and the store's writes take "now" from their caller, so a test (or a
/// replay) decides what time it is, and no figure depends on when it was asked.
#[test]
fn the_domain_and_the_store_read_no_clock() {
    let crates = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates");
    for krate in ["vft-domain", "vft-store"] {
        let src = std::path::Path::new(crates).join(krate).join("src");
        let found = clock_reads(&src);
        assert!(
            found.is_empty(),
            "{krate} reads the clock; take the time as a parameter:\n{}",
            found.join("\n")
        );
    }
    // The check can fail: the API reads the clock at its edge.
    let api = std::path::Path::new(crates).join("vft-api").join("src");
    assert!(!clock_reads(&api).is_empty());
}

/// What the command line may name of the HTTP crate: the parts that compose the server. Every
/// use case it runs is `vft-app`'s (ARCHITECTURE.md, dependency direction; decision 0021).
const CLI_MAY_NAME_OF_THE_API: &[&str] = &[
    "AppState",
    "SessionSettings",
    "serve",
    "serve_tls",
    "audit",
    "oidc",
    "oidc_sign_in",
    "throttle",
];

/// The `vft_api::…` paths in `code` (comments left out) whose first segment the command line
/// may not name; a group (`vft_api::{a, b}`) is each of its items.
fn forbidden_api_paths(code: &str) -> Vec<String> {
    let code: String = code
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    for (at, _) in code.match_indices("vft_api::") {
        let rest = &code[at + "vft_api::".len()..];
        let named: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group
                .split('}')
                .next()
                .unwrap_or_default()
                .split(',')
                .collect(),
            None => vec![rest],
        };
        for path in named {
            let first: String = path
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !first.is_empty() && !CLI_MAY_NAME_OF_THE_API.contains(&first.as_str()) {
                found.push(format!("vft_api::{first}"));
            }
        }
    }
    found
}

/// The command line reaches `vft-api` only to compose the server: a use case called through
/// the HTTP crate would bring its errors (a bare "internal error") back to the console.
#[test]
fn the_command_line_calls_use_cases_not_the_api() {
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/vft/src"
    ))];
    let mut found = Vec::new();
    let mut files = 0;
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read crates/vft/src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files += 1;
                let text = std::fs::read_to_string(&path).expect("read source");
                for p in forbidden_api_paths(&text) {
                    found.push(format!("{}: {p}", path.display()));
                }
            }
        }
    }
    assert!(files > 5, "only {files} files found: is the path right?");
    assert!(
        found.is_empty(),
        "the CLI names vft-api beyond composing the server (call vft_app instead):\n{}",
        found.join("\n")
    );
    // The check can fail.
    assert_eq!(
        forbidden_api_paths("let r = vft_api::report::render_report(&s).await?; // vft_api::x"),
        ["vft_api::report"]
    );
    assert_eq!(
        forbidden_api_paths("use vft_api::{throttle, devices::DeviceView};"),
        ["vft_api::devices"]
    );
    assert!(forbidden_api_paths("vft_api::serve(listener, state, stop)").is_empty());
}
