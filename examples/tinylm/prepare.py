"""
Data preparation and the fixed evaluation for the tinylm example. READ-ONLY for the agent.

The corpus is the Python standard library's own .py sources, so it exists on every machine
that can run this example: no download, no internet. A fixed, sorted list of module files is
concatenated as raw bytes; the first 90% is the training split, the rest validation.
Both splits are cached under ~/.cache/autoresearch/tinylm (or $TINYLM_CACHE).

Usage: python prepare.py    (builds the cache if needed and prints where it is)

This file owns the time budget and the metric. train.py imports TIME_BUDGET, load_splits()
and evaluate_bpb(); changing any of them would make experiments incomparable.
"""

import math
import os
import sys
import sysconfig
import tempfile

try:
    import numpy as np
except ImportError:
    sys.exit("prepare.py: numpy is not installed for this Python; run: pip install -r requirements.txt")

# ---------------------------------------------------------------------------
# Constants (fixed: do not change)
# ---------------------------------------------------------------------------

TIME_BUDGET = 300  # seconds of training wall clock; the tool overrides it via AUTORESEARCH_TIME_BUDGET
VAL_FRACTION = 0.1  # tail of the corpus held out for validation
EVAL_BYTES = 48 * 1024  # fixed number of validation bytes scored, so eval cost is constant
EVAL_MAX_CONTEXT = 1024  # validation bytes reserved before the scored slice as context
MIN_CORPUS_BYTES = 256 * 1024  # below this the fixed list is topped up from the rest of the stdlib

# Module files, relative to the stdlib folder. Sorted and fixed so that every run on the same
# Python sees the same bytes; files missing in some CPython version are skipped (e.g. re.py
# became re/__init__.py in 3.11, pathlib.py became a package in 3.13).
CORPUS_FILES = sorted([
    "abc.py", "argparse.py", "ast.py", "base64.py", "bisect.py", "calendar.py", "cmd.py",
    "code.py", "codecs.py", "collections/__init__.py", "colorsys.py", "configparser.py",
    "contextlib.py", "copy.py", "csv.py", "dataclasses.py", "datetime.py", "difflib.py",
    "dis.py", "enum.py", "fnmatch.py", "fractions.py", "ftplib.py", "functools.py",
    "getopt.py", "gettext.py", "glob.py", "gzip.py", "heapq.py", "hmac.py", "imaplib.py",
    "inspect.py", "ipaddress.py", "json/__init__.py", "json/decoder.py", "json/encoder.py",
    "logging/__init__.py", "numbers.py", "operator.py", "optparse.py", "os.py",
    "pathlib.py", "pathlib/__init__.py", "pickle.py", "pprint.py", "queue.py", "random.py",
    "re.py", "re/__init__.py", "re/_parser.py", "shlex.py", "shutil.py", "smtplib.py",
    "statistics.py", "string.py", "subprocess.py", "tarfile.py", "tempfile.py",
    "textwrap.py", "threading.py", "tokenize.py", "traceback.py", "typing.py", "uuid.py",
    "warnings.py", "weakref.py", "zipfile.py", "zipfile/__init__.py",
])


class PrepareError(RuntimeError):
    """The splits could not be built or loaded; the message says why and what to do."""


def _time_budget_from_env(default):
    raw = os.environ.get("AUTORESEARCH_TIME_BUDGET")
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"prepare.py: AUTORESEARCH_TIME_BUDGET={raw!r} is not a number of seconds; "
                         f"set it to e.g. 20 or 20.0") from None
    if not math.isfinite(value) or value <= 0:
        raise SystemExit(f"prepare.py: AUTORESEARCH_TIME_BUDGET={raw!r} must be a positive number of seconds")
    return value


TIME_BUDGET = _time_budget_from_env(TIME_BUDGET)

# The budget is compute, not wall clock: TIME_BUDGET seconds at a fixed nominal rate. A run
# takes the same steps, and scores the same for a seed, on an idle laptop and on a machine
# busy with other work; only how long it takes varies. A bigger model or batch costs more
# per step and so gets fewer steps, as it would in the same wall clock on a quiet machine.
NOMINAL_FLOPS_PER_SECOND = 4e10  # about what numpy reaches here on one core


def train_steps(flops_per_step):
    """Optimiser steps the budget buys at `flops_per_step` (at least one)."""
    return max(1, int(TIME_BUDGET * NOMINAL_FLOPS_PER_SECOND / max(1.0, float(flops_per_step))))

# ---------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------


def cache_dir():
    """Where the splits live. Keyed by the Python version, because the corpus is its stdlib."""
    root = os.environ.get("TINYLM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "autoresearch", "tinylm")
    tag = "py{}.{}.{}".format(*sys.version_info[:3])
    return os.path.join(root, tag)


def _split_paths():
    d = cache_dir()
    return os.path.join(d, "train.bin"), os.path.join(d, "val.bin")


def _corpus_bytes():
    stdlib = sysconfig.get_paths().get("stdlib") or ""
    if not os.path.isdir(stdlib):
        raise PrepareError(f"the standard library folder {stdlib!r} was not found; "
                           f"run with a regular CPython 3.9+ installation")
    chosen = [os.path.join(stdlib, rel) for rel in CORPUS_FILES if os.path.isfile(os.path.join(stdlib, rel))]
    total = sum(os.path.getsize(p) for p in chosen)
    if total < MIN_CORPUS_BYTES:
        # Unusual layout (trimmed or embedded Python): top up with any .py files, in sorted order.
        extra = []
        for dirpath, dirnames, filenames in os.walk(stdlib):
            dirnames[:] = sorted(d for d in dirnames if d not in ("site-packages", "test", "tests", "__pycache__"))
            extra.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py"))
        for p in extra:
            if total >= 4 * MIN_CORPUS_BYTES:
                break
            if p not in chosen:
                chosen.append(p)
                total += os.path.getsize(p)
    parts = []
    for p in chosen:
        try:
            with open(p, "rb") as f:
                parts.append(f.read())
        except OSError:
            continue  # unreadable file: skip it, the corpus stays deterministic per machine
    data = b"\n".join(parts)
    if len(data) < MIN_CORPUS_BYTES:
        raise PrepareError(f"only {len(data)} bytes of Python sources found under {stdlib!r} "
                           f"(need {MIN_CORPUS_BYTES}); run with a full CPython 3.9+ installation")
    return data


def _write_atomic(path, data):
    # Temp file in the same folder + rename: a concurrent reader sees the old file or the whole new one.
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is plain public data
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def prepare():
    """Build the cached splits if they are missing. Returns the cache folder."""
    train_path, val_path = _split_paths()
    if os.path.isfile(train_path) and os.path.isfile(val_path):
        return cache_dir()
    data = _corpus_bytes()
    n_val = max(int(len(data) * VAL_FRACTION), EVAL_MAX_CONTEXT + EVAL_BYTES)
    try:
        os.makedirs(cache_dir(), exist_ok=True)
        _write_atomic(val_path, data[-n_val:])
        _write_atomic(train_path, data[:-n_val])
    except OSError as e:
        raise PrepareError(f"cannot write the cache under {cache_dir()!r} ({e}); "
                           f"set TINYLM_CACHE to a writable folder") from e
    return cache_dir()


def load_splits():
    """(train, val) as 1-D uint8 numpy arrays, building the cache first if needed."""
    prepare()
    train_path, val_path = _split_paths()
    try:
        train = np.fromfile(train_path, dtype=np.uint8)
        val = np.fromfile(val_path, dtype=np.uint8)
    except OSError as e:
        raise PrepareError(f"cannot read the cache under {cache_dir()!r} ({e}); "
                           f"delete that folder and run python prepare.py") from e
    if val.size < EVAL_MAX_CONTEXT + EVAL_BYTES or train.size < EVAL_BYTES:
        raise PrepareError(f"the cache under {cache_dir()!r} is truncated; delete that folder and run python prepare.py")
    return train, val


# ---------------------------------------------------------------------------
# Evaluation (the ground-truth metric: do not change)
# ---------------------------------------------------------------------------


def evaluate_bpb(predict_logits, context, val, batch_size=4096):
    """Bits per byte on a FIXED validation slice: val[EVAL_MAX_CONTEXT : EVAL_MAX_CONTEXT + EVAL_BYTES].

    predict_logits(ctx) takes an int64 array of shape (B, context) holding the previous
    `context` bytes (oldest first) and returns logits of shape (B, 256) for the next byte.
    The log-softmax is taken here, so unnormalised outputs cannot flatter the score.
    Context longer than EVAL_MAX_CONTEXT is left-padded with zero bytes.
    """
    context = int(context)
    if context < 1:
        raise ValueError("evaluate_bpb: context must be at least 1")
    pad = max(0, context - EVAL_MAX_CONTEXT)
    stream = np.concatenate([np.zeros(pad, dtype=np.int64), val[:EVAL_MAX_CONTEXT + EVAL_BYTES].astype(np.int64)])
    first = EVAL_MAX_CONTEXT + pad  # index in `stream` of the first scored byte
    offsets = np.arange(-context, 0)
    total_nats = 0.0
    for start in range(first, first + EVAL_BYTES, batch_size):
        pos = np.arange(start, min(start + batch_size, first + EVAL_BYTES))
        logits = np.asarray(predict_logits(stream[pos[:, None] + offsets]), dtype=np.float64)
        if logits.shape != (pos.size, 256):
            raise ValueError(f"evaluate_bpb: predict_logits returned shape {logits.shape}, expected {(pos.size, 256)}")
        m = logits.max(axis=1, keepdims=True)
        logz = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
        total_nats += float(np.sum(logz - logits[np.arange(pos.size), stream[pos]]))
    bpb = total_nats / EVAL_BYTES / math.log(2)
    return bpb if math.isfinite(bpb) else float("inf")


if __name__ == "__main__":
    try:
        where = prepare()
        train, val = load_splits()
    except PrepareError as e:
        print(f"prepare.py: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"cache:  {where}")
    print(f"train:  {train.size:,} bytes")
    print(f"val:    {val.size:,} bytes ({EVAL_BYTES:,} scored)")
    print(f"budget: {TIME_BUDGET:g} s")
