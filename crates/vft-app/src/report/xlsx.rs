//! The report as an XLSX workbook (rust_xlsxwriter): one sheet per part, each number the API's
//! value unchanged (counts, hours, milliseconds, shares as fractions shown as percentages), so
//! the workbook can be checked against the API cell for cell and computed on further.

use super::figures::MonthlyFigures;
use super::text;
use crate::AppError;
use rust_xlsxwriter::{DocProperties, Format, Workbook, Worksheet, XlsxError};
use vft_domain::DeviceTable;

fn failed(e: XlsxError) -> AppError {
    AppError::failed("write the workbook", e.to_string())
}

/// One worksheet, written row by row.
struct Sheet<'a> {
    ws: &'a mut Worksheet,
    bold: Format,
}

impl Sheet<'_> {
    fn text(&mut self, row: u32, col: u16, s: &str) -> Result<(), AppError> {
        self.ws.write_string(row, col, s).map_err(failed)?;
        Ok(())
    }

    fn head(&mut self, row: u32, cells: &[&str]) -> Result<(), AppError> {
        for (col, s) in cells.iter().enumerate() {
            self.ws
                .write_string_with_format(row, col as u16, *s, &self.bold)
                .map_err(failed)?;
        }
        Ok(())
    }

    fn num(&mut self, row: u32, col: u16, n: f64) -> Result<(), AppError> {
        self.ws.write_number(row, col, n).map_err(failed)?;
        Ok(())
    }

    fn num_with(&mut self, row: u32, col: u16, n: f64, f: &Format) -> Result<(), AppError> {
        self.ws
            .write_number_with_format(row, col, n, f)
            .map_err(failed)?;
        Ok(())
    }

    /// A number, or an empty cell where the API says `null`.
    fn opt(&mut self, row: u32, col: u16, n: Option<f64>, f: &Format) -> Result<(), AppError> {
        match n {
            Some(n) => self.num_with(row, col, n, f),
            None => Ok(()),
        }
    }

    fn widths(&mut self, widths: &[f64]) -> Result<(), AppError> {
        for (col, w) in widths.iter().enumerate() {
            self.ws.set_column_width(col as u16, *w).map_err(failed)?;
        }
        Ok(())
    }
}

fn sheet<'a>(book: &'a mut Workbook, name: &str, bold: &Format) -> Result<Sheet<'a>, AppError> {
    let ws = book.add_worksheet();
    ws.set_name(name).map_err(failed)?;
    // The head row stays in view while scrolling; printed, each sheet is A4 landscape, one
    // page wide, with grid lines and its name in the header.
    ws.set_freeze_panes(1, 0).map_err(failed)?;
    ws.set_paper_size(9)
        .set_landscape()
        .set_print_fit_to_pages(1, 0)
        .set_print_gridlines(true)
        .set_header("&L&A&Rvft – månedsrapport");
    Ok(Sheet {
        ws,
        bold: bold.clone(),
    })
}

fn yes_no(b: bool) -> &'static str {
    if b { "ja" } else { "nei" }
}

pub fn render(f: &MonthlyFigures) -> Result<Vec<u8>, AppError> {
    let mut book = Workbook::new();
    let title = format!(
        "Månedsrapport for velferdsteknologi – {} – {} {}",
        f.scope_title,
        text::month_name(f.month.month()),
        f.month.year()
    );
    book.set_properties(
        &DocProperties::new()
            .set_title(&title)
            .set_author("vft")
            .set_comment("Samme tall som vft sitt API for samme utvalg og måned."),
    );
    let bold = Format::new().set_bold();
    let count = Format::new().set_num_format("0");
    let share1 = Format::new().set_num_format("0.0%");
    let share2 = Format::new().set_num_format("0.00%");
    let hours = Format::new().set_num_format("0.00");
    let shown = f.shown();
    let month_index = shown.saturating_sub(1);

    // About the report.
    {
        let mut s = sheet(&mut book, "Rapport", &bold)?;
        s.head(0, &["Månedsrapport for velferdsteknologi"])?;
        let published = f.published.get(month_index).copied().unwrap_or(false);
        let rows: [(&str, String); 8] = [
            ("Utvalg", f.scope_title.clone()),
            (
                "Måned",
                format!("{} {}", text::month_name(f.month.month()), f.month.year()),
            ),
            ("Måned (ÅÅÅÅ-MM)", f.month.to_string()),
            ("Laget", text::generated(f.generated_at)),
            ("Publisert (lukket)", yes_no(published).to_owned()),
            (
                "Tallgrunnlag",
                if f.own_view {
                    "Kommunens egne data, slik kommunens brukere ser dem i vft".to_owned()
                } else {
                    "Regionens data, slik koordinatoren ser dem i vft".to_owned()
                },
            ),
            (
                "Leverandørbytte",
                format!(
                    "{} → {}",
                    text::vendor_name(&f.transition_from),
                    text::vendor_name(&f.transition_to)
                ),
            ),
            (
                "Kilde",
                "vft: de samme tallene som API-et gir for samme utvalg og måned".to_owned(),
            ),
        ];
        for (i, (k, v)) in rows.iter().enumerate() {
            s.text(i as u32 + 1, 0, k)?;
            s.text(i as u32 + 1, 1, v)?;
        }
        s.widths(&[22.0, 70.0])?;
    }

    // The monthly table and the recipients: kind, label, one column per month shown.
    let table_sheet = |book: &mut Workbook,
                       name: &str,
                       table: &DeviceTable,
                       published: Option<&[bool]>|
     -> Result<(), AppError> {
        let mut s = sheet(book, name, &bold)?;
        let mut head = vec!["Type", "Teknologi"];
        let months: Vec<String> = f.months.iter().map(ToString::to_string).collect();
        head.extend(months.iter().map(String::as_str));
        s.head(0, &head)?;
        for (r, row) in table.rows.iter().enumerate() {
            let r = r as u32 + 1;
            s.text(r, 0, row.kind.id())?;
            s.text(r, 1, &row.label)?;
            for (c, n) in row.counts.iter().take(shown).enumerate() {
                s.opt(r, c as u16 + 2, n.map(|n| n as f64), &count)?;
            }
        }
        let r = table.rows.len() as u32 + 1;
        s.head(r, &["total", "Sum"])?;
        for (c, n) in table.total.iter().take(shown).enumerate() {
            s.opt(r, c as u16 + 2, n.map(|n| n as f64), &count)?;
        }
        if let Some(published) = published {
            s.text(r + 1, 0, "published")?;
            s.text(r + 1, 1, "Publisert")?;
            for (c, p) in published.iter().take(shown).enumerate() {
                s.text(r + 1, c as u16 + 2, yes_no(*p))?;
            }
        }
        let mut widths = vec![20.0, 22.0];
        widths.extend(std::iter::repeat_n(9.0, shown));
        s.widths(&widths)
    };
    table_sheet(&mut book, "Enheter", &f.devices, Some(&f.published))?;
    table_sheet(&mut book, "Mottakere", &f.recipients, None)?;

    // Corrections of published months.
    {
        let mut s = sheet(&mut book, "Rettelser", &bold)?;
        s.head(
            0,
            &[
                "Måned",
                "Type",
                "Teknologi",
                "Publisert",
                "Nå",
                "Differanse",
            ],
        )?;
        for (i, c) in f.corrections.iter().enumerate() {
            let r = i as u32 + 1;
            s.text(r, 0, &c.month.to_string())?;
            s.text(r, 1, c.kind.id())?;
            s.text(r, 2, c.kind.label_nb())?;
            s.num(r, 3, c.published as f64)?;
            s.num(r, 4, c.current as f64)?;
            s.num(r, 5, c.difference as f64)?;
        }
        s.widths(&[10.0, 20.0, 22.0, 10.0, 10.0, 10.0])?;
    }

    // The month's changes: per type, then line by line.
    {
        let mut s = sheet(&mut book, "Endringer", &bold)?;
        s.head(0, &["Type", "Teknologi", "Før", "Etter", "Endring"])?;
        for (i, row) in f.changes.rows.iter().enumerate() {
            let r = i as u32 + 1;
            s.text(r, 0, row.kind.id())?;
            s.text(r, 1, &row.label)?;
            s.num(r, 2, row.before as f64)?;
            s.num(r, 3, row.after as f64)?;
            s.num(r, 4, row.delta as f64)?;
        }
        s.widths(&[20.0, 22.0, 10.0, 10.0, 10.0])?;
    }
    {
        let mut s = sheet(&mut book, "Endringslinjer", &bold)?;
        s.head(
            0,
            &[
                "Type",
                "Teknologi",
                "Årsak (id)",
                "Årsak",
                "Grunn (id)",
                "Grunn",
                "Endring",
                "Enheter",
            ],
        )?;
        let mut r = 1;
        for row in &f.changes.rows {
            for line in &row.lines {
                let cause = serde_json::to_value(line.cause)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                s.text(r, 0, row.kind.id())?;
                s.text(r, 1, &row.label)?;
                s.text(r, 2, &cause)?;
                s.text(r, 3, text::cause(line.cause))?;
                if let Some(reason) = &line.reason {
                    s.text(r, 4, reason)?;
                    s.text(r, 5, text::reason(reason))?;
                }
                s.num(r, 6, line.delta as f64)?;
                s.num(r, 7, line.device_count as f64)?;
                r += 1;
            }
        }
        s.widths(&[20.0, 22.0, 18.0, 32.0, 20.0, 20.0, 10.0, 10.0])?;
    }

    // The response centre, month by month, against the standard.
    {
        let mut s = sheet(&mut book, "Responssenter", &bold)?;
        let outcomes: Vec<String> = f
            .response
            .first()
            .map(|r| r.outcomes.keys().cloned().collect())
            .unwrap_or_default();
        let mut head: Vec<String> = [
            "Måned",
            "Utløst",
            "Mottatt",
            "Besvart",
            "Lukket",
            "Aldri besvart",
            "Median (ms)",
            "90-persentil (ms)",
            "Lengste (ms)",
            "Innen 60 s",
            "Krav 60 s",
            "Oppfylt 60 s",
            "Innen 180 s",
            "Krav 180 s",
            "Oppfylt 180 s",
        ]
        .map(str::to_owned)
        .to_vec();
        head.extend(outcomes.iter().map(|o| text::outcome(o).to_owned()));
        s.head(0, &head.iter().map(String::as_str).collect::<Vec<_>>())?;
        for (i, m) in f.response.iter().enumerate() {
            let r = i as u32 + 1;
            s.text(r, 0, &m.month.to_string())?;
            for (c, n) in [
                m.triggered,
                m.received,
                m.acknowledged,
                m.closed,
                m.never_acknowledged,
            ]
            .iter()
            .enumerate()
            {
                s.num(r, c as u16 + 1, *n as f64)?;
            }
            let times = m.response.as_ref();
            s.opt(r, 6, times.map(|t| t.median_ms as f64), &count)?;
            s.opt(r, 7, times.map(|t| t.p90_ms as f64), &count)?;
            s.opt(r, 8, times.map(|t| t.max_ms as f64), &count)?;
            s.opt(r, 9, m.share_within_60s, &share1)?;
            s.num_with(r, 10, f.standard.within_60s, &share1)?;
            if let Some(meets) = m.meets_60s {
                s.text(r, 11, yes_no(meets))?;
            }
            s.opt(r, 12, m.share_within_180s, &share1)?;
            s.num_with(r, 13, f.standard.within_180s, &share1)?;
            if let Some(meets) = m.meets_180s {
                s.text(r, 14, yes_no(meets))?;
            }
            for (c, o) in outcomes.iter().enumerate() {
                s.num(
                    r,
                    15 + c as u16,
                    m.outcomes.get(o).copied().unwrap_or(0) as f64,
                )?;
            }
        }
        let mut widths = vec![10.0];
        widths.extend(std::iter::repeat_n(12.0, head.len() - 1));
        s.widths(&widths)?;
    }

    // The vendors' service level in the month.
    {
        let mut s = sheet(&mut book, "Leverandører", &bold)?;
        s.head(
            0,
            &[
                "Leverandør",
                "Enheter",
                "Timer i drift",
                "Timer uten kontakt",
                "Tilgjengelighet",
                "Feil",
                "Alarmer",
                "Aldri besvart",
                "Innen 60 s",
                "Innen 180 s",
                "Median (ms)",
                "90-persentil (ms)",
            ],
        )?;
        for (i, v) in f.vendors.rows.iter().enumerate() {
            let r = i as u32 + 1;
            s.text(r, 0, &v.vendor)?;
            s.num(r, 1, v.devices as f64)?;
            s.num_with(r, 2, v.hours_in_service, &hours)?;
            s.num_with(r, 3, v.hours_without_contact, &hours)?;
            s.opt(r, 4, v.availability, &share2)?;
            s.num(r, 5, v.faults as f64)?;
            s.num(r, 6, v.alarms as f64)?;
            s.num(r, 7, v.never_acknowledged as f64)?;
            s.opt(r, 8, v.share_within_60s, &share1)?;
            s.opt(r, 9, v.share_within_180s, &share1)?;
            s.opt(r, 10, v.response_median_ms.map(|n| n as f64), &count)?;
            s.opt(r, 11, v.response_p90_ms.map(|n| n as f64), &count)?;
        }
        s.widths(&[
            14.0, 10.0, 14.0, 19.0, 16.0, 8.0, 10.0, 14.0, 12.0, 12.0, 13.0, 17.0,
        ])?;
    }

    // The vendor transition, month by month.
    {
        let name = "Leverandørbytte";
        let mut s = sheet(&mut book, name, &bold)?;
        s.head(
            0,
            &[
                "Kommune",
                "Navn",
                "Måned",
                "Flyttet",
                "Venter",
                "Dobbelt",
                "Nye",
                "Andel flyttet",
            ],
        )?;
        for (i, p) in f.progress.iter().enumerate() {
            let r = i as u32 + 1;
            s.text(r, 0, p.municipality.as_str())?;
            s.text(r, 1, &f.name_of(&p.municipality))?;
            s.text(r, 2, &p.month.to_string())?;
            s.num(r, 3, p.migrated as f64)?;
            s.num(r, 4, p.pending as f64)?;
            s.num(r, 5, p.double as f64)?;
            s.num(r, 6, p.new as f64)?;
            s.opt(r, 7, p.share_migrated, &share1)?;
        }
        s.widths(&[10.0, 16.0, 10.0, 10.0, 10.0, 10.0, 10.0, 14.0])?;
    }

    book.save_to_buffer().map_err(failed)
}
