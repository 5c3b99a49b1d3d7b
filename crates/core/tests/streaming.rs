//! Models larger than memory (issue 15, item 2): the streamed forward pass
//! (`model::forward::StreamedModel`) holds one block's weights at a time.
//!
//! The checkpoints are made up on the fly by [`Synthetic`], a `ByteSource` that serves a real
//! safetensors header (Llama tensor names, BF16) and data bytes computed from their offset, so
//! a 13.5 GB Llama-2-7B-shaped checkpoint costs neither disk nor memory. Weights: element `i`
//! of a tensor is the BF16 (truncated) of a uniform value in ±√(3/fan_in) drawn by SplitMix64
//! from (tensor index, i); norm weights are 1.0. The architecture is recognised from the
//! header and an HF `config.json` by the same code as a real checkpoint's.
//!
//! `streamed_pass_reads_each_block_once_and_frees_it` (CI, fast): on a small model, every
//! block's bytes are read exactly once, in layer order, the embedding only for the batch's
//! rows, and when block `l + 1` is read, the memory live above the start is under one block's
//! f32 weights (block `l` is gone); the peak is about one block plus the activations, far below
//! the whole model, and the numbers equal the loaded model's bit for bit.
//!
//! `llama2_7b_shaped_activation_spectra_in_bounded_memory` (ignored: a benchmark of about a
//! minute or more): activation spectra and held-out loss of the 7B-shaped checkpoint on 2 × 32
//! tokens, with the peak memory (VmHWM and the counting allocator's peak) printed and bounded by
//! 1.5 GB. Run: `cargo test -p rankscope-core --test streaming -- --ignored --nocapture`.

use rankscope_core::analysis::activations::{
    activation_spectra, streamed_activation_spectra, KeyVariant,
};
use rankscope_core::analysis::weights::Shards;
use rankscope_core::formats::safetensors::read_header;
use rankscope_core::formats::tokens::TokenBatch;
use rankscope_core::model::arch::{recognise, Architecture, Recognition};
use rankscope_core::model::forward::StreamedModel;
use rankscope_core::source::{block_on, ByteSource};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The shape of a Llama checkpoint to make up.
#[derive(Clone, Copy)]
struct Shape {
    layers: usize,
    d_model: usize,
    heads: usize,
    kv_heads: usize,
    d_ff: usize,
    vocab: usize,
}

const LLAMA2_7B: Shape = Shape {
    layers: 32,
    d_model: 4096,
    heads: 32,
    kv_heads: 32,
    d_ff: 11008,
    vocab: 32000,
};

impl Shape {
    /// `(name, [rows, cols] or [len], fan_in)` in file order; fan-in 0 marks a norm weight.
    fn tensors(&self) -> Vec<(String, Vec<usize>, usize)> {
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
    fn config(&self) -> serde_json::Value {
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
    fn block_f32_bytes(&self) -> usize {
        let (d, f) = (self.d_model, self.d_ff);
        let kv = self.kv_heads * d / self.heads;
        4 * (2 * d * d + 2 * kv * d + 3 * d * f + 2 * d)
    }
}

/// A safetensors file whose data bytes are computed from their offset (module doc).
struct Synthetic {
    header: Vec<u8>,
    /// `(data start, data end, fan-in, seed)` of each tensor, in file order (absolute offsets).
    spans: Vec<(u64, u64, usize, u64)>,
    len: u64,
    /// Every read `(offset, len, bytes live when it started)`, when recording.
    reads: Option<Mutex<Vec<(u64, usize, usize)>>>,
}

impl Synthetic {
    fn new(shape: &Shape, record: bool) -> Self {
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
        while (text.len() + 8) % 8 != 0 {
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
            reads: record.then(|| Mutex::new(Vec::new())),
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
        if let Some(reads) = &self.reads {
            let live = LIVE.load(Ordering::SeqCst);
            reads.lock().expect("reads").push((offset, len, live));
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
fn recognised(
    src: &Synthetic,
    shape: &Shape,
) -> (rankscope_core::formats::safetensors::Header, Architecture) {
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
fn batch(batch: usize, seq_len: usize, vocab: usize, salt: usize) -> TokenBatch {
    TokenBatch {
        batch,
        seq_len,
        ids: (0..batch * seq_len)
            .map(|i| ((i * 7919 + salt * 104_729) % vocab) as u32)
            .collect(),
    }
}

#[test]
fn streamed_pass_reads_each_block_once_and_frees_it() {
    let shape = Shape {
        layers: 8,
        d_model: 256,
        heads: 4,
        kv_heads: 2,
        d_ff: 704,
        vocab: 2000,
    };
    let src = Synthetic::new(&shape, true);
    let (header, arch) = recognised(&src, &shape);
    assert_eq!((arch.n_layers, arch.n_kv_heads, arch.d_k), (8, 2, 64));
    let shards = Shards::single(&header, &src);
    let model = StreamedModel::new(&shards, &arch).expect("model");
    let eval = batch(2, 16, shape.vocab, 0);
    src.reads
        .as_ref()
        .expect("recording")
        .lock()
        .expect("reads")
        .clear();
    let baseline = LIVE.load(Ordering::SeqCst);
    PEAK.store(baseline, Ordering::SeqCst);
    let got = block_on(streamed_activation_spectra(
        &model,
        &eval,
        None,
        &[],
        &mut |_| {},
        &|| false,
    ))
    .expect("streamed");
    let peak = PEAK.load(Ordering::SeqCst) - baseline;
    let reads = std::mem::take(
        &mut *src
            .reads
            .as_ref()
            .expect("recording")
            .lock()
            .expect("reads"),
    );

    // Which tensor each read falls in; a read never straddles two.
    let tensors = shape.tensors();
    let of = |offset: u64, len: usize| {
        let t = src.spans.partition_point(|s| s.1 <= offset);
        let (start, stop, ..) = src.spans[t];
        assert!(
            offset >= start && offset + len as u64 <= stop,
            "read {offset}+{len}"
        );
        t
    };
    let layer_of = |name: &str| -> Option<usize> {
        name.strip_prefix("model.layers.")?
            .split('.')
            .next()?
            .parse()
            .ok()
    };
    let mut read_bytes = vec![0u64; tensors.len()];
    let mut order = Vec::new();
    for &(offset, len, live) in &reads {
        let t = of(offset, len);
        read_bytes[t] += len as u64;
        let name = &tensors[t].0;
        if let Some(l) = layer_of(name) {
            if order.last() != Some(&l) {
                // The first read of block l: block l − 1 is freed by now.
                order.push(l);
                let held = live.saturating_sub(baseline);
                assert!(
                    held < shape.block_f32_bytes() / 2,
                    "{held} bytes live above the start when block {l} is read (one block: {})",
                    shape.block_f32_bytes()
                );
            }
        } else {
            assert_eq!(
                name, "model.embed_tokens.weight",
                "only the embedding outside blocks"
            );
        }
    }
    assert_eq!(
        order,
        (0..shape.layers).collect::<Vec<_>>(),
        "blocks read in order, once each"
    );
    for (t, (name, dims, _)) in tensors.iter().enumerate() {
        let size = 2 * dims.iter().product::<usize>() as u64;
        match layer_of(name) {
            Some(_) => assert_eq!(read_bytes[t], size, "{name} read exactly once"),
            // No held-out batch: neither the output head nor the final norm is read.
            None if name == "model.embed_tokens.weight" => assert!(
                read_bytes[t] < size && read_bytes[t] > 0,
                "only the batch's embedding rows: {} of {size}",
                read_bytes[t]
            ),
            None => assert_eq!(read_bytes[t], 0, "{name} is not read"),
        }
    }
    let whole = shape.block_f32_bytes() * shape.layers + 4 * 2 * shape.vocab * shape.d_model;
    let block = shape.block_f32_bytes();
    assert!(
        peak < block + block / 2 + (1 << 20) && peak < whole / 4,
        "peak {peak} bytes above the start; one block is {block}, the whole model {whole}"
    );

    // The same numbers as the loaded model, bit for bit.
    let loaded = block_on(model.load(&mut |_| {})).expect("load");
    let want =
        activation_spectra(&loaded, &eval, None, &[], &mut |_| {}, &|| false).expect("loaded");
    assert_eq!(got, want);
    let k = &got.layers[7].k_heads(KeyVariant::PostNorm).expect("K")[1];
    assert!(k.singular_values.iter().all(|s| s.is_finite()) && k.singular_values[0] > 0.0);
}

/// Peak resident memory of this process (VmHWM), in bytes.
fn vm_hwm() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
#[ignore = "benchmark: a 13.5 GB synthetic checkpoint, about a minute or more"]
fn llama2_7b_shaped_activation_spectra_in_bounded_memory() {
    let start = std::time::Instant::now();
    let shape = LLAMA2_7B;
    let src = Synthetic::new(&shape, false);
    let (header, arch) = recognised(&src, &shape);
    println!(
        "checkpoint: {:.2} GB of BF16 ({} tensors); one block as f32 {:.0} MB",
        src.len as f64 / 1e9,
        header.tensors.len(),
        shape.block_f32_bytes() as f64 / 1e6
    );
    let shards = Shards::single(&header, &src);
    let model = StreamedModel::new(&shards, &arch).expect("model");
    println!(
        "whole model as f32: {:.1} GB",
        model.f32_bytes() as f64 / 1e9
    );
    let eval = batch(2, 32, shape.vocab, 0);
    let heldout = batch(2, 32, shape.vocab, 1);
    let mut last = start.elapsed();
    let got = block_on(streamed_activation_spectra(
        &model,
        &eval,
        Some(&heldout),
        &[],
        &mut |p| {
            let now = start.elapsed();
            if p.done == p.total || p.done % 8 == 0 {
                println!("{:>7.1} s  {p}", now.as_secs_f64());
            }
            last = now;
        },
        &|| false,
    ))
    .expect("streamed");
    let elapsed = start.elapsed().as_secs_f64();
    let hwm = vm_hwm().unwrap_or(0);
    let peak = PEAK.load(Ordering::SeqCst);
    let loss = got.heldout_loss.expect("loss");
    let pr = got.layers[31].k_heads(KeyVariant::PostNorm).expect("K")[0]
        .metrics
        .spectrum
        .pr;
    println!(
        "7B-shaped: {:.1} s; peak heap {:.0} MB (counting allocator), VmHWM {:.0} MB; held-out loss {loss:.4} (ln 32000 = {:.4}); layer 31 K head 0 PR {pr:.2}",
        elapsed,
        peak as f64 / 1e6,
        hwm as f64 / 1e6,
        (shape.vocab as f64).ln()
    );
    assert!(loss.is_finite() && pr.is_finite() && pr >= 1.0);
    assert!(peak < 1_500_000_000, "peak heap {peak}");
    assert!(hwm < 1_500_000_000, "VmHWM {hwm}");
}
