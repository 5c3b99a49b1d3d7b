//! The shared backend test body (`backend_body/mod.rs`) on the CPU backend (`ModelWeights`);
//! rankscope-gpu runs the same body on the GPU.

mod backend_body;
use backend_body::{check_backend, final_checkpoint, tokens, RUNS};

#[test]
fn the_cpu_backend_gives_the_reference_losses_and_errors() {
    let eval = tokens("eval_tokens.safetensors");
    let heldout = tokens("heldout_tokens.safetensors");
    for run in RUNS {
        let (last, model) = final_checkpoint(run);
        let (_, worst) = check_backend(&model, run, &last, &eval, &heldout);
        println!("{run} on the CPU: worst |Δ loss| against the reference {worst:e}");
    }
}
