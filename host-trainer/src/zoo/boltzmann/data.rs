//! Binary data sets: validated rows of 0/1 values, and [`binarize`] for real-valued data.

use super::{BoltzmannError, Result};

/// A data set of binary vectors: `rows()` rows of `dim()` values, each exactly `0.0` or `1.0`,
/// row-major. Never empty (at least one row of at least one unit).
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryData {
    /// Values, `(rows, dim)` row-major.
    x: Vec<f64>,
    /// Row length.
    dim: usize,
}

impl BinaryData {
    /// Wraps `x` (`(rows, dim)` row-major) after checking every value is 0 or 1 and the length
    /// is a positive multiple of `dim`.
    pub fn new(x: Vec<f64>, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(BoltzmannError::NoUnits { what: "data row" });
        }
        if x.is_empty() || !x.len().is_multiple_of(dim) {
            return Err(BoltzmannError::Ragged { len: x.len(), dim });
        }
        if let Some((index, &value)) = x.iter().enumerate().find(|&(_, &v)| v != 0.0 && v != 1.0) {
            return Err(BoltzmannError::NotBinary { index, value });
        }
        Ok(Self { x, dim })
    }

    /// Row length (number of units).
    #[must_use]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows (at least 1).
    #[must_use]
    pub fn rows(&self) -> usize {
        self.x.len() / self.dim
    }

    /// Row `i`, or `None` past the end.
    #[must_use]
    pub fn row(&self, i: usize) -> Option<&[f64]> {
        self.x.chunks_exact(self.dim).nth(i)
    }

    /// All values, `(rows, dim)` row-major.
    #[must_use]
    pub fn as_slice(&self) -> &[f64] {
        &self.x
    }

    /// Iterates over the rows.
    pub fn iter(&self) -> impl Iterator<Item = &[f64]> {
        self.x.chunks_exact(self.dim)
    }
}

/// Thresholds real-valued rows of length `dim` to binary: `x ≥ threshold` → 1, else 0.
///
/// For the 8×8 digits of [`crate::data::digits`] (pixel counts 0..=16, `dim = 64`),
/// `binarize(&ds.x, ds.dim, 8.0)` sets the pixels that are at least half covered.
pub fn binarize(x: &[f32], dim: usize, threshold: f32) -> Result<BinaryData> {
    if !threshold.is_finite() {
        return Err(BoltzmannError::BadParameter {
            name: "threshold",
            value: f64::from(threshold),
            expected: "a finite number",
        });
    }
    if let Some((index, &v)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(BoltzmannError::NonFinite {
            what: "x",
            index,
            value: f64::from(v),
        });
    }
    let bits = x
        .iter()
        .map(|&v| if v >= threshold { 1.0 } else { 0.0 })
        .collect();
    BinaryData::new(bits, dim)
}

/// Test data: `n` rows, each one of `prototypes` random prototypes with every bit flipped with
/// probability `flip` (deterministic in `seed`).
#[cfg(test)]
pub(super) fn noisy_prototypes(
    dim: usize,
    prototypes: usize,
    n: usize,
    flip: f32,
    seed: u64,
) -> BinaryData {
    use microdiff_runtime::noise::{Domain, NoiseStream};
    let s = NoiseStream::new(seed, 7, Domain::TrainData);
    let protos: Vec<f64> = (0..prototypes * dim)
        .map(|e| {
            if s.uniform(0, e as u32) < 0.5 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let mut x = Vec::with_capacity(n * dim);
    for r in 0..n {
        let p = r % prototypes;
        for i in 0..dim {
            let bit = protos[p * dim + i];
            let flipped = s.uniform(1 + r as u32, i as u32) < flip;
            x.push(if flipped { 1.0 - bit } else { bit });
        }
    }
    BinaryData::new(x, dim).expect("binary by construction")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binarize_thresholds_and_checks() {
        let d = binarize(&[0.0, 8.0, 7.9, 16.0], 2, 8.0).unwrap();
        assert_eq!(d.as_slice(), &[0.0, 1.0, 0.0, 1.0]);
        assert_eq!(d.rows(), 2);
        assert!(matches!(
            binarize(&[0.0, f32::NAN], 2, 8.0),
            Err(BoltzmannError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            binarize(&[0.0, 1.0, 1.0], 2, 8.0),
            Err(BoltzmannError::Ragged { .. })
        ));
        assert!(matches!(
            BinaryData::new(vec![0.0, 0.5], 2),
            Err(BoltzmannError::NotBinary { index: 1, .. })
        ));
    }

    #[test]
    fn binarize_digits() {
        let ds = crate::data::digits().unwrap();
        let b = binarize(&ds.x, ds.dim, 8.0).unwrap();
        assert_eq!((b.rows(), b.dim()), (1797, 64));
        let on = b.as_slice().iter().sum::<f64>() / b.as_slice().len() as f64;
        // About a third of the digit pixels are at least half covered.
        assert!((0.2..0.5).contains(&on), "fraction on {on}");
    }
}
