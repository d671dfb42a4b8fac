//! Reverse-time samplers in the latent, then decoding with the flow's inverse.
//!
//! One file per sampler: [`em`] (Euler–Maruyama), [`pc`] (reverse-diffusion
//! predictor + Langevin corrector), [`ode`] (probability-flow ODE: Euler, Heun,
//! adaptive RK45). All noise comes from [`crate::rng::Counter`] keyed by
//! `(seed, stream, step, particle * dim + d)`, so a seed reproduces a run exactly.

pub mod em;
pub mod ode;
pub mod pc;
pub mod plan;
pub mod translate;

use serde::{Deserialize, Serialize};

use crate::error::{IndmError, Result};
use crate::model::CpuModel;
use crate::rng::{Counter, Stream};
use crate::score::LatentScore;
use crate::sde::{Sde, SdeKind, T_END};

/// Which sampler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerKind {
    /// Euler–Maruyama on the reverse SDE.
    Em,
    /// Predictor–corrector: Langevin corrector then reverse-diffusion predictor.
    Pc,
    /// Probability-flow ODE, explicit Euler.
    OdeEuler,
    /// Probability-flow ODE, Heun (2nd order).
    OdeHeun,
    /// Probability-flow ODE, adaptive Dormand–Prince RK45.
    OdeRk45,
}

impl SamplerKind {
    /// Command-line names.
    pub const NAMES: [&'static str; 5] = ["em", "pc", "ode-euler", "ode-heun", "ode-rk45"];

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "em" | "euler-maruyama" => Ok(SamplerKind::Em),
            "pc" => Ok(SamplerKind::Pc),
            "ode-euler" | "euler" => Ok(SamplerKind::OdeEuler),
            "ode-heun" | "heun" => Ok(SamplerKind::OdeHeun),
            "ode-rk45" | "rk45" | "ode" => Ok(SamplerKind::OdeRk45),
            _ => Err(IndmError::unknown("sampler", name, &Self::NAMES)),
        }
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl std::str::FromStr for SamplerKind {
    type Err = IndmError;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s)
    }
}

/// Sampler settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplerConfig {
    /// Which sampler.
    pub kind: SamplerKind,
    /// Number of time steps (fixed-step samplers).
    pub steps: usize,
    /// Langevin signal-to-noise ratio (PC).
    pub snr: f64,
    /// Corrector steps per predictor step (PC).
    pub corrector_steps: usize,
    /// Relative and absolute tolerance (RK45).
    pub rtol: f64,
    /// Absolute tolerance (RK45).
    pub atol: f64,
    /// Apply the final one-step denoising `z + eps g(eps)^2 s(z, eps)`.
    pub denoise: bool,
    /// Multiplies the final latent before decoding (spec 4.4).
    pub temperature: f64,
    /// Seed of the prior draw and the sampler noise.
    pub seed: u64,
    /// Keep every `k`-th latent state for plots (0: none).
    pub record_every: usize,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            kind: SamplerKind::Em,
            steps: 500,
            snr: 0.16,
            corrector_steps: 1,
            rtol: 1e-5,
            atol: 1e-5,
            denoise: true,
            temperature: 1.0,
            seed: 0,
            record_every: 0,
        }
    }
}

impl SamplerConfig {
    /// Rejects settings no sampler can run with.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.steps > 1_000_000 {
            return Err(IndmError::invalid(
                "steps",
                self.steps,
                "an integer in 1..=1000000",
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(IndmError::invalid(
                "temperature",
                self.temperature,
                "a positive number",
            ));
        }
        if !(self.snr.is_finite() && self.snr > 0.0) {
            return Err(IndmError::invalid("snr", self.snr, "a positive number"));
        }
        if !(self.rtol > 0.0 && self.atol > 0.0) {
            return Err(IndmError::invalid(
                "tolerance",
                format!("rtol {} atol {}", self.rtol, self.atol),
                "positive",
            ));
        }
        Ok(())
    }

    /// [`SamplerConfig::validate`] plus what depends on the SDE: the VP reverse-diffusion
    /// predictor of PC uses the discrete betas `beta(t) / N`, which must stay below 1
    /// (else `sqrt(1 - beta_i)` is not real), so PC on VP needs `N > beta_max`.
    pub fn validate_for(&self, sde: &Sde) -> Result<()> {
        self.validate()?;
        if self.kind == SamplerKind::Pc
            && sde.kind == SdeKind::Vp
            && sde.discrete_beta(self.steps - 1, self.steps) >= 1.0
        {
            let min = sde.beta_max.floor() as usize + 1;
            return Err(IndmError::invalid(
                "steps",
                self.steps,
                format!(
                    "at least {min} for the PC sampler on this VP SDE (its discrete betas \
                     beta_max / steps must stay below 1); use em or ode-heun for fewer steps"
                ),
            ));
        }
        Ok(())
    }
}

/// What a sampler returns.
#[derive(Clone, Debug)]
pub struct Samples {
    /// Final latents (after denoising and temperature).
    pub z: Vec<f64>,
    /// Score evaluations per particle.
    pub nfe: usize,
    /// Recorded `(t, z_t)` states, first at `T`, last at the end.
    pub trajectory: Vec<(f64, Vec<f64>)>,
}

/// Per-step context shared by the fixed-step samplers.
pub struct Ctx<'a> {
    /// The SDE.
    pub sde: &'a Sde,
    /// The latent score.
    pub score: &'a dyn LatentScore,
    /// Truncation time.
    pub eps: f64,
    /// Sampler settings.
    pub cfg: &'a SamplerConfig,
}

impl Ctx<'_> {
    /// The fixed grid `t_i = T - i (T - eps) / N`, `i = 0..=N`.
    pub fn grid(&self) -> Vec<f64> {
        let n = self.cfg.steps;
        (0..=n)
            .map(|i| T_END - i as f64 * (T_END - self.eps) / n as f64)
            .collect()
    }

    /// The score `s(z, t)` itself (not scaled by sigma).
    pub fn score(&self, z: &[f64], t: f64) -> Vec<f64> {
        let s = self.sde.std(t);
        self.score
            .sigma_score(z, t)
            .into_iter()
            .map(|v| v / s)
            .collect()
    }

    /// Standard normal noise for step `step`, one value per coordinate.
    pub fn noise(&self, stream: Stream, step: usize, len: usize) -> Vec<f64> {
        Counter::new(self.cfg.seed, stream, step as u64).normals(len)
    }
}

/// Draws `n` prior points `z_T ~ pi` (seeded by `seed`).
pub fn prior_sample(sde: &Sde, dim: usize, n: usize, seed: u64) -> Vec<f64> {
    let s = sde.prior_std();
    Counter::new(seed, Stream::SamplePrior, 0)
        .normals(n * dim)
        .into_iter()
        .map(|v| v * s)
        .collect()
}

/// Runs the configured sampler from `z_T` (in place of a prior draw if given).
pub fn sample_latent(
    sde: &Sde,
    eps: f64,
    score: &dyn LatentScore,
    z_t: Vec<f64>,
    cfg: &SamplerConfig,
) -> Result<Samples> {
    cfg.validate_for(sde)?;
    let ctx = Ctx {
        sde,
        score,
        eps,
        cfg,
    };
    let mut out = match cfg.kind {
        SamplerKind::Em => em::run(&ctx, z_t),
        SamplerKind::Pc => pc::run(&ctx, z_t),
        SamplerKind::OdeEuler => ode::run_fixed(&ctx, z_t, false),
        SamplerKind::OdeHeun => ode::run_fixed(&ctx, z_t, true),
        SamplerKind::OdeRk45 => ode::run_rk45(&ctx, z_t),
    };
    if cfg.denoise {
        // One step from eps to 0 (spec 4.3): z + eps g(eps)^2 s(z, eps).
        let s = ctx.score(&out.z, eps);
        let c = eps * sde.g2(eps);
        out.z.iter_mut().zip(&s).for_each(|(z, s)| *z += c * s);
        out.nfe += 1;
    }
    if cfg.temperature != 1.0 {
        out.z.iter_mut().for_each(|z| *z *= cfg.temperature);
    }
    Ok(out)
}

/// Samples `n` data points from a model: prior -> reverse process -> `h^{-1}`.
/// Returns the data points and the latent samples.
pub fn sample_model(
    model: &CpuModel,
    n: usize,
    cfg: &SamplerConfig,
) -> Result<(Vec<f64>, Samples)> {
    let d = model.arch.data_dim;
    let z_t = prior_sample(&model.arch.sde, d, n, cfg.seed);
    let s = sample_latent(&model.arch.sde, model.arch.eps, &model.score, z_t, cfg)?;
    let x = model.flow.inverse(&s.z);
    Ok((x, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::GaussianScore;

    /// PC on VP with fewer steps than beta_max would take sqrt of a negative number:
    /// refused with the smallest valid count, while 21 steps and other samplers run.
    #[test]
    fn pc_on_vp_needs_more_steps_than_beta_max() {
        let sde = Sde::vp();
        let cfg = |kind, steps| SamplerConfig {
            kind,
            steps,
            ..Default::default()
        };
        let msg = cfg(SamplerKind::Pc, 20)
            .validate_for(&sde)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("steps") && msg.contains("at least 21"),
            "{msg}"
        );
        assert!(cfg(SamplerKind::Pc, 21).validate_for(&sde).is_ok());
        assert!(cfg(SamplerKind::Em, 5).validate_for(&sde).is_ok());
        assert!(cfg(SamplerKind::Pc, 5).validate_for(&Sde::ve(10.0)).is_ok());
    }

    /// With the exact score of Gaussian data every sampler must end near that Gaussian.
    #[test]
    fn every_sampler_recovers_a_gaussian_with_the_exact_score() {
        let sde = Sde::vp();
        let score = GaussianScore {
            sde,
            mu: vec![1.5, -0.5],
            var: 0.25,
            perturbation: 0.0,
        };
        let n = 4000;
        for kind in [
            SamplerKind::Em,
            SamplerKind::Pc,
            SamplerKind::OdeEuler,
            SamplerKind::OdeHeun,
            SamplerKind::OdeRk45,
        ] {
            let cfg = SamplerConfig {
                kind,
                steps: 400,
                seed: 3,
                ..Default::default()
            };
            let out = sample_latent(&sde, 1e-3, &score, prior_sample(&sde, 2, n, 3), &cfg).unwrap();
            for d in 0..2 {
                let xs: Vec<f64> = out.z.iter().skip(d).step_by(2).copied().collect();
                let m = xs.iter().sum::<f64>() / n as f64;
                let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
                assert!((m - score.mu[d]).abs() < 0.05, "{kind:?} dim {d}: mean {m}");
                assert!((v - 0.25).abs() < 0.03, "{kind:?} dim {d}: var {v}");
            }
        }
    }

    #[test]
    fn same_seed_same_samples_and_names() {
        let sde = Sde::vp();
        let score = GaussianScore {
            sde,
            mu: vec![0.0, 0.0],
            var: 1.0,
            perturbation: 0.0,
        };
        let cfg = SamplerConfig {
            steps: 20,
            seed: 9,
            ..Default::default()
        };
        let a = sample_latent(&sde, 1e-3, &score, prior_sample(&sde, 2, 10, 9), &cfg).unwrap();
        let b = sample_latent(&sde, 1e-3, &score, prior_sample(&sde, 2, 10, 9), &cfg).unwrap();
        assert_eq!(a.z, b.z);
        for name in SamplerKind::NAMES {
            assert_eq!(SamplerKind::from_name(name).unwrap().name(), name);
        }
        let e = SamplerKind::from_name("ddim").unwrap_err().to_string();
        assert!(e.contains("em, pc, ode-euler, ode-heun, ode-rk45"), "{e}");
        let bad = SamplerConfig {
            steps: 0,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("steps"));
    }
}
