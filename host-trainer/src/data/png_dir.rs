//! A directory of grayscale PNGs, flat (`root/*.png`) or one subdirectory per class
//! (`root/<label>/*.png`). The rules are on [`super::load`].

use std::path::{Path, PathBuf};

use image::{DynamicImage, GenericImageView};

use super::{DataError, Dataset, file_name, io_err};

/// Loads the directory `root`.
pub(super) fn load(root: &Path) -> Result<Dataset, DataError> {
    let (pngs, dirs) = list(root)?;
    let mut images = Images::default();
    let (labels, classes) = match (pngs.is_empty(), dirs.is_empty()) {
        (false, false) => {
            return Err(DataError::MixedLayout {
                path: root.to_path_buf(),
            });
        }
        (_, true) => {
            for p in &pngs {
                images.push(p)?;
            }
            (None, 0)
        }
        (true, false) => {
            let names: Vec<String> = dirs.iter().map(|d| file_name(d)).collect();
            // Integer names keep their value; otherwise the sorted position is the label.
            let numeric: Option<Vec<u16>> = names
                .iter()
                .map(|n| n.parse::<u16>().ok().filter(|&l| l != u16::MAX))
                .collect();
            let ids = numeric.unwrap_or_else(|| (0..dirs.len() as u16).collect());
            let mut labels = Vec::new();
            for (dir, &id) in dirs.iter().zip(&ids) {
                let (pngs, sub) = list(dir)?;
                if let Some(s) = sub.first() {
                    return Err(DataError::MixedLayout { path: s.clone() });
                }
                for p in &pngs {
                    images.push(p)?;
                    labels.push(id);
                }
            }
            let classes = ids.iter().map(|&l| usize::from(l) + 1).max().unwrap_or(0);
            (Some(labels), classes)
        }
    };
    let Some((w, h, _)) = images.first else {
        return Err(DataError::Empty {
            path: root.to_path_buf(),
        });
    };
    Ok(Dataset {
        name: file_name(root),
        x: images.x,
        dim: (w * h) as usize,
        shape: vec![h as usize, w as usize],
        labels,
        classes,
    })
}

/// `(png files, subdirectories)` of `dir`, each sorted by name; hidden entries skipped.
fn list(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), DataError> {
    let mut pngs = Vec::new();
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|source| io_err(dir, source))? {
        let entry = entry.map_err(|source| io_err(dir, source))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            dirs.push(path);
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"))
        {
            pngs.push(path);
        }
    }
    pngs.sort();
    dirs.sort();
    Ok((pngs, dirs))
}

/// Images read so far, all of the first one's size.
#[derive(Default)]
struct Images {
    /// (width, height, path) of the first image.
    first: Option<(u32, u32, PathBuf)>,
    /// Pixel values, row-major, image after image. // (n, height · width)
    x: Vec<f32>,
}

impl Images {
    fn push(&mut self, path: &Path) -> Result<(), DataError> {
        let img = image::open(path).map_err(|source| DataError::Image {
            path: path.to_path_buf(),
            source,
        })?;
        let (w, h) = img.dimensions();
        match &self.first {
            None => self.first = Some((w, h, path.to_path_buf())),
            Some((fw, fh, first)) if (*fw, *fh) != (w, h) => {
                return Err(DataError::ImageSize {
                    path: path.to_path_buf(),
                    expected: (*fw, *fh),
                    found: (w, h),
                    first: first.clone(),
                });
            }
            Some(_) => {}
        }
        gray_levels(path, &img, &mut self.x)
    }
}

/// Appends the gray levels of `img` (0..=255 scale) to `out`, or says why it is not gray.
fn gray_levels(path: &Path, img: &DynamicImage, out: &mut Vec<f32>) -> Result<(), DataError> {
    let not_gray = |detail: String| DataError::NotGrayscale {
        path: path.to_path_buf(),
        detail,
    };
    match img {
        DynamicImage::ImageLuma8(g) => out.extend(g.as_raw().iter().map(|&v| f32::from(v))),
        // 65535 / 257 = 255: the 16-bit scale onto the 8-bit one.
        DynamicImage::ImageLuma16(g) => {
            out.extend(g.as_raw().iter().map(|&v| f32::from(v) / 257.0))
        }
        other if other.color().has_color() || other.color().has_alpha() => {
            // Accept colour types whose every pixel is gray and opaque (editors often save
            // gray pictures as RGB); report the first pixel that is not.
            let rgba = other.to_rgba16();
            for (px, py, p) in rgba.enumerate_pixels() {
                let [r, g, b, a] = p.0;
                if r != g || g != b || a != u16::MAX {
                    return Err(not_gray(format!(
                        "{:?}; pixel ({px}, {py}) is RGBA16 {:?}",
                        other.color(),
                        p.0
                    )));
                }
            }
            out.extend(rgba.pixels().map(|p| f32::from(p.0[0]) / 257.0));
        }
        other => return Err(not_gray(format!("{:?}", other.color()))),
    }
    Ok(())
}
