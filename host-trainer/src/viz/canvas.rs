//! The canvas every picture is drawn on: an RGB buffer in memory behind plotters'
//! `BitMapBackend`, with the size checked before anything is allocated, and text drawn by our
//! own glyph placement from the embedded Noto Sans.
//!
//! plotters 0.3.7's `ab_glyph` text path places each glyph's bitmap at the pen position,
//! ignoring the glyph's left side bearing, which spaces letters unevenly ("princip al"), and
//! [`Canvas`] exists to draw text with the bearings. Layout sizes stay plotters' own (the sum of
//! advances and kerning, a height of `size/1.24`), so that its label areas and legends, which it
//! measures with the font registered by [`ensure_font`], agree with what is drawn.

use ab_glyph::{Font, FontRef, ScaleFont};
use plotters::backend::RGBPixel;
use plotters::coord::Shift;
use plotters::prelude::{BitMapBackend, DrawingArea, DrawingBackend, IntoDrawingArea};
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};

use super::{MAX_PIXELS, MAX_SIDE, VizError, bad, draw_err};

/// The family the embedded font is registered as: plotters' default family, so that any text
/// plotters measures on its own finds the font too.
pub(super) const FONT_FAMILY: &str = "sans-serif";

/// The embedded font, parsed once per process (`None` if it does not parse, which the tests
/// would catch).
fn font() -> Option<&'static FontRef<'static>> {
    static FONT: std::sync::OnceLock<Option<FontRef<'static>>> = std::sync::OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(ttf_noto_sans::REGULAR).ok())
        .as_ref()
}

/// Registers the embedded font with plotters (for its text measurements), once per process.
pub(super) fn ensure_font() -> Result<(), VizError> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, ttf_noto_sans::REGULAR)
            .is_ok()
    });
    if ok && font().is_some() {
        Ok(())
    } else {
        Err(VizError::Draw {
            what: "text",
            message: "the embedded Noto Sans font did not parse".into(),
        })
    }
}

/// The drawing area of a picture in memory.
pub(super) type Area<'a> = DrawingArea<Canvas<'a>, Shift>;

/// `what`'s size checked against [`MAX_SIDE`] and [`MAX_PIXELS`].
pub(super) fn check_size(what: &str, (w, h): (u32, u32)) -> Result<(), VizError> {
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(bad(format!(
            "{what}: {w}×{h} px; each side must be 1..={MAX_SIDE}"
        )));
    }
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(bad(format!(
            "{what}: {w}×{h} px is more than the {MAX_PIXELS} pixels a picture may have"
        )));
    }
    Ok(())
}

/// A white `w`×`h` picture with `draw` run on it. `what` names the picture in errors.
pub(super) fn render(
    what: &'static str,
    (w, h): (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<(), VizError>,
) -> Result<image::RgbImage, VizError> {
    check_size(what, (w, h))?;
    // No overflow: check_size bounds w·h·3 by 48 MiB.
    let buf = vec![255u8; w as usize * h as usize * 3];
    render_onto(what, (w, h), buf, draw)
}

/// [`render`] on a buffer that already holds `w·h` RGB pixels.
pub(super) fn render_onto(
    what: &'static str,
    (w, h): (u32, u32),
    mut buf: Vec<u8>,
    draw: impl FnOnce(&Area<'_>) -> Result<(), VizError>,
) -> Result<image::RgbImage, VizError> {
    check_size(what, (w, h))?;
    ensure_font()?;
    {
        // Checks the buffer's length (with_buffer would panic on a wrong one).
        let bitmap = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut buf, (w, h))
            .map_err(draw_err(what))?;
        let root = Canvas(bitmap).into_drawing_area();
        draw(&root)?;
        root.present().map_err(draw_err(what))?;
    }
    image::RgbImage::from_raw(w, h, buf).ok_or_else(|| VizError::Draw {
        what,
        message: format!("the buffer does not hold {w}×{h} RGB pixels"),
    })
}

/// plotters' bitmap backend with our text drawing (see the module doc); everything else is
/// passed through.
pub(super) struct Canvas<'a>(BitMapBackend<'a, RGBPixel>);

/// The embedded font is missing (see [`font`]).
#[derive(Debug)]
struct NoFont;

impl std::fmt::Display for NoFont {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the embedded font did not parse")
    }
}

impl std::error::Error for NoFont {}

type DrawResult<E> = Result<(), DrawingErrorKind<E>>;

impl DrawingBackend for Canvas<'_> {
    type ErrorType = <BitMapBackend<'static, RGBPixel> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> DrawResult<Self::ErrorType> {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> DrawResult<Self::ErrorType> {
        self.0.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> DrawResult<Self::ErrorType> {
        self.0.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> DrawResult<Self::ErrorType> {
        self.0.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> DrawResult<Self::ErrorType> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> DrawResult<Self::ErrorType> {
        self.0.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> DrawResult<Self::ErrorType> {
        self.0.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> DrawResult<Self::ErrorType> {
        self.0.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> DrawResult<Self::ErrorType> {
        self.0.blit_bitmap(pos, size, src)
    }

    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> DrawResult<Self::ErrorType> {
        let colour = style.color();
        if colour.alpha == 0.0 {
            return Ok(());
        }
        let font = font().ok_or_else(|| DrawingErrorKind::FontError(Box::new(NoFont)))?;
        let size = style.size() as f32;
        let scaled = font.as_scaled(size);
        // The box plotters laid out for this text: anchor it the way plotters would.
        let (bw, bh) = self.estimate_text_size(text, style)?;
        let (bw, bh) = (bw as i32, bh as i32);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -bw,
            HPos::Center => -bw / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -bh / 2,
            VPos::Bottom => -bh,
        };
        // Capital letters centred in the box: text reads centred on a tick or a legend swatch.
        let cap = scaled
            .outline_glyph(scaled.scaled_glyph('H'))
            .map_or(size * 0.52, |g| g.px_bounds().height());
        let baseline = bh as f32 / 2.0 + cap / 2.0;
        let transform = style.transform();
        let (w, h) = self.get_size();
        let mut pen = 0.0f32;
        let mut prev = None;
        let mut result = Ok(());
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                pen += scaled.kern(p, id);
            }
            prev = Some(id);
            let glyph = id.with_scale_and_position(size, ab_glyph::point(pen, baseline));
            pen += scaled.h_advance(id);
            let Some(outline) = scaled.outline_glyph(glyph) else {
                continue; // a space
            };
            let min = outline.px_bounds().min;
            outline.draw(|gx, gy, coverage| {
                let (x, y) = (min.x as i32 + gx as i32 + dx, min.y as i32 + gy as i32 + dy);
                let (x, y) = transform.transform(x, y);
                let (x, y) = (pos.0 + x, pos.1 + y);
                if result.is_ok() && x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                    let c = BackendColor {
                        alpha: colour.alpha * f64::from(coverage.clamp(0.0, 1.0)),
                        rgb: colour.rgb,
                    };
                    result = self.0.draw_pixel((x, y), c);
                }
            });
        }
        result
    }
}
