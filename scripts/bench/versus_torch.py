"""PyTorch + transformers side of scripts/bench/run.sh: one measurement per
process (so the peak RSS printed is that measurement's), the same work as
`ift bench MODEL STEP`:

- model `32m` (the "32M" config) or `smollm2` (SmolLM2-135M's config), random
  weights, f32, SDPA attention, CPU, 2 threads unless BENCH_THREADS says;
- step `forward` (no_grad logits + log-softmax + label pick), `sft` (mean
  next-token NLL, backward, clip, AdamW), `ift` (a no-grad forward, greedy
  predictions, mixed input embeddings (1-λ)E[y] + λE[ŷ shifted], a forward
  with gradient, token losses re-weighted by their discounted successors,
  backward, clip, AdamW: the same work as ift's default IFT step, written
  for cost, not as the numerical reference, which is
  scripts/reference/make_ift_fixtures.py) or `dpo` (2 pairs in one forward,
  sigmoid DPO with precomputed reference log-probabilities, backward, clip,
  AdamW);
- batch 4 x 256 random tokens (--batch, --seq);
- on a GPU (--device cuda, scripts/gpu/check.sh): --dtype bf16 is autocast
  (bf16 matmuls, f32 master weights and AdamW moments, as ift's train.dtype =
  "bf16"), --attn eager or sdpa; "1b" is Llama 3.2 1B's shapes.

    python scripts/bench/versus_torch.py MODEL STEP [--warmup 1] [--iters 3]

Prints one JSON line. CI never runs this.
"""

import argparse
import json
import os
import resource
import statistics
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

BATCH, SEQ, SEED = 4, 256, 0

COMMON = dict(head_dim=64, rope_theta=10000.0, initializer_range=0.02)
CONFIGS = {
    # Keep in step with crates/ift/benches/support/config_32m.rs.
    "32m": dict(COMMON, vocab_size=8192, hidden_size=512, intermediate_size=1408,
                num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=4,
                rms_norm_eps=1e-6, max_position_embeddings=2048, tie_word_embeddings=False),
    # SmolLM2-135M's config.json; keep in step with benches/versus_torch.rs.
    "smollm2": dict(COMMON, vocab_size=49152, hidden_size=576, intermediate_size=1536,
                    num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                    rms_norm_eps=1e-5, rope_theta=100000.0, max_position_embeddings=8192,
                    tie_word_embeddings=True),
    # Llama 3.2 1B's shapes (default RoPE); keep in step with crates/ift/src/bench.rs.
    "1b": dict(COMMON, vocab_size=128256, hidden_size=2048, intermediate_size=8192,
               num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
               rms_norm_eps=1e-5, rope_theta=500000.0, max_position_embeddings=131072,
               tie_word_embeddings=True),
}


def token_logps(logits, ids):
    return torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=sorted(CONFIGS))
    p.add_argument("step", choices=["forward", "sft", "ift", "dpo"])
    p.add_argument("--warmup", type=int, default=int(os.environ.get("BENCH_WARMUP", 1)))
    p.add_argument("--iters", type=int, default=int(os.environ.get("BENCH_ITERS", 3)))
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--seq", type=int, default=SEQ)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    p.add_argument("--attn", choices=["eager", "sdpa"], default="sdpa")
    args = p.parse_args()
    B, T = args.batch, args.seq
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", 2)))
    torch.manual_seed(SEED)
    dev = torch.device(args.device)
    with dev:  # initialised where it runs (a 1B model initialises slowly on a CPU)
        model = LlamaForCausalLM(LlamaConfig(**CONFIGS[args.model], attn_implementation=args.attn))
    model = model.float()
    model.config.use_cache = False
    vocab = CONFIGS[args.model]["vocab_size"]
    g = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, vocab, (B, T), generator=g).to(dev)
    answer = torch.zeros(B, T - 1, device=dev)
    answer[:, T // 2 - 1:] = 1.0  # DPO: targets of the answer half
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    embed = model.get_input_embeddings()

    def logits(**kw):  # the loss maths in f32, as ift's
        with autocast:
            return model(**kw).logits.float()

    with torch.no_grad():
        ref = (token_logps(logits(input_ids=ids), ids) * answer).sum(-1)

    def update(loss):
        model.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    def forward():
        with torch.no_grad():
            token_logps(logits(input_ids=ids), ids)

    def sft():
        update(-token_logps(logits(input_ids=ids), ids).mean())

    def ift(lam=0.2, gamma=0.95):
        with torch.no_grad():
            pred = logits(input_ids=ids).argmax(-1)
        mixed_ids = torch.cat([ids[:, :1], pred[:, :-1]], 1)
        e = (1 - lam) * embed(ids) + lam * embed(mixed_ids).detach()
        nll = -token_logps(logits(inputs_embeds=e), ids)
        w, acc = torch.zeros_like(nll), torch.zeros(B, device=dev)
        for i in reversed(range(nll.size(1))):  # discounted loss that follows
            acc = nll[:, i].detach() + gamma * acc
            w[:, i] = acc
        update((nll * w / w.sum().clamp_min(1e-6)).sum())

    def dpo(beta=0.1):
        logps = (token_logps(logits(input_ids=ids), ids) * answer).sum(-1)
        margin = (logps - ref).view(2, B // 2)
        update(-F.logsigmoid(beta * (margin[0] - margin[1])).mean())

    step = dict(forward=forward, sft=sft, ift=ift, dpo=dpo)[args.step]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        step()
    sync()
    times = []
    for _ in range(args.iters):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    gpu = dev.type == "cuda"
    print(json.dumps(dict(
        impl="torch", torch=torch.__version__, transformers=transformers.__version__,
        model=args.model, step=args.step, device=args.device, dtype=args.dtype, attn=args.attn,
        batch=B, seq=T, threads=torch.get_num_threads(),
        iters=args.iters, median_s=median, min_s=min(times),
        tokens_per_s=B * T / median,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        peak_gpu_allocated_mib=torch.cuda.max_memory_allocated() / 2**20 if gpu else None,
        peak_gpu_reserved_mib=torch.cuda.max_memory_reserved() / 2**20 if gpu else None,
    )), flush=True)


if __name__ == "__main__":
    main()
