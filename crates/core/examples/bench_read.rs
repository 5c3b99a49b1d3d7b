//! Lazy-read benchmark: writes a ~1.1 GB safetensors file (15 F32 tensors of
//! 64 MiB, one BF16 tensor of 64 MiB, a few small ones), streaming, then times
//! `read_header` and reading + decoding one 64 MiB tensor from the middle via
//! `FileSource`, and reports peak RSS (`VmHWM`) against the tensor size: the
//! peak must follow the tensor, never the file.
//!
//! `cargo run -p rankscope-core --release --example bench_read [PATH]`
//! (default: a file in the temp dir, deleted at the end; a given PATH is kept).

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use rankscope_core::formats::safetensors::{
    read_header, read_tensor_bytes, read_tensor_f32, scan_values, Dtype,
};
use rankscope_core::source::FileSource;

const MIB: u64 = 1 << 20;
const BIG: u64 = 64 * MIB;

fn status_kib(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0); false if not possible.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (path, keep) = match std::env::args().nth(1) {
        Some(p) => (PathBuf::from(p), true),
        None => (
            std::env::temp_dir().join(format!(
                "rankscope_bench_{}.safetensors",
                std::process::id()
            )),
            false,
        ),
    };

    // Layout: small tensors first, then 16 big ones (BF16 at index 11).
    let mut specs: Vec<(String, Dtype, Vec<u64>)> = vec![
        ("embed.weight".into(), Dtype::F32, vec![512, 64]),
        ("norm.weight".into(), Dtype::F32, vec![64]),
        ("step".into(), Dtype::I64, vec![1]),
    ];
    for i in 0..16 {
        let dtype = if i == 11 { Dtype::BF16 } else { Dtype::F32 };
        let cols = BIG / (4096 * dtype.size_bytes() as u64);
        specs.push((format!("layers.{i}.weight"), dtype, vec![4096, cols]));
    }
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::json!({"format": "pt", "what": "rankscope bench_read"}),
    );
    let mut offset = 0u64;
    for (name, dtype, shape) in &specs {
        let len = shape.iter().product::<u64>() * dtype.size_bytes() as u64;
        header.insert(name.clone(), serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len]}));
        offset += len;
    }
    let mut json = serde_json::to_vec(&header)?;
    while json.len() % 8 != 0 {
        json.push(b' ');
    }

    let t0 = Instant::now();
    {
        let mut w = BufWriter::with_capacity(4 << 20, std::fs::File::create(&path)?);
        w.write_all(&(json.len() as u64).to_le_bytes())?;
        w.write_all(&json)?;
        let mut chunk = vec![0u8; MIB as usize];
        for (k, (_, dtype, shape)) in specs.iter().enumerate() {
            let numel: u64 = shape.iter().product();
            let mut left = numel * dtype.size_bytes() as u64;
            let mut i = 0u64;
            while left > 0 {
                // Deterministic values: element i of tensor k.
                let n = left.min(MIB) as usize;
                for c in chunk[..n].chunks_exact_mut(dtype.size_bytes()) {
                    let x = ((i % 1000) as f32 - 500.0) * 0.001 + k as f32;
                    match dtype {
                        Dtype::F32 => c.copy_from_slice(&x.to_le_bytes()),
                        Dtype::BF16 => c.copy_from_slice(&half::bf16::from_f32(x).to_le_bytes()),
                        _ => c.copy_from_slice(&i.to_le_bytes()),
                    }
                    i += 1;
                }
                w.write_all(&chunk[..n])?;
                left -= n as u64;
            }
        }
        w.flush()?;
    }
    let file_len = std::fs::metadata(&path)?.len();
    println!(
        "wrote {} ({:.2} GB, {} tensors) in {:.2?}",
        path.display(),
        file_len as f64 / 1e9,
        specs.len(),
        t0.elapsed()
    );
    println!(
        "RSS after writing: {}, peak so far {}",
        mib(status_kib("VmRSS:")),
        mib(status_kib("VmHWM:"))
    );

    let result = bench(&path, file_len);
    if !keep {
        std::fs::remove_file(&path)?;
        println!("deleted {}", path.display());
    }
    result
}

fn bench(path: &std::path::Path, file_len: u64) -> Result<(), Box<dyn std::error::Error>> {
    let src = FileSource::open(path)?;

    let t = Instant::now();
    let mut header = read_header(&src)?;
    let first = t.elapsed();
    for _ in 0..99 {
        header = read_header(&src)?;
    }
    let per = t.elapsed() / 100;
    println!(
        "(a) read_header: {} tensors, header {} bytes: first {first:.2?}, mean of 100 {per:.2?}",
        header.tensors.len(),
        header.header_len
    );

    let can_reset = reset_peak();
    let base = status_kib("VmRSS:");
    let mid = header
        .tensor("layers.7.weight")
        .ok_or("no layers.7.weight")?;
    let t = Instant::now();
    let values = read_tensor_f32(&src, mid)?;
    let took = t.elapsed();
    let peak = status_kib("VmHWM:");
    let size_mib = mid.len as f64 / MIB as f64;
    println!(
        "(b) read_tensor_f32 of {} ({} {:?}, {:.0} MiB at offset {}): {took:.2?} = {:.2} GB/s; check value {}",
        mid.name, mid.dtype, mid.shape, size_mib, mid.start, mid.len as f64 / 1e9 / took.as_secs_f64(), values[12345]
    );
    if let (Some(peak), Some(base)) = (peak, base) {
        let peak_mib = peak as f64 / 1024.0;
        println!(
            "    peak RSS {peak_mib:.1} MiB ({}), baseline before the read {:.1} MiB; peak / tensor = {:.2}, (peak - baseline) / tensor = {:.2}, file / tensor = {:.1}",
            if can_reset { "VmHWM reset before the read" } else { "VmHWM of the whole process" },
            base as f64 / 1024.0,
            peak_mib / size_mib,
            (peak_mib - base as f64 / 1024.0) / size_mib,
            file_len as f64 / mid.len as f64,
        );
    }
    drop(values);

    let t = Instant::now();
    let raw = read_tensor_bytes(&src, mid)?;
    let read_only = t.elapsed();
    let t = Instant::now();
    let scan = scan_values(&raw, mid.dtype);
    println!(
        "    read_tensor_bytes alone {read_only:.2?}; scan_values {:.2?} ({} non-finite)",
        t.elapsed(),
        scan.non_finite()
    );
    drop(raw);

    let bf = header
        .tensor("layers.11.weight")
        .ok_or("no layers.11.weight")?;
    let t = Instant::now();
    let values = read_tensor_f32(&src, bf)?;
    println!(
        "(c) read_tensor_f32 of {} ({} {:?}, {:.0} MiB → {:.0} MiB of f32): {:.2?}",
        bf.name,
        bf.dtype,
        bf.shape,
        bf.len as f64 / MIB as f64,
        (values.len() * 4) as f64 / MIB as f64,
        t.elapsed()
    );
    Ok(())
}
