"""The OS sandbox and the protocol hold against a hostile student: what the worker can see and write, what
outlives it, and what it can do to the judge through the protocol's pipes."""

import os
import time
from pathlib import Path

import pytest
import torch

from grader.course import manifest as manifests
from grader.course.datafiles import label_files
from grader.sandbox.host import Sandbox
from grader.sandbox.isolation import SandboxConfig, SandboxError, detect_isolation
from tests.conftest import processes_with

ISOLATION = detect_isolation()
needs_bwrap = pytest.mark.skipif(
    ISOLATION.mode != "bwrap", reason=f"bubblewrap is not usable here: {ISOLATION.why_not_stronger}"
)
COURSE = manifests.course_root(Path(__file__).parent)

HOSTILE = '''
import os, sys, json, struct, subprocess, time, glob

def read(path):
    with open(path, "rb") as f:
        return f.read()

def text(path):
    with open(path) as f:
        return f.read()

def write(path, text="tampered"):
    with open(path, "w") as f:
        f.write(text)
    return True

def who():
    return [os.getuid(), os.getgid(), os.getppid(), os.getpid(), os.uname().nodename]

def listdir(path):
    return sorted(os.listdir(path))

def signal_parent():
    os.kill(os.getppid(), 9)
    return True

def kill_everything():
    os.kill(-1, 9)
    return True

def digits():
    from sklearn.datasets import load_digits
    return load_digits().target[:20].tolist()

def connect(host, port):
    import socket
    s = socket.create_connection((host, port), timeout=2)
    return True

def spawn_detached(marker, target):
    # a grandchild in its own session that keeps rewriting `target` after grading has finished
    code = ("import time, sys\\n"
            "while True:\\n"
            "    try:\\n"
            "        open(sys.argv[2], 'w').write('100')\\n"
            "    except OSError:\\n"
            "        pass\\n"
            "    time.sleep(0.05)\\n")
    for _ in range(3):
        subprocess.Popen([sys.executable, "-c", code, marker, target], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return True

def pipes():
    return [fd for fd in range(3, 64) if _is_fifo(fd)]

def _is_fifo(fd):
    import stat
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False

def fill_pipes():
    """Reopen every pipe through /proc/self/fd for writing and fill it, so the judge's next write blocks."""
    import fcntl
    filled = 0
    for fd in pipes():
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY:
            continue                                  # the read end: what the judge writes into
        try:
            w = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            while True:
                filled += os.write(w, b"\\0" * 65536)
        except OSError:
            pass
    return filled

def forge_reply(value):
    """Write a well-formed reply frame straight onto the protocol's output pipe."""
    header = json.dumps({"__dict__": [["ok", True], ["value", value], ["seq", 1]]}).encode()
    msg = struct.pack(">I", len(header)) + header
    for fd in pipes():
        try:
            os.write(fd, struct.pack(">Q", len(msg)) + msg)
        except OSError:
            pass
    return 0

def bloated_error():
    """Patch the worker so its error reply skips the worker's own cut, then fail."""
    w = sys.modules["grader.sandbox.worker"]
    w._error_reply = lambda e, files: {"ok": False, "kind": "exception", "type": "E" * 10**6,
                                       "message": "m" * 10**7, "where": [{"file": "f" * 10**6, "line": 1}] * 1000}
    raise ValueError("boom")

def fork_bomb(n):
    pids = []
    try:
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            pids.append(pid)
    except OSError as e:
        return [len(pids), str(e)]
    return [len(pids), ""]


def huge():
    import torch
    return torch.zeros(40 * 2**20 // 4 + 1)

def sleepy(seconds):
    time.sleep(seconds)
    return seconds

def echo(x):
    return x
'''


def make_tree(tmp_path: Path) -> Path:
    root = tmp_path / "stage" / "kit"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "hostile.py").write_text(HOSTILE)
    return root


@pytest.fixture()
def sandbox(tmp_path):
    root = make_tree(tmp_path)
    cfg = SandboxConfig(
        root=root, student_files=["pkg/hostile.py"], call_timeout=20, memory_mb=1024, hide=[str(COURSE), *label_files()]
    )
    with Sandbox(cfg) as sb:
        yield sb


def call(sb, fn, *args, **kw):
    return sb.call("pkg.hostile", fn, args, **kw).value


@needs_bwrap
def test_the_worker_runs_in_its_own_namespaces_as_an_unprivileged_user(sandbox):
    uid, gid, ppid, pid, host = call(sandbox, "who")
    assert (uid, gid) == (65534, 65534)
    assert ppid in (0, 1) and pid < 10  # its own PID namespace: no judge to see
    assert host == "sandbox"
    assert sandbox.info["isolation"]["mode"] == "bwrap"
    assert sandbox.info["worker"]["memory_limited"] is True
    with pytest.raises(SandboxError):  # no network at all
        call(sandbox, "connect", "127.0.0.1", 22)


@needs_bwrap
def test_the_worker_cannot_read_the_course_the_checks_or_the_data(sandbox):
    secrets = [
        COURSE / "assignments" / "a1_knn" / "hidden.py",
        COURSE / "assignments" / "a1_knn" / "checks.py",
        COURSE / "a1_knn" / "knn.py",
        COURSE / "grader" / "judge" / "runner.py",
        Path("/etc/shadow"),
    ]
    for path in secrets:
        assert path.exists()
        with pytest.raises(SandboxError, match="No such file|Permission denied"):
            call(sandbox, "read", str(path))
    assert call(sandbox, "listdir", str(COURSE)) in ([], [".venv"])  # only the Python installation, if it lives there
    with pytest.raises(SandboxError):  # scikit-learn's digits (the test labels) are masked
        call(sandbox, "digits")


@needs_bwrap
def test_the_worker_cannot_write_the_kit_python_or_a_root_only_file(sandbox, tmp_path):
    import sysconfig

    root_only = tmp_path / "root-only.txt"
    root_only.write_text("judge's")
    root_only.chmod(0o600)
    targets = [
        root_only,
        sandbox._inside_root + "/pkg/hostile.py",
        Path(sysconfig.get_paths()["purelib"]) / "evil.pth",
        Path(torch.__file__).parent / "evil.py",
    ]
    for path in targets:
        with pytest.raises(SandboxError, match="No such file|Read-only|Permission denied"):
            call(sandbox, "write", str(path))
    assert root_only.read_text() == "judge's"
    assert not (Path(sysconfig.get_paths()["purelib"]) / "evil.pth").exists()
    assert call(sandbox, "write", "scratch.txt") is True  # its own working folder is writable
    assert call(sandbox, "write", "/tmp/scratch.txt") is True


@needs_bwrap
def test_the_worker_cannot_change_the_kernel_or_fill_dev(sandbox):
    for path in ("/proc/sys/kernel/core_pattern", "/proc/sys/fs/file-max", "/proc/sys/vm/drop_caches"):
        with pytest.raises(SandboxError, match="Read-only|Permission denied|No such file"):
            call(sandbox, "write", path, "1")
    for path in ("/dev/filler", "/dev/shm/filler"):
        with pytest.raises(SandboxError, match="Read-only|No space|Permission denied"):
            call(sandbox, "write", path, "x" * (2 << 20))


def test_the_worker_is_the_first_the_kernel_kills_for_memory(sandbox):
    """Its cgroup sits inside the grader's own (a platform's limit): a submission that fills that must lose its own
    processes, never the judge. The score is inherited by what it starts, and it cannot lower it."""
    assert call(sandbox, "text", "/proc/self/oom_score_adj").strip() == "1000"
    with pytest.raises(SandboxError, match="Permission denied|Operation not permitted|Read-only"):
        call(sandbox, "write", "/proc/self/oom_score_adj", "-1000")


@needs_bwrap
def test_the_judge_cannot_be_signalled(sandbox, tmp_path):
    with pytest.raises(SandboxError, match="sends a signal"):  # the worker's walls refuse it first,
        call(sandbox, "signal_parent")
    assert sandbox.refusals and "signal" in sandbox.refusals[0]["what"]
    # and without them, the PID namespace holds (walls=False: the layer below, tested on its own)
    cfg = SandboxConfig(
        root=make_tree(tmp_path / "bare"), student_files=["pkg/hostile.py"], call_timeout=20, walls=False
    )
    with Sandbox(cfg) as bare:
        assert call(bare, "who")[2] != os.getpid()  # its parent is the namespace's init, not the judge,
        assert call(bare, "signal_parent") is True  # which ignores a SIGKILL sent from inside
        with pytest.raises(SandboxError):
            call(bare, "kill_everything")  # kill(-1) reaches only the sandbox's own processes
        assert call(bare, "echo", 5) == 5  # and the judge carries on with a fresh worker


@needs_bwrap
def test_nothing_the_student_started_outlives_the_sandbox(tmp_path):
    """Detached processes in sessions of their own. With the worker's walls none can start (the audit hook refuses
    it, the kernel's filter would kill the worker); without them (walls=False: the layer below, which the notebook
    kernel relies on) they run, and are gone once the sandbox is closed."""
    root = make_tree(tmp_path)
    marker = f"grader-test-marker-{os.getpid()}-{time.time_ns()}"
    with Sandbox(SandboxConfig(root=root, student_files=["pkg/hostile.py"], call_timeout=20)) as sb:
        with pytest.raises(SandboxError, match="starts a process|start a process"):
            call(sb, "spawn_detached", marker, "/tmp/results.json")
        assert processes_with(marker) == []
    cfg = SandboxConfig(root=root, student_files=["pkg/hostile.py"], call_timeout=20, walls=False)
    with Sandbox(cfg) as sb:
        assert call(sb, "spawn_detached", marker, "/tmp/results.json") is True
        deadline = time.time() + 10
        while len(processes_with(marker)) < 3 and time.time() < deadline:
            time.sleep(0.05)
        assert len(processes_with(marker)) == 3  # they run, in their own sessions
    assert processes_with(marker) == []  # and are gone once the sandbox is closed


def test_a_worker_that_fills_the_judges_pipe_fails_one_call_within_its_limit(sandbox):
    assert call(sandbox, "fill_pipes") > 0
    big = torch.zeros(4 << 20, dtype=torch.uint8)  # more than a pipe holds
    t0 = time.perf_counter()
    with pytest.raises(SandboxError) as info:
        call(sandbox, "echo", big, timeout=3)
    assert time.perf_counter() - t0 < 30
    assert info.value.kind in ("timeout", "protocol")
    assert call(sandbox, "echo", 7) == 7  # a fresh worker takes over


def test_a_forged_reply_is_refused(sandbox):
    with pytest.raises(SandboxError) as info:
        call(sandbox, "forge_reply", 100)
        call(sandbox, "echo", 1)
    assert info.value.kind == "protocol"
    assert call(sandbox, "echo", 3) == 3


def test_an_oversized_reply_is_refused_before_it_is_read(tmp_path):
    root = make_tree(tmp_path)
    cfg = SandboxConfig(root=root, student_files=["pkg/hostile.py"], call_timeout=20, max_reply_bytes=8 << 20)
    with Sandbox(cfg) as sb:
        with pytest.raises(SandboxError, match="too large") as info:
            call(sb, "huge")
        assert info.value.kind == "protocol"
        assert call(sb, "echo", 2) == 2


def test_a_function_that_timed_out_once_is_retried_briefly(tmp_path):
    root = make_tree(tmp_path)
    cfg = SandboxConfig(root=root, student_files=["pkg/hostile.py"], call_timeout=3, retry_timeout=1)
    with Sandbox(cfg) as sb:
        t0 = time.perf_counter()
        with pytest.raises(SandboxError, match="time limit"):
            call(sb, "sleepy", 60)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        with pytest.raises(SandboxError, match="earlier check") as info:
            call(sb, "sleepy", 60)
        assert info.value.kind == "timeout"
        assert time.perf_counter() - t0 < first  # 1 s, not 3 s, the second time
        assert call(sb, "echo", 1) == 1  # other functions keep their full limit


def test_the_whole_grading_has_a_time_budget(tmp_path):
    root = make_tree(tmp_path)
    cfg = SandboxConfig(root=root, student_files=["pkg/hostile.py"], call_timeout=30, total_timeout=8)
    with Sandbox(cfg) as sb:
        assert call(sb, "echo", 1) == 1
        with pytest.raises(SandboxError, match="time limit"):
            call(sb, "sleepy", 60)  # cut to what is left of the 8 s
        with pytest.raises(SandboxError, match="ran out"):
            call(sb, "echo", 1)


def test_isolation_can_be_chosen_and_is_recorded(tmp_path, monkeypatch):
    root = make_tree(tmp_path)
    cfg = SandboxConfig(root=root, student_files=["pkg/hostile.py"], call_timeout=20, isolation="none")
    with Sandbox(cfg) as sb:
        assert call(sb, "echo", 4) == 4
        assert sb.info["isolation"]["mode"] == "none" and not sb.isolation.strong
    from grader.sandbox.isolation import IsolationError

    with pytest.raises(IsolationError, match="expected auto, bwrap, user or none"):
        detect_isolation(want="docker")


def test_an_error_reply_cannot_bloat_the_feedback(sandbox):
    with pytest.raises(SandboxError) as info:
        call(sandbox, "bloated_error")
    e = info.value
    assert len(e.message) <= 2000 and len(e.type_name) <= 100 and len(e.where) <= 5
    assert all(len(str(v)) <= 300 for w in e.where for v in w.values())
    from grader.judge.runner import MAX_FEEDBACK, _cut

    assert len(_cut("x" * 10**6)) < MAX_FEEDBACK + 100 and _cut("short") == "short"


def _cgroup_limits(sb) -> str:
    return sb.info["isolation"]["cgroup"]


def test_a_fork_bomb_is_stopped_where_a_cgroup_can_be_made(tmp_path):
    root = make_tree(tmp_path)
    # walls=False: the worker's walls refuse the first fork (test_syscall_filter.py); this is the layer below them
    cfg = SandboxConfig(root=root, student_files=["pkg/hostile.py"], call_timeout=60, max_processes=64, walls=False)
    with Sandbox(cfg) as sb:
        if "pids.max" not in _cgroup_limits(sb):
            pytest.skip(f"no cgroup here: {_cgroup_limits(sb)}")
        made, error = call(sb, "fork_bomb", 5000)
        assert made < 64 and "Resource temporarily unavailable" in error
        assert call(sb, "echo", 1) == 1


def test_the_worker_and_its_children_share_one_memory_limit(tmp_path):
    """Each process has its own address-space limit; the cgroup bounds them all together (the kernel enforces it)."""
    root = make_tree(tmp_path)
    with Sandbox(SandboxConfig(root=root, student_files=["pkg/hostile.py"], call_timeout=60, memory_mb=1024)) as sb:
        if "memory" not in _cgroup_limits(sb):
            pytest.skip(f"no memory cgroup here: {_cgroup_limits(sb)}")
        call(sb, "echo", 1)
        members = set()
        for d in sb._cgroup.dirs:
            members |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            limit = next((f for f in ("memory.max", "memory.limit_in_bytes") if (d / f).exists()), None)
            if limit:
                assert int((d / limit).read_text()) == (1024 + 2048) << 20
        assert sb.proc.pid in members and sb._child_pid in members  # bubblewrap and the namespace's init
        made = list(sb._cgroup.dirs)
    assert made and all(not d.exists() for d in made)  # removed with the sandbox


@needs_bwrap
def test_a_python_installation_under_tmp_stays_visible(tmp_path, monkeypatch):
    """A checkout (and its .venv) under /tmp must not be hidden by the sandbox's own /tmp."""
    import grader.sandbox.isolation as sandbox_module

    real = sandbox_module.python_paths(sandbox_module.sys.executable)
    monkeypatch.setattr(sandbox_module, "python_paths", lambda python: ("/tmp/checkout/.venv", *real))
    sb = Sandbox(SandboxConfig(root=make_tree(tmp_path), student_files=[]))
    try:
        argv = sb._argv(99)
    finally:
        sb.close()
    tmpfs = argv.index("/tmp", argv.index("--tmpfs"))
    binds = [i for i, a in enumerate(argv) if a == "/tmp/checkout/.venv" and argv[i - 2] == "--ro-bind"]
    assert binds and all(i > tmpfs for i in binds)
