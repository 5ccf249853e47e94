#!/usr/bin/env python3
"""Benchmark of the harness's own cost: what autoresearch adds to each experiment besides
training and proposing, at a small and at a large journal, and what it adds to a training
script that prints a flood of progress lines.

Definitions (also in BENCHMARKS.md):
- overhead of experiment i: the wall seconds between run i-1's end and run i's end, as the
  bench sees the `--json` events, minus run i's own duration (`duration_s` of its
  `run_finished`: the training process, spawn to exit). Every proposal is prepared while
  the run before it trains, so proposing is not in it (a proposal that came late would
  count). Everything else is the harness: committing, writing the journal, results.tsv,
  progress.md, the chart, noticing the end of the run, checking out the next one. The median over the measured experiments is
  printed. The proposer is the built-in search (it answers in well under a millisecond
  at 10 rows) and the training a Python script that prints its metric and exits.
- at 10 rows: K experiments of a session resumed after its first 10 (it grows to 10+K);
  at 10,000 rows: K experiments of another session after its journal is grown to 10,000
  experiments (copies of its own discarded rows with their measurements, under new
  numbers and state hashes: a generated journal) and it is resumed with the same tag.
  The two are measured in alternating rounds of K/3, so that the machine's other load
  weighs on both alike; the first experiment of each round has no interval and is left
  out.
- flood: a script that writes 100 MB of `loss: <number>` lines. Alone: the wall time of
  the same command line (`sh -c "python3 -S train.py"`) with stdout to a file (as the
  harness logs it). Under the harness: the run's `duration_s` (spawn, sandbox set-up and
  all, to the moment the harness has seen it end). Medians of 3 (`--repeat N`). The same
  for a script that only prints its metric: what is left there is the fixed cost per run
  (spawn, the sandbox, the cgroup, the end of the run).

Usage: cargo build --release && python3 bench/overhead.py [--experiments 40] [--rows 10000]
       python3 bench/overhead.py --flood-only [--repeat 5]   (the one-run rows alone)
"""

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

from benchrepo import commit_all

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Thirty constants (the search has moves left after a hundred experiments). The run sleeps
# 0.2 s so that the proposal made beside it is ready when it ends, as with any real
# training run (the built-in search takes ~40 ms of CPU per proposal at 10,000 rows):
# what is left between two runs is the harness.
TRAIN = "".join(f"K{i} = {0.5 + i / 100:.2f}\n" for i in range(30)) + """
import time
time.sleep(0.2)
ks = [v for k, v in sorted(globals().items()) if k.startswith("K")]
print(f"val_bpb: {1 + sum((k - 0.3) ** 2 for k in ks):.6f}")
"""

FLOOD = """import sys
line = b"step 1 | loss: 1.234567 | lr: 0.000100\\n"
block = line * (1 << 16)
n = (100 << 20) // len(block)
w = sys.stdout.buffer
for _ in range(n):
    w.write(block)
w.flush()
print("val_bpb: 1.000000")
"""

TRIVIAL = 'print("val_bpb: 1.000000")\n'

CONFIG = """editable = ["train.py"]
read_only = []
command = "python3 -S train.py"
budget = "1s"
timeout = "120s"
tag = "bench"
report_every = 0

[agent]
backend = "search"

[decision]
mode = "greedy"

[metric]
name = "val_bpb"
direction = "minimize"
"""



def make_repo(d, train, extra=""):
    with open(os.path.join(d, "train.py"), "w") as f:
        f.write(train)
    with open(os.path.join(d, "autoresearch.toml"), "w") as f:
        f.write(CONFIG + extra)
    with open(os.path.join(d, ".gitignore"), "w") as f:
        f.write("results.tsv\n")
    commit_all(d)


def session(binary, d, n, workers=None, tag="bench"):
    """Runs `n` experiments; returns the per-experiment overheads (seconds) and durations."""
    args = [binary, "run", "--yes", "--json", "--repo", d, "-n", str(n), "--tag", tag]
    if workers:
        args += ["--workers", str(workers)]
    env = dict(os.environ, AUTORESEARCH_PLATFORM="cpu")
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    overheads, durations = [], []
    last_end = None
    for line in p.stdout:
        now = time.monotonic()
        e = json.loads(line)
        kind = e["event"]
        # Every proposal is prepared while the run before it trains (the engine is the only
        # loop), so no proposing is subtracted: one not ready in time counts as overhead.
        if kind == "run_finished":
            if last_end is not None and e.get("iteration", 0) > 0:
                overheads.append(now - last_end - e["duration_s"])
            durations.append(e["duration_s"])
            last_end = now
    err = p.stderr.read()
    if p.wait() != 0:
        sys.exit(f"session failed ({p.returncode}): {err}")
    return overheads, durations


def grow(d, rows):
    """Grows the session's journal to `rows` experiments with copies of its own discards."""
    db = sqlite3.connect(os.path.join(d, ".autoresearch", "journal.sqlite"))
    cols = [r[1] for r in db.execute("PRAGMA table_info(experiments)")]
    mcols = [r[1] for r in db.execute("PRAGMA table_info(measurements)")]
    have = db.execute("SELECT COUNT(*) FROM experiments").fetchone()[0]
    top = db.execute("SELECT MAX(iteration) FROM experiments").fetchone()[0]
    src = db.execute("SELECT id FROM experiments WHERE status = 'discard' ORDER BY id").fetchall()
    if not src:
        sys.exit("no discarded experiment to copy: run more experiments first")
    ecopy = [c for c in cols if c not in ("id", "iteration", "state_hash")]
    mcopy = [c for c in mcols if c not in ("id", "experiment_id")]
    for k in range(rows - have):
        sid = src[k % len(src)][0]
        cur = db.execute(
            f"INSERT INTO experiments (iteration, state_hash, {', '.join(ecopy)}) "
            f"SELECT ?, ?, {', '.join(ecopy)} FROM experiments WHERE id = ?",
            (top + 1 + k, f"generated-{k}", sid),
        )
        db.execute(
            f"INSERT INTO measurements (experiment_id, {', '.join(mcopy)}) "
            f"SELECT ?, {', '.join(mcopy)} FROM measurements WHERE experiment_id = ?",
            (cur.lastrowid, sid),
        )
    db.commit()
    n = db.execute("SELECT COUNT(*) FROM experiments").fetchone()[0]
    db.close()
    return n


def median_ms(xs):
    return 1000 * statistics.median(xs)


def overhead(binary, k, rows, workers, rounds=3):
    """Overheads at a small and at a large journal, measured in alternating rounds so that
    whatever else the machine does weighs on both alike."""
    small_dir = tempfile.mkdtemp(prefix="ar-overhead-")
    large_dir = tempfile.mkdtemp(prefix="ar-overhead-")
    try:
        for d in (small_dir, large_dir):
            make_repo(d, TRAIN)
            session(binary, d, 10, workers)
        n = grow(large_dir, rows)
        small, large = [], []
        for _ in range(rounds):
            small += session(binary, small_dir, k // rounds + 1, workers)[0]
            large += session(binary, large_dir, k // rounds + 1, workers)[0]
        return small, large, n
    finally:
        shutil.rmtree(small_dir, ignore_errors=True)
        shutil.rmtree(large_dir, ignore_errors=True)


def flood(binary, script=FLOOD, sandbox=True, repeat=3):
    """Medians of `repeat`: (alone, under the harness) seconds of one run of `script`."""
    d = tempfile.mkdtemp(prefix="ar-overhead-")
    try:
        make_repo(d, script, "" if sandbox else '\n[sandbox]\nmode = "none"\n')
        alone = []
        for _ in range(repeat):
            with open(os.path.join(d, "alone.log"), "wb") as log:
                t = time.monotonic()
                # The command line the harness runs, through the shell as it does.
                subprocess.run(["sh", "-c", "python3 -S train.py"], cwd=d, stdout=log, check=True)
                alone.append(time.monotonic() - t)
        os.remove(os.path.join(d, "alone.log"))
        # The baseline's run of a new session each time (greedy: one run).
        under = []
        for i in range(repeat):
            _, durations = session(binary, d, 1, tag=f"flood{i}")
            under.append(durations[0])
        return statistics.median(alone), statistics.median(under)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--experiments", type=int, default=40, help="K: experiments measured")
    ap.add_argument("--rows", type=int, default=10000, help="the large journal's experiments")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "autoresearch"))
    ap.add_argument("--skip-flood", action="store_true")
    ap.add_argument("--flood-only", action="store_true", help="only the one-run rows (a minute)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per one-run row (the median is shown)")
    a = ap.parse_args()
    if not a.flood_only:
        experiments(a)
    if not a.skip_flood:
        runs(a)


def experiments(a):
    print(f"harness overhead per experiment, median of {a.experiments} (search proposer, greedy)")
    print(f"{'setup':<24}{'10 rows':>10}{f'{a.rows} rows':>13}{'ratio':>8}")
    # A plain `run` is the engine with one worker (the one-tree loop is gone). With more
    # workers runs overlap, and "the time between two runs' ends" is no longer a cost.
    for workers, label in [(None, "plain run (1 worker)")]:
        small, large, n = overhead(a.binary, a.experiments, a.rows, workers)
        s, l = median_ms(small), median_ms(large)
        print(f"{label:<24}{s:>8.1f}ms{l:>11.1f}ms{l / s:>8.2f}   ({n} rows; {len(small)} and {len(large)} measured)")


def runs(a):
    print(f"one run, alone vs under the harness (medians of {a.repeat})")
    for label, script, sandbox in [
        ("100 MB of progress lines", FLOOD, True),
        ("the same, [sandbox] none", FLOOD, False),
        ("a script that only prints its metric", TRIVIAL, True),
        ("the same, [sandbox] none", TRIVIAL, False),
    ]:
        alone, under = flood(a.binary, script, sandbox, a.repeat)
        print(f"  {label:<38} alone {alone:.3f} s, under {under:.3f} s, "
              f"ratio {under / alone:.2f}")


if __name__ == "__main__":
    main()
