//! Two-dimensional toy data sets of the FFJORD / Residual-Flows papers.
//!
//! The generators follow FFJORD's `lib/toy_data.py` (which the INDM paper and
//! most flow and diffusion papers reuse), with two changes that make every
//! draw a pure function of its key:
//!
//! * all randomness comes from [`Counter::new`]`(seed, stream, step)`, and
//!   point `i` uses only its own block of [`DRAWS_PER_POINT`] raw draws, so
//!   `sample(n)` is a prefix of `sample(m)` for `m > n`;
//! * wherever FFJORD splits a batch deterministically between classes (exactly
//!   `n / 4` points per ring, the first half of the spirals unflipped, ...) or
//!   places points on an even `linspace` (scikit-learn's moons and circles),
//!   each point draws its class with a fair die and its curve parameter
//!   uniformly. The distribution is the continuum limit of FFJORD's.
//!
//! Point `i` of a counter `c` reads the standard normals `c.normal(4 i + j)`,
//! `j ∈ {0, 1}` (raw draws `8 i .. 8 i + 4`), and the uniforms
//! `c.uniform(8 i + 4 + k)`, `k ∈ {0, 1, 2, 3}` (raw draws `8 i + 4 .. 8 i + 8`).
//! Below, `N0, N1` are those normals and `U0 .. U3` those uniforms (guarded to at most
//! `1 - 2^-25`, see [`MAX_UNIFORM`]).
//!
//! For the sets whose density can be evaluated accurately
//! ([`Toy2d::log_density`]) the differential entropy is recorded
//! ([`Toy2d::true_entropy`]); it is the reference for likelihood (NLL in nats)
//! evaluations of trained models.

use std::f64::consts::{FRAC_1_SQRT_2, PI, TAU};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{IndmError, Result};
use crate::rng::{Counter, Stream};

/// Raw counter draws reserved for each point (two normals use four, plus four uniforms).
pub const DRAWS_PER_POINT: u32 = 8;

/// The most points one `(seed, stream, step)` family can hold: the raw draw
/// index `8 i + 7` must fit in a `u32`.
pub const MAX_POINTS: usize = (u32::MAX / DRAWS_PER_POINT) as usize + 1;

/// Upper clamp of every uniform: `1 - 2^-25`. [`Counter::uniform`] is at most
/// `1 - 2^-24`, so the clamp never binds today; it is kept as a guard so a uniform
/// can never reach 1 (which would put a `checkerboard` point on a square's edge).
const MAX_UNIFORM: f64 = 1.0 - 1.0 / 33_554_432.0;

/// FFJORD's normaliser for `8gaussians` (the literal `1.414`, not `√2`).
const EIGHT_GAUSSIANS_DIVISOR: f64 = 1.414;
/// Component standard deviation of `8gaussians` after the division.
const EIGHT_GAUSSIANS_STD: f64 = 0.5 / EIGHT_GAUSSIANS_DIVISOR;
/// Unit directions of the eight Gaussian centres (before scaling by 4).
const EIGHT_DIRECTIONS: [(f64, f64); 8] = [
    (1.0, 0.0),
    (-1.0, 0.0),
    (0.0, 1.0),
    (0.0, -1.0),
    (FRAC_1_SQRT_2, FRAC_1_SQRT_2),
    (FRAC_1_SQRT_2, -FRAC_1_SQRT_2),
    (-FRAC_1_SQRT_2, FRAC_1_SQRT_2),
    (-FRAC_1_SQRT_2, -FRAC_1_SQRT_2),
];
/// Noise standard deviation of `moons` in output units (0.1 before the ×2).
const MOONS_STD: f64 = 0.2;
/// Noise standard deviation of `swissroll` in output units (1.0 before the /5).
const SWISSROLL_STD: f64 = 0.2;
/// Ring radii of `rings` in output units (FFJORD's 0.25, 0.5, 0.75, 1 times 3).
const RING_RADII: [f64; 4] = [0.75, 1.5, 2.25, 3.0];
/// Noise standard deviation of `rings` (added after the ×3).
const RINGS_STD: f64 = 0.08;
/// Circle radii of `circles` in output units (scikit-learn's 1 and factor 0.5, times 3).
const CIRCLE_RADII: [f64; 2] = [3.0, 1.5];
/// Noise standard deviation of `circles` in output units (0.08 before the ×3).
const CIRCLES_STD: f64 = 0.24;

/// Recorded Monte Carlo entropies `(nats, std_error)`, computed once by the
/// ignored test `compute_entropies` with [`ENTROPY_MC_SAMPLES`] points of
/// `sample(.., ENTROPY_MC_SEED, 0, Stream::Eval)` and the exact
/// [`Toy2d::log_density`].
const ENTROPY_8GAUSSIANS: (f64, f64) = (2.831_837_895, 3.082e-4);
/// See [`ENTROPY_8GAUSSIANS`].
const ENTROPY_MOONS: (f64, f64) = (2.393_975_875, 2.364e-4);
/// See [`ENTROPY_8GAUSSIANS`].
const ENTROPY_SWISSROLL: (f64, f64) = (2.669_509_060, 2.434e-4);
/// See [`ENTROPY_8GAUSSIANS`].
const ENTROPY_RINGS: (f64, f64) = (2.623_159_199, 2.778e-4);
/// See [`ENTROPY_8GAUSSIANS`].
const ENTROPY_CIRCLES: (f64, f64) = (3.268_225_832, 2.450e-4);
/// Points used for the recorded Monte Carlo entropies.
pub const ENTROPY_MC_SAMPLES: usize = 10_000_000;
/// Seed used for the recorded Monte Carlo entropies (stream [`Stream::Eval`], step 0).
pub const ENTROPY_MC_SEED: u64 = 0x0E47_2095;

/// A two-dimensional toy data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Toy2d {
    /// `checkerboard`: uniform on 8 squares of side 2 in `[-4, 4]²`.
    Checkerboard,
    /// `8gaussians`: equal mixture of 8 Gaussians on a circle.
    #[serde(rename = "8gaussians")]
    EightGaussians,
    /// `moons`: scikit-learn's two interleaving half circles.
    #[serde(rename = "moons")]
    TwoMoons,
    /// `swissroll`: scikit-learn's swiss roll seen from above.
    #[serde(rename = "swissroll")]
    SwissRoll,
    /// `2spirals`: two interleaved spirals.
    #[serde(rename = "2spirals")]
    TwoSpirals,
    /// `pinwheel`: five curved arms.
    Pinwheel,
    /// `rings`: four concentric noisy circles.
    Rings,
    /// `circles`: scikit-learn's two concentric noisy circles.
    Circles,
}

/// A differential entropy `h(X) = -E[ln p(X)]` in nats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entropy {
    /// The entropy in nats.
    pub nats: f64,
    /// Standard error of `nats` (0 for a closed form).
    pub std_error: f64,
    /// How it was obtained, e.g. `"closed form"` or `"monte carlo"`.
    pub method: &'static str,
}

/// The draws of one point: normals `N0, N1` and uniforms `U0 .. U3`.
struct PointDraws<'a> {
    counter: &'a Counter,
    index: u32,
}

impl PointDraws<'_> {
    /// Standard normal `Nj`, `j ∈ {0, 1}` (raw draws `8 i + 2 j`, `8 i + 2 j + 1`).
    #[inline]
    fn normal(&self, j: u32) -> f64 {
        debug_assert!(j < 2);
        self.counter.normal(self.index * 4 + j)
    }

    /// Uniform `Uk` in (0, 1), `k ∈ {0, 1, 2, 3}` (raw draw `8 i + 4 + k`), at most
    /// [`MAX_UNIFORM`].
    #[inline]
    fn uniform(&self, k: u32) -> f64 {
        debug_assert!(k < 4);
        self.counter
            .uniform(self.index * DRAWS_PER_POINT + 4 + k)
            .min(MAX_UNIFORM)
    }

    /// A class in `0..classes` from `U{k}` (`floor(classes · U)`).
    #[inline]
    fn class(&self, k: u32, classes: usize) -> usize {
        ((self.uniform(k) * classes as f64) as usize).min(classes - 1)
    }
}

impl Toy2d {
    /// Every data set, in the order of [`Toy2d::names`].
    pub const ALL: [Toy2d; 8] = [
        Toy2d::Checkerboard,
        Toy2d::EightGaussians,
        Toy2d::TwoMoons,
        Toy2d::SwissRoll,
        Toy2d::TwoSpirals,
        Toy2d::Pinwheel,
        Toy2d::Rings,
        Toy2d::Circles,
    ];

    /// The data set's name (FFJORD's, also used by serde and the command line).
    pub fn name(self) -> &'static str {
        match self {
            Toy2d::Checkerboard => "checkerboard",
            Toy2d::EightGaussians => "8gaussians",
            Toy2d::TwoMoons => "moons",
            Toy2d::SwissRoll => "swissroll",
            Toy2d::TwoSpirals => "2spirals",
            Toy2d::Pinwheel => "pinwheel",
            Toy2d::Rings => "rings",
            Toy2d::Circles => "circles",
        }
    }

    /// All valid names, in the order of [`Toy2d::ALL`].
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|d| d.name()).collect()
    }

    /// The data set called `s` (exact match), or [`IndmError::UnknownName`] listing the valid names.
    pub fn from_name(s: &str) -> Result<Toy2d> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| IndmError::unknown("data set", s, &Self::names()))
    }

    /// `n` points flattened row-major, `[x0, y0, x1, y1, ...]`.
    ///
    /// Point `i` is [`Toy2d::sample_point`]`(&Counter::new(seed, stream, step), i)`, so the
    /// result is a pure function of `(seed, step, stream)` and `sample(n)` is a prefix of
    /// `sample(m)` for `m > n`.
    ///
    /// # Panics
    /// If `n > MAX_POINTS`.
    pub fn sample(self, n: usize, seed: u64, step: u64, stream: Stream) -> Vec<f64> {
        assert!(
            n <= MAX_POINTS,
            "at most {MAX_POINTS} points per (seed, stream, step), asked for {n}"
        );
        let counter = Counter::new(seed, stream, step);
        let mut out = Vec::with_capacity(2 * n);
        for i in 0..n {
            out.extend_from_slice(&self.sample_point(&counter, i));
        }
        out
    }

    /// Point `index` of the family `counter`; it reads only raw draws
    /// `8 index .. 8 index + 8` (see the module documentation).
    ///
    /// With `N0, N1` standard normals and `U0 .. U3` uniforms on (0, 1):
    ///
    /// * `checkerboard`: `x1 = 4 U0 - 2`, `x2' = U1 - 2 [U2 < 1/2]`,
    ///   `x2 = x2' + (floor(x1) mod 2)` (Euclidean remainder, as Python's `%`),
    ///   point `= 2 (x1, x2)`.
    /// * `8gaussians`: centre `c = 4 d_k` with `k = floor(8 U0)` and `d_k` one of
    ///   `(±1, 0), (0, ±1), (±1/√2, ±1/√2)`; point `= (0.5 (N0, N1) + c) / 1.414`.
    /// * `moons`: `s = π U0`; outer moon if `U1 < 1/2`: `m = (cos s, sin s)`, else inner
    ///   moon `m = (1 - cos s, 1 - sin s - 0.5)`; point `= 2 (m + 0.1 (N0, N1)) + (-1, -0.2)`.
    /// * `swissroll`: `t = 1.5 π (1 + 2 U0)`; point `= (t cos t + N0, t sin t + N1) / 5`.
    /// * `2spirals`: `r = √U0 · 540 · 2π / 360`, `d = (-r cos r + 0.5 U1, r sin r + 0.5 U2)`,
    ///   `σ = +1` if `U3 < 1/2` else `-1`; point `= σ d / 3 + 0.1 (N0, N1)`.
    /// * `pinwheel`: class `k = floor(5 U0)`, `f = (1 + 0.3 N0, 0.1 N1)`,
    ///   `a = 2π k / 5 + 0.25 exp(f.x)`; point `= 2 (f.x cos a + f.y sin a, -f.x sin a + f.y cos a)`
    ///   (FFJORD's `einsum("ti,tij->tj")`, a row vector times `[[cos, -sin], [sin, cos]]`).
    /// * `rings`: radius `r = 0.75 (1 + floor(4 U0)) ∈ {0.75, 1.5, 2.25, 3}`, `θ = 2π U1`;
    ///   point `= r (cos θ, sin θ) + 0.08 (N0, N1)` (FFJORD: radii 0.25 .. 1 times 3, noise
    ///   after scaling).
    /// * `circles`: `r = 1` if `U0 < 1/2` else `0.5`, `θ = 2π U1`;
    ///   point `= 3 (r (cos θ, sin θ) + 0.08 (N0, N1))` (scikit-learn `make_circles(factor=0.5,
    ///   noise=0.08)` times 3).
    ///
    /// # Panics
    /// If `index >= MAX_POINTS`.
    pub fn sample_point(self, counter: &Counter, index: usize) -> [f64; 2] {
        assert!(index < MAX_POINTS, "point index {index} >= {MAX_POINTS}");
        let d = PointDraws {
            counter,
            index: index as u32,
        };
        match self {
            Toy2d::Checkerboard => {
                let x1 = 4.0 * d.uniform(0) - 2.0;
                let flip = if d.uniform(2) < 0.5 { 1.0 } else { 0.0 };
                let x2 = d.uniform(1) - 2.0 * flip + x1.floor().rem_euclid(2.0);
                [2.0 * x1, 2.0 * x2]
            }
            Toy2d::EightGaussians => {
                let (cx, cy) = EIGHT_DIRECTIONS[d.class(0, 8)];
                [
                    (0.5 * d.normal(0) + 4.0 * cx) / EIGHT_GAUSSIANS_DIVISOR,
                    (0.5 * d.normal(1) + 4.0 * cy) / EIGHT_GAUSSIANS_DIVISOR,
                ]
            }
            Toy2d::TwoMoons => {
                let (sin, cos) = (PI * d.uniform(0)).sin_cos();
                let (mx, my) = if d.uniform(1) < 0.5 {
                    (cos, sin)
                } else {
                    (1.0 - cos, 1.0 - sin - 0.5)
                };
                [
                    2.0 * (mx + 0.1 * d.normal(0)) - 1.0,
                    2.0 * (my + 0.1 * d.normal(1)) - 0.2,
                ]
            }
            Toy2d::SwissRoll => {
                let t = 1.5 * PI * (1.0 + 2.0 * d.uniform(0));
                let (sin, cos) = t.sin_cos();
                [(t * cos + d.normal(0)) / 5.0, (t * sin + d.normal(1)) / 5.0]
            }
            Toy2d::TwoSpirals => {
                let r = d.uniform(0).sqrt() * 540.0 * TAU / 360.0;
                let (sin, cos) = r.sin_cos();
                let dx = -cos * r + 0.5 * d.uniform(1);
                let dy = sin * r + 0.5 * d.uniform(2);
                let sign = if d.uniform(3) < 0.5 { 1.0 } else { -1.0 };
                [
                    sign * dx / 3.0 + 0.1 * d.normal(0),
                    sign * dy / 3.0 + 0.1 * d.normal(1),
                ]
            }
            Toy2d::Pinwheel => {
                let k = d.class(0, 5) as f64;
                let fx = 0.3 * d.normal(0) + 1.0;
                let fy = 0.1 * d.normal(1);
                let a = k * TAU / 5.0 + 0.25 * fx.exp();
                let (sin, cos) = a.sin_cos();
                [2.0 * (fx * cos + fy * sin), 2.0 * (-fx * sin + fy * cos)]
            }
            Toy2d::Rings => {
                let r = RING_RADII[d.class(0, 4)];
                let (sin, cos) = (TAU * d.uniform(1)).sin_cos();
                [
                    r * cos + RINGS_STD * d.normal(0),
                    r * sin + RINGS_STD * d.normal(1),
                ]
            }
            Toy2d::Circles => {
                let r = if d.uniform(0) < 0.5 { 1.0 } else { 0.5 };
                let (sin, cos) = (TAU * d.uniform(1)).sin_cos();
                [
                    3.0 * (r * cos + 0.08 * d.normal(0)),
                    3.0 * (r * sin + 0.08 * d.normal(1)),
                ]
            }
        }
    }

    /// The exact log density `ln p(x, y)` of the data distribution (continuum limit of
    /// [`Toy2d::sample_point`], ignoring the 24-bit resolution of the uniforms), or `None`
    /// where it is not implemented (`2spirals`, `pinwheel`).
    ///
    /// * `checkerboard`: `-ln 32` on the 8 squares `[2i, 2i+2) × [2j, 2j+2)`,
    ///   `i, j ∈ {-2, .., 1}`, `i + j` even; `-∞` elsewhere.
    /// * `8gaussians`: `ln( (1/8) Σ_k N((x, y); 4 d_k / 1.414, (0.5 / 1.414)² I) )`.
    /// * `rings`, `circles`: each circle of radius `r` blurred by `N(0, σ² I)` has the closed
    ///   form `(1 / 2π) ∫ N(x; r e(θ), σ² I) dθ = exp(-(ρ - r)² / 2σ²) I0e(r ρ / σ²) / (2π σ²)`
    ///   with `ρ = |x|` and `I0e(z) = e^{-z} I0(z)`; the classes are mixed with equal weights.
    /// * `moons`, `swissroll`: `p(x) = ∫ N(x; c(t), σ² I) p(t) dt` over the curve parameter
    ///   (`moons`: two half circles of radius 2, `t ~ U(0, π)`, `σ = 0.2`; `swissroll`:
    ///   `c(t) = (t cos t, t sin t) / 5`, `t ~ U(1.5π, 4.5π)`, `σ = 0.2`), by composite Simpson
    ///   on the parameter windows where the integrand exceeds `e^-36` times its maximum, with
    ///   steps of at most `0.05 σ` along the curve (error of `ln p` below `1e-6`; see the tests).
    pub fn log_density(self, x: f64, y: f64) -> Option<f64> {
        self.log_density_with(x, y, DEFAULT_RESOLUTION)
    }

    /// [`Toy2d::log_density`] with the curve-quadrature step `resolution · σ` along the curve.
    fn log_density_with(self, x: f64, y: f64, resolution: f64) -> Option<f64> {
        match self {
            Toy2d::Checkerboard => {
                let (i, j) = ((x / 2.0).floor(), (y / 2.0).floor());
                let inside = (-2.0..=1.0).contains(&i)
                    && (-2.0..=1.0).contains(&j)
                    && (i + j).rem_euclid(2.0) == 0.0;
                Some(if inside {
                    -(32f64.ln())
                } else {
                    f64::NEG_INFINITY
                })
            }
            Toy2d::EightGaussians => {
                let s2 = EIGHT_GAUSSIANS_STD * EIGHT_GAUSSIANS_STD;
                let terms = EIGHT_DIRECTIONS.map(|(dx, dy)| {
                    let mx = 4.0 * dx / EIGHT_GAUSSIANS_DIVISOR;
                    let my = 4.0 * dy / EIGHT_GAUSSIANS_DIVISOR;
                    -((x - mx).powi(2) + (y - my).powi(2)) / (2.0 * s2)
                });
                Some(log_sum_exp(&terms) - 8f64.ln() - (TAU * s2).ln())
            }
            Toy2d::Rings => Some(log_sum_exp(
                &RING_RADII.map(|r| log_noisy_circle(x, y, r, RINGS_STD) - 4f64.ln()),
            )),
            Toy2d::Circles => Some(log_sum_exp(
                &CIRCLE_RADII.map(|r| log_noisy_circle(x, y, r, CIRCLES_STD) - 2f64.ln()),
            )),
            Toy2d::TwoMoons => Some(log_sum_exp(
                &MOON_CURVES.map(|c| c.log_density(x, y, resolution) - 2f64.ln()),
            )),
            Toy2d::SwissRoll => Some(SWISSROLL_CURVE.log_density(x, y, resolution)),
            Toy2d::TwoSpirals | Toy2d::Pinwheel => None,
        }
    }

    /// The differential entropy `-E[ln p(X)]` in nats, or `None` where no reliable density
    /// is available (`2spirals`, `pinwheel`).
    ///
    /// * `checkerboard`: uniform on area 32, so exactly `ln 32` (`"closed form"`).
    /// * `8gaussians`, `moons`, `swissroll`, `rings`, `circles`: Monte Carlo mean of
    ///   `-ln p(x_i)` over [`ENTROPY_MC_SAMPLES`] points `x_i` of
    ///   `sample(.., ENTROPY_MC_SEED, 0, Stream::Eval)` with the exact [`Toy2d::log_density`];
    ///   `std_error` is the sample standard deviation over `√N` (`"monte carlo"`).
    pub fn true_entropy(self) -> Option<Entropy> {
        let mc = |(nats, std_error): (f64, f64)| {
            Some(Entropy {
                nats,
                std_error,
                method: "monte carlo",
            })
        };
        match self {
            Toy2d::Checkerboard => Some(Entropy {
                nats: 32f64.ln(),
                std_error: 0.0,
                method: "closed form",
            }),
            Toy2d::EightGaussians => mc(ENTROPY_8GAUSSIANS),
            Toy2d::TwoMoons => mc(ENTROPY_MOONS),
            Toy2d::SwissRoll => mc(ENTROPY_SWISSROLL),
            Toy2d::Rings => mc(ENTROPY_RINGS),
            Toy2d::Circles => mc(ENTROPY_CIRCLES),
            Toy2d::TwoSpirals | Toy2d::Pinwheel => None,
        }
    }
}

impl FromStr for Toy2d {
    type Err = IndmError;

    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s)
    }
}

impl fmt::Display for Toy2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `ln Σ exp(v_i)` without overflow; `-∞` when every term is `-∞`.
fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.iter().map(|&t| (t - m).exp()).sum::<f64>().ln()
}

/// `ln I0e(z) = ln(e^{-z} I0(z))` for `z ≥ 0`, to about 1e-15 relative.
///
/// Power series `I0(z) = Σ (z²/4)^k / (k!)²` for `z ≤ 30`; above, the asymptotic series
/// `I0e(z) = (2π z)^{-1/2} Σ a_k z^{-k}`, `a_k = a_{k-1} (2k - 1)² / (8k)`, whose smallest
/// term at `z > 30` is below `1e-20`.
fn ln_i0e(z: f64) -> f64 {
    debug_assert!(z >= 0.0);
    if z <= 30.0 {
        let q = 0.25 * z * z;
        let (mut term, mut sum, mut k) = (1.0f64, 1.0f64, 0.0f64);
        loop {
            k += 1.0;
            term *= q / (k * k);
            sum += term;
            if term < 1e-17 * sum {
                break;
            }
        }
        sum.ln() - z
    } else {
        let (mut term, mut sum, mut k) = (1.0f64, 1.0f64, 0.0f64);
        loop {
            k += 1.0;
            let next = term * (2.0 * k - 1.0).powi(2) / (8.0 * k * z);
            if next < 1e-17 || next > term {
                break;
            }
            term = next;
            sum += term;
        }
        sum.ln() - 0.5 * (TAU * z).ln()
    }
}

/// `ln` of the density at `(x, y)` of a uniform point on the circle of radius `r` about the
/// origin plus `N(0, σ² I)` noise: `-(ρ - r)² / 2σ² + ln I0e(r ρ / σ²) - ln(2π σ²)`.
fn log_noisy_circle(x: f64, y: f64, r: f64, sigma: f64) -> f64 {
    let rho = x.hypot(y);
    let s2 = sigma * sigma;
    -(rho - r).powi(2) / (2.0 * s2) + ln_i0e(r * rho / s2) - (TAU * s2).ln()
}

/// Default curve-quadrature step along the curve, in units of the noise `σ`.
const DEFAULT_RESOLUTION: f64 = 0.05;
/// Parameter windows keep the integrand down to `e^-WINDOW_CUT` times its maximum.
const WINDOW_CUT: f64 = 36.0;

/// A planar curve `c(t)`.
#[derive(Clone, Copy, Debug)]
enum Curve {
    /// `centre + radius (cos t, sin t)` (a negative radius turns the arc by π).
    Arc { cx: f64, cy: f64, radius: f64 },
    /// `(t cos t, t sin t) / 5`.
    Spiral,
}

impl Curve {
    /// The point `c(t)`.
    #[inline]
    fn point(self, t: f64) -> (f64, f64) {
        let (sin, cos) = t.sin_cos();
        match self {
            Curve::Arc { cx, cy, radius } => (cx + radius * cos, cy + radius * sin),
            Curve::Spiral => (t * cos / 5.0, t * sin / 5.0),
        }
    }

    /// An upper bound of the speed `|c'(t)|` on `[a, b]` (`0 ≤ a ≤ b` for the spiral).
    fn speed_bound(self, a: f64, b: f64) -> f64 {
        match self {
            Curve::Arc { radius, .. } => radius.abs(),
            Curve::Spiral => (1.0 + a.abs().max(b.abs()).powi(2)).sqrt() / 5.0,
        }
    }
}

/// A curve point `c(t)`, `t ~ U(t0, t1)`, plus isotropic `N(0, σ² I)` noise.
#[derive(Clone, Copy, Debug)]
struct NoisyCurve {
    curve: Curve,
    t0: f64,
    t1: f64,
    sigma: f64,
}

/// The two `moons` (outer: centre (-1, -0.2); inner: `2 (1 - cos s, 0.5 - sin s) + (-1, -0.2)`
/// = `(1, 0.8) - 2 (cos s, sin s)`), each `s ~ U(0, π)`.
const MOON_CURVES: [NoisyCurve; 2] = [
    NoisyCurve {
        curve: Curve::Arc {
            cx: -1.0,
            cy: -0.2,
            radius: 2.0,
        },
        t0: 0.0,
        t1: PI,
        sigma: MOONS_STD,
    },
    NoisyCurve {
        curve: Curve::Arc {
            cx: 1.0,
            cy: 0.8,
            radius: -2.0,
        },
        t0: 0.0,
        t1: PI,
        sigma: MOONS_STD,
    },
];

/// The `swissroll` curve, `t ~ U(1.5π, 4.5π)`.
const SWISSROLL_CURVE: NoisyCurve = NoisyCurve {
    curve: Curve::Spiral,
    t0: 1.5 * PI,
    t1: 4.5 * PI,
    sigma: SWISSROLL_STD,
};

impl NoisyCurve {
    /// `ln p(x, y)` with `p(x) = (1 / (t1 - t0)) ∫ N(x; c(t), σ² I) dt`.
    ///
    /// A coarse scan with steps of at most `σ` along the curve bounds the distance
    /// `d(t) = |x - c(t)|` from below on each cell (`d ≥ min(ends) - σ/2`); the cells that may
    /// reach `d² ≤ d_min² + 2 σ² · 36` are integrated by composite Simpson with steps of at
    /// most `resolution · σ` along the curve.
    fn log_density(&self, x: f64, y: f64, resolution: f64) -> f64 {
        let s2 = self.sigma * self.sigma;
        let len = self.t1 - self.t0;
        let vmax = self.curve.speed_bound(self.t0, self.t1);
        let cells = ((len * vmax / self.sigma).ceil() as usize).max(4);
        let hc = len / cells as f64;
        let dist2 = |t: f64| {
            let (px, py) = self.curve.point(t);
            (x - px).powi(2) + (y - py).powi(2)
        };
        let d: Vec<f64> = (0..=cells)
            .map(|i| dist2(self.t0 + i as f64 * hc).sqrt())
            .collect();
        let dmin = d.iter().copied().fold(f64::INFINITY, f64::min);
        let d2min = dmin * dmin;
        let threshold = (d2min + 2.0 * s2 * WINDOW_CUT).sqrt();
        let margin = 0.5 * vmax * hc;
        let active: Vec<bool> = d
            .windows(2)
            .map(|w| w[0].min(w[1]) - margin <= threshold)
            .collect();
        let mut total = 0.0;
        let mut j = 0;
        while j < cells {
            if !active[j] {
                j += 1;
                continue;
            }
            let start = j;
            while j < cells && active[j] {
                j += 1;
            }
            let a = self.t0 + start as f64 * hc;
            let b = if j == cells {
                self.t1
            } else {
                self.t0 + j as f64 * hc
            };
            let v = self.curve.speed_bound(a, b);
            let mut n = ((b - a) * v / (self.sigma * resolution)).ceil() as usize;
            n = (n + n % 2).max(2);
            let h = (b - a) / n as f64;
            let f = |t: f64| (-(dist2(t) - d2min) / (2.0 * s2)).exp();
            let mut sum = f(a) + f(b);
            for k in 1..n {
                let w = if k % 2 == 1 { 4.0 } else { 2.0 };
                sum += w * f(a + k as f64 * h);
            }
            total += sum * h / 3.0;
        }
        total.ln() - d2min / (2.0 * s2) - (TAU * s2).ln() - len.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monte Carlo `(mean, std_error)` of `-ln p(x_i)` over points `0..n` of `sample(.., seed, 0,
    /// stream)`, on `threads` threads.
    fn mc_entropy(set: Toy2d, n: usize, seed: u64, stream: Stream, threads: usize) -> (f64, f64) {
        let counter = Counter::new(seed, stream, 0);
        let chunk = n.div_ceil(threads);
        // Sums of v and v² with v = -ln p - shift, shift the value at point 0, to limit
        // cancellation.
        let [x, y] = set.sample_point(&counter, 0);
        let shift = -set.log_density(x, y).expect("density");
        let partial: Vec<(f64, f64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let counter = &counter;
                    scope.spawn(move || {
                        let (mut s1, mut s2) = (0.0, 0.0);
                        for i in (t * chunk)..((t + 1) * chunk).min(n) {
                            let [x, y] = set.sample_point(counter, i);
                            let v = -set.log_density(x, y).expect("density") - shift;
                            s1 += v;
                            s2 += v * v;
                        }
                        (s1, s2)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        let (s1, s2) = partial
            .iter()
            .fold((0.0, 0.0), |(a, b), &(c, d)| (a + c, b + d));
        let nf = n as f64;
        let mean = s1 / nf;
        let var = ((s2 / nf - mean * mean) * nf / (nf - 1.0)).max(0.0);
        (mean + shift, (var / nf).sqrt())
    }

    /// Midpoint-rule integral of `exp(log_density)` over `[x0, x1] × [y0, y1]` with step `h`.
    fn grid_mass(set: Toy2d, x0: f64, x1: f64, y0: f64, y1: f64, h: f64) -> f64 {
        let nx = ((x1 - x0) / h).round() as usize;
        let ny = ((y1 - y0) / h).round() as usize;
        let mut mass = 0.0;
        for i in 0..nx {
            let x = x0 + (i as f64 + 0.5) * h;
            for j in 0..ny {
                let y = y0 + (j as f64 + 0.5) * h;
                mass += set.log_density(x, y).expect("density").exp();
            }
        }
        mass * h * h
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(
            Toy2d::names(),
            [
                "checkerboard",
                "8gaussians",
                "moons",
                "swissroll",
                "2spirals",
                "pinwheel",
                "rings",
                "circles"
            ]
        );
        for set in Toy2d::ALL {
            assert_eq!(Toy2d::from_name(set.name()).unwrap(), set);
            assert_eq!(set.name().parse::<Toy2d>().unwrap(), set);
            assert_eq!(set.to_string(), set.name());
            let json = serde_json::to_string(&set).unwrap();
            assert_eq!(json, format!("\"{}\"", set.name()));
            assert_eq!(serde_json::from_str::<Toy2d>(&json).unwrap(), set);
        }
    }

    #[test]
    fn unknown_name_lists_the_valid_names() {
        let err = Toy2d::from_name("spirals").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("data set") && msg.contains("'spirals'"),
            "{msg}"
        );
        for name in Toy2d::names() {
            assert!(msg.contains(name), "{msg} lacks {name}");
        }
        assert!(matches!(err, IndmError::UnknownName { .. }));
        assert!("Moons".parse::<Toy2d>().is_err());
    }

    #[test]
    fn samples_are_prefixes_of_longer_samples() {
        for set in Toy2d::ALL {
            let short = set.sample(37, 5, 2, Stream::Data);
            let long = set.sample(1000, 5, 2, Stream::Data);
            assert_eq!(short.len(), 74);
            assert_eq!(long.len(), 2000);
            assert_eq!(short[..], long[..74], "{set}");
            assert!(long.iter().all(|v| v.is_finite()), "{set}");
        }
    }

    #[test]
    fn samples_are_deterministic_and_keyed() {
        for set in Toy2d::ALL {
            let a = set.sample(200, 9, 3, Stream::Data);
            assert_eq!(a, set.sample(200, 9, 3, Stream::Data), "{set}");
            assert_ne!(a, set.sample(200, 10, 3, Stream::Data), "{set}");
            assert_ne!(a, set.sample(200, 9, 4, Stream::Data), "{set}");
            assert_ne!(a, set.sample(200, 9, 3, Stream::TestData), "{set}");
            let c = Counter::new(9, Stream::Data, 3);
            assert_eq!(set.sample_point(&c, 150)[..], a[300..302], "{set}");
        }
    }

    #[test]
    fn checkerboard_fills_its_eight_squares_evenly() {
        let n = 200_000;
        let xs = Toy2d::Checkerboard.sample(n, 1, 0, Stream::Data);
        let mut counts = std::collections::HashMap::new();
        for p in xs.chunks_exact(2) {
            let (i, j) = ((p[0] / 2.0).floor() as i32, (p[1] / 2.0).floor() as i32);
            assert!((-2..=1).contains(&i) && (-2..=1).contains(&j), "{p:?}");
            assert_eq!((i + j).rem_euclid(2), 0, "{p:?} is on a white square");
            *counts.entry((i, j)).or_insert(0usize) += 1;
        }
        assert_eq!(counts.len(), 8);
        let e = n as f64 / 8.0;
        let chi2: f64 = counts.values().map(|&c| (c as f64 - e).powi(2) / e).sum();
        // Chi-square with 7 degrees of freedom: the 99.9% quantile is 24.32.
        assert!(chi2 < 24.32, "chi2 = {chi2}, counts {counts:?}");
    }

    #[test]
    fn eight_gaussians_components_have_their_means_and_weights() {
        let n = 160_000;
        let xs = Toy2d::EightGaussians.sample(n, 2, 0, Stream::Data);
        let centres = EIGHT_DIRECTIONS.map(|(x, y)| {
            (
                4.0 * x / EIGHT_GAUSSIANS_DIVISOR,
                4.0 * y / EIGHT_GAUSSIANS_DIVISOR,
            )
        });
        let mut sums = [(0.0, 0.0, 0usize); 8];
        for p in xs.chunks_exact(2) {
            let dist = |c: &(f64, f64)| (p[0] - c.0).powi(2) + (p[1] - c.1).powi(2);
            let k = (0..8)
                .min_by(|&a, &b| dist(&centres[a]).total_cmp(&dist(&centres[b])))
                .unwrap();
            sums[k].0 += p[0];
            sums[k].1 += p[1];
            sums[k].2 += 1;
        }
        for ((sx, sy, count), (cx, cy)) in sums.into_iter().zip(centres) {
            let m = count as f64;
            let frac = m / n as f64;
            assert!(
                (frac - 0.125).abs() < 5.0 * (0.125 * 0.875 / n as f64).sqrt(),
                "weight {frac}"
            );
            let tol = 5.0 * EIGHT_GAUSSIANS_STD / m.sqrt();
            assert!((sx / m - cx).abs() < tol, "mean x {} vs {cx}", sx / m);
            assert!((sy / m - cy).abs() < tol, "mean y {} vs {cy}", sy / m);
        }
    }

    #[test]
    fn swissroll_and_rings_have_the_right_radii() {
        let xs = Toy2d::Rings.sample(40_000, 3, 0, Stream::Data);
        for p in xs.chunks_exact(2) {
            let rho = p[0].hypot(p[1]);
            let gap = RING_RADII
                .iter()
                .map(|r| (rho - r).abs())
                .fold(f64::INFINITY, f64::min);
            assert!(gap < 6.0 * RINGS_STD, "rho {rho}");
        }
        let xs = Toy2d::SwissRoll.sample(40_000, 3, 0, Stream::Data);
        for p in xs.chunks_exact(2) {
            let rho = p[0].hypot(p[1]);
            assert!(rho < 4.5 * PI / 5.0 + 1.5, "rho {rho}");
        }
    }

    #[test]
    fn bessel_i0e_matches_reference_values() {
        // I0(1), I0(10) (Abramowitz & Stegun table 9.8).
        assert!((ln_i0e(1.0) - (1.266_065_877_752_008f64.ln() - 1.0)).abs() < 1e-14);
        assert!((ln_i0e(10.0) - (2_815.716_628_466_254f64.ln() - 10.0)).abs() < 1e-13);
        assert_eq!(ln_i0e(0.0), 0.0);
        // Both branches agree at the switch, and the asymptotic branch matches quadrature.
        let below = ln_i0e(30.0);
        let (mut term, mut sum, mut k) = (1.0f64, 1.0f64, 0.0f64);
        while k < 40.0 {
            k += 1.0;
            term *= (2.0 * k - 1.0).powi(2) / (8.0 * k * 30.0);
            sum += term;
        }
        let above = sum.ln() - 0.5 * (TAU * 30.0).ln();
        assert!((below - above).abs() < 1e-13, "{below} vs {above}");
        for z in [31.0, 100.0, 2500.0] {
            // I0e(z) = (1/π) ∫_0^π exp(z (cos θ - 1)) dθ, trapezoid (spectrally accurate).
            let m = 20_000;
            let h = PI / m as f64;
            let q: f64 = (0..=m)
                .map(|i| {
                    let w = if i == 0 || i == m { 0.5 } else { 1.0 };
                    w * (z * ((i as f64 * h).cos() - 1.0)).exp()
                })
                .sum::<f64>()
                * h
                / PI;
            assert!(
                (ln_i0e(z) - q.ln()).abs() < 1e-12,
                "z {z}: {} vs {}",
                ln_i0e(z),
                q.ln()
            );
        }
    }

    #[test]
    fn closed_form_circle_matches_curve_quadrature() {
        for &(x, y) in &[(0.0, 0.0), (1.4, 0.3), (-2.0, 2.2), (3.1, -0.1), (0.1, 5.0)] {
            for (r, sigma) in [(3.0, 0.08), (1.5, 0.24), (0.75, 0.08)] {
                let curve = NoisyCurve {
                    curve: Curve::Arc {
                        cx: 0.0,
                        cy: 0.0,
                        radius: r,
                    },
                    t0: 0.0,
                    t1: TAU,
                    sigma,
                };
                let exact = log_noisy_circle(x, y, r, sigma);
                let quad = curve.log_density(x, y, DEFAULT_RESOLUTION);
                assert!(
                    (exact - quad).abs() < 1e-6,
                    "({x}, {y}) r {r}: {exact} vs {quad}"
                );
            }
        }
    }

    #[test]
    fn curve_quadrature_has_converged() {
        for set in [Toy2d::TwoMoons, Toy2d::SwissRoll] {
            let xs = set.sample(2000, 4, 0, Stream::TestData);
            let mut worst = 0.0f64;
            for p in xs
                .chunks_exact(2)
                .chain([&[0.0, 0.0][..], &[6.0, -5.0][..]])
            {
                let coarse = set
                    .log_density_with(p[0], p[1], DEFAULT_RESOLUTION)
                    .unwrap();
                let fine = set
                    .log_density_with(p[0], p[1], DEFAULT_RESOLUTION / 2.0)
                    .unwrap();
                let finest = set
                    .log_density_with(p[0], p[1], DEFAULT_RESOLUTION / 8.0)
                    .unwrap();
                worst = worst.max((coarse - finest).abs());
                // Simpson is fourth order: halving the step cuts the error about 16-fold.
                assert!((fine - finest).abs() < 1e-7, "{set} at {p:?}");
            }
            assert!(worst < 1e-6, "{set}: worst error {worst}");
        }
    }

    #[test]
    fn log_density_integrates_to_one() {
        let cases = [
            (Toy2d::Checkerboard, [-4.5, 4.5, -4.5, 4.5], 0.05, 1e-12),
            (Toy2d::EightGaussians, [-6.5, 6.5, -6.5, 6.5], 0.1, 1e-9),
            (Toy2d::TwoMoons, [-5.5, 5.5, -4.0, 4.5], 0.1, 1e-6),
            (Toy2d::SwissRoll, [-5.5, 5.5, -5.5, 5.5], 0.1, 1e-6),
            (Toy2d::Rings, [-4.0, 4.0, -4.0, 4.0], 0.04, 1e-9),
            (Toy2d::Circles, [-5.6, 5.6, -5.6, 5.6], 0.1, 1e-9),
        ];
        for (set, [x0, x1, y0, y1], h, tol) in cases {
            let mass = grid_mass(set, x0, x1, y0, y1, h);
            assert!((mass - 1.0).abs() < tol, "{set}: mass {mass}");
        }
        for set in Toy2d::ALL {
            let has = set.log_density(0.3, 0.2).is_some();
            assert_eq!(has, set.true_entropy().is_some(), "{set}");
        }
        assert_eq!(Toy2d::TwoSpirals.log_density(0.0, 0.0), None);
        assert_eq!(Toy2d::Pinwheel.true_entropy(), None);
    }

    #[test]
    fn uniforms_that_round_to_one_stay_inside_the_checkerboard() {
        // Regression: for this key U0 of point 1_325_500 has all top bits set; it used to
        // round to exactly 1.0 (putting the point on the edge x = 4). It is now 1 - 2^-24.
        let c = Counter::new(ENTROPY_MC_SEED, Stream::Eval, 0);
        let u = c.uniform(1_325_500 * DRAWS_PER_POINT + 4);
        assert!(u > 1.0 - 1e-6 && u < 1.0, "{u}");
        let [x, y] = Toy2d::Checkerboard.sample_point(&c, 1_325_500);
        assert!(x < 4.0, "{x}");
        assert_eq!(Toy2d::Checkerboard.log_density(x, y), Some(-(32f64.ln())));
    }

    #[test]
    fn checkerboard_entropy_is_ln_32() {
        let e = Toy2d::Checkerboard.true_entropy().unwrap();
        assert_eq!(e.nats, 32f64.ln());
        assert_eq!(e.std_error, 0.0);
        let (mean, se) = mc_entropy(Toy2d::Checkerboard, 10_000, 1, Stream::TestData, 1);
        assert!(
            (mean - 32f64.ln()).abs() < 1e-12 && se < 1e-9,
            "{mean} ± {se}"
        );
    }

    #[test]
    fn quick_monte_carlo_agrees_with_recorded_entropies() {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for set in Toy2d::ALL {
            let Some(recorded) = set.true_entropy() else {
                continue;
            };
            let (mean, se) = mc_entropy(set, 100_000, 1, Stream::TestData, threads);
            println!(
                "{set}: quick {mean:.5} ± {se:.5}, recorded {:.5} ± {:.5}",
                recorded.nats, recorded.std_error
            );
            let tol = 5.0 * (se * se + recorded.std_error * recorded.std_error).sqrt();
            assert!(
                (mean - recorded.nats).abs() <= tol.max(1e-12),
                "{set}: quick {mean} ± {se} vs recorded {} ± {}",
                recorded.nats,
                recorded.std_error
            );
        }
    }

    /// Computes the recorded entropies; run with
    /// `cargo test -p indm --lib data::toy2d -- --ignored compute_entropies --nocapture`.
    #[test]
    #[ignore]
    fn compute_entropies() {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for set in Toy2d::ALL {
            if set.log_density(0.0, 0.0).is_none() {
                continue;
            }
            let start = std::time::Instant::now();
            let (mean, se) = mc_entropy(
                set,
                ENTROPY_MC_SAMPLES,
                ENTROPY_MC_SEED,
                Stream::Eval,
                threads,
            );
            println!(
                "{set}: entropy {mean:.9} nats, std error {se:.3e} ({} samples, {:.1} s)",
                ENTROPY_MC_SAMPLES,
                start.elapsed().as_secs_f64()
            );
        }
    }
}
