//! Translation between two models' domains, in the flows' latent spaces.
//!
//! - **Latent SDEdit** (one model, of the target domain): `z = h_B(x)`, noise it to
//!   `t0` with the linear SDE's transition, run the target's reverse process from `t0`,
//!   decode with `h_B^{-1}`. Larger `t0` keeps less of the source.
//! - **Latent DDIB** (a model per domain): encode with the source's PF-ODE from `eps`
//!   to `T` (`z_T` is a deterministic code of `x`), decode with the target's PF-ODE
//!   from `T` to `eps`, then `h_B^{-1}`. Deterministic and (up to discretisation)
//!   reversible: translating back recovers the source.
//!
//! These are the `f64` CPU versions on the [`plan`](super::plan) executor; the GPU runs
//! the same plans.

use super::SamplerConfig;
use super::plan::{self, Plan, Start};
use crate::error::Result;
use crate::model::CpuModel;
use crate::score::LatentScore;

/// The network closure `net(z, t)` (raw output) of a CPU model.
fn net(model: &CpuModel) -> impl Fn(&[f64], f64) -> Vec<f64> + '_ {
    let sign = model.arch.output_sign();
    move |z: &[f64], t: f64| {
        model
            .score
            .sigma_score(z, t)
            .into_iter()
            .map(|v| v * sign)
            .collect()
    }
}

/// Runs `plan` on the latents `z` with `model`'s score.
pub fn run_plan(model: &CpuModel, plan: &Plan, z: &mut [f64]) {
    plan::execute_cpu(plan, model.arch.data_dim, z, &net(model), |_, _| {});
}

/// The SDEdit plan: perturb to `t0`, then the target's reverse sampler.
pub fn sdedit_plan(target: &CpuModel, t0: f64, cfg: &SamplerConfig) -> Result<Plan> {
    plan::reverse(&target.arch, cfg, Start::Perturb { t0 })
}

/// Latent SDEdit of the points `x` into the target model's domain.
pub fn sdedit(target: &CpuModel, x: &[f64], t0: f64, cfg: &SamplerConfig) -> Result<Vec<f64>> {
    let plan = sdedit_plan(target, t0, cfg)?;
    let (mut z, _) = target.flow.forward(x);
    run_plan(target, &plan, &mut z);
    Ok(target.flow.inverse(&z))
}

/// The two DDIB plans (encode with the source, decode with the target). `cfg.kind` must
/// be `ode-euler` or `ode-heun`; the decoding half never denoises or changes temperature.
pub fn ddib_plans(
    source: &CpuModel,
    target: &CpuModel,
    cfg: &SamplerConfig,
) -> Result<(Plan, Plan)> {
    let enc = plan::encode(&source.arch, cfg)?;
    let dec_cfg = SamplerConfig {
        denoise: false,
        temperature: 1.0,
        ..cfg.clone()
    };
    let dec = plan::reverse(&target.arch, &dec_cfg, Start::Given)?;
    Ok((enc, dec))
}

/// Latent DDIB of the points `x` from the source model's domain to the target's.
pub fn ddib(
    source: &CpuModel,
    target: &CpuModel,
    x: &[f64],
    cfg: &SamplerConfig,
) -> Result<Vec<f64>> {
    let (enc, dec) = ddib_plans(source, target, cfg)?;
    let (mut z, _) = source.flow.forward(x);
    run_plan(source, &enc, &mut z);
    run_plan(target, &dec, &mut z);
    Ok(target.flow.inverse(&z))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{Architecture, FlowArch};
    use crate::params::ParamSet;
    use crate::sample::SamplerKind;
    use crate::sde::SdeKind;

    fn model(seed: u64) -> CpuModel {
        let arch = Architecture::default_2d(
            SdeKind::Vp,
            FlowArch::Coupling2d {
                layers: 4,
                hidden: 16,
            },
        );
        let mut p = ParamSet::init(&arch, seed);
        // Make the flow non-trivial (its last layers start at zero).
        for prm in p.params.iter_mut().filter(|p| p.name.contains(".l2.")) {
            prm.data
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = 0.05 * ((i as f32) * 0.7).sin());
        }
        CpuModel::new(&arch, &p).unwrap()
    }

    /// DDIB with the same model both ways and a fine Heun grid returns the source:
    /// encoding and decoding are the same ODE in opposite directions.
    #[test]
    fn ddib_round_trip_with_one_model_is_the_identity() {
        let m = model(3);
        let x: Vec<f64> = (0..40)
            .map(|i| ((i * 37 % 17) as f64 - 8.0) / 4.0)
            .collect();
        let cfg = SamplerConfig {
            kind: SamplerKind::OdeHeun,
            steps: 400,
            ..Default::default()
        };
        let y = ddib(&m, &m, &x, &cfg).unwrap();
        let err = crate::numeric::max_abs_diff(&x, &y);
        assert!(err < 1e-3, "round trip error {err}");
    }

    /// SDEdit with t0 near eps barely changes the input; with t0 = T it forgets it.
    #[test]
    fn sdedit_strength_controls_how_much_is_kept() {
        let m = model(4);
        let x: Vec<f64> = (0..200)
            .map(|i| ((i * 13 % 29) as f64 - 14.0) / 5.0)
            .collect();
        let cfg = SamplerConfig {
            steps: 50,
            seed: 2,
            ..Default::default()
        };
        let dist =
            |y: &[f64]| x.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / x.len() as f64;
        let near = dist(&sdedit(&m, &x, 0.01, &cfg).unwrap());
        let far = dist(&sdedit(&m, &x, 1.0, &cfg).unwrap());
        assert!(near < 0.05, "t0 = 0.01 moved points by {near}");
        assert!(far > 10.0 * near, "t0 = 1 ({far}) vs 0.01 ({near})");
    }
}
