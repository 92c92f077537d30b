"""PyTorch + transformers side of scripts/bench/run.sh: one measurement per
process (so the peak RSS printed is that measurement's), the same work as
`cargo bench -p ift --bench versus_torch -- MODEL STEP`:

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
- batch 4 x 256 random tokens.

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
}


def token_logps(logits, ids):
    return torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=sorted(CONFIGS))
    p.add_argument("step", choices=["forward", "sft", "ift", "dpo"])
    p.add_argument("--warmup", type=int, default=int(os.environ.get("BENCH_WARMUP", 1)))
    p.add_argument("--iters", type=int, default=int(os.environ.get("BENCH_ITERS", 3)))
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", 2)))
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(LlamaConfig(**CONFIGS[args.model], attn_implementation="sdpa")).float()
    model.config.use_cache = False
    vocab = CONFIGS[args.model]["vocab_size"]
    g = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, vocab, (BATCH, SEQ), generator=g)
    answer = torch.zeros(BATCH, SEQ - 1)
    answer[:, SEQ // 2 - 1:] = 1.0  # DPO: targets of the answer half
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    embed = model.get_input_embeddings()
    with torch.no_grad():
        ref = (token_logps(model(input_ids=ids).logits, ids) * answer).sum(-1)

    def update(loss):
        model.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    def forward():
        with torch.no_grad():
            token_logps(model(input_ids=ids).logits, ids)

    def sft():
        update(-token_logps(model(input_ids=ids).logits, ids).mean())

    def ift(lam=0.2, gamma=0.95):
        with torch.no_grad():
            pred = model(input_ids=ids).logits.argmax(-1)
        mixed_ids = torch.cat([ids[:, :1], pred[:, :-1]], 1)
        e = (1 - lam) * embed(ids) + lam * embed(mixed_ids).detach()
        nll = -token_logps(model(inputs_embeds=e).logits, ids)
        w, acc = torch.zeros_like(nll), torch.zeros(BATCH)
        for i in reversed(range(nll.size(1))):  # discounted loss that follows
            acc = nll[:, i].detach() + gamma * acc
            w[:, i] = acc
        update((nll * w / w.sum().clamp_min(1e-6)).sum())

    def dpo(beta=0.1):
        logps = (token_logps(model(input_ids=ids).logits, ids) * answer).sum(-1)
        margin = (logps - ref).view(2, BATCH // 2)
        update(-F.logsigmoid(beta * (margin[0] - margin[1])).mean())

    step = dict(forward=forward, sft=sft, ift=ift, dpo=dpo)[args.step]
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(json.dumps(dict(
        impl="torch", torch=torch.__version__, transformers=transformers.__version__,
        model=args.model, step=args.step, threads=torch.get_num_threads(),
        iters=args.iters, median_s=median, min_s=min(times),
        tokens_per_s=BATCH * SEQ / median,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )), flush=True)


if __name__ == "__main__":
    main()
