"""Gradings opened ahead (grader.judge.runner.Ahead, open_grading): the next assignment's worker starts while one
is graded, and an opened grading serves the grading it was opened for and no other."""

import os

import pytest

from grader.errors import GraderError
from grader.judge import opening, runner
from grader.judge.opening import open_grading
from grader.judge.runner import Ahead, grade
from tests.conftest import ROOT, copy_submission, replace_function

NAMES = ["a1_knn", "a4_rnn"]
FIRST = {"a1_knn": ["warmup"], "a4_rnn": ["rnn"]}  # a part of each, to keep the test short


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_the_next_assignments_worker_starts_while_one_is_graded_and_ends_with_the_gradings():
    seen = []
    with Ahead(ROOT, NAMES, device="cpu") as ahead:
        first = ahead.grade("a1_knn", parts=FIRST["a1_knn"], on_result=lambda r: seen.append(ahead._next))
        assert seen[0] is not None and seen[0].key.assignment == "a4_rnn"  # opened once the first check was in
        assert all(s is seen[0] for s in seen)  # and only once
        waiting = ahead._next.sandbox
        pid = waiting.proc.pid
        assert waiting.proc.poll() is None and waiting.stats.starts == 1  # its worker is running already
        second = ahead.grade("a4_rnn", parts=FIRST["a4_rnn"])
        assert ahead._next is None  # the last assignment opens nothing
        assert _gone(pid)  # the worker ended with its grading
    assert first.score == first.max_score > 0 and second.score == second.max_score > 0
    assert second.sandbox["worker_starts"] == 1  # the worker started ahead graded it: no second start


def test_an_opened_grading_never_serves_another_submission(tmp_path):
    """Opened for a broken copy, handed to the grading of the reference: closed unused, and the reference is graded
    from its own files (full marks), never from the copy's."""
    broken = copy_submission(tmp_path / "broken")
    replace_function(
        broken / "a1_knn" / "pytorch101.py", "create_sample_tensor", "def create_sample_tensor():\n    return None\n"
    )
    key = opening.grading_key(broken, "a1_knn", kit=ROOT, device="cpu")
    opened = open_grading(key)
    pid = opened.sandbox.proc.pid
    result = grade(ROOT, "a1_knn", device="cpu", parts=["warmup"], opened=opened)
    assert result.score == result.max_score > 0
    assert _gone(pid) and not opened.staged.root.exists()  # closed: its worker and its staged copy are gone
    # and the copy, graded as itself, fails: the opened grading was the copy's
    mine = grade(broken, "a1_knn", device="cpu", parts=["warmup"], opened=open_grading(key))
    assert mine.score < mine.max_score


def test_an_error_opening_the_next_grading_is_reported_by_that_grading(monkeypatch):
    """What goes wrong while the next grading is opened ahead (here: staging refused) is not the current grading's
    error: the current one ends normally, and the next grading opens again and reports it."""
    real = opening.open_grading

    def refuse_a4(key, *manifest):
        if key.assignment == "a4_rnn":
            raise GraderError("refused for the test", option="submission")
        return real(key, *manifest)

    monkeypatch.setattr(opening, "open_grading", refuse_a4)  # opening ahead
    monkeypatch.setattr(runner, "open_grading", refuse_a4)  # and grade() itself
    with Ahead(ROOT, NAMES, device="cpu") as ahead:
        first = ahead.grade("a1_knn", parts=FIRST["a1_knn"])
        assert first.score == first.max_score and ahead._next is None
        with pytest.raises(GraderError, match="refused for the test"):
            ahead.grade("a4_rnn", parts=FIRST["a4_rnn"])


SETUP_SPY = """
import sys
from grader.sandbox.host import Sandbox
seen = []
send = Sandbox._send

def spy(self, req, *args, **kwargs):
    if req.get("op") == "setup":  # the worker's configuration: its process runs already
        seen.append(("torch" in sys.modules, self.proc is not None and self.proc.poll() is None))
    return send(self, req, *args, **kwargs)

Sandbox._send = spy
from grader.cli import main
code = main(["grade", sys.argv[1], "--assignment", "a1_knn", "--part", "warmup", "--out", sys.argv[2]])
print(code, seen)
"""


def test_grader_grade_starts_its_worker_before_the_judge_imports_pytorch(tmp_path):
    """`grader grade` opens its first grading (manifest, staging, the worker's process) before the judge imports
    PyTorch for its checks, so the two imports of PyTorch run side by side: when the judge sends the worker its
    configuration, the worker's process runs and the judge has not imported PyTorch."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", SETUP_SPY, str(ROOT), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "0 [(False, True)]", out.stdout[-2000:]


def test_auto_means_the_cpu_without_pytorch_where_no_gpu_device_file_is_there():
    """`--device auto` is decided before the judge imports PyTorch where no GPU can be there (no NVIDIA, WSL or
    ROCm device file); `cuda` asked for on such a machine is refused by PyTorch's own answer."""
    import subprocess
    import sys

    if any(os.path.exists(f) for f in opening.GPU_DEVICE_FILES):
        pytest.skip("a GPU device file is here: auto asks PyTorch")
    code = (
        "import sys; from grader.judge.opening import resolve_device; "
        "print(resolve_device('auto'), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["cpu", "False"]
    with pytest.raises(GraderError, match="no CUDA device is available"):
        opening.resolve_device("cuda")


def test_an_interrupt_while_the_judge_loads_pytorch_ends_the_opened_grading(monkeypatch, tmp_path):
    """`grader grade` opens its first grading before it imports the runner (PyTorch, seconds): a Ctrl-C in that
    while ends the worker and removes the staged copy and the cgroup, as an interrupt later does."""
    import sys
    import types

    from grader import cli

    seen = []
    real = opening.open_ahead
    monkeypatch.setattr(opening, "open_ahead", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])

    class Interrupted(types.ModuleType):
        def __getattr__(self, name):
            if name != "Ahead":
                raise AttributeError(name)
            raise KeyboardInterrupt  # Ctrl-C while `import torch` runs for the runner

    monkeypatch.setitem(sys.modules, "grader.judge.runner", Interrupted("grader.judge.runner"))
    with pytest.raises(KeyboardInterrupt):
        cli.main(["grade", str(ROOT), "--assignment", "a1_knn", "--device", "cpu", "--out", str(tmp_path / "out")])
    assert seen and seen[0] is not None
    sandbox = seen[0].sandbox
    assert sandbox.proc is None and not seen[0].staged.root.exists() and not sandbox._cgroup.dirs


def test_a_cgroup_left_open_is_removed_when_the_judge_exits(tmp_path):
    """A grading that never closed (the judge interrupted, its exception printed): the cgroup's processes are
    killed and its folders removed when the process exits, not left in /sys/fs/cgroup."""
    import subprocess
    import sys

    if os.getuid() != 0:
        pytest.skip("cgroups are made by root only")
    code = (
        "from grader.sandbox.process import Cgroup; import subprocess; "
        "c = Cgroup('grader-test-exit', 16, 1 << 30); print(*c.dirs); "
        "subprocess.Popen(['sleep', '60'], preexec_fn=c.join)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    made = out.stdout.split()
    assert made, out.stderr  # this machine lets root make cgroups
    assert not any(os.path.exists(d) for d in made)
