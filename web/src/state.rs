//! The demo's whole state as a versioned URL query, validated and clamped.
//!
//! [`parse`] never fails and never panics: whatever the query holds, it returns a valid
//! [`State`] and the [`Notice`]s that say what was ignored, clamped or replaced by a
//! default. [`to_query`] writes the canonical form, and `parse(&to_query(&s))` gives
//! back `s` with no notice. This module is plain Rust (no browser types), so it can be
//! unit-tested natively and fuzzed.
//!
//! Format (version 1): `v=1&view=2d&model=checkerboard&flow=indm&sampler=em&steps=200&
//! seed=0&temp=1&t0=1&dir=reverse&tdir=cat2dog&method=ddib&it0=0.3` (`n` may be
//! absent: the backend's default), optionally `&isteps=<5..1000>` (translation steps;
//! absent: the backend's default) and `&image=<gallery id>` (absent: the first gallery
//! image of the source class). The translation keys (`tdir`, `method`, `it0`) are
//! written, in every view, where they differ from their defaults (`dog2cat`, `sdedit`,
//! `0.5`). Uploaded images are never in a link.

use std::fmt;

/// The query format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Queries longer than this are refused as a whole (defaults and a notice).
pub const MAX_QUERY_LEN: usize = 2048;
/// Fewest sampler steps.
pub const MIN_STEPS: usize = 5;
/// Most sampler steps.
pub const MAX_STEPS: usize = 1000;
/// Fewest particles.
pub const MIN_PARTICLES: u32 = 100;
/// Most particles.
pub const MAX_PARTICLES: u32 = 100_000;
/// Smallest temperature.
pub const MIN_TEMPERATURE: f64 = 0.1;
/// Largest temperature.
pub const MAX_TEMPERATURE: f64 = 2.0;
/// Smallest start time `t0` (above every shipped model's `eps = 1e-3`).
pub const MIN_T0: f64 = 0.01;
/// Largest start time `t0` (= `T`: start from the prior).
pub const MAX_T0: f64 = 1.0;
/// Smallest SDEdit strength of the translation view.
pub const MIN_IMAGE_T0: f64 = 0.05;
/// Default SDEdit strength of the translation view.
pub const DEFAULT_IMAGE_T0: f64 = 0.5;

/// The 2D data sets the demo ships models for, in menu order.
pub const DATASETS: [&str; 4] = ["checkerboard", "8gaussians", "moons", "swissroll"];

/// Which view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Particles in data and latent space.
    TwoD,
    /// Image translation (dog <-> cat).
    Image,
}

/// Direction of an image translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslateDir {
    /// Dog images into the cat domain.
    DogToCat,
    /// Cat images into the dog domain.
    CatToDog,
}

impl TranslateDir {
    /// Query name.
    pub fn name(self) -> &'static str {
        match self {
            TranslateDir::DogToCat => "dog2cat",
            TranslateDir::CatToDog => "cat2dog",
        }
    }
}

/// Translation method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Latent SDEdit with the target model from strength `t0`.
    Sdedit,
    /// Latent DDIB: the source's PF-ODE to `T`, the target's PF-ODE back.
    Ddib,
}

impl Method {
    /// Query name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Sdedit => "sdedit",
            Method::Ddib => "ddib",
        }
    }
}

/// The translation view's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Translate {
    /// Direction.
    pub direction: TranslateDir,
    /// Method.
    pub method: Method,
    /// SDEdit strength, `MIN_IMAGE_T0..=MAX_T0`.
    pub t0: f64,
    /// Sampler steps (each way for DDIB), `MIN_STEPS..=MAX_STEPS`; `None`: the
    /// backend's default.
    pub steps: Option<usize>,
}

impl Default for Translate {
    fn default() -> Self {
        Translate {
            direction: TranslateDir::DogToCat,
            method: Method::Sdedit,
            t0: DEFAULT_IMAGE_T0,
            steps: None,
        }
    }
}

/// Which model of a data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowChoice {
    /// INDM: the learned coupling flow (a nonlinear diffusion in data space).
    Indm,
    /// The identity-flow baseline (the ordinary linear diffusion).
    Baseline,
}

/// Which sampler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampler {
    /// Euler–Maruyama on the reverse SDE.
    Em,
    /// Reverse-diffusion predictor + Langevin corrector.
    Pc,
    /// Probability-flow ODE, Euler.
    OdeEuler,
    /// Probability-flow ODE, Heun.
    OdeHeun,
}

/// Direction of the animation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Sampling: noise to data.
    Reverse,
    /// Noising: data to noise (the forward SDE, or the PF-ODE for ODE samplers).
    Forward,
}

/// Everything a share link holds.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    /// View.
    pub view: View,
    /// Data set (one of [`DATASETS`]).
    pub model: &'static str,
    /// INDM or the baseline.
    pub flow: FlowChoice,
    /// Sampler.
    pub sampler: Sampler,
    /// Sampler steps, `MIN_STEPS..=MAX_STEPS`.
    pub steps: usize,
    /// Seed of every draw.
    pub seed: u32,
    /// Temperature multiplying the final latent.
    pub temperature: f64,
    /// Reverse runs start at `t0` (1: from the prior; below 1: from data noised to
    /// `t0`); forward runs end there.
    pub t0: f64,
    /// Direction.
    pub direction: Direction,
    /// Particles (`None`: the backend's default).
    pub particles: Option<u32>,
    /// Gallery image of the translation view (one of `translate::GALLERY`; `None`: the
    /// first of the source class).
    pub image: Option<String>,
    /// The translation view's settings.
    pub translate: Translate,
}

impl Default for State {
    fn default() -> Self {
        State {
            view: View::TwoD,
            model: DATASETS[0],
            flow: FlowChoice::Indm,
            sampler: Sampler::Em,
            steps: 200,
            seed: 0,
            temperature: 1.0,
            t0: 1.0,
            direction: Direction::Reverse,
            particles: None,
            image: None,
            translate: Translate::default(),
        }
    }
}

impl View {
    /// Query name.
    pub fn name(self) -> &'static str {
        match self {
            View::TwoD => "2d",
            View::Image => "image",
        }
    }
}

impl FlowChoice {
    /// Query name.
    pub fn name(self) -> &'static str {
        match self {
            FlowChoice::Indm => "indm",
            FlowChoice::Baseline => "baseline",
        }
    }
}

impl Sampler {
    /// Every sampler, in menu order.
    pub const ALL: [Sampler; 4] = [
        Sampler::Em,
        Sampler::Pc,
        Sampler::OdeEuler,
        Sampler::OdeHeun,
    ];

    /// Query name (the trainer's `--sampler` name).
    pub fn name(self) -> &'static str {
        match self {
            Sampler::Em => "em",
            Sampler::Pc => "pc",
            Sampler::OdeEuler => "ode-euler",
            Sampler::OdeHeun => "ode-heun",
        }
    }

    /// Whether the sampler is deterministic after the prior draw (a PF-ODE).
    pub fn is_ode(self) -> bool {
        matches!(self, Sampler::OdeEuler | Sampler::OdeHeun)
    }
}

impl Direction {
    /// Query name.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Reverse => "reverse",
            Direction::Forward => "forward",
        }
    }
}

/// Something in the query that was not taken as given.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// The whole query was refused (too long, not text, or an unknown version).
    Rejected {
        /// Why.
        reason: String,
    },
    /// No `v=` key: read as the current version.
    MissingVersion,
    /// A key this version does not know (ignored).
    UnknownKey {
        /// The key (shortened).
        key: String,
    },
    /// A key given twice (the first one counts).
    Duplicate {
        /// The key.
        key: String,
    },
    /// A value that could not be used (the default is used instead).
    Invalid {
        /// The key.
        key: &'static str,
        /// The value (shortened).
        value: String,
        /// What is expected.
        expected: String,
    },
    /// A value outside its range, clamped to the nearest valid one.
    Clamped {
        /// The key.
        key: &'static str,
        /// The value given (shortened).
        value: String,
        /// The value used.
        used: String,
    },
    /// A valid setting that this build replaces (e.g. a view not available yet).
    Replaced {
        /// The key.
        key: &'static str,
        /// Why and by what.
        detail: String,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Rejected { reason } => {
                write!(f, "the link's state was ignored ({reason}); using defaults")
            }
            Notice::MissingVersion => {
                write!(f, "the link has no version (v=); read as v={VERSION}")
            }
            Notice::UnknownKey { key } => write!(f, "unknown setting '{key}' ignored"),
            Notice::Duplicate { key } => write!(f, "setting '{key}' given twice; the first counts"),
            Notice::Invalid {
                key,
                value,
                expected,
            } => write!(
                f,
                "invalid {key} '{value}' (expected {expected}); using the default"
            ),
            Notice::Clamped { key, value, used } => {
                write!(f, "{key} '{value}' is out of range; using {used}")
            }
            Notice::Replaced { key, detail } => write!(f, "{key}: {detail}"),
        }
    }
}

/// Shortens untrusted text for a notice (at most 40 characters, control characters
/// replaced), so a hostile link cannot flood the page.
fn shorten(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(40)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// Decodes `%XX` escapes and `+` (space) of one query component. `None` if the bytes
/// are not UTF-8 or an escape is malformed.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let hi = b.get(i + 1).copied().and_then(hex)?;
                let lo = b.get(i + 2).copied().and_then(hex)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A number as text: integers and decimals (with exponent), nothing else.
fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty()
        || t.len() > 64
        || !t
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'+' | b'e' | b'E'))
    {
        return None;
    }
    t.parse::<f64>().ok()
}

/// Clamps a finite number into `[lo, hi]`, noting when it changed.
fn clamp_f64(
    key: &'static str,
    raw: &str,
    lo: f64,
    hi: f64,
    default: f64,
    notices: &mut Vec<Notice>,
) -> f64 {
    match parse_number(raw) {
        Some(v) if v.is_finite() => {
            if v < lo || v > hi {
                let used = v.clamp(lo, hi);
                notices.push(Notice::Clamped {
                    key,
                    value: shorten(raw),
                    used: used.to_string(),
                });
                used
            } else {
                v
            }
        }
        _ => {
            notices.push(Notice::Invalid {
                key,
                value: shorten(raw),
                expected: format!("a number in [{lo}, {hi}]"),
            });
            default
        }
    }
}

/// An integer in `[lo, hi]`; decimals are rounded, out-of-range values clamped.
fn clamp_int(
    key: &'static str,
    raw: &str,
    lo: u64,
    hi: u64,
    default: u64,
    notices: &mut Vec<Notice>,
) -> u64 {
    let t = raw.trim();
    if let Ok(v) = t.parse::<u64>()
        && t.bytes().all(|c| c.is_ascii_digit())
    {
        if v < lo || v > hi {
            let used = v.clamp(lo, hi);
            notices.push(Notice::Clamped {
                key,
                value: shorten(raw),
                used: used.to_string(),
            });
            return used;
        }
        return v;
    }
    match parse_number(raw) {
        Some(v) if v.is_finite() => {
            let r = v.round();
            let used = if r < lo as f64 {
                lo
            } else if r > hi as f64 {
                hi
            } else {
                r as u64
            };
            if used as f64 != v {
                notices.push(Notice::Clamped {
                    key,
                    value: shorten(raw),
                    used: used.to_string(),
                });
            }
            used
        }
        _ => {
            notices.push(Notice::Invalid {
                key,
                value: shorten(raw),
                expected: format!("an integer in {lo}..={hi}"),
            });
            default
        }
    }
}

/// One of a fixed set of names (case-insensitive, with aliases).
fn choice<T: Copy>(
    key: &'static str,
    raw: &str,
    options: &[(&str, T)],
    default: T,
    notices: &mut Vec<Notice>,
) -> T {
    let lower = raw.trim().to_ascii_lowercase();
    if let Some((_, v)) = options.iter().find(|(n, _)| *n == lower) {
        return *v;
    }
    let mut names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
    names.dedup();
    notices.push(Notice::Invalid {
        key,
        value: shorten(raw),
        expected: format!("one of {}", names.join(", ")),
    });
    default
}

/// Reads a query (with or without the leading `?`). Always returns a valid state; the
/// notices say what was not taken as given.
pub fn parse(query: &str) -> (State, Vec<Notice>) {
    let mut notices = Vec::new();
    let q = query.strip_prefix('?').unwrap_or(query);
    let q = q.split('#').next().unwrap_or("");
    if q.trim().is_empty() {
        return (State::default(), notices);
    }
    if q.len() > MAX_QUERY_LEN {
        notices.push(Notice::Rejected {
            reason: format!(
                "{} characters, more than the {MAX_QUERY_LEN} a link may have",
                q.len()
            ),
        });
        return (State::default(), notices);
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match (percent_decode(k), percent_decode(v)) {
            (Some(k), Some(v)) => pairs.push((k.trim().to_ascii_lowercase(), v)),
            _ => {
                notices.push(Notice::Rejected {
                    reason: "it is not valid UTF-8 text or has a malformed %-escape".into(),
                });
                return (State::default(), vec![notices.pop().expect("just pushed")]);
            }
        }
    }
    // The version decides how everything else is read.
    match pairs.iter().find(|(k, _)| k == "v") {
        None => notices.push(Notice::MissingVersion),
        Some((_, v)) if v.trim() == VERSION.to_string() => {}
        Some((_, v)) => {
            return (
                State::default(),
                vec![Notice::Rejected {
                    reason: format!(
                        "link version '{}' is not {VERSION}, the one this page reads",
                        shorten(v)
                    ),
                }],
            );
        }
    }
    let mut s = State::default();
    let mut seen: Vec<String> = Vec::new();
    for (k, raw) in &pairs {
        if seen.contains(k) {
            notices.push(Notice::Duplicate { key: shorten(k) });
            continue;
        }
        seen.push(k.clone());
        let n = &mut notices;
        match k.as_str() {
            "v" => {}
            "view" => {
                s.view = choice(
                    "view",
                    raw,
                    &[("2d", View::TwoD), ("image", View::Image)],
                    View::TwoD,
                    n,
                )
            }
            "model" => {
                let options: Vec<(&str, &'static str)> =
                    DATASETS.iter().map(|d| (*d, *d)).collect();
                s.model = choice("model", raw, &options, DATASETS[0], n)
            }
            "flow" => {
                s.flow = choice(
                    "flow",
                    raw,
                    &[
                        ("indm", FlowChoice::Indm),
                        ("coupling", FlowChoice::Indm),
                        ("baseline", FlowChoice::Baseline),
                        ("identity", FlowChoice::Baseline),
                    ],
                    FlowChoice::Indm,
                    n,
                )
            }
            "sampler" => {
                s.sampler = choice(
                    "sampler",
                    raw,
                    &[
                        ("em", Sampler::Em),
                        ("pc", Sampler::Pc),
                        ("ode-euler", Sampler::OdeEuler),
                        ("ode-heun", Sampler::OdeHeun),
                        ("euler", Sampler::OdeEuler),
                        ("heun", Sampler::OdeHeun),
                        ("ode", Sampler::OdeHeun),
                    ],
                    Sampler::Em,
                    n,
                )
            }
            "steps" => {
                s.steps = clamp_int(
                    "steps",
                    raw,
                    MIN_STEPS as u64,
                    MAX_STEPS as u64,
                    State::default().steps as u64,
                    n,
                ) as usize
            }
            "seed" => s.seed = clamp_int("seed", raw, 0, u32::MAX as u64, 0, n) as u32,
            "temp" => {
                s.temperature = clamp_f64("temp", raw, MIN_TEMPERATURE, MAX_TEMPERATURE, 1.0, n)
            }
            "t0" => s.t0 = clamp_f64("t0", raw, MIN_T0, MAX_T0, 1.0, n),
            "dir" => {
                s.direction = choice(
                    "dir",
                    raw,
                    &[
                        ("reverse", Direction::Reverse),
                        ("forward", Direction::Forward),
                    ],
                    Direction::Reverse,
                    n,
                )
            }
            "n" => {
                s.particles = Some(clamp_int(
                    "n",
                    raw,
                    MIN_PARTICLES as u64,
                    MAX_PARTICLES as u64,
                    10_000,
                    n,
                ) as u32)
            }
            "image" => {
                let name = raw.trim().to_ascii_lowercase();
                if crate::translate::GALLERY.contains(&name.as_str()) {
                    s.image = Some(name);
                } else {
                    n.push(Notice::Invalid {
                        key: "image",
                        value: shorten(raw),
                        expected: "a gallery image id (cat-0000..cat-0007, dog-0000..dog-0007)"
                            .into(),
                    });
                }
            }
            "tdir" => {
                s.translate.direction = choice(
                    "tdir",
                    raw,
                    &[
                        ("dog2cat", TranslateDir::DogToCat),
                        ("cat2dog", TranslateDir::CatToDog),
                    ],
                    TranslateDir::DogToCat,
                    n,
                )
            }
            "method" => {
                s.translate.method = choice(
                    "method",
                    raw,
                    &[("sdedit", Method::Sdedit), ("ddib", Method::Ddib)],
                    Method::Sdedit,
                    n,
                )
            }
            "it0" => {
                s.translate.t0 = clamp_f64("it0", raw, MIN_IMAGE_T0, MAX_T0, DEFAULT_IMAGE_T0, n)
            }
            "isteps" => {
                let before = n.len();
                let k = clamp_int(
                    "isteps",
                    raw,
                    MIN_STEPS as u64,
                    MAX_STEPS as u64,
                    crate::translate::GPU_DEFAULT_STEPS as u64,
                    n,
                ) as usize;
                // Unreadable: the backend's default, as if the key were absent.
                let invalid = n.len() > before && matches!(n.last(), Some(Notice::Invalid { .. }));
                s.translate.steps = (!invalid).then_some(k);
            }
            other => notices.push(Notice::UnknownKey {
                key: shorten(other),
            }),
        }
    }
    (s, notices)
}

/// The canonical query (without `?`) of a state.
pub fn to_query(s: &State) -> String {
    let mut q = format!(
        "v={VERSION}&view={}&model={}&flow={}&sampler={}&steps={}&seed={}&temp={}&t0={}&dir={}",
        s.view.name(),
        s.model,
        s.flow.name(),
        s.sampler.name(),
        s.steps,
        s.seed,
        s.temperature,
        s.t0,
        s.direction.name()
    );
    if let Some(n) = s.particles {
        q.push_str(&format!("&n={n}"));
    }
    // The translation keys only where they differ from the defaults, so 2D links stay
    // as short as they were.
    let d = Translate::default();
    if s.translate.direction != d.direction {
        q.push_str(&format!("&tdir={}", s.translate.direction.name()));
    }
    if s.translate.method != d.method {
        q.push_str(&format!("&method={}", s.translate.method.name()));
    }
    if s.translate.t0 != d.t0 {
        q.push_str(&format!("&it0={}", s.translate.t0));
    }
    if let Some(k) = s.translate.steps {
        q.push_str(&format!("&isteps={k}"));
    }
    if let Some(img) = &s.image {
        q.push_str("&image=");
        q.push_str(img);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> State {
        State {
            view: View::TwoD,
            model: "moons",
            flow: FlowChoice::Baseline,
            sampler: Sampler::OdeHeun,
            steps: 37,
            seed: 4_000_000_000,
            temperature: 0.85,
            t0: 0.3,
            direction: Direction::Forward,
            particles: Some(12_345),
            image: Some("cat-0003".into()),
            translate: Translate {
                direction: TranslateDir::CatToDog,
                method: Method::Ddib,
                t0: 0.35,
                steps: Some(20),
            },
        }
    }

    #[test]
    fn round_trip_is_exact_and_silent() {
        for s in [State::default(), full()] {
            let q = to_query(&s);
            let (back, notices) = parse(&q);
            assert_eq!(back, s, "{q}");
            assert!(notices.is_empty(), "{q}: {notices:?}");
            let (back2, _) = parse(&format!("?{q}"));
            assert_eq!(back2, s);
        }
        // Every sampler and data set survives the trip.
        for d in DATASETS {
            for k in Sampler::ALL {
                let s = State {
                    model: d,
                    sampler: k,
                    ..State::default()
                };
                assert_eq!(parse(&to_query(&s)), (s, vec![]));
            }
        }
    }

    #[test]
    fn translation_settings_are_validated_and_clamped() {
        let (s, n) =
            parse("v=1&view=image&tdir=cat2dog&method=ddib&it0=0.01&isteps=2000&image=DOG-0004");
        assert_eq!(s.view, View::Image);
        assert_eq!(s.translate.direction, TranslateDir::CatToDog);
        assert_eq!(s.translate.method, Method::Ddib);
        assert_eq!(s.translate.t0, MIN_IMAGE_T0);
        assert_eq!(s.translate.steps, Some(MAX_STEPS));
        assert_eq!(s.image.as_deref(), Some("dog-0004"));
        assert_eq!(n.len(), 2, "{n:?}");
        let (s, n) = parse("v=1&tdir=bird2cat&method=cyclegan&it0=nan&isteps=x&image=<b>");
        assert_eq!(s.translate, Translate::default());
        assert_eq!(s.image, None);
        assert_eq!(n.len(), 5, "{n:?}");
        assert!(
            n.iter()
                .all(|x| !x.to_string().contains("<b>") || matches!(x, Notice::Invalid { .. }))
        );
    }

    #[test]
    fn empty_query_is_the_default_without_notice() {
        assert_eq!(parse(""), (State::default(), vec![]));
        assert_eq!(parse("?"), (State::default(), vec![]));
    }

    #[test]
    fn out_of_range_values_are_clamped_with_a_notice() {
        let (s, n) = parse("v=1&steps=2&temp=9&t0=0&seed=99999999999&n=5");
        assert_eq!(s.steps, MIN_STEPS);
        assert_eq!(s.temperature, MAX_TEMPERATURE);
        assert_eq!(s.t0, MIN_T0);
        assert_eq!(s.seed, u32::MAX);
        assert_eq!(s.particles, Some(MIN_PARTICLES));
        assert_eq!(
            n.iter()
                .filter(|x| matches!(x, Notice::Clamped { .. }))
                .count(),
            5,
            "{n:?}"
        );
        let (s, n) = parse("v=1&steps=5000");
        assert_eq!(s.steps, MAX_STEPS);
        assert_eq!(n.len(), 1);
        // Decimals round (with a notice), exponents are numbers.
        let (s, n) = parse("v=1&steps=12.6");
        assert_eq!((s.steps, n.len()), (13, 1));
        let (s, _) = parse("v=1&steps=1e2");
        assert_eq!(s.steps, 100);
    }

    #[test]
    fn huge_numbers_nan_and_infinity_never_get_through() {
        let huge = "9".repeat(400);
        for bad in [
            "NaN", "nan", "inf", "-inf", "Infinity", "1e999", "-1e999", "", "0x10", "1,5",
        ] {
            for key in ["steps", "temp", "t0", "seed", "n"] {
                let (s, n) = parse(&format!("v=1&{key}={bad}"));
                assert!(s.temperature.is_finite() && s.t0.is_finite(), "{key}={bad}");
                assert!((MIN_STEPS..=MAX_STEPS).contains(&s.steps));
                assert!(!n.is_empty(), "{key}={bad}: no notice");
            }
        }
        let (s, n) = parse(&format!("v=1&steps={huge}"));
        assert!(s.steps == State::default().steps || s.steps == MAX_STEPS);
        assert_eq!(n.len(), 1, "{n:?}");
        let (s, _) = parse("v=1&temp=-0");
        assert_eq!(s.temperature, MIN_TEMPERATURE);
    }

    #[test]
    fn garbage_and_hostile_input_fall_back_to_defaults() {
        let cases = [
            "v=1&model=<script>alert(1)</script>",
            "v=1&sampler=rk45",
            "v=1&flow=%00",
            "v=1&model=checkerboard%",
            "v=1&view=3d",
            "v=1&image=../../etc/passwd",
            "v=1&image=cat-0009",
            "%ff%fe=1",
            "v=1&&&&=&=&",
            "\u{202e}v=1",
        ];
        for c in cases {
            let (s, n) = parse(c);
            assert!(!n.is_empty(), "{c}: no notice");
            assert_eq!(s.model, DATASETS[0], "{c}");
            assert_eq!(s.sampler, Sampler::Em, "{c}");
            assert!(s.image.is_none(), "{c}");
            for x in &n {
                assert!(x.to_string().chars().count() < 200, "{c}: {x}");
                assert!(!x.to_string().contains('<') || matches!(x, Notice::Invalid { .. }));
            }
        }
        let long = format!("v=1&model={}", "a".repeat(5000));
        let (s, n) = parse(&long);
        assert_eq!(s, State::default());
        assert!(matches!(n.as_slice(), [Notice::Rejected { .. }]));
    }

    #[test]
    fn unknown_version_is_refused_as_a_whole() {
        for v in ["2", "0", "abc", "1.0", ""] {
            let (s, n) = parse(&format!("v={v}&model=moons&steps=50"));
            assert_eq!(s, State::default(), "v={v}");
            assert!(matches!(n.as_slice(), [Notice::Rejected { .. }]), "{n:?}");
            assert!(n[0].to_string().contains("version"));
        }
        let (s, n) = parse("model=moons");
        assert_eq!(s.model, "moons");
        assert_eq!(n, vec![Notice::MissingVersion]);
    }

    #[test]
    fn unknown_and_duplicate_keys_are_noted() {
        let (s, n) = parse("v=1&steps=50&steps=70&zoom=3&MODEL=moons");
        assert_eq!(s.steps, 50);
        assert_eq!(s.model, "moons");
        assert!(n.contains(&Notice::Duplicate {
            key: "steps".into()
        }));
        assert!(n.contains(&Notice::UnknownKey { key: "zoom".into() }));
        assert_eq!(n.len(), 2);
    }

    #[test]
    fn aliases_and_percent_escapes() {
        let (s, n) = parse("v=1&sampler=Heun&flow=identity&model=%38gaussians");
        assert_eq!(
            (s.sampler, s.flow, s.model),
            (Sampler::OdeHeun, FlowChoice::Baseline, "8gaussians")
        );
        assert!(n.is_empty());
    }

    /// Whatever the input, parsing is idempotent through the canonical form: the state it
    /// gives re-parses to itself without notice.
    #[test]
    fn any_input_gives_a_state_that_round_trips() {
        let alphabet: Vec<char> = "v=1&%+.-e0123456789abcdefmnstopqz_ ñ\u{0}#?"
            .chars()
            .collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let keys = [
            "v=1&", "steps=", "temp=", "t0=", "seed=", "n=", "model=", "sampler=", "dir=", "it0=",
            "isteps=", "tdir=", "method=", "image=", "view=",
        ];
        for _ in 0..3000 {
            let mut q = String::new();
            for _ in 0..(x % 40) {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                if x >> 62 == 0 {
                    q.push_str(keys[((x >> 20) % keys.len() as u64) as usize]);
                } else {
                    q.push(alphabet[((x >> 33) % alphabet.len() as u64) as usize]);
                }
            }
            let (s, _) = parse(&q);
            assert!(s.temperature.is_finite() && s.t0.is_finite(), "{q:?}");
            let (again, n) = parse(&to_query(&s));
            assert_eq!(again, s, "{q:?}");
            assert!(n.is_empty(), "{q:?}: {n:?}");
        }
    }
}
