// Group normalisation of the U-Net. Needs common.wgsl and reduce.wgsl.
//
// Conventions: tensors NCHW f32, contiguous. x, out [B, C, H, W]; gamma, beta [C];
// G groups of C / G consecutive channels. Per (sample, group), with n = (C / G) H W:
//   mean = sum x / n,  var = sum (x - mean)^2 / n  (biased, as burn and PyTorch),
//   out = (x - mean) / sqrt(var + eps) * gamma[c] + beta[c],  then SiLU if flag bit 0.
// One 256-wide workgroup per (group, sample): workgroup_id = (g, b). Two-pass f32
// reduction (mean first, then the centred sum of squares), so no cancellation.

struct NormParams {
    batch: u32,
    c: u32,
    hw: u32,
    groups: u32,
    flags: u32,   // bit 0: apply SiLU to the output
    _u5: u32,
    _u6: u32,
    _u7: u32,
    _u8: u32,
    _u9: u32,
    _u10: u32,
    _u11: u32,
    eps: f32,
    _f1: f32,
    _f2: f32,
    _f3: f32,
}

const NORM_SILU: u32 = 1u;

@group(0) @binding(0) var<uniform> np: NormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn group_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x;
    let b = wid.y;
    let cg = np.c / np.groups;
    let n = cg * np.hw;
    let base = (b * np.c + g * cg) * np.hw;
    var s = 0.0;
    for (var i = lid; i < n; i += REDUCE_WG) {
        s += x[base + i];
    }
    let mean = workgroup_sum(lid, s) / f32(n);
    var q = 0.0;
    for (var i = lid; i < n; i += REDUCE_WG) {
        let d = x[base + i] - mean;
        q += d * d;
    }
    let variance = workgroup_sum(lid, q) / f32(n);
    let inv = 1.0 / sqrt(variance + np.eps);
    for (var i = lid; i < n; i += REDUCE_WG) {
        let c = g * cg + i / np.hw;
        var y = (x[base + i] - mean) * inv * gamma[c] + beta[c];
        if ((np.flags & NORM_SILU) != 0u) {
            y = silu(y);
        }
        out[base + i] = y;
    }
}
