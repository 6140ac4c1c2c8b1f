//! Issue 10, item 2: a national identity number (fødselsnummer, D-number, H-number) sent to vft
//! in any shape is never stored, logged or shown. Each variant below carries its own synthetic
//! number (valid control digits, computed here: never a real person's). Everything is sent over
//! MQTT to `vft serve` (embedded listener, with the example Hepro adapter) and imported as
//! inventory rows (the API and `vft import inventory`); then the SQLite files (and their WAL),
//! vft's log (stderr) and the API's answers are searched for each number's 11 digits after
//! normalisation: JSON `\uXXXX` escapes decoded, decimal digits of other scripts read as ASCII,
//! separators and invisible characters dropped.

mod support;

use std::path::Path;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(120);
const TOPIC: &str = "vft/v1/hepro/gw-1/events";

#[derive(Clone, Copy, Debug)]
enum Kind {
    Birth,
    D,
    H,
}

fn control(digits: &[u32], weights: &[u32]) -> Option<u32> {
    match 11 - digits.iter().zip(weights).map(|(d, w)| d * w).sum::<u32>() % 11 {
        11 => Some(0),
        10 => None,
        k => Some(k),
    }
}

/// A synthetic number with valid control digits. `seq` picks the date (born 1940-1999,
/// individual numbers 000-499), so every variant has a number of its own.
fn number(seq: u32, kind: Kind) -> String {
    let (mut day, mut month) = (1 + seq % 28, 1 + (seq / 28) % 12);
    let year = 40 + (seq * 7) % 60;
    match kind {
        Kind::Birth => {}
        Kind::D => day += 40,
        Kind::H => month += 40,
    }
    (0..500)
        .map(|k| format!("{day:02}{month:02}{year:02}{:03}", (seq * 37 + k) % 500))
        .find_map(|first9| {
            let mut d: Vec<u32> = first9.bytes().map(|b| u32::from(b - b'0')).collect();
            let k1 = control(&d, &[3, 7, 6, 1, 8, 9, 4, 5, 2])?;
            d.push(k1);
            let k2 = control(&d, &[5, 4, 3, 2, 7, 6, 5, 4, 3, 2])?;
            Some(format!("{first9}{k1}{k2}"))
        })
        .expect("a valid number")
}

// ---- decorations ----

/// The digits in groups of `sizes`, joined by `sep`.
fn grouped(n: &str, sizes: &[usize], sep: &str) -> String {
    let mut parts = Vec::new();
    let mut at = 0;
    for s in sizes {
        parts.push(&n[at..at + s]);
        at += s;
    }
    assert_eq!(at, 11);
    parts.join(sep)
}

/// `DDMMYY IIIKK`, as people write it.
fn spaced(n: &str) -> String {
    grouped(n, &[6, 5], " ")
}

/// `DD.MM.YY IIIKK`.
fn dotted(n: &str) -> String {
    format!("{}.{}.{} {}", &n[..2], &n[2..4], &n[4..6], &n[6..])
}

/// The digits in another script whose zero is `zero` (full-width, Arabic-Indic…).
fn script(n: &str, zero: u32) -> String {
    n.bytes()
        .map(|b| char::from_u32(zero + u32::from(b - b'0')).expect("digit"))
        .collect()
}

fn inserted(n: &str, at: usize, s: &str) -> String {
    format!("{}{s}{}", &n[..at], &n[at..])
}

/// JSON `\uXXXX` escapes for the digits at the positions `pick` selects (text to put inside a
/// JSON string as is).
fn escaped(n: &str, pick: impl Fn(usize) -> bool) -> String {
    n.chars()
        .enumerate()
        .map(|(i, c)| {
            if pick(i) {
                format!("\\u{:04x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Mathematical bold digits (outside the BMP), written as JSON surrogate-pair escapes.
fn escaped_bold(n: &str) -> String {
    n.bytes()
        .map(|b| {
            let c = 0x1D7CE + u32::from(b - b'0') - 0x10000;
            format!(
                "\\u{:04x}\\u{:04x}",
                0xD800 + (c >> 10),
                0xDC00 + (c & 0x3FF)
            )
        })
        .collect()
}

// ---- canonical events ----

/// A JSON string literal (serde_json's escaping: non-ASCII stays UTF-8).
fn q(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A JSON string whose inside is written as is (escapes the sender wrote).
fn lit(s: &str) -> String {
    format!("\"{s}\"")
}

/// A valid `installed` event with `fields` replaced or added (values are JSON texts).
fn event(id: &str, fields: &[(&str, String)]) -> String {
    let mut all: Vec<(String, String)> = [
        ("id", q(id)),
        ("ts", q("2025-03-03T10:00:00+01:00")),
        ("municipality", q("3328")),
        ("device", q(&format!("DEV-{id}"))),
        ("type", q("installed")),
        ("kind", q("safety_alarm")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in fields {
        match all.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.clone(),
            None => all.push(((*k).to_owned(), v.clone())),
        }
    }
    let body: Vec<String> = all.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", body.join(","))
}

/// One way of sending a number: the messages (topic, payload) that carry it, and the MQTT
/// client id they are sent with.
struct Variant {
    label: String,
    number: String,
    messages: Vec<(String, Vec<u8>)>,
    client_id: Option<String>,
}

struct Plan {
    seq: u32,
    variants: Vec<Variant>,
}

impl Plan {
    /// The next variant's id and number (birth, D- and H-numbers in turn).
    fn next(&mut self) -> (String, String) {
        self.seq += 1;
        let kind = [Kind::Birth, Kind::D, Kind::H][self.seq as usize % 3];
        (format!("v{}", self.seq), number(self.seq, kind))
    }

    fn add(&mut self, label: &str, number: String, messages: Vec<(String, Vec<u8>)>) {
        self.variants.push(Variant {
            label: label.to_owned(),
            number,
            messages,
            client_id: None,
        });
    }

    /// A variant of one canonical event on the usual topic, built from its id and number.
    fn one(&mut self, label: &str, build: impl Fn(&str, &str) -> String) {
        let (id, n) = self.next();
        let payload = build(&id, &n);
        self.add(label, n, vec![(TOPIC.to_owned(), payload.into_bytes())]);
    }

    /// A variant of one canonical event with one field set to `value(number)` (a JSON text).
    fn field(&mut self, label: &str, field: &'static str, value: impl Fn(&str) -> String) {
        self.one(label, |id, n| event(id, &[(field, value(n))]));
    }
}

/// The messages: every shape of number the issue measured, and more.
fn mqtt_variants() -> Vec<Variant> {
    let mut p = Plan {
        seq: 0,
        variants: Vec::new(),
    };
    // Exact numbers in known fields (refused before the issue too).
    p.field("exact, recipient", "recipient", q);
    p.field("exact, device", "device", q);
    p.one("exact, as a JSON number (battery)", |id, _| {
        // A D-number never starts with 0, so it is a valid JSON number.
        let n = number(500, Kind::D);
        event(id, &[("type", q("heartbeat")), ("battery", n)])
    });
    p.variants.last_mut().expect("variant").number = number(500, Kind::D);
    // Separators.
    p.field("space, recipient", "recipient", |n| q(&spaced(n)));
    p.field("dash, recipient", "recipient", |n| {
        q(&grouped(n, &[6, 5], "-"))
    });
    p.field("dots in the date, recipient", "recipient", |n| {
        q(&dotted(n))
    });
    p.field("slash, recipient", "recipient", |n| {
        q(&grouped(n, &[6, 5], "/"))
    });
    p.field("underscore, recipient", "recipient", |n| {
        q(&grouped(n, &[6, 5], "_"))
    });
    p.field("spaced dash, recipient", "recipient", |n| {
        q(&grouped(n, &[6, 5], " - "))
    });
    p.field("every group spaced, device", "device", |n| {
        q(&grouped(n, &[2, 2, 2, 3, 2], " "))
    });
    p.field("JSON-escaped slash, recipient", "recipient", |n| {
        lit(&grouped(n, &[6, 5], "\\/"))
    });
    p.field("no-break space, recipient", "recipient", |n| {
        q(&grouped(n, &[6, 5], "\u{a0}"))
    });
    p.field("narrow no-break space, device", "device", |n| {
        q(&grouped(n, &[6, 5], "\u{202f}"))
    });
    // Prefixed, suffixed, embedded.
    p.field("prefix fnr:, recipient", "recipient", |n| {
        q(&format!("fnr:{n}"))
    });
    p.field("prefix and space, recipient", "recipient", |n| {
        q(&format!("fnr {}", spaced(n)))
    });
    p.field("r-…-x, recipient", "recipient", |n| {
        q(&format!("r-{n}-x"))
    });
    p.field("glued to letters, recipient", "recipient", |n| {
        q(&format!("fnr{n}x"))
    });
    p.field("D… as the device id", "device", |n| q(&format!("D{n}")));
    p.one("evt-… as the event id", |_, n| {
        event(&format!("evt-{n}"), &[])
    });
    p.one("in an alarm reference", |id, n| {
        event(
            id,
            &[
                ("type", q("alarm")),
                ("alarm", q(&format!("A-{}", grouped(n, &[6, 5], "-")))),
                ("cause", q("button")),
            ],
        )
    });
    p.field("replaces, dotted", "replaces", |n| q(&dotted(n)));
    // Invisible characters.
    p.field("zero-width space", "recipient", |n| {
        q(&inserted(n, 6, "\u{200b}"))
    });
    p.field("zero-width non-joiner", "recipient", |n| {
        q(&inserted(n, 3, "\u{200c}"))
    });
    p.field("zero-width joiner, device", "device", |n| {
        q(&inserted(n, 8, "\u{200d}"))
    });
    p.field("word joiner", "recipient", |n| {
        q(&inserted(n, 2, "\u{2060}"))
    });
    p.field("byte-order mark", "recipient", |n| {
        q(&inserted(n, 5, "\u{feff}"))
    });
    p.field("soft hyphen", "recipient", |n| q(&inserted(n, 6, "\u{ad}")));
    // Other scripts' digits and JSON escapes.
    p.field("full-width digits", "recipient", |n| q(&script(n, 0xFF10)));
    p.field("Arabic-Indic digits", "recipient", |n| q(&script(n, 0x660)));
    p.field("Persian digits, device", "device", |n| q(&script(n, 0x6F0)));
    p.field("Devanagari digits", "recipient", |n| q(&script(n, 0x966)));
    p.field(
        "full-width, zero-width space and ASCII mixed",
        "recipient",
        |n| {
            q(&format!(
                "{}\u{200b}{} {}",
                script(&n[..4], 0xFF10),
                &n[4..6],
                script(&n[6..], 0xFF10)
            ))
        },
    );
    p.field("JSON escape of every digit", "recipient", |n| {
        lit(&escaped(n, |_| true))
    });
    p.field("JSON escape of one digit, device", "device", |n| {
        lit(&escaped(n, |i| i == 4))
    });
    p.field("JSON surrogate pairs (bold digits)", "recipient", |n| {
        lit(&escaped_bold(n))
    });
    p.field("JSON escape of a separator", "recipient", |n| {
        lit(&grouped(n, &[6, 5], "\\u0020"))
    });
    // Structure: nested, batches, unknown keys, bad values.
    p.one("nested object value", |id, n| {
        event(
            id,
            &[("recipient", format!("{{\"fnr\":{}}}", q(&spaced(n))))],
        )
    });
    p.one("second element of a batch", |id, n| {
        format!(
            "[{},{}]",
            event(&format!("{id}-ok"), &[]),
            event(id, &[("recipient", q(&spaced(n)))])
        )
    });
    p.one("unknown key that is the number", |id, n| {
        event(id, &[(n, q("x"))])
    });
    p.one("unknown key with the number glued", |id, n| {
        let key = format!("fnr{n}");
        event(id, &[(key.as_str(), q("x"))])
    });
    p.one("unknown key with a spaced number", |id, n| {
        let key = format!("fnr {}", spaced(n));
        event(id, &[(key.as_str(), q("x"))])
    });
    p.field("unknown key, number in its value", "note", |n| {
        q(&format!("fnr {}", dotted(n)))
    });
    p.field("inside a bad kind", "kind", |n| {
        q(&format!("alarm {}", spaced(n)))
    });
    p.field("inside a bad type", "type", |n| q(&format!("alarm-{n}")));
    p.one("inside a bad cause", |id, n| {
        event(
            id,
            &[
                ("type", q("alarm")),
                ("alarm", q("A1")),
                ("cause", q(&grouped(n, &[6, 5], "-"))),
            ],
        )
    });
    p.one("inside a bad outcome, full-width", |id, n| {
        event(
            id,
            &[
                ("type", q("alarm_closed")),
                ("alarm", q("A1")),
                ("outcome", q(&script(n, 0xFF10))),
            ],
        )
    });
    p.field("as the timestamp", "ts", |n| q(&spaced(n)));
    p.one("in malformed JSON", |id, n| {
        format!("{{\"id\":\"{id}\",\"recipient\":\"{}\"", spaced(n))
    });
    {
        let (_, n) = p.next();
        let mut payload = b"\xff\xfe fnr ".to_vec();
        payload.extend_from_slice(spaced(&n).as_bytes());
        p.add(
            "in a payload that is not UTF-8",
            n,
            vec![(TOPIC.into(), payload)],
        );
    }
    p.one("in an oversized payload", |id, n| {
        let pad = "x".repeat(300 * 1024);
        event(id, &[("recipient", q(&spaced(n))), ("pad", q(&pad))])
    });
    // Topics.
    {
        let (id, n) = p.next();
        let topic = format!("vft/v1/hepro/{n}/events");
        p.add(
            "gateway segment of the topic",
            n,
            vec![(topic, event(&id, &[]).into_bytes())],
        );
        let (id, n) = p.next();
        let topic = format!("vft/v1/hepro/gw-{}/events", grouped(&n, &[6, 5], "-"));
        p.add(
            "gateway segment with a dash",
            n,
            vec![(topic, event(&id, &[]).into_bytes())],
        );
        let (id, n) = p.next();
        let topic = format!("vft/v1/hepro/{}/events", grouped(&n, &[2, 2, 2, 5], "."));
        p.add(
            "gateway segment with dots",
            n,
            vec![(topic, event(&id, &[]).into_bytes())],
        );
        let (id, n) = p.next();
        let topic = format!("vft/v1/{n}/gw-1/events");
        p.add(
            "vendor segment of the topic",
            n,
            vec![(topic, event(&id, &[]).into_bytes())],
        );
        let (id, n) = p.next();
        let topic = format!("vft/v1/v-{}/gw-1/events", grouped(&n, &[6, 5], "-"));
        p.add(
            "vendor segment with a dash",
            n,
            vec![(topic, event(&id, &[]).into_bytes())],
        );
        let (_, n) = p.next();
        let topic = format!("vft/v1/hepro/{n}/status");
        p.add(
            "gateway segment of a status topic",
            n,
            vec![(topic, b"online".to_vec())],
        );
        let (_, n) = p.next();
        p.add(
            "a status payload that is the number",
            n.clone(),
            vec![("vft/v1/hepro/gw-1/status".into(), n.into_bytes())],
        );
        let (_, n) = p.next();
        let payload = format!("offline {}", dotted(&n));
        p.add(
            "a status payload with a dotted number",
            n,
            vec![("vft/v1/hepro/gw-2/status".into(), payload.into_bytes())],
        );
        let (id, n) = p.next();
        let topic = format!("vft/v1/hepro/gw-1/events/{}", spaced(&n));
        p.add(
            "a topic nobody handles (logged)",
            n,
            vec![(topic, event(&id, &[]).into_bytes())],
        );
        let (id, n) = p.next();
        let topic = format!("vft/v1/hepro/gw-{}/events", script(&n, 0xFF10));
        p.add(
            "full-width digits in a bad topic",
            n,
            vec![(topic, event(&id, &[]).into_bytes())],
        );
        let (id, n) = p.next();
        let topic = format!("fnr/{n}/x");
        p.add(
            "a topic outside the prefix",
            n,
            vec![(topic, event(&id, &[]).into_bytes())],
        );
    }
    // Conflicting duplicates: the repeat's stored copy, and the WARN line naming its id.
    {
        let (id, n) = p.next();
        let first = event(&id, &[]);
        let repeat = event(&id, &[("recipient", q(&format!("r {}", spaced(&n))))]);
        p.add(
            "the repeat of a conflicting duplicate",
            n,
            vec![
                (TOPIC.into(), first.into_bytes()),
                (TOPIC.into(), repeat.into_bytes()),
            ],
        );
        let (_, n) = p.next();
        let id = format!("evt {}", spaced(&n));
        let first = event(&id, &[]);
        let repeat = event(&id, &[("device", q("OTHER"))]);
        p.add(
            "the id of a conflicting duplicate (WARN log)",
            n,
            vec![
                (TOPIC.into(), first.into_bytes()),
                (TOPIC.into(), repeat.into_bytes()),
            ],
        );
    }
    // The MQTT client id (logged by the listener).
    {
        let (id, n) = p.next();
        p.variants.push(Variant {
            label: "the MQTT client id".into(),
            client_id: Some(format!("gw-{}", grouped(&n, &[6, 5], "-"))),
            number: n,
            messages: vec![(TOPIC.into(), event(&id, &[]).into_bytes())],
        });
    }
    // More D- and H-numbers in plain sight.
    p.one("D-number, spaced", |id, _| {
        let n = number(501, Kind::D);
        event(id, &[("recipient", q(&spaced(&n)))])
    });
    p.variants.last_mut().expect("variant").number = number(501, Kind::D);
    p.one("H-number, dashed device", |id, _| {
        let n = number(502, Kind::H);
        event(id, &[("device", q(&grouped(&n, &[6, 5], "-")))])
    });
    p.variants.last_mut().expect("variant").number = number(502, Kind::H);
    p.one("H-number, JSON-escaped", |id, _| {
        let n = number(503, Kind::H);
        event(id, &[("recipient", lit(&escaped(&n, |i| i % 2 == 0)))])
    });
    p.variants.last_mut().expect("variant").number = number(503, Kind::H);
    // Through the Hepro adapter (vendor format, vendor topic).
    {
        let vendor_event = |id: &str, client: &str, event_type: &str| {
            serde_json::json!([{
                "eventId": id, "timestamp": "2025-03-03T10:00:00+01:00", "municipalityNo": "3328",
                "unit": {"serial": format!("hp-{id}"), "productGroup": "SA"},
                "eventType": event_type, "client": {"ref": client},
            }])
            .to_string()
            .into_bytes()
        };
        let (id, n) = p.next();
        p.add(
            "adapter: gateway segment of the vendor topic",
            n.clone(),
            vec![(
                format!("hepro/{n}/alarms"),
                vendor_event(&id, "r-1", "INST"),
            )],
        );
        let (id, n) = p.next();
        let client = format!("fnr {}", spaced(&n));
        p.add(
            "adapter: mapped recipient",
            n,
            vec![(
                "hepro/base-1/alarms".into(),
                vendor_event(&id, &client, "INST"),
            )],
        );
        let (id, n) = p.next();
        let code = format!("INST-{}", spaced(&n));
        p.add(
            "adapter: unknown vendor code (mapping reason)",
            n,
            vec![(
                "hepro/base-1/alarms".into(),
                vendor_event(&id, "r-1", &code),
            )],
        );
    }
    p.variants
}

/// One inventory row holding a number (a line of the CSV) and which file it goes in.
struct ImportRow {
    label: String,
    number: String,
    line: String,
}

/// Rows of the Atea example format (UTF-8, comma-separated), imported through the API.
fn atea_rows() -> (String, Vec<ImportRow>) {
    let header = "serial,category,municipality_no,client_ref,state,installed_on,site";
    let mut rows = Vec::new();
    let mut seq = 600;
    let mut row = |label: &str, cells: &dyn Fn(&str) -> [String; 7]| {
        seq += 1;
        let n = number(seq, [Kind::Birth, Kind::D, Kind::H][seq as usize % 3]);
        rows.push(ImportRow {
            label: format!("atea: {label}"),
            line: cells(&n).join(","),
            number: n,
        });
    };
    let base = |serial: &str, client: &str| -> [String; 7] {
        [
            serial.into(),
            "alarm".into(),
            "3328".into(),
            client.into(),
            "active".into(),
            "2025-09-28".into(),
            "Ål".into(),
        ]
    };
    row("exact, client_ref", &|n| base("A3001", n));
    row("spaced, client_ref", &|n| base("A3002", &spaced(n)));
    row("r-…-x, client_ref", &|n| {
        base("A3003", &format!("r-{n}-x"))
    });
    row("D… as the serial", &|n| base(&format!("D{n}"), "r-3004"));
    row("exact, serial", &|n| base(n, "r-3005"));
    row("ignored column, dashed", &|n| {
        let mut c = base("A3006", "r-3006");
        c[6] = format!("fnr: {}", grouped(n, &[6, 5], "-"));
        c
    });
    row("inside an unknown product code", &|n| {
        let mut c = base("A3007", "r-3007");
        c[1] = format!("alarm {}", spaced(n));
        c
    });
    row("as the installed date", &|n| {
        let mut c = base("A3008", "r-3008");
        c[5] = dotted(n);
        c
    });
    row("as the municipality", &|n| {
        let mut c = base("A3009", "r-3009");
        c[2] = spaced(n);
        c
    });
    row("full-width digits, client_ref", &|n| {
        base("A3010", &script(n, 0xFF10))
    });
    row("zero-width space, client_ref", &|n| {
        base("A3011", &inserted(n, 6, "\u{200b}"))
    });
    row("JSON escapes as text, client_ref", &|n| {
        base("A3012", &escaped(n, |_| true))
    });
    row("no-break space, serial", &|n| {
        base(&grouped(n, &[6, 5], "\u{a0}"), "r-3013")
    });
    row("quoted cell with a comma, ignored column", &|n| {
        let mut c = base("A3014", "r-3014");
        c[6] = format!("\"{}, fnr\"", spaced(n));
        c
    });
    row("in the status", &|n| {
        let mut c = base("A3015", "r-3015");
        c[4] = format!("active {}", dotted(n));
        c
    });
    row("Arabic-Indic digits, client_ref", &|n| {
        base("A3016", &script(n, 0x660))
    });
    row("soft hyphen, serial", &|n| {
        base(&inserted(n, 6, "\u{ad}"), "r-3017")
    });
    let mut text = format!("{header}\n");
    text.push_str("A3000,alarm,3328,r-3000,active,2025-09-28,Ål\n");
    for r in &rows {
        text.push_str(&r.line);
        text.push('\n');
    }
    (text, rows)
}

/// Rows of the Hepro example format (Windows-1252, semicolons), imported with the CLI. An extra
/// column's header holds a number too: an error row blamed on that column names it.
fn hepro_rows() -> (Vec<u8>, Vec<ImportRow>) {
    let header_number = number(700, Kind::Birth);
    let header = format!(
        "Serienr;Produkt;Kommunenr;Kommune;Brukerref;Status;Installert;Merknad;Notat {}",
        spaced(&header_number)
    );
    let mut rows = Vec::new();
    let mut seq = 700;
    let mut row = |label: &str, cells: &dyn Fn(&str) -> [String; 9]| {
        seq += 1;
        let n = number(seq, [Kind::Birth, Kind::D, Kind::H][seq as usize % 3]);
        rows.push(ImportRow {
            label: format!("hepro: {label}"),
            line: cells(&n).join(";"),
            number: n,
        });
    };
    let base = |serial: &str| -> [String; 9] {
        [
            serial.into(),
            "TA".into(),
            "3328".into(),
            "Ål".into(),
            format!("r-{serial}"),
            "I drift".into(),
            "01.02.2025".into(),
            String::new(),
            String::new(),
        ]
    };
    row("no-break space in the note", &|n| {
        let mut c = base("HP-H4001");
        c[7] = format!("Fnr. {}", grouped(n, &[6, 5], "\u{a0}"));
        c
    });
    row("soft hyphen, recipient", &|n| {
        let mut c = base("HP-H4002");
        c[4] = inserted(n, 6, "\u{ad}");
        c
    });
    row("dashed serial after the prefix", &|n| {
        base(&format!("HP-{}", grouped(n, &[6, 5], "-")))
    });
    row("inside an unknown product code", &|n| {
        let mut c = base("HP-H4004");
        c[1] = format!("TA {n}");
        c
    });
    row("as the installed date", &|n| {
        let mut c = base("HP-H4005");
        c[6] = dotted(n);
        c
    });
    let mut lines = vec![
        header,
        "HP-H4000;TA;3328;Ål;r-4000;I drift;01.02.2025;;".into(),
    ];
    lines.extend(rows.iter().map(|r| r.line.clone()));
    // The row that blames the extra column, whose header holds a number.
    let mut blamed = base("HP-H4006");
    blamed[8] = number(706, Kind::D);
    lines.push(blamed.join(";"));
    rows.push(ImportRow {
        label: "hepro: the header of an error row's column".into(),
        number: header_number,
        line: String::new(),
    });
    rows.push(ImportRow {
        label: "hepro: exact, in the extra column".into(),
        number: number(706, Kind::D),
        line: String::new(),
    });
    let text = lines.join("\r\n") + "\r\n";
    // Windows-1252 agrees with Latin-1 on every character used here.
    let bytes = text
        .chars()
        .map(|c| {
            u8::try_from(u32::from(c))
                .ok()
                .filter(|b| !(0x80..0xA0).contains(b))
                .expect("a Windows-1252 character")
        })
        .collect();
    (bytes, rows)
}

// ---- searching ----

/// Zeros of the decimal digit blocks the search reads as ASCII (the scripts used above and a
/// few more).
const ZEROS: &[u32] = &[
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xE50, 0xED0, 0xF20, 0x1040, 0x17E0, 0x1810, 0xFF10, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC,
    0x1D7F6,
];

/// Dropped by the search: separators between digit groups and invisible characters.
fn dropped(c: char) -> bool {
    matches!(
        c,
        ' ' | '.' | '-' | '/' | '_' | '\u{a0}' | '\u{ad}' | '\u{2000}'
            ..='\u{2015}'
                | '\u{2060}'
                | '\u{202f}'
                | '\u{2212}'
                | '\u{3000}'
                | '\u{feff}'
                | '\u{ff0d}'
                | '\u{ff0e}'
                | '\u{ff0f}'
                | '\u{ff3f}'
    )
}

/// Decodes `\uXXXX` escapes (surrogate pairs included) and `\/`.
fn unescape(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let hex = |at: usize| -> Option<u32> {
        if chars.get(at) != Some(&'\\') || chars.get(at + 1) != Some(&'u') {
            return None;
        }
        let h: String = chars.get(at + 2..at + 6)?.iter().collect();
        u32::from_str_radix(&h, 16).ok()
    };
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if let Some(u) = hex(i) {
            if (0xD800..0xDC00).contains(&u)
                && let Some(low) = hex(i + 6).filter(|l| (0xDC00..0xE000).contains(l))
            {
                let c = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
                out.extend(char::from_u32(c));
                i += 12;
                continue;
            }
            out.extend(char::from_u32(u));
            i += 6;
            continue;
        }
        if chars[i] == '\\' && chars.get(i + 1) == Some(&'/') {
            out.push('/');
            i += 2;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// The text a reader sees, with digits in one form: what the search runs on.
fn normalise(bytes: &[u8]) -> String {
    unescape(&String::from_utf8_lossy(bytes))
        .chars()
        .filter(|c| !dropped(*c))
        .map(|c| {
            let v = u32::from(c);
            ZEROS
                .iter()
                .find(|z| (**z..**z + 10).contains(&v))
                .map_or(c, |z| char::from(b'0' + (v - z) as u8))
        })
        .collect()
}

/// The places searched, by name, as normalised text; and where vft's own detector finds any
/// number at all (a second opinion, on the bytes as they are).
struct Haystacks(Vec<(String, String)>, Vec<String>);

impl Haystacks {
    fn add(&mut self, name: &str, bytes: &[u8]) {
        self.0.push((name.to_owned(), normalise(bytes)));
        if vft_domain::nin::find_bytes(bytes) {
            self.1.push(name.to_owned());
        }
    }

    /// Where `number` occurs.
    fn holding(&self, number: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, text)| text.contains(number))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

fn database_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("scratch dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("vft.db"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read database file"),
            )
        })
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_identity_number_is_stored_logged_or_shown_in_any_shape() {
    let scratch = Scratch::new();
    let inputs = tempfile::tempdir().expect("inputs dir");
    let db = scratch.database_url();
    let config = inputs.path().join("vft.toml");
    let adapter = workspace_root().join("config/adapters/hepro.example.toml");
    std::fs::write(
        &config,
        format!("adapter_files = [{:?}]\n", adapter.display().to_string()),
    )
    .expect("config");
    let config_arg = config.display().to_string();
    let log = inputs.path().join("vft.log");
    let (vft, broker) = spawn_vft_logged(
        "serve",
        &db,
        scratch.dir.path(),
        &["--config", &config_arg],
        // The listener's debug lines too (they name MQTT client ids and will topics).
        &[("RUST_LOG", "info,vft_ingest=debug")],
        &log,
    );
    let coordinator = create_token(
        &db,
        scratch.dir.path(),
        &["--config", &config_arg, "--role", "coordinator"],
    );
    wait_ready(&vft.api).await;

    let variants = mqtt_variants();
    let mut numbers: Vec<&str> = variants.iter().map(|v| v.number.as_str()).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), variants.len(), "one number per variant");
    assert!(variants.len() >= 46, "{} variants", variants.len());

    // Over MQTT: every message acknowledged means every message committed.
    let mut publisher = Publisher::connect(&broker, "identity-numbers").await;
    for v in variants.iter().filter(|v| v.client_id.is_none()) {
        for (topic, payload) in &v.messages {
            publisher.publish(topic, payload.clone()).await;
            // The repeat of a duplicate after its first arrival was stored.
            publisher.wait_all_acked(WAIT).await;
        }
    }
    publisher.disconnect().await;
    for v in variants.iter().filter(|v| v.client_id.is_some()) {
        let client_id = v.client_id.as_deref().expect("client id");
        let mut p = Publisher::connect(&broker, client_id).await;
        for (topic, payload) in &v.messages {
            p.publish(topic, payload.clone()).await;
        }
        p.wait_all_acked(WAIT).await;
        p.disconnect().await;
    }

    // As inventory rows: Atea's export through the API, Hepro's with the CLI.
    let (atea_csv, atea) = atea_rows();
    let (hepro_csv, hepro) = hepro_rows();
    let import_rows: Vec<&ImportRow> = atea.iter().chain(&hepro).collect();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/imports/atea?as_of=2025-12-01", vft.api))
        .bearer_auth(&coordinator)
        .header("content-type", "text/csv")
        .body(atea_csv)
        .send()
        .await
        .expect("POST import");
    assert_eq!(resp.status(), 200);
    let import_response = resp.text().await.expect("import response");
    let hepro_file = inputs.path().join("hepro.csv");
    std::fs::write(&hepro_file, &hepro_csv).expect("write hepro export");
    let cli_output = vft_cli(
        &[
            "import",
            "inventory",
            "--database-url",
            &db,
            "--vendor",
            "hepro",
            "--as-of",
            "2025-12-01",
            &hepro_file.display().to_string(),
        ],
        scratch.dir.path(),
    )
    .unwrap_or_else(|e| panic!("vft import inventory failed: {e}"));

    // Through the people's doors: a number typed as a username at sign-in (plain and
    // dressed up), as a new account's username or name, as a token's label, and in a path.
    let mut account_numbers: Vec<(String, String)> = Vec::new();
    let sign_in_client = reqwest::Client::new();
    for (i, shape) in [
        |n: &str| n.to_owned(),
        |n: &str| format!("{n}@hol.kommune.no"),
        |n: &str| grouped(n, &[6, 5], " "),
        |n: &str| dotted(n),
    ]
    .iter()
    .enumerate()
    {
        let n = number(900 + i as u32, Kind::Birth);
        let resp = sign_in_client
            .post(format!("{}/api/session", vft.api))
            .header("content-type", "application/json")
            .body(
                serde_json::json!({ "username": shape(&n), "password": "not the password" })
                    .to_string(),
            )
            .send()
            .await
            .expect("POST /api/session");
        assert_eq!(resp.status(), 401, "sign-in as a number");
        account_numbers.push((format!("account: sign-in username shape {i}"), n));
    }
    let n = number(910, Kind::D);
    for (what, body) in [
        (
            "username",
            serde_json::json!({ "username": format!("{n}@x.no"), "role": "auditor", "password": "korrekt hest batteri" }),
        ),
        (
            "name",
            serde_json::json!({ "username": "kari", "name": format!("Kari {}", spaced(&n)), "role": "auditor", "password": "korrekt hest batteri" }),
        ),
    ] {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1/users", vft.api))
            .bearer_auth(&coordinator)
            .json(&body)
            .send()
            .await
            .expect("POST /api/v1/users");
        assert_eq!(
            resp.status(),
            400,
            "an account's {what} with a number is refused"
        );
    }
    account_numbers.push(("account: new username and name".into(), n));
    let n = number(911, Kind::H);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/tokens", vft.api))
        .bearer_auth(&coordinator)
        .json(&serde_json::json!({ "label": format!("for {n}"), "role": "auditor" }))
        .send()
        .await
        .expect("POST /api/v1/tokens");
    assert_eq!(resp.status(), 400, "a token label with a number is refused");
    account_numbers.push(("account: token label".into(), n));
    let n = number(912, Kind::Birth);
    let resp = get(
        &format!("{}/api/v1/devices/hepro/D{n}", vft.api),
        Some(&coordinator),
    )
    .await;
    assert_eq!(resp.status(), 404);
    let resp = get(&format!("{}/api/v1/users/{n}", vft.api), Some(&coordinator)).await;
    assert!(resp.status().is_client_error());
    account_numbers.push(("account: paths".into(), n));

    // What the API shows.
    let mut places = Haystacks(Vec::new(), Vec::new());
    let audit = get_json(
        &format!("{}/api/v1/audit?limit=1000", vft.api),
        &coordinator,
    )
    .await;
    assert!(
        audit["records"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["action"] == "sign_in_failed")),
        "the failed sign-ins are in the audit log (masked)"
    );
    places.add("API audit log", audit.to_string().as_bytes());
    let api = |path: &str| format!("{}{path}", vft.api);
    let dead_letters = get_json(&api("/api/v1/dead-letters?limit=1000"), &coordinator).await;
    places.add("API import response", import_response.as_bytes());
    places.add("CLI import output", cli_output.as_bytes());
    places.add("API dead letters", dead_letters.to_string().as_bytes());
    for path in [
        "/api/v1/imports/errors?limit=1000",
        "/api/v1/imports",
        "/api/v1/devices?limit=1000",
    ] {
        let body = get_json(&api(path), &coordinator).await;
        places.add(&format!("API {path}"), body.to_string().as_bytes());
    }
    let metrics = get(&api("/metrics"), None)
        .await
        .text()
        .await
        .expect("metrics");
    places.add("API /metrics", metrics.as_bytes());
    let letters = dead_letters["items"].as_array().expect("items");
    let refused = letters
        .iter()
        .filter(|d| d["reason_code"] == "national_identity_number")
        .count();
    let others: Vec<&str> = letters
        .iter()
        .filter_map(|d| d["reason_code"].as_str())
        .filter(|c| *c != "national_identity_number")
        .collect();
    eprintln!(
        "{} dead letters, {refused} of them national_identity_number; others: {others:?}",
        letters.len()
    );

    // The files, after a clean stop (and while running: the WAL before its checkpoint).
    for (name, bytes) in database_files(scratch.dir.path()) {
        places.add(&format!("{name} (running)"), &bytes);
    }
    let status = vft.terminate();
    assert!(status.success(), "vft stopped with {status}");
    for (name, bytes) in database_files(scratch.dir.path()) {
        places.add(&format!("{name} (stopped)"), &bytes);
    }
    let log_text = std::fs::read(&log).expect("log");
    places.add("vft's log", &log_text);

    let mut leaks = Vec::new();
    for (label, number) in variants
        .iter()
        .map(|v| (format!("mqtt: {}", v.label), &v.number))
        .chain(import_rows.iter().map(|r| (r.label.clone(), &r.number)))
        .chain(account_numbers.iter().map(|(l, n)| (l.clone(), n)))
    {
        let found = places.holding(number);
        if !found.is_empty() {
            leaks.push(format!("{label} ({number}): {}", found.join(", ")));
        }
    }
    let mqtt_leaks = leaks.iter().filter(|l| l.starts_with("mqtt: ")).count();
    eprintln!(
        "{mqtt_leaks} of {} MQTT variants and {} of {} import rows left the number somewhere",
        variants.len(),
        leaks.len() - mqtt_leaks,
        import_rows.len()
    );
    assert!(
        places.1.is_empty(),
        "vft's detector finds a number in {:?}",
        places.1
    );
    assert!(
        leaks.is_empty(),
        "identity numbers found:\n{}\n--- log ---\n{}",
        leaks.join("\n"),
        String::from_utf8_lossy(&log_text)
    );
}
