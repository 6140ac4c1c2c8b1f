//! Delivering the outbox: one e-mail to a rule's addresses, one webhook call, per notice; or
//! one of each per day for a digest rule.

use crate::findings::oslo;
use crate::{Notifier, NotifyError, NotifySettings};
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vft_domain::notify::{NoticeEvent, RuleKind, digest_subject, email_subject};
use vft_store::{Channel, PendingNotice};

/// A server that does not answer within this is tried again later.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
const NO_SMTP: &str = "no SMTP server configured (notify.smtp_url)";
/// Notices delivered per round at most; the rest wait for the next round.
const BATCH: u32 = 200;

pub(crate) struct Delivery {
    mailer: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    http: reqwest::Client,
    webhook_secret: Option<String>,
    dashboard_url: Option<String>,
    digest_hour: u32,
    interval_secs: u64,
}

/// The SMTP transport for a URL; plain SMTP only to a loopback relay.
pub(crate) fn mailer(url: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, NotifyError> {
    let bad = |why: &str| NotifyError::Settings(format!("notify.smtp_url: {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected smtps://… or smtp://…"))?;
    let host = rest
        .rsplit_once('@')
        .map_or(rest, |(_, h)| h)
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    let host = host
        .rsplit_once(':')
        .filter(|(h, port)| !port.contains(']') && !h.is_empty())
        .map_or(host, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match scheme {
        "smtps" => {}
        "smtp" if url.contains("tls=required") || loopback => {}
        "smtp" => {
            return Err(bad(
                "plain SMTP only to a relay on this machine (127.0.0.1, ::1, localhost); use smtps:// or ?tls=required",
            ));
        }
        _ => return Err(bad("expected smtps://… or smtp://…")),
    }
    Ok(AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|e| bad(&e.to_string()))?
        .timeout(Some(SEND_TIMEOUT))
        .build())
}

/// `sha256=<hex>` of HMAC-SHA256 over the body, as the `X-Vft-Signature` header carries it.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a webhook receives: always a list (one notice, or a day's digest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookBody {
    pub digest: bool,
    pub notices: Vec<WebhookNotice>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookNotice {
    /// Stable across retries: a receiver that sees an id twice has seen a repeat.
    pub notice_id: i64,
    pub event: NoticeEvent,
    pub incident_id: i64,
    pub rule_id: i64,
    pub kind: RuleKind,
    pub kind_label: String,
    pub subject: String,
    pub municipality: Option<String>,
    pub summary: String,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl WebhookNotice {
    fn of(p: &PendingNotice) -> Self {
        Self {
            notice_id: p.notice.id,
            event: p.notice.event,
            incident_id: p.incident.id,
            rule_id: p.incident.rule_id,
            kind: p.incident.kind,
            kind_label: p.incident.kind.label().to_owned(),
            subject: p.incident.subject.clone(),
            municipality: p
                .incident
                .municipality
                .as_ref()
                .map(|m| m.as_str().to_owned()),
            summary: p.incident.summary.clone(),
            opened_at: p.incident.opened_at,
            resolved_at: p.incident.resolved_at,
        }
    }
}

/// Wait before the next attempt after `attempts` failures: 1, 2, 4 … rounds, at most an hour.
fn backoff(interval_secs: u64, attempts: u32) -> Duration {
    let interval = i64::try_from(interval_secs).unwrap_or(3600);
    Duration::seconds(interval * (1_i64 << attempts.min(12))).min(Duration::hours(1))
}

impl Delivery {
    pub(crate) fn new(settings: &NotifySettings) -> Result<Self, NotifyError> {
        let http = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vft/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Settings(format!("webhook client: {e}")))?;
        Ok(Self {
            mailer: settings.smtp_url.as_deref().map(mailer).transpose()?,
            from: settings.from.parse().map_err(|_| {
                NotifyError::Settings("notify.from is not an e-mail address".into())
            })?,
            http,
            webhook_secret: settings.webhook_secret.clone(),
            dashboard_url: settings.dashboard_url.clone(),
            digest_hour: settings.digest_hour,
            interval_secs: settings.interval_secs,
        })
    }

    /// Sends the immediate notices that are due: (delivered, failed).
    pub(crate) async fn deliver_due(
        &self,
        n: &Notifier,
        now: DateTime<Utc>,
    ) -> Result<(u64, u64), NotifyError> {
        let (mut delivered, mut failed) = (0, 0);
        for p in n.store.due_notices(now, BATCH).await? {
            if p.notice.channel == Channel::Email && self.mailer.is_none() {
                // Not a failure of the notice: it waits until an SMTP server is configured
                // (looked at again hourly, so it does not crowd out the webhooks).
                n.store
                    .notice_failed(p.notice.id, NO_SMTP, now + Duration::hours(1))
                    .await?;
                continue;
            }
            let sent = match p.notice.channel {
                Channel::Email => {
                    let subject =
                        email_subject(p.notice.event, p.incident.kind, &p.incident.summary);
                    let body = self.email_body(n, std::slice::from_ref(&p));
                    self.send_email(&p.channels.emails, &subject, body, Some(p.notice.id))
                        .await
                }
                Channel::Webhook => {
                    self.call_webhook(
                        p.channels.webhook.as_deref(),
                        false,
                        std::slice::from_ref(&p),
                    )
                    .await
                }
            };
            self.record(n, &[&p], sent, now, &mut delivered, &mut failed)
                .await?;
        }
        Ok((delivered, failed))
    }

    /// Once a day, at the first round after `digest_hour` (Oslo) that has something to send,
    /// sends each digest rule's waiting notices in one e-mail and one webhook call; what comes
    /// later that day waits for the next day's digest.
    pub(crate) async fn deliver_digests(
        &self,
        n: &Notifier,
        now: DateTime<Utc>,
    ) -> Result<(u64, u64), NotifyError> {
        let today = vft_domain::month::oslo_date(now);
        let cut =
            vft_domain::month::oslo_midnight(today) + Duration::hours(i64::from(self.digest_hour));
        if now < cut {
            return Ok((0, 0));
        }
        let pending = n.store.digest_notices(now + Duration::seconds(1)).await?;
        let mut groups: BTreeMap<(i64, &'static str), Vec<&PendingNotice>> = BTreeMap::new();
        for p in &pending {
            groups
                .entry((p.incident.rule_id, p.notice.channel.id()))
                .or_default()
                .push(p);
        }
        let (mut delivered, mut failed) = (0, 0);
        for ((rule, _), notices) in groups {
            let channel = notices[0].notice.channel;
            if channel == Channel::Email && self.mailer.is_none() {
                continue; // waits until an SMTP server is configured
            }
            if n.store.digest_delivered_since(rule, channel, cut).await? {
                continue;
            }
            let owned: Vec<PendingNotice> = notices.iter().map(|p| (*p).clone()).collect();
            let sent = match channel {
                Channel::Email => {
                    let body = self.email_body(n, &owned);
                    let subject = digest_subject(today, owned.len());
                    self.send_email(&owned[0].channels.emails, &subject, body, None)
                        .await
                }
                Channel::Webhook => {
                    self.call_webhook(owned[0].channels.webhook.as_deref(), true, &owned)
                        .await
                }
            };
            self.record(n, &notices, sent, now, &mut delivered, &mut failed)
                .await?;
        }
        Ok((delivered, failed))
    }

    async fn record(
        &self,
        n: &Notifier,
        notices: &[&PendingNotice],
        sent: Result<(), String>,
        now: DateTime<Utc>,
        delivered: &mut u64,
        failed: &mut u64,
    ) -> Result<(), NotifyError> {
        let channel = notices[0].notice.channel.id();
        match sent {
            Ok(()) => {
                let ids: Vec<i64> = notices.iter().map(|p| p.notice.id).collect();
                n.store.notices_delivered(&ids, now).await?;
                *delivered += ids.len() as u64;
                metrics::counter!("vft_notify_notices_delivered_total", "channel" => channel)
                    .increment(ids.len() as u64);
            }
            Err(why) => {
                for p in notices {
                    tracing::warn!(notice = p.notice.id, channel, error = %why, "notice not delivered; will retry");
                    n.store
                        .notice_failed(
                            p.notice.id,
                            &why,
                            now + backoff(self.interval_secs, p.notice.attempts),
                        )
                        .await?;
                    *failed += 1;
                }
                metrics::counter!("vft_notify_notice_failures_total", "channel" => channel)
                    .increment(notices.len() as u64);
            }
        }
        Ok(())
    }

    fn email_body(&self, n: &Notifier, notices: &[PendingNotice]) -> String {
        let mut body = String::new();
        for p in notices {
            let i = &p.incident;
            let what = match p.notice.event {
                NoticeEvent::Opened => format!("Ny hendelse: {}", i.kind.label()),
                NoticeEvent::Resolved => format!("Løst: {}", i.kind.label()),
            };
            body.push_str(&what);
            body.push('\n');
            body.push_str(&i.summary);
            body.push('\n');
            let scope = i
                .municipality
                .as_ref()
                .map_or_else(|| "regionen".to_owned(), |m| n.municipality_name(m));
            body.push_str(&format!("Gjelder {scope}. Åpnet {}", oslo(i.opened_at)));
            if let Some(r) = i.resolved_at {
                body.push_str(&format!(", løst {}", oslo(r)));
            }
            body.push_str(&format!(". Hendelse #{} (regel #{}).\n\n", i.id, i.rule_id));
        }
        if let Some(url) = &self.dashboard_url {
            body.push_str(&format!(
                "Se varslene i vft: {}/#/varsler\n",
                url.trim_end_matches('/')
            ));
        }
        body.push_str("Dette varselet er sendt av vft. Det nevner aldri tjenestemottakere.\n");
        body
    }

    async fn send_email(
        &self,
        to: &[String],
        subject: &str,
        body: String,
        notice: Option<i64>,
    ) -> Result<(), String> {
        let Some(mailer) = &self.mailer else {
            return Err(NO_SMTP.into());
        };
        let domain = self.from.email.domain().to_owned();
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        if let Some(id) = notice {
            // The same id on a retry, so a mail system can drop the repeat.
            message = message.message_id(Some(format!("<vft-notice-{id}@{domain}>")));
        }
        for address in to {
            message = message.to(address
                .parse()
                .map_err(|e| format!("address {address:?}: {e}"))?);
        }
        let message = message.body(body).map_err(|e| e.to_string())?;
        mailer
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP: {e}"))
    }

    async fn call_webhook(
        &self,
        url: Option<&str>,
        digest: bool,
        notices: &[PendingNotice],
    ) -> Result<(), String> {
        let Some(url) = url else {
            return Err("the rule has no webhook".into());
        };
        let body = WebhookBody {
            digest,
            notices: notices.iter().map(WebhookNotice::of).collect(),
        };
        let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        let ids: Vec<String> = notices.iter().map(|p| p.notice.id.to_string()).collect();
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-vft-notice", ids.join(","));
        if let Some(secret) = &self.webhook_secret {
            request = request.header("x-vft-signature", signature(secret, &bytes));
        }
        let response = request
            .body(bytes)
            .send()
            .await
            .map_err(|e| format!("webhook: {}", without_url(&e)))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("webhook answered {}", response.status()))
        }
    }
}

/// reqwest's error without the URL (a webhook URL may carry a token in its path or query).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirected (not followed)"
    } else {
        "request failed"
    };
    kind.to_owned()
}

/// A file sent with an e-mail (the monthly report's PDF and workbook).
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Sends one e-mail with attachments through `notify.smtp_url` (the monthly report).
pub async fn send_with_attachments(
    settings: &NotifySettings,
    to: &[String],
    subject: &str,
    body: &str,
    attachments: Vec<Attachment>,
) -> Result<(), NotifyError> {
    use lettre::message::{MultiPart, SinglePart, header::ContentType as Type};
    let url = settings.smtp_url.as_deref().ok_or_else(|| {
        NotifyError::Settings("no SMTP server configured (notify.smtp_url)".into())
    })?;
    let mailer = mailer(url)?;
    let from: Mailbox = settings
        .from
        .parse()
        .map_err(|_| NotifyError::Settings("notify.from is not an e-mail address".into()))?;
    let mut message = Message::builder().from(from).subject(subject);
    for address in to {
        message = message.to(address
            .parse()
            .map_err(|e| NotifyError::Delivery(format!("address {address:?}: {e}")))?);
    }
    let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(body.to_owned()));
    for a in attachments {
        let kind = Type::parse(&a.content_type)
            .map_err(|e| NotifyError::Delivery(format!("content type {}: {e}", a.content_type)))?;
        parts = parts.singlepart(lettre::message::Attachment::new(a.filename).body(a.bytes, kind));
    }
    let message = message
        .multipart(parts)
        .map_err(|e| NotifyError::Delivery(e.to_string()))?;
    mailer
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| NotifyError::Delivery(format!("SMTP: {e}")))
}
