//! `trainer train`: the training loop with progress, metrics, checkpoints and
//! resume, then evaluation, figures and `summary.json`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use indm::rng::Stream;
use indm::train::{StepMetrics, TrainState, train_step};
use indm::{CpuModel, IndmError};
use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::config::RunConfig;
use crate::eval;
use crate::plots;

/// File names inside a run folder.
pub mod files {
    /// Resolved configuration.
    pub const CONFIG: &str = "config.toml";
    /// Full training state.
    pub const CHECKPOINT: &str = "checkpoint.safetensors";
    /// EMA weights with the architecture in the metadata.
    pub const WEIGHTS: &str = "model.safetensors";
    /// Loss terms per logged step.
    pub const METRICS: &str = "metrics.csv";
    /// Headline figures.
    pub const SUMMARY: &str = "summary.json";
    /// Model samples over the data.
    pub const SAMPLES: &str = "samples.png";
    /// Latent and data-space trajectories.
    pub const TRAJECTORIES: &str = "trajectories.png";
    /// Loss curves.
    pub const CURVES: &str = "curves.png";
}

/// Headline figures of a run (`summary.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Data set name.
    pub dataset: String,
    /// Flow name (`coupling` or `identity`).
    pub flow: String,
    /// SDE name.
    pub sde: String,
    /// Training steps completed.
    pub steps: u64,
    /// Seed of every random draw.
    pub seed: u64,
    /// Batch size.
    pub batch: usize,
    /// burn backend used for training.
    pub backend: String,
    /// Truncation time.
    pub eps: f64,
    /// Parameters of the flow and the score net.
    pub params_flow: usize,
    /// Parameters of the score net.
    pub params_score: usize,
    /// Wall time spent in training steps (all sessions of a resumed run).
    pub train_seconds: f64,
    /// Training steps per second (this session).
    pub steps_per_second: f64,
    /// PF-ODE NLL on test points (nats per point).
    pub test_nll_nats: f64,
    /// Its standard error.
    pub test_nll_se: f64,
    /// Test points of the NLL.
    pub test_nll_points: usize,
    /// Velocity evaluations of the NLL solve.
    pub test_nll_nfe: usize,
    /// NELBO on test points (nats per point).
    pub test_nelbo_nats: f64,
    /// Its standard error.
    pub test_nelbo_se: f64,
    /// NELBO draws.
    pub test_nelbo_points: usize,
    /// NELBO - NLL.
    pub gap_nats: f64,
    /// Standard error of the gap.
    pub gap_se: f64,
    /// True differential entropy of the data (nats), where known.
    pub true_entropy_nats: Option<f64>,
    /// Its standard error (0 for closed forms).
    pub true_entropy_se: Option<f64>,
    /// Sampler used for the figures.
    pub sampler: String,
    /// Sampler steps.
    pub sampler_steps: usize,
    /// Score evaluations per sample of that sampler.
    pub sampler_nfe: usize,
}

/// `checkerboard | flow coupling | vp`: what a run trains, for messages and figure titles.
pub fn describe(cfg: &RunConfig) -> String {
    format!(
        "{} | flow {} | {}",
        cfg.dataset.name(),
        cfg.arch.flow.name(),
        cfg.arch.sde.kind.name()
    )
}

/// Picks `base`, or `base-2`, `base-3`, ... if it exists.
pub fn fresh_dir(base: &Path) -> PathBuf {
    if !base.exists() {
        return base.to_path_buf();
    }
    (2..)
        .map(|i| PathBuf::from(format!("{}-{i}", base.display())))
        .find(|p| !p.exists())
        .expect("some free name")
}

/// The default folder of a run: `runs/<dataset>-<flow>-<sde>-s<seed>`.
pub fn default_dir(cfg: &RunConfig) -> PathBuf {
    PathBuf::from("runs").join(format!(
        "{}-{}-{}-s{}",
        cfg.dataset.name(),
        cfg.arch.flow.name(),
        cfg.arch.sde.kind.name(),
        cfg.hyper.seed
    ))
}

pub const METRICS_HEADER: &str = "step,nelbo,flow,dsm,prior,grad_norm_flow,grad_norm_score";

/// Keeps only the metrics rows up to `step` (rows after a checkpoint are redone on resume).
pub fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = String::from(METRICS_HEADER);
    out.push('\n');
    for line in text.lines().skip(1) {
        let s: u64 = line
            .split(',')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX);
        if s <= step {
            out.push_str(line);
            out.push('\n');
        }
    }
    indm::weights::write_atomic(path, out.as_bytes())?;
    Ok(())
}

/// Reads `metrics.csv` back as columns.
pub fn read_metrics(path: &Path) -> Result<Vec<Vec<f64>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect())
}

/// Options of one training invocation.
pub struct TrainOptions {
    /// Run folder.
    pub dir: PathBuf,
    /// Continue from the folder's checkpoint.
    pub resume: bool,
    /// Hide the progress bar.
    pub quiet: bool,
    /// Stop after this many steps of this session (for tests of resume), without evaluating.
    pub stop_after: Option<u64>,
    /// Write the weights but skip evaluation, figures and summary.
    pub skip_eval: bool,
}

/// What the training loop needs to know about a run, 2D or image.
pub struct LoopSpec<'a> {
    /// The model.
    pub arch: &'a indm::Architecture,
    /// Optimisation.
    pub hyper: &'a indm::train::TrainHyper,
    /// Total steps.
    pub steps: u64,
    /// Checkpoint every this many steps.
    pub checkpoint_every: u64,
    /// Write a metrics row every this many steps.
    pub log_every: u64,
    /// Training device.
    pub device: burn::tensor::Device,
    /// `config.toml` text of the run.
    pub config_toml: String,
    /// One line saying what is trained (messages).
    pub description: String,
}

/// The result of a training session.
pub struct LoopOutcome {
    /// The state after the last step.
    pub state: TrainState,
    /// Training seconds of all sessions.
    pub train_seconds: f64,
    /// Steps per second of this session.
    pub steps_per_second: f64,
}

/// Starts or resumes the run in `opts.dir` and trains to `spec.steps` (or `stop_after`),
/// with progress, metrics, checkpoints and the non-finite-loss guard. `fresh` makes the
/// initial state of a new run; `batch(step)` gives the training batch of a step.
pub fn train_loop(
    spec: &LoopSpec,
    opts: &TrainOptions,
    fresh: impl FnOnce() -> Result<TrainState>,
    mut batch: impl FnMut(u64) -> Result<Vec<f64>>,
) -> Result<LoopOutcome> {
    let dir = &opts.dir;
    let ckpt_path = dir.join(files::CHECKPOINT);
    let metrics_path = dir.join(files::METRICS);
    let device = &spec.device;
    let (mut state, mut train_seconds) = if opts.resume {
        if !ckpt_path.exists() {
            bail!(
                "cannot resume: {} has no checkpoint ({} is missing)",
                dir.display(),
                ckpt_path.display()
            );
        }
        let (mut state, _, secs) = checkpoint::load(&ckpt_path)?;
        if let Some(diff) = spec.arch.difference(&state.arch) {
            bail!(
                "cannot resume {}: the requested architecture differs from the checkpoint's ({diff}); \
                 drop the conflicting flags or start a new run",
                dir.display()
            );
        }
        state.opt_flow.cfg = spec.hyper.flow_opt;
        state.opt_score.cfg = spec.hyper.score_opt;
        state.ema.decay = spec.hyper.ema_decay;
        if spec.steps < state.step {
            bail!(
                "cannot resume {}: it is at step {} already and --steps is the total ({} asked); \
                 give more than {} steps to continue",
                dir.display(),
                state.step,
                spec.steps,
                state.step
            );
        }
        truncate_metrics(&metrics_path, state.step)?;
        eprintln!("resuming {} at step {}", dir.display(), state.step);
        (state, secs)
    } else {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating run folder {}", dir.display()))?;
        let state = fresh()?;
        indm::weights::write_atomic(&metrics_path, format!("{METRICS_HEADER}\n").as_bytes())?;
        (state, 0.0)
    };
    indm::weights::write_atomic(&dir.join(files::CONFIG), spec.config_toml.as_bytes())?;
    eprintln!(
        "training INDM: {}, {} steps, batch {}, seed {}",
        spec.description, spec.steps, spec.hyper.batch, spec.hyper.seed,
    );

    let start_step = state.step;
    let last_step = match opts.stop_after {
        Some(k) => spec.steps.min(start_step + k),
        None => spec.steps,
    };
    let bar = if opts.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(spec.steps)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps | {msg} | {per_sec} | ETA {eta}")
            .expect("valid template"),
    );
    bar.set_position(start_step);
    let mut metrics_file = std::fs::OpenOptions::new()
        .append(true)
        .open(&metrics_path)
        .with_context(|| format!("opening {}", metrics_path.display()))?;
    let mut window: Vec<StepMetrics> = Vec::new();
    let mut smooth: Option<f64> = None;
    let started = Instant::now();
    let mut session_seconds = 0.0;
    let save = |state: &TrainState, session: f64| {
        checkpoint::save(&ckpt_path, state, spec.hyper, train_seconds + session)
    };
    // Test hook: poison the batch at one step to exercise the non-finite-loss path for real.
    let inject_nan: Option<u64> = std::env::var("INDM_INJECT_NAN_AT_STEP")
        .ok()
        .and_then(|v| v.parse().ok());
    while state.step < last_step {
        let mut x = batch(state.step)?;
        if inject_nan == Some(state.step) {
            x[0] = f64::NAN;
        }
        let t0 = Instant::now();
        let m = match train_step(&mut state, spec.hyper, &x, device) {
            Ok(m) => m,
            Err(e @ IndmError::NonFinite { .. }) => {
                bar.abandon();
                // The in-memory state is the last good one: keep it.
                save(&state, session_seconds)?;
                bail!(
                    "training stopped: {e}. The last good state (step {}) is saved in {}; \
                     lower the learning rates and resume with `trainer train --resume {}`",
                    state.step,
                    ckpt_path.display(),
                    dir.display()
                );
            }
            Err(e) => return Err(e.into()),
        };
        session_seconds += t0.elapsed().as_secs_f64();
        smooth = Some(smooth.map_or(m.nelbo, |s| 0.98 * s + 0.02 * m.nelbo));
        window.push(m);
        if state.step % spec.log_every == 0 || state.step == last_step {
            let k = window.len() as f64;
            let avg = |f: fn(&StepMetrics) -> f64| window.iter().map(f).sum::<f64>() / k;
            writeln!(
                metrics_file,
                "{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6}",
                state.step,
                avg(|m| m.nelbo),
                avg(|m| m.flow),
                avg(|m| m.dsm),
                avg(|m| m.prior),
                avg(|m| m.grad_norm_flow),
                avg(|m| m.grad_norm_score)
            )?;
            window.clear();
            bar.set_message(format!("loss {:.3}", smooth.unwrap_or(f64::NAN)));
        }
        bar.set_position(state.step);
        if state.step % spec.checkpoint_every == 0 || state.step == last_step {
            metrics_file.flush()?;
            save(&state, session_seconds)?;
        }
    }
    bar.finish_and_clear();
    let steps_done = state.step - start_step;
    train_seconds += session_seconds;
    let steps_per_second = if session_seconds > 0.0 {
        steps_done as f64 / session_seconds
    } else {
        0.0
    };
    eprintln!(
        "trained {steps_done} steps in {:.1} s ({steps_per_second:.2} steps/s; wall {:.1} s)",
        session_seconds,
        started.elapsed().as_secs_f64()
    );
    Ok(LoopOutcome {
        state,
        train_seconds,
        steps_per_second,
    })
}

/// Trains (or resumes), evaluates and writes every file of the run. Returns the summary
/// (`None` when `stop_after` ended the session early or evaluation was skipped).
pub fn train(cfg: &RunConfig, opts: &TrainOptions) -> Result<Option<Summary>> {
    cfg.validate()?;
    let spec = LoopSpec {
        arch: &cfg.arch,
        hyper: &cfg.hyper,
        steps: cfg.steps,
        checkpoint_every: cfg.checkpoint_every,
        log_every: cfg.log_every,
        device: cfg.backend.device()?,
        config_toml: cfg.to_toml()?,
        description: format!("{}, backend {}", describe(cfg), cfg.backend.name()),
    };
    let LoopOutcome {
        state,
        train_seconds,
        steps_per_second,
    } = train_loop(
        &spec,
        opts,
        || Ok(TrainState::new(&cfg.arch, &cfg.hyper)?),
        |step| {
            Ok(cfg
                .dataset
                .sample(cfg.hyper.batch, cfg.hyper.seed, step, Stream::Data))
        },
    )?;
    if state.step < cfg.steps {
        return Ok(None);
    }

    let dir = &opts.dir;
    let mut meta = BTreeMap::new();
    meta.insert("indm.dataset".to_string(), cfg.dataset.name().to_string());
    meta.insert("indm.seed".to_string(), cfg.hyper.seed.to_string());
    meta.insert("indm.step".to_string(), state.step.to_string());
    meta.insert("indm.weights".to_string(), "ema".to_string());
    indm::weights::save_model(
        &dir.join(files::WEIGHTS),
        &state.arch,
        &state.ema.params,
        &meta,
    )?;

    if opts.skip_eval {
        return Ok(None);
    }
    let model = CpuModel::new(&state.arch, &state.ema.params)?;
    let summary = evaluate(
        cfg,
        &model,
        dir,
        &SessionFigures {
            train_seconds,
            steps_per_second,
            steps: state.step,
        },
    )?;
    Ok(Some(summary))
}

/// Timing figures of the training session, for the summary.
pub struct SessionFigures {
    /// Total training seconds.
    pub train_seconds: f64,
    /// Steps per second of this session.
    pub steps_per_second: f64,
    /// Steps completed.
    pub steps: u64,
}

/// Likelihoods, figures and `summary.json` of a trained model.
pub fn evaluate(
    cfg: &RunConfig,
    model: &CpuModel,
    dir: &Path,
    fig: &SessionFigures,
) -> Result<Summary> {
    let t0 = Instant::now();
    eprintln!(
        "evaluating: NELBO to standard error < {} nats, PF-ODE NLL on {} points ...",
        cfg.eval.nelbo_target_se, cfg.eval.nll_points
    );
    let lk = eval::likelihoods(model, cfg.dataset, cfg.hyper.seed, &cfg.eval);
    let mut scfg = cfg.eval.sampler.clone();
    scfg.seed = cfg.hyper.seed;
    let set = eval::samples(model, cfg.eval.sample_count, &scfg)?;
    let data = eval::reference_data(cfg.dataset, cfg.eval.sample_count, cfg.hyper.seed);
    let title = format!(
        "{} | {} steps | NLL {:.3} NELBO {:.3} nats",
        describe(cfg),
        fig.steps,
        lk.nll.mean,
        lk.nelbo.mean
    );
    plots::samples(&dir.join(files::SAMPLES), &title, &data, &set.x)?;
    plots::trajectories(
        &dir.join(files::TRAJECTORIES),
        &format!(
            "reverse {} trajectories ({} steps): latent vs data space",
            scfg.kind.name(),
            scfg.steps
        ),
        &set.latent,
        &set.data,
        150,
    )?;
    let entropy = cfg.dataset.true_entropy();
    curves_figure(
        &dir.join(files::METRICS),
        &dir.join(files::CURVES),
        &title,
        entropy.as_ref().map(|e| e.nats),
    )?;
    let (params_flow, params_score) = model.arch.param_counts();
    let summary = Summary {
        dataset: cfg.dataset.name().to_string(),
        flow: cfg.arch.flow.name().to_string(),
        sde: cfg.arch.sde.kind.name().to_string(),
        steps: fig.steps,
        seed: cfg.hyper.seed,
        batch: cfg.hyper.batch,
        backend: cfg.backend.name().to_string(),
        eps: cfg.arch.eps,
        params_flow,
        params_score,
        train_seconds: fig.train_seconds,
        steps_per_second: fig.steps_per_second,
        test_nll_nats: lk.nll.mean,
        test_nll_se: lk.nll.std_error,
        test_nll_points: lk.nll.count,
        test_nll_nfe: lk.nll_nfe,
        test_nelbo_nats: lk.nelbo.mean,
        test_nelbo_se: lk.nelbo.std_error,
        test_nelbo_points: lk.nelbo.count,
        gap_nats: lk.gap,
        gap_se: lk.gap_se,
        true_entropy_nats: entropy.as_ref().map(|e| e.nats),
        true_entropy_se: entropy.as_ref().map(|e| e.std_error),
        sampler: scfg.kind.name().to_string(),
        sampler_steps: scfg.steps,
        sampler_nfe: set.nfe,
    };
    indm::weights::write_atomic(
        &dir.join(files::SUMMARY),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    eprintln!("evaluated in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(summary)
}

/// `curves.png` from `metrics.csv`.
pub fn curves_figure(metrics: &Path, out: &Path, title: &str, entropy: Option<f64>) -> Result<()> {
    let rows = read_metrics(metrics)?;
    let col = |j: usize| rows.iter().map(|r| (r[0], r[j])).collect::<Vec<_>>();
    let curves = vec![
        plots::Curve {
            name: "training NELBO (nats/point)".into(),
            points: col(1),
            reference: entropy.map(|e| (e, format!("true entropy {e:.4}"))),
        },
        plots::Curve {
            name: "-log|det dh/dx|".into(),
            points: col(2),
            reference: None,
        },
        plots::Curve {
            name: "score matching (IS, likelihood weighted)".into(),
            points: col(3),
            reference: None,
        },
        plots::Curve {
            name: "prior term -log pi(z_T)".into(),
            points: col(4),
            reference: None,
        },
    ];
    plots::curves(out, title, &curves)
}

/// Prints the headline figures.
pub fn print_summary(s: &Summary, dir: &Path) {
    println!("run folder: {}", dir.display());
    println!(
        "  {} / flow {} / {}: {} steps in {:.1} s ({:.1} steps/s, seed {})",
        s.dataset, s.flow, s.sde, s.steps, s.train_seconds, s.steps_per_second, s.seed
    );
    println!(
        "  test NLL   (PF-ODE, RK45) {:.4} ± {:.4} nats",
        s.test_nll_nats, s.test_nll_se
    );
    println!(
        "  test NELBO                {:.4} ± {:.4} nats",
        s.test_nelbo_nats, s.test_nelbo_se
    );
    println!(
        "  gap NELBO - NLL           {:.4} ± {:.4} nats",
        s.gap_nats, s.gap_se
    );
    if let Some(h) = s.true_entropy_nats {
        println!("  true entropy of the data  {h:.4} nats");
    }
    println!(
        "  files: {}, {}, {}, {}, {}, {}, {}, {}",
        files::WEIGHTS,
        files::CHECKPOINT,
        files::CONFIG,
        files::METRICS,
        files::SAMPLES,
        files::TRAJECTORIES,
        files::CURVES,
        files::SUMMARY
    );
}
