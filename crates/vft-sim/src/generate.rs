//! The simulated region: devices with lifecycles that meet per-municipality targets every
//! month, their status and response-centre traffic, and the MQTT messages that carry it.

use crate::{Message, Plan, SimError, Simulation};
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, TimeZone, Utc};
use chrono_tz::Europe::Oslo;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use vft_domain::{
    Cause, DeviceId, DeviceTable, Event, EventId, EventTopic, EventType, GatewayId, Municipality,
    Outcome, RecipientRef, Registry, TechnologyKind, VendorId, YearMonth,
};

/// The old vendor of the transition.
pub(crate) const HEPRO: usize = 0;
/// The new vendor of the transition.
pub(crate) const ATEA: usize = 1;
/// (topic vendor, device id prefix).
pub(crate) const VENDORS: [(&str, &str); 2] = [("hepro", "HP"), ("atea", "AT")];

/// Municipalities that move from Hepro to Atea in the table's last months. Absent ones are
/// skipped, so any other region simply has no transition.
const TRANSITION_MUNICIPALITIES: [&str; 2] = ["3328", "3330"];
/// Share of the remaining Hepro devices moved in each of the last months; some are left on
/// Hepro at the end so reconciliation has something to find.
const TRANSITION_SHARES: [f64; 3] = [0.35, 0.5, 0.6];
/// Recipients who got their Atea unit while the Hepro unit was never collected (on both
/// platforms for months: paid twice), and whose move is under way at the end (on both for
/// days). See [`Builder::overlaps`].
const DOUBLES: usize = 2;
const MOVES_UNDER_WAY: usize = 1;

/// Monthly share of devices decommissioned beyond the net change (churn), and how many of
/// those are replaced by a new unit for the same recipient.
const CHURN: (f64, f64) = (0.01, 0.035);
const REPLACED_SHARE: f64 = 0.5;
/// Share of lifecycle events put within an hour or two of a month boundary (Oslo time).
const BOUNDARY_SHARE: f64 = 0.06;
/// Share of devices that fall silent (no status traffic) during the last two months.
const SILENT_SHARE: f64 = 0.02;
const FAULTS_PER_MONTH: f64 = 0.04;
/// Mixed into the seed for the traffic after the table's end ([`Plan::live_until`]).
const LIVE_SEED: u64 = 0x6c69_7665;
const DAY_SECS: i64 = 86_400;
const MONTH_SECS: f64 = 30.44 * 86_400.0;

/// Splits `total` among the municipalities in proportion to population with the
/// largest-remainder method, so the parts always sum to `total`. Ties go to the larger
/// population, then to the earlier municipality in the list. If no population is known,
/// every municipality weighs the same.
pub fn split_by_population(total: u64, municipalities: &[Municipality]) -> Vec<u64> {
    let mut weights: Vec<u128> = municipalities
        .iter()
        .map(|m| u128::from(m.population))
        .collect();
    if weights.iter().all(|w| *w == 0) {
        weights.iter_mut().for_each(|w| *w = 1);
    }
    let sum: u128 = weights.iter().sum();
    if sum == 0 {
        return Vec::new();
    }
    let total_wide = u128::from(total);
    let mut parts: Vec<u64> = weights
        .iter()
        .map(|w| u64::try_from(total_wide * w / sum).unwrap_or(u64::MAX))
        .collect();
    let given: u64 = parts.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let rem = |i: usize| total_wide * weights[i] % sum;
        rem(b)
            .cmp(&rem(a))
            .then(weights[b].cmp(&weights[a]))
            .then(a.cmp(&b))
    });
    for &i in order
        .iter()
        .take(usize::try_from(total - given).unwrap_or(0))
    {
        parts[i] += 1;
    }
    parts
}

/// Generates the whole simulation. Pure: the same plan gives the same messages.
pub fn generate(plan: &Plan) -> Result<Simulation, SimError> {
    validate(plan)?;
    let months = figured_months(&plan.table)?;
    let mut sim = Builder::new(plan, &months)?;
    sim.lifecycles(&plan.table)?;
    sim.overlaps();
    sim.status_traffic(plan.heartbeat_every_days);
    if let Some(until) = plan.live_until {
        sim.live_traffic(until, plan.heartbeat_every_days);
    }
    let (events, gateway_of) = sim.events()?;
    let messages = sim.messages(&events, &gateway_of, plan)?;
    Ok(Simulation {
        messages,
        events,
        months,
    })
}

fn validate(plan: &Plan) -> Result<(), SimError> {
    let bad = |why: &str| Err(SimError::Plan(why.to_owned()));
    if plan.municipalities.is_empty() {
        return bad("no municipalities");
    }
    Registry::new(plan.municipalities.iter().cloned())
        .map_err(|e| SimError::Plan(e.to_string()))?;
    if plan.max_events_per_message == 0 {
        return bad("max_events_per_message must be at least 1");
    }
    let p = &plan.topic_prefix;
    if p.is_empty() || p.ends_with('/') || p.contains(['+', '#']) {
        return bad("topic_prefix must be a non-empty topic without wildcards or a trailing /");
    }
    Ok(())
}

/// The table's months up to the first one without figures; they must be consecutive.
pub(crate) fn figured_months(table: &DeviceTable) -> Result<Vec<YearMonth>, SimError> {
    let months: Vec<YearMonth> = table
        .months
        .iter()
        .enumerate()
        .take_while(|(i, _)| {
            TechnologyKind::ALL
                .iter()
                .all(|k| table.cell(*k, *i).is_some())
        })
        .map(|(_, m)| *m)
        .collect();
    if months.is_empty() {
        return Err(SimError::Plan("the table has no month with figures".into()));
    }
    if months.windows(2).any(|w| w[0].next() != w[1]) {
        return Err(SimError::Plan(
            "the table's months must be consecutive".into(),
        ));
    }
    Ok(months)
}

struct Gateway {
    vendor: usize,
    id: GatewayId,
    /// Some gateways report in UTC (`Z`) rather than Oslo time.
    utc: bool,
}

struct Device {
    vendor: usize,
    gateway: usize,
    id: DeviceId,
    municipality: usize,
    kind: TechnologyKind,
    recipient: RecipientRef,
    installed: DateTime<Utc>,
    decommissioned: Option<DateTime<Utc>>,
    replaces: Option<DeviceId>,
    battery: f64,
    /// Fell silent before the table's end (and stays silent after it).
    silent: bool,
}

/// An event before ids and offsets are assigned.
struct Raw {
    ts: DateTime<Utc>,
    device: usize,
    event_type: EventType,
    utc: bool,
    battery: Option<u8>,
    alarm: Option<u64>,
    cause: Option<Cause>,
    outcome: Option<Outcome>,
}

struct Builder<'p> {
    rng: StdRng,
    plan: &'p Plan,
    months: &'p [YearMonth],
    vendors: [VendorId; 2],
    gateways: Vec<Gateway>,
    /// Gateway indices per [vendor][municipality].
    gateways_of: [Vec<Vec<usize>>; 2],
    devices: Vec<Device>,
    raws: Vec<Raw>,
    next_device: [u64; 2],
    next_alarm: [u64; 2],
    next_recipient: Vec<u64>,
    transition: Vec<bool>,
}

impl<'p> Builder<'p> {
    fn new(plan: &'p Plan, months: &'p [YearMonth]) -> Result<Self, SimError> {
        let mut rng = StdRng::seed_from_u64(plan.seed);
        let n = plan.municipalities.len();
        let transition: Vec<bool> = plan
            .municipalities
            .iter()
            .map(|m| TRANSITION_MUNICIPALITIES.contains(&m.code.as_str()))
            .collect();
        let mut gateways = Vec::new();
        let mut gateways_of: [Vec<Vec<usize>>; 2] = [vec![Vec::new(); n], vec![Vec::new(); n]];
        for (mi, m) in plan.municipalities.iter().enumerate() {
            // Larger municipalities have more base stations / hubs.
            let hepro = 1 + (m.population / 2000).min(3) as usize;
            let counts = [hepro, if transition[mi] { 2 } else { 0 }];
            for (vendor, count) in counts.into_iter().enumerate() {
                for g in 1..=count {
                    let id = GatewayId::parse(&format!("{}-{}-gw{g}", VENDORS[vendor].0, m.code))?;
                    gateways_of[vendor][mi].push(gateways.len());
                    let utc = rng.random_bool(0.25);
                    gateways.push(Gateway { vendor, id, utc });
                }
            }
        }
        // Topics must parse back exactly as ingest will parse them.
        for g in &gateways {
            let topic = format!(
                "{}/{}/{}/events",
                plan.topic_prefix, VENDORS[g.vendor].0, g.id
            );
            EventTopic::parse(&plan.topic_prefix, &topic)
                .map_err(|e| SimError::Plan(e.to_string()))?;
        }
        Ok(Self {
            rng,
            plan,
            months,
            vendors: [
                VendorId::parse(VENDORS[0].0)?,
                VendorId::parse(VENDORS[1].0)?,
            ],
            gateways,
            gateways_of,
            devices: Vec::new(),
            raws: Vec::new(),
            next_device: [0; 2],
            next_alarm: [0; 2],
            next_recipient: vec![0; n],
            transition,
        })
    }

    fn sim_start(&self) -> DateTime<Utc> {
        self.months[0].start()
    }

    fn sim_end(&self) -> DateTime<Utc> {
        self.months[self.months.len() - 1].end_exclusive()
    }

    /// First month index of the vendor transition, if the table is long enough for one.
    fn transition_start(&self) -> Option<usize> {
        (self.months.len() > TRANSITION_SHARES.len())
            .then(|| self.months.len() - TRANSITION_SHARES.len())
    }

    fn vendor_for(&self, municipality: usize, month: usize) -> usize {
        match self.transition_start() {
            Some(s) if self.transition[municipality] && month >= s => ATEA,
            _ => HEPRO,
        }
    }

    fn new_recipient(&mut self, municipality: usize) -> Result<RecipientRef, SimError> {
        self.next_recipient[municipality] += 1;
        let code = &self.plan.municipalities[municipality].code;
        Ok(RecipientRef::parse(&format!(
            "r-{code}-{:04}",
            self.next_recipient[municipality]
        ))?)
    }

    #[allow(clippy::too_many_arguments)] // one call site per way a device comes into being
    fn new_device(
        &mut self,
        vendor: usize,
        municipality: usize,
        kind: TechnologyKind,
        recipient: RecipientRef,
        gateway: Option<usize>,
        installed: DateTime<Utc>,
        replaces: Option<DeviceId>,
        battery: f64,
    ) -> Result<usize, SimError> {
        self.next_device[vendor] += 1;
        let code = match kind {
            TechnologyKind::MedicationSupport => "MS",
            TechnologyKind::DigitalSupervision => "DS",
            TechnologyKind::Tracking => "TR",
            TechnologyKind::SafetyAlarm => "SA",
            TechnologyKind::SmokeDetector => "SD",
            TechnologyKind::DoorLockAlarm => "DL",
        };
        let id = DeviceId::parse(&format!(
            "{}-{code}-{:06}",
            VENDORS[vendor].1, self.next_device[vendor]
        ))?;
        let gateway = match gateway.filter(|g| self.gateways[*g].vendor == vendor) {
            Some(g) => g,
            None => {
                let list = &self.gateways_of[vendor][municipality];
                list[self.rng.random_range(0..list.len())]
            }
        };
        self.devices.push(Device {
            vendor,
            gateway,
            id,
            municipality,
            kind,
            recipient,
            installed,
            decommissioned: None,
            replaces,
            battery,
            silent: false,
        });
        Ok(self.devices.len() - 1)
    }

    fn push(&mut self, device: usize, ts: DateTime<Utc>, event_type: EventType) -> &mut Raw {
        let utc = self.gateways[self.devices[device].gateway].utc || self.rng.random_bool(0.05);
        self.raws.push(Raw {
            ts,
            device,
            event_type,
            utc,
            battery: None,
            alarm: None,
            cause: None,
            outcome: None,
        });
        let last = self.raws.len() - 1;
        &mut self.raws[last]
    }

    /// A lifecycle event; those near a month boundary are written in UTC half of the time,
    /// so a reader that takes the UTC date as the month gets them wrong.
    fn push_lifecycle(
        &mut self,
        device: usize,
        ts: DateTime<Utc>,
        installed: bool,
        boundary: bool,
    ) {
        let event_type = if installed {
            self.devices[device].installed = ts;
            EventType::Installed
        } else {
            self.devices[device].decommissioned = Some(ts);
            EventType::Decommissioned
        };
        let utc = boundary && self.rng.random_bool(0.5);
        let raw = self.push(device, ts, event_type);
        raw.utc |= utc;
    }

    /// A lifecycle time inside month `m`, leaving `room` before its end for a follow-up
    /// event. Mostly working hours; some just before midnight on the last day or just after
    /// midnight on the first (which is the previous day in UTC). Returns (time, near boundary).
    fn time_in_month(&mut self, m: YearMonth, room: Duration) -> (DateTime<Utc>, bool) {
        let start = m.start();
        let end = m.end_exclusive() - room;
        let r: f64 = self.rng.random();
        if r < BOUNDARY_SHARE / 2.0 {
            let t = end - Duration::seconds(self.rng.random_range(1..3600));
            return (t.max(start), true);
        }
        if r < BOUNDARY_SHARE {
            let t = start + Duration::seconds(self.rng.random_range(0..7200));
            return (t.min(end - Duration::seconds(1)), true);
        }
        let first = NaiveDate::from_ymd_opt(m.year(), m.month(), 1).unwrap_or_default();
        let days = (m.end_exclusive() - start).num_days().max(1);
        let day = first + Duration::days(self.rng.random_range(0..days));
        let local = day.and_hms_opt(8, 0, 0).unwrap_or_default()
            + Duration::seconds(self.rng.random_range(0..8 * 3600));
        let t = Oslo
            .from_local_datetime(&local)
            .earliest()
            .map_or(start, |t| t.with_timezone(&Utc));
        (t.clamp(start, end - Duration::seconds(1)), false)
    }

    /// Lifecycles of every (municipality, kind): a fleet installed in the year before the
    /// table so the first month's target is met, then per month the net change plus churn,
    /// replacements and, at the end, the vendor transition.
    fn lifecycles(&mut self, table: &DeviceTable) -> Result<(), SimError> {
        let plan: &'p Plan = self.plan;
        let muni = &plan.municipalities;
        // targets[month][kind][municipality]
        let targets: Vec<Vec<Vec<u64>>> = (0..self.months.len())
            .map(|i| {
                TechnologyKind::ALL
                    .iter()
                    .map(|k| split_by_population(table.cell(*k, i).unwrap_or(0), muni))
                    .collect()
            })
            .collect();
        for m in 0..muni.len() {
            for kind in TechnologyKind::ALL {
                let series: Vec<u64> = targets.iter().map(|t| t[kind.index()][m]).collect();
                self.one_fleet(m, kind, &series)?;
            }
        }
        Ok(())
    }

    fn one_fleet(
        &mut self,
        m: usize,
        kind: TechnologyKind,
        targets: &[u64],
    ) -> Result<(), SimError> {
        let first = self.months[0];
        let year_before = YearMonth::new(first.year() - 1, first.month())
            .map_err(|e| SimError::Plan(e.to_string()))?
            .start();
        let span = (first.start() - year_before).num_seconds().max(1);
        let mut active: Vec<usize> = Vec::new();
        for _ in 0..targets[0] {
            let t = year_before + Duration::seconds(self.rng.random_range(0..span));
            let recipient = self.new_recipient(m)?;
            let battery = self.rng.random_range(40.0..100.0);
            let d = self.new_device(HEPRO, m, kind, recipient, None, t, None, battery)?;
            self.push_lifecycle(d, t, true, false);
            active.push(d);
        }

        for (i, &target) in targets.iter().enumerate() {
            let month = self.months[i];
            let current = active.len() as u64;
            let churn_rate = self.rng.random_range(CHURN.0..CHURN.1);
            let churn = probabilistic_round(&mut self.rng, current as f64 * churn_rate)
                .min(current.min(target));
            let leaving = churn + current.saturating_sub(target);
            let arriving = churn + target.saturating_sub(current);
            let replaced = probabilistic_round(&mut self.rng, churn as f64 * REPLACED_SHARE);

            active.shuffle(&mut self.rng);
            let gone: Vec<usize> = active.drain(..leaving as usize).collect();
            let mut new = Vec::new();
            for (j, &old) in gone.iter().enumerate() {
                let is_replaced = (j as u64) < replaced;
                let room = if is_replaced {
                    Duration::hours(4)
                } else {
                    Duration::zero()
                };
                let (t, boundary) = self.time_in_month(month, room);
                self.push_lifecycle(old, t, false, boundary);
                if is_replaced {
                    // A failing unit: it reports a fault shortly before it is swapped.
                    let fault = t - Duration::seconds(self.rng.random_range(3600..3 * DAY_SECS));
                    if fault > self.devices[old].installed && fault >= self.sim_start() {
                        self.push(old, fault, EventType::Fault);
                    }
                    let vendor = self.vendor_for(m, i);
                    let o = &self.devices[old];
                    let (recipient, gateway) = (o.recipient.clone(), o.gateway);
                    // `replaces` only within one vendor: device ids are per vendor.
                    let replaces = (o.vendor == vendor).then(|| o.id.clone());
                    let at = t + Duration::seconds(self.rng.random_range(600..3 * 3600));
                    let d = self.new_device(
                        vendor,
                        m,
                        kind,
                        recipient,
                        Some(gateway),
                        at,
                        replaces,
                        100.0,
                    )?;
                    self.push_lifecycle(d, at, true, false);
                    new.push(d);
                }
            }
            for _ in replaced..arriving {
                let (t, boundary) = self.time_in_month(month, Duration::zero());
                let vendor = self.vendor_for(m, i);
                let recipient = self.new_recipient(m)?;
                let d = self.new_device(vendor, m, kind, recipient, None, t, None, 100.0)?;
                self.push_lifecycle(d, t, true, boundary);
                new.push(d);
            }
            if let Some(start) = self
                .transition_start()
                .filter(|s| i >= *s && self.transition[m])
            {
                self.migrate(
                    m,
                    kind,
                    i,
                    TRANSITION_SHARES[i - start],
                    &mut active,
                    &mut new,
                )?;
            }
            active.extend(new);
        }
        Ok(())
    }

    /// Overlaps between the vendors, as a transition has them: a few recipients get their Atea
    /// unit while their Hepro unit stays in service. They are made from Atea units installed
    /// for new recipients during the transition, by giving each the recipient of a Hepro unit
    /// of the same municipality and type that stays in service to the end. A device is a device:
    /// no month-end count changes, only whom the unit serves. [`DOUBLES`] of them got their Atea
    /// unit well before the last month (on both longer than any grace period: paid twice),
    /// [`MOVES_UNDER_WAY`] in the last weeks (an ordinary move, the old unit not yet
    /// collected). Uses its own random numbers, so the rest of the region is unchanged.
    fn overlaps(&mut self) {
        let Some(start) = self.transition_start() else {
            return;
        };
        let mut rng = StdRng::seed_from_u64(self.plan.seed ^ 0x0b1e_d0b1e);
        let first = self.months[start].start();
        let end = self.sim_end();
        let mut per_recipient: BTreeMap<RecipientRef, usize> = BTreeMap::new();
        for d in &self.devices {
            *per_recipient.entry(d.recipient.clone()).or_default() += 1;
        }
        // A unit that stays in service to the end and is its recipient's only unit ever.
        let lone = |d: &Device| d.decommissioned.is_none() && per_recipient[&d.recipient] == 1;
        let municipalities: Vec<usize> = (0..self.transition.len())
            .filter(|m| self.transition[*m])
            .collect();
        let prefer = [
            TechnologyKind::SafetyAlarm,
            TechnologyKind::SmokeDetector,
            TechnologyKind::MedicationSupport,
            TechnologyKind::Tracking,
            TechnologyKind::DigitalSupervision,
            TechnologyKind::DoorLockAlarm,
        ];
        // (installed from, installed before) of the Atea unit.
        let double = (first, end - Duration::days(40));
        let under_way = (end - Duration::days(20), end - Duration::days(2));
        let wanted = std::iter::repeat_n(double, DOUBLES)
            .chain(std::iter::repeat_n(under_way, MOVES_UNDER_WAY));
        let mut taken = vec![false; self.devices.len()];
        for (n, (from, before)) in wanted.enumerate() {
            if municipalities.is_empty() {
                return;
            }
            // Spread over the transition municipalities.
            let m = municipalities[n % municipalities.len()];
            let pair = prefer.iter().find_map(|&kind| {
                let of = |vendor: usize| {
                    let taken = &taken;
                    self.devices.iter().enumerate().filter(move |(i, d)| {
                        !taken[*i]
                            && d.vendor == vendor
                            && d.municipality == m
                            && d.kind == kind
                            && lone(d)
                    })
                };
                let atea: Vec<usize> = of(ATEA)
                    .filter(|(_, d)| d.replaces.is_none() && d.installed >= from)
                    .filter(|(_, d)| d.installed < before)
                    .map(|(i, _)| i)
                    .collect();
                let a = *atea.choose(&mut rng)?;
                let installed = self.devices[a].installed;
                let hepro: Vec<usize> = of(HEPRO)
                    .filter(|(_, d)| d.installed < installed)
                    .map(|(i, _)| i)
                    .collect();
                Some((a, *hepro.choose(&mut rng)?))
            });
            if let Some((a, h)) = pair {
                taken[a] = true;
                taken[h] = true;
                self.devices[a].recipient = self.devices[h].recipient.clone();
            }
        }
    }

    /// Moves a share of the municipality's Hepro devices to Atea within month `i`: the Hepro
    /// unit is decommissioned and an Atea unit (new id, same recipient) installed moments
    /// later, so the month's count does not change.
    fn migrate(
        &mut self,
        m: usize,
        kind: TechnologyKind,
        i: usize,
        share: f64,
        active: &mut Vec<usize>,
        new: &mut Vec<usize>,
    ) -> Result<(), SimError> {
        let (hepro, other): (Vec<usize>, Vec<usize>) = active
            .iter()
            .partition(|d| self.devices[**d].vendor == HEPRO);
        let moving = probabilistic_round(&mut self.rng, hepro.len() as f64 * share) as usize;
        *active = other;
        for (j, old) in hepro.into_iter().enumerate() {
            if j >= moving {
                active.push(old);
                continue;
            }
            let (t, boundary) = self.time_in_month(self.months[i], Duration::minutes(5));
            self.push_lifecycle(old, t, false, boundary);
            let recipient = self.devices[old].recipient.clone();
            let battery = self.devices[old].battery.max(60.0);
            let at = t + Duration::seconds(self.rng.random_range(5..180));
            let d = self.new_device(ATEA, m, kind, recipient, None, at, None, battery)?;
            self.push_lifecycle(d, at, true, boundary);
            new.push(d);
        }
        Ok(())
    }

    /// Heartbeats with battery levels, battery warnings, faults, alarms with their
    /// response-centre events, and medication doses, while each device is in service.
    fn status_traffic(&mut self, heartbeat_every_days: u32) {
        let (start, end) = (self.sim_start(), self.sim_end());
        let silent_window = Duration::days(60).min(end - start);
        for d in 0..self.devices.len() {
            let dev = &self.devices[d];
            let from = dev.installed.max(start);
            let mut to = dev.decommissioned.unwrap_or(end).min(end);
            if self.rng.random_bool(SILENT_SHARE) {
                let secs = silent_window.num_seconds().max(1);
                to = to.min(end - Duration::seconds(self.rng.random_range(0..secs)));
                self.devices[d].silent = true;
            }
            if from >= to {
                continue;
            }
            if heartbeat_every_days > 0 {
                self.heartbeats(d, from, to, Duration::days(i64::from(heartbeat_every_days)));
            }
            self.activity(d, from, to);
        }
    }

    /// After the table's end until `until`: the same kinds of traffic from every device still
    /// in service and not silent, from a random stream of its own, so the table's months are
    /// generated exactly as without it.
    fn live_traffic(&mut self, until: DateTime<Utc>, heartbeat_every_days: u32) {
        let end = self.sim_end();
        if until <= end {
            return;
        }
        let table_rng = std::mem::replace(
            &mut self.rng,
            StdRng::seed_from_u64(self.plan.seed ^ LIVE_SEED),
        );
        for d in 0..self.devices.len() {
            let dev = &self.devices[d];
            if dev.silent || dev.decommissioned.is_some_and(|t| t <= end) || dev.installed >= end {
                continue;
            }
            if heartbeat_every_days > 0 {
                self.heartbeats(
                    d,
                    end,
                    until,
                    Duration::days(i64::from(heartbeat_every_days)),
                );
            }
            self.activity(d, end, until);
        }
        self.rng = table_rng;
    }

    /// Alarms with their response-centre events, faults and doses of device `d` in
    /// `[from, to)`.
    fn activity(&mut self, d: usize, from: DateTime<Utc>, to: DateTime<Utc>) {
        {
            let kind = self.devices[d].kind;
            let (alarms_per_month, causes): (f64, &[(Cause, u32)]) = match kind {
                TechnologyKind::SafetyAlarm => (0.3, &[(Cause::Button, 80), (Cause::Fall, 20)]),
                TechnologyKind::DigitalSupervision => {
                    (0.2, &[(Cause::Fall, 70), (Cause::Other, 30)])
                }
                TechnologyKind::Tracking => (0.15, &[(Cause::Geofence, 1)]),
                TechnologyKind::DoorLockAlarm => (0.1, &[(Cause::Door, 1)]),
                TechnologyKind::SmokeDetector => (0.04, &[(Cause::Smoke, 1)]),
                TechnologyKind::MedicationSupport => (0.0, &[]),
            };
            let mut t = from;
            // An alarm's follow-ups (up to about an hour) stay within the device's service.
            let last_alarm = to - Duration::hours(1);
            while let Some(next) = self
                .poisson_next(t, alarms_per_month)
                .filter(|n| *n < last_alarm)
            {
                let cause = weighted(&mut self.rng, causes);
                self.alarm(d, next, cause);
                t = next;
            }
            let mut t = from;
            while let Some(next) = self.poisson_next(t, FAULTS_PER_MONTH).filter(|n| *n < to) {
                self.push(d, next, EventType::Fault);
                t = next;
            }
            if kind == TechnologyKind::MedicationSupport {
                self.doses(d, from, to);
            }
        }
    }

    fn poisson_next(&mut self, t: DateTime<Utc>, per_month: f64) -> Option<DateTime<Utc>> {
        if per_month <= 0.0 {
            return None;
        }
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        let secs = -u.ln() * MONTH_SECS / per_month;
        Some(t + Duration::seconds(secs as i64 + 1))
    }

    fn heartbeats(&mut self, d: usize, from: DateTime<Utc>, to: DateTime<Utc>, every: Duration) {
        let drain_per_day = self.rng.random_range(0.1..0.45);
        let mut level = self.devices[d].battery;
        let mut low_since: Option<DateTime<Utc>> = None;
        let mut swap_at = to;
        let mut last = from;
        let mut t = from + Duration::seconds(self.rng.random_range(0..every.num_seconds().max(1)));
        while t < to {
            if low_since.is_some() && t >= swap_at {
                level = 100.0;
                low_since = None;
            }
            level = (level - drain_per_day * (t - last).num_seconds() as f64 / DAY_SECS as f64)
                .max(1.0);
            last = t;
            let battery = level.round() as u8;
            self.push(d, t, EventType::Heartbeat).battery = Some(battery);
            if level < 15.0 && low_since.is_none() {
                low_since = Some(t);
                swap_at = t + Duration::days(self.rng.random_range(2..20));
                self.push(d, t + Duration::seconds(2), EventType::BatteryLow)
                    .battery = Some(battery);
            }
            let jitter = self.rng.random_range(-1200..1200);
            t += every + Duration::seconds(jitter);
        }
    }

    fn alarm(&mut self, d: usize, t: DateTime<Utc>, cause: Cause) {
        let vendor = self.devices[d].vendor;
        self.next_alarm[vendor] += 1;
        let alarm = Some(self.next_alarm[vendor]);
        let ms = |n: i64| Duration::milliseconds(n);
        let t = t + ms(self.rng.random_range(0..1000));
        let raw = self.push(d, t, EventType::Alarm);
        (raw.alarm, raw.cause) = (alarm, Some(cause));
        let received = t + ms(self.rng.random_range(700..2500));
        self.push(d, received, EventType::AlarmReceived).alarm = alarm;
        // Response time: mostly within the 60 s standard, a tail up to five minutes, and a
        // few alarms nobody answers (closed as no contact).
        let p: f64 = self.rng.random();
        let answered = if p < 0.005 {
            None
        } else if p < 0.012 {
            Some(self.rng.random_range(180_000..300_000))
        } else if p < 0.035 {
            Some(self.rng.random_range(60_000..180_000))
        } else {
            let u: f64 = self.rng.random();
            Some(8_000 + (50_000.0 * u.powf(1.5)) as i64)
        };
        let (closed, outcome) = match answered {
            Some(after) => {
                let ack = t + ms(after);
                self.push(d, ack, EventType::AlarmAcknowledged).alarm = alarm;
                let outcome = weighted(&mut self.rng, outcomes(cause));
                (ack + ms(self.rng.random_range(60_000..2_400_000)), outcome)
            }
            None => (
                t + ms(self.rng.random_range(900_000..1_800_000)),
                Outcome::NoContact,
            ),
        };
        let raw = self.push(d, closed, EventType::AlarmClosed);
        (raw.alarm, raw.outcome) = (alarm, Some(outcome));
    }

    fn doses(&mut self, d: usize, from: DateTime<Utc>, to: DateTime<Utc>) {
        let mut t = from + Duration::seconds(self.rng.random_range(0..2 * DAY_SECS));
        while t < to {
            if self.rng.random_bool(0.95) {
                self.push(d, t, EventType::DoseTaken);
            } else {
                self.push(d, t, EventType::DoseMissed);
                // Some missed doses make the dispenser call the response centre.
                if self.rng.random_bool(0.3) {
                    self.alarm(d, t + Duration::minutes(30), Cause::DoseMissed);
                }
            }
            t += Duration::seconds(self.rng.random_range(2 * DAY_SECS..4 * DAY_SECS));
        }
    }

    /// The canonical events in time order (ids per vendor follow it), and each one's gateway.
    fn events(&mut self) -> Result<(Vec<Event>, Vec<usize>), SimError> {
        let mut raws = std::mem::take(&mut self.raws);
        raws.sort_by_key(|r| (r.ts, r.device));
        let mut next_id = [0u64; 2];
        // Units another unit replaces leave service as `replaced`.
        let replaced: std::collections::HashSet<(usize, &DeviceId)> = self
            .devices
            .iter()
            .filter_map(|d| d.replaces.as_ref().map(|r| (d.vendor, r)))
            .collect();
        let mut events = Vec::with_capacity(raws.len());
        let mut gateway_of = Vec::with_capacity(raws.len());
        for r in raws {
            let dev = &self.devices[r.device];
            next_id[dev.vendor] += 1;
            let lifecycle = r.event_type.lifecycle_rank().is_some();
            let installed = r.event_type == EventType::Installed;
            let ts = if r.utc {
                r.ts.fixed_offset()
            } else {
                r.ts.with_timezone(&Oslo).fixed_offset()
            };
            events.push(Event {
                vendor: self.vendors[dev.vendor].clone(),
                gateway: self.gateways[dev.gateway].id.clone(),
                id: EventId::parse(&format!("sim-{}", next_id[dev.vendor]))?,
                ts,
                municipality: self.plan.municipalities[dev.municipality].code.clone(),
                device: dev.id.clone(),
                event_type: r.event_type,
                kind: installed.then_some(dev.kind),
                battery: r.battery,
                alarm: r
                    .alarm
                    .map(|n| {
                        vft_domain::AlarmRef::parse(&format!("{}-alarm-{n}", VENDORS[dev.vendor].0))
                    })
                    .transpose()?,
                cause: r.cause,
                outcome: r.outcome,
                recipient: lifecycle.then(|| dev.recipient.clone()),
                replaces: if installed {
                    dev.replaces.clone()
                } else {
                    None
                },
                reason: (r.event_type == EventType::Decommissioned)
                    .then(|| {
                        if replaced.contains(&(dev.vendor, &dev.id)) {
                            Some(vft_domain::DecommissionReason::Replaced)
                        } else {
                            removal_reason(dev.id.as_str())
                        }
                    })
                    .flatten(),
            });
            gateway_of.push(dev.gateway);
        }
        Ok((events, gateway_of))
    }

    /// Batches per gateway, ordered by their first event but shuffled among neighbours so
    /// arrival order is not time order.
    fn messages(
        &mut self,
        events: &[Event],
        gateway_of: &[usize],
        plan: &Plan,
    ) -> Result<Vec<Message>, SimError> {
        let mut per_gateway: BTreeMap<usize, Vec<&Event>> = BTreeMap::new();
        for (e, g) in events.iter().zip(gateway_of) {
            per_gateway.entry(*g).or_default().push(e);
        }
        let mut batches: Vec<(DateTime<Utc>, usize, Message)> = Vec::new();
        for (g, list) in per_gateway {
            let gw = &self.gateways[g];
            let topic = format!(
                "{}/{}/{}/events",
                plan.topic_prefix, VENDORS[gw.vendor].0, gw.id
            );
            for chunk in list.chunks(plan.max_events_per_message) {
                let values: Vec<serde_json::Value> = chunk.iter().map(|e| wire_json(e)).collect();
                let payload = serde_json::to_vec(&values)?;
                let message = Message {
                    topic: topic.clone(),
                    payload,
                    events: chunk.len(),
                };
                batches.push((chunk[0].ts_utc(), g, message));
            }
        }
        batches.sort_by_key(|(ts, g, _)| (*ts, *g));
        let mut messages: Vec<Message> = batches.into_iter().map(|(_, _, m)| m).collect();
        for window in messages.chunks_mut(4) {
            window.shuffle(&mut self.rng);
        }
        Ok(messages)
    }
}

/// `Event::to_json` with UTC times written as `Z`, as many devices do.
fn wire_json(e: &Event) -> serde_json::Value {
    let mut v = e.to_json();
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "ts".into(),
            e.ts.to_rfc3339_opts(SecondsFormat::AutoSi, true).into(),
        );
    }
    v
}

fn outcomes(cause: Cause) -> &'static [(Outcome, u32)] {
    use Outcome::*;
    match cause {
        Cause::Smoke => &[
            (FalseAlarm, 70),
            (ResolvedRemotely, 15),
            (HelpDispatched, 10),
            (EmergencyServices, 5),
        ],
        Cause::Fall => &[
            (HelpDispatched, 55),
            (ResolvedRemotely, 25),
            (FalseAlarm, 15),
            (EmergencyServices, 5),
        ],
        Cause::Geofence => &[
            (ResolvedRemotely, 45),
            (HelpDispatched, 40),
            (FalseAlarm, 15),
        ],
        Cause::Door => &[
            (FalseAlarm, 50),
            (ResolvedRemotely, 35),
            (HelpDispatched, 15),
        ],
        Cause::DoseMissed => &[
            (ResolvedRemotely, 60),
            (HelpDispatched, 30),
            (FalseAlarm, 10),
        ],
        _ => &[
            (FalseAlarm, 40),
            (ResolvedRemotely, 35),
            (HelpDispatched, 22),
            (EmergencyServices, 3),
        ],
    }
}

fn weighted<T: Copy>(rng: &mut StdRng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total.max(1));
    for (item, w) in items {
        if pick < *w {
            return *item;
        }
        pick -= w;
    }
    items[items.len() - 1].0
}

/// Rounds up with probability equal to the fraction, so small fleets still see churn.
fn probabilistic_round(rng: &mut StdRng, x: f64) -> u64 {
    let floor = x.floor();
    floor as u64 + u64::from(rng.random_bool((x - floor).clamp(0.0, 1.0)))
}

/// Why a simulated unit left service: from its id (so the random stream, and with it every
/// figure of the simulation, stays as it was), in shares like a municipality's: most leave
/// because the recipient died or moved to an institution; a few say no reason.
fn removal_reason(device: &str) -> Option<vft_domain::DecommissionReason> {
    use vft_domain::DecommissionReason::*;
    // FNV-1a: stable across Rust versions, unlike the standard hasher.
    let hash = device.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Some(match hash % 100 {
        0..35 => Deceased,
        35..65 => MovedToInstitution,
        65..80 => NoLongerNeeded,
        80..88 => Returned,
        88..93 => Broken,
        93..95 => Lost,
        95..97 => Other,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vft_domain::MunicipalityCode;

    fn muni(code: &str, population: u32) -> Municipality {
        Municipality {
            code: MunicipalityCode::parse(code).expect("code"),
            name: code.into(),
            population,
        }
    }

    #[test]
    fn largest_remainder_split_sums_exactly_and_breaks_ties_deterministically() {
        let list = [muni("3320", 1), muni("3322", 1), muni("3324", 2)];
        assert_eq!(split_by_population(5, &list), vec![1, 1, 3]);
        assert_eq!(split_by_population(1, &list), vec![0, 0, 1]);
        assert_eq!(
            split_by_population(2, &list),
            vec![1, 0, 1],
            "earlier municipality wins a tie"
        );
        let none = [muni("3320", 0), muni("3322", 0)];
        assert_eq!(split_by_population(3, &none), vec![2, 1]);
        let hallingdal = crate::embedded_municipalities();
        for total in 0..700 {
            assert_eq!(
                split_by_population(total, &hallingdal).iter().sum::<u64>(),
                total
            );
        }
    }
}
