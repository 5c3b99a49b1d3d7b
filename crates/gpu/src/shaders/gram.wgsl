// Partial Gram products G = XᵀX of the column blocks ("heads") of X [rows, stride] (row-major
// f32): block h is columns h·cols .. (h+1)·cols, and
//   partial[chunk][h][i][j] = Σ_{r in chunk} X[r, h·cols + i]·X[r, h·cols + j],
//   sums[chunk][h][j]       = Σ_{r in chunk} X[r, h·cols + j]   (for centring, G − s sᵀ/n),
// each written as an (hi, lo) f32 pair that the CPU adds up in f64. A plain Gram is one block
// (stride = cols); the forward pass's token-major [t, heads·d_k] K and Q give every head's
// d_k × d_k Gram in one dispatch, without a head-major copy. Splitting the rows into chunks
// gives parallelism when cols is small (64×64 outputs is only 16 workgroups) and keeps each
// f32 sum short. With `accumulate`, a pass adds to what partial and sums already hold (each
// eval sequence is one pass; the batch's Gram is their sum), so nothing is read back between
// sequences.
//
// `gram_compensated` keeps each sum as an unevaluated hi + lo pair ("double-f32"):
//   - the product a·b = p + e exactly (Dekker's TwoProduct), with a and b split into
//     12-bit halves by masking mantissa bits, so every partial product is exact in f32
//     whether or not the compiler fuses multiply-adds;
//   - the sum hi + p = s + err exactly (Knuth's TwoSum), err and e go to lo.
// `gram_plain` is the naive f32 sum, kept to measure what the compensation buys (its column
// sums are compensated all the same: they are not what it measures).
//
// Only tiles on or above the diagonal (tile j ≥ tile i) are computed; the CPU mirrors them.
// The diagonal tiles' first row of invocations also sums their columns.

struct Params {
    rows: u32,
    // Columns of one block (d_k).
    cols: u32,
    chunk_rows: u32,
    // Always 0, but the compiler cannot know it: see `opaque`.
    zero: u32,
    // X's row length in elements (blocks · cols).
    stride: u32,
    blocks: u32,
    // 1: add to partial/sums instead of overwriting them.
    accumulate: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// [chunks][blocks][cols][cols][2]: (hi, lo)
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
// [chunks][blocks][cols][2]: (hi, lo)
@group(0) @binding(3) var<storage, read_write> sums: array<f32>;

const TILE: u32 = 16u;

// xi_tile[r][c] = X[r0 + r, i0 + c]; xj_tile[r][c] = X[r0 + r, j0 + c] (within the block)
var<workgroup> xi_tile: array<array<f32, 16>, 16>;
var<workgroup> xj_tile: array<array<f32, 16>, 16>;

fn split_high(a: f32) -> f32 {
    // The top 12 significant bits (implicit bit + 11 stored): a bit mask, not Veltkamp's
    // multiply, which a fused multiply-add could make inexact.
    return bitcast<f32>(bitcast<u32>(a) & 0xfffff000u);
}

// Hides a value from the compiler's float optimisations. Mesa's NIR (lavapipe) treats SPIR-V
// float ops as reassociable and fusable: it rewrites TwoSum's `s - (s - hi)` to `hi` and fuses
// `hi + a * b` into one fma, either of which breaks the error-free transformations. An integer
// xor with a runtime zero is exact, but no float pattern can match through it.
fn opaque(v: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(v) ^ params.zero);
}

// (hi, lo) += v with TwoSum: hi + v = s + err exactly; err goes to lo.
fn add_compensated(hi: ptr<function, f32>, lo: ptr<function, f32>, v: f32) {
    let s = opaque(*hi + v);
    let b_virtual = opaque(s - *hi);
    let err = (*hi - (s - b_virtual)) + (v - b_virtual);
    *hi = s;
    *lo += err;
}

fn load_tiles(r0: u32, end: u32, column0: u32, i0: u32, j0: u32, local: vec3<u32>) {
    let r = r0 + local.y;
    var vi = 0.0;
    var vj = 0.0;
    if (r < end) {
        if (i0 + local.x < params.cols) {
            vi = x[r * params.stride + column0 + i0 + local.x];
        }
        if (j0 + local.x < params.cols) {
            vj = x[r * params.stride + column0 + j0 + local.x];
        }
    }
    xi_tile[local.y][local.x] = vi;
    xj_tile[local.y][local.x] = vj;
}

// Writes (or, accumulating, adds with TwoSum) a (hi, lo) pair at partial[at], partial[at + 1].
fn store_partial(at: u32, hi: f32, lo: f32) {
    var new_hi = hi;
    var new_lo = lo;
    if (params.accumulate != 0u) {
        new_hi = partial[at];
        new_lo = partial[at + 1u] + lo;
        add_compensated(&new_hi, &new_lo, hi);
    }
    partial[at] = new_hi;
    partial[at + 1u] = new_lo;
}

fn store_sum(at: u32, hi: f32, lo: f32) {
    var new_hi = hi;
    var new_lo = lo;
    if (params.accumulate != 0u) {
        new_hi = sums[at];
        new_lo = sums[at + 1u] + lo;
        add_compensated(&new_hi, &new_lo, hi);
    }
    sums[at] = new_hi;
    sums[at + 1u] = new_lo;
}

// One output (i, j) of one block and chunk: where it goes, and whether it exists.
fn store(i: u32, j: u32, chunk_block: u32, hi: f32, lo: f32) {
    if (i < params.cols && j < params.cols) {
        store_partial(((chunk_block * params.cols + i) * params.cols + j) * 2u, hi, lo);
    }
}

// What one workgroup covers: output tile (i0, j0) of one block, over one chunk of rows.
struct Span {
    i0: u32,
    j0: u32,
    // z = chunk · blocks + block
    chunk_block: u32,
    // The block's first column in X.
    column0: u32,
    start: u32,
    end: u32,
    // A tile on the diagonal: its first row of invocations also sums their columns.
    diagonal: bool,
}

// Only from the workgroup id, so the span is uniform: the row loop around workgroupBarrier may
// depend on it (Chromium's compiler rejects a loop bound that depends on the invocation).
fn span_of(group: vec3<u32>) -> Span {
    let chunk = group.z / params.blocks;
    let start = chunk * params.chunk_rows;
    return Span(
        group.y * TILE,
        group.x * TILE,
        group.z,
        (group.z % params.blocks) * params.cols,
        start,
        min(params.rows, start + params.chunk_rows),
        group.x == group.y,
    );
}

// Stores an invocation's Gram entry and, if it sums one, its column's sum.
fn store_results(span: Span, local: vec3<u32>, sums_column: bool, hi: f32, lo: f32, sum_hi: f32, sum_lo: f32) {
    store(span.i0 + local.y, span.j0 + local.x, span.chunk_block, hi, lo);
    let j = span.j0 + local.x;
    if (sums_column && j < params.cols) {
        store_sum((span.chunk_block * params.cols + j) * 2u, sum_hi, sum_lo);
    }
}

@compute @workgroup_size(16, 16, 1)
fn gram_compensated(
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(workgroup_id) group: vec3<u32>,
) {
    if (group.x < group.y) {
        return;
    }
    let span = span_of(group);
    let sums_column = span.diagonal && local.y == 0u;
    var hi = 0.0;
    var lo = 0.0;
    var sum_hi = 0.0;
    var sum_lo = 0.0;
    for (var r0 = span.start; r0 < span.end; r0 += TILE) {
        load_tiles(r0, span.end, span.column0, span.i0, span.j0, local);
        workgroupBarrier();
        for (var r = 0u; r < TILE; r++) {
            let a = xi_tile[r][local.y];
            let b = xj_tile[r][local.x];
            // Opaque too: else `hi + a * b` below fuses into fma(a, b, hi), whose s is no
            // longer hi + p and TwoSum's identity fails. On lavapipe, with a float-only barrier
            // (· runtime 1.0) the error stayed at 2.5e-9 of Σ|x||x|; with the xor, 1.3e-13.
            let p = opaque(a * b);
            let a_high = split_high(a);
            let a_low = a - a_high;
            let b_high = split_high(b);
            let b_low = b - b_high;
            // Each partial sum is pinned: reassociated, Dekker's sum is no longer exact.
            let p_err = opaque(opaque(opaque(a_high * b_high - p) + a_high * b_low) + a_low * b_high) + a_low * b_low;
            // TwoSum written out, not `add_compensated(&hi, &lo, p)`: through the pointers,
            // lavapipe's λ_min error at κ = 1e4 (tests/parity.rs) grew from 2.7e-10 to 1.2e-7.
            let s = opaque(hi + p);
            let b_virtual = opaque(s - hi);
            let s_err = (hi - (s - b_virtual)) + (p - b_virtual);
            hi = s;
            lo += s_err + p_err;
            if (sums_column) {
                add_compensated(&sum_hi, &sum_lo, b);
            }
        }
        workgroupBarrier();
    }
    store_results(span, local, sums_column, hi, lo, sum_hi, sum_lo);
}

@compute @workgroup_size(16, 16, 1)
fn gram_plain(
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(workgroup_id) group: vec3<u32>,
) {
    if (group.x < group.y) {
        return;
    }
    let span = span_of(group);
    let sums_column = span.diagonal && local.y == 0u;
    var sum = 0.0;
    var sum_hi = 0.0;
    var sum_lo = 0.0;
    for (var r0 = span.start; r0 < span.end; r0 += TILE) {
        load_tiles(r0, span.end, span.column0, span.i0, span.j0, local);
        workgroupBarrier();
        for (var r = 0u; r < TILE; r++) {
            sum += xi_tile[r][local.y] * xj_tile[r][local.x];
            if (sums_column) {
                add_compensated(&sum_hi, &sum_lo, xj_tile[r][local.x]);
            }
        }
        workgroupBarrier();
    }
    store_results(span, local, sums_column, sum, 0.0, sum_hi, sum_lo);
}
