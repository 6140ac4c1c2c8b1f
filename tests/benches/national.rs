//! National-size query benchmark: how fast `vft serve` answers the inventory, rollup and
//! figure requests over a country's fleet (≈ 356 municipalities, 500 000 devices, a year of
//! events) in one SQLite file.
//!
//! The store is filled directly through `Store::write_batch` (this measures queries, not
//! ingest; `--bench ingest` measures that), then the release binary serves it and each request
//! is timed over HTTP: once cold-ish (first call), then 5 warm calls (min / median / max).
//!
//! Run: `cargo bench -p vft-e2e --bench national` (add `-- --devices 20000` for a quick check,
//! `-- --keep` to keep the database directory, `-- --reuse DIR` to time the requests again
//! against a kept one without loading, `-- --postgres` to run it all on a throwaway
//! PostgreSQL cluster instead of SQLite). Prints figures, and the server's peak resident
//! memory; asserts only that every request answers 200 with a non-empty body. Unless
//! `-- --baseline 0`, a fleet of 50 000 (`--baseline N`) is loaded and timed first, and each
//! request's first call is compared with it at the end (the "within 3x"), beside how
//! much its answer grew (decision 0028).

#[path = "../tests/support/mod.rs"]
mod support;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;
use vft_domain::{
    AlarmRef, Cause, DeviceId, Event, EventId, EventType, GatewayId, MunicipalityCode, Outcome,
    RecipientRef, TechnologyKind, VendorId, YearMonth,
};

const SEED: u64 = 0x5EED_2025_0000_0001;
const BATCH: usize = 20_000;
const DAY: i64 = 86_400;
const WARM_RUNS: usize = 5;

/// Vendor id and the prefix of its device and event ids.
const VENDORS: [(&str, &str); 2] = [("hepro", "HP"), ("atea", "AT")];

/// Technology types with their share of the fleet (per mille) and device-id abbreviation.
const KIND_MIX: [(TechnologyKind, u64, &str); 6] = [
    (TechnologyKind::MedicationSupport, 60, "MS"),
    (TechnologyKind::DigitalSupervision, 40, "DS"),
    (TechnologyKind::Tracking, 30, "TR"),
    (TechnologyKind::SafetyAlarm, 550, "SA"),
    (TechnologyKind::SmokeDetector, 300, "SD"),
    (TechnologyKind::DoorLockAlarm, 20, "DL"),
];

/// County prefixes and how many municipalities each has: 356 in all.
const COUNTIES: [(u32, u32); 14] = [
    (3, 1),
    (11, 23),
    (15, 38),
    (18, 41),
    (31, 22),
    (32, 21),
    (33, 20),
    (34, 46),
    (39, 12),
    (40, 17),
    (42, 25),
    (46, 43),
    (50, 38),
    (54, 9),
];

/// xorshift64*, seeded through splitmix64 so that neighbouring seeds diverge.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }
    fn for_key(a: u64, b: u64) -> Self {
        Self::new(
            SEED ^ a.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ b.wrapping_mul(0xA076_1D64_78BD_642F),
        )
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below(u64::try_from(hi - lo).unwrap_or(1)) as i64
    }
    fn percent(&mut self) -> u64 {
        self.below(100)
    }
}

struct Municipality {
    code: String,
    population: u32,
}

/// 356 four-digit codes; populations fall off with rank (Oslo first, then the rest in a seeded
/// shuffle so big ones are not all in one county).
fn municipalities() -> Vec<Municipality> {
    let mut codes: Vec<String> = COUNTIES
        .iter()
        .flat_map(|&(county, n)| (0..n).map(move |i| format!("{county:02}{:02}", 1 + 2 * i)))
        .collect();
    let mut rng = Rng::new(SEED);
    for i in (2..codes.len()).rev() {
        let j = 1 + rng.below(i as u64) as usize;
        codes.swap(i, j);
    }
    codes
        .into_iter()
        .enumerate()
        .map(|(rank, code)| Municipality {
            code,
            population: (700_000 / (rank as u32 + 1)).max(1_500),
        })
        .collect()
}

/// What one device does over 2024–2025.
#[derive(Clone, Copy)]
struct Plan {
    municipality: u16,
    kind: usize,
    vendor: usize,
    /// Unix seconds.
    installed: i64,
    decommissioned: Option<i64>,
    replaces: Option<u32>,
    recipient: u32,
    battery_start: i64,
    /// Battery drain, in half percent points per month.
    drain: i64,
}

struct Years {
    y2024: i64,
    y2025: i64,
    y2026: i64,
}

fn plan_fleet(n: usize, municipalities: &[Municipality], years: &Years) -> Vec<Plan> {
    let mut cumulative = Vec::with_capacity(municipalities.len());
    let mut total = 0u64;
    for m in municipalities {
        total += u64::from(m.population);
        cumulative.push(total);
    }
    const DRAIN: [i64; 10] = [0, 0, 1, 1, 1, 2, 2, 3, 4, 6];
    let (y2024, y2025, y2026) = (years.y2024, years.y2025, years.y2026);
    let mut plans: Vec<Plan> = Vec::with_capacity(n);
    for i in 0..n {
        let mut r = Rng::for_key(i as u64, 0);
        // ~4 % of the units are replacements of an earlier unit, swapped during 2025.
        if i >= 1000 && r.percent() < 4 {
            let mut replaced = None;
            for _ in 0..8 {
                let j = r.below(i as u64) as usize;
                let old = &plans[j];
                if old.decommissioned.is_none() && old.installed < y2026 - 40 * DAY {
                    let at = r.range((old.installed + 30 * DAY).max(y2025), y2026 - 10 * DAY);
                    replaced = Some((j, at));
                    break;
                }
            }
            if let Some((j, at)) = replaced {
                plans[j].decommissioned = Some(at);
                let mut unit = plans[j];
                unit.installed = at + r.range(60, 3600);
                unit.decommissioned = None;
                unit.replaces = Some(j as u32);
                unit.battery_start = 100;
                plans.push(unit);
                continue;
            }
        }
        let pick = r.below(total);
        let municipality = cumulative.partition_point(|&c| c <= pick) as u16;
        let mut k = r.below(1000);
        let kind = KIND_MIX
            .iter()
            .position(|&(_, share, _)| {
                let hit = k < share;
                k = k.saturating_sub(share);
                hit
            })
            .unwrap_or(3);
        let vendor = usize::from(r.percent() >= 60);
        let installed = if r.percent() < 80 {
            r.range(y2024, y2025)
        } else {
            r.range(y2025, y2026 - 10 * DAY)
        };
        // ~5 % are taken out during 2025 without a successor.
        let decommissioned = (r.percent() < 5 && installed < y2026 - 40 * DAY)
            .then(|| r.range((installed + 14 * DAY).max(y2025), y2026 - DAY));
        plans.push(Plan {
            municipality,
            kind,
            vendor,
            installed,
            decommissioned,
            replaces: None,
            recipient: i as u32,
            battery_start: 80 + r.range(0, 21),
            drain: DRAIN[r.below(10) as usize],
        });
    }
    plans
}

fn device_name(i: usize, plan: &Plan) -> String {
    format!(
        "{}-{}-{i:07}",
        VENDORS[plan.vendor].1, KIND_MIX[plan.kind].2
    )
}

/// Europe/Oslo's UTC offset at a unix second (EU rule, 2024–2025 only).
struct Oslo {
    summer: [(i64, i64); 2],
    winter: FixedOffset,
    summer_offset: FixedOffset,
}

impl Oslo {
    fn new() -> Self {
        let at = |y, m, d| {
            Utc.with_ymd_and_hms(y, m, d, 1, 0, 0)
                .single()
                .expect("valid")
                .timestamp()
        };
        Self {
            summer: [
                (at(2024, 3, 31), at(2024, 10, 27)),
                (at(2025, 3, 30), at(2025, 10, 26)),
            ],
            winter: FixedOffset::east_opt(3600).expect("offset"),
            summer_offset: FixedOffset::east_opt(7200).expect("offset"),
        }
    }
    fn local(&self, t: i64) -> DateTime<FixedOffset> {
        let offset = if self.summer.iter().any(|&(a, b)| (a..b).contains(&t)) {
            self.summer_offset
        } else {
            self.winter
        };
        Utc.timestamp_opt(t, 0)
            .single()
            .expect("in range")
            .with_timezone(&offset)
    }
}

/// Turns plans into events, period by period (2024's installs, then each month of 2025), each
/// period device by device: the table fills roughly in time order, as from real ingest.
struct Generator {
    plans: Vec<Plan>,
    codes: Vec<MunicipalityCode>,
    vendors: [VendorId; 2],
    oslo: Oslo,
    next_event: [u64; 2],
    next_alarm: [u64; 2],
    /// 2025-01-01 in Oslo, unix seconds: weekly doses count from here.
    year_start: i64,
}

struct Step {
    ts: i64,
    event_type: EventType,
    battery: Option<u8>,
    alarm: Option<u64>,
    cause: Option<Cause>,
    outcome: Option<Outcome>,
}

impl Step {
    fn new(ts: i64, event_type: EventType) -> Self {
        Self {
            ts,
            event_type,
            battery: None,
            alarm: None,
            cause: None,
            outcome: None,
        }
    }
}

impl Generator {
    fn in_service(plan: &Plan, t: i64) -> bool {
        plan.installed <= t && plan.decommissioned.is_none_or(|d| t < d)
    }

    /// One device's events in [start, end), in time order.
    fn steps(&mut self, i: usize, period: usize, start: i64, end: i64) -> Vec<Step> {
        let plan = self.plans[i];
        let mut steps = Vec::new();
        if (start..end).contains(&plan.installed) {
            steps.push(Step::new(plan.installed, EventType::Installed));
        }
        if let Some(d) = plan.decommissioned.filter(|d| (start..end).contains(d)) {
            steps.push(Step::new(d, EventType::Decommissioned));
        }
        if period == 0 {
            return steps;
        }
        let mut r = Rng::for_key(i as u64, period as u64);
        let kind = KIND_MIX[plan.kind].0;
        // Monthly heartbeat at the device's own time of month; battery where there is one.
        let fixed = Rng::for_key(i as u64, 99).next();
        let hb = start + (fixed % (27 * DAY as u64)) as i64;
        if Self::in_service(&plan, hb) {
            let mut step = Step::new(hb, EventType::Heartbeat);
            if !matches!(
                kind,
                TechnologyKind::MedicationSupport | TechnologyKind::DigitalSupervision
            ) {
                let months = (hb - plan.installed) / (30 * DAY);
                let level = plan.battery_start - plan.drain * months / 2 - r.range(0, 3);
                step.battery = Some(level.clamp(1, 100) as u8);
            }
            steps.push(step);
        }
        if kind == TechnologyKind::SafetyAlarm {
            let u = r.percent();
            let alarms = if u < 26 {
                1
            } else if u < 28 {
                2
            } else {
                0
            };
            for _ in 0..alarms {
                let t = r.range(start, end - 2 * 3600);
                if !Self::in_service(&plan, t) {
                    continue;
                }
                let v = plan.vendor;
                self.next_alarm[v] += 1;
                let alarm = Some(self.next_alarm[v]);
                let cause = match r.percent() {
                    0..60 => Cause::Button,
                    60..85 => Cause::Fall,
                    85..93 => Cause::Technical,
                    _ => Cause::Other,
                };
                let received = t + r.range(2, 16);
                let acknowledged = (r.percent() >= 3).then(|| received + r.range(10, 241));
                let closed = acknowledged.unwrap_or(received) + r.range(120, 5400);
                let outcome = match r.percent() {
                    0..45 => Outcome::FalseAlarm,
                    45..70 => Outcome::ResolvedRemotely,
                    70..95 => Outcome::HelpDispatched,
                    95..98 => Outcome::EmergencyServices,
                    _ => Outcome::NoContact,
                };
                let mut s = Step::new(t, EventType::Alarm);
                s.cause = Some(cause);
                s.alarm = alarm;
                steps.push(s);
                let mut s = Step::new(received, EventType::AlarmReceived);
                s.alarm = alarm;
                steps.push(s);
                if let Some(a) = acknowledged {
                    let mut s = Step::new(a, EventType::AlarmAcknowledged);
                    s.alarm = alarm;
                    steps.push(s);
                }
                let mut s = Step::new(closed, EventType::AlarmClosed);
                s.alarm = alarm;
                s.outcome = Some(outcome);
                steps.push(s);
            }
        }
        if kind == TechnologyKind::MedicationSupport {
            let offset = (fixed % (7 * DAY as u64)) as i64;
            let first_week = (start - self.year_start) / (7 * DAY) - 1;
            for w in first_week.max(0)..first_week + 7 {
                let t = self.year_start + w * 7 * DAY + offset;
                if (start..end).contains(&t) && Self::in_service(&plan, t) {
                    let taken = r.percent() >= 7;
                    steps.push(Step::new(
                        t,
                        if taken {
                            EventType::DoseTaken
                        } else {
                            EventType::DoseMissed
                        },
                    ));
                }
            }
        }
        steps.sort_by_key(|s| (s.ts, s.event_type.lifecycle_rank()));
        steps
    }

    fn event(&mut self, i: usize, step: Step) -> Event {
        let plan = self.plans[i];
        let v = plan.vendor;
        self.next_event[v] += 1;
        let installed = step.event_type == EventType::Installed;
        let code = &self.codes[usize::from(plan.municipality)];
        Event {
            vendor: self.vendors[v].clone(),
            gateway: GatewayId::parse(&format!("gw-{}-{}", code, i % 3)).expect("gateway"),
            id: EventId::parse(&format!(
                "{}-{:09}",
                VENDORS[v].1.to_lowercase(),
                self.next_event[v]
            ))
            .expect("event id"),
            ts: self.oslo.local(step.ts),
            municipality: code.clone(),
            device: DeviceId::parse(&device_name(i, &plan)).expect("device"),
            event_type: step.event_type,
            kind: installed.then_some(KIND_MIX[plan.kind].0),
            battery: step.battery,
            alarm: step.alarm.map(|a| {
                AlarmRef::parse(&format!("{}-al-{a:08}", VENDORS[v].1.to_lowercase()))
                    .expect("alarm")
            }),
            cause: step.cause,
            outcome: step.outcome,
            recipient: installed
                .then(|| RecipientRef::parse(&format!("r-{}", plan.recipient)).expect("recipient")),
            replaces: plan
                .replaces
                .filter(|_| installed)
                .map(|j| DeviceId::parse(&device_name(j as usize, &self.plans[j as usize])))
                .transpose()
                .expect("replaces"),
            reason: None,
        }
    }

    /// Sends batches of about `BATCH` events until the plan is exhausted.
    /// Returns the time spent generating (not waiting for the writer).
    fn run(
        mut self,
        periods: &[(i64, i64)],
        tx: &tokio::sync::mpsc::Sender<Vec<Event>>,
    ) -> Duration {
        let started = Instant::now();
        let mut waiting = Duration::ZERO;
        let mut batch = Vec::with_capacity(BATCH + 64);
        for (p, &(start, end)) in periods.iter().enumerate() {
            for i in 0..self.plans.len() {
                for step in self.steps(i, p, start, end) {
                    let e = self.event(i, step);
                    batch.push(e);
                }
                if batch.len() >= BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH + 64));
                    let sent = Instant::now();
                    if tx.blocking_send(full).is_err() {
                        break;
                    }
                    waiting += sent.elapsed();
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
        started.elapsed().saturating_sub(waiting)
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

struct Timed {
    status: u16,
    /// Every body here is JSON or CSV.
    body: String,
    elapsed: Duration,
}

async fn timed_get(client: &reqwest::Client, url: &str, token: &str) -> Timed {
    let started = Instant::now();
    let resp = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let body = resp.text().await.expect("body");
    Timed {
        status,
        body,
        elapsed: started.elapsed(),
    }
}

/// A request's first call: its label, how long it took, and how large its answer was.
struct FirstCall {
    label: String,
    ms: f64,
    bytes: usize,
}

/// Each request's first call of the current run, in the order asked: the baseline and the full
/// run ask the same requests in the same order, so they compare by position.
static FIRST_CALLS: std::sync::Mutex<Vec<FirstCall>> = std::sync::Mutex::new(Vec::new());

/// A request's first call, which must answer 200 with a body.
async fn first_call(
    client: &reqwest::Client,
    url: &str,
    (label, path): (&str, &str),
    token: &str,
) -> Timed {
    let first = timed_get(client, url, token).await;
    FIRST_CALLS.lock().expect("first calls").push(FirstCall {
        label: label.to_owned(),
        ms: first.elapsed.as_secs_f64() * 1000.0,
        bytes: first.body.len(),
    });
    assert_eq!(
        first.status,
        200,
        "GET {path}: {}",
        first.body.chars().take(300).collect::<String>()
    );
    assert!(!first.body.is_empty(), "GET {path}: empty body");
    first
}

/// One request: a first call, then `WARM_RUNS` timed ones; prints a line, returns the body.
async fn measure(
    client: &reqwest::Client,
    api: &str,
    label: &str,
    path: &str,
    token: &str,
) -> String {
    let url = format!("{api}{path}");
    let first = first_call(client, &url, (label, path), token).await;
    let mut ms = Vec::with_capacity(WARM_RUNS);
    for _ in 0..WARM_RUNS {
        let t = timed_get(client, &url, token).await;
        assert_eq!(t.status, 200, "GET {path}");
        assert!(!t.body.is_empty(), "GET {path}: empty body");
        ms.push(t.elapsed.as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let flag = if ms[WARM_RUNS / 2] > 5000.0 {
        "  << SLOW"
    } else {
        ""
    };
    println!(
        "{label:<50} first {:>9.1}  min {:>9.1}  median {:>9.1}  max {:>9.1} ms  {:>10} B{flag}",
        first.elapsed.as_secs_f64() * 1000.0,
        ms[0],
        ms[WARM_RUNS / 2],
        ms[WARM_RUNS - 1],
        first.body.len(),
    );
    first.body
}

/// A heavy request: a first call and one warm call.
async fn measure_twice(
    client: &reqwest::Client,
    api: &str,
    label: &str,
    path: &str,
    token: &str,
) -> String {
    let url = format!("{api}{path}");
    let first = first_call(client, &url, (label, path), token).await;
    let warm = timed_get(client, &url, token).await;
    assert_eq!(warm.status, 200, "GET {path}");
    println!(
        "{label:<50} first {:>9.1}  warm {:>9.1} ms  {:>10} B",
        first.elapsed.as_secs_f64() * 1000.0,
        warm.elapsed.as_secs_f64() * 1000.0,
        first.body.len(),
    );
    first.body
}

/// A process's resident memory now and at its peak (VmRSS, VmHWM), in MiB.
fn resident_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Fills the store through `Store::write_batch`: generation on its own thread, writes here, so
/// both cores work.
async fn load(db_url: &str, generator: Generator, periods: Vec<(i64, i64)>) {
    let store = vft_store::open(db_url, &Default::default())
        .await
        .expect("open store");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Event>>(4);
    let producer = std::thread::spawn(move || generator.run(&periods, &tx));
    let started = Instant::now();
    let (mut written, mut batches) = (0u64, 0u64);
    let mut last_report = Instant::now();
    while let Some(batch) = rx.recv().await {
        let outcome = store
            .write_batch(&batch, &[], Utc::now())
            .await
            .expect("write batch");
        assert_eq!(
            outcome.events_inserted,
            batch.len() as u64,
            "every generated event is new"
        );
        written += outcome.events_inserted;
        batches += 1;
        if last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            println!(
                "  … {written} events after {:.0} s ({:.0} events/s)",
                started.elapsed().as_secs_f64(),
                written as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let generating = producer.join().expect("generator");
    let load = started.elapsed();
    assert_eq!(store.event_count().await.expect("count"), written);
    println!(
        "load: {written} events in {batches} batches, {:.1} s, {:.0} events/s (write_batch, synchronous = full; generator busy {:.1} s of it)",
        load.as_secs_f64(),
        written as f64 / load.as_secs_f64(),
        generating.as_secs_f64(),
    );
}

fn flag_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let prefixed = format!("{name}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == name {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(&prefixed).map(str::to_owned)
        }
    })
}

#[tokio::main]
async fn main() {
    let number = |flag: &str, default: usize| {
        flag_value(flag).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{flag} needs a number, got {v:?}"))
        })
    };
    let devices = number("--devices", 500_000);
    // The yardstick: each first call within 3x of the same call at 50 000 devices,
    // loaded and served in the same run (`--baseline 0` skips it).
    let baseline = number("--baseline", 50_000);
    let keep = std::env::args().any(|a| a == "--keep");
    let on_postgres = std::env::args().any(|a| a == "--postgres");
    // A database kept by an earlier `--keep` run (same --devices) skips the load.
    let reuse = flag_value("--reuse").map(PathBuf::from);
    assert!(
        !(on_postgres && reuse.is_some()),
        "--reuse is for a kept SQLite file"
    );
    let small = if baseline > 0 && baseline < devices {
        run(baseline, None, false, on_postgres).await;
        Some(std::mem::take(
            &mut *FIRST_CALLS.lock().expect("first calls"),
        ))
    } else {
        None
    };
    run(devices, reuse, keep, on_postgres).await;
    let Some(small) = small else { return };
    let big = std::mem::take(&mut *FIRST_CALLS.lock().expect("first calls"));
    compare_first_calls(devices, baseline, &small, &big);
}

/// Prints each request's first call at `devices` against the baseline's, beside how much its
/// answer grew. A request over 3x whose answer grew at least as much lists units of the fleet
/// (every unit reconciled, every changed device, a whole export): no implementation giving the
/// same answer can stay within 3x of a fleet a tenth the size, so those are counted apart from
/// the ones whose time grew on its own (a page of 100, a fixed-size table), which are the
/// real misses.
fn compare_first_calls(devices: usize, baseline: usize, small: &[FirstCall], big: &[FirstCall]) {
    println!(
        "first call after a restart, {devices} devices against {baseline} (goal: within 3x), \
         beside the answer's growth:"
    );
    let (mut over, mut with_answer) = (0, 0);
    for (at_big, at_small) in big.iter().zip(small) {
        let ratio = at_big.ms / at_small.ms.max(0.001);
        let grew = at_big.bytes as f64 / at_small.bytes.max(1) as f64;
        let flag = if ratio <= 3.0 {
            ""
        } else if ratio <= 3.0 * grew {
            with_answer += 1;
            "  > 3x, answer grew as much"
        } else {
            over += 1;
            "  > 3x"
        };
        println!(
            "  {:<60} {:>9.1} → {:>9.1} ms  {ratio:>6.1}x  answer {grew:>6.1}x{flag}",
            at_big.label, at_small.ms, at_big.ms
        );
    }
    println!(
        "  {over} of {} requests over 3x beyond their answer's growth; {with_answer} more over 3x \
         with an answer that grew as much",
        big.len()
    );
}

/// Loads (or reuses) a fleet of `devices`, serves it, and times every request.
async fn run(devices: usize, reuse: Option<PathBuf>, keep: bool, on_postgres: bool) {
    println!(
        "vft national query benchmark: {devices} devices, {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if on_postgres { "PostgreSQL" } else { "SQLite" }
    );
    let scratch = match (&reuse, on_postgres) {
        (Some(_), _) => None,
        (None, false) => Some(Scratch::new()),
        (None, true) => Some(
            Scratch::postgres()
                .await
                .expect("--postgres: no PostgreSQL could be started (initdb/postgres)"),
        ),
    };
    let dir = match (&reuse, &scratch) {
        (Some(dir), _) => dir.clone(),
        (None, Some(s)) => s.dir.path().to_path_buf(),
        (None, None) => unreachable!("a scratch directory when not reusing"),
    };
    let db_path = dir.join("vft.db");
    let db_url = match &scratch {
        Some(s) if on_postgres => s.database_url(),
        _ => format!("sqlite://{}", db_path.display()),
    };

    // The region: every code an event uses is configured, so nothing becomes a dead letter.
    let region = municipalities();
    let config_path = dir.join("national.toml");
    let mut toml = String::from(
        "# Generated by the national benchmark.\ncooperations = []\n\n\
         # Keep the 2025 heartbeats: retention would purge them at start-up and compete with the\n\
         # timed requests.\n[retention]\nstatus_event_days = 0\n",
    );
    for m in &region {
        toml.push_str(&format!(
            "\n[[municipalities]]\ncode = \"{}\"\nname = \"Kommune {}\"\npopulation = {}\n",
            m.code, m.code, m.population
        ));
    }
    std::fs::write(&config_path, toml).expect("write config");
    let config = config_path.to_str().expect("utf-8 path").to_owned();

    // The fleet and its year.
    let years = Years {
        y2024: YearMonth::new(2024, 1).expect("month").start().timestamp(),
        y2025: YearMonth::new(2025, 1).expect("month").start().timestamp(),
        y2026: YearMonth::new(2026, 1).expect("month").start().timestamp(),
    };
    let plans = plan_fleet(devices, &region, &years);
    let big = region[0].code.clone();
    let big_devices = plans.iter().filter(|p| p.municipality == 0).count();
    let chained = plans
        .iter()
        .enumerate()
        .find(|(_, p)| p.replaces.is_some())
        .or_else(|| plans.iter().enumerate().next())
        .map(|(i, p)| (VENDORS[p.vendor].0, device_name(i, p)))
        .expect("at least one device");
    let mut kinds = [0usize; 6];
    for p in &plans {
        kinds[p.kind] += 1;
    }
    println!(
        "fleet: {} devices in {} municipalities (largest {big}: {big_devices}); by type {}; {} replacements, {} decommissioned in 2025",
        plans.len(),
        region.len(),
        KIND_MIX
            .iter()
            .zip(kinds)
            .map(|((k, _, _), n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        plans.iter().filter(|p| p.replaces.is_some()).count(),
        plans.iter().filter(|p| p.decommissioned.is_some()).count(),
    );

    let mut periods = vec![(years.y2024, years.y2025)];
    periods.extend(
        YearMonth::months_of_year(2025)
            .expect("months")
            .into_iter()
            .map(|m| (m.start().timestamp(), m.end_exclusive().timestamp())),
    );
    let generator = Generator {
        codes: region
            .iter()
            .map(|m| MunicipalityCode::parse(&m.code).expect("code"))
            .collect(),
        vendors: VENDORS.map(|(v, _)| VendorId::parse(v).expect("vendor")),
        oslo: Oslo::new(),
        next_event: [0; 2],
        next_alarm: [0; 2],
        year_start: years.y2025,
        plans,
    };

    if reuse.is_some() {
        assert!(db_path.is_file(), "--reuse: no {}", db_path.display());
        println!("load: skipped, reusing {}", db_path.display());
    } else {
        load(&db_url, generator, periods).await;
    }
    let wal = db_path.with_extension("db-wal");
    if !on_postgres {
        println!(
            "database: {:.1} MiB ({} bytes) + WAL {:.1} MiB",
            mib(file_size(&db_path)),
            file_size(&db_path),
            mib(file_size(&wal))
        );
    }

    // Serve it.
    let cwd = dir.as_path();
    let coordinator = create_token(
        &db_url,
        cwd,
        &["--role", "coordinator", "--config", &config],
    );
    let municipal = create_token(
        &db_url,
        cwd,
        &[
            "--role",
            "municipality",
            "--municipality",
            &big,
            "--config",
            &config,
        ],
    );
    let mqtt_addr = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let vft = VftProcess::spawn(
        &[
            "serve",
            "--config",
            &config,
            "--http-addr",
            "127.0.0.1:0",
            "--mqtt-addr",
            &mqtt_addr,
            "--database-url",
            &db_url,
        ],
        cwd,
    );
    eventually("readyz", Duration::from_secs(120), || async {
        (get(&format!("{}/readyz", vft.api), None).await.status() == 200).then_some(())
    })
    .await;
    println!("serve: ready in {:.2} s", started.elapsed().as_secs_f64());

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()
        .expect("client");
    let api = format!("{}/api/v1", vft.api);
    println!(
        "requests (ms; first call, then {WARM_RUNS} warm calls), coordinator token unless noted:"
    );
    let c = coordinator.as_str();
    let first_page = measure(
        &client,
        &api,
        "devices, first page",
        "/devices?limit=100",
        c,
    )
    .await;
    measure(
        &client,
        &api,
        &format!("devices, municipality {big}"),
        &format!("/devices?limit=100&municipality={big}"),
        c,
    )
    .await;
    measure(
        &client,
        &api,
        "devices, connectivity=offline",
        "/devices?connectivity=offline&limit=100",
        c,
    )
    .await;
    measure(
        &client,
        &api,
        "devices, safety_alarm battery_below=20",
        "/devices?kind=safety_alarm&battery_below=20&limit=100",
        c,
    )
    .await;
    measure(
        &client,
        &api,
        "devices, q=00123",
        "/devices?q=00123&limit=100",
        c,
    )
    .await;
    let page: serde_json::Value = serde_json::from_str(&first_page).expect("json page");
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    measure(
        &client,
        &api,
        "devices, second page (next_cursor)",
        &format!("/devices?limit=100&cursor={cursor}"),
        c,
    )
    .await;
    let export = measure(
        &client,
        &api,
        &format!("devices CSV export, municipality {big}"),
        &format!("/devices?municipality={big}&format=csv"),
        c,
    )
    .await;
    println!(
        "  (export: {} devices)",
        export.lines().count().saturating_sub(1)
    );
    measure(
        &client,
        &api,
        &format!("devices, municipality token ({big})"),
        "/devices?limit=100",
        &municipal,
    )
    .await;
    measure(
        &client,
        &api,
        "rollup, year=2025",
        "/rollups/devices?year=2025",
        c,
    )
    .await;
    measure(
        &client,
        &api,
        &format!("rollup, year=2025 municipality {big}"),
        &format!("/rollups/devices?year=2025&municipality={big}"),
        c,
    )
    .await;
    measure(
        &client,
        &api,
        "rollup, year=2025 CSV",
        "/rollups/devices?year=2025&format=csv",
        c,
    )
    .await;
    measure(
        &client,
        &api,
        "changes, month=2025-06",
        "/rollups/devices/changes?month=2025-06",
        c,
    )
    .await;
    measure(
        &client,
        &api,
        "response-centre, year=2025",
        "/rollups/response-centre?year=2025",
        c,
    )
    .await;
    measure(
        &client,
        &api,
        "medication, year=2025",
        "/rollups/medication?year=2025",
        c,
    )
    .await;
    measure(
        &client,
        &api,
        "response-centre, year=2025 kind=safety_alarm",
        "/rollups/response-centre?year=2025&kind=safety_alarm",
        c,
    )
    .await;
    // A municipality's own figures, merged from its own alarm events (migration 0027).
    measure(
        &client,
        &api,
        &format!("response-centre, year=2025, municipality token ({big})"),
        "/rollups/response-centre?year=2025",
        &municipal,
    )
    .await;
    measure(
        &client,
        &api,
        &format!("unanswered alarms, month=2025-06, municipality token ({big})"),
        "/rollups/response-centre/unanswered?month=2025-06",
        &municipal,
    )
    .await;
    measure_twice(
        &client,
        &api,
        "reconciliation hepro→atea at 2025-12-31",
        "/reconciliation?from=hepro&to=atea&at=2025-12-31",
        c,
    )
    .await;
    measure_twice(
        &client,
        &api,
        "reconciliation progress, year=2025",
        "/reconciliation/progress?from=hepro&to=atea&year=2025",
        c,
    )
    .await;
    let (vendor, device) = chained;
    let shown = measure(
        &client,
        &api,
        &format!("one device with history ({vendor}/{device})"),
        &format!("/devices/{vendor}/{device}"),
        c,
    )
    .await;
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("json device");
    println!(
        "  (device: {} history events, replaces chain {})",
        shown["history"].as_array().map_or(0, Vec::len),
        shown["replaces_chain"]
    );
    let (rss, peak) = resident_mib(vft.pid());
    println!("server resident memory: {rss:.0} MiB now, {peak:.0} MiB at its peak (VmHWM)");
    if !on_postgres {
        println!(
            "database after serving: {:.1} MiB + WAL {:.1} MiB",
            mib(file_size(&db_path)),
            mib(file_size(&wal))
        );
    }
    drop(vft);
    if let Some(s) = scratch.filter(|_| keep) {
        let dir = s.dir.keep();
        println!(
            "kept {} (vft.db, national.toml); time the requests again with `-- --devices {devices} --reuse {}`",
            dir.display(),
            dir.display()
        );
    }
}
