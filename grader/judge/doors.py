"""Code the grader cannot read, and doors into the grader, found in a graded file's source (parsing never runs
it): exec and eval, names built from strings, pickle, frames, the interpreter's module table, the grader's own
modules. `dynamic_uses` lists them; `describe_dynamic` says why each one holds the file's functions back.
"""

from __future__ import annotations

import ast
import re

from grader.judge.staticscan import Use, dotted_name, find_function, import_aliases

# ---- code the grader cannot read, and doors into the grader -----------------------------------------------------
# A student's code runs in the same Python process as the worker's forbidden-call guard (grader.sandbox.guard), which
# cannot defend itself: code that reaches the grader's modules, the interpreter's module table, frames, the garbage
# collector or C can switch it off for every function graded after it. Calls built from strings (exec, getattr
# with a computed name, pickle) would do the same out of this scan's sight. So each of these is refused anywhere
# in a graded file -- a helper passed by reference, a decorator, a default value or a dunder method runs as well
# as the graded function does -- and one use holds back every function of the file.

_DYNAMIC_BUILTINS = {"exec": "exec()", "eval": "eval()", "compile": "compile()", "__import__": "__import__()"}
_INTERNALS = ("torch._C", "torch.utils._python_dispatch", "torch.overrides")

# modules a graded file may not import or use (by the name's first part)
# modules that unpickle (run code the grader cannot read)
_PICKLE_MODULES = ("pickle", "_pickle", "cPickle", "dill", "cloudpickle", "marshal", "copyreg", "shelve")
_DOOR_MODULES = {
    "grader",
    "gc",
    "inspect",
    "ctypes",
    "_ctypes",
    "cffi",
    "builtins",
    "__main__",
    *_PICKLE_MODULES,
    "pkgutil",
    "pydoc",
    "runpy",
    "code",
    "codeop",
    "pdb",
    "bdb",
    "trace",
    "cProfile",
    "profile",
    "unittest",
    "imp",
    "_imp",
    "zipimport",
    "_frozen_importlib",
    "_frozen_importlib_external",
    "timeit",
    "doctest",
    "_operator",  # attrgetter/methodcaller with names built at run time
    "dis",  # reads any function's bytecode (the course's oracles included)
    "torch.jit",  # TorchScript compiled from strings: unreadable here, unseen by the guard's modes
}
# dotted names a graded file may not use, with everything under them
_DOOR_NAMES = (
    "sys.modules",
    "sys._getframe",
    "sys._current_frames",
    "sys.settrace",
    "sys.setprofile",
    "sys.addaudithook",
    "sys.meta_path",
    "sys.path_hooks",
    "sys.path_importer_cache",
    "sys.path",
    "sys.monitoring",
    "threading.settrace",
    "threading.setprofile",
    "threading.settrace_all_threads",
    "threading.setprofile_all_threads",
    "logging.config",
    "torch.hub",
    "torch.jit",
    "torch.package",
    "torch.serialization",
    "torch.utils.cpp_extension",
    "torch.ops.load_library",
    "torch.classes.load_library",
    "torch.library",
    "numpy.ctypeslib",
    "typing.get_type_hints",
    "typing.ForwardRef",
    "typing._eval_type",
)  # these evaluate strings
# attribute names refused on anything (`obj.__globals__`, `frame.f_back`, `os.sys`, `getattr(x, "__dict__")`)
_DOOR_ATTRS = {
    "get_field",  # string.Formatter().get_field("0.__globals__", ...): attribute access from a string
    "__globals__",
    "__code__",
    "__closure__",
    "__dict__",
    "__subclasses__",
    "__bases__",
    "__base__",
    "__mro__",
    "__builtins__",
    "__self__",
    "__func__",
    "__wrapped__",
    "__defaults__",
    "__kwdefaults__",
    "__traceback__",
    "__getattribute__",
    "__getattr__",
    "__setattr__",
    "__delattr__",
    "__import__",
    "__loader__",
    "__spec__",
    "__annotations__",
    "f_globals",
    "f_locals",
    "f_back",
    "f_builtins",
    "f_code",
    "f_trace",
    "tb_frame",
    "tb_next",
    "gi_frame",
    "gi_code",
    "cr_frame",
    "cr_code",
    "ag_frame",
    "ag_code",
    "_getframe",
    "_current_frames",
    "settrace",
    "setprofile",
    "addaudithook",
    "meta_path",
    "path_hooks",
    "path_importer_cache",
    "settrace_all_threads",
    "setprofile_all_threads",
    "sys",
    "_sys",  # threading._sys, collections._sys: the standard library's modules keep sys under private names
    "_os",
    "_thread",
    "gc",
    "inspect",
    "ctypes",
    "ctypeslib",
    "builtins",
    "importlib",
    "pickle",
    "marshal",
    "Unpickler",
    "ForkingPickler",
    "load_library",
    "cpp_extension",
    "_C",
    "_python_dispatch",
    "overrides",
    "library",
    "serialization",
    # a tensor subclass's own handlers run while PyTorch has taken the guard's modes off their stacks
    "__torch_function__",
    "__torch_dispatch__",
    "_peer",  # a stand-in's link to the worker's protocol (grader.sandbox.proxy)
    # a tensor's storage outlives it in C++: what is hung on its Python object runs (finalisers) inside PyTorch's
    # kernels, where the guard's modes are off their stacks
    "untyped_storage",
    "storage",
    "_typed_storage",
}
# builtins that hand out namespaces (`globals()["__builtins__"]`); `locals()` at module level is `globals()`
_NAMESPACE_BUILTINS = {"globals", "vars", "locals", "__builtins__", "__loader__", "__spec__"}
_ATTR_BUILTINS = {"getattr", "setattr", "delattr", "hasattr"}
_ATTR_GETTERS = {"operator.attrgetter", "operator.methodcaller"}
_TORCH_LOAD = {"torch.load", "torch.serialization.load"}
# names of the doors inside strings: `"{0.__globals__}".format(f)`, `attrgetter("f_back")`
_DOOR_WORDS = re.compile(
    r"(?<![A-Za-z0-9_])("
    + "|".join(
        sorted(
            (re.escape(a) for a in _DOOR_ATTRS if a.startswith(("_", "f_", "tb_", "gi_", "cr_", "ag_")) and a != "_C"),
            key=len,
            reverse=True,
        )
    )
    + r")(?![A-Za-z0-9_])"
)

_INTERNALS_WHY = (
    "graded files may not reach into the grader or the interpreter's internals (sys.modules, gc, "
    "inspect, frames, __globals__, ...). Write the computation directly"
)
_WHY = {
    "exec()": "the grader reads your code to check the rules, so write the calls out directly",
    "eval()": "the grader reads your code to check the rules, so write the expression out directly",
    "compile()": "the grader reads your code to check the rules, so write the code out directly",
    "__import__()": "import modules with an import statement at the top of the file",
    "importlib": "import modules with an import statement at the top of the file",
    "torch._C": "it is PyTorch's internal binding layer; use the public torch functions instead",
    "torch.utils._python_dispatch": "it controls the modes the grader uses to check the rules",
    "torch.overrides": "it controls the modes the grader uses to check the rules",
    "import grader": "the grader is not part of your code: graded files may not import it or reach into it",
    "torch.library": "it changes how PyTorch runs its operators, which the grader watches to check the rules",
    "os.environ": "changing the environment can switch PyTorch's loaders to running code the grader cannot read",
    "a match/case class pattern": "it reads attributes named by strings the grader cannot follow; read them "
    "as obj.name",
    "__torch_function__": "a tensor subclass's handler runs where the grader cannot watch the rules; use plain tensors",
    "__torch_dispatch__": "a tensor subclass's handler runs where the grader cannot watch the rules; use plain tensors",
    # kinds of names (see _kind)
    "computed": "the grader reads your code to check the rules, so names must be written out: obj.name, or "
    'getattr(obj, "name") with the name as a string literal',
    "pickle": "unpickling runs code the grader cannot read; load tensors with torch.load as the kit does",
    "unreadable": "it runs code the grader cannot read; write the computation in this file",
    "private": "it is one of PyTorch's private internals; use the public torch functions instead",
}
_PICKLE = {*_PICKLE_MODULES, "Unpickler", "ForkingPickler"}
_UNREADABLE = {
    "runpy",
    "code",
    "codeop",
    "timeit",
    "doctest",
    "typing.get_type_hints",
    "typing.ForwardRef",
    "typing._eval_type",
    "torch.hub",
    "torch.package",
    "torch.serialization",
    "torch.utils.cpp_extension",
    "torch.ops.load_library",
    "torch.classes.load_library",
    "numpy.ctypeslib",
    "cffi",
}


def _first(full: str, names) -> str | None:
    return next((n for n in names if full == n or full.startswith(n + ".")), None)


def _module_name(full: str) -> str | None:
    """The door a dotted module-level name (`sys.modules.get`, `gc.collect`, `torch._dynamo.x`) opens, if any."""
    top = full.split(".")[0]
    if top == "grader":
        return "import grader"
    if top in _DOOR_MODULES or top == "importlib":
        return top
    if full.startswith(("os.putenv", "os.unsetenv")):
        return "os.environ"
    hit = _first(full, _INTERNALS) or _first(full, _DOOR_NAMES)
    if hit:
        return hit
    parts = full.split(".")
    if top == "torch":
        for i, p in enumerate(parts[1:], 1):
            if p.startswith("_") and not (p.startswith("__") and p.endswith("__")):
                return ".".join(parts[: i + 1])
    return None


def _kind(name: str) -> str:
    if name in _WHY:
        return name
    if name in _PICKLE or name.startswith(("torch.load", "pickle_module", "allow_pickle")):
        return "pickle"
    if name in _UNREADABLE:
        return "unreadable"
    if name.startswith(("getattr", "setattr", "delattr", "hasattr", "operator.", "str.format", "module ")):
        return "computed"
    if name.startswith("torch._"):
        return "private"
    return "internals"


def _why(name: str) -> str:
    return _WHY.get(_kind(name), _INTERNALS_WHY)


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _door_uses(tree: ast.Module) -> list[Use]:
    """Every door in the file: the exec family, imports and uses of the grader and of the interpreter's internals,
    names computed at run time, unpickling."""
    aliases = import_aliases(tree)
    modules = set()  # names bound by `import x` / `import x.y as z`: modules
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name.split(".")[0] for a in node.names}
    parent: dict[int, ast.AST] = {}
    for p in ast.walk(tree):
        for c in ast.iter_child_nodes(p):
            parent[id(c)] = p
    uses: list[Use] = []

    def add(name: str, node: ast.AST, text: str | None = None) -> None:
        uses.append(Use(name, node.lineno, text or name))

    def resolved(node: ast.AST) -> str | None:
        parts = dotted_name(node)
        if parts and parts[0] in aliases:
            return ".".join([aliases[parts[0]], *parts[1:]])
        return None

    def called(node: ast.AST) -> bool:
        up = parent.get(id(node))
        return isinstance(up, ast.Call) and up.func is node

    def reads_environ(node: ast.AST) -> bool:
        """`os.environ[k]`, `os.environ.get(k)`, `k in os.environ`: reading, which is fine."""
        up = parent.get(id(node))
        return (
            (isinstance(up, ast.Subscript) and up.value is node and isinstance(up.ctx, ast.Load))
            or (isinstance(up, ast.Compare) and node in up.comparators)
            or (isinstance(up, ast.Attribute) and up.attr in ("get", "keys", "items", "values", "copy") and called(up))
        )

    def attribute(node: ast.AST, receiver: ast.AST, attr: str, text: str) -> None:
        """`receiver.attr`, written as an attribute or as getattr(receiver, "attr")."""
        base = resolved(receiver)
        if attr in _DYNAMIC_BUILTINS and (base == "builtins" or dotted_name(receiver) == ["__builtins__"]):
            add(_DYNAMIC_BUILTINS[attr], node, text)
        door = _module_name(f"{base}.{attr}") if base is not None else None
        if door:
            add(door, node, text)
        elif attr in _DOOR_ATTRS:
            add(attr, node, text)
        elif attr in ("format", "format_map", "vformat") and not _is_str(receiver):
            add("str.format with a format string built at run time", node, text)
        elif attr in ("putenv", "unsetenv"):
            add("os.environ", node, text)

    for node in ast.walk(tree):
        up = parent.get(id(node))
        if isinstance(node, ast.MatchClass) and node.kwd_attrs:
            # `case object(_C=c)` reads attributes named by plain strings, which no rule here would see
            add("a match/case class pattern", node, f"case ...({', '.join(a + '=...' for a in node.kwd_attrs)})")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in (
            "__torch_function__",
            "__torch_dispatch__",
        ):
            add(node.name, node, f"def {node.name}")
        if isinstance(node, ast.Import):
            for a in node.names:
                door = _module_name(a.name)
                if door:
                    add(door, node, f"imports {a.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.level or not node.module:  # relative: the student's own package
                continue
            for a in node.names:
                full = f"{node.module}.{a.name}"
                door = _module_name(node.module) or _module_name(full) or (full if a.name in _DOOR_ATTRS else None)
                if door:
                    add(door, node, f"imports {full}")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            builtin = node.id not in aliases
            if builtin and node.id in _DYNAMIC_BUILTINS:
                add(_DYNAMIC_BUILTINS[node.id], node)
            elif builtin and node.id in _NAMESPACE_BUILTINS:
                add(f"{node.id}()" if node.id in ("globals", "vars", "locals") else node.id, node)
            elif builtin and node.id in _ATTR_BUILTINS:
                if not called(node):
                    add(f"{node.id} passed around as a value", node, node.id)
                elif (
                    len(up.args) < 2
                    or not _is_str(up.args[1])
                    or up.keywords
                    or any(isinstance(a, ast.Starred) for a in up.args)
                ):
                    add(f"{node.id}() with a computed name", node)
                else:
                    attribute(node, up.args[0], up.args[1].value, f"{node.id}(…, {up.args[1].value!r})")
            elif node.id in modules:
                # a module used as a value (`m = sys`, `f(torch)`) takes what is done with it out of the scan's sight
                getter = (
                    isinstance(up, ast.Call)
                    and isinstance(up.func, ast.Name)
                    and up.func.id in _ATTR_BUILTINS
                    and up.args
                    and up.args[0] is node
                )
                if not (isinstance(up, ast.Attribute) and up.value is node) and not getter:
                    add(f"module {aliases[node.id]} passed around as a value", node, node.id)
            if node.id in aliases:
                door = _module_name(aliases[node.id])
                if door:
                    add(door, node, node.id)
                if aliases[node.id] in ("os.environ", "os.environb") and not reads_environ(node):
                    add("os.environ", node, node.id)
        elif isinstance(node, ast.Attribute):
            text = ".".join(dotted_name(node) or ["…", node.attr])
            attribute(node, node.value, node.attr, text)
            if node.attr in ("environ", "environb") and not reads_environ(node):
                add("os.environ", node, text)
        elif isinstance(node, ast.Call):
            full = resolved(node.func)
            if full in _ATTR_GETTERS:
                for a in node.args:
                    if not _is_str(a):
                        add(f"{full}() with a computed name", node)
                    elif any(p in _DOOR_ATTRS for p in a.value.split(".")):
                        add(next(p for p in a.value.split(".") if p in _DOOR_ATTRS), node, f"{full}({a.value!r})")
            for k in node.keywords:
                if k.arg == "pickle_module" or (
                    k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                ):
                    add(f"{k.arg}=", node)
                elif k.arg == "weights_only" and not (isinstance(k.value, ast.Constant) and k.value.value is True):
                    add("torch.load(weights_only=False)", node)
                elif k.arg is None and full in _TORCH_LOAD:
                    add("torch.load(**kwargs)", node)
        elif _is_str(node) and not isinstance(up, ast.Expr):  # a docstring is never used
            m = _DOOR_WORDS.search(node.value)
            if m:
                add(m.group(1), node, f"the string {m.group(1)!r}")
        if isinstance(node, (ast.Name, ast.Attribute)) and resolved(node) in _TORCH_LOAD and not called(node):
            add("torch.load passed around as a value", node, ".".join(dotted_name(node) or []))
    return uses


def dynamic_uses(source: str, qualname: str) -> list[Use]:
    """What in `source` opens a door the grader cannot watch: exec, eval, compile, __import__, importlib,
    PyTorch's internals (torch._C, ...), the grader's and the interpreter's internals (sys.modules, gc, inspect,
    frames, __globals__, ...), getattr and friends with a computed name, unpickling. Anywhere in the file: one use
    counts against every function of it (`qualname` only has to be one of them). One per name and line, by line."""
    tree = ast.parse(source)
    if find_function(tree, qualname) is None:
        return []
    return file_doors(source, tree)


def file_doors(source: str, tree: ast.Module | None = None) -> list[Use]:
    """Every door in `source` (see `dynamic_uses`, which counts them against each function of the file), one per
    name and line, by line. A file's doors do not depend on the function: a judge reading several functions of
    one file reads them once (grader.judge.runner.Run)."""
    seen, out = set(), []
    for u in sorted(_door_uses(tree or ast.parse(source)), key=lambda u: (u.line, u.name)):
        if (u.name, u.line) not in seen:
            seen.add((u.name, u.line))
            out.append(u)
    return out


def describe_dynamic(function: str, uses: list[Use], file: str | None = None) -> str:
    """Feedback for `dynamic_uses`: where, what, why, and what to write instead. `file` names the graded file."""
    groups: dict[str, list[Use]] = {}
    for u in uses:
        groups.setdefault(_why(u.name), []).append(u)
    said = []
    for why, group in groups.items():
        shown = []
        for u in group[:4]:
            what = u.text
            if u.text != u.name and "." in u.name and u.name.split(".")[-1] == u.text.split(".")[-1]:
                what += f" ({u.name})"  # through an alias: `s.modules (sys.modules)`
            elif u.text != u.name and _kind(u.name) == "computed" and "(…" in u.text:
                what = u.name
            shown.append(f"line {u.line} {what if what.startswith('imports ') else 'uses ' + what}")
        more = f" and {len(group) - 4} more" if len(group) > 4 else ""
        said.append(f"{file + ' ' if file else ''}{', '.join(shown)}{more}: {why}.")
    said.append(
        f"No function of {file or 'this file'} ({function} included) can be graded until "
        f"{'they are' if len(uses) > 1 else 'it is'} gone."
    )
    return " ".join(said)
