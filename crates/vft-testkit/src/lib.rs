//! Real databases for vft's tests: a fresh SQLite file per test, and a fresh PostgreSQL
//! database per test in a throwaway cluster started once per test binary with the machine's
//! `initdb`/`postgres` (or the server `VFT_TEST_DATABASE_URL` names). Test-only: no product
//! crate depends on this.

pub mod oidc;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use vft_store::{Store, StoreOptions};

pub struct TestStore {
    pub store: Arc<dyn Store>,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("vft.db").display());
    let store = vft_store::open(&url, &StoreOptions::default())
        .await
        .expect("open sqlite");
    TestStore {
        store,
        url,
        _dir: Some(dir),
    }
}

/// The URL of a fresh, empty PostgreSQL database. `None` only outside CI when no PostgreSQL
/// can be started (with a loud message); in CI (`CI=true`) a missing PostgreSQL fails the test.
pub async fn postgres_database_url() -> Option<String> {
    let admin = match admin_url() {
        Ok(url) => url,
        Err(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL is required in CI: {why}");
            }
            eprintln!(
                "\n!!! SKIPPING PostgreSQL test: {why}\n!!! set VFT_TEST_DATABASE_URL or install PostgreSQL 15\n"
            );
            return None;
        }
    };
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "vft_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    create_database(&admin, &name).await;
    Some(with_database(&admin, &name))
}

/// A store on a fresh PostgreSQL database; `None` as for [`postgres_database_url`].
pub async fn postgres() -> Option<TestStore> {
    let url = postgres_database_url().await?;
    let store = vft_store::open(&url, &StoreOptions::default())
        .await
        .expect("open postgres");
    Some(TestStore {
        store,
        url,
        _dir: None,
    })
}

/// psql rather than sqlx: this test crate does not depend on sqlx, and opening the admin
/// database as a store would migrate it.
async fn create_database(admin: &str, name: &str) {
    let out = tokio::process::Command::new("psql")
        .arg(admin)
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .output()
        .await
        .expect("run psql");
    assert!(
        out.status.success(),
        "CREATE DATABASE failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn with_database(admin: &str, db: &str) -> String {
    // admin is postgres://user@host[:port]/postgres[?query]
    let (base, query) = admin
        .split_once('?')
        .map_or((admin, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

fn admin_url() -> Result<String, String> {
    if let Ok(url) = std::env::var("VFT_TEST_DATABASE_URL") {
        return Ok(url);
    }
    static CLUSTER: OnceLock<Result<String, String>> = OnceLock::new();
    CLUSTER.get_or_init(start_cluster).clone()
}

fn postgres_bin(name: &str) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
        .unwrap_or_default();
    candidates.push(PathBuf::from(format!("/usr/lib/postgresql/15/bin/{name}")));
    candidates.into_iter().find(|p| p.is_file())
}

/// initdb refuses to run as root, so when we are root the cluster runs as `postgres`.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY-free check of the effective user: /proc tells without libc calls.
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(2)?
        .to_owned();
    if euid != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let mut f = line.split(':').skip(2);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

fn command(bin: &Path, user: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(bin);
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
    }
    c
}

/// The user (uid, gid) a cluster runs as when the tests run as root.
type RunAs = Option<(u32, u32)>;

/// A fresh, initialised data directory (`<root>/data`) owned by the user the server will run
/// as: (root, data directory, that user when we are root).
fn init_cluster(prefix: &str) -> Result<(PathBuf, PathBuf, RunAs), String> {
    let initdb = postgres_bin("initdb").ok_or("initdb not found")?;
    let user = run_as();
    let root = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&root, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    }
    let data = root.join("data");
    let out = command(&initdb, user)
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((root, data, user))
}

fn start_cluster() -> Result<String, String> {
    let postgres = postgres_bin("postgres").ok_or("postgres not found")?;
    let (root, data, user) = init_cluster("vft-pg-")?;
    let port = free_port();
    let socket_dir = root.clone();
    // A watchdog shell ends the server when this test process exits (PR_SET_PDEATHSIG would
    // need unsafe code); /proc is checked rather than `kill -0`, which fails across users.
    let parent = std::process::id();
    let script = format!(
        "{pg} -D {data} -p {port} -k {sock} -c listen_addresses= -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=200 & pg=$!; \
         while [ -d /proc/{parent} ] && kill -0 $pg 2>/dev/null; do sleep 1; done; kill -QUIT $pg 2>/dev/null; \
         rm -rf {root}",
        pg = postgres.display(),
        data = data.display(),
        sock = socket_dir.display(),
        root = root.display(),
    );
    let child: Child = command(Path::new("/bin/sh"), user)
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start postgres: {e}"))?;
    std::mem::forget(child);
    let url = format!(
        "postgres://postgres@localhost:{port}/postgres?host={}",
        socket_dir.display()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = Command::new("psql")
            .arg(&url)
            .args(["-q", "-c", "SELECT 1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(url);
        }
        if Instant::now() > deadline {
            return Err("postgres did not accept connections within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A PostgreSQL cluster of one test's own, which the test may stop, kill and start again
/// (the shared cluster above serves every other test of the binary and must stay up).
pub struct PgCluster {
    pub url: String,
    pg_ctl: PathBuf,
    data: PathBuf,
    port: u16,
    socket_dir: PathBuf,
    user: Option<(u32, u32)>,
    root: PathBuf,
}

impl PgCluster {
    /// `None` only outside CI when PostgreSQL is missing (with a loud message).
    pub fn start() -> Option<Self> {
        match Self::try_start() {
            Ok(c) => Some(c),
            Err(why) => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("PostgreSQL is required in CI: {why}");
                }
                eprintln!("\n!!! SKIPPING PostgreSQL fault test: {why}\n");
                None
            }
        }
    }

    fn try_start() -> Result<Self, String> {
        let pg_ctl = postgres_bin("pg_ctl").ok_or("pg_ctl not found")?;
        let (root, data, user) = init_cluster("vft-pgc-")?;
        let port = free_port();
        let url = format!(
            "postgres://postgres@localhost:{port}/postgres?host={}",
            root.display()
        );
        let cluster = Self {
            url,
            pg_ctl,
            data,
            port,
            socket_dir: root.clone(),
            user,
            root,
        };
        cluster.start_again()?;
        Ok(cluster)
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub fn start_again(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses= -c fsync=off -c max_connections=50",
            self.port,
            self.socket_dir.display()
        );
        let out = command(&self.pg_ctl, self.user)
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &options, "-l"])
            .arg(self.root.join("log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .map_err(|e| format!("pg_ctl start: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pg_ctl start failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// Stops the server: `fast` (a clean shutdown) or `immediate` (like a crash: no checkpoint).
    pub fn stop(&self, mode: &str) {
        let _ = command(&self.pg_ctl, self.user)
            .arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// psql against this cluster (as its superuser), panicking on failure.
    pub fn psql(&self, database: &str, sql: &str) {
        let url = with_database(&self.url, database);
        let out = Command::new("psql")
            .arg(&url)
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A URL for `database` in this cluster.
    pub fn database_url(&self, database: &str) -> String {
        with_database(&self.url, database)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop("immediate");
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A small tmpfs mounted for one test (root only), to make a disk fill up for real.
pub struct SmallFs {
    pub dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallFs {
    /// `None` only outside CI when mounting is not allowed here (with a loud message).
    pub fn mount(bytes: u64) -> Option<Self> {
        let parent = tempfile::tempdir().expect("temp dir");
        let dir = parent.path().join("small");
        std::fs::create_dir(&dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self {
                dir,
                _parent: parent,
            }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!(
                        "a size-limited filesystem is required in CI (mount tmpfs as root): {why}"
                    );
                }
                eprintln!(
                    "\n!!! SKIPPING disk-full test: cannot mount a tmpfs ({why}); run as root\n"
                );
                None
            }
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
