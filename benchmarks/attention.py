"""Attention benchmark: kexue_core against the peer libraries, side by side in one process.

Run (about 5 minutes on 2 CPU cores; results go to benchmarks/results/attention-cpu.json):

    python benchmarks/attention.py

Smoke run (seconds; used by .ci/run so the benchmark cannot rot; writes to a temporary file):

    python benchmarks/attention.py --quick --out /tmp/attention-smoke.json

Shapes: batch 4, heads 8, head dim 64, n from 256 to 8192 (the issue's setting). Timings are medians
of ``torch.utils.benchmark.Timer.blocked_autorange`` (it reports the median over blocks of runs). Every
pair is first checked to compute the same thing (``torch.testing.assert_close``) so the table never
compares unequal work. Softmax attention is timed up to n = 4096: at n = 8192 our function returns
the (4, 8, 8192, 8192) probability tensor, 8.6 GB in float32, which this 24 GB machine cannot hold
twice.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import platform
import sys
from importlib import metadata
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils import benchmark

from kexue_core.attention.linear import causal_linear_attention, elu_feature_map, linear_attention
from kexue_core.attention.performer import draw_random_features, positive_random_features
from kexue_core.attention.softmax import softmax_attention

B, H, D = 4, 8, 64
FULL_N = (256, 512, 1024, 2048, 4096, 8192)
QUICK_N = (256, 512)
SOFTMAX_MAX_N = 4096


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _median(fn, min_run_time: float) -> float:
    fn()  # warm-up (allocations, lazy init)
    m = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()).blocked_autorange(
        min_run_time=min_run_time
    )
    return float(m.median)


def _peers():
    """Import the peer implementations that are installed; return {name: callable or None}."""
    from performer_pytorch.performer_pytorch import (
        causal_linear_attention_noncuda as performer_causal,
        linear_attention as performer_linear,
        softmax_kernel as performer_softmax_kernel,
    )
    from linear_attention_transformer.linear_attention_transformer import causal_linear_attn as lat_causal

    try:  # optional: pytorch-fast-transformers' C++ kernel (never installed in CI)
        from fast_transformers.causal_product import causal_dot_product as ft_causal_product
    except ImportError:
        ft_causal_product = None
    return performer_linear, performer_causal, performer_softmax_kernel, lat_causal, ft_causal_product


def run(ns, min_run_time: float) -> dict:
    torch.manual_seed(0)
    performer_linear, performer_causal, performer_softmax_kernel, lat_causal, ft_causal_product = _peers()
    rows = []

    def add(op, impl, n, seconds):
        rows.append({"op": op, "impl": impl, "n": n, "median_s": seconds})
        print(f"{op:28s} {impl:38s} n={n:5d}  {seconds * 1e3:10.2f} ms", flush=True)

    W = draw_random_features(256, D, kind="orthogonal", generator=torch.Generator().manual_seed(0))
    for n in ns:
        g = torch.Generator().manual_seed(n)
        q, k, v = (torch.randn(B, H, n, D, generator=g) for _ in range(3))

        # 1. softmax attention vs PyTorch SDPA (same scale 1/sqrt(d))
        if n <= SOFTMAX_MAX_N:
            torch.testing.assert_close(softmax_attention(q, k, v)[0], F.scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=1e-4)
            add("softmax attention", "kexue_core.softmax_attention", n, _median(lambda: softmax_attention(q, k, v), min_run_time))
            add("softmax attention", "torch SDPA", n, _median(lambda: F.scaled_dot_product_attention(q, k, v), min_run_time))

        # 2. non-causal linear attention, elu+1 features, vs performer-pytorch on the same features
        fq, fk = elu_feature_map(q), elu_feature_map(k)
        torch.testing.assert_close(linear_attention(q, k, v, eps=1e-12), performer_linear(fq, fk, v), atol=1e-4, rtol=1e-4)
        add("linear attention", "kexue_core.linear_attention", n, _median(lambda: linear_attention(q, k, v), min_run_time))
        add("linear attention", "performer-pytorch linear_attention", n,
            _median(lambda: performer_linear(elu_feature_map(q), elu_feature_map(k), v), min_run_time))

        # 3. causal linear attention (elu+1 features for ours and performer's; the peers fix their own)
        ours = causal_linear_attention(q, k, v)
        torch.testing.assert_close(ours, performer_causal(fq, fk, v), atol=1e-4, rtol=1e-3)
        add("causal linear attention", "kexue_core.causal_linear_attention", n,
            _median(lambda: causal_linear_attention(q, k, v), min_run_time))
        add("causal linear attention", "performer-pytorch noncuda", n,
            _median(lambda: performer_causal(elu_feature_map(q), elu_feature_map(k), v), min_run_time))
        # linear-attention-transformer applies its own maps (softmax over d for q, exp for k): same
        # O(n) structure, different features, so it is timed but not compared numerically.
        add("causal linear attention", "linear-attention-transformer causal_linear_attn", n,
            _median(lambda: lat_causal(q, k, v), min_run_time))
        if ft_causal_product is not None:
            def ft():
                a, b = elu_feature_map(q), elu_feature_map(k)
                num = ft_causal_product(a, b, v)
                return num / (torch.einsum("...nd,...nd->...n", a, b.cumsum(-2)).unsqueeze(-1) + 1e-6)
            torch.testing.assert_close(ours, ft(), atol=1e-4, rtol=1e-3)
            add("causal linear attention", "fast-transformers C++ causal_dot_product", n, _median(ft, min_run_time))

        # 4. Performer positive random features at equal feature count m = 256
        #    performer-pytorch applies d^{-1/4} to the data itself; feed ours the same scaled input
        xs = q * D ** -0.25
        ref = performer_softmax_kernel(q, projection_matrix=W, is_query=False, eps=0.0)
        # both subtract one constant per (batch, head) slice before exp (performer-pytorch the max of
        # Wx, ours the max of the whole exponent), so the features agree up to one factor per slice
        ours_f = positive_random_features(xs, W, stabilize="all")
        per_slice = lambda t: t / t.amax(dim=(-1, -2), keepdim=True)  # noqa: E731
        torch.testing.assert_close(per_slice(ours_f), per_slice(ref), atol=1e-5, rtol=1e-4)
        add("Performer features (m=256)", "kexue_core.positive_random_features", n,
            _median(lambda: positive_random_features(xs, W, stabilize="all"), min_run_time))
        add("Performer features (m=256)", "performer-pytorch softmax_kernel", n,
            _median(lambda: performer_softmax_kernel(q, projection_matrix=W, is_query=False, eps=0.0), min_run_time))
    return {"rows": rows, "fast_transformers": ft_causal_product is not None}


def ratios(rows) -> list[dict]:
    """For each (op, n): every implementation's time divided by kexue_core's (> 1: ours is faster)."""
    out = []
    for op in dict.fromkeys(r["op"] for r in rows):
        for n in sorted({r["n"] for r in rows if r["op"] == op}):
            group = [r for r in rows if r["op"] == op and r["n"] == n]
            ours = next(r for r in group if r["impl"].startswith("kexue_core"))
            for r in group:
                if r is not ours:
                    out.append({"op": op, "n": n, "peer": r["impl"], "peer_over_ours": r["median_s"] / ours["median_s"]})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: n in (256, 512), short timings")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "attention-cpu.json")
    args = ap.parse_args(argv)
    ns = QUICK_N if args.quick else FULL_N
    result = run(ns, min_run_time=0.05 if args.quick else 1.0)
    record = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "shape": {"batch": B, "heads": H, "head_dim": D, "n": list(ns)},
        "machine": {
            "cpu": _cpu_model(),
            "threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
        "versions": {
            "torch": torch.__version__,
            "kexue_core": _version("kexue_core"),
            "performer-pytorch": _version("performer-pytorch"),
            "linear-attention-transformer": _version("linear-attention-transformer"),
            "pytorch-fast-transformers": _version("pytorch-fast-transformers"),
        },
        "rows": result["rows"],
        "ratios": ratios(result["rows"]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
