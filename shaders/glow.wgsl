// Glow-lite flow layers: actnorm and the affine coupling update. Needs common.wgsl and
// reduce.wgsl. (Squeeze is in resample.wgsl; the invertible 1x1 convolution is conv2d
// with k = 1 and a weight W = P L (U + diag(s)) built on the host.)
//
// Conventions: tensors NCHW f32, contiguous.
//   actnorm_forward: out = (x + bias[c]) * exp(logs[c]);  actnorm_inverse: x = y exp(-logs[c]) - bias[c]
//     (bias, logs [C]). The log-determinant per sample, H W sum_c logs[c], is the same for
//     every sample and is computed on the host.
//   coupling: x_b [B, Cb, H, W] (the transformed half), h [B, 2 Cb, H, W] (the conditioner
//     output: channels [0, Cb) raw log-scale, [Cb, 2 Cb) shift),
//       ls = 2 tanh(raw / 2) = 2 - 4 / (1 + exp(raw))   (finite for every raw),
//       forward y = x_b exp(ls) + shift,   inverse x_b = (y - shift) exp(-ls).
//     The forward log-determinant per sample is sum ls over (c, y, x): coupling_forward
//     writes one partial sum per 256 elements (workgroup_id = (chunk, b)) into `aux`,
//     then sum_partials adds each sample's partials to logdet[b] (so log-dets of several
//     layers accumulate in one buffer).

struct GlowParams {
    n: u32,       // elements (actnorm, coupling_inverse: of out; coupling_forward: per sample)
    c: u32,       // channels (actnorm: C; coupling: Cb)
    hw: u32,      // H * W
    chunks: u32,  // partial sums per sample (coupling_forward, sum_partials)
    _u4: u32,
    _u5: u32,
    _u6: u32,
    _u7: u32,
    _u8: u32,
    _u9: u32,
    _u10: u32,
    _u11: u32,
    _f0: f32,
    _f1: f32,
    _f2: f32,
    _f3: f32,
}

@group(0) @binding(0) var<uniform> gp: GlowParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> c: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> aux: array<f32>;

// 2 tanh(raw / 2) = 2 - 4 / (1 + e^raw): finite for every raw (e^raw = inf gives 2).
fn coupling_log_scale(raw: f32) -> f32 {
    return 2.0 - 4.0 / (1.0 + exp(raw));
}

// a = x, b = bias, c = logs.
@compute @workgroup_size(64)
fn actnorm_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= gp.n) {
        return;
    }
    let ch = (i / gp.hw) % gp.c;
    out[i] = (a[i] + b[ch]) * exp(c[ch]);
}

// a = y, b = bias, c = logs.
@compute @workgroup_size(64)
fn actnorm_inverse(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= gp.n) {
        return;
    }
    let ch = (i / gp.hw) % gp.c;
    out[i] = a[i] * exp(-c[ch]) - b[ch];
}

// a = x_b, b = h; out = y; aux[s * chunks + chunk] = sum of ls over the chunk's elements.
@compute @workgroup_size(256)
fn coupling_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let chunk = wid.x;
    let s = wid.y;
    let j = chunk * REDUCE_WG + lid;
    var ls = 0.0;
    if (j < gp.n) {
        let ch = j / gp.hw;
        let p = j % gp.hw;
        let hb = s * 2u * gp.c * gp.hw;
        ls = coupling_log_scale(b[hb + ch * gp.hw + p]);
        let shift = b[hb + (gp.c + ch) * gp.hw + p];
        let i = s * gp.n + j;
        out[i] = a[i] * exp(ls) + shift;
    }
    let total = workgroup_sum(lid, ls);
    if (lid == 0u) {
        aux[s * gp.chunks + chunk] = total;
    }
}

// a = y, b = h; out = x_b. One invocation per element.
@compute @workgroup_size(64)
fn coupling_inverse(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= gp.n) {
        return;
    }
    let m = gp.c * gp.hw;
    let s = i / m;
    let j = i % m;
    let ch = j / gp.hw;
    let p = j % gp.hw;
    let hb = s * 2u * gp.c * gp.hw;
    let ls = coupling_log_scale(b[hb + ch * gp.hw + p]);
    let shift = b[hb + (gp.c + ch) * gp.hw + p];
    out[i] = (a[i] - shift) * exp(-ls);
}

// a = partials [B, chunks]; out = logdet [B]: out[s] += sum of row s. workgroup_id.x = s.
@compute @workgroup_size(256)
fn sum_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let s = wid.x;
    var acc = 0.0;
    for (var k = lid; k < gp.chunks; k += REDUCE_WG) {
        acc += a[s * gp.chunks + k];
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        out[s] += total;
    }
}
