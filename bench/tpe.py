#!/usr/bin/env python3
"""Optuna's TPE sampler on bench/synthetic_train.py's problem, for bench/run.py.

Same truth, same noise (seed 1 for every trial, like one run per experiment), same starting
point (enqueued as the first trial), each knob searched log-uniformly within 2^±6 of its
starting value. Optuna picks its best by the NOISY observed value; this prints, as JSON,
the TRUE value of that pick after each requested number of trials: {"101": 1.0123, ...}.

Usage: bench/.venv/bin/python bench/tpe.py --sigma 0.01 --seed 1 --trials 101,160
"""

import argparse
import json
import os
import sys

import optuna

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synthetic_train as st  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--problem", default="bowl")
    ap.add_argument("--sigma", type=float, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--trials", required=True, help="comma-separated trial counts")
    args = ap.parse_args()
    counts = sorted({int(t) for t in args.trials.split(",")})
    start = {k: float(getattr(st, k)) for k in st.KNOBS}
    truth = {}

    def objective(trial):
        c = {}
        for k in st.KNOBS:
            lo, hi = start[k] / 64, start[k] * 64
            if k == "HIDDEN_DIM":
                c[k] = float(trial.suggest_int(k, int(lo), int(hi), log=True))
            else:
                c[k] = trial.suggest_float(k, lo, hi, log=True)
        t = st.true_value(c, args.problem)
        if t is None:
            # Past the cliff: the run crashed; Optuna records a failed trial.
            return float("nan")
        truth[trial.number] = t
        # Rounded as the script prints it, so the observations are the same numbers.
        observed = t + st.noise(c, 1, args.seed, args.sigma)
        return float(f"{observed:.8f}")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize",
                                sampler=optuna.samplers.TPESampler(seed=args.seed))
    study.enqueue_trial({k: (int(v) if k == "HIDDEN_DIM" else v) for k, v in start.items()})
    study.optimize(objective, n_trials=counts[-1])
    out = {}
    for n in counts:
        trials = [t for t in study.trials[:n] if t.number in truth]
        pick = min(trials, key=lambda t: t.value)
        out[str(n)] = truth[pick.number]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
