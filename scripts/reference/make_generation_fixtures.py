#!/usr/bin/env python3
"""Greedy-generation reference for `ift generate` (issue 6, "Prove it").

WHAT IT WRITES: crates/ift/tests/fixtures/generation/<name>.json for each tiny model in
crates/ift/tests/fixtures/models/{llama_gqa,llama3_rope,qwen2_tied}:

  {"versions": {...}, "max_new_tokens": 12,
   "single":  [{"prompt", "input_ids", "output_ids"}],        each prompt alone, no padding
   "batched": {"pad_token_id", "input_ids" (left-padded), "attention_mask", "output_ids"}}

`output_ids` are only the new tokens of transformers' `generate(do_sample=False,
max_new_tokens=12)`. EOS stopping is disabled (eos_token_id=None) so every row has exactly 12
new tokens and the comparison never depends on how a stop is recorded. The model is loaded in
float32, as `ift` computes.

HOW TO RUN (by hand only; CI never runs Python -- the fixtures are committed):

    venv-ref/bin/python scripts/reference/make_generation_fixtures.py
"""
import json
from pathlib import Path

import tokenizers
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "crates/ift/tests/fixtures"
MODELS = ["llama_gqa", "llama3_rope", "qwen2_tied"]
PROMPTS = [
    "Give three tips for staying healthy.",
    "The capital of France is",
    "Write a short poem about the sea and the wind",
]
MAX_NEW = 12


def generate(model, input_ids, attention_mask, pad_id):
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        do_sample=False,
        max_new_tokens=MAX_NEW,
        eos_token_id=None,
        pad_token_id=pad_id,
    )
    new = out[:, input_ids.shape[1]:].tolist()
    assert all(len(row) == MAX_NEW for row in new), "EOS stopping was not disabled"
    return new


def main():
    torch.manual_seed(0)
    for name in MODELS:
        d = FIXTURES / "models" / name
        tok = AutoTokenizer.from_pretrained(d)
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        model.generation_config.eos_token_id = None
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        single = []
        for p in PROMPTS:
            ids = tok(p, return_tensors="pt")
            with torch.no_grad():
                new = generate(model, ids["input_ids"], ids["attention_mask"], pad_id)[0]
            single.append({"prompt": p, "input_ids": ids["input_ids"][0].tolist(), "output_ids": new})
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token_id = pad_id
        batch = tok(PROMPTS, return_tensors="pt", padding=True)
        with torch.no_grad():
            new = generate(model, batch["input_ids"], batch["attention_mask"], pad_id)
        out = {
            "versions": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__,
            },
            "max_new_tokens": MAX_NEW,
            "single": single,
            "batched": {
                "pad_token_id": pad_id,
                "input_ids": batch["input_ids"].tolist(),
                "attention_mask": batch["attention_mask"].tolist(),
                "output_ids": new,
            },
        }
        path = FIXTURES / "generation" / f"{name}.json"
        path.write_text(json.dumps(out) + "\n")
        same = [s["output_ids"] == b for s, b in zip(single, new)]
        print(f"{name}: wrote {path.relative_to(ROOT)}; batched == single per row: {same}")


if __name__ == "__main__":
    main()
