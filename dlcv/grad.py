"""
Gradient checking: relative errors and centred-difference numeric gradients.

Compute numeric gradients in float64: with float32 and h = 1e-7 the differences drown in rounding error.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import torch


def rel_error(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-10) -> float:
    """
    Relative error between two tensors: max|x - y| / max(|x| + |y|), the denominator clamped at eps.

    0 means identical; values below about 1e-7 mean "equal up to floating-point rounding" in float64.

    Inputs:
    - x: tensor of any shape, on any device (or a number).
    - y: tensor of the same shape as x (or broadcastable to it); it is moved to x's device if needed.
    - eps: the smallest denominator, so that two zero tensors have error 0 instead of 0 / 0.

    Returns:
    - error: Python float.
    """
    x = torch.as_tensor(x, dtype=torch.float64)  # rounding in the check itself must not hide or create an error
    y = torch.as_tensor(y, dtype=torch.float64, device=x.device)
    if x.numel() == 0 and y.numel() == 0:
        return 0.0
    top = (x - y).abs().max().item()
    bottom = (x.abs() + y.abs()).max().clamp(min=eps).item()
    return top / bottom


def compute_numeric_gradient(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    dLdf: torch.Tensor | None = None,
    h: float = 1e-7,
) -> torch.Tensor:
    """
    Numeric gradient of f at x by centred differences: df/dx[i] ~ (f(x + h e_i) - f(x - h e_i)) / (2h).

    For a scalar f (a loss) this is the gradient of f. For a tensor-valued f (a layer's forward pass),
    pass the upstream gradient dLdf, the gradient of some loss L with respect to f(x); the result is then
    dL/dx = sum_k dLdf[k] * df[k]/dx, what the layer's backward pass must return.

    f is called 2 * x.numel() times, on x itself: x is changed one entry at a time and each entry is put
    back before this function returns (also if f raises). Use small inputs, in float64.

    Inputs:
    - f: function taking x (shape like x) and returning a tensor of any shape (or a Python number).
    - x: tensor of shape (D1, ..., Dn), the point at which to differentiate.
    - dLdf: tensor of the shape of f(x), the upstream gradient; None means ones (for a scalar f: the plain
      gradient).
    - h: the step of the centred difference.

    Returns:
    - grad: tensor of shape (D1, ..., Dn), dtype and device of x.
    """
    grad = torch.zeros_like(x)  # (D1, ..., Dn)
    if dLdf is not None:
        dLdf = _as_float64(dLdf, x.device)  # (K,)
    for index in itertools.product(*(range(size) for size in x.shape)):
        old_value = x[index].item()
        try:
            x[index] = old_value + h
            f_plus = _as_float64(f(x), x.device)  # (K,)
            x[index] = old_value - h
            f_minus = _as_float64(f(x), x.device)  # (K,)
        finally:
            x[index] = old_value
        df_dxi = (f_plus - f_minus) / (2 * h)  # (K,)
        if dLdf is not None and dLdf.numel() != df_dxi.numel():
            raise ValueError(f"dLdf has {dLdf.numel()} elements but f(x) has {df_dxi.numel()}: they must match")
        upstream = torch.ones_like(df_dxi) if dLdf is None else dLdf
        grad[index] = (upstream * df_dxi).sum().item()
    return grad


def grad_check_sparse(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    analytic_grad: torch.Tensor,
    num_checks: int = 10,
    h: float = 1e-7,
) -> float:
    """
    Compare an analytic gradient with a numeric one at a few random coordinates, and print each comparison.

    Cheaper than `compute_numeric_gradient` for large x: f is called 2 * num_checks times. The coordinates
    come from Python's `random`, so `reset_seed` makes them repeatable. x is restored after each probe.

    Inputs:
    - f: function taking x and returning a scalar (a loss), as a 0-d tensor or a Python number.
    - x: tensor of shape (D1, ..., Dn), the point at which to check.
    - analytic_grad: tensor of shape (D1, ..., Dn), the gradient of f at x to check.
    - num_checks: how many random coordinates to check.
    - h: the step of the centred difference.

    Returns:
    - max_error: Python float, the largest relative error |num - ana| / (|num| + |ana|) among the checks.
    """
    assert analytic_grad.shape == x.shape, (
        f"analytic_grad has shape {tuple(analytic_grad.shape)} but x has shape {tuple(x.shape)}"
    )
    max_error = 0.0
    for _ in range(num_checks):
        index = tuple(random.randrange(size) for size in x.shape)
        old_value = x[index].item()
        try:
            x[index] = old_value + h
            f_plus = float(f(x))
            x[index] = old_value - h
            f_minus = float(f(x))
        finally:
            x[index] = old_value
        grad_numerical = (f_plus - f_minus) / (2 * h)
        grad_analytic = float(analytic_grad[index])
        error = abs(grad_numerical - grad_analytic) / (abs(grad_numerical) + abs(grad_analytic) + 1e-12)
        max_error = max(max_error, error)
        print(f"numerical: {grad_numerical:f} analytic: {grad_analytic:f}, relative error: {error:e}")
    return max_error


def _as_float64(value, device: torch.device) -> torch.Tensor:
    """A tensor or a Python number as a flat float64 tensor on device (numbers must not pass through float32)."""
    return torch.as_tensor(value, dtype=torch.float64, device=device).flatten()
