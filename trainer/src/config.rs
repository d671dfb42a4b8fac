//! The run configuration: what `train` resolves from defaults, a TOML file and
//! flags, and writes as `config.toml` into the run folder.

use anyhow::{Context, Result, bail};
use indm::Architecture;
use indm::data::Toy2d;
use indm::sample::{SamplerConfig, SamplerKind};
use indm::train::TrainHyper;
use serde::{Deserialize, Serialize};

/// Where training runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// burn's pure-Rust CPU backend (default, fastest measured on CPU).
    Flex,
    /// burn's older ndarray CPU backend (deprecated upstream; kept for benchmarks).
    Ndarray,
    /// burn's wgpu backend (build with `--features wgpu`).
    Wgpu,
    /// burn's CUDA backend (build with `--features cuda`).
    Cuda,
}

impl Backend {
    /// The burn device with autodiff (training).
    pub fn device(self) -> Result<burn::tensor::Device> {
        Ok(self.inference_device()?.autodiff())
    }

    /// The burn device without autodiff (inference).
    #[allow(deprecated)]
    pub fn inference_device(self) -> Result<burn::tensor::Device> {
        use burn::tensor::Device;
        Ok(match self {
            Backend::Flex => Device::flex(),
            Backend::Ndarray => Device::ndarray(),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Device::wgpu(Default::default()),
            #[cfg(feature = "cuda")]
            Backend::Cuda => Device::cuda(0),
            #[allow(unreachable_patterns)]
            other => bail!(
                "backend '{}' is not compiled in; rebuild with `cargo run -p trainer --features {}`",
                other.name(),
                other.name()
            ),
        })
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Ndarray => "ndarray",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        }
    }
}

/// Evaluation after training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Stop adding NELBO draws once the standard error is below this (nats).
    pub nelbo_target_se: f64,
    /// Upper bound on NELBO draws.
    pub nelbo_max_points: usize,
    /// Test points of the PF-ODE NLL.
    pub nll_points: usize,
    /// RK45 relative tolerance of the NLL.
    pub nll_rtol: f64,
    /// RK45 absolute tolerance of the NLL.
    pub nll_atol: f64,
    /// Model samples drawn for `samples.png`.
    pub sample_count: usize,
    /// Sampler of `samples.png` and `trajectories.png`.
    pub sampler: SamplerConfig,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            nelbo_target_se: 0.015,
            nelbo_max_points: 2_000_000,
            nll_points: 1000,
            nll_rtol: 1e-6,
            nll_atol: 1e-6,
            sample_count: 5000,
            sampler: SamplerConfig {
                kind: SamplerKind::Em,
                steps: 500,
                record_every: 10,
                ..Default::default()
            },
        }
    }
}

/// Everything that defines a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Training data.
    pub dataset: Toy2d,
    /// Training steps.
    pub steps: u64,
    /// Checkpoint every this many steps.
    pub checkpoint_every: u64,
    /// Write a metrics row every this many steps.
    pub log_every: u64,
    /// burn backend.
    pub backend: Backend,
    /// Model.
    pub arch: Architecture,
    /// Optimisation.
    pub hyper: TrainHyper,
    /// Evaluation.
    #[serde(default)]
    pub eval: EvalConfig,
}

impl RunConfig {
    /// The default run: INDM (8 couplings), VP, checkerboard, seed 0.
    pub fn default_run() -> Self {
        RunConfig {
            dataset: Toy2d::Checkerboard,
            steps: 25_000,
            checkpoint_every: 1000,
            log_every: 20,
            backend: Backend::Flex,
            arch: Architecture::default_2d(
                indm::SdeKind::Vp,
                indm::FlowArch::from_name("coupling").expect("known flow"),
            ),
            hyper: TrainHyper::default(),
            eval: EvalConfig::default(),
        }
    }

    /// Reads a TOML file.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| {
            format!(
                "config file {} is not a valid run configuration (write one with `trainer train --print-config`)",
                path.display()
            )
        })
    }

    /// TOML text of this configuration.
    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
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
        self.hyper.validate()?;
        self.eval.sampler.validate()?;
        if self.eval.nll_points == 0 || self.eval.sample_count == 0 {
            bail!("invalid eval settings: nll_points and sample_count must be positive");
        }
        Ok(())
    }
}
