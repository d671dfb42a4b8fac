//! The WGSL runtime: trained models on any WebGPU device (native Vulkan / Metal / DX12 /
//! GL, or the browser), computing what the `f64` reference and burn compute.
//!
//! - [`context`]: adapter and device, pipeline cache, buffers, async readback, limits.
//! - [`shaders`]: the `shaders/*.wgsl` sources and their composition into kernels.
//! - [`model2d`]: a 2D model's flow and fused sampler kernels, and [`PlanRun`], which
//!   executes a [`crate::sample::plan::Plan`] (EM, PC, PF-ODE Euler / Heun, noising,
//!   translation) with per-step coefficients from Rust; [`score2d`]: how the score MLP's
//!   weights are laid out and bound for those kernels.
//! - [`translate`]: latent SDEdit and DDIB between two 2D models.
//! - [`image_ops`]: the image models' layer kernels; [`image_model`]: a whole image model
//!   (flow, U-Net, plan runs, latent SDEdit and DDIB) built from them.
//! - [`rng`]: the WGSL generator, for checking it against [`crate::rng`].
//!
//! Errors: no adapter gives [`IndmError::NoAdapter`](crate::IndmError::NoAdapter) (fall
//! back to the CPU); requests beyond the adapter's limits give
//! [`IndmError::GpuLimit`](crate::IndmError::GpuLimit) before anything is dispatched.

pub mod context;
pub mod image_model;
pub mod image_ops;
pub mod model2d;
pub mod rng;
pub mod score2d;
pub mod shaders;
pub mod translate;

pub use context::GpuContext;
pub use image_model::{GpuImageModel, ImagePlanRun};
pub use model2d::{FlowDirection, GpuModel2d, PlanRun};
pub use score2d::{KernelOptions, WeightPlacement};
