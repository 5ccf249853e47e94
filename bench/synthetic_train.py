"""A synthetic research problem with a known truth, for benchmarking keep/discard rules.

The "training run" is instant: its metric is a known function of the four top-level numeric
constants below (a quadratic bowl in log space, minimum 1.0 at OPTIMUM) plus Gaussian noise
of standard deviation BENCH_SIGMA. The noise is seeded from BENCH_NOISE_SEED,
AUTORESEARCH_SEED and the constants, so a run is reproducible: the same code and seed give
the same number, a different seed or a different code gives an independent draw.

It prints `val_bpb: X` (what autoresearch reads) and appends the TRUE value, with the
constants and the observed value, as one JSON line to BENCH_TRUTH_FILE when that is set.
autoresearch never reads that file; bench/run.py does, to score the decisions.

BENCH_PROBLEM picks the truth: `bowl` (default; each knob on its own) or `rotated`, where
the knobs interact: the best learning rate moves with the width (a narrow valley along
LEARNING_RATE × HIDDEN_DIM = constant, 10× flatter along it than across), weight decay and
warmup share a tilted bowl, and past a cliff (LEARNING_RATE × HIDDEN_DIM more than 2× the
optimum's) training diverges: the script prints `loss diverged` and exits 1, as a real run
would, and writes `{"crash": true}` to the truth file.

Only the four knobs may be top-level `NAME = number` lines: the built-in search turns every
such constant it finds.
"""

LEARNING_RATE = 0.01
WEIGHT_DECAY = 0.4
WARMUP_RATIO = 0.02
HIDDEN_DIM = 256

import hashlib
import json
import math
import os
import re
import random
import sys

KNOBS = ("LEARNING_RATE", "WEIGHT_DECAY", "WARMUP_RATIO", "HIDDEN_DIM")
OPTIMUM = {"LEARNING_RATE": 0.05, "WEIGHT_DECAY": 0.1, "WARMUP_RATIO": 0.03, "HIDDEN_DIM": 700}
# Curvature per knob in (natural) log space: how much a wrong order of magnitude costs.
WEIGHTS = {"LEARNING_RATE": 0.02, "WEIGHT_DECAY": 0.01, "WARMUP_RATIO": 0.005, "HIDDEN_DIM": 0.015}


def true_value(constants, problem="bowl"):
    """The noiseless metric: 1.0 at the optimum, higher elsewhere; None past the cliff."""
    u = {k: math.log(constants[k] / OPTIMUM[k]) for k in KNOBS}
    if problem == "bowl":
        return 1.0 + sum(WEIGHTS[k] * u[k] ** 2 for k in KNOBS)
    if problem != "rotated":
        raise ValueError(f"unknown BENCH_PROBLEM {problem!r}")
    if crashes(constants):
        return None
    across = (u["LEARNING_RATE"] + u["HIDDEN_DIM"]) / math.sqrt(2)
    along = (u["LEARNING_RATE"] - u["HIDDEN_DIM"]) / math.sqrt(2)
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    a = c * u["WEIGHT_DECAY"] + s * u["WARMUP_RATIO"]
    b = -s * u["WEIGHT_DECAY"] + c * u["WARMUP_RATIO"]
    return 1.0 + 0.04 * across ** 2 + 0.004 * along ** 2 + 0.015 * a ** 2 + 0.003 * b ** 2


def crashes(constants):
    """The cliff of the rotated problem: too large a learning rate for the width."""
    return (math.log(constants["LEARNING_RATE"] / OPTIMUM["LEARNING_RATE"])
            + math.log(constants["HIDDEN_DIM"] / OPTIMUM["HIDDEN_DIM"])) > math.log(2)


def key(constants):
    """A canonical text for a set of constants (the truth file's join key)."""
    return ",".join(f"{k}={float(constants[k])!r}" for k in KNOBS)


def noise(constants, seed, noise_seed, sigma):
    """One reproducible Gaussian draw for this code, seed and benchmark seed."""
    if sigma == 0:
        return 0.0
    text = f"{noise_seed}|{seed}|{key(constants)}"
    rng = random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))
    return rng.gauss(0.0, sigma)


def read_constants(source):
    """The knobs' values from a copy of this file's text (used by the harness on each commit)."""
    found = {}
    for k in KNOBS:
        m = re.search(rf"^{k}\s*=\s*([^#\n]+)", source, re.M)
        if m is None:
            raise ValueError(f"{k} not found")
        found[k] = float(eval(m.group(1).strip(), {"__builtins__": {}}))
    return found


def main():
    constants = {k: float(globals()[k]) for k in KNOBS}
    seed = int(os.environ.get("AUTORESEARCH_SEED", "1"))
    noise_seed = int(os.environ.get("BENCH_NOISE_SEED", "0"))
    sigma = float(os.environ.get("BENCH_SIGMA", "0"))
    problem = os.environ.get("BENCH_PROBLEM", "bowl")
    truth = true_value(constants, problem)
    path = os.environ.get("BENCH_TRUTH_FILE")
    if truth is None:
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({"key": key(constants), "seed": seed, "crash": True}) + "\n")
        print("loss diverged", file=sys.stderr)
        sys.exit(1)
    observed = truth + noise(constants, seed, noise_seed, sigma)
    print(f"val_bpb: {observed:.8f}")
    if path:
        line = json.dumps({"key": key(constants), "seed": seed, "true": truth, "observed": observed})
        with open(path, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
