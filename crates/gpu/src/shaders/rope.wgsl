// RoPE of a token-major [t, heads·d_k] buffer (row p·heads + h is head h at position p),
// out of place: y = rotate(x), with the CPU's cos/sin table [t, d_k/2] (uploaded once per
// sequence length). style 0: torchtune's interleaved pairs (x[2i], x[2i+1]) (the reference
// model); style 1: Hugging Face rotate_half, pairs (x[i], x[i + d_k/2]) (Llama). One
// invocation per pair.

struct Params {
    rows: u32,
    heads: u32,
    half: u32,
    style: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> cos_table: array<f32>;
@group(0) @binding(3) var<storage, read> sin_table: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let pair = id.x + id.y * groups.x * 64u;
    if (pair >= params.rows * params.half) {
        return;
    }
    let row = pair / params.half;
    let i = pair % params.half;
    let position = row / params.heads;
    let base = row * 2u * params.half;
    var a_at = base + 2u * i;
    var b_at = a_at + 1u;
    if (params.style == 1u) {
        a_at = base + i;
        b_at = base + i + params.half;
    }
    let c = cos_table[position * params.half + i];
    let s = sin_table[position * params.half + i];
    let a = x[a_at];
    let b = x[b_at];
    y[a_at] = a * c - b * s;
    y[b_at] = b * c + a * s;
}
