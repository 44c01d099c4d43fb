"""The worker's guard: forbidden operations and autograd, detected at the operator level.

While a graded call runs, two PyTorch modes sit on the thread's mode stacks:

- a `TorchFunctionMode`, which sees every call of PyTorch's Python API (`torch.cdist`, `x.numel()`,
  `torch.nn.functional.*`, `torch._C._VariableFunctions.*`, property setters such as
  `x.requires_grad = True`) with the function object itself, however the student's code got hold of it
  (an alias, `getattr` with a string built at run time, `torch._C`, `exec`);
- a `TorchDispatchMode`, which sees every ATen operator that reaches the dispatcher (below autograd), so a
  forbidden operation is caught even when no Python name of it was called (`torch.ops.aten.*`, a path
  around the function mode), and sees the autograd engine run (`torch._C._current_autograd_node()`) and
  graphs being built (an operator on a tensor that requires grad, in grad mode).

A forbidden name that is found is a hit, attributed by walking the Python stack from the innermost frame
outward, past PyTorch, the standard library, site-packages and the kit's given modules: the first student
frame (a submitted file, or code built with exec/compile) names the file, function and line. Given code is
exempt from the autograd rules only by its file in the staged kit (`autograd_allowed_in`): a frame counts
as exempt only when its code object is one the kit's module defined at start-up and it runs with that
module's globals, so a student class reusing a given name, or code claiming the given file's name, is not.
A function's own forbidden operations (conv2d for Conv) are never exempt, whichever file reached them.

The guard is cheap while nothing is found (a dictionary lookup per call and per operator); the stack is
walked only for a hit. The calls naive per-element code and training loops are made of (arithmetic, indexing,
views, reductions on plain tensors, made directly by code that can be no forbidden module's or package's: see
`Guard.caller_passes`) take a fast path: the function was decided harmless by name once, and the kinds of its
arguments (see `Guard.watch_key`) were seen to reach no operator a rule names.

After each call the guard checks that both modes are still in place and still work (a canary operation must be
seen by both); if not, the call is reported as having removed the guard.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
import threading
import types
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from grader.sandbox.lowering import (
    AUTOGRAD,
    AUTOGRAD_ALL,
    AUTOGRAD_CANON,
    FUNC,
    GUARD_REMOVED,
    MAX_HITS,
    PACKAGES,
    REQUIRES_GRAD,
    REQUIRES_GRAD_,
    SAME_OPS,
    aten_ops,
    canonical,
)


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.add(os.path.realpath(os.path.dirname(torch.__file__)))
    roots.add(os.path.realpath(sys.base_prefix))
    roots.add(os.path.realpath(sys.prefix))
    return tuple(sorted(r.rstrip(os.sep) + os.sep for r in roots))


_STUDENT, _EXEMPT, _KIT, _LIBRARY, _STOP, _SKIP = range(6)
_ARG_FLAG = "<a flag among the arguments>"  # plan(): requires_grad_(flag), x.requires_grad = flag
_NOT_AUTOGRAD = "<no forbidden autograd name>"  # plan(): an autograd function whose names are all allowed
# A tensor's storage lives on in C++ after the tensor: finalisers hung on its Python object run inside PyTorch's
# kernels (a sparse tensor's zero_ freeing its values), with both modes off their stacks. Graded code has no use for
# it: reaching it counts as going around the guard (the static scan refuses the names too).
_STORAGE = frozenset({"torch.Tensor.untyped_storage", "torch.Tensor.storage", "torch.Tensor._typed_storage"})
_functorch_level = torch._C._functorch.maybe_current_level
_autograd_node = torch._C._current_autograd_node
_grad_enabled = torch.is_grad_enabled


class Guard:
    """The guard of one worker. `enter(forbidden)` before a student call, `exit()` after it returns the hits."""

    def __init__(
        self,
        root: str,
        student_files: set[str],
        exempt_files: list[str] = (),
        exempt_names: list[str] = (),
        guarded: list[str] = (),
        lazy: bool = True,
    ) -> None:
        self.root = os.path.realpath(root).rstrip(os.sep) + os.sep
        # watch the operators under a call only where they can break a rule (see `watch_key`); False: under every
        # call (the bench's baseline)
        self.lazy = lazy
        self.student_files = {os.path.realpath(f) for f in student_files}
        self.exempt_names = frozenset(exempt_names)
        self.guarded = list(guarded)
        self.active: frozenset[str] = frozenset()
        self.autograd_on = False
        self.autograd_ops = False  # the dispatch mode watches the engine and graphs (AUTOGRAD forbidden)
        self.packages: tuple[tuple[str, str], ...] = ()
        self.hits: list[dict] = []
        self.ops = self.last_ops = 0
        self._seen: set = set()
        self.suppress = 0
        self.thread = threading.get_ident()
        self.canary = False
        self.canary_seen = [False, False]
        self._lib_roots = _library_roots()
        here = os.path.dirname(os.path.dirname(os.path.realpath(__file__))) + os.sep  # the grader package
        self._guard_file = os.path.realpath(__file__)
        self._grader_dir = here
        self._kinds: dict[str, int] = {}
        self._canon: dict[int, tuple[Any, str]] = {}
        self._fn_match: dict[str, tuple[str, ...]] = {}
        self._op_match: dict[str, tuple[str, ...]] = {}
        self._plans: dict[Any, tuple] = {}
        self._quiet: dict = {}  # (function, arguments' kinds) seen to run no operator a rule names: its operators
        self._fast: dict = {}  # functions that can break a rule only by what they are given (see plan)
        self._callers: dict[str, bool] = {}  # files whose direct calls take the fast path (see caller_passes)
        self._running: set[int] = set()  # functions of the student's being run watched (see watching)
        self.flagged = 0  # operators that stood for a forbidden name (or autograd), recorded or exempt
        self._gc_pushed = False
        # what is decided per function and per operator depends only on the forbidden names: kept per set of names
        self._decided: dict[frozenset, tuple[dict, ...]] = {}
        self._op_table: dict[str, list[str]] = {}
        for name in set(self.guarded):
            for op in aten_ops(name):
                self._op_table.setdefault(op, []).append(name)
        self._same = {n: set(g) for g in SAME_OPS for n in g}
        # names of one object are one operation: torch.nn.functional.conv2d is torch.conv2d
        objects: dict[str, Any] = {}
        for name in self.guarded:
            obj = _resolve(name)
            if obj is not None and callable(obj) and not isinstance(obj, types.ModuleType):
                objects[name] = obj
        self._obj_canon = {name: canonical(obj) for name, obj in objects.items()}
        for name, c in self._obj_canon.items():
            self._same.setdefault(name, set()).add(c)
        # PyTorch's modules forbidden by name (torch.nn.Linear, torch.nn.CrossEntropyLoss, ...): a use is their
        # forward running, found by its code object on the stack of the PyTorch functions it calls
        self._module_codes: dict[str, set[types.CodeType]] = {}
        for name in self.guarded:
            obj = _resolve(name)
            if isinstance(obj, type) and issubclass(obj, torch.nn.Module) and obj is not torch.nn.Module:
                fwd = getattr(obj.forward, "__code__", None)
                if fwd is not None:
                    self._module_codes.setdefault(name, set()).add(fwd)
        self.module_codes: dict[types.CodeType, str] = {}
        self._pkg_dirs = {}
        for pkg in PACKAGES:
            try:
                mod = __import__(pkg, fromlist=["_"])
                self._pkg_dirs[pkg] = os.path.realpath(os.path.dirname(mod.__file__)) + os.sep
            except Exception:
                pass
        self.exempt_codes: dict[types.CodeType, dict] = {}
        for rel in exempt_files:
            self._load_exempt(rel)
        self.fmode = _FunctionMode(self)
        self.dmode = _DispatchMode(self)
        self._watch_collections()
        self.threads: set[int] = set()  # threads the student started during a guarded call
        self._guard_new_threads()

    def _guard_new_threads(self) -> None:
        """PyTorch's modes belong to the thread that pushed them: a thread started by student code during a
        guarded call runs under the same guard (Python's threading starts every thread through these)."""
        import _thread

        original = _thread.start_new_thread
        guard = self

        def start_new_thread(function, args, kwargs=None):
            if not guard.active:
                return original(function, args, kwargs or {})

            def run(*a, **k):
                guard.threads.add(threading.get_ident())
                torch._C._push_on_torch_function_stack(guard.fmode)
                torch._C._push_on_torch_dispatch_stack(guard.dmode)
                return function(*a, **k)

            return original(run, args, kwargs or {})

        for owner, attr in ((_thread, "start_new_thread"), (_thread, "start_new"), (threading, "_start_new_thread")):
            if getattr(owner, attr, None) is original:
                setattr(owner, attr, start_new_thread)

    def _watch_collections(self) -> None:
        """A collection runs finalisers (`__del__`) wherever the interpreter happens to be, also inside a call the
        function mode passed on unwatched (PyTorch switches the mode off while its handler runs): the operators
        under every collection are watched (one callback for every guard of the process)."""
        import gc

        _GUARDS.add(self)
        if _during_collection not in gc.callbacks:
            gc.callbacks.append(_during_collection)

    def _collecting(self, phase: str) -> None:
        if not self.active or not self.lazy:
            return
        if phase == "start" and not self._gc_pushed:
            self._gc_depth = torch._C._len_torch_dispatch_stack()
            torch._C._push_on_torch_dispatch_stack(self.dmode)
            self._gc_pushed = True
        elif phase == "stop" and self._gc_pushed:
            self._gc_pushed = False
            _pop_dispatch_to(self._gc_depth)

    def watch_key(self, func: Any, canon: str, args: tuple, kwargs: dict) -> Any:
        """What decides which operators a call of `func` reaches, for the functions whose operators depend on
        nothing else (PASS_ON: arithmetic, indexing, views, reductions, products, creation, a property read): the
        function and its arguments' kinds (each tensor's dtype, dimensions, device and layout; each flag, string
        and dtype as itself; each number as its type). None where the call must be watched whatever was seen
        before: any other function (PyTorch branches on values in many: a pooling to size 1 is a mean, lp_pool
        with p=inf is max_pool), a property set or deleted (it can free a tensor whose finalisers run inside),
        an argument that requires grad (a graph would be built), any object the kinds above do not cover (the
        student's own, a callable, which PyTorch may call back with the function mode off), a functorch transform
        or a backward pass in progress."""
        if canon not in PASS_ON and not (type(func) is types.MethodWrapperType and func.__name__ == "__get__"):
            return None
        if _functorch_level() is not None or _autograd_node() is not None:
            return None
        sig = _signature(args, kwargs)
        return None if sig is None else (_func_key(func), sig)

    def call_watched(self, func: Any, args: tuple, kwargs: dict, key: Any):
        """Run a call with the dispatch mode on the stack; remember `key` as quiet where no operator under it
        stood for a forbidden name."""
        depth = torch._C._len_torch_dispatch_stack()
        if depth and torch._C._get_dispatch_stack_at(depth - 1) is self.dmode:
            # inside a call watched already (a callback it runs, Guard.watching): its operators are seen once
            return func(*args, **kwargs)
        flagged, ops = self.flagged, self.ops
        torch._C._push_on_torch_dispatch_stack(self.dmode)
        try:
            out = func(*args, **kwargs)
        finally:
            _pop_dispatch_to(depth)
        if key is not None and self.flagged == flagged and not self.foreign_types:
            if len(self._quiet) >= _MAX_QUIET:  # kinds without end (a student's ever new strings): start over
                self._quiet.clear()
            try:  # with the operators it ran: a call passed on unwatched counts them again (reply.ops)
                self._quiet[key] = self.ops - ops
            except TypeError:
                pass
        return out

    # -- given code exempt from the autograd rules ----------------------------------------------------------
    def _load_exempt(self, rel: str) -> None:
        """Import a given module now (before any student code runs) and remember its code objects."""
        import importlib

        path = os.path.realpath(os.path.join(self.root, rel))
        if not path.startswith(self.root) or path in self.student_files or not os.path.isfile(path):
            return
        module_name = os.path.splitext(os.path.relpath(path, self.root))[0].replace(os.sep, ".")
        try:
            module = importlib.import_module(module_name)
        except Exception:
            return
        if os.path.realpath(getattr(module, "__file__", "") or "") != path:
            return
        g = module.__dict__
        for code in _codes_of(module, lambda f: os.path.realpath(f) == path):
            self.exempt_codes[code] = g

    # -- entering and leaving a call ---------------------------------------------------------------------
    def enter(self, forbidden) -> None:
        self.active = frozenset(forbidden)
        self.autograd_on = bool(self.active & AUTOGRAD_ALL)
        self.packages = tuple((n, self._pkg_dirs[n]) for n in PACKAGES if n in self.active and n in self._pkg_dirs)
        self.module_codes = {c: n for n in self.active for c in self._module_codes.get(n, ())}
        self.autograd_ops = self.autograd_on and AUTOGRAD in self.active
        decided = self._decided.get(self.active)
        if decided is None:
            decided = self._decided[self.active] = ({}, {}, {}, {}, {}, {})
        self._fn_match, self._op_match, self._plans, self._quiet, self._fast, self._callers = decided
        self.hits, self._seen, self.suppress = [], set(), 0
        self.ops = 0  # operators dispatched during the call: the judge finds a result computed by none suspect
        self.foreign_types = False  # a tensor subclass of the student's took part: the guard cannot see inside
        self.thread = threading.get_ident()
        self._base = (torch._C._len_torch_function_stack(), torch._C._len_torch_dispatch_stack())
        self._gc_pushed = False
        _silence_warnings()
        torch._C._push_on_torch_function_stack(self.fmode)
        if not self.lazy:
            torch._C._push_on_torch_dispatch_stack(self.dmode)

    def only_its_modes(self) -> bool:
        """Whether the mode stacks hold the guard's modes and nothing else (outside any call PyTorch is running:
        the function mode, and the dispatch mode unless it is pushed only where a call needs it)."""
        return torch._C._len_torch_function_stack() == self._base[0] + 1 and torch._C._len_torch_dispatch_stack() == (
            self._base[1] + (0 if self.lazy else 1)
        )

    def pause(self) -> tuple:
        """Stop recording in the middle of a call, while the worker's own code runs (a stand-in for the course's
        oracle encoding a call to the oracle process, grader.sandbox.proxy); returns what `resume` restores. The
        modes stay on the stacks: with nothing active they only pass each call on."""
        saved = (self.active, self.autograd_on, self.packages, self.module_codes, self.autograd_ops)
        self.active, self.autograd_on, self.packages, self.module_codes = frozenset(), False, (), {}
        self.autograd_ops = False
        return saved

    def resume(self, saved: tuple) -> None:
        """Record again as before `pause`."""
        self.active, self.autograd_on, self.packages, self.module_codes, self.autograd_ops = saved

    def exit(self) -> list[dict]:
        """Leave the call: check the guard is still in place and working, restore the mode stacks, and
        return the hits."""
        removed = False
        self.last_ops = self.ops
        nf, nd = torch._C._len_torch_function_stack(), torch._C._len_torch_dispatch_stack()
        fstack = [torch._C._get_function_stack_at(i) for i in range(nf)]
        dstack = [torch._C._get_dispatch_stack_at(i) for i in range(nd)]
        self.active, self.autograd_on, self.packages, self.module_codes = frozenset(), False, (), {}
        self.autograd_ops = False
        if self.fmode not in fstack or (not self.lazy and self.dmode not in dstack):
            removed = True
        else:
            self.canary, self.canary_seen = True, [False, False]
            if self.lazy:  # the dispatch mode is pushed where a call needs it: here, to see that it still works
                torch._C._push_on_torch_dispatch_stack(self.dmode)
            try:
                torch.zeros(1).neg()
            except Exception:
                pass
            finally:
                self.canary = False
                if self.lazy:
                    _pop_dispatch_to(len(dstack))
            removed = not all(self.canary_seen)
        # back to the stacks as they were before the call (empty in the worker): modes the student pushed go too
        while torch._C._len_torch_dispatch_stack() > self._base[1]:
            torch._C._pop_torch_dispatch_stack(None)
        while torch._C._len_torch_function_stack() > self._base[0]:
            torch._C._pop_torch_function_stack()
        _unsilence_warnings()
        hits = list(self.hits)
        if removed or self.foreign_types:
            hits.append({"name": GUARD_REMOVED, "op": None, "file": None, "function": None, "line": None})
        self.hits, self._seen = [], set()
        return hits

    # -- matching ------------------------------------------------------------------------------------------
    def canon(self, func: Any) -> str:
        if isinstance(func, types.MethodWrapperType):  # a new object at every access: not cached
            return canonical(func)
        entry = self._canon.get(id(func))  # by identity (see _func_key), kept alive with its entry
        if entry is not None and entry[0] is func:
            return entry[1]
        c = canonical(func)
        if len(self._canon) >= _MAX_QUIET:
            self._canon.clear()
        self._canon[id(func)] = (func, c)
        return c

    def function_names(self, canon: str) -> tuple[str, ...]:
        names = self._fn_match.get(canon)
        if names is None and canon.endswith(("__get__", "__set__", "__delete__")):
            names = ()  # reading a property is no use of it; setting requires_grad is autograd_use's
        if names is None and canon.startswith("torch.ops.aten."):
            # an ATen operator called by its name: the forbidden names it is, matched before PyTorch decomposes it
            names = self.op_names(canon.removeprefix("torch.ops.aten."))
            self._fn_match[canon] = names
        if names is None:
            found = [
                n
                for n in self.active
                if n not in AUTOGRAD_ALL and (canon == n or canon.startswith(n + ".") or canon in self._same.get(n, ()))
            ]
            names = _most_precise(canon, found, self._obj_canon)
            self._fn_match[canon] = names
        return names

    def op_names(self, opname: str) -> tuple[str, ...]:
        """The forbidden names an ATen operator (by its name, `cdist` for aten::cdist.default) stands for."""
        names = self._op_match.get(opname)
        if names is None:
            found = [n for n in self._op_table.get(opname, ()) if n in self.active]
            names = _most_precise("", found, {})
            self._op_match[opname] = names
        return names

    def plan(self, func: Any) -> tuple[str, tuple[str, ...], str | None, bool]:
        """What a call of `func` is, decided once per function (and set of forbidden names): its canonical name,
        the forbidden names it stands for, the autograd name it is whatever its arguments (`_ARG_FLAG` where
        that depends on a flag among them), and whether it is Python code not PyTorch's (`_outside_torch`)."""
        key, owner = _func_key(func), _func_owner(func)
        entry = self._plans.get(key)
        if entry is not None and entry[0] is owner:
            return entry[1]
        canon = self.canon(func)
        p = (canon, self.function_names(canon), self._autograd_static(canon), _outside_torch(func))
        if len(self._plans) >= _MAX_QUIET:  # functions without end (a student's ever new objects): start over,
            self._plans.clear()  # with what was learnt under their ids
            self._fast.clear()
            self._quiet.clear()
        # keyed by identity (a student's object can hash and compare as anything), kept alive with its entry
        self._plans[key] = (owner, p)
        if (
            (canon in PASS_ON or (type(func) is _METHOD_WRAPPER and func.__name__ == "__get__"))
            and canon not in _STORAGE
            and not p[3]
            and not p[1]
            and p[2] in (None, _NOT_AUTOGRAD)
        ):
            # the function mode's fast path (_FunctionMode): nothing about the function itself can break a
            # rule; what its arguments are decides (requires_grad=True among them, where autograd is watched)
            self._fast[key] = (owner, self.autograd_on and p[2] is None, _in_place(canon))
        return p

    def _autograd_static(self, canon: str) -> str | None:
        """The autograd name a call of `canon` is whatever its arguments (`_NOT_AUTOGRAD` when it is none),
        `_ARG_FLAG` when a flag among them decides, None when only the call's arguments and state can tell."""
        name = AUTOGRAD_CANON.get(canon)
        if name == REQUIRES_GRAD_ or canon == "torch.Tensor.requires_grad.__set__":
            return _ARG_FLAG
        if name is None and canon.startswith(("torch.autograd.", "torch.func.", "torch._functorch.")):
            name = canon if canon in self.active else (AUTOGRAD if "torch.autograd" in canon else FUNC)
        if name is None:
            return None
        return self._autograd_name(name) or _NOT_AUTOGRAD

    def _autograd_name(self, name: str | None) -> str | None:
        if name is None or name in self.active:
            return name
        return AUTOGRAD if AUTOGRAD in self.active else None

    def autograd_use(self, canon: str, static: str | None, args: tuple, kwargs: dict) -> str | None:
        """Which forbidden autograd name a Python-level call stands for, if any (`static` from `plan`)."""
        if static is _ARG_FLAG:
            if canon == "torch.Tensor.requires_grad.__set__":
                return self._autograd_name(REQUIRES_GRAD) if len(args) > 1 and args[1] else None
            flag = args[1] if len(args) > 1 else kwargs.get("requires_grad", True)
            return self._autograd_name(REQUIRES_GRAD_) if flag else None
        if static is not None:
            return None if static is _NOT_AUTOGRAD else static
        if kwargs and kwargs.get("requires_grad"):
            return self._autograd_name(REQUIRES_GRAD)
        if _functorch_level() is not None and _differentiating():
            return self._autograd_name(FUNC)
        return None

    # -- recording -------------------------------------------------------------------------------------------
    def _kind(self, frame) -> int:
        code = frame.f_code
        g = self.exempt_codes.get(code)
        if g is not None and frame.f_globals is g:
            return _EXEMPT
        return self._file_kind(code.co_filename)

    def _file_kind(self, fn: str) -> int:
        k = self._kinds.get(fn)
        if k is None:
            k = self._kinds[fn] = self._classify(fn)
        return k

    def _classify(self, fn: str) -> int:
        if fn.startswith("<"):
            return _LIBRARY if fn.startswith("<frozen") else _STUDENT  # exec/compile'd code is the student's
        real = os.path.realpath(fn)
        if real in self.student_files:
            return _STUDENT
        if real == self._guard_file:
            return _SKIP
        if real.startswith(self._grader_dir):
            return _STOP
        if real.startswith(self.root):
            return _KIT
        return _LIBRARY

    def hit(self, name: str, op: str | None) -> bool:
        """Record a use of `name` (found as ATen operator `op`, or at the Python level) unless given code
        exempt for it made it. Returns whether a hit was recorded."""
        ident = threading.get_ident()
        if ident == self.thread or ident in self.threads:
            frame = sys._getframe(1)
        else:  # the autograd engine's own thread (CUDA): the caller waits in the graded call's thread
            frame = sys._current_frames().get(self.thread)
        exemptable = name in self.exempt_names
        student = None
        while frame is not None:
            k = self._kind(frame)
            if k == _STOP:
                break
            if k == _EXEMPT and student is None and exemptable:
                return False
            if k == _STUDENT:
                student = frame
                break
            frame = frame.f_back
        if student is not None:
            code = student.f_code
            where = (
                os.path.basename(code.co_filename) if not code.co_filename.startswith("<") else code.co_filename,
                getattr(code, "co_qualname", code.co_name),
                student.f_lineno,
            )
        else:
            where = (None, None, None)
        key = (name, where[0], where[2])
        if key not in self._seen and len(self.hits) < MAX_HITS:
            self._seen.add(key)
            self.hits.append({"name": name, "op": op, "file": where[0], "function": where[1], "line": where[2]})
        return True

    def watching(self, fn: Callable, running: int | None = None) -> Callable:
        """`fn`, student code that PyTorch calls inside a call the function mode is handling (with the mode off its
        stack: a callback of Tensor.apply_, a function run by PyTorch's torch-function machinery), run with the
        function mode back on its stack, so that what it calls is seen as any other call. `running`: the function's
        id while it runs (a function that hands itself to the machinery again, as PyTorch's own Python functions
        do, is then run as PyTorch runs it, not watched again without end)."""
        mode, inside = self.fmode, self._running

        def watched(*args, **kwargs):
            depth = torch._C._len_torch_function_stack()
            torch._C._push_on_torch_function_stack(mode)
            if running is not None:
                inside.add(running)
            try:
                return fn(*args, **kwargs)
            finally:
                if running is not None:
                    inside.discard(running)
                while torch._C._len_torch_function_stack() > depth:
                    torch._C._pop_torch_function_stack()

        return watched

    def caller_passes(self, filename: str) -> bool:
        """Whether a call made directly by code of this file can be no use of a forbidden module or package: a
        student's file ends `module_user`'s walk (no module of PyTorch's between), and a file outside the forbidden
        packages (and outside the overrides that pass a call on) is no package's use (`package_user`)."""
        if self.module_codes and self._file_kind(filename) != _STUDENT:
            return False
        if self.packages:
            if filename.endswith(("overrides.py", "_python_dispatch.py")):
                return False
            if any(filename.startswith(d) for _, d in self.packages):
                return False
        return True

    def module_user(self, depth: int = 2, levels: int = 8) -> str | None:
        """A forbidden PyTorch module (torch.nn.Linear, ...) whose forward made this call, a few frames up."""
        f = sys._getframe(depth)
        codes = self.module_codes
        for _ in range(levels):
            if f is None:
                return None
            code = f.f_code
            name = codes.get(code)
            if name is not None:
                return name
            k = self._file_kind(code.co_filename)
            if k == _STUDENT:  # the student's own code made the call: no module of PyTorch's between
                return None
            f = f.f_back
        return None

    def package_user(self, depth: int = 2) -> str | None:
        """A forbidden package (torch.optim, ...) whose own code made this call."""
        f = sys._getframe(depth)
        for _ in range(3):
            if f is None:
                return None
            fn = f.f_code.co_filename
            for name, d in self.packages:
                if fn.startswith(d):
                    return name
            if not fn.endswith(("overrides.py", "_python_dispatch.py")):
                return None
            f = f.f_back
        return None


def _codes_of(module: types.ModuleType, same_file: Callable[[str], bool]) -> list[types.CodeType]:
    """Every code object a module's functions and classes are made of (those compiled from its own file,
    `same_file(co_filename)`, not imported ones)."""
    out: list[types.CodeType] = []
    seen: set[int] = set()

    def add_code(code: types.CodeType) -> None:
        if id(code) in seen or not same_file(code.co_filename):
            return
        seen.add(id(code))
        out.append(code)
        for c in code.co_consts:
            if isinstance(c, types.CodeType):
                add_code(c)

    def add(obj: Any, depth: int = 0) -> None:
        if depth > 4:
            return
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if isinstance(obj, property):
            for f in (obj.fget, obj.fset, obj.fdel):
                if f is not None:
                    add(f, depth + 1)
            return
        if isinstance(obj, types.FunctionType):
            add_code(obj.__code__)
        elif isinstance(obj, type) and obj.__module__ == module.__name__:
            for v in list(vars(obj).values()):
                add(v, depth + 1)

    for value in list(module.__dict__.values()):
        add(value)
    return out


def _most_precise(canon: str, found: list[str], obj_canon: dict[str, str]) -> tuple[str, ...]:
    """One name for one use: a name of the very function called (torch.nn.functional's spelling first, as
    students write it), else the longest (most precise) of the names that cover it."""
    if not found:
        return ()
    same = [n for n in found if n == canon or obj_canon.get(n) == canon]
    if same:
        return (min(same, key=lambda n: (not n.startswith("torch.nn.functional."), n != canon, -len(n), n)),)
    return (max(sorted(found), key=len),)


def _resolve(name: str) -> Any:
    import importlib

    parts = name.split(".")
    try:
        obj = importlib.import_module(parts[0])
        for i, p in enumerate(parts[1:], start=1):
            try:
                obj = getattr(obj, p)
            except AttributeError:
                obj = importlib.import_module(".".join(parts[: i + 1]))
        return obj
    except Exception:
        return None


def _differentiating() -> bool:
    """Whether the innermost functorch transform is one that differentiates (grad, vjp, jacrev, jvp, ...)
    rather than vmap (which is fine: it vectorises)."""
    try:
        from torch._functorch.pyfunctorch import retrieve_current_functorch_interpreter

        key = retrieve_current_functorch_interpreter().key()
        return "Vmap" not in str(key) and "Functionalize" not in str(key)
    except Exception:
        return True


def _requires_grad(args: tuple, kwargs: dict | None) -> bool:
    for a in args:
        if isinstance(a, torch.Tensor):
            if a.requires_grad:
                return True
        elif isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, torch.Tensor) and b.requires_grad:
                    return True
    if kwargs:
        for a in kwargs.values():
            if isinstance(a, torch.Tensor) and a.requires_grad:
                return True
    return False


_GUARDS: weakref.WeakSet[Guard] = weakref.WeakSet()


def _during_collection(phase: str, info: dict) -> None:
    for guard in list(_GUARDS):
        guard._collecting(phase)


# The functions a call of which the function mode may pass on unwatched, once the same function with arguments of
# the same kinds ran no operator a rule names: those whose operators depend on nothing but those kinds. The hot
# loops of naive code are made of them. Everything else (torch.nn.functional, losses, pooling, interpolation, ...)
# is watched every time: PyTorch branches on argument values there.
_ARITHMETIC = (
    "add sub mul div true_divide floor_divide remainder fmod neg negative abs pow exp log sqrt rsqrt square "
    "reciprocal sign clamp clamp_min clamp_max clip maximum minimum"
).split()
_REDUCTIONS = "sum mean max min argmax argmin amax amin any all cumsum".split()
_PRODUCTS = "matmul mm bmm dot mv outer".split()
_COMPARISONS = "eq ne lt le gt ge logical_and logical_or logical_not where".split()
_VIEWS = (
    "view view_as reshape reshape_as permute transpose t unsqueeze squeeze flatten expand expand_as contiguous "
    "clone detach to float double long int bool type_as repeat index_select gather masked_fill fill_ zero_ copy_ "
    "new_zeros new_ones new_full new_empty item tolist size dim stride numel nelement is_contiguous "
    "data_ptr element_size"
).split()
# (not torch.tensor nor Tensor.new_tensor: given a tensor they warn inside the call, every time, and a warning runs
# Python's warnings hooks, which student code can replace, there)
_CREATION = (
    "zeros ones empty full zeros_like ones_like empty_like full_like arange eye stack cat randn rand randint "
    "randn_like rand_like"
).split()
_DUNDERS = (
    "getitem setitem add radd iadd sub rsub isub mul rmul imul truediv rtruediv itruediv floordiv rfloordiv mod "
    "pow rpow ipow neg abs matmul rmatmul eq ne lt le gt ge and or xor invert len bool float int index"
).split()
PASS_ON = frozenset(
    [f"torch.Tensor.{n}" for n in _ARITHMETIC + _REDUCTIONS + _PRODUCTS + _COMPARISONS + _VIEWS]
    + [f"torch.Tensor.{n}_" for n in _ARITHMETIC]
    + [f"torch.{n}" for n in _ARITHMETIC + _REDUCTIONS + _PRODUCTS + _COMPARISONS + _CREATION]
    + [f"torch.Tensor.__{n}__" for n in _DUNDERS]
)


_IN_PLACE_DUNDERS = frozenset(
    f"torch.Tensor.__i{n}__" for n in "add sub mul truediv floordiv mod pow and or xor lshift rshift matmul".split()
)


def _in_place(canon: str) -> bool:
    """Whether a Tensor function changes its tensor in place (add_, x += 1): it runs its operator, and returns
    the tensor it was given."""
    name = canon.rsplit(".", 1)[-1]
    return canon in _IN_PLACE_DUNDERS or (name.endswith("_") and not name.startswith("__"))


def _pop_dispatch_to(depth: int) -> None:
    while torch._C._len_torch_dispatch_stack() > depth:
        torch._C._pop_torch_dispatch_stack(None)


# argument kinds for watch_key: a number by its type (loops index with ever new ones), these by their value
_BY_TYPE = frozenset(map(id, (int, float, complex, type(None), type(Ellipsis))))
_BY_VALUE = frozenset(map(id, (bool, str, torch.dtype, torch.device, torch.layout, torch.memory_format)))
_TENSOR, _PARAMETER = torch.Tensor, torch.nn.Parameter
_MAX_ITEMS = 32
_MAX_QUIET = 50_000


def _signature(args: tuple, kwargs: dict | None) -> tuple | None:
    """The kinds of a call's arguments (see Guard.watch_key), keywords with their names; None where one is of no
    kind that can be passed on."""
    sig = _kinds(args, 0)
    if sig is None or not kwargs:
        return sig
    ks = _kinds(tuple(kwargs.values()), 0)
    return None if ks is None else (sig, tuple(kwargs), ks)


def _kinds(values: tuple | list, depth: int) -> tuple | None:
    out = []
    for a in values:
        t = type(a)
        if t is _TENSOR or t is _PARAMETER:
            if a.requires_grad:
                return None
            out.append((a.dtype, a.dim(), a.device, a.layout))
        elif id(t) in _BY_TYPE:  # by identity: a student's class can hash and compare as int
            out.append(t)
        elif id(t) in _BY_VALUE:
            out.append(a)
        elif t is slice:  # its bounds may be any object, whose __index__ PyTorch calls inside the call
            b, e, s = a.start, a.stop, a.step
            if not ((b is None or type(b) is int) and (e is None or type(e) is int) and (s is None or type(s) is int)):
                return None
            out.append(slice)
        elif t is torch.Size:  # the same for its sizes (a SymInt around the student's node)
            if not all(type(v) is int for v in a):
                return None
            out.append(torch.Size)
        elif (t is tuple or t is list) and depth < 2 and len(a) <= _MAX_ITEMS:
            inner = _kinds(a, depth + 1)
            if inner is None:
                return None
            out.append((t, inner))
        else:
            return None
    return tuple(out)


_TORCH_DIR = os.path.realpath(os.path.dirname(torch.__file__)) + os.sep
_TYPES_SEEN: dict[int, tuple[type, bool]] = {id(torch.Tensor): (torch.Tensor, False)}  # by identity, kept alive


def _foreign(types) -> bool:
    """Whether a mode's `types` holds a tensor subclass whose handlers are not PyTorch's own: PyTorch runs such a
    handler with the guard's modes off their stacks, so what it does would go unseen."""
    for t in types:
        entry = _TYPES_SEEN.get(id(t))
        if entry is not None and entry[0] is t:
            seen = entry[1]
        else:
            seen = False
            for attr in ("__torch_function__", "__torch_dispatch__"):
                fn = getattr(getattr(t, attr, None), "__func__", getattr(t, attr, None))
                code = getattr(fn, "__code__", None)
                if code is not None and not os.path.realpath(code.co_filename).startswith(_TORCH_DIR):
                    seen = True
            _TYPES_SEEN[id(t)] = (t, seen)
        if seen:
            return True
    return False


# Tensor methods that call a Python callable among their arguments back inside the call (the function mode is off
# its stack there): the callable is run with it back on (Guard.watching)
_CALLS_BACK = frozenset({"torch.Tensor.apply_", "torch.Tensor.map_", "torch.Tensor.map2_"})
_TORCH_FILE: dict[types.CodeType, bool] = {}
_C_CALLABLES = frozenset(  # by identity: a student's class can compare equal to any of them
    map(
        id,
        (
            types.BuiltinFunctionType,
            types.BuiltinMethodType,
            types.MethodDescriptorType,
            types.WrapperDescriptorType,
            types.ClassMethodDescriptorType,
            types.MethodWrapperType,
        ),
    )
)
# read through PyTorch's and Python's own descriptors, so that no class or metaclass of the student's runs here
_MRO = type.__dict__["__mro__"].__get__
_CLASS_DICT = type.__dict__["__dict__"].__get__
_PARTIAL_PARTS = tuple(functools.partial.__dict__[n].__get__ for n in ("func", "args", "keywords"))


def _outside_torch(func: Any, depth: int = 0) -> bool:
    """Whether calling `func` runs Python code that is not PyTorch's own: a function the function mode is asked to
    handle that PyTorch did not define is the student's, and runs inside the handler with the mode off its stack.
    Followed through what wraps code: a bound method, a partial (its function and arguments), a decorated function
    (`__wrapped__`: torch.no_grad() around the student's), an lru_cache, a class (its __init__), an object's
    __call__. Decided without running any of the student's code (no getattr on the student's objects)."""
    if depth > 6:
        return True
    t = type(func)
    if id(t) in _C_CALLABLES:
        return False
    if t is types.MethodType:
        return _outside_torch(func.__func__, depth + 1)
    if issubclass(t, functools.partial):
        f, args, keywords = (get(func) for get in _PARTIAL_PARTS)
        if t is not functools.partial:
            return True  # a partial of the student's own class: its __call__ may be its own
        return any(_outside_torch(x, depth + 1) for x in (f, *args, *dict.values(keywords)) if callable(x))
    if t is types.FunctionType:
        if not _torch_function_code(func):
            return True
        wrapped = dict.get(func.__dict__, "__wrapped__")
        return wrapped is not None and _outside_torch(wrapped, depth + 1)
    if issubclass(t, type):  # calling a class runs its __new__ and __init__
        return True
    if t is functools._lru_cache_wrapper:
        return _outside_torch(func.__wrapped__, depth + 1)
    # anything else (torch.ops.aten.x, an object of the student's): its class's __call__
    call = next((_CLASS_DICT(k)["__call__"] for k in _MRO(t) if "__call__" in _CLASS_DICT(k)), None)
    if isinstance(call, (staticmethod, classmethod)):
        call = call.__func__
    return type(call) is types.FunctionType and _outside_torch(call, depth + 1)


def _torch_function_code(func: types.FunctionType) -> bool:
    """Whether a Python function is PyTorch's: its code comes from a file in PyTorch's folder. (Code compiled under a
    file name of PyTorch's would pass: compile, exec and code objects are refused by the static scan; telling it by
    its globals too would risk taking one of PyTorch's own functions for the student's, which would then dispatch
    to itself through the mode without end.)"""
    code = func.__code__
    in_torch = _TORCH_FILE.get(code)
    if in_torch is None:
        in_torch = _TORCH_FILE[code] = os.path.realpath(code.co_filename).startswith(_TORCH_DIR)
    return in_torch


# Warnings during a guarded call. PyTorch warns inside some calls (torch.tensor of a tensor, x.T of a 3-d tensor),
# and a warning runs Python's warnings machinery there: hooks that student code can replace (warnings.showwarning,
# formatwarning, linecache, sys.stderr), with the function mode off its stack. While a call runs, the first filter
# ignores every warning, so no hook runs; a call is passed on unwatched only while that filter is still first in the
# warnings module Python uses (student code that changes it gets every call watched).
_IGNORE_ALL = ("ignore", None, Warning, None, 0)
_WARNINGS_DICT = vars(warnings)
_MODULES = sys.modules  # the interpreter's own table, which the warnings machinery reads


def _silence_warnings() -> None:
    filters = _WARNINGS_DICT.get("filters")
    if type(filters) is not list:
        filters = _WARNINGS_DICT["filters"] = []
    if not (filters and filters[0] is _IGNORE_ALL):
        filters.insert(0, _IGNORE_ALL)
        warnings._filters_mutated()


def _unsilence_warnings() -> None:
    filters = _WARNINGS_DICT.get("filters")
    if type(filters) is list:
        for i, f in enumerate(filters):  # first, or behind filters the student's code added
            if f is _IGNORE_ALL:
                del filters[i]
                warnings._filters_mutated()
                break


def _warnings_silent() -> bool:
    filters = _WARNINGS_DICT.get("filters")
    return (
        type(filters) is list and bool(filters) and filters[0] is _IGNORE_ALL and _MODULES.get("warnings") is warnings
    )


def _func_owner(func: Any) -> Any:
    """The object a function is known by: a property's descriptor for its __get__/__set__ (a method-wrapper is a new
    object at every access), else the function itself."""
    return func.__self__ if type(func) is _METHOD_WRAPPER else func


def _func_key(func: Any) -> Any:
    """What is decided of a function is kept under its identity, never its hash: student code can hand PyTorch's
    torch-function machinery an object that hashes and compares as torch.add."""
    return (id(func.__self__), func.__name__) if type(func) is _METHOD_WRAPPER else id(func)


def _ops_of(out: Any, args: tuple, ops: int, in_place: bool) -> int:
    """The operators a call passed on unwatched dispatched this time, from those its key's watched run counted
    (`ops`): a tensor result that is one of its arguments (contiguous() of a contiguous tensor) none unless the
    function works in place, a new one at least one (its key's first run may have returned itself)."""
    t = type(out)
    if t is _TENSOR or t is _PARAMETER:
        for a in args:
            if out is a:
                return ops if in_place else 0
        return ops if ops > 0 else 1
    return ops


_METHOD_WRAPPER = types.MethodWrapperType


class _FunctionMode(TorchFunctionMode):
    def __init__(self, guard: Guard) -> None:
        super().__init__()
        self.guard = guard

    def __torch_function__(self, func, types, args=(), kwargs=None):
        g = self.guard
        if not g.active:  # between calls, or paused: only the canary of exit() is looked for
            if g.canary:
                g.canary_seen[0] = True
            return func(*args, **kwargs) if kwargs else func(*args)
        if g.lazy and (not types or (len(types) == 1 and types[0] is _TENSOR)):
            # the fast path, for the calls naive code is made of (arithmetic, indexing, views on plain tensors, made
            # directly by a student's frame): the same decisions as below, taken with what was decided before
            if type(func) is _METHOD_WRAPPER:  # _func_owner and _func_key, inlined on the hot path
                owner = func.__self__
                fkey = (id(owner), func.__name__)
            else:
                owner = func
                fkey = id(func)
            fast = g._fast.get(fkey)
            if fast is not None and fast[0] is not owner:
                fast = None
            if fast is not None and _functorch_level() is None and _autograd_node() is None:
                if g.module_codes or g.packages:  # used by a forbidden module's or package's code: not here
                    fn = sys._getframe(1).f_code.co_filename
                    ok = g._callers.get(fn)
                    if ok is None:
                        ok = g._callers[fn] = g.caller_passes(fn)
                    if not ok:
                        fast = None
                if fast is not None and not (kwargs and fast[1] and kwargs.get("requires_grad")):
                    sig = _signature(args, kwargs) if kwargs else _kinds(args, 0)
                    if sig is not None:
                        key = (fkey, sig)
                        ops = g._quiet.get(key) if _warnings_silent() else None
                        if ops is None:
                            return g.call_watched(func, args, kwargs or {}, key)
                        out = func(*args, **kwargs) if kwargs else func(*args)
                        g.ops += _ops_of(out, args, ops, fast[2])
                        return out
        kwargs = kwargs or {}
        if types and _foreign(types):
            g.foreign_types = True  # a tensor subclass's own handler would run with this mode off the stack
        recorded = False
        canon, names, static, outside = g.plan(func)
        # code of the student's that PyTorch runs inside this call, while this mode is off its stack: run with it on
        wrapped = False
        if canon in _CALLS_BACK:  # Tensor.apply_(callback), ...: called back for each element
            args = tuple(g.watching(a) if callable(a) else a for a in args)
            if kwargs:
                kwargs = {k: g.watching(v) if callable(v) else v for k, v in kwargs.items()}
            wrapped = True
        elif outside and id(func) not in g._running:  # a function of the student's, run by PyTorch's machinery
            func, wrapped = g.watching(func, id(func)), True
        if canon in _STORAGE:  # see _STORAGE: where no mode can follow
            recorded = g.hit(GUARD_REMOVED, None) or recorded
        for n in names:
            recorded = g.hit(n, None) or recorded
        if g.autograd_on:
            name = g.autograd_use(canon, static, args, kwargs)
            if name is not None:
                recorded = g.hit(name, None) or recorded
        if g.packages:
            pkg = g.package_user()
            if pkg is not None:
                recorded = g.hit(pkg, None) or recorded
        if g.module_codes:
            module = g.module_user()
            if module is not None:
                recorded = g.hit(module, None) or recorded
        if recorded:  # the operators this call runs are the same use: not reported again
            g.suppress += 1
            try:
                return func(*args, **kwargs)
            finally:
                g.suppress -= 1
        if g.lazy:
            key = (
                g.watch_key(func, canon, args, kwargs)
                if not wrapped and (not types or (len(types) == 1 and types[0] is _TENSOR))
                else None
            )
            ops = g._quiet.get(key) if key is not None and _warnings_silent() else None
            if ops is not None:
                out = func(*args, **kwargs)
                g.ops += _ops_of(out, args, ops, _in_place(canon))
                return out
            return g.call_watched(func, args, kwargs, key)
        return func(*args, **kwargs)


class _DispatchMode(TorchDispatchMode):
    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # else TorchDispatchMode wraps __torch_dispatch__ in torch._disable_dynamo, whose first call imports
        # torch._dynamo: 2.5 s of every worker's first guarded request, for a compiler graded code never runs
        return False

    def __init__(self, guard: Guard) -> None:
        super().__init__()
        self.guard = guard

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        g = self.guard
        if not g.active:
            if g.canary:
                g.canary_seen[1] = True
            return func(*args, **kwargs) if kwargs else func(*args)
        g.ops += 1
        if types and _foreign(types):
            g.foreign_types = True
        if not g.suppress:
            for n in g.op_names(func._opname):
                g.flagged += 1
                g.hit(n, func._opname)
            if g.autograd_ops:
                if _autograd_node() is not None:
                    g.flagged += 1
                    g.hit(AUTOGRAD, func._opname)  # the engine is running a backward pass
                elif _grad_enabled() and _requires_grad(args, kwargs):
                    g.flagged += 1
                    g.hit(AUTOGRAD, func._opname)  # a graph is being built
        return func(*args, **kwargs) if kwargs else func(*args)


def hit_records(value: Any) -> list[dict]:
    """The hits of a reply, as the judge keeps them: well-formed records only (the worker is untrusted)."""
    out: list[dict] = []
    for h in value if isinstance(value, list) else []:
        if not isinstance(h, dict) or not isinstance(h.get("name"), str):
            continue
        line = h.get("line")
        out.append(
            {
                "name": h["name"][:200],
                "op": h["op"][:200] if isinstance(h.get("op"), str) else None,
                "file": h["file"][:200] if isinstance(h.get("file"), str) else None,
                "function": h["function"][:200] if isinstance(h.get("function"), str) else None,
                "line": line if isinstance(line, int) and not isinstance(line, bool) else None,
            }
        )
        if len(out) >= MAX_HITS + 1:
            break
    return out


def describe_hit(h: dict) -> str:
    """`torch.cdist (line 12 of knn.py)`, for feedback."""
    if h.get("line") is not None and h.get("file"):
        return f"{h['name']} (line {h['line']} of {h['file']})"
    return h["name"]
