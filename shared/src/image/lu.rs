//! The invertible 1x1 convolution's matrix from its LU parameters, on the host in `f64`.
//!
//! `W = L (U + diag(exp(logs)))` with `L` unit lower-triangular (the strict lower part of
//! `lower`), `U` strictly upper-triangular (the strict upper part of `upper`) and a
//! positive diagonal. This is the WGSL runtime's `InvConvLu` (`W = P L (U + diag s)`)
//! with the permutation `P` the identity and `s = exp(logs)`: the flow starts at `W = I`,
//! and `det W = exp(sum logs) > 0` can never reach zero.

use crate::error::{IndmError, Result};

/// LU parameters of a `C x C` 1x1 convolution.
#[derive(Clone, Debug, PartialEq)]
pub struct LuConv {
    /// Channels.
    pub c: usize,
    /// `[C, C]` row-major; only the strict lower part is read.
    pub lower: Vec<f64>,
    /// `[C, C]` row-major; only the strict upper part is read.
    pub upper: Vec<f64>,
    /// Log of the diagonal of the upper factor.
    pub logs: Vec<f64>,
}

impl LuConv {
    /// From the `f32` parameter tensors.
    pub fn from_f32(c: usize, lower: &[f32], upper: &[f32], logs: &[f32]) -> Result<Self> {
        if lower.len() != c * c || upper.len() != c * c || logs.len() != c {
            return Err(IndmError::invalid(
                "LU parameters",
                format!("{} / {} / {} values", lower.len(), upper.len(), logs.len()),
                format!("{} / {} / {c} for {c} channels", c * c, c * c),
            ));
        }
        let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect();
        Ok(LuConv {
            c,
            lower: f(lower),
            upper: f(upper),
            logs: f(logs),
        })
    }

    fn l(&self, i: usize, k: usize) -> f64 {
        match i.cmp(&k) {
            std::cmp::Ordering::Equal => 1.0,
            std::cmp::Ordering::Greater => self.lower[i * self.c + k],
            std::cmp::Ordering::Less => 0.0,
        }
    }

    fn u(&self, k: usize, j: usize) -> f64 {
        match k.cmp(&j) {
            std::cmp::Ordering::Equal => self.logs[k].exp(),
            std::cmp::Ordering::Less => self.upper[k * self.c + j],
            std::cmp::Ordering::Greater => 0.0,
        }
    }

    /// `W`, `[C, C]` row-major (`y = W x` per pixel; the `[C, C, 1, 1]` conv weight).
    pub fn weight(&self) -> Vec<f64> {
        let c = self.c;
        let mut w = vec![0.0; c * c];
        for i in 0..c {
            for j in 0..c {
                w[i * c + j] = (0..=i.min(j)).map(|k| self.l(i, k) * self.u(k, j)).sum();
            }
        }
        w
    }

    /// `W^{-1} = (U + D)^{-1} L^{-1}` by two triangular solves per column.
    pub fn inverse_weight(&self) -> Vec<f64> {
        let c = self.c;
        let mut inv = vec![0.0; c * c];
        let mut y = vec![0.0; c];
        for j in 0..c {
            for i in 0..c {
                let e = if i == j { 1.0 } else { 0.0 };
                y[i] = e - (0..i).map(|k| self.l(i, k) * y[k]).sum::<f64>();
            }
            for i in (0..c).rev() {
                let v = y[i]
                    - (i + 1..c)
                        .map(|k| self.u(i, k) * inv[k * c + j])
                        .sum::<f64>();
                inv[i * c + j] = v / self.u(i, i);
            }
        }
        inv
    }

    /// `ln |det W| = sum logs` (per pixel).
    pub fn log_abs_det(&self) -> f64 {
        self.logs.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Counter, Stream};

    fn random(c: usize, seed: u64) -> LuConv {
        let r = Counter::new(seed, Stream::TestData, 3);
        LuConv {
            c,
            lower: (0..c * c).map(|i| 0.4 * r.normal(i as u32)).collect(),
            upper: (0..c * c)
                .map(|i| 0.4 * r.normal((c * c + i) as u32))
                .collect(),
            logs: (0..c)
                .map(|i| 0.3 * r.normal((2 * c * c + i) as u32))
                .collect(),
        }
    }

    #[test]
    fn inverse_and_log_det_are_exact() {
        for c in [1, 4, 12] {
            let p = random(c, c as u64);
            let (w, wi) = (p.weight(), p.inverse_weight());
            for i in 0..c {
                for j in 0..c {
                    let a: f64 = (0..c).map(|k| w[i * c + k] * wi[k * c + j]).sum();
                    let id = if i == j { 1.0 } else { 0.0 };
                    assert!((a - id).abs() < 1e-12, "C={c} ({i},{j}): {a}");
                }
            }
            // det by Gaussian elimination with partial pivoting.
            let mut a = w.clone();
            let mut ld = 0.0;
            for k in 0..c {
                let piv = (k..c)
                    .max_by(|&x, &y| a[x * c + k].abs().total_cmp(&a[y * c + k].abs()))
                    .unwrap();
                for j in 0..c {
                    a.swap(k * c + j, piv * c + j);
                }
                ld += a[k * c + k].abs().ln();
                for i in k + 1..c {
                    let f = a[i * c + k] / a[k * c + k];
                    for j in k..c {
                        a[i * c + j] -= f * a[k * c + j];
                    }
                }
            }
            assert!((ld - p.log_abs_det()).abs() < 1e-10, "C={c}: {ld}");
        }
    }

    #[test]
    fn zero_parameters_give_the_identity() {
        let p = LuConv::from_f32(3, &[0.0; 9], &[0.0; 9], &[0.0; 3]).unwrap();
        assert_eq!(p.weight(), vec![1., 0., 0., 0., 1., 0., 0., 0., 1.]);
        assert!(LuConv::from_f32(3, &[0.0; 8], &[0.0; 9], &[0.0; 3]).is_err());
    }

    /// The same matrix as the WGSL runtime's `InvConvLu` with the identity permutation.
    #[cfg(feature = "gpu")]
    #[test]
    fn matches_the_gpu_runtimes_lu_convention() {
        let p = random(6, 9);
        let g = crate::gpu::image_ops::InvConvLu {
            perm: (0..6).collect(),
            lower: p.lower.clone(),
            upper: p.upper.clone(),
            s: p.logs.iter().map(|v| v.exp()).collect(),
        };
        let (a, b) = (g.weight().unwrap(), p.weight());
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-12));
        let (a, b) = (g.inverse_weight().unwrap(), p.inverse_weight());
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-12));
    }
}
