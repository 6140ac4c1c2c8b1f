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
    // The build directory is shared with this workspace's (and with the .deb build), so the
    // release build is paid once; nothing else differs from a newcomer's shell.
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
