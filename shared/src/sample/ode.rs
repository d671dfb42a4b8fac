//! Probability-flow ODE `dz/dt = f(t) z - g(t)^2 s(z, t) / 2`, integrated from
//! `T` to `eps` with fixed-step Euler or Heun, or adaptive RK45.

use super::{Ctx, Samples};
use crate::ode::{Tolerance, dopri5};
use crate::score::LatentScore;
use crate::sde::Sde;

/// The ODE's velocity at `(z, t)`.
pub fn velocity(sde: &Sde, score: &dyn LatentScore, z: &[f64], t: f64) -> Vec<f64> {
    let (f, g2, s) = (sde.drift_coef(t), sde.g2(t), sde.std(t));
    let ss = score.sigma_score(z, t);
    z.iter()
        .zip(&ss)
        .map(|(z, ss)| f * z - 0.5 * g2 * ss / s)
        .collect()
}

/// Fixed-step Euler (`heun = false`) or Heun on the grid.
pub fn run_fixed(ctx: &Ctx, mut z: Vec<f64>, heun: bool) -> Samples {
    let grid = ctx.grid();
    let n_steps = grid.len() - 1;
    let mut traj = vec![(grid[0], z.clone())];
    let mut nfe = 0;
    for i in 0..n_steps {
        let (t0, t1) = (grid[i], grid[i + 1]);
        let h = t1 - t0;
        let v0 = velocity(ctx.sde, ctx.score, &z, t0);
        nfe += 1;
        if heun {
            let pred: Vec<f64> = z.iter().zip(&v0).map(|(z, v)| z + h * v).collect();
            let v1 = velocity(ctx.sde, ctx.score, &pred, t1);
            nfe += 1;
            for k in 0..z.len() {
                z[k] += 0.5 * h * (v0[k] + v1[k]);
            }
        } else {
            z.iter_mut().zip(&v0).for_each(|(z, v)| *z += h * v);
        }
        if ctx.cfg.record_every > 0 && ((i + 1) % ctx.cfg.record_every == 0 || i + 1 == n_steps) {
            traj.push((t1, z.clone()));
        }
    }
    Samples {
        z,
        nfe,
        trajectory: traj,
    }
}

/// Adaptive RK45 with `cfg.rtol`, `cfg.atol`.
pub fn run_rk45(ctx: &Ctx, z: Vec<f64>) -> Samples {
    let d = ctx.score.dim();
    let tol = Tolerance {
        rtol: ctx.cfg.rtol,
        atol: ctx.cfg.atol,
        ..Default::default()
    };
    let start = z.clone();
    let sol = dopri5(
        |t, y| velocity(ctx.sde, ctx.score, y, t),
        crate::sde::T_END,
        ctx.eps,
        &z,
        d,
        tol,
    );
    let trajectory = vec![(crate::sde::T_END, start), (ctx.eps, sol.y.clone())];
    Samples {
        z: sol.y,
        nfe: sol.nfe,
        trajectory,
    }
}
