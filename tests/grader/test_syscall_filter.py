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
from tests.conftest import copy_submission, replace_function

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
def test_a_new_process_or_a_socket_ends_the_call_even_when_caught(sandbox, attack):
    a = b = __import__("torch").ones(3, 2)
    args = (a, b) if attack == "fork_and_catch" else ()
    with pytest.raises(SandboxError) as err:
        sandbox.call("pkg.attacks", attack, args, forbidden=["cdist"])
    assert err.value.kind == Failure.FORBIDDEN
    assert "start a process" in err.value.message and "network" in err.value.message
    assert sandbox.info["worker"]["syscall_filter"] == "loaded"
    # the next call gets a fresh worker, filtered as the first
    out = sandbox.call("pkg.attacks", "plain", (a, b)).value
    assert out.shape == (3, 3)
    assert sandbox.stats.starts == 2


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


def test_a_fork_costs_the_check_even_when_caught_and_the_answer_is_right(tmp_path):
    """End to end on A1: right no-loop distances, after a fork whose error is caught, lose the function's points,
    with feedback that says why; the other functions of the file are judged as usual."""
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
            a, b = x_test.flatten(1), x_train.flatten(1)
            return (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.t()
        """,
    )
    result = grade(sub, "a1_knn", device="cpu", parts=["knn"])
    mine = [c for c in result.checks if c.function == "compute_distances_no_loops"]
    assert mine and all(not c.passed for c in mine)
    assert all("start a process" in c.output or " os " in c.output for c in mine), mine[0].output
    others = [c for c in result.checks if c.function == "compute_distances_two_loops"]
    assert others and all(c.passed for c in others)
