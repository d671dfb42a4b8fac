//! The one decode path for user images (trainer, folder loader and browser demo alike).
//!
//! Bytes in any of the compiled formats (PNG, JPEG, GIF, BMP, WebP) are identified from their
//! content (never the file name), the header is read first and the declared size is checked
//! against [`DecodeLimits`] **before** any pixel buffer is allocated, so a hostile file that
//! claims 100000x100000 pixels is refused in microseconds. The decoder itself also runs with
//! `image`'s allocation limit. Then: RGB (alpha dropped, 16-bit reduced to 8), centre crop to
//! a square, resize to the model's size (exact area averaging when shrinking, bilinear when
//! enlarging),
//! and a `f32` CHW tensor in `[0, 1]`.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage, imageops};

use crate::error::{IndmError, Result};

/// The formats the decoder understands (the `image` crate features compiled in).
pub const FORMATS: &str = "PNG, JPEG, GIF, BMP, WebP";

/// Bounds on an image to decode; checked against the header before decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest width or height.
    pub max_side: u32,
    /// Largest width x height.
    pub max_pixels: u64,
    /// Largest allocation the decoder may make (bytes).
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    /// Photographs up to 8192 per side and 40 megapixels (a 160 MB RGBA buffer), which fits the
    /// browser's memory.
    fn default() -> Self {
        DecodeLimits {
            max_side: 8192,
            max_pixels: 40_000_000,
            max_alloc: 256 << 20,
        }
    }
}

impl DecodeLimits {
    /// Small limits (1024 per side, 1 megapixel), for fuzzing and data sets of small images.
    pub fn small() -> Self {
        DecodeLimits {
            max_side: 1024,
            max_pixels: 1 << 20,
            max_alloc: 32 << 20,
        }
    }

    fn image_limits(&self) -> image::Limits {
        let mut l = image::Limits::default();
        l.max_image_width = Some(self.max_side);
        l.max_image_height = Some(self.max_side);
        l.max_alloc = Some(self.max_alloc);
        l
    }
}

/// What an image header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// Format detected from the content.
    pub format: image::ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Colour channels including alpha (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA).
    pub channels: u8,
}

/// A decoded image, 8 bits per channel, with its header information.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// Header information of the source.
    pub info: ImageInfo,
    /// The pixels.
    pub image: DynamicImage,
}

/// An `f32` image tensor, channels-first (`C x H x W`), values in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageTensor {
    /// Channels.
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
    /// `channels * height * width` values, index `(c * height + y) * width + x`.
    pub data: Vec<f32>,
}

fn bad(origin: &str, reason: impl Into<String>) -> IndmError {
    IndmError::BadImage {
        origin: origin.to_string(),
        reason: reason.into(),
    }
}

fn reader<'a>(bytes: &'a [u8], origin: &str) -> Result<ImageReader<Cursor<&'a [u8]>>> {
    if bytes.is_empty() {
        return Err(bad(origin, "the file is empty"));
    }
    let r = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(origin, e.to_string()))?;
    if r.format().is_none() {
        return Err(bad(
            origin,
            format!("not an image in a known format (expected {FORMATS})"),
        ));
    }
    Ok(r)
}

fn check_size(origin: &str, width: u64, height: u64, limits: &DecodeLimits) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(bad(
            origin,
            format!("the header declares {width}x{height} pixels (an empty image)"),
        ));
    }
    if width > limits.max_side as u64
        || height > limits.max_side as u64
        || width * height > limits.max_pixels
    {
        return Err(IndmError::ImageTooLarge {
            origin: origin.to_string(),
            width,
            height,
            max_side: limits.max_side,
            max_pixels: limits.max_pixels,
        });
    }
    Ok(())
}

/// A decoder error, with a size refusal reported as [`IndmError::ImageTooLarge`].
fn decode_error(origin: &str, e: image::ImageError, limits: &DecodeLimits) -> IndmError {
    match e {
        image::ImageError::Limits(l) => bad(
            origin,
            format!(
                "refused by the decoder's limits ({l}; at most {} per side, {} bytes of buffers)",
                limits.max_side, limits.max_alloc
            ),
        ),
        other => bad(origin, format!("cannot be decoded: {other}")),
    }
}

/// Reads only the header: format, size and channels. Refuses unknown formats.
pub fn probe(bytes: &[u8], origin: &str) -> Result<ImageInfo> {
    let r = reader(bytes, origin)?;
    let format = r.format().expect("checked");
    let mut r = r;
    r.no_limits();
    let d = r
        .into_decoder()
        .map_err(|e| decode_error(origin, e, &DecodeLimits::default()))?;
    let (width, height) = d.dimensions();
    Ok(ImageInfo {
        format,
        width,
        height,
        channels: d.color_type().channel_count(),
    })
}

/// Decodes image bytes (format from the content), refusing sizes beyond `limits` from the header
/// before any pixel buffer is allocated. Animated GIF/WebP give their first frame.
pub fn decode(bytes: &[u8], origin: &str, limits: &DecodeLimits) -> Result<Decoded> {
    let mut r = reader(bytes, origin)?;
    let format = r.format().expect("checked");
    // The header is parsed without limits so that an oversized image gets the typed
    // `ImageTooLarge` error with its declared size; nothing large is allocated here.
    let mut lim = limits.image_limits();
    lim.max_image_width = None;
    lim.max_image_height = None;
    r.limits(lim);
    let mut d = r
        .into_decoder()
        .map_err(|e| decode_error(origin, e, limits))?;
    let (width, height) = d.dimensions();
    check_size(origin, width as u64, height as u64, limits)?;
    let total = d.total_bytes();
    if total > limits.max_alloc {
        return Err(bad(
            origin,
            format!(
                "decoding needs {total} bytes, more than the limit of {} bytes",
                limits.max_alloc
            ),
        ));
    }
    d.set_limits(limits.image_limits())
        .map_err(|e| decode_error(origin, e, limits))?;
    let info = ImageInfo {
        format,
        width,
        height,
        channels: d.color_type().channel_count(),
    };
    let image = DynamicImage::from_decoder(d).map_err(|e| decode_error(origin, e, limits))?;
    Ok(Decoded { info, image })
}

/// The largest centred square of an image.
pub fn centre_crop_square(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let s = w.min(h);
    imageops::crop_imm(img, (w - s) / 2, (h - s) / 2, s, s).to_image()
}

/// For each of `n` output pixels along an axis of `s >= n` input pixels, the input pixels it
/// covers and their weights (overlap of `[i, i+1)` with `[j s/n, (j+1) s/n)`, normalised).
fn area_weights(s: u32, n: u32) -> Vec<Vec<(usize, f64)>> {
    let r = s as f64 / n as f64;
    (0..n)
        .map(|j| {
            let (lo, hi) = (j as f64 * r, (j + 1) as f64 * r);
            (lo.floor() as usize..(hi.ceil() as usize).min(s as usize))
                .map(|i| {
                    let w = hi.min(i as f64 + 1.0) - lo.max(i as f64);
                    (i, w / r)
                })
                .filter(|&(_, w)| w > 0.0)
                .collect()
        })
        .collect()
}

/// Shrinks a square image to `n x n` by exact area averaging (each output pixel is the mean of
/// the input area it covers, as PIL's `BOX` or OpenCV's `INTER_AREA`), rounded to 8 bits.
fn area_downscale(img: &RgbImage, n: u32) -> RgbImage {
    let s = img.width();
    let wts = area_weights(s, n);
    // Horizontal pass: s rows x n columns, f64.
    let mut tmp = vec![[0f64; 3]; (s * n) as usize];
    for y in 0..s {
        for (j, ws) in wts.iter().enumerate() {
            let mut acc = [0f64; 3];
            for &(i, w) in ws {
                let p = img.get_pixel(i as u32, y).0;
                for c in 0..3 {
                    acc[c] += w * p[c] as f64;
                }
            }
            tmp[(y * n) as usize + j] = acc;
        }
    }
    RgbImage::from_fn(n, n, |x, j| {
        let mut acc = [0f64; 3];
        for &(i, w) in &wts[j as usize] {
            let p = tmp[i * n as usize + x as usize];
            for c in 0..3 {
                acc[c] += w * p[c];
            }
        }
        image::Rgb(acc.map(|v| v.round().clamp(0.0, 255.0) as u8))
    })
}

/// Centre crop to a square, then resize to `size x size`: unchanged if already that size,
/// exact area averaging when shrinking, bilinear (triangle filter) when enlarging.
pub fn crop_resize(img: &RgbImage, size: u32) -> RgbImage {
    let sq = centre_crop_square(img);
    match sq.width().cmp(&size) {
        std::cmp::Ordering::Equal => sq,
        std::cmp::Ordering::Greater => area_downscale(&sq, size),
        std::cmp::Ordering::Less => {
            imageops::resize(&sq, size, size, imageops::FilterType::Triangle)
        }
    }
}

/// An RGB image as a `3 x H x W` tensor in `[0, 1]` (`k / 255`).
pub fn rgb_to_tensor(img: &RgbImage) -> ImageTensor {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut data = vec![0f32; 3 * w * h];
    for (x, y, p) in img.enumerate_pixels() {
        for c in 0..3 {
            data[(c * h + y as usize) * w + x as usize] = p.0[c] as f32 / 255.0;
        }
    }
    ImageTensor {
        channels: 3,
        height: h,
        width: w,
        data,
    }
}

/// The whole path for one user image: decode (any compiled format) -> RGB -> centre crop ->
/// resize to `size x size` -> `3 x size x size` tensor in `[0, 1]`.
///
/// Errors: [`IndmError::BadImage`] for bytes that are not a decodable image (or a `size` of 0),
/// [`IndmError::ImageTooLarge`] for a header beyond `limits` (checked before decoding).
pub fn image_to_tensor(
    bytes: &[u8],
    origin: &str,
    size: u32,
    limits: &DecodeLimits,
) -> Result<ImageTensor> {
    if size == 0 || size > limits.max_side {
        return Err(IndmError::invalid(
            "image size",
            size,
            format!("must be between 1 and {}", limits.max_side),
        ));
    }
    let d = decode(bytes, origin, limits)?;
    Ok(rgb_to_tensor(&crop_resize(&d.image.to_rgb8(), size)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use image::{ImageEncoder, Rgb};

    /// PNG bytes of an RGB image.
    pub(crate) fn png_bytes(img: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(
                img.as_raw(),
                img.width(),
                img.height(),
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        out
    }

    /// A PNG whose header claims `w x h` (the rest of the file is a tiny, invalid stream).
    pub(crate) fn hostile_png(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend(w.to_be_bytes());
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
        v.extend(13u32.to_be_bytes());
        v.extend(&ihdr);
        v.extend(crc32(&ihdr).to_be_bytes());
        let idat = b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01";
        v.extend(((idat.len() - 4) as u32).to_be_bytes());
        v.extend(idat);
        v.extend(crc32(idat).to_be_bytes());
        v
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn a_png_becomes_a_chw_tensor_with_exact_values() {
        // 2x2: red, green / blue, white.
        let mut img = RgbImage::new(2, 2);
        img.put_pixel(0, 0, Rgb([255, 0, 0]));
        img.put_pixel(1, 0, Rgb([0, 255, 0]));
        img.put_pixel(0, 1, Rgb([0, 0, 255]));
        img.put_pixel(1, 1, Rgb([51, 102, 255]));
        let t = image_to_tensor(&png_bytes(&img), "t", 2, &DecodeLimits::default()).unwrap();
        assert_eq!((t.channels, t.height, t.width), (3, 2, 2));
        // Channel planes: R = [1, 0, 0, 0.2], G = [0, 1, 0, 0.4], B = [0, 0, 1, 1].
        let want = [
            1.0, 0.0, 0.0, 0.2, 0.0, 1.0, 0.0, 0.4, 0.0, 0.0, 1.0, 1.0f32,
        ];
        for (a, b) in t.data.iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{:?}", t.data);
        }
    }

    #[test]
    fn wide_images_are_centre_cropped_then_resized() {
        // 6x2: columns 0,1 and 4,5 black, columns 2,3 grey 200. The centre 2x2 square is
        // columns 2..4: all 200. Resized to 1x1: 200/255.
        let mut img = RgbImage::new(6, 2);
        for y in 0..2 {
            for x in 2..4 {
                img.put_pixel(x, y, Rgb([200, 200, 200]));
            }
        }
        let t = image_to_tensor(&png_bytes(&img), "t", 1, &DecodeLimits::default()).unwrap();
        assert_eq!(t.data.len(), 3);
        for v in &t.data {
            assert!((v - 200.0 / 255.0).abs() < 1e-6, "{v}");
        }
        // Shrinking a 4x4 checker of 0/200 to 2x2 averages each 2x2 block: exactly 100.
        let mut img = RgbImage::new(4, 4);
        for y in 0..4 {
            for x in 0..4 {
                let v = if (x + y) % 2 == 0 { 200 } else { 0 };
                img.put_pixel(x, y, Rgb([v, v, v]));
            }
        }
        let t = image_to_tensor(&png_bytes(&img), "t", 2, &DecodeLimits::default()).unwrap();
        for v in &t.data {
            assert_eq!(*v, 100.0 / 255.0);
        }
    }

    #[test]
    fn area_averaging_weights_are_the_covered_fractions() {
        // 3 -> 2: output 0 covers [0, 1.5): pixel 0 fully, pixel 1 half; weights 2/3, 1/3.
        let w = area_weights(3, 2);
        assert_eq!(w[0].len(), 2);
        assert!((w[0][0].1 - 2.0 / 3.0).abs() < 1e-15 && (w[0][1].1 - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!((w[1][0].0, w[1][1].0), (1, 2));
        // A 3x3 image with columns 0, 90, 180 shrunk to 2x2: (2*0 + 90)/3 = 30 and
        // (90 + 2*180)/3 = 150 in every row.
        let img = RgbImage::from_fn(3, 3, |x, _| Rgb([90 * x as u8; 3]));
        let out = crop_resize(&img, 2);
        assert_eq!(out.get_pixel(0, 0).0, [30; 3]);
        assert_eq!(out.get_pixel(1, 1).0, [150; 3]);
        // Enlarging a flat image keeps it flat.
        let up = crop_resize(&RgbImage::from_pixel(2, 2, Rgb([7, 8, 9])), 5);
        assert!(up.pixels().all(|p| p.0 == [7, 8, 9]));
    }

    #[test]
    fn other_formats_and_grey_images_decode_to_rgb() {
        // A grey BMP and a GIF both come out as three equal planes.
        let grey = image::GrayImage::from_pixel(3, 3, image::Luma([128]));
        let mut bmp = Vec::new();
        DynamicImage::ImageLuma8(grey.clone())
            .write_to(&mut Cursor::new(&mut bmp), image::ImageFormat::Bmp)
            .unwrap();
        let t = image_to_tensor(&bmp, "g.bmp", 3, &DecodeLimits::default()).unwrap();
        assert_eq!(t.data.len(), 27);
        assert!(t.data.iter().all(|v| (v - 128.0 / 255.0).abs() < 1e-6));
        let info = probe(&bmp, "g.bmp").unwrap();
        assert_eq!(info.format, image::ImageFormat::Bmp);
        let mut jpg = Vec::new();
        DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, Rgb([10, 200, 90])))
            .write_to(&mut Cursor::new(&mut jpg), image::ImageFormat::Jpeg)
            .unwrap();
        let t = image_to_tensor(&jpg, "c.jpg", 4, &DecodeLimits::default()).unwrap();
        // JPEG is lossy: within a few levels of the flat colour.
        assert!(
            (t.data[0] * 255.0 - 10.0).abs() < 4.0,
            "{}",
            t.data[0] * 255.0
        );
        assert!((t.data[16] * 255.0 - 200.0).abs() < 4.0);
        assert!((t.data[32] * 255.0 - 90.0).abs() < 4.0);
    }

    #[test]
    fn undecodable_bytes_get_typed_errors() {
        let l = DecodeLimits::default();
        for (bytes, needle) in [
            (&b""[..], "empty"),
            (
                b"hello world, not an image",
                "not an image in a known format",
            ),
            (b"\x89PNG\r\n\x1a\nGARBAGE", "cannot be decoded"),
        ] {
            match image_to_tensor(bytes, "up.png", 32, &l) {
                Err(e @ IndmError::BadImage { .. }) => {
                    let s = e.to_string();
                    assert!(s.contains(needle) && s.contains("up.png"), "{s}");
                }
                other => panic!("{other:?}"),
            }
        }
        // A truncated real PNG.
        let png = png_bytes(&RgbImage::from_pixel(16, 16, Rgb([1, 2, 3])));
        let e = image_to_tensor(&png[..png.len() - 20], "t", 8, &l).unwrap_err();
        assert!(matches!(e, IndmError::BadImage { .. }), "{e}");
        let e = image_to_tensor(&png, "t", 0, &l).unwrap_err();
        assert!(e.to_string().contains("invalid image size: 0"), "{e}");
    }

    #[test]
    fn a_hostile_header_is_refused_before_allocating() {
        let bytes = hostile_png(100_000, 100_000);
        assert_eq!(probe(&bytes, "h").unwrap().width, 100_000);
        let t0 = std::time::Instant::now();
        let e = image_to_tensor(&bytes, "h.png", 32, &DecodeLimits::default()).unwrap_err();
        assert!(t0.elapsed().as_millis() < 500);
        match &e {
            IndmError::ImageTooLarge { width, height, .. } => {
                assert_eq!((*width, *height), (100_000, 100_000))
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("100000x100000"), "{e}");
        // Within the side limit but over the pixel budget.
        let l = DecodeLimits {
            max_side: 8192,
            max_pixels: 1000,
            max_alloc: 1 << 20,
        };
        let e = image_to_tensor(&hostile_png(100, 100), "h", 8, &l).unwrap_err();
        assert!(matches!(e, IndmError::ImageTooLarge { .. }), "{e}");
        // Allowed size but a broken stream: an error, no panic.
        let e = image_to_tensor(&hostile_png(64, 64), "h", 8, &DecodeLimits::small()).unwrap_err();
        assert!(matches!(e, IndmError::BadImage { .. }), "{e}");
    }
}
