//! The judge of generated 8×8 digits: the tool's own classifier, trained on the digits' train
//! split, and the real-digit features a Fréchet distance compares against ("FID" in
//! miniature). Deterministic: the same judge on every machine and thread count.

use super::{Classifier, ClassifierConfig, EvalError, frechet_distance};
use crate::data::{self, DataError};

/// Why the judge could not be built or could not score.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// The embedded digits.
    #[error("digits: {0}")]
    Data(#[from] DataError),
    /// Training the classifier or computing a distance.
    #[error("judge: {0}")]
    Eval(#[from] EvalError),
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

#[cfg(test)]
mod tests {
    use super::*;

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
