//! Sign-in throttling. Wrong passwords at `POST /api/session` are counted per client address
//! and in total: after a few from one client it must wait, and each further wrong one doubles
//! the wait (up to a cap); past a limit of wrong passwords from everyone together in a window
//! (many addresses guessing at once), every sign-in waits for the window's end. A waiting client
//! gets 429 with `Retry-After` and its password is not even looked at, so the answer tells a
//! guesser nothing. A correct password clears its client's count. Unknown bearer tokens and
//! session cookies on API requests use a second, per-client-only instance
//! ([`SignInThrottle::per_client`]). At most `max_clients` addresses are
//! tracked: memory stays bounded whatever the number of addresses guessing.
//!
//! A small windowed counter rather than a rate-limiting crate (`governor` was considered): only
//! failures count (a rate limiter spends a cell on every attempt, right or wrong), a waiting
//! client must be refused without spending anything, and the table needs a hard cap, which
//! `governor`'s keyed limiter has not (it can only be pruned).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How sign-in is throttled.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimits {
    /// Wrong tokens from one client before it must wait.
    pub free_failures: u32,
    /// The wait after the last free failure; each further wrong token doubles it.
    pub first_wait: Duration,
    /// The longest wait of one client.
    pub max_wait: Duration,
    /// A client's count is forgotten this long after its last wrong token (and wait).
    pub forget_after: Duration,
    /// Wrong tokens from all clients together, per `global_window`, before every client waits.
    pub global_failures: u32,
    pub global_window: Duration,
    /// Most client addresses tracked at once.
    pub max_clients: usize,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        Self {
            free_failures: 5,
            first_wait: Duration::from_secs(4),
            max_wait: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(60 * 60),
            global_failures: 100,
            global_window: Duration::from_secs(60),
            max_clients: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Client {
    failures: u32,
    last_failure: Instant,
    wait_until: Instant,
}

#[derive(Debug, Default)]
struct Counts {
    clients: HashMap<IpAddr, Client>,
    /// The global window: when its first wrong token came, and how many came since.
    window: Option<(Instant, u32)>,
}

/// Wrong sign-in tokens per client address and in total (see the module docs).
#[derive(Debug)]
pub struct SignInThrottle {
    limits: ThrottleLimits,
    counts: Mutex<Counts>,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        Self::new(ThrottleLimits::default())
    }
}

/// The address a client's count is kept under: an IPv4 address, or the /64 an IPv6 address is
/// in (one host commonly holds a whole /64, so counting single addresses would not slow it).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

impl SignInThrottle {
    pub fn new(limits: ThrottleLimits) -> Self {
        Self {
            limits,
            counts: Mutex::new(Counts::default()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent whatever panicked while holding them.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Per client only, never all clients together: for wrong tokens and sessions on API
    /// requests, where a global wait would let one guesser stop every integration (tokens
    /// have 256 random bits; the wait keeps guessers out of the audit log, not out of luck).
    pub fn per_client() -> Self {
        Self::new(ThrottleLimits {
            global_failures: u32::MAX,
            ..ThrottleLimits::default()
        })
    }

    /// Whether `client` may try a token at `now`; if not, how long it must wait.
    pub fn admit(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let counts = self.counts();
        let limits = &self.limits;
        let mut wait = Duration::ZERO;
        if let Some((start, failures)) = counts.window
            && failures >= limits.global_failures
        {
            wait = (start + limits.global_window).saturating_duration_since(now);
        }
        if let Some(c) = counts.clients.get(&client_key(client)) {
            wait = wait.max(c.wait_until.saturating_duration_since(now));
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    /// `client` sent a wrong token at `now`.
    pub fn failed(&self, client: IpAddr, now: Instant) {
        let mut counts = self.counts();
        let limits = self.limits;
        counts.window = match counts.window {
            Some((start, n)) if now.saturating_duration_since(start) < limits.global_window => {
                Some((start, n.saturating_add(1)))
            }
            _ => Some((now, 1)),
        };
        let key = client_key(client);
        let stale = |c: &Client| {
            now.saturating_duration_since(c.last_failure.max(c.wait_until)) >= limits.forget_after
        };
        if !counts.clients.contains_key(&key) && counts.clients.len() >= limits.max_clients {
            counts.clients.retain(|_, c| !stale(c));
            if counts.clients.len() >= limits.max_clients {
                // Full of recent guessers: the one quiet longest makes room. The global
                // limit still holds whatever is forgotten here.
                let oldest = counts
                    .clients
                    .iter()
                    .min_by_key(|(_, c)| c.last_failure)
                    .map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    counts.clients.remove(&oldest);
                }
            }
        }
        let entry = counts.clients.entry(key).or_insert(Client {
            failures: 0,
            last_failure: now,
            wait_until: now,
        });
        if stale(entry) {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        if entry.failures >= limits.free_failures {
            let doublings = (entry.failures - limits.free_failures).min(30);
            let wait = limits
                .first_wait
                .saturating_mul(1 << doublings)
                .min(limits.max_wait);
            entry.wait_until = now + wait;
        }
    }

    /// `client` signed in: its count starts again.
    pub fn succeeded(&self, client: IpAddr) {
        self.counts().clients.remove(&client_key(client));
    }

    /// Client addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.counts().clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn limits() -> ThrottleLimits {
        ThrottleLimits {
            free_failures: 3,
            first_wait: Duration::from_secs(2),
            max_wait: Duration::from_secs(10),
            forget_after: Duration::from_secs(100),
            global_failures: 10,
            global_window: Duration::from_secs(60),
            max_clients: 4,
        }
    }

    #[test]
    fn a_client_waits_after_a_few_wrong_tokens_and_longer_after_each_further_one() {
        let t = SignInThrottle::new(limits());
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..2 {
            assert_eq!(t.admit(a, t0), Ok(()));
            t.failed(a, t0);
        }
        assert_eq!(t.admit(a, t0), Ok(()));
        t.failed(a, t0);
        assert_eq!(t.admit(a, t0), Err(Duration::from_secs(2)));
        // Another client is not held up.
        assert_eq!(t.admit(ip("192.0.2.2"), t0), Ok(()));
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(t.admit(a, t1), Ok(()), "the wait is over");
        t.failed(a, t1);
        assert_eq!(t.admit(a, t1), Err(Duration::from_secs(4)), "doubled");
        let t2 = t1 + Duration::from_secs(4);
        t.failed(a, t2);
        t.failed(a, t2);
        assert_eq!(t.admit(a, t2), Err(Duration::from_secs(10)), "capped");
        // Signing in clears the count.
        t.succeeded(a);
        assert_eq!(t.admit(a, t2), Ok(()));
        t.failed(a, t2);
        assert_eq!(t.admit(a, t2), Ok(()), "one wrong token after a success");
    }

    #[test]
    fn a_quiet_client_is_forgotten() {
        let t = SignInThrottle::new(limits());
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            t.failed(a, t0);
        }
        assert!(t.admit(a, t0).is_err());
        let later = t0 + Duration::from_secs(102);
        t.failed(a, later);
        assert_eq!(t.admit(a, later), Ok(()), "counted from one again");
    }

    #[test]
    fn many_clients_together_make_everyone_wait_until_the_window_ends() {
        let t = SignInThrottle::new(ThrottleLimits {
            max_clients: 100,
            ..limits()
        });
        let t0 = Instant::now();
        for i in 0..10 {
            let c = ip(&format!("198.51.100.{i}"));
            assert_eq!(t.admit(c, t0 + Duration::from_secs(i)), Ok(()));
            t.failed(c, t0 + Duration::from_secs(i));
        }
        let t1 = t0 + Duration::from_secs(15);
        assert_eq!(
            t.admit(ip("203.0.113.9"), t1),
            Err(Duration::from_secs(45)),
            "a fresh client waits for the window's end"
        );
        assert_eq!(
            t.admit(ip("198.51.100.3"), t1),
            Err(Duration::from_secs(45)),
            "so does one of the guessers"
        );
        assert_eq!(
            t.admit(ip("203.0.113.9"), t0 + Duration::from_secs(60)),
            Ok(())
        );
    }

    #[test]
    fn memory_is_bounded_and_ipv6_clients_count_per_64() {
        let t = SignInThrottle::new(ThrottleLimits {
            global_failures: u32::MAX,
            ..limits()
        });
        let t0 = Instant::now();
        for i in 0..50u32 {
            t.failed(
                ip(&format!("10.0.{}.{}", i / 256, i % 256)),
                t0 + Duration::from_millis(u64::from(i)),
            );
            assert!(t.tracked() <= 4);
        }
        // The most recent guessers are the ones kept.
        assert!(t.counts().clients.contains_key(&ip("10.0.0.49")));
        let t = SignInThrottle::new(limits());
        for last in 1..=3 {
            t.failed(ip(&format!("2001:db8:1:2::{last}")), t0);
        }
        assert!(t.admit(ip("2001:db8:1:2:ffff::1"), t0).is_err(), "same /64");
        assert_eq!(t.admit(ip("2001:db8:1:3::1"), t0), Ok(()));
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }
}
