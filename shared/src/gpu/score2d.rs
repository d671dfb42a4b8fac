//! The 2D score MLP as `sample2d.wgsl` reads it: weights packed into 4x4 blocks, where
//! they live (uniform or storage buffers), how many particles one invocation handles, and
//! the generated WGSL header that declares all of this.

use super::shaders::SCORE2D_LAYER;
use crate::arch::Architecture;
use crate::error::{IndmError, Result};
use crate::params::ParamSet;

/// Most particles one invocation may handle (the kernels keep `PP x hidden` activations
/// per invocation).
pub const MAX_PARTICLES_PER_INVOCATION: u32 = 16;

/// Particles per invocation on CPU adapters (lavapipe, SwiftShader, WARP): each weight
/// block loaded serves this many particles. Measured on lavapipe (BENCHMARKS.md): 4 runs
/// a whole sampler 1.5x faster than 1 (2 is as fast at 10 000 particles) and compiles in
/// about a second; 8, written as loops, is no faster and compiles for over a minute.
pub const CPU_PARTICLES_PER_INVOCATION: u32 = 4;

/// Where a group of weights lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightSpace {
    /// A uniform buffer: all invocations read the same weight at the same time, which
    /// uniform memory broadcasts (GPUs' constant caches; lavapipe's uniform loads).
    Uniform,
    /// A read-only storage buffer (for weights beyond the uniform binding limit).
    Storage,
}

/// Where the weights go: the fastest that fits, or storage buffers throughout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightPlacement {
    /// Uniform buffers where a group fits the adapter's uniform limits, storage otherwise.
    #[default]
    Auto,
    /// Storage buffers for every group.
    Storage,
}

/// Kernel choices for a 2D model; the defaults suit the adapter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOptions {
    /// Particles per invocation; `None`: [`CPU_PARTICLES_PER_INVOCATION`] on CPU
    /// adapters, 1 on GPUs.
    pub particles_per_invocation: Option<u32>,
    /// Weight buffers.
    pub weights: WeightPlacement,
}

/// The score MLP's sizes in blocks of four, and the resolved kernel choices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScoreLayout {
    /// Hidden width / 4, rounded up.
    pub q: u32,
    /// Network inputs (2 + time features) / 4, rounded up.
    pub in_q: u32,
    /// Dense layers before the output layer (the architecture's `depth`).
    pub depth: u32,
    /// Particles per invocation.
    pub pp: u32,
    /// Where the first layer, the biases and the output layer live.
    pub small: WeightSpace,
    /// Where each hidden-to-hidden layer lives.
    pub hidden: WeightSpace,
}

/// Packed weights: the `SmallWeights` struct and one block array per hidden layer.
#[derive(Clone, Debug)]
pub struct PackedScore {
    /// `l0` blocks, biases, output rows, output bias (`sample2d.wgsl`'s `SmallWeights`).
    pub small: Vec<f32>,
    /// Blocks of layers 1 .. depth - 1.
    pub hidden: Vec<Vec<f32>>,
}

/// Adapter limits that decide the layout.
#[derive(Clone, Copy, Debug)]
pub struct BindingLimits {
    /// Largest uniform binding (bytes).
    pub max_uniform_binding: u64,
    /// Uniform buffers per shader stage.
    pub max_uniform_buffers: u32,
    /// Storage buffers per shader stage.
    pub max_storage_buffers: u32,
}

impl BindingLimits {
    /// The limits of a device.
    pub fn of(limits: &wgpu::Limits) -> Self {
        BindingLimits {
            max_uniform_binding: limits.max_uniform_buffer_binding_size,
            max_uniform_buffers: limits.max_uniform_buffers_per_shader_stage,
            max_storage_buffers: limits.max_storage_buffers_per_shader_stage,
        }
    }
}

/// Storage buffers the sampler binds besides weights (z, aux, partials, trajectory).
const SAMPLER_STORAGE_BUFFERS: u32 = 4;
/// Uniform buffers the sampler binds besides weights (the step coefficients).
const SAMPLER_UNIFORM_BUFFERS: u32 = 1;

impl ScoreLayout {
    /// Resolves the layout of `arch`'s score net for an adapter, or a typed error when
    /// its weights cannot be bound there.
    pub fn new(
        arch: &Architecture,
        opts: &KernelOptions,
        cpu_adapter: bool,
        limits: &BindingLimits,
    ) -> Result<Self> {
        let pp = opts.particles_per_invocation.unwrap_or(if cpu_adapter {
            CPU_PARTICLES_PER_INVOCATION
        } else {
            1
        });
        if pp == 0 || pp > MAX_PARTICLES_PER_INVOCATION {
            return Err(IndmError::invalid(
                "particles per invocation",
                pp,
                format!("1..={MAX_PARTICLES_PER_INVOCATION}"),
            ));
        }
        let q = arch.score.hidden.div_ceil(4) as u32;
        let in_q = (arch.data_dim + arch.score.time_features()).div_ceil(4) as u32;
        let depth = arch.score.depth as u32;
        let mut layout = ScoreLayout {
            q,
            in_q,
            depth,
            pp,
            small: WeightSpace::Storage,
            hidden: WeightSpace::Storage,
        };
        let hidden_layers = depth - 1;
        let (small_bytes, hidden_bytes) = (
            layout.small_len() as u64 * 4,
            layout.hidden_len() as u64 * 4,
        );
        let mut uniforms = SAMPLER_UNIFORM_BUFFERS;
        if opts.weights == WeightPlacement::Auto {
            if small_bytes <= limits.max_uniform_binding && uniforms < limits.max_uniform_buffers {
                layout.small = WeightSpace::Uniform;
                uniforms += 1;
            }
            if hidden_layers > 0
                && hidden_bytes <= limits.max_uniform_binding
                && uniforms + hidden_layers <= limits.max_uniform_buffers
            {
                layout.hidden = WeightSpace::Uniform;
            }
        }
        // (A storage group's size is checked where it is uploaded, by
        // `GpuContext::storage_f32`, against the adapter's storage binding limit.)
        let storage = SAMPLER_STORAGE_BUFFERS
            + [(layout.small, 1), (layout.hidden, hidden_layers)]
                .iter()
                .filter(|(space, _)| *space == WeightSpace::Storage)
                .map(|(_, count)| count)
                .sum::<u32>();
        if storage > limits.max_storage_buffers {
            return Err(IndmError::GpuLimit {
                what: "storage buffers per shader stage (score layers)".into(),
                requested: storage as u64,
                limit: limits.max_storage_buffers as u64,
            });
        }
        Ok(layout)
    }

    /// Floats of the `SmallWeights` struct.
    pub fn small_len(&self) -> usize {
        let (q, in_q, depth) = (self.q as usize, self.in_q as usize, self.depth as usize);
        16 * in_q * q + 4 * depth * q + 8 * q + 4
    }

    /// Floats of one hidden layer's blocks.
    pub fn hidden_len(&self) -> usize {
        16 * (self.q * self.q) as usize
    }

    /// The generated WGSL header of `sample2d.wgsl` for this layout.
    pub fn header(&self) -> String {
        let space = |s: WeightSpace| match s {
            WeightSpace::Uniform => "uniform",
            WeightSpace::Storage => "storage, read",
        };
        let mut h = format!(
            "const Q: u32 = {q}u;\nconst IN_Q: u32 = {in_q}u;\nconst DEPTH: u32 = {depth}u;\n\
             const PP: u32 = {pp}u;\nconst L0_BLOCKS: u32 = {l0}u;\nconst BIAS_ROWS: u32 = {bias}u;\n\
             const HIDDEN_BLOCKS: u32 = {hb}u;\n\
             @group(0) @binding(1) var<{small}> sm: SmallWeights;\n",
            q = self.q,
            in_q = self.in_q,
            depth = self.depth,
            pp = self.pp,
            l0 = self.in_q * self.q,
            bias = self.depth * self.q,
            hb = self.q * self.q,
            small = space(self.small),
        );
        for l in 1..self.depth {
            h.push_str(&format!(
                "@group(0) @binding({}) var<{}> layer_weights_{l}: array<mat4x4<f32>, HIDDEN_BLOCKS>;\n",
                HIDDEN_BINDING0 + l - 1,
                space(self.hidden),
            ));
        }
        h.push_str("fn hidden_layers(input: Acts) -> Acts {\n    var a = input;\n");
        for l in 1..self.depth {
            h.push_str(&format!("    a = hidden_layer_{l}(a);\n"));
        }
        h.push_str("    return a;\n}\n");
        for l in 1..self.depth {
            h.push_str(&instantiate_layer(l));
        }
        h
    }
}

/// Binding of the first hidden layer's weights (the others follow).
pub const HIDDEN_BINDING0: u32 = 6;

/// `score2d_layer.wgsl` for hidden layer `l`.
fn instantiate_layer(l: u32) -> String {
    SCORE2D_LAYER
        .source
        .replace("hidden_layer_L", &format!("hidden_layer_{l}"))
        .replace("layer_weights_L", &format!("layer_weights_{l}"))
        .replace("LAYER_L", &format!("{l}u"))
}

/// `w` (row-major `[d_in, d_out]`) as 4x4 blocks, block `(iq, jq)` at `iq * q_out + jq`,
/// column `c`, row `r` holding `w[4 iq + c][4 jq + r]` (zero beyond the matrix).
fn blocks(w: &[f32], d_in: usize, d_out: usize, q_in: usize, q_out: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; 16 * q_in * q_out];
    for i in 0..d_in {
        for j in 0..d_out {
            let (iq, c, jq, r) = (i / 4, i % 4, j / 4, j % 4);
            out[16 * (iq * q_out + jq) + 4 * c + r] = w[i * d_out + j];
        }
    }
    out
}

fn tensor<'a>(params: &'a ParamSet, name: &str) -> Result<&'a [f32]> {
    params
        .get(name)
        .map(|p| p.data.as_slice())
        .ok_or_else(|| IndmError::MissingTensor(name.to_string()))
}

impl PackedScore {
    /// Packs `params` (already checked against `arch`) for `layout`.
    pub fn new(arch: &Architecture, params: &ParamSet, layout: &ScoreLayout) -> Result<Self> {
        let (q, in_q) = (layout.q as usize, layout.in_q as usize);
        let h = arch.score.hidden;
        let depth = arch.score.depth;
        let d_in = arch.data_dim + arch.score.time_features();
        let out_dim = arch.data_dim;
        let mut small = blocks(tensor(params, "score.l0.weight")?, d_in, h, in_q, q);
        for l in 0..depth {
            let b = tensor(params, &format!("score.l{l}.bias"))?;
            let mut row = vec![0.0f32; 4 * q];
            row[..h].copy_from_slice(b);
            small.extend(row);
        }
        let wo = tensor(params, &format!("score.l{depth}.weight"))?;
        for iq in 0..q {
            for o in 0..2 {
                for r in 0..4 {
                    let i = 4 * iq + r;
                    small.push(if i < h && o < out_dim {
                        wo[i * out_dim + o]
                    } else {
                        0.0
                    });
                }
            }
        }
        let bo = tensor(params, &format!("score.l{depth}.bias"))?;
        small.extend([bo[0], bo[1], 0.0, 0.0]);
        debug_assert_eq!(small.len(), layout.small_len());
        let hidden = (1..depth)
            .map(|l| {
                let w = tensor(params, &format!("score.l{l}.weight"))?;
                Ok(blocks(w, h, h, q, q))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PackedScore { small, hidden })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::FlowArch;
    use crate::gpu::shaders::{COMMON, RNG, SAMPLE2D};
    use crate::sde::SdeKind;
    use naga::valid::{Capabilities, ValidationFlags, Validator};

    fn limits(ubo: u64) -> BindingLimits {
        BindingLimits {
            max_uniform_binding: ubo,
            max_uniform_buffers: 12,
            max_storage_buffers: 8,
        }
    }

    fn arch(hidden: usize, depth: usize) -> Architecture {
        let mut a = Architecture::default_2d(SdeKind::Vp, FlowArch::Identity);
        a.score.hidden = hidden;
        a.score.depth = depth;
        a
    }

    fn source(layout: &ScoreLayout) -> String {
        let mut s = layout.header();
        for f in [COMMON, RNG, SAMPLE2D] {
            s.push_str(f.source);
        }
        s
    }

    /// The generated kernels validate for every layout the loader can choose.
    #[test]
    fn generated_kernels_validate_with_naga() {
        for (hidden, depth) in [(5, 1), (32, 2), (128, 3), (130, 4)] {
            for pp in [1, 3, 4] {
                for placement in [WeightPlacement::Auto, WeightPlacement::Storage] {
                    let opts = KernelOptions {
                        particles_per_invocation: Some(pp),
                        weights: placement,
                    };
                    let layout =
                        ScoreLayout::new(&arch(hidden, depth), &opts, false, &limits(65536))
                            .unwrap();
                    let src = source(&layout);
                    let module = naga::front::wgsl::parse_str(&src)
                        .unwrap_or_else(|e| panic!("{layout:?}: {}", e.emit_to_string(&src)));
                    Validator::new(ValidationFlags::all(), Capabilities::default())
                        .validate(&module)
                        .unwrap_or_else(|e| panic!("{layout:?}: {}", e.emit_to_string(&src)));
                }
            }
        }
    }

    /// 128 wide fits 64 KiB uniform bindings; 130 wide (33 blocks a side) does not.
    #[test]
    fn placement_follows_the_uniform_limit() {
        let auto = KernelOptions::default();
        let l = ScoreLayout::new(&arch(128, 3), &auto, false, &limits(65536)).unwrap();
        assert_eq!(
            (l.small, l.hidden, l.pp),
            (WeightSpace::Uniform, WeightSpace::Uniform, 1)
        );
        let l = ScoreLayout::new(&arch(130, 3), &auto, true, &limits(65536)).unwrap();
        assert_eq!(
            (l.hidden, l.pp),
            (WeightSpace::Storage, CPU_PARTICLES_PER_INVOCATION)
        );
        let forced = KernelOptions {
            weights: WeightPlacement::Storage,
            ..auto
        };
        let l = ScoreLayout::new(&arch(128, 3), &forced, false, &limits(65536)).unwrap();
        assert_eq!(
            (l.small, l.hidden),
            (WeightSpace::Storage, WeightSpace::Storage)
        );
    }

    /// Too many storage layers, or none of the particles per invocation, are typed errors.
    #[test]
    fn impossible_layouts_are_refused() {
        let e = ScoreLayout::new(
            &arch(256, 8),
            &KernelOptions::default(),
            false,
            &limits(65536),
        );
        assert!(matches!(e, Err(IndmError::GpuLimit { .. })), "{e:?}");
        let zero = KernelOptions {
            particles_per_invocation: Some(0),
            ..Default::default()
        };
        assert!(ScoreLayout::new(&arch(32, 2), &zero, false, &limits(65536)).is_err());
    }

    /// Block packing puts every weight where the kernel reads it.
    #[test]
    fn blocks_are_column_major_four_by_four() {
        let (d_in, d_out) = (5, 6);
        let w: Vec<f32> = (0..d_in * d_out).map(|v| v as f32 + 1.0).collect();
        let b = blocks(&w, d_in, d_out, 2, 2);
        for i in 0..8 {
            for j in 0..8 {
                let got = b[16 * ((i / 4) * 2 + j / 4) + 4 * (i % 4) + j % 4];
                let want = if i < d_in && j < d_out {
                    w[i * d_out + j]
                } else {
                    0.0
                };
                assert_eq!(got, want, "({i}, {j})");
            }
        }
    }
}
