"""A synthetic research problem with a known truth, for benchmarking keep/discard rules.

The "training run" is instant: its metric is a known function of the four top-level numeric
constants below (a quadratic bowl in log space, minimum 1.0 at OPTIMUM) plus Gaussian noise
of standard deviation BENCH_SIGMA. The noise is seeded from BENCH_NOISE_SEED,
AUTORESEARCH_SEED and the constants, so a run is reproducible: the same code and seed give
the same number, a different seed or a different code gives an independent draw.

It prints `val_bpb: X` (what autoresearch reads) and appends the TRUE value, with the
constants and the observed value, as one JSON line to BENCH_TRUTH_FILE when that is set.
autoresearch never reads that file; bench/run.py does, to score the decisions.

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

KNOBS = ("LEARNING_RATE", "WEIGHT_DECAY", "WARMUP_RATIO", "HIDDEN_DIM")
OPTIMUM = {"LEARNING_RATE": 0.05, "WEIGHT_DECAY": 0.1, "WARMUP_RATIO": 0.03, "HIDDEN_DIM": 700}
# Curvature per knob in (natural) log space: how much a wrong order of magnitude costs.
WEIGHTS = {"LEARNING_RATE": 0.02, "WEIGHT_DECAY": 0.01, "WARMUP_RATIO": 0.005, "HIDDEN_DIM": 0.015}


def true_value(constants):
    """The noiseless metric: 1.0 at the optimum, higher elsewhere."""
    return 1.0 + sum(
        WEIGHTS[k] * math.log(constants[k] / OPTIMUM[k]) ** 2 for k in KNOBS
    )


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
    truth = true_value(constants)
    observed = truth + noise(constants, seed, noise_seed, sigma)
    print(f"val_bpb: {observed:.8f}")
    path = os.environ.get("BENCH_TRUTH_FILE")
    if path:
        line = json.dumps({"key": key(constants), "seed": seed, "true": truth, "observed": observed})
        with open(path, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
