//! The UCI optical recognition of handwritten digits test set (Alpaydin & Kaynak 1998), as
//! packaged by scikit-learn (`load_digits`): 1,797 images of 8×8 pixels, each pixel the count
//! of set pixels in a 4×4 block of a 32×32 bitmap (0..=16), labels 0..=9. Provenance and
//! licence: `host-trainer/data/README.md`.
//!
//! The gzip'd CSV (64 pixels then the label per line, row-major pixels) is embedded with
//! `include_bytes!` and parsed on each call (a few milliseconds), then checked against the
//! documented contents, so a corrupted file is an error, never silently different data.

use std::io::Read;
use std::path::Path;

use super::{DataError, Dataset};

/// The embedded file: `host-trainer/data/digits.csv.gz`.
static DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");
/// The name errors give the embedded file.
const EMBEDDED_NAME: &str = "<embedded>/host-trainer/data/digits.csv.gz";

/// Number of images.
pub const DIGITS_LEN: usize = 1797;
/// Images per digit 0..=9, as the UCI page lists for the test set (`optdigits.tes`).
pub const DIGITS_CLASS_COUNTS: [usize; 10] = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180];
/// Seed of the fixed [`digits_split`].
pub const DIGITS_SPLIT_SEED: u64 = 1797;
/// Test fraction of the fixed [`digits_split`].
pub const DIGITS_TEST_FRACTION: f64 = 0.2;
/// Largest pixel value: a count of set pixels in a 4×4 block.
const MAX_PIXEL: f32 = 16.0;

/// The 8×8 UCI optical digits (1,797 images, pixel values 0..=16, labels 0..=9): name
/// `digits`, `shape = [8, 8]` (row-major), `classes = 10`, in the file's order.
pub fn digits() -> Result<Dataset, DataError> {
    let path = Path::new(EMBEDDED_NAME);
    let bad = |reason: String| DataError::BadDigits {
        path: path.to_path_buf(),
        reason,
    };
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut text)
        .map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let raw = super::csv::parse(path, "digits", &text)?;
    if raw.dim != 65 || raw.len() != DIGITS_LEN {
        return Err(bad(format!(
            "expected {DIGITS_LEN} rows of 65 values, found {} rows of {}",
            raw.len(),
            raw.dim
        )));
    }
    let mut x = Vec::with_capacity(DIGITS_LEN * 64);
    let mut labels = Vec::with_capacity(DIGITS_LEN);
    for i in 0..raw.len() {
        let (pixels, label) = raw.row(i).split_at(64);
        if let Some(p) = pixels
            .iter()
            .find(|&&p| !(0.0..=MAX_PIXEL).contains(&p) || p.fract() != 0.0)
        {
            return Err(bad(format!(
                "row {}: pixel {p} is not an integer in 0..=16",
                i + 1
            )));
        }
        let label = label[0];
        if !(0.0..=9.0).contains(&label) || label.fract() != 0.0 {
            return Err(bad(format!(
                "row {}: label {label} is not an integer in 0..=9",
                i + 1
            )));
        }
        x.extend_from_slice(pixels);
        labels.push(label as u16);
    }
    let ds = Dataset::new("digits", x, vec![8, 8], Some(labels), 10)?;
    let counts = ds.class_counts();
    if counts != DIGITS_CLASS_COUNTS {
        return Err(bad(format!(
            "class counts {counts:?}, expected {DIGITS_CLASS_COUNTS:?}"
        )));
    }
    Ok(ds)
}

/// The fixed digits split: `digits()?.split(DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)`, i.e.
/// stratified, `round(0.2 · n_c)` test images of each digit chosen by the rule of
/// [`Dataset::split`] with seed 1797 — 359 test and 1,438 train images, both in file order.
/// The same on every run and platform (the keys are integer Philox outputs).
pub fn digits_split() -> Result<(Dataset, Dataset), DataError> {
    Ok(digits()?.split(DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED))
}
