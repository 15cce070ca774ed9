#!/usr/bin/env bash
# Data parallelism on this machine: `ptune train` on sentiment (batch 32, max length 128) for
# each method, as 2 ranks x 1 thread under mpirun and as 1 process x 2 threads, one after the
# other; prints a Markdown table of tokens/s, ms per step, the share of the step spent in the
# gradient exchange (not hidden behind backward) and the bytes all-reduced per step.
#
#   scripts/bench_distributed.sh [methods...]      (STEPS=40 by default)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
methods="${*:-ptv2 lora freeze full}"
steps="${STEPS:-40}"
swift build -c release --product ptune >&2
ptune="$(swift build -c release --show-bin-path)/ptune"
python3 datasets/fetch.py >&2
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
if [[ $(id -u) -eq 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
train=(train --task datasets/sentiment.json --batch-size 32 --max-steps "$steps" --eval-every "$steps" --log-every 10)
echo "| method | layout | tokens/s | ms/step | communication share | bytes all-reduced/step |"
echo "|---|---|---|---|---|---|"
for method in $methods; do
    mpirun -np 2 --bind-to none -x PTUNE_THREADS=1 "$ptune" "${train[@]}" --method "$method" --out "$scratch/$method-2x1" >/dev/null 2>&1
    PTUNE_THREADS=2 "$ptune" "${train[@]}" --method "$method" --out "$scratch/$method-1x2" >/dev/null 2>&1
    for layout in 2x1 1x2; do
        python3 - "$method" "$layout" "$scratch/$method-$layout" <<'PY'
import json, sys
method, layout, folder = sys.argv[1:]
lines = [json.loads(l) for l in open(folder + "/metrics.jsonl")]
steps = [l for l in lines if "tokens_per_s" in l][1:]   # the first lines include warm-up
mean = lambda key: sum(l[key] for l in steps) / len(steps)
summary = json.load(open(folder + "/summary.json"))
ranks = "2 ranks x 1 thread" if layout == "2x1" else "1 rank x 2 threads"
exchanged = f"{4 * summary['trainable_parameters']:,}" if layout == "2x1" else "-"
print(f"| {method} | {ranks} | {mean('tokens_per_s'):.0f} | {mean('step_ms'):.0f} | "
      f"{100 * mean('communication_share'):.1f}% | {exchanged} |")
PY
    done
done
