"""How checks are written: the `check` decorator, `variant`s, and the context a check runs with.

A check is a function `body(ctx, **params)` in an assignment's `checks.py`. It builds inputs from
`ctx`'s seeded generator, calls the student's function in the sandbox through `ctx.call`, computes the
expected result itself (PyTorch ops and autograd, in float64; `grader.judge.judging.cpu64`), and judges with
`ctx.expect_*` (the vocabulary of grader.judge.judging), which raise `CheckFailed` with feedback for the student.
`Ctx` is all a check uses: the run behind it (`ctx.run`) is the runner's. Hidden checks (`hidden.py`) are
`variant`s of public ones with other seeds, shapes and edge cases; a public variant (hidden=False) is a
check of its own with other parameters.

    @check("a1.knn.distances_two_loops", function="compute_distances_two_loops")
    def distances_two_loops(ctx, num_train=20, num_test=10):
        ...
"""

from __future__ import annotations

import ast
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch

from grader.judge import judging
from grader.judge.feedback import describe_error, forbidden_feedback, guard_hits
from grader.judge.judging import (  # noqa: F401 - re-exported: checks import these from grader.judge.checks
    cpu64,
    describe_value,
    dtype_name,
    fmt_shape,
    known_mistakes,
    rel_error,
    same,
)
from grader.judge.staticscan import find_function
from grader.sandbox.isolation import Reply, SandboxError
from grader.sandbox.wire import Handle, Ref

if TYPE_CHECKING:
    from grader.judge.runner import Run


VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


class CheckFailed(Exception):
    """The submission did not meet a check. The message is feedback for the student; `mistakes` are the known
    mistakes it names (what `CheckResult.mistakes` reports), where the check knows them."""

    def __init__(self, message: str = "", *, mistakes: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.mistakes = list(mistakes)
        judging.name_mistakes(self.mistakes)


@dataclass(frozen=True)
class CheckSpec:
    id: str
    function: str  # the graded function (a key of the manifest's [parts.functions])
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


def check(
    id: str, *, function: str, weight: float = 1.0, seed: int | None = None, timeout: float | None = None, **params: Any
) -> Callable:
    """Register the decorated function as a public check of `function`."""

    def deco(body: Callable) -> Callable:
        doc = (body.__doc__ or "").strip().splitlines()
        spec = CheckSpec(
            id=id,
            function=function,
            body=body,
            params=params,
            seed=_seed_of(id) if seed is None else seed,
            weight=weight,
            timeout=timeout,
            title=doc[0] if doc else id,
        )
        body.__grader_check__ = spec
        return body

    return deco


def variant(
    base: Callable,
    suffix: str,
    *,
    seed: int | None = None,
    weight: float = 1.0,
    visibility: str | None = None,
    title: str | None = None,
    hidden: bool = True,
    **params: Any,
) -> CheckSpec:
    """Another check with the same body as the public check `base` and other parameters, its own id
    (`base's id.suffix`) and seed: hidden by default (hidden.py); with hidden=False a public check
    (e.g. `variant(base, "float32", hidden=False, dtype=torch.float32)`). `visibility` defaults to
    "after_published" for a hidden variant and must be "visible" for a public one."""
    spec: CheckSpec = base.__grader_check__
    visibility = visibility or ("after_published" if hidden else "visible")
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {VISIBILITIES}, found {visibility!r}")
    new_id = f"{spec.id}.{suffix}"
    if not hidden and visibility != "visible":
        raise ValueError(f"a public variant is visible; found visibility={visibility!r}")
    return replace(
        spec,
        id=new_id,
        params={**spec.params, **params},
        hidden=hidden,
        visibility=visibility,
        seed=_seed_of(new_id) if seed is None else seed,
        weight=weight,
        title=title or f"{spec.title} ({suffix.replace('_', ' ')})",
    )


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


def _handles_in(value: Any) -> list[Handle]:
    if isinstance(value, Handle):
        return [value]
    if isinstance(value, (list, tuple)):
        return [h for v in value for h in _handles_in(v)]
    if isinstance(value, dict):
        return [h for v in value.values() for h in _handles_in(v)]
    return []


# ---- the context a check runs with --------------------------------------------------------------


def _a_new_tensor(value: Any) -> bool:
    """Whether a reply's value is a tensor (or a handle of one kept in the sandbox)."""
    return isinstance(value, torch.Tensor) or (isinstance(value, Handle) and value.type == "Tensor")


def _said_once(lines: list[str], names: list[str]) -> tuple[list[str], list[str]]:
    """The same named mistake under several values is said once, after them: (lines without it, the shared ones)."""
    markers = [" " + judging.LIKELY_BUG.split("{")[0].strip(), " " + judging.SEVERAL_MISTAKES.split("{")[0].strip()]

    def tail(line: str) -> str:  # the sentence naming the mistake(s), where the line ends with one
        at = [line.index(m) for m in markers if m in line]
        return line[min(at) :] if at else ""

    tails = [tail(line) for line in lines]
    repeated = [t for t in dict.fromkeys(tails) if t and tails.count(t) > 1]
    shared = [f"{', '.join(n for n, t in zip(names, tails) if t == r)}:{r}" for r in repeated]
    return [line[: len(line) - len(t)] if t in repeated else line for line, t in zip(lines, tails)], shared


class Ctx:
    """What a check sees: seeded inputs on the grading device, calls into the sandbox, judgements."""

    def __init__(self, run: Run, spec: CheckSpec) -> None:
        self.run, self.spec = run, spec
        self.seed = spec.seed
        self.device = torch.device(run.device)
        self.gen = torch.Generator().manual_seed(spec.seed)
        self.notes: list[str] = []
        self.calls: list[Reply] = []
        self.handles: list[Handle] = []  # objects this check left in the sandbox; released after it
        self.rule_hits: list[dict] = []  # forbidden calls found while it ran (see hit_record)

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
    def invoke(
        self,
        function: str | Ref,
        *args: Any,
        keep: bool = False,
        return_args: bool = False,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Reply:
        """Call `function` (a name in the part's module; `Class.method` for a static method) in the
        sandbox. A failure there becomes feedback; a forbidden call found there fails the check."""
        if isinstance(function, Ref):  # e.g. ctx.call(ctx.ref("Solver", module="dlcv.solver"), ...)
            module, function = function.module, function.attr
        else:
            module = self.run.module_for(function, self.spec.function)
        return self._request(module, function, None, function, args, kwargs, keep, return_args, timeout)

    def _request(
        self,
        module: str | None,
        name: str,
        handle: Handle | None,
        shown: str,
        args: tuple,
        kwargs: dict,
        keep: bool,
        return_args: bool,
        timeout: float | None,
    ) -> Reply:
        """One call into the sandbox (of `name` in `module`, or of a method of `handle`), judged: a failure
        there becomes feedback about `shown`, a forbidden call fails the check."""
        try:
            reply = self.run.sandbox.call(
                module,
                name,
                args,
                kwargs,
                handle=handle,
                seed=self.seed,
                forbidden=self.run.manifest.forbidden_for(self.spec.function),
                keep=keep,
                return_args=return_args,
                timeout=self._timeout(timeout),
            )
        except SandboxError as e:
            raise self._failure(e, module, shown) from None
        self._judge_reply(reply, shown)
        return reply

    def call(self, function: str | Ref, *args: Any, **kwargs: Any) -> Any:
        """Call `function` in the sandbox and return what it returned."""
        return self.invoke(function, *args, **kwargs).value

    def ref(self, name: str, module: str | None = None) -> Ref:
        """A student's function or class, to pass as an argument (e.g. a loss function to a trainer);
        `module` names another module of the sandbox tree (e.g. "dlcv.solver" for the given Solver)."""
        return Ref(module or self.run.module_for(name, self.spec.function), name)

    def invoke_method(
        self,
        obj: Handle,
        name: str,
        *args: Any,
        keep: bool = False,
        return_args: bool = False,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Reply:
        """Call method `name` of an object that lives in the sandbox; returns the whole Reply."""
        return self._request(None, name, obj, f"{obj.type}.{name}", args, kwargs, keep, return_args, timeout)

    def method(self, obj: Handle, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call method `name` of an object that lives in the sandbox (see `call` of a class)."""
        return self.invoke_method(obj, name, *args, **kwargs).value

    def _timeout(self, timeout: float | None) -> float:
        return self.run.time_limit(timeout or self.spec.timeout)

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
            return CheckFailed(
                f"{file} could not be imported, so {function} could not run:\n  "
                + describe_error(e, f"importing {file}").replace("\n", "\n  ")
            )
        return CheckFailed(describe_error(e, function))

    def _judge_reply(self, reply: Reply, function: str) -> None:
        reply.function = function
        self.calls.append(reply)
        self.handles.extend(_handles_in(reply.value))
        graded = function == self.spec.function or function.startswith(self.spec.function.split(".")[0] + ".")
        # (with the course's oracles in place, the work may have been done in the oracle process)
        oracles = bool(getattr(self.run.sandbox, "substitution", None))
        if graded and not oracles and reply.ops == 0 and not reply.aliases and _a_new_tensor(reply.value):
            # the guard saw no operator at all, yet a tensor came back that is none of the inputs: remembered from
            # an earlier call, or computed where the guard could not see (the worker is never believed alone)
            raise CheckFailed(
                f"{function} returned a tensor without computing anything in this call. A function must compute "
                "its result from its inputs each time it is called: do not keep answers from earlier calls."
            )
        if reply.forbidden_hits:
            self.rule_hits.extend(guard_hits(reply.forbidden_hits, function))
            raise CheckFailed(
                forbidden_feedback(
                    reply.forbidden_hits,
                    function,
                    self.spec.function,
                    self.run.manifest.forbid_autograd,
                    self.run.manifest.why,
                )
            )

    # -- the run, as checks see it ----------------------------------------------------------------
    def cache(self, key: Any, factory: Callable[[], Any]) -> Any:
        """`factory()`, computed once per grading run under `key` (data prepared, a model trained by the judge);
        later checks of the run get the same object back, so they must not modify it."""
        return self.run.cached(key, factory)

    @property
    def dataset_name(self) -> str:
        """The grading data set's name ("cifar10" or "digits"); loads it if no check has yet."""
        self.run.dataset()
        return self.run.dataset_name

    def scale(self, table: dict) -> Any:
        """`table[data set]`, falling back to `table["cifar10"]` (sizes and iterations per data set)."""
        return table.get(self.dataset_name, table["cifar10"])

    def source(self, function: str | None = None) -> str | None:
        """The submitted text of the file that grades `function` (default: this check's function; a name no part
        grades means the file of this check's function). A missing, refused or unparsable file fails the check
        with the usual feedback."""
        graded = function if function is not None and self._graded(function) else self.spec.function
        self.run.module_for(graded, graded)
        return self.run.staged.sources.get(self.run.manifest.part_of(graded).file)

    def definition(self, name: str) -> ast.AST | None:
        """The submitted definition of `name` (`f`, `Class` or `Class.method`) in the file `source(name)` reads;
        None when the file does not define it."""
        src = self.source(name.split(".")[0])
        return None if src is None else find_function(ast.parse(src), name)

    def _graded(self, function: str) -> bool:
        return any(function in p.functions for p in self.run.manifest.parts)

    # -- judgements -----------------------------------------------------------------------------
    def fail(self, message: str, *, mistakes: list[str] | tuple[str, ...] = ()) -> None:
        """Fail the check with `message`; `mistakes` are the known mistakes it names, as data (CheckResult.mistakes:
        what the class report lists; the message's words are never parsed for them)."""
        raise CheckFailed(message, mistakes=list(mistakes))

    def note(self, message: str) -> None:
        """A line of feedback shown whether or not the check passes (e.g. a measured accuracy)."""
        self.notes.append(message)

    def expect(self, condition: bool, message: str, *, mistakes: list[str] | tuple[str, ...] = ()) -> None:
        if not condition:
            raise CheckFailed(message, mistakes=list(mistakes))

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

    def expect_tensor(
        self,
        got: Any,
        expected: torch.Tensor,
        name: str = "the output",
        *,
        bound: float = 1e-6,
        dtype: torch.dtype | None = None,
        device: Any = "default",
        n: int | None = None,
        mistakes: dict[str, Any] | None = None,
        hint: str = "",
    ) -> None:
        """`got` must be a tensor shaped like `expected`, of `dtype` (default: expected's) on `device` (default:
        the grading device; None: any), with relative error at most `bound` (exact for integer/bool results).
        Every problem is reported; a mistake of `mistakes` (description -> the values it gives) or a generic one
        (factor 2 or `n`, sign, transpose) is named only when the numbers prove it (see grader.judge.judging)."""
        self.expect_type(got, torch.Tensor, name)
        expected = torch.as_tensor(expected)
        problems = judging.tensor_problems(
            got,
            expected,
            bound=bound,
            dtype=dtype,
            device=self._device(device),
            n=n,
            mistakes=mistakes,
            forbid_autograd=self.run.manifest.forbid_autograd,
        )
        if problems:
            raise CheckFailed(judging.message(name, problems, hint))

    def expect_layout(self, got: Any, shape: tuple, dtype: torch.dtype, name: str, hint: str = "") -> None:
        """A tensor of this shape and dtype on the grading device (its values are judged elsewhere)."""
        self.expect_type(got, torch.Tensor, name)
        problems = judging.layout_problems(got, tuple(shape), dtype, self.device)
        if problems:
            raise CheckFailed(judging.message(name, problems, hint))

    def expect_float(self, value: Any, name: str, positive: bool = False) -> float:
        """A finite Python number, or a tensor holding one number (0-d or one element); returns it as a float."""
        if isinstance(value, torch.Tensor):
            if value.numel() != 1 or value.is_complex():
                raise CheckFailed(f"{name}: expected a number, found {describe_value(value)}.")
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CheckFailed(f"{name}: expected a number, found {describe_value(value)}.")
        if not math.isfinite(value):
            raise CheckFailed(f"{name}: expected a finite number, found {value}.")
        if positive and value <= 0:
            raise CheckFailed(f"{name}: expected a positive number, found {value:.6g}.")
        return float(value)

    def expect_loss(
        self,
        got: Any,
        expected: Any,
        name: str,
        *,
        bound: float,
        n: int | None = None,
        mistakes: dict[str, Any] | None = None,
    ) -> float:
        """A loss: a 0-dim tensor of `expected`'s dtype on the grading device, close to `expected` (a tensor or a
        number); returns it as a float. `mistakes`: description -> the loss that mistake gives."""
        expected = torch.as_tensor(expected)
        if isinstance(got, (int, float)) and not isinstance(got, bool):
            raise CheckFailed(
                f"{name}: expected a 0-dim tensor, found a Python {type(got).__name__} ({got:.6g}); "
                "return the loss as a tensor (no .item() or float())."
            )
        self.expect_type(got, torch.Tensor, name)
        if got.dim() != 0:
            raise CheckFailed(
                f"{name}: expected a 0-dim tensor, found one of shape {fmt_shape(got.shape)}"
                + (
                    " (index its single element, or reduce with .sum() or .mean() over everything)."
                    if got.numel() == 1
                    else " (reduce over every example and class to one number)."
                )
            )
        self.expect_tensor(got, expected.reshape(()), name, bound=bound, n=n, mistakes=mistakes)
        return float(got.item())

    def expect_dict(
        self,
        got: Any,
        expected: dict,
        name: str,
        *,
        bound: float = 1e-6,
        mistakes: dict[str, dict[str, Any]] | None = None,
        n: int | None = None,
        hints: dict[str, str] | None = None,
    ) -> None:
        """A dict with `expected`'s keys, each value (a tensor, or a number) judged as by expect_tensor (dtype
        and device of the expected tensor). `mistakes` and `hints` are per key: {key: {description: value}} and
        {key: hint}. Every key's problems are reported together."""
        if not isinstance(got, dict):
            raise CheckFailed(f"{name}: expected a dict with keys {list(expected)}, found {describe_value(got)}.")
        missing = [k for k in expected if k not in got]
        unexpected = [k for k in got if k not in expected]
        if missing or unexpected:
            said = [f"missing {missing}" if missing else "", f"unexpected {unexpected}" if unexpected else ""]
            raise CheckFailed(f"{name}: expected the keys {list(expected)}; " + ", ".join(s for s in said if s) + ".")
        lines, failed_keys = [], []
        for k, want in expected.items():
            what = f"{name}[{k!r}]"
            try:
                if isinstance(want, torch.Tensor):
                    self.expect_tensor(
                        got[k],
                        want,
                        what,
                        bound=bound,
                        n=n,
                        mistakes=(mistakes or {}).get(k),
                        hint=(hints or {}).get(k, ""),
                    )
                else:
                    self.expect_close(got[k], float(want), what, bound=bound, n=n, mistakes=(mistakes or {}).get(k))
            except CheckFailed as e:
                lines.append(str(e))
                failed_keys.append(k)
        if len(lines) == 1:
            raise CheckFailed(lines[0])
        if lines:
            lines, shared = _said_once(lines, [f"{name}[{k!r}]" for k in failed_keys])
            raise CheckFailed(
                f"{name}: {len(lines)} of its {len(expected)} values are wrong.\n"
                + "\n".join("  " + line.replace("\n", "\n  ") for line in lines)
                + "".join(f"\n{line}" for line in shared)
            )

    def expect_close(
        self,
        got: Any,
        expected: float,
        name: str,
        *,
        bound: float = 1e-6,
        n: int | None = None,
        mistakes: dict[str, Any] | None = None,
    ) -> None:
        """A Python number (or a tensor holding one number) close to `expected` in relative error."""
        value = self.expect_float(got, name)
        err = abs(value - expected) / max(abs(value) + abs(expected), 1e-10)
        if not err <= bound:
            msg = f"{name}: expected {expected:.6g}, found {value:.6g} (relative error {err:.1e}, bound {bound:.0e})."
            why = known_mistakes(
                torch.tensor(float(value), dtype=torch.float64),
                torch.tensor(float(expected), dtype=torch.float64),
                bound,
                n=n,
                extra={k: float(v) for k, v in (mistakes or {}).items()},
            )
            raise CheckFailed(msg + (f" {why}" if why else ""))

    def expect_unchanged(self, before: list, reply: Reply, names: list[str]) -> None:
        """The call (made with `ctx.invoke(..., return_args=True)`) left its inputs as they were: `before` are
        the inputs sent (tensors, or dicts and lists of them), `names` their names for the feedback."""
        if reply.args is None:
            raise ValueError("expect_unchanged needs the arguments back: call ctx.invoke(..., return_args=True)")
        function = reply.function or self.spec.function
        for name, b, a in zip(names, before, reply.args):
            if judging.same(b, a):
                continue
            where = ""
            if isinstance(b, dict) and isinstance(a, dict) and b.keys() == a.keys():
                changed = [k for k in b if not judging.same(b[k], a[k])]
                where = f" ({', '.join(f'{name}[{k!r}]' for k in changed)} changed)"
            raise CheckFailed(
                f"{function} modified its input {name}{where}; it must leave its inputs unchanged "
                "(compute new tensors, e.g. out = x * 2 or x.clone(), not x *= 2 or x[...] = ...)."
            )

    def _device(self, device: Any) -> torch.device | None:
        return (
            self.device
            if isinstance(device, str) and device == "default"
            else (None if device is None else torch.device(device))
        )
