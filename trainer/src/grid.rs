//! Image grids as PNG: rows of images (NCHW values in `[0, 1]`), nearest-upscaled, with a
//! thin grey border between cells.

use std::path::Path;

use anyhow::{Context, Result, bail};
use image::{Rgb, RgbImage};

/// Grid layout settings.
#[derive(Clone, Copy, Debug)]
pub struct GridSpec {
    /// `[C, H, W]` of every cell (C = 1 or 3).
    pub shape: [usize; 3],
    /// Nearest-neighbour upscaling of each pixel.
    pub scale: usize,
    /// Border between cells (pixels).
    pub pad: usize,
}

impl GridSpec {
    /// Cells of `shape`, upscaled twice, 2-pixel borders.
    pub fn new(shape: [usize; 3]) -> Self {
        GridSpec {
            shape,
            scale: 2,
            pad: 2,
        }
    }
}

/// Writes `rows` (each a list of cells of `C H W` values in `[0, 1]`) as one PNG.
pub fn write(path: &Path, rows: &[Vec<&[f64]>], spec: GridSpec) -> Result<()> {
    let [c, h, w] = spec.shape;
    if c != 1 && c != 3 {
        bail!("image grid: {c} channels (expected 1 or 3)");
    }
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    if rows.is_empty() || cols == 0 {
        bail!("image grid {}: nothing to draw", path.display());
    }
    let (cw, ch) = (w * spec.scale, h * spec.scale);
    let width = cols * cw + (cols + 1) * spec.pad;
    let height = rows.len() * ch + (rows.len() + 1) * spec.pad;
    let mut img = RgbImage::from_pixel(width as u32, height as u32, Rgb([128, 128, 128]));
    for (r, row) in rows.iter().enumerate() {
        for (k, cell) in row.iter().enumerate() {
            if cell.len() != c * h * w {
                bail!(
                    "image grid: a cell of {} values (expected {c}x{h}x{w})",
                    cell.len()
                );
            }
            let (x0, y0) = (
                spec.pad + k * (cw + spec.pad),
                spec.pad + r * (ch + spec.pad),
            );
            for y in 0..h {
                for x in 0..w {
                    let v = |ci: usize| {
                        let u = cell[(ci * h + y) * w + x];
                        (u.clamp(0.0, 1.0) * 255.0).round() as u8
                    };
                    let px = if c == 3 {
                        Rgb([v(0), v(1), v(2)])
                    } else {
                        Rgb([v(0), v(0), v(0)])
                    };
                    for dy in 0..spec.scale {
                        for dx in 0..spec.scale {
                            img.put_pixel(
                                (x0 + x * spec.scale + dx) as u32,
                                (y0 + y * spec.scale + dy) as u32,
                                px,
                            );
                        }
                    }
                }
            }
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    img.save(path)
        .with_context(|| format!("writing image grid {}", path.display()))
}

/// `n` images of `d` values as rows of `cols` cells.
pub fn rows_of(images: &[f64], d: usize, cols: usize) -> Vec<Vec<&[f64]>> {
    images
        .chunks(d)
        .collect::<Vec<_>>()
        .chunks(cols)
        .map(|r| r.to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_has_the_cells_pixels() {
        let dir = std::env::temp_dir().join(format!("indm-grid-{}", std::process::id()));
        let path = dir.join("g.png");
        // Two 1x2x2 grey images: black and white.
        let a = [0.0, 0.0, 0.0, 0.0];
        let b = [1.0, 1.0, 1.0, 2.0];
        let spec = GridSpec {
            shape: [1, 2, 2],
            scale: 1,
            pad: 1,
        };
        write(&path, &[vec![&a[..], &b[..]]], spec).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (2 * 2 + 3, 2 + 2));
        assert_eq!(img.get_pixel(1, 1).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(4, 1).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(0, 0).0, [128, 128, 128]);
        let e = write(&path, &[vec![&a[..3]]], spec)
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 values"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }
}
