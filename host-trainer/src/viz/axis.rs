//! Axes for plotters charts: a linear or log₁₀ range with our own 1-2-5 ticks and short tick
//! labels.
//!
//! plotters' own log axis puts ticks only on powers of ten, so a loss curve spanning less than
//! a decade (0.03 to 0.08) would have none; [`Axis`] always has at least two labelled ticks.

use std::ops::Range;

use plotters::chart::ChartContext;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::prelude::{Cartesian2d, ChartBuilder};

use super::canvas::{Area, Canvas};
use super::{GRID_BOLD, GRID_LIGHT, INK, VizError, draw_err, text};

/// A chart's frame: its text size, margins, caption and axis titles.
#[derive(Debug, Clone, Copy)]
pub(super) struct Frame<'a> {
    /// What is drawn, for errors.
    pub what: &'static str,
    /// Tick-label text height, in pixels.
    pub font: u32,
    /// Caption above the chart, with its text height.
    pub title: Option<(&'a str, u32)>,
    /// Axis titles.
    pub x_title: &'a str,
    /// See `x_title`.
    pub y_title: &'a str,
}

impl Frame<'_> {
    /// The margin around the chart.
    pub(super) fn margin(&self) -> u32 {
        self.font
    }
    /// Height of the x tick labels and title.
    pub(super) fn x_area(&self) -> u32 {
        self.font * 3
    }
    /// Width of the y tick labels and title.
    pub(super) fn y_area(&self) -> u32 {
        self.font * 4 + self.font / 2
    }
}

/// A chart over `x` × `y` on `root` with its frame drawn: caption, axis titles, tick labels
/// and grid lines, the same in every picture.
pub(super) fn chart<'a, 'b>(
    root: &'a Area<'b>,
    frame: &Frame<'_>,
    x: &Axis,
    y: &Axis,
) -> Result<ChartContext<'a, Canvas<'b>, Cartesian2d<Axis, Axis>>, VizError> {
    let err = draw_err(frame.what);
    let font = frame.font;
    let mut builder = ChartBuilder::on(root);
    builder
        .margin(frame.margin())
        .x_label_area_size(frame.x_area())
        .y_label_area_size(frame.y_area());
    if let Some((title, size)) = frame.title {
        builder.caption(title, text(size, INK));
    }
    let mut chart = builder
        .build_cartesian_2d(x.clone(), y.clone())
        .map_err(&err)?;
    let (xl, yl) = (|v: &f64| x.label(*v), |v: &f64| y.label(*v));
    chart
        .configure_mesh()
        .x_desc(frame.x_title)
        .y_desc(frame.y_title)
        .x_label_formatter(&xl)
        .y_label_formatter(&yl)
        .label_style(text(font, INK))
        .axis_desc_style(text(font + 1, INK))
        .bold_line_style(GRID_BOLD)
        .light_line_style(GRID_LIGHT)
        .axis_style(INK)
        .draw()
        .map_err(&err)?;
    Ok(chart)
}

/// One chart axis over `lo..hi` in axis units (log₁₀ of the value on a log axis).
#[derive(Debug, Clone)]
pub(super) struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    /// Labelled ticks, in axis units.
    major: Vec<f64>,
    /// Unlabelled gridlines (2×…9× within decades on a log axis), in axis units.
    minor: Vec<f64>,
    /// Spacing of linear ticks, for their labels' decimals.
    step: f64,
}

impl Axis {
    /// A linear axis over `lo..hi` (finite, `lo < hi`).
    pub(super) fn linear(lo: f64, hi: f64) -> Self {
        let major = linear_ticks(lo, hi);
        let step = major.get(1).map_or(hi - lo, |t1| t1 - major[0]);
        Self {
            lo,
            hi,
            log: false,
            minor: Vec::new(),
            major,
            step,
        }
    }

    /// A log₁₀ axis over the values `10^lo..10^hi` (`lo < hi` finite).
    pub(super) fn log(lo: f64, hi: f64) -> Self {
        let major = log_ticks(lo, hi);
        let minor = if hi - lo <= 6.0 {
            ((lo.floor() as i64)..=(hi.ceil() as i64))
                .flat_map(|d| (2..10).map(move |m| d as f64 + f64::from(m).log10()))
                .filter(|t| (lo..=hi).contains(t))
                .collect()
        } else {
            Vec::new()
        };
        Self {
            lo,
            hi,
            log: true,
            major,
            minor,
            step: 1.0,
        }
    }

    /// `v` in axis units: log₁₀ on a log axis (−∞ or NaN for `v ≤ 0`, which callers skip).
    fn to_axis(&self, v: f64) -> f64 {
        if self.log { v.log10() } else { v }
    }

    fn value_at(&self, t: f64) -> f64 {
        if self.log { 10f64.powf(t) } else { t }
    }

    /// The label of tick value `v`.
    pub(super) fn label(&self, v: f64) -> String {
        if self.log {
            tick_label(v)
        } else {
            step_label(v, self.step)
        }
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = (self.to_axis(*value) - self.lo) / (self.hi - self.lo);
        // `as` saturates (and sends NaN to 0): far-off points land off the plot, not in a
        // panic; callers skip values that cannot be drawn.
        (f64::from(limit.0) + t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        let mut t = self.major.clone();
        if hint.weight().allow_light_points() {
            t.extend(&self.minor);
        }
        t.into_iter().map(|t| self.value_at(t)).collect()
    }

    fn range(&self) -> Range<f64> {
        self.value_at(self.lo)..self.value_at(self.hi)
    }
}

impl ValueFormatter<f64> for Axis {
    fn format(value: &f64) -> String {
        tick_label(*value)
    }

    fn format_ext(&self, value: &f64) -> String {
        self.label(*value)
    }
}

/// Five to eight 1-2-5 ticks inside `[lo, hi]`: the 1-2-5 step nearest (in ratio) to a
/// sixth of the range.
pub(super) fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 6.0;
    if !(raw.is_finite() && raw > 0.0) {
        return vec![lo];
    }
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .min_by(|a, b| (a / raw).ln().abs().total_cmp(&(b / raw).ln().abs()))
        .unwrap_or(mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Ticks for a log₁₀ axis spanning `[lo, hi]` (in log units): every decade (every second
/// or fifth one when there are many), plus 2× and 5× within decades when fewer than three
/// decades show.
pub(super) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (a, b) = (lo.ceil() as i64, hi.floor() as i64);
    let mut t: Vec<f64> = if hi - lo < 3.0 {
        ((lo.floor() as i64)..=(hi.ceil() as i64))
            .flat_map(|d| [1.0f64, 2.0, 5.0].map(|m| d as f64 + m.log10()))
            .filter(|x| (lo..=hi).contains(x))
            .collect()
    } else {
        let every = ((b - a) / 6 + 1).max(1);
        (a..=b)
            .filter(|d| d.rem_euclid(every) == 0)
            .map(|d| d as f64)
            .collect()
    };
    if t.len() < 2 {
        // Less than one 1-2-5 step in view: linear ticks of the value, placed in log units.
        t = linear_ticks(10f64.powf(lo), 10f64.powf(hi))
            .into_iter()
            .filter(|&v| v > 0.0)
            .map(f64::log10)
            .collect();
    }
    t
}

/// The label of tick `v` on a linear axis with tick spacing `step`: as many decimals as the
/// step needs (so 10.05, 10.10 read as `10.05`, `10.1`), scientific outside the range
/// [`tick_label`] writes plainly.
pub(super) fn step_label(v: f64, step: f64) -> String {
    if v.abs() < step.abs() * 1e-6 {
        return "0".into();
    }
    if !(1e-3..1e6).contains(&step.abs()) || v.abs() >= 1e6 {
        return tick_label(v);
    }
    let decimals = (-(step.abs().log10() + 1e-9).floor()).max(0.0) as usize;
    trim_zeros(format!("{v:.decimals$}"))
}

/// A short label: plain decimal for 0.001 ≤ |v| < 10⁶ (and 0), else `1.5e-5` style.
pub(super) fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a < 1e-300 {
        return "0".into();
    }
    if !a.is_finite() {
        return format!("{v}");
    }
    if (1e-3..1e6).contains(&a) {
        // Enough decimals for 3 significant digits.
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        return trim_zeros(format!("{v:.decimals$}"));
    }
    let e = a.log10().floor() as i32;
    let m = trim_zeros(format!("{:.2}", v / 10f64.powi(e)));
    format!("{m}e{e}")
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(2000.0), "2000");
        assert_eq!(tick_label(0.0012), "0.0012");
        assert_eq!(tick_label(1e-5), "1e-5");
        assert_eq!(tick_label(2.5e7), "2.5e7");
        assert_eq!(linear_ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(step_label(10.05, 0.05), "10.05");
        assert_eq!(step_label(3.0 * 0.1, 0.1), "0.3");
        assert_eq!(step_label(1e-17, 0.1), "0");
        assert_eq!(step_label(20000.0, 5000.0), "20000");
    }

    #[test]
    fn a_log_axis_under_one_decade_still_has_labelled_ticks() {
        // 0.03..0.08: no power of ten and only one 1-2-5 value (0.05) inside.
        let axis = Axis::log(0.03f64.log10(), 0.08f64.log10());
        let hint = || plotters::coord::ranged1d::BoldPoints(10);
        let ticks = axis.key_points(hint());
        assert!(ticks.len() >= 2, "{ticks:?}");
        assert!(
            ticks.iter().all(|t| (0.0299..=0.0801).contains(t)),
            "{ticks:?}"
        );
        // Several decades: decades only, labelled plainly.
        let axis = Axis::log(-3.0, 1.0);
        let ticks: Vec<String> = axis
            .key_points(hint())
            .iter()
            .map(|&t| axis.label(t))
            .collect();
        assert_eq!(ticks, ["0.001", "0.01", "0.1", "1", "10"]);
    }

    #[test]
    fn axis_maps_ends_to_the_pixel_limits() {
        let lin = Axis::linear(-2.0, 2.0);
        assert_eq!(lin.map(&-2.0, (10, 110)), 10);
        assert_eq!(lin.map(&2.0, (10, 110)), 110);
        assert_eq!(lin.map(&0.0, (110, 10)), 60);
        let log = Axis::log(-2.0, 0.0);
        assert_eq!(log.map(&0.1, (0, 100)), 50);
        // Far off and non-finite values saturate instead of panicking.
        assert_eq!(lin.map(&1e300, (0, 100)), i32::MAX);
        assert_eq!(log.map(&-1.0, (0, 100)), 0);
    }
}
