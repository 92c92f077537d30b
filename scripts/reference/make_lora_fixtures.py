#!/usr/bin/env python3
"""Independent PyTorch + peft reference for `ift`'s LoRA adapters (issue 14, "Prove it").

Written from peft's own definitions (peft.tuners.lora.layer.Linear: y = base(x) +
scaling * lora_B(lora_A(dropout(x))), scaling = lora_alpha / r, or lora_alpha / sqrt(r) with
use_rslora; init A = kaiming_uniform_(a=sqrt(5)), B = 0; merge_and_unload: W += scaling * B @ A),
never from the Rust code. peft does all the computing here.

WHAT IT WRITES (under crates/ift/tests/fixtures/lora/), for each tiny model of
make_model_fixtures.py in MODELS and each target-module set in SETS:

  <model>_<set>/                 exactly what peft's save_pretrained wrote: adapter_config.json and
                                 adapter_model.safetensors. The adapter is peft's own
                                 initialisation (seeded) with lora_B then set to 0.05 * N(0, 1)
                                 (seeded), so that the update is not zero and A gets a gradient.
  <model>_<set>.safetensors      logits (f32, (3, T, V)) of the fixture batch of
                                 models/<model>.reference.safetensors with the adapter on (eval
                                 mode: no dropout), loss (mean next-token CE, -100 at padding),
                                 grad.<peft tensor name> of every lora_A / lora_B weight,
                                 merged_logits (merge_and_unload, then the same batch),
                                 base_logits (the adapter disabled: `with model.disable_adapter()`),
                                 init_max_abs.<peft name of lora_A> (max |A| of peft's fresh
                                 initialisation: the Kaiming-uniform bound, approached from below).
                                 Metadata: versions, lora config, set, model.

HOW TO RUN (by hand; CI never runs Python -- the fixtures are committed):

    venv-ref/bin/python scripts/reference/make_lora_fixtures.py
    venv-ref/bin/python scripts/reference/make_lora_fixtures.py --check-saved ADAPTER_DIR \\
        --name llama_gqa [--scores SCORES.jsonl] [--merged MERGED_DIR]

--check-saved loads models/<name> with transformers and ADAPTER_DIR (an adapter `ift` wrote) with
PeftModel.from_pretrained, and checks, each to 1e-4 absolute:
  * --scores: `ift score --model models/<name> --adapter ADAPTER_DIR` of the texts of
    models/<name>.score.jsonl (same order) against peft's summed log-probabilities of those texts;
  * --merged: `ift merge --model models/<name> --adapter ADAPTER_DIR --out MERGED_DIR` loaded
    with AutoModelForCausalLM against peft's logits of the base + adapter on the fixture batch
    (real positions).
It prints the maximum absolute differences and OK, or MISMATCH and exits 1.

Deterministic: fixed seeds, single-threaded torch; safetensors headers rewritten with sorted keys.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import sys
from pathlib import Path

import peft  # noqa: E402
import safetensors  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "crates" / "ift" / "tests" / "fixtures"
MODELS = FIXTURES / "models"
OUT = FIXTURES / "lora"

MODELS_USED = ["llama_gqa", "qwen2_tied"]
# Two target-module sets: the original LoRA paper's (attention q, v) and every linear layer
# (QLoRA's), the latter with rsLoRA scaling so both scalings are covered.
SETS = {
    "qv": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_rslora=False),
    "all": dict(r=8, lora_alpha=16,
                target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                "down_proj"],
                use_rslora=True),
}
SEED = 1414
B_STD = 0.05


def versions() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "safetensors": safetensors.__version__,
    }


def load_base(name: str):
    m = AutoModelForCausalLM.from_pretrained(MODELS / name, dtype=torch.float32,
                                             attn_implementation="eager")
    m.eval()
    return m


def fixture_batch(name: str):
    with safe_open(str(MODELS / f"{name}.reference.safetensors"), "pt") as f:
        return f.get_tensor("input_ids"), f.get_tensor("attention_mask")


def loss_of(logits, ids, mask):
    labels = ids.masked_fill(mask == 0, -100)
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100)


def saved_name(param_name: str) -> str:
    # peft's in-memory name carries the adapter name ("lora_A.default.weight"); the saved file
    # drops it ("lora_A.weight"), which is the name ift uses.
    return param_name.replace(".default.", ".")


def canonicalize_header(path: Path) -> None:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    new = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(new) <= n
    path.write_bytes(raw[:8] + new + b" " * (n - len(new)) + raw[8 + n :])


def generate() -> int:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    OUT.mkdir(parents=True, exist_ok=True)
    for mi, name in enumerate(MODELS_USED):
        ids, mask = fixture_batch(name)
        for si, (set_name, kw) in enumerate(SETS.items()):
            torch.manual_seed(SEED + 10 * mi + si)
            cfg = LoraConfig(lora_dropout=0.0, task_type="CAUSAL_LM", **kw)
            model = get_peft_model(load_base(name), cfg)
            init = {}
            gen = torch.Generator().manual_seed(SEED + 100 + 10 * mi + si)
            for pname, p in model.named_parameters():
                if "lora_A" in pname:
                    init[f"init_max_abs.{saved_name(pname)}"] = p.detach().abs().max().reshape(1)
                if "lora_B" in pname:
                    with torch.no_grad():
                        p.copy_(B_STD * torch.randn(p.shape, generator=gen))
            model.eval()
            adapter_dir = OUT / f"{name}_{set_name}"
            if adapter_dir.exists():
                shutil.rmtree(adapter_dir)
            model.save_pretrained(adapter_dir)
            canonicalize_header(adapter_dir / "adapter_model.safetensors")

            model.zero_grad(set_to_none=True)
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            loss = loss_of(logits, ids, mask)
            loss.backward()
            tensors = {"logits": logits.detach().contiguous(),
                       "loss": loss.detach().reshape(1)}
            grads = 0
            for pname, p in model.named_parameters():
                if p.requires_grad:
                    assert "lora_" in pname, pname
                    assert p.grad is not None and torch.isfinite(p.grad).all(), pname
                    tensors[f"grad.{saved_name(pname)}"] = p.grad.detach().contiguous()
                    grads += 1
            with torch.no_grad():
                with model.disable_adapter():
                    base_logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
                merged = model.merge_and_unload()
                merged_logits = merged(input_ids=ids, attention_mask=mask, use_cache=False).logits
            tensors["base_logits"] = base_logits.contiguous()
            tensors["merged_logits"] = merged_logits.contiguous()
            tensors.update(init)
            real = mask.bool()
            d_merge = (merged_logits - logits.detach()).abs()[real].max().item()
            d_base = (base_logits - logits.detach()).abs()[real].max().item()
            assert d_merge < 1e-4, d_merge  # merging changes nothing but rounding
            assert d_base > 1e-3, d_base  # the adapter does change the model
            meta = versions()
            meta.update(model=name, set=set_name, lora=json.dumps(kw), b_std=str(B_STD),
                        note="eval mode, lora_dropout 0; grads of the CE loss w.r.t. every "
                             "lora weight; base_logits with disable_adapter()")
            path = OUT / f"{name}_{set_name}.safetensors"
            save_file(tensors, str(path), metadata=meta)
            canonicalize_header(path)
            scaling = kw["lora_alpha"] / (math.sqrt(kw["r"]) if kw["use_rslora"] else kw["r"])
            print(f"{name}_{set_name}: loss {loss.item():.6f}, {grads} lora tensors, "
                  f"scaling {scaling:.4f}, |merged - unmerged| {d_merge:.2e}, "
                  f"|base - adapted| {d_base:.3f}")
    return 0


def peft_scores(model, tok, texts):
    out = []
    for t in texts:
        x = torch.tensor([tok(t).input_ids])
        with torch.no_grad():
            lp = torch.log_softmax(model(input_ids=x, use_cache=False).logits[0], -1)
        out.append(sum(lp[i - 1, x[0, i]].item() for i in range(1, x.shape[1])))
    return out


def check_saved(adapter: Path, name: str, scores: Path | None, merged: Path | None) -> int:
    torch.set_num_threads(1)
    model = PeftModel.from_pretrained(load_base(name), adapter)
    model.eval()
    ids, mask = fixture_batch(name)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    print(f"peft loaded {adapter}: {sum(p.numel() for n, p in model.named_parameters() if 'lora_' in n)} adapter weights")
    ok = True
    if scores:
        tok = AutoTokenizer.from_pretrained(MODELS / name)
        texts = [json.loads(l)["text"] for l in (MODELS / f"{name}.score.jsonl").read_text().splitlines()]
        got = [json.loads(l)["logprob_sum"] for l in scores.read_text().splitlines()]
        want = peft_scores(model, tok, texts)
        d = max(abs(a - b) for a, b in zip(got, want))
        print(f"ift score --adapter vs peft, max |logprob_sum diff| over {len(want)} texts: {d:.3e}")
        ok &= len(got) == len(want) and d <= 1e-4
    if merged:
        m = load_base_dir(merged)
        with torch.no_grad():
            ml = m(input_ids=ids, attention_mask=mask, use_cache=False).logits
        d = (ml - logits).abs()[mask.bool()].max().item()
        print(f"ift merge output (transformers) vs base + adapter (peft), max |logit diff|: {d:.3e}")
        ok &= d <= 1e-4
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


def load_base_dir(d: Path):
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check-saved", type=Path, metavar="ADAPTER_DIR")
    ap.add_argument("--name", choices=MODELS_USED + ["llama3_rope"])
    ap.add_argument("--scores", type=Path, help="`ift score --adapter` output on the score texts")
    ap.add_argument("--merged", type=Path, help="`ift merge` output directory")
    a = ap.parse_args()
    if a.check_saved:
        if not a.name:
            ap.error("--check-saved needs --name")
        return check_saved(a.check_saved, a.name, a.scores, a.merged)
    return generate()


if __name__ == "__main__":
    sys.exit(main())
