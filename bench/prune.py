#!/usr/bin/env python3
"""Benchmark of pruning hopeless runs, end to end, plus the rule's simulation.

1. The simulation: `cargo run --release --example prune_bench` (the same Rust rule over
   generated sessions with realistic noise and crossings; its own table).
2. End to end: for each benchmark seed, two sessions of the built-in search on
   bench/prune_train.py (the bench bowl, printing a curve for BENCH_SECONDS), one with
   `[prune] enabled = true` and one with `enabled = false`, on the engine with one worker
   (so every run's duration is in the journal). Each run's TRUE value is in a side file the
   script writes at its start; the harness joins it to the journal's measurements in order.

Figures: GPU seconds of all runs; of the losing runs (true value not better than the true
value of the best they were compared with), the share of their full-run time that
pruning saved; the real improvements (true value better than their parent's) that were
pruned; and the true value of each session's best at the end.

Usage: cargo build --release && python3 bench/prune.py [--seeds 2] [--experiments 30] [--no-sim]
"""

import argparse
import concurrent.futures as cf
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import tempfile

from benchrepo import commit_all

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CONFIG = """editable = ["train.py"]
read_only = []
command = "python3 -S train.py"
budget = "1s"
timeout = "60s"
tag = "bench"
report_every = 0

[agent]
backend = "search"
seed = {seed}

[metric]
name = "val_bpb"
direction = "minimize"

[prune]
enabled = {enabled}
"""



def session(binary, seed, enabled, experiments, sigma, keep):
    d = tempfile.mkdtemp(prefix="prune-bench-")
    shutil.copy(os.path.join(HERE, "prune_train.py"), os.path.join(d, "train.py"))
    with open(os.path.join(d, "autoresearch.toml"), "w") as f:
        f.write(CONFIG.format(seed=seed, enabled="true" if enabled else "false"))
    with open(os.path.join(d, ".gitignore"), "w") as f:
        f.write("truth.jsonl\n")
    commit_all(d)
    truth = os.path.join(d, "truth.jsonl")
    env = {**os.environ, "BENCH_TRUTH_FILE": truth, "BENCH_NOISE_SEED": str(seed),
           "BENCH_SIGMA": str(sigma), "BENCH_DIR": HERE, "AUTORESEARCH_PLATFORM": "cpu"}
    out = subprocess.run([binary, "run", "--yes", "--grace", "0.2", "--quiet", "--repo", d,
                          "--workers", "1", "-n", str(experiments)],
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"session failed ({d}):\n{out.stdout}\n{out.stderr}")
    result = score(d, truth)
    if not keep:
        shutil.rmtree(d, ignore_errors=True)
    return result


def score(d, truth_path):
    lines = [json.loads(l) for l in open(truth_path)]
    db = sqlite3.connect(os.path.join(d, ".autoresearch", "journal.sqlite"))
    runs = db.execute(
        "SELECT m.experiment_id, m.seed, m.value, m.duration_s, e.status, e.parent, e.commit_sha, e.iteration "
        "FROM measurements m JOIN experiments e ON e.id = m.experiment_id ORDER BY m.id").fetchall()
    if len(runs) != len(lines):
        raise SystemExit(f"{d}: {len(runs)} runs but {len(lines)} truth lines")
    true_of_commit = {}
    for r, t in zip(runs, lines):
        if r[1] != t["seed"]:
            raise SystemExit(f"{d}: seeds out of step")
        true_of_commit[r[6]] = t["true"]
    full = statistics.median(r[3] for r in runs if r[4] != "pruned")
    total = sum(r[3] for r in runs)
    losing_full, saved, winners, winners_pruned, pruned = 0.0, 0.0, 0, 0, 0
    seen = set()
    for r, t in zip(runs, lines):
        eid, _, _, dur, status, parent, commit, it = r
        if it == 0 or eid in seen:
            continue
        seen.add(eid)
        parent_true = true_of_commit.get(parent)
        if parent_true is None:
            continue
        if t["true"] < parent_true:
            winners += 1
            winners_pruned += status == "pruned"
        else:
            losing_full += full
            if status == "pruned":
                saved += full - dur
        pruned += status == "pruned"
    best = db.execute("SELECT commit_sha FROM experiments WHERE status = 'keep' ORDER BY id DESC LIMIT 1").fetchone()[0]
    return {"gpu_s": total, "full_s": full, "losing_full_s": losing_full, "saved_s": saved,
            "winners": winners, "winners_pruned": winners_pruned, "pruned": pruned,
            "runs": len(runs), "final_true": true_of_commit[best]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--experiments", type=int, default=30)
    ap.add_argument("--sigma", type=float, default=0.005)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-sim", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "autoresearch"))
    a = ap.parse_args()
    if not a.no_sim:
        sim = subprocess.run(["cargo", "run", "--quiet", "--release", "--example", "prune_bench"],
                             cwd=ROOT, capture_output=True, text=True)
        print(sim.stdout or sim.stderr)
    jobs = [(s, e) for s in range(1, a.seeds + 1) for e in (True, False)]
    with cf.ThreadPoolExecutor(a.jobs) as ex:
        res = dict(zip(jobs, ex.map(lambda j: session(a.binary, j[0], j[1], a.experiments, a.sigma, a.keep), jobs)))
    print(f"End to end: {a.seeds} seed(s) × {a.experiments} experiments, σ = {a.sigma}, engine --workers 1, budget 1 s\n")
    print("| seed | pruning | runs | pruned | GPU s | losing runs' GPU time saved | real improvements pruned | true final |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    tot = {True: [0.0, 0.0, 0, 0, 0.0], False: [0.0, 0.0, 0, 0, 0.0]}
    for (s, e), r in sorted(res.items(), key=lambda kv: (kv[0][0], not kv[0][1])):
        share = 100 * r["saved_s"] / r["losing_full_s"] if r["losing_full_s"] else 0.0
        print(f"| {s} | {'on' if e else 'off'} | {r['runs']} | {r['pruned']} | {r['gpu_s']:.1f} | {share:.1f}% | "
              f"{r['winners_pruned']} of {r['winners']} | {r['final_true']:.5f} |")
        t = tot[e]
        t[0] += r["saved_s"]; t[1] += r["losing_full_s"]; t[2] += r["winners_pruned"]; t[3] += r["winners"]; t[4] += r["gpu_s"]
    on, off = tot[True], tot[False]
    print(f"\nWith pruning: {100 * on[0] / max(on[1], 1e-9):.1f}% of the losing runs' GPU time saved, "
          f"{on[2]} of {on[3]} real improvements pruned; GPU seconds {on[4]:.1f} (on) vs {off[4]:.1f} (off)")


if __name__ == "__main__":
    main()
