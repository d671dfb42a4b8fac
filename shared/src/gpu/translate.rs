//! Latent SDEdit and DDIB between 2D models on the GPU (the plans of
//! [`crate::sample::translate`], executed by [`PlanRun`]).

use super::context::GpuContext;
use super::model2d::{FlowDirection, GpuModel2d, PlanRun};
use crate::error::{IndmError, Result};
use crate::sample::SamplerConfig;
use crate::sample::plan::{self, Start};

fn upload(ctx: &GpuContext, x: &[f32]) -> Result<(wgpu::Buffer, u32)> {
    if x.is_empty() || !x.len().is_multiple_of(2) {
        return Err(IndmError::invalid(
            "points",
            format!("{} values", x.len()),
            "a non-empty, even number of values (x, y pairs)",
        ));
    }
    Ok((ctx.storage_f32("source points", x)?, (x.len() / 2) as u32))
}

fn encode_to_latent(
    ctx: &GpuContext,
    model: &GpuModel2d,
    x: &wgpu::Buffer,
    n: u32,
) -> Result<wgpu::Buffer> {
    let z = ctx.storage_zeroed("source latents", 2 * n as usize)?;
    let ld = ctx.storage_zeroed("log-det", n as usize)?;
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    model.encode_flow(ctx, &mut enc, FlowDirection::Forward, x, &z, &ld, n)?;
    ctx.queue.submit([enc.finish()]);
    Ok(z)
}

/// Latent SDEdit of the points `x` (`2 n` values) into `target`'s domain from `t0`.
pub async fn sdedit(
    ctx: &GpuContext,
    target: &GpuModel2d,
    x: &[f32],
    t0: f64,
    cfg: &SamplerConfig,
) -> Result<Vec<f32>> {
    let plan = plan::reverse(&target.arch, cfg, Start::Perturb { t0 })?;
    let (xb, n) = upload(ctx, x)?;
    let z = encode_to_latent(ctx, target, &xb, n)?;
    let mut run = PlanRun::new(ctx, target, plan, n, Some(&z))?;
    run.run_to_end(ctx)?;
    let out = run.decode(ctx, target)?;
    ctx.read_f32(&out, 2 * n as usize).await
}

/// Latent DDIB of the points `x` from `source`'s domain to `target`'s (`cfg.kind`:
/// `ode-euler` or `ode-heun`).
pub async fn ddib(
    ctx: &GpuContext,
    source: &GpuModel2d,
    target: &GpuModel2d,
    x: &[f32],
    cfg: &SamplerConfig,
) -> Result<Vec<f32>> {
    let enc_plan = plan::encode(&source.arch, cfg)?;
    let dec_cfg = SamplerConfig {
        denoise: false,
        temperature: 1.0,
        ..cfg.clone()
    };
    let dec_plan = plan::reverse(&target.arch, &dec_cfg, Start::Given)?;
    let (xb, n) = upload(ctx, x)?;
    let z = encode_to_latent(ctx, source, &xb, n)?;
    let mut up = PlanRun::new(ctx, source, enc_plan, n, Some(&z))?;
    up.run_to_end(ctx)?;
    let mut down = PlanRun::new(ctx, target, dec_plan, n, Some(up.z()))?;
    down.run_to_end(ctx)?;
    let out = down.decode(ctx, target)?;
    ctx.read_f32(&out, 2 * n as usize).await
}
