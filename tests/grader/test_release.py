"""Release: stubbing solution regions, the student kit, the autograder bundle, and grader submit."""

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.course import manifest
from grader.errors import GraderError
from grader.judge.loading import load_checks
from grader.judge.runner import grade
from grader.kit.release import code_lines, find_regions, line_pairs, release, stub_notebook, stub_source
from grader.kit.submit import build_submission
from tests.conftest import ROOT
from tests.grader.gradescope_schema import validate

REFERENCE = '''\
def f(x):
    """Docstring stays."""
    out = None
    # TODO: square x.
    # BEGIN SOLUTION
    out = x * x
    # END SOLUTION
    return out


class K:
    def g(self):
        # BEGIN SOLUTION
        return 42
        # END SOLUTION
'''


def test_regions_become_stubs_naming_the_function():
    text, removed = stub_source(REFERENCE, "m.py")
    assert "x * x" not in text and "return 42" not in text
    assert 'raise NotImplementedError("TODO: implement f in m.py")' in text
    assert 'raise NotImplementedError("TODO: implement K.g in m.py")' in text
    assert "Docstring stays." in text and "# TODO: square x." in text
    assert [[ln.strip() for ln in r] for r in removed] == [["out = x * x"], ["return 42"]]
    ns = {}
    exec(compile(text, "m.py", "exec"), ns)
    with pytest.raises(NotImplementedError, match="implement f"):
        ns["f"](3)


def test_a_notebook_stub_names_the_heading_above_its_cell_not_a_cell_number(tmp_path):
    """JupyterLab numbers no cells: a student finds a cell by the heading above it."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# The title\n\nSome words."),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("## 2. Choosing k\n\nMore words, # not a heading."),
        nbformat.v4.new_markdown_cell("Words without a heading."),
        nbformat.v4.new_code_cell("# TODO: choose k.\n# BEGIN SOLUTION\nk = 3\n# END SOLUTION"),
        nbformat.v4.new_code_cell(
            "def g():\n    # TODO: return 1.\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION"
        ),
    ]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    text, removed = stub_notebook(path, "notebooks/nb.ipynb")
    cells = nbformat.reads(text, as_version=4).cells
    assert cells[4].source.endswith(
        'raise NotImplementedError("TODO: implement this part of notebooks/nb.ipynb, the cell under the heading '
        "'2. Choosing k'\")"
    )
    assert "TODO: implement g in notebooks/nb.ipynb, the cell under the heading '2. Choosing k'" in cells[5].source
    assert "cell 5" not in text and "cell 6" not in text and len(removed) == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("def f():\n    # BEGIN SOLUTION\n    pass\n", "line 2: '# BEGIN SOLUTION' is never closed"),
        ("def f():\n    # END SOLUTION\n", "line 2: '# END SOLUTION' without"),
        ("def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n", "line 3: '# BEGIN SOLUTION' inside"),
        ("def f():\n    # BEGIN SOLUTION\n    x = 1\n  # END SOLUTION\n", "indented differently"),
        ("def f():\n    x = 1  # BEGIN SOLUTION\n", "must stand alone"),
    ],
)
def test_malformed_markers_name_the_file_and_line(text, message):
    with pytest.raises(GraderError, match=re.escape(message)):
        find_regions(text, "pkg/m.py")


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    paths = release(ROOT, out)
    return out, paths


def solution_pairs():
    """Every two consecutive code lines of every solution region of the reference."""
    pairs = set()
    for m in (manifest.load(n, ROOT) for n in manifest.available(ROOT)):
        for f in m.files:
            _, removed = stub_source((ROOT / f).read_text(), f)
            for region in removed:
                pairs |= line_pairs(code_lines("".join(region)))
    return pairs


def test_no_solution_text_and_no_hidden_check_reaches_the_student_kit(released):
    out, _ = released
    student = out / "student"
    needles = solution_pairs()
    assert needles, "the reference should have solution regions"
    hidden_ids = set()
    for name in manifest.available(ROOT):
        m = manifest.load(name, ROOT)
        hidden_ids |= {s.id for s in load_checks(m, hidden=True) if s.hidden}
        assert not any((student / "assignments" / name / h).exists() for h in m.hidden_checks)
        # the oracles (correct building blocks, some of them plain solutions) stay with the staff
        assert not (student / "assignments" / name / "oracles.py").exists()
        if (m.dir / "oracles.py").is_file():
            with zipfile.ZipFile(released[1][f"autograder {name}"]) as zf:
                assert f"assignments/{name}/oracles.py" in zf.namelist()
    assert hidden_ids
    for p in student.rglob("*"):
        if p.is_file() and p.suffix in (".py", ".ipynb", ".toml", ".md", ".yml"):
            text = p.read_text()
            leaked = needles & line_pairs(code_lines(text, ".ipynb" if p.suffix == ".ipynb" else ".py"))
            assert not leaked, f"{sorted(leaked)[:3]} leaked into {p}"
            for h in hidden_ids:
                assert h not in text, f"hidden check {h} named in {p}"
            if p.suffix == ".ipynb":
                nb = json.loads(text)
                assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


def test_the_student_kit_imports_and_scores_zero_without_a_traceback(released):
    out, _ = released
    student = out / "student"
    for name in manifest.available(ROOT):
        result = grade(student, name, device="cpu", kit=student)
        assert result.score == 0 and result.max_score == pytest.approx(100)
        for c in result.checks:
            assert "Traceback" not in c.output and "could not judge" not in c.output, c.output
        assert any("not implemented yet" in c.output for c in result.checks)
    with pytest.raises(GraderError, match="hidden"):
        grade(student, "a1_knn", hidden=True, kit=student)


def test_the_autograder_bundle_grades_like_gradescope(released, tmp_path):
    """Gradescope's layout ("/autograder/source contains the extracted contents of your autograder zip file";
    run_autograder is copied to /autograder and runs from there), with this test's Python instead of the image's
    venv: tests/platforms builds the image with setup.sh itself."""
    out, paths = released
    bundle = paths["autograder a1_knn"]
    ag = tmp_path / "ag"
    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
        assert "setup.sh" in names and "run_autograder" in names
        assert "assignments/a1_knn/hidden.py" in names and "pyproject.toml" in names
        assert "bubblewrap" in zf.read("setup.sh").decode()  # the sandbox is installed with the image
        zf.extractall(ag / "source")
    (ag / "run_autograder").write_bytes((ag / "source" / "run_autograder").read_bytes())
    sub = ag / "submission"
    sub.mkdir()
    for f in ("a1_knn/knn.py", "a1_knn/pytorch101.py"):  # a flat upload, as Gradescope stores it
        (sub / Path(f).name).write_text((ROOT / f).read_text())
    env = {**os.environ, "AUTOGRADER_ROOT": str(ag), "GRADER_PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(ag / "run_autograder")], cwd=ag, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads((ag / "results" / "results.json").read_text())
    from grader.sandbox.isolation import detect_isolation

    if not detect_isolation().strong:  # hidden checks are refused without an OS sandbox, with a results file
        assert results["score"] == 0 and "without an OS sandbox" in proc.stderr
        return
    validate(results)
    assert results["score"] == pytest.approx(100)
    assert any(t["visibility"] == "after_published" for t in results["tests"])  # hidden checks ran
    assert results["extra_data"]["sandbox"]["isolation"]["mode"] in ("bwrap", "user")  # never weaker, with hidden


def test_the_student_kit_installs_the_sandbox_where_it_can(released):
    out, _ = released
    kit = out / "student"
    assert (kit / "tools" / "install-system-packages.sh").is_file()
    assert "bash tools/install-system-packages.sh" in (kit / "Makefile").read_text()


def test_release_refuses_to_overwrite_without_force(released):
    out, _ = released
    with pytest.raises(GraderError, match="already exists; pass --force"):
        release(ROOT, out)


def test_submit_builds_the_zip_and_refuses_an_incomplete_one(released, tmp_path):
    out, _ = released
    zip_path = build_submission(ROOT, "a1_knn", kit=ROOT, out=tmp_path / "sub.zip")
    with zipfile.ZipFile(zip_path) as zf:
        assert set(zf.namelist()) == {
            "a1_knn/knn.py",
            "a1_knn/pytorch101.py",
            "notebooks/pytorch101.ipynb",
            "notebooks/knn.ipynb",
        }
    with pytest.raises(GraderError, match="already exists"):
        build_submission(ROOT, "a1_knn", kit=ROOT, out=tmp_path / "sub.zip")
    student = out / "student"
    with pytest.raises(GraderError, match=r"not implemented yet[\s\S]*compute_distances_no_loops"):
        build_submission(student, "a1_knn", kit=student, out=tmp_path / "kit.zip")
    assert not (tmp_path / "kit.zip").exists()
    assert build_submission(student, "a1_knn", kit=student, out=tmp_path / "kit.zip", allow_incomplete=True)


def test_run_autograder_always_leaves_a_results_file(released, tmp_path):
    """A platform limit that is not a number (or a command in disguise) falls back to the manifest's; a grader that
    cannot even start still leaves a results.json that says so."""
    _, paths = released
    with zipfile.ZipFile(paths["autograder a1_knn"]) as zf:
        script = zf.read("run_autograder").decode()
    (tmp_path / "run_autograder").write_text(script)
    marker = tmp_path / "pwned"
    env = {
        **os.environ,
        "AUTOGRADER_ROOT": str(tmp_path),
        "GRADER_PYTHON": "/bin/false",
        "GRADER_PLATFORM_TIMEOUT": f"a[$(touch {marker})]",
    }
    proc = subprocess.run(["bash", str(tmp_path / "run_autograder")], env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and "not a number of seconds; using 600" in proc.stderr
    assert not marker.exists()
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert results["score"] == 0 and "could not grade this submission (exit status 1)" in results["output"]
