//! Small numeric helpers.

/// `max(a, b)` that propagates NaN (`f64::max` drops it, so a fold with it would
/// report a finite maximum over data that holds NaN).
pub fn max_nan(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// `max_i |a_i - b_i|` (NaN if any difference is NaN).
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, max_nan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_is_never_lost() {
        assert_eq!(max_nan(1.0, 2.0), 2.0);
        assert!(max_nan(f64::NAN, 2.0).is_nan() && max_nan(2.0, f64::NAN).is_nan());
        assert!(max_abs_diff(&[0.0, f64::NAN], &[0.0, 0.0]).is_nan());
        assert_eq!(max_abs_diff(&[1.0, -2.0], &[0.5, 0.0]), 2.0);
    }
}
