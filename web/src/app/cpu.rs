//! The fallback without WebGPU: the same plan executed in `f64` in wasm
//! ([`crate::sim::CpuRun`]), a few steps per frame, drawn with canvas 2D.

use std::collections::HashMap;
use std::rc::Rc;

use indm::model::CpuModel;
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use super::{AppError, Frame, Panel, Timing};
use crate::sim::{self, CpuRun, Prepared, Window};
use crate::state::State;

/// Colour buckets (particles are drawn bucket by bucket: one fill style each).
const BUCKETS: usize = 12;
/// Trails drawn.
const TRAILS: usize = 150;
/// Wall-clock budget per frame for the CPU steps.
const FRAME_BUDGET_MS: f64 = 25.0;

struct Run {
    model: Rc<CpuModel>,
    windows: [Window; 2],
    run: CpuRun,
    prep: Prepared,
    bucket: Vec<u8>,
    batch: usize,
    timing: Timing,
    reported: bool,
}

/// The canvas-2D view and the current CPU run.
pub struct CpuView {
    ctx2d: CanvasRenderingContext2d,
    size: (u32, u32),
    models: HashMap<String, (Rc<CpuModel>, [Window; 2])>,
    run: Option<Run>,
}

impl CpuView {
    /// Draws into `canvas` with a 2D context.
    pub fn new(canvas: &HtmlCanvasElement) -> Result<Self, AppError> {
        let ctx2d = canvas
            .get_context("2d")
            .map_err(|e| AppError::Page(super::js_err(e)))?
            .ok_or_else(|| AppError::Page("no 2D canvas context".into()))?
            .dyn_into::<CanvasRenderingContext2d>()
            .map_err(|_| AppError::Page("unexpected canvas context".into()))?;
        Ok(CpuView {
            ctx2d,
            size: (canvas.width(), canvas.height()),
            models: HashMap::new(),
            run: None,
        })
    }

    /// Starts a new run.
    pub fn start(
        &mut self,
        bytes: &[u8],
        file: &str,
        state: &State,
        particles: u32,
    ) -> Result<Prepared, AppError> {
        self.run = None;
        let (model, windows) = match self.models.get(file) {
            Some(m) => m.clone(),
            None => {
                let m = Rc::new(sim::cpu_model(bytes, file, state.flow)?);
                let windows = sim::panel_windows(&m, state.model)?;
                self.models.insert(file.to_string(), (m.clone(), windows));
                (m, windows)
            }
        };
        let prep = sim::prepare(&model.arch, state, particles)?;
        let run = CpuRun::new(&model, &prep);
        self.run = Some(Run {
            model,
            windows,
            run,
            prep: prep.clone(),
            bucket: Vec::new(),
            batch: 1,
            timing: Timing::default(),
            reported: false,
        });
        Ok(prep)
    }

    /// Runs about one frame's worth of steps; the statistics once, at the end.
    pub fn advance(&mut self) -> Option<super::Finished> {
        let r = self.run.as_mut()?;
        if !r.run.done() {
            let t0 = super::dom::now_ms();
            let k = r.run.advance(&r.model, r.batch);
            let dt = super::dom::now_ms() - t0;
            r.timing.add(k, dt);
            r.batch = if dt < FRAME_BUDGET_MS / 2.0 {
                (r.batch * 2).min(64)
            } else if dt > FRAME_BUDGET_MS * 2.0 {
                (r.batch / 2).max(1)
            } else {
                r.batch
            };
            if r.bucket.is_empty()
                && let Some(z0) = r.run.traj_z.first()
            {
                r.bucket = z0
                    .chunks_exact(2)
                    .map(|p| {
                        let h = p[1].atan2(p[0]) / std::f64::consts::TAU + 0.5;
                        ((h * BUCKETS as f64) as usize).min(BUCKETS - 1) as u8
                    })
                    .collect();
            }
            return None;
        }
        if r.reported {
            return None;
        }
        r.reported = true;
        let last = |v: &Vec<Vec<f64>>| sim::point_stats(v.last().map(Vec::as_slice).unwrap_or(&[]));
        Some(super::Finished {
            data: last(&r.run.traj_x),
            latent: last(&r.run.traj_z),
            start: sim::point_stats(r.run.traj_z.first().map(Vec::as_slice).unwrap_or(&[])),
            recorded: r.run.traj_x.len(),
            timing: r.timing,
        })
    }

    /// Plan steps done and in all, states recorded.
    pub fn progress(&self) -> Option<(usize, usize, usize)> {
        self.run.as_ref().map(|r| {
            let (a, b) = r.run.progress();
            (a, b, r.run.traj_x.len())
        })
    }

    /// Timing so far.
    pub fn timing(&self) -> Option<Timing> {
        self.run.as_ref().map(|r| r.timing)
    }

    /// Times of the recorded states.
    pub fn times(&self) -> Vec<f64> {
        self.run
            .as_ref()
            .map(|r| r.prep.plan.recorded_times())
            .unwrap_or_default()
    }

    /// Draws both panels at trajectory position `frame`.
    pub fn render(&self, frame: &Frame) {
        let c = &self.ctx2d;
        let (w, h) = (self.size.0 as f64, self.size.1 as f64);
        c.set_fill_style_str(&format!(
            "rgb({},{},{})",
            (super::BG[0] * 255.0) as u8,
            (super::BG[1] * 255.0) as u8,
            (super::BG[2] * 255.0) as u8
        ));
        c.fill_rect(0.0, 0.0, w, h);
        let Some(r) = self.run.as_ref() else {
            return;
        };
        let slots = r.run.traj_x.len();
        if slots == 0 || r.bucket.is_empty() {
            return;
        }
        let (slot, next, frac) = frame.slots(slots - 1);
        let pw = w / 2.0;
        for (p, panel) in [Panel::Data, Panel::Latent].into_iter().enumerate() {
            let traj = match panel {
                Panel::Data => &r.run.traj_x,
                Panel::Latent => &r.run.traj_z,
            };
            let Window { cx, cy, half } = r.windows[p];
            let to_px = |x: f64, y: f64| {
                (
                    p as f64 * pw + (x - cx) / half * pw / 2.0 + pw / 2.0,
                    h / 2.0 - (y - cy) / half * h / 2.0,
                )
            };
            let n = traj[0].len() / 2;
            if frame.trails && slot > 0 {
                let stride = n.div_ceil(TRAILS).max(1);
                c.set_line_width(1.0);
                for b in 0..BUCKETS {
                    c.set_stroke_style_str(&bucket_colour(b, 0.25));
                    c.begin_path();
                    for i in (0..n)
                        .step_by(stride)
                        .filter(|&i| r.bucket[i] as usize == b)
                    {
                        let (x, y) = to_px(traj[0][2 * i], traj[0][2 * i + 1]);
                        c.move_to(x, y);
                        for s in traj.iter().take(slot + 1).skip(1) {
                            let (x, y) = to_px(s[2 * i], s[2 * i + 1]);
                            c.line_to(x, y);
                        }
                    }
                    c.stroke();
                }
            }
            let (a, bnext) = (&traj[slot], &traj[next]);
            let rad = frame.point_px as f64;
            for b in 0..BUCKETS {
                c.set_fill_style_str(&bucket_colour(b, 0.85));
                for i in (0..n).filter(|&i| r.bucket[i] as usize == b) {
                    let x = a[2 * i] + frac as f64 * (bnext[2 * i] - a[2 * i]);
                    let y = a[2 * i + 1] + frac as f64 * (bnext[2 * i + 1] - a[2 * i + 1]);
                    let (px, py) = to_px(x, y);
                    c.fill_rect(px - rad, py - rad, 2.0 * rad, 2.0 * rad);
                }
            }
        }
    }
}

fn bucket_colour(b: usize, alpha: f64) -> String {
    format!(
        "hsla({:.0}, 70%, 70%, {alpha})",
        (b as f64 + 0.5) / BUCKETS as f64 * 360.0
    )
}
