//! Predictor–corrector sampling (spec 4.2): at each grid time, Langevin
//! corrector step(s) first, then the reverse-diffusion predictor. The last
//! predictor step returns its mean.

use super::{Ctx, Samples};
use crate::rng::Stream;
use crate::sde::{SdeKind, T_END};

/// Runs `cfg.steps` predictor steps (and `corrector_steps` corrector steps each).
pub fn run(ctx: &Ctx, mut z: Vec<f64>) -> Samples {
    let grid = ctx.grid();
    let n_steps = grid.len() - 1;
    let n = ctx.cfg.steps;
    let d = ctx.score.dim();
    let mut traj = vec![(grid[0], z.clone())];
    let mut nfe = 0;
    for i in 0..n_steps {
        let t = grid[i];
        // Index of t on the discrete schedule (T -> N-1, eps -> 0).
        let idx = ((t / T_END) * (n - 1) as f64).round() as usize;
        let alpha = match ctx.sde.kind {
            SdeKind::Vp => 1.0 - ctx.sde.discrete_beta(idx, n),
            _ => 1.0,
        };
        for c in 0..ctx.cfg.corrector_steps {
            let s = ctx.score(&z, t);
            nfe += 1;
            let noise = ctx.noise(Stream::Corrector, i * ctx.cfg.corrector_steps + c, z.len());
            let norm = |v: &[f64]| {
                v.chunks_exact(d)
                    .map(|p| p.iter().map(|x| x * x).sum::<f64>().sqrt())
                    .sum::<f64>()
                    / (v.len() / d) as f64
            };
            let (gn, nn) = (norm(&s), norm(&noise));
            let step = 2.0 * alpha * (ctx.cfg.snr * nn / gn.max(1e-300)).powi(2);
            let amp = (2.0 * step).sqrt();
            for k in 0..z.len() {
                z[k] += step * s[k] + amp * noise[k];
            }
        }
        let s = ctx.score(&z, t);
        nfe += 1;
        let last = i + 1 == n_steps;
        let noise = if last {
            Vec::new()
        } else {
            ctx.noise(Stream::SampleStep, i, z.len())
        };
        // Reverse-diffusion predictor: mean = z - f_i + G_i^2 s, z = mean + G_i n.
        let (shrink, g2) = match ctx.sde.kind {
            SdeKind::Vp => {
                let b = ctx.sde.discrete_beta(idx, n);
                ((1.0 - b).sqrt(), b)
            }
            SdeKind::Ve => {
                let s_i = ctx.sde.discrete_sigma(idx, n);
                let s_prev = if idx == 0 {
                    0.0
                } else {
                    ctx.sde.discrete_sigma(idx - 1, n)
                };
                (1.0, s_i * s_i - s_prev * s_prev)
            }
            SdeKind::SubVp => {
                let dt = grid[i] - grid[i + 1];
                (1.0 + ctx.sde.drift_coef(t) * dt, ctx.sde.g2(t) * dt)
            }
        };
        // f_i z = (shrink - 1) z, so z - f_i = (2 - shrink) z (VP) / z (VE).
        let keep = 2.0 - shrink;
        let gsd = g2.sqrt();
        for k in 0..z.len() {
            let mean = keep * z[k] + g2 * s[k];
            z[k] = if last { mean } else { mean + gsd * noise[k] };
        }
        if ctx.cfg.record_every > 0 && ((i + 1) % ctx.cfg.record_every == 0 || last) {
            traj.push((grid[i + 1], z.clone()));
        }
    }
    Samples {
        z,
        nfe,
        trajectory: traj,
    }
}
