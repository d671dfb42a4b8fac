//! Score networks and the [`LatentScore`] interface the samplers and the likelihood use.

pub mod gaussian;
pub mod mlp;

pub use gaussian::GaussianScore;
pub use mlp::ScoreMlp;

/// Anything that gives `sigma(t) * s(z, t)` for a batch of latent points.
///
/// Working with `sigma * s` (bounded) rather than `s` (which grows like `1/sigma`)
/// keeps small-`t` arithmetic well conditioned (spec 9.1).
pub trait LatentScore {
    /// Dimension of one point.
    fn dim(&self) -> usize;

    /// `sigma(t_i) * s(z_i, t_i)` with a time per point (row-major `z`, `dim` values each).
    fn sigma_score_rows(&self, z: &[f64], ts: &[f64]) -> Vec<f64>;

    /// `sigma(t) * s(z, t)` for the points in `z`, all at time `t`.
    fn sigma_score(&self, z: &[f64], t: f64) -> Vec<f64> {
        self.sigma_score_rows(z, &vec![t; z.len() / self.dim()])
    }

    /// `sigma * s` and its Jacobian-vector products with each tangent block in `v`
    /// (each block as long as `z`).
    fn sigma_score_jvp(&self, z: &[f64], t: f64, v: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>);

    /// `sigma * s` and the exact trace of `d(sigma s)/dz` per point (`dim` JVPs).
    fn sigma_score_trace(&self, z: &[f64], t: f64) -> (Vec<f64>, Vec<f64>) {
        let d = self.dim();
        let n = z.len() / d;
        let basis: Vec<Vec<f64>> = (0..d)
            .map(|k| {
                let mut e = vec![0.0; z.len()];
                for i in 0..n {
                    e[i * d + k] = 1.0;
                }
                e
            })
            .collect();
        let (val, jvps) = self.sigma_score_jvp(z, t, &basis);
        let mut tr = vec![0.0; n];
        for (k, jv) in jvps.iter().enumerate() {
            for i in 0..n {
                tr[i] += jv[i * d + k];
            }
        }
        (val, tr)
    }
}
