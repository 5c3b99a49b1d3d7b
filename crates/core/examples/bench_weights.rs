//! Benchmark: every W_k/W_q spectrum of a full-size reference checkpoint,
//! natively. `cargo run --release -p rankscope-core --example bench_weights`.
//! The wasm twin: `crates/core/tests/web_bench.rs`.

#[path = "../benches/weights_common.rs"]
mod common;

fn main() {
    let start = std::time::Instant::now();
    let now = move || start.elapsed().as_secs_f64() * 1e3;
    println!("native\n{}", common::run(&now));
}
