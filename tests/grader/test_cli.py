"""The command line: wrong options get a clear error and exit status 2; nothing is left half-written."""

import json

import pytest

from grader.cli import main
from tests.conftest import ROOT, copy_submission, replace_function


@pytest.mark.parametrize("argv, message", [
    (["grade", ".", "-a", "a9"], "unknown assignment 'a9'"),
    (["grade", "missing-folder", "-a", "a1_knn"], "missing-folder does not exist"),
    (["grade", ".", "-a", "a1_knn", "--part", "nope"], "--part: ['nope'] not in a1_knn"),
    (["grade", ".", "-a", "a1_knn", "--timeout", "0"], "--timeout: expected a positive number"),
    (["submit", ".", "-a", "a9"], "unknown assignment 'a9'"),
])
def test_bad_options_are_named(argv, message, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


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
    printed = json.loads(capsys.readouterr().out)          # stdout is pure JSON
    assert printed["score"] == pytest.approx(60)
    assert json.loads((out / "results.json").read_text())["score"] == pytest.approx(60)
    assert "<testsuite" in (out / "junit.xml").read_text()
    assert "60 / 60" in (out / "summary.md").read_text()


def test_fail_under_sets_the_exit_status(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    sub = copy_submission(tmp_path / "sub")
    replace_function(sub / "a1_knn/pytorch101.py", "create_tensor_of_pi", """
        def create_tensor_of_pi(M, N):
            return torch.full((M, N), 3.0)
        """)
    args = ["grade", str(sub), "-a", "a1_knn", "--part", "warmup", "--out", str(tmp_path / "out")]
    assert main(args + ["--fail-under", "90"]) == 0      # 57 of 60 points is 95%
    assert main(args + ["--fail-under", "96"]) == 1
