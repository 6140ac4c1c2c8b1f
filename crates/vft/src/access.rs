//! `vft user …`, `vft token …` and `vft audit …`: accounts, machine tokens and the audit log
//! from the server's command line. What these commands change is recorded in the audit log as
//! done by `local:<the operating system's user>`.

use crate::config::Config;
use crate::open_store;
use anyhow::Context;
use clap::Subcommand;
use std::io::Read;
use vft_app::accounts::{token_id, token_terms};
use vft_domain::audit::{AuditAction, AuditEntry, ChainVerifier};
use vft_domain::auth::{check_new_password, parse_username};
use vft_domain::{MunicipalityCode, Role};
use vft_store::{NewUser, Store, UserChange};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Coordinator,
    Municipality,
    Operator,
    Auditor,
}

impl RoleArg {
    fn name(self) -> &'static str {
        match self {
            Self::Coordinator => "coordinator",
            Self::Municipality => "municipality",
            Self::Operator => "operator",
            Self::Auditor => "auditor",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a machine token for an integration and print it as the last line of stdout
    /// (only its hash is stored). Tokens do not open the dashboard: people have accounts.
    Create {
        #[arg(long, value_enum)]
        role: RoleArg,
        /// With --role municipality: the municipality number(s), e.g. 3328 or 3328,3330.
        #[arg(long, value_delimiter = ',')]
        municipality: Vec<String>,
        /// Who holds the token and what for (shown in `token list` and the audit log).
        #[arg(long)]
        label: String,
        /// Days until the token stops working (1-730).
        #[arg(long, default_value_t = vft_app::accounts::DEFAULT_TOKEN_DAYS)]
        expires_in_days: u32,
    },
    /// List tokens: id (start of the stored hash), role, municipalities, created, expires,
    /// label. The tokens themselves are not stored and cannot be shown.
    List,
    /// Revoke a token by its id from `token list` (or a longer start of its hash): it stops
    /// working at once.
    Revoke {
        /// At least 8 hex digits.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a personal account. Without --password-stdin, it signs in with OpenID Connect
    /// only (its username is matched against the identity provider's e-mail claim).
    Create {
        /// Lower-cased; an e-mail address works.
        username: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// With --role municipality: the municipality number(s), e.g. 3328 or 3328,3330.
        #[arg(long, value_delimiter = ',')]
        municipality: Vec<String>,
        /// The person's name, as the dashboard shows it.
        #[arg(long)]
        name: Option<String>,
        /// Read a local password (at least 12 characters) from stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
    /// Set a new local password read from stdin (ends the account's sessions, lifts a lock).
    Password {
        username: String,
    },
    /// Change an account's role (ends its sessions).
    Role {
        username: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long, value_delimiter = ',')]
        municipality: Vec<String>,
    },
    /// Disable an account (its sessions end at once; the account and its history stay).
    Disable {
        username: String,
    },
    Enable {
        username: String,
    },
    /// Lift a lock after wrong passwords.
    Unlock {
        username: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit log's hash chain; exits non-zero at the first record that was
    /// changed, inserted or removed.
    Verify,
    /// Print the newest records (newest first).
    Tail {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

fn role(config: &Config, role: RoleArg, municipalities: &[String]) -> anyhow::Result<Role> {
    let registry = config.registry()?;
    let codes = municipalities
        .iter()
        .map(|m| {
            let code = MunicipalityCode::parse(m.trim())?;
            anyhow::ensure!(
                registry.contains(&code),
                "unknown municipality {code}: not in the configured region"
            );
            Ok(code)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Role::parse(role.name(), codes).map_err(|e| {
        anyhow::anyhow!("{e} (--municipality goes with --role municipality, and only with it)")
    })
}

fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Records a change made on the command line.
async fn record(store: &dyn Store, command: &str, subjects: Vec<String>) -> anyhow::Result<()> {
    store
        .append_audit(&[AuditEntry {
            at_micros: chrono::Utc::now().timestamp_micros(),
            actor: format!("local:{}", os_user()),
            role: "local".into(),
            action: AuditAction::Change,
            route: format!("vft {command}"),
            municipality: None,
            subjects,
            client: "-".into(),
            status: 0,
        }])
        .await
        .context("recording the change in the audit log")?;
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut text)
        .context("reading the password from stdin")?;
    let password = text.trim_end_matches(['\r', '\n']).to_owned();
    check_new_password(&password)?;
    Ok(password)
}

fn hash(password: &str) -> anyhow::Result<String> {
    Ok(vft_domain::mqtt_access::hash_password(
        password,
        rand::random(),
    )?)
}

pub async fn token(config: &Config, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            role: role_arg,
            municipality,
            label,
            expires_in_days,
        } => {
            let role = role(config, role_arg, &municipality)?;
            // Checked before the database is opened too, so a bad label is what the operator
            // hears first.
            token_terms(&label, Some(expires_in_days), chrono::Utc::now())?;
            let store = open_store(config).await?;
            let issued = vft_app::accounts::create_token(
                store.as_ref(),
                role,
                &label,
                Some(expires_in_days),
                chrono::Utc::now(),
            )
            .await?;
            let (secret, stored) = (issued.secret, issued.listing.record);
            let (role, label) = (stored.role, stored.label.unwrap_or_default());
            let expires_at = stored.expires_at.unwrap_or_default();
            record(
                store.as_ref(),
                "token create",
                vec![
                    format!("token={}", token_id(&issued.listing.token_hash)),
                    format!("role={role}"),
                    format!("label={label}"),
                ],
            )
            .await?;
            eprintln!(
                "Created a {} token ({label}), valid until {} UTC. It is shown once; vft keeps only its hash.",
                role.name(),
                expires_at.format("%Y-%m-%d %H:%M")
            );
            println!("{secret}");
            Ok(())
        }
        TokenCommand::List => {
            let store = open_store(config).await?;
            let now = chrono::Utc::now();
            println!(
                "{:<14}{:<14}{:<16}{:<18}{:<18}label",
                "id", "role", "municipality", "created (UTC)", "expires (UTC)"
            );
            for t in store.list_tokens().await? {
                let expires = match t.record.expires_at {
                    None => "never".to_owned(),
                    Some(e) if e <= now => format!("EXPIRED {}", e.format("%Y-%m-%d")),
                    Some(e) => e.format("%Y-%m-%d %H:%M").to_string(),
                };
                println!(
                    "{:<14}{:<14}{:<16}{:<18}{:<18}{}",
                    token_id(&t.token_hash),
                    t.record.role.name(),
                    t.record
                        .role
                        .municipalities_text()
                        .unwrap_or_else(|| "-".into()),
                    t.record.created_at.format("%Y-%m-%d %H:%M"),
                    expires,
                    t.record.label.as_deref().unwrap_or("")
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            let id = id.trim().to_ascii_lowercase();
            anyhow::ensure!(
                id.len() >= 8 && id.chars().all(|c| c.is_ascii_hexdigit()),
                "a token id is at least 8 hex digits (see `vft token list`)"
            );
            let store = open_store(config).await?;
            let tokens = store.list_tokens().await?;
            let matches: Vec<_> = tokens
                .iter()
                .filter(|t| t.token_hash.starts_with(&id))
                .collect();
            let token = match matches.as_slice() {
                [one] => *one,
                [] => anyhow::bail!("no token with id {id}"),
                _ => anyhow::bail!("{} tokens start with {id}; give more digits", matches.len()),
            };
            store.delete_token(&token.token_hash).await?;
            record(store.as_ref(), "token revoke", vec![format!("token={id}")]).await?;
            eprintln!("Revoked the {} token {id}.", token.record.role.name());
            Ok(())
        }
    }
}

pub async fn user(config: &Config, command: UserCommand) -> anyhow::Result<()> {
    let change = |username: &str| -> anyhow::Result<String> { Ok(parse_username(username)?) };
    match command {
        UserCommand::Create {
            username,
            role: role_arg,
            municipality,
            name,
            password_stdin,
        } => {
            let username = change(&username)?;
            let role = role(config, role_arg, &municipality)?;
            if let Some(name) = &name {
                vft_domain::auth::check_free_text("a name", name)?;
            }
            let password_hash = if password_stdin {
                Some(hash(&read_password()?)?)
            } else {
                None
            };
            let store = open_store(config).await?;
            let signs_in = if password_hash.is_some() {
                "a local password"
            } else {
                "OpenID Connect only"
            };
            store
                .create_user(
                    &NewUser {
                        username: username.clone(),
                        display_name: name,
                        role: role.clone(),
                        password_hash,
                    },
                    chrono::Utc::now(),
                )
                .await?;
            record(
                store.as_ref(),
                "user create",
                vec![format!("user={username}"), format!("role={role}")],
            )
            .await?;
            eprintln!("Created {username} ({role}); signs in with {signs_in}.");
            Ok(())
        }
        UserCommand::List => {
            let store = open_store(config).await?;
            let now = chrono::Utc::now();
            println!(
                "{:<32}{:<14}{:<16}{:<10}{:<18}state",
                "username", "role", "municipality", "sign-in", "last (UTC)"
            );
            for u in store.list_users().await? {
                let method = match (u.password_hash.is_some(), u.oidc.is_some()) {
                    (true, true) => "both",
                    (true, false) => "password",
                    (false, _) => "oidc",
                };
                let state = if u.disabled_at.is_some() {
                    "disabled"
                } else if u.locked_until.is_some_and(|t| t > now) {
                    "locked"
                } else {
                    "active"
                };
                println!(
                    "{:<32}{:<14}{:<16}{:<10}{:<18}{state}",
                    u.username,
                    u.role.name(),
                    u.role.municipalities_text().unwrap_or_else(|| "-".into()),
                    method,
                    u.last_sign_in_at
                        .map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M").to_string()),
                );
            }
            Ok(())
        }
        UserCommand::Password { username } => {
            let username = change(&username)?;
            let password_hash = hash(&read_password()?)?;
            update(
                config,
                &username,
                "user password",
                UserChange {
                    password_hash: Some(Some(password_hash)),
                    ..Default::default()
                },
            )
            .await
        }
        UserCommand::Role {
            username,
            role: role_arg,
            municipality,
        } => {
            let username = change(&username)?;
            let role = role(config, role_arg, &municipality)?;
            update(
                config,
                &username,
                "user role",
                UserChange {
                    role: Some(role),
                    ..Default::default()
                },
            )
            .await
        }
        UserCommand::Disable { username } => {
            let username = change(&username)?;
            update(
                config,
                &username,
                "user disable",
                UserChange {
                    disabled: Some(true),
                    ..Default::default()
                },
            )
            .await
        }
        UserCommand::Enable { username } => {
            let username = change(&username)?;
            update(
                config,
                &username,
                "user enable",
                UserChange {
                    disabled: Some(false),
                    ..Default::default()
                },
            )
            .await
        }
        UserCommand::Unlock { username } => {
            let username = change(&username)?;
            update(
                config,
                &username,
                "user unlock",
                UserChange {
                    unlock: true,
                    ..Default::default()
                },
            )
            .await
        }
    }
}

async fn update(
    config: &Config,
    username: &str,
    command: &str,
    change: UserChange,
) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let user = store
        .update_user(username, &change, chrono::Utc::now())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user named {username} (see `vft user list`)"))?;
    record(store.as_ref(), command, vec![format!("user={username}")]).await?;
    eprintln!("{command}: done for {} ({}).", user.username, user.role);
    Ok(())
}

pub async fn audit(config: &Config, command: AuditCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match command {
        AuditCommand::Verify => {
            let head = store.audit_head().await?;
            let mut verifier = ChainVerifier::new(head.anchor_seq, &head.anchor_hash);
            let bar = crate::serve::progress_bar(
                u64::try_from(head.seq - head.anchor_seq).unwrap_or(0),
                "verifying",
            );
            loop {
                let (after, _) = verifier.head();
                let records = store.audit_chain(after, 10_000).await?;
                if records.is_empty() {
                    break;
                }
                for r in &records {
                    verifier
                        .check(r)
                        .map_err(|e| anyhow::anyhow!("the audit log was tampered with: {e}"))?;
                }
                bar.set_position(verifier.checked());
            }
            bar.finish_and_clear();
            let (last_seq, last_hash) = verifier.head();
            anyhow::ensure!(
                last_seq == head.seq && last_hash == head.hash,
                "the audit log was tampered with: it ends at record {last_seq}, but record {} was written (records were removed from its end)",
                head.seq
            );
            println!(
                "audit log intact: {} records ({}..={}), head {}",
                verifier.checked(),
                head.anchor_seq + 1,
                head.seq,
                head.hash
            );
            Ok(())
        }
        AuditCommand::Tail { limit } => {
            let records = store
                .audit_records(&vft_store::AuditQuery {
                    limit: limit.clamp(1, 10_000),
                    ..Default::default()
                })
                .await?;
            for r in records {
                let e = &r.entry;
                println!(
                    "{:>8} {} {:<14} {:<40} {:<28} {} {} {}",
                    r.seq,
                    chrono::DateTime::from_timestamp_micros(e.at_micros)
                        .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
                    e.action.id(),
                    e.actor,
                    e.route,
                    e.status,
                    e.municipality.as_deref().unwrap_or("-"),
                    e.subjects.join(" ")
                );
            }
            Ok(())
        }
    }
}
