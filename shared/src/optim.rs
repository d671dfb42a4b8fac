//! AdamW with per-model global-norm clipping, and parameter EMA (spec 2.4), on
//! plain `f32` vectors. Keeping the optimiser state as plain named tensors makes
//! checkpoints exact: a resumed run continues bit for bit.

use serde::{Deserialize, Serialize};

use crate::params::{Param, ParamSet};

/// AdamW hyper-parameters (PyTorch semantics: decoupled weight decay).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Global-norm gradient clip (0 disables).
    pub clip_norm: f64,
}

impl AdamWConfig {
    /// The spec's settings with learning rate `lr`: betas (0.9, 0.99), eps 1e-8, wd 0.01, clip 1.
    pub fn spec(lr: f64) -> Self {
        AdamWConfig {
            lr,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.01,
            clip_norm: 1.0,
        }
    }
}

/// AdamW state for a subset of parameters (selected by name prefix).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    /// Settings.
    pub cfg: AdamWConfig,
    /// Name prefix of the parameters this optimiser owns (`flow.` or `score.`).
    pub prefix: String,
    /// Steps taken.
    pub t: u64,
    /// First moments, one per owned parameter (in parameter order).
    pub m: Vec<Vec<f32>>,
    /// Second moments.
    pub v: Vec<Vec<f32>>,
}

/// Global L2 norm of a set of gradients.
pub fn global_norm(grads: &[&[f32]]) -> f64 {
    grads
        .iter()
        .flat_map(|g| g.iter())
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt()
}

impl AdamW {
    /// A fresh optimiser for the parameters of `params` whose names start with `prefix`.
    pub fn new(cfg: AdamWConfig, prefix: &str, params: &ParamSet) -> Self {
        let owned: Vec<&Param> = params
            .params
            .iter()
            .filter(|p| p.name.starts_with(prefix))
            .collect();
        AdamW {
            cfg,
            prefix: prefix.to_string(),
            t: 0,
            m: owned.iter().map(|p| vec![0.0; p.data.len()]).collect(),
            v: owned.iter().map(|p| vec![0.0; p.data.len()]).collect(),
        }
    }

    /// Whether this optimiser owns any parameter.
    pub fn is_empty(&self) -> bool {
        self.m.is_empty()
    }

    /// One step. `grads` holds a gradient for every parameter of `params` (same order);
    /// only the owned ones are used. Returns the gradient norm before clipping.
    pub fn step(&mut self, params: &mut ParamSet, grads: &[Vec<f32>]) -> f64 {
        let idx: Vec<usize> = params
            .params
            .iter()
            .enumerate()
            .filter(|(_, p)| p.name.starts_with(&self.prefix))
            .map(|(i, _)| i)
            .collect();
        if idx.is_empty() {
            return 0.0;
        }
        let norm = global_norm(&idx.iter().map(|&i| grads[i].as_slice()).collect::<Vec<_>>());
        let c = &self.cfg;
        let scale = if c.clip_norm > 0.0 && norm > c.clip_norm {
            c.clip_norm / (norm + 1e-6)
        } else {
            1.0
        };
        self.t += 1;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        let (b1, b2, lr, eps, wd) = (
            c.beta1 as f32,
            c.beta2 as f32,
            c.lr as f32,
            c.eps as f32,
            c.weight_decay as f32,
        );
        let step_size = (c.lr / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        for (slot, &i) in idx.iter().enumerate() {
            let p = &mut params.params[i].data;
            let g = &grads[i];
            let (m, v) = (&mut self.m[slot], &mut self.v[slot]);
            for j in 0..p.len() {
                let gj = g[j] * scale as f32;
                p[j] *= 1.0 - lr * wd;
                m[j] = b1 * m[j] + (1.0 - b1) * gj;
                v[j] = b2 * v[j] + (1.0 - b2) * gj * gj;
                p[j] -= step_size * m[j] / (v[j].sqrt() / bc2_sqrt + eps);
            }
        }
        norm
    }
}

/// Exponential moving average of parameters with the warm-up cap `(1 + n) / (10 + n)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ema {
    /// Target decay.
    pub decay: f64,
    /// Updates so far.
    pub updates: u64,
    /// The averaged parameters.
    pub params: ParamSet,
}

impl Ema {
    /// Starts the average at `params`.
    pub fn new(decay: f64, params: &ParamSet) -> Self {
        Ema {
            decay,
            updates: 0,
            params: params.clone(),
        }
    }

    /// Folds `params` into the average.
    pub fn update(&mut self, params: &ParamSet) {
        let n = self.updates as f64;
        let d = self.decay.min((1.0 + n) / (10.0 + n)) as f32;
        for (e, p) in self.params.params.iter_mut().zip(&params.params) {
            for (a, b) in e.data.iter_mut().zip(&p.data) {
                *a = d * *a + (1.0 - d) * b;
            }
        }
        self.updates += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, data: Vec<f32>) -> ParamSet {
        ParamSet {
            params: vec![Param {
                name: name.into(),
                shape: vec![data.len()],
                data,
            }],
        }
    }

    #[test]
    fn adamw_first_steps_match_hand_computation() {
        // PyTorch AdamW, lr 0.1, betas (0.9, 0.99), eps 1e-8, wd 0.01, no clipping:
        // step 1 moves by lr * sign(g) after decay: p = 1 * (1 - 0.001) - 0.1 = 0.899.
        let mut p = one("score.w", vec![1.0]);
        let cfg = AdamWConfig {
            clip_norm: 0.0,
            ..AdamWConfig::spec(0.1)
        };
        let mut opt = AdamW::new(cfg, "score.", &p);
        opt.step(&mut p, &[vec![0.5]]);
        assert!((p.params[0].data[0] - 0.899).abs() < 1e-6);
        // Step 2 with g = 0.25: m = 0.9*0.05 + 0.1*0.25 = 0.07, v = 0.99*0.0025 + 0.01*0.0625 = 0.003100,
        // m_hat = 0.07/0.19, v_hat = 0.0031/0.0199, update = 0.1 * m_hat / sqrt(v_hat).
        opt.step(&mut p, &[vec![0.25]]);
        let m_hat = 0.07 / 0.19;
        let v_hat = 0.0031f64 / (1.0 - 0.99f64.powi(2));
        let expected = 0.899 * (1.0 - 0.001) - 0.1 * m_hat / v_hat.sqrt();
        assert!(
            (p.params[0].data[0] as f64 - expected).abs() < 1e-5,
            "{} vs {expected}",
            p.params[0].data[0]
        );
    }

    #[test]
    fn clipping_scales_to_unit_norm_and_ignores_other_models() {
        let mut p = ParamSet {
            params: vec![
                Param {
                    name: "flow.a".into(),
                    shape: vec![2],
                    data: vec![0.0, 0.0],
                },
                Param {
                    name: "score.b".into(),
                    shape: vec![1],
                    data: vec![0.0],
                },
            ],
        };
        let cfg = AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::spec(1.0)
        };
        let mut opt = AdamW::new(cfg, "flow.", &p);
        let norm = opt.step(&mut p, &[vec![3.0, 4.0], vec![100.0]]);
        assert!((norm - 5.0).abs() < 1e-12);
        assert_eq!(
            p.params[1].data[0], 0.0,
            "score params untouched by the flow optimiser"
        );
        // First Adam step moves each coordinate by lr regardless of scale.
        assert!((p.params[0].data[0] + 1.0).abs() < 1e-5);
    }

    #[test]
    fn ema_warm_up_cap() {
        let p0 = one("x", vec![0.0]);
        let mut e = Ema::new(0.999, &p0);
        e.update(&one("x", vec![1.0]));
        // First update uses decay min(0.999, 1/10) = 0.1.
        assert!((e.params.params[0].data[0] - 0.9).abs() < 1e-6);
    }
}
