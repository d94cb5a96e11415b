//! Labelled grids of grayscale images of any shape: one group of images (a class, say) per
//! block of rows, the group's label beside its first row, wrapped at a column count chosen to
//! make the picture roughly square, so no number of images gives a one-cell-tall strip.

use std::path::Path;

use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{INK, MAX_PIXELS, MAX_SIDE, VizError, bad, draw_err, ensure_font, render_onto, save};

/// How values map to gray.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum GrayMap {
    /// The low end of the range is black, the high end white (photographs, MNIST pixels).
    #[default]
    LowIsBlack,
    /// The low end is white, the high end black: ink on paper (the 8×8 digits, whose values
    /// count inked pixels).
    LowIsWhite,
}

/// One labelled group of images, started on a row of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageGroup<'a> {
    /// Written left of the group's first row ("class 3"); empty for none.
    pub label: String,
    /// Images of [`GridOptions::shape`], row-major, laid end to end.
    pub images: &'a [f32],
}

/// What an image grid looks like. `GridOptions::default()` is for 8×8 digits on the 0..=16
/// scale, drawn as ink on paper.
#[derive(Debug, Clone, PartialEq)]
pub struct GridOptions<'a> {
    /// `(height, width)` of one image, in pixels of the data.
    pub shape: (usize, usize),
    /// Values mapped to the two ends of the gray scale; values outside are clamped, NaN is
    /// drawn red. Must be finite with `lo < hi`.
    pub value_range: (f32, f32),
    /// Which end is black.
    pub gray: GrayMap,
    /// Screen pixels per data pixel; `None` picks one that makes a cell about 32 px. It is
    /// lowered (to 1 at least) when the picture would be larger than `max_pixels`.
    pub scale: Option<u32>,
    /// Most images in one row of the grid.
    pub max_cols: usize,
    /// A caption above the grid.
    pub title: Option<&'a str>,
    /// Largest picture, in pixels; [`MAX_PIXELS`] at most (larger values are lowered to it).
    pub max_pixels: u64,
}

impl Default for GridOptions<'_> {
    fn default() -> Self {
        Self {
            shape: (8, 8),
            value_range: (0.0, 16.0),
            gray: GrayMap::LowIsWhite,
            scale: None,
            max_cols: 32,
            title: None,
            max_pixels: MAX_PIXELS,
        }
    }
}

/// Gaps between cells, and frames around them: light enough not to read as ink, dark enough
/// to show where a white cell ends.
const GAP_GREY: [u8; 3] = [170, 170, 170];
/// A NaN pixel (loud on purpose).
const NAN_RED: [u8; 3] = [230, 0, 0];
/// Text height of labels, title and notes, in pixels.
const FONT: u32 = 15;
/// White space around the grid and between label and grid.
const MARGIN: u32 = 8;
/// The cell size [`GridOptions::scale`]`: None` aims for.
const TARGET_CELL: usize = 32;

/// A labelled grid of `groups` in a PNG. See [`image_grid_image`].
pub fn image_grid_png(
    path: &Path,
    groups: &[ImageGroup<'_>],
    opts: &GridOptions<'_>,
) -> Result<(), VizError> {
    save(path, &image_grid_image(groups, opts)?)
}

/// The picture of [`image_grid_png`]: every group starts a new row and fills rows of `cols`
/// cells, its label right-aligned left of its first row; a wider gap separates groups. `cols`
/// is at most `opts.max_cols` and the longest group, and is chosen to make the picture about
/// as wide as tall (300 images of one class: 17 or 18 columns). Each cell is framed in grey.
///
/// When the picture would exceed `opts.max_pixels` or [`MAX_SIDE`] even at one screen pixel per
/// data pixel, only the first images of each group are drawn, and a line under the title says
/// how many. An error is returned only when one image per group does not fit either.
pub fn image_grid_image(
    groups: &[ImageGroup<'_>],
    opts: &GridOptions<'_>,
) -> Result<image::RgbImage, VizError> {
    let (h, w) = opts.shape;
    let len = h
        .checked_mul(w)
        .filter(|&l| l > 0)
        .ok_or_else(|| bad(format!("image grid: images of {h}×{w} pixels")))?;
    let (lo, hi) = opts.value_range;
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(bad(format!(
            "image grid: value range {lo}..{hi} is not a finite, increasing range"
        )));
    }
    if opts.max_cols == 0 || opts.scale == Some(0) {
        return Err(bad(
            "image grid: max_cols and scale must be at least 1".into()
        ));
    }
    let mut counts = Vec::with_capacity(groups.len());
    for (k, g) in groups.iter().enumerate() {
        if !g.images.len().is_multiple_of(len) {
            return Err(bad(format!(
                "image grid: group {k} ({:?}): {} values is not a list of {h}×{w} images",
                g.label,
                g.images.len()
            )));
        }
        counts.push(g.images.len() / len);
    }
    let most = counts.iter().copied().max().unwrap_or(0);
    if most == 0 {
        return Err(bad("image grid: no images to draw".into()));
    }

    ensure_font()?;
    let label_font = super::text(FONT, INK);
    let mut label_w = 0u32;
    for g in groups.iter().filter(|g| !g.label.is_empty()) {
        let (tw, _) = label_font
            .font
            .box_size(&g.label)
            .map_err(draw_err("image grid labels"))?;
        label_w = label_w.max(tw + MARGIN);
    }

    // Largest scale that fits with every image; else scale 1 and the most images per group
    // that fit (a binary search: the size grows with the count).
    let start = opts
        .scale
        .unwrap_or_else(|| TARGET_CELL.div_ceil(h.max(w)).clamp(1, 64) as u32);
    let max_pixels = opts.max_pixels.min(MAX_PIXELS);
    let fits = |l: &Layout| l.w <= MAX_SIDE && l.h <= MAX_SIDE && l.pixels() <= max_pixels;
    let plan = |scale: u32, shown: usize, note: bool| {
        Layout::new(&Plan {
            shape: (h, w),
            counts: &counts,
            shown,
            scale,
            max_cols: opts.max_cols,
            label_w,
            header_lines: usize::from(opts.title.is_some()) + usize::from(note),
        })
    };
    let mut layout = None;
    for scale in (1..=start).rev() {
        let l = plan(scale, most, false);
        if fits(&l) {
            layout = Some(l);
            break;
        }
        // Halve the scale each try past 8: a huge request settles in a few steps.
        if scale > 8 && !fits(&plan(scale / 2, most, false)) {
            continue;
        }
    }
    let layout = match layout {
        Some(l) => l,
        None => {
            let (mut ok, mut over) = (0, most);
            while over - ok > 1 {
                let mid = ok + (over - ok) / 2;
                if fits(&plan(1, mid, true)) {
                    ok = mid;
                } else {
                    over = mid;
                }
            }
            if ok == 0 {
                return Err(bad(format!(
                    "image grid: one {h}×{w} image for each of {} groups is more than \
                     {max_pixels} pixels",
                    groups.len()
                )));
            }
            plan(1, ok, true)
        }
    };

    // Cells first, straight into the buffer; then the text through plotters on top.
    let (pw, ph) = (layout.w as usize, layout.h as usize);
    let mut buf = vec![255u8; pw * ph * 3];
    let s = layout.scale as usize;
    let gap = layout.gap as usize;
    let mut fill = |x0: usize, y0: usize, dx: usize, dy: usize, rgb: [u8; 3]| {
        for y in y0..y0 + dy {
            for px in buf[(y * pw + x0) * 3..(y * pw + x0 + dx) * 3].chunks_exact_mut(3) {
                px.copy_from_slice(&rgb);
            }
        }
    };
    let span = hi - lo;
    for (g, group) in groups.iter().enumerate() {
        let shown = counts[g].min(layout.shown);
        for (k, img) in group.images.chunks_exact(len).take(shown).enumerate() {
            let (x0, y0) = layout.cell(g, k);
            let (x0, y0) = (x0 as usize, y0 as usize);
            fill(
                x0 - gap,
                y0 - gap,
                w * s + 2 * gap,
                h * s + 2 * gap,
                GAP_GREY,
            );
            for (i, &v) in img.iter().enumerate() {
                let rgb = if v.is_nan() {
                    NAN_RED
                } else {
                    let t = ((v - lo) / span).clamp(0.0, 1.0);
                    let t = match opts.gray {
                        GrayMap::LowIsBlack => t,
                        GrayMap::LowIsWhite => 1.0 - t,
                    };
                    [(255.0 * t).round() as u8; 3]
                };
                fill(x0 + (i % w) * s, y0 + (i / w) * s, s, s, rgb);
            }
        }
    }

    let note = (layout.shown < most).then(|| {
        format!(
            "showing the first {} of up to {most} images per group (picture size limit)",
            layout.shown
        )
    });
    render_onto("image grid", (layout.w, layout.h), buf, |root| {
        let err = draw_err("image grid");
        let line = (FONT + FONT / 2) as i32;
        let mut y = MARGIN as i32;
        let centre = (layout.w / 2) as i32;
        let top = Pos::new(HPos::Center, VPos::Top);
        if let Some(title) = opts.title {
            let style = super::text(FONT + 2, INK).pos(top);
            root.draw_text(title, &style, (centre, y)).map_err(&err)?;
            y += line;
        }
        if let Some(note) = &note {
            let style = super::text(FONT - 2, INK).pos(top);
            root.draw_text(note, &style, (centre, y)).map_err(&err)?;
        }
        let right = label_font.pos(Pos::new(HPos::Right, VPos::Center));
        for (g, group) in groups.iter().enumerate() {
            if group.label.is_empty() || counts[g] == 0 {
                continue;
            }
            let (x0, y0) = layout.cell(g, 0);
            let mid = (y0 + (h as u32 * layout.scale) / 2) as i32;
            root.draw_text(&group.label, &right, ((x0 - MARGIN) as i32, mid))
                .map_err(&err)?;
        }
        Ok(())
    })
}

/// What [`Layout::new`] lays out.
struct Plan<'a> {
    shape: (usize, usize),
    counts: &'a [usize],
    /// Images shown per group, at most.
    shown: usize,
    scale: u32,
    max_cols: usize,
    label_w: u32,
    header_lines: usize,
}

/// Where everything goes. Sizes are `u64` while being summed, so that no request, however
/// large, overflows before [`Layout::pixels`] can refuse it.
struct Layout {
    w: u32,
    h: u32,
    scale: u32,
    gap: u32,
    cols: usize,
    shown: usize,
    /// Top of each group's first row of cells.
    group_y: Vec<u64>,
    grid_x: u64,
    cell_w: u64,
    cell_h: u64,
    pixels: u64,
}

impl Layout {
    fn new(p: &Plan<'_>) -> Self {
        let gap = (p.scale / 2).max(1);
        let (cell_w, cell_h) = (
            p.shape.1 as u64 * u64::from(p.scale),
            p.shape.0 as u64 * u64::from(p.scale),
        );
        let (g64, step_h) = (u64::from(gap), cell_h + u64::from(gap));
        let shown: Vec<usize> = p.counts.iter().map(|&n| n.min(p.shown)).collect();
        let widest = shown
            .iter()
            .copied()
            .max()
            .unwrap_or(1)
            .clamp(1, p.max_cols);
        let rows = |cols: usize| -> u64 { shown.iter().map(|n| n.div_ceil(cols) as u64).sum() };
        // Columns: the aspect nearest square (in log ratio), cells left empty costing a little.
        let total: usize = shown.iter().sum();
        let cols = (1..=widest)
            .min_by(|&a, &b| {
                let cost = |c: usize| {
                    let r = rows(c).max(1);
                    let aspect = (c as f64 * (cell_w + g64) as f64) / (r as f64 * step_h as f64);
                    let empty = (r as f64 * c as f64 - total as f64) / (r as f64 * c as f64);
                    aspect.ln().abs() + 0.5 * empty
                };
                cost(a).total_cmp(&cost(b))
            })
            .unwrap_or(1);
        let group_sep = u64::from(FONT / 2).max(3 * g64);
        let header = p.header_lines as u64 * u64::from(FONT + FONT / 2);
        let mut y = u64::from(MARGIN) + header + g64;
        let mut group_y = Vec::with_capacity(shown.len());
        for (k, &n) in shown.iter().enumerate() {
            if k > 0 {
                y += group_sep;
            }
            group_y.push(y);
            y += n.div_ceil(cols).max(1) as u64 * step_h;
        }
        let grid_x = u64::from(MARGIN + p.label_w) + g64;
        let w = grid_x + cols as u64 * (cell_w + g64) + u64::from(MARGIN);
        let h = y + u64::from(MARGIN);
        let clip = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Self {
            w: clip(w),
            h: clip(h),
            scale: p.scale,
            gap,
            cols,
            shown: p.shown,
            group_y,
            grid_x,
            cell_w,
            cell_h,
            pixels: w.saturating_mul(h),
        }
    }

    fn pixels(&self) -> u64 {
        self.pixels
    }

    /// Top-left pixel of image `k` of group `g` (only called on layouts that fit, whose
    /// coordinates fit in u32).
    fn cell(&self, g: usize, k: usize) -> (u32, u32) {
        let (r, c) = ((k / self.cols) as u64, (k % self.cols) as u64);
        let g64 = u64::from(self.gap);
        let x = self.grid_x + c * (self.cell_w + g64);
        let y = self.group_y[g] + r * (self.cell_h + g64);
        (x as u32, y as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{look, temp_dir};
    use super::*;

    /// A `h`×`w` image with a diagonal bar (value `hi`) on a `lo` background, shifted by `k`.
    fn bar(h: usize, w: usize, k: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..h * w)
            .map(|i| if (i / w + k) % w == i % w { hi } else { lo })
            .collect()
    }

    #[test]
    fn three_hundred_images_of_one_class_make_a_roughly_square_grid() {
        let images: Vec<f32> = (0..300).flat_map(|k| bar(8, 8, k, 0.0, 16.0)).collect();
        let groups = [ImageGroup {
            label: "class 3".into(),
            images: &images,
        }];
        let img = image_grid_image(&groups, &GridOptions::default()).unwrap();
        look("grid-class3-n300.png", &img);
        let (w, h) = img.dimensions();
        let ratio = f64::from(w) / f64::from(h);
        assert!((0.7..1.5).contains(&ratio), "{w}×{h}");
        assert!(h > 200, "{w}×{h}");
        // Unlabelled and at a fixed scale of 4, the one group of 300 wraps the same way.
        let unlabelled = [ImageGroup {
            label: String::new(),
            images: &images,
        }];
        let opts = GridOptions {
            scale: Some(4),
            ..GridOptions::default()
        };
        let img = image_grid_image(&unlabelled, &opts).unwrap();
        let (w, h) = img.dimensions();
        assert!(
            (0.7..1.5).contains(&(f64::from(w) / f64::from(h))),
            "{w}×{h}"
        );
    }

    #[test]
    fn labelled_classes_of_any_shape_draw_with_their_values_mapped_to_gray() {
        // Ten classes of four 16×16 images on the 0..255 scale.
        let per: Vec<Vec<f32>> = (0..10)
            .map(|c| {
                (0..4)
                    .flat_map(|k| bar(16, 16, c + k, 0.0, 255.0))
                    .collect()
            })
            .collect();
        let groups: Vec<ImageGroup<'_>> = per
            .iter()
            .enumerate()
            .map(|(c, images)| ImageGroup {
                label: format!("class {c}"),
                images,
            })
            .collect();
        let opts = GridOptions {
            shape: (16, 16),
            value_range: (0.0, 255.0),
            gray: GrayMap::LowIsBlack,
            title: Some("samples, 16×16"),
            ..GridOptions::default()
        };
        let img = image_grid_image(&groups, &opts).unwrap();
        look("grid-16x16-classes.png", &img);
        // Auto scale 2: 32 px cells; four per row (the longest group), one row per class.
        let layout_w = img.width();
        assert!(layout_w < 4 * 40 + 120, "{layout_w}");
        assert!(img.height() > 10 * 32, "{}", img.height());
        // Black background (LowIsBlack, value 0) and white bars both appear.
        assert!(img.pixels().filter(|p| p.0 == [0, 0, 0]).count() > 5000);
        assert!(img.pixels().filter(|p| p.0 == [255, 255, 255]).count() > 1000);
        // The labels put dark text in the left margin, left of the first cell.
        let dark_left = (0..img.height())
            .flat_map(|y| (0..60).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 100)
            .count();
        assert!(dark_left > 200, "{dark_left}");
    }

    #[test]
    fn values_are_clamped_and_nan_is_red() {
        let mut images = vec![-5.0f32; 64];
        images.extend(vec![99.0f32; 64]);
        images.push(f32::NAN);
        images.extend(vec![8.0f32; 63]);
        let three = [ImageGroup {
            label: String::new(),
            images: &images,
        }];
        let opts = GridOptions {
            scale: Some(2),
            ..GridOptions::default()
        };
        let img = image_grid_image(&three, &opts).unwrap();
        // Scale 2: each data pixel is 2×2 screen pixels. Below 0 is white paper, above 16 full
        // ink, NaN red, 8 mid-gray; the grid's frames are GAP_GREY and there is no text.
        let count = |rgb: [u8; 3]| img.pixels().filter(|p| p.0 == rgb).count();
        assert_eq!(count([0, 0, 0]), 64 * 4);
        assert_eq!(count(NAN_RED), 4);
        assert_eq!(count([128, 128, 128]), 63 * 4);
        let img2 = image_grid_image(
            &[ImageGroup {
                label: String::new(),
                images: &images[128..],
            }],
            &GridOptions::default(),
        )
        .unwrap();
        // Auto scale 4 for 8×8, one gap pixel: the 8.0 pixel right of the NaN is mid-gray.
        assert_eq!(img2.get_pixel(MARGIN + 2, MARGIN + 2).0, NAN_RED);
        assert_eq!(
            img2.get_pixel(MARGIN + 2 + 4, MARGIN + 2).0,
            [128, 128, 128]
        );
    }

    #[test]
    fn huge_requests_stay_within_the_pixel_budget() {
        let images: Vec<f32> = (0..5000).flat_map(|k| bar(8, 8, k, 0.0, 16.0)).collect();
        let groups = [
            ImageGroup {
                label: "class 0".into(),
                images: &images,
            },
            ImageGroup {
                label: "class 1".into(),
                images: &images[..64 * 10],
            },
        ];
        let opts = GridOptions {
            scale: Some(1000),
            max_pixels: 200_000,
            ..GridOptions::default()
        };
        let img = image_grid_image(&groups, &opts).unwrap();
        look("grid-truncated.png", &img);
        assert!(u64::from(img.width()) * u64::from(img.height()) <= 200_000);
        // Not even one image per group fits: a typed error, nothing allocated.
        let opts = GridOptions {
            max_pixels: 100,
            ..GridOptions::default()
        };
        assert!(matches!(
            image_grid_image(&groups, &opts),
            Err(VizError::BadInput { .. })
        ));
    }

    #[test]
    fn bad_input_is_an_error() {
        let one = vec![0.0f32; 64];
        let group = |images| {
            [ImageGroup {
                label: "x".into(),
                images,
            }]
        };
        for opts in [
            GridOptions {
                shape: (0, 8),
                ..GridOptions::default()
            },
            GridOptions {
                shape: (usize::MAX, 2),
                ..GridOptions::default()
            },
            GridOptions {
                value_range: (1.0, 1.0),
                ..GridOptions::default()
            },
            GridOptions {
                value_range: (0.0, f32::NAN),
                ..GridOptions::default()
            },
            GridOptions {
                max_cols: 0,
                ..GridOptions::default()
            },
            GridOptions {
                scale: Some(0),
                ..GridOptions::default()
            },
        ] {
            assert!(matches!(
                image_grid_image(&group(&one), &opts),
                Err(VizError::BadInput { .. })
            ));
        }
        for images in [&one[..10], &[][..]] {
            assert!(matches!(
                image_grid_image(&group(images), &GridOptions::default()),
                Err(VizError::BadInput { .. })
            ));
        }
        // A ragged group after a whole one is refused, and the error names it.
        let groups = [
            ImageGroup {
                label: "whole".into(),
                images: &one,
            },
            ImageGroup {
                label: "ragged".into(),
                images: &one[..63],
            },
        ];
        let err = image_grid_image(&groups, &GridOptions::default()).unwrap_err();
        assert!(matches!(err, VizError::BadInput { .. }), "{err}");
        assert!(err.to_string().contains("group 1"), "{err}");
        assert!(err.to_string().contains("ragged"), "{err}");
    }

    #[test]
    fn the_real_digits_make_a_labelled_ten_class_grid() {
        let ds = crate::data::digits().unwrap();
        let labels = ds.labels.as_deref().unwrap();
        // The first ten images of each class, as the demo draws its samples.
        let per: Vec<Vec<f32>> = (0..10u16)
            .map(|c| {
                (0..labels.len())
                    .filter(|&i| labels[i] == c)
                    .take(10)
                    .flat_map(|i| ds.x[i * 64..(i + 1) * 64].to_vec())
                    .collect()
            })
            .collect();
        let groups: Vec<ImageGroup<'_>> = per
            .iter()
            .enumerate()
            .map(|(c, images)| ImageGroup {
                label: format!("class {c}"),
                images,
            })
            .collect();
        let opts = GridOptions {
            title: Some("UCI digits, 10 per class"),
            ..GridOptions::default()
        };
        let img = image_grid_image(&groups, &opts).unwrap();
        look("grid-digits-10x10.png", &img);
        // Ten 32 px cells (+2 px gaps) across, ten rows down: one row per class.
        assert!(
            img.width() >= 10 * 34 && img.width() < 10 * 34 + 120,
            "{}",
            img.width()
        );
        assert!(
            img.height() >= 10 * 34 && img.height() < 10 * 34 + 150,
            "{}",
            img.height()
        );
    }

    #[test]
    fn image_grid_png_writes_a_decodable_file_atomically() {
        let dir = temp_dir("grid");
        let path = dir.join("g.png");
        let images: Vec<f32> = (0..20).flat_map(|k| bar(28, 28, k, 0.0, 255.0)).collect();
        let groups = [ImageGroup {
            label: "class 7".into(),
            images: &images,
        }];
        let opts = GridOptions {
            shape: (28, 28),
            value_range: (0.0, 255.0),
            gray: GrayMap::LowIsBlack,
            ..GridOptions::default()
        };
        image_grid_png(&path, &groups, &opts).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert!(img.width() > 100 && img.height() > 100);
        assert_eq!(crate::files::temporaries(&dir), Vec::<String>::new());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
