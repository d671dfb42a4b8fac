//! Writes the seed corpora of the fuzz targets into `fuzz/seeds/<target>/`:
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds` (stable is enough).
//! The files are small and committed; rerun after a change of the weights format.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use indm::arch::{Architecture, FlowArch, ScoreArch};
use indm::weights::{TensorFile, model_file};
use indm::{ParamSet, SdeKind};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
    println!("{} ({} bytes)", dir.join(name).display(), bytes.len());
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

/// A PNG whose header claims `w x h` pixels, with an empty image stream.
fn header_only_png(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    v.extend(13u32.to_be_bytes());
    v.extend(&ihdr);
    v.extend(crc32(&ihdr).to_be_bytes());
    v
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");

    // Weights: tiny real models (a few hundred parameters), one per flow and SDE kind.
    let dir = root.join("weights_loader");
    for (name, sde, flow) in [
        (
            "tiny-coupling-vp",
            SdeKind::Vp,
            FlowArch::Coupling2d {
                layers: 2,
                hidden: 3,
            },
        ),
        ("tiny-identity-ve", SdeKind::Ve, FlowArch::Identity),
    ] {
        let mut arch = Architecture::default_2d(sde, flow);
        arch.score = ScoreArch {
            hidden: 4,
            depth: 1,
            ..arch.score
        };
        let params = ParamSet::init(&arch, 1);
        let mut extra = BTreeMap::new();
        extra.insert("indm.seed".to_string(), "1".to_string());
        let bytes = model_file(&arch, &params, &extra)
            .unwrap()
            .to_bytes()
            .unwrap();
        write(&dir, &format!("{name}.safetensors"), &bytes);
    }
    // A valid tensor file without an architecture record.
    let bare = TensorFile::default().to_bytes().unwrap();
    write(&dir, "no-architecture.safetensors", &bare);

    // Images: a 5x3 RGB picture in every format, an RGBA PNG, a grey PNG, a header-only PNG.
    let dir = root.join("image_input");
    let img = RgbImage::from_fn(5, 3, |x, y| Rgb([(x * 50) as u8, (y * 80) as u8, 200]));
    for (name, fmt) in [
        ("rgb.png", ImageFormat::Png),
        ("rgb.jpg", ImageFormat::Jpeg),
        ("rgb.gif", ImageFormat::Gif),
        ("rgb.bmp", ImageFormat::Bmp),
        ("rgb.webp", ImageFormat::WebP),
    ] {
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img.clone())
            .write_to(&mut Cursor::new(&mut out), fmt)
            .unwrap();
        write(&dir, name, &out);
    }
    let rgba = RgbaImage::from_fn(3, 4, |x, y| Rgba([x as u8 * 80, y as u8 * 60, 9, 128]));
    let mut out = Vec::new();
    DynamicImage::ImageRgba8(rgba)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    write(&dir, "rgba.png", &out);
    let mut out = Vec::new();
    DynamicImage::ImageLuma8(image::GrayImage::from_fn(4, 4, |x, y| {
        image::Luma([(x * y * 16) as u8])
    }))
    .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
    .unwrap();
    write(&dir, "grey.png", &out);
    write(
        &dir,
        "header-100000x100000.png",
        &header_only_png(100_000, 100_000),
    );

    // Share links.
    let dir = root.join("share_state");
    for (i, q) in [
        "",
        "?v=1&view=2d&model=checkerboard&flow=indm&sampler=em&steps=200&seed=0&temp=1&t0=1&dir=reverse&n=10000",
        "v=1&model=moons&flow=baseline&sampler=ode-heun&steps=5&temp=0.1&t0=0.01&dir=forward",
        "v=1&view=image&image=cat%2F0001.png&sampler=pc&steps=1000&n=100",
        "v=2&steps=-3&temp=nan&seed=99999999999&x=%ZZ&&=&model=%E2%9C%93",
    ]
    .iter()
    .enumerate()
    {
        write(&dir, &format!("query-{i}.txt"), q.as_bytes());
    }
}
