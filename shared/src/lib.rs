//! # indm — Implicit Nonlinear Diffusion Model
//!
//! A normalizing flow `h` maps data `x` to a latent `z = h(x)` of the same
//! shape; a *linear* SDE (VP, sub-VP, VE) diffuses `z`; a score network
//! `s(z, t)` learns its reverse. Seen from data space this is a nonlinear
//! diffusion with learned drift and volatility. With the identity flow it is
//! the ordinary linear model (DDPM++ / NCSN++).
//!
//! The four journeys through the crate:
//!
//! | journey | modules |
//! |---|---|
//! | train | [`data`] -> [`train`] (burn autodiff) -> [`optim`] -> [`weights`] |
//! | sample | [`sde`] prior -> [`sample`] (EM, PC, PF-ODE) with [`score`] -> [`flow`] inverse |
//! | likelihood | [`flow`] -> [`likelihood`] (PF-ODE with exact trace, NELBO) |
//! | translate | (images issue) |
//!
//! Training runs in burn on any device; sampling and likelihood run on the
//! `f64` reference implementation ([`nn`], [`model`]), which the GPU kernels are
//! tested against.

pub mod arch;
pub mod data;
pub mod draws;
pub mod error;
pub mod flow;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod image;
pub mod likelihood;
pub mod model;
pub mod nn;
pub mod numeric;
pub mod ode;
pub mod optim;
pub mod params;
pub mod rng;
pub mod sample;
pub mod score;
pub mod sde;
#[cfg(feature = "train")]
pub mod train;
pub mod weights;

pub use arch::{Architecture, FlowArch, ImageArch, ImageFlowArch, ScoreArch, UNetArch};
pub use error::{IndmError, Result};
pub use model::CpuModel;
pub use params::ParamSet;
pub use sde::{Sde, SdeKind};
