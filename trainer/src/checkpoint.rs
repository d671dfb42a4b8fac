//! Checkpoints: the whole training state (weights, both AdamW states, EMA,
//! step) in one safetensors file, written atomically with a checksum, so a
//! resumed run continues exactly where the last good checkpoint left it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use indm::optim::{AdamW, Ema};
use indm::params::{Param, ParamSet};
use indm::train::{TrainHyper, TrainState};
use indm::weights::{META_ARCH, META_FORMAT, TensorFile, architecture_of};
use serde::{Deserialize, Serialize};

/// Format tag of checkpoints.
pub const FORMAT_CHECKPOINT: &str = "indm-checkpoint/1";
const META_TRAIN: &str = "indm.train";

#[derive(Serialize, Deserialize)]
struct TrainMeta {
    step: u64,
    opt_flow_t: u64,
    opt_score_t: u64,
    ema_updates: u64,
    hyper: TrainHyper,
    #[serde(default)]
    train_seconds: f64,
}

fn prefixed(prefix: &str, params: &[Param]) -> Vec<Param> {
    params
        .iter()
        .map(|p| Param {
            name: format!("{prefix}{}", p.name),
            ..p.clone()
        })
        .collect()
}

fn moments(
    prefix: &str,
    opt: &AdamW,
    params: &ParamSet,
    which: fn(&AdamW) -> &Vec<Vec<f32>>,
) -> Vec<Param> {
    params
        .params
        .iter()
        .filter(|p| p.name.starts_with(&opt.prefix))
        .zip(which(opt))
        .map(|(p, m)| Param {
            name: format!("{prefix}{}", p.name),
            shape: p.shape.clone(),
            data: m.clone(),
        })
        .collect()
}

/// Writes `state` to `path` atomically.
/// `train_seconds` is the wall time spent training so far (kept across resumes).
pub fn save(path: &Path, state: &TrainState, hyper: &TrainHyper, train_seconds: f64) -> Result<()> {
    let mut tensors = state.params.params.clone();
    tensors.extend(prefixed("ema.", &state.ema.params.params));
    tensors.extend(moments("opt.m.", &state.opt_flow, &state.params, |o| &o.m));
    tensors.extend(moments("opt.v.", &state.opt_flow, &state.params, |o| &o.v));
    tensors.extend(moments("opt.m.", &state.opt_score, &state.params, |o| &o.m));
    tensors.extend(moments("opt.v.", &state.opt_score, &state.params, |o| &o.v));
    let mut metadata = BTreeMap::new();
    metadata.insert(META_FORMAT.to_string(), FORMAT_CHECKPOINT.to_string());
    metadata.insert(META_ARCH.to_string(), serde_json::to_string(&state.arch)?);
    let meta = TrainMeta {
        step: state.step,
        opt_flow_t: state.opt_flow.t,
        opt_score_t: state.opt_score.t,
        ema_updates: state.ema.updates,
        hyper: hyper.clone(),
        train_seconds,
    };
    metadata.insert(META_TRAIN.to_string(), serde_json::to_string(&meta)?);
    TensorFile { tensors, metadata }
        .write_atomic(path)
        .with_context(|| format!("writing checkpoint {}", path.display()))
}

/// Reads a checkpoint: the state, its hyper-parameters and the training time so far.
pub fn load(path: &Path) -> Result<(TrainState, TrainHyper, f64)> {
    let file = TensorFile::read(path)?;
    let origin = path.display().to_string();
    if file.metadata.get(META_FORMAT).map(String::as_str) != Some(FORMAT_CHECKPOINT) {
        bail!("{origin} is not an indm checkpoint (format tag '{FORMAT_CHECKPOINT}' missing)");
    }
    let arch = architecture_of(&file, &origin)?;
    let meta: TrainMeta = serde_json::from_str(
        file.metadata
            .get(META_TRAIN)
            .with_context(|| format!("{origin}: no training record in the checkpoint"))?,
    )
    .with_context(|| format!("{origin}: training record is not valid"))?;
    let take = |prefix: &str, name: &str| -> Result<Param> {
        let full = format!("{prefix}{name}");
        let t = file
            .get(&full)
            .with_context(|| format!("{origin}: tensor '{full}' is missing"))?;
        Ok(Param {
            name: name.to_string(),
            ..t.clone()
        })
    };
    let specs = arch.param_specs();
    let params = ParamSet {
        params: specs
            .iter()
            .map(|s| take("", &s.name))
            .collect::<Result<_>>()?,
    };
    params.check_against(&arch)?;
    let ema = ParamSet {
        params: specs
            .iter()
            .map(|s| take("ema.", &s.name))
            .collect::<Result<_>>()?,
    };
    ema.check_against(&arch)?;
    let mut opt_flow = AdamW::new(meta.hyper.flow_opt, "flow.", &params);
    let mut opt_score = AdamW::new(meta.hyper.score_opt, "score.", &params);
    for opt in [&mut opt_flow, &mut opt_score] {
        let owned: Vec<&str> = specs
            .iter()
            .filter(|s| s.name.starts_with(&opt.prefix))
            .map(|s| s.name.as_str())
            .collect();
        opt.m = owned
            .iter()
            .map(|n| take("opt.m.", n).map(|p| p.data))
            .collect::<Result<_>>()?;
        opt.v = owned
            .iter()
            .map(|n| take("opt.v.", n).map(|p| p.data))
            .collect::<Result<_>>()?;
    }
    opt_flow.t = meta.opt_flow_t;
    opt_score.t = meta.opt_score_t;
    let state = TrainState {
        arch,
        params,
        opt_flow,
        opt_score,
        ema: Ema {
            decay: meta.hyper.ema_decay,
            updates: meta.ema_updates,
            params: ema,
        },
        step: meta.step,
    };
    Ok((state, meta.hyper, meta.train_seconds))
}
