"""Makes Tests/Fixtures/peft/: adapters written by the pinned Python stack (transformers 4.46.3,
PEFT 0.12.0) for the PEFT options and methods beyond ../shared/reference, with the logits they give.

Run it in a throw-away virtual environment, never as a dependency of the project:

    python3 -m venv peer-venv && peer-venv/bin/pip install torch "transformers==4.46.3" "peft==0.12.0"
    peer-venv/bin/python scripts/make_peft_fixtures.py MODEL_DIR Tests/Fixtures/peft

With `--ptune-written NAME=ADAPTER_DIR ...` it instead copies adapters that PTune wrote into
`OUT/NAME/` and stores the logits PEFT computes with them: the fixtures showing that PTune's
adapters load in PEFT (the test checks that PTune computes the same).

Each case is a folder `<case>/` holding PEFT's `save_pretrained` output (`adapter_config.json`,
`adapter_model.safetensors`) and `expected.safetensors`: a padded batch (`input_ids`,
`attention_mask`, `token_type_ids`, int32) and the `logits` of the adapter reloaded with
`PeftModel.from_pretrained`, in eval mode. Cases named `*_train` also hold the trainable tensors
(`param.NAME`), labels, `loss` and every trainable tensor's gradient (`grad.NAME`), as
../shared/reference does, for a method's reference-parity test.
"""
import json
import os
import shutil
import sys

import torch
from peft import IA3Config, LoraConfig, PeftModel, PromptTuningConfig, TaskType, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

model_dir, out = sys.argv[1], sys.argv[2]
tokenizer = AutoTokenizer.from_pretrained(model_dir)
sentences = [
    "The quick brown fox jumps over the lazy dog.",
    "I didn't like the movie; the plot was thin, and the acting was worse.",
    "P-tuning v2 adds trainable prompts to every layer of the transformer!",
]
batch = tokenizer(sentences, padding=True, return_tensors="pt")
labels = torch.tensor([0, 2, 1])
# Tags on every real token but [CLS], [SEP] and padding.
tag_labels = torch.randint(0, 5, batch["input_ids"].shape, generator=torch.Generator().manual_seed(3))
tag_labels[batch["attention_mask"] == 0] = -100
tag_labels[:, 0] = -100


def base(kind):
    torch.manual_seed(0)
    if kind == "seq":
        return AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=3)
    return AutoModelForTokenClassification.from_pretrained(model_dir, num_labels=5)


def perturb(model, seed):
    """Seeded values away from the initial ones (LoRA's B is zero, IA3's vectors one)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                noise = torch.randn(parameter.shape, generator=generator)
                parameter.add_(0.05 * noise if parameter.dim() > 1 and "prompt" not in name else 0.2 * noise)


def inputs(kind):
    return dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                token_type_ids=batch["token_type_ids"])


def make(case, kind, config, train=False):
    folder = os.path.join(out, case)
    model = get_peft_model(base(kind), config)
    perturb(model, seed=len(case))
    model.eval()
    tensors = {k: v.to(torch.int32).contiguous() for k, v in inputs(kind).items()}
    if train:
        model.zero_grad()
        target = labels if kind == "seq" else tag_labels
        result = model(**inputs(kind), labels=target)
        result.loss.backward()
        tensors["labels" if kind == "seq" else "tag_labels"] = target.to(torch.int32)
        tensors["loss"] = result.loss.detach().reshape(1)
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                tensors["param." + name] = parameter.detach().clone().contiguous()
                tensors["grad." + name] = parameter.grad.detach().clone().contiguous()
    model.save_pretrained(folder)
    reloaded = PeftModel.from_pretrained(base(kind), folder)
    reloaded.eval()
    with torch.no_grad():
        logits = reloaded(**inputs(kind)).logits
    if train:
        with torch.no_grad():
            assert torch.allclose(logits, model(**inputs(kind)).logits, atol=1e-5), case
    tensors["logits"] = logits.contiguous()
    save_file(tensors, os.path.join(folder, "expected.safetensors"))
    print(case, flush=True)


def ptune_written(name, adapter):
    folder = os.path.join(out, name)
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(adapter, folder)
    kind = "seq" if json.load(open(os.path.join(folder, "adapter_config.json")))["task_type"] == "SEQ_CLS" else "tok"
    labels = len(json.load(open(os.path.join(folder, "ptune.json")))["labels"])
    torch.manual_seed(0)
    auto = AutoModelForSequenceClassification if kind == "seq" else AutoModelForTokenClassification
    model = PeftModel.from_pretrained(auto.from_pretrained(model_dir, num_labels=labels), folder)
    model.eval()
    with torch.no_grad():
        logits = model(**inputs(kind)).logits
    tensors = {k: v.to(torch.int32).contiguous() for k, v in inputs(kind).items()}
    tensors["logits"] = logits.contiguous()
    save_file(tensors, os.path.join(folder, "expected.safetensors"))
    print(name, "loaded in PEFT", flush=True)


if len(sys.argv) > 3 and sys.argv[3] == "--ptune-written":
    for entry in sys.argv[4:]:
        ptune_written(*entry.split("=", 1))
    sys.exit(0)

seq, tok = TaskType.SEQ_CLS, TaskType.TOKEN_CLS
make("lora_regex_rslora", "seq", LoraConfig(task_type=seq, r=4, lora_alpha=8, use_rslora=True,
                                            target_modules=r".*\.(query|value|intermediate\.dense)"))
make("lora_layers_patterns", "seq", LoraConfig(task_type=seq, r=4, lora_alpha=8,
                                               target_modules=["query", "key", "dense"], layers_to_transform=[1, 4],
                                               layers_pattern="layer", rank_pattern={"key": 2},
                                               alpha_pattern={"query": 32}))
make("lora_bias_all", "seq", LoraConfig(task_type=seq, r=4, lora_alpha=8, target_modules=["query", "value"],
                                        bias="all"))
make("lora_bias_lora_only_pooler", "seq", LoraConfig(task_type=seq, r=4, lora_alpha=8,
                                                     target_modules=["query", "value"], bias="lora_only",
                                                     modules_to_save=["pooler"]))
make("lora_dense_tagging", "tok", LoraConfig(task_type=tok, r=4, lora_alpha=16, target_modules=["query", "dense"]))
make("ia3_train", "seq", IA3Config(task_type=seq), train=True)
make("ia3_tagging", "tok", IA3Config(task_type=tok))
make("prompt_train", "seq", PromptTuningConfig(task_type=seq, num_virtual_tokens=6), train=True)
make("prompt_text_tagging", "tok", PromptTuningConfig(task_type=tok, num_virtual_tokens=5, prompt_tuning_init="TEXT",
                                                      prompt_tuning_init_text="classify the sentiment",
                                                      tokenizer_name_or_path=model_dir))
