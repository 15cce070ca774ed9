"""Writes Tests/Fixtures/tokenizer_edge_cases.json: hostile texts and the ids Hugging Face's
tokenizers (the Rust BertTokenizerFast) gives them with the test checkpoint's tokenizer.json.

    python3 -m venv /tmp/tok && /tmp/tok/bin/pip install tokenizers==0.20.3
    /tmp/tok/bin/python scripts/tokenizer_edge_cases.py ~/.cache/ptune/models/all-MiniLM-L6-v2
"""
import json
import random
import sys
from pathlib import Path

from tokenizers import Tokenizer

HAND_MADE = [
    "hello [CLS] world", "x[SEP]y", "[cls] lower case is text", "[MASK]", " [PAD] ", "ab[UNK]cd", "[SEP][SEP]",
    "[CLS", "CLS]", "[[CLS]]", "a\u2028b\u2029c", "c\u0085d", "tab\tvt\u000bff\u000cnl", "nb\u00a0sp",
    "ogham\u1680en\u2002em\u2003thin\u2009", "narrow\u202fmath\u205fideo\u3000space", "zero\u200bwidth",
    "bom\ufeffin", "iso\u2066late\u2069", "nul\u0000here", "repl\ufffdchar", "priv\ue000ate", "\u0378q",
    "a\U000e01f0b", "e\u0301", "e\u08e3", "e\u08d4", "e\u1df6", "e\u0d3b", "a\u2e42b", "a\u2e43b", "a\u2e4fb",
    "a\u0890b", "a\u4e00b", "a\U0002b81fb", "a\U0002b820b", "a\U0002b920b", "a\U00030000b", "\U0001f600 smile",
    "family \U0001f468\u200d\U0001f469\u200d\U0001f467", "Ǆemo ǅ", "İstanbul", "straße", "ﬁnance", "Ⅻ",
    "ＦＵＬＬ ｗｉｄｔｈ", "مرحبا بالعالم", "שלום", "नमस्ते", "ด่วน", "한국어", "日本語のテキスト",
    "café naïve résumé", "x" * 120, "a" * 99 + " b", "$5^ `x` ~y~", "don't stop", "e.g. U.S.A.",
]

# Characters drawn for random texts: the classes where tokenizers and Swift's tables could part.
POOL = (list("abcXYZ019 .,![]") + ["[CLS]", "[SEP]", "[MASK]"] +
        [chr(c) for c in (0x2028, 0x2029, 0x85, 0xa0, 0x1680, 0x3000, 0x200b, 0xfeff, 0x2066, 0x0, 0xfffd,
                          0xe000, 0x378, 0x301, 0x8e3, 0x8d4, 0x1df6, 0xd3b, 0x2e42, 0x2e43, 0x890, 0x4e00,
                          0x2b81f, 0x2b820, 0x2b920, 0x30000, 0x1f600, 0x200d, 0x130, 0xdf, 0xfb01)])


def main(model):
    tokenizer = Tokenizer.from_file(str(Path(model) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    rng = random.Random(12)
    texts = HAND_MADE + ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 12))) for _ in range(300)]
    cases = [{"text": text, "input_ids": tokenizer.encode(text).ids} for text in texts]
    out = Path(__file__).resolve().parent.parent / "Tests/Fixtures/tokenizer_edge_cases.json"
    out.write_text(json.dumps(cases, ensure_ascii=True, indent=0) + "\n")
    print(f"{len(cases)} cases -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
