//! Euler–Maruyama on the reverse SDE `dz = [f z - g^2 s] dt + g dW̄`.
//! The last step returns its mean (no noise), as score-SDE's `noise_removal`.

use super::{Ctx, Samples};
use crate::rng::Stream;

/// Runs `cfg.steps` EM steps from `z` at `T` to `eps`.
pub fn run(ctx: &Ctx, mut z: Vec<f64>) -> Samples {
    let grid = ctx.grid();
    let n_steps = grid.len() - 1;
    let mut traj = vec![(grid[0], z.clone())];
    for i in 0..n_steps {
        let (t, dt) = (grid[i], grid[i] - grid[i + 1]);
        let s = ctx.score(&z, t);
        let (f, g2) = (ctx.sde.drift_coef(t), ctx.sde.g2(t));
        let last = i + 1 == n_steps;
        let noise = if last {
            Vec::new()
        } else {
            ctx.noise(Stream::SampleStep, i, z.len())
        };
        let g_sqrt_dt = (g2 * dt).sqrt();
        for (k, zk) in z.iter_mut().enumerate() {
            let mean = *zk - (f * *zk - g2 * s[k]) * dt;
            *zk = if last {
                mean
            } else {
                mean + g_sqrt_dt * noise[k]
            };
        }
        if ctx.cfg.record_every > 0 && ((i + 1) % ctx.cfg.record_every == 0 || last) {
            traj.push((grid[i + 1], z.clone()));
        }
    }
    Samples {
        z,
        nfe: n_steps,
        trajectory: traj,
    }
}
