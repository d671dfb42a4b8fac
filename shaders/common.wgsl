// Small shared helpers. Library file: functions only.

// SiLU x * sigmoid(x), written so that it never overflows: exp(-x) = inf gives -0.
fn silu(x: f32) -> f32 {
    return x / (1.0 + exp(-x));
}

// Flat invocation index of a 1D problem dispatched as a 2D grid of 64-wide workgroups
// (the grid wraps at the per-dimension workgroup limit).
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// SiLU of four lanes at once (the same formula as `silu`, component by component).
fn silu4(x: vec4<f32>) -> vec4<f32> {
    return x / (vec4<f32>(1.0) + exp(-x));
}
