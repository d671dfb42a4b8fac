//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Backend;

const EXAMPLES: &str = "\
Examples:
  trainer                                    train INDM on the checkerboard with the default budget
  trainer train --dataset moons --steps 4000 train on two moons
  trainer train --flow identity              the linear-diffusion baseline (DDPM++), same settings
  trainer train --resume runs/checkerboard-coupling-vp-s0 --steps 12000
                                             continue a run (from its last checkpoint) to 12000 steps
  trainer sample --run runs/checkerboard-coupling-vp-s0 --sampler ode-heun --steps 20
  trainer nll --run runs/checkerboard-coupling-vp-s0
  trainer compare --steps 4000               INDM vs the identity-flow baseline, one report
  trainer bench --backend ndarray            steps/s of the default model on a backend
  trainer bench-sample --backend wgpu        fused WGSL sampler vs burn op by op (needs --features wgpu)

Images (default folder ../shared/data/cifar10_catdog, i.e. run from the workspace root):
  trainer train --class cat --flow identity --out runs/cat-id
                                             the linear baseline on CIFAR-10 cats (U-Net score net)
  trainer train --class cat --warm-start runs/cat-id --out runs/cat-indm
                                             INDM (Glow-lite flow), score net warm-started from it
  trainer translate --source runs/dog-indm --target runs/cat-indm --count 16 --out runs/dog2cat
                                             dog->cat: latent SDEdit at three strengths and latent DDIB
  trainer bench --data ../shared/data/cifar10_catdog --batch 64
                                             steps/s of the default image model";

/// Implicit Nonlinear Diffusion Model: train, sample, evaluate and compare on 2D data.
#[derive(Parser, Debug)]
#[command(name = "trainer", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// What to do (default: `train` with the default settings).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (INDM by default) and evaluate it.
    Train(TrainArgs),
    /// Draw samples from a trained model: a PNG and a CSV of points.
    Sample(SampleArgs),
    /// Test NLL (PF-ODE) and NELBO of a trained model.
    Nll(NllArgs),
    /// Train INDM and the identity-flow baseline with identical settings and seed; one report.
    Compare(TrainArgs),
    /// Time training steps of the default model (for BENCHMARKS.md); prints one JSON line.
    Bench(BenchArgs),
    /// Particle-steps/s of 2D sampling: the fused WGSL kernels vs burn op by op; one JSON line.
    BenchSample(BenchSampleArgs),
    /// Image-to-image translation between two image runs: latent SDEdit and latent DDIB.
    Translate(TranslateArgs),
}

/// Settings of `translate`.
#[derive(Args, Debug)]
pub struct TranslateArgs {
    /// Run folder of the source domain's model (DDIB encodes with it; its test split
    /// provides the inputs unless --input is given).
    #[arg(long)]
    pub source: PathBuf,
    /// Run folder of the target domain's model.
    #[arg(long)]
    pub target: PathBuf,
    /// An image file or a folder of images to translate (default: the source run's test images).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Number of images (the first ones).
    #[arg(long, default_value_t = 16, allow_hyphen_values = true)]
    pub count: i64,
    /// SDEdit strengths t0, comma separated.
    #[arg(long, default_value = "0.3,0.5,0.7")]
    pub t0: String,
    /// Steps of the SDEdit sampler over [eps, 1] (scaled by t0) and of the DDIB ODEs.
    #[arg(long, default_value_t = 100, allow_hyphen_values = true)]
    pub steps: i64,
    /// SDEdit sampler: em, pc, ode-euler or ode-heun (DDIB always uses ode-heun).
    #[arg(long, default_value = "em")]
    pub sampler: String,
    /// Which translations: sdedit, ddib or both.
    #[arg(long, default_value = "both")]
    pub method: String,
    /// Seed of the SDEdit noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (grids and translate.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// burn backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: Backend,
}

/// Settings of `bench-sample`.
#[derive(Args, Debug)]
pub struct BenchSampleArgs {
    /// burn backend of the op-by-op sampler (`wgpu` needs `--features wgpu` and then
    /// runs on the same adapter as the fused kernels).
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: Backend,
    /// Particles.
    #[arg(long, default_value_t = 10_000)]
    pub particles: i64,
    /// Euler-Maruyama steps per round.
    #[arg(long, default_value_t = 100)]
    pub steps: i64,
    /// Timed rounds of each sampler (after one untimed warm-up round each).
    #[arg(long, default_value_t = 3)]
    pub rounds: i64,
    /// A trained model's weights file (default: the default 2D INDM, freshly initialised).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Particles per invocation of the fused kernels, 1..=16 (default: the adapter's: 4 on
    /// CPU adapters, 1 on GPUs). Large values compile slowly on CPU adapters: 8 took over a
    /// minute per entry point on lavapipe.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub particles_per_invocation: Option<u32>,
    /// Score weights of the fused kernels.
    #[arg(long, value_enum, default_value = "auto")]
    pub weights: WeightsArg,
}

/// `bench-sample --weights`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightsArg {
    /// Uniform buffers where they fit the adapter's limits, storage buffers otherwise.
    Auto,
    /// Storage buffers throughout.
    Storage,
}

impl WeightsArg {
    /// The runtime's placement.
    pub fn placement(self) -> indm::gpu::WeightPlacement {
        match self {
            WeightsArg::Auto => indm::gpu::WeightPlacement::Auto,
            WeightsArg::Storage => indm::gpu::WeightPlacement::Storage,
        }
    }
}

/// Settings of `bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// burn backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: Backend,
    /// Timed steps.
    #[arg(long, default_value_t = 200)]
    pub steps: i64,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 20)]
    pub warmup: i64,
    /// Batch size.
    #[arg(long, default_value_t = 512)]
    pub batch: i64,
    /// Flow: coupling or identity (2D); glow or identity (images).
    #[arg(long, default_value = "coupling")]
    pub flow: String,
    /// Time the default image model (U-Net + Glow-lite, 32x32 RGB) on this image folder instead.
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// Settings of a training run. Flags override the config file, which overrides the defaults.
#[derive(Args, Debug, Clone, Default)]
pub struct TrainArgs {
    /// Data set: checkerboard, 8gaussians, moons, swissroll, 2spirals, pinwheel, rings, circles.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Image folder with train/<class>/ and test/<class>/ (an image run; default
    /// ../shared/data/cifar10_catdog when --class is given).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Train on this class of the image folder only (e.g. cat).
    #[arg(long)]
    pub class: Option<String>,
    /// Image runs: start the score net from this identity-flow run (spec 2.5).
    #[arg(long)]
    pub warm_start: Option<PathBuf>,
    /// Image runs: test images of the NELBO.
    #[arg(long, allow_hyphen_values = true)]
    pub nelbo_images: Option<i64>,
    /// Image runs: number of images in samples.png.
    #[arg(long, allow_hyphen_values = true)]
    pub sample_count: Option<i64>,
    /// Image runs: steps of the sampler of samples.png.
    #[arg(long, allow_hyphen_values = true)]
    pub sample_steps: Option<i64>,
    /// Flow: coupling (INDM) or identity (linear baseline); for images glow or identity.
    #[arg(long)]
    pub flow: Option<String>,
    /// SDE: vp, sub-vp or ve.
    #[arg(long)]
    pub sde: Option<String>,
    /// Training steps (total, also when resuming).
    #[arg(long, allow_hyphen_values = true)]
    pub steps: Option<i64>,
    /// Batch size.
    #[arg(long, allow_hyphen_values = true)]
    pub batch: Option<i64>,
    /// Score-net learning rate (AdamW).
    #[arg(long, allow_hyphen_values = true)]
    pub lr_score: Option<f64>,
    /// Flow learning rate (AdamW).
    #[arg(long, allow_hyphen_values = true)]
    pub lr_flow: Option<f64>,
    /// Step type: joint or alternating.
    #[arg(long)]
    pub step_type: Option<String>,
    /// Seed of every random draw.
    #[arg(long, allow_hyphen_values = true)]
    pub seed: Option<u64>,
    /// Truncation time eps.
    #[arg(long)]
    pub eps: Option<f64>,
    /// sigma_max of the VE SDE (sigma_min is 0.01).
    #[arg(long)]
    pub sigma_max: Option<f64>,
    /// Uniform diffusion times instead of importance sampling.
    #[arg(long)]
    pub no_importance: bool,
    /// Checkpoint every N steps.
    #[arg(long, allow_hyphen_values = true)]
    pub checkpoint_every: Option<i64>,
    /// burn backend.
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// A TOML run configuration (see --print-config).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run folder (default: runs/<dataset>-<flow>-<sde>-s<seed>, made unique).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Resume the run in this folder from its checkpoint.
    #[arg(long, conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// Print the resolved configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Test PF-ODE NLL points of the final evaluation.
    #[arg(long, allow_hyphen_values = true)]
    pub nll_points: Option<i64>,
    /// Train only: write the weights but skip the evaluation, figures and summary.
    #[arg(long)]
    pub skip_eval: bool,
    /// Stop this session after N steps without evaluating (used by the crash/resume tests).
    #[arg(long, hide = true)]
    pub stop_after: Option<u64>,
}

/// Settings of `sample`.
#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Run folder (uses its model.safetensors and config.toml).
    #[arg(long, required_unless_present = "weights")]
    pub run: Option<PathBuf>,
    /// A weights file instead of a run folder.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Sampler: em, pc, ode-euler, ode-heun, ode-rk45.
    #[arg(long, default_value = "em")]
    pub sampler: String,
    /// Sampler steps.
    #[arg(long, default_value_t = 500, allow_hyphen_values = true)]
    pub steps: i64,
    /// Number of samples.
    #[arg(long, default_value_t = 5000, allow_hyphen_values = true)]
    pub count: i64,
    /// Seed.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub seed: u64,
    /// Temperature multiplying the final latent.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Langevin snr (pc).
    #[arg(long, default_value_t = 0.16)]
    pub snr: f64,
    /// Output PNG (a CSV of the points is written next to it).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Settings of `nll`.
#[derive(Args, Debug)]
pub struct NllArgs {
    /// Run folder.
    #[arg(long)]
    pub run: PathBuf,
    /// Test points of the PF-ODE NLL.
    #[arg(long, default_value_t = 1000, allow_hyphen_values = true)]
    pub points: i64,
    /// Trace: exact or hutchinson.
    #[arg(long, default_value = "exact")]
    pub trace: String,
    /// RK45 tolerance (relative and absolute).
    #[arg(long, default_value_t = 1e-6, allow_hyphen_values = true)]
    pub tol: f64,
    /// Target standard error of the NELBO estimate (nats).
    #[arg(long, default_value_t = 0.015)]
    pub nelbo_se: f64,
    /// Image runs: test images of the NELBO (default: the run's setting).
    #[arg(long, allow_hyphen_values = true)]
    pub nelbo_images: Option<i64>,
    /// Image runs: NELBO draws per test image (default: the run's setting).
    #[arg(long, allow_hyphen_values = true)]
    pub nelbo_draws: Option<i64>,
}
