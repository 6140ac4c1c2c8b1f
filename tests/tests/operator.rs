//! End to end: an operator's first hour. Credentials on `vft sim`, commands that must not
//! create a database, an unreachable database failing fast and by name, and logs fit for
//! journald (plain without a terminal, JSON on a switch).

mod support;

use std::time::Duration;
use support::*;

/// `vft sim --mqtt-url mqtt://user:pass@…` logs in to a broker with a password file, and a
/// wrong password is refused with a message naming the broker and the user, not the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_logs_in_with_the_urls_credentials_and_a_wrong_password_is_named() {
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    let scratch = Scratch::new();
    let (vft, broker) = serve(&scratch, Some(&mosquitto.broker), &[]);
    wait_ready(&vft.api).await;

    let url = broker.url();
    assert!(url.contains("vft:test-secret@"), "{url}");
    let out = vft_cli(
        &["sim", "--mqtt-url", &url, "--heartbeat-days", "90"],
        scratch.dir.path(),
    )
    .unwrap_or_else(|e| panic!("vft sim with the right password failed: {e}"));
    let events: u64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("published N events: {out}"));
    assert!(events > 1000, "{out}");
    let store = vft_store::open(&scratch.database_url(), &Default::default())
        .await
        .expect("open store");
    eventually(
        "the simulated events stored",
        Duration::from_secs(120),
        || async { (store.event_count().await.ok()? >= events).then_some(()) },
    )
    .await;

    let wrong = format!("mqtt://vft:not-the-secret@127.0.0.1:{}", broker.port);
    let err = vft_cli(&["sim", "--mqtt-url", &wrong], scratch.dir.path())
        .expect_err("a wrong password must fail");
    let port = broker.port.to_string();
    assert!(
        err.contains(&format!("127.0.0.1:{port}"))
            && err.contains("username or password")
            && err.contains("\"vft\""),
        "the error names the broker and the user: {err}"
    );
    assert!(
        !err.contains("not-the-secret"),
        "the password leaked: {err}"
    );
    drop(vft);
}

/// Commands other than `serve` and `demo`, run where there is no database, name the path they
/// looked at and create nothing (the default `sqlite://data/vft.db` is relative).
#[test]
fn commands_that_need_a_database_refuse_to_create_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let expected = dir
        .path()
        .canonicalize()
        .expect("canonical temp dir")
        .join("data/vft.db");
    let commands: [&[&str]; 5] = [
        &["token", "list"],
        &["token", "create", "--role", "coordinator", "--label", "ops"],
        &["devices", "list"],
        &[
            "reconcile",
            "--from",
            "hepro",
            "--to",
            "atea",
            "--at",
            "2025-12-31",
        ],
        &["backup", "copy.db"],
    ];
    for args in commands {
        let err = vft_cli(args, dir.path())
            .err()
            .unwrap_or_else(|| panic!("vft {args:?} succeeded without a database"));
        assert!(
            err.contains(&format!("no database at {}", expected.display()))
                && err.contains("vft serve"),
            "vft {args:?} must name the missing file: {err}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert!(left.is_empty(), "vft {args:?} created {left:?}");
    }
}

/// Runs `vft` with `args` and waits for it to exit within `bound`, polling; its stderr.
fn exits_within(args: &[&str], bound: Duration) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let stderr = dir.path().join("stderr");
    let mut child = std::process::Command::new(VFT)
        .args(args)
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env_remove("PGHOST")
        .env_remove("PGPORT")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("spawn vft");
    let deadline = std::time::Instant::now() + bound;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "vft {args:?} still running after {bound:?}; stderr so far: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(&stderr).expect("stderr"))
}

/// A PostgreSQL port where nothing listens, a socket directory that does not exist, and a
/// server that never answers: each fails within seconds, naming where it looked and not the
/// password. (No PostgreSQL is needed: nothing here reaches one.)
#[test]
fn an_unreachable_database_fails_within_seconds_naming_where() {
    let port = free_port();
    let url = format!("postgres://vft:hunter2@127.0.0.1:{port}/vft");
    let (status, err) = exits_within(
        &["token", "list", "--database-url", &url],
        Duration::from_secs(10),
    );
    assert!(!status.success());
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("refused"),
        "names the port: {err}"
    );
    assert!(!err.contains("hunter2"), "the password leaked: {err}");

    let url = "postgres://vft@localhost/vft?host=/nonexistent/vft-socket-dir";
    let (status, err) = exits_within(
        &["token", "list", "--database-url", url],
        Duration::from_secs(10),
    );
    assert!(!status.success());
    assert!(
        err.contains("/nonexistent/vft-socket-dir/.s.PGSQL.5432"),
        "names the socket: {err}"
    );

    // Accepts TCP connections (the kernel's backlog) but never speaks: the connect bound.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let url = format!("postgres://vft@127.0.0.1:{port}/vft");
    let mqtt = format!("127.0.0.1:{}", free_port());
    let (status, err) = exits_within(
        &[
            "serve",
            "--database-url",
            &url,
            "--http-addr",
            "127.0.0.1:0",
            "--mqtt-addr",
            &mqtt,
        ],
        Duration::from_secs(15),
    );
    assert!(!status.success());
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("no answer within 5 s"),
        "names the port and the bound: {err}"
    );
    drop(silent);
}

/// `vft serve` with stderr going to a file (not a terminal, as under systemd) and `RUST_LOG`
/// at info; stopped with SIGTERM once the API listens. Its stderr.
fn serve_log(extra_args: &[&str], env: &[(&str, &str)]) -> String {
    use std::io::BufRead;
    let scratch = Scratch::new();
    let stderr = scratch.dir.path().join("stderr");
    let db = scratch.database_url();
    let mqtt = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "serve",
        "--database-url",
        &db,
        "--http-addr",
        "127.0.0.1:0",
        "--mqtt-addr",
        &mqtt,
    ];
    args.extend_from_slice(extra_args);
    let mut child = std::process::Command::new(VFT)
        .args(&args)
        .current_dir(scratch.dir.path())
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("spawn vft");
    let stdout = child.stdout.take().expect("stdout");
    // Blocks until the line comes or vft exits (stdout closes); either way it ends.
    let listening = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("vft: API listening on "));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("vft did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(&stderr).expect("stderr");
    assert!(listening, "vft serve never listened: {log}");
    assert!(!log.trim().is_empty(), "no log at info level");
    log
}

/// Without a terminal the log has no colour codes (journald would store them raw); with
/// `--log-format json` or `VFT_LOG_FORMAT=json` every line is a JSON object.
#[test]
fn logs_are_plain_without_a_terminal_and_json_on_a_switch() {
    let text = serve_log(&[], &[]);
    assert!(
        !text.contains("\x1b["),
        "ANSI codes in a piped log: {text:?}"
    );
    assert!(text.contains("INFO"), "{text}");

    for (args, env) in [
        (&["--log-format", "json"][..], &[][..]),
        (&[][..], &[("VFT_LOG_FORMAT", "json")][..]),
    ] {
        let json = serve_log(args, env);
        for line in json.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
            assert!(
                v["level"].is_string() && v["timestamp"].is_string(),
                "{line}"
            );
        }
        assert!(!json.contains("\x1b["), "{json:?}");
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let shown =
        vft_cli(&["print-config", "--log-format", "json"], dir.path()).expect("print-config");
    assert!(shown.contains("log_format = \"json\""), "{shown}");
}

/// SIGTERM (or Ctrl-C) at any moment stops vft gracefully: while the demo is still loading it
/// stops the loading and exits 0, instead of dying of the signal because nobody was
/// listening for it yet.
#[test]
fn a_stop_signal_while_the_demo_loads_stops_it_gracefully() {
    let scratch = Scratch::new();
    let (mut demo, _broker) = spawn_vft(
        "demo",
        &scratch.database_url(),
        scratch.dir.path(),
        None,
        &[],
        &[],
    );
    // Printed before the demo starts publishing its year.
    demo.wait_for_line("vft: API listening", Duration::from_secs(120));
    let status = demo.terminate();
    assert!(status.success(), "vft demo stopped with {status}");
}
