"""Correct A3 code in other idioms: a Linear that computes in float64 and returns the input's dtype (with bmm), a
ReLU that zeroes a clone by boolean indexing (gradient 1 at exactly 0), a dropout mask from torch.bernoulli, update
rules that return new tensors written with torch.sqrt and `**`, a naive convolution with four loops in a
helper, max pooling through argmax and scatter, networks that call Linear and ReLU themselves (no sandwich layer) and
write the regulariser with `**`, and a Kaiming initialiser with math.sqrt and normal_().

Each top-level definition replaces the one of the same name in the file named by its `# file:` comment (imports are
left out: the names below are the ones those files import).
"""

import math

import torch

from a3_networks.layer_utils import softmax_loss

# file: a3_networks/fully_connected_networks.py


class Linear:
    @staticmethod
    def forward(x, w, b):
        xf = x.flatten(1).double()  # float64 inside
        out = torch.bmm(xf.unsqueeze(0), w.double().unsqueeze(0)).squeeze(0) + b.double()
        return out.to(x.dtype), (x, w, b)

    @staticmethod
    def backward(dout, cache):
        x, w, b = cache
        d = dout.double()
        dx = (d @ w.double().T).reshape(x.shape).to(x.dtype)
        dw = (x.flatten(1).double().T @ d).to(w.dtype)
        db = d.sum(0).to(b.dtype)
        return dx, dw, db


class ReLU:
    @staticmethod
    def forward(x):
        out = x.clone()
        out[out < 0] = 0
        return out, x

    @staticmethod
    def backward(dout, cache):
        dx = dout.clone()
        dx[cache < 0] = 0  # the gradient at exactly 0 taken as 1
        return dx


class Dropout:
    @staticmethod
    def forward(x, dropout_param):
        p, mode = dropout_param["p"], dropout_param["mode"]
        if dropout_param.get("seed") is not None:
            torch.manual_seed(dropout_param["seed"])
        if mode == "train":
            mask = torch.bernoulli(torch.full_like(x, 1 - p)) / (1 - p)
            return x * mask, (dropout_param, mask)
        return x, (dropout_param, None)

    @staticmethod
    def backward(dout, cache):
        dropout_param, mask = cache
        return dout * mask if mask is not None else dout


def sgd_momentum(w, dw, config=None):
    config = config if config is not None else {}
    lr = config.setdefault("learning_rate", 1e-2)
    mu = config.setdefault("momentum", 0.9)
    config["velocity"] = mu * config.get("velocity", torch.zeros_like(w)) - lr * dw
    return w + config["velocity"], config


def rmsprop(w, dw, config=None):
    config = config if config is not None else {}
    lr = config.setdefault("learning_rate", 1e-2)
    rho = config.setdefault("decay_rate", 0.99)
    eps = config.setdefault("epsilon", 1e-8)
    config["cache"] = rho * config.get("cache", torch.zeros_like(w)) + (1 - rho) * dw**2
    return w - lr * dw / (torch.sqrt(config["cache"]) + eps), config


def adam(w, dw, config=None):
    config = config if config is not None else {}
    lr = config.setdefault("learning_rate", 1e-3)
    b1, b2 = config.setdefault("beta1", 0.9), config.setdefault("beta2", 0.999)
    eps = config.setdefault("epsilon", 1e-8)
    t = config.get("t", 0) + 1
    m = b1 * config.get("m", torch.zeros_like(w)) + (1 - b1) * dw
    v = b2 * config.get("v", torch.zeros_like(w)) + (1 - b2) * dw**2
    config.update(t=t, m=m, v=v)
    return w - lr * (m / (1 - b1**t)) / (torch.sqrt(v / (1 - b2**t)) + eps), config


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
            "W1": torch.normal(0.0, weight_scale, (input_dim, hidden_dim), dtype=dtype, device=device),
            "b1": torch.zeros(hidden_dim, dtype=dtype, device=device),
            "W2": torch.normal(0.0, weight_scale, (hidden_dim, num_classes), dtype=dtype, device=device),
            "b2": torch.zeros(num_classes, dtype=dtype, device=device),
        }

    def loss(self, X, y=None):
        a, c1 = Linear.forward(X, self.params["W1"], self.params["b1"])
        h, c2 = ReLU.forward(a)
        scores, c3 = Linear.forward(h, self.params["W2"], self.params["b2"])
        if y is None:
            return scores
        loss, dscores = softmax_loss(scores, y)
        loss = loss + self.reg * sum(torch.sum(self.params[k] ** 2) for k in ("W1", "W2"))
        grads = {}
        dh, grads["W2"], grads["b2"] = Linear.backward(dscores, c3)
        _, grads["W1"], grads["b1"] = Linear.backward(ReLU.backward(dh, c2), c1)
        for k in ("W1", "W2"):
            grads[k] += 2 * self.reg * self.params[k]
        return loss, grads


# file: a3_networks/convolutional_networks.py


def _conv_loops(x_pad, w, b, stride, H_out, W_out):
    N, F = x_pad.shape[0], w.shape[0]
    HH, WW = w.shape[2:]
    out = x_pad.new_zeros(N, F, H_out, W_out)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = x_pad[n, :, i * stride : i * stride + HH, j * stride : j * stride + WW]
                    out[n, f, i, j] = (window * w[f]).sum() + b[f]
    return out


class Conv:
    @staticmethod
    def forward(x, w, b, conv_param):
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        stride, pad = conv_param["stride"], conv_param["pad"]
        x_pad = torch.zeros(N, C, H + 2 * pad, W + 2 * pad, dtype=x.dtype, device=x.device)
        x_pad[:, :, pad : pad + H, pad : pad + W] = x
        out = _conv_loops(x_pad, w, b, stride, 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride)
        return out, (x, w, b, conv_param)

    @staticmethod
    def backward(dout, cache):
        x, w, b, conv_param = cache
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        stride, pad = conv_param["stride"], conv_param["pad"]
        x_pad = torch.zeros(N, C, H + 2 * pad, W + 2 * pad, dtype=x.dtype, device=x.device)
        x_pad[:, :, pad : pad + H, pad : pad + W] = x
        dx_pad, dw = torch.zeros_like(x_pad), torch.zeros_like(w)
        for n in range(N):
            for f in range(F):
                for i in range(dout.shape[2]):
                    for j in range(dout.shape[3]):
                        rows, cols = slice(i * stride, i * stride + HH), slice(j * stride, j * stride + WW)
                        dw[f] += dout[n, f, i, j] * x_pad[n, :, rows, cols]
                        dx_pad[n, :, rows, cols] += dout[n, f, i, j] * w[f]
        return dx_pad[:, :, pad : pad + H, pad : pad + W], dw, dout.sum(dim=(0, 2, 3))


class MaxPool:
    @staticmethod
    def forward(x, pool_param):
        N, C, H, W = x.shape
        HP, WP, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
        out = torch.stack(
            [
                torch.stack(
                    [x[:, :, i : i + HP, j : j + WP].amax(dim=(-2, -1)) for j in range(0, W - WP + 1, s)], dim=-1
                )
                for i in range(0, H - HP + 1, s)
            ],
            dim=-2,
        )
        return out, (x, pool_param)

    @staticmethod
    def backward(dout, cache):
        x, pool_param = cache
        N, C, H, W = x.shape
        HP, WP, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
        dx = torch.zeros_like(x).reshape(N, C, H * W)
        rows = torch.arange(H * W, device=x.device).reshape(H, W)
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                win = x[:, :, i * s : i * s + HP, j * s : j * s + WP].reshape(N, C, -1)
                where = rows[i * s : i * s + HP, j * s : j * s + WP].reshape(-1)[win.argmax(dim=2)]  # (N, C)
                dx.scatter_add_(2, where.unsqueeze(2), dout[:, :, i, j].unsqueeze(2))
        return dx.reshape(N, C, H, W)


def kaiming_initializer(Din, Dout, K=None, relu=True, device="cpu", dtype=torch.float32):
    fan_in = Din * (1 if K is None else K * K)
    w = torch.empty((Din, Dout) if K is None else (Dout, Din, K, K), device=device, dtype=dtype)
    return w.normal_(0.0, math.sqrt((2.0 if relu else 1.0) / fan_in))
