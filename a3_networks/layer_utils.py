"""
Given "sandwich" layers for A3 (not part of the assignment; not taken from a submission): common chains of
layers with one forward and one backward each. They run the given fast layers and your own ReLU, BatchNorm and
SpatialBatchNorm (imported when first used, so this file and `convolutional_networks` may import each other).

`convolutional_networks` imports these classes, so `convolutional_networks.Conv_ReLU` works as before.
"""

from __future__ import annotations

import torch

from a3_networks.fast_layers import FastConv, FastMaxPool
from a3_networks.fully_connected_networks import Linear, ReLU


def _student_layers():
    """Your BatchNorm and SpatialBatchNorm (convolutional_networks imports this module at its top)."""
    from a3_networks import convolutional_networks

    return convolutional_networks.BatchNorm, convolutional_networks.SpatialBatchNorm


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
        out, relu_cache = ReLU.forward(a)
        cache = (conv_cache, relu_cache)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs: dout (N, F, H', W') and the cache of forward. Returns (dx, dw, db)."""
        conv_cache, relu_cache = cache
        da = ReLU.backward(dout, relu_cache)
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
        s, relu_cache = ReLU.forward(a)
        out, pool_cache = FastMaxPool.forward(s, pool_param)
        cache = (conv_cache, relu_cache, pool_cache)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs: dout (N, F, H'', W'') and the cache of forward. Returns (dx, dw, db)."""
        conv_cache, relu_cache, pool_cache = cache
        ds = FastMaxPool.backward(dout, pool_cache)
        da = ReLU.backward(ds, relu_cache)
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
        a, fc_cache = Linear.forward(x, w, b)
        BatchNorm, _ = _student_layers()
        a_bn, bn_cache = BatchNorm.forward(a, gamma, beta, bn_param)
        out, relu_cache = ReLU.forward(a_bn)
        cache = (fc_cache, bn_cache, relu_cache)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple):
        """Inputs: dout (N, M) and the cache of forward. Returns (dx, dw, db, dgamma, dbeta)."""
        fc_cache, bn_cache, relu_cache = cache
        da_bn = ReLU.backward(dout, relu_cache)
        BatchNorm, _ = _student_layers()
        da, dgamma, dbeta = BatchNorm.backward(da_bn, bn_cache)
        dx, dw, db = Linear.backward(da, fc_cache)
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
        out, relu_cache = ReLU.forward(an)
        cache = (conv_cache, bn_cache, relu_cache)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple):
        """Inputs: dout (N, F, H', W') and the cache of forward. Returns (dx, dw, db, dgamma, dbeta)."""
        conv_cache, bn_cache, relu_cache = cache
        dan = ReLU.backward(dout, relu_cache)
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
        s, relu_cache = ReLU.forward(an)
        out, pool_cache = FastMaxPool.forward(s, pool_param)
        cache = (conv_cache, bn_cache, relu_cache, pool_cache)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple):
        """Inputs: dout (N, F, H'', W'') and the cache of forward. Returns (dx, dw, db, dgamma, dbeta)."""
        conv_cache, bn_cache, relu_cache, pool_cache = cache
        ds = FastMaxPool.backward(dout, pool_cache)
        dan = ReLU.backward(ds, relu_cache)
        _, SpatialBatchNorm = _student_layers()
        da, dgamma, dbeta = SpatialBatchNorm.backward(dan, bn_cache)
        dx, dw, db = FastConv.backward(da, conv_cache)
        return dx, dw, db, dgamma, dbeta
