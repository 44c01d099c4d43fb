"""A3: naive, vectorized and PyTorch convolution; batchnorm against F.batch_norm; grading A3 and all three."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.common import Row, median_time, slowest_checks

ROOT = Path(__file__).resolve().parent.parent


def _fwd_bwd(layer, *args):
    out, cache = layer.forward(*args)
    layer.backward(torch.ones_like(out), cache)


def run(repeat: int = 5) -> list[Row]:
    from a3_networks import convolutional_networks as cn
    from grader.judge.runner import grade

    torch.manual_seed(0)
    rows: list[Row] = []
    # the course's timing size: 100 images 3x31x31, 25 filters 3x3, stride 2, pad 1
    x, w, b = torch.randn(100, 3, 31, 31), torch.randn(25, 3, 3, 3), torch.randn(25)
    param = {"stride": 2, "pad": 1}
    xt, wt, bt = (t.clone().requires_grad_() for t in (x, w, b))

    def torch_conv():
        out = F.conv2d(xt, wt, bt, stride=2, padding=1)
        torch.autograd.grad(out, (xt, wt, bt), torch.ones_like(out))

    t_torch = median_time(torch_conv, repeat)
    t_naive = median_time(lambda: _fwd_bwd(cn.Conv, x, w, b, param), max(1, repeat // 2))
    t_vec = median_time(lambda: _fwd_bwd(cn.ConvVectorized, x, w, b, param), repeat)
    rows.append(Row("a3", "conv forward+backward naive, 100x3x31x31", t_naive, "F.conv2d + autograd", t_torch, "s"))
    rows.append(
        Row(
            "a3",
            "conv forward+backward vectorized (unfold)",
            t_vec,
            "F.conv2d + autograd",
            t_torch,
            "s",
            note=f"{t_naive / t_vec:.0f}x faster than naive",
        )
    )
    # batchnorm on (N, D) = (500, 1000), train mode
    xb, g, be = torch.randn(500, 1000), torch.ones(1000), torch.zeros(1000)
    xbt, gt, bet = (t.clone().requires_grad_() for t in (xb, g, be))

    def torch_bn():
        out = F.batch_norm(xbt, None, None, gt, bet, training=True, eps=1e-5)
        torch.autograd.grad(out, (xbt, gt, bet), torch.ones_like(out))

    def mine(backward):
        out, cache = cn.BatchNorm.forward(xb, g, be, {"mode": "train"})
        backward(torch.ones_like(out), cache)

    t_bn = median_time(torch_bn, repeat)
    rows.append(
        Row(
            "a3",
            "batchnorm fwd+bwd (graph), 500x1000",
            median_time(lambda: mine(cn.BatchNorm.backward), repeat),
            "F.batch_norm + autograd",
            t_bn,
            "s",
        )
    )
    rows.append(
        Row(
            "a3",
            "batchnorm fwd+bwd (closed form)",
            median_time(lambda: mine(cn.BatchNorm.backward_alt), repeat),
            "F.batch_norm + autograd",
            t_bn,
            "s",
        )
    )
    walls = {}
    for name in ("a1_knn", "a2_linear", "a3_networks"):
        t0 = time.perf_counter()
        result = grade(ROOT, name, device="cpu", hidden=False)
        walls[name] = (time.perf_counter() - t0, result)
    wall3, r3 = walls["a3_networks"]
    rows += slowest_checks("a3", r3, wall3)
    rows.append(
        Row(
            "a3", "grading A3, public (wall)", wall3, "", None, "s", note=f"{len(r3.checks)} checks, score {r3.score:g}"
        )
    )
    total = sum(w for w, _ in walls.values())
    rows.append(
        Row(
            "all",
            "grading A1 + A2 + A3, public (wall)",
            total,
            "",
            None,
            "s",
            note=", ".join(f"{n} {w:.0f} s" for n, (w, _) in walls.items()),
        )
    )
    return rows
