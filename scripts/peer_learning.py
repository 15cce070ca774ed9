"""The Python stack's learning curve on a PTune task spec, for scripts/compare_learning.sh.

The recipe of ../shared/peer/peft_train.py (PyTorch + transformers 4.46 + PEFT 0.12): shuffled
batches of 32, AdamW with weight decay 0.01 on every trainable tensor, 6% linear warm-up then
linear decay, clipping at 1.0, max length 128, and for tagging the label on each word's first
piece. Added here: a seed, dev and test scored after every epoch, and PTune's primary metric
(accuracy; token accuracy; entity F1 for BIO tags, as seqeval's default mode) so both stacks
choose their best epoch by the same number. Writes one JSON line per epoch, then a summary line.

As in peft_train.py, the model trains its first epoch in eval mode, without dropout:
`from_pretrained` returns a model in eval mode and only `evaluate` switches it to training mode.

With --trajectory STEPS (for scripts/compare_trajectory.sh), it instead takes STEPS steps on the
whole training split as one batch, in training mode (dropout as the model's config.json says),
without weight decay or warm-up, from the start values of --initial-prompt and --initial-head (the
files `ptune adapt` takes) or, for LoRA, of the PEFT adapter folder --initial-adapter (which
`ptune train --initial-adapter` takes), and writes one {"step", "loss", "norm"} line per step.

    python peer_learning.py MODEL_DIR SPEC ptv2|lora|full EPOCHS LR [--seed S] [--prompt-length P]
        [--trajectory STEPS (--initial-prompt FILE --initial-head FILE | --initial-adapter DIR)]
"""
import argparse, csv, json, os, random, sys, time

import torch
from peft import LoraConfig, PeftModel, PrefixTuningConfig, TaskType, get_peft_model
from transformers import BertForSequenceClassification, BertForTokenClassification, BertTokenizerFast

parser = argparse.ArgumentParser()
parser.add_argument("model"); parser.add_argument("spec"); parser.add_argument("method", choices=["ptv2", "lora", "full"])
parser.add_argument("epochs", type=int); parser.add_argument("lr", type=float)
parser.add_argument("--seed", type=int, default=0); parser.add_argument("--prompt-length", type=int, default=16)
parser.add_argument("--trajectory", type=int); parser.add_argument("--initial-prompt"); parser.add_argument("--initial-head")
parser.add_argument("--initial-adapter")
args = parser.parse_args()
torch.manual_seed(args.seed); random.seed(args.seed)
torch.set_num_threads(os.cpu_count())
spec = json.load(open(args.spec)); base = os.path.dirname(args.spec)
labels = spec["labels"]; label_ids = {l: i for i, l in enumerate(labels)}
tagging = spec["kind"] == "tagging"
bio = tagging and any(l.startswith("B-") for l in labels)
metric = "entity_f1" if bio else "token_accuracy" if tagging else "accuracy"
tokenizer = BertTokenizerFast.from_pretrained(args.model)


def read(split):
    path = os.path.join(base, spec[split])
    fmt = spec["format"]
    if fmt == "csv":
        rows = list(csv.DictReader(open(path, encoding="utf-8")))
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    elif fmt == "conll":
        rows, words = [], []
        for line in list(open(path, encoding="utf-8")) + [""]:
            line = line.rstrip("\n")
            if line:
                words.append(line.split("\t"))
            elif words:
                rows.append({"tokens": [w for w, _ in words], "tags": [t for _, t in words]}); words = []
        return [(r["tokens"], [label_ids[t] for t in r["tags"]]) for r in rows]
    else:
        sys.exit(f"{args.spec}: format {fmt!r} is not csv, jsonl or conll")
    if tagging:
        text, tags = spec.get("text_field", "tokens"), spec.get("label_field", "tags")
        return [(r[text], [label_ids[t] for t in r[tags]]) for r in rows]
    return [(r[spec["text_field"]], label_ids[r[spec["label_field"]]]) for r in rows]


def encode(batch):
    if not tagging:
        e = tokenizer([t for t, _ in batch], padding=True, truncation=True, max_length=128, return_tensors="pt")
        return e, torch.tensor([y for _, y in batch])
    e = tokenizer([w for w, _ in batch], is_split_into_words=True, padding=True, truncation=True, max_length=128,
                  return_tensors="pt")
    y = torch.full(e["input_ids"].shape, -100)
    for i, (_, tags) in enumerate(batch):
        previous = None
        for j, word in enumerate(e.word_ids(i)):
            if word is not None and word != previous:
                y[i, j] = tags[word]
            previous = word
    return e, y


def spans(tags):
    """BIO entities as (start, end, type), seqeval's default mode: a stray I- starts one."""
    found, start, kind = set(), None, ""
    for i, tag in enumerate(tags + ["O"]):
        prefix, _, name = tag.partition("-") if tag != "O" else ("O", "", "")
        if prefix == "B" or prefix == "O" or (prefix == "I" and (start is None or name != kind)):
            if start is not None:
                found.add((start, i, kind))
            start, kind = (i, name) if prefix in ("B", "I") else (None, "")
    return found


def evaluate(data):
    model.eval(); good = total = 0; gold_spans, predicted_spans = set(), set()
    with torch.no_grad():
        for i in range(0, len(data), 64):
            e, y = encode(data[i:i + 64])
            p = model(**e).logits.argmax(-1)
            mask = y != -100
            good += int(((p == y) & mask).sum()); total += int(mask.sum())
            if bio:
                for row in range(len(y)):
                    keep = mask[row]
                    sentence = i + row
                    gold_spans |= {(sentence,) + s for s in spans([labels[t] for t in y[row][keep].tolist()])}
                    predicted_spans |= {(sentence,) + s for s in spans([labels[t] for t in p[row][keep].tolist()])}
    model.train()
    if not bio:
        return good / max(1, total)
    correct = len(gold_spans & predicted_spans)
    precision = correct / max(1, len(predicted_spans)); recall = correct / max(1, len(gold_spans))
    return 0.0 if correct == 0 else 2 * precision * recall / (precision + recall)


Model = BertForTokenClassification if tagging else BertForSequenceClassification
task_type = TaskType.TOKEN_CLS if tagging else TaskType.SEQ_CLS
model = Model.from_pretrained(args.model, num_labels=len(labels))
if args.method == "ptv2":
    model = get_peft_model(model, PrefixTuningConfig(task_type=task_type, num_virtual_tokens=args.prompt_length,
                                                     prefix_projection=False))
elif args.method == "lora" and args.initial_adapter:
    model = PeftModel.from_pretrained(model, args.initial_adapter, is_trainable=True)
elif args.method == "lora":
    model = get_peft_model(model, LoraConfig(task_type=task_type, r=8, lora_alpha=16, target_modules=["query", "value"]))
train, dev, test = read("train"), read("dev"), read("test")


def trajectory(steps):
    from safetensors.torch import load_file
    trained = dict(model.named_parameters())
    with torch.no_grad():
        if args.initial_prompt:
            trained["prompt_encoder.default.embedding.weight"].copy_(
                load_file(args.initial_prompt)["prompt_encoder.embedding.weight"])
        if args.initial_head:
            heads = load_file(args.initial_head)
            for name in ("weight", "bias"):   # PEFT trains a copy: classifier.modules_to_save.default.NAME
                target = next(p for n, p in trained.items()
                              if "classifier." in n and n.endswith("." + name) and p.requires_grad)
                target.copy_(heads[f"{spec['name']}/classifier.{name}"])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / steps))
    e, y = encode(train)
    model.train()
    for step in range(1, steps + 1):
        loss = model(**e, labels=y).loss
        loss.backward(); norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step(); schedule.step(); optimizer.zero_grad()
        print(json.dumps({"step": step, "loss": loss.item(), "norm": norm.item()}), flush=True)


if args.trajectory:
    trajectory(args.trajectory)
    sys.exit(0)
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.01)
steps = args.epochs * ((len(train) + 31) // 32)
schedule = torch.optim.lr_scheduler.LambdaLR(
    optimizer, lambda s: min(1.0, (s + 1) / max(1, int(0.06 * steps))) * max(0.0, 1 - s / steps))

started = time.time(); best = None
for epoch in range(1, args.epochs + 1):
    random.shuffle(train)
    for i in range(0, len(train), 32):
        e, y = encode(train[i:i + 32])
        loss = model(**e, labels=y).loss
        loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step(); schedule.step(); optimizer.zero_grad()
    line = {"epoch": epoch, "metric": metric, "dev": evaluate(dev), "test": evaluate(test),
            "seconds": round(time.time() - started, 1)}
    print(json.dumps(line), flush=True)
    if best is None or line["dev"] > best["dev"]:
        best = line
print(json.dumps({"task": spec["name"], "method": args.method, "seed": args.seed, "metric": metric,
                  "best_epoch": best["epoch"], "dev": best["dev"], "test": best["test"],
                  "seconds": round(time.time() - started, 1)}), flush=True)
