"""The kernel's filter on the worker (grader.sandbox.syscalls): graded code can start no process, run no program,
open no network socket and start no thread, in bubblewrap and in the `user` fallback, even where it catches the
error. Each attack did its forbidden work where the guard could not see it (a child process, a fresh interpreter,
another thread) and scored full marks before the filter."""

from __future__ import annotations

import sys
import textwrap

import pytest

from grader.judge.runner import grade
from grader.sandbox.host import Sandbox
from grader.sandbox.isolation import (
    Failure,
    IsolationError,
    SandboxConfig,
    SandboxError,
    detect_isolation,
    python_readable_by_others,
)
from tests.conftest import copy_submission, course_allowing, replace_function

ATTACKS = textwrap.dedent("""
    import os, socket, subprocess, sys, threading
    import torch

    def fork_and_catch(a, b):
        # the child computes where the guard's record stays in the child's memory; the error is caught
        try:
            r, w = os.pipe()
            if os.fork() == 0:
                os.write(w, b"1"); os._exit(0)
            return torch.cdist(a, b) ** 2
        except BaseException:
            return "caught"

    def fresh_interpreter():
        try:
            return subprocess.run([sys.executable, "-c", "print(2)"], capture_output=True).stdout
        except BaseException:
            return "caught"

    def shell():
        try:
            return os.system("true")
        except BaseException:
            return "caught"

    def network():
        try:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            return "opened"
        except BaseException:
            return "caught"

    def outside_thread(a, b):
        out = []
        t = threading.Thread(target=lambda: out.append(torch.cdist(a, b) ** 2))
        t.start()
        t.join()
        return out[0]

    def plain(a, b):
        return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
""")


def _isolation_or_skip(mode: str) -> None:
    try:
        detect_isolation(want=mode)
    except IsolationError as e:
        pytest.skip(f"{mode} isolation is not possible here: {e}")
    if mode == "user" and not python_readable_by_others(sys.executable):
        pytest.skip("this Python is installed where an unprivileged user cannot read it (e.g. under /root)")


@pytest.fixture(params=["bwrap", "user"])
def sandbox(request, tmp_path):
    _isolation_or_skip(request.param)
    root = tmp_path / "kit"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "attacks.py").write_text(ATTACKS)
    cfg = SandboxConfig(
        root=root, student_files=["pkg/attacks.py"], call_timeout=30, isolation=request.param, guarded=["cdist"]
    )
    with Sandbox(cfg) as sb:
        yield sb


@pytest.mark.parametrize("attack", ["fork_and_catch", "fresh_interpreter", "shell", "network"])
def test_a_new_process_or_a_socket_is_stopped_even_when_caught(sandbox, attack):
    """Python's own process calls are refused first by the audit hook (grader.sandbox.audit: recorded, the file
    fails); a socket, which it does not watch, is stopped by the kernel's filter (the worker is killed)."""
    a = b = __import__("torch").ones(3, 2)
    args = (a, b) if attack == "fork_and_catch" else ()
    try:
        value = sandbox.call("pkg.attacks", attack, args, forbidden=["cdist"]).value
    except SandboxError as e:
        assert e.kind == Failure.FORBIDDEN
        assert "start a process" in e.message and "network" in e.message
    else:
        assert value == "caught"
        assert sandbox.refusals and sandbox.refusals[0]["file"] == "pkg/attacks.py", sandbox.refusals
        assert "process" in sandbox.refusals[0]["what"] or "program" in sandbox.refusals[0]["what"]
    assert sandbox.info["worker"]["syscall_filter"] == "loaded"
    out = sandbox.call("pkg.attacks", "plain", (a, b)).value  # the grading goes on
    assert out.shape == (3, 3)


FILTERED = textwrap.dedent("""
    import os, socket, sys, threading
    sys.path.insert(0, sys.argv[1])
    from grader.sandbox.syscalls import load_filter
    load_filter()
    what = sys.argv[2]
    try:
        if what == "fork":
            os.fork()
        elif what == "exec":
            os.execv("/bin/true", ["true"])
        elif what == "socket":
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        elif what == "thread":
            threading.Thread(target=print).start()
        elif what == "unix":
            socket.socket(socket.AF_UNIX).close()
    except BaseException as e:
        print(type(e).__name__, e)
        sys.exit(3)
    print("done")
""")


@pytest.mark.parametrize(
    "what, killed, said",
    [
        ("fork", True, ""),
        ("exec", True, ""),
        ("socket", True, ""),
        ("thread", False, "can't start new thread"),
        ("unix", False, "PermissionError"),
    ],
)
def test_the_kernel_filter_itself(tmp_path, what, killed, said):
    """The filter alone, under no audit hook: what Python's calls cannot be caught doing."""
    import signal
    import subprocess

    from tests.conftest import ROOT

    script = tmp_path / "filtered.py"
    script.write_text(FILTERED)
    proc = subprocess.run([sys.executable, str(script), str(ROOT), what], capture_output=True, text=True, timeout=120)
    if killed:
        assert proc.returncode == -signal.SIGSYS, (proc.returncode, proc.stdout, proc.stderr)
    else:
        assert said in proc.stdout, (proc.returncode, proc.stdout, proc.stderr)


def test_no_thread_can_be_started_to_work_outside_the_guard(sandbox):
    import torch

    with pytest.raises(SandboxError) as err:
        sandbox.call("pkg.attacks", "outside_thread", (torch.ones(3, 2), torch.ones(3, 2)), forbidden=["cdist"])
    assert err.value.kind == Failure.EXCEPTION
    assert "can't start new thread" in err.value.message
    assert "thread" in err.value.message and "graded code" in err.value.message


def test_the_filter_is_loaded_before_student_code_and_reported(sandbox):
    sandbox.call("pkg.attacks", "plain", (__import__("torch").ones(2, 2), __import__("torch").ones(2, 2)))
    assert sandbox.info["worker"]["syscall_filter"] == "loaded"


def test_a_fork_costs_the_file_even_when_caught_and_the_answer_is_right(tmp_path):
    """End to end on A1: right no-loop distances, after a fork whose error is caught, cost every function of
    knn.py its points, with feedback that says why; the other file keeps its points. The course allows `os` here,
    so that the run-time walls, not the static scan's import rule, are what is tested."""
    _isolation_or_skip("bwrap")
    sub = copy_submission(tmp_path / "sub")
    replace_function(
        sub / "a1_knn" / "knn.py",
        "compute_distances_no_loops",
        """
        def compute_distances_no_loops(x_train, x_test):
            import os
            try:
                if os.fork() == 0:
                    os._exit(0)
            except BaseException:
                pass
            a, b = x_train.flatten(1), x_test.flatten(1)
            return (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.t()
        """,
    )
    course = course_allowing(tmp_path / "course", "a1_knn", ["os"])  # else the static scan refuses it first
    result = grade(sub, "a1_knn", device="cpu", kit=course)
    knn = [c for c in result.checks if c.part == "knn"]
    assert knn and all(not c.passed for c in knn)
    assert all("starts a process (os.fork)" in c.output for c in knn), knn[0].output
    assert knn[0].output.count("os.fork") == 1  # said once, however many checks called it
    warmup = [c for c in result.checks if c.part == "warmup"]
    assert warmup and all(c.passed for c in warmup)
