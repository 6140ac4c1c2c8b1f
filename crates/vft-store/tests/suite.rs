//! The shared store suite: every test runs against SQLite and against PostgreSQL.

use vft_testkit as common;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use vft_domain::{Connectivity, DeviceDelta};
use vft_domain::{
    DeviceId, Event, EventId, EventType, GatewayId, MunicipalityCode, Role, RollupFilter,
    TechnologyKind, VendorId, YearMonth, month_end_counts, month_end_instants,
};
use vft_store::{DeviceQuery, DeviceSort, NewDeadLetter, Timeouts};
use vft_testkit::TestStore;

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::common::sqlite().await).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() {
                if let Some(store) = super::common::postgres().await { super::$name(store).await }
            })*
        }
    };
}

both_backends!(
    writes_are_idempotent_on_vendor_and_id,
    counts_match_the_domain_rules_whatever_the_arrival_order,
    oslo_month_boundary_decides_the_month,
    filters_by_municipality_and_vendor,
    dead_letters_are_kept_once_newest_first,
    tokens_round_trip_and_are_unique,
    large_batches_are_split_into_statements,
    device_state_ignores_arrival_order,
    connectivity_follows_timeouts_wills_and_overrides,
    device_filters,
    paging_neither_skips_nor_repeats_while_devices_are_added,
    history_and_replacements,
    retention_purges_status_events_but_keeps_state,
    breakdown_and_snapshot_agree_with_the_domain_rules,
    kept_month_ends_follow_late_events,
    service_changes_are_what_moved_between_two_instants,
    reads_of_many_rows_come_back_whole,
    kept_dose_counts_follow_late_doses,
    derived_figures_agree_with_live_ones_under_concurrent_writes,
    alarms_merge_in_any_order_and_doses_count_per_month,
    published_months_keep_their_figures,
    inventory_imports_are_dated_snapshots_kept_once,
    import_errors_are_capped_per_import,
    sessions_expire_and_end,
    accounts_lock_after_wrong_passwords,
    the_audit_chain_holds,
    decommission_reasons_are_kept_and_read_back,
    reconciliation_inputs_from_events,
    mqtt_credentials_are_created_revoked_and_replaced,
    a_municipality_sees_its_own_events_only,
    incidents_open_once_and_notices_wait_in_the_outbox,
    contact_history_survives_retention,
    contact_history_rebuilt_equals_incremental_in_any_arrival_order,
    service_state_counts_devices_and_recipients_at_any_instant_in_any_order,
    dose_months_count_each_dose_once_in_any_order,
    response_sums_equal_the_domain_figures_in_any_order,
    response_figures_over_many_years_are_read_whole,
    spans_and_installs_give_what_the_events_give_in_any_order,
    a_store_from_before_kept_replaced_units_fills_them_on_open,
);

/// A device installed in Flå (3320) and moved to Ål (3328), and alarms whose events come from
/// both: Ål's own view of the device and Ål's and Flå's own alarm records are made of their
/// own events; the region's view is unchanged.
async fn a_municipality_sees_its_own_events_only(s: TestStore) {
    let (fla, aal) = (
        MunicipalityCode::parse("3320").expect("code"),
        MunicipalityCode::parse("3328").expect("code"),
    );
    let at = |t: &str| {
        DateTime::parse_from_rfc3339(t)
            .expect("ts")
            .with_timezone(&Utc)
    };
    let mut installed_in_fla = install(
        "m1",
        "2025-01-10T10:00:00Z",
        "3320",
        "MOVED",
        TechnologyKind::SafetyAlarm,
    );
    installed_in_fla.recipient = Some(vft_domain::RecipientRef::parse("r-fla").expect("recipient"));
    installed_in_fla.gateway = GatewayId::parse("gw-fla").expect("gateway");
    let mut heartbeat_in_fla = event(
        "hepro",
        "m2",
        "2025-02-01T10:00:00Z",
        "3320",
        "MOVED",
        EventType::Heartbeat,
        None,
    );
    heartbeat_in_fla.battery = Some(40);
    heartbeat_in_fla.gateway = GatewayId::parse("gw-fla").expect("gateway");
    let mut installed_in_aal = install(
        "m3",
        "2025-03-01T10:00:00Z",
        "3328",
        "MOVED",
        TechnologyKind::SafetyAlarm,
    );
    installed_in_aal.recipient = Some(vft_domain::RecipientRef::parse("r-aal").expect("recipient"));
    installed_in_aal.gateway = GatewayId::parse("gw-aal").expect("gateway");
    // The alarms are on devices that stay put (FLA1 in Flå, AAL1 in Ål): an alarm event is
    // contact, and would make the moved device's latest contact Ål's.
    let alarm = |id: &str, ts: &str, m: &str, t: EventType, alarm: &str| {
        let device = if alarm == "X" { "FLA1" } else { "AAL1" };
        let mut e = event("hepro", id, ts, m, device, t, None);
        e.alarm = Some(vft_domain::AlarmRef::parse(alarm).expect("alarm"));
        e.cause = (t == EventType::Alarm).then_some(vft_domain::Cause::Button);
        e.outcome = (t == EventType::AlarmClosed).then_some(vft_domain::Outcome::FalseAlarm);
        e
    };
    let events = [
        installed_in_fla,
        heartbeat_in_fla,
        installed_in_aal,
        install(
            "h1",
            "2025-01-01T10:00:00Z",
            "3320",
            "FLA1",
            TechnologyKind::SafetyAlarm,
        ),
        install(
            "a1",
            "2025-01-01T10:00:00Z",
            "3328",
            "AAL1",
            TechnologyKind::SafetyAlarm,
        ),
        // X: raised in Flå, acknowledged after 30 s by Ål's gateway.
        alarm("x1", "2025-02-10T10:00:00Z", "3320", EventType::Alarm, "X"),
        alarm(
            "x2",
            "2025-02-10T10:00:30Z",
            "3328",
            EventType::AlarmAcknowledged,
            "X",
        ),
        // Y: Ål's own, its receipt stamped (clock skew) in January, its alarm in February.
        alarm("y1", "2025-01-31T23:00:10Z", "3328", EventType::Alarm, "Y"),
        alarm(
            "y2",
            "2025-01-31T22:59:59Z",
            "3328",
            EventType::AlarmReceived,
            "Y",
        ),
        alarm(
            "y3",
            "2025-01-31T23:00:20Z",
            "3328",
            EventType::AlarmAcknowledged,
            "Y",
        ),
    ];
    s.store
        .write_batch(&events, &[], Utc::now())
        .await
        .expect("write");

    // The device: the region sees its first install in Flå, Ål only its own.
    let mut region = query("2025-03-02T10:00:00Z");
    region.municipalities = Some(vec![aal.clone()]);
    region.device = Some((
        VendorId::parse("hepro").expect("vendor"),
        DeviceId::parse("MOVED").expect("device"),
    ));
    let [r] = s
        .store
        .devices(&region)
        .await
        .expect("devices")
        .try_into()
        .expect("one device");
    assert_eq!(r.first_installed, Some(at("2025-01-10T10:00:00Z")));
    assert_eq!(
        (r.battery, r.gateway.as_deref()),
        (Some(40), Some("gw-fla"))
    );
    let own = DeviceQuery {
        own: Some(aal.clone()),
        ..region.clone()
    };
    let [o] = s
        .store
        .devices(&own)
        .await
        .expect("devices")
        .try_into()
        .expect("one device");
    assert_eq!(o.first_installed, Some(at("2025-03-01T10:00:00Z")));
    assert_eq!(o.recipient.as_deref(), Some("r-aal"));
    assert_eq!(
        (
            o.last_contact,
            o.battery,
            o.gateway.as_deref(),
            o.connectivity
        ),
        (None, None, Some("gw-aal"), Connectivity::NeverSeen),
        "the contact was made in Flå"
    );
    let installed_since_feb = DeviceQuery {
        installed_after: Some(at("2025-02-01T00:00:00Z")),
        ..own.clone()
    };
    assert_eq!(
        s.store
            .devices(&installed_since_feb)
            .await
            .expect("devices")
            .len(),
        1
    );
    let installed_before_feb = DeviceQuery {
        installed_before: Some(at("2025-02-01T00:00:00Z")),
        ..own.clone()
    };
    assert!(
        s.store
            .devices(&installed_before_feb)
            .await
            .expect("devices")
            .is_empty()
    );
    let fla_own = DeviceQuery {
        own: Some(fla.clone()),
        municipalities: None,
        ..region.clone()
    };
    assert!(
        s.store.devices(&fla_own).await.expect("devices").is_empty(),
        "it left Flå"
    );
    // Once it reports in Ål, its contact is Ål's.
    let mut heartbeat_in_aal = event(
        "hepro",
        "m4",
        "2025-03-02T09:00:00Z",
        "3328",
        "MOVED",
        EventType::Heartbeat,
        None,
    );
    heartbeat_in_aal.gateway = GatewayId::parse("gw-aal2").expect("gateway");
    s.store
        .write_batch(&[heartbeat_in_aal], &[], Utc::now())
        .await
        .expect("write");
    let [o] = s
        .store
        .devices(&own)
        .await
        .expect("devices")
        .try_into()
        .expect("one device");
    assert_eq!(
        (o.last_contact, o.gateway.as_deref()),
        (Some(at("2025-03-02T09:00:00Z")), Some("gw-aal2"))
    );
    let vendor = VendorId::parse("hepro").expect("vendor");
    let moved = [DeviceId::parse("MOVED").expect("device")];
    let ids = |events: Vec<Event>| {
        events
            .into_iter()
            .map(|e| e.id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(s
            .store
            .device_events(&vendor, &moved, Some(&aal), 100)
            .await
            .expect("history")),
        ["m3", "m4"]
    );
    assert_eq!(
        ids(s
            .store
            .device_events(&vendor, &moved, Some(&fla), 100)
            .await
            .expect("history")),
        ["m1", "m2"]
    );

    // The alarms: the region's X is Flå's, answered in 30 s; Flå's own X is unanswered, and
    // Ål's own X is an answer without a trigger.
    let (jan, feb) = (
        YearMonth::new(2025, 1).expect("month"),
        YearMonth::new(2025, 2).expect("month"),
    );
    let span = (jan.start(), feb.end_exclusive());
    let summary = |records: Vec<vft_domain::AlarmRecord>| {
        records
            .into_iter()
            .map(|a| {
                format!(
                    "{} {} {:?} t={} r={} a={} ms={:?}",
                    a.alarm,
                    a.municipality,
                    a.month().map(|m| m.to_string()),
                    a.triggered.is_some(),
                    a.received.is_some(),
                    a.acknowledged.is_some(),
                    a.response_ms()
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        summary(s.store.alarm_records(span.0, span.1).await.expect("alarms")),
        [
            "Y 3328 Some(\"2025-02\") t=true r=true a=true ms=Some(10000)",
            "X 3320 Some(\"2025-02\") t=true r=false a=true ms=Some(30000)",
        ]
    );
    assert_eq!(
        summary(
            s.store
                .own_alarm_records(&fla, span.0, span.1)
                .await
                .expect("alarms")
        ),
        ["X 3320 Some(\"2025-02\") t=true r=false a=false ms=None"]
    );
    assert_eq!(
        summary(
            s.store
                .own_alarm_records(&aal, span.0, span.1)
                .await
                .expect("alarms")
        ),
        [
            "Y 3328 Some(\"2025-02\") t=true r=true a=true ms=Some(10000)",
            "X 3328 Some(\"2025-02\") t=false r=false a=true ms=None",
        ]
    );
    // Y belongs to February by its alarm event, though its receipt is stamped in January:
    // asked for February alone, Ål's own records still hold that receipt.
    let feb_only = summary(
        s.store
            .own_alarm_records(&aal, feb.start(), feb.end_exclusive())
            .await
            .expect("alarms"),
    );
    assert_eq!(
        feb_only[0],
        "Y 3328 Some(\"2025-02\") t=true r=true a=true ms=Some(10000)"
    );
    assert!(
        s.store
            .own_alarm_records(&aal, jan.start(), jan.end_exclusive())
            .await
            .expect("alarms")
            .is_empty()
    );
    assert_eq!(
        s.store
            .own_alarm_records(&aal, span.0, span.1)
            .await
            .expect("alarms")[0]
            .kind,
        Some(TechnologyKind::SafetyAlarm),
        "kind from the device"
    );
}

async fn incidents_open_once_and_notices_wait_in_the_outbox(s: TestStore) {
    use vft_domain::notify::{Finding, NoticeEvent, RuleDefinition, plan};
    use vft_store::{Channel, IncidentQuery};
    let at = |t: &str| {
        DateTime::parse_from_rfc3339(t)
            .expect("time")
            .with_timezone(&Utc)
    };
    let hol = MunicipalityCode::parse("3242").expect("code");
    let rule = RuleDefinition::new(
        Some(hol.clone()),
        "device_offline",
        Some(3600),
        vec!["kari@hol.kommune.no".into(), "ola@hol.kommune.no".into()],
        Some("http://127.0.0.1:9/hook".into()),
        false,
    )
    .expect("rule");
    let rule = s
        .store
        .create_rule(&rule, "user:kari", at("2025-03-01T08:00:00Z"))
        .await
        .expect("create");
    assert_eq!(s.store.rules().await.expect("rules"), vec![rule.clone()]);
    let found = |subjects: &[&str]| -> Vec<Finding> {
        subjects
            .iter()
            .map(|d| Finding {
                subject: format!("device:hepro/{d}"),
                municipality: Some(hol.clone()),
                summary: format!("hepro/{d} i Hol"),
            })
            .collect()
    };
    // Two devices go silent: two incidents, each with an e-mail and a webhook notice.
    let open = s.store.open_incidents(rule.id).await.expect("open");
    let first = plan(&open, &found(&["A", "B"]));
    let t1 = at("2025-03-01T09:00:00Z");
    assert_eq!(
        s.store.apply_plan(&rule, &first, t1).await.expect("apply"),
        (2, 0)
    );
    // The same plan again (a second notifier, or a retry after a crash) opens nothing.
    assert_eq!(
        s.store.apply_plan(&rule, &first, t1).await.expect("again"),
        (0, 0)
    );
    let due = s.store.due_notices(t1, 100).await.expect("due");
    assert_eq!(due.len(), 4);
    assert!(due.iter().all(|n| n.notice.event == NoticeEvent::Opened));
    assert_eq!(
        due.iter()
            .filter(|n| n.notice.channel == Channel::Email)
            .count(),
        2
    );
    assert_eq!(due[0].channels.emails.len(), 2);
    // One fails and waits; the others are delivered and never due again.
    let failed = due[0].notice.id;
    s.store
        .notice_failed(failed, "connection refused", at("2025-03-01T09:05:00Z"))
        .await
        .expect("failed");
    let delivered: Vec<i64> = due[1..].iter().map(|n| n.notice.id).collect();
    s.store
        .notices_delivered(&delivered, t1)
        .await
        .expect("delivered");
    assert!(s.store.due_notices(t1, 100).await.expect("due").is_empty());
    let retry = s
        .store
        .due_notices(at("2025-03-01T09:05:00Z"), 100)
        .await
        .expect("retry");
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].notice.attempts, 1);
    assert_eq!(
        retry[0].notice.last_error.as_deref(),
        Some("connection refused")
    );
    // A comes back: its incident resolves with two more notices; B stays open.
    let open = s.store.open_incidents(rule.id).await.expect("open");
    let second = plan(&open, &found(&["B"]));
    assert_eq!(second.open.len(), 0);
    let t2 = at("2025-03-01T10:00:00Z");
    assert_eq!(
        s.store.apply_plan(&rule, &second, t2).await.expect("apply"),
        (0, 1)
    );
    let history = s
        .store
        .incidents(&IncidentQuery {
            municipality: Some(hol.clone()),
            limit: 10,
            ..IncidentQuery::default()
        })
        .await
        .expect("history");
    assert_eq!(history.len(), 2);
    let a = history
        .iter()
        .find(|i| i.subject == "device:hepro/A")
        .expect("A");
    assert_eq!(a.resolved_at, Some(t2));
    assert_eq!(a.notices.len(), 4);
    let other = s
        .store
        .incidents(&IncidentQuery {
            municipality: Some(MunicipalityCode::parse("3236").expect("code")),
            limit: 10,
            ..IncidentQuery::default()
        })
        .await
        .expect("history");
    assert!(other.is_empty(), "another municipality's history is empty");
    // Deleting the rule drops its undelivered notices and closes B without a notice.
    assert!(s.store.delete_rule(rule.id, t2).await.expect("delete"));
    assert!(!s.store.delete_rule(rule.id, t2).await.expect("twice"));
    assert!(s.store.rules().await.expect("rules").is_empty());
    assert!(s.store.due_notices(t2, 100).await.expect("due").is_empty());
    assert!(
        s.store
            .open_incidents(rule.id)
            .await
            .expect("open")
            .is_empty()
    );
}

async fn mqtt_credentials_are_created_revoked_and_replaced(s: TestStore) {
    use vft_domain::mqtt_access::CredentialScope;
    use vft_store::MqttCredential;
    let at = |t: &str| {
        DateTime::parse_from_rfc3339(t)
            .expect("time")
            .with_timezone(&Utc)
    };
    let hepro = |username: &str, gateway: Option<&str>, hash: &str| MqttCredential {
        username: username.into(),
        password_hash: hash.into(),
        scope: CredentialScope {
            vendor: VendorId::parse("hepro").expect("vendor"),
            gateway: gateway.map(|g| GatewayId::parse(g).expect("gateway")),
        },
        label: Some("Ål base units".into()),
        created_at: at("2026-01-01T10:00:00Z"),
        revoked_at: None,
    };
    let vendor = hepro("hepro", None, "$argon2id$a");
    let gateway = MqttCredential {
        label: None,
        created_at: at("2026-01-02T10:00:00Z"),
        ..hepro("hepro/gw-1", Some("gw-1"), "$argon2id$b")
    };
    assert!(
        s.store
            .create_mqtt_credential(&vendor)
            .await
            .expect("create")
    );
    assert!(
        s.store
            .create_mqtt_credential(&gateway)
            .await
            .expect("create")
    );
    assert!(
        !s.store
            .create_mqtt_credential(&hepro("hepro", None, "$argon2id$c"))
            .await
            .expect("create"),
        "a live username is not given out twice"
    );
    assert_eq!(
        s.store.mqtt_credential("hepro").await.expect("find"),
        Some(vendor.clone())
    );
    assert_eq!(s.store.mqtt_credential("atea").await.expect("find"), None);
    assert_eq!(
        s.store.mqtt_credentials().await.expect("list"),
        [vendor.clone(), gateway.clone()]
    );

    let revoked_at = at("2026-02-01T00:00:00Z");
    assert!(
        s.store
            .revoke_mqtt_credential("hepro", revoked_at)
            .await
            .expect("revoke")
    );
    assert!(
        !s.store
            .revoke_mqtt_credential("hepro", revoked_at)
            .await
            .expect("revoke"),
        "revoked once"
    );
    assert!(
        !s.store
            .revoke_mqtt_credential("nobody", revoked_at)
            .await
            .expect("revoke")
    );
    assert_eq!(
        s.store
            .mqtt_credential("hepro")
            .await
            .expect("find")
            .and_then(|c| c.revoked_at),
        Some(revoked_at)
    );
    let again = MqttCredential {
        created_at: at("2026-03-01T00:00:00Z"),
        ..hepro("hepro", None, "$argon2id$d")
    };
    assert!(
        s.store
            .create_mqtt_credential(&again)
            .await
            .expect("create"),
        "a revoked username may be given out again"
    );
    assert_eq!(
        s.store.mqtt_credential("hepro").await.expect("find"),
        Some(again)
    );
}

fn event(
    vendor: &str,
    id: &str,
    ts: &str,
    municipality: &str,
    device: &str,
    t: EventType,
    kind: Option<TechnologyKind>,
) -> Event {
    Event {
        vendor: VendorId::parse(vendor).expect("vendor"),
        gateway: GatewayId::parse("gw-1").expect("gateway"),
        id: EventId::parse(id).expect("id"),
        ts: DateTime::parse_from_rfc3339(ts).expect("ts"),
        municipality: MunicipalityCode::parse(municipality).expect("municipality"),
        device: DeviceId::parse(device).expect("device"),
        event_type: t,
        kind,
        battery: None,
        alarm: None,
        cause: None,
        outcome: None,
        recipient: None,
        replaces: None,
        reason: None,
    }
}

fn install(id: &str, ts: &str, m: &str, device: &str, kind: TechnologyKind) -> Event {
    event("hepro", id, ts, m, device, EventType::Installed, Some(kind))
}

fn months_2025() -> Vec<DateTime<Utc>> {
    month_end_instants(&YearMonth::months_of_year(2025).expect("year"))
}

/// A small deterministic pseudo-random generator (xorshift), so a failing seed reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Stores `events` as gateways may deliver them: `repeats` random copies added, all shuffled,
/// then `last` (a conflicting repeat, say) after its first arrival, in batches of 1 to
/// `max_batch` events.
async fn write_in_any_order(
    s: &TestStore,
    rng: &mut Rng,
    events: &[Event],
    repeats: usize,
    last: Option<Event>,
    max_batch: u64,
) {
    let mut arrival = events.to_vec();
    for _ in 0..repeats {
        arrival.push(events[rng.below(events.len() as u64) as usize].clone());
    }
    for i in (1..arrival.len()).rev() {
        arrival.swap(i, rng.below(i as u64 + 1) as usize);
    }
    arrival.extend(last);
    let mut rest = arrival.as_slice();
    while !rest.is_empty() {
        let (batch, tail) = rest.split_at((rng.below(max_batch) as usize + 1).min(rest.len()));
        s.store
            .write_batch(batch, &[], Utc::now())
            .await
            .expect("write");
        rest = tail;
    }
}

/// Gives most installs a recipient (of five) and half a replaced unit (of the scenario's twelve
/// devices), so recipients' spans and replacement chains are exercised.
fn give_installs_recipients_and_replacements(events: &mut [Event], rng: &mut Rng) {
    for e in events
        .iter_mut()
        .filter(|e| e.event_type == EventType::Installed)
    {
        e.recipient = (rng.below(3) != 0).then(|| {
            vft_domain::RecipientRef::parse(&format!("r-{}", rng.below(5))).expect("recipient")
        });
        e.replaces = (rng.below(2) == 0)
            .then(|| DeviceId::parse(&format!("D{}", rng.below(12))).expect("device"));
    }
}

/// Lifecycle and status events for a few devices over 2025, clustered around month ends and
/// with shared timestamps so ties and boundaries are exercised.
fn scenario(seed: u64, n: usize) -> Vec<Event> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let offsets = [
        FixedOffset::east_opt(0),
        FixedOffset::east_opt(3600),
        FixedOffset::east_opt(7200),
    ];
    let base = DateTime::parse_from_rfc3339("2025-01-01T00:00:00+01:00")
        .expect("ts")
        .with_timezone(&Utc);
    (0..n)
        .map(|i| {
            let month_end = months_2025()[rng.below(12) as usize];
            let ts = if rng.below(2) == 0 {
                month_end - Duration::minutes(rng.below(180) as i64 - 90)
            } else {
                base + Duration::hours(rng.below(24 * 365) as i64)
            };
            let offset = offsets[rng.below(3) as usize].expect("offset");
            let t = match rng.below(5) {
                0 | 1 => EventType::Installed,
                2 => EventType::Decommissioned,
                3 => EventType::Heartbeat,
                _ => EventType::BatteryLow,
            };
            let mut e = event(
                ["hepro", "atea"][rng.below(2) as usize],
                &format!("e{seed}-{i}"),
                &ts.with_timezone(&offset).to_rfc3339(),
                ["3320", "3328", "3330"][rng.below(3) as usize],
                &format!("D{}", rng.below(12)),
                t,
                (t == EventType::Installed).then(|| TechnologyKind::ALL[rng.below(6) as usize]),
            );
            e.battery = (t == EventType::BatteryLow).then_some(7);
            e
        })
        .collect()
}

async fn writes_are_idempotent_on_vendor_and_id(s: TestStore) {
    let e1 = install(
        "e1",
        "2025-03-01T10:00:00+01:00",
        "3328",
        "D1",
        TechnologyKind::SafetyAlarm,
    );
    let first = s
        .store
        .write_batch(&[e1.clone(), e1.clone()], &[], Utc::now())
        .await
        .expect("write");
    assert_eq!((first.events_inserted, first.events_duplicate), (1, 1));
    let again = s
        .store
        .write_batch(std::slice::from_ref(&e1), &[], Utc::now())
        .await
        .expect("write");
    assert_eq!((again.events_inserted, again.events_duplicate), (0, 1));
    // The same id from another vendor is another event.
    let mut other = e1.clone();
    other.vendor = VendorId::parse("atea").expect("vendor");
    let third = s
        .store
        .write_batch(&[other], &[], Utc::now())
        .await
        .expect("write");
    assert_eq!(third.events_inserted, 1);
    assert_eq!(s.store.event_count().await.expect("count"), 2);
    assert!(first.conflicting.is_empty() && again.conflicting.is_empty());

    // Same id, other content: before (e1) or earlier in the batch (e2). The first arrival stays;
    // the others are reported. Another offset for the same instant, or another gateway, is the
    // same event.
    let mut moved = e1.clone();
    moved.municipality = MunicipalityCode::parse("3330").expect("code");
    let e2 = install(
        "e2",
        "2025-03-02T10:00:00+01:00",
        "3328",
        "D2",
        TechnologyKind::SafetyAlarm,
    );
    let mut e2_later = e2.clone();
    e2_later.ts = DateTime::parse_from_rfc3339("2025-03-02T11:00:00+01:00").expect("ts");
    let mut e2_relayed = e2.clone();
    e2_relayed.ts = DateTime::parse_from_rfc3339("2025-03-02T09:00:00Z").expect("ts");
    e2_relayed.gateway = GatewayId::parse("gw-other").expect("gateway");
    let batch = [e1.clone(), moved, e2.clone(), e2_later, e2_relayed];
    let mixed = s
        .store
        .write_batch(&batch, &[], Utc::now())
        .await
        .expect("write");
    assert_eq!(mixed.conflicting, [1, 3]);
    assert_eq!(mixed.events_inserted, 1);
    let history = s
        .store
        .device_events(&e1.vendor, std::slice::from_ref(&e1.device), None, 10)
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(
        history[0].municipality.as_str(),
        "3328",
        "the first arrival stays"
    );
    let devices = s
        .store
        .devices(&query("2025-03-03T00:00:00Z"))
        .await
        .expect("devices");
    let state = |d: &str| {
        devices
            .iter()
            .find(|r| r.vendor.as_str() == "hepro" && r.device.as_str() == d)
            .unwrap_or_else(|| panic!("{d}"))
    };
    assert_eq!(
        state("D1").municipality.as_str(),
        "3328",
        "state follows the kept event"
    );
    assert_eq!(
        state("D2").lifecycle_at,
        Some(e2.ts_utc()),
        "a conflicting later time is not merged"
    );
}

async fn counts_match_the_domain_rules_whatever_the_arrival_order(s: TestStore) {
    let instants = months_2025();
    for seed in 1..=4u64 {
        let events = scenario(seed, 150);
        // Arrival: reversed, in uneven batches, with the first third replayed at the end.
        let mut stream: Vec<Event> = events.iter().rev().cloned().collect();
        stream.extend(events[..events.len() / 3].iter().cloned());
        let mut rng = Rng(seed + 99);
        let mut rest = stream.as_slice();
        while !rest.is_empty() {
            let take = (1 + rng.below(40) as usize).min(rest.len());
            let (batch, tail) = rest.split_at(take);
            s.store
                .write_batch(batch, &[], Utc::now())
                .await
                .expect("write");
            rest = tail;
        }
    }
    let records = s.store.lifecycle_records().await.expect("records");
    let all: Vec<Event> = (1..=4).flat_map(|seed| scenario(seed, 150)).collect();
    let from_events: Vec<_> = all
        .iter()
        .filter_map(vft_domain::LifecycleRecord::from_event)
        .collect();
    assert_eq!(
        records.len(),
        from_events.len(),
        "one stored record per lifecycle event"
    );
    let expected = month_end_counts(&from_events, &instants, &RollupFilter::default());
    assert!(
        expected.iter().any(|c| c.iter().sum::<u64>() > 0),
        "the scenario puts devices in service"
    );
    let got = s
        .store
        .device_counts(&instants, &RollupFilter::default())
        .await
        .expect("counts");
    assert_eq!(got, expected);
}

async fn oslo_month_boundary_decides_the_month(s: TestStore) {
    let events = [
        // 00:30 on 1 July in Oslo: July, not June.
        install(
            "a",
            "2025-06-30T22:30:00Z",
            "3328",
            "D1",
            TechnologyKind::Tracking,
        ),
        // 23:59 on 30 June in Oslo: June.
        install(
            "b",
            "2025-06-30T23:59:00+02:00",
            "3328",
            "D2",
            TechnologyKind::Tracking,
        ),
        // Removed 00:00:00 on 1 July in Oslo: still in service at June's last instant.
        event(
            "hepro",
            "c",
            "2025-07-01T00:00:00+02:00",
            "3328",
            "D2",
            EventType::Decommissioned,
            None,
        ),
    ];
    s.store
        .write_batch(&events, &[], Utc::now())
        .await
        .expect("write");
    let counts = s
        .store
        .device_counts(&months_2025(), &RollupFilter::default())
        .await
        .expect("counts");
    let tracking = |m: usize| counts[m][TechnologyKind::Tracking.index()];
    assert_eq!(
        (tracking(5), tracking(6)),
        (1, 1),
        "June has D2, July has D1"
    );
}

async fn filters_by_municipality_and_vendor(s: TestStore) {
    let mut atea = install(
        "x",
        "2025-02-01T12:00:00+01:00",
        "3320",
        "D9",
        TechnologyKind::SmokeDetector,
    );
    atea.vendor = VendorId::parse("atea").expect("vendor");
    let events = [
        install(
            "a",
            "2025-02-01T12:00:00+01:00",
            "3328",
            "D1",
            TechnologyKind::SmokeDetector,
        ),
        install(
            "b",
            "2025-02-01T12:00:00+01:00",
            "3320",
            "D2",
            TechnologyKind::SmokeDetector,
        ),
        atea,
    ];
    s.store
        .write_batch(&events, &[], Utc::now())
        .await
        .expect("write");
    let feb = &months_2025()[1..2];
    let k = TechnologyKind::SmokeDetector.index();
    let count = |m: Option<&str>, v: Option<&str>| {
        let filter = RollupFilter {
            municipality: m.map(|m| MunicipalityCode::parse(m).expect("code")),
            vendor: v.map(|v| VendorId::parse(v).expect("vendor")),
        };
        let store = s.store.clone();
        async move { store.device_counts(feb, &filter).await.expect("counts")[0][k] }
    };
    assert_eq!(count(None, None).await, 3);
    assert_eq!(count(Some("3320"), None).await, 2);
    assert_eq!(count(Some("3320"), Some("hepro")).await, 1);
    assert_eq!(count(None, Some("atea")).await, 1);
    assert_eq!(count(Some("3330"), None).await, 0);
}

async fn dead_letters_are_kept_once_newest_first(s: TestStore) {
    let dl = |n: u8| NewDeadLetter {
        topic: "vft/v1/hepro/gw/events".into(),
        payload: vec![b'{', n, 0xff],
        reason_code: "malformed_json".into(),
        reason: format!("malformed JSON #{n}"),
    };
    let out = s
        .store
        .write_batch(&[], &[dl(1), dl(2), dl(1)], Utc::now())
        .await
        .expect("write");
    assert_eq!(out.dead_letters_inserted, 2);
    s.store
        .write_batch(&[], &[dl(2), dl(3)], Utc::now())
        .await
        .expect("write");
    let all = s.store.dead_letters(10, None).await.expect("list");
    let reasons: Vec<&str> = all.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "malformed JSON #3",
            "malformed JSON #2",
            "malformed JSON #1"
        ]
    );
    assert_eq!(
        all[0].payload,
        vec![b'{', 3, 0xff],
        "raw bytes survive, even invalid UTF-8"
    );
    let page = s
        .store
        .dead_letters(1, Some(all[1].id))
        .await
        .expect("page");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].reason, "malformed JSON #1");
}

async fn tokens_round_trip_and_are_unique(s: TestStore) {
    let aal = Role::municipality_user([
        MunicipalityCode::parse("3328").expect("code"),
        MunicipalityCode::parse("3330").expect("code"),
    ])
    .expect("role");
    let now = Utc::now();
    s.store
        .create_token("hash-a", &aal, "Ål", now, Some(now + Duration::days(1)))
        .await
        .expect("create");
    s.store
        .create_token("hash-c", &Role::Coordinator, "c", now, None)
        .await
        .expect("create");
    s.store
        .create_token(
            "hash-x",
            &Role::Operator,
            "old",
            now,
            Some(now - Duration::seconds(1)),
        )
        .await
        .expect("create");
    assert!(
        s.store
            .create_token("hash-a", &Role::Coordinator, "again", now, None)
            .await
            .is_err(),
        "hash is unique"
    );
    let found = s.store.find_token("hash-a", now).await.expect("find");
    assert_eq!(found.as_ref().map(|t| &t.role), Some(&aal));
    assert_eq!(found.and_then(|t| t.label).as_deref(), Some("Ål"));
    assert_eq!(
        s.store
            .find_token("hash-c", now)
            .await
            .expect("find")
            .map(|t| t.role),
        Some(Role::Coordinator)
    );
    assert_eq!(s.store.find_token("nope", now).await.expect("find"), None);
    assert_eq!(
        s.store.find_token("hash-x", now).await.expect("find"),
        None,
        "an expired token is not found"
    );
    assert_eq!(
        s.store
            .find_token("hash-a", now + Duration::days(2))
            .await
            .expect("find"),
        None
    );
    assert_eq!(s.store.list_tokens().await.expect("list").len(), 3);
    assert!(s.store.delete_token("hash-x").await.expect("delete"));
    assert!(!s.store.delete_token("hash-x").await.expect("delete"));
}

async fn large_batches_are_split_into_statements(s: TestStore) {
    let events: Vec<Event> = (0..1234)
        .map(|i| {
            install(
                &format!("e{i}"),
                "2025-05-05T05:05:05+02:00",
                "3330",
                &format!("D{i}"),
                TechnologyKind::SafetyAlarm,
            )
        })
        .collect();
    let out = s
        .store
        .write_batch(&events, &[], Utc::now())
        .await
        .expect("write");
    assert_eq!(out.events_inserted, 1234);
    let counts = s
        .store
        .device_counts(&months_2025()[4..5], &RollupFilter::default())
        .await
        .expect("counts");
    assert_eq!(counts[0][TechnologyKind::SafetyAlarm.index()], 1234);
    assert!(s.store.ping().await.is_ok());
}

const HOUR: u64 = 3600;

fn timeouts() -> Timeouts {
    Timeouts {
        per_kind: [HOUR; 6],
        unknown_kind: 2 * HOUR,
    }
}

fn query(now: &str) -> DeviceQuery {
    let now = DateTime::parse_from_rfc3339(now)
        .expect("now")
        .with_timezone(&Utc);
    let mut q = DeviceQuery::new(now, timeouts());
    q.limit = 0;
    q
}

fn status(id: &str, ts: &str, device: &str, t: EventType, battery: Option<u8>) -> Event {
    let mut e = event("hepro", id, ts, "3328", device, t, None);
    e.battery = battery;
    e
}

async fn device_state_ignores_arrival_order(s: TestStore) {
    let events = scenario(7, 300);
    let mut stream: Vec<Event> = events.iter().rev().cloned().collect();
    stream.extend(events[..100].iter().cloned());
    let mut rng = Rng(5);
    let mut rest = stream.as_slice();
    while !rest.is_empty() {
        let take = (1 + rng.below(30) as usize).min(rest.len());
        let (batch, tail) = rest.split_at(take);
        s.store
            .write_batch(batch, &[], Utc::now())
            .await
            .expect("write");
        rest = tail;
    }
    let got = s
        .store
        // "Now" after every event, so the latest lifecycle event is the one in force.
        .devices(&query("2030-01-01T00:00:00Z"))
        .await
        .expect("devices");
    let expected = DeviceDelta::fold(&events);
    assert_eq!(got.len(), expected.len());
    for (d, e) in got.iter().zip(&expected) {
        assert_eq!((&d.vendor, &d.device), (&e.vendor, &e.device));
        assert_eq!(
            d.in_service,
            e.lifecycle.as_ref().is_some_and(|l| l.installed),
            "{}",
            d.device
        );
        assert_eq!(d.kind, e.install.as_ref().map(|i| i.kind), "{}", d.device);
        let municipality = e
            .lifecycle
            .as_ref()
            .map(|l| &l.municipality)
            .or(e.contact.as_ref().map(|c| &c.municipality));
        assert_eq!(Some(&d.municipality), municipality, "{}", d.device);
        assert_eq!(d.last_contact, e.contact.as_ref().map(|c| c.key.0));
        assert_eq!(d.battery, e.battery.as_ref().map(|(_, b)| *b));
        assert_eq!(d.first_installed, e.first_installed);
        assert_eq!(d.lifecycle_at, e.lifecycle.as_ref().map(|l| l.key.0));
    }
}

async fn connectivity_follows_timeouts_wills_and_overrides(s: TestStore) {
    let events = [
        install(
            "i1",
            "2025-03-01T08:00:00Z",
            "3328",
            "ON",
            TechnologyKind::SafetyAlarm,
        ),
        status(
            "h1",
            "2025-03-01T11:30:00Z",
            "ON",
            EventType::Heartbeat,
            Some(90),
        ),
        install(
            "i2",
            "2025-03-01T08:00:00Z",
            "3328",
            "NEVER",
            TechnologyKind::SafetyAlarm,
        ),
        install(
            "i3",
            "2025-03-01T08:00:00Z",
            "3328",
            "WILL",
            TechnologyKind::SafetyAlarm,
        ),
        status(
            "h3",
            "2025-03-01T11:40:00Z",
            "WILL",
            EventType::Heartbeat,
            None,
        ),
        // Its clock runs ahead: the heartbeat says 12:10, vft receives it at 11:45.
        install(
            "i4",
            "2025-03-01T08:00:00Z",
            "3328",
            "FAST",
            TechnologyKind::SafetyAlarm,
        ),
        status(
            "h4",
            "2025-03-01T12:10:00Z",
            "FAST",
            EventType::Heartbeat,
            None,
        ),
    ];
    // Received (by vft's clock) when the scenario says, before the will below.
    let received = DateTime::parse_from_rfc3339("2025-03-01T11:45:00Z")
        .expect("ts")
        .with_timezone(&Utc);
    s.store
        .write_batch(&events, &[], received)
        .await
        .expect("write");
    let conn = |now: &'static str| {
        let store = s.store.clone();
        async move {
            let rows = store.devices(&query(now)).await.expect("devices");
            rows.into_iter()
                .map(|d| (d.device.to_string(), d.connectivity))
                .collect::<std::collections::BTreeMap<_, _>>()
        }
    };
    let at_noon = conn("2025-03-01T12:00:00Z").await;
    assert_eq!(at_noon["ON"], Connectivity::Online);
    assert_eq!(at_noon["NEVER"], Connectivity::NeverSeen);
    assert_eq!(at_noon["WILL"], Connectivity::Online);
    // One hour after its last contact plus a second: offline, with no new message.
    assert_eq!(
        conn("2025-03-01T12:30:01Z").await["ON"],
        Connectivity::Offline
    );
    assert_eq!(
        conn("2025-03-01T12:30:00Z").await["ON"],
        Connectivity::Online
    );
    // The gateway's last will after the device's last contact makes it unreachable.
    let gw = VendorId::parse("hepro").expect("vendor");
    let will_at = DateTime::parse_from_rfc3339("2025-03-01T11:50:00Z")
        .expect("ts")
        .with_timezone(&Utc);
    s.store
        .set_gateway_status(&gw, "gw-1", false, will_at)
        .await
        .expect("status");
    let after_will = conn("2025-03-01T12:00:00Z").await;
    assert_eq!(after_will["WILL"], Connectivity::Offline);
    assert_eq!(
        after_will["FAST"],
        Connectivity::Offline,
        "a clock running ahead does not hide the will"
    );
    assert_eq!(after_will["ON"], Connectivity::Offline, "same gateway");
    s.store
        .set_gateway_status(&gw, "gw-1", true, will_at + Duration::minutes(5))
        .await
        .expect("status");
    assert_eq!(
        conn("2025-03-01T12:00:00Z").await["WILL"],
        Connectivity::Online
    );
    // A per-device timeout overrides its type's.
    let on = DeviceId::parse("ON").expect("device");
    assert!(
        s.store
            .set_device_timeout(&gw, &on, Some(10 * HOUR))
            .await
            .expect("set")
    );
    assert_eq!(
        conn("2025-03-01T20:00:00Z").await["ON"],
        Connectivity::Online
    );
    assert!(
        !s.store
            .set_device_timeout(&gw, &DeviceId::parse("NOPE").expect("d"), Some(1))
            .await
            .expect("set")
    );
    let mut offline = query("2025-03-01T20:00:00Z");
    offline.connectivity = Some(Connectivity::Offline);
    let names: Vec<String> = s
        .store
        .devices(&offline)
        .await
        .expect("devices")
        .iter()
        .map(|d| d.device.to_string())
        .collect();
    // ON has its own ten hours; FAST and WILL are silent past their type's hour.
    assert_eq!(names, ["FAST", "WILL"]);
}

async fn device_filters(s: TestStore) {
    let mut events = vec![
        install(
            "a",
            "2025-01-10T08:00:00Z",
            "3320",
            "HP-100%",
            TechnologyKind::Tracking,
        ),
        install(
            "b",
            "2025-02-10T08:00:00Z",
            "3328",
            "HP-200",
            TechnologyKind::SafetyAlarm,
        ),
        install(
            "c",
            "2025-03-10T08:00:00Z",
            "3328",
            "hp-300",
            TechnologyKind::SafetyAlarm,
        ),
        event(
            "hepro",
            "d",
            "2025-04-10T08:00:00Z",
            "3328",
            "hp-300",
            EventType::Decommissioned,
            None,
        ),
        status(
            "e",
            "2025-03-11T08:00:00Z",
            "HP-200",
            EventType::BatteryLow,
            Some(8),
        ),
    ];
    events.push(status(
        "f",
        "2025-03-12T08:00:00Z",
        "HP-100%",
        EventType::Heartbeat,
        Some(55),
    ));
    s.store
        .write_batch(&events, &[], Utc::now())
        .await
        .expect("write");
    // Every filtered list, and its count (every page together) agrees with it.
    let names = |q: DeviceQuery| {
        let store = s.store.clone();
        async move {
            let listed = store.devices(&q).await.expect("devices");
            if q.after.is_none() && (q.limit == 0 || listed.len() < q.limit as usize) {
                assert_eq!(
                    store.count_devices(&q).await.expect("count"),
                    listed.len() as u64,
                    "count of {q:?}"
                );
            }
            listed
                .iter()
                .map(|d| d.device.to_string())
                .collect::<Vec<_>>()
        }
    };
    let base = || query("2025-06-01T00:00:00Z");
    // The vendors with a device, as the list has them.
    let all = s.store.devices(&base()).await.expect("devices");
    let mut listed: Vec<String> = all.iter().map(|d| d.vendor.to_string()).collect();
    listed.sort();
    listed.dedup();
    let vendors: Vec<String> = s
        .store
        .vendors()
        .await
        .expect("vendors")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(vendors, listed);
    assert_eq!(
        names(DeviceQuery {
            kind: Some(TechnologyKind::SafetyAlarm),
            ..base()
        })
        .await,
        ["HP-200", "hp-300"]
    );
    assert_eq!(
        names(DeviceQuery {
            municipalities: Some(vec![MunicipalityCode::parse("3320").expect("m")]),
            ..base()
        })
        .await,
        ["HP-100%"]
    );
    assert_eq!(
        names(DeviceQuery {
            municipalities: Some(vec![]),
            ..base()
        })
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        names(DeviceQuery {
            battery_below: Some(20),
            ..base()
        })
        .await,
        ["HP-200"]
    );
    assert_eq!(
        names(DeviceQuery {
            search: Some("100%".into()),
            ..base()
        })
        .await,
        ["HP-100%"]
    );
    assert_eq!(
        names(DeviceQuery {
            search: Some("0%".into()),
            ..base()
        })
        .await,
        ["HP-100%"],
        "% is literal"
    );
    assert_eq!(
        names(DeviceQuery {
            search: Some("hp-".into()),
            ..base()
        })
        .await
        .len(),
        3,
        "case-insensitive"
    );
    assert_eq!(
        names(DeviceQuery {
            in_service: Some(false),
            ..base()
        })
        .await,
        ["hp-300"]
    );
    let feb = DateTime::parse_from_rfc3339("2025-02-01T00:00:00Z")
        .expect("ts")
        .with_timezone(&Utc);
    assert_eq!(
        names(DeviceQuery {
            installed_before: Some(feb),
            ..base()
        })
        .await,
        ["HP-100%"]
    );
    assert_eq!(
        names(DeviceQuery {
            installed_after: Some(feb),
            ..base()
        })
        .await,
        ["HP-200", "hp-300"]
    );
    let by_installed = DeviceQuery {
        sort: DeviceSort::Installed,
        descending: true,
        ..base()
    };
    assert_eq!(names(by_installed).await, ["hp-300", "HP-200", "HP-100%"]);
    let one = s
        .store
        .devices(&DeviceQuery {
            device: Some((
                VendorId::parse("hepro").expect("v"),
                DeviceId::parse("HP-200").expect("d"),
            )),
            ..base()
        })
        .await
        .expect("one");
    assert_eq!(one.len(), 1);
    assert_eq!(
        (one[0].battery, one[0].kind),
        (Some(8), Some(TechnologyKind::SafetyAlarm))
    );
}

async fn paging_neither_skips_nor_repeats_while_devices_are_added(s: TestStore) {
    let add = |from: usize, to: usize| -> Vec<Event> {
        (from..to)
            .map(|i| {
                install(
                    &format!("p{i}"),
                    &format!("2025-01-{:02}T08:00:00Z", 1 + i % 28),
                    ["3320", "3328"][i % 2],
                    &format!("P{:03}", (i * 37) % 1000),
                    TechnologyKind::ALL[i % 6],
                )
            })
            .collect()
    };
    s.store
        .write_batch(&add(0, 60), &[], Utc::now())
        .await
        .expect("write");
    for sort in [
        DeviceSort::Device,
        DeviceSort::Installed,
        DeviceSort::Municipality,
        DeviceSort::Kind,
    ] {
        for descending in [false, true] {
            let before: Vec<String> = s
                .store
                .devices(&query("2025-06-01T00:00:00Z"))
                .await
                .expect("all")
                .iter()
                .map(|d| d.device.to_string())
                .collect();
            let mut seen: Vec<String> = Vec::new();
            let mut q = DeviceQuery {
                sort,
                descending,
                limit: 7,
                ..query("2025-06-01T00:00:00Z")
            };
            let mut round = 0;
            loop {
                let page = s.store.devices(&q).await.expect("page");
                seen.extend(page.iter().map(|d| d.device.to_string()));
                // New devices arrive between pages.
                round += 1;
                let start = 1000 + (sort as usize) * 100 + usize::from(descending) * 50 + round * 3;
                s.store
                    .write_batch(&add(start, start + 3), &[], Utc::now())
                    .await
                    .expect("write");
                match page.last() {
                    Some(last) if page.len() == 7 => q.after = Some(last.cursor.clone()),
                    _ => break,
                }
            }
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                unique.len(),
                seen.len(),
                "{sort:?} desc={descending}: a device came twice"
            );
            for d in &before {
                assert!(seen.contains(d), "{sort:?} desc={descending}: {d} skipped");
            }
        }
    }
}

async fn history_and_replacements(s: TestStore) {
    let mut new = install(
        "r2",
        "2025-05-01T10:00:00+02:00",
        "3328",
        "NEW",
        TechnologyKind::SafetyAlarm,
    );
    new.replaces = Some(DeviceId::parse("OLD").expect("d"));
    let events = [
        install(
            "r1",
            "2025-01-01T10:00:00+01:00",
            "3328",
            "OLD",
            TechnologyKind::SafetyAlarm,
        ),
        status(
            "s1",
            "2025-02-01T10:00:00+01:00",
            "OLD",
            EventType::Fault,
            None,
        ),
        event(
            "hepro",
            "r3",
            "2025-05-01T10:00:00+02:00",
            "3328",
            "OLD",
            EventType::Decommissioned,
            None,
        ),
        new,
    ];
    s.store
        .write_batch(&events, &[], Utc::now())
        .await
        .expect("write");
    let vendor = VendorId::parse("hepro").expect("v");
    let old = DeviceId::parse("OLD").expect("d");
    assert_eq!(
        s.store
            .replaced_by(&vendor, &old)
            .await
            .expect("replaced_by"),
        vec![DeviceId::parse("NEW").expect("d")]
    );
    let history = s
        .store
        .device_events(
            &vendor,
            &[old.clone(), DeviceId::parse("NEW").expect("d")],
            None,
            100,
        )
        .await
        .expect("history");
    let ids: Vec<&str> = history.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        ["r1", "s1", "r2", "r3"],
        "time order, installed before decommissioned at the same instant"
    );
    assert_eq!(
        history[0], events[0],
        "events come back as they went in, offset included"
    );
}

async fn retention_purges_status_events_but_keeps_state(s: TestStore) {
    let events = [
        install(
            "i",
            "2025-01-01T10:00:00Z",
            "3328",
            "D",
            TechnologyKind::SafetyAlarm,
        ),
        status(
            "h1",
            "2025-01-02T10:00:00Z",
            "D",
            EventType::Heartbeat,
            Some(70),
        ),
        status(
            "h2",
            "2025-03-02T10:00:00Z",
            "D",
            EventType::Heartbeat,
            Some(60),
        ),
    ];
    s.store
        .write_batch(&events, &[], Utc::now())
        .await
        .expect("write");
    let cutoff = DateTime::parse_from_rfc3339("2025-02-01T00:00:00Z")
        .expect("ts")
        .with_timezone(&Utc);
    let purged = s
        .store
        .purge_events(&[EventType::Heartbeat, EventType::BatteryLow], cutoff)
        .await
        .expect("purge");
    assert_eq!(purged, 1);
    assert_eq!(s.store.event_count().await.expect("count"), 2);
    let d = &s
        .store
        .devices(&query("2025-03-02T10:30:00Z"))
        .await
        .expect("devices")[0];
    assert_eq!(
        (d.battery, d.connectivity, d.in_service),
        (Some(60), Connectivity::Online, true)
    );
}

async fn breakdown_and_snapshot_agree_with_the_domain_rules(s: TestStore) {
    let mut events = scenario(11, 250);
    for (i, e) in events.iter_mut().enumerate() {
        // Two devices of one recipient count one recipient.
        e.recipient =
            Some(vft_domain::RecipientRef::parse(&format!("r-{}", i % 5)).expect("recipient"));
    }
    s.store
        .write_batch(&events, &[], Utc::now())
        .await
        .expect("write");
    let instants = months_2025();
    let breakdown = s
        .store
        .month_end_breakdown(&instants)
        .await
        .expect("breakdown");
    let counts = s
        .store
        .device_counts(&instants, &RollupFilter::default())
        .await
        .expect("counts");
    let records: Vec<_> = events
        .iter()
        .filter_map(vft_domain::LifecycleRecord::from_event)
        .collect();
    for (m, t) in instants.iter().enumerate() {
        let mut sums = [0u64; 6];
        for row in breakdown.iter().filter(|r| r.idx == m) {
            sums[row.kind.index()] += row.devices;
            assert!(row.recipients <= row.devices && row.recipients <= 5);
        }
        assert_eq!(sums, counts[m], "month {m}");
        let snapshot = s.store.in_service_snapshot(*t).await.expect("snapshot");
        let expected = vft_domain::in_service_at(&records, *t);
        let got: Vec<(String, String)> = snapshot
            .iter()
            .map(|d| (d.vendor.to_string(), d.device.to_string()))
            .collect();
        let want: Vec<(String, String)> = expected
            .keys()
            .map(|(v, d)| (v.to_string(), d.to_string()))
            .collect();
        assert_eq!(got, want, "month {m}");
        for d in &snapshot {
            let r = expected[&(&d.vendor, &d.device)];
            assert_eq!((Some(d.kind), &d.municipality), (r.kind, &r.municipality));
            // Recipient and replaced unit come from the same (newest) install.
            let source = events
                .iter()
                .find(|e| e.vendor == r.vendor && e.id == r.event_id)
                .expect("source event");
            assert_eq!(
                (&d.recipient, &d.replaces),
                (&source.recipient, &source.replaces),
                "month {m}"
            );
        }
    }
}

/// Past month ends are kept once computed; a late lifecycle event dated before one of them must
/// still change it. The live per-kind counts (never kept) are the reference.
async fn kept_month_ends_follow_late_events(s: TestStore) {
    let instants = months_2025();
    let sums = |breakdown: &[vft_store::BreakdownRow]| {
        let mut sums = vec![[0u64; 6]; instants.len()];
        for row in breakdown {
            sums[row.idx][row.kind.index()] += row.devices;
        }
        sums
    };
    for (round, seed) in [21u64, 22, 23, 24].into_iter().enumerate() {
        // Each round adds events all over the year, so most kept month ends go stale.
        let events = scenario(seed, 120);
        s.store
            .write_batch(&events, &[], Utc::now())
            .await
            .expect("write");
        let first = s
            .store
            .month_end_breakdown(&instants)
            .await
            .expect("breakdown");
        let again = s.store.month_end_breakdown(&instants).await.expect("kept");
        assert_eq!(first, again, "round {round}: kept differs from computed");
        let live = s
            .store
            .device_counts(&instants, &RollupFilter::default())
            .await
            .expect("counts");
        assert_eq!(sums(&first), live, "round {round}");
    }
    // Only some cuts asked, in another order, and one repeated: each gets its own rows.
    let asked = [instants[5], instants[1], instants[5]];
    let some = s
        .store
        .month_end_breakdown(&asked)
        .await
        .expect("breakdown");
    let all = s
        .store
        .month_end_breakdown(&instants)
        .await
        .expect("breakdown");
    for (idx, month) in [(0usize, 5usize), (1, 1), (2, 5)] {
        let mine: Vec<_> = some
            .iter()
            .filter(|r| r.idx == idx)
            .map(|r| (&r.municipality, &r.vendor, r.kind, r.devices, r.recipients))
            .collect();
        let theirs: Vec<_> = all
            .iter()
            .filter(|r| r.idx == month)
            .map(|r| (&r.municipality, &r.vendor, r.kind, r.devices, r.recipients))
            .collect();
        assert_eq!(mine, theirs, "cut {idx}");
    }
}

/// Dose counts of ended months are kept once counted; a late dose still changes its month.
/// The reference is counting the events written so far by hand.
async fn kept_dose_counts_follow_late_doses(s: TestStore) {
    let months = YearMonth::months_of_year(2025).expect("year");
    let periods: Vec<(DateTime<Utc>, DateTime<Utc>)> = months
        .iter()
        .map(|m| (m.start(), m.end_exclusive()))
        .collect();
    let mut rng = Rng(0x000D_05E5);
    let mut written: Vec<Event> = Vec::new();
    for round in 0..4 {
        let batch: Vec<Event> = (0..60)
            .map(|i| {
                let month = months[rng.below(12) as usize];
                let ts = month.start() + Duration::hours(rng.below(24 * 27) as i64);
                let t = if rng.below(3) == 0 {
                    EventType::DoseMissed
                } else {
                    EventType::DoseTaken
                };
                event(
                    "hepro",
                    &format!("d{round}-{i}"),
                    &ts.to_rfc3339(),
                    ["3320", "3328"][rng.below(2) as usize],
                    "MD1",
                    t,
                    None,
                )
            })
            .collect();
        s.store
            .write_batch(&batch, &[], Utc::now())
            .await
            .expect("write");
        written.extend(batch);
        let mut expected: Vec<(usize, String, u64, u64)> = Vec::new();
        for (i, (start, end)) in periods.iter().enumerate() {
            for m in ["3320", "3328"] {
                let of = |t: EventType| {
                    written
                        .iter()
                        .filter(|e| e.event_type == t && e.municipality.as_str() == m)
                        .filter(|e| e.ts_utc() >= *start && e.ts_utc() < *end)
                        .count() as u64
                };
                let (taken, missed) = (of(EventType::DoseTaken), of(EventType::DoseMissed));
                if taken + missed > 0 {
                    expected.push((i, m.to_owned(), taken, missed));
                }
            }
        }
        for pass in ["counted", "kept"] {
            let got: Vec<(usize, String, u64, u64)> = s
                .store
                .dose_counts(&periods)
                .await
                .expect("doses")
                .into_iter()
                .map(|(i, m, t, x)| (i, m.to_string(), t, x))
                .collect();
            assert_eq!(got, expected, "round {round}, {pass}");
        }
    }
}

/// Readers keep figures while batches with late events commit: whatever interleaving, the
/// figures read afterwards (kept or not) equal the live counts.
async fn derived_figures_agree_with_live_ones_under_concurrent_writes(s: TestStore) {
    let instants = months_2025();
    let months = YearMonth::months_of_year(2025).expect("year");
    let periods: Vec<(DateTime<Utc>, DateTime<Utc>)> = months
        .iter()
        .map(|m| (m.start(), m.end_exclusive()))
        .collect();
    let mut events = scenario(41, 400);
    let mut rng = Rng(4141);
    for i in 0..200 {
        let month = months[rng.below(12) as usize];
        let ts = month.start() + Duration::hours(rng.below(24 * 27) as i64);
        events.push(event(
            "hepro",
            &format!("dose-{i}"),
            &ts.to_rfc3339(),
            ["3320", "3328"][rng.below(2) as usize],
            "MD1",
            EventType::DoseTaken,
            None,
        ));
    }
    // Shuffled, so late events (before already kept month ends) keep coming.
    for i in (1..events.len()).rev() {
        events.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let writer = {
        let store = s.store.clone();
        let events = events.clone();
        tokio::spawn(async move {
            for chunk in events.chunks(25) {
                store
                    .write_batch(chunk, &[], Utc::now())
                    .await
                    .expect("write");
                tokio::task::yield_now().await;
            }
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let store = s.store.clone();
            let (instants, periods) = (instants.clone(), periods.clone());
            tokio::spawn(async move {
                for _ in 0..12 {
                    store
                        .month_end_breakdown(&instants)
                        .await
                        .expect("breakdown");
                    store.dose_counts(&periods).await.expect("doses");
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    writer.await.expect("writer");
    for r in readers {
        r.await.expect("reader");
    }
    let live = s
        .store
        .device_counts(&instants, &RollupFilter::default())
        .await
        .expect("counts");
    for pass in ["first", "kept"] {
        let mut sums = vec![[0u64; 6]; instants.len()];
        for row in s
            .store
            .month_end_breakdown(&instants)
            .await
            .expect("breakdown")
        {
            sums[row.idx][row.kind.index()] += row.devices;
        }
        assert_eq!(sums, live, "{pass}");
        let doses: u64 = s
            .store
            .dose_counts(&periods)
            .await
            .expect("doses")
            .iter()
            .map(|(_, _, taken, _)| taken)
            .sum();
        assert_eq!(doses, 200, "{pass}");
    }
}

async fn alarms_merge_in_any_order_and_doses_count_per_month(s: TestStore) {
    let alarm = |id: &str, ts: &str, t: EventType| {
        let mut e = event("hepro", id, ts, "3328", "SA1", t, None);
        e.alarm = Some(vft_domain::AlarmRef::parse("A-1").expect("alarm"));
        e.cause = (t == EventType::Alarm).then_some(vft_domain::Cause::Fall);
        e.outcome = (t == EventType::AlarmClosed).then_some(vft_domain::Outcome::HelpDispatched);
        e
    };
    let events = [
        install(
            "i",
            "2025-01-01T10:00:00+01:00",
            "3328",
            "SA1",
            TechnologyKind::SafetyAlarm,
        ),
        alarm("a4", "2025-01-31T23:59:30+01:00", EventType::Alarm),
        alarm("a5", "2025-01-31T23:59:31+01:00", EventType::AlarmReceived),
        alarm(
            "a6",
            "2025-02-01T00:00:40+01:00",
            EventType::AlarmAcknowledged,
        ),
        alarm("a7", "2025-02-01T00:10:00+01:00", EventType::AlarmClosed),
        event(
            "hepro",
            "d1",
            "2025-01-05T08:00:00+01:00",
            "3328",
            "MD",
            EventType::DoseTaken,
            None,
        ),
        event(
            "hepro",
            "d2",
            "2025-01-06T08:00:00+01:00",
            "3328",
            "MD",
            EventType::DoseMissed,
            None,
        ),
        event(
            "hepro",
            "d3",
            "2025-02-01T00:30:00+01:00",
            "3320",
            "MD2",
            EventType::DoseTaken,
            None,
        ),
    ];
    // Response-centre events arrive backwards, one batch each.
    for e in events.iter().rev() {
        s.store
            .write_batch(std::slice::from_ref(e), &[], Utc::now())
            .await
            .expect("write");
    }
    let jan = YearMonth::new(2025, 1).expect("month");
    let records = s
        .store
        .alarm_records(jan.start(), jan.end_exclusive())
        .await
        .expect("alarms");
    assert_eq!(
        records.len(),
        1,
        "one alarm, in January where it was triggered"
    );
    let a = &records[0];
    assert_eq!(
        a.kind,
        Some(TechnologyKind::SafetyAlarm),
        "kind from the device"
    );
    assert_eq!(a.response_ms(), Some(70_000));
    assert_eq!(
        (a.cause, a.outcome),
        (
            Some(vft_domain::Cause::Fall),
            Some(vft_domain::Outcome::HelpDispatched)
        )
    );
    let feb = jan.next();
    assert!(
        s.store
            .alarm_records(feb.start(), feb.end_exclusive())
            .await
            .expect("alarms")
            .is_empty()
    );
    let doses = s
        .store
        .dose_counts(&[
            (jan.start(), jan.end_exclusive()),
            (feb.start(), feb.end_exclusive()),
        ])
        .await
        .expect("doses");
    let as_text: Vec<(usize, String, u64, u64)> = doses
        .into_iter()
        .map(|(i, m, t, x)| (i, m.to_string(), t, x))
        .collect();
    assert_eq!(
        as_text,
        [(0, "3328".to_string(), 1, 1), (1, "3320".to_string(), 1, 0)]
    );
}

async fn published_months_keep_their_figures(s: TestStore) {
    s.store
        .write_batch(
            &[install(
                "a",
                "2025-03-03T10:00:00+01:00",
                "3328",
                "D1",
                TechnologyKind::Tracking,
            )],
            &[],
            Utc::now(),
        )
        .await
        .expect("write");
    let march = YearMonth::new(2025, 3).expect("month");
    let rows = s
        .store
        .month_end_breakdown(&[march.end_exclusive()])
        .await
        .expect("breakdown");
    assert!(
        s.store
            .publish_month(
                march,
                &rows,
                Some("coordinator"),
                utc("2025-04-02T08:00:00Z")
            )
            .await
            .expect("publish")
    );
    // The time of publication is the caller's, not the store's clock.
    let published = s.store.published_months(&[march]).await.expect("published");
    assert_eq!(published[0].published_at, utc("2025-04-02T08:00:00Z"));
    assert!(
        !s.store
            .publish_month(march, &[], None, utc("2025-04-03T08:00:00Z"))
            .await
            .expect("publish again"),
        "publishing twice keeps the first"
    );
    // A late event changes the live figure, not the published one.
    s.store
        .write_batch(
            &[install(
                "b",
                "2025-03-04T10:00:00+01:00",
                "3328",
                "D2",
                TechnologyKind::Tracking,
            )],
            &[],
            Utc::now(),
        )
        .await
        .expect("write");
    let published = s
        .store
        .published_months(&[march, march.next()])
        .await
        .expect("published");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].month, march);
    assert_eq!(published[0].published_by.as_deref(), Some("coordinator"));
    assert_eq!(published[0].rows.iter().map(|r| r.devices).sum::<u64>(), 1);
    let live = s
        .store
        .month_end_breakdown(&[march.end_exclusive()])
        .await
        .expect("breakdown");
    assert_eq!(live.iter().map(|r| r.devices).sum::<u64>(), 2);
}

fn listing(device: &str, in_service: bool) -> vft_domain::reconcile::Listing {
    vft_domain::reconcile::Listing {
        vendor: VendorId::parse("hepro").expect("vendor"),
        device: DeviceId::parse(device).expect("device"),
        kind: Some(TechnologyKind::SafetyAlarm),
        municipality: Some(MunicipalityCode::parse("3328").expect("code")),
        recipient: Some(vft_domain::RecipientRef::parse("r1").expect("recipient")),
        in_service,
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("ts")
        .with_timezone(&Utc)
}

async fn inventory_imports_are_dated_snapshots_kept_once(s: TestStore) {
    let hepro = VendorId::parse("hepro").expect("vendor");
    let atea = VendorId::parse("atea").expect("vendor");
    let march = utc("2025-02-28T23:00:00Z");
    let april = utc("2025-03-31T22:00:00Z");
    let first = s
        .store
        .import_inventory(
            &hepro,
            march,
            utc("2025-03-02T09:00:00Z"),
            "aa",
            &[listing("H1", true), listing("H2", false)],
            &[
                row_error(4, Some("Installert"), "bad date"),
                row_error(2, None, "too few columns"),
                row_error(9, Some("Produkt"), "unknown product"),
            ],
        )
        .await
        .expect("import");
    assert!(first.new);
    // The same file again (even with another date) changes nothing.
    let again = s
        .store
        .import_inventory(
            &hepro,
            april,
            utc("2025-04-02T09:00:00Z"),
            "aa",
            &[listing("H9", true)],
            &[row_error(1, None, "again")],
        )
        .await
        .expect("import");
    assert_eq!((again.import_id, again.new), (first.import_id, false));
    // Another vendor may have a file with the same hash.
    assert!(
        s.store
            .import_inventory(&atea, march, utc("2025-03-02T10:00:00Z"), "aa", &[], &[])
            .await
            .expect("import")
            .new
    );
    let second = s
        .store
        .import_inventory(
            &hepro,
            april,
            utc("2025-04-02T10:00:00Z"),
            "bb",
            &[listing("H3", true)],
            &[row_error(7, None, "newest")],
        )
        .await
        .expect("import");
    assert!(second.new);

    let history = s.store.imports(Some(&hepro)).await.expect("imports");
    let summary: Vec<(i64, u64, u64, &str)> = history
        .iter()
        .map(|i| (i.id, i.rows, i.errors, i.file_sha256.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (first.import_id, 2, 3, "aa"),
            (second.import_id, 1, 1, "bb")
        ]
    );
    assert_eq!(history[0].as_of, march);
    // When it was imported is the caller's time, as given, not the store's clock.
    assert_eq!(
        (history[0].imported_at, history[1].imported_at),
        (utc("2025-03-02T09:00:00Z"), utc("2025-04-02T10:00:00Z"))
    );
    assert_eq!(s.store.imports(None).await.expect("imports").len(), 3);

    let devices = |l: Vec<vft_domain::reconcile::Listing>| {
        l.into_iter()
            .map(|l| format!("{}:{}", l.device, l.in_service))
            .collect::<Vec<_>>()
    };
    let at = |t: DateTime<Utc>| {
        let store = s.store.clone();
        let hepro = hepro.clone();
        async move { devices(store.listing_at(&hepro, t).await.expect("listing")) }
    };
    assert!(at(march - Duration::microseconds(1)).await.is_empty());
    assert_eq!(at(march).await, ["H1:true", "H2:false"]);
    assert_eq!(
        at(april - Duration::seconds(1)).await,
        ["H1:true", "H2:false"]
    );
    assert_eq!(at(april).await, ["H3:true"]);
    let one = s.store.listing_at(&hepro, march).await.expect("listing");
    assert_eq!(one[0], listing("H1", true));

    // Unreadable rows: newest import first, by line within an import; a repeated file adds none.
    let errors: Vec<(i64, u64, Option<String>, String)> = s
        .store
        .import_errors(10)
        .await
        .expect("import errors")
        .into_iter()
        .map(|e| (e.import_id, e.line, e.column, e.why))
        .collect();
    let e = |id: i64, line: u64, col: Option<&str>, why: &str| {
        (id, line, col.map(str::to_owned), why.to_owned())
    };
    assert_eq!(
        errors,
        [
            e(second.import_id, 7, None, "newest"),
            e(first.import_id, 2, None, "too few columns"),
            e(first.import_id, 4, Some("Installert"), "bad date"),
            e(first.import_id, 9, Some("Produkt"), "unknown product"),
        ]
    );
    assert_eq!(
        s.store.import_errors(2).await.expect("import errors").len(),
        2
    );
}

fn row_error(line: u64, column: Option<&str>, why: &str) -> vft_domain::import::RowError {
    vft_domain::import::RowError {
        line,
        column: column.map(str::to_owned),
        why: why.to_owned(),
    }
}

/// Only the first errors of a huge broken export are kept; the count stays whole.
async fn import_errors_are_capped_per_import(s: TestStore) {
    let hepro = VendorId::parse("hepro").expect("vendor");
    let many: Vec<_> = (1..=(vft_store::MAX_KEPT_IMPORT_ERRORS as u64 + 50))
        .map(|line| row_error(line, None, "bad"))
        .collect();
    s.store
        .import_inventory(
            &hepro,
            utc("2025-03-31T22:00:00Z"),
            utc("2025-04-01T07:00:00Z"),
            "cc",
            &[],
            &many,
        )
        .await
        .expect("import");
    let history = s.store.imports(None).await.expect("imports");
    assert_eq!(history[0].errors, many.len() as u64);
    let kept = s.store.import_errors(5000).await.expect("import errors");
    assert_eq!(kept.len(), vft_store::MAX_KEPT_IMPORT_ERRORS);
    assert_eq!(
        kept.last().map(|e| e.line),
        Some(vft_store::MAX_KEPT_IMPORT_ERRORS as u64)
    );
}

/// A session lives until it expires, belongs to a person, and ends when deleted, when the
/// account is disabled, or when its password or role changes.
async fn sessions_expire_and_end(s: TestStore) {
    let aal = vft_domain::MunicipalityCode::parse("3328").expect("code");
    let now = Utc::now();
    let user = s
        .store
        .create_user(
            &vft_store::NewUser {
                username: "kari@aal.kommune.no".into(),
                display_name: Some("Kari".into()),
                role: Role::municipality_user([aal.clone()]).expect("role"),
                password_hash: Some("$argon2id$x".into()),
            },
            now,
        )
        .await
        .expect("user");
    let expires = now + Duration::hours(8);
    s.store
        .create_session("open", user.id, "password", now, expires)
        .await
        .expect("session");
    s.store
        .create_session("old", user.id, "password", now, now - Duration::seconds(1))
        .await
        .expect("session");
    let (found, until) = s
        .store
        .find_session("open", now)
        .await
        .expect("find")
        .expect("an open session");
    assert_eq!(found.role, Role::municipality_user([aal]).expect("role"));
    assert_eq!(found.username, "kari@aal.kommune.no");
    assert_eq!(until.timestamp_micros(), expires.timestamp_micros());
    let gone = |r: Option<_>| r.is_none();
    assert!(
        gone(s.store.find_session("open", expires).await.expect("find")),
        "expired at its end"
    );
    assert!(gone(s.store.find_session("old", now).await.expect("find")));
    assert!(gone(s.store.find_session("nope", now).await.expect("find")));
    // A session for a user that does not exist cannot be opened.
    assert!(
        s.store
            .create_session("orphan", user.id + 1000, "password", now, expires)
            .await
            .is_err()
    );
    s.store.delete_session("open").await.expect("delete");
    assert!(gone(s.store.find_session("open", now).await.expect("find")));

    // Disabling ends sessions; so do a new password and a new role.
    let enable = vft_store::UserChange {
        disabled: Some(false),
        ..Default::default()
    };
    for change in [
        vft_store::UserChange {
            disabled: Some(true),
            ..Default::default()
        },
        vft_store::UserChange {
            password_hash: Some(Some("$argon2id$y".into())),
            ..Default::default()
        },
        vft_store::UserChange {
            role: Some(Role::Auditor),
            ..Default::default()
        },
    ] {
        s.store
            .update_user("kari@aal.kommune.no", &enable, now)
            .await
            .expect("enable");
        s.store
            .create_session("s", user.id, "password", now, expires)
            .await
            .expect("session");
        assert!(!gone(s.store.find_session("s", now).await.expect("find")));
        s.store
            .update_user("kari@aal.kommune.no", &change, now)
            .await
            .expect("update")
            .expect("the user");
        assert!(
            gone(s.store.find_session("s", now).await.expect("find")),
            "{change:?} ends sessions"
        );
    }
    assert_eq!(
        s.store
            .update_user("nobody", &enable, now)
            .await
            .expect("update"),
        None
    );
}

/// Usernames are unique, wrong passwords lock at the limit, success clears the count, and an
/// OpenID identity belongs to one account.
async fn accounts_lock_after_wrong_passwords(s: TestStore) {
    let now = Utc::now();
    let new = vft_store::NewUser {
        username: "ola".into(),
        display_name: None,
        role: Role::Coordinator,
        password_hash: Some("h".into()),
    };
    let ola = s.store.create_user(&new, now).await.expect("create");
    assert!(matches!(
        s.store.create_user(&new, now).await,
        Err(vft_store::StoreError::Conflict(_))
    ));
    let until = now + Duration::minutes(15);
    for expected in 1..=4 {
        assert_eq!(
            s.store
                .sign_in_failed(ola.id, 5, until)
                .await
                .expect("fail"),
            expected
        );
        let u = s.store.find_user("ola").await.expect("find").expect("ola");
        assert_eq!(u.locked_until, None, "not locked after {expected}");
    }
    assert_eq!(
        s.store
            .sign_in_failed(ola.id, 5, until)
            .await
            .expect("fail"),
        5
    );
    let u = s.store.find_user("ola").await.expect("find").expect("ola");
    assert_eq!(
        u.locked_until.map(|t| t.timestamp_micros()),
        Some(until.timestamp_micros())
    );
    s.store.sign_in_succeeded(ola.id, now).await.expect("ok");
    let u = s.store.find_user("ola").await.expect("find").expect("ola");
    assert_eq!((u.failed_sign_ins, u.locked_until), (0, None));
    assert_eq!(
        u.last_sign_in_at.map(|t| t.timestamp_micros()),
        Some(now.timestamp_micros())
    );

    s.store
        .bind_oidc(ola.id, "https://idp", "sub-1")
        .await
        .expect("bind");
    let bound = s
        .store
        .find_user_by_oidc("https://idp", "sub-1")
        .await
        .expect("find");
    assert_eq!(bound.map(|u| u.id), Some(ola.id));
    let kari = s
        .store
        .create_user(
            &vft_store::NewUser {
                username: "kari".into(),
                ..new.clone()
            },
            now,
        )
        .await
        .expect("kari");
    assert!(
        matches!(
            s.store.bind_oidc(kari.id, "https://idp", "sub-1").await,
            Err(vft_store::StoreError::Conflict(_))
        ),
        "one identity, one account"
    );
    assert_eq!(s.store.list_users().await.expect("list").len(), 2);
}

fn audit_entry(i: usize) -> vft_domain::audit::AuditEntry {
    vft_domain::audit::AuditEntry {
        at_micros: 1_750_000_000_000_000 + i as i64 * 1_000_000,
        actor: format!("user:u{}", i % 3),
        role: "coordinator".into(),
        action: vft_domain::audit::AuditAction::Read,
        route: "GET /api/v1/devices/{vendor}/{device}".into(),
        municipality: i.is_multiple_of(2).then(|| "3328".to_owned()),
        subjects: vec![
            "vendor=hepro".to_owned(),
            format!("device=D{i}"),
            "recipient=r\nx".to_owned(),
        ],
        client: "127.0.0.1".into(),
        status: 200,
    }
}

/// Runs one statement on the store's database, past the store (as an intruder would).
async fn execute_raw(url: &str, sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await?;
        sqlx::query(sql).execute(&mut c).await?;
    } else {
        let mut c = sqlx::PgConnection::connect(url).await?;
        sqlx::query(sql).execute(&mut c).await?;
    }
    Ok(())
}

/// The audit chain appends in order from concurrent writers, reads back exactly, verifies,
/// refuses edits, and keeps verifying after retention.
async fn the_audit_chain_holds(s: TestStore) {
    use vft_domain::audit::{ChainVerifier, GENESIS};
    // The oldest twenty first (retention below removes at least them), then four writers at
    // once, whose records' times interleave.
    let early: Vec<_> = (0..20)
        .map(|i| vft_domain::audit::AuditEntry {
            at_micros: 1_700_000_000_000_000 + i,
            ..audit_entry(i as usize)
        })
        .collect();
    s.store.append_audit(&early).await.expect("append");
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = s.store.clone();
            tokio::spawn(async move {
                for b in 0..5 {
                    let batch: Vec<_> = (0..7).map(|i| audit_entry(w * 100 + b * 10 + i)).collect();
                    store.append_audit(&batch).await.expect("append");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    let head = s.store.audit_head().await.expect("head");
    assert_eq!(
        (head.seq, head.anchor_seq, head.anchor_hash.as_str()),
        (160, 0, GENESIS)
    );
    let chain = s.store.audit_chain(0, 1000).await.expect("chain");
    assert_eq!(chain.len(), 160);
    let mut v = ChainVerifier::new(0, GENESIS);
    for r in &chain {
        v.check(r).expect("intact");
    }
    assert_eq!(v.head(), (160, head.hash.as_str()));
    assert_eq!(
        chain[0].entry,
        chain[0].entry.normalized(),
        "stored as normalized"
    );

    let q = vft_store::AuditQuery {
        actor: Some("user:u1".into()),
        limit: 1000,
        ..Default::default()
    };
    let u1 = s.store.audit_records(&q).await.expect("records");
    assert!(!u1.is_empty() && u1.iter().all(|r| r.entry.actor == "user:u1"));
    assert!(u1.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    let page = s
        .store
        .audit_records(&vft_store::AuditQuery {
            before_seq: Some(11),
            limit: 5,
            ..Default::default()
        })
        .await
        .expect("page");
    assert_eq!(
        page.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![10, 9, 8, 7, 6]
    );

    // Records cannot be changed or removed through the database's front door.
    let update = execute_raw(
        &s.url,
        "UPDATE audit_log SET actor = 'user:x' WHERE seq = 3",
    )
    .await;
    assert!(update.is_err(), "the audit log refuses updates");
    let delete = execute_raw(&s.url, "DELETE FROM audit_log WHERE seq = 3").await;
    assert!(delete.is_err(), "the audit log refuses deletes");

    // Retention: the oldest records go (times interleave across the writers, so the cut is
    // the median time: some records are before it, some after); the chain verifies from the
    // anchor.
    let mut times: Vec<i64> = chain.iter().map(|r| r.entry.at_micros).collect();
    times.sort_unstable();
    let cutoff = DateTime::from_timestamp_micros(times[70]).expect("time");
    let purged = s.store.purge_audit(cutoff).await.expect("purge");
    let head = s.store.audit_head().await.expect("head");
    assert_eq!(purged as i64, head.anchor_seq);
    assert!(
        (20..160).contains(&purged),
        "{purged}: the old prefix goes, newer records stay"
    );
    let first_new = chain
        .iter()
        .find(|r| r.entry.at_micros >= times[70])
        .expect("a newer record");
    assert_eq!(
        head.anchor_seq,
        first_new.seq - 1,
        "the whole prefix older than the cut goes"
    );
    let rest = s
        .store
        .audit_chain(head.anchor_seq, 1000)
        .await
        .expect("chain");
    let mut v = ChainVerifier::new(head.anchor_seq, &head.anchor_hash);
    for r in &rest {
        v.check(r).expect("intact after retention");
    }
    assert_eq!(v.head(), (head.seq, head.hash.as_str()));
}

async fn reconciliation_inputs_from_events(s: TestStore) {
    let mut a = install(
        "i1",
        "2025-01-10T10:00:00+01:00",
        "3324",
        "H1",
        TechnologyKind::SafetyAlarm,
    );
    a.recipient = Some(vft_domain::RecipientRef::parse("r1").expect("recipient"));
    let mut moved = install(
        "i2",
        "2025-06-01T10:00:00+02:00",
        "3328",
        "H1",
        TechnologyKind::SafetyAlarm,
    );
    moved.recipient = a.recipient.clone();
    let events = vec![
        a,
        event(
            "hepro",
            "d1",
            "2025-05-01T10:00:00+02:00",
            "3324",
            "H1",
            EventType::Decommissioned,
            None,
        ),
        moved,
        event(
            "atea",
            "i3",
            "2025-07-01T10:00:00+02:00",
            "3328",
            "A1",
            EventType::Installed,
            Some(TechnologyKind::Tracking),
        ),
        status(
            "h1",
            "2025-12-20T10:00:00+01:00",
            "H1",
            EventType::Heartbeat,
            None,
        ),
        status(
            "h2",
            "2025-12-30T10:00:00+01:00",
            "H1",
            EventType::Heartbeat,
            None,
        ),
        // After `at`: says nothing about the window.
        status(
            "h3",
            "2026-01-05T10:00:00+01:00",
            "H2",
            EventType::Heartbeat,
            None,
        ),
        event(
            "atea",
            "b1",
            "2025-12-28T10:00:00+01:00",
            "3328",
            "A1",
            EventType::BatteryLow,
            None,
        ),
    ];
    s.store
        .write_batch(&events, &[], Utc::now())
        .await
        .expect("write");
    let hepro = VendorId::parse("hepro").expect("vendor");

    let ever = s
        .store
        .ever_in_service(&hepro, utc("2026-01-01T00:00:00Z"))
        .await
        .expect("ever");
    let seen: Vec<String> = ever
        .iter()
        .map(|d| format!("{} {}", d.device, d.municipality))
        .collect();
    assert_eq!(seen, ["H1 3324", "H1 3328"]);
    assert_eq!(ever[0].recipient.as_ref().map(|r| r.as_str()), Some("r1"));
    assert_eq!(
        s.store
            .ever_in_service(&hepro, utc("2025-06-01T08:00:00Z"))
            .await
            .expect("ever")
            .len(),
        1,
        "an install at `before` is not before it"
    );

    let at = utc("2025-12-31T22:59:59Z");
    let reporting = |since: DateTime<Utc>| {
        let store = s.store.clone();
        async move {
            store
                .reporting_at(at, since)
                .await
                .expect("reporting")
                .into_iter()
                .map(|r| {
                    format!(
                        "{}/{} {}",
                        r.vendor,
                        r.device,
                        r.last_contact.expect("contact").to_rfc3339()
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        reporting(at - Duration::days(7)).await,
        [
            "atea/A1 2025-12-28T09:00:00+00:00",
            "hepro/H1 2025-12-30T09:00:00+00:00"
        ]
    );
    assert_eq!(
        reporting(utc("2025-12-29T00:00:00Z")).await,
        ["hepro/H1 2025-12-30T09:00:00+00:00"]
    );

    // Raw heartbeats purged by retention: device state still knows the latest contact.
    s.store
        .purge_events(
            &[EventType::Heartbeat, EventType::BatteryLow],
            utc("2026-02-01T00:00:00Z"),
        )
        .await
        .expect("purge");
    assert_eq!(
        reporting(at - Duration::days(7)).await,
        [
            "atea/A1 2025-12-28T09:00:00+00:00",
            "hepro/H1 2025-12-30T09:00:00+00:00"
        ]
    );
}

/// A decommissioning's reason is stored, read back with the device's history, part of what
/// makes a repeated id a conflict, and given for the latest lifecycle event before an instant.
async fn decommission_reasons_are_kept_and_read_back(s: TestStore) {
    use vft_domain::DecommissionReason::*;
    let gone = |id: &str, ts: &str, device: &str, reason| Event {
        reason,
        ..event(
            "hepro",
            id,
            ts,
            "3328",
            device,
            EventType::Decommissioned,
            None,
        )
    };
    let kind = TechnologyKind::SafetyAlarm;
    let events = vec![
        install("r1", "2025-01-10T10:00:00+01:00", "3328", "A", kind),
        install("r2", "2025-01-10T10:00:00+01:00", "3328", "B", kind),
        install("r3", "2025-01-10T10:00:00+01:00", "3328", "C", kind),
        install("r4", "2025-01-10T10:00:00+01:00", "3328", "D", kind),
        gone("r5", "2025-03-05T10:00:00+01:00", "A", Some(Deceased)),
        gone("r6", "2025-03-06T10:00:00+01:00", "B", None),
        // C leaves, then comes back: its latest lifecycle event is an install.
        gone("r7", "2025-03-07T10:00:00+01:00", "C", Some(Broken)),
        install("r8", "2025-03-20T10:00:00+01:00", "3328", "C", kind),
        // D leaves twice (a late second report): the latest one's reason counts.
        gone("r9", "2025-03-08T10:00:00+01:00", "D", Some(Returned)),
        gone(
            "r10",
            "2025-03-09T10:00:00+01:00",
            "D",
            Some(MovedToInstitution),
        ),
        // F leaves twice at one instant: the later event id in byte order ("a…" after "Z…",
        // which a locale's collation would put first) is the latest.
        install("r11", "2025-01-10T10:00:00+01:00", "3328", "F", kind),
        gone("af", "2025-03-10T10:00:00+01:00", "F", Some(Broken)),
        gone("Zf", "2025-03-10T10:00:00+01:00", "F", Some(Deceased)),
        // G is installed and decommissioned at one instant: the decommissioning is later.
        install("r12", "2025-01-10T10:00:00+01:00", "3328", "G", kind),
        gone("r13", "2025-03-11T10:00:00+01:00", "G", Some(Returned)),
        install("r14", "2025-03-11T10:00:00+01:00", "3328", "G", kind),
        // H leaves exactly at the end of March: not before it.
        install("r15", "2025-01-10T10:00:00+01:00", "3328", "H", kind),
        gone("r16", "2025-04-01T00:00:00+02:00", "H", Some(Deceased)),
    ];
    s.store
        .write_batch(&events, &[], Utc::now())
        .await
        .expect("write");
    let key = |d: &str| {
        (
            VendorId::parse("hepro").expect("vendor"),
            DeviceId::parse(d).expect("device"),
        )
    };
    let keys: Vec<_> = ["A", "B", "C", "D", "E", "F", "G", "H"]
        .into_iter()
        .map(key)
        .collect();
    let end_of_march = DateTime::parse_from_rfc3339("2025-04-01T00:00:00+02:00")
        .expect("ts")
        .with_timezone(&Utc);
    let reasons = s
        .store
        .decommission_reasons(&keys, end_of_march)
        .await
        .expect("reasons");
    assert_eq!(reasons.get(&key("A")), Some(&Some(Deceased)));
    assert_eq!(reasons.get(&key("B")), Some(&None), "left without a reason");
    assert_eq!(reasons.get(&key("C")), None, "back in service");
    assert_eq!(reasons.get(&key("D")), Some(&Some(MovedToInstitution)));
    assert_eq!(reasons.get(&key("E")), None, "unknown device");
    assert_eq!(reasons.get(&key("F")), Some(&Some(Broken)), "byte order");
    assert_eq!(reasons.get(&key("G")), Some(&Some(Returned)), "rank order");
    assert_eq!(reasons.get(&key("H")), None, "strictly before");
    let mid_march = DateTime::parse_from_rfc3339("2025-03-08T12:00:00+01:00")
        .expect("ts")
        .with_timezone(&Utc);
    let then = s
        .store
        .decommission_reasons(&keys, mid_march)
        .await
        .expect("reasons");
    assert_eq!(then.get(&key("C")), Some(&Some(Broken)), "as it stood then");
    assert_eq!(then.get(&key("D")), Some(&Some(Returned)));

    let history = s
        .store
        .device_events(
            &VendorId::parse("hepro").expect("vendor"),
            &[DeviceId::parse("A").expect("device")],
            None,
            10,
        )
        .await
        .expect("history");
    assert_eq!(history.last().and_then(|e| e.reason), Some(Deceased));

    // The same id with another reason is a conflict; with the same, a duplicate.
    let again = s
        .store
        .write_batch(
            &[
                gone("r5", "2025-03-05T10:00:00+01:00", "A", Some(Lost)),
                gone("r6", "2025-03-06T10:00:00+01:00", "B", None),
            ],
            &[],
            Utc::now(),
        )
        .await
        .expect("write");
    assert_eq!(again.events_inserted, 0);
    assert_eq!(again.conflicting, vec![0]);
}

/// Reconciling a past date reads the kept contact history, so purging the raw heartbeats (all
/// of them, here) changes no answer; before the history existed, every unit still reporting
/// today became "silent" for any past date once its heartbeats were purged.
async fn contact_history_survives_retention(s: TestStore) {
    let kind = TechnologyKind::SafetyAlarm;
    let mut events = vec![
        install("i1", "2025-09-01T10:00:00+02:00", "3328", "ALWAYS", kind),
        install("i2", "2025-09-01T10:00:00+02:00", "3328", "QUIET", kind),
        install("i3", "2025-09-01T10:00:00+02:00", "3328", "LATE", kind),
    ];
    // ALWAYS reports every other day until today; QUIET stops on 20 October; LATE is heard
    // from once, at 00:30 on 1 December in Oslo (still 30 November in UTC).
    let mut day = utc("2025-09-02T08:00:00Z");
    let mut n = 0;
    while day < Utc::now() {
        n += 1;
        events.push(status(
            &format!("a{n}"),
            &day.to_rfc3339(),
            "ALWAYS",
            EventType::Heartbeat,
            None,
        ));
        if day < utc("2025-10-20T12:00:00Z") {
            events.push(status(
                &format!("q{n}"),
                &day.to_rfc3339(),
                "QUIET",
                EventType::Heartbeat,
                None,
            ));
        }
        day += Duration::days(2);
    }
    events.push(status(
        "l1",
        "2025-11-30T23:30:00Z",
        "LATE",
        EventType::Fault,
        None,
    ));
    for chunk in events.chunks(37) {
        s.store
            .write_batch(chunk, &[], Utc::now())
            .await
            .expect("write");
    }
    let end_of = |date: &str| {
        vft_domain::month::oslo_end_of_day(date.parse().expect("date")).expect("end of day")
    };
    let dates = [
        "2025-10-10",
        "2025-10-31",
        "2025-11-30",
        "2025-12-01",
        "2025-12-15",
        "2026-01-31",
    ];
    let answers = |store: std::sync::Arc<dyn vft_store::Store>| async move {
        let mut all = Vec::new();
        for date in dates {
            let at = end_of(date);
            let mut seen: Vec<String> = store
                .reporting_at(at, at - Duration::days(7))
                .await
                .expect("reporting")
                .into_iter()
                .map(|r| {
                    format!(
                        "{date} {} {:?}",
                        r.device,
                        r.last_contact.map(|t| t.to_rfc3339())
                    )
                })
                .collect();
            all.append(&mut seen);
        }
        all
    };
    let before = answers(s.store.clone()).await;
    let who = |date: &str| -> Vec<&str> {
        before
            .iter()
            .filter(|l| l.starts_with(date))
            .map(|l| l.split(' ').nth(1).expect("device"))
            .collect()
    };
    assert_eq!(who("2025-10-10"), ["ALWAYS", "QUIET"]);
    assert_eq!(who("2025-10-31"), ["ALWAYS"]);
    assert_eq!(
        who("2025-11-30"),
        ["ALWAYS"],
        "LATE's contact is on 1 December in Oslo"
    );
    assert_eq!(who("2025-12-01"), ["ALWAYS", "LATE"]);
    assert_eq!(who("2026-01-31"), ["ALWAYS"]);
    let purged = s
        .store
        .purge_events(
            &[
                EventType::Heartbeat,
                EventType::BatteryLow,
                EventType::Fault,
            ],
            Utc::now() + Duration::days(1),
        )
        .await
        .expect("purge");
    assert_eq!(purged, events.len() as u64 - 3);
    assert_eq!(
        answers(s.store.clone()).await,
        before,
        "retention changed a past date's answer"
    );
    // A rebuild merges what the events still show: the purged days stay.
    s.store
        .rebuild_contact_history(false, &|_, _| {})
        .await
        .expect("rebuild");
    assert_eq!(
        answers(s.store.clone()).await,
        before,
        "a rebuild lost history retention purged"
    );
}

/// The contact history kept by ingest equals the one a rebuild computes from the stored events,
/// and both equal the domain's fold, whatever the arrival order, batching, repeats and
/// conflicting repeats (an id sent again with another time keeps its first arrival).
async fn contact_history_rebuilt_equals_incremental_in_any_arrival_order(s: TestStore) {
    let types = [
        EventType::Heartbeat,
        EventType::Fault,
        EventType::BatteryLow,
        EventType::Installed,
        EventType::Decommissioned,
    ];
    let mut kept: Vec<Event> = Vec::new();
    for seed in 1..=6u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        // Around month ends in Oslo, both sides of midnight, winter and summer time.
        let base = [
            utc("2025-01-31T20:00:00Z"),
            utc("2025-03-31T20:00:00Z"),
            utc("2025-10-31T20:00:00Z"),
        ];
        let events: Vec<Event> = (0..60)
            .map(|i| {
                let t = base[rng.below(3) as usize] + Duration::minutes(rng.below(8 * 60) as i64);
                let ty = types[rng.below(types.len() as u64) as usize];
                event(
                    "hepro",
                    &format!("s{seed}e{i}"),
                    &t.to_rfc3339(),
                    "3328",
                    &format!("S{seed}D{}", rng.below(4)),
                    ty,
                    (ty == EventType::Installed).then_some(TechnologyKind::SafetyAlarm),
                )
            })
            .collect();
        // A conflicting repeat after its first arrival: another day, same id.
        let mut conflicting = events[0].clone();
        conflicting.ts += Duration::days(3);
        write_in_any_order(&s, &mut rng, &events, 10, Some(conflicting), 12).await;
        kept.extend(events);
    }
    let expected: Vec<vft_store::ContactRow> = {
        let mut rows: Vec<_> = vft_domain::contact::fold(&kept)
            .into_iter()
            .map(|c| vft_store::ContactRow {
                month: vft_domain::contact::month_key(c.month),
                vendor: c.vendor.to_string(),
                device: c.device.to_string(),
                days: i64::from(c.days),
                last_ts: c.last.timestamp_micros(),
            })
            .collect();
        rows.sort();
        rows
    };
    assert!(
        expected.len() > 20,
        "too few device months to mean much: {}",
        expected.len()
    );
    let incremental = s.store.contact_history().await.expect("history");
    assert_eq!(
        incremental, expected,
        "ingest's history differs from the domain's fold"
    );
    let months = std::sync::Mutex::new(Vec::new());
    let outcome = s
        .store
        .rebuild_contact_history(true, &|done, total| {
            months.lock().expect("lock").push((done, total))
        })
        .await
        .expect("rebuild");
    assert_eq!(
        s.store.contact_history().await.expect("history"),
        incremental,
        "rebuilt ≠ incremental"
    );
    assert_eq!(outcome.contact_months, expected.len() as u64);
    let months = months.into_inner().expect("lock");
    assert_eq!(
        months.last().map(|(d, t)| d == t),
        Some(true),
        "progress ends at its total: {months:?}"
    );
    s.store
        .rebuild_contact_history(false, &|_, _| {})
        .await
        .expect("merge rebuild");
    assert_eq!(
        s.store.contact_history().await.expect("history"),
        incremental
    );
}

/// The service state ingest keeps answers the month-end breakdown (devices and distinct
/// recipients per municipality, vendor and kind) exactly as the in-service rule does, at month
/// ends and at instants inside months, whatever the arrival order and batching (with repeats),
/// and a rebuild from the events gives the same answers.
async fn service_state_counts_devices_and_recipients_at_any_instant_in_any_order(s: TestStore) {
    let mut events = scenario(23, 300);
    let mut rng = Rng(77);
    for e in events
        .iter_mut()
        .filter(|e| e.event_type == EventType::Installed)
    {
        // Few recipients, shared by devices, vendors and municipalities; some installs have none.
        e.recipient = (rng.below(4) != 0).then(|| {
            vft_domain::RecipientRef::parse(&format!("r-{}", rng.below(6))).expect("recipient")
        });
    }
    write_in_any_order(&s, &mut rng, &events, 40, None, 25).await;
    // Expected, from the domain: each device's intervals from its lifecycle events.
    let mut by_device: std::collections::BTreeMap<
        (VendorId, DeviceId),
        Vec<vft_domain::interval::Step>,
    > = Default::default();
    for e in events
        .iter()
        .filter(|e| e.event_type.lifecycle_rank().is_some())
    {
        by_device
            .entry((e.vendor.clone(), e.device.clone()))
            .or_default()
            .push(vft_domain::interval::Step {
                ts: e.ts_utc(),
                installed: e.event_type == EventType::Installed,
                event_id: e.id.clone(),
                municipality: e.municipality.clone(),
                kind: e.kind,
                recipient: e.recipient.clone(),
                replaces: e.replaces.clone(),
            });
    }
    let intervals: Vec<vft_domain::interval::Interval> = by_device
        .iter()
        .flat_map(|((v, d), steps)| vft_domain::interval::intervals(v, d, steps))
        .collect();
    let mut instants = months_2025();
    for _ in 0..12 {
        instants
            .push(utc("2025-01-01T00:00:00Z") + Duration::minutes(rng.below(366 * 24 * 60) as i64));
    }
    // Early and late in each month (a cut is read from the nearer end of its month), and at
    // and just after lifecycle steps, where ties decide.
    for m in 1..=12 {
        let month = YearMonth::new(2025, m).expect("month");
        instants.push(month.start() + Duration::days(2) + Duration::minutes(rng.below(600) as i64));
        instants.push(
            month.end_exclusive() - Duration::days(2) - Duration::minutes(rng.below(600) as i64),
        );
    }
    for e in events
        .iter()
        .filter(|e| e.event_type.lifecycle_rank().is_some())
        .take(30)
    {
        instants.push(e.ts_utc());
        instants.push(e.ts_utc() + Duration::microseconds(1));
    }
    instants.push(Utc::now());
    let expected: Vec<String> = {
        let mut rows = Vec::new();
        for (idx, c) in instants.iter().enumerate() {
            let mut groups: std::collections::BTreeMap<
                (String, String, String),
                (u64, std::collections::BTreeSet<String>),
            > = Default::default();
            for iv in intervals.iter().filter(|iv| iv.covers(*c)) {
                let slot = groups
                    .entry((
                        iv.municipality.to_string(),
                        iv.vendor.to_string(),
                        iv.kind.expect("kind").id().to_owned(),
                    ))
                    .or_default();
                slot.0 += 1;
                slot.1.extend(iv.recipient.as_ref().map(|r| r.to_string()));
            }
            rows.extend(
                groups
                    .into_iter()
                    .map(|((m, v, k), (d, r))| format!("{idx} {m} {v} {k} {d} {}", r.len())),
            );
        }
        rows.sort();
        rows
    };
    let answer = || async {
        let mut rows: Vec<String> = s
            .store
            .month_end_breakdown(&instants)
            .await
            .expect("breakdown")
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {} {} {}",
                    r.idx,
                    r.municipality,
                    r.vendor,
                    r.kind.id(),
                    r.devices,
                    r.recipients
                )
            })
            .collect();
        rows.sort();
        rows
    };
    assert!(
        expected.iter().any(|r| !r.ends_with(" 0")),
        "no recipients counted: a weak test"
    );
    assert_eq!(answer().await, expected, "incremental service state");
    let devices = s
        .store
        .rebuild_service_state(&|_, _| {})
        .await
        .expect("rebuild");
    assert_eq!(devices as usize, by_device.len());
    assert_eq!(answer().await, expected, "rebuilt service state");
}

/// Doses per Oslo month and municipality, counted by ingest: each dose once whatever the
/// arrival order, batching and repeats (a conflicting repeat of an id counts as its first
/// arrival), equal to counting the events, and equal again after a recount from the events.
/// A period that is not whole months is counted from the events.
async fn dose_months_count_each_dose_once_in_any_order(s: TestStore) {
    let mut rng = Rng(91);
    let base = utc("2025-03-31T20:00:00Z");
    let events: Vec<Event> = (0..200)
        .map(|i| {
            let t = base
                + Duration::minutes(rng.below(6 * 60) as i64)
                + Duration::days(30 * rng.below(3) as i64);
            event(
                "hepro",
                &format!("dose{i}"),
                &t.to_rfc3339(),
                ["3320", "3328"][rng.below(2) as usize],
                &format!("MS{}", rng.below(5)),
                if rng.below(3) == 0 {
                    EventType::DoseMissed
                } else {
                    EventType::DoseTaken
                },
                None,
            )
        })
        .collect();
    let mut conflicting = events[0].clone();
    conflicting.ts += Duration::days(40);
    conflicting.event_type = EventType::DoseMissed;
    write_in_any_order(&s, &mut rng, &events, 30, Some(conflicting), 20).await;
    let months: Vec<YearMonth> = (3..=7)
        .map(|m| YearMonth::new(2025, m).expect("month"))
        .collect();
    let mut periods: Vec<(DateTime<Utc>, DateTime<Utc>)> = months
        .iter()
        .map(|m| (m.start(), m.end_exclusive()))
        .collect();
    periods.push((months[0].start(), months[4].end_exclusive()));
    // Not whole months: from the events.
    periods.push((utc("2025-04-01T00:00:00Z"), utc("2025-04-15T12:00:00Z")));
    let expected: Vec<String> = {
        let mut rows = Vec::new();
        for (idx, (start, end)) in periods.iter().enumerate() {
            let mut per: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
            for e in events
                .iter()
                .filter(|e| e.ts_utc() >= *start && e.ts_utc() < *end)
            {
                let slot = per.entry(e.municipality.to_string()).or_default();
                if e.event_type == EventType::DoseTaken {
                    slot.0 += 1
                } else {
                    slot.1 += 1
                }
            }
            rows.extend(
                per.into_iter()
                    .map(|(m, (t, x))| format!("{idx} {m} {t} {x}")),
            );
        }
        rows
    };
    let answer = || async {
        s.store
            .dose_counts(&periods)
            .await
            .expect("doses")
            .iter()
            .map(|(idx, m, t, x)| format!("{idx} {m} {t} {x}"))
            .collect::<Vec<_>>()
    };
    assert!(
        expected.len() > 8,
        "too few rows to mean much: {expected:?}"
    );
    assert_eq!(answer().await, expected, "counted by ingest");
    s.store.recount_dose_months().await.expect("recount");
    assert_eq!(answer().await, expected, "recounted from the events");
}

/// The response-centre figures read from the sums ingest keeps, for the region and each
/// municipality, of every kind and of each, against `vft_domain::response::response_figures`
/// over the store's alarm records filtered the same way. Returns them, to compare stages.
async fn response_sums_agree(
    s: &TestStore,
    months: &[YearMonth],
    kinds: &[TechnologyKind],
    what: &str,
) -> Vec<Vec<vft_domain::response::MonthResponse>> {
    use vft_domain::response::{ResponseStandard, response_figures};
    let standard = ResponseStandard::default();
    let (Some(first), Some(last)) = (months.first(), months.last()) else {
        return Vec::new();
    };
    let records = s
        .store
        .alarm_records(first.start(), last.end_exclusive())
        .await
        .expect("alarms");
    let mut all = Vec::new();
    for municipality in [None, Some("3320"), Some("3328")] {
        let municipality = municipality.map(|m| MunicipalityCode::parse(m).expect("code"));
        for kind in std::iter::once(None).chain(kinds.iter().copied().map(Some)) {
            let chosen: Vec<_> = records
                .iter()
                .filter(|a| {
                    municipality.as_ref().is_none_or(|m| *m == a.municipality)
                        && kind.is_none_or(|k| a.kind == Some(k))
                })
                .cloned()
                .collect();
            let expected = response_figures(&chosen, months, &standard);
            let kept: Vec<_> = s
                .store
                .response_tallies(months, municipality.as_ref(), kind)
                .await
                .expect("tallies")
                .iter()
                .zip(months)
                .map(|(t, m)| t.figures(*m, &standard))
                .collect();
            assert_eq!(kept, expected, "{what}: {municipality:?} {kind:?}");
            all.push(kept);
        }
    }
    // A municipality user's own figures: kept sums corrected by the alarms with events from
    // several municipalities equal the merge of its own events.
    let mut own_differs = false;
    for (i, m) in ["3320", "3328"].into_iter().enumerate() {
        let m = MunicipalityCode::parse(m).expect("code");
        let own_records = own_records_from_events(s, &m, first.start(), last.end_exclusive()).await;
        let mut kept_records = s
            .store
            .own_alarm_records(&m, first.start(), last.end_exclusive())
            .await
            .expect("own alarms");
        let order = |a: &vft_domain::AlarmRecord| (a.vendor.to_string(), a.alarm.to_string());
        kept_records.sort_by_key(order);
        assert_eq!(
            kept_records, own_records,
            "{what}: own alarm records of {m}"
        );
        for (j, kind) in std::iter::once(None)
            .chain(kinds.iter().copied().map(Some))
            .enumerate()
        {
            let chosen: Vec<_> = own_records
                .iter()
                .filter(|a| kind.is_none_or(|k| a.kind == Some(k)))
                .cloned()
                .collect();
            let expected = response_figures(&chosen, months, &standard);
            let kept: Vec<_> = s
                .store
                .own_response_tallies(months, &m, kind)
                .await
                .expect("own tallies")
                .iter()
                .zip(months)
                .map(|(t, m)| t.figures(*m, &standard))
                .collect();
            assert_eq!(kept, expected, "{what}: own {m} {kind:?}");
            own_differs |= kept != all[(i + 1) * (kinds.len() + 1) + j];
        }
    }
    assert!(
        own_differs,
        "{what}: no alarm with events from several municipalities changed a figure"
    );
    all
}

/// A municipality's own alarm records as the domain merges them from its own stored events
/// (every device's, read back), with the kind of its origin's device where it has none: the
/// oracle for what the store keeps. Sorted by vendor and alarm.
async fn own_records_from_events(
    s: &TestStore,
    m: &MunicipalityCode,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<vft_domain::AlarmRecord> {
    let devices = s
        .store
        .devices(&DeviceQuery::new(Utc::now(), timeouts()))
        .await
        .expect("devices");
    let mut fold = vft_domain::AlarmFold::default();
    // Alarm events make a device known even without an install: every device with events.
    for d in &devices {
        for e in s
            .store
            .device_events(&d.vendor, std::slice::from_ref(&d.device), Some(m), 100_000)
            .await
            .expect("events")
        {
            fold.add(&e);
        }
    }
    let kind_of = |v: &VendorId, d: &DeviceId| {
        devices
            .iter()
            .find(|x| x.vendor == *v && x.device == *d)
            .and_then(|x| x.kind)
    };
    let mut records: Vec<vft_domain::AlarmRecord> = fold
        .finish()
        .into_iter()
        .filter(|a| from <= a.origin.1 && a.origin.1 < to)
        .map(|a| {
            let (closed, outcome) = match a.closed {
                Some((t, _, outcome)) => (Some(t), outcome),
                None => (None, None),
            };
            vft_domain::AlarmRecord {
                kind: a.kind.or_else(|| kind_of(&a.vendor, &a.device)),
                vendor: a.vendor,
                alarm: a.alarm,
                device: a.device,
                municipality: a.municipality,
                cause: a.cause,
                triggered: a.triggered,
                received: a.received,
                acknowledged: a.acknowledged,
                closed,
                outcome,
            }
        })
        .collect();
    records.sort_by_key(|a| (a.vendor.to_string(), a.alarm.to_string()));
    records
}

/// Response-centre sums kept by ingest equal the domain's figures over the alarm records in
/// any arrival order and batching, with repeats and a conflicting repeat; a late
/// acknowledgement and a device's change of kind (which moves its alarms without a kind of
/// their own) change them as they must; and a rebuild from the alarm state gives the same.
async fn response_sums_equal_the_domain_figures_in_any_order(s: TestStore) {
    let mut rng = Rng(2101);
    let (sa, ds) = (
        TechnologyKind::SafetyAlarm,
        TechnologyKind::DigitalSupervision,
    );
    let kinds = [sa, ds, TechnologyKind::DoorLockAlarm];
    let months: Vec<YearMonth> =
        std::iter::successors(Some(YearMonth::new(2024, 12).expect("month")), |m| {
            Some(m.next())
        })
        .take(6)
        .collect();
    let vendor = |d: u64| if d.is_multiple_of(2) { "hepro" } else { "atea" };
    let mut events: Vec<Event> = Vec::new();
    // Devices R0..R6 with a kind; R7 never installed, so its alarms have only their own kind.
    for d in 0..7u64 {
        let mut e = install(
            &format!("i{d}"),
            "2024-11-20T10:00:00Z",
            ["3320", "3328"][d as usize % 2],
            &format!("R{d}"),
            kinds[d as usize % 2],
        );
        e.vendor = VendorId::parse(vendor(d)).expect("vendor");
        events.push(e);
    }
    // R2 changes kind within the mixed arrival.
    let mut e = install("i2b", "2025-02-15T10:00:00Z", "3320", "R2", kinds[2]);
    e.vendor = VendorId::parse(vendor(2)).expect("vendor");
    events.push(e);
    let step = |id: String,
                vendor: &str,
                device: &str,
                m: &str,
                t: EventType,
                ts: DateTime<Utc>,
                alarm: &str| {
        let mut e = event(vendor, &id, &ts.to_rfc3339(), m, device, t, None);
        e.alarm = Some(vft_domain::AlarmRef::parse(alarm).expect("alarm"));
        e
    };
    // Alarms around the Oslo month ends, each step there or not; response times repeat (ties
    // on the percentiles' ranks) and may be negative (clock skew).
    let ends = [
        utc("2024-12-31T23:00:00Z"),
        utc("2025-01-31T23:00:00Z"),
        utc("2025-02-28T23:00:00Z"),
        utc("2025-03-31T22:00:00Z"),
    ];
    for i in 0..160u64 {
        let d = rng.below(8);
        let (v, device, alarm) = (vendor(d), format!("R{d}"), format!("A{i}"));
        let home = ["3320", "3328"][d as usize % 2];
        let m = |rng: &mut Rng| {
            if rng.below(6) == 0 {
                ["3328", "3320"][d as usize % 2]
            } else {
                home
            }
        };
        let t =
            ends[rng.below(4) as usize] + Duration::seconds(rng.below(4 * 3600) as i64 - 2 * 3600);
        if rng.below(8) != 0 {
            let mut e = step(
                format!("{alarm}t"),
                v,
                &device,
                m(&mut rng),
                EventType::Alarm,
                t,
                &alarm,
            );
            e.kind = (rng.below(5) == 0 || d == 7).then(|| kinds[rng.below(3) as usize]);
            e.cause = Some(vft_domain::Cause::Button);
            events.push(e);
        }
        if rng.below(3) != 0 {
            let r = t + Duration::milliseconds(rng.below(20_000) as i64);
            events.push(step(
                format!("{alarm}r"),
                v,
                &device,
                m(&mut rng),
                EventType::AlarmReceived,
                r,
                &alarm,
            ));
        }
        if rng.below(4) != 0 {
            // Off whole seconds too, so that a second holds several times and some
            // fall just either side of the 60 s and 180 s limits.
            let off = [0, 400, -600][rng.below(3) as usize];
            let a = t + Duration::milliseconds(rng.below(50) as i64 * 5_000 - 10_000 + off);
            events.push(step(
                format!("{alarm}a"),
                v,
                &device,
                m(&mut rng),
                EventType::AlarmAcknowledged,
                a,
                &alarm,
            ));
        }
        if rng.below(3) != 0 {
            let c = t + Duration::seconds(300 + rng.below(3600) as i64);
            let mut e = step(
                format!("{alarm}c"),
                v,
                &device,
                m(&mut rng),
                EventType::AlarmClosed,
                c,
                &alarm,
            );
            let outcomes = vft_domain::Outcome::ALL;
            e.outcome =
                (rng.below(6) != 0).then(|| outcomes[rng.below(outcomes.len() as u64) as usize]);
            events.push(e);
        }
    }
    // Held back: R1's late acknowledgement of an alarm never answered so far, and R0's change of
    // kind, which moves its alarms (R0 has alarms without a kind of their own).
    let late_alarm_at = utc("2025-02-10T10:00:00Z");
    events.push(step(
        "LATEt".into(),
        vendor(1),
        "R1",
        "3328",
        EventType::Alarm,
        late_alarm_at,
        "LATE",
    ));
    let late_ack = step(
        "LATEa".into(),
        vendor(1),
        "R1",
        "3328",
        EventType::AlarmAcknowledged,
        late_alarm_at + Duration::seconds(45),
        "LATE",
    );
    let mut kind_change = install("i0b", "2025-04-01T10:00:00Z", "3320", "R0", kinds[1]);
    kind_change.vendor = VendorId::parse(vendor(0)).expect("vendor");
    // A conflicting repeat: the same id, another time.
    let mut conflicting = events[10].clone();
    conflicting.ts += Duration::minutes(7);
    write_in_any_order(&s, &mut rng, &events, 60, Some(conflicting), 25).await;

    let before = response_sums_agree(&s, &months, &kinds, "mixed arrival").await;
    let region = &before[0];
    let triggered: u64 = region.iter().map(|m| m.triggered).sum();
    let answered = region.iter().filter(|m| m.response.is_some()).count();
    assert!(
        triggered > 100 && answered >= 4,
        "too few alarms to mean much: {region:?}"
    );
    s.store
        .write_batch(&[late_ack.clone(), kind_change.clone()], &[], Utc::now())
        .await
        .expect("write");
    // Replayed: nothing changes.
    s.store
        .write_batch(&[kind_change, late_ack], &[], Utc::now())
        .await
        .expect("write");
    let after =
        response_sums_agree(&s, &months, &kinds, "late acknowledgement and kind change").await;
    let feb = 2;
    assert_eq!(
        after[0][feb].acknowledged,
        before[0][feb].acknowledged + 1,
        "the late acknowledgement counts in its alarm's month"
    );
    // Index 1 is the region's safety alarms (kinds[0]), 2 its digital supervision (kinds[1]).
    let moved = |figures: &[Vec<vft_domain::response::MonthResponse>], k: usize| -> u64 {
        figures[k]
            .iter()
            .map(|m| m.triggered + m.received + m.closed)
            .sum()
    };
    assert!(
        moved(&after, 1) < moved(&before, 1) && moved(&after, 2) > moved(&before, 2),
        "R0's alarms moved from safety alarms to digital supervision"
    );
    // Forgotten which alarms have several municipalities, and their own states: the rebuild
    // finds them again in the events.
    for forget in [
        "DELETE FROM own_alarm_states",
        "UPDATE alarms SET several_municipalities = 0",
    ] {
        execute_raw(&s.url, forget).await.expect("forget");
    }
    let alarms = s.store.rebuild_response_months().await.expect("rebuild");
    assert!(alarms > 100, "rebuilt from {alarms} alarms");
    let rebuilt = response_sums_agree(&s, &months, &kinds, "rebuilt").await;
    assert_eq!(rebuilt, after, "incremental = rebuilt");
    // Migration 0026 fills the per-second counts of a store that had only response_times.
    let migration = if s.url.starts_with("sqlite:") {
        include_str!("../../../migrations/sqlite/0026_response_seconds.sql")
    } else {
        include_str!("../../../migrations/postgres/0026_response_seconds.sql")
    };
    let fill = &migration[migration.find("INSERT INTO").expect("the fill")..];
    execute_raw(&s.url, "DELETE FROM response_seconds")
        .await
        .expect("as before 0026");
    execute_raw(&s.url, fill).await.expect("fill");
    let filled = response_sums_agree(&s, &months, &kinds, "filled by migration 0026").await;
    assert_eq!(filled, after, "incremental = filled by the migration");
}

/// The region's figures over more months than one statement can ask for to the millisecond
/// (three seconds a month, SQLite's 500 terms of a compound SELECT): every month is read, and
/// equals the domain's figures.
async fn response_figures_over_many_years_are_read_whole(s: TestStore) {
    use vft_domain::response::{ResponseStandard, response_figures};
    let months: Vec<YearMonth> =
        std::iter::successors(Some(YearMonth::new(2005, 1).expect("month")), |m| {
            Some(m.next())
        })
        .take(200)
        .collect();
    let mut events = vec![install(
        "i",
        "2004-12-01T10:00:00Z",
        "3320",
        "R",
        TechnologyKind::SafetyAlarm,
    )];
    // Ten alarms a month, each answered in a second of its own: the median, the 90th
    // percentile and the maximum fall in three seconds.
    for (i, month) in months.iter().enumerate() {
        for j in 0..10i64 {
            let triggered = month.start() + Duration::days(10) + Duration::hours(j);
            let answered = triggered + Duration::milliseconds(1_000 * (j + 1) * 7 + 13 * i as i64);
            for (step, ts) in [
                (EventType::Alarm, triggered),
                (EventType::AlarmAcknowledged, answered),
            ] {
                let mut e = event(
                    "hepro",
                    &format!("a{i}-{j}-{}", step.id()),
                    &ts.to_rfc3339(),
                    "3320",
                    "R",
                    step,
                    None,
                );
                e.alarm = Some(vft_domain::AlarmRef::parse(&format!("A{i}-{j}")).expect("alarm"));
                events.push(e);
            }
        }
    }
    s.store
        .write_batch(&events, &[], Utc::now())
        .await
        .expect("write");
    let (Some(first), Some(last)) = (months.first(), months.last()) else {
        unreachable!("200 months")
    };
    let records = s
        .store
        .alarm_records(first.start(), last.end_exclusive())
        .await
        .expect("alarms");
    let standard = ResponseStandard::default();
    let expected = response_figures(&records, &months, &standard);
    assert_eq!(
        expected.iter().filter(|m| m.response.is_some()).count(),
        200,
        "every month has an answered alarm"
    );
    let kept: Vec<_> = s
        .store
        .response_tallies(&months, None, None)
        .await
        .expect("tallies")
        .iter()
        .zip(&months)
        .map(|(t, m)| t.figures(*m, &standard))
        .collect();
    assert_eq!(kept, expected);
}

/// Reads that return much of the fleet (packed on SQLite, several thousand rows to a pack)
/// return every row, exactly, whatever the text: quotes, backslashes, non-ASCII and NULLs.
async fn reads_of_many_rows_come_back_whole(s: TestStore) {
    let n = 9_100;
    let device = |i: usize| format!("D\"{i}\\ø-{}", i % 7);
    let events: Vec<Event> = (0..n)
        .map(|i| {
            let mut e = install(
                &format!("big-{i}"),
                "2025-03-01T10:00:00+01:00",
                ["3320", "3328"][i % 2],
                &device(i),
                TechnologyKind::ALL[i % 6],
            );
            e.recipient = (i % 3 != 0)
                .then(|| vft_domain::RecipientRef::parse(&format!("r «{i}»")).expect("recipient"));
            e
        })
        .collect();
    for chunk in events.chunks(500) {
        s.store
            .write_batch(chunk, &[], Utc::now())
            .await
            .expect("write");
    }
    let snapshot = s
        .store
        .in_service_snapshot(Utc::now())
        .await
        .expect("snapshot");
    assert_eq!(snapshot.len(), n);
    let mut want: Vec<(String, String, Option<String>)> = events
        .iter()
        .map(|e| {
            (
                e.device.to_string(),
                e.kind.expect("kind").id().to_owned(),
                e.recipient.as_ref().map(|r| r.to_string()),
            )
        })
        .collect();
    want.sort();
    let got: Vec<(String, String, Option<String>)> = snapshot
        .iter()
        .map(|d| {
            (
                d.device.to_string(),
                d.kind.id().to_owned(),
                d.recipient.as_ref().map(|r| r.to_string()),
            )
        })
        .collect();
    assert_eq!(got, want, "sorted by device, every field as written");
    let installs = s
        .store
        .installs_before(&VendorId::parse("hepro").expect("vendor"), Utc::now())
        .await
        .expect("installs");
    assert_eq!(installs.len(), n);
    assert!(
        installs.windows(2).all(|w| w[0].0 <= w[1].0),
        "installs oldest first"
    );
}

/// A change attribution's reads between two instants, whatever the arrival order and batching
/// (with repeats): every device whose entry in the in-service snapshot differs between them is
/// there, and so is every device in service at both in a municipality asked for; each device
/// there shows exactly its snapshot entries at the two instants (spans covering neither are
/// not returned); the breakdown is the month-end breakdown at both, from the same snapshot.
async fn service_changes_are_what_moved_between_two_instants(s: TestStore) {
    use std::collections::{BTreeMap, BTreeSet};
    let mut events = scenario(47, 300);
    let mut rng = Rng(4747);
    give_installs_recipients_and_replacements(&mut events, &mut rng);
    write_in_any_order(&s, &mut rng, &events, 40, None, 25).await;

    type Entries = BTreeMap<(String, String), String>;
    let entry = |d: &vft_domain::attribution::InService| {
        (
            (d.vendor.to_string(), d.device.to_string()),
            format!(
                "{} {} {:?} {:?}",
                d.kind.id(),
                d.municipality,
                d.recipient.as_ref().map(|r| r.to_string()),
                d.replaces.as_ref().map(|r| r.to_string())
            ),
        )
    };
    let snapshot = |at: DateTime<Utc>| {
        let store = s.store.clone();
        async move {
            store
                .in_service_snapshot(at)
                .await
                .expect("snapshot")
                .iter()
                .map(entry)
                .collect::<Entries>()
        }
    };
    let tick = Duration::microseconds(1);
    let ends = months_2025();
    let mut pairs: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        ends.windows(2).map(|w| (w[0], w[1])).collect();
    for e in events
        .iter()
        .filter(|e| e.event_type.lifecycle_rank().is_some())
        .take(40)
    {
        pairs.push((e.ts_utc(), e.ts_utc() + tick));
        pairs.push((e.ts_utc() - tick, e.ts_utc()));
        pairs.push((
            e.ts_utc() - Duration::days(3),
            e.ts_utc() + Duration::days(9),
        ));
    }
    pairs.push((ends[0], Utc::now()));
    let code = |m: &str| MunicipalityCode::parse(m).expect("code");
    let (mut moved_seen, mut kept_seen) = (0, 0);
    for (i, (first, last)) in pairs.into_iter().enumerate() {
        let also: Vec<MunicipalityCode> = match i % 3 {
            0 => vec![],
            1 => vec![code("3328")],
            _ => vec![code("3320"), code("3330")],
        };
        let changes = s
            .store
            .service_changes(first, last, &also)
            .await
            .expect("changes");
        let (before, after) = (snapshot(first).await, snapshot(last).await);
        let (mut got_before, mut got_after) = (Entries::new(), Entries::new());
        for span in &changes.spans {
            let d = span.in_service().expect("a stored interval has a kind");
            let (b, a) = (span.covers(first), span.covers(last));
            assert!(b || a, "{first}..{last}: a span covering neither {span:?}");
            if b {
                let (k, v) = entry(&d);
                assert!(got_before.insert(k, v).is_none(), "two spans of one device");
            }
            if a {
                let (k, v) = entry(&d);
                assert!(got_after.insert(k, v).is_none(), "two spans of one device");
            }
        }
        let returned: BTreeSet<&(String, String)> =
            got_before.keys().chain(got_after.keys()).collect();
        for key in &returned {
            assert_eq!(
                (got_before.get(*key), got_after.get(*key)),
                (before.get(*key), after.get(*key)),
                "{first}..{last}: device {key:?}"
            );
        }
        let also_text: BTreeSet<String> = also.iter().map(|m| m.to_string()).collect();
        let keys: BTreeSet<&(String, String)> = before.keys().chain(after.keys()).collect();
        for key in keys {
            let (b, a) = (before.get(key), after.get(key));
            let kept_in_also = match (b, a) {
                (Some(b), Some(_)) => also_text
                    .iter()
                    .any(|m| b.split(' ').nth(1) == Some(m.as_str())),
                _ => false,
            };
            if b != a {
                moved_seen += 1;
                assert!(
                    returned.contains(key),
                    "{first}..{last}: moved device {key:?} missing"
                );
            } else if kept_in_also {
                kept_seen += 1;
                assert!(
                    returned.contains(key),
                    "{first}..{last}: kept device {key:?} of {also:?} missing"
                );
            }
        }
        let show = |rows: &[vft_store::BreakdownRow]| {
            let mut v: Vec<String> = rows.iter().map(|r| format!("{r:?}")).collect();
            v.sort();
            v
        };
        assert_eq!(
            show(&changes.breakdown),
            show(
                &s.store
                    .month_end_breakdown(&[first, last])
                    .await
                    .expect("breakdown")
            ),
            "{first}..{last}: breakdown"
        );
    }
    assert!(
        moved_seen > 50 && kept_seen > 20,
        "a weak test: {moved_seen} moved, {kept_seen} kept"
    );
}

/// A store written before the intervals kept their installs' replaced units (migration 0023
/// empties the column and asks for the service state again): the next open fills it from the
/// stored events, so the spans are as ingest writes them, replaced units included.
async fn a_store_from_before_kept_replaced_units_fills_them_on_open(s: TestStore) {
    let mut events = scenario(33, 120);
    let mut rng = Rng(7);
    give_installs_recipients_and_replacements(&mut events, &mut rng);
    s.store
        .write_batch(&events, &[], Utc::now())
        .await
        .expect("write");
    let (first, last) = (utc("2024-01-01T00:00:00Z"), Utc::now());
    let show = |spans: Vec<vft_domain::interval::Interval>| {
        let mut v: Vec<String> = spans.iter().map(|sp| format!("{sp:?}")).collect();
        v.sort();
        v
    };
    let written = show(s.store.service_spans(first, last).await.expect("spans"));
    assert!(
        written.iter().any(|sp| !sp.contains("replaces: None")),
        "no replaced unit: a weak test"
    );
    execute_raw(&s.url, "UPDATE service_intervals SET replaces = NULL")
        .await
        .expect("as before 0023");
    execute_raw(
        &s.url,
        "UPDATE derived_state SET built = 0 WHERE name = 'service_state'",
    )
    .await
    .expect("as 0023 asks");
    let before_open = show(s.store.service_spans(first, last).await.expect("spans"));
    assert_ne!(before_open, written, "the column was emptied");
    let reopened = vft_store::open(&s.url, &vft_store::StoreOptions::default())
        .await
        .expect("reopen");
    assert_eq!(
        show(reopened.service_spans(first, last).await.expect("spans")),
        written
    );
}

/// What migration progress reads once for many month ends gives what the events give at each
/// of them, whatever the arrival order and batching (with repeats): the service intervals with
/// their installs' replaced units are the in-service snapshot field by field (at month ends, at
/// each lifecycle event's instant and 1 µs either side, ties of two installs at one instant
/// included), a narrower window holds exactly the intervals covering an instant in it; the
/// installs with their times, cut before an instant, are the old rule's every install before it
/// in order; and `vendor_reporting` says whether `reporting_at` holds a device of the vendor.
async fn spans_and_installs_give_what_the_events_give_in_any_order(s: TestStore) {
    let mut events = scenario(31, 300);
    let mut rng = Rng(91);
    give_installs_recipients_and_replacements(&mut events, &mut rng);
    // Two installs of one device at one instant: the later-ordered one is the device's state.
    let tie = "2025-05-31T21:00:00Z";
    for (id, replaced) in [("tie-b", "D2"), ("tie-a", "D1")] {
        let mut e = install(id, tie, "3328", "TIE", TechnologyKind::SafetyAlarm);
        e.replaces = Some(DeviceId::parse(replaced).expect("device"));
        events.push(e);
    }
    write_in_any_order(&s, &mut rng, &events, 40, None, 25).await;

    let tick = Duration::microseconds(1);
    let mut instants = months_2025();
    for e in events
        .iter()
        .filter(|e| e.event_type.lifecycle_rank().is_some())
    {
        instants.extend([e.ts_utc() - tick, e.ts_utc(), e.ts_utc() + tick]);
    }
    instants.push(utc("2024-06-01T00:00:00Z"));
    instants.push(Utc::now());
    instants.sort();
    instants.dedup();
    let (first, last) = (instants[0], *instants.last().expect("instants"));
    let show = |d: &vft_domain::attribution::InService| {
        format!(
            "{} {} {} {} {:?} {:?}",
            d.vendor,
            d.device,
            d.kind.id(),
            d.municipality,
            d.recipient.as_ref().map(|r| r.to_string()),
            d.replaces.as_ref().map(|r| r.to_string())
        )
    };
    let spans = s.store.service_spans(first, last).await.expect("spans");
    let records: Vec<_> = events
        .iter()
        .filter_map(vft_domain::LifecycleRecord::from_event)
        .collect();
    let mut shown_replaced = 0;
    for c in &instants {
        // The in-service rule over the events, with what the newest install said.
        let mut want: Vec<String> = vft_domain::in_service_at(&records, *c)
            .values()
            .map(|r| {
                let source = events
                    .iter()
                    .find(|e| e.vendor == r.vendor && e.id == r.event_id)
                    .expect("source event");
                show(&vft_domain::attribution::InService {
                    vendor: r.vendor.clone(),
                    device: r.device.clone(),
                    kind: r.kind.expect("installed with a kind"),
                    municipality: r.municipality.clone(),
                    recipient: source.recipient.clone(),
                    replaces: source.replaces.clone(),
                })
            })
            .collect();
        let mut got: Vec<String> = spans
            .iter()
            .filter(|sp| sp.covers(*c))
            .map(|sp| show(&sp.in_service().expect("a stored interval has a kind")))
            .collect();
        let mut snapshot: Vec<String> = s
            .store
            .in_service_snapshot(*c)
            .await
            .expect("snapshot")
            .iter()
            .map(show)
            .collect();
        want.sort();
        got.sort();
        snapshot.sort();
        assert_eq!(got, want, "spans at {c}");
        assert_eq!(snapshot, want, "snapshot at {c}");
        shown_replaced += got.iter().filter(|d| d.ends_with("\")")).count();
    }
    assert!(shown_replaced > 0, "no replaced unit shown: a weak test");
    let at_tie = utc(tie) + tick;
    assert!(
        spans
            .iter()
            .filter(|sp| sp.covers(at_tie) && sp.device.as_str() == "TIE")
            .map(|sp| sp.replaces.as_ref().map(|r| r.to_string()))
            .eq([Some("D2".to_owned())]),
        "the tie's later install (tie-b) is in service"
    );
    // A narrower window: exactly the intervals that cover some instant in it.
    let (a, b) = (months_2025()[3], months_2025()[5]);
    let debug = |sp: &vft_domain::interval::Interval| format!("{sp:?}");
    let mut narrow: Vec<String> = s
        .store
        .service_spans(a, b)
        .await
        .expect("spans")
        .iter()
        .map(debug)
        .collect();
    let mut want: Vec<String> = spans
        .iter()
        .filter(|sp| sp.from < b && sp.to.is_none_or(|t| t >= a))
        .map(debug)
        .collect();
    narrow.sort();
    want.sort();
    assert!(
        !want.is_empty() && want.len() < spans.len(),
        "a weak window"
    );
    assert_eq!(narrow, want, "window");

    for vendor in ["hepro", "atea"] {
        let vendor = VendorId::parse(vendor).expect("vendor");
        let all = s
            .store
            .installs_before(&vendor, Utc::now())
            .await
            .expect("installs");
        let mut installs: Vec<&Event> = events
            .iter()
            .filter(|e| e.vendor == vendor && e.event_type == EventType::Installed)
            .collect();
        installs.sort_by(|x, y| (x.ts_utc(), x.id.as_str()).cmp(&(y.ts_utc(), y.id.as_str())));
        for c in &instants {
            let cut: Vec<String> = all
                .iter()
                .take_while(|(t, _)| t < c)
                .map(|(t, d)| format!("{} {}", t.timestamp_micros(), show(d)))
                .collect();
            let want: Vec<String> = installs
                .iter()
                .filter(|e| e.ts_utc() < *c)
                .map(|e| {
                    format!(
                        "{} {} {} {} {} {:?} {:?}",
                        e.ts_utc().timestamp_micros(),
                        e.vendor,
                        e.device,
                        e.kind.expect("kind").id(),
                        e.municipality,
                        e.recipient.as_ref().map(|r| r.to_string()),
                        e.replaces.as_ref().map(|r| r.to_string())
                    )
                })
                .collect();
            assert_eq!(cut, want, "installs of {vendor} before {c}");
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in instants.iter().step_by(3) {
            for silent in [Duration::days(7), Duration::hours(20)] {
                let reporting = s
                    .store
                    .reporting_at(*c, *c - silent)
                    .await
                    .expect("reporting");
                let want = reporting.iter().any(|r| r.vendor == vendor);
                assert_eq!(
                    s.store
                        .vendor_reporting(&vendor, *c, *c - silent)
                        .await
                        .expect("vendor reporting"),
                    want,
                    "{vendor} reporting at {c} within {silent}"
                );
                seen.insert(want);
            }
        }
        assert_eq!(seen.len(), 2, "{vendor}: reporting and not: a weak test");
    }
}
