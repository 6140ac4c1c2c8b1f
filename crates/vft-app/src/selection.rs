//! What a figure is about: the months asked for (strings from a query or a flag, parsed here)
//! and which devices it counts (`Selection`).

use crate::AppError;
use chrono::{DateTime, Utc};
use vft_domain::attribution::Scope;
use vft_domain::membership::Cooperation;
use vft_domain::{MunicipalityCode, Registry, VendorId, YearMonth};
use vft_store::BreakdownRow;

fn bad(why: impl Into<String>) -> AppError {
    AppError::Invalid(why.into())
}

/// The required `month=YYYY-MM` of a figure about one month, which must have begun by `now`.
pub fn begun_month(month: Option<&str>, now: DateTime<Utc>) -> Result<YearMonth, AppError> {
    let month = parse_month(month.ok_or_else(|| bad("month=YYYY-MM is required"))?)?;
    if month.start() > now {
        return Err(bad(format!("{month} has not begun")));
    }
    Ok(month)
}

pub fn parse_month(s: &str) -> Result<YearMonth, AppError> {
    s.parse()
        .map_err(|e: vft_domain::month::MonthError| bad(e.to_string()))
}

/// `year=` (default: the year of `now`).
pub fn parse_year(year: Option<&str>, now: DateTime<Utc>) -> Result<i32, AppError> {
    match year {
        None => Ok(YearMonth::containing(now).year()),
        Some(y) => y
            .parse::<i32>()
            .ok()
            .filter(|y| (1970..=9999).contains(y))
            .ok_or_else(|| {
                bad(format!(
                    "year must be a year between 1970 and 9999, got {y:?}"
                ))
            }),
    }
}

/// The twelve months of `year=` (default: the year of `now`).
pub fn year_months(year: Option<&str>, now: DateTime<Utc>) -> Result<Vec<YearMonth>, AppError> {
    YearMonth::months_of_year(parse_year(year, now)?).map_err(|e| bad(e.to_string()))
}

/// Which devices a figure counts: one municipality and/or vendor, and/or the members of a
/// cooperation at the instant the figure is taken.
pub struct Selection {
    municipality: Option<MunicipalityCode>,
    vendor: Option<VendorId>,
    cooperation: Option<Cooperation>,
}

impl Selection {
    /// One municipality or the whole region, no vendor or cooperation: a report's scope,
    /// already checked against whoever asked for it.
    pub fn of_municipality(municipality: Option<MunicipalityCode>) -> Self {
        Self {
            municipality,
            vendor: None,
            cooperation: None,
        }
    }

    /// `municipality` is already checked against the caller (its own, or one it may see);
    /// `vendor` and `cooperation` are parsed here, the cooperation among the configured ones.
    pub fn parse(
        municipality: Option<MunicipalityCode>,
        vendor: Option<&str>,
        cooperation: Option<&str>,
        cooperations: &[Cooperation],
    ) -> Result<Self, AppError> {
        let vendor = vendor
            .map(|v| VendorId::parse(v).map_err(|e| bad(e.to_string())))
            .transpose()?;
        let cooperation = cooperation
            .map(|c| {
                cooperations
                    .iter()
                    .find(|k| k.id == c)
                    .cloned()
                    .ok_or_else(|| {
                        let known: Vec<&str> = cooperations.iter().map(|k| k.id.as_str()).collect();
                        bad(format!(
                            "unknown cooperation {c:?}; known: {}",
                            known.join(", ")
                        ))
                    })
            })
            .transpose()?;
        Ok(Self {
            municipality,
            vendor,
            cooperation,
        })
    }

    /// The one municipality asked for (or the caller's own), if any.
    pub fn municipality(&self) -> Option<&MunicipalityCode> {
        self.municipality.as_ref()
    }

    /// The cooperation asked for, if any.
    pub fn cooperation(&self) -> Option<&Cooperation> {
        self.cooperation.as_ref()
    }

    /// Whether a vendor or a cooperation narrows the selection beyond one municipality.
    pub fn has_vendor_or_cooperation(&self) -> bool {
        self.vendor.is_some() || self.cooperation.is_some()
    }

    /// How a download names what it holds: the municipality, the cooperation or the region,
    /// and the vendor if one.
    pub fn file_scope(&self) -> String {
        let scope = match (&self.municipality, &self.cooperation) {
            (Some(m), _) => m.to_string(),
            (None, Some(c)) => c.id.clone(),
            (None, None) => "region".to_owned(),
        };
        match &self.vendor {
            Some(v) => format!("{scope}-{v}"),
            None => scope,
        }
    }

    /// Whether a municipality and vendor count in a figure taken just before `cut`.
    pub fn admits(
        &self,
        municipality: &MunicipalityCode,
        vendor: &VendorId,
        cut: DateTime<Utc>,
    ) -> bool {
        self.vendor.as_ref().is_none_or(|v| v == vendor)
            && self.admits_municipality(municipality, cut)
    }

    /// The municipality part alone, for figures that have no vendor (medication).
    pub fn admits_municipality(&self, municipality: &MunicipalityCode, cut: DateTime<Utc>) -> bool {
        let at = cut - chrono::Duration::microseconds(1);
        self.municipality.as_ref().is_none_or(|m| m == municipality)
            && self
                .cooperation
                .as_ref()
                .is_none_or(|c| c.is_member(municipality, at))
    }

    /// The same selection as an attribution scope at one cut.
    pub fn scope(&self, registry: &Registry, cut: DateTime<Utc>) -> Scope {
        let municipalities =
            (self.municipality.is_some() || self.cooperation.is_some()).then(|| {
                registry
                    .iter()
                    .map(|x| x.code.clone())
                    .filter(|code| self.admits_municipality(code, cut))
                    .collect()
            });
        Scope {
            municipalities,
            vendor: self.vendor.clone(),
        }
    }

    /// Devices and recipients per type, summed over the admitted rows of one cut.
    pub(crate) fn sum(
        &self,
        rows: &[BreakdownRow],
        idx: usize,
        cut: DateTime<Utc>,
    ) -> ([u64; 6], [u64; 6]) {
        let mut devices = [0; 6];
        let mut recipients = [0; 6];
        for r in rows
            .iter()
            .filter(|r| r.idx == idx && self.admits(&r.municipality, &r.vendor, cut))
        {
            devices[r.kind.index()] += r.devices;
            recipients[r.kind.index()] += r.recipients;
        }
        (devices, recipients)
    }
}

/// Past months are taken at their last instant, the current month as of now; months not begun
/// have no figure (`None`).
pub fn month_cuts(months: &[YearMonth], now: DateTime<Utc>) -> Vec<Option<DateTime<Utc>>> {
    months
        .iter()
        .map(|m| (m.start() <= now).then(|| m.end_exclusive().min(now)))
        .collect()
}
