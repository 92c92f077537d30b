"""GGUF fixtures for crates/ift/tests/gguf_*.rs, written by the `gguf` package
(llama.cpp's own Python library; pinned in requirements.txt), not by candle.

  quant_types.gguf   one (2, 256) tensor per storage type candle dequantises, each
                     beside `<name>.expected`: gguf-py's own dequantisation, in F32.
                     Types gguf-py can quantise are quantised from smooth values;
                     the K-quants are random blocks with sane f16 scales.
  unsupported.gguf   one IQ4_NL tensor (a type candle does not read).

With --model-dir DIR (the directory `ift convert --gguf` wrote from the SmolLM2
GGUF) it also writes smollm2_reference.json: the ids the Python `tokenizers`
library gives for tricky strings on DIR/tokenizer.json, and the perplexity
`transformers` computes for a fixed paragraph with DIR's weights.

    venv-ref/bin/python scripts/reference/make_gguf_fixtures.py \
        [--model-dir models/SmolLM2-135M-Instruct]
"""

import argparse
import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

OUT = Path(__file__).resolve().parents[2] / "crates/ift/tests/fixtures/gguf"
ROWS, COLS = 2, 256

QUANTISED = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
# K-quant block layouts (llama.cpp ggml-common.h): offsets of the f16 scale fields.
K_QUANTS = {T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}

# Plain English for the perplexity check, written for this test: 6.97 when the
# conversion is right, 51.5 with the Q/K rows left permuted (checked once in
# transformers by permuting them again).
PARAGRAPH = (
    "The Earth is the third planet from the Sun and the only place in the universe known to "
    "support life. About seventy percent of its surface is covered by water, and the rest is made "
    "up of continents and islands. The Earth has one natural satellite, the Moon, which takes about "
    "twenty-seven days to travel around it. A year on Earth lasts 365 days, the time it takes the "
    "planet to complete one orbit around the Sun. Plants make their own food through a process "
    "called photosynthesis. They use energy from sunlight to turn water and carbon dioxide into "
    "sugar and oxygen. The oxygen is released into the air, where people and animals breathe it "
    "in. Without plants, there would be very little oxygen in the atmosphere, and most living "
    "things on Earth could not survive."
)

TRICKY = [
    "12345",
    "The year 2024 had 366 days.",
    "a    b\t\tc\n\n\nd",
    "   leading and trailing   ",
    "naïve café, Straße, 日本語, emoji 🤖👍",
    "<|im_start|>user\nWhat is 3+4?<|im_end|>\n<|im_start|>assistant\n",
    "don't you'll I'M",
    "x=1.5e-3; y = [1,2,3]",
]


def smooth(rng):
    base = np.sin(np.arange(ROWS * COLS, dtype=np.float32) * 0.37) * 2.0
    return (base + rng.normal(0, 0.3, ROWS * COLS)).astype(np.float32).reshape(ROWS, COLS)


def random_k_blocks(rng, qtype, offsets):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = ROWS * COLS // block
    raw = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    for off in offsets:
        scale = rng.uniform(0.01, 0.1, n_blocks).astype(np.float16)
        raw[:, off:off + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(ROWS, COLS // block * size)


def write_quant_types(rng):
    w = gguf.GGUFWriter(str(OUT / "quant_types.gguf"), "fixture")
    w.add_string("fixture.made_by", f"make_gguf_fixtures.py, gguf {version('gguf')}, numpy {np.__version__}")
    for qtype in QUANTISED + list(K_QUANTS):
        name = qtype.name.lower()
        if qtype in K_QUANTS:
            raw = random_k_blocks(rng, qtype, K_QUANTS[qtype])
        else:
            raw = quants.quantize(smooth(rng), qtype)
        expected = quants.dequantize(raw, qtype).astype(np.float32)
        assert expected.shape == (ROWS, COLS) and np.isfinite(expected).all(), name
        w.add_tensor(name, raw, raw_shape=raw.shape if qtype == T.F32 else None, raw_dtype=qtype)
        w.add_tensor(name + ".expected", expected)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_unsupported(rng):
    w = gguf.GGUFWriter(str(OUT / "unsupported.gguf"), "fixture")
    block, size = gguf.GGML_QUANT_SIZES[T.IQ4_NL]
    raw = rng.integers(0, 256, (1, COLS // block * size), dtype=np.uint8)
    w.add_tensor("iq4_nl", raw, raw_dtype=T.IQ4_NL)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_smollm2_reference(model_dir):
    """Token ids from the Python `tokenizers` library on MODEL_DIR/tokenizer.json, and the
    perplexity `transformers` computes for PARAGRAPH with the converted weights."""
    import tokenizers
    import torch
    import transformers

    tok = tokenizers.Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    cases = [{"text": t, "ids": tok.encode(t).ids} for t in TRICKY]
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    ids = torch.tensor([tok.encode(PARAGRAPH).ids])
    with torch.no_grad():
        out = model(ids, labels=ids)
    ppl = out.loss.exp().item()
    # log p(token i+1 | tokens ..i), the quantity the Rust side computes, to compare at 1e-4.
    logps = torch.log_softmax(out.logits[0, :-1].double(), -1).gather(1, ids[0, 1:, None])[:, 0]
    made_by = (f"make_gguf_fixtures.py, tokenizers {tokenizers.__version__}, "
               f"transformers {transformers.__version__}, torch {torch.__version__}")
    lines = [json.dumps(c, ensure_ascii=False) for c in cases]
    text = ('{"made_by": %s,\n "paragraph": %s,\n "perplexity": %r,\n "target_logprobs": %s,\n'
            ' "cases": [\n  %s\n]}\n') % (
        json.dumps(made_by), json.dumps(PARAGRAPH), ppl,
        json.dumps([round(x, 6) for x in logps.tolist()]), ",\n  ".join(lines))
    (OUT / "smollm2_reference.json").write_text(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", help="the SmolLM2 directory `ift convert --gguf` wrote")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(12)
    write_quant_types(rng)
    write_unsupported(rng)
    if args.model_dir:
        write_smollm2_reference(args.model_dir)


if __name__ == "__main__":
    main()
