//! Flows `h`: data `x` -> latent `z` of the same shape, with `log |det dz/dx|`.

pub mod coupling2d;

pub use coupling2d::Coupling2d;

use crate::arch::{Architecture, FlowArch};
use crate::error::Result;
use crate::params::ParamSet;

/// A 2D flow in `f64` (the reference implementation).
#[derive(Clone, Debug)]
pub enum Flow2d {
    /// `h = id`, log-det 0.
    Identity,
    /// Affine couplings.
    Coupling(Coupling2d),
}

impl Flow2d {
    /// The flow of `arch` with weights from `params`.
    pub fn from_params(arch: &Architecture, params: &ParamSet) -> Result<Self> {
        Ok(match arch.flow {
            FlowArch::Identity => Flow2d::Identity,
            FlowArch::Coupling2d { layers, .. } => {
                Flow2d::Coupling(Coupling2d::from_params(params, layers)?)
            }
        })
    }

    /// `z = h(x)` and `log |det dh/dx|` per point; `x` holds `n` points `[x0, y0, x1, y1, ...]`.
    pub fn forward(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        match self {
            Flow2d::Identity => (x.to_vec(), vec![0.0; x.len() / 2]),
            Flow2d::Coupling(c) => c.forward(x),
        }
    }

    /// `x = h^{-1}(z)`.
    pub fn inverse(&self, z: &[f64]) -> Vec<f64> {
        match self {
            Flow2d::Identity => z.to_vec(),
            Flow2d::Coupling(c) => c.inverse(z),
        }
    }
}
