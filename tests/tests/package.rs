//! End to end: the Debian package. Builds it with scripts/build-deb, installs it with dpkg,
//! runs the installed binary as the `vft` user with the installed configuration, and purges it.
//! Needs root (dpkg -i); required in CI, skipped loudly elsewhere.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Purges the package even when an assertion fails, so a failed run leaves no install behind.
struct Purge;

/// Stops the installed vft if the test fails while it runs.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Purge {
    fn drop(&mut self) {
        if installed("vft") {
            let _ = Command::new("dpkg").args(["--purge", "vft"]).status();
        }
    }
}

#[test]
fn the_debian_package_installs_runs_as_vft_and_purges() {
    // `id -u` rather than geteuid(): the workspace denies unsafe code.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let dpkg = Command::new("dpkg-deb").arg("--version").output().is_ok();
    if !root || !dpkg {
        assert!(
            !in_ci(),
            "the package test needs root and dpkg-deb in CI (root: {root}, dpkg-deb: {dpkg})"
        );
        eprintln!(
            "\n!!! SKIPPING package test: it installs a .deb system-wide and needs root and dpkg-deb (root: {root}, dpkg-deb: {dpkg})\n"
        );
        return;
    }
    // Never purge an operator's real installation.
    assert!(
        !installed("vft"),
        "a vft package is installed on this machine; the package test would purge it. Remove it first (dpkg --purge vft)."
    );
    let user_before = Command::new("getent")
        .args(["passwd", "vft"])
        .status()
        .is_ok_and(|s| s.success());
    let data_before = std::path::Path::new("/var/lib/vft").exists();

    let started = Instant::now();
    let out = run(Command::new("bash")
        .arg(workspace_root().join("scripts/build-deb"))
        .current_dir(workspace_root())
        .stderr(Stdio::inherit()));
    let deb = out.lines().last().expect("the .deb path").trim().to_owned();
    eprintln!("build-deb took {:?}: {deb}", started.elapsed());
    let arch = run(Command::new("dpkg").arg("--print-architecture"));
    assert!(
        deb.ends_with(&format!(
            "/debian/vft_{}_{}.deb",
            env!("CARGO_PKG_VERSION"),
            arch.trim()
        )),
        "{deb}"
    );
    let contents = run(Command::new("dpkg-deb").args(["--contents", &deb]));
    for path in [
        "./usr/bin/vft",
        "./usr/lib/systemd/system/vft.service",
        "./etc/vft/vft.toml",
    ] {
        assert!(
            contents.contains(path),
            "{path} missing from the package:\n{contents}"
        );
    }
    let conffiles = run(Command::new("dpkg-deb").args(["--info", &deb, "conffiles"]));
    assert_eq!(conffiles.trim(), "/etc/vft/vft.toml");

    let _purge = Purge;
    run(Command::new("dpkg").args(["-i", &deb]));
    let version = run(Command::new("/usr/bin/vft").arg("--version"));
    assert_eq!(version.trim(), format!("vft {}", env!("CARGO_PKG_VERSION")));
    let uid: u32 = run(Command::new("id").args(["-u", "vft"]))
        .trim()
        .parse()
        .expect("uid of vft");
    let gid: u32 = run(Command::new("id").args(["-g", "vft"]))
        .trim()
        .parse()
        .expect("gid of vft");
    assert_ne!(uid, 0, "vft is not root");
    let meta = std::fs::metadata("/var/lib/vft").expect("/var/lib/vft");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        uid,
        "/var/lib/vft belongs to vft"
    );
    let unit = std::fs::read_to_string("/usr/lib/systemd/system/vft.service").expect("unit");
    assert!(
        unit.contains("\nExecStart=/usr/bin/vft serve --config /etc/vft/vft.toml\n")
            && unit.contains("\nUser=vft\n"),
        "{unit}"
    );
    let config =
        run(Command::new("/usr/bin/vft").args(["print-config", "--config", "/etc/vft/vft.toml"]));
    assert!(
        config.contains("database_url = \"sqlite:///var/lib/vft/vft.db\""),
        "{config}"
    );

    // The installed binary and configuration, as the vft user; only the database and the
    // ports differ, so nothing clashes with anything on this machine.
    let scratch = tempfile::tempdir().expect("temp dir");
    run(Command::new("chown").arg("vft:vft").arg(scratch.path()));
    let db = format!("sqlite://{}/vft.db", scratch.path().display());
    let mqtt = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new("/usr/bin/vft")
        .args([
            "serve",
            "--config",
            "/etc/vft/vft.toml",
            "--database-url",
            &db,
        ])
        .args(["--http-addr", "127.0.0.1:0", "--mqtt-addr", &mqtt])
        .current_dir(scratch.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .uid(uid)
        .gid(gid)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the installed vft");
    let stdout = child.stdout.take().expect("stdout");
    let mut child = Running(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let api = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix("vft: API listening on ") {
                    break url.trim().to_owned();
                }
            }
            Err(e) => panic!("the installed vft did not listen within 60 s: {e}"),
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(eventually("healthz", Duration::from_secs(30), || async {
        (get(&format!("{api}/healthz"), None).await.status() == 200).then_some(())
    }));
    assert!(
        scratch.path().join("vft.db").exists(),
        "the vft user created its database"
    );
    run(Command::new("kill").args(["-TERM", &child.0.id().to_string()]));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "vft did not stop within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "vft stopped with {status}");

    run(Command::new("dpkg").args(["--purge", "vft"]));
    assert!(!installed("vft"));
    assert!(!std::path::Path::new("/usr/bin/vft").exists());
    assert!(!std::path::Path::new("/etc/vft/vft.toml").exists());
    // Purging keeps the data and the user (see scripts/build-deb); this test created them, so
    // it removes them.
    if !data_before {
        let _ = std::fs::remove_dir_all("/var/lib/vft");
    }
    if !user_before {
        run(Command::new("userdel").arg("vft"));
        // userdel removes the user's own group where USERGROUPS_ENAB is on (Debian's default).
        let group_left = Command::new("getent")
            .args(["group", "vft"])
            .status()
            .is_ok_and(|s| s.success());
        if group_left {
            run(Command::new("groupdel").arg("vft"));
        }
    }
}
