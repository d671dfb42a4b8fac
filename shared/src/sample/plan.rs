//! A sampler run as a list of per-particle updates with precomputed coefficients.
//!
//! Every fixed-step sampler of this crate, every noising and translation schedule, is a
//! sequence of a few update shapes whose coefficients depend on time only. The plan
//! computes them here, in `f64` from the [`Sde`], once per step; the WGSL kernels (and
//! any other executor) only apply them, so no schedule is ever re-derived on the GPU.
//! The network's raw output is `net(z)`, with `sigma(t) s(z, t) = sign net(z)`; the
//! coefficients fold in `sign / sigma(t)`.
//!
//! The native samplers in this module's siblings are written independently, from the
//! formulas, and the parity tests compare the two.

use crate::arch::Architecture;
use crate::error::{IndmError, Result};
use crate::rng::{Counter, Stream};
use crate::sample::{SamplerConfig, SamplerKind};
use crate::sde::{SdeKind, T_END};

/// Noise of one update: the generator family `(stream, step)` of the run's seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseKey {
    /// Stream.
    pub stream: Stream,
    /// Step of the family.
    pub step: u64,
}

/// One update applied to every particle.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `z' = a z + b net(z; t) + c n` (`b = 0`: no network evaluation; `c = 0`: no noise).
    Linear {
        /// Time of the network evaluation.
        t: f64,
        /// Coefficient of `z`.
        a: f64,
        /// Coefficient of the network output.
        b: f64,
        /// Coefficient of the noise.
        c: f64,
        /// Noise family (`None` when `c = 0`).
        noise: Option<NoiseKey>,
    },
    /// PF-ODE Heun: `v_j = f_j z + k_j net(z; t_j)`, `z' = scale (z + h (v_0 + v_1) / 2)`
    /// with the second velocity at the Euler prediction `z + h v_0`.
    Heun {
        /// Start time.
        t0: f64,
        /// End time.
        t1: f64,
        /// Drift coefficient at `t0`.
        f0: f64,
        /// Network coefficient at `t0`.
        k0: f64,
        /// Drift coefficient at `t1`.
        f1: f64,
        /// Network coefficient at `t1`.
        k1: f64,
        /// Step `t1 - t0`.
        h: f64,
        /// Final multiplier (temperature on the last step).
        scale: f64,
    },
    /// Langevin corrector `z' = z + eta s + sqrt(2 eta) n` with `s = kc net(z; t)` and
    /// `eta = 2 alpha (snr mean|n| / mean|s|)^2` over all particles; then, if given, a
    /// linear predictor update.
    Correct {
        /// Time.
        t: f64,
        /// `sign / sigma(t)`.
        kc: f64,
        /// `alpha_i` of the discrete schedule (1 for VE / sub-VP).
        alpha: f64,
        /// Signal-to-noise ratio.
        snr: f64,
        /// Corrector noise.
        noise: NoiseKey,
        /// The predictor that follows (fused into the same pass).
        predict: Option<Box<Op>>,
    },
}

/// One step of a plan: its updates, the time reached, and whether to record the state.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedStep {
    /// Updates in order.
    pub ops: Vec<Op>,
    /// Time after the step.
    pub t_after: f64,
    /// Record the state after this step (trajectory slot).
    pub record: bool,
}

/// A whole run: steps plus the seed of its noise.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Steps in order.
    pub steps: Vec<PlannedStep>,
    /// Seed of every noise draw.
    pub seed: u64,
}

impl Plan {
    /// Number of recorded states.
    pub fn recorded(&self) -> usize {
        self.steps.iter().filter(|s| s.record).count()
    }

    /// Times of the recorded states.
    pub fn recorded_times(&self) -> Vec<f64> {
        self.steps
            .iter()
            .filter(|s| s.record)
            .map(|s| s.t_after)
            .collect()
    }

    /// Network evaluations per particle.
    pub fn nfe(&self) -> usize {
        fn count(op: &Op) -> usize {
            match op {
                Op::Linear { b, .. } => usize::from(*b != 0.0),
                Op::Heun { .. } => 2,
                Op::Correct { predict, .. } => 1 + predict.as_deref().map_or(0, count),
            }
        }
        self.steps.iter().flat_map(|s| &s.ops).map(count).sum()
    }

    /// Appends a plan's steps (same seed required).
    pub fn then(mut self, other: Plan) -> Plan {
        debug_assert_eq!(self.seed, other.seed);
        self.steps.extend(other.steps);
        self
    }

    /// The folded 32-bit seed the kernels take.
    pub fn seed32(&self) -> u32 {
        Counter::new(self.seed, Stream::SamplePrior, 0).key()[0]
    }
}

/// Where a run starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Start {
    /// From a prior draw `z_T ~ pi` made by the plan itself (stream `SamplePrior`).
    Prior,
    /// From given latents at time `T`.
    Given,
    /// SDEdit: the given clean latents are noised to `t0` (stream `Translate`) and the
    /// reverse process starts there.
    Perturb {
        /// Start time of the reverse process, in `(eps, T]`.
        t0: f64,
    },
}

/// The reverse-time plan of `cfg` (EM, PC, PF-ODE Euler / Heun) from `start`, with the
/// final denoising step and temperature as `cfg` says, recording every
/// `cfg.record_every`-th state (and always the first and the last).
pub fn reverse(arch: &Architecture, cfg: &SamplerConfig, start: Start) -> Result<Plan> {
    cfg.validate_for(&arch.sde)?;
    let sde = &arch.sde;
    let eps = arch.eps;
    let sign = arch.output_sign();
    let t_start = match start {
        Start::Perturb { t0 } => {
            if !(t0 > eps && t0 <= T_END) {
                return Err(IndmError::invalid(
                    "t0",
                    t0,
                    format!("a start time in ({eps}, {T_END}]"),
                ));
            }
            t0
        }
        _ => T_END,
    };
    let mut steps = Vec::new();
    let first = match start {
        Start::Prior => vec![Op::Linear {
            t: T_END,
            a: 0.0,
            b: 0.0,
            c: sde.prior_std(),
            noise: Some(NoiseKey {
                stream: Stream::SamplePrior,
                step: 0,
            }),
        }],
        Start::Given => Vec::new(),
        Start::Perturb { t0 } => vec![Op::Linear {
            t: t0,
            a: sde.mean_coef(t0),
            b: 0.0,
            c: sde.std(t0),
            noise: Some(NoiseKey {
                stream: Stream::Translate,
                step: 0,
            }),
        }],
    };
    steps.push(PlannedStep {
        ops: first,
        t_after: t_start,
        record: cfg.record_every > 0,
    });
    let n = cfg.steps;
    let grid: Vec<f64> = (0..=n)
        .map(|i| t_start - i as f64 * (t_start - eps) / n as f64)
        .collect();
    let k = |t: f64| sign / sde.std(t);
    let noise = |stream, step: usize| {
        Some(NoiseKey {
            stream,
            step: step as u64,
        })
    };
    for i in 0..n {
        let (t, t1) = (grid[i], grid[i + 1]);
        let dt = t - t1;
        let last = i + 1 == n;
        let ops = match cfg.kind {
            SamplerKind::Em => {
                let (f, g2) = (sde.drift_coef(t), sde.g2(t));
                vec![Op::Linear {
                    t,
                    a: 1.0 - f * dt,
                    b: g2 * dt * k(t),
                    c: if last { 0.0 } else { (g2 * dt).sqrt() },
                    noise: if last {
                        None
                    } else {
                        noise(Stream::SampleStep, i)
                    },
                }]
            }
            SamplerKind::Pc => {
                let idx = ((t / T_END) * (n - 1) as f64).round() as usize;
                let alpha = match sde.kind {
                    SdeKind::Vp => 1.0 - sde.discrete_beta(idx, n),
                    _ => 1.0,
                };
                let (keep, g2) = match sde.kind {
                    SdeKind::Vp => {
                        let b = sde.discrete_beta(idx, n);
                        (2.0 - (1.0 - b).sqrt(), b)
                    }
                    SdeKind::Ve => {
                        let s_i = sde.discrete_sigma(idx, n);
                        let s_prev = if idx == 0 {
                            0.0
                        } else {
                            sde.discrete_sigma(idx - 1, n)
                        };
                        (1.0, s_i * s_i - s_prev * s_prev)
                    }
                    SdeKind::SubVp => (1.0 - sde.drift_coef(t) * dt, sde.g2(t) * dt),
                };
                let predictor = Op::Linear {
                    t,
                    a: keep,
                    b: g2 * k(t),
                    c: if last { 0.0 } else { g2.sqrt() },
                    noise: if last {
                        None
                    } else {
                        noise(Stream::SampleStep, i)
                    },
                };
                let cs = cfg.corrector_steps;
                if cs == 0 {
                    vec![predictor]
                } else {
                    (0..cs)
                        .map(|c| Op::Correct {
                            t,
                            kc: k(t),
                            alpha,
                            snr: cfg.snr,
                            noise: NoiseKey {
                                stream: Stream::Corrector,
                                step: (i * cs + c) as u64,
                            },
                            predict: (c + 1 == cs).then(|| Box::new(predictor.clone())),
                        })
                        .collect()
                }
            }
            SamplerKind::OdeEuler => {
                let h = t1 - t;
                vec![Op::Linear {
                    t,
                    a: 1.0 + h * sde.drift_coef(t),
                    b: -0.5 * h * sde.g2(t) * k(t),
                    c: 0.0,
                    noise: None,
                }]
            }
            SamplerKind::OdeHeun => vec![heun(arch, t, t1)],
            SamplerKind::OdeRk45 => {
                return Err(IndmError::invalid(
                    "sampler",
                    "ode-rk45",
                    "a fixed-step sampler (em, pc, ode-euler, ode-heun) for GPU plans",
                ));
            }
        };
        let record = cfg.record_every > 0 && ((i + 1) % cfg.record_every == 0 || last);
        steps.push(PlannedStep {
            ops,
            t_after: t1,
            record: record && !(last && cfg.denoise),
        });
    }
    if cfg.denoise {
        steps.push(PlannedStep {
            ops: vec![Op::Linear {
                t: eps,
                a: 1.0,
                b: eps * sde.g2(eps) * k(eps),
                c: 0.0,
                noise: None,
            }],
            t_after: 0.0,
            record: cfg.record_every > 0,
        });
    }
    if cfg.temperature != 1.0 {
        let last = steps
            .iter_mut()
            .rev()
            .find_map(|s| s.ops.last_mut())
            .expect("a plan has at least one update");
        scale_op(last, cfg.temperature);
    }
    Ok(Plan {
        steps,
        seed: cfg.seed,
    })
}

/// The PF-ODE from `eps` up to `T` (the encoding half of DDIB), Euler or Heun with
/// `cfg.steps` steps.
pub fn encode(arch: &Architecture, cfg: &SamplerConfig) -> Result<Plan> {
    cfg.validate_for(&arch.sde)?;
    let heun_steps = match cfg.kind {
        SamplerKind::OdeEuler => false,
        SamplerKind::OdeHeun => true,
        other => {
            return Err(IndmError::invalid(
                "sampler",
                other.name(),
                "a deterministic sampler (ode-euler or ode-heun) to encode with",
            ));
        }
    };
    let (sde, eps, n) = (&arch.sde, arch.eps, cfg.steps);
    let sign = arch.output_sign();
    let grid: Vec<f64> = (0..=n)
        .map(|i| eps + i as f64 * (T_END - eps) / n as f64)
        .collect();
    let mut steps = vec![PlannedStep {
        ops: Vec::new(),
        t_after: eps,
        record: cfg.record_every > 0,
    }];
    for i in 0..n {
        let (t, t1) = (grid[i], grid[i + 1]);
        let h = t1 - t;
        let op = if heun_steps {
            heun(arch, t, t1)
        } else {
            Op::Linear {
                t,
                a: 1.0 + h * sde.drift_coef(t),
                b: -0.5 * h * sde.g2(t) * sign / sde.std(t),
                c: 0.0,
                noise: None,
            }
        };
        steps.push(PlannedStep {
            ops: vec![op],
            t_after: t1,
            record: cfg.record_every > 0 && ((i + 1) % cfg.record_every == 0 || i + 1 == n),
        });
    }
    Ok(Plan {
        steps,
        seed: cfg.seed,
    })
}

fn heun(arch: &Architecture, t0: f64, t1: f64) -> Op {
    let sde = &arch.sde;
    let k = |t: f64| -0.5 * sde.g2(t) * arch.output_sign() / sde.std(t);
    Op::Heun {
        t0,
        t1,
        f0: sde.drift_coef(t0),
        k0: k(t0),
        f1: sde.drift_coef(t1),
        k1: k(t1),
        h: t1 - t0,
        scale: 1.0,
    }
}

fn scale_op(op: &mut Op, by: f64) {
    match op {
        Op::Linear { a, b, c, .. } => {
            *a *= by;
            *b *= by;
            *c *= by;
        }
        Op::Heun { scale, .. } => *scale *= by,
        Op::Correct { predict, .. } => {
            if let Some(p) = predict {
                scale_op(p, by);
            }
        }
    }
}

/// Applies a plan on the CPU in `f64` with the network `net(z rows, t) -> outputs`
/// (the raw output, before `sign / sigma`). This is the executor the browser's CPU
/// fallback uses, and a reference for the GPU kernels.
pub fn execute_cpu(
    plan: &Plan,
    dim: usize,
    z: &mut [f64],
    net: &dyn Fn(&[f64], f64) -> Vec<f64>,
    mut on_record: impl FnMut(f64, &[f64]),
) {
    let n = z.len() / dim;
    for step in &plan.steps {
        for op in &step.ops {
            apply(op, plan.seed, dim, n, z, net);
        }
        if step.record {
            on_record(step.t_after, z);
        }
    }
}

fn normals(seed: u64, key: NoiseKey, len: usize) -> Vec<f64> {
    Counter::new(seed, key.stream, key.step).normals(len)
}

fn apply(
    op: &Op,
    seed: u64,
    dim: usize,
    n: usize,
    z: &mut [f64],
    net: &dyn Fn(&[f64], f64) -> Vec<f64>,
) {
    match op {
        Op::Linear { t, a, b, c, noise } => {
            let out = if *b != 0.0 {
                net(z, *t)
            } else {
                vec![0.0; z.len()]
            };
            let nz = match noise {
                Some(key) if *c != 0.0 => normals(seed, *key, z.len()),
                _ => vec![0.0; z.len()],
            };
            for k in 0..z.len() {
                z[k] = a * z[k] + b * out[k] + c * nz[k];
            }
        }
        Op::Heun {
            t0,
            t1,
            f0,
            k0,
            f1,
            k1,
            h,
            scale,
        } => {
            let o0 = net(z, *t0);
            let v0: Vec<f64> = z.iter().zip(&o0).map(|(z, o)| f0 * z + k0 * o).collect();
            let pred: Vec<f64> = z.iter().zip(&v0).map(|(z, v)| z + h * v).collect();
            let o1 = net(&pred, *t1);
            for k in 0..z.len() {
                let v1 = f1 * pred[k] + k1 * o1[k];
                z[k] = scale * (z[k] + 0.5 * h * (v0[k] + v1));
            }
        }
        Op::Correct {
            t,
            kc,
            alpha,
            snr,
            noise,
            predict,
        } => {
            let s: Vec<f64> = net(z, *t).into_iter().map(|o| kc * o).collect();
            let nz = normals(seed, *noise, z.len());
            let mean_norm = |v: &[f64]| {
                v.chunks_exact(dim)
                    .map(|p| p.iter().map(|x| x * x).sum::<f64>().sqrt())
                    .sum::<f64>()
                    / n as f64
            };
            let ratio = snr * mean_norm(&nz) / mean_norm(&s).max(1e-30);
            let eta = 2.0 * alpha * ratio * ratio;
            let amp = (2.0 * eta).sqrt();
            for k in 0..z.len() {
                z[k] += eta * s[k] + amp * nz[k];
            }
            if let Some(p) = predict {
                apply(p, seed, dim, n, z, net);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::FlowArch;
    use crate::params::ParamSet;
    use crate::sample::{prior_sample, sample_latent};
    use crate::score::{LatentScore, ScoreMlp};

    fn model(kind: SdeKind) -> (Architecture, ScoreMlp) {
        let arch = Architecture::default_2d(kind, FlowArch::Identity);
        let p = ParamSet::init(&arch, 11);
        let s = ScoreMlp::from_params(&arch, &p).unwrap();
        (arch, s)
    }

    /// The plan executed on the CPU equals the independently written native samplers.
    #[test]
    fn plans_reproduce_the_native_samplers() {
        for sde in [SdeKind::Vp, SdeKind::SubVp, SdeKind::Ve] {
            let (arch, score) = model(sde);
            for kind in [
                SamplerKind::Em,
                SamplerKind::Pc,
                SamplerKind::OdeEuler,
                SamplerKind::OdeHeun,
            ] {
                let cfg = SamplerConfig {
                    kind,
                    // PC on VP needs more steps than beta_max = 20.
                    steps: 23,
                    seed: 5,
                    temperature: 0.9,
                    ..Default::default()
                };
                let z0 = prior_sample(&arch.sde, 2, 50, cfg.seed);
                let native = sample_latent(&arch.sde, arch.eps, &score, z0, &cfg).unwrap();
                let plan = reverse(&arch, &cfg, Start::Prior).unwrap();
                let mut z = vec![0.0; 100];
                let sign = arch.output_sign();
                execute_cpu(
                    &plan,
                    2,
                    &mut z,
                    &|z, t| {
                        score
                            .sigma_score(z, t)
                            .into_iter()
                            .map(|v| v * sign)
                            .collect()
                    },
                    |_, _| {},
                );
                assert!(
                    z.iter().chain(&native.z).all(|v| v.is_finite()),
                    "{sde:?} {kind:?}: non-finite particles"
                );
                let err = crate::numeric::max_abs_diff(&z, &native.z);
                assert!(err < 1e-9, "{sde:?} {kind:?}: max diff {err}");
                assert_eq!(plan.nfe(), native.nfe, "{sde:?} {kind:?} nfe");
            }
        }
    }

    #[test]
    fn recorded_states_and_bad_requests() {
        let (arch, _) = model(SdeKind::Vp);
        let cfg = SamplerConfig {
            steps: 10,
            record_every: 5,
            ..Default::default()
        };
        let plan = reverse(&arch, &cfg, Start::Prior).unwrap();
        // T, after step 5, after the denoising step.
        assert_eq!(plan.recorded(), 3, "{:?}", plan.recorded_times());
        let rk = SamplerConfig {
            kind: SamplerKind::OdeRk45,
            ..Default::default()
        };
        assert!(reverse(&arch, &rk, Start::Prior).is_err());
        let e = reverse(&arch, &cfg, Start::Perturb { t0: 2.0 }).unwrap_err();
        assert!(e.to_string().contains("t0"), "{e}");
        assert!(encode(&arch, &cfg).is_err(), "EM cannot encode");
    }
}
