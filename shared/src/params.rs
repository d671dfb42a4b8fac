//! Named `f32` parameter tensors: the one representation of a model's weights
//! shared by training (burn), inference (plain Rust), the optimiser and files.

use crate::arch::{Architecture, ParamSpec};
use crate::error::{IndmError, Result};
use crate::nn::{Dense, Mlp};
use crate::rng::{Counter, Stream};

/// One named parameter tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Name, e.g. `score.l0.weight`.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// All parameters of a model, in the architecture's order.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSet {
    /// The tensors.
    pub params: Vec<Param>,
}

impl ParamSet {
    /// Fresh parameters: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` (PyTorch's default for
    /// linear and conv layers), zeros or ones where the spec asks for them.
    pub fn init(arch: &Architecture, seed: u64) -> Self {
        let params = arch
            .param_specs()
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let n = spec.numel();
                let data = if spec.zero_init {
                    vec![0.0; n]
                } else if spec.ones_init {
                    vec![1.0; n]
                } else {
                    let c = Counter::new(seed, Stream::Init, i as u64);
                    let bound = 1.0 / (spec.fan_in as f64).sqrt();
                    (0..n)
                        .map(|j| ((2.0 * c.uniform(j as u32) - 1.0) * bound) as f32)
                        .collect()
                };
                Param {
                    name: spec.name,
                    shape: spec.shape,
                    data,
                }
            })
            .collect();
        ParamSet { params }
    }

    /// Checks that this set has exactly the tensors and shapes `arch` needs.
    pub fn check_against(&self, arch: &Architecture) -> Result<()> {
        let specs: Vec<ParamSpec> = arch.param_specs();
        for spec in &specs {
            let p = self
                .get(&spec.name)
                .ok_or_else(|| IndmError::MissingTensor(spec.name.clone()))?;
            if p.shape != spec.shape {
                return Err(IndmError::ShapeMismatch {
                    tensor: spec.name.clone(),
                    expected: spec.shape.clone(),
                    found: p.shape.clone(),
                });
            }
            if p.data.len() != spec.numel() {
                return Err(IndmError::BadWeights {
                    path: "<params>".into(),
                    reason: format!(
                        "tensor '{}' holds {} values, its shape needs {}",
                        spec.name,
                        p.data.len(),
                        spec.numel()
                    ),
                });
            }
        }
        if let Some(extra) = self
            .params
            .iter()
            .find(|p| !specs.iter().any(|s| s.name == p.name))
        {
            return Err(IndmError::ArchitectureMismatch(format!(
                "tensor '{}' is not part of the architecture",
                extra.name
            )));
        }
        Ok(())
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// A dense layer `prefix.weight`, `prefix.bias` in `f64`.
    pub fn dense(&self, prefix: &str) -> Result<Dense> {
        let w = self
            .get(&format!("{prefix}.weight"))
            .ok_or_else(|| IndmError::MissingTensor(format!("{prefix}.weight")))?;
        let b = self
            .get(&format!("{prefix}.bias"))
            .ok_or_else(|| IndmError::MissingTensor(format!("{prefix}.bias")))?;
        if w.shape.len() != 2 || b.shape != [w.shape[1]] {
            return Err(IndmError::ShapeMismatch {
                tensor: format!("{prefix}.bias"),
                expected: vec![*w.shape.get(1).unwrap_or(&0)],
                found: b.shape.clone(),
            });
        }
        Ok(Dense::from_f32(&w.data, &b.data, w.shape[0], w.shape[1]))
    }

    /// An MLP from `prefix.l0 .. prefix.l{n-1}`.
    pub fn mlp(&self, prefix: &str, n_layers: usize) -> Result<Mlp> {
        let layers = (0..n_layers)
            .map(|i| self.dense(&format!("{prefix}.l{i}")))
            .collect::<Result<_>>()?;
        Ok(Mlp { layers })
    }

    /// Total number of scalars.
    pub fn numel(&self) -> usize {
        self.params.iter().map(|p| p.data.len()).sum()
    }

    /// Whether every value is finite.
    pub fn all_finite(&self) -> bool {
        self.params
            .iter()
            .all(|p| p.data.iter().all(|v| v.is_finite()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::FlowArch;
    use crate::sde::SdeKind;

    #[test]
    fn init_is_seeded_and_zeroes_the_last_coupling_layer() {
        let a = Architecture::default_2d(SdeKind::Vp, FlowArch::from_name("coupling").unwrap());
        let p = ParamSet::init(&a, 1);
        assert_eq!(p, ParamSet::init(&a, 1));
        assert_ne!(p, ParamSet::init(&a, 2));
        assert!(
            p.get("flow.3.l2.weight")
                .unwrap()
                .data
                .iter()
                .all(|&v| v == 0.0)
        );
        assert!(
            p.get("flow.3.l1.weight")
                .unwrap()
                .data
                .iter()
                .any(|&v| v != 0.0)
        );
        p.check_against(&a).unwrap();
    }

    #[test]
    fn shape_mismatch_names_the_tensor_and_both_shapes() {
        let a = Architecture::default_2d(SdeKind::Vp, FlowArch::Identity);
        let mut p = ParamSet::init(&a, 1);
        p.params[0].shape = vec![3, 3];
        let e = p.check_against(&a).unwrap_err().to_string();
        assert!(
            e.contains("score.l0.weight") && e.contains("[3, 3]") && e.contains("[19, 128]"),
            "{e}"
        );
    }
}
