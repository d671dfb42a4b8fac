//! The image model in burn (any device, autodiff or not): Glow-lite forward (training,
//! with the log-determinant) and inverse, and the U-Net. Every tensor comes from
//! [`BurnParams`] by name; shapes and order come from [`super::layout`].

use burn::tensor::activation::silu;
use burn::tensor::module::{avg_pool2d, conv2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions};
use burn::tensor::{Device, Tensor, TensorData};

use crate::arch::{Architecture, GROUP_NORM_EPS, ImageArch};
use crate::error::Result;
use crate::image::layout::{
    UNetBlock, conditions_on_first_half, glow_levels, step_prefix, unet_blocks,
};
use crate::image::lu::LuConv;
use crate::params::ParamSet;
use crate::train::BurnParams;

fn image_of(arch: &Architecture) -> &ImageArch {
    arch.image.as_ref().expect("an image architecture")
}

/// Glow's squeeze `[B, C, H, W] -> [B, 4C, H/2, W/2]`, channel `4c + 2dy + dx`.
pub fn squeeze(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h / 2, 2, w / 2, 2])
        .permute([0, 1, 3, 5, 2, 4])
        .reshape([b, 4 * c, h / 2, w / 2])
}

/// The inverse of [`squeeze`].
pub fn unsqueeze(x: Tensor<4>) -> Tensor<4> {
    let [b, c4, h, w] = x.dims();
    let c = c4 / 4;
    x.reshape([b, c, 2, 2, h, w])
        .permute([0, 1, 4, 2, 5, 3])
        .reshape([b, c, 2 * h, 2 * w])
}

fn per_channel(v: Tensor<1>) -> Tensor<4> {
    let c = v.dims()[0];
    v.reshape([1, c, 1, 1])
}

fn conv(p: &BurnParams, prefix: &str, x: Tensor<4>) -> Tensor<4> {
    let w: Tensor<4> = p.tensor(&format!("{prefix}.weight"));
    let k = w.dims()[2];
    let b: Tensor<1> = p.tensor(&format!("{prefix}.bias"));
    conv2d(
        x,
        w,
        Some(b),
        ConvOptions::new([1, 1], [k / 2, k / 2], [1, 1], 1),
    )
}

fn dense(p: &BurnParams, prefix: &str, x: Tensor<2>) -> Tensor<2> {
    let w: Tensor<2> = p.tensor(&format!("{prefix}.weight"));
    let b: Tensor<1> = p.tensor(&format!("{prefix}.bias"));
    x.matmul(w) + b.unsqueeze_dim::<2>(0)
}

/// A host matrix `[r, c]` as a constant tensor.
fn constant2(data: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// The 1x1 convolution's `W = L (U + diag(exp(logs)))` from the leaves (differentiable).
fn lu_weight(p: &BurnParams, prefix: &str, c: usize, device: &Device) -> Tensor<2> {
    let mut strict_lower = vec![0.0f32; c * c];
    let mut strict_upper = vec![0.0f32; c * c];
    let mut eye = vec![0.0f32; c * c];
    for i in 0..c {
        for j in 0..c {
            match i.cmp(&j) {
                std::cmp::Ordering::Greater => strict_lower[i * c + j] = 1.0,
                std::cmp::Ordering::Less => strict_upper[i * c + j] = 1.0,
                std::cmp::Ordering::Equal => eye[i * c + j] = 1.0,
            }
        }
    }
    let eye = constant2(eye, [c, c], device);
    let lower: Tensor<2> = p.tensor(&format!("{prefix}.inv.lower"));
    let upper: Tensor<2> = p.tensor(&format!("{prefix}.inv.upper"));
    let logs: Tensor<1> = p.tensor(&format!("{prefix}.inv.logs"));
    let l = lower * constant2(strict_lower, [c, c], device) + eye.clone();
    let u =
        upper * constant2(strict_upper, [c, c], device) + eye * logs.exp().unsqueeze_dim::<2>(0);
    l.matmul(u)
}

fn mix(x: Tensor<4>, w: Tensor<2>) -> Tensor<4> {
    let c = w.dims()[0];
    conv2d(
        x,
        w.reshape([c, c, 1, 1]),
        None,
        ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
    )
}

fn conditioner(p: &BurnParams, prefix: &str, cond: Tensor<4>) -> Tensor<4> {
    let h = silu(conv(p, &format!("{prefix}.cp.c0"), cond));
    let h = silu(conv(p, &format!("{prefix}.cp.c1"), h));
    conv(p, &format!("{prefix}.cp.c2"), h)
}

/// `z = h(x)` (`[B, C, H, W]`, the image layout) and `log |det dz/dx|` (`[B, 1]`).
pub fn glow_forward(arch: &Architecture, p: &BurnParams, x: Tensor<4>) -> (Tensor<4>, Tensor<2>) {
    let img = image_of(arch);
    let device = x.device();
    let b = x.dims()[0];
    let mut ldj = Tensor::<2>::zeros([b, 1], &device);
    let levels = glow_levels(img);
    let mut h = x;
    for (l, lv) in levels.iter().enumerate() {
        h = squeeze(h);
        let (c, hw, half) = (lv.channels, (lv.height * lv.width) as f64, lv.half());
        for k in 0..lv.steps {
            let pre = step_prefix(l, k);
            let bias: Tensor<1> = p.tensor(&format!("{pre}.an.bias"));
            let logs: Tensor<1> = p.tensor(&format!("{pre}.an.logs"));
            h = (h + per_channel(bias)) * per_channel(logs.clone().exp());
            let inv_logs: Tensor<1> = p.tensor(&format!("{pre}.inv.logs"));
            h = mix(h, lu_weight(p, &pre, c, &device));
            let per_pixel = (logs.sum() + inv_logs.sum()).mul_scalar(hw);
            ldj = ldj + per_pixel.unsqueeze_dim::<2>(0);
            let first = conditions_on_first_half(k);
            let (cond, xb) = if first {
                (h.clone().narrow(1, 0, half), h.narrow(1, half, half))
            } else {
                (h.clone().narrow(1, half, half), h.narrow(1, 0, half))
            };
            let o = conditioner(p, &pre, cond.clone());
            let ls = o
                .clone()
                .narrow(1, 0, half)
                .mul_scalar(0.5)
                .tanh()
                .mul_scalar(2.0);
            let shift = o.narrow(1, half, half);
            let yb = xb * ls.clone().exp() + shift;
            ldj = ldj + ls.reshape([b, half * lv.height * lv.width]).sum_dim(1);
            h = if first {
                Tensor::cat(vec![cond, yb], 1)
            } else {
                Tensor::cat(vec![yb, cond], 1)
            };
        }
    }
    for _ in 0..levels.len() {
        h = unsqueeze(h);
    }
    (h, ldj)
}

/// `x = h^{-1}(z)`; the 1x1 convolutions' inverses are computed on the host from `params`
/// (the same values as `p`'s leaves).
pub fn glow_inverse(
    arch: &Architecture,
    p: &BurnParams,
    params: &ParamSet,
    z: Tensor<4>,
) -> Result<Tensor<4>> {
    let img = image_of(arch);
    let device = z.device();
    let levels = glow_levels(img);
    let mut h = z;
    for _ in 0..levels.len() {
        h = squeeze(h);
    }
    for (l, lv) in levels.iter().enumerate().rev() {
        let (c, half) = (lv.channels, lv.half());
        for k in (0..lv.steps).rev() {
            let pre = step_prefix(l, k);
            let first = conditions_on_first_half(k);
            let (cond, yb) = if first {
                (h.clone().narrow(1, 0, half), h.narrow(1, half, half))
            } else {
                (h.clone().narrow(1, half, half), h.narrow(1, 0, half))
            };
            let o = conditioner(p, &pre, cond.clone());
            let ls = o
                .clone()
                .narrow(1, 0, half)
                .mul_scalar(0.5)
                .tanh()
                .mul_scalar(2.0);
            let xb = (yb - o.narrow(1, half, half)) * ls.neg().exp();
            h = if first {
                Tensor::cat(vec![cond, xb], 1)
            } else {
                Tensor::cat(vec![xb, cond], 1)
            };
            let get = |n: &str| {
                params
                    .get(&format!("{pre}.inv.{n}"))
                    .map(|t| t.data.as_slice())
                    .ok_or_else(|| crate::error::IndmError::MissingTensor(format!("{pre}.inv.{n}")))
            };
            let lu = LuConv::from_f32(c, get("lower")?, get("upper")?, get("logs")?)?;
            let winv: Vec<f32> = lu.inverse_weight().iter().map(|&v| v as f32).collect();
            h = mix(h, constant2(winv, [c, c], &device));
            let bias: Tensor<1> = p.tensor(&format!("{pre}.an.bias"));
            let logs: Tensor<1> = p.tensor(&format!("{pre}.an.logs"));
            h = h * per_channel(logs.neg().exp()) - per_channel(bias);
        }
        h = unsqueeze(h);
    }
    Ok(h)
}

/// Group norm (biased variance, `GROUP_NORM_EPS`) with the affine `prefix.gamma`, `.beta`.
fn group_norm(p: &BurnParams, prefix: &str, x: Tensor<4>, groups: usize) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let g = x.reshape([b, groups, (c / groups) * h * w]);
    let centred = g.clone() - g.mean_dim(2);
    let var = centred.clone().square().mean_dim(2);
    let normed = (centred / var.add_scalar(GROUP_NORM_EPS).sqrt()).reshape([b, c, h, w]);
    let gamma: Tensor<1> = p.tensor(&format!("{prefix}.gamma"));
    let beta: Tensor<1> = p.tensor(&format!("{prefix}.beta"));
    normed * per_channel(gamma) + per_channel(beta)
}

fn upsample2x(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .repeat_dim(3, 2)
        .repeat_dim(5, 2)
        .reshape([b, c, 2 * h, 2 * w])
}

/// The U-Net's raw output on latents `z` (`[B, C, H, W]`) with time features `feats`
/// (`[B, 1 + 2F]`); `sigma s = sign * output`.
pub fn unet(arch: &Architecture, p: &BurnParams, z: Tensor<4>, feats: Tensor<2>) -> Tensor<4> {
    let img = image_of(arch);
    let u = &img.unet;
    let bsz = z.dims()[0];
    let temb = dense(p, "score.temb.l1", silu(dense(p, "score.temb.l0", feats)));
    let temb = silu(temb);
    let gn_silu = |prefix: &str, x: Tensor<4>| silu(group_norm(p, prefix, x, u.groups));
    let mut h = z;
    let mut skips: Vec<Tensor<4>> = Vec::new();
    for block in unet_blocks(u, img.channels, img.height) {
        match block {
            UNetBlock::ConvIn { .. } => h = conv(p, "score.conv_in", h),
            UNetBlock::Res {
                prefix,
                cin,
                cout,
                pop_skip,
                push_skip,
                ..
            } => {
                if pop_skip {
                    h = h + skips.pop().expect("a skip per up block");
                }
                let r = conv(
                    p,
                    &format!("{prefix}.c1"),
                    gn_silu(&format!("{prefix}.n1"), h.clone()),
                );
                let proj =
                    dense(p, &format!("{prefix}.t"), temb.clone()).reshape([bsz, cout, 1, 1]);
                let r = conv(
                    p,
                    &format!("{prefix}.c2"),
                    gn_silu(&format!("{prefix}.n2"), r + proj),
                );
                let short = if cin != cout {
                    conv(p, &format!("{prefix}.skip"), h)
                } else {
                    h
                };
                h = r + short;
                if push_skip {
                    skips.push(h.clone());
                }
            }
            UNetBlock::Down => h = avg_pool2d(h, AvgPoolOptions::new([2, 2])),
            UNetBlock::Up { prefix, .. } => h = conv(p, &format!("{prefix}.conv"), upsample2x(h)),
            UNetBlock::Out { .. } => h = conv(p, "score.conv_out", gn_silu("score.out_norm", h)),
        }
    }
    h
}

/// [`glow_forward`] on flat rows `[B, D]`; returns flat latents.
pub fn flow_forward_rows(
    arch: &Architecture,
    p: &BurnParams,
    x: Tensor<2>,
) -> (Tensor<2>, Tensor<2>) {
    let img = image_of(arch);
    let [b, d] = x.dims();
    let x4 = x.reshape([b, img.channels, img.height, img.width]);
    let (z, ldj) = glow_forward(arch, p, x4);
    (z.reshape([b, d]), ldj)
}

/// `sigma(t) s(z_t, t)` on flat rows `[B, D]` with time features per row.
pub fn sigma_score_rows(
    arch: &Architecture,
    p: &BurnParams,
    zt: Tensor<2>,
    feats: Tensor<2>,
) -> Tensor<2> {
    let img = image_of(arch);
    let [b, d] = zt.dims();
    let z4 = zt.reshape([b, img.channels, img.height, img.width]);
    unet(arch, p, z4, feats)
        .reshape([b, d])
        .mul_scalar(arch.output_sign())
}
