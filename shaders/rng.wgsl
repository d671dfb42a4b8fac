// Counter-based random numbers keyed by (seed, stream, step, index): the WGSL
// twin of `shared/src/rng.rs`. Integer parts agree bit for bit with Rust;
// `rng_normal` agrees to f32 rounding of log/sqrt/cos.
// Library file: functions only, composed in front of the kernels that use it.

// One round of the triple32 integer hash (full avalanche).
fn rng_mix32(x0: u32) -> u32 {
    var x = x0;
    x ^= x >> 17u;
    x *= 0xed5ad4bbu;
    x ^= x >> 11u;
    x *= 0xac4c1b51u;
    x ^= x >> 15u;
    x *= 0x31848babu;
    x ^= x >> 14u;
    return x;
}

// Hashes a four-word key into one 32-bit word.
fn rng_hash4(seed: u32, stream: u32, step: u32, index: u32) -> u32 {
    var h = rng_mix32(seed ^ 0x9e3779b9u);
    h = rng_mix32(h ^ stream);
    h = rng_mix32((h + step) * 0x85ebca6bu);
    return rng_mix32(h ^ index);
}

// 32 random bits to a uniform strictly inside (0, 1): (top 23 bits + 0.5) / 2^23, exact in f32.
fn rng_unit(bits: u32) -> f32 {
    return (f32(bits >> 9u) + 0.5) * (1.0 / 8388608.0);
}

// A uniform in (0, 1) for draw `index` of the family (seed, stream, step).
fn rng_uniform(seed: u32, stream: u32, step: u32, index: u32) -> f32 {
    return rng_unit(rng_hash4(seed, stream, step, index));
}

// A standard normal by Box-Muller on draws 2 index and 2 index + 1.
// cos(2 pi u) is evaluated as -cos(2 pi (u - 1/2)) so its argument stays in [-pi, pi],
// where WGSL's accuracy guarantee holds; u - 1/2 is exact in f32.
fn rng_normal(seed: u32, stream: u32, step: u32, index: u32) -> f32 {
    let u1 = rng_uniform(seed, stream, step, index * 2u);
    let u2 = rng_uniform(seed, stream, step, index * 2u + 1u);
    return -sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * (u2 - 0.5));
}
