//! Evaluation of a trained model: NELBO (to a target standard error), PF-ODE
//! NLL (adaptive RK45, exact trace, f64), samples and trajectories.

use anyhow::Result;
use indm::CpuModel;
use indm::data::Toy2d;
use indm::likelihood::{Estimate, NllConfig, Trace, data_nll, nelbo_terms};
use indm::ode::Tolerance;
use indm::rng::Stream;
use indm::sample::{SamplerConfig, sample_model};
use serde::{Deserialize, Serialize};

use crate::config::EvalConfig;

/// Seed offset that keeps evaluation draws apart from training draws.
const EVAL_SALT: u64 = 0xE7A1_0000_0000;

/// Likelihood figures of a model on a data set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Likelihoods {
    /// NELBO, nats per point.
    pub nelbo: Estimate,
    /// PF-ODE NLL, nats per point.
    pub nll: Estimate,
    /// Mean velocity evaluations of the NLL solve.
    pub nll_nfe: usize,
    /// NELBO - NLL.
    pub gap: f64,
    /// Standard error of the gap.
    pub gap_se: f64,
}

/// NELBO with fresh test points per batch until its standard error is below the target.
pub fn nelbo(
    model: &CpuModel,
    data: Toy2d,
    seed: u64,
    target_se: f64,
    max_points: usize,
) -> Estimate {
    let batch = 20_000;
    let mut values: Vec<f64> = Vec::new();
    let mut b = 0u64;
    loop {
        let x = data.sample(batch, seed ^ EVAL_SALT, 1 + b, Stream::TestData);
        let terms = nelbo_terms(
            &model.arch.sde,
            model.arch.eps,
            &model.flow,
            &model.score,
            &x,
            seed ^ EVAL_SALT,
            b,
        );
        values.extend(terms.total());
        b += 1;
        let e = Estimate::of(&values);
        if (e.std_error < target_se && values.len() >= 100_000) || values.len() >= max_points {
            return e;
        }
    }
}

/// Seed offset of the data drawn for figures (kept apart from training and likelihood draws).
const FIGURE_SALT: u64 = 0xDA7A;

/// `n` data points for figures, the same for every model trained with `seed`.
pub fn reference_data(data: Toy2d, n: usize, seed: u64) -> Vec<f64> {
    data.sample(n, seed ^ FIGURE_SALT, 0, Stream::TestData)
}

/// PF-ODE NLL of `n` test points with the given divergence method and tolerances.
pub fn nll(
    model: &CpuModel,
    data: Toy2d,
    seed: u64,
    n: usize,
    trace: Trace,
    rtol: f64,
    atol: f64,
) -> (Estimate, usize) {
    let x = data.sample(n, seed ^ EVAL_SALT, 0, Stream::TestData);
    let cfg = NllConfig {
        trace,
        tol: Tolerance {
            rtol,
            atol,
            max_steps: 200_000,
        },
        seed,
    };
    let r = data_nll(
        &model.arch.sde,
        model.arch.eps,
        &model.flow,
        &model.score,
        &x,
        &cfg,
    );
    (Estimate::of(&r.nll), r.nfe)
}

/// Both likelihoods and their gap.
pub fn likelihoods(model: &CpuModel, data: Toy2d, seed: u64, cfg: &EvalConfig) -> Likelihoods {
    let nelbo = nelbo(model, data, seed, cfg.nelbo_target_se, cfg.nelbo_max_points);
    let (nll, nll_nfe) = nll(
        model,
        data,
        seed,
        cfg.nll_points,
        Trace::Exact,
        cfg.nll_rtol,
        cfg.nll_atol,
    );
    Likelihoods {
        gap: nelbo.mean - nll.mean,
        gap_se: (nelbo.std_error.powi(2) + nll.std_error.powi(2)).sqrt(),
        nelbo,
        nll,
        nll_nfe,
    }
}

/// Model samples with the latent and data-space trajectories of every particle.
pub struct SampleSet {
    /// Data-space samples.
    pub x: Vec<f64>,
    /// Latent trajectory `(t, z_t)`.
    pub latent: Vec<(f64, Vec<f64>)>,
    /// The same trajectory decoded, `(t, h^-1(z_t))`.
    pub data: Vec<(f64, Vec<f64>)>,
    /// Score evaluations per particle.
    pub nfe: usize,
}

/// Draws `n` samples with `cfg`, keeping trajectories for plotting.
pub fn samples(model: &CpuModel, n: usize, cfg: &SamplerConfig) -> Result<SampleSet> {
    let (x, s) = sample_model(model, n, cfg)?;
    let data = s
        .trajectory
        .iter()
        .map(|(t, z)| (*t, model.flow.inverse(z)))
        .collect();
    Ok(SampleSet {
        x,
        latent: s.trajectory,
        data,
        nfe: s.nfe,
    })
}
