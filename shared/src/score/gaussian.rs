//! The exact score of Gaussian data `N(mu, s^2 I)` diffused by a linear SDE:
//! the marginal at `t` is `N(m(t) mu, (m^2 s^2 + sigma^2) I)`. Used to test the
//! samplers and the likelihood against closed forms (spec section 8, T0).

use super::LatentScore;
use crate::sde::Sde;

/// Exact `sigma * score` of diffused Gaussian data, optionally perturbed.
#[derive(Clone, Debug)]
pub struct GaussianScore {
    /// The SDE.
    pub sde: Sde,
    /// Data mean, one entry per dimension.
    pub mu: Vec<f64>,
    /// Data variance `s^2` (isotropic).
    pub var: f64,
    /// Added to `sigma * score` (0 for the exact score): a deliberately wrong model.
    pub perturbation: f64,
}

impl GaussianScore {
    /// Marginal variance at `t`.
    pub fn marginal_var(&self, t: f64) -> f64 {
        let m = self.sde.mean_coef(t);
        let s = self.sde.std(t);
        m * m * self.var + s * s
    }
}

impl LatentScore for GaussianScore {
    fn dim(&self) -> usize {
        self.mu.len()
    }

    fn sigma_score_rows(&self, z: &[f64], ts: &[f64]) -> Vec<f64> {
        let d = self.dim();
        z.iter()
            .enumerate()
            .map(|(i, zi)| {
                let t = ts[i / d];
                let (m, s, v) = (self.sde.mean_coef(t), self.sde.std(t), self.marginal_var(t));
                -s * (zi - m * self.mu[i % d]) / v + self.perturbation
            })
            .collect()
    }

    fn sigma_score_jvp(&self, z: &[f64], t: f64, vs: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>) {
        let (s, v) = (self.sde.std(t), self.marginal_var(t));
        let jv = vs
            .iter()
            .map(|vk| vk.iter().map(|x| -s * x / v).collect())
            .collect();
        (self.sigma_score(z, t), jv)
    }
}
