"""Correct A3 code in idioms real students use: update rules that write w (and their state) in place, a ReLU with
torch.where and a backward mask `x >= 0` (gradient 1 at exactly 0), einsum in Linear and Conv, a dropout mask drawn as
`rand < 1 - p`, naive layers whose loops live in helpers, batch norm computed in float64 and returned in the input's
dtype, SpatialBatchNorm through transpose(1, 3), and a solver that hard-codes the course's image size and classes.

Each top-level definition replaces the one of the same name in the file named by its `# file:` comment (imports are
left out: the names below are the ones those files import).
"""

import torch

from a3_networks.fully_connected_networks import TwoLayerNet
from dlcv import Solver

# file: a3_networks/fully_connected_networks.py


class Linear:
    @staticmethod
    def forward(x, w, b):
        out = torch.einsum("nd,dm->nm", x.reshape(x.shape[0], -1), w) + b
        return out, (x, w, b)

    @staticmethod
    def backward(dout, cache):
        x, w, b = cache
        dx = torch.einsum("nm,dm->nd", dout, w).reshape(x.shape)
        dw = torch.einsum("nd,nm->dm", x.reshape(x.shape[0], -1), dout)
        return dx, dw, torch.einsum("nm->m", dout)


class ReLU:
    @staticmethod
    def forward(x):
        return torch.where(x > 0, x, torch.zeros_like(x)), x

    @staticmethod
    def backward(dout, cache):
        return dout * (cache >= 0)  # the gradient at exactly 0 taken as 1


class Dropout:
    @staticmethod
    def forward(x, dropout_param):
        p, mode = dropout_param["p"], dropout_param["mode"]
        if "seed" in dropout_param and dropout_param["seed"] is not None:
            torch.manual_seed(dropout_param["seed"])
        mask = None
        if mode == "train":
            mask = (torch.rand(x.shape, device=x.device, dtype=x.dtype) < 1 - p) / (1 - p)
            out = x * mask
        else:
            out = x
        return out, (dropout_param, mask)

    @staticmethod
    def backward(dout, cache):
        dropout_param, mask = cache
        if dropout_param["mode"] == "train":
            return dout * mask
        return dout


def sgd_momentum(w, dw, config=None):
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = config.setdefault("velocity", torch.zeros_like(w))
    v.mul_(config["momentum"]).sub_(config["learning_rate"] * dw)  # the velocity, in place
    w += v  # w, in place
    return w, config


def rmsprop(w, dw, config=None):
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("cache", torch.zeros_like(w))
    config["cache"].mul_(config["decay_rate"]).addcmul_(dw, dw, value=1 - config["decay_rate"])
    w.addcdiv_(dw, config["cache"].sqrt() + config["epsilon"], value=-config["learning_rate"])
    return w, config


def adam(w, dw, config=None):
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("m", torch.zeros_like(w))
    config.setdefault("v", torch.zeros_like(w))
    config.setdefault("t", 0)
    config["t"] += 1
    config["m"].mul_(config["beta1"]).add_(dw, alpha=1 - config["beta1"])
    config["v"].mul_(config["beta2"]).addcmul_(dw, dw, value=1 - config["beta2"])
    m_hat = config["m"] / (1 - config["beta1"] ** config["t"])
    v_hat = config["v"] / (1 - config["beta2"] ** config["t"])
    w -= config["learning_rate"] * m_hat / (torch.sqrt(v_hat) + config["epsilon"])
    return w, config


def create_solver_instance(data_dict, dtype, device):
    model = TwoLayerNet(
        input_dim=3 * 32 * 32, hidden_dim=200, num_classes=10, weight_scale=1e-2, reg=1e-4, dtype=dtype, device=device
    )
    return Solver(
        model,
        data_dict,
        update_rule="sgd",
        optim_config={"learning_rate": 2e-1},
        lr_decay=0.95,
        num_epochs=20,
        batch_size=100,
        device=device,
        verbose=False,
    )


# file: a3_networks/convolutional_networks.py


def _conv_window(x_pad, i, j, stride, HH, WW):
    return x_pad[:, :, i * stride : i * stride + HH, j * stride : j * stride + WW]


class Conv:
    @staticmethod
    def forward(x, w, b, conv_param):
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        stride, pad = conv_param["stride"], conv_param["pad"]
        H_out, W_out = 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride
        x_pad = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        out = torch.zeros(N, F, H_out, W_out, dtype=x.dtype, device=x.device)
        for i in range(H_out):
            for j in range(W_out):
                out[:, :, i, j] = torch.einsum("nchw,fchw->nf", _conv_window(x_pad, i, j, stride, HH, WW), w) + b
        return out, (x, w, b, conv_param)

    @staticmethod
    def backward(dout, cache):
        x, w, b, conv_param = cache
        stride, pad = conv_param["stride"], conv_param["pad"]
        HH, WW = w.shape[2:]
        x_pad = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dx_pad, dw = torch.zeros_like(x_pad), torch.zeros_like(w)
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                g = dout[:, :, i, j]
                dw += torch.einsum("nf,nchw->fchw", g, _conv_window(x_pad, i, j, stride, HH, WW))
                _conv_window(dx_pad, i, j, stride, HH, WW).add_(torch.einsum("nf,fchw->nchw", g, w))
        H, W = x.shape[2:]
        return dx_pad[:, :, pad : pad + H, pad : pad + W], dw, dout.sum(dim=(0, 2, 3))


def _pool_windows(x, HP, WP, stride, H_out, W_out):
    for i in range(H_out):
        for j in range(W_out):
            yield i, j, x[:, :, i * stride : i * stride + HP, j * stride : j * stride + WP]


class MaxPool:
    @staticmethod
    def forward(x, pool_param):
        N, C, H, W = x.shape
        HP, WP, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
        H_out, W_out = 1 + (H - HP) // stride, 1 + (W - WP) // stride
        out = x.new_empty(N, C, H_out, W_out)
        for i, j, win in _pool_windows(x, HP, WP, stride, H_out, W_out):
            out[:, :, i, j] = win.reshape(N, C, -1).max(dim=2).values
        return out, (x, pool_param)

    @staticmethod
    def backward(dout, cache):
        x, pool_param = cache
        HP, WP, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
        dx = torch.zeros_like(x)
        for i, j, win in _pool_windows(x, HP, WP, stride, dout.shape[2], dout.shape[3]):
            mask = win == win.amax(dim=(2, 3), keepdim=True)  # no ties in random inputs
            dx[:, :, i * stride : i * stride + HP, j * stride : j * stride + WP] += mask * dout[:, :, i, j, None, None]
        return dx


class BatchNorm:
    @staticmethod
    def forward(x, gamma, beta, bn_param):
        mode = bn_param["mode"]
        eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
        D = x.shape[1]
        running_mean = bn_param.get("running_mean", torch.zeros(D, dtype=x.dtype, device=x.device))
        running_var = bn_param.get("running_var", torch.zeros(D, dtype=x.dtype, device=x.device))
        cache = None
        if mode == "train":
            xd = x.double()  # float64 inside, the input's dtype out
            mean, var = xd.mean(0), torch.var(xd, dim=0, unbiased=False)
            x_hat = (xd - mean) / torch.sqrt(var + eps)
            out = (gamma.double() * x_hat + beta.double()).to(x.dtype)
            running_mean = momentum * running_mean + (1 - momentum) * mean.to(x.dtype)
            running_var = momentum * running_var + (1 - momentum) * var.to(x.dtype)
            cache = (x_hat, torch.sqrt(var + eps), gamma)
        elif mode == "test":
            out = (x - running_mean) / torch.sqrt(running_var + eps) * gamma + beta
        else:
            raise ValueError(mode)
        bn_param["running_mean"], bn_param["running_var"] = running_mean, running_var
        return out, cache

    @staticmethod
    def backward(dout, cache):
        x_hat, std, gamma = cache
        d = dout.double()
        N = d.shape[0]
        dbeta, dgamma = d.sum(0), (d * x_hat).sum(0)
        dx_hat = d * gamma.double()
        dx = (dx_hat - dx_hat.sum(0) / N - x_hat * (dx_hat * x_hat).sum(0) / N) / std
        return dx.to(dout.dtype), dgamma.to(dout.dtype), dbeta.to(dout.dtype)

    @staticmethod
    def backward_alt(dout, cache):
        x_hat, std, gamma = cache
        d = dout.double()
        N = d.shape[0]
        dbeta, dgamma = d.sum(0), (d * x_hat).sum(0)
        dx = gamma.double() / (N * std) * (N * d - dbeta - x_hat * dgamma)
        return dx.to(dout.dtype), dgamma.to(dout.dtype), dbeta.to(dout.dtype)


class SpatialBatchNorm:
    @staticmethod
    def forward(x, gamma, beta, bn_param):
        N, C, H, W = x.shape
        rows = x.transpose(1, 3).reshape(-1, C)  # (N * W * H, C)
        out, cache = BatchNorm.forward(rows, gamma, beta, bn_param)
        return out.reshape(N, W, H, C).transpose(1, 3), cache

    @staticmethod
    def backward(dout, cache):
        N, C, H, W = dout.shape
        dx, dgamma, dbeta = BatchNorm.backward(dout.transpose(1, 3).reshape(-1, C), cache)
        return dx.reshape(N, W, H, C).transpose(1, 3), dgamma, dbeta


def kaiming_initializer(Din, Dout, K=None, relu=True, device="cpu", dtype=torch.float32):
    gain = 2.0 if relu else 1.0
    fan_in = Din if K is None else Din * K * K
    shape = (Din, Dout) if K is None else (Dout, Din, K, K)
    return torch.randn(shape, device=device, dtype=dtype) * (gain / fan_in) ** 0.5
