#!/usr/bin/env bash
# Times PTune and the Python stack (PyTorch + transformers + PEFT) on the same training step,
# one after the other on this machine, and prints a Markdown table.
#
#   scripts/compare_peer.sh PEER_PYTHON PEFT_STEP_PY [methods...]
#
# PEER_PYTHON: the python of a throw-away venv with torch, transformers==4.46.3, peft==0.12.0
# (see ../shared/peer/README.md); PEFT_STEP_PY: the peer's peft_step.py. Same work on both
# sides: MiniLM-L6, sequence classification, batch 32 x 128 tokens, AdamW, float32, and the
# peer's method settings (ptv2 16 prompt tokens; ptv1 LSTM hidden 384; LoRA r 8 alpha 16 on
# query and value; Freeze the FF of layers 4-5; full fine-tuning). With REPEATS=N (default 1)
# each method alternates the two stacks N times and the table gives each one's median run
# (tokens/s; its other columns come from that run), which damps a busy host's noise.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
peer_python="$1"; peer_step="$2"; shift 2
methods="${*:-ptv2 ptv1 lora freeze full}"
model="$(scripts/fetch-model.sh)"
swift build -c release --product ptune >&2
ptune="$(swift build -c release --show-bin-path)/ptune"
declare -A options=(
    [ptv2]="--method ptv2 --prompt-length 16"
    [ptv1]="--method ptv1 --prompt-length 16 --prompt-encoder lstm --encoder-hidden 384 --encoder-layers 2"
    [lora]="--method lora --lora-r 8 --lora-alpha 16 --lora-dropout 0 --lora-targets query,value"
    [freeze]="--method freeze --freeze-layers 2 --freeze-modules ff"
    [full]="--method full"
)
echo "| method | PTune tokens/s | peer tokens/s | ratio | PTune GFLOP/s | sgemm GFLOP/s | share | PTune RSS MB | peer RSS MB |"
echo "|---|---|---|---|---|---|---|---|---|"
for method in $methods; do
    ours=() theirs=()
    for _ in $(seq "${REPEATS:-1}"); do
        ours+=("$("$ptune" bench --model "$model" ${options[$method]} --batch 32 --seq 128 --steps 6 --json)")
        theirs+=("$(OMP_NUM_THREADS=$(nproc) "$peer_python" "$peer_step" "$model" "$method" 32 128 6)")
    done
    python3 - "$method" "${#ours[@]}" "${ours[@]}" "${theirs[@]}" <<'PY'
import json, sys
method, n = sys.argv[1], int(sys.argv[2])
median = lambda runs: sorted(runs, key=lambda run: float(run["tokens_per_s"]))[(len(runs) - 1) // 2]
ours = median([json.loads(text) for text in sys.argv[3:3 + n]])
theirs = median([dict(kv.split("=") for kv in text.split()[1:]) for text in sys.argv[3 + n:]])
peer = float(theirs["tokens_per_s"])
print(f"| {method} | {ours['tokens_per_s']:.0f} | {peer:.0f} | {ours['tokens_per_s'] / peer:.2f}x | "
      f"{ours['achieved_gflops']:.0f} | {ours['sgemm_gflops']:.0f} | {100 * ours['fraction_of_sgemm']:.0f}% | "
      f"{ours['peak_rss_mb']:.0f} | {float(theirs['peak_rss_mb']):.0f} |")
PY
done
