#!/usr/bin/env python3
"""Prints the results table (Markdown) from the run folders that scripts/results.sh wrote."""
import json, os, sys

out = sys.argv[1]
rows = []
for name in sorted(os.listdir(out)):
    summary_path = os.path.join(out, name, "summary.json")
    if not os.path.exists(summary_path):
        continue
    summary = json.load(open(summary_path))
    metric = summary["primary_metric"]
    wall = open(os.path.join(out, name, "wall_seconds")).read().strip() if os.path.exists(os.path.join(out, name, "wall_seconds")) else "?"
    dev = summary.get("dev", {}).get(metric)
    test = summary.get("test", {}).get(metric)
    extra = ""
    if "macro_f1" in summary.get("test", {}):
        extra = f"macro-F1 {summary['test']['macro_f1']:.3f}"
    rows.append((summary["task"], summary["method"]["method"], metric, dev, test, extra,
                 summary["trainable_parameters"], summary["steps"], wall))
print("| task | method | metric | dev | test | also (test) | trainable | steps | wall s |")
print("|---|---|---|---|---|---|---|---|---|")
for task, method, metric, dev, test, extra, trainable, steps, wall in rows:
    fmt = lambda v: "–" if v is None else f"{v:.3f}"
    print(f"| {task} | {method} | {metric} | {fmt(dev)} | {fmt(test)} | {extra} | {trainable:,} | {steps} | {wall} |")
