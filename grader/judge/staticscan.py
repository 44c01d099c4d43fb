"""Static scan of a submitted file for calls a function may not make.

The judge parses the student's source (parsing never runs it), resolves the names a function uses through
the file's imports (`import torch.nn.functional as F` makes `F.conv2d` mean `torch.nn.functional.conv2d`)
and reports each use of a forbidden name with its line. Names under `torch.Tensor.` stand for methods
(`x.norm()`), matched by attribute name on anything that is not a module.
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Use:
    name: str  # the forbidden name matched, e.g. "torch.cdist"
    line: int
    text: str  # how it is written in the file, e.g. "torch.cdist" or "x.norm"


def _aliases(tree: ast.Module) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    names[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


def find_function(tree: ast.Module, qualname: str) -> ast.AST | None:
    """`name` for a module-level function, `Class.method` for a method, `Class` for a whole class."""
    scope: list[ast.stmt] = tree.body
    node = None
    for part in qualname.split("."):
        # the LAST definition of a name is the one Python keeps
        node = next(
            (
                n
                for n in reversed(scope)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == part
            ),
            None,
        )
        if node is None:
            return None
        scope = node.body
    return node


def scan(source: str, qualname: str, forbidden: list[str], filename: str = "<submission>") -> list[Use]:
    """Uses of `forbidden` names inside function `qualname` of `source`. Raises SyntaxError."""
    tree = ast.parse(source, filename=filename)
    fn = find_function(tree, qualname)
    if fn is None or not forbidden:
        return []
    aliases = _aliases(tree)
    methods = {f.rsplit(".", 1)[1] for f in forbidden if f.startswith("torch.Tensor.")}
    modules = set(aliases)
    # names of the file's own classes and functions: `Linear.backward(dout, cache)` is a layer, not a tensor
    local = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))}
    # `layer.backward(dout, cache)`: a layer's backward takes two arguments; a tensor's takes at most a gradient
    # (the worker's guard still sees a real tensor.backward however it is written)
    layer_calls = {
        id(n.func)
        for n in ast.walk(fn)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "backward"
        and len(n.args) >= 2
    }
    uses: list[Use] = []
    seen: set[tuple[str, int]] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.keyword) and node.arg in methods:  # e.g. requires_grad=True
            hit = (f"torch.Tensor.{node.arg}", node.value.lineno)
            if hit not in seen:
                seen.add(hit)
                uses.append(Use(hit[0], hit[1], f"{node.arg}="))
            continue
        if not isinstance(node, (ast.Attribute, ast.Name)):
            continue
        parts = _dotted(node)
        if id(node) in layer_calls:
            continue
        if parts is None:
            if isinstance(node, ast.Attribute) and node.attr in methods:
                hit = (f"torch.Tensor.{node.attr}", node.lineno)
                if hit not in seen:
                    seen.add(hit)
                    uses.append(Use(hit[0], node.lineno, f"….{node.attr}"))
            continue
        text = ".".join(parts)
        if parts[0] in modules:
            full = ".".join([aliases[parts[0]], *parts[1:]])
            for f in forbidden:
                if full == f or full.startswith(f + "."):
                    hit = (f, node.lineno)
                    if hit not in seen:
                        seen.add(hit)
                        uses.append(Use(f, node.lineno, text))
                    break  # the first forbidden name that covers it is enough
        elif isinstance(node, ast.Attribute) and node.attr in methods and not (len(parts) == 2 and parts[0] in local):
            hit = (f"torch.Tensor.{node.attr}", node.lineno)
            if hit not in seen:
                seen.add(hit)
                uses.append(Use(hit[0], node.lineno, text))
    return sorted(uses, key=lambda u: (u.line, u.name))


LOOP_NODES = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _parent_classes(tree: ast.Module) -> dict[int, ast.ClassDef]:
    """id(method node) -> the top-level class it is defined in."""
    out = {}
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef):
            for n in cls.body:
                if isinstance(n, _DEFS):
                    out[id(n)] = cls
    return out


def _method(cls: ast.ClassDef, name: str) -> ast.AST | None:
    return next((n for n in reversed(cls.body) if isinstance(n, _DEFS) and n.name == name), None)


def _callee(
    call: ast.Call, here: ast.ClassDef | None, top: dict
) -> tuple[str, ast.AST, ast.ClassDef | None, int] | None:
    """The file's own function or method a call runs, by name: (qualified name, node, its class, how many
    parameters the call fills implicitly: 1 for `self`/`cls`, 0 otherwise), or None."""
    f = call.func
    target, qual, cls = None, "", None
    if isinstance(f, ast.Name) and isinstance(top.get(f.id), (*_DEFS, ast.ClassDef)):
        target, qual = top[f.id], f.id
        if isinstance(target, ast.ClassDef):  # constructing a class of the file runs its __init__
            cls, target, qual = target, _method(target, "__init__"), f"{f.id}.__init__"
    elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
        if f.value.id in ("self", "cls") and here is not None:
            cls, target, qual = here, _method(here, f.attr), f"{here.name}.{f.attr}"
        elif isinstance(top.get(f.value.id), ast.ClassDef):
            cls = top[f.value.id]
            target, qual = _method(cls, f.attr), f"{f.value.id}.{f.attr}"
    if target is None:
        return None
    decorators = {d.id for d in getattr(target, "decorator_list", []) if isinstance(d, ast.Name)}
    bound = (
        cls is not None
        and "staticmethod" not in decorators
        and (
            "classmethod" in decorators
            or (qual.endswith(".__init__") and isinstance(f, ast.Name))
            or (isinstance(f, ast.Attribute) and f.value.id in ("self", "cls"))
        )
    )
    return qual, target, cls, int(bound)


def _truth(test: ast.AST, facts: dict[str, bool]) -> bool | None:
    """The value of an `if` test written in terms of the bool parameters in `facts` (`flag`, `not flag`,
    `flag is True`, `flag == False`, `bool(flag)`, `a and b`, ...), or None when it does not decide."""
    if isinstance(test, ast.Name):
        return facts.get(test.id)
    if isinstance(test, ast.Constant) and isinstance(test.value, bool):
        return test.value
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        v = _truth(test.operand, facts)
        return None if v is None else not v
    if (
        isinstance(test, ast.Call)
        and isinstance(test.func, ast.Name)
        and test.func.id == "bool"
        and len(test.args) == 1
        and not test.keywords
    ):
        return _truth(test.args[0], facts)
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, right = test.left, test.comparators[0]
        if isinstance(left, ast.Constant):
            left, right = right, left
        if isinstance(right, ast.Constant) and isinstance(right.value, bool):
            v = _truth(left, facts)
            if v is None:
                return None
            if isinstance(test.ops[0], (ast.Is, ast.Eq)):
                return v == right.value
            if isinstance(test.ops[0], (ast.IsNot, ast.NotEq)):
                return v != right.value
        return None
    if isinstance(test, ast.BoolOp):
        values = [_truth(v, facts) for v in test.values]
        if isinstance(test.op, ast.And):
            return False if False in values else (True if all(v is True for v in values) else None)
        return True if True in values else (False if all(v is False for v in values) else None)
    return None


_ENDS = (ast.Return, ast.Raise)


class _Specialise(ast.NodeTransformer):
    """A function as it runs with some bool parameters fixed: each `if` (statement or expression) that tests
    them keeps only the branch taken, and the statements after a `return` or `raise` that is now certain
    are dropped. `undecided` records whether some test still reads one of them."""

    def __init__(self, facts: dict[str, bool]) -> None:
        self.facts, self.undecided = facts, False

    def _note(self, test: ast.AST) -> None:
        if any(isinstance(n, ast.Name) and n.id in self.facts for n in ast.walk(test)):
            self.undecided = True

    def visit_If(self, node: ast.If):
        v = _truth(node.test, self.facts)
        if v is None:
            self._note(node.test)
            return self.generic_visit(node)
        out = []
        for stmt in node.body if v else node.orelse:
            r = self.visit(stmt)
            out.extend(r if isinstance(r, list) else [] if r is None else [r])
        return out

    def visit_IfExp(self, node: ast.IfExp):
        v = _truth(node.test, self.facts)
        if v is None:
            self._note(node.test)
            return self.generic_visit(node)
        return self.visit(node.body if v else node.orelse)

    def visit_While(self, node: ast.While):
        self._note(node.test)
        return self.generic_visit(node)

    def generic_visit(self, node: ast.AST):
        node = super().generic_visit(node)
        for name in ("body", "orelse", "finalbody"):
            stmts = getattr(node, name, None)
            if isinstance(stmts, list) and stmts and isinstance(stmts[0], ast.stmt):
                end = next((i for i, s in enumerate(stmts) if isinstance(s, _ENDS)), None)
                if end is not None:
                    setattr(node, name, stmts[: end + 1])
        return node


def _specialise(fn: ast.AST, facts: dict[str, bool]) -> tuple[ast.AST, bool]:
    """(fn with `facts` applied, whether some test of a fact stayed undecided); fn itself when facts is empty."""
    if not facts:
        return fn, False
    s = _Specialise(facts)
    return s.visit(copy.deepcopy(fn)), s.undecided


def _passed(call: ast.Call, target: ast.AST, implicit: int, facts: dict[str, bool]) -> dict[str, bool]:
    """The bool values a call hands to `target`'s parameters: True/False literals, and the known facts passed
    on by name (`helper(x, use_loop)`, `helper(x, loop=not use_loop)`)."""

    def value(arg: ast.AST) -> bool | None:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, bool):
            return arg.value
        return _truth(arg, facts) if isinstance(arg, (ast.Name, ast.UnaryOp)) else None

    if isinstance(target, ast.ClassDef):
        return {}
    params = [a.arg for a in [*target.args.posonlyargs, *target.args.args]][implicit:]
    out = {}
    for name, arg in zip(params, call.args):
        if isinstance(arg, ast.Starred):
            break
        v = value(arg)
        if v is not None:
            out[name] = v
    names = {a.arg for a in [*target.args.posonlyargs, *target.args.args, *target.args.kwonlyargs]}
    for k in call.keywords:
        v = value(k.value) if k.arg in names else None
        if v is not None:
            out[k.arg] = v
    return out


def _reached(
    tree: ast.Module, fn: ast.AST, facts: dict[str, bool] | None = None
) -> tuple[ast.AST, list[tuple[str, ast.AST]], bool]:
    """fn as it runs with `facts` (see _Specialise), the file's own functions and methods it calls, directly or
    through each other, each as it runs with the bool values the call hands it, and whether some test of a
    fact stayed undecided along the way."""
    top = {n.name: n for n in tree.body if isinstance(n, (*_DEFS, ast.ClassDef))}  # the last definition wins
    owner = _parent_classes(tree)
    start, undecided = _specialise(fn, facts or {})
    here = fn if isinstance(fn, ast.ClassDef) else owner.get(id(fn))
    seen = {(id(fn), frozenset((facts or {}).items()))}
    out: list[tuple[str, ast.AST]] = []
    todo = [(start, here, facts or {})]
    while todo:
        node, here, known = todo.pop()
        for call in ast.walk(node):
            if not isinstance(call, ast.Call):
                continue
            hit = _callee(call, here, top)
            if hit is None:
                continue
            qual, target, cls, implicit = hit
            given = _passed(call, target, implicit, known)
            key = (id(target), frozenset(given.items()))
            if key in seen:
                continue
            seen.add(key)
            body, unsure = _specialise(target, given)
            undecided |= unsure and bool(facts)
            out.append((qual, body))
            todo.append((body, cls if cls is not None else owner.get(id(target)), given))
    return start, out, undecided


def helpers(tree: ast.Module, fn: ast.AST) -> list[tuple[str, ast.AST]]:
    """The file's own functions and methods that `fn` calls, directly or through each other, by name:
    `helper(...)`, `self.helper(...)`, `cls.helper(...)`, `Class.helper(...)`. Returns (qualified name, node)
    pairs, `fn` itself excluded. A helper called with a True/False literal (`helper(x, vectorised=True)`) is
    read as it runs with that value: only the branches of `if vectorised:` it takes."""
    return _reached(tree, fn)[1]


def _sites(qualname: str, fn: ast.AST, reached: list[tuple[str, ast.AST]]) -> list[tuple[int, str]]:
    sites = {(n.lineno, qualname) for n in ast.walk(fn) if isinstance(n, LOOP_NODES)}
    own = {line for line, _ in sites}
    for name, node in reached:
        sites |= {(n.lineno, name) for n in ast.walk(node) if isinstance(n, LOOP_NODES) and n.lineno not in own}
    return sorted(sites)


def loop_sites(source: str, qualname: str) -> list[tuple[int, str]]:
    """(line, function) of each loop (for, while, comprehension) that running `qualname` may execute: its
    own, and those of the file's functions it calls (see `helpers`), sorted by line."""
    tree = ast.parse(source)
    fn = find_function(tree, qualname)
    if fn is None:
        return []
    start, reached, _ = _reached(tree, fn)
    return _sites(qualname, start, reached)


def loop_sites_when(source: str, qualname: str, **facts: bool) -> list[tuple[int, str]] | None:
    """`loop_sites` of `qualname` called with bool arguments fixed, e.g. `use_loop=False`: only the branches
    that `if use_loop:` (or `not use_loop`, `use_loop is True`, `... if use_loop else ...`) takes are read,
    in the function and in the helpers it passes the flag to. None when the function is not in the file or
    tests a flag in a way this reading cannot decide (then nothing can be said from the code)."""
    tree = ast.parse(source)
    fn = find_function(tree, qualname)
    if fn is None:
        return None
    start, reached, undecided = _reached(tree, fn, facts)
    return None if undecided else _sites(qualname, start, reached)


def loops(source: str, qualname: str) -> list[int]:
    """Line numbers of the loops (for, while, comprehensions) that function `qualname` runs, its helpers'
    included (see `loop_sites`)."""
    return [line for line, _ in loop_sites(source, qualname)]


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
    "multiprocessing",
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
    aliases = _aliases(tree)
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
        parts = _dotted(node)
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
        if attr in _DYNAMIC_BUILTINS and (base == "builtins" or _dotted(receiver) == ["__builtins__"]):
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
            text = ".".join(_dotted(node) or ["…", node.attr])
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
            add("torch.load passed around as a value", node, ".".join(_dotted(node) or []))
    return uses


def dynamic_uses(source: str, qualname: str) -> list[Use]:
    """What in `source` opens a door the grader cannot watch: exec, eval, compile, __import__, importlib,
    PyTorch's internals (torch._C, ...), the grader's and the interpreter's internals (sys.modules, gc, inspect,
    frames, __globals__, ...), getattr and friends with a computed name, unpickling. Anywhere in the file: one use
    counts against every function of it (`qualname` only has to be one of them). One per name and line, by line."""
    tree = ast.parse(source)
    if find_function(tree, qualname) is None:
        return []
    seen, out = set(), []
    for u in sorted(_door_uses(tree), key=lambda u: (u.line, u.name)):
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
