"""The pruning benchmark's training script: bench/synthetic_train.py's bowl, with a curve.

The true final value is synthetic_train's quadratic bowl over the same four knobs. The run
lasts BENCH_SECONDS (default 1) and prints karpathy's progress lines, `\\rstep 00012
(48.0%) | loss: 2.345678`, 25 of them: `truth + gap + 2·g(f; k) + noise`, where the speed k
grows with LEARNING_RATE (a higher learning rate falls faster early, so curves cross), the
train-versus-validation gap grows with WEIGHT_DECAY's distance from its optimum, and the
noise is a smoothed (AR(1)) loss noise. It ends with `val_bpb: truth + N(0, BENCH_SIGMA)`.

At its start it appends the TRUE value as a JSON line to BENCH_TRUTH_FILE (a pruned run
never reaches its end); autoresearch never reads that file.
"""

LEARNING_RATE = 0.01
WEIGHT_DECAY = 0.4
WARMUP_RATIO = 0.02
HIDDEN_DIM = 256

import hashlib
import json
import math
import os
import random
import sys
import time

sys.path.insert(0, os.environ.get("BENCH_DIR", "."))
import synthetic_train as bowl  # noqa: E402


def main():
    constants = {k: float(globals()[k]) for k in bowl.KNOBS}
    seed = int(os.environ.get("AUTORESEARCH_SEED", "1"))
    noise_seed = int(os.environ.get("BENCH_NOISE_SEED", "0"))
    sigma = float(os.environ.get("BENCH_SIGMA", "0.005"))
    seconds = float(os.environ.get("BENCH_SECONDS", "1"))
    truth = bowl.true_value(constants)
    path = os.environ.get("BENCH_TRUTH_FILE")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"key": bowl.key(constants), "seed": seed, "true": truth}) + "\n")
    text = f"{noise_seed}|{seed}|{bowl.key(constants)}"
    rng = random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))
    observed = truth + rng.gauss(0.0, sigma)
    k = min(8.0, max(1.0, 4.0 + 1.5 * math.log2(constants["LEARNING_RATE"] / 0.05)))
    gap = 0.02 * math.log(constants["WEIGHT_DECAY"] / 0.1) ** 2
    steps, ar = 25, 0.0
    for i in range(1, steps + 1):
        f = i / steps
        ar = 0.8 * ar + 0.6 * 2 * sigma * rng.gauss(0.0, 1.0)
        shape = (math.exp(-k * f) - math.exp(-k)) / (1 - math.exp(-k))
        loss = observed + gap * (1 - f) + 2.0 * shape + ar
        print(f"\rstep {i:05d} ({100 * f:.1f}%) | loss: {loss:.6f}", end="", flush=True)
        time.sleep(seconds / steps)
    print()
    print(f"val_bpb: {observed:.8f}")


if __name__ == "__main__":
    main()
