//! Image runs: `trainer train --data <folder> --class cat`. The same loop, checkpoints and
//! resume as the 2D runs ([`crate::run::train_loop`]); the data are 8-bit image folders
//! (dequantized, scaled per SDE, flipped), and the evaluation reports bits/dim (NELBO with
//! the residual, and the PF-ODE NLL with a Hutchinson divergence) and writes sample grids.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indm::Architecture;
use indm::data::dequant::Scaling;
use indm::data::folder::{FolderOptions, Mismatch, load_folder};
use indm::data::images::{BatchSpec, ImageSet};
use indm::image::likelihood::{OdeNllConfig, bpd, nelbo, ode_nll};
use indm::image::model::ImageModel;
use indm::likelihood::Estimate;
use indm::sample::{SamplerConfig, SamplerKind};
use indm::train::{TrainHyper, TrainState};
use serde::{Deserialize, Serialize};

use crate::config::Backend;
use crate::grid::{self, GridSpec};
use crate::run::{self, LoopOutcome, LoopSpec, TrainOptions, files};

/// Default image folder, relative to the workspace root (where `cargo run` is started).
pub const DEFAULT_DATA: &str = "../shared/data/cifar10_catdog";

/// Seed offset that keeps evaluation draws apart from training draws.
const EVAL_SALT: u64 = 0x1A6E_0000_0000;

/// Where the images come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageData {
    /// Folder with `train/<class>/*` and `test/<class>/*`.
    pub root: PathBuf,
    /// Only this class (e.g. `cat`); all classes if absent.
    #[serde(default)]
    pub class: Option<String>,
    /// Random horizontal flips of training images.
    pub flip: bool,
    /// Refuse images of another size or channel count instead of converting them.
    #[serde(default)]
    pub refuse_mismatch: bool,
}

/// Evaluation of an image run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageEvalConfig {
    /// Test images of the NELBO (the first ones of the test split).
    pub nelbo_images: usize,
    /// Dequantization + diffusion draws per test image of the NELBO.
    pub nelbo_draws: usize,
    /// Test images of the PF-ODE NLL (0: skip).
    pub nll_images: usize,
    /// RK45 tolerance (relative and absolute) of the PF-ODE NLL.
    pub nll_tol: f64,
    /// Samples in `samples.png`.
    pub sample_count: usize,
    /// Sampler of `samples.png`.
    pub sampler: SamplerConfig,
}

impl Default for ImageEvalConfig {
    fn default() -> Self {
        ImageEvalConfig {
            nelbo_images: 1000,
            nelbo_draws: 4,
            nll_images: 32,
            nll_tol: 1e-3,
            sample_count: 64,
            sampler: SamplerConfig {
                kind: SamplerKind::Em,
                steps: 200,
                ..Default::default()
            },
        }
    }
}

/// Everything that defines an image training run (`config.toml` of its folder).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRunConfig {
    /// Training data.
    pub data: ImageData,
    /// Training steps.
    pub steps: u64,
    /// Checkpoint every this many steps.
    pub checkpoint_every: u64,
    /// Write a metrics row every this many steps.
    pub log_every: u64,
    /// burn backend.
    pub backend: Backend,
    /// Start the score net from this identity-flow run (its folder or checkpoint file).
    #[serde(default)]
    pub warm_start: Option<PathBuf>,
    /// Model.
    pub arch: Architecture,
    /// Optimisation.
    pub hyper: TrainHyper,
    /// Evaluation.
    #[serde(default)]
    pub eval: ImageEvalConfig,
}

impl ImageRunConfig {
    /// INDM (Glow-lite + U-Net, VP) on `root`, 32x32 RGB, batch 64, score lr 2e-4 (spec),
    /// flow lr 1e-3, EMA 0.999.
    pub fn default_run(root: PathBuf, class: Option<String>) -> Self {
        let arch = Architecture::image(
            3,
            32,
            32,
            indm::SdeKind::Vp,
            indm::ImageFlowArch::from_name("glow").expect("known flow"),
            indm::UNetArch::default(),
        );
        let mut hyper = TrainHyper {
            batch: 64,
            ..Default::default()
        };
        hyper.score_opt.lr = 2e-4;
        ImageRunConfig {
            data: ImageData {
                root,
                class,
                flip: true,
                refuse_mismatch: false,
            },
            steps: 20_000,
            checkpoint_every: 250,
            log_every: 10,
            backend: Backend::Flex,
            warm_start: None,
            arch,
            hyper,
            eval: ImageEvalConfig::default(),
        }
    }

    /// Rejects unusable settings with a message naming the setting.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            bail!("invalid steps: 0 (must be a positive integer)");
        }
        if self.checkpoint_every == 0 || self.log_every == 0 {
            bail!("invalid checkpoint_every/log_every: must be positive integers");
        }
        self.arch.validate()?;
        if self.arch.image.is_none() {
            bail!("an image run needs an image architecture (arch.image)");
        }
        self.hyper.validate()?;
        self.eval.sampler.validate_for(&self.arch.sde)?;
        if self.eval.nelbo_images == 0 || self.eval.nelbo_draws == 0 || self.eval.sample_count == 0
        {
            bail!(
                "invalid eval settings: nelbo_images, nelbo_draws and sample_count must be positive"
            );
        }
        if !(self.eval.nll_tol > 0.0 && self.eval.nll_tol < 1.0) {
            bail!(
                "invalid eval.nll_tol {} (must be in (0, 1))",
                self.eval.nll_tol
            );
        }
        Ok(())
    }

    /// TOML text.
    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Reads a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("{} is not a valid image run configuration", path.display()))
    }

    /// The data range of the model.
    pub fn scaling(&self) -> Scaling {
        Scaling::for_sde(self.arch.sde.kind)
    }

    /// `cat | flow glow | vp | 3x32x32`.
    pub fn describe(&self) -> String {
        let img = self.arch.image.as_ref().expect("validated");
        format!(
            "{} | flow {} | {} | {}x{}x{}",
            self.data.class.as_deref().unwrap_or("all classes"),
            self.arch.flow_name(),
            self.arch.sde.kind.name(),
            img.channels,
            img.height,
            img.width
        )
    }
}

/// Whether a run folder's `config.toml` describes an image run.
pub fn is_image_config(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("data"))
}

/// Loads a split of the run's data (one class if the run has one), reporting conversions
/// and skipped files on stderr.
pub fn load_split(cfg: &ImageRunConfig, split: &str) -> Result<ImageSet> {
    let img = cfg.arch.image.as_ref().expect("validated");
    let opts = FolderOptions {
        size: img.height as u32,
        channels: img.channels as u8,
        mismatch: if cfg.data.refuse_mismatch {
            Mismatch::Refuse
        } else {
            Mismatch::Convert
        },
        ..FolderOptions::rgb(img.height as u32)
    };
    let all = load_folder(&cfg.data.root, split, &opts)?;
    let report = all.report.clone();
    let set = match &cfg.data.class {
        Some(c) => all.class(c)?,
        None => all,
    };
    eprintln!(
        "{}/{split}: {} images{} ({} converted to {}x{}x{}, {} files skipped in all classes)",
        cfg.data.root.display(),
        set.len(),
        cfg.data
            .class
            .as_ref()
            .map(|c| format!(" of class '{c}'"))
            .unwrap_or_default(),
        report.converted,
        img.channels,
        img.height,
        img.width,
        report.skipped.len()
    );
    for (file, why) in report.skipped.iter().take(5) {
        eprintln!("  skipped {file}: {why}");
    }
    if set.is_empty() {
        let class = cfg.data.class.as_deref().unwrap_or("?");
        let skipped = report
            .skipped
            .iter()
            .filter(|(f, _)| Path::new(f).parent().is_some_and(|p| p.ends_with(class)))
            .count();
        bail!(
            "no images of class '{class}' in {} ({skipped} file(s) skipped there)",
            cfg.data.root.join(split).join(class).display()
        );
    }
    Ok(set)
}

/// The training state a warm start begins from: the score net of an identity-flow run.
fn warm_state(cfg: &ImageRunConfig, source: &Path) -> Result<TrainState> {
    let ckpt = if source.is_dir() {
        source.join(files::CHECKPOINT)
    } else {
        source.to_path_buf()
    };
    let (src, _, _) = crate::checkpoint::load(&ckpt)
        .with_context(|| format!("reading the warm-start checkpoint {}", ckpt.display()))?;
    eprintln!(
        "warm start: score net from {} (step {}, flow {})",
        ckpt.display(),
        src.step,
        src.arch.flow_name()
    );
    Ok(TrainState::warm_start(
        &cfg.arch,
        &cfg.hyper,
        &src.arch,
        &src.params,
    )?)
}

/// Headline figures of an image run (`summary.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageSummary {
    /// Data folder.
    pub data: String,
    /// Class trained on.
    pub class: Option<String>,
    /// Flow name.
    pub flow: String,
    /// SDE name.
    pub sde: String,
    /// Training steps completed.
    pub steps: u64,
    /// Seed.
    pub seed: u64,
    /// Batch size.
    pub batch: usize,
    /// Backend.
    pub backend: String,
    /// Warm-start source, if any.
    pub warm_start: Option<String>,
    /// Parameters of the flow.
    pub params_flow: usize,
    /// Parameters of the score net.
    pub params_score: usize,
    /// FLOP of one score-net evaluation per image.
    pub unet_flop: u64,
    /// FLOP of one flow pass per image.
    pub flow_flop: u64,
    /// Training seconds (all sessions).
    pub train_seconds: f64,
    /// Steps per second of the last session.
    pub steps_per_second: f64,
    /// Test NELBO, bits/dim (with the residual).
    pub test_nelbo_bpd: f64,
    /// Its standard error.
    pub test_nelbo_bpd_se: f64,
    /// NELBO draws (images x draws).
    pub test_nelbo_draws: usize,
    /// Mean NELBO terms in bits/dim: flow, dsm, prior, residual, constant.
    pub test_nelbo_terms_bpd: BTreeMap<String, f64>,
    /// Test PF-ODE NLL, bits/dim.
    pub test_nll_bpd: Option<f64>,
    /// Its standard error.
    pub test_nll_bpd_se: Option<f64>,
    /// Test images of the NLL.
    pub test_nll_images: usize,
    /// Velocity evaluations of the NLL solve.
    pub test_nll_nfe: usize,
    /// Sampler of `samples.png`.
    pub sampler: String,
    /// Its steps.
    pub sampler_steps: usize,
}

/// Likelihood figures of a model on test images.
pub struct ImageLikelihoods {
    /// NELBO, bits/dim.
    pub nelbo: Estimate,
    /// Mean NELBO terms, bits/dim.
    pub terms: BTreeMap<String, f64>,
    /// PF-ODE NLL, bits/dim, and its NFE.
    pub nll: Option<(Estimate, usize)>,
}

/// NELBO (and PF-ODE NLL if `nll_images > 0`) of `model` on the test images.
pub fn likelihoods(
    model: &ImageModel,
    test: &ImageSet,
    scaling: Scaling,
    seed: u64,
    eval: &ImageEvalConfig,
) -> Result<ImageLikelihoods> {
    let d = model.dims();
    let ln2d = d as f64 * std::f64::consts::LN_2;
    let n = eval.nelbo_images.min(test.len());
    let mut totals = Vec::new();
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for draw in 0..eval.nelbo_draws as u64 {
        let b = test.eval_batch(seed ^ EVAL_SALT ^ (draw << 8), 0, n, scaling);
        let x: Vec<f64> = b.data.iter().map(|&v| v as f64).collect();
        let t = nelbo(model, &x, seed ^ EVAL_SALT, draw)?;
        for (k, v) in [
            ("flow", &t.flow),
            ("dsm", &t.dsm),
            ("prior", &t.prior),
            ("residual", &t.residual),
        ] {
            *sums.entry(k.into()).or_default() += v.iter().sum::<f64>();
        }
        totals.extend(t.total());
        *sums.entry("constant".into()).or_default() += t.constant * n as f64;
    }
    let count = totals.len() as f64;
    let terms = sums
        .into_iter()
        .map(|(k, v)| (k, v / count / ln2d))
        .collect();
    let nelbo = bpd(&Estimate::of(&totals), d, scaling);
    let nll = if eval.nll_images > 0 {
        let m = eval.nll_images.min(test.len());
        let b = test.eval_batch(seed ^ EVAL_SALT, 0, m, scaling);
        let x: Vec<f64> = b.data.iter().map(|&v| v as f64).collect();
        let r = ode_nll(
            model,
            &x,
            &OdeNllConfig {
                rtol: eval.nll_tol,
                atol: eval.nll_tol,
                seed: seed ^ EVAL_SALT,
            },
        )?;
        Some((bpd(&Estimate::of(&r.nll), d, scaling), r.nfe))
    } else {
        None
    };
    Ok(ImageLikelihoods { nelbo, terms, nll })
}

/// Writes `n` samples of `model` as a grid (8 per row) to `path`.
pub fn sample_grid(
    model: &ImageModel,
    n: usize,
    sampler: &SamplerConfig,
    scaling: Scaling,
    path: &Path,
) -> Result<()> {
    let (x, _) = indm::image::sample::sample(model, n, sampler)?;
    let unit: Vec<f64> = x.iter().map(|&v| scaling.unscale(v)).collect();
    let img = model.image();
    grid::write(
        path,
        &grid::rows_of(&unit, model.dims(), 8),
        GridSpec::new(img.shape()),
    )
}

/// Trains (or resumes) an image model, then evaluates it. `None` when stopped early or
/// evaluation was skipped.
pub fn train(cfg: &ImageRunConfig, opts: &TrainOptions) -> Result<Option<ImageSummary>> {
    cfg.validate()?;
    let set = load_split(cfg, "train")?;
    let scaling = cfg.scaling();
    let spec = LoopSpec {
        arch: &cfg.arch,
        hyper: &cfg.hyper,
        steps: cfg.steps,
        checkpoint_every: cfg.checkpoint_every,
        log_every: cfg.log_every,
        device: cfg.backend.device()?,
        config_toml: cfg.to_toml()?,
        description: format!("{}, backend {}", cfg.describe(), cfg.backend.name()),
    };
    let fresh = || match &cfg.warm_start {
        Some(src) => warm_state(cfg, src),
        None => Ok(TrainState::new(&cfg.arch, &cfg.hyper)?),
    };
    let batch = |step: u64| -> Result<Vec<f64>> {
        let b = set.batch(&BatchSpec {
            seed: cfg.hyper.seed,
            step,
            size: cfg.hyper.batch,
            scaling,
            flip: cfg.data.flip,
        })?;
        Ok(b.data.iter().map(|&v| v as f64).collect())
    };
    let LoopOutcome {
        state,
        train_seconds,
        steps_per_second,
    } = run::train_loop(&spec, opts, fresh, batch)?;
    if state.step < cfg.steps {
        return Ok(None);
    }
    let mut meta = BTreeMap::new();
    meta.insert(
        "indm.dataset".to_string(),
        cfg.data.root.display().to_string(),
    );
    if let Some(c) = &cfg.data.class {
        meta.insert("indm.class".to_string(), c.clone());
    }
    meta.insert("indm.seed".to_string(), cfg.hyper.seed.to_string());
    meta.insert("indm.step".to_string(), state.step.to_string());
    meta.insert("indm.weights".to_string(), "ema".to_string());
    indm::weights::save_model(
        &opts.dir.join(files::WEIGHTS),
        &state.arch,
        &state.ema.params,
        &meta,
    )?;
    if opts.skip_eval {
        return Ok(None);
    }
    let summary = evaluate(cfg, &state, &opts.dir, train_seconds, steps_per_second)?;
    Ok(Some(summary))
}

/// Likelihoods, sample grid, curves and `summary.json` of a trained model (EMA weights).
pub fn evaluate(
    cfg: &ImageRunConfig,
    state: &TrainState,
    dir: &Path,
    train_seconds: f64,
    steps_per_second: f64,
) -> Result<ImageSummary> {
    let t0 = Instant::now();
    let device = cfg.backend.device()?;
    let model = ImageModel::new(&state.arch, &state.ema.params, &device)?;
    let test = load_split(cfg, "test")?;
    let scaling = cfg.scaling();
    eprintln!(
        "evaluating: NELBO on {} test images x {} draws, PF-ODE NLL on {} ...",
        cfg.eval.nelbo_images.min(test.len()),
        cfg.eval.nelbo_draws,
        cfg.eval.nll_images.min(test.len())
    );
    let lk = likelihoods(&model, &test, scaling, cfg.hyper.seed, &cfg.eval)?;
    let mut scfg = cfg.eval.sampler.clone();
    scfg.seed = cfg.hyper.seed;
    sample_grid(
        &model,
        cfg.eval.sample_count,
        &scfg,
        scaling,
        &dir.join(files::SAMPLES),
    )?;
    let title = format!(
        "{} | {} steps | test NELBO {:.3} bits/dim",
        cfg.describe(),
        state.step,
        lk.nelbo.mean
    );
    run::curves_figure(
        &dir.join(files::METRICS),
        &dir.join(files::CURVES),
        &title,
        None,
    )?;
    let img = model.image();
    let (params_flow, params_score) = state.arch.param_counts();
    let summary = ImageSummary {
        data: cfg.data.root.display().to_string(),
        class: cfg.data.class.clone(),
        flow: cfg.arch.flow_name().to_string(),
        sde: cfg.arch.sde.kind.name().to_string(),
        steps: state.step,
        seed: cfg.hyper.seed,
        batch: cfg.hyper.batch,
        backend: cfg.backend.name().to_string(),
        warm_start: cfg.warm_start.as_ref().map(|p| p.display().to_string()),
        params_flow,
        params_score,
        unet_flop: indm::image::layout::unet_flops(img),
        flow_flop: indm::image::layout::glow_flops(img),
        train_seconds,
        steps_per_second,
        test_nelbo_bpd: lk.nelbo.mean,
        test_nelbo_bpd_se: lk.nelbo.std_error,
        test_nelbo_draws: lk.nelbo.count,
        test_nelbo_terms_bpd: lk.terms,
        test_nll_bpd: lk.nll.as_ref().map(|n| n.0.mean),
        test_nll_bpd_se: lk.nll.as_ref().map(|n| n.0.std_error),
        test_nll_images: lk.nll.as_ref().map_or(0, |n| n.0.count),
        test_nll_nfe: lk.nll.as_ref().map_or(0, |n| n.1),
        sampler: scfg.kind.name().to_string(),
        sampler_steps: scfg.steps,
    };
    indm::weights::write_atomic(
        &dir.join(files::SUMMARY),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    eprintln!("evaluated in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(summary)
}

/// Prints the headline figures.
pub fn print_summary(s: &ImageSummary, dir: &Path) {
    println!("run folder: {}", dir.display());
    println!(
        "  {} / flow {} / {}: {} steps in {:.1} s ({:.2} steps/s, seed {})",
        s.class.as_deref().unwrap_or("all classes"),
        s.flow,
        s.sde,
        s.steps,
        s.train_seconds,
        s.steps_per_second,
        s.seed
    );
    println!(
        "  test NELBO  {:.4} ± {:.4} bits/dim ({} draws)",
        s.test_nelbo_bpd, s.test_nelbo_bpd_se, s.test_nelbo_draws
    );
    if let (Some(v), Some(se)) = (s.test_nll_bpd, s.test_nll_bpd_se) {
        println!(
            "  test NLL    {v:.4} ± {se:.4} bits/dim (PF-ODE, Hutchinson, {} images, NFE {})",
            s.test_nll_images, s.test_nll_nfe
        );
    }
    println!(
        "  files: {}, {}, {}, {}, {}, {}, {}",
        files::WEIGHTS,
        files::CHECKPOINT,
        files::CONFIG,
        files::METRICS,
        files::SAMPLES,
        files::CURVES,
        files::SUMMARY
    );
}
