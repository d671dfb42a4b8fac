//! The Glow-lite flow's layers: squeeze / unsqueeze, actnorm, the affine coupling update
//! with its log-determinant, channel copies (split / concat), and the host side of the
//! invertible 1x1 convolution (its weight and inverse from the LU parameters).

use super::layers::{Conv2dLayer, even_spatial};
use super::{GpuTensor, Grid, ImageOps, Params, REDUCE_WORKGROUP, expect_shape, u};
use crate::error::{IndmError, Result};
use crate::gpu::context::GpuContext;

/// Actnorm's parameters: `y = (x + bias_c) exp(logs_c)`, each `[C, 1, 1, 1]`.
#[derive(Clone, Debug)]
pub struct ActNormLayer {
    /// Per-channel bias, added before scaling.
    pub bias: GpuTensor,
    /// Per-channel log-scale.
    pub logs: GpuTensor,
}

/// Actnorm's log-determinant per sample, `H W sum_c logs_c` (the same for every sample,
/// so it is computed here on the host rather than on the device). The inverse's is its
/// negative.
pub fn actnorm_logdet(logs: &[f32], h: usize, w: usize) -> f64 {
    (h * w) as f64 * logs.iter().map(|&v| v as f64).sum::<f64>()
}

impl ImageOps {
    /// Glow's squeeze: x `[B, C, H, W]` (H, W even) to out `[B, 4C, H/2, W/2]` with
    /// `out[b, 4c + 2dy + dx, y, x] = x[b, c, 2y + dy, 2x + dx]`.
    pub fn squeeze(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<()> {
        let [b, c, h, w] = x.shape;
        even_spatial("squeeze.x", x)?;
        expect_shape("squeeze.out", out, [b, 4 * c, h / 2, w / 2])?;
        self.resample(ctx, enc, "squeeze", x, out)
    }

    /// The inverse of [`ImageOps::squeeze`]: x `[B, 4C, H, W]` to out `[B, C, 2H, 2W]`.
    pub fn unsqueeze(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<()> {
        let [b, c4, h, w] = x.shape;
        if c4 % 4 != 0 {
            return Err(IndmError::invalid(
                "unsqueeze channels",
                format!("'unsqueeze.x' has shape {:?}", x.shape),
                "a multiple of 4 channels",
            ));
        }
        expect_shape("unsqueeze.out", out, [b, c4 / 4, 2 * h, 2 * w])?;
        self.resample(ctx, enc, "unsqueeze", x, out)
    }

    /// Actnorm forward, `out = (x + bias_c) exp(logs_c)` (x, out `[B, C, H, W]`); the
    /// log-determinant is [`actnorm_logdet`].
    pub fn actnorm_forward(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        layer: &ActNormLayer,
        x: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<()> {
        self.actnorm(ctx, enc, "actnorm_forward", layer, x, out)
    }

    /// Actnorm inverse, `out = y exp(-logs_c) - bias_c`.
    pub fn actnorm_inverse(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        layer: &ActNormLayer,
        y: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<()> {
        self.actnorm(ctx, enc, "actnorm_inverse", layer, y, out)
    }

    fn actnorm(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        entry: &'static str,
        layer: &ActNormLayer,
        x: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<()> {
        let [_, c, h, w] = x.shape;
        expect_shape("actnorm.bias", &layer.bias, [c, 1, 1, 1])?;
        expect_shape("actnorm.logs", &layer.logs, [c, 1, 1, 1])?;
        expect_shape("actnorm.out", out, x.shape)?;
        let n = x.numel();
        self.record(
            ctx,
            enc,
            entry,
            Params::new(&[u(n), u(c), u(h * w)]),
            &[
                Some(("actnorm.x", x)),
                Some(("actnorm.bias", &layer.bias)),
                Some(("actnorm.logs", &layer.logs)),
            ],
            ("actnorm.out", out),
            None,
            Grid::Flat(n),
        )
    }

    /// The affine coupling update, forward: with x_b `[B, Cb, H, W]` and the conditioner
    /// output h `[B, 2Cb, H, W]` (raw log-scale, then shift), `ls = 2 tanh(raw / 2)`,
    /// `y = x_b exp(ls) + shift`, and `logdet[b] += sum ls` over sample b (logdet
    /// `[B, 1, 1, 1]`, accumulated so a whole flow can share one buffer).
    ///
    /// Two dispatches: one partial sum per 256 elements, then one workgroup per sample.
    pub fn coupling_forward(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        x_b: &GpuTensor,
        h: &GpuTensor,
        y: &GpuTensor,
        logdet: &GpuTensor,
    ) -> Result<()> {
        let [b, cb, hh, ww] = x_b.shape;
        expect_shape("coupling.h", h, [b, 2 * cb, hh, ww])?;
        expect_shape("coupling.y", y, x_b.shape)?;
        expect_shape("coupling.logdet", logdet, [b, 1, 1, 1])?;
        let per_sample = cb * hh * ww;
        let chunks = per_sample.div_ceil(REDUCE_WORKGROUP as usize);
        let partials = GpuTensor::zeros(ctx, "coupling partials", [b, chunks, 1, 1])?;
        let params = Params::new(&[u(per_sample), u(cb), u(hh * ww), u(chunks)]);
        self.record(
            ctx,
            enc,
            "coupling_forward",
            params,
            &[Some(("coupling.x_b", x_b)), Some(("coupling.h", h))],
            ("coupling.y", y),
            Some(("coupling partials", &partials)),
            Grid::Groups(chunks, b),
        )?;
        self.record(
            ctx,
            enc,
            "sum_partials",
            params,
            &[Some(("coupling partials", &partials))],
            ("coupling.logdet", logdet),
            None,
            Grid::Groups(b, 1),
        )
    }

    /// The affine coupling update, inverse: `x_b = (y - shift) exp(-ls)` with h computed
    /// from the untouched half, as in [`ImageOps::coupling_forward`].
    pub fn coupling_inverse(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        y: &GpuTensor,
        h: &GpuTensor,
        x_b: &GpuTensor,
    ) -> Result<()> {
        let [b, cb, hh, ww] = y.shape;
        expect_shape("coupling.h", h, [b, 2 * cb, hh, ww])?;
        expect_shape("coupling.x_b", x_b, y.shape)?;
        let n = y.numel();
        self.record(
            ctx,
            enc,
            "coupling_inverse",
            Params::new(&[u(n), u(cb), u(hh * ww)]),
            &[Some(("coupling.y", y)), Some(("coupling.h", h))],
            ("coupling.x_b", x_b),
            None,
            Grid::Flat(n),
        )
    }

    /// Copies channels `src_start .. src_start + count` of src `[B, Cs, H, W]` into
    /// channels `dst_start .. dst_start + count` of dst `[B, Cd, H, W]` (the coupling's
    /// split and concat); dst's other channels are untouched.
    #[allow(clippy::too_many_arguments)]
    pub fn copy_channels(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        src: &GpuTensor,
        src_start: usize,
        dst: &GpuTensor,
        dst_start: usize,
        count: usize,
    ) -> Result<()> {
        let [b, cs, h, w] = src.shape;
        let cd = dst.shape[1];
        expect_shape("copy_channels.dst", dst, [b, cd, h, w])?;
        for (name, start, c) in [("source", src_start, cs), ("destination", dst_start, cd)] {
            if start + count > c {
                return Err(IndmError::invalid(
                    "channel range",
                    format!("{name} channels {start}..{} of {c}", start + count),
                    "a range within the tensor's channels",
                ));
            }
        }
        let n = b * count * h * w;
        self.record(
            ctx,
            enc,
            "copy_channels",
            Params::new(&[
                u(n),
                u(h * w),
                u(cs),
                u(src_start),
                u(cd),
                u(dst_start),
                u(count),
            ]),
            &[Some(("copy_channels.src", src))],
            ("copy_channels.dst", dst),
            None,
            Grid::Flat(n),
        )
    }
}

/// The invertible 1x1 convolution in LU form (Glow): `W = P L (U + diag(s))` with `P` a
/// permutation (`(P v)_i = v_{perm_i}`), `L` unit lower-triangular and `U` strictly
/// upper-triangular. `W` is a `[C_out, C_in]` = `[C, C]` matrix, the weight
/// `[C, C, 1, 1]` of a 1x1 [`ImageOps::conv2d`]; its log-determinant per sample is
/// `H W sum ln|s_i|`.
#[derive(Clone, Debug, PartialEq)]
pub struct InvConvLu {
    /// The permutation, `perm[i]` = the row of `L (U + diag s)` that becomes row i of W.
    pub perm: Vec<usize>,
    /// `[C, C]` row-major; only the strictly lower part is read (the diagonal is 1).
    pub lower: Vec<f64>,
    /// `[C, C]` row-major; only the strictly upper part is read.
    pub upper: Vec<f64>,
    /// The diagonal of the upper factor (non-zero).
    pub s: Vec<f64>,
}

impl InvConvLu {
    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.s.len()
    }

    /// Checks the sizes, that `perm` is a permutation and that every `s_i` is finite and
    /// non-zero (so W is invertible).
    pub fn validate(&self) -> Result<()> {
        let c = self.channels();
        for (what, len, want) in [
            ("LU permutation length", self.perm.len(), c),
            ("LU lower factor length", self.lower.len(), c * c),
            ("LU upper factor length", self.upper.len(), c * c),
        ] {
            if len != want {
                return Err(IndmError::invalid(
                    what,
                    len,
                    format!("{want} for {c} channels"),
                ));
            }
        }
        let mut seen = vec![false; c];
        for &p in &self.perm {
            if p >= c || std::mem::replace(&mut seen[p], true) {
                return Err(IndmError::invalid(
                    "LU permutation",
                    format!("{:?}", self.perm),
                    format!("each of 0..{c} exactly once"),
                ));
            }
        }
        if let Some(v) = self.s.iter().find(|v| !v.is_finite() || **v == 0.0) {
            return Err(IndmError::invalid(
                "LU diagonal s",
                v,
                "finite and non-zero",
            ));
        }
        Ok(())
    }

    /// `W = P L (U + diag s)`, `[C, C]` row-major, in `f64`.
    pub fn weight(&self) -> Result<Vec<f64>> {
        self.validate()?;
        let c = self.channels();
        // M = L (U + diag s): M[i][j] = sum_{k <= min(i, j)} L[i][k] (U + S)[k][j].
        let mut m = vec![0.0; c * c];
        for i in 0..c {
            for j in 0..c {
                let mut acc = 0.0;
                for k in 0..=i.min(j) {
                    let l = if k == i { 1.0 } else { self.lower[i * c + k] };
                    let us = if k == j {
                        self.s[k]
                    } else {
                        self.upper[k * c + j]
                    };
                    acc += l * us;
                }
                m[i * c + j] = acc;
            }
        }
        let mut w = vec![0.0; c * c];
        for i in 0..c {
            w[i * c..(i + 1) * c].copy_from_slice(&m[self.perm[i] * c..(self.perm[i] + 1) * c]);
        }
        Ok(w)
    }

    /// `W^{-1} = (U + diag s)^{-1} L^{-1} P^T`, `[C, C]` row-major, in `f64` (two
    /// triangular solves per column).
    pub fn inverse_weight(&self) -> Result<Vec<f64>> {
        self.validate()?;
        let c = self.channels();
        // Column j of M^{-1}: solve L y = e_j, then (U + S) x = y.
        let mut minv = vec![0.0; c * c];
        let mut y = vec![0.0; c];
        for j in 0..c {
            for i in 0..c {
                let e = if i == j { 1.0 } else { 0.0 };
                let row = &self.lower[i * c..i * c + i];
                y[i] = e - row.iter().zip(&y[..i]).map(|(l, v)| l * v).sum::<f64>();
            }
            for i in (0..c).rev() {
                let mut v = y[i];
                for k in i + 1..c {
                    v -= self.upper[i * c + k] * minv[k * c + j];
                }
                minv[i * c + j] = v / self.s[i];
            }
        }
        // (M^{-1} P^T)[i][j] = M^{-1}[i][perm[j]].
        let mut winv = vec![0.0; c * c];
        for i in 0..c {
            for j in 0..c {
                winv[i * c + j] = minv[i * c + self.perm[j]];
            }
        }
        Ok(winv)
    }

    /// `sum ln|s_i|`: the log-determinant of W per pixel (times H W per sample).
    pub fn log_abs_det(&self) -> f64 {
        self.s.iter().map(|v| v.abs().ln()).sum()
    }

    /// The forward and inverse 1x1 convolutions (no bias) on the device.
    pub fn conv_layers(&self, ctx: &GpuContext) -> Result<(Conv2dLayer, Conv2dLayer)> {
        let c = self.channels();
        let up = |label: &str, m: Vec<f64>| -> Result<Conv2dLayer> {
            let data: Vec<f32> = m.iter().map(|&v| v as f32).collect();
            Ok(Conv2dLayer {
                weight: GpuTensor::new(ctx, label, &data, [c, c, 1, 1])?,
                bias: None,
            })
        };
        Ok((
            up("invconv W", self.weight()?)?,
            up("invconv W^-1", self.inverse_weight()?)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lu(c: usize, seed: u64) -> InvConvLu {
        let r = crate::rng::Counter::new(seed, crate::rng::Stream::TestData, 5);
        let mut perm: Vec<usize> = (0..c).collect();
        // A fixed, non-trivial permutation: reverse, then rotate by one.
        perm.reverse();
        perm.rotate_left(1);
        InvConvLu {
            perm,
            lower: (0..c * c).map(|i| 0.5 * r.normal(i as u32)).collect(),
            upper: (0..c * c)
                .map(|i| 0.5 * r.normal((c * c + i) as u32))
                .collect(),
            s: (0..c)
                .map(|i| {
                    let v = r.normal((2 * c * c + i) as u32);
                    v.signum() * (0.3 * v).exp()
                })
                .collect(),
        }
    }

    #[test]
    fn weight_times_inverse_is_the_identity() {
        for c in [1, 2, 5, 12] {
            let p = lu(c, c as u64);
            let w = p.weight().unwrap();
            let winv = p.inverse_weight().unwrap();
            let mut err: f64 = 0.0;
            for i in 0..c {
                for j in 0..c {
                    let a: f64 = (0..c).map(|k| w[i * c + k] * winv[k * c + j]).sum();
                    let b: f64 = (0..c).map(|k| winv[i * c + k] * w[k * c + j]).sum();
                    let id = if i == j { 1.0 } else { 0.0 };
                    err = err.max((a - id).abs()).max((b - id).abs());
                }
            }
            assert!(err < 1e-12, "C={c}: |W W^-1 - I| = {err:e}");
        }
    }

    #[test]
    fn log_abs_det_matches_the_determinant() {
        // det W = sign(P) prod s; compare |det| via Gaussian elimination.
        let c = 6;
        let p = lu(c, 3);
        let mut a = p.weight().unwrap();
        let mut logdet = 0.0;
        for k in 0..c {
            let piv = (k..c)
                .max_by(|&x, &y| a[x * c + k].abs().total_cmp(&a[y * c + k].abs()))
                .unwrap();
            for j in 0..c {
                a.swap(k * c + j, piv * c + j);
            }
            let d = a[k * c + k];
            logdet += d.abs().ln();
            for i in k + 1..c {
                let f = a[i * c + k] / d;
                for j in k..c {
                    a[i * c + j] -= f * a[k * c + j];
                }
            }
        }
        assert!((logdet - p.log_abs_det()).abs() < 1e-12);
    }

    #[test]
    fn bad_lu_parameters_are_refused() {
        let mut p = lu(3, 1);
        p.perm = vec![0, 0, 2];
        assert!(p.weight().is_err());
        let mut p = lu(3, 1);
        p.s[1] = 0.0;
        assert!(p.inverse_weight().is_err());
        let mut p = lu(3, 1);
        p.lower.pop();
        assert!(p.validate().is_err());
    }

    #[test]
    fn actnorm_logdet_is_hw_times_the_sum() {
        assert_eq!(actnorm_logdet(&[0.5, -0.25, 1.0], 4, 2), 8.0 * 1.25);
    }
}
