"""Summarises scripts/compare_learning.sh's runs as a Markdown table: per task, method and
stack (peer, ptune, ptune-VARIANT), the mean test and dev metric at the best dev epoch over
seeds, their spread (sample standard deviation; a dash with one seed), and PTune minus peer.

    python3 scripts/learning_table.py [FOLDER]      (default runs/learning)
    python3 scripts/learning_table.py FOLDER --curves TASK-METHOD   (mean dev/test per epoch)
"""
import collections, glob, json, os, re, statistics, sys

folder = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "runs/learning"
runs = collections.defaultdict(list)   # (task, method, stack) -> [(summary, epochs)]
for path in sorted(glob.glob(os.path.join(folder, "*.jsonl"))):
    match = re.fullmatch(r"(.+)-(ptv2|lora|full)-(peer|ptune(?:-.+)?)-s(\d+)\.jsonl", os.path.basename(path))
    lines = [json.loads(line) for line in open(path) if line.strip()]
    if not match or not lines or "best_epoch" not in lines[-1]:
        continue
    runs[match.group(1), match.group(2), match.group(3)].append((lines[-1], lines[:-1]))


def spread(values):
    return f"{statistics.stdev(values):.4f}" if len(values) > 1 else "–"


if "--curves" in sys.argv:
    task, method = sys.argv[sys.argv.index("--curves") + 1].rsplit("-", 1)
    print("| stack | epoch | dev | test |\n|---|---|---|---|")
    for (t, m, stack), group in sorted(runs.items()):
        if (t, m) != (task, method):
            continue
        by_epoch = collections.defaultdict(list)
        for _, epochs in group:
            for row in epochs:
                by_epoch[row["epoch"]].append(row)
        for epoch, rows in sorted(by_epoch.items()):
            print(f"| {stack} | {epoch:g} | {statistics.mean(r['dev'] for r in rows):.4f} "
                  f"| {statistics.mean(r['test'] for r in rows):.4f} |")
    sys.exit()

print("| task | method | metric | stack | seeds | test mean | test sd | dev mean | dev sd | best epoch | vs peer (test) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (task, method, stack), group in sorted(runs.items()):
    tests = [s["test"] for s, _ in group]
    devs = [s["dev"] for s, _ in group]
    peer = runs.get((task, method, "peer"))
    versus = "" if stack == "peer" or not peer else f"{statistics.mean(tests) - statistics.mean(s['test'] for s, _ in peer):+.4f}"
    print(f"| {task} | {method} | {group[0][0]['metric']} | {stack} | {len(group)} | {statistics.mean(tests):.4f} "
          f"| {spread(tests)} | {statistics.mean(devs):.4f} | {spread(devs)} "
          f"| {statistics.mean(s['best_epoch'] for s, _ in group):.1f} | {versus} |")
