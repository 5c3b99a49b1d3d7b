#!/usr/bin/env python3
"""Shards of one rankscope analysis as Ray tasks, then `rankscope merge` (issue 16 item 4).

Each task runs `rankscope COMMAND … --shard I/N --session shard_I.json` and asks Ray for the
CPUs it uses (`num_cpus`), so Ray's scheduler, not this script, decides where and when each
shard runs. Against a running cluster pass `--address auto` (the folder, the batches and the
output folder must be on a file system every node sees); without it Ray starts a local cluster
of `--cpus` CPUs. The script also runs the same analysis unsharded in one process, checks that
the merged session equals it number for number, and prints both wall times.

A benchmark, not a test: Python never runs in the test command. Needs `pip install ray`.

    python scripts/bench_ray.py --rankscope target/release/rankscope --shards 2 -- \
        probe --eval ../shared/fixtures/eval_tokens.safetensors ../shared/fixtures/runs --quiet
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import ray


@ray.remote
def analyse_shard(rankscope, command, index, count, threads, out):
    """One shard, on `threads` threads; returns its session file and its wall time."""
    started = time.perf_counter()
    subprocess.run(
        [rankscope, *command, "--shard", f"{index}/{count}", "--threads", str(threads),
         "--session", out],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return out, time.perf_counter() - started


def without_shard(path):
    with open(path) as f:
        session = json.load(f)
    session.pop("shard", None)
    return session


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rankscope", default="target/release/rankscope", help="the rankscope binary")
    ap.add_argument("--shards", type=int, default=2, help="N: shards (Ray tasks)")
    ap.add_argument("--threads", type=int, default=1, help="threads (and Ray CPUs) per shard")
    ap.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray cluster")
    ap.add_argument("--address", default=None, help="a running Ray cluster (`auto`)")
    ap.add_argument("--out", default=None, help="folder for the session files (default: a temporary one)")
    ap.add_argument("command", nargs=argparse.REMAINDER,
                    help="after `--`: the rankscope command and its arguments (spectra or probe)")
    a = ap.parse_args()
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not command:
        ap.error("give the rankscope command after `--`, e.g. -- spectra runs/")
    rankscope = os.path.abspath(a.rankscope)
    out = a.out or tempfile.mkdtemp(prefix="rankscope-ray-")
    os.makedirs(out, exist_ok=True)
    cpus = a.cpus or a.shards * a.threads

    # One process, every shard's CPUs as threads: what the shards are measured against.
    single = os.path.join(out, "single.session.json")
    started = time.perf_counter()
    subprocess.run([rankscope, *command, "--threads", str(cpus), "--session", single],
                   check=True, stdout=subprocess.DEVNULL)
    t_single = time.perf_counter() - started

    started = time.perf_counter()
    if a.address:
        ray.init(address=a.address)
    else:
        ray.init(num_cpus=cpus, include_dashboard=False)
    t_init = time.perf_counter() - started
    started = time.perf_counter()
    tasks = [
        analyse_shard.options(num_cpus=a.threads).remote(
            rankscope, command, i, a.shards, a.threads,
            os.path.join(out, f"shard_{i}_of_{a.shards}.session.json"))
        for i in range(1, a.shards + 1)
    ]
    results = ray.get(tasks)
    t_shards = time.perf_counter() - started
    merged = os.path.join(out, "merged.session.json")
    subprocess.run([rankscope, "merge", *[r[0] for r in results], "-o", merged], check=True,
                   stdout=subprocess.DEVNULL)
    t_total = time.perf_counter() - started
    ray.shutdown()

    same = without_shard(merged) == without_shard(single)
    print(f"rankscope {' '.join(command)}")
    print(f"  one process, {cpus} thread(s):             {t_single:8.2f} s")
    print(f"  Ray: {a.shards} shard task(s) × {a.threads} thread(s): {t_shards:8.2f} s "
          f"(with the merge: {t_total:.2f} s; Ray start-up {t_init:.2f} s not counted)")
    for i, (_, t) in enumerate(results, 1):
        print(f"    shard {i}/{a.shards}: {t:.2f} s")
    print(f"  merged session equals the unsharded one: {'yes' if same else 'NO'}")
    print(f"  session files in {out}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
