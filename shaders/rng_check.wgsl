// Test kernel: writes raw bits, uniforms and normals of one generator family, so
// the Rust and WGSL generators can be compared draw by draw. Composed after rng.wgsl.

struct RngParams {
    seed: u32,
    stream: u32,
    step: u32,
    n: u32,
}

@group(0) @binding(0) var<uniform> params: RngParams;
@group(0) @binding(1) var<storage, read_write> bits: array<u32>;
@group(0) @binding(2) var<storage, read_write> uniforms: array<f32>;
@group(0) @binding(3) var<storage, read_write> normals: array<f32>;

@compute @workgroup_size(64)
fn rng_fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= params.n) {
        return;
    }
    bits[i] = rng_hash4(params.seed, params.stream, params.step, i);
    uniforms[i] = rng_uniform(params.seed, params.stream, params.step, i);
    normals[i] = rng_normal(params.seed, params.stream, params.step, i);
}
