//! The WGSL generator run on the device, for comparison with [`crate::rng`].

use bytemuck::{Pod, Zeroable};

use super::context::{BindingKind, GpuContext};
use super::shaders::RNG_CHECK_MODULE;
use crate::error::Result;
use crate::rng::Counter;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RngParams {
    seed: u32,
    stream: u32,
    step: u32,
    n: u32,
}

/// Draws `n` raw words, uniforms and normals of the family `counter` on the GPU.
pub async fn draws(
    ctx: &GpuContext,
    counter: Counter,
    n: u32,
) -> Result<(Vec<u32>, Vec<f32>, Vec<f32>)> {
    let [seed, stream, step] = counter.key();
    use BindingKind::*;
    let bgl = ctx.layout("rng_check", &[Uniform, ReadWrite, ReadWrite, ReadWrite]);
    let pl = ctx.pipeline_layout(&bgl);
    let src = RNG_CHECK_MODULE.compose("");
    let pipeline = ctx.pipeline("rng_check", &src, "rng_fill", &pl)?;
    let u = ctx.uniform_bytes(
        "rng params",
        bytemuck::bytes_of(&RngParams {
            seed,
            stream,
            step,
            n,
        }),
    );
    let bits = ctx.storage_zeroed("bits", n as usize)?;
    let unif = ctx.storage_zeroed("uniforms", n as usize)?;
    let norm = ctx.storage_zeroed("normals", n as usize)?;
    let bg = ctx.bind_group(
        &bgl,
        &[(&u, None), (&bits, None), (&unif, None), (&norm, None)],
    );
    let grid = ctx.grid("draws", n)?;
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(grid.0, grid.1, 1);
    }
    ctx.queue.submit([enc.finish()]);
    Ok((
        ctx.read_u32(&bits, n as usize).await?,
        ctx.read_f32(&unif, n as usize).await?,
        ctx.read_f32(&norm, n as usize).await?,
    ))
}
