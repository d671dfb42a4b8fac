//! A trained 2D model on the GPU: weights in storage buffers, the flow kernels, and
//! sampler runs that execute a [`Plan`] with the fused kernels of `sample2d.wgsl`.

use std::rc::Rc;

use bytemuck::{Pod, Zeroable};

use super::context::{BindingKind, GpuContext, align_up};
use super::score2d::{BindingLimits, KernelOptions, PackedScore, ScoreLayout, WeightSpace};
use super::shaders::{FLOW2D_MODULE, SAMPLE2D_MODULE, header_u32};
use crate::arch::{Architecture, FlowArch};
use crate::error::{IndmError, Result};
use crate::params::ParamSet;
use crate::rng::Counter;
use crate::sample::SamplerConfig;
use crate::sample::plan::{self, NoiseKey, Op, Plan, Start};
use crate::weights::{TensorFile, model_from_file};

/// Largest score / flow hidden width the kernels accept (private arrays per invocation).
pub const MAX_HIDDEN: usize = 1024;
/// Largest number of time features (the `Step` uniform holds 36 network inputs).
pub const MAX_FEATS: usize = 32;
const NO_SLOT: u32 = u32::MAX;

/// The `Step` uniform of `sample2d.wgsl` (field order and layout must match).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct StepUniform {
    /// n, seed, noise_stream, noise_step, corr_stream, corr_step, record_slot,
    /// n_partials, predict, 3 x pad.
    u: [u32; 12],
    /// a, b, c, alpha, snr, kc, f0, k0, f1, k1, h, scale.
    f: [f32; 12],
    feats0: [[f32; 4]; 9],
    feats1: [[f32; 4]; 9],
}

/// The `FlowParams` uniform of `flow2d.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct FlowUniform {
    n: u32,
    pad: [u32; 3],
}

/// Direction of the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowDirection {
    /// `z = h(x)` with the log-determinant.
    Forward,
    /// `x = h^{-1}(z)`.
    Inverse,
}

/// A 2D model's weights and pipelines on one device.
pub struct GpuModel2d {
    /// The architecture (from the weights file's metadata).
    pub arch: Architecture,
    /// How the score net's kernels are laid out on this device.
    pub layout: ScoreLayout,
    /// The `SmallWeights` buffer, then one buffer per hidden layer.
    score_w: Vec<wgpu::Buffer>,
    flow_w: wgpu::Buffer,
    sample_header: String,
    flow_header: String,
    sample_layout: wgpu::BindGroupLayout,
    sample_pipeline_layout: wgpu::PipelineLayout,
    flow_layout: wgpu::BindGroupLayout,
    flow_pipeline_layout: wgpu::PipelineLayout,
}

impl std::fmt::Debug for GpuModel2d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuModel2d")
            .field("arch", &self.arch)
            .finish()
    }
}

fn pack(params: &ParamSet, arch: &Architecture, prefix: &str) -> Vec<f32> {
    arch.param_specs()
        .iter()
        .filter(|s| s.name.starts_with(prefix))
        .flat_map(|s| {
            params
                .get(&s.name)
                .expect("checked against the architecture")
                .data
                .iter()
                .copied()
        })
        .collect()
}

impl GpuModel2d {
    /// Loads a model from the bytes of a weights file (safetensors with the
    /// architecture in its metadata). Shape errors name the tensor and both shapes.
    pub fn from_bytes(ctx: &GpuContext, bytes: &[u8], origin: &str) -> Result<Self> {
        let file = TensorFile::from_bytes(bytes, origin)?;
        let (arch, params) = model_from_file(&file, origin)?;
        Self::new(ctx, &arch, &params)
    }

    /// Uploads a model with the kernel choices that suit the adapter. Checks the
    /// parameters against the architecture and the architecture against what the kernels
    /// and the adapter support, before creating anything.
    pub fn new(ctx: &GpuContext, arch: &Architecture, params: &ParamSet) -> Result<Self> {
        Self::with_options(ctx, arch, params, &KernelOptions::default())
    }

    /// [`GpuModel2d::new`] with explicit kernel choices (particles per invocation,
    /// weight buffers), for tests and benchmarks.
    pub fn with_options(
        ctx: &GpuContext,
        arch: &Architecture,
        params: &ParamSet,
        opts: &KernelOptions,
    ) -> Result<Self> {
        arch.validate()?;
        params.check_against(arch)?;
        if arch.data_dim != 2 {
            return Err(IndmError::invalid(
                "data dimension",
                arch.data_dim,
                "2 for the 2D kernels",
            ));
        }
        let feats = arch.score.time_features();
        if feats > MAX_FEATS {
            return Err(IndmError::invalid(
                "time features",
                feats,
                format!("at most {MAX_FEATS} (fourier <= 15) for the GPU kernels"),
            ));
        }
        let (flow_layers, flow_hidden) = match arch.flow {
            FlowArch::Identity => (0, 1),
            FlowArch::Coupling2d { layers, hidden } => (layers, hidden),
        };
        for (what, h) in [
            ("score hidden width", arch.score.hidden),
            ("flow hidden width", flow_hidden),
        ] {
            if h == 0 || h > MAX_HIDDEN {
                return Err(IndmError::invalid(
                    what,
                    h,
                    format!("1..={MAX_HIDDEN} for the GPU kernels"),
                ));
            }
        }
        let layout = ScoreLayout::new(
            arch,
            opts,
            ctx.info.device_type == wgpu::DeviceType::Cpu,
            &BindingLimits::of(&ctx.limits),
        )?;
        let packed = PackedScore::new(arch, params, &layout)?;
        let upload = |label: &str, data: &[f32], space: WeightSpace| match space {
            WeightSpace::Uniform => Ok(ctx.uniform_bytes(label, bytemuck::cast_slice(data))),
            WeightSpace::Storage => ctx.storage_f32(label, data),
        };
        let mut score_w = vec![upload(
            "score weights (small)",
            &packed.small,
            layout.small,
        )?];
        for (l, w) in packed.hidden.iter().enumerate() {
            score_w.push(upload(&format!("score layer {}", l + 1), w, layout.hidden)?);
        }
        let flow_w = ctx.storage_f32("flow weights", &pack(params, arch, "flow."))?;
        let sample_header = layout.header();
        let flow_header = header_u32(&[
            ("FLOW_LAYERS", flow_layers as u32),
            ("FLOW_HIDDEN", flow_hidden as u32),
        ]);
        use BindingKind::*;
        let kind = |space: WeightSpace| match space {
            WeightSpace::Uniform => Uniform,
            WeightSpace::Storage => ReadOnly,
        };
        let mut kinds = vec![
            DynamicUniform,
            kind(layout.small),
            ReadWrite,
            ReadWrite,
            ReadWrite,
            ReadWrite,
        ];
        kinds.extend(std::iter::repeat_n(
            kind(layout.hidden),
            packed.hidden.len(),
        ));
        let sample_layout = ctx.layout("sample2d", &kinds);
        let flow_layout = ctx.layout(
            "flow2d",
            &[Uniform, ReadOnly, ReadOnly, ReadWrite, ReadWrite],
        );
        let model = GpuModel2d {
            arch: arch.clone(),
            layout,
            score_w,
            flow_w,
            sample_pipeline_layout: ctx.pipeline_layout(&sample_layout),
            flow_pipeline_layout: ctx.pipeline_layout(&flow_layout),
            sample_header,
            flow_header,
            sample_layout,
            flow_layout,
        };
        // Compile every pipeline now, so a shader problem shows at load time.
        for e in ["linear_step", "heun_step", "pc_score", "pc_correct"] {
            model.sample_pipeline(ctx, e)?;
        }
        for e in ["flow_forward", "flow_inverse"] {
            model.flow_pipeline(ctx, e)?;
        }
        Ok(model)
    }

    fn sample_pipeline(&self, ctx: &GpuContext, entry: &str) -> Result<Rc<wgpu::ComputePipeline>> {
        let src = SAMPLE2D_MODULE.compose(&self.sample_header);
        ctx.pipeline(
            &format!("sample2d[{}]", self.sample_header.replace('\n', " ")),
            &src,
            entry,
            &self.sample_pipeline_layout,
        )
    }

    fn flow_pipeline(&self, ctx: &GpuContext, entry: &str) -> Result<Rc<wgpu::ComputePipeline>> {
        let src = FLOW2D_MODULE.compose(&self.flow_header);
        ctx.pipeline(
            &format!("flow2d[{}]", self.flow_header.replace('\n', " ")),
            &src,
            entry,
            &self.flow_pipeline_layout,
        )
    }

    /// Records the flow over `n` points of `src` into `dst` (and `logdet` when forward).
    /// Buffers hold `2 n` (`dst`, `src`) and `n` (`logdet`) values.
    // The arguments are the dispatch's bindings, one each; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_flow(
        &self,
        ctx: &GpuContext,
        enc: &mut wgpu::CommandEncoder,
        dir: FlowDirection,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        logdet: &wgpu::Buffer,
        n: u32,
    ) -> Result<()> {
        let need = 8 * n as u64;
        if src.size() < need || dst.size() < need || logdet.size() < 4 * n as u64 {
            return Err(IndmError::invalid(
                "flow buffers",
                format!("{} / {} / {} bytes", src.size(), dst.size(), logdet.size()),
                format!("at least {need} / {need} / {} bytes for {n} points", 4 * n),
            ));
        }
        let grid = ctx.grid("flow", n)?;
        let entry = match dir {
            FlowDirection::Forward => "flow_forward",
            FlowDirection::Inverse => "flow_inverse",
        };
        let pipeline = self.flow_pipeline(ctx, entry)?;
        let u = ctx.uniform_bytes(
            "flow params",
            bytemuck::bytes_of(&FlowUniform { n, pad: [0; 3] }),
        );
        let bg = ctx.bind_group(
            &self.flow_layout,
            &[
                (&u, None),
                (&self.flow_w, None),
                (src, None),
                (dst, None),
                (logdet, None),
            ],
        );
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(grid.0, grid.1, 1);
        Ok(())
    }

    /// `z = h(x)` and the log-determinants of `x` (`2 n` values), read back.
    pub async fn flow_forward(&self, ctx: &GpuContext, x: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let n = points(x)?;
        let src = ctx.storage_f32("flow input", x)?;
        let dst = ctx.storage_zeroed("flow output", 2 * n as usize)?;
        let ld = ctx.storage_zeroed("log-det", n as usize)?;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        self.encode_flow(ctx, &mut enc, FlowDirection::Forward, &src, &dst, &ld, n)?;
        ctx.queue.submit([enc.finish()]);
        Ok((
            ctx.read_f32(&dst, 2 * n as usize).await?,
            ctx.read_f32(&ld, n as usize).await?,
        ))
    }

    /// `x = h^{-1}(z)` of `z` (`2 n` values), read back.
    pub async fn flow_inverse(&self, ctx: &GpuContext, z: &[f32]) -> Result<Vec<f32>> {
        let n = points(z)?;
        let src = ctx.storage_f32("flow input", z)?;
        let dst = ctx.storage_zeroed("flow output", 2 * n as usize)?;
        let ld = ctx.storage_zeroed("log-det", n as usize)?;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        self.encode_flow(ctx, &mut enc, FlowDirection::Inverse, &src, &dst, &ld, n)?;
        ctx.queue.submit([enc.finish()]);
        ctx.read_f32(&dst, 2 * n as usize).await
    }

    /// Samples `n` points: prior, the reverse process in the latent, `h^{-1}`.
    /// Returns `(x, z)`, each `2 n` values.
    pub async fn sample(
        &self,
        ctx: &GpuContext,
        n: u32,
        cfg: &SamplerConfig,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let plan = plan::reverse(&self.arch, cfg, Start::Prior)?;
        let mut run = PlanRun::new(ctx, self, plan, n, None)?;
        run.run_to_end(ctx)?;
        let x = run.decode(ctx, self)?;
        Ok((
            ctx.read_f32(&x, 2 * n as usize).await?,
            ctx.read_f32(run.z(), 2 * n as usize).await?,
        ))
    }
}

fn points(v: &[f32]) -> Result<u32> {
    if !v.len().is_multiple_of(2) || v.is_empty() {
        return Err(IndmError::invalid(
            "point buffer",
            format!("{} values", v.len()),
            "a non-empty, even number of values (x, y pairs)",
        ));
    }
    u32::try_from(v.len() / 2).map_err(|_| IndmError::invalid("points", v.len() / 2, "below 2^32"))
}

/// One dispatch of a plan on the GPU.
#[derive(Clone, Debug)]
enum Dispatch {
    Kernel { entry: &'static str, slot: u32 },
    Copy { record_slot: u32 },
}

/// A plan bound to particles on the GPU, run step by step (for animation) or to the end.
pub struct PlanRun {
    n: u32,
    grid: (u32, u32),
    /// Dispatches grouped by plan step.
    steps: Vec<Vec<Dispatch>>,
    next: usize,
    stride: u64,
    uniforms: wgpu::Buffer,
    z: wgpu::Buffer,
    traj: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    recorded_times: Vec<f64>,
    pipelines: Vec<(&'static str, Rc<wgpu::ComputePipeline>)>,
}

impl PlanRun {
    /// Binds `plan` to `n` particles of `model`. `start` holds `2 n` initial latents
    /// (a GPU buffer, e.g. a flow's output); `None` starts from zeros (for plans that
    /// draw their own prior). Limits are checked before anything is dispatched.
    pub fn new(
        ctx: &GpuContext,
        model: &GpuModel2d,
        plan: Plan,
        n: u32,
        start: Option<&wgpu::Buffer>,
    ) -> Result<Self> {
        if n == 0 {
            return Err(IndmError::invalid("particles", 0, "at least 1"));
        }
        let grid = ctx.grid("particles", n.div_ceil(model.layout.pp))?;
        let len = 2 * n as usize;
        let slots = plan.recorded();
        ctx.check_storage("particle buffer", 8 * n as u64)?;
        let traj_len = (slots as u64) * 2 * n as u64;
        ctx.check_storage("trajectory buffer", traj_len * 4)?;
        let seed = plan.seed32();
        let arch = &model.arch;
        let feats = |t: f64| -> [[f32; 4]; 9] {
            let mut out = [[0.0f32; 4]; 9];
            for (k, v) in arch.time_features(t).into_iter().enumerate() {
                out[k / 4][k % 4] = v as f32;
            }
            out
        };
        let key = |k: &NoiseKey| Counter::new(plan.seed, k.stream, k.step).key();
        let n_partials = grid.0 * grid.1;
        let mut uniforms: Vec<StepUniform> = Vec::new();
        let mut steps = Vec::new();
        let mut slot = 0u32;
        for step in &plan.steps {
            let record = if step.record {
                slot += 1;
                slot - 1
            } else {
                NO_SLOT
            };
            let mut ds = Vec::new();
            for (j, op) in step.ops.iter().enumerate() {
                let mut u = StepUniform::zeroed();
                u.u[0] = n;
                u.u[1] = seed;
                u.u[6] = if j + 1 == step.ops.len() {
                    record
                } else {
                    NO_SLOT
                };
                u.u[7] = n_partials;
                let linear = |u: &mut StepUniform, op: &Op| {
                    if let Op::Linear { t, a, b, c, noise } = op {
                        u.f[0] = *a as f32;
                        u.f[1] = *b as f32;
                        u.f[2] = *c as f32;
                        u.feats0 = feats(*t);
                        if let Some(k) = noise {
                            let [_, stream, step] = key(k);
                            u.u[2] = stream;
                            u.u[3] = step;
                        }
                    }
                };
                let entries: &[&'static str] = match op {
                    Op::Linear { .. } => {
                        linear(&mut u, op);
                        &["linear_step"]
                    }
                    Op::Heun {
                        t0,
                        t1,
                        f0,
                        k0,
                        f1,
                        k1,
                        h,
                        scale,
                    } => {
                        u.f[6..12].copy_from_slice(&[
                            *f0 as f32,
                            *k0 as f32,
                            *f1 as f32,
                            *k1 as f32,
                            *h as f32,
                            *scale as f32,
                        ]);
                        u.feats0 = feats(*t0);
                        u.feats1 = feats(*t1);
                        &["heun_step"]
                    }
                    Op::Correct {
                        t,
                        kc,
                        alpha,
                        snr,
                        noise,
                        predict,
                    } => {
                        if let Some(p) = predict {
                            linear(&mut u, p);
                            u.u[8] = 1;
                        }
                        let [_, stream, step] = key(noise);
                        u.u[4] = stream;
                        u.u[5] = step;
                        u.f[3] = *alpha as f32;
                        u.f[4] = *snr as f32;
                        u.f[5] = *kc as f32;
                        // The corrector's network runs at t with feats0 (the predictor's
                        // time is the same t).
                        u.feats0 = feats(*t);
                        &["pc_score", "pc_correct"]
                    }
                };
                for e in entries {
                    ds.push(Dispatch::Kernel {
                        entry: e,
                        slot: uniforms.len() as u32,
                    });
                }
                uniforms.push(u);
            }
            if step.ops.is_empty() && record != NO_SLOT {
                ds.push(Dispatch::Copy {
                    record_slot: record,
                });
            }
            steps.push(ds);
        }
        let align = ctx.limits.min_uniform_buffer_offset_alignment.max(16) as u64;
        let size = std::mem::size_of::<StepUniform>() as u64;
        let stride = align_up(size, align);
        let total = stride * uniforms.len().max(1) as u64;
        if total > ctx.limits.max_buffer_size {
            return Err(IndmError::GpuLimit {
                what: "step uniforms (bytes)".into(),
                requested: total,
                limit: ctx.limits.max_buffer_size,
            });
        }
        let mut bytes = vec![0u8; total as usize];
        for (i, u) in uniforms.iter().enumerate() {
            let o = i * stride as usize;
            bytes[o..o + size as usize].copy_from_slice(bytemuck::bytes_of(u));
        }
        let uniforms_buf = ctx.uniform_bytes("step uniforms", &bytes);
        let z = ctx.storage_zeroed("particles", len)?;
        if let Some(s) = start {
            if s.size() < 8 * n as u64 {
                return Err(IndmError::invalid(
                    "start buffer",
                    format!("{} bytes", s.size()),
                    format!("at least {} bytes for {n} particles", 8 * n),
                ));
            }
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(s, 0, &z, 0, 8 * n as u64);
            ctx.queue.submit([enc.finish()]);
        }
        let aux = ctx.storage_zeroed("scores", len)?;
        let partials = ctx.storage_zeroed("partial norms", 2 * n_partials as usize)?;
        let traj = ctx.storage_zeroed("trajectory", traj_len as usize)?;
        let mut bindings = vec![
            (&uniforms_buf, Some(size)),
            (&model.score_w[0], None),
            (&z, None),
            (&aux, None),
            (&partials, None),
            (&traj, None),
        ];
        bindings.extend(model.score_w[1..].iter().map(|b| (b, None)));
        let bind_group = ctx.bind_group(&model.sample_layout, &bindings);
        let mut pipelines = Vec::new();
        for e in ["linear_step", "heun_step", "pc_score", "pc_correct"] {
            pipelines.push((e, model.sample_pipeline(ctx, e)?));
        }
        Ok(PlanRun {
            n,
            grid,
            steps,
            next: 0,
            stride,
            uniforms: uniforms_buf,
            z,
            traj,
            bind_group,
            recorded_times: plan.recorded_times(),
            pipelines,
        })
    }

    /// Number of particles.
    pub fn particles(&self) -> u32 {
        self.n
    }

    /// Plan steps in all, and done so far.
    pub fn progress(&self) -> (usize, usize) {
        (self.next, self.steps.len())
    }

    /// Whether every step has been recorded.
    pub fn done(&self) -> bool {
        self.next >= self.steps.len()
    }

    /// The particles' current latents (`2 n` values).
    pub fn z(&self) -> &wgpu::Buffer {
        &self.z
    }

    /// The recorded latents, slot after slot (`slots * 2 n` values).
    pub fn trajectory(&self) -> &wgpu::Buffer {
        &self.traj
    }

    /// Times of the trajectory slots.
    pub fn recorded_times(&self) -> &[f64] {
        &self.recorded_times
    }

    /// Records up to `max_steps` further plan steps into `enc`; returns how many.
    pub fn encode(&mut self, enc: &mut wgpu::CommandEncoder, max_steps: usize) -> usize {
        let end = self.next.saturating_add(max_steps).min(self.steps.len());
        let count = end - self.next;
        let bytes = 8 * self.n as u64;
        let mut dispatches = self.steps[self.next..end].iter().flatten().peekable();
        while dispatches.peek().is_some() {
            // Kernels up to the next copy share one compute pass; a copy must see the
            // dispatches before it, so it goes between passes.
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                while let Some(Dispatch::Kernel { entry, slot }) = dispatches.peek() {
                    let p = &self
                        .pipelines
                        .iter()
                        .find(|(e, _)| e == entry)
                        .expect("all pipelines compiled")
                        .1;
                    pass.set_pipeline(p);
                    pass.set_bind_group(
                        0,
                        &self.bind_group,
                        &[(*slot as u64 * self.stride) as u32],
                    );
                    pass.dispatch_workgroups(self.grid.0, self.grid.1, 1);
                    dispatches.next();
                }
            }
            while let Some(Dispatch::Copy { record_slot }) = dispatches.peek() {
                enc.copy_buffer_to_buffer(
                    &self.z,
                    0,
                    &self.traj,
                    *record_slot as u64 * bytes,
                    bytes,
                );
                dispatches.next();
            }
        }
        self.next = end;
        count
    }

    /// Runs every remaining step (one submission).
    pub fn run_to_end(&mut self, ctx: &GpuContext) -> Result<()> {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        self.encode(&mut enc, usize::MAX);
        ctx.queue.submit([enc.finish()]);
        Ok(())
    }

    /// `h^{-1}` of the current latents into a new buffer of `2 n` values.
    pub fn decode(&self, ctx: &GpuContext, model: &GpuModel2d) -> Result<wgpu::Buffer> {
        let x = ctx.storage_zeroed("decoded", 2 * self.n as usize)?;
        let ld = ctx.storage_zeroed("log-det", self.n as usize)?;
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        model.encode_flow(
            ctx,
            &mut enc,
            FlowDirection::Inverse,
            &self.z,
            &x,
            &ld,
            self.n,
        )?;
        ctx.queue.submit([enc.finish()]);
        Ok(x)
    }

    /// `h^{-1}` of every recorded latent (the data-space trajectory), slot after slot.
    pub fn decode_trajectory(&self, ctx: &GpuContext, model: &GpuModel2d) -> Result<wgpu::Buffer> {
        let total = self.recorded_times.len() as u32 * self.n;
        let x = ctx.storage_zeroed("decoded trajectory", 2 * total as usize)?;
        let ld = ctx.storage_zeroed("log-det", total as usize)?;
        if total > 0 {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            model.encode_flow(
                ctx,
                &mut enc,
                FlowDirection::Inverse,
                &self.traj,
                &x,
                &ld,
                total,
            )?;
            ctx.queue.submit([enc.finish()]);
        }
        Ok(x)
    }

    /// The step uniforms buffer (for tools that inspect a run).
    pub fn uniforms(&self) -> &wgpu::Buffer {
        &self.uniforms
    }
}
