"""Correct versions of A3's graded layers, networks and update rules: the course's building blocks.

Each entry of ORACLES has the signature and return convention of the student's function or class (see the
docstrings of a3_networks), so the grader can put it in place of a student's broken building block and judge a
network built on it (the manifest's [parts.blocks]). They compute in the dtype and on the device of their inputs,
differentiate with PyTorch's autograd (exempt here: this is not the student's code), return detached tensors, and
never call the student's code. Self-contained (torch and math only): the worker compiles this file on its own.
Staff-only: some entries are plain solutions, so the student kit leaves this file out (the checks take their
expected values from expected.py; tests/a3/test_oracles.py holds these to the reference solution).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F


def vjp(fn: Callable, tensors: list[torch.Tensor], dout: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """The gradients of sum(fn(*tensors) * dout) (of fn(*tensors) itself when dout is None, a scalar) with respect
    to each tensor, by autograd, in the tensors' own dtype and device (zeros where fn does not use a tensor)."""
    leaves = [t.detach().requires_grad_(True) for t in tensors]
    with torch.enable_grad():
        out = fn(*leaves)
        grads = torch.autograd.grad(out, leaves, grad_outputs=dout, allow_unused=True)
    return tuple(torch.zeros_like(t) if g is None else g.detach() for g, t in zip(grads, leaves))


# ---- layers ---------------------------------------------------------------------------------------


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.linear(x.reshape(x.shape[0], -1), w.t(), b)  # (N, M)


class Linear:
    @staticmethod
    def forward(x, w, b):
        return linear(x, w, b), (x, w, b)

    @staticmethod
    def backward(dout, cache):
        return vjp(linear, list(cache), dout)


class ReLU:
    @staticmethod
    def forward(x):
        return F.relu(x), x

    @staticmethod
    def backward(dout, cache):
        return dout * (cache > 0).to(dout.dtype)


class Dropout:
    @staticmethod
    def forward(x, dropout_param):
        p, mode = dropout_param["p"], dropout_param["mode"]
        if dropout_param.get("seed") is not None:
            torch.manual_seed(dropout_param["seed"])
        if mode != "train":
            return x, (dropout_param, None)
        mask = (torch.rand_like(x) >= p).to(x.dtype) / (1 - p)  # keep with probability 1 - p
        return x * mask, (dropout_param, mask)

    @staticmethod
    def backward(dout, cache):
        _, mask = cache
        return dout if mask is None else dout * mask


def conv(x, w, b, conv_param: dict) -> torch.Tensor:
    return F.conv2d(x, w, b, stride=conv_param["stride"], padding=conv_param["pad"])  # (N, F, H', W')


class Conv:
    @staticmethod
    def forward(x, w, b, conv_param):
        return conv(x, w, b, conv_param), (x, w, b, conv_param)

    @staticmethod
    def backward(dout, cache):
        x, w, b, conv_param = cache
        return vjp(lambda a, c, e: conv(a, c, e, conv_param), [x, w, b], dout)


def max_pool(x, pool_param: dict) -> torch.Tensor:
    return F.max_pool2d(x, (pool_param["pool_height"], pool_param["pool_width"]), stride=pool_param["stride"])


class MaxPool:
    @staticmethod
    def forward(x, pool_param):
        return max_pool(x, pool_param), (x, pool_param)

    @staticmethod
    def backward(dout, cache):
        x, pool_param = cache
        return vjp(lambda a: max_pool(a, pool_param), [x], dout)[0]


def batch_norm_train(x, gamma, beta, eps: float = 1e-5) -> torch.Tensor:
    """Batch normalisation of the rows of x (N, D) with the batch's mean and biased variance."""
    mean, var = x.mean(0), x.var(0, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps) * gamma + beta


def batch_norm_rows(x, gamma, beta, bn_param: dict):
    """BatchNorm.forward on rows (N, D): (out, cache), the running statistics stored back in bn_param."""
    mode, eps, momentum = bn_param["mode"], bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    D = x.shape[1]
    rm = bn_param.get("running_mean", torch.zeros(D, dtype=x.dtype, device=x.device))
    rv = bn_param.get("running_var", torch.zeros(D, dtype=x.dtype, device=x.device))
    if mode == "train":
        out = batch_norm_train(x, gamma, beta, eps)
        rm = momentum * rm + (1 - momentum) * x.mean(0)
        rv = momentum * rv + (1 - momentum) * x.var(0, unbiased=False)
        cache = (x, gamma, beta, eps)
    elif mode == "test":
        out, cache = (x - rm) / torch.sqrt(rv + eps) * gamma + beta, None
    else:
        raise ValueError(f"BatchNorm: invalid forward mode {mode!r}; expected 'train' or 'test'")
    bn_param["running_mean"], bn_param["running_var"] = rm, rv
    return out, cache


def batch_norm_rows_backward(dout, cache):
    x, gamma, beta, eps = cache
    return vjp(lambda a, g, b: batch_norm_train(a, g, b, eps), [x, gamma, beta], dout)


def as_rows(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N * H * W, C): one row per example and position, one column per channel."""
    return t.movedim(1, -1).reshape(-1, t.shape[1])


def from_rows(r: torch.Tensor, shape) -> torch.Tensor:
    N, C, H, W = shape
    return r.reshape(N, H, W, C).movedim(-1, 1)


class BatchNorm:
    forward = staticmethod(batch_norm_rows)
    backward = staticmethod(batch_norm_rows_backward)
    backward_alt = staticmethod(batch_norm_rows_backward)


class SpatialBatchNorm:
    @staticmethod
    def forward(x, gamma, beta, bn_param):
        out, cache = batch_norm_rows(as_rows(x), gamma, beta, bn_param)
        return from_rows(out, x.shape).contiguous(), (x.shape, cache)

    @staticmethod
    def backward(dout, cache):
        shape, rows_cache = cache
        dx, dgamma, dbeta = batch_norm_rows_backward(as_rows(dout), rows_cache)
        return from_rows(dx, shape).contiguous(), dgamma, dbeta


def kaiming_initializer(Din, Dout, K=None, relu=True, device="cpu", dtype=torch.float32):
    gain = 2.0 if relu else 1.0
    if K is None:
        return math.sqrt(gain / Din) * torch.randn(Din, Dout, dtype=dtype, device=device)
    return math.sqrt(gain / (Din * K * K)) * torch.randn(Dout, Din, K, K, dtype=dtype, device=device)


# ---- update rules ---------------------------------------------------------------------------------


def sgd_momentum(w, dw, config=None):
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = config["momentum"] * config.get("velocity", torch.zeros_like(w)) - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def rmsprop(w, dw, config=None):
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    cache = config.get("cache", torch.zeros_like(w))
    cache = config["decay_rate"] * cache + (1 - config["decay_rate"]) * dw * dw
    config["cache"] = cache
    return w - config["learning_rate"] * dw / (cache.sqrt() + config["epsilon"]), config


def adam(w, dw, config=None):
    config = {} if config is None else config
    for key, value in (("learning_rate", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("epsilon", 1e-8), ("t", 0)):
        config.setdefault(key, value)
    b1, b2 = config["beta1"], config["beta2"]
    t = config["t"] + 1
    m = b1 * config.get("m", torch.zeros_like(w)) + (1 - b1) * dw
    v = b2 * config.get("v", torch.zeros_like(w)) + (1 - b2) * dw * dw
    config["t"], config["m"], config["v"] = t, m, v
    step = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + config["epsilon"])
    return w - config["learning_rate"] * step, config


# ---- networks: the scores as functions of the parameters ------------------------------------------


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


POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


def three_layer_scores(p: dict, X: torch.Tensor) -> torch.Tensor:
    pad = (p["W1"].shape[2] - 1) // 2
    h = max_pool(F.relu(conv(X, p["W1"], p["b1"], {"stride": 1, "pad": pad})), POOL)
    return linear(F.relu(linear(h, p["W2"], p["b2"])), p["W3"], p["b3"])


def deep_scores(p: dict, X: torch.Tensor, max_pools, bn_params: list | None = None) -> torch.Tensor:
    """DeepConvNet: {3x3 conv pad 1 - [batchnorm] - relu - [2x2 pool]} x (L - 1) - linear. With batchnorm, each
    normalisation runs as bn_params[i] says (mode and running statistics, updated in train mode); bn_params None
    normalises with the batch's statistics."""
    L, h = count_layers(p), X
    for i in range(1, L):
        h = conv(h, p[f"W{i}"], p[f"b{i}"], {"stride": 1, "pad": 1})
        if f"gamma{i}" in p:
            param = {"mode": "train"} if bn_params is None else bn_params[i - 1]
            h = from_rows(batch_norm_rows(as_rows(h), p[f"gamma{i}"], p[f"beta{i}"], param)[0], h.shape)
        h = F.relu(h)
        if i - 1 in max_pools:
            h = max_pool(h, POOL)
    return linear(h, p[f"W{L}"], p[f"b{L}"])


def net_loss(scores: Callable, params: dict, X, y, reg: float, regularised: list[str] | None = None):
    """(loss, grads) of the mean softmax loss of scores(params, X) plus reg * the sum of squares of the weights (or
    of `regularised`), by autograd, in the parameters' dtype."""
    keys = list(params)
    weights = regularised if regularised is not None else [k for k in keys if k.startswith("W")]

    def objective(*values):
        p = dict(zip(keys, values))
        s = scores(p, X.to(values[0].dtype))
        return F.cross_entropy(s, y) + reg * sum((p[k] * p[k]).sum() for k in weights)

    leaves = [params[k].detach().requires_grad_(True) for k in keys]
    with torch.enable_grad():
        loss = objective(*leaves)
        grads = torch.autograd.grad(loss, leaves)
    return loss.detach(), {k: g.detach() for k, g in zip(keys, grads)}


def _normal(shape, weight_scale, dtype, device):
    return weight_scale * torch.randn(*shape, dtype=dtype, device=device)


class TwoLayerNet:
    def __init__(
        self,
        input_dim=3 * 32 * 32,
        hidden_dim=100,
        num_classes=10,
        weight_scale=1e-3,
        reg=0.0,
        dtype=torch.float32,
        device="cpu",
    ):
        self.reg = reg
        self.params = {
            "W1": _normal((input_dim, hidden_dim), weight_scale, dtype, device),
            "b1": torch.zeros(hidden_dim, dtype=dtype, device=device),
            "W2": _normal((hidden_dim, num_classes), weight_scale, dtype, device),
            "b2": torch.zeros(num_classes, dtype=dtype, device=device),
        }

    def loss(self, X, y=None):
        if y is None:
            return two_layer_scores(self.params, X.to(self.params["W1"].dtype))
        return net_loss(two_layer_scores, self.params, X, y, self.reg)


class FullyConnectedNet:
    def __init__(
        self,
        hidden_dims,
        input_dim=3 * 32 * 32,
        num_classes=10,
        dropout=0.0,
        reg=0.0,
        weight_scale=1e-2,
        seed=None,
        dtype=torch.float,
        device="cpu",
    ):
        self.use_dropout = dropout != 0
        self.reg, self.num_layers, self.dtype = reg, 1 + len(hidden_dims), dtype
        dims = [input_dim, *hidden_dims, num_classes]
        self.params = {}
        for i in range(1, len(dims)):
            self.params[f"W{i}"] = _normal((dims[i - 1], dims[i]), weight_scale, dtype, device)
            self.params[f"b{i}"] = torch.zeros(dims[i], dtype=dtype, device=device)
        self.dropout_param = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": dropout}
            if seed is not None:
                self.dropout_param["seed"] = seed

    def loss(self, X, y=None):
        X = X.to(self.params["W1"].dtype)
        if y is None:
            return fc_scores(self.params, X)
        masks = None
        if self.use_dropout:  # the masks Dropout.forward draws, layer by layer, as the network calls it
            self.dropout_param["mode"] = "train"
            masks = []
            for i in range(1, self.num_layers):
                shape = (X.shape[0], self.params[f"b{i}"].shape[0])
                ones = torch.ones(shape, dtype=X.dtype, device=X.device)
                masks.append(Dropout.forward(ones, self.dropout_param)[0])
        return net_loss(lambda p, X_: fc_scores(p, X_, masks), self.params, X, y, self.reg)


def _three_layer_shapes(input_dims, num_filters, filter_size, hidden_dim, num_classes):
    C, H, W = input_dims
    pad = (filter_size - 1) // 2
    hp, wp = (H + 2 * pad - filter_size + 1) // 2, (W + 2 * pad - filter_size + 1) // 2
    return {
        "W1": (num_filters, C, filter_size, filter_size),
        "b1": (num_filters,),
        "W2": (num_filters * hp * wp, hidden_dim),
        "b2": (hidden_dim,),
        "W3": (hidden_dim, num_classes),
        "b3": (num_classes,),
    }


class ThreeLayerConvNet:
    def __init__(
        self,
        input_dims=(3, 32, 32),
        num_filters=32,
        filter_size=7,
        hidden_dim=100,
        num_classes=10,
        weight_scale=1e-3,
        reg=0.0,
        dtype=torch.float,
        device="cpu",
    ):
        self.reg, self.dtype = reg, dtype
        shapes = _three_layer_shapes(input_dims, num_filters, filter_size, hidden_dim, num_classes)
        self.params = {
            k: _normal(s, weight_scale, dtype, device)
            if k.startswith("W")
            else torch.zeros(s, dtype=dtype, device=device)
            for k, s in shapes.items()
        }

    def loss(self, X, y=None):
        if y is None:
            return three_layer_scores(self.params, X.to(self.params["W1"].dtype))
        return net_loss(three_layer_scores, self.params, X, y, self.reg)


class DeepConvNet:
    def __init__(
        self,
        input_dims=(3, 32, 32),
        num_filters=(8, 8, 8, 8, 8),
        max_pools=(0, 1, 2, 3, 4),
        batchnorm=False,
        num_classes=10,
        weight_scale=1e-3,
        reg=0.0,
        weight_initializer=None,
        dtype=torch.float,
        device="cpu",
    ):
        self.num_layers, self.max_pools, self.batchnorm = len(num_filters) + 1, list(max_pools), batchnorm
        self.reg, self.dtype = reg, dtype
        init = weight_initializer or kaiming_initializer
        kaiming = isinstance(weight_scale, str) and weight_scale == "kaiming"
        C, H, W = input_dims
        self.params = {}
        for i, f in enumerate(num_filters, start=1):
            self.params[f"W{i}"] = (
                init(C, f, K=3, relu=True, device=device, dtype=dtype)
                if kaiming
                else _normal((f, C, 3, 3), weight_scale, dtype, device)
            )
            self.params[f"b{i}"] = torch.zeros(f, dtype=dtype, device=device)
            if batchnorm:
                self.params[f"gamma{i}"] = torch.ones(f, dtype=dtype, device=device)
                self.params[f"beta{i}"] = torch.zeros(f, dtype=dtype, device=device)
            C, pooled = f, i - 1 in self.max_pools
            H, W = (H // 2, W // 2) if pooled else (H, W)
        L = len(num_filters) + 1
        self.params[f"W{L}"] = (
            init(C * H * W, num_classes, relu=False, device=device, dtype=dtype)
            if kaiming
            else _normal((C * H * W, num_classes), weight_scale, dtype, device)
        )
        self.params[f"b{L}"] = torch.zeros(num_classes, dtype=dtype, device=device)
        self.bn_params = [{"mode": "train"} for _ in num_filters] if batchnorm else []

    def loss(self, X, y=None):
        X = X.to(self.params["W1"].dtype)
        mode = "test" if y is None else "train"
        for bn_param in self.bn_params:
            bn_param["mode"] = mode
        if y is None:
            return deep_scores(self.params, X, self.max_pools, self.bn_params or None)
        # the running statistics are updated once, by a forward pass outside autograd's
        with torch.no_grad():
            deep_scores(self.params, X, self.max_pools, self.bn_params or None)
        return net_loss(lambda p, X_: deep_scores(p, X_, self.max_pools), self.params, X, y, self.reg)


ORACLES = {
    "Linear": Linear,
    "ReLU": ReLU,
    "Dropout": Dropout,
    "TwoLayerNet": TwoLayerNet,
    "FullyConnectedNet": FullyConnectedNet,
    "sgd_momentum": sgd_momentum,
    "rmsprop": rmsprop,
    "adam": adam,
    "Conv": Conv,
    "MaxPool": MaxPool,
    "ThreeLayerConvNet": ThreeLayerConvNet,
    "DeepConvNet": DeepConvNet,
    "kaiming_initializer": kaiming_initializer,
    "BatchNorm": BatchNorm,
    "SpatialBatchNorm": SpatialBatchNorm,
}
