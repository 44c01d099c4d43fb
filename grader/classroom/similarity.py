"""Pairs of submissions whose solution code is unusually alike, for staff to look at. It flags; it never scores.

For each graded function, a submission's own code is that function's source with docstrings and comments gone,
formatting normalised (parsed and printed back), and names renamed in order of first use (so renaming variables
or reformatting changes nothing). It is cut into overlapping runs of K tokens, and two runs are dropped as not
the student's: those in the kit's own version of the function (given code around the TODO), and those shared by
more than half of the class (the obvious way to write it). What is left is compared pair by pair (the share of
runs two submissions have in common, weighted by length across functions). A pair is listed when it shares at
least THRESHOLD of its distinctive code over at least MIN_RUNS runs.
"""

from __future__ import annotations

import ast
import builtins
import csv
import hashlib
import io
import itertools
import tokenize
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from grader.course.manifest import Manifest
from grader.reports.formats import clean_text, write_atomic

K = 6  # tokens per run
THRESHOLD = 0.7  # share of distinctive runs two submissions have in common
MIN_RUNS = 12  # distinctive runs a function needs to count (one-liners are alike by necessity)
COMMON = 0.5  # runs shared by more than this share of the class are the obvious code, not evidence
KEEP_NAMES = set(dir(builtins)) | {"self", "cls", "torch", "F", "nn", "math", "np", "numpy"}


@dataclass
class Pair:
    a: str
    b: str
    score: float
    functions: list[tuple[str, float]]  # (function, its share in common), most alike first


class _Normalise(ast.NodeTransformer):
    """Names in order of first use (v1, v2, ...), strings as one token, docstrings gone; library names kept."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _rename(self, name: str) -> str:
        if name in KEEP_NAMES:
            return name
        return self.names.setdefault(name, f"v{len(self.names) + 1}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self._rename(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._rename(node.arg)
        node.annotation = None
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        return ast.Constant("s") if isinstance(node.value, str) else node

    def _body(self, node: ast.AST) -> ast.AST:
        body = getattr(node, "body", [])
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(getattr(body[0], "value", None), ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.name = "f"
            node.returns = None
            node.decorator_list = []
        self.generic_visit(node)
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _body


def tokens(node: ast.AST) -> list[str]:
    """The normalised tokens of a function or class."""
    tree = _Normalise().visit(ast.parse(ast.unparse(node)))
    text = ast.unparse(tree)
    out = []
    for t in tokenize.generate_tokens(io.StringIO(text).readline):
        if t.type in (tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT, tokenize.ENDMARKER):
            continue
        out.append({tokenize.INDENT: "<in>", tokenize.DEDENT: "<de>"}.get(t.type, t.string))
    return out


def runs(toks: list[str]) -> set[str]:
    return {
        hashlib.blake2b(" ".join(toks[i : i + K]).encode(), digest_size=8).hexdigest()
        for i in range(max(len(toks) - K + 1, 0))
    }


def definitions(source: str) -> dict[str, ast.AST]:
    """Top-level functions and classes of a module, by name (nothing when it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    return {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def kit_runs(m: Manifest, kit: Path) -> dict[str, set[str]]:
    """The runs of the kit's own version of each graded function (given code, and the stub a region leaves)."""
    from grader.kit.release import stub_source

    out: dict[str, set[str]] = {}
    for p in m.parts:
        path = kit / p.file
        if not path.is_file():
            continue
        try:
            text, _ = stub_source(path.read_text(encoding="utf-8"), p.file)
        except Exception:  # a kit file without regions, or unreadable: nothing given to drop
            continue
        defs = definitions(text)
        for f in p.functions:
            if f in defs:
                out[f] = runs(tokens(defs[f]))
    return out


def find_similar(sources: dict[str, dict[str, str]], m: Manifest, kit: Path) -> list[Pair]:
    """`sources`: submission -> graded file -> text. Returns the flagged pairs, most alike first."""
    given = kit_runs(m, kit)
    prints: dict[str, dict[str, set[str]]] = {}  # function -> submission -> runs
    for p in m.parts:
        for who, files in sources.items():
            text = files.get(p.file)
            if text is None:
                continue
            defs = definitions(text)
            for f in p.functions:
                if f in defs:
                    try:
                        prints.setdefault(f, {})[who] = runs(tokens(defs[f])) - given.get(f, set())
                    except (SyntaxError, ValueError, RecursionError):
                        continue
    n = max(len(sources), 1)
    for per in prints.values():
        counts = Counter(r for rs in per.values() for r in rs)
        common = {r for r, c in counts.items() if c > COMMON * n and n >= 4}
        for who in per:
            per[who] = per[who] - common
    candidates: set[tuple[str, str]] = set()  # pairs sharing any distinctive run
    for per in prints.values():
        index: dict[str, list[str]] = {}
        for who, rs in per.items():
            for r in rs:
                index.setdefault(r, []).append(who)
        for whos in index.values():
            if len(whos) > 1:
                candidates.update(itertools.combinations(sorted(whos), 2))
    pairs = []
    for a, b in candidates:
        fs = []  # (function, in common, in either)
        for f, per in prints.items():
            ra, rb = per.get(a, set()), per.get(b, set())
            if min(len(ra), len(rb)) >= MIN_RUNS:
                fs.append((f, len(ra & rb), len(ra | rb)))
        inter, union = sum(c for _, c, _ in fs), sum(u for _, _, u in fs)
        score = inter / union if union else 0.0
        if score >= THRESHOLD:
            listed = sorted(((f, c / u) for f, c, u in fs if c / u >= THRESHOLD / 2), key=lambda t: -t[1])
            pairs.append(Pair(a, b, round(score, 3), [(f, round(s, 3)) for f, s in listed]))
    pairs.sort(key=lambda p: (-p.score, p.a, p.b))
    return pairs


def write_csv(path: Path, pairs: list[Pair], names: dict[str, str] | None = None) -> Path:
    names = names or {}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["student_a", "student_b", "score", "functions"])
    for p in pairs:
        w.writerow(
            [
                _cell(names.get(p.a, p.a)),
                _cell(names.get(p.b, p.b)),
                f"{p.score:.3f}",
                "; ".join(f"{f} {s:.2f}" for f, s in p.functions),
            ]
        )
    write_atomic(path, buf.getvalue())
    return path


def _cell(text: str) -> str:
    """Text for a spreadsheet cell, never read as a formula (leading spaces and tabs are dropped first)."""
    text = clean_text(text).replace("\n", " ").strip()
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
