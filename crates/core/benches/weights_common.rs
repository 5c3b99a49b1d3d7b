//! Shared body of the weight-spectra benchmark (native example and wasm test):
//! a synthetic checkpoint of the full reference size, all W_k/W_q spectra, and
//! a single-thread f32 matmul measured in the same run for the ratio.

use rankscope_core::analysis::weights::{weight_spectra, Shards};
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::model::arch::{recognise, Recognition};
use rankscope_core::source::{block_on, ByteSource};
use std::io;

/// The reference architecture at the study's full size.
pub const LAYERS: usize = 22;
pub const D_MODEL: usize = 512;
pub const HEADS: usize = 8;
pub const KV_HEADS: usize = 4;
pub const D_K: usize = 64;
pub const D_FF: usize = 2048;
pub const VOCAB: usize = 49152;

/// A BF16 checkpoint whose tensor bytes are generated on demand from their
/// offset (a hash), so benchmarking holds no 177 MB buffer.
pub struct SyntheticCheckpoint {
    header: Vec<u8>,
    len: u64,
}

impl SyntheticCheckpoint {
    pub fn new() -> Self {
        let qkvo = (HEADS + 2 * KV_HEADS + HEADS) * D_K;
        let mut tensors: Vec<(String, Vec<usize>)> = vec![("token_embedding.weight".into(), vec![VOCAB, D_MODEL])];
        for l in 0..LAYERS {
            let p = format!("transformer_blocks.{l}");
            tensors.push((format!("{p}.attention.qkvo_proj"), vec![qkvo, D_MODEL]));
            tensors.push((format!("{p}.attention.q_norm.weight"), vec![D_K]));
            tensors.push((format!("{p}.attention.k_norm.weight"), vec![D_K]));
            tensors.push((format!("{p}.feed_forward.up_proj.weight"), vec![D_FF, D_MODEL]));
            tensors.push((format!("{p}.feed_forward.down_proj.weight"), vec![D_MODEL, D_FF]));
            tensors.push((format!("{p}.norm1.weight"), vec![D_MODEL]));
            tensors.push((format!("{p}.norm2.weight"), vec![D_MODEL]));
        }
        tensors.push(("norm.weight".into(), vec![D_MODEL]));
        let config = format!(
            r#"{{\"vocab_size\": {VOCAB}, \"d_model\": {D_MODEL}, \"n_heads\": {HEADS}, \"n_kv_heads\": {KV_HEADS}, \"n_layers\": {LAYERS}, \"d_ff\": {D_FF}, \"use_qk_norm\": true}}"#
        );
        let mut json = format!(r#"{{"__metadata__":{{"run":"synthetic","config":"{config}"}}"#);
        let mut offset = 0usize;
        for (name, shape) in &tensors {
            let bytes = shape.iter().product::<usize>() * 2;
            json.push_str(&format!(r#","{name}":{{"dtype":"BF16","shape":{shape:?},"data_offsets":[{offset},{}]}}"#, offset + bytes));
            offset += bytes;
        }
        json.push('}');
        while json.len() % 8 != 0 {
            json.push(' ');
        }
        let mut header = (json.len() as u64).to_le_bytes().to_vec();
        header.extend_from_slice(json.as_bytes());
        let len = header.len() as u64 + offset as u64;
        Self { header, len }
    }

    pub fn params(&self) -> u64 {
        (self.len - self.header.len() as u64) / 2
    }
}

impl Default for SyntheticCheckpoint {
    fn default() -> Self {
        Self::new()
    }
}

/// A bf16 in about ±0.05 from the element index (splitmix-style hash).
fn value_bits(element: u64) -> u16 {
    let mut z = element.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let uniform = (z >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    half::bf16::from_f32(((uniform - 0.5) * 0.1) as f32).to_bits()
}

impl ByteSource for SyntheticCheckpoint {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        if offset + len as u64 > self.len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "past the end"));
        }
        let h = self.header.len() as u64;
        let mut out = Vec::with_capacity(len);
        let mut pos = offset;
        let end = offset + len as u64;
        while pos < end {
            if pos < h {
                out.push(self.header[pos as usize]);
                pos += 1;
                continue;
            }
            // One hash per bf16 element; tensors start at even offsets.
            let rel = pos - h;
            let bytes = value_bits(rel / 2).to_le_bytes();
            let from = (rel % 2) as usize;
            let take = (2 - from).min((end - pos) as usize);
            out.extend_from_slice(&bytes[from..from + take]);
            pos += take as u64;
        }
        Ok(out)
    }
}

/// Runs the benchmark; `now_ms` is the platform's clock. Returns a report.
pub fn run(now_ms: &dyn Fn() -> f64) -> String {
    let ckpt = SyntheticCheckpoint::new();
    let t0 = now_ms();
    let header = read_header(&ckpt).expect("synthetic header");
    let tensors: Vec<_> = header.tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect();
    let Recognition::Known(arch) = recognise(&tensors, &header.metadata, None) else { panic!("synthetic checkpoint not recognised") };
    let t_header = now_ms() - t0;

    // All W_k (4 per layer) and W_q (8 per layer) blocks: 264 matrices of 64 × 512.
    let mut best_spectra = f64::INFINITY;
    for _ in 0..3 {
        let t = now_ms();
        let ws = block_on(weight_spectra(&Shards::single(&header, &ckpt), &arch, &mut |_| {})).expect("spectra");
        best_spectra = best_spectra.min(now_ms() - t);
        assert_eq!(ws.layers.len(), LAYERS);
    }
    // The same bytes read and decoded without any SVD: the I/O share.
    let t = now_ms();
    let mut read_only = 0usize;
    for l in 0..LAYERS {
        let loc = rankscope_core::model::arch::WeightLoc::Rows {
            tensor: format!("transformer_blocks.{l}.attention.qkvo_proj"),
            start: 0,
            end: (HEADS + KV_HEADS) * D_K,
        };
        read_only += block_on(Shards::single(&header, &ckpt).read_block(&loc)).expect("read").0.len();
    }
    let t_read = now_ms() - t;

    // Single-thread f32 matmul, 512 × 512 × 512, best of 5: the machine's yardstick.
    let n = 512;
    let a = nalgebra::DMatrix::<f32>::from_fn(n, n, |i, j| ((i * 7 + j * 3) % 13) as f32 * 0.01);
    let b = nalgebra::DMatrix::<f32>::from_fn(n, n, |i, j| ((i * 5 + j * 11) % 17) as f32 * 0.01);
    let mut best_mm = f64::INFINITY;
    let mut sink = 0.0f32;
    for _ in 0..5 {
        let t = now_ms();
        let c = &a * &b;
        best_mm = best_mm.min(now_ms() - t);
        sink += c[(1, 2)];
    }
    let gflops = 2.0 * (n * n * n) as f64 / (best_mm * 1e6);
    // FLOPs of the Gram products the spectra need: 264 blocks of (64×512)·(512×64).
    let blocks = LAYERS * (HEADS + KV_HEADS);
    let gram_gflop = blocks as f64 * 2.0 * (D_K * D_K * D_MODEL) as f64 / 1e9;
    format!(
        "synthetic reference checkpoint: {LAYERS} layers, d_model {D_MODEL}, {HEADS}/{KV_HEADS} heads, d_ff {D_FF}, vocab {VOCAB}, {} params (BF16)\n\
         header + recognition: {t_header:.2} ms\n\
         all weight spectra ({blocks} blocks of {D_K}×{D_MODEL}, f64): {best_spectra:.1} ms (best of 3)\n\
         of which reading + decoding the blocks: {t_read:.1} ms ({read_only} values)\n\
         f32 matmul {n}³ single thread: {best_mm:.2} ms = {gflops:.1} GFLOP/s (sink {sink:.1})\n\
         ratio spectra / one {n}³ matmul: {:.1}; spectra Gram work {gram_gflop:.3} GFLOP → {:.2} GFLOP/s effective ({:.0}% of matmul peak)",
        ckpt.params(),
        best_spectra / best_mm,
        gram_gflop / (best_spectra / 1e3),
        100.0 * (gram_gflop / (best_spectra / 1e3)) / gflops,
    )
}
