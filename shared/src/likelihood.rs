//! Likelihoods of a model: the probability-flow ODE NLL (exact trace, or
//! Hutchinson), the NELBO estimate (spec 2.1 with importance-sampled time),
//! and their gap.
//!
//! Both are for the model's latent marginal at the truncation time `eps`,
//! pulled back through the flow: `log p(x) = log p_eps(h(x)) + log|det dh/dx|`.
//! Neither includes the `[0, eps]` residual term, so the gap compares like with like.

use serde::{Deserialize, Serialize};

use crate::draws::DiffusionDraws;
use crate::flow::Flow2d;
use crate::ode::{Tolerance, dopri5};
use crate::rng::{Counter, Stream};
use crate::score::LatentScore;
use crate::sde::{Sde, T_END};

/// How the divergence of the ODE's velocity is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trace {
    /// Exact trace from `dim` Jacobian-vector products.
    Exact,
    /// Hutchinson estimate with one Rademacher probe per point (fixed over the solve).
    Hutchinson,
}

/// Settings of the PF-ODE likelihood.
#[derive(Clone, Copy, Debug)]
pub struct NllConfig {
    /// Divergence method.
    pub trace: Trace,
    /// Solver tolerances.
    pub tol: Tolerance,
    /// Seed of the Hutchinson probes.
    pub seed: u64,
}

impl Default for NllConfig {
    fn default() -> Self {
        NllConfig {
            trace: Trace::Exact,
            tol: Tolerance {
                rtol: 1e-6,
                atol: 1e-6,
                max_steps: 200_000,
            },
            seed: 0,
        }
    }
}

/// Per-point negative log-likelihoods with the solver's cost.
#[derive(Clone, Debug)]
pub struct NllResult {
    /// `-log p(x)` per point, nats.
    pub nll: Vec<f64>,
    /// Velocity evaluations.
    pub nfe: usize,
}

/// Mean and standard error of a sample.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Estimate {
    /// Sample mean.
    pub mean: f64,
    /// Standard error of the mean.
    pub std_error: f64,
    /// Number of values.
    pub count: usize,
}

impl Estimate {
    /// Mean and standard error of `v`.
    pub fn of(v: &[f64]) -> Self {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        Estimate {
            mean,
            std_error: (var / n).sqrt(),
            count: v.len(),
        }
    }
}

/// `-log p_eps(z0)` per latent point by integrating the PF-ODE from `eps` to `T`.
pub fn latent_nll(
    sde: &Sde,
    eps: f64,
    score: &dyn LatentScore,
    z0: &[f64],
    cfg: &NllConfig,
) -> NllResult {
    let d = score.dim();
    let n = z0.len() / d;
    let stride = d + 1;
    let mut y0 = vec![0.0; n * stride];
    for i in 0..n {
        y0[i * stride..i * stride + d].copy_from_slice(&z0[i * d..(i + 1) * d]);
    }
    let probe: Vec<f64> = match cfg.trace {
        Trace::Exact => Vec::new(),
        Trace::Hutchinson => {
            let c = Counter::new(cfg.seed, Stream::Hutchinson, 0);
            (0..n * d).map(|i| c.sign(i as u32)).collect()
        }
    };
    let rhs = |t: f64, y: &[f64]| -> Vec<f64> {
        let mut z = Vec::with_capacity(n * d);
        for i in 0..n {
            z.extend_from_slice(&y[i * stride..i * stride + d]);
        }
        let (f, g2, s) = (sde.drift_coef(t), sde.g2(t), sde.std(t));
        let (ss, tr) = match cfg.trace {
            Trace::Exact => score.sigma_score_trace(&z, t),
            Trace::Hutchinson => {
                let (ss, jv) = score.sigma_score_jvp(&z, t, std::slice::from_ref(&probe));
                let tr = (0..n)
                    .map(|i| (0..d).map(|k| probe[i * d + k] * jv[0][i * d + k]).sum())
                    .collect();
                (ss, tr)
            }
        };
        let mut out = vec![0.0; n * stride];
        for i in 0..n {
            for k in 0..d {
                out[i * stride + k] = f * z[i * d + k] - 0.5 * g2 * ss[i * d + k] / s;
            }
            // Divergence of the velocity: D f - (g^2 / 2 sigma) tr(d(sigma s)/dz).
            out[i * stride + d] = d as f64 * f - 0.5 * g2 / s * tr[i];
        }
        out
    };
    let sol = dopri5(rhs, eps, T_END, &y0, stride, cfg.tol);
    let nll = (0..n)
        .map(|i| {
            let zt = &sol.y[i * stride..i * stride + d];
            -(sde.prior_logp(zt) + sol.y[i * stride + d])
        })
        .collect();
    NllResult { nll, nfe: sol.nfe }
}

/// `-log p(x)` per data point: flow, then [`latent_nll`], minus the flow's log-det.
pub fn data_nll(
    sde: &Sde,
    eps: f64,
    flow: &Flow2d,
    score: &dyn LatentScore,
    x: &[f64],
    cfg: &NllConfig,
) -> NllResult {
    let (z, ldj) = flow.forward(x);
    let mut r = latent_nll(sde, eps, score, &z, cfg);
    r.nll.iter_mut().zip(&ldj).for_each(|(v, l)| *v -= l);
    r
}

/// The NELBO terms of one draw per point (spec 2.1, 2.3), in nats per point.
#[derive(Clone, Debug)]
pub struct NelboTerms {
    /// `-log|det dh/dx|`.
    pub flow: Vec<f64>,
    /// `(Z/2) |sigma s + n|^2` at an importance-sampled time.
    pub dsm: Vec<f64>,
    /// `-log pi(m(T) z0 + sigma(T) n_T)`.
    pub prior: Vec<f64>,
    /// `D ln(sigma(eps)/sigma(T))`.
    pub constant: f64,
}

impl NelboTerms {
    /// The NELBO of each draw.
    pub fn total(&self) -> Vec<f64> {
        (0..self.flow.len())
            .map(|i| self.flow[i] + self.dsm[i] + self.prior[i] + self.constant)
            .collect()
    }
}

/// One-draw NELBO terms for each point of `x`, with draws keyed by `(seed, step)`.
#[allow(clippy::too_many_arguments)]
pub fn nelbo_terms(
    sde: &Sde,
    eps: f64,
    flow: &Flow2d,
    score: &dyn LatentScore,
    x: &[f64],
    seed: u64,
    step: u64,
) -> NelboTerms {
    let d = score.dim();
    let n = x.len() / d;
    let (z0, ldj) = flow.forward(x);
    let dr = DiffusionDraws::new(sde, eps, n, d, seed, step, true);
    let mut zt = Vec::with_capacity(n * d);
    for i in 0..n {
        let (m, s) = (sde.mean_coef(dr.t[i]), sde.std(dr.t[i]));
        for k in 0..d {
            zt.push(m * z0[i * d + k] + s * dr.noise[i * d + k]);
        }
    }
    let ss = score.sigma_score_rows(&zt, &dr.t);
    let (m1, s1) = (sde.mean_coef(T_END), sde.std(T_END));
    let mut dsm = Vec::with_capacity(n);
    let mut prior = Vec::with_capacity(n);
    for i in 0..n {
        let noise = &dr.noise[i * d..(i + 1) * d];
        let sq: f64 = (0..d).map(|k| (ss[i * d + k] + noise[k]).powi(2)).sum();
        dsm.push(0.5 * dr.weight * sq);
        let pn = &dr.prior_noise[i * d..(i + 1) * d];
        let z_end: Vec<f64> = (0..d).map(|k| m1 * z0[i * d + k] + s1 * pn[k]).collect();
        prior.push(-sde.prior_logp(&z_end));
    }
    NelboTerms {
        flow: ldj.iter().map(|l| -l).collect(),
        dsm,
        prior,
        constant: sde.nelbo_constant(d, eps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::GaussianScore;

    fn gaussian_points(n: usize, mu: &[f64], var: f64, seed: u64) -> Vec<f64> {
        let c = Counter::new(seed, Stream::TestData, 0);
        (0..n * 2)
            .map(|i| mu[i % 2] + var.sqrt() * c.normal(i as u32))
            .collect()
    }

    /// Exact NLL of the ODE model for Gaussian data with the exact score: the ODE map is
    /// affine, `z_T = m(T) mu + sqrt(v(T)/v(eps)) (z - m(eps) mu)`, with divergence
    /// integral `(D/2) ln(v(T)/v(eps))`, so `-log p = -log pi(z_T) - (D/2) ln(v(T)/v(eps))`.
    fn analytic_ode_nll(g: &GaussianScore, eps: f64, z: &[f64]) -> f64 {
        let (ve, vt) = (g.marginal_var(eps), g.marginal_var(T_END));
        let (me, mt) = (g.sde.mean_coef(eps), g.sde.mean_coef(T_END));
        let r = (vt / ve).sqrt();
        let zt: Vec<f64> = (0..2)
            .map(|k| mt * g.mu[k] + r * (z[k] - me * g.mu[k]))
            .collect();
        -g.sde.prior_logp(&zt) - (vt / ve).ln()
    }

    fn true_nll(g: &GaussianScore, eps: f64, z: &[f64]) -> f64 {
        let v = g.marginal_var(eps);
        let m = g.sde.mean_coef(eps);
        (0..2)
            .map(|k| {
                0.5 * (std::f64::consts::TAU * v).ln() + (z[k] - m * g.mu[k]).powi(2) / (2.0 * v)
            })
            .sum()
    }

    #[test]
    fn pf_ode_nll_matches_the_analytic_gaussian_nll() {
        for sde in [Sde::vp(), Sde::sub_vp(), Sde::ve(20.0)] {
            let g = GaussianScore {
                sde,
                mu: vec![0.7, -0.3],
                var: 0.5,
                perturbation: 0.0,
            };
            let eps = 1e-5;
            let x = gaussian_points(64, &g.mu, g.var, 1);
            for trace in [Trace::Exact, Trace::Hutchinson] {
                let cfg = NllConfig {
                    trace,
                    ..Default::default()
                };
                let r = latent_nll(&sde, eps, &g, &x, &cfg);
                for i in 0..64 {
                    let a = analytic_ode_nll(&g, eps, &x[2 * i..2 * i + 2]);
                    assert!(
                        (r.nll[i] - a).abs() < 1e-3,
                        "{:?} {trace:?} point {i}: {} vs {a}",
                        sde.kind,
                        r.nll[i]
                    );
                    // VP/sub-VP priors nearly match p_T, so the ODE NLL is also close to the
                    // true NLL; they differ by log p_T - log pi at z_T, which is
                    // O(m(T) |mu| |u|) ~ 5e-3 here because p_T's mean is m(T) mu, not 0.
                    if sde.kind != crate::sde::SdeKind::Ve {
                        let tn = true_nll(&g, eps, &x[2 * i..2 * i + 2]);
                        assert!(
                            (r.nll[i] - tn).abs() < 2e-2,
                            "true NLL {tn} vs {}",
                            r.nll[i]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn nelbo_bounds_nll_and_gap_grows_for_a_wrong_score() {
        let sde = Sde::vp();
        let eps = 1e-3;
        let mut g = GaussianScore {
            sde,
            mu: vec![0.5, 0.5],
            var: 0.3,
            perturbation: 0.0,
        };
        let n = 1_000_000;
        let x = gaussian_points(n, &g.mu, g.var, 2);
        let flow = Flow2d::Identity;
        let nll_pts = gaussian_points(256, &g.mu, g.var, 3);
        let nll =
            Estimate::of(&data_nll(&sde, eps, &flow, &g, &nll_pts, &NllConfig::default()).nll);
        // Closed-form expected NLL of the data: entropy of N(m mu, v I) in 2D.
        let v = g.marginal_var(eps);
        let entropy = 1.0 + (std::f64::consts::TAU * v).ln();
        let nelbo = Estimate::of(&nelbo_terms(&sde, eps, &flow, &g, &x, 5, 0).total());
        assert!(nelbo.std_error < 0.02, "se {}", nelbo.std_error);
        // With the exact score the bound is tight up to KL(p_T || pi) (~1e-5 here).
        assert!(
            (nelbo.mean - entropy).abs() < 4.0 * nelbo.std_error + 1e-3,
            "NELBO {nelbo:?} vs entropy {entropy}"
        );
        assert!(nelbo.mean > entropy - 4.0 * nelbo.std_error);
        assert!(
            (nll.mean - entropy).abs() < 4.0 * nll.std_error + 1e-3,
            "NLL {nll:?} vs {entropy}"
        );
        // A wrong score opens a clear gap.
        g.perturbation = 0.3;
        let bad = Estimate::of(&nelbo_terms(&sde, eps, &flow, &g, &x, 5, 0).total());
        assert!(
            bad.mean > nelbo.mean + 0.5,
            "{} vs {}",
            bad.mean,
            nelbo.mean
        );
    }
}
