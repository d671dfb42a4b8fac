//! Plain-Rust `f64` inference for the dense networks, with forward-mode tangents.
//!
//! This is the reference implementation that the likelihood and the samplers
//! run on (exact Jacobian-vector products, double precision), and the CPU
//! fallback of the browser demo. Training runs the same math in burn
//! ([`crate::train`]); a parity test keeps the two equal.

/// A dense layer `y = x W + b` with `W` stored `[d_in, d_out]` row-major (burn's layout).
#[derive(Clone, Debug)]
pub struct Dense {
    /// Weights, `d_in * d_out` values.
    pub w: Vec<f64>,
    /// Bias, `d_out` values.
    pub b: Vec<f64>,
    /// Input width.
    pub d_in: usize,
    /// Output width.
    pub d_out: usize,
}

impl Dense {
    /// A layer from `f32` weights and bias (as stored in a weights file).
    pub fn from_f32(w: &[f32], b: &[f32], d_in: usize, d_out: usize) -> Self {
        assert_eq!(w.len(), d_in * d_out, "dense weight length");
        assert_eq!(b.len(), d_out, "dense bias length");
        Dense {
            w: w.iter().map(|&v| v as f64).collect(),
            b: b.iter().map(|&v| v as f64).collect(),
            d_in,
            d_out,
        }
    }

    /// `x W` for `rows` rows, without the bias.
    pub fn matmul(&self, x: &[f64], rows: usize) -> Vec<f64> {
        assert_eq!(x.len(), rows * self.d_in, "dense input length");
        let mut y = vec![0.0; rows * self.d_out];
        if rows == 0 {
            return y;
        }
        // SAFETY: the slices have exactly rows*d_in, d_in*d_out and rows*d_out elements
        // (asserted above and by construction), with row-major strides.
        unsafe {
            matrixmultiply::dgemm(
                rows,
                self.d_in,
                self.d_out,
                1.0,
                x.as_ptr(),
                self.d_in as isize,
                1,
                self.w.as_ptr(),
                self.d_out as isize,
                1,
                0.0,
                y.as_mut_ptr(),
                self.d_out as isize,
                1,
            );
        }
        y
    }

    /// `x W + b` for `rows` rows.
    pub fn forward(&self, x: &[f64], rows: usize) -> Vec<f64> {
        let mut y = self.matmul(x, rows);
        for row in y.chunks_exact_mut(self.d_out) {
            for (v, b) in row.iter_mut().zip(&self.b) {
                *v += b;
            }
        }
        y
    }
}

/// SiLU `x sigmoid(x)`.
#[inline]
pub fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// Derivative of SiLU.
#[inline]
pub fn silu_grad(x: f64) -> f64 {
    let s = 1.0 / (1.0 + (-x).exp());
    s * (1.0 + x * (1.0 - s))
}

/// A multilayer perceptron with SiLU between layers (none after the last).
#[derive(Clone, Debug)]
pub struct Mlp {
    /// The layers, input first.
    pub layers: Vec<Dense>,
}

impl Mlp {
    /// Input width.
    pub fn d_in(&self) -> usize {
        self.layers[0].d_in
    }

    /// Output width.
    pub fn d_out(&self) -> usize {
        self.layers.last().expect("non-empty MLP").d_out
    }

    /// Forward pass on `rows` rows.
    pub fn forward(&self, x: &[f64], rows: usize) -> Vec<f64> {
        let mut h = x.to_vec();
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h, rows);
            if i < last {
                h.iter_mut().for_each(|v| *v = silu(*v));
            }
        }
        h
    }

    /// Forward pass plus Jacobian-vector products for `k` tangent sets.
    ///
    /// `tangents` holds `k` blocks, each `rows * d_in` long (a tangent per row).
    /// Returns the output and `k` output tangents. The linear part of every layer
    /// runs as one matrix product over the stacked `(1 + k) * rows` rows.
    pub fn forward_jvp(
        &self,
        x: &[f64],
        tangents: &[Vec<f64>],
        rows: usize,
    ) -> (Vec<f64>, Vec<Vec<f64>>) {
        let k = tangents.len();
        let mut stacked = Vec::with_capacity((1 + k) * x.len());
        stacked.extend_from_slice(x);
        for t in tangents {
            assert_eq!(t.len(), x.len(), "tangent length");
            stacked.extend_from_slice(t);
        }
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let mut out = layer.matmul(&stacked, (1 + k) * rows);
            let n = rows * layer.d_out;
            // Bias only on the primal block.
            for row in out[..n].chunks_exact_mut(layer.d_out) {
                for (v, b) in row.iter_mut().zip(&layer.b) {
                    *v += b;
                }
            }
            if i < last {
                let (primal, tans) = out.split_at_mut(n);
                for block in tans.chunks_exact_mut(n) {
                    for (dv, &pre) in block.iter_mut().zip(primal.iter()) {
                        *dv *= silu_grad(pre);
                    }
                }
                primal.iter_mut().for_each(|v| *v = silu(*v));
            }
            stacked = out;
        }
        let n = rows * self.d_out();
        let primal = stacked[..n].to_vec();
        let tans = stacked[n..].chunks_exact(n).map(|c| c.to_vec()).collect();
        (primal, tans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy_mlp() -> Mlp {
        let mk = |d_in: usize, d_out: usize, seed: f64| Dense {
            w: (0..d_in * d_out)
                .map(|i| ((i as f64 + seed) * 0.37).sin() * 0.5)
                .collect(),
            b: (0..d_out)
                .map(|i| ((i as f64 + seed) * 0.91).cos() * 0.1)
                .collect(),
            d_in,
            d_out,
        };
        Mlp {
            layers: vec![mk(3, 5, 0.0), mk(5, 4, 1.0), mk(4, 2, 2.0)],
        }
    }

    #[test]
    fn jvp_matches_finite_differences() {
        let m = toy_mlp();
        let rows = 4;
        let x: Vec<f64> = (0..rows * 3).map(|i| (i as f64 * 0.3).cos()).collect();
        let v: Vec<f64> = (0..rows * 3).map(|i| (i as f64 * 0.7).sin()).collect();
        let (y, dy) = m.forward_jvp(&x, std::slice::from_ref(&v), rows);
        assert_eq!(y, m.forward(&x, rows));
        let h = 1e-6;
        let xp: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + h * b).collect();
        let xm: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - h * b).collect();
        let (yp, ym) = (m.forward(&xp, rows), m.forward(&xm, rows));
        for i in 0..y.len() {
            let fd = (yp[i] - ym[i]) / (2.0 * h);
            assert!((fd - dy[0][i]).abs() < 1e-8, "{i}: {fd} vs {}", dy[0][i]);
        }
    }

    #[test]
    fn silu_grad_matches_finite_differences() {
        for &x in &[-5.0, -1.0, 0.0, 0.3, 4.0] {
            let fd = (silu(x + 1e-6) - silu(x - 1e-6)) / 2e-6;
            assert!((fd - silu_grad(x)).abs() < 1e-8);
        }
    }
}
