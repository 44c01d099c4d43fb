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

from grader.course import manifest as manifests
from grader.course.manifest import Manifest
from grader.errors import GraderError
from grader.judge.opening import ORACLES_FILE

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


def stub_source(text: str, where: str, place: str | None = None) -> tuple[str, list[list[str]]]:
    """Replace every solution region of Python source `text`; returns (stubbed text, the removed lines
    of each region). `where` names the source in errors (for the staff); `place`, where given, in the stub's
    message (for the student: a notebook cell by its heading, as JupyterLab shows no cell numbers)."""
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
        what = f"{name} in {place or where}" if name else f"this part of {place or where}"
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
    heading = None  # the last Markdown heading above a cell: how a student finds it in JupyterLab
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            titles = [line.lstrip("#").strip() for line in cell.source.splitlines() if line.startswith("#")]
            heading = next((t for t in reversed(titles) if t), heading)
        if cell.cell_type == "code":
            place = f"{where}, the cell under the heading '{heading}'" if heading else None
            src, gone = (
                stub_source(cell.source, f"{where} cell {i + 1}", place)
                if "SOLUTION" in cell.source
                else (cell.source, [])
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
# Everyday commands for this assignment kit: `make help` lists them.
#   A=a1_knn         the assignment (grade, report, submit); PART=knn one part of it (grade)
#   ARGS="..."       more flags for the command, e.g. make submit A=a1_knn ARGS=--allow-incomplete
#   TORCH=cpu|cuda   which PyTorch `make install` gets (default: cuda only where nvidia-smi lists a GPU)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
A ?=
PART ?=
ARGS ?=
TORCH ?= auto
SELECT := $(if $(A),--assignment $(A)) $(foreach p,$(PART),--part $(p))
# JupyterLab refuses to start as root (containers, lab machines) unless told it may
AS_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: help install grade report submit notebook notebooks
help:                     ## list the commands
\t@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install: $(BIN)/grader    ## set up .venv (and bubblewrap, the sandbox your code is graded in, where you are root)
\t@bash tools/install-system-packages.sh
$(BIN)/grader: pyproject.toml
\t@echo "install: a virtual environment in $(VENV)"
\t@$(PY) -m venv $(VENV)
\t@$(BIN)/python -m pip install -q --upgrade pip
\t@bash tools/install-torch.sh $(BIN)/python $(TORCH)
\t@echo "install: the kit and JupyterLab"
\t@$(BIN)/python -m pip install -q -e . jupyterlab
\t@touch $@

grade: install            ## run the public checks: make grade A=a1_knn PART=knn (all of them without A)
\t$(BIN)/grader grade . $(SELECT) $(ARGS)

report: install           ## grade, run your notebooks in the sandbox: grader-results/<assignment>/report.html
\t$(BIN)/grader grade . --report --pdf $(SELECT) $(ARGS)

submit: install           ## build the zip to upload: make submit A=a1_knn
\t@test -n "$(A)" || { echo "make submit: which assignment? For example: make submit A=a1_knn" >&2; exit 2; }
\t$(BIN)/grader submit . --assignment $(A) $(ARGS)

# Kernels talk to JupyterLab over localhost TCP, encrypted (CurveZMQ) where pyzmq can: unencrypted, ipykernel warns
# at every kernel start that anyone on the machine could listen in. (Unix sockets would need short paths.)
notebook: install         ## open JupyterLab on the notebooks
\t$(BIN)/jupyter lab notebooks/ $(AS_ROOT) --KernelManager.transport_encryption=auto $(ARGS)

notebooks: notebook
"""


RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope copies this file to /autograder/run_autograder and runs it for every submission, from /autograder
# ("When the autograder executes, the working directory is /autograder"; "/autograder/source contains the
# extracted contents of your autograder zip file"; the student's files are in /autograder/submission; the result
# goes to /autograder/results/results.json). AUTOGRADER_ROOT lets a test run it somewhere else.
set -u
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{GRADER_PYTHON:-$ROOT/venv/bin/python}}"
status="none"
mkdir -p "$ROOT/results"
fallback() {{  # whatever happened, leave a results file: one that says grading failed, where grading wrote none
  if [ ! -s "$ROOT/results/results.json" ]; then
    why="The autograder could not grade this submission (exit status $status). Please tell the course staff."
    printf '{{"score": 0, "output": "%s", "tests": []}}\\n' "$why" > "$ROOT/results/results.json"
  fi
}}
trap fallback EXIT
# The platform's limit for one run (Gradescope's default: 10 minutes; [limits] platform_timeout in the manifest).
# Where the course raised it on Gradescope, set GRADER_PLATFORM_TIMEOUT to the same number of seconds.
LIMIT="${{GRADER_PLATFORM_TIMEOUT:-{limit}}}"
case "$LIMIT" in
  ''|*[!0-9]*) echo "run_autograder: GRADER_PLATFORM_TIMEOUT='$LIMIT' is not a number of seconds; using {limit}" >&2
               LIMIT={limit} ;;
esac
if [ "$LIMIT" -lt 90 ]; then
  echo "run_autograder: a platform limit of $LIMIT s leaves no time to grade; using 90 s" >&2
  LIMIT=90
fi
budget=$(( LIMIT - 40 ))   # grading, then the notebook report, inside it; the rest starts Python and writes below
cd "$ROOT"
# --report: the notebooks run in the sandbox too; report.html lands beside results.json, the answers to grade by
# hand in its extra_data. results.json is written as soon as grading ends, and again with the report.
timeout -k 10 "$(( budget + 20 ))" "$PYTHON" -m grader --course "$ROOT/source" grade "$ROOT/submission" \\
    --assignment {name} --hidden --report --deadline "$budget" --out "$ROOT/results" --no-color
status=$?
exit 0
"""

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image, with this zip's contents extracted into
# /autograder/source ("/autograder/source contains the extracted contents of your autograder zip file"): this file
# and the kit beside it. AUTOGRADER_ROOT lets a test build the image somewhere else.
set -euo pipefail
HERE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
# Python 3.11 or newer (Gradescope's Ubuntu 22.04 image has 3.11 in its universe repository) and bubblewrap, the
# sandbox student code runs in (where Docker refuses namespaces, the grader falls back to an unprivileged user), and
# libseccomp2, the library of the kernel filter that keeps graded code from starting processes (grader.sandbox.syscalls)
packages=(python3.11 python3.11-venv bubblewrap libseccomp2)
if command -v apt-get >/dev/null 2>&1; then
  install() {{ apt-get install -y -q --no-install-recommends "${{packages[@]}}" >/dev/null; }}
  install || {{ apt-get update -q >/dev/null && install; }} \\
    || echo "setup.sh: warning: apt-get could not install ${{packages[*]}}" >&2
fi
PY=""
for candidate in python3.11 python3.12 python3.13 python3; do
  if command -v "$candidate" >/dev/null 2>&1 \\
      && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PY="$(command -v "$candidate")"; break
  fi
done
[ -n "$PY" ] || {{ echo "setup.sh: no Python 3.11 or newer could be installed" >&2; exit 1; }}
"$PY" -m venv "$ROOT/venv"
VPY="$ROOT/venv/bin/python"
"$VPY" -m pip install -q --upgrade pip
# PyTorch's CPU-only build (where the default one brings GB of CUDA libraries to an image that only ever runs on a
# CPU), pinned as the kit's pyproject.toml pins it, by the kit's own installer: it looks at PyTorch's index first
# (5 s at most) and takes the default index's build, saying so, where that index cannot be reached
(cd "$HERE" && TORCH_CPU_INDEX="${{TORCH_CPU_INDEX:-{cpu_index}}}" bash tools/install-torch.sh "$VPY" cpu)
"$VPY" -m pip install -q "$HERE"
# the image is usable: the grader imports and reads this assignment's manifest
"$VPY" -m grader --course "$HERE" list -a {name} >/dev/null
echo "setup.sh: the autograder for {name} is installed ($("$VPY" -c 'import torch; print("torch", torch.__version__)'))"
"""

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _student_readme(ms: list[Manifest]) -> str:
    def row(m: Manifest) -> str:
        hand = sum(q.points for q in m.questions)
        files = ", ".join(f"`{f}`" for f in m.files)
        notebooks = ", ".join(f"`{nb}`" for nb in m.notebooks)
        parts = ", ".join(f"`{p.name}`" for p in m.parts)
        return f"| `{m.name}` | {m.title} | {parts} | {m.points:g} + {hand:g} | {files} | {notebooks} |"

    rows = "\n".join(row(m) for m in ms)
    first = ms[0]
    part = first.parts[-1].name
    return f"""# Course kit

Each assignment is a Python package with functions marked `TODO` (each raises `NotImplementedError` until you
write it) and notebooks in `notebooks/` that walk you through them. You write the code, the notebooks show you
what it does, and the grader checks it the way the autograder will. The notebooks' inline questions are graded
by hand (the points after the `+` below): you submit the notebooks run and saved, with your answers in them.

| assignment | title | parts | points (code + by hand) | files you write | notebooks |
|---|---|---|---:|---|---|
{rows}

## 1. Set up (once)

```bash
make install        # .venv with PyTorch, the kit and JupyterLab (a few minutes the first time)
```

Without an NVIDIA GPU this installs PyTorch's CPU-only build, a fraction of the size of the CUDA one; a laptop is
enough for every assignment. `make install TORCH=cuda` asks for the CUDA build. Every other command runs
`make install` first when it is needed. Measured on a two-core machine: with the CUDA build, `.venv` takes
5.9 GB, 3.2 GB of it NVIDIA's CUDA libraries, and the install about 5 minutes; the CPU-only build leaves those
libraries out. Where PyTorch's CPU index cannot be reached, the install says so and takes the default build.

## 2. Work through a notebook

```bash
make notebook       # JupyterLab on notebooks/ (as root too)
```

Write a function in the package (for example `{first.files[0]}`), then run the notebook's cells: its self-checks
print `Correct: True` or say what is wrong. The notebook reloads your code, so there is no need to restart it.

## 3. Check one part, read the feedback, fix, repeat

```bash
make grade A={first.name} PART={part}    # one part; A={first.name} alone for the whole assignment
make grade ARGS=--verbose               # every assignment, each check's time as it finishes
```

Each failed check says what it called, what it expected and what it found, and often the likely bug. The results
are also written to `grader-results/<assignment>/` (`summary.md`, `results.json`, `junit.xml`).

## 4. The rules

Your code runs in a sandbox, in a process of its own, with a time limit per call. Each graded file starts with a
docstring that lists what each function may not use (for example `torch.cdist` where you write distances yourself,
and autograd everywhere you write backprop by hand) and how many loops it may run; the feedback names any rule you
broke, with the line, and the modules the file may import. `.venv/bin/grader list --rules -a {first.name}` prints
the same rules with the reason for each. The grader runs your code on a CPU: take the device from your inputs
(`x.device`), never write `"cuda"` (except where a function's docstring asks you to move tensors to the GPU
yourself, as `mm_on_gpu` does: without a GPU the grader reads that code instead of running it).

## 5. The report

```bash
make report A={first.name}    # grades and runs your notebooks: grader-results/{first.name}/report.html (+ .pdf)
```

The report shows your notebooks as the staff will see them, with your answers to the inline questions.

## 6. Submit

What is graded: the files you write (by the autograder, as in step 3, plus hidden checks that use other inputs)
and your notebooks, **run and saved with their outputs**: the inline questions in them (`*Your answer:*` cells)
are graded by hand (the points after the `+` above).

```bash
make submit A={first.name}                           # builds {first.name}_submission_<date-time>.zip to upload
make submit A={first.name} ARGS=--allow-incomplete   # the same with functions still unwritten
```

`make submit` refuses a zip with unwritten functions and warns about notebooks that were never run or questions
left unanswered.
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
# GitHub Classroom takes the points from a workflow named "Autograding Tests" whose one job is run-autograding-tests
# (the names of the workflow Classroom itself writes): keep both. Add no tests in Classroom's autograding settings,
# which would write a second workflow of that name.
name: Autograding Tests
on: [push, workflow_dispatch, repository_dispatch]
# read-only: the checkout reads the repository; the reporter hands the points over as annotations (no checks: write)
permissions: {actions: read, contents: read}
jobs:
  run-autograding-tests:
    if: github.actor != 'github-classroom[bot]'  # Classroom's own commits (the repository's creation): not graded
    runs-on: ubuntu-latest
    timeout-minutes: 60
    steps:
      - uses: actions/checkout@v4
      # setup-python's pip cache ("searching for a dependency file (requirements.txt or pyproject.toml for pip)
      # ... and uses its hash as a part of the cache key"): PyTorch is downloaded once, not on every push
      - uses: actions/setup-python@v5
        with: {python-version: "3.11", cache: pip, cache-dependency-path: pyproject.toml}
      # make install picks PyTorch's CPU-only build here (no GPU on GitHub's runners): no CUDA libraries
      - run: make report ARGS="--device cpu --no-color"
      - if: always()
        run: cat grader-results/*/summary.md grader-results/summary.md >> "$GITHUB_STEP_SUMMARY" 2>/dev/null || true
      - if: always()
        id: points
        # each failed check as an annotation on your file and line (at most 10), and the points for GitHub Classroom
        run: .venv/bin/python -m grader.reports.annotate grader-results
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
    """A Gradescope autograder zip. Gradescope's contract: "The file must contain at least two files in the root of
    the archive: setup.sh ... run_autograder", and "/autograder/source contains the extracted contents of your
    autograder zip file". So both scripts sit at the zip's root, beside the kit they install: the student kit's code
    (stubs, so no solution ships) plus this assignment's checks, hidden ones and oracles included."""
    bundles.mkdir(parents=True, exist_ok=True)
    path = bundles / f"{m.name}.zip"
    wanted = {"grader", "dlcv", "tools", "pyproject.toml", "README.md", *{p.module.split(".")[0] for p in m.parts}}
    files = [
        (p, p.relative_to(student).as_posix())
        for p in sorted(student.rglob("*"))
        if p.is_file() and p.relative_to(student).parts[0] in wanted
    ]
    files += [
        (p, f"assignments/{m.name}/{p.name}")
        for p in sorted(m.dir.iterdir())
        if p.is_file() and p.suffix in (".py", ".toml")
    ]
    # the notebooks as released (no solution, no output): the report takes the questions' prompts from them
    files += [(student / nb, nb) for nb in m.notebooks if (student / nb).is_file()]
    scripts = {
        "setup.sh": SETUP_SH.format(name=m.name, cpu_index=TORCH_CPU_INDEX),
        "run_autograder": RUN_AUTOGRADER.format(name=m.name, limit=int(m.platform_timeout)),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for script, text in scripts.items():
            info = zipfile.ZipInfo(script)
            info.external_attr = (stat.S_IFREG | 0o755) << 16
            zf.writestr(info, text)
        for p, arc in files:
            zf.write(p, arc)
    return path


PROBES_FILE = "probes.py"  # the guard's probes of an assignment's forbidden names (staff's tests)


def _staff_only(m: Manifest) -> set[str]:
    """Files of an assignment's folder that never ship to students: the hidden checks, the oracles (the
    correct building blocks a composite is judged with again: some are plain solutions), and the guard's probes
    of its forbidden names (the course's own tests, tests/grader/test_guard.py). The public checks take their
    expected values from modules of their own, never from the oracles."""
    return {*m.hidden_checks, ORACLES_FILE, PROBES_FILE}


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
