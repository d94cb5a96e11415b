//! Scatter plots: 2-D samples over the reference data (lighter, grey), one colour per class
//! when labels are given, with axis titles, tick values and a legend; and data of any
//! dimension drawn through a [`Projection`] to two coordinates.

use std::path::Path;

use plotters::prelude::{Circle, Color, SeriesLabelPosition};
use plotters::style::RGBColor;

use super::axis::{Axis, Frame, chart};
use super::{GRID_BOLD, INK, PALETTE, VizError, bad, draw_err, render, save, text};

/// Reference data: light grey, under the samples.
const REFERENCE: RGBColor = RGBColor(175, 175, 175);
/// Opacity of reference dots, so dense regions read darker without hiding the samples.
const REFERENCE_ALPHA: f64 = 0.45;
/// Opacity of sample dots, so dense regions read darker.
const SAMPLE_ALPHA: f64 = 0.7;
/// Fraction of the fitted extent added on each side.
const PAD: f64 = 0.05;
/// Sample points outside these quantiles (per axis) do not stretch the view, so one diverged
/// sample cannot shrink the picture to a dot. The reference data always fits.
const SAMPLE_QUANTILE: f64 = 0.005;
/// Classes named in the legend; more get colours (reused after ten) but no entry, so the
/// legend never covers the plot.
const MAX_LEGEND_CLASSES: usize = 12;
/// Smaller pictures cannot hold the tick labels and axis titles.
const MIN_SIDE: u32 = 160;

/// Points for a scatter plot: `reference` (the training data, drawn light) and `samples`,
/// each `dim` values per point laid end to end, and optionally one class label per sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScatterData<'a> {
    /// Reference points (may be empty).
    pub reference: &'a [f32],
    /// Model samples.
    pub samples: &'a [f32],
    /// Values per point.
    pub dim: usize,
    /// One class per sample point: each class gets its own colour and legend entry.
    pub labels: Option<&'a [u16]>,
}

/// What a scatter picture looks like. `ScatterOptions::default()` is a 600×600 plot of
/// "dimension 1" against "dimension 2" with the default legend names.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterOptions<'a> {
    /// Picture side in pixels (the picture is square, and so is the view: shapes are not
    /// stretched).
    pub size: u32,
    /// A caption above the plot ([`projection_png`] writes its own when this is `None`).
    pub title: Option<&'a str>,
    /// The x axis' title ([`projection_png`] replaces the default with the component's).
    pub x_title: &'a str,
    /// The y axis' title (likewise).
    pub y_title: &'a str,
    /// Legend entry of the reference data.
    pub reference_name: &'a str,
    /// Legend entry of unlabelled samples.
    pub samples_name: &'a str,
}

const DEFAULT_X: &str = "dimension 1";
const DEFAULT_Y: &str = "dimension 2";

impl Default for ScatterOptions<'_> {
    fn default() -> Self {
        Self {
            size: 600,
            title: None,
            x_title: DEFAULT_X,
            y_title: DEFAULT_Y,
            reference_name: "reference data",
            samples_name: "samples",
        }
    }
}

/// How [`projection_png`] draws points of more than two values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Projection {
    /// The first two values of each point.
    FirstTwo,
    /// The coordinates along the reference data's two principal components of largest
    /// variance (the samples' when there is no reference data), about the mean; the axis
    /// titles give each component's share of the variance.
    Pca,
}

/// A scatter plot of 2-D `data` in a PNG. See [`scatter_classes_image`].
pub fn scatter_classes_png(
    path: &Path,
    data: &ScatterData<'_>,
    opts: &ScatterOptions<'_>,
) -> Result<(), VizError> {
    save(path, &scatter_classes_image(data, opts)?)
}

/// The picture of [`scatter_classes_png`]: `data.dim` must be 2. The reference points are
/// light grey dots under the samples; the samples are `tab10`-coloured, half-transparent dots,
/// one colour per class (in increasing class order) when `data.labels` is given. A legend
/// names the reference data and the samples (or each class, "class 3", up to twelve), and
/// both axes have titles and 1-2-5 tick values.
///
/// The view is the bounding box of the reference points and of the samples' 0.5 %–99.5 %
/// quantile range per axis, padded by 5 % and widened on one axis so that a unit is as long
/// across as up. Non-finite points are skipped, as are samples outside the view.
pub fn scatter_classes_image(
    data: &ScatterData<'_>,
    opts: &ScatterOptions<'_>,
) -> Result<image::RgbImage, VizError> {
    if data.dim != 2 {
        return Err(bad(format!(
            "scatter: points of {} values; draw them with projection_png",
            data.dim
        )));
    }
    let reference = pairs("scatter reference data", data.reference)?;
    let samples = pairs("scatter samples", data.samples)?;
    draw(&reference, &samples, data.labels, opts)
}

/// A scatter plot of points of any dimension `data.dim ≥ 2` through `projection`, in a PNG.
/// See [`projection_image`].
pub fn projection_png(
    path: &Path,
    data: &ScatterData<'_>,
    projection: Projection,
    opts: &ScatterOptions<'_>,
) -> Result<(), VizError> {
    save(path, &projection_image(data, projection, opts)?)
}

/// The picture of [`projection_png`]: [`scatter_classes_image`] of the projected points. The
/// title says what was drawn ("first 2 of 64 coordinates", "top-2 principal components of
/// the reference data") unless `opts.title` is given, and with [`Projection::Pca`] the default
/// axis titles become "PC 1 (41.2 % of variance)", "PC 2 (…)". The components are fitted on
/// at most 4096 evenly spaced points.
pub fn projection_image(
    data: &ScatterData<'_>,
    projection: Projection,
    opts: &ScatterOptions<'_>,
) -> Result<image::RgbImage, VizError> {
    let d = data.dim;
    if d < 2 {
        return Err(bad(format!(
            "projection: points of {d} values; need at least 2"
        )));
    }
    for (what, v) in [
        ("reference data", data.reference),
        ("samples", data.samples),
    ] {
        if v.len() % d != 0 {
            return Err(bad(format!(
                "projection {what}: {} values is not a list of points of {d} values",
                v.len()
            )));
        }
    }
    let (basis, title, axes) = match projection {
        Projection::FirstTwo => {
            let mut e = [vec![0.0; d], vec![0.0; d]];
            e[0][0] = 1.0;
            e[1][1] = 1.0;
            let title = format!("first 2 of {d} coordinates");
            (
                Basis {
                    mean: vec![0.0; d],
                    axes: e,
                },
                title,
                None,
            )
        }
        Projection::Pca => {
            let (fit_on, whose) = if data.reference.len() >= 2 * d {
                (data.reference, "reference data")
            } else {
                (data.samples, "samples")
            };
            let (basis, share) = principal_components(fit_on, d);
            let title = format!("top-2 principal components of the {whose} ({d} dimensions)");
            let axes = share.map(|s| format!("{:.1} % of variance", 100.0 * s));
            (basis, title, Some(axes))
        }
    };
    let reference = basis.project(data.reference);
    let samples = basis.project(data.samples);
    let (x_title, y_title);
    let mut opts = opts.clone();
    if opts.title.is_none() {
        opts.title = Some(&title);
    }
    if let Some([sx, sy]) = &axes {
        if opts.x_title == DEFAULT_X {
            x_title = format!("PC 1 ({sx})");
            opts.x_title = &x_title;
        }
        if opts.y_title == DEFAULT_Y {
            y_title = format!("PC 2 ({sy})");
            opts.y_title = &y_title;
        }
    }
    draw(&reference, &samples, data.labels, &opts)
}

/// `v` as `(x, y)` points.
fn pairs(what: &str, v: &[f32]) -> Result<Vec<(f64, f64)>, VizError> {
    if !v.len().is_multiple_of(2) {
        return Err(bad(format!(
            "{what}: {} values is not a list of (x, y) pairs",
            v.len()
        )));
    }
    Ok(v.chunks_exact(2)
        .map(|p| (f64::from(p[0]), f64::from(p[1])))
        .collect())
}

fn draw(
    reference: &[(f64, f64)],
    samples: &[(f64, f64)],
    labels: Option<&[u16]>,
    opts: &ScatterOptions<'_>,
) -> Result<image::RgbImage, VizError> {
    let size = opts.size;
    if size < MIN_SIDE {
        return Err(bad(format!(
            "scatter picture {size} px: at least {MIN_SIDE} px are needed for its labels"
        )));
    }
    if let Some(l) = labels
        && l.len() != samples.len()
    {
        return Err(bad(format!(
            "scatter: {} labels for {} sample points",
            l.len(),
            samples.len()
        )));
    }
    // Classes present, in increasing order: colour k is the k-th class present.
    let classes: Vec<u16> = labels.map_or_else(Vec::new, |l| {
        let mut c = l.to_vec();
        c.sort_unstable();
        c.dedup();
        c
    });

    let font = (size / 40).clamp(12, 20);
    let frame = Frame {
        what: "scatter",
        font,
        title: opts.title.map(|t| (t, font + 2)),
        x_title: opts.x_title,
        y_title: opts.y_title,
    };
    let caption = opts.title.map_or(0, |_| font * 2 + 10);
    // The plotting area's size, as ChartBuilder will lay it out: the view gets its aspect.
    let pw = size
        .saturating_sub(2 * frame.margin() + frame.y_area())
        .max(1);
    let ph = size
        .saturating_sub(2 * frame.margin() + frame.x_area() + caption)
        .max(1);
    let (xr, yr) = fit_view(reference, samples, f64::from(pw) / f64::from(ph));
    let (x_axis, y_axis) = (Axis::linear(xr.0, xr.1), Axis::linear(yr.0, yr.1));
    let in_view = |&(x, y): &(f64, f64)| (xr.0..=xr.1).contains(&x) && (yr.0..=yr.1).contains(&y);
    let r = (size / 250).clamp(2, 4);

    render("scatter", (size, size), |root| {
        let err = draw_err("scatter");
        let mut chart = chart(root, &frame, &x_axis, &y_axis)?;

        let legend_dot = move |colour: RGBColor| {
            move |(x, y): (i32, i32)| Circle::new((x + font as i32 / 2, y), 4, colour.filled())
        };
        if !reference.is_empty() {
            let style = REFERENCE.mix(REFERENCE_ALPHA).filled();
            chart
                .draw_series(
                    reference
                        .iter()
                        .filter(|p| in_view(p))
                        .map(|&p| Circle::new(p, r, style)),
                )
                .map_err(&err)?
                .label(opts.reference_name)
                .legend(legend_dot(REFERENCE));
        }
        match labels {
            None => {
                let colour = PALETTE[0];
                let style = colour.mix(SAMPLE_ALPHA).filled();
                chart
                    .draw_series(
                        samples
                            .iter()
                            .filter(|p| in_view(p))
                            .map(|&p| Circle::new(p, r, style)),
                    )
                    .map_err(&err)?
                    .label(opts.samples_name)
                    .legend(legend_dot(colour));
            }
            Some(labels) => {
                for (k, &class) in classes.iter().enumerate() {
                    let colour = PALETTE[k % PALETTE.len()];
                    let style = colour.mix(SAMPLE_ALPHA).filled();
                    let points = samples
                        .iter()
                        .zip(labels)
                        .filter(|&(p, &l)| l == class && in_view(p))
                        .map(|(&p, _)| Circle::new(p, r, style));
                    let anno = chart.draw_series(points).map_err(&err)?;
                    if k < MAX_LEGEND_CLASSES {
                        anno.label(format!("class {class}"))
                            .legend(legend_dot(colour));
                    }
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(text(font, INK))
            .background_style(plotters::style::WHITE.mix(0.85))
            .border_style(GRID_BOLD)
            .draw()
            .map_err(&err)?;
        Ok(())
    })
}

type Span = (f64, f64);

/// The view `(x range, y range)`: see [`scatter_classes_image`]; `aspect` is the plotting
/// area's width over its height.
fn fit_view(reference: &[(f64, f64)], samples: &[(f64, f64)], aspect: f64) -> (Span, Span) {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let mut lo = [f64::INFINITY; 2];
    let mut hi = [f64::NEG_INFINITY; 2];
    for p in reference.iter().filter(finite) {
        for (a, v) in [p.0, p.1].into_iter().enumerate() {
            lo[a] = lo[a].min(v);
            hi[a] = hi[a].max(v);
        }
    }
    for a in 0..2 {
        let mut v: Vec<f64> = samples
            .iter()
            .filter(finite)
            .map(|p| if a == 0 { p.0 } else { p.1 })
            .collect();
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
        lo[a] = lo[a].min(q(SAMPLE_QUANTILE));
        hi[a] = hi[a].max(q(1.0 - SAMPLE_QUANTILE));
    }
    if !(lo[0].is_finite() && lo[1].is_finite()) {
        // Nothing finite to show: the square around 0.
        (lo, hi) = ([-1.0; 2], [1.0; 2]);
    }
    let centre = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
    let mut span = [hi[0] - lo[0], hi[1] - lo[1]];
    // A single point (or a line of identical points) still gets a visible extent.
    let floor = lo[0].abs().max(lo[1].abs()).max(1.0) * 1e-3;
    let big = span[0].max(span[1]);
    let big = if big > floor { big } else { floor.max(1.0) };
    span = span.map(|s| s.max(big * 1e-3));
    // Equal units across and up: widen the narrower axis.
    if span[0] / span[1] < aspect {
        span[0] = span[1] * aspect;
    } else {
        span[1] = span[0] / aspect;
    }
    let half = span.map(|s| s * (1.0 + 2.0 * PAD) / 2.0);
    (
        (centre[0] - half[0], centre[0] + half[0]),
        (centre[1] - half[1], centre[1] + half[1]),
    )
}

/// An affine map to two coordinates: `(p − mean) · axes[k]`.
#[derive(Debug, Clone)]
struct Basis {
    mean: Vec<f64>,
    axes: [Vec<f64>; 2],
}

impl Basis {
    /// `points` (`dim` values each, laid end to end) in the basis' two coordinates.
    fn project(&self, points: &[f32]) -> Vec<(f64, f64)> {
        let d = self.mean.len();
        points
            .chunks_exact(d)
            .map(|p| {
                let c = |axis: &[f64]| {
                    p.iter()
                        .zip(&self.mean)
                        .zip(axis)
                        .map(|((&v, m), a)| (f64::from(v) - m) * a)
                        .sum::<f64>()
                };
                (c(&self.axes[0]), c(&self.axes[1]))
            })
            .collect()
    }
}

/// Points the principal components are fitted on, at most: enough for two directions of a few
/// hundred dimensions, and a bound on the time taken (each iteration is O(points·dim)).
const PCA_MAX_POINTS: usize = 4096;
/// Subspace iterations, at most.
const PCA_MAX_ITERATIONS: usize = 300;
/// Converged when no component's direction moves by more than this (1 − |cos|).
const PCA_TOLERANCE: f64 = 1e-12;

/// The two principal components of largest variance of the finite points of `points`
/// (`dim ≥ 2` values each), and the share of the total variance along each. Subspace
/// iteration from fixed start vectors on a fixed, evenly spaced subsample, so the result is a
/// pure function of the data; each component's largest entry is made positive. Data of no
/// variance get the first two coordinate axes and shares of 0.
fn principal_components(points: &[f32], dim: usize) -> (Basis, [f64; 2]) {
    let rows: Vec<&[f32]> = points
        .chunks_exact(dim)
        .filter(|p| p.iter().all(|v| v.is_finite()))
        .collect();
    let stride = rows.len().div_ceil(PCA_MAX_POINTS).max(1);
    let rows: Vec<&[f32]> = rows.into_iter().step_by(stride).collect();
    let n = rows.len().max(1) as f64;
    let mut mean = vec![0.0f64; dim];
    for r in &rows {
        for (m, &v) in mean.iter_mut().zip(r.iter()) {
            *m += f64::from(v) / n;
        }
    }
    // Centred copy (points, dim).
    let x: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.iter().zip(&mean).map(|(&v, m)| f64::from(v) - m))
        .collect();
    let total: f64 = x.iter().map(|v| v * v).sum::<f64>() / n;
    let unit = |k: usize| {
        let mut e = vec![0.0; dim];
        e[k] = 1.0;
        e
    };
    if !(total > 0.0 && total.is_finite()) {
        return (
            Basis {
                mean,
                axes: [unit(0), unit(1)],
            },
            [0.0; 2],
        );
    }
    // Xᵀ X v / n, without forming the dim × dim covariance.
    let cov_times = |v: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; dim];
        for r in x.chunks_exact(dim) {
            let s: f64 = r.iter().zip(v).map(|(a, b)| a * b).sum();
            for (o, a) in out.iter_mut().zip(r) {
                *o += s * a / n;
            }
        }
        out
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let normalise = |v: &mut Vec<f64>| {
        let len = dot(v, v).sqrt();
        if len > 0.0 {
            v.iter_mut().for_each(|x| *x /= len);
        }
        len > 0.0
    };
    // Fixed, generic start vectors (not orthogonal to any axis), of unit length so that the
    // first convergence test compares like with like.
    let mut v: [Vec<f64>; 2] = [0, 1].map(|k| {
        let mut v = (0..dim)
            .map(|i| ((i * 7 + k * 13 + 1) as f64).sin() + 1.5)
            .collect();
        normalise(&mut v);
        v
    });
    for _ in 0..PCA_MAX_ITERATIONS {
        let mut w = [cov_times(&v[0]), cov_times(&v[1])];
        // Gram–Schmidt: the first direction is the power iteration's, the second is kept
        // orthogonal to it.
        let ok0 = normalise(&mut w[0]);
        let proj = dot(&w[1], &w[0]);
        let (first, second) = w.split_at_mut(1);
        second[0]
            .iter_mut()
            .zip(&first[0])
            .for_each(|(b, a)| *b -= proj * a);
        let ok1 = normalise(&mut w[1]);
        if !ok1 {
            // Rank 1 data: any direction orthogonal to the first will do.
            w[1] = (0..dim).map(|i| if i == 0 { 0.0 } else { 1.0 }).collect();
            let proj = dot(&w[1], &w[0]);
            let (first, second) = w.split_at_mut(1);
            second[0]
                .iter_mut()
                .zip(&first[0])
                .for_each(|(b, a)| *b -= proj * a);
            normalise(&mut w[1]);
        }
        let moved = (0..2)
            .map(|k| 1.0 - dot(&w[k], &v[k]).abs())
            .fold(0.0f64, f64::max);
        v = w;
        if !ok0 || moved < PCA_TOLERANCE {
            break;
        }
    }
    let mut var = [0, 1].map(|k| dot(&v[k], &cov_times(&v[k])));
    if var[1] > var[0] {
        v.swap(0, 1);
        var.swap(0, 1);
    }
    for axis in &mut v {
        let big = axis
            .iter()
            .copied()
            .fold(0.0f64, |m, a| if a.abs() > m.abs() { a } else { m });
        if big < 0.0 {
            axis.iter_mut().for_each(|a| *a = -*a);
        }
    }
    (
        Basis { mean, axes: v },
        var.map(|s| (s / total).clamp(0.0, 1.0)),
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::{look, temp_dir};
    use super::*;

    /// Deterministic, independent pseudo-random numbers in -1..1 (splitmix64 of `i`).
    fn wobble(i: usize) -> f32 {
        let mut z = (i as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// Three clusters of 2-D points with their class labels.
    fn clusters(n: usize, offset: usize) -> (Vec<f32>, Vec<u16>) {
        let centres = [(-2.0, 0.0), (2.0, 0.5), (0.0, 2.5)];
        let mut pts = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let c = i % 3;
            pts.push(centres[c].0 + 0.4 * wobble(2 * i + offset));
            pts.push(centres[c].1 + 0.4 * wobble(2 * i + 1 + offset));
            labels.push(c as u16);
        }
        (pts, labels)
    }

    fn count(img: &image::RgbImage, c: RGBColor, tol: i32) -> usize {
        img.pixels()
            .filter(|p| {
                (i32::from(p.0[0]) - i32::from(c.0)).abs() <= tol
                    && (i32::from(p.0[1]) - i32::from(c.1)).abs() <= tol
                    && (i32::from(p.0[2]) - i32::from(c.2)).abs() <= tol
            })
            .count()
    }

    #[test]
    fn scatter_writes_a_decodable_png_of_the_right_size() {
        let dir = temp_dir("scatter");
        let path = dir.join("s.png");
        let (data, _) = clusters(600, 0);
        let (samples, _) = clusters(300, 7);
        let points = ScatterData {
            reference: &data,
            samples: &samples,
            dim: 2,
            labels: None,
        };
        let opts = ScatterOptions {
            size: 500,
            ..ScatterOptions::default()
        };
        scatter_classes_png(&path, &points, &opts).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        look("scatter.png", &img);
        assert_eq!(img.dimensions(), (500, 500));
        assert_eq!(crate::files::temporaries(&dir), Vec::<String>::new());
        // Grey reference dots and blue sample dots both show.
        assert!(count(&img, REFERENCE, 40) > 100);
        assert!(
            img.pixels()
                .filter(|p| i32::from(p.0[2]) > i32::from(p.0[0]) + 60)
                .count()
                > 100
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn classes_get_different_colours() {
        let (reference, _) = clusters(900, 0);
        let (samples, labels) = clusters(300, 11);
        let data = ScatterData {
            reference: &reference,
            samples: &samples,
            dim: 2,
            labels: Some(&labels),
        };
        let img = scatter_classes_image(&data, &ScatterOptions::default()).unwrap();
        look("scatter-classes.png", &img);
        // Each of the three classes' colours is on the picture in quantity, blended or not.
        for (k, &colour) in PALETTE.iter().take(3).enumerate() {
            let n = count(&img, colour, 60);
            assert!(n > 200, "class {k}: {n} pixels of its colour");
        }
        // Unlabelled, the same samples are all the first colour.
        let unlabelled = ScatterData {
            labels: None,
            ..data
        };
        let img = scatter_classes_image(&unlabelled, &ScatterOptions::default()).unwrap();
        assert!(count(&img, PALETTE[1], 60) < 50);
        // A label list of the wrong length is an error, not a panic.
        let bad = ScatterData {
            labels: Some(&labels[..5]),
            ..data
        };
        assert!(matches!(
            scatter_classes_image(&bad, &ScatterOptions::default()),
            Err(VizError::BadInput { .. })
        ));
    }

    #[test]
    fn toy_data_and_digits_draw_with_their_classes() {
        use crate::data::{Toy, toy_labelled};
        let reference = toy_labelled(Toy::EightGaussians, 2000, 1);
        let samples = toy_labelled(Toy::EightGaussians, 800, 2);
        let data = ScatterData {
            reference: &reference.x,
            samples: &samples.x,
            dim: 2,
            labels: samples.labels.as_deref(),
        };
        let opts = ScatterOptions {
            title: Some("8 gaussians: samples by class over the reference data"),
            ..ScatterOptions::default()
        };
        let img = scatter_classes_image(&data, &opts).unwrap();
        look("scatter-8gaussians-classes.png", &img);
        for (k, &colour) in PALETTE.iter().take(8).enumerate() {
            assert!(count(&img, colour, 60) > 100, "class {k}");
        }
        // 64-D digits through their principal components, coloured by digit.
        let ds = crate::data::digits().unwrap();
        let (reference, samples) = ds.x.split_at(1000 * 64);
        let labels = &ds.labels.as_deref().unwrap()[1000..];
        let data = ScatterData {
            reference,
            samples,
            dim: 64,
            labels: Some(labels),
        };
        let img = projection_image(&data, Projection::Pca, &ScatterOptions::default()).unwrap();
        look("projection-digits-pca.png", &img);
        assert_eq!(img.dimensions(), (600, 600));
    }

    #[test]
    fn scatter_survives_degenerate_input() {
        for (d, s) in [
            (vec![], vec![]),
            (vec![1.0, 1.0], vec![]),
            (vec![f32::NAN, 0.0], vec![1e30, -1e30]),
            (vec![], vec![f32::INFINITY, 0.0, 3.0, 3.0]),
        ] {
            let points = ScatterData {
                reference: &d,
                samples: &s,
                dim: 2,
                labels: None,
            };
            let opts = ScatterOptions {
                size: 200,
                ..ScatterOptions::default()
            };
            let img = scatter_classes_image(&points, &opts).unwrap();
            assert_eq!(img.dimensions(), (200, 200));
        }
        // Half a point, a picture too small for its labels, and one past the size limits.
        for (d, size) in [(&[1.0f32][..], 400), (&[][..], 0), (&[][..], 100_000)] {
            let points = ScatterData {
                reference: d,
                samples: &[],
                dim: 2,
                labels: None,
            };
            let opts = ScatterOptions {
                size,
                ..ScatterOptions::default()
            };
            assert!(matches!(
                scatter_classes_image(&points, &opts),
                Err(VizError::BadInput { .. })
            ));
        }
    }

    #[test]
    fn pca_finds_the_plane_the_data_lie_in() {
        // 5-D points spread along (1,1,0,0,0)/√2 (wide) and e₃ (narrow), plus tiny noise.
        let d = 5;
        let mut pts = Vec::new();
        for i in 0..2000 {
            let (a, b) = (3.0 * wobble(3 * i), wobble(3 * i + 1));
            let mut p = [0.0f32; 5];
            p[0] = a / 2f32.sqrt() + 10.0;
            p[1] = a / 2f32.sqrt();
            p[2] = b;
            p[4] = 0.01 * wobble(3 * i + 2);
            pts.extend_from_slice(&p);
        }
        let (basis, share) = principal_components(&pts, d);
        // Each axis is an eigenvector of the sample covariance, the first of the larger value.
        let n = (pts.len() / d) as f64;
        let mut mean = [0.0f64; 5];
        for p in pts.chunks_exact(d) {
            for k in 0..d {
                mean[k] += f64::from(p[k]) / n;
            }
        }
        let mut cov = [[0.0f64; 5]; 5];
        for p in pts.chunks_exact(d) {
            for i in 0..d {
                for j in 0..d {
                    cov[i][j] += (f64::from(p[i]) - mean[i]) * (f64::from(p[j]) - mean[j]) / n;
                }
            }
        }
        let total: f64 = (0..d).map(|i| cov[i][i]).sum();
        let mut lambda = [0.0; 2];
        for (k, v) in basis.axes.iter().enumerate() {
            let cv: Vec<f64> = (0..d)
                .map(|i| (0..d).map(|j| cov[i][j] * v[j]).sum())
                .collect();
            lambda[k] = cv.iter().zip(v).map(|(a, b)| a * b).sum();
            let residual: f64 = cv
                .iter()
                .zip(v)
                .map(|(a, b)| (a - lambda[k] * b).powi(2))
                .sum::<f64>()
                .sqrt();
            // Far below what a picture can show: the directions are good to ~1e-5 rad.
            assert!(residual < 1e-4 * lambda[k], "axis {k}: residual {residual}");
            assert!((share[k] - lambda[k] / total).abs() < 1e-9);
        }
        assert!(lambda[0] > 5.0 * lambda[1], "{lambda:?}");
        let dot: f64 = basis.axes[0]
            .iter()
            .zip(&basis.axes[1])
            .map(|(a, b)| a * b)
            .sum();
        assert!(dot.abs() < 1e-9);
        // And they are (up to sampling noise) the directions the data were made along.
        let h = 1.0 / 2f64.sqrt();
        assert!(basis.axes[0][0] > 0.65 && (basis.axes[0][0] - h).abs() < 0.05);
        assert!(basis.axes[1][2].abs() > 0.95, "{:?}", basis.axes[1]);
        assert!(share[0] + share[1] > 0.999, "{share:?}");
        // Degenerate data fall back to the coordinate axes.
        let (basis, share) = principal_components(&[1.0; 10], 5);
        assert_eq!(share, [0.0, 0.0]);
        assert_eq!(basis.axes[0][0], 1.0);
    }

    #[test]
    fn projections_draw_any_dimension() {
        let d = 16;
        let reference: Vec<f32> = (0..500 * d)
            .map(|i| wobble(i) * (1 + i % d) as f32)
            .collect();
        let samples: Vec<f32> = (0..200 * d)
            .map(|i| wobble(i + 99) * (1 + i % d) as f32)
            .collect();
        let labels: Vec<u16> = (0..200).map(|i| (i % 4) as u16).collect();
        let data = ScatterData {
            reference: &reference,
            samples: &samples,
            dim: d,
            labels: Some(&labels),
        };
        for (p, name) in [
            (Projection::Pca, "pca"),
            (Projection::FirstTwo, "first-two"),
        ] {
            let img = projection_image(&data, p, &ScatterOptions::default()).unwrap();
            look(&format!("projection-{name}.png"), &img);
            assert_eq!(img.dimensions(), (600, 600));
        }
        let dir = temp_dir("projection");
        let path = dir.join("p.png");
        projection_png(&path, &data, Projection::Pca, &ScatterOptions::default()).unwrap();
        assert!(image::open(&path).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
        let ragged = ScatterData {
            samples: &samples[..d + 1],
            labels: None,
            ..data
        };
        assert!(matches!(
            projection_image(&ragged, Projection::Pca, &ScatterOptions::default()),
            Err(VizError::BadInput { .. })
        ));
    }
}
