"""The expected values of A3's checks, stated with PyTorch's own operations (F.linear, F.relu, F.conv2d,
F.max_pool2d, F.batch_norm, F.cross_entropy, torch.optim) and differentiated by autograd, in the judge. Shared by
the check files; it defines no checks. (The course's building blocks that the grader substitutes for a broken
one live in oracles.py, which is staff-only.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from grader.judging import vjp

# ---- layers ---------------------------------------------------------------------------------------


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return F.linear(x.reshape(x.shape[0], -1), w.t(), b)  # (N, M)


def conv(x, w, b, conv_param: dict) -> torch.Tensor:
    return F.conv2d(x, w, b, stride=conv_param["stride"], padding=conv_param["pad"])  # (N, F, H', W')


def max_pool(x, pool_param: dict) -> torch.Tensor:
    return F.max_pool2d(x, (pool_param["pool_height"], pool_param["pool_width"]), stride=pool_param["stride"])


def batch_norm_train(x, gamma, beta, eps: float = 1e-5) -> torch.Tensor:
    """Batch normalisation with the batch's statistics (mean and biased variance per channel, dim 1)."""
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)


def as_rows(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N * H * W, C): one row per example and position, one column per channel."""
    return t.movedim(1, -1).reshape(-1, t.shape[1])


# ---- networks: the scores as functions of the parameters ------------------------------------------

POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


def count_layers(p: dict) -> int:
    return sum(1 for k in p if k.startswith("W") and k[1:].isdigit())


def two_layer_scores(p: dict, X: torch.Tensor) -> torch.Tensor:
    return linear(F.relu(linear(X, p["W1"], p["b1"])), p["W2"], p["b2"])


def fc_scores(p: dict, X: torch.Tensor, masks: list | None = None) -> torch.Tensor:
    """FullyConnectedNet: {linear - relu - [dropout: times its mask]} x (L - 1) - linear."""
    L, h = count_layers(p), X
    for i in range(1, L):
        h = F.relu(linear(h, p[f"W{i}"], p[f"b{i}"]))
        if masks is not None:
            h = h * masks[i - 1]
    return linear(h, p[f"W{L}"], p[f"b{L}"])


def three_layer_scores(p: dict, X: torch.Tensor) -> torch.Tensor:
    pad = (p["W1"].shape[2] - 1) // 2
    h = max_pool(F.relu(conv(X, p["W1"], p["b1"], {"stride": 1, "pad": pad})), POOL)
    return linear(F.relu(linear(h, p["W2"], p["b2"])), p["W3"], p["b3"])


def deep_scores(p: dict, X: torch.Tensor, max_pools, stats: list | None = None, eps: float = 1e-5) -> torch.Tensor:
    """DeepConvNet: {3x3 conv pad 1 - [batchnorm] - relu - [2x2 pool]} x (L - 1) - linear. With batchnorm, `stats`
    None normalises with the batch's statistics (train mode), else with stats[i] = (running_mean, running_var)."""
    L, h = count_layers(p), X
    for i in range(1, L):
        h = conv(h, p[f"W{i}"], p[f"b{i}"], {"stride": 1, "pad": 1})
        if f"gamma{i}" in p:
            rm, rv = (None, None) if stats is None else stats[i - 1]
            h = F.batch_norm(h, rm, rv, p[f"gamma{i}"], p[f"beta{i}"], training=stats is None, eps=eps)
        h = F.relu(h)
        if i - 1 in max_pools:
            h = max_pool(h, POOL)
    return linear(h, p[f"W{L}"], p[f"b{L}"])


def net_loss(scores: Callable, params: dict, X, y, reg: float, regularised: list[str] | None = None):
    """(loss, grads) of the mean softmax loss of scores(params, X) plus reg * the sum of squares of the weights (or
    of `regularised`), by autograd."""
    keys = list(params)
    weights = regularised if regularised is not None else [k for k in keys if k.startswith("W")]

    def objective(*values):
        p = dict(zip(keys, values, strict=True))
        return F.cross_entropy(scores(p, X), y) + reg * sum((p[k] * p[k]).sum() for k in weights)

    grads = vjp(objective, [params[k] for k in keys])
    with torch.no_grad():
        loss = objective(*[params[k] for k in keys])
    return loss, dict(zip(keys, grads, strict=True))


# ---- update rules ---------------------------------------------------------------------------------


def torch_steps(rule: str, w0: torch.Tensor, dws: list[torch.Tensor], hyper: dict) -> list[tuple]:
    """(next_w, state in the course's names) after each step, from torch.optim's update functions (in w0's
    dtype). The functions, not the optimizer classes: those import TorchDynamo on first use, a second of the judge's
    time in every grading, for the same arithmetic."""
    from torch.optim import adam, rmsprop, sgd

    p = w0.detach().clone()
    lr = hyper["learning_rate"]
    buf: list[torch.Tensor | None] = [None]  # SGD's momentum buffer, made at the first step
    first, second, step = torch.zeros_like(p), torch.zeros_like(p), torch.zeros((), dtype=torch.float32)
    out = []
    for dw in dws:
        g = dw.detach().clone()
        if rule == "sgd_momentum":
            sgd.sgd([p], [g], buf, foreach=False, weight_decay=0.0, momentum=hyper["momentum"], lr=lr,
                    dampening=0.0, nesterov=False, maximize=False)  # fmt: skip
            # torch keeps buf = momentum * buf + dw and steps -lr * buf: the course's v = -lr * buf
            state = {"velocity": -lr * buf[0]}
        elif rule == "rmsprop":
            rmsprop.rmsprop([p], [g], [first], [], [], [step], foreach=False, lr=lr, alpha=hyper["decay_rate"],
                            eps=hyper["epsilon"], weight_decay=0.0, momentum=0.0, centered=False)  # fmt: skip
            state = {"cache": first.clone()}
        else:
            adam.adam([p], [g], [first], [second], [], [step], foreach=False, amsgrad=False, beta1=hyper["beta1"],
                      beta2=hyper["beta2"], lr=lr, weight_decay=0.0, eps=hyper["epsilon"], maximize=False)  # fmt: skip
            state = {"m": first.clone(), "v": second.clone(), "t": int(step)}
        out.append((p.detach().clone(), state))
    return out
