//! A synthetic checkpoint of the reference family whose tensor bytes are made on
//! demand: the core's benchmarks (`weights_common.rs`, `forward_common.rs`) and the
//! GPU crate's `gpu_bench` all measure on it.

use rankscope_core::source::ByteSource;
use std::io;

/// The reference architecture at the study's full size.
pub const LAYERS: usize = 22;
pub const D_MODEL: usize = 512;
pub const HEADS: usize = 8;
pub const KV_HEADS: usize = 4;
pub const D_K: usize = 64;
pub const D_FF: usize = 2048;
pub const VOCAB: usize = 49152;

/// The dimensions of a reference-family model (merged `qkvo_proj`, QK-norm).
#[derive(Debug, Clone, Copy)]
pub struct ReferenceShape {
    pub layers: usize,
    pub d_model: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub d_k: usize,
    pub d_ff: usize,
    pub vocab: usize,
}

/// The study's full size (the constants above).
pub const FULL_SIZE: ReferenceShape = ReferenceShape {
    layers: LAYERS,
    d_model: D_MODEL,
    heads: HEADS,
    kv_heads: KV_HEADS,
    d_k: D_K,
    d_ff: D_FF,
    vocab: VOCAB,
};

impl ReferenceShape {
    /// FLOPs of one forward pass over `t` tokens (2 per multiply-add): the
    /// blocks ([`ReferenceShape::block_flops`]) and the LM head.
    pub fn forward_flops(&self, t: usize) -> f64 {
        self.block_flops(t) + 2.0 * t as f64 * self.d_model as f64 * self.vocab as f64
    }

    /// FLOPs of a pass for K and Q over `t` tokens: every block but the last, of which it
    /// runs only the Q and K projections (nothing reads the rest; `Pass::block`).
    pub fn probe_pass_flops(&self, t: usize) -> f64 {
        let blocks = self.block_flops(t);
        let q_and_k_rows = ((self.heads + self.kv_heads) * self.d_k) as f64;
        let q_and_k = 2.0 * t as f64 * self.d_model as f64 * q_and_k_rows;
        blocks - blocks / self.layers as f64 + q_and_k
    }

    /// FLOPs of the blocks over `t` tokens: the projections, the MLP and causal attention
    /// (half of QKᵀ and P·V).
    pub fn block_flops(&self, t: usize) -> f64 {
        let (t, d, dk, ff) = (
            t as f64,
            self.d_model as f64,
            self.d_k as f64,
            self.d_ff as f64,
        );
        let (h, kv) = (self.heads as f64, self.kv_heads as f64);
        let projections = 2.0 * t * d * (2.0 * h * dk + 2.0 * kv * dk);
        let mlp = 2.0 * t * 2.0 * d * ff;
        let attention = 2.0 * h * t * t * dk; // causal: ½ · (2·t²·dk) for each of QKᵀ and PV
        self.layers as f64 * (projections + mlp + attention)
    }
}

/// A BF16 checkpoint whose tensor bytes are generated on demand from their
/// offset (a hash), so benchmarking holds no 177 MB buffer.
pub struct SyntheticCheckpoint {
    header: Vec<u8>,
    len: u64,
}

impl SyntheticCheckpoint {
    pub fn new() -> Self {
        Self::with_shape(FULL_SIZE)
    }

    /// A checkpoint of another size (the GPU benchmark's, which lavapipe must finish).
    pub fn with_shape(shape: ReferenceShape) -> Self {
        let ReferenceShape {
            layers,
            d_model,
            heads,
            kv_heads,
            d_k,
            d_ff,
            vocab,
        } = shape;
        let qkvo = (heads + 2 * kv_heads + heads) * d_k;
        let mut tensors: Vec<(String, Vec<usize>)> =
            vec![("token_embedding.weight".into(), vec![vocab, d_model])];
        for l in 0..layers {
            let p = format!("transformer_blocks.{l}");
            tensors.push((format!("{p}.attention.qkvo_proj"), vec![qkvo, d_model]));
            tensors.push((format!("{p}.attention.q_norm.weight"), vec![d_k]));
            tensors.push((format!("{p}.attention.k_norm.weight"), vec![d_k]));
            tensors.push((
                format!("{p}.feed_forward.up_proj.weight"),
                vec![d_ff, d_model],
            ));
            tensors.push((
                format!("{p}.feed_forward.down_proj.weight"),
                vec![d_model, d_ff],
            ));
            tensors.push((format!("{p}.norm1.weight"), vec![d_model]));
            tensors.push((format!("{p}.norm2.weight"), vec![d_model]));
        }
        tensors.push(("norm.weight".into(), vec![d_model]));
        let config = format!(
            r#"{{\"vocab_size\": {vocab}, \"d_model\": {d_model}, \"n_heads\": {heads}, \"n_kv_heads\": {kv_heads}, \"n_layers\": {layers}, \"d_ff\": {d_ff}, \"use_qk_norm\": true}}"#
        );
        let mut json = format!(r#"{{"__metadata__":{{"run":"synthetic","config":"{config}"}}"#);
        let mut offset = 0usize;
        for (name, shape) in &tensors {
            let bytes = shape.iter().product::<usize>() * 2;
            json.push_str(&format!(
                r#","{name}":{{"dtype":"BF16","shape":{shape:?},"data_offsets":[{offset},{}]}}"#,
                offset + bytes
            ));
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
