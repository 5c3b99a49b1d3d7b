#!/usr/bin/env python3
"""Reference cases for rankscope's forward pass on more model families, computed with Hugging Face
transformers, written to crates/core/tests/data/families/<case>/.

Run from the repository root:  python3 scripts/reference/make_family_cases.py [CASE ...]
(no CASE: every case; each case's seed depends only on its place in `cases()`).
Needs: pip install torch transformers safetensors numpy. The Rust tests (crates/core/tests/
family_fixtures.rs) read the outputs; they never run Python.

Per case: a tiny random model (2 layers, d_model 64, 4 heads, 2 kv-heads where the family has GQA,
vocab 128; seed fixed), every parameter perturbed after init so that norms' gamma are not all ones
and biases are not all zeros (else a pass that ignored them would pass too), rounded to BF16 and
saved with `save_pretrained` (model.safetensors BF16 + config.json). The expected values are computed
on the weights as stored (BF16 upcast to float32), forward in float32, eager attention:

- `logits` [B, T, vocab] float32 for the token batch `input_ids` [B, T] (I64);
- `k.{l}.{h}` [B*T, d_k]: K of kv-head h of layer l, rows b*T + t, as METRICS.md defines it: the
  key projection's output (bias included) after the key norm when the model has one (Qwen3's
  `k_norm`), before RoPE; `k_raw.{l}.{h}` before the key norm (Qwen3 only);
- `q.{l}.{h}` [B*T, d_k]: Q of query head h likewise (after `q_norm`, before RoPE).

Cases:
- gpt2: GPT2LMHeadModel (`transformer.` names, fused Conv1D c_attn, LayerNorm with biases, learned
  positions, gelu_new MLP with biases, tied head).
- qwen2: Qwen2ForCausalLM (q/k/v biases, untied head, GQA 4/2).
- qwen3: Qwen3ForCausalLM (per-head q_norm/k_norm, head_dim 32 != d_model/heads, tied head).
- mistral: MistralForCausalLM with sliding_window 6 < T = 16, so the window matters.
- llama_noprefix: LlamaModel alone (`model.model.save_pretrained`): names without `model.`, no
  lm_head (tied); logits from the LlamaForCausalLM around it.
- llama_rope_linear: RoPE scaling "linear" ×4; its config.json is rewritten in the old format
  (`rope_scaling: {"type": "linear", ...}` beside a top-level `rope_theta`), and the script checks
  that transformers reads that file back to the same logits.
- llama_rope_dynamic: "dynamic" NTK ×2 with max_position_embeddings 8 < T = 16 (the base is
  rescaled for T); `logits_short` [B, 8, vocab] are the first 8 tokens alone, where dynamic
  scaling is a no-op (computed first, on the fresh model: transformers caches a grown table).
- llama_rope_llama3: "llama3" ×8 (low 1, high 4, original 64; d_k 16, θ 10000), so the
  wavelengths fall in all three bands: kept (6.3), blended (19.9, 62.8), divided (≥ 199).
- llama_rope_yarn: "yarn" ×4 from 2048 positions (θ 10000, d_k 16: the ramp runs over
  dimensions 2..6), attention factor 0.1·ln 4 + 1 from the default mscale.
- llama_meta: a LlamaForCausalLM (GQA 4/2, θ 500000, llama3 RoPE scaling as Meta's
  `use_scaled_rope` fixes it: ×8, low 1, high 4, 8192 positions) written in Meta's original
  layout, `consolidated.00.pth` (torch.save of a BF16 state dict, with Llama 1's `rope.freqs`)
  + `params.json` (ffn_dim_multiplier 0.75, multiple_of 16 → hidden 128 as Meta computes it):
  the inverse of transformers' `convert_llama_weights_to_hf` (wq/wk rows un-permuted per head
  from rotate-half to interleaved pairs). Expected values are the HF model's: logits, K/Q per
  head in HF coordinates, and `loss` [1], the mean next-token cross-entropy over B·(T−1).
"""
import json
import pathlib
import sys

import numpy as np
import safetensors
import torch
import transformers
from safetensors.numpy import save_file

OUT = pathlib.Path("crates/core/tests/data/families")
B, T, VOCAB = 2, 16, 128
SEED = 1234


def perturb(model, seed):
    """Moves every parameter off its init: norms' gamma to 1 + 0.3·N(0,1), biases to 0.2·N(0,1),
    matrices scaled up so the attention is not uniform."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if p.ndim == 1 and ("norm" in name or "ln_" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * noise)
            elif p.ndim == 1:
                p.copy_(0.2 * noise)
            else:
                p.copy_(0.08 * noise)


def round_bf16(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))


def hook_heads(module, store, key, heads, d_k):
    """Stores module's output, [B, T, heads*d_k] or [B, T, heads, d_k], as key.{h} [B*T, d_k]."""

    def hook(_mod, _inp, out):
        x = out.detach().reshape(B, T, heads, d_k)
        for h in range(heads):
            store[f"{key}.{h}"] = x[:, :, h, :].reshape(B * T, d_k).numpy().astype(np.float32).copy()

    return module.register_forward_hook(hook)


def hook_gpt2(module, store, layer, heads, d_k):
    """GPT-2's fused c_attn output [B, T, 3d]: Q, K, V column blocks, heads inside each."""
    d = heads * d_k

    def hook(_mod, _inp, out):
        x = out.detach()
        for name, start in (("q", 0), ("k", d)):
            block = x[:, :, start : start + d].reshape(B, T, heads, d_k)
            for h in range(heads):
                store[f"{name}.{layer}.{h}"] = (
                    block[:, :, h, :].reshape(B * T, d_k).numpy().astype(np.float32).copy()
                )

    return module.register_forward_hook(hook)


def llama_like_hooks(layers, store, cfg, qk_norm):
    heads, kv = cfg.num_attention_heads, cfg.num_key_value_heads
    d_k = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    handles = []
    for l, layer in enumerate(layers):
        attn = layer.self_attn
        if qk_norm:
            handles.append(hook_heads(attn.q_norm, store, f"q.{l}", heads, d_k))
            handles.append(hook_heads(attn.k_norm, store, f"k.{l}", kv, d_k))
            handles.append(hook_heads(attn.k_proj, store, f"k_raw.{l}", kv, d_k))
        else:
            handles.append(hook_heads(attn.q_proj, store, f"q.{l}", heads, d_k))
            handles.append(hook_heads(attn.k_proj, store, f"k.{l}", kv, d_k))
    return handles


def common(**extra):
    return dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        **extra,
    )


def cases():
    yield "gpt2", lambda: transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            vocab_size=VOCAB,
            n_positions=32,
            n_embd=64,
            n_layer=2,
            n_head=4,
            n_inner=128,
            activation_function="gelu_new",
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            layer_norm_epsilon=1e-5,
        )
    )
    yield "qwen2", lambda: transformers.Qwen2ForCausalLM(
        transformers.Qwen2Config(**common(tie_word_embeddings=False, use_sliding_window=False))
    )
    yield "qwen3", lambda: transformers.Qwen3ForCausalLM(
        transformers.Qwen3Config(
            **common(head_dim=32, tie_word_embeddings=True, use_sliding_window=False, attention_bias=False)
        )
    )
    yield "mistral", lambda: transformers.MistralForCausalLM(
        transformers.MistralConfig(**common(sliding_window=6, tie_word_embeddings=False))
    )
    yield "llama_noprefix", lambda: transformers.LlamaForCausalLM(
        transformers.LlamaConfig(**common(tie_word_embeddings=True))
    )
    for name, rope, positions in ROPE_CASES:
        yield name, lambda rope=rope, positions=positions: transformers.LlamaForCausalLM(
            transformers.LlamaConfig(
                **{
                    **common(tie_word_embeddings=True, rope_parameters=dict(rope, rope_theta=10000.0)),
                    "max_position_embeddings": positions,
                }
            )
        )
    yield "llama_meta", meta_model


# (case, rope_parameters without rope_theta, max_position_embeddings)
ROPE_CASES = [
    ("llama_rope_linear", {"rope_type": "linear", "factor": 4.0}, 64),
    ("llama_rope_dynamic", {"rope_type": "dynamic", "factor": 2.0}, 8),
    (
        "llama_rope_llama3",
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        256,
    ),
    ("llama_rope_yarn", {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048}, 8192),
]
DYNAMIC_SHORT = 8
META_PARAMS = {
    "dim": 64,
    "n_layers": 2,
    "n_heads": 4,
    "n_kv_heads": 2,
    "vocab_size": VOCAB,
    "multiple_of": 16,
    "ffn_dim_multiplier": 0.75,
    "norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "use_scaled_rope": True,
}


def meta_hidden(p):
    """Meta's FeedForward hidden size from params.json."""
    hidden = int(2 * (4 * p["dim"]) / 3)
    hidden = int(p["ffn_dim_multiplier"] * hidden)
    return p["multiple_of"] * ((hidden + p["multiple_of"] - 1) // p["multiple_of"])


def hf_permute(w, n_heads, dim1, dim2):
    """transformers 4.x convert_llama_weights_to_hf.permute: Meta (interleaved) → HF (halves)."""
    return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)


def meta_unpermute(w, n_heads, dim1, dim2):
    """The inverse of hf_permute: HF rows → Meta rows."""
    return w.view(n_heads, 2, dim1 // n_heads // 2, dim2).transpose(1, 2).reshape(dim1, dim2)


def meta_model():
    p = META_PARAMS
    return transformers.LlamaForCausalLM(
        transformers.LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=p["dim"],
            intermediate_size=meta_hidden(p),
            num_hidden_layers=p["n_layers"],
            num_attention_heads=p["n_heads"],
            num_key_value_heads=p["n_kv_heads"],
            max_position_embeddings=64,
            rms_norm_eps=p["norm_eps"],
            rope_parameters={
                "rope_type": "llama3",
                "rope_theta": p["rope_theta"],
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
            tie_word_embeddings=False,
        )
    )


def save_meta(folder, model):
    """Writes `model` in Meta's layout: consolidated.00.pth + params.json."""
    p = META_PARAMS
    d, heads, kv = p["dim"], p["n_heads"], p["n_kv_heads"]
    d_k = d // heads
    sd = {k: v.detach().to(torch.float32) for k, v in model.state_dict().items()}
    out = {"tok_embeddings.weight": sd["model.embed_tokens.weight"]}
    for l in range(p["n_layers"]):
        hf, meta = f"model.layers.{l}.", f"layers.{l}."
        wq, wk = sd[hf + "self_attn.q_proj.weight"], sd[hf + "self_attn.k_proj.weight"]
        out[meta + "attention.wq.weight"] = meta_unpermute(wq, heads, d, d)
        out[meta + "attention.wk.weight"] = meta_unpermute(wk, kv, kv * d_k, d)
        assert torch.equal(hf_permute(out[meta + "attention.wq.weight"], heads, d, d), wq)
        assert torch.equal(hf_permute(out[meta + "attention.wk.weight"], kv, kv * d_k, d), wk)
        out[meta + "attention.wv.weight"] = sd[hf + "self_attn.v_proj.weight"]
        out[meta + "attention.wo.weight"] = sd[hf + "self_attn.o_proj.weight"]
        out[meta + "feed_forward.w1.weight"] = sd[hf + "mlp.gate_proj.weight"]
        out[meta + "feed_forward.w3.weight"] = sd[hf + "mlp.up_proj.weight"]
        out[meta + "feed_forward.w2.weight"] = sd[hf + "mlp.down_proj.weight"]
        out[meta + "attention_norm.weight"] = sd[hf + "input_layernorm.weight"]
        out[meta + "ffn_norm.weight"] = sd[hf + "post_attention_layernorm.weight"]
    out["norm.weight"] = sd["model.norm.weight"]
    out["output.weight"] = sd["lm_head.weight"]
    # Llama 1's checkpoints carry the rotary buffer; readers ignore it.
    out["rope.freqs"] = 1.0 / (p["rope_theta"] ** (torch.arange(0, d_k, 2).float() / d_k))
    out = {k: v.to(torch.bfloat16).contiguous().clone() for k, v in out.items()}
    torch.save(out, folder / "consolidated.00.pth")
    (folder / "params.json").write_text(json.dumps(p) + "\n")


def check_llama3_bands(cfg):
    """The llama3 case must have a wavelength in each of the three bands."""
    p = cfg.rope_parameters
    d_k = cfg.hidden_size // cfg.num_attention_heads
    inv = 1.0 / (p["rope_theta"] ** (np.arange(0, d_k, 2) / d_k))
    wavelen = 2 * np.pi / inv
    old = p["original_max_position_embeddings"]
    high, low = old / p["high_freq_factor"], old / p["low_freq_factor"]
    bands = {"kept": wavelen < high, "blended": (wavelen >= high) & (wavelen <= low), "divided": wavelen > low}
    assert all(b.any() for b in bands.values()), (wavelen, bands)


def legacy_rope_config(folder, model, ids, logits):
    """Rewrites config.json with the pre-5 `rope_scaling` key and checks transformers reads it alike."""
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    params = cfg.pop("rope_parameters")
    cfg["rope_theta"] = params.pop("rope_theta")
    params["type"] = params.pop("rope_type")
    cfg["rope_scaling"] = params
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    again = transformers.LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32, attn_implementation="eager")
    again.eval()
    with torch.no_grad():
        got = again(input_ids=ids).logits.float().numpy()
    assert np.abs(got - logits).max() < 1e-5, "the legacy rope_scaling config reads differently"


def main():
    torch.manual_seed(SEED)
    ids = torch.from_numpy(np.random.default_rng(SEED).integers(0, VOCAB, size=(B, T))).to(torch.int64)
    only = set(sys.argv[1:])
    for i, (name, make) in enumerate(cases()):
        if only and name not in only:
            continue
        torch.manual_seed(SEED + i)
        model = make()
        model.config._attn_implementation = "eager"
        model.eval()
        perturb(model, SEED + 100 + i)
        if model.config.tie_word_embeddings:
            model.tie_weights()
        round_bf16(model)

        extra = {}
        if name == "llama_rope_dynamic":  # before any longer sequence grows the cached table
            with torch.no_grad():
                extra["logits_short"] = model(input_ids=ids[:, :DYNAMIC_SHORT]).logits.float().numpy()
        store = {}
        cfg = model.config
        if name == "gpt2":
            d_k = cfg.n_embd // cfg.n_head
            handles = [
                hook_gpt2(block.attn.c_attn, store, l, cfg.n_head, d_k)
                for l, block in enumerate(model.transformer.h)
            ]
        else:
            handles = llama_like_hooks(model.model.layers, store, cfg, qk_norm=name == "qwen3")
        with torch.no_grad():
            out = model(input_ids=ids, labels=ids)
            logits = out.logits.float().numpy()
            if name == "llama_meta":
                extra["loss"] = np.array([out.loss.item()], dtype=np.float64)
        for h in handles:
            h.remove()

        folder = OUT / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        if name == "llama_meta":
            save_meta(folder, model)
        else:
            to_save = model.model if name == "llama_noprefix" else model
            to_save.to(torch.bfloat16).save_pretrained(folder, safe_serialization=True)
        (folder / "generation_config.json").unlink(missing_ok=True)
        if name == "llama_rope_llama3":
            check_llama3_bands(cfg)
        if name == "llama_rope_linear":
            legacy_rope_config(folder, model, ids, logits)
        expected = {"logits": logits.astype(np.float32), "input_ids": ids.numpy()}
        expected.update(extra)
        expected.update(store)
        save_file(
            expected,
            str(folder / "expected.safetensors"),
            metadata={
                "case": name,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "safetensors": safetensors.__version__,
                "numpy": np.__version__,
                "seed": str(SEED),
            },
        )
        print(name, "max |logit|", float(np.abs(logits).max()), "tensors", len(store))


if __name__ == "__main__":
    main()
