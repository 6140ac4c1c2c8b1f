//! The report as a PDF (krilla): A4 portrait, Norwegian, DejaVu Sans Condensed embedded (as a
//! subset, with its text, so the letters æøå print and can be searched and copied). The pages
//! are laid out first as a list of drawing operations per page (so each footer can say
//! "side 2 av 3"), then drawn. Charts are vector shapes: bars, lines and text.

use super::figures::MonthlyFigures;
use super::text;
use crate::AppError;
use krilla::Document;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::{DateTime as PdfDateTime, Metadata};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke, StrokeDash};
use krilla::text::{Font, TextDirection};

/// DejaVu Sans Condensed (Bitstream Vera licence, `assets/fonts/LICENSE-DejaVu.txt`), in the
/// binary: the report renders the same on any machine, with no font installed.
static REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansCondensed.ttf");
static BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansCondensed-Bold.ttf");

/// A4 in points.
const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const LEFT: f32 = 42.0;
const RIGHT: f32 = PAGE_W - 42.0;
const TOP: f32 = 50.0;
/// The lowest baseline of the body; the footer sits below.
const BOTTOM: f32 = PAGE_H - 58.0;

const BODY: f32 = 9.0;
const SMALL: f32 = 8.0;
const ROW: f32 = 12.5;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Rgb(u8, u8, u8);

const BLACK: Rgb = Rgb(0x1d, 0x1d, 0x1b);
const GREY: Rgb = Rgb(0x5f, 0x63, 0x68);
const RULE: Rgb = Rgb(0xc8, 0xcc, 0xd0);
const STRIPE: Rgb = Rgb(0xf2, 0xf4, 0xf6);
const BLUE: Rgb = Rgb(0x1f, 0x5f, 0x99);
const RED: Rgb = Rgb(0xb3, 0x26, 0x1e);
const GREEN: Rgb = Rgb(0x2e, 0x7d, 0x32);
const ORANGE: Rgb = Rgb(0xe0, 0x8a, 0x00);
const PURPLE: Rgb = Rgb(0x6a, 0x3d, 0x9a);

/// One drawing operation; y is downwards from the top of the page, text at its baseline.
enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        bold: bool,
        color: Rgb,
        text: String,
    },
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        color: Rgb,
    },
    Line {
        points: Vec<(f32, f32)>,
        width: f32,
        color: Rgb,
        dashed: bool,
    },
}

/// Advance widths, to align numbers right and wrap paragraphs.
struct Metrics {
    regular: ttf_parser::Face<'static>,
    bold: ttf_parser::Face<'static>,
}

impl Metrics {
    fn load() -> Result<Self, AppError> {
        let face = |data: &'static [u8]| {
            ttf_parser::Face::parse(data, 0)
                .map_err(|e| AppError::failed("write the PDF", format!("font: {e}")))
        };
        Ok(Self {
            regular: face(REGULAR)?,
            bold: face(BOLD)?,
        })
    }

    fn width(&self, text: &str, size: f32, bold: bool) -> f32 {
        let face = if bold { &self.bold } else { &self.regular };
        let units: f32 = text
            .chars()
            .map(|c| {
                face.glyph_index(c)
                    .and_then(|g| face.glyph_hor_advance(g))
                    .unwrap_or(0) as f32
            })
            .sum();
        units * size / f32::from(face.units_per_em())
    }
}

/// A table column: its width and whether its cells align right (numbers).
#[derive(Clone, Copy)]
struct Col {
    width: f32,
    right: bool,
}

fn col(width: f32, right: bool) -> Col {
    Col { width, right }
}

/// A table row: its cells, bold or not, and an indent of its first cell.
struct Row {
    cells: Vec<String>,
    bold: bool,
    indent: f32,
}

fn row(cells: Vec<String>) -> Row {
    Row {
        cells,
        bold: false,
        indent: 0.0,
    }
}

fn bold_row(cells: Vec<String>) -> Row {
    Row {
        cells,
        bold: true,
        indent: 0.0,
    }
}

/// The pages being laid out, and where on the current one the next thing goes.
struct Layout {
    pages: Vec<Vec<Op>>,
    y: f32,
    metrics: Metrics,
}

impl Layout {
    fn new(metrics: Metrics) -> Self {
        Self {
            pages: vec![Vec::new()],
            y: TOP,
            metrics,
        }
    }

    fn ops(&mut self) -> &mut Vec<Op> {
        if self.pages.is_empty() {
            self.pages.push(Vec::new());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = TOP;
    }

    /// Starts a new page unless `height` more fits on this one.
    fn need(&mut self, height: f32) {
        if self.y + height > BOTTOM {
            self.new_page();
        }
    }

    fn text(&mut self, x: f32, y: f32, size: f32, bold: bool, color: Rgb, text: &str) {
        self.ops().push(Op::Text {
            x,
            y,
            size,
            bold,
            color,
            text: text.to_owned(),
        });
    }

    fn text_right(&mut self, right: f32, y: f32, size: f32, bold: bool, color: Rgb, s: &str) {
        let w = self.metrics.width(s, size, bold);
        self.text(right - w, y, size, bold, color, s);
    }

    fn text_center(&mut self, center: f32, y: f32, size: f32, color: Rgb, s: &str) {
        let w = self.metrics.width(s, size, false);
        self.text(center - w / 2.0, y, size, false, color, s);
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, color: Rgb) {
        if w > 0.0 && h > 0.0 {
            self.ops().push(Op::Rect { x, y, w, h, color });
        }
    }

    fn line(&mut self, points: Vec<(f32, f32)>, width: f32, color: Rgb, dashed: bool) {
        if points.len() >= 2 {
            self.ops().push(Op::Line {
                points,
                width,
                color,
                dashed,
            });
        }
    }

    fn rule(&mut self, y: f32, x0: f32, x1: f32) {
        self.line(vec![(x0, y), (x1, y)], 0.5, RULE, false);
    }

    /// A numbered section head; a new page when it would stand alone at the bottom (with
    /// its explanation and less than the start of its table).
    fn heading(&mut self, s: &str) {
        self.need(130.0);
        self.y += 20.0;
        self.text(LEFT, self.y, 12.0, true, BLUE, s);
        self.y += 6.0;
    }

    /// Text wrapped to the page's width.
    fn paragraph(&mut self, s: &str, size: f32, color: Rgb) {
        let max = RIGHT - LEFT;
        let mut line = String::new();
        let mut lines = Vec::new();
        for word in s.split(' ') {
            let candidate = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if !line.is_empty() && self.metrics.width(&candidate, size, false) > max {
                lines.push(std::mem::replace(&mut line, word.to_owned()));
            } else {
                line = candidate;
            }
        }
        if !line.is_empty() {
            lines.push(line);
        }
        for l in lines {
            self.need(size * 1.4);
            self.y += size * 1.4;
            self.text(LEFT, self.y, size, false, color, &l);
        }
    }

    /// A table: the head (its cells may hold `\n` for two lines) repeats on every page the
    /// table runs over; rows are striped, bold rows (sums) get a rule above them.
    fn table(&mut self, head: &[&str], cols: &[Col], rows: &[Row]) {
        let head_lines = head
            .iter()
            .map(|h| h.split('\n').count())
            .max()
            .unwrap_or(1) as f32;
        let head_h = head_lines * 9.5 + 5.0;
        let width: f32 = cols.iter().map(|c| c.width).sum();
        let draw_head = |l: &mut Layout| {
            l.y += 6.0;
            let top = l.y;
            let mut x = LEFT;
            for (h, c) in head.iter().zip(cols) {
                for (i, part) in h.split('\n').enumerate() {
                    let y = top + 8.0 + i as f32 * 9.5;
                    if c.right {
                        l.text_right(x + c.width - 3.0, y, SMALL, true, BLACK, part);
                    } else {
                        l.text(x + 3.0, y, SMALL, true, BLACK, part);
                    }
                }
                x += c.width;
            }
            l.y = top + head_h;
            l.rule(l.y, LEFT, LEFT + width);
        };
        self.need(head_h + ROW * 2.0 + 6.0);
        draw_head(self);
        for (i, r) in rows.iter().enumerate() {
            if self.y + ROW > BOTTOM {
                self.new_page();
                draw_head(self);
            }
            let top = self.y;
            if r.bold {
                self.rule(top, LEFT, LEFT + width);
            } else if i % 2 == 1 {
                self.rect(LEFT, top, width, ROW, STRIPE);
            }
            let baseline = top + ROW - 3.5;
            let mut x = LEFT;
            for (j, (cell, c)) in r.cells.iter().zip(cols).enumerate() {
                let indent = if j == 0 { r.indent } else { 0.0 };
                if c.right {
                    self.text_right(x + c.width - 3.0, baseline, SMALL, r.bold, BLACK, cell);
                } else {
                    self.text(x + 3.0 + indent, baseline, SMALL, r.bold, BLACK, cell);
                }
                x += c.width;
            }
            self.y = top + ROW;
        }
        self.rule(self.y, LEFT, LEFT + width);
        self.y += 4.0;
    }

    /// A chart's frame: title, plot area with horizontal grid lines at `ticks` (labelled by
    /// `label`), month names under the slots. Returns the plot's left, top, width, height.
    fn chart_frame(
        &mut self,
        title: &str,
        months: &[String],
        ticks: &[(f64, String)],
        range: (f64, f64),
        height: f32,
    ) -> (f32, f32, f32, f32) {
        self.need(height + 40.0);
        self.y += 16.0;
        self.text(LEFT, self.y, BODY, true, BLACK, title);
        self.y += 8.0;
        let (x0, top) = (LEFT + 44.0, self.y);
        let w = RIGHT - x0;
        let (lo, hi) = range;
        let to_y = |v: f64| top + height - ((v - lo) / (hi - lo)) as f32 * height;
        for (v, label) in ticks {
            let y = to_y(*v);
            self.rule(y, x0, RIGHT);
            self.text_right(x0 - 4.0, y + 2.5, 7.0, false, GREY, label);
        }
        let slot = w / months.len().max(1) as f32;
        for (i, m) in months.iter().enumerate() {
            let center = x0 + slot * (i as f32 + 0.5);
            self.text_center(center, top + height + 10.0, 7.0, GREY, m);
        }
        self.y = top + height + 14.0;
        (x0, top, w, height)
    }

    /// A legend: coloured squares with their names, in one line.
    fn legend(&mut self, items: &[(Rgb, String)]) {
        self.need(14.0);
        self.y += 11.0;
        let mut x = LEFT + 44.0;
        for (color, name) in items {
            self.rect(x, self.y - 6.5, 7.0, 7.0, *color);
            self.text(x + 10.0, self.y, 7.5, false, BLACK, name);
            x += 10.0 + self.metrics.width(name, 7.5, false) + 14.0;
        }
    }
}

/// Round numbers for an axis from 0 to at least `max`: (step, top).
fn count_axis(max: f64) -> (f64, f64) {
    if max <= 0.0 {
        return (1.0, 4.0);
    }
    let rough = max / 4.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| s * 4.0 >= max)
        .unwrap_or(10.0 * magnitude)
        .max(1.0);
    (step, (max / step).ceil().max(1.0) * step)
}

fn count_ticks(max: f64) -> (Vec<(f64, String)>, f64) {
    let (step, top) = count_axis(max);
    let n = (top / step).round() as usize;
    let ticks = (0..=n)
        .map(|i| {
            let v = step * i as f64;
            (v, text::int(v.round() as u64))
        })
        .collect();
    (ticks, top)
}

pub fn render(f: &MonthlyFigures) -> Result<Vec<u8>, AppError> {
    let mut l = Layout::new(Metrics::load()?);
    let month_label = format!("{} {}", text::month_name(f.month.month()), f.month.year());
    let previous = f.changes.previous_month;
    let shown = f.shown();
    let abbrs: Vec<String> = f
        .months
        .iter()
        .map(|m| text::month_abbr(m.month()).to_owned())
        .collect();

    // Title.
    l.y += 6.0;
    l.text(
        LEFT,
        l.y,
        17.0,
        true,
        BLACK,
        "Månedsrapport for velferdsteknologi",
    );
    l.y += 18.0;
    l.text(
        LEFT,
        l.y,
        12.5,
        true,
        BLUE,
        &format!("{} · {month_label}", f.scope_title),
    );
    l.y += 4.0;
    let published = f.published.get(shown.saturating_sub(1)).copied() == Some(true);
    l.paragraph(
        &format!(
            "Laget {}. Tallene er de samme som vft sitt API gir for samme utvalg og måned. {} {}",
            text::generated(f.generated_at),
            if published {
                format!("{} er publisert (lukket): tabellen viser de publiserte tallene, og senere endringer står som rettelser.", capitalised(&month_label))
            } else {
                format!("{} er ikke publisert (lukket): tallene kan ennå endre seg.", capitalised(&month_label))
            },
            if f.own_view {
                "Tallene er laget av kommunens egne data, slik kommunens brukere ser dem."
            } else {
                ""
            }
        ),
        SMALL,
        GREY,
    );

    // 1. The monthly table.
    l.heading("1. Enheter i drift ved utgangen av hver måned");
    let label_w = 115.0;
    let month_w = ((RIGHT - LEFT - label_w) / 12.0).floor();
    let mut cols = vec![col(label_w, false)];
    cols.extend(std::iter::repeat_n(col(month_w, true), shown));
    let mut head: Vec<&str> = vec!["Teknologi"];
    head.extend(abbrs.iter().map(String::as_str));
    let counts = |counts: &[Option<u64>]| -> Vec<String> {
        counts
            .iter()
            .take(shown)
            .map(|c| c.map_or_else(|| "–".to_owned(), text::int))
            .collect()
    };
    let mut rows: Vec<Row> = f
        .devices
        .rows
        .iter()
        .map(|r| {
            let mut cells = vec![r.label.clone()];
            cells.extend(counts(&r.counts));
            row(cells)
        })
        .collect();
    let mut sum = vec!["Sum".to_owned()];
    sum.extend(counts(&f.devices.total));
    rows.push(bold_row(sum));
    l.table(&head, &cols, &rows);
    let published_months: Vec<&str> = f
        .published
        .iter()
        .zip(&abbrs)
        .filter(|(p, _)| **p)
        .map(|(_, m)| m.as_str())
        .collect();
    l.paragraph(
        &if published_months.is_empty() {
            "Ingen av månedene er publisert (lukket) ennå.".to_owned()
        } else {
            format!(
                "Publiserte (lukkede) måneder: {}.",
                published_months.join(", ")
            )
        },
        SMALL,
        GREY,
    );
    if !f.corrections.is_empty() {
        l.paragraph(
            "Rettelser: senere hendelser har endret disse publiserte tallene:",
            SMALL,
            BLACK,
        );
        for c in &f.corrections {
            l.paragraph(
                &format!(
                    "{}, {} {}: publisert {}, nå {} ({})",
                    c.kind.label_nb(),
                    text::month_name(c.month.month()),
                    c.month.year(),
                    text::int(c.published),
                    text::int(c.current),
                    text::signed(c.difference)
                ),
                SMALL,
                BLACK,
            );
        }
    }
    let totals: Vec<f64> = f
        .devices
        .total
        .iter()
        .take(shown)
        .map(|t| t.unwrap_or(0) as f64)
        .collect();
    let (ticks, top) = count_ticks(totals.iter().copied().fold(0.0, f64::max));
    let (x0, y0, w, h) = l.chart_frame(
        "Enheter i drift i alt ved månedsslutt",
        &abbrs,
        &ticks,
        (0.0, top),
        120.0,
    );
    let slot = w / shown.max(1) as f32;
    for (i, v) in totals.iter().enumerate() {
        let bar_h = (*v / top) as f32 * h;
        let x = x0 + slot * i as f32 + slot * 0.2;
        let color = if f.months[i] == f.month { BLUE } else { RULE };
        l.rect(x, y0 + h - bar_h, slot * 0.6, bar_h, color);
    }

    // 2. Recipients.
    l.heading("2. Tjenestemottakere ved utgangen av hver måned");
    l.paragraph(
        "Unike tjenestemottakere per teknologi, slik nasjonal statistikk (KPR/IPLOS) teller dem; summert over kommunene, så en mottaker som får tjenester i to kommuner telles i begge.",
        SMALL,
        GREY,
    );
    let mut rows: Vec<Row> = f
        .recipients
        .rows
        .iter()
        .map(|r| {
            let mut cells = vec![r.label.clone()];
            cells.extend(counts(&r.counts));
            row(cells)
        })
        .collect();
    let mut sum = vec!["Sum".to_owned()];
    sum.extend(counts(&f.recipients.total));
    rows.push(bold_row(sum));
    l.table(&head, &cols, &rows);

    // 3. The month's changes explained.
    l.heading(&format!(
        "3. Endringene i {} forklart",
        text::month_name(f.month.month())
    ));
    l.paragraph(
        &format!(
            "Fra utgangen av {} {} til utgangen av {month_label}. Linjene under hver teknologi summerer seg til endringen.",
            text::month_name(previous.month()),
            previous.year()
        ),
        SMALL,
        GREY,
    );
    let cols = [
        col(255.0, false),
        col(55.0, true),
        col(55.0, true),
        col(60.0, true),
        col(60.0, true),
    ];
    let mut rows = Vec::new();
    for r in &f.changes.rows {
        rows.push(bold_row(vec![
            r.label.clone(),
            text::int(r.before.unsigned_abs()),
            text::int(r.after.unsigned_abs()),
            text::signed(r.delta),
            String::new(),
        ]));
        for line in &r.lines {
            let what = match &line.reason {
                Some(reason) => format!("{} – {}", text::cause(line.cause), text::reason(reason)),
                None => text::cause(line.cause).to_owned(),
            };
            rows.push(Row {
                cells: vec![
                    what,
                    String::new(),
                    String::new(),
                    text::signed(line.delta),
                    text::int(line.device_count),
                ],
                bold: false,
                indent: 10.0,
            });
        }
    }
    l.table(
        &["Teknologi og årsak", "Før", "Etter", "Endring", "Enheter"],
        &cols,
        &rows,
    );

    // 4. The response centre against the standard.
    l.heading(&format!(
        "4. Responssenteret i {} mot kravet",
        text::month_name(f.month.month())
    ));
    l.paragraph(
        &format!(
            "Kravet: {} av alarmene besvart innen 60 sekunder og {} innen 180 sekunder. Alarmer som aldri ble besvart teller som ikke besvart. En alarm hører til måneden den ble utløst i.",
            text::percent(f.standard.within_60s, 1),
            text::percent(f.standard.within_180s, 1)
        ),
        SMALL,
        GREY,
    );
    match f.response_of_month() {
        Some(m) => {
            let yes_no = |b: Option<bool>| match b {
                Some(true) => "ja",
                Some(false) => "nei",
                None => "–",
            };
            let times = m.response.as_ref();
            let mut rows = vec![
                row(vec![
                    "Alarmer utløst".into(),
                    text::int(m.triggered),
                    String::new(),
                    String::new(),
                ]),
                row(vec![
                    "Mottatt av responssenteret".into(),
                    text::int(m.received),
                    String::new(),
                    String::new(),
                ]),
                row(vec![
                    "Besvart (kvittert)".into(),
                    text::int(m.acknowledged),
                    String::new(),
                    String::new(),
                ]),
                row(vec![
                    "Lukket".into(),
                    text::int(m.closed),
                    String::new(),
                    String::new(),
                ]),
                row(vec![
                    "Aldri besvart".into(),
                    text::int(m.never_acknowledged),
                    String::new(),
                    String::new(),
                ]),
                row(vec![
                    "Responstid, median".into(),
                    text::seconds_or_dash(times.map(|t| t.median_ms)),
                    String::new(),
                    String::new(),
                ]),
                row(vec![
                    "Responstid, 90-persentil".into(),
                    text::seconds_or_dash(times.map(|t| t.p90_ms)),
                    String::new(),
                    String::new(),
                ]),
                row(vec![
                    "Responstid, lengste".into(),
                    text::seconds_or_dash(times.map(|t| t.max_ms)),
                    String::new(),
                    String::new(),
                ]),
                row(vec![
                    "Besvart innen 60 s".into(),
                    text::percent_or_dash(m.share_within_60s, 1),
                    text::percent(f.standard.within_60s, 1),
                    yes_no(m.meets_60s).into(),
                ]),
                row(vec![
                    "Besvart innen 180 s".into(),
                    text::percent_or_dash(m.share_within_180s, 1),
                    text::percent(f.standard.within_180s, 1),
                    yes_no(m.meets_180s).into(),
                ]),
            ];
            for (id, n) in &m.outcomes {
                rows.push(Row {
                    cells: vec![
                        format!("Utfall: {}", text::outcome(id)),
                        text::int(*n),
                        String::new(),
                        String::new(),
                    ],
                    bold: false,
                    indent: 0.0,
                });
            }
            l.table(
                &["", &capitalised(&month_label), "Krav", "Oppfylt"],
                &[
                    col(200.0, false),
                    col(80.0, true),
                    col(70.0, true),
                    col(60.0, true),
                ],
                &rows,
            );
        }
        None => l.paragraph("Ingen tall for måneden.", BODY, BLACK),
    }
    // The share within 60 s month by month, against the standard.
    let shares: Vec<Option<f64>> = f.response.iter().map(|m| m.share_within_60s).collect();
    let lowest = shares
        .iter()
        .flatten()
        .copied()
        .fold(f.standard.within_60s, f64::min);
    // From a round 5 % below the lowest share to 100 %, in steps of 1, 2.5, 5 or 10 %.
    let lo = ((lowest - 0.005) * 20.0).floor().max(0.0) / 20.0;
    let step = match 1.0 - lo {
        s if s <= 0.05 => 0.01,
        s if s <= 0.15 => 0.025,
        s if s <= 0.4 => 0.05,
        _ => 0.1,
    };
    let ticks: Vec<(f64, String)> = (0..)
        .map(|i| lo + step * f64::from(i))
        .take_while(|v| *v <= 1.0 + 1e-9)
        .map(|v| (v, text::percent(v, 1)))
        .collect();
    let (x0, y0, w, h) = l.chart_frame(
        "Andel besvart innen 60 s per måned, mot kravet",
        &abbrs,
        &ticks,
        (lo, 1.0),
        100.0,
    );
    let slot = w / shown.max(1) as f32;
    let to_y = |v: f64| y0 + h - ((v - lo) / (1.0 - lo)) as f32 * h;
    let standard_y = to_y(f.standard.within_60s);
    l.line(vec![(x0, standard_y), (x0 + w, standard_y)], 1.0, RED, true);
    let mut run: Vec<(f32, f32)> = Vec::new();
    for (i, s) in shares.iter().enumerate() {
        let x = x0 + slot * (i as f32 + 0.5);
        match s {
            Some(s) => {
                let y = to_y(*s);
                run.push((x, y));
                l.rect(x - 2.0, y - 2.0, 4.0, 4.0, BLUE);
            }
            None => l.line(std::mem::take(&mut run), 1.5, BLUE, false),
        }
    }
    l.line(run, 1.5, BLUE, false);
    l.legend(&[
        (BLUE, "Besvart innen 60 s".to_owned()),
        (
            RED,
            format!("Krav {}", text::percent(f.standard.within_60s, 1)),
        ),
    ]);

    // 5. The vendors' service level.
    l.heading(&format!(
        "5. Leverandørenes tjenestenivå i {}",
        text::month_name(f.month.month())
    ));
    l.paragraph(
        "Tilgjengelighet: andelen av enhetstimene i drift med kontakt innen enhetens tidsgrense. Responstid og andeler gjelder alarmene fra leverandørens enheter.",
        SMALL,
        GREY,
    );
    if f.vendors.rows.is_empty() {
        l.paragraph("Ingen enheter i drift i måneden.", BODY, BLACK);
    } else {
        let rows: Vec<Row> = f
            .vendors
            .rows
            .iter()
            .map(|v| {
                row(vec![
                    text::vendor_name(&v.vendor),
                    text::int(v.devices),
                    text::decimal(v.hours_in_service, 2),
                    text::decimal(v.hours_without_contact, 2),
                    text::percent_or_dash(v.availability, 2),
                    text::int(v.faults),
                    text::int(v.alarms),
                    text::int(v.never_acknowledged),
                    text::percent_or_dash(v.share_within_60s, 1),
                    text::percent_or_dash(v.share_within_180s, 1),
                    text::seconds_or_dash(v.response_median_ms),
                    text::seconds_or_dash(v.response_p90_ms),
                ])
            })
            .collect();
        let mut cols = vec![
            col(52.0, false),
            col(38.0, true),
            col(56.0, true),
            col(50.0, true),
        ];
        cols.extend([
            col(46.0, true),
            col(30.0, true),
            col(36.0, true),
            col(36.0, true),
            col(40.0, true),
            col(40.0, true),
            col(40.0, true),
            col(45.0, true),
        ]);
        l.table(
            &[
                "Leverandør",
                "Enheter",
                "Timer\ni drift",
                "Timer uten\nkontakt",
                "Tilgjen-\ngelighet",
                "Feil",
                "Alarmer",
                "Aldri\nbesvart",
                "Innen\n60 s",
                "Innen\n180 s",
                "Median",
                "90-per-\nsentil",
            ],
            &cols,
            &rows,
        );
    }

    // 6. The vendor transition.
    let (from, to) = (
        text::vendor_name(&f.transition_from),
        text::vendor_name(&f.transition_to),
    );
    l.heading(&format!(
        "6. Leverandørbyttet {from} → {to} ved utgangen av {}",
        text::month_name(f.month.month())
    ));
    l.paragraph(
        &format!(
            "Tjenester (mottaker og teknologi) per kommune: flyttet til {to}, venter (bare hos {from}), dobbelt (hos begge lenger enn overgangstiden) og nye hos {to}. Andel flyttet = flyttet / (flyttet + venter + dobbelt)."
        ),
        SMALL,
        GREY,
    );
    let month_rows: Vec<_> = f.progress_of_month().collect();
    if month_rows.is_empty() {
        l.paragraph(
            &format!("Ingen tjenester hos {from} eller {to} i utvalget."),
            BODY,
            BLACK,
        );
    } else {
        let rows: Vec<Row> = month_rows
            .iter()
            .map(|p| {
                row(vec![
                    format!("{} {}", p.municipality, f.name_of(&p.municipality)),
                    text::int(p.migrated),
                    text::int(p.pending),
                    text::int(p.double),
                    text::int(p.new),
                    text::percent_or_dash(p.share_migrated, 1),
                ])
            })
            .collect();
        l.table(
            &[
                "Kommune",
                "Flyttet",
                "Venter",
                "Dobbelt",
                "Nye",
                "Andel flyttet",
            ],
            &[
                col(150.0, false),
                col(60.0, true),
                col(60.0, true),
                col(60.0, true),
                col(60.0, true),
                col(75.0, true),
            ],
            &rows,
        );
        // Stacked bars of the four classes, summed over the municipalities shown.
        let classes: Vec<[f64; 4]> = f
            .months
            .iter()
            .map(|m| {
                f.progress
                    .iter()
                    .filter(|p| p.month == *m)
                    .fold([0.0; 4], |acc, p| {
                        [
                            acc[0] + p.migrated as f64,
                            acc[1] + p.pending as f64,
                            acc[2] + p.double as f64,
                            acc[3] + p.new as f64,
                        ]
                    })
            })
            .collect();
        let max = classes
            .iter()
            .map(|c| c.iter().sum::<f64>())
            .fold(0.0, f64::max);
        let (ticks, top) = count_ticks(max);
        let (x0, y0, w, h) = l.chart_frame(
            "Tjenester per klasse ved månedsslutt (alle kommunene over)",
            &abbrs,
            &ticks,
            (0.0, top),
            110.0,
        );
        let slot = w / shown.max(1) as f32;
        let colors = [GREEN, ORANGE, RED, PURPLE];
        for (i, c) in classes.iter().enumerate() {
            let x = x0 + slot * i as f32 + slot * 0.2;
            let mut base = y0 + h;
            for (v, color) in c.iter().zip(colors) {
                let bar_h = (*v / top) as f32 * h;
                l.rect(x, base - bar_h, slot * 0.6, bar_h, color);
                base -= bar_h;
            }
        }
        l.legend(&[
            (GREEN, "Flyttet".to_owned()),
            (ORANGE, "Venter".to_owned()),
            (RED, "Dobbelt".to_owned()),
            (PURPLE, format!("Nye hos {to}")),
        ]);
    }

    draw(&l, f, &month_label)
}

fn capitalised(s: &str) -> String {
    text::vendor_name(s)
}

/// Draws the laid-out pages with a footer on each, and the document's metadata.
fn draw(l: &Layout, f: &MonthlyFigures, month_label: &str) -> Result<Vec<u8>, AppError> {
    let font = |data: &'static [u8]| {
        Font::new(data.into(), 0)
            .ok_or_else(|| AppError::failed("write the PDF", "the font does not load"))
    };
    let (regular, bold) = (font(REGULAR)?, font(BOLD)?);
    let mut document = Document::new();
    // In UTC, said so: the PDF date format's offset is then exact in any season.
    let created = {
        use chrono::{Datelike, Timelike};
        let at = f.generated_at;
        PdfDateTime::new(u16::try_from(at.year()).unwrap_or(0))
            .month(at.month() as u8)
            .day(at.day() as u8)
            .hour(at.hour() as u8)
            .minute(at.minute() as u8)
            .second(at.second() as u8)
            .utc_offset_hour(0)
            .utc_offset_minute(0)
    };
    document.set_metadata(
        Metadata::new()
            .title(format!(
                "Månedsrapport for velferdsteknologi – {} – {month_label}",
                f.scope_title
            ))
            .language("nb-NO".to_owned())
            .creator("vft".to_owned())
            .creation_date(created),
    );
    let pages = l.pages.len();
    let settings = || {
        PageSettings::from_wh(PAGE_W, PAGE_H)
            .ok_or_else(|| AppError::failed("write the PDF", "the page size is invalid"))
    };
    for (n, ops) in l.pages.iter().enumerate() {
        let mut page = document.start_page_with(settings()?);
        let mut surface = page.surface();
        let footer = [
            Op::Line {
                points: vec![(LEFT, PAGE_H - 40.0), (RIGHT, PAGE_H - 40.0)],
                width: 0.5,
                color: RULE,
                dashed: false,
            },
            Op::Text {
                x: LEFT,
                y: PAGE_H - 28.0,
                size: 7.5,
                bold: false,
                color: GREY,
                text: format!("vft · Månedsrapport · {} · {month_label}", f.scope_title),
            },
            Op::Text {
                x: RIGHT - l.metrics.width(&page_number(n + 1, pages), 7.5, false),
                y: PAGE_H - 28.0,
                size: 7.5,
                bold: false,
                color: GREY,
                text: page_number(n + 1, pages),
            },
        ];
        for op in ops.iter().chain(&footer) {
            match op {
                Op::Text {
                    x,
                    y,
                    size,
                    bold: b,
                    color,
                    text,
                } => {
                    surface.set_fill(Some(fill(*color)));
                    surface.set_stroke(None);
                    surface.draw_text(
                        Point::from_xy(*x, *y),
                        if *b { bold.clone() } else { regular.clone() },
                        *size,
                        text,
                        false,
                        TextDirection::Auto,
                    );
                }
                Op::Rect { x, y, w, h, color } => {
                    let Some(rect) = Rect::from_xywh(*x, *y, *w, *h) else {
                        continue;
                    };
                    let mut pb = PathBuilder::new();
                    pb.push_rect(rect);
                    if let Some(path) = pb.finish() {
                        surface.set_fill(Some(fill(*color)));
                        surface.set_stroke(None);
                        surface.draw_path(&path);
                    }
                }
                Op::Line {
                    points,
                    width,
                    color,
                    dashed,
                } => {
                    let mut pb = PathBuilder::new();
                    for (i, (x, y)) in points.iter().enumerate() {
                        if i == 0 {
                            pb.move_to(*x, *y);
                        } else {
                            pb.line_to(*x, *y);
                        }
                    }
                    if let Some(path) = pb.finish() {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            paint: rgb::Color::new(color.0, color.1, color.2).into(),
                            width: *width,
                            dash: dashed.then(|| StrokeDash {
                                array: vec![4.0, 3.0],
                                offset: 0.0,
                            }),
                            ..Stroke::default()
                        }));
                        surface.draw_path(&path);
                    }
                }
            }
        }
        surface.finish();
        page.finish();
    }
    document
        .finish()
        .map_err(|e| AppError::failed("write the PDF", format!("{e:?}")))
}

fn page_number(n: usize, of: usize) -> String {
    format!("Side {n} av {of}")
}

fn fill(color: Rgb) -> Fill {
    Fill {
        paint: rgb::Color::new(color.0, color.1, color.2).into(),
        opacity: NormalizedF32::ONE,
        ..Fill::default()
    }
}

// The PDF's words use these; kept here so a font without them fails the test below, not a
// report in production.
#[cfg(test)]
mod tests {
    use super::text::{MINUS, NBSP};
    use super::*;

    #[test]
    fn the_fonts_have_every_letter_the_report_writes() {
        let metrics = Metrics::load().expect("fonts");
        for face in [&metrics.regular, &metrics.bold] {
            for c in "æøåÆØÅ–·→%".chars().chain([NBSP, MINUS]) {
                assert!(face.glyph_index(c).is_some(), "{c:?} missing");
            }
        }
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(count_axis(1033.0), (500.0, 1500.0));
        assert_eq!(count_axis(3.0), (1.0, 3.0));
        assert_eq!(count_axis(0.0), (1.0, 4.0));
        assert_eq!(count_axis(40.0), (10.0, 40.0));
    }
}
