//! The translation view's logic, independent of the browser: the gallery, pixels to
//! model values and back, the stages of a translation and its translation back (the
//! cycle), their `f64` CPU execution (the page's fallback without WebGPU, and natively
//! the browser test's reference) and the statistics the page exposes.
//!
//! A translation is a list of [`Stage`]s over one batch of latents: encode with a flow,
//! run a [`Plan`] with a score net, decode, and capture the value at marked points. The
//! GPU path (`app::translate_gpu`) executes the very same stages with
//! [`indm::gpu::GpuImageModel`], so a share link gives the same images on the GPU (f32),
//! in the wasm fallback and natively (f64), up to rounding; the noise of SDEdit is drawn
//! with the same counter-based keys everywhere.

use indm::arch::Architecture;
use indm::data::image::{DecodeLimits, crop_resize, decode};
use indm::error::IndmError;
use indm::image::reference::{GlowRef, Images, unet_forward};
use indm::params::ParamSet;
use indm::sample::plan::{self, Plan, Start};
use indm::sample::{SamplerConfig, SamplerKind};
use indm::weights::{TensorFile, model_from_file};
use serde::Serialize;

use crate::sim::SimError;
use crate::state::{Method, State, TranslateDir};

/// Gallery image ids (`web/gallery/<id>.png`), CIFAR-10 test images.
pub const GALLERY: [&str; 16] = [
    "cat-0000", "cat-0001", "cat-0002", "cat-0003", "cat-0004", "cat-0005", "cat-0006", "cat-0007",
    "dog-0000", "dog-0001", "dog-0002", "dog-0003", "dog-0004", "dog-0005", "dog-0006", "dog-0007",
];
/// Side of the models' images.
pub const SIZE: usize = 32;
/// Sampler steps on the GPU unless the link says otherwise.
pub const GPU_DEFAULT_STEPS: usize = 100;
/// Sampler steps of the CPU fallback unless the link says otherwise.
pub const CPU_DEFAULT_STEPS: usize = 10;
/// Largest upload accepted (bytes).
pub const MAX_UPLOAD_BYTES: f64 = 20.0 * 1024.0 * 1024.0;
/// Largest upload side (pixels).
pub const MAX_UPLOAD_SIDE: u32 = 8192;

/// Relative path (from the page) of a class's shipped model.
pub fn model_path(class: &str) -> String {
    format!("models/{class}-indm.safetensors")
}

/// Relative path of a gallery image.
pub fn gallery_path(id: &str) -> String {
    format!("gallery/{id}.png")
}

/// `(source class, target class)` of a direction.
pub fn classes(dir: TranslateDir) -> (&'static str, &'static str) {
    match dir {
        TranslateDir::DogToCat => ("dog", "cat"),
        TranslateDir::CatToDog => ("cat", "dog"),
    }
}

/// The gallery image a state shows: its own, or the first of the source class.
pub fn gallery_id(s: &State) -> String {
    s.image
        .clone()
        .unwrap_or_else(|| format!("{}-0000", classes(s.translate.direction).0))
}

/// 8-bit RGB(A) pixels (`channels` per pixel, row-major, `SIZE x SIZE`) to model values:
/// the pixel bin's midpoint `(k + 0.5) / 256`, scaled to `[-1, 1]` (VP), CHW.
pub fn pixels_to_model(px: &[u8], channels: usize) -> Result<Vec<f64>, SimError> {
    if channels < 3 || px.len() != SIZE * SIZE * channels {
        return Err(SimError::Model(IndmError::invalid(
            "image pixels",
            format!("{} bytes with {channels} per pixel", px.len()),
            format!("{SIZE} x {SIZE} pixels of RGB or RGBA"),
        )));
    }
    let mut out = vec![0.0; 3 * SIZE * SIZE];
    for p in 0..SIZE * SIZE {
        for c in 0..3 {
            let unit = (px[p * channels + c] as f64 + 0.5) / 256.0;
            out[c * SIZE * SIZE + p] = 2.0 * unit - 1.0;
        }
    }
    Ok(out)
}

/// Model values to display pixels in `[0, 1]` (unclamped).
pub fn model_to_unit(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| (v + 1.0) / 2.0).collect()
}

/// CHW values in `[0, 1]` to RGBA bytes (clamped) for a canvas.
pub fn unit_to_rgba(u: &[f64]) -> Vec<u8> {
    let hw = u.len() / 3;
    let mut out = vec![255u8; 4 * hw];
    for p in 0..hw {
        for c in 0..3 {
            out[4 * p + c] = (u[c * hw + p].clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    out
}

/// A latent as a picture: each value `z` mapped by `0.5 + z / 6` (so `[-3, 3]`, the bulk
/// of a standard normal, spans the range), clamped.
pub fn latent_to_unit(z: &[f64]) -> Vec<f64> {
    z.iter().map(|v| 0.5 + v / 6.0).collect()
}

/// An image file to model values with the image crate: decode, centre crop, resize to
/// `SIZE` (the native reference; the page decodes with the browser's decoder, which gives
/// the same pixels for the gallery's PNGs, so the image crate stays out of the wasm).
pub fn image_file_to_model(bytes: &[u8], origin: &str) -> Result<Vec<f64>, SimError> {
    let d = decode(bytes, origin, &DecodeLimits::default())?;
    let rgb = crop_resize(&d.image.to_rgb8(), SIZE as u32);
    pixels_to_model(rgb.as_raw(), 3)
}

/// Reads an image model file, checking it is a `3 x SIZE x SIZE` image model.
pub fn load_model(bytes: &[u8], file: &str) -> Result<(Architecture, ParamSet), SimError> {
    let tf = TensorFile::from_bytes(bytes, file)?;
    let (arch, params) = model_from_file(&tf, file)?;
    match &arch.image {
        Some(img) if img.shape() == [3, SIZE, SIZE] => {}
        _ => {
            return Err(SimError::WrongModel {
                file: file.into(),
                reason: format!("it is not a 3 x {SIZE} x {SIZE} image model"),
            });
        }
    }
    params.check_against(&arch)?;
    Ok((arch, params))
}

/// Which of the two models a stage uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// The source domain's model (dog for dog -> cat).
    Source,
    /// The target domain's model.
    Target,
}

/// What a stage's result is kept as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capture {
    /// The source image's latent (shown as the latent picture).
    Latent,
    /// The translation.
    Result,
    /// The translation translated back (the cycle).
    Back,
}

/// One stage of a translation job.
#[derive(Clone, Debug)]
pub enum Stage {
    /// `z = h(x)` with a model's flow.
    Encode(Which, Option<Capture>),
    /// A plan with a model's score net.
    Run(Which, Plan),
    /// `x = h^{-1}(z)` with a model's flow.
    Decode(Which, Option<Capture>),
}

impl Which {
    fn other(self) -> Which {
        match self {
            Which::Source => Which::Target,
            Which::Target => Which::Source,
        }
    }
}

/// The sampler settings of a state: SDEdit runs Euler–Maruyama with the final denoising
/// step; DDIB runs PF-ODE Heun both ways without it.
pub fn sampler_config(s: &State, steps: usize) -> SamplerConfig {
    match s.translate.method {
        Method::Sdedit => SamplerConfig {
            kind: SamplerKind::Em,
            steps,
            seed: s.seed as u64,
            ..Default::default()
        },
        Method::Ddib => SamplerConfig {
            kind: SamplerKind::OdeHeun,
            steps,
            seed: s.seed as u64,
            denoise: false,
            ..Default::default()
        },
    }
}

/// The stages of a translation `from -> to` (one direction).
fn one_way(
    s: &State,
    steps: usize,
    arch: [&Architecture; 2],
    from: Which,
    capture_latent: bool,
    out: Capture,
) -> Result<Vec<Stage>, SimError> {
    let to = from.other();
    let pick = |w: Which| match w {
        Which::Source => arch[0],
        Which::Target => arch[1],
    };
    let cfg = sampler_config(s, steps);
    let lat = capture_latent.then_some(Capture::Latent);
    Ok(match s.translate.method {
        Method::Sdedit => vec![
            Stage::Encode(to, lat),
            Stage::Run(
                to,
                plan::reverse(pick(to), &cfg, Start::Perturb { t0: s.translate.t0 })?,
            ),
            Stage::Decode(to, Some(out)),
        ],
        Method::Ddib => {
            let plans =
                indm::gpu::image_model::translation_plans(pick(from), pick(to), None, &cfg)?;
            let mut v = vec![Stage::Encode(from, lat)];
            // The source's PF-ODE encoding, then the target's PF-ODE decoding.
            for (p, w) in plans.into_iter().zip([from, to]) {
                v.push(Stage::Run(w, p));
            }
            v.push(Stage::Decode(to, Some(out)));
            v
        }
    })
}

/// The whole job: the translation (capturing the source's latent and the result), then
/// the translation back from the result (capturing it).
pub fn job(
    s: &State,
    steps: usize,
    source: &Architecture,
    target: &Architecture,
) -> Result<Vec<Stage>, SimError> {
    indm::gpu::image_model::check_pair(source, target)?;
    let mut v = one_way(
        s,
        steps,
        [source, target],
        Which::Source,
        true,
        Capture::Result,
    )?;
    v.extend(one_way(
        s,
        steps,
        [source, target],
        Which::Target,
        false,
        Capture::Back,
    )?);
    Ok(v)
}

/// Network evaluations per image of a job.
pub fn job_nfe(stages: &[Stage]) -> usize {
    stages
        .iter()
        .map(|s| match s {
            Stage::Run(_, p) => p.nfe(),
            _ => 0,
        })
        .sum()
}

/// The steps a state uses on a backend (the link's, else the backend's default).
pub fn steps_for(s: &State, cpu: bool) -> usize {
    let default = if cpu {
        CPU_DEFAULT_STEPS
    } else {
        GPU_DEFAULT_STEPS
    };
    s.translate.steps.unwrap_or(default)
}

/// Fewest DDIB steps that give a usable image with the shipped models: the PF-ODE's
/// uniform Heun grid is too coarse near `t = eps` below this (measured on `cat-0002`,
/// cat -> dog and back: cycle error 0.10 at 20 steps, 0.23 at 10, 76 at 5).
pub const DDIB_MIN_GOOD_STEPS: usize = 20;

/// A warning for settings that run but give poor images, if any.
pub fn quality_warning(s: &State, steps: usize) -> Option<String> {
    (s.translate.method == Method::Ddib && steps < DDIB_MIN_GOOD_STEPS).then(|| {
        format!(
            "DDIB with {steps} steps: below about {DDIB_MIN_GOOD_STEPS} steps the PF-ODE steps near t = 0 are too coarse for these models and the images degrade (at 5 steps they blow up); the run is still exact to its plan"
        )
    })
}

/// Mean and standard deviation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Moments {
    /// Mean.
    pub mean: f64,
    /// Standard deviation (population).
    pub std: f64,
}

/// Moments of `v`.
pub fn moments(v: &[f64]) -> Moments {
    if v.is_empty() {
        return Moments::default();
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    Moments {
        mean,
        std: var.sqrt(),
    }
}

/// What the page exposes after a translation (`window.indmTranslateStats` and
/// `<pre id="translate-stats">`), and what `indm-demo` prints natively.
#[derive(Clone, Debug, Serialize)]
pub struct TranslateReport {
    /// The canonical share query.
    pub query: String,
    /// `webgpu`, `cpu-wasm` or `cpu-native`.
    pub backend: String,
    /// `sdedit` or `ddib`.
    pub method: String,
    /// `dog2cat` or `cat2dog`.
    pub direction: String,
    /// Gallery id, or `upload`.
    pub image: String,
    /// Sampler steps (each way for DDIB).
    pub steps: usize,
    /// SDEdit strength (also reported for DDIB, where it is unused).
    pub t0: f64,
    /// Seed.
    pub seed: u32,
    /// Result pixels in `[0, 1]` units (unclamped).
    pub result: Moments,
    /// Source latent.
    pub latent: Moments,
    /// Cycle error: mean `|back - source|` in `[0, 1]` pixel units.
    pub cycle_error: f64,
    /// Mean `|result - source|` in `[0, 1]` units (how far the translation moved).
    pub change: f64,
    /// Score-net evaluations per image, translation and back.
    pub nfe: usize,
    /// Wall time of the whole job (ms).
    pub ms: f64,
}

/// The captured values of a finished job.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    /// Source latent.
    pub latent: Vec<f64>,
    /// Translation (model values).
    pub result: Vec<f64>,
    /// Translation back (model values).
    pub back: Vec<f64>,
}

impl Captured {
    /// Stores `v` under `c`.
    pub fn put(&mut self, c: Capture, v: Vec<f64>) {
        match c {
            Capture::Latent => self.latent = v,
            Capture::Result => self.result = v,
            Capture::Back => self.back = v,
        }
    }
}

/// The statistics of a finished job for the source `x` (model values).
// One argument per report field that the job does not hold itself.
#[allow(clippy::too_many_arguments)]
pub fn report(
    s: &State,
    image: &str,
    backend: &str,
    steps: usize,
    nfe: usize,
    x: &[f64],
    c: &Captured,
    ms: f64,
) -> TranslateReport {
    let (xu, ru, bu) = (
        model_to_unit(x),
        model_to_unit(&c.result),
        model_to_unit(&c.back),
    );
    let mad = |a: &[f64], b: &[f64]| {
        a.iter().zip(b).map(|(p, q)| (p - q).abs()).sum::<f64>() / a.len().max(1) as f64
    };
    TranslateReport {
        query: crate::state::to_query(s),
        backend: backend.into(),
        method: s.translate.method.name().into(),
        direction: s.translate.direction.name().into(),
        image: image.into(),
        steps,
        t0: s.translate.t0,
        seed: s.seed,
        result: moments(&ru),
        latent: moments(&c.latent),
        cycle_error: mad(&bu, &xu),
        change: mad(&ru, &xu),
        nfe,
        ms,
    }
}

/// The two models in `f64` (the reference code, no burn).
pub struct CpuModels {
    arch: [Architecture; 2],
    params: [ParamSet; 2],
    glow: [GlowRef; 2],
}

impl std::fmt::Debug for CpuModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CpuModels")
    }
}

impl CpuModels {
    /// From the source's and the target's weights.
    pub fn new(
        source: (Architecture, ParamSet),
        target: (Architecture, ParamSet),
    ) -> Result<Self, SimError> {
        let glow = [
            GlowRef::new(&source.0, &source.1)?,
            GlowRef::new(&target.0, &target.1)?,
        ];
        Ok(CpuModels {
            arch: [source.0, target.0],
            params: [source.1, target.1],
            glow,
        })
    }

    /// The architectures `(source, target)`.
    pub fn archs(&self) -> (&Architecture, &Architecture) {
        (&self.arch[0], &self.arch[1])
    }

    fn idx(w: Which) -> usize {
        match w {
            Which::Source => 0,
            Which::Target => 1,
        }
    }
}

/// A job on the CPU, run a little at a time.
#[derive(Debug)]
pub struct CpuJob {
    stages: Vec<Stage>,
    stage: usize,
    step: usize,
    value: Vec<f64>,
    /// The captured values.
    pub captured: Captured,
}

fn shape(v: &[f64]) -> [usize; 4] {
    [v.len() / (3 * SIZE * SIZE), 3, SIZE, SIZE]
}

impl CpuJob {
    /// A job on the source image `x` (model values).
    pub fn new(stages: Vec<Stage>, x: Vec<f64>) -> Self {
        CpuJob {
            stages,
            stage: 0,
            step: 0,
            value: x,
            captured: Captured::default(),
        }
    }

    /// Whether every stage has run.
    pub fn done(&self) -> bool {
        self.stage >= self.stages.len()
    }

    /// `(stage, stages)`.
    pub fn progress(&self) -> (usize, usize) {
        (self.stage, self.stages.len())
    }

    /// Runs one unit of work (a flow pass or one plan step).
    pub fn advance(&mut self, m: &CpuModels) -> Result<(), SimError> {
        let Some(stage) = self.stages.get(self.stage).cloned() else {
            return Ok(());
        };
        match stage {
            Stage::Encode(w, cap) => {
                let (z, _) = m.glow[CpuModels::idx(w)]
                    .forward(&Images::new(self.value.clone(), shape(&self.value)))?;
                self.value = z.data;
                if let Some(c) = cap {
                    self.captured.put(c, self.value.clone());
                }
                self.stage += 1;
            }
            Stage::Decode(w, cap) => {
                let x = m.glow[CpuModels::idx(w)]
                    .inverse(&Images::new(self.value.clone(), shape(&self.value)))?;
                self.value = x.data;
                if let Some(c) = cap {
                    self.captured.put(c, self.value.clone());
                }
                self.stage += 1;
            }
            Stage::Run(w, p) => {
                let i = CpuModels::idx(w);
                if let Some(st) = p.steps.get(self.step) {
                    let one = Plan {
                        steps: vec![st.clone()],
                        seed: p.seed,
                    };
                    let (arch, params) = (&m.arch[i], &m.params[i]);
                    let err: std::cell::RefCell<Option<IndmError>> = Default::default();
                    let net = |z: &[f64], t: f64| -> Vec<f64> {
                        let n = z.len() / arch.data_dim;
                        let feats = vec![arch.time_features(t); n];
                        match unet_forward(arch, params, &Images::new(z.to_vec(), shape(z)), &feats)
                        {
                            Ok(o) => o.data,
                            Err(e) => {
                                *err.borrow_mut() = Some(e);
                                vec![0.0; z.len()]
                            }
                        }
                    };
                    plan::execute_cpu(&one, arch.data_dim, &mut self.value, &net, |_, _| {});
                    if let Some(e) = err.into_inner() {
                        return Err(e.into());
                    }
                    self.step += 1;
                }
                if self.step >= p.steps.len() {
                    self.step = 0;
                    self.stage += 1;
                }
            }
        }
        Ok(())
    }

    /// Runs to the end.
    pub fn run_to_end(&mut self, m: &CpuModels) -> Result<(), SimError> {
        while !self.done() {
            self.advance(m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Translate, View};

    fn state(method: Method) -> State {
        State {
            view: View::Image,
            translate: Translate {
                method,
                ..Translate::default()
            },
            ..State::default()
        }
    }

    #[test]
    fn pixels_map_to_bin_midpoints_and_bad_sizes_are_refused() {
        let mut px = vec![0u8; SIZE * SIZE * 4];
        px[0] = 255;
        px[1] = 128;
        let x = pixels_to_model(&px, 4).unwrap();
        let hw = SIZE * SIZE;
        assert_eq!(x.len(), 3 * hw);
        assert!((x[0] - (2.0 * 255.5 / 256.0 - 1.0)).abs() < 1e-15);
        assert!((x[hw] - (2.0 * 128.5 / 256.0 - 1.0)).abs() < 1e-15);
        assert!((x[2 * hw] - (2.0 * 0.5 / 256.0 - 1.0)).abs() < 1e-15);
        assert!(pixels_to_model(&px[..100], 4).is_err());
        assert!(pixels_to_model(&px, 2).is_err());
        let back = unit_to_rgba(&model_to_unit(&x));
        assert_eq!(&back[..4], &[255, 128, 0, 255]);
    }

    #[test]
    fn a_job_is_the_translation_then_the_way_back() {
        let arch = indm::arch::Architecture::image(
            3,
            SIZE,
            SIZE,
            indm::SdeKind::Vp,
            indm::arch::ImageFlowArch::Identity,
            indm::arch::UNetArch::default(),
        );
        let sd = job(&state(Method::Sdedit), 7, &arch, &arch).unwrap();
        let kinds: Vec<String> = sd
            .iter()
            .map(|s| match s {
                Stage::Encode(w, c) => format!("enc {w:?} {c:?}"),
                Stage::Run(w, p) => format!("run {w:?} {}", p.nfe()),
                Stage::Decode(w, c) => format!("dec {w:?} {c:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "enc Target Some(Latent)",
                "run Target 8",
                "dec Target Some(Result)",
                "enc Source None",
                "run Source 8",
                "dec Source Some(Back)",
            ]
        );
        let dd = job(&state(Method::Ddib), 7, &arch, &arch).unwrap();
        assert_eq!(dd.len(), 8);
        assert_eq!(job_nfe(&dd), 4 * 2 * 7);
        assert!(quality_warning(&state(Method::Ddib), 7).is_some());
        assert!(quality_warning(&state(Method::Sdedit), 7).is_none());
    }

    #[test]
    fn files_that_are_not_image_models_are_refused() {
        let e = image_file_to_model(b"not an image", "x.png").unwrap_err();
        assert!(e.to_string().contains("x.png"), "{e}");
        let arch =
            indm::arch::Architecture::default_2d(indm::SdeKind::Vp, indm::arch::FlowArch::Identity);
        let p = indm::params::ParamSet::init(&arch, 0);
        let bytes = indm::weights::model_file(&arch, &p, &Default::default())
            .unwrap()
            .to_bytes()
            .unwrap();
        let e = load_model(&bytes, "two-d.safetensors").unwrap_err();
        assert!(
            e.to_string().contains("not a 3 x 32 x 32 image model"),
            "{e}"
        );
    }
}
