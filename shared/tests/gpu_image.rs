//! The GPU image model (`indm::gpu::GpuImageModel`) against its references, on whatever
//! adapter wgpu finds (in CI: Mesa's lavapipe), with small random weights (3x8x8
//! images, a 2-level Glow-lite flow, a 2-resolution U-Net):
//!
//! - encode (flow forward with its log-determinant), decode (inverse) and the score net
//!   equal the `f64` reference (`indm::image::reference`) within 1e-4 relative
//!   (`max |got - want| / (1 + |want|)`);
//! - one step of each plan shape (EM with noise, PF-ODE Euler, Heun) equals the CPU plan
//!   executor driven by the `f64` network (1e-4 relative): the noise is drawn with the
//!   same (seed, stream, step, index) keys;
//! - whole latent SDEdit and DDIB runs equal the native burn runs
//!   (`indm::image::sample`) for the same seed within 1e-3;
//! - bad weights give typed errors naming the tensor and both shapes, and the
//!   predictor-corrector sampler is refused before anything runs.
//!
//! Without an adapter these tests print `SKIPPED` and pass, unless
//! `INDM_REQUIRE_GPU=1` (set by `scripts/test.sh`), which makes a missing adapter fail.
#![cfg(all(feature = "gpu", feature = "train"))]

mod common;

use std::collections::BTreeMap;

use burn::tensor::Device;
use common::context;
use indm::IndmError;
use indm::arch::{Architecture, ImageFlowArch, UNetArch};
use indm::gpu::image_model;
use indm::gpu::{GpuContext, GpuImageModel, ImagePlanRun};
use indm::image::model::ImageModel;
use indm::image::reference::{GlowRef, Images, unet_forward};
use indm::params::ParamSet;
use indm::rng::{Counter, Stream};
use indm::sample::plan::{self, Plan, Start};
use indm::sample::{SamplerConfig, SamplerKind};
use indm::sde::SdeKind;
use indm::weights::model_file;

/// 3x8x8 images, 2 squeeze levels (12x4x4, 48x2x2) of 2 steps, a U-Net of width 8 at
/// 8x8 and 4x4.
fn arch() -> Architecture {
    Architecture::image(
        3,
        8,
        8,
        SdeKind::Vp,
        ImageFlowArch::Glow {
            levels: 2,
            steps: 2,
            hidden: 8,
        },
        UNetArch {
            channels: 8,
            mult: vec![1, 2],
            res_blocks: 1,
            groups: 2,
            fourier: 2,
            temb: 16,
        },
    )
}

/// Every tensor random (the zero- and one-initialised ones too), scaled so the score is
/// moderate and the flow far from the identity but well conditioned.
fn params(arch: &Architecture, seed: u64) -> ParamSet {
    let mut p = ParamSet::init(arch, seed);
    for (j, prm) in p.params.iter_mut().enumerate() {
        let c = Counter::new(seed, Stream::Init, 1000 + j as u64);
        let scale = if prm.name.contains("logs") {
            0.05
        } else if prm.name.contains(".inv.") {
            0.25 / (prm.shape[0] as f64).sqrt()
        } else if prm.name.ends_with("gamma") {
            0.2
        } else if prm.name.contains("conv_out") || prm.name.contains(".cp.c2.") {
            0.03
        } else {
            0.3
        };
        let offset = if prm.name.ends_with("gamma") {
            1.0
        } else {
            0.0
        };
        for (i, v) in prm.data.iter_mut().enumerate() {
            if prm.name.contains(".c2.")
                || prm.name.contains("conv_out")
                || !prm.name.ends_with("weight")
            {
                *v = (offset + scale * c.normal(i as u32)) as f32;
            }
        }
    }
    p
}

fn images(n: usize, seed: u64) -> Images {
    let shape = [n, 3, 8, 8];
    let len = shape.iter().product();
    Images::new(Counter::new(seed, Stream::TestData, 0).normals(len), shape)
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// `max |got - want| / (1 + |want|)`.
fn max_rel(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()))
        .fold(0.0, f64::max)
}

fn check(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert!(
        got.iter().all(|v| v.is_finite()),
        "{what}: non-finite values"
    );
    let err = max_rel(got, want);
    eprintln!("{what}: max rel err {err:.3e}");
    assert!(err < tol, "{what}: max rel err {err:e} >= {tol:e}");
}

/// The `f64` reference network at time `t` for every image.
fn ref_net(arch: &Architecture, p: &ParamSet, z: &[f64], t: f64) -> Vec<f64> {
    let d = arch.data_dim;
    let n = z.len() / d;
    let feats = vec![arch.time_features(t); n];
    unet_forward(arch, p, &Images::new(z.to_vec(), [n, 3, 8, 8]), &feats)
        .unwrap()
        .data
}

#[test]
fn flow_and_score_net_match_the_f64_reference() {
    let Some(ctx) = context() else { return };
    let a = arch();
    let p = params(&a, 3);
    let model = GpuImageModel::new(&ctx, &a, &p).unwrap();
    let glow = GlowRef::new(&a, &p).unwrap();
    let x = images(3, 7);
    let (z_ref, ld_ref) = glow.forward(&x).unwrap();
    let (z, ld) = pollster::block_on(model.encode(&ctx, &f32s(&x.data))).unwrap();
    check("encode z", &f64s(&z), &z_ref.data, 1e-4);
    // The log-determinant sums ~200 terms: compare relative to its size.
    let ld_err = ld
        .iter()
        .zip(&ld_ref)
        .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()))
        .fold(0.0, f64::max);
    eprintln!("encode log-det: max rel err {ld_err:.3e} ({ld:?} vs {ld_ref:?})");
    assert!(ld_err < 1e-4, "log-det {ld:?} vs {ld_ref:?}");
    // The flow is far from the identity, so the test means something.
    let moved = max_rel(&z_ref.data, &x.data);
    assert!(
        moved > 0.05,
        "the random flow is nearly the identity ({moved})"
    );
    let back = pollster::block_on(model.decode(&ctx, &z)).unwrap();
    let x_ref = glow.inverse(&Images::new(f64s(&z), x.shape)).unwrap();
    check("decode x", &f64s(&back), &x_ref.data, 1e-4);
    check("encode then decode", &f64s(&back), &x.data, 1e-4);
    for t in [1e-3, 0.3, 1.0] {
        let net = pollster::block_on(model.net(&ctx, &f32s(&z_ref.data), t)).unwrap();
        check(
            &format!("U-Net at t = {t}"),
            &f64s(&net),
            &ref_net(&a, &p, &z_ref.data, t),
            1e-4,
        );
    }
}

/// Runs `plan` on the GPU from `z0` and returns the final latents.
fn gpu_plan(ctx: &GpuContext, m: &GpuImageModel, plan: Plan, z0: &[f64]) -> Vec<f64> {
    let zt = m.upload_batch(ctx, "latents", &f32s(z0)).unwrap();
    let mut run = ImagePlanRun::new(m, plan, zt).unwrap();
    run.run_to_end(ctx, m, 4).unwrap();
    f64s(&pollster::block_on(run.z().read(ctx)).unwrap())
}

#[test]
fn every_step_shape_matches_the_cpu_plan_executor() {
    let Some(ctx) = context() else { return };
    let a = arch();
    let p = params(&a, 5);
    let m = GpuImageModel::new(&ctx, &a, &p).unwrap();
    let z0 = images(2, 11).data;
    for kind in [SamplerKind::Em, SamplerKind::OdeEuler, SamplerKind::OdeHeun] {
        let cfg = SamplerConfig {
            kind,
            steps: 3,
            seed: 9,
            ..Default::default()
        };
        // The SDEdit start (noise of stream Translate) then three steps and the denoiser.
        let plan = plan::reverse(&a, &cfg, Start::Perturb { t0: 0.6 }).unwrap();
        let got = gpu_plan(&ctx, &m, plan.clone(), &z0);
        let mut want = z0.clone();
        plan::execute_cpu(
            &plan,
            a.data_dim,
            &mut want,
            &|z, t| ref_net(&a, &p, z, t),
            |_, _| {},
        );
        check(&format!("{} plan", kind.name()), &got, &want, 1e-4);
    }
}

fn scaled_model(seed: u64) -> (Architecture, ParamSet) {
    let a = arch();
    (a.clone(), params(&a, seed))
}

#[test]
fn whole_translations_match_the_native_runs() {
    let Some(ctx) = context() else { return };
    let (a, pa) = scaled_model(1);
    let (b, pb) = scaled_model(2);
    let ga = GpuImageModel::new(&ctx, &a, &pa).unwrap();
    let gb = GpuImageModel::new(&ctx, &b, &pb).unwrap();
    let dev = Device::flex().autodiff();
    let na = ImageModel::new(&a, &pa, &dev).unwrap();
    let nb = ImageModel::new(&b, &pb, &dev).unwrap();
    let x = images(2, 21).data;
    let cfg = SamplerConfig {
        steps: 20,
        seed: 4,
        ..Default::default()
    };
    let got = pollster::block_on(image_model::sdedit(&ctx, &gb, &f32s(&x), 0.5, &cfg)).unwrap();
    let want = indm::image::sample::sdedit(&nb, &x, 0.5, &cfg).unwrap();
    let err = indm::numeric::max_abs_diff(&f64s(&got), &want);
    eprintln!("SDEdit (EM, 20 steps, t0 = 0.5): GPU vs native max abs diff {err:.3e}");
    assert!(err < 1e-3, "SDEdit differs by {err:e}");
    assert!(
        indm::numeric::max_abs_diff(&want, &x) > 0.05,
        "SDEdit changed the images"
    );
    for kind in [SamplerKind::OdeEuler, SamplerKind::OdeHeun] {
        let cfg = SamplerConfig {
            kind,
            steps: 10,
            denoise: false,
            ..Default::default()
        };
        let got = pollster::block_on(image_model::ddib(&ctx, &ga, &gb, &f32s(&x), &cfg)).unwrap();
        let want = indm::image::sample::ddib(&na, &nb, &x, &cfg).unwrap();
        let err = indm::numeric::max_abs_diff(&f64s(&got), &want);
        eprintln!(
            "DDIB ({}, 10 steps): GPU vs native max abs diff {err:.3e}",
            kind.name()
        );
        assert!(err < 1e-3, "DDIB differs by {err:e}");
    }
}

#[test]
fn bad_weights_and_requests_give_typed_errors() {
    let Some(ctx) = context() else { return };
    let a = arch();
    let p = params(&a, 1);
    let mut file = model_file(&a, &p, &BTreeMap::new()).unwrap();
    let good = file.to_bytes().unwrap();
    let m = GpuImageModel::from_bytes(&ctx, &good, "good.safetensors").unwrap();
    let name = "score.down.1.0.c1.weight";
    let t = file.tensors.iter_mut().find(|t| t.name == name).unwrap();
    let old = t.shape.clone();
    t.shape[1] += 1;
    t.data.resize(t.shape.iter().product(), 0.0);
    let new = t.shape.clone();
    let bytes = file.to_bytes().unwrap();
    let e = GpuImageModel::from_bytes(&ctx, &bytes, "bad.safetensors").unwrap_err();
    match &e {
        IndmError::ShapeMismatch {
            tensor,
            expected,
            found,
        } => {
            assert_eq!(tensor, name);
            assert_eq!(expected, &old);
            assert_eq!(found, &new);
        }
        other => panic!("expected a shape mismatch, got {other}"),
    }
    let msg = e.to_string();
    assert!(msg.contains(name), "{msg}");
    // A 2D model is not an image model; garbage is not a weights file.
    let two_d = Architecture::default_2d(SdeKind::Vp, indm::arch::FlowArch::Identity);
    assert!(GpuImageModel::new(&ctx, &two_d, &ParamSet::init(&two_d, 0)).is_err());
    let msg = GpuImageModel::from_bytes(&ctx, b"junk", "junk.bin")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("junk.bin"), "{msg}");
    // Wrong batch sizes and the PC sampler are refused before any dispatch.
    let msg = pollster::block_on(m.encode(&ctx, &[0.0; 5]))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("192"), "{msg}");
    let pc = SamplerConfig {
        kind: SamplerKind::Pc,
        steps: 25,
        ..Default::default()
    };
    let plan = plan::reverse(&a, &pc, Start::Prior).unwrap();
    let z = m.upload_batch(&ctx, "latents", &[0.0; 192]).unwrap();
    let msg = ImagePlanRun::new(&m, plan, z).unwrap_err().to_string();
    assert!(msg.contains("pc"), "{msg}");
    // The device still works.
    assert!(pollster::block_on(m.net(&ctx, &[0.1; 192], 0.5)).is_ok());
}
