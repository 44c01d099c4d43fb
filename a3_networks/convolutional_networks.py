"""
Convolutional networks: convolution, max pooling and batch normalisation layers with hand-written
backward passes, and networks built from them.

The layers follow the contract of fully_connected_networks.py:

    out, cache = Layer.forward(x, ...)       # cache: whatever the backward pass will need
    dx, ... = Layer.backward(dout, cache)    # one gradient per tensor argument of forward, in that order

Images are laid out (N, C, H, W): N examples, C channels, height H, width W. Filters are laid out
(F, C, HH, WW): F filters, each spanning all C channels over an HH x WW window.

Your naive layers (Conv, MaxPool) are correct but slow. The networks use the given FastConv and FastMaxPool
instead (in fast_layers.py), which compute the same thing with PyTorch's own (much faster) implementations, and
the given sandwich layers (Conv_ReLU, Conv_ReLU_Pool, ... in layer_utils.py). Both files belong to the course
kit: they are imported here, and the grader uses the kit's copies, not yours.

Conventions for every function here (the grader checks them):
- return tensors in the dtype and on the device of the inputs (computing in float64 inside and converting the
  result back is fine), and leave the inputs unchanged;
- zero padding by hand or with `torch.nn.functional.pad` is fine; the naive layers may not hand their work to
  the given fast layers;
- L2 regularisation is `reg * sum(W * W)` over the weights only (never biases, gamma or beta), gradient
  `2 * reg * W`; `0.5 * reg * sum(W * W)` with gradient `reg * W` is accepted too, when the loss and every
  gradient use it.

Data and targets: the grader trains on CIFAR-10 where it is installed, else on the offline digits (scikit-learn's
8x8 digits drawn as 3x32x32 images; `grader grade` says which). create_convolutional_solver_instance must reach 71%
on CIFAR-10's test split (78% on the digits); the grader trains your Solver's choice itself, for at most 2 epochs on
the digits, within 60 s. find_overfit_parameters must make DeepConvNet([8, 16, 32, 64]) with Adam overfit 50
training images (100%; the grader accepts 49 of the 50) in 30 epochs.

Rules the grader enforces in this file (see `grader list --rules`):
- Conv may not use:
  - torch.nn.functional.conv2d, torch.conv2d, torch.nn.functional.conv_transpose2d,
    torch.conv_transpose2d, torch.convolution, torch.nn.Conv2d: it computes the convolution you are
    asked to write with loops over the output positions.
  - torch.nn.functional.unfold, torch.nn.functional.fold, torch.Tensor.unfold: it extracts every
    window for you (im2col); the naive layers walk over the windows themselves.
  - torch.nn.grad.conv2d_input, torch.nn.grad.conv2d_weight: it computes the convolution's gradient
    you are asked to write.
- MaxPool may not use:
  - torch.nn.functional.max_pool2d, torch.max_pool2d, torch.nn.functional.max_pool2d_with_indices,
    torch.nn.functional.adaptive_max_pool2d, torch.nn.functional.max_unpool2d, torch.nn.MaxPool2d:
    it computes the max pooling you are asked to write with loops over the output positions.
  - torch.nn.functional.unfold, torch.Tensor.unfold: it extracts every window for you (im2col); the
    naive layers walk over the windows themselves.
- BatchNorm may not use:
  - torch.nn.functional.batch_norm, torch.batch_norm, torch.nn.BatchNorm1d, torch.native_batch_norm:
    it computes the batch normalisation you are asked to write.
  - torch.nn.functional.instance_norm, torch.nn.functional.layer_norm,
    torch.nn.functional.group_norm, torch.instance_norm, torch.layer_norm, torch.native_layer_norm,
    torch.group_norm, torch.native_group_norm: it is a normalisation layer of PyTorch's; write the
    batch normalisation yourself.
  - torch.nn.functional.normalize: it normalises for you; compute the mean and the variance
    yourself.
- SpatialBatchNorm may not use:
  - torch.nn.functional.batch_norm, torch.batch_norm, torch.nn.BatchNorm2d, torch.native_batch_norm:
    it computes the batch normalisation you are asked to write.
  - torch.nn.functional.instance_norm, torch.nn.functional.layer_norm,
    torch.nn.functional.group_norm, torch.instance_norm, torch.layer_norm, torch.native_layer_norm,
    torch.group_norm, torch.native_group_norm: it is a normalisation layer of PyTorch's; write the
    batch normalisation yourself.
  - torch.nn.functional.normalize: it normalises for you; compute the mean and the variance
    yourself.
- every function: no autograd (requires_grad, .backward(), torch.autograd, torch.func): gradients
  are computed by hand.
- the file may use: only the modules torch, math, random, statistics, typing, abc, enum,
  collections, functools, itertools, dataclasses, a3_networks, dlcv (a use of another module holds
  back every function of the file; an import that nothing uses only earns a warning).

Your code goes where a TODO comment asks for it; leave the rest of the file as it is.
"""

from __future__ import annotations

import math

import torch

from a3_networks.fast_layers import ConvVectorized, FastConv, FastMaxPool  # noqa: F401 (given code, kept by the kit)
from a3_networks.fully_connected_networks import Linear, ReLU, adam  # noqa: F401
from a3_networks.layer_utils import (  # noqa: F401 (given code, kept by the kit)
    Conv_BatchNorm_ReLU,
    Conv_BatchNorm_ReLU_Pool,
    Conv_ReLU,
    Conv_ReLU_Pool,
    Linear_BatchNorm_ReLU,
    Linear_ReLU,
    softmax_loss,
)
from dlcv import Solver


class Conv:
    """A convolutional layer (naive implementation with loops over the output positions)."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, conv_param: dict) -> tuple[torch.Tensor, tuple]:
        """
        Forward pass of a convolutional layer.

        Each of the F filters is slid over the zero-padded input with the given stride; at every position
        the output is the sum of the elementwise product of the filter and the input window (across all C
        channels) plus the filter's bias.

        Inputs:
        - x: tensor of shape (N, C, H, W), the input images.
        - w: tensor of shape (F, C, HH, WW), the filters.
        - b: tensor of shape (F,), the biases.
        - conv_param: dict with
          - 'stride': the number of pixels between neighbouring windows, horizontally and vertically.
          - 'pad': the number of zero pixels added on every side of the input (top, bottom, left, right).

        Returns a tuple of:
        - out: tensor of shape (N, F, H', W') with
          H' = 1 + (H + 2 * pad - HH) // stride and W' = 1 + (W + 2 * pad - WW) // stride.
        - cache: (x, w, b, conv_param).
        """
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        stride, pad = conv_param["stride"], conv_param["pad"]
        H_out = 1 + (H + 2 * pad - HH) // stride
        W_out = 1 + (W + 2 * pad - WW) // stride
        out = None
        # TODO: Pad x with zeros, then for every output position (i, j) compute the outputs of all N
        # images and F filters at once from the input window that starts at (i * stride, j * stride).
        # Loops over the output positions are fine (this is the naive version).
        # BEGIN SOLUTION
        x_pad = x.new_zeros(N, C, H + 2 * pad, W + 2 * pad)  # (N, C, H + 2 pad, W + 2 pad)
        x_pad[:, :, pad : pad + H, pad : pad + W] = x
        w_flat = w.reshape(F, -1)  # (F, C * HH * WW)
        out = x.new_zeros(N, F, H_out, W_out)  # (N, F, H', W')
        for i in range(H_out):
            for j in range(W_out):
                hs, ws = i * stride, j * stride
                window = x_pad[:, :, hs : hs + HH, ws : ws + WW].reshape(N, -1)  # (N, C * HH * WW)
                out[:, :, i, j] = window @ w_flat.t() + b  # (N, F)
        # END SOLUTION
        cache = (x, w, b, conv_param)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Backward pass of a convolutional layer.

        Inputs:
        - dout: tensor of shape (N, F, H', W'), the upstream gradient.
        - cache: (x, w, b, conv_param) as stored by forward.

        Returns a tuple of:
        - dx: tensor of shape (N, C, H, W), the gradient with respect to x.
        - dw: tensor of shape (F, C, HH, WW), the gradient with respect to w.
        - db: tensor of shape (F,), the gradient with respect to b.
        """
        x, w, b, conv_param = cache
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        _, _, H_out, W_out = dout.shape
        stride, pad = conv_param["stride"], conv_param["pad"]
        dx, dw, db = None, None, None
        # TODO: Walk over the output positions as in forward. Each window of the padded input receives
        # gradient from the outputs computed from it; each filter from every window it was applied to.
        # Remove the padding from the gradient of the padded input at the end.
        # BEGIN SOLUTION
        x_pad = x.new_zeros(N, C, H + 2 * pad, W + 2 * pad)  # (N, C, H + 2 pad, W + 2 pad)
        x_pad[:, :, pad : pad + H, pad : pad + W] = x
        w_flat = w.reshape(F, -1)  # (F, C * HH * WW)
        dx_pad = torch.zeros_like(x_pad)  # (N, C, H + 2 pad, W + 2 pad)
        dw_flat = torch.zeros_like(w_flat)  # (F, C * HH * WW)
        for i in range(H_out):
            for j in range(W_out):
                hs, ws = i * stride, j * stride
                window = x_pad[:, :, hs : hs + HH, ws : ws + WW].reshape(N, -1)  # (N, C * HH * WW)
                d_out_ij = dout[:, :, i, j]  # (N, F)
                dw_flat += d_out_ij.t() @ window
                dx_pad[:, :, hs : hs + HH, ws : ws + WW] += (d_out_ij @ w_flat).reshape(N, C, HH, WW)
        dx = dx_pad[:, :, pad : pad + H, pad : pad + W]  # (N, C, H, W)
        dw = dw_flat.reshape(w.shape)  # (F, C, HH, WW)
        db = dout.sum(dim=(0, 2, 3))  # (F,)
        # END SOLUTION
        return dx, dw, db


class MaxPool:
    """A max-pooling layer (naive implementation with loops over the output positions)."""

    @staticmethod
    def forward(x: torch.Tensor, pool_param: dict) -> tuple[torch.Tensor, tuple]:
        """
        Forward pass of a max-pooling layer: the maximum of every pooling window, per image and channel.
        No padding.

        Inputs:
        - x: tensor of shape (N, C, H, W).
        - pool_param: dict with
          - 'pool_height': the height HP of each pooling window.
          - 'pool_width': the width WP of each pooling window.
          - 'stride': the number of pixels between neighbouring windows.

        Returns a tuple of:
        - out: tensor of shape (N, C, H', W') with H' = 1 + (H - HP) // stride and
          W' = 1 + (W - WP) // stride.
        - cache: (x, pool_param).
        """
        N, C, H, W = x.shape
        HP, WP, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
        H_out = 1 + (H - HP) // stride
        W_out = 1 + (W - WP) // stride
        out = None
        # TODO: For every output position (i, j), take the maximum over the window of x that starts at
        # (i * stride, j * stride), for all images and channels at once.
        # BEGIN SOLUTION
        out = x.new_zeros(N, C, H_out, W_out)  # (N, C, H', W')
        for i in range(H_out):
            for j in range(W_out):
                hs, ws = i * stride, j * stride
                out[:, :, i, j] = x[:, :, hs : hs + HP, ws : ws + WP].amax(dim=(2, 3))  # (N, C)
        # END SOLUTION
        cache = (x, pool_param)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple) -> torch.Tensor:
        """
        Backward pass of a max-pooling layer.

        Inputs:
        - dout: tensor of shape (N, C, H', W'), the upstream gradient.
        - cache: (x, pool_param) as stored by forward.

        Returns:
        - dx: tensor of shape (N, C, H, W): each output's gradient goes to the position of the maximum in
          its window (to the first one, if several entries tie), and nowhere else.
        """
        x, pool_param = cache
        N, C, H, W = x.shape
        _, _, H_out, W_out = dout.shape
        HP, WP, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
        dx = None
        # TODO: For every output position, find where in its window the maximum was and add the upstream
        # gradient there (windows may overlap when stride is smaller than the window).
        # BEGIN SOLUTION
        dx = torch.zeros_like(x)  # (N, C, H, W)
        for i in range(H_out):
            for j in range(W_out):
                hs, ws = i * stride, j * stride
                window = x[:, :, hs : hs + HP, ws : ws + WP].reshape(N, C, HP * WP)  # (N, C, HP * WP)
                argmax = window.argmax(dim=2, keepdim=True)  # (N, C, 1)
                d_window = torch.zeros_like(window)  # (N, C, HP * WP)
                d_window.scatter_(2, argmax, dout[:, :, i, j, None])
                dx[:, :, hs : hs + HP, ws : ws + WP] += d_window.reshape(N, C, HP, WP)
        # END SOLUTION
        return dx


class ThreeLayerConvNet:
    """
    A three-layer convolutional network:

        conv - relu - 2x2 max pool - linear - relu - linear - softmax

    for images of shape (C, H, W). The learnable parameters live in the dictionary self.params: 'W1', 'b1'
    for the convolution (stride 1, padding (filter_size - 1) // 2, which keeps H and W for odd filter
    sizes), 'W2', 'b2' for the hidden linear layer and 'W3', 'b3' for the output layer.
    """

    def __init__(
        self,
        input_dims: tuple[int, int, int] = (3, 32, 32),
        num_filters: int = 32,
        filter_size: int = 7,
        hidden_dim: int = 100,
        num_classes: int = 10,
        weight_scale: float = 1e-3,
        reg: float = 0.0,
        dtype: torch.dtype = torch.float,
        device: str | torch.device = "cpu",
    ):
        """
        Initialise a new network.

        Inputs:
        - input_dims: (C, H, W), the shape of one input image.
        - num_filters: F, the number of filters of the convolution.
        - filter_size: the width and height of the (square) filters.
        - hidden_dim: the number of units of the hidden linear layer.
        - num_classes: the number of classes.
        - weight_scale: the standard deviation of the random initial weights.
        - reg: the L2 regularisation strength.
        - dtype: the dtype of the parameters (float64 for gradient checks).
        - device: the device of the parameters.
        """
        self.params = {}
        self.reg = reg
        self.dtype = dtype
        C, H, W = input_dims
        # TODO: Initialise the weights (normal, mean 0, standard deviation weight_scale) and the biases
        # (zeros): W1 (F, C, filter_size, filter_size) and b1 (F,); W2 (F * H_pool * W_pool, hidden_dim)
        # and b2, with H_pool, W_pool the size after the convolution and the pooling; W3 and b3.
        # BEGIN SOLUTION
        pad = (filter_size - 1) // 2
        H_pool = (H + 2 * pad - filter_size + 1) // 2  # after the convolution, then the 2x2 pooling
        W_pool = (W + 2 * pad - filter_size + 1) // 2
        pooled_dim = num_filters * H_pool * W_pool
        self.params["W1"] = weight_scale * torch.randn(
            num_filters, C, filter_size, filter_size, dtype=dtype, device=device
        )
        self.params["b1"] = torch.zeros(num_filters, dtype=dtype, device=device)
        self.params["W2"] = weight_scale * torch.randn(pooled_dim, hidden_dim, dtype=dtype, device=device)
        self.params["b2"] = torch.zeros(hidden_dim, dtype=dtype, device=device)
        self.params["W3"] = weight_scale * torch.randn(hidden_dim, num_classes, dtype=dtype, device=device)
        self.params["b3"] = torch.zeros(num_classes, dtype=dtype, device=device)
        # END SOLUTION

    def save(self, path: str) -> None:
        """(Given.) Save the parameters and the regularisation strength to the file at path."""
        checkpoint = {"reg": self.reg, "params": self.params}
        torch.save(checkpoint, path)

    def load(self, path: str, dtype: torch.dtype = torch.float, device: str | torch.device = "cpu") -> None:
        """(Given.) Load what `save` wrote, converting the parameters to dtype on device."""
        checkpoint = torch.load(path, map_location="cpu")
        self.reg = checkpoint["reg"]
        self.dtype = dtype
        self.params = {k: v.to(dtype=dtype, device=device) for k, v in checkpoint["params"].items()}

    def loss(self, X: torch.Tensor, y: torch.Tensor | None = None):
        """
        Compute the class scores, or the loss and its gradient, for a minibatch.

        Inputs:
        - X: tensor of shape (N, C, H, W), the input images.
        - y: int64 tensor of shape (N,), the labels; None means "only predict".

        Returns:
        - If y is None: scores, a tensor of shape (N, num_classes).
        - Otherwise a tuple of:
          - loss: 0-dim tensor, the mean softmax loss plus reg * (sum(W1 * W1) + sum(W2 * W2) + sum(W3 * W3)).
          - grads: dict with the keys of self.params, grads[k] the gradient of the loss with respect to
            self.params[k] (same shape).
        """
        W1, b1 = self.params["W1"], self.params["b1"]
        W2, b2 = self.params["W2"], self.params["b2"]
        W3, b3 = self.params["W3"], self.params["b3"]
        filter_size = W1.shape[2]
        conv_param = {"stride": 1, "pad": (filter_size - 1) // 2}
        pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}

        scores = None
        # TODO: Compute the class scores with the sandwich layers Conv_ReLU_Pool and Linear_ReLU and a
        # final Linear, keeping the caches.
        # BEGIN SOLUTION
        pooled, cache1 = Conv_ReLU_Pool.forward(X, W1, b1, conv_param, pool_param)  # (N, F, H/2, W/2)
        hidden, cache2 = Linear_ReLU.forward(pooled, W2, b2)  # (N, hidden_dim)
        scores, cache3 = Linear.forward(hidden, W3, b3)  # (N, num_classes)
        # END SOLUTION
        if y is None:
            return scores

        loss, grads = 0.0, {}
        # TODO: Compute the loss (softmax_loss plus the L2 regularisation of W1, W2 and W3) and the
        # gradients of every parameter, with the backward passes in reverse order.
        # BEGIN SOLUTION
        loss, dscores = softmax_loss(scores, y)
        loss = loss + self.reg * ((W1 * W1).sum() + (W2 * W2).sum() + (W3 * W3).sum())
        dhidden, dW3, grads["b3"] = Linear.backward(dscores, cache3)
        dpooled, dW2, grads["b2"] = Linear_ReLU.backward(dhidden, cache2)
        _, dW1, grads["b1"] = Conv_ReLU_Pool.backward(dpooled, cache1)
        grads["W1"] = dW1 + 2 * self.reg * W1
        grads["W2"] = dW2 + 2 * self.reg * W2
        grads["W3"] = dW3 + 2 * self.reg * W3
        # END SOLUTION
        return loss, grads


class DeepConvNet:
    """
    A convolutional network with any number of convolutional layers, optional batch normalisation and
    max pooling, and a linear output layer:

        {conv - [batchnorm] - relu - [pool]} x (L - 1) - linear - softmax

    Every convolution is 3x3 with stride 1 and padding 1 (it keeps H and W); every pooling is 2x2 with
    stride 2 (it halves H and W). The learnable parameters live in the dictionary self.params: 'W1', 'b1'
    for the first convolution, ..., 'W{L-1}', 'b{L-1}' for the last, 'WL', 'bL' for the linear layer, and
    with batchnorm 'gamma1', 'beta1', ..., 'gamma{L-1}', 'beta{L-1}' for the batch normalisations.
    """

    def __init__(
        self,
        input_dims: tuple[int, int, int] = (3, 32, 32),
        num_filters: list[int] = [8, 8, 8, 8, 8],  # noqa: B006 - the course's signature; never modified
        max_pools: list[int] = [0, 1, 2, 3, 4],  # noqa: B006
        batchnorm: bool = False,
        num_classes: int = 10,
        weight_scale: float | str = 1e-3,
        reg: float = 0.0,
        weight_initializer=None,
        dtype: torch.dtype = torch.float,
        device: str | torch.device = "cpu",
    ):
        """
        Initialise a new network.

        Inputs:
        - input_dims: (C, H, W), the shape of one input image.
        - num_filters: list of L - 1 ints, the number of filters of each convolutional layer.
        - max_pools: list of the (0-based) indices of the convolutional layers followed by a max pooling.
        - batchnorm: whether to put a batch normalisation after each convolution.
        - num_classes: the number of classes.
        - weight_scale: the standard deviation of the random initial weights, or the string 'kaiming' for
          Kaiming initialisation (see kaiming_initializer).
        - reg: the L2 regularisation strength.
        - weight_initializer: the function used when weight_scale is 'kaiming', with the signature of
          kaiming_initializer; None means kaiming_initializer.
        - dtype: the dtype of the parameters (float64 for gradient checks).
        - device: the device of the parameters.
        """
        self.params = {}
        self.num_layers = len(num_filters) + 1
        self.max_pools = list(max_pools)
        self.batchnorm = batchnorm
        self.reg = reg
        self.dtype = dtype
        if weight_initializer is None:
            weight_initializer = kaiming_initializer
        C, H, W = input_dims
        # TODO: Initialise Wi (num_filters[i-1], channels in, 3, 3) and bi (zeros) for each convolution i, with
        # gammai (ones) and betai (zeros) if batchnorm, and WL, bL for the final linear layer. Weights are
        # weight_scale * randn, or from weight_initializer(...) when weight_scale == 'kaiming'.
        # BEGIN SOLUTION
        kaiming = isinstance(weight_scale, str) and weight_scale == "kaiming"
        channels = C
        for i, F in enumerate(num_filters, start=1):
            if kaiming:
                w = weight_initializer(channels, F, K=3, relu=True, device=device, dtype=dtype)
            else:
                w = weight_scale * torch.randn(F, channels, 3, 3, dtype=dtype, device=device)
            self.params[f"W{i}"] = w
            self.params[f"b{i}"] = torch.zeros(F, dtype=dtype, device=device)
            if batchnorm:
                self.params[f"gamma{i}"] = torch.ones(F, dtype=dtype, device=device)
                self.params[f"beta{i}"] = torch.zeros(F, dtype=dtype, device=device)
            channels = F
            if i - 1 in self.max_pools:
                H, W = H // 2, W // 2
        L = self.num_layers
        flat_dim = channels * H * W
        if kaiming:
            w = weight_initializer(flat_dim, num_classes, relu=False, device=device, dtype=dtype)
        else:
            w = weight_scale * torch.randn(flat_dim, num_classes, dtype=dtype, device=device)
        self.params[f"W{L}"] = w
        self.params[f"b{L}"] = torch.zeros(num_classes, dtype=dtype, device=device)
        # END SOLUTION

        # One bn_param per batch normalisation, to hold its mode and running statistics.
        self.bn_params = []
        if self.batchnorm:
            self.bn_params = [{"mode": "train"} for _ in range(len(num_filters))]

        # Check that we got the right number of parameters, on the right device and with the right dtype.
        params_per_macro_layer = 4 if self.batchnorm else 2
        num_params = params_per_macro_layer * len(num_filters) + 2
        assert len(self.params) == num_params, (
            f"DeepConvNet: self.params has {len(self.params)} entries; expected {num_params}"
        )
        for k, param in self.params.items():
            assert param.device.type == torch.device(device).type, (
                f"DeepConvNet: param {k} is on {param.device}; expected {device}"
            )
            assert param.dtype == dtype, f"DeepConvNet: param {k} has dtype {param.dtype}; expected {dtype}"

    def save(self, path: str) -> None:
        """(Given.) Save the parameters, the settings and the batchnorm statistics to the file at path."""
        checkpoint = {
            "reg": self.reg,
            "params": self.params,
            "num_layers": self.num_layers,
            "max_pools": self.max_pools,
            "batchnorm": self.batchnorm,
            "bn_params": self.bn_params,
        }
        torch.save(checkpoint, path)

    def load(self, path: str, dtype: torch.dtype = torch.float, device: str | torch.device = "cpu") -> None:
        """(Given.) Load what `save` wrote, converting the parameters and statistics to dtype on device."""
        checkpoint = torch.load(path, map_location="cpu")
        self.reg = checkpoint["reg"]
        self.num_layers = checkpoint["num_layers"]
        self.max_pools = checkpoint["max_pools"]
        self.batchnorm = checkpoint["batchnorm"]
        self.dtype = dtype
        self.params = {k: v.to(dtype=dtype, device=device) for k, v in checkpoint["params"].items()}
        self.bn_params = [
            {k: v.to(dtype=dtype, device=device) if torch.is_tensor(v) else v for k, v in bn_param.items()}
            for bn_param in checkpoint["bn_params"]
        ]

    def loss(self, X: torch.Tensor, y: torch.Tensor | None = None):
        """
        Compute the class scores, or the loss and its gradient, for a minibatch.

        Batch normalisation runs in 'test' mode (with its running statistics) when y is None, in 'train'
        mode otherwise.

        Inputs:
        - X: tensor of shape (N, C, H, W), the input images.
        - y: int64 tensor of shape (N,), the labels; None means "only predict".

        Returns:
        - If y is None: scores, a tensor of shape (N, num_classes).
        - Otherwise a tuple of:
          - loss: 0-dim tensor, the mean softmax loss plus reg times the sum of sum(Wi * Wi) over all the
            weights (not biases, gammas or betas).
          - grads: dict with the keys of self.params, grads[k] the gradient of the loss with respect to
            self.params[k] (same shape).
        """
        mode = "test" if y is None else "train"
        for bn_param in self.bn_params:
            bn_param["mode"] = mode
        conv_param = {"stride": 1, "pad": 1}  # 3x3 filters: keeps H and W
        pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}

        scores = None
        # TODO: Compute the class scores: convolutional layer i (0-based) is Conv_ReLU, or Conv_BatchNorm_ReLU
        # with self.bn_params[i] when self.batchnorm, in its _Pool version when i is in self.max_pools; then
        # the final Linear. Keep every cache.
        # BEGIN SOLUTION
        caches = []
        h = X  # (N, C, H, W), then the output of each block
        for i in range(self.num_layers - 1):
            w, b = self.params[f"W{i + 1}"], self.params[f"b{i + 1}"]
            pool = i in self.max_pools
            if self.batchnorm:
                gamma, beta = self.params[f"gamma{i + 1}"], self.params[f"beta{i + 1}"]
                bn_param = self.bn_params[i]
                if pool:
                    h, cache = Conv_BatchNorm_ReLU_Pool.forward(h, w, b, gamma, beta, conv_param, bn_param, pool_param)
                else:
                    h, cache = Conv_BatchNorm_ReLU.forward(h, w, b, gamma, beta, conv_param, bn_param)
            else:
                if pool:
                    h, cache = Conv_ReLU_Pool.forward(h, w, b, conv_param, pool_param)
                else:
                    h, cache = Conv_ReLU.forward(h, w, b, conv_param)
            caches.append(cache)
        L = self.num_layers
        scores, last_cache = Linear.forward(h, self.params[f"W{L}"], self.params[f"b{L}"])  # (N, num_classes)
        # END SOLUTION
        if y is None:
            return scores

        loss, grads = 0, {}
        # TODO: Compute the loss (softmax_loss plus the L2 regularisation of every Wi) and the gradients
        # of every parameter, with the backward passes of the sandwiches in reverse order.
        # BEGIN SOLUTION
        loss, dh = softmax_loss(scores, y)
        dh, grads[f"W{L}"], grads[f"b{L}"] = Linear.backward(dh, last_cache)
        for i in range(L - 2, -1, -1):
            pool = i in self.max_pools
            if self.batchnorm:
                layer = Conv_BatchNorm_ReLU_Pool if pool else Conv_BatchNorm_ReLU
                dh, dw, db, dgamma, dbeta = layer.backward(dh, caches[i])
                grads[f"gamma{i + 1}"], grads[f"beta{i + 1}"] = dgamma, dbeta
            else:
                layer = Conv_ReLU_Pool if pool else Conv_ReLU
                dh, dw, db = layer.backward(dh, caches[i])
            grads[f"W{i + 1}"], grads[f"b{i + 1}"] = dw, db
        for i in range(1, L + 1):
            W = self.params[f"W{i}"]
            loss = loss + self.reg * (W * W).sum()
            grads[f"W{i}"] = grads[f"W{i}"] + 2 * self.reg * W
        # END SOLUTION
        return loss, grads


def find_overfit_parameters() -> tuple[float, float]:
    """
    The weight scale and learning rate with which DeepConvNet(num_filters=[8, 16, 32, 64],
    max_pools=[0, 1, 2, 3]) and Adam, batch size 10, reach 100% training accuracy on 50 training
    examples within 30 epochs.

    Returns a tuple of:
    - weight_scale: float, the standard deviation of the initial weights.
    - learning_rate: float, Adam's learning rate.
    """
    weight_scale = 2e-3
    learning_rate = 1e-5
    # TODO: Set weight_scale and learning_rate (try a few values of each, on a log scale).
    # BEGIN SOLUTION
    weight_scale = 1e-1
    learning_rate = 1e-3
    # END SOLUTION
    return weight_scale, learning_rate


def create_convolutional_solver_instance(data_dict: dict, dtype: torch.dtype, device: str | torch.device) -> Solver:
    """
    Build a Solver that trains a DeepConvNet as well as possible within a time limit (the notebook calls
    solver.train(time_limit=60); its target on CIFAR-10, on a GPU, is 71% validation accuracy).

    Inputs:
    - data_dict: dict with 'X_train' (N_train, 3, 32, 32), 'y_train' (N_train,), 'X_val' and 'y_val',
      as returned by dlcv.preprocess_cifar10(flatten=False).
    - dtype: the dtype of the model's parameters (that of the data).
    - device: the device of the model's parameters and of the training.

    Returns:
    - solver: a Solver, not yet trained.
    """
    solver = None
    # TODO: Create a DeepConvNet (dtype and device as given; batchnorm and Kaiming initialisation help)
    # and a Solver that trains it on data_dict with a good update rule and hyperparameters.
    # BEGIN SOLUTION
    input_dims = tuple(data_dict["X_train"].shape[1:])
    model = DeepConvNet(
        input_dims=input_dims,
        num_classes=10,
        num_filters=[32, 64, 128],
        max_pools=[0, 1, 2],
        batchnorm=True,
        weight_scale="kaiming",
        reg=1e-5,
        dtype=dtype,
        device=device,
    )
    solver = Solver(
        model,
        data_dict,
        update_rule=adam,
        optim_config={"learning_rate": 2e-3},
        lr_decay=0.9,
        num_epochs=10,
        batch_size=128,
        print_every=50,
        device=device,
        verbose=False,
    )
    # END SOLUTION
    return solver


def kaiming_initializer(
    Din: int,
    Dout: int,
    K: int | None = None,
    relu: bool = True,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """
    Kaiming initialisation: random normal weights with mean 0 and variance gain / fan_in, where gain is 2
    for a layer followed by a ReLU (half its inputs are zeroed) and 1 otherwise, and fan_in is the number
    of inputs of one output unit. This keeps the variance of the activations roughly constant from layer
    to layer.

    Inputs:
    - Din, Dout: the number of input and output dimensions (channels, for a convolution).
    - K: None for a linear layer; the filter size (K x K filters) for a convolutional layer.
    - relu: whether a ReLU follows the layer (gain 2) or not (gain 1).
    - device, dtype: of the weights.

    Returns:
    - weight: tensor of shape (Din, Dout) for a linear layer (fan_in = Din), or (Dout, Din, K, K) for a
      convolutional layer (fan_in = Din * K * K).
    """
    gain = 2.0 if relu else 1.0
    weight = None
    if K is None:
        # TODO: The weights of a linear layer, shape (Din, Dout), fan_in = Din.
        # BEGIN SOLUTION
        weight = math.sqrt(gain / Din) * torch.randn(Din, Dout, dtype=dtype, device=device)
        # END SOLUTION
    else:
        # TODO: The weights of a convolutional layer, shape (Dout, Din, K, K), fan_in = Din * K * K.
        # BEGIN SOLUTION
        weight = math.sqrt(gain / (Din * K * K)) * torch.randn(Dout, Din, K, K, dtype=dtype, device=device)
        # END SOLUTION
    return weight


class BatchNorm:
    """
    Batch normalisation over the N examples of a batch, for each of the D features:

        out = gamma * (x - mean) / sqrt(var + eps) + beta

    In 'train' mode mean and var are those of the batch (var is the biased variance, dividing by N) and
    running averages of them are kept in bn_param; in 'test' mode those running averages are used.
    """

    @staticmethod
    def forward(
        x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, bn_param: dict
    ) -> tuple[torch.Tensor, tuple | None]:
        """
        Forward pass of batch normalisation.

        In 'train' mode, the running statistics are updated as
            running_mean = momentum * running_mean + (1 - momentum) * batch_mean
            running_var = momentum * running_var + (1 - momentum) * batch_var
        and stored back in bn_param (as new tensors; the old ones are not changed in place).

        Inputs:
        - x: tensor of shape (N, D).
        - gamma: tensor of shape (D,), the scale.
        - beta: tensor of shape (D,), the shift.
        - bn_param: dict with
          - 'mode': 'train' or 'test' (required).
          - 'eps': the constant added to the variance (default 1e-5).
          - 'momentum': the decay of the running averages (default 0.9).
          - 'running_mean', 'running_var': tensors of shape (D,) (default zeros), updated in train mode.

        Returns a tuple of:
        - out: tensor of shape (N, D).
        - cache: what the backward passes need (train mode); None in test mode.
        """
        mode = bn_param["mode"]
        eps = bn_param.get("eps", 1e-5)
        momentum = bn_param.get("momentum", 0.9)
        N, D = x.shape
        running_mean = bn_param.get("running_mean", torch.zeros(D, dtype=x.dtype, device=x.device))  # (D,)
        running_var = bn_param.get("running_var", torch.zeros(D, dtype=x.dtype, device=x.device))  # (D,)

        out, cache = None, None
        if mode == "train":
            # TODO: Normalise x with the batch mean and (biased) variance, scale by gamma, shift by beta,
            # and update running_mean and running_var as in the docstring. Store in cache what the
            # backward passes will need.
            # BEGIN SOLUTION
            mean = x.mean(dim=0)  # (D,)
            x_centered = x - mean  # (N, D)
            var = (x_centered * x_centered).mean(dim=0)  # (D,), biased: divides by N
            std = (var + eps).sqrt()  # (D,)
            x_hat = x_centered / std  # (N, D)
            out = gamma * x_hat + beta  # (N, D)
            running_mean = momentum * running_mean + (1 - momentum) * mean
            running_var = momentum * running_var + (1 - momentum) * var
            cache = (x_hat, x_centered, std, gamma)
            # END SOLUTION
        elif mode == "test":
            # TODO: Normalise x with the running mean and variance, then scale by gamma and shift by beta.
            # BEGIN SOLUTION
            x_hat = (x - running_mean) / (running_var + eps).sqrt()  # (N, D)
            out = gamma * x_hat + beta  # (N, D)
            # END SOLUTION
        else:
            raise ValueError(f"BatchNorm: invalid forward mode {mode!r}; expected 'train' or 'test'")

        bn_param["running_mean"] = running_mean
        bn_param["running_var"] = running_var
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Backward pass of batch normalisation (train mode), step by step: walk back through the
        computation graph of forward (centering, variance, normalisation, scale and shift) one node at a
        time.

        Inputs:
        - dout: tensor of shape (N, D), the upstream gradient.
        - cache: as stored by forward in train mode.

        Returns a tuple of:
        - dx: tensor of shape (N, D), the gradient with respect to x.
        - dgamma: tensor of shape (D,), the gradient with respect to gamma.
        - dbeta: tensor of shape (D,), the gradient with respect to beta.
        """
        N, D = dout.shape
        dx, dgamma, dbeta = None, None, None
        # TODO: Backpropagate through each step of the forward pass in reverse order. Remember that the
        # mean and the variance depend on every example of the batch.
        # BEGIN SOLUTION
        x_hat, x_centered, std, gamma = cache
        dbeta = dout.sum(dim=0)  # (D,)
        dgamma = (dout * x_hat).sum(dim=0)  # (D,)
        dx_hat = dout * gamma  # (N, D)
        # x_hat = x_centered * inv_std, with inv_std = 1 / std
        inv_std = 1 / std  # (D,)
        dinv_std = (dx_hat * x_centered).sum(dim=0)  # (D,)
        dx_centered = dx_hat * inv_std  # (N, D), the path through the numerator
        # inv_std = 1 / std, std = sqrt(var + eps)
        dstd = -dinv_std * inv_std * inv_std  # (D,)
        dvar = dstd * 0.5 * inv_std  # (D,)
        # var = mean(x_centered ** 2) over the batch
        dx_centered = dx_centered + 2 * x_centered * dvar / N  # (N, D), plus the path through var
        # x_centered = x - mean, mean = mean(x) over the batch
        dmean = -dx_centered.sum(dim=0)  # (D,)
        dx = dx_centered + dmean / N  # (N, D)
        # END SOLUTION
        return dx, dgamma, dbeta

    @staticmethod
    def backward_alt(dout: torch.Tensor, cache: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Backward pass of batch normalisation (train mode), in closed form: simplify the gradient on paper
        to a single expression for dx in terms of dout, x_hat, gamma, the standard deviation, dgamma and
        dbeta. Same inputs and outputs as `backward`, and it must agree with it.

        Inputs:
        - dout: tensor of shape (N, D), the upstream gradient.
        - cache: as stored by forward in train mode.

        Returns a tuple of:
        - dx: tensor of shape (N, D); dgamma: tensor of shape (D,); dbeta: tensor of shape (D,).
        """
        N, D = dout.shape
        dx, dgamma, dbeta = None, None, None
        # TODO: Compute dbeta and dgamma, then dx with one expression (no step-by-step walk).
        # BEGIN SOLUTION
        x_hat, _, std, gamma = cache
        dbeta = dout.sum(dim=0)  # (D,)
        dgamma = (dout * x_hat).sum(dim=0)  # (D,)
        dx = (gamma / (N * std)) * (N * dout - dbeta - x_hat * dgamma)  # (N, D)
        # END SOLUTION
        return dx, dgamma, dbeta


class SpatialBatchNorm:
    """
    Batch normalisation for images: statistics over the N examples and all H x W positions, separately
    for each of the C channels (each channel is one "feature").
    """

    @staticmethod
    def forward(
        x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, bn_param: dict
    ) -> tuple[torch.Tensor, tuple | None]:
        """
        Forward pass of spatial batch normalisation.

        Inputs:
        - x: tensor of shape (N, C, H, W).
        - gamma: tensor of shape (C,), the scale per channel.
        - beta: tensor of shape (C,), the shift per channel.
        - bn_param: as for BatchNorm.forward, with running statistics of shape (C,).

        Returns a tuple of:
        - out: tensor of shape (N, C, H, W).
        - cache: what the backward pass needs.
        """
        N, C, H, W = x.shape
        out, cache = None, None
        # TODO: Rearrange x so that every (example, position) is a row and every channel a column, use
        # BatchNorm.forward on that, and rearrange the result back to (N, C, H, W).
        # BEGIN SOLUTION
        x_rows = x.permute(0, 2, 3, 1).reshape(N * H * W, C)  # (N * H * W, C)
        out_rows, cache = BatchNorm.forward(x_rows, gamma, beta, bn_param)  # (N * H * W, C)
        out = out_rows.reshape(N, H, W, C).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
        # END SOLUTION
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Backward pass of spatial batch normalisation.

        Inputs:
        - dout: tensor of shape (N, C, H, W), the upstream gradient.
        - cache: as stored by forward.

        Returns a tuple of:
        - dx: tensor of shape (N, C, H, W); dgamma: tensor of shape (C,); dbeta: tensor of shape (C,).
        """
        N, C, H, W = dout.shape
        dx, dgamma, dbeta = None, None, None
        # TODO: Rearrange dout as in forward, use a BatchNorm backward pass, and rearrange dx back.
        # BEGIN SOLUTION
        dout_rows = dout.permute(0, 2, 3, 1).reshape(N * H * W, C)  # (N * H * W, C)
        dx_rows, dgamma, dbeta = BatchNorm.backward_alt(dout_rows, cache)  # (N * H * W, C)
        dx = dx_rows.reshape(N, H, W, C).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
        # END SOLUTION
        return dx, dgamma, dbeta
