//! Timing of load + forward pass + activation spectra of a full-size reference
//! checkpoint, against the best single-thread f32 matmul measured in the same
//! run (everything runs on this one thread):
//!
//! `cargo run --release -p rankscope-core --example bench_forward` (`RANKSCOPE_BENCH_TOKENS=256` for another length)
//!
//! The clock is this thread's CPU time (`/proc/thread-self/schedstat`, ns) where
//! Linux has it: on a shared machine it estimates the time on an idle core
//! better than wall time; elsewhere it is wall time. The same body runs in
//! WebAssembly: `tests/web_bench.rs`.

#[path = "../benches/forward_common.rs"]
#[allow(dead_code)] // each benchmark uses its own part
mod forward_common;

#[path = "../benches/cpu_clock.rs"]
#[allow(dead_code)]
mod cpu_clock;

use cpu_clock::thread_cpu_ms;
use std::time::Instant;

fn main() {
    let start = Instant::now();
    let wall = move || start.elapsed().as_secs_f64() * 1e3;
    let tokens = forward_common::tokens_from(std::env::var("RANKSCOPE_BENCH_TOKENS").ok());
    let (clock, bench) = if thread_cpu_ms().is_some() {
        (
            "thread CPU time",
            forward_common::measure(&|| thread_cpu_ms().unwrap_or(0.0), tokens),
        )
    } else {
        ("wall time", forward_common::measure(&wall, tokens))
    };
    println!(
        "native ({clock}; whole run {:.1} s wall)\n{}",
        wall() / 1e3,
        forward_common::report(&bench, "native")
    );
}
