// Causal softmax attention of every query head, reading heads in place from the token-major
// projections (no head-major copies): q [t, n_heads·d_k], k and v [t, n_kv·d_k] (q and k after
// RoPE); query head h reads kv-head h / group (GQA). One workgroup per (query row i, head h):
//   1. s_j = (q_i · k_j) · scale for j ≤ i, into `scores` (row (h·t + i) of [n_heads·t, t]);
//   2. p_j = exp(s_j − max) / Σ exp, in place, in the CPU's order (product, then · scale,
//      then − max; the probabilities normalised before they weight V);
//   3. out[i, h·d_k + c] = Σ_j p_j v[j, kv·d_k + c].
// Keys past i are never read (the mask), so no -inf is needed.

struct Params {
    t: u32,
    n_heads: u32,
    n_kv: u32,
    d_k: u32,
    scale: f32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> scores: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const LANES: u32 = 64u;
// Below any finite score; a constant -inf would not compile in Chromium.
const LOWEST: f32 = -3.0e38;
var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let index = group.x + group.y * groups.x;
    if (index >= params.t * params.n_heads) {
        return;
    }
    let i = index / params.n_heads;
    let h = index % params.n_heads;
    let d_k = params.d_k;
    let kv = h / (params.n_heads / params.n_kv);
    let q_at = (i * params.n_heads + h) * d_k;
    let kv_width = params.n_kv * d_k;
    let s_at = (h * params.t + i) * params.t;

    var local_max = LOWEST;
    for (var j = lane; j <= i; j += LANES) {
        let k_at = j * kv_width + kv * d_k;
        var dot = 0.0;
        for (var c = 0u; c < d_k; c++) {
            dot += q[q_at + c] * k[k_at + c];
        }
        let s = dot * params.scale;
        scores[s_at + j] = s;
        local_max = max(local_max, s);
    }
    partial[lane] = local_max;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            partial[lane] = max(partial[lane], partial[lane + stride]);
        }
        workgroupBarrier();
    }
    let row_max = partial[0];
    workgroupBarrier();

    var local_sum = 0.0;
    for (var j = lane; j <= i; j += LANES) {
        let e = exp(scores[s_at + j] - row_max);
        scores[s_at + j] = e;
        local_sum += e;
    }
    partial[lane] = local_sum;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            partial[lane] += partial[lane + stride];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / partial[0];
    // Step 3 reads every lane's exponentials from storage.
    storageBarrier();

    let out_at = (i * params.n_heads + h) * d_k;
    for (var c = lane; c < d_k; c += LANES) {
        var acc = 0.0;
        for (var j = 0u; j <= i; j++) {
            acc += (scores[s_at + j] * inv) * v[j * kv_width + kv * d_k + c];
        }
        out[out_at + c] = acc;
    }
}
