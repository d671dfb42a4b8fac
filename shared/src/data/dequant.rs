//! Uniform dequantization, the per-SDE scaling of image data and bits/dim (spec §2.6, §5.5).
//!
//! 8-bit pixels `k ∈ {0, …, 255}` become continuous values `x = (k + u) / 256` with
//! `u ~ U(0, 1)` (the spec's `(255·x + u)/256` for `x = k/255`), so `x` lies strictly inside
//! the pixel's bin `[k/256, (k+1)/256)` of `[0, 1]`. The VP and sub-VP SDEs then train on
//! `2x − 1 ∈ [−1, 1]`, the VE SDE on `x ∈ [0, 1]`.
//!
//! A continuous density `p` of the dequantized data bounds the discrete likelihood:
//! `P(k) = ∫_bin p ≥ …`, and with bins of width `1/256` per dimension
//! `−log₂ P(k) ≤ −log₂ p(x) + 8 D` on `[0, 1]`. On `[−1, 1]` the bins are twice as wide,
//! which costs one bit per dimension. Hence the reported
//! `bpd = NLL_nats / (D ln 2) + offset` with `offset = 8` on `[0, 1]` and `7` on `[−1, 1]`
//! (the official code's `7 − inverse_scaler(−1)`). Checks: a uniform density on `[0, 1]^D`
//! (NLL 0) is 8 bits/dim, as is a uniform density on `[−1, 1]^D` (NLL `D ln 2`).

use crate::sde::SdeKind;

/// Levels of 8-bit data.
pub const LEVELS: f64 = 256.0;

/// The range the model sees its data in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scaling {
    /// `[0, 1]` (VE).
    Unit,
    /// `[−1, 1]` (VP, sub-VP): `2x − 1`.
    Symmetric,
}

impl Scaling {
    /// The scaling the spec uses for an SDE: VP and sub-VP to `[−1, 1]`, VE `[0, 1]`.
    pub fn for_sde(kind: SdeKind) -> Self {
        match kind {
            SdeKind::Vp | SdeKind::SubVp => Scaling::Symmetric,
            SdeKind::Ve => Scaling::Unit,
        }
    }

    /// Maps a value of `[0, 1]` to the model's range.
    #[inline]
    pub fn scale(self, x: f64) -> f64 {
        match self {
            Scaling::Unit => x,
            Scaling::Symmetric => 2.0 * x - 1.0,
        }
    }

    /// Maps a value of the model's range back to `[0, 1]`.
    #[inline]
    pub fn unscale(self, y: f64) -> f64 {
        match self {
            Scaling::Unit => y,
            Scaling::Symmetric => (y + 1.0) / 2.0,
        }
    }

    /// `ln` of the Jacobian `dy/dx` of the scaling, per dimension (`ln 2` for `[−1, 1]`).
    pub fn log_scale(self) -> f64 {
        match self {
            Scaling::Unit => 0.0,
            Scaling::Symmetric => std::f64::consts::LN_2,
        }
    }

    /// The bits/dim offset: `8 − log₂(dy/dx)`, i.e. 8 on `[0, 1]`, 7 on `[−1, 1]`.
    pub fn bpd_offset(self) -> f64 {
        LEVELS.log2() - self.log_scale() / std::f64::consts::LN_2
    }
}

/// The dequantized value `(k + u) / 256 ∈ (k/256, (k+1)/256)` of pixel `k` for `u ∈ (0, 1)`.
#[inline]
pub fn dequantize(pixel: u8, u: f64) -> f64 {
    (pixel as f64 + u) / LEVELS
}

/// Pixel `k / 255` in `[0, 1]` without noise (for display and evaluation without dequantization).
#[inline]
pub fn to_unit(pixel: u8) -> f64 {
    pixel as f64 / 255.0
}

/// The 8-bit level of a value of `[0, 1]` in dequantized units: `floor(256 x)`, clamped to 0..=255.
#[inline]
pub fn quantize(x: f64) -> u8 {
    (x * LEVELS).floor().clamp(0.0, 255.0) as u8
}

/// Bits/dim of 8-bit data from the NLL in nats of one example (all `dims` dimensions) under a
/// continuous density of the dequantized, scaled data: `nll / (dims ln 2) + offset`.
pub fn bits_per_dim(nll_nats: f64, dims: usize, scaling: Scaling) -> f64 {
    nll_nats / (dims as f64 * std::f64::consts::LN_2) + scaling.bpd_offset()
}

/// The inverse of [`bits_per_dim`]: the continuous NLL in nats of one example.
pub fn nats_from_bits_per_dim(bpd: f64, dims: usize, scaling: Scaling) -> f64 {
    (bpd - scaling.bpd_offset()) * dims as f64 * std::f64::consts::LN_2
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::LN_2;

    #[test]
    fn offsets_are_eight_and_seven_bits() {
        assert_eq!(Scaling::Unit.bpd_offset(), 8.0);
        assert!((Scaling::Symmetric.bpd_offset() - 7.0).abs() < 1e-15);
        assert_eq!(Scaling::for_sde(SdeKind::Vp), Scaling::Symmetric);
        assert_eq!(Scaling::for_sde(SdeKind::SubVp), Scaling::Symmetric);
        assert_eq!(Scaling::for_sde(SdeKind::Ve), Scaling::Unit);
    }

    #[test]
    fn uniform_densities_are_eight_bits_per_dim() {
        let d = 3072;
        // Uniform on [0,1]^D: density 1, NLL 0.
        assert_eq!(bits_per_dim(0.0, d, Scaling::Unit), 8.0);
        // Uniform on [-1,1]^D: density 2^-D, NLL = D ln 2.
        let nll = d as f64 * LN_2;
        assert!((bits_per_dim(nll, d, Scaling::Symmetric) - 8.0).abs() < 1e-12);
        // All mass on one pixel value: density 256^D on its bin of [0,1]^D, NLL = -D ln 256,
        // which is 0 bits (the discrete probability is 1).
        let nll = -(d as f64) * 256f64.ln();
        assert!(bits_per_dim(nll, d, Scaling::Unit).abs() < 1e-12);
        // The same on [-1,1]: the bin is 2/256 wide, density (128)^D.
        let nll = -(d as f64) * 128f64.ln();
        assert!(bits_per_dim(nll, d, Scaling::Symmetric).abs() < 1e-12);
    }

    #[test]
    fn a_hand_computed_gaussian_example() {
        // N(0, 1) per dim on [-1,1]-scaled data, evaluated at y = 0: NLL/dim = ln(2 pi)/2
        // = 0.918938533 nats = 1.325748 bits, + 7 = 8.325748 bits/dim.
        let d = 2;
        let nll = d as f64 * 0.5 * (2.0 * std::f64::consts::PI).ln();
        let bpd = bits_per_dim(nll, d, Scaling::Symmetric);
        assert!((bpd - 8.325_748_064).abs() < 1e-8, "{bpd}");
        assert!((nats_from_bits_per_dim(bpd, d, Scaling::Symmetric) - nll).abs() < 1e-12);
        // The paper's CIFAR-10 scale: 3.09 bits/dim on [-1,1] is (3.09 - 7) * 3072 ln 2 nats.
        let n = nats_from_bits_per_dim(3.09, 3072, Scaling::Symmetric);
        assert!((n - (-3.91 * 3072.0 * LN_2)).abs() < 1e-9, "{n}");
    }

    #[test]
    fn dequantized_values_stay_in_their_bins() {
        for k in [0u8, 1, 127, 254, 255] {
            for u in [1e-7, 0.5, 1.0 - 1e-7] {
                let x = dequantize(k, u);
                assert!(x > k as f64 / 256.0 && x < (k as f64 + 1.0) / 256.0);
                assert_eq!(quantize(x), k);
                let y = Scaling::Symmetric.scale(x);
                assert!((-1.0..=1.0).contains(&y));
                assert!((Scaling::Symmetric.unscale(y) - x).abs() < 1e-15);
            }
        }
        assert_eq!(dequantize(0, 0.5), 0.5 / 256.0);
        assert_eq!(dequantize(255, 0.5), 255.5 / 256.0);
        assert_eq!(
            Scaling::Symmetric.scale(dequantize(255, 0.5)),
            1.0 - 1.0 / 256.0
        );
        assert_eq!(to_unit(255), 1.0);
    }
}
