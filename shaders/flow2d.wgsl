// The 2D coupling flow h (shared/src/flow/coupling2d.rs), one invocation per point.
// Layer k keeps coordinate c = k mod 2 and transforms a = 1 - c:
//   (raw, b) = net_k(x_c),  s = 2 tanh(raw / 2),  y_a = x_a e^s + b,  log-det += s.
// Needs the generated header (FLOW_LAYERS, FLOW_HIDDEN) and common.wgsl.
// Weights: per layer [l0.w (1 x H), l0.b (H), l1.w (H x H), l1.b (H), l2.w (H x 2), l2.b (2)].

struct FlowParams {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> fp: FlowParams;
@group(0) @binding(1) var<storage, read> fw: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read_write> logdet: array<f32>;

const FLOW_LAYER_SIZE: u32 = FLOW_HIDDEN * FLOW_HIDDEN + 5u * FLOW_HIDDEN + 2u;

// 2 tanh(raw / 2) = 2 - 4 / (1 + e^raw): finite for every raw (e^raw = inf gives 2).
fn bounded_log_scale(raw: f32) -> f32 {
    return 2.0 - 4.0 / (1.0 + exp(raw));
}

// Log-scale and shift of layer k for the kept coordinate xc.
fn conditioner(k: u32, xc: f32) -> vec2<f32> {
    let o = k * FLOW_LAYER_SIZE;
    let h = FLOW_HIDDEN;
    var a: array<f32, FLOW_HIDDEN>;
    for (var j = 0u; j < h; j++) {
        a[j] = silu(xc * fw[o + j] + fw[o + h + j]);
    }
    let o1 = o + 2u * h;
    var b: array<f32, FLOW_HIDDEN>;
    for (var j = 0u; j < h; j++) {
        var acc = fw[o1 + h * h + j];
        for (var i = 0u; i < h; i++) {
            acc += a[i] * fw[o1 + i * h + j];
        }
        b[j] = silu(acc);
    }
    let o2 = o1 + h * h + h;
    var raw = fw[o2 + 2u * h];
    var shift = fw[o2 + 2u * h + 1u];
    for (var i = 0u; i < h; i++) {
        raw += b[i] * fw[o2 + 2u * i];
        shift += b[i] * fw[o2 + 2u * i + 1u];
    }
    return vec2<f32>(bounded_log_scale(raw), shift);
}

// z = h(x) and log|det dh/dx| per point.
@compute @workgroup_size(64)
fn flow_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= fp.n) {
        return;
    }
    var x = vec2<f32>(src[2u * i], src[2u * i + 1u]);
    var ld = 0.0;
    for (var k = 0u; k < FLOW_LAYERS; k++) {
        let c = k % 2u;
        let sb = conditioner(k, x[c]);
        x[1u - c] = x[1u - c] * exp(sb.x) + sb.y;
        ld += sb.x;
    }
    dst[2u * i] = x.x;
    dst[2u * i + 1u] = x.y;
    logdet[i] = ld;
}

// x = h^{-1}(z), layers undone in reverse order.
@compute @workgroup_size(64)
fn flow_inverse(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= fp.n) {
        return;
    }
    var x = vec2<f32>(src[2u * i], src[2u * i + 1u]);
    for (var r = 0u; r < FLOW_LAYERS; r++) {
        let k = FLOW_LAYERS - 1u - r;
        let c = k % 2u;
        let sb = conditioner(k, x[c]);
        x[1u - c] = (x[1u - c] - sb.y) * exp(-sb.x);
    }
    dst[2u * i] = x.x;
    dst[2u * i + 1u] = x.y;
}
