"""Static scan of a submitted file for calls a function may not make.

The judge parses the student's source (parsing never runs it), resolves the names a function uses through
the file's imports (`import torch.nn.functional as F` makes `F.conv2d` mean `torch.nn.functional.conv2d`)
and reports each use of a forbidden name with its line. Names under `torch.Tensor.` stand for methods
(`x.norm()`), matched by attribute name on anything that is not a module.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass


@dataclass(frozen=True)
class Use:
    name: str  # the forbidden name matched, e.g. "torch.cdist"
    line: int
    text: str  # how it is written in the file, e.g. "torch.cdist" or "x.norm"


def import_aliases(tree: ast.Module) -> dict[str, str]:
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


def dotted_name(node: ast.AST) -> list[str] | None:
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
    aliases = import_aliases(tree)
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
        parts = dotted_name(node)
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
