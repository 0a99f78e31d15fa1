//! What a figure shows, as plain data: panels with axes, series and heatmap cells. Figure
//! builders fill these from a run's CSVs; `render` draws them. Keeping the two apart lets the
//! tests count the series and check the axes against the data without looking at pixels.

/// How values map onto an axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    Log,
}

/// Which tick labels an axis gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Ticks {
    Auto,
    /// Whole numbers only (epochs, layer counts).
    Integer,
    /// Names at 0, 1, 2, … (bar charts).
    Categories(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Axis {
    pub label: String,
    pub scale: Scale,
    /// In data units (positive on a log axis).
    pub range: (f64, f64),
    pub ticks: Ticks,
}

impl Axis {
    /// An axis fitted to `values` with a margin of 5 % of their span on each side (a factor on
    /// a log axis). Non-finite values and, on a log axis, values ≤ 0 are ignored.
    pub fn fit(
        label: impl Into<String>,
        scale: Scale,
        values: impl IntoIterator<Item = f64>,
    ) -> Self {
        let v: Vec<f64> = values
            .into_iter()
            .filter(|v| v.is_finite() && (scale == Scale::Linear || *v > 0.0))
            .collect();
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let range = if v.is_empty() {
            match scale {
                Scale::Linear => (0.0, 1.0),
                Scale::Log => (0.1, 10.0),
            }
        } else {
            match scale {
                Scale::Linear => {
                    let pad = if hi > lo {
                        0.05 * (hi - lo)
                    } else {
                        0.05 * hi.abs().max(1e-3)
                    };
                    (lo - pad, hi + pad)
                }
                Scale::Log => {
                    let f = if hi > lo { (hi / lo).powf(0.05) } else { 1.5 };
                    (lo / f, hi * f)
                }
            }
        };
        Axis {
            label: label.into(),
            scale,
            range,
            ticks: Ticks::Auto,
        }
    }
    /// A linear axis fitted to `values` that starts at 0 when they are all ≥ 0 and the
    /// smallest is under half the largest (bars, counts, bytes).
    pub fn fit_from_zero(label: impl Into<String>, values: impl IntoIterator<Item = f64>) -> Self {
        let v: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        let mut a = Self::fit(label, Scale::Linear, v.iter().copied());
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if lo >= 0.0 && lo <= 0.5 * hi {
            a.range.0 = 0.0;
        }
        a
    }
    pub fn integer(mut self) -> Self {
        self.ticks = Ticks::Integer;
        self
    }
    /// A category axis: names at 0..n, with half a slot of room on each side.
    pub fn categories(label: impl Into<String>, names: Vec<String>) -> Self {
        Axis {
            label: label.into(),
            scale: Scale::Linear,
            range: (-0.5, names.len() as f64 - 0.5),
            ticks: Ticks::Categories(names),
        }
    }
    /// Whether `v` lies on the axis (a log axis holds only positive values).
    pub fn contains(&self, v: f64) -> bool {
        let ok = v >= self.range.0 - 1e-12 * self.range.0.abs()
            && v <= self.range.1 + 1e-12 * self.range.1.abs();
        ok && (self.scale == Scale::Linear || v > 0.0)
    }
    /// A value in drawing coordinates (log10 on a log axis).
    pub fn to_coord(&self, v: f64) -> f64 {
        match self.scale {
            Scale::Linear => v,
            Scale::Log => v.log10(),
        }
    }
    pub fn coord_range(&self) -> (f64, f64) {
        (self.to_coord(self.range.0), self.to_coord(self.range.1))
    }
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Line,
    Dashed,
    Points,
    LinePoints,
    DashedPoints,
}

/// A colour: an entry of the colour-blind-safe palette, or the grey used for references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Palette(usize),
    Grey,
}

#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text; empty for no legend entry (reference lines).
    pub label: String,
    pub colour: Colour,
    pub mark: Mark,
    pub points: Vec<(f64, f64)>,
    /// A shaded band (x, low, high), e.g. mean ± std over seeds.
    pub band: Vec<(f64, f64, f64)>,
    /// Error bars: per point (x low, x high, y low, y high); empty for none.
    pub bars: Vec<(f64, f64, f64, f64)>,
    /// When not empty, point i is coloured by `values[i]` on the figure's colour bar.
    pub values: Vec<f64>,
}

impl Series {
    pub fn new(
        label: impl Into<String>,
        colour: Colour,
        mark: Mark,
        points: Vec<(f64, f64)>,
    ) -> Self {
        Series {
            label: label.into(),
            colour,
            mark,
            points,
            band: vec![],
            bars: vec![],
            values: vec![],
        }
    }
    pub fn band(mut self, band: Vec<(f64, f64, f64)>) -> Self {
        self.band = band;
        self
    }
    /// Vertical error bars of ± `err[i]` around point i.
    pub fn y_errors(mut self, err: &[f64]) -> Self {
        self.bars = self
            .points
            .iter()
            .zip(err)
            .map(|(p, e)| (p.0, p.0, p.1 - e, p.1 + e))
            .collect();
        self
    }
    /// Every value this series puts on the panel: (x, y) pairs including bands and bars.
    pub fn extent(&self) -> Vec<(f64, f64)> {
        let mut v = self.points.clone();
        for b in &self.band {
            v.push((b.0, b.1));
            v.push((b.0, b.2));
        }
        for b in &self.bars {
            v.push((b.0, b.2));
            v.push((b.1, b.3));
        }
        v
    }
}

/// A heatmap cell: a rectangle coloured by `value` on the figure's colour bar, with `text`.
#[derive(Debug, Clone)]
pub struct Cell {
    pub x: (f64, f64),
    pub y: (f64, f64),
    pub value: f64,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
    pub cells: Vec<Cell>,
}

impl Panel {
    /// A panel whose axes are fitted to its series (see `Axis::fit`).
    pub fn fitted(
        title: impl Into<String>,
        x: (&str, Scale),
        y: (&str, Scale),
        series: Vec<Series>,
    ) -> Self {
        let pts: Vec<(f64, f64)> = series.iter().flat_map(Series::extent).collect();
        Panel {
            title: title.into(),
            x: Axis::fit(x.0, x.1, pts.iter().map(|p| p.0)),
            y: Axis::fit(y.0, y.1, pts.iter().map(|p| p.1)),
            series,
            cells: vec![],
        }
    }
    /// Series with a legend entry or shown as data (references excluded).
    pub fn data_series(&self) -> usize {
        self.series
            .iter()
            .filter(|s| s.colour != Colour::Grey)
            .count()
    }
}

/// The colour scale of point values or heatmap cells (viridis).
#[derive(Debug, Clone)]
pub struct ColourBar {
    pub label: String,
    pub range: (f64, f64),
    /// Colours spaced by log(value + 1) (epochs).
    pub log: bool,
    /// High values dark (errors: worse is darker); otherwise high values light.
    pub high_dark: bool,
}

impl ColourBar {
    fn t(&self, v: f64) -> f64 {
        let f = |v: f64| if self.log { (v.max(0.0) + 1.0).ln() } else { v };
        let (lo, hi) = (f(self.range.0), f(self.range.1));
        let t = if hi > lo {
            (f(v) - lo) / (hi - lo)
        } else {
            0.5
        };
        t.clamp(0.0, 1.0)
    }
    /// Position on viridis in [0, 0.92] (its last yellow is too faint on white).
    pub fn position(&self, v: f64) -> f64 {
        let t = self.t(v);
        0.92 * if self.high_dark { 1.0 - t } else { t }
    }
}

#[derive(Debug, Clone)]
pub struct Figure {
    /// File stem: `<name>.svg`, `<name>.png`.
    pub name: String,
    pub title: String,
    pub panels: Vec<Panel>,
    pub colour_bar: Option<ColourBar>,
}

impl Figure {
    pub fn new(name: &str, title: impl Into<String>, panels: Vec<Panel>) -> Self {
        Figure {
            name: name.into(),
            title: title.into(),
            panels,
            colour_bar: None,
        }
    }
    /// Legend entries: the first series of each label, in order.
    pub fn legend(&self) -> Vec<&Series> {
        let mut seen = std::collections::BTreeSet::new();
        self.panels
            .iter()
            .flat_map(|p| &p.series)
            .filter(|s| !s.label.is_empty() && seen.insert(s.label.clone()))
            .collect()
    }
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, s)
}

/// Points grouped by x (in order of x): (x, mean of y, std of y, count).
pub fn by_x(points: &[(f64, f64)]) -> Vec<(f64, f64, f64, usize)> {
    let mut p: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.1.is_finite()).collect();
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = vec![];
    let mut i = 0;
    while i < p.len() {
        let j = (i..p.len()).find(|&j| p[j].0 != p[i].0).unwrap_or(p.len());
        let ys: Vec<f64> = p[i..j].iter().map(|q| q.1).collect();
        let (m, s) = mean_std(&ys);
        out.push((p[i].0, m, s, ys.len()));
        i = j;
    }
    out
}

/// A series of means over repeats at each x, with a shaded ± std band when there are repeats.
pub fn mean_series(
    label: impl Into<String>,
    colour: Colour,
    mark: Mark,
    points: &[(f64, f64)],
) -> Series {
    let agg = by_x(points);
    let s = Series::new(
        label,
        colour,
        mark,
        agg.iter().map(|a| (a.0, a.1)).collect(),
    );
    if agg.iter().any(|a| a.3 > 1) {
        s.band(agg.iter().map(|a| (a.0, a.1 - a.2, a.1 + a.2)).collect())
    } else {
        s
    }
}
