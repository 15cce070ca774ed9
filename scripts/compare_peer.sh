#!/usr/bin/env bash
# Times PTune and the Python stack (PyTorch + transformers + PEFT) on the same training step,
# at float32 and bfloat16, one after the other on this machine, and prints a Markdown table.
#
#   [CONFIG=bert-base] [REPEATS=N] scripts/compare_peer.sh PEER_PYTHON PEFT_STEP_PY [methods...]
#
# PEER_PYTHON: the python of a throw-away venv with torch, transformers==4.46.3, peft==0.12.0
# (see ../shared/peer/README.md); PEFT_STEP_PY: the peer's peft_step.py. Same work on both
# sides: MiniLM-L6 (or CONFIG's random-weight shape: bert-base, bert-large), sequence
# classification, batch 32 x 128 tokens, AdamW, and the peer's method settings (ptv2 16
# prompt tokens; ptv1 LSTM hidden = the model's; LoRA r 8 alpha 16 on query and value; Freeze
# the FF of the last two layers; full fine-tuning; prefix, which the peer lacks, PTune only).
# bf16 runs only where the processor has AVX512-BF16 or AMX. With REPEATS=N (default 1) each
# method alternates the stacks N times and the table gives each one's median run (tokens/s).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
peer_python="$1"; peer_step="$2"; shift 2
methods="${*:-ptv2 prefix ptv1 lora freeze full}"
config="${CONFIG:-checkpoint}"
model="$(scripts/fetch-model.sh)"
swift build -c release --product ptune >&2
ptune="$(swift build -c release --show-bin-path)/ptune"
hidden=$(case "$config" in bert-base) echo 768 ;; bert-large) echo 1024 ;; *) echo 384 ;; esac)
declare -A options=(
    [ptv2]="--method ptv2 --prompt-length 16"
    [prefix]="--method prefix --prompt-length 16"
    [ptv1]="--method ptv1 --prompt-length 16 --prompt-encoder lstm --encoder-hidden $hidden --encoder-layers 2"
    [lora]="--method lora --lora-r 8 --lora-alpha 16 --lora-dropout 0 --lora-targets query,value"
    [freeze]="--method freeze --freeze-layers 2 --freeze-modules ff"
    [full]="--method full"
)
precisions="fp32"
grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo && precisions="fp32 bf16"
peer_model="$model"
[[ "$config" != checkpoint ]] && peer_model="$config"
bf16_flags=$(grep -owE 'avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ' || true)
echo "processor: $(lscpu | sed -n 's/^Model name: *//p'), family $(lscpu | sed -n 's/^CPU family: *//p')" \
     "model $(lscpu | sed -n 's/^Model: *//p'); bfloat16: ${bf16_flags:-none (fp32 only)}"
echo
echo "| method | precision | PTune tokens/s | peer tokens/s | ratio | PTune GFLOP/s | peak GFLOP/s | share | largest product | PTune RSS MB | peer RSS MB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for method in $methods; do
    for precision in $precisions; do
        ours=() theirs=()
        for _ in $(seq "${REPEATS:-1}"); do
            ours+=("$("$ptune" bench --model "$model" --config "$config" ${options[$method]} --precision "$precision" \
                     --batch-size 32 --max-length 128 --steps 6 --json 2>/dev/null)")
            if [[ "$method" != prefix ]]; then
                theirs+=("$(OMP_NUM_THREADS=$(nproc) "$peer_python" "$peer_step" "$peer_model" "$method" 32 128 6 "$precision" 2>/dev/null | tail -1)")
            fi
        done
        python3 - "$method" "$precision" "${#ours[@]}" "${#theirs[@]}" "${ours[@]}" "${theirs[@]}" <<'PY'
import json, sys
method, precision, n, m = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
median = lambda runs: sorted(runs, key=lambda run: float(run["tokens_per_s"]))[(len(runs) - 1) // 2] if runs else None
ours = median([json.loads(text) for text in sys.argv[5:5 + n]])
theirs = median([dict(kv.split("=") for kv in text.split()[1:]) for text in sys.argv[5 + n:5 + n + m]])
peer = float(theirs["tokens_per_s"]) if theirs else None
cells = [method, precision, "%.0f" % ours["tokens_per_s"], "%.0f" % peer if peer else "-",
         "%.2fx" % (ours["tokens_per_s"] / peer) if peer else "-", "%.0f" % ours["achieved_gflops"],
         "%.0f" % ours["peak_gflops"], "%.0f%%" % (100 * ours["fraction_of_peak"]), ours["largest_product"],
         "%.0f" % ours["peak_rss_mb"], "%.0f" % float(theirs["peak_rss_mb"]) if theirs else "-"]
print("| " + " | ".join(cells) + " |")
PY
    done
done
