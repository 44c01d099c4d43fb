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


def loops(source: str, qualname: str) -> list[int]:
    """Line numbers of the loops (for, while, comprehensions) in function `qualname`."""
    fn = find_function(ast.parse(source), qualname)
    if fn is None:
        return []
    return sorted(n.lineno for n in ast.walk(fn) if isinstance(n, LOOP_NODES))
