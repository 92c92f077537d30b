"""GGUF fixtures for crates/ift/tests/gguf_*.rs, written by the `gguf` package
(llama.cpp's own Python library; pinned in requirements.txt), not by candle.

  quant_types.gguf   one (2, 256) tensor per storage type candle dequantises, each
                     beside `<name>.expected`: gguf-py's own dequantisation, in F32.
                     Types gguf-py can quantise are quantised from smooth values;
                     the K-quants are random blocks with sane f16 scales.
  unsupported.gguf   one IQ4_NL tensor (a type candle does not read).

With --tokenizer-dir DIR (a directory `ift convert --gguf` wrote from the SmolLM2
GGUF) it also writes smollm2_token_ids.json: the ids the Python `tokenizers`
library gives for tricky strings on DIR/tokenizer.json.

    /work/venv-ref/bin/python scripts/reference/make_gguf_fixtures.py \
        [--tokenizer-dir models/SmolLM2-135M-Instruct]
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


def write_token_ids(tokenizer_dir):
    import tokenizers

    tok = tokenizers.Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
    cases = [{"text": t, "ids": tok.encode(t).ids} for t in TRICKY]
    out = {"made_by": f"make_gguf_fixtures.py, tokenizers {tokenizers.__version__}", "cases": cases}
    lines = [json.dumps(c, ensure_ascii=False) for c in cases]
    text = '{"made_by": %s,\n "cases": [\n  %s\n]}\n' % (json.dumps(out["made_by"]), ",\n  ".join(lines))
    (OUT / "smollm2_token_ids.json").write_text(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer-dir")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(12)
    write_quant_types(rng)
    write_unsupported(rng)
    if args.tokenizer_dir:
        write_token_ids(args.tokenizer_dir)


if __name__ == "__main__":
    main()
