"""Static scan of a submitted file for calls a function may not make.

The judge parses the student's source (parsing never runs it), resolves the names a function uses through
the file's imports (`import torch.nn.functional as F` makes `F.conv2d` mean `torch.nn.functional.conv2d`)
and reports each use of a forbidden name with its line. Names under `torch.Tensor.` stand for methods
(`x.norm()`), matched by attribute name on anything that is not a module.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass


@dataclass(frozen=True)
class Use:
    name: str      # the forbidden name matched, e.g. "torch.cdist"
    line: int
    text: str      # how it is written in the file, e.g. "torch.cdist" or "x.norm"


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
        node = next((n for n in reversed(scope) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                   ast.ClassDef)) and n.name == part), None)
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
    layer_calls = {id(n.func) for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                   and n.func.attr == "backward" and len(n.args) >= 2}
    uses: list[Use] = []
    seen: set[tuple[str, int]] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.keyword) and node.arg in methods:   # e.g. requires_grad=True
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
                    break           # the first forbidden name that covers it is enough
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


def helpers(tree: ast.Module, fn: ast.AST) -> list[tuple[str, ast.AST]]:
    """The file's own functions and methods that `fn` calls, directly or through each other, by name:
    `helper(...)`, `self.helper(...)`, `cls.helper(...)`, `Class.helper(...)`. Returns (qualified name, node)
    pairs, `fn` itself excluded."""
    top = {n.name: n for n in tree.body if isinstance(n, (*_DEFS, ast.ClassDef))}   # the last definition wins
    owner = _parent_classes(tree)
    seen: dict[int, str] = {id(fn): ""}
    out: list[tuple[str, ast.AST]] = []
    todo = [fn]
    while todo:
        node = todo.pop()
        here = owner.get(id(node)) if not isinstance(node, ast.ClassDef) else node
        for call in ast.walk(node):
            if not isinstance(call, ast.Call):
                continue
            f, target, qual = call.func, None, ""
            if isinstance(f, ast.Name) and f.id in top:
                target = top[f.id]
                qual = f.id
                if isinstance(target, ast.ClassDef):      # constructing a class of the file runs its __init__
                    target = _method(target, "__init__")
                    qual = f"{f.id}.__init__"
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                if f.value.id in ("self", "cls") and here is not None:
                    target, qual = _method(here, f.attr), f"{here.name}.{f.attr}"
                elif isinstance(top.get(f.value.id), ast.ClassDef):
                    target, qual = _method(top[f.value.id], f.attr), f"{f.value.id}.{f.attr}"
            if target is None or id(target) in seen:
                continue
            seen[id(target)] = qual
            out.append((qual, target))
            todo.append(target)
    return out


def loop_sites(source: str, qualname: str) -> list[tuple[int, str]]:
    """(line, function) of each loop (for, while, comprehension) that running `qualname` may execute: its
    own, and those of the file's functions it calls (see `helpers`), sorted by line."""
    tree = ast.parse(source)
    fn = find_function(tree, qualname)
    if fn is None:
        return []
    sites = {(n.lineno, qualname) for n in ast.walk(fn) if isinstance(n, LOOP_NODES)}
    own = {line for line, _ in sites}
    for name, node in helpers(tree, fn):
        sites |= {(n.lineno, name) for n in ast.walk(node) if isinstance(n, LOOP_NODES) and n.lineno not in own}
    return sorted(sites)


def loops(source: str, qualname: str) -> list[int]:
    """Line numbers of the loops (for, while, comprehensions) that function `qualname` runs, its helpers'
    included (see `loop_sites`)."""
    return [line for line, _ in loop_sites(source, qualname)]


# ---- code the grader cannot read ------------------------------------------------------------------------------
# Calls built from strings or reaching PyTorch's internal bindings would take a student's code out of reach of
# the static scan (and, for torch._C, of the worker's guard's names). They are reported as problems of the
# function that uses them; a use at module level, for every function of the file.

_DYNAMIC_BUILTINS = {"exec": "exec()", "eval": "eval()", "compile": "compile()", "__import__": "__import__()"}
_INTERNALS = ("torch._C", "torch.utils._python_dispatch", "torch.overrides")
_WHY = {
    "exec()": "the grader reads your code to check the rules, so write the calls out directly",
    "eval()": "the grader reads your code to check the rules, so write the expression out directly",
    "compile()": "the grader reads your code to check the rules, so write the code out directly",
    "__import__()": "import modules with an import statement at the top of the file",
    "importlib": "import modules with an import statement at the top of the file",
    "torch._C": "it is PyTorch's internal binding layer; use the public torch functions instead",
    "torch.utils._python_dispatch": "it controls the modes the grader uses to check the rules",
    "torch.overrides": "it controls the modes the grader uses to check the rules",
}


def _dynamic_in(nodes, aliases: dict[str, str]) -> list[Use]:
    uses: list[Use] = []
    for node in nodes:
        name = None
        if isinstance(node, ast.Name) and node.id in _DYNAMIC_BUILTINS and node.id not in aliases:
            name = _DYNAMIC_BUILTINS[node.id]
        elif isinstance(node, ast.Attribute) and node.attr in _DYNAMIC_BUILTINS and \
                _dotted(node.value) in (["builtins"], ["__builtins__"]):
            name = _DYNAMIC_BUILTINS[node.attr]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            full = [module] if module else [a.name for a in node.names]
            if isinstance(node, ast.ImportFrom) and module:
                full += [f"{module}.{a.name}" for a in node.names]
            for f in full:
                if f and (f == "importlib" or f.startswith("importlib.")):
                    name = "importlib"
                elif f:
                    name = next((i for i in _INTERNALS if f == i or f.startswith(i + ".")), name)
        elif isinstance(node, (ast.Attribute, ast.Name)):
            parts = _dotted(node)
            if parts and parts[0] in aliases:
                full = ".".join([aliases[parts[0]], *parts[1:]])
                if full == "importlib" or full.startswith("importlib."):
                    name = "importlib"
                else:
                    name = next((i for i in _INTERNALS if full == i or full.startswith(i + ".")), None)
        if name is not None:
            uses.append(Use(name, node.lineno, name))
    return uses


def dynamic_uses(source: str, qualname: str) -> list[Use]:
    """Uses of exec, eval, compile, __import__, importlib and PyTorch's internals (torch._C, ...) that running
    `qualname` involves: in its body, in the file's functions it calls, or at module level. One per name and line."""
    tree = ast.parse(source)
    fn = find_function(tree, qualname)
    if fn is None:
        return []
    aliases = _aliases(tree)
    inside: set[int] = set()
    for d in ast.walk(tree):
        if isinstance(d, _DEFS):
            inside |= {id(n) for n in ast.walk(d) if n is not d}
    module_level = [n for n in ast.walk(tree) if id(n) not in inside and not isinstance(n, _DEFS)]
    nodes = list(ast.walk(fn)) + module_level
    for _, node in helpers(tree, fn):
        nodes += list(ast.walk(node))
    seen, out = set(), []
    for u in sorted(_dynamic_in(nodes, aliases), key=lambda u: (u.line, u.name)):
        if (u.name, u.line) not in seen:
            seen.add((u.name, u.line))
            out.append(u)
    return out


def describe_dynamic(function: str, uses: list[Use]) -> str:
    """Feedback for `dynamic_uses`: kind, and says how to write the code instead."""
    by_name: dict[str, list[int]] = {}
    for u in uses:
        by_name.setdefault(u.name, []).append(u.line)
    said = []
    for name, lines in by_name.items():
        where = "line " + ", ".join(str(n) for n in lines)
        said.append(f"{function} may not use {name} ({where}): {_WHY[name]}.")
    return " ".join(said)
