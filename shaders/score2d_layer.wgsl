// One hidden layer of the 2D score MLP (shared/src/score/mlp.rs) for PP particles:
// out = silu(W^T a + b), with W as 4x4 blocks (see sample2d.wgsl).
//
// A template: WGSL cannot pick a binding by index at run time, so the 2D sampler's
// generated header instantiates this function once per hidden layer l: the function's
// name, its weight binding and its bias row index get the layer's number (see
// `gpu::score2d::instantiate_layer`).
//
// The loops over p run over the invocation's PP particles: each weight block is loaded
// once for all of them (on a CPU adapter a load costs far more than a multiply-add), and
// each particle's activations stay in their own array.

fn hidden_layer_L(input: Acts) -> Acts {
    var a = input;
    var out: Acts;
    for (var jq = 0u; jq < Q; jq++) {
        let bias = sm.b[LAYER_L * Q + jq];
        var acc: array<vec4<f32>, PP>;
        for (var p = 0u; p < PP; p++) {
            acc[p] = bias;
        }
        for (var iq = 0u; iq < Q; iq++) {
            let w = layer_weights_L[iq * Q + jq];
            for (var p = 0u; p < PP; p++) {
                acc[p] += w * a[p][iq];
            }
        }
        for (var p = 0u; p < PP; p++) {
            out[p][jq] = silu4(acc[p]);
        }
    }
    return out;
}
