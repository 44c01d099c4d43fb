"""
Given code for A3 (not part of the assignment; never taken from a submission): the softmax loss, plain SGD, and
"sandwich" layers, common chains of layers with one forward and one backward each. The sandwiches run the given
fast layers and your own Linear, ReLU, BatchNorm and SpatialBatchNorm (looked up when first used, so this file and
your files may import each other).

`fully_connected_networks` and `convolutional_networks` import these, so `fully_connected_networks.softmax_loss`,
`fully_connected_networks.sgd` and `convolutional_networks.Conv_ReLU` work as before; the grader uses this file's
copy, the kit's.
"""

from __future__ import annotations

import torch

from a3_networks.fast_layers import FastConv, FastMaxPool


def _fc():
    """Your fully_connected_networks (Linear, ReLU)."""
    from a3_networks import fully_connected_networks

    return fully_connected_networks


def _student_layers():
    """Your BatchNorm and SpatialBatchNorm."""
    from a3_networks import convolutional_networks

    return convolutional_networks.BatchNorm, convolutional_networks.SpatialBatchNorm


def softmax_loss(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """
    (Given.) The softmax (cross-entropy) loss, averaged over the batch, and its gradient.

    Inputs:
    - x: tensor of shape (N, C), the class scores; x[i, j] is the score of class j for example i.
    - y: int64 tensor of shape (N,), the labels, 0 <= y[i] < C.

    Returns a tuple of:
    - loss: 0-dim tensor, the mean of -log(softmax(x[i])[y[i]]) over the N examples.
    - dx: tensor of shape (N, C), the gradient of the loss with respect to x.
    """
    N = x.shape[0]
    rows = torch.arange(N, device=x.device)  # (N,)
    shifted = x - x.max(dim=1, keepdim=True).values  # (N, C); the shift keeps exp from overflowing
    log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()  # (N, C)
    loss = -log_probs[rows, y].mean()
    dx = log_probs.exp()  # (N, C), the probabilities
    dx[rows, y] -= 1
    dx /= N
    return loss, dx


def sgd(w: torch.Tensor, dw: torch.Tensor, config: dict | None = None) -> tuple[torch.Tensor, dict]:
    """
    (Given.) Vanilla stochastic gradient descent: next_w = w - learning_rate * dw.

    Every update rule has this signature. It returns the next weights (a new tensor here; a rule may also update
    w in place and return it) and its config, which holds the hyperparameters and any state the rule keeps
    between steps; the Solver passes the same config back at the next step for the same parameter.

    Inputs:
    - w: tensor of any shape, the current weights.
    - dw: tensor of the shape of w, the gradient of the loss with respect to w.
    - config: dict with
      - learning_rate: the step size (default 1e-2).

    Returns a tuple of:
    - next_w: tensor of the shape of w, the updated weights.
    - config: the config dict, with defaults filled in.
    """
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    next_w = w - config["learning_rate"] * dw
    return next_w, config


class Linear_ReLU:
    """(Given.) A linear layer followed by a ReLU: a "sandwich" layer chaining two primitives."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """
        Inputs:
        - x: tensor of shape (N, d_1, ..., d_k).
        - w: tensor of shape (D, M).
        - b: tensor of shape (M,).

        Returns a tuple of:
        - out: tensor of shape (N, M), ReLU(x @ w + b).
        - cache: the caches of both layers.
        """
        fc = _fc()
        a, fc_cache = fc.Linear.forward(x, w, b)  # (N, M)
        out, relu_cache = fc.ReLU.forward(a)  # (N, M)
        cache = (fc_cache, relu_cache)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Inputs:
        - dout: tensor of shape (N, M), the upstream gradient.
        - cache: as returned by forward.

        Returns a tuple of:
        - dx: tensor of shape (N, d_1, ..., d_k); dw: tensor of shape (D, M); db: tensor of shape (M,).
        """
        fc = _fc()
        fc_cache, relu_cache = cache
        da = fc.ReLU.backward(dout, relu_cache)  # (N, M)
        dx, dw, db = fc.Linear.backward(da, fc_cache)
        return dx, dw, db


class Conv_ReLU:
    """(Given.) A convolution followed by a ReLU."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, conv_param: dict) -> tuple[torch.Tensor, tuple]:
        """
        Inputs:
        - x: tensor of shape (N, C, H, W); w: (F, C, HH, WW); b: (F,); conv_param as for Conv.

        Returns a tuple of:
        - out: tensor of shape (N, F, H', W').
        - cache: the caches of both layers.
        """
        a, conv_cache = FastConv.forward(x, w, b, conv_param)  # (N, F, H', W')
        out, relu_cache = _fc().ReLU.forward(a)
        cache = (conv_cache, relu_cache)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs: dout (N, F, H', W') and the cache of forward. Returns (dx, dw, db)."""
        conv_cache, relu_cache = cache
        da = _fc().ReLU.backward(dout, relu_cache)
        dx, dw, db = FastConv.backward(da, conv_cache)
        return dx, dw, db


class Conv_ReLU_Pool:
    """(Given.) A convolution, a ReLU and a max pooling."""

    @staticmethod
    def forward(
        x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, conv_param: dict, pool_param: dict
    ) -> tuple[torch.Tensor, tuple]:
        """
        Inputs:
        - x: tensor of shape (N, C, H, W); w: (F, C, HH, WW); b: (F,); conv_param as for Conv;
          pool_param as for MaxPool.

        Returns a tuple of:
        - out: tensor of shape (N, F, H'', W''), the pooled output.
        - cache: the caches of the three layers.
        """
        a, conv_cache = FastConv.forward(x, w, b, conv_param)
        s, relu_cache = _fc().ReLU.forward(a)
        out, pool_cache = FastMaxPool.forward(s, pool_param)
        cache = (conv_cache, relu_cache, pool_cache)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs: dout (N, F, H'', W'') and the cache of forward. Returns (dx, dw, db)."""
        conv_cache, relu_cache, pool_cache = cache
        ds = FastMaxPool.backward(dout, pool_cache)
        da = _fc().ReLU.backward(ds, relu_cache)
        dx, dw, db = FastConv.backward(da, conv_cache)
        return dx, dw, db


class Linear_BatchNorm_ReLU:
    """(Given.) A linear layer, a batch normalisation and a ReLU."""

    @staticmethod
    def forward(
        x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, bn_param: dict
    ) -> tuple[torch.Tensor, tuple]:
        """
        Inputs:
        - x: tensor of shape (N, d_1, ..., d_k); w: (D, M); b: (M,); gamma, beta: (M,); bn_param as for
          BatchNorm.

        Returns a tuple of:
        - out: tensor of shape (N, M).
        - cache: the caches of the three layers.
        """
        a, fc_cache = _fc().Linear.forward(x, w, b)
        BatchNorm, _ = _student_layers()
        a_bn, bn_cache = BatchNorm.forward(a, gamma, beta, bn_param)
        out, relu_cache = _fc().ReLU.forward(a_bn)
        cache = (fc_cache, bn_cache, relu_cache)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple):
        """Inputs: dout (N, M) and the cache of forward. Returns (dx, dw, db, dgamma, dbeta)."""
        fc_cache, bn_cache, relu_cache = cache
        da_bn = _fc().ReLU.backward(dout, relu_cache)
        BatchNorm, _ = _student_layers()
        da, dgamma, dbeta = BatchNorm.backward(da_bn, bn_cache)
        dx, dw, db = _fc().Linear.backward(da, fc_cache)
        return dx, dw, db, dgamma, dbeta


class Conv_BatchNorm_ReLU:
    """(Given.) A convolution, a spatial batch normalisation and a ReLU."""

    @staticmethod
    def forward(
        x: torch.Tensor,
        w: torch.Tensor,
        b: torch.Tensor,
        gamma: torch.Tensor,
        beta: torch.Tensor,
        conv_param: dict,
        bn_param: dict,
    ) -> tuple[torch.Tensor, tuple]:
        """
        Inputs:
        - x: tensor of shape (N, C, H, W); w: (F, C, HH, WW); b, gamma, beta: (F,); conv_param as for
          Conv; bn_param as for BatchNorm.

        Returns a tuple of:
        - out: tensor of shape (N, F, H', W').
        - cache: the caches of the three layers.
        """
        a, conv_cache = FastConv.forward(x, w, b, conv_param)
        _, SpatialBatchNorm = _student_layers()
        an, bn_cache = SpatialBatchNorm.forward(a, gamma, beta, bn_param)
        out, relu_cache = _fc().ReLU.forward(an)
        cache = (conv_cache, bn_cache, relu_cache)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple):
        """Inputs: dout (N, F, H', W') and the cache of forward. Returns (dx, dw, db, dgamma, dbeta)."""
        conv_cache, bn_cache, relu_cache = cache
        dan = _fc().ReLU.backward(dout, relu_cache)
        _, SpatialBatchNorm = _student_layers()
        da, dgamma, dbeta = SpatialBatchNorm.backward(dan, bn_cache)
        dx, dw, db = FastConv.backward(da, conv_cache)
        return dx, dw, db, dgamma, dbeta


class Conv_BatchNorm_ReLU_Pool:
    """(Given.) A convolution, a spatial batch normalisation, a ReLU and a max pooling."""

    @staticmethod
    def forward(
        x: torch.Tensor,
        w: torch.Tensor,
        b: torch.Tensor,
        gamma: torch.Tensor,
        beta: torch.Tensor,
        conv_param: dict,
        bn_param: dict,
        pool_param: dict,
    ) -> tuple[torch.Tensor, tuple]:
        """
        Inputs:
        - x: tensor of shape (N, C, H, W); w: (F, C, HH, WW); b, gamma, beta: (F,); conv_param as for
          Conv; bn_param as for BatchNorm; pool_param as for MaxPool.

        Returns a tuple of:
        - out: tensor of shape (N, F, H'', W''), the pooled output.
        - cache: the caches of the four layers.
        """
        a, conv_cache = FastConv.forward(x, w, b, conv_param)
        _, SpatialBatchNorm = _student_layers()
        an, bn_cache = SpatialBatchNorm.forward(a, gamma, beta, bn_param)
        s, relu_cache = _fc().ReLU.forward(an)
        out, pool_cache = FastMaxPool.forward(s, pool_param)
        cache = (conv_cache, bn_cache, relu_cache, pool_cache)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple):
        """Inputs: dout (N, F, H'', W'') and the cache of forward. Returns (dx, dw, db, dgamma, dbeta)."""
        conv_cache, bn_cache, relu_cache, pool_cache = cache
        ds = FastMaxPool.backward(dout, pool_cache)
        dan = _fc().ReLU.backward(ds, relu_cache)
        _, SpatialBatchNorm = _student_layers()
        da, dgamma, dbeta = SpatialBatchNorm.backward(dan, bn_cache)
        dx, dw, db = FastConv.backward(da, conv_cache)
        return dx, dw, db, dgamma, dbeta
