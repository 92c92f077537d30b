"""Golden per-choice log-likelihoods for `ift eval` (issue 6), computed the lm-eval way.

Independent of the Rust code: for each request the text `context + continuation` is tokenized
whole, the context alone gives the split point (lm-eval's `whole[len(tok(context)):]`), and the
model from `transformers` scores the continuation tokens. Contexts longer than the model's window
keep their last `max_position_embeddings` tokens, as `ift` does. CI never runs this; the output
is committed.

    venv-ref/bin/python scripts/reference/make_eval_fixtures.py \
        --data ../shared/data/eval
"""

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "crates/ift/tests/fixtures/models/llama_gqa"
OUT = ROOT / "crates/ift/tests/fixtures/eval/llama_gqa_loglik.json"


def requests(kind, rec):
    # Raw prompts, no few-shot: the delimiter is one space (lm-eval's target_delimiter).
    if kind == "multiple_choice":
        return [(rec["query"], " " + c) for c in rec["choices"]]
    return [(c, " " + rec["continuation"]) for c in rec["context_options"]]


@torch.no_grad()
def loglik(model, tok, context, continuation, window):
    whole = tok(context + continuation)["input_ids"]
    n_ctx = len(tok(context)["input_ids"])
    drop = max(0, len(whole) - window)
    ids = whole[drop:]
    first = max(n_ctx - drop, 1)
    logits = model(torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    total = sum(logp[i - 1, ids[i]].item() for i in range(first, len(ids)))
    return total, len(ids) - first


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    args = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(MODEL)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
    window = model.config.max_position_embeddings
    cases = []
    for file, kind, n in [("arc_easy", "multiple_choice", 5), ("winogrande", "schema", 3)]:
        lines = (args.data / f"{file}.jsonl").read_text().splitlines()[:n]
        for i, line in enumerate(lines):
            rec = json.loads(line)
            scored = [loglik(model, tok, c, k, window) for c, k in requests(kind, rec)]
            cases.append({
                "file": file, "line": i + 1, "kind": kind, "record": rec,
                "loglik": [s for s, _ in scored], "tokens": [t for _, t in scored],
            })
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"model": "llama_gqa", "window": window, "cases": cases}, indent=1) + "\n")
    print(f"wrote {OUT} ({len(cases)} records)")


if __name__ == "__main__":
    main()
