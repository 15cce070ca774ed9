"""The Python stack serving a registry, for scripts/bench_serve.sh: PyTorch + transformers 4.46 +
PEFT 0.12, one model holding every task's adapter, dynamic batching like `ptune serve`'s (what
arrives within MAX_WAIT_MS, up to MAX_BATCH), then one forward pass per group of same-task requests
after `set_adapter` (PEFT has no mixed-task batches for prompt methods, huggingface/peft#759).
Each task's head (the adapter file's classifier) runs on the encoder's output, as in
BertFor{Sequence,Token}Classification. Same endpoint and answers as `ptune serve`'s /v1/predict
for one input. PEER_PRECISION=bf16 runs the forward passes under torch.autocast (bfloat16 products,
as peft_step.py's bf16). Run it in the throw-away peer venv, never as a dependency of the project:

    [PEER_PRECISION=fp32|bf16] peer-venv/bin/python scripts/peer_serve.py REGISTRY MODEL_DIR MAX_BATCH MAX_WAIT_MS PORT
"""
import json, os, queue, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
from peft import PeftConfig, TaskType, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import BertModel, BertTokenizerFast

registry, model_dir, max_batch, max_wait, port = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]) / 1000, int(sys.argv[5])
torch.set_num_threads(os.cpu_count())
autocast = os.environ.get("PEER_PRECISION", "fp32") == "bf16"
tokenizer = BertTokenizerFast.from_pretrained(model_dir)
model, heads = None, {}
for entry in json.load(open(os.path.join(registry, "manifest.json")))["adapters"]:
    name, folder = entry["task"], os.path.join(registry, entry["adapter"])
    config = PeftConfig.from_pretrained(folder)
    tagging = config.task_type == TaskType.TOKEN_CLS
    config.task_type = TaskType.FEATURE_EXTRACTION   # the encoder only; the head is applied below
    if model is None:
        model = get_peft_model(BertModel.from_pretrained(model_dir), config, adapter_name=name)
    else:
        model.add_adapter(name, config)
    tensors = load_file(os.path.join(folder, "adapter_model.safetensors"))
    set_peft_model_state_dict(model, {k: v for k, v in tensors.items() if "classifier" not in k}, adapter_name=name)
    head = torch.nn.Linear(tensors["base_model.classifier.weight"].shape[1], tensors["base_model.classifier.weight"].shape[0])
    head.weight.data.copy_(tensors["base_model.classifier.weight"]); head.bias.data.copy_(tensors["base_model.classifier.bias"])
    extras = os.path.join(folder, "ptune.json")
    labels = json.load(open(extras)).get("labels") if os.path.exists(extras) else None
    heads[name] = (head, tagging, labels)
model.eval()
waiting = queue.Queue()


def answer(group):
    task = group[0][0]["task"]
    head, tagging, labels = heads[task]
    name = lambda i: labels[i] if labels else i
    model.set_adapter(task)
    if tagging:
        words = [item["tokens"] if "tokens" in item else item["text"].split() for item, _ in group]
        encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=128, padding=True, return_tensors="pt")
    else:
        encoded = tokenizer([item["text"] for item, _ in group], truncation=True, max_length=128, padding=True,
                            return_tensors="pt")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        output = model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
                       token_type_ids=encoded["token_type_ids"])
        logits = head(output.last_hidden_state if tagging else output.pooler_output).float()
    for row, (item, slot) in enumerate(group):
        if tagging:
            starts, previous = [], None
            for position, word in enumerate(encoded.word_ids(row)):
                if word is not None and word != previous:
                    starts.append(position)
                previous = word
            values = logits[row, starts]
            slot.append({"tokens": words[row][:len(starts)], "labels": [name(int(i)) for i in values.argmax(-1)],
                         "token_logits": values.tolist()})
        else:
            slot.append({"label": name(int(logits[row].argmax())), "logits": logits[row].tolist()})


def worker():
    while True:
        batch = [waiting.get()]
        deadline = time.time() + max_wait
        while len(batch) < max_batch:
            try:
                batch.append(waiting.get(timeout=max(0.0, deadline - time.time())))
            except queue.Empty:
                break
        groups = {}
        for entry in batch:
            groups.setdefault(entry[0]["task"], []).append(entry)
        for group in groups.values():
            answer(group)
            for _, slot in group:
                slot[0].set()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        item = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        slot = [threading.Event()]
        waiting.put((item, slot))
        slot[0].wait()
        body = json.dumps(slot[1]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)

    def log_message(self, *args):
        pass


threading.Thread(target=worker, daemon=True).start()
print(f"serving {len(heads)} tasks on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
