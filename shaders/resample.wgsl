// Resolution changes of the image models. Needs common.wgsl.
//
// Conventions: tensors NCHW f32, contiguous; the uniform holds the INPUT's C, H, W; one
// invocation per output element.
//   avg_pool2x2:        [B, C, H, W]   -> [B, C, H/2, W/2]   mean of each 2x2 block (H, W even)
//   upsample_nearest2x: [B, C, H, W]   -> [B, C, 2H, 2W]     out[y, x] = in[y/2, x/2]
//   squeeze:            [B, C, H, W]   -> [B, 4C, H/2, W/2]  Glow's squeeze:
//       out[b, c*4 + dy*2 + dx, y, x] = in[b, c, 2y + dy, 2x + dx]
//       (x.reshape(B, C, H/2, 2, W/2, 2).permute(0, 1, 3, 5, 2, 4).reshape(B, 4C, H/2, W/2))
//   unsqueeze:          [B, 4C, H, W]  -> [B, C, 2H, 2W]     the inverse of squeeze

struct ResampleParams {
    n: u32,   // output elements
    c: u32,   // input channels
    h: u32,   // input height
    w: u32,   // input width
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

@group(0) @binding(0) var<uniform> rp: ResampleParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn avg_pool2x2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= rp.n) {
        return;
    }
    let wo = rp.w / 2u;
    let ho = rp.h / 2u;
    let x = i % wo;
    let y = (i / wo) % ho;
    let plane = i / (wo * ho);
    let o = plane * rp.h * rp.w + 2u * y * rp.w + 2u * x;
    dst[i] = (src[o] + src[o + 1u] + src[o + rp.w] + src[o + rp.w + 1u]) * 0.25;
}

@compute @workgroup_size(64)
fn upsample_nearest2x(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= rp.n) {
        return;
    }
    let wo = 2u * rp.w;
    let ho = 2u * rp.h;
    let x = i % wo;
    let y = (i / wo) % ho;
    let plane = i / (wo * ho);
    dst[i] = src[plane * rp.h * rp.w + (y / 2u) * rp.w + x / 2u];
}

@compute @workgroup_size(64)
fn squeeze(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= rp.n) {
        return;
    }
    let wo = rp.w / 2u;
    let ho = rp.h / 2u;
    let co = 4u * rp.c;
    let x = i % wo;
    let y = (i / wo) % ho;
    let oc = (i / (wo * ho)) % co;
    let b = i / (wo * ho * co);
    let c = oc / 4u;
    let dy = (oc / 2u) % 2u;
    let dx = oc % 2u;
    dst[i] = src[((b * rp.c + c) * rp.h + 2u * y + dy) * rp.w + 2u * x + dx];
}

@compute @workgroup_size(64)
fn unsqueeze(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= rp.n) {
        return;
    }
    let wo = 2u * rp.w;
    let ho = 2u * rp.h;
    let co = rp.c / 4u;
    let x = i % wo;
    let y = (i / wo) % ho;
    let c = (i / (wo * ho)) % co;
    let b = i / (wo * ho * co);
    let ic = c * 4u + (y % 2u) * 2u + x % 2u;
    dst[i] = src[((b * rp.c + ic) * rp.h + y / 2u) * rp.w + x / 2u];
}
