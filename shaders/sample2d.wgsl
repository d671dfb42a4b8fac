// Reverse-time sampling of the 2D score MLP (shared/src/score/mlp.rs), one invocation
// per particle, one dispatch per step (PC: two, because its step size needs the mean
// score norm over all particles). Every coefficient comes from Rust per step (the
// `Step` uniform); this file never evaluates an SDE schedule.
// Needs the generated header (HIDDEN, DEPTH, N_FEATS), common.wgsl and rng.wgsl.
//
// Score weights: [l0.w ((2 + N_FEATS) x H), l0.b (H), then for l = 1..DEPTH-1:
// l.w (H x H), l.b (H), then out.w (H x 2), out.b (2)]; row-major [d_in, d_out].
// The network's output is net(z); sigma * score = sign * net(z), and each update
// below folds sign and 1 / sigma into its coefficients.

const MAX_FEATS: u32 = 32u;
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
    feats0: array<vec4<f32>, 8>,
    feats1: array<vec4<f32>, 8>,
}

@group(0) @binding(0) var<uniform> st: Step;
@group(0) @binding(1) var<storage, read> sw: array<f32>;
@group(0) @binding(2) var<storage, read_write> z: array<f32>;
@group(0) @binding(3) var<storage, read_write> aux: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
@group(0) @binding(5) var<storage, read_write> traj: array<f32>;

const D_IN: u32 = 2u + N_FEATS;
const OFF_B0: u32 = D_IN * HIDDEN;
const OFF_HIDDEN: u32 = OFF_B0 + HIDDEN;
const HIDDEN_LAYER_SIZE: u32 = HIDDEN * HIDDEN + HIDDEN;
const OFF_OUT: u32 = OFF_HIDDEN + (DEPTH - 1u) * HIDDEN_LAYER_SIZE;

fn load_feats(which: u32) -> array<f32, MAX_FEATS> {
    var f: array<f32, MAX_FEATS>;
    for (var k = 0u; k < N_FEATS; k++) {
        if (which == 0u) {
            f[k] = st.feats0[k / 4u][k % 4u];
        } else {
            f[k] = st.feats1[k / 4u][k % 4u];
        }
    }
    return f;
}

// The score MLP's raw output at (x, time features f).
fn score_net(x: vec2<f32>, f: array<f32, MAX_FEATS>) -> vec2<f32> {
    var a: array<f32, HIDDEN>;
    for (var j = 0u; j < HIDDEN; j++) {
        var acc = sw[OFF_B0 + j] + x.x * sw[j] + x.y * sw[HIDDEN + j];
        for (var k = 0u; k < N_FEATS; k++) {
            acc += f[k] * sw[(2u + k) * HIDDEN + j];
        }
        a[j] = silu(acc);
    }
    for (var l = 1u; l < DEPTH; l++) {
        let o = OFF_HIDDEN + (l - 1u) * HIDDEN_LAYER_SIZE;
        var b: array<f32, HIDDEN>;
        for (var j = 0u; j < HIDDEN; j++) {
            var acc = sw[o + HIDDEN * HIDDEN + j];
            for (var i = 0u; i < HIDDEN; i++) {
                acc += a[i] * sw[o + i * HIDDEN + j];
            }
            b[j] = silu(acc);
        }
        a = b;
    }
    var out = vec2<f32>(sw[OFF_OUT + 2u * HIDDEN], sw[OFF_OUT + 2u * HIDDEN + 1u]);
    for (var i = 0u; i < HIDDEN; i++) {
        out += a[i] * vec2<f32>(sw[OFF_OUT + 2u * i], sw[OFF_OUT + 2u * i + 1u]);
    }
    return out;
}

fn noise2(stream: u32, step: u32, i: u32) -> vec2<f32> {
    return vec2<f32>(
        rng_normal(st.seed, stream, step, 2u * i),
        rng_normal(st.seed, stream, step, 2u * i + 1u),
    );
}

fn load_z(i: u32) -> vec2<f32> {
    return vec2<f32>(z[2u * i], z[2u * i + 1u]);
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

// z' = a z + b net(z) + c noise: Euler-Maruyama, the PC predictor, PF-ODE Euler and
// the final denoising step are all this update with different coefficients.
fn linear_update(i: u32, x: vec2<f32>) -> vec2<f32> {
    var y = st.a * x;
    if (st.b != 0.0) {
        y += st.b * score_net(x, load_feats(0u));
    }
    if (st.noise_stream != 0u && st.c != 0.0) {
        y += st.c * noise2(st.noise_stream, st.noise_step, i);
    }
    return y;
}

@compute @workgroup_size(64)
fn linear_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= st.n) {
        return;
    }
    store_z(i, linear_update(i, load_z(i)));
}

// PF-ODE Heun step (both velocity evaluations in one dispatch).
@compute @workgroup_size(64)
fn heun_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= st.n) {
        return;
    }
    let x = load_z(i);
    let v0 = st.f0 * x + st.k0 * score_net(x, load_feats(0u));
    let pred = x + st.h * v0;
    let v1 = st.f1 * pred + st.k1 * score_net(pred, load_feats(1u));
    store_z(i, st.scale * (x + 0.5 * st.h * (v0 + v1)));
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
    let i = flat_index(gid, nwg);
    var local = vec2<f32>(0.0, 0.0);
    if (i < st.n) {
        let s = st.kc * score_net(load_z(i), load_feats(0u));
        aux[2u * i] = s.x;
        aux[2u * i + 1u] = s.y;
        local = vec2<f32>(length(s), length(noise2(st.corr_stream, st.corr_step, i)));
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
    let i = flat_index(gid, nwg);
    if (i >= st.n) {
        return;
    }
    var sums = vec2<f32>(0.0, 0.0);
    for (var w = 0u; w < st.n_partials; w++) {
        sums += vec2<f32>(partials[2u * w], partials[2u * w + 1u]);
    }
    let mean = sums / f32(st.n);
    let ratio = st.snr * mean.y / max(mean.x, 1e-30);
    let eta = 2.0 * st.alpha * ratio * ratio;
    let s = vec2<f32>(aux[2u * i], aux[2u * i + 1u]);
    var x = load_z(i) + eta * s + sqrt(2.0 * eta) * noise2(st.corr_stream, st.corr_step, i);
    if (st.predict != 0u) {
        x = linear_update(i, x);
        store_z(i, x);
    } else {
        z[2u * i] = x.x;
        z[2u * i + 1u] = x.y;
    }
}
