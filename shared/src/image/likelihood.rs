//! Likelihoods of an image model, in nats per image and bits per dimension (spec 2.1,
//! 2.6, 5.1, 5.2):
//!
//! - **NELBO**: `-ldj + prior + (Z/2)|sigma s + n|^2 + D ln(sigma(eps)/sigma(T)) + R`, one
//!   importance-sampled time per image, with the `[0, eps]` residual
//!   `R(z0) = E[-log N(z0; mu, v I)] - H[N(m(eps) z0, sigma(eps)^2 I)]` of the one-step
//!   Tweedie decoder `mu = (z_eps + sigma(eps)^2 s(z_eps, eps)) / m(eps)`,
//!   `sqrt(v) = sigma(eps) / m(eps)`. With `z_eps = m z0 + sigma n` this is
//!   `R = |n + sigma s(z_eps)|^2 / 2 - D/2 - D ln m(eps)`.
//! - **PF-ODE NLL**: from the perturbed start `z_eps` (the same draw as `R`), integrate the
//!   probability-flow ODE with a Rademacher Hutchinson divergence (one probe per image,
//!   fixed over the solve) to `T`: `NLL = -log pi(z_T) - int div + R - ldj` (the spec's
//!   "NLL correct").
//!
//! Bits per dimension: `nats / (D ln 2) + offset` with the dequantization offset of the
//! data scaling (7 on `[-1, 1]`, 8 on `[0, 1]`, [`crate::data::dequant`]).

use serde::{Deserialize, Serialize};

use crate::data::dequant::{Scaling, bits_per_dim};
use crate::draws::DiffusionDraws;
use crate::image::model::ImageModel;
use crate::likelihood::Estimate;
use crate::ode::{Tolerance, dopri5};
use crate::rng::{Counter, Stream};
use crate::sde::T_END;
use crate::train::{BurnParams, nelbo_terms};

/// NELBO terms per image, nats.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageNelbo {
    /// `-log |det dh/dx|`.
    pub flow: Vec<f64>,
    /// Likelihood-weighted score matching (IS).
    pub dsm: Vec<f64>,
    /// `-log pi(z_T)`.
    pub prior: Vec<f64>,
    /// The `[0, eps]` residual.
    pub residual: Vec<f64>,
    /// `D ln(sigma(eps) / sigma(T))`.
    pub constant: f64,
}

impl ImageNelbo {
    /// NELBO per image (with the residual).
    pub fn total(&self) -> Vec<f64> {
        (0..self.flow.len())
            .map(|i| self.flow[i] + self.dsm[i] + self.prior[i] + self.constant + self.residual[i])
            .collect()
    }
}

/// The perturbed start `z_eps = m(eps) z0 + sigma(eps) n` and the residual `R` per image.
fn perturbed_start(model: &ImageModel, z0: &[f64], seed: u64, key: u64) -> (Vec<f64>, Vec<f64>) {
    let arch = &model.arch;
    let d = model.dims();
    let (eps, sde) = (arch.eps, &arch.sde);
    let (m, s) = (sde.mean_coef(eps), sde.std(eps));
    let noise = Counter::new(seed, Stream::Eval, key).normals(z0.len());
    let z_eps: Vec<f64> = z0.iter().zip(&noise).map(|(z, n)| m * z + s * n).collect();
    let ss = model.sigma_score(&z_eps, eps);
    let r = (0..z0.len() / d)
        .map(|i| {
            let sq: f64 = (i * d..(i + 1) * d)
                .map(|k| (noise[k] + ss[k]).powi(2))
                .sum();
            0.5 * sq - 0.5 * d as f64 - d as f64 * m.ln()
        })
        .collect();
    (z_eps, r)
}

/// One-draw NELBO terms of the images `x` (flat rows, already dequantized and scaled),
/// draws keyed by `(seed, step)`.
pub fn nelbo(
    model: &ImageModel,
    x: &[f64],
    seed: u64,
    step: u64,
) -> crate::error::Result<ImageNelbo> {
    let arch = &model.arch;
    let d = model.dims();
    let n = x.len() / d;
    let mut out = ImageNelbo {
        constant: arch.sde.nelbo_constant(d, arch.eps),
        ..Default::default()
    };
    let bp: &BurnParams = model.burn_params();
    let dev = model.device();
    for (c, part) in x.chunks(model.chunk * d).enumerate() {
        let b = part.len() / d;
        // Draws per chunk, keyed so that they do not depend on the chunk size's history.
        let key = step.wrapping_mul(1 << 20).wrapping_add(c as u64);
        let draws = DiffusionDraws::new(&arch.sde, arch.eps, b, d, seed, key, true);
        let data: Vec<f32> = part.iter().map(|&v| v as f32).collect();
        let xt =
            burn::tensor::Tensor::<2>::from_data(burn::tensor::TensorData::new(data, [b, d]), dev);
        let (flow, dsm, prior) = nelbo_terms(arch, bp, xt, &draws, false);
        let col = |t: burn::tensor::Tensor<2>| -> Vec<f64> {
            t.into_data().iter::<f32>().map(|v| v as f64).collect()
        };
        out.flow.extend(col(flow));
        out.dsm.extend(col(dsm));
        out.prior.extend(col(prior));
    }
    let (z0, _) = model.encode(x)?;
    out.residual = perturbed_start(model, &z0, seed, step).1;
    debug_assert_eq!(out.flow.len(), n);
    Ok(out)
}

/// Settings of the image PF-ODE likelihood.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OdeNllConfig {
    /// RK45 relative tolerance.
    pub rtol: f64,
    /// RK45 absolute tolerance.
    pub atol: f64,
    /// Seed of the probes and the perturbed start.
    pub seed: u64,
}

impl Default for OdeNllConfig {
    fn default() -> Self {
        OdeNllConfig {
            rtol: 1e-4,
            atol: 1e-4,
            seed: 0,
        }
    }
}

/// Per-image PF-ODE NLL (nats) with the solver's velocity evaluations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageNll {
    /// `-log p(x)` per image, nats.
    pub nll: Vec<f64>,
    /// Velocity evaluations of the solve.
    pub nfe: usize,
}

/// PF-ODE NLL of the images `x` (flat rows, dequantized and scaled), all in one solve.
pub fn ode_nll(
    model: &ImageModel,
    x: &[f64],
    cfg: &OdeNllConfig,
) -> crate::error::Result<ImageNll> {
    let arch = &model.arch;
    let (sde, eps) = (&arch.sde, arch.eps);
    let d = model.dims();
    let n = x.len() / d;
    let (z0, ldj) = model.encode(x)?;
    let (z_eps, residual) = perturbed_start(model, &z0, cfg.seed, u64::MAX);
    let probe: Vec<f64> = {
        let c = Counter::new(cfg.seed, Stream::Hutchinson, 0);
        (0..n * d).map(|i| c.sign(i as u32)).collect()
    };
    let stride = d + 1;
    let mut y0 = vec![0.0; n * stride];
    for i in 0..n {
        y0[i * stride..i * stride + d].copy_from_slice(&z_eps[i * d..(i + 1) * d]);
    }
    let rhs = |t: f64, y: &[f64]| -> Vec<f64> {
        let mut z = Vec::with_capacity(n * d);
        for i in 0..n {
            z.extend_from_slice(&y[i * stride..i * stride + d]);
        }
        let (f, g2, s) = (sde.drift_coef(t), sde.g2(t), sde.std(t));
        let (ss, tr) = model.sigma_score_div(&z, t, &probe);
        let mut out = vec![0.0; n * stride];
        for i in 0..n {
            for k in 0..d {
                out[i * stride + k] = f * z[i * d + k] - 0.5 * g2 * ss[i * d + k] / s;
            }
            out[i * stride + d] = d as f64 * f - 0.5 * g2 / s * tr[i];
        }
        out
    };
    let tol = Tolerance {
        rtol: cfg.rtol,
        atol: cfg.atol,
        max_steps: 100_000,
    };
    let sol = dopri5(rhs, eps, T_END, &y0, stride, tol);
    let nll = (0..n)
        .map(|i| {
            let zt = &sol.y[i * stride..i * stride + d];
            -(sde.prior_logp(zt) + sol.y[i * stride + d]) + residual[i] - ldj[i]
        })
        .collect();
    Ok(ImageNll { nll, nfe: sol.nfe })
}

/// Bits/dim of a per-image NLL sample (mean and standard error scale alike).
pub fn bpd(nats: &Estimate, dims: usize, scaling: Scaling) -> Estimate {
    Estimate {
        mean: bits_per_dim(nats.mean, dims, scaling),
        std_error: nats.std_error / (dims as f64 * std::f64::consts::LN_2),
        count: nats.count,
    }
}
