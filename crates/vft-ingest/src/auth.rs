//! Who may connect to the embedded listener, and what they may publish.
//!
//! A gateway logs in with a credential from `mqtt_credentials` (username and password; only an
//! Argon2id hash is stored). Each CONNECT reads the credential's row (so a revocation holds
//! for the next connection at once); the Argon2id check itself (19 MiB, some tens of
//! milliseconds) runs on tokio's blocking pool, at most [`MAX_CONCURRENT_VERIFICATIONS`] at a
//! time, one per username at a time, and its result is remembered for [`VERIFIED_FOR`] per
//! username and password, so a fleet reconnecting after a restart of vft costs one check per
//! credential, not one per gateway or attempt.
//! Failed attempts are counted per client address and per username; from the third one on,
//! each further attempt from there waits a little longer before it is answered.
//!
//! Everything here is called from the listener's ntex thread; store reads and hashing go to
//! the tokio runtime vft runs on (`runtime`), whose join handles the ntex side awaits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::{debug, warn};
use vft_domain::adapter::AdapterConfig;
use vft_domain::mqtt_access::{self, CredentialScope};
use vft_store::{MqttCredential, Store};

/// Argon2id checks running at once (each holds 19 MiB while it runs).
pub const MAX_CONCURRENT_VERIFICATIONS: usize = 2;
/// How long a verified username and password are believed without hashing again (the
/// credential's row is still read on every CONNECT, so revocation is not delayed by this).
pub const VERIFIED_FOR: Duration = Duration::from_secs(600);
/// A connection's credential is read again after this long, at its next publish: revoking a
/// credential closes its open connections within this time.
pub const RECHECK_EVERY: Duration = Duration::from_secs(30);
/// Failures remembered this long per address and username.
const FAILURES_FORGOTTEN_AFTER: Duration = Duration::from_secs(600);
/// Failed attempts answered at once; later ones wait (doubling from 250 ms up to the cap).
const FREE_FAILURES: u32 = 2;
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Addresses and usernames with failures remembered at most (past it, the oldest go).
const MAX_REMEMBERED: usize = 10_000;

/// Who may use the embedded listener.
#[derive(Clone)]
pub struct Access {
    /// Clients without a username may connect and publish anything (`vft demo`, or
    /// `mqtt.allow_anonymous` on a loopback address).
    pub allow_anonymous: bool,
    /// Where credentials are looked up. `None`: no credential is accepted.
    pub credentials: Option<Arc<dyn Store>>,
    /// The canonical topic prefix (`vft/v1`).
    pub topic_prefix: String,
    /// Vendor adapters: a vendor's credential may also publish on its adapters' topics.
    pub adapters: Vec<AdapterConfig>,
}

impl Access {
    /// Anyone may connect and publish anything (the listener's tests).
    pub fn anonymous() -> Self {
        Self {
            allow_anonymous: true,
            credentials: None,
            topic_prefix: "vft/v1".into(),
            adapters: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("allow_anonymous", &self.allow_anonymous)
            .field("credentials", &self.credentials.is_some())
            .field("topic_prefix", &self.topic_prefix)
            .finish_non_exhaustive()
    }
}

/// Who is behind a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    Anonymous,
    Credential {
        username: Arc<str>,
        scope: CredentialScope,
        /// The hash the password was checked against: a credential revoked and created again
        /// under the same username has another.
        password_hash: Arc<str>,
    },
}

impl Principal {
    pub(crate) fn username(&self) -> Option<&str> {
        match self {
            Self::Anonymous => None,
            Self::Credential { username, .. } => Some(username),
        }
    }

    /// How a refused publish's dead letter names its sender.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Anonymous => "(anonymous)".into(),
            Self::Credential {
                username, scope, ..
            } => format!("{username} (scope {scope})"),
        }
    }
}

/// Why a CONNECT is refused (the CONNACK return code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No username, and anonymous clients are not allowed (return code 5).
    NotAuthorized,
    /// Unknown or revoked username, or a wrong password (return code 4).
    BadCredentials,
    /// The credential could not be read (database down; return code 3).
    Unavailable,
}

struct Verified {
    password_sha256: String,
    password_hash: Arc<str>,
    scope: CredentialScope,
    at: Instant,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum FailureKey {
    Address(IpAddr),
    Username(String),
}

struct Failures {
    count: u32,
    last: Instant,
}

pub(crate) struct Gate {
    access: Access,
    runtime: tokio::runtime::Handle,
    verified: Mutex<HashMap<String, Verified>>,
    /// Per username, whose turn it is to check a password.
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    failures: Mutex<HashMap<FailureKey, Failures>>,
    hashing: Arc<tokio::sync::Semaphore>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the maps consistent (single inserts and removes).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Gate {
    /// Must be called on the tokio runtime that will run store reads and hashing.
    pub(crate) fn new(access: Access) -> Self {
        Self {
            access,
            runtime: tokio::runtime::Handle::current(),
            verified: Mutex::new(HashMap::new()),
            turns: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            hashing: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_VERIFICATIONS)),
        }
    }

    pub(crate) async fn authenticate(
        &self,
        peer: Option<IpAddr>,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<Principal, Refusal> {
        let Some(username) = username else {
            return if self.access.allow_anonymous && password.is_none() {
                Ok(Principal::Anonymous)
            } else {
                Err(Refusal::NotAuthorized)
            };
        };
        let keys: Vec<FailureKey> = peer
            .map(FailureKey::Address)
            .into_iter()
            .chain([FailureKey::Username(username.to_owned())])
            .collect();
        let delay = self.delay(&keys);
        if !delay.is_zero() {
            metrics::counter!("vft_listener_auth_delayed_total").increment(1);
            ntex_util::time::sleep(delay).await;
        }
        let outcome = self.check(username, password).await;
        match &outcome {
            // Only the username's count: one good login from an address says nothing about
            // the other attempts made from it.
            Ok(_) => self.forget_failures(&keys[keys.len() - 1..]),
            Err(Refusal::BadCredentials) => {
                metrics::counter!("vft_listener_auth_failures_total").increment(1);
                self.count_failure(keys);
            }
            Err(_) => {}
        }
        outcome
    }

    async fn check(&self, username: &str, password: Option<&[u8]>) -> Result<Principal, Refusal> {
        let password = password
            .and_then(|p| std::str::from_utf8(p).ok())
            .ok_or(Refusal::BadCredentials)?;
        let password_sha256 = vft_domain::hash_token(password);
        let row = match self.credential(username).await {
            Ok(row) => row,
            Err(()) => {
                // The database is unreachable: a password verified lately still opens (its
                // publishes wait for a commit anyway).
                let verified = lock(&self.verified);
                return match verified.get(username) {
                    Some(v)
                        if v.password_sha256 == password_sha256
                            && v.at.elapsed() < VERIFIED_FOR =>
                    {
                        Ok(Principal::Credential {
                            username: Arc::from(username),
                            scope: v.scope.clone(),
                            password_hash: v.password_hash.clone(),
                        })
                    }
                    _ => Err(Refusal::Unavailable),
                };
            }
        };
        let Some(row) = row.filter(|c| c.revoked_at.is_none()) else {
            return Err(Refusal::BadCredentials);
        };
        let password_hash: Arc<str> = Arc::from(row.password_hash.as_str());
        let principal = Principal::Credential {
            username: Arc::from(username),
            scope: row.scope.clone(),
            password_hash: password_hash.clone(),
        };
        let known = || {
            lock(&self.verified).get(username).is_some_and(|v| {
                v.password_sha256 == password_sha256
                    && v.password_hash == password_hash
                    && v.at.elapsed() < VERIFIED_FOR
            })
        };
        if known() {
            return Ok(principal);
        }
        // One check per username at a time: a fleet sharing a credential that reconnects at
        // once (vft restarted) waits for the first check instead of hashing once per gateway.
        let turn = {
            let mut turns = lock(&self.turns);
            turns.retain(|_, t| Arc::strong_count(t) > 1);
            turns.entry(username.to_owned()).or_default().clone()
        };
        let _turn = turn.lock().await;
        if known() {
            return Ok(principal);
        }
        let permit = self
            .hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Refusal::Unavailable)?;
        let (phc, given) = (row.password_hash.clone(), password.to_owned());
        let matches = self
            .runtime
            .spawn_blocking(move || {
                let _permit = permit;
                mqtt_access::verify_password(&phc, &given)
            })
            .await
            .map_err(|_| Refusal::Unavailable)?;
        if !matches {
            return Err(Refusal::BadCredentials);
        }
        let mut verified = lock(&self.verified);
        if verified.len() >= MAX_REMEMBERED {
            verified.retain(|_, v| v.at.elapsed() < VERIFIED_FOR);
        }
        verified.insert(
            username.to_owned(),
            Verified {
                password_sha256,
                password_hash,
                scope: row.scope,
                at: Instant::now(),
            },
        );
        Ok(principal)
    }

    /// The credential's row, read on the tokio runtime; `Err` when the store failed.
    async fn credential(&self, username: &str) -> Result<Option<MqttCredential>, ()> {
        let Some(store) = self.access.credentials.clone() else {
            return Ok(None);
        };
        let username = username.to_owned();
        let read = self
            .runtime
            .spawn(async move { store.mqtt_credential(&username).await })
            .await;
        match read {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(e)) => {
                warn!(error = %e, "cannot read MQTT credentials");
                Err(())
            }
            Err(_) => Err(()),
        }
    }

    /// Whether a connection's credential still holds (not revoked, not replaced). A store
    /// that cannot be read keeps the connection: it was valid, and nothing says otherwise.
    pub(crate) async fn still_valid(&self, principal: &Principal) -> bool {
        let Principal::Credential {
            username,
            password_hash,
            ..
        } = principal
        else {
            return true;
        };
        match self.credential(username).await {
            Ok(Some(row)) => row.revoked_at.is_none() && *row.password_hash == **password_hash,
            Ok(None) => false,
            Err(()) => true,
        }
    }

    /// Whether `principal` may publish on `topic` (a will's topic included).
    pub(crate) fn may_publish(&self, principal: &Principal, topic: &str) -> bool {
        match principal {
            Principal::Anonymous => true,
            Principal::Credential { scope, .. } => mqtt_access::may_publish(
                scope,
                topic,
                &self.access.topic_prefix,
                &self.access.adapters,
            ),
        }
    }

    fn delay(&self, keys: &[FailureKey]) -> Duration {
        let failures = lock(&self.failures);
        keys.iter()
            .filter_map(|k| failures.get(k))
            .filter(|f| f.last.elapsed() < FAILURES_FORGOTTEN_AFTER && f.count > FREE_FAILURES)
            .map(|f| {
                let doublings = (f.count - FREE_FAILURES - 1).min(8);
                (Duration::from_millis(250) * (1 << doublings)).min(MAX_DELAY)
            })
            .max()
            .unwrap_or_default()
    }

    fn count_failure(&self, keys: Vec<FailureKey>) {
        let mut failures = lock(&self.failures);
        if failures.len() >= MAX_REMEMBERED {
            failures.retain(|_, f| f.last.elapsed() < FAILURES_FORGOTTEN_AFTER);
            if failures.len() >= MAX_REMEMBERED {
                debug!("too many failing addresses and usernames; forgetting them all");
                failures.clear();
            }
        }
        for key in keys {
            let entry = failures.entry(key).or_insert(Failures {
                count: 0,
                last: Instant::now(),
            });
            if entry.last.elapsed() >= FAILURES_FORGOTTEN_AFTER {
                entry.count = 0;
            }
            entry.count = entry.count.saturating_add(1);
            entry.last = Instant::now();
        }
    }

    fn forget_failures(&self, keys: &[FailureKey]) {
        let mut failures = lock(&self.failures);
        for key in keys {
            failures.remove(key);
        }
    }
}
