"""The same isolation promises, kept by both sandboxed processes that run student code: the grading worker
(grader.sandbox.host.Sandbox) and a notebook's kernel (grader.notebooks.kernel.KernelSandbox), both started,
confined and ended by grader.sandbox.process. From inside each: a file outside its working folder cannot be
written, a protected file (in `hide`) cannot be read, the network is refused, and a process it starts in a session
of its own does not outlive close().

These are the operating system's walls, so the worker runs here without its own (walls=False: no seccomp filter,
audit hook or import rule, which would stop the probes before they reach the OS; test_syscall_filter.py and
test_audit.py test those)."""

from __future__ import annotations

import json
import socket
import time
import types
from pathlib import Path

import nbformat
import pytest

from grader.notebooks.execute import Limits, execute_notebooks
from grader.sandbox.host import Sandbox
from grader.sandbox.isolation import IsolationError, SandboxConfig, detect_isolation
from tests.conftest import processes_with

SECRET = "the-course-secret-4711"

PROBES = '''
import os, socket, subprocess, sys, time

def write(path):
    try:
        with open(path, "w") as f:
            f.write("tampered")
        return "written"
    except OSError as e:
        return f"refused: {type(e).__name__}"

def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return f"refused: {type(e).__name__}"

def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "connected"
    except OSError as e:
        return f"refused: {type(e).__name__}"

def spawn(marker):
    """A process in a session of its own that would run forever; whether it is alive a moment later."""
    p = subprocess.Popen([sys.executable, "-c", "import time\\nwhile True: time.sleep(0.1)", marker],
                         start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return p.poll() is None
'''


def _isolation(mode: str):
    try:
        return detect_isolation(want=mode)
    except IsolationError as e:
        pytest.skip(f"the {mode!r} isolation is not available here: {e}")


class Setup:
    """A staged tree, a protected file outside it, a folder beside it, and a local listener."""

    def __init__(self, base: Path, mode: str) -> None:
        self.mode = mode
        self.root = base / "kit"
        (self.root / "pkg").mkdir(parents=True)
        (self.root / "pkg" / "__init__.py").write_text("")
        (self.root / "pkg" / "given.py").write_text("GIVEN = 1\n")
        (self.root / "pkg" / "probes.py").write_text(PROBES)
        self.course = base / "course"  # readable by anyone but for `hide`
        self.course.mkdir()
        self.course.chmod(0o755)
        (self.course / "hidden.py").write_text(f"ANSWER = {SECRET!r}\n")
        (self.course / "hidden.py").chmod(0o644)
        self.outside = base / "outside"
        self.outside.mkdir()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.marker = f"isolation-both-{time.time_ns()}"
        inside_root = "/sandbox/kit" if mode == "bwrap" else str(self.root)
        self.targets = {
            "given": f"{inside_root}/pkg/given.py",
            "in_tree": f"{inside_root}/escaped.txt",
            "outside": str(self.outside / "escaped.txt"),
        }

    def probes(self) -> list[tuple[str, str, tuple]]:
        """(name, function, arguments) of every probe."""
        port = self.listener.getsockname()[1]
        return [
            *[(f"write_{k}", "write", (p,)) for k, p in self.targets.items()],
            ("write_own", "write", ("own.txt",)),  # its working folder: allowed (the probe itself works)
            ("read_hidden", "read", (str(self.course / "hidden.py"),)),
            ("connect_local", "connect", ("127.0.0.1", port)),
            ("connect_outside", "connect", ("1.1.1.1", 80)),
            ("spawn", "spawn", (self.marker,)),
        ]

    def untouched(self) -> bool:
        return (
            (self.root / "pkg" / "given.py").read_text() == "GIVEN = 1\n"
            and not (self.root / "escaped.txt").exists()
            and not (self.outside / "escaped.txt").exists()
        )


def _in_worker(s: Setup) -> dict:
    cfg = SandboxConfig(
        root=s.root,
        student_files=["pkg/probes.py"],
        call_timeout=60,
        startup_timeout=180,
        isolation=s.mode,
        hide=[str(s.course)],
        walls=False,
    )
    with Sandbox(cfg) as sb:
        got = {name: sb.call("pkg.probes", fn, args).value for name, fn, args in s.probes()}
        got["alive_before_close"] = bool(processes_with(s.marker))
    return got


def _in_kernel(s: Setup, base: Path) -> dict:
    calls = ", ".join(f"{name!r}: {fn}(*{list(args)!r})" for name, fn, args in s.probes())
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(PROBES),
        nbformat.v4.new_code_cell(f"import json\nprint('RESULT ' + json.dumps({{{calls}}}))"),
    ]
    path = base / "probe.ipynb"
    nbformat.write(nb, str(path))
    manifest = types.SimpleNamespace(notebooks=["notebooks/probe.ipynb"])
    (run,) = execute_notebooks(
        manifest,
        s.root,
        {"notebooks/probe.ipynb": path},
        detect_isolation(want=s.mode),
        hide=[str(s.course)],
        lim=Limits(cell_timeout=120, notebook_timeout=400),
    )
    assert run.status == "ran", run.summary()
    text = "".join(o.get("text", "") for o in run.nb.cells[1].get("outputs", []) if o.get("output_type") == "stream")
    line = next((t for t in text.splitlines() if t.startswith("RESULT ")), None)
    assert line, f"no result from the kernel: {run.summary()} {text[-2000:]}"
    return json.loads(line[len("RESULT ") :])


@pytest.fixture(scope="module", params=["worker-bwrap", "kernel-bwrap", "worker-user", "kernel-user"])
def outcome(request, tmp_path_factory):
    kind, mode = request.param.split("-")
    _isolation(mode)
    base = tmp_path_factory.mktemp(f"both-{kind}-{mode}")
    s = Setup(base, mode)
    try:
        got = _in_worker(s) if kind == "worker" else _in_kernel(s, base)
        deadline = time.monotonic() + 10
        while processes_with(s.marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        got["left_after_close"] = processes_with(s.marker)
        got["untouched"] = s.untouched()
        yield got
    finally:
        s.listener.close()


def test_a_file_outside_its_working_folder_cannot_be_written(outcome):
    assert outcome["write_own"] == "written", outcome  # the probe can write where it may
    for k in ("given", "in_tree", "outside"):
        assert outcome[f"write_{k}"].startswith("refused"), (k, outcome)
    assert outcome["untouched"]


def test_a_protected_file_cannot_be_read(outcome):
    assert outcome["read_hidden"].startswith("refused") and SECRET not in outcome["read_hidden"], outcome


def test_the_network_is_refused(outcome):
    assert outcome["connect_local"].startswith("refused"), outcome  # a listener on the judge's own loopback
    assert outcome["connect_outside"].startswith("refused"), outcome


def test_a_process_started_in_a_new_session_does_not_outlive_close(outcome):
    assert outcome["spawn"] is True, outcome  # it was running while the sandbox was
    assert outcome.get("alive_before_close", True)
    assert outcome["left_after_close"] == [], outcome
