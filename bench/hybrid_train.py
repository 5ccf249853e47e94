"""A synthetic research problem with numbers AND structure, for the hybrid benchmark.

The metric is synthetic_train.py's bowl over the four numeric knobs (minimum 1.0) plus the
effect of four structural choices, written as strings so that the built-in search never
turns them: only an LLM (here a scripted one, bench/hybrid.py) can change them. Prints
`val_bpb: X` with Gaussian noise of standard deviation BENCH_SIGMA (seeded from
BENCH_NOISE_SEED, AUTORESEARCH_SEED and the code). The true value is `true_value` below;
the harness computes it from the best commit's text.
"""

LEARNING_RATE = 0.01
WEIGHT_DECAY = 0.4
WARMUP_RATIO = 0.02
HIDDEN_DIM = 256

ACTIVATION = "relu"
NORM = "layernorm"
SCHEDULE = "constant"
ATTENTION = "full"

import hashlib
import math
import os
import random
import re

# synthetic_train.py's bowl, copied so that the script stands alone (the harness checks
# that the two agree): 1.0 at OPTIMUM, quadratic in log space.
KNOBS = ("LEARNING_RATE", "WEIGHT_DECAY", "WARMUP_RATIO", "HIDDEN_DIM")
OPTIMUM = {"LEARNING_RATE": 0.05, "WEIGHT_DECAY": 0.1, "WARMUP_RATIO": 0.03, "HIDDEN_DIM": 700}
WEIGHTS = {"LEARNING_RATE": 0.02, "WEIGHT_DECAY": 0.01, "WARMUP_RATIO": 0.005, "HIDDEN_DIM": 0.015}

# What each structural choice adds to the metric (lower is better); the first is the start.
EFFECTS = {
    "ACTIVATION": {"relu": 0.0, "gelu": -0.020, "swiglu": -0.030},
    "NORM": {"layernorm": 0.0, "none": 0.030, "rmsnorm": -0.005},
    "SCHEDULE": {"constant": 0.0, "cosine": -0.015, "wsd": -0.019},
    "ATTENTION": {"full": 0.0, "local": 0.020},
}


def bowl(numbers):
    return 1.0 + sum(WEIGHTS[k] * math.log(numbers[k] / OPTIMUM[k]) ** 2 for k in KNOBS)


def true_value(numbers, choices):
    return bowl(numbers) + sum(EFFECTS[k][v] for k, v in choices.items())


def read(source):
    """(numbers, choices) from a copy of this file's text."""
    numbers = {}
    for k in KNOBS:
        numbers[k] = float(re.search(rf"^{k}\s*=\s*([^#\n]+)", source, re.M).group(1))
    choices = {}
    for k in EFFECTS:
        m = re.search(rf'^{k}\s*=\s*"([a-z]+)"', source, re.M)
        choices[k] = m.group(1)
    return numbers, choices


def main():
    numbers = {k: float(globals()[k]) for k in KNOBS}
    choices = {k: globals()[k] for k in EFFECTS}
    seed = int(os.environ.get("AUTORESEARCH_SEED", "1"))
    sigma = float(os.environ.get("BENCH_SIGMA", "0"))
    truth = true_value(numbers, choices)
    noise = 0.0
    if sigma > 0:
        text = f"{os.environ.get('BENCH_NOISE_SEED', '0')}|{seed}|{numbers}|{choices}"
        rng = random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))
        noise = rng.gauss(0.0, sigma)
    print(f"val_bpb: {truth + noise:.8f}")


if __name__ == "__main__":
    main()
