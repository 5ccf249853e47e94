#!/usr/bin/env python3
"""Benchmark of autoresearch's keep/discard rules on a problem with a known truth.

For each noise level σ and each benchmark seed, runs two sessions of the built-in search
proposer on bench/synthetic_train.py in a fresh temp git repo: noise-aware (the default) and
greedy (karpathy's rule). Each run's TRUE value comes from the side file the script writes
(BENCH_TRUTH_FILE), which autoresearch never reads; the harness joins it to the journal's
measurements (one truth line per run, in order) and scores every decision. Optuna's TPE
sampler gets the same problem and the same number of evaluations (bench/tpe.py, run with
bench/.venv's Python when present).

Definitions (also in BENCHMARKS.md):
- run: one training process (a row of the journal's `measurements` table), repeats, drift
  rechecks and re-measurements of the best before a revisit included. A revisited near
  miss is a new experiment (a journal row) with its own runs.
- false keep: an experiment kept (iteration ≥ 1) whose true value is not lower than the
  true value of the best it replaced.
- final: the true value of the session's best after its `--experiments` experiments.
- @G runs: the best after the first G runs, G = experiments + 1 (what greedy spends on the
  experiments); @R runs: after R runs, R = the noise-aware session's total runs for the
  same σ and seed. The best "after r runs" is the last keep whose decision had been made
  within the first r runs. Greedy is given max(experiments, R − 1) experiments so that it
  reaches R runs; its "final" is still read after `--experiments` of them.
- runs / real gain: total runs of the session (to `--experiments`) divided by the number
  of keeps that are true improvements.

Usage: cargo build && python3 bench/run.py [--quick]
"""

import argparse
import concurrent.futures as cf
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import synthetic_train  # noqa: E402  (the truth function and the knobs' parser)
from benchrepo import IDENTITY, commit_all  # noqa: E402

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

[decision]
mode = "{mode}"
{decision}

[metric]
name = "val_bpb"
direction = "minimize"
"""



def session(binary, workdir, problem, mode, sigma, seed, experiments, decision=""):
    """Runs one session in a fresh repo; returns its scored trajectory."""
    repo = os.path.join(workdir, f"{problem}-{mode}-s{sigma}-{seed}")
    os.makedirs(repo)
    shutil.copy(os.path.join(HERE, "synthetic_train.py"), os.path.join(repo, "train.py"))
    with open(os.path.join(repo, "autoresearch.toml"), "w") as f:
        f.write(CONFIG.format(seed=seed, mode=mode, decision=decision))
    env = dict(os.environ, **IDENTITY)
    env.pop("ANTHROPIC_API_KEY", None)
    env.pop("OPENAI_API_KEY", None)
    truth = os.path.join(workdir, f"{problem}-{mode}-s{sigma}-{seed}.truth.jsonl")
    env.update(
        AUTORESEARCH_PLATFORM="cpu",
        BENCH_PROBLEM=problem,
        BENCH_SIGMA=repr(sigma),
        BENCH_NOISE_SEED=str(seed),
        BENCH_TRUTH_FILE=truth,
    )
    commit_all(repo, "synthetic problem")
    started = time.monotonic()
    out = subprocess.run(
        [binary, "run", "--yes", "--quiet", "--grace", "0.2", "-n", str(experiments),
         "--repo", repo],
        env=env, capture_output=True, text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"autoresearch failed in {repo} (exit {out.returncode}):\n"
                           f"{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return score(repo, truth, time.monotonic() - started)


def score(repo, truth_path, seconds):
    """Joins the journal's runs to the truth file and replays the decisions."""
    db = sqlite3.connect(os.path.join(repo, ".autoresearch", "journal.sqlite"))
    exps = db.execute(
        "SELECT id, iteration, status, description FROM experiments ORDER BY id").fetchall()
    runs = db.execute(
        "SELECT experiment_id, seed, value FROM measurements ORDER BY id").fetchall()
    db.close()
    with open(truth_path) as f:
        truths = [json.loads(line) for line in f]
    if len(truths) != len(runs):
        raise RuntimeError(f"{repo}: {len(runs)} journaled runs but {len(truths)} truth lines")
    true_of = {}
    crashed = set()
    for (exp, seed, value), t in zip(runs, truths):
        if t.get("crash"):
            # A run past the cliff: no value in the journal, no truth.
            if seed != t["seed"] or value is not None:
                raise RuntimeError(f"{repo}: crashed run of experiment {exp} has a value")
            crashed.add(exp)
            continue
        # The join is by order; the seed and the observed value must agree with it.
        if seed != t["seed"] or value is None or abs(value - t["observed"]) > 1e-7:
            raise RuntimeError(f"{repo}: run of experiment {exp} does not match its truth line")
        if true_of.setdefault(exp, t["true"]) != t["true"]:
            raise RuntimeError(f"{repo}: experiment {exp} ran two different codes")
    # decided[e]: how many runs had been spent when experiment e was decided (its last run
    # before any later experiment's; later runs of e are drift rechecks).
    decided, latest = {}, -1
    for i, (exp, _, _) in enumerate(runs, start=1):
        if exp >= latest:
            decided[exp] = i
            latest = exp
    steps = []  # (runs spent at the decision, iteration, kept, true value)
    for eid, iteration, status, _desc in exps:
        if eid in decided and eid in true_of:
            steps.append((decided[eid], iteration, status == "keep", true_of[eid]))
        elif eid in decided:
            steps.append((decided[eid], iteration, False, None))
    run_index = [exp for exp, _, _ in runs]
    return {"steps": steps, "runs": run_index, "exp_ids": [e[0] for e in exps],
            "crashes": len(crashed & {e[0] for e in exps if e[1] > 0}),
            "iterations": {e[0]: e[1] for e in exps}, "seconds": seconds}


def replay(s, max_iteration=None, max_runs=None):
    """Replays the decisions up to an experiment count or a run count."""
    best = None
    keeps = false_keeps = real = missed = 0
    iterations = 0
    for at, iteration, kept, true in s["steps"]:
        if max_iteration is not None and iteration > max_iteration:
            break
        if max_runs is not None and at > max_runs:
            break
        iterations = iteration
        if true is None:  # a crash
            continue
        if not kept:
            if best is not None and true < best:
                missed += 1
            continue
        if best is not None:
            keeps += 1
            if true < best:
                real += 1
            else:
                false_keeps += 1
        best = true
    # Runs spent up to and including that experiment (rechecks after it included).
    if max_iteration is not None:
        runs = len(replay_runs_to(s, max_iteration))
    else:
        runs = min(max_runs, len(s["runs"])) if max_runs is not None else len(s["runs"])
    return {"best": best, "keeps": keeps, "false_keeps": false_keeps, "real": real,
            "missed": missed,
            "runs": runs, "experiments": iterations}


def tpe(problem, sigma, seed, trials, python):
    """Optuna TPE on the same problem; None when Optuna is not installed."""
    out = subprocess.run(
        [python, os.path.join(HERE, "tpe.py"), "--problem", problem,
         "--sigma", repr(sigma), "--seed", str(seed),
         "--trials", ",".join(str(t) for t in trials)],
        capture_output=True, text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench/tpe.py failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def pair(binary, workdir, problem, sigma, seed, experiments, decision, greedy):
    """Noise-aware first (its run count R sets the equal-compute point), then greedy."""
    na = session(binary, workdir, problem, "noise-aware", sigma, seed, experiments, decision)
    r = len(replay_runs_to(na, experiments))
    gr = session(binary, workdir, problem, "greedy", sigma, seed, max(experiments, r - 1)) \
        if greedy else None
    return na, gr


def replay_runs_to(s, experiments):
    ids = {eid for eid, it in s["iterations"].items() if it <= experiments}
    out = []
    for exp in s["runs"]:
        if exp not in ids:
            break
        out.append(exp)
    return out


def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="σ ∈ {0, 0.01}, 2 seeds, 40 experiments (a few minutes)")
    ap.add_argument("--sigmas", default="0,0.002,0.01,0.02")
    ap.add_argument("--problems", default="bowl,rotated",
                    help="bowl (knobs independent), rotated (interacting knobs and a cliff)")
    ap.add_argument("--seeds", type=int, default=8, help="benchmark seeds 1..N")
    ap.add_argument("--experiments", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=2, help="sessions run in parallel")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "debug", "autoresearch"))
    ap.add_argument("--python", default=os.path.join(HERE, ".venv", "bin", "python"),
                    help="a Python with optuna, for the TPE comparison")
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--decision", default="",
                    help="extra [decision] keys for the noise-aware sessions, e.g. "
                         "'confirm_runs = 4; z = 1.5' (to explore the policy's parameters)")
    ap.add_argument("--no-greedy", action="store_true", help="skip the greedy sessions")
    ap.add_argument("--no-tpe", action="store_true", help="skip Optuna")
    ap.add_argument("--keep", action="store_true", help="keep the temp repos")
    args = ap.parse_args()
    if args.quick:
        args.sigmas, args.seeds, args.experiments = "0,0.01", 2, 40
    sigmas = [float(s) for s in args.sigmas.split(",")]
    problems = [p for p in args.problems.split(",") if p]
    seeds = list(range(1, args.seeds + 1))
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"no autoresearch binary at {args.bin}; run `cargo build` first or pass --bin")
    has_optuna = subprocess.run([args.python, "-c", "import optuna"],
                                capture_output=True).returncode == 0 \
        if os.path.exists(args.python) and not args.no_tpe else False
    if not has_optuna and not args.no_tpe:
        print(f"note: no optuna at {args.python}; skipping TPE (python3 -m venv bench/.venv && "
              "bench/.venv/bin/pip install optuna)", file=sys.stderr)

    workdir = tempfile.mkdtemp(prefix="autoresearch-bench-")
    started = time.monotonic()
    results = {}
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        decision = "\n".join(x.strip() for x in args.decision.split(";"))
        futures = {pool.submit(pair, args.bin, workdir, pb, sg, sd, args.experiments, decision,
                               not args.no_greedy): (pb, sg, sd)
                   for pb in problems for sg in sigmas for sd in seeds}
        for fut in cf.as_completed(futures):
            pb, sg, sd = futures[fut]
            results[(pb, sg, sd)] = fut.result()
            print(f"  {pb} σ={sg} seed={sd} done ({time.monotonic() - started:.0f}s)",
                  file=sys.stderr)

    g_runs = args.experiments + 1
    rows, figures = [], {}
    for pb, sg in [(pb, sg) for pb in problems for sg in sigmas]:
        agg = {"noise-aware": [], "greedy": [], "tpe": []}
        for sd in seeds:
            na, gr = results[(pb, sg, sd)]
            r = len(replay_runs_to(na, args.experiments))
            for name, s in (("noise-aware", na), ("greedy", gr)):
                if s is None:
                    continue
                final = replay(s, max_iteration=args.experiments)
                agg[name].append({
                    "experiments": final["experiments"], "runs": final["runs"],
                    "keeps": final["keeps"], "false_keeps": final["false_keeps"],
                    "real": final["real"], "missed": final["missed"], "final": final["best"],
                    "stopped_early": final["experiments"] < args.experiments,
                    "at_g": replay(s, max_runs=g_runs)["best"],
                    "at_r": replay(s, max_runs=r)["best"],
                    "per_gain": final["runs"] / final["real"] if final["real"] else None,
                    "seconds": s["seconds"], "crashes": s["crashes"],
                })
            if has_optuna:
                t = tpe(pb, sg, sd, [g_runs, r], args.python)
                agg["tpe"].append({"runs": r, "at_g": t[str(g_runs)], "at_r": t[str(r)],
                                   "final": t[str(r)]})
        figures[(pb, sg)] = agg
        for name in ("greedy", "noise-aware", "tpe"):
            xs = agg[name]
            if not xs:
                continue
            ours = name != "tpe"
            total = (lambda k: sum(x[k] for x in xs)) if ours else (lambda k: None)
            col = lambda k: mean([x.get(k) for x in xs])  # noqa: E731
            rows.append({
                "problem": pb, "σ": sg, "rule": name, "crashes": total("crashes"),
                "exps": col("experiments") if ours else None,
                "stopped": total("stopped_early"), "runs": col("runs"),
                "keeps": total("keeps"), "false": total("false_keeps"),
                "missed": total("missed"), "final": col("final"), "at_g": col("at_g"),
                "at_r": col("at_r"), "per_gain": col("per_gain") if ours else None,
            })

    print_table(rows, args, len(seeds), time.monotonic() - started, figures)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{k[0]} {k[1]}": v for k, v in figures.items()}, f, indent=1)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"repos kept in {workdir}", file=sys.stderr)


def fmt(x, spec):
    if x is None or (isinstance(x, float) and x != x):
        return "–"
    return format(x, spec)


def print_table(rows, args, n_seeds, seconds, figures):
    begin = {k: float(getattr(synthetic_train, k)) for k in synthetic_train.KNOBS}
    start = ", ".join(f"{p} {synthetic_train.true_value(begin, p):.4f}"
                      for p in args.problems.split(","))
    print(f"\n{args.experiments} experiments per session, {n_seeds} seeds per σ; true value at "
          f"the start: {start}; optimum 1.0000 (lower is better). Means over seeds; "
          f"stopped early, keeps, false keeps and missed gains are totals over seeds. "
          f"@G = after {args.experiments + 1} runs, @R = after the noise-aware session's "
          f"run count.{' Noise-aware [decision]: ' + args.decision if args.decision else ''}\n")
    cols = (("problem", "problem", "s"), ("σ", "σ", "g"), ("rule", "rule", "s"),
            ("exps", "exps", ".0f"),
            ("stopped early", "stopped", "d"), ("runs", "runs", ".1f"), ("crashes", "crashes", "d"),
            ("keeps", "keeps", "d"), ("false keeps", "false", "d"),
            ("missed gains", "missed", "d"), ("true final", "final", ".5f"),
            ("true @G", "at_g", ".5f"), ("true @R", "at_r", ".5f"),
            ("runs/real gain", "per_gain", ".1f"))
    print("| " + " | ".join(c[0] for c in cols) + " |")
    print("|" + "|".join("---" if c[1] in ("rule", "problem") else "---:" for c in cols) + "|")
    for row in rows:
        print("| " + " | ".join(fmt(row[k], spec) for _, k, spec in cols) + " |")
    print()
    for (pb, sg), agg in figures.items():
        na_r = mean([x["at_r"] for x in agg["noise-aware"]])
        if agg["tpe"]:
            tp_r = mean([x["at_r"] for x in agg["tpe"]])
            print(f"{pb} σ={sg:g}: true @R noise-aware {na_r:.5f} vs TPE {tp_r:.5f} "
                  f"({'≥ TPE: met' if na_r <= tp_r else 'behind TPE'})")
        if not agg["greedy"]:
            continue
        fk_g = sum(x["false_keeps"] for x in agg["greedy"])
        fk_n = sum(x["false_keeps"] for x in agg["noise-aware"])
        runs_g = mean([x["runs"] for x in agg["greedy"]])
        runs_n = mean([x["runs"] for x in agg["noise-aware"]])
        at_g = mean([x["at_r"] for x in agg["greedy"]])
        at_n = mean([x["at_r"] for x in agg["noise-aware"]])
        cut = f"{100 * (fk_g - fk_n) / fk_g:.0f}%" if fk_g else "n/a (greedy made none)"
        print(f"{pb} σ={sg:g}: false keeps {fk_g} → {fk_n} (cut {cut}); runs per session "
              f"{runs_g:.1f} → {runs_n:.1f} ({100 * (runs_n / runs_g - 1):+.1f}%); true @R "
              f"greedy {at_g:.5f} vs noise-aware {at_n:.5f}")
    print(f"\nwall time {seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
