//! The dog <-> cat translation view: the source image (gallery or upload), the models
//! (WebGPU: [`GpuImageModel`]; without it the `f64` reference in wasm), a job of
//! [`crate::translate::Stage`]s run a little per frame, the four pictures (source,
//! latent, result, translated back) and the statistics (`window.indmTranslateStats`,
//! `<pre id="translate-stats">`).

use std::rc::Rc;

use indm::gpu::image_ops::GpuTensor;
use indm::gpu::{GpuContext, GpuImageModel, ImagePlanRun};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::fetch::ModelCache;
use super::{AppError, dom, js_err};
use crate::state::State;
use crate::translate::{
    self, Captured, CpuJob, CpuModels, MAX_UPLOAD_BYTES, MAX_UPLOAD_SIDE, SIZE, Stage, Which,
};

/// Milliseconds of work per frame before the page gets to draw again.
const FRAME_BUDGET_MS: f64 = 12.0;

/// The image being translated.
#[derive(Clone, Debug)]
pub struct Source {
    /// Gallery id, or `upload`.
    pub id: String,
    /// Model values (CHW, `[-1, 1]`).
    pub x: Vec<f64>,
}

/// A job on the GPU.
struct GpuJob {
    stages: Vec<Stage>,
    stage: usize,
    value: GpuTensor,
    run: Option<ImagePlanRun>,
    captured: Captured,
}

enum Exec {
    Gpu(Box<GpuJob>),
    Cpu(Box<CpuJob>),
}

/// The view's state across frames.
#[derive(Default)]
pub struct ImageView {
    gpu_models: Option<(String, Rc<[GpuImageModel; 2]>)>,
    cpu_models: Option<(String, Rc<CpuModels>)>,
    exec: Option<Exec>,
    job_state: Option<State>,
    source: Option<Source>,
    steps: usize,
    nfe: usize,
    started_ms: f64,
    /// An uploaded image replaces the gallery choice until one is picked again.
    pub upload: Option<Source>,
}

fn put_pixels(canvas_id: &str, unit: &[f64]) {
    let Ok(c) = dom::get::<web_sys::HtmlCanvasElement>(canvas_id) else {
        return;
    };
    let Ok(Some(ctx)) = c.get_context("2d") else {
        return;
    };
    let Ok(ctx) = ctx.dyn_into::<web_sys::CanvasRenderingContext2d>() else {
        return;
    };
    let rgba = translate::unit_to_rgba(unit);
    let side = ((unit.len() / 3) as f64).sqrt() as u32;
    if let Ok(img) = web_sys::ImageData::new_with_u8_clamped_array_and_sh(
        wasm_bindgen::Clamped(&rgba),
        side,
        side,
    ) {
        let _ = ctx.put_image_data(&img, 0.0, 0.0);
    }
}

fn clear(canvas_id: &str) {
    put_pixels(canvas_id, &vec![0.08; 3 * SIZE * SIZE]);
}

async fn read64(ctx: &GpuContext, t: &GpuTensor) -> Result<Vec<f64>, AppError> {
    Ok(t.read(ctx).await?.into_iter().map(|v| v as f64).collect())
}

impl GpuJob {
    /// Runs about a frame's worth of the job.
    async fn advance(
        &mut self,
        ctx: &GpuContext,
        models: &[GpuImageModel; 2],
    ) -> Result<(), AppError> {
        let start = dom::now_ms();
        while self.stage < self.stages.len() && dom::now_ms() - start < FRAME_BUDGET_MS {
            let m = |w: Which| match w {
                Which::Source => &models[0],
                Which::Target => &models[1],
            };
            match &self.stages[self.stage] {
                Stage::Encode(w, cap) | Stage::Decode(w, cap) => {
                    let encode = matches!(self.stages[self.stage], Stage::Encode(..));
                    let mut enc = ctx.device.create_command_encoder(&Default::default());
                    let out = if encode {
                        m(*w).record_forward(ctx, &mut enc, &self.value)?.0
                    } else {
                        m(*w).record_inverse(ctx, &mut enc, &self.value)?
                    };
                    ctx.queue.submit([enc.finish()]);
                    // Reading back waits for the device (and gives the picture).
                    let v = read64(ctx, &out).await?;
                    if let Some(c) = cap {
                        self.captured.put(*c, v);
                    }
                    self.value = out;
                    self.stage += 1;
                }
                Stage::Run(w, plan) => {
                    let model = m(*w);
                    if self.run.is_none() {
                        self.run =
                            Some(ImagePlanRun::new(model, plan.clone(), self.value.clone())?);
                    }
                    let run = self.run.as_mut().expect("just set");
                    run.advance(ctx, model, 1)?;
                    // A 4-byte readback: the frame waits for this step's work.
                    let _ = ctx.read_bytes(&run.z().buffer, 4).await?;
                    if run.done() {
                        self.value = run.z().clone();
                        self.run = None;
                        self.stage += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn progress(&self) -> (usize, usize, Option<(usize, usize)>) {
        (
            self.stage,
            self.stages.len(),
            self.run.as_ref().map(|r| r.progress()),
        )
    }
}

/// Decodes an uploaded file in the browser (any format it can decode), centre-crops it
/// to a square and resizes it to the models' size. Every failure is a message.
pub async fn decode_upload(file: &web_sys::File) -> Result<Source, String> {
    let size = file.size();
    if size > MAX_UPLOAD_BYTES {
        return Err(format!(
            "'{}' is {:.1} MB; the page takes images up to {:.0} MB",
            file.name(),
            size / 1048576.0,
            MAX_UPLOAD_BYTES / 1048576.0
        ));
    }
    if size == 0.0 {
        return Err(format!("'{}' is empty", file.name()));
    }
    Ok(Source {
        id: "upload".into(),
        x: decode_blob(file, &file.name()).await?,
    })
}

/// Decodes image file bytes (a gallery PNG) with the browser's decoder, as uploads are.
pub async fn decode_bytes(bytes: &[u8], name: &str) -> Result<Vec<f64>, String> {
    let parts = js_sys::Array::new();
    parts.push(&js_sys::Uint8Array::from(bytes));
    let blob = web_sys::Blob::new_with_u8_array_sequence(&parts).map_err(js_err)?;
    decode_blob(&blob, name).await
}

/// The browser's decoder on `blob`: no colour-space conversion and no premultiplied
/// alpha (so an sRGB PNG gives its stored bytes, as the native decoder does), centre crop,
/// resize to `SIZE` with smoothing, model values.
async fn decode_blob(blob: &web_sys::Blob, name: &str) -> Result<Vec<f64>, String> {
    let opts = web_sys::ImageBitmapOptions::new();
    opts.set_color_space_conversion(web_sys::ColorSpaceConversion::None);
    opts.set_premultiply_alpha(web_sys::PremultiplyAlpha::None);
    let promise = dom::window()
        .create_image_bitmap_with_blob_and_image_bitmap_options(blob, &opts)
        .map_err(|e| format!("'{name}' cannot be decoded: {}", js_err(e)))?;
    let bitmap: web_sys::ImageBitmap = JsFuture::from(promise)
        .await
        .map_err(|e| format!("'{name}' cannot be decoded as an image ({})", js_err(e)))?
        .dyn_into()
        .map_err(|_| "createImageBitmap did not give an ImageBitmap".to_string())?;
    let (w, h) = (bitmap.width(), bitmap.height());
    if w == 0 || h == 0 || w > MAX_UPLOAD_SIDE || h > MAX_UPLOAD_SIDE {
        bitmap.close();
        return Err(format!(
            "'{name}' is {w} x {h} pixels; the page takes images of 1 to {MAX_UPLOAD_SIDE} pixels a side"
        ));
    }
    let doc = dom::document();
    let canvas: web_sys::HtmlCanvasElement = doc
        .create_element("canvas")
        .map_err(js_err)?
        .dyn_into()
        .map_err(|_| "no canvas".to_string())?;
    canvas.set_width(SIZE as u32);
    canvas.set_height(SIZE as u32);
    let ctx: web_sys::CanvasRenderingContext2d = canvas
        .get_context("2d")
        .map_err(js_err)?
        .ok_or("no 2D context")?
        .dyn_into()
        .map_err(|_| "no 2D context".to_string())?;
    ctx.set_image_smoothing_enabled(true);
    let s = w.min(h) as f64;
    let (sx, sy) = ((w as f64 - s) / 2.0, (h as f64 - s) / 2.0);
    ctx.draw_image_with_image_bitmap_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
        &bitmap,
        sx,
        sy,
        s,
        s,
        0.0,
        0.0,
        SIZE as f64,
        SIZE as f64,
    )
    .map_err(js_err)?;
    bitmap.close();
    let data = ctx
        .get_image_data(0.0, 0.0, SIZE as f64, SIZE as f64)
        .map_err(js_err)?;
    translate::pixels_to_model(&data.data().0, 4).map_err(|e| e.to_string())
}

impl ImageView {
    /// Whether a job is running.
    pub fn busy(&self) -> bool {
        self.exec.is_some()
    }

    /// Starts the translation of the state's image (or the upload) on the GPU (`ctx`)
    /// or the CPU.
    pub async fn start(
        &mut self,
        st: &State,
        ctx: Option<&GpuContext>,
        files: &mut ModelCache,
    ) -> Result<(), AppError> {
        self.exec = None;
        for id in ["img-latent", "img-result", "img-back"] {
            clear(id);
        }
        dom::set_text("cycle-error", "–");
        dom::set_text("translate-time", "–");
        dom::set_text("translate-stats", "");
        let _ = js_sys::Reflect::delete_property(
            &dom::window().unchecked_into::<js_sys::Object>(),
            &"indmTranslateStats".into(),
        );
        let (src, tgt) = translate::classes(st.translate.direction);
        let key = format!("{src}>{tgt}");
        let source = match &self.upload {
            Some(u) => u.clone(),
            None => {
                let id = translate::gallery_id(st);
                let path = translate::gallery_path(&id);
                let bytes = files.get(&path).await?;
                // The browser's decoder, as for uploads: the image crate's decoders stay
                // out of the wasm bundle (the native reference decodes with them; the
                // browser test checks both give the same pixels).
                let x = decode_bytes(&bytes, &path).await.map_err(AppError::Page)?;
                Source { x, id }
            }
        };
        put_pixels("img-source", &translate::model_to_unit(&source.x));
        dom::set_text("translate-status", "loading the models…");
        let sb = files.get(&translate::model_path(src)).await?;
        let tb = files.get(&translate::model_path(tgt)).await?;
        let steps = translate::steps_for(st, ctx.is_none());
        let exec = match ctx {
            Some(ctx) => {
                if self.gpu_models.as_ref().map(|m| &m.0) != Some(&key) {
                    let a = GpuImageModel::from_bytes(ctx, &sb, &translate::model_path(src))?;
                    let b = GpuImageModel::from_bytes(ctx, &tb, &translate::model_path(tgt))?;
                    self.gpu_models = Some((key, Rc::new([a, b])));
                }
                let models = &self.gpu_models.as_ref().expect("just set").1;
                let stages = translate::job(st, steps, &models[0].arch, &models[1].arch)?;
                self.nfe = translate::job_nfe(&stages);
                let xf: Vec<f32> = source.x.iter().map(|&v| v as f32).collect();
                let value = models[0].upload_batch(ctx, "source image", &xf)?;
                Exec::Gpu(Box::new(GpuJob {
                    stages,
                    stage: 0,
                    value,
                    run: None,
                    captured: Captured::default(),
                }))
            }
            None => {
                if self.cpu_models.as_ref().map(|m| &m.0) != Some(&key) {
                    let a = translate::load_model(&sb, &translate::model_path(src))?;
                    let b = translate::load_model(&tb, &translate::model_path(tgt))?;
                    self.cpu_models = Some((key, Rc::new(CpuModels::new(a, b)?)));
                }
                let models = &self.cpu_models.as_ref().expect("just set").1;
                let (sa, ta) = models.archs();
                let stages = translate::job(st, steps, sa, ta)?;
                self.nfe = translate::job_nfe(&stages);
                Exec::Cpu(Box::new(CpuJob::new(stages, source.x.clone())))
            }
        };
        self.steps = steps;
        self.source = Some(source);
        self.exec = Some(exec);
        self.job_state = Some(st.clone());
        self.started_ms = dom::now_ms();
        dom::set_text("translate-status", "translating…");
        Ok(())
    }

    /// Advances the running job by about a frame; shows and exposes the results when
    /// it finishes.
    pub async fn tick(&mut self, ctx: Option<&GpuContext>, backend: &str) -> Result<(), AppError> {
        let Some(exec) = self.exec.as_mut() else {
            return Ok(());
        };
        let (done, captured, progress) = match exec {
            Exec::Gpu(job) => {
                let (Some(ctx), Some((_, models))) = (ctx, self.gpu_models.as_ref()) else {
                    self.exec = None;
                    return Err(AppError::Gpu("the WebGPU device went away".into()));
                };
                let models = models.clone();
                job.advance(ctx, &models).await?;
                let (s, n, run) = job.progress();
                (s >= n, &job.captured, (s, n, run))
            }
            Exec::Cpu(job) => {
                let models = match self.cpu_models.as_ref() {
                    Some((_, m)) => m.clone(),
                    None => {
                        self.exec = None;
                        return Ok(());
                    }
                };
                // One unit of work per frame: a flow pass or one sampler step.
                job.advance(&models)?;
                let (s, n) = job.progress();
                (job.done(), &job.captured, (s, n, None))
            }
        };
        if !captured.latent.is_empty() {
            put_pixels("img-latent", &translate::latent_to_unit(&captured.latent));
        }
        if !captured.result.is_empty() {
            put_pixels("img-result", &translate::model_to_unit(&captured.result));
        }
        let elapsed = dom::now_ms() - self.started_ms;
        let (s, n, run) = progress;
        let step = run.map_or(String::new(), |(a, b)| format!(", sampler step {a}/{b}"));
        dom::set_text(
            "translate-time",
            &format!(
                "{:.1} s (stage {}/{n}{step})",
                elapsed / 1e3,
                (s + 1).min(n)
            ),
        );
        if !done {
            return Ok(());
        }
        let captured = captured.clone();
        self.exec = None;
        put_pixels("img-back", &translate::model_to_unit(&captured.back));
        let (Some(st), Some(src)) = (self.job_state.as_ref(), self.source.as_ref()) else {
            return Ok(());
        };
        let report = translate::report(
            st, &src.id, backend, self.steps, self.nfe, &src.x, &captured, elapsed,
        );
        dom::set_text("cycle-error", &format!("{:.4}", report.cycle_error));
        dom::set_text(
            "translate-time",
            &format!(
                "{:.2} s for {} score-net evaluations ({:.0} ms each, with the flows)",
                elapsed / 1e3,
                self.nfe,
                elapsed / self.nfe.max(1) as f64
            ),
        );
        if let Ok(json) = serde_json::to_string(&report) {
            if let Ok(v) = js_sys::JSON::parse(&json) {
                let _ = js_sys::Reflect::set(&dom::window(), &"indmTranslateStats".into(), &v);
            }
            dom::set_text(
                "translate-stats",
                &serde_json::to_string_pretty(&report).unwrap_or(json),
            );
        }
        let on = if backend == "webgpu" {
            "on WebGPU"
        } else {
            "on the CPU (wasm, f64 reference code)"
        };
        dom::set_text("translate-status", &format!("done {on}"));
        Ok(())
    }
}

/// The file chosen in `<input id="upload">`, if any.
pub fn chosen_file() -> Option<web_sys::File> {
    dom::get::<web_sys::HtmlInputElement>("upload")
        .ok()?
        .files()?
        .get(0)
}

/// The four pictures of the translation view, side by side.
const PICTURES: [(&str, &str); 4] = [
    ("img-source", "source"),
    ("img-latent", "latent z = h(x)"),
    ("img-result", "translation"),
    ("img-back", "translated back"),
];

/// Saves the translation view (source, latent, translation, cycle; each scaled 4x without
/// smoothing, with captions) as one PNG named `name`.
pub fn export_png(name: &str) -> Result<(), String> {
    const SCALE: u32 = 4;
    const PAD: u32 = 8;
    const CAPTION: u32 = 20;
    let side = SIZE as u32 * SCALE;
    let doc = dom::document();
    let out: web_sys::HtmlCanvasElement = doc
        .create_element("canvas")
        .map_err(js_err)?
        .dyn_into()
        .map_err(|_| "no canvas".to_string())?;
    let n = PICTURES.len() as u32;
    out.set_width(n * side + (n + 1) * PAD);
    out.set_height(side + 2 * PAD + CAPTION);
    let ctx: web_sys::CanvasRenderingContext2d = out
        .get_context("2d")
        .map_err(js_err)?
        .ok_or("no 2D context")?
        .dyn_into()
        .map_err(|_| "no 2D context".to_string())?;
    ctx.set_fill_style_str("#0e1016");
    ctx.fill_rect(0.0, 0.0, out.width() as f64, out.height() as f64);
    ctx.set_image_smoothing_enabled(false);
    ctx.set_font("13px sans-serif");
    ctx.set_fill_style_str("#c8ccd6");
    for (k, (id, caption)) in PICTURES.iter().enumerate() {
        let src = dom::get::<web_sys::HtmlCanvasElement>(id)
            .map_err(|_| format!("the page has no canvas '{id}'"))?;
        let x = (PAD + k as u32 * (side + PAD)) as f64;
        ctx.draw_image_with_html_canvas_element_and_dw_and_dh(
            &src,
            x,
            PAD as f64,
            side as f64,
            side as f64,
        )
        .map_err(js_err)?;
        ctx.fill_text(caption, x, (PAD + side + CAPTION - 4) as f64)
            .map_err(js_err)?;
    }
    super::export::png(&out, name);
    Ok(())
}
