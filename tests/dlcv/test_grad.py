"""Tests of dlcv.grad (rel_error, numeric gradients) and dlcv.utils.reset_seed, with PyTorch autograd as the oracle."""

import random

import pytest
import torch

import dlcv


def test_rel_error_examples():
    x = torch.tensor([1.0, 2.0, 3.0])
    assert dlcv.rel_error(x, x) == 0.0
    assert dlcv.rel_error(x, x.clone()) == 0.0
    # max|x - y| = 0.5, max(|x| + |y|) = 6.5
    assert dlcv.rel_error(x, torch.tensor([1.0, 2.5, 3.5])) == pytest.approx(0.5 / 6.5)
    assert dlcv.rel_error(torch.tensor([1.0]), torch.tensor([-1.0])) == pytest.approx(1.0)
    # Two zero tensors: the denominator is clamped at eps instead of dividing 0 by 0.
    assert dlcv.rel_error(torch.zeros(3), torch.zeros(3)) == 0.0
    assert dlcv.rel_error(torch.zeros(2), torch.tensor([1e-12, 0.0])) == pytest.approx(1e-12 / 1e-10)
    assert dlcv.rel_error(torch.zeros(2), torch.tensor([1e-12, 0.0]), eps=1e-20) == pytest.approx(1.0)
    assert isinstance(dlcv.rel_error(x, x + 1), float)


def test_rel_error_mixed_dtypes_and_numbers():
    x = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    assert dlcv.rel_error(x, x.float()) == 0.0
    assert dlcv.rel_error(torch.tensor(2.0), 2.0) == 0.0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_rel_error_across_devices():
    x = torch.randn(4, 5, dtype=torch.float64)
    assert dlcv.rel_error(x.cuda(), x) == 0.0
    assert dlcv.rel_error(x, x.cuda() * 2) == pytest.approx(1 / 3)


def _autograd(f, x, dLdf=None):
    x = x.detach().clone().requires_grad_(True)
    out = f(x)
    (grad,) = torch.autograd.grad(out, x, grad_outputs=dLdf)
    return grad


def test_numeric_gradient_of_a_scalar_function():
    torch.manual_seed(0)
    x = torch.randn(3, 4, dtype=torch.float64)
    W = torch.randn(4, 2, dtype=torch.float64)

    def f(x):
        return ((x @ W).tanh() ** 2).sum() + (x**3).mean()

    x_before = x.clone()
    grad = dlcv.compute_numeric_gradient(f, x)
    assert grad.shape == x.shape and grad.dtype == x.dtype
    assert torch.equal(x, x_before), "compute_numeric_gradient must restore x"
    assert dlcv.rel_error(grad, _autograd(f, x)) < 1e-7


def test_numeric_gradient_with_upstream_gradient():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    dLdf = torch.randn(2, 3, 5, dtype=torch.float64)

    def f(x):
        return x.sin() * x.sum(dim=2, keepdim=True)  # (2, 3, 5): every output depends on several inputs

    grad = dlcv.compute_numeric_gradient(f, x, dLdf)
    assert dlcv.rel_error(grad, _autograd(f, x, dLdf)) < 1e-7
    # A known closed form: f(x) = 3x elementwise has dL/dx = 3 dLdf.
    assert dlcv.rel_error(dlcv.compute_numeric_gradient(lambda x: 3 * x, x, dLdf), 3 * dLdf) < 1e-7


def test_numeric_gradient_accepts_python_numbers_and_restores_x_on_error():
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    grad = dlcv.compute_numeric_gradient(lambda x: float((x**2).sum()), x)
    assert dlcv.rel_error(grad, 2 * x) < 1e-7

    calls = []

    def failing(x):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return x.sum()

    with pytest.raises(RuntimeError, match="boom"):
        dlcv.compute_numeric_gradient(failing, x)
    assert x.tolist() == [1.0, 2.0]


def test_numeric_gradient_rejects_mismatched_upstream():
    x = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="dLdf has 2 elements"):
        dlcv.compute_numeric_gradient(lambda x: x * 2, x, torch.ones(2))


def test_grad_check_sparse_reports_small_and_large_errors(capsys):
    torch.manual_seed(2)
    x = torch.randn(6, 7, dtype=torch.float64)

    def f(x):
        return (x.exp() * x).sum()

    good = _autograd(f, x)
    x_before = x.clone()
    dlcv.reset_seed(0)
    error = dlcv.grad_check_sparse(f, x, good, num_checks=5)
    assert error < 1e-6
    assert torch.equal(x, x_before)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and all(line.startswith("numerical:") and "relative error" in line for line in lines)

    assert dlcv.grad_check_sparse(f, x, 2 * good, num_checks=5) == pytest.approx(1 / 3, rel=1e-5)


def test_reset_seed_repeats_every_generator():
    np = pytest.importorskip("numpy")

    def draw():
        return random.random(), torch.rand(3).tolist(), np.random.rand()

    dlcv.reset_seed(123)
    first = draw()
    dlcv.reset_seed(123)
    assert draw() == first
    dlcv.reset_seed(124)
    assert draw() != first
