"""The command line: wrong options get a clear error and exit status 2; nothing is left half-written."""

import json

import pytest

from grader.cli import main
from tests.conftest import ROOT, copy_submission, replace_function


@pytest.mark.parametrize(
    "argv, message",
    [
        (["grade", ".", "-a", "a9"], "unknown assignment 'a9'"),
        (["grade", "missing-folder", "-a", "a1_knn"], "missing-folder does not exist"),
        (["grade", ".", "-a", "a1_knn", "--part", "nope"], "--part: ['nope'] not in a1_knn"),
        (["grade", ".", "-a", "a1_knn", "--timeout", "0"], "--timeout: expected a positive number"),
        (["grade", ".", "-a", "a1_knn", "--deadline", "-1"], "--deadline: expected a positive number of seconds"),
        (["grade", ".", "-a", "a1_knn", "--deadline", "5", "--report"], "--deadline 5: too short to grade a1_knn"),
        (["submit", ".", "-a", "a9"], "unknown assignment 'a9'"),
        (["list", "--rules", "-a", "a9"], "unknown assignment 'a9'"),
        (["list", "--docstring"], "--docstring: only with --rules"),
    ],
)
def test_bad_options_are_named(argv, message, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_list_rules_prints_what_each_function_may_not_use_and_why(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["list", "--rules", "-a", "a1_knn"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("a1_knn: ") and "compute_distances_no_loops\n      loops: none\n" in out
    assert "torch.cdist" in out and "a3_networks" not in out


def test_cuda_is_refused_where_there_is_none(capsys, monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.chdir(ROOT)
    assert main(["grade", ".", "-a", "a1_knn", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_argparse_rejects_unknown_choices(capsys):
    with pytest.raises(SystemExit) as info:
        main(["grade", ".", "--device", "tpu"])
    assert info.value.code == 2 and "invalid choice: 'tpu'" in capsys.readouterr().err


def test_one_part_graded_to_json_and_files(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out"
    assert main(["grade", ".", "-a", "a1_knn", "--part", "warmup", "--format", "json", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)  # stdout is pure JSON
    assert printed["score"] == pytest.approx(60)
    assert json.loads((out / "results.json").read_text())["score"] == pytest.approx(60)
    assert "<testsuite" in (out / "junit.xml").read_text()
    assert "60 / 60" in (out / "summary.md").read_text()


def test_a_part_without_an_assignment_grades_the_assignment_that_has_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # the course's tree holds every assignment: only A1 has a part named warmup
    out = tmp_path / "out"
    assert main(["grade", ".", "--part", "warmup", "--format", "json", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == pytest.approx(60)
    tests = json.loads((out / "results.json").read_text())["tests"]
    assert tests and all("[a1.warmup." in t["name"] for t in tests)
    assert [p.name for p in out.iterdir() if p.is_dir()] == []  # one assignment: its results in --out itself


def test_results_land_in_one_place_for_each_assignment_by_default(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # grader-results/ is made here
    assert main(["--course", str(ROOT), "grade", str(ROOT), "-a", "a1_knn", "--part", "warmup"]) == 0
    assert json.loads((tmp_path / "grader-results" / "a1_knn" / "results.json").read_text())["tests"]
    assert not (tmp_path / "grader-results" / "results.json").exists()
    assert "grader-results/a1_knn/results.json" in capsys.readouterr().out


def test_grading_a_working_tree_reminds_once_of_notebooks_never_run_and_questions_unanswered(tmp_path, capsys):
    import nbformat

    sub = copy_submission(tmp_path / "sub")
    (sub / "notebooks").mkdir()
    for nb in ("pytorch101.ipynb", "knn.ipynb"):
        node = nbformat.read(ROOT / "notebooks" / nb, as_version=4)
        for cell in node.cells:  # as released: no outputs, questions not answered
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(node, sub / "notebooks" / nb)
    out = tmp_path / "out"
    assert main(["--course", str(ROOT), "grade", str(sub), "-a", "a1_knn", "--part", "warmup", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("Before you submit (graded by hand, not in the score above):") == 1
    assert "notebooks/pytorch101.ipynb has no outputs" in err and "notebooks/knn.ipynb has no outputs" in err
    assert "inline question" in err
    # the autograder's run (hidden checks) says nothing of the kind
    assert (
        main(
            [
                "--course",
                str(ROOT),
                "grade",
                str(sub),
                "-a",
                "a1_knn",
                "--part",
                "warmup",
                "--hidden",
                "--out",
                str(tmp_path / "out2"),
            ]
        )
        == 0
    )
    assert "Before you submit" not in capsys.readouterr().err
    # after `grade --report`, which ran copies of the notebooks: the reminder says the student's files are unchanged
    from grader import cli

    cli._remind(sub, ["a1_knn"], ROOT, report=True)
    err = capsys.readouterr().err
    assert "(the report ran copies of your notebooks; your own files are unchanged)" in err and "has no outputs" in err


def test_a_part_no_assignment_has_is_refused_with_each_assignments_parts(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["grade", ".", "--part", "knnn", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--part knnn: no assignment here has this part" in err
    assert "a1_knn: warmup, knn" in err and "a2_linear: linear, two_layer" in err
    assert not (tmp_path / "out").exists()


def test_fail_under_sets_the_exit_status(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    sub = copy_submission(tmp_path / "sub")
    replace_function(
        sub / "a1_knn/pytorch101.py",
        "create_tensor_of_pi",
        """
        def create_tensor_of_pi(M, N):
            return torch.full((M, N), 3.0)
        """,
    )
    args = ["grade", str(sub), "-a", "a1_knn", "--part", "warmup", "--out", str(tmp_path / "out")]
    assert main([*args, "--fail-under", "90"]) == 0  # 57 of 60 points is 95%
    assert main([*args, "--fail-under", "96"]) == 1


# -- a bad submission still ends in complete reports -----------------------------------------------------------


def _reports(out):
    import xml.etree.ElementTree as ET

    from tests.grader.gradescope_schema import validate

    results = json.loads((out / "results.json").read_bytes().decode("utf-8"))
    validate(results)
    ET.parse(out / "junit.xml")
    return results, (out / "summary.md").read_bytes().decode("utf-8")


def _corrupt(tmp_path):
    import zipfile

    z = tmp_path / "s.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a1_knn/knn.py", "A = 1 # the submitted text\n")
    z.write_bytes(z.read_bytes().replace(b"submitted text", b"submitted TEXT"))
    return z, "could not be unpacked"


def _collision(tmp_path):
    import zipfile

    z = tmp_path / "s.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a1_knn/knn.py", "A = 1\n")
        zf.writestr("a1_knn/knn.py/evil.py", "B = 1\n")
    return z, "both a file and a folder"


def _dot(tmp_path):
    import zipfile

    z = tmp_path / "s.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(".", "x")
    return z, "entry '.'"


def _not_a_zip(tmp_path):
    z = tmp_path / "s.zip"
    z.write_bytes(b"PK\x03\x04 and then nothing")
    return z, "not a readable zip archive"


@pytest.mark.parametrize("build", [_corrupt, _collision, _dot, _not_a_zip])
def test_a_bad_archive_scores_zero_with_complete_reports(tmp_path, capsys, monkeypatch, build):
    monkeypatch.chdir(ROOT)
    z, words = build(tmp_path)
    out = tmp_path / "out"
    assert main(["grade", str(z), "-a", "a1_knn", "--out", str(out), "--no-color"]) == 0
    results, summary = _reports(out)
    assert results["score"] == 0 and results["tests"]
    assert all(t["status"] == "failed" and words in t["output"] and "s.zip" in t["output"] for t in results["tests"])
    assert words in results["output"] and words in summary
    assert words in capsys.readouterr().out


def test_a_symlink_to_the_reference_scores_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    sub = copy_submission(tmp_path / "sub")
    (sub / "a1_knn/knn.py").unlink()
    (sub / "a1_knn/knn.py").symlink_to(ROOT / "a1_knn/knn.py")
    out = tmp_path / "out"
    assert main(["grade", str(sub), "-a", "a1_knn", "--part", "knn", "--out", str(out)]) == 0
    results, summary = _reports(out)
    message = "a1_knn/knn.py is a symbolic link; links are not followed, so the file counts as missing."
    assert results["score"] == 0
    assert all(t["status"] == "failed" and message in t["output"] for t in results["tests"])
    assert message in results["output"] and message in summary


@pytest.mark.parametrize(
    "source, words",
    [
        ("x = " + "+".join(["1"] * 100_000) + "\n", "too deeply nested"),
        ("BIG = '" + "a" * 2_500_000 + "'\n", "a graded file may hold at most 1,048,576 bytes"),
    ],
    ids=["deep_expression", "huge_literal"],
)
def test_hostile_sources_yield_complete_results(tmp_path, monkeypatch, source, words):
    monkeypatch.chdir(ROOT)
    sub = copy_submission(tmp_path / "sub")
    knn = sub / "a1_knn/knn.py"
    knn.write_text(knn.read_text() + "\n" + source)
    out = tmp_path / "out"
    assert main(["grade", str(sub), "-a", "a1_knn", "--part", "knn", "--out", str(out)]) == 0
    results, _summary = _reports(out)
    assert results["score"] == 0
    tests = results["tests"]
    assert all(t["status"] == "failed" for t in tests)
    if words.startswith("too deeply nested"):  # a syntax error: in full under the first check, then named
        assert words in tests[0]["output"]
        assert all("has a syntax error (shown in full under the first of its checks)" in t["output"] for t in tests[1:])
    else:
        assert all(words in t["output"] for t in tests)
    assert words in results["output"]


def test_hostile_output_from_student_code_keeps_every_report_valid(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    sub = copy_submission(tmp_path / "sub")
    replace_function(
        sub / "a1_knn/knn.py",
        "compute_distances_two_loops",
        r"""
        def compute_distances_two_loops(x_train, x_test):
            raise ValueError("\udcff\x00\x1b[2J\x1b[H\x1b]0;owned\x07 cleared\n```\n## A1: 100 / 100\n```\n"
                             "<script>x</script>")
        """,
    )
    out = tmp_path / "out"
    assert main(["grade", str(sub), "-a", "a1_knn", "--part", "knn", "--out", str(out), "--no-color"]) == 0
    printed = capsys.readouterr().out
    results, summary = _reports(out)
    assert results["score"] == pytest.approx(34)
    assert "\x1b" not in printed and "\x1b" not in summary and "\x00" not in summary
    assert [line for line in summary.split("\n") if line.startswith("## ")] == [
        "## A1: PyTorch warm-up and k-nearest neighbours: 34 / 40"
    ]
    assert "cleared" in summary and "cleared" in printed


def test_a_missing_submission_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out"
    assert main(["grade", str(tmp_path / "nope.zip"), "-a", "a1_knn", "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err and not out.exists()


def test_the_library_names_its_parameters_and_only_the_command_names_flags(capsys, monkeypatch):
    from grader.errors import GraderError
    from grader.judge.runner import grade

    monkeypatch.chdir(ROOT)
    with pytest.raises(GraderError) as info:
        grade(ROOT, "a1_knn", parts=["nope"])
    assert info.value.option == "parts" and str(info.value).startswith("parts: ['nope'] not in a1_knn")
    assert main(["grade", ".", "-a", "a1_knn", "--part", "nope"]) == 2
    assert "error: --part: ['nope'] not in a1_knn" in capsys.readouterr().err


def test_no_room_below_the_command_line_writes_a_flag_into_an_error():
    import ast

    for room in ("course", "sandbox", "judge", "reports", "notebooks"):
        for path in sorted((ROOT / "grader" / room).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "GraderError" and node.args:
                    first = node.args[0]
                    text = first.values[0] if isinstance(first, ast.JoinedStr) and first.values else first
                    literal = text.value if isinstance(text, ast.Constant) and isinstance(text.value, str) else ""
                    assert not literal.startswith("--"), f"{path.relative_to(ROOT)}:{node.lineno} names a flag"


def test_code_that_asks_for_cuda_is_told_the_grader_runs_on_a_cpu(tmp_path, monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the code would run")
    from grader.judge.runner import grade

    sub = copy_submission(tmp_path / "sub")
    replace_function(
        sub / "a1_knn/pytorch101.py",
        "create_tensor_of_pi",
        """
        def create_tensor_of_pi(M, N):
            return torch.full((M, N), 3.14, device="cuda")
        """,
    )
    result = grade(sub, "a1_knn", parts=["warmup"], kit=ROOT)
    check = next(c for c in result.checks if c.function == "create_tensor_of_pi")
    assert not check.passed
    assert "The grader runs your code on a CPU: it asked for CUDA" in check.output, check.output
    assert "device=x.device" in check.output


def test_a_syntax_error_is_shown_once_in_full_then_named(tmp_path):
    from grader.judge.runner import grade

    sub = copy_submission(tmp_path / "sub")
    path = sub / "a1_knn/pytorch101.py"
    path.write_text(path.read_text() + "\ndef broken(:\n    pass\n")
    result = grade(sub, "a1_knn", parts=["warmup"], kit=ROOT)
    outputs = [c.output for c in result.checks]
    assert len(outputs) > 3 and not any(c.passed for c in result.checks)
    full = [o for o in outputs if "so none of its functions can run" in o]
    assert len(full) == 1 and outputs[0] == full[0] and "line" in full[0]
    assert all(
        "a1_knn/pytorch101.py has a syntax error (shown in full under the first of its checks)" in o
        for o in outputs[1:]
    )


def test_a_closed_pipe_ends_the_listing_quietly():
    """`grader list | head`: the reader goes away; no traceback, exit status 0."""
    import subprocess
    import sys

    p = subprocess.Popen(
        [sys.executable, "-m", "grader", "--course", str(ROOT), "list", "--hidden", "--rules"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    p.stdout.close()  # nobody reads: the first write meets a closed pipe
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
