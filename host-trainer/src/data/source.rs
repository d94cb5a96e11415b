//! Where a data set comes from, by name — a built-in 2-D set, `digits`, or a file or folder —
//! and how it is normalised for training: the one rule that `train`, `eval` and `--resume`
//! resolve `--data` with.

use std::path::{Path, PathBuf};

use super::{DataError, Dataset, Normalizer, Toy};

/// Points drawn for a built-in 2-D training set.
pub const TOY_POINTS: usize = 20_000;

/// A data set named by the user.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A built-in 2-D set ([`Toy`]).
    Toy(Toy),
    /// The 8×8 UCI digits.
    Digits,
    /// A `.csv` or `.npy` file, or a folder of PNGs ([`super::load`]).
    File(PathBuf),
}

impl Source {
    /// Resolves `spec`: `digits`, a [`Toy`] name, or an existing path.
    pub fn parse(spec: &str) -> Result<Source, DataError> {
        if spec == "digits" {
            return Ok(Source::Digits);
        }
        if let Ok(kind) = spec.parse::<Toy>() {
            return Ok(Source::Toy(kind));
        }
        let path = Path::new(spec);
        if path.exists() {
            Ok(Source::File(path.to_path_buf()))
        } else {
            Err(DataError::UnknownSource {
                spec: spec.to_string(),
            })
        }
    }

    /// The data in data units, as the user sees it (labels kept): a built-in 2-D set draws
    /// `n` points with `seed`; the digits and files are read whole.
    pub fn load(&self, n: usize, seed: u64) -> Result<Dataset, DataError> {
        match self {
            Source::Digits => super::digits(),
            Source::Toy(kind) if kind.classes() > 0 => Ok(super::toy_labelled(*kind, n, seed)),
            Source::Toy(kind) => Ok(super::toy(*kind, n, seed)),
            Source::File(path) => super::load(path),
        }
    }

    /// The range the format fixes for every value, in data units: the digits' `0..=16`, a PNG
    /// folder's gray levels `0..=255`; `None` for sets without one (CSV, NPY, 2-D sets).
    pub fn range(&self) -> Option<(f32, f32)> {
        match self {
            Source::Digits => Some((0.0, 16.0)),
            Source::File(path) if path.is_dir() => Some((0.0, 255.0)),
            _ => None,
        }
    }

    /// The training set in model space and the normaliser back to data units: data with a
    /// fixed [`Source::range`] (digits, PNG folders) maps it onto −1..1, as image diffusion
    /// models do; everything else is standardised per dimension. Labels are kept only when
    /// `conditional` (and then required). Built-in 2-D sets draw [`TOY_POINTS`] with `seed`.
    pub fn training_set(
        &self,
        conditional: bool,
        seed: u64,
    ) -> Result<(Dataset, Normalizer), DataError> {
        let ds = self.training_data(conditional, seed)?;
        let norm = match self.range() {
            Some((lo, hi)) => Normalizer::range(lo, hi, -1.0, 1.0),
            None => Normalizer::standardize(&ds),
        };
        Ok((norm.dataset_to_model(&ds), norm))
    }

    /// The examples [`training_set`](Self::training_set) trains on, in data units (not
    /// normalised): the digits' training split, [`TOY_POINTS`] draws of a 2-D set with `seed`,
    /// or the whole file. Labels are kept only when `conditional` (and then required).
    pub fn training_data(&self, conditional: bool, seed: u64) -> Result<Dataset, DataError> {
        let mut ds = match self {
            Source::Digits => super::digits_split()?.0,
            Source::Toy(kind) if conditional => super::toy_labelled(*kind, TOY_POINTS, seed),
            Source::Toy(kind) => super::toy(*kind, TOY_POINTS, seed),
            Source::File(path) => super::load(path)?,
        };
        if !conditional {
            ds.labels = None;
            ds.classes = 0;
        } else if ds.labels.is_none() {
            return Err(DataError::NoLabels {
                name: self.to_string(),
            });
        }
        Ok(ds)
    }
}

impl std::fmt::Display for Source {
    /// The name [`Source::parse`] reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Toy(kind) => f.write_str(kind.name()),
            Source::Digits => f.write_str("digits"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_in_order() {
        assert_eq!(Source::parse("digits").unwrap(), Source::Digits);
        assert_eq!(Source::parse("moons").unwrap(), Source::Toy(Toy::TwoMoons));
        let dir = std::env::temp_dir();
        assert_eq!(
            Source::parse(dir.to_str().unwrap()).unwrap(),
            Source::File(dir.clone())
        );
        let e = Source::parse("/definitely/not/here").unwrap_err();
        assert!(e.to_string().contains("not a built-in set"), "{e}");
    }

    #[test]
    fn conditional_needs_labels_and_unconditional_drops_them() {
        let (ds, _) = Source::Toy(Toy::TwoMoons).training_set(true, 3).unwrap();
        assert!(ds.labels.is_some() && ds.classes > 0);
        let (ds, norm) = Source::Toy(Toy::TwoMoons).training_set(false, 3).unwrap();
        assert!(ds.labels.is_none() && ds.classes == 0);
        assert!(norm.fits(2));
        let (ds, _) = Source::Digits.training_set(false, 0).unwrap();
        assert_eq!((ds.dim, ds.labels.is_none()), (64, true));
    }
}
