#!/usr/bin/env python3
"""Independent PyTorch reference for the IFT loss (docs: ../shared/docs/ift-method.md, sections 2-3).

Written from the specification only (no Rust code of the project was read).

WHAT IT WRITES (under crates/ift/tests/fixtures/ift/), for <model> in {llama_gqa, qwen2_tied}:

  <model>.safetensors       the fixed batch, the predictions, a random direction per parameter and,
                            for every combination of the IFT settings, loss / per-token weights /
                            per-token losses / gradient projections and gradient norms.
  <model>.full.safetensors  full gradients for 4 representative combinations (kept in a separate
                            file so that each file stays under 2 MB).

  Tensors in <model>.safetensors (T = 16, P = number of parameters, named_parameters() order):
    input_ids        int64 (3, T)  right-padded with the model's pad_token_id; real tokens in [0, 380)
    attention_mask   int64 (3, T)  1 on real tokens (lengths 16, 12, 9)
    loss_mask        int64 (3, T)  1 iff token i is a response/target token; seq 0 has two response
                                   spans (multi-turn), seqs 1 and 2 one span at the end; 0 at i = 0
                                   and on padding. The spec's m[s, t] = loss_mask[s, t + 1].
    predicted        int64 (3, T)  ŷ: ŷ_0 = y_0, ŷ_t = argmax logits_{t-1} of the no-grad
                                   teacher-forced forward (before the response-only replacement)
    mixed_ids        int64 (3, T)  ỹ: ŷ_t where loss_mask[s, t] = 1, else y_t
    direction.<param> f32 (shape of param)  seeded torch.randn, scaled to unit L2 norm
    combo.<i>.loss       f32 (1,)     batch loss
    combo.<i>.proj       f32 (P,)     <dL/dp, direction.p> per parameter (0 if p gets no gradient)
    combo.<i>.norm       f32 (P,)     ||dL/dp|| per parameter (exactly 0 if p gets no gradient)
    combo.<i>.weights    f32 (3, T-1) final per-token weights w_t (after w*N/sum w)
    combo.<i>.token_loss f32 (3, T-1) l_t = -m_t log softmax(logits_t)[y_{t+1}] (second forward)
  Metadata (strings): combos (JSON list, entry i = {item, side, norm, gamma, lambda,
    embedding_grad, detach_weights}), params (JSON list of names), no_grad_params (JSON: for each
    combo index with parameters that got no gradient, their names), versions, notes.

  Tensors in <model>.full.safetensors: full.<k>.grad.<param> f32 for k = 0..3; a parameter that
  gets NO gradient in combo k (untied embed_tokens under frozen_copy) is OMITTED (its gradient is
  zero) and listed in that entry's `no_grad`. Metadata `full` = JSON list of the 4 settings dicts,
  each with `combo` (index into `combos`) and `no_grad`; `params`; versions.

HOW TO RUN (by hand only; CI never runs Python, the fixtures are committed):

    venv-ref/bin/python scripts/reference/make_ift_fixtures.py

It also runs and prints sanity checks (gamma = 0, lambda = 0 equals SFT's loss and gradients;
detach_weights changes gradients but not the loss) and exits non-zero if one fails.

Spec readings (see also scripts/reference/README.md):
  * softmax norm: softmax over ALL T-1 positions of the row (masked ones enter with G = 0, or
    1/G = 1/(1e6 + min) on the right side), then w = 0 where m = 0, then w*N/sum w. The softmax
    denominator is a per-row constant which the final normalisation cancels, so this equals a
    softmax over the masked-in positions only (up to rounding).
  * right side: G[m = 0] = 1e6; then s = min over the whole batch (3 x (T-1)) of the entries of G
    that are != 0 (this includes the 1e6 entries, so s is the smallest masked-in non-zero G unless
    none exists); G = G + s on EVERY entry. s is not detached (gradient flows through the min).
  * gamma = 0: all-ones weights for every item/side/norm (then the final masking/normalisation,
    which keeps them at 1 on response tokens); no gradient through the weights.
  * detach_weights: the final weights (after normalisation) are detached.
  * frozen_copy: E = embed_tokens.weight.detach().clone(); the second forward takes
    inputs_embeds = (1-lambda) E[y] + lambda E[ỹ]. live: the same with the policy's own
    embed_tokens.weight (gradient through both lookups).
"""

from __future__ import annotations

import json
import platform
import struct
import sys
from itertools import product
from pathlib import Path

import safetensors
import torch
import torch.nn.functional as F
import transformers
from transformers import AutoModelForCausalLM

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "crates/ift/tests/fixtures"
OUT = FIX / "ift"
MODELS = ["llama_gqa", "qwen2_tied"]

LENGTHS = [16, 12, 9]
T = 16
# response spans [start, end) per sequence; seq 0 is multi-turn (two spans, prompt between them)
SPANS = [[(4, 8), (11, 16)], [(6, 12)], [(4, 9)]]

ITEMS = ["loss", "logps", "mask"]
SIDES = ["left", "right"]
NORMS = ["l1", "l2", "softmax", "log"]
GAMMAS = [0.0, 0.5, 0.95, 1.0]
LAMBDAS = [0.0, 0.2, 1.0]
EMB = ["frozen_copy", "live"]
DETACH = [False, True]

FULL = [
    dict(item="loss", side="left", norm="l1", gamma=0.95, **{"lambda": 0.2}, embedding_grad="frozen_copy", detach_weights=False),
    dict(item="loss", side="right", norm="softmax", gamma=0.5, **{"lambda": 1.0}, embedding_grad="live", detach_weights=True),
    dict(item="logps", side="left", norm="log", gamma=1.0, **{"lambda": 0.2}, embedding_grad="live", detach_weights=False),
    dict(item="mask", side="right", norm="l2", gamma=0.0, **{"lambda": 0.0}, embedding_grad="frozen_copy", detach_weights=False),
]


def make_batch(pad_id: int):
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(0, 380, (3, T), generator=g, dtype=torch.int64)
    am = torch.zeros(3, T, dtype=torch.int64)
    lm = torch.zeros(3, T, dtype=torch.int64)
    for s, (n, spans) in enumerate(zip(LENGTHS, SPANS)):
        am[s, :n] = 1
        ids[s, n:] = pad_id
        for a, b in spans:
            lm[s, a:b] = 1
    assert (lm[:, 0] == 0).all() and ((lm == 1) <= (am == 1)).all()
    return ids, am, lm


def load(name: str):
    m = AutoModelForCausalLM.from_pretrained(FIX / "models" / name, dtype=torch.float32,
                                             attn_implementation="eager")
    m = m.float().eval()
    return m


@torch.no_grad()
def predict(model, ids, am, lm):
    logits = model(input_ids=ids, attention_mask=am).logits.float()
    p = logits.argmax(-1)  # p_t: guess for token t+1
    yhat = ids.clone()
    yhat[:, 1:] = p[:, :-1]  # ŷ_0 = y_0, ŷ_t = p_{t-1}
    ytilde = torch.where(lm == 1, yhat, ids)
    return yhat, ytilde


def token_losses(model, ids, am, ytilde, lam, emb_mode, m):
    W = model.get_input_embeddings().weight
    E = W.detach().clone() if emb_mode == "frozen_copy" else W
    e = (1.0 - lam) * F.embedding(ids, E) + lam * F.embedding(ytilde, E)
    logits = model(inputs_embeds=e, attention_mask=am).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    nll = -logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return m * nll  # (B, T-1)


def ift_weights(ell, m, item, side, norm, gamma):
    """ell, m: (B, T-1) float32. Returns final weights (B, T-1) (before optional detach)."""
    N = m.sum(-1, keepdim=True)
    if gamma == 0.0:
        w = torch.ones_like(ell)
    else:
        if item == "loss":
            c = ell / N
        elif item == "logps":
            c = ell
        else:
            c = m.clone()
        c = c * m  # c_t = 0 where m_t = 0
        L = c.shape[1]
        idx = torch.arange(L)
        diff = (idx[None, :] - idx[:, None]).to(torch.float64)  # [t, k] = k - t
        if side == "left":
            # G_t = sum_{k >= t} gamma^{k-t} c_k
            D = torch.where(diff >= 0, torch.tensor(gamma, dtype=torch.float64) ** diff.clamp(min=0),
                            torch.zeros((), dtype=torch.float64)).to(torch.float32)
            G = c @ D.T
            G = G * m
            if norm == "l1":
                w = G
            elif norm == "l2":
                w = G * G
            elif norm == "softmax":
                w = torch.softmax(G, dim=-1)
            else:
                w = torch.log(G + 1.0)
        else:
            # G_t = sum_{k <= t} gamma^{t-k} c_k
            D = torch.where(diff <= 0, torch.tensor(gamma, dtype=torch.float64) ** (-diff).clamp(min=0),
                            torch.zeros((), dtype=torch.float64)).to(torch.float32)
            G = c @ D.T
            G = torch.where(m == 0, torch.full_like(G, 1e6), G)
            smallest = G[G != 0].min()
            G = G + smallest
            if norm == "l1":
                w = 1.0 / G
            elif norm == "l2":
                w = 1.0 / (G * G)
            elif norm == "softmax":
                w = torch.softmax(1.0 / G, dim=-1)
            else:
                w = 1.0 / torch.log(G + 1.0)
    w = w * m
    w = w * N / w.sum(-1, keepdim=True)
    return w


def ift_loss(model, ids, am, lm, ytilde, cfg):
    m = lm[:, 1:].to(torch.float32)
    ell = token_losses(model, ids, am, ytilde, cfg["lambda"], cfg["embedding_grad"], m)
    w = ift_weights(ell, m, cfg["item"], cfg["side"], cfg["norm"], cfg["gamma"])
    if cfg["detach_weights"]:
        w = w.detach()
    N = m.sum(-1)
    loss = ((w * ell).sum(-1) / N).mean()
    return loss, w, ell


def grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    out = {}
    for n, p in model.named_parameters():
        out[n] = None if p.grad is None else p.grad.detach().clone()
    model.zero_grad(set_to_none=True)
    return out


def sft_loss(model, ids, am, lm):
    m = lm[:, 1:].to(torch.float32)
    logits = model(input_ids=ids, attention_mask=am).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    nll = -logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) * m
    return (nll.sum(-1) / m.sum(-1)).mean()


def max_grad_diff(ga, gb):
    d = 0.0
    for n in ga:
        a = ga[n] if ga[n] is not None else 0.0
        b = gb[n] if gb[n] is not None else 0.0
        d = max(d, float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max()))
    return d


_DT = {torch.float32: "F32", torch.int64: "I64"}


def save_file(tensors: dict, path: str, metadata: dict) -> None:
    """A byte-deterministic safetensors writer (the library's header is built from a Rust HashMap,
    so its metadata key order, hence the file bytes, change from run to run). Tensors are written in
    insertion order, metadata keys sorted; the result loads with safetensors.safe_open."""
    header = {"__metadata__": {k: metadata[k] for k in sorted(metadata)}}
    blobs, off = [], 0
    for name, t in tensors.items():
        b = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": _DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def versions():
    return dict(torch=torch.__version__, transformers=transformers.__version__,
                safetensors=safetensors.__version__, python=platform.python_version())


def run(name: str) -> bool:
    torch.manual_seed(0)
    model = load(name)
    pad = model.config.pad_token_id
    ids, am, lm = make_batch(pad)
    yhat, ytilde = predict(model, ids, am, lm)
    names = [n for n, _ in model.named_parameters()]
    params = dict(model.named_parameters())

    g = torch.Generator().manual_seed(4321)
    direction = {}
    for n in names:
        d = torch.randn(params[n].shape, generator=g, dtype=torch.float32)
        direction[n] = (d / d.norm()).contiguous()

    tensors = {"input_ids": ids, "attention_mask": am, "loss_mask": lm,
               "predicted": yhat, "mixed_ids": ytilde}
    for n in names:
        tensors[f"direction.{n}"] = direction[n]

    combos, no_grad = [], {}
    full_grads = {}
    for item, side, norm, gamma, lam, emb, det in product(ITEMS, SIDES, NORMS, GAMMAS, LAMBDAS, EMB, DETACH):
        cfg = dict(item=item, side=side, norm=norm, gamma=gamma, **{"lambda": lam},
                   embedding_grad=emb, detach_weights=det)
        i = len(combos)
        combos.append(cfg)
        loss, w, ell = ift_loss(model, ids, am, lm, ytilde, cfg)
        gr = grads(model, loss)
        proj = torch.zeros(len(names))
        nrm = torch.zeros(len(names))
        missing = []
        for j, n in enumerate(names):
            if gr[n] is None:
                missing.append(n)
                continue
            proj[j] = (gr[n].double() * direction[n].double()).sum().float()
            nrm[j] = gr[n].double().norm().float()
        if missing:
            no_grad[str(i)] = missing
        assert torch.isfinite(loss) and torch.isfinite(proj).all() and torch.isfinite(w).all(), cfg
        tensors[f"combo.{i}.loss"] = loss.detach().reshape(1).float()
        tensors[f"combo.{i}.proj"] = proj
        tensors[f"combo.{i}.norm"] = nrm
        tensors[f"combo.{i}.weights"] = w.detach().float().contiguous()
        tensors[f"combo.{i}.token_loss"] = ell.detach().float().contiguous()
        for k, fc in enumerate(FULL):
            if fc == cfg:
                full_grads[k] = (i, gr)

    # ---- sanity checks ----
    ok = True

    def check(label, cond, detail):
        nonlocal ok
        ok &= bool(cond)
        print(f"  [{'ok' if cond else 'FAIL'}] {label}: {detail}")

    print(f"{name}: {len(combos)} combos, {len(names)} params; mixed_ids differ from input_ids on "
          f"{int(((ytilde != ids) & (lm == 1)).sum())} of {int(lm.sum())} response tokens")
    sl = sft_loss(model, ids, am, lm)
    sg = grads(model, sl)
    for emb in EMB:
        for item, side, norm in [("loss", "left", "l1"), ("mask", "right", "softmax")]:
            cfg = dict(item=item, side=side, norm=norm, gamma=0.0, **{"lambda": 0.0},
                       embedding_grad=emb, detach_weights=False)
            loss, _, _ = ift_loss(model, ids, am, lm, ytilde, cfg)
            gr = grads(model, loss)
            if emb == "frozen_copy" and not model.config.tie_word_embeddings:
                # the frozen copy gives the untied input embedding no gradient: compare the rest
                emb_name = [n for n in names if "embed_tokens" in n][0]
                gr = dict(gr)
                sg_cmp = dict(sg)
                sg_cmp[emb_name] = None
                gr[emb_name] = None
            elif emb == "frozen_copy":
                # tied: the matrix still learns through the output head only, so SFT differs there
                emb_name = [n for n in names if "embed_tokens" in n][0]
                gr = dict(gr)
                sg_cmp = dict(sg)
                sg_cmp[emb_name] = None
                gr[emb_name] = None
            else:
                sg_cmp = sg
            check(f"gamma=0 lambda=0 {item}/{side}/{norm} {emb} == SFT",
                  abs(loss.item() - sl.item()) < 1e-6 and max_grad_diff(gr, sg_cmp) < 1e-5,
                  f"loss {loss.item():.7f} vs {sl.item():.7f}, max grad diff {max_grad_diff(gr, sg_cmp):.2e}"
                  + (" (embed_tokens excluded)" if emb == "frozen_copy" else ""))
    for cfg in [FULL[0], FULL[2], dict(FULL[0], side="right", norm="softmax", gamma=0.5)]:
        a = dict(cfg, detach_weights=False)
        b = dict(cfg, detach_weights=True)
        la, _, _ = ift_loss(model, ids, am, lm, ytilde, a)
        ga = grads(model, la)
        lb, _, _ = ift_loss(model, ids, am, lm, ytilde, b)
        gb = grads(model, lb)
        d = max_grad_diff(ga, gb)
        check(f"detach {cfg['item']}/{cfg['side']}/{cfg['norm']} g{cfg['gamma']} l{cfg['lambda']}",
              la.item() == lb.item() and d > 1e-6, f"loss {la.item():.7f} vs {lb.item():.7f}, grad diff {d:.2e}")
    # the weights average 1 over response tokens; gamma=0 weights are exactly 1 there
    wmax = 0.0
    for i, cfg in enumerate(combos):
        w = tensors[f"combo.{i}.weights"]
        m = lm[:, 1:].float()
        wmax = max(wmax, float(((w * m).sum(-1) / m.sum(-1) - 1).abs().max()))
        assert (w[m == 0] == 0).all()
    check("weights average 1 on response tokens, 0 elsewhere", wmax < 1e-5, f"max dev {wmax:.2e}")
    # effective token weights dL/dl_t of the default combination (undetached weights): can be < 0
    la, _, ell = ift_loss(model, ids, am, lm, ytilde, FULL[0])
    (eff,) = torch.autograd.grad(la, ell)
    m = lm[:, 1:] == 1
    eff = eff[m] * 3 * lm[:, 1:].sum(-1, keepdim=True).expand_as(eff)[m]
    print(f"  default combo: effective weights (dL/dl_t * B * N) min {float(eff.min()):.4f} "
          f"max {float(eff.max()):.4f}, {int((eff < 0).sum())} of {int(m.sum())} negative")
    model.zero_grad(set_to_none=True)
    print(f"  default combo loss {float(tensors['combo.%d.loss' % full_grads[0][0]][0]):.7f}")

    meta = {"combos": json.dumps(combos), "params": json.dumps(names),
            "no_grad_params": json.dumps(no_grad), "versions": json.dumps(versions()),
            "T": str(T), "lengths": json.dumps(LENGTHS),
            "note": "m[s,t] = loss_mask[s,t+1]; weights/token_loss are (3,T-1) over t = 0..T-2"}
    OUT.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(OUT / f"{name}.safetensors"), metadata=meta)

    full_t, full_meta = {}, []
    for k in range(len(FULL)):
        i, gr = full_grads[k]
        full_meta.append(dict(FULL[k], combo=i, no_grad=[n for n in names if gr[n] is None]))
        for n in names:
            if gr[n] is not None:  # no-gradient params are omitted (listed in no_grad) to save space
                full_t[f"full.{k}.grad.{n}"] = gr[n].float().contiguous()
    save_file(full_t, str(OUT / f"{name}.full.safetensors"),
              metadata={"full": json.dumps(full_meta), "params": json.dumps(names),
                        "versions": json.dumps(versions())})
    return ok


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    ok = True
    for name in MODELS:
        ok &= run(name)
    for f in sorted(OUT.glob("*.safetensors")):
        print(f"{f.relative_to(REPO)}: {f.stat().st_size / 1e6:.3f} MB")
    print("ALL OK" if ok else "SANITY FAILURE")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
