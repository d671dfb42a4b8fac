//! A complete INDM model for inference: architecture, flow, score net, in `f64`.

use crate::arch::Architecture;
use crate::error::Result;
use crate::flow::Flow2d;
use crate::params::ParamSet;
use crate::score::ScoreMlp;

/// Flow + score net + SDE, ready to sample and evaluate likelihoods.
#[derive(Clone, Debug)]
pub struct CpuModel {
    /// Architecture record.
    pub arch: Architecture,
    /// The flow `h`.
    pub flow: Flow2d,
    /// The latent score network.
    pub score: ScoreMlp,
}

impl CpuModel {
    /// Builds the model, checking every tensor's name and shape first.
    pub fn new(arch: &Architecture, params: &ParamSet) -> Result<Self> {
        arch.validate()?;
        params.check_against(arch)?;
        Ok(CpuModel {
            arch: arch.clone(),
            flow: Flow2d::from_params(arch, params)?,
            score: ScoreMlp::from_params(arch, params)?,
        })
    }
}
