//! RealNVP affine couplings on 2D points (spec 3.3), `f64` reference.
//!
//! Layer `k` keeps coordinate `c = k mod 2` and transforms the other one, `a`:
//! `(s_raw, b) = net_k(x_c)`, `s = 2 tanh(s_raw / 2)`, `y_a = x_a e^s + b`,
//! `log-det += s`. The bounded log-scale keeps every layer well conditioned and
//! the inverse `x_a = (y_a - b) e^{-s}` exact.

use crate::error::Result;
use crate::nn::Mlp;
use crate::params::ParamSet;

/// A stack of 2D affine coupling layers.
#[derive(Clone, Debug)]
pub struct Coupling2d {
    /// Conditioner of each layer (1 -> h -> h -> 2).
    pub nets: Vec<Mlp>,
}

/// Bounded log-scale `2 tanh(raw / 2)`.
#[inline]
pub fn bounded_log_scale(raw: f64) -> f64 {
    2.0 * (0.5 * raw).tanh()
}

impl Coupling2d {
    /// Reads `flow.{k}.l{0,1,2}` for `layers` layers.
    pub fn from_params(params: &ParamSet, layers: usize) -> Result<Self> {
        let nets = (0..layers)
            .map(|k| params.mlp(&format!("flow.{k}"), 3))
            .collect::<Result<_>>()?;
        Ok(Coupling2d { nets })
    }

    /// Scale and shift of layer `k` given the kept coordinates of `n` points.
    fn scale_shift(&self, k: usize, kept: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let out = self.nets[k].forward(kept, kept.len());
        let s = out
            .chunks_exact(2)
            .map(|o| bounded_log_scale(o[0]))
            .collect();
        let b = out.chunks_exact(2).map(|o| o[1]).collect();
        (s, b)
    }

    /// `z = h(x)` and the per-point log-determinant.
    pub fn forward(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let n = x.len() / 2;
        let mut z = x.to_vec();
        let mut ldj = vec![0.0; n];
        for k in 0..self.nets.len() {
            let (c, a) = (k % 2, 1 - k % 2);
            let kept: Vec<f64> = z.chunks_exact(2).map(|p| p[c]).collect();
            let (s, b) = self.scale_shift(k, &kept);
            for i in 0..n {
                z[2 * i + a] = z[2 * i + a] * s[i].exp() + b[i];
                ldj[i] += s[i];
            }
        }
        (z, ldj)
    }

    /// `x = h^{-1}(z)` (layers undone in reverse order).
    pub fn inverse(&self, z: &[f64]) -> Vec<f64> {
        let n = z.len() / 2;
        let mut x = z.to_vec();
        for k in (0..self.nets.len()).rev() {
            let (c, a) = (k % 2, 1 - k % 2);
            let kept: Vec<f64> = x.chunks_exact(2).map(|p| p[c]).collect();
            let (s, b) = self.scale_shift(k, &kept);
            for i in 0..n {
                x[2 * i + a] = (x[2 * i + a] - b[i]) * (-s[i]).exp();
            }
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{Architecture, FlowArch};
    use crate::params::ParamSet;
    use crate::sde::SdeKind;

    /// A flow with all layers random (including the normally zero last layer).
    fn random_flow(seed: u64) -> Coupling2d {
        let arch = Architecture::default_2d(
            SdeKind::Vp,
            FlowArch::Coupling2d {
                layers: 8,
                hidden: 16,
            },
        );
        let mut p = ParamSet::init(&arch, seed);
        let c = crate::rng::Counter::new(seed, crate::rng::Stream::Init, 999);
        for (j, prm) in p.params.iter_mut().enumerate() {
            if prm.name.contains(".l2.") {
                for (i, v) in prm.data.iter_mut().enumerate() {
                    *v = (c.normal((j * 1000 + i) as u32) * 0.5) as f32;
                }
            }
        }
        Coupling2d::from_params(&p, 8).unwrap()
    }

    fn points() -> Vec<f64> {
        let c = crate::rng::Counter::new(5, crate::rng::Stream::TestData, 0);
        (0..64).map(|i| 3.0 * c.normal(i)).collect()
    }

    #[test]
    fn inverse_undoes_forward() {
        let f = random_flow(3);
        let x = points();
        let (z, _) = f.forward(&x);
        let back = f.inverse(&z);
        let err = crate::numeric::max_abs_diff(&x, &back);
        assert!(err < 1e-10, "round trip error {err}");
        assert!(
            x.iter().zip(&z).any(|(a, b)| (a - b).abs() > 1e-3),
            "flow must not be the identity"
        );
    }

    #[test]
    fn log_det_matches_finite_difference_jacobian() {
        let f = random_flow(4);
        let x = points();
        let (_, ldj) = f.forward(&x);
        let h = 1e-6;
        for i in 0..x.len() / 2 {
            let mut jac = [[0.0; 2]; 2];
            for d in 0..2 {
                let mut xp = x[2 * i..2 * i + 2].to_vec();
                let mut xm = xp.clone();
                xp[d] += h;
                xm[d] -= h;
                let (zp, _) = f.forward(&xp);
                let (zm, _) = f.forward(&xm);
                for o in 0..2 {
                    jac[o][d] = (zp[o] - zm[o]) / (2.0 * h);
                }
            }
            let det = jac[0][0] * jac[1][1] - jac[0][1] * jac[1][0];
            assert!(
                (det.abs().ln() - ldj[i]).abs() < 1e-5,
                "point {i}: {} vs {}",
                det.abs().ln(),
                ldj[i]
            );
        }
    }

    #[test]
    fn identity_initialised_flow_is_the_identity() {
        let arch = Architecture::default_2d(SdeKind::Vp, FlowArch::from_name("coupling").unwrap());
        let f = Coupling2d::from_params(&ParamSet::init(&arch, 9), 8).unwrap();
        let x = points();
        let (z, ldj) = f.forward(&x);
        assert_eq!(z, x);
        assert!(ldj.iter().all(|&v| v == 0.0));
    }
}
