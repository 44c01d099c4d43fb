"""The sandbox worker: results come back, and every way student code can fail is contained."""

import textwrap
import time

import pytest
import torch

from grader.sandbox.host import Sandbox
from grader.sandbox.isolation import Failure, SandboxConfig, SandboxError

STUDENT = """
import os, sys, torch
from torch import cdist
print("printed at import")

def matmul(a, b):
    print("printed in a call")
    return a @ b

def uses_cdist(a, b):
    return cdist(a, b)

def uses_norm_method(a):
    return a.norm()

def hang():
    while True:
        pass

def hard_exit():
    os._exit(0)

def soft_exit():
    sys.exit(3)

def memory_bomb():
    return torch.ones(2**40, dtype=torch.uint8)

def list_bomb():
    return [1] * (2**36)

def raises():
    return {}["missing"]

def reads_stdin():
    return input()

def mutate(x):
    x[0] = 5
    return x

def returns_object():
    return object()

def claims_a_timeout():
    # the worker's code runs beside this one: make its next failure reply say "timeout" (once)
    import sys
    worker = sys.modules["grader.sandbox.worker"]
    real = worker._error_reply

    def lying(e, files):
        worker._error_reply = real
        return {**real(e, files), "kind": "timeout"}

    worker._error_reply = lying
    raise ValueError("boom")


class Counter:
    def __init__(self, start):
        self.n = start
    def add(self, k):
        self.n += k
        return self.n
"""


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("kit")
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "student.py").write_text(STUDENT)
    (root / "pkg" / "exits.py").write_text("import os\nos._exit(0)\n")
    (root / "pkg" / "broken.py").write_text("import torch\nraise ValueError('bad import')\n")
    cfg = SandboxConfig(
        root=root,
        student_files=["pkg/student.py", "pkg/exits.py", "pkg/broken.py"],
        guarded=["torch.cdist", "torch.Tensor.norm"],
        call_timeout=3,
        memory_mb=512,
    )
    with Sandbox(cfg) as sb:
        yield sb


def test_values_come_back_and_prints_do_not_break_the_protocol(sandbox):
    r = sandbox.call("pkg.student", "matmul", (torch.ones(2, 3), torch.ones(3, 4)))
    assert torch.equal(r.value, torch.full((2, 4), 3.0)) and r.seconds > 0
    assert "printed in a call" in sandbox.output_since(0)


def test_forbidden_calls_are_recorded_even_through_import_time_aliases(sandbox):
    a, b = torch.randn(3, 2), torch.randn(4, 2)
    hits = sandbox.call("pkg.student", "uses_cdist", (a, b), forbidden=["torch.cdist"]).forbidden_hits
    assert hits and hits[0]["name"] == "torch.cdist" and hits[0]["file"] == "student.py"
    assert sandbox.call("pkg.student", "uses_cdist", (a, b)).forbidden_hits == []  # allowed elsewhere
    assert sandbox.call("pkg.student", "uses_norm_method", (a,), forbidden=["torch.Tensor.norm"]).forbidden_hits


def test_mutation_and_aliasing_are_reported(sandbox):
    x = torch.zeros(3)
    r = sandbox.call("pkg.student", "mutate", (x,), return_args=True)
    assert r.aliases == [0] and r.args[0][0] == 5
    assert x[0] == 0  # the judge's tensor is never touched


def test_objects_stay_in_the_worker_as_handles(sandbox):
    h = sandbox.call("pkg.student", "Counter", (10,)).value
    assert h.type == "Counter"
    assert sandbox.call(None, "add", (5,), handle=h).value == 15
    assert sandbox.call(None, "add", (1,), handle=h).value == 16
    assert sandbox.call("pkg.student", "returns_object").value.type == "object"


@pytest.mark.parametrize(
    "fn, kind, text",
    [
        ("raises", "exception", "missing"),
        ("reads_stdin", "exception", "EOF"),
        ("soft_exit", "exit", "3"),
        ("hard_exit", "exit", "exit code 0"),
        ("memory_bomb", "exception", "allocate"),
        ("list_bomb", "exception", ""),
        ("hang", "timeout", "time limit"),
    ],
)
def test_failures_are_contained_and_the_next_call_works(sandbox, fn, kind, text):
    t0 = time.perf_counter()
    with pytest.raises(SandboxError) as info:
        sandbox.call("pkg.student", fn)
    assert info.value.kind == kind and text in info.value.message
    assert time.perf_counter() - t0 < 30
    # grading goes on: a call after the failure works (in a fresh worker where needed)
    assert sandbox.call("pkg.student", "matmul", (torch.ones(1, 1), torch.ones(1, 1))).value.item() == 1


def test_a_failure_kind_the_worker_may_not_claim_is_refused_as_a_protocol_error(sandbox):
    with pytest.raises(SandboxError) as info:
        sandbox.call("pkg.student", "claims_a_timeout")
    assert info.value.kind == Failure.PROTOCOL == "protocol"
    with pytest.raises(ValueError):
        SandboxError("tiemout", "a kind that is not a Failure is a bug in the grader")


def test_a_student_frame_is_named_in_exceptions(sandbox):
    with pytest.raises(SandboxError) as info:
        sandbox.call("pkg.student", "raises")
    assert info.value.type_name == "KeyError"
    assert info.value.where[-1]["file"] == "student.py" and info.value.where[-1]["function"] == "raises"


def test_import_failures_are_remembered_so_they_cost_one_worker(sandbox):
    for module, kind in (("pkg.exits", "exit"), ("pkg.broken", "exception")):
        starts = sandbox.stats.starts
        for _ in range(3):
            with pytest.raises(SandboxError) as info:
                sandbox.call(module, "anything")
            assert info.value.kind == kind
        assert sandbox.stats.starts - starts <= 1


def test_the_worker_is_isolated(sandbox):
    sandbox.call("pkg.student", "matmul", (torch.ones(1, 1), torch.ones(1, 1)))
    assert sandbox.info["worker"]["memory_limited"] is True
    assert "network_isolated" in sandbox.info["worker"]
    assert sandbox.info["isolation"]["mode"] in ("bwrap", "user", "none")


def test_the_worker_cannot_write_outside_its_working_folder(tmp_path):
    import os
    import sys

    from grader.sandbox.isolation import python_readable_by_others

    if os.getuid() != 0:
        pytest.skip("privileges are dropped only when the judge runs as root")
    from grader.sandbox.isolation import IsolationError, detect_isolation

    try:
        detect_isolation(want="user")
    except IsolationError as e:
        pytest.skip(f"the unprivileged-user fallback is not possible here: {e}")
    if not python_readable_by_others(sys.executable):
        pytest.skip("this Python is installed where an unprivileged user cannot read it (e.g. under /root)")
    root = tmp_path / "kit"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "w.py").write_text(
        textwrap.dedent("""
        import os
        def write(path):
            with open(path, "w") as f:
                f.write("tampered")
            return True
        def write_here():
            with open("scratch.txt", "w") as f:
                f.write("ok")
            return os.getuid()
    """)
    )
    target = tmp_path / "results.json"
    target.write_text("judge's")
    cfg = SandboxConfig(root=root, student_files=["pkg/w.py"], call_timeout=10, isolation="user")
    with Sandbox(cfg) as sb:
        with pytest.raises(SandboxError, match="Permission denied"):
            sb.call("pkg.w", "write", (str(target),))
        with pytest.raises(SandboxError, match="Permission denied"):
            sb.call("pkg.w", "write", (str(root / "pkg" / "w.py"),))
        assert sb.call("pkg.w", "write_here").value != 0
    assert target.read_text() == "judge's"


def test_given_code_can_be_exempt_from_the_guard(tmp_path):
    root = tmp_path / "kit"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "given.py").write_text(
        textwrap.dedent("""
        import torch
        class FastLayer:                       # given code (a kit file): may use autograd
            @staticmethod
            def conv(x):
                return torch.cdist(x[None], x[None])
            @staticmethod
            def backward(x):
                x = x.clone().requires_grad_()
                (x * x).sum().backward()
                return x.grad
    """)
    )
    (root / "pkg" / "layers.py").write_text(
        textwrap.dedent("""
        import torch
        from pkg.given import FastLayer
        def student_backward(x):
            return FastLayer.backward(x)
        def conv_through_given_code(x):
            return FastLayer.conv(x)
        def cheating_backward(x):
            x = x.clone().requires_grad_()
            (x * x).sum().backward()
            return x.grad
    """)
    )
    names = ["torch.Tensor.backward", "torch.Tensor.requires_grad_"]
    cfg = SandboxConfig(
        root=root,
        student_files=["pkg/layers.py"],
        guarded=names + ["torch.cdist"],
        exempt=["pkg/given.py"],
        exempt_names=names,
        call_timeout=10,
    )
    with Sandbox(cfg) as sb:
        x = torch.ones(3)
        assert sb.call("pkg.layers", "student_backward", (x,), forbidden=names).forbidden_hits == []
        hits = sb.call("pkg.layers", "cheating_backward", (x,), forbidden=names).forbidden_hits
        assert {h["name"] for h in hits} == set(names)
        # the exemption covers autograd only: a forbidden op reached through given code is still caught
        hits = sb.call("pkg.layers", "conv_through_given_code", (torch.ones(2, 2),), forbidden=["torch.cdist"])
        assert [h["name"] for h in hits.forbidden_hits] == ["torch.cdist"]


def test_released_objects_are_dropped_by_the_worker(sandbox):
    h = sandbox.call("pkg.student", "Counter", (1,)).value
    assert sandbox.call(None, "add", (1,), handle=h).value == 2
    sandbox.release([h])
    with pytest.raises(SandboxError, match="unknown handle"):
        sandbox.call(None, "add", (1,), handle=h)


def test_attributes_of_kept_objects_can_be_read(sandbox):
    h = sandbox.call("pkg.student", "Counter", (7,)).value
    assert sandbox.getattr(h, "n") == 7
    with pytest.raises(SandboxError, match="AttributeError|no attribute"):
        sandbox.getattr(h, "missing")


def test_lazily_imported_standard_modules_work_in_the_worker(sandbox, tmp_path):
    # torch imports sympy -> mpmath -> colorsys on first use of autograd: the worker must be able to import
    # the standard library after it has started (a dropped user that cannot read it would break this)
    r = sandbox.call("pkg.student", "matmul", (torch.ones(1, 1), torch.ones(1, 1)))
    assert r.value.item() == 1
    root = tmp_path / "kit"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "late.py").write_text(
        "def f():\n    import colorsys, mpmath\n    return colorsys.rgb_to_hsv(1, 0, 0)[2]\n"
    )
    with Sandbox(SandboxConfig(root=root, student_files=["pkg/late.py"], call_timeout=30)) as sb:
        assert sb.call("pkg.late", "f").value == 1.0


def test_the_user_fallback_never_runs_code_as_the_judges_user():
    """With no unprivileged user to become, `user` isolation refuses to start rather than run code as root."""
    from grader.sandbox.process import Confinement

    with pytest.raises(RuntimeError, match="unprivileged user: 'no-such-user-dlcv' is none here"):
        Confinement("user", "dlcv-test", max_processes=8, memory_bytes=None, run_as="no-such-user-dlcv")


def _kit(tmp_path):
    root = tmp_path / "kit"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "m.py").write_text("def double(x):\n    return 2 * x\n")
    return SandboxConfig(root=root, student_files=["pkg/m.py"], call_timeout=10)


def test_a_worker_started_ahead_answers_the_first_call_and_is_started_once(tmp_path):
    with Sandbox(_kit(tmp_path)) as sb:
        sb.prestart()
        assert sb.proc is not None and sb.stats.starts == 1  # running before any request
        sb.prestart()  # a second prestart starts nothing more
        assert sb.call("pkg.m", "double", (torch.ones(2),)).value.tolist() == [2.0, 2.0]
        assert sb.stats.starts == 1 and sb.info["worker"]["syscall_filter"]


def test_a_worker_started_ahead_and_never_used_ends_with_the_sandbox(tmp_path):
    import os

    with Sandbox(_kit(tmp_path)) as sb:
        sb.prestart()
        pid = sb.proc.pid
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_a_sandbox_opened_ahead_gets_its_whole_budget_from_its_grading_on(tmp_path):
    """A sandbox opened while another grading runs: its time budget starts with its own grading (start_clock), so a
    budget spent while it waited is whole again, and one given then runs out as any budget does."""
    from dataclasses import replace

    with Sandbox(replace(_kit(tmp_path), total_timeout=0.3)) as sb:
        sb.prestart()
        time.sleep(0.5)
        assert sb.out_of_time()  # without the restart, no request could run
        sb.start_clock(60.0)
        assert not sb.out_of_time() and sb.config.total_timeout == 60.0
        assert sb.call("pkg.m", "double", (torch.ones(1),)).value.tolist() == [2.0]
        assert sb.stats.starts == 1  # the worker started ahead was used
        sb.start_clock(0.2)
        time.sleep(0.3)
        with pytest.raises(SandboxError, match=r"time allowed for grading this submission \(0.2 s\) ran out"):
            sb.call("pkg.m", "double", (torch.ones(1),))


def test_a_worker_that_dies_while_starting_ahead_fails_one_request_then_starts_again(tmp_path):
    import os
    import signal

    with Sandbox(_kit(tmp_path)) as sb:
        sb.prestart()
        os.kill(sb._child_pid or sb.proc.pid, signal.SIGKILL)  # the worker itself (bubblewrap's child, if any)
        sb.proc.wait()
        with pytest.raises(SandboxError, match="starting"):
            sb.call("pkg.m", "double", (torch.ones(1),))
        assert sb.call("pkg.m", "double", (torch.ones(1),)).value.tolist() == [2.0]
        assert sb.stats.starts == 2


def test_a_start_ahead_that_cannot_start_is_reported_by_the_first_request(tmp_path):
    from dataclasses import replace

    cfg = replace(_kit(tmp_path), python=str(tmp_path / "no-such-python"))
    with Sandbox(cfg) as sb:
        sb.prestart()  # says nothing: the error belongs to a check
        with pytest.raises((SandboxError, OSError)):
            sb.call("pkg.m", "double", (torch.ones(1),))


def test_a_worker_that_cannot_start_blames_the_grader_not_the_student(tmp_path):
    """A worker that dies before any student code ran (here: its Python cannot import the grader's runtime) is the
    environment's fault: the error says so, and never tells the student not to call exit()."""
    from dataclasses import replace

    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\nexit 1\n")
    fake.chmod(0o755)
    cfg = replace(_kit(tmp_path), python=str(fake), isolation="none")
    with Sandbox(cfg) as sb, pytest.raises(SandboxError) as e:
        sb.call("pkg.m", "double", (torch.ones(1),))
    assert "could not start" in e.value.message and "not your code's doing" in e.value.message, e.value.message
    assert "No module named torch" in e.value.message and "exit()" not in e.value.message


KILLED_JUDGE = """
import sys, threading, time
from pathlib import Path
from grader.sandbox.host import Sandbox
from grader.sandbox.isolation import SandboxConfig
root = Path(sys.argv[1])
sb = Sandbox(SandboxConfig(root=root, student_files=["pkg/slow.py"], isolation=sys.argv[2], call_timeout=600))
sb._ensure()  # started by this thread, which lives on; the call below keeps the worker busy in student code
threading.Thread(target=lambda: sb.call("pkg.slow", "sleepy", ()), daemon=True).start()
time.sleep(1)
print(sb._tmp.name, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("mode", ["bwrap", "none"])
def test_a_judge_killed_outright_leaves_no_worker(tmp_path, mode):
    """A judge killed with SIGKILL (a platform's hard timeout, `grader batch`'s limit per submission) while student
    code runs runs no clean-up: its worker, in a session of its own and busy (it reads no request, so it sees no
    end of its pipe), is ended by the kernel with the judge's thread (PR_SET_PDEATHSIG). Before, it ran on
    without bubblewrap; under bubblewrap `--die-with-parent` ended it, but CI once saw bubblewrap itself stay."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from grader.sandbox.isolation import IsolationError, detect_isolation
    from tests.conftest import ROOT, processes_with

    try:
        detect_isolation(want=mode)
    except IsolationError as e:
        pytest.skip(str(e))
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "slow.py").write_text("import time\n\ndef sleepy():\n    time.sleep(600)\n")
    judge = subprocess.Popen(
        [sys.executable, "-c", KILLED_JUDGE, str(tmp_path), mode], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        folder = judge.stdout.readline().strip()
        assert processes_with(folder), "the worker should be running"
    finally:
        judge.send_signal(signal.SIGKILL)
        judge.wait()
    groups = list(Path("/sys/fs/cgroup").glob(f"*/grader-{judge.pid}-*"))  # the folders a SIGKILL leaves

    def left() -> list[str]:  # the worker's processes: bubblewrap's (named by its folder) and every one in its cgroup
        inside = [p for d in groups for p in (d / "cgroup.procs").read_text().split() if (d / "cgroup.procs").exists()]
        return [*map(str, processes_with(folder)), *inside]

    deadline = time.monotonic() + 15
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left(), f"the worker outlived its judge: {left()}"
    for d in groups:
        d.rmdir()
