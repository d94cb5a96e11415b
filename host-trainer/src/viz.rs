//! PNG pictures drawn by hand on an RGB canvas: 2-D scatter plots, digit grids and loss curves.
//!
//! Nothing here needs a font file or a plotting library: points, lines and rectangles are
//! rasterised directly (anti-aliased by pixel coverage), and the few labels a loss curve needs
//! (axis values, series names) use a built-in 5×7 bitmap font (digits, `A`–`Z` — lower case is
//! drawn as upper case — and `. - + _ : / ( ) = , %`).
//!
//! Every `*_png` function writes atomically: the PNG is encoded in memory, written to
//! `<path>.tmp` and renamed over `path`, so a reader never sees half a file. The parent
//! directory must exist. The `*_image` functions return the picture instead, for callers that
//! compose or test them. Pictures are pure functions of their inputs.

use std::path::{Path, PathBuf};

use image::{ImageEncoder, Rgb, RgbImage};

/// What went wrong drawing or writing a picture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VizError {
    /// Writing or renaming the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file being written (`<path>.tmp` or the final path).
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// PNG encoding failed.
    #[error("{}: encoding PNG: {source}", path.display())]
    Encode {
        /// The file being written.
        path: PathBuf,
        /// What the encoder said.
        source: image::ImageError,
    },
    /// The arguments do not describe a picture (lengths, sizes).
    #[error("{what}")]
    BadInput {
        /// What is wrong, with expected and found values.
        what: String,
    },
}

fn bad(what: String) -> VizError {
    VizError::BadInput { what }
}

// ---------------------------------------------------------------------------------------------
// Colours and sizes.

/// Background.
const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
/// Reference data in scatter plots.
const DATA_GREY: Rgb<u8> = Rgb([200, 200, 200]);
/// Axis lines through 0, plot frames.
const AXIS_GREY: Rgb<u8> = Rgb([110, 110, 110]);
/// Gridlines of curve plots.
const GRID_GREY: Rgb<u8> = Rgb([228, 228, 228]);
/// Text.
const INK: Rgb<u8> = Rgb([40, 40, 40]);
/// Gaps between digit cells.
const GAP_GREY: Rgb<u8> = Rgb([170, 170, 170]);
/// A NaN pixel in a digit grid (loud on purpose).
const NAN_RED: Rgb<u8> = Rgb([230, 0, 0]);
/// Series colours: matplotlib's `tab10`, which stays distinguishable for common colour
/// blindness in its first few entries.
const PALETTE: [Rgb<u8>; 10] = [
    Rgb([31, 119, 180]),
    Rgb([255, 127, 14]),
    Rgb([44, 160, 44]),
    Rgb([214, 39, 40]),
    Rgb([148, 103, 189]),
    Rgb([140, 86, 75]),
    Rgb([227, 119, 194]),
    Rgb([127, 127, 127]),
    Rgb([188, 189, 34]),
    Rgb([23, 190, 207]),
];
/// Scatter: colour of model samples.
const SAMPLE_COLOUR: Rgb<u8> = PALETTE[0];
/// Scatter: opacity of one sample dot, so dense regions read darker.
const SAMPLE_ALPHA: f32 = 0.7;
/// Scatter: fraction of the fitted extent added on each side.
const SCATTER_PAD: f64 = 0.05;
/// Scatter: sample points outside these quantiles (per axis) do not stretch the view, so one
/// diverged sample cannot shrink the picture to a dot. The reference data always fits.
const SCATTER_SAMPLE_QUANTILE: f64 = 0.005;
/// Largest picture side accepted, to catch swapped or garbage arguments early.
const MAX_SIDE: u32 = 16_384;
/// Digit cells: 8×8 pixels of 0..=16.
const DIGIT_SIDE: u32 = 8;
/// Digit grid: largest pixel value (the UCI digits count set pixels of a 4×4 block).
const DIGIT_MAX: f32 = 16.0;

// ---------------------------------------------------------------------------------------------
// Scatter plot.

/// A 2-D scatter plot of `data` (reference, light grey) and `samples` (coloured, half
/// transparent, drawn on top), both as `(x, y)` pairs laid end to end, in a `size`×`size`
/// PNG. See [`scatter_image`].
pub fn scatter_png(path: &Path, data: &[f32], samples: &[f32], size: u32) -> Result<(), VizError> {
    save(path, &scatter_image(data, samples, size)?)
}

/// The picture of [`scatter_png`]: one square view common to both sets, white background,
/// thin grey axis lines through 0 with ticks at every integer (when 0 is in view and there are
/// at most 40 integers across), and a frame.
///
/// The view is the bounding box of the data's points and of the samples' 0.5 %–99.5 % quantile
/// range per axis, made square around its centre (so shapes are not distorted) and padded by
/// 5 % on each side. Non-finite points are skipped, as are samples outside the view.
pub fn scatter_image(data: &[f32], samples: &[f32], size: u32) -> Result<RgbImage, VizError> {
    check_side("scatter size", size)?;
    for (what, v) in [("data", data), ("samples", samples)] {
        if v.len() % 2 != 0 {
            return Err(bad(format!(
                "scatter {what}: {} values is not a list of (x, y) pairs",
                v.len()
            )));
        }
    }
    let view = fit_view(data, samples);
    let mut c = Canvas::new(size, size);
    let s = f64::from(size);
    let to_px = |x: f64, y: f64| {
        (
            ((x - view.x0) / view.span * s) as f32,
            ((view.y0 + view.span - y) / view.span * s) as f32,
        )
    };

    // Axis lines through 0, with integer ticks.
    let (ox, oy) = to_px(0.0, 0.0);
    let in_view = |p: f32| (0.0..s as f32).contains(&p);
    let tick = (size / 120).max(2) as f32;
    let integers = (view.x0.floor() as i64)..=((view.x0 + view.span).ceil() as i64);
    let few = view.span <= 40.0;
    if in_view(oy) {
        c.line(0.0, oy, s as f32, oy, 1.0, AXIS_GREY, 1.0);
        for k in integers.clone().filter(|_| few) {
            let (px, _) = to_px(k as f64, 0.0);
            c.line(px, oy - tick, px, oy + tick, 1.0, AXIS_GREY, 1.0);
        }
    }
    if in_view(ox) {
        c.line(ox, 0.0, ox, s as f32, 1.0, AXIS_GREY, 1.0);
        let yint = (view.y0.floor() as i64)..=((view.y0 + view.span).ceil() as i64);
        for k in yint.filter(|_| few) {
            let (_, py) = to_px(0.0, k as f64);
            c.line(ox - tick, py, ox + tick, py, 1.0, AXIS_GREY, 1.0);
        }
    }

    // Dots: about 1 px radius at 256 px, growing slowly with the picture.
    let r = (s as f32 / 300.0).clamp(1.0, 4.0);
    for p in data.chunks_exact(2) {
        if p[0].is_finite() && p[1].is_finite() {
            let (px, py) = to_px(f64::from(p[0]), f64::from(p[1]));
            c.disc(px, py, r, DATA_GREY, 1.0);
        }
    }
    for p in samples.chunks_exact(2) {
        if p[0].is_finite() && p[1].is_finite() {
            let (px, py) = to_px(f64::from(p[0]), f64::from(p[1]));
            c.disc(px, py, r, SAMPLE_COLOUR, SAMPLE_ALPHA);
        }
    }
    c.frame(AXIS_GREY);
    Ok(c.img)
}

/// A square view: lower-left corner and side, in data units.
#[derive(Debug, Clone, Copy)]
struct View {
    x0: f64,
    y0: f64,
    span: f64,
}

fn fit_view(data: &[f32], samples: &[f32]) -> View {
    let mut lo = [f64::INFINITY; 2];
    let mut hi = [f64::NEG_INFINITY; 2];
    for p in data
        .chunks_exact(2)
        .filter(|p| p.iter().all(|v| v.is_finite()))
    {
        for a in 0..2 {
            lo[a] = lo[a].min(f64::from(p[a]));
            hi[a] = hi[a].max(f64::from(p[a]));
        }
    }
    for a in 0..2 {
        let mut v: Vec<f64> = samples
            .chunks_exact(2)
            .filter(|p| p.iter().all(|v| v.is_finite()))
            .map(|p| f64::from(p[a]))
            .collect();
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
        lo[a] = lo[a].min(q(SCATTER_SAMPLE_QUANTILE));
        hi[a] = hi[a].max(q(1.0 - SCATTER_SAMPLE_QUANTILE));
    }
    if !(lo[0].is_finite() && lo[1].is_finite()) {
        // Nothing finite to show: the unit square around 0.
        return View {
            x0: -1.0,
            y0: -1.0,
            span: 2.0,
        };
    }
    let span = (hi[0] - lo[0]).max(hi[1] - lo[1]);
    // A single point (or a line of identical points) still gets a visible extent.
    let span = if span > 0.0 {
        span
    } else {
        lo[0].abs().max(lo[1].abs()).max(1.0)
    };
    let padded = span * (1.0 + 2.0 * SCATTER_PAD);
    View {
        x0: (lo[0] + hi[0]) / 2.0 - padded / 2.0,
        y0: (lo[1] + hi[1]) / 2.0 - padded / 2.0,
        span: padded,
    }
}

// ---------------------------------------------------------------------------------------------
// Digit grid.

/// A `rows`×`cols` grid of 8×8 digits (`images`: `n × 64` pixel values on the 0..=16 scale,
/// row-major, `n ≤ rows·cols`), each pixel drawn as a `scale`×`scale` square. See
/// [`digit_grid_image`].
pub fn digit_grid_png(
    path: &Path,
    images: &[f32],
    rows: usize,
    cols: usize,
    scale: u32,
) -> Result<(), VizError> {
    save(path, &digit_grid_image(images, rows, cols, scale)?)
}

/// The picture of [`digit_grid_png`]: dark ink on white (0 → white, 16 → black, values clamped
/// to 0..=16, NaN drawn red), cells filled row by row (callers put one class per row), empty
/// cells left white, separated and framed by grey gaps of `max(1, scale/2)` pixels.
pub fn digit_grid_image(
    images: &[f32],
    rows: usize,
    cols: usize,
    scale: u32,
) -> Result<RgbImage, VizError> {
    let cell_len = (DIGIT_SIDE * DIGIT_SIDE) as usize;
    if !images.len().is_multiple_of(cell_len) {
        return Err(bad(format!(
            "digit grid: {} values is not a list of 8×8 images",
            images.len()
        )));
    }
    let n = images.len() / cell_len;
    if n > rows * cols {
        return Err(bad(format!(
            "digit grid: {n} images do not fit in {rows}×{cols} cells"
        )));
    }
    if rows == 0 || cols == 0 || scale == 0 {
        return Err(bad(format!(
            "digit grid: {rows}×{cols} cells of scale {scale} is empty"
        )));
    }
    let gap = (scale / 2).max(1);
    let cell = DIGIT_SIDE * scale;
    let side = |k: usize| -> Result<u32, VizError> {
        let px = u64::from(cell + gap) * k as u64 + u64::from(gap);
        let px = u32::try_from(px).ok().filter(|&p| p <= MAX_SIDE);
        px.ok_or_else(|| {
            bad(format!(
                "digit grid: {k} cells of {cell} px exceed {MAX_SIDE} px"
            ))
        })
    };
    let (w, h) = (side(cols)?, side(rows)?);
    let mut img = RgbImage::from_pixel(w, h, GAP_GREY);
    for r in 0..rows {
        for c in 0..cols {
            let k = r * cols + c;
            let (x0, y0) = (gap + c as u32 * (cell + gap), gap + r as u32 * (cell + gap));
            let pixels = images.get(k * cell_len..(k + 1) * cell_len);
            for py in 0..DIGIT_SIDE {
                for px in 0..DIGIT_SIDE {
                    let colour = match pixels {
                        None => WHITE,
                        Some(p) => {
                            let v = p[(py * DIGIT_SIDE + px) as usize];
                            if v.is_nan() {
                                NAN_RED
                            } else {
                                let g = 255.0 * (1.0 - v.clamp(0.0, DIGIT_MAX) / DIGIT_MAX);
                                Rgb([g.round() as u8; 3])
                            }
                        }
                    };
                    for dy in 0..scale {
                        for dx in 0..scale {
                            img.put_pixel(x0 + px * scale + dx, y0 + py * scale + dy, colour);
                        }
                    }
                }
            }
        }
    }
    Ok(img)
}

// ---------------------------------------------------------------------------------------------
// Curves.

/// Loss curves: one polyline per `(name, values)` series against the step index, in a
/// `size = (width, height)` PNG, with a logarithmic y axis if `log_y`. See [`curve_image`].
pub fn curve_png(
    path: &Path,
    series: &[(&str, &[f64])],
    size: (u32, u32),
    log_y: bool,
) -> Result<(), VizError> {
    save(path, &curve_image(series, size, log_y, 1)?)
}

/// [`curve_png`] with a centred moving average over `window` steps drawn in full colour over
/// the raw values (drawn faint). `window ≤ 1` draws the raw values only.
pub fn curve_png_smoothed(
    path: &Path,
    series: &[(&str, &[f64])],
    size: (u32, u32),
    log_y: bool,
    window: usize,
) -> Result<(), VizError> {
    save(path, &curve_image(series, size, log_y, window)?)
}

/// The picture of [`curve_png_smoothed`].
///
/// x is the index in the series (step 0 at the left, the longest series' last step at the
/// right); y is fitted to the finite values of all series (positive ones with `log_y`), with
/// 1-2-5 gridlines (decades, and 2 and 5 within them when few decades are shown, on a log
/// axis), labelled on the left and bottom. Series take the `tab10` colours in order; a legend
/// at the top right names them. Non-finite values (and values ≤ 0 on a log axis) break the
/// line. The moving average at step `i` is the mean of the finite values in
/// `i − window/2 ..= i + (window − 1)/2` that exist, so it has no lag and shrinks at the ends.
pub fn curve_image(
    series: &[(&str, &[f64])],
    size: (u32, u32),
    log_y: bool,
    window: usize,
) -> Result<RgbImage, VizError> {
    let (w, h) = size;
    check_side("curve width", w)?;
    check_side("curve height", h)?;
    let font = if h >= 600 { 2 } else { 1 };
    let ch_w = (6 * font) as f32;
    let ch_h = (7 * font) as f32;

    // y transform and range.
    let ty = |v: f64| if log_y { v.log10() } else { v };
    let usable = |v: f64| v.is_finite() && (!log_y || v > 0.0);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (_, s) in series {
        for &v in s.iter().filter(|&&v| usable(v)) {
            lo = lo.min(ty(v));
            hi = hi.max(ty(v));
        }
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-12 * hi.abs().max(1.0) {
        let d = if log_y {
            0.5
        } else {
            (hi.abs() * 0.1).max(0.5)
        };
        (lo, hi) = (lo - d, hi + d);
    }
    let pad = (hi - lo) * 0.04;
    let (lo, hi) = (lo - pad, hi + pad);
    let steps = series.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
    let x_hi = (steps.max(2) - 1) as f64;

    // Ticks and labels decide the left margin.
    let yticks = if log_y {
        log_ticks(lo, hi)
    } else {
        linear_ticks(lo, hi)
    };
    let ystep = yticks.get(1).map_or(1.0, |&t1| t1 - yticks[0]);
    let ylabels: Vec<String> = yticks
        .iter()
        .map(|&t| {
            if log_y {
                tick_label(10f64.powf(t))
            } else {
                step_label(t, ystep)
            }
        })
        .collect();
    let xticks = linear_ticks(0.0, x_hi);
    let label_chars = ylabels.iter().map(String::len).max().unwrap_or(1);
    let left = (label_chars as f32 * ch_w + 10.0).round();
    let (right, top, bottom) = (12.0, 10.0, (ch_h + 12.0).round());
    let (pw, ph) = (w as f32 - left - right, h as f32 - top - bottom);
    if pw < 20.0 || ph < 20.0 {
        return Err(bad(format!(
            "curve picture {w}×{h} is too small for its labels"
        )));
    }
    let px = |i: f64| left + (i / x_hi) as f32 * pw;
    let py = |v: f64| top + ((hi - ty(v)) / (hi - lo)) as f32 * ph;
    let py_t = |t: f64| top + ((hi - t) / (hi - lo)) as f32 * ph;

    let mut c = Canvas::new(w, h);
    for (&t, label) in yticks.iter().zip(&ylabels) {
        let y = py_t(t).round() + 0.5;
        c.line(left, y, left + pw, y, 1.0, GRID_GREY, 1.0);
        let tw = label.len() as f32 * ch_w;
        c.text(left - 5.0 - tw, y - ch_h / 2.0, label, font, INK);
    }
    for &t in &xticks {
        let x = px(t).round() + 0.5;
        c.line(x, top, x, top + ph, 1.0, GRID_GREY, 1.0);
        let label = step_label(t, xticks.get(1).map_or(1.0, |&t1| t1 - xticks[0]));
        let tw = label.len() as f32 * ch_w;
        let tx = (x - tw / 2.0).clamp(0.0, w as f32 - tw);
        c.text(tx, top + ph + 6.0, &label, font, INK);
    }

    // Series: faint raw values under the moving average, or the raw values alone.
    let width = if h >= 600 { 2.0 } else { 1.5 };
    for (k, (_, s)) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let draw = |c: &mut Canvas, vals: &[f64], alpha: f32, width: f32| {
            let mut prev: Option<(f32, f32)> = None;
            for (i, &v) in vals.iter().enumerate() {
                if !usable(v) {
                    prev = None;
                    continue;
                }
                let p = (px(i as f64), py(v));
                match prev {
                    Some(q) => c.line(q.0, q.1, p.0, p.1, width, colour, alpha),
                    // A lone point (or the first after a gap) still shows.
                    None => c.disc(p.0, p.1, width / 2.0, colour, alpha),
                }
                prev = Some(p);
            }
        };
        if window > 1 {
            draw(&mut c, s, 0.25, 1.0);
            draw(&mut c, &moving_average(s, window, usable), 1.0, width);
        } else {
            draw(&mut c, s, 1.0, width);
        }
    }

    // Frame, then the legend on top of everything.
    c.rect_outline(left, top, pw, ph, AXIS_GREY);
    let named: Vec<(usize, &str)> = series
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| !n.is_empty())
        .map(|(k, (n, _))| (k, *n))
        .collect();
    if !named.is_empty() {
        let swatch = 3.0 * ch_w;
        let lw = named
            .iter()
            .map(|(_, n)| n.chars().count())
            .max()
            .unwrap_or(0) as f32
            * ch_w
            + swatch
            + 14.0;
        let lh = named.len() as f32 * (ch_h + 6.0) + 6.0;
        let (lx, ly) = (left + pw - lw - 6.0, top + 6.0);
        c.fill_rect(lx, ly, lw, lh, WHITE);
        c.rect_outline(lx, ly, lw, lh, GRID_GREY);
        for (row, (k, name)) in named.iter().enumerate() {
            let y = ly + 6.0 + row as f32 * (ch_h + 6.0);
            let colour = PALETTE[k % PALETTE.len()];
            c.line(
                lx + 5.0,
                y + ch_h / 2.0,
                lx + 5.0 + swatch,
                y + ch_h / 2.0,
                width + 1.0,
                colour,
                1.0,
            );
            c.text(lx + 9.0 + swatch, y, name, font, INK);
        }
    }
    Ok(c.img)
}

/// Centred moving average over the usable values (see [`curve_image`]); unusable where a
/// window holds none.
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

/// Five to eight 1-2-5 ticks inside `[lo, hi]`: the 1-2-5 step nearest (in ratio) to a
/// sixth of the range.
fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 6.0;
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
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (a, b) = (lo.ceil() as i64, hi.floor() as i64);
    let decades = hi - lo;
    let mut t: Vec<f64> = if decades < 3.0 {
        let mut v = Vec::new();
        for d in (lo.floor() as i64)..=(hi.ceil() as i64) {
            for m in [1.0f64, 2.0, 5.0] {
                let x = d as f64 + m.log10();
                if (lo..=hi).contains(&x) {
                    v.push(x);
                }
            }
        }
        v
    } else {
        let every = ((b - a) / 6 + 1).max(1);
        (a..=b)
            .filter(|d| d.rem_euclid(every) == 0)
            .map(|d| d as f64)
            .collect()
    };
    if t.len() < 2 {
        // Less than one 1-2-5 step in view: fall back to linear ticks of the exponent.
        t = linear_ticks(lo, hi);
    }
    t
}

/// The label of tick `v` on a linear axis with tick spacing `step`: as many decimals as the
/// step needs (so 10.05, 10.10 read as `10.05`, `10.1`), scientific outside the range
/// [`tick_label`] writes plainly.
fn step_label(v: f64, step: f64) -> String {
    if v.abs() < step.abs() * 1e-6 {
        return "0".into();
    }
    if !(1e-3..1e6).contains(&step.abs()) || v.abs() >= 1e6 {
        return tick_label(v);
    }
    let decimals = (-(step.abs().log10() + 1e-9).floor()).max(0.0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A short label: plain decimal for 0.001 ≤ |v| < 10⁶ (and 0), else `1.5E-5` style.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || a < 1e-300 {
        return "0".into();
    }
    if (1e-3..1e6).contains(&a) {
        // Enough decimals for 3 significant digits, trailing zeros removed.
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.decimals$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        return s;
    }
    let e = a.log10().floor() as i32;
    let m = v / 10f64.powi(e);
    let m = format!("{m:.2}");
    let m = m.trim_end_matches('0').trim_end_matches('.');
    format!("{m}E{e}")
}

// ---------------------------------------------------------------------------------------------
// Canvas: a few anti-aliased primitives on an RgbImage.

struct Canvas {
    img: RgbImage,
}

impl Canvas {
    fn new(w: u32, h: u32) -> Self {
        Self {
            img: RgbImage::from_pixel(w, h, WHITE),
        }
    }

    /// Blends `colour` over pixel `(x, y)` with opacity `a` (ignored outside the image).
    fn blend(&mut self, x: i64, y: i64, colour: Rgb<u8>, a: f32) {
        if x < 0
            || y < 0
            || x >= i64::from(self.img.width())
            || y >= i64::from(self.img.height())
            || a <= 0.0
        {
            return;
        }
        let a = a.min(1.0);
        let p = self.img.get_pixel_mut(x as u32, y as u32);
        for (d, &s) in p.0.iter_mut().zip(&colour.0) {
            *d = (f32::from(*d) * (1.0 - a) + f32::from(s) * a).round() as u8;
        }
    }

    /// A filled disc centred at `(cx, cy)` (pixel centres are at `+0.5`).
    fn disc(&mut self, cx: f32, cy: f32, r: f32, colour: Rgb<u8>, alpha: f32) {
        let (x0, x1) = ((cx - r - 1.0).floor() as i64, (cx + r + 1.0).ceil() as i64);
        let (y0, y1) = ((cy - r - 1.0).floor() as i64, (cy + r + 1.0).ceil() as i64);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
                let cover = (r + 0.5 - d).clamp(0.0, 1.0);
                self.blend(x, y, colour, alpha * cover);
            }
        }
    }

    /// A segment of the given width, coverage-anti-aliased: each pixel in its bounding box is
    /// blended once, by how far its centre is from the segment.
    #[allow(clippy::too_many_arguments)] // two points, a width and a paint
    fn line(
        &mut self,
        x0: f32,
        y0: f32,
        x1: f32,
        y1: f32,
        width: f32,
        colour: Rgb<u8>,
        alpha: f32,
    ) {
        let half = width / 2.0;
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len2 = dx * dx + dy * dy;
        let (bx0, bx1) = (
            (x0.min(x1) - half - 1.0).floor() as i64,
            (x0.max(x1) + half + 1.0).ceil() as i64,
        );
        let (by0, by1) = (
            (y0.min(y1) - half - 1.0).floor() as i64,
            (y0.max(y1) + half + 1.0).ceil() as i64,
        );
        // Clip the box to the image so a far-off segment costs nothing.
        let (bx0, by0) = (bx0.max(0), by0.max(0));
        let (bx1, by1) = (
            bx1.min(i64::from(self.img.width())),
            by1.min(i64::from(self.img.height())),
        );
        for y in by0..by1 {
            for x in bx0..bx1 {
                let (qx, qy) = (x as f32 + 0.5 - x0, y as f32 + 0.5 - y0);
                let t = if len2 > 0.0 {
                    ((qx * dx + qy * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let d = ((qx - t * dx).powi(2) + (qy - t * dy).powi(2)).sqrt();
                let cover = (half + 0.5 - d).clamp(0.0, 1.0);
                self.blend(x, y, colour, alpha * cover);
            }
        }
    }

    fn fill_rect(&mut self, x: f32, y: f32, w: f32, h: f32, colour: Rgb<u8>) {
        for py in (y.round() as i64)..((y + h).round() as i64) {
            for px in (x.round() as i64)..((x + w).round() as i64) {
                self.blend(px, py, colour, 1.0);
            }
        }
    }

    /// A 1-pixel rectangle outline on whole pixels.
    fn rect_outline(&mut self, x: f32, y: f32, w: f32, h: f32, colour: Rgb<u8>) {
        let (x0, y0) = (x.round() as i64, y.round() as i64);
        let (x1, y1) = ((x + w).round() as i64, (y + h).round() as i64);
        for px in x0..=x1 {
            self.blend(px, y0, colour, 1.0);
            self.blend(px, y1, colour, 1.0);
        }
        for py in y0..=y1 {
            self.blend(x0, py, colour, 1.0);
            self.blend(x1, py, colour, 1.0);
        }
    }

    /// A frame around the whole image.
    fn frame(&mut self, colour: Rgb<u8>) {
        let (w, h) = (self.img.width() as f32, self.img.height() as f32);
        self.rect_outline(0.0, 0.0, w - 1.0, h - 1.0, colour);
    }

    /// `text` in the 5×7 font, each font pixel `scale`×`scale`, top-left corner at `(x, y)`.
    fn text(&mut self, x: f32, y: f32, text: &str, scale: u32, colour: Rgb<u8>) {
        let (x, y, s) = (x.round() as i64, y.round() as i64, i64::from(scale));
        for (k, ch) in text.chars().enumerate() {
            let rows = glyph(ch);
            let gx = x + k as i64 * 6 * s;
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        for dy in 0..s {
                            for dx in 0..s {
                                self.blend(gx + col * s + dx, y + r as i64 * s + dy, colour, 1.0);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The 5×7 bitmap of `ch`: seven rows, bit 4 the leftmost pixel. Lower case is drawn as upper
/// case; characters without a glyph as `?`.
fn glyph(ch: char) -> [u8; 7] {
    match ch.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        ' ' => [0; 7],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '=' => [0, 0, 0x1F, 0, 0x1F, 0, 0],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04],
    }
}

// ---------------------------------------------------------------------------------------------
// Files.

fn check_side(what: &str, side: u32) -> Result<(), VizError> {
    if (1..=MAX_SIDE).contains(&side) {
        Ok(())
    } else {
        Err(bad(format!("{what} {side} px: expected 1..={MAX_SIDE}")))
    }
}

/// Encodes `img` as PNG and writes it atomically: `<path>.tmp`, then a rename over `path`.
fn save(path: &Path, img: &RgbImage) -> Result<(), VizError> {
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|source| VizError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
    crate::files::write_atomic(path, &png).map_err(|source| VizError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty directory under the system temp dir.
    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("microdiff-viz-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn decode(path: &Path) -> RgbImage {
        image::open(path).unwrap().to_rgb8()
    }

    #[test]
    fn scatter_writes_a_decodable_png_of_the_right_size() {
        let dir = temp_dir("scatter");
        let path = dir.join("s.png");
        let data: Vec<f32> = (0..200).map(|i| (i as f32 * 0.37).sin() * 2.0).collect();
        let samples: Vec<f32> = (0..200).map(|i| (i as f32 * 0.11).cos()).collect();
        scatter_png(&path, &data, &samples, 300).unwrap();
        let img = decode(&path);
        assert_eq!(img.dimensions(), (300, 300));
        assert_eq!(crate::files::temporaries(&dir), Vec::<String>::new());
        // Both colours appear: grey data and blue-ish samples.
        assert!(img.pixels().any(|p| p.0 == DATA_GREY.0));
        assert!(
            img.pixels()
                .any(|p| i32::from(p.0[2]) > i32::from(p.0[0]) + 40)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn scatter_survives_degenerate_input() {
        for (d, s) in [
            (vec![], vec![]),
            (vec![1.0, 1.0], vec![]),
            (vec![f32::NAN, 0.0], vec![1e30, -1e30]),
        ] {
            let img = scatter_image(&d, &s, 64).unwrap();
            assert_eq!(img.dimensions(), (64, 64));
        }
        assert!(matches!(
            scatter_image(&[1.0], &[], 64),
            Err(VizError::BadInput { .. })
        ));
        assert!(matches!(
            scatter_image(&[], &[], 0),
            Err(VizError::BadInput { .. })
        ));
    }

    #[test]
    fn digit_grid_has_the_documented_size_and_ink() {
        let dir = temp_dir("digits");
        let path = dir.join("g.png");
        let mut images = vec![0.0f32; 3 * 64];
        images[64..128].fill(16.0); // second image all ink
        images[128] = f32::NAN;
        digit_grid_png(&path, &images, 2, 2, 3).unwrap();
        let img = decode(&path);
        // gap = 1, cell = 24: 2·25 + 1 = 51.
        assert_eq!(img.dimensions(), (51, 51));
        assert_eq!(img.get_pixel(1, 1).0, WHITE.0); // first cell, blank
        assert_eq!(img.get_pixel(26, 1).0, [0, 0, 0]); // second cell, full ink
        assert_eq!(img.get_pixel(1, 26).0, NAN_RED.0); // third cell, NaN pixel
        assert_eq!(img.get_pixel(0, 0).0, GAP_GREY.0);
        assert!(matches!(
            digit_grid_image(&images, 1, 2, 3),
            Err(VizError::BadInput { .. })
        ));
        assert!(matches!(
            digit_grid_image(&images[..10], 2, 2, 3),
            Err(VizError::BadInput { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn curves_decode_with_the_requested_size() {
        let dir = temp_dir("curve");
        let a: Vec<f64> = (0..500)
            .map(|i| 1.0 / (1.0 + i as f64 * 0.05) + 0.01)
            .collect();
        let b: Vec<f64> = (0..300)
            .map(|i| 0.5 / (1.0 + i as f64 * 0.02) + 0.02)
            .collect();
        let series: [(&str, &[f64]); 2] = [("train", &a), ("test", &b)];
        for (k, log_y) in [false, true].into_iter().enumerate() {
            let path = dir.join(format!("c{k}.png"));
            curve_png(&path, &series, (640, 400), log_y).unwrap();
            assert_eq!(decode(&path).dimensions(), (640, 400));
        }
        let path = dir.join("smooth.png");
        curve_png_smoothed(&path, &series, (320, 200), true, 25).unwrap();
        assert_eq!(decode(&path).dimensions(), (320, 200));
        // Empty, constant and all-NaN series still draw.
        let nan = [f64::NAN; 3];
        for s in [&[][..], &[2.0, 2.0][..], &nan[..]] {
            assert!(curve_image(&[("x", s)], (200, 120), true, 1).is_ok());
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn moving_average_is_centred_and_skips_non_finite() {
        let s = [1.0, 2.0, f64::NAN, 4.0, 5.0];
        let m = moving_average(&s, 3, f64::is_finite);
        assert_eq!(m[0], 1.5);
        assert_eq!(m[1], 1.5);
        assert_eq!(m[2], 3.0);
        assert_eq!(m[4], 4.5);
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(2000.0), "2000");
        assert_eq!(tick_label(0.0012), "0.0012");
        assert_eq!(tick_label(1e-5), "1E-5");
        assert_eq!(tick_label(2.5e7), "2.5E7");
        assert_eq!(linear_ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(step_label(10.05, 0.05), "10.05");
        assert_eq!(step_label(3.0 * 0.1, 0.1), "0.3");
        assert_eq!(step_label(1e-17, 0.1), "0");
        assert_eq!(step_label(20000.0, 5000.0), "20000");
    }

    #[test]
    fn save_reports_the_path_on_failure() {
        let path = std::env::temp_dir().join("microdiff-viz-no-such-dir/x/y.png");
        let err = scatter_png(&path, &[], &[], 16).unwrap_err();
        assert!(matches!(err, VizError::Io { .. }));
        assert!(err.to_string().contains("y.png"), "{err}");
    }
}
