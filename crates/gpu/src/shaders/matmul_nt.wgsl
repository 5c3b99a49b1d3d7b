// y[m, n] = scale · (x[m, k] · w[n, k]ᵀ)  (+ y when accumulating), all row-major f32.
//
// One kernel serves linear layers (w = weights [out, in], scale 1) and attention scores
// (w = K [t, d_k], scale 1/√d_k, causal mask: column j > row i gets -inf, as softmax
// will treat it). The product is summed in f32 and scaled afterwards, in the same order
// as the CPU path (sgemm, then `· scale`), so both differ only by summation order.
//
// 16×16 output tiles, one output per invocation; x and w tiles of 16 along k are staged in
// workgroup memory, zero-padded past the edges so any shape works. Row tiles are spread
// over the y and z dispatch dimensions so that tall x (many tokens) stays within
// max_compute_workgroups_per_dimension.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // bit 0: accumulate into y; bit 1: causal mask
    flags: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const TILE: u32 = 16u;

// x_tile[r][kk] = x[row r of the tile, k0 + kk]; w_tile[c][kk] = w[col c of the tile, k0 + kk]
var<workgroup> x_tile: array<array<f32, 16>, 16>;
var<workgroup> w_tile: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let tile_row = group.y + group.z * groups.y;
    let row0 = tile_row * TILE;
    let col0 = group.x * TILE;
    // Both tests depend only on the workgroup, so the barriers below stay in uniform control flow.
    if (row0 >= params.m) {
        return;
    }
    let row = row0 + local.y;
    let col = col0 + local.x;
    let causal = (params.flags & 2u) != 0u;
    // A tile wholly above the diagonal is all masked: no products needed.
    let fully_masked = causal && col0 > row0 + TILE - 1u;

    var acc = 0.0;
    if (!fully_masked) {
        for (var k0 = 0u; k0 < params.k; k0 += TILE) {
            let kk = k0 + local.x;
            var xv = 0.0;
            if (row < params.m && kk < params.k) {
                xv = x[row * params.k + kk];
            }
            x_tile[local.y][local.x] = xv;
            // The same invocation loads w row (col0 + local.y): consecutive invocations read consecutive k.
            let w_row = col0 + local.y;
            var wv = 0.0;
            if (w_row < params.n && kk < params.k) {
                wv = w[w_row * params.k + kk];
            }
            w_tile[local.y][local.x] = wv;
            workgroupBarrier();
            for (var i = 0u; i < TILE; i++) {
                acc += x_tile[local.y][i] * w_tile[local.x][i];
            }
            workgroupBarrier();
        }
    }

    if (row < params.m && col < params.n) {
        let at = row * params.n + col;
        var v = acc * params.scale;
        if (causal && col > row) {
            // -inf: the mask value softmax expects (exp → 0).
            v = bitcast<f32>(0xff800000u);
        } else if ((params.flags & 1u) != 0u) {
            v += y[at];
        }
        y[at] = v;
    }
}
