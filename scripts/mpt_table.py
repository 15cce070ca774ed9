"""Summarises scripts/mpt_study.sh's pipelines: for each training fraction and temperature, each
task's test score (its primary metric) adapted from the pretrained prompt and from scratch, and
the gain, as mean ± sample standard deviation over the seeds, with the baseline beside them (drawn
from the training sample a run had, so for a few-shot run averaged over the seeds too).

    python3 scripts/mpt_table.py [OUT]        (default runs/mpt)
"""
import glob, json, os, re, statistics, sys
from collections import defaultdict

out = sys.argv[1] if len(sys.argv) > 1 else "runs/mpt"
# (fraction, temperature) -> task -> {"pretrained": [...], "scratch": [...], "gain": [...]}, seeds
groups = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
seeds = defaultdict(set)
baselines, metrics = defaultdict(list), {}


def score(path):
    summary = json.load(open(path))
    metric = summary["primary_metric"]
    return summary["task"], metric, summary["test"][metric], summary.get("baseline", {}).get(metric)


for run in sorted(glob.glob(os.path.join(out, "f*-t*-s*"))):
    match = re.fullmatch(r"f([0-9.]+)-t([0-9.]+)-s(\d+)", os.path.basename(run))
    if not match or not os.path.isfile(os.path.join(run, "results.md")):
        continue
    key = (float(match[1]), float(match[2]))
    seeds[key].add(int(match[3]))
    for path in sorted(glob.glob(os.path.join(run, "runs", "*", "summary.json"))):
        task, metric, pretrained, baseline = score(path)
        _, _, scratch, _ = score(os.path.join(run, "scratch", "runs", os.path.basename(os.path.dirname(path)),
                                              "summary.json"))
        cell = groups[key][task]
        cell["pretrained"].append(pretrained)
        cell["scratch"].append(scratch)
        cell["gain"].append(pretrained - scratch)
        metrics[task] = metric
        if baseline is not None:
            baselines[key, task].append(baseline)


def spread(values, sign=""):
    mean = f"{statistics.mean(values):{sign}.3f}"
    return f"{mean} ± {statistics.stdev(values):.3f}" if len(values) > 1 else mean


if not groups:
    sys.exit(f"{out}: no finished pipeline (f<fraction>-t<temperature>-s<seed>/results.md)")
for (fraction, temperature), tasks in sorted(groups.items(), key=lambda item: (-item[0][0], item[0][1])):
    print(f"\ntraining fraction {fraction:g}, temperature {temperature:g}, seeds "
          f"{' '.join(map(str, sorted(seeds[(fraction, temperature)])))}; test split:\n")
    print("| task | metric | baseline | pretrained prompt | from scratch | gain | seeds gaining |")
    print("|---|---|---|---|---|---|---|")
    for task, cell in sorted(tasks.items()):
        samples = baselines[(fraction, temperature), task]
        base = f"{statistics.mean(samples):.3f}" if samples else "–"
        gaining = sum(gain > 0 for gain in cell["gain"])
        print(f"| {task} | {metrics[task]} | {base} | {spread(cell['pretrained'])} | {spread(cell['scratch'])} | "
              f"{spread(cell['gain'], '+')} | {gaining} of {len(cell['gain'])} |")
    everything = [gain for cell in tasks.values() for gain in cell["gain"]]
    print(f"\nmean gain over tasks and seeds: {statistics.mean(everything):+.4f}")
