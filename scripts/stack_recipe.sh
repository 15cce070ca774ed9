# The one recipe compare_learning.sh and compare_trajectory.sh give both stacks, sourced from the
# repository's root with $task and $method set ($prompt_length too, default 16): sets lr (the
# method's rate, or LR), method_options (PTune's options for the method; the Python stack's
# scripts/peer_learning.py holds the same settings), spec, model and ptune, or stops with exit 2.
declare -A rates=([ptv2]=1e-2 [lora]=5e-4 [full]=5e-5)
declare -A all_method_options=(
    [ptv2]="--method ptv2 --prompt-length ${prompt_length:-16} --prompt-dropout 0"
    [lora]="--method lora --lora-r 8 --lora-alpha 16 --lora-dropout 0 --lora-targets query,value"
    [full]="--method full"
)
[[ -n "${rates[$method]:-}" ]] || { echo "method must be ptv2, lora or full, not '$method'" >&2; exit 2; }
lr="${LR:-${rates[$method]}}"
method_options="${all_method_options[$method]}"
spec="datasets/$task.json"
[[ -f "$spec" ]] || { echo "$spec: no such task spec" >&2; exit 2; }
model="$(scripts/fetch-model.sh)"
ptune="$(scripts/ptune-binary.sh)"
