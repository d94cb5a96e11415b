//! Datasets: the built-in 2-D toy sets, the 8×8 digits, and user data from CSV, NPY or a folder
//! of PNGs, all as one in-memory [`Dataset`]; and the affine [`Normalizer`] between data units
//! and model space.
//!
//! * [`toy`] — five standard 2-D sets ([`Toy`]), generated from counter-based noise.
//! * [`digits`] / [`digits_split`] — the UCI optical digits, embedded in the binary.
//! * [`load`] — user data, chosen by extension: `.csv`, `.npy`, or a directory of PNGs.
//! * [`Source`] — a `--data` name resolved (built-in, digits or a path) and normalised.
//! * [`Normalizer`] — `data = x·scale + offset`, the map the weight blob stores.
//!
//! # Determinism
//!
//! Every random number here comes from [`microdiff_runtime::noise::NoiseStream`] in
//! [`Domain::TrainNoise`], with stream = sample
//! index and draw numbers from [`DRAW_BASE`] up, so data depends only on `(seed, n)`, never on
//! threads or call order, and does not share counters with the trainer's own noise draws
//! (which count draws from 0). Loaders read files in a fixed order (directory entries sorted by
//! name) and never reorder rows.

use std::path::{Path, PathBuf};

mod csv;
mod digits;
mod normalize;
mod npy;
mod png_dir;
mod source;
mod toy;

pub use digits::{
    DIGITS_CLASS_COUNTS, DIGITS_LEN, DIGITS_SPLIT_SEED, DIGITS_TEST_FRACTION, digits, digits_split,
};
pub use normalize::{MIN_STD, Normalizer};
pub use source::{Source, TOY_POINTS};
pub use toy::{Toy, UnknownToy, toy, toy_labelled};

use microdiff_runtime::noise::{Domain, NoiseStream};

/// First Philox `draw` number used by this module (`0xDA7A_0000`): toy generators use
/// `DRAW_BASE + 0..`, [`Dataset::split`] uses [`SPLIT_DRAW`]. Trainer noise counts its draws
/// from 0, so the two never read the same counter even with equal seeds.
pub const DRAW_BASE: u32 = 0xDA7A_0000;

/// The draw [`Dataset::split`] takes its shuffle keys from.
pub const SPLIT_DRAW: u32 = DRAW_BASE + 0x100;

/// What went wrong reading or building a dataset. Every variant names the file it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    // --- files and formats ---
    /// The file or directory could not be read (or a gzip stream could not be inflated).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Neither a directory nor a known extension.
    #[error("{}: unknown data format (expected a .csv or .npy file, or a directory of .png files)", path.display())]
    UnknownFormat {
        /// The path given.
        path: PathBuf,
    },
    /// The source holds no samples.
    #[error("{}: no samples", path.display())]
    Empty {
        /// The file or directory.
        path: PathBuf,
    },

    // --- CSV ---
    /// A row has a different number of values than the first.
    #[error("{}: line {line}: expected {expected} values, found {found}", path.display())]
    Ragged {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Number of values in the first row.
        expected: usize,
        /// Number of values in this row.
        found: usize,
    },
    /// A field is not a number.
    #[error("{}: line {line}, column {col}: `{text}` is not a number", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 1-based column number.
        col: usize,
        /// The offending field.
        text: String,
    },
    /// A label is not an integer in `0..65535`.
    #[error("{}: line {line}: label `{text}` is not an integer in 0..65535", path.display())]
    BadLabel {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The offending field.
        text: String,
    },

    // --- any source ---
    /// A value is NaN or infinite.
    #[error("{}: sample {sample}{}, value {col}: {value} is not finite", path.display(), line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// 0-based sample (row) index.
        sample: usize,
        /// 1-based source line, for text formats.
        line: Option<usize>,
        /// 0-based index of the value within the sample.
        col: usize,
        /// The value.
        value: f64,
    },

    // --- NPY ---
    /// The file is not a NPY file this loader understands (magic, header, dtype, shape, length).
    #[error("{}: bad .npy file: {reason}", path.display())]
    BadNpy {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the expected and found values.
        reason: String,
    },

    // --- PNG folders ---
    /// An image could not be decoded.
    #[error("{}: {source}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// What the decoder said.
        source: image::ImageError,
    },
    /// An image's size differs from the first image's.
    #[error("{}: image is {}×{}, expected {}×{} like {}", path.display(), found.0, found.1, expected.0, expected.1, first.display())]
    ImageSize {
        /// The image file.
        path: PathBuf,
        /// (width, height) of the first image.
        expected: (u32, u32),
        /// (width, height) of this image.
        found: (u32, u32),
        /// The first image (the one that set the size).
        first: PathBuf,
    },
    /// An image has colour (or transparency).
    #[error("{}: image is not grayscale ({detail})", path.display())]
    NotGrayscale {
        /// The image file.
        path: PathBuf,
        /// Colour type and, if it was checked pixel by pixel, the first coloured pixel.
        detail: String,
    },
    /// A directory holds both PNG files and class subdirectories.
    #[error("{}: holds both .png files and subdirectories; use either root/*.png or root/<label>/*.png", path.display())]
    MixedLayout {
        /// The directory.
        path: PathBuf,
    },

    // --- built-in data ---
    /// The embedded digits file does not have the documented contents.
    #[error("{}: {reason}", path.display())]
    BadDigits {
        /// A name for the embedded file.
        path: PathBuf,
        /// What differs, expected vs found.
        reason: String,
    },
    /// A `--data` name that is neither built in nor an existing path ([`Source::parse`]).
    #[error(
        "{spec:?}: not a built-in set ({}, digits) and no such file or folder",
        Toy::names()
    )]
    UnknownSource {
        /// The name given.
        spec: String,
    },
    /// A class-conditional model asked for data without labels.
    #[error(
        "the data set {name:?} has no labels (CSV: a `label` or `class` column; NPY: a STEM.labels.npy of integers beside STEM.npy; PNG folder: one subfolder per class)"
    )]
    NoLabels {
        /// The data set's name.
        name: String,
    },
    /// Parts of a dataset do not fit together (see [`Dataset::new`]).
    #[error("dataset `{name}`: {reason}")]
    Inconsistent {
        /// The dataset's name.
        name: String,
        /// What does not fit.
        reason: String,
    },
}

/// An in-memory dataset: `len()` samples of `dim` f32 values, row-major, with optional labels.
///
/// Invariants (checked by [`Dataset::new`], kept by every function here): `dim ≥ 1`,
/// `x.len()` is a multiple of `dim`, `shape.iter().product() == dim`, and with labels there is
/// one per sample and every label is `< classes`. Without labels `classes` is 0.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Where it came from: a toy name, `digits`, or the file name.
    pub name: String,
    /// The samples, row-major: sample `i` is `x[i*dim .. (i+1)*dim]`. // (n, dim)
    pub x: Vec<f32>,
    /// Values per sample.
    pub dim: usize,
    /// Shape of one sample, e.g. `[2]` or `[8, 8]` (row-major, product = `dim`).
    pub shape: Vec<usize>,
    /// Class of each sample.
    pub labels: Option<Vec<u16>>,
    /// Number of classes (labels are `0..classes`); 0 when unlabelled.
    pub classes: usize,
}

/// Largest magnitude of a data value: 2^60, well inside what a blob's normalisation (scales up
/// to 2^64) maps back without overflow.
pub const MAX_DATA_MAGNITUDE: f32 = 1_152_921_504_606_846_976.0;

impl Dataset {
    /// A dataset from its parts, checking the invariants listed on [`Dataset`].
    pub fn new(
        name: impl Into<String>,
        x: Vec<f32>,
        shape: Vec<usize>,
        labels: Option<Vec<u16>>,
        classes: usize,
    ) -> Result<Self, DataError> {
        let dim = shape.iter().product::<usize>();
        let ds = Self {
            name: name.into(),
            x,
            dim,
            shape,
            labels,
            classes,
        };
        ds.check()?;
        Ok(ds)
    }

    /// Checks the invariants listed on [`Dataset`].
    pub fn check(&self) -> Result<(), DataError> {
        let bad = |reason: String| DataError::Inconsistent {
            name: self.name.clone(),
            reason,
        };
        if self.dim == 0 || self.shape.iter().product::<usize>() != self.dim {
            return Err(bad(format!(
                "shape {:?} does not give dim {}",
                self.shape, self.dim
            )));
        }
        if !self.x.len().is_multiple_of(self.dim) {
            return Err(bad(format!(
                "{} values is not a multiple of dim {}",
                self.x.len(),
                self.dim
            )));
        }
        // A blob maps samples back to data units with scales of at most 2^64 (the runtime's
        // `MAX_NORM`); data this large would export to samples that overflow.
        if let Some((i, v)) = self
            .x
            .iter()
            .enumerate()
            .find(|(_, v)| v.is_nan() || v.abs() > MAX_DATA_MAGNITUDE)
        {
            return Err(bad(format!(
                "value {v:e} (example {}): beyond ±2^60, which a blob cannot scale samples \
                 back to; rescale the data",
                i / self.dim.max(1)
            )));
        }
        match &self.labels {
            Some(l) => {
                if l.len() != self.len() {
                    return Err(bad(format!(
                        "{} labels for {} samples",
                        l.len(),
                        self.len()
                    )));
                }
                if let Some(&m) = l.iter().find(|&&m| usize::from(m) >= self.classes) {
                    return Err(bad(format!("label {m} but only {} classes", self.classes)));
                }
            }
            None if self.classes != 0 => {
                return Err(bad(format!("{} classes but no labels", self.classes)));
            }
            None => {}
        }
        Ok(())
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.x.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sample `i` (`dim` values). Panics if `i >= len()`, like slice indexing.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }

    /// Samples per class (`classes` entries); empty when unlabelled.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in self.labels.iter().flatten() {
            counts[usize::from(l)] += 1;
        }
        counts
    }

    /// The samples `idx`, in that order (repeats allowed), with their labels; same name, shape
    /// and class count. Panics if an index is out of range.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let mut x = Vec::with_capacity(idx.len() * self.dim);
        for &i in idx {
            x.extend_from_slice(self.row(i));
        }
        Dataset {
            name: self.name.clone(),
            x,
            dim: self.dim,
            shape: self.shape.clone(),
            labels: self
                .labels
                .as_ref()
                .map(|l| idx.iter().map(|&i| l[i]).collect()),
            classes: self.classes,
        }
    }

    /// A deterministic random `(train, test)` split; stratified when labelled.
    ///
    /// The rule, exactly: sample `i` gets the key `NoiseStream::new(seed, i, TrainNoise)
    /// .raw(SPLIT_DRAW, 0)`. Within each class (the whole set when unlabelled) of `n_c` samples,
    /// the `round(test_fraction · n_c)` samples with the smallest `(key, i)` go to `test`
    /// (`f64::round`, halves away from zero), the rest to `train`. Both parts keep the original
    /// order of the samples. Each part is a pure function of `(self, test_fraction, seed)`, and a
    /// sample's side does not depend on the other samples' values.
    ///
    /// Panics unless `0 ≤ test_fraction ≤ 1`, or if there are more than 2³² samples.
    pub fn split(&self, test_fraction: f64, seed: u64) -> (Dataset, Dataset) {
        assert!(
            (0.0..=1.0).contains(&test_fraction),
            "test_fraction must be in [0, 1], got {test_fraction}"
        );
        let n = self.len();
        let key = |i: usize| {
            let stream = u32::try_from(i).expect("split: more than 2^32 samples");
            NoiseStream::new(seed, stream, Domain::TrainNoise).raw(SPLIT_DRAW, 0)
        };
        // Group the sample indices by class (one group when unlabelled).
        let mut groups: Vec<Vec<usize>> = match &self.labels {
            Some(l) => {
                let mut g = vec![Vec::new(); self.classes];
                for (i, &c) in l.iter().enumerate() {
                    g[usize::from(c)].push(i);
                }
                g
            }
            None => vec![(0..n).collect()],
        };
        let mut is_test = vec![false; n];
        for g in &mut groups {
            let n_test = (test_fraction * g.len() as f64).round() as usize;
            g.sort_by_key(|&i| (key(i), i));
            for &i in &g[..n_test] {
                is_test[i] = true;
            }
        }
        let (test, train): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| is_test[i]);
        (self.subset(&train), self.subset(&test))
    }
}

/// Loads user data, chosen by what `path` is:
///
/// * a **directory** — grayscale PNGs, either `root/*.png` (unlabelled) or
///   `root/<label>/*.png` (labelled by subdirectory; see the rules below);
/// * **`.csv`** — one sample per line; see below;
/// * **`.npy`** — a NumPy array (see below).
///
/// The extension is matched case-insensitively; anything else is
/// [`DataError::UnknownFormat`]. Every value must be finite ([`DataError::NonFinite`]).
///
/// **CSV.** Fields are separated by `,` (or `;` or tabs, or runs of spaces: the separator is
/// decided from the first row); surrounding spaces and double quotes are ignored; blank lines
/// and lines starting with `#` are skipped. The first row is a header if any of its fields is
/// not a number. A header column named `label` or `class` (any case) holds integer labels in
/// `0..65535`, and `classes` is the largest label + 1; every other column is a value. Without a
/// header every column is a value and there are no labels. Every row must have as many fields
/// as the first ([`DataError::Ragged`]). `shape = [columns]`.
///
/// **NPY.** Format versions 1–3; dtypes `f4`, `f8`, `i1`–`i8`, `u1`–`u8`, either byte order;
/// C or Fortran order. Shape `(n,)` gives `n` samples of one value, `(n, d)` samples of `d`
/// values, `(n, h, w, …)` samples of shape `[h, w, …]`. Labels, if any, are a second array
/// beside it, `STEM.labels.npy` for `STEM.npy`: shape `(n,)`, integers `0..65535` (any integer
/// or float dtype holding whole numbers); `classes` is the largest label + 1.
///
/// **PNG directory.** Files ending in `.png` (any case), read in byte order of their names;
/// every image must have the first image's size ([`DataError::ImageSize`]) and be grayscale:
/// 8- or 16-bit gray, or RGB/gray+alpha whose pixels all have equal channels and full alpha
/// ([`DataError::NotGrayscale`]). Values are gray levels on the 8-bit scale `0..=255` (16-bit
/// levels are divided by 257), `shape = [height, width]`. In the labelled layout the
/// subdirectories (sorted by name; hidden ones, starting with `.`, are skipped) are the
/// classes: if every name is a decimal integer `< 65535` that integer is the label and
/// `classes` is the largest + 1 (so `digits/0 … digits/9` keep their digits); otherwise the
/// label is the name's position in sorted order. A directory with both PNGs and
/// subdirectories is [`DataError::MixedLayout`].
pub fn load(path: &Path) -> Result<Dataset, DataError> {
    let meta = std::fs::metadata(path).map_err(|source| io_err(path, source))?;
    let ds = if meta.is_dir() {
        png_dir::load(path)?
    } else {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => csv::load(path)?,
            Some("npy") => npy::load(path)?,
            _ => {
                return Err(DataError::UnknownFormat {
                    path: path.to_path_buf(),
                });
            }
        }
    };
    // The invariants of every dataset, and values a blob can scale samples back to.
    ds.check()?;
    Ok(ds)
}

/// The name a loaded dataset gets: the file (or directory) name.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn io_err(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The first non-finite value of `x` (samples of `dim` values) as a [`DataError::NonFinite`].
fn check_finite(path: &Path, x: &[f32], dim: usize) -> Result<(), DataError> {
    match x.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(k) => Err(DataError::NonFinite {
            path: path.to_path_buf(),
            sample: k / dim,
            line: None,
            col: k % dim,
            value: f64::from(x[k]),
        }),
    }
}

#[cfg(test)]
mod tests;
