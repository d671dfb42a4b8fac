//! Tests of the image model: invertibility, the log-determinant against a finite-difference
//! Jacobian, identity at initialisation, and burn against the `f64` reference.

use super::reference::{GlowRef, Images, unet_forward};
use crate::arch::{Architecture, ImageFlowArch, UNetArch};
use crate::params::ParamSet;
use crate::rng::{Counter, Stream};
use crate::sde::SdeKind;

/// A small image model: 2x4x4 images, 2 squeeze levels (8x2x2, 32x1x1), 3 steps each.
pub(crate) fn small_arch(flow: bool) -> Architecture {
    Architecture::image(
        2,
        4,
        4,
        SdeKind::Vp,
        if flow {
            ImageFlowArch::Glow {
                levels: 2,
                steps: 3,
                hidden: 8,
            }
        } else {
            ImageFlowArch::Identity
        },
        UNetArch {
            channels: 4,
            mult: vec![1, 2],
            res_blocks: 1,
            groups: 2,
            fourier: 2,
            temb: 8,
        },
    )
}

/// Parameters with every tensor random (the zero- and one-initialised ones too), so each
/// layer does something; log-scales are kept small.
pub(crate) fn random_params(arch: &Architecture, seed: u64) -> ParamSet {
    let mut p = ParamSet::init(arch, seed);
    for (j, prm) in p.params.iter_mut().enumerate() {
        let c = Counter::new(seed, Stream::Init, 1000 + j as u64);
        let scale = if prm.name.contains("logs") {
            0.1
        } else if prm.name.contains(".inv.") {
            // Keeps W = L U well conditioned, so f32 inverses stay accurate.
            0.5 / (prm.shape[0] as f64).sqrt()
        } else if prm.name.ends_with("gamma") {
            0.2
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

pub(crate) fn random_images(shape: [usize; 4], seed: u64) -> Images {
    let n = shape.iter().product();
    Images::new(Counter::new(seed, Stream::TestData, 0).normals(n), shape)
}

/// `ln |det A|` by Gaussian elimination with partial pivoting.
fn log_abs_det(mut a: Vec<f64>, n: usize) -> f64 {
    let mut ld = 0.0;
    for k in 0..n {
        let piv = (k..n)
            .max_by(|&x, &y| a[x * n + k].abs().total_cmp(&a[y * n + k].abs()))
            .unwrap();
        for j in 0..n {
            a.swap(k * n + j, piv * n + j);
        }
        ld += a[k * n + k].abs().ln();
        for i in k + 1..n {
            let f = a[i * n + k] / a[k * n + k];
            for j in k..n {
                a[i * n + j] -= f * a[k * n + j];
            }
        }
    }
    ld
}

#[test]
fn glow_inverts_and_its_log_det_matches_a_finite_difference_jacobian() {
    let arch = small_arch(true);
    arch.validate().unwrap();
    let params = random_params(&arch, 7);
    let flow = GlowRef::new(&arch, &params).unwrap();
    let x = random_images([2, 2, 4, 4], 1);
    let (z, ldj) = flow.forward(&x).unwrap();
    assert_eq!(z.shape, x.shape, "the latent keeps the image layout");
    let back = flow.inverse(&z).unwrap();
    let err = crate::numeric::max_abs_diff(&back.data, &x.data);
    assert!(err < 1e-12, "|h^-1(h(x)) - x| = {err:e}");
    // The flow really mixes: z is far from x.
    assert!(crate::numeric::max_abs_diff(&z.data, &x.data) > 0.1);
    assert!(
        ldj.iter().all(|v| v.abs() > 0.05),
        "non-trivial log-dets {ldj:?}"
    );
    let d = 32;
    let h = 1e-5;
    for (b, &ldj_b) in ldj.iter().enumerate() {
        let one = |k: usize, delta: f64| {
            let mut xi = Images::new(x.data[b * d..(b + 1) * d].to_vec(), [1, 2, 4, 4]);
            xi.data[k] += delta;
            flow.forward(&xi).unwrap().0.data
        };
        // J[i][k] = dz_i / dx_k by central differences.
        let mut jac = vec![0.0; d * d];
        for k in 0..d {
            let (p, m) = (one(k, h), one(k, -h));
            for i in 0..d {
                jac[i * d + k] = (p[i] - m[i]) / (2.0 * h);
            }
        }
        let fd = log_abs_det(jac, d);
        assert!(
            (fd - ldj_b).abs() < 1e-6,
            "sample {b}: finite differences {fd} vs log-det {ldj_b}"
        );
    }
}

#[test]
fn the_flow_is_the_identity_at_initialisation() {
    let arch = Architecture::image(
        3,
        8,
        8,
        SdeKind::Vp,
        ImageFlowArch::from_name("glow").unwrap(),
        UNetArch {
            channels: 8,
            mult: vec![1, 2],
            groups: 4,
            ..UNetArch::default()
        },
    );
    let params = ParamSet::init(&arch, 3);
    params.check_against(&arch).unwrap();
    let flow = GlowRef::new(&arch, &params).unwrap();
    let x = random_images([3, 3, 8, 8], 2);
    let (z, ldj) = flow.forward(&x).unwrap();
    assert_eq!(z.data, x.data);
    assert_eq!(ldj, vec![0.0; 3]);
    // The U-Net's output layer starts at zero: the initial score is 0.
    let feats = vec![arch.time_features(0.3); 3];
    let out = unet_forward(&arch, &params, &x, &feats).unwrap();
    assert!(out.data.iter().all(|&v| v == 0.0));
}

#[cfg(feature = "train")]
mod burn_parity {
    use super::*;
    use crate::image::burn::{glow_forward, glow_inverse, unet};
    use crate::train::BurnParams;
    use burn::tensor::{Device, Tensor, TensorData};

    fn device() -> Device {
        Device::flex()
    }

    fn tensor4(x: &Images, dev: &Device) -> Tensor<4> {
        let data: Vec<f32> = x.data.iter().map(|&v| v as f32).collect();
        Tensor::from_data(TensorData::new(data, x.shape), dev)
    }

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
        t.into_data().iter::<f32>().map(|v| v as f64).collect()
    }

    fn max_rel(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
            .fold(0.0, crate::numeric::max_nan)
    }

    #[test]
    fn burn_glow_matches_the_reference_both_ways() {
        let arch = Architecture::image(
            3,
            8,
            8,
            SdeKind::Vp,
            ImageFlowArch::Glow {
                levels: 2,
                steps: 2,
                hidden: 16,
            },
            UNetArch {
                channels: 8,
                mult: vec![1, 2],
                groups: 4,
                ..UNetArch::default()
            },
        );
        let params = random_params(&arch, 5);
        let dev = device();
        let bp = BurnParams::new(&params, &dev, false);
        let x = random_images([3, 3, 8, 8], 4);
        let flow = GlowRef::new(&arch, &params).unwrap();
        let (z_ref, ldj_ref) = flow.forward(&x).unwrap();
        let (z, ldj) = glow_forward(&arch, &bp, tensor4(&x, &dev));
        let scale = z_ref.data.iter().map(|v| v.abs()).fold(1.0, f64::max);
        let err = crate::numeric::max_abs_diff(&host(z), &z_ref.data) / scale;
        assert!(err < 1e-5, "burn vs f64 flow: {err:e} of max |z| = {scale}");
        let ldj = host(ldj);
        for (a, b) in ldj.iter().zip(&ldj_ref) {
            assert!((a - b).abs() < 1e-3 * (1.0 + b.abs()), "{a} vs {b}");
        }
        let back = glow_inverse(&arch, &bp, &params, tensor4(&z_ref, &dev)).unwrap();
        assert!(max_rel(&host(back), &x.data) < 1e-4);
    }

    #[test]
    fn burn_unet_matches_the_reference() {
        let arch = Architecture::image(
            3,
            8,
            8,
            SdeKind::Ve,
            ImageFlowArch::Identity,
            UNetArch {
                channels: 8,
                mult: vec![1, 2, 2],
                res_blocks: 2,
                groups: 4,
                fourier: 3,
                temb: 16,
            },
        );
        let params = random_params(&arch, 8);
        let dev = device();
        let bp = BurnParams::new(&params, &dev, false);
        let z = random_images([2, 3, 8, 8], 6);
        let ts = [0.05, 0.7];
        let feats: Vec<Vec<f64>> = ts.iter().map(|&t| arch.time_features(t)).collect();
        let want = unet_forward(&arch, &params, &z, &feats).unwrap();
        let flat: Vec<f32> = feats.iter().flatten().map(|&v| v as f32).collect();
        let ft = Tensor::<2>::from_data(TensorData::new(flat, [2, feats[0].len()]), &dev);
        let got = host(unet(&arch, &bp, tensor4(&z, &dev), ft));
        let scale = want.data.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(scale > 0.1, "a non-trivial output ({scale})");
        assert!(max_rel(&got, &want.data) < 1e-4);
    }
}

/// A short run on i.i.d. uniform 8-bit noise: its entropy is exactly 8 bits/dim, so the
/// test NELBO (a bound) must come down towards 8 from above and never cross it.
#[cfg(feature = "train")]
#[test]
fn training_on_uniform_noise_approaches_eight_bits_per_dim_from_above() {
    use crate::data::dequant::Scaling;
    use crate::data::images::{BatchSpec, ImageSet, LoadReport};
    use crate::image::likelihood::{bpd, nelbo};
    use crate::image::model::ImageModel;
    use crate::likelihood::Estimate;
    use crate::optim::AdamWConfig;
    use crate::train::{TrainHyper, TrainState, train_step};
    use burn::tensor::Device;

    let arch = Architecture::image(
        1,
        4,
        4,
        SdeKind::Vp,
        ImageFlowArch::Glow {
            levels: 1,
            steps: 2,
            hidden: 16,
        },
        UNetArch {
            channels: 16,
            mult: vec![1, 2],
            res_blocks: 1,
            groups: 4,
            fourier: 4,
            temb: 32,
        },
    );
    let noise_set = |n: usize, seed: u64| {
        let c = Counter::new(seed, Stream::TestData, 1);
        ImageSet {
            channels: 1,
            height: 4,
            width: 4,
            pixels: (0..n * 16)
                .map(|i| (c.bits(i as u32) >> 24) as u8)
                .collect(),
            labels: vec![0; n],
            classes: vec!["noise".into()],
            report: LoadReport::default(),
        }
    };
    let (train, test) = (noise_set(4096, 1), noise_set(1024, 2));
    let hyper = TrainHyper {
        batch: 128,
        seed: 3,
        flow_opt: AdamWConfig::spec(2e-3),
        score_opt: AdamWConfig::spec(2e-3),
        ..Default::default()
    };
    let dev = Device::flex().autodiff();
    let mut state = TrainState::new(&arch, &hyper).unwrap();
    let test_bpd = |state: &TrainState| -> Estimate {
        let model = ImageModel::new(&arch, &state.ema.params, &dev).unwrap();
        let mut v = Vec::new();
        for draw in 0..4 {
            let x = test.eval_batch(100 + draw, 0, test.len(), Scaling::Symmetric);
            let x: Vec<f64> = x.data.iter().map(|&v| v as f64).collect();
            v.extend(nelbo(&model, &x, 7, draw).unwrap().total());
        }
        bpd(&Estimate::of(&v), 16, Scaling::Symmetric)
    };
    let mut curve = vec![test_bpd(&state)];
    for step in 0..300u64 {
        let b = train
            .batch(&BatchSpec {
                seed: hyper.seed,
                step,
                size: hyper.batch,
                scaling: Scaling::Symmetric,
                flip: true,
            })
            .unwrap();
        let x: Vec<f64> = b.data.iter().map(|&v| v as f64).collect();
        train_step(&mut state, &hyper, &x, &dev).unwrap();
        if (step + 1) % 100 == 0 {
            curve.push(test_bpd(&state));
        }
    }
    let means: Vec<f64> = curve.iter().map(|e| e.mean).collect();
    eprintln!("test NELBO bits/dim every 100 steps: {curve:?}");
    for e in &curve {
        assert!(
            e.mean > 8.0 - 3.0 * e.std_error,
            "a bound below the entropy: {e:?}"
        );
    }
    let last = curve.last().unwrap();
    assert!(means[0] > last.mean + 1.0, "no progress: {means:?}");
    assert!(last.mean < 8.6, "still far from 8 bits/dim: {means:?}");
    // The PF-ODE model is a normalised density too: its cross-entropy is at least the
    // entropy, 8 bits/dim, and the trained model comes close.
    let model = ImageModel::new(&arch, &state.ema.params, &dev).unwrap();
    let x = test.eval_batch(100, 0, 256, Scaling::Symmetric);
    let x: Vec<f64> = x.data.iter().map(|&v| v as f64).collect();
    let cfg = crate::image::likelihood::OdeNllConfig {
        rtol: 1e-4,
        atol: 1e-4,
        seed: 5,
    };
    let nll = crate::image::likelihood::ode_nll(&model, &x, &cfg).unwrap();
    let e = bpd(&Estimate::of(&nll.nll), 16, Scaling::Symmetric);
    eprintln!("test PF-ODE NLL: {e:?}, NFE {}", nll.nfe);
    assert!(
        e.mean > 8.0 - 3.0 * e.std_error,
        "an NLL below the entropy: {e:?}"
    );
    assert!(e.mean < 8.6, "PF-ODE NLL far from 8 bits/dim: {e:?}");
}
