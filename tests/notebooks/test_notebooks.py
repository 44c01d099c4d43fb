"""
The course notebooks: every notebook a manifest names is a clean, valid notebook (fast tests), and runs top to
bottom on the reference solution, draws its plots and passes its self-checks (slow tests).

Conventions the notebooks follow, and these tests hold them to:
- saved without outputs, kernel `python3`, run from `notebooks/` as the working directory;
- a code cell that draws carries the tag `plot` and must produce an image;
- each part of an assignment is self-checked with `dlcv.selfcheck.check("<assignment>", "<part>")`, in the
  notebook named after the part's module when there is one (part module `a1_knn.knn` -> `knn.ipynb`);
- solution regions (`# BEGIN SOLUTION` / `# END SOLUTION`) sit in code cells, below a `# TODO:` line, and the
  release tool can stub them.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat
import pytest

from grader.course import manifest as manifests
from grader.kit.release import find_regions, stub_notebook

ROOT = Path(__file__).resolve().parent.parent.parent
NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT = 600  # seconds per cell

SELFCHECK_CALL = re.compile(r"""dlcv\.selfcheck\.check\(\s*["'](\w+)["']\s*(?:,\s*["'](\w+)["'])?""")
DRAWS = re.compile(r"\bplt\.(show|imshow|plot|scatter|errorbar|bar|hist)\(")


def _manifests() -> list[manifests.Manifest]:
    return [manifests.load(name, ROOT) for name in manifests.available(ROOT)]


def _notebook_params() -> list:
    params = []
    for m in _manifests():
        for nb in m.notebooks:
            params.append(pytest.param(m.name, nb, id=f"{m.name}:{Path(nb).name}"))
    return params


NOTEBOOK_PARAMS = _notebook_params()


def _read(path: str) -> nbformat.NotebookNode:
    full = ROOT / path
    assert full.is_file(), f"the manifest names notebook {path}, but there is no such file"
    return nbformat.read(str(full), as_version=4)


def _code_cells(nb):
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def _tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def _text_of(outputs) -> str:
    """Everything a cell printed (streams and plain-text results), errors included."""
    parts = []
    for o in outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type in ("execute_result", "display_data"):
            parts.append(o.get("data", {}).get("text/plain", ""))
        elif o.output_type == "error":
            parts.append(f"{o.ename}: {o.evalue}")
    return "".join(parts)


def _where(path: str, index: int, cell) -> str:
    first = cell.source.strip().splitlines()[0] if cell.source.strip() else "(empty)"
    return f"{path} cell {index + 1} ({first!r})"


# ---------------------------------------------------------------------------------------------------------
# Fast: the saved notebooks


def test_every_assignment_names_its_notebooks():
    assert NOTEBOOK_PARAMS, "no manifest under assignments/ names a notebook"


@pytest.mark.parametrize("assignment, path", NOTEBOOK_PARAMS)
def test_notebook_is_valid_and_saved_without_outputs(assignment, path):
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path}: kernelspec should be python3"
    for i, cell in _code_cells(nb):
        assert cell.outputs == [], f"{_where(path, i, cell)} has saved outputs; clear them before saving"
        assert cell.execution_count is None, f"{_where(path, i, cell)} has an execution count; clear outputs"


@pytest.mark.parametrize("assignment, path", NOTEBOOK_PARAMS)
def test_notebook_sets_up_the_course_folder_first(assignment, path):
    nb = _read(path)
    cells = _code_cells(nb)
    assert cells, f"{path} has no code cell"
    _, first = cells[0]
    for needed in ('sys.path.insert(0, os.path.abspath(".."))', "%autoreload 2", "reset_seed("):
        assert needed in first.source, f"{path}: the first code cell should contain {needed!r}"


@pytest.mark.parametrize("assignment, path", NOTEBOOK_PARAMS)
def test_notebook_self_checks_each_of_its_parts(assignment, path):
    m = manifests.load(assignment, ROOT)
    stem = Path(path).stem
    by_module = {p.name for p in m.parts if p.module.rsplit(".", 1)[-1] == stem}
    # Parts whose module has no notebook of its own may be checked in any of the assignment's notebooks.
    stems = {Path(nb).stem for nb in m.notebooks}
    orphans = {p.name for p in m.parts if p.module.rsplit(".", 1)[-1] not in stems}

    calls = []
    for _, cell in _code_cells(_read(path)):
        calls += SELFCHECK_CALL.findall(cell.source)
    assert calls, f"{path} has no self-check cell (dlcv.selfcheck.check(...))"
    part_names = {p.name for p in m.parts}
    for a, part in calls:
        assert a == assignment, f"{path} self-checks assignment {a!r}; the manifest that names it is {assignment!r}"
        assert part in part_names, f"{path} self-checks part {part!r}; {assignment}'s parts are {sorted(part_names)}"
    checked = {part for _, part in calls}
    missing = by_module - checked
    assert not missing, f"{path} has no dlcv.selfcheck.check({assignment!r}, ...) call for part(s) {sorted(missing)}"

    if orphans:  # each must be checked somewhere in the assignment's notebooks
        everywhere = set()
        for nb in m.notebooks:
            for _, cell in _code_cells(_read(nb)):
                everywhere |= {part for _, part in SELFCHECK_CALL.findall(cell.source)}
        missing = sorted(orphans - everywhere)
        assert not missing, f"no notebook of {assignment} self-checks part(s) {missing}"


@pytest.mark.parametrize("assignment, path", NOTEBOOK_PARAMS)
def test_the_first_cell_says_what_is_graded_by_hand(assignment, path):
    """No surprise at submission: the first cell counts the notebook's inline questions (the manifest's, each a
    cell tagged question:<id>) and their points, and asks for the notebook run and saved."""
    m = next(m for m in _manifests() if m.name == assignment)
    mine = [q for q in m.questions if q.notebook == path]
    nb = _read(path)
    first = " ".join(nb.cells[0].source.split())
    tagged = [t for c in nb.cells for t in _tags(c) if t.startswith("question:")]
    assert sorted(tagged) == sorted(f"question:{q.id}" for q in mine)
    assert "**Graded by hand.**" in first and "top to bottom" in first and "save" in first
    if mine:
        total = sum(q.points for q in mine)
        count = f"{len(mine)} inline question{'s' if len(mine) > 1 else ''}"
        assert count in first and f"{total:g} in all" in first, first
    else:
        assert "Nothing in this notebook" in first, first


TIMERS = {"knn.ipynb": "timed", "pytorch101.ipynb": "best_time", "linear_classifier.ipynb": "best_time"}


@pytest.mark.parametrize("name, timer", sorted(TIMERS.items()))
def test_speed_comparisons_run_on_one_thread(name, timer):
    """Loops against vectorised code: the lesson's ordering must hold on a busy two-core laptop, where PyTorch's
    threads compete for the cores (the one-loop distances ran 2.6 times slower than two loops there)."""
    nb = _read(f"notebooks/{name}")
    defs = [c.source for _, c in _code_cells(nb) if f"def {timer}(" in c.source]
    assert len(defs) == 1, f"{name}: expected one cell defining {timer}()"
    body = defs[0].split(f"def {timer}(", 1)[1].split("\ndef ", 1)[0]
    assert "torch.set_num_threads(1)" in body and "finally:" in body and "torch.set_num_threads(threads)" in body


@pytest.mark.parametrize("assignment, path", NOTEBOOK_PARAMS)
def test_cells_that_draw_are_tagged_plot(assignment, path):
    nb = _read(path)
    for i, cell in _code_cells(nb):
        if DRAWS.search(cell.source):
            assert "plot" in _tags(cell), f"{_where(path, i, cell)} draws but is not tagged 'plot'"
    for i, cell in enumerate(nb.cells):
        if "plot" in _tags(cell):
            assert cell.cell_type == "code", f"{path} cell {i + 1} is tagged 'plot' but is not a code cell"


@pytest.mark.parametrize("assignment, path", NOTEBOOK_PARAMS)
def test_solution_regions_are_well_formed_and_stub_cleanly(assignment, path):
    nb = _read(path)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            assert not find_regions(cell.source, path), f"{path} cell {i + 1}: a solution region outside code"
            continue
        lines = cell.source.splitlines()
        for region in find_regions(cell.source, f"{path} cell {i + 1}"):
            comment, j = [], region.begin - 1  # the comment block right above the region
            while j >= 0 and lines[j].strip().startswith("#"):
                comment.insert(0, lines[j].strip())
                j -= 1
            assert comment and comment[0].startswith("# TODO"), (
                f"{_where(path, i, cell)}: '# BEGIN SOLUTION' should sit below a '# TODO: ...' comment saying "
                f"what to write; found {comment or 'no comment'}"
            )
    text, removed = stub_notebook(ROOT / path, path)  # raises if a region cannot be stubbed
    stubbed = nbformat.reads(text, as_version=4)
    nbformat.validate(stubbed)
    assert "BEGIN SOLUTION" not in text
    for region in removed:
        for line in region:
            if line.strip() and not line.strip().startswith("#"):
                assert line not in text, f"{path}: solution line {line.strip()!r} survives stubbing"


# ---------------------------------------------------------------------------------------------------------
# Slow: run each notebook on the reference


@pytest.fixture
def kernel_env(monkeypatch):
    """The environment the kernel inherits: a non-interactive matplotlib, the offline data set by default, one
    math thread (on a shared 2-core machine two threads were measured up to 6x slower than one), and the share
    of each dlcv.Solver training that the grader's report run trains (the same code runs, a quarter as long)."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("DLCV_TRAINING_SCALE", "0.25")
    if not os.environ.get("DLCV_DATASET"):
        monkeypatch.setenv("DLCV_DATASET", "digits")


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("assignment, path", NOTEBOOK_PARAMS)
def test_notebook_runs_on_the_reference(assignment, path, kernel_env, capsys):
    from nbclient import NotebookClient

    nb = _read(path)  # executed in memory: the saved file stays as it is
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n{path}: ran in {seconds:.1f} s")

    errors = []
    for i, cell in _code_cells(nb):
        for o in cell.outputs:
            if o.output_type == "error":
                errors.append(f"{_where(path, i, cell)}: {o.ename}: {o.evalue}")
    assert not errors, "cells raised errors:\n" + "\n".join(errors)

    checked = 0
    for i, cell in _code_cells(nb):
        if SELFCHECK_CALL.search(cell.source):
            checked += 1
            out = _text_of(cell.outputs)
            assert "FAIL" not in out, f"{_where(path, i, cell)}: the self-check failed on the reference:\n{out}"
            assert re.search(r" PASS$", out, re.M), f"{_where(path, i, cell)}: the self-check printed no PASS:\n{out}"
            assert re.search(r"^Total: ", out, re.M), f"{_where(path, i, cell)}: the self-check printed no total"
        if "plot" in _tags(cell):
            images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            assert images, f"{_where(path, i, cell)} is tagged 'plot' but produced no image"
    assert checked, f"{path}: no self-check cell ran"
