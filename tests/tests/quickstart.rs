//! The README's quick start, run exactly as written: its first command, taken from the README
//! itself, in a fresh clone of this repository (no `../shared`, nothing left over from a
//! build in the working tree), must serve the 2025 Hallingdal table. Its second command must
//! be what CI runs.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;
use support::{VftProcess, get_json, in_ci, workspace_root};
use vft_domain::{DeviceTable, TechnologyKind};

/// The shell commands of the README's "Quick start" section, in order.
fn quick_start_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README");
    let section = readme
        .split("\n## Quick start")
        .nth(1)
        .expect("a Quick start section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    let mut commands = Vec::new();
    let mut in_block = false;
    for line in section.lines() {
        match line.trim() {
            "```sh" => in_block = true,
            "```" => in_block = false,
            l if in_block && !l.is_empty() && !l.starts_with('#') && !l.starts_with("curl") => {
                commands.push(l.to_owned())
            }
            _ => {}
        }
    }
    commands
}

#[test]
fn ci_runs_the_readmes_test_command() {
    let commands = quick_start_commands();
    assert_eq!(
        commands.len(),
        2,
        "the quick start has a main command and a test command: {commands:?}"
    );
    let ci = std::fs::read_to_string(workspace_root().join(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == commands[1]),
        ".ci/run does not run the README's test command {:?}",
        commands[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_main_command_serves_the_table_on_a_fresh_clone() {
    let main_command = quick_start_commands()
        .into_iter()
        .next()
        .expect("the main command");
    let scratch = tempfile::tempdir().expect("temp dir");
    let clone = scratch.path().join("vft");
    let cloned = Command::new("git")
        .args(["clone", "--quiet"])
        .arg(workspace_root())
        .arg(&clone)
        .status();
    match cloned {
        Ok(s) if s.success() => {}
        other => {
            assert!(!in_ci(), "cannot clone the repository: {other:?}");
            eprintln!("\n!!! SKIPPING the quick-start test: cannot git clone ({other:?})\n");
            return;
        }
    }
    // The build directory is shared with this workspace's (and with the .deb build), and the
    // clone's unchanged files carry the working tree's mtimes, so the release build is paid
    // once. The command and the clone's contents are a newcomer's.
    let carried = carry_build_times(&workspace_root(), &clone);
    eprintln!("quick start: {carried} files of the clone carry the working tree's mtimes");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    let mut command = Command::new("sh");
    command
        .args(["-c", &format!("exec {main_command}")])
        .current_dir(&clone)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUST_LOG")
        .env_remove("VFT_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // A release build from scratch takes minutes on two cores.
    let mut demo = VftProcess::spawn_command(&mut command, Duration::from_secs(40 * 60));
    let token_line = demo.wait_for_line("vft: token", Duration::from_secs(10 * 60));
    let token = token_line
        .trim_start_matches("vft: token")
        .trim()
        .to_owned();
    let fixture = DeviceTable::from_csv(
        &std::fs::read_to_string(
            workspace_root().join("crates/vft-sim/data/hallingdal-vft-2025.csv"),
        )
        .expect("fixture"),
    )
    .expect("fixture table");
    let served: DeviceTable = serde_json::from_value(
        get_json(
            &format!("{}/api/v1/rollups/devices?year=2025", demo.api),
            &token,
        )
        .await,
    )
    .expect("table shape");
    for kind in TechnologyKind::ALL {
        for m in 0..12 {
            assert_eq!(
                served.cell(kind, m),
                fixture.cell(kind, m),
                "{kind:?} month {}",
                m + 1
            );
        }
    }
    // The demo's database sits in the clone's ./data, as the README says.
    assert!(clone.join("data/vft.db").is_file());
    assert!(demo.terminate().success());
}

/// Cargo judges a workspace crate stale by its sources' mtimes, and every file of a fresh clone
/// is newer than the shared build directory's release build (made by the package test, or an
/// earlier run, from the same sources): all workspace crates would be compiled again, 4½
/// minutes of CI on two cores. A file the clone holds byte for byte like the working tree
/// takes the working tree's mtime (directories too: a build script may watch one); a file that
/// differs, an uncommitted edit, keeps its fresh mtime, so cargo rebuilds what it must and the
/// demo still runs what was committed.
fn carry_build_times(tree: &std::path::Path, clone: &std::path::Path) -> usize {
    let listed = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(clone)
        .output()
        .expect("git ls-files in the clone");
    assert!(listed.status.success(), "git ls-files: {listed:?}");
    let mut carried = 0;
    let mut directories = std::collections::BTreeSet::new();
    for name in listed.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::path::Path::new(std::str::from_utf8(name).expect("a UTF-8 path"));
        directories.extend(
            name.ancestors()
                .skip(1)
                .filter(|d| !d.as_os_str().is_empty()),
        );
        let (ours, theirs) = (tree.join(name), clone.join(name));
        let Ok(meta) = std::fs::symlink_metadata(&ours) else {
            continue;
        };
        if !meta.is_file() || std::fs::read(&ours).ok() != std::fs::read(&theirs).ok() {
            continue;
        }
        set_mtime(&theirs, &meta);
        carried += 1;
    }
    for directory in directories {
        if let Ok(meta) = std::fs::metadata(tree.join(directory)) {
            set_mtime(&clone.join(directory), &meta);
        }
    }
    carried
}

fn set_mtime(path: &std::path::Path, like: &std::fs::Metadata) {
    let modified = like.modified().expect("mtime");
    // A directory opens read-only; futimens needs ownership, not write access.
    let file = if like.is_dir() {
        std::fs::File::open(path)
    } else {
        std::fs::File::options().write(true).open(path)
    };
    file.and_then(|f| f.set_modified(modified))
        .unwrap_or_else(|e| panic!("set the mtime of {}: {e}", path.display()));
}
