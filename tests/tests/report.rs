//! End to end: the monthly report. The demo's 2025 is loaded into a fresh vft; the reports of
//! the region (December and June), of Ål (3328) as the coordinator sees it and of Ål as its own
//! token sees it are fetched through the HTTP API as PDF and XLSX, read back (the PDF's text
//! with poppler's `pdftotext -layout`, the workbook with calamine) and every number compared
//! with the JSON API's answers for the same caller, scope and month: the monthly table, the
//! recipients, the month's changes line by line, the response centre against the standard, the
//! vendors' service level and the Hepro → Atea migration progress. Nothing is hard-coded but
//! the words. Then access: another municipality is 403, an operator 403, no token 401, bad
//! parameters 400, an unknown document 404, and each read is in the audit log.
//!
//! Needs `pdftotext` and `pdfinfo` (Debian's poppler-utils; `.ci/run` installs it): skipped
//! loudly on a workstation without them, a failure in CI.

mod support;

use serde_json::Value;
use std::process::Command;
use support::*;

const AAL: &str = "3328";

/// A count as the report writes it: digit groups with a no-break space from five digits on.
fn int(n: u64) -> String {
    let digits = n.to_string();
    if digits.len() < 5 {
        return digits;
    }
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{a0}');
        }
        out.push(c);
    }
    out
}

fn signed(n: i64) -> String {
    match n {
        0 => "0".into(),
        n if n > 0 => format!("+{}", int(n.unsigned_abs())),
        n => format!("\u{2212}{}", int(n.unsigned_abs())),
    }
}

/// A decimal number with a decimal comma (never negative here).
fn decimal(x: f64, decimals: usize) -> String {
    let text = format!("{x:.decimals$}");
    match text.split_once('.') {
        Some((whole, fraction)) => {
            format!("{},{fraction}", int(whole.parse().expect("whole")))
        }
        None => int(text.parse().expect("whole")),
    }
}

fn percent(v: &Value, decimals: usize) -> String {
    v.as_f64().map_or_else(
        || "–".to_owned(),
        |s| format!("{}\u{a0}%", decimal(s * 100.0, decimals)),
    )
}

fn seconds(v: &Value) -> String {
    v.as_u64().map_or_else(
        || "–".to_owned(),
        |ms| format!("{}\u{a0}s", decimal(ms as f64 / 1000.0, 1)),
    )
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("a count, got {v}"))
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("a number, got {v}"))
}

fn cause(id: &str) -> &'static str {
    match id {
        "installed" => "Nye enheter installert",
        "decommissioned" => "Tatt ut av bruk",
        "replaced" => "Byttet ut (erstattet av ny enhet)",
        "vendor_migration" => "Byttet leverandør",
        "moved_in" => "Flyttet inn fra en annen kommune",
        "moved_out" => "Flyttet ut til en annen kommune",
        "kind_changed" => "Endret teknologitype",
        "municipality_joined" => "Kommunen ble med i utvalget",
        "municipality_left" => "Kommunen gikk ut av utvalget",
        other => panic!("unknown cause {other}"),
    }
}

fn reason(id: &str) -> &'static str {
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
        other => panic!("unknown reason {other}"),
    }
}

fn outcome(id: &str) -> &'static str {
    match id {
        "false_alarm" => "Falsk alarm",
        "resolved_remotely" => "Løst over telefon",
        "help_dispatched" => "Hjelp sendt",
        "emergency_services" => "Nødetater varslet",
        "no_contact" => "Ikke kontakt",
        other => panic!("unknown outcome {other}"),
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Whether poppler's tools are here; in CI they must be.
fn poppler() -> bool {
    let found = ["pdftotext", "pdfinfo"].iter().all(|tool| {
        Command::new(tool)
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !found {
        assert!(
            !in_ci(),
            "pdftotext and pdfinfo are required in CI (apt-get install poppler-utils)"
        );
        eprintln!("!!! SKIPPED: pdftotext/pdfinfo missing (apt-get install poppler-utils)");
    }
    found
}

/// A PDF's text, laid out as on the page, one normalised line per line (runs of spaces,
/// no-break spaces among them, as one space).
fn pdf_lines(pdf: &[u8], dir: &std::path::Path, name: &str) -> (Vec<String>, String) {
    let path = dir.join(name);
    std::fs::write(&path, pdf).expect("write the PDF");
    let text = Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext");
    assert!(text.status.success(), "pdftotext failed on {name}");
    let info = Command::new("pdfinfo")
        .arg(&path)
        .output()
        .expect("pdfinfo");
    assert!(info.status.success(), "pdfinfo failed on {name}");
    let lines = String::from_utf8(text.stdout)
        .expect("UTF-8 text")
        .lines()
        .map(normalise)
        .filter(|l| !l.is_empty())
        .collect();
    (lines, String::from_utf8_lossy(&info.stdout).into_owned())
}

fn normalise(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Each expected line appears in the text, in this order (other lines may come between: page
/// heads and feet, explanations).
fn assert_lines_in_order(lines: &[String], expected: &[String], what: &str) {
    let mut at = 0;
    for e in expected {
        let e = normalise(e);
        match lines[at..].iter().position(|l| *l == e) {
            Some(p) => at += p + 1,
            None => panic!(
                "{what}: no line {e:?} after line {at} of the PDF's text:\n{}",
                lines.join("\n")
            ),
        }
    }
}

/// A worksheet's cells: numbers, texts or nothing.
#[derive(Debug, Clone)]
enum Cell {
    Num(f64),
    Text(String),
    Empty,
}

impl PartialEq for Cell {
    /// Numbers are equal to the last bit but one: the workbook holds the server's f64 exactly
    /// (written shortest-round-trip, read back by calamine), but serde_json without its
    /// `float_roundtrip` feature may read the API's JSON number one unit in the last place off.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Num(a), Self::Num(b)) => a.to_bits().abs_diff(b.to_bits()) <= 1,
            (Self::Text(a), Self::Text(b)) => a == b,
            (Self::Empty, Self::Empty) => true,
            _ => false,
        }
    }
}

fn sheet(book: &mut calamine::Xlsx<std::io::Cursor<Vec<u8>>>, name: &str) -> Vec<Vec<Cell>> {
    use calamine::{Data, Reader};
    let range = book
        .worksheet_range(name)
        .unwrap_or_else(|e| panic!("sheet {name}: {e}"));
    assert_eq!(range.start(), Some((0, 0)), "{name} starts at A1");
    range
        .rows()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    Data::Float(f) => Cell::Num(*f),
                    Data::Int(n) => Cell::Num(*n as f64),
                    Data::String(s) => Cell::Text(s.clone()),
                    Data::Empty => Cell::Empty,
                    other => panic!("{name}: unexpected cell {other:?}"),
                })
                .collect()
        })
        .collect()
}

fn num(v: &Value) -> Cell {
    v.as_f64().map_or(Cell::Empty, Cell::Num)
}

fn text(s: &str) -> Cell {
    Cell::Text(s.to_owned())
}

/// The JSON API's answers for one caller, scope and month: what a report must say.
struct Expected {
    month: String,
    /// Months shown: January up to the report's month.
    shown: usize,
    table: Value,
    changes: Value,
    response: Value,
    vendors: Value,
    progress: Value,
    names: std::collections::BTreeMap<String, String>,
}

impl Expected {
    async fn fetch(api: &str, token: &str, month: &str, municipality: Option<&str>) -> Self {
        let m = municipality.map_or_else(String::new, |m| format!("&municipality={m}"));
        let get = |path: String| {
            let url = format!("{api}{path}");
            async move { get_json(&url, token).await }
        };
        let names = get("/api/v1/municipalities".into()).await;
        let names = names["municipalities"]
            .as_array()
            .or_else(|| names.as_array())
            .unwrap_or_else(|| panic!("municipalities: {names}"))
            .iter()
            .map(|x| {
                (
                    x["code"].as_str().expect("code").to_owned(),
                    x["name"].as_str().expect("name").to_owned(),
                )
            })
            .collect();
        Self {
            month: month.to_owned(),
            shown: month[5..].parse().expect("month"),
            table: get(format!("/api/v1/rollups/devices?year=2025{m}")).await,
            changes: get(format!("/api/v1/rollups/devices/changes?month={month}{m}")).await,
            response: get(format!("/api/v1/rollups/response-centre?year=2025{m}")).await,
            vendors: get(format!("/api/v1/rollups/vendor-service?month={month}{m}")).await,
            progress: get(format!(
                "/api/v1/reconciliation/progress?from=hepro&to=atea&year=2025{m}"
            ))
            .await,
            names,
        }
    }

    fn response_month(&self) -> &Value {
        self.response["months"]
            .as_array()
            .expect("months")
            .iter()
            .find(|r| r["month"] == self.month.as_str())
            .expect("the month's response figures")
    }

    fn progress_rows(&self) -> Vec<&Value> {
        self.progress["progress"]
            .as_array()
            .expect("progress")
            .iter()
            .filter(|p| p["month"].as_str().expect("month") <= self.month.as_str())
            .collect()
    }

    /// The lines the PDF must hold, in order.
    fn pdf_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let counts = |row: &Value| -> String {
            row.as_array()
                .expect("counts")
                .iter()
                .take(self.shown)
                .map(|c| int(u(c)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        // 1. The table, 2. the recipients.
        for r in self.table["rows"].as_array().expect("rows") {
            out.push(format!(
                "{} {}",
                r["label"].as_str().expect("label"),
                counts(&r["counts"])
            ));
        }
        out.push(format!("Sum {}", counts(&self.table["total"])));
        let recipients = &self.table["recipients"];
        for (r, labelled) in recipients["rows"]
            .as_array()
            .expect("recipient rows")
            .iter()
            .zip(self.table["rows"].as_array().expect("rows"))
        {
            assert_eq!(r["kind"], labelled["kind"]);
            out.push(format!(
                "{} {}",
                labelled["label"].as_str().expect("label"),
                counts(&r["counts"])
            ));
        }
        out.push(format!("Sum {}", counts(&recipients["total"])));
        // 3. The changes.
        for r in self.changes["rows"].as_array().expect("change rows") {
            out.push(format!(
                "{} {} {} {}",
                r["label"].as_str().expect("label"),
                int(u(&r["before"])),
                int(u(&r["after"])),
                signed(i(&r["delta"]))
            ));
            for l in r["lines"].as_array().expect("lines") {
                let what = match l["reason"].as_str() {
                    Some(why) => format!(
                        "{} – {}",
                        cause(l["cause"].as_str().expect("cause")),
                        reason(why)
                    ),
                    None => cause(l["cause"].as_str().expect("cause")).to_owned(),
                };
                out.push(format!(
                    "{what} {} {}",
                    signed(i(&l["delta"])),
                    int(u(&l["device_count"]))
                ));
            }
        }
        // 4. The response centre against the standard.
        let m = self.response_month();
        let standard = &self.response["standard"];
        let yes_no = |v: &Value| match v.as_bool() {
            Some(true) => "ja",
            Some(false) => "nei",
            None => "–",
        };
        out.extend([
            format!("Alarmer utløst {}", int(u(&m["triggered"]))),
            format!("Mottatt av responssenteret {}", int(u(&m["received"]))),
            format!("Besvart (kvittert) {}", int(u(&m["acknowledged"]))),
            format!("Lukket {}", int(u(&m["closed"]))),
            format!("Aldri besvart {}", int(u(&m["never_acknowledged"]))),
            format!(
                "Responstid, median {}",
                seconds(&m["response"]["median_ms"])
            ),
            format!(
                "Responstid, 90-persentil {}",
                seconds(&m["response"]["p90_ms"])
            ),
            format!("Responstid, lengste {}", seconds(&m["response"]["max_ms"])),
            format!(
                "Besvart innen 60 s {} {} {}",
                percent(&m["share_within_60s"], 1),
                percent(&standard["within_60s"], 1),
                yes_no(&m["meets_60s"])
            ),
            format!(
                "Besvart innen 180 s {} {} {}",
                percent(&m["share_within_180s"], 1),
                percent(&standard["within_180s"], 1),
                yes_no(&m["meets_180s"])
            ),
        ]);
        for (id, n) in m["outcomes"].as_object().expect("outcomes") {
            out.push(format!("Utfall: {} {}", outcome(id), int(u(n))));
        }
        // 5. The vendors' service level.
        for v in self.vendors["rows"].as_array().expect("vendor rows") {
            out.push(
                [
                    capitalised(v["vendor"].as_str().expect("vendor")),
                    int(u(&v["devices"])),
                    decimal(v["hours_in_service"].as_f64().expect("hours"), 2),
                    decimal(v["hours_without_contact"].as_f64().expect("hours"), 2),
                    percent(&v["availability"], 2),
                    int(u(&v["faults"])),
                    int(u(&v["alarms"])),
                    int(u(&v["never_acknowledged"])),
                    percent(&v["share_within_60s"], 1),
                    percent(&v["share_within_180s"], 1),
                    seconds(&v["response_median_ms"]),
                    seconds(&v["response_p90_ms"]),
                ]
                .join(" "),
            );
        }
        // 6. The vendor transition at the month's end.
        for p in self.progress_rows() {
            if p["month"] != self.month.as_str() {
                continue;
            }
            let code = p["municipality"].as_str().expect("municipality");
            out.push(format!(
                "{code} {} {} {} {} {} {}",
                self.names[code],
                int(u(&p["migrated"])),
                int(u(&p["pending"])),
                int(u(&p["double"])),
                int(u(&p["new"])),
                percent(&p["share_migrated"], 1)
            ));
        }
        out
    }

    /// Checks the workbook, sheet by sheet, cell by cell.
    fn check_workbook(&self, xlsx: Vec<u8>, what: &str) {
        use calamine::Reader;
        let mut book: calamine::Xlsx<_> =
            calamine::Xlsx::new(std::io::Cursor::new(xlsx)).expect("an XLSX workbook");
        assert_eq!(
            book.sheet_names(),
            [
                "Rapport",
                "Enheter",
                "Mottakere",
                "Rettelser",
                "Endringer",
                "Endringslinjer",
                "Responssenter",
                "Leverandører",
                "Leverandørbytte"
            ],
            "{what}"
        );
        let about = sheet(&mut book, "Rapport");
        assert!(
            about.contains(&vec![text("Måned (ÅÅÅÅ-MM)"), text(&self.month)]),
            "{what}: {about:?}"
        );
        let months: Vec<String> = self.table["months"]
            .as_array()
            .expect("months")
            .iter()
            .take(self.shown)
            .map(|m| m.as_str().expect("month").to_owned())
            .collect();
        // The table and the recipients.
        for (name, table) in [
            ("Enheter", &self.table),
            ("Mottakere", &self.table["recipients"]),
        ] {
            let cells = sheet(&mut book, name);
            let mut head = vec![text("Type"), text("Teknologi")];
            head.extend(months.iter().map(|m| text(m)));
            assert_eq!(cells[0], head, "{what}: {name}");
            let rows = table["rows"].as_array().expect("rows");
            for (r, row) in rows.iter().enumerate() {
                let mut want = vec![text(row["kind"].as_str().expect("kind"))];
                want.push(text(
                    self.table["rows"][r]["label"].as_str().expect("label"),
                ));
                want.extend(
                    row["counts"].as_array().expect("counts")[..self.shown]
                        .iter()
                        .map(num),
                );
                assert_eq!(cells[r + 1], want, "{what}: {name} row {}", r + 1);
            }
            let mut total = vec![text("total"), text("Sum")];
            total.extend(
                table["total"].as_array().expect("total")[..self.shown]
                    .iter()
                    .map(num),
            );
            assert_eq!(cells[rows.len() + 1], total, "{what}: {name} total");
        }
        let published = &sheet(&mut book, "Enheter")[8];
        let mut want = vec![text("published"), text("Publisert")];
        want.extend(
            self.table["published"].as_array().expect("published")[..self.shown]
                .iter()
                .map(|p| {
                    text(if p.as_bool() == Some(true) {
                        "ja"
                    } else {
                        "nei"
                    })
                }),
        );
        assert_eq!(*published, want, "{what}: published");
        // Corrections (of months up to the report's).
        let corrections = sheet(&mut book, "Rettelser");
        let want: Vec<&Value> = self.table["corrections"]
            .as_array()
            .expect("corrections")
            .iter()
            .filter(|c| c["month"].as_str().expect("month") <= self.month.as_str())
            .collect();
        assert_eq!(corrections.len(), want.len() + 1, "{what}: corrections");
        for (row, c) in corrections[1..].iter().zip(want) {
            assert_eq!(row[0], text(c["month"].as_str().expect("month")));
            assert_eq!(row[1], text(c["kind"].as_str().expect("kind")));
            assert_eq!(
                row[3..6],
                [
                    num(&c["published"]),
                    num(&c["current"]),
                    num(&c["difference"])
                ]
            );
        }
        // The changes, per type and line by line.
        let per_type = sheet(&mut book, "Endringer");
        let lines = sheet(&mut book, "Endringslinjer");
        let mut line = 1;
        for (r, row) in self.changes["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .enumerate()
        {
            assert_eq!(
                per_type[r + 1],
                [
                    text(row["kind"].as_str().expect("kind")),
                    text(row["label"].as_str().expect("label")),
                    num(&row["before"]),
                    num(&row["after"]),
                    num(&row["delta"]),
                ],
                "{what}: changes of {}",
                row["kind"]
            );
            for l in row["lines"].as_array().expect("lines") {
                let cells = &lines[line];
                assert_eq!(cells[0], text(row["kind"].as_str().expect("kind")));
                assert_eq!(cells[2], text(l["cause"].as_str().expect("cause")));
                assert_eq!(
                    cells[4],
                    l["reason"].as_str().map_or(Cell::Empty, text),
                    "{what}: line {line}"
                );
                assert_eq!(
                    cells[6..8],
                    [num(&l["delta"]), num(&l["device_count"])],
                    "{what}: line {line}"
                );
                line += 1;
            }
        }
        assert_eq!(lines.len(), line, "{what}: no more change lines");
        // The response centre, month by month.
        let rc = sheet(&mut book, "Responssenter");
        let months_rc = self.response["months"].as_array().expect("months");
        assert_eq!(rc.len(), self.shown + 1, "{what}: response months");
        let yes_no = |v: &Value| match v.as_bool() {
            Some(true) => text("ja"),
            Some(false) => text("nei"),
            None => Cell::Empty,
        };
        for (r, m) in months_rc[..self.shown].iter().enumerate() {
            let cells = &rc[r + 1];
            let mut want = vec![
                text(m["month"].as_str().expect("month")),
                num(&m["triggered"]),
                num(&m["received"]),
                num(&m["acknowledged"]),
                num(&m["closed"]),
                num(&m["never_acknowledged"]),
                num(&m["response"]["median_ms"]),
                num(&m["response"]["p90_ms"]),
                num(&m["response"]["max_ms"]),
                num(&m["share_within_60s"]),
                num(&self.response["standard"]["within_60s"]),
                yes_no(&m["meets_60s"]),
                num(&m["share_within_180s"]),
                num(&self.response["standard"]["within_180s"]),
                yes_no(&m["meets_180s"]),
            ];
            want.extend(
                m["outcomes"]
                    .as_object()
                    .expect("outcomes")
                    .values()
                    .map(num),
            );
            assert_eq!(*cells, want, "{what}: response centre {}", m["month"]);
        }
        // The vendors' service level.
        let vendors = sheet(&mut book, "Leverandører");
        let rows = self.vendors["rows"].as_array().expect("rows");
        assert_eq!(vendors.len(), rows.len() + 1, "{what}: vendors");
        for (cells, v) in vendors[1..].iter().zip(rows) {
            let want: Vec<Cell> = std::iter::once(text(v["vendor"].as_str().expect("vendor")))
                .chain(
                    [
                        "devices",
                        "hours_in_service",
                        "hours_without_contact",
                        "availability",
                        "faults",
                        "alarms",
                        "never_acknowledged",
                        "share_within_60s",
                        "share_within_180s",
                        "response_median_ms",
                        "response_p90_ms",
                    ]
                    .iter()
                    .map(|k| num(&v[*k])),
                )
                .collect();
            assert_eq!(*cells, want, "{what}: vendor {}", v["vendor"]);
        }
        // The vendor transition, month by month.
        let progress = sheet(&mut book, "Leverandørbytte");
        let rows = self.progress_rows();
        assert_eq!(progress.len(), rows.len() + 1, "{what}: progress rows");
        for (cells, p) in progress[1..].iter().zip(rows) {
            let code = p["municipality"].as_str().expect("municipality");
            assert_eq!(
                *cells,
                [
                    text(code),
                    text(&self.names[code]),
                    text(p["month"].as_str().expect("month")),
                    num(&p["migrated"]),
                    num(&p["pending"]),
                    num(&p["double"]),
                    num(&p["new"]),
                    num(&p["share_migrated"]),
                ],
                "{what}: progress"
            );
        }
    }
}

/// GET with a token: status, content type, file name and body.
async fn fetch(url: &str, token: Option<&str>) -> (u16, String, String, Vec<u8>) {
    let resp = get(url, token).await;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (status, kind, disposition) = (
        resp.status().as_u16(),
        header("content-type"),
        header("content-disposition"),
    );
    let body = resp.bytes().await.expect("body").to_vec();
    (status, kind, disposition, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monthly_report_says_what_the_api_says() {
    if !poppler() {
        return;
    }
    let scratch = Scratch::new();
    let (demo, _, coordinator) = demo(&scratch, &[]);
    let api = demo.api.clone();
    let db = scratch.database_url();
    let aal = create_token(
        &db,
        scratch.dir.path(),
        &["--role", "municipality", "--municipality", AAL],
    );
    let operator = create_token(&db, scratch.dir.path(), &["--role", "operator"]);
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Oslo)
        .date_naive();

    // (who, token, query, the API's municipality parameter, file scope, title)
    let cases = [
        (
            "region, December",
            &coordinator,
            "month=2025-12",
            None,
            "region",
            "Hele regionen (6 kommuner) · desember 2025",
        ),
        (
            "region, June",
            &coordinator,
            "month=2025-06",
            None,
            "region",
            "Hele regionen (6 kommuner) · juni 2025",
        ),
        (
            "Ål as the coordinator sees it",
            &coordinator,
            "month=2025-12&municipality=3328",
            Some(AAL),
            "3328",
            "Ål (3328) · desember 2025",
        ),
        (
            // Without asking, a municipality token gets its own municipality's report (as
            // every route answers it), never the region's: its own data, as its API says.
            "Ål's own",
            &aal,
            "month=2025-12",
            None,
            "3328",
            "Ål (3328) · desember 2025",
        ),
    ];
    for (what, token, query, municipality, scope, title) in cases {
        let month = &query[6..13];
        let expected = Expected::fetch(&api, token, month, municipality).await;

        let (status, kind, disposition, pdf) = fetch(
            &format!("{api}/api/v1/reports/monthly.pdf?{query}"),
            Some(token),
        )
        .await;
        assert_eq!(status, 200, "{what}: {}", String::from_utf8_lossy(&pdf));
        assert_eq!(kind, "application/pdf", "{what}");
        assert_eq!(
            disposition,
            format!("attachment; filename=\"vft-rapport-{scope}-{month}.pdf\""),
            "{what}"
        );
        let (lines, info) = pdf_lines(&pdf, scratch.dir.path(), &format!("{scope}-{month}.pdf"));
        assert!(info.contains("(A4)"), "{what}: A4: {info}");
        assert!(
            info.contains("Månedsrapport for velferdsteknologi"),
            "{what}: title: {info}"
        );
        assert_eq!(lines[0], "Månedsrapport for velferdsteknologi", "{what}");
        assert_eq!(lines[1], title, "{what}");
        let dated = format!(
            "Laget {}",
            today.format("%-d. ").to_string() + month_name(chrono::Datelike::month(&today))
        );
        assert!(
            lines[2].starts_with(&dated),
            "{what}: {} (dated {dated})",
            lines[2]
        );
        assert_lines_in_order(&lines, &expected.pdf_lines(), what);

        let (status, kind, disposition, xlsx) = fetch(
            &format!("{api}/api/v1/reports/monthly.xlsx?{query}"),
            Some(token),
        )
        .await;
        assert_eq!(status, 200, "{what}: {}", String::from_utf8_lossy(&xlsx));
        assert_eq!(
            kind, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "{what}"
        );
        assert_eq!(
            disposition,
            format!("attachment; filename=\"vft-rapport-{scope}-{month}.xlsx\""),
            "{what}"
        );
        expected.check_workbook(xlsx, what);
    }

    // Ål's own figures are not the coordinator's view of Ål where data crosses municipalities
    // only if the demo crosses them; either way each matched its own API above. Access:
    let report = |q: &str| format!("{api}/api/v1/reports/monthly.pdf?{q}");
    for (token, url, status, why) in [
        (
            Some(&aal),
            report("municipality=3320"),
            403,
            "another municipality",
        ),
        (
            Some(&aal),
            format!("{api}/api/v1/reports/monthly.xlsx?municipality=3330"),
            403,
            "another municipality's workbook",
        ),
        (
            Some(&operator),
            report(""),
            403,
            "an operator sees no fleet data",
        ),
        (None, report(""), 401, "no token"),
        (
            Some(&coordinator),
            report("month=2025-13"),
            400,
            "no such month",
        ),
        (Some(&coordinator), report("month=2025"), 400, "not a month"),
        (
            Some(&coordinator),
            report("month=2999-01"),
            400,
            "a month not begun",
        ),
        (
            Some(&coordinator),
            report("municipality=9999"),
            400,
            "unknown municipality",
        ),
        (
            Some(&coordinator),
            report("from=Hepro!"),
            400,
            "not a vendor id",
        ),
        (
            Some(&coordinator),
            report("from=atea&to=atea"),
            400,
            "one vendor twice",
        ),
        (
            Some(&coordinator),
            report("format=csv"),
            400,
            "an unknown parameter",
        ),
        (
            Some(&coordinator),
            format!("{api}/api/v1/reports/monthly.docx"),
            404,
            "no such document",
        ),
    ] {
        let (got, _, _, body) = fetch(&url, token.map(String::as_str)).await;
        assert_eq!(got, status, "{why}: {}", String::from_utf8_lossy(&body));
    }
    // Without a month: the month before this one.
    let (status, _, disposition, _) = fetch(&report(""), Some(&coordinator)).await;
    assert_eq!(status, 200);
    let last = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Oslo);
    let last = chrono::NaiveDate::from_ymd_opt(
        chrono::Datelike::year(&last),
        chrono::Datelike::month(&last),
        1,
    )
    .expect("first of the month")
        - chrono::Duration::days(1);
    assert!(
        disposition.ends_with(&format!("-{}.pdf\"", last.format("%Y-%m"))),
        "{disposition}"
    );

    // Each report read is in the audit log, with who, the municipality and the month.
    let audit = get_json(
        &format!("{api}/api/v1/audit?action=read&limit=1000"),
        &coordinator,
    )
    .await;
    let records = audit["records"].as_array().expect("records");
    let read = |route: &str, municipality: Option<&str>, actor_role: &str| {
        records.iter().any(|r| {
            r["route"].as_str().is_some_and(|x| x.contains(route))
                && r["municipality"].as_str() == municipality
                && r["role"].as_str().is_some_and(|x| x.contains(actor_role))
                && r["subjects"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s == "report=2025-12"))
        })
    };
    assert!(
        read("/api/v1/reports/monthly.pdf", None, "coordinator"),
        "{audit}"
    );
    assert!(
        read("/api/v1/reports/monthly.xlsx", Some(AAL), "municipality"),
        "{audit}"
    );
}

fn month_name(m: u32) -> &'static str {
    [
        "januar",
        "februar",
        "mars",
        "april",
        "mai",
        "juni",
        "juli",
        "august",
        "september",
        "oktober",
        "november",
        "desember",
    ][(m - 1) as usize]
}
