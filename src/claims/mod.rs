//! Paper claims, checked by the tool. Each experiment declares its paper's headline claims: an
//! id, the paper's statement, the paper's own value, how the measured value is computed from
//! the files a finished run wrote, a comparison with a threshold, and the scale it applies to.
//! Thresholds live in the run's config (`[claims]`, overridable as `claims.<id>=…`), so a claim
//! is recomputed from a run directory alone (`stochlab check`), also for runs made before the
//! claim existed. A failed claim is a result, not an error.

pub mod check;
pub mod reproduce;

use crate::experiments::Entry;
use crate::run::table::CsvTable;
use anyhow::{anyhow, bail, Result};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use toml::{Table, Value};

/// The config section that holds thresholds; the runner owns it, like `seed`.
pub const SECTION: &str = "claims";
/// `claims.scale`: which config scale a run is (`cpu` default config, `full` paper scale).
pub const SCALE_KEY: &str = "scale";
pub const CLAIMS_CSV: &str = "claims.csv";

/// What a claim's threshold test is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expect {
    AtLeast(f64),
    AtMost(f64),
    /// Strictly above.
    Above(f64),
    /// Strictly below.
    Below(f64),
    /// Inside the closed interval [lo, hi].
    Within(f64, f64),
}

impl Expect {
    pub fn holds(&self, x: f64) -> bool {
        match *self {
            Expect::AtLeast(t) => x >= t,
            Expect::AtMost(t) => x <= t,
            Expect::Above(t) => x > t,
            Expect::Below(t) => x < t,
            Expect::Within(lo, hi) => (lo..=hi).contains(&x),
        }
    }

    pub fn text(&self) -> String {
        match *self {
            Expect::AtLeast(t) => format!("≥ {}", num(t)),
            Expect::AtMost(t) => format!("≤ {}", num(t)),
            Expect::Above(t) => format!("> {}", num(t)),
            Expect::Below(t) => format!("< {}", num(t)),
            Expect::Within(lo, hi) => format!("in [{}, {}]", num(lo), num(hi)),
        }
    }

    fn to_value(self) -> Value {
        match self {
            Expect::AtLeast(t) | Expect::AtMost(t) | Expect::Above(t) | Expect::Below(t) => {
                Value::Float(t)
            }
            Expect::Within(lo, hi) => Value::Array(vec![Value::Float(lo), Value::Float(hi)]),
        }
    }

    /// The same test with the threshold taken from a config value.
    fn with_value(self, key: &str, v: &Value) -> Result<Expect> {
        let f = |v: &Value| match v {
            Value::Float(x) => Some(*x),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        };
        match (self, v) {
            (Expect::AtLeast(_), v) if f(v).is_some() => Ok(Expect::AtLeast(f(v).unwrap())),
            (Expect::AtMost(_), v) if f(v).is_some() => Ok(Expect::AtMost(f(v).unwrap())),
            (Expect::Above(_), v) if f(v).is_some() => Ok(Expect::Above(f(v).unwrap())),
            (Expect::Below(_), v) if f(v).is_some() => Ok(Expect::Below(f(v).unwrap())),
            (Expect::Within(..), Value::Array(a)) if a.len() == 2 => match (f(&a[0]), f(&a[1])) {
                (Some(lo), Some(hi)) if lo <= hi => Ok(Expect::Within(lo, hi)),
                _ => bail!("`{key}` must be [low, high] with low ≤ high, got {v}"),
            },
            (Expect::Within(..), _) => {
                bail!("`{key}` is a range: write it as [low, high], e.g. {key}=[0.75,1.25]")
            }
            _ => bail!("`{key}` must be a number, got {v}"),
        }
    }
}

/// The scale a claim applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// The CPU default config (`experiments/<name>.toml`).
    Cpu,
    /// The paper-scale config (`experiments/<name>-full.toml`).
    Full,
    Both,
}

impl Scale {
    fn covers(self, run: RunScale) -> bool {
        matches!(
            (self, run),
            (Scale::Both, _) | (Scale::Cpu, RunScale::Cpu) | (Scale::Full, RunScale::Full)
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Scale::Cpu => "cpu",
            Scale::Full => "full",
            Scale::Both => "both",
        }
    }
}

/// The scale of one run's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunScale {
    Cpu,
    Full,
}

/// A measured value, or why this run cannot give one (a part switched off, another variant).
#[derive(Debug, Clone, PartialEq)]
pub enum Measured {
    Value(f64),
    NotApplicable(String),
}

/// One claim of a paper, as an experiment declares it.
pub struct Claim {
    /// Short id, unique within the experiment; the full id is `<experiment>/<id>`.
    pub id: &'static str,
    /// The paper's statement in one line, naming where the threshold comes from.
    pub statement: &'static str,
    /// The paper's own value (what its figure or table shows).
    pub paper: &'static str,
    /// The default test; `claims.<id>` in the config replaces its threshold.
    pub expect: Expect,
    pub unit: &'static str,
    pub scale: Scale,
    /// The built-in config (reproduce target) the claim is about when it is not the
    /// experiment's default, e.g. `ib-tishby-relu`; other configs report it n/a.
    pub variant: Option<&'static str>,
    /// Computes the measured value from a finished run's files.
    pub measure: fn(&RunFiles) -> Result<Measured>,
}

/// A measured value.
pub fn value(x: f64) -> Result<Measured> {
    Ok(Measured::Value(x))
}

/// Averages `column` over rows that share the `by` key (e.g. over seeds at each epoch), in
/// order of first appearance of the key; `filters` select the rows.
pub fn mean_by(
    t: &CsvTable,
    by: &str,
    column: &str,
    filters: &[(&str, &str)],
) -> Result<Vec<(f64, f64)>> {
    let (b, c) = (t.col(by)?, t.col(column)?);
    let mut keys: Vec<f64> = vec![];
    let mut sums: Vec<(f64, usize)> = vec![];
    for r in t.select(filters)? {
        let k = t.parse(&r[b], by)?;
        let v = t.parse(&r[c], column)?;
        match keys.iter().position(|x| *x == k) {
            Some(i) => {
                sums[i].0 += v;
                sums[i].1 += 1;
            }
            None => {
                keys.push(k);
                sums.push((v, 1));
            }
        }
    }
    let mut out: Vec<(f64, f64)> = keys
        .into_iter()
        .zip(sums)
        .map(|(k, (s, n))| (k, s / n as f64))
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(out)
}

/// How far a curve falls after its peak: max − last (0 when the peak is the last point).
pub fn fall_after_peak(curve: &[(f64, f64)]) -> Option<f64> {
    let last = curve.last()?.1;
    let peak = curve.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    Some(peak - last)
}

/// A finished run's directory and config, with CSVs read once.
pub struct RunFiles<'a> {
    pub dir: &'a Path,
    /// The run's config (config.toml without seed and claims).
    pub config: &'a Table,
    cache: RefCell<BTreeMap<String, Rc<CsvTable>>>,
}

impl<'a> RunFiles<'a> {
    pub fn new(dir: &'a Path, config: &'a Table) -> Self {
        RunFiles {
            dir,
            config,
            cache: RefCell::new(BTreeMap::new()),
        }
    }

    /// A CSV of the run by file name; the error names the missing file.
    pub fn csv(&self, name: &str) -> Result<Rc<CsvTable>> {
        if let Some(t) = self.cache.borrow().get(name) {
            return Ok(Rc::clone(t));
        }
        let path = self.dir.join(name);
        if !path.exists() {
            bail!("{name} missing in the run directory");
        }
        let t = Rc::new(CsvTable::read(&path)?);
        self.cache
            .borrow_mut()
            .insert(name.to_string(), Rc::clone(&t));
        Ok(t)
    }

    /// A config value by dotted key.
    pub fn cfg(&self, key: &str) -> Option<&Value> {
        let mut parts = key.split('.');
        let mut cur = self.config.get(parts.next()?)?;
        for p in parts {
            cur = cur.as_table()?.get(p)?;
        }
        Some(cur)
    }

    pub fn cfg_str(&self, key: &str) -> Option<&str> {
        self.cfg(key).and_then(Value::as_str)
    }

    pub fn cfg_bool(&self, key: &str) -> Option<bool> {
        self.cfg(key).and_then(Value::as_bool)
    }

    pub fn cfg_f64(&self, key: &str) -> Option<f64> {
        match self.cfg(key)? {
            Value::Float(x) => Some(*x),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    #[serde(rename = "n/a")]
    NotApplicable,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::NotApplicable => "n/a",
        }
    }
}

/// A claim checked on one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub id: String,
    pub statement: String,
    pub paper: String,
    pub expected: String,
    pub measured: Option<f64>,
    pub unit: String,
    pub verdict: Verdict,
    pub reason: String,
    /// The test applied (for verdicts on a mean over seeds).
    pub expect: Expect,
}

/// The counts run.json records.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub pass: usize,
    pub fail: usize,
    #[serde(rename = "n/a")]
    pub na: usize,
}

pub fn counts(checked: &[Checked]) -> Counts {
    let mut c = Counts::default();
    for x in checked {
        match x.verdict {
            Verdict::Pass => c.pass += 1,
            Verdict::Fail => c.fail += 1,
            Verdict::NotApplicable => c.na += 1,
        }
    }
    c
}

impl Claim {
    /// Whether the scoreboard row of reproduce target `target` (of experiment `experiment`)
    /// shows this claim.
    pub fn belongs_to(&self, experiment: &str, target: &str) -> bool {
        match self.variant {
            Some(v) => v == target,
            None => target == experiment,
        }
    }
}

/// The thresholds and scale of one run: the `[claims]` section, completed with the defaults.
#[derive(Debug, Clone)]
pub struct Thresholds {
    pub scale: RunScale,
    pub expect: BTreeMap<String, Expect>,
}

impl Thresholds {
    /// Reads a `[claims]` table. `strict`: unknown ids are errors with the closest id (a config
    /// about to run); otherwise they are skipped with a warning (a stored run whose experiment
    /// renamed a claim since).
    pub fn from_table(entry: &Entry, t: Option<&Table>, strict: bool) -> Result<Self> {
        let mut out = Thresholds {
            scale: RunScale::Cpu,
            expect: entry
                .claims
                .iter()
                .map(|c| (c.id.to_string(), c.expect))
                .collect(),
        };
        for (k, v) in t.into_iter().flatten() {
            let key = format!("{SECTION}.{k}");
            if k == SCALE_KEY {
                out.scale = match v.as_str() {
                    Some("cpu") => RunScale::Cpu,
                    Some("full") => RunScale::Full,
                    _ => bail!("`{key}` must be \"cpu\" or \"full\", got {v}"),
                };
                continue;
            }
            match entry.claims.iter().find(|c| c.id == k) {
                Some(c) => {
                    out.expect.insert(k.clone(), c.expect.with_value(&key, v)?);
                }
                None if strict => bail!("{}", unknown_claim(entry, k)),
                None => eprintln!("warning: {}; ignored", unknown_claim(entry, k)),
            }
        }
        Ok(out)
    }

    /// The complete `[claims]` table a run saves in its config.toml.
    pub fn to_table(&self, entry: &Entry) -> Table {
        let mut t = Table::new();
        let scale = match self.scale {
            RunScale::Cpu => "cpu",
            RunScale::Full => "full",
        };
        t.insert(SCALE_KEY.into(), Value::String(scale.into()));
        for c in entry.claims {
            t.insert(c.id.into(), self.expect[c.id].to_value());
        }
        t
    }
}

fn unknown_claim(entry: &Entry, id: &str) -> String {
    let ids = entry
        .claims
        .iter()
        .map(|c| c.id)
        .chain(std::iter::once(SCALE_KEY));
    match crate::config::closest(id, ids) {
        Some(best) => format!(
            "unknown claim `{SECTION}.{id}` of {}: did you mean `{SECTION}.{best}`?",
            entry.name
        ),
        None => format!(
            "unknown claim `{SECTION}.{id}` of {}; its claims: {}",
            entry.name,
            entry
                .claims
                .iter()
                .map(|c| c.id)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Takes the `[claims]` section out of a resolved config (before the experiment's own typed
/// config sees it) and checks it against the experiment's claims.
pub fn split(entry: &Entry, table: &mut Table) -> Result<Thresholds> {
    let section = match table.remove(SECTION) {
        None => None,
        Some(Value::Table(t)) => Some(t),
        Some(other) => bail!(
            "config key `{SECTION}` must be a section of thresholds, got {}",
            other.type_str()
        ),
    };
    Thresholds::from_table(entry, section.as_ref(), true)
}

/// Checks every claim of `entry` on the run in `dir`, whose config is `config`.
pub fn evaluate(
    entry: &Entry,
    dir: &Path,
    config: &Table,
    thresholds: &Thresholds,
    smoke: bool,
) -> Vec<Checked> {
    let files = RunFiles::new(dir, config);
    entry
        .claims
        .iter()
        .map(|c| {
            let expect = thresholds.expect.get(c.id).copied().unwrap_or(c.expect);
            let mut out = Checked {
                id: format!("{}/{}", entry.name, c.id),
                statement: c.statement.to_string(),
                paper: c.paper.to_string(),
                expected: expect.text(),
                measured: None,
                unit: c.unit.to_string(),
                verdict: Verdict::NotApplicable,
                reason: String::new(),
                expect,
            };
            match (c.measure)(&files) {
                Err(e) => out.reason = crate::run::one_line(&e),
                Ok(Measured::NotApplicable(why)) => out.reason = why,
                Ok(Measured::Value(x)) => {
                    // As every file writes it (15 significant digits), so claims.csv and
                    // `check --json` give the same number.
                    let x = crate::run::metrics::clean(x);
                    out.measured = Some(x);
                    if smoke {
                        out.reason = "smoke run: tiny sizes, no verdict".into();
                    } else if !c.scale.covers(thresholds.scale) {
                        out.reason = match c.scale {
                            Scale::Full => format!(
                                "applies at paper scale (experiments/{}-full.toml)",
                                entry.name
                            ),
                            _ => "applies to the CPU default config".into(),
                        };
                    } else if x.is_nan() {
                        out.verdict = Verdict::Fail;
                        out.reason = "measured value is NaN".into();
                    } else {
                        out.verdict = if expect.holds(x) {
                            Verdict::Pass
                        } else {
                            Verdict::Fail
                        };
                    }
                }
            }
            out
        })
        .collect()
}

/// A finished run's config.toml split into the experiment's table and its thresholds, with
/// `overrides` (`claims.<id>=…`) applied on top.
pub fn run_config(
    entry: &Entry,
    dir: &Path,
    command_line: &[String],
    overrides: &[String],
) -> Result<(Table, Thresholds)> {
    let path = dir.join(crate::run::CONFIG_TOML);
    let text =
        std::fs::read_to_string(&path).map_err(|_| anyhow!("{} is missing", path.display()))?;
    let mut table = crate::config::parse_toml(&text, &path.display().to_string())?;
    table.remove(crate::config::SEED_KEY);
    let section = match table.remove(SECTION) {
        Some(Value::Table(t)) => Some(t),
        _ => None,
    };
    let had_section = section.is_some();
    let mut th = Thresholds::from_table(entry, section.as_ref(), false)?;
    if !had_section && is_full_command(command_line) {
        // Runs made before `[claims]` existed: a -full config on the command line.
        th.scale = RunScale::Full;
    }
    let mut extra = Table::new();
    for raw in overrides {
        let (k, v) = crate::config::parse_override(raw)?;
        let Some(id) = k.strip_prefix(&format!("{SECTION}.")) else {
            bail!("`{raw}`: check takes only claim thresholds, e.g. {SECTION}.<id>=0.5");
        };
        extra.insert(id.to_string(), v);
    }
    if !extra.is_empty() {
        let over = Thresholds::from_table(entry, Some(&extra), true)?;
        for k in extra.keys() {
            if k == SCALE_KEY {
                th.scale = over.scale;
            } else {
                th.expect.insert(k.clone(), over.expect[k]);
            }
        }
    }
    Ok((table, th))
}

fn is_full_command(command_line: &[String]) -> bool {
    command_line
        .iter()
        .any(|a| a.ends_with("-full.toml") || a.ends_with("-full"))
}

/// Recomputes the claims of one finished run from its files.
pub fn check_run(dir: &Path, overrides: &[String]) -> Result<(&'static Entry, Vec<Checked>)> {
    check_info(dir, &crate::run::read_info(dir)?, overrides)
}

/// As `check_run`, with the run's run.json already read.
pub fn check_info(
    dir: &Path,
    info: &crate::run::RunInfo,
    overrides: &[String],
) -> Result<(&'static Entry, Vec<Checked>)> {
    let entry = crate::experiments::find(&info.experiment)?;
    let (table, th) = run_config(entry, dir, &info.command_line, overrides)?;
    Ok((entry, evaluate(entry, dir, &table, &th, info.smoke)))
}

pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "statement",
    "paper",
    "expected",
    "measured",
    "unit",
    "verdict",
    "reason",
];

/// Writes `claims.csv` (atomically) in a run directory.
pub fn write_csv(dir: &Path, checked: &[Checked]) -> Result<PathBuf> {
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(CSV_COLUMNS)?;
    for c in checked {
        w.write_record([
            c.id.as_str(),
            &c.statement,
            &c.paper,
            &c.expected,
            &c.measured
                .map(crate::run::metrics::float)
                .unwrap_or_default(),
            &c.unit,
            c.verdict.as_str(),
            &c.reason,
        ])?;
    }
    let path = dir.join(CLAIMS_CSV);
    crate::run::fsutil::write_atomic(&path, &w.into_inner()?)?;
    Ok(path)
}

/// A number as people read it: 4 significant digits, no exponent for ordinary magnitudes.
pub fn num(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if !(1e-3..1e6).contains(&a) {
        return format!("{x:.3e}");
    }
    let digits = (3 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{x:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Aligned text columns for a terminal.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == n {
                    c.to_string()
                } else {
                    format!("{c}{}", " ".repeat(width[i] - c.chars().count()))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// The verdict with its reason, as tables show it.
pub fn verdict_text(v: Verdict, reason: &str) -> String {
    if reason.is_empty() {
        v.as_str().to_string()
    } else {
        format!("{} ({reason})", v.as_str())
    }
}

/// The short table printed at the end of a run and by `check`.
pub fn render(checked: &[Checked]) -> String {
    let rows: Vec<Vec<String>> = checked
        .iter()
        .map(|c| {
            vec![
                c.id.clone(),
                c.paper.clone(),
                c.expected.clone(),
                c.measured.map(num).unwrap_or_else(|| "—".into()),
                verdict_text(c.verdict, &c.reason),
            ]
        })
        .collect();
    columns(
        &["claim", "paper", "expected", "measured", "verdict"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> &'static Entry {
        crate::experiments::find(name).unwrap()
    }

    /// A run directory with hand-written CSVs.
    fn run_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn by_id<'a>(checked: &'a [Checked], id: &str) -> &'a Checked {
        checked.iter().find(|c| c.id.ends_with(id)).unwrap()
    }

    const DIFFGRAD_FUNCTIONS: &str = "function,optimizer,x_final,f_final\n\
        f1,diffgrad,-0.31,0\nf1,adam,0.4,0\nf2,diffgrad,-0.64,0\nf2,adam,0.01,0\n";

    #[test]
    fn verdicts_on_hand_written_csvs() {
        let e = entry("diffgrad");
        let dir = run_with(&[
            ("functions_summary.csv", DIFFGRAD_FUNCTIONS),
            (
                "summary.csv",
                "optimizer,seeds,failed,test_acc_mean\nadam,3,0,0.9800\ndiffgrad,3,0,0.9850\n",
            ),
        ]);
        let th = Thresholds::from_table(e, None, true).unwrap();
        let c = evaluate(e, dir.path(), &Table::new(), &th, false);
        assert_eq!(by_id(&c, "f1-diffgrad").verdict, Verdict::Pass);
        assert_eq!(by_id(&c, "f1-adam").verdict, Verdict::Fail);
        assert_eq!(by_id(&c, "f1-adam").measured, Some(0.4));
        // A paper-scale claim on a CPU run: measured, but no verdict.
        let acc = by_id(&c, "accuracy");
        assert_eq!(acc.verdict, Verdict::NotApplicable);
        assert!(
            (acc.measured.unwrap() - 0.005).abs() < 1e-9,
            "a fraction, like accuracies"
        );
        assert!(acc.reason.contains("diffgrad-full.toml"), "{}", acc.reason);
        // The same run at full scale gets a verdict.
        let mut full = th.clone();
        full.scale = RunScale::Full;
        let c = evaluate(e, dir.path(), &Table::new(), &full, false);
        assert_eq!(by_id(&c, "accuracy").verdict, Verdict::Pass);
        // Smoke runs are measured but never judged.
        let c = evaluate(e, dir.path(), &Table::new(), &th, true);
        assert!(c.iter().all(|x| x.verdict == Verdict::NotApplicable));
        assert_eq!(by_id(&c, "f2-diffgrad").measured, Some(-0.64));
    }

    #[test]
    fn a_missing_file_or_a_part_switched_off_is_not_applicable_with_its_reason() {
        let e = entry("diffgrad");
        let dir = run_with(&[("functions_summary.csv", DIFFGRAD_FUNCTIONS)]);
        let th = Thresholds::from_table(e, None, true).unwrap();
        let mut off: Table = "[networks]\nenabled = false\n".parse().unwrap();
        let c = evaluate(e, dir.path(), &off, &th, false);
        assert!(by_id(&c, "accuracy")
            .reason
            .contains("networks.enabled = false"));
        off.clear();
        let c = evaluate(e, dir.path(), &off, &th, false);
        let acc = by_id(&c, "accuracy");
        assert_eq!(acc.verdict, Verdict::NotApplicable);
        assert_eq!(acc.reason, "summary.csv missing in the run directory");
        // A file without the column a claim reads says which.
        let dir = run_with(&[("functions_summary.csv", "function,optimizer\nf1,adam\n")]);
        let c = evaluate(e, dir.path(), &off, &th, false);
        assert_eq!(
            by_id(&c, "f1-adam").reason,
            "functions_summary.csv has no column `x_final`"
        );
    }

    #[test]
    fn a_threshold_override_flips_a_verdict_and_unknown_ids_suggest() {
        let e = entry("diffgrad");
        let dir = run_with(&[("functions_summary.csv", DIFFGRAD_FUNCTIONS)]);
        let mut t = Table::new();
        let pass = Thresholds::from_table(e, None, true).unwrap();
        assert_eq!(
            by_id(&evaluate(e, dir.path(), &t, &pass, false), "f2-adam").verdict,
            Verdict::Pass
        );
        let over: Table = "f2-adam = [0.02, 0.1]\n".parse().unwrap();
        let moved = Thresholds::from_table(e, Some(&over), true).unwrap();
        let c = evaluate(e, dir.path(), &t, &moved, false);
        assert_eq!(by_id(&c, "f2-adam").verdict, Verdict::Fail);
        assert_eq!(by_id(&c, "f2-adam").expected, "in [0.02, 0.1]");

        let bad: Table = "f2-adm = [0, 1]\n".parse().unwrap();
        let err = Thresholds::from_table(e, Some(&bad), true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown claim `claims.f2-adm` of diffgrad: did you mean `claims.f2-adam`?"
        );
        // A stored run with a claim renamed since: skipped, not an error.
        assert!(Thresholds::from_table(e, Some(&bad), false).is_ok());
        let wrong: Table = "f2-adam = 0.5\n".parse().unwrap();
        let err = Thresholds::from_table(e, Some(&wrong), true).unwrap_err();
        assert!(err.to_string().contains("[low, high]"), "{err}");
        let scale: Table = "scale = \"gpu\"\n".parse().unwrap();
        assert!(Thresholds::from_table(e, Some(&scale), true).is_err());
        // split() takes [claims] out of a config and round-trips through to_table().
        t.insert("claims".into(), Value::Table(moved.to_table(e)));
        t.insert("x".into(), Value::Integer(1));
        let back = split(e, &mut t).unwrap();
        assert_eq!(back.expect, moved.expect);
        assert!(!t.contains_key("claims") && t.contains_key("x"));
    }

    #[test]
    fn comparisons_numbers_and_curves() {
        assert!(Expect::AtLeast(1.0).holds(1.0) && !Expect::Above(1.0).holds(1.0));
        assert!(Expect::AtMost(1.0).holds(1.0) && !Expect::Below(1.0).holds(1.0));
        assert!(Expect::Within(-1.0, 1.0).holds(-1.0) && !Expect::Within(-1.0, 1.0).holds(1.5));
        assert_eq!(Expect::Below(0.02).text(), "< 0.02");
        assert_eq!(num(0.123456), "0.1235");
        assert_eq!(num(41.3), "41.3");
        assert_eq!(num(-2.0), "-2");
        assert_eq!(num(1.5e-7), "1.500e-7");
        let dir = run_with(&[(
            "c.csv",
            "seed,epoch,v\n0,0,1\n1,0,3\n0,5,6\n1,5,2\n0,9,1\n1,9,1\n",
        )]);
        let t = CsvTable::read(&dir.path().join("c.csv")).unwrap();
        let curve = mean_by(&t, "epoch", "v", &[]).unwrap();
        assert_eq!(curve, vec![(0.0, 2.0), (5.0, 4.0), (9.0, 1.0)]);
        assert_eq!(fall_after_peak(&curve), Some(3.0));
        assert_eq!(fall_after_peak(&[(0.0, 1.0), (1.0, 2.0)]), Some(0.0));
    }
}
