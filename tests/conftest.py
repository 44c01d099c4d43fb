"""Shared fixtures: the course root, copies of the reference submission, and a way to break one function."""

from __future__ import annotations

import ast
import shutil
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def copy_submission(dest: Path, packages=("a1_knn",)) -> Path:
    """A submission folder holding copies of the reference packages."""
    for pkg in packages:
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def course_allowing(dest: Path, assignment: str, modules: list[str]) -> Path:
    """A copy of the course holding `assignment` only, its manifest allowing `modules` too (`[rules]
    allowed_imports`), and the kit's packages it copies into the sandbox. For attack tests that plant code using
    os, subprocess, ... to test the sandbox: the static scan refuses those modules in the real course, so the
    planted code would never reach the sandbox there."""
    import json

    from grader.course import manifest

    m = manifest.load(assignment, ROOT)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(m.dir, dest / "assignments" / assignment, ignore=ignore)
    for path in m.sandbox_paths:
        shutil.copytree(ROOT / path, dest / path)  # with its __pycache__, as the kit has it
    toml = dest / "assignments" / assignment / "assignment.toml"
    toml.write_text(toml.read_text() + f"\n[rules]\nallowed_imports = {json.dumps(list(modules))}\n")
    return dest


def replace_function(path: Path, qualname: str, new_source: str) -> None:
    """Replace function `qualname` (`f` or `Class.method`) in the file at `path` by `new_source`."""
    text = path.read_text()
    tree = ast.parse(text)
    scope, node = tree.body, None
    for part in qualname.split("."):
        node = next(n for n in scope if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part)
        scope = node.body
    lines = text.splitlines(keepends=True)
    start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
    indent = " " * node.col_offset
    body = textwrap.indent(textwrap.dedent(new_source).strip("\n") + "\n", indent)
    path.write_text("".join(lines[:start]) + body + "".join(lines[node.end_lineno :]))


@pytest.fixture
def submission(tmp_path: Path) -> Path:
    return copy_submission(tmp_path / "submission")


def processes_with(marker: str) -> list[int]:
    """PIDs of the processes on this machine whose command line holds `marker` (to prove none outlived a test)."""
    import os

    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    found += [int(d)] if marker.encode() in f.read() else []
            except OSError:
                pass
    return found
