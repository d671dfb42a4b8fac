//! The image model in plain `f64` Rust: Glow-lite forward and inverse with the exact
//! log-determinant, and the U-Net. Slow (naive loops) and written straight from the
//! formulas; it is the reference the burn code is tested against, and what the tests
//! differentiate numerically. Layouts are the WGSL kernels' (NCHW, conv weights
//! `[C_out, C_in, k, k]`, dense weights `[in, out]`).

use crate::arch::{Architecture, GROUP_NORM_EPS, ImageArch};
use crate::error::{IndmError, Result};
use crate::image::layout::{
    UNetBlock, conditions_on_first_half, glow_levels, step_prefix, unet_blocks,
};
use crate::image::lu::LuConv;
use crate::nn::silu;
use crate::params::ParamSet;

/// A batch of `n` images `[C, H, W]`, row-major NCHW.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    /// Values.
    pub data: Vec<f64>,
    /// `[N, C, H, W]`.
    pub shape: [usize; 4],
}

impl Images {
    /// Wraps `data` of shape `shape`.
    pub fn new(data: Vec<f64>, shape: [usize; 4]) -> Self {
        assert_eq!(
            data.len(),
            shape.iter().product::<usize>(),
            "data for {shape:?}"
        );
        Images { data, shape }
    }

    fn zeros(shape: [usize; 4]) -> Self {
        Images::new(vec![0.0; shape.iter().product()], shape)
    }

    fn at(&self, b: usize, c: usize, y: usize, x: usize) -> f64 {
        let [_, cc, h, w] = self.shape;
        self.data[((b * cc + c) * h + y) * w + x]
    }

    /// Channels `start .. start + count`.
    pub fn channels(&self, start: usize, count: usize) -> Images {
        let [n, c, h, w] = self.shape;
        let hw = h * w;
        let mut out = Vec::with_capacity(n * count * hw);
        for b in 0..n {
            let base = (b * c + start) * hw;
            out.extend_from_slice(&self.data[base..base + count * hw]);
        }
        Images::new(out, [n, count, h, w])
    }

    /// Concatenates along channels.
    pub fn cat(a: &Images, b: &Images) -> Images {
        let [n, ca, h, w] = a.shape;
        let cb = b.shape[1];
        let hw = h * w;
        let mut out = Vec::with_capacity(n * (ca + cb) * hw);
        for i in 0..n {
            out.extend_from_slice(&a.data[i * ca * hw..(i + 1) * ca * hw]);
            out.extend_from_slice(&b.data[i * cb * hw..(i + 1) * cb * hw]);
        }
        Images::new(out, [n, ca + cb, h, w])
    }
}

/// `conv2d(x) + bias`, stride 1, zero padding `k / 2`; weight `[C_out, C_in, k, k]`.
pub fn conv2d(x: &Images, weight: &[f32], bias: &[f32], cout: usize, k: usize) -> Images {
    let [n, cin, h, w] = x.shape;
    assert_eq!(weight.len(), cout * cin * k * k, "conv weight size");
    let pad = (k / 2) as isize;
    let mut out = Images::zeros([n, cout, h, w]);
    for b in 0..n {
        for o in 0..cout {
            for y in 0..h {
                for xx in 0..w {
                    let mut acc = bias[o] as f64;
                    for i in 0..cin {
                        for ky in 0..k {
                            let sy = y as isize + ky as isize - pad;
                            if sy < 0 || sy >= h as isize {
                                continue;
                            }
                            for kx in 0..k {
                                let sx = xx as isize + kx as isize - pad;
                                if sx < 0 || sx >= w as isize {
                                    continue;
                                }
                                acc += x.at(b, i, sy as usize, sx as usize)
                                    * weight[((o * cin + i) * k + ky) * k + kx] as f64;
                            }
                        }
                    }
                    out.data[((b * cout + o) * h + y) * w + xx] = acc;
                }
            }
        }
    }
    out
}

/// A per-pixel channel mix `y[c] = sum_j m[c][j] x[j]` (`m` row-major `[C, C]`).
pub fn mix_channels(x: &Images, m: &[f64]) -> Images {
    let [n, c, h, w] = x.shape;
    let hw = h * w;
    let mut out = Images::zeros(x.shape);
    for b in 0..n {
        for o in 0..c {
            for p in 0..hw {
                let mut acc = 0.0;
                for j in 0..c {
                    acc += m[o * c + j] * x.data[(b * c + j) * hw + p];
                }
                out.data[(b * c + o) * hw + p] = acc;
            }
        }
    }
    out
}

/// Glow's squeeze: `out[b, 4c + 2dy + dx, y, x] = x[b, c, 2y + dy, 2x + dx]`.
pub fn squeeze(x: &Images) -> Images {
    let [n, c, h, w] = x.shape;
    let (h2, w2) = (h / 2, w / 2);
    let mut out = Images::zeros([n, 4 * c, h2, w2]);
    for b in 0..n {
        for ci in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    let oc = 4 * ci + 2 * (y % 2) + xx % 2;
                    out.data[((b * 4 * c + oc) * h2 + y / 2) * w2 + xx / 2] = x.at(b, ci, y, xx);
                }
            }
        }
    }
    out
}

/// The inverse of [`squeeze`].
pub fn unsqueeze(x: &Images) -> Images {
    let [n, c4, h2, w2] = x.shape;
    let (c, h, w) = (c4 / 4, 2 * h2, 2 * w2);
    let mut out = Images::zeros([n, c, h, w]);
    for b in 0..n {
        for ci in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    let oc = 4 * ci + 2 * (y % 2) + xx % 2;
                    out.data[((b * c + ci) * h + y) * w + xx] = x.at(b, oc, y / 2, xx / 2);
                }
            }
        }
    }
    out
}

fn tensor<'a>(p: &'a ParamSet, name: &str) -> Result<&'a [f32]> {
    p.get(name)
        .map(|t| t.data.as_slice())
        .ok_or_else(|| IndmError::MissingTensor(name.to_string()))
}

/// The 2 tanh(raw / 2) log-scale of the coupling (the WGSL kernel's).
pub fn coupling_log_scale(raw: f64) -> f64 {
    2.0 * (raw / 2.0).tanh()
}

/// The Glow-lite flow in `f64`.
#[derive(Clone, Debug)]
pub struct GlowRef {
    img: ImageArch,
    params: ParamSet,
}

impl GlowRef {
    /// The flow of `arch` with weights from `params` (identity flows have no tensors).
    pub fn new(arch: &Architecture, params: &ParamSet) -> Result<Self> {
        let img = arch
            .image
            .clone()
            .ok_or_else(|| IndmError::invalid("architecture", "2D", "an image model"))?;
        Ok(GlowRef {
            img,
            params: params.clone(),
        })
    }

    fn conditioner(&self, p: &str, cond: &Images, hidden: usize, cb: usize) -> Result<Images> {
        let t = |n: &str| tensor(&self.params, &format!("{p}.cp.{n}"));
        let mut h = conv2d(cond, t("c0.weight")?, t("c0.bias")?, hidden, 3);
        h.data.iter_mut().for_each(|v| *v = silu(*v));
        let mut h = conv2d(&h, t("c1.weight")?, t("c1.bias")?, hidden, 1);
        h.data.iter_mut().for_each(|v| *v = silu(*v));
        Ok(conv2d(&h, t("c2.weight")?, t("c2.bias")?, 2 * cb, 3))
    }

    fn lu(&self, p: &str, c: usize) -> Result<LuConv> {
        LuConv::from_f32(
            c,
            tensor(&self.params, &format!("{p}.inv.lower"))?,
            tensor(&self.params, &format!("{p}.inv.upper"))?,
            tensor(&self.params, &format!("{p}.inv.logs"))?,
        )
    }

    /// `z = h(x)` and `log |det dz/dx|` per image.
    #[allow(clippy::needless_range_loop)] // index loops mirror the NCHW formulas
    pub fn forward(&self, x: &Images) -> Result<(Images, Vec<f64>)> {
        let n = x.shape[0];
        let mut ldj = vec![0.0; n];
        let mut h = x.clone();
        let levels = glow_levels(&self.img);
        for (l, lv) in levels.iter().enumerate() {
            h = squeeze(&h);
            let (c, hw) = (lv.channels, lv.height * lv.width);
            for k in 0..lv.steps {
                let p = step_prefix(l, k);
                // Actnorm.
                let bias = tensor(&self.params, &format!("{p}.an.bias"))?;
                let logs = tensor(&self.params, &format!("{p}.an.logs"))?;
                for b in 0..n {
                    for ci in 0..c {
                        let base = (b * c + ci) * hw;
                        for v in &mut h.data[base..base + hw] {
                            *v = (*v + bias[ci] as f64) * (logs[ci] as f64).exp();
                        }
                    }
                }
                let an: f64 = logs.iter().map(|&v| v as f64).sum::<f64>() * hw as f64;
                // Invertible 1x1 convolution.
                let lu = self.lu(&p, c)?;
                h = mix_channels(&h, &lu.weight());
                let inv = lu.log_abs_det() * hw as f64;
                // Affine coupling.
                let half = lv.half();
                let first = conditions_on_first_half(k);
                let (cond, xb) = if first {
                    (h.channels(0, half), h.channels(half, half))
                } else {
                    (h.channels(half, half), h.channels(0, half))
                };
                let o = self.conditioner(&p, &cond, lv.hidden, half)?;
                let mut yb = xb.clone();
                for b in 0..n {
                    for ci in 0..half {
                        for q in 0..hw {
                            let raw = o.data[(b * 2 * half + ci) * hw + q];
                            let shift = o.data[(b * 2 * half + half + ci) * hw + q];
                            let ls = coupling_log_scale(raw);
                            let i = (b * half + ci) * hw + q;
                            yb.data[i] = xb.data[i] * ls.exp() + shift;
                            ldj[b] += ls;
                        }
                    }
                }
                h = if first {
                    Images::cat(&cond, &yb)
                } else {
                    Images::cat(&yb, &cond)
                };
                ldj.iter_mut().for_each(|v| *v += an + inv);
            }
        }
        for _ in 0..levels.len() {
            h = unsqueeze(&h);
        }
        Ok((h, ldj))
    }

    /// `x = h^{-1}(z)`.
    pub fn inverse(&self, z: &Images) -> Result<Images> {
        let n = z.shape[0];
        let levels = glow_levels(&self.img);
        let mut h = z.clone();
        for _ in 0..levels.len() {
            h = squeeze(&h);
        }
        for (l, lv) in levels.iter().enumerate().rev() {
            let (c, hw) = (lv.channels, lv.height * lv.width);
            for k in (0..lv.steps).rev() {
                let p = step_prefix(l, k);
                let half = lv.half();
                let first = conditions_on_first_half(k);
                let (cond, yb) = if first {
                    (h.channels(0, half), h.channels(half, half))
                } else {
                    (h.channels(half, half), h.channels(0, half))
                };
                let o = self.conditioner(&p, &cond, lv.hidden, half)?;
                let mut xb = yb.clone();
                for b in 0..n {
                    for ci in 0..half {
                        for q in 0..hw {
                            let raw = o.data[(b * 2 * half + ci) * hw + q];
                            let shift = o.data[(b * 2 * half + half + ci) * hw + q];
                            let i = (b * half + ci) * hw + q;
                            xb.data[i] = (yb.data[i] - shift) * (-coupling_log_scale(raw)).exp();
                        }
                    }
                }
                h = if first {
                    Images::cat(&cond, &xb)
                } else {
                    Images::cat(&xb, &cond)
                };
                h = mix_channels(&h, &self.lu(&p, c)?.inverse_weight());
                let bias = tensor(&self.params, &format!("{p}.an.bias"))?;
                let logs = tensor(&self.params, &format!("{p}.an.logs"))?;
                for b in 0..n {
                    for ci in 0..c {
                        let base = (b * c + ci) * hw;
                        for v in &mut h.data[base..base + hw] {
                            *v = *v * (-(logs[ci] as f64)).exp() - bias[ci] as f64;
                        }
                    }
                }
            }
            h = unsqueeze(&h);
        }
        Ok(h)
    }
}

/// Group norm of `x` with `groups` groups of consecutive channels, then `gamma`, `beta`.
pub fn group_norm(x: &Images, groups: usize, gamma: &[f32], beta: &[f32]) -> Images {
    let [n, c, h, w] = x.shape;
    let per = c / groups * h * w;
    let mut out = x.clone();
    for b in 0..n {
        for g in 0..groups {
            let base = (b * c + g * (c / groups)) * h * w;
            let s = &x.data[base..base + per];
            let mean = s.iter().sum::<f64>() / per as f64;
            let var = s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / per as f64;
            let inv = 1.0 / (var + GROUP_NORM_EPS).sqrt();
            for (j, v) in s.iter().enumerate() {
                let ch = g * (c / groups) + j / (h * w);
                out.data[base + j] = (v - mean) * inv * gamma[ch] as f64 + beta[ch] as f64;
            }
        }
    }
    out
}

/// The U-Net's raw output `net(z, t)` (`sigma s = sign net`) for images `z` with one
/// time-feature row per image.
#[allow(clippy::needless_range_loop)] // index loops mirror the NCHW formulas
pub fn unet_forward(
    arch: &Architecture,
    params: &ParamSet,
    z: &Images,
    feats: &[Vec<f64>],
) -> Result<Images> {
    let img = arch
        .image
        .as_ref()
        .ok_or_else(|| IndmError::invalid("architecture", "2D", "an image model"))?;
    let u = &img.unet;
    let n = z.shape[0];
    let t = |name: &str| tensor(params, name);
    let dense = |prefix: &str, x: &[Vec<f64>]| -> Result<Vec<Vec<f64>>> {
        let w = t(&format!("{prefix}.weight"))?;
        let b = t(&format!("{prefix}.bias"))?;
        let d_out = b.len();
        Ok(x.iter()
            .map(|row| {
                (0..d_out)
                    .map(|o| {
                        b[o] as f64
                            + row
                                .iter()
                                .enumerate()
                                .map(|(i, v)| v * w[i * d_out + o] as f64)
                                .sum::<f64>()
                    })
                    .collect()
            })
            .collect())
    };
    let act = |x: Vec<Vec<f64>>| -> Vec<Vec<f64>> {
        x.into_iter()
            .map(|r| r.into_iter().map(silu).collect())
            .collect()
    };
    let temb = dense("score.temb.l1", &act(dense("score.temb.l0", feats)?))?;
    let temb_act = act(temb);
    let gn_silu = |x: &Images, prefix: &str| -> Result<Images> {
        let mut y = group_norm(
            x,
            u.groups,
            t(&format!("{prefix}.gamma"))?,
            t(&format!("{prefix}.beta"))?,
        );
        y.data.iter_mut().for_each(|v| *v = silu(*v));
        Ok(y)
    };
    let conv = |x: &Images, prefix: &str, cout: usize, k: usize| -> Result<Images> {
        Ok(conv2d(
            x,
            t(&format!("{prefix}.weight"))?,
            t(&format!("{prefix}.bias"))?,
            cout,
            k,
        ))
    };
    let mut h = z.clone();
    let mut skips: Vec<Images> = Vec::new();
    for b in unet_blocks(u, img.channels, img.height) {
        match b {
            UNetBlock::ConvIn { cout, .. } => h = conv(&h, "score.conv_in", cout, 3)?,
            UNetBlock::Res {
                prefix,
                cin,
                cout,
                pop_skip,
                push_skip,
                ..
            } => {
                if pop_skip {
                    let s = skips.pop().expect("a skip per up block");
                    h.data.iter_mut().zip(&s.data).for_each(|(a, b)| *a += b);
                }
                let mut r = conv(
                    &gn_silu(&h, &format!("{prefix}.n1"))?,
                    &format!("{prefix}.c1"),
                    cout,
                    3,
                )?;
                let proj = dense(&format!("{prefix}.t"), &temb_act)?;
                let hw = r.shape[2] * r.shape[3];
                for bi in 0..n {
                    for c in 0..cout {
                        for v in &mut r.data[(bi * cout + c) * hw..(bi * cout + c + 1) * hw] {
                            *v += proj[bi][c];
                        }
                    }
                }
                let r = conv(
                    &gn_silu(&r, &format!("{prefix}.n2"))?,
                    &format!("{prefix}.c2"),
                    cout,
                    3,
                )?;
                let short = if cin != cout {
                    conv(&h, &format!("{prefix}.skip"), cout, 1)?
                } else {
                    h.clone()
                };
                h = Images::new(
                    r.data.iter().zip(&short.data).map(|(a, b)| a + b).collect(),
                    r.shape,
                );
                if push_skip {
                    skips.push(h.clone());
                }
            }
            UNetBlock::Down => {
                let [nn, c, hh, ww] = h.shape;
                let mut o = Images::zeros([nn, c, hh / 2, ww / 2]);
                for bi in 0..nn {
                    for ci in 0..c {
                        for y in 0..hh / 2 {
                            for x in 0..ww / 2 {
                                let s = h.at(bi, ci, 2 * y, 2 * x)
                                    + h.at(bi, ci, 2 * y + 1, 2 * x)
                                    + h.at(bi, ci, 2 * y, 2 * x + 1)
                                    + h.at(bi, ci, 2 * y + 1, 2 * x + 1);
                                o.data[((bi * c + ci) * (hh / 2) + y) * (ww / 2) + x] = s / 4.0;
                            }
                        }
                    }
                }
                h = o;
            }
            UNetBlock::Up { prefix, cout, .. } => {
                let [nn, c, hh, ww] = h.shape;
                let mut o = Images::zeros([nn, c, 2 * hh, 2 * ww]);
                for bi in 0..nn {
                    for ci in 0..c {
                        for y in 0..2 * hh {
                            for x in 0..2 * ww {
                                o.data[((bi * c + ci) * 2 * hh + y) * 2 * ww + x] =
                                    h.at(bi, ci, y / 2, x / 2);
                            }
                        }
                    }
                }
                h = conv(&o, &format!("{prefix}.conv"), cout, 3)?;
            }
            UNetBlock::Out { cout, .. } => {
                h = conv(&gn_silu(&h, "score.out_norm")?, "score.conv_out", cout, 3)?;
            }
        }
    }
    Ok(h)
}
