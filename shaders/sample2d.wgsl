// Reverse-time sampling of the 2D score MLP (shared/src/score/mlp.rs), one dispatch per
// step (PC: two, because its step size needs the mean score norm over all particles).
// Every coefficient comes from Rust per step (the `Step` uniform); this file never
// evaluates an SDE schedule.
//
// Each invocation handles PP consecutive particles (PP = 1 on GPUs; more on CPU adapters,
// where loading a weight costs far more than using it, so each load serves PP particles).
// Needs the generated header (`gpu::score2d::ScoreLayout::header`), common.wgsl and
// rng.wgsl. The header defines
//   Q (hidden width / 4, rounded up), IN_Q (network inputs / 4, rounded up), DEPTH,
//   PP, L0_BLOCKS = IN_Q * Q, BIAS_ROWS = DEPTH * Q, HIDDEN_BLOCKS = Q * Q,
//   the binding `sm: SmallWeights` (uniform, or read-only storage when it is too large),
//   one binding `layer_weights_l: array<mat4x4<f32>, HIDDEN_BLOCKS>` per hidden layer
//   l = 1 .. DEPTH - 1 with its instance of score2d_layer.wgsl, and
//   `fn hidden_layers(a: Acts) -> Acts`, which applies them in order.
//
// Weights are 4x4 blocks: block (iq, jq) of a layer holds W[4 iq + c][4 jq + r] at
// column c, row r (W row-major [d_in, d_out], zero-padded), so a layer is
// out[jq] = b[jq] + sum_iq block(iq, jq) * in[iq]. The network's output is net(z);
// sigma * score = sign * net(z), and each update below folds sign and 1 / sigma into its
// coefficients.

const NO_SLOT: u32 = 0xffffffffu;

struct Step {
    n: u32,
    seed: u32,
    noise_stream: u32,
    noise_step: u32,
    corr_stream: u32,
    corr_step: u32,
    record_slot: u32,
    n_partials: u32,
    predict: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    // linear update z' = a z + b net(z; feats0) + c noise
    a: f32,
    b: f32,
    c: f32,
    // PC corrector: alpha, snr, and s = kc net(z; feats0)
    alpha: f32,
    snr: f32,
    kc: f32,
    // Heun: v_j = f_j z + k_j net(z; feats_j), z' = scale (z + h (v0 + v1) / 2)
    f0: f32,
    k0: f32,
    f1: f32,
    k1: f32,
    h: f32,
    scale: f32,
    // Time features, zero-padded (the network's inputs from 2 on).
    feats0: array<vec4<f32>, 9>,
    feats1: array<vec4<f32>, 9>,
}

// The first layer's blocks, every layer's bias and the output layer.
struct SmallWeights {
    l0: array<mat4x4<f32>, L0_BLOCKS>,
    b: array<vec4<f32>, BIAS_ROWS>,
    // wo[2 iq + o] = W_out[4 iq .. 4 iq + 3][o]
    wo: array<vec4<f32>, OUT_ROWS>,
    bo: vec4<f32>,
}

// Hidden activations of the PP particles, four units per vec4.
alias Acts = array<array<vec4<f32>, Q>, PP>;
// The PP particles' positions.
alias Points = array<vec2<f32>, PP>;

@group(0) @binding(0) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read_write> z: array<f32>;
@group(0) @binding(3) var<storage, read_write> aux: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
@group(0) @binding(5) var<storage, read_write> traj: array<f32>;

const OUT_ROWS: u32 = 2u * Q;

// Network input quad k >= 1 (time features only, the same for every particle).
fn feature_quad(which: u32, k: u32) -> vec4<f32> {
    if (which == 0u) {
        return vec4<f32>(st.feats0[k - 1u].zw, st.feats0[k].xy);
    }
    return vec4<f32>(st.feats1[k - 1u].zw, st.feats1[k].xy);
}

// The score MLP's raw output at the PP points x, with time features `which` (0 or 1).
fn score_net(x: Points, which: u32) -> Points {
    var f0 = st.feats0[0].xy;
    if (which != 0u) {
        f0 = st.feats1[0].xy;
    }
    var a: Acts;
    for (var jq = 0u; jq < Q; jq++) {
        // Bias plus the time features' part, shared by the PP particles.
        var c = sm.b[jq];
        for (var k = 1u; k < IN_Q; k++) {
            c += sm.l0[k * Q + jq] * feature_quad(which, k);
        }
        let w = sm.l0[jq];
        for (var p = 0u; p < PP; p++) {
            a[p][jq] = silu4(c + w * vec4<f32>(x[p], f0));
        }
    }
    a = hidden_layers(a);
    var out: Points;
    for (var p = 0u; p < PP; p++) {
        out[p] = sm.bo.xy;
    }
    for (var iq = 0u; iq < Q; iq++) {
        let w0 = sm.wo[2u * iq];
        let w1 = sm.wo[2u * iq + 1u];
        for (var p = 0u; p < PP; p++) {
            out[p] += vec2<f32>(dot(w0, a[p][iq]), dot(w1, a[p][iq]));
        }
    }
    return out;
}

fn noise2(stream: u32, step: u32, i: u32) -> vec2<f32> {
    return vec2<f32>(
        rng_normal(st.seed, stream, step, 2u * i),
        rng_normal(st.seed, stream, step, 2u * i + 1u),
    );
}

// The PP particles from `first` on; past the end, copies of the last particle (computed
// and then dropped, so every invocation runs the same code).
fn load_points(first: u32) -> Points {
    var x: Points;
    for (var p = 0u; p < PP; p++) {
        let i = min(first + p, st.n - 1u);
        x[p] = vec2<f32>(z[2u * i], z[2u * i + 1u]);
    }
    return x;
}

fn store_z(i: u32, v: vec2<f32>) {
    z[2u * i] = v.x;
    z[2u * i + 1u] = v.y;
    if (st.record_slot != NO_SLOT) {
        let o = st.record_slot * 2u * st.n + 2u * i;
        traj[o] = v.x;
        traj[o + 1u] = v.y;
    }
}

fn store_points(first: u32, y: Points) {
    for (var p = 0u; p < PP; p++) {
        if (first + p < st.n) {
            store_z(first + p, y[p]);
        }
    }
}

// z' = a z + b net(z) + c noise: Euler-Maruyama, the PC predictor, PF-ODE Euler and
// the final denoising step are all this update with different coefficients.
fn linear_update(first: u32, x: Points) -> Points {
    var y: Points;
    for (var p = 0u; p < PP; p++) {
        y[p] = st.a * x[p];
    }
    if (st.b != 0.0) {
        let s = score_net(x, 0u);
        for (var p = 0u; p < PP; p++) {
            y[p] += st.b * s[p];
        }
    }
    if (st.noise_stream != 0u && st.c != 0.0) {
        for (var p = 0u; p < PP; p++) {
            y[p] += st.c * noise2(st.noise_stream, st.noise_step, first + p);
        }
    }
    return y;
}

// Index of the first particle of this invocation, or `st.n` when it has none.
fn first_particle(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return min(flat_index(gid, nwg) * PP, st.n);
}

@compute @workgroup_size(64)
fn linear_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let first = first_particle(gid, nwg);
    if (first >= st.n) {
        return;
    }
    store_points(first, linear_update(first, load_points(first)));
}

// PF-ODE Heun step (both velocity evaluations in one dispatch).
@compute @workgroup_size(64)
fn heun_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let first = first_particle(gid, nwg);
    if (first >= st.n) {
        return;
    }
    let x = load_points(first);
    let s0 = score_net(x, 0u);
    var v0: Points;
    var pred: Points;
    for (var p = 0u; p < PP; p++) {
        v0[p] = st.f0 * x[p] + st.k0 * s0[p];
        pred[p] = x[p] + st.h * v0[p];
    }
    let s1 = score_net(pred, 1u);
    var y: Points;
    for (var p = 0u; p < PP; p++) {
        let v1 = st.f1 * pred[p] + st.k1 * s1[p];
        y[p] = st.scale * (x[p] + 0.5 * st.h * (v0[p] + v1));
    }
    store_points(first, y);
}

var<workgroup> norms: array<vec2<f32>, 64>;

// PC, first half: the score s = kc net(z) into `aux`, and per-workgroup sums of the
// particles' score norms |s_i| and corrector-noise norms |n_i| into `partials`.
@compute @workgroup_size(64)
fn pc_score(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let first = first_particle(gid, nwg);
    var local = vec2<f32>(0.0, 0.0);
    if (first < st.n) {
        let s = score_net(load_points(first), 0u);
        for (var p = 0u; p < PP; p++) {
            let i = first + p;
            if (i < st.n) {
                let si = st.kc * s[p];
                aux[2u * i] = si.x;
                aux[2u * i + 1u] = si.y;
                local += vec2<f32>(length(si), length(noise2(st.corr_stream, st.corr_step, i)));
            }
        }
    }
    norms[lid] = local;
    workgroupBarrier();
    for (var width = 32u; width > 0u; width = width / 2u) {
        if (lid < width) {
            norms[lid] = norms[lid] + norms[lid + width];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let w = wid.x + wid.y * nwg.x;
        partials[2u * w] = norms[0].x;
        partials[2u * w + 1u] = norms[0].y;
    }
}

// PC, second half: the Langevin corrector step with the step size from the mean norms,
// then (when `predict` is set) the reverse-diffusion predictor, a linear update.
@compute @workgroup_size(64)
fn pc_correct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let first = first_particle(gid, nwg);
    if (first >= st.n) {
        return;
    }
    var sums = vec2<f32>(0.0, 0.0);
    for (var w = 0u; w < st.n_partials; w++) {
        sums += vec2<f32>(partials[2u * w], partials[2u * w + 1u]);
    }
    let mean = sums / f32(st.n);
    let ratio = st.snr * mean.y / max(mean.x, 1e-30);
    let eta = 2.0 * st.alpha * ratio * ratio;
    let x = load_points(first);
    var y: Points;
    for (var p = 0u; p < PP; p++) {
        let i = min(first + p, st.n - 1u);
        let s = vec2<f32>(aux[2u * i], aux[2u * i + 1u]);
        y[p] = x[p] + eta * s + sqrt(2.0 * eta) * noise2(st.corr_stream, st.corr_step, i);
    }
    if (st.predict != 0u) {
        store_points(first, linear_update(first, y));
    } else {
        for (var p = 0u; p < PP; p++) {
            let i = first + p;
            if (i < st.n) {
                z[2u * i] = y[p].x;
                z[2u * i + 1u] = y[p].y;
            }
        }
    }
}
