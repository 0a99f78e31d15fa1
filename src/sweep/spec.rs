//! Sweep files and their expansion into jobs. A job is a set of dotted overrides plus a seed;
//! its id is a hash of exactly those, so the same point keeps its id (and its run directory)
//! across restarts and across edits that add new points.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use toml::{Table, Value};

/// A sweep as written in `experiments/sweeps/*.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SweepSpec {
    pub name: String,
    pub experiment: String,
    /// `train` or `ib-analyze`.
    pub command: String,
    /// Config file or built-in config name every job starts from (empty: the experiment's
    /// defaults, or `--config` of the sweep's command line).
    pub config: String,
    /// Overrides applied to every job (nested tables or dotted keys).
    pub base: Table,
    /// Cartesian product of the lists.
    pub grid: Table,
    /// Lists advanced together (all the same length).
    pub zip: Table,
    /// `n` samples (seeded by `seed`) of keys given as { dist = "uniform" | "loguniform" |
    /// "int" | "choice", low, high, values }.
    pub random: Table,
    /// A list of seeds, or a count N meaning 0..N.
    pub seeds: Option<Value>,
}

/// One job: its overrides (dotted key → value) and seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub overrides: BTreeMap<String, Value>,
    pub seed: u64,
}

impl Job {
    fn new(overrides: BTreeMap<String, Value>, seed: u64) -> Self {
        let mut h = Sha256::new();
        for (k, v) in &overrides {
            h.update(format!("{k}={v};"));
        }
        h.update(format!("seed={seed}"));
        let id = h
            .finalize()
            .iter()
            .take(5)
            .map(|b| format!("{b:02x}"))
            .collect();
        Job {
            id,
            overrides,
            seed,
        }
    }

    /// The `key=value` arguments of this job's command line.
    pub fn args(&self) -> Vec<String> {
        self.overrides
            .iter()
            .map(|(k, v)| format!("{k}={}", value_text(v)))
            .collect()
    }
}

/// A value as `key=value` text that `config::parse_override` reads back to the same value.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s)
            if !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || "-_./".contains(c)) =>
        {
            s.clone()
        }
        Value::Float(f) => crate::run::metrics::float(*f),
        other => other.to_string(),
    }
}

/// Flattens nested tables into dotted keys: {optim: {lr: 1}} → {"optim.lr": 1}.
fn flatten(prefix: &str, t: &Table, out: &mut BTreeMap<String, Value>) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Table(inner) if !is_distribution(inner) => flatten(&key, inner, out),
            _ => {
                out.insert(key, v.clone());
            }
        }
    }
}

fn is_distribution(t: &Table) -> bool {
    t.contains_key("dist")
}

fn list<'a>(section: &str, key: &str, v: &'a Value) -> Result<&'a Vec<Value>> {
    match v {
        Value::Array(a) if !a.is_empty() => Ok(a),
        _ => bail!("sweep [{section}] `{key}` must be a non-empty list of values"),
    }
}

impl SweepSpec {
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let table = crate::config::parse_toml(text, origin)?;
        let spec: SweepSpec = crate::config::typed(&table).map_err(|e| anyhow!("{origin}: {e}"))?;
        if spec.experiment.is_empty() {
            bail!("{origin}: a sweep needs `experiment = \"<name>\"`");
        }
        if !["", "train", "ib-analyze"].contains(&spec.command.as_str()) {
            bail!(
                "{origin}: command must be \"train\" or \"ib-analyze\", got {:?}",
                spec.command
            );
        }
        Ok(spec)
    }

    /// Hydra-style command line: `key=a,b,c` sweeps the values, `seed=0..4` the seeds
    /// (inclusive). `seeds=N` is an ordinary config key (ib-tishby's networks per run).
    pub fn from_cli(experiment: &str, overrides: &[String]) -> Result<Self> {
        let mut spec = SweepSpec {
            experiment: experiment.to_string(),
            ..Default::default()
        };
        for raw in overrides {
            let (key, text) = raw
                .split_once('=')
                .ok_or_else(|| anyhow!("sweep override `{raw}` is not key=value"))?;
            if key == "seed" {
                spec.seeds = Some(parse_seeds(text)?);
                continue;
            }
            let values: Vec<Value> = split_top_level(text)
                .iter()
                .map(|v| crate::config::parse_override(&format!("{key}={v}")).map(|p| p.1))
                .collect::<Result<_>>()?;
            if values.len() > 1 {
                spec.grid.insert(key.to_string(), Value::Array(values));
            } else {
                spec.base.insert(
                    key.to_string(),
                    values.into_iter().next().expect("one value"),
                );
            }
        }
        Ok(spec)
    }

    pub fn seeds(&self) -> Result<Vec<u64>> {
        match &self.seeds {
            None => Ok(vec![0]),
            Some(Value::Integer(n)) if *n > 0 => Ok((0..*n as u64).collect()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_integer()
                        .filter(|i| *i >= 0)
                        .map(|i| i as u64)
                        .ok_or_else(|| anyhow!("seeds must be non-negative integers"))
                })
                .collect(),
            Some(other) => bail!("seeds must be a count or a list of integers, got {other}"),
        }
    }

    /// Every job, in a stable order: seeds innermost.
    pub fn expand(&self) -> Result<Vec<Job>> {
        let mut base = BTreeMap::new();
        flatten("", &self.base, &mut base);
        let mut points: Vec<BTreeMap<String, Value>> = vec![base];

        let mut grid = BTreeMap::new();
        flatten("", &self.grid, &mut grid);
        for (k, v) in &grid {
            let values = list("grid", k, v)?;
            points = points
                .into_iter()
                .flat_map(|p| values.iter().map(move |x| with(&p, k, x)))
                .collect();
        }

        let mut zip = BTreeMap::new();
        flatten("", &self.zip, &mut zip);
        if !zip.is_empty() {
            let lens: Vec<usize> = zip
                .iter()
                .map(|(k, v)| list("zip", k, v).map(Vec::len))
                .collect::<Result<_>>()?;
            if lens.iter().any(|&l| l != lens[0]) {
                bail!("sweep [zip] lists must have the same length, got {lens:?}");
            }
            points = points
                .into_iter()
                .flat_map(|p| {
                    (0..lens[0])
                        .map(|i| {
                            let mut q = p.clone();
                            for (k, v) in &zip {
                                q.insert(k.clone(), v.as_array().expect("checked")[i].clone());
                            }
                            q
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
        }

        if !self.random.is_empty() {
            points = self.sample(points)?;
        }
        let seeds = self.seeds()?;
        Ok(points
            .iter()
            .flat_map(|p| seeds.iter().map(|&s| Job::new(p.clone(), s)))
            .collect())
    }

    fn sample(&self, points: Vec<BTreeMap<String, Value>>) -> Result<Vec<BTreeMap<String, Value>>> {
        let n = self
            .random
            .get("n")
            .and_then(Value::as_integer)
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow!("sweep [random] needs n = <samples>"))?;
        let seed = self
            .random
            .get("seed")
            .and_then(Value::as_integer)
            .unwrap_or(0) as u64;
        let mut rng = crate::data::split::HostRng::new(seed);
        let mut uniform = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let dists: Vec<(&String, &Table)> = self
            .random
            .iter()
            .filter(|(k, _)| *k != "n" && *k != "seed")
            .map(|(k, v)| {
                v.as_table()
                    .map(|t| (k, t))
                    .ok_or_else(|| anyhow!("sweep [random] `{k}` must be {{ dist = ..., ... }}"))
            })
            .collect::<Result<_>>()?;
        let mut out = vec![];
        for p in &points {
            for _ in 0..n {
                let mut q = p.clone();
                for (k, d) in &dists {
                    q.insert((*k).clone(), draw(k, d, &mut uniform)?);
                }
                out.push(q);
            }
        }
        Ok(out)
    }
}

fn with(p: &BTreeMap<String, Value>, k: &str, v: &Value) -> BTreeMap<String, Value> {
    let mut q = p.clone();
    q.insert(k.to_string(), v.clone());
    q
}

fn draw(key: &str, d: &Table, u: &mut impl FnMut() -> f64) -> Result<Value> {
    let num = |name: &str| -> Result<f64> {
        d.get(name)
            .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
            .ok_or_else(|| anyhow!("sweep [random] `{key}` needs a number `{name}`"))
    };
    let dist = d.get("dist").and_then(Value::as_str).unwrap_or("");
    Ok(match dist {
        "uniform" => Value::Float(num("low")? + u() * (num("high")? - num("low")?)),
        "loguniform" => {
            let (lo, hi) = (num("low")?, num("high")?);
            if lo <= 0.0 || hi <= lo {
                bail!("sweep [random] `{key}`: loguniform needs 0 < low < high");
            }
            Value::Float((lo.ln() + u() * (hi.ln() - lo.ln())).exp())
        }
        "int" => {
            let (lo, hi) = (num("low")? as i64, num("high")? as i64);
            Value::Integer(lo + ((u() * (hi - lo + 1) as f64) as i64).min(hi - lo))
        }
        "choice" => {
            let values = d
                .get("values")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| anyhow!("sweep [random] `{key}`: choice needs values = [...]"))?;
            values[((u() * values.len() as f64) as usize).min(values.len() - 1)].clone()
        }
        other => bail!(
            "sweep [random] `{key}`: unknown dist `{other}` (uniform, loguniform, int, choice)"
        ),
    })
}

/// `0..4` (inclusive), `3`, or `1,2,5`.
fn parse_seeds(text: &str) -> Result<Value> {
    if let Some((a, b)) = text.split_once("..") {
        let (a, b): (i64, i64) = (
            a.trim().parse().context("seed range start")?,
            b.trim().parse().context("seed range end")?,
        );
        if b < a {
            bail!("seed range {text} is empty");
        }
        return Ok(Value::Array((a..=b).map(Value::Integer).collect()));
    }
    let seeds: Vec<Value> = text
        .split(',')
        .map(|s| s.trim().parse::<i64>().map(Value::Integer))
        .collect::<Result<_, _>>()
        .context("seeds must be integers")?;
    Ok(Value::Array(seeds))
}

/// Splits `a,b,[1,2],c` at commas outside brackets and quotes.
fn split_top_level(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quote) = (vec![], String::new(), 0i32, false);
    for c in s.chars() {
        match c {
            '"' => quote = !quote,
            '[' | '{' if !quote => depth += 1,
            ']' | '}' if !quote => depth -= 1,
            ',' if depth == 0 && !quote => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
experiment = "classifier"
seeds = 2
[base.train]
epochs = 3
[grid]
"optim.lr" = [0.001, 0.01]
"optim.name" = ["adam", "sgd"]
[zip]
"model.hidden" = [[8], [16]]
"model.dropout" = [0.0, 0.1]
"#;

    #[test]
    fn grid_zip_and_seeds_expand_with_stable_ids() {
        let spec = SweepSpec::parse(FILE, "t.toml").unwrap();
        let jobs = spec.expand().unwrap();
        assert_eq!(jobs.len(), 2 * 2 * 2 * 2, "lr x name x zip rows x seeds");
        assert!(jobs
            .iter()
            .all(|j| j.overrides["train.epochs"] == Value::Integer(3)));
        let zipped: Vec<(String, String)> = jobs
            .iter()
            .map(|j| {
                (
                    j.overrides["model.hidden"].to_string(),
                    j.overrides["model.dropout"].to_string(),
                )
            })
            .collect();
        assert!(zipped
            .iter()
            .all(|z| *z == ("[8]".into(), "0.0".into()) || *z == ("[16]".into(), "0.1".into())));
        let mut ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), jobs.len(), "ids are unique");
        // Adding a grid point keeps the ids of the existing jobs.
        let more = FILE.replace("[0.001, 0.01]", "[0.001, 0.01, 0.1]");
        let bigger = SweepSpec::parse(&more, "t.toml").unwrap().expand().unwrap();
        assert!(jobs.iter().all(|j| bigger
            .iter()
            .any(|b| b.id == j.id && b.overrides == j.overrides)));
        assert_eq!(jobs[0].args().len(), 5);
    }

    #[test]
    fn random_sampling_is_seeded_and_in_range() {
        let text = r#"
experiment = "classifier"
[random]
n = 20
seed = 3
"optim.lr" = { dist = "loguniform", low = 1e-4, high = 1e-1 }
"train.batch_size" = { dist = "int", low = 16, high = 32 }
"optim.name" = { dist = "choice", values = ["adam", "sgd"] }
"model.dropout" = { dist = "uniform", low = 0.0, high = 0.5 }
"#;
        let a = SweepSpec::parse(text, "r.toml").unwrap().expand().unwrap();
        let b = SweepSpec::parse(text, "r.toml").unwrap().expand().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 20);
        for j in &a {
            let lr = j.overrides["optim.lr"].as_float().unwrap();
            let bs = j.overrides["train.batch_size"].as_integer().unwrap();
            assert!((1e-4..=1e-1).contains(&lr) && (16..=32).contains(&bs));
        }
        assert!(
            SweepSpec::parse(&text.replace("loguniform", "lognormal"), "r.toml")
                .unwrap()
                .expand()
                .is_err()
        );
    }

    #[test]
    fn hydra_style_command_lines() {
        let o: Vec<String> = [
            "optim.lr=1e-3,1e-2",
            "optim.name=adam,diffgrad",
            "seed=0..4",
            "train.epochs=2",
            "model.hidden=[8,8]",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let spec = SweepSpec::from_cli("classifier", &o).unwrap();
        let jobs = spec.expand().unwrap();
        assert_eq!(jobs.len(), 2 * 2 * 5);
        assert_eq!(
            jobs[0].overrides["model.hidden"],
            Value::Array(vec![Value::Integer(8), Value::Integer(8)])
        );
        assert!(jobs
            .iter()
            .any(|j| j.overrides["optim.name"].as_str() == Some("diffgrad")));
        assert!(SweepSpec::from_cli("classifier", &["seed=4..1".into()]).is_err());
        assert!(
            SweepSpec::parse("experiment = \"x\"\n[zip]\na = [1]\nb = [1, 2]\n", "z")
                .unwrap()
                .expand()
                .is_err()
        );
    }
}
