//! The 2D score MLP, `f64` reference: input `[z, time features]`, SiLU, output
//! `eps_hat` (VP, sub-VP: `sigma s = -eps_hat`) or `sigma s` directly (VE).

use super::LatentScore;
use crate::arch::Architecture;
use crate::error::Result;
use crate::nn::Mlp;
use crate::params::ParamSet;

/// Score network of a 2D model.
#[derive(Clone, Debug)]
pub struct ScoreMlp {
    /// The architecture (SDE, time features, output sign).
    pub arch: Architecture,
    /// The network.
    pub net: Mlp,
}

impl ScoreMlp {
    /// Reads `score.l0 ..= score.l{depth}`.
    pub fn from_params(arch: &Architecture, params: &ParamSet) -> Result<Self> {
        Ok(ScoreMlp {
            arch: arch.clone(),
            net: params.mlp("score", arch.score.depth + 1)?,
        })
    }

    /// Network input rows `[z_i, features(t)]`.
    pub fn inputs(&self, z: &[f64], t: f64) -> Vec<f64> {
        let d = self.arch.data_dim;
        let feats = self.arch.time_features(t);
        let mut x = Vec::with_capacity(z.len() / d * (d + feats.len()));
        for p in z.chunks_exact(d) {
            x.extend_from_slice(p);
            x.extend_from_slice(&feats);
        }
        x
    }

    /// Network input rows `[z_i, features(t_i)]` with a time per row.
    pub fn inputs_rows(&self, z: &[f64], ts: &[f64]) -> Vec<f64> {
        let d = self.arch.data_dim;
        let mut x = Vec::with_capacity(z.len() / d * self.net.d_in());
        for (p, &t) in z.chunks_exact(d).zip(ts) {
            x.extend_from_slice(p);
            x.extend(self.arch.time_features(t));
        }
        x
    }
}

impl LatentScore for ScoreMlp {
    fn dim(&self) -> usize {
        self.arch.data_dim
    }

    fn sigma_score_rows(&self, z: &[f64], ts: &[f64]) -> Vec<f64> {
        let n = z.len() / self.dim();
        assert_eq!(ts.len(), n, "one time per point");
        let sign = self.arch.output_sign();
        let mut out = self.net.forward(&self.inputs_rows(z, ts), n);
        out.iter_mut().for_each(|v| *v *= sign);
        out
    }

    fn sigma_score(&self, z: &[f64], t: f64) -> Vec<f64> {
        let n = z.len() / self.dim();
        let sign = self.arch.output_sign();
        let mut out = self.net.forward(&self.inputs(z, t), n);
        out.iter_mut().for_each(|v| *v *= sign);
        out
    }

    fn sigma_score_jvp(&self, z: &[f64], t: f64, v: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>) {
        let d = self.dim();
        let n = z.len() / d;
        let width = self.net.d_in();
        // Tangents of the input rows: the z part carries v, the time features are constant.
        let tans: Vec<Vec<f64>> = v
            .iter()
            .map(|vk| {
                let mut t = vec![0.0; n * width];
                for i in 0..n {
                    t[i * width..i * width + d].copy_from_slice(&vk[i * d..(i + 1) * d]);
                }
                t
            })
            .collect();
        let sign = self.arch.output_sign();
        let (mut out, mut jvps) = self.net.forward_jvp(&self.inputs(z, t), &tans, n);
        out.iter_mut().for_each(|x| *x *= sign);
        jvps.iter_mut()
            .for_each(|j| j.iter_mut().for_each(|x| *x *= sign));
        (out, jvps)
    }
}
