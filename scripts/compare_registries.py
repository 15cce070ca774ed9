#!/usr/bin/env python3
"""Compares two adapter registries (say launch.sh's and launch.sh --debug's): for each task,
the largest difference between the adapters' tensors (absolute, and relative to the tensor's
largest value) and the dev/test primary metric of each. Exits 1 if a task or tensor is
missing from one of them, or if a tensor differs by more than --tolerance (relative).

    scripts/compare_registries.py REGISTRY_A REGISTRY_B [--tolerance 1e-3]
"""
import argparse, array, json, struct, sys
from pathlib import Path


def tensors(path):
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    result = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] != "F32":
            sys.exit(f"{path}: tensor {name} is {entry['dtype']}, expected F32")
        start, end = entry["data_offsets"]
        values = array.array("f")
        values.frombytes(data[8 + length + start:8 + length + end])
        result[name] = values
    return result


def metric(entry, split):
    scores, primary = entry.get(split) or {}, entry.get("primary_metric")
    return scores.get(primary, float("nan"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--tolerance", type=float, default=1e-3)
    args = parser.parse_args()
    manifests = [{e["task"]: e for e in json.loads((r / "manifest.json").read_text())["adapters"]} for r in (args.a, args.b)]
    failed = False
    print("| task | metric | dev A | dev B | test A | test B | max abs diff | max rel diff |")
    print("|---|---|---|---|---|---|---|---|")
    for task in sorted(set(manifests[0]) | set(manifests[1])):
        if task not in manifests[0] or task not in manifests[1]:
            print(f"| {task} | missing from {'A' if task not in manifests[0] else 'B'} |||||||")
            failed = True
            continue
        a, b = (tensors(r / task / "adapter_model.safetensors") for r in (args.a, args.b))
        worst_abs = worst_rel = 0.0
        for name in sorted(set(a) | set(b)):
            if name not in a or name not in b or len(a[name]) != len(b[name]):
                print(f"| {task} | tensor {name} missing or reshaped |||||||")
                failed = True
                continue
            scale = max(max((abs(v) for v in a[name]), default=0.0), 1e-12)
            diff = max((abs(x - y) for x, y in zip(a[name], b[name])), default=0.0)
            worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, diff / scale)
        failed |= worst_rel > args.tolerance
        ea, eb = manifests[0][task], manifests[1][task]
        print(f"| {task} | {ea.get('primary_metric')} | {metric(ea, 'dev'):.4f} | {metric(eb, 'dev'):.4f} | "
              f"{metric(ea, 'test'):.4f} | {metric(eb, 'test'):.4f} | {worst_abs:.2e} | {worst_rel:.2e} |")
    sys.exit(1 if failed else 0)


main()
