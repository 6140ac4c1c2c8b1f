//! A real OpenID provider for the sign-in tests: `tests/oidc/provider.mjs` (oidc-provider, an
//! OpenID Certified implementation) run by Node.js on a free loopback port, issuer
//! `http://127.0.0.1:<port>`.
//!
//! Needs Node.js 20.12+ and `npm ci` in tests/oidc (`.ci/run` does both). Without them
//! [`OidcProvider::start`] returns [`Unavailable`], which a test turns into a loud skip; in CI
//! (`CI=true`) it panics.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Longest a provider may take to print its ready line (Node start-up and an RSA key).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The one client the provider knows, and its accounts.
#[derive(Clone, Debug)]
pub struct OidcProviderConfig {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    /// A JSON array of claim sets (`sub`, `email`, `email_verified`, `name`); `None` means
    /// tests/oidc/accounts.json (alice: verified email; bob: unverified; carol: no email).
    pub accounts: Option<PathBuf>,
    /// Put the scope claims (email, name) in the ID token too, as several real providers do;
    /// otherwise they come only from the userinfo endpoint (oidc-provider's default).
    pub claims_in_id_token: bool,
}

/// What is missing to run the provider (outside CI only: in CI that panics instead).
#[derive(Debug)]
pub struct Unavailable(pub String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the OpenID provider tests need {}; .ci/run installs them",
            self.0
        )
    }
}

/// A running `provider.mjs`; killed when dropped.
pub struct OidcProvider {
    child: Child,
    // Held open: the provider exits when its stdin closes, so it never outlives this process.
    _stdin: Option<ChildStdin>,
    config: OidcProviderConfig,
    port: u16,
    issuer: String,
    log: Arc<Mutex<Vec<String>>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

/// tests/oidc in this workspace.
pub fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc")
}

/// oidc-provider 9 uses `crypto.hash`, which Node.js has since 20.12 (Debian 12's own
/// nodejs package is 18).
const NODE_AT_LEAST: (u32, u32) = (20, 12);

fn missing_parts(dir: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    let version = Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let (major, minor) = NODE_AT_LEAST;
    match version {
        None => missing.push(format!("node (Node.js {major}.{minor} or later)")),
        Some(v) if node_version(&v).is_none_or(|found| found < NODE_AT_LEAST) => {
            missing.push(format!("Node.js {major}.{minor} or later (found {v})"));
        }
        Some(_) => {}
    }
    if !dir.join("node_modules/oidc-provider").is_dir() {
        missing.push("tests/oidc/node_modules (run `npm ci` in tests/oidc)".to_owned());
    }
    missing
}

/// `v20.20.2` → (20, 20).
fn node_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.strip_prefix('v')?.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

impl OidcProvider {
    /// Starts the provider on a free port and waits for it to listen. `Err` only when Node.js
    /// or the npm packages are missing outside CI; any other failure panics, with the provider's
    /// output.
    pub fn start(config: &OidcProviderConfig) -> Result<Self, Unavailable> {
        let dir = provider_dir();
        let missing = missing_parts(&dir);
        if !missing.is_empty() {
            let why = Unavailable(missing.join(", "));
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{why}");
            }
            return Err(why);
        }
        // free_port can race with another process taking the port before node binds it: then
        // try another one.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Self::spawn(config, crate::free_port()) {
                Ok(p) => return Ok(p),
                Err(log) if attempts < 3 && log.contains("EADDRINUSE") => continue,
                Err(log) => panic!("the OpenID provider did not start:\n{log}"),
            }
        }
    }

    /// The issuer, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the provider wrote to stderr so far (its warnings and the errors it reported).
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Kills the provider and starts it again on the same port: same issuer and client, but
    /// a new signing key and no memory of codes, sessions or grants (a key rotation, seen from
    /// the relying party).
    pub fn restart(&mut self) {
        self.stop();
        let fresh = Self::spawn(&self.config, self.port)
            .unwrap_or_else(|log| panic!("the OpenID provider did not start again:\n{log}"));
        *self = fresh;
    }

    /// Kills the provider: it answers nothing (connections are refused) until [`Self::restart`]
    /// brings it back on the same port.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Spawns on `port` and waits for the ready line; `Err` carries the provider's output.
    fn spawn(config: &OidcProviderConfig, port: u16) -> Result<Self, String> {
        let dir = provider_dir();
        let mut command = Command::new("node");
        command
            .arg("provider.mjs")
            .args(["--port", &port.to_string()])
            .args(["--client-id", &config.client_id])
            .args(["--client-secret", &config.client_secret])
            .args(["--redirect-uri", &config.redirect_uri])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(accounts) = &config.accounts {
            command.arg("--accounts").arg(accounts);
        }
        if config.claims_in_id_token {
            command.arg("--claims-in-id-token");
        }
        let mut child = command.spawn().map_err(|e| format!("spawn node: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");

        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        // Both pipes are drained for the provider's whole life, so it never blocks on a write.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let sink = Arc::clone(&log);
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });

        let mut provider = Self {
            child,
            _stdin: stdin,
            config: config.clone(),
            port,
            issuer: String::new(),
            log,
            stderr_reader: Some(stderr_reader),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut stdout_seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => match line.strip_prefix("ready ") {
                    Some(issuer) => {
                        provider.issuer = issuer.trim().to_owned();
                        return Ok(provider);
                    }
                    None => stdout_seen.push(line),
                },
                Err(e) => {
                    // Disconnected: the provider exited. Timeout: it hangs. Either way, stop it;
                    // its stderr then ends, and is complete once the reader is done.
                    provider.stop();
                    let status = provider.child.try_wait().ok().flatten();
                    if let Some(reader) = provider.stderr_reader.take() {
                        let _ = reader.join();
                    }
                    let what = match e {
                        mpsc::RecvTimeoutError::Timeout => {
                            format!("no ready line within {READY_TIMEOUT:?}")
                        }
                        mpsc::RecvTimeoutError::Disconnected => format!("exited ({status:?})"),
                    };
                    return Err(format!(
                        "{what}\nstdout: {}\nstderr:\n{}",
                        stdout_seen.join("\n"),
                        provider.log()
                    ));
                }
            }
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}
