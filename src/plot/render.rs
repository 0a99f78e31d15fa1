//! Draws a `Figure` with plotters: panels in a grid, the legend and the colour bar in a column
//! to the right (never over the data), a colour-blind-safe palette, fonts sized for a figure
//! printed at single-column width.

use super::figure::{Axis, Colour, ColourBar, Figure, Mark, Panel, Scale, Ticks};
use anyhow::{anyhow, bail, Result};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// Okabe & Ito's colour-blind-safe palette without its yellow (too faint on white), then
/// three dark colours from Paul Tol's muted set.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0x00, 0x9E, 0x73), // bluish green
    RGBColor(0xCC, 0x79, 0xA7), // reddish purple
    RGBColor(0x00, 0x00, 0x00), // black
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x88, 0x22, 0x55), // wine
    RGBColor(0x33, 0x22, 0x88), // indigo
    RGBColor(0x99, 0x99, 0x33), // olive
];
const GREY: RGBColor = RGBColor(0x77, 0x77, 0x77);
const FONT: &str = "sans-serif";
const TITLE: u32 = 28;
const PANEL_TITLE: u32 = 24;
const DESC: u32 = 22;
const TICK: u32 = 19;
const LEGEND: u32 = 20;
const PANEL_W: u32 = 600;
const PANEL_H: u32 = 480;
const BAR_W: u32 = 150;

/// Output formats. plotters writes SVG and PNG; it has no PDF backend.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
    Pdf,
}

impl Format {
    pub fn ext(self) -> &'static str {
        match self {
            Format::Svg => "svg",
            Format::Png => "png",
            Format::Pdf => "pdf",
        }
    }
    pub fn from_ext(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "svg" => Some(Format::Svg),
            "png" => Some(Format::Png),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }
}

pub fn colour(c: Colour) -> RGBColor {
    match c {
        Colour::Palette(i) => PALETTE[i % PALETTE.len()],
        Colour::Grey => GREY,
    }
}

fn viridis(t: f64) -> RGBColor {
    use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
    ViridisRGB.get_color(t.clamp(0.0, 1.0) as f32)
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

fn grid(n: usize) -> (usize, usize) {
    let cols = n.clamp(1, 3);
    (n.max(1).div_ceil(cols), cols)
}

fn legend_width(fig: &Figure) -> u32 {
    let longest = fig.legend().iter().map(|s| s.label.chars().count()).max();
    match longest {
        None => 0,
        Some(n) => (70 + 11 * n as u32).clamp(150, 420),
    }
}

/// Pixel size of a figure: a fixed size per panel plus the legend and colour bar columns.
pub fn size(fig: &Figure) -> (u32, u32) {
    let (rows, cols) = grid(fig.panels.len());
    let bar = if fig.colour_bar.is_some() { BAR_W } else { 0 };
    let width = cols as u32 * PANEL_W + legend_width(fig) + bar;
    (
        width.max(40 + 16 * fig.title.chars().count() as u32),
        rows as u32 * PANEL_H + if fig.title.is_empty() { 0 } else { 50 },
    )
}

/// Writes `fig` to `stem.<ext>` for each format; returns the files.
pub fn save(fig: &Figure, stem: &Path, formats: &[Format]) -> Result<Vec<PathBuf>> {
    let size = size(fig);
    let mut out = vec![];
    for &f in formats {
        let mut path = stem.as_os_str().to_owned();
        path.push(".");
        path.push(f.ext());
        let path = PathBuf::from(path);
        match f {
            Format::Svg => draw(fig, SVGBackend::new(&path, size).into_drawing_area())?,
            Format::Png => draw(fig, BitMapBackend::new(&path, size).into_drawing_area())?,
            Format::Pdf => bail!(
                "plotters, the plotting library, cannot write PDF: use --format svg and convert it (e.g. `rsvg-convert -f pdf -o {}.pdf {}.svg`)",
                fig.name,
                fig.name
            ),
        }
        out.push(path);
    }
    Ok(out)
}

pub fn draw<DB: DrawingBackend>(fig: &Figure, root: DrawingArea<DB, Shift>) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let body = if fig.title.is_empty() {
        root.clone()
    } else {
        root.titled(&fig.title, (FONT, TITLE)).map_err(err)?
    };
    let (w, _) = body.dim_in_pixel();
    let side = legend_width(fig) + if fig.colour_bar.is_some() { BAR_W } else { 0 };
    let (plots, right) = body.split_horizontally(w - side);
    let (rows, cols) = grid(fig.panels.len());
    for (p, area) in fig.panels.iter().zip(plots.split_evenly((rows, cols))) {
        draw_panel(fig, p, &area)?;
    }
    let (bar, legend) = right.split_horizontally(if fig.colour_bar.is_some() { BAR_W } else { 0 });
    if let Some(cb) = &fig.colour_bar {
        draw_colour_bar(cb, &bar)?;
    }
    draw_legend(fig, &legend)?;
    root.present().map_err(err)?;
    Ok(())
}

/// A number for a tick label: 3 significant digits, trailing zeros dropped.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.1e}");
        return s.replace(".0e", "e");
    }
    let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn tick(a: &Axis, c: f64) -> String {
    let v = match a.scale {
        Scale::Linear => c,
        Scale::Log => 10f64.powf(c),
    };
    match &a.ticks {
        Ticks::Categories(names) => {
            let i = c.round();
            if (c - i).abs() > 1e-6 || i < 0.0 || i as usize >= names.len() {
                String::new()
            } else {
                names[i as usize].clone()
            }
        }
        Ticks::Integer if (v - v.round()).abs() > 1e-6 => String::new(),
        Ticks::Integer => format!("{}", v.round() as i64),
        Ticks::Auto if a.scale == Scale::Log => {
            let (lo, hi) = a.coord_range();
            let span = hi - lo;
            if !(0.5..3.0).contains(&span) {
                return number(v);
            }
            // Key points every 0.1 decade: label 1, 2, 5 × 10^k (only 10^k over 1.5 decades).
            let nice: &[f64] = if span < 1.5 {
                &[1.0, 2.0, 5.0, 10.0]
            } else {
                &[1.0, 10.0]
            };
            let k = c.floor();
            match nice.iter().find(|n| (c - k - n.log10()).abs() < 0.01) {
                Some(n) => number(n * 10f64.powf(k)),
                None => String::new(),
            }
        }
        Ticks::Auto => number(v),
    }
}

/// How many labels to ask plotters for: whole decades on a log axis spanning three or more,
/// tenths of a decade on a shorter one (labelled at 1, 2, 5 by `tick`).
fn labels(a: &Axis) -> usize {
    let (lo, hi) = a.coord_range();
    let span = hi - lo;
    match (&a.ticks, a.scale) {
        (Ticks::Categories(n), _) => 2 * n.len() + 1,
        (_, Scale::Log) if span >= 3.0 => (span.ceil() as usize + 1).min(8),
        (_, Scale::Log) if span >= 0.5 => (10.0 * span).ceil() as usize + 1,
        _ => 8,
    }
}

fn label_area(a: &Axis) -> u32 {
    match &a.ticks {
        Ticks::Categories(n) => {
            let longest = n.iter().map(|s| s.chars().count()).max().unwrap_or(0) as u32;
            (30 + 11 * longest).max(92)
        }
        _ => 92,
    }
}

fn draw_panel<DB: DrawingBackend>(
    fig: &Figure,
    p: &Panel,
    area: &DrawingArea<DB, Shift>,
) -> Result<()> {
    let (x0, x1) = p.x.coord_range();
    let (y0, y1) = p.y.coord_range();
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, (FONT, PANEL_TITLE))
        .margin(14)
        .margin_right(26)
        .x_label_area_size(62)
        .y_label_area_size(label_area(&p.y))
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let xf = |c: &f64| tick(&p.x, *c);
    let yf = |c: &f64| tick(&p.y, *c);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(p.x.label.as_str())
        .y_desc(p.y.label.as_str())
        .x_label_formatter(&xf)
        .y_label_formatter(&yf)
        .x_labels(labels(&p.x))
        .y_labels(labels(&p.y))
        .label_style((FONT, TICK))
        .axis_desc_style((FONT, DESC))
        .bold_line_style(RGBColor(222, 222, 222))
        .light_line_style(RGBColor(244, 244, 244));
    if matches!(p.x.ticks, Ticks::Categories(_)) || !p.cells.is_empty() {
        mesh.disable_x_mesh();
    }
    if !p.cells.is_empty() {
        mesh.disable_y_mesh();
    }
    mesh.draw().map_err(err)?;

    let on = |a: &Axis, v: f64| v.is_finite() && (a.scale == Scale::Linear || v > 0.0);
    let to = |q: (f64, f64)| (p.x.to_coord(q.0), p.y.to_coord(q.1));
    if let Some(cb) = &fig.colour_bar {
        for c in &p.cells {
            let t = cb.position(c.value);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [to((c.x.0, c.y.0)), to((c.x.1, c.y.1))],
                    viridis(t).filled(),
                )))
                .map_err(err)?;
            let ink = if t < 0.55 { WHITE } else { BLACK };
            let style = TextStyle::from((FONT, TICK).into_font())
                .color(&ink)
                .pos(Pos::new(HPos::Center, VPos::Center));
            let mid = ((c.x.0 + c.x.1) / 2.0, (c.y.0 + c.y.1) / 2.0);
            chart
                .draw_series(std::iter::once(Text::new(c.text.clone(), to(mid), style)))
                .map_err(err)?;
        }
    }
    // Series whose points carry colour-bar values (the information plane's layers) get their
    // name at their last point, in their colour, nudged apart so no two overlap.
    let mut tags: Vec<(String, RGBColor, (i32, i32))> = vec![];
    for s in p
        .series
        .iter()
        .filter(|s| !s.values.is_empty() && !s.label.is_empty())
    {
        if let Some(q) = s
            .points
            .iter()
            .rev()
            .find(|q| on(&p.x, q.0) && on(&p.y, q.1))
        {
            tags.push((
                s.label.clone(),
                colour(s.colour),
                chart.backend_coord(&to(*q)),
            ));
        }
    }
    for s in &p.series {
        let c = colour(s.colour);
        let width = if s.colour == Colour::Grey { 2 } else { 3 };
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|q| on(&p.x, q.0) && on(&p.y, q.1))
            .map(|q| to(*q))
            .collect();
        if !s.band.is_empty() {
            let floor = |v: f64| if on(&p.y, v) { v } else { p.y.range.0 };
            let mut poly: Vec<(f64, f64)> = s.band.iter().map(|b| to((b.0, floor(b.2)))).collect();
            poly.extend(s.band.iter().rev().map(|b| to((b.0, floor(b.1)))));
            chart
                .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.18).filled())))
                .map_err(err)?;
        }
        for (b, q) in s.bars.iter().zip(&s.points) {
            let floor = |v: f64| if on(&p.y, v) { v } else { p.y.range.0 };
            let style = c.mix(0.7).stroke_width(2);
            if b.2 != b.3 {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![to((q.0, floor(b.2))), to((q.0, b.3))],
                        style,
                    )))
                    .map_err(err)?;
            }
            if b.0 != b.1 && on(&p.x, b.0) {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![to((b.0, q.1)), to((b.1, q.1))],
                        style,
                    )))
                    .map_err(err)?;
            }
        }
        match s.mark {
            Mark::Line | Mark::LinePoints => {
                chart
                    .draw_series(LineSeries::new(pts.clone(), c.stroke_width(width)))
                    .map_err(err)?;
            }
            Mark::Dashed | Mark::DashedPoints => {
                chart
                    .draw_series(DashedLineSeries::new(
                        pts.clone(),
                        12,
                        7,
                        c.stroke_width(width),
                    ))
                    .map_err(err)?;
            }
            Mark::Points => {}
        }
        if matches!(s.mark, Mark::Points | Mark::LinePoints | Mark::DashedPoints) {
            let radius = if s.values.is_empty() { 5 } else { 4 };
            for (i, q) in pts.iter().enumerate() {
                let fill = match (&fig.colour_bar, s.values.get(i)) {
                    (Some(cb), Some(v)) => viridis(cb.position(*v)),
                    _ => c,
                };
                chart
                    .draw_series(std::iter::once(Circle::new(*q, radius, fill.filled())))
                    .map_err(err)?;
            }
        }
    }
    tags.sort_by_key(|t| t.2 .1);
    let (bx, by) = area.get_base_pixel();
    let mut placed: Vec<(i32, i32)> = vec![];
    for (label, c, (x, y)) in tags {
        let mut y = y - 14;
        while placed
            .iter()
            .any(|p| (p.1 - y).abs() < 22 && (p.0 - x).abs() < 110)
        {
            y += 22;
        }
        placed.push((x, y));
        let style = TextStyle::from((FONT, TICK).into_font())
            .color(&c)
            .pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new(label, (x + 8 - bx, y - by), style))
            .map_err(err)?;
    }
    Ok(())
}

/// Ticks from `lo` to `hi` at 1, 2 or 5 × 10^k steps, about `n` of them.
fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = hi - lo;
    if span <= 0.0 || !span.is_finite() {
        return vec![lo];
    }
    let raw = span / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut out = vec![];
    let mut i = (lo / step).ceil();
    while i * step <= hi + 1e-9 * span {
        out.push(i * step);
        i += 1.0;
    }
    out
}

/// Colour-bar ticks: on a log (epoch) bar 0, then 1, 2, 5 × 10^k (powers of ten alone when
/// those are too many), then the last value unless a tick sits close to it.
fn bar_ticks(cb: &ColourBar) -> Vec<f64> {
    let (lo, hi) = cb.range;
    if !cb.log {
        return nice_ticks(lo, hi, 5);
    }
    let mut cands = vec![];
    let mut p = 1.0;
    while p <= hi {
        cands.extend(
            [p, 2.0 * p, 5.0 * p]
                .into_iter()
                .filter(|v| *v <= hi && *v > lo),
        );
        p *= 10.0;
    }
    if cands.len() > 7 {
        cands.retain(|v| (v.log10() - v.log10().round()).abs() < 1e-9);
    }
    let mut t = vec![lo.max(0.0)];
    t.extend(cands);
    // The last value is labelled; a tick too close below it makes way.
    let f = |v: f64| (v + 1.0).log10();
    if t.len() > 1
        && t.last()
            .is_some_and(|l| f(hi) - f(*l) < 0.15 * (f(hi) - f(lo)))
    {
        t.pop();
    }
    if t.last().is_some_and(|l| *l < hi) {
        t.push(hi);
    }
    t
}

fn draw_colour_bar<DB: DrawingBackend>(
    cb: &ColourBar,
    area: &DrawingArea<DB, Shift>,
) -> Result<()> {
    let f = |v: f64| {
        if cb.log {
            (v.max(0.0) + 1.0).log10()
        } else {
            v
        }
    };
    let inv = |c: f64| if cb.log { 10f64.powf(c) - 1.0 } else { c };
    let (lo, hi) = (f(cb.range.0), f(cb.range.1));
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let chart = ChartBuilder::on(area)
        .margin_top(70)
        .margin_bottom(80)
        .margin_left(8)
        .margin_right(BAR_W as i32 - 40)
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .map_err(err)?;
    let n = 120;
    let mut chart = chart;
    chart
        .draw_series((0..n).map(|i| {
            let a = lo + (hi - lo) * i as f64 / n as f64;
            let b = lo + (hi - lo) * (i + 1) as f64 / n as f64;
            let v = inv((a + b) / 2.0);
            Rectangle::new([(0.0, a), (1.0, b)], viridis(cb.position(v)).filled())
        }))
        .map_err(err)?;
    // Labels in the area's own pixels, next to the bar.
    let (bx, by) = area.get_base_pixel();
    let style = TextStyle::from((FONT, TICK).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for t in bar_ticks(cb) {
        let (px, py) = chart.backend_coord(&(1.0, f(t)));
        let (x, y) = (px - bx, py - by);
        area.draw(&PathElement::new(
            vec![(x, y), (x + 5, y)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
        let text = if cb.log {
            format!("{}", t.round() as i64)
        } else {
            number(t)
        };
        area.draw(&Text::new(text, (x + 8, y), style.clone()))
            .map_err(err)?;
    }
    let (w, h) = area.dim_in_pixel();
    let desc = TextStyle::from((FONT, DESC).into_font().transform(FontTransform::Rotate90))
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(
        cb.label.clone(),
        (w as i32 - 16, h as i32 / 2),
        desc,
    ))
    .map_err(err)?;
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(fig: &Figure, area: &DrawingArea<DB, Shift>) -> Result<()> {
    let entries = fig.legend();
    if entries.is_empty() {
        return Ok(());
    }
    let (_, h) = area.dim_in_pixel();
    let (row, top, x) = (30i32, 70i32, 10i32);
    let fit = ((h as i32 - top - 20) / row).max(1) as usize;
    let shown = if entries.len() > fit {
        fit - 1
    } else {
        entries.len()
    };
    let text = |s: String, y: i32| {
        Text::new(
            s,
            (x + 48, y),
            TextStyle::from((FONT, LEGEND).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
        )
    };
    for (i, s) in entries.iter().take(shown).enumerate() {
        let y = top + i as i32 * row;
        let c = colour(s.colour);
        match s.mark {
            Mark::Line | Mark::LinePoints => area
                .draw(&PathElement::new(
                    vec![(x, y), (x + 38, y)],
                    c.stroke_width(3),
                ))
                .map_err(err)?,
            Mark::Dashed | Mark::DashedPoints => area
                .draw(&DashedPathElement::new(
                    vec![(x, y), (x + 38, y)],
                    9,
                    5,
                    c.stroke_width(3),
                ))
                .map_err(err)?,
            Mark::Points => {}
        }
        if matches!(s.mark, Mark::Points | Mark::LinePoints | Mark::DashedPoints) {
            area.draw(&Circle::new((x + 19, y), 5, c.filled()))
                .map_err(err)?;
        }
        area.draw(&text(s.label.clone(), y)).map_err(err)?;
    }
    if shown < entries.len() {
        let y = top + shown as i32 * row;
        area.draw(&text(format!("… {} more", entries.len() - shown), y))
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WCAG contrast against white: every palette colour is at least 2:1 (yellow is 1.3:1).
    #[test]
    fn palette_colours_stand_out_on_white() {
        let lin = |c: u8| {
            let c = c as f64 / 255.0;
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        for c in PALETTE {
            let l = 0.2126 * lin(c.0) + 0.7152 * lin(c.1) + 0.0722 * lin(c.2);
            let contrast = 1.05 / (l + 0.05);
            assert!(contrast >= 2.0, "{c:?}: contrast {contrast:.2}");
        }
        let yellow = RGBColor(0xF0, 0xE4, 0x42);
        let l = 0.2126 * lin(yellow.0) + 0.7152 * lin(yellow.1) + 0.0722 * lin(yellow.2);
        assert!(1.05 / (l + 0.05) < 2.0);
    }

    #[test]
    fn tick_numbers_are_short() {
        assert_eq!(number(0.9712345), "0.971");
        assert_eq!(number(12.5), "12.5");
        assert_eq!(number(1000.0), "1000");
        assert_eq!(number(1e-5), "1e-5");
        assert_eq!(number(0.0), "0");
        let a = Axis::fit("epoch", Scale::Linear, [0.0, 4.0]).integer();
        assert_eq!(tick(&a, 2.0), "2");
        assert_eq!(tick(&a, 2.5), "");
        let t = nice_ticks(0.1, 0.5, 5);
        assert_eq!(t.len(), 5);
        assert!(t
            .iter()
            .zip([0.1, 0.2, 0.3, 0.4, 0.5])
            .all(|(a, b)| (a - b).abs() < 1e-12));
        let cb = ColourBar {
            label: "epoch".into(),
            range: (0.0, 274.0),
            log: true,
            high_dark: false,
        };
        assert_eq!(bar_ticks(&cb), [0.0, 1.0, 10.0, 100.0, 274.0]);
        let cb = ColourBar {
            range: (0.0, 1999.0),
            ..cb
        };
        assert_eq!(bar_ticks(&cb), [0.0, 1.0, 10.0, 100.0, 1999.0]);
    }
}
