//! The score net's layers: conv2d, dense, group norm, SiLU, add, per-channel bias,
//! average pooling and nearest upsampling (`conv.wgsl`, `norm.wgsl`, `pointwise.wgsl`,
//! `resample.wgsl`).

use super::{GpuTensor, Grid, ImageOps, Params, expect_shape, u};
use crate::error::{IndmError, Result};
use crate::gpu::context::GpuContext;

/// A 2D convolution's parameters: weight `[C_out, C_in, k, k]` (`k` odd; stride 1, zero
/// padding `k / 2`) and an optional bias `[C_out, 1, 1, 1]`.
#[derive(Clone, Debug)]
pub struct Conv2dLayer {
    /// `[C_out, C_in, k, k]`.
    pub weight: GpuTensor,
    /// `[C_out, 1, 1, 1]`, or none.
    pub bias: Option<GpuTensor>,
}

/// A dense layer `y = x W + b`: weight `[in, out, 1, 1]` (burn's `Linear` layout) and an
/// optional bias `[out, 1, 1, 1]`.
#[derive(Clone, Debug)]
pub struct DenseLayer {
    /// `[in, out, 1, 1]`.
    pub weight: GpuTensor,
    /// `[out, 1, 1, 1]`, or none.
    pub bias: Option<GpuTensor>,
}

/// Group normalisation: `groups` groups of consecutive channels, `eps`, and the affine
/// `gamma`, `beta` (`[C, 1, 1, 1]` each).
#[derive(Clone, Debug)]
pub struct GroupNormLayer {
    /// Number of groups (divides `C`).
    pub groups: usize,
    /// Added to the variance.
    pub eps: f32,
    /// Scale `[C, 1, 1, 1]`.
    pub gamma: GpuTensor,
    /// Shift `[C, 1, 1, 1]`.
    pub beta: GpuTensor,
}

const HAS_BIAS: u32 = 1;
const HAS_RESIDUAL: u32 = 2;

fn flags(bias: bool, residual: bool) -> u32 {
    (if bias { HAS_BIAS } else { 0 }) | (if residual { HAS_RESIDUAL } else { 0 })
}

impl ImageOps {
    /// `out = conv2d(x) + bias (+ residual)`: x `[B, C_in, H, W]`, out and residual
    /// `[B, C_out, H, W]`.
    pub fn conv2d(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        layer: &Conv2dLayer,
        x: &GpuTensor,
        residual: Option<&GpuTensor>,
        out: &GpuTensor,
    ) -> Result<()> {
        let [c_out, c_in, k, k2] = layer.weight.shape;
        if k != k2 || k % 2 == 0 {
            return Err(IndmError::invalid(
                "conv2d kernel size",
                format!("{k}x{k2} (weight shape {:?})", layer.weight.shape),
                "square and odd (1x1 or 3x3)",
            ));
        }
        let [b, _, h, w] = x.shape;
        expect_shape("conv2d.x", x, [b, c_in, h, w])?;
        if let Some(bias) = &layer.bias {
            expect_shape("conv2d.bias", bias, [c_out, 1, 1, 1])?;
        }
        let out_shape = [b, c_out, h, w];
        expect_shape("conv2d.out", out, out_shape)?;
        if let Some(r) = residual {
            expect_shape("conv2d.residual", r, out_shape)?;
        }
        // One invocation per pixel and group of four output channels (conv.wgsl).
        let n = b * c_out.div_ceil(4) * h * w;
        let f = flags(layer.bias.is_some(), residual.is_some());
        self.record(
            ctx,
            enc,
            "conv2d",
            Params::new(&[u(n), u(b), u(c_in), u(c_out), u(h), u(w), u(k), f]),
            &[
                Some(("conv2d.x", x)),
                Some(("conv2d.weight", &layer.weight)),
                layer.bias.as_ref().map(|t| ("conv2d.bias", t)),
                residual.map(|t| ("conv2d.residual", t)),
            ],
            ("conv2d.out", out),
            None,
            Grid::Flat(n),
        )
    }

    /// `out = x W + bias (+ residual)`: x `[B, in, 1, 1]`, out and residual `[B, out, 1, 1]`.
    pub fn dense(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        layer: &DenseLayer,
        x: &GpuTensor,
        residual: Option<&GpuTensor>,
        out: &GpuTensor,
    ) -> Result<()> {
        let [d_in, d_out, _, _] = layer.weight.shape;
        expect_shape("dense.weight", &layer.weight, [d_in, d_out, 1, 1])?;
        let b = x.shape[0];
        expect_shape("dense.x", x, [b, d_in, 1, 1])?;
        if let Some(bias) = &layer.bias {
            expect_shape("dense.bias", bias, [d_out, 1, 1, 1])?;
        }
        let out_shape = [b, d_out, 1, 1];
        expect_shape("dense.out", out, out_shape)?;
        if let Some(r) = residual {
            expect_shape("dense.residual", r, out_shape)?;
        }
        let n = out.numel();
        let f = flags(layer.bias.is_some(), residual.is_some());
        self.record(
            ctx,
            enc,
            "dense",
            Params::new(&[u(n), u(b), u(d_in), u(d_out), 1, 1, 1, f]),
            &[
                Some(("dense.x", x)),
                Some(("dense.weight", &layer.weight)),
                layer.bias.as_ref().map(|t| ("dense.bias", t)),
                residual.map(|t| ("dense.residual", t)),
            ],
            ("dense.out", out),
            None,
            Grid::Flat(n),
        )
    }

    /// Group normalisation of x `[B, C, H, W]` into out (same shape), followed by SiLU when
    /// `silu`. One workgroup per (group, sample) reduces mean and variance in two passes.
    pub fn group_norm(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        layer: &GroupNormLayer,
        x: &GpuTensor,
        silu: bool,
        out: &GpuTensor,
    ) -> Result<()> {
        let [b, c, h, w] = x.shape;
        let g = layer.groups;
        if g == 0 || c % g != 0 {
            return Err(IndmError::invalid(
                "group norm groups",
                format!("{g} groups for {c} channels"),
                "a positive divisor of the channel count",
            ));
        }
        if !(layer.eps.is_finite() && layer.eps >= 0.0) {
            return Err(IndmError::invalid(
                "group norm eps",
                layer.eps,
                "finite and non-negative",
            ));
        }
        expect_shape("group_norm.gamma", &layer.gamma, [c, 1, 1, 1])?;
        expect_shape("group_norm.beta", &layer.beta, [c, 1, 1, 1])?;
        expect_shape("group_norm.out", out, x.shape)?;
        let mut params = Params::new(&[u(b), u(c), u(h * w), u(g), u32::from(silu)]);
        params.f[0] = layer.eps;
        self.record(
            ctx,
            enc,
            "group_norm",
            params,
            &[
                Some(("group_norm.x", x)),
                Some(("group_norm.gamma", &layer.gamma)),
                Some(("group_norm.beta", &layer.beta)),
            ],
            ("group_norm.out", out),
            None,
            Grid::Groups(g, b),
        )
    }

    /// `out = silu(x) = x sigmoid(x)`, elementwise (same shapes).
    pub fn silu(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<()> {
        expect_shape("silu.out", out, x.shape)?;
        let n = x.numel();
        self.record(
            ctx,
            enc,
            "apply_silu",
            Params::new(&[u(n)]),
            &[Some(("silu.x", x))],
            ("silu.out", out),
            None,
            Grid::Flat(n),
        )
    }

    /// `out = a + b`, elementwise (same shapes).
    pub fn add(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        a: &GpuTensor,
        b: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<()> {
        expect_shape("add.b", b, a.shape)?;
        expect_shape("add.out", out, a.shape)?;
        let n = a.numel();
        self.record(
            ctx,
            enc,
            "add",
            Params::new(&[u(n)]),
            &[Some(("add.a", a)), Some(("add.b", b))],
            ("add.out", out),
            None,
            Grid::Flat(n),
        )
    }

    /// In place: `x[b, c, :, :] += v[b, c]` for x `[B, C, H, W]` and v `[B, C, 1, 1]` (the
    /// time embedding projected to the block's channels).
    pub fn add_channel_bias(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        v: &GpuTensor,
    ) -> Result<()> {
        let [b, c, h, w] = x.shape;
        expect_shape("add_channel_bias.v", v, [b, c, 1, 1])?;
        let n = x.numel();
        self.record(
            ctx,
            enc,
            "add_channel_bias",
            Params::new(&[u(n), u(h * w)]),
            &[Some(("add_channel_bias.v", v))],
            ("add_channel_bias.x", x),
            None,
            Grid::Flat(n),
        )
    }

    /// 2x2 average pooling with stride 2: x `[B, C, H, W]` (H, W even) to out
    /// `[B, C, H/2, W/2]`.
    pub fn avg_pool2x2(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<()> {
        let [b, c, h, w] = x.shape;
        even_spatial("avg_pool2x2.x", x)?;
        expect_shape("avg_pool2x2.out", out, [b, c, h / 2, w / 2])?;
        self.resample(ctx, enc, "avg_pool2x2", x, out)
    }

    /// Nearest 2x upsampling: x `[B, C, H, W]` to out `[B, C, 2H, 2W]`,
    /// `out[y, x] = x[y / 2, x / 2]`.
    pub fn upsample_nearest2x(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<()> {
        let [b, c, h, w] = x.shape;
        expect_shape("upsample_nearest2x.out", out, [b, c, 2 * h, 2 * w])?;
        self.resample(ctx, enc, "upsample_nearest2x", x, out)
    }

    /// One `resample.wgsl` kernel (shapes already checked): the uniform holds the input's
    /// C, H, W.
    pub(super) fn resample(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        entry: &'static str,
        x: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<()> {
        let [_, c, h, w] = x.shape;
        let n = out.numel();
        self.record(
            ctx,
            enc,
            entry,
            Params::new(&[u(n), u(c), u(h), u(w)]),
            &[Some(("x", x))],
            ("out", out),
            None,
            Grid::Flat(n),
        )
    }
}

/// H and W of `t` are even (pooling and squeeze halve them).
pub(super) fn even_spatial(name: &str, t: &GpuTensor) -> Result<()> {
    let [_, _, h, w] = t.shape;
    if h % 2 != 0 || w % 2 != 0 {
        return Err(IndmError::invalid(
            "spatial size",
            format!("'{name}' has shape {:?}", t.shape),
            "even height and width (the layer halves them)",
        ));
    }
    Ok(())
}
