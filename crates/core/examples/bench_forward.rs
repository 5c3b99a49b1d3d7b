//! Timing of load + forward pass + activation spectra of a full-size reference
//! checkpoint, against the best single-thread f32 matmul measured in the same
//! run (everything runs on this one thread):
//!
//! `cargo run --release -p rankscope-core --example bench_forward` (`RANKSCOPE_BENCH_TOKENS=256` for another length)
//!
//! The clock is this thread's CPU time (`clock_gettime`, `benches/cpu_clock.rs`) where
//! the platform has it: on a shared machine it estimates the time on an idle core
//! better than wall time; elsewhere it is wall time. The same body runs in
//! WebAssembly: `tests/web_bench.rs`.

#[path = "../benches/forward_common.rs"]
#[allow(dead_code)] // each benchmark uses its own part
mod forward_common;

#[path = "../benches/cpu_clock.rs"]
#[allow(dead_code)]
mod cpu_clock;

use std::time::Instant;

fn main() {
    let start = Instant::now();
    let tokens = forward_common::tokens_from(std::env::var("RANKSCOPE_BENCH_TOKENS").ok());
    let (clock, now) = cpu_clock::thread_clock();
    let bench = forward_common::measure(&*now, tokens);
    println!(
        "native ({clock}; whole run {:.1} s wall)\n{}",
        start.elapsed().as_secs_f64(),
        forward_common::report(&bench, "native")
    );
}
