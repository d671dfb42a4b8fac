//! The page: state from the link, backend choice (WebGPU, else the CPU fallback with a
//! plain notice), controls, the frame loop, readout, share link and exports.

mod cpu;
mod dom;
mod export;
mod fetch;
mod gpu;
mod image_view;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::sim::{self, PointStats, RunReport, SimError};
use crate::state::{self, Direction, FlowChoice, State, View};

/// Background colour of both panels (linear RGB in 0..1).
pub const BG: [f64; 3] = [0.055, 0.063, 0.086];
/// Seconds a full replay of the trajectory takes.
const REPLAY_SECONDS: f64 = 4.0;

/// What can go wrong on the page; every variant is shown to the user as text.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The page's HTML is not what the code expects.
    #[error("page: {0}")]
    Page(String),
    /// A model file could not be fetched.
    #[error("could not load {path}: {reason}")]
    Fetch {
        /// Path.
        path: String,
        /// Why.
        reason: String,
    },
    /// WebGPU failed after it was found.
    #[error("WebGPU: {0}")]
    Gpu(String),
    /// The model or the run was refused.
    #[error(transparent)]
    Sim(#[from] SimError),
}

impl From<indm::IndmError> for AppError {
    fn from(e: indm::IndmError) -> Self {
        AppError::Sim(SimError::Model(e))
    }
}

/// A JavaScript exception as text.
pub fn js_err(e: JsValue) -> String {
    e.as_string()
        .or_else(|| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Which panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Panel {
    /// Data space `x = h^{-1}(z)`.
    Data,
    /// Latent space `z`.
    Latent,
}

/// What to draw: a fractional position along the recorded states.
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    /// Position in recorded states (0 = first).
    pub pos: f64,
    /// Draw trails.
    pub trails: bool,
    /// Point radius in pixels.
    pub point_px: f32,
}

impl Frame {
    /// `(slot, next slot, blend)` for a run whose last recorded state is `last`.
    pub fn slots(&self, last: usize) -> (usize, usize, f32) {
        let p = self.pos.clamp(0.0, last as f64);
        let s = p.floor() as usize;
        (s.min(last), (s + 1).min(last), (p - s as f64) as f32)
    }
}

/// Accumulated executor time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    /// Plan steps executed.
    pub steps: usize,
    /// Milliseconds spent on them.
    pub ms: f64,
}

impl Timing {
    /// Adds `steps` steps that took `ms`.
    pub fn add(&mut self, steps: usize, ms: f64) {
        self.steps += steps;
        self.ms += ms;
    }

    /// Milliseconds per step.
    pub fn ms_per_step(&self) -> f64 {
        self.ms / self.steps.max(1) as f64
    }
}

/// A finished run's statistics.
pub struct Finished {
    /// Last state in data space.
    pub data: PointStats,
    /// Last state in the latent.
    pub latent: PointStats,
    /// First latent state.
    pub start: PointStats,
    /// States recorded.
    pub recorded: usize,
    /// Executor time.
    pub timing: Timing,
}

enum Backend {
    Gpu(Box<gpu::GpuView>),
    Cpu(Box<cpu::CpuView>),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Gpu(_) => "webgpu",
            Backend::Cpu(_) => "cpu-wasm",
        }
    }

    fn start(
        &mut self,
        bytes: &[u8],
        file: &str,
        s: &State,
        n: u32,
    ) -> Result<sim::Prepared, AppError> {
        match self {
            Backend::Gpu(g) => g.start(bytes, file, s, n),
            Backend::Cpu(c) => c.start(bytes, file, s, n),
        }
    }

    async fn advance(&mut self) -> Result<Option<Finished>, AppError> {
        match self {
            Backend::Gpu(g) => g.advance().await,
            Backend::Cpu(c) => Ok(c.advance()),
        }
    }

    fn progress(&self) -> Option<(usize, usize, usize)> {
        match self {
            Backend::Gpu(g) => g.progress(),
            Backend::Cpu(c) => c.progress(),
        }
    }

    fn timing(&self) -> Option<Timing> {
        match self {
            Backend::Gpu(g) => g.timing(),
            Backend::Cpu(c) => c.timing(),
        }
    }

    fn times(&self) -> Vec<f64> {
        match self {
            Backend::Gpu(g) => g.times(),
            Backend::Cpu(c) => c.times(),
        }
    }

    fn render(&self, f: &Frame) {
        match self {
            Backend::Gpu(g) => g.render(f),
            Backend::Cpu(c) => c.render(f),
        }
    }
}

/// User actions, queued by the event listeners and handled by the frame loop.
#[derive(Clone, Debug)]
enum Ev {
    Settings,
    ImageSettings,
    Gallery(&'static str),
    Upload,
    TranslateAgain,
    View(View),
    Flow(FlowChoice),
    RandomSeed,
    PlayPause,
    Scrub,
    Trails,
    ExportPng,
    ExportWebm,
    TranslatePng,
}

/// Entry point (called by `main` in the browser).
pub fn start() {
    console_error_panic_hook::set_once();
    wasm_bindgen_futures::spawn_local(async {
        if let Err(e) = run().await {
            dom::set_text("status", &format!("error: {e}"));
            dom::show_notices(&[format!("Error: {e}")]);
            web_sys::console::error_1(&e.to_string().into());
        }
    });
}

async fn next_frame() {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        let _ = dom::window().request_animation_frame(&resolve);
    });
    let _ = JsFuture::from(p).await;
}

/// Why WebGPU cannot be used, or its adapter's description from the browser.
async fn browser_adapter() -> Result<String, String> {
    let nav = dom::window().navigator();
    let gpu = js_sys::Reflect::get(&nav, &"gpu".into()).unwrap_or(JsValue::UNDEFINED);
    if gpu.is_undefined() || gpu.is_null() {
        return Err("this browser has no WebGPU (navigator.gpu is missing)".into());
    }
    let req = js_sys::Reflect::get(&gpu, &"requestAdapter".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or("navigator.gpu.requestAdapter is missing")?;
    let promise = req
        .call0(&gpu)
        .map_err(js_err)?
        .dyn_into::<js_sys::Promise>()
        .map_err(|_| "requestAdapter did not return a promise".to_string())?;
    let adapter = JsFuture::from(promise).await.map_err(js_err)?;
    if adapter.is_null() || adapter.is_undefined() {
        return Err("WebGPU is present but the browser offers no adapter".into());
    }
    let info = js_sys::Reflect::get(&adapter, &"info".into()).unwrap_or(JsValue::UNDEFINED);
    let field = |k: &str| {
        js_sys::Reflect::get(&info, &k.into())
            .ok()
            .and_then(|v| v.as_string())
            .filter(|s| !s.is_empty())
    };
    let parts: Vec<String> = ["vendor", "architecture", "description"]
        .iter()
        .filter_map(|k| field(k))
        .collect();
    Ok(if parts.is_empty() {
        "WebGPU adapter".into()
    } else {
        parts.join(" / ")
    })
}

fn listen(id: &str, kind: &str, queue: &Rc<RefCell<VecDeque<Ev>>>, ev: Ev) {
    let Some(el) = dom::document().get_element_by_id(id) else {
        return;
    };
    let q = queue.clone();
    let cb = Closure::<dyn FnMut()>::new(move || q.borrow_mut().push_back(ev.clone()));
    let _ = el.add_event_listener_with_callback(kind, cb.as_ref().unchecked_ref());
    cb.forget();
}

fn expose_stats(report: &RunReport) {
    if let Ok(json) = serde_json::to_string(report)
        && let Ok(v) = js_sys::JSON::parse(&json)
    {
        let _ = js_sys::Reflect::set(&dom::window(), &"indmStats".into(), &v);
        dom::set_text(
            "stats",
            &serde_json::to_string_pretty(&report.data).unwrap_or_default(),
        );
    }
}

async fn run() -> Result<(), AppError> {
    let mut canvas: web_sys::HtmlCanvasElement = dom::get("view")?;
    let search = dom::window().location().search().unwrap_or_default();
    let (mut st, parse_notices) = state::parse(&search);
    let mut link_notices = dom::notice_lines(&parse_notices);
    // The translation view has no models to run yet: it shows a plain card saying so,
    // and the 2D view stays one click away (the link keeps `view=image`).
    dom::show_view(st.view);
    let mut backend_notice = Vec::new();
    dom::set_text("status", "looking for WebGPU…");
    let (mut backend, mut adapter) = match browser_adapter().await {
        Ok(desc) => match indm::gpu::GpuContext::new().await {
            Ok(ctx) => {
                let name = format!("{desc} — {}", ctx.describe());
                (
                    Backend::Gpu(Box::new(gpu::GpuView::new(ctx, canvas.clone())?)),
                    name,
                )
            }
            Err(e) => {
                backend_notice.push(format!(
                    "WebGPU is not usable here ({e}). Running on the CPU instead (in wasm): fewer particles in the 2D view, fewer steps in the translation view."
                ));
                (
                    Backend::Cpu(Box::new(cpu::CpuView::new(&canvas)?)),
                    "CPU (wasm, f64)".into(),
                )
            }
        },
        Err(reason) => {
            backend_notice.push(format!(
                "WebGPU is not available: {reason}. Running on the CPU instead (in wasm): fewer particles in the 2D view, fewer steps in the translation view."
            ));
            (
                Backend::Cpu(Box::new(cpu::CpuView::new(&canvas)?)),
                "CPU (wasm, f64)".into(),
            )
        }
    };
    let mut is_cpu = matches!(backend, Backend::Cpu(_));
    dom::set_visible("fallback", is_cpu);
    if let Some(line) = backend_notice.first() {
        dom::set_text("fallback", line);
    }
    let _ = js_sys::Reflect::set(
        &dom::window(),
        &"indmBackend".into(),
        &backend.name().into(),
    );
    dom::set_text("adapter", &adapter);

    let queue: Rc<RefCell<VecDeque<Ev>>> = Rc::default();
    for id in [
        "model",
        "sampler",
        "steps",
        "seed",
        "temp",
        "t0",
        "dir",
        "particles",
    ] {
        listen(id, "change", &queue, Ev::Settings);
    }
    listen("flow-indm", "click", &queue, Ev::Flow(FlowChoice::Indm));
    listen(
        "flow-baseline",
        "click",
        &queue,
        Ev::Flow(FlowChoice::Baseline),
    );
    listen("view-2d", "click", &queue, Ev::View(View::TwoD));
    for id in ["tdir", "method", "it0", "isteps", "tseed"] {
        listen(id, "change", &queue, Ev::ImageSettings);
    }
    for id in crate::translate::GALLERY {
        listen(&format!("g-{id}"), "click", &queue, Ev::Gallery(id));
    }
    listen("upload", "change", &queue, Ev::Upload);
    listen("translate-run", "click", &queue, Ev::TranslateAgain);
    listen("translate-png", "click", &queue, Ev::TranslatePng);
    listen("view-image", "click", &queue, Ev::View(View::Image));
    listen("random-seed", "click", &queue, Ev::RandomSeed);
    listen("play", "click", &queue, Ev::PlayPause);
    listen("scrub", "input", &queue, Ev::Scrub);
    listen("trails", "change", &queue, Ev::Trails);
    listen("export-png", "click", &queue, Ev::ExportPng);
    listen("export-webm", "click", &queue, Ev::ExportWebm);

    let mut models = fetch::ModelCache::default();
    let mut restart = true;
    let mut playing = false;
    let mut frame = Frame {
        pos: 0.0,
        trails: true,
        point_px: if is_cpu { 1.2 } else { 1.6 },
    };
    let mut last_t = dom::now_ms();
    let mut recorder: Option<export::Recorder> = None;
    let mut finished = false;
    let mut run_notices: Vec<String> = Vec::new();
    let mut current: Option<(State, sim::Prepared)> = None;
    // What the canvas shows (see the end of the loop), and a counter of started runs.
    let mut drawn: Option<(f64, bool, Option<usize>, u64, bool)> = None;
    let mut runs: u64 = 0;
    let mut tv = image_view::ImageView::default();
    let mut image_restart = st.view == View::Image;
    let mut image_started = false;
    let mut image_notices: Vec<String> = Vec::new();
    loop {
        next_frame().await;
        if let (Backend::Gpu(_), Some(why)) = (&backend, gpu::fault()) {
            // The device is gone: continue on the CPU, on a fresh canvas (a canvas that
            // had a WebGPU context cannot give a 2D one).
            canvas = dom::replace_canvas(&canvas)?;
            backend = Backend::Cpu(Box::new(cpu::CpuView::new(&canvas)?));
            is_cpu = true;
            frame.point_px = 1.2;
            recorder = None;
            backend_notice = vec![format!(
                "WebGPU stopped working ({why}). Running on the CPU instead (in wasm): fewer particles in the 2D view, fewer steps in the translation view."
            )];
            dom::set_text("fallback", &backend_notice[0]);
            dom::set_visible("fallback", true);
            dom::set_text("adapter", "CPU (wasm, f64)");
            adapter = "CPU (wasm, f64)".into();
            let _ = js_sys::Reflect::set(
                &dom::window(),
                &"indmBackend".into(),
                &backend.name().into(),
            );
            if st.particles.is_some_and(|n| n > sim::CPU_MAX_PARTICLES) {
                st.particles = None;
            }
            restart = true;
            image_restart = true;
        }
        let now = dom::now_ms();
        let dt = (now - last_t).min(100.0);
        last_t = now;
        let events: Vec<Ev> = queue.borrow_mut().drain(..).collect();
        for ev in events {
            match ev {
                Ev::View(v) => {
                    st.view = v;
                    drawn = None;
                    dom::show_view(v);
                    dom::publish_state(&st);
                    if v == View::Image && !image_started {
                        image_restart = true;
                    }
                }
                Ev::Settings | Ev::ImageSettings => {
                    let (s, n) =
                        state::parse(&dom::controls_query(st.view, st.flow, st.image.as_deref()));
                    link_notices = n.iter().map(|n| format!("Settings: {n}")).collect();
                    st = s;
                    if matches!(ev, Ev::Settings) {
                        restart = true;
                    } else {
                        image_restart = true;
                    }
                }
                Ev::Gallery(id) => {
                    st.image = Some(id.to_string());
                    tv.upload = None;
                    dom::set_visible("upload-note", false);
                    if let Ok(i) = dom::get::<web_sys::HtmlInputElement>("upload") {
                        i.set_value("");
                    }
                    image_restart = true;
                }
                Ev::TranslateAgain => image_restart = true,
                Ev::TranslatePng => {
                    if let Err(e) = image_view::export_png(&translate_export_name(&st)) {
                        run_notices.push(format!("PNG export: {e}"));
                    }
                }
                Ev::Upload => {
                    if let Some(file) = image_view::chosen_file() {
                        dom::set_text("translate-status", "decoding the upload…");
                        match image_view::decode_upload(&file).await {
                            Ok(src) => {
                                tv.upload = Some(src);
                                dom::set_text(
                                    "upload-note",
                                    "Your uploaded image stays in this page: it is not part of the share link (the link names the last gallery image instead).",
                                );
                                dom::set_visible("upload-note", true);
                                image_restart = true;
                            }
                            Err(msg) => {
                                image_notices = vec![format!("Upload: {msg}")];
                                dom::set_text(
                                    "translate-status",
                                    &format!("upload refused: {msg}"),
                                );
                                let mut all = link_notices.clone();
                                all.extend(image_notices.iter().cloned());
                                dom::show_notices(&all);
                            }
                        }
                    }
                }
                Ev::Flow(f) => {
                    st.flow = f;
                    restart = true;
                }
                Ev::RandomSeed => {
                    st.seed = (js_sys::Math::random() * u32::MAX as f64) as u32;
                    restart = true;
                }
                Ev::PlayPause => {
                    if finished {
                        if !playing && current_last(&backend) <= frame.pos {
                            frame.pos = 0.0;
                        }
                        playing = !playing;
                    }
                }
                Ev::Scrub => {
                    if let Ok(v) = dom::value("scrub").parse::<f64>() {
                        frame.pos = v;
                        playing = false;
                    }
                }
                Ev::Trails => {
                    frame.trails = dom::get::<web_sys::HtmlInputElement>("trails")
                        .map(|i| i.checked())
                        .unwrap_or(true);
                }
                Ev::ExportPng => {
                    backend.render(&frame);
                    export::png(&canvas, &export_name(&st, "png"));
                }
                Ev::ExportWebm => {
                    if finished && recorder.is_none() {
                        match export::Recorder::start(&canvas, &export_name(&st, "webm")) {
                            Ok(r) => {
                                recorder = Some(r);
                                frame.pos = 0.0;
                                playing = true;
                            }
                            Err(e) => run_notices.push(format!("WebM export: {e}")),
                        }
                    }
                }
            }
        }
        if st.view == View::Image {
            if image_restart {
                image_restart = false;
                image_started = true;
                image_notices.clear();
                dom::set_text("status", "translation view");
                let steps = crate::translate::steps_for(&st, is_cpu);
                dom::show_translate_state(&st, steps);
                dom::publish_state(&st);
                let ctx = match &backend {
                    Backend::Gpu(g) => Some(g.ctx()),
                    Backend::Cpu(_) => None,
                };
                match tv.start(&st, ctx, &mut models).await {
                    Ok(()) => {
                        if is_cpu {
                            dom::set_text(
                                "translate-status",
                                &format!(
                                    "translating on the CPU (wasm, f64 reference code: WebGPU is not available), {steps} steps; this is slow"
                                ),
                            );
                        }
                    }
                    Err(e) => {
                        image_notices.push(format!("Error: {e}"));
                        dom::set_text("translate-status", &format!("error: {e}"));
                    }
                }
                if let Some(w) = crate::translate::quality_warning(&st, steps) {
                    image_notices.push(format!("Run: {w}"));
                }
                let mut all = link_notices.clone();
                all.extend(image_notices.iter().cloned());
                dom::show_notices(&all);
            }
            let ctx = match &backend {
                Backend::Gpu(g) if gpu::fault().is_none() => Some(g.ctx()),
                _ => None,
            };
            if tv.busy()
                && let Err(e) = tv.tick(ctx, backend.name()).await
            {
                dom::set_text("translate-status", &format!("error: {e}"));
                dom::show_notices(&[format!("Error: {e}")]);
            }
            update_readout(&backend, &frame, current_last(&backend), playing, &current);
            continue;
        }
        if restart {
            restart = false;
            runs += 1;
            finished = false;
            playing = false;
            frame.pos = 0.0;
            run_notices.clear();
            let default_n = if is_cpu {
                sim::CPU_DEFAULT_PARTICLES
            } else {
                sim::GPU_DEFAULT_PARTICLES
            };
            let mut n = st.particles.unwrap_or(default_n);
            if is_cpu && n > sim::CPU_MAX_PARTICLES {
                run_notices.push(format!(
                    "The CPU fallback runs at most {} particles; using {} (the link asked for {n}).",
                    sim::CPU_MAX_PARTICLES,
                    sim::CPU_MAX_PARTICLES
                ));
                n = sim::CPU_MAX_PARTICLES;
            }
            st.particles = Some(n);
            dom::show_state(&st);
            dom::publish_state(&st);
            let _ = js_sys::Reflect::delete_property(
                &dom::window().unchecked_into::<js_sys::Object>(),
                &"indmStats".into(),
            );
            let file = sim::model_path(st.model, st.flow);
            dom::set_text("status", &format!("loading {file}…"));
            let started = match models.get(&file).await {
                Ok(bytes) => backend.start(&bytes, &file, &st, n),
                Err(e) => Err(e),
            };
            match started {
                Ok(prep) => {
                    run_notices.extend(prep.notices.iter().map(|n| format!("Run: {n}")));
                    current = Some((st.clone(), prep));
                    dom::set_text("status", "sampling…");
                }
                Err(e) => {
                    current = None;
                    run_notices.push(format!("Error: {e}"));
                    dom::set_text("status", &format!("error: {e}"));
                }
            }
            // The backend notice has its own banner (#fallback).
            let mut all = link_notices.clone();
            all.extend(run_notices.iter().cloned());
            dom::show_notices(&all);
        }
        match backend.advance().await {
            Ok(Some(done)) => {
                finished = true;
                frame.pos = done.recorded.saturating_sub(1) as f64;
                if let Some((s, prep)) = &current {
                    let t = done.timing;
                    let report = RunReport {
                        query: state::to_query(s),
                        backend: backend.name().into(),
                        adapter: adapter.clone(),
                        particles: prep.particles,
                        steps: prep.steps,
                        plan_steps: prep.plan.steps.len(),
                        sampler: s.sampler.name().into(),
                        seed: s.seed,
                        model: s.model.into(),
                        flow: s.flow.name().into(),
                        direction: s.direction.name().into(),
                        recorded: done.recorded,
                        data: done.data,
                        latent: done.latent,
                        start: done.start,
                        ms_per_step: t.ms_per_step(),
                        particle_steps_per_sec: prep.particles as f64 * t.steps as f64
                            / (t.ms / 1e3).max(1e-9),
                    };
                    expose_stats(&report);
                }
                dom::set_text("status", "done — press play to replay, drag the scrubber");
            }
            Ok(None) => {}
            Err(e) => {
                finished = true;
                dom::set_text("status", &format!("error: {e}"));
                dom::show_notices(&[format!("Error: {e}")]);
            }
        }
        let last = current_last(&backend);
        if !finished {
            frame.pos = last;
        } else if playing {
            let speed = last.max(1.0) / REPLAY_SECONDS;
            frame.pos += speed * dt / 1e3;
            if frame.pos >= last {
                frame.pos = last;
                playing = false;
                if let Some(r) = recorder.take() {
                    r.stop();
                }
            }
        }
        // Draw only when the picture changes (new states, the scrubber, trails, a new
        // run): a still picture stays on the canvas, and software adapters spend most
        // of their time drawing 2 x n points.
        let key = (
            frame.pos,
            frame.trails,
            backend.progress().map(|(_, _, rec)| rec),
            runs,
            is_cpu,
        );
        if st.view == View::TwoD && drawn.as_ref() != Some(&key) {
            backend.render(&frame);
            drawn = Some(key);
        }
        update_readout(&backend, &frame, last, playing, &current);
    }
}

/// Position of the last recorded state.
fn current_last(b: &Backend) -> f64 {
    b.progress()
        .map_or(0.0, |(_, _, rec)| rec.saturating_sub(1) as f64)
}

/// File name of the translation view's PNG: everything that made the picture.
fn translate_export_name(s: &State) -> String {
    let t = &s.translate;
    let steps = t.steps.map_or("default".to_string(), |n| n.to_string());
    format!(
        "indm-{}-{}-t0{:.2}-{steps}steps-seed{}-{}.png",
        t.direction.name(),
        t.method.name(),
        t.t0,
        s.seed,
        s.image.as_deref().unwrap_or("upload"),
    )
}

fn export_name(s: &State, ext: &str) -> String {
    format!(
        "indm-{}-{}-{}-{}steps-seed{}.{ext}",
        s.model,
        s.flow.name(),
        s.sampler.name(),
        s.steps,
        s.seed
    )
}

fn update_readout(
    b: &Backend,
    f: &Frame,
    last: f64,
    playing: bool,
    current: &Option<(State, sim::Prepared)>,
) {
    if let Ok(sc) = dom::get::<web_sys::HtmlInputElement>("scrub") {
        sc.set_max(&format!("{last}"));
        if playing || (sc.value().parse::<f64>().ok() != Some(f.pos)) {
            sc.set_value(&format!("{:.3}", f.pos));
        }
    }
    dom::set_text("play", if playing { "⏸ pause" } else { "▶ play" });
    let times = b.times();
    let (slot, next, frac) = f.slots(last as usize);
    let t = match (times.get(slot), times.get(next)) {
        (Some(a), Some(c)) => a + frac as f64 * (c - a),
        _ => 0.0,
    };
    let dir = current.as_ref().map_or("", |(s, _)| match s.direction {
        Direction::Reverse => "sampling (noise → data)",
        Direction::Forward => "noising (data → noise)",
    });
    dom::set_text("time", &format!("t = {t:.3} · {dir}"));
    if let (Some((done, total, _)), Some(tm), Some((_, prep))) = (b.progress(), b.timing(), current)
    {
        let pps = prep.particles as f64 * tm.steps as f64 / (tm.ms / 1e3).max(1e-9);
        dom::set_text(
            "perf",
            &format!(
                "{} particles · step {done}/{total} · {:.2} ms/step · {} particle-steps/s",
                prep.particles,
                tm.ms_per_step(),
                human(pps)
            ),
        );
    }
}

fn human(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}
