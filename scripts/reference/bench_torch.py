"""PyTorch's row of `scripts/bench.sh`: the same full-size reference checkpoint, the same eval
sequence and the same work as rankscope's forward + activation-spectra benchmark, in PyTorch on
the CPU with one thread.

    python scripts/reference/bench_torch.py CHECKPOINT [TOKENS]

CHECKPOINT is the benchmarks' synthetic checkpoint written to disk by
`cargo run --release -p rankscope-core --example write_synthetic -- FILE`. The model is the
reference family as the fixtures README and `crates/core/src/model/forward.rs` define it (the
user's MinimalLLM; written here from that definition, not imported): x = emb[ids]·√d_model; per
block pre-norm RMSNorm (eps = float32 eps), merged qkvo projection, per-head q/k RMSNorm,
interleaved-pair RoPE (θ = 10000), causal softmax(QKᵀ/√d_k)V with GQA (PyTorch's fused
`scaled_dot_product_attention`), x += attn·Oᵀ, then
RMSNorm and x += relu(up(h))²·downᵀ. No output head (a pass for K and Q does not need it).

Timed, best of 2, wall clock, one thread (torch.set_num_threads(1)):
- load: the BF16 tensors read and converted to float32;
- forward: the 22 blocks over the sequence, keeping K (after k_norm, before it; after RoPE) and
  Q per head, as rankscope's probe does;
- spectra: the same 704 spectra as rankscope (K in 4 variants per kv-head — after k_norm, raw,
  after RoPE, centred — and Q plain and centred per query head, every layer), singular values
  in float64 (torch.linalg.svdvals), PR = (Σσ)²/Σσ²;
- rankprobe: the 88 K spectra the user's RankProbe takes (after k_norm, float32 SVD).

Prints two `rankscope-bench engine=… …` lines (the format `ForwardBench::parse` reads; the
`pytorch-rankprobe` one with RankProbe's 88 spectra as its spectra), each with the mean K PR over
layers and kv-heads, which must equal rankscope's (same model, same numbers).
"""

import math
import sys
import time

import torch
import torch.nn.functional as F
from safetensors import safe_open

LAYERS, D_MODEL, HEADS, KV_HEADS, D_K, D_FF, VOCAB = 22, 512, 8, 4, 64, 2048, 49152
EPS = torch.finfo(torch.float32).eps
THETA = 10000.0


def load(path):
    w = {}
    with safe_open(path, framework="pt") as f:
        for name in f.keys():
            w[name] = f.get_tensor(name).to(torch.float32)
    return w


def rms_norm(x, gamma):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * gamma


def rope_interleaved(x, cos, sin):
    # x: [heads, t, d_k]; pairs (x[2i], x[2i+1]) rotated by position·θ_i (torchtune's layout).
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = b * cos + a * sin
    return out


def rope_table(t):
    inv = 1.0 / (THETA ** (torch.arange(0, D_K, 2, dtype=torch.float32) / D_K))
    angle = (torch.arange(t, dtype=torch.float32)[:, None] * inv[None, :]).to(torch.float64)
    return angle.cos().to(torch.float32), angle.sin().to(torch.float32)


@torch.no_grad()
def forward(w, ids):
    """Every layer's (K after k_norm, K raw, K after RoPE, Q after q_norm), head-major."""
    t = ids.shape[0]
    cos, sin = rope_table(t)
    x = w["token_embedding.weight"][ids] * math.sqrt(D_MODEL)
    kv_rows = KV_HEADS * D_K
    kept = []
    for l in range(LAYERS):
        p = f"transformer_blocks.{l}."
        qkvo = w[p + "attention.qkvo_proj"]
        h = rms_norm(x, w[p + "norm1.weight"])
        # One product for Q, K and V (the merged projection's first rows), as the model does.
        q, k_raw, v = F.linear(h, qkvo[: D_MODEL + 2 * kv_rows]).split(
            [D_MODEL, kv_rows, kv_rows], dim=-1
        )
        q = q.reshape(t, HEADS, D_K).transpose(0, 1)
        k_raw = k_raw.reshape(t, KV_HEADS, D_K).transpose(0, 1)
        v = v.reshape(t, KV_HEADS, D_K).transpose(0, 1)
        wo = qkvo[D_MODEL + 2 * kv_rows :]
        q = rms_norm(q, w[p + "attention.q_norm.weight"])
        k = rms_norm(k_raw, w[p + "attention.k_norm.weight"])
        q_rope, k_rope = rope_interleaved(q, cos, sin), rope_interleaved(k, cos, sin)
        kept.append((k, k_raw, k_rope, q))
        group = HEADS // KV_HEADS
        # PyTorch's fused causal attention (what a model written today calls), scale 1/√d_k.
        attn = F.scaled_dot_product_attention(
            q_rope, k_rope.repeat_interleave(group, 0), v.repeat_interleave(group, 0), is_causal=True
        )
        attn = attn.transpose(0, 1).reshape(t, D_MODEL)
        x = x + attn @ wo.T
        h = rms_norm(x, w[p + "norm2.weight"])
        x = x + torch.relu(h @ w[p + "feed_forward.up_proj.weight"].T).pow(2) @ w[
            p + "feed_forward.down_proj.weight"
        ].T
    return kept


def pr(sv):
    return (sv.sum(-1) ** 2 / (sv**2).sum(-1))


@torch.no_grad()
def spectra(kept):
    """rankscope's 704 spectra in float64; returns the mean PR of K after k_norm."""
    k_prs = []
    for k, k_raw, k_rope, q in kept:
        k, k_raw, k_rope, q = (m.to(torch.float64) for m in (k, k_raw, k_rope, q))
        k_prs.append(pr(torch.linalg.svdvals(k)))
        for m in (k_raw, k_rope, k - k.mean(1, keepdim=True), q, q - q.mean(1, keepdim=True)):
            torch.linalg.svdvals(m)
    return torch.cat(k_prs).mean().item()


@torch.no_grad()
def rankprobe(kept):
    """The user's RankProbe's work: the 88 K spectra (after k_norm) in float32."""
    return torch.cat([pr(torch.linalg.svdvals(k)) for k, *_ in kept]).mean().item()


def best_of(n, f):
    best, out = math.inf, None
    for _ in range(n):
        t0 = time.perf_counter()
        out = f()
        best = min(best, (time.perf_counter() - t0) * 1e3)
    return best, out


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: bench_torch.py CHECKPOINT [TOKENS]")
    tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    torch.set_num_threads(1)
    load_ms, w = best_of(2, lambda: load(sys.argv[1]))
    ids = torch.tensor([(i * 7919 + 13) % VOCAB for i in range(tokens)])
    forward_ms, kept = best_of(2, lambda: forward(w, ids))
    spectra_ms, mean_pr = best_of(2, lambda: spectra(kept))
    probe_ms, probe_pr = best_of(2, lambda: rankprobe(kept))
    a = torch.randn(1024, 2048)
    b = torch.randn(2048, 2048)
    sgemm_ms, _ = best_of(5, lambda: a @ b)
    sgemm = 2 * 1024 * 2048 * 2048 / sgemm_ms / 1e6
    for engine, spectra_ms_, pr_ in (
        ("pytorch", spectra_ms, mean_pr),
        ("pytorch-rankprobe", probe_ms, probe_pr),
    ):
        print(
            f"rankscope-bench engine={engine} tokens={tokens} load_ms={load_ms} "
            f"forward_ms={forward_ms} spectra_ms={spectra_ms_} sgemm_gflops={sgemm} mean_pr={pr_}"
        )
    print(f"pytorch {torch.__version__}, 1 thread", file=sys.stderr)


if __name__ == "__main__":
    main()
