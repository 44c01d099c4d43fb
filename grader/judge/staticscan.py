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
    where: str = ""  # the helper it is in, when not the scanned function itself (see `scan`)


def import_aliases(tree: ast.Module) -> dict[str, str]:
    """Each name the file's imports bind -> the dotted path it stands for. Read once per parsed tree (a scan asks
    for it once per function it enters); a copy, so a caller may change it."""
    cached = getattr(tree, "_grader_aliases", None)
    if cached is None:
        cached = _import_aliases(tree)
        tree._grader_aliases = cached
    return dict(cached)


def _import_aliases(tree: ast.Module) -> dict[str, str]:
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


# names under these stand for methods (`x.norm()`, `x.shape.numel()`), matched by attribute name on anything that is
# not a module: a tensor's type, and a tensor's shape's
METHOD_OWNERS = ("torch.Tensor.", "torch.Size.")


def scan(
    source: str, qualname: str, forbidden: list[str], filename: str = "<submission>", blocks: list[str] = ()
) -> list[Use]:
    """Uses of `forbidden` names inside function `qualname` of `source` and in every function of the file it runs
    (see `helpers`: by name, through an alias, handed on as a value), transitively; a use in a helper carries the
    helper's name (`Use.where`). `blocks`: graded functions or classes whose code is not entered (a composite's
    building blocks answer for their own calls, in their own checks). Raises SyntaxError."""
    tree = ast.parse(source, filename=filename)
    fn = find_function(tree, qualname)
    if fn is None or not forbidden:
        return []
    uses: list[Use] = []
    seen: set[tuple[str, int]] = set()
    for who, body in [(qualname, fn), *_reached(tree, fn, stop=frozenset(blocks)).reached]:
        for u in _scan_body(tree, body, forbidden):
            if (u.name, u.line) not in seen:
                seen.add((u.name, u.line))
                uses.append(u if who == qualname else Use(u.name, u.line, u.text, who))
    return sorted(uses, key=lambda u: (u.line, u.name))


def _scan_body(tree: ast.Module, fn: ast.AST, forbidden: list[str]) -> list[Use]:
    aliases = import_aliases(tree)
    methods = {f.rsplit(".", 1)[1] for f in forbidden if f.startswith(METHOD_OWNERS) and f.count(".") == 2}
    owner: dict[str, str] = {}  # attribute -> the forbidden name it stands for: a tensor's, or a shape's on a shape
    for f in forbidden:
        if f.startswith(METHOD_OWNERS) and f.count(".") == 2:
            owner.setdefault(f.rsplit(".", 1)[1], f)

    def method(node: ast.Attribute) -> str:
        shape = f"torch.Size.{node.attr}"
        r = node.value
        on_shape = (isinstance(r, ast.Attribute) and r.attr == "shape") or (
            isinstance(r, ast.Call) and isinstance(r.func, ast.Attribute) and r.func.attr in ("size", "Size")
        )
        return shape if on_shape and shape in forbidden else owner[node.attr]

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
            hit = (owner[node.arg], node.value.lineno)
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
                hit = (method(node), node.lineno)
                if hit not in seen:
                    seen.add(hit)
                    written = ast.unparse(node)
                    uses.append(Use(hit[0], node.lineno, written if len(written) <= 40 else f"….{node.attr}"))
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
            hit = (method(node), node.lineno)
            if hit not in seen:
                seen.add(hit)
                uses.append(Use(hit[0], node.lineno, text))
    return uses


LOOP_NODES = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)
# calls that loop over their argument, running Python code per element: they count as loops where a rule limits
# loops (builtins by name, unless the file binds the name itself; the others by the module they come from)
LOOP_BUILTINS = ("map", "filter")
LOOP_CALLS = ("functools.reduce", "itertools")  # every itertools function iterates
_PARTIAL = ("functools.partial", "functools.partialmethod")


def _parent_classes(tree: ast.Module) -> dict[int, ast.ClassDef]:
    """id(method node) -> the top-level class it is defined in."""
    out = {}
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef):
            for n in cls.body:
                if isinstance(n, _DEFS):
                    out[id(n)] = cls
    return out


def _callable_part(value: ast.AST, aliases: dict[str, str]) -> ast.AST | None:
    """What an assignment's value runs when the name is called: `helper` or `Class.method` (a name of a function),
    a lambda, the function a `functools.partial(helper, ...)` wraps; None for any other value."""
    if isinstance(value, ast.Call) and value.args:
        parts = dotted_name(value.func)
        full = ".".join([aliases.get(parts[0], parts[0]), *parts[1:]]) if parts else ""
        if full in _PARTIAL:
            return _callable_part(value.args[0], aliases)
        return None
    if isinstance(value, (ast.Name, ast.Lambda)):
        return value
    if isinstance(value, ast.Attribute) and dotted_name(value) is not None:
        return value
    return None


def _bindings(body: list[ast.stmt], aliases: dict[str, str]) -> dict[str, ast.AST]:
    """name -> what a module's or a class's statements bind it to, the last binding winning (as Python keeps it):
    a def, a class, or what an alias runs (`_f = helper`, `_f = functools.partial(helper, 1)`, `_f = lambda x:
    ...`: see _callable_part). A name bound to anything else is left out."""
    out: dict[str, ast.AST] = {}
    for n in body:
        if isinstance(n, (*_DEFS, ast.ClassDef)):
            out[n.name] = n
            continue
        targets, value = [], None
        if isinstance(n, ast.Assign):
            targets, value = n.targets, n.value
        elif isinstance(n, ast.AnnAssign) and n.value is not None:
            targets, value = [n.target], n.value
        for t in targets:
            if isinstance(t, ast.Name):
                run = _callable_part(value, aliases)
                if run is None:
                    out.pop(t.id, None)
                else:
                    out[t.id] = run
    return out


def _method(cls: ast.ClassDef, name: str, aliases: dict[str, str] | None = None) -> ast.AST | None:
    """The def (or the alias: see _bindings) that `name` is in a class's body."""
    found = _bindings(cls.body, aliases or {}).get(name)
    return None if isinstance(found, ast.ClassDef) else found


def _is_def(node: ast.AST | None) -> bool:
    return isinstance(node, _DEFS)


def _callee(
    call: ast.Call, here: ast.ClassDef | None, top: dict, aliases: dict[str, str] | None = None
) -> tuple[str, ast.AST, ast.ClassDef | None, int] | None:
    """The file's own function or method a call runs, by name or through an alias of it: (qualified name, node,
    its class, how many parameters the call fills implicitly: 1 for `self`/`cls`, 0 otherwise), or None. The node
    is a def, or what an alias runs (a name, a lambda: see _bindings)."""
    return _target(call.func, here, top, aliases or {}, called=True)


def _target(
    f: ast.AST, here: ast.ClassDef | None, top: dict, aliases: dict[str, str], called: bool
) -> tuple[str, ast.AST, ast.ClassDef | None, int] | None:
    """What `f` (a name or an attribute, called or not) is among the file's own functions, methods and their
    aliases; see _callee. A class is its __init__ where it is called, and nothing where it is only named."""
    target, qual, cls = None, "", None
    if isinstance(f, ast.Name) and f.id in top:
        target, qual = top[f.id], f.id
        if isinstance(target, ast.ClassDef):  # constructing a class of the file runs its __init__
            if not called:
                return None
            cls, target, qual = target, _method(target, "__init__", aliases), f"{f.id}.__init__"
    elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
        if f.value.id in ("self", "cls") and here is not None:
            cls, target, qual = here, _method(here, f.attr, aliases), f"{here.name}.{f.attr}"
        elif isinstance(top.get(f.value.id), ast.ClassDef):
            cls = top[f.value.id]
            target, qual = _method(cls, f.attr, aliases), f"{f.value.id}.{f.attr}"
    elif (  # `Class(...).method`: a method of an instance made on the spot
        isinstance(f, ast.Attribute)
        and isinstance(f.value, ast.Call)
        and isinstance(f.value.func, ast.Name)
        and isinstance(top.get(f.value.func.id), ast.ClassDef)
    ):
        cls = top[f.value.func.id]
        target, qual = _method(cls, f.attr, aliases), f"{cls.name}.{f.attr}"
        if target is None:
            return None
        plain = not {d.id for d in getattr(target, "decorator_list", []) if isinstance(d, ast.Name)} & {
            "staticmethod",
            "classmethod",
        }
        return qual, target, cls, int(_is_def(target) and plain)
    if target is None:
        return None
    decorators = {d.id for d in getattr(target, "decorator_list", []) if isinstance(d, ast.Name)}
    bound = (
        cls is not None
        and _is_def(target)
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

    if not _is_def(target):  # a class, or an alias (a lambda, a partial): no flag is followed through it
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


def _own_names(node: ast.AST) -> set[str]:
    """The names local to a function or lambda: its parameters and what its own statements assign (not those of
    the functions and classes nested in it). A local name is never the file's function of the same name."""
    out: set[str] = set()
    args = getattr(node, "args", None)
    if isinstance(args, ast.arguments):
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        out |= {a.arg for a in every if a is not None}
    todo = list(ast.iter_child_nodes(node)) if isinstance(node, (*_DEFS, ast.Lambda)) else []
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            out.add(n.id)
        elif isinstance(n, (*_DEFS, ast.ClassDef)):
            out.add(n.name)
            todo += [*n.decorator_list, *getattr(getattr(n, "args", None), "defaults", [])]
            continue
        elif isinstance(n, ast.Lambda):
            continue
        if isinstance(n, ast.arguments):
            continue
        todo += list(ast.iter_child_nodes(n))
    return out


def _references(
    node: ast.AST, here: ast.ClassDef | None, top: dict, aliases: dict[str, str]
) -> list[tuple[ast.AST, tuple[str, ast.AST, ast.ClassDef | None, int]]]:
    """What `node` runs or hands on among the file's own functions, methods and their aliases: each call, and each
    use of one as a value (`map(helper, rows)`, `f = helper`, `partial(helper, 1)`, a default `h=helper`,
    `self.helper` passed on): (the call or the name, _target's answer). Names local to `node` are skipped."""
    local = _own_names(node)
    called: set[int] = set()
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            if isinstance(n.func, ast.Name) and n.func.id in local:
                continue
            hit = _target(n.func, here, top, aliases, called=True)
            if hit is not None:
                called.add(id(n.func))
                out.append((n, hit))
    for n in ast.walk(node):
        if id(n) in called or not isinstance(n, (ast.Name, ast.Attribute)):
            continue
        if isinstance(n, ast.Name) and (not isinstance(n.ctx, ast.Load) or n.id in local):
            continue
        hit = _target(n, here, top, aliases, called=False)
        if hit is not None:
            out.append((n, hit))
    return out


@dataclass
class _Reach:
    start: ast.AST  # the function as it runs with the facts given
    reached: list[tuple[str, ast.AST]]  # the file's own functions it runs, each as it runs
    undecided: bool  # some test of a fact stayed undecided along the way
    recursion: list[tuple[int, str]]  # (line, function) of each call that comes back to a caller: a loop


def _reached(
    tree: ast.Module, fn: ast.AST, facts: dict[str, bool] | None = None, stop: frozenset[str] = frozenset()
) -> _Reach:
    """fn as it runs with `facts` (see _Specialise), the file's own functions and methods it runs, directly or
    through each other, by name or through an alias (see _references), each as it runs with the bool values a
    call hands it; whether some test of a fact stayed undecided along the way, and the calls that recurse. The
    functions and classes named in `stop` are not entered."""
    aliases = import_aliases(tree)
    top = _bindings(tree.body, aliases)  # the last definition wins
    owner = _parent_classes(tree)
    start, undecided = _specialise(fn, facts or {})
    here = fn if isinstance(fn, ast.ClassDef) else owner.get(id(fn))
    first = (id(fn), frozenset((facts or {}).items()))
    seen = {first}
    out: list[tuple[str, ast.AST]] = []
    edges: list[tuple[tuple, tuple, int, str]] = []  # (caller, callee, line, caller's name)
    todo = [(start, here, facts or {}, first, "")]
    while todo:
        node, here, known, key_here, name_here = todo.pop()
        for site, (qual, target, cls, implicit) in _references(node, here, top, aliases):
            if qual in stop or qual.split(".")[0] in stop:  # a building block: not entered (see `scan`)
                continue
            given = _passed(site, target, implicit, known) if isinstance(site, ast.Call) else {}
            key = (id(target), frozenset(given.items()))
            edges.append((key_here, key, site.lineno, name_here))
            if key in seen:
                continue
            seen.add(key)
            body, unsure = _specialise(target, given)
            undecided |= unsure and bool(facts)
            out.append((qual, body))
            todo.append((body, cls if cls is not None else owner.get(id(target)), given, key, qual))
    after: dict[tuple, set[tuple]] = {}
    for a, b, _, _ in edges:
        after.setdefault(a, set()).add(b)

    def leads_to(a: tuple, b: tuple) -> bool:
        stack, visited = [a], set()
        while stack:
            k = stack.pop()
            if k == b:
                return True
            if k not in visited:
                visited.add(k)
                stack += after.get(k, ())
        return False

    recursion = sorted({(line, who) for a, b, line, who in edges if leads_to(b, a)})
    return _Reach(start, out, undecided, recursion)


def helpers(tree: ast.Module, fn: ast.AST) -> list[tuple[str, ast.AST]]:
    """The file's own functions and methods that `fn` runs, directly or through each other: by name
    (`helper(...)`, `self.helper(...)`, `cls.helper(...)`, `Class.helper(...)`), through an alias (`_f = helper`,
    `functools.partial(helper, ...)`, a lambda), or handed on as a value (`map(helper, rows)`, a default argument
    `h=helper`). Returns (qualified name, node) pairs, `fn` itself excluded; the node of an alias is what it runs
    (a name, a lambda). A helper called with a True/False literal (`helper(x, vectorised=True)`) is read as it
    runs with that value: only the branches of `if vectorised:` it takes."""
    return _reached(tree, fn).reached


def _loop_calls(node: ast.AST, tree: ast.Module) -> list[ast.Call]:
    """The calls in `node` that loop: map and filter (unless the file binds those names), functools.reduce, any
    itertools function."""
    aliases = import_aliases(tree)
    bound = set(aliases) | set(_bindings(tree.body, aliases))
    out = []
    for n in ast.walk(node):
        if not isinstance(n, ast.Call):
            continue
        parts = dotted_name(n.func)
        if not parts:
            continue
        if len(parts) == 1 and parts[0] in LOOP_BUILTINS and parts[0] not in bound:
            out.append(n)
            continue
        if parts[0] in aliases:
            full = ".".join([aliases[parts[0]], *parts[1:]])
            if any(full == c or full.startswith(c + ".") for c in LOOP_CALLS):
                out.append(n)
    return out


def _loops_in(node: ast.AST, tree: ast.Module) -> list[int]:
    return [n.lineno for n in ast.walk(node) if isinstance(n, LOOP_NODES)] + [n.lineno for n in _loop_calls(node, tree)]


def _sites(qualname: str, tree: ast.Module, r: _Reach) -> list[tuple[int, str]]:
    sites = {(line, qualname) for line in _loops_in(r.start, tree)}
    own = {line for line, _ in sites}
    for name, node in r.reached:
        sites |= {(line, name) for line in _loops_in(node, tree) if line not in own}
    sites |= {(line, name or qualname) for line, name in r.recursion}
    return sorted(sites)


def loop_sites(source: str, qualname: str) -> list[tuple[int, str]]:
    """(line, function) of each loop that running `qualname` may execute: for, while, comprehensions, map,
    filter, functools.reduce, itertools, and a call that recurses (directly or through other functions); its
    own, and those of the file's functions it runs (see `helpers`), sorted by line."""
    tree = ast.parse(source)
    fn = find_function(tree, qualname)
    if fn is None:
        return []
    return _sites(qualname, tree, _reached(tree, fn))


def loop_sites_when(source: str, qualname: str, **facts: bool) -> list[tuple[int, str]] | None:
    """`loop_sites` of `qualname` called with bool arguments fixed, e.g. `use_loop=False`: only the branches
    that `if use_loop:` (or `not use_loop`, `use_loop is True`, `... if use_loop else ...`) takes are read,
    in the function and in the helpers it passes the flag to. None when the function is not in the file or
    tests a flag in a way this reading cannot decide (then nothing can be said from the code)."""
    tree = ast.parse(source)
    fn = find_function(tree, qualname)
    if fn is None:
        return None
    r = _reached(tree, fn, facts)
    return None if r.undecided else _sites(qualname, tree, r)


def loops(source: str, qualname: str) -> list[int]:
    """Line numbers of the loops (for, while, comprehensions, map, filter, recursion, ...) that function
    `qualname` runs, its helpers' included (see `loop_sites`)."""
    return [line for line, _ in loop_sites(source, qualname)]
