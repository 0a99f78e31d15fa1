//! Experiment configs: a TOML file of defaults, a `[smoke]` table of tiny sizes, and dotted
//! `key=value` overrides from the command line, resolved into one table and then into the
//! experiment's typed config. Every mistake becomes one line naming the key and the fix.

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use toml::{Table, Value};

include!(concat!(env!("OUT_DIR"), "/builtin_configs.rs"));

/// A config compiled into the binary by name (`experiments/<name>.toml`): the defaults, the
/// variants (`ib-tishby-relu`) and the paper-scale configs (`<experiment>-full`).
pub fn builtin(name: &str) -> Option<&'static str> {
    builtin_named(name).map(|(_, text)| text)
}

/// A built-in config as (its name, its text).
pub fn builtin_named(name: &str) -> Option<(&'static str, &'static str)> {
    BUILTIN_CONFIGS.iter().find(|(n, _)| *n == name).copied()
}

/// Keys the runner itself owns; they sit at the top of every resolved config.
pub const SEED_KEY: &str = "seed";
const SMOKE_KEY: &str = "smoke";

/// A config after defaults, smoke sizes and overrides were merged, split into the experiment's
/// own table and the seed.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub table: Table,
    pub seed: u64,
}

/// Where the defaults of a run come from.
pub enum Source<'a> {
    /// A file the user named with `--config`, or `experiments/<name>.toml`.
    File(&'a Path),
    /// The copy of `experiments/<name>.toml` compiled into the binary.
    Embedded { name: &'a str, text: &'a str },
}

/// Loads the defaults and merges smoke sizes (when asked), overrides and the seed flag.
pub fn resolve(
    source: Source<'_>,
    overrides: &[String],
    smoke: bool,
    seed_flag: Option<u64>,
) -> Result<Resolved> {
    let mut table = match source {
        Source::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow!("cannot read config file {}: {e}; check the path or drop --config to use the experiment's defaults", path.display())
            })?;
            parse_toml(&text, &path.display().to_string())?
        }
        Source::Embedded { name, text } => parse_toml(text, &format!("built-in {name}.toml"))?,
    };
    let smoke_table = table.remove(SMOKE_KEY);
    if smoke {
        if let Some(Value::Table(s)) = smoke_table {
            deep_merge(&mut table, s);
        }
    }
    for raw in overrides {
        let (key, value) = parse_override(raw)?;
        let first = key.split('.').next().unwrap_or(&key);
        if key != SEED_KEY && !table.contains_key(first) {
            // `epochs=5` for `train.epochs`: the key exists deeper down.
            let mut found = vec![];
            paths_ending(&table, "", &key, &mut found);
            if !found.is_empty() {
                bail!(
                    "unknown config key `{key}`: did you mean `{}`?",
                    found.join("` or `")
                );
            }
        }
        set_dotted(&mut table, &key, value)?;
    }
    let seed = match table.remove(SEED_KEY) {
        None => 0,
        Some(Value::Integer(s)) if s >= 0 => s as u64,
        Some(other) => bail!("config key `seed` must be a non-negative integer, got {other}"),
    };
    Ok(Resolved {
        table,
        seed: seed_flag.unwrap_or(seed),
    })
}

/// Dotted paths in `t` (below its top level) that end with `.key`.
fn paths_ending(t: &Table, prefix: &str, key: &str, out: &mut Vec<String>) {
    for (k, v) in t {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if path.ends_with(&format!(".{key}")) {
            out.push(path.clone());
        }
        if let Value::Table(sub) = v {
            paths_ending(sub, &path, key, out);
        }
    }
}

/// Parses TOML text; errors carry the file name, line and column on one line.
pub fn parse_toml(text: &str, origin: &str) -> Result<Table> {
    text.parse::<Table>().map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" at line {line}, column {col}")
            })
            .unwrap_or_default();
        anyhow!("{origin}: invalid TOML{at}: {}", e.message().trim())
    })
}

/// Splits `a.b.c=value`; the value is read as a TOML value (numbers, booleans, arrays,
/// quoted strings) and, when it is none of those, taken as a bare string (`optim.name=adam`).
pub fn parse_override(raw: &str) -> Result<(String, Value)> {
    let (key, text) = raw
        .split_once('=')
        .ok_or_else(|| anyhow!("override `{raw}` is not key=value (e.g. optim.lr=0.01)"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|p| p.trim().is_empty()) {
        bail!("override `{raw}` has an empty key; write it as section.key=value");
    }
    let text = text.trim();
    let value = format!("v = {text}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(text.to_string()));
    Ok((key.to_string(), value))
}

/// Sets a dotted key, creating the tables on the way.
pub fn set_dotted(table: &mut Table, key: &str, value: Value) -> Result<()> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().expect("split yields at least one part");
    let mut cur = table;
    let mut walked = String::new();
    for part in parts {
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(part);
        let entry = cur
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        cur = match entry {
            Value::Table(t) => t,
            other => bail!(
                "cannot set `{key}`: `{walked}` holds a value ({}), not a section",
                other.type_str()
            ),
        };
    }
    cur.insert(last.to_string(), value);
    Ok(())
}

/// Merges `from` into `into`, recursing into tables so a smoke table can set single fields.
pub fn deep_merge(into: &mut Table, from: Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Table(a)), Value::Table(b)) => deep_merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// Deserializes a resolved table into an experiment's typed config. Unknown keys name the
/// closest valid key; wrong types name the key and the expected type.
pub fn typed<T: DeserializeOwned>(table: &Table) -> Result<T> {
    let value = Value::Table(table.clone());
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().to_string();
        // toml appends its own "in `key`"; the message below names the key already.
        let msg = msg.trim();
        let msg = msg
            .rfind("in `")
            .filter(|&i| i > 0 && msg[..i].ends_with(char::is_whitespace))
            .map_or(msg, |i| msg[..i].trim_end());
        friendly_error(&path, msg)
    })
}

/// The resolved config as TOML text, seed first: what a run saves as `config.toml`.
pub fn to_toml<T: Serialize>(cfg: &T, seed: u64) -> Result<String> {
    let body = toml::to_string_pretty(cfg).context("serializing the resolved config")?;
    Ok(format!("{SEED_KEY} = {seed}\n\n{body}"))
}

/// Checks that need more than types (ranges, names of datasets), run before a run directory
/// exists so a bad config never leaves a failed run behind.
pub trait Check {
    fn check(&self) -> Result<()> {
        Ok(())
    }
    /// Replaces placeholders ("0 = the optimizer's default eps") by the values that will run,
    /// so the saved config.toml is the configuration that actually ran.
    fn resolve(&mut self) {}
}

/// Round-trips a table through the typed config: fills in every default, rejects bad keys and
/// values, and resolves placeholders.
pub fn normalize<T: DeserializeOwned + Serialize + Check>(table: &Table) -> Result<Table> {
    let mut cfg: T = typed(table)?;
    cfg.check()?;
    cfg.resolve();
    Table::try_from(&cfg).context("serializing the resolved config")
}

fn friendly_error(path: &str, msg: &str) -> anyhow::Error {
    // For unknown fields the path already ends with the offending key; suggestions are
    // siblings, so they join onto its parent.
    let parent = match msg
        .strip_prefix("unknown field `")
        .and_then(|r| r.split_once('`'))
    {
        Some((field, _)) => path
            .strip_suffix(field)
            .unwrap_or(path)
            .trim_end_matches('.'),
        None => path,
    };
    let join = |field: &str| {
        if parent.is_empty() || parent == "." {
            field.to_string()
        } else {
            format!("{parent}.{field}")
        }
    };
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let names = backticked(expected);
        let full = join(field);
        return match closest(field, names.iter().map(String::as_str)) {
            Some(best) => anyhow!(
                "unknown config key `{full}`: did you mean `{}`?",
                join(best)
            ),
            None if names.is_empty() => {
                anyhow!("unknown config key `{full}`: this section takes no keys")
            }
            None => anyhow!(
                "unknown config key `{full}`; valid keys here: {}",
                names.join(", ")
            ),
        };
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let (variant, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let names = backticked(expected);
        let hint = match closest(variant, names.iter().map(String::as_str)) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!("choose one of {}", names.join(", ")),
        };
        return anyhow!("config key `{path}` = `{variant}` is not a valid choice: {hint}");
    }
    if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
        return anyhow!("config key `{path}` has the wrong type: {msg}");
    }
    if msg.starts_with("missing field") {
        return anyhow!("config section `{path}`: {msg}");
    }
    anyhow!("config key `{path}`: {msg}")
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The candidate nearest to `name` by edit distance, when near enough to be a typo.
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Serialize, Default, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Optim {
        lr: f64,
        momentum: f64,
        name: Kind,
    }
    #[derive(Debug, Deserialize, Serialize, Default, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        #[default]
        Sgd,
        Adam,
    }
    #[derive(Debug, Deserialize, Serialize, Default, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Cfg {
        optim: Optim,
        hidden: Vec<i64>,
    }

    fn with(overrides: &[&str]) -> Result<Cfg> {
        let text = "[optim]\nlr = 0.1\n[smoke]\noptim.lr = 0.5\n";
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let r = resolve(Source::Embedded { name: "t", text }, &o, false, None)?;
        typed(&r.table)
    }

    #[test]
    fn overrides_set_nested_fields_and_parse_values() {
        let c = with(&["optim.lr=1e-3", "hidden=[256, 256]", "optim.name=adam"]).unwrap();
        assert_eq!(c.optim.lr, 1e-3);
        assert_eq!(c.hidden, vec![256, 256]);
        assert_eq!(c.optim.name, Kind::Adam);
        // Integers are accepted where floats are expected.
        assert_eq!(with(&["optim.lr=1"]).unwrap().optim.lr, 1.0);
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        let e = with(&["optim.lrr=0.1"]).unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown config key `optim.lrr`: did you mean `optim.lr`?"
        );
        let e = with(&["optimm.lr=0.1"]).unwrap_err().to_string();
        assert!(e.contains("did you mean `optim`"), "{e}");
        let e = with(&["lr=0.1"]).unwrap_err().to_string();
        assert_eq!(e, "unknown config key `lr`: did you mean `optim.lr`?");
        let e = with(&["zzzzzzzzz=1"]).unwrap_err().to_string();
        assert!(e.contains("valid keys here: optim, hidden"), "{e}");
    }

    #[test]
    fn wrong_type_and_bad_variant_name_the_key() {
        let e = with(&["optim.lr=fast"]).unwrap_err().to_string();
        assert!(
            e.starts_with("config key `optim.lr` has the wrong type"),
            "{e}"
        );
        assert!(e.contains("expected f64"), "{e}");
        let e = with(&["optim.name=adm"]).unwrap_err().to_string();
        assert!(
            e.contains("`optim.name` = `adm`") && e.contains("did you mean `adam`"),
            "{e}"
        );
    }

    #[test]
    fn smoke_table_merges_only_when_asked_and_seed_is_extracted() {
        let text = "seed = 4\n[optim]\nlr = 0.1\nmomentum = 0.9\n[smoke]\noptim.lr = 0.5\n";
        let src = || Source::Embedded { name: "t", text };
        let r = resolve(src(), &[], true, None).unwrap();
        let c: Cfg = typed(&r.table).unwrap();
        assert_eq!((c.optim.lr, c.optim.momentum, r.seed), (0.5, 0.9, 4));
        let r = resolve(src(), &[], false, Some(9)).unwrap();
        let c: Cfg = typed(&r.table).unwrap();
        assert_eq!((c.optim.lr, r.seed), (0.1, 9));
    }

    #[test]
    fn malformed_input_gives_one_line_errors() {
        assert!(parse_override("optim.lr").is_err());
        assert!(parse_override("=3").is_err());
        let mut t = Table::new();
        set_dotted(&mut t, "a", Value::Integer(1)).unwrap();
        let e = set_dotted(&mut t, "a.b", Value::Integer(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`a` holds a value (integer)"), "{e}");
        let e = parse_toml("x = \n", "f.toml").unwrap_err().to_string();
        assert!(e.starts_with("f.toml: invalid TOML at line 1"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn closest_prefers_small_edits() {
        let c = ["lr", "momentum", "weight_decay"];
        assert_eq!(closest("momentun", c.into_iter()), Some("momentum"));
        assert_eq!(closest("weightdecay", c.into_iter()), Some("weight_decay"));
        assert_eq!(closest("batch", c.into_iter()), None);
    }
}
