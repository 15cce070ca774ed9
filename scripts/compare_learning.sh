#!/usr/bin/env bash
# Trains one task with one recipe in PTune and in the Python stack (scripts/peer_learning.py,
# the recipe of ../shared/peer/peft_train.py), one seed after the other, and writes each
# run's dev and test metric per epoch; scripts/learning_table.py summarises a folder of them.
#
#   [EPOCHS=10] [LR=...] [VARIANT=name PTUNE_OPTIONS="..."] [STACKS="ptune peer"] \
#   [PRECISION=fp32] scripts/compare_learning.sh PEER_PYTHON TASK ptv2|lora|full [SEEDS...]
#
# PEER_PYTHON: a throw-away venv's python with torch, transformers==4.46.3, peft==0.12.0
# (../shared/peer/README.md). The recipe on both sides: batches of 32, AdamW (weight decay
# 0.01), 6% warm-up then linear decay, clipping at 1.0, 128 tokens, best dev epoch; ptv2 16
# prompt tokens (lr 1e-2), LoRA r 8 alpha 16 on query and value without dropout (PEFT's
# default, lr 5e-4), full fine-tuning lr 5e-5; PTune's batches shuffled, as the stack's (its
# default since 2026-12-07: runs named `ptune` from before were bucketed). PTUNE_OPTIONS adds
# PTune options (a variant under study, named by VARIANT). Output: OUT (default
# runs/learning)/TASK-METHOD-STACK-sSEED.jsonl (STACK: peer, ptune, or ptune-VARIANT), one line
# per epoch ({"epoch", "metric", "dev", "test"}) and a last line with the best dev epoch's scores. A finished run is kept, not redone.
# PTUNE_BINARY: a ptune binary to use instead of building one (runs that outlast an edit).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
peer_python="$1" task="$2" method="$3"
shift 3
seeds="${*:-1}"
out="${OUT:-runs/learning}"
epochs="${EPOCHS:-10}"
ours="ptune${VARIANT:+-$VARIANT}"
# shellcheck source=scripts/stack_recipe.sh
source scripts/stack_recipe.sh
mkdir -p "$out"

for seed in $seeds; do
    mine="$out/$task-$method-$ours-s$seed" peer="$out/$task-$method-peer-s$seed"
    if [[ " ${STACKS:-ptune peer} " == *" ptune "* ]] && ! grep -qs best_epoch "$mine.jsonl"; then
        rm -rf "$mine"
        # shellcheck disable=SC2086  # the options are words
        "$ptune" train --task "$spec" --model "$model" $method_options --lr "$lr" --epochs "$epochs" \
            --batch-size 32 --weight-decay 0.01 --warmup-ratio 0.06 --max-grad-norm 1 --max-length 128 \
            --seed "$seed" --precision "${PRECISION:-fp32}" --evaluate-test --log-every 100 \
            ${PTUNE_OPTIONS:-} --out "$mine" > "$mine.log" 2>&1 || { echo "PTune failed: see $mine.log" >&2; exit 1; }
        python3 - "$mine" "$task" "$method" "$seed" > "$mine.jsonl" <<'PY'
import json, sys
run, task, method, seed = sys.argv[1:]
summary = json.load(open(f"{run}/summary.json"))
metric = summary["primary_metric"]
config = json.load(open(f"{run}/config.json"))
steps_per_epoch = -(-summary["steps"] // config["epochs"])
best = None
for line in open(f"{run}/metrics.jsonl"):
    row = json.loads(line)
    if "dev" in row:
        epoch = row["step"] / steps_per_epoch
        print(json.dumps({"epoch": round(epoch, 2), "metric": metric, "dev": row["dev"][metric],
                          "test": row["test"][metric]}))
        if best is None or row["dev"][metric] > best[1]:
            best = (round(epoch, 2), row["dev"][metric])
print(json.dumps({"task": task, "method": method, "seed": int(seed), "metric": metric, "best_epoch": best[0],
                  "dev": summary["dev"][metric], "test": summary["test"][metric],
                  "seconds": round(summary["train_seconds"], 1)}))
PY
    fi
    if [[ " ${STACKS:-ptune peer} " == *" peer "* ]] && ! grep -qs best_epoch "$peer.jsonl"; then
        OMP_NUM_THREADS=$(nproc) "$peer_python" scripts/peer_learning.py "$model" "$spec" "$method" "$epochs" "$lr" \
            --seed "$seed" > "$peer.jsonl.part" 2> "$peer.log" || { echo "the peer failed: see $peer.log" >&2; exit 1; }
        mv "$peer.jsonl.part" "$peer.jsonl"
    fi
    for file in "$mine" "$peer"; do
        if [[ -f "$file.jsonl" ]]; then echo "$(basename "$file"): $(tail -1 "$file.jsonl")"; fi
    done
done
