//! The image samplers' per-element update `out = a x + b y + c w + d noise`
//! (`latent.wgsl`).

use super::{GpuTensor, Grid, ImageOps, Params, expect_shape, u};
use crate::error::Result;
use crate::gpu::context::GpuContext;

/// Which standard normals a [`LinComb`] adds: draw `i` of the family
/// `(seed, stream, step)` for element `i` (the flat index over the whole batch), as
/// [`crate::sample::plan::execute_cpu`] draws them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoiseDraw {
    /// The folded key `[seed, stream, step]` of [`crate::rng::Counter::key`].
    pub key: [u32; 3],
}

/// The coefficients and operands of one `lincomb` dispatch:
/// `out = a x + b y + c w + d noise`; absent terms cost nothing.
#[derive(Clone, Copy, Debug)]
pub struct LinComb<'a> {
    /// Coefficient of `x`.
    pub a: f32,
    /// `x` (every other tensor has its shape).
    pub x: &'a GpuTensor,
    /// Coefficient and tensor of the second term.
    pub y: Option<(f32, &'a GpuTensor)>,
    /// Coefficient and tensor of the third term.
    pub w: Option<(f32, &'a GpuTensor)>,
    /// Coefficient and family of the noise term.
    pub noise: Option<(f32, NoiseDraw)>,
}

impl ImageOps {
    /// Records `out = a x + b y + c w + d noise` elementwise (`out` distinct from the
    /// operands, all of one shape).
    pub fn lincomb(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        op: &LinComb,
        out: &GpuTensor,
    ) -> Result<()> {
        let shape = op.x.shape;
        expect_shape("lincomb.out", out, shape)?;
        let mut flags = 0u32;
        let mut p = Params::default();
        p.f[0] = op.a;
        if let Some((b, y)) = op.y {
            expect_shape("lincomb.y", y, shape)?;
            flags |= 1;
            p.f[1] = b;
        }
        if let Some((c, w)) = op.w {
            expect_shape("lincomb.w", w, shape)?;
            flags |= 2;
            p.f[2] = c;
        }
        if let Some((d, draw)) = op.noise {
            flags |= 4;
            p.f[3] = d;
            p.u[2..5].copy_from_slice(&draw.key);
        }
        let n = op.x.numel();
        p.u[0] = u(n);
        p.u[1] = flags;
        self.record(
            ctx,
            enc,
            "lincomb",
            p,
            &[
                Some(("lincomb.x", op.x)),
                op.y.map(|(_, t)| ("lincomb.y", t)),
                op.w.map(|(_, t)| ("lincomb.w", t)),
            ],
            ("lincomb.out", out),
            None,
            Grid::Flat(n),
        )
    }
}
