//! The INDM browser demo.
//!
//! - [`state`]: the share link (versioned URL query), validated and clamped; plain Rust.
//! - [`sim`]: the plan of a state, its `f64` CPU execution (the page's fallback without
//!   WebGPU, and natively the browser test's reference) and the exposed statistics.
//! - [`translate`]: the dog <-> cat translation view's gallery, stages, `f64` CPU
//!   execution and statistics (the GPU path runs the same stages in `app`).
//! - `app` (wasm32 only): the page: WebGPU sampling with [`indm::gpu::PlanRun`],
//!   particles drawn by a render pipeline straight from the run's storage buffers
//!   (`shaders/particles2d.wgsl`), controls, share link, PNG / WebM export.

#[cfg(target_arch = "wasm32")]
pub mod app;
pub mod sim;
pub mod state;
pub mod translate;
