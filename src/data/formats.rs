//! Parsers for the dataset file formats, written here so every check is ours: IDX (MNIST,
//! Fashion-MNIST; raw or gzipped), CIFAR-10 binary batches, and numeric CSV. Each names the file
//! and what is wrong with it; none panics on bad input.

use anyhow::{anyhow, bail, Context, Result};
use std::io::Read;
use std::path::Path;

/// Reads a whole file, transparently un-gzipping it (by magic bytes, not by name).
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                anyhow!(
                    "{} is a corrupt gzip file: {e}; fetch it again",
                    path.display()
                )
            })?;
        return Ok(out);
    }
    Ok(raw)
}

/// An IDX array of unsigned bytes: its dimensions and data.
#[derive(Debug)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Parses an IDX file of unsigned bytes (type 0x08), checking magic, dimensions and length.
pub fn read_idx(path: &Path) -> Result<Idx> {
    parse_idx(&read_bytes(path)?).map_err(|e| anyhow!("{}: {e}", path.display()))
}

pub fn parse_idx(bytes: &[u8]) -> Result<Idx> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        bail!("not an IDX file (bad magic number)");
    }
    if bytes[2] != 0x08 {
        bail!(
            "IDX element type 0x{:02x} is not unsigned byte (0x08)",
            bytes[2]
        );
    }
    let ndims = bytes[3] as usize;
    if ndims == 0 || bytes.len() < 4 + 4 * ndims {
        bail!("IDX header truncated ({} dimensions announced)", ndims);
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let expected: usize = dims.iter().product();
    let data = &bytes[4 + 4 * ndims..];
    if data.len() != expected {
        bail!(
            "IDX data has {} bytes but dimensions {:?} need {expected}: file truncated or corrupt",
            data.len(),
            dims
        );
    }
    Ok(Idx {
        dims,
        data: data.to_vec(),
    })
}

/// CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes (3×32×32, channel-major).
pub const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

/// Parses a CIFAR-10 binary batch into (labels, pixels).
pub fn read_cifar(path: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let bytes = read_bytes(path)?;
    parse_cifar(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))
}

pub fn parse_cifar(bytes: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(CIFAR_RECORD) {
        bail!("{} bytes is not a whole number of {CIFAR_RECORD}-byte CIFAR records: truncated or not the binary version", bytes.len());
    }
    let n = bytes.len() / CIFAR_RECORD;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * (CIFAR_RECORD - 1));
    for rec in bytes.chunks_exact(CIFAR_RECORD) {
        if rec[0] > 9 {
            bail!("label {} out of range 0..9: not a CIFAR-10 file", rec[0]);
        }
        labels.push(rec[0]);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok((labels, pixels))
}

/// A numeric table: rows of equal length, plus the header line when there was one.
#[derive(Debug)]
pub struct Table {
    pub header: Option<Vec<String>>,
    pub cols: usize,
    pub values: Vec<f32>,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.values.len() / self.cols.max(1)
    }
}

/// Parses a numeric CSV. A first row that does not parse as numbers is taken as the header.
pub fn read_csv(path: &Path) -> Result<Table> {
    let bytes = read_bytes(path)?;
    parse_csv(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))
}

pub fn parse_csv(bytes: &[u8]) -> Result<Table> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut header = None;
    let mut cols = 0;
    let mut values = vec![];
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| anyhow!("line {}: {e}", i + 1))?;
        let parsed: Result<Vec<f32>, _> = rec.iter().map(|f| f.trim().parse::<f32>()).collect();
        match parsed {
            Err(_) if i == 0 => {
                header = Some(rec.iter().map(str::to_string).collect());
                continue;
            }
            Err(_) => {
                let bad = rec
                    .iter()
                    .find(|f| f.trim().parse::<f32>().is_err())
                    .unwrap_or("");
                bail!("line {}: `{bad}` is not a number", i + 1);
            }
            Ok(row) => {
                if cols == 0 {
                    cols = row.len();
                } else if row.len() != cols {
                    bail!(
                        "line {} has {} columns, earlier lines have {cols}",
                        i + 1,
                        row.len()
                    );
                }
                values.extend(row);
            }
        }
    }
    if values.is_empty() {
        bail!("no data rows");
    }
    Ok(Table {
        header,
        cols,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b.extend(data);
        b
    }

    #[test]
    fn idx_parses_and_rejects_corrupt_files() {
        let ok = parse_idx(&idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6])).unwrap();
        assert_eq!((ok.dims, ok.data), (vec![2, 3], vec![1, 2, 3, 4, 5, 6]));
        let e = parse_idx(&idx_bytes(&[2, 3], &[1, 2, 3]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        assert!(parse_idx(b"\x01\x00\x08\x01")
            .unwrap_err()
            .to_string()
            .contains("magic"));
        let mut wrong_type = idx_bytes(&[1], &[0]);
        wrong_type[2] = 0x0d;
        assert!(parse_idx(&wrong_type)
            .unwrap_err()
            .to_string()
            .contains("not unsigned byte"));
        assert!(parse_idx(&[0, 0, 8, 3, 0])
            .unwrap_err()
            .to_string()
            .contains("header truncated"));
    }

    #[test]
    fn gzipped_files_are_read_transparently_and_corrupt_gzip_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x-idx1-ubyte.gz");
        let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
        gz.write_all(&idx_bytes(&[3], &[7, 8, 9])).unwrap();
        std::fs::write(&p, gz.finish().unwrap()).unwrap();
        assert_eq!(read_idx(&p).unwrap().data, vec![7, 8, 9]);
        std::fs::write(&p, [0x1f, 0x8b, 8, 0, 1, 2]).unwrap();
        let e = read_idx(&p).unwrap_err().to_string();
        assert!(
            e.contains("corrupt gzip") && e.contains("x-idx1-ubyte.gz"),
            "{e}"
        );
        assert!(read_idx(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn cifar_records_are_checked() {
        let mut rec = vec![3u8];
        rec.extend(std::iter::repeat_n(9u8, CIFAR_RECORD - 1));
        let two: Vec<u8> = rec.iter().chain(&rec).copied().collect();
        let (labels, pixels) = parse_cifar(&two).unwrap();
        assert_eq!(labels, vec![3, 3]);
        assert_eq!(pixels.len(), 2 * 3072);
        assert!(parse_cifar(&two[..100])
            .unwrap_err()
            .to_string()
            .contains("whole number"));
        let mut bad = rec.clone();
        bad[0] = 12;
        assert!(parse_cifar(&bad)
            .unwrap_err()
            .to_string()
            .contains("out of range"));
    }

    #[test]
    fn csv_header_detection_and_column_checks() {
        let t = parse_csv(b"150,4,setosa,versicolor\n5.1,3.5,1.4,0\n4.9,3.0,1.4,1\n").unwrap();
        assert_eq!(t.header.as_ref().unwrap()[2], "setosa");
        assert_eq!((t.rows(), t.cols), (2, 4));
        let t = parse_csv(b"1,2\n3,4\n").unwrap();
        assert!(t.header.is_none() && t.rows() == 2);
        let e = parse_csv(b"1,2\n3\n").unwrap_err().to_string();
        assert!(e.contains("line 2 has 1 columns"), "{e}");
        assert!(parse_csv(b"a,b\n1,x\n")
            .unwrap_err()
            .to_string()
            .contains("`x` is not a number"));
        assert!(parse_csv(b"a,b\n")
            .unwrap_err()
            .to_string()
            .contains("no data rows"));
    }
}
