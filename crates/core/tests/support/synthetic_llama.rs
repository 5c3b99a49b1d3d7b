//! A Llama checkpoint made up on the fly, for the streaming tests (native and wasm): a
//! `ByteSource` that serves a real safetensors header (Llama tensor names, BF16) and data
//! bytes computed from their offset, so a 13.5 GB Llama-2-7B-shaped checkpoint costs neither
//! disk nor memory. Element `i` of a tensor is the BF16 (truncated) of a uniform value in
//! ±√(3/fan_in) drawn by SplitMix64 from (tensor index, i); norm weights are 1.0.

use rankscope_core::formats::safetensors::{read_header, Header};
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::model::arch::{recognise, Architecture, Recognition};
use rankscope_core::source::ByteSource;
use std::io;
use std::sync::Mutex;

/// The shape of a Llama checkpoint to make up.
#[derive(Clone, Copy)]
pub struct Shape {
    pub layers: usize,
    pub d_model: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub d_ff: usize,
    pub vocab: usize,
}

pub const LLAMA2_7B: Shape = Shape {
    layers: 32,
    d_model: 4096,
    heads: 32,
    kv_heads: 32,
    d_ff: 11008,
    vocab: 32000,
};

impl Shape {
    /// `(name, [rows, cols] or [len], fan_in)` in file order; fan-in 0 marks a norm weight.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>, usize)> {
        let (d, f) = (self.d_model, self.d_ff);
        let kv = self.kv_heads * d / self.heads;
        let mut out = vec![(
            "model.embed_tokens.weight".to_string(),
            vec![self.vocab, d],
            d,
        )];
        for l in 0..self.layers {
            let p = format!("model.layers.{l}");
            out.extend([
                (format!("{p}.input_layernorm.weight"), vec![d], 0),
                (format!("{p}.self_attn.q_proj.weight"), vec![d, d], d),
                (format!("{p}.self_attn.k_proj.weight"), vec![kv, d], d),
                (format!("{p}.self_attn.v_proj.weight"), vec![kv, d], d),
                (format!("{p}.self_attn.o_proj.weight"), vec![d, d], d),
                (format!("{p}.post_attention_layernorm.weight"), vec![d], 0),
                (format!("{p}.mlp.gate_proj.weight"), vec![f, d], d),
                (format!("{p}.mlp.up_proj.weight"), vec![f, d], d),
                (format!("{p}.mlp.down_proj.weight"), vec![d, f], f),
            ]);
        }
        out.push(("model.norm.weight".to_string(), vec![d], 0));
        out.push(("lm_head.weight".to_string(), vec![self.vocab, d], d));
        out
    }

    /// The Hugging Face `config.json` of this shape.
    pub fn config(&self) -> serde_json::Value {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.d_model,
            "intermediate_size": self.d_ff,
            "num_attention_heads": self.heads,
            "num_hidden_layers": self.layers,
            "num_key_value_heads": self.kv_heads,
            "vocab_size": self.vocab,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "max_position_embeddings": 4096,
            "tie_word_embeddings": false,
            "torch_dtype": "bfloat16"
        })
    }

    /// f32 bytes of one block's weights (what a streamed pass holds).
    pub fn block_f32_bytes(&self) -> usize {
        let (d, f) = (self.d_model, self.d_ff);
        let kv = self.kv_heads * d / self.heads;
        4 * (2 * d * d + 2 * kv * d + 3 * d * f + 2 * d)
    }
}

/// The reads of a [`Synthetic`]: `(offset, len, live bytes)` each.
pub type ReadLog = Mutex<Vec<(u64, usize, usize)>>;

/// A safetensors file whose data bytes are computed from their offset (module doc).
pub struct Synthetic {
    pub header: Vec<u8>,
    /// `(data start, data end, fan-in, seed)` of each tensor, in file order (absolute offsets).
    pub spans: Vec<(u64, u64, usize, u64)>,
    pub len: u64,
    /// Every read `(offset, len, live())` when recording, `live` the caller's count of bytes
    /// allocated at the time.
    pub reads: Option<(ReadLog, fn() -> usize)>,
}

impl Synthetic {
    /// The checkpoint of `shape`; every read is recorded when `record` gives a live-bytes count.
    pub fn new(shape: &Shape, record: Option<fn() -> usize>) -> Self {
        let tensors = shape.tensors();
        let mut json = serde_json::Map::new();
        let mut at = 0u64;
        let mut rel = Vec::new();
        for (name, dims, fan_in) in &tensors {
            let bytes = 2 * dims.iter().product::<usize>() as u64;
            json.insert(
                name.clone(),
                serde_json::json!({"dtype": "BF16", "shape": dims, "data_offsets": [at, at + bytes]}),
            );
            rel.push((at, at + bytes, *fan_in));
            at += bytes;
        }
        let mut text = serde_json::to_vec(&json).expect("json");
        while !text.len().is_multiple_of(8) {
            text.push(b' ');
        }
        let mut header = (text.len() as u64).to_le_bytes().to_vec();
        header.extend(text);
        let base = header.len() as u64;
        let spans = rel
            .into_iter()
            .enumerate()
            .map(|(i, (s, e, f))| (base + s, base + e, f, i as u64))
            .collect();
        Self {
            header,
            spans,
            len: base + at,
            reads: record.map(|live| (Mutex::new(Vec::new()), live)),
        }
    }

    /// BF16 bits of element `i` of the tensor with this fan-in and seed.
    fn element(fan_in: usize, seed: u64, i: u64) -> u16 {
        if fan_in == 0 {
            return 0x3f80; // 1.0
        }
        let mut z = (seed << 40 ^ i).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let u = (z >> 40) as f32 / (1u64 << 24) as f32;
        let v = (2.0 * u - 1.0) * (3.0 / fan_in as f32).sqrt();
        (v.to_bits() >> 16) as u16
    }
}

impl ByteSource for Synthetic {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let end = offset
            .checked_add(len as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "past the end"))?;
        if let Some((reads, live)) = &self.reads {
            reads.lock().expect("reads").push((offset, len, live()));
        }
        let mut out = Vec::with_capacity(len);
        let mut p = offset;
        while p < end {
            if p < self.header.len() as u64 {
                let stop = end.min(self.header.len() as u64);
                out.extend_from_slice(&self.header[p as usize..stop as usize]);
                p = stop;
                continue;
            }
            let t = self.spans.partition_point(|s| s.1 <= p);
            let (start, stop, fan_in, seed) = self.spans[t];
            let stop = stop.min(end);
            while p < stop {
                let i = (p - start) / 2;
                let bits = Self::element(fan_in, seed, i).to_le_bytes();
                let byte = ((p - start) % 2) as usize;
                if byte == 0 && p + 1 < stop {
                    out.extend_from_slice(&bits);
                    p += 2;
                } else {
                    out.push(bits[byte]);
                    p += 1;
                }
            }
        }
        Ok(out)
    }
}

/// The checkpoint's architecture, recognised from its header and config as any checkpoint's.
pub fn recognised(src: &Synthetic, shape: &Shape) -> (Header, Architecture) {
    let header = read_header(src).expect("header");
    let tensors: Vec<_> = header
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    let Recognition::Known(arch) = recognise(&tensors, &header.metadata, Some(&shape.config()))
    else {
        panic!("the synthetic Llama is not recognised")
    };
    (header, arch)
}

/// `batch × seq_len` ids spread over the vocabulary.
pub fn batch(batch: usize, seq_len: usize, vocab: usize, salt: usize) -> TokenBatch {
    TokenBatch {
        batch,
        seq_len,
        ids: (0..batch * seq_len)
            .map(|i| ((i * 7919 + salt * 104_729) % vocab) as u32)
            .collect(),
    }
}
