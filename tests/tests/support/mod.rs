//! Real parts for the end-to-end tests: the vft binary as a child process, Mosquitto started
//! from deploy/mosquitto/mosquitto.conf, an MQTT publisher that records PUBACKs, and HTTP.

#![allow(dead_code)]

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const VFT: &str = env!("CARGO_BIN_EXE_vft-e2e");

/// What every spawned vft gets unless the test sets it itself: the tests' gateways publish to
/// the embedded listener on loopback without credentials (`tests/tests/mqtt_perimeter.rs`
/// turns it off).
pub const ALLOW_ANONYMOUS: (&str, &str) = ("VFT_MQTT__ALLOW_ANONYMOUS", "true");

/// [`ALLOW_ANONYMOUS`] for `binary`, unless it is a build from before the key existed (a
/// benchmark's `--baseline`), which would refuse it as an unknown key.
fn allow_anonymous(binary: &Path) -> Option<(&'static str, &'static str)> {
    static KNOWN: std::sync::OnceLock<std::sync::Mutex<HashMap<PathBuf, bool>>> =
        std::sync::OnceLock::new();
    let known = KNOWN.get_or_init(Default::default);
    let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
    let knows = *known.entry(binary.to_path_buf()).or_insert_with(|| {
        Command::new(binary)
            .arg("print-config")
            .env_remove("VFT_CONFIG")
            .current_dir(std::env::temp_dir())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("allow_anonymous"))
    });
    knows.then_some(ALLOW_ANONYMOUS)
}

/// The binary `VftProcess` starts: this package's vft, unless a benchmark compares another
/// build (e.g. an older release) and set it with [`use_binary`].
static BINARY: std::sync::OnceLock<std::sync::Mutex<PathBuf>> = std::sync::OnceLock::new();

fn binary() -> PathBuf {
    BINARY
        .get_or_init(|| std::sync::Mutex::new(PathBuf::from(VFT)))
        .lock()
        .map(|p| p.clone())
        .unwrap_or_else(|_| PathBuf::from(VFT))
}

/// Makes later spawns run `path` instead of this package's vft (benchmarks only).
pub fn use_binary(path: &Path) {
    let slot = BINARY.get_or_init(|| std::sync::Mutex::new(PathBuf::from(VFT)));
    if let Ok(mut p) = slot.lock() {
        *p = path.to_path_buf();
    }
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `check` until it returns Some or the timeout passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A scratch directory and a fresh database: a SQLite file in the directory, or a fresh
/// PostgreSQL database (`Scratch::postgres`).
pub struct Scratch {
    pub dir: tempfile::TempDir,
    postgres_url: Option<String>,
}

impl Scratch {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            postgres_url: None,
        }
    }

    /// `None` (loudly) only outside CI when no PostgreSQL can be started.
    pub async fn postgres() -> Option<Self> {
        let url = vft_testkit::postgres_database_url().await?;
        Some(Self {
            dir: tempfile::tempdir().expect("temp dir"),
            postgres_url: Some(url),
        })
    }

    pub fn database_url(&self) -> String {
        self.postgres_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.dir.path().join("vft.db").display()))
    }
}

/// Runs `vft …` to completion and returns stdout; panics with stderr on failure.
pub fn vft_cli(args: &[&str], cwd: &Path) -> Result<String, String> {
    let out = Command::new(VFT)
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .output()
        .expect("run vft");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `vft token create …`: the token is the last line of stdout.
pub fn create_token(database_url: &str, cwd: &Path, role_args: &[&str]) -> String {
    let mut args = vec!["token", "create", "--database-url", database_url];
    args.extend_from_slice(role_args);
    // A token needs a label (who holds it); tests that do not care get one.
    if !role_args.contains(&"--label") {
        args.extend(["--label", "test"]);
    }
    let out = vft_cli(&args, cwd).unwrap_or_else(|e| panic!("token create failed: {e}"));
    out.lines().last().expect("a token line").trim().to_owned()
}

/// `vft user create USERNAME ROLE_ARGS --password-stdin`, with `password` written to its
/// stdin: a personal account that signs in to the dashboard with that password.
pub fn create_user(
    database_url: &str,
    cwd: &Path,
    username: &str,
    role_args: &[&str],
    password: &str,
) {
    use std::io::Write;
    let mut child = Command::new(VFT)
        .args(["user", "create", username, "--database-url", database_url])
        .args(role_args)
        .arg("--password-stdin")
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vft user create");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("vft user create");
    assert!(
        out.status.success(),
        "user create {username} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The dashboard account `vft demo` printed (`vft: dashboard URL  (sign in as USER, password
/// PASSWORD)`): (username, password). [`demo`] has waited past that line.
pub fn demo_account(demo: &VftProcess) -> (String, String) {
    let line = demo
        .seen
        .iter()
        .find(|l| l.starts_with("vft: dashboard "))
        .unwrap_or_else(|| panic!("no dashboard line in {:?}", demo.seen));
    let (username, password) = line
        .split_once("(sign in as ")
        .and_then(|(_, rest)| rest.trim_end().strip_suffix(')'))
        .and_then(|rest| rest.split_once(", password "))
        .unwrap_or_else(|| panic!("no account in {line:?}"));
    (username.trim().to_owned(), password.trim().to_owned())
}

/// `vft serve`/`vft demo` as a child process; stdout lines are collected as they come.
pub struct VftProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    pub api: String,
}

impl VftProcess {
    pub fn spawn(args: &[&str], cwd: &Path) -> Self {
        Self::spawn_with_env(args, cwd, &[])
    }

    /// Like `spawn`, with extra environment variables for the child (e.g. `VFT_CONNECTIVITY__…`
    /// configuration), so tests never touch the test process's own environment.
    ///
    /// The tests' gateways publish without credentials to the embedded listener on loopback, so
    /// `mqtt.allow_anonymous` is on unless `envs` says otherwise (`VFT_MQTT__ALLOW_ANONYMOUS`).
    pub fn spawn_with_env(args: &[&str], cwd: &Path, envs: &[(&str, &str)]) -> Self {
        let mut command = Command::new(binary());
        command
            .args(args)
            .current_dir(cwd)
            .env("RUST_LOG", "warn")
            .envs(allow_anonymous(&binary()))
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        Self::spawn_command(&mut command, Duration::from_secs(60))
    }

    /// Any command that ends up running vft (e.g. the README's `cargo run …`), waiting up to
    /// `timeout` for its API line.
    pub fn spawn_command(command: &mut Command, timeout: Duration) -> Self {
        let mut child = command.spawn().expect("spawn vft");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = Self {
            child,
            lines,
            seen: Vec::new(),
            api: String::new(),
        };
        let line = p.wait_for_line("vft: API listening on ", timeout);
        p.api = line
            .trim_start_matches("vft: API listening on ")
            .trim()
            .to_owned();
        p
    }

    /// Waits for a stdout line starting with `prefix` and returns it.
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.starts_with(prefix)) {
            return l.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "no line starting with {prefix:?} within {timeout:?} (exit: {status:?}); saw {:?}",
                        self.seen
                    )
                }
            }
        }
    }

    /// The vft child's process id (e.g. for `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no cleanup at all, as in a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "vft did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for VftProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The broker a test publishes through.
#[derive(Clone)]
pub struct BrokerUnderTest {
    pub port: u16,
    pub credentials: Option<(String, String)>,
}

impl BrokerUnderTest {
    /// The `--mqtt-url` vft connects with.
    pub fn url(&self) -> String {
        match &self.credentials {
            Some((u, p)) => format!("mqtt://{u}:{p}@127.0.0.1:{}", self.port),
            None => format!("mqtt://127.0.0.1:{}", self.port),
        }
    }
}

/// Mosquitto from Debian's package, with the production configuration from deploy/: the
/// loopback listener (`broker`), the TLS listener (`tls_port`, with a throwaway CA: `ca_file`),
/// the password file and the ACL (deploy/mosquitto/vft.acl).
pub struct Mosquitto {
    child: Child,
    pub broker: BrokerUnderTest,
    /// The TLS listener's port (deploy's 8883), on 127.0.0.1.
    pub tls_port: u16,
    /// The CA that signed the TLS listener's certificate (for 127.0.0.1 and localhost).
    pub ca_file: PathBuf,
    dir: tempfile::TempDir,
}

/// The ACL lines the tests append to deploy/mosquitto/vft.acl: the tests' publishers log in as
/// the `vft` user (one login for every vendor they play), which production's `vft` user cannot
/// write with. The gateway users of `tests/tests/mqtt_perimeter.rs` get the shipped rules only.
const TEST_ONLY_ACL: &str = "\n# Test only (tests/tests/support/mod.rs): the tests' publishers log in as vft.\nuser vft\ntopic write #\n";

/// A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost, as PEM files
/// in `dir`: (CA certificate, server certificate, server key).
pub fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "vft test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).expect("write CA");
    std::fs::write(&paths.1, cert.pem()).expect("write certificate");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write key");
    for p in [&paths.0, &paths.1, &paths.2] {
        // Mosquitto reads them after dropping root privileges.
        Command::new("chmod")
            .arg("644")
            .arg(p)
            .status()
            .expect("chmod");
    }
    paths
}

/// `mosquitto_pub` / `mosquitto_sub` (Debian's mosquitto-clients): `None` (loudly) only outside
/// CI when they are not installed.
pub fn mosquitto_client(name: &str) -> Option<PathBuf> {
    let found = mosquitto_bin(name);
    if found.is_none() {
        assert!(
            !in_ci(),
            "{name} is required in CI (.ci/run installs mosquitto-clients)"
        );
        eprintln!("\n!!! SKIPPING: {name} is not installed (apt-get install mosquitto-clients)\n");
    }
    found
}

fn mosquitto_bin(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

impl Mosquitto {
    /// `None` (with a loud message) only outside CI when Mosquitto is not installed.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// Like `start`, with some settings of the deploy configuration replaced (`key value`
    /// lines; a key the file lacks is appended), e.g. to measure another persistence setting.
    pub fn start_with(settings: &[(&str, &str)]) -> Option<Self> {
        Self::start_with_users(settings, &[])
    }

    /// Like `start_with`, with gateway users (name, password) in the password file beside vft.
    pub fn start_with_users(settings: &[(&str, &str)], users: &[(&str, &str)]) -> Option<Self> {
        let Some(bin) = mosquitto_bin("mosquitto") else {
            assert!(
                !in_ci(),
                "Mosquitto is required in CI (.ci/run installs it)"
            );
            eprintln!(
                "\n!!! SKIPPING Mosquitto test: mosquitto is not installed (apt-get install mosquitto)\n"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        // Mosquitto drops root privileges to its own user; let that user write here.
        Command::new("chmod")
            .arg("777")
            .arg(dir.path())
            .status()
            .expect("chmod");
        let port = free_port();
        let passwd = dir.path().join("vft.passwd");
        let (user, password) = ("vft".to_owned(), "test-secret".to_owned());
        let status = Command::new(mosquitto_bin("mosquitto_passwd").expect("mosquitto_passwd"))
            .args(["-c", "-b"])
            .arg(&passwd)
            .args([&user, &password])
            .status()
            .expect("mosquitto_passwd");
        assert!(status.success(), "mosquitto_passwd failed");
        for (user, password) in users {
            let status = Command::new(mosquitto_bin("mosquitto_passwd").expect("mosquitto_passwd"))
                .arg("-b")
                .arg(&passwd)
                .args([user, password])
                .status()
                .expect("mosquitto_passwd");
            assert!(status.success(), "mosquitto_passwd {user} failed");
        }
        Command::new("chmod")
            .arg("644")
            .arg(&passwd)
            .status()
            .expect("chmod");
        let acl = dir.path().join("vft.acl");
        let shipped = std::fs::read_to_string(workspace_root().join("deploy/mosquitto/vft.acl"))
            .expect("deploy ACL");
        std::fs::write(&acl, shipped + TEST_ONLY_ACL).expect("write ACL");
        Command::new("chmod")
            .arg("644")
            .arg(&acl)
            .status()
            .expect("chmod");
        let (ca_file, cert_file, key_file) = test_ca(dir.path());
        let tls_port = free_port();

        let production =
            std::fs::read_to_string(workspace_root().join("deploy/mosquitto/mosquitto.conf"))
                .expect("deploy config");
        let mut swapped = 0;
        let conf: String = production
            .lines()
            .map(|line| {
                let key = line.split_whitespace().next().unwrap_or("");
                let replaced = match (key, line.split_whitespace().nth(1)) {
                    ("listener", Some("1883")) => Some(format!("listener {port} 127.0.0.1")),
                    ("listener", Some("8883")) => Some(format!("listener {tls_port} 127.0.0.1")),
                    ("acl_file", _) => Some(format!("acl_file {}", acl.display())),
                    ("certfile", _) => Some(format!("certfile {}", cert_file.display())),
                    ("keyfile", _) => Some(format!("keyfile {}", key_file.display())),
                    _ => None,
                };
                let replaced = replaced.or_else(|| match key {
                    "persistence_location" => {
                        Some(format!("persistence_location {}/", dir.path().display()))
                    }
                    "password_file" => Some(format!("password_file {}", passwd.display())),
                    _ => None,
                });
                swapped += usize::from(replaced.is_some());
                replaced.unwrap_or_else(|| line.to_owned()) + "\n"
            })
            .collect();
        assert_eq!(
            swapped, 7,
            "deploy/mosquitto/mosquitto.conf lost (or repeats) a line the tests swap"
        );
        assert!(
            conf.contains("\nmax_queued_messages 1000000\n"),
            "the queue must be sized (see DESIGN.md traps)"
        );
        let mut conf = conf;
        for (key, value) in settings {
            let mut found = false;
            conf = conf
                .lines()
                .map(|line| {
                    let replace = line.split_whitespace().next() == Some(*key);
                    found |= replace;
                    if replace {
                        format!("{key} {value}\n")
                    } else {
                        format!("{line}\n")
                    }
                })
                .collect();
            if !found {
                conf.push_str(&format!("{key} {value}\n"));
            }
        }
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf).expect("write conf");
        // Mosquitto's log goes to a file, shown if the test fails.
        let log = std::fs::File::create(dir.path().join("mosquitto.log")).expect("log file");
        let child = spawn_mosquitto(&bin, &conf_path, log, port);
        Some(Self {
            child,
            broker: BrokerUnderTest {
                port,
                credentials: Some((user, password)),
            },
            tls_port,
            ca_file,
            dir,
        })
    }
}

/// Starts Mosquitto with `conf` and waits until it listens on `port`.
fn spawn_mosquitto(bin: &Path, conf: &Path, log: std::fs::File, port: u16) -> Child {
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start mosquitto");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("mosquitto exited before listening on {port}: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Faults and restarts, for the broker fault tests.
impl Mosquitto {
    /// SIGKILL: Mosquitto stops dead, saving nothing (as in a crash or an OOM kill).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit (Mosquitto saves its database on the way out).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts Mosquitto again after `kill` or `terminate`: same port, configuration, password
    /// file and persistence directory (so it loads what it last saved). Its log continues.
    pub fn restart(&mut self) {
        assert!(
            self.child.try_wait().expect("wait").is_some(),
            "restart: mosquitto is still running"
        );
        let bin = mosquitto_bin("mosquitto").expect("mosquitto");
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("mosquitto.log"))
            .expect("log file");
        self.child = spawn_mosquitto(
            &bin,
            &self.dir.path().join("mosquitto.conf"),
            log,
            self.broker.port,
        );
    }

    /// The persistence database (`mosquitto.db` in the persistence directory); absent until
    /// Mosquitto first saved.
    pub fn persistence_file(&self) -> PathBuf {
        self.dir.path().join("mosquitto.db")
    }

    /// The running Mosquitto's process id (e.g. for `/proc/PID/io`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Mosquitto's log so far (all runs since `start`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        show_if_panicking("mosquitto log", &self.dir.path().join("mosquitto.log"));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes with QoS 1 and reports which messages the broker acknowledged (PUBACK).
pub struct Publisher {
    client: AsyncClient,
    acked: tokio::sync::watch::Receiver<Vec<usize>>,
    sent: usize,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    pub async fn connect(broker: &BrokerUnderTest, client_id: &str) -> Self {
        Self::connect_with_inflight(broker, client_id, 50).await
    }

    pub async fn connect_with_inflight(
        broker: &BrokerUnderTest,
        client_id: &str,
        inflight: u16,
    ) -> Self {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", broker.port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(2 << 20, 2 << 20)
            .set_inflight(inflight);
        if let Some((u, p)) = &broker.credentials {
            options.set_credentials(u, p);
        }
        Self::from_options(options).await
    }

    /// A publisher with options of the caller's (e.g. TLS: `options.set_transport(…)`).
    pub async fn from_options(options: MqttOptions) -> Self {
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, acked) = tokio::sync::watch::channel(Vec::new());
        // Outgoing publishes are numbered in the order they leave; a PUBACK names the packet id.
        let task = tokio::spawn(async move {
            let mut next = 0usize;
            let mut inflight: HashMap<u16, usize> = HashMap::new();
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        inflight.insert(pkid, next);
                        next += 1;
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some(i) = inflight.remove(&ack.pkid) {
                            tx.send_modify(|v| v.push(i));
                        }
                    }
                    Ok(_) => {}
                    // The tests keep brokers up while publishing; an error ends this publisher.
                    Err(_) => return,
                }
            }
        });
        Self {
            client,
            acked,
            sent: 0,
            task,
        }
    }

    pub async fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .expect("queue publish");
        self.sent += 1;
    }

    /// Like `publish`, but false instead of a panic once the connection is gone (a killed
    /// server): the messages queued so far keep their numbers.
    pub async fn try_publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) -> bool {
        let queued = self
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .is_ok();
        self.sent += usize::from(queued);
        queued && !self.task.is_finished()
    }

    /// Whether the connection ended (the publisher does not reconnect).
    pub fn is_closed(&self) -> bool {
        self.task.is_finished()
    }

    /// Indices (in publish order) of the messages the broker has acknowledged so far.
    pub fn acked(&self) -> Vec<usize> {
        self.acked.borrow().clone()
    }

    pub async fn wait_all_acked(&mut self, timeout: Duration) {
        let want = self.sent;
        let mut rx = self.acked.clone();
        tokio::time::timeout(timeout, rx.wait_for(|v| v.len() >= want))
            .await
            .unwrap_or_else(|_| {
                panic!("broker acknowledged fewer than {want} messages within {timeout:?}")
            })
            .expect("publisher alive");
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

pub async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("HTTP request")
}

pub async fn get_json(url: &str, token: &str) -> serde_json::Value {
    let resp = get(url, Some(token)).await;
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.json().await.expect("JSON body")
}

/// `vft <command>` (`serve` or `demo`) on free ports with `database_url`, run in `cwd`, on the
/// embedded broker or an external one, with extra arguments (e.g. `--config`) and environment
/// (e.g. `VFT_CONNECTIVITY__…`) for the child only.
pub fn spawn_vft(
    command: &str,
    database_url: &str,
    cwd: &Path,
    external: Option<&BrokerUnderTest>,
    extra_args: &[&str],
    env: &[(&str, &str)],
) -> (VftProcess, BrokerUnderTest) {
    let mqtt_port = free_port();
    let mqtt_addr = format!("127.0.0.1:{mqtt_port}");
    let mut args = vec![
        command,
        "--http-addr",
        "127.0.0.1:0",
        "--database-url",
        database_url,
    ];
    args.extend_from_slice(extra_args);
    let url;
    let broker = match external {
        Some(b) => {
            url = b.url();
            args.extend(["--mqtt-url", &url]);
            b.clone()
        }
        None => {
            args.extend(["--mqtt-addr", &mqtt_addr]);
            BrokerUnderTest {
                port: mqtt_port,
                credentials: None,
            }
        }
    };
    let vft = VftProcess::spawn_with_env(&args, cwd, env);
    (vft, broker)
}

/// `vft serve` on free ports with the scratch's database (see [`spawn_vft`]).
pub fn serve(
    scratch: &Scratch,
    external: Option<&BrokerUnderTest>,
    env: &[(&str, &str)],
) -> (VftProcess, BrokerUnderTest) {
    spawn_vft(
        "serve",
        &scratch.database_url(),
        scratch.dir.path(),
        external,
        &[],
        env,
    )
}

/// `vft demo` on free ports with the scratch's database, loaded: the process, the port of its
/// embedded broker and the coordinator token it printed.
pub fn demo(scratch: &Scratch, env: &[(&str, &str)]) -> (VftProcess, u16, String) {
    let (mut demo, broker) = spawn_vft(
        "demo",
        &scratch.database_url(),
        scratch.dir.path(),
        None,
        &[],
        env,
    );
    let token_line = demo.wait_for_line("vft: token", Duration::from_secs(600));
    let token = token_line
        .trim_start_matches("vft: token")
        .trim()
        .to_owned();
    (demo, broker.port, token)
}

/// Until `/readyz` answers 200 (database reachable, ingest subscribed).
pub async fn wait_ready(api: &str) {
    eventually("readyz", Duration::from_secs(120), || async {
        (get(&format!("{api}/readyz"), None).await.status() == 200).then_some(())
    })
    .await;
}

/// `vft serve` on free ports with a fresh database, a coordinator token and a token for Ål
/// (3328), ready to take requests.
pub struct Server {
    pub vft: VftProcess,
    pub broker: BrokerUnderTest,
    pub coordinator: String,
    pub aal: String,
    pub scratch: Scratch,
}

impl Server {
    pub async fn start(scratch: Scratch) -> Self {
        Self::start_with_env(scratch, &[]).await
    }

    pub async fn start_with_env(scratch: Scratch, envs: &[(&str, &str)]) -> Self {
        let db = scratch.database_url();
        let (vft, broker) = serve(&scratch, None, envs);
        let coordinator = create_token(&db, scratch.dir.path(), &["--role", "coordinator"]);
        let aal = create_token(
            &db,
            scratch.dir.path(),
            &["--role", "municipality", "--municipality", "3328"],
        );
        wait_ready(&vft.api).await;
        Self {
            vft,
            broker,
            coordinator,
            aal,
            scratch,
        }
    }

    /// GET as the coordinator; the JSON body of a success.
    pub async fn get(&self, path: &str) -> serde_json::Value {
        get_json(&format!("{}{path}", self.vft.api), &self.coordinator).await
    }

    /// Publishes events (one message each, one gateway) and waits for every PUBACK.
    pub async fn publish(&self, events: &[serde_json::Value]) {
        let mut p = Publisher::connect(&self.broker, "server-publisher").await;
        for e in events {
            p.publish("vft/v1/hepro/gw-1/events", e.to_string()).await;
        }
        p.wait_all_acked(Duration::from_secs(120)).await;
        p.disconnect().await;
    }

    /// Waits until the store holds at least `total` events.
    pub async fn wait_events(&self, total: u64) {
        let store = vft_store::open(&self.scratch.database_url(), &Default::default())
            .await
            .expect("store");
        eventually("events stored", Duration::from_secs(120), || async {
            (store.event_count().await.ok()? >= total).then_some(())
        })
        .await;
    }
}

/// One message on the wire: its topic, payload and the event ids it carries.
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub ids: Vec<String>,
}

/// A gateway as gateways behave: after a lost connection it connects again and sends what was
/// not acknowledged, until everything is or `patience` runs out. Returns the acknowledged
/// indices.
pub fn gateway(
    broker: &BrokerUnderTest,
    client_id: &str,
    list: std::sync::Arc<Vec<Message>>,
    patience: Duration,
) -> tokio::task::JoinHandle<std::collections::BTreeSet<usize>> {
    let broker = broker.clone();
    let client_id = client_id.to_owned();
    tokio::spawn(async move {
        let deadline = std::time::Instant::now() + patience;
        let mut acked = std::collections::BTreeSet::new();
        while acked.len() < list.len() && std::time::Instant::now() < deadline {
            let pending: Vec<usize> = (0..list.len()).filter(|i| !acked.contains(i)).collect();
            let mut p = Publisher::connect_with_inflight(&broker, &client_id, 100).await;
            for &i in &pending {
                if !p.try_publish(&list[i].topic, list[i].payload.clone()).await {
                    break;
                }
            }
            while p.acked().len() < pending.len()
                && !p.is_closed()
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acked.extend(p.acked().into_iter().map(|j| pending[j]));
            if !p.is_closed() {
                p.disconnect().await;
            }
        }
        acked
    })
}

pub async fn stored_ids(database_url: &str) -> std::collections::BTreeSet<String> {
    let store = vft_store::open(database_url, &Default::default())
        .await
        .expect("store");
    store
        .lifecycle_records()
        .await
        .expect("records")
        .into_iter()
        .map(|r| r.event_id.to_string())
        .collect()
}

/// Like [`spawn_vft`] on the embedded broker, with the child's stderr (vft's log) written to
/// `log` instead of inherited, so a test can read every line vft logged.
pub fn spawn_vft_logged(
    command: &str,
    database_url: &str,
    cwd: &Path,
    extra_args: &[&str],
    env: &[(&str, &str)],
    log: &Path,
) -> (VftProcess, BrokerUnderTest) {
    let mqtt_port = free_port();
    let mqtt_addr = format!("127.0.0.1:{mqtt_port}");
    let mut args = vec![
        command,
        "--http-addr",
        "127.0.0.1:0",
        "--database-url",
        database_url,
        "--mqtt-addr",
        &mqtt_addr,
    ];
    args.extend_from_slice(extra_args);
    let file = std::fs::File::create(log).expect("log file");
    let mut child = Command::new(binary());
    child
        .args(&args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .envs(allow_anonymous(&binary()))
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(file);
    let vft = VftProcess::spawn_command(&mut child, Duration::from_secs(60));
    (
        vft,
        BrokerUnderTest {
            port: mqtt_port,
            credentials: None,
        },
    )
}

/// Asserts that `value`, a response the API served, has exactly the fields its schema
/// `name` in the OpenAPI document describes, with every required one present. For schemas the
/// API keeps by hand beside the type it serializes (`ImportReport`, `ReconcileReport`,
/// `ReconcileRow`, `Subject`): a field added or renamed on one side only fails here.
pub fn assert_fields_match_schema(
    openapi: &serde_json::Value,
    name: &str,
    value: &serde_json::Value,
) {
    let schema = &openapi["components"]["schemas"][name];
    let described: std::collections::BTreeSet<&str> = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {name} with properties in the OpenAPI document"))
        .keys()
        .map(String::as_str)
        .collect();
    let served: std::collections::BTreeSet<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("{name}: not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        served, described,
        "{name}: served fields against the schema's"
    );
    for required in schema["required"].as_array().into_iter().flatten() {
        let field = required.as_str().expect("a field name");
        assert!(
            !value[field].is_null(),
            "{name}: required {field} is null or missing in {value}"
        );
    }
}

/// A log file printed to stderr if the test panics while this is alive.
pub struct ShownOnPanic(pub PathBuf);

impl Drop for ShownOnPanic {
    fn drop(&mut self) {
        show_if_panicking(&self.0.display().to_string(), &self.0);
    }
}

/// Prints the file at `path` under `label` when the current thread is panicking (a failing
/// test shows the logs of the processes it ran).
fn show_if_panicking(label: &str, path: &Path) {
    if std::thread::panicking() {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        eprintln!("--- {label} ---\n{log}");
    }
}
