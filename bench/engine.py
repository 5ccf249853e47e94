#!/usr/bin/env python3
"""Benchmark of the engine: how busy the trainers are when an LLM proposes, and how
throughput grows with workers.

Training is a sleep of the budget B (a process that prints `val_bpb`), so the machine's two
cores are not the limit; the proposer is a scripted Chat Completions server on 127.0.0.1
that answers every request after a fixed latency L with one SEARCH/REPLACE edit of one of
ten constants (the exact wire format of an OpenAI-compatible server). Decisions are greedy
(one run per experiment) so that every experiment is one run.

Definitions (also in BENCHMARKS.md):
- duty cycle of a worker: the seconds its runs trained (run_started → run_finished, as the
  bench sees the JSON events) over the seconds from its first run's start to its last
  run's end, the baseline excluded. The mean over workers is printed.
- throughput: experiments finished per minute of wall time after the baseline.
- overhead per experiment: wall seconds between one run's end and the next run's start on
  the same worker, minus nothing: with proposals prepared ahead it is the harness alone.

Usage: cargo build --release && python3 bench/engine.py [--budget 2] [--latency 0.6]
"""

import argparse
import http.server
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchrepo import commit_all

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

TRAIN = """K0 = 0.5
K1 = 0.5
K2 = 0.5
K3 = 0.5
K4 = 0.5
K5 = 0.5
K6 = 0.5
K7 = 0.5
K8 = 0.5
K9 = 0.5
import os, time
time.sleep(float(os.environ['AUTORESEARCH_TIME_BUDGET']))
ks = [K0, K1, K2, K3, K4, K5, K6, K7, K8, K9]
value = 1 + sum((k - 0.3) ** 2 for k in ks)
print(f'val_bpb: {value:.6f}')
"""

CONFIG = """editable = ["train.py"]
read_only = ["prepare.py"]
command = "python3 train.py"
budget = "{budget}s"
timeout = "{timeout}s"
tag = "bench"
report_every = 0

[agent]
backend = "openai"
model = "bench-model"
base_url = "{url}"
max_cost_usd = 1000
# The LLM alone by default (--tuner off): every proposal waits L, so the figures are what
# pipelining buys; --tuner search adds the hybrid's turns and its filling of idle workers.
tuner = "{tuner}"
{ahead}

[decision]
mode = "greedy"

[metric]
name = "val_bpb"
direction = "minimize"
"""


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each chat completion after `latency` seconds with one constant changed."""

    latency = 0.6
    counter = [0]
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        prompt = json.dumps(json.loads(body))
        time.sleep(self.latency)
        with self.lock:
            self.counter[0] += 1
            n = self.counter[0]
        # The constants as the prompt shows the file (the best's text).
        found = re.findall(r"K(\d) = ([0-9.]+)", prompt)
        current = {}
        for k, v in found:
            current.setdefault(k, v)
        k = str(random.Random(n).randrange(10))
        old = current.get(k, "0.5")
        new = f"{float(old) * random.Random(n * 7).uniform(0.5, 0.95) + 1e-6 * n:.6f}"
        answer = (
            f"DESCRIPTION: K{k} {old} -> {new}\nCATEGORY: hyperparameters\n\n"
            f"train.py\n```python\n<<<<<<< SEARCH\nK{k} = {old}\n=======\nK{k} = {new}\n>>>>>>> REPLACE\n```\n"
        )
        reply = {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "bench-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)



def session(binary, url, budget, workers, experiments, tuner="off"):
    """Runs one session; returns per-worker (start, end) intervals of its experiments."""
    d = tempfile.mkdtemp(prefix="ar-engine-")
    try:
        return run_session(d, binary, url, budget, workers, experiments, tuner)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_session(d, binary, url, budget, workers, experiments, tuner):
    with open(os.path.join(d, "train.py"), "w") as f:
        f.write(TRAIN)
    with open(os.path.join(d, "prepare.py"), "w") as f:
        f.write("TIME_BUDGET = 300\n")
    with open(os.path.join(d, "program.md"), "w") as f:
        f.write("Lower val_bpb by changing one constant at a time.\n")
    with open(os.path.join(d, "autoresearch.toml"), "w") as f:
        # workers = 0: one worker, each proposal asked for once the run before it is
        # decided (`ahead = 0`, the hand-run loop's order: the serial baseline).
        ahead = "ahead = 0" if not workers else ""
        f.write(CONFIG.format(budget=budget, timeout=budget * 10 + 10, url=url, ahead=ahead, tuner=tuner))
    commit_all(d)
    args = [binary, "run", "--yes", "--json", "--repo", d, "-n", str(experiments)]
    args += ["--workers", str(max(workers, 1))]
    env = dict(os.environ, OPENAI_API_KEY="sk-bench", AUTORESEARCH_PLATFORM="cpu")
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    runs = {}  # (worker, iteration) -> [start, end]
    for line in p.stdout:
        now = time.monotonic()
        e = json.loads(line)
        key = (e.get("worker", 0), e.get("iteration"))
        if e["event"] == "run_started":
            runs[key] = [now, None]
        elif e["event"] == "run_finished" and key in runs:
            runs[key][1] = now
    err = p.stderr.read()
    if p.wait() != 0:
        sys.exit(f"session failed ({p.returncode}): {err}")
    per_worker = {}
    for (w, it), (s, e) in runs.items():
        if it and e is not None:
            per_worker.setdefault(w, []).append((s, e))
    return per_worker


def measure(per_worker):
    duties, gaps = [], []
    first = min(s for iv in per_worker.values() for s, _ in iv)
    last = max(e for iv in per_worker.values() for _, e in iv)
    n = sum(len(iv) for iv in per_worker.values())
    for iv in per_worker.values():
        iv.sort()
        busy = sum(e - s for s, e in iv)
        span = iv[-1][1] - iv[0][0]
        duties.append(busy / span if span > 0 else 1.0)
        gaps += [b[0] - a[1] for a, b in zip(iv, iv[1:])]
    return {
        "duty": statistics.mean(duties),
        "per_min": 60 * n / (last - first),
        "gap_ms": 1000 * statistics.median(gaps) if gaps else 0.0,
        "max_gap_ms": 1000 * max(gaps) if gaps else 0.0,
        "n": n,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=2.0, help="B: seconds of training per run")
    ap.add_argument("--latency", type=float, default=0.6, help="L: seconds per LLM answer")
    ap.add_argument("--rounds", type=int, default=6, help="experiments per worker")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "autoresearch"))
    ap.add_argument("--tuner", default="off", choices=["off", "search"], help="[agent] tuner")
    ap.add_argument("--workers", default="0,1,2,4,8", help="0: one worker with [agent] ahead = 0 (serial)")
    a = ap.parse_args()
    Scripted.latency = a.latency
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    print(f"B = {a.budget:g} s, L = {a.latency:g} s, {a.rounds} experiments per worker, greedy, tuner {a.tuner}")
    print(f"{'setup':<22}{'duty':>7}{'exp/min':>9}{'×N=1':>7}{'gap ms':>8}{'max gap':>9}{'n':>4}")
    base = None
    for workers in [int(w) for w in a.workers.split(",")]:
        label = f"engine, {workers} worker(s)" if workers else "1 worker, ahead = 0"
        m = measure(session(a.binary, url, a.budget, workers, a.rounds * (workers or 1), a.tuner))
        if workers == 1:
            base = m["per_min"]
        ratio = f"{m['per_min'] / base:.2f}" if base else "-"
        print(f"{label:<22}{m['duty']:>7.3f}{m['per_min']:>9.1f}{ratio:>7}{m['gap_ms']:>8.0f}{m['max_gap_ms']:>9.0f}{m['n']:>4}")
    server.shutdown()


if __name__ == "__main__":
    main()
