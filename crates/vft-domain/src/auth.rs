//! Who may do what. People sign in with personal accounts (local password or OpenID Connect);
//! integrations use machine tokens. Both carry one of four roles:
//! - coordinator: the region's data, publishing, imports, timeouts, accounts and the audit log;
//! - municipality user: the data of one or several municipalities, one at a time;
//! - operator: runs the service (accounts, tokens, MQTT credentials, dead letters), no fleet data;
//! - auditor: reads the audit log only.

use crate::ids::MunicipalityCode;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Coordinator,
    /// Sorted, without duplicates, never empty (see [`Role::municipality_user`]).
    Municipality(Vec<MunicipalityCode>),
    Operator,
    Auditor,
}

/// What a request may need beyond being signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Figures, devices, reconciliation of the municipalities the role may see.
    ReadFleet,
    /// Publish a month, import vendor exports, set device timeouts.
    ChangeFleet,
    /// Dead letters with their (masked) payloads.
    ReadDeadLetters,
    /// Personal accounts, machine tokens and MQTT credentials.
    ManageAccess,
    ReadAuditLog,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error("unknown role {0:?}: coordinator, municipality, operator or auditor")]
    Unknown(String),
    #[error("a municipality user needs at least one municipality")]
    NoMunicipality,
    #[error("only a municipality user has municipalities")]
    UnexpectedMunicipality,
}

impl Role {
    /// A municipality user's role; `None` without a municipality.
    pub fn municipality_user(codes: impl IntoIterator<Item = MunicipalityCode>) -> Option<Self> {
        let mut codes: Vec<MunicipalityCode> = codes.into_iter().collect();
        codes.sort();
        codes.dedup();
        (!codes.is_empty()).then_some(Self::Municipality(codes))
    }

    /// From a role name and its municipalities (as stored, or as given on the command line).
    pub fn parse(name: &str, municipalities: Vec<MunicipalityCode>) -> Result<Self, RoleError> {
        let role = match name {
            "coordinator" => Self::Coordinator,
            "municipality" => {
                return Self::municipality_user(municipalities).ok_or(RoleError::NoMunicipality);
            }
            "operator" => Self::Operator,
            "auditor" => Self::Auditor,
            other => return Err(RoleError::Unknown(other.chars().take(32).collect())),
        };
        if municipalities.is_empty() {
            Ok(role)
        } else {
            Err(RoleError::UnexpectedMunicipality)
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Coordinator => "coordinator",
            Self::Municipality(_) => "municipality",
            Self::Operator => "operator",
            Self::Auditor => "auditor",
        }
    }

    /// A municipality user's municipalities; empty for every other role.
    pub fn municipalities(&self) -> &[MunicipalityCode] {
        match self {
            Self::Municipality(codes) => codes,
            _ => &[],
        }
    }

    /// The municipalities as stored: codes joined by commas (`None` for other roles).
    pub fn municipalities_text(&self) -> Option<String> {
        match self {
            Self::Municipality(codes) => Some(
                codes
                    .iter()
                    .map(MunicipalityCode::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        }
    }

    /// Whether this role may see data of `municipality`.
    pub fn may_see(&self, municipality: &MunicipalityCode) -> bool {
        match self {
            Self::Coordinator => true,
            Self::Municipality(codes) => codes.contains(municipality),
            Self::Operator | Self::Auditor => false,
        }
    }

    pub fn may(&self, capability: Capability) -> bool {
        use Capability::*;
        match self {
            Self::Coordinator => true,
            Self::Municipality(_) => capability == ReadFleet,
            Self::Operator => matches!(capability, ReadDeadLetters | ManageAccess),
            Self::Auditor => capability == ReadAuditLog,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.municipalities_text() {
            Some(codes) => write!(f, "{} {codes}", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

/// Who made a request: a person's account, a machine token, or someone at the server's own
/// command line. Written into the audit log as [`Principal::actor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub actor: Actor,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User {
        id: i64,
        username: String,
    },
    /// A machine token: the start of its hash (as `vft token list` shows it) and its label.
    Token {
        id: String,
        label: String,
    },
    /// The command line on the server, as the operating system's user.
    Local {
        os_user: String,
    },
}

impl Principal {
    /// `user:kari@hol.kommune.no`, `token:1a2b3c4d (Visma)`, `local:root`.
    pub fn actor(&self) -> String {
        match &self.actor {
            Actor::User { username, .. } => format!("user:{username}"),
            Actor::Token { id, label } => format!("token:{id} ({label})"),
            Actor::Local { os_user } => format!("local:{os_user}"),
        }
    }
}

/// Longest username (an e-mail address fits).
pub const MAX_USERNAME_LEN: usize = 128;
/// Shortest password a person may choose. Length over composition rules (NIST SP 800-63B).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (hashing a megabyte on every attempt would be a denial of service).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Wrong passwords in a row that lock an account ([`LOCKOUT_MINUTES`]).
pub const LOCKOUT_AFTER_FAILURES: u32 = 5;
pub const LOCKOUT_MINUTES: i64 = 15;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error(
        "a username is 1-{MAX_USERNAME_LEN} characters of a-z 0-9 . _ - @ + (lower case; an e-mail address works)"
    )]
    BadUsername,
    #[error(
        "a password has at least {MIN_PASSWORD_CHARS} characters and at most {MAX_PASSWORD_BYTES} bytes"
    )]
    BadPassword,
    #[error("{0} must not contain a national identity number")]
    IdentityNumber(&'static str),
    #[error("{0} is 1-200 printable characters")]
    BadText(&'static str),
}

/// A person's username, lower-cased: usernames are compared as e-mail addresses are.
pub fn parse_username(raw: &str) -> Result<String, AccountError> {
    let name = raw.trim().to_lowercase();
    if crate::nin::find(&name) {
        return Err(AccountError::IdentityNumber("a username"));
    }
    let ok = !name.is_empty()
        && name.len() <= MAX_USERNAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'+'));
    if ok {
        Ok(name)
    } else {
        Err(AccountError::BadUsername)
    }
}

/// A display name or label: 1-200 printable characters and no national identity number.
pub fn check_free_text(what: &'static str, text: &str) -> Result<(), AccountError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > 200 || text.chars().any(char::is_control) {
        return Err(AccountError::BadText(what));
    }
    if crate::nin::find(text) {
        return Err(AccountError::IdentityNumber(what));
    }
    Ok(())
}

pub fn check_new_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() >= MIN_PASSWORD_CHARS && password.len() <= MAX_PASSWORD_BYTES {
        Ok(())
    } else {
        Err(AccountError::BadPassword)
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

    fn code(c: &str) -> MunicipalityCode {
        MunicipalityCode::parse(c).expect("code")
    }

    #[test]
    fn municipality_roles_see_only_themselves() {
        let aal = code("3328");
        let hol = code("3330");
        let gol = code("3324");
        assert!(Role::Coordinator.may_see(&hol));
        let both = Role::municipality_user([hol.clone(), aal.clone(), aal.clone()]).expect("role");
        assert_eq!(both.municipalities(), &[aal.clone(), hol.clone()]);
        assert!(both.may_see(&aal) && both.may_see(&hol) && !both.may_see(&gol));
        assert!(!Role::Operator.may_see(&aal));
        assert!(!Role::Auditor.may_see(&aal));
        assert_eq!(Role::municipality_user([]), None);
    }

    #[test]
    fn capabilities_follow_the_roles() {
        use Capability::*;
        let m = Role::municipality_user([code("3328")]).expect("role");
        for cap in [
            ReadFleet,
            ChangeFleet,
            ReadDeadLetters,
            ManageAccess,
            ReadAuditLog,
        ] {
            assert!(Role::Coordinator.may(cap));
        }
        assert!(m.may(ReadFleet) && !m.may(ChangeFleet) && !m.may(ReadAuditLog));
        assert!(Role::Operator.may(ManageAccess) && !Role::Operator.may(ReadFleet));
        assert!(!Role::Operator.may(ReadAuditLog));
        assert!(Role::Auditor.may(ReadAuditLog) && !Role::Auditor.may(ReadFleet));
        assert!(!Role::Auditor.may(ManageAccess));
    }

    #[test]
    fn roles_parse_as_stored() {
        assert_eq!(Role::parse("auditor", vec![]), Ok(Role::Auditor));
        assert_eq!(
            Role::parse("municipality", vec![]),
            Err(RoleError::NoMunicipality)
        );
        assert_eq!(
            Role::parse("operator", vec![code("3328")]),
            Err(RoleError::UnexpectedMunicipality)
        );
        assert!(matches!(
            Role::parse("root", vec![]),
            Err(RoleError::Unknown(_))
        ));
        let m = Role::parse("municipality", vec![code("3330"), code("3328")]).expect("role");
        assert_eq!(m.municipalities_text().as_deref(), Some("3328,3330"));
    }

    #[test]
    fn usernames_and_passwords_are_checked() {
        assert_eq!(
            parse_username(" Kari@Hol.Kommune.no ").as_deref(),
            Ok("kari@hol.kommune.no")
        );
        assert!(parse_username("kari nordmann").is_err());
        assert!(parse_username("").is_err());
        assert!(parse_username(&"a".repeat(129)).is_err());
        assert_eq!(
            parse_username("01019012057@hol.kommune.no"),
            Err(AccountError::IdentityNumber("a username"))
        );
        assert!(check_free_text("a name", "Kari Nordmann").is_ok());
        assert!(check_free_text("a name", "Kari 010190 12057").is_err());
        assert!(check_free_text("a label", "").is_err());
        assert!(check_new_password("kort").is_err());
        assert!(check_new_password("korrekt hest batteri").is_ok());
        assert!(check_new_password(&"x".repeat(2000)).is_err());
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
