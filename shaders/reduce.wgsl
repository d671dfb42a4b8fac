// Workgroup sum for 256-wide kernels. Library file: one workgroup array and one
// function. Every invocation of the workgroup must call `workgroup_sum` (uniform control
// flow: it contains barriers).

const REDUCE_WG: u32 = 256u;

var<workgroup> reduce_scratch: array<f32, REDUCE_WG>;

// The sum over the workgroup of each invocation's `v`, returned to every invocation.
// Tree reduction in f32; the scratch array is free again when it returns.
fn workgroup_sum(lid: u32, v: f32) -> f32 {
    reduce_scratch[lid] = v;
    for (var s = REDUCE_WG / 2u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if (lid < s) {
            reduce_scratch[lid] += reduce_scratch[lid + s];
        }
    }
    workgroupBarrier();
    let total = reduce_scratch[0];
    // Everyone has read the total before the scratch can be written again.
    workgroupBarrier();
    return total;
}
