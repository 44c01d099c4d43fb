"""
The reference solution of A2 (a2_linear) against the course's conventions (the module docstrings) and PyTorch oracles.

Oracles: `F.multi_margin_loss` and `F.cross_entropy` (plus the regulariser reg * sum(W * W)) for the losses,
`torch.autograd.grad` in float64 and `dlcv.compute_numeric_gradient` for the gradients. Every function runs on
each available device and must keep the device and the dtype, and must leave its inputs alone.
"""

import ast
import inspect
import itertools
import math
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import dlcv
from a2_linear import linear_classifier as lc
from a2_linear import two_layer_net as tln
from grader.kit.release import find_regions, stub_source

pytestmark = pytest.mark.assignment("a2_linear")  # make test-assignment A=a2_linear

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
FLOATS = [torch.float32, torch.float64]
LOSSES = [lc.svm_loss_naive, lc.svm_loss_vectorized, lc.softmax_loss_naive, lc.softmax_loss_vectorized]
SVM_LOSSES = LOSSES[:2]
SOFTMAX_LOSSES = LOSSES[2:]


def _rand(*shape, dtype=torch.float64, device="cpu", seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)


def _labels(N, C, device="cpu", seed=0):
    return torch.randint(C, (N,), generator=torch.Generator().manual_seed(seed)).to(device)


def _linear_problem(N=12, D=7, C=5, dtype=torch.float64, device="cpu", seed=0):
    """W (D, C), X (N, D), y (N,): scores of order 1, so that many hinges are active and none sits on its kink."""
    W = _rand(D, C, dtype=dtype, device=device, seed=seed) * 0.3
    X = _rand(N, D, dtype=dtype, device=device, seed=seed + 1)
    return W, X, _labels(N, C, device, seed)


def _svm_oracle(W, X, y, reg):
    """Sum over the wrong classes of the hinges, mean over N, plus the regulariser. (multi_margin_loss divides by C.)"""
    C = W.shape[1]
    return F.multi_margin_loss(X @ W, y, p=1, margin=1.0) * C + reg * (W * W).sum()


def _softmax_oracle(W, X, y, reg):
    return F.cross_entropy(X @ W, y) + reg * (W * W).sum()


def _oracle_for(loss_func):
    return _svm_oracle if loss_func in SVM_LOSSES else _softmax_oracle


def _autograd_loss_and_grad(oracle, W, X, y, reg):
    W64 = W.detach().double().requires_grad_(True)
    loss = oracle(W64, X.double(), y, reg)
    (dW,) = torch.autograd.grad(loss, W64)
    return loss.detach(), dW


# ---------------------------------------------------------------------------------------------------------
# Linear classifiers: the losses and their gradients


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reg", [0.0, 0.1])
@pytest.mark.parametrize("loss_func", LOSSES, ids=lambda f: f.__name__)
def test_linear_losses_match_pytorch_and_autograd(loss_func, reg, dtype, device):
    W, X, y = _linear_problem(dtype=dtype, device=device)
    W_before, X_before, y_before = W.clone(), X.clone(), y.clone()

    loss, dW = loss_func(W, X, y, reg)

    assert torch.is_tensor(loss) and loss.dim() == 0, f"loss must be a 0-dim tensor, got {loss!r}"
    assert loss.dtype == dtype and loss.device == W.device
    assert dW.shape == W.shape and dW.dtype == dtype and dW.device == W.device
    expected_loss, expected_dW = _autograd_loss_and_grad(_oracle_for(loss_func), W, X, y, reg)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    assert dlcv.rel_error(loss, expected_loss) < tolerance
    assert dlcv.rel_error(dW, expected_dW) < tolerance
    assert torch.equal(W, W_before) and torch.equal(X, X_before) and torch.equal(y, y_before)


@pytest.mark.parametrize("reg", [0.0, 0.05])
@pytest.mark.parametrize("loss_func", LOSSES, ids=lambda f: f.__name__)
def test_linear_gradients_match_numeric_gradient(loss_func, reg):
    # The course: numeric gradient checks < 1e-5 with reg 0 and reg > 0 (float64).
    W, X, y = _linear_problem(N=8, D=6, C=4, seed=3)
    _, dW = loss_func(W, X, y, reg)
    dW_numeric = dlcv.compute_numeric_gradient(lambda w: loss_func(w, X, y, reg)[0], W.clone())
    assert dlcv.rel_error(dW, dW_numeric) < 1e-5


def test_svm_gradient_ignores_the_correct_class_hinge_and_inactive_hinges():
    # One example, three classes: scores [2, 0, 1.5], label 0. Hinges: class 1: 0 - 2 + 1 < 0 (inactive);
    # class 2: 1.5 - 2 + 1 = 0.5 (active). Loss 0.5; dscores = [-1, 0, 1].
    X = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    W = torch.tensor([[2.0, 0.0, 1.5], [0.3, -0.2, 0.1]], dtype=torch.float64)
    y = torch.tensor([0])
    for loss_func in SVM_LOSSES:
        loss, dW = loss_func(W, X, y, 0.0)
        assert float(loss) == pytest.approx(0.5)
        assert dW.tolist() == [[-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]], loss_func.__name__


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("reg", [0.0, 1e-3])
def test_naive_and_vectorized_agree(reg, dtype):
    # The course: naive vs vectorized < 1e-6 (here in the relative-error sense, on CIFAR-like sizes cut down).
    W, X, y = _linear_problem(N=40, D=50, C=10, dtype=dtype, seed=5)
    tolerance = 1e-6 if dtype == torch.float32 else 1e-12
    for naive, vectorized in (SVM_LOSSES, SOFTMAX_LOSSES):
        loss_naive, dW_naive = naive(W, X, y, reg)
        loss_vec, dW_vec = vectorized(W, X, y, reg)
        assert dlcv.rel_error(loss_naive, loss_vec) < tolerance, naive.__name__
        assert dlcv.rel_error(dW_naive, dW_vec) < tolerance, naive.__name__


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("loss_func", SOFTMAX_LOSSES, ids=lambda f: f.__name__)
def test_softmax_is_numerically_stable_on_huge_scores(loss_func, dtype):
    W, X, y = _linear_problem(N=6, D=5, C=4, dtype=dtype, seed=7)
    X = X * 2e4  # scores of order 1e4: exp overflows without the shift by the row maximum
    assert (X @ W).abs().max() > 1e3
    loss, dW = loss_func(W, X, y, 0.0)
    assert torch.isfinite(loss) and torch.isfinite(dW).all()
    expected_loss, expected_dW = _autograd_loss_and_grad(_softmax_oracle, W, X, y, 0.0)
    assert dlcv.rel_error(loss, expected_loss) < (1e-4 if dtype == torch.float32 else 1e-10)
    assert dlcv.rel_error(dW, expected_dW) < (1e-4 if dtype == torch.float32 else 1e-10)


def test_sanity_losses_at_small_random_weights():
    # The course: at W = 1e-4 randn on 10 classes the SVM loss is near 9 (9 wrong classes, each hinge near 1) and the
    # softmax loss near log(10). Random stand-in data of CIFAR's width and scale.
    generator = torch.Generator().manual_seed(0)
    X = torch.rand(200, 3073, generator=generator) - 0.5
    y = torch.randint(10, (200,), generator=generator)
    W = 1e-4 * torch.randn(3073, 10, generator=generator)
    for svm in SVM_LOSSES:
        assert float(svm(W, X, y, 0.0)[0]) == pytest.approx(9.0, abs=0.05)
    for softmax in SOFTMAX_LOSSES:
        assert float(softmax(W, X, y, 0.0)[0]) == pytest.approx(math.log(10), abs=0.01)


# ---------------------------------------------------------------------------------------------------------
# Linear classifiers: sampling, training, prediction


@pytest.mark.parametrize("device", DEVICES)
def test_sample_batch_draws_with_replacement_from_the_first_num_train_rows(device):
    N, D, num_train, batch_size = 15, 3, 10, 400
    X = torch.arange(N, dtype=torch.float64, device=device)[:, None].repeat(1, D)  # row i is all i
    y = 100 + torch.arange(N, device=device)
    X_before = X.clone()
    dlcv.reset_seed(0)
    X_batch, y_batch = lc.sample_batch(X, y, num_train, batch_size)

    assert X_batch.shape == (batch_size, D) and y_batch.shape == (batch_size,)
    assert X_batch.device == X.device and y_batch.device == X.device and X_batch.dtype == X.dtype
    rows = X_batch[:, 0].long()
    assert torch.equal(X_batch, X[rows]) and torch.equal(y_batch, y[rows])  # labels travel with their rows
    assert rows.min() >= 0 and rows.max() < num_train  # only the first num_train rows
    assert set(rows.tolist()) == set(range(num_train))  # 400 draws from 10 rows reach every row
    assert torch.equal(X, X_before)

    dlcv.reset_seed(0)
    X_again, _ = lc.sample_batch(X, y, num_train, batch_size)
    assert torch.equal(X_again, X_batch)  # random only through torch's generator: seeding repeats it


def test_sample_batch_repeats_rows_when_the_batch_is_small():
    # With replacement, a batch of 20 from 30 rows repeats some row in all but a tiny fraction of draws.
    X = torch.arange(30, dtype=torch.float32)[:, None]
    y = torch.arange(30)
    dlcv.reset_seed(0)
    repeats = sum(len(set(lc.sample_batch(X, y, 30, 20)[1].tolist())) < 20 for _ in range(20))
    assert repeats >= 18


def _blobs(N=300, D=10, C=3, dtype=torch.float32, device="cpu", seed=0):
    """Well-separated Gaussian clusters, one per class, with a bias column of ones."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(C, (N,), generator=generator)
    centres = 3 * torch.randn(C, D - 1, generator=generator, dtype=torch.float64)
    X = centres[y] + torch.randn(N, D - 1, generator=generator, dtype=torch.float64)
    X = torch.cat([X, torch.ones(N, 1, dtype=torch.float64)], dim=1)
    return X.to(dtype=dtype, device=device), y.to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("loss_func", [lc.svm_loss_vectorized, lc.softmax_loss_vectorized], ids=lambda f: f.__name__)
def test_train_linear_classifier_lowers_the_loss(loss_func, device):
    X, y = _blobs(device=device)
    dlcv.reset_seed(0)
    W, loss_history = lc.train_linear_classifier(loss_func, None, X, y, learning_rate=1e-2, reg=1e-4, num_iters=200)
    assert W.shape == (10, 3) and W.dtype == X.dtype and W.device == X.device
    assert len(loss_history) == 200 and all(type(v) is float for v in loss_history)
    assert sum(loss_history[-20:]) / 20 < 0.5 * sum(loss_history[:20]) / 20
    y_pred = lc.predict_linear_classifier(W, X)
    assert (y_pred == y).double().mean() > 0.9


def test_train_linear_classifier_initialises_and_steps_like_plain_sgd():
    X, y = _blobs(N=50, D=4, C=3, dtype=torch.float64)
    seen, gradient = [], torch.full((4, 3), 0.5, dtype=torch.float64)

    def constant_gradient(W, X_batch, y_batch, reg):
        seen.append(W.clone())
        assert X_batch.shape == (7, 4) and reg == 0.25
        return torch.tensor(1.0, dtype=torch.float64), gradient

    dlcv.reset_seed(0)
    W, history = lc.train_linear_classifier(
        constant_gradient, None, X, y, learning_rate=0.1, reg=0.25, num_iters=3, batch_size=7
    )
    W0 = seen[0]
    assert W0.shape == (4, 3) and W0.dtype == torch.float64  # C = max(y) + 1 = 3, X's dtype
    assert 0 < W0.abs().max() < 1e-5  # 1e-6 * randn
    for k, W_k in enumerate([*seen, W]):
        assert torch.allclose(W_k, W0 - k * 0.1 * gradient, rtol=0, atol=1e-12)
    assert history == [1.0, 1.0, 1.0]

    W_start = torch.ones(4, 3, dtype=torch.float64)
    W_end, _ = lc.train_linear_classifier(constant_gradient, W_start, X, y, 0.1, 0.25, 2, 7)
    assert torch.equal(W_start, torch.ones(4, 3, dtype=torch.float64))  # the W passed in is left alone
    assert torch.allclose(W_end, W_start - 0.2 * gradient)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOATS)
def test_predict_linear_classifier(dtype, device):
    W, X, _ = _linear_problem(N=20, D=6, C=4, dtype=dtype, device=device)
    y_pred = lc.predict_linear_classifier(W, X)
    assert y_pred.dtype == torch.int64 and y_pred.device == X.device
    assert torch.equal(y_pred, (X.double() @ W.double()).argmax(dim=1))


@pytest.mark.parametrize("cls", [lc.LinearSVM, lc.Softmax])
def test_classifier_classes_train_predict_save_load(cls, tmp_path, capsys):
    X, y = _blobs()
    dlcv.reset_seed(0)
    model = cls()
    history = model.train(X, y, learning_rate=1e-2, num_iters=50)
    assert len(history) == 50 and model.W.shape == (10, 3)
    path = str(tmp_path / "w.pt")
    model.save(path)
    other = cls()
    other.load(path)
    assert torch.equal(other.W, model.W) and torch.equal(other.predict(X), model.predict(X))
    expected = lc.svm_loss_vectorized if cls is lc.LinearSVM else lc.softmax_loss_vectorized
    W = model.W.clone()
    assert torch.equal(model.loss(W, X, y, 0.1)[1], expected(W, X, y, 0.1)[1])


@pytest.mark.parametrize("cls", [lc.LinearSVM, lc.Softmax])
def test_test_one_param_set_returns_the_trained_instance_and_fractions(cls):
    X, y = _blobs(N=400)
    data = {"X_train": X[:300], "y_train": y[:300], "X_val": X[300:], "y_val": y[300:]}
    dlcv.reset_seed(0)
    model = cls()
    returned, train_acc, val_acc = lc.test_one_param_set(model, data, 1e-2, 1e-4, num_iters=100)
    assert returned is model and model.W is not None
    assert type(train_acc) is float and type(val_acc) is float
    assert train_acc == pytest.approx((model.predict(X[:300]) == y[:300]).double().mean().item())
    assert val_acc == pytest.approx((model.predict(X[300:]) == y[300:]).double().mean().item())
    assert 0.9 < val_acc <= 1.0


@pytest.mark.parametrize(
    "get_params", [lc.svm_get_search_params, lc.softmax_get_search_params], ids=lambda f: f.__name__
)
def test_linear_search_params_respect_the_limits(get_params):
    learning_rates, regularization_strengths = get_params()
    assert len(learning_rates) >= 2 and len(regularization_strengths) >= 2
    assert len(learning_rates) * len(regularization_strengths) < 25
    assert all(lr > 0 for lr in learning_rates) and all(reg >= 0 for reg in regularization_strengths)


# ---------------------------------------------------------------------------------------------------------
# Two-layer net


def _toy(dtype=torch.float64, device="cpu"):
    """The course's toy problem: X = 10 randn(5, 4), y = [0, 1, 2, 2, 1], hidden 10, classes 3, weights 1e-4 randn."""
    dlcv.reset_seed(0)
    params = {
        "W1": 1e-4 * torch.randn(4, 10, dtype=dtype, device=device),
        "b1": torch.zeros(10, dtype=dtype, device=device),
        "W2": 1e-4 * torch.randn(10, 3, dtype=dtype, device=device),
        "b2": torch.zeros(3, dtype=dtype, device=device),
    }
    X = 10.0 * torch.randn(5, 4, dtype=dtype, device=device)
    y = torch.tensor([0, 1, 2, 2, 1], device=device)
    return X, y, params


def _random_params(D=4, H=10, C=3, dtype=torch.float64, device="cpu", seed=0):
    """Weights of order 1 and non-zero biases, so that every gradient is far from zero."""
    return {
        "W1": _rand(D, H, dtype=dtype, device=device, seed=seed) * 0.5,
        "b1": _rand(H, dtype=dtype, device=device, seed=seed + 1) * 0.5,
        "W2": _rand(H, C, dtype=dtype, device=device, seed=seed + 2) * 0.5,
        "b2": _rand(C, dtype=dtype, device=device, seed=seed + 3) * 0.5,
    }


def _net_oracle(params, X, y, reg):
    hidden = F.relu(X @ params["W1"] + params["b1"])
    scores = hidden @ params["W2"] + params["b2"]
    return F.cross_entropy(scores, y) + reg * ((params["W1"] ** 2).sum() + (params["W2"] ** 2).sum())


def _clone(params):
    return {k: v.clone() for k, v in params.items()}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOATS)
def test_nn_forward_pass(dtype, device, monkeypatch):
    params = _random_params(dtype=dtype, device=device)
    X = _rand(6, 4, dtype=dtype, device=device, seed=9)
    params_before, X_before = _clone(params), X.clone()

    def forbidden(*args, **kwargs):
        raise AssertionError("nn_forward_pass must write its own ReLU (torch.relu and torch.nn are not allowed)")

    for owner, name in [
        (torch, "relu"),
        (torch, "relu_"),
        (torch.Tensor, "relu"),
        (torch.Tensor, "relu_"),
        (F, "relu"),
        (F, "linear"),
    ]:
        monkeypatch.setattr(owner, name, forbidden)
    scores, hidden = tln.nn_forward_pass(params, X)
    monkeypatch.undo()

    hidden64 = (X.double() @ params["W1"].double() + params["b1"].double()).clamp(min=0)
    scores64 = hidden64 @ params["W2"].double() + params["b2"].double()
    assert scores.shape == (6, 3) and hidden.shape == (6, 10)
    assert scores.dtype == dtype and hidden.dtype == dtype and scores.device == X.device
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    assert dlcv.rel_error(hidden, hidden64) < tolerance and dlcv.rel_error(scores, scores64) < tolerance
    assert (hidden >= 0).all() and (hidden == 0).any()
    assert torch.equal(X, X_before) and all(torch.equal(params[k], params_before[k]) for k in params)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reg", [0.0, 0.05])
def test_nn_forward_backward_on_the_toy_problem_matches_autograd(reg, device):
    X, y, params = _toy(device=device)
    params_before, X_before = _clone(params), X.clone()

    scores = tln.nn_forward_backward(params, X)
    assert torch.is_tensor(scores) and scores.shape == (5, 3)
    assert torch.equal(scores, tln.nn_forward_pass(params, X)[0])

    loss, grads = tln.nn_forward_backward(params, X, y, reg)
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    expected_loss = _net_oracle(leaves, X, y, reg)
    expected = dict(zip(leaves, torch.autograd.grad(expected_loss, list(leaves.values()))))

    assert torch.is_tensor(loss) and loss.dim() == 0 and loss.dtype == torch.float64 and loss.device == X.device
    assert dlcv.rel_error(loss, expected_loss.detach()) < 1e-12
    assert set(grads) == {"W1", "b1", "W2", "b2"}
    for name in params:
        assert grads[name].shape == params[name].shape and grads[name].device == X.device
        assert dlcv.rel_error(grads[name], expected[name]) < 1e-8, name
    assert torch.equal(X, X_before) and all(torch.equal(params[k], params_before[k]) for k in params)


@pytest.mark.parametrize("reg", [0.0, 0.05])
def test_nn_gradients_match_numeric_gradient(reg):
    # The course: numeric gradient < 1e-4 (float64). Weights of order 1, so the check is not dominated by rounding.
    params = _random_params(seed=4)
    X = _rand(5, 4, seed=10) * 2
    y = torch.tensor([0, 1, 2, 2, 1])
    _, grads = tln.nn_forward_backward(params, X, y, reg)
    for name in params:

        def f(value, name=name):
            return tln.nn_forward_backward({**params, name: value}, X, y, reg)[0]

        numeric = dlcv.compute_numeric_gradient(f, params[name].clone())
        assert dlcv.rel_error(grads[name], numeric) < 1e-7, name


def test_nn_gradients_match_numeric_gradient_on_the_toy_problem():
    # The course's own check: < 1e-4 in float64. With weights of 1e-4 the gradients are tiny (b1's about 1e-8), so the
    # centred difference is only good to about 1e-5 here (measured: W1 1.5e-6, b1 1.6e-5, W2 1.1e-6, b2 5e-10).
    X, y, params = _toy()
    _, grads = tln.nn_forward_backward(params, X, y, 0.05)
    for name in params:

        def f(value, name=name):
            return tln.nn_forward_backward({**params, name: value}, X, y, 0.05)[0]

        numeric = dlcv.compute_numeric_gradient(f, params[name].clone())
        assert dlcv.rel_error(grads[name], numeric) < 1e-4, name


@pytest.mark.parametrize("dtype", FLOATS)
def test_nn_forward_backward_float32_and_huge_scores(dtype):
    params = _random_params(dtype=dtype)
    X = _rand(5, 4, dtype=dtype, seed=11) * 1e4  # scores of order 1e4
    y = torch.tensor([0, 1, 2, 2, 1])
    loss, grads = tln.nn_forward_backward(params, X, y, 0.01)
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads.values())
    assert loss.dtype == dtype and all(g.dtype == dtype for g in grads.values())
    leaves = {k: v.detach().double().requires_grad_(True) for k, v in params.items()}
    expected_loss = _net_oracle(leaves, X.double(), y, 0.01)
    expected = dict(zip(leaves, torch.autograd.grad(expected_loss, list(leaves.values()))))
    tolerance = 1e-4 if dtype == torch.float32 else 1e-10
    assert dlcv.rel_error(loss, expected_loss.detach()) < tolerance
    for name in params:
        assert dlcv.rel_error(grads[name], expected[name]) < tolerance, name


@pytest.mark.parametrize("device", DEVICES)
def test_nn_train_on_the_toy_problem(device):
    # The course: toy training final loss < 1.0. With 5 examples every iteration is an epoch, so the default decay
    # (0.95 per epoch) would shrink the learning rate 0.95 ** 200-fold; train without decay.
    X, y, params = _toy(device=device)
    W1 = params["W1"]
    stats = tln.nn_train(
        params,
        tln.nn_forward_backward,
        tln.nn_predict,
        X,
        y,
        X,
        y,
        learning_rate=1e-1,
        learning_rate_decay=1.0,
        reg=1e-6,
        num_iters=200,
    )
    assert set(stats) == {"loss_history", "train_acc_history", "val_acc_history"}
    assert len(stats["loss_history"]) == 200 and all(type(v) is float for v in stats["loss_history"])
    assert stats["loss_history"][0] == pytest.approx(math.log(3), abs=1e-3)
    assert stats["loss_history"][-1] < 1.0
    assert len(stats["val_acc_history"]) == 200 and stats["val_acc_history"][-1] == 1.0
    assert params["W1"] is W1 and not torch.equal(W1, _toy(device=device)[2]["W1"])  # updated in place


def test_nn_train_decays_the_learning_rate_once_per_epoch():
    # A fake loss whose gradient is all ones: each step moves every parameter by exactly -learning_rate, so the
    # parameters' history reveals the learning rate of each step. 9 training rows, batch 4: epochs of 2 steps.
    params = {
        "W1": torch.zeros(2, 3, dtype=torch.float64),
        "b1": torch.zeros(3, dtype=torch.float64),
        "W2": torch.zeros(3, 2, dtype=torch.float64),
        "b2": torch.zeros(2, dtype=torch.float64),
    }
    X, y = torch.zeros(9, 2, dtype=torch.float64), torch.zeros(9, dtype=torch.int64)
    X_val, y_val = torch.zeros(3, 2, dtype=torch.float64), torch.tensor([0, 1, 1])
    b2_history, predicted = [], []

    def fake_loss(params, X_batch, y=None, reg=0.0):
        assert y is not None and X_batch.shape == (4, 2) and reg == 0.5
        b2_history.append(params["b2"][0].item())
        return torch.tensor(2.0, dtype=torch.float64), {k: torch.ones_like(v) for k, v in params.items()}

    def fake_predict(params, loss_func, X_any):
        assert loss_func is fake_loss
        predicted.append(X_any.shape[0])
        return torch.zeros(X_any.shape[0], dtype=torch.int64)

    stats = tln.nn_train(
        params,
        fake_loss,
        fake_predict,
        X,
        y,
        X_val,
        y_val,
        learning_rate=1.0,
        learning_rate_decay=0.5,
        reg=0.5,
        num_iters=7,
        batch_size=4,
    )
    b2_history.append(params["b2"][0].item())
    steps = [before - after for before, after in itertools.pairwise(b2_history)]
    assert steps == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125])
    assert stats["loss_history"] == [2.0] * 7
    assert stats["train_acc_history"] == [1.0] * 3  # the batch labels are all 0, as predicted
    assert stats["val_acc_history"] == pytest.approx([1 / 3] * 3)
    assert predicted == [4, 3] * 3  # once per completed epoch: the minibatch, then the validation set


@pytest.mark.parametrize("device", DEVICES)
def test_nn_predict(device):
    params = _random_params(dtype=torch.float32, device=device)
    X = _rand(8, 4, dtype=torch.float32, device=device, seed=12)
    y_pred = tln.nn_predict(params, tln.nn_forward_backward, X)
    assert y_pred.dtype == torch.int64 and y_pred.shape == (8,) and y_pred.device == X.device
    assert torch.equal(y_pred, tln.nn_forward_pass(params, X)[0].argmax(dim=1))


def test_two_layer_net_class(tmp_path, capsys):
    dlcv.reset_seed(0)
    net = tln.TwoLayerNet(4, 10, 3, dtype=torch.float64, device="cpu", std=1e-1)
    shapes = {k: tuple(v.shape) for k, v in net.params.items()}
    assert shapes == {"W1": (4, 10), "b1": (10,), "W2": (10, 3), "b2": (3,)}
    assert not net.params["b1"].any() and not net.params["b2"].any()
    X, y, _ = _toy()
    stats = net.train(X, y, X, y, learning_rate=1e-1, learning_rate_decay=1.0, reg=1e-6, num_iters=100)
    assert stats["loss_history"][-1] < 0.1
    assert torch.equal(net.predict(X), y)
    path = str(tmp_path / "net.pt")
    net.save(path)
    other = tln.TwoLayerNet(4, 10, 3, dtype=torch.float64, device="cpu")
    other.load(path)
    assert all(torch.equal(other.params[k], net.params[k]) for k in net.params)


def test_nn_search_params_respect_the_limits():
    learning_rates, hidden_sizes, regularization_strengths, decays = tln.nn_get_search_params()
    lists = (learning_rates, hidden_sizes, regularization_strengths, decays)
    assert all(len(values) >= 1 for values in lists)
    assert math.prod(len(values) for values in lists) < 256
    assert all(lr > 0 for lr in learning_rates) and all(type(h) is int and h > 0 for h in hidden_sizes)
    assert all(reg >= 0 for reg in regularization_strengths) and all(0 < d <= 1 for d in decays)


def test_find_best_net_keeps_the_best_combination():
    X, y = _blobs(N=400, D=8, C=3, dtype=torch.float64)
    data = {"X_train": X[:300], "y_train": y[:300], "X_val": X[300:], "y_val": y[300:]}
    # A learning rate of 0 leaves the net at its tiny initial weights (chance accuracy); 0.1 learns. (Every step
    # is an epoch here: no decay.)
    dlcv.reset_seed(0)
    best_net, best_stat, best_val_acc = tln.find_best_net(data, lambda: ([0.0, 1e-1], [6], [1e-4], [1.0]))
    assert isinstance(best_net, tln.TwoLayerNet)
    assert best_net.params["W1"].shape == (8, 6) and best_net.params["W2"].shape == (6, 3)
    assert best_net.params["W1"].dtype == torch.float64 and best_net.params["W1"].device == X.device
    assert set(best_stat) == {"loss_history", "train_acc_history", "val_acc_history"}
    assert type(best_val_acc) is float
    assert best_val_acc == pytest.approx((best_net.predict(X[300:]) == y[300:]).double().mean().item())
    assert best_val_acc > 0.9


# ---------------------------------------------------------------------------------------------------------
# The digits stand-in: the chosen hyperparameters learn (CIFAR-10 is not on this machine)


@pytest.fixture(scope="module")
def digits():
    return dlcv.preprocess_cifar10(bias_trick=True, dataset="digits")


def test_linear_classifiers_learn_digits(digits, capsys):
    # One combination each, few iterations: the full searches run in about 10-20 s each on an idle CPU.
    results = {}
    for cls, get_params, lr, reg in [
        (lc.LinearSVM, lc.svm_get_search_params, 1e-2, 1e-2),
        (lc.Softmax, lc.softmax_get_search_params, 1e-1, 1e-3),
    ]:
        learning_rates, regularization_strengths = get_params()
        assert lr in learning_rates and reg in regularization_strengths  # a combination the search tries
        dlcv.reset_seed(0)
        _, _, val_acc = lc.test_one_param_set(cls(), digits, lr, reg, num_iters=300)
        results[cls.__name__] = val_acc
    with capsys.disabled():
        print(f"\n[digits, 300 iterations] val accuracy: {results}")
    assert all(v > 0.9 for v in results.values()), results


def test_two_layer_net_learns_digits(digits):
    X_train, X_val = digits["X_train"][:, :-1], digits["X_val"][:, :-1]  # no bias column for the net
    dlcv.reset_seed(0)
    net = tln.TwoLayerNet(3072, 32, 10, device="cpu")
    net.train(X_train, digits["y_train"], X_val, digits["y_val"], learning_rate=3e-1, reg=1e-4, num_iters=200)
    assert (net.predict(X_val) == digits["y_val"]).double().mean() > 0.8


# ---------------------------------------------------------------------------------------------------------
# The files themselves: no autograd, no loops where forbidden, solution regions that release cleanly

MODULES = [lc, tln]


def _function_node(module, name):
    tree = ast.parse(inspect.getsource(module))
    return next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_no_autograd_and_no_torch_nn(module):
    tree = ast.parse(inspect.getsource(module))
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    used |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not used & {"backward", "autograd", "requires_grad", "requires_grad_", "nn", "relu", "cuda", "cpu"}
    calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert "to" not in calls


@pytest.mark.parametrize(
    "module, name",
    [
        (lc, "svm_loss_vectorized"),
        (lc, "softmax_loss_vectorized"),
        (lc, "predict_linear_classifier"),
        (lc, "sample_batch"),
        (tln, "nn_forward_pass"),
        (tln, "nn_forward_backward"),
        (tln, "nn_predict"),
    ],
)
def test_vectorized_functions_have_no_loops(module, name):
    loops = (ast.For, ast.While, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
    assert not [n for n in ast.walk(_function_node(module, name)) if isinstance(n, loops)]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_solution_regions_release_cleanly(module):
    source = inspect.getsource(module)
    lines = source.splitlines()
    regions = find_regions(source, module.__name__)
    assert regions
    for region in regions:  # a TODO comment right above each region
        above = [line.strip() for line in lines[max(region.begin - 3, 0) : region.begin]]
        assert any(line.startswith("# TODO:") for line in above), f"no TODO above line {region.begin + 1}"

    stubbed, removed = stub_source(source, module.__name__)
    assert "BEGIN SOLUTION" not in stubbed and removed
    student = types.ModuleType(f"student_{module.__name__.rsplit('.', 1)[1]}")
    exec(compile(stubbed, f"<stubbed {module.__name__}>", "exec"), student.__dict__)  # imports cleanly
    if module is lc:
        W, X, y = _linear_problem()
        for name in ("svm_loss_naive", "svm_loss_vectorized", "softmax_loss_naive", "softmax_loss_vectorized"):
            with pytest.raises(NotImplementedError, match=name):
                getattr(student, name)(W, X, y, 0.0)
        assert isinstance(student.LinearSVM(), student.LinearClassifier)
    else:
        X, y, params = _toy()
        with pytest.raises(NotImplementedError, match="nn_forward_pass"):
            student.nn_forward_backward(params, X, y)
        assert student.TwoLayerNet(4, 10, 3, device="cpu").params["W1"].shape == (4, 10)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_spec_name_is_defined(module):
    names = {
        lc: [
            "svm_loss_naive",
            "svm_loss_vectorized",
            "softmax_loss_naive",
            "softmax_loss_vectorized",
            "sample_batch",
            "train_linear_classifier",
            "predict_linear_classifier",
            "LinearClassifier",
            "LinearSVM",
            "Softmax",
            "svm_get_search_params",
            "softmax_get_search_params",
            "test_one_param_set",
        ],
        tln: [
            "TwoLayerNet",
            "nn_forward_pass",
            "nn_forward_backward",
            "nn_train",
            "nn_predict",
            "nn_get_search_params",
            "find_best_net",
        ],
    }[module]
    assert all(hasattr(module, name) for name in names)
    signature = inspect.signature
    assert list(signature(lc.train_linear_classifier).parameters) == [
        "loss_func",
        "W",
        "X",
        "y",
        "learning_rate",
        "reg",
        "num_iters",
        "batch_size",
        "verbose",
    ]
    assert list(signature(tln.nn_train).parameters) == [
        "params",
        "loss_func",
        "pred_func",
        "X",
        "y",
        "X_val",
        "y_val",
        "learning_rate",
        "learning_rate_decay",
        "reg",
        "num_iters",
        "batch_size",
        "verbose",
    ]
    assert signature(lc.test_one_param_set).parameters["num_iters"].default == 2000
    assert signature(tln.TwoLayerNet).parameters["std"].default == 1e-4


def test_the_given_classes_come_from_the_kit():
    """LinearClassifier, LinearSVM, Softmax and TwoLayerNet live in a kit module that is never taken from a
    submission; the student files only re-export them, and hold nothing but what students write."""
    from a2_linear import classifiers
    from grader.course import manifest

    m = manifest.load("a2_linear", Path(__file__).resolve().parents[2])
    assert "a2_linear/classifiers.py" not in m.files
    assert "a2_linear" in m.sandbox_paths  # the kit's copy is what the sandbox runs
    for name in ("LinearClassifier", "LinearSVM", "Softmax"):
        assert getattr(lc, name) is getattr(classifiers, name)
    assert tln.TwoLayerNet is classifiers.TwoLayerNet
    for module in MODULES:
        assert not [n for n in ast.parse(inspect.getsource(module)).body if isinstance(n, ast.ClassDef)]


def test_the_given_two_layer_net_follows_the_device_of_its_data():
    """Code that leaves out `device=` (as the course's own notebooks sometimes do) works on the grader's CPU: the
    given net starts on the CPU and moves its parameters to the data's device in loss, train and predict."""
    from a2_linear.classifiers import TwoLayerNet

    torch.manual_seed(0)
    net = TwoLayerNet(4, 5, 3)
    assert all(p.device.type == "cpu" for p in net.params.values())
    X, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    loss, grads = net.loss(X, y, reg=0.1)
    assert loss.device == X.device and set(grads) == set(net.params)
    assert net.predict(X).shape == (6,)
    if torch.cuda.is_available():  # and on a GPU, where the data is
        Xc, yc = X.cuda(), y.cuda()
        net.loss(Xc, yc)
        assert all(p.is_cuda for p in net.params.values())
