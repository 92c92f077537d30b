#!/usr/bin/env python3
"""Independent PyTorch/transformers reference for the `ift` model (issue 2, "Prove it").

WHAT IT WRITES (all under crates/ift/tests/fixtures/):

  models/<name>/                      exactly what `save_pretrained` wrote (model + tokenizer +
                                      generation_config.json), for <name> in
                                        llama_gqa    LlamaForCausalLM, GQA 4q/2kv, untied lm_head,
                                                     float32, SHARDED (model.safetensors.index.json)
                                        llama3_rope  LlamaForCausalLM, rope_type "llama3", tied
                                                     embeddings, float16
                                        qwen2_tied   Qwen2ForCausalLM, q/k/v bias, tied embeddings,
                                                     model vocab padded beyond the tokenizer, bfloat16
  models/<name>.reference.safetensors input_ids, attention_mask (int64, (3, T), right-padded),
                                      logits (f32, (3, T, V)), loss (f32, (1,)),
                                      grad.<hf parameter name> (f32) for every parameter.
                                      The reference model is the SAVED directory re-loaded with
                                      from_pretrained(dtype=float32), i.e. f16/bf16-rounded weights
                                      upcast to f32 -- exactly what a loader computing in f32 sees.
  models/<name>.score.jsonl           {"text", "input_ids", "logprob_sum", "tokens"} per line,
                                      each text scored alone (no padding).
  configs/llama3_v4_style.json        hand-written transformers-4.x style config.json equivalent
                                      to models/llama3_rope/config.json (the script asserts the
                                      equivalence through transformers).

The tokenizers are real byte-level BPEs trained here with the `tokenizers` library on the text of
../shared/data/llamafactory/alpaca_en_demo.json beside the repository (read in place; never copied into the repo; pass
--data to point elsewhere).

HOW TO RUN (by hand only; CI never runs this -- the fixtures are committed and the Rust tests read
them without Python):

    python -m venv venv && venv/bin/pip install -r scripts/reference/requirements.txt
    venv/bin/python scripts/reference/make_model_fixtures.py            # regenerate all fixtures
    venv/bin/python scripts/reference/make_model_fixtures.py \\
        --check-saved /path/to/dir/saved/by/ift --name llama_gqa        # check an ift-saved dir

`--check-saved DIR --name NAME` loads DIR with AutoModelForCausalLM / AutoTokenizer (float32), runs
the fixture batch of models/NAME.reference.safetensors, prints the max absolute logit difference
(over real, unpadded positions and over all positions), the loss difference, and whether the
tokenizer reproduces the fixture ids; exits non-zero on a mismatch (logits/loss > 1e-4).

Deterministic: fixed seeds, single-threaded torch, and the tokenizer training is run twice and
required to be identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # tokenizers trainer: keep it single-threaded
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "crates" / "ift" / "tests" / "fixtures"
MODELS = FIXTURES / "models"
CONFIGS = FIXTURES / "configs"
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared/data/llamafactory/alpaca_en_demo.json"

BPE_VOCAB = 380  # 256 byte symbols + 124 merges; specials are added on top

LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"]
QWEN2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# ChatML, as SmolLM2 / Qwen2 use it (without a default system prompt).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Target token counts (as the model's tokenizer counts them) of the 3-row fixture batch.
BATCH_LENGTHS = (14, 10, 6)

# Score texts: a one-word text (1 token for the Qwen2 tokenizer; BOS + 1 for the Llama-3 one),
# one with non-ASCII characters, two ordinary sentences.
SCORE_TEXTS = [
    "is",
    "Café naïve – 東京 🙂 ok",
    "Give three tips for staying healthy.",
    "The quick brown fox jumps over the lazy dog.",
]

SEED = 1234


# ----------------------------------------------------------------------------------------------
# tokenizers
# ----------------------------------------------------------------------------------------------

def corpus(data_path: Path) -> list[str]:
    records = json.loads(data_path.read_text(encoding="utf-8"))
    out = []
    for r in records:
        for k in ("instruction", "input", "output"):
            if r.get(k):
                out.append(r[k])
    return out


def train_bpe(texts: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB,
        min_frequency=2,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    assert tok.get_vocab_size() == BPE_VOCAB, tok.get_vocab_size()
    return tok


def make_hf_tokenizer(base: Tokenizer, style: str) -> PreTrainedTokenizerFast:
    tok = Tokenizer.from_str(base.to_str())
    if style == "llama3":
        specials = LLAMA3_SPECIALS
        tok.add_special_tokens(specials)
        bos = "<|begin_of_text|>"
        bos_id = tok.token_to_id(bos)
        tok.post_processor = processors.Sequence(
            [
                processors.ByteLevel(trim_offsets=False),
                processors.TemplateProcessing(
                    single=f"{bos}:0 $A:0",
                    pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                    special_tokens=[(bos, bos_id)],
                ),
            ]
        )
        kw = dict(bos_token=bos, eos_token="<|im_end|>", pad_token="<|end_of_text|>")
    elif style == "qwen2":
        specials = QWEN2_SPECIALS
        tok.add_special_tokens(specials)
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        kw = dict(bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    else:
        raise ValueError(style)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        chat_template=CHAT_TEMPLATE,
        model_max_length=128,
        padding_side="right",
        clean_up_tokenization_spaces=False,
        **kw,
    )
    return hf


# ----------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------

def special_ids(tok) -> dict:
    return dict(
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def build_llama_gqa(tok):
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        initializer_range=0.1,
        attn_implementation="eager",
        **special_ids(tok),
    )
    return LlamaForCausalLM(cfg), torch.float32, "150KB"


def build_llama3_rope(tok):
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 10000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
        },
        tie_word_embeddings=True,
        initializer_range=0.1,
        attn_implementation="eager",
        **special_ids(tok),
    )
    return LlamaForCausalLM(cfg), torch.float16, None


def build_qwen2_tied(tok):
    vocab = ((len(tok) + 63) // 64) * 64 + 64
    cfg = Qwen2Config(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        tie_word_embeddings=True,
        use_sliding_window=False,
        initializer_range=0.1,
        attn_implementation="eager",
        **special_ids(tok),
    )
    return Qwen2ForCausalLM(cfg), torch.bfloat16, None


BUILDERS = {
    "llama_gqa": ("llama3", build_llama_gqa),
    "llama3_rope": ("llama3", build_llama3_rope),
    "qwen2_tied": ("qwen2", build_qwen2_tied),
}


def perturb(model: torch.nn.Module, seed: int) -> None:
    """Make every parameter informative: RMSNorm weights 1 + N(0, 0.1), biases N(0, 0.1)
    (transformers initialises them to exactly 1 and 0, which would hide bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


# ----------------------------------------------------------------------------------------------
# fixture batch, reference, scores
# ----------------------------------------------------------------------------------------------

def pick_batch_texts(tok, instructions: list[str]) -> list[str]:
    """For each target length, the first alpaca instruction (or, failing that, the shortest
    word-prefix of the first instruction that fits) that tokenizes to exactly that many ids."""
    out = []
    for n in BATCH_LENGTHS:
        found = None
        for t in instructions:
            if t not in out and len(tok(t).input_ids) == n:
                found = t
                break
        if found is None:
            for t in instructions:
                words = t.split(" ")
                for k in range(1, len(words) + 1):
                    cand = " ".join(words[:k])
                    if cand not in out and len(tok(cand).input_ids) == n:
                        found = cand
                        break
                if found:
                    break
        assert found is not None, n
        out.append(found)
    return out


def encode_batch(tok, texts):
    ids = [tok(t).input_ids for t in texts]
    T = max(len(x) for x in ids)
    pad = tok.pad_token_id
    input_ids = torch.full((len(ids), T), pad, dtype=torch.int64)
    mask = torch.zeros((len(ids), T), dtype=torch.int64)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    return input_ids, mask


def canonicalize_header(path: Path) -> None:
    """safetensors serialises the header through a hash map, so key order (metadata included)
    changes from run to run. Rewrite it with sorted keys, same length, so the bytes are stable."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    new = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert len(new) <= n, (len(new), n)
    new = new + b" " * (n - len(new))
    path.write_bytes(raw[:8] + new + raw[8 + n :])


def forward_loss(model, input_ids, mask):
    labels = input_ids.masked_fill(mask == 0, -100)
    out = model(input_ids=input_ids, attention_mask=mask, labels=labels, use_cache=False)
    return out.logits, out.loss


def score_texts(model, tok, texts):
    rows = []
    for t in texts:
        ids = tok(t).input_ids
        x = torch.tensor([ids], dtype=torch.int64)
        with torch.no_grad():
            logits = model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=False).logits
        lp = torch.log_softmax(logits[0].float(), dim=-1)
        s = 0.0
        for i in range(1, len(ids)):
            s += float(lp[i - 1, ids[i]].item())
        rows.append({"text": t, "input_ids": ids, "logprob_sum": s, "tokens": max(len(ids) - 1, 0)})
    return rows


def versions() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }


def load_f32(d: Path):
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    return m


# ----------------------------------------------------------------------------------------------
# 4.x-style config, hand-written
# ----------------------------------------------------------------------------------------------

def llama3_v4_style(cfg5: dict) -> dict:
    """The transformers 4.x config.json that corresponds to llama3_rope's 5.x one."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": cfg5["bos_token_id"],
        "eos_token_id": cfg5["eos_token_id"],
        "pad_token_id": cfg5["pad_token_id"],
        "head_dim": 16,
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.1,
        "intermediate_size": 128,
        "max_position_embeddings": 128,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "factor": 8.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 16,
            "rope_type": "llama3",
        },
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "float16",
        "transformers_version": "4.46.3",
        "use_cache": True,
        "vocab_size": cfg5["vocab_size"],
    }


def check_v4_equivalence(path_v4: Path, model_dir: Path) -> None:
    a = LlamaConfig.from_json_file(str(path_v4))
    b = LlamaConfig.from_pretrained(model_dir)
    assert a.rope_parameters == b.rope_parameters, (a.rope_parameters, b.rope_parameters)
    for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
              "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps",
              "tie_word_embeddings", "max_position_embeddings", "bos_token_id", "eos_token_id",
              "pad_token_id"):
        assert getattr(a, k) == getattr(b, k), k
    # And the rotary frequencies transformers derives from both are identical.
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    fa, _ = ROPE_INIT_FUNCTIONS["llama3"](a, "cpu")
    fb, _ = ROPE_INIT_FUNCTIONS["llama3"](b, "cpu")
    assert torch.equal(fa, fb)


# ----------------------------------------------------------------------------------------------
# main modes
# ----------------------------------------------------------------------------------------------

def generate(data_path: Path) -> None:
    transformers.logging.set_verbosity_error()  # e.g. "sequence longer than model_max_length" while picking texts
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    texts = corpus(data_path)
    base = train_bpe(texts)
    again = train_bpe(texts)
    assert base.to_str() == again.to_str(), "BPE training is not deterministic"
    instructions = [r["instruction"] for r in json.loads(data_path.read_text(encoding="utf-8"))]

    MODELS.mkdir(parents=True, exist_ok=True)
    CONFIGS.mkdir(parents=True, exist_ok=True)
    ver = versions()

    for idx, (name, (style, build)) in enumerate(BUILDERS.items()):
        out = MODELS / name
        if out.exists():
            shutil.rmtree(out)
        tok = make_hf_tokenizer(base, style)

        torch.manual_seed(SEED + idx)
        model, save_dtype, shard = build(tok)
        perturb(model, SEED + 100 + idx)
        model.generation_config = GenerationConfig(**special_ids(tok))
        model = model.to(save_dtype)
        kw = {"max_shard_size": shard} if shard else {}
        model.save_pretrained(out, **kw)
        tok.save_pretrained(out, save_jinja_files=False)
        del model

        # Reference: the saved directory, re-loaded in float32 (rounded weights upcast).
        model = load_f32(out)
        tok = AutoTokenizer.from_pretrained(out)
        batch_texts = pick_batch_texts(tok, instructions)
        input_ids, mask = encode_batch(tok, batch_texts)
        model.zero_grad(set_to_none=True)
        logits, loss = forward_loss(model, input_ids, mask)
        loss.backward()

        tensors = {
            "input_ids": input_ids.contiguous(),
            "attention_mask": mask.contiguous(),
            "logits": logits.detach().float().contiguous(),
            "loss": loss.detach().float().reshape(1).contiguous(),
        }
        for pname, p in model.named_parameters():
            assert p.grad is not None, pname
            tensors[f"grad.{pname}"] = p.grad.detach().float().contiguous()
        meta = dict(ver)
        meta["texts"] = json.dumps(batch_texts, ensure_ascii=False)
        meta["model"] = name
        meta["saved_dtype"] = str(save_dtype).replace("torch.", "")
        meta["note"] = ("logits/loss/grads from the saved dir loaded with from_pretrained(dtype=float32), "
                        "eager attention; loss = mean next-token CE, labels=input_ids, -100 at padding")
        ref_path = MODELS / f"{name}.reference.safetensors"
        save_file(tensors, str(ref_path), metadata=meta)
        canonicalize_header(ref_path)

        rows = score_texts(model, tok, SCORE_TEXTS)
        assert len(rows[0]["input_ids"]) == (2 if style == "llama3" else 1), rows[0]
        with open(MODELS / f"{name}.score.jsonl", "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")

        print(f"{name}: saved {meta['saved_dtype']}, vocab(model)={model.config.vocab_size} "
              f"tokenizer={len(tok)} T={input_ids.shape[1]} lengths={mask.sum(1).tolist()} "
              f"loss={loss.item():.6f} params={len(list(model.named_parameters()))}")

        if name == "llama3_rope":
            cfg5 = json.loads((out / "config.json").read_text())
            p = CONFIGS / "llama3_v4_style.json"
            p.write_text(json.dumps(llama3_v4_style(cfg5), indent=2) + "\n")
            check_v4_equivalence(p, out)

    for p in sorted(MODELS.rglob("*")) + sorted(CONFIGS.rglob("*")):
        if p.is_file():
            h = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            print(f"  {p.relative_to(FIXTURES)}  {p.stat().st_size}  {h}")


def check_saved(d: Path, name: str) -> int:
    ref_path = MODELS / f"{name}.reference.safetensors"
    with safe_open(str(ref_path), "pt") as f:
        ref = {k: f.get_tensor(k) for k in ("input_ids", "attention_mask", "logits", "loss")}
        meta = f.metadata()
    texts = json.loads(meta["texts"])
    model = load_f32(d)
    tok = AutoTokenizer.from_pretrained(d)
    ids, mask = ref["input_ids"], ref["attention_mask"]
    with torch.no_grad():
        logits, loss = forward_loss(model, ids, mask)
    if logits.shape != ref["logits"].shape:
        print(f"logits shape {tuple(logits.shape)} != fixture {tuple(ref['logits'].shape)}")
        return 1
    diff = (logits.float() - ref["logits"]).abs()
    real = diff[mask.bool()]
    d_real = real.max().item()
    d_all = diff.max().item()
    d_loss = abs(loss.item() - ref["loss"].item())
    tok_ok = True
    for i, t in enumerate(texts):
        n = int(mask[i].sum())
        got = tok(t).input_ids
        want = ids[i, :n].tolist()
        if got != want:
            tok_ok = False
            print(f"tokenizer mismatch on {t!r}: {got} != {want}")
    print(f"max |logit diff| (unpadded positions): {d_real:.3e}")
    print(f"max |logit diff| (all positions):      {d_all:.3e}")
    print(f"|loss diff|: {d_loss:.3e}  (loss {loss.item():.6f}, fixture {ref['loss'].item():.6f})")
    print(f"tokenizer gives the fixture ids: {tok_ok}")
    ok = d_real <= 1e-4 and d_loss <= 1e-4 and tok_ok
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="alpaca_en_demo.json (tokenizer corpus)")
    ap.add_argument("--check-saved", type=Path, metavar="DIR", help="check a directory saved by ift")
    ap.add_argument("--name", choices=sorted(BUILDERS), help="fixture name for --check-saved")
    a = ap.parse_args()
    if a.check_saved:
        if not a.name:
            ap.error("--check-saved needs --name")
        return check_saved(a.check_saved, a.name)
    generate(a.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
