//! Who may get in, and what they did: personal accounts, dashboard sessions, machine tokens
//! and the audit log. Kept apart from the fleet's SQL (`shared.rs`); the SQL is portable, and
//! one small macro expands it for each backend's concrete driver.

use crate::shared::{corrupt, from_micros};
use crate::{Result, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use vft_domain::audit::{AuditAction, AuditEntry, ChainedEntry};
use vft_domain::{MunicipalityCode, Role};

/// A person's account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub display_name: Option<String>,
    pub role: Role,
    /// Argon2id PHC string; `None`: signs in with OpenID Connect only.
    pub password_hash: Option<String>,
    /// The identity provider's issuer and subject, once the person has signed in through it.
    pub oidc: Option<(String, String)>,
    pub failed_sign_ins: u32,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub password_hash: Option<String>,
}

/// What to change of an account; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    pub display_name: Option<Option<String>>,
    pub role: Option<Role>,
    pub password_hash: Option<Option<String>>,
    /// `Some(true)`: disable (its sessions end); `Some(false)`: enable again.
    pub disabled: Option<bool>,
    /// Clears failed sign-ins and any lock (also done by a new password).
    pub unlock: bool,
}

/// A stored machine token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub role: Role,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    /// `None`: created before tokens expired; such a token never does.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored token as `vft token list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenListing {
    pub token_hash: String,
    pub record: TokenRecord,
}

/// The audit chain's newest record and its anchor (the last record retention removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: String,
    pub anchor_seq: i64,
    pub anchor_hash: String,
}

/// Which audit records to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Exact actor (`user:kari@…`).
    pub actor: Option<String>,
    pub action: Option<AuditAction>,
    pub municipality: Option<MunicipalityCode>,
    /// Records older than this one (paging).
    pub before_seq: Option<i64>,
    pub limit: u32,
}

#[async_trait]
pub trait AccessStore: Send + Sync {
    async fn create_token(
        &self,
        token_hash: &str,
        role: &Role,
        label: &str,
        created_at: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<()>;

    /// A token that has not expired at `now`.
    async fn find_token(&self, token_hash: &str, now: DateTime<Utc>)
    -> Result<Option<TokenRecord>>;

    /// Every token (by hash), oldest first, expired ones included.
    async fn list_tokens(&self) -> Result<Vec<TokenListing>>;

    /// Deletes a token; false when there was none.
    async fn delete_token(&self, token_hash: &str) -> Result<bool>;

    /// Fails with [`StoreError::Conflict`] when the username is taken.
    async fn create_user(&self, user: &NewUser, now: DateTime<Utc>) -> Result<UserRecord>;

    /// The account after the change; `None` when there is no such user. Disabling an account
    /// or changing its role or password ends its sessions.
    async fn update_user(
        &self,
        username: &str,
        change: &UserChange,
        at: DateTime<Utc>,
    ) -> Result<Option<UserRecord>>;

    async fn find_user(&self, username: &str) -> Result<Option<UserRecord>>;

    async fn find_user_by_oidc(&self, issuer: &str, subject: &str) -> Result<Option<UserRecord>>;

    /// Binds an account to an identity provider's subject (at its first OpenID sign-in).
    async fn bind_oidc(&self, user_id: i64, issuer: &str, subject: &str) -> Result<()>;

    async fn list_users(&self) -> Result<Vec<UserRecord>>;

    /// A successful sign-in: clears failed attempts and notes when.
    async fn sign_in_succeeded(&self, user_id: i64, at: DateTime<Utc>) -> Result<()>;

    /// A wrong password: counts it and, at `lock_after` in a row, locks the account until
    /// `lock_until`. Returns the account's failed attempts in a row.
    async fn sign_in_failed(
        &self,
        user_id: i64,
        lock_after: u32,
        lock_until: DateTime<Utc>,
    ) -> Result<u32>;

    /// Opens a dashboard session for a person (the value is a hash); expired sessions go.
    async fn create_session(
        &self,
        session_hash: &str,
        user_id: i64,
        method: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;

    /// The person behind a session still open at `now` (and not disabled), and when it ends.
    async fn find_session(
        &self,
        session_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(UserRecord, DateTime<Utc>)>>;

    async fn delete_session(&self, session_hash: &str) -> Result<()>;

    /// Appends records to the audit chain in one transaction; returns their sequence numbers.
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<Vec<i64>>;

    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<ChainedEntry>>;

    /// Records after `after_seq` in chain order, at most `limit` (for verification).
    async fn audit_chain(&self, after_seq: i64, limit: u32) -> Result<Vec<ChainedEntry>>;

    async fn audit_head(&self) -> Result<AuditHead>;

    /// Removes records older than `before`, moving the anchor to the last one removed.
    /// Returns how many were removed.
    async fn purge_audit(&self, before: DateTime<Utc>) -> Result<u64>;
}

pub(crate) fn role_from_columns(role: &str, municipalities: Option<&str>) -> Result<Role> {
    let codes = municipalities
        .unwrap_or_default()
        .split(',')
        .filter(|c| !c.is_empty())
        .map(MunicipalityCode::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(corrupt)?;
    Role::parse(role, codes).map_err(corrupt)
}

pub(crate) type UserRow = (
    i64,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
    i64,
    Option<i64>,
    Option<i64>,
);

pub(crate) const USER_COLUMNS: &str = "u.id, u.username, u.display_name, u.role, u.municipalities, \
     u.password_hash, u.oidc_issuer, u.oidc_subject, u.failed_sign_ins, u.locked_until, \
     u.created_at, u.last_sign_in_at, u.disabled_at";

pub(crate) fn user_record(row: UserRow) -> Result<UserRecord> {
    let (
        id,
        username,
        display_name,
        role,
        municipalities,
        password_hash,
        issuer,
        subject,
        failed,
        locked_until,
        created_at,
        last_sign_in_at,
        disabled_at,
    ) = row;
    let time = |t: Option<i64>| t.map(from_micros).transpose();
    Ok(UserRecord {
        id,
        username,
        display_name,
        role: role_from_columns(&role, municipalities.as_deref())?,
        password_hash,
        oidc: issuer.zip(subject),
        failed_sign_ins: u32::try_from(failed).unwrap_or(u32::MAX),
        locked_until: time(locked_until)?,
        created_at: from_micros(created_at)?,
        last_sign_in_at: time(last_sign_in_at)?,
        disabled_at: time(disabled_at)?,
    })
}

pub(crate) type TokenRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
);

pub(crate) fn token_listing(row: TokenRow) -> Result<TokenListing> {
    let (token_hash, role, municipalities, label, created_at, expires_at) = row;
    Ok(TokenListing {
        token_hash,
        record: TokenRecord {
            role: role_from_columns(&role, municipalities.as_deref())?,
            label,
            created_at: from_micros(created_at)?,
            expires_at: expires_at.map(from_micros).transpose()?,
        },
    })
}

pub(crate) type AuditRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    String,
);

pub(crate) const AUDIT_COLUMNS: &str =
    "seq, at, actor, role, action, route, municipality, subjects, client, status, hash";

/// Subjects are stored one per line ([`AuditEntry::normalized`] keeps line breaks out).
pub(crate) fn subjects_text(subjects: &[String]) -> String {
    subjects.join("\n")
}

pub(crate) fn audit_record(row: AuditRow) -> Result<ChainedEntry> {
    let (seq, at, actor, role, action, route, municipality, subjects, client, status, hash) = row;
    Ok(ChainedEntry {
        seq,
        entry: AuditEntry {
            at_micros: at,
            actor,
            role,
            action: AuditAction::parse(&action)
                .ok_or_else(|| StoreError::Corrupt(format!("audit action {action:?}")))?,
            route,
            municipality,
            subjects: if subjects.is_empty() {
                Vec::new()
            } else {
                subjects.split('\n').map(str::to_owned).collect()
            },
            client,
            status: u16::try_from(status).map_err(corrupt)?,
        },
        hash,
    })
}

/// Whether a database error is a unique-key violation (a username taken).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

macro_rules! impl_access {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::access::AccessStore for $store {
            async fn create_token(
                &self,
                token_hash: &str,
                role: &vft_domain::Role,
                label: &str,
                created_at: chrono::DateTime<chrono::Utc>,
                expires_at: Option<chrono::DateTime<chrono::Utc>>,
            ) -> $crate::Result<()> {
                use $crate::shared::micros;
                sqlx::query::<$db>(
                    "INSERT INTO api_tokens (token_hash, role, municipality, label, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(token_hash)
                .bind(role.name())
                .bind(role.municipalities_text())
                .bind(label)
                .bind(micros(created_at))
                .bind(expires_at.map(micros))
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn find_token(
                &self,
                token_hash: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Option<$crate::TokenRecord>> {
                let row: Option<$crate::access::TokenRow> = sqlx::query_as(
                    "SELECT token_hash, role, municipality, label, created_at, expires_at \
                     FROM api_tokens WHERE token_hash = $1 AND (expires_at IS NULL OR expires_at > $2)",
                )
                .bind(token_hash)
                .bind($crate::shared::micros(now))
                .fetch_optional(&self.reader)
                .await?;
                Ok(row.map($crate::access::token_listing).transpose()?.map(|l| l.record))
            }

            async fn list_tokens(&self) -> $crate::Result<Vec<$crate::TokenListing>> {
                let rows: Vec<$crate::access::TokenRow> = sqlx::query_as(
                    "SELECT token_hash, role, municipality, label, created_at, expires_at \
                     FROM api_tokens ORDER BY created_at, token_hash",
                )
                .fetch_all(&self.reader)
                .await?;
                rows.into_iter().map($crate::access::token_listing).collect()
            }

            async fn delete_token(&self, token_hash: &str) -> $crate::Result<bool> {
                let done = sqlx::query::<$db>("DELETE FROM api_tokens WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(&self.writer)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn create_user(
                &self,
                user: &$crate::access::NewUser,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<$crate::access::UserRecord> {
                let inserted = sqlx::query::<$db>(
                    "INSERT INTO users (username, display_name, role, municipalities, password_hash, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&user.username)
                .bind(&user.display_name)
                .bind(user.role.name())
                .bind(user.role.municipalities_text())
                .bind(&user.password_hash)
                .bind($crate::shared::micros(now))
                .execute(&self.writer)
                .await;
                match inserted {
                    Err(e) if $crate::access::is_unique_violation(&e) => {
                        return Err($crate::StoreError::Conflict(format!(
                            "a user named {} exists",
                            user.username
                        )));
                    }
                    other => {
                        other?;
                    }
                }
                self.find_user_on_writer(&user.username)
                    .await?
                    .ok_or_else(|| $crate::StoreError::Corrupt("a new user vanished".into()))
            }

            async fn update_user(
                &self,
                username: &str,
                change: &$crate::access::UserChange,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Option<$crate::access::UserRecord>> {
                use $crate::shared::micros;
                let mut tx = self.writer.begin().await?;
                let id: Option<(i64,)> = sqlx::query_as("SELECT id FROM users WHERE username = $1")
                    .bind(username)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((id,)) = id else {
                    return Ok(None);
                };
                let mut ends_sessions = false;
                if let Some(name) = &change.display_name {
                    sqlx::query::<$db>("UPDATE users SET display_name = $1 WHERE id = $2")
                        .bind(name)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(role) = &change.role {
                    sqlx::query::<$db>("UPDATE users SET role = $1, municipalities = $2 WHERE id = $3")
                        .bind(role.name())
                        .bind(role.municipalities_text())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    ends_sessions = true;
                }
                if let Some(hash) = &change.password_hash {
                    sqlx::query::<$db>(
                        "UPDATE users SET password_hash = $1, failed_sign_ins = 0, locked_until = NULL WHERE id = $2",
                    )
                    .bind(hash)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    ends_sessions = true;
                }
                if let Some(disabled) = change.disabled {
                    sqlx::query::<$db>("UPDATE users SET disabled_at = $1 WHERE id = $2")
                        .bind(disabled.then(|| micros(at)))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    ends_sessions |= disabled;
                }
                if change.unlock {
                    sqlx::query::<$db>("UPDATE users SET failed_sign_ins = 0, locked_until = NULL WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                if ends_sessions {
                    sqlx::query::<$db>("DELETE FROM sessions WHERE user_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                self.find_user_on_writer(username).await
            }

            async fn find_user(&self, username: &str) -> $crate::Result<Option<$crate::access::UserRecord>> {
                let row: Option<$crate::access::UserRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM users u WHERE u.username = $1",
                    $crate::access::USER_COLUMNS
                ))
                .bind(username)
                .fetch_optional(&self.reader)
                .await?;
                row.map($crate::access::user_record).transpose()
            }

            async fn find_user_by_oidc(
                &self,
                issuer: &str,
                subject: &str,
            ) -> $crate::Result<Option<$crate::access::UserRecord>> {
                let row: Option<$crate::access::UserRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM users u WHERE u.oidc_issuer = $1 AND u.oidc_subject = $2",
                    $crate::access::USER_COLUMNS
                ))
                .bind(issuer)
                .bind(subject)
                .fetch_optional(&self.reader)
                .await?;
                row.map($crate::access::user_record).transpose()
            }

            async fn bind_oidc(&self, user_id: i64, issuer: &str, subject: &str) -> $crate::Result<()> {
                let done = sqlx::query::<$db>(
                    "UPDATE users SET oidc_issuer = $1, oidc_subject = $2 WHERE id = $3 AND oidc_subject IS NULL",
                )
                .bind(issuer)
                .bind(subject)
                .bind(user_id)
                .execute(&self.writer)
                .await;
                match done {
                    Err(e) if $crate::access::is_unique_violation(&e) => Err($crate::StoreError::Conflict(
                        "this identity is bound to another user".into(),
                    )),
                    other => other.map(|_| ()).map_err(Into::into),
                }
            }

            async fn list_users(&self) -> $crate::Result<Vec<$crate::access::UserRecord>> {
                let rows: Vec<$crate::access::UserRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM users u ORDER BY u.username",
                    $crate::access::USER_COLUMNS
                ))
                .fetch_all(&self.reader)
                .await?;
                rows.into_iter().map($crate::access::user_record).collect()
            }

            async fn sign_in_succeeded(&self, user_id: i64, at: chrono::DateTime<chrono::Utc>) -> $crate::Result<()> {
                sqlx::query::<$db>(
                    "UPDATE users SET failed_sign_ins = 0, locked_until = NULL, last_sign_in_at = $1 WHERE id = $2",
                )
                .bind($crate::shared::micros(at))
                .bind(user_id)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn sign_in_failed(
                &self,
                user_id: i64,
                lock_after: u32,
                lock_until: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<u32> {
                // One statement, so concurrent wrong passwords all count.
                let (failed,): (i64,) = sqlx::query_as(
                    "UPDATE users SET failed_sign_ins = failed_sign_ins + 1, \
                     locked_until = CASE WHEN failed_sign_ins + 1 >= $1 THEN $2 ELSE locked_until END \
                     WHERE id = $3 RETURNING failed_sign_ins",
                )
                .bind(i64::from(lock_after))
                .bind($crate::shared::micros(lock_until))
                .bind(user_id)
                .fetch_one(&self.writer)
                .await?;
                Ok(u32::try_from(failed).unwrap_or(u32::MAX))
            }

            async fn create_session(
                &self,
                session_hash: &str,
                user_id: i64,
                method: &str,
                now: chrono::DateTime<chrono::Utc>,
                expires_at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<()> {
                use $crate::shared::micros;
                let mut tx = self.writer.begin().await?;
                sqlx::query::<$db>("DELETE FROM sessions WHERE expires_at <= $1")
                    .bind(micros(now))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query::<$db>(
                    "INSERT INTO sessions (session_hash, user_id, method, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(session_hash)
                .bind(user_id)
                .bind(method)
                .bind(micros(now))
                .bind(micros(expires_at))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn find_session(
                &self,
                session_hash: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Option<($crate::access::UserRecord, chrono::DateTime<chrono::Utc>)>> {
                let row: Option<(i64,)> = sqlx::query_as(
                    "SELECT s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.session_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL",
                )
                .bind(session_hash)
                .bind($crate::shared::micros(now))
                .fetch_optional(&self.reader)
                .await?;
                let Some((expires,)) = row else {
                    return Ok(None);
                };
                let user: Option<$crate::access::UserRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.session_hash = $1",
                    $crate::access::USER_COLUMNS
                ))
                .bind(session_hash)
                .fetch_optional(&self.reader)
                .await?;
                user.map(|u| Ok(($crate::access::user_record(u)?, $crate::shared::from_micros(expires)?)))
                    .transpose()
            }

            async fn delete_session(&self, session_hash: &str) -> $crate::Result<()> {
                sqlx::query::<$db>("DELETE FROM sessions WHERE session_hash = $1")
                    .bind(session_hash)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn append_audit(&self, entries: &[vft_domain::audit::AuditEntry]) -> $crate::Result<Vec<i64>> {
                if entries.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.writer.begin().await?;
                // The UPDATE takes the head row's lock (PostgreSQL), so appenders on several
                // servers chain one after another; SQLite has one writer anyway.
                let (last_seq, last_hash): (i64, String) = sqlx::query_as(
                    "UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq - $1, hash",
                )
                .bind(entries.len() as i64)
                .fetch_one(&mut *tx)
                .await?;
                let mut previous = last_hash;
                let mut seqs = Vec::with_capacity(entries.len());
                for (entry, seq) in entries.iter().zip(last_seq + 1..) {
                    let entry = entry.normalized();
                    let hash = vft_domain::audit::chain_hash(&previous, seq, &entry);
                    sqlx::query::<$db>(&format!(
                        "INSERT INTO audit_log ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                        $crate::access::AUDIT_COLUMNS
                    ))
                    .bind(seq)
                    .bind(entry.at_micros)
                    .bind(&entry.actor)
                    .bind(&entry.role)
                    .bind(entry.action.id())
                    .bind(&entry.route)
                    .bind(&entry.municipality)
                    .bind($crate::access::subjects_text(&entry.subjects))
                    .bind(&entry.client)
                    .bind(i64::from(entry.status))
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await?;
                    previous = hash;
                    seqs.push(seq);
                }
                sqlx::query::<$db>("UPDATE audit_head SET hash = $1 WHERE id = 1")
                    .bind(&previous)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(seqs)
            }

            async fn audit_records(
                &self,
                query: &$crate::access::AuditQuery,
            ) -> $crate::Result<Vec<vft_domain::audit::ChainedEntry>> {
                use $crate::shared::micros;
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM audit_log WHERE 1 = 1",
                    $crate::access::AUDIT_COLUMNS
                ));
                if let Some(from) = query.from {
                    qb.push(" AND at >= ").push_bind(micros(from));
                }
                if let Some(to) = query.to {
                    qb.push(" AND at < ").push_bind(micros(to));
                }
                if let Some(actor) = &query.actor {
                    qb.push(" AND actor = ").push_bind(actor.clone());
                }
                if let Some(action) = query.action {
                    qb.push(" AND action = ").push_bind(action.id());
                }
                if let Some(m) = &query.municipality {
                    qb.push(" AND municipality = ").push_bind(m.to_string());
                }
                if let Some(before) = query.before_seq {
                    qb.push(" AND seq < ").push_bind(before);
                }
                qb.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(query.limit));
                let rows: Vec<$crate::access::AuditRow> = qb.build_query_as().fetch_all(&self.reader).await?;
                rows.into_iter().map($crate::access::audit_record).collect()
            }

            async fn audit_chain(
                &self,
                after_seq: i64,
                limit: u32,
            ) -> $crate::Result<Vec<vft_domain::audit::ChainedEntry>> {
                let rows: Vec<$crate::access::AuditRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
                    $crate::access::AUDIT_COLUMNS
                ))
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await?;
                rows.into_iter().map($crate::access::audit_record).collect()
            }

            async fn audit_head(&self) -> $crate::Result<$crate::access::AuditHead> {
                let (seq, hash, anchor_seq, anchor_hash): (i64, String, i64, String) = sqlx::query_as(
                    "SELECT seq, hash, anchor_seq, anchor_hash FROM audit_head WHERE id = 1",
                )
                .fetch_one(&self.reader)
                .await?;
                Ok($crate::access::AuditHead { seq, hash, anchor_seq, anchor_hash })
            }

            async fn purge_audit(&self, before: chrono::DateTime<chrono::Utc>) -> $crate::Result<u64> {
                let mut tx = self.writer.begin().await?;
                // The longest prefix of the chain older than `before`: a record appended a moment
                // out of time order is kept with those after it, never removed early.
                let last: Option<(i64, String)> = sqlx::query_as(
                    "SELECT seq, hash FROM audit_log WHERE seq < COALESCE( \
                     (SELECT MIN(seq) FROM audit_log WHERE at >= $1), \
                     (SELECT MAX(seq) + 1 FROM audit_log)) \
                     ORDER BY seq DESC LIMIT 1",
                )
                .bind($crate::shared::micros(before))
                .fetch_optional(&mut *tx)
                .await?;
                let Some((seq, hash)) = last else {
                    return Ok(0);
                };
                // The anchor moves first: the delete trigger lets only records up to it go.
                sqlx::query::<$db>("UPDATE audit_head SET anchor_seq = $1, anchor_hash = $2 WHERE id = 1")
                    .bind(seq)
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query::<$db>("DELETE FROM audit_log WHERE seq <= $1")
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }
        }

        impl $store {
            /// Read on the writer, so a change is seen at once (SQLite's readers are other
            /// connections).
            async fn find_user_on_writer(&self, username: &str) -> $crate::Result<Option<$crate::access::UserRecord>> {
                let row: Option<$crate::access::UserRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM users u WHERE u.username = $1",
                    $crate::access::USER_COLUMNS
                ))
                .bind(username)
                .fetch_optional(&self.writer)
                .await?;
                row.map($crate::access::user_record).transpose()
            }
        }
    };
}

pub(crate) use impl_access;
