"""The judging vocabulary: how a check compares what a student's function returned with what it should return,
and the feedback each comparison gives. `Ctx.expect_*` (grader.judge.checks) raise `CheckFailed` with these messages.

Principles of the feedback:
- every problem of a value is reported (a wrong dtype and wrong values are two problems, both named);
- a mistake is named ("Likely bug: ...") only when the numbers prove it: the alternative explains the output,
  differs from the expected values, and is not trivial (a zero or constant tensor matches too many things);
- a hint that cannot be proven is asked as a question, never stated as the cause;
- which mistakes a feedback names is data as well as words (`recording_mistakes`: CheckResult.mistakes), so no
  reader of the results depends on the sentences (LIKELY_BUG, SEVERAL_MISTAKES).

Module functions for checks: `cpu64`, `rel_error`, `one_thread`, `course_data`, `fmt_shape`, `describe_value`,
`dtype_name`, `same`.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from grader.sandbox.wire import Handle

if TYPE_CHECKING:
    from grader.judge.checks import Ctx

EPS32 = torch.finfo(torch.float32).eps
MATCH_FLOOR = 1e-7  # a known mistake matches the output within max(bound, this)

# The sentences that name proven mistakes in feedback. Only the words: which mistakes were named is data
# (`recording_mistakes`), so a reader of the results never parses these.
LIKELY_BUG = "Likely bug: {mistake}."
SEVERAL_MISTAKES = "Your values match several known mistakes on these inputs: {mistakes}."
SEVERAL_JOIN = "; or "


# ---- small values and their descriptions ----------------------------------------------------------


def cpu64(x: Any) -> Any:
    """A detached float64 copy on the CPU of a tensor (recursing into dicts, lists and tuples; other values as
    they are)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64, copy=True)
    if isinstance(x, dict):
        return {k: cpu64(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(cpu64(v) for v in x)
    return x


def rel_error(x: Any, y: Any, eps: float = 1e-10) -> float:
    """max|x - y| / max(|x| + |y|), the denominator clamped at eps (the course's definition). Tensors of any
    dtype and device, or numbers."""
    x = torch.as_tensor(x).detach().to("cpu", torch.float64)
    y = torch.as_tensor(y).detach().to("cpu", torch.float64)
    if x.numel() == 0:
        return 0.0
    top = (x - y).abs().max().item()
    return top / max((x.abs() + y.abs()).max().item(), eps)


def fmt_shape(shape: Any) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def describe_value(value: Any) -> str:
    """A short description of what a student's function returned, for feedback."""
    if isinstance(value, Handle):
        return f"a {value.type} object"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {fmt_shape(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, dict):
        keys = list(value)
        return f"a dict with keys {keys[:8]}" + (" ..." if len(keys) > 8 else "")
    return f"{type(value).__name__} {value!r}"[:80]


def _num(v: float) -> str:
    return f"{v:.6g}"


def _pair(want: float, found: float) -> tuple[str, str]:
    """Two numbers with enough digits to tell them apart (6 at least, 17 at most)."""
    for digits in (6, 9, 12, 17):
        a, b = f"{want:.{digits}g}", f"{found:.{digits}g}"
        if a != b:
            break
    return a, b


def same(a: Any, b: Any) -> bool:
    """Equal values, tensors compared exactly (shape, dtype and every entry), recursing into lists, tuples and
    dicts; nan equals nan."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and _same_tensor(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    try:
        return bool(a == b) or (a != a and b != b)
    except Exception:
        return False


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    a, b = a.detach().cpu(), b.detach().cpu()
    if a.is_floating_point() or a.is_complex():
        na, nb = torch.isnan(a), torch.isnan(b)
        return torch.equal(na, nb) and torch.equal(a[~na], b[~nb])
    return torch.equal(a, b)


# ---- named mistakes --------------------------------------------------------------------------------

TRANSPOSED = "your values are the transpose of the expected ones"
_named: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("grader_named_mistakes", default=None)


@contextlib.contextmanager
def recording_mistakes() -> Iterator[list[str]]:
    """Collects, in order and once each, the mistakes that feedback written inside the block names (the runner
    opens one per check: `CheckResult.mistakes`)."""
    found: list[str] = []
    token = _named.set(found)
    try:
        yield found
    finally:
        _named.reset(token)


def name_mistakes(mistakes: list[str]) -> None:
    """Record that the feedback being written names `mistakes` (nothing happens outside `recording_mistakes`)."""
    found = _named.get()
    if found is not None:
        found.extend(m for m in dict.fromkeys(mistakes) if m and m not in found)


def mistake_sentence(found: list[str]) -> str | None:
    """The sentence naming `found`, the mistakes the numbers prove (recorded as named), or None for none."""
    if not found:
        return None
    name_mistakes(found)
    if len(found) == 1:
        return LIKELY_BUG.format(mistake=found[0])
    return SEVERAL_MISTAKES.format(mistakes=SEVERAL_JOIN.join(found))


def nontrivial(t: torch.Tensor) -> bool:
    """Numbers that do not match another tensor by coincidence: at least two distinct non-zero finite values, or
    one that is not a whole number (a lone 1, or a tensor of zeros and ones, matches too many things)."""
    t = t.detach().to("cpu", torch.float64).flatten()
    v = t[torch.isfinite(t) & (t != 0)]
    if v.numel() == 0:
        return False
    return bool(v.min() != v.max()) or bool((v != v.round()).any())


def _builtin_alternatives(e: torch.Tensor, n: int | None) -> list[tuple[str, torch.Tensor]]:
    tests: list[tuple[str, torch.Tensor]] = []
    if n and n > 1:
        tests += [
            (f"your values are N = {n} times too large (did you forget to divide by N?)", e * n),
            (f"your values are N = {n} times too small (divided by N twice?)", e / n),
        ]
    if n != 2:
        tests += [
            ("your values are exactly 2x the expected ones (a factor of 2 too many?)", 2 * e),
            ("your values are exactly half the expected ones (a missing factor of 2?)", e / 2),
        ]
    tests.append(("your values have the wrong sign", -e))
    if e.dim() == 2 and e.shape[0] == e.shape[1]:
        tests.append((TRANSPOSED, e.t()))
    return tests


def proven_mistakes(
    got: torch.Tensor,
    expected: torch.Tensor,
    bound: float,
    *,
    n: int | None = None,
    extra: dict[str, Any] | None = None,
    builtin: bool = True,
) -> list[str]:
    """The known mistakes the numbers prove: each alternative (from `extra`, then the generic ones: a factor of
    2 or N, the sign, the transpose) that `got` matches within max(bound, 1e-7), that is at least ten times
    that far from `expected`, and that is not trivial (see `nontrivial`). Integer results match exactly."""
    g = got.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    exact = not (got.is_floating_point() or got.is_complex()) and not (
        expected.is_floating_point() or expected.is_complex()
    )
    tol = 0.0 if exact else max(bound, MATCH_FLOOR)
    tests: list[tuple[str, torch.Tensor]] = []
    for desc, alt in (extra or {}).items():
        alt = torch.as_tensor(alt).detach().to("cpu", torch.float64)
        if alt.shape == g.shape:
            tests.append((desc, alt))
    if builtin and not exact and e.shape == g.shape:
        tests += _builtin_alternatives(e, n)
    found: list[str] = []
    for desc, alt in tests:
        if desc in found or not bool(torch.isfinite(alt).all()):
            continue
        explains = torch.equal(g, alt) if exact else rel_error(g, alt) <= tol
        if not explains:
            continue
        if alt.shape != e.shape:  # a mistake of another shape (a sum over the wrong axis) is distinct by its shape
            distinct = True
        else:
            distinct = not torch.equal(alt, e) if exact else rel_error(alt, e) > 10 * tol
        if distinct and nontrivial(alt):
            found.append(desc)
    return found


def known_mistakes(
    got: torch.Tensor, expected: torch.Tensor, bound: float, n: int | None = None, extra: dict[str, Any] | None = None
) -> str | None:
    """The sentence naming the mistake the numbers prove ("Likely bug: ..."), or None (see proven_mistakes)."""
    return mistake_sentence(proven_mistakes(got, expected, bound, n=n, extra=extra))


def float32_hint(got: torch.Tensor, expected: torch.Tensor) -> str | None:
    """A question for a float64 result that is right to about float32 precision only: a float32 constant or
    intermediate inside a float64 computation (torch.tensor(0.5) is float32)."""
    if got.dtype != torch.float64 or expected.dtype != torch.float64:
        return None
    g, e = got.detach().cpu(), expected.detach().cpu()
    if g.numel() == 0 or not bool(torch.isfinite(g).all() and torch.isfinite(e).all()):
        return None
    err = rel_error(g, e)
    if not 1e-10 < err <= 1e-5:
        return None
    scale = e.abs().max().item()
    if scale == 0:
        return None
    # entry by entry the error is at most a few float32 roundings of that entry, or of the tensor's scale for
    # entries well below it (a gradient that sums to zero over a batch, as batch normalisation's dx does, holds
    # small entries computed from large terms: their rounding is the terms', not theirs)
    per_entry = (g - e).abs() / torch.clamp(e.abs(), min=0.05 * scale)
    if per_entry.max().item() > 16 * EPS32:
        return None
    return (
        f"Your values agree with the expected ones only to about float32 precision (relative error {err:.1e}): "
        "is there a float32 constant or intermediate, e.g. torch.tensor(0.5) without dtype, inside a float64 "
        "computation?"
    )


# ---- tensors -----------------------------------------------------------------------------------------


def layout_problems(
    got: torch.Tensor, shape: tuple, dtype: torch.dtype | None, device: torch.device | None
) -> list[str]:
    """The problems of a tensor's shape, dtype and device, each a phrase."""
    problems = []
    if tuple(got.shape) != tuple(shape):
        problems.append(f"expected shape {fmt_shape(tuple(shape))}, found {fmt_shape(got.shape)}")
    if dtype is not None and got.dtype != dtype:
        problems.append(f"expected dtype {dtype_name(dtype)}, found {dtype_name(got.dtype)}")
    if device is not None and got.device.type != device.type:
        problems.append(
            f"expected a tensor on {device.type}, found one on {got.device.type} (create new tensors "
            "on the input's device, e.g. device=x.device)"
        )
    return problems


def _index(flat: int, shape: torch.Size) -> str:
    idx = []
    for s in reversed(shape):
        idx.append(flat % s)
        flat //= s
    return "(" + ", ".join(str(i) for i in reversed(idx)) + ("," if len(idx) == 1 else "") + ")"


def value_problems(
    got: torch.Tensor,
    expected: torch.Tensor,
    *,
    bound: float,
    n: int | None = None,
    mistakes: dict[str, Any] | None = None,
) -> list[str]:
    """The problems of a tensor's values (shapes equal), compared in float64 whatever the dtypes: exactly for
    integer or bool results, within relative error `bound` otherwise. A result of lower precision than expected is
    compared within that precision (its dtype is a problem of its own)."""
    g = got.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    if g.numel() == 0:
        return []
    exact = not (expected.is_floating_point() or expected.is_complex())
    if exact:
        diff = g != e
        if not diff.any():
            return []
        first = int(diff.flatten().nonzero()[0])
        where = f" at index {_index(first, g.shape)}" if g.dim() else ""
        msg = (
            f"{int(diff.sum())} of {diff.numel()} entries are wrong; e.g.{where} expected "
            f"{_show_entry(expected, first)}, found {_show_entry(got, first)}"
        )
        if g.dim() == 0:
            msg = f"expected {_show_entry(expected, 0)}, found {_show_entry(got, 0)}"
        return [msg + _mistake_suffix(got, expected, 0.0, n, mistakes)]
    finite_e, finite_g = torch.isfinite(e), torch.isfinite(g)
    if not bool(finite_g.all()) and bool(finite_e.all()):
        bad = int((~finite_g).sum())
        return [
            f"{bad} of {g.numel()} entries are nan or inf; every expected value is finite"
            if g.numel() > 1
            else f"expected {_num(e.item())}, found {g.item()}"
        ]
    if got.is_floating_point() and torch.finfo(got.dtype).eps > torch.finfo(expected.dtype).eps:
        bound = max(bound, min(1e3 * torch.finfo(got.dtype).eps, 1e-2))  # judge the values at got's precision
    err = rel_error(g, e) if bool(finite_e.all()) else _nonfinite_error(g, e)
    if err <= bound:
        return []
    if g.dim() == 0 or g.numel() == 1:
        want, found = _pair(e.flatten()[0].item(), g.flatten()[0].item())
        msg = f"expected {want}, found {found} (relative error {err:.1e}, bound {bound:.0e})"
    else:
        worst = int((g - e).abs().nan_to_num(nan=math.inf).flatten().argmax())
        want, found = _pair(e.flatten()[worst].item(), g.flatten()[worst].item())
        msg = (
            f"relative error {err:.2e} exceeds the bound {bound:.0e} (largest difference at index "
            f"{_index(worst, g.shape)}: expected {want}, found {found})"
        )
    suffix = _mistake_suffix(got, expected, bound, n, mistakes)
    if not suffix and got.dtype == expected.dtype:
        hint = float32_hint(got, expected)
        suffix = f". {hint}" if hint else ""
    return [msg + suffix]


def _nonfinite_error(g: torch.Tensor, e: torch.Tensor) -> float:
    """rel_error where `expected` holds inf or nan: those entries must match exactly."""
    fe = torch.isfinite(e)
    if not torch.equal(torch.isnan(g), torch.isnan(e)) or not torch.equal(g[torch.isinf(e)], e[torch.isinf(e)]):
        return math.inf
    return rel_error(g[fe], e[fe]) if fe.any() else 0.0


def _show_entry(t: torch.Tensor, flat: int) -> str:
    v = t.detach().cpu().flatten()[flat].item()
    return _num(v) if isinstance(v, float) else str(v)


def _mistake_suffix(
    got: torch.Tensor, expected: torch.Tensor, bound: float, n: int | None, mistakes: dict[str, Any] | None
) -> str:
    why = known_mistakes(got, expected, bound, n=n, extra=mistakes)
    return f". {why[:-1]}" if why else ""


def tensor_problems(
    got: torch.Tensor,
    expected: torch.Tensor,
    *,
    bound: float,
    dtype: torch.dtype | None,
    device: torch.device | None,
    n: int | None = None,
    mistakes: dict[str, Any] | None = None,
    forbid_autograd: bool = False,
) -> list[str]:
    """Every problem of tensor `got` against `expected`: requires grad (where autograd is forbidden), shape,
    dtype, device, values. With a wrong shape the values are not compared (a proven transpose is named)."""
    problems = []
    if forbid_autograd and got.requires_grad:
        problems.append(
            "it requires grad: this assignment computes gradients by hand, without autograd (no "
            "requires_grad, .backward() or torch.autograd)"
        )
    want_dtype = expected.dtype if dtype is None else dtype
    layout = layout_problems(got, tuple(expected.shape), want_dtype, device)
    problems += layout
    if tuple(got.shape) != tuple(expected.shape):
        at = len(problems) - len(layout)  # the shape problem
        if got.dim() == 2 and tuple(got.shape) == tuple(expected.shape)[::-1] and expected.numel() > 1:
            g, e = got.detach().to("cpu", torch.float64), expected.detach().to("cpu", torch.float64)
            tol = max(bound, MATCH_FLOOR) if expected.is_floating_point() else 0.0
            if nontrivial(e) and rel_error(g.t(), e) <= tol:
                problems[at] += ": it is the transpose of the expected result"
                name_mistakes([TRANSPOSED])
                return problems
        # a named mistake of the shape found (a gradient summed over the wrong axis, a kept dimension)
        why = known_mistakes(got, expected, bound, n=n, extra=mistakes) if mistakes else None
        if why:
            problems[at] += f". {why[:-1]}"
        return problems
    return problems + value_problems(got, expected, bound=bound, n=n, mistakes=mistakes)


def message(name: str, problems: list[str], hint: str = "") -> str:
    """`name: problem.` for one problem; a list for several; the hint last."""

    def end(p: str) -> str:
        return p if p.endswith((".", "?", "!")) else p + "."

    if len(problems) == 1:
        text = f"{name}: {end(problems[0])}"
    else:
        text = f"{name} has {len(problems)} problems:\n" + "\n".join(f"  - {end(p)}" for p in problems)
    return text + (f" {hint}" if hint else "")


# ---- the course's data and the judge's own computations --------------------------------------------------


def vjp(fn: Callable, tensors: list[torch.Tensor], dout: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """The expected gradients of a backward pass, by autograd: the gradients of sum(fn(*tensors) * dout) (of
    fn(*tensors) itself when dout is None, a scalar) with respect to each tensor (zeros where fn does not use one).
    Autograd is fine here, in the judge: only the student's code must do without it."""
    leaves = [t.detach().requires_grad_(True) for t in tensors]
    with torch.enable_grad():
        out = fn(*leaves)
        grads = torch.autograd.grad(out, leaves, grad_outputs=dout, allow_unused=True)
    return tuple(torch.zeros_like(t) if g is None else g.detach() for g, t in zip(grads, leaves, strict=True))


def value_and_grad(fn: Callable[[torch.Tensor], torch.Tensor], w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(fn(w), its gradient) in float64 on the CPU, by autograd: a loss and its expected gradient."""
    leaf = cpu64(w).requires_grad_(True)
    with torch.enable_grad():
        value = fn(leaf)
        (grad,) = torch.autograd.grad(value, leaf)
    return value.detach(), grad


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """The judge's own training runs on one thread (on a busy machine more threads only contend)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def course_data(ctx: Ctx, *, flatten: bool = True, bias_trick: bool = False, pool: int = 1) -> dict:
    """The grading data set as dlcv.preprocess_cifar10 gives it (float32, on the CPU): pixels / 255, the
    per-channel mean of the training images subtracted, (average-pooled by `pool`,) flattened, (a column of ones
    appended with `bias_trick`,) the last 20% of the training images kept for validation. Keys X_train, y_train,
    X_val, y_val, X_test, y_test. Computed once per grading run; X_test and y_test never leave the judge."""
    if bias_trick and not flatten:
        raise ValueError("course_data: the bias trick needs flattened images (flatten=True)")

    def build() -> dict:
        x_train, y_train, x_test, y_test, _ = ctx.dataset()
        xs = x_train.to(torch.float32) / 255
        xt = x_test.to(torch.float32) / 255
        mean = xs.mean(dim=(0, 2, 3), keepdim=True)
        xs, xt = xs - mean, xt - mean
        if pool > 1:
            xs, xt = F.avg_pool2d(xs, pool), F.avg_pool2d(xt, pool)
        if flatten:
            xs, xt = xs.flatten(1), xt.flatten(1)
        if bias_trick:
            xs = torch.cat([xs, xs.new_ones(xs.shape[0], 1)], dim=1)
            xt = torch.cat([xt, xt.new_ones(xt.shape[0], 1)], dim=1)
        cut = xs.shape[0] - round(0.2 * xs.shape[0])
        return {
            "X_train": xs[:cut],
            "y_train": y_train[:cut],
            "X_val": xs[cut:],
            "y_val": y_train[cut:],
            "X_test": xt,
            "y_test": y_test,
        }

    return ctx.cache(("grader.judge.judging.course_data", flatten, bias_trick, pool), build)
