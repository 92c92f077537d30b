"""Write the PyTorch reference fixtures for `crates/ift/tests/optim_reference.rs`.

Run from the repository root with the reference environment:

    venv-ref/bin/python scripts/reference/optim_reference.py

It writes `crates/ift/tests/fixtures/optim/{adamw,rmsprop,sgd,schedules,clip}.safetensors`.
Every input the Rust side needs (initial parameters, each step's gradients, each step's learning
rate) is stored in the fixture, so the Rust tests never have to reproduce torch's RNG. CI does not
run this script; the Rust tests only read the committed files. Rerunning it reproduces the same
tensors; the files' bytes may still change, because the metadata's key order is not fixed.

Names inside the trajectory files:
  init.<p>            parameter before the first step
  grad.<k>.<p>        gradient at step k (absent: the parameter has no gradient at that step)
  lr                  (steps,) f64, the learning rate passed to step k
  param.<k>.<p>       parameter after step k
  state.<name>.<p>    torch's optimizer state after the last step (exp_avg, exp_avg_sq, ...)
"""

import json
import platform
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    TrainingArguments,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

OUT = Path("crates/ift/tests/fixtures/optim")
STEPS = 10
SHAPES = {"a": (4, 3), "b": (5,), "c": (2, 2, 3)}
# Parameter c gets no gradient at these steps, to pin down "a var without a gradient is skipped"
# (torch leaves its state, including its own step count, untouched).
NO_GRAD = {"c": {3, 4}}


def metadata(extra):
    meta = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "script": "scripts/reference/optim_reference.py",
    }
    meta.update({k: json.dumps(v) if not isinstance(v, str) else v for k, v in extra.items()})
    return meta


def trajectory(name, make_opt, make_sched, hyper, seed):
    gen = torch.Generator().manual_seed(seed)
    params = {p: torch.nn.Parameter(torch.randn(s, generator=gen)) for p, s in SHAPES.items()}
    out = {f"init.{p}": t.detach().clone() for p, t in params.items()}
    opt = make_opt(list(params.values()))
    sched = make_sched(opt)
    lrs = []
    for k in range(STEPS):
        for p, t in params.items():
            if k in NO_GRAD.get(p, set()):
                t.grad = None
            else:
                g = torch.randn(SHAPES[p], generator=gen) * 0.5
                out[f"grad.{k}.{p}"] = g.clone()
                t.grad = g
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        for p, t in params.items():
            out[f"param.{k}.{p}"] = t.detach().clone()
    out["lr"] = torch.tensor(lrs, dtype=torch.float64)
    for p, t in params.items():
        for key, value in opt.state[t].items():
            if key == "step":
                value = value.to(torch.int64)  # torch keeps it as a float tensor
            out[f"state.{key}.{p}"] = value.detach().clone()
    save_file(out, OUT / f"{name}.safetensors", metadata({"optimizer": name, **hyper}))


def schedules():
    """LambdaLR learning rates from transformers' schedules, one row per (kind, warmup, total)."""
    base_lr = 3e-4
    makers = {
        "constant": lambda o, w, t: get_constant_schedule_with_warmup(o, w),
        "linear": get_linear_schedule_with_warmup,
        "cosine": get_cosine_schedule_with_warmup,
    }
    out = {}
    for kind, make in makers.items():
        for warmup, total in [(0, 10), (3, 10), (5, 37), (10, 10)]:
            opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
            sched = make(opt, warmup, total)
            lrs = []
            # Past the end too: the schedules must clamp at 0, not go negative or wrap around.
            for _ in range(total + 3):
                lrs.append(opt.param_groups[0]["lr"])
                opt.step()
                sched.step()
            out[f"{kind}.w{warmup}.t{total}"] = torch.tensor(lrs, dtype=torch.float64)
    # warmup_ratio: transformers' TrainingArguments turns a fractional warmup into ceil(total * r).
    ratios = []
    for ratio, total in [(0.1, 37), (0.15, 100), (0.03, 1000)]:
        # Called unbound on a stand-in: building TrainingArguments needs `accelerate`, which the
        # reference environment does not have, and only this method is under test.
        steps = TrainingArguments.get_warmup_steps(SimpleNamespace(warmup_steps=ratio), total)
        ratios.append([ratio, total, steps])
    out["warmup_ratio"] = torch.tensor(ratios, dtype=torch.float64)
    save_file(out, OUT / "schedules.safetensors", metadata({"base_lr": base_lr}))


def clip():
    gen = torch.Generator().manual_seed(7)
    out = {}
    for case, max_norm in [("clipped", 1.0), ("unclipped", 100.0)]:
        grads = {p: torch.randn(s, generator=gen) * 2.0 for p, s in SHAPES.items()}
        params = [torch.nn.Parameter(torch.zeros(s)) for s in SHAPES.values()]
        for t, g in zip(params, grads.values()):
            t.grad = g.clone()
        total = torch.nn.utils.clip_grad_norm_(params, max_norm)
        for p, t in zip(SHAPES, params):
            out[f"{case}.grad.{p}"] = grads[p]
            out[f"{case}.clipped.{p}"] = t.grad.clone()
        out[f"{case}.total_norm"] = total.reshape(1)
        out[f"{case}.max_norm"] = torch.tensor([max_norm], dtype=torch.float64)
    save_file(out, OUT / "clip.safetensors", metadata({}))


def main():
    torch.use_deterministic_algorithms(True)
    OUT.mkdir(parents=True, exist_ok=True)
    # Each optimizer also runs under a different schedule, so the Rust side checks that the
    # schedule and the optimizer agree with torch together. foreach=False: the single-tensor
    # code path, which is what torch uses on CPU anyway.
    trajectory(
        "adamw",
        lambda ps: torch.optim.AdamW(ps, lr=0.05, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, foreach=False),
        lambda o: get_cosine_schedule_with_warmup(o, 3, STEPS),
        {"lr": 0.05, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1,
         "schedule": "cosine", "warmup_steps": 3, "total_steps": STEPS},
        seed=1,
    )
    trajectory(
        "rmsprop",
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.1, foreach=False),
        lambda o: get_linear_schedule_with_warmup(o, 2, STEPS),
        {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.1,
         "schedule": "linear", "warmup_steps": 2, "total_steps": STEPS},
        seed=2,
    )
    trajectory(
        "sgd",
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1, foreach=False),
        lambda o: get_constant_schedule_with_warmup(o, 2),
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1,
         "schedule": "constant", "warmup_steps": 2, "total_steps": STEPS},
        seed=3,
    )
    schedules()
    clip()
    print(f"wrote {OUT} with torch {torch.__version__}, python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
