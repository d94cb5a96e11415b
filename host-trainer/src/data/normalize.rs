//! The affine map between data units and model space. The weight blob stores it as the device
//! needs it, model → data: `data = x·scale + offset` (`Meta::to_data_units`), with 0 entries
//! (identity), 1 entry (the same for every element) or one per element.

use super::Dataset;

/// Smallest standard deviation [`Normalizer::standardize`] divides by. Dimensions with less
/// spread (the digits' always-blank corner pixels have exactly 0) are only centred: dividing
/// by a tiny std would blow rounding noise up to unit size.
pub const MIN_STD: f32 = 1e-6;

/// `data = x·scale + offset`, element by element; `to_model` is the inverse.
///
/// `scale` and `offset` have the same length: 0 (identity), 1 (one pair for every element) or
/// `dim` (per element, used cyclically over samples laid end to end), as the blob's META
/// section stores them. `scale` entries are never 0 for normalizers built here.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalizer {
    /// Model → data multiplier, per element (or one for all).
    pub scale: Vec<f32>,
    /// Model → data shift, per element (or one for all).
    pub offset: Vec<f32>,
}

impl Normalizer {
    /// The identity map (stored as 0 entries).
    pub fn identity() -> Self {
        Self {
            scale: Vec::new(),
            offset: Vec::new(),
        }
    }

    /// Per-dimension standardisation: model-space values have mean 0 and std 1 in every
    /// dimension of `ds` (`offset` = mean, `scale` = population std, or 1 where the std is below
    /// [`MIN_STD`]). Sums run in f64 over the samples in order.
    pub fn standardize(ds: &Dataset) -> Self {
        let (mean, var) = moments(ds);
        let scale = var
            .iter()
            .map(|&v| {
                let s = v.sqrt() as f32;
                if s < MIN_STD { 1.0 } else { s }
            })
            .collect();
        Self {
            scale,
            offset: mean.iter().map(|&m| m as f32).collect(),
        }
    }

    /// Per-dimension centring and one common scale, the root of the mean variance: shapes keep
    /// their aspect ratio (2-D point sets), and the average per-dimension variance is 1.
    /// Stored with one entry per dimension (the offsets differ).
    pub fn standardize_isotropic(ds: &Dataset) -> Self {
        let (mean, var) = moments(ds);
        let s = (var.iter().sum::<f64>() / var.len().max(1) as f64).sqrt() as f32;
        let s = if s < MIN_STD { 1.0 } else { s };
        Self {
            scale: vec![s; mean.len()],
            offset: mean.iter().map(|&m| m as f32).collect(),
        }
    }

    /// The fixed map of the data range `[data_lo, data_hi]` onto `[model_lo, model_hi]`, the
    /// same for every element (one entry). Panics if either range is empty or not finite.
    pub fn range(data_lo: f32, data_hi: f32, model_lo: f32, model_hi: f32) -> Self {
        assert!(
            [data_lo, data_hi, model_lo, model_hi]
                .iter()
                .all(|v| v.is_finite())
                && data_lo < data_hi
                && model_lo < model_hi,
            "Normalizer::range: empty or non-finite range"
        );
        let scale = (data_hi - data_lo) / (model_hi - model_lo);
        Self {
            scale: vec![scale],
            offset: vec![data_lo - model_lo * scale],
        }
    }

    /// The digits' map: pixel values `0..=16` ↔ `−1..=1` (`scale` 8, `offset` 8).
    pub fn digits() -> Self {
        Self::range(0.0, 16.0, -1.0, 1.0)
    }

    /// Number of stored entries (0, 1 or the data dimension).
    pub fn len(&self) -> usize {
        self.scale.len()
    }

    /// Whether this is the identity (no entries).
    pub fn is_empty(&self) -> bool {
        self.scale.is_empty()
    }

    /// Whether it fits samples of `dim` elements: 0 or 1 entries, or exactly `dim`, and
    /// `scale`/`offset` of equal length.
    pub fn fits(&self, dim: usize) -> bool {
        self.scale.len() == self.offset.len() && matches!(self.scale.len(), 0 | 1)
            || (self.scale.len() == dim && self.offset.len() == dim)
    }

    /// Data units → model space, in place: `x = (data − offset) / scale`. `x` holds one or more
    /// samples end to end; with per-element entries its length must be a multiple of their
    /// number (panics otherwise).
    pub fn to_model(&self, x: &mut [f32]) {
        self.apply(x, |v, s, o| (v - o) / s);
    }

    /// Model space → data units, in place: `data = x·scale + offset` (the blob's map). Same
    /// layout rules as [`to_model`](Self::to_model).
    pub fn to_data(&self, x: &mut [f32]) {
        self.apply(x, |v, s, o| v * s + o);
    }

    /// A copy of `ds` in model space (labels and shape kept).
    pub fn dataset_to_model(&self, ds: &Dataset) -> Dataset {
        let mut out = ds.clone();
        self.to_model(&mut out.x);
        out
    }

    fn apply(&self, x: &mut [f32], f: impl Fn(f32, f32, f32) -> f32) {
        assert_eq!(
            self.scale.len(),
            self.offset.len(),
            "Normalizer: scale and offset lengths differ"
        );
        match self.scale.len() {
            0 => {}
            1 => {
                let (s, o) = (self.scale[0], self.offset[0]);
                x.iter_mut().for_each(|v| *v = f(*v, s, o));
            }
            n => {
                assert!(
                    x.len().is_multiple_of(n),
                    "Normalizer: {} values is not a multiple of {n} entries",
                    x.len()
                );
                for row in x.chunks_exact_mut(n) {
                    for ((v, &s), &o) in row.iter_mut().zip(&self.scale).zip(&self.offset) {
                        *v = f(*v, s, o);
                    }
                }
            }
        }
    }
}

/// Per-dimension (mean, population variance) in f64, summed over the samples in order
/// (two passes, so no cancellation).
fn moments(ds: &Dataset) -> (Vec<f64>, Vec<f64>) {
    let n = ds.len().max(1) as f64;
    let mut mean = vec![0.0f64; ds.dim];
    for row in ds.x.chunks_exact(ds.dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0.0f64; ds.dim];
    for row in ds.x.chunks_exact(ds.dim) {
        for ((s, &m), &v) in var.iter_mut().zip(&mean).zip(row) {
            *s += (f64::from(v) - m).powi(2);
        }
    }
    var.iter_mut().for_each(|s| *s /= n);
    (mean, var)
}
