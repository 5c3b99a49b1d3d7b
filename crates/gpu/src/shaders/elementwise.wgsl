// The MLP's activations, in place, one invocation per element (folded over x and y of the
// dispatch), with the CPU's formulas: relu² (reference) and silu(gate)·up (SwiGLU).

struct Params {
    len: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<uniform> params: Params;

fn element(id: vec3<u32>, groups: vec3<u32>) -> u32 {
    return id.x + id.y * groups.x * 64u;
}

// relu_squared: x = max(x, 0)²; silu_mul: gate = gate / (1 + exp(−gate)) · up.
@group(0) @binding(1) var<storage, read_write> values: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn relu_squared(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let at = element(id, groups);
    if (at < params.len) {
        let r = max(values[at], 0.0);
        values[at] = r * r;
    }
}

@compute @workgroup_size(64, 1, 1)
fn silu_mul(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let at = element(id, groups);
    if (at < params.len) {
        let g = values[at];
        values[at] = g / (1.0 + exp(-g)) * up[at];
    }
}
