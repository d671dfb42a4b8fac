//! What the demo runs, independent of the browser: the plan of a [`State`], its CPU
//! execution step by step (the page's fallback, and natively the browser test's
//! reference), and the statistics the page exposes.
//!
//! The GPU path executes the very same [`Plan`] with [`indm::gpu::PlanRun`], so a
//! share link gives the same particles on the GPU (f32), in the wasm fallback and
//! natively (f64), up to rounding.

use indm::arch::Architecture;
use indm::data::toy2d::Toy2d;
use indm::error::IndmError;
use indm::model::CpuModel;
use indm::rng::Stream;
use indm::sample::plan::{self, NoiseKey, Op, Plan, PlannedStep, Start};
use indm::sample::{SamplerConfig, SamplerKind};
use indm::score::LatentScore;
use indm::sde::T_END;
use indm::weights::{TensorFile, model_from_file};
use serde::Serialize;

use crate::state::{Direction, FlowChoice, Notice, Sampler, State};

/// Particles of a GPU run unless the link says otherwise.
pub const GPU_DEFAULT_PARTICLES: u32 = 10_000;
/// Particles of the CPU fallback unless the link says otherwise.
pub const CPU_DEFAULT_PARTICLES: u32 = 1_000;
/// Most particles the CPU fallback runs (larger requests are clamped, with a notice).
pub const CPU_MAX_PARTICLES: u32 = 5_000;
/// Most recorded states of a run (the trajectory buffer has one slot per state).
pub const MAX_RECORDED: usize = 100;
/// Seed stream step of the data points that forward runs and SDEdit starts from.
const DATA_STEP: u64 = 0;

/// Errors of the demo's own logic (model files, plans).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The model library refused something (weights, plan, limits).
    #[error(transparent)]
    Model(#[from] IndmError),
    /// A model file that is not for the 2D demo.
    #[error("model file {file}: {reason}")]
    WrongModel {
        /// File.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

/// Relative path (from the page) of a shipped model file.
pub fn model_path(dataset: &str, flow: FlowChoice) -> String {
    format!("models/{dataset}-{}.safetensors", flow.name())
}

/// The architecture the trainer writes today for `flow` (a shipped file must match it).
pub fn expected_architecture(flow: FlowChoice) -> Architecture {
    use indm::arch::FlowArch;
    let f = match flow {
        FlowChoice::Indm => FlowArch::Coupling2d {
            layers: 8,
            hidden: 64,
        },
        FlowChoice::Baseline => FlowArch::Identity,
    };
    Architecture::default_2d(indm::SdeKind::Vp, f)
}

/// Reads a model file's bytes into the `f64` reference model, checking that it is a
/// 2D model with the flow its name promises.
pub fn cpu_model(bytes: &[u8], file: &str, flow: FlowChoice) -> Result<CpuModel, SimError> {
    let tf = TensorFile::from_bytes(bytes, file)?;
    let (arch, params) = model_from_file(&tf, file)?;
    check_flow(&arch, file, flow)?;
    Ok(CpuModel::new(&arch, &params)?)
}

/// Refuses an architecture whose flow is not the one `flow` names.
pub fn check_flow(arch: &Architecture, file: &str, flow: FlowChoice) -> Result<(), SimError> {
    let is_identity = matches!(arch.flow, indm::arch::FlowArch::Identity);
    if is_identity != (flow == FlowChoice::Baseline) {
        return Err(SimError::WrongModel {
            file: file.into(),
            reason: format!(
                "its flow is '{}', but the file should hold the {} model",
                arch.flow.name(),
                flow.name()
            ),
        });
    }
    Ok(())
}

/// A run ready to execute: its plan and, when it starts from data, the data points.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The plan (every update with its coefficients).
    pub plan: Plan,
    /// Clean data points (`2 n` values) that the executor maps to latents with `h`
    /// before the plan starts; `None` when the plan draws its own prior.
    pub data_start: Option<Vec<f64>>,
    /// Sampler steps actually used.
    pub steps: usize,
    /// Particles.
    pub particles: u32,
    /// Adjustments made to the requested settings.
    pub notices: Vec<Notice>,
}

impl Prepared {
    /// For each plan step, whether it records a state.
    pub fn records(&self) -> Vec<bool> {
        self.plan.steps.iter().map(|s| s.record).collect()
    }
}

/// Record every `k`-th step so that a run keeps at most [`MAX_RECORDED`] states.
pub fn record_every(steps: usize) -> usize {
    steps.div_ceil(MAX_RECORDED - 2).max(1)
}

/// The plan of `state` for a model of architecture `arch` and `particles` particles.
pub fn prepare(arch: &Architecture, state: &State, particles: u32) -> Result<Prepared, SimError> {
    let mut notices = Vec::new();
    let mut steps = state.steps;
    let kind = match state.sampler {
        Sampler::Em => SamplerKind::Em,
        Sampler::Pc => SamplerKind::Pc,
        Sampler::OdeEuler => SamplerKind::OdeEuler,
        Sampler::OdeHeun => SamplerKind::OdeHeun,
    };
    if kind == SamplerKind::Pc
        && state.direction == Direction::Reverse
        && arch.sde.kind == indm::SdeKind::Vp
    {
        let min = arch.sde.beta_max.floor() as usize + 1;
        if steps < min {
            notices.push(Notice::Replaced {
                key: "steps",
                detail: format!(
                    "the PC sampler on this VP SDE needs at least {min} steps; using {min}"
                ),
            });
            steps = min;
        }
    }
    let cfg = SamplerConfig {
        kind,
        steps,
        temperature: state.temperature,
        seed: state.seed as u64,
        record_every: record_every(steps),
        ..Default::default()
    };
    let dataset = Toy2d::from_name(state.model)?;
    let data = || {
        Some(dataset.sample(
            particles as usize,
            state.seed as u64,
            DATA_STEP,
            Stream::TestData,
        ))
    };
    let (plan, data_start) = match state.direction {
        Direction::Reverse if state.t0 >= T_END => (plan::reverse(arch, &cfg, Start::Prior)?, None),
        Direction::Reverse => (
            plan::reverse(arch, &cfg, Start::Perturb { t0: state.t0 })?,
            data(),
        ),
        Direction::Forward => (forward(arch, &cfg, state.t0)?, data()),
    };
    Ok(Prepared {
        plan,
        data_start,
        steps,
        particles,
        notices,
    })
}

/// The noising direction from `eps` up to `t_end`: the forward SDE by Euler–Maruyama
/// (stochastic samplers; `z' = (1 + f dt) z + sqrt(g^2 dt) n`, no network), or the
/// probability-flow ODE (ODE samplers, the encoder of DDIB), recording as `cfg` says.
/// The temperature does not apply.
pub fn forward(arch: &Architecture, cfg: &SamplerConfig, t_end: f64) -> Result<Plan, SimError> {
    cfg.validate()?;
    let (sde, eps, n) = (&arch.sde, arch.eps, cfg.steps);
    if !(t_end > eps && t_end <= T_END) {
        return Err(IndmError::invalid("t0", t_end, format!("in ({eps}, {T_END}]")).into());
    }
    let sign = arch.output_sign();
    // PF-ODE velocity v = f z - g^2 s / 2 = f z + k net with k = -g^2 sign / (2 sigma).
    let k = |t: f64| -0.5 * sde.g2(t) * sign / sde.std(t);
    let grid: Vec<f64> = (0..=n)
        .map(|i| eps + i as f64 * (t_end - eps) / n as f64)
        .collect();
    let mut steps = vec![PlannedStep {
        ops: Vec::new(),
        t_after: eps,
        record: true,
    }];
    for i in 0..n {
        let (t, t1) = (grid[i], grid[i + 1]);
        let h = t1 - t;
        let op = match cfg.kind {
            SamplerKind::OdeEuler => Op::Linear {
                t,
                a: 1.0 + h * sde.drift_coef(t),
                b: h * k(t),
                c: 0.0,
                noise: None,
            },
            SamplerKind::OdeHeun | SamplerKind::OdeRk45 => Op::Heun {
                t0: t,
                t1,
                f0: sde.drift_coef(t),
                k0: k(t),
                f1: sde.drift_coef(t1),
                k1: k(t1),
                h,
                scale: 1.0,
            },
            SamplerKind::Em | SamplerKind::Pc => Op::Linear {
                t,
                a: 1.0 + h * sde.drift_coef(t),
                b: 0.0,
                c: (sde.g2(t) * h).sqrt(),
                noise: Some(NoiseKey {
                    stream: Stream::Eval,
                    step: i as u64,
                }),
            },
        };
        steps.push(PlannedStep {
            ops: vec![op],
            t_after: t1,
            record: (i + 1) % cfg.record_every.max(1) == 0 || i + 1 == n,
        });
    }
    Ok(Plan {
        steps,
        seed: cfg.seed,
    })
}

/// The part of the plane a panel shows: centre `(cx, cy)` and half-width (the panels are
/// square).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Centre, x.
    pub cx: f64,
    /// Centre, y.
    pub cy: f64,
    /// Half the side.
    pub half: f64,
}

impl Window {
    /// The square that holds all but the outer 2.5 % of `pts` (interleaved `x, y`) on
    /// each side of each axis, with a 15 % margin (robust to a flow's heavy tails: some
    /// trained flows send a few points very far out).
    pub fn covering(pts: &[f64]) -> Window {
        let q = |axis: usize| {
            let mut v: Vec<f64> = pts
                .iter()
                .skip(axis)
                .step_by(2)
                .copied()
                .filter(|v| v.is_finite())
                .collect();
            if v.is_empty() {
                return (-1.0, 1.0);
            }
            v.sort_by(f64::total_cmp);
            let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
            (at(0.025), at(0.975))
        };
        let ((x0, x1), (y0, y1)) = (q(0), q(1));
        Window {
            cx: 0.5 * (x0 + x1),
            cy: 0.5 * (y0 + y1),
            half: (0.575 * (x1 - x0).max(y1 - y0)).max(0.5),
        }
    }
}

/// Windows of the data panel and the latent panel for a model: they hold the data set
/// and the prior, each seen in both spaces (`x`, `h(x)`; `z ~ N(0, I)`, `h^{-1}(z)`),
/// so a whole run, either way, stays in view. Fixed per model (not per run), so that
/// changing the sampler or seed does not move the picture.
pub fn panel_windows(model: &CpuModel, dataset: &str) -> Result<[Window; 2], SimError> {
    const POINTS: usize = 4000;
    let data = Toy2d::from_name(dataset)?.sample(POINTS / 2, 0, 1, Stream::TestData);
    let prior = indm::rng::Counter::new(0, Stream::SamplePrior, u64::MAX).normals(POINTS);
    let (latent_data, _) = model.flow.forward(&data);
    let data_prior = model.flow.inverse(&prior);
    let join = |a: &[f64], b: &[f64]| [a, b].concat();
    Ok([
        Window::covering(&join(&data, &data_prior)),
        Window::covering(&join(&latent_data, &prior)),
    ])
}

/// A plan executed on the CPU in `f64`, a few steps at a time (for animation).
#[derive(Clone, Debug)]
pub struct CpuRun {
    plan: Plan,
    next: usize,
    z: Vec<f64>,
    /// Recorded latents, one `2 n` vector per state.
    pub traj_z: Vec<Vec<f64>>,
    /// The same states in data space (`h^{-1}`).
    pub traj_x: Vec<Vec<f64>>,
    /// Times of the recorded states.
    pub times: Vec<f64>,
}

impl CpuRun {
    /// Binds a prepared run to a model: data starts are mapped to latents with `h`.
    pub fn new(model: &CpuModel, prep: &Prepared) -> Self {
        let n = prep.particles as usize;
        let z = match &prep.data_start {
            Some(x) => model.flow.forward(x).0,
            None => vec![0.0; 2 * n],
        };
        CpuRun {
            plan: prep.plan.clone(),
            next: 0,
            z,
            traj_z: Vec::new(),
            traj_x: Vec::new(),
            times: Vec::new(),
        }
    }

    /// Runs up to `max_steps` further plan steps; returns how many ran.
    pub fn advance(&mut self, model: &CpuModel, max_steps: usize) -> usize {
        let end = self
            .next
            .saturating_add(max_steps)
            .min(self.plan.steps.len());
        let chunk = Plan {
            steps: self.plan.steps[self.next..end].to_vec(),
            seed: self.plan.seed,
        };
        let sign = model.arch.output_sign();
        let net = |z: &[f64], t: f64| -> Vec<f64> {
            model
                .score
                .sigma_score(z, t)
                .into_iter()
                .map(|v| v * sign)
                .collect()
        };
        let (traj_z, traj_x, times) = (&mut self.traj_z, &mut self.traj_x, &mut self.times);
        plan::execute_cpu(&chunk, 2, &mut self.z, &net, |t, z| {
            traj_z.push(z.to_vec());
            traj_x.push(model.flow.inverse(z));
            times.push(t);
        });
        let ran = end - self.next;
        self.next = end;
        ran
    }

    /// Plan steps done and in all.
    pub fn progress(&self) -> (usize, usize) {
        (self.next, self.plan.steps.len())
    }

    /// Whether every step ran.
    pub fn done(&self) -> bool {
        self.next >= self.plan.steps.len()
    }

    /// Runs to the end.
    pub fn run_to_end(&mut self, model: &CpuModel) {
        self.advance(model, usize::MAX);
    }
}

/// Mean, covariance and the first points of a point set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointStats {
    /// Mean `[x, y]`.
    pub mean: [f64; 2],
    /// Covariance `[xx, xy, yy]` (divided by `n`).
    pub cov: [f64; 3],
    /// The first (up to 4) points.
    pub first: Vec<[f64; 2]>,
    /// Points with a non-finite coordinate (left out of mean and covariance).
    pub non_finite: usize,
}

/// Statistics of `2 n` interleaved coordinates.
pub fn point_stats<T: Copy + Into<f64>>(v: &[T]) -> PointStats {
    let pts: Vec<[f64; 2]> = v
        .chunks_exact(2)
        .map(|p| [p[0].into(), p[1].into()])
        .collect();
    let finite: Vec<&[f64; 2]> = pts
        .iter()
        .filter(|p| p[0].is_finite() && p[1].is_finite())
        .collect();
    let n = finite.len().max(1) as f64;
    let mut mean = [0.0; 2];
    for p in &finite {
        mean[0] += p[0] / n;
        mean[1] += p[1] / n;
    }
    let mut cov = [0.0; 3];
    for p in &finite {
        let (dx, dy) = (p[0] - mean[0], p[1] - mean[1]);
        cov[0] += dx * dx / n;
        cov[1] += dx * dy / n;
        cov[2] += dy * dy / n;
    }
    PointStats {
        mean,
        cov,
        first: pts.iter().take(4).copied().collect(),
        non_finite: pts.len() - finite.len(),
    }
}

/// What the page exposes as `window.indmStats` after a run (and what the native
/// reference prints): the settings that ran and the statistics of the last state.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// The canonical share query of the run.
    pub query: String,
    /// `webgpu`, `cpu-wasm` or `cpu-native`.
    pub backend: String,
    /// Adapter description (or the CPU).
    pub adapter: String,
    /// Particles.
    pub particles: u32,
    /// Sampler steps (after adjustments).
    pub steps: usize,
    /// Plan steps (prior draw, sampler steps, denoising).
    pub plan_steps: usize,
    /// Sampler name.
    pub sampler: String,
    /// Seed.
    pub seed: u32,
    /// Data set.
    pub model: String,
    /// `indm` or `baseline`.
    pub flow: String,
    /// `reverse` or `forward`.
    pub direction: String,
    /// Recorded states.
    pub recorded: usize,
    /// Statistics of the first latent state (the prior draw, or the start from data):
    /// equal for INDM and the baseline with the same seed.
    pub start: PointStats,
    /// Statistics of the last state in data space.
    pub data: PointStats,
    /// Statistics of the last state in the latent.
    pub latent: PointStats,
    /// Milliseconds per plan step (wall clock of the executor).
    pub ms_per_step: f64,
    /// Particle-steps per second.
    pub particle_steps_per_sec: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use indm::params::ParamSet;

    fn model(flow: FlowChoice) -> CpuModel {
        let arch = expected_architecture(flow);
        CpuModel::new(&arch, &ParamSet::init(&arch, 3)).unwrap()
    }

    /// Running a plan in chunks gives exactly what one pass gives: the animation shows
    /// the same run as the reference.
    #[test]
    fn chunked_execution_equals_one_pass() {
        let m = model(FlowChoice::Indm);
        for (sampler, dir, t0) in [
            (Sampler::Em, Direction::Reverse, 1.0),
            (Sampler::Pc, Direction::Reverse, 1.0),
            (Sampler::OdeHeun, Direction::Reverse, 0.4),
            (Sampler::Em, Direction::Forward, 1.0),
            (Sampler::OdeEuler, Direction::Forward, 0.5),
        ] {
            let s = State {
                sampler,
                direction: dir,
                t0,
                steps: 30,
                seed: 9,
                ..State::default()
            };
            let prep = prepare(&m.arch, &s, 64).unwrap();
            let mut a = CpuRun::new(&m, &prep);
            a.run_to_end(&m);
            let mut b = CpuRun::new(&m, &prep);
            while !b.done() {
                assert!(b.advance(&m, 7) > 0);
            }
            assert_eq!(a.traj_x, b.traj_x, "{sampler:?} {dir:?}");
            assert_eq!(a.times, b.times);
            assert!(a.traj_x.len() >= 2 && a.traj_x.len() <= MAX_RECORDED);
            assert!(a.traj_x.iter().flatten().all(|v| v.is_finite()));
        }
    }

    /// The reverse plan from the prior reproduces the library's own sampler.
    #[test]
    fn reverse_run_matches_the_native_sampler() {
        let m = model(FlowChoice::Indm);
        let s = State {
            steps: 25,
            seed: 4,
            temperature: 0.9,
            particles: Some(50),
            ..State::default()
        };
        let prep = prepare(&m.arch, &s, 50).unwrap();
        assert!(prep.notices.is_empty());
        let mut run = CpuRun::new(&m, &prep);
        run.run_to_end(&m);
        let cfg = SamplerConfig {
            steps: 25,
            seed: 4,
            temperature: 0.9,
            ..Default::default()
        };
        let (x, _) = indm::sample::sample_model(&m, 50, &cfg).unwrap();
        let err = indm::numeric::max_abs_diff(run.traj_x.last().unwrap(), &x);
        assert!(err < 1e-9, "max diff {err}");
    }

    /// The forward SDE from data ends near the prior N(0, 1) at T (in the latent).
    #[test]
    fn forward_sde_reaches_the_prior() {
        let m = model(FlowChoice::Baseline);
        let s = State {
            direction: Direction::Forward,
            steps: 100,
            ..State::default()
        };
        let prep = prepare(&m.arch, &s, 4000).unwrap();
        let mut run = CpuRun::new(&m, &prep);
        run.run_to_end(&m);
        let st = point_stats(run.traj_z.last().unwrap());
        assert!(st.mean.iter().all(|v| v.abs() < 0.08), "{st:?}");
        assert!(
            (st.cov[0] - 1.0).abs() < 0.1 && (st.cov[2] - 1.0).abs() < 0.1,
            "{st:?}"
        );
        assert!(st.cov[1].abs() < 0.08, "{st:?}");
        // And it starts from the data set itself (identity flow: latent = data).
        let d0 = point_stats(&run.traj_z[0]);
        assert!(d0.cov[0] > 2.0, "checkerboard spans [-4, 4]: {d0:?}");
    }

    #[test]
    fn pc_with_too_few_steps_is_raised_with_a_notice() {
        let m = model(FlowChoice::Baseline);
        let s = State {
            sampler: Sampler::Pc,
            steps: 5,
            ..State::default()
        };
        let prep = prepare(&m.arch, &s, 10).unwrap();
        assert_eq!(prep.steps, 21);
        assert_eq!(prep.notices.len(), 1);
    }

    #[test]
    fn recording_is_bounded() {
        for steps in [5, 199, 200, 1000] {
            let k = record_every(steps);
            assert!(steps / k + 3 <= MAX_RECORDED + 1, "{steps}: every {k}");
        }
    }

    #[test]
    fn windows_hold_the_data_and_the_prior() {
        let w = Window::covering(&[-1.0, 0.0, 3.0, 2.0, f64::NAN, f64::INFINITY]);
        assert_eq!((w.cx, w.cy), (1.0, 1.0));
        assert!((w.half - 2.3).abs() < 1e-12, "{w:?}");
        let m = model(FlowChoice::Baseline);
        let [d, z] = panel_windows(&m, "checkerboard").unwrap();
        // Identity flow: both panels show the same square, around [-4, 4]^2.
        assert_eq!(d, z);
        assert!(
            d.cx.abs() < 0.2 && d.cy.abs() < 0.2 && (4.0..5.0).contains(&d.half),
            "{d:?}"
        );
    }

    #[test]
    fn stats_are_exact_on_a_small_set() {
        let st = point_stats(&[1.0f64, 2.0, 3.0, 6.0, f64::NAN, 0.0]);
        assert_eq!(st.mean, [2.0, 4.0]);
        assert_eq!(st.cov, [1.0, 2.0, 4.0]);
        assert_eq!(st.non_finite, 1);
        assert_eq!(st.first.len(), 3);
    }

    #[test]
    fn a_file_with_the_wrong_flow_is_refused() {
        let arch = expected_architecture(FlowChoice::Baseline);
        let e = check_flow(&arch, "x.safetensors", FlowChoice::Indm).unwrap_err();
        assert!(e.to_string().contains("identity"), "{e}");
    }
}
