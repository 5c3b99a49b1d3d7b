//! PyTorch vs safetensors read cost: writes the same ~1 GB of tensors (16 F32
//! tensors of 64 MiB and a few small ones) as a safetensors file and as a
//! `torch.save`-format `.pt` (`formats::pytorch::write`: stored zip entries
//! and a protocol-2 pickle), then times locating the tensors (`read_header` vs
//! `pytorch::read_checkpoint`) and reading + decoding one 64 MiB tensor from
//! the middle of each file (`read_tensor_f32`), alternating files, and
//! reports the medians and their ratio. Both files are read through the page
//! cache (they were just written), so the ratio compares the readers, not the disk.
//!
//! `cargo run -p rankscope-core --release --example bench_read_pt [DIR]`
//! (default: the temp dir; the files are deleted at the end).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rankscope_core::formats::pytorch::{
    self,
    write::{write_state_dict, TensorOut},
};
use rankscope_core::formats::safetensors::{read_header, read_tensor_f32, Dtype, Header};
use rankscope_core::source::{block_on, FileSource};

const MIB: u64 = 1 << 20;
const BIG: u64 = 64 * MIB;
const ROWS: u64 = 4096;
const REPEATS: usize = 7;

/// (name, shape) of every F32 tensor, in file order.
fn specs() -> Vec<(String, [u64; 2])> {
    let mut specs = vec![
        ("embed.weight".to_string(), [512, 64]),
        ("norm.weight".to_string(), [1, 64]),
    ];
    for i in 0..16 {
        specs.push((format!("layers.{i}.weight"), [ROWS, BIG / 4 / ROWS]));
    }
    specs
}

/// Writes `numel` deterministic F32 values of tensor `k` (the same in both files).
fn write_values(w: &mut impl Write, k: usize, numel: u64) -> std::io::Result<()> {
    let mut chunk = Vec::with_capacity(MIB as usize);
    let mut i = 0u64;
    while i < numel {
        chunk.clear();
        while chunk.len() < MIB as usize && i < numel {
            let x = ((i % 1000) as f32 - 500.0) * 0.001 + k as f32;
            chunk.extend_from_slice(&x.to_le_bytes());
            i += 1;
        }
        w.write_all(&chunk)?;
    }
    Ok(())
}

fn numel(shape: &[u64; 2]) -> u64 {
    shape[0] * shape[1]
}

fn write_safetensors(path: &Path) -> std::io::Result<()> {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, shape) in specs() {
        let len = numel(&shape) * 4;
        header.insert(name, serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len]}));
        offset += len;
    }
    let mut json = serde_json::to_vec(&header)?;
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut w = BufWriter::with_capacity(4 << 20, std::fs::File::create(path)?);
    w.write_all(&(json.len() as u64).to_le_bytes())?;
    w.write_all(&json)?;
    for (k, (_, shape)) in specs().iter().enumerate() {
        write_values(&mut w, k, numel(shape))?;
    }
    w.flush()
}

fn write_pt(path: &Path) -> std::io::Result<()> {
    let w = BufWriter::with_capacity(4 << 20, std::fs::File::create(path)?);
    let tensors = specs()
        .into_iter()
        .enumerate()
        .map(|(k, (name, shape))| TensorOut {
            name,
            shape: shape.to_vec(),
            dtype: Dtype::F32,
            write: Box::new(move |w: &mut BufWriter<std::fs::File>| {
                write_values(w, k, numel(&shape))
            }),
        })
        .collect();
    write_state_dict(w, "bench", tensors)?.flush()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let st_path = dir.join(format!(
        "rankscope_bench_{}.safetensors",
        std::process::id()
    ));
    let pt_path = dir.join(format!("rankscope_bench_{}.pt", std::process::id()));
    let t = Instant::now();
    write_safetensors(&st_path)?;
    write_pt(&pt_path)?;
    let (st_len, pt_len) = (
        std::fs::metadata(&st_path)?.len(),
        std::fs::metadata(&pt_path)?.len(),
    );
    println!(
        "wrote {:.3} GB safetensors and {:.3} GB .pt in {:.2?}",
        st_len as f64 / 1e9,
        pt_len as f64 / 1e9,
        t.elapsed()
    );
    let result = bench(&st_path, &pt_path);
    std::fs::remove_file(&st_path)?;
    std::fs::remove_file(&pt_path)?;
    result
}

fn bench(st_path: &Path, pt_path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let (st_src, pt_src) = (FileSource::open(st_path)?, FileSource::open(pt_path)?);
    let (mut st_locate, mut pt_locate) = (Vec::new(), Vec::new());
    let (mut st_header, mut pt_header): (Option<Header>, Option<Header>) = (None, None);
    for _ in 0..REPEATS {
        let t = Instant::now();
        st_header = Some(read_header(&st_src)?);
        st_locate.push(t.elapsed());
        let t = Instant::now();
        pt_header = Some(block_on(pytorch::read_checkpoint(&pt_src))?.header);
        pt_locate.push(t.elapsed());
    }
    let (st_header, pt_header) = (st_header.ok_or("no header")?, pt_header.ok_or("no header")?);
    let name = "layers.7.weight";
    let (st_t, pt_t) = (
        st_header.tensor(name).ok_or("st tensor")?,
        pt_header.tensor(name).ok_or("pt tensor")?,
    );
    let (mut st_read, mut pt_read) = (Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        let t = Instant::now();
        let a = read_tensor_f32(&st_src, st_t)?;
        st_read.push(t.elapsed());
        let t = Instant::now();
        let b = read_tensor_f32(&pt_src, pt_t)?;
        pt_read.push(t.elapsed());
        assert!(a == b, "the two files give different values");
    }
    let (sl, pl) = (median(st_locate), median(pt_locate));
    let (sr, pr) = (median(st_read), median(pt_read));
    println!(
        "locate tensors ({} of them), median of {REPEATS}: safetensors {sl:.2?}, .pt {pl:.2?}",
        pt_header.tensors.len()
    );
    println!(
        "read + decode {name} ({} MiB at offset {} / {}), median of {REPEATS}: safetensors {sr:.2?}, .pt {pr:.2?}; ratio .pt / safetensors = {:.3}",
        st_t.len / MIB,
        st_t.start,
        pt_t.start,
        pr.as_secs_f64() / sr.as_secs_f64()
    );
    println!(
        "locate + read: safetensors {:.2?}, .pt {:.2?}; ratio {:.3}",
        sl + sr,
        pl + pr,
        (pl + pr).as_secs_f64() / (sl + sr).as_secs_f64()
    );
    Ok(())
}
