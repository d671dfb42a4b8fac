//! An in-memory 8-bit image data set and its seeded batches: uniform dequantization, scaling
//! per SDE and random horizontal flips, every draw keyed by `(seed, stream, step, index)`.
//!
//! Training batch `step` of size `B`, for batch position `b` and value `k` of an image of
//! `D = C H W` values:
//!
//! * image index: `⌊bits(seed, Data, step, b) · N / 2^32⌋` (with replacement, like the 2D sets),
//! * flip: bit 0 of `bits(seed, FLIP, step, b)`,
//! * dequantization noise `u`: `uniform(seed, DEQUANT, step, b·D + k)`,
//!
//! where `FLIP` and `DEQUANT` are the raw streams [`STREAM_FLIP`] and [`STREAM_DEQUANT`].
//! Evaluation batches go through the set in order, without flips, with noise
//! `uniform(seed, DEQUANT_EVAL, image index, k)`, so an image's value does not depend on the
//! batch size.

use crate::data::dequant::{Scaling, dequantize};
use crate::error::{IndmError, Result};
use crate::rng::{Counter, Stream};

/// Raw stream of the flip decisions of training batches.
pub const STREAM_FLIP: u32 = 0x0100;
/// Raw stream of the dequantization noise of training batches.
pub const STREAM_DEQUANT: u32 = 0x0101;
/// Raw stream of the dequantization noise of evaluation batches (keyed by image index).
pub const STREAM_DEQUANT_EVAL: u32 = 0x0102;

/// Images that could not be read while loading, with the reason.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Images read.
    pub loaded: usize,
    /// Images that were resized or colour-converted to the set's shape.
    pub converted: usize,
    /// Files skipped, each with the reason (undecodable, not an image).
    pub skipped: Vec<(String, String)>,
}

/// `N` images of `C x H x W` 8-bit values (channels-first) with integer labels.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    /// Channels (1 or 3).
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
    /// `N * C * H * W` pixels, image `i` at `i * dims()`.
    pub pixels: Vec<u8>,
    /// Label of each image, an index into `classes`.
    pub labels: Vec<u32>,
    /// Class names.
    pub classes: Vec<String>,
    /// What happened while loading.
    pub report: LoadReport,
}

/// Settings of a training batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchSpec {
    /// Seed of every draw.
    pub seed: u64,
    /// Training step (selects the batch).
    pub step: u64,
    /// Images per batch.
    pub size: usize,
    /// Range the model sees.
    pub scaling: Scaling,
    /// Random horizontal flips (probability 1/2).
    pub flip: bool,
}

/// A batch: `size * C * H * W` values (channels-first per image) and the labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Dequantized, scaled values.
    pub data: Vec<f32>,
    /// Labels of the batch's images.
    pub labels: Vec<u32>,
    /// Index in the set of each batch image.
    pub indices: Vec<usize>,
    /// Whether each image was flipped.
    pub flipped: Vec<bool>,
}

impl ImageSet {
    /// Values per image, `C * H * W`.
    pub fn dims(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set has no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let d = self.dims();
        &self.pixels[i * d..(i + 1) * d]
    }

    /// Checks that the fields agree (pixel count, labels within the classes).
    pub fn validate(&self) -> Result<()> {
        if self.pixels.len() != self.len() * self.dims() {
            return Err(IndmError::invalid(
                "image set",
                format!("{} pixels for {} images", self.pixels.len(), self.len()),
                format!("{} values per image", self.dims()),
            ));
        }
        if let Some(l) = self
            .labels
            .iter()
            .find(|&&l| l as usize >= self.classes.len())
        {
            return Err(IndmError::invalid(
                "image label",
                l,
                format!("below the number of classes ({})", self.classes.len()),
            ));
        }
        Ok(())
    }

    /// Only the images of class `name` (e.g. `cat`), labels kept.
    pub fn class(&self, name: &str) -> Result<ImageSet> {
        let k = self.classes.iter().position(|c| c == name).ok_or_else(|| {
            let valid: Vec<&str> = self.classes.iter().map(|s| s.as_str()).collect();
            IndmError::unknown("class", name, &valid)
        })? as u32;
        let mut out = ImageSet {
            pixels: Vec::new(),
            labels: Vec::new(),
            report: LoadReport::default(),
            ..self.clone_shape()
        };
        for i in (0..self.len()).filter(|&i| self.labels[i] == k) {
            out.pixels.extend_from_slice(self.image(i));
            out.labels.push(k);
        }
        out.report.loaded = out.len();
        Ok(out)
    }

    fn clone_shape(&self) -> ImageSet {
        ImageSet {
            channels: self.channels,
            height: self.height,
            width: self.width,
            pixels: Vec::new(),
            labels: Vec::new(),
            classes: self.classes.clone(),
            report: LoadReport::default(),
        }
    }

    /// Writes image `i`, optionally mirrored left-right, dequantized with noise `u(k)` and
    /// scaled, into `out` (`dims()` values).
    fn write_image(
        &self,
        i: usize,
        flip: bool,
        scaling: Scaling,
        u: impl Fn(usize) -> f64,
        out: &mut [f32],
    ) {
        let (h, w) = (self.height, self.width);
        let img = self.image(i);
        for c in 0..self.channels {
            for y in 0..h {
                for x in 0..w {
                    let k = (c * h + y) * w + x;
                    let src = if flip {
                        (c * h + y) * w + (w - 1 - x)
                    } else {
                        k
                    };
                    out[k] = scaling.scale(dequantize(img[src], u(k))) as f32;
                }
            }
        }
    }

    /// Training batch `spec.step`: images drawn with replacement, flipped with probability 1/2
    /// (if `spec.flip`), dequantized and scaled; see the module documentation for the keys.
    pub fn batch(&self, spec: &BatchSpec) -> Result<Batch> {
        if self.is_empty() {
            return Err(IndmError::invalid(
                "image set",
                "0 images",
                "at least one image",
            ));
        }
        let d = self.dims();
        if spec.size == 0 || (spec.size as u64) * (d as u64) > u32::MAX as u64 {
            return Err(IndmError::invalid(
                "batch",
                spec.size,
                format!(
                    "between 1 and {} for images of {d} values",
                    u32::MAX as u64 / d as u64
                ),
            ));
        }
        let pick = Counter::new(spec.seed, Stream::Data, spec.step);
        let flips = Counter::with_raw_stream(spec.seed, STREAM_FLIP, spec.step);
        let noise = Counter::with_raw_stream(spec.seed, STREAM_DEQUANT, spec.step);
        let n = self.len() as u64;
        let mut out = Batch {
            data: vec![0.0; spec.size * d],
            labels: Vec::with_capacity(spec.size),
            indices: Vec::with_capacity(spec.size),
            flipped: Vec::with_capacity(spec.size),
        };
        for b in 0..spec.size {
            let i = ((pick.bits(b as u32) as u64 * n) >> 32) as usize;
            let flip = spec.flip && flips.bits(b as u32) & 1 == 1;
            let base = (b * d) as u32;
            self.write_image(
                i,
                flip,
                spec.scaling,
                |k| noise.uniform(base + k as u32),
                &mut out.data[b * d..(b + 1) * d],
            );
            out.labels.push(self.labels[i]);
            out.indices.push(i);
            out.flipped.push(flip);
        }
        Ok(out)
    }

    /// Evaluation batch of images `start..start + len` (clipped to the set), in order, without
    /// flips; the noise of image `i` is keyed by `(seed, DEQUANT_EVAL, i, k)`.
    pub fn eval_batch(&self, seed: u64, start: usize, len: usize, scaling: Scaling) -> Batch {
        let end = (start.saturating_add(len)).min(self.len());
        let start = start.min(end);
        let d = self.dims();
        let mut out = Batch {
            data: vec![0.0; (end - start) * d],
            labels: self.labels[start..end].to_vec(),
            indices: (start..end).collect(),
            flipped: vec![false; end - start],
        };
        for (b, i) in (start..end).enumerate() {
            let noise = Counter::with_raw_stream(seed, STREAM_DEQUANT_EVAL, i as u64);
            self.write_image(
                i,
                false,
                scaling,
                |k| noise.uniform(k as u32),
                &mut out.data[b * d..(b + 1) * d],
            );
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Three 1x2x3 images (one channel, 2 rows, 3 columns) with known pixels.
    pub(crate) fn tiny() -> ImageSet {
        ImageSet {
            channels: 1,
            height: 2,
            width: 3,
            pixels: vec![
                0, 1, 2, 3, 4, 5, // image 0
                10, 20, 30, 40, 50, 60, // image 1
                255, 255, 255, 0, 0, 0, // image 2
            ],
            labels: vec![0, 1, 1],
            classes: vec!["a".into(), "b".into()],
            report: LoadReport::default(),
        }
    }

    fn spec(step: u64, flip: bool) -> BatchSpec {
        BatchSpec {
            seed: 5,
            step,
            size: 64,
            scaling: Scaling::Unit,
            flip,
        }
    }

    #[test]
    fn batches_are_keyed_and_values_are_dequantized_pixels() {
        let s = tiny();
        let b = s.batch(&spec(3, true)).unwrap();
        assert_eq!(b, s.batch(&spec(3, true)).unwrap(), "same key, same batch");
        assert_ne!(b.data, s.batch(&spec(4, true)).unwrap().data);
        let d = s.dims();
        let noise = Counter::with_raw_stream(5, STREAM_DEQUANT, 3);
        for (j, (&i, &f)) in b.indices.iter().zip(&b.flipped).enumerate() {
            assert_eq!(b.labels[j], s.labels[i]);
            for y in 0..2 {
                for x in 0..3 {
                    let k = y * 3 + x;
                    let src = if f { y * 3 + 2 - x } else { k };
                    let u = noise.uniform((j * d + k) as u32);
                    let want = (s.image(i)[src] as f64 + u) / 256.0;
                    assert_eq!(b.data[j * d + k], want as f32);
                }
            }
        }
        // Both flips and all three images occur among 64 draws.
        assert!(b.flipped.iter().any(|&f| f) && b.flipped.iter().any(|&f| !f));
        for i in 0..3 {
            assert!(b.indices.contains(&i));
        }
        assert!(!s.batch(&spec(3, false)).unwrap().flipped.iter().any(|&f| f));
    }

    #[test]
    fn flips_mirror_rows_and_happen_half_the_time() {
        let mut s = tiny();
        s.pixels = vec![0, 100, 200, 0, 100, 200];
        s.labels = vec![0];
        let mut sp = spec(0, true);
        sp.size = 4000;
        let b = s.batch(&sp).unwrap();
        let flipped = b.flipped.iter().filter(|&&f| f).count();
        // Binomial(4000, 1/2): sd 31.6; 4 sd.
        assert!((flipped as i64 - 2000).abs() < 127, "{flipped}");
        for (j, &f) in b.flipped.iter().enumerate() {
            let first = b.data[j * 6] * 256.0;
            let level = if f { 200.0 } else { 0.0 };
            assert!(first > level && first < level + 1.0, "{first} flip {f}");
        }
    }

    #[test]
    fn symmetric_scaling_maps_dequantized_pixels_into_minus_one_one() {
        let s = tiny();
        let mut sp = spec(1, false);
        sp.scaling = Scaling::Symmetric;
        let b = s.batch(&sp).unwrap();
        for (j, &i) in b.indices.iter().enumerate() {
            for k in 0..6 {
                let v = b.data[j * 6 + k] as f64;
                let p = s.image(i)[k] as f64;
                // (p + u)/256 * 2 - 1 with u in (0, 1).
                assert!(v > 2.0 * p / 256.0 - 1.0 - 1e-6 && v < 2.0 * (p + 1.0) / 256.0 - 1.0);
            }
        }
        // Mean of the noise: over many draws of pixel 0, the mean of 256 (v+1)/2 is 1/2.
        let mut z = tiny();
        z.pixels = vec![0; 6];
        z.labels = vec![0];
        sp.size = 10_000;
        let b = z.batch(&sp).unwrap();
        let mean: f64 = b
            .data
            .iter()
            .map(|&v| 256.0 * (v as f64 + 1.0) / 2.0)
            .sum::<f64>()
            / b.data.len() as f64;
        // sd of U(0,1) is 0.2887; 60000 draws: se 0.0012.
        assert!((mean - 0.5).abs() < 0.005, "{mean}");
    }

    #[test]
    fn eval_batches_do_not_depend_on_the_batch_size() {
        let s = tiny();
        let all = s.eval_batch(9, 0, 10, Scaling::Unit);
        assert_eq!(all.indices, vec![0, 1, 2]);
        let tail = s.eval_batch(9, 1, 2, Scaling::Unit);
        assert_eq!(&all.data[6..], &tail.data[..]);
        assert!(s.eval_batch(9, 5, 2, Scaling::Unit).data.is_empty());
        let noise = Counter::with_raw_stream(9, STREAM_DEQUANT_EVAL, 2);
        assert_eq!(
            all.data[12],
            ((255.0 + noise.uniform(0)) / 256.0) as f32,
            "image 2, value 0"
        );
    }

    #[test]
    fn bad_batches_and_classes_are_refused() {
        let s = tiny();
        let mut sp = spec(0, false);
        sp.size = 0;
        assert!(
            s.batch(&sp)
                .unwrap_err()
                .to_string()
                .contains("invalid batch: 0")
        );
        let e = s.class("dog").unwrap_err().to_string();
        assert!(
            e.contains("unknown class 'dog'") && e.contains("a, b"),
            "{e}"
        );
        let b = s.class("b").unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b.image(1), s.image(2));
        let mut broken = tiny();
        broken.labels[0] = 7;
        assert!(broken.validate().is_err());
        assert!(tiny().validate().is_ok());
    }
}
