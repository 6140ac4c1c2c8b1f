//! Who may see what: a coordinator sees the region, a municipality only itself.

use crate::ids::MunicipalityCode;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Coordinator,
    Municipality(MunicipalityCode),
}

impl Role {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Coordinator => "coordinator",
            Self::Municipality(_) => "municipality",
        }
    }

    pub fn municipality(&self) -> Option<&MunicipalityCode> {
        match self {
            Self::Coordinator => None,
            Self::Municipality(m) => Some(m),
        }
    }

    /// Whether this role may see data of `municipality`.
    pub fn may_see(&self, municipality: &MunicipalityCode) -> bool {
        self.municipality().is_none_or(|own| own == municipality)
    }
}

/// Tokens are random and long, so a plain SHA-256 is enough to keep them unusable if the
/// database leaks (no password stretching needed); only the hash is stored.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A stable fingerprint of several byte strings (length-prefixed, so parts cannot run into
/// each other). Used to store a redelivered dead letter once.
pub fn fingerprint(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn municipality_roles_see_only_themselves() {
        let aal = MunicipalityCode::parse("3328").expect("code");
        let hol = MunicipalityCode::parse("3330").expect("code");
        assert!(Role::Coordinator.may_see(&hol));
        assert!(Role::Municipality(aal.clone()).may_see(&aal));
        assert!(!Role::Municipality(aal).may_see(&hol));
    }

    #[test]
    fn hashes_and_fingerprints_are_stable_and_distinct() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
    }
}
