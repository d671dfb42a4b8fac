//! The WebGPU backend: [`PlanRun`] advances the particles a few plan steps per frame,
//! each newly recorded latent state is decoded to data space on the GPU, and a render
//! pipeline (`shaders/particles2d.wgsl`) draws both panels straight from the
//! trajectory storage buffers. The only readback is the last state, once, at the end.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use indm::gpu::shaders::PARTICLES2D_MODULE;
use indm::gpu::{FlowDirection, GpuContext, GpuModel2d, PlanRun};

use super::{AppError, Frame, Timing};
use crate::sim::{self, Prepared, Window};
use crate::state::State;

/// The `View` uniform of `particles2d.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct ViewUniform {
    xform: [f32; 4],
    px: [f32; 4],
    idx: [u32; 4],
    mixes: [f32; 4],
}

/// Trails drawn (every `n / TRAILS`-th particle).
const TRAILS: u32 = 400;
/// Target GPU time per frame when choosing how many plan steps to submit.
const FRAME_BUDGET_MS: f64 = 30.0;

thread_local! {
    /// The first device loss or uncaptured WebGPU error (set by the device's callbacks).
    static FAULT: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn record_fault(msg: String) {
    web_sys::console::error_1(&msg.clone().into());
    FAULT.with(|f| {
        let mut f = f.borrow_mut();
        if f.is_none() {
            *f = Some(msg);
        }
    });
}

/// Why the WebGPU device can no longer be used (lost, or an uncaptured error), if it
/// cannot. Once set, nothing may touch the device again: wgpu's web backend panics
/// when it creates a buffer on a lost device.
pub fn fault() -> Option<String> {
    FAULT.with(|f| f.borrow().clone())
}

struct Run {
    model: Rc<GpuModel2d>,
    windows: [Window; 2],
    run: PlanRun,
    prep: Prepared,
    records: Vec<bool>,
    traj_x: wgpu::Buffer,
    tmp_z: wgpu::Buffer,
    tmp_x: wgpu::Buffer,
    logdet: wgpu::Buffer,
    slots_done: usize,
    binds: [wgpu::BindGroup; 2],
    batch: usize,
    timing: Timing,
    reported: bool,
}

/// The WebGPU view: device, canvas surface, render pipelines, the current run.
pub struct GpuView {
    ctx: GpuContext,
    surface: wgpu::Surface<'static>,
    size: (u32, u32),
    points: wgpu::RenderPipeline,
    trails: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    uniforms: [wgpu::Buffer; 2],
    models: HashMap<String, (Rc<GpuModel2d>, [Window; 2])>,
    run: Option<Run>,
}

impl GpuView {
    /// The device (shared with the translation view).
    pub fn ctx(&self) -> &GpuContext {
        &self.ctx
    }

    /// Sets up rendering into `canvas` with the device of `ctx`.
    pub fn new(ctx: GpuContext, canvas: web_sys::HtmlCanvasElement) -> Result<Self, AppError> {
        // Without these, wgpu panics on the first uncaptured error; with them the page
        // switches to the CPU fallback and says why.
        ctx.device.set_device_lost_callback(|reason, msg| {
            record_fault(format!("the WebGPU device was lost ({reason:?}: {msg})"));
        });
        ctx.device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            record_fault(format!("WebGPU error: {e}"))
        }));
        let size = (canvas.width(), canvas.height());
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let surface = instance
            .create_surface(wgpu::SurfaceTarget::Canvas(canvas))
            .map_err(|e| AppError::Gpu(format!("canvas surface: {e}")))?;
        let format = wgpu::TextureFormat::Rgba8Unorm;
        surface.configure(
            &ctx.device,
            &wgpu::SurfaceConfiguration {
                usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
                format,
                color_space: Default::default(),
                width: size.0,
                height: size.1,
                present_mode: wgpu::PresentMode::AutoVsync,
                desired_maximum_frame_latency: 2,
                alpha_mode: wgpu::CompositeAlphaMode::Opaque,
                view_formats: vec![],
            },
        );
        let storage = |binding| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::VERTEX,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only: true },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = ctx
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("particles2d"),
                entries: &[
                    wgpu::BindGroupLayoutEntry {
                        binding: 0,
                        visibility: wgpu::ShaderStages::VERTEX,
                        ty: wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Uniform,
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    },
                    storage(1),
                    storage(2),
                ],
            });
        let pl = ctx
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("particles2d"),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let module = ctx
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("particles2d"),
                source: wgpu::ShaderSource::Wgsl(PARTICLES2D_MODULE.compose("").into()),
            });
        let blend = wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING;
        let pipeline = |vs: &str, fs: &str, topology| {
            ctx.device
                .create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                    label: Some(vs),
                    layout: Some(&pl),
                    vertex: wgpu::VertexState {
                        module: &module,
                        entry_point: Some(vs),
                        compilation_options: Default::default(),
                        buffers: &[],
                    },
                    primitive: wgpu::PrimitiveState {
                        topology,
                        ..Default::default()
                    },
                    depth_stencil: None,
                    multisample: Default::default(),
                    fragment: Some(wgpu::FragmentState {
                        module: &module,
                        entry_point: Some(fs),
                        compilation_options: Default::default(),
                        targets: &[Some(wgpu::ColorTargetState {
                            format,
                            blend: Some(blend),
                            write_mask: wgpu::ColorWrites::ALL,
                        })],
                    }),
                    multiview_mask: None,
                    cache: None,
                })
        };
        let points = pipeline(
            "vs_point",
            "fs_point",
            wgpu::PrimitiveTopology::TriangleList,
        );
        let trails = pipeline("vs_trail", "fs_trail", wgpu::PrimitiveTopology::LineList);
        let uniform = || {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("view"),
                size: std::mem::size_of::<ViewUniform>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let uniforms = [uniform(), uniform()];
        Ok(GpuView {
            ctx,
            surface,
            size,
            points,
            trails,
            layout,
            uniforms,
            models: HashMap::new(),
            run: None,
        })
    }

    /// Starts a new run of `state` with the model file `bytes` (named `file`).
    pub fn start(
        &mut self,
        bytes: &[u8],
        file: &str,
        state: &State,
        particles: u32,
    ) -> Result<Prepared, AppError> {
        self.run = None;
        if let Some(why) = fault() {
            return Err(AppError::Gpu(why));
        }
        let (model, windows) = match self.models.get(file) {
            Some(m) => m.clone(),
            None => {
                // The f64 model too, once: the panels' windows come from its flow.
                let cpu = sim::cpu_model(bytes, file, state.flow)?;
                let windows = sim::panel_windows(&cpu, state.model)?;
                let m = Rc::new(GpuModel2d::from_bytes(&self.ctx, bytes, file)?);
                sim::check_flow(&m.arch, file, state.flow)?;
                self.models.insert(file.to_string(), (m.clone(), windows));
                (m, windows)
            }
        };
        let prep = sim::prepare(&model.arch, state, particles)?;
        let ctx = &self.ctx;
        let n = particles;
        let len = 2 * n as usize;
        let tmp_z = ctx.storage_zeroed("slot latents", len)?;
        let tmp_x = ctx.storage_zeroed("slot data", len)?;
        let logdet = ctx.storage_zeroed("log-det", n as usize)?;
        let start = match &prep.data_start {
            Some(x) => {
                let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let src = ctx.storage_f32("data start", &xf)?;
                let z0 = ctx.storage_zeroed("latent start", len)?;
                let mut enc = ctx.device.create_command_encoder(&Default::default());
                model.encode_flow(ctx, &mut enc, FlowDirection::Forward, &src, &z0, &logdet, n)?;
                ctx.queue.submit([enc.finish()]);
                Some(z0)
            }
            None => None,
        };
        let run = PlanRun::new(ctx, &model, prep.plan.clone(), n, start.as_ref())?;
        let slots = prep.plan.recorded();
        let traj_x = ctx.storage_zeroed("data trajectory", slots * len)?;
        let bind = |traj: &wgpu::Buffer, u: &wgpu::Buffer| {
            ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("particles2d"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: u.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: traj.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: run.trajectory().as_entire_binding(),
                    },
                ],
            })
        };
        let binds = [
            bind(&traj_x, &self.uniforms[0]),
            bind(run.trajectory(), &self.uniforms[1]),
        ];
        self.run = Some(Run {
            model,
            windows,
            records: prep.records(),
            prep: prep.clone(),
            run,
            traj_x,
            tmp_z,
            tmp_x,
            logdet,
            slots_done: 0,
            binds,
            batch: 2,
            timing: Timing::default(),
            reported: false,
        });
        Ok(prep)
    }

    /// Advances the run by about one frame's worth of GPU work. Returns the last
    /// state's statistics `(data, latent, start)` once, when the run has finished.
    pub async fn advance(&mut self) -> Result<Option<super::Finished>, AppError> {
        let Some(r) = self.run.as_mut() else {
            return Ok(None);
        };
        if let Some(why) = fault() {
            return Err(AppError::Gpu(why));
        }
        let ctx = &self.ctx;
        let n = r.run.particles();
        let bytes = 8 * n as u64;
        if !r.run.done() {
            let (before, _) = r.run.progress();
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            let k = r.run.encode(&mut enc, r.batch);
            for step in before..before + k {
                if !r.records[step] {
                    continue;
                }
                // Decode the newly recorded latent state into the data trajectory.
                let s = r.slots_done as u64;
                enc.copy_buffer_to_buffer(r.run.trajectory(), s * bytes, &r.tmp_z, 0, bytes);
                r.model.encode_flow(
                    ctx,
                    &mut enc,
                    FlowDirection::Inverse,
                    &r.tmp_z,
                    &r.tmp_x,
                    &r.logdet,
                    n,
                )?;
                enc.copy_buffer_to_buffer(&r.tmp_x, 0, &r.traj_x, s * bytes, bytes);
                r.slots_done += 1;
            }
            let t0 = super::dom::now_ms();
            ctx.queue.submit([enc.finish()]);
            let (tx, rx) = futures_channel::oneshot::channel();
            ctx.queue.on_submitted_work_done(move || {
                let _ = tx.send(());
            });
            let _ = rx.await;
            let dt = super::dom::now_ms() - t0;
            r.timing.add(k, dt);
            r.batch = next_batch(r.batch, dt);
            return Ok(None);
        }
        if r.reported || r.slots_done == 0 {
            return Ok(None);
        }
        r.reported = true;
        // The one readback of the run: its last state (and its first latent state).
        let last = (r.slots_done - 1) as u64;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&r.traj_x, last * bytes, &r.tmp_x, 0, bytes);
        enc.copy_buffer_to_buffer(r.run.trajectory(), last * bytes, &r.tmp_z, 0, bytes);
        ctx.queue.submit([enc.finish()]);
        let len = 2 * n as usize;
        let x = ctx.read_f32(&r.tmp_x, len).await?;
        let z = ctx.read_f32(&r.tmp_z, len).await?;
        let z0 = ctx.read_f32(r.run.trajectory(), len).await?;
        Ok(Some(super::Finished {
            data: sim::point_stats(&x),
            latent: sim::point_stats(&z),
            start: sim::point_stats(&z0),
            recorded: r.slots_done,
            timing: r.timing,
        }))
    }

    /// Progress of the current run: plan steps done and in all, states recorded.
    pub fn progress(&self) -> Option<(usize, usize, usize)> {
        self.run.as_ref().map(|r| {
            let (a, b) = r.run.progress();
            (a, b, r.slots_done)
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
        if fault().is_some() {
            return;
        }
        let Ok(tex) = (match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(t)
            | wgpu::CurrentSurfaceTexture::Suboptimal(t) => Ok(t),
            _ => Err(()),
        }) else {
            return;
        };
        let view = tex.texture.create_view(&Default::default());
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("particles"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &view,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color {
                            r: super::BG[0],
                            g: super::BG[1],
                            b: super::BG[2],
                            a: 1.0,
                        }),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            if let Some(r) = self.run.as_ref().filter(|r| r.slots_done > 0) {
                let n = r.run.particles();
                let last = r.slots_done - 1;
                let (slot, next, frac) = frame.slots(last);
                let stride = n.div_ceil(TRAILS).max(1);
                let (w, h) = (self.size.0 as f32 / 2.0, self.size.1 as f32);
                for (p, win) in r.windows.iter().enumerate() {
                    let (cx, cy, half) = (win.cx as f32, win.cy as f32, win.half as f32);
                    let u = ViewUniform {
                        xform: [cx, cy, 1.0 / half, 1.0 / half],
                        px: [2.0 / w, 2.0 / h, frame.point_px, 0.85],
                        idx: [n, slot as u32, next as u32, stride],
                        mixes: [frac, 0.22, 0.0, 0.0],
                    };
                    self.ctx
                        .queue
                        .write_buffer(&self.uniforms[p], 0, bytemuck::bytes_of(&u));
                    pass.set_viewport(p as f32 * w, 0.0, w, h, 0.0, 1.0);
                    pass.set_bind_group(0, &r.binds[p], &[]);
                    if frame.trails && slot > 0 {
                        pass.set_pipeline(&self.trails);
                        pass.draw(0..2 * slot as u32, 0..n / stride);
                    }
                    pass.set_pipeline(&self.points);
                    pass.draw(0..6, 0..n);
                }
            }
        }
        self.ctx.queue.submit([enc.finish()]);
        self.ctx.queue.present(tex);
    }
}

/// Plan steps for the next submission: aim at [`FRAME_BUDGET_MS`] of GPU time.
fn next_batch(batch: usize, dt_ms: f64) -> usize {
    if dt_ms <= 0.0 {
        return (batch * 2).min(256);
    }
    let want = (batch as f64 * FRAME_BUDGET_MS / dt_ms).round() as usize;
    want.clamp(1, (batch * 2).min(256))
}
