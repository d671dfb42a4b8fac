//! The training journey in burn: `x -> h(x) = z, log-det -> perturb z -> score
//! net -> NELBO terms -> gradients to flow and score` (spec 2.3, 2.7).
//!
//! Parameters live in a [`ParamSet`]; each step turns them into burn leaf
//! tensors, runs the forward pass on any burn device (flex, ndarray, wgpu,
//! CUDA), reads the gradients back and applies [`AdamW`] and [`Ema`] on the
//! host. The model is tiny, so the round trip is cheap, and the whole training
//! state is plain data that checkpoints exactly.

use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::arch::{Architecture, FlowArch};
use crate::draws::DiffusionDraws;
use crate::error::{IndmError, Result};
use crate::optim::{AdamW, AdamWConfig, Ema};
use crate::params::ParamSet;
use crate::sde::T_END;

/// How flow and score are updated (spec 2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// One NELBO, one backward, both optimisers step.
    Joint,
    /// Flow on the NELBO, then score on the epsilon loss of detached latents.
    Alternating,
}

impl StepKind {
    /// Command-line names.
    pub const NAMES: [&'static str; 2] = ["joint", "alternating"];

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "joint" | "j" => Ok(StepKind::Joint),
            "alternating" | "a" => Ok(StepKind::Alternating),
            _ => Err(IndmError::unknown("step type", name, &Self::NAMES)),
        }
    }
}

/// Training hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainHyper {
    /// Batch size.
    pub batch: usize,
    /// Importance-sample diffusion times (likelihood weighting).
    pub importance: bool,
    /// Joint or alternating updates.
    pub step_kind: StepKind,
    /// Flow optimiser.
    pub flow_opt: AdamWConfig,
    /// Score optimiser.
    pub score_opt: AdamWConfig,
    /// EMA decay of both models.
    pub ema_decay: f64,
    /// Divide the per-point loss by the data dimension (VP configs) instead of summing.
    pub reduce_mean: bool,
    /// Seed of every draw.
    pub seed: u64,
}

impl Default for TrainHyper {
    fn default() -> Self {
        TrainHyper {
            batch: 512,
            importance: true,
            step_kind: StepKind::Joint,
            flow_opt: AdamWConfig::spec(1e-3),
            // The spec's 2e-4 is for million-step image runs; on the 2D budget 1e-3 trains
            // measurably faster (BENCHMARKS.md, "learning rate") and stays stable.
            score_opt: AdamWConfig::spec(1e-3),
            ema_decay: 0.999,
            reduce_mean: true,
            seed: 0,
        }
    }
}

impl TrainHyper {
    /// Rejects unusable settings.
    pub fn validate(&self) -> Result<()> {
        if self.batch == 0 || self.batch > 1 << 20 {
            return Err(IndmError::invalid(
                "batch",
                self.batch,
                "an integer in 1..=1048576",
            ));
        }
        for (what, c) in [
            ("flow learning rate", &self.flow_opt),
            ("score learning rate", &self.score_opt),
        ] {
            if !(c.lr.is_finite() && c.lr >= 0.0 && c.lr < 10.0) {
                return Err(IndmError::invalid(what, c.lr, "a number in [0, 10)"));
            }
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(IndmError::invalid(
                "ema decay",
                self.ema_decay,
                "a number in [0, 1)",
            ));
        }
        Ok(())
    }
}

/// Loss terms of one step, averaged over the batch, in nats per point.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StepMetrics {
    /// NELBO estimate (flow + dsm + prior + constant).
    pub nelbo: f64,
    /// `-log|det|` term.
    pub flow: f64,
    /// Likelihood-weighted score-matching term.
    pub dsm: f64,
    /// Prior term.
    pub prior: f64,
    /// Flow gradient norm before clipping.
    pub grad_norm_flow: f64,
    /// Score gradient norm before clipping.
    pub grad_norm_score: f64,
}

/// Everything that changes during training: weights, optimisers, EMA, step.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    /// Architecture.
    pub arch: Architecture,
    /// Current weights.
    pub params: ParamSet,
    /// Flow optimiser (empty for the identity flow).
    pub opt_flow: AdamW,
    /// Score optimiser.
    pub opt_score: AdamW,
    /// EMA of all weights.
    pub ema: Ema,
    /// Completed steps.
    pub step: u64,
}

impl TrainState {
    /// Fresh state from seeded initial weights.
    pub fn new(arch: &Architecture, hyper: &TrainHyper) -> Result<Self> {
        arch.validate()?;
        hyper.validate()?;
        let params = ParamSet::init(arch, hyper.seed);
        Ok(TrainState {
            arch: arch.clone(),
            opt_flow: AdamW::new(hyper.flow_opt, "flow.", &params),
            opt_score: AdamW::new(hyper.score_opt, "score.", &params),
            ema: Ema::new(hyper.ema_decay, &params),
            params,
            step: 0,
        })
    }
}

impl TrainState {
    /// INDM warm-started from a linear-diffusion run (spec 2.5): the score net's weights
    /// come from `source` (a model with the identity flow and otherwise the same
    /// architecture as `arch`), the flow starts fresh (at the identity, so the warm score
    /// net is immediately consistent), and both optimisers and the EMA start fresh.
    pub fn warm_start(
        arch: &Architecture,
        hyper: &TrainHyper,
        source_arch: &Architecture,
        source: &ParamSet,
    ) -> Result<Self> {
        if !source_arch.is_identity_flow() {
            return Err(IndmError::ArchitectureMismatch(format!(
                "warm start needs a score net trained with the identity flow, the source has flow '{}'",
                source_arch.flow_name()
            )));
        }
        let mut as_baseline = arch.clone();
        as_baseline.flow = crate::arch::FlowArch::Identity;
        if let Some(img) = as_baseline.image.as_mut() {
            img.flow = crate::arch::ImageFlowArch::Identity;
        }
        let mut src = source_arch.clone();
        src.format_version = as_baseline.format_version;
        if let Some(diff) = as_baseline.difference(&src) {
            return Err(IndmError::ArchitectureMismatch(format!(
                "the warm-start score net does not fit this model: {diff}"
            )));
        }
        source.check_against(source_arch)?;
        let mut state = TrainState::new(arch, hyper)?;
        for p in state
            .params
            .params
            .iter_mut()
            .filter(|p| p.name.starts_with("score."))
        {
            let s = source
                .get(&p.name)
                .ok_or_else(|| IndmError::MissingTensor(p.name.clone()))?;
            p.data.clone_from(&s.data);
        }
        state.ema = Ema::new(hyper.ema_decay, &state.params);
        Ok(state)
    }
}

/// Burn tensors of a [`ParamSet`]: every leaf is 2D (a weight `[d_in, d_out]`, a bias
/// `[1, d_out]`, a conv weight `[C_out, C_in k k]`); [`BurnParams::tensor`] gives any
/// tensor by name in its own shape.
pub struct BurnParams {
    /// Leaves in parameter order.
    pub leaves: Vec<Tensor<2>>,
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
}

impl BurnParams {
    /// Uploads `params`; with `grad` the leaves track gradients.
    pub fn new(params: &ParamSet, device: &Device, grad: bool) -> Self {
        let leaves = params
            .params
            .iter()
            .map(|p| {
                let shape = match p.shape.len() {
                    1 => [1, p.shape[0]],
                    _ => [p.shape[0], p.shape[1..].iter().product()],
                };
                let t = Tensor::<2>::from_data(TensorData::new(p.data.clone(), shape), device);
                if grad { t.require_grad() } else { t }
            })
            .collect();
        BurnParams {
            leaves,
            names: params.params.iter().map(|p| p.name.clone()).collect(),
            shapes: params.params.iter().map(|p| p.shape.clone()).collect(),
        }
    }

    /// The tensor called `name` in its own shape (`D` must be its rank).
    ///
    /// # Panics
    /// If there is no such tensor or its rank is not `D` (the architecture's parameter
    /// list and the forward pass disagree: a bug, not bad input).
    pub fn tensor<const D: usize>(&self, name: &str) -> Tensor<D> {
        let i = self
            .names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no parameter tensor '{name}'"));
        let shape: [usize; D] = self.shapes[i]
            .clone()
            .try_into()
            .unwrap_or_else(|s| panic!("tensor '{name}' has shape {s:?}, not rank {D}"));
        self.leaves[i].clone().reshape(shape)
    }

    /// Dense layer `i` (weights `2i`, bias `2i + 1`) applied to `x`.
    fn dense(&self, i: usize, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.leaves[2 * i].clone()) + self.leaves[2 * i + 1].clone()
    }

    /// An MLP made of dense layers `first .. first + n`, SiLU between them.
    fn mlp(&self, first: usize, n: usize, mut x: Tensor<2>) -> Tensor<2> {
        for j in 0..n {
            x = self.dense(first + j, x);
            if j + 1 < n {
                x = silu(x);
            }
        }
        x
    }

    /// Gradients of every leaf, flattened (zeros where a leaf got none).
    pub fn grads(&self, grads: &burn::tensor::Gradients, params: &ParamSet) -> Vec<Vec<f32>> {
        self.leaves
            .iter()
            .zip(&params.params)
            .map(|(leaf, p)| match leaf.grad(grads) {
                Some(g) => g.into_data().try_to_vec::<f32>().expect("f32 gradient"),
                None => vec![0.0; p.data.len()],
            })
            .collect()
    }
}

/// Host-side `[B, 1]` column.
fn column(v: &[f64], device: &Device) -> Tensor<2> {
    let data: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(data, [v.len(), 1]), device)
}

/// Host-side `[B, D]` matrix.
fn matrix(v: &[f64], cols: usize, device: &Device) -> Tensor<2> {
    let data: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(data, [v.len() / cols, cols]), device)
}

/// `z = h(x)` and `log|det|` (`[B, 1]`) in burn.
pub fn flow_forward(arch: &Architecture, p: &BurnParams, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    if arch.image.is_some() {
        return crate::image::burn::flow_forward_rows(arch, p, x);
    }
    let [b, _] = x.dims();
    let ldj = Tensor::<2>::zeros([b, 1], &x.device());
    match arch.flow {
        FlowArch::Identity => (x, ldj),
        FlowArch::Coupling2d { layers, .. } => {
            let mut cols = [x.clone().narrow(1, 0, 1), x.narrow(1, 1, 1)];
            let mut ldj = ldj;
            for k in 0..layers {
                let (c, a) = (k % 2, 1 - k % 2);
                let out = p.mlp(3 * k, 3, cols[c].clone());
                let s = out
                    .clone()
                    .narrow(1, 0, 1)
                    .mul_scalar(0.5)
                    .tanh()
                    .mul_scalar(2.0);
                let shift = out.narrow(1, 1, 1);
                cols[a] = cols[a].clone() * s.clone().exp() + shift;
                ldj = ldj + s;
            }
            let [c0, c1] = cols;
            (Tensor::cat(vec![c0, c1], 1), ldj)
        }
    }
}

/// Index of the score net's first dense layer.
fn score_first_layer(arch: &Architecture) -> usize {
    match arch.flow {
        FlowArch::Identity => 0,
        FlowArch::Coupling2d { layers, .. } => 3 * layers,
    }
}

/// `sigma(t) s(z_t, t)` in burn, with time features given per row.
pub fn sigma_score(
    arch: &Architecture,
    p: &BurnParams,
    zt: Tensor<2>,
    feats: Tensor<2>,
) -> Tensor<2> {
    if arch.image.is_some() {
        return crate::image::burn::sigma_score_rows(arch, p, zt, feats);
    }
    let input = Tensor::cat(vec![zt, feats], 1);
    p.mlp(score_first_layer(arch), arch.score.depth + 1, input)
        .mul_scalar(arch.output_sign())
}

/// Per-point NELBO terms `[flow, dsm, prior]` (each `[B, 1]`), constant excluded.
pub fn nelbo_terms(
    arch: &Architecture,
    p: &BurnParams,
    x: Tensor<2>,
    draws: &DiffusionDraws,
    detach_latent: bool,
) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
    let device = x.device();
    let d = arch.data_dim;
    let sde = &arch.sde;
    let (mut z0, ldj) = flow_forward(arch, p, x);
    if detach_latent {
        z0 = z0.detach();
    }
    let m: Vec<f64> = draws.t.iter().map(|&t| sde.mean_coef(t)).collect();
    let s: Vec<f64> = draws.t.iter().map(|&t| sde.std(t)).collect();
    let feats: Vec<f64> = draws
        .t
        .iter()
        .flat_map(|&t| arch.time_features(t))
        .collect();
    let noise = matrix(&draws.noise, d, &device);
    let zt = z0.clone() * column(&m, &device) + noise.clone() * column(&s, &device);
    let ss = sigma_score(
        arch,
        p,
        zt,
        matrix(&feats, arch.time_feature_count(), &device),
    );
    let dsm = (ss + noise)
        .square()
        .sum_dim(1)
        .mul_scalar(0.5 * draws.weight);
    let ps = sde.prior_std();
    let z_end = z0.mul_scalar(sde.mean_coef(T_END))
        + matrix(&draws.prior_noise, d, &device).mul_scalar(sde.std(T_END));
    let prior = z_end
        .square()
        .sum_dim(1)
        .mul_scalar(1.0 / (2.0 * ps * ps))
        .add_scalar(0.5 * d as f64 * (std::f64::consts::TAU * ps * ps).ln());
    (ldj.neg(), dsm, prior)
}

/// Mean over the batch of a `[B, 1]` column, read back to the host.
fn host_mean(t: &Tensor<2>) -> f64 {
    t.clone().mean().into_scalar::<f32>() as f64
}

/// One training step on batch `x` (`B * D` values). Weights change only if
/// every loss term and gradient is finite; otherwise the state is untouched
/// and [`IndmError::NonFinite`] is returned.
pub fn train_step(
    state: &mut TrainState,
    hyper: &TrainHyper,
    x: &[f64],
    device: &Device,
) -> Result<StepMetrics> {
    let arch = state.arch.clone();
    let d = arch.data_dim;
    let n = x.len() / d;
    let div = if hyper.reduce_mean { d as f64 } else { 1.0 };
    let step = state.step;
    let draws = DiffusionDraws::new(
        &arch.sde,
        arch.eps,
        n,
        d,
        hyper.seed,
        step,
        hyper.importance || hyper.step_kind == StepKind::Alternating,
    );
    let bp = BurnParams::new(&state.params, device, true);
    let xt = matrix(x, d, device);
    let (flow, dsm, prior) = nelbo_terms(&arch, &bp, xt.clone(), &draws, false);
    let constant = arch.sde.nelbo_constant(d, arch.eps);
    let mut metrics = StepMetrics {
        flow: host_mean(&flow),
        dsm: host_mean(&dsm),
        prior: host_mean(&prior),
        ..Default::default()
    };
    metrics.nelbo = metrics.flow + metrics.dsm + metrics.prior + constant;
    let check = |what: &str, v: f64| -> Result<()> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(IndmError::NonFinite {
                step,
                detail: format!("{what} = {v}"),
            })
        }
    };
    check("flow term", metrics.flow)?;
    check("score-matching term", metrics.dsm)?;
    check("prior term", metrics.prior)?;
    let loss = (flow + dsm + prior).mean().div_scalar(div);
    let grads = bp.grads(&loss.backward(), &state.params);
    if grads.iter().any(|g| g.iter().any(|v| !v.is_finite())) {
        return Err(IndmError::NonFinite {
            step,
            detail: "a gradient is not finite".into(),
        });
    }
    let mut next = state.params.clone();
    let mut opt_flow = state.opt_flow.clone();
    let mut opt_score = state.opt_score.clone();
    metrics.grad_norm_flow = opt_flow.step(&mut next, &grads);
    match hyper.step_kind {
        StepKind::Joint => {
            metrics.grad_norm_score = opt_score.step(&mut next, &grads);
        }
        StepKind::Alternating => {
            // Score update on detached latents of the updated flow, uniform t, epsilon loss.
            let draws_u = DiffusionDraws::new(
                &arch.sde,
                arch.eps,
                n,
                d,
                hyper.seed ^ 0x5EED_A17E,
                step,
                false,
            );
            let bp2 = BurnParams::new(&next, device, true);
            let (_, dsm_u, _) = nelbo_terms(&arch, &bp2, xt, &draws_u, true);
            let loss_u = dsm_u.mean().div_scalar(div);
            let grads_u = bp2.grads(&loss_u.backward(), &next);
            if grads_u.iter().any(|g| g.iter().any(|v| !v.is_finite())) {
                return Err(IndmError::NonFinite {
                    step,
                    detail: "a score gradient is not finite".into(),
                });
            }
            metrics.grad_norm_score = opt_score.step(&mut next, &grads_u);
        }
    }
    if !next.all_finite() {
        return Err(IndmError::NonFinite {
            step,
            detail: "updated weights are not finite".into(),
        });
    }
    state.params = next;
    state.opt_flow = opt_flow;
    state.opt_score = opt_score;
    state.ema.update(&state.params);
    state.step += 1;
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::FlowArch;
    use crate::flow::Flow2d;
    use crate::rng::{Counter, Stream};
    use crate::score::{LatentScore, ScoreMlp};
    use crate::sde::SdeKind;

    fn device() -> Device {
        Device::flex().autodiff()
    }

    fn coupling_arch() -> Architecture {
        Architecture::default_2d(
            SdeKind::Vp,
            FlowArch::Coupling2d {
                layers: 4,
                hidden: 16,
            },
        )
    }

    /// Parameters with every layer random (the zero-initialised ones too).
    fn random_params(arch: &Architecture, seed: u64) -> ParamSet {
        let mut p = ParamSet::init(arch, seed);
        let c = Counter::new(seed, Stream::Init, 77);
        for (j, prm) in p.params.iter_mut().enumerate() {
            if prm.name.contains(".l2.") {
                for (i, v) in prm.data.iter_mut().enumerate() {
                    *v = (0.3 * c.normal((j * 10_000 + i) as u32)) as f32;
                }
            }
        }
        p
    }

    fn points(n: usize, seed: u64) -> Vec<f64> {
        Counter::new(seed, Stream::TestData, 0)
            .normals(2 * n)
            .into_iter()
            .map(|v| 2.0 * v)
            .collect()
    }

    fn host(t: Tensor<2>) -> Vec<f64> {
        t.into_data().iter::<f32>().map(|v| v as f64).collect()
    }

    fn max_rel(a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
            .fold(0.0, crate::numeric::max_nan)
    }

    #[test]
    fn burn_forward_matches_the_f64_reference() {
        for arch in [
            coupling_arch(),
            Architecture::default_2d(SdeKind::Ve, FlowArch::Identity),
        ] {
            let params = random_params(&arch, 3);
            let dev = device();
            let bp = BurnParams::new(&params, &dev, false);
            let x = points(257, 1);
            let (z, ldj) = flow_forward(&arch, &bp, matrix(&x, 2, &dev));
            let flow = Flow2d::from_params(&arch, &params).unwrap();
            let (z_ref, ldj_ref) = flow.forward(&x);
            assert!(max_rel(&host(z), &z_ref) < 1e-4);
            assert!(max_rel(&host(ldj), &ldj_ref) < 1e-4);
            let score = ScoreMlp::from_params(&arch, &params).unwrap();
            let ts: Vec<f64> = (0..257)
                .map(|i| 1e-3 + (i as f64 / 256.0) * (1.0 - 1e-3))
                .collect();
            let feats: Vec<f64> = ts.iter().flat_map(|&t| arch.time_features(t)).collect();
            let ss = sigma_score(
                &arch,
                &bp,
                matrix(&z_ref, 2, &dev),
                matrix(&feats, arch.time_feature_count(), &dev),
            );
            let ss_ref = score.sigma_score_rows(&z_ref, &ts);
            assert!(max_rel(&host(ss), &ss_ref) < 1e-4);
        }
    }

    #[test]
    fn identity_flow_loss_is_the_plain_linear_diffusion_loss() {
        let arch = Architecture::default_2d(SdeKind::Vp, FlowArch::Identity);
        let hyper = TrainHyper {
            batch: 300,
            seed: 11,
            ..Default::default()
        };
        let mut state = TrainState::new(&arch, &hyper).unwrap();
        let x = points(300, 2);
        // The plain linear-diffusion (DDPM++ with likelihood weighting) loss on the same draws,
        // written without any flow: (Z/2)|sigma s(z_t) + n|^2 - log pi(m(1) x + sigma(1) n_T).
        let draws = DiffusionDraws::new(&arch.sde, arch.eps, 300, 2, 11, 0, true);
        let score = ScoreMlp::from_params(&arch, &state.params).unwrap();
        let (mut dsm, mut prior) = (0.0, 0.0);
        for i in 0..300 {
            let t = draws.t[i];
            let (m, s) = (arch.sde.mean_coef(t), arch.sde.std(t));
            let n = &draws.noise[2 * i..2 * i + 2];
            let zt = [m * x[2 * i] + s * n[0], m * x[2 * i + 1] + s * n[1]];
            let ss = score.sigma_score(&zt, t);
            dsm += 0.5 * draws.weight * ((ss[0] + n[0]).powi(2) + (ss[1] + n[1]).powi(2));
            let (m1, s1) = (arch.sde.mean_coef(1.0), arch.sde.std(1.0));
            let zt1: Vec<f64> = (0..2)
                .map(|k| m1 * x[2 * i + k] + s1 * draws.prior_noise[2 * i + k])
                .collect();
            prior -= arch.sde.prior_logp(&zt1);
        }
        let m = train_step(&mut state, &hyper, &x, &device()).unwrap();
        assert_eq!(m.flow, 0.0);
        assert!(
            ((m.dsm - dsm / 300.0) / (dsm / 300.0)).abs() < 1e-5,
            "{} vs {}",
            m.dsm,
            dsm / 300.0
        );
        assert!(((m.prior - prior / 300.0) / (prior / 300.0)).abs() < 1e-5);
    }

    #[test]
    fn a_joint_step_updates_flow_and_score_and_is_deterministic() {
        let arch = coupling_arch();
        let hyper = TrainHyper {
            batch: 64,
            seed: 5,
            ..Default::default()
        };
        let s0 = TrainState::new(&arch, &hyper).unwrap();
        let x = points(64, 3);
        let (mut a, mut b) = (s0.clone(), s0.clone());
        train_step(&mut a, &hyper, &x, &device()).unwrap();
        train_step(&mut b, &hyper, &x, &device()).unwrap();
        assert_eq!(a, b, "same inputs, same step");
        let changed = |prefix: &str| {
            a.params
                .params
                .iter()
                .zip(&s0.params.params)
                .filter(|(p, _)| p.name.starts_with(prefix))
                .any(|(p, q)| p.data != q.data)
        };
        assert!(
            changed("flow.3.l2"),
            "gradient reaches the zero-initialised flow layer"
        );
        assert!(changed("score."));
        assert_eq!(a.step, 1);
    }

    #[test]
    fn the_alternating_step_updates_both_models() {
        let arch = coupling_arch();
        let hyper = TrainHyper {
            batch: 64,
            seed: 5,
            step_kind: StepKind::Alternating,
            ..Default::default()
        };
        let s0 = TrainState::new(&arch, &hyper).unwrap();
        let mut a = s0.clone();
        train_step(&mut a, &hyper, &points(64, 4), &device()).unwrap();
        assert_ne!(
            a.params.get("flow.0.l2.weight"),
            s0.params.get("flow.0.l2.weight")
        );
        assert_ne!(
            a.params.get("score.l0.weight"),
            s0.params.get("score.l0.weight")
        );
        assert_eq!(a.opt_flow.t, 1);
        assert_eq!(a.opt_score.t, 1);
    }

    #[test]
    fn a_non_finite_batch_is_refused_and_leaves_the_state_untouched() {
        let arch = coupling_arch();
        let hyper = TrainHyper {
            batch: 16,
            ..Default::default()
        };
        let s0 = TrainState::new(&arch, &hyper).unwrap();
        let mut a = s0.clone();
        let mut x = points(16, 1);
        x[5] = f64::NAN;
        let e = train_step(&mut a, &hyper, &x, &device()).unwrap_err();
        assert!(matches!(e, IndmError::NonFinite { step: 0, .. }), "{e}");
        assert_eq!(a, s0);
    }
}
