"""A report's notebooks, each in a fresh sandboxed kernel, with the next notebook's kernel started while the one
before runs (grader.notebooks.execute) where the machine has room for two: two CPUs or more and a kernel's memory
free, read from the CPU affinity, /proc/meminfo and the cgroup limits a platform sets (grader.sandbox.process.
headroom). A kernel started ahead runs nothing of the student's before its own notebook, sees nothing of the
notebook before it, and none outlives the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from grader.notebooks import execute
from grader.notebooks.execute import Limits, execute_notebooks
from grader.notebooks.kernel import KernelSandbox
from grader.sandbox.isolation import IsolationError, detect_isolation
from tests.conftest import ROOT, processes_with
from tests.emulation import cgroups

pytestmark = pytest.mark.slow


def _isolation(mode: str):
    try:
        return detect_isolation(want=mode)
    except IsolationError as e:
        pytest.skip(f"the {mode!r} isolation is not available here: {e}")


FIRST = [
    "import os, time\nSECRET_OF_THE_FIRST = 4711",
    "open('left_by_the_first.txt', 'w').write('x')\nopen('/tmp/left_by_the_first.txt', 'w').write('x')",
    "time.sleep(3)",
]
SECOND = [
    "import json, os\n"
    "print('RESULT ' + json.dumps({'variable': 'SECRET_OF_THE_FIRST' in globals(), "
    "'cwd_file': os.path.exists('left_by_the_first.txt'), 'tmp_file': os.path.exists('/tmp/left_by_the_first.txt'), "
    "'pid': os.getpid()}))",
]


def _notebook(base: Path, name: str, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    path = base / name
    nbformat.write(nb, str(path))
    return path


def _result(run) -> dict:
    text = "".join(
        o.get("text", "") for c in run.nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream"
    )
    line = next((t for t in text.splitlines() if t.startswith("RESULT ")), None)
    assert line, f"no result from the kernel: {run.summary()} {text[-2000:]}"
    return json.loads(line[len("RESULT ") :])


class Events:
    """What the kernels did, in order: ("start", sandbox), ("done", sandbox); and the sandboxes' folders."""

    def __init__(self, monkeypatch) -> None:
        self.log: list[tuple[str, int]] = []
        self.folders: list[str] = []
        start, done = KernelSandbox.start, execute._Kernels.done
        events = self

        async def spy_start(sandbox):
            events.log.append(("start", id(sandbox)))
            if str(sandbox._tmp) not in events.folders:
                events.folders.append(str(sandbox._tmp))
            await start(sandbox)

        def spy_done(kernels, sandbox):
            events.log.append(("done", id(sandbox)))
            done(kernels, sandbox)

        monkeypatch.setattr(KernelSandbox, "start", spy_start)
        monkeypatch.setattr(execute._Kernels, "done", spy_done)


def _run(base: Path, mode: str, ahead: bool | None, extra: dict[str, Path] | None = None):
    root = base / "kit"
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    files = {
        "notebooks/first.ipynb": _notebook(base, "first.ipynb", FIRST),
        "notebooks/second.ipynb": _notebook(base, "second.ipynb", SECOND),
        **(extra or {}),
    }
    manifest = types.SimpleNamespace(notebooks=list(files))
    return execute_notebooks(
        manifest,
        root,
        files,
        _isolation(mode),
        lim=Limits(cell_timeout=120, notebook_timeout=400),
        ahead=ahead,
    )


def test_the_next_kernel_starts_while_the_notebook_before_runs(tmp_path, monkeypatch):
    mode = "bwrap"
    events = Events(monkeypatch)
    first, second = _run(tmp_path, mode, ahead=True)
    assert first.status == second.status == "ran", (first.summary(), second.summary())
    assert not first.cells and not second.cells, (first.summary(), second.summary())
    # the second notebook's kernel started before the first notebook's kernel ended, in a sandbox of its own
    (_, a), (_, b) = events.log[0], events.log[1]
    assert events.log[:4] == [("start", a), ("start", b), ("done", a), ("done", b)], events.log
    assert a != b
    assert (first.kernel_ahead, second.kernel_ahead) == (False, True)
    assert second.summary()["kernel_ahead"] is True and second.kernel_starts == 1
    got = _result(second)
    assert got["variable"] is False  # a fresh kernel: nothing of the notebook before
    assert got["cwd_file"] is False and got["tmp_file"] is False, got  # its own working folder and /tmp
    for folder in events.folders:  # no kernel outlives the report, the one started ahead included
        assert not processes_with(folder), folder
        assert not Path(folder).exists()


def test_one_kernel_at_a_time_under_the_user_fallback_even_when_asked(tmp_path, monkeypatch):
    """Without bubblewrap a notebook's code runs as the same user as the next kernel, with the host's /tmp: it
    could reach that kernel before the judge connects, so no kernel starts ahead there."""
    events = Events(monkeypatch)
    first, second = _run(tmp_path, "user", ahead=True)
    assert first.status == second.status == "ran"
    assert not second.kernel_ahead
    (_, a) = events.log[0]
    assert events.log == [("start", a), ("done", a), ("start", a), ("done", a)], events.log


def test_one_kernel_at_a_time_where_there_is_no_room_for_two(tmp_path, monkeypatch):
    """Gradescope's default container (half a CPU, 768 MB): the notebooks run one after the other, each kernel
    started when its notebook comes."""
    from grader.sandbox import process

    events = Events(monkeypatch)
    monkeypatch.setattr(process, "headroom", lambda: (0.5, 700.0))
    first, second = _run(tmp_path, "bwrap", ahead=None)
    assert first.status == second.status == "ran"
    (_, a) = events.log[0]
    assert events.log == [("start", a), ("done", a), ("start", a), ("done", a)], events.log
    assert not first.kernel_ahead and not second.kernel_ahead
    assert _result(second)["variable"] is False


def test_a_kernel_started_for_a_notebook_that_cannot_run_does_not_outlive_the_report(tmp_path, monkeypatch):
    """The kernel started ahead for the last notebook, which turns out unreadable: never used, ended with the
    report, its folder gone."""
    events = Events(monkeypatch)
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{ not json")
    files = {
        "notebooks/first.ipynb": _notebook(tmp_path, "first.ipynb", FIRST),
        "notebooks/broken.ipynb": broken,
    }
    root = tmp_path / "kit"
    (root / "notebooks").mkdir(parents=True)
    runs = execute_notebooks(
        types.SimpleNamespace(notebooks=list(files)),
        root,
        files,
        _isolation("bwrap"),
        lim=Limits(cell_timeout=120, notebook_timeout=400),
        ahead=True,
    )
    assert [r.status for r in runs] == ["ran", "unreadable"]
    assert [e for e, _ in events.log] == ["start", "start", "done"], events.log  # the spare: started, never run
    for folder in events.folders:
        assert not processes_with(folder), folder
        assert not Path(folder).exists()


HEADROOM = "from grader.sandbox.process import headroom; import json; print(json.dumps(headroom()))"


def _headroom_in(limited: cgroups.Limited | None, prefix: list[str] | None = None) -> tuple[float, float]:
    out = subprocess.run(
        [*(prefix or []), sys.executable, "-c", HEADROOM],
        preexec_fn=limited.join if limited else None,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    cpus, memory = json.loads(out.stdout)
    return cpus, memory


def test_headroom_reads_the_cpu_and_memory_limits_a_platform_sets():
    """`docker run --cpus 0.5 --memory 768m` (Gradescope's default, emulated with a cgroup): half a CPU and less
    than 768 MB, so no second kernel; a generous cgroup leaves the machine's own CPUs; an affinity of one CPU is
    one CPU."""
    why = cgroups.available()
    if why:
        pytest.skip(why)
    platform = cgroups.Limited(cpus=0.5, memory_mb=768)
    try:
        cpus, memory = _headroom_in(platform)
    finally:
        platform.remove()
    assert cpus == pytest.approx(0.5)
    assert 0 < memory <= 768
    wide = cgroups.Limited(cpus=64.0, memory_mb=1 << 20)
    try:
        cpus, memory = _headroom_in(wide)
    finally:
        wide.remove()
    assert cpus == len(os.sched_getaffinity(0))
    assert memory > 768
    cpus, _ = _headroom_in(None, ["taskset", "-c", str(min(os.sched_getaffinity(0)))])
    assert cpus == 1
