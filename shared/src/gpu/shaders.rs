//! The WGSL sources in `shaders/` and how kernels are composed from them.
//!
//! WGSL has no `#include`, so a kernel is a generated header of `const`s (the model's
//! sizes, which become loop bounds and array lengths) followed by library files and
//! the kernel file, concatenated in a fixed order.

/// One `.wgsl` file of `shaders/`.
#[derive(Clone, Copy, Debug)]
pub struct ShaderFile {
    /// File name under `shaders/`.
    pub name: &'static str,
    /// Its text.
    pub source: &'static str,
}

macro_rules! shader_file {
    ($name:literal) => {
        ShaderFile {
            name: $name,
            source: include_str!(concat!("../../../shaders/", $name)),
        }
    };
}

/// `silu`, `flat_index`.
pub const COMMON: ShaderFile = shader_file!("common.wgsl");
/// The counter-based generator.
pub const RNG: ShaderFile = shader_file!("rng.wgsl");
/// Test kernel writing generator draws.
pub const RNG_CHECK: ShaderFile = shader_file!("rng_check.wgsl");
/// 2D coupling flow, forward and inverse.
pub const FLOW2D: ShaderFile = shader_file!("flow2d.wgsl");
/// 2D score MLP fused with the sampler updates.
pub const SAMPLE2D: ShaderFile = shader_file!("sample2d.wgsl");
/// One hidden layer of the 2D score MLP: a template the sampler's generated header
/// instantiates per layer (`gpu::score2d`).
pub const SCORE2D_LAYER: ShaderFile = shader_file!("score2d_layer.wgsl");
/// 256-wide workgroup sum (library file for the image kernels).
pub const REDUCE: ShaderFile = shader_file!("reduce.wgsl");
/// Image layers: conv2d (k = 1, 3) and dense.
pub const CONV: ShaderFile = shader_file!("conv.wgsl");
/// Image layers: group normalisation (optionally fused with SiLU).
pub const NORM: ShaderFile = shader_file!("norm.wgsl");
/// Image layers: SiLU, add, per-channel bias, channel copies.
pub const POINTWISE: ShaderFile = shader_file!("pointwise.wgsl");
/// Image layers: average pooling, nearest upsampling, squeeze / unsqueeze.
pub const RESAMPLE: ShaderFile = shader_file!("resample.wgsl");
/// Image flow layers: actnorm and the affine coupling update with its log-det.
pub const GLOW: ShaderFile = shader_file!("glow.wgsl");
/// Image samplers: the per-element linear update with counter-based noise.
pub const LATENT: ShaderFile = shader_file!("latent.wgsl");
/// Render pipeline of the browser demo: 2D particles and trails read straight from
/// the sampler's storage buffers.
pub const PARTICLES2D: ShaderFile = shader_file!("particles2d.wgsl");

/// A kernel module: which files, in order, after the header.
#[derive(Clone, Copy, Debug)]
pub struct KernelModule {
    /// Name (pipeline cache key prefix).
    pub name: &'static str,
    /// Files in composition order.
    pub files: &'static [ShaderFile],
    /// A header that makes the module complete, for validation without a model.
    pub example_header: &'static str,
}

/// The generator check kernel.
pub const RNG_CHECK_MODULE: KernelModule = KernelModule {
    name: "rng_check",
    files: &[COMMON, RNG, RNG_CHECK],
    example_header: "",
};

/// The 2D flow kernels.
pub const FLOW2D_MODULE: KernelModule = KernelModule {
    name: "flow2d",
    files: &[COMMON, FLOW2D],
    example_header: "const FLOW_LAYERS: u32 = 8u;\nconst FLOW_HIDDEN: u32 = 64u;\n",
};

/// The 2D sampler kernels. Models get their header from
/// [`ScoreLayout::header`](super::score2d::ScoreLayout::header) (which also instantiates
/// [`SCORE2D_LAYER`] per hidden layer); the example is a one-layer net, 128 wide.
pub const SAMPLE2D_MODULE: KernelModule = KernelModule {
    name: "sample2d",
    files: &[COMMON, RNG, SAMPLE2D],
    example_header: "const Q: u32 = 32u;\nconst IN_Q: u32 = 5u;\nconst DEPTH: u32 = 1u;\n\
        const PP: u32 = 4u;\nconst L0_BLOCKS: u32 = 160u;\nconst BIAS_ROWS: u32 = 32u;\n\
        const HIDDEN_BLOCKS: u32 = 1024u;\n\
        @group(0) @binding(1) var<uniform> sm: SmallWeights;\n\
        fn hidden_layers(input: Acts) -> Acts { return input; }\n",
};

/// The hidden-layer template on its own, as layer `L` of a net 128 wide (with a test
/// entry point, so that naga checks it as used code).
pub const SCORE2D_LAYER_MODULE: KernelModule = KernelModule {
    name: "score2d_layer",
    files: &[COMMON, SCORE2D_LAYER],
    example_header: "const Q: u32 = 32u;\nconst PP: u32 = 4u;\nconst LAYER_L: u32 = 1u;\n\
        alias Acts = array<array<vec4<f32>, Q>, PP>;\n\
        struct Biases { b: array<vec4<f32>, 64> }\n\
        @group(0) @binding(0) var<uniform> sm: Biases;\n\
        @group(0) @binding(1) var<uniform> layer_weights_L: array<mat4x4<f32>, 1024>;\n\
        @group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;\n\
        @compute @workgroup_size(1) fn check() { var a: Acts; out[0] = hidden_layer_L(a)[0][0]; }\n",
};

/// Image convolution and dense kernels (sizes in a uniform: no header).
pub const CONV_MODULE: KernelModule = KernelModule {
    name: "conv",
    files: &[COMMON, CONV],
    example_header: "",
};

/// Image group-norm kernel.
pub const NORM_MODULE: KernelModule = KernelModule {
    name: "norm",
    files: &[COMMON, REDUCE, NORM],
    example_header: "",
};

/// Image elementwise and channel-copy kernels.
pub const POINTWISE_MODULE: KernelModule = KernelModule {
    name: "pointwise",
    files: &[COMMON, POINTWISE],
    example_header: "",
};

/// Image resampling kernels.
pub const RESAMPLE_MODULE: KernelModule = KernelModule {
    name: "resample",
    files: &[COMMON, RESAMPLE],
    example_header: "",
};

/// Image flow kernels (actnorm, coupling).
pub const GLOW_MODULE: KernelModule = KernelModule {
    name: "glow",
    files: &[COMMON, REDUCE, GLOW],
    example_header: "",
};

/// Image sampler updates (`lincomb`).
pub const LATENT_MODULE: KernelModule = KernelModule {
    name: "latent",
    files: &[COMMON, RNG, LATENT],
    example_header: "",
};

/// The demo's particle renderer (vertex + fragment; no header).
pub const PARTICLES2D_MODULE: KernelModule = KernelModule {
    name: "particles2d",
    files: &[PARTICLES2D],
    example_header: "",
};

/// Every kernel module (the naga test validates each with its example header).
pub const MODULES: &[KernelModule] = &[
    RNG_CHECK_MODULE,
    FLOW2D_MODULE,
    SAMPLE2D_MODULE,
    SCORE2D_LAYER_MODULE,
    CONV_MODULE,
    NORM_MODULE,
    POINTWISE_MODULE,
    RESAMPLE_MODULE,
    GLOW_MODULE,
    LATENT_MODULE,
    PARTICLES2D_MODULE,
];

/// Every file in `shaders/` that the crate knows (the naga test checks that this list
/// matches the folder, so no file goes unvalidated).
pub const FILES: &[ShaderFile] = &[
    COMMON,
    RNG,
    RNG_CHECK,
    FLOW2D,
    SAMPLE2D,
    SCORE2D_LAYER,
    REDUCE,
    CONV,
    NORM,
    POINTWISE,
    RESAMPLE,
    GLOW,
    LATENT,
    PARTICLES2D,
];

impl KernelModule {
    /// The module's WGSL with `header` in front.
    pub fn compose(&self, header: &str) -> String {
        let mut s = String::with_capacity(
            header.len()
                + self
                    .files
                    .iter()
                    .map(|f| f.source.len() + 40)
                    .sum::<usize>(),
        );
        s.push_str("// generated header\n");
        s.push_str(header);
        for f in self.files {
            s.push_str("\n// ---- ");
            s.push_str(f.name);
            s.push_str(" ----\n");
            s.push_str(f.source);
        }
        s
    }
}

/// `const NAME: u32 = VALUEu;` lines.
pub fn header_u32(consts: &[(&str, u32)]) -> String {
    consts
        .iter()
        .map(|(k, v)| format!("const {k}: u32 = {v}u;\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use naga::valid::{Capabilities, ValidationFlags, Validator};

    fn validate(name: &str, src: &str) -> Result<naga::Module, String> {
        let module =
            naga::front::wgsl::parse_str(src).map_err(|e| e.emit_to_string_with_path(src, name))?;
        Validator::new(ValidationFlags::all(), Capabilities::default())
            .validate(&module)
            .map_err(|e| e.emit_to_string_with_path(src, name))?;
        Ok(module)
    }

    /// Every kernel module parses and validates against the WebGPU baseline.
    #[test]
    fn every_kernel_module_validates_with_naga() {
        for m in MODULES {
            let src = m.compose(m.example_header);
            let module = validate(m.name, &src).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                !module.entry_points.is_empty(),
                "{} has no entry point",
                m.name
            );
        }
    }

    /// Library files (functions only) also validate on their own.
    #[test]
    fn library_files_validate_alone() {
        for f in [COMMON, RNG] {
            validate(f.name, f.source).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// The list of files above is the folder: a new `.wgsl` must be registered (and so
    /// validated) before the tests pass.
    #[test]
    fn every_wgsl_file_in_the_folder_is_registered() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders");
        let mut on_disk: Vec<String> = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "wgsl") {
                    on_disk.push(p.strip_prefix(&dir).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        on_disk.sort();
        let mut known: Vec<String> = FILES.iter().map(|f| f.name.to_string()).collect();
        known.sort();
        assert_eq!(on_disk, known, "shaders/ and gpu::shaders::FILES differ");
        for f in FILES {
            assert!(
                MODULES
                    .iter()
                    .any(|m| m.files.iter().any(|g| g.name == f.name)),
                "{} is not part of any kernel module",
                f.name
            );
        }
    }

    /// A broken kernel is reported with its file name and the offending line.
    #[test]
    fn a_type_error_is_reported_readably() {
        let e = validate(
            "bad.wgsl",
            "@compute @workgroup_size(1) fn main() { let x: f32 = 1u; }",
        )
        .unwrap_err();
        assert!(e.contains("bad.wgsl") && e.contains("f32"), "{e}");
    }
}
