"""
tinylm: a byte-level language model in plain numpy, small enough to train on a laptop CPU.
This is the one file the agent edits. The fixed pieces (data, time budget, metric) live in
prepare.py.

Model: embed each of the previous CONTEXT bytes, concatenate, one hidden layer, softmax over
the 256 possible next bytes (Bengio et al. 2003, at toy scale). Optimiser: AdamW in numpy.
Training runs for the steps the budget buys (prepare.train_steps: TIME_BUDGET seconds of
compute at a fixed nominal rate, so a busy machine takes longer but scores the same), then
val_bpb is measured on a fixed slice.

Usage: python train.py
"""

import os

# One BLAS thread, forced (set before numpy loads): these matrices are tiny, so extra threads
# only add synchronisation; on a busy 2-core machine 2 threads measured 10x fewer steps.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import resource
import sys
import time

t_start = time.perf_counter()

try:
    import numpy as np
except ImportError:
    sys.exit("train.py: numpy is not installed for this Python; run: pip install -r requirements.txt")

from prepare import TIME_BUDGET, PrepareError, evaluate_bpb, load_splits, train_steps

# ---------------------------------------------------------------------------
# Hyperparameters (edit these directly, no CLI flags)
# ---------------------------------------------------------------------------

LEARNING_RATE = 2.5e-4  # Adam step size at the peak of the schedule
EMBED_DIM = 8  # size of each byte embedding
CONTEXT = 8  # how many previous bytes the model sees
HIDDEN_DIM = 128  # width of the hidden layer
BATCH_SIZE = 2**7  # byte positions per optimiser step
WEIGHT_DECAY = 0.0  # decoupled (AdamW) decay on the weight matrices
WARMUP_RATIO = 0.05  # fraction of the training steps spent ramping the learning rate up
WARMDOWN_RATIO = 0.5  # fraction of the training steps spent decaying it to zero at the end
INIT_SCALE = 1.0  # multiplier on the default weight init
ADAM_BETA1 = 0.9  # Adam first-moment decay
ADAM_BETA2 = 0.99  # Adam second-moment decay

# AUTORESEARCH_BATCH_SCALE is deliberately ignored: this example is already CPU-sized, and
# changing the batch behind the agent's back would make its BATCH_SIZE edits meaningless.
try:
    SEED = int(os.environ.get("AUTORESEARCH_SEED", "42"))
except ValueError:
    sys.exit(f"train.py: AUTORESEARCH_SEED={os.environ['AUTORESEARCH_SEED']!r} is not an integer; unset it or set e.g. 42")

# ---------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------

# The tool's platform hints are printed for the log only: numpy always runs on the CPU in float32.
_hints = ", ".join(f"{k.lower()}={os.environ[f'AUTORESEARCH_{k}']}" for k in ("DEVICE", "DTYPE", "COMPILE", "BATCH_SCALE")
                   if f"AUTORESEARCH_{k}" in os.environ)
print(f"tinylm: numpy {np.__version__} on cpu, seed {SEED}, budget {TIME_BUDGET:g} s"
      + (f" (ignored hints: {_hints})" if _hints else ""), flush=True)

try:
    train_data, val_data = load_splits()
except PrepareError as e:
    print(f"train.py: cannot load the data: {e}", file=sys.stderr)
    sys.exit(1)

rng = np.random.default_rng(SEED)
DTYPE = np.float32


def init(shape, fan_in):
    return (rng.standard_normal(shape) * (INIT_SCALE / np.sqrt(fan_in))).astype(DTYPE)


params = {
    "emb": init((256, EMBED_DIM), 1.0),
    "w1": init((CONTEXT * EMBED_DIM, HIDDEN_DIM), CONTEXT * EMBED_DIM),
    "b1": np.zeros(HIDDEN_DIM, dtype=DTYPE),
    "w2": init((HIDDEN_DIM, 256), HIDDEN_DIM),
    "b2": np.zeros(256, dtype=DTYPE),
}
DECAYED = ("w1", "w2")
num_params = sum(p.size for p in params.values())
adam_m = {k: np.zeros_like(p) for k, p in params.items()}
adam_v = {k: np.zeros_like(p) for k, p in params.items()}


def forward(ctx):
    """ctx: (B, CONTEXT) byte ids -> (logits, cache for backward)."""
    x = params["emb"][ctx].reshape(ctx.shape[0], CONTEXT * EMBED_DIM)
    h = np.tanh(x @ params["w1"] + params["b1"])
    logits = h @ params["w2"] + params["b2"]
    return logits, (ctx, x, h)


def loss_and_grads(ctx, targets):
    logits, (ctx, x, h) = forward(ctx)
    n = targets.size
    logits = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    loss = -float(np.mean(np.log(probs[np.arange(n), targets] + 1e-12)))
    dlogits = probs
    dlogits[np.arange(n), targets] -= 1.0
    dlogits /= n
    grads = {"w2": h.T @ dlogits, "b2": dlogits.sum(axis=0)}
    dh = (dlogits @ params["w2"].T) * (1.0 - h * h)
    grads["w1"] = x.T @ dh
    grads["b1"] = dh.sum(axis=0)
    dx = (dh @ params["w1"].T).reshape(-1, EMBED_DIM)
    # Scatter-add rows of dx into the embedding table. One flat bincount is ~6x faster than
    # np.add.at here, and this is the hottest line of the step.
    flat = (ctx.reshape(-1, 1) * EMBED_DIM + np.arange(EMBED_DIM)).reshape(-1)
    gemb = np.bincount(flat, weights=dx.reshape(-1), minlength=256 * EMBED_DIM)
    grads["emb"] = gemb.reshape(256, EMBED_DIM).astype(DTYPE)
    return loss, grads


def lr_at(progress):
    """Learning rate for a point in training (0..1): linear warmup, flat, linear warmdown."""
    if WARMUP_RATIO > 0 and progress < WARMUP_RATIO:
        return LEARNING_RATE * progress / WARMUP_RATIO
    if WARMDOWN_RATIO > 0 and progress > 1.0 - WARMDOWN_RATIO:
        return LEARNING_RATE * max(0.0, 1.0 - progress) / WARMDOWN_RATIO
    return LEARNING_RATE


def adam_step(grads, lr, step):
    bc1 = 1.0 - ADAM_BETA1**step
    bc2 = 1.0 - ADAM_BETA2**step
    for k, p in params.items():
        g = grads[k]
        m, v = adam_m[k], adam_v[k]
        m *= ADAM_BETA1
        m += (1.0 - ADAM_BETA1) * g
        v *= ADAM_BETA2
        v += (1.0 - ADAM_BETA2) * (g * g)
        if WEIGHT_DECAY > 0 and k in DECAYED:
            p *= 1.0 - lr * WEIGHT_DECAY
        p -= (lr / bc1) * m / (np.sqrt(v / bc2) + 1e-8)


# ---------------------------------------------------------------------------
# Training loop: the steps the compute budget buys
# ---------------------------------------------------------------------------

# Multiply-adds of the two matmuls, forward and backward (x3), plus the softmax and the
# embedding scatter: what one step costs, so the budget buys fewer steps of a bigger model.
FLOPS_PER_STEP = 6 * BATCH_SIZE * (CONTEXT * EMBED_DIM * HIDDEN_DIM + HIDDEN_DIM * 256) + 10 * BATCH_SIZE * 256
TRAIN_STEPS = train_steps(FLOPS_PER_STEP)

offsets = np.arange(-CONTEXT, 0)
n_train = train_data.size
step = 0
smooth_loss = None
t_train = time.perf_counter()
next_report = 1.0
while step < TRAIN_STEPS:
    elapsed = time.perf_counter() - t_train
    pos = rng.integers(CONTEXT, n_train, size=BATCH_SIZE)
    ctx = train_data[pos[:, None] + offsets].astype(np.intp)
    targets = train_data[pos].astype(np.intp)
    loss, grads = loss_and_grads(ctx, targets)
    if not np.isfinite(loss):
        print(f"train.py: loss is {loss} at step {step}; the run diverged (lower LEARNING_RATE?)", file=sys.stderr)
        sys.exit(1)
    step += 1
    lr = lr_at(step / TRAIN_STEPS)
    adam_step(grads, lr, step)
    smooth_loss = loss if smooth_loss is None else 0.98 * smooth_loss + 0.02 * loss
    if elapsed >= next_report:
        print(f"step {step:05d} | loss: {smooth_loss:.4f} | lr: {lr:.6f} | {elapsed:.1f}s", flush=True)
        next_report = float(int(elapsed)) + 1.0
training_seconds = time.perf_counter() - t_train

# ---------------------------------------------------------------------------
# Evaluation and summary
# ---------------------------------------------------------------------------

val_bpb = evaluate_bpb(lambda c: forward(c)[0], CONTEXT, val_data)

rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
peak_mem_mb = rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KB on Linux

print("---")
print(f"val_bpb:          {val_bpb:.6f}")
print(f"training_seconds: {training_seconds:.1f}")
print(f"total_seconds:    {time.perf_counter() - t_start:.1f}")
print(f"peak_mem_mb:      {peak_mem_mb:.1f}")
print(f"num_steps:        {step}")
print(f"num_params_M:     {num_params / 1e6:.2f}")
