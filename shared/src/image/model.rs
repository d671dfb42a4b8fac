//! A trained image model for inference in burn: encode (`h`), decode (`h^{-1}`), the
//! score net, and `sigma s` with a Hutchinson divergence probe, batched in chunks.
//!
//! Host data are flat `f64` rows of `D = C H W` values per image (NCHW), like the 2D code's.

use burn::tensor::{Device, Tensor, TensorData};

use crate::arch::{Architecture, ImageArch};
use crate::error::{IndmError, Result};
use crate::params::ParamSet;
use crate::train::{BurnParams, flow_forward, sigma_score};

/// Images per burn call (bounds the memory of a U-Net pass).
pub const DEFAULT_CHUNK: usize = 64;

/// An image model on a burn device.
pub struct ImageModel {
    /// The architecture (an image model).
    pub arch: Architecture,
    /// The weights.
    pub params: ParamSet,
    device: Device,
    bp: BurnParams,
    /// Images per burn call.
    pub chunk: usize,
}

impl std::fmt::Debug for ImageModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageModel")
            .field("arch", &self.arch)
            .field("chunk", &self.chunk)
            .finish()
    }
}

fn rows(v: &[f64], d: usize, device: &Device) -> Tensor<2> {
    let data: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(data, [v.len() / d, d]), device)
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().iter::<f32>().map(|v| v as f64).collect()
}

impl ImageModel {
    /// Checks the weights against the architecture and uploads them. `device` must
    /// support autodiff (e.g. `Device::flex().autodiff()`) for
    /// [`ImageModel::sigma_score_div`]; everything else runs on any device.
    pub fn new(arch: &Architecture, params: &ParamSet, device: &Device) -> Result<Self> {
        arch.validate()?;
        if arch.image.is_none() {
            return Err(IndmError::invalid(
                "architecture",
                "a 2D model",
                "an image model",
            ));
        }
        params.check_against(arch)?;
        Ok(ImageModel {
            arch: arch.clone(),
            params: params.clone(),
            device: device.clone(),
            bp: BurnParams::new(params, device, false),
            chunk: DEFAULT_CHUNK,
        })
    }

    /// The uploaded weights.
    pub fn burn_params(&self) -> &BurnParams {
        &self.bp
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The image part of the architecture.
    pub fn image(&self) -> &ImageArch {
        self.arch.image.as_ref().expect("checked in new")
    }

    /// Values per image.
    pub fn dims(&self) -> usize {
        self.arch.data_dim
    }

    fn check_len(&self, what: &'static str, v: &[f64]) -> Result<usize> {
        let d = self.dims();
        if v.is_empty() || !v.len().is_multiple_of(d) {
            return Err(IndmError::invalid(
                what,
                format!("{} values", v.len()),
                format!("a positive multiple of {d} (C H W)"),
            ));
        }
        Ok(v.len() / d)
    }

    /// `z = h(x)` and `log |det dh/dx|` per image.
    pub fn encode(&self, x: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        self.check_len("images", x)?;
        let d = self.dims();
        let (mut z, mut ldj) = (Vec::with_capacity(x.len()), Vec::new());
        for part in x.chunks(self.chunk * d) {
            let (zt, lt) = flow_forward(&self.arch, &self.bp, rows(part, d, &self.device));
            z.extend(host(zt));
            ldj.extend(host(lt));
        }
        Ok((z, ldj))
    }

    /// `x = h^{-1}(z)`.
    pub fn decode(&self, z: &[f64]) -> Result<Vec<f64>> {
        let n = self.check_len("latents", z)?;
        let img = self.image();
        let d = self.dims();
        let mut x = Vec::with_capacity(z.len());
        for part in z.chunks(self.chunk * d) {
            let b = part.len() / d;
            let t = rows(part, d, &self.device).reshape([b, img.channels, img.height, img.width]);
            let out = crate::image::burn::glow_inverse(&self.arch, &self.bp, &self.params, t)?;
            x.extend(host(out));
        }
        debug_assert_eq!(x.len(), n * d);
        Ok(x)
    }

    fn feats(&self, ts: &[f64]) -> Tensor<2> {
        let f: Vec<f64> = ts
            .iter()
            .flat_map(|&t| self.arch.time_features(t))
            .collect();
        rows(&f, self.arch.time_feature_count(), &self.device)
    }

    /// `sigma(t_i) s(z_i, t_i)` with one time per image.
    pub fn sigma_score_rows(&self, z: &[f64], ts: &[f64]) -> Vec<f64> {
        let d = self.dims();
        assert_eq!(z.len(), ts.len() * d, "one time per image");
        let mut out = Vec::with_capacity(z.len());
        for (part, tp) in z.chunks(self.chunk * d).zip(ts.chunks(self.chunk)) {
            let ss = sigma_score(
                &self.arch,
                &self.bp,
                rows(part, d, &self.device),
                self.feats(tp),
            );
            out.extend(host(ss));
        }
        out
    }

    /// `sigma(t) s(z, t)` for every image at time `t`.
    pub fn sigma_score(&self, z: &[f64], t: f64) -> Vec<f64> {
        self.sigma_score_rows(z, &vec![t; z.len() / self.dims()])
    }

    /// The network's raw output (`sigma s = sign net`), the samplers' `net(z, t)`.
    pub fn net(&self, z: &[f64], t: f64) -> Vec<f64> {
        let sign = self.arch.output_sign();
        let mut v = self.sigma_score(z, t);
        v.iter_mut().for_each(|x| *x *= sign);
        v
    }

    /// `sigma s` at time `t` and, per image, `v^T (d(sigma s)/dz) v` for the probe `v`
    /// (one reverse-mode pass: `v^T J^T v = v^T J v`, so this is Hutchinson's estimate of
    /// the trace for a Rademacher `v`).
    pub fn sigma_score_div(&self, z: &[f64], t: f64, probe: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let d = self.dims();
        assert_eq!(z.len(), probe.len(), "one probe value per coordinate");
        let (mut ss, mut div) = (Vec::with_capacity(z.len()), Vec::new());
        for (part, pv) in z.chunks(self.chunk * d).zip(probe.chunks(self.chunk * d)) {
            let b = part.len() / d;
            let zt = rows(part, d, &self.device).require_grad();
            let v = rows(pv, d, &self.device);
            let out = sigma_score(&self.arch, &self.bp, zt.clone(), self.feats(&vec![t; b]));
            let grads = (out.clone() * v.clone()).sum().backward();
            let vjp = zt
                .grad(&grads)
                .expect("the latent tracks gradients on an autodiff device");
            ss.extend(host(out.detach()));
            div.extend(host((vjp * v.inner()).sum_dim(1)));
        }
        (ss, div)
    }
}
