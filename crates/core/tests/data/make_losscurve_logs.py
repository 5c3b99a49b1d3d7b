"""Writes the small run logs the loss-curve tests read (issue 18).

Each log is shaped like its source and its values are chosen so that every
rule and alert fires at steps the tests compute by hand (see the comments in
crates/core/tests/losscurve_sources.rs). Run from this folder:
    python3 make_losscurve_logs.py
"""
import json
import math


def write(name, header, rows):
    with open(name, "w") as f:
        f.write(json.dumps(header) + "\n")
        for r in rows:
            f.write(json.dumps({k: v for k, v in r.items() if v is not None}) + "\n")


# RLAN-style collapse log: the report's metric names, one row per step, three epochs of four steps.
rlan = {
    "lora_norm": [0.5, 0.8, 1.1, 1.3, 1.6, 1.7, 2.2, 1.9, 1.4, 1.0, 0.9, 0.8],
    "lora_norm_ema": [0.5, 0.6, 0.8, 0.95, 1.2, 1.4, 1.7, 1.8, 1.6, 1.4, 1.2, 1.0],
    "nan_batches": [None, None, None, 3, None, None, None, 60, None, None, None, 12],
    "accuracy": [0.50, 0.60, 0.70, 0.72, 0.74, 0.70, 0.66, 0.69, 0.75, 0.74, 0.70, 0.71],
    "entropy": [0.3, 0.3, 0.4, 0.6, 0.9, 1.5, 2.1, 2.4, 1.9, 1.2, 0.8, 0.6],
    "attention_sharpness": [0.8, 0.8, 0.7, 0.6, 0.4, 0.2, 0.09, 0.05, 0.12, 0.3, 0.5, 0.6],
    "loss": [2.3, 2.1, 1.9, 1.8, 1.75, 1.9, 2.4, 2.6, 2.2, 2.0, 1.9, 1.85],
}
rows = []
for i in range(12):
    r = {"step": i + 1, "epoch": i // 4}
    r.update({k: v[i] for k, v in rlan.items()})
    rows.append(r)
write("rlan_collapse.jsonl", {"header": True, "run": "rlan", "total_steps": 12}, rows)
# The same log with the older name `adapter_norm` for lora_norm.
old = [{("adapter_norm" if k == "lora_norm" else k): v for k, v in r.items()} for r in rows]
write("rlan_adapter_norm.jsonl", {"header": True, "run": "rlan_old", "total_steps": 12}, old)

# C(t) with λ_max: B = 4, d = 100, micro_batch_size 1, lr 0.1, grad_var 4, so
# D = 0.1²·4/(2·4) = 0.005 and C = g²/(2·0.005·100) = g²: grad_norm = √C.
cs = [150, 160, 170, 120, 40, 25, 15, 8, 5, 3, 1.6, 1.2, 0.9, 0.7, 0.45, 0.4, 0.35, 0.3, 0.3, 0.3]
loss = [3.0, 2.9, 2.8, 2.7, 2.6, 2.5, 2.45, 2.4, 2.35, 2.3, 2.25, 2.2, 2.2, 2.1, 2.0, 1.950, 1.948, 1.952, 1.949, 1.951]
rows = []
for i, c in enumerate(cs):
    step = 10 * (i + 1)
    r = {"step": step, "lr": 0.1, "grad_norm": math.sqrt(c), "grad_var": 4.0, "loss": loss[i]}
    if step in (10, 100):
        r["lambda_max"] = 50.0 if step == 10 else 20.0
    rows.append(r)
write(
    "consolidation_lambda.jsonl",
    {"header": True, "run": "c_alerts", "batch_size": 4, "n_params": 100, "micro_batch_size": 1, "total_steps": 200},
    rows,
)

# DEQ/EP campaign log: the gradient-geometry fields (penalty share under its alias `jac_ratio`).
deq = {
    "cos_ep_bptt": [0.9, 0.8, 0.7, 0.5, 0.2, -0.1, -0.3, 0.1, 0.4, 0.6],
    "self_cos": [0.5, 0.4, 0.3, -0.2, 0.1, 0.2, 0.3, 0.3, 0.4, 0.5],
    "cos_ce_jac": [0.2, 0.1, 0.0, -0.1, -0.2, -0.3, -0.1, 0.0, 0.1, 0.2],
    "jac_ratio": [0.2, 0.4, 0.8, 1.0, 1.2, 1.5, 1.1, 0.9, 0.7, 0.5],
    "cos_ce_total": [0.95, 0.9, 0.8, 0.6, 0.3, 0.1, -0.05, 0.2, 0.5, 0.7],
    "non_normality": [0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.4, 0.3],
}
rows = []
for i in range(10):
    r = {"step": i + 1, "lr": 0.1, "loss": 3.0 - 0.1 * i}
    r.update({k: v[i] for k, v in deq.items()})
    rows.append(r)
write("deq_geometry.jsonl", {"header": True, "run": "deq", "total_steps": 10}, rows)
