//! The UEA/UCR time-series classification archive's `.ts` format (sktime's
//! `load_from_tsfile_to_dataframe`), so the stable-neural-SDE experiment runs on a user's copy
//! of the paper's datasets.
//!
//! A file is a header of `@key value` lines (`@problemName`, `@timeStamps`, `@missing`,
//! `@univariate`, `@dimensions`, `@equalLength`, `@seriesLength`, `@classLabel true <labels>`),
//! `#` comments, then `@data` and one line per case: the channels separated by `:`, each a
//! comma-separated list of values (`?` or `NaN` = missing), and the class label last.
//! Timestamped series (`@timeStamps true`) are not supported.
//!
//! `to_arrays` follows the official torch-ists `get_data`: labels are numbered in sorted order of
//! the training labels; when series lengths differ, every series is resampled to the longest
//! training length L by linear interpolation at 0, 1, …, L−1 of the points placed at
//! linspace(0, L, len) (numpy's `interp`, as the official code calls it).

use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use tch::Tensor;

/// One parsed `.ts` file.
#[derive(Debug, Clone, PartialEq)]
pub struct TsFile {
    pub problem: String,
    /// Per case, per channel, the values (NaN where missing).
    pub series: Vec<Vec<Vec<f64>>>,
    pub labels: Vec<String>,
    /// The labels declared by `@classLabel true …` (empty if none).
    pub class_labels: Vec<String>,
}

impl TsFile {
    pub fn dims(&self) -> usize {
        self.series.first().map_or(0, Vec::len)
    }
}

pub fn read_ts(path: &Path) -> Result<TsFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_ts(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Parses the text of a `.ts` file; errors name the line.
pub fn parse_ts(text: &str) -> Result<TsFile> {
    let mut out = TsFile {
        problem: String::new(),
        series: vec![],
        labels: vec![],
        class_labels: vec![],
    };
    let mut in_data = false;
    let mut has_labels = None;
    let mut dims: Option<usize> = None;
    for (no, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let lno = no + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !in_data {
            if !line.starts_with('@') {
                bail!("line {lno}: expected a header `@key value` or `@data` before the data");
            }
            let mut parts = line[1..].split_whitespace();
            let key = parts.next().unwrap_or("").to_ascii_lowercase();
            let rest: Vec<&str> = parts.collect();
            let flag = |v: &[&str]| -> Result<bool> {
                match v.first().map(|s| s.to_ascii_lowercase()).as_deref() {
                    Some("true") => Ok(true),
                    Some("false") => Ok(false),
                    _ => bail!("line {lno}: @{key} must be true or false"),
                }
            };
            match key.as_str() {
                "problemname" => out.problem = rest.join(" "),
                "timestamps" => {
                    if flag(&rest)? {
                        bail!("line {lno}: timestamped series (@timeStamps true) are not supported; export the series without timestamps");
                    }
                }
                "classlabel" => {
                    let on = flag(&rest)?;
                    has_labels = Some(on);
                    if on {
                        out.class_labels = rest[1..].iter().map(|s| s.to_string()).collect();
                        if out.class_labels.is_empty() {
                            bail!("line {lno}: @classLabel true lists no labels");
                        }
                    }
                }
                "dimensions" => {
                    dims = Some(rest.first().and_then(|s| s.parse().ok()).ok_or_else(|| {
                        anyhow!("line {lno}: @dimensions needs a positive integer")
                    })?)
                }
                "data" => in_data = true,
                // Informational keys (checked against the data where it matters).
                "missing" | "univariate" | "equallength" | "serieslength" | "targetlabel" => {}
                other => bail!("line {lno}: unknown header @{other}"),
            }
            continue;
        }
        if has_labels != Some(true) {
            bail!("line {lno}: classification needs `@classLabel true <labels>` in the header");
        }
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 2 {
            bail!("line {lno}: expected channels separated by `:` and a class label last");
        }
        let label = fields[fields.len() - 1].trim().to_string();
        if !out.class_labels.contains(&label) {
            bail!(
                "line {lno}: class label `{label}` is not among the declared {:?}",
                out.class_labels
            );
        }
        let mut channels = vec![];
        for (c, f) in fields[..fields.len() - 1].iter().enumerate() {
            let vals: Result<Vec<f64>> = f
                .split(',')
                .map(|v| {
                    let v = v.trim();
                    if v == "?" || v.eq_ignore_ascii_case("nan") {
                        Ok(f64::NAN)
                    } else {
                        v.parse::<f64>().map_err(|_| {
                            anyhow!("line {lno}, channel {}: `{v}` is not a number", c + 1)
                        })
                    }
                })
                .collect();
            let vals = vals?;
            if vals.is_empty() {
                bail!("line {lno}, channel {}: empty series", c + 1);
            }
            channels.push(vals);
        }
        let d = dims.unwrap_or(channels.len());
        if channels.len() != d || out.series.first().is_some_and(|s| s.len() != d) {
            bail!(
                "line {lno}: {} channels, expected {d} (@dimensions or the first case)",
                channels.len()
            );
        }
        out.series.push(channels);
        out.labels.push(label);
    }
    if !in_data {
        bail!("no @data section");
    }
    if out.series.is_empty() {
        bail!("no cases after @data");
    }
    Ok(out)
}

/// numpy's `interp(x, xp, fp)` for increasing `xp`: linear, constant beyond the ends.
fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    if x <= xp[0] {
        return fp[0];
    }
    if x >= xp[xp.len() - 1] {
        return fp[fp.len() - 1];
    }
    let j = xp.partition_point(|&p| p <= x);
    let (x0, x1) = (xp[j - 1], xp[j]);
    fp[j - 1] + (x - x0) / (x1 - x0) * (fp[j] - fp[j - 1])
}

/// A labelled set as tensors: x [N, L, D] (f32, NaN where missing), y [N] (int64).
pub struct TsArrays {
    pub x: Tensor,
    pub y: Tensor,
    pub classes: Vec<String>,
}

/// The training and test files as arrays of one common length, labels numbered in sorted order
/// of the training labels (the official `get_data`).
pub fn to_arrays(train: &TsFile, test: &TsFile) -> Result<(TsArrays, TsArrays)> {
    if train.dims() != test.dims() {
        bail!(
            "the training file has {} channels and the test file {}",
            train.dims(),
            test.dims()
        );
    }
    let mut classes: Vec<String> = train.labels.clone();
    classes.sort();
    classes.dedup();
    let max_len = train
        .series
        .iter()
        .flatten()
        .map(Vec::len)
        .max()
        .unwrap_or(0);
    let uneven = train
        .series
        .iter()
        .chain(&test.series)
        .flatten()
        .any(|s| s.len() != max_len);
    let convert = |f: &TsFile| -> Result<TsArrays> {
        let d = f.dims();
        let mut flat = Vec::with_capacity(f.series.len() * max_len * d);
        let mut ys = vec![];
        for (case, label) in f.series.iter().zip(&f.labels) {
            let chans: Vec<Vec<f64>> = case
                .iter()
                .map(|s| {
                    if !uneven {
                        return s.clone();
                    }
                    let n = s.len();
                    let xp: Vec<f64> = (0..n)
                        .map(|i| {
                            if n == 1 {
                                0.0
                            } else {
                                max_len as f64 * i as f64 / (n - 1) as f64
                            }
                        })
                        .collect();
                    (0..max_len).map(|k| interp(k as f64, &xp, s)).collect()
                })
                .collect();
            for k in 0..max_len {
                for ch in &chans {
                    flat.push(ch[k] as f32);
                }
            }
            let y = classes
                .iter()
                .position(|c| c == label)
                .ok_or_else(|| anyhow!("test label `{label}` never occurs in the training file"))?;
            ys.push(y as i64);
        }
        Ok(TsArrays {
            x: Tensor::from_slice(&flat).view([f.series.len() as i64, max_len as i64, d as i64]),
            y: Tensor::from_slice(&ys),
            classes: classes.clone(),
        })
    };
    Ok((convert(train)?, convert(test)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "# A hand-written two-channel set\n\
@problemName Tiny\n\
@timeStamps false\n\
@missing true\n\
@univariate false\n\
@dimensions 2\n\
@equalLength true\n\
@seriesLength 3\n\
@classLabel true up down\n\
@data\n\
1.0,2.0,3.0:0.5,?,1.5:up\n\
3,2,1e0:NaN,0,-1:down\n";

    #[test]
    fn parses_a_hand_written_ts_file_with_missing_values() {
        let f = parse_ts(SMALL).unwrap();
        assert_eq!(f.problem, "Tiny");
        assert_eq!(f.labels, vec!["up", "down"]);
        assert_eq!(f.class_labels, vec!["up", "down"]);
        assert_eq!(f.series[0][0], vec![1.0, 2.0, 3.0]);
        assert!(f.series[0][1][1].is_nan() && f.series[1][1][0].is_nan());
        assert_eq!(f.series[1][0], vec![3.0, 2.0, 1.0]);
        let (a, _) = to_arrays(&f, &f).unwrap();
        assert_eq!(a.x.size(), [2, 3, 2]);
        // Labels in sorted order: down = 0, up = 1; x is [case, time, channel].
        assert_eq!(Vec::<i64>::try_from(&a.y).unwrap(), vec![1, 0]);
        assert_eq!(a.x.double_value(&[0, 2, 1]), 1.5);
        assert!(a.x.double_value(&[0, 1, 1]).is_nan());
        assert_eq!(a.classes, vec!["down", "up"]);
    }

    #[test]
    fn uneven_lengths_are_resampled_as_the_official_loader_does_and_errors_name_the_line() {
        let text = "@problemName U\n@classLabel true a b\n@data\n0,3:a\n0,1,2,3:b\n";
        let f = parse_ts(text).unwrap();
        let (a, _) = to_arrays(&f, &f).unwrap();
        // L = 4. Series (0, 3) sits at xp = (0, 4): values at 0..3 are 0, 0.75, 1.5, 2.25.
        let got: Vec<f64> =
            Vec::try_from(a.x.select(0, 0).reshape([-1]).to_kind(tch::Kind::Double)).unwrap();
        assert_eq!(got, vec![0.0, 0.75, 1.5, 2.25]);
        // (0, 1, 2, 3) at xp = (0, 4/3, 8/3, 4): at 1 → 0.75.
        assert!((a.x.double_value(&[1, 1, 0]) - 0.75).abs() < 1e-6);
        let bad = parse_ts("@classLabel true a b\n@data\n1,x:a\n")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("line 3") && bad.contains("`x`"), "{bad}");
        let bad = parse_ts("@classLabel true a b\n@data\n1,2:c\n")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("`c`"), "{bad}");
        assert!(parse_ts("@timeStamps true\n@data\n").is_err());
        assert!(parse_ts("@classLabel true a\n")
            .unwrap_err()
            .to_string()
            .contains("@data"));
        let other = parse_ts("@classLabel true a z\n@data\n1:z\n").unwrap();
        assert!(to_arrays(
            &parse_ts("@classLabel true a\n@data\n1:a\n").unwrap(),
            &other
        )
        .is_err());
    }
}
