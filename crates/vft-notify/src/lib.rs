//! Notifications: every `interval_secs`, each rule's findings are compared with its open
//! incidents ([`vft_domain::notify::plan`]); what opens or resolves is written with its
//! notices in one transaction (the outbox), and the outbox is then delivered by e-mail over
//! SMTP and by webhook. A notice is marked delivered only after the server accepted it, so a
//! crash in between sends that one notice again after the restart (at least once); receivers
//! can recognise a repeat by its `X-Vft-Notice` header or e-mail `Message-ID`.

mod deliver;
mod findings;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use vft_domain::Registry;
use vft_domain::response::ResponseStandard;
use vft_store::{Store, Timeouts};

pub use deliver::{Attachment, WebhookBody, send_with_attachments, signature};

/// `[notify]` in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// SMTP server for e-mail notices: `smtps://user:pass@host:465`, or
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS). Plain `smtp://host:port` only on a
    /// loopback address (a relay on the same machine). Absent: e-mail notices wait in the
    /// outbox, and the history shows them undelivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<String>,
    /// The notices' sender, e.g. `vft <vft@kommune.no>`.
    pub from: String,
    /// Signs each webhook body (`X-Vft-Signature: sha256=<HMAC-SHA256 hex>`), so a receiver can
    /// tell vft's calls from forged ones. Or `VFT_NOTIFY__WEBHOOK_SECRET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// How often rules are evaluated and the outbox delivered (1-3600 s).
    pub interval_secs: u64,
    /// Hour of the day (Europe/Oslo, 0-23) at which daily digests go out.
    pub digest_hour: u32,
    /// The dashboard's address, for a link in each notice (e.g. `https://vft.kommune.no`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: "vft <vft@localhost>".into(),
            webhook_secret: None,
            interval_secs: 60,
            digest_hour: 7,
            dashboard_url: None,
        }
    }
}

impl NotifySettings {
    /// The settings with their secrets masked (`print-config`, logs).
    pub fn redacted(&self) -> Self {
        let mut shown = self.clone();
        shown.smtp_url = shown.smtp_url.as_deref().map(redact_url_password);
        shown.webhook_secret = shown.webhook_secret.as_ref().map(|_| "***".into());
        shown
    }

    /// Refuses settings that cannot work, at start rather than at the first notice.
    pub fn check(&self) -> Result<(), NotifyError> {
        if !(1..=3600).contains(&self.interval_secs) {
            return Err(NotifyError::Settings(
                "notify.interval_secs must be 1-3600".into(),
            ));
        }
        if self.digest_hour > 23 {
            return Err(NotifyError::Settings(
                "notify.digest_hour must be 0-23".into(),
            ));
        }
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(NotifyError::Settings(format!(
                "notify.from is not an e-mail address: {:?}",
                self.from
            )));
        }
        if let Some(url) = &self.smtp_url {
            deliver::mailer(url)?;
        }
        Ok(())
    }
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{0}")]
    Settings(String),
    #[error(transparent)]
    Store(#[from] vft_store::StoreError),
    #[error("{0}")]
    Delivery(String),
}

/// What the notifier needs of the server: the store, and what decides a figure.
pub struct Notifier {
    store: Arc<dyn Store>,
    settings: NotifySettings,
    registry: Arc<Registry>,
    timeouts: Timeouts,
    standard: ResponseStandard,
    delivery: deliver::Delivery,
}

/// What one round did (logged, and returned for tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub opened: u64,
    pub resolved: u64,
    pub delivered: u64,
    pub failed: u64,
}

impl Notifier {
    pub fn new(
        store: Arc<dyn Store>,
        settings: NotifySettings,
        registry: Arc<Registry>,
        timeouts: Timeouts,
    ) -> Result<Self, NotifyError> {
        settings.check()?;
        let delivery = deliver::Delivery::new(&settings)?;
        Ok(Self {
            store,
            settings,
            registry,
            timeouts,
            standard: ResponseStandard::default(),
            delivery,
        })
    }

    /// Evaluates every rule, then delivers what is due. A rule whose evaluation fails is
    /// logged and skipped; the others go on.
    pub async fn round(&self, now: DateTime<Utc>) -> Result<Round, NotifyError> {
        let mut round = Round::default();
        for rule in self.store.rules().await? {
            let span = tracing::info_span!(
                "notify_rule",
                rule = rule.id,
                kind = rule.definition.kind.id()
            );
            let found = findings::find(self, &rule.definition, now)
                .instrument(span)
                .await;
            let found = match found {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(rule = rule.id, error = %e, "notification rule not evaluated");
                    metrics::counter!("vft_notify_rule_errors_total").increment(1);
                    continue;
                }
            };
            let open = self.store.open_incidents(rule.id).await?;
            let plan = vft_domain::notify::plan(&open, &found);
            let (opened, resolved) = self.store.apply_plan(&rule, &plan, now).await?;
            round.opened += opened;
            round.resolved += resolved;
        }
        metrics::counter!("vft_notify_incidents_opened_total").increment(round.opened);
        metrics::counter!("vft_notify_incidents_resolved_total").increment(round.resolved);
        let (delivered, failed) = self.delivery.deliver_due(self, now).await?;
        let (digested, digest_failed) = self.delivery.deliver_digests(self, now).await?;
        round.delivered = delivered + digested;
        round.failed = failed + digest_failed;
        metrics::counter!("vft_notify_rounds_total").increment(1);
        Ok(round)
    }

    /// Rounds every `interval_secs` until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut tick = tokio::time::interval(Duration::from_secs(self.settings.interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = tick.tick() => {}
            }
            let span = tracing::info_span!("notify_round");
            let result = self.round(Utc::now()).instrument(span).await;
            match result {
                Ok(r) if r != Round::default() => tracing::info!(
                    opened = r.opened,
                    resolved = r.resolved,
                    delivered = r.delivered,
                    failed = r.failed,
                    "notifications"
                ),
                Ok(_) => {}
                Err(e) => {
                    metrics::counter!("vft_notify_round_errors_total").increment(1);
                    tracing::warn!(error = %e, "notification round failed; next round retries");
                }
            }
        }
    }

    fn municipality_name(&self, code: &vft_domain::MunicipalityCode) -> String {
        self.registry
            .get(code)
            .map_or_else(|| code.as_str().to_owned(), |m| m.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        let s = NotifySettings {
            smtp_url: Some("smtps://vft:hemmelig@smtp.kommune.no:465".into()),
            webhook_secret: Some("abc".into()),
            ..NotifySettings::default()
        };
        let shown = s.redacted();
        assert_eq!(
            shown.smtp_url.as_deref(),
            Some("smtps://vft:***@smtp.kommune.no:465")
        );
        assert_eq!(shown.webhook_secret.as_deref(), Some("***"));
    }

    #[test]
    fn plain_smtp_only_on_loopback() {
        let with = |url: &str| NotifySettings {
            smtp_url: Some(url.into()),
            ..NotifySettings::default()
        };
        assert!(with("smtp://127.0.0.1:2525").check().is_ok());
        assert!(with("smtp://localhost:25").check().is_ok());
        assert!(with("smtp://smtp.kommune.no:25").check().is_err());
        assert!(
            with("smtp://smtp.kommune.no:587?tls=required")
                .check()
                .is_ok()
        );
        assert!(with("smtps://smtp.kommune.no").check().is_ok());
        assert!(with("http://smtp.kommune.no").check().is_err());
    }
}
