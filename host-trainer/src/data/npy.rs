//! A small reader for NumPy's `.npy` format (versions 1.0–3.0): numeric dtypes, either byte
//! order, C or Fortran order. Structured, object, bool, complex and f2 arrays are refused with
//! [`DataError::BadNpy`].
//!
//! Layout: the magic `\x93NUMPY`, major and minor version bytes, the header length (`u16` LE in
//! version 1, `u32` LE in 2 and 3), the header — a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (100, 2), }` padded with spaces and a
//! newline — and then exactly `product(shape) · itemsize` bytes of data.

use std::path::Path;

use super::{DataError, Dataset, check_finite, file_name, io_err};

/// The six magic bytes.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Reads and parses `path`, with the labels of `STEM.labels.npy` beside it when that exists.
pub(super) fn load(path: &Path) -> Result<Dataset, DataError> {
    let bytes = std::fs::read(path).map_err(|source| io_err(path, source))?;
    let mut ds = parse(path, &file_name(path), &bytes)?;
    let labels_path = labels_path(path);
    if labels_path.is_file() {
        let bytes = std::fs::read(&labels_path).map_err(|source| io_err(&labels_path, source))?;
        let labels = parse(&labels_path, &file_name(&labels_path), &bytes)?;
        attach_labels(&mut ds, &labels, &labels_path)?;
    }
    Ok(ds)
}

/// `DIR/STEM.labels.npy` for `DIR/STEM.npy`.
pub(super) fn labels_path(path: &Path) -> std::path::PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(Default::default, |s| s.to_string_lossy());
    path.with_file_name(format!("{stem}.labels.npy"))
}

/// Sets `ds`'s labels from a 1-D array of integers `0..65535`, one per sample; `classes` is the
/// largest label + 1.
fn attach_labels(ds: &mut Dataset, labels: &Dataset, path: &Path) -> Result<(), DataError> {
    let bad = |reason: String| DataError::BadNpy {
        path: path.to_path_buf(),
        reason,
    };
    if labels.dim != 1 || labels.len() != ds.len() {
        return Err(bad(format!(
            "labels: expected shape ({},) — one integer per sample of {} — found {} rows of {}",
            ds.len(),
            ds.name,
            labels.len(),
            labels.dim
        )));
    }
    let mut out = Vec::with_capacity(labels.x.len());
    for (i, &v) in labels.x.iter().enumerate() {
        if v.fract() != 0.0 || !(0.0..65535.0).contains(&v) {
            return Err(bad(format!("label {i}: {v} is not an integer in 0..65535")));
        }
        out.push(v as u16);
    }
    ds.classes = out.iter().map(|&l| usize::from(l) + 1).max().unwrap_or(0);
    ds.labels = Some(out);
    Ok(())
}

/// A numeric element type.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Float,
    Int,
    Uint,
}

/// Parses a whole `.npy` file held in `bytes`.
pub(super) fn parse(path: &Path, name: &str, bytes: &[u8]) -> Result<Dataset, DataError> {
    let bad = |reason: String| DataError::BadNpy {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        let head = &bytes[..bytes.len().min(6)];
        return Err(bad(format!("expected magic \\x93NUMPY, found {head:?}")));
    }
    let (header_start, header_len) = match bytes[6] {
        1 => (10, usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))),
        2 | 3 if bytes.len() >= 12 => (
            12,
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
        ),
        v => return Err(bad(format!("unsupported format version {v}.{}", bytes[7]))),
    };
    let data_start = header_start + header_len;
    let header = bytes.get(header_start..data_start).ok_or_else(|| {
        bad(format!(
            "header of {header_len} bytes runs past the end of the file"
        ))
    })?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text".into()))?;

    let descr = dict_value(header, "descr")
        .and_then(quoted)
        .ok_or_else(|| bad(format!("no 'descr' string in header {header:?}")))?;
    let fortran = match dict_value(header, "fortran_order") {
        Some(v) if v.starts_with("True") => true,
        Some(v) if v.starts_with("False") => false,
        _ => return Err(bad(format!("no 'fortran_order' in header {header:?}"))),
    };
    let shape = dict_value(header, "shape")
        .and_then(tuple)
        .ok_or_else(|| bad(format!("no 'shape' tuple in header {header:?}")))?;

    let (little, kind, size) = dtype(descr).ok_or_else(|| {
        bad(format!(
            "dtype '{descr}' not supported (expected f4, f8, i1..i8 or u1..u8)"
        ))
    })?;
    if shape.is_empty() {
        return Err(bad("0-d array: expected shape (n,) or (n, d, …)".into()));
    }
    let total = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    if total == 0 {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    let data = &bytes[data_start..];
    let expected = total * size;
    if data.len() != expected {
        return Err(bad(format!(
            "shape {shape:?} of '{descr}' needs {expected} data bytes, found {}",
            data.len()
        )));
    }

    let mut x: Vec<f32> = data
        .chunks_exact(size)
        .map(|b| element(b, kind, little))
        .collect();
    if fortran && shape.len() > 1 {
        x = fortran_to_c(&x, &shape);
    }
    let sample_shape = if shape.len() == 1 {
        vec![1]
    } else {
        shape[1..].to_vec()
    };
    let dim = sample_shape.iter().product();
    check_finite(path, &x, dim)?;
    Ok(Dataset {
        name: name.to_string(),
        x,
        dim,
        shape: sample_shape,
        labels: None,
        classes: 0,
    })
}

/// The text after `'key':` in a Python dict literal, left-trimmed.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    ['\'', '"'].into_iter().find_map(|q| {
        let pat = format!("{q}{key}{q}");
        let rest = &header[header.find(&pat)? + pat.len()..];
        Some(rest.trim_start().strip_prefix(':')?.trim_start())
    })
}

/// The contents of a leading `'…'` or `"…"`.
fn quoted(s: &str) -> Option<&str> {
    let q = s.chars().next().filter(|&c| c == '\'' || c == '"')?;
    let rest = &s[1..];
    Some(&rest[..rest.find(q)?])
}

/// The integers of a leading `( a, b, )` tuple.
fn tuple(s: &str) -> Option<Vec<usize>> {
    let inner = &s.strip_prefix('(')?[..s.find(')')? - 1];
    inner
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.trim_end_matches('L').parse().ok())
        .collect()
}

/// `(little endian, kind, item size)` of a dtype string like `<f4`, `|u1`, `>i2`.
fn dtype(descr: &str) -> Option<(bool, Kind, usize)> {
    let mut c = descr.chars();
    let order = c.next()?;
    let kind = match c.next()? {
        'f' => Kind::Float,
        'i' => Kind::Int,
        'u' => Kind::Uint,
        _ => return None,
    };
    let size: usize = c.as_str().parse().ok()?;
    let little = match order {
        '<' => true,
        '>' => false,
        '=' => cfg!(target_endian = "little"),
        '|' if size == 1 => true,
        _ => return None,
    };
    let ok = match kind {
        Kind::Float => matches!(size, 4 | 8),
        Kind::Int | Kind::Uint => matches!(size, 1 | 2 | 4 | 8),
    };
    ok.then_some((little, kind, size))
}

/// One element, converted to f32 (rounding to nearest; f64 beyond the f32 range becomes ±inf
/// and is reported by the finiteness check).
fn element(b: &[u8], kind: Kind, little: bool) -> f32 {
    let mut w = [0u8; 8];
    if little {
        w[..b.len()].copy_from_slice(b);
    } else {
        for (o, &v) in w.iter_mut().zip(b.iter().rev()) {
            *o = v;
        }
    }
    let u = u64::from_le_bytes(w);
    let bits = 8 * b.len() as u32;
    match kind {
        Kind::Float if b.len() == 4 => f32::from_bits(u as u32),
        Kind::Float => f64::from_bits(u) as f32,
        Kind::Uint => u as f32,
        // Sign-extend from `bits` bits.
        Kind::Int => (((u << (64 - bits)) as i64) >> (64 - bits)) as f32,
    }
}

/// Reorders a Fortran-order (first index fastest) array into C order (last index fastest).
fn fortran_to_c(x: &[f32], shape: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..x.len() {
        let mut f = 0;
        let mut stride = 1;
        for (&i, &d) in idx.iter().zip(shape) {
            f += i * stride;
            stride *= d;
        }
        out.push(x[f]);
        // Increment the C-order multi-index (last axis fastest).
        for (i, &d) in idx.iter_mut().zip(shape).rev() {
            *i += 1;
            if *i < d {
                break;
            }
            *i = 0;
        }
    }
    out
}
