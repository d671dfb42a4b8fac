//! `trainer translate`: image-to-image translation between two image runs' domains, in
//! their flows' latent spaces (spec 6.2, 6.3): latent SDEdit with the target model at
//! several strengths `t0`, and latent DDIB (source PF-ODE encode, target PF-ODE decode)
//! with its cycle error (translate, then translate back with the roles swapped).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indm::data::dequant::Scaling;
use indm::data::image::{DecodeLimits, image_to_tensor};
use indm::image::model::ImageModel;
use indm::image::sample::{ddib, sdedit};
use indm::sample::{SamplerConfig, SamplerKind};
use serde::Serialize;

use crate::cli::TranslateArgs;
use crate::grid::{self, GridSpec};
use crate::image_run::{ImageRunConfig, load_split};
use crate::run::files;

/// An image run's configuration and EMA model.
pub fn load_image_run(
    dir: &Path,
    backend: crate::config::Backend,
) -> Result<(ImageRunConfig, ImageModel)> {
    let cfg_path = dir.join(files::CONFIG);
    if !cfg_path.exists() {
        bail!(
            "{} is not a run folder ({} is missing)",
            dir.display(),
            cfg_path.display()
        );
    }
    let cfg = ImageRunConfig::from_toml_file(&cfg_path)?;
    let (arch, params, _) =
        indm::weights::load_model(&dir.join(files::WEIGHTS)).with_context(|| {
            format!(
                "{} has no finished model (train it to the end first)",
                dir.display()
            )
        })?;
    let model = ImageModel::new(&arch, &params, &backend.device()?)?;
    Ok((cfg, model))
}

/// An image model from a run folder (with its configuration) or straight from a weights
/// file such as the browser demo's `web/models/cat-indm.safetensors` (no configuration:
/// the images to translate must then come from `--input`).
fn load_image_model(
    path: &Path,
    backend: crate::config::Backend,
) -> Result<(Option<ImageRunConfig>, ImageModel)> {
    if path.is_file() {
        let (arch, params, _) = indm::weights::load_model(path)
            .with_context(|| format!("reading image model {}", path.display()))?;
        let model = ImageModel::new(&arch, &params, &backend.device()?)
            .with_context(|| format!("{} is not an image model", path.display()))?;
        return Ok((None, model));
    }
    let (cfg, model) = load_image_run(path, backend)?;
    Ok((Some(cfg), model))
}

/// Pixels in `[0, 1]` of the images at `path` (one file, or every image file of a folder,
/// sorted by name), centre-cropped and resized to `size`; undecodable files are skipped and
/// counted. Returns `C H W` values per image (C = `channels`) and the skipped count.
pub fn read_inputs(
    path: &Path,
    size: usize,
    channels: usize,
) -> Result<(Vec<f64>, Vec<String>, usize)> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading folder {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        v.sort();
        v
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        bail!("input {}: no such file or folder", path.display());
    };
    let mut out = Vec::new();
    let mut names = Vec::new();
    let mut skipped = 0;
    for f in &files {
        let origin = f.display().to_string();
        let bytes = std::fs::read(f).with_context(|| format!("reading {origin}"))?;
        match image_to_tensor(&bytes, &origin, size as u32, &DecodeLimits::default()) {
            Ok(t) => {
                let hw = size * size;
                if channels == 3 {
                    out.extend(t.data.iter().map(|&v| v as f64));
                } else {
                    // ITU-R BT.601 luma of the RGB tensor.
                    out.extend((0..hw).map(|j| {
                        0.299 * t.data[j] as f64
                            + 0.587 * t.data[hw + j] as f64
                            + 0.114 * t.data[2 * hw + j] as f64
                    }));
                }
                names.push(origin);
            }
            Err(e) => {
                eprintln!("skipped {origin}: {e}");
                skipped += 1;
            }
        }
    }
    if names.is_empty() {
        bail!(
            "input {}: no decodable image ({} file(s), {skipped} skipped)",
            path.display(),
            files.len()
        );
    }
    Ok((out, names, skipped))
}

/// Fewest DDIB steps that give a usable picture with the shipped models (cycle error 0.10
/// at 20 Heun steps, 0.23 at 10, 76 at 5; the browser demo warns at the same count).
const DDIB_MIN_STEPS: usize = 20;

#[derive(Serialize)]
struct SdeditRow {
    t0: f64,
    steps: usize,
    seconds: f64,
    /// Mean squared distance to the source in [0, 1] pixel units (faithfulness).
    mse_to_source: f64,
}

#[derive(Serialize)]
struct DdibReport {
    steps: usize,
    seconds: f64,
    mse_to_source: f64,
    /// Translate then translate back: mean absolute error in [0, 1] pixel units.
    cycle_mean_abs: f64,
    /// Root mean squared cycle error.
    cycle_rms: f64,
    /// Largest cycle error.
    cycle_max_abs: f64,
}

#[derive(Serialize)]
struct TranslateReport {
    source: String,
    target: String,
    images: usize,
    inputs: Vec<String>,
    skipped: usize,
    sampler: String,
    seed: u64,
    sdedit: Vec<SdeditRow>,
    ddib: Option<DdibReport>,
}

fn mse(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64
}

/// Runs `trainer translate`.
pub fn translate_cmd(a: TranslateArgs) -> Result<()> {
    let (scfg, source) = load_image_model(&a.source, a.backend)?;
    let (_, target) = load_image_model(&a.target, a.backend)?;
    if source.image().shape() != target.image().shape() {
        bail!(
            "the models take images of different shapes ({:?} vs {:?})",
            source.image().shape(),
            target.image().shape()
        );
    }
    if a.count <= 0 {
        bail!("invalid count: {} (must be a positive integer)", a.count);
    }
    if a.steps <= 0 {
        bail!("invalid steps: {} (must be a positive integer)", a.steps);
    }
    let (count, steps) = (a.count as usize, a.steps as usize);
    let t0s: Vec<f64> =
        a.t0.split(',')
            .map(|s| {
                s.trim().parse::<f64>().with_context(|| {
                    format!("invalid t0 '{s}' (expected numbers like 0.3,0.5,0.7)")
                })
            })
            .collect::<Result<_>>()?;
    let (do_sdedit, do_ddib) = match a.method.as_str() {
        "sdedit" => (true, false),
        "ddib" => (false, true),
        "both" => (true, true),
        other => bail!("unknown method '{other}'; valid choices are: sdedit, ddib, both"),
    };
    let kind = SamplerKind::from_name(&a.sampler)?;
    if do_ddib && steps < DDIB_MIN_STEPS {
        eprintln!(
            "warning: DDIB with {steps} steps is inaccurate (the uniform time grid takes big \
             steps where the score is large, near t = eps; the cycle error explodes below about \
             {DDIB_MIN_STEPS} steps): use --steps {DDIB_MIN_STEPS} or more"
        );
    }
    let img = target.image().clone();
    let d = target.dims();
    // Inputs in [0, 1] (mid-bin values of 8-bit pixels for the test split).
    let (unit, names, skipped) = match &a.input {
        Some(p) => {
            let (u, n, s) = read_inputs(p, img.height, img.channels)?;
            (u, n, s)
        }
        None => {
            let Some(scfg) = &scfg else {
                bail!(
                    "--source {} is a weights file, which names no test images: give the \
                     images to translate with --input (a file or a folder)",
                    a.source.display()
                );
            };
            let test = load_split(scfg, "test")?;
            let n = count.min(test.len());
            let unit: Vec<f64> = test.pixels[..n * d]
                .iter()
                .map(|&k| indm::data::dequant::dequantize(k, 0.5))
                .collect();
            let names = (0..n)
                .map(|i| format!("{}/test #{i}", scfg.data.root.display()))
                .collect();
            (unit, names, 0)
        }
    };
    let n = (unit.len() / d).min(count);
    let unit = &unit[..n * d];
    let scaling = Scaling::for_sde(target.arch.sde.kind);
    let x: Vec<f64> = unit.iter().map(|&v| scaling.scale(v)).collect();
    let to_unit = |v: &[f64]| -> Vec<f64> { v.iter().map(|&y| scaling.unscale(y)).collect() };
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "translate-{}-to-{}",
            a.source.file_name().unwrap_or_default().to_string_lossy(),
            a.target.file_name().unwrap_or_default().to_string_lossy()
        ))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let spec = GridSpec::new(img.shape());
    let mut rep = TranslateReport {
        source: a.source.display().to_string(),
        target: a.target.display().to_string(),
        images: n,
        inputs: names.into_iter().take(n).collect(),
        skipped,
        sampler: kind.name().to_string(),
        seed: a.seed,
        sdedit: Vec::new(),
        ddib: None,
    };
    if do_sdedit {
        let mut rows_data = vec![unit.to_vec()];
        for &t0 in &t0s {
            let k = ((steps as f64 * t0).ceil() as usize).max(1);
            let cfg = SamplerConfig {
                kind,
                steps: k,
                seed: a.seed,
                ..Default::default()
            };
            let t = Instant::now();
            let y = to_unit(&sdedit(&target, &x, t0, &cfg)?);
            let secs = t.elapsed().as_secs_f64();
            eprintln!("SDEdit t0 = {t0}: {k} steps in {secs:.1} s");
            rep.sdedit.push(SdeditRow {
                t0,
                steps: k,
                seconds: secs,
                mse_to_source: mse(&y, unit),
            });
            rows_data.push(y);
        }
        let rows: Vec<Vec<&[f64]>> = rows_data.iter().map(|r| r.chunks(d).collect()).collect();
        grid::write(&out.join("sdedit.png"), &rows, spec)?;
    }
    if do_ddib {
        let cfg = SamplerConfig {
            kind: SamplerKind::OdeHeun,
            steps,
            denoise: false,
            ..Default::default()
        };
        let t = Instant::now();
        let y = ddib(&source, &target, &x, &cfg)?;
        let back = ddib(&target, &source, &y, &cfg)?;
        let secs = t.elapsed().as_secs_f64();
        let (yu, bu) = (to_unit(&y), to_unit(&back));
        let err: Vec<f64> = bu.iter().zip(unit).map(|(a, b)| (a - b).abs()).collect();
        let r = DdibReport {
            steps,
            seconds: secs,
            mse_to_source: mse(&yu, unit),
            cycle_mean_abs: err.iter().sum::<f64>() / err.len() as f64,
            cycle_rms: (err.iter().map(|e| e * e).sum::<f64>() / err.len() as f64).sqrt(),
            cycle_max_abs: err.iter().copied().fold(0.0, f64::max),
        };
        eprintln!(
            "DDIB: {steps} Heun steps each way, there and back in {secs:.1} s; cycle error mean {:.4}, max {:.4} ([0, 1] units)",
            r.cycle_mean_abs, r.cycle_max_abs
        );
        let rows: Vec<Vec<&[f64]>> = [unit, &yu[..], &bu[..]]
            .iter()
            .map(|r| r.chunks(d).collect())
            .collect();
        grid::write(&out.join("ddib.png"), &rows, spec)?;
        rep.ddib = Some(r);
    }
    let json = serde_json::to_string_pretty(&rep)?;
    indm::weights::write_atomic(&out.join("translate.json"), json.as_bytes())?;
    println!("{json}");
    println!(
        "wrote {}: {}translate.json (rows: source, then {})",
        out.display(),
        match (do_sdedit, do_ddib) {
            (true, true) => "sdedit.png, ddib.png, ",
            (true, false) => "sdedit.png, ",
            _ => "ddib.png, ",
        },
        if do_sdedit {
            format!("SDEdit at t0 = {}; DDIB: translated, translated back", a.t0)
        } else {
            "translated, translated back".into()
        }
    );
    Ok(())
}
