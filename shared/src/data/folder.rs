//! Image folders with split and class subfolders: `root/<split>/<class>/<image file>`
//! (e.g. `shared/data/cifar10_catdog/train/cat/0000.png`). The class is the folder name;
//! classes are sorted by name, files by name, so the order is reproducible.
//!
//! Every file goes through the one decode path ([`crate::data::image::decode`]). Files that
//! cannot be decoded are skipped and counted in the set's [`LoadReport`], never a crash. Images
//! of another size or channel count are converted (centre crop + resize, colour conversion)
//! or refused, as [`FolderOptions::mismatch`] says. A missing or empty folder is an error
//! naming the path.

use std::path::{Path, PathBuf};

use image::DynamicImage;

use crate::data::image::{DecodeLimits, crop_resize, decode};
use crate::data::images::{ImageSet, LoadReport};
use crate::error::{IndmError, Result};

/// What to do with an image whose size or channel count differs from the set's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// Centre crop to a square, resize, convert to the set's channels (counted in the report).
    Convert,
    /// Refuse the whole load with a message naming the file, its shape and the expected one.
    Refuse,
}

/// How to read an image folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FolderOptions {
    /// Side of the square images of the set.
    pub size: u32,
    /// Channels of the set: 3 (RGB) or 1 (grey).
    pub channels: u8,
    /// Policy for images of another shape.
    pub mismatch: Mismatch,
    /// Bounds on each file.
    pub limits: DecodeLimits,
}

impl FolderOptions {
    /// 32x32 RGB, converting other shapes (the cat/dog set).
    pub fn rgb(size: u32) -> Self {
        FolderOptions {
            size,
            channels: 3,
            mismatch: Mismatch::Convert,
            limits: DecodeLimits::default(),
        }
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> IndmError {
    IndmError::BadData {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Sorted entries of a folder, excluding hidden ones; `dirs` selects folders or files.
fn entries(dir: &Path, dirs: bool) -> Result<Vec<(String, PathBuf)>> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            bad(dir, "no such folder")
        } else {
            IndmError::io(dir, e)
        }
    })?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| IndmError::io(dir, e))?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        let p = e.path();
        // Follows symbolic links.
        let is_dir = p.is_dir();
        if is_dir == dirs && (is_dir || p.is_file()) {
            out.push((name, p));
        }
    }
    out.sort();
    Ok(out)
}

/// The class names of `root/split` (its subfolders), sorted.
pub fn classes(root: &Path, split: &str) -> Result<Vec<String>> {
    let dir = root.join(split);
    let c: Vec<String> = entries(&dir, true)?.into_iter().map(|(n, _)| n).collect();
    if c.is_empty() {
        return Err(bad(
            &dir,
            format!("no class subfolders (expected {split}/<class>/<image files>)"),
        ));
    }
    Ok(c)
}

/// Pixels of `img` as `channels x size x size` (channels-first), converting if allowed.
/// Returns whether it was converted.
fn pixels_of(
    img: &DynamicImage,
    path: &Path,
    src_channels: u8,
    opts: &FolderOptions,
    out: &mut Vec<u8>,
) -> Result<bool> {
    let (w, h) = (img.width(), img.height());
    let same_size = w == opts.size && h == opts.size;
    // Alpha is dropped silently: grey+alpha counts as grey, RGBA as RGB.
    let colour = if src_channels >= 3 { 3 } else { 1 };
    let same = same_size && colour == opts.channels;
    if !same && opts.mismatch == Mismatch::Refuse {
        return Err(bad(
            path,
            format!(
                "image is {w}x{h} with {src_channels} channel(s); this set expects {s}x{s} with {c} ({})",
                if opts.channels == 3 { "RGB" } else { "grey" },
                s = opts.size,
                c = opts.channels,
            ),
        ));
    }
    let rgb = crop_resize(&img.to_rgb8(), opts.size);
    let n = (opts.size * opts.size) as usize;
    let base = out.len();
    out.resize(base + opts.channels as usize * n, 0);
    for (j, p) in rgb.pixels().enumerate() {
        if opts.channels == 3 {
            for c in 0..3 {
                out[base + c * n + j] = p.0[c];
            }
        } else {
            // ITU-R BT.601 luma, as `image`'s own grey conversion.
            let [r, g, b] = p.0;
            let y = (299 * r as u32 + 587 * g as u32 + 114 * b as u32 + 500) / 1000;
            out[base + j] = y as u8;
        }
    }
    Ok(!same)
}

/// Reads `root/split/<class>/*` into an [`ImageSet`].
///
/// Errors: a missing `root` or `root/split`, a split without class folders or without any
/// decodable image ([`IndmError::BadData`], naming the path); with [`Mismatch::Refuse`], the
/// first image of another shape. Undecodable files are skipped and listed in the report.
pub fn load_folder(root: &Path, split: &str, opts: &FolderOptions) -> Result<ImageSet> {
    if opts.channels != 1 && opts.channels != 3 {
        return Err(IndmError::invalid(
            "channels",
            opts.channels,
            "1 (grey) or 3 (RGB)",
        ));
    }
    if opts.size == 0 || opts.size > 4096 {
        return Err(IndmError::invalid(
            "image size",
            opts.size,
            "between 1 and 4096",
        ));
    }
    if !root.is_dir() {
        return Err(bad(
            root,
            format!("no such folder (expected an image folder with {split}/<class>/ subfolders)"),
        ));
    }
    let dir = root.join(split);
    if !dir.is_dir() {
        let have: Vec<String> = entries(root, true)?.into_iter().map(|(n, _)| n).collect();
        return Err(bad(
            &dir,
            format!(
                "no '{split}' split folder; the folder has: {}",
                if have.is_empty() {
                    "no subfolders".to_string()
                } else {
                    have.join(", ")
                }
            ),
        ));
    }
    let classes = classes(root, split)?;
    let mut set = ImageSet {
        channels: opts.channels as usize,
        height: opts.size as usize,
        width: opts.size as usize,
        pixels: Vec::new(),
        labels: Vec::new(),
        classes: classes.clone(),
        report: LoadReport::default(),
    };
    for (k, class) in classes.iter().enumerate() {
        for (_, path) in entries(&dir.join(class), false)? {
            let origin = path.display().to_string();
            let bytes = std::fs::read(&path).map_err(|e| IndmError::io(&path, e))?;
            let d = match decode(&bytes, &origin, &opts.limits) {
                Ok(d) => d,
                Err(e) => {
                    set.report.skipped.push((origin, e.to_string()));
                    continue;
                }
            };
            if pixels_of(&d.image, &path, d.info.channels, opts, &mut set.pixels)? {
                set.report.converted += 1;
            }
            set.labels.push(k as u32);
        }
    }
    set.report.loaded = set.len();
    if set.is_empty() {
        return Err(bad(
            &dir,
            format!(
                "no decodable images in the class folders {} ({} file(s) skipped)",
                classes.join(", "),
                set.report.skipped.len()
            ),
        ));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::image::tests::png_bytes;
    use image::{Rgb, RgbImage};

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("indm-folder-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn put(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// train/cat: two 4x4 images (values 10, 20), train/dog: one (30) + one broken file.
    fn fixture(name: &str) -> PathBuf {
        let d = tmpdir(name);
        for (rel, v) in [
            ("train/cat/0.png", 10),
            ("train/cat/1.png", 20),
            ("train/dog/0.png", 30),
        ] {
            put(
                &d.join(rel),
                &png_bytes(&RgbImage::from_pixel(4, 4, Rgb([v, v + 1, v + 2]))),
            );
        }
        put(&d.join("train/dog/broken.png"), b"\x89PNG\r\n\x1a\nnope");
        put(&d.join("train/dog/.hidden"), b"ignored");
        std::fs::create_dir_all(d.join("test")).unwrap();
        d
    }

    #[test]
    fn classes_labels_and_pixels_come_from_the_folders() {
        let d = fixture("ok");
        let s = load_folder(&d, "train", &FolderOptions::rgb(4)).unwrap();
        assert_eq!(s.classes, vec!["cat", "dog"]);
        assert_eq!(s.labels, vec![0, 0, 1]);
        assert_eq!((s.channels, s.height, s.width), (3, 4, 4));
        // Image 2 (dog, value 30): R plane 30, G plane 31, B plane 32.
        let img = s.image(2);
        assert!(img[..16].iter().all(|&p| p == 30));
        assert!(img[16..32].iter().all(|&p| p == 31));
        assert!(img[32..].iter().all(|&p| p == 32));
        assert_eq!(s.report.loaded, 3);
        assert_eq!(s.report.converted, 0);
        assert_eq!(s.report.skipped.len(), 1);
        assert!(s.report.skipped[0].0.ends_with("broken.png"));
        assert!(s.report.skipped[0].1.contains("cannot be decoded"));
        s.validate().unwrap();
        std::fs::remove_dir_all(d).ok();
    }

    #[test]
    fn other_sizes_are_converted_or_refused() {
        let d = fixture("mismatch");
        put(
            &d.join("train/dog/big.png"),
            &png_bytes(&RgbImage::from_pixel(8, 6, Rgb([40, 40, 40]))),
        );
        let s = load_folder(&d, "train", &FolderOptions::rgb(4)).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s.report.converted, 1);
        // "big.png" sorts before "broken.png": dog images are [0.png, big.png].
        assert!(s.image(3).iter().all(|&p| p == 40), "{:?}", s.image(3));
        let mut o = FolderOptions::rgb(4);
        o.mismatch = Mismatch::Refuse;
        let e = load_folder(&d, "train", &o).unwrap_err().to_string();
        assert!(
            e.contains("big.png")
                && e.contains("8x6 with 3 channel(s)")
                && e.contains("4x4 with 3"),
            "{e}"
        );
        // Grey sets convert RGB by luma: (299*10 + 587*11 + 114*12 + 500) / 1000 = 11.
        let mut o = FolderOptions::rgb(4);
        o.channels = 1;
        let s = load_folder(&d, "train", &o).unwrap();
        assert_eq!(s.dims(), 16);
        assert!(s.image(0).iter().all(|&p| p == 11), "{:?}", s.image(0));
        assert_eq!(s.report.converted, 4);
        std::fs::remove_dir_all(d).ok();
    }

    #[test]
    fn missing_and_empty_folders_name_the_path() {
        let d = fixture("missing");
        let o = FolderOptions::rgb(4);
        let e = load_folder(&d.join("nope"), "train", &o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope") && e.contains("no such folder"), "{e}");
        let e = load_folder(&d, "val", &o).unwrap_err().to_string();
        assert!(e.contains("val") && e.contains("test, train"), "{e}");
        let e = load_folder(&d, "test", &o).unwrap_err().to_string();
        assert!(
            e.contains("test") && e.contains("no class subfolders"),
            "{e}"
        );
        std::fs::create_dir_all(d.join("test/cat")).unwrap();
        put(&d.join("test/cat/x.png"), b"not an image");
        let e = load_folder(&d, "test", &o).unwrap_err().to_string();
        assert!(
            e.contains("no decodable images") && e.contains("1 file(s) skipped"),
            "{e}"
        );
        let mut bad = o;
        bad.channels = 2;
        assert!(load_folder(&d, "train", &bad).is_err());
        std::fs::remove_dir_all(d).ok();
    }

    /// The real cat/dog set, when present: 5000 + 5000 train images of 32x32 RGB.
    #[test]
    fn the_catdog_set_loads_when_present() {
        // The data lives next to the repository (`../shared/data`) or in the checkout's `shared/`.
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let Some(root) = [
            here.join("../../shared/data/cifar10_catdog"),
            here.join("data/cifar10_catdog"),
        ]
        .into_iter()
        .find(|r| r.join("test").is_dir()) else {
            eprintln!("skipped: the cifar10_catdog folder is not present");
            return;
        };
        let s = load_folder(&root, "test", &FolderOptions::rgb(32)).unwrap();
        assert_eq!(s.classes, vec!["cat", "dog"]);
        assert_eq!(s.len(), 2000);
        assert_eq!(s.labels.iter().filter(|&&l| l == 0).count(), 1000);
        assert_eq!(s.report.converted + s.report.skipped.len(), 0);
    }
}
