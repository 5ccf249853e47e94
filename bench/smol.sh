#!/bin/bash
# A manual check of issue 12's done-when against a real llama.cpp server with a small model
# (not run in CI; see BENCHMARKS.md "A real small model"). Start the server first, e.g.
#   LD_LIBRARY_PATH=$BIN $BIN/llama-server -m SmolLM2-135M-Instruct.Q4_1.gguf -c 8192 --port 8097
# Usage: bench/smol.sh STRUCTURED(auto|json|off) TUNER(search|off) DIR [ITERATIONS] [PORT] [LIMIT_S]
set -u
structured=$1; tuner=$2; d=$3; n=${4:-6}; port=${5:-8097}; limit=${6:-600}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${AUTORESEARCH_BIN:-$here/target/release/autoresearch}
rm -rf "$d"; mkdir -p "$d"; cd "$d" || exit 1
git init -q -b main
cp "$here/tests/fixtures/llm_session/train.py" train.py
echo "TIME_BUDGET = 300" > prepare.py
printf '# Program\nMake val_bpb go down by changing LR or WIDTH in train.py.\n' > program.md
model=$(curl -s "127.0.0.1:$port/v1/models" | python3 -c "import json,sys; print(json.load(sys.stdin)['data'][0]['id'])")
cat > autoresearch.toml <<TOML
editable = ["train.py"]
read_only = ["prepare.py"]
command = "python3 train.py"
budget = "1s"
timeout = "20s"
tag = "smol"
[decision]
mode = "greedy"
[metric]
name = "val_bpb"
direction = "minimize"
[agent]
backend = "openai"
base_url = "http://127.0.0.1:$port/v1"
model = "$model"
structured = "$structured"
tuner = "$tuner"
timeout = "120s"
TOML
git add -A; git -c user.name=t -c user.email=t@t commit -qm init
start=$(date +%s)
timeout "$limit" "$bin" run --yes -n "$n" --json > events.jsonl 2> stderr.txt
echo "exit $?, wall $(( $(date +%s) - start )) s"
python3 - <<'PY'
import sqlite3
c = sqlite3.connect('.autoresearch/journal.sqlite')
q = lambda s: c.execute(s).fetchall()
print("experiments by proposer and status:", q("select proposer, status, count(*) from experiments where iteration > 0 group by proposer, status"))
print("LLM proposals that ran:", q("select count(*) from experiments where iteration > 0 and proposer != 'search' and status in ('keep','discard','crash')")[0][0],
      "kept:", q("select count(*) from experiments where iteration > 0 and proposer != 'search' and status = 'keep'")[0][0])
print("calls (outcome, finish_reason, n, mean s, max s, output tokens):",
      q("select outcome, finish_reason, count(*), round(avg(duration_s), 1), round(max(duration_s), 1), sum(output_tokens) from llm_calls group by outcome, finish_reason"))
for (r,) in q("select distinct substr(reason, 1, 160) from experiments where status = 'rejected' limit 4"):
    print("  rejected:", r)
for (r,) in q("select distinct substr(reason, 1, 160) from llm_calls where outcome != 'used' limit 4"):
    print("  call:", r)
PY
grep -h '"warning"' events.jsonl | python3 -c "import json,sys; [print('  warning:', json.loads(l)['message'][:300]) for l in sys.stdin]"
tail -2 stderr.txt
