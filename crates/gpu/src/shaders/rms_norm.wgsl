// y[r, :] = x[r, :] / √(mean(x[r, :]²) + eps) · γ for each `width`-long row r: the pre-norms
// (width d_model) and the per-head q/k norms (width d_k: a token-major [t, heads·d_k] buffer
// is [t·heads, d_k] rows). One workgroup per row; the mean of squares is summed in f32
// (the CPU sums in f64; the difference is ~1e-7 relative, far inside the parity tolerance),
// and the result is formed in the CPU's order, x · inv · γ.

struct Params {
    rows: u32,
    width: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const LANES: u32 = 64u;
var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    // Rows are folded over x and y of the dispatch; the test is uniform per workgroup.
    let row = group.x + group.y * groups.x;
    if (row >= params.rows) {
        return;
    }
    let base = row * params.width;
    var sum = 0.0;
    for (var c = lane; c < params.width; c += LANES) {
        let v = x[base + c];
        sum += v * v;
    }
    partial[lane] = sum;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            partial[lane] += partial[lane + stride];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / sqrt(partial[0] / f32(params.width) + params.eps);
    for (var c = lane; c < params.width; c += LANES) {
        y[base + c] = x[base + c] * inv * gamma[c];
    }
}
