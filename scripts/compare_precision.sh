#!/usr/bin/env bash
# Trains tasks with one recipe at fp32 and at bf16 (same seed, the two side by side, one thread
# each) and prints a Markdown table of their test scores on each task's primary metric: per
# seed, and with several seeds the mean ± sample standard deviation and the mean difference.
#
#   [TASKS="sentiment news ..."] [SEEDS="1 2 3"] [PTUNE_BINARY=...] \
#   scripts/compare_precision.sh [OUT] [ptune train options...]
#
# Default recipe: P-tuning v2 at its defaults, 300 steps of 16, max length 96, dev every 150;
# default tasks all six, default seed the recipe's own (no --seed). A finished run
# (OUT/TASK-sSEED-PRECISION/summary.json) is kept, not redone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-runs/precision}"; shift || true
recipe=("$@")
(( ${#recipe[@]} )) || recipe=(--method ptv2 --max-steps 300 --batch-size 16 --max-length 96 --eval-every 150)
ptune="$(scripts/ptune-binary.sh)"
mkdir -p "$out"
seeds="${SEEDS:-default}" tasks="${TASKS:-sentiment news hedge ner pos-oanc pos-wsj}"
for task in $tasks; do
    for seed in $seeds; do
        seeded=()
        [[ "$seed" == default ]] || seeded=(--seed "$seed")
        for precision in fp32 bf16; do
            run="$out/$task-s$seed-$precision"
            [[ -f "$run/summary.json" ]] && continue
            rm -rf "$run"
            PTUNE_THREADS=1 "$ptune" train --task "datasets/$task.json" "${recipe[@]}" "${seeded[@]}" \
                --precision "$precision" --out "$run" > "$run.log" 2>&1 &
        done
        wait
    done
done
python3 - "$out" "$tasks" "$seeds" <<'PY'
import json, statistics, sys
out, tasks, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
def spread(values):
    mean = statistics.mean(values)
    return f"{mean:.3f}" + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "")
print("| task | metric | seeds | fp32 test | bf16 test | difference (per seed) |")
print("|---|---|---|---|---|---|")
for task in tasks:
    scores = {}
    for precision in ("fp32", "bf16"):
        summaries = [json.load(open(f"{out}/{task}-s{seed}-{precision}/summary.json")) for seed in seeds]
        metric = summaries[0]["primary_metric"]
        scores[precision] = [summary["test"][metric] for summary in summaries]
    differences = [b - a for a, b in zip(scores["fp32"], scores["bf16"])]
    each = ", ".join(f"{d:+.3f}" for d in differences)
    print(f"| {task} | {metric} | {' '.join(seeds)} | {spread(scores['fp32'])} | {spread(scores['bf16'])} "
          f"| {statistics.mean(differences):+.3f} ({each}) |")
PY
