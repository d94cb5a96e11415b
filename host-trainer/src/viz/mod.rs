//! PNG pictures of training and sampling, drawn with `plotters`: loss curves
//! ([`curves_png`], [`loss_curve_png`]), 2-D scatter plots with the reference data and one
//! colour per class ([`scatter_classes_png`]), scatter plots of data of any dimension through a
//! [`Projection`] ([`projection_png`]), and labelled grids of grayscale images of any shape
//! ([`image_grid_png`]); and the picture of drawn samples chosen by their shape
//! ([`samples_png`]). The plots and grids have `*_image` twins that return the picture instead
//! of writing it ([`curves_image`], [`scatter_classes_image`], [`projection_image`],
//! [`image_grid_image`]); what a picture looks like is set by an options struct
//! ([`CurveOptions`], [`ScatterOptions`], [`GridOptions`]) whose `Default` suits the common
//! case.
//!
//! What this module promises:
//! * **Atomic files.** Every `*_png` function draws into an RGB buffer in memory, encodes the
//!   PNG there and hands it to [`crate::files::write_atomic`]: a reader sees the old file or
//!   the new one, and a failed write leaves no file (and no temporary) behind. The parent
//!   directory must exist. The `*_image` functions return the picture instead.
//! * **Bounded memory.** No picture is larger than [`MAX_SIDE`] pixels a side or
//!   [`MAX_PIXELS`] pixels in all (48 MiB of RGB). Sizes the caller names are checked against
//!   that; an image grid shrinks its cells, and then shows only the first images of each group
//!   (saying so in the picture), rather than grow past it.
//! * **Typed errors, no panics on data.** Lengths that do not make whole points or images,
//!   empty or out-of-range sizes, and non-finite ranges are [`VizError::BadInput`]; non-finite
//!   values in the data are skipped (curves, scatter plots) or drawn red (image grids).
//! * **No system libraries.** Text is rasterised by `ab_glyph` from Noto Sans Regular,
//!   embedded by the `ttf-noto-sans` crate (the font is under the Apache License 2.0, the crate
//!   MIT or Apache-2.0); see `canvas` for why we place the glyphs ourselves.
//! * **Determinism.** A picture is a pure function of its inputs (the projection's principal
//!   components included: fixed start vectors, fixed subsample).

mod axis;
mod canvas;
mod curve;
mod grid;
mod samples;
mod scatter;

use std::path::{Path, PathBuf};

use image::{ImageEncoder, RgbImage};
use plotters::prelude::{Color, RGBColor};
use plotters::style::{FontFamily, TextStyle};

use canvas::{FONT_FAMILY, ensure_font, render, render_onto};

pub use curve::{
    AUTO_LOG_RATIO, CurveOptions, Smoothing, YScale, curves_image, curves_png, loss_curve_png,
};
pub use grid::{GrayMap, GridOptions, ImageGroup, image_grid_image, image_grid_png};
pub use samples::{Drawn, Samples, samples_png};
pub use scatter::{
    Projection, ScatterData, ScatterOptions, projection_image, projection_png,
    scatter_classes_image, scatter_classes_png,
};

/// What went wrong drawing or writing a picture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VizError {
    /// Writing or renaming the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file being written.
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
    /// The arguments do not describe a picture (lengths, sizes, ranges).
    #[error("{what}")]
    BadInput {
        /// What is wrong, with expected and found values.
        what: String,
    },
    /// plotters failed to draw (or the embedded font did not load).
    #[error("drawing {what}: {message}")]
    Draw {
        /// The picture being drawn.
        what: &'static str,
        /// What plotters said.
        message: String,
    },
}

fn bad(what: String) -> VizError {
    VizError::BadInput { what }
}

/// An error-mapping closure for plotters' results while drawing `what`.
fn draw_err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> VizError {
    move |e| VizError::Draw {
        what,
        message: e.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Limits, colours, text.

/// Largest picture side, in pixels.
pub const MAX_SIDE: u32 = 8192;
/// Largest picture area, in pixels: 16 Mi pixels are 48 MiB of RGB, the most one picture may
/// hold in memory (twice, with its PNG) whatever the caller asks for.
pub const MAX_PIXELS: u64 = 16 << 20;

/// Series and class colours: matplotlib's `tab10`, which stays distinguishable for common
/// colour blindness in its first few entries. More series or classes than ten reuse them.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// Text, axes and frames.
const INK: RGBColor = RGBColor(40, 40, 40);
/// Major gridlines.
const GRID_BOLD: RGBColor = RGBColor(215, 215, 215);
/// Minor gridlines.
const GRID_LIGHT: RGBColor = RGBColor(238, 238, 238);

/// Text of `px` pixels in the embedded font.
fn text(px: u32, colour: RGBColor) -> TextStyle<'static> {
    let mut style = TextStyle::from((FontFamily::Name(FONT_FAMILY), f64::from(px)));
    style.color = colour.to_backend_color();
    style
}

// ---------------------------------------------------------------------------------------------
// Files.

/// Encodes `img` as PNG and writes it with [`crate::files::write_atomic`].
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
    pub(super) fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("microdiff-viz-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Where pictures go for a person to look at, when `MICRODIFF_VIZ_LOOK` names a folder.
    pub(super) fn look(name: &str, img: &RgbImage) {
        if let Some(dir) = std::env::var_os("MICRODIFF_VIZ_LOOK") {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).unwrap();
            save(&dir.join(name), img).unwrap();
        }
    }

    #[test]
    fn the_embedded_font_registers_and_draws_ink() {
        let img = render("text test", (120, 40), |root| {
            root.draw_text("loss 0.5", &text(20, INK), (5, 5))
                .map_err(draw_err("text test"))
        })
        .unwrap();
        let dark = img.pixels().filter(|p| p.0[0] < 128).count();
        assert!(dark > 30, "only {dark} dark pixels: no text drawn");
    }

    #[test]
    fn sizes_past_the_limits_are_refused_before_allocating() {
        for size in [(0, 10), (10, 0), (MAX_SIDE + 1, 10), (MAX_SIDE, MAX_SIDE)] {
            let r = render("big", size, |_| Ok(()));
            assert!(matches!(r, Err(VizError::BadInput { .. })), "{size:?}");
        }
        assert!(render("ok", (MAX_SIDE, 16), |_| Ok(())).is_ok());
    }

    #[test]
    fn a_failed_write_leaves_no_file_and_names_the_path() {
        let dir = temp_dir("unwritable");
        // A path under a missing directory, and a path that is a directory.
        let missing = dir.join("no-such-dir/y.png");
        let img = RgbImage::new(4, 4);
        let err = save(&missing, &img).unwrap_err();
        assert!(matches!(err, VizError::Io { .. }));
        assert!(err.to_string().contains("y.png"), "{err}");
        let empty = ScatterData {
            reference: &[],
            samples: &[],
            dim: 2,
            labels: None,
        };
        let opts = ScatterOptions {
            size: 200,
            ..ScatterOptions::default()
        };
        let err = scatter_classes_png(&dir, &empty, &opts).unwrap_err();
        assert!(matches!(err, VizError::Io { .. }), "{err}");
        assert_eq!(crate::files::temporaries(&dir), Vec::<String>::new());
        assert!(!missing.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
