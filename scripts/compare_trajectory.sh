#!/usr/bin/env bash
# Takes the same training steps in PTune and in the Python stack and prints both losses per step:
# the first EXAMPLES training examples of TASK as one batch per step, from the same start values
# (a seeded prompt and head written here, or for LoRA an adapter PEFT writes, read by both), with
# dropout off in the model's config.json (a copy), no weight decay and no warm-up, so nothing
# random is left. Where the two stacks' steps (forward, backward, clipping, AdamW, learning-rate
# schedule) are the same computation, the losses agree to float32 rounding over every step; where
# they part, this shows the step.
#
#   [STEPS=30] [EXAMPLES=32] [PROMPT_LENGTH=16] [LR=...] [KEEP=folder] \
#   scripts/compare_trajectory.sh PEER_PYTHON TASK ptv2|lora|full
#
# PEER_PYTHON: the Python stack's venv (see compare_learning.sh). Exit status 1 when a step's
# losses differ by more than 1e-4 relative. PTUNE_BINARY: a ptune binary instead of building one.
# KEEP: copy the cut task, the start values and the stack's losses there (how Tests/Fixtures/
# trajectory was made, which TrainerTests replays in CI without the Python stack).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
peer_python="$1" task="$2" method="$3"
steps="${STEPS:-30}" examples="${EXAMPLES:-32}" prompt_length="${PROMPT_LENGTH:-16}"
# shellcheck source=scripts/stack_recipe.sh
source scripts/stack_recipe.sh
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The model without dropout, the task cut to its first examples (train, dev and test alike).
mkdir "$work/model"
for file in "$model"/*; do ln -s "$file" "$work/model/"; done
rm "$work/model/config.json"
python3 - "$model" "$spec" "$examples" "$work" <<'PY'
import csv, io, json, os, sys
model, spec_path, examples, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
config = json.load(open(os.path.join(model, "config.json")))
config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=None)
json.dump(config, open(os.path.join(work, "model", "config.json"), "w"))
spec = json.load(open(spec_path))
text = open(os.path.join(os.path.dirname(spec_path), spec["train"]), encoding="utf-8").read()
if spec["format"] == "conll":
    cut = "\n\n".join([block for block in text.split("\n\n") if block.strip()][:examples]) + "\n"
elif spec["format"] == "jsonl":
    cut = "".join(line + "\n" for line in [line for line in text.splitlines() if line.strip()][:examples])
else:
    rows = list(csv.reader(io.StringIO(text)))
    out = io.StringIO(); csv.writer(out).writerows(rows[:examples + 1]); cut = out.getvalue()
name = "train." + spec["format"]
open(os.path.join(work, name), "w", encoding="utf-8").write(cut)
spec.update(train=name, dev=name, test=name)
json.dump(spec, open(os.path.join(work, "task.json"), "w"))
PY
# Seeded start values: a prompt as PEFT draws one, N(0, 1), and a head as transformers does,
# N(0, 0.02) weights and zero biases, in the files `ptune adapt` starts from; for LoRA, the adapter
# folder PEFT saves (`ptune train --initial-adapter` reads it), its B matrices drawn N(0, 0.02)
# rather than PEFT's zeros so that the A matrices' gradients are tested from the first step.
"$peer_python" - "$work" "$method" "$prompt_length" <<'PY'
import json, os, sys
import torch
from safetensors.torch import save_file
work, method, prompt_length = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = json.load(open(os.path.join(work, "model", "config.json")))
spec = json.load(open(os.path.join(work, "task.json")))
hidden, random = config["hidden_size"], torch.Generator().manual_seed(1)
if method == "lora":
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import BertForSequenceClassification, BertForTokenClassification
    tagging = spec["kind"] == "tagging"
    torch.manual_seed(1)
    model = (BertForTokenClassification if tagging else BertForSequenceClassification).from_pretrained(
        os.path.join(work, "model"), num_labels=len(spec["labels"]))
    task_type = TaskType.TOKEN_CLS if tagging else TaskType.SEQ_CLS
    lora = LoraConfig(task_type=task_type, r=8, lora_alpha=16, target_modules=["query", "value"])
    model = get_peft_model(model, lora)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.02, generator=random)
    model.save_pretrained(os.path.join(work, "adapter"))
    sys.exit(0)
if method == "ptv2":
    prompt = torch.randn(prompt_length, config["num_hidden_layers"] * 2 * hidden, generator=random)
    save_file({"prompt_encoder.embedding.weight": prompt}, os.path.join(work, "prompt.safetensors"))
head = {f"{spec['name']}/classifier.weight": 0.02 * torch.randn(len(spec["labels"]), hidden, generator=random),
        f"{spec['name']}/classifier.bias": torch.zeros(len(spec["labels"]))}
save_file(head, os.path.join(work, "heads.safetensors"))
PY
case $method in
    lora) initial=(--initial-adapter "$work/adapter") ;;
    ptv2) initial=(--initial-head "$work/heads.safetensors" --initial-prompt "$work/prompt.safetensors") ;;
    full) initial=(--initial-head "$work/heads.safetensors") ;;
esac

# `train` takes a whole adapter to start from, `adapt` a pretrained prompt and head.
command=(adapt --tasks "$work/task.json")
[[ $method == lora ]] && command=(train --task "$work/task.json")
# shellcheck disable=SC2086  # the options are words
"$ptune" "${command[@]}" --model "$work/model" $method_options --lr "$lr" \
    --batch-size "$examples" --max-steps "$steps" --eval-every "$steps" --warmup-ratio 0 --weight-decay 0 \
    --max-grad-norm 1 --max-length 128 --log-every 1 --precision fp32 "${initial[@]}" \
    --out "$work/ptune" > "$work/ptune.log" 2>&1 || { cat "$work/ptune.log" >&2; exit 1; }
OMP_NUM_THREADS=$(nproc) "$peer_python" scripts/peer_learning.py "$work/model" "$work/task.json" "$method" 1 "$lr" \
    --prompt-length "$prompt_length" --trajectory "$steps" "${initial[@]}" > "$work/peer.jsonl" 2> "$work/peer.log" \
    || { cat "$work/peer.log" >&2; exit 1; }

if [[ -n "${KEEP:-}" ]]; then
    mkdir -p "$KEEP"
    cp -r "$work"/task.json "$work"/train.* "$work/peer.jsonl" "$KEEP/"
    for start in "$work"/*.safetensors "$work"/adapter; do   # the start values this method has
        if [[ -e $start ]]; then cp -r "$start" "$KEEP/"; fi
    done
    rm -f "$KEEP/adapter/README.md"   # PEFT's model card template
fi
python3 - "$work" "$task" "$method" "$examples" <<'PY'
import glob, json, sys
work, task, method, examples = sys.argv[1:]
# `train` writes its metrics in its folder, `adapt` in the task's run below it.
losses, = glob.glob(f"{work}/ptune/metrics.jsonl") + glob.glob(f"{work}/ptune/runs/*/metrics.jsonl")
ours = [row["loss"] for row in map(json.loads, open(losses)) if "loss" in row]
theirs = [json.loads(line) for line in open(f"{work}/peer.jsonl")]
print(f"{task} {method}: {examples} examples as one batch per step, no dropout, weight decay or warm-up\n")
print("| step | PTune loss | stack loss | relative difference | stack's gradient norm |\n|---|---|---|---|---|")
worst = 0.0
for step, (a, b) in enumerate(zip(ours, theirs), 1):
    difference = (a - b["loss"]) / abs(b["loss"])
    worst = max(worst, abs(difference))
    print(f"| {step} | {a:.6f} | {b['loss']:.6f} | {difference:+.1e} | {b['norm']:.4f} |")
if len(ours) != len(theirs):
    sys.exit(f"PTune logged {len(ours)} steps, the stack {len(theirs)}")
print(f"\nlargest relative difference over {len(ours)} steps: {worst:.1e}")
sys.exit(0 if worst <= 1e-4 else 1)
PY
