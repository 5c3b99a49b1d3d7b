//! Meta's original Llama layout: `consolidated.00.pth` beside `params.json`, as Meta's
//! `llama` and `llama-models` repositories publish Llama 1–3 (torchtitan checkpoints use the
//! same names): `tok_embeddings.weight`, `layers.{l}.attention.{wq,wk,wv,wo}.weight`,
//! `layers.{l}.feed_forward.{w1,w2,w3}.weight` (w1 gate, w3 up, w2 down: `w2(silu(w1 x)·w3 x)`),
//! `layers.{l}.{attention_norm,ffn_norm}.weight`, `norm.weight`, `output.weight` (never
//! tied), and Llama 1's `rope.freqs` buffer (unused).
//!
//! **Coordinates of Q and K.** Meta's rotary embedding rotates interleaved pairs
//! `(x[2i], x[2i+1])` (a complex view of each head); Hugging Face's rotates halves
//! `(x[i], x[i + d_k/2])` after `convert_llama_weights_to_hf` permutes the rows of wq and wk
//! within each head. rankscope runs a Meta checkpoint as stored, with
//! [`Rope::InterleavedPairs`], so Q and K per head are in Meta's coordinates: the converted
//! model's K with its columns permuted within the head (Meta column 2i = HF column i, 2i+1 =
//! HF column d_k/2 + i). The attention, the logits and the loss are the same, and so is every
//! spectrum (of K per head, W_k per head, their Grams): singular values do not change when the
//! columns of a matrix are permuted. Only a figure of K's raw columns would list them in
//! another order.
//!
//! Sizes come from `params.json` (`dim`, `n_layers`, `n_heads`, `n_kv_heads`, `vocab_size`
//! (−1: the tokenizer's, read from the shapes), `multiple_of`, `ffn_dim_multiplier`,
//! `norm_eps`, `rope_theta`, `use_scaled_rope`), checked against the shapes; the MLP's hidden
//! size is computed as Meta's `FeedForward` does. Without a config the head count is unknown.

use super::config::{agree, Config};
use super::lookup::{matrix, mul, Lookup};
use super::{
    Activation, Architecture, Family, LayerBiases, LayerTensors, NormKind, Rope, RopeScaling,
    WeightLoc, HEADS_UNKNOWN,
};

/// `ModelArgs.norm_eps`.
const DEFAULT_EPS: f64 = 1e-5;
/// Llama 1/2 (`precompute_freqs_cis(theta=10000.0)`), whose params.json has no `rope_theta`;
/// Llama 3's params.json always states its 500000.
const DEFAULT_THETA: f64 = 10_000.0;
/// `ModelArgs.multiple_of`.
const DEFAULT_MULTIPLE_OF: usize = 256;

/// Whether the names look like this family (any `layers.{l}.attention.wq.weight`).
pub(super) fn matches(t: &Lookup) -> bool {
    t.names()
        .any(|n| n.starts_with("layers.") && n.ends_with(".attention.wq.weight"))
}

/// The MLP's hidden size as Meta's `FeedForward` computes it from `dim`:
/// `int(2·4·dim/3)`, times `ffn_dim_multiplier` (truncated), rounded up to `multiple_of`.
pub fn meta_ffn_hidden(dim: usize, multiple_of: usize, ffn_dim_multiplier: Option<f64>) -> usize {
    let mut hidden = 2 * (4 * dim) / 3;
    if let Some(m) = ffn_dim_multiplier {
        hidden = (m * hidden as f64) as usize;
    }
    let multiple_of = multiple_of.max(1);
    hidden.div_ceil(multiple_of) * multiple_of
}

/// A note for shapes that disagree with params.json: Meta's larger models come as several
/// `consolidated.NN.pth` files that each hold a slice of every tensor.
const MODEL_PARALLEL: &str = " (one of several consolidated.NN.pth files of a model-parallel checkpoint? each holds a slice of every tensor, which rankscope does not join)";

pub(super) fn recognise(t: &mut Lookup, config: Option<&Config>) -> Result<Architecture, String> {
    let n_layers = t.layer_count("layers.")?;
    let embed = t.require_any("tok_embeddings.weight", "token embedding")?;
    let (vocab, d_model) = matrix(&embed)?;
    let q0 = t.require_any("layers.0.attention.wq.weight", "query projection")?;
    let k0 = t.require_any("layers.0.attention.wk.weight", "key projection")?;
    let w1 = t.require_any("layers.0.feed_forward.w1.weight", "MLP gate (w1)")?;
    let (q_rows, _) = matrix(&q0)?;
    let (k_rows, _) = matrix(&k0)?;
    let (d_ff, _) = matrix(&w1)?;

    let Some(c) = config else {
        return Err(HEADS_UNKNOWN.replace("config.json", "params.json"));
    };
    let n_heads = c
        .usize(&["n_heads", "num_attention_heads"])?
        .ok_or_else(|| format!("{} has no n_heads", c.source))?;
    let n_kv_heads = c
        .usize(&["n_kv_heads", "num_key_value_heads"])?
        .unwrap_or(n_heads);
    let dim = c.usize(&["dim", "hidden_size"])?;
    agree(
        c,
        "dim",
        dim,
        d_model,
        &format!("`{}` [{vocab}, {d_model}]", embed.name),
    )?;
    if n_heads == 0 || n_kv_heads == 0 || d_model % n_heads != 0 || n_heads % n_kv_heads != 0 {
        return Err(format!(
            "{} says n_heads {n_heads} and n_kv_heads {n_kv_heads}, which do not divide dim {d_model} and each other",
            c.source
        ));
    }
    let d_k = d_model / n_heads;
    let said_q = mul(n_heads, d_k, "n_heads·head_dim")?;
    let said_k = mul(n_kv_heads, d_k, "n_kv_heads·head_dim")?;
    if said_q != q_rows || said_k != k_rows {
        return Err(format!(
            "{} says {n_heads} heads and {n_kv_heads} kv-heads of {d_k} = {said_q} query and {said_k} key rows, but `{}` has {q_rows} and `{}` {k_rows}{MODEL_PARALLEL}",
            c.source, q0.name, k0.name
        ));
    }
    agree(
        c,
        "n_layers",
        c.usize(&["n_layers", "num_hidden_layers"])?,
        n_layers,
        "the layer count",
    )?;
    // Meta writes vocab_size −1 when the tokenizer decides it.
    if let Some(said) = c
        .value("vocab_size")
        .and_then(serde_json::Value::as_i64)
        .filter(|&v| v >= 0)
    {
        if said as u64 != vocab as u64 {
            return Err(format!(
                "{} says vocab_size {said}, but `{}` gives {vocab}",
                c.source, embed.name
            ));
        }
    }
    if dim.is_some() {
        let multiple_of = c.usize(&["multiple_of"])?.unwrap_or(DEFAULT_MULTIPLE_OF);
        let multiplier = c.f64(&["ffn_dim_multiplier"])?;
        let want = meta_ffn_hidden(d_model, multiple_of, multiplier);
        if want != d_ff {
            return Err(format!(
                "{} gives an MLP hidden size of {want} (dim {d_model}, multiple_of {multiple_of}, ffn_dim_multiplier {}), but `{}` has {d_ff} rows{MODEL_PARALLEL}",
                c.source,
                multiplier.map_or("none".to_string(), |m| m.to_string()),
                w1.name
            ));
        }
    }

    let mut layers = Vec::with_capacity(n_layers);
    for l in 0..n_layers {
        let block = format!("layers.{l}.");
        let whole = |tensor: String| WeightLoc::Whole { tensor };
        let attn = |w: &str| format!("{block}attention.{w}.weight");
        let ffn = |w: &str| format!("{block}feed_forward.{w}.weight");
        layers.push(LayerTensors {
            w_q: whole(t.require(&attn("wq"), &[q_rows, d_model])?),
            w_k: whole(t.require(&attn("wk"), &[k_rows, d_model])?),
            w_v: whole(t.require(&attn("wv"), &[k_rows, d_model])?),
            w_o: whole(t.require(&attn("wo"), &[d_model, q_rows])?),
            q_norm: None,
            k_norm: None,
            attn_norm: Some(t.require(&format!("{block}attention_norm.weight"), &[d_model])?),
            mlp_norm: Some(t.require(&format!("{block}ffn_norm.weight"), &[d_model])?),
            mlp: vec![
                t.require(&ffn("w1"), &[d_ff, d_model])?,
                t.require(&ffn("w3"), &[d_ff, d_model])?,
                t.require(&ffn("w2"), &[d_model, d_ff])?,
            ],
            other: t.layer_extras(&block, |_| false)?,
            biases: LayerBiases {
                mlp: vec![None, None, None],
                ..LayerBiases::default()
            },
            window: None,
        });
    }
    let final_norm = Some(t.require("norm.weight", &[d_model])?);
    let lm_head = t.require("output.weight", &[vocab, d_model])?;
    let rope_theta = c.rope_theta(&["rope_theta"])?.unwrap_or(DEFAULT_THETA);
    let norm_eps = c.norm_eps(&["norm_eps"])?.unwrap_or(DEFAULT_EPS);
    // Meta's `apply_scaling`: factor 8 (or the params' `rope_scaling_factor`), low 1, high 4,
    // from Llama 3's 8192 positions.
    let rope_scaling = if c.bool(&["use_scaled_rope"])? == Some(true) {
        RopeScaling::Llama3 {
            factor: c.f64(&["rope_scaling_factor"])?.unwrap_or(8.0),
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_positions: 8192,
        }
    } else {
        RopeScaling::None
    };

    Ok(Architecture {
        family: Family::MetaLlama,
        n_layers,
        d_model,
        n_heads,
        n_kv_heads,
        d_k,
        d_ff,
        vocab,
        qk_norm: false,
        rope: Rope::InterleavedPairs,
        rope_theta,
        rope_scaling,
        // params.json's `max_seq_len` when present (Meta's reference code takes it at load).
        context: c.context()?,
        norm_eps,
        norm: NormKind::Rms,
        activation: Activation::Silu,
        tied_lm_head: false,
        embedding: embed.name,
        lm_head,
        final_norm,
        position_embedding: None,
        final_norm_bias: None,
        no_forward_pass: None,
        layers,
        prefix_removed: None,
        source_of_heads: c.source.to_string(),
        other: Vec::new(),
        unused: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::meta_ffn_hidden;

    /// The hidden sizes of Meta's published models from their params.json.
    #[test]
    fn ffn_hidden_size_is_metas() {
        assert_eq!(meta_ffn_hidden(4096, 256, None), 11008); // Llama 2 7B
        assert_eq!(meta_ffn_hidden(5120, 256, None), 13824); // Llama 2 13B
        assert_eq!(meta_ffn_hidden(8192, 4096, Some(1.3)), 28672); // Llama 2 70B
        assert_eq!(meta_ffn_hidden(4096, 1024, Some(1.3)), 14336); // Llama 3 8B
        assert_eq!(meta_ffn_hidden(2048, 256, Some(1.5)), 8192); // Llama 3.2 1B
    }
}
