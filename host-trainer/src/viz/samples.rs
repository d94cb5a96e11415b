//! The picture of drawn samples, chosen by their shape (what `microdiff sample --png` writes):
//! a labelled grid for images (a shape of two dimensions, or three with one channel), a scatter
//! plot for 2-D points (one colour per class, the reference data underneath), and a scatter
//! plot along the two principal components for any other dimension.

use std::path::Path;

use super::{
    GrayMap, GridOptions, ImageGroup, Projection, ScatterData, ScatterOptions, VizError, bad,
    image_grid_png, projection_png, scatter_classes_png,
};

/// Samples to draw.
#[derive(Debug, Clone, Copy)]
pub struct Samples<'a> {
    /// The shape of one sample.
    pub shape: &'a [usize],
    /// Groups of samples laid end to end, each with its class (grids: one labelled row group
    /// per class; scatter plots: one colour per class when `labelled`).
    pub groups: &'a [(u16, &'a [f32])],
    /// Whether the classes mean something (a class-conditional model).
    pub labelled: bool,
    /// Data drawn under 2-D samples and used to fit the projection, same units (may be empty).
    pub reference: &'a [f32],
    /// Values mapped to black and white in a grid; `None`: the reference data's range, else
    /// the samples' 0.5 %–99.5 % range.
    pub value_range: Option<(f32, f32)>,
}

/// What [`samples_png`] drew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drawn {
    /// A grid of `(height, width)` images.
    Grid(usize, usize),
    /// A 2-D scatter plot.
    Scatter,
    /// A scatter plot along the principal components.
    Projection,
}

/// Draws `s` into a PNG at `path`, choosing the picture by the shape.
pub fn samples_png(path: &Path, s: &Samples<'_>) -> Result<Drawn, VizError> {
    let d: usize = s.shape.iter().product();
    let image = match *s.shape {
        [h, w] | [1, h, w] | [h, w, 1] if h >= 2 && w >= 2 => Some((h, w)),
        _ => None,
    };
    if let Some((h, w)) = image {
        let all: Vec<f32> = s.groups.iter().flat_map(|g| g.1.iter().copied()).collect();
        let range = match s.value_range {
            Some(r) => r,
            None if !s.reference.is_empty() => span(s.reference, 0.0),
            None => span(&all, 0.005),
        };
        let groups: Vec<ImageGroup> = s
            .groups
            .iter()
            .map(|(c, images)| ImageGroup {
                label: if s.labelled {
                    format!("class {c}")
                } else {
                    String::new()
                },
                images,
            })
            .collect();
        let options = GridOptions {
            shape: (h, w),
            value_range: range,
            // The 8×8 UCI digits count ink; other images are brightness.
            gray: if (h, w) == (8, 8) {
                GrayMap::LowIsWhite
            } else {
                GrayMap::LowIsBlack
            },
            ..GridOptions::default()
        };
        image_grid_png(path, &groups, &options)?;
        return Ok(Drawn::Grid(h, w));
    }
    let samples: Vec<f32> = s.groups.iter().flat_map(|g| g.1.iter().copied()).collect();
    let labels: Vec<u16> = s
        .groups
        .iter()
        .flat_map(|(c, xs)| std::iter::repeat_n(*c, xs.len() / d.max(1)))
        .collect();
    let data = ScatterData {
        reference: s.reference,
        samples: &samples,
        dim: d,
        labels: s.labelled.then_some(&labels[..]),
    };
    let options = ScatterOptions {
        reference_name: "data",
        ..ScatterOptions::default()
    };
    match d {
        2 => {
            scatter_classes_png(path, &data, &options)?;
            Ok(Drawn::Scatter)
        }
        d if d > 2 => {
            projection_png(path, &data, Projection::Pca, &options)?;
            Ok(Drawn::Projection)
        }
        _ => Err(bad(
            "samples of one value: no picture (write them with --csv)".into(),
        )),
    }
}

/// The range of the finite `values` between the `q` and `1 − q` quantiles, widened to a unit
/// when it is empty.
fn span(values: &[f32], q: f64) -> (f32, f32) {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(f32::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    let (lo, hi) = (at(q), at(1.0 - q));
    if lo < hi {
        (lo, hi)
    } else {
        (lo - 0.5, lo + 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drawn(shape: &[usize], n: usize) -> Drawn {
        let d: usize = shape.iter().product();
        let x: Vec<f32> = (0..n * d).map(|i| (i % 17) as f32).collect();
        let path = std::env::temp_dir().join(format!(
            "microdiff-samples-{}-{}.png",
            std::process::id(),
            shape.len() * 100 + d
        ));
        let groups = [(0u16, &x[..n * d / 2]), (1, &x[n * d / 2..])];
        let s = Samples {
            shape,
            groups: &groups,
            labelled: true,
            reference: &[],
            value_range: None,
        };
        let what = samples_png(&path, &s).unwrap();
        assert!(image::open(&path).is_ok());
        std::fs::remove_file(&path).unwrap();
        what
    }

    #[test]
    fn the_picture_follows_the_shape() {
        assert_eq!(drawn(&[8, 8], 10), Drawn::Grid(8, 8));
        assert_eq!(drawn(&[16, 12], 10), Drawn::Grid(16, 12));
        assert_eq!(drawn(&[1, 5, 7], 10), Drawn::Grid(5, 7));
        assert_eq!(drawn(&[2], 50), Drawn::Scatter);
        assert_eq!(drawn(&[5], 50), Drawn::Projection);
        assert_eq!(drawn(&[3, 3, 3], 50), Drawn::Projection);
    }

    #[test]
    fn one_value_per_sample_is_refused() {
        let x = [1.0f32; 10];
        let s = Samples {
            shape: &[1],
            groups: &[(0, &x[..])],
            labelled: false,
            reference: &[],
            value_range: None,
        };
        let e = samples_png(Path::new("/tmp/never-written.png"), &s).unwrap_err();
        assert!(e.to_string().contains("--csv"), "{e}");
        assert!(!Path::new("/tmp/never-written.png").exists());
    }

    #[test]
    fn the_range_skips_outliers() {
        let mut v: Vec<f32> = (0..1000).map(|i| i as f32 / 999.0 * 255.0).collect();
        v.push(1e9);
        v.push(f32::NAN);
        let (lo, hi) = span(&v, 0.005);
        assert!(lo < 5.0 && (250.0..256.0).contains(&hi), "{lo}..{hi}");
        assert_eq!(span(&[3.0, 3.0], 0.0), (2.5, 3.5));
    }
}
