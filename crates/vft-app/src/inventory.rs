//! The device inventory as the API and the command line show it: a list's query parsed from
//! strings (filters, sorting, cursor paging), the device view and its CSV, one device, and a
//! device's own offline timeout.

use crate::AppError;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vft_domain::{Connectivity, DeviceId, MunicipalityCode, Registry, TechnologyKind, VendorId};
use vft_store::{DeviceCursor, DeviceQuery, DeviceRecord, DeviceSort, SortValue, Store, Timeouts};

/// Query parameters of a device list, as strings: parsed here so the API and the CLI agree.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceParams {
    pub municipality: Option<String>,
    pub kind: Option<String>,
    pub vendor: Option<String>,
    /// online | offline | never_seen
    pub connectivity: Option<String>,
    pub battery_below: Option<String>,
    /// Date (YYYY-MM-DD, Europe/Oslo) or RFC 3339 instant.
    pub installed_before: Option<String>,
    pub installed_after: Option<String>,
    pub in_service: Option<String>,
    /// Substring of the device id, case-insensitive.
    pub q: Option<String>,
    /// device | installed | municipality | kind
    pub sort: Option<String>,
    /// asc | desc
    pub order: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
    /// json | csv
    pub format: Option<String>,
}

fn bad(what: &str, got: &str, expected: &str) -> AppError {
    AppError::Invalid(format!(
        "{what} must be {expected}, got {:?}",
        got.chars().take(64).collect::<String>()
    ))
}

/// An RFC 3339 instant, or a date meaning its first instant in Europe/Oslo.
fn instant(what: &str, s: &str) -> Result<DateTime<Utc>, AppError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| bad(what, s, "a date (YYYY-MM-DD) or RFC 3339 time"))?;
    Ok(vft_domain::month::oslo_midnight(date))
}

impl DeviceParams {
    /// Builds the store query. `scope` is the caller's own municipality, if it has one.
    pub fn to_query(
        &self,
        scope: Option<&MunicipalityCode>,
        registry: &Registry,
        now: DateTime<Utc>,
        timeouts: Timeouts,
    ) -> Result<DeviceQuery, AppError> {
        let mut q = DeviceQuery::new(now, timeouts);
        let asked = self
            .municipality
            .as_deref()
            .map(|m| {
                let code =
                    MunicipalityCode::parse(m).map_err(|e| AppError::Invalid(e.to_string()))?;
                if registry.contains(&code) {
                    Ok(code)
                } else {
                    Err(AppError::Invalid(format!("unknown municipality {code}")))
                }
            })
            .transpose()?;
        q.municipalities = match (scope, asked) {
            (Some(own), Some(asked)) if *own != asked => {
                return Err(AppError::Forbidden(format!(
                    "this token may see municipality {own} only, not {asked}"
                )));
            }
            (Some(own), _) => Some(vec![own.clone()]),
            (None, asked) => asked.map(|m| vec![m]),
        };
        // The caller's own municipality: each device as its own events show it (a device that
        // moved in shows its first install here, not the one where it came from).
        q.own = scope.cloned();
        if let Some(k) = &self.kind {
            q.kind = Some(
                TechnologyKind::from_id(k).ok_or_else(|| bad("kind", k, "a technology type id"))?,
            );
        }
        if let Some(v) = &self.vendor {
            q.vendor = Some(VendorId::parse(v).map_err(|e| AppError::Invalid(e.to_string()))?);
        }
        if let Some(c) = &self.connectivity {
            q.connectivity = Some(
                Connectivity::from_id(c)
                    .ok_or_else(|| bad("connectivity", c, "online, offline or never_seen"))?,
            );
        }
        if let Some(b) = &self.battery_below {
            q.battery_below = Some(
                b.parse::<u8>()
                    .ok()
                    .filter(|b| *b <= 101)
                    .ok_or_else(|| bad("battery_below", b, "0-101"))?,
            );
        }
        if let Some(t) = &self.installed_before {
            q.installed_before = Some(instant("installed_before", t)?);
        }
        if let Some(t) = &self.installed_after {
            q.installed_after = Some(instant("installed_after", t)?);
        }
        if let Some(s) = &self.in_service {
            q.in_service = Some(match s.as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(bad("in_service", s, "true or false")),
            });
        }
        q.search = self
            .q
            .clone()
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(64).collect());
        q.sort = match self.sort.as_deref() {
            None | Some("device") => DeviceSort::Device,
            Some("installed") => DeviceSort::Installed,
            Some("municipality") => DeviceSort::Municipality,
            Some("kind") => DeviceSort::Kind,
            Some(other) => {
                return Err(bad(
                    "sort",
                    other,
                    "device, installed, municipality or kind",
                ));
            }
        };
        q.descending = match self.order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => return Err(bad("order", other, "asc or desc")),
        };
        q.limit = match &self.limit {
            None => 100,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|l| (1..=1000).contains(l))
                .ok_or_else(|| bad("limit", l, "1-1000"))?,
        };
        if let Some(c) = &self.cursor {
            q.after = Some(decode_cursor(c, q.sort, q.descending)?);
        }
        Ok(q)
    }
}

#[derive(Serialize, Deserialize)]
struct CursorWire {
    sort: String,
    desc: bool,
    int: Option<i64>,
    text: Option<String>,
    vendor: String,
    device: String,
}

fn sort_name(s: DeviceSort) -> &'static str {
    match s {
        DeviceSort::Device => "device",
        DeviceSort::Installed => "installed",
        DeviceSort::Municipality => "municipality",
        DeviceSort::Kind => "kind",
    }
}

/// Opaque to clients; carries its sort so a cursor is never used with another order.
pub fn encode_cursor(sort: DeviceSort, desc: bool, c: &DeviceCursor) -> String {
    let (int, text) = match &c.sort_value {
        SortValue::Int(i) => (Some(*i), None),
        SortValue::Text(t) => (None, Some(t.clone())),
    };
    let wire = CursorWire {
        sort: sort_name(sort).into(),
        desc,
        int,
        text,
        vendor: c.vendor.to_string(),
        device: c.device.to_string(),
    };
    hex::encode(serde_json::to_vec(&wire).unwrap_or_default())
}

fn decode_cursor(s: &str, sort: DeviceSort, desc: bool) -> Result<DeviceCursor, AppError> {
    let invalid = || {
        AppError::Invalid(
            "invalid cursor: pass next_cursor from the previous page unchanged".into(),
        )
    };
    let bytes = hex::decode(s).map_err(|_| invalid())?;
    let wire: CursorWire = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if wire.sort != sort_name(sort) || wire.desc != desc {
        return Err(AppError::Invalid(
            "the cursor belongs to another sort order".into(),
        ));
    }
    let sort_value = match (wire.int, wire.text) {
        (Some(i), None) => SortValue::Int(i),
        (None, Some(t)) => SortValue::Text(t),
        _ => return Err(invalid()),
    };
    Ok(DeviceCursor {
        sort_value,
        vendor: VendorId::parse(&wire.vendor).map_err(|_| invalid())?,
        device: DeviceId::parse(&wire.device).map_err(|_| invalid())?,
    })
}

/// A device as the API and CLI show it. Every field is present; unknown values are `null`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceView {
    pub vendor: String,
    pub device: String,
    #[schema(value_type = Option<crate::schema::Kind>, required = true)]
    pub kind: Option<TechnologyKind>,
    pub municipality: String,
    #[schema(required = true)]
    pub gateway: Option<String>,
    pub in_service: bool,
    /// online, offline or never_seen
    #[schema(value_type = String)]
    pub connectivity: Connectivity,
    #[schema(required = true)]
    pub last_contact: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub battery: Option<u8>,
    #[schema(required = true)]
    pub battery_at: Option<DateTime<Utc>>,
    pub fault_open: bool,
    #[schema(required = true)]
    pub first_installed: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub lifecycle_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub recipient: Option<String>,
    #[schema(required = true)]
    pub replaces: Option<String>,
    /// The offline timeout in force: the device's own, else its type's.
    pub timeout_secs: u64,
    /// The device's own timeout, if set.
    #[schema(required = true)]
    pub timeout_override_secs: Option<u64>,
}

impl DeviceView {
    pub fn new(r: &DeviceRecord, timeouts: &Timeouts) -> Self {
        let type_timeout = r
            .kind
            .map_or(timeouts.unknown_kind, |k| timeouts.per_kind[k.index()]);
        Self {
            vendor: r.vendor.to_string(),
            device: r.device.to_string(),
            kind: r.kind,
            municipality: r.municipality.to_string(),
            gateway: r.gateway.clone(),
            in_service: r.in_service,
            connectivity: r.connectivity,
            last_contact: r.last_contact,
            battery: r.battery,
            battery_at: r.battery_at,
            fault_open: r.fault_open,
            first_installed: r.first_installed,
            lifecycle_at: r.lifecycle_at,
            recipient: r.recipient.clone(),
            replaces: r.replaces.as_ref().map(ToString::to_string),
            timeout_secs: r.timeout_override_secs.unwrap_or(type_timeout),
            timeout_override_secs: r.timeout_override_secs,
        }
    }
}

/// The same rows as CSV, one line per device.
pub fn devices_csv(views: &[DeviceView]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "vendor",
        "device",
        "kind",
        "municipality",
        "gateway",
        "in_service",
        "connectivity",
        "last_contact",
        "battery",
        "fault_open",
        "first_installed",
        "recipient",
        "replaces",
        "timeout_secs",
    ]);
    let t = |t: &Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    for v in views {
        // Device ids, gateways and recipients are the senders' text: never a formula when a
        // spreadsheet opens the file.
        let cells = [
            v.vendor.clone(),
            v.device.clone(),
            v.kind.map(|k| k.id().to_owned()).unwrap_or_default(),
            v.municipality.clone(),
            v.gateway.clone().unwrap_or_default(),
            v.in_service.to_string(),
            v.connectivity.id().to_owned(),
            t(&v.last_contact),
            v.battery.map(|b| b.to_string()).unwrap_or_default(),
            v.fault_open.to_string(),
            t(&v.first_installed),
            v.recipient.clone().unwrap_or_default(),
            v.replaces.clone().unwrap_or_default(),
            v.timeout_secs.to_string(),
        ];
        let _ = w.write_record(
            cells
                .iter()
                .map(|c| vft_domain::spreadsheet_safe(c).into_owned()),
        );
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// One page of the inventory.
#[derive(Debug, Serialize, ToSchema)]
pub struct DevicePage {
    pub items: Vec<DeviceView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
    /// How many devices match the filters on every page together; on the first page only.
    pub total: Option<u64>,
}

/// One page of the devices `query` asks for, and the cursor of the next; the first page also
/// counts them all.
pub async fn page(
    store: &dyn Store,
    query: &DeviceQuery,
    timeouts: &Timeouts,
) -> Result<DevicePage, AppError> {
    let rows = store.devices(query).await?;
    // The first page counts them all (later pages leave it out: the count costs a query).
    let total = if query.after.is_none() {
        Some(store.count_devices(query).await?)
    } else {
        None
    };
    let next = (rows.len() == query.limit as usize)
        .then(|| {
            rows.last()
                .map(|r| encode_cursor(query.sort, query.descending, &r.cursor))
        })
        .flatten();
    let items = rows.iter().map(|r| DeviceView::new(r, timeouts)).collect();
    Ok(DevicePage {
        items,
        next_cursor: next,
        total,
    })
}

/// Every device `query` asks for, not one page: an export.
pub async fn export(
    store: &dyn Store,
    query: &DeviceQuery,
    timeouts: &Timeouts,
) -> Result<Vec<DeviceView>, AppError> {
    let mut query = query.clone();
    query.limit = 0;
    query.after = None;
    let rows = store.devices(&query).await?;
    Ok(rows.iter().map(|r| DeviceView::new(r, timeouts)).collect())
}

/// How an export of `query` names what it holds: its one municipality, or the region.
pub fn file_scope(query: &DeviceQuery) -> String {
    query
        .municipalities
        .as_deref()
        .filter(|m| m.len() == 1)
        .map_or_else(|| "region".to_owned(), |m| m[0].to_string())
}

/// A device by its vendor and id, as strings.
pub fn parse_key(vendor: &str, device: &str) -> Result<(VendorId, DeviceId), AppError> {
    Ok((
        VendorId::parse(vendor).map_err(|e| AppError::Invalid(e.to_string()))?,
        DeviceId::parse(device).map_err(|e| AppError::Invalid(e.to_string()))?,
    ))
}

/// The device, as `own` (a municipality user's municipality, if any) sees it: another
/// municipality's device is not there.
pub async fn visible_device(
    store: &dyn Store,
    timeouts: Timeouts,
    own: Option<&MunicipalityCode>,
    vendor: &VendorId,
    device: &DeviceId,
    now: DateTime<Utc>,
) -> Result<Option<DeviceRecord>, AppError> {
    let mut q = DeviceQuery::new(now, timeouts);
    q.device = Some((vendor.clone(), device.clone()));
    q.municipalities = own.map(|m| vec![m.clone()]);
    q.own = own.cloned();
    Ok(store.devices(&q).await?.into_iter().next())
}

/// One device as [`visible_device`] finds it, or `NotFound`.
pub async fn device(
    store: &dyn Store,
    timeouts: Timeouts,
    own: Option<&MunicipalityCode>,
    vendor: &VendorId,
    device: &DeviceId,
    now: DateTime<Utc>,
) -> Result<DeviceView, AppError> {
    let record = visible_device(store, timeouts, own, vendor, device, now)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no device {vendor}/{device}")))?;
    Ok(DeviceView::new(&record, &timeouts))
}

/// Longest offline timeout accepted: ten years. Larger values would overflow the stores'
/// microsecond arithmetic and mean "never offline", which is not a timeout.
pub const MAX_TIMEOUT_SECS: u64 = 10 * 365 * 24 * 3600;

/// Checks a device's own timeout, wherever it comes from (API or CLI).
pub fn check_timeout(secs: Option<u64>) -> Result<Option<u64>, AppError> {
    match secs {
        Some(s) if !(1..=MAX_TIMEOUT_SECS).contains(&s) => Err(AppError::Invalid(format!(
            "timeout_secs must be 1 to {MAX_TIMEOUT_SECS} seconds (or null), got {s}"
        ))),
        other => Ok(other),
    }
}

/// Sets a device's own offline timeout (`None`: back to its type's) and returns the device as
/// it is now. Checked first, then the device must be one `own` sees.
pub async fn set_timeout(
    store: &dyn Store,
    timeouts: Timeouts,
    own: Option<&MunicipalityCode>,
    vendor: &VendorId,
    device: &DeviceId,
    secs: Option<u64>,
    now: DateTime<Utc>,
) -> Result<DeviceView, AppError> {
    check_timeout(secs)?;
    let not_found = || AppError::NotFound(format!("no device {vendor}/{device}"));
    visible_device(store, timeouts, own, vendor, device, now)
        .await?
        .ok_or_else(not_found)?;
    store.set_device_timeout(vendor, device, secs).await?;
    let record = visible_device(store, timeouts, own, vendor, device, now)
        .await?
        .ok_or_else(not_found)?;
    Ok(DeviceView::new(&record, &timeouts))
}
