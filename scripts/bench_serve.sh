#!/usr/bin/env bash
# Serving benchmark (a command, not a test): CLIENTS concurrent clients (scripts/serve_load.py)
# send one-input requests cycling through the six tasks for SECONDS_PER_RUN each against
#   (a) ptune serve batching across tasks,
#   (b) the same server batching one task at a time (--one-task-per-batch),
#   (c) single-task streams: every client on one task, each of the six in turn, to the server of
#       (a); their requests/s combine as the mix would run on them (six over the sum of each
#       one's seconds per request), the figure (a) is held against,
#   (d) with PEER_PYTHON, the Python stack (scripts/peer_serve.py: PEFT, one model, set_adapter per
#       group of same-task requests) on the same registry and load, at fp32 and, where the
#       processor has AVX512-BF16 or AMX, at bf16 (torch.autocast),
# and prints a Markdown table: requests/s, p50 and p99 latency; (a) is held against the Python
# stack's better precision.
#
#   [CLIENTS=16] [SECONDS_PER_RUN=20] [MAX_BATCH=32] [MAX_WAIT_MS=5] [REGISTRY=DIR] \
#   [PRECISION=fp32|bf16] scripts/bench_serve.sh [PEER_PYTHON]
#
# REGISTRY: a registry of the six tasks' P-tuning v2 adapters (the pipeline's, or by default one
# that `ptune adapt --max-steps 30` writes to runs/bench-serve; accuracy does not matter here).
# Client and server share this machine's cores, for both stacks alike.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
peer_python="${1:-}"
clients="${CLIENTS:-16}" seconds="${SECONDS_PER_RUN:-20}" batch="${MAX_BATCH:-32}" wait="${MAX_WAIT_MS:-5}"
model="$(scripts/fetch-model.sh)"
python3 datasets/fetch.py >&2
swift build -c release --product ptune >&2
ptune="$(swift build -c release --show-bin-path)/ptune"
tasks="sentiment news hedge ner pos-wsj pos-oanc"
specs=$(for task in $tasks; do printf 'datasets/%s.json ' "$task"; done)
registry="${REGISTRY:-runs/bench-serve/registry}"
if [[ ! -f "$registry/manifest.json" ]]; then
    echo "training six P-tuning v2 adapters for the benchmark's registry (30 steps each) ..." >&2
    "$ptune" adapt --model "$model" --tasks "$(tr ' ' ',' <<< "${specs% }")" --method ptv2 --max-steps 30 \
        --batch-size 16 --out runs/bench-serve >&2
fi
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts a server command (its port is the last argument), runs the load, stops it; prints the load's JSON.
measure() {
    local specs_used="$1"; shift
    local port="${*: -1}" log
    log=$(mktemp)
    "$@" 2> "$log" > /dev/null &
    local server=$!
    until grep -q "serving" "$log"; do
        kill -0 "$server" 2>/dev/null || { cat "$log" >&2; echo "the server did not start" >&2; exit 1; }
        sleep 0.5
    done
    # shellcheck disable=SC2086  # the specs are words
    python3 scripts/serve_load.py "http://127.0.0.1:$port" "$clients" "$seconds" $specs_used
    kill -TERM "$server"
    wait "$server" || true
    rm -f "$log"
}

serve=("$ptune" serve --model "$model" --registry "$registry" --max-batch "$batch" --max-wait-ms "$wait")
[[ -n "${PRECISION:-}" ]] && serve+=(--precision "$PRECISION")
mixed=$(measure "$specs" "${serve[@]}" --port "$(free_port)")
one_task=$(measure "$specs" "${serve[@]}" --one-task-per-batch --port "$(free_port)")
single='{}'
for task in $tasks; do
    single=$(python3 -c 'import json, sys; d = json.loads(sys.argv[1]); d[sys.argv[2]] = json.loads(sys.argv[3]); print(json.dumps(d))' \
             "$single" "$task" "$(measure "datasets/$task.json" "${serve[@]}" --port "$(free_port)")")
done
peer='{}' peer_bf16='{}'
if [[ -n "$peer_python" ]]; then
    peer_serve=(env OMP_NUM_THREADS="$(nproc)" "$peer_python" scripts/peer_serve.py "$registry" "$model" "$batch" "$wait")
    peer=$(measure "$specs" "${peer_serve[@]}" "$(free_port)")
    if grep -qE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
        peer_bf16=$(measure "$specs" env PEER_PRECISION=bf16 "${peer_serve[@]}" "$(free_port)")
    fi
fi
python3 - "$clients" "$batch" "$mixed" "$one_task" "$single" "$peer" "$peer_bf16" <<'PY'
import json, subprocess, sys
clients, batch = sys.argv[1], sys.argv[2]
singles = json.loads(sys.argv[5])
combined = {"requests_per_s": round(len(singles) / sum(1 / max(s["requests_per_s"], 1e-9) for s in singles.values()), 1),
            "p50_ms": "", "p99_ms": "", "errors": sum(s["errors"] for s in singles.values())}
rows = [("(a) ptune serve, tasks mixed in a batch", json.loads(sys.argv[3])),
        ("(b) ptune serve, one task per batch", json.loads(sys.argv[4]))]
rows += [(f"(c) single-task stream: {task}", row) for task, row in singles.items()]
rows += [("(c) single-task streams, combined as the mix", combined),
         ("(d) Python stack (PEFT, set_adapter per task group), fp32", json.loads(sys.argv[6])),
         ("(d) Python stack, bf16 (torch.autocast)", json.loads(sys.argv[7]))]
cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
print(f"processor: {model}; {clients} clients, max batch {batch}\n")
print("| server | requests/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|")
for name, row in rows:
    if row:
        print(f"| {name} | {row['requests_per_s']} | {row['p50_ms']} | {row['p99_ms']} | {row['errors']} |")
a, b = rows[0][1], rows[1][1]
d = max((row for _, row in rows[-2:] if row), key=lambda row: row["requests_per_s"], default={})
print(f"\nmixed / one task per batch: {a['requests_per_s'] / max(b['requests_per_s'], 1e-9):.2f}")
print(f"mixed / single-task streams combined: {a['requests_per_s'] / max(combined['requests_per_s'], 1e-9):.2f}")
if d:
    print(f"mixed / Python stack at its better precision: {a['requests_per_s'] / max(d['requests_per_s'], 1e-9):.2f}")
PY
