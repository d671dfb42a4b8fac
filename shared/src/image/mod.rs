//! Image models: a Glow-lite flow (squeeze, actnorm, invertible 1x1 convolution in LU
//! form, affine coupling; no factor-out, so the latent keeps the image layout) and a small
//! U-Net score net on the latent.
//!
//! - [`layout`]: the structure as data (levels, blocks, parameter names, FLOP counts);
//! - [`lu`]: the 1x1 convolution's matrix and inverse from its LU parameters;
//! - [`reference`]: the whole model in plain `f64` (the tests' reference);
//! - [`burn`]: the same in burn, for training and batched inference;
//! - [`model`]: a trained model for inference (encode, decode, score, divergence probes);
//! - [`likelihood`]: NELBO with the residual and PF-ODE NLL (Hutchinson), bits/dim;
//! - [`sample`]: sampling, latent SDEdit and latent DDIB on the shared step plans.
//!
//! The layouts and formulas are those of the WGSL kernels in `gpu::image_ops`, so the
//! browser can run these weights: NCHW `f32`, conv weights `[C_out, C_in, k, k]`, dense
//! weights `[in, out]`, actnorm `y = (x + b) exp(logs)`, coupling log-scale
//! `2 tanh(raw / 2)` with the conditioner's first half of channels the raw log-scale and
//! the second half the shift.

#[cfg(feature = "train")]
pub mod burn;
pub mod layout;
#[cfg(feature = "train")]
pub mod likelihood;
pub mod lu;
#[cfg(feature = "train")]
pub mod model;
pub mod reference;
#[cfg(feature = "train")]
pub mod sample;
#[cfg(test)]
mod tests;
