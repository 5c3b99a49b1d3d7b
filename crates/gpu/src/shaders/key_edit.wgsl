// Surgery's key edit (METRICS.md "Surgery"), after the key norm and before RoPE: per kv-head h,
// k ← k·P_h with P_h d_k × d_k row-major — the SVD projector, or for a mask the diagonal of kept
// coordinates (k·diag(mask) is the masked k exactly). K is token-major [t, heads·d_k]; `edits`
// holds every layer's [heads, d_k, d_k], this layer's from `offset`. One invocation per output
// element, folded over x and y of the dispatch; the sum runs over i in the CPU's order.

struct Params {
    rows: u32,
    heads: u32,
    d_k: u32,
    offset: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> edits: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let at = id.x + id.y * groups.x * 64u;
    let d_k = params.d_k;
    let width = params.heads * d_k;
    if (at >= params.rows * width) {
        return;
    }
    let column = at % width;
    let head = column / d_k;
    let j = column % d_k;
    let base = at - j;
    let p = params.offset + head * d_k * d_k + j;
    var acc = 0.0;
    for (var i = 0u; i < d_k; i += 1u) {
        acc += k[base + i] * edits[p + i * d_k];
    }
    out[at] = acc;
}
