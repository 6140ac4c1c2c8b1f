//! The audit log's records and its hash chain. Each record's hash covers the previous record's
//! hash and every field of its own, so editing, inserting or removing a record breaks every
//! hash after it; `vft audit verify` recomputes the chain. Retention removes the oldest records
//! and keeps the hash of the last one removed as the chain's new anchor.

use sha2::{Digest, Sha256};

/// The anchor of an empty chain: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, in a fixed vocabulary (so the log can be filtered and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// A read of personal data (device detail and history, inventory pages and exports,
    /// recipient references, reconciliation subjects, dead-letter payloads, the audit log).
    Read,
    /// A change (publishing a month, an import, a timeout, users, tokens, credentials).
    Change,
    SignIn,
    SignInFailed,
    SignOut,
    /// A request refused for lack of a role or a valid token.
    Denied,
}

impl AuditAction {
    pub const ALL: [Self; 6] = [
        Self::Read,
        Self::Change,
        Self::SignIn,
        Self::SignInFailed,
        Self::SignOut,
        Self::Denied,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Change => "change",
            Self::SignIn => "sign_in",
            Self::SignInFailed => "sign_in_failed",
            Self::SignOut => "sign_out",
            Self::Denied => "denied",
        }
    }

    pub fn parse(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.id() == id)
    }
}

/// One record before it is chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Microseconds since 1970 (UTC).
    pub at_micros: i64,
    /// `user:…`, `token:…`, `local:…`, or what a failed sign-in claimed to be.
    pub actor: String,
    /// The role at the time (`coordinator`, `municipality 3328,3330`, …; empty when unknown).
    pub role: String,
    pub action: AuditAction,
    /// `GET /api/v1/devices/{vendor}/{device}` (the route template), or a CLI command.
    pub route: String,
    /// The municipality the request was about, if one.
    pub municipality: Option<String>,
    /// Who or what was read or changed: device ids, recipient references, usernames, a month.
    pub subjects: Vec<String>,
    /// The client's address (`-` for the command line).
    pub client: String,
    /// The HTTP status answered (0 for the command line).
    pub status: u16,
}

/// Longest text kept of one field (a failed sign-in's claimed username is the caller's text).
pub const MAX_FIELD_CHARS: usize = 256;
/// Most subjects kept in one record (an inventory export names every device).
pub const MAX_SUBJECTS: usize = 10_000;

/// A field as stored: national identity numbers masked, control characters (line breaks among
/// them) U+FFFD, cut to [`MAX_FIELD_CHARS`]; so what is stored reads back exactly and hashes
/// the same.
fn clean(text: &str) -> String {
    // A national identity number never reaches the log, whoever typed it where (a failed
    // sign-in's username, a path): masked before the record is hashed.
    let (masked, _) = crate::nin::mask_str(text);
    masked
        .chars()
        .take(MAX_FIELD_CHARS)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

impl AuditEntry {
    /// The record as it is stored and hashed (see [`clean`]); empty subjects are dropped.
    pub fn normalized(&self) -> Self {
        Self {
            at_micros: self.at_micros,
            actor: clean(&self.actor),
            role: clean(&self.role),
            action: self.action,
            route: clean(&self.route),
            municipality: self.municipality.as_deref().map(clean),
            subjects: self
                .subjects
                .iter()
                .filter(|s| !s.is_empty())
                .take(MAX_SUBJECTS)
                .map(|s| clean(s))
                .collect(),
            client: clean(&self.client),
            status: self.status,
        }
    }
}

/// A record as stored: its place in the chain and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedEntry {
    pub seq: i64,
    pub entry: AuditEntry,
    pub hash: String,
}

/// The hash of record `seq` with `entry`, after a record whose hash is `previous`.
pub fn chain_hash(previous: &str, seq: i64, entry: &AuditEntry) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        // Length-prefixed, so no two different records hash the same bytes.
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(previous.as_bytes());
    field(&seq.to_le_bytes());
    field(&entry.at_micros.to_le_bytes());
    field(entry.actor.as_bytes());
    field(entry.role.as_bytes());
    field(entry.action.id().as_bytes());
    field(entry.route.as_bytes());
    field(entry.municipality.as_deref().unwrap_or("\u{0}").as_bytes());
    field(&(entry.subjects.len() as u64).to_le_bytes());
    for s in &entry.subjects {
        field(s.as_bytes());
    }
    field(entry.client.as_bytes());
    field(&entry.status.to_le_bytes());
    hex::encode(h.finalize())
}

/// Where a chain stops being what was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("record {seq}: its hash does not match its contents and the record before it")]
    Altered { seq: i64 },
    #[error("record {seq} follows record {previous}: records between them are missing")]
    Gap { previous: i64, seq: i64 },
}

/// Checks records in order, after an anchor (`(seq, hash)` of the last record removed by
/// retention, or `(0, GENESIS)`). Returns how many records were checked and the last hash.
pub struct ChainVerifier {
    last_seq: i64,
    last_hash: String,
    checked: u64,
}

impl ChainVerifier {
    pub fn new(anchor_seq: i64, anchor_hash: &str) -> Self {
        Self {
            last_seq: anchor_seq,
            last_hash: anchor_hash.to_owned(),
            checked: 0,
        }
    }

    pub fn check(&mut self, record: &ChainedEntry) -> Result<(), ChainBreak> {
        if record.seq != self.last_seq + 1 {
            return Err(ChainBreak::Gap {
                previous: self.last_seq,
                seq: record.seq,
            });
        }
        if chain_hash(&self.last_hash, record.seq, &record.entry) != record.hash {
            return Err(ChainBreak::Altered { seq: record.seq });
        }
        self.last_seq = record.seq;
        self.last_hash.clone_from(&record.hash);
        self.checked += 1;
        Ok(())
    }

    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The hash of the last record checked (the chain's head, if all were checked).
    pub fn head(&self) -> (i64, &str) {
        (self.last_seq, &self.last_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(actor: &str, subjects: &[&str]) -> AuditEntry {
        AuditEntry {
            at_micros: 1_700_000_000_000_000,
            actor: actor.into(),
            role: "coordinator".into(),
            action: AuditAction::Read,
            route: "GET /api/v1/devices".into(),
            municipality: Some("3328".into()),
            subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
            client: "127.0.0.1".into(),
            status: 200,
        }
    }

    fn chain(entries: &[AuditEntry]) -> Vec<ChainedEntry> {
        let mut previous = GENESIS.to_owned();
        entries
            .iter()
            .zip(1..)
            .map(|(e, seq)| {
                let hash = chain_hash(&previous, seq, e);
                previous.clone_from(&hash);
                ChainedEntry {
                    seq,
                    entry: e.clone(),
                    hash,
                }
            })
            .collect()
    }

    #[test]
    fn normalizing_keeps_line_breaks_and_long_text_out() {
        let mut e = entry("user:a\nforged", &["x\ny", "", "z"]);
        e.route = "r".repeat(1000);
        let n = e.normalized();
        assert_eq!(n.actor, "user:a\u{FFFD}forged");
        assert_eq!(n.subjects, vec!["x\u{FFFD}y".to_owned(), "z".to_owned()]);
        assert_eq!(n.route.chars().count(), MAX_FIELD_CHARS);
        assert_eq!(n.normalized(), n);
        let claimed = entry("user:01019012057", &["device=x-01019012057"]).normalized();
        assert!(!crate::nin::find(&claimed.actor), "{}", claimed.actor);
        assert!(!crate::nin::find(&claimed.subjects[0]));
        assert_eq!(claimed.normalized(), claimed);
    }

    #[test]
    fn action_ids_round_trip() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.id()), Some(a));
        }
    }

    #[test]
    fn subjects_cannot_run_into_each_other() {
        assert_ne!(
            chain_hash(GENESIS, 1, &entry("user:a", &["ab", "c"])),
            chain_hash(GENESIS, 1, &entry("user:a", &["a", "bc"]))
        );
    }

    proptest! {
        #[test]
        fn any_edit_or_removal_breaks_the_chain(
            actors in proptest::collection::vec("[a-z]{1,8}", 2..20),
            victim in any::<prop::sample::Index>(),
            edit in "[a-z]{1,8}",
        ) {
            let entries: Vec<AuditEntry> = actors.iter().map(|a| entry(a, &["d1"])).collect();
            let records = chain(&entries);
            let mut v = ChainVerifier::new(0, GENESIS);
            for r in &records {
                prop_assert!(v.check(r).is_ok());
            }
            prop_assert_eq!(v.checked(), records.len() as u64);

            let i = victim.index(records.len());
            let mut edited = records.clone();
            edited[i].entry.actor = format!("{}-{edit}", edited[i].entry.actor);
            let mut v = ChainVerifier::new(0, GENESIS);
            let broke = edited.iter().find_map(|r| v.check(r).err());
            prop_assert_eq!(broke, Some(ChainBreak::Altered { seq: edited[i].seq }));

            let mut removed = records.clone();
            removed.remove(i);
            let mut v = ChainVerifier::new(0, GENESIS);
            let broke = removed.iter().find_map(|r| v.check(r).err());
            prop_assert!(broke.is_some() || i == records.len() - 1);
        }
    }
}
