// Particles and trails of a 2D run, drawn straight from the sampler's storage buffers
// (no readback): `traj` holds the recorded states of one panel's space (latent, or
// data after the flow's inverse), slot after slot, 2 n values each.

struct View {
    // World -> clip: (p - xform.xy) * xform.zw.
    xform: vec4<f32>,
    // Clip units per pixel (x, y), point radius in pixels, point opacity.
    px: vec4<f32>,
    // Particles n, slot, next slot, trail stride (every k-th particle has a trail).
    idx: vec4<u32>,
    // Blend between slot and next slot, trail opacity, unused, unused.
    mixes: vec4<f32>,
}

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<storage, read> traj: array<f32>;
// A state that colours the particles (the run's first latent state: 2 n values).
@group(0) @binding(2) var<storage, read> colour_src: array<f32>;

struct VsOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) colour: vec4<f32>,
    @location(1) local: vec2<f32>,
}

fn point_at(slot: u32, i: u32) -> vec2<f32> {
    let o = 2u * (slot * view.idx.x + i);
    return vec2<f32>(traj[o], traj[o + 1u]);
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> vec3<f32> {
    let k = vec3<f32>(1.0, 2.0 / 3.0, 1.0 / 3.0);
    let p = abs(fract(vec3<f32>(h) + k) * 6.0 - vec3<f32>(3.0));
    return v * mix(vec3<f32>(1.0), clamp(p - vec3<f32>(1.0), vec3<f32>(0.0), vec3<f32>(1.0)), s);
}

// Hue from the angle of the particle's first latent, saturation from its radius: the
// colours show where each region of the prior ends up.
fn particle_colour(i: u32) -> vec3<f32> {
    let z = vec2<f32>(colour_src[2u * i], colour_src[2u * i + 1u]);
    let hue = atan2(z.y, z.x) / 6.2831853 + 0.5;
    let r = clamp(length(z) / 2.5, 0.0, 1.0);
    return hsv_to_rgb(hue, 0.25 + 0.7 * r, 1.0);
}

fn to_clip(p: vec2<f32>) -> vec2<f32> {
    return (p - view.xform.xy) * view.xform.zw;
}

@vertex
fn vs_point(@builtin(vertex_index) v: u32, @builtin(instance_index) i: u32) -> VsOut {
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(-1.0, -1.0), vec2<f32>(1.0, -1.0), vec2<f32>(1.0, 1.0),
        vec2<f32>(-1.0, -1.0), vec2<f32>(1.0, 1.0), vec2<f32>(-1.0, 1.0),
    );
    let c = corners[v];
    let p = mix(point_at(view.idx.y, i), point_at(view.idx.z, i), view.mixes.x);
    var out: VsOut;
    out.pos = vec4<f32>(to_clip(p) + c * view.px.xy * view.px.z, 0.0, 1.0);
    out.colour = vec4<f32>(particle_colour(i), view.px.w);
    out.local = c;
    return out;
}

// Trails: instance j is particle j * stride; vertices 2k, 2k + 1 are the segment from
// slot k to slot k + 1, up to the current slot.
@vertex
fn vs_trail(@builtin(vertex_index) v: u32, @builtin(instance_index) j: u32) -> VsOut {
    let i = j * view.idx.w;
    let slot = min(v / 2u + v % 2u, view.idx.y);
    var out: VsOut;
    out.pos = vec4<f32>(to_clip(point_at(slot, i)), 0.0, 1.0);
    out.colour = vec4<f32>(particle_colour(i), view.mixes.y);
    out.local = vec2<f32>(0.0);
    return out;
}

// Premultiplied alpha; round points.
@fragment
fn fs_point(in: VsOut) -> @location(0) vec4<f32> {
    let d = dot(in.local, in.local);
    if (d > 1.0) {
        discard;
    }
    let a = in.colour.a * (1.0 - smoothstep(0.6, 1.0, d));
    return vec4<f32>(in.colour.rgb * a, a);
}

@fragment
fn fs_trail(in: VsOut) -> @location(0) vec4<f32> {
    return vec4<f32>(in.colour.rgb * in.colour.a, in.colour.a);
}
