//! Writes the benchmarks' full-size synthetic checkpoint (`benches/synthetic_checkpoint.rs`:
//! the reference family at the study's size, BF16, bytes made from their offsets) to a file,
//! for `scripts/reference/bench_torch.py`, which runs the same model in PyTorch.
//!
//! `cargo run --release -p rankscope-core --example write_synthetic -- FILE`

#[path = "../benches/synthetic_checkpoint.rs"]
#[allow(dead_code)] // only the checkpoint itself is used here
mod synthetic_checkpoint;

use rankscope_core::source::ByteSource;
use std::io::Write;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: write_synthetic FILE");
        std::process::exit(2);
    };
    let synthetic = synthetic_checkpoint::SyntheticCheckpoint::new();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(1)
    }));
    // In 16 MiB pieces: the bytes are made as they are read, and never held whole.
    let len = synthetic.len();
    let mut offset = 0u64;
    while offset < len {
        let n = (len - offset).min(16 << 20) as usize;
        let bytes = synthetic.read_at(offset, n).expect("synthetic bytes");
        out.write_all(&bytes).expect("write");
        offset += n as u64;
    }
    out.flush().expect("write");
    eprintln!("wrote {path}: {len} bytes");
}
