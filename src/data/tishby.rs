//! The 12-bit dataset of Shwartz-Ziv & Tishby ("Opening the black box", paper 10): all 4096
//! binary patterns, labelled by a rotation-invariant rule on an icosahedron; plus readers for
//! the original file users have (IDNNs' `var_u.mat`, MATLAB v5) and for a CSV copy.

use super::formats;
use anyhow::{anyhow, bail, Context, Result};
use std::io::Read;
use std::path::Path;

/// Icosahedron vertex of each bit (bit 0 = most significant), unnormalised, φ = golden ratio.
fn vertices() -> [[f64; 3]; 12] {
    let p = (1.0 + 5f64.sqrt()) / 2.0;
    [
        [-1.0, p, 0.0],
        [0.0, -1.0, -p],
        [-p, 0.0, 1.0],
        [p, 0.0, 1.0],
        [1.0, p, 0.0],
        [p, 0.0, -1.0],
        [-p, 0.0, -1.0],
        [0.0, 1.0, p],
        [0.0, 1.0, -p],
        [1.0, -p, 0.0],
        [-1.0, -p, 0.0],
        [0.0, -1.0, p],
    ]
}

/// (w, n_near, n_far, n_anti) signatures labelled 1 among patterns of weight 5 to 7.
const ONES: [(usize, usize, usize, usize); 15] = [
    (5, 3, 7, 0),
    (6, 5, 9, 1),
    (6, 5, 10, 0),
    (6, 6, 7, 2),
    (6, 6, 8, 1),
    (6, 6, 9, 0),
    (6, 7, 7, 1),
    (6, 9, 6, 0),
    (7, 8, 11, 2),
    (7, 8, 12, 1),
    (7, 9, 9, 3),
    (7, 9, 10, 2),
    (7, 10, 9, 2),
    (7, 10, 10, 1),
    (7, 12, 8, 1),
];

/// The label of pattern `k` (its 12-bit binary expansion, most significant bit first).
pub fn label(k: usize) -> u8 {
    let bits: Vec<usize> = (0..12).filter(|b| k >> (11 - b) & 1 == 1).collect();
    let w = bits.len();
    if w <= 4 {
        return 0;
    }
    if w >= 8 {
        return 1;
    }
    let v = vertices();
    let norm2 = v[0].iter().map(|c| c * c).sum::<f64>();
    let (mut near, mut far, mut anti) = (0, 0, 0);
    for (i, &a) in bits.iter().enumerate() {
        for &b in &bits[i + 1..] {
            let dot = (0..3).map(|c| v[a][c] * v[b][c]).sum::<f64>() / norm2;
            if dot < -0.99 {
                anti += 1;
            } else if dot < 0.0 {
                far += 1;
            } else {
                near += 1;
            }
        }
    }
    u8::from(ONES.contains(&(w, near, far, anti)))
}

/// All 4096 patterns as rows of 12 bits (0/1) and their labels.
pub fn generate() -> (Vec<f32>, Vec<i64>) {
    let mut x = Vec::with_capacity(4096 * 12);
    let mut y = Vec::with_capacity(4096);
    for k in 0..4096usize {
        x.extend((0..12).map(|b| (k >> (11 - b) & 1) as f32));
        y.push(label(k) as i64);
    }
    (x, y)
}

/// Reads the dataset from a file: IDNNs' MATLAB v5 `var_u.mat` (variables `F` 4096×12 and
/// `y` 1×4096) or a CSV of 12 bit columns and the label.
pub fn read_file(path: &Path) -> Result<(Vec<f32>, Vec<i64>)> {
    let is_mat = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mat"));
    let (x, y) = if is_mat {
        let vars = read_mat(path)?;
        let get = |name: &str| {
            vars.iter().find(|v| v.name == name).ok_or_else(|| {
                anyhow!(
                    "{}: no variable `{name}` (expected F 4096x12 and y 1x4096)",
                    path.display()
                )
            })
        };
        let (f, yv) = (get("F")?, get("y")?);
        if f.dims.len() != 2 || f.dims[1] != 12 || yv.dims.iter().product::<usize>() != f.dims[0] {
            bail!(
                "{}: F is {:?} and y is {:?}; expected F n×12 and y 1×n",
                path.display(),
                f.dims,
                yv.dims
            );
        }
        // MATLAB stores column-major: F[i, j] is at j·n + i.
        let n = f.dims[0];
        let x: Vec<f32> = (0..n)
            .flat_map(|i| (0..12).map(move |j| (i, j)))
            .map(|(i, j)| f.data[j * n + i] as f32)
            .collect();
        (x, yv.data.iter().map(|&v| v as i64).collect::<Vec<_>>())
    } else {
        let t = formats::read_csv(path)?;
        if t.cols != 13 {
            bail!(
                "{}: expected 12 bit columns and a label, found {} columns",
                path.display(),
                t.cols
            );
        }
        let x: Vec<f32> = t.values.chunks(13).flat_map(|r| r[..12].to_vec()).collect();
        let y: Vec<i64> = t.values.chunks(13).map(|r| r[12] as i64).collect();
        (x, y)
    };
    if x.iter().any(|&v| v != 0.0 && v != 1.0) || y.iter().any(|&v| v != 0 && v != 1) {
        bail!("{}: bits and labels must be 0 or 1", path.display());
    }
    Ok((x, y))
}

/// One numeric variable of a MATLAB v5 file, as f64, with its dimensions.
#[derive(Debug)]
pub struct MatVar {
    pub name: String,
    pub dims: Vec<usize>,
    pub data: Vec<f64>,
}

const MI_INT8: u32 = 1;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;

/// Reads the numeric matrices of a little-endian MATLAB v5 `.mat` file (compressed or not).
pub fn read_mat(path: &Path) -> Result<Vec<MatVar>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_mat(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))
}

pub fn parse_mat(bytes: &[u8]) -> Result<Vec<MatVar>> {
    if bytes.len() < 128 || &bytes[126..128] != b"IM" {
        bail!(
            "not a little-endian MATLAB v5 file (v7.3/HDF5 files are not supported: save with -v7)"
        );
    }
    let mut vars = vec![];
    let mut pos = 128;
    while pos + 8 <= bytes.len() {
        let (ty, data, next) = element(bytes, pos)?;
        pos = next;
        match ty {
            MI_COMPRESSED => {
                let mut inflated = vec![];
                flate2::read::ZlibDecoder::new(data)
                    .read_to_end(&mut inflated)
                    .map_err(|e| anyhow!("corrupt compressed element: {e}"))?;
                let (ty, inner, _) = element(&inflated, 0)?;
                if ty == MI_MATRIX {
                    vars.extend(matrix(inner)?);
                }
            }
            MI_MATRIX => vars.extend(matrix(data)?),
            _ => {}
        }
    }
    Ok(vars)
}

/// One data element at `pos`: (type, payload, position of the next element).
fn element(b: &[u8], pos: usize) -> Result<(u32, &[u8], usize)> {
    let word = |p: usize| -> Result<u32> {
        b.get(p..p + 4)
            .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
            .ok_or_else(|| anyhow!("file truncated"))
    };
    let tag = word(pos)?;
    if tag >> 16 != 0 {
        // Small element: size in the upper half of the tag, payload in the next 4 bytes.
        let size = (tag >> 16) as usize;
        let data = b
            .get(pos + 4..pos + 4 + size)
            .ok_or_else(|| anyhow!("file truncated"))?;
        return Ok((tag & 0xffff, data, pos + 8));
    }
    let size = word(pos + 4)? as usize;
    let data = b
        .get(pos + 8..pos + 8 + size)
        .ok_or_else(|| anyhow!("element of {size} bytes runs past the end: file truncated"))?;
    let padded = if tag == MI_COMPRESSED {
        size
    } else {
        size.div_ceil(8) * 8
    };
    Ok((tag, data, pos + 8 + padded))
}

fn numbers(ty: u32, d: &[u8]) -> Result<Vec<f64>> {
    let conv = |n: usize, f: &dyn Fn(&[u8]) -> f64| d.chunks_exact(n).map(f).collect::<Vec<f64>>();
    Ok(match ty {
        1 => conv(1, &|c| c[0] as i8 as f64),
        2 => conv(1, &|c| c[0] as f64),
        3 => conv(2, &|c| i16::from_le_bytes([c[0], c[1]]) as f64),
        4 => conv(2, &|c| u16::from_le_bytes([c[0], c[1]]) as f64),
        5 => conv(4, &|c| i32::from_le_bytes(c.try_into().expect("4")) as f64),
        6 => conv(4, &|c| u32::from_le_bytes(c.try_into().expect("4")) as f64),
        7 => conv(4, &|c| f32::from_le_bytes(c.try_into().expect("4")) as f64),
        9 => conv(8, &|c| f64::from_le_bytes(c.try_into().expect("8"))),
        12 => conv(8, &|c| i64::from_le_bytes(c.try_into().expect("8")) as f64),
        13 => conv(8, &|c| u64::from_le_bytes(c.try_into().expect("8")) as f64),
        other => bail!("unsupported MATLAB data type {other}"),
    })
}

/// A miMATRIX payload: flags, dimensions, name, real part. Non-numeric classes are skipped.
fn matrix(d: &[u8]) -> Result<Option<MatVar>> {
    let (ty, flags, p) = element(d, 0)?;
    if ty != MI_UINT32 || flags.len() < 4 {
        bail!("malformed array flags");
    }
    let class = flags[0];
    if !(6..=15).contains(&class) {
        return Ok(None); // cell, struct, char, sparse...: not data we read
    }
    let (ty, dims, p) = element(d, p)?;
    if ty != MI_INT32 {
        bail!("malformed dimensions");
    }
    let dims: Vec<usize> = numbers(MI_INT32, dims)?
        .into_iter()
        .map(|v| v as usize)
        .collect();
    let (ty, name, p) = element(d, p)?;
    if ty != MI_INT8 {
        bail!("malformed array name");
    }
    let name = String::from_utf8_lossy(name).into_owned();
    let (ty, real, _) = element(d, p)?;
    let data = numbers(ty, real)?;
    if data.len() != dims.iter().product::<usize>() {
        bail!(
            "variable `{name}` has {} values for dimensions {dims:?}",
            data.len()
        );
    }
    Ok(Some(MatVar { name, dims, data }))
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_rule_reproduces_the_original_label_counts() {
        let (x, y) = generate();
        assert_eq!(x.len(), 4096 * 12);
        assert_eq!(y.iter().sum::<i64>(), 2118);
        let ones_by_weight = |w: u32| {
            (0..4096usize)
                .filter(|k| k.count_ones() == w)
                .map(|k| y[k])
                .sum::<i64>()
        };
        let all_by_weight = |w: u32| (0..4096usize).filter(|k| k.count_ones() == w).count() as i64;
        for w in 0..=4 {
            assert_eq!(ones_by_weight(w), 0);
        }
        for w in 8..=12 {
            assert_eq!(ones_by_weight(w), all_by_weight(w));
        }
        assert_eq!((ones_by_weight(5), all_by_weight(5)), (60, 792));
        assert_eq!((ones_by_weight(6), all_by_weight(6)), (532, 924));
        assert_eq!((ones_by_weight(7), all_by_weight(7)), (732, 792));
        let p: f64 = 2118.0 / 4096.0;
        let h = -(p * p.log2() + (1.0 - p) * (1.0 - p).log2());
        assert!((h - 0.99916).abs() < 1e-5, "{h}");
    }

    /// Writes a MATLAB v5 file the way MATLAB does (each variable a compressed miMATRIX).
    pub fn write_mat(path: &Path, vars: &[(&str, Vec<usize>, Vec<u8>)]) {
        let mut out = vec![b' '; 116];
        out[..10].copy_from_slice(b"MATLAB 5.0");
        out.extend([0u8; 8]);
        out.extend(0x0100u16.to_le_bytes());
        out.extend(b"IM");
        let el = |ty: u32, data: &[u8]| {
            let mut e = ty.to_le_bytes().to_vec();
            e.extend((data.len() as u32).to_le_bytes());
            e.extend(data);
            e.resize(8 + data.len().div_ceil(8) * 8, 0);
            e
        };
        for (name, dims, data) in vars {
            let mut m = el(MI_UINT32, &[6, 0, 0, 0, 0, 0, 0, 0]);
            m.extend(el(
                MI_INT32,
                &dims
                    .iter()
                    .flat_map(|d| (*d as i32).to_le_bytes())
                    .collect::<Vec<u8>>(),
            ));
            m.extend(el(MI_INT8, name.as_bytes()));
            m.extend(el(2, data)); // miUINT8: MATLAB's compact storage of small doubles
            let matrix = el(MI_MATRIX, &m);
            let mut z = flate2::write::ZlibEncoder::new(vec![], flate2::Compression::default());
            z.write_all(&matrix).unwrap();
            let z = z.finish().unwrap();
            out.extend(MI_COMPRESSED.to_le_bytes());
            out.extend((z.len() as u32).to_le_bytes());
            out.extend(z);
        }
        std::fs::write(path, out).unwrap();
    }

    #[test]
    fn mat_and_csv_copies_read_back_identically() {
        let (x, y) = generate();
        let dir = tempfile::tempdir().unwrap();
        let mat = dir.path().join("var_u.mat");
        // Column-major F.
        let f: Vec<u8> = (0..12)
            .flat_map(|j| (0..4096).map(move |i| (i, j)))
            .map(|(i, j)| x[i * 12 + j] as u8)
            .collect();
        write_mat(
            &mat,
            &[
                ("F", vec![4096, 12], f),
                ("y", vec![1, 4096], y.iter().map(|&v| v as u8).collect()),
            ],
        );
        let (mx, my) = read_file(&mat).unwrap();
        assert_eq!((mx, my), (x.clone(), y.clone()));

        let csv = dir.path().join("tishby.csv");
        let text: String = (0..4096)
            .map(|i| {
                let bits: Vec<String> = x[i * 12..i * 12 + 12]
                    .iter()
                    .map(|b| (*b as u8).to_string())
                    .collect();
                format!("{},{}\n", bits.join(","), y[i])
            })
            .collect();
        std::fs::write(&csv, text).unwrap();
        assert_eq!(read_file(&csv).unwrap(), (x, y));

        std::fs::write(&mat, &std::fs::read(&mat).unwrap()[..300]).unwrap();
        assert!(read_file(&mat).is_err());
        std::fs::write(&mat, b"not a mat file").unwrap();
        assert!(read_file(&mat)
            .unwrap_err()
            .to_string()
            .contains("MATLAB v5"));
    }
}
