//! The layers of the image models as WGSL kernels: a Glow-lite flow (squeeze, actnorm,
//! invertible 1x1 convolution in LU form, affine coupling) and a small U-Net score net
//! (group norm, SiLU, 3x3 / 1x1 convolutions, average pooling, nearest upsampling, a
//! per-channel time embedding and the dense layers of the time MLP).
//!
//! Conventions (the same in every `.wgsl` header):
//! - tensors are NCHW `f32`, contiguous, held in a [`GpuTensor`] with a 4D shape; 1D and
//!   2D parameters use trailing ones (a bias `[C]` is `[C, 1, 1, 1]`, a dense weight
//!   `[in, out]` is `[in, out, 1, 1]`, a time embedding `[B, C]` is `[B, C, 1, 1]`);
//! - conv weights are `[C_out, C_in, k, k]` (burn / PyTorch), bias `[C_out]`; stride 1,
//!   zero padding `k / 2`, `k` odd (the models use 1 and 3);
//! - dense weights are `[in, out]` (burn's `Linear`: `y = x W + b`).
//!
//! Every size goes to the kernels in a uniform, so one pipeline serves every layer.
//! [`ImageOps`] compiles the pipelines once; each method checks shapes (a
//! [`IndmError::ShapeMismatch`] names the tensor and both shapes), buffer sizes and the
//! adapter's limits, and only then records one or two dispatches into a
//! [`wgpu::CommandEncoder`]. Outputs are caller-allocated and must not alias the inputs
//! (except where a method says it works in place).

mod flow;
mod latent;
mod layers;

pub use flow::{ActNormLayer, InvConvLu, actnorm_logdet};
pub use latent::{LinComb, NoiseDraw};
pub use layers::{Conv2dLayer, DenseLayer, GroupNormLayer};

use std::rc::Rc;

use bytemuck::{Pod, Zeroable};

use super::context::{BindingKind, GpuContext};
use super::shaders::{
    CONV_MODULE, GLOW_MODULE, KernelModule, LATENT_MODULE, NORM_MODULE, POINTWISE_MODULE,
    RESAMPLE_MODULE,
};
use crate::error::{IndmError, Result};

/// Invocations of the reducing kernels (`@workgroup_size(256)`, `reduce.wgsl`).
pub const REDUCE_WORKGROUP: u32 = 256;
/// Workgroup memory of the reducing kernels (one `f32` per invocation).
const REDUCE_WORKGROUP_BYTES: u32 = REDUCE_WORKGROUP * 4;

/// A 4D `f32` tensor (NCHW, contiguous) in a storage buffer.
#[derive(Clone, Debug)]
pub struct GpuTensor {
    /// The buffer (at least `4 * numel` bytes; `STORAGE | COPY_SRC | COPY_DST`).
    pub buffer: wgpu::Buffer,
    /// `[N, C, H, W]` (parameters use trailing ones).
    pub shape: [usize; 4],
}

impl GpuTensor {
    /// Uploads `data` (row-major, `shape`'s element count) into a new storage buffer.
    pub fn new(ctx: &GpuContext, label: &str, data: &[f32], shape: [usize; 4]) -> Result<Self> {
        let n = numel(shape);
        if data.len() != n {
            return Err(IndmError::invalid(
                "tensor data length",
                format!("{} values for '{label}'", data.len()),
                format!("{n} values for shape {shape:?}"),
            ));
        }
        Ok(GpuTensor {
            buffer: ctx.storage_f32(label, data)?,
            shape,
        })
    }

    /// A zero-filled tensor of `shape`.
    pub fn zeros(ctx: &GpuContext, label: &str, shape: [usize; 4]) -> Result<Self> {
        Ok(GpuTensor {
            buffer: ctx.storage_zeroed(label, numel(shape))?,
            shape,
        })
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(self.shape)
    }

    /// Reads the tensor back (row-major).
    pub async fn read(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        ctx.read_f32(&self.buffer, self.numel()).await
    }
}

fn numel(shape: [usize; 4]) -> usize {
    shape.iter().product()
}

/// The 64-byte uniform of every image kernel: 12 `u32` then 4 `f32`; each `.wgsl` file
/// names the fields its kernels use.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
struct Params {
    u: [u32; 12],
    f: [f32; 4],
}

impl Params {
    fn new(u: &[u32]) -> Self {
        let mut p = Params::default();
        p.u[..u.len()].copy_from_slice(u);
        p
    }
}

/// How a kernel is dispatched.
#[derive(Clone, Copy, Debug)]
enum Grid {
    /// `n` invocations of a 64-wide kernel indexed with `flat_index`.
    Flat(usize),
    /// An explicit grid of workgroups `(x, y)` of a 256-wide kernel.
    Groups(usize, usize),
}

/// A tensor bound to a kernel, with the name its errors use.
type Named<'a> = (&'a str, &'a GpuTensor);

/// The compiled image-layer pipelines of one device.
///
/// Every kernel uses one bind group layout: binding 0 the uniform, 1–4 read-only
/// inputs, 5 the output, 6 an auxiliary output (partial sums); unused slots are bound to
/// small dummy buffers.
pub struct ImageOps {
    layout: wgpu::BindGroupLayout,
    pipelines: Vec<(&'static str, Rc<wgpu::ComputePipeline>)>,
    dummy_in: wgpu::Buffer,
    dummy_aux: wgpu::Buffer,
}

impl std::fmt::Debug for ImageOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageOps")
            .field(
                "kernels",
                &self.pipelines.iter().map(|p| p.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Every kernel: module and entry point.
const KERNELS: &[(KernelModule, &str)] = &[
    (CONV_MODULE, "conv2d"),
    (CONV_MODULE, "dense"),
    (NORM_MODULE, "group_norm"),
    (POINTWISE_MODULE, "apply_silu"),
    (POINTWISE_MODULE, "add"),
    (POINTWISE_MODULE, "add_channel_bias"),
    (POINTWISE_MODULE, "copy_channels"),
    (RESAMPLE_MODULE, "avg_pool2x2"),
    (RESAMPLE_MODULE, "upsample_nearest2x"),
    (RESAMPLE_MODULE, "squeeze"),
    (RESAMPLE_MODULE, "unsqueeze"),
    (GLOW_MODULE, "actnorm_forward"),
    (GLOW_MODULE, "actnorm_inverse"),
    (GLOW_MODULE, "coupling_forward"),
    (GLOW_MODULE, "coupling_inverse"),
    (GLOW_MODULE, "sum_partials"),
    (LATENT_MODULE, "lincomb"),
];

impl ImageOps {
    /// Checks that the adapter can run the 256-wide reducing kernels and compiles every
    /// pipeline (a shader problem shows here, not at the first dispatch).
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let l = &ctx.limits;
        for (what, have, need) in [
            (
                "invocations per workgroup",
                l.max_compute_invocations_per_workgroup,
                REDUCE_WORKGROUP,
            ),
            (
                "workgroup size x",
                l.max_compute_workgroup_size_x,
                REDUCE_WORKGROUP,
            ),
            (
                "workgroup storage (bytes)",
                l.max_compute_workgroup_storage_size,
                REDUCE_WORKGROUP_BYTES,
            ),
        ] {
            if have < need {
                return Err(IndmError::GpuLimit {
                    what: format!("image kernels: {what}"),
                    requested: need as u64,
                    limit: have as u64,
                });
            }
        }
        use BindingKind::*;
        let layout = ctx.layout(
            "image ops",
            &[
                Uniform, ReadOnly, ReadOnly, ReadOnly, ReadOnly, ReadWrite, ReadWrite,
            ],
        );
        let pipeline_layout = ctx.pipeline_layout(&layout);
        let mut pipelines = Vec::with_capacity(KERNELS.len());
        for (module, entry) in KERNELS {
            let src = module.compose(module.example_header);
            let key = format!("image/{}", module.name);
            pipelines.push((*entry, ctx.pipeline(&key, &src, entry, &pipeline_layout)?));
        }
        Ok(ImageOps {
            layout,
            pipelines,
            dummy_in: ctx.storage_zeroed("image ops: unused input", 4)?,
            dummy_aux: ctx.storage_zeroed("image ops: unused output", 4)?,
        })
    }

    fn pipeline(&self, entry: &str) -> &wgpu::ComputePipeline {
        &self
            .pipelines
            .iter()
            .find(|p| p.0 == entry)
            .expect("every entry point is compiled in ImageOps::new")
            .1
    }

    /// Checks the bindings (sizes, limits, aliasing) and records one dispatch of `entry`.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        entry: &'static str,
        params: Params,
        inputs: &[Option<Named>],
        out: Named,
        aux: Option<Named>,
        grid: Grid,
    ) -> Result<()> {
        debug_assert!(inputs.len() <= 4);
        let present: Vec<Named> = inputs.iter().flatten().copied().collect();
        for (name, t) in present.iter().chain([&out]).chain(aux.as_ref()) {
            check_buffer(ctx, name, t)?;
        }
        let writes: Vec<Named> = [Some(out), aux].into_iter().flatten().collect();
        for (i, (wname, w)) in writes.iter().enumerate() {
            for (name, t) in present.iter().chain(&writes[i + 1..]) {
                if t.buffer == w.buffer {
                    return Err(IndmError::invalid(
                        "tensor aliasing",
                        format!("{entry}: '{name}' and '{wname}' are the same buffer"),
                        "an output distinct from every other tensor of the call",
                    ));
                }
            }
        }
        let (gx, gy) = match grid {
            Grid::Flat(n) => ctx.grid(entry, to_u32(entry, n)?)?,
            Grid::Groups(x, y) => {
                let max = ctx.limits.max_compute_workgroups_per_dimension as u64;
                for d in [x, y] {
                    if d as u64 > max {
                        return Err(IndmError::GpuLimit {
                            what: format!("{entry} (workgroups per dimension)"),
                            requested: d as u64,
                            limit: max,
                        });
                    }
                }
                (x as u32, y as u32)
            }
        };
        let u = ctx.uniform_bytes(entry, bytemuck::bytes_of(&params));
        let mut entries: Vec<(&wgpu::Buffer, Option<u64>)> = vec![(&u, None)];
        for i in 0..4 {
            let b = inputs
                .get(i)
                .copied()
                .flatten()
                .map_or(&self.dummy_in, |t| &t.1.buffer);
            entries.push((b, None));
        }
        entries.push((&out.1.buffer, None));
        entries.push((aux.map_or(&self.dummy_aux, |t| &t.1.buffer), None));
        let bg = ctx.bind_group(&self.layout, &entries);
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(entry),
            timestamp_writes: None,
        });
        pass.set_pipeline(self.pipeline(entry));
        pass.set_bind_group(0, &bg, &[]);
        if gx > 0 && gy > 0 {
            pass.dispatch_workgroups(gx, gy, 1);
        }
        Ok(())
    }
}

/// `shape` or a [`IndmError::ShapeMismatch`] naming `name`.
fn expect_shape(name: &str, t: &GpuTensor, shape: [usize; 4]) -> Result<()> {
    if t.shape != shape {
        return Err(IndmError::ShapeMismatch {
            tensor: name.to_string(),
            expected: shape.to_vec(),
            found: t.shape.to_vec(),
        });
    }
    Ok(())
}

/// The buffer holds the shape's elements, fits the adapter's binding limit, and every
/// index fits in a `u32`.
fn check_buffer(ctx: &GpuContext, name: &str, t: &GpuTensor) -> Result<()> {
    let n = t.numel();
    to_u32(name, n)?;
    let bytes = 4 * n as u64;
    ctx.check_storage(name, bytes)?;
    if t.buffer.size() < bytes {
        return Err(IndmError::invalid(
            "tensor buffer",
            format!("'{name}' has {} bytes", t.buffer.size()),
            format!("at least {bytes} bytes for shape {:?}", t.shape),
        ));
    }
    Ok(())
}

fn to_u32(what: &str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| IndmError::GpuLimit {
        what: format!("{what} (elements, 32-bit indices)"),
        requested: n as u64,
        limit: u32::MAX as u64,
    })
}

/// `n` as a `u32` uniform field (sizes are bounded by the element checks).
fn u(n: usize) -> u32 {
    n as u32
}
