//! What each kind of rule finds true now, read from the store with the same queries and
//! domain rules as the API's figures (connectivity from timeouts, the response standard).

use crate::{Notifier, NotifyError};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;
use vft_domain::notify::{Finding, RuleDefinition, RuleKind};
use vft_domain::{Connectivity, MunicipalityCode, YearMonth};
use vft_store::{DeviceQuery, DeviceRecord};

/// How far back unanswered alarms are watched. An alarm still unanswered after a week is a
/// data problem, not a call to answer; its incident resolves when it leaves the window.
const ALARM_WINDOW: Duration = Duration::days(7);

pub(crate) async fn find(
    n: &Notifier,
    rule: &RuleDefinition,
    now: DateTime<Utc>,
) -> Result<Vec<Finding>, NotifyError> {
    let threshold = rule.threshold.unwrap_or_default();
    let scope = rule.municipality.clone();
    Ok(match rule.kind {
        RuleKind::DeviceOffline => {
            let mut q = device_query(n, scope, now);
            q.connectivity = Some(Connectivity::Offline);
            let limit = secs(threshold);
            n.store
                .devices(&q)
                .await?
                .into_iter()
                .filter(|d| d.last_contact.is_some_and(|t| now - t > limit))
                .map(|d| Finding {
                    subject: device_subject(&d),
                    summary: format!(
                        "{} i {}: ingen kontakt siden {}",
                        device_name(&d),
                        n.municipality_name(&d.municipality),
                        d.last_contact.map(oslo).unwrap_or_default()
                    ),
                    municipality: Some(d.municipality),
                })
                .collect()
        }
        RuleKind::BatteryLow => {
            let mut q = device_query(n, scope, now);
            q.battery_below = Some(u8::try_from(threshold).unwrap_or(100));
            n.store
                .devices(&q)
                .await?
                .into_iter()
                .map(|d| Finding {
                    subject: device_subject(&d),
                    summary: format!(
                        "{} i {}: batteri {} % (målt {})",
                        device_name(&d),
                        n.municipality_name(&d.municipality),
                        d.battery.unwrap_or_default(),
                        d.battery_at.map(oslo).unwrap_or_default()
                    ),
                    municipality: Some(d.municipality),
                })
                .collect()
        }
        RuleKind::GatewaySilent => {
            let q = device_query(n, scope, now);
            let mut gateways: BTreeMap<(String, String), Vec<DeviceRecord>> = BTreeMap::new();
            for d in n.store.devices(&q).await? {
                if let Some(g) = d.gateway.clone() {
                    gateways
                        .entry((d.vendor.as_str().to_owned(), g))
                        .or_default()
                        .push(d);
                }
            }
            gateways
                .into_iter()
                .filter(|(_, devices)| {
                    devices
                        .iter()
                        .all(|d| d.connectivity == Connectivity::Offline)
                })
                .map(|((vendor, gateway), devices)| {
                    let municipality = devices[0].municipality.clone();
                    let latest = devices.iter().filter_map(|d| d.last_contact).max();
                    Finding {
                        subject: format!("gateway:{vendor}/{gateway}"),
                        summary: format!(
                            "gateway {vendor}/{gateway} i {}: alle {} enheter uten kontakt, siste kontakt {}",
                            n.municipality_name(&municipality),
                            devices.len(),
                            latest.map(oslo).unwrap_or_else(|| "aldri".into())
                        ),
                        municipality: Some(municipality),
                    }
                })
                .collect()
        }
        RuleKind::AlarmUnanswered => {
            let from = now - ALARM_WINDOW;
            let alarms = match &scope {
                Some(m) => n.store.own_alarm_records(m, from, now).await?,
                None => n.store.alarm_records(from, now).await?,
            };
            let limit = secs(threshold);
            alarms
                .into_iter()
                .filter(|a| {
                    a.acknowledged.is_none()
                        && a.closed.is_none()
                        && a.triggered.is_some_and(|t| now - t > limit)
                })
                .map(|a| Finding {
                    subject: format!("alarm:{}/{}", a.vendor.as_str(), a.alarm.as_str()),
                    summary: format!(
                        "alarm {} fra {}/{} i {}, utløst {}, ikke besvart",
                        a.alarm.as_str(),
                        a.vendor.as_str(),
                        a.device.as_str(),
                        n.municipality_name(&a.municipality),
                        a.triggered.map(oslo).unwrap_or_default()
                    ),
                    municipality: Some(a.municipality),
                })
                .collect()
        }
        RuleKind::MonthBelowStandard => {
            let month =
                YearMonth::containing(YearMonth::containing(now).start() - Duration::seconds(1));
            let alarms = match &scope {
                Some(m) => {
                    n.store
                        .own_alarm_records(m, month.start(), month.end_exclusive())
                        .await?
                }
                None => {
                    n.store
                        .alarm_records(month.start(), month.end_exclusive())
                        .await?
                }
            };
            let figures = vft_domain::response_figures(&alarms, &[month], &n.standard);
            figures
                .into_iter()
                .filter(|f| f.meets_60s == Some(false) || f.meets_180s == Some(false))
                .map(|f| Finding {
                    subject: format!("month:{:04}-{:02}", month.year(), month.month()),
                    summary: format!(
                        "{} {} {}: {} besvart innen 60 s (krav {}), {} innen 180 s (krav {})",
                        scope
                            .as_ref()
                            .map_or_else(|| "Regionen".to_owned(), |m| n.municipality_name(m)),
                        vft_domain::month::month_name_nb(month.month()),
                        month.year(),
                        percent(f.share_within_60s),
                        percent(Some(n.standard.within_60s)),
                        percent(f.share_within_180s),
                        percent(Some(n.standard.within_180s)),
                    ),
                    municipality: scope.clone(),
                })
                .collect()
        }
        RuleKind::ImportErrors => {
            // The newest import of each vendor: an export fixed by a later clean one resolves.
            let mut latest: BTreeMap<String, vft_store::ImportSummary> = BTreeMap::new();
            for i in n.store.imports(None).await? {
                latest.insert(i.vendor.as_str().to_owned(), i);
            }
            latest
                .into_values()
                .filter(|i| i.errors > 0)
                .map(|i| Finding {
                    subject: format!("import:{}", i.id),
                    summary: format!(
                        "eksport fra {} per {}: {} av {} rader kunne ikke leses",
                        i.vendor.as_str(),
                        oslo(i.as_of),
                        i.errors,
                        i.rows + i.errors
                    ),
                    municipality: None,
                })
                .collect()
        }
    })
}

fn device_query(n: &Notifier, scope: Option<MunicipalityCode>, now: DateTime<Utc>) -> DeviceQuery {
    let mut q = DeviceQuery::new(now, n.timeouts);
    q.municipalities = scope.map(|m| vec![m]);
    q.in_service = Some(true);
    q.limit = 0;
    q
}

fn secs(s: u64) -> Duration {
    Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1_000_000))
}

fn device_subject(d: &DeviceRecord) -> String {
    format!("device:{}/{}", d.vendor.as_str(), d.device.as_str())
}

fn device_name(d: &DeviceRecord) -> String {
    match d.kind {
        Some(k) => format!(
            "{} {}/{}",
            k.label_nb(),
            d.vendor.as_str(),
            d.device.as_str()
        ),
        None => format!("enhet {}/{}", d.vendor.as_str(), d.device.as_str()),
    }
}

/// `27.11.2026 kl. 14:05` in Europe/Oslo.
pub(crate) fn oslo(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::Europe::Oslo)
        .format("%d.%m.%Y kl. %H:%M")
        .to_string()
}

/// `97,5 %` (Norwegian decimal comma), `–` when there is nothing to divide.
fn percent(share: Option<f64>) -> String {
    share.map_or_else(
        || "–".into(),
        |s| format!("{:.1} %", s * 100.0).replace('.', ","),
    )
}
