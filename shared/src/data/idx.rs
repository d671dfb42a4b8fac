//! IDX files (MNIST, Fashion-MNIST): `idx3-ubyte` images and `idx1-ubyte` labels, plain or
//! gzip-compressed (Debian's `dataset-fashion-mnist` ships
//! `/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`).
//!
//! Format: two zero bytes, a type byte (`0x08` = unsigned byte; the only type read here), the
//! number of dimensions, then each dimension as a big-endian `u32`, then the values row-major.
//! The declared size is checked against the bytes actually present; nothing is allocated
//! from the header alone (a gzip stream is read up to the declared size plus one byte).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::data::images::{ImageSet, LoadReport};
use crate::error::{IndmError, Result};

/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST's class names in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
];

/// Largest IDX payload read (1 GiB); Fashion-MNIST's training images are 47 MB.
pub const MAX_BYTES: u64 = 1 << 30;

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first.
    pub dims: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<u8>,
}

fn bad(origin: &str, reason: String) -> IndmError {
    IndmError::BadData {
        path: origin.to_string(),
        reason,
    }
}

/// Parses an IDX stream (already decompressed) from a reader.
fn parse_reader(r: &mut dyn Read, origin: &str) -> Result<IdxArray> {
    let io = |e: std::io::Error| bad(origin, format!("cannot be read: {e}"));
    let mut head = [0u8; 4];
    r.read_exact(&mut head).map_err(|_| {
        bad(
            origin,
            "shorter than an IDX header (expected 4 magic bytes 00 00 08 <dims>)".into(),
        )
    })?;
    if head[0] != 0 || head[1] != 0 {
        return Err(bad(
            origin,
            format!(
                "not an IDX file: magic {:02x} {:02x} {:02x} {:02x} (expected 00 00 08 <dims>, e.g. 00 00 08 03 for idx3-ubyte)",
                head[0], head[1], head[2], head[3]
            ),
        ));
    }
    if head[2] != 0x08 {
        return Err(bad(
            origin,
            format!(
                "IDX value type 0x{:02x} is not supported (expected 0x08, unsigned bytes)",
                head[2]
            ),
        ));
    }
    let nd = head[3] as usize;
    if nd == 0 {
        return Err(bad(origin, "IDX file with 0 dimensions".into()));
    }
    let mut dims = Vec::with_capacity(nd);
    for i in 0..nd {
        let mut d = [0u8; 4];
        r.read_exact(&mut d)
            .map_err(|_| bad(origin, format!("header ends before dimension {i} of {nd}")))?;
        dims.push(u32::from_be_bytes(d) as usize);
    }
    let total = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .filter(|&t| t <= MAX_BYTES)
        .ok_or_else(|| {
            bad(
                origin,
                format!("declared shape {dims:?} is larger than {MAX_BYTES} bytes"),
            )
        })?;
    let mut data = Vec::new();
    r.take(total + 1).read_to_end(&mut data).map_err(io)?;
    if (data.len() as u64) < total {
        return Err(bad(
            origin,
            format!(
                "declared shape {dims:?} needs {total} value bytes but the file has only {}",
                data.len()
            ),
        ));
    }
    if data.len() as u64 > total {
        return Err(bad(
            origin,
            format!(
                "declared shape {dims:?} needs {total} value bytes but the file has more (trailing bytes)"
            ),
        ));
    }
    Ok(IdxArray { dims, data })
}

/// Parses IDX bytes; gzip is recognised by its magic bytes `1f 8b`.
pub fn parse(bytes: &[u8], origin: &str) -> Result<IdxArray> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        parse_reader(&mut flate2::read::GzDecoder::new(bytes), origin)
    } else {
        parse_reader(&mut &bytes[..], origin)
    }
}

/// Reads an IDX file (plain or gzip).
pub fn read(path: &Path) -> Result<IdxArray> {
    let bytes = std::fs::read(path).map_err(|e| IndmError::io(path, e))?;
    parse(&bytes, &path.display().to_string())
}

/// Images (`N x H x W`) and labels (`N`) as a one-channel [`ImageSet`] with `classes`.
pub fn image_set(
    images: &IdxArray,
    labels: &IdxArray,
    classes: &[&str],
    origin: &str,
) -> Result<ImageSet> {
    if images.dims.len() != 3 {
        return Err(bad(
            origin,
            format!(
                "images have shape {:?}; expected 3 dimensions (N, height, width) as in idx3-ubyte",
                images.dims
            ),
        ));
    }
    if labels.dims.len() != 1 || labels.dims[0] != images.dims[0] {
        return Err(bad(
            origin,
            format!(
                "labels have shape {:?}; expected [{}] (one per image, idx1-ubyte)",
                labels.dims, images.dims[0]
            ),
        ));
    }
    if let Some((i, l)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, l)| **l as usize >= classes.len())
    {
        return Err(bad(
            origin,
            format!(
                "label {l} of image {i} is not below the {} classes",
                classes.len()
            ),
        ));
    }
    Ok(ImageSet {
        channels: 1,
        height: images.dims[1],
        width: images.dims[2],
        pixels: images.data.clone(),
        labels: labels.data.iter().map(|&l| l as u32).collect(),
        classes: classes.iter().map(|s| s.to_string()).collect(),
        report: LoadReport {
            loaded: images.dims[0],
            ..Default::default()
        },
    })
}

/// The file of `stem` in `dir`, plain or with `.gz`.
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    for name in [stem.to_string(), format!("{stem}.gz")] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(bad(
        &dir.join(stem).display().to_string(),
        format!(
            "missing (neither {stem} nor {stem}.gz in {}; on Debian install the package dataset-fashion-mnist)",
            dir.display()
        ),
    ))
}

/// Fashion-MNIST's `train` (60000) or `test` (10000) split from `dir` (e.g.
/// [`FASHION_MNIST_DIR`]): 28x28 grey images with their labels.
pub fn fashion_mnist(dir: &Path, split: &str) -> Result<ImageSet> {
    let prefix = match split {
        "train" => "train",
        "test" => "t10k",
        other => {
            return Err(IndmError::unknown(
                "Fashion-MNIST split",
                other,
                &["train", "test"],
            ));
        }
    };
    let ip = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lp = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    image_set(
        &read(&ip)?,
        &read(&lp)?,
        &FASHION_CLASSES,
        &ip.display().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(data);
        v
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn plain_and_gzip_files_parse_to_the_same_array() {
        let raw = idx(&[2, 2, 3], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        let a = parse(&raw, "a").unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data[11], 11);
        assert_eq!(parse(&gz(&raw), "a.gz").unwrap(), a);
        let labels = parse(&idx(&[2], &[9, 0]), "l").unwrap();
        let s = image_set(&a, &labels, &FASHION_CLASSES, "a").unwrap();
        assert_eq!((s.channels, s.height, s.width, s.len()), (1, 2, 3, 2));
        assert_eq!(s.image(1), &[6, 7, 8, 9, 10, 11]);
        assert_eq!(s.classes[s.labels[0] as usize], "ankle boot");
    }

    #[test]
    fn malformed_files_are_refused_with_what_was_expected() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "shorter than an IDX header"),
            (
                b"PK\x03\x04zip".to_vec(),
                "not an IDX file: magic 50 4b 03 04",
            ),
            (
                vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0],
                "0x0d is not supported",
            ),
            (
                vec![0, 0, 8, 3, 0, 0],
                "header ends before dimension 0 of 3",
            ),
            (
                idx(&[2, 2], &[1, 2, 3]),
                "needs 4 value bytes but the file has only 3",
            ),
            (
                idx(&[1], &[1, 2]),
                "needs 1 value bytes but the file has more",
            ),
            (idx(&[65536, 65536, 65536], &[]), "larger than"),
            (gz(&idx(&[5], &[1])), "needs 5 value bytes"),
        ];
        for (bytes, needle) in cases {
            let e = parse(&bytes, "f.idx").unwrap_err().to_string();
            assert!(
                e.contains(needle) && e.contains("f.idx"),
                "want '{needle}' in: {e}"
            );
        }
        let a = parse(&idx(&[2, 1, 1], &[0, 0]), "a").unwrap();
        let e = image_set(
            &a,
            &parse(&idx(&[3], &[0, 0, 0]), "l").unwrap(),
            &FASHION_CLASSES,
            "a",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("expected [2]"), "{e}");
        let e = image_set(
            &a,
            &parse(&idx(&[2], &[0, 10]), "l").unwrap(),
            &FASHION_CLASSES,
            "a",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("label 10 of image 1"), "{e}");
    }

    #[test]
    fn a_fashion_mnist_folder_is_found_plain_or_gzipped() {
        let d = std::env::temp_dir().join(format!("indm-idx-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let e = fashion_mnist(&d, "test").unwrap_err().to_string();
        assert!(
            e.contains("t10k-images-idx3-ubyte") && e.contains("dataset-fashion-mnist"),
            "{e}"
        );
        std::fs::write(
            d.join("t10k-images-idx3-ubyte.gz"),
            gz(&idx(&[1, 2, 2], &[1, 2, 3, 4])),
        )
        .unwrap();
        std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx(&[1], &[7])).unwrap();
        let s = fashion_mnist(&d, "test").unwrap();
        assert_eq!(s.labels, vec![7]);
        assert_eq!(s.pixels, vec![1, 2, 3, 4]);
        assert!(fashion_mnist(&d, "val").is_err());
        std::fs::remove_dir_all(d).ok();
    }

    /// The installed Debian package, when present: 10000 test images of 28x28, 1000 per class.
    #[test]
    fn the_debian_fashion_mnist_package_loads_when_installed() {
        let dir = Path::new(FASHION_MNIST_DIR);
        if !dir.is_dir() {
            eprintln!("skipped: {FASHION_MNIST_DIR} not installed");
            return;
        }
        let s = fashion_mnist(dir, "test").unwrap();
        assert_eq!(
            (s.len(), s.height, s.width, s.channels),
            (10_000, 28, 28, 1)
        );
        for k in 0..10 {
            assert_eq!(s.labels.iter().filter(|&&l| l == k).count(), 1000);
        }
    }
}
