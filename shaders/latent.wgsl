// The per-element update of the image samplers. Needs common.wgsl and rng.wgsl.
//
// Conventions: tensors NCHW f32, contiguous, flattened over the whole batch; one
// invocation per element.
//   lincomb: out[i] = a x[i] + b y[i] + c w[i] + d noise(i)
//     with noise(i) = rng_normal(seed, stream, step, i), draw i of the family
//     (seed, stream, step) indexed by the flat element index, as the CPU plan executor
//     indexes its normals; terms whose flag is off read nothing.
// Every linear sampler update (EM, PF-ODE Euler, SDEdit's noising, the denoising step)
// and the three combinations of a PF-ODE Heun step are this kernel with other
// coefficients (from Rust: `shared/src/sample/plan.rs`).

const USE_Y: u32 = 1u;
const USE_W: u32 = 2u;
const USE_NOISE: u32 = 4u;

struct LatentParams {
    n: u32,       // elements
    flags: u32,   // USE_Y | USE_W | USE_NOISE
    seed: u32,    // folded seed of the run
    stream: u32,  // noise stream
    step: u32,    // noise step (folded)
    _u5: u32,
    _u6: u32,
    _u7: u32,
    _u8: u32,
    _u9: u32,
    _u10: u32,
    _u11: u32,
    a: f32,
    b: f32,
    c: f32,
    d: f32,
}

@group(0) @binding(0) var<uniform> lp: LatentParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn lincomb(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= lp.n) {
        return;
    }
    var v = lp.a * x[i];
    if ((lp.flags & USE_Y) != 0u) {
        v += lp.b * y[i];
    }
    if ((lp.flags & USE_W) != 0u) {
        v += lp.c * w[i];
    }
    if ((lp.flags & USE_NOISE) != 0u) {
        v += lp.d * rng_normal(lp.seed, lp.stream, lp.step, i);
    }
    out[i] = v;
}
