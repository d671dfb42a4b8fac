// Convolution and dense layers of the image models. Needs common.wgsl.
//
// Conventions: tensors NCHW f32, contiguous. conv2d: x [B, C_in, H, W], weight
// [C_out, C_in, k, k] (burn / PyTorch layout), bias [C_out], out [B, C_out, H, W];
// stride 1, zero padding k / 2, k odd (the models use k in {1, 3}); optional bias and an
// optional fused residual: out = conv(x) + bias + residual (residual shaped like out).
// dense: x [B, in], weight [in, out] (burn's Linear layout, y = x W + b), bias [out],
// optional residual [B, out]. One invocation per output element; every size comes from
// the uniform, so one pipeline serves every layer.

// The 64-byte uniform shared by all image kernels: 12 u32 then 4 f32 (names per file).
struct ConvParams {
    n: u32,       // output elements
    batch: u32,
    c_in: u32,    // conv: input channels; dense: input features
    c_out: u32,   // conv: output channels; dense: output features
    h: u32,
    w: u32,
    k: u32,       // kernel size (odd)
    flags: u32,   // bit 0: add bias; bit 1: add residual
    _u8: u32,
    _u9: u32,
    _u10: u32,
    _u11: u32,
    _f0: f32,
    _f1: f32,
    _f2: f32,
    _f3: f32,
}

const CONV_HAS_BIAS: u32 = 1u;
const CONV_HAS_RESIDUAL: u32 = 2u;

@group(0) @binding(0) var<uniform> cp: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> residual: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

// out[b, co, oy, ox] = bias[co] + sum_{ci, ky, kx} x[b, ci, oy + ky - k/2, ox + kx - k/2]
//                       * weight[co, ci, ky, kx]  (+ residual[b, co, oy, ox]).
@compute @workgroup_size(64)
fn conv2d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= cp.n) {
        return;
    }
    let hw = cp.h * cp.w;
    let ox = i % cp.w;
    let oy = (i / cp.w) % cp.h;
    let co = (i / hw) % cp.c_out;
    let b = i / (hw * cp.c_out);
    let r = i32(cp.k / 2u);
    let kk = cp.k * cp.k;
    var acc = 0.0;
    for (var ci = 0u; ci < cp.c_in; ci++) {
        let xo = (b * cp.c_in + ci) * hw;
        let wo = (co * cp.c_in + ci) * kk;
        for (var ky = 0u; ky < cp.k; ky++) {
            let iy = i32(oy) + i32(ky) - r;
            if (iy < 0 || iy >= i32(cp.h)) {
                continue;
            }
            for (var kx = 0u; kx < cp.k; kx++) {
                let ix = i32(ox) + i32(kx) - r;
                if (ix < 0 || ix >= i32(cp.w)) {
                    continue;
                }
                acc += x[xo + u32(iy) * cp.w + u32(ix)] * weight[wo + ky * cp.k + kx];
            }
        }
    }
    if ((cp.flags & CONV_HAS_BIAS) != 0u) {
        acc += bias[co];
    }
    if ((cp.flags & CONV_HAS_RESIDUAL) != 0u) {
        acc += residual[i];
    }
    out[i] = acc;
}

// out[b, o] = sum_j x[b, j] weight[j, o] + bias[o]  (+ residual[b, o]).
@compute @workgroup_size(64)
fn dense(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= cp.n) {
        return;
    }
    let o = i % cp.c_out;
    let b = i / cp.c_out;
    var acc = 0.0;
    for (var j = 0u; j < cp.c_in; j++) {
        acc += x[b * cp.c_in + j] * weight[j * cp.c_out + o];
    }
    if ((cp.flags & CONV_HAS_BIAS) != 0u) {
        acc += bias[o];
    }
    if ((cp.flags & CONV_HAS_RESIDUAL) != 0u) {
        acc += residual[i];
    }
    out[i] = acc;
}
