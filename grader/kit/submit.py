"""`grader submit`: the zip a student uploads, refused when it is incomplete."""

from __future__ import annotations

import ast
import datetime as _dt
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grader.course import manifest as manifests
from grader.course.manifest import Manifest
from grader.errors import GraderError
from grader.judge.staticscan import find_function
from grader.notebooks.answers import find_answers, never_run, questions, read_notebook


def unfinished(source: str, functions: list[str]) -> list[str]:
    """The graded functions whose body still raises NotImplementedError directly (the kit's stub)."""
    tree = ast.parse(source)
    todo = []
    for name in functions:
        node = find_function(tree, name)
        if node is None:
            continue
        bodies = (
            [node]
            if not isinstance(node, ast.ClassDef)
            else [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        )
        for fn in bodies:
            for stmt in ast.walk(fn):
                if isinstance(stmt, ast.Raise) and stmt.exc is not None:
                    exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
                    if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                        todo.append(name if fn is node else f"{name}.{fn.name}")
                        break
    return todo


def notebook_reminders(path: Path, m: Manifest, kit: Path, strict: bool = False) -> list[str]:
    """What to do before submitting `m`'s notebooks from `path`: each notebook never run (no outputs), each inline
    question not answered. A notebook that cannot be read is an error with `strict` (submit), else a reminder."""
    read: dict[str, Any] = {}
    out = []
    for nb in m.notebooks:
        if not (path / nb).is_file():
            continue
        node, why = read_notebook((path / nb).read_bytes(), nb)
        if node is None:
            if strict:
                raise GraderError(why.replace("; it was not run.", "."))
            out.append(why.replace("; it was not run.", "."))
            continue
        read[nb] = node
        if never_run(node):
            out.append(
                f"{nb} has no outputs: run it top to bottom (Kernel > Restart and run all) and save it, so its "
                "plots and results are in your submission."
            )
    for a in find_answers(questions(m), read, kit):
        if a.status != "answered" and a.notebook in read:
            out.append(
                f"inline question {a.id} in {a.notebook} is {a.status}"
                + (f" ({a.message})" if a.message else ": write your answer below its '*Your answer:*' line.")
            )
    return out


def build_submission(
    path: Path,
    assignment: str,
    *,
    kit: Path | None = None,
    out: Path | None = None,
    allow_incomplete: bool = False,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Zip the manifest's files and notebooks from `path`; returns the zip's path (never overwrites). Inline
    questions left unanswered and notebooks never run are warned about (`warn`, default: printed to stderr),
    not refused."""
    warn = warn or (lambda text: print(f"warning: {text}", file=sys.stderr))
    kit = kit or manifests.course_root()
    m = manifests.load(assignment, kit)
    missing = [f for f in m.files + m.notebooks if not (path / f).is_file()]
    if missing:
        raise GraderError(f"cannot build the {m.name} submission: missing {', '.join(missing)} in {path}")
    problems = []
    for part in m.parts:
        src = (path / part.file).read_text()
        try:
            todo = unfinished(src, list(part.functions))
        except SyntaxError as e:
            raise GraderError(
                f"{part.file} line {e.lineno}: syntax error ({e.msg}); fix it before submitting"
            ) from None
        problems += [f"{part.file}: {t}" for t in todo]
    if problems and not allow_incomplete:
        raise GraderError(
            "these functions are not implemented yet (they raise NotImplementedError):\n  "
            + "\n  ".join(problems)
            + "\nFinish them, or pass --allow-incomplete to submit anyway (with make: make submit "
            + f"A={m.name} ARGS=--allow-incomplete)."
        )
    for text in notebook_reminders(path, m, kit, strict=True):
        warn(text)
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = path / f"{m.name}_submission_{stamp}.zip"
    if out.exists():
        raise GraderError(f"{out} already exists; choose another --out (nothing is overwritten)")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in m.files + m.notebooks:
            zf.write(path / f, f)
    return out
