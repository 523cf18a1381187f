"""Integrated-gradients benchmark: kexue_core.attribution against Captum at equal numbers of steps.

Run (about a minute on 2 CPU cores; results go to benchmarks/results/attribution-cpu.json):

    python benchmarks/attribution.py

Smoke run (seconds; writes to a temporary file):

    python benchmarks/attribution.py --quick --out /tmp/attribution-smoke.json

Models: the digits MLP of the chapter (64 -> 64 -> 10, ReLU) and an MNIST-sized MLP
(784 -> 512 -> 512 -> 10, ReLU), float32, random weights (timing does not depend on training), batch
B = 16, the logit of a fixed class attributed, zero baseline. Both libraries evaluate the model once on
the n_steps * B path points and take one backward pass; ``captum.attr.IntegratedGradients`` is called
with ``internal_batch_size=None``. Every pair is first checked to compute the same attributions
(``torch.testing.assert_close``), so the table never compares unequal work. Timings are the best
per-call time over 15 rounds (3 with ``--quick``) that alternate between the two libraries, each
round about 20 ms of calls: on a shared machine the minimum is the undisturbed time. Ratio > 1:
kexue_core is faster.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import sys
from importlib import metadata
from pathlib import Path

import torch
from torch.utils import benchmark

from _machine import cpu_model, version

from kexue_core.attribution import integrated_gradients

B = 16
MODELS = {"digits MLP 64-64-10": [64, 64, 10], "MNIST-size MLP 784-512-512-10": [784, 512, 512, 10]}
FULL = {"n_steps": (20, 50, 200), "methods": ("riemann_left", "riemann_trapezoid", "gausslegendre")}
QUICK = {"n_steps": (20,), "methods": ("gausslegendre",)}




def _interleaved_min(fns, repeats: int) -> list[float]:
    """Best time per call of each function, over ``repeats`` rounds that alternate between them.

    On a shared machine a process is descheduled for whole time slices; the minimum over rounds is
    the time of an undisturbed call, and alternating exposes both implementations to the same load.
    """
    timers = [benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()) for fn in fns]
    for fn in fns:
        fn()  # warm-up
    number = max(1, int(0.02 / max(min(t.timeit(1).mean for t in timers), 1e-6)))  # ~20 ms per measurement
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, t in enumerate(timers):
            best[i] = min(best[i], t.timeit(number).mean)
    return best


def _mlp(dims, seed):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).requires_grad_(False)


def run(cfg, repeats: int) -> list[dict]:
    from captum.attr import IntegratedGradients

    rows = []
    for name, dims in MODELS.items():
        net = _mlp(dims, 0)
        f = lambda z, net=net: net(z)[:, 3]  # noqa: E731  one scalar per example
        x = torch.rand(B, dims[0], generator=torch.Generator().manual_seed(1))
        ig = IntegratedGradients(f)
        for method in cfg["methods"]:
            for n in cfg["n_steps"]:
                ours = integrated_gradients(f, x, n_steps=n, method=method)
                ref = ig.attribute(x, n_steps=n, method=method)
                torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)
                t_ours, t_cap = _interleaved_min(
                    [lambda: integrated_gradients(f, x, n_steps=n, method=method),
                     lambda: ig.attribute(x, n_steps=n, method=method)], repeats)
                rows.append({"model": name, "method": method, "n_steps": n, "batch": B,
                             "kexue_core_s": t_ours, "captum_s": t_cap, "captum_over_ours": t_cap / t_ours})
                print(f"{name:32s} {method:18s} n={n:4d}  ours {t_ours * 1e3:8.2f} ms  Captum {t_cap * 1e3:8.2f} ms"
                      f"  ratio {t_cap / t_ours:5.2f}", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: one rule, n_steps = 20, short timings")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "attribution-cpu.json")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    rows = run(cfg, repeats=3 if args.quick else 15)
    ratios = [r["captum_over_ours"] for r in rows]
    record = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "setting": {"batch": B, "models": MODELS, "dtype": "float32", "baseline": "zeros", "timing": "min over interleaved rounds", **{k: list(v) for k, v in cfg.items()}},
        "machine": {"cpu": cpu_model(), "threads": torch.get_num_threads(), "platform": platform.platform(),
                    "python": sys.version.split()[0]},
        "versions": {"torch": torch.__version__, "kexue_core": version("kexue_core"), "captum": version("captum")},
        "rows": rows,
        "captum_over_ours": {"min": min(ratios), "median": sorted(ratios)[len(ratios) // 2], "max": max(ratios)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"Captum / kexue_core time: min {min(ratios):.2f}, median {record['captum_over_ours']['median']:.2f}, "
          f"max {max(ratios):.2f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
