// x[p, c] = embedding[ids[p], c] · scale (√d_model for the reference model, 1 for Llama),
// one invocation per element of x [t, d_model]. Ids were checked against the vocabulary.

struct Params {
    len: u32,
    width: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> embedding: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let at = id.x + id.y * groups.x * 64u;
    if (at < params.len) {
        let p = at / params.width;
        x[at] = embedding[ids[p] * params.width + at % params.width] * params.scale;
    }
}
