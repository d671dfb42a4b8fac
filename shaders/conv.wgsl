// Convolution and dense layers of the image models. Needs common.wgsl.
//
// Conventions: tensors NCHW f32, contiguous. conv2d: x [B, C_in, H, W], weight
// [C_out, C_in, k, k] (burn / PyTorch layout), bias [C_out], out [B, C_out, H, W];
// stride 1, zero padding k / 2, k odd (the models use k in {1, 3}); optional bias and an
// optional fused residual: out = conv(x) + bias + residual (residual shaped like out).
// dense: x [B, in], weight [in, out] (burn's Linear layout, y = x W + b), bias [out],
// optional residual [B, out]. conv2d: one invocation per pixel and group of four output
// channels; dense: one per output element. Every size comes from the uniform, so one
// pipeline serves every layer.

// The 64-byte uniform shared by all image kernels: 12 u32 then 4 f32 (names per file).
struct ConvParams {
    n: u32,       // invocations (conv2d: B * ceil(C_out / 4) * H * W; dense: output elements)
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
// One invocation computes four consecutive output channels co = 4 g .. 4 g + 3 of one
// pixel (each input value is loaded once for all four): n = B * ceil(C_out / 4) * H * W
// invocations; channels past C_out are computed from a clamped weight row and dropped.
@compute @workgroup_size(64)
fn conv2d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= cp.n) {
        return;
    }
    let hw = cp.h * cp.w;
    let groups = (cp.c_out + 3u) / 4u;
    let ox = i % cp.w;
    let oy = (i / cp.w) % cp.h;
    let g = (i / hw) % groups;
    let b = i / (hw * groups);
    let co0 = 4u * g;
    let last = cp.c_out - 1u;
    let r = i32(cp.k / 2u);
    let kk = cp.k * cp.k;
    // Weight rows of the four channels (clamped to the last one).
    let stride = cp.c_in * kk;
    let w0 = min(co0, last) * stride;
    let w1 = min(co0 + 1u, last) * stride;
    let w2 = min(co0 + 2u, last) * stride;
    let w3 = min(co0 + 3u, last) * stride;
    var acc = vec4<f32>(0.0);
    for (var ci = 0u; ci < cp.c_in; ci++) {
        let xo = (b * cp.c_in + ci) * hw;
        let wc = ci * kk;
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
                let xv = x[xo + u32(iy) * cp.w + u32(ix)];
                let t = wc + ky * cp.k + kx;
                acc += xv * vec4<f32>(weight[w0 + t], weight[w1 + t], weight[w2 + t], weight[w3 + t]);
            }
        }
    }
    for (var j = 0u; j < 4u; j++) {
        let co = co0 + j;
        if (co >= cp.c_out) {
            break;
        }
        var v = acc[j];
        if ((cp.flags & CONV_HAS_BIAS) != 0u) {
            v += bias[co];
        }
        let o = ((b * cp.c_out + co) * cp.h + oy) * cp.w + ox;
        if ((cp.flags & CONV_HAS_RESIDUAL) != 0u) {
            v += residual[o];
        }
        out[o] = v;
    }
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
