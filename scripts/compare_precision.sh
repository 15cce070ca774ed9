#!/usr/bin/env bash
# Trains every task with one recipe at fp32 and at bf16 (same seed, the two side by side, one
# thread each) and prints a Markdown table of their test scores on each task's primary metric.
#
#   scripts/compare_precision.sh [OUT] [ptune train options...]
#
# Default recipe: P-tuning v2 at its defaults, 300 steps of 16, max length 96, dev every 150.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-runs/precision}"; shift || true
recipe=("$@")
(( ${#recipe[@]} )) || recipe=(--method ptv2 --max-steps 300 --batch-size 16 --max-length 96 --eval-every 150)
swift build -c release --product ptune >&2
ptune="$(swift build -c release --show-bin-path)/ptune"
echo "| task | metric | fp32 test | bf16 test | difference |"
echo "|---|---|---|---|---|"
for spec in datasets/{sentiment,news,hedge,ner,pos-oanc,pos-wsj}.json; do
    task=$(basename "$spec" .json)
    for precision in fp32 bf16; do
        rm -rf "$out/$task-$precision"
        PTUNE_THREADS=1 "$ptune" train --task "$spec" "${recipe[@]}" --precision "$precision" \
            --out "$out/$task-$precision" > "$out/$task-$precision.log" 2>&1 &
    done
    wait
    python3 - "$task" "$out/$task-fp32/summary.json" "$out/$task-bf16/summary.json" <<'PY'
import json, sys
task, a, b = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
metric = a["primary_metric"]
x, y = a["test"][metric], b["test"][metric]
print(f"| {task} | {metric} | {x:.3f} | {y:.3f} | {y - x:+.3f} |")
PY
done
