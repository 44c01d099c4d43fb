"""`grader release`: the student kit and the autograder bundles, from the instructor's single source.

Solution regions are fenced by exact marker lines, `# BEGIN SOLUTION` and `# END SOLUTION`, in Python
files and in notebook code cells. In the student kit each region becomes a `raise NotImplementedError`
naming the function to write, notebook outputs are cleared, and only public checks ship. The release
checks its own output: no marker, no solution line and no hidden check may reach the student kit.
"""

from __future__ import annotations

import ast
import itertools
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from grader import manifest as manifests
from grader.manifest import GraderError, Manifest
from grader.runner import ORACLES_FILE

BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION\s*$")
END = re.compile(r"^(\s*)# END SOLUTION\s*$")
MARKER = re.compile(r"#\s*(BEGIN|END) SOLUTION")


@dataclass(frozen=True)
class Region:
    begin: int  # 0-based line index of the BEGIN marker
    end: int  # 0-based line index of the END marker
    indent: str


def find_regions(text: str, where: str) -> list[Region]:
    """The solution regions of `text`; malformed markers raise GraderError naming `where` and the line."""
    regions, open_at, indent = [], None, ""
    for i, line in enumerate(text.splitlines()):
        b, e = BEGIN.match(line), END.match(line)
        if b:
            if open_at is not None:
                raise GraderError(
                    f"{where} line {i + 1}: '# BEGIN SOLUTION' inside the region opened at line "
                    f"{open_at + 1}; expected '# END SOLUTION' first"
                )
            open_at, indent = i, b.group(1)
        elif e:
            if open_at is None:
                raise GraderError(f"{where} line {i + 1}: '# END SOLUTION' without a '# BEGIN SOLUTION' before it")
            if e.group(1) != indent:
                raise GraderError(
                    f"{where} line {i + 1}: '# END SOLUTION' is indented differently from its "
                    f"'# BEGIN SOLUTION' at line {open_at + 1}"
                )
            regions.append(Region(open_at, i, indent))
            open_at = None
        elif MARKER.search(line):
            raise GraderError(
                f"{where} line {i + 1}: a solution marker must stand alone on its line, found {line.strip()!r}"
            )
    if open_at is not None:
        raise GraderError(f"{where} line {open_at + 1}: '# BEGIN SOLUTION' is never closed by '# END SOLUTION'")
    return regions


def _enclosing(tree: ast.AST | None, line: int) -> str | None:
    """Qualified name of the innermost function around 1-based `line`."""
    best = None

    def visit(node: ast.AST, prefix: str) -> None:
        nonlocal best
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if child.lineno <= line <= (child.end_lineno or child.lineno):
                    if not isinstance(child, ast.ClassDef):
                        best = name
                    visit(child, name + ".")

    if tree is not None:
        visit(tree, "")
    return best


def stub_source(text: str, where: str) -> tuple[str, list[list[str]]]:
    """Replace every solution region of Python source `text`; returns (stubbed text, the removed lines
    of each region)."""
    regions = find_regions(text, where)
    if not regions:
        return text, []
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        raise GraderError(f"{where} line {e.lineno}: the reference does not parse: {e.msg}") from None
    lines = text.splitlines(keepends=True)
    out, removed, pos = [], [], 0
    for r in regions:
        out.extend(lines[pos : r.begin])
        name = _enclosing(tree, r.begin + 1)
        what = f"{name} in {where}" if name else f"this part of {where}"
        out.append(f'{r.indent}raise NotImplementedError("TODO: implement {what}")\n')
        removed.append(lines[r.begin + 1 : r.end])
        pos = r.end + 1
    out.extend(lines[pos:])
    stubbed = "".join(out)
    try:
        ast.parse(stubbed)
    except SyntaxError as e:
        raise GraderError(
            f"{where}: the stubbed file does not parse (line {e.lineno}: {e.msg}); "
            "a solution region must sit inside a function body"
        ) from None
    return stubbed, removed


def stub_notebook(path: Path, where: str) -> tuple[str, list[list[str]]]:
    """The notebook at `path` with solution regions stubbed and every output cleared (as JSON text)."""
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as e:
        raise GraderError(f"{where}: not a readable notebook ({type(e).__name__}: {e})") from None
    removed: list[list[str]] = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            src, gone = (
                stub_source(cell.source, f"{where} cell {i + 1}") if "SOLUTION" in cell.source else (cell.source, [])
            )
            cell.source = src.rstrip("\n")
            removed += gone
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    return nbformat.writes(nb) + "\n", removed


def code_lines(text: str, suffix: str = ".py") -> list[str]:
    """The stripped, non-blank, non-comment lines of a .py file, or of a notebook's cells."""
    if suffix == ".ipynb":
        import json

        text = "\n".join(
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in json.loads(text)["cells"]
        )
    return [s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#")]


def line_pairs(lines: list[str]) -> set[tuple[str, str]]:
    """Consecutive pairs of lines: two solution lines in a row are a leak, one generic line is not."""
    return set(itertools.pairwise(lines))


def _copy_tree(src: Path, dst: Path, removed: list[list[str]], rel: Path) -> None:
    """Copy a package, stubbing the solution regions of its .py and .ipynb files."""
    for p in sorted(src.rglob("*")):
        if "__pycache__" in p.parts or p.suffix == ".pyc" or p.name.startswith(".ipynb_checkpoints"):
            continue
        target = dst / p.relative_to(src)
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        where = str(rel / p.relative_to(src))
        if p.suffix in (".py", ".ipynb"):
            text, gone = stub_source(p.read_text(), where) if p.suffix == ".py" else stub_notebook(p, where)
            target.write_text(text)
            removed += gone
        else:
            shutil.copy2(p, target)


STUDENT_MAKEFILE = """\
# Everyday commands for this assignment kit.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install grade report submit notebook notebooks
install: $(BIN)/grader    ## set up .venv (and bubblewrap, the sandbox your code is graded in, where you are root)
\t@bash tools/install-system-packages.sh
$(BIN)/grader: pyproject.toml
\t$(PY) -m venv $(VENV)
\t$(BIN)/pip install -q --upgrade pip
\t$(BIN)/pip install -e . jupyterlab
\ttouch $@

grade: install            ## grade your work (public checks), as the autograder will
\t$(BIN)/grader grade . $(ARGS)

report: install           ## grade, run your notebooks in the sandbox, and write grader-results/report.html (+ .pdf)
\t$(BIN)/grader grade . --report --pdf $(ARGS)

submit: install           ## build the zip to upload: make submit A=a1_knn
\t$(BIN)/grader submit . --assignment $(A)

notebook: install         ## open JupyterLab on the notebooks
\t$(BIN)/jupyter lab notebooks/

notebooks: notebook
"""


RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for each submission. AUTOGRADER_ROOT lets a test run it outside Gradescope.
set -u
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{GRADER_PYTHON:-$ROOT/venv/bin/python}}"
mkdir -p "$ROOT/results"
cd "$ROOT/source"
# --report: the notebooks run in the sandbox; report.html lands beside results.json, the answers to grade by
# hand in its extra_data
"$PYTHON" -m grader --course "$ROOT/source" grade "$ROOT/submission" --assignment {name} --hidden \\
    --report --out "$ROOT/results" --no-color
status=$?
if [ ! -s "$ROOT/results/results.json" ]; then
  # grading itself failed: still leave a results file that says so
  why="The autograder could not grade this submission (exit status $status). Please tell the course staff."
  printf '{{"score": 0, "output": "%s", "tests": []}}\\n' "$why" > "$ROOT/results/results.json"
fi
exit 0
"""

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image.
set -euo pipefail
# the kit needs Python 3.11 or newer (Gradescope's Ubuntu 22.04 image ships it in its universe repository);
# bubblewrap is the sandbox student code runs in (where Docker refuses namespaces, the grader falls back to an
# unprivileged user)
apt-get update -q && apt-get install -y -q python3.11 python3.11-venv bubblewrap
python3.11 -m venv /autograder/venv
/autograder/venv/bin/pip install -q --upgrade pip
/autograder/venv/bin/pip install -q /autograder/source
"""


def _student_readme(ms: list[Manifest]) -> str:
    rows = "\n".join(f"| `{m.name}` | {m.title} | {m.points:g} | {', '.join(f'`{f}`' for f in m.files)} |" for m in ms)
    return f"""# Course kit

Fill in the functions marked `TODO` (each raises `NotImplementedError` until you do), work through the
notebooks in `notebooks/`, and check yourself as you go.

```bash
make grade                      # set up (first time), then run the public checks on your code
make submit A={ms[0].name}        # build the zip to upload
```

| assignment | title | points | files you submit |
|---|---|---:|---|
{rows}

The public checks are a subset of what the autograder runs: hidden checks use the same code with other
inputs. Your code runs in a separate sandbox process, with a time limit per call; autograd
(`.backward()`, `torch.autograd`) is not allowed where you are asked to write backprop by hand.
"""


def release(kit: Path, out: Path, assignments: list[str] | None = None, force: bool = False) -> dict[str, Path]:
    """Write `out/student/` (the kit) and `out/autograder/<name>.zip` (one bundle per assignment)."""
    names = assignments or manifests.available(kit)
    ms = [manifests.load(n, kit) for n in names]
    out = out.resolve()
    if kit.resolve() == out:
        raise GraderError(f"--out {out}: must not be the course folder itself")
    final_student, final_bundles = out / "student", out / "autograder"
    for d in (final_student, final_bundles):
        if d.exists() and not force:
            raise GraderError(
                f"--out {out}: {d} already exists; pass --force to replace it (nothing there is overwritten otherwise)"
            )
    # build beside the destination, then swap in: a failed release leaves what was there untouched
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".release-", dir=out))
    try:
        student, bundles = staging / "student", staging / "autograder"
        _write_student_kit(kit, student, ms)
        built = {m.name: _bundle(student, m, bundles) for m in ms}
        for d, new in ((final_student, student), (final_bundles, bundles)):
            if d.exists():
                shutil.rmtree(d)
            new.rename(d)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    paths: dict[str, Path] = {"student kit": final_student}
    paths.update({f"autograder {n}": final_bundles / p.name for n, p in built.items()})
    return paths


def _write_student_kit(kit: Path, student: Path, ms: list[Manifest]) -> None:
    removed: list[list[str]] = []
    # the shared parts of the kit hold no solutions (and grader/ names the markers): copied as they are
    for rel in ("grader", "dlcv", "tools"):
        shutil.copytree(kit / rel, student / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for rel in ("pyproject.toml", ".gitignore"):
        if (kit / rel).is_file():
            shutil.copy2(kit / rel, student / rel)
    for m in ms:
        packages = sorted({p.module.split(".")[0] for p in m.parts})
        for pkg in packages:
            _copy_tree(kit / pkg, student / pkg, removed, Path(pkg))
        adir = student / "assignments" / m.name
        adir.mkdir(parents=True, exist_ok=True)
        for p in m.dir.iterdir():
            if p.is_file() and p.name not in _staff_only(m) and p.suffix in (".py", ".toml", ".md"):
                shutil.copy2(p, adir / p.name)
        for nb in m.notebooks:
            src = kit / nb
            if not src.is_file():
                raise GraderError(f"{m.dir / 'assignment.toml'}: notebook {nb} not found in {kit}")
            text, gone = stub_notebook(src, nb)
            (student / nb).parent.mkdir(parents=True, exist_ok=True)
            (student / nb).write_text(text)
            removed += gone
    (student / "Makefile").write_text(STUDENT_MAKEFILE)
    (student / "README.md").write_text(_student_readme(ms))
    wf = student / ".github" / "workflows" / "grade.yml"
    wf.parent.mkdir(parents=True, exist_ok=True)
    wf.write_text(GITHUB_WORKFLOW)
    verify_student_kit(student, removed, ms)


GITHUB_WORKFLOW = """\
name: grade
on: [push, workflow_dispatch]
permissions: {checks: write, actions: read, contents: read}
jobs:
  grade:
    runs-on: ubuntu-latest
    timeout-minutes: 60
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: {python-version: "3.11"}
      - run: make report ARGS="--device cpu --no-color"
      - if: always()
        run: cat grader-results/*/summary.md grader-results/summary.md >> "$GITHUB_STEP_SUMMARY" 2>/dev/null || true
      - if: always()
        id: points
        # each failed check as an annotation on your file and line (at most 10), and the points for GitHub Classroom
        run: .venv/bin/python -m grader.annotate grader-results
      - if: always() && steps.points.outputs.result != ''
        continue-on-error: true
        uses: classroom-resources/autograding-grading-reporter@v1
        env:
          GRADE_RESULTS: "${{ steps.points.outputs.result }}"
        with:
          runners: grade
      - if: always()
        uses: actions/upload-artifact@v4
        with:
          name: grade-report
          path: grader-results/
          if-no-files-found: ignore
"""


def _bundle(student: Path, m: Manifest, bundles: Path) -> Path:
    """A Gradescope autograder zip: setup.sh and run_autograder at its root; under source/ the student
    kit's code (stubs, so no solution ships) plus this assignment's checks, hidden ones included."""
    bundles.mkdir(parents=True, exist_ok=True)
    path = bundles / f"{m.name}.zip"
    wanted = {"grader", "dlcv", "pyproject.toml", "README.md", *{p.module.split(".")[0] for p in m.parts}}
    files = [
        (p, f"source/{p.relative_to(student).as_posix()}")
        for p in sorted(student.rglob("*"))
        if p.is_file() and p.relative_to(student).parts[0] in wanted
    ]
    files += [
        (p, f"source/assignments/{m.name}/{p.name}")
        for p in sorted(m.dir.iterdir())
        if p.is_file() and p.suffix in (".py", ".toml")
    ]
    # the notebooks as released (no solution, no output): the report takes the questions' prompts from them
    files += [(student / nb, f"source/{nb}") for nb in m.notebooks if (student / nb).is_file()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for script, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER.format(name=m.name))):
            info = zipfile.ZipInfo(script)
            info.external_attr = (stat.S_IFREG | 0o755) << 16
            zf.writestr(info, text)
        for p, arc in files:
            zf.write(p, arc)
    return path


def _staff_only(m: Manifest) -> set[str]:
    """Files of an assignment's folder that never ship to students: the hidden checks, and the oracles (the
    correct building blocks a composite is judged with again: some are plain solutions). The public checks take
    their expected values from modules of their own, never from the oracles."""
    return {*m.hidden_checks, ORACLES_FILE}


def verify_student_kit(student: Path, removed: list[list[str]], ms: list[Manifest]) -> None:
    """Refuse a student kit that still holds a solution marker, two consecutive lines of a solution
    region, or a hidden check file."""
    needles = set().union(*(line_pairs(code_lines("".join(r))) for r in removed)) if removed else set()
    for m in ms:
        for f in _staff_only(m):
            if (student / "assignments" / m.name / f).exists():
                raise GraderError(
                    f"release: staff-only file {f} of {m.name} (hidden checks, oracles) reached the student kit"
                )
    for p in student.rglob("*"):
        rel = p.relative_to(student)
        if not p.is_file() or rel.parts[0] == "grader" or p.suffix not in (".py", ".ipynb", ".md", ".toml"):
            continue
        text = p.read_text(errors="replace")
        if MARKER.search(text):
            raise GraderError(f"release: {rel} still holds a solution marker")
        leaked = needles & line_pairs(code_lines(text, p.suffix))
        if leaked:
            first = sorted(leaked)[0]
            raise GraderError(f"release: solution lines {first[0][:50]!r} / {first[1][:50]!r} leaked into {rel}")
