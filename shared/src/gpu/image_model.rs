//! A trained image model on the GPU: the Glow-lite flow forward (encode) and inverse
//! (decode), the U-Net score net, and [`ImagePlanRun`], which executes a
//! [`crate::sample::plan::Plan`] on a batch of latents with the layer kernels of
//! [`super::image_ops`]; and latent SDEdit / DDIB between two image models on top.
//!
//! The structure is walked from [`crate::image::layout`] exactly as the `f64` reference
//! ([`crate::image::reference`]) walks it, so the two cannot disagree on the order of
//! layers; the parity tests (`shared/tests/gpu_image.rs`) compare them.
//!
//! Noise is drawn as the CPU plan executor draws it: normal `i` of the family
//! `(seed, stream, step)` for the flat element index `i` over the whole batch, so a GPU
//! run and a native run with the same seed follow the same path (up to `f32` rounding).

use std::collections::BTreeMap;

use super::context::GpuContext;
use super::image_ops::{
    ActNormLayer, Conv2dLayer, DenseLayer, GpuTensor, GroupNormLayer, ImageOps, LinComb, NoiseDraw,
    actnorm_logdet,
};
use crate::arch::{Architecture, GROUP_NORM_EPS, ImageArch};
use crate::error::{IndmError, Result};
use crate::image::layout::{
    GlowLevel, UNetBlock, conditions_on_first_half, glow_levels, step_prefix, unet_blocks,
};
use crate::image::lu::LuConv;
use crate::params::ParamSet;
use crate::rng::Counter;
use crate::sample::SamplerConfig;
use crate::sample::plan::{self, Op, Plan, Start};
use crate::weights::{TensorFile, model_from_file};

/// One flow step's layers on the device.
struct FlowStep {
    actnorm: ActNormLayer,
    /// Host copy of actnorm's log-scales (its log-determinant is computed on the host).
    an_logs: Vec<f32>,
    inv: Conv2dLayer,
    inv_inverse: Conv2dLayer,
    inv_log_abs_det: f64,
    c0: Conv2dLayer,
    c1: Conv2dLayer,
    c2: Conv2dLayer,
}

/// An image model's weights and kernels on one device.
pub struct GpuImageModel {
    /// The architecture (from the weights file's metadata).
    pub arch: Architecture,
    img: ImageArch,
    ops: ImageOps,
    levels: Vec<GlowLevel>,
    /// `steps[l][k]`: step `k` of level `l`.
    steps: Vec<Vec<FlowStep>>,
    /// The score net's tensors by name (4D shapes with trailing ones).
    score: BTreeMap<String, GpuTensor>,
}

impl std::fmt::Debug for GpuImageModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuImageModel")
            .field("arch", &self.arch)
            .finish()
    }
}

fn shape4(shape: &[usize]) -> [usize; 4] {
    let mut s = [1; 4];
    s[..shape.len().min(4)].copy_from_slice(&shape[..shape.len().min(4)]);
    s
}

fn host<'a>(params: &'a ParamSet, name: &str) -> Result<&'a [f32]> {
    params
        .get(name)
        .map(|p| p.data.as_slice())
        .ok_or_else(|| IndmError::MissingTensor(name.to_string()))
}

fn upload(ctx: &GpuContext, params: &ParamSet, name: &str) -> Result<GpuTensor> {
    let p = params
        .get(name)
        .ok_or_else(|| IndmError::MissingTensor(name.to_string()))?;
    GpuTensor::new(ctx, name, &p.data, shape4(&p.shape))
}

fn conv_layer(ctx: &GpuContext, params: &ParamSet, prefix: &str) -> Result<Conv2dLayer> {
    Ok(Conv2dLayer {
        weight: upload(ctx, params, &format!("{prefix}.weight"))?,
        bias: Some(upload(ctx, params, &format!("{prefix}.bias"))?),
    })
}

fn matrix_layer(ctx: &GpuContext, label: &str, m: &[f64], c: usize) -> Result<Conv2dLayer> {
    let data: Vec<f32> = m.iter().map(|&v| v as f32).collect();
    Ok(Conv2dLayer {
        weight: GpuTensor::new(ctx, label, &data, [c, c, 1, 1])?,
        bias: None,
    })
}

impl GpuImageModel {
    /// Loads a model from the bytes of a weights file (safetensors with the architecture
    /// in its metadata). Shape errors name the tensor and both shapes.
    pub fn from_bytes(ctx: &GpuContext, bytes: &[u8], origin: &str) -> Result<Self> {
        let file = TensorFile::from_bytes(bytes, origin)?;
        let (arch, params) = model_from_file(&file, origin)?;
        Self::new(ctx, &arch, &params)
    }

    /// Uploads a model. Checks the parameters against the architecture (a
    /// [`IndmError::ShapeMismatch`] names the tensor and both shapes) before creating
    /// anything, and compiles the kernels.
    pub fn new(ctx: &GpuContext, arch: &Architecture, params: &ParamSet) -> Result<Self> {
        arch.validate()?;
        let img = arch
            .image
            .clone()
            .ok_or_else(|| IndmError::invalid("architecture", "a 2D model", "an image model"))?;
        params.check_against(arch)?;
        let ops = ImageOps::new(ctx)?;
        let levels = glow_levels(&img);
        let mut steps = Vec::with_capacity(levels.len());
        for (l, lv) in levels.iter().enumerate() {
            let c = lv.channels;
            let mut level = Vec::with_capacity(lv.steps);
            for k in 0..lv.steps {
                let p = step_prefix(l, k);
                let lu = LuConv::from_f32(
                    c,
                    host(params, &format!("{p}.inv.lower"))?,
                    host(params, &format!("{p}.inv.upper"))?,
                    host(params, &format!("{p}.inv.logs"))?,
                )?;
                level.push(FlowStep {
                    actnorm: ActNormLayer {
                        bias: upload(ctx, params, &format!("{p}.an.bias"))?,
                        logs: upload(ctx, params, &format!("{p}.an.logs"))?,
                    },
                    an_logs: host(params, &format!("{p}.an.logs"))?.to_vec(),
                    inv: matrix_layer(ctx, &format!("{p}.inv W"), &lu.weight(), c)?,
                    inv_inverse: matrix_layer(
                        ctx,
                        &format!("{p}.inv W^-1"),
                        &lu.inverse_weight(),
                        c,
                    )?,
                    inv_log_abs_det: lu.log_abs_det(),
                    c0: conv_layer(ctx, params, &format!("{p}.cp.c0"))?,
                    c1: conv_layer(ctx, params, &format!("{p}.cp.c1"))?,
                    c2: conv_layer(ctx, params, &format!("{p}.cp.c2"))?,
                });
            }
            steps.push(level);
        }
        let mut score = BTreeMap::new();
        for p in params
            .params
            .iter()
            .filter(|p| p.name.starts_with("score."))
        {
            score.insert(p.name.clone(), upload(ctx, params, &p.name)?);
        }
        Ok(GpuImageModel {
            arch: arch.clone(),
            img,
            ops,
            levels,
            steps,
            score,
        })
    }

    /// The image part of the architecture.
    pub fn image(&self) -> &ImageArch {
        &self.img
    }

    /// Values per image, `C H W`.
    pub fn dims(&self) -> usize {
        self.img.dims()
    }

    /// The compiled layer kernels.
    pub fn ops(&self) -> &ImageOps {
        &self.ops
    }

    /// `[n, C, H, W]` for `values` (a positive multiple of `C H W`), or a typed error.
    pub fn batch_shape(&self, what: &'static str, values: usize) -> Result<[usize; 4]> {
        let d = self.dims();
        if values == 0 || !values.is_multiple_of(d) {
            return Err(IndmError::invalid(
                what,
                format!("{values} values"),
                format!("a positive multiple of {d} (C H W)"),
            ));
        }
        let [c, h, w] = self.img.shape();
        Ok([values / d, c, h, w])
    }

    fn check_batch(&self, what: &str, t: &GpuTensor) -> Result<()> {
        let [c, h, w] = self.img.shape();
        let want = [t.shape[0], c, h, w];
        if t.shape != want || t.shape[0] == 0 {
            return Err(IndmError::ShapeMismatch {
                tensor: what.to_string(),
                expected: want.to_vec(),
                found: t.shape.to_vec(),
            });
        }
        Ok(())
    }

    fn score_t(&self, name: &str) -> Result<&GpuTensor> {
        self.score
            .get(name)
            .ok_or_else(|| IndmError::MissingTensor(name.to_string()))
    }

    fn conv(&self, prefix: &str) -> Result<Conv2dLayer> {
        Ok(Conv2dLayer {
            weight: self.score_t(&format!("{prefix}.weight"))?.clone(),
            bias: Some(self.score_t(&format!("{prefix}.bias"))?.clone()),
        })
    }

    fn dense(&self, prefix: &str) -> Result<DenseLayer> {
        Ok(DenseLayer {
            weight: self.score_t(&format!("{prefix}.weight"))?.clone(),
            bias: Some(self.score_t(&format!("{prefix}.bias"))?.clone()),
        })
    }

    fn norm(&self, prefix: &str) -> Result<GroupNormLayer> {
        Ok(GroupNormLayer {
            groups: self.img.unet.groups,
            eps: GROUP_NORM_EPS as f32,
            gamma: self.score_t(&format!("{prefix}.gamma"))?.clone(),
            beta: self.score_t(&format!("{prefix}.beta"))?.clone(),
        })
    }

    /// The coupling's conditioner `c2(silu(c1(silu(c0(cond)))))`.
    fn conditioner(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        st: &FlowStep,
        lv: &GlowLevel,
        cond: &GpuTensor,
    ) -> Result<GpuTensor> {
        let [b, _, h, w] = cond.shape;
        let hid = [b, lv.hidden, h, w];
        let a0 = GpuTensor::zeros(ctx, "conditioner c0", hid)?;
        self.ops.conv2d(ctx, enc, &st.c0, cond, None, &a0)?;
        let s0 = GpuTensor::zeros(ctx, "conditioner silu0", hid)?;
        self.ops.silu(ctx, enc, &a0, &s0)?;
        let a1 = GpuTensor::zeros(ctx, "conditioner c1", hid)?;
        self.ops.conv2d(ctx, enc, &st.c1, &s0, None, &a1)?;
        let s1 = GpuTensor::zeros(ctx, "conditioner silu1", hid)?;
        self.ops.silu(ctx, enc, &a1, &s1)?;
        let o = GpuTensor::zeros(ctx, "conditioner out", [b, lv.channels, h, w])?;
        self.ops.conv2d(ctx, enc, &st.c2, &s1, None, &o)?;
        Ok(o)
    }

    /// Records `z = h(x)` for x `[B, C, H, W]`; returns z and the coupling part of the
    /// log-determinant `[B, 1, 1, 1]` (add [`GpuImageModel::constant_logdet`] for the
    /// whole).
    pub fn record_forward(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
    ) -> Result<(GpuTensor, GpuTensor)> {
        self.check_batch("images", x)?;
        let b = x.shape[0];
        let logdet = GpuTensor::zeros(ctx, "coupling log-det", [b, 1, 1, 1])?;
        let mut h = x.clone();
        for (lv, level) in self.levels.iter().zip(&self.steps) {
            let sq = GpuTensor::zeros(ctx, "squeezed", [b, lv.channels, lv.height, lv.width])?;
            self.ops.squeeze(ctx, enc, &h, &sq)?;
            h = sq;
            let full = h.shape;
            let half = lv.half();
            let half_shape = [b, half, lv.height, lv.width];
            for (k, st) in level.iter().enumerate() {
                let an = GpuTensor::zeros(ctx, "actnorm", full)?;
                self.ops.actnorm_forward(ctx, enc, &st.actnorm, &h, &an)?;
                let mixed = GpuTensor::zeros(ctx, "invconv", full)?;
                self.ops.conv2d(ctx, enc, &st.inv, &an, None, &mixed)?;
                let (cs, xs) = if conditions_on_first_half(k) {
                    (0, half)
                } else {
                    (half, 0)
                };
                let cond = GpuTensor::zeros(ctx, "coupling cond", half_shape)?;
                self.ops
                    .copy_channels(ctx, enc, &mixed, cs, &cond, 0, half)?;
                let xb = GpuTensor::zeros(ctx, "coupling x_b", half_shape)?;
                self.ops.copy_channels(ctx, enc, &mixed, xs, &xb, 0, half)?;
                let o = self.conditioner(ctx, enc, st, lv, &cond)?;
                let yb = GpuTensor::zeros(ctx, "coupling y_b", half_shape)?;
                self.ops.coupling_forward(ctx, enc, &xb, &o, &yb, &logdet)?;
                let out = GpuTensor::zeros(ctx, "flow step", full)?;
                self.ops.copy_channels(ctx, enc, &cond, 0, &out, cs, half)?;
                self.ops.copy_channels(ctx, enc, &yb, 0, &out, xs, half)?;
                h = out;
            }
        }
        for _ in 0..self.levels.len() {
            let [_, c, hh, ww] = h.shape;
            let un = GpuTensor::zeros(ctx, "unsqueezed", [b, c / 4, 2 * hh, 2 * ww])?;
            self.ops.unsqueeze(ctx, enc, &h, &un)?;
            h = un;
        }
        Ok((h, logdet))
    }

    /// The log-determinant of the actnorm and 1x1 convolution layers per image (the
    /// same for every image; the coupling part comes from the device).
    pub fn constant_logdet(&self) -> f64 {
        let mut ld = 0.0;
        for (lv, level) in self.levels.iter().zip(&self.steps) {
            let hw = lv.height * lv.width;
            for st in level {
                ld += actnorm_logdet(&st.an_logs, lv.height, lv.width)
                    + st.inv_log_abs_det * hw as f64;
            }
        }
        ld
    }

    /// Records `x = h^{-1}(z)` for z `[B, C, H, W]`.
    pub fn record_inverse(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        z: &GpuTensor,
    ) -> Result<GpuTensor> {
        self.check_batch("latents", z)?;
        let b = z.shape[0];
        let mut h = z.clone();
        for lv in &self.levels {
            let sq = GpuTensor::zeros(ctx, "squeezed", [b, lv.channels, lv.height, lv.width])?;
            self.ops.squeeze(ctx, enc, &h, &sq)?;
            h = sq;
        }
        if self.levels.is_empty() {
            // The identity flow: a copy, so the result never aliases the input.
            let out = GpuTensor::zeros(ctx, "decoded", z.shape)?;
            self.ops
                .copy_channels(ctx, enc, z, 0, &out, 0, z.shape[1])?;
            return Ok(out);
        }
        for (lv, level) in self.levels.iter().zip(&self.steps).rev() {
            let full = h.shape;
            let half = lv.half();
            let half_shape = [b, half, lv.height, lv.width];
            for (k, st) in level.iter().enumerate().rev() {
                let (cs, ys) = if conditions_on_first_half(k) {
                    (0, half)
                } else {
                    (half, 0)
                };
                let cond = GpuTensor::zeros(ctx, "coupling cond", half_shape)?;
                self.ops.copy_channels(ctx, enc, &h, cs, &cond, 0, half)?;
                let yb = GpuTensor::zeros(ctx, "coupling y_b", half_shape)?;
                self.ops.copy_channels(ctx, enc, &h, ys, &yb, 0, half)?;
                let o = self.conditioner(ctx, enc, st, lv, &cond)?;
                let xb = GpuTensor::zeros(ctx, "coupling x_b", half_shape)?;
                self.ops.coupling_inverse(ctx, enc, &yb, &o, &xb)?;
                let cat = GpuTensor::zeros(ctx, "coupling out", full)?;
                self.ops.copy_channels(ctx, enc, &cond, 0, &cat, cs, half)?;
                self.ops.copy_channels(ctx, enc, &xb, 0, &cat, ys, half)?;
                let mixed = GpuTensor::zeros(ctx, "invconv inverse", full)?;
                self.ops
                    .conv2d(ctx, enc, &st.inv_inverse, &cat, None, &mixed)?;
                let an = GpuTensor::zeros(ctx, "actnorm inverse", full)?;
                self.ops
                    .actnorm_inverse(ctx, enc, &st.actnorm, &mixed, &an)?;
                h = an;
            }
            let [_, c, hh, ww] = h.shape;
            let un = GpuTensor::zeros(ctx, "unsqueezed", [b, c / 4, 2 * hh, 2 * ww])?;
            self.ops.unsqueeze(ctx, enc, &h, &un)?;
            h = un;
        }
        Ok(h)
    }

    fn gn_silu(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        prefix: &str,
    ) -> Result<GpuTensor> {
        let out = GpuTensor::zeros(ctx, prefix, x.shape)?;
        self.ops
            .group_norm(ctx, enc, &self.norm(prefix)?, x, true, &out)?;
        Ok(out)
    }

    fn conv_into(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        prefix: &str,
        x: &GpuTensor,
        cout: usize,
        residual: Option<&GpuTensor>,
    ) -> Result<GpuTensor> {
        let [b, _, h, w] = x.shape;
        let out = GpuTensor::zeros(ctx, prefix, [b, cout, h, w])?;
        self.ops
            .conv2d(ctx, enc, &self.conv(prefix)?, x, residual, &out)?;
        Ok(out)
    }

    /// Records the U-Net's raw output `net(z, t)` (`sigma s = sign net`) for z
    /// `[B, C, H, W]`, every image at time `t`.
    pub fn record_net(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        z: &GpuTensor,
        t: f64,
    ) -> Result<GpuTensor> {
        self.check_batch("latents", z)?;
        let b = z.shape[0];
        let u = &self.img.unet;
        let f = self.arch.time_features(t);
        let nf = f.len();
        let feats: Vec<f32> = (0..b).flat_map(|_| f.iter().map(|&v| v as f32)).collect();
        let feats = GpuTensor::new(ctx, "time features", &feats, [b, nf, 1, 1])?;
        // The time MLP: silu(l1(silu(l0(feats)))) feeds every block's projection.
        let temb0 = self.dense_silu(ctx, enc, "score.temb.l0", &feats, u.temb, true)?;
        let temb = self.dense_silu(ctx, enc, "score.temb.l1", &temb0, u.temb, true)?;
        let mut h = z.clone();
        let mut skips: Vec<GpuTensor> = Vec::new();
        for block in unet_blocks(u, self.img.channels, self.img.height) {
            match block {
                UNetBlock::ConvIn { cout, .. } => {
                    h = self.conv_into(ctx, enc, "score.conv_in", &h, cout, None)?;
                }
                UNetBlock::Res {
                    prefix,
                    cin,
                    cout,
                    pop_skip,
                    push_skip,
                    ..
                } => {
                    if pop_skip {
                        let s = skips.pop().ok_or_else(|| {
                            IndmError::invalid("U-Net", "an up block without a skip", "a skip")
                        })?;
                        let sum = GpuTensor::zeros(ctx, "skip sum", h.shape)?;
                        self.ops.add(ctx, enc, &h, &s, &sum)?;
                        h = sum;
                    }
                    let n1 = self.gn_silu(ctx, enc, &h, &format!("{prefix}.n1"))?;
                    let r = self.conv_into(ctx, enc, &format!("{prefix}.c1"), &n1, cout, None)?;
                    let proj =
                        self.dense_silu(ctx, enc, &format!("{prefix}.t"), &temb, cout, false)?;
                    self.ops.add_channel_bias(ctx, enc, &r, &proj)?;
                    let n2 = self.gn_silu(ctx, enc, &r, &format!("{prefix}.n2"))?;
                    let short = if cin != cout {
                        self.conv_into(ctx, enc, &format!("{prefix}.skip"), &h, cout, None)?
                    } else {
                        h.clone()
                    };
                    h =
                        self.conv_into(ctx, enc, &format!("{prefix}.c2"), &n2, cout, Some(&short))?;
                    if push_skip {
                        skips.push(h.clone());
                    }
                }
                UNetBlock::Down => {
                    let [bb, c, hh, ww] = h.shape;
                    let o = GpuTensor::zeros(ctx, "pooled", [bb, c, hh / 2, ww / 2])?;
                    self.ops.avg_pool2x2(ctx, enc, &h, &o)?;
                    h = o;
                }
                UNetBlock::Up { prefix, cout, .. } => {
                    let [bb, c, hh, ww] = h.shape;
                    let o = GpuTensor::zeros(ctx, "upsampled", [bb, c, 2 * hh, 2 * ww])?;
                    self.ops.upsample_nearest2x(ctx, enc, &h, &o)?;
                    h = self.conv_into(ctx, enc, &format!("{prefix}.conv"), &o, cout, None)?;
                }
                UNetBlock::Out { cout, .. } => {
                    let n = self.gn_silu(ctx, enc, &h, "score.out_norm")?;
                    h = self.conv_into(ctx, enc, "score.conv_out", &n, cout, None)?;
                }
            }
        }
        Ok(h)
    }

    fn dense_silu(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        prefix: &str,
        x: &GpuTensor,
        d_out: usize,
        silu: bool,
    ) -> Result<GpuTensor> {
        let b = x.shape[0];
        let out = GpuTensor::zeros(ctx, prefix, [b, d_out, 1, 1])?;
        self.ops
            .dense(ctx, enc, &self.dense(prefix)?, x, None, &out)?;
        if !silu {
            return Ok(out);
        }
        let act = GpuTensor::zeros(ctx, prefix, [b, d_out, 1, 1])?;
        self.ops.silu(ctx, enc, &out, &act)?;
        Ok(act)
    }

    /// Uploads `n` images (flat NCHW rows) as a tensor.
    pub fn upload_batch(
        &self,
        ctx: &GpuContext,
        what: &'static str,
        v: &[f32],
    ) -> Result<GpuTensor> {
        let shape = self.batch_shape(what, v.len())?;
        GpuTensor::new(ctx, what, v, shape)
    }

    /// `z = h(x)` and `log |det dh/dx|` per image, read back.
    pub async fn encode(&self, ctx: &GpuContext, x: &[f32]) -> Result<(Vec<f32>, Vec<f64>)> {
        let xt = self.upload_batch(ctx, "images", x)?;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let (z, ld) = self.record_forward(ctx, &mut enc, &xt)?;
        ctx.queue.submit([enc.finish()]);
        let c = self.constant_logdet();
        let ld = ld
            .read(ctx)
            .await?
            .into_iter()
            .map(|v| v as f64 + c)
            .collect();
        Ok((z.read(ctx).await?, ld))
    }

    /// `x = h^{-1}(z)`, read back.
    pub async fn decode(&self, ctx: &GpuContext, z: &[f32]) -> Result<Vec<f32>> {
        let zt = self.upload_batch(ctx, "latents", z)?;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let x = self.record_inverse(ctx, &mut enc, &zt)?;
        ctx.queue.submit([enc.finish()]);
        x.read(ctx).await
    }

    /// The network's raw output `net(z, t)`, read back.
    pub async fn net(&self, ctx: &GpuContext, z: &[f32], t: f64) -> Result<Vec<f32>> {
        let zt = self.upload_batch(ctx, "latents", z)?;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let o = self.record_net(ctx, &mut enc, &zt, t)?;
        ctx.queue.submit([enc.finish()]);
        o.read(ctx).await
    }
}

/// A plan bound to a batch of latents of one image model, run a few steps at a time
/// (so a page can show progress and stay responsive).
pub struct ImagePlanRun {
    plan: Plan,
    seed32: u32,
    z: GpuTensor,
    next: usize,
}

impl std::fmt::Debug for ImagePlanRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImagePlanRun")
            .field("steps", &self.plan.steps.len())
            .field("next", &self.next)
            .finish()
    }
}

impl ImagePlanRun {
    /// Binds `plan` to the latents `z` `[B, C, H, W]` (used as the start state; plans
    /// that draw their own prior ignore it). The predictor-corrector sampler needs
    /// reductions across the batch that these kernels do not have: it is refused here,
    /// before anything runs.
    pub fn new(model: &GpuImageModel, plan: Plan, z: GpuTensor) -> Result<Self> {
        model.check_batch("latents", &z)?;
        if plan
            .steps
            .iter()
            .flat_map(|s| &s.ops)
            .any(|op| matches!(op, Op::Correct { .. }))
        {
            return Err(IndmError::invalid(
                "sampler",
                "pc",
                "em, ode-euler or ode-heun for image models on the GPU",
            ));
        }
        let seed32 = plan.seed32();
        Ok(ImagePlanRun {
            plan,
            seed32,
            z,
            next: 0,
        })
    }

    /// `(done, total)` plan steps.
    pub fn progress(&self) -> (usize, usize) {
        (self.next, self.plan.steps.len())
    }

    /// Whether every step has run.
    pub fn done(&self) -> bool {
        self.next >= self.plan.steps.len()
    }

    /// The current latents.
    pub fn z(&self) -> &GpuTensor {
        &self.z
    }

    /// Network evaluations per image of the whole plan.
    pub fn nfe(&self) -> usize {
        self.plan.nfe()
    }

    fn draw(&self, key: &plan::NoiseKey) -> NoiseDraw {
        let [_, stream, step] = Counter::new(self.plan.seed, key.stream, key.step).key();
        NoiseDraw {
            key: [self.seed32, stream, step],
        }
    }

    fn record_op(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        model: &GpuImageModel,
        op: &Op,
        z: &GpuTensor,
    ) -> Result<GpuTensor> {
        let ops = model.ops();
        let out = GpuTensor::zeros(ctx, "latents", z.shape)?;
        match op {
            Op::Linear { t, a, b, c, noise } => {
                let net = if *b != 0.0 {
                    Some(model.record_net(ctx, enc, z, *t)?)
                } else {
                    None
                };
                let noise = match noise {
                    Some(k) if *c != 0.0 => Some((*c as f32, self.draw(k))),
                    _ => None,
                };
                ops.lincomb(
                    ctx,
                    enc,
                    &LinComb {
                        a: *a as f32,
                        x: z,
                        y: net.as_ref().map(|n| (*b as f32, n)),
                        w: None,
                        noise,
                    },
                    &out,
                )?;
            }
            Op::Heun {
                t0,
                t1,
                f0,
                k0,
                f1,
                k1,
                h,
                scale,
            } => {
                // v0 = f0 z + k0 o0, pred = z + h v0, v1 = f1 pred + k1 o1,
                // z' = scale (z + h (v0 + v1) / 2).
                let o0 = model.record_net(ctx, enc, z, *t0)?;
                let pred = GpuTensor::zeros(ctx, "heun prediction", z.shape)?;
                ops.lincomb(
                    ctx,
                    enc,
                    &LinComb {
                        a: (1.0 + h * f0) as f32,
                        x: z,
                        y: Some(((h * k0) as f32, &o0)),
                        w: None,
                        noise: None,
                    },
                    &pred,
                )?;
                let o1 = model.record_net(ctx, enc, &pred, *t1)?;
                let v1 = GpuTensor::zeros(ctx, "heun v1", z.shape)?;
                ops.lincomb(
                    ctx,
                    enc,
                    &LinComb {
                        a: *f1 as f32,
                        x: &pred,
                        y: Some((*k1 as f32, &o1)),
                        w: None,
                        noise: None,
                    },
                    &v1,
                )?;
                ops.lincomb(
                    ctx,
                    enc,
                    &LinComb {
                        a: (scale * (1.0 + 0.5 * h * f0)) as f32,
                        x: z,
                        y: Some(((scale * 0.5 * h * k0) as f32, &o0)),
                        w: Some(((scale * 0.5 * h) as f32, &v1)),
                        noise: None,
                    },
                    &out,
                )?;
            }
            Op::Correct { .. } => {
                return Err(IndmError::invalid(
                    "sampler",
                    "pc",
                    "em, ode-euler or ode-heun for image models on the GPU",
                ));
            }
        }
        Ok(out)
    }

    /// Records and submits up to `max_steps` further plan steps (one submission);
    /// returns how many ran.
    pub fn advance(
        &mut self,
        ctx: &GpuContext,
        model: &GpuImageModel,
        max_steps: usize,
    ) -> Result<usize> {
        let end = self
            .next
            .saturating_add(max_steps)
            .min(self.plan.steps.len());
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let mut z = self.z.clone();
        for i in self.next..end {
            for op in &self.plan.steps[i].ops {
                z = self.record_op(ctx, &mut enc, model, op, &z)?;
            }
        }
        ctx.queue.submit([enc.finish()]);
        let count = end - self.next;
        self.z = z;
        self.next = end;
        Ok(count)
    }

    /// Runs every remaining step, `chunk` steps per submission (waiting for the device
    /// between submissions natively, so memory stays bounded).
    pub fn run_to_end(
        &mut self,
        ctx: &GpuContext,
        model: &GpuImageModel,
        chunk: usize,
    ) -> Result<()> {
        while !self.done() {
            self.advance(ctx, model, chunk.max(1))?;
            ctx.wait()?;
        }
        Ok(())
    }
}

/// Checks that two image models can be chained in a translation.
pub fn check_pair(source: &Architecture, target: &Architecture) -> Result<()> {
    if source.sde != target.sde || source.eps != target.eps {
        return Err(IndmError::ArchitectureMismatch(format!(
            "translation needs the same SDE and eps in both models ({:?}, eps {} vs {:?}, eps {})",
            source.sde, source.eps, target.sde, target.eps
        )));
    }
    if source.data_dim != target.data_dim {
        return Err(IndmError::ArchitectureMismatch(format!(
            "translation needs images of one shape ({} vs {} values)",
            source.data_dim, target.data_dim
        )));
    }
    Ok(())
}

/// The plans of a translation: SDEdit (`t0` given: one reverse plan of the target from
/// `t0`) or DDIB (`t0` none: the source's PF-ODE encoding, then the target's PF-ODE
/// decoding), exactly as [`crate::image::sample`] builds them natively.
pub fn translation_plans(
    source: &Architecture,
    target: &Architecture,
    t0: Option<f64>,
    cfg: &SamplerConfig,
) -> Result<Vec<Plan>> {
    match t0 {
        Some(t0) => Ok(vec![plan::reverse(target, cfg, Start::Perturb { t0 })?]),
        None => {
            check_pair(source, target)?;
            let enc = plan::encode(source, cfg)?;
            let dec_cfg = SamplerConfig {
                denoise: false,
                temperature: 1.0,
                ..cfg.clone()
            };
            Ok(vec![enc, plan::reverse(target, &dec_cfg, Start::Given)?])
        }
    }
}

/// Latent SDEdit of the images `x` (flat NCHW rows) into `target`'s domain from `t0`:
/// encode with the target flow, noise to `t0`, reverse, decode. Read back.
pub async fn sdedit(
    ctx: &GpuContext,
    target: &GpuImageModel,
    x: &[f32],
    t0: f64,
    cfg: &SamplerConfig,
) -> Result<Vec<f32>> {
    let p = plan::reverse(&target.arch, cfg, Start::Perturb { t0 })?;
    let xt = target.upload_batch(ctx, "images", x)?;
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    let (z, _) = target.record_forward(ctx, &mut enc, &xt)?;
    ctx.queue.submit([enc.finish()]);
    let mut run = ImagePlanRun::new(target, p, z)?;
    run.run_to_end(ctx, target, 8)?;
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    let out = target.record_inverse(ctx, &mut enc, run.z())?;
    ctx.queue.submit([enc.finish()]);
    out.read(ctx).await
}

/// Latent DDIB of the images `x` from `source`'s domain to `target`'s (`cfg.kind`:
/// `ode-euler` or `ode-heun`). Read back.
pub async fn ddib(
    ctx: &GpuContext,
    source: &GpuImageModel,
    target: &GpuImageModel,
    x: &[f32],
    cfg: &SamplerConfig,
) -> Result<Vec<f32>> {
    let plans = translation_plans(&source.arch, &target.arch, None, cfg)?;
    let mut plans = plans.into_iter();
    let (enc_plan, dec_plan) = (
        plans.next().expect("two plans"),
        plans.next().expect("two plans"),
    );
    let xt = source.upload_batch(ctx, "images", x)?;
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    let (z, _) = source.record_forward(ctx, &mut enc, &xt)?;
    ctx.queue.submit([enc.finish()]);
    let mut up = ImagePlanRun::new(source, enc_plan, z)?;
    up.run_to_end(ctx, source, 8)?;
    let mut down = ImagePlanRun::new(target, dec_plan, up.z().clone())?;
    down.run_to_end(ctx, target, 8)?;
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    let out = target.record_inverse(ctx, &mut enc, down.z())?;
    ctx.queue.submit([enc.finish()]);
    out.read(ctx).await
}
