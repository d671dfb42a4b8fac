//! CIFAR-10 binary batches (`data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`):
//! records of 1 label byte (0–9) and 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each
//! a 32x32 row-major plane), i.e. exactly the channels-first layout of [`ImageSet`].

use std::path::Path;

use crate::data::images::{ImageSet, LoadReport};
use crate::error::{IndmError, Result};

/// Bytes of one record: label + 3 x 32 x 32 pixels.
pub const RECORD: usize = 1 + 3 * 32 * 32;

/// CIFAR-10's class names in label order (as in `batches.meta.txt`).
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

fn bad(origin: &str, reason: String) -> IndmError {
    IndmError::BadData {
        path: origin.to_string(),
        reason,
    }
}

/// Parses the bytes of one batch file.
pub fn parse_batch(bytes: &[u8], origin: &str) -> Result<ImageSet> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(bad(
            origin,
            format!(
                "{} bytes is not a CIFAR-10 binary batch (expected a multiple of {RECORD}: 1 label byte + 3072 pixel bytes per image; 10000 images = 30730000 bytes)",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / RECORD;
    let mut set = ImageSet {
        channels: 3,
        height: 32,
        width: 32,
        pixels: Vec::with_capacity(n * (RECORD - 1)),
        labels: Vec::with_capacity(n),
        classes: CLASSES.iter().map(|s| s.to_string()).collect(),
        report: LoadReport::default(),
    };
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] >= 10 {
            return Err(bad(
                origin,
                format!(
                    "record {i} (byte offset {}) has label {}, expected 0-9; this is not a CIFAR-10 batch (CIFAR-100 has 2 label bytes)",
                    i * RECORD,
                    rec[0]
                ),
            ));
        }
        set.labels.push(rec[0] as u32);
        set.pixels.extend_from_slice(&rec[1..]);
    }
    set.report.loaded = n;
    Ok(set)
}

/// Reads one batch file.
pub fn read_batch(path: &Path) -> Result<ImageSet> {
    let bytes = std::fs::read(path).map_err(|e| IndmError::io(path, e))?;
    parse_batch(&bytes, &path.display().to_string())
}

/// Reads the standard split of an extracted `cifar-10-batches-bin` folder: `train` is
/// `data_batch_1.bin` … `data_batch_5.bin`, `test` is `test_batch.bin`.
pub fn read_split(dir: &Path, split: &str) -> Result<ImageSet> {
    let names: Vec<String> = match split {
        "train" => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        "test" => vec!["test_batch.bin".to_string()],
        other => {
            return Err(IndmError::unknown(
                "CIFAR-10 split",
                other,
                &["train", "test"],
            ));
        }
    };
    let mut out: Option<ImageSet> = None;
    for name in names {
        let path = dir.join(&name);
        if !path.is_file() {
            return Err(bad(
                &path.display().to_string(),
                format!(
                    "missing (expected the extracted cifar-10-batches-bin folder with data_batch_1..5.bin and test_batch.bin in {})",
                    dir.display()
                ),
            ));
        }
        let s = read_batch(&path)?;
        match &mut out {
            None => out = Some(s),
            Some(o) => {
                o.pixels.extend_from_slice(&s.pixels);
                o.labels.extend_from_slice(&s.labels);
                o.report.loaded += s.report.loaded;
            }
        }
    }
    Ok(out.expect("at least one file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two records: label 3 with pixel value (i % 251), label 5 with 255 - that.
    fn two_records() -> Vec<u8> {
        let mut v = vec![3u8];
        v.extend((0..3072).map(|i| (i % 251) as u8));
        v.push(5);
        v.extend((0..3072).map(|i| 255 - (i % 251) as u8));
        v
    }

    #[test]
    fn records_become_labelled_chw_images() {
        let s = parse_batch(&two_records(), "b").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.labels, vec![3, 5]);
        assert_eq!(s.classes[3], "cat");
        assert_eq!(s.classes[5], "dog");
        // Pixel (c=1, y=2, x=7) of image 0 is byte 1024 + 2*32 + 7 = 1095 of the record's data.
        assert_eq!(s.image(0)[1024 + 64 + 7], (1095 % 251) as u8);
        assert_eq!(s.image(1)[0], 255);
        s.validate().unwrap();
        assert_eq!(s.class("dog").unwrap().len(), 1);
    }

    #[test]
    fn wrong_sizes_and_labels_are_refused() {
        let e = parse_batch(&[0u8; 3072], "x.bin").unwrap_err().to_string();
        assert!(
            e.contains("x.bin") && e.contains("3072 bytes") && e.contains("multiple of 3073"),
            "{e}"
        );
        assert!(parse_batch(&[], "x").is_err());
        let mut v = two_records();
        v[RECORD] = 10;
        let e = parse_batch(&v, "x").unwrap_err().to_string();
        assert!(e.contains("record 1") && e.contains("label 10"), "{e}");
    }

    #[test]
    fn splits_concatenate_batches_and_missing_files_are_named() {
        let d = std::env::temp_dir().join(format!("indm-cifar-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("test_batch.bin"), two_records()).unwrap();
        assert_eq!(read_split(&d, "test").unwrap().len(), 2);
        let e = read_split(&d, "train").unwrap_err().to_string();
        assert!(
            e.contains("data_batch_1.bin") && e.contains("missing"),
            "{e}"
        );
        for i in 1..=5 {
            std::fs::write(d.join(format!("data_batch_{i}.bin")), two_records()).unwrap();
        }
        let s = read_split(&d, "train").unwrap();
        assert_eq!(s.len(), 10);
        assert_eq!(s.labels[8..], [3, 5]);
        assert!(
            read_split(&d, "val")
                .unwrap_err()
                .to_string()
                .contains("train, test")
        );
        std::fs::remove_dir_all(d).ok();
    }
}
