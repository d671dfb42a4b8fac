//! The WGSL runtime against its references, on whatever adapter wgpu finds (in CI:
//! Mesa's lavapipe, a software Vulkan driver installed by `scripts/setup.sh`).
//!
//! - the WGSL generator equals [`indm::rng`] bit for bit;
//! - each kernel (flow forward / inverse, score net) equals burn within 1e-4 relative,
//!   for every kernel layout (particles per invocation, uniform or storage weights);
//! - each whole sampler step (EM, PC, PF-ODE Euler / Heun; VP, sub-VP, VE) equals the
//!   plan executor driven by burn's network, from the same state, within 1e-4 relative;
//! - complete runs and translations end where the native `f64` samplers end (1e-3);
//! - bad weights, requests beyond the adapter's limits and a missing adapter give
//!   typed errors, and the device keeps working after a refused request.
//!
//! Without an adapter these tests print `SKIPPED` and pass, unless
//! `INDM_REQUIRE_GPU=1` (set by `scripts/test.sh`), which makes a missing adapter fail.
#![cfg(all(feature = "gpu", feature = "train"))]

mod common;

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};
use common::context;
use indm::IndmError;
use indm::arch::{Architecture, FlowArch};
use indm::data::Toy2d;
use indm::gpu::{GpuContext, GpuModel2d, KernelOptions, PlanRun, WeightPlacement};
use indm::model::CpuModel;
use indm::params::ParamSet;
use indm::rng::{Counter, Stream, bits_to_unit};
use indm::sample::plan::{self, Op, Plan, PlannedStep, Start};
use indm::sample::{SamplerConfig, SamplerKind, sample_model, translate};
use indm::sde::SdeKind;
use indm::train::{BurnParams, TrainHyper, TrainState, flow_forward, sigma_score, train_step};
use indm::weights::model_file;

fn arch(sde: SdeKind, flow: bool) -> Architecture {
    let flow = if flow {
        FlowArch::Coupling2d {
            layers: 4,
            hidden: 16,
        }
    } else {
        FlowArch::Identity
    };
    let mut a = Architecture::default_2d(sde, flow);
    a.score.hidden = 32;
    a.score.depth = 2;
    a
}

/// Default initialisation with the zero-initialised layers made random too (scale
/// `scale`), so that every weight matters.
fn params(arch: &Architecture, seed: u64, scale: f64) -> ParamSet {
    let mut p = ParamSet::init(arch, seed);
    let c = Counter::new(seed, Stream::TestData, 99);
    for (j, (prm, spec)) in p.params.iter_mut().zip(arch.param_specs()).enumerate() {
        if spec.zero_init {
            for (i, v) in prm.data.iter_mut().enumerate() {
                *v = (scale * c.normal((j * 100_000 + i) as u32)) as f32;
            }
        }
    }
    p
}

/// A briefly trained model (a random network's reverse dynamics can expand errors by
/// orders of magnitude; a learned score contracts them, as a real model does).
fn trained(arch: &Architecture, data: Toy2d, seed: u64) -> ParamSet {
    let hyper = TrainHyper {
        batch: 256,
        seed,
        ..Default::default()
    };
    let mut state = TrainState::new(arch, &hyper).unwrap();
    let device = Device::flex().autodiff();
    for step in 0..300 {
        let x = data.sample(hyper.batch, seed, step, Stream::Data);
        train_step(&mut state, &hyper, &x, &device).unwrap();
    }
    state.params
}

fn points(n: usize, seed: u64, std: f64) -> Vec<f64> {
    Counter::new(seed, Stream::TestData, 1)
        .normals(2 * n)
        .into_iter()
        .map(|v| std * v)
        .collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// `max |got - want| / (1 + |want|)`; infinite if anything is not finite.
fn max_rel(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    if !got.iter().chain(want).all(|v| v.is_finite()) {
        return f64::INFINITY;
    }
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()))
        .fold(0.0, f64::max)
}

/// `max |got - want|`; infinite if anything is not finite.
fn max_abs(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    if !got.iter().chain(want).all(|v| v.is_finite()) {
        return f64::INFINITY;
    }
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f64::max)
}

/// burn on the flex CPU backend: the training code's own forward passes.
struct BurnRef {
    arch: Architecture,
    p: BurnParams,
    device: Device,
}

impl BurnRef {
    fn new(arch: &Architecture, params: &ParamSet) -> Self {
        let device = Device::flex();
        BurnRef {
            arch: arch.clone(),
            p: BurnParams::new(params, &device, false),
            device,
        }
    }

    fn tensor(&self, v: &[f64], cols: usize) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(f32s(v), [v.len() / cols, cols]),
            &self.device,
        )
    }

    fn host(t: Tensor<2>) -> Vec<f64> {
        t.into_data().iter::<f32>().map(|v| v as f64).collect()
    }

    fn flow(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (z, ld) = flow_forward(&self.arch, &self.p, self.tensor(x, 2));
        (Self::host(z), Self::host(ld))
    }

    /// The raw network output (before `sign / sigma`), as the plan executor takes it.
    fn net(&self, z: &[f64], t: f64) -> Vec<f64> {
        let n = z.len() / 2;
        let feats: Vec<f64> = (0..n).flat_map(|_| self.arch.time_features(t)).collect();
        let out = sigma_score(
            &self.arch,
            &self.p,
            self.tensor(z, 2),
            self.tensor(&feats, self.arch.score.time_features()),
        );
        let sign = self.arch.output_sign();
        Self::host(out).into_iter().map(|v| v * sign).collect()
    }
}

/// Runs `plan` on the GPU from `start` and reads back every recorded state.
fn gpu_trajectory(
    ctx: &GpuContext,
    model: &GpuModel2d,
    plan: Plan,
    start: &[f64],
) -> Vec<Vec<f64>> {
    let n = (start.len() / 2) as u32;
    let slots = plan.recorded();
    let buf = ctx.storage_f32("start", &f32s(start)).unwrap();
    let mut run = PlanRun::new(ctx, model, plan, n, Some(&buf)).unwrap();
    run.run_to_end(ctx).unwrap();
    let all = pollster::block_on(ctx.read_f32(run.trajectory(), slots * 2 * n as usize)).unwrap();
    all.chunks(2 * n as usize).map(f64s).collect()
}

#[test]
fn wgsl_and_rust_generators_agree_bit_for_bit() {
    let Some(ctx) = context() else { return };
    let n = 20_000u32;
    for (seed, stream, step) in [
        (0u64, Stream::SamplePrior, 0u64),
        (42, Stream::SampleStep, 7),
        (u64::MAX, Stream::Translate, 123_456_789),
    ] {
        let c = Counter::new(seed, stream, step);
        let (bits, unif, norm) = pollster::block_on(indm::gpu::rng::draws(&ctx, c, n)).unwrap();
        for i in 0..n {
            assert_eq!(bits[i as usize], c.bits(i), "raw word {i} of {c:?}");
            assert_eq!(
                unif[i as usize].to_bits(),
                bits_to_unit(c.bits(i)).to_bits(),
                "uniform {i}"
            );
        }
        // Normals go through f32 log / cos on the device: equal to f32 rounding.
        let want = c.normals(n as usize);
        let err = max_abs(&f64s(&norm), &want);
        assert!(err < 2e-5, "normals differ by {err:e}");
    }
}

#[test]
fn flow_kernels_match_burn() {
    let Some(ctx) = context() else { return };
    let a = arch(SdeKind::Vp, true);
    let p = params(&a, 3, 0.3);
    let model = GpuModel2d::new(&ctx, &a, &p).unwrap();
    let reference = BurnRef::new(&a, &p);
    let cpu = CpuModel::new(&a, &p).unwrap();
    let x = points(3000, 5, 2.0);
    let (z, ld) = pollster::block_on(model.flow_forward(&ctx, &f32s(&x))).unwrap();
    let (bz, bld) = reference.flow(&x);
    eprintln!(
        "flow fwd {:e} ld {:e}",
        max_rel(&f64s(&z), &bz),
        max_rel(&f64s(&ld), &bld)
    );
    assert!(
        max_rel(&f64s(&z), &bz) < 1e-4,
        "forward: {:e}",
        max_rel(&f64s(&z), &bz)
    );
    assert!(
        max_rel(&f64s(&ld), &bld) < 1e-4,
        "log-det: {:e}",
        max_rel(&f64s(&ld), &bld)
    );
    // The inverse has no burn counterpart: check it against the f64 flow and as a round trip.
    let back = pollster::block_on(model.flow_inverse(&ctx, &z)).unwrap();
    let want = cpu.flow.inverse(&f64s(&z));
    assert!(
        max_rel(&f64s(&back), &want) < 1e-4,
        "inverse: {:e}",
        max_rel(&f64s(&back), &want)
    );
    assert!(
        max_rel(&f64s(&back), &x) < 1e-4,
        "round trip: {:e}",
        max_rel(&f64s(&back), &x)
    );
}

/// A one-step plan whose update (a = 0, b = 1, c = 0) is the bare network at time `t`.
fn bare_network(t: f64) -> Plan {
    Plan {
        steps: vec![PlannedStep {
            ops: vec![Op::Linear {
                t,
                a: 0.0,
                b: 1.0,
                c: 0.0,
                noise: None,
            }],
            t_after: t,
            record: true,
        }],
        seed: 0,
    }
}

#[test]
fn score_kernel_matches_burn() {
    let Some(ctx) = context() else { return };
    for (sde, flow) in [(SdeKind::Vp, true), (SdeKind::Ve, false)] {
        let a = arch(sde, flow);
        let p = params(&a, 11, 0.3);
        let model = GpuModel2d::new(&ctx, &a, &p).unwrap();
        let reference = BurnRef::new(&a, &p);
        let z = points(1000, 13, 1.5);
        for t in [a.eps, 0.1, 0.5, 1.0] {
            let got = &gpu_trajectory(&ctx, &model, bare_network(t), &z)[0];
            let want = reference.net(&z, t);
            let err = max_rel(got, &want);
            eprintln!("{sde:?} t={t}: score rel err {err:e}");
            assert!(err < 1e-4, "{sde:?} t={t}: score differs by {err:e}");
        }
    }
}

/// Every layout of the score kernels computes the same network: 1 to 4 particles per
/// invocation (with a particle count that is no multiple of it), uniform or storage
/// weights, a width that is no multiple of four and two hidden layers (two template
/// instances); and a width of 132, whose hidden layers exceed a 64 KiB uniform binding
/// (mixed placement on such adapters, e.g. lavapipe).
#[test]
fn every_kernel_layout_matches_burn() {
    let Some(ctx) = context() else { return };
    let mut a = arch(SdeKind::Vp, false);
    a.score.hidden = 30;
    a.score.depth = 3;
    let p = params(&a, 12, 0.3);
    let reference = BurnRef::new(&a, &p);
    let z = points(1001, 14, 1.5);
    let t = 0.3;
    let want = reference.net(&z, t);
    for (pp, weights) in [
        (1, WeightPlacement::Auto),
        (3, WeightPlacement::Auto),
        (4, WeightPlacement::Auto),
        (2, WeightPlacement::Storage),
        (4, WeightPlacement::Storage),
    ] {
        let opts = KernelOptions {
            particles_per_invocation: Some(pp),
            weights,
        };
        let model = GpuModel2d::with_options(&ctx, &a, &p, &opts).unwrap();
        assert_eq!(model.layout.pp, pp);
        let got = &gpu_trajectory(&ctx, &model, bare_network(t), &z)[0];
        let err = max_rel(got, &want);
        eprintln!("{:?}: score rel err {err:e}", model.layout);
        assert!(err < 1e-4, "{:?}: score differs by {err:e}", model.layout);
    }
    a.score.hidden = 132;
    let p = params(&a, 13, 0.3);
    let want = BurnRef::new(&a, &p).net(&z, t);
    let model = GpuModel2d::new(&ctx, &a, &p).unwrap();
    let got = &gpu_trajectory(&ctx, &model, bare_network(t), &z)[0];
    let err = max_rel(got, &want);
    eprintln!("{:?}: score rel err {err:e}", model.layout);
    assert!(err < 1e-4, "{:?}: score differs by {err:e}", model.layout);
}

/// Whole PC, Heun and EM runs (workgroup norm sums, two networks per step, noise by
/// particle index) end where the native `f64` sampler ends with one and with three
/// particles per invocation, for a particle count that is no multiple of three.
#[test]
fn particles_per_invocation_do_not_change_a_run() {
    let Some(ctx) = context() else { return };
    let a = arch(SdeKind::Vp, true);
    let p = trained(&a, Toy2d::TwoMoons, 31);
    let cpu = CpuModel::new(&a, &p).unwrap();
    let n = 301;
    for kind in [SamplerKind::Pc, SamplerKind::OdeHeun, SamplerKind::Em] {
        let cfg = SamplerConfig {
            kind,
            steps: 40,
            seed: 5,
            ..Default::default()
        };
        let (want, _) = sample_model(&cpu, n, &cfg).unwrap();
        for pp in [1, 3] {
            let opts = KernelOptions {
                particles_per_invocation: Some(pp),
                ..Default::default()
            };
            let model = GpuModel2d::with_options(&ctx, &a, &p, &opts).unwrap();
            let (x, _) = pollster::block_on(model.sample(&ctx, n as u32, &cfg)).unwrap();
            let err = max_abs(&f64s(&x), &want);
            eprintln!("{kind:?}, particles per invocation {pp}: x differs by {err:e}");
            assert!(err < 1e-3, "{kind:?}, {pp} per invocation: {err:e}");
        }
    }
}

#[test]
fn every_sampler_step_matches_the_burn_reference() {
    let Some(ctx) = context() else { return };
    let kinds = [
        SamplerKind::Em,
        SamplerKind::Pc,
        SamplerKind::OdeEuler,
        SamplerKind::OdeHeun,
    ];
    for sde in [SdeKind::Vp, SdeKind::SubVp, SdeKind::Ve] {
        let a = arch(sde, true);
        let p = params(&a, 21, 0.3);
        let model = GpuModel2d::new(&ctx, &a, &p).unwrap();
        let reference = BurnRef::new(&a, &p);
        let net = |z: &[f64], t: f64| reference.net(z, t);
        for kind in kinds {
            let cfg = SamplerConfig {
                kind,
                // PC on VP needs more steps than beta_max (20).
                steps: 25,
                seed: 77,
                record_every: 1,
                temperature: 0.9,
                ..Default::default()
            };
            let plan = plan::reverse(&a, &cfg, Start::Given).unwrap();
            let z0 = points(512, 17, a.sde.prior_std());
            let traj = gpu_trajectory(&ctx, &model, plan.clone(), &z0);
            assert_eq!(traj.len(), plan.recorded());
            // Each step from the GPU's own previous state, so errors cannot compound. A
            // step the plan does not record (the last one before the denoiser) is checked
            // together with the next.
            let mut prev = z0.clone();
            let mut pending = Vec::new();
            let mut got = traj.iter();
            for (i, step) in plan.steps.iter().enumerate() {
                pending.push(step.clone());
                if !step.record {
                    continue;
                }
                let part = Plan {
                    steps: std::mem::take(&mut pending),
                    seed: plan.seed,
                };
                let mut want = prev.clone();
                plan::execute_cpu(&part, 2, &mut want, &net, |_, _| {});
                let got = got.next().expect("one slot per recorded step");
                let err = max_rel(got, &want);
                eprintln!("{sde:?} {kind:?} step {i}: {err:e}");
                assert!(err < 1e-4, "{sde:?} {kind:?} step {i}: {err:e}");
                prev = got.clone();
            }
        }
    }
}

#[test]
fn complete_runs_end_where_the_native_samplers_end() {
    let Some(ctx) = context() else { return };
    let a = arch(SdeKind::Vp, true);
    let p = trained(&a, Toy2d::TwoMoons, 31);
    let model = GpuModel2d::new(&ctx, &a, &p).unwrap();
    let cpu = CpuModel::new(&a, &p).unwrap();
    let n = 1000;
    let mut errs = Vec::new();
    for (kind, steps) in [
        (SamplerKind::Em, 200),
        (SamplerKind::Pc, 100),
        (SamplerKind::OdeEuler, 100),
        (SamplerKind::OdeHeun, 50),
    ] {
        let cfg = SamplerConfig {
            kind,
            steps,
            seed: 2024,
            ..Default::default()
        };
        let (x, z) = pollster::block_on(model.sample(&ctx, n as u32, &cfg)).unwrap();
        let (want, s) = sample_model(&cpu, n, &cfg).unwrap();
        let err = max_abs(&f64s(&x), &want);
        eprintln!(
            "{kind:?} x {steps}: x differs by {err:e}, z by {:e}",
            max_abs(&f64s(&z), &s.z)
        );
        errs.push((kind, steps, err));
    }
    for (kind, steps, err) in errs {
        assert!(
            err < 1e-3,
            "{kind:?} x {steps}: particles differ by {err:e}"
        );
    }
}

#[test]
fn translations_match_the_cpu() {
    let Some(ctx) = context() else { return };
    let a = arch(SdeKind::Vp, true);
    let (pa, pb) = (
        trained(&a, Toy2d::TwoMoons, 41),
        trained(&a, Toy2d::EightGaussians, 42),
    );
    let (ga, gb) = (
        GpuModel2d::new(&ctx, &a, &pa).unwrap(),
        GpuModel2d::new(&ctx, &a, &pb).unwrap(),
    );
    let (ca, cb) = (
        CpuModel::new(&a, &pa).unwrap(),
        CpuModel::new(&a, &pb).unwrap(),
    );
    let x = points(500, 43, 1.0);
    let cfg = SamplerConfig {
        kind: SamplerKind::Em,
        steps: 100,
        seed: 5,
        ..Default::default()
    };
    let got = pollster::block_on(indm::gpu::translate::sdedit(
        &ctx,
        &gb,
        &f32s(&x),
        0.5,
        &cfg,
    ))
    .unwrap();
    let want = translate::sdedit(&cb, &x, 0.5, &cfg).unwrap();
    let err = max_abs(&f64s(&got), &want);
    eprintln!("SDEdit differs by {err:e}");
    assert!(err < 1e-3, "SDEdit differs by {err:e}");
    let cfg = SamplerConfig {
        kind: SamplerKind::OdeHeun,
        steps: 50,
        seed: 5,
        ..Default::default()
    };
    let got =
        pollster::block_on(indm::gpu::translate::ddib(&ctx, &ga, &gb, &f32s(&x), &cfg)).unwrap();
    let want = translate::ddib(&ca, &cb, &x, &cfg).unwrap();
    let err = max_abs(&f64s(&got), &want);
    eprintln!("DDIB differs by {err:e}");
    assert!(err < 1e-3, "DDIB differs by {err:e}");
}

#[test]
fn bad_weights_name_the_tensor_and_both_shapes() {
    let Some(ctx) = context() else { return };
    let a = arch(SdeKind::Vp, true);
    let p = params(&a, 1, 0.1);
    let mut file = model_file(&a, &p, &BTreeMap::new()).unwrap();
    let good = file.to_bytes().unwrap();
    assert!(GpuModel2d::from_bytes(&ctx, &good, "good.safetensors").is_ok());
    // A tensor of the wrong shape.
    let t = file
        .tensors
        .iter_mut()
        .find(|t| t.name == "score.l1.weight")
        .unwrap();
    let old = t.shape.clone();
    t.shape = vec![old[0], old[1] + 1];
    t.data.resize(old[0] * (old[1] + 1), 0.0);
    let bytes = file.to_bytes().unwrap();
    let msg = GpuModel2d::from_bytes(&ctx, &bytes, "bad.safetensors")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("score.l1.weight"), "{msg}");
    assert!(
        msg.contains(&format!("{:?}", old)) || msg.contains(&format!("{}x{}", old[0], old[1])),
        "{msg}"
    );
    assert!(msg.contains(&format!("{}", old[1] + 1)), "{msg}");
    // An architecture the 2D kernels cannot run.
    let mut wide = a.clone();
    wide.score.hidden = 4096;
    let msg = GpuModel2d::new(&ctx, &wide, &ParamSet::init(&wide, 0))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("hidden") && msg.contains("4096"), "{msg}");
    // Garbage bytes.
    let msg = GpuModel2d::from_bytes(&ctx, b"not a weights file", "junk")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("junk"), "{msg}");
}

#[test]
fn requests_beyond_the_limits_fail_before_any_dispatch() {
    let Some(ctx) = context() else { return };
    let a = arch(SdeKind::Vp, false);
    let p = params(&a, 1, 0.1);
    let model = GpuModel2d::new(&ctx, &a, &p).unwrap();
    let cfg = SamplerConfig {
        steps: 10,
        ..Default::default()
    };
    let plan = plan::reverse(&a, &cfg, Start::Prior).unwrap();
    match PlanRun::new(&ctx, &model, plan, u32::MAX, None) {
        Err(IndmError::GpuLimit {
            what,
            requested,
            limit,
        }) => {
            assert!(requested > limit, "{what}: {requested} <= {limit}");
        }
        other => panic!("expected a GpuLimit error, got {:?}", other.err()),
    }
    // A trajectory that does not fit, though the particles do.
    let cfg = SamplerConfig {
        steps: 100_000,
        record_every: 1,
        ..Default::default()
    };
    let plan = plan::reverse(&a, &cfg, Start::Prior).unwrap();
    assert!(matches!(
        PlanRun::new(&ctx, &model, plan, 100_000, None),
        Err(IndmError::GpuLimit { .. })
    ));
    // The device is still fine afterwards.
    let cfg = SamplerConfig {
        steps: 5,
        ..Default::default()
    };
    let (x, _) = pollster::block_on(model.sample(&ctx, 100, &cfg)).unwrap();
    assert!(x.iter().all(|v| v.is_finite()));
}

#[test]
fn no_adapter_is_a_distinct_error() {
    // DX12 does not exist on Linux (and no backend at all exists anywhere).
    for backends in [
        wgpu::Backends::empty(),
        if cfg!(windows) {
            wgpu::Backends::METAL
        } else {
            wgpu::Backends::DX12
        },
    ] {
        match pollster::block_on(GpuContext::with_backends(backends)) {
            Err(IndmError::NoAdapter(why)) => assert!(!why.is_empty()),
            Err(e) => panic!("expected NoAdapter, got {e}"),
            Ok(ctx) => panic!("expected NoAdapter, got {}", ctx.describe()),
        }
    }
}
