// The held-out loss on the GPU, row by row: nll[out_offset + p] = −log softmax(logits[r])[ids[p + 1]]
// for row r of a chunk of the logits, p = row0 + r its position in the sequence (the last
// position has no target and is skipped). One workgroup per row: the max and the sum of
// exp(v − max) over the vocabulary are tree-reduced in f32 (the CPU takes them in f64; the
// difference is ~1e-7 relative, far inside the loss tolerance of 1e-4 nats).

struct Params {
    rows: u32,
    vocab: u32,
    row0: u32,
    t: u32,
    out_offset: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> nll: array<f32>;

const LANES: u32 = 64u;
var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    // Rows are folded over x and y of the dispatch; both tests are uniform per workgroup.
    let r = group.x + group.y * groups.x;
    if (r >= params.rows) {
        return;
    }
    let p = params.row0 + r;
    if (p + 1u >= params.t) {
        return;
    }
    let base = r * params.vocab;
    // Just above the lowest finite f32 (-3.4028234664e38): Tint (Chrome) refuses a literal
    // whose decimal value lies past f32's range, as -3.4028235e38 does, rather than round it.
    var m = -3.40282346e38;
    for (var c = lane; c < params.vocab; c += LANES) {
        m = max(m, logits[base + c]);
    }
    partial[lane] = m;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            partial[lane] = max(partial[lane], partial[lane + stride]);
        }
        workgroupBarrier();
    }
    let top = partial[0];
    workgroupBarrier();
    var sum = 0.0;
    for (var c = lane; c < params.vocab; c += LANES) {
        sum += exp(logits[base + c] - top);
    }
    partial[lane] = sum;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            partial[lane] += partial[lane + stride];
        }
        workgroupBarrier();
    }
    if (lane == 0u) {
        nll[params.out_offset + p] = top + log(partial[0]) - logits[base + ids[p + 1u]];
    }
}
