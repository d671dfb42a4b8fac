//! The random draws of one NELBO evaluation: diffusion times, their weight,
//! the score-matching noise and the prior-term noise. Training (burn) and
//! evaluation (`f64`) take them from here, so both see identical draws.

use crate::rng::{Counter, Stream};
use crate::sde::Sde;

/// Draws for `n` points of dimension `d` at training step `step`.
#[derive(Clone, Debug)]
pub struct DiffusionDraws {
    /// Diffusion time per point.
    pub t: Vec<f64>,
    /// Estimator weight `Z` (importance sampling) or 1 (uniform).
    pub weight: f64,
    /// Noise `n` for `z_t = m z0 + sigma n`, `n * d` values.
    pub noise: Vec<f64>,
    /// Noise `n_T` of the prior term, `n * d` values.
    pub prior_noise: Vec<f64>,
}

impl DiffusionDraws {
    /// Draws keyed by `(seed, step)`; times are importance-sampled when `importance`.
    pub fn new(
        sde: &Sde,
        eps: f64,
        n: usize,
        d: usize,
        seed: u64,
        step: u64,
        importance: bool,
    ) -> Self {
        let cu = Counter::new(seed, Stream::Time, step);
        let t = (0..n)
            .map(|i| sde.draw_time(cu.uniform(i as u32), eps, importance))
            .collect();
        DiffusionDraws {
            t,
            weight: sde.time_weight(eps, importance),
            noise: Counter::new(seed, Stream::DsmNoise, step).normals(n * d),
            prior_noise: Counter::new(seed, Stream::PriorNoise, step).normals(n * d),
        }
    }
}
