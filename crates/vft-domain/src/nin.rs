//! Norwegian national identity numbers (fødselsnummer, D-number, H-number): 11 digits, a date of
//! birth (DDMMYY; a D-number adds 4 to the first digit, an H-number 4 to the third), an
//! individual number and two mod-11 control digits. vft must never store one, so a message
//! carrying one is refused, and the number is masked wherever outside text is kept or logged,
//! even in the dead letter that records the refusal.
//!
//! This module is the ONE detector: every place where outside text enters (event payloads,
//! topics, status payloads, dead letters, reasons, log lines, inventory rows and their errors)
//! asks it. It sees a number the way a reader would:
//!
//! - separators between digit groups are skipped (space, no-break and thin spaces, `.`, `-`,
//!   `/`, `_`, dashes and their full-width forms; at most [`MAX_SEPARATORS`] in one gap):
//!   `010190 12345`, `01.01.90-123.45`;
//! - invisible characters are ignored (zero-width space, joiner and non-joiner, word joiner,
//!   byte-order mark, soft hyphen, direction marks);
//! - decimal digits of every script (Unicode `Nd`: full-width, Arabic-Indic, Devanagari,
//!   mathematical…, plus super- and subscript and circled digits) count as digits;
//! - JSON escapes (`\u0030`, surrogate pairs, `\/`) are decoded first, so raw bytes and decoded
//!   strings give the same answer;
//! - a number is found inside longer text and glued to letters (`fnr12345678901x`, `D…`),
//!   but a run of 12 or more digits is never split: it is not a number.
//!
//! A candidate must have valid control digits and a plausible date of birth, so an arbitrary
//! 11-digit run (a phone number with country code, a serial) is left alone.

use std::ops::{ControlFlow, Range};

const K1: [u32; 9] = [3, 7, 6, 1, 8, 9, 4, 5, 2];
const K2: [u32; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

/// What replaces each number found (with the separators inside it).
pub const MASK: &str = "***********";

/// Most separator characters between two digit groups of one number (`010190 - 12345`).
pub const MAX_SEPARATORS: usize = 3;

fn check_digit(digits: &[u32], weights: &[u32]) -> Option<u32> {
    let sum: u32 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        k => Some(k),
    }
}

/// The rules of the number itself: both control digits, and a date of birth that exists
/// (day + 40 for a D-number, month + 40 for an H-number, not both; the century is not
/// checked beyond 29 February).
fn valid(d: &[u8; 11]) -> bool {
    let digits: [u32; 11] = d.map(u32::from);
    if check_digit(&digits[..9], &K1) != Some(digits[9])
        || check_digit(&digits[..10], &K2) != Some(digits[10])
    {
        return false;
    }
    let (mut day, mut month) = (digits[0] * 10 + digits[1], digits[2] * 10 + digits[3]);
    let year = digits[4] * 10 + digits[5];
    match (day > 40, month > 40) {
        (true, true) => return false,
        (true, false) => day -= 40,
        (false, true) => month -= 40,
        (false, false) => {}
    }
    [1900, 2000]
        .iter()
        .any(|c| chrono::NaiveDate::from_ymd_opt(c + year as i32, month, day).is_some())
}

/// True when `s` is exactly 11 ASCII digits forming a valid number (control digits and date).
/// To look for a number inside any text, use [`find`].
pub fn is_national_identity_number(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 11 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut d = [0u8; 11];
    for (slot, c) in d.iter_mut().zip(b) {
        *slot = c - b'0';
    }
    valid(&d)
}

/// Zeros of the Unicode decimal-digit (`Nd`) blocks: each is followed by the digits one to
/// nine. Unicode 17.
const ND_ZEROS: &[u32] = &[
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x10D40, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0,
    0x11650, 0x116C0, 0x116D0, 0x116DA, 0x11730, 0x118E0, 0x11950, 0x11BF0, 0x11C50, 0x11D50,
    0x11DA0, 0x11DE0, 0x11F50, 0x16130, 0x16A60, 0x16AC0, 0x16B50, 0x16D70, 0x1CCF0, 0x1D7CE,
    0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E5F1, 0x1E950, 0x1FBF0,
];

/// The value of a decimal digit of any script (and of super-, subscript and circled digits,
/// which read as digits too).
fn digit_value(c: char) -> Option<u8> {
    let v = u32::from(c);
    if c.is_ascii_digit() {
        return Some(c as u8 - b'0');
    }
    if v < 0x80 {
        return None;
    }
    let d = match v {
        0xB2 => 2,
        0xB3 => 3,
        0xB9 => 1,
        0x2070 => 0,
        0x2074..=0x2079 => v - 0x2070,
        0x2080..=0x2089 => v - 0x2080,
        0x24EA => 0,
        0x2460..=0x2468 => v - 0x2460 + 1,
        _ => {
            let i = ND_ZEROS.partition_point(|z| *z <= v).checked_sub(1)?;
            let off = v - ND_ZEROS[i];
            if off >= 10 {
                return None;
            }
            off
        }
    };
    Some(d as u8)
}

/// Characters that separate digit groups of one number.
fn is_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '.'
            | '-'
            | '/'
            | '_'
            | '\u{A0}'
            | '\u{B7}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2010}'..='\u{2015}'
            | '\u{2024}'
            | '\u{2027}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{2212}'
            | '\u{3000}'
            | '\u{3002}'
            | '\u{FE58}'
            | '\u{FE63}'
            | '\u{FF0D}'
            | '\u{FF0E}'
            | '\u{FF0F}'
            | '\u{FF3F}'
            | '\u{FF61}'
    )
}

/// Characters a reader does not see: ignored wherever they are.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{AD}'
            | '\u{34F}'
            | '\u{61C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Digit(u8),
    Separator,
    Invisible,
    Other,
}

fn classify(c: char) -> Class {
    if let Some(d) = digit_value(c) {
        Class::Digit(d)
    } else if is_separator(c) {
        Class::Separator
    } else if is_invisible(c) {
        Class::Invisible
    } else {
        Class::Other
    }
}

fn hex4(b: &[u8]) -> Option<u32> {
    let h = b.get(..4)?;
    if !h.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
}

/// The unit at `b[i..]`: its class and length in bytes. A JSON `\uXXXX` escape (a surrogate
/// pair as one) and `\/` are one unit; so is a UTF-8 character; a byte that is not UTF-8 is
/// `Other`.
fn unit(b: &[u8], i: usize) -> (Class, usize) {
    let c = b[i];
    if c < 0x80 {
        if c == b'\\' {
            match b.get(i + 1) {
                Some(b'/') => return (Class::Separator, 2),
                Some(b'u') => {
                    if let Some(u) = hex4(&b[i + 2..]) {
                        if (0xD800..0xDC00).contains(&u)
                            && b.get(i + 6) == Some(&b'\\')
                            && b.get(i + 7) == Some(&b'u')
                            && let Some(low) = hex4(&b[i + 8..])
                            && (0xDC00..0xE000).contains(&low)
                        {
                            let cp = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
                            return (char::from_u32(cp).map_or(Class::Other, classify), 12);
                        }
                        return (char::from_u32(u).map_or(Class::Other, classify), 6);
                    }
                }
                _ => {}
            }
            return (Class::Other, 1);
        }
        return (classify(char::from(c)), 1);
    }
    let width = match c {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (Class::Other, 1),
    };
    match b
        .get(i..i + width)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.chars().next())
    {
        Some(ch) => (classify(ch), width),
        None => (Class::Other, 1),
    }
}

/// A maximal run of digits (invisible characters inside it ignored): never split.
#[derive(Clone, Copy)]
struct Run {
    start: usize,
    end: usize,
    /// Digits in the run; only the first 11 are kept (a longer run is never a number).
    len: usize,
    digits: [u8; 11],
}

/// Runs separated by short gaps of separators: the places a number may span. Calls `on` for
/// each number, left to right.
fn scan_cluster(
    runs: &[Run],
    on: &mut impl FnMut(Range<usize>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let mut i = 0;
    while i < runs.len() {
        match number_from(runs, i) {
            Some(j) => {
                on(runs[i].start..runs[j].end)?;
                i = j + 1;
            }
            None => i += 1,
        }
    }
    ControlFlow::Continue(())
}

/// The last run of a number made of whole runs from `runs[i]` on (11 digits together, valid),
/// if there is one.
fn number_from(runs: &[Run], i: usize) -> Option<usize> {
    let mut total = 0;
    for (j, run) in runs.iter().enumerate().skip(i) {
        total += run.len;
        if total < 11 {
            continue;
        }
        if total > 11 {
            return None;
        }
        let mut d = [0u8; 11];
        let mut at = 0;
        for r in &runs[i..=j] {
            d[at..at + r.len].copy_from_slice(&r.digits[..r.len]);
            at += r.len;
        }
        return valid(&d).then_some(j);
    }
    None
}

/// Classes of the ASCII bytes but the backslash, which may start an escape (see [`unit`]).
const ASCII: [Class; 128] = {
    let mut t = [Class::Other; 128];
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = Class::Digit(d as u8);
        d += 1;
    }
    t[b' ' as usize] = Class::Separator;
    t[b'.' as usize] = Class::Separator;
    t[b'-' as usize] = Class::Separator;
    t[b'/' as usize] = Class::Separator;
    t[b'_' as usize] = Class::Separator;
    t
};

/// Calls `on` with the byte range of each number found, left to right, until it breaks.
fn scan(b: &[u8], mut on: impl FnMut(Range<usize>) -> ControlFlow<()>) {
    // Fast path: plain ASCII with fewer than 11 digits and no escape holds no number.
    let (mut digits, mut special) = (0usize, false);
    for &c in b {
        digits += usize::from(c.is_ascii_digit());
        special |= c >= 0x80 || c == b'\\';
    }
    if digits < 11 && !special {
        return;
    }
    let mut runs: Vec<Run> = Vec::new();
    // The run being read; `open` while a cluster (runs and short gaps) goes on.
    let mut run = Run {
        start: 0,
        end: 0,
        len: 0,
        digits: [0; 11],
    };
    let mut open = false;
    // Separators since the last digit, while a cluster is open.
    let mut gap = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let (class, width) = if c < 0x80 && c != b'\\' {
            (ASCII[usize::from(c)], 1)
        } else {
            unit(b, i)
        };
        match class {
            Class::Digit(d) => {
                if open && gap == 0 {
                    if run.len < 11 {
                        run.digits[run.len] = d;
                    }
                    run.len += 1;
                    run.end = i + width;
                } else {
                    if open {
                        runs.push(run);
                    }
                    run.start = i;
                    run.end = i + width;
                    run.len = 1;
                    run.digits[0] = d;
                    open = true;
                }
                gap = 0;
            }
            Class::Invisible => {}
            Class::Separator if open && gap < MAX_SEPARATORS => gap += 1,
            Class::Separator | Class::Other => {
                if open {
                    runs.push(run);
                    if scan_cluster(&runs, &mut on).is_break() {
                        return;
                    }
                    runs.clear();
                    open = false;
                    gap = 0;
                }
            }
        }
        i += width;
    }
    if open {
        runs.push(run);
        let _ = scan_cluster(&runs, &mut on);
    }
}

/// Byte ranges of the numbers in `b` (each with the separators and invisible characters
/// inside it), left to right, not overlapping.
pub fn spans_bytes(b: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    scan(b, |r| {
        out.push(r);
        ControlFlow::Continue(())
    });
    out
}

/// Byte ranges of the numbers in `s` (on character boundaries); see [`spans_bytes`].
pub fn spans(s: &str) -> Vec<Range<usize>> {
    spans_bytes(s.as_bytes())
}

/// Whether `b` holds a number anywhere, in any of the shapes this module reads.
pub fn find_bytes(b: &[u8]) -> bool {
    let mut found = false;
    scan(b, |_| {
        found = true;
        ControlFlow::Break(())
    });
    found
}

/// Whether `s` holds a number anywhere, in any of the shapes this module reads.
pub fn find(s: &str) -> bool {
    find_bytes(s.as_bytes())
}

/// Replaces each number found (separators inside it included) with [`MASK`]; returns the
/// masked bytes and how many numbers were masked. Bytes that are not UTF-8 are kept as they are.
pub fn mask_bytes(b: &[u8]) -> (Vec<u8>, usize) {
    let spans = spans_bytes(b);
    if spans.is_empty() {
        return (b.to_vec(), 0);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut at = 0;
    for r in &spans {
        out.extend_from_slice(&b[at..r.start]);
        out.extend_from_slice(MASK.as_bytes());
        at = r.end;
    }
    out.extend_from_slice(&b[at..]);
    (out, spans.len())
}

/// [`mask_bytes`] for text.
pub fn mask_str(s: &str) -> (String, usize) {
    let spans = spans(s);
    if spans.is_empty() {
        return (s.to_owned(), 0);
    }
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for r in &spans {
        out.push_str(&s[at..r.start]);
        out.push_str(MASK);
        at = r.end;
    }
    out.push_str(&s[at..]);
    (out, spans.len())
}

/// Outside text shown or kept in a bounded size: masked first, then cut to `max_chars`
/// characters, so a cut never leaves part of a number behind.
pub fn masked_prefix(s: &str, max_chars: usize) -> String {
    mask_str(s).0.chars().take(max_chars).collect()
}

/// [`mask_bytes`] under its older name.
pub fn mask_national_identity_numbers(raw: &[u8]) -> (Vec<u8>, usize) {
    mask_bytes(raw)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a valid number from nine leading digits (test data only; synthetic).
    pub(crate) fn make_nin(first9: &str) -> Option<String> {
        let d: Vec<u32> = first9.bytes().map(|c| u32::from(c - b'0')).collect();
        let k1 = check_digit(&d, &K1)?;
        let mut d10 = d.clone();
        d10.push(k1);
        let k2 = check_digit(&d10, &K2)?;
        Some(format!("{first9}{k1}{k2}"))
    }

    #[test]
    fn recognises_valid_numbers_and_rejects_near_misses() {
        let n = make_nin("010190123")
            .or_else(|| make_nin("010190124"))
            .expect("a valid number");
        assert!(is_national_identity_number(&n));
        let mut wrong = n.clone().into_bytes();
        wrong[10] = b'0' + (wrong[10] - b'0' + 1) % 10;
        assert!(!is_national_identity_number(
            std::str::from_utf8(&wrong).expect("ascii")
        ));
        assert!(!is_national_identity_number(&n[..10]));
        assert!(!is_national_identity_number(&format!("{n}0")));
    }

    #[test]
    fn masks_only_whole_valid_numbers() {
        let n = make_nin("150585432")
            .or_else(|| make_nin("150585433"))
            .expect("valid");
        let raw = format!(r#"{{"recipient":"{n}","device":"{n}9","x":"a{n}"}}"#);
        let (masked, count) = mask_national_identity_numbers(raw.as_bytes());
        let masked = String::from_utf8(masked).expect("utf8");
        assert_eq!(count, 2);
        assert!(masked.contains(r#""recipient":"***********""#));
        assert!(
            masked.contains(&format!("{n}9")),
            "a 12-digit run is not a number"
        );
    }

    /// A number of `kind` (0 birth, 1 D, 2 H) born on the given day, if its control digits
    /// exist for that individual number.
    pub(crate) fn number_of(
        kind: u8,
        day: u32,
        month: u32,
        yy: u32,
        individ: u32,
    ) -> Option<String> {
        let (day, month) = match kind {
            1 => (day + 40, month),
            2 => (day, month + 40),
            _ => (day, month),
        };
        make_nin(&format!("{day:02}{month:02}{yy:02}{individ:03}"))
    }

    fn sample() -> String {
        (0..1000)
            .find_map(|i| number_of(0, 1, 1, 90, i))
            .expect("a valid number")
    }

    /// The digits in another script whose zero is `zero`.
    fn script(n: &str, zero: u32) -> String {
        n.bytes()
            .map(|b| char::from_u32(zero + u32::from(b - b'0')).expect("digit"))
            .collect()
    }

    #[test]
    fn every_shape_the_issue_measured_is_found_and_masked() {
        let n = sample();
        let (date, person) = n.split_at(6);
        let esc: String = n
            .chars()
            .map(|c| format!("\\u{:04x}", u32::from(c)))
            .collect();
        let shapes = [
            n.clone(),
            format!("{date} {person}"),
            format!("{date}-{person}"),
            format!("{}.{}.{} {person}", &n[..2], &n[2..4], &n[4..6]),
            format!("{date}/{person}"),
            format!("{date}_{person}"),
            format!("{date} - {person}"),
            format!("{date}\\/{person}"),
            format!("{date}\u{a0}{person}"),
            format!("fnr:{n}"),
            format!("r-{n}-x"),
            format!("fnr{n}x"),
            format!("D{n}"),
            format!("evt-{n}"),
            format!("{date}\u{200b}{person}"),
            format!("{date}\u{200c}{person}"),
            format!("{date}\u{200d}{person}"),
            format!("{date}\u{2060}{person}"),
            format!("{date}\u{feff}{person}"),
            format!("{date}\u{ad}{person}"),
            script(&n, 0xFF10),
            script(&n, 0x660),
            script(&n, 0x966),
            script(&n, 0x1D7CE),
            esc.clone(),
            format!("{{\"recipient\":\"{esc}\"}}"),
            format!("{{\"{n}\":\"x\"}}"),
            format!("\"toaster {date} {person}\" is not one of"),
            format!("vft/v1/hepro/gw-{date}-{person}/events"),
            format!("vft/v1/{n}/gw/events"),
        ];
        for shape in shapes {
            assert!(find(&shape), "not found: {shape:?}");
            let (masked, count) = mask_str(&shape);
            assert_eq!(count, 1, "{shape:?} → {masked:?}");
            assert!(masked.contains(MASK), "{masked:?}");
            assert!(!find(&masked), "{masked:?}");
            let (masked_bytes, count) = mask_bytes(shape.as_bytes());
            assert_eq!((masked_bytes, count), (masked.into_bytes(), 1));
        }
        // JSON surrogate pairs (a digit outside the basic plane).
        let bold: String = n
            .bytes()
            .map(|b| {
                let c = 0x1D7CE + u32::from(b - b'0') - 0x10000;
                format!(
                    "\\u{:04x}\\u{:04x}",
                    0xD800 + (c >> 10),
                    0xDC00 + (c & 0x3FF)
                )
            })
            .collect();
        assert!(find(&bold));
        assert_eq!(mask_str(&bold), (MASK.to_owned(), 1));
    }

    #[test]
    fn the_mask_covers_the_separators_and_keeps_the_rest() {
        let n = sample();
        let text = format!("a {}-{} b {n}", &n[..6], &n[6..]);
        assert_eq!(mask_str(&text), (format!("a {MASK} b {MASK}"), 2));
        // Bytes that are not UTF-8 stay as they are.
        let mut raw = b"\xff\xfe ".to_vec();
        raw.extend_from_slice(n.as_bytes());
        raw.push(0xC3);
        let mut want = b"\xff\xfe ".to_vec();
        want.extend_from_slice(MASK.as_bytes());
        want.push(0xC3);
        assert_eq!(mask_bytes(&raw), (want, 1));
        assert_eq!(masked_prefix(&format!("xyz{n}"), 5), "xyz**");
    }

    #[test]
    fn what_is_not_a_number_is_left_alone() {
        let n = sample();
        let (date, person) = n.split_at(6);
        for text in [
            format!("{n}9"),
            format!("9{n}"),
            format!("{date}{person}0 and 1{n}"),
            // Too many separators between two groups, or a comma (a CSV cell boundary).
            format!("{date} -- {person}"),
            format!("{date},{person}"),
            format!("{date}\n{person}"),
            format!("{date}:{person}"),
            // A run of digits is never split: here the groups are 7 and 5 digits.
            format!("1{date} {person}"),
            // Plain text and ids of the simulator and the examples.
            "2025-06-30T23:59:00.123456+02:00".into(),
            "550e8400-e29b-41d4-a716-446655440000".into(),
            "HP-SA-090210 sim-123456 +47 912 34 567".into(),
            "\\u00".into(),
            "\\ud835".into(),
        ] {
            assert!(!find(&text), "found in {text:?}");
            assert_eq!(mask_str(&text), (text.clone(), 0));
        }
        // Wrong control digits, an impossible date, a D- and H-number at once.
        let mut wrong = n.clone().into_bytes();
        wrong[10] = b'0' + (wrong[10] - b'0' + 1) % 10;
        assert!(!find(std::str::from_utf8(&wrong).expect("ascii")));
        for bad_date in [(31, 2), (0, 5), (15, 13), (32, 1)] {
            let text = (0..1000)
                .find_map(|i| make_nin(&format!("{:02}{:02}90{i:03}", bad_date.0, bad_date.1)));
            let text = text.expect("control digits exist");
            assert!(!find(&text), "{text}");
        }
        let both = (0..1000)
            .find_map(|i| make_nin(&format!("4151{}{i:03}", "90")))
            .expect("control digits");
        assert!(!find(&both));
        assert!(is_national_identity_number(&n));
        assert!(!is_national_identity_number(&format!(" {n}")));
    }

    #[test]
    fn d_and_h_numbers_and_leap_days() {
        for (kind, day, month, yy) in [(1, 1, 1, 90), (2, 1, 1, 90), (0, 29, 2, 0), (1, 29, 2, 84)]
        {
            let n = (0..1000)
                .find_map(|i| number_of(kind, day, month, yy, i))
                .expect("valid");
            assert!(find(&n) && is_national_identity_number(&n), "{n}");
        }
        let not_leap = (0..1000)
            .find_map(|i| make_nin(&format!("290291{i:03}")))
            .expect("control digits");
        assert!(!find(&not_leap));
    }

    #[test]
    fn the_digit_table_is_sorted_and_numeric() {
        assert!(ND_ZEROS.windows(2).all(|w| w[0] + 10 <= w[1]));
        for z in ND_ZEROS {
            for d in 0..10 {
                let c = char::from_u32(z + d).expect("char");
                assert!(c.is_numeric(), "{:X}", z + d);
                assert_eq!(digit_value(c), Some(d as u8));
            }
        }
        assert_eq!(digit_value('½'), None);
        assert_eq!(digit_value('a'), None);
    }

    pub(crate) mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A valid number: birth, D or H, any existing date, any individual number.
        pub(crate) fn valid_number() -> impl Strategy<Value = String> {
            (0u8..3, 1u32..=31, 1u32..=12, 0u32..100, 0u32..1000).prop_filter_map(
                "no control digit, or no such date",
                |(kind, day, month, yy, individ)| {
                    number_of(kind, day, month, yy, individ)
                        .filter(|n| is_national_identity_number(n))
                },
            )
        }

        const ZEROS: [u32; 6] = [0x30, 0xFF10, 0x660, 0x6F0, 0x966, 0x1D7CE];
        const SEPARATORS: [&str; 10] = [
            " ", ".", "-", "/", "_", "\u{a0}", "\u{2009}", "\u{2013}", "\u{ff0d}", "\\/",
        ];
        const INVISIBLES: [&str; 6] = [
            "\u{200b}", "\u{200c}", "\u{200d}", "\u{2060}", "\u{feff}", "\u{ad}",
        ];

        /// How one number is dressed up.
        #[derive(Debug, Clone)]
        pub(crate) struct Decor {
            script: Vec<usize>,
            escaped: Vec<bool>,
            gaps: Vec<Vec<usize>>,
            invisible: Vec<Option<usize>>,
            prefix: String,
            suffix: String,
        }

        pub(crate) fn decor() -> impl Strategy<Value = Decor> {
            (
                prop::collection::vec(prop_oneof![6 => Just(0usize), 1 => 0usize..ZEROS.len()], 11),
                prop::collection::vec(prop::bool::weighted(0.15), 11),
                prop::collection::vec(
                    prop_oneof![
                        4 => Just(Vec::new()),
                        1 => prop::collection::vec(0usize..SEPARATORS.len(), 1..=MAX_SEPARATORS),
                    ],
                    10,
                ),
                prop::collection::vec(
                    prop_oneof![8 => Just(None), 1 => (0usize..INVISIBLES.len()).prop_map(Some)],
                    10,
                ),
                "(|fnr|fnr:|fnr |r-|D|evt-|id=|Personnr\\. |x)",
                "(|x|-x|:| ok|\"|,)",
            )
                .prop_map(|(script, escaped, gaps, invisible, prefix, suffix)| Decor {
                    script,
                    escaped,
                    gaps,
                    invisible,
                    prefix,
                    suffix,
                })
        }

        fn escape(c: char) -> String {
            let mut units = [0u16; 2];
            c.encode_utf16(&mut units)
                .iter()
                .map(|u| format!("\\u{u:04X}"))
                .collect()
        }

        /// `n` dressed up as `d` says (text to put inside a JSON string as is).
        pub(crate) fn dress(n: &str, d: &Decor) -> String {
            let mut out = d.prefix.clone();
            for (i, b) in n.bytes().enumerate() {
                let c = char::from_u32(ZEROS[d.script[i]] + u32::from(b - b'0')).expect("digit");
                if d.escaped[i] {
                    out.push_str(&escape(c));
                } else {
                    out.push(c);
                }
                if i < 10 {
                    if let Some(k) = d.invisible[i] {
                        out.push_str(INVISIBLES[k]);
                    }
                    for s in &d.gaps[i] {
                        out.push_str(SEPARATORS[*s]);
                    }
                }
            }
            out.push_str(&d.suffix);
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn a_dressed_number_is_found_and_masking_leaves_none(n in valid_number(), d in decor()) {
                let text = dress(&n, &d);
                prop_assert!(find(&text), "not found: {:?}", text);
                let (masked, count) = mask_str(&text);
                prop_assert_eq!(count, 1, "{:?} → {:?}", text, masked);
                prop_assert!(!find(&masked), "{:?}", masked);
                prop_assert!(!masked.contains(&n));
                prop_assert!(masked.starts_with(&d.prefix) && masked.ends_with(&d.suffix));
                // Inside a JSON payload, as raw bytes: an id, a field, an unknown key.
                let json = format!(
                    "{{\"id\":\"evt-{text}\",\"device\":\"{text}\",\"{text}\":1,\"ts\":\"2025-06-30T23:59:00+02:00\"}}"
                );
                let (raw, count) = mask_bytes(json.as_bytes());
                prop_assert_eq!(count, 3);
                prop_assert!(!find_bytes(&raw));
                prop_assert_eq!(mask_bytes(&raw), (raw.clone(), 0), "masking is idempotent");
            }

            #[test]
            fn eleven_digits_with_wrong_control_digits_are_not_a_number(
                first9 in "[0-9]{9}",
                k in "[0-9]{2}",
                sep in 0usize..SEPARATORS.len(),
            ) {
                let n = format!("{first9}{k}");
                let right = make_nin(&first9);
                prop_assume!(right.as_deref() != Some(n.as_str()));
                prop_assert!(!find(&n));
                let spaced = format!("{}{}{}", &n[..6], SEPARATORS[sep], &n[6..]);
                prop_assert!(!find(&spaced));
                prop_assert!(!find(&script(&n, 0xFF10)));
                prop_assert_eq!(mask_str(&n), (n.clone(), 0));
            }

            #[test]
            fn a_longer_run_of_digits_is_never_split(n in valid_number(), extra in "[0-9]{1,5}", front: bool) {
                let text = if front { format!("{extra}{n}") } else { format!("{n}{extra}") };
                prop_assert!(!find(&text), "{}", text);
            }
        }
    }
}
