"""The worker's run-time walls inside its own interpreter: an audit hook and a check of the grader's integrity.

Student code runs in the same Python process as the guard that watches it (grader.sandbox.guard), so code that
reached the guard's objects could switch it off. The static scan (grader.judge.doors) refuses the usual ways in
(frames, gc, computed getattr, private names); these are the same walls at run time, for what reading the source
cannot see:

- `install_hook`: a `sys.addaudithook` hook (PEP 578: a hook cannot be removed once added) that, while student
  code runs, refuses the interpreter's doors to objects it was never given: object enumeration (gc), frames
  (`sys._getframe`, `sys._current_frames`, `tb_frame`, `gi_frame`, `f_code`, ...), code objects and defaults
  (`__code__` read or written), tracing and profiling hooks, new audit hooks, ctypes, writing the special
  attributes of the grader's or PyTorch's classes, processes and programs (the kernel's filter,
  grader.sandbox.syscalls, would kill the worker for those; refusing them first names the line). The refusal is
  recorded where student code cannot reach it and reported with the call that made it; the error it raises may
  be caught, the record stays. The judge fails the whole file for it, like a door the static scan finds.
- `Integrity`: a snapshot, taken before any student code runs, of what the guard's verdict depends on (the
  namespaces of the grader's modules and classes, the guard's tables, PyTorch's mode classes); checked after
  every call and import of student code. A plain assignment (`Guard.hit = ...`) raises no audit event; this
  finds it afterwards, and the judge fails the file the same way.

Who is responsible for an event: the frame that raised it, looked through the standard library's reflection
helpers (`inspect.currentframe()`, `traceback`, ctypes' own Python code count as the student's call); a frame of
any other library stops the search (typing, collections and enum read their caller's frame to name a class the
student defines: that is theirs, not the student's). For the events that are never needed while student code
runs (gc enumeration, other threads' frames, tracing, new hooks, processes), any student frame on the stack
before the worker's own is enough.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading

MAX_REFUSALS = 20  # records kept per call (one is enough to fail the file)

# events refused when the student's code made them (directly, or through the standard library)
DIRECT = {
    "sys._getframe": "reads the interpreter's frames (sys._getframe)",
    "object.__getattr__": None,  # by attribute, see FRAME_ATTRS
    "object.__setattr__": None,  # by target, see _foreign
    "object.__delattr__": None,
    "code.__new__": "builds a code object",
    "function.__new__": "builds a function from a code object",
    "ctypes.dlopen": "loads a C library (ctypes)",
    "ctypes.dlsym": "reads a C library (ctypes)",
    "ctypes.dlsym/handle": "reads a C library (ctypes)",
    "ctypes.cdata": "reads raw memory (ctypes)",
    "ctypes.cdata/buffer": "reads raw memory (ctypes)",
    "ctypes.addressof": "reads raw memory (ctypes)",
    "ctypes.string_at": "reads raw memory (ctypes)",
    "ctypes.wstring_at": "reads raw memory (ctypes)",
    "ctypes.PyObj_FromPtr": "reads raw memory (ctypes)",
    "ctypes.call_function": "calls C code (ctypes)",
    "ctypes.seh_exception": "calls C code (ctypes)",
}
# events refused whenever student code is anywhere on the stack
ANYWHERE = {
    "gc.get_objects": "lists every object of the interpreter (gc.get_objects)",
    "gc.get_referrers": "searches the interpreter's objects (gc.get_referrers)",
    "gc.get_referents": "searches the interpreter's objects (gc.get_referents)",
    "sys._current_frames": "reads the frames of every thread (sys._current_frames)",
    "sys._current_exceptions": "reads the exceptions of every thread",
    "sys.settrace": "installs a tracing hook (sys.settrace)",
    "sys.setprofile": "installs a profiling hook (sys.setprofile)",
    "sys.addaudithook": "installs an audit hook",
    "os.fork": "starts a process (os.fork)",
    "os.forkpty": "starts a process (os.forkpty)",
    "os.system": "runs a program (os.system)",
    "os.exec": "runs a program (os.exec*)",
    "os.posix_spawn": "starts a process (os.posix_spawn)",
    "os.spawn": "starts a process (os.spawn*)",
    "subprocess.Popen": "starts a process (subprocess)",
    "os.kill": "sends a signal to a process",
    "os.killpg": "sends a signal to a process group",
}
# compile/exec raised from these standard-library files evaluate a string as code (typing's forward references:
# an annotation a student wrote as a string, evaluated by functools.singledispatch or typing.get_type_hints)
EVALUATORS = {"typing.py": "evaluates a string annotation as code"}
FRAME_ATTRS = {
    "f_code": "reads a frame's code (f_code)",
    "tb_frame": "reads the frames of a traceback (tb_frame)",
    "gi_frame": "reads a generator's frame (gi_frame)",
    "cr_frame": "reads a coroutine's frame (cr_frame)",
    "ag_frame": "reads an async generator's frame (ag_frame)",
    "gi_code": "reads a generator's code (gi_code)",
    "cr_code": "reads a coroutine's code",
    "__code__": "reads a function's code object (__code__)",
}


# standard-library modules whose frames are looked through: they reflect on the interpreter for their caller
REFLECTION_HELPERS = {
    f"{m}.py" for m in ("inspect", "traceback", "pdb", "bdb", "trace", "profile", "cProfile", "code", "codeop", "dis")
}


def _stdlib_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple({os.path.realpath(paths[k]) + os.sep for k in ("stdlib", "platstdlib") if k in paths})


def _site_roots() -> tuple[str, ...]:
    """Where installed libraries live. In a virtual environment `platstdlib` is the environment's lib folder, which
    holds site-packages: a file there is a library's (PyTorch's), not the standard library's."""
    import site

    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("purelib", "platlib") if k in paths} | set(site.getsitepackages())
    return tuple({os.path.realpath(r) + os.sep for r in roots})


def install_hook(student_files: set[str], grader_dir: str) -> tuple[list, list]:
    """Install the hook; returns (`running`, `refusals`): the worker sets running[0] while student code runs and
    takes the records from `refusals` after each call (see `take`). Both live only in this closure and the
    worker's frame, out of reach of the code the hook refuses frames and gc to."""
    student = {os.path.realpath(f) for f in student_files}
    stdlib = _stdlib_roots()
    site_roots = _site_roots()
    grader_dir = os.path.realpath(grader_dir) + os.sep
    kinds: dict[str, str] = {}
    running = [False]
    refusals: list[dict] = []
    busy = threading.local()
    getframe = sys._getframe

    def kind(filename: str) -> str:
        k = kinds.get(filename)
        if k is None:
            if filename.startswith("<frozen"):
                k = "lib"
            elif filename.startswith("<"):
                k = "student"  # code compiled from a string: the student's (the static scan refuses exec)
            else:
                real = os.path.realpath(filename)
                if real in student:
                    k = "student"
                elif real.startswith(grader_dir):
                    k = "grader"
                elif real.startswith(stdlib) and not real.startswith(site_roots):
                    rel = real[len(next(r for r in stdlib if real.startswith(r))) :]
                    k = "via" if rel in REFLECTION_HELPERS or rel.startswith("ctypes" + os.sep) else "lib"
                else:
                    k = "other"  # PyTorch, site-packages, the kit's given code
            kinds[filename] = k
        return k

    def responsible(frame, anywhere: bool, through_stdlib: bool = False):
        """The student frame to blame, or None: looking through the standard library's reflection helpers (and,
        with `through_stdlib`, through all of the standard library), or through everything but the grader with
        `anywhere`."""
        while frame is not None:
            k = kind(frame.f_code.co_filename)
            if k == "student":
                return frame
            if k == "grader" or (not anywhere and (k == "other" or (k == "lib" and not through_stdlib))):
                return None
            frame = frame.f_back
        return None

    def hook(event: str, args: tuple) -> None:
        if not running[0]:
            return
        if event == "compile" and not getattr(busy, "on", False):
            caller = getframe(1)
            name = os.path.basename(caller.f_code.co_filename) if caller is not None else ""
            if name in EVALUATORS and kind(caller.f_code.co_filename) == "lib":
                busy.on = True
                try:
                    # typing called by the student through the standard library (functools.singledispatch), not
                    # by PyTorch evaluating its own annotations
                    frame = responsible(caller, anywhere=False, through_stdlib=True)
                    if frame is not None and len(refusals) < MAX_REFUSALS:
                        refusals.append(
                            {
                                "event": event,
                                "what": EVALUATORS[name],
                                "file": frame.f_code.co_filename,
                                "line": frame.f_lineno,
                                "function": frame.f_code.co_qualname,
                            }
                        )
                finally:
                    busy.on = False
                if frame is not None:
                    raise RuntimeError(f"graded code may not do this: it {EVALUATORS[name]}")
            return
        what = DIRECT.get(event, False) if event in DIRECT else ANYWHERE.get(event, False)
        if what is False or getattr(busy, "on", False):
            return
        busy.on = True
        try:
            if event == "object.__getattr__":
                what = FRAME_ATTRS.get(args[1]) if len(args) > 1 and isinstance(args[1], str) else None
            elif event in ("object.__setattr__", "object.__delattr__"):
                what = _foreign(args, kind)
            if not what:
                return
            frame = responsible(getframe(1), anywhere=event in ANYWHERE)
            if frame is None:
                return
            code = frame.f_code
            if len(refusals) < MAX_REFUSALS:
                refusals.append(
                    {
                        "event": event,
                        "what": what,
                        "file": code.co_filename,
                        "line": frame.f_lineno,
                        "function": code.co_qualname,
                    }
                )
        finally:
            busy.on = False
        raise RuntimeError(f"graded code may not do this: it {what}")

    sys.addaudithook(hook)
    return running, refusals


PROTECTED_MODULES = ("grader", "torch", "builtins", "sys", "dlcv")


def _foreign(args: tuple, kind) -> str | None:
    """What writing or deleting `args[1]` on `args[0]` does, when the target is the grader's, PyTorch's, the
    interpreter's or the kit's given code (a class or function of the student's own, or one the standard library
    just made for them, such as a namedtuple, is theirs to change)."""
    if len(args) < 2:
        return None
    target, name = args[0], args[1]
    if isinstance(target, type):
        module = getattr(target, "__module__", "") or ""
        mod = sys.modules.get(module)
        file = getattr(mod, "__file__", None) or ""
        if module.split(".")[0] in PROTECTED_MODULES or (file and kind(file) in ("grader", "other")):
            return f"changes {name} of {getattr(target, '__qualname__', 'a class')}, a class that is not its own"
        return None
    code = getattr(target, "__code__", None) if callable(target) else None
    if code is not None and kind(code.co_filename) in ("grader", "other"):
        return f"changes {name} of a function that is not its own"
    return None


ALWAYS_ALLOWED = ("__future__",)


def limit_imports(allowed: list[str], student_files: set[str], refusals: list) -> None:
    """Replace the built-in `__import__` so that an import statement of a student file gets, for a module outside
    `allowed` (top-level names: the manifest's list and the kit's packages), a stand-in that refuses to be used:
    an import that is never used costs nothing (the static scan warns of it), a use (a call through it) is
    refused and recorded like the audit hook's refusals. Relative imports (the kit's own modules) pass."""
    import builtins

    allowed_top = set(allowed) | set(ALWAYS_ALLOWED)
    student = {os.path.realpath(f) for f in student_files}
    real_import = builtins.__import__
    getframe = sys._getframe

    def refused_use(module: str) -> None:
        frame = getframe(2)
        if len(refusals) < MAX_REFUSALS:
            refusals.append(
                {
                    "event": "import",
                    "what": f"uses {module}, a module graded code may not use in this assignment",
                    "file": frame.f_code.co_filename,
                    "line": frame.f_lineno,
                    "function": frame.f_code.co_qualname,
                }
            )
        raise ImportError(f"graded code may not use {module} in this assignment")

    class Refused:
        """What a refused import binds: every attribute is another stand-in, and calling one is refused."""

        __slots__ = ("_name",)

        def __init__(self, name: str) -> None:
            object.__setattr__(self, "_name", name)

        def __getattr__(self, attr: str):
            if attr.startswith("__") and attr.endswith("__"):
                raise AttributeError(attr)
            return Refused(f"{object.__getattribute__(self, '_name')}.{attr}")

        def __call__(self, *args, **kwargs):
            refused_use(object.__getattribute__(self, "_name").partition(".")[0])

        def __repr__(self) -> str:
            return f"<{object.__getattribute__(self, '_name')}: not allowed in graded code>"

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and isinstance(globals, dict):
            file = globals.get("__file__")
            top = str(name).partition(".")[0]
            if top not in allowed_top and isinstance(file, str) and os.path.realpath(file) in student:
                if fromlist:
                    return Refused(str(name))
                return Refused(top)
        return real_import(name, globals, locals, fromlist, level)

    builtins.__import__ = guarded_import


class Integrity:
    """What the guard's verdict depends on, as it was before student code ran; `changed()` names what is not."""

    def __init__(self, modules: list, classes: list, guard, library: list = ()) -> None:
        for m in [*modules, *library]:
            if not isinstance(m, type):
                vars(m).setdefault("__warningregistry__", {})  # what `warnings` writes into a module it blames
        self.modules = [(m, dict(vars(m))) for m in modules]
        # PyTorch's own Python (torch.nn.functional's helpers, Tensor's methods): an entry changed or removed;
        # PyTorch adds entries of its own as it loads lazily, so an added one is not a change
        self.library = [(m, dict(_TYPE_DICT(m) if isinstance(m, type) else vars(m))) for m in library]
        self.classes = []
        for cls in classes:
            for c in cls.__mro__:
                if c is not object and all(c is not k for k, _ in self.classes):
                    self.classes.append((c, dict(_TYPE_DICT(c))))
        self.guard = guard
        self.guard_attrs = {k: v for k, v in vars(guard).items() if k in GUARD_TABLES}
        self.guard_sizes = {k: len(v) for k, v in self.guard_attrs.items() if hasattr(v, "__len__")}
        import builtins

        self.builtin_import = builtins.__import__

    def changed(self) -> list[str]:
        out = []
        for m, snap in self.modules:
            now = vars(m)
            if len(now) != len(snap) or any(
                now.get(k, _GONE) is not v for k, v in snap.items() if k != "__warningregistry__"
            ):
                out.append(f"the grader's module {m.__name__}")
        for m, snap in self.library:
            now = vars(m) if not isinstance(m, type) else _TYPE_DICT(m)
            changed = [k for k, v in snap.items() if now.get(k, _GONE) is not v and k != "__warningregistry__"]
            if changed:
                out.append(f"PyTorch's {getattr(m, '__name__', m)} ({', '.join(changed[:3])})")
        for c, snap in self.classes:
            now = _TYPE_DICT(c)
            if len(now) != len(snap) or any(now.get(k, _GONE) is not v for k, v in snap.items()):
                out.append(f"the class {c.__module__}.{c.__qualname__}")
        g = vars(self.guard)
        for k, v in self.guard_attrs.items():
            if g.get(k, _GONE) is not v or (k in self.guard_sizes and len(v) != self.guard_sizes[k]):
                out.append(f"the guard's {k}")
        import builtins

        if builtins.__import__ is not self.builtin_import:
            out.append("the built-in __import__")
        return out


_GONE = object()
_TYPE_DICT = type.__dict__["__dict__"].__get__  # a class's own namespace, past any metaclass property
# the guard's tables set up before student code, which no call changes
GUARD_TABLES = (
    "root",
    "student_files",
    "exempt_names",
    "guarded",
    "_lib_roots",
    "_guard_file",
    "_grader_dir",
    "_op_table",
    "_same",
    "_obj_canon",
    "_module_codes",
    "_pkg_dirs",
    "exempt_codes",
    "fmode",
    "dmode",
)
