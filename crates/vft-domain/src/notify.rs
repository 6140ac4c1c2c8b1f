//! Notifications: what a rule watches, when a condition becomes an incident, and what a notice
//! says. Pure: the notifier (crate `vft-notify`) gathers findings from the store, and
//! [`plan`] decides which incidents open and which resolve, so that one condition is one
//! incident however often it is evaluated, in whatever order its findings arrive.
//!
//! Notices name devices, gateways, municipalities and months, never a service recipient: an
//! e-mail leaves vft's perimeter, and a recipient reference is personal data.

use crate::MunicipalityCode;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// An in-service device without contact for longer than `threshold` seconds.
    DeviceOffline,
    /// An in-service device whose latest battery reading is below `threshold` percent.
    BatteryLow,
    /// A triggered alarm not acknowledged `threshold` seconds after it was triggered.
    AlarmUnanswered,
    /// The last ended month's response-centre shares below the standard (97.5 % within 60 s,
    /// 99 % within 180 s).
    MonthBelowStandard,
    /// A gateway all of whose in-service devices are offline.
    GatewaySilent,
    /// A vendor export imported with unreadable rows.
    ImportErrors,
}

impl RuleKind {
    pub const ALL: [RuleKind; 6] = [
        Self::DeviceOffline,
        Self::BatteryLow,
        Self::AlarmUnanswered,
        Self::MonthBelowStandard,
        Self::GatewaySilent,
        Self::ImportErrors,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Self::DeviceOffline => "device_offline",
            Self::BatteryLow => "battery_low",
            Self::AlarmUnanswered => "alarm_unanswered",
            Self::MonthBelowStandard => "month_below_standard",
            Self::GatewaySilent => "gateway_silent",
            Self::ImportErrors => "import_errors",
        }
    }

    pub fn parse(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.id() == id)
    }

    /// Norwegian name, as notices and the dashboard show it.
    pub fn label(self) -> &'static str {
        match self {
            Self::DeviceOffline => "Enhet uten kontakt",
            Self::BatteryLow => "Lavt batteri",
            Self::AlarmUnanswered => "Alarm ikke besvart",
            Self::MonthBelowStandard => "Måned under kravet",
            Self::GatewaySilent => "Gateway stille med alle enheter",
            Self::ImportErrors => "Leverandøreksport med feil",
        }
    }

    /// Vendor exports cover the whole region, so their errors are the coordinator's.
    pub fn region_only(self) -> bool {
        self == Self::ImportErrors
    }

    /// The threshold's unit and its allowed range; `None`: the kind takes no threshold.
    pub fn threshold_range(self) -> Option<(&'static str, u64, u64)> {
        match self {
            // A minute to 90 days.
            Self::DeviceOffline => Some(("seconds", 60, 90 * 86_400)),
            Self::BatteryLow => Some(("percent", 1, 100)),
            // The standard's 60 s up to a day.
            Self::AlarmUnanswered => Some(("seconds", 10, 86_400)),
            Self::MonthBelowStandard | Self::GatewaySilent | Self::ImportErrors => None,
        }
    }
}

/// Whom a rule's notices reach: one e-mail to all its addresses, one webhook call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channels {
    pub emails: Vec<String>,
    pub webhook: Option<String>,
}

/// A rule as written by a person, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDefinition {
    /// `None`: the whole region.
    pub municipality: Option<MunicipalityCode>,
    pub kind: RuleKind,
    pub threshold: Option<u64>,
    pub channels: Channels,
    /// Gather this rule's notices into one message a day instead of one per incident.
    pub digest: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error(
        "unknown rule kind {0:?}: device_offline, battery_low, alarm_unanswered, month_below_standard, gateway_silent or import_errors"
    )]
    UnknownKind(String),
    #[error("{kind} needs a threshold in {unit} from {min} to {max}")]
    Threshold {
        kind: &'static str,
        unit: &'static str,
        min: u64,
        max: u64,
    },
    #[error("{0} takes no threshold")]
    NoThreshold(&'static str),
    #[error("a rule needs at least one e-mail address or a webhook")]
    NoChannel,
    #[error("at most {MAX_EMAILS} e-mail addresses per rule")]
    TooManyEmails,
    #[error("not an e-mail address: {0:?}")]
    BadEmail(String),
    #[error(
        "a webhook is an http:// or https:// URL of at most 500 characters, without credentials"
    )]
    BadWebhook,
    #[error("{0} is watched for the whole region only")]
    RegionOnly(&'static str),
    #[error("an identity number has no place in a notification rule")]
    IdentityNumber,
}

pub const MAX_EMAILS: usize = 20;

impl RuleDefinition {
    /// Checks a rule as it arrives from a person: parse, don't validate.
    pub fn new(
        municipality: Option<MunicipalityCode>,
        kind: &str,
        threshold: Option<u64>,
        emails: Vec<String>,
        webhook: Option<String>,
        digest: bool,
    ) -> Result<Self, RuleError> {
        let kind = RuleKind::parse(kind)
            .ok_or_else(|| RuleError::UnknownKind(crate::nin::masked_prefix(kind, 40)))?;
        if kind.region_only() && municipality.is_some() {
            return Err(RuleError::RegionOnly(kind.id()));
        }
        match (kind.threshold_range(), threshold) {
            (Some((_, min, max)), Some(t)) if (min..=max).contains(&t) => {}
            (Some((unit, min, max)), _) => {
                return Err(RuleError::Threshold {
                    kind: kind.id(),
                    unit,
                    min,
                    max,
                });
            }
            (None, Some(_)) => return Err(RuleError::NoThreshold(kind.id())),
            (None, None) => {}
        }
        let mut checked = BTreeSet::new();
        for email in emails {
            let email = email.trim().to_owned();
            if crate::nin::find(&email) {
                return Err(RuleError::IdentityNumber);
            }
            if !plausible_email(&email) {
                return Err(RuleError::BadEmail(email.chars().take(80).collect()));
            }
            checked.insert(email);
        }
        if checked.len() > MAX_EMAILS {
            return Err(RuleError::TooManyEmails);
        }
        let webhook = webhook
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty());
        if let Some(w) = &webhook {
            if crate::nin::find(w) {
                return Err(RuleError::IdentityNumber);
            }
            if !plausible_webhook(w) {
                return Err(RuleError::BadWebhook);
            }
        }
        if checked.is_empty() && webhook.is_none() {
            return Err(RuleError::NoChannel);
        }
        Ok(Self {
            municipality,
            kind,
            threshold,
            channels: Channels {
                emails: checked.into_iter().collect(),
                webhook,
            },
            digest,
        })
    }
}

/// One `local@domain` address: what an SMTP envelope takes, nothing a header could smuggle.
fn plausible_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | ',' | ';' | '"' | '(' | ')'))
        && local.len() <= 64
        && !domain.contains('@')
}

fn plausible_webhook(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    let Some(rest) = rest else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    s.len() <= 500
        && !authority.is_empty()
        && !authority.contains('@')
        && s.chars().all(|c| c.is_ascii_graphic())
}

/// A condition a rule found true now. `subject` identifies it among the rule's findings
/// (`device:hepro/H-1`, `gateway:gw-7`, `alarm:hepro/a-9`, `month:2025-03`, `import:12`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub subject: String,
    pub municipality: Option<MunicipalityCode>,
    /// One line, Norwegian, with what the condition is about (no recipient).
    pub summary: String,
}

/// An incident still open: its rule found its subject and has not since found it gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIncident {
    pub id: i64,
    pub subject: String,
}

/// What one evaluation of a rule changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// New incidents: findings with no open incident.
    pub open: Vec<Finding>,
    /// Open incidents whose subject is no longer found.
    pub resolve: Vec<i64>,
}

/// Compares what a rule finds now with its open incidents. A subject found twice counts
/// once; a subject already open is not opened again, so evaluating the same state twice
/// (or after a restart) changes nothing.
pub fn plan(open: &[OpenIncident], findings: &[Finding]) -> Plan {
    let mut found: BTreeMap<&str, &Finding> = BTreeMap::new();
    for f in findings {
        found.entry(f.subject.as_str()).or_insert(f);
    }
    let open_subjects: BTreeSet<&str> = open.iter().map(|i| i.subject.as_str()).collect();
    let mut resolve: Vec<i64> = open
        .iter()
        .filter(|i| !found.contains_key(i.subject.as_str()))
        .map(|i| i.id)
        .collect();
    resolve.sort_unstable();
    resolve.dedup();
    Plan {
        open: found
            .into_iter()
            .filter(|(s, _)| !open_subjects.contains(s))
            .map(|(_, f)| f.clone())
            .collect(),
        resolve,
    }
}

/// Whether a notice tells of an incident opening or resolving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeEvent {
    Opened,
    Resolved,
}

impl NoticeEvent {
    pub fn id(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(id: &str) -> Option<Self> {
        match id {
            "opened" => Some(Self::Opened),
            "resolved" => Some(Self::Resolved),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Opened => "Ny hendelse",
            Self::Resolved => "Løst",
        }
    }
}

/// An e-mail's subject line for one notice.
pub fn email_subject(event: NoticeEvent, kind: RuleKind, summary: &str) -> String {
    let line: String = format!("[vft] {}: {} – {summary}", event.label(), kind.label())
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    line
}

/// A daily digest's subject line.
pub fn digest_subject(date: chrono::NaiveDate, notices: usize) -> String {
    format!(
        "[vft] Daglig oppsummering {}: {notices} {}",
        date.format("%d.%m.%Y"),
        if notices == 1 { "varsel" } else { "varsler" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn finding(subject: &str) -> Finding {
        Finding {
            subject: subject.into(),
            municipality: None,
            summary: subject.into(),
        }
    }

    #[test]
    fn opens_new_findings_and_resolves_vanished_ones() {
        let open = [
            OpenIncident {
                id: 1,
                subject: "device:a/1".into(),
            },
            OpenIncident {
                id: 2,
                subject: "device:a/2".into(),
            },
        ];
        let p = plan(&open, &[finding("device:a/2"), finding("device:a/3")]);
        assert_eq!(p.open, vec![finding("device:a/3")]);
        assert_eq!(p.resolve, vec![1]);
    }

    #[test]
    fn rules_are_checked_as_they_arrive() {
        let ok = RuleDefinition::new(
            None,
            "device_offline",
            Some(3600),
            vec![" kari@hol.kommune.no ".into(), "kari@hol.kommune.no".into()],
            None,
            false,
        )
        .unwrap();
        assert_eq!(ok.channels.emails, vec!["kari@hol.kommune.no"]);
        let err = |kind: &str, t: Option<u64>, emails: Vec<&str>, hook: Option<&str>| {
            RuleDefinition::new(
                None,
                kind,
                t,
                emails.into_iter().map(String::from).collect(),
                hook.map(String::from),
                false,
            )
            .unwrap_err()
        };
        assert!(matches!(
            err("nope", None, vec!["a@b.no"], None),
            RuleError::UnknownKind(_)
        ));
        assert!(matches!(
            err("battery_low", Some(0), vec!["a@b.no"], None),
            RuleError::Threshold { .. }
        ));
        assert!(matches!(
            err("battery_low", None, vec!["a@b.no"], None),
            RuleError::Threshold { .. }
        ));
        assert!(matches!(
            err("gateway_silent", Some(5), vec!["a@b.no"], None),
            RuleError::NoThreshold(_)
        ));
        assert!(matches!(
            err("gateway_silent", None, vec![], None),
            RuleError::NoChannel
        ));
        assert!(matches!(
            err("gateway_silent", None, vec!["a@b.no\r\nBcc: x@y.no"], None),
            RuleError::BadEmail(_)
        ));
        assert!(matches!(
            err("gateway_silent", None, vec!["a, b@c.no"], None),
            RuleError::BadEmail(_)
        ));
        assert!(matches!(
            err("gateway_silent", None, vec!["01019012057@b.no"], None),
            RuleError::IdentityNumber
        ));
        assert!(matches!(
            err("gateway_silent", None, vec![], Some("ftp://x")),
            RuleError::BadWebhook
        ));
        assert!(matches!(
            err("gateway_silent", None, vec![], Some("https://u:p@x.no/")),
            RuleError::BadWebhook
        ));
        assert!(
            RuleDefinition::new(
                None,
                "gateway_silent",
                None,
                vec![],
                Some("http://127.0.0.1:9/hook".into()),
                true
            )
            .is_ok()
        );
    }

    #[test]
    fn subjects_are_one_line() {
        let s = email_subject(NoticeEvent::Opened, RuleKind::DeviceOffline, "a\r\nBcc: x");
        assert!(!s.contains('\n') && !s.contains('\r'));
    }

    proptest! {
        /// Evaluating the same findings again, in any order and with duplicates, after the
        /// first plan was applied, changes nothing.
        #[test]
        fn applying_a_plan_reaches_a_fixed_point(
            open_subjects in proptest::collection::btree_set(0u8..20, 0..10),
            found in proptest::collection::vec(0u8..20, 0..30),
            seed in any::<u64>(),
        ) {
            let mut open: Vec<OpenIncident> = open_subjects
                .iter()
                .enumerate()
                .map(|(i, s)| OpenIncident { id: i as i64, subject: format!("s{s}") })
                .collect();
            let findings: Vec<Finding> = found.iter().map(|s| finding(&format!("s{s}"))).collect();
            let first = plan(&open, &findings);
            // Apply it.
            open.retain(|i| !first.resolve.contains(&i.id));
            for (id, f) in (1000..).zip(first.open.iter()) {
                open.push(OpenIncident {
                    id,
                    subject: f.subject.clone(),
                });
            }
            // The open incidents are exactly the distinct findings.
            let got: BTreeSet<&str> = open.iter().map(|i| i.subject.as_str()).collect();
            let want: BTreeSet<&str> = findings.iter().map(|f| f.subject.as_str()).collect();
            prop_assert_eq!(got, want);
            // A second evaluation, of the findings shuffled, changes nothing.
            let mut shuffled = findings.clone();
            let n = shuffled.len();
            if n > 1 {
                for i in 0..n {
                    let j = ((seed.rotate_left(i as u32) ^ i as u64) % n as u64) as usize;
                    shuffled.swap(i, j);
                }
            }
            prop_assert_eq!(plan(&open, &shuffled), Plan::default());
        }
    }
}
