//! Norwegian (bokmål) words and number formats of the report, shared by the PDF and the
//! workbook so both say the same. The words follow the dashboard's (`ui/i18n.js`).

use crate::rollups::ChangeCauseView;
use chrono::{DateTime, Utc};

/// A no-break space: between digit groups and before a unit, so a number is never split over
/// two lines (and reads back as one number).
pub const NBSP: char = '\u{a0}';

/// A minus sign (U+2212), as Norwegian typesetting writes a negative number.
pub const MINUS: char = '\u{2212}';

/// `januar` … `desember` (1-12).
pub fn month_name(month: u32) -> &'static str {
    vft_domain::month::month_name_nb(month)
}

/// `jan` … `des`, the table's column heads.
pub fn month_abbr(month: u32) -> &'static str {
    &month_name(month)[..3]
}

/// A count: digits grouped by three with a no-break space from five digits on (Norwegian
/// usage leaves four-digit numbers whole: `1033`, `12 345`).
pub fn int(n: u64) -> String {
    let digits = n.to_string();
    if digits.len() < 5 {
        return digits;
    }
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(NBSP);
        }
        out.push(c);
    }
    out
}

/// A change: `+12`, `−4`, `0`.
pub fn signed(n: i64) -> String {
    match n {
        0 => "0".to_owned(),
        n if n > 0 => format!("+{}", int(n.unsigned_abs())),
        n => format!("{MINUS}{}", int(n.unsigned_abs())),
    }
}

/// A decimal number with a decimal comma and grouped whole part: `1 234,56`.
pub fn decimal(x: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, x.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let whole = whole
        .parse::<u64>()
        .map(int)
        .unwrap_or_else(|_| whole.to_owned());
    let sign = if x < 0.0 && text.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        MINUS.to_string()
    } else {
        String::new()
    };
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole},{fraction}")
    }
}

/// A share as a percentage: `97,5 %`.
pub fn percent(share: f64, decimals: usize) -> String {
    format!("{}{NBSP}%", decimal(share * 100.0, decimals))
}

/// A share, or a dash when there is none (no alarm, no device).
pub fn percent_or_dash(share: Option<f64>, decimals: usize) -> String {
    share.map_or_else(|| "–".to_owned(), |s| percent(s, decimals))
}

/// Milliseconds as seconds with one decimal: `23,4 s`.
pub fn seconds(ms: u64) -> String {
    format!("{}{NBSP}s", decimal(ms as f64 / 1000.0, 1))
}

pub fn seconds_or_dash(ms: Option<u64>) -> String {
    ms.map_or_else(|| "–".to_owned(), seconds)
}

/// When the report was made, in Norwegian time: `27. november 2026 kl. 14.05`.
pub fn generated(at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&chrono_tz::Europe::Oslo);
    use chrono::Datelike;
    use chrono::Timelike;
    format!(
        "{}. {} {} kl. {:02}.{:02}",
        local.day(),
        month_name(local.month()),
        local.year(),
        local.hour(),
        local.minute()
    )
}

/// Why a row moved, as the dashboard says it.
pub fn cause(c: ChangeCauseView) -> &'static str {
    match c {
        ChangeCauseView::Installed => "Nye enheter installert",
        ChangeCauseView::Decommissioned => "Tatt ut av bruk",
        ChangeCauseView::Replaced => "Byttet ut (erstattet av ny enhet)",
        ChangeCauseView::VendorMigration => "Byttet leverandør",
        ChangeCauseView::MovedIn => "Flyttet inn fra en annen kommune",
        ChangeCauseView::MovedOut => "Flyttet ut til en annen kommune",
        ChangeCauseView::KindChanged => "Endret teknologitype",
        ChangeCauseView::MunicipalityJoined => "Kommunen ble med i utvalget",
        ChangeCauseView::MunicipalityLeft => "Kommunen gikk ut av utvalget",
    }
}

/// Why a device was taken out of use (`reason` of a `decommissioned` line).
pub fn reason(id: &str) -> &str {
    match id {
        "returned" => "levert tilbake",
        "moved_to_institution" => "flyttet til institusjon",
        "deceased" => "død",
        "no_longer_needed" => "ikke lenger behov",
        "replaced" => "erstattet",
        "broken" => "defekt",
        "lost" => "tapt",
        "other" => "annet",
        "not_given" => "ikke oppgitt",
        other => other,
    }
}

/// How an alarm ended.
pub fn outcome(id: &str) -> &str {
    match id {
        "false_alarm" => "Falsk alarm",
        "resolved_remotely" => "Løst over telefon",
        "help_dispatched" => "Hjelp sendt",
        "emergency_services" => "Nødetater varslet",
        "no_contact" => "Ikke kontakt",
        other => other,
    }
}

/// A vendor id as a name: `hepro` → `Hepro`.
pub fn vendor_name(id: &str) -> String {
    let mut chars = id.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_the_norwegian_way() {
        assert_eq!(int(0), "0");
        assert_eq!(int(1033), "1033");
        assert_eq!(int(12_345), "12\u{a0}345");
        assert_eq!(int(1_234_567), "1\u{a0}234\u{a0}567");
        assert_eq!(signed(-4), "\u{2212}4");
        assert_eq!(signed(12), "+12");
        assert_eq!(signed(0), "0");
        assert_eq!(decimal(1234.5, 2), "1234,50");
        assert_eq!(decimal(-0.0001, 2), "0,00");
        assert_eq!(decimal(-2.5, 1), "\u{2212}2,5");
        assert_eq!(percent(0.975, 1), "97,5\u{a0}%");
        assert_eq!(percent(0.96249, 1), "96,2\u{a0}%");
        assert_eq!(seconds(23_450), "23,4\u{a0}s");
        assert_eq!(month_abbr(12), "des");
        assert_eq!(vendor_name("hepro"), "Hepro");
    }

    #[test]
    fn the_date_is_norwegian_time() {
        let at: DateTime<Utc> = "2025-06-30T22:30:00Z".parse().expect("time");
        assert_eq!(generated(at), "1. juli 2025 kl. 00.30");
    }
}
