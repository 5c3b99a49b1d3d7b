// y[m, n] = scale · (x[m, k] · w[n, k]ᵀ)  (+ y when accumulating), all row-major f32.
//
// One kernel serves linear layers (w = weights [out, in], scale 1) and attention scores
// (w = K [t, d_k], scale 1/√d_k, causal mask: column j > row i gets -inf, as softmax
// will treat it). The product is summed in f32 and scaled afterwards, in the same order
// as the CPU path (sgemm, then `· scale`), so both differ only by summation order.
//
// 64×64 output tiles per workgroup of 16×16 invocations, each computing a 4×4 block of outputs
// (rows local.y + 16·i, columns local.x + 16·j) from registers: four times fewer workgroup
// memory reads per multiply-add than one output per invocation. x and w tiles of 16 along k
// are staged in workgroup memory, zero-padded past the edges so any shape works. Row tiles
// are spread over the y and z dispatch dimensions so that tall x (many tokens) stays within
// max_compute_workgroups_per_dimension.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // bit 0: accumulate into y; bit 1: causal mask
    flags: u32,
    scale: f32,
    // -inf, the value of masked scores. Passed in because WGSL's constant evaluation (Tint, in
    // Chromium) rejects a constant infinity, even through bitcast, and the whole shader with it.
    masked: f32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// Output tile edge; `TILE_K` values of k are staged per step.
const TILE: u32 = 64u;
const TILE_K: u32 = 16u;

// x_tile[r][kk] = x[row0 + r, k0 + kk]; w_tile[c][kk] = w[col0 + c, k0 + kk]
var<workgroup> x_tile: array<array<f32, 16>, 64>;
var<workgroup> w_tile: array<array<f32, 16>, 64>;

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
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
    let causal = (params.flags & 2u) != 0u;
    // A tile wholly above the diagonal is all masked: no products needed.
    let fully_masked = causal && col0 > row0 + TILE - 1u;

    var acc: array<array<f32, 4>, 4>;
    if (!fully_masked) {
        for (var k0 = 0u; k0 < params.k; k0 += TILE_K) {
            // 64×16 values per tile, 4 per invocation; consecutive lanes read consecutive k.
            for (var l = 0u; l < 4u; l++) {
                let at = l * 256u + lane;
                let r = at / TILE_K;
                let kk = k0 + at % TILE_K;
                var xv = 0.0;
                if (row0 + r < params.m && kk < params.k) {
                    xv = x[(row0 + r) * params.k + kk];
                }
                x_tile[r][at % TILE_K] = xv;
                var wv = 0.0;
                if (col0 + r < params.n && kk < params.k) {
                    wv = w[(col0 + r) * params.k + kk];
                }
                w_tile[r][at % TILE_K] = wv;
            }
            workgroupBarrier();
            for (var kk = 0u; kk < TILE_K; kk++) {
                var a: array<f32, 4>;
                var b: array<f32, 4>;
                for (var i = 0u; i < 4u; i++) {
                    a[i] = x_tile[local.y + 16u * i][kk];
                    b[i] = w_tile[local.x + 16u * i][kk];
                }
                for (var i = 0u; i < 4u; i++) {
                    for (var j = 0u; j < 4u; j++) {
                        acc[i][j] += a[i] * b[j];
                    }
                }
            }
            workgroupBarrier();
        }
    }

    for (var i = 0u; i < 4u; i++) {
        let row = row0 + local.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + local.x + 16u * j;
            if (row < params.m && col < params.n) {
                let at = row * params.n + col;
                var v = acc[i][j] * params.scale;
                if (causal && col > row) {
                    v = params.masked;
                } else if ((params.flags & 1u) != 0u) {
                    v += y[at];
                }
                y[at] = v;
            }
        }
    }
}
