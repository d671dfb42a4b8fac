//! `bench-sample`: particle-steps per second of 2D Euler-Maruyama sampling with the
//! fused WGSL kernels (one dispatch per step for all particles) versus the same plan
//! through burn, one tensor op at a time, on a burn device (with `--backend wgpu`, the
//! same adapter). Both run the coefficients of one [`Plan`]; the burn path draws its
//! noise on the device, so neither side moves data to the host between steps.

use anyhow::{Result, bail};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use indm::gpu::{GpuContext, GpuModel2d, KernelOptions, PlanRun};
use indm::sample::plan::{self, Op, Plan, Start};
use indm::sample::{SamplerConfig, SamplerKind};
use indm::train::{BurnParams, sigma_score};
use indm::{Architecture, ParamSet};
use serde::Serialize;

/// What to time.
pub struct Setup<'a> {
    /// Model architecture.
    pub arch: &'a Architecture,
    /// Its weights.
    pub params: &'a ParamSet,
    /// Particles per run.
    pub particles: u32,
    /// Euler-Maruyama steps per run.
    pub steps: usize,
    /// Timed rounds of each sampler.
    pub rounds: usize,
    /// burn device of the op-by-op sampler.
    pub device: &'a Device,
    /// Its backend's name.
    pub backend: &'a str,
    /// Kernel choices of the fused sampler.
    pub kernel: KernelOptions,
}

/// The measurement, printed as one JSON line.
#[derive(Debug, Serialize)]
pub struct Report {
    adapter: String,
    burn_backend: String,
    particles: u32,
    steps: usize,
    rounds: usize,
    /// Particles per invocation of the fused kernels.
    particles_per_invocation: u32,
    /// Where the fused kernels' first layer, biases and output layer live.
    weights_small: String,
    /// Where the fused kernels' hidden-to-hidden layers live.
    weights_hidden: String,
    /// Seconds to load the model for the fused kernels: weight upload and every pipeline
    /// compiled (by the driver, whose on-disk shader cache may already hold them).
    model_load_seconds: f64,
    fused_seconds: Vec<f64>,
    burn_seconds: Vec<f64>,
    fused_particle_steps_per_s: f64,
    burn_particle_steps_per_s: f64,
    /// Fused over burn, from the best round of each.
    speedup: f64,
}

/// Runs the benchmark.
pub fn run(s: &Setup) -> Result<Report> {
    let cfg = SamplerConfig {
        kind: SamplerKind::Em,
        steps: s.steps,
        denoise: false,
        ..Default::default()
    };
    let plan = plan::reverse(s.arch, &cfg, Start::Prior)?;
    let ctx = GpuContext::new_blocking()?;
    let t0 = std::time::Instant::now();
    let model = GpuModel2d::with_options(&ctx, s.arch, s.params, &s.kernel)?;
    let model_load_seconds = t0.elapsed().as_secs_f64();
    let fused = || -> Result<()> {
        let mut run = PlanRun::new(&ctx, &model, plan.clone(), s.particles, None)?;
        run.run_to_end(&ctx)?;
        ctx.wait()?;
        Ok(())
    };
    let weights = BurnParams::new(s.params, s.device, false);
    let op_by_op = || burn_em(s.arch, &weights, &plan, s.particles as usize, s.device);
    let fused_seconds = time_rounds(s.rounds, fused)?;
    let burn_seconds = time_rounds(s.rounds, op_by_op)?;
    let work = s.particles as f64 * s.steps as f64;
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (f, b) = (work / best(&fused_seconds), work / best(&burn_seconds));
    Ok(Report {
        adapter: ctx.describe(),
        burn_backend: s.backend.to_string(),
        particles: s.particles,
        steps: s.steps,
        rounds: s.rounds,
        particles_per_invocation: model.layout.pp,
        weights_small: format!("{:?}", model.layout.small).to_lowercase(),
        weights_hidden: format!("{:?}", model.layout.hidden).to_lowercase(),
        model_load_seconds,
        fused_seconds,
        burn_seconds,
        fused_particle_steps_per_s: f,
        burn_particle_steps_per_s: b,
        speedup: f / b,
    })
}

/// One untimed warm-up, then `rounds` timed runs (seconds each).
fn time_rounds(rounds: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    f()?;
    (0..rounds)
        .map(|_| {
            let t0 = std::time::Instant::now();
            f()?;
            Ok(t0.elapsed().as_secs_f64())
        })
        .collect()
}

/// The plan's linear updates `z' = a z + b net(z; t) + c n` as burn ops, ending with a
/// read-back (which waits for the device).
fn burn_em(
    arch: &Architecture,
    p: &BurnParams,
    plan: &Plan,
    n: usize,
    device: &Device,
) -> Result<()> {
    let nf = arch.score.time_features();
    let sign = arch.output_sign();
    let mut z = Tensor::<2>::zeros([n, 2], device);
    for op in plan.steps.iter().flat_map(|s| &s.ops) {
        let Op::Linear { t, a, b, c, noise } = op else {
            bail!("an Euler-Maruyama plan has linear updates only, found {op:?}");
        };
        let mut next = z.clone().mul_scalar(*a);
        if *b != 0.0 {
            let f: Vec<f32> = arch.time_features(*t).iter().map(|&v| v as f32).collect();
            let feats =
                Tensor::<2>::from_data(TensorData::new(f, [1, nf]), device).repeat_dim(0, n);
            // sigma_score includes the output sign; the plan's b multiplies the raw output.
            next = next + sigma_score(arch, p, z.clone(), feats).mul_scalar(*b * sign);
        }
        if *c != 0.0 && noise.is_some() {
            next = next
                + Tensor::<2>::random([n, 2], Distribution::Normal(0.0, 1.0), device)
                    .mul_scalar(*c);
        }
        z = next;
    }
    let host = z.into_data();
    if host.num_elements() != 2 * n {
        bail!(
            "burn returned {} values, expected {}",
            host.num_elements(),
            2 * n
        );
    }
    Ok(())
}
