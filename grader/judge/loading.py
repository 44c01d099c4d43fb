"""Loading an assignment's trusted code into the judge: its checks (public, and hidden where asked for), in the
order building blocks come before the composites that use them, and its oracles (compiled in the oracle process)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import zlib
from pathlib import Path

from grader.course.manifest import Manifest
from grader.errors import GraderError
from grader.judge.checks import CheckSpec, collect
from grader.judge.opening import ORACLES_FILE, oracle_source


def _checks_package(m: Manifest) -> str:
    """The assignment's folder as a private package (one per kit folder), so check files import each other and
    the oracles with relative imports."""
    pkg = f"_grader_checks_{m.name}_{zlib.crc32(str(m.dir).encode()):08x}"
    if pkg not in sys.modules:
        spec = importlib.machinery.ModuleSpec(pkg, None, is_package=True)
        spec.submodule_search_locations = [str(m.dir)]
        sys.modules[pkg] = importlib.util.module_from_spec(spec)
    return pkg


def load_oracles(m: Manifest) -> tuple[str | None, set[str]]:
    """The assignment's oracles (`oracles.py`: ORACLES, a graded name -> a correct function or class): its source,
    which the oracle process compiles (never the student's worker), and the names it covers. Every building block
    the manifest declares needs one. The student kit has no oracles.py (some oracles are plain solutions): there,
    no composite is judged again."""
    path = m.dir / ORACLES_FILE
    source = oracle_source(m)
    if source is None:
        return None, set()
    module = importlib.import_module(f"{_checks_package(m)}.{path.stem}")
    table = getattr(module, "ORACLES", None)
    if not isinstance(table, dict):
        raise GraderError(f"{path}: expected a dict ORACLES mapping graded names to functions or classes")
    names = set(table)
    graded = {f for p in m.parts for f in p.functions}
    unknown = sorted(names - graded)
    if unknown:
        raise GraderError(f"{path}: ORACLES names {unknown}, which no part of the manifest grades")
    for p in m.parts:
        for composite, blocks in p.blocks.items():
            missing = [b for b in blocks if b not in names]
            if missing:
                raise GraderError(
                    f"{m.dir / 'assignment.toml'} [parts.blocks] {composite}: building block(s) "
                    f"{missing} need an oracle in {path} (ORACLES[{missing[0]!r}]), found none"
                )
    return source, names


def function_order(m: Manifest) -> dict[str, int]:
    """Graded functions in manifest order, except that a building block comes before every function using it."""
    listed = [f for p in m.parts for f in p.functions]
    order: list[str] = []

    def visit(f: str, path: tuple[str, ...]) -> None:
        if f in order or f in path:
            return
        for b in m.blocks_of(f):
            visit(b, path + (f,))
        order.append(f)

    for f in listed:
        visit(f, ())
    return {f: i for i, f in enumerate(order)}


def load_checks(m: Manifest, hidden: bool) -> list[CheckSpec]:
    """Import the assignment's check files (as a private package named after the assignment)."""
    pkg = _checks_package(m)
    specs: list[CheckSpec] = []
    files = list(m.checks) + (list(m.hidden_checks) if hidden else [])
    for f in files:
        path = m.dir / f
        if not path.is_file():
            if f in m.hidden_checks:
                raise GraderError(f"{path} is not here (a student kit has no hidden checks)", option="hidden")
            raise GraderError(f"{m.dir / 'assignment.toml'}: check file {f!r} not found at {path}")
        mod = importlib.import_module(f"{pkg}.{Path(f).stem}")
        specs.extend(collect(mod))
    ids = [s.id for s in specs]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise GraderError(f"{m.dir}: check ids used twice: {sorted(dup)}")
    graded = {f for p in m.parts for f in p.functions}
    for s in specs:
        if s.function not in graded:
            raise GraderError(f"{m.dir}: check {s.id} grades {s.function!r}, which no part of the manifest lists")
    order = function_order(m)
    specs.sort(key=lambda s: (order[s.function], s.hidden))  # stable: file order within a function
    unchecked = graded - {s.function for s in specs}
    if unchecked:
        raise GraderError(f"{m.dir}: no check grades {sorted(unchecked)}")
    return specs
