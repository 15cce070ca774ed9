#!/usr/bin/env bash
# What multi-task prompt pretraining buys: the default pipeline (`./launch.sh`: pretraining, then
# every task adapted from the pretrained prompt and from scratch) once per seed, training
# fraction and task-sampling temperature, then a table of each task's test score with and
# without pretraining and the gain, mean ± sample standard deviation over the seeds
# (scripts/mpt_table.py). A finished run is kept, not redone.
#
#   [FRACTIONS="1 0.1 0.01"] [TEMPERATURES=2] [OUT=runs/mpt] [PTUNE_BINARY=...] \
#   scripts/mpt_study.sh [SEEDS...]        (default seeds: 1 2 3)
#
# A fraction below 1 is the few-shot case: pretraining and adaptation both see only that seeded
# share of each task's training split (`--train-fraction`; dev and test stay whole). Extra
# `ptune run` options go in RUN_OPTIONS (for example "--pretrain-steps 600"); PTUNE_BINARY as for
# launch.sh (a binary built before, so runs that outlast an edit use one build). SCRATCH_FROM: an
# earlier study's folder whose runs from scratch this one reuses (copied in, kept by --resume):
# a variant of pretraining or of the adaptation from it changes nothing from scratch, for the
# same seed and fraction (at any temperature), so only the pretrained half runs again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seeds="${*:-1 2 3}"
out="${OUT:-runs/mpt}"
mkdir -p "$out"
for fraction in ${FRACTIONS:-1 0.1 0.01}; do
    for temperature in ${TEMPERATURES:-2}; do
        for seed in $seeds; do
            run="$out/f$fraction-t$temperature-s$seed"
            [[ -f "$run/results.md" ]] && continue
            resume=()
            # Temperature only shapes pretraining: a run from scratch at any temperature will do.
            scratch="$(compgen -G "${SCRATCH_FROM:-}/f$fraction-t*-s$seed/scratch" | head -1 || true)"
            if [[ ! -d "$run" && -n "${SCRATCH_FROM:-}" ]]; then
                [[ -d "$scratch/runs" ]] || { echo "$SCRATCH_FROM/f$fraction-t*-s$seed: no runs from scratch" \
                    "to reuse" >&2; exit 1; }
                mkdir -p "$run" && cp -r "$scratch" "$run/scratch"
            fi
            [[ -d "$run" ]] && resume=(--resume)  # an interrupted run continues
            echo "$(date +%T) pipeline: train fraction $fraction, temperature $temperature, seed $seed -> $run" >&2
            # shellcheck disable=SC2086  # RUN_OPTIONS are words
            ./launch.sh --out "$run" "${resume[@]}" -- --seed "$seed" --train-fraction "$fraction" \
                --temperature "$temperature" ${RUN_OPTIONS:-} > "$run.log" 2>&1 \
                || { echo "the pipeline failed: see $run.log" >&2; exit 1; }
        done
    done
done
python3 scripts/mpt_table.py "$out"
