"""The life of one sandboxed process, the same for the grading worker (`grader.sandbox.host.Sandbox`) and a
notebook's kernel (`grader.notebooks.kernel.KernelSandbox`): written once, so the two never drift apart.

A `Confinement` starts its process (the caller builds the command: bubblewrap's options come from
`grader.sandbox.isolation.bwrap_base`), one at a time, and ends it with everything it started:

- between fork and exec, in the child (`Confinement.preexec`): it joins the cgroup (processes and memory of the
  whole tree), gets no core files, and outside bubblewrap enters a network namespace of its own where the kernel
  allows one, then, under the `user` fallback, becomes the unprivileged user (`nobody`) before its first
  instruction of Python runs;
- under bubblewrap, the PID (outside) of its PID namespace's first process is read from `--info-fd`;
- `Confinement.kill`: SIGKILL the namespace's first process (the kernel then kills the namespace), the process
  group, the cgroup's members, and under `user` every descendant of this judge running as that user (the judge
  adopts orphans: a child subreaper), sparing another live worker or kernel of this judge;
- the peak resident set of the tree, read from /proc by the judge.

The `user` fallback's preparations of the files (`make_readable`, `protect`) live here too.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import select
import signal
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

CLONE_NEWNET = 0x40000000
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1

# the `user` fallback's live workers and kernels started by this process (their first process): what one of them
# leaves behind is killed without touching another's
LIVE_USER_PROCESSES: set[int] = set()


# ---- users, processes, /proc ------------------------------------------------------------------------------


def user_ids(name: str | None) -> tuple[int, int] | None:
    """(uid, gid) of the user `name`, None when there is none."""
    if not name:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def descendants(pid: int) -> list[int]:
    """Processes below `pid` (read from every process's parent in /proc)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def peak_rss_mb(pid: int) -> float:
    """The largest peak resident set (VmHWM: memory in RAM, not the page cache) among `pid` and its descendants,
    in MB, read from /proc by the judge (nothing the sandboxed process says about itself); 0 where unreadable."""
    best = 0.0
    for p in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    best = max(best, int(line.split()[1]) / 1024)
        except (OSError, ValueError):
            continue
    return best


def rss_bytes(pid: int) -> int:
    """The resident memory (VmRSS) of `pid` and its descendants together, in bytes."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0) * 1024
        except OSError:
            pass
    return total


def become_subreaper() -> bool:
    """Make this process the one that adopts its orphaned descendants (prctl PR_SET_CHILD_SUBREAPER), so a process
    the worker started in a session of its own (setsid, a double fork) stays this judge's descendant, where
    `kill_descendants_of` finds it, instead of becoming init's."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _uid_of(pid: int) -> int | None:
    """The real uid of a live process (None for a zombie, which holds nothing, or one that is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:") and line.split()[1] == "Z":
                return None
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def kill_descendants_of(uid: int, spare: int | None = None) -> None:
    """SIGKILL every descendant of this judge that runs as `uid` (the `user` fallback's worker `spare` and what it
    started), until none is left, and reap those this judge adopted (orphans; `spare` itself is left to its Popen).
    Another live worker or kernel of this judge (LIVE_USER_PROCESSES) and what runs under it are spared; another
    judge's descendants (another grading) are never touched, nor any other process of that user on the machine."""
    LIVE_USER_PROCESSES.discard(spare)
    me, killed = os.getpid(), set()
    for _ in range(20):
        others = set(LIVE_USER_PROCESSES)
        for p in list(others):
            others.update(descendants(p))
        mine = [p for p in descendants(me) if p not in others and _uid_of(p) == uid]
        if not mine:
            break
        for p in mine:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
                killed.add(p)
        time.sleep(0.01)
    for p in killed - {spare}:
        if _parent_of(p) == me:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(p, os.WNOHANG)


def own_network(pid: int) -> bool | None:
    """Whether `pid` runs in a network namespace other than this judge's (None where /proc does not say)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    except OSError:
        return None


# ---- the `user` fallback's files ------------------------------------------------------------------------


def make_readable(root: Path) -> None:
    """Let another user read `root` and everything under it, and pass through its parents inside the
    temporary folder (the judge stages there; nothing outside it is touched)."""
    tmp = Path(tempfile.gettempdir()).resolve()
    for d in [root, *root.parents]:
        if d == tmp or tmp not in d.parents:
            break
        d.chmod(d.stat().st_mode | 0o055)
    for p in root.rglob("*"):
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | (0o055 if p.is_dir() else 0o044))


def protect(paths: list[str]) -> list[str]:
    """For the `user` fallback: take every permission of 'other' users off `paths` (the course folder, data
    files), so `nobody` cannot read them. Returns the paths changed."""
    changed = []
    for p in paths:
        try:
            mode = os.stat(p).st_mode
        except OSError:
            continue
        if mode & 0o007:
            os.chmod(p, mode & ~0o007)
            changed.append(p)
    return changed


# ---- a cgroup for the process and everything it starts ------------------------------------------------


def own_cgroup(controller: str, root: Path = Path("/sys/fs/cgroup")) -> Path:
    """This process's cgroup of `controller` ("" for v2's unified hierarchy) as a folder, as /proc/self/cgroup
    names it; the hierarchy's root where it names none or the folder is not there (a container's own view)."""
    base = root / controller if controller else root
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return base
    for line in lines:
        _, names, path = line.split(":", 2)
        if (controller and controller in names.split(",")) or (not controller and names == ""):
            inner = base / path.lstrip("/")
            return inner if inner.is_dir() else base
    return base


def _read_int(path: Path) -> int | None:
    """A cgroup file's number; None when it is missing, unreadable or says "max" (no limit)."""
    try:
        text = path.read_text().split()
    except OSError:
        return None
    try:
        return int(text[0]) if text else None
    except ValueError:
        return None


def _inactive_file(d: Path) -> int:
    """Page cache in cgroup `d` the kernel can reclaim before it runs out (memory.stat's inactive file pages)."""
    try:
        for line in (d / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key in ("inactive_file", "total_inactive_file"):
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _cpu_quota(d: Path, v2: bool) -> float:
    """The CPUs cgroup `d`'s CPU quota allows (cpu.max, or v1's cfs_quota_us over cfs_period_us); inf for none."""
    if v2:
        try:
            quota, period = (d / "cpu.max").read_text().split()[:2]
            return int(quota) / int(period)
        except (OSError, ValueError):  # "max": no quota
            return float("inf")
    quota, period = _read_int(d / "cpu.cfs_quota_us"), _read_int(d / "cpu.cfs_period_us")
    return quota / period if quota is not None and quota > 0 and period else float("inf")


def headroom(root: Path = Path("/sys/fs/cgroup")) -> tuple[float, float]:
    """(CPUs, MB of memory) this process can still use: the CPUs it may run on, under every cgroup CPU quota
    from its own cgroup up to the hierarchy's root (a container's `--cpus 0.5`, Gradescope's half CPU), and the
    memory the machine has available (MemAvailable), under every cgroup memory limit on that path less what the
    cgroup uses (a container's 768 MB). What it cannot read counts as no limit."""
    cpus = float(len(os.sched_getaffinity(0)))
    memory = float("inf")
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/meminfo") as f:
            memory = int(next(line for line in f if line.startswith("MemAvailable:")).split()[1]) * 1024
    v2 = (root / "cgroup.controllers").exists()
    for controller in [""] if v2 else ["cpu", "memory"]:
        base = root / controller if controller else root
        own = own_cgroup(controller, root)
        for d in [own, *(p for p in own.parents if p == base or base in p.parents)]:
            if controller != "memory":
                cpus = min(cpus, _cpu_quota(d, v2))
            if controller != "cpu":
                names = ("memory.max", "memory.current") if v2 else ("memory.limit_in_bytes", "memory.usage_in_bytes")
                limit, used = _read_int(d / names[0]), _read_int(d / names[1])
                if limit is not None and used is not None and limit < 1 << 60:
                    memory = min(memory, limit - max(0, used - _inactive_file(d)))
    return cpus, max(0.0, memory / 2**20)


class Cgroup:
    """Limits that hold for the sandboxed process's tree together: how many processes there are (a fork bomb) and
    how much memory they hold (children each under their own address-space limit). Best effort: it needs root and
    a writable cgroup hierarchy (v2, or v1's pids and memory controllers); `describe()` says what was set."""

    ROOT = Path("/sys/fs/cgroup")

    def __init__(self, name: str, pids_max: int, memory_bytes: int | None) -> None:
        self.dirs: list[Path] = []
        self.settings: list[str] = []
        # removed by `remove`, or when this process exits without that (an interrupted grading): its processes
        # killed first, so the folder can go
        self._end = weakref.finalize(self, _kill_and_remove, self.dirs)
        if os.getuid() != 0:
            return
        if (self.ROOT / "cgroup.controllers").exists():  # v2
            wanted = [("pids.max", pids_max), ("memory.max", memory_bytes), ("memory.swap.max", 0)]
            self._make(self._places(""), name, wanted)
        else:  # v1
            self._make(self._places("pids"), name, [("pids.max", pids_max)])
            if memory_bytes:
                self._make(self._places("memory"), name, [("memory.limit_in_bytes", memory_bytes)])

    def _places(self, controller: str) -> list[Path]:
        """Where the cgroup may be made, best first: inside the grader's own cgroup of that controller (as
        /proc/self/cgroup names it; "" is v2's unified hierarchy), so the limits the grader itself runs under (a
        container's, a cluster job's, a platform's 768 MB) hold for the sandbox too; else the hierarchy's root."""
        base = self.ROOT / controller if controller else self.ROOT
        inner = own_cgroup(controller, self.ROOT)
        return [inner, base] if inner != base else [base]

    def _make(self, places: list[Path], name: str, values: list[tuple[str, int | None]]) -> None:
        # v2 enables no controller below a cgroup that holds processes: then the limits cannot be written in the
        # grader's own cgroup and the hierarchy's root is used instead
        for i, where in enumerate(places):
            d = where / name
            try:
                d.mkdir()
            except OSError:
                continue
            done = []
            for key, value in values:
                if value is None:
                    continue
                try:
                    (d / key).write_text(str(value))
                    done.append(f"{key}={value}")
                except OSError:
                    pass
            if len(done) < sum(v is not None for _, v in values) and i + 1 < len(places):
                with contextlib.suppress(OSError):
                    d.rmdir()
                continue
            self.settings += done
            self.dirs.append(d)
            return

    def join(self) -> None:
        """Move the calling process in (run in the child between fork and exec, so nothing escapes), and make it
        the first the kernel kills when memory runs out: the cgroup sits inside the grader's own (a platform's
        768 MB), so a submission that fills that must lose its own processes, never the judge. The score is
        inherited, and an unprivileged process cannot lower it."""
        with contextlib.suppress(OSError):
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
        for d in self.dirs:
            try:
                with open(d / "cgroup.procs", "w") as f:
                    f.write("0")
            except OSError:
                pass

    def describe(self) -> str:
        return ", ".join(self.settings) if self.settings else "none (needs root and a writable /sys/fs/cgroup)"

    def kill(self) -> None:
        """SIGKILL every process in the cgroup, a process that left the sandboxed process's session included."""
        _kill_members(self.dirs)

    def remove(self) -> None:
        self._end()


def _kill_members(dirs: list[Path]) -> None:
    for d in dirs:
        if (d / "cgroup.kill").exists():  # v2 (Linux 5.14): the kernel kills them all at once
            with contextlib.suppress(OSError):
                (d / "cgroup.kill").write_text("1")
            continue
        for _ in range(20):  # v1: until none is left (one may fork while the others are killed)
            try:
                pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
            except OSError:
                break
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)


def _kill_and_remove(dirs: list[Path]) -> None:
    """The cgroup's end: its processes killed, its folders removed (the kernel refuses while a process is in)."""
    _kill_members(dirs)
    for d in dirs:
        for _ in range(50):
            try:
                d.rmdir()
                break
            except OSError:
                time.sleep(0.02)
    dirs.clear()


# ---- bubblewrap's --info-fd --------------------------------------------------------------------------------


def read_child_pid(fd: int, deadline: float, proc: subprocess.Popen | None) -> int | None:
    """bubblewrap's --info-fd: {"child-pid": N}, the PID (outside) of the namespace's first process; None when
    bubblewrap exits or closes the pipe without saying, or `deadline` (time.perf_counter) passes."""
    data = b""
    while time.perf_counter() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.25)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            data += chunk
            with contextlib.suppress(ValueError, KeyError, TypeError):
                return int(json.loads(data)["child-pid"])
        elif proc is not None and proc.poll() is not None:
            return None
    return None


# ---- one sandboxed process at a time ------------------------------------------------------------------------


class Confinement:
    """How the worker or a kernel is started and ended under the isolation `mode` (bwrap, user or none): one
    process at a time, in the cgroup `name` (`max_processes`, `memory_bytes` for the whole tree), as the user
    `run_as` under the `user` fallback. The caller builds the command (under bubblewrap with `info_fd()` in it),
    starts it with `popen` or with `preexec` and `pass_fds()` given to its own launcher (then calls `started`)."""

    def __init__(
        self, mode: str, name: str, *, max_processes: int, memory_bytes: int | None, run_as: str | None = "nobody"
    ) -> None:
        self.mode = mode
        self.run_as = user_ids(run_as) if mode == "user" else None
        if mode == "user" and self.run_as is None:  # never fall back to running student code as this judge's user
            raise RuntimeError(f"the `user` isolation runs code as an unprivileged user: {run_as!r} is none here")
        if self.run_as:
            become_subreaper()
        self.cgroup = Cgroup(name, max_processes, memory_bytes)
        self.proc: subprocess.Popen | None = None
        self.child_pid: int | None = None  # PID 1 of the process's PID namespace (bwrap)
        self._child_fd: int | None = None  # a pidfd on it
        self._info: tuple[int, int] | None = None
        # resolved here, in the judge: the child between fork and exec should load no library
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self._unshare: Any = libc.unshare
            self._prctl: Any = libc.prctl
        except (OSError, AttributeError):
            self._unshare = self._prctl = None

    # -- starting -----------------------------------------------------------------------------
    def info_fd(self) -> int | None:
        """Under bubblewrap, a fresh pipe for `--info-fd`: the descriptor to name in bubblewrap's options (and to
        pass to the child: `pass_fds()`); None otherwise."""
        self._close_info()
        if self.mode != "bwrap":
            return None
        self._info = os.pipe()
        return self._info[1]

    def pass_fds(self) -> tuple[int, ...]:
        return (self._info[1],) if self._info is not None else ()

    def preexec(self) -> None:
        """In the child, between fork and exec (nothing of the sandboxed program has run yet): the cgroup, no core
        files; outside bubblewrap a network namespace of its own where the kernel allows it (as root); under
        the `user` fallback, the unprivileged user, for good (groups, gid, then uid); and a SIGKILL when the
        judge's thread that started it ends (prctl PR_SET_PDEATHSIG), so a judge killed outright (a platform's hard
        timeout, `grader batch`'s limit) leaves no bubblewrap behind, which its own session would otherwise keep."""
        self.cgroup.join()
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if self.mode != "bwrap" and self._unshare is not None:
            self._unshare(CLONE_NEWNET)  # refused (EPERM) where namespaces are: then the network stays
        if self.run_as:
            os.setgroups([])
            os.setgid(self.run_as[1])
            os.setuid(self.run_as[0])
        if self._prctl is not None:  # after the user changed (that clears it): killed with the judge's thread
            self._prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def popen(self, argv: list[str], deadline: float, **kwargs: Any) -> subprocess.Popen:
        """Start `argv` (built with `info_fd()` under bubblewrap) in a session of its own, and wait for
        bubblewrap's child PID until `deadline` (time.perf_counter); `kwargs` go to subprocess.Popen."""
        try:
            proc = subprocess.Popen(
                argv,
                start_new_session=True,
                close_fds=True,
                pass_fds=self.pass_fds(),
                preexec_fn=self.preexec,
                **kwargs,
            )
        except BaseException:
            self._close_info()
            raise
        self.started(proc, deadline)
        return proc

    def started(self, proc: subprocess.Popen | None, deadline: float) -> int | None:
        """Take charge of `proc`, just started with `preexec` (and `pass_fds()`): under bubblewrap, read the PID of
        its namespace's first process (None when bubblewrap failed to say by `deadline`)."""
        self.proc, self.child_pid = proc, None
        if self._info is not None:
            os.close(self._info[1])
            self._info = (self._info[0], -1)
        if self.run_as and proc is not None:
            LIVE_USER_PROCESSES.add(proc.pid)
        try:
            if self._info is not None:
                self.child_pid = read_child_pid(self._info[0], deadline, proc)
        finally:
            self._close_info()
        if self._child_fd is not None:  # a handle left from a process that was never killed
            os.close(self._child_fd)
            self._child_fd = None
        if self.child_pid is not None:  # a handle on that very process: a later kill never hits a reused PID
            with contextlib.suppress(OSError):
                self._child_fd = os.pidfd_open(self.child_pid)
        return self.child_pid

    def _close_info(self) -> None:
        if self._info is not None:
            for fd in self._info:
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._info = None

    # -- watching -----------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def network_isolated(self) -> bool | None:
        """Whether the running process has a network namespace of its own, as the judge sees it."""
        if self.proc is None:
            return None
        if self.mode == "bwrap":
            return True  # its own network namespace, set up by bubblewrap
        return own_network(self.proc.pid)

    def peak_rss_mb(self) -> float:
        """The largest peak resident set (MB) of the running process's tree (0 when none runs)."""
        return peak_rss_mb(self.proc.pid) if self.proc is not None else 0.0

    def rss_bytes(self) -> int:
        """The resident memory of the running process's tree, from its namespace's first process under
        bubblewrap."""
        if self.proc is None:
            return 0
        return rss_bytes(self.child_pid or self.proc.pid)

    # -- ending -------------------------------------------------------------------------------
    def kill(self) -> float:
        """End the process and everything it started; returns its tree's peak resident set (MB) first. Under
        bubblewrap, killing the namespace's first process makes the kernel kill every other process in it;
        bubblewrap exits only once they are all gone. What left the process group (setsid, a double fork) goes
        with the cgroup, and under the `user` fallback with every descendant of this judge that runs as that
        user (the judge adopts orphans)."""
        proc, child = self.proc, self.child_pid
        self.proc, self.child_pid = None, None
        if proc is None:
            return 0.0
        peak = peak_rss_mb(proc.pid)
        child_fd, self._child_fd = self._child_fd, None
        if child_fd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(child_fd, signal.SIGKILL)
            os.close(child_fd)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5 if child is not None else 0)
        # a process group's ID is not given to a new process while any member lives, so this reaches only ours
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self.cgroup.kill()
        if self.run_as:
            kill_descendants_of(self.run_as[0], spare=proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        return peak

    def close(self) -> float:
        """Kill (see `kill`) and remove the cgroup; returns the last process's peak resident set (MB)."""
        peak = self.kill()
        self._close_info()
        self.cgroup.remove()
        return peak
