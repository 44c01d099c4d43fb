"""Only the modules the lesson needs: the modules a graded file uses, read from its source (parsing never runs it).

A graded file may use the modules its manifest allows (`Manifest.allowed_imports`: the course's starter imports,
the kit's packages, `[rules] allowed_imports`). A *use* of any other module (`np.sqrt(x)`, `cdist(a, b)` from
`from scipy.spatial.distance import cdist`, `threading._sys`, `torch.os`: a module reached through an allowed one)
is refused, and like a door (grader.judge.doors) it holds back every function of the file: the module is bound
at the file's top, any function may reach it, and the worker will refuse to import it. An import that nothing
uses costs nothing: it earns a warning (`ImportScan.unused`).
"""

from __future__ import annotations

import ast
import importlib
import sys
import types
from dataclasses import dataclass, field

from grader.course.manifest import DEFAULT_IMPORTS
from grader.course.rules import shown_modules
from grader.judge.staticscan import Use, dotted_name


@dataclass(frozen=True)
class ImportScan:
    refused: list[Use] = field(default_factory=list)  # name: the module's top-level name; text: as written
    unused: list[Use] = field(default_factory=list)  # imports of modules outside the list that nothing uses


def _module(name: str) -> types.ModuleType | None:
    """A module the judge has loaded (the course's default modules are loaded here: they are the standard
    library's); None for any other that is not loaded yet: the judge never imports what a student names."""
    mod = sys.modules.get(name)
    if mod is None and name in DEFAULT_IMPORTS:
        try:
            mod = importlib.import_module(name)
        except ImportError:  # pragma: no cover - the standard library
            return None
    return mod


def _escape(path: list[str], allowed: set[str]) -> tuple[int, str] | None:
    """Where a dotted name that starts at an allowed module leaves the allowed modules: (how many of its parts
    lead to the module, that module's top-level name), e.g. `threading._sys` -> (2, "sys"), `torch.os` ->
    (2, "os"); None when it stays inside. Walks only the modules' own namespaces (never a lazy import)."""
    obj = _module(path[0])
    for i, part in enumerate(path[1:], start=2):
        if not isinstance(obj, types.ModuleType):
            return None
        nxt = vars(obj).get(part)
        if nxt is None:
            nxt = sys.modules.get(f"{obj.__name__}.{part}")
        if not isinstance(nxt, types.ModuleType):
            return None
        # a submodule of the allowed package under its own name (`os.path` is posixpath) stays inside it
        top = nxt.__name__.split(".")[0]
        if top not in allowed and sys.modules.get(f"{obj.__name__}.{part}") is not nxt:
            return i, top
        obj = nxt
    return None


def _chain(node: ast.AST, parent: dict[int, ast.AST]) -> ast.AST:
    """The longest attribute chain `node` heads: `np` in `np.linalg.norm(x)` -> `np.linalg.norm`."""
    while isinstance(up := parent.get(id(node)), ast.Attribute) and up.value is node:
        node = up
    return node


def import_uses(source: str, allowed: list[str] | set[str]) -> ImportScan:
    """The uses in `source` of modules outside `allowed` (top-level names), one per module and line, by line; and
    the imports of such modules that nothing in the file uses. Raises SyntaxError."""
    allowed = set(allowed)
    tree = ast.parse(source)
    parent: dict[int, ast.AST] = {}
    for p in ast.walk(tree):
        for c in ast.iter_child_nodes(p):
            parent[id(c)] = p
    bound: dict[str, list[tuple[str, ast.stmt]]] = {}  # a name an import binds -> (the dotted path, the import)
    refused: list[Use] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                name = a.asname or a.name.split(".")[0]
                bound.setdefault(name, []).append((a.name if a.asname else name, node))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                if a.name == "*":  # binds names nobody can see here: a use of the module
                    top = node.module.split(".")[0]
                    if top not in allowed:
                        refused.append(Use(top, node.lineno, f"from {node.module} import *"))
                    continue
                bound.setdefault(a.asname or a.name, []).append((f"{node.module}.{a.name}", node))
    used: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store) and node.id in bound):
            continue
        used.add(node.id)
        chain = _chain(node, parent)
        written = dotted_name(chain) or [node.id]
        for path, _ in bound[node.id][-1:]:  # the last import of a name is the one in force
            full = [*path.split("."), *written[1:]]
            top = full[0]
            if top not in allowed:
                refused.append(Use(top, node.lineno, ".".join(written)))
                continue
            out = _escape(full, allowed)
            if out is not None:
                shown = len(full) - len(written) + 1  # the parts of `full` the import stands for, as one name
                refused.append(Use(out[1], node.lineno, ".".join(written[: max(1, out[0] - shown + 1)])))
    unused: list[Use] = []
    for name, imports in bound.items():
        if name in used:
            continue
        for path, stmt in imports:
            top = path.split(".")[0]
            if top in allowed and _escape(path.split("."), allowed) is None:
                continue
            shown = next(
                (a.name if isinstance(stmt, ast.Import) else f"{stmt.module}.{a.name}")
                for a in stmt.names
                if (a.asname or (a.name.split(".")[0] if isinstance(stmt, ast.Import) else a.name)) == name
            )
            unused.append(Use(top, stmt.lineno, shown))
    return ImportScan(_first_per_line(refused), _first_per_line(unused))


def _first_per_line(uses: list[Use]) -> list[Use]:
    seen, out = set(), []
    for u in sorted(uses, key=lambda u: (u.line, u.name, u.text)):
        if (u.name, u.line) not in seen:
            seen.add((u.name, u.line))
            out.append(u)
    return out


# what to write instead, per module a student might reach for
_INSTEAD = {
    "numpy": "instead of numpy, use torch tensors and torch functions",
    "scipy": "instead of scipy, compute it with torch",
    "sklearn": "instead of sklearn, compute it with torch",
    "pandas": "instead of pandas, keep the data in torch tensors",
    "operator": "instead of operator, write the operation out (a + b, obj.name, x[i])",
    "copy": "instead of copy, copy a tensor with .clone(), a list with list(x), a dict with dict(x)",
    "time": "remove time: graded functions need no clock",
}
_OTHER = "remove {m}: graded code needs nothing from it"


def _instead(module: str) -> str:
    return _INSTEAD.get(module, _OTHER.format(m=module))


def describe_imports(function: str, uses: list[Use], allowed: list[str] | set[str], file: str | None = None) -> str:
    """Feedback for `import_uses(...).refused`: each line and module, the modules a graded file may use, what to
    use instead; and that no function of the file is graded until they are gone."""
    shown = []
    for u in uses[:6]:
        if u.text.startswith("from "):
            shown.append(f"line {u.line} imports everything from {u.name}")
        else:
            shown.append(f"line {u.line} uses {u.name}" + (f" ({u.text})" if u.text != u.name else ""))
    more = f" and {len(uses) - 6} more" if len(uses) > 6 else ""
    instead = "; ".join(_instead(m) for m in list(dict.fromkeys(u.name for u in uses))[:4])
    return (
        f"{file + ' ' if file else ''}{', '.join(shown)}{more}: graded files may use only "
        f"{shown_modules(allowed)}, so {instead}. No function of {file or 'this file'} ({function} included) can "
        f"be graded until {'they are' if len(uses) > 1 else 'it is'} gone."
    )


def describe_unused(uses: list[Use], allowed: list[str] | set[str], file: str | None = None) -> str:
    """The warning for imports of modules outside the list that nothing uses: they cost nothing."""
    listed = ", ".join(f"line {u.line} imports {u.text}" for u in uses[:6])
    return (
        f"Warning: {file + ' ' if file else ''}{listed} but never uses "
        f"{'them' if len(uses) > 1 else 'it'}; that costs nothing, but graded files may use only "
        f"{shown_modules(allowed)}, so remove {'those imports' if len(uses) > 1 else 'the import'}."
    )
