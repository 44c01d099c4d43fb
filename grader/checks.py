"""How checks are written: the `check` decorator, hidden `variant`s, and the context a check runs with.

A check is a function `body(ctx, **params)` in an assignment's `checks.py`. It builds inputs from
`ctx`'s seeded generator, calls the student's function in the sandbox through `ctx.call`, computes an
oracle itself (PyTorch ops and autograd, in float64), and judges with `ctx.expect_*`, which raise
`CheckFailed` with feedback for the student. Hidden checks (`hidden.py`) are `variant`s of public ones
with other seeds, shapes and edge cases.

    @check("a1.knn.distances_two_loops", function="compute_distances_two_loops")
    def distances_two_loops(ctx, num_train=20, num_test=10):
        ...
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

import torch

from grader.guard import GUARD_REMOVED, describe_hit
from grader.manifest import AUTOGRAD_NAMES
from grader.sandbox import Reply, SandboxError
from grader.wire import Handle, Ref

if TYPE_CHECKING:
    from grader.runner import Run

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


class CheckFailed(Exception):
    """The submission did not meet a check. The message is feedback for the student."""


@dataclass(frozen=True)
class CheckSpec:
    id: str
    function: str                 # the graded function (a key of the manifest's [parts.functions])
    body: Callable[..., None]
    params: dict = field(default_factory=dict)
    seed: int = 0
    weight: float = 1.0
    visibility: str = "visible"
    hidden: bool = False
    timeout: float | None = None  # per call; default: the manifest's call_timeout
    title: str = ""


def _seed_of(check_id: str) -> int:
    return zlib.crc32(check_id.encode()) % 100_000


def check(id: str, *, function: str, weight: float = 1.0, seed: int | None = None, timeout: float | None = None,
          **params: Any) -> Callable:
    """Register the decorated function as a public check of `function`."""
    def deco(body: Callable) -> Callable:
        doc = (body.__doc__ or "").strip().splitlines()
        spec = CheckSpec(id=id, function=function, body=body, params=params,
                         seed=_seed_of(id) if seed is None else seed, weight=weight, timeout=timeout,
                         title=doc[0] if doc else id)
        body.__grader_check__ = spec
        return body
    return deco


def variant(base: Callable, suffix: str, *, seed: int | None = None, weight: float = 1.0,
            visibility: str = "after_published", title: str | None = None, **params: Any) -> CheckSpec:
    """A hidden check: the same body as the public check `base`, with other parameters."""
    spec: CheckSpec = base.__grader_check__
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {VISIBILITIES}, found {visibility!r}")
    new_id = f"{spec.id}.{suffix}"
    return replace(spec, id=new_id, params={**spec.params, **params}, hidden=True, visibility=visibility,
                   seed=_seed_of(new_id) if seed is None else seed, weight=weight,
                   title=title or f"{spec.title} ({suffix.replace('_', ' ')})")


def collect(module: Any) -> list[CheckSpec]:
    """The checks a check file defines, in file order (not the ones it imports)."""
    specs: list[CheckSpec] = []
    for value in vars(module).values():
        spec = getattr(value, "__grader_check__", None)
        if isinstance(spec, CheckSpec) and getattr(value, "__module__", None) == module.__name__:
            specs.append(spec)
        elif isinstance(value, CheckSpec):
            specs.append(value)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, CheckSpec) for v in value):
            specs.extend(value)
    return specs


# ---- feedback helpers ---------------------------------------------------------------------------

def rel_error(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-10) -> float:
    """max|x - y| / max(|x| + |y|), the denominator clamped at eps (the course's definition)."""
    x, y = x.detach().double().cpu(), y.detach().double().cpu()
    if x.numel() == 0:
        return 0.0
    top = (x - y).abs().max().item()
    return top / max((x.abs() + y.abs()).max().item(), eps)


def fmt_shape(shape: Any) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def describe_value(value: Any) -> str:
    """A short description of what a student's function returned, for feedback."""
    if isinstance(value, Handle):
        return f"a {value.type} object"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {fmt_shape(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"{type(value).__name__} {value!r}"[:80]


def known_mistakes(got: torch.Tensor, expected: torch.Tensor, bound: float, n: int | None = None,
                   extra: dict[str, torch.Tensor] | None = None) -> str | None:
    """Name the likely bug when `got` matches a known transformation of `expected`."""
    g, e = got.detach().double().cpu(), expected.detach().double().cpu()
    tests: list[tuple[str, torch.Tensor]] = []
    for desc, alt in (extra or {}).items():
        alt = alt.detach().double().cpu()
        if alt.shape == g.shape:
            tests.append((desc, alt))
    if e.abs().max() > 0:
        tests += [("your values are exactly 2x the expected ones (a factor of 2 too many?)", 2 * e),
                  ("your values are exactly half the expected ones (a missing factor of 2?)", e / 2),
                  ("your values have the wrong sign", -e)]
        if n and n > 1:
            tests += [(f"your values are N = {n} times too large (did you forget to divide by N?)", e * n),
                      (f"your values are N = {n} times too small (divided by N twice?)", e / n)]
        if e.dim() == 2 and e.shape[0] == e.shape[1]:
            tests.append(("your values are the transpose of the expected ones", e.t()))
    for desc, alt in tests:
        if rel_error(g, alt) <= max(bound, 1e-7):
            return desc
    return None


def describe_error(err: SandboxError, function: str) -> str:
    """Feedback for a call that failed inside the sandbox."""
    where = ""
    if err.where:
        w = err.where[-1]
        where = f"\n  at {w['file']} line {w['line']}, in {w['function']}: {w['code'].strip()}"
    if err.kind == "exception" and err.type_name == "NotImplementedError":
        raiser = err.where[-1]["function"] if err.where else ""
        if not raiser or raiser == "<module>" or function.startswith(raiser):
            text = f"{function} is not implemented yet (it raises NotImplementedError)."
        elif raiser.startswith(function.split(".")[0] + "."):     # a method of the class being checked
            text = f"{raiser} is not implemented yet (it raises NotImplementedError)."
        else:
            text = f"{raiser} is not implemented yet (it raises NotImplementedError), and {function} calls it."
    elif err.kind == "exception" and (err.type_name == "MemoryError" or "out of memory" in err.message
                                      or "can't allocate memory" in err.message):
        text = (f"{function} ran out of memory: it allocates more than the sandbox allows (look for a large "
                f"intermediate tensor).\n  {err.type_name}: {err.message[:300]}{where}")
    elif err.kind == "exception":
        text = f"{function} raised {err.type_name}: {err.message}{where}"
    elif err.kind == "exit":
        code = err.message if err.type_name == "SystemExit" else ""
        text = (f"{function} called sys.exit({code}); your code must not exit the program.{where}"
                if err.type_name == "SystemExit" else err.message)
    elif err.kind == "timeout":
        text = (f"{err.message}: {function} may loop forever, or be far slower than it should be "
                "(a loop where vectorised code was asked for?)")
    else:
        text = err.message
    if err.output.strip():
        text += "\n  output before the failure:\n    " + "\n    ".join(err.output.strip().splitlines()[-8:])
    return text


def forbidden_feedback(hits: list[dict], called: str, graded: str, no_autograd: bool = False) -> str:
    """`Conv.forward called torch.nn.functional.conv2d (line 12 of convolutional_networks.py), which Conv may
    not use in this assignment.` One sentence per student function the guard found a use in."""
    if any(h["name"] == GUARD_REMOVED for h in hits):
        return (f"{called} removed or disabled the grader's guard (the PyTorch modes that watch for forbidden "
                "calls while your code runs); your code must leave PyTorch's mode stacks as it found them.")
    by_function: dict[str, list[str]] = {}
    for h in hits:
        uses = by_function.setdefault(h.get("function") or called, [])
        if describe_hit(h) not in uses:
            uses.append(describe_hit(h))
    said = "; ".join(f"{who} called {', '.join(uses)}" for who, uses in by_function.items())
    text = f"{said}, which {graded} may not use in this assignment."
    if no_autograd and any(h["name"] in AUTOGRAD_NAMES for h in hits):
        text += (" Gradients are computed by hand here: no requires_grad, .backward(), torch.autograd or "
                 "torch.func.")
    return text


class ImportFailed(CheckFailed):
    pass


def _handles_in(value: Any) -> list[Handle]:
    if isinstance(value, Handle):
        return [value]
    if isinstance(value, (list, tuple)):
        return [h for v in value for h in _handles_in(v)]
    if isinstance(value, dict):
        return [h for v in value.values() for h in _handles_in(v)]
    return []


def _same(a: Any, b: Any) -> bool:
    """Equal values, tensors compared exactly (shape, dtype and every entry)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and torch.equal(a.cpu(), b.cpu()))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b or (a != a and b != b)


# ---- the context a check runs with --------------------------------------------------------------

class Ctx:
    """What a check sees: seeded inputs on the grading device, calls into the sandbox, judgements."""

    def __init__(self, run: "Run", spec: CheckSpec) -> None:
        self.run, self.spec = run, spec
        self.seed = spec.seed
        self.device = torch.device(run.device)
        self.gen = torch.Generator().manual_seed(spec.seed)
        self.notes: list[str] = []
        self.calls: list[Reply] = []
        self.handles: list[Handle] = []    # objects this check left in the sandbox; released after it

    # -- inputs ---------------------------------------------------------------------------------
    def randn(self, *shape: int, dtype: torch.dtype = torch.float64, scale: float = 1.0) -> torch.Tensor:
        """Standard normal values built on the CPU from the check's seed (identical on every device),
        then moved to the grading device."""
        return (scale * torch.randn(*shape, generator=self.gen, dtype=torch.float64)).to(self.device, dtype)

    def rand(self, *shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return torch.rand(*shape, generator=self.gen, dtype=torch.float64).to(self.device, dtype)

    def randint(self, low: int, high: int, shape: tuple[int, ...], dtype: torch.dtype = torch.int64) -> torch.Tensor:
        return torch.randint(low, high, shape, generator=self.gen).to(self.device, dtype)

    def randperm(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.gen).to(self.device)

    def dataset(self):
        """The grading data set (see dlcv.data), loaded once per run in the judge."""
        return self.run.dataset()

    def target(self, key: str) -> float:
        return self.run.target(key)

    # -- calling the student's code -------------------------------------------------------------
    def invoke(self, function: str | Ref, *args: Any, keep: bool = False, return_args: bool = False,
               timeout: float | None = None, **kwargs: Any) -> Reply:
        """Call `function` (a name in the part's module; `Class.method` for a static method) in the
        sandbox. A failure there becomes feedback; a forbidden call found there fails the check."""
        if isinstance(function, Ref):            # e.g. ctx.call(ctx.ref("Solver", module="dlcv.solver"), ...)
            module, function = function.module, function.attr
        else:
            module = self.run.module_for(function, self.spec.function)
        try:
            reply = self.run.sandbox.call(module, function, args, kwargs, seed=self.seed,
                                          forbidden=self.run.manifest.forbidden_for(self.spec.function),
                                          keep=keep, return_args=return_args,
                                          timeout=self._timeout(timeout))
        except SandboxError as e:
            raise self._failure(e, module, function) from None
        self._judge_reply(reply, function)
        return reply

    def call(self, function: str | Ref, *args: Any, **kwargs: Any) -> Any:
        """Call `function` in the sandbox and return what it returned."""
        return self.invoke(function, *args, **kwargs).value

    def ref(self, name: str, module: str | None = None) -> Ref:
        """A student's function or class, to pass as an argument (e.g. a loss function to a trainer);
        `module` names another module of the sandbox tree (e.g. "dlcv.solver" for the given Solver)."""
        return Ref(module or self.run.module_for(name, self.spec.function), name)

    def invoke_method(self, obj: Handle, name: str, *args: Any, keep: bool = False, return_args: bool = False,
                      timeout: float | None = None, **kwargs: Any) -> Reply:
        """Call method `name` of an object that lives in the sandbox; returns the whole Reply."""
        try:
            reply = self.run.sandbox.call(None, name, args, kwargs, handle=obj, seed=self.seed,
                                          forbidden=self.run.manifest.forbidden_for(self.spec.function), keep=keep,
                                          return_args=return_args, timeout=self._timeout(timeout))
        except SandboxError as e:
            raise self._failure(e, None, f"{obj.type}.{name}") from None
        self._judge_reply(reply, f"{obj.type}.{name}")
        return reply

    def method(self, obj: Handle, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call method `name` of an object that lives in the sandbox (see `call` of a class)."""
        return self.invoke_method(obj, name, *args, **kwargs).value

    def _timeout(self, timeout: float | None) -> float:
        limit = timeout or self.spec.timeout or self.run.manifest.call_timeout
        return min(limit, self.run.timeout_cap) if self.run.timeout_cap else limit

    def put(self, value: Any) -> Handle:
        """Send `value` to the sandbox once and get a handle to pass to later calls."""
        try:
            h = self.run.sandbox.put(value)
            self.handles.append(h)
            return h
        except SandboxError as e:
            raise CheckFailed(describe_error(e, "sending the inputs")) from None

    def getattr(self, obj: Handle, attr: str) -> Any:
        """An attribute of an object that lives in the sandbox (e.g. `W` of a trained classifier)."""
        try:
            value = self.run.sandbox.getattr(obj, attr)
        except SandboxError as e:
            raise CheckFailed(describe_error(e, f"{obj.type}.{attr}")) from None
        self.handles.extend(_handles_in(value))
        return value

    def fetch(self, handle: Handle) -> Any:
        try:
            return self.run.sandbox.get(handle)
        except SandboxError as e:
            raise CheckFailed(describe_error(e, "the result")) from None

    def _failure(self, e: SandboxError, module: str | None, function: str) -> CheckFailed:
        if module is not None and module in self.run.sandbox.module_errors:
            file = self.run.file_of(module)
            return ImportFailed(f"{file} could not be imported, so {function} could not run:\n  "
                                + describe_error(e, f"importing {file}").replace("\n", "\n  "))
        return CheckFailed(describe_error(e, function))

    def _judge_reply(self, reply: Reply, function: str) -> None:
        self.calls.append(reply)
        self.handles.extend(_handles_in(reply.value))
        if reply.forbidden_hits:
            raise CheckFailed(forbidden_feedback(reply.forbidden_hits, function, self.spec.function,
                                                 self.run.manifest.forbid_autograd))

    # -- judgements -----------------------------------------------------------------------------
    def fail(self, message: str) -> None:
        raise CheckFailed(message)

    def note(self, message: str) -> None:
        """A line of feedback shown whether or not the check passes (e.g. a measured accuracy)."""
        self.notes.append(message)

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            raise CheckFailed(message)

    def expect_items(self, value: Any, n: int, what: str) -> tuple:
        """`value` must be a tuple (or list) of `n` items; returns it as a tuple."""
        if not isinstance(value, (tuple, list)) or len(value) != n:
            raise CheckFailed(f"{what}: expected a tuple of {n} items, found {describe_value(value)}.")
        return tuple(value)

    def expect_type(self, value: Any, types: type | tuple[type, ...], name: str) -> None:
        if not isinstance(value, types):
            names = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
            found = value.type if isinstance(value, Handle) else type(value).__name__
            article = "an" if names[0] in "aeiou" else "a"
            raise CheckFailed(f"{name}: expected {article} {names}, found {found}.")

    def expect_tensor(self, got: Any, expected: torch.Tensor, name: str = "the output", *,
                      bound: float = 1e-6, dtype: torch.dtype | None = None, device: Any = "default",
                      n: int | None = None, mistakes: dict[str, torch.Tensor] | None = None,
                      hint: str = "") -> None:
        """`got` must be a tensor shaped like `expected`, of `dtype` (default: expected's) on `device`
        (default: the grading device), with relative error at most `bound` (exact for integers/bools)."""
        self.expect_type(got, torch.Tensor, name)
        if got.requires_grad and self.run.manifest.forbid_autograd:
            raise CheckFailed(f"{name} requires grad: this assignment computes gradients by hand, "
                              "without autograd (no requires_grad, .backward() or torch.autograd).")
        want_dtype = expected.dtype if dtype is None else dtype
        if tuple(got.shape) != tuple(expected.shape):
            msg = f"{name}: expected shape {fmt_shape(expected.shape)}, found {fmt_shape(got.shape)}."
            if got.dim() == 2 and tuple(got.shape) == tuple(expected.shape)[::-1]:
                msg += " It looks transposed."
            raise CheckFailed(msg + (f" {hint}" if hint else ""))
        if got.dtype != want_dtype:
            raise CheckFailed(f"{name}: expected dtype {str(want_dtype).replace('torch.', '')}, "
                              f"found {str(got.dtype).replace('torch.', '')}.")
        want_device = self.device if device == "default" else (None if device is None else torch.device(device))
        if want_device is not None and got.device.type != want_device.type:
            raise CheckFailed(f"{name}: expected a tensor on {want_device.type}, found one on {got.device.type} "
                              "(create new tensors on the input's device, e.g. device=x.device).")
        if not (want_dtype.is_floating_point or want_dtype.is_complex):
            diff = (got.cpu() != expected.cpu())
            if diff.any():
                idx = tuple(int(i) for i in diff.nonzero()[0])
                msg = (f"{name}: {int(diff.sum())} of {diff.numel()} entries are wrong; e.g. at index "
                       f"{idx} expected {expected.cpu()[idx].item()}, found {got.cpu()[idx].item()}.")
                why = next((d for d, alt in (mistakes or {}).items()
                            if alt.shape == got.shape and torch.equal(alt.cpu().to(got.dtype), got.cpu())), None)
                if why:
                    msg += f" Likely bug: {why}."
                raise CheckFailed(msg + (f" {hint}" if hint else ""))
            return
        if not torch.isfinite(got.detach().cpu()).all() and torch.isfinite(expected.detach().cpu()).all():
            bad = int((~torch.isfinite(got.detach().cpu())).sum())
            raise CheckFailed(f"{name}: {bad} entries are nan or inf; all expected values are finite."
                              + (f" {hint}" if hint else ""))
        err = rel_error(got, expected)
        if not err <= bound:
            msg = f"{name}: relative error {err:.2e} exceeds the bound {bound:.0e}."
            why = known_mistakes(got, expected, bound, n=n, extra=mistakes)
            if why:
                msg += f" Likely bug: {why}."
            raise CheckFailed(msg + (f" {hint}" if hint else ""))

    def expect_close(self, got: Any, expected: float, name: str, *, bound: float = 1e-6, n: int | None = None,
                     mistakes: dict[str, float] | None = None) -> None:
        """A Python number (or 0-d tensor) close to `expected` in relative error."""
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        self.expect_type(got, (int, float), name)
        err = abs(got - expected) / max(abs(got) + abs(expected), 1e-10)
        if not err <= bound or math.isnan(got):
            msg = f"{name}: expected {expected:.6g}, found {got:.6g} (relative error {err:.1e}, bound {bound:.0e})."
            extra = {k: torch.tensor(float(v)) for k, v in (mistakes or {}).items()}
            why = known_mistakes(torch.tensor(float(got)), torch.tensor(float(expected)), bound, n=n, extra=extra)
            if why:
                msg += f" Likely bug: {why}."
            raise CheckFailed(msg)

    def expect_unchanged(self, before: list, reply: Reply, names: list[str]) -> None:
        """The call (made with return_args=True) must not have modified its tensor inputs."""
        after = reply.args or []
        for name, b, a in zip(names, before, after):
            if not _same(b, a):
                raise CheckFailed(f"the call modified its input {name}; it must leave its inputs unchanged "
                                  "(work on a copy, e.g. x.clone()).")
