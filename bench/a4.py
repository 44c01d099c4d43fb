"""A4: the hand-written RNN and LSTM (forward + backward over T steps) against torch.nn.RNN / torch.nn.LSTM with
autograd at the same sizes; grading A4 whole (public, then public + hidden)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from bench.common import Row, median_time, slowest_checks

ROOT = Path(__file__).resolve().parent.parent
N, T, D, H = 64, 50, 128, 128  # a minibatch of 64 sequences of 50 steps, 128 features, 128 hidden units


def _theirs(cell: str, x: torch.Tensor, h0: torch.Tensor):
    """torch.nn's layer, forward and backward by autograd, with the same sizes and the same upstream gradient."""
    layer = (torch.nn.RNN if cell == "rnn" else torch.nn.LSTM)(D, H, batch_first=True)
    xt = x.clone().requires_grad_()
    state = h0[None] if cell == "rnn" else (h0[None], torch.zeros_like(h0)[None])

    def run():
        out, _ = layer(xt, state)
        torch.autograd.grad(out, [xt, *layer.parameters()], torch.ones_like(out))

    return run


def _ours(forward, backward, x, h0, Wx, Wh, b):
    def run():
        h, cache = forward(x, h0, Wx, Wh, b)
        backward(torch.ones_like(h), cache)

    return run


def run(repeat: int = 5) -> list[Row]:
    from a4_rnn import lstm_layers as L
    from a4_rnn import rnn_layers as R
    from grader.judge.runner import grade

    torch.manual_seed(0)
    rows: list[Row] = []
    x, h0 = torch.randn(N, T, D), torch.randn(N, H)
    for cell, (forward, backward), G in (
        ("rnn", (R.rnn_forward, R.rnn_backward), H),
        ("lstm", (L.lstm_forward, L.lstm_backward), 4 * H),
    ):
        Wx, Wh, b = 0.1 * torch.randn(D, G), 0.1 * torch.randn(H, G), torch.zeros(G)
        theirs = median_time(_theirs(cell, x, h0), repeat)
        ours = median_time(_ours(forward, backward, x, h0, Wx, Wh, b), repeat)
        rows.append(
            Row(
                "a4",
                f"{cell} forward+backward, {N}x{T}x{D}, H={H}",
                ours,
                f"torch.nn.{cell.upper()} + autograd",
                theirs,
                "s",
            )
        )
    for hidden in (False, True):
        t0 = time.perf_counter()
        result = grade(ROOT, "a4_rnn", device="cpu", hidden=hidden)
        wall = time.perf_counter() - t0
        which = "public + hidden" if hidden else "public"
        if hidden:
            rows += slowest_checks("a4", result, wall, n=5)
        rows.append(
            Row(
                "a4",
                f"grading A4, {which} (wall)",
                wall,
                "",
                None,
                "s",
                note=f"{len(result.checks)} checks, score {result.score:g}",
            )
        )
    return rows
