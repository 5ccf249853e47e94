#!/usr/bin/env python3
"""Benchmark of the hybrid proposer: the LLM alone against the LLM with the built-in tuner.

The problem (bench/hybrid_train.py) has four numeric knobs (synthetic_train.py's bowl) and
four structural choices written as strings, which only an LLM can change. The LLM is
scripted and served over the real Chat Completions wire format on 127.0.0.1 (no model is
involved, so both arms see the same "model"): it proposes its structural ideas in a fixed
order (5 that help, 2 that hurt, about what an LLM would try), then, out of ideas, guesses
numbers as an LLM doing a tuner's job would: a random knob times or divided by 2 or 3
(seeded). Each of its answers is one SEARCH/REPLACE block on the current file, which it
reads from the prompt.

Arms, same problem, same experiments (`-n`), same seeds, one session each:
- llm:    [agent] tuner = "off" (every proposal is an LLM call)
- hybrid: [agent] tuner = "search" (the default)
Printed per σ: the TRUE value of the best after the experiments (mean over seeds), the LLM
calls made (rows of the journal's llm_calls), and the experiments per proposer.

Usage: cargo build --release && python3 bench/hybrid.py [--experiments 30] [--seeds 3]
"""

import argparse
import http.server
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import hybrid_train  # noqa: E402
import synthetic_train  # noqa: E402
from benchrepo import IDENTITY, commit_all  # noqa: E402

IDEAS = [
    ("ACTIVATION", "gelu", "GELU instead of ReLU"),
    ("NORM", "none", "drop the normalisation layers"),
    ("SCHEDULE", "cosine", "cosine learning-rate decay"),
    ("ATTENTION", "local", "local attention windows"),
    ("ACTIVATION", "swiglu", "SwiGLU MLP"),
    ("SCHEDULE", "wsd", "warmup-stable-decay schedule"),
    ("NORM", "rmsnorm", "RMSNorm instead of LayerNorm"),
]

CONFIG = """editable = ["train.py"]
read_only = []
command = "python3 -S train.py"
budget = "1s"
timeout = "60s"
tag = "bench"
report_every = 0

[agent]
backend = "openai"
base_url = "{url}/v1"
model = "scripted"
structured = "off"
stream = false
tuner = "{tuner}"
seed = {seed}
max_attempts = 1

[decision]
mode = "{mode}"

[metric]
name = "val_bpb"
direction = "minimize"
"""



class ScriptedLlm:
    """Answers Chat Completions requests: the next idea, then numeric guesses."""

    def __init__(self, seed):
        self.next_idea = 0
        self.rng = random.Random(seed)
        self.calls = 0
        self.lock = threading.Lock()

    def answer(self, prompt):
        with self.lock:
            self.calls += 1
            while self.next_idea < len(IDEAS):
                name, value, why = IDEAS[self.next_idea]
                self.next_idea += 1
                m = re.search(rf'^{name} = "([a-z]+)"$', prompt, re.M)
                if m and m.group(1) != value:
                    return why, m.group(0), f'{name} = "{value}"'
            name = self.rng.choice(hybrid_train.KNOBS)
            m = re.search(rf"^{name} = ([0-9.e+-]+)$", prompt, re.M)
            old = float(m.group(1))
            factor = self.rng.choice([2.0, 0.5, 3.0, 1 / 3])
            new = old * factor
            new_text = str(round(new)) if name == "HIDDEN_DIM" else f"{new:.6g}"
            return f"{name} {m.group(1)} -> {new_text}", m.group(0), f"{name} = {new_text}"


def serve(llm):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, body):
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/v1/models":
                self.reply({"object": "list", "data": [{"id": "scripted", "object": "model"}]})
            else:
                self.send_error(404)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            prompt = "\n".join(m["content"] for m in body["messages"] if isinstance(m["content"], str))
            description, search, replace = llm.answer(prompt)
            text = (f"DESCRIPTION: {description}\nCATEGORY: architecture\n\ntrain.py\n```python\n"
                    f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n```\n")
            self.reply({
                "id": "chatcmpl-bench", "object": "chat.completion", "created": 0,
                "model": "scripted",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050},
            })

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def session(binary, workdir, tuner, sigma, seed, experiments):
    mode = "greedy" if sigma == 0 else "noise-aware"
    repo = os.path.join(workdir, f"{tuner}-s{sigma}-{seed}")
    os.makedirs(repo)
    shutil.copy(os.path.join(HERE, "hybrid_train.py"), os.path.join(repo, "train.py"))
    llm = ScriptedLlm(seed)
    server = serve(llm)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with open(os.path.join(repo, "autoresearch.toml"), "w") as f:
        f.write(CONFIG.format(url=url, tuner=tuner, seed=seed, mode=mode))
    env = dict(os.environ, **IDENTITY)
    env.pop("OPENAI_API_KEY", None)
    env.update(AUTORESEARCH_PLATFORM="cpu", BENCH_SIGMA=repr(sigma), BENCH_NOISE_SEED=str(seed))
    commit_all(repo, "hybrid problem")
    out = subprocess.run(
        [binary, "run", "--yes", "--quiet", "--grace", "0.2", "-n", str(experiments),
         "--repo", repo], env=env, capture_output=True, text=True)
    server.shutdown()
    if out.returncode != 0:
        raise RuntimeError(f"autoresearch failed in {repo} (exit {out.returncode}):\n"
                           f"{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    best = subprocess.run(["git", "show", "autoresearch/bench:train.py"], cwd=repo,
                          capture_output=True, text=True, check=True).stdout
    truth = hybrid_train.true_value(*hybrid_train.read(best))
    db = sqlite3.connect(os.path.join(repo, ".autoresearch", "journal.sqlite"))
    calls = db.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0]
    by = dict(db.execute(
        "SELECT proposer, COUNT(*) FROM experiments WHERE iteration > 0 "
        "AND status IN ('keep', 'discard', 'crash') GROUP BY proposer").fetchall())
    return {"true": truth, "calls": calls, "by": by}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiments", type=int, default=30)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--sigmas", default="0,0.002")
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "autoresearch"))
    args = p.parse_args()
    sigmas = [float(s) for s in args.sigmas.split(",")]
    workdir = tempfile.mkdtemp(prefix="autoresearch-hybrid-")
    keep = os.environ.get("BENCH_KEEP") == "1"  # leave the repos for a look
    probe = {"LEARNING_RATE": 0.2, "WEIGHT_DECAY": 0.01, "WARMUP_RATIO": 0.5, "HIDDEN_DIM": 64}
    assert abs(hybrid_train.bowl(probe) - synthetic_train.true_value(probe)) < 1e-12
    start = hybrid_train.true_value(*hybrid_train.read(open(os.path.join(HERE, "hybrid_train.py")).read()))
    print(f"hybrid benchmark: {args.experiments} experiments, seeds 1..{args.seeds}; "
          f"start {start:.4f}, best possible {1.0 - 0.030 - 0.005 - 0.019:.4f}")
    print(f"{'σ':>6} {'arm':>7} {'true best':>10} {'LLM calls':>10}  experiments by proposer")
    try:
        for sigma in sigmas:
            for tuner, arm in (("off", "llm"), ("search", "hybrid")):
                rs = [session(args.binary, workdir, tuner, sigma, s, args.experiments)
                      for s in range(1, args.seeds + 1)]
                by = {}
                for r in rs:
                    for k, v in r["by"].items():
                        by[k] = by.get(k, 0) + v
                share = ", ".join(f"{k} {v / len(rs):.1f}" for k, v in sorted(by.items()))
                print(f"{sigma:>6} {arm:>7} {statistics.mean(r['true'] for r in rs):>10.4f} "
                      f"{statistics.mean(r['calls'] for r in rs):>10.1f}  {share}", flush=True)
    finally:
        if keep:
            print(f"repos kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
