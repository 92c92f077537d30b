"""PyTorch reference for `cargo bench -p ift --bench sft_step`.

Times one SFT step of transformers' LlamaForCausalLM on the "32M" config (CPU,
f32, batch 4 x 256 random tokens, 2 threads) with eager and sdpa attention:
(a) forward under no_grad, (b) forward + backward of the mean next-token
cross-entropy, (c) (b) + an AdamW step. Prints one JSON line, then a table,
in the same format as the Rust bench so scripts/bench/compare.sh can divide
them. CI never runs this.

    /work/venv-ref/bin/python scripts/bench/sft_step_torch.py [--warmup 2] [--iters 10]
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

BATCH, SEQ, SEED, THREADS = 4, 256, 0, 2

# Keep in step with config_32m() in crates/ift/benches/sft_step.rs.
CONFIG_32M = dict(
    vocab_size=8192,
    hidden_size=512,
    intermediate_size=1408,
    num_hidden_layers=8,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=64,
    rms_norm_eps=1e-6,
    rope_theta=10000.0,
    max_position_embeddings=2048,
    tie_word_embeddings=False,
    initializer_range=0.02,
)


def measure(step, warmup, iters):
    """Median and fastest wall time of `step` after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def mean_nll(model, ids):
    logits = model(input_ids=ids).logits
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))


def run(attn, ids, warmup, iters):
    torch.manual_seed(SEED)
    config = LlamaConfig(**CONFIG_32M, attn_implementation=attn)
    model = LlamaForCausalLM(config).float()
    model.config.use_cache = False
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def forward():
        with torch.no_grad():
            model(input_ids=ids)

    def forward_backward():
        model.zero_grad(set_to_none=True)
        mean_nll(model, ids).backward()

    def forward_backward_adamw():
        forward_backward()
        opt.step()

    steps = [
        ("forward", forward),
        ("forward_backward", forward_backward),
        ("forward_backward_adamw", forward_backward_adamw),
    ]
    out = []
    for name, step in steps:
        median, fastest = measure(step, warmup, iters)
        out.append(
            dict(name=name, attn=attn, ms=median * 1e3, min_ms=fastest * 1e3,
                 tokens_per_s=BATCH * SEQ / median)
        )
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--attn", nargs="+", default=["eager", "sdpa"])
    args = p.parse_args()

    torch.set_num_threads(THREADS)
    g = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, CONFIG_32M["vocab_size"], (BATCH, SEQ), generator=g)
    results = [r for attn in args.attn for r in run(attn, ids, args.warmup, args.iters)]
    line = dict(
        impl="torch", torch=torch.__version__, transformers=transformers.__version__,
        threads=torch.get_num_threads(), batch=BATCH, seq=SEQ, config="32M",
        warmup=args.warmup, iters=args.iters, stat="median", results=results,
    )
    print(json.dumps(line), flush=True)
    print(f"{'measurement':<26} {'attn':>8} {'ms/step':>10} {'tokens/s':>11}")
    for r in results:
        print(f"{r['name']:<26} {r['attn']:>8} {r['ms']:>10.1f} {r['tokens_per_s']:>11.0f}")


if __name__ == "__main__":
    main()
