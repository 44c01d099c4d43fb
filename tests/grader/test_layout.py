"""The grader's rooms: the import contracts hold and bite, the worker's runtime is exactly what the worker imports,
a moved module changes the cache key, and the names check files import stay."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.classroom import batch
from grader.sandbox.host import WORKER_RUNTIME
from tests.conftest import ROOT

GRADER = ROOT / "grader"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
needs_lint_imports = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300, env=_env(cwd)
    )


def _env(cwd: Path) -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(cwd)}


@needs_lint_imports
def test_the_import_contracts_hold():
    r = _lint_imports(ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert r.stdout.count("KEPT") == 3


@needs_lint_imports
@pytest.mark.parametrize(
    "module, line, contract",
    [
        ("judge/results.py", "import grader.reports.formats", "Rooms of the grader"),
        ("sandbox/worker.py", "import grader.judge.results", "The worker's process imports only"),
        ("course/manifest.py", "import grader.cli", "Rooms of the grader"),
    ],
)
def test_an_import_against_the_rooms_breaks_the_contract(tmp_path, module, line, contract):
    shutil.copytree(GRADER, tmp_path / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "grader" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    r = _lint_imports(tmp_path)
    assert r.returncode != 0
    assert f"{contract}" in r.stdout and "BROKEN" in r.stdout


def _grader_imports(path: Path) -> set[str]:
    """The grader modules `path` imports (at any depth of its code), as dotted names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "grader"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "grader":
            found.add(node.module)
            for a in node.names:  # `from grader.sandbox import wire` imports a module
                if (GRADER / Path(*node.module.split(".")[1:]) / f"{a.name}.py").exists():
                    found.add(f"{node.module}.{a.name}")
    return found


def _file_of(module: str) -> list[str]:
    """The files importing `module` loads: its own and each enclosing package's __init__.py."""
    parts = module.split(".")[1:]
    files = [str(Path(*parts[:i], "__init__.py")) if i else "__init__.py" for i in range(len(parts))]
    own = Path(*parts)
    files.append(str(own / "__init__.py") if (GRADER / own).is_dir() else f"{own}.py")
    return files


def test_the_worker_runtime_is_exactly_what_the_worker_imports():
    seen, todo = set(), ["grader.sandbox.worker"]
    while todo:
        module = todo.pop()
        for rel in _file_of(module):
            if rel not in seen:
                seen.add(rel)
                todo += sorted(_grader_imports(GRADER / rel))
    assert seen == set(WORKER_RUNTIME), f"the worker imports {sorted(seen)}; WORKER_RUNTIME lists {WORKER_RUNTIME}"


def test_moving_or_renaming_a_module_changes_the_cache_key(tmp_path):
    engine = tmp_path / "grader"
    shutil.copytree(GRADER, engine, ignore=shutil.ignore_patterns("__pycache__"))
    before = batch.assignment_hash(ROOT, "a1_knn", engine)
    assert before == batch.assignment_hash(ROOT, "a1_knn", engine)  # stable
    (engine / "judge" / "more").mkdir()
    (engine / "judge" / "results.py").rename(engine / "judge" / "more" / "results.py")
    moved = batch.assignment_hash(ROOT, "a1_knn", engine)
    assert moved != before
    (engine / "judge" / "more" / "results.py").rename(engine / "judge" / "more" / "outcome.py")
    assert batch.assignment_hash(ROOT, "a1_knn", engine) not in (before, moved)
    assert "judge/more/outcome.py" in batch.engine_files(engine)
    assert not any(f.startswith(("classroom/", "kit/")) for f in batch.engine_files(engine))


def test_what_only_writes_tables_does_not_change_the_cache_key(tmp_path):
    engine = tmp_path / "grader"
    shutil.copytree(GRADER, engine, ignore=shutil.ignore_patterns("__pycache__"))
    before = batch.assignment_hash(ROOT, "a1_knn", engine)
    with open(engine / "classroom" / "classreport.py", "a") as f:
        f.write("\n# a new column\n")
    assert batch.assignment_hash(ROOT, "a1_knn", engine) == before
    with open(engine / "judge" / "judging.py", "a") as f:
        f.write("\n# a changed judgement\n")
    assert batch.assignment_hash(ROOT, "a1_knn", engine) != before


def test_the_names_check_files_import_stay():
    import grader.checks
    import grader.judge.checks
    import grader.judge.judging
    import grader.judging
    import grader.sandbox.wire
    import grader.wire

    assert grader.checks is grader.judge.checks  # one module: one registry of checks, one Ctx class
    assert grader.judging is grader.judge.judging and grader.wire is grader.sandbox.wire
    from grader.checks import CheckFailed, Ctx, check, variant  # noqa: F401


def test_one_assignments_tests_are_selected_by_name():
    """`make test-assignment A=NAME` (pytest --assignment NAME): a module marked for another assignment is left out,
    the notebook tests are kept by their `assignment` parameter, and an unknown name is refused, naming the real
    ones."""

    def collect(*args):
        return subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )

    out = collect("--assignment", "a1_knn", "tests/a1/test_reference.py", "tests/a2/test_reference.py",
                  "tests/notebooks/test_notebooks.py").stdout  # fmt: skip
    ids = [line for line in out.splitlines() if "::" in line]
    assert ids and all(i.startswith(("tests/a1/", "tests/notebooks/")) for i in ids), ids
    assert any("a1_knn:knn.ipynb" in i for i in ids) and not any("a2_linear:" in i for i in ids)
    bad = collect("--assignment", "a5_nope", "tests/a1/test_reference.py")
    assert bad.returncode != 0 and "no such assignment; the course has a1_knn, a2_linear, a3_networks" in bad.stderr
