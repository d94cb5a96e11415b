//! The judges of generated samples: [`DigitsJudge`] for 8×8 digits — the tool's own
//! classifier, trained on the digits' train split, and the real-digit features a Fréchet
//! distance compares against ("FID" in miniature) — and [`ToyJudge`] for a 2-D set whose
//! components have a closed-form classifier ([`Toy::component`]), with the Fréchet distance on
//! the points themselves. Deterministic: the same judge on every machine and thread count.

use super::{Classifier, ClassifierConfig, EvalError, frechet_distance};
use crate::data::{self, DataError, Toy};

/// Why the judge could not be built or could not score.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// The embedded digits.
    #[error("digits: {0}")]
    Data(#[from] DataError),
    /// Training the classifier or computing a distance.
    #[error("judge: {0}")]
    Eval(#[from] EvalError),
    /// A 2-D set without a closed-form component classifier.
    #[error("judge: {0} has no component classifier (8gaussians and rings have one)")]
    NoClassifier(Toy),
}

/// The classifier and the reference features.
pub struct DigitsJudge {
    clf: Classifier,
    /// The classifier's accuracy on the held-out test split.
    pub classifier_test_accuracy: f64,
    reference: Vec<f32>,
    /// Fréchet distance between the two disjoint halves of the real digits: what a perfect
    /// generator scores.
    pub frechet_noise_floor: f64,
}

impl DigitsJudge {
    /// Trains the classifier (a few seconds) and prepares the reference half of the real
    /// digits.
    pub fn new() -> Result<Self, JudgeError> {
        let (train, test) = data::digits_split()?;
        let all = data::digits()?;
        let labels = |d: &data::Dataset| d.labels.clone().unwrap_or_default();
        let clf = Classifier::train(
            &train.x,
            &labels(&train),
            64,
            10,
            &ClassifierConfig::default(),
        )?;
        let classifier_test_accuracy = clf.accuracy(&test.x, &labels(&test));
        let (half_a, half_b) = all.split(0.5, 0x5EED);
        let reference = clf.features(&half_a.x);
        let mut judge = DigitsJudge {
            clf,
            classifier_test_accuracy,
            reference,
            frechet_noise_floor: 0.0,
        };
        judge.frechet_noise_floor = judge.frechet(&half_b.x)?;
        Ok(judge)
    }

    /// Fréchet distance of digits `x` (pixel units, 0..16) to the reference half, in the
    /// classifier's feature space.
    pub fn frechet(&self, x: &[f32]) -> Result<f64, JudgeError> {
        Ok(frechet_distance(
            &self.clf.features(x),
            &self.reference,
            self.clf.feature_dim(),
        )?)
    }

    /// Fraction of digits `x` the classifier assigns to the class they were conditioned on.
    pub fn class_accuracy(&self, x: &[f32], classes: &[u16]) -> f64 {
        self.clf.accuracy(x, classes)
    }

    /// Fraction of digits `x` the classifier assigns to each class (an unconditional model's
    /// class balance; the real digits are close to uniform, 0.1 each).
    pub fn class_histogram(&self, x: &[f32]) -> Vec<f64> {
        let classes = self.clf.classes();
        let mut counts = vec![0usize; classes];
        for c in self.clf.predict(x) {
            if let Some(n) = counts.get_mut(usize::from(c)) {
                *n += 1;
            }
        }
        let total = counts.iter().sum::<usize>().max(1) as f64;
        counts.into_iter().map(|n| n as f64 / total).collect()
    }
}

/// Seeds of [`ToyJudge`]'s two reference draws (no training run draws with them by default).
const TOY_REFERENCE_SEEDS: [u64; 2] = [3_000_003, 3_000_004];

/// RBF centres of [`ToyJudge`]'s features per axis: a 9 × 9 grid over `[−2, 2]²` (data units,
/// where the 2-D sets have unit variance), spacing and bandwidth 0.5.
const RBF_GRID: usize = 9;
/// Half-width of the grid, data units.
const RBF_HALF_WIDTH: f32 = 2.0;

/// The 2-D points `x` as 9 × 9 Gaussian bumps `exp(−|p − c|² / 2s²)` around the grid's
/// centres `c` (`s` their spacing): a fixed feature map in which a Fréchet distance sees where
/// the mass is, not only its mean and covariance (in the plane itself, eight modes on a circle
/// and one isotropic Gaussian have the same first two moments).
pub fn rbf_features(x: &[f32]) -> Vec<f32> {
    let step = 2.0 * RBF_HALF_WIDTH / (RBF_GRID - 1) as f32;
    let inv = 1.0 / (2.0 * step * step);
    let mut out = Vec::with_capacity(x.len() / 2 * RBF_GRID * RBF_GRID);
    for p in x.chunks_exact(2) {
        for i in 0..RBF_GRID {
            let dx = p[0] - (-RBF_HALF_WIDTH + step * i as f32);
            for j in 0..RBF_GRID {
                let dy = p[1] - (-RBF_HALF_WIDTH + step * j as f32);
                out.push((-(dx * dx + dy * dy) * inv).exp());
            }
        }
    }
    out
}

/// The judge of a 2-D set: its closed-form component classifier, and a reference draw in the
/// [`rbf_features`] space for the Fréchet distance.
pub struct ToyJudge {
    kind: Toy,
    reference: Vec<f32>,
    /// Fréchet distance between two independent draws of the set, each of the judge's
    /// reference size: what a perfect generator scores with as many samples.
    pub frechet_noise_floor: f64,
}

impl ToyJudge {
    /// The judge of `kind` for sample sets of `n` points: a reference draw of `n` points and
    /// the floor against a second one. Refuses a set without a component classifier.
    pub fn new(kind: Toy, n: usize) -> Result<Self, JudgeError> {
        if kind.component(0.0, 1.0).is_none() {
            return Err(JudgeError::NoClassifier(kind));
        }
        let [a, b] = TOY_REFERENCE_SEEDS.map(|seed| rbf_features(&data::toy(kind, n, seed).x));
        let frechet_noise_floor = frechet_distance(&a, &b, RBF_GRID * RBF_GRID)?;
        Ok(ToyJudge {
            kind,
            reference: a,
            frechet_noise_floor,
        })
    }

    /// Fréchet distance of points `x` (data units, rows of 2) to the reference draw, in the
    /// [`rbf_features`] space.
    pub fn frechet(&self, x: &[f32]) -> Result<f64, JudgeError> {
        Ok(frechet_distance(
            &rbf_features(x),
            &self.reference,
            RBF_GRID * RBF_GRID,
        )?)
    }

    /// The component of each point (`None` for a non-finite one).
    fn predict(&self, x: &[f32]) -> Vec<Option<u16>> {
        x.chunks_exact(2)
            .map(|p| self.kind.component(p[0], p[1]))
            .collect()
    }

    /// Fraction of points `x` in the component they were conditioned on.
    pub fn class_accuracy(&self, x: &[f32], classes: &[u16]) -> f64 {
        let hits = self
            .predict(x)
            .iter()
            .zip(classes)
            .filter(|(p, c)| **p == Some(**c))
            .count();
        hits as f64 / classes.len().max(1) as f64
    }

    /// Fraction of points `x` in each component (a non-finite point counts in none).
    pub fn class_histogram(&self, x: &[f32]) -> Vec<f64> {
        let mut counts = vec![0usize; self.kind.classes()];
        let rows = x.len() / 2;
        for c in self.predict(x).into_iter().flatten() {
            if let Some(n) = counts.get_mut(usize::from(c)) {
                *n += 1;
            }
        }
        counts
            .into_iter()
            .map(|n| n as f64 / rows.max(1) as f64)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 2-D judge: a fresh draw of the set scores near the floor, with its labels near
    /// accuracy 1 and shares near 1/8; a collapsed set scores far worse, all in one class.
    #[test]
    fn the_toy_judge_scores_real_and_collapsed_points() {
        let judge = ToyJudge::new(Toy::EightGaussians, 2000).unwrap();
        let real = data::toy_labelled(Toy::EightGaussians, 2000, 11);
        let fd = judge.frechet(&real.x).unwrap();
        assert!(
            fd < 3.0 * judge.frechet_noise_floor + 1e-3,
            "{fd} vs {}",
            judge.frechet_noise_floor
        );
        let acc = judge.class_accuracy(&real.x, real.labels.as_ref().unwrap());
        assert!(acc > 0.99, "{acc}");
        let shares = judge.class_histogram(&real.x);
        assert!(
            shares.iter().all(|s| (s - 0.125).abs() < 0.03),
            "{shares:?}"
        );
        let collapsed: Vec<f32> = real.x.chunks(2).flat_map(|_| [1.39f32, 0.0]).collect();
        assert!(judge.frechet(&collapsed).unwrap() > 20.0 * judge.frechet_noise_floor);
        // One isotropic Gaussian of the same mean and covariance: the plane's Fréchet distance
        // cannot tell it from the real set, the features' can.
        let blob: Vec<f32> = (0..4000u32)
            .map(|k| {
                crate::runtime::noise::NoiseStream::new(
                    5,
                    0,
                    crate::runtime::noise::Domain::TrainNoise,
                )
                .normal(0, k)
            })
            .collect();
        assert!(frechet_distance(&blob, &real.x, 2).unwrap() < 0.05);
        assert!(judge.frechet(&blob).unwrap() > 10.0 * judge.frechet_noise_floor);
        assert_eq!(judge.class_histogram(&collapsed)[0], 1.0);
        assert!(matches!(
            ToyJudge::new(Toy::TwoMoons, 10),
            Err(JudgeError::NoClassifier(Toy::TwoMoons))
        ));
    }

    /// The class shares of the real test digits are their class balance (about 0.1 each),
    /// and of one repeated digit almost all one class.
    #[test]
    fn class_shares_are_the_judges_predictions_counted() {
        let judge = DigitsJudge::new().unwrap();
        let (_, test) = crate::data::digits_split().unwrap();
        let shares = judge.class_histogram(&test.x);
        assert_eq!(shares.len(), 10);
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(
            shares.iter().all(|&s| (0.07..=0.13).contains(&s)),
            "{shares:?}"
        );
        let labels = test.labels.unwrap();
        let threes: Vec<f32> = (0..test.x.len() / 64)
            .filter(|&i| labels[i] == 3)
            .flat_map(|i| test.x[i * 64..(i + 1) * 64].to_vec())
            .collect();
        assert!(judge.class_histogram(&threes)[3] > 0.9);
        assert_eq!(judge.class_histogram(&[]), vec![0.0; 10]);
    }
}
