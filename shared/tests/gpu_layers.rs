//! The image-model layer kernels (`indm::gpu::image_ops`) against burn on the flex CPU
//! backend, on whatever adapter wgpu finds (in CI: Mesa's lavapipe).
//!
//! - every layer (conv2d k = 1 / 3 with and without bias and residual, dense, group norm
//!   with and without SiLU, SiLU, add, per-channel bias, average pooling, nearest
//!   upsampling, squeeze / unsqueeze, actnorm, the coupling update and its log-det,
//!   channel copies, the invertible 1x1 convolution) equals burn's reference within
//!   1e-4 relative (`max |got - want| / (1 + |want|)`), for seeded random inputs;
//! - the flow layers round-trip (forward then inverse gives the input back);
//! - wrong shapes give typed errors that name the tensor and both shapes.
//!
//! Without an adapter these tests print `SKIPPED` and pass, unless `INDM_REQUIRE_GPU=1`
//! (set by `scripts/test.sh`), which makes a missing adapter fail.
#![cfg(all(feature = "gpu", feature = "train"))]

mod common;

use burn::module::Param;
use burn::nn::GroupNormConfig;
use burn::tensor::activation::silu;
use burn::tensor::module::{avg_pool2d, conv2d, interpolate};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor, TensorData};
use common::context;
use indm::IndmError;
use indm::gpu::GpuContext;
use indm::gpu::image_ops::{
    ActNormLayer, Conv2dLayer, DenseLayer, GpuTensor, GroupNormLayer, ImageOps, InvConvLu,
    actnorm_logdet,
};
use indm::rng::{Counter, Stream};

/// The tolerance of every parity check.
const TOL: f64 = 1e-4;

/// The device, the compiled kernels and burn's CPU device.
struct Env {
    ctx: GpuContext,
    ops: ImageOps,
    dev: Device,
}

fn env() -> Option<Env> {
    let ctx = context()?;
    let ops = ImageOps::new(&ctx).expect("image kernels compile");
    Some(Env {
        ctx,
        ops,
        dev: Device::flex(),
    })
}

/// `n` seeded normals times `std` plus `mean`, as f32.
fn normals(seed: u64, n: usize, std: f64, mean: f64) -> Vec<f32> {
    Counter::new(seed, Stream::TestData, 31)
        .normals(n)
        .into_iter()
        .map(|v| (mean + std * v) as f32)
        .collect()
}

fn numel(shape: [usize; 4]) -> usize {
    shape.iter().product()
}

/// `max |got - want| / (1 + |want|)`.
fn max_rel(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w as f64).abs() / (1.0 + (w as f64).abs()))
        .fold(0.0, f64::max)
}

/// Asserts `got` is within [`TOL`] of `want` and prints the measured error.
fn check(what: &str, got: &[f32], want: &[f32]) {
    let err = max_rel(got, want);
    eprintln!("{what}: max rel err {err:.3e}");
    assert!(err < TOL, "{what}: max rel err {err:e} >= {TOL:e}");
}

impl Env {
    fn gpu(&self, label: &str, data: &[f32], shape: [usize; 4]) -> GpuTensor {
        GpuTensor::new(&self.ctx, label, data, shape).unwrap()
    }

    fn zeros(&self, shape: [usize; 4]) -> GpuTensor {
        GpuTensor::zeros(&self.ctx, "out", shape).unwrap()
    }

    /// Records with `f` into one encoder and submits.
    fn run(
        &self,
        f: impl FnOnce(&ImageOps, &GpuContext, &mut wgpu::CommandEncoder) -> indm::Result<()>,
    ) {
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        f(&self.ops, &self.ctx, &mut enc).unwrap();
        self.ctx.queue.submit([enc.finish()]);
    }

    fn read(&self, t: &GpuTensor) -> Vec<f32> {
        pollster::block_on(t.read(&self.ctx)).unwrap()
    }

    fn burn<const D: usize>(&self, data: &[f32], shape: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(data.to_vec(), shape), &self.dev)
    }
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

fn vec4(n: usize) -> [usize; 4] {
    [n, 1, 1, 1]
}

#[test]
fn conv2d_matches_burn() {
    let Some(e) = env() else { return };
    let mut seed = 100;
    for (k, c_in, c_out, hw) in [(3, 8, 12, 8), (1, 16, 8, 8), (3, 16, 16, 16), (3, 3, 5, 7)] {
        for (with_bias, with_res) in [(true, false), (false, false), (true, true), (false, true)] {
            seed += 4;
            let b = 2;
            let xs = [b, c_in, hw, hw];
            let ws = [c_out, c_in, k, k];
            let os = [b, c_out, hw, hw];
            let x = normals(seed, numel(xs), 1.0, 0.0);
            let w = normals(
                seed + 1,
                numel(ws),
                1.0 / ((c_in * k * k) as f64).sqrt(),
                0.0,
            );
            let bias = normals(seed + 2, c_out, 0.5, 0.0);
            let res = normals(seed + 3, numel(os), 1.0, 0.0);
            let layer = Conv2dLayer {
                weight: e.gpu("w", &w, ws),
                bias: with_bias.then(|| e.gpu("bias", &bias, vec4(c_out))),
            };
            let gx = e.gpu("x", &x, xs);
            let gres = e.gpu("res", &res, os);
            let out = e.zeros(os);
            e.run(|ops, ctx, enc| {
                ops.conv2d(ctx, enc, &layer, &gx, with_res.then_some(&gres), &out)
            });
            let p = k / 2;
            let mut want = conv2d(
                e.burn(&x, xs),
                e.burn(&w, ws),
                with_bias.then(|| e.burn(&bias, [c_out])),
                ConvOptions::new([1, 1], [p, p], [1, 1], 1),
            );
            if with_res {
                want = want + e.burn(&res, os);
            }
            check(
                &format!(
                    "conv2d k={k} {c_in}->{c_out} {hw}x{hw} bias={with_bias} residual={with_res}"
                ),
                &e.read(&out),
                &host(want),
            );
        }
    }
}

#[test]
fn dense_matches_burn() {
    let Some(e) = env() else { return };
    let (b, d_in, d_out) = (3, 32, 24);
    for (seed, with_bias, with_res) in [(1, true, false), (2, false, false), (3, true, true)] {
        let x = normals(seed, b * d_in, 1.0, 0.0);
        let w = normals(seed + 10, d_in * d_out, 1.0 / (d_in as f64).sqrt(), 0.0);
        let bias = normals(seed + 20, d_out, 0.5, 0.0);
        let res = normals(seed + 30, b * d_out, 1.0, 0.0);
        let layer = DenseLayer {
            weight: e.gpu("w", &w, [d_in, d_out, 1, 1]),
            bias: with_bias.then(|| e.gpu("bias", &bias, vec4(d_out))),
        };
        let gx = e.gpu("x", &x, [b, d_in, 1, 1]);
        let gres = e.gpu("res", &res, [b, d_out, 1, 1]);
        let out = e.zeros([b, d_out, 1, 1]);
        e.run(|ops, ctx, enc| ops.dense(ctx, enc, &layer, &gx, with_res.then_some(&gres), &out));
        let mut want = e.burn(&x, [b, d_in]).matmul(e.burn(&w, [d_in, d_out]));
        if with_bias {
            want = want + e.burn(&bias, [d_out]).unsqueeze_dim::<2>(0);
        }
        if with_res {
            want = want + e.burn(&res, [b, d_out]);
        }
        check(
            &format!("dense {d_in}->{d_out} bias={with_bias} residual={with_res}"),
            &e.read(&out),
            &host(want),
        );
    }
}

#[test]
fn group_norm_matches_burn() {
    let Some(e) = env() else { return };
    // Per group: 4 x 64 = 256, 8 x 256 = 2048 (stride loop) and 3 x 35 = 105 elements
    // (idle invocations); an offset mean tests the two-pass variance.
    for (seed, c, g, h, w) in [(1, 16, 4, 8, 8), (2, 16, 2, 16, 16), (3, 6, 2, 5, 7)] {
        for with_silu in [false, true] {
            let b = 2;
            let s = [b, c, h, w];
            let eps = 1e-5;
            let x = normals(seed, numel(s), 2.0, 3.0);
            let gamma = normals(seed + 10, c, 0.5, 1.0);
            let beta = normals(seed + 20, c, 0.5, 0.0);
            let layer = GroupNormLayer {
                groups: g,
                eps,
                gamma: e.gpu("gamma", &gamma, vec4(c)),
                beta: e.gpu("beta", &beta, vec4(c)),
            };
            let gx = e.gpu("x", &x, s);
            let out = e.zeros(s);
            e.run(|ops, ctx, enc| ops.group_norm(ctx, enc, &layer, &gx, with_silu, &out));
            let mut gn = GroupNormConfig::new(g, c)
                .with_epsilon(eps as f64)
                .init(&e.dev);
            gn.gamma = Some(Param::from_tensor(e.burn(&gamma, [c])));
            gn.beta = Some(Param::from_tensor(e.burn(&beta, [c])));
            let mut want = gn.forward(e.burn(&x, s));
            if with_silu {
                want = silu(want);
            }
            check(
                &format!("group_norm C={c} G={g} {h}x{w} silu={with_silu}"),
                &e.read(&out),
                &host(want),
            );
        }
    }
}

#[test]
fn silu_add_and_channel_bias_match_burn() {
    let Some(e) = env() else { return };
    let s = [2, 12, 8, 8];
    let a = normals(1, numel(s), 3.0, 0.0);
    let bv = normals(2, numel(s), 1.0, 0.0);
    let v = normals(3, 2 * 12, 1.0, 0.0);
    let (ga, gb) = (e.gpu("a", &a, s), e.gpu("b", &bv, s));
    let gv = e.gpu("v", &v, [2, 12, 1, 1]);
    let (o_silu, o_add) = (e.zeros(s), e.zeros(s));
    let inplace = e.gpu("x", &a, s);
    e.run(|ops, ctx, enc| {
        ops.silu(ctx, enc, &ga, &o_silu)?;
        ops.add(ctx, enc, &ga, &gb, &o_add)?;
        ops.add_channel_bias(ctx, enc, &inplace, &gv)
    });
    check("silu", &e.read(&o_silu), &host(silu(e.burn(&a, s))));
    check(
        "add",
        &e.read(&o_add),
        &host(e.burn(&a, s) + e.burn(&bv, s)),
    );
    check(
        "add_channel_bias",
        &e.read(&inplace),
        &host(e.burn(&a, s) + e.burn(&v, [2, 12, 1, 1])),
    );
}

#[test]
fn avg_pool_and_nearest_upsample_match_burn() {
    let Some(e) = env() else { return };
    for (seed, s) in [(1, [2, 8, 8, 8]), (2, [2, 16, 16, 16]), (3, [1, 3, 6, 10])] {
        let [b, c, h, w] = s;
        let x = normals(seed, numel(s), 1.0, 0.0);
        let gx = e.gpu("x", &x, s);
        let (down, up) = (e.zeros([b, c, h / 2, w / 2]), e.zeros([b, c, 2 * h, 2 * w]));
        e.run(|ops, ctx, enc| {
            ops.avg_pool2x2(ctx, enc, &gx, &down)?;
            ops.upsample_nearest2x(ctx, enc, &gx, &up)
        });
        let want_down = avg_pool2d(e.burn(&x, s), AvgPoolOptions::new([2, 2]));
        let want_up = interpolate(
            e.burn(&x, s),
            InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([2 * h, 2 * w]),
        );
        check(
            &format!("avg_pool2x2 {s:?}"),
            &e.read(&down),
            &host(want_down),
        );
        check(
            &format!("upsample_nearest2x {s:?}"),
            &e.read(&up),
            &host(want_up),
        );
    }
}

#[test]
fn squeeze_matches_burn_and_unsqueeze_inverts_it() {
    let Some(e) = env() else { return };
    for (seed, s) in [(1, [2, 3, 8, 8]), (2, [2, 8, 16, 16]), (3, [1, 2, 4, 6])] {
        let [b, c, h, w] = s;
        let x = normals(seed, numel(s), 1.0, 0.0);
        let gx = e.gpu("x", &x, s);
        let sq = e.zeros([b, 4 * c, h / 2, w / 2]);
        let back = e.zeros(s);
        e.run(|ops, ctx, enc| {
            ops.squeeze(ctx, enc, &gx, &sq)?;
            ops.unsqueeze(ctx, enc, &sq, &back)
        });
        // Glow: view(B, C, H/2, 2, W/2, 2).permute(0, 1, 3, 5, 2, 4).reshape(B, 4C, H/2, W/2).
        let want: Tensor<4> = e
            .burn(&x, s)
            .reshape([b, c, h / 2, 2, w / 2, 2])
            .permute([0, 1, 3, 5, 2, 4])
            .reshape([b, 4 * c, h / 2, w / 2]);
        check(&format!("squeeze {s:?}"), &e.read(&sq), &host(want));
        assert_eq!(e.read(&back), x, "unsqueeze(squeeze(x)) != x for {s:?}");
        eprintln!("unsqueeze(squeeze(x)) {s:?}: exact");
    }
}

#[test]
fn actnorm_matches_burn_and_round_trips() {
    let Some(e) = env() else { return };
    let s = [2, 12, 8, 8];
    let c = s[1];
    let x = normals(1, numel(s), 1.0, 0.5);
    let bias = normals(2, c, 0.5, 0.0);
    let logs = normals(3, c, 0.5, 0.0);
    let layer = ActNormLayer {
        bias: e.gpu("bias", &bias, vec4(c)),
        logs: e.gpu("logs", &logs, vec4(c)),
    };
    let gx = e.gpu("x", &x, s);
    let (y, back) = (e.zeros(s), e.zeros(s));
    e.run(|ops, ctx, enc| {
        ops.actnorm_forward(ctx, enc, &layer, &gx, &y)?;
        ops.actnorm_inverse(ctx, enc, &layer, &y, &back)
    });
    let cs = [1, c, 1, 1];
    let want = (e.burn(&x, s) + e.burn(&bias, cs)) * e.burn(&logs, cs).exp();
    check("actnorm forward", &e.read(&y), &host(want));
    check("actnorm round trip", &e.read(&back), &x);
    let ld = actnorm_logdet(&logs, 8, 8);
    let want_ld: f64 = 64.0 * logs.iter().map(|&v| v as f64).sum::<f64>();
    assert!(
        (ld - want_ld).abs() < 1e-9,
        "actnorm log-det {ld} vs {want_ld}"
    );
}

#[test]
fn coupling_matches_burn_and_round_trips() {
    let Some(e) = env() else { return };
    // Per sample: 8 x 256 = 2048 elements (8 partial sums), 3 x 35 = 105 (one partial,
    // idle invocations), 4 x 64 = 256 (exactly one).
    for (seed, cb, h, w) in [(1, 8, 16, 16), (2, 3, 5, 7), (3, 4, 8, 8)] {
        let b = 2;
        let s = [b, cb, h, w];
        let hs = [b, 2 * cb, h, w];
        let x = normals(seed, numel(s), 1.0, 0.0);
        let hv = normals(seed + 10, numel(hs), 1.5, 0.0);
        let start = [1.5f32, -2.0];
        let (gx, gh) = (e.gpu("x_b", &x, s), e.gpu("h", &hv, hs));
        let logdet = e.gpu("logdet", &start, [b, 1, 1, 1]);
        let (y, back) = (e.zeros(s), e.zeros(s));
        e.run(|ops, ctx, enc| {
            ops.coupling_forward(ctx, enc, &gx, &gh, &y, &logdet)?;
            ops.coupling_inverse(ctx, enc, &y, &gh, &back)
        });
        let ht = e.burn(&hv, hs);
        let raw = ht.clone().narrow(1, 0, cb);
        let shift = ht.narrow(1, cb, cb);
        let ls = raw.div_scalar(2.0).tanh().mul_scalar(2.0);
        let want_y = e.burn(&x, s) * ls.clone().exp() + shift;
        let want_ld = ls.reshape([b, cb * h * w]).sum_dim(1) + e.burn(&start, [b, 1]);
        let what = format!("coupling Cb={cb} {h}x{w}");
        check(&format!("{what} forward"), &e.read(&y), &host(want_y));
        check(&format!("{what} log-det"), &e.read(&logdet), &host(want_ld));
        check(&format!("{what} round trip"), &e.read(&back), &x);
    }
}

#[test]
fn channel_copies_split_and_concat_like_burn() {
    let Some(e) = env() else { return };
    let s = [2, 10, 6, 6];
    let x = normals(1, numel(s), 1.0, 0.0);
    let gx = e.gpu("x", &x, s);
    let (xa, xb) = (e.zeros([2, 4, 6, 6]), e.zeros([2, 6, 6, 6]));
    let cat = e.zeros(s);
    e.run(|ops, ctx, enc| {
        ops.copy_channels(ctx, enc, &gx, 0, &xa, 0, 4)?;
        ops.copy_channels(ctx, enc, &gx, 4, &xb, 0, 6)?;
        // Concatenate in swapped order: [x_b, x_a].
        ops.copy_channels(ctx, enc, &xb, 0, &cat, 0, 6)?;
        ops.copy_channels(ctx, enc, &xa, 0, &cat, 6, 4)
    });
    let t = e.burn(&x, s);
    let (ta, tb) = (t.clone().narrow(1, 0, 4), t.narrow(1, 4, 6));
    check("split first half", &e.read(&xa), &host(ta.clone()));
    check("split second half", &e.read(&xb), &host(tb.clone()));
    check("concat", &e.read(&cat), &host(Tensor::cat(vec![tb, ta], 1)));
}

#[test]
fn invertible_1x1_conv_matches_burn_and_inverts() {
    let Some(e) = env() else { return };
    let c = 12;
    let r = Counter::new(7, Stream::TestData, 8);
    let lu = InvConvLu {
        perm: (0..c).map(|i| (i * 5 + 3) % c).collect::<Vec<_>>(),
        lower: r.normals(c * c).iter().map(|v| 0.3 * v).collect(),
        upper: r.normals(2 * c * c)[c * c..]
            .iter()
            .map(|v| 0.3 * v)
            .collect(),
        s: (0..c)
            .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 } * (0.2 * r.normal(999 + i as u32)).exp())
            .collect(),
    };
    let w: Vec<f32> = lu.weight().unwrap().iter().map(|&v| v as f32).collect();
    let (fwd, inv) = lu.conv_layers(&e.ctx).unwrap();
    let s = [2, c, 8, 8];
    let x = normals(3, numel(s), 1.0, 0.0);
    let gx = e.gpu("x", &x, s);
    let (y, back) = (e.zeros(s), e.zeros(s));
    e.run(|ops, ctx, enc| {
        ops.conv2d(ctx, enc, &fwd, &gx, None, &y)?;
        ops.conv2d(ctx, enc, &inv, &y, None, &back)
    });
    let want = conv2d(
        e.burn(&x, s),
        e.burn(&w, [c, c, 1, 1]),
        None,
        ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
    );
    check("invconv 1x1 forward", &e.read(&y), &host(want));
    check("invconv 1x1 round trip", &e.read(&back), &x);
}

/// A residual block chained in one encoder: GN+SiLU, conv3x3, + time embedding, GN+SiLU,
/// conv3x3 + skip, then downsampling.
#[test]
fn a_chained_residual_block_matches_burn() {
    let Some(e) = env() else { return };
    let (b, c, hw, t_dim) = (2, 16, 8, 32);
    let s = [b, c, hw, hw];
    let ws = [c, c, 3, 3];
    let wstd = 1.0 / ((c * 9) as f64).sqrt();
    let x = normals(1, numel(s), 1.0, 0.0);
    let temb = normals(2, b * t_dim, 1.0, 0.0);
    let (w1, w2) = (
        normals(3, numel(ws), wstd, 0.0),
        normals(4, numel(ws), wstd, 0.0),
    );
    let (b1, b2) = (normals(5, c, 0.1, 0.0), normals(6, c, 0.1, 0.0));
    let wt = normals(7, t_dim * c, 1.0 / (t_dim as f64).sqrt(), 0.0);
    let bt = normals(8, c, 0.1, 0.0);
    let (g1, be1) = (normals(9, c, 0.2, 1.0), normals(10, c, 0.2, 0.0));
    let (g2, be2) = (normals(11, c, 0.2, 1.0), normals(12, c, 0.2, 0.0));
    let gn = |g: &[f32], be: &[f32]| GroupNormLayer {
        groups: 4,
        eps: 1e-5,
        gamma: e.gpu("gamma", g, vec4(c)),
        beta: e.gpu("beta", be, vec4(c)),
    };
    let (n1, n2) = (gn(&g1, &be1), gn(&g2, &be2));
    let conv = |w: &[f32], bias: &[f32]| Conv2dLayer {
        weight: e.gpu("w", w, ws),
        bias: Some(e.gpu("bias", bias, vec4(c))),
    };
    let (c1, c2) = (conv(&w1, &b1), conv(&w2, &b2));
    let dense = DenseLayer {
        weight: e.gpu("wt", &wt, [t_dim, c, 1, 1]),
        bias: Some(e.gpu("bt", &bt, vec4(c))),
    };
    let gx = e.gpu("x", &x, s);
    let gt = e.gpu("temb", &temb, [b, t_dim, 1, 1]);
    let (t_act, t_proj) = (e.zeros([b, t_dim, 1, 1]), e.zeros([b, c, 1, 1]));
    let (h1, h2, h3, h4) = (e.zeros(s), e.zeros(s), e.zeros(s), e.zeros(s));
    let down = e.zeros([b, c, hw / 2, hw / 2]);
    e.run(|ops, ctx, enc| {
        ops.silu(ctx, enc, &gt, &t_act)?;
        ops.dense(ctx, enc, &dense, &t_act, None, &t_proj)?;
        ops.group_norm(ctx, enc, &n1, &gx, true, &h1)?;
        ops.conv2d(ctx, enc, &c1, &h1, None, &h2)?;
        ops.add_channel_bias(ctx, enc, &h2, &t_proj)?;
        ops.group_norm(ctx, enc, &n2, &h2, true, &h3)?;
        ops.conv2d(ctx, enc, &c2, &h3, Some(&gx), &h4)?;
        ops.avg_pool2x2(ctx, enc, &h4, &down)
    });
    let bgn = |g: &[f32], be: &[f32]| {
        let mut m = GroupNormConfig::new(4, c).with_epsilon(1e-5).init(&e.dev);
        m.gamma = Some(Param::from_tensor(e.burn(g, [c])));
        m.beta = Some(Param::from_tensor(e.burn(be, [c])));
        m
    };
    let opts = || ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let tp = silu(e.burn(&temb, [b, t_dim])).matmul(e.burn(&wt, [t_dim, c]))
        + e.burn(&bt, [c]).unsqueeze_dim::<2>(0);
    let xt = e.burn(&x, s);
    let h = silu(bgn(&g1, &be1).forward(xt.clone()));
    let h = conv2d(h, e.burn(&w1, ws), Some(e.burn(&b1, [c])), opts()) + tp.reshape([b, c, 1, 1]);
    let h = silu(bgn(&g2, &be2).forward(h));
    let h = conv2d(h, e.burn(&w2, ws), Some(e.burn(&b2, [c])), opts()) + xt;
    let want = avg_pool2d(h, AvgPoolOptions::new([2, 2]));
    check(
        "residual block (8 kernels, one encoder)",
        &e.read(&down),
        &host(want),
    );
}

#[test]
fn shape_errors_name_the_tensor_and_both_shapes() {
    let Some(e) = env() else { return };
    let x = e.zeros([2, 8, 8, 8]);
    let out = e.zeros([2, 4, 8, 8]);
    let conv = Conv2dLayer {
        weight: e.zeros([4, 6, 3, 3]),
        bias: Some(e.zeros(vec4(4))),
    };
    let mut enc = e.ctx.device.create_command_encoder(&Default::default());
    let expect_mismatch =
        |r: indm::Result<()>, tensor: &str, expected: &[usize], found: &[usize]| match r {
            Err(err @ IndmError::ShapeMismatch { .. }) => {
                let msg = err.to_string();
                let IndmError::ShapeMismatch {
                    tensor: t,
                    expected: x,
                    found: f,
                } = err
                else {
                    unreachable!()
                };
                assert_eq!(
                    (t.as_str(), x.as_slice(), f.as_slice()),
                    (tensor, expected, found)
                );
                assert!(
                    msg.contains(tensor)
                        && msg.contains(&format!("{found:?}"))
                        && msg.contains(&format!("{expected:?}")),
                    "{msg}"
                );
                eprintln!("error: {msg}");
            }
            other => panic!("expected a shape mismatch of '{tensor}', got {other:?}"),
        };
    // conv2d: x has 8 channels, the weight wants 6.
    expect_mismatch(
        e.ops.conv2d(&e.ctx, &mut enc, &conv, &x, None, &out),
        "conv2d.x",
        &[2, 6, 8, 8],
        &[2, 8, 8, 8],
    );
    // group norm: gamma of the wrong length.
    let gn = GroupNormLayer {
        groups: 2,
        eps: 1e-5,
        gamma: e.zeros(vec4(4)),
        beta: e.zeros(vec4(8)),
    };
    let same = e.zeros([2, 8, 8, 8]);
    expect_mismatch(
        e.ops.group_norm(&e.ctx, &mut enc, &gn, &x, false, &same),
        "group_norm.gamma",
        &[8, 1, 1, 1],
        &[4, 1, 1, 1],
    );
    // coupling: h must have twice the channels of x_b.
    let logdet = e.zeros(vec4(2));
    expect_mismatch(
        e.ops
            .coupling_forward(&e.ctx, &mut enc, &x, &out, &same, &logdet),
        "coupling.h",
        &[2, 16, 8, 8],
        &[2, 4, 8, 8],
    );
    // squeeze: output of the wrong shape.
    expect_mismatch(
        e.ops.squeeze(&e.ctx, &mut enc, &x, &out),
        "squeeze.out",
        &[2, 32, 4, 4],
        &[2, 4, 8, 8],
    );
    // add: operands differ.
    expect_mismatch(
        e.ops.add(&e.ctx, &mut enc, &x, &out, &same),
        "add.b",
        &[2, 8, 8, 8],
        &[2, 4, 8, 8],
    );
    // Other refusals are typed too: groups that do not divide C, odd sizes for pooling,
    // an output that aliases an input.
    let bad_groups = GroupNormLayer {
        groups: 3,
        ..gn.clone()
    };
    let r = e
        .ops
        .group_norm(&e.ctx, &mut enc, &bad_groups, &x, false, &same);
    assert!(
        matches!(
            r,
            Err(IndmError::InvalidValue {
                what: "group norm groups",
                ..
            })
        ),
        "{r:?}"
    );
    let odd = e.zeros([1, 2, 5, 4]);
    let r = e
        .ops
        .avg_pool2x2(&e.ctx, &mut enc, &odd, &e.zeros([1, 2, 2, 2]));
    assert!(
        matches!(
            r,
            Err(IndmError::InvalidValue {
                what: "spatial size",
                ..
            })
        ),
        "{r:?}"
    );
    let r = e.ops.silu(&e.ctx, &mut enc, &x, &x);
    match r {
        Err(IndmError::InvalidValue {
            what: "tensor aliasing",
            given,
            ..
        }) => {
            assert!(
                given.contains("silu.x") && given.contains("silu.out"),
                "{given}"
            )
        }
        other => panic!("expected an aliasing error, got {other:?}"),
    }
    // Nothing was recorded by the refused calls, and the device still works.
    e.ctx.queue.submit([enc.finish()]);
    let y = e.zeros([2, 8, 8, 8]);
    let ones = e.gpu("ones", &vec![1.0; 2 * 8 * 64], [2, 8, 8, 8]);
    e.run(|ops, ctx, enc| ops.silu(ctx, enc, &ones, &y));
    let want = 1.0 / (1.0 + (-1.0f32).exp());
    assert!(e.read(&y).iter().all(|&v| (v - want).abs() < 1e-6));
}
