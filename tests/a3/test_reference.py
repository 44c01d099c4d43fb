"""
The reference solution of A3 (a3_networks) against PyTorch oracles.

Every layer's forward pass is compared with PyTorch's own operation (F.linear, F.relu, F.conv2d,
F.max_pool2d, F.batch_norm) and every backward pass with torch.autograd in float64 and with a centred
numeric gradient (dlcv.compute_numeric_gradient); the networks' losses and gradients with a plain PyTorch
re-statement of the network differentiated by autograd; the update rules with torch.optim and with their
formulas. The overfitting and training targets are checked on the offline digits data set.
"""

import ast
import inspect
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import dlcv
from a3_networks import convolutional_networks as cn
from a3_networks import fully_connected_networks as fc
from grader.kit.release import find_regions, stub_source

pytestmark = pytest.mark.assignment("a3_networks")  # make test-assignment A=a3_networks

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "a3_networks" / "fully_connected_networks.py", ROOT / "a3_networks" / "convolutional_networks.py"]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _rand(*shape, dtype=torch.float64, device="cpu", seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)


def _vjp(f, inputs, dout):
    """The oracle: gradients of sum(f(*inputs) * dout) with respect to each input, by autograd."""
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    return torch.autograd.grad(f(*leaves), leaves, grad_outputs=dout)


def _numeric(f, inputs, dout):
    """Centred numeric gradients of sum(f(*inputs) * dout) with respect to each input."""
    grads = []
    for i in range(len(inputs)):
        args = [t.clone() for t in inputs]

        def fi(x, i=i, args=args):
            return f(*args[:i], x, *args[i + 1 :])

        grads.append(dlcv.compute_numeric_gradient(fi, args[i], dout))
    return grads


def _error(a, b):
    """rel_error, but absolute below magnitude 1e-3: a gradient that is zero in exact arithmetic (a bias
    before a batch normalisation) is rounding noise on both sides and has no meaningful relative error."""
    return dlcv.rel_error(a, b, eps=1e-3)


def _check_grads(ours, f, inputs, dout, autograd_tol=1e-10, numeric_tol=1e-7):
    for name, a, b in zip("0123456789", ours, _vjp(f, inputs, dout)):
        assert a.shape == b.shape, f"gradient {name}: shape {tuple(a.shape)}, expected {tuple(b.shape)}"
        assert _error(a, b) < autograd_tol, f"gradient {name} vs autograd: {_error(a, b):.2e}"
    for name, a, b in zip("0123456789", ours, _numeric(f, inputs, dout)):
        assert _error(a, b) < numeric_tol, f"gradient {name} vs numeric: {_error(a, b):.2e}"


def _autograd_loss_and_grads(loss_fn, params):
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    loss = loss_fn(leaves)
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return loss.detach(), dict(zip(leaves, grads))


def _assert_net_matches(model, loss_fn, X, y, tol=1e-10):
    loss, grads = model.loss(X, y)
    ref_loss, ref_grads = _autograd_loss_and_grads(loss_fn, model.params)
    assert set(grads) == set(model.params)
    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-10, abs=1e-12)
    for k in model.params:
        assert grads[k].shape == model.params[k].shape, k
        err = _error(grads[k], ref_grads[k])
        assert err < tol, f"grads[{k!r}] vs autograd: {err:.2e}"


# ---------------------------------------------------------------------------------------------------------
# Linear, ReLU, Linear_ReLU, softmax_loss


@pytest.mark.parametrize("shape", [(4, 6), (3, 2, 5), (2, 3, 2, 2)])
def test_linear_forward_and_backward(shape):
    N, D, M = shape[0], math.prod(shape[1:]), 5
    x, w, b, dout = _rand(*shape), _rand(D, M, seed=1), _rand(M, seed=2), _rand(N, M, seed=3)
    out, cache = fc.Linear.forward(x, w, b)
    assert out.shape == (N, M)
    assert dlcv.rel_error(out, F.linear(x.reshape(N, D), w.t(), b)) < 1e-12
    dx, dw, db = fc.Linear.backward(dout, cache)
    assert dx.shape == x.shape
    _check_grads((dx, dw, db), lambda x, w, b: x.reshape(N, -1) @ w + b, [x, w, b], dout)


def test_relu_forward_and_backward():
    x, dout = _rand(4, 5, 3), _rand(4, 5, 3, seed=1)
    out, cache = fc.ReLU.forward(x)
    assert torch.equal(out, F.relu(x))
    _check_grads((fc.ReLU.backward(dout, cache),), F.relu, [x], dout)


def test_linear_relu_backward():
    x, w, b, dout = _rand(3, 2, 4), _rand(8, 6, seed=1), _rand(6, seed=2), _rand(3, 6, seed=3)
    out, cache = fc.Linear_ReLU.forward(x, w, b)
    assert dlcv.rel_error(out, F.relu(x.reshape(3, 8) @ w + b)) < 1e-12
    _check_grads(
        fc.Linear_ReLU.backward(dout, cache), lambda x, w, b: F.relu(x.reshape(3, -1) @ w + b), [x, w, b], dout
    )


def test_softmax_loss_matches_cross_entropy():
    x, y = 10 * _rand(6, 4), torch.tensor([0, 3, 1, 1, 2, 0])
    loss, dx = fc.softmax_loss(x, y)
    (ref_dx,) = _vjp(lambda x: F.cross_entropy(x, y), [x], torch.tensor(1.0, dtype=torch.float64))
    assert float(loss) == pytest.approx(F.cross_entropy(x, y).item(), rel=1e-12)
    assert dlcv.rel_error(dx, ref_dx) < 1e-12
    big_loss, _ = fc.softmax_loss(1e4 * x, y)  # stable for huge scores
    assert torch.isfinite(big_loss)


# ---------------------------------------------------------------------------------------------------------
# Dropout


def test_dropout_test_mode_is_the_identity():
    x, dout = _rand(5, 7), _rand(5, 7, seed=1)
    out, cache = fc.Dropout.forward(x, {"mode": "test", "p": 0.6})
    assert torch.equal(out, x)
    assert torch.equal(fc.Dropout.backward(dout, cache), dout)


@pytest.mark.parametrize("p", [0.25, 0.4, 0.7])
def test_dropout_train_mode_drops_a_fraction_p_and_keeps_the_mean(p):
    dlcv.reset_seed(0)
    # positive, so a zero output means a dropped unit; not drawn with seed 0, which would correlate it
    # with the mask (randn and rand of one seed share their uniform numbers)
    x = 1 + _rand(500, 500, seed=5).abs()
    x_before = x.clone()
    out, (_, mask) = fc.Dropout.forward(x, {"mode": "train", "p": p})
    assert torch.equal(x, x_before) and out.dtype == x.dtype
    dropped = (out == 0).double().mean().item()
    assert dropped == pytest.approx(p, abs=0.01), f"dropped {dropped:.3f} of the units with p={p}"
    kept = out != 0
    assert dlcv.rel_error(out[kept], x[kept] / (1 - p)) < 1e-12, "kept units must be scaled by 1 / (1 - p)"
    assert out.mean().item() == pytest.approx(x.mean().item(), rel=0.02)
    assert torch.equal(mask == 0, ~kept)


def test_dropout_with_p_zero_keeps_everything():
    x = _rand(20, 30)
    out, _ = fc.Dropout.forward(x, {"mode": "train", "p": 0.0})
    assert torch.equal(out, x)


def test_dropout_backward_only_through_kept_units():
    x, dout = _rand(10, 12), _rand(10, 12, seed=1)
    param = {"mode": "train", "p": 0.3, "seed": 123}
    out, cache = fc.Dropout.forward(x, param)
    dx = fc.Dropout.backward(dout, cache)
    dropped = out == 0
    assert dropped.any() and (~dropped).any()
    assert torch.all(dx[dropped] == 0)
    assert dlcv.rel_error(dx[~dropped], dout[~dropped] / 0.7) < 1e-12
    # with a seed every call draws the same mask, so the numeric gradient is well defined
    numeric = dlcv.compute_numeric_gradient(lambda x: fc.Dropout.forward(x, param)[0], x.clone(), dout)
    assert dlcv.rel_error(dx, numeric) < 1e-7


def test_dropout_seed_repeats_the_mask():
    x = _rand(30, 40)
    out1, _ = fc.Dropout.forward(x, {"mode": "train", "p": 0.5, "seed": 7})
    torch.rand(100)  # the global generator moves on in between
    out2, _ = fc.Dropout.forward(x, {"mode": "train", "p": 0.5, "seed": 7})
    out3, _ = fc.Dropout.forward(x, {"mode": "train", "p": 0.5, "seed": 8})
    assert torch.equal(out1, out2)
    assert not torch.equal(out1, out3)


def test_dropout_rejects_bad_p():
    with pytest.raises(ValueError, match="p=1"):
        fc.Dropout.forward(_rand(2, 2), {"mode": "train", "p": 1})


# ---------------------------------------------------------------------------------------------------------
# Update rules


def _gradients(shape, steps=6):
    return [_rand(*shape, seed=10 + t) for t in range(steps)]


def _run_rule(rule, w, dws, config):
    w_before, history = w.clone(), []
    for dw in dws:
        dw_before = dw.clone()
        w, config = rule(w, dw, config)
        assert torch.equal(dw, dw_before), f"{rule.__name__} modified dw"
        history.append(w)
    return history, config, w_before


def _run_torch_optimizer(make, w, dws):
    p = w.detach().clone().requires_grad_(True)
    opt = make([p])
    history = []
    for dw in dws:
        p.grad = dw.clone()
        opt.step()
        history.append(p.detach().clone())
    return history


def test_sgd_given():
    w, dw = _rand(4, 5), _rand(4, 5, seed=1)
    w_before = w.clone()
    next_w, config = fc.sgd(w, dw, {"learning_rate": 0.3})
    assert torch.equal(w, w_before)
    assert dlcv.rel_error(next_w, w - 0.3 * dw) < 1e-15
    assert fc.sgd(w, dw)[1] == {"learning_rate": 1e-2}


def test_sgd_momentum_matches_formula_and_torch():
    w, dws = _rand(4, 5), _gradients((4, 5))
    history, config, w0 = _run_rule(fc.sgd_momentum, w.clone(), dws, {"learning_rate": 0.1, "momentum": 0.8})
    assert torch.equal(w, w0)
    expected_w, v = w.clone(), torch.zeros_like(w)
    for dw, ours in zip(dws, history):
        v = 0.8 * v - 0.1 * dw
        expected_w = expected_w + v
        assert dlcv.rel_error(ours, expected_w) < 1e-14
    assert dlcv.rel_error(config["velocity"], v) < 1e-14
    torch_history = _run_torch_optimizer(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.8), w, dws)
    assert dlcv.rel_error(history[-1], torch_history[-1]) < 1e-13


def test_sgd_momentum_defaults():
    _, config = fc.sgd_momentum(_rand(3), _rand(3, seed=1))
    assert config["learning_rate"] == 1e-2 and config["momentum"] == 0.9
    assert dlcv.rel_error(config["velocity"], -1e-2 * _rand(3, seed=1)) < 1e-15


def test_rmsprop_matches_formula_and_torch():
    w, dws = _rand(4, 5), _gradients((4, 5))
    history, config, _ = _run_rule(fc.rmsprop, w.clone(), dws, {"learning_rate": 1e-2, "decay_rate": 0.95})
    expected_w, cache = w.clone(), torch.zeros_like(w)
    for dw, ours in zip(dws, history):
        cache = 0.95 * cache + 0.05 * dw * dw
        expected_w = expected_w - 1e-2 * dw / (cache.sqrt() + 1e-8)
        assert dlcv.rel_error(ours, expected_w) < 1e-14
    assert config["epsilon"] == 1e-8 and dlcv.rel_error(config["cache"], cache) < 1e-14
    torch_history = _run_torch_optimizer(lambda ps: torch.optim.RMSprop(ps, lr=1e-2, alpha=0.95, eps=1e-8), w, dws)
    for ours, theirs in zip(history, torch_history):
        assert dlcv.rel_error(ours, theirs) < 1e-13


def test_adam_matches_formula_and_torch():
    w, dws = _rand(4, 5), _gradients((4, 5))
    history, config, _ = _run_rule(fc.adam, w.clone(), dws, {"learning_rate": 1e-2})
    expected_w, m, v = w.clone(), torch.zeros_like(w), torch.zeros_like(w)
    for t, (dw, ours) in enumerate(zip(dws, history), start=1):
        m = 0.9 * m + 0.1 * dw
        v = 0.999 * v + 0.001 * dw * dw
        expected_w = expected_w - 1e-2 * (m / (1 - 0.9**t)) / ((v / (1 - 0.999**t)).sqrt() + 1e-8)
        assert dlcv.rel_error(ours, expected_w) < 1e-13
    assert config["t"] == len(dws)
    assert dlcv.rel_error(config["m"], m) < 1e-14 and dlcv.rel_error(config["v"], v) < 1e-14
    torch_history = _run_torch_optimizer(lambda ps: torch.optim.Adam(ps, lr=1e-2, eps=1e-8), w, dws)
    for ours, theirs in zip(history, torch_history):
        assert dlcv.rel_error(ours, theirs) < 1e-12


def test_adam_first_step_uses_t_equal_one():
    # with bias correction at t = 1, the first step is lr * sign(dw) (up to epsilon) whatever the size of dw
    w, dw = _rand(10), 1e-3 * _rand(10, seed=1)
    next_w, config = fc.adam(w, dw, {"learning_rate": 0.5})
    assert config["t"] == 1 and config["learning_rate"] == 0.5
    assert dlcv.rel_error(w - next_w, 0.5 * dw.sign()) < 1e-4


# ---------------------------------------------------------------------------------------------------------
# TwoLayerNet and FullyConnectedNet


def _fc_oracle(params, X, y, reg, num_layers):
    h = X.reshape(X.shape[0], -1)
    for i in range(1, num_layers + 1):
        h = h @ params[f"W{i}"] + params[f"b{i}"]
        if i < num_layers:
            h = F.relu(h)
    return F.cross_entropy(h, y) + reg * sum((params[f"W{i}"] ** 2).sum() for i in range(1, num_layers + 1))


def test_two_layer_net_init():
    dlcv.reset_seed(0)
    model = fc.TwoLayerNet(input_dim=300, hidden_dim=200, num_classes=7, weight_scale=0.05, dtype=torch.float64)
    shapes = {k: tuple(v.shape) for k, v in model.params.items()}
    assert shapes == {"W1": (300, 200), "b1": (200,), "W2": (200, 7), "b2": (7,)}
    assert all(v.dtype == torch.float64 for v in model.params.values())
    assert model.params["W1"].std().item() == pytest.approx(0.05, rel=0.02)
    assert model.params["W1"].mean().abs().item() < 0.002
    assert torch.all(model.params["b1"] == 0) and torch.all(model.params["b2"] == 0)


@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_two_layer_net_loss_and_gradients(reg):
    dlcv.reset_seed(0)
    N, D, H, C = 5, 12, 10, 4
    X, y = _rand(N, 3, 2, 2), torch.tensor([0, 3, 1, 2, 1])
    model = fc.TwoLayerNet(input_dim=D, hidden_dim=H, num_classes=C, weight_scale=0.5, reg=reg, dtype=torch.float64)
    scores = model.loss(X)
    assert scores.shape == (N, C)
    expected = (
        F.relu(X.reshape(N, D) @ model.params["W1"] + model.params["b1"]) @ model.params["W2"] + model.params["b2"]
    )
    assert dlcv.rel_error(scores, expected) < 1e-12
    _assert_net_matches(model, lambda p: _fc_oracle(p, X, y, reg, 2), X, y)


def test_two_layer_net_initial_loss_is_log_c():
    dlcv.reset_seed(0)
    model = fc.TwoLayerNet(input_dim=20, hidden_dim=30, num_classes=10, weight_scale=1e-3, dtype=torch.float64)
    loss, _ = model.loss(_rand(50, 20), torch.arange(50) % 10)
    assert float(loss) == pytest.approx(math.log(10), abs=1e-3)


@pytest.mark.parametrize("reg", [0.0, 3.14])
@pytest.mark.parametrize("hidden_dims", [[6], [6, 5], [4, 5, 3]])
def test_fully_connected_net_loss_and_gradients(hidden_dims, reg):
    dlcv.reset_seed(0)
    N, D, C = 4, 10, 3
    X, y = _rand(N, D), torch.tensor([0, 2, 1, 2])
    model = fc.FullyConnectedNet(
        hidden_dims, input_dim=D, num_classes=C, reg=reg, weight_scale=0.5, dtype=torch.float64
    )
    L = len(hidden_dims) + 1
    assert model.num_layers == L and len(model.params) == 2 * L
    dims = [D] + hidden_dims + [C]
    for i in range(1, L + 1):
        assert model.params[f"W{i}"].shape == (dims[i - 1], dims[i])
        assert torch.all(model.params[f"b{i}"] == 0)
    assert model.loss(X).shape == (N, C)
    _assert_net_matches(model, lambda p: _fc_oracle(p, X, y, reg, L), X, y)


def test_fully_connected_net_with_dropout():
    dlcv.reset_seed(0)
    N, D, C = 6, 8, 3
    X, y = _rand(N, D), torch.tensor([0, 2, 1, 2, 0, 1])
    model = fc.FullyConnectedNet(
        [7, 5], input_dim=D, num_classes=C, dropout=0.3, seed=123, reg=0.1, weight_scale=0.5, dtype=torch.float64
    )
    # test mode: dropout does nothing
    no_dropout = fc.FullyConnectedNet([7, 5], input_dim=D, num_classes=C, dtype=torch.float64)
    no_dropout.params = model.params
    assert torch.equal(model.loss(X), no_dropout.loss(X))
    # train mode: the seed repeats the masks, so the numeric gradient is well defined
    loss, grads = model.loss(X, y)
    assert model.dropout_param["mode"] == "train"
    for k in ("W1", "b2", "W3"):
        param = model.params[k]

        def f(_, k=k):
            return model.loss(X, y)[0]

        numeric = dlcv.compute_numeric_gradient(f, param)
        assert dlcv.rel_error(grads[k], numeric) < 1e-6, k


def test_fully_connected_net_save_and_load(tmp_path):
    dlcv.reset_seed(0)
    model = fc.FullyConnectedNet([6, 5], input_dim=10, num_classes=3, dropout=0.2, reg=0.5)
    model.save(tmp_path / "fc.pt")
    other = fc.FullyConnectedNet([1], input_dim=10, num_classes=3)
    other.load(tmp_path / "fc.pt", dtype=torch.float64, device="cpu")
    assert other.num_layers == 3 and other.reg == 0.5 and other.dropout_param["p"] == 0.2
    for k, v in model.params.items():
        assert other.params[k].dtype == torch.float64 and torch.equal(other.params[k], v.double())
    two = fc.TwoLayerNet(input_dim=10, hidden_dim=4, num_classes=3, reg=0.25)
    two.save(tmp_path / "two.pt")
    other = fc.TwoLayerNet(input_dim=10, hidden_dim=4, num_classes=3)
    other.load(tmp_path / "two.pt", dtype=torch.float32, device="cpu")
    assert other.reg == 0.25 and all(torch.equal(other.params[k], v) for k, v in two.params.items())


# ---------------------------------------------------------------------------------------------------------
# Convolution and max pooling

CONV_CASES = [  # (x shape, w shape, stride, pad)
    ((2, 3, 5, 5), (3, 3, 3, 3), 1, 1),
    ((2, 3, 6, 6), (2, 3, 3, 3), 2, 1),
    ((1, 2, 7, 7), (3, 2, 3, 3), 2, 0),
    ((2, 1, 6, 5), (2, 1, 2, 3), 1, 0),
    ((1, 2, 7, 6), (2, 2, 4, 4), 3, 2),  # (H + 2 pad - HH) not a multiple of the stride: floor, as F.conv2d
]


@pytest.mark.parametrize("x_shape, w_shape, stride, pad", CONV_CASES)
def test_conv_forward_matches_conv2d(x_shape, w_shape, stride, pad):
    x, w, b = _rand(*x_shape), _rand(*w_shape, seed=1), _rand(w_shape[0], seed=2)
    conv_param = {"stride": stride, "pad": pad}
    out, _ = cn.Conv.forward(x, w, b, conv_param)
    expected = F.conv2d(x, w, b, stride=stride, padding=pad)
    assert out.shape == expected.shape
    assert dlcv.rel_error(out, expected) < 1e-12
    vec_out, _ = cn.ConvVectorized.forward(x, w, b, conv_param)
    fast_out, _ = cn.FastConv.forward(x, w, b, conv_param)
    assert dlcv.rel_error(vec_out, out) < 1e-12 and dlcv.rel_error(fast_out, out) < 1e-12


@pytest.mark.parametrize("x_shape, w_shape, stride, pad", CONV_CASES)
def test_conv_backward(x_shape, w_shape, stride, pad):
    x, w, b = _rand(*x_shape), _rand(*w_shape, seed=1), _rand(w_shape[0], seed=2)
    conv_param = {"stride": stride, "pad": pad}
    out, cache = cn.Conv.forward(x, w, b, conv_param)
    dout = _rand(*out.shape, seed=3)
    grads = cn.Conv.backward(dout, cache)
    _check_grads(grads, lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=pad), [x, w, b], dout)
    # the vectorised and the fast layers agree with the naive one
    _, vec_cache = cn.ConvVectorized.forward(x, w, b, conv_param)
    _, fast_cache = cn.FastConv.forward(x, w, b, conv_param)
    for other in (cn.ConvVectorized.backward(dout, vec_cache), cn.FastConv.backward(dout, fast_cache)):
        for ours, theirs in zip(grads, other):
            assert dlcv.rel_error(ours, theirs) < 1e-12


POOL_CASES = [  # (x shape, pool_height, pool_width, stride)
    ((2, 3, 4, 4), 2, 2, 2),
    ((1, 2, 6, 5), 3, 2, 1),  # overlapping windows
    ((2, 2, 7, 7), 3, 3, 2),
    ((1, 1, 5, 5), 2, 2, 2),  # the last row and column are in no window
]


@pytest.mark.parametrize("x_shape, ph, pw, stride", POOL_CASES)
def test_max_pool_forward_and_backward(x_shape, ph, pw, stride):
    x = _rand(*x_shape)
    pool_param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    out, cache = cn.MaxPool.forward(x, pool_param)
    expected = F.max_pool2d(x, (ph, pw), stride=stride)
    assert out.shape == expected.shape and torch.equal(out, expected)
    dout = _rand(*out.shape, seed=1)
    dx = cn.MaxPool.backward(dout, cache)
    _check_grads((dx,), lambda x: F.max_pool2d(x, (ph, pw), stride=stride), [x], dout)
    fast_out, fast_cache = cn.FastMaxPool.forward(x, pool_param)
    assert torch.equal(fast_out, out)
    assert dlcv.rel_error(cn.FastMaxPool.backward(dout, fast_cache), dx) < 1e-15


def test_fast_layers_backward_works_after_a_no_grad_forward():
    x, w, b = _rand(2, 3, 6, 6), _rand(4, 3, 3, 3, seed=1), _rand(4, seed=2)
    with torch.no_grad():
        out, cache = cn.Conv_ReLU_Pool.forward(
            x, w, b, {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}
        )
    assert not out.requires_grad
    dx, dw, db = cn.Conv_ReLU_Pool.backward(torch.ones_like(out), cache)
    dx2, dw2, db2 = cn.Conv_ReLU_Pool.backward(torch.ones_like(out), cache)  # twice from one cache
    assert torch.equal(dw, dw2) and dx.shape == x.shape


def test_conv_sandwiches_backward():
    x, w, b = _rand(2, 3, 6, 6), _rand(4, 3, 3, 3, seed=1), _rand(4, seed=2)
    conv_param, pool_param = {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}

    out, cache = cn.Conv_ReLU.forward(x, w, b, conv_param)
    dout = _rand(*out.shape, seed=3)
    _check_grads(
        cn.Conv_ReLU.backward(dout, cache), lambda x, w, b: F.relu(F.conv2d(x, w, b, padding=1)), [x, w, b], dout
    )

    out, cache = cn.Conv_ReLU_Pool.forward(x, w, b, conv_param, pool_param)
    dout = _rand(*out.shape, seed=4)
    _check_grads(
        cn.Conv_ReLU_Pool.backward(dout, cache),
        lambda x, w, b: F.max_pool2d(F.relu(F.conv2d(x, w, b, padding=1)), 2),
        [x, w, b],
        dout,
    )


# ---------------------------------------------------------------------------------------------------------
# Batch normalisation


def test_batchnorm_train_forward_matches_batch_norm_and_updates_running_stats():
    N, D = 16, 5
    x = 3 + 2 * _rand(N, D)
    gamma, beta = _rand(D, seed=1), _rand(D, seed=2)
    rm, rv = _rand(D, seed=3), 1 + _rand(D, seed=4).abs()
    rm_before, rv_before = rm.clone(), rv.clone()
    bn_param = {"mode": "train", "running_mean": rm, "running_var": rv}
    out, _ = cn.BatchNorm.forward(x, gamma, beta, bn_param)

    torch_rm, torch_rv = rm.clone(), rv.clone()
    expected = F.batch_norm(x, torch_rm, torch_rv, gamma, beta, training=True, momentum=0.1, eps=1e-5)
    assert dlcv.rel_error(out, expected) < 1e-12
    # running = 0.9 running + 0.1 batch (PyTorch's momentum is our 1 - momentum)
    assert dlcv.rel_error(bn_param["running_mean"], torch_rm) < 1e-12
    # the course keeps the BIASED batch variance in the running average (PyTorch the unbiased one)
    assert dlcv.rel_error(bn_param["running_var"], 0.9 * rv_before + 0.1 * x.var(dim=0, unbiased=False)) < 1e-12
    assert torch.equal(rm, rm_before) and torch.equal(rv, rv_before), "the old running tensors changed in place"
    # normalised: mean beta, standard deviation |gamma|
    assert dlcv.rel_error(out.mean(dim=0), beta) < 1e-10
    assert dlcv.rel_error(out.std(dim=0, unbiased=False), gamma.abs()) < 1e-5


def test_batchnorm_defaults_and_test_mode():
    N, D = 32, 4
    gamma, beta = 1 + _rand(D, seed=1).abs(), _rand(D, seed=2)
    bn_param = {"mode": "train"}
    batches = [5 + 3 * _rand(N, D, seed=10 + t) for t in range(4)]
    rm, rv = torch.zeros(D, dtype=torch.float64), torch.zeros(D, dtype=torch.float64)
    for x in batches:
        cn.BatchNorm.forward(x, gamma, beta, bn_param)
        rm = 0.9 * rm + 0.1 * x.mean(dim=0)
        rv = 0.9 * rv + 0.1 * x.var(dim=0, unbiased=False)
    assert dlcv.rel_error(bn_param["running_mean"], rm) < 1e-12
    assert dlcv.rel_error(bn_param["running_var"], rv) < 1e-12

    bn_param["mode"] = "test"
    x = _rand(7, D, seed=99)
    out, _ = cn.BatchNorm.forward(x, gamma, beta, bn_param)
    expected = F.batch_norm(x, rm, rv, gamma, beta, training=False, eps=1e-5)
    assert dlcv.rel_error(out, expected) < 1e-12
    assert dlcv.rel_error(bn_param["running_mean"], rm) < 1e-15, "test mode must not update the statistics"

    with pytest.raises(ValueError, match="mode"):
        cn.BatchNorm.forward(x, gamma, beta, {"mode": "eval"})


def test_batchnorm_custom_eps_and_momentum():
    x, gamma, beta = _rand(6, 3), _rand(3, seed=1), _rand(3, seed=2)
    rm, rv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    bn_param = {"mode": "train", "eps": 0.5, "momentum": 0.6, "running_mean": rm, "running_var": rv}
    out, _ = cn.BatchNorm.forward(x, gamma, beta, bn_param)
    expected = F.batch_norm(x, None, None, gamma, beta, training=True, eps=0.5)
    assert dlcv.rel_error(out, expected) < 1e-12
    assert dlcv.rel_error(bn_param["running_mean"], 0.4 * x.mean(dim=0)) < 1e-12


@pytest.mark.parametrize("backward", ["backward", "backward_alt"])
def test_batchnorm_backward(backward):
    N, D = 6, 4
    x, gamma, beta, dout = 2 + 3 * _rand(N, D), _rand(D, seed=1), _rand(D, seed=2), _rand(N, D, seed=3)
    _, cache = cn.BatchNorm.forward(x, gamma, beta, {"mode": "train"})
    grads = getattr(cn.BatchNorm, backward)(dout, cache)

    def f(x, gamma, beta):
        return F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5)

    _check_grads(grads, f, [x, gamma, beta], dout, numeric_tol=1e-6)


def test_batchnorm_backward_equals_backward_alt():
    x, gamma, beta, dout = 5 * _rand(50, 30), _rand(30, seed=1), _rand(30, seed=2), _rand(50, 30, seed=3)
    _, cache = cn.BatchNorm.forward(x, gamma, beta, {"mode": "train"})
    for a, b in zip(cn.BatchNorm.backward(dout, cache), cn.BatchNorm.backward_alt(dout, cache)):
        assert dlcv.rel_error(a, b) < 1e-12


def test_spatial_batchnorm_forward_and_backward():
    N, C, H, W = 3, 4, 3, 5
    x, gamma, beta = 4 + 2 * _rand(N, C, H, W), _rand(C, seed=1), _rand(C, seed=2)
    bn_param = {"mode": "train"}
    out, cache = cn.SpatialBatchNorm.forward(x, gamma, beta, bn_param)
    torch_rm, torch_rv = torch.zeros(C, dtype=torch.float64), torch.zeros(C, dtype=torch.float64)
    expected = F.batch_norm(x, torch_rm, torch_rv, gamma, beta, training=True, momentum=0.1, eps=1e-5)
    assert out.shape == x.shape and dlcv.rel_error(out, expected) < 1e-12
    assert dlcv.rel_error(bn_param["running_mean"], torch_rm) < 1e-12
    assert dlcv.rel_error(bn_param["running_var"], 0.1 * x.var(dim=(0, 2, 3), unbiased=False)) < 1e-12

    dout = _rand(N, C, H, W, seed=3)

    def f(x, gamma, beta):
        return F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5)

    _check_grads(cn.SpatialBatchNorm.backward(dout, cache), f, [x, gamma, beta], dout, numeric_tol=1e-6)

    bn_param["mode"] = "test"
    x2 = _rand(2, C, H, W, seed=4)
    out2, _ = cn.SpatialBatchNorm.forward(x2, gamma, beta, bn_param)
    expected2 = F.batch_norm(x2, bn_param["running_mean"], bn_param["running_var"], gamma, beta, training=False)
    assert dlcv.rel_error(out2, expected2) < 1e-12


def test_batchnorm_sandwiches_backward():
    x, w, b = _rand(4, 2, 6, 6), _rand(3, 2, 3, 3, seed=1), _rand(3, seed=2)
    gamma, beta = _rand(3, seed=3), _rand(3, seed=4)
    conv_param, pool_param = {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2}

    def conv_bn_relu(x, w, b, gamma, beta):
        return F.relu(F.batch_norm(F.conv2d(x, w, b, padding=1), None, None, gamma, beta, training=True))

    out, cache = cn.Conv_BatchNorm_ReLU.forward(x, w, b, gamma, beta, conv_param, {"mode": "train"})
    dout = _rand(*out.shape, seed=5)
    assert dlcv.rel_error(out, conv_bn_relu(x, w, b, gamma, beta)) < 1e-12
    grads = cn.Conv_BatchNorm_ReLU.backward(dout, cache)
    for ours, theirs in zip(grads, _vjp(conv_bn_relu, [x, w, b, gamma, beta], dout)):
        assert _error(ours, theirs) < 1e-10
    assert grads[2].abs().max() < 1e-12, "batchnorm removes the bias: its gradient is zero"

    out, cache = cn.Conv_BatchNorm_ReLU_Pool.forward(x, w, b, gamma, beta, conv_param, {"mode": "train"}, pool_param)
    dout = _rand(*out.shape, seed=6)
    for ours, theirs in zip(
        cn.Conv_BatchNorm_ReLU_Pool.backward(dout, cache),
        _vjp(lambda *a: F.max_pool2d(conv_bn_relu(*a), 2), [x, w, b, gamma, beta], dout),
    ):
        assert _error(ours, theirs) < 1e-10

    xl, wl, bl = _rand(5, 6), _rand(6, 4, seed=7), _rand(4, seed=8)
    gl, betal = _rand(4, seed=9), _rand(4, seed=10)
    out, cache = cn.Linear_BatchNorm_ReLU.forward(xl, wl, bl, gl, betal, {"mode": "train"})
    dout = _rand(5, 4, seed=11)
    for ours, theirs in zip(
        cn.Linear_BatchNorm_ReLU.backward(dout, cache),
        _vjp(
            lambda x, w, b, g, be: F.relu(F.batch_norm(x @ w + b, None, None, g, be, training=True)),
            [xl, wl, bl, gl, betal],
            dout,
        ),
    ):
        assert _error(ours, theirs) < 1e-10


# ---------------------------------------------------------------------------------------------------------
# Every student layer: no autograd needed, inputs untouched, device and dtype kept


def _layer_calls(device, dtype):
    x4 = _rand(2, 3, 6, 6, dtype=dtype, device=device)
    w4 = _rand(4, 3, 3, 3, dtype=dtype, device=device, seed=1)
    b4 = _rand(4, dtype=dtype, device=device, seed=2)
    x2 = _rand(5, 6, dtype=dtype, device=device, seed=3)
    w2 = _rand(6, 4, dtype=dtype, device=device, seed=4)
    b2 = _rand(4, dtype=dtype, device=device, seed=5)
    g3, be3 = _rand(3, dtype=dtype, device=device, seed=6), _rand(3, dtype=dtype, device=device, seed=7)
    g6, be6 = _rand(6, dtype=dtype, device=device, seed=8), _rand(6, dtype=dtype, device=device, seed=9)
    pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
    return [
        (fc.Linear, [x4, w2.new_ones(108, 4), b2]),
        (fc.ReLU, [x4]),
        (cn.Conv, [x4, w4, b4, {"stride": 1, "pad": 1}]),
        (cn.MaxPool, [x4, pool]),
        (cn.BatchNorm, [x2, g6, be6, {"mode": "train"}]),
        (cn.SpatialBatchNorm, [x4, g3, be3, {"mode": "train"}]),
        (fc.Dropout, [x2, {"mode": "train", "p": 0.5, "seed": 0}]),
    ]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layers_keep_device_dtype_inputs_and_need_no_autograd(device, dtype):
    for layer, args in _layer_calls(device, dtype):
        tensors = [a for a in args if torch.is_tensor(a)]
        before = [t.clone() for t in tensors]
        with torch.inference_mode():  # autograd cannot run in here
            out, cache = layer.forward(*args)
            grads = layer.backward(torch.ones_like(out), cache)
        grads = grads if isinstance(grads, tuple) else (grads,)
        name = layer.__name__
        assert out.dtype == dtype and out.device.type == device, name
        assert len(grads) == len(tensors), f"{name}.backward returned {len(grads)} gradients"
        for g, t, t0 in zip(grads, tensors, before):
            assert g.shape == t.shape and g.dtype == dtype and g.device.type == device, name
            assert torch.equal(t, t0), f"{name} modified its input"


# ---------------------------------------------------------------------------------------------------------
# Kaiming initialisation


@pytest.mark.parametrize("relu, gain", [(True, 2.0), (False, 1.0)])
def test_kaiming_initializer(relu, gain):
    dlcv.reset_seed(0)
    w = cn.kaiming_initializer(400, 300, relu=relu, dtype=torch.float64)
    assert w.shape == (400, 300) and w.dtype == torch.float64
    assert w.std().item() == pytest.approx(math.sqrt(gain / 400), rel=0.02)
    assert abs(w.mean().item()) < 0.02 * w.std().item()
    w = cn.kaiming_initializer(64, 128, K=3, relu=relu)
    assert w.shape == (128, 64, 3, 3) and w.dtype == torch.float32
    assert w.std().item() == pytest.approx(math.sqrt(gain / (64 * 9)), rel=0.02)


# ---------------------------------------------------------------------------------------------------------
# ThreeLayerConvNet and DeepConvNet


def _three_layer_oracle(p, X, y, reg):
    pad = (p["W1"].shape[2] - 1) // 2
    h = F.max_pool2d(F.relu(F.conv2d(X, p["W1"], p["b1"], padding=pad)), 2)
    h = F.relu(h.reshape(X.shape[0], -1) @ p["W2"] + p["b2"])
    scores = h @ p["W3"] + p["b3"]
    return F.cross_entropy(scores, y) + reg * sum((p[k] ** 2).sum() for k in ("W1", "W2", "W3"))


@pytest.mark.parametrize("filter_size, input_dims", [(3, (3, 8, 8)), (5, (2, 6, 7)), (4, (3, 8, 8))])
def test_three_layer_convnet(filter_size, input_dims):
    dlcv.reset_seed(0)
    N, F_, H = 3, 4, 6
    X, y = _rand(N, *input_dims), torch.tensor([0, 4, 2])
    model = cn.ThreeLayerConvNet(
        input_dims=input_dims,
        num_filters=F_,
        filter_size=filter_size,
        hidden_dim=H,
        num_classes=5,
        weight_scale=0.3,
        reg=0.2,
        dtype=torch.float64,
    )
    assert model.params["W1"].shape == (F_, input_dims[0], filter_size, filter_size)
    assert model.loss(X).shape == (N, 5)
    _assert_net_matches(model, lambda p: _three_layer_oracle(p, X, y, 0.2), X, y)


def test_three_layer_convnet_initial_loss_and_sanity():
    dlcv.reset_seed(0)
    model = cn.ThreeLayerConvNet(dtype=torch.float64)  # CIFAR-10 defaults, weight_scale 1e-3
    X, y = _rand(4, 3, 32, 32), torch.tensor([1, 2, 3, 4])
    assert model.params["W2"].shape == (32 * 16 * 16, 100)
    loss, _ = model.loss(X, y)
    assert float(loss) == pytest.approx(math.log(10), abs=1e-3)
    model.reg = 0.5
    loss_reg, _ = model.loss(X, y)
    assert float(loss_reg) > float(loss)


def _deep_oracle(p, X, y, reg, num_filters, max_pools, batchnorm):
    h = X
    for i in range(len(num_filters)):
        h = F.conv2d(h, p[f"W{i + 1}"], p[f"b{i + 1}"], padding=1)
        if batchnorm:
            h = F.batch_norm(h, None, None, p[f"gamma{i + 1}"], p[f"beta{i + 1}"], training=True, eps=1e-5)
        h = F.relu(h)
        if i in max_pools:
            h = F.max_pool2d(h, 2)
    L = len(num_filters) + 1
    scores = h.reshape(X.shape[0], -1) @ p[f"W{L}"] + p[f"b{L}"]
    return F.cross_entropy(scores, y) + reg * sum((p[f"W{i}"] ** 2).sum() for i in range(1, L + 1))


@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("num_filters, max_pools", [([3, 4], [0, 1]), ([2, 3, 4], [1]), ([4], [])])
def test_deep_convnet_loss_and_gradients(num_filters, max_pools, batchnorm):
    dlcv.reset_seed(0)
    N, input_dims = 4, (2, 8, 8)
    X, y = _rand(N, *input_dims), torch.tensor([0, 4, 2, 1])
    model = cn.DeepConvNet(
        input_dims=input_dims,
        num_filters=num_filters,
        max_pools=max_pools,
        batchnorm=batchnorm,
        num_classes=5,
        weight_scale=0.3,
        reg=0.1,
        dtype=torch.float64,
    )
    L = len(num_filters) + 1
    assert model.num_layers == L
    assert len(model.params) == (4 if batchnorm else 2) * len(num_filters) + 2
    if batchnorm:
        assert torch.all(model.params["gamma1"] == 1) and torch.all(model.params["beta1"] == 0)
    side = 8 // 2 ** len(max_pools)
    assert model.params[f"W{L}"].shape == (num_filters[-1] * side * side, 5)
    _assert_net_matches(model, lambda p: _deep_oracle(p, X, y, 0.1, num_filters, max_pools, batchnorm), X, y)

    scores = model.loss(X)
    assert scores.shape == (N, 5)
    if batchnorm:  # test mode uses the running statistics that the training call stored
        assert all(bn["mode"] == "test" and "running_mean" in bn for bn in model.bn_params)


def test_deep_convnet_defaults_and_kaiming():
    dlcv.reset_seed(0)
    model = cn.DeepConvNet(dtype=torch.float64)
    shapes = {k: tuple(v.shape) for k, v in model.params.items()}
    assert shapes["W1"] == (8, 3, 3, 3) and shapes["W5"] == (8, 8, 3, 3) and shapes["W6"] == (8, 10)
    loss, _ = model.loss(_rand(3, 3, 32, 32), torch.tensor([0, 1, 2]))
    assert float(loss) == pytest.approx(math.log(10), abs=1e-3)

    model = cn.DeepConvNet(
        num_filters=[64, 64], max_pools=[], weight_scale="kaiming", batchnorm=True, input_dims=(3, 16, 16)
    )
    assert model.params["W2"].std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)
    assert model.params["W3"].std().item() == pytest.approx(math.sqrt(1 / (64 * 16 * 16)), rel=0.05)

    calls = []

    def my_initializer(Din, Dout, K=None, relu=True, device="cpu", dtype=torch.float32):
        calls.append((Din, Dout, K, relu))
        return cn.kaiming_initializer(Din, Dout, K, relu, device, dtype)

    cn.DeepConvNet(
        num_filters=[4, 6],
        max_pools=[0],
        weight_scale="kaiming",
        weight_initializer=my_initializer,
        input_dims=(3, 8, 8),
    )
    assert calls == [(3, 4, 3, True), (4, 6, 3, True), (6 * 4 * 4, 10, None, False)]


def test_deep_convnet_save_and_load(tmp_path):
    dlcv.reset_seed(0)
    model = cn.DeepConvNet(input_dims=(3, 8, 8), num_filters=[4, 4], max_pools=[0], batchnorm=True, reg=0.3)
    X = _rand(6, 3, 8, 8, dtype=torch.float32)
    model.loss(X, torch.arange(6) % 10)  # fills the running statistics
    model.save(tmp_path / "deep.pt")
    other = cn.DeepConvNet(input_dims=(3, 8, 8), num_filters=[1], max_pools=[])
    other.load(tmp_path / "deep.pt", dtype=torch.float64, device="cpu")
    assert other.reg == 0.3 and other.max_pools == [0] and other.batchnorm and other.num_layers == 3
    assert other.bn_params[0]["running_mean"].dtype == torch.float64
    assert dlcv.rel_error(other.loss(X.double()), model.loss(X)) < 1e-5


# ---------------------------------------------------------------------------------------------------------
# The values students choose: the reference reaches the notebook's targets on the digits data set


@pytest.fixture(scope="module")
def digits():
    return dlcv.preprocess_cifar10(dataset="digits", flatten=False)


def _small(data, num_train=50, num_val=50):
    return {
        "X_train": data["X_train"][:num_train],
        "y_train": data["y_train"][:num_train],
        "X_val": data["X_val"][:num_val],
        "y_val": data["y_val"][:num_val],
    }


@pytest.mark.parametrize(
    "get_params, hidden_dims",
    [
        (fc.get_three_layer_network_params, [100, 100]),
        (fc.get_five_layer_network_params, [100, 100, 100, 100]),
    ],
)
def test_fully_connected_nets_overfit_50_examples(digits, get_params, hidden_dims):
    dlcv.reset_seed(0)
    weight_scale, learning_rate = get_params()
    model = fc.FullyConnectedNet(hidden_dims, weight_scale=weight_scale, dtype=torch.float32)
    solver = dlcv.Solver(
        model,
        _small(digits),
        num_epochs=20,
        batch_size=25,
        optim_config={"learning_rate": learning_rate},
        verbose=False,
    )
    solver.train()
    assert solver.train_acc_history[-1] == 1.0, solver.train_acc_history


def test_deep_convnet_overfits_50_examples(digits):
    dlcv.reset_seed(0)
    weight_scale, learning_rate = cn.find_overfit_parameters()
    model = cn.DeepConvNet(
        input_dims=(3, 32, 32),
        num_classes=10,
        num_filters=[8, 16, 32, 64],
        max_pools=[0, 1, 2, 3],
        reg=1e-5,
        weight_scale=weight_scale,
        dtype=torch.float32,
    )
    solver = dlcv.Solver(
        model,
        _small(digits),
        num_epochs=30,
        batch_size=10,
        update_rule=fc.adam,
        optim_config={"learning_rate": learning_rate},
        verbose=False,
    )
    solver.train()
    assert solver.train_acc_history[-1] == 1.0, solver.train_acc_history


@pytest.mark.slow
def test_create_solver_instance_reaches_the_target(digits):
    dlcv.reset_seed(0)
    data = dict(digits, X_train=digits["X_train"].flatten(1), X_val=digits["X_val"].flatten(1))
    solver = fc.create_solver_instance(data, torch.float32, "cpu")
    assert isinstance(solver.model, fc.TwoLayerNet)
    solver.train()
    assert solver.best_val_acc >= 0.93, solver.val_acc_history


@pytest.mark.slow
def test_create_convolutional_solver_instance_reaches_the_target(digits):
    dlcv.reset_seed(0)
    solver = cn.create_convolutional_solver_instance(digits, torch.float32, "cpu")
    assert isinstance(solver.model, cn.DeepConvNet)
    solver.train(time_limit=60)  # as the notebook does
    assert solver.best_val_acc >= 0.9, solver.val_acc_history


# ---------------------------------------------------------------------------------------------------------
# The files themselves: contract, solution markers, what solution code may use

COURSE_SIGNATURES = {
    fc: {
        "TwoLayerNet.__init__": [
            "self",
            "input_dim",
            "hidden_dim",
            "num_classes",
            "weight_scale",
            "reg",
            "dtype",
            "device",
        ],
        "FullyConnectedNet.__init__": [
            "self",
            "hidden_dims",
            "input_dim",
            "num_classes",
            "dropout",
            "reg",
            "weight_scale",
            "seed",
            "dtype",
            "device",
        ],
        "sgd": ["w", "dw", "config"],
        "sgd_momentum": ["w", "dw", "config"],
        "rmsprop": ["w", "dw", "config"],
        "adam": ["w", "dw", "config"],
        "create_solver_instance": ["data_dict", "dtype", "device"],
        "get_three_layer_network_params": [],
        "get_five_layer_network_params": [],
        "Dropout.forward": ["x", "dropout_param"],
    },
    cn: {
        "Conv.forward": ["x", "w", "b", "conv_param"],
        "MaxPool.forward": ["x", "pool_param"],
        "ThreeLayerConvNet.__init__": [
            "self",
            "input_dims",
            "num_filters",
            "filter_size",
            "hidden_dim",
            "num_classes",
            "weight_scale",
            "reg",
            "dtype",
            "device",
        ],
        "DeepConvNet.__init__": [
            "self",
            "input_dims",
            "num_filters",
            "max_pools",
            "batchnorm",
            "num_classes",
            "weight_scale",
            "reg",
            "weight_initializer",
            "dtype",
            "device",
        ],
        "kaiming_initializer": ["Din", "Dout", "K", "relu", "device", "dtype"],
        "BatchNorm.forward": ["x", "gamma", "beta", "bn_param"],
        "SpatialBatchNorm.forward": ["x", "gamma", "beta", "bn_param"],
        "find_overfit_parameters": [],
        "create_convolutional_solver_instance": ["data_dict", "dtype", "device"],
    },
}


@pytest.mark.parametrize("module", [fc, cn], ids=["fully_connected", "convolutional"])
def test_signatures_follow_the_spec(module):
    for qualname, params in COURSE_SIGNATURES[module].items():
        obj = module
        for part in qualname.split("."):
            obj = getattr(obj, part)
        assert list(inspect.signature(obj).parameters) == params, qualname
    layers = (
        ["Linear", "ReLU", "Linear_ReLU", "Dropout"]
        if module is fc
        else [
            "Conv",
            "ConvVectorized",
            "MaxPool",
            "FastConv",
            "FastMaxPool",
            "Conv_ReLU",
            "Conv_ReLU_Pool",
            "BatchNorm",
            "SpatialBatchNorm",
            "Linear_BatchNorm_ReLU",
            "Conv_BatchNorm_ReLU",
            "Conv_BatchNorm_ReLU_Pool",
        ]
    )
    for name in layers:
        cls = getattr(module, name)
        for method in ("forward", "backward"):
            assert isinstance(inspect.getattr_static(cls, method), staticmethod), f"{name}.{method}"
        assert list(inspect.signature(cls.backward).parameters) == ["dout", "cache"], name


def _regions(path):
    text = path.read_text()
    return text, text.splitlines(), find_regions(text, str(path))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_solution_regions_are_well_formed_with_todos(path):
    text, lines, regions = _regions(path)
    assert len(regions) >= 10
    for r in regions:
        above = []
        i = r.begin - 1
        while i >= 0 and lines[i].strip().startswith("#"):
            above.insert(0, lines[i].strip())
            i -= 1
        assert above and above[0].startswith("# TODO:"), f"{path.name} line {r.begin + 1}: no TODO above the region"
        assert len(above) <= 3, f"{path.name} line {r.begin + 1}: {len(above)} comment lines above the region"


FORBIDDEN_IN_SOLUTIONS = [
    r"\.to\(",
    r"\.cuda\(",
    r"\.cpu\(",
    r"torch\.autograd",
    r"\.backward\(\s*\)",
    r"requires_grad",
    r"torch\.nn",
    r"\bF\.\w+\(",
]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_solution_code_uses_no_autograd_no_torch_nn_and_no_device_moves(path):
    _, lines, regions = _regions(path)
    for r in regions:
        for n in range(r.begin + 1, r.end):
            code = lines[n].split("#", 1)[0]
            for pattern in FORBIDDEN_IN_SOLUTIONS:
                assert not re.search(pattern, code), f"{path.name} line {n + 1}: {lines[n].strip()!r}"


def test_the_student_version_imports_and_raises_not_implemented(tmp_path):
    package = tmp_path / "a3_networks"
    package.mkdir()
    for given in ("__init__.py", "fast_layers.py", "layer_utils.py"):  # the kit's own files, no solutions
        (package / given).write_text((ROOT / "a3_networks" / given).read_text())
    for path in SOURCES:
        stubbed, removed = stub_source(path.read_text(), f"a3_networks/{path.name}")
        assert "BEGIN SOLUTION" not in stubbed and removed
        (package / path.name).write_text(stubbed)
    script = textwrap.dedent("""
        import torch
        from a3_networks import fully_connected_networks as fc, convolutional_networks as cn
        calls = [lambda: fc.Linear.forward(torch.zeros(2, 3), torch.zeros(3, 4), torch.zeros(4)),
                 lambda: fc.adam(torch.zeros(2), torch.zeros(2)), lambda: fc.TwoLayerNet(),
                 lambda: cn.Conv.forward(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3), torch.zeros(1),
                                         {"stride": 1, "pad": 1}),
                 lambda: cn.kaiming_initializer(3, 4), lambda: cn.find_overfit_parameters()]
        for call in calls:
            try:
                call()
            except NotImplementedError:
                continue
            raise SystemExit("a stubbed function did not raise NotImplementedError")
        # the given layers work without any student code
        x = torch.randn(2, 3, 6, 6)
        out, cache = cn.FastConv.forward(x, torch.randn(4, 3, 3, 3), torch.zeros(4), {"stride": 1, "pad": 1})
        assert cn.FastConv.backward(torch.ones_like(out), cache)[0].shape == x.shape
        assert torch.allclose(fc.sgd(torch.ones(2), torch.ones(2))[0], torch.full((2,), 0.99))
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_no_region_is_needed_at_import_time():
    """Everything at module level (imports, class bodies, defaults) must sit outside the solution regions."""
    for path in SOURCES:
        text, _, regions = _regions(path)
        tree = ast.parse(text)
        for r in regions:
            enclosing = [
                n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.lineno <= r.begin + 1 <= n.end_lineno
            ]
            assert enclosing, f"{path.name} line {r.begin + 1}: a solution region outside any function"


def test_the_files_state_the_data_sets_targets_and_caps_the_grader_uses():
    """What the grader trains on, the targets there and its caps are written where the student reads them."""
    import ast as _ast
    from pathlib import Path as _Path

    from assignments.a3_networks.training import SCALE
    from grader.course import manifest

    root = _Path(__file__).resolve().parents[2]
    m = manifest.load("a3_networks", root)
    doc = {p.file: _ast.get_docstring(_ast.parse((root / p.file).read_text())) or "" for p in m.parts}
    fc, conv = doc["a3_networks/fully_connected_networks.py"], doc["a3_networks/convolutional_networks.py"]
    for text in (fc, conv):
        assert "CIFAR-10" in text and "offline digits" in text
    t = m.targets
    assert f"{t['cifar10']['two_layer_solver_accuracy']:g}% on CIFAR-10" in fc
    assert f"({t['digits']['two_layer_solver_accuracy']:g}% on the digits)" in fc
    assert f"at most {SCALE['digits']['fc_epochs']} epochs and {SCALE['digits']['fc_time_limit']:g} s" in fc
    assert f"{t['cifar10']['conv_solver_accuracy']:g}%" in conv and f"({t['digits']['conv_solver_accuracy']:g}%" in conv
    assert f"at most {SCALE['digits']['conv_epochs']} epochs" in conv
