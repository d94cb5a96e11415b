//! Loss curves: each series' raw values drawn light, a smoothed curve (an exponential moving
//! average, or a centred moving average) drawn over them in full colour, against the training
//! step, on a linear or log₁₀ y axis chosen from the data unless the caller names one.

use std::path::Path;

use plotters::prelude::{Circle, Color, PathElement, SeriesLabelPosition};

use super::axis::{Axis, Frame, chart};
use super::{GRID_BOLD, INK, PALETTE, VizError, bad, draw_err, render, save, text};

/// How to draw the y axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum YScale {
    /// Log₁₀ when every drawable value is positive and the values (their 1st to 99th
    /// percentile) span at least a factor [`AUTO_LOG_RATIO`]; linear otherwise.
    #[default]
    Auto,
    /// Linear.
    Linear,
    /// Log₁₀; values ≤ 0 are not drawn.
    Log,
}

/// Above this ratio of high to low values [`YScale::Auto`] draws a log axis: a loss that falls
/// by 10× has most of its story in the bottom tenth of a linear plot.
pub const AUTO_LOG_RATIO: f64 = 10.0;

/// How to smooth each series.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum Smoothing {
    /// Raw values only.
    None,
    /// A bias-corrected exponential moving average with weight `2/(span+1)` on each new value
    /// (pandas' `span`), so the first values are not pulled towards 0. It lags the raw curve
    /// by about `span/2` steps, like the running loss a trainer prints.
    Ema {
        /// Steps the average reaches back, roughly; `≤ 1` draws the raw values only.
        span: usize,
    },
    /// The mean of the values in a centred window of `window` points: no lag, shorter windows
    /// at the ends. `≤ 1` draws the raw values only.
    MovingAverage {
        /// Points in the window.
        window: usize,
    },
    /// [`Smoothing::Ema`] with a span of a fiftieth of the longest series (at most 1000
    /// steps); series under 150 points are drawn raw.
    #[default]
    Auto,
}

/// What a curve picture looks like. `CurveOptions::default()` is an 800×400 "loss" plot
/// against "training step" with an automatic y scale and smoothing.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveOptions<'a> {
    /// Picture size `(width, height)` in pixels.
    pub size: (u32, u32),
    /// A caption above the plot.
    pub title: Option<&'a str>,
    /// The x axis' title.
    pub x_title: &'a str,
    /// The y axis' title.
    pub y_title: &'a str,
    /// Linear, log or chosen from the data.
    pub y_scale: YScale,
    /// The smoothed curve drawn over the raw values.
    pub smoothing: Smoothing,
    /// The x value (step) of a series' first value in [`curves_png`]; the trainer counts its
    /// optimiser steps from 1.
    pub first_step: u64,
}

impl Default for CurveOptions<'_> {
    fn default() -> Self {
        Self {
            size: (800, 400),
            title: None,
            x_title: "training step",
            y_title: "loss",
            y_scale: YScale::Auto,
            smoothing: Smoothing::Auto,
            first_step: 1,
        }
    }
}

/// Loss curves of `series` (`(name, values)`, value `i` at step `first_step + i`) in a PNG.
/// See [`curves_image`].
pub fn curves_png(
    path: &Path,
    series: &[(&str, &[f64])],
    opts: &CurveOptions<'_>,
) -> Result<(), VizError> {
    save(path, &curves_image(series, opts)?)
}

/// The trainer's loss record (`Trainer::losses()`: `(step, loss)` pairs) as a loss curve in a
/// PNG, x being the recorded step (so a resumed run's curve starts where it resumed).
pub fn loss_curve_png(
    path: &Path,
    losses: &[(u64, f32)],
    opts: &CurveOptions<'_>,
) -> Result<(), VizError> {
    let points: Vec<(f64, f64)> = losses
        .iter()
        .map(|&(s, l)| (s as f64, f64::from(l)))
        .collect();
    save(path, &draw(&[("loss", points)], opts)?)
}

/// The picture of [`curves_png`]: for each series (in the `tab10` colours, in order) the raw
/// values as a thin light line and the smoothed values as a thick line over it, a legend
/// naming both ("loss (raw)", "loss, EMA over 40 steps"), axis titles, and ticks with values
/// (1-2-5 steps; on a log axis decades, with 2× and 5× when under three decades show).
/// Non-finite values, and values ≤ 0 on a log axis, break the line and are left out of the
/// average. A series with no name gets no legend entry.
pub fn curves_image(
    series: &[(&str, &[f64])],
    opts: &CurveOptions<'_>,
) -> Result<image::RgbImage, VizError> {
    let first = opts.first_step as f64;
    let lines: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|&(name, v)| {
            let pts = v
                .iter()
                .enumerate()
                .map(|(i, &y)| (first + i as f64, y))
                .collect();
            (name, pts)
        })
        .collect();
    draw(&lines, opts)
}

/// Smaller pictures than this cannot hold the tick labels and axis titles.
const MIN_SIZE: (u32, u32) = (200, 120);

fn draw(
    series: &[(&str, Vec<(f64, f64)>)],
    opts: &CurveOptions<'_>,
) -> Result<image::RgbImage, VizError> {
    let (w, h) = opts.size;
    if w < MIN_SIZE.0 || h < MIN_SIZE.1 {
        return Err(bad(format!(
            "curve picture {w}×{h} px: at least {}×{} px are needed for its labels",
            MIN_SIZE.0, MIN_SIZE.1
        )));
    }
    let log = match opts.y_scale {
        YScale::Log => true,
        YScale::Linear => false,
        YScale::Auto => wants_log(series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1))),
    };
    let usable = |y: f64| y.is_finite() && (!log || y > 0.0);
    let longest = series.iter().map(|(_, p)| p.len()).max().unwrap_or(0);
    let smoothing = match opts.smoothing {
        Smoothing::Auto if longest >= 150 => Smoothing::Ema {
            span: (longest / 50).min(1000),
        },
        Smoothing::Auto => Smoothing::None,
        s => s,
    };

    // Ranges: x over all points; y over the usable values, padded by 4 %.
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in series.iter().flat_map(|(_, p)| p.iter()) {
        if x.is_finite() {
            (x0, x1) = (x0.min(x), x1.max(x));
        }
        if usable(y) {
            let t = if log { y.log10() } else { y };
            (y0, y1) = (y0.min(t), y1.max(t));
        }
    }
    let (x0, x1) = widen(x0, x1, 1.0);
    let (y0, y1) = widen(y0, y1, if log { 0.5 } else { 0.0 });
    let pad = (y1 - y0) * 0.04;
    let y_axis = if log {
        Axis::log(y0 - pad, y1 + pad)
    } else {
        Axis::linear(y0 - pad, y1 + pad)
    };
    let x_axis = Axis::linear(x0, x1);

    // Text scales gently with the picture.
    let font = (h / 28).clamp(12, 20);
    render("curve", (w, h), |root| {
        let err = draw_err("curve");
        let frame = Frame {
            what: "curve",
            font,
            title: opts.title.map(|t| (t, font + 4)),
            x_title: opts.x_title,
            y_title: opts.y_title,
        };
        let mut chart = chart(root, &frame, &x_axis, &y_axis)?;

        let thick = (h / 200).clamp(2, 4);
        let mut named = false;
        for (k, (name, pts)) in series.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let ys: Vec<f64> = pts.iter().map(|p| p.1).collect();
            let smooth = match smoothing {
                Smoothing::Ema { span } if span > 1 => {
                    Some((ema(&ys, span, usable), "EMA over", span))
                }
                Smoothing::MovingAverage { window } if window > 1 => {
                    Some((moving_average(&ys, window, usable), "mean of", window))
                }
                _ => None,
            };
            let raw_style = if smooth.is_some() {
                colour.mix(0.3).stroke_width(1)
            } else {
                colour.stroke_width(thick)
            };
            let (paths, lone) = runs(pts.iter().copied(), usable);
            let anno = chart
                .draw_series(paths.into_iter().map(|r| PathElement::new(r, raw_style)))
                .map_err(&err)?;
            if !name.is_empty() {
                named = true;
                let label = if smooth.is_some() {
                    format!("{name} (raw)")
                } else {
                    (*name).to_string()
                };
                anno.label(label).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 2 * font as i32, y)], raw_style)
                });
            }
            chart
                .draw_series(
                    lone.into_iter()
                        .map(|p| Circle::new(p, thick, raw_style.filled())),
                )
                .map_err(&err)?;
            if let Some((values, how, n)) = smooth {
                let style = colour.stroke_width(thick);
                let xs = pts.iter().map(|p| p.0);
                let (paths, _) = runs(xs.zip(values), usable);
                let anno = chart
                    .draw_series(paths.into_iter().map(|r| PathElement::new(r, style)))
                    .map_err(&err)?;
                if !name.is_empty() {
                    anno.label(format!("{name}, {how} {n} steps"))
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 2 * font as i32, y)], style)
                        });
                }
            }
        }
        if named {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(text(font, INK))
                .background_style(plotters::style::WHITE.mix(0.85))
                .border_style(GRID_BOLD)
                .draw()
                .map_err(&err)?;
        }
        Ok(())
    })
}

/// `lo..hi` made drawable: a unit range around 0 when nothing was seen, `±d` (or ±10 %,
/// at least 0.5) around a single value.
fn widen(lo: f64, hi: f64, d: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi - lo > 1e-12 * hi.abs().max(1.0) {
        return (lo, hi);
    }
    let d = if d > 0.0 {
        d
    } else {
        (hi.abs() * 0.1).max(0.5)
    };
    (lo - d, hi + d)
}

/// Whether [`YScale::Auto`] picks a log axis for `values`.
fn wants_log(values: impl Iterator<Item = f64>) -> bool {
    let mut v: Vec<f64> = Vec::new();
    for y in values.filter(|y| y.is_finite()) {
        if y <= 0.0 {
            return false;
        }
        v.push(y);
    }
    if v.len() < 2 {
        return false;
    }
    v.sort_by(f64::total_cmp);
    let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
    q(0.99) / q(0.01) >= AUTO_LOG_RATIO
}

/// The points split into runs of usable `y` (a gap where one is not), and the runs of one
/// point, which a path would not show.
type Runs = (Vec<Vec<(f64, f64)>>, Vec<(f64, f64)>);
fn runs(points: impl Iterator<Item = (f64, f64)>, usable: impl Fn(f64) -> bool) -> Runs {
    let mut all = vec![Vec::new()];
    for (x, y) in points {
        if x.is_finite() && usable(y) {
            if let Some(run) = all.last_mut() {
                run.push((x, y));
            }
        } else if all.last().is_some_and(|r| !r.is_empty()) {
            all.push(Vec::new());
        }
    }
    let (lone, runs): (Vec<_>, Vec<_>) = all.into_iter().partition(|r| r.len() == 1);
    let runs = runs.into_iter().filter(|r| r.len() > 1).collect();
    (runs, lone.into_iter().flatten().collect())
}

/// Bias-corrected exponential moving average of the usable values (see [`Smoothing::Ema`]);
/// unusable where no usable value has been seen yet, and where the raw value is unusable.
fn ema(s: &[f64], span: usize, usable: impl Fn(f64) -> bool) -> Vec<f64> {
    let beta = 1.0 - 2.0 / (span as f64 + 1.0);
    let (mut acc, mut weight) = (0.0, 0.0);
    s.iter()
        .map(|&v| {
            if !usable(v) {
                return f64::NAN;
            }
            acc = beta * acc + (1.0 - beta) * v;
            weight = beta * weight + (1.0 - beta);
            acc / weight
        })
        .collect()
}

/// Centred moving average over the usable values: at `i`, the mean of those in
/// `i − window/2 ..= i + (window − 1)/2` that exist; NaN where a window holds none.
fn moving_average(s: &[f64], window: usize, usable: impl Fn(f64) -> bool) -> Vec<f64> {
    // Prefix sums of usable values and their count: O(n) for any window.
    let mut sum = vec![0.0f64; s.len() + 1];
    let mut cnt = vec![0usize; s.len() + 1];
    for (i, &v) in s.iter().enumerate() {
        let ok = usable(v);
        sum[i + 1] = sum[i] + if ok { v } else { 0.0 };
        cnt[i + 1] = cnt[i] + usize::from(ok);
    }
    (0..s.len())
        .map(|i| {
            let a = i.saturating_sub(window / 2);
            let b = (i + (window - 1) / 2 + 1).min(s.len());
            let n = cnt[b] - cnt[a];
            if n == 0 {
                f64::NAN
            } else {
                (sum[b] - sum[a]) / n as f64
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{look, temp_dir};
    use super::*;

    /// A noisy loss falling over two decades, deterministic.
    fn noisy_loss(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let t = i as f64;
                let noise = 1.0 + 0.5 * ((t * 12.9898).sin() * 43758.5453).fract();
                (2.0 / (1.0 + t * 0.02) + 0.01) * noise
            })
            .collect()
    }

    #[test]
    fn curves_decode_with_the_requested_size() {
        let dir = temp_dir("curve");
        let a = noisy_loss(2000);
        let b: Vec<f64> = (0..300)
            .map(|i| 0.5 / (1.0 + i as f64 * 0.02) + 0.02)
            .collect();
        let series: [(&str, &[f64]); 2] = [("train", &a), ("test", &b)];
        for (k, y_scale) in [YScale::Linear, YScale::Log].into_iter().enumerate() {
            let path = dir.join(format!("c{k}.png"));
            let opts = CurveOptions {
                size: (640, 400),
                y_scale,
                ..CurveOptions::default()
            };
            curves_png(&path, &series, &opts).unwrap();
            assert_eq!(
                image::open(&path).unwrap().to_rgb8().dimensions(),
                (640, 400)
            );
        }
        let path = dir.join("smooth.png");
        let opts = CurveOptions {
            size: (320, 200),
            y_scale: YScale::Log,
            smoothing: Smoothing::MovingAverage { window: 25 },
            ..CurveOptions::default()
        };
        curves_png(&path, &series, &opts).unwrap();
        assert_eq!(
            image::open(&path).unwrap().to_rgb8().dimensions(),
            (320, 200)
        );
        assert_eq!(crate::files::temporaries(&dir), Vec::<String>::new());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn degenerate_series_still_draw_and_tiny_pictures_are_refused() {
        let nan = [f64::NAN; 3];
        for s in [
            &[][..],
            &[2.0, 2.0][..],
            &nan[..],
            &[1.0][..],
            &[-1.0, 0.0, 1.0][..],
        ] {
            for scale in [YScale::Auto, YScale::Linear, YScale::Log] {
                let opts = CurveOptions {
                    y_scale: scale,
                    ..CurveOptions::default()
                };
                assert!(curves_image(&[("x", s)], &opts).is_ok(), "{s:?} {scale:?}");
            }
        }
        let tiny = CurveOptions {
            size: (100, 50),
            y_scale: YScale::Linear,
            smoothing: Smoothing::None,
            ..CurveOptions::default()
        };
        assert!(matches!(
            curves_image(&[], &tiny),
            Err(VizError::BadInput { .. })
        ));
    }

    #[test]
    fn the_smoothed_curve_is_drawn_over_a_lighter_raw_curve() {
        let losses: Vec<(u64, f32)> = noisy_loss(3000)
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u64 + 1, l as f32))
            .collect();
        let dir = temp_dir("loss");
        let path = dir.join("loss.png");
        loss_curve_png(&path, &losses, &CurveOptions::default()).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        look("loss.png", &img);
        assert_eq!(img.dimensions(), (800, 400));
        // Full-strength tab10 blue (the EMA) and a light blend of it (the raw loss) both show.
        let blue = PALETTE[0];
        let full = img
            .pixels()
            .filter(|p| p.0 == [blue.0, blue.1, blue.2])
            .count();
        let light = img
            .pixels()
            .filter(|p| p.0[2] > 200 && p.0[0] > 150 && p.0[0] < 220 && p.0[2] > p.0[0] + 20)
            .count();
        assert!(full > 500, "EMA pixels: {full}");
        assert!(light > 500, "raw pixels: {light}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn auto_picks_log_for_decades_and_linear_otherwise() {
        assert!(wants_log(noisy_loss(500).into_iter()));
        assert!(!wants_log([1.0, 2.0, 3.0].into_iter()));
        assert!(!wants_log([-1.0, 100.0, 0.001].into_iter()));
        assert!(!wants_log(std::iter::empty()));
    }

    #[test]
    fn averages_skip_unusable_values() {
        let s = [1.0, 2.0, f64::NAN, 4.0, 5.0];
        let m = moving_average(&s, 3, f64::is_finite);
        assert_eq!(m[0], 1.5);
        assert_eq!(m[1], 1.5);
        assert_eq!(m[2], 3.0);
        assert_eq!(m[4], 4.5);
        // The bias-corrected EMA starts at the first value and stays there for a constant.
        let e = ema(&[3.0, 3.0, f64::NAN, 3.0], 10, f64::is_finite);
        assert_eq!(e[0], 3.0);
        assert!((e[3] - 3.0).abs() < 1e-12);
        assert!(e[2].is_nan());
    }
}
