"""
Given fast layers for A3 (not part of the assignment; not taken from a submission).

FastConv and FastMaxPool compute the layers of `convolutional_networks.Conv` and `MaxPool` with PyTorch's own
convolution and max pooling, and let PyTorch's autograd differentiate that one operation: the only use of
autograd in this assignment's code, allowed here because this file belongs to the course kit (the grader
exempts it by its file). ConvVectorized is the im2col version, for comparison in the notebook.

`convolutional_networks` imports these classes, so `convolutional_networks.FastConv` works as before.
"""

from __future__ import annotations

import torch


class FastConv:
    """
    (Given.) The convolutional layer of `Conv`, computed by PyTorch's own convolution. The backward pass
    lets PyTorch's autograd differentiate that one operation (with FastMaxPool, the only use of autograd
    in this assignment's code, and not one you may copy into your own layers).
    """

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, conv_param: dict) -> tuple[torch.Tensor, tuple]:
        """Inputs and Returns as in `Conv.forward`; the cache holds the operation's autograd graph."""
        stride, pad = conv_param["stride"], conv_param["pad"]
        tx, tw, tb = (t.detach().requires_grad_(True) for t in (x, w, b))
        with torch.enable_grad():  # build the graph even inside torch.no_grad(), so backward always works
            out = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=pad)  # (N, F, H', W')
        cache = (tx, tw, tb, out)
        return out.detach(), cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs and Returns as in `Conv.backward`."""
        tx, tw, tb, out = cache
        dx, dw, db = torch.autograd.grad(out, (tx, tw, tb), grad_outputs=dout, retain_graph=True)
        return dx, dw, db


class FastMaxPool:
    """(Given.) The max-pooling layer of `MaxPool`, computed by PyTorch's own max pooling (see FastConv)."""

    @staticmethod
    def forward(x: torch.Tensor, pool_param: dict) -> tuple[torch.Tensor, tuple]:
        """Inputs and Returns as in `MaxPool.forward`; the cache holds the operation's autograd graph."""
        HP, WP, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
        tx = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = torch.nn.functional.max_pool2d(tx, kernel_size=(HP, WP), stride=stride)  # (N, C, H', W')
        cache = (tx, out)
        return out.detach(), cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple) -> torch.Tensor:
        """Inputs and Returns as in `MaxPool.backward`."""
        tx, out = cache
        (dx,) = torch.autograd.grad(out, tx, grad_outputs=dout, retain_graph=True)
        return dx


class ConvVectorized:
    """
    (Given, for comparison; not part of the assignment.) The convolutional layer of `Conv`, vectorised
    with "im2col": `unfold` copies every input window into a column, so the whole convolution becomes one
    matrix multiplication, and `fold` adds the columns' gradients back into place. Same inputs, outputs
    and cache as `Conv` (plus the columns); the notebook times it against the naive loops and FastConv.
    """

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, conv_param: dict) -> tuple[torch.Tensor, tuple]:
        """
        Inputs and Returns as in `Conv.forward`; the cache is (x, w, b, conv_param, cols) with cols of
        shape (N, C * HH * WW, H' * W').
        """
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        stride, pad = conv_param["stride"], conv_param["pad"]
        H_out = 1 + (H + 2 * pad - HH) // stride
        W_out = 1 + (W + 2 * pad - WW) // stride
        cols = torch.nn.functional.unfold(x, (HH, WW), padding=pad, stride=stride)  # (N, C*HH*WW, H'*W')
        out = w.reshape(F, -1) @ cols + b[:, None]  # (N, F, H'*W')
        out = out.reshape(N, F, H_out, W_out)
        cache = (x, w, b, conv_param, cols)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs and Returns as in `Conv.backward`, with the cache of `ConvVectorized.forward`."""
        x, w, b, conv_param, cols = cache
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        stride, pad = conv_param["stride"], conv_param["pad"]
        dout_flat = dout.reshape(N, F, -1)  # (N, F, H'*W')
        db = dout.sum(dim=(0, 2, 3))  # (F,)
        dw = (dout_flat @ cols.transpose(1, 2)).sum(dim=0).reshape(w.shape)  # (F, C, HH, WW)
        dcols = w.reshape(F, -1).t() @ dout_flat  # (N, C*HH*WW, H'*W')
        dx = torch.nn.functional.fold(dcols, (H, W), (HH, WW), padding=pad, stride=stride)  # (N, C, H, W)
        return dx, dw, db
