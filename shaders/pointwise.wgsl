// Elementwise kernels and channel copies of the image models. Needs common.wgsl.
//
// Conventions: tensors NCHW f32, contiguous; one invocation per output element.
//   apply_silu:       out = silu(a)                      (a, out same shape)
//   add:              out = a + b                        (all the same shape)
//   add_channel_bias: out[b, c, :, :] += a[b, c]         (in place; a is [B, C], e.g. the
//                                                         projected time embedding)
//   copy_channels:    out[b, dst_c0 + j, :, :] = a[b, src_c0 + j, :, :], j < count
//                     (channel split / concat; a [B, src_c, H, W], out [B, dst_c, H, W])

struct PointParams {
    n: u32,       // invocations: elements of out (copy_channels: B * count * H * W)
    hw: u32,      // H * W
    src_c: u32,   // copy_channels: channels of a
    src_c0: u32,  // copy_channels: first channel read from a
    dst_c: u32,   // copy_channels: channels of out
    dst_c0: u32,  // copy_channels: first channel written in out
    count: u32,   // copy_channels: channels copied
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

@group(0) @binding(0) var<uniform> pp: PointParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn apply_silu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= pp.n) {
        return;
    }
    out[i] = silu(a[i]);
}

@compute @workgroup_size(64)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= pp.n) {
        return;
    }
    out[i] = a[i] + b[i];
}

@compute @workgroup_size(64)
fn add_channel_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= pp.n) {
        return;
    }
    // (b * C + c) is the flat index of the plane, and of the bias entry.
    out[i] += a[i / pp.hw];
}

@compute @workgroup_size(64)
fn copy_channels(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= pp.n) {
        return;
    }
    let p = i % pp.hw;
    let j = (i / pp.hw) % pp.count;
    let s = i / (pp.hw * pp.count);
    out[(s * pp.dst_c + pp.dst_c0 + j) * pp.hw + p] = a[(s * pp.src_c + pp.src_c0 + j) * pp.hw + p];
}
