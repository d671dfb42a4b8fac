//! Adaptive Dormand–Prince RK45 (`scipy`'s `RK45`) for batched independent systems.
//!
//! The state holds many independent systems of `stride` values each; one shared
//! step size is accepted only when every system's RMS error is within tolerance,
//! so no system is integrated less accurately than it would be on its own.

/// Result of an adaptive solve.
#[derive(Clone, Debug)]
pub struct OdeSolution {
    /// State at the end time.
    pub y: Vec<f64>,
    /// Number of right-hand-side evaluations.
    pub nfe: usize,
    /// Accepted steps.
    pub steps: usize,
}

/// Tolerances and limits of the adaptive solver.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Upper bound on accepted + rejected steps (guards against stalls).
    pub max_steps: usize,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            rtol: 1e-5,
            atol: 1e-5,
            max_steps: 100_000,
        }
    }
}

const C: [f64; 7] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];
const A: [[f64; 6]; 7] = [
    [0.0; 6],
    [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0],
    [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0],
    [
        19372.0 / 6561.0,
        -25360.0 / 2187.0,
        64448.0 / 6561.0,
        -212.0 / 729.0,
        0.0,
        0.0,
    ],
    [
        9017.0 / 3168.0,
        -355.0 / 33.0,
        46732.0 / 5247.0,
        49.0 / 176.0,
        -5103.0 / 18656.0,
        0.0,
    ],
    [
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
    ],
];
/// 5th-order weights minus the embedded 4th-order weights.
const E: [f64; 7] = [
    71.0 / 57600.0,
    0.0,
    -71.0 / 16695.0,
    71.0 / 1920.0,
    -17253.0 / 339200.0,
    22.0 / 525.0,
    -1.0 / 40.0,
];

/// Integrates `dy/dt = f(t, y)` from `t0` to `t1` (either direction).
pub fn dopri5<F>(
    mut f: F,
    t0: f64,
    t1: f64,
    y0: &[f64],
    stride: usize,
    tol: Tolerance,
) -> OdeSolution
where
    F: FnMut(f64, &[f64]) -> Vec<f64>,
{
    let n = y0.len();
    let dir = if t1 >= t0 { 1.0 } else { -1.0 };
    let span = (t1 - t0).abs();
    let mut t = t0;
    let mut y = y0.to_vec();
    let mut k1 = f(t, &y);
    let mut nfe = 1;
    // Initial step (Hairer's heuristic, simplified).
    let norm = |v: &[f64], scale: &[f64]| -> f64 {
        v.chunks(stride)
            .zip(scale.chunks(stride))
            .map(|(a, s)| {
                (a.iter().zip(s).map(|(x, s)| (x / s).powi(2)).sum::<f64>() / a.len() as f64).sqrt()
            })
            // NaN must reach the step control (as a rejected step), not vanish.
            .fold(0.0, crate::numeric::max_nan)
    };
    let scale0: Vec<f64> = y.iter().map(|v| tol.atol + tol.rtol * v.abs()).collect();
    let d0 = norm(&y, &scale0);
    let d1 = norm(&k1, &scale0);
    let mut h = if d0 < 1e-5 || d1 < 1e-5 {
        1e-6
    } else {
        0.01 * d0 / d1
    };
    h = h.min(span).max(1e-12);
    let mut steps = 0;
    let mut attempts = 0;
    let mut ks: Vec<Vec<f64>> = vec![Vec::new(); 7];
    while (t1 - t) * dir > 1e-15 * span.max(1.0) {
        attempts += 1;
        if attempts > tol.max_steps {
            break;
        }
        if h > (t1 - t).abs() {
            h = (t1 - t).abs();
        }
        ks[0] = k1.clone();
        let mut ytmp = vec![0.0; n];
        for s in 1..7 {
            for i in 0..n {
                let mut acc = y[i];
                for (j, kj) in ks.iter().enumerate().take(s) {
                    let a = A[s][j];
                    if a != 0.0 {
                        acc += dir * h * a * kj[i];
                    }
                }
                ytmp[i] = acc;
            }
            ks[s] = f(t + dir * h * C[s], &ytmp);
            nfe += 1;
        }
        // ytmp is now the 5th-order solution (row 6 of A holds its weights); ks[6] = f(t+h, y_new).
        let err: Vec<f64> = (0..n)
            .map(|i| dir * h * ks.iter().zip(E.iter()).map(|(k, e)| e * k[i]).sum::<f64>())
            .collect();
        let scale: Vec<f64> = (0..n)
            .map(|i| tol.atol + tol.rtol * y[i].abs().max(ytmp[i].abs()))
            .collect();
        let e = norm(&err, &scale);
        if e <= 1.0 {
            t += dir * h;
            y = ytmp;
            k1 = ks[6].clone();
            steps += 1;
            let fac = if e == 0.0 {
                10.0
            } else {
                (0.9 * e.powf(-0.2)).clamp(0.2, 10.0)
            };
            h *= fac;
        } else if e.is_nan() {
            // A non-finite stage: retry with a much smaller step.
            h *= 0.2;
        } else {
            h *= (0.9 * e.powf(-0.2)).clamp(0.2, 1.0);
        }
    }
    OdeSolution { y, nfe, steps }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_exponential_decay_to_tolerance() {
        // Two independent systems y' = -k y.
        let ks = [1.0, 7.0];
        let sol = dopri5(
            |_, y| y.iter().zip(ks).map(|(v, k)| -k * v).collect(),
            0.0,
            2.0,
            &[1.0, 2.0],
            1,
            Tolerance {
                rtol: 1e-9,
                atol: 1e-12,
                max_steps: 100_000,
            },
        );
        assert!((sol.y[0] - (-2.0f64).exp()).abs() < 1e-8);
        assert!((sol.y[1] - 2.0 * (-14.0f64).exp()).abs() < 1e-8);
    }

    #[test]
    fn integrates_backwards_in_time() {
        let sol = dopri5(
            |t, _| vec![t.cos()],
            1.0,
            0.0,
            &[1.0f64.sin()],
            1,
            Tolerance::default(),
        );
        assert!(sol.y[0].abs() < 1e-5, "{}", sol.y[0]);
    }
}
