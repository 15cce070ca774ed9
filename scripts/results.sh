#!/usr/bin/env bash
# Trains every method on every task (one process each, one after the other) and writes
# the results table: dev and test metrics, trainable parameters and wall time per run.
#
#   scripts/results.sh [OUT] [extra ptune train options]   (default OUT: runs/results)
#
# Defaults keep the whole grid to a couple of hours on 2 cores: 300 steps of 16 examples.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-runs/results}"
shift || true
scripts/setup.sh
python3 datasets/fetch.py
swift build -c release --product ptune >&2
ptune="$(swift build -c release --show-bin-path)/ptune"
tasks="${TASKS:-sentiment news hedge ner pos-wsj pos-oanc}"
methods="${METHODS:-ptv2 lora freeze ptv1 prefix full}"
mkdir -p "$out"
for task in $tasks; do
    for method in $methods; do
        run="$out/$task-$method"
        [[ -f "$run/summary.json" ]] && continue
        rm -rf "$run"
        start=$(date +%s)
        "$ptune" train --task "datasets/$task.json" --method "$method" --out "$run" \
            --max-steps "${STEPS:-300}" --batch-size "${BATCH:-16}" --eval-every "${EVAL_EVERY:-100}" \
            --log-every 50 "$@" > "$run.log" 2>&1 || { echo "$task/$method failed: see $run.log" >&2; continue; }
        echo "$(( $(date +%s) - start ))" > "$run/wall_seconds"
        echo "$task/$method done in $(cat "$run/wall_seconds") s" >&2
    done
done
python3 scripts/results_table.py "$out" > "$out/results.md"
cat "$out/results.md"
