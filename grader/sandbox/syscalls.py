"""The kernel's filter on the worker: no new process, no program, no other process, no network, no new thread.

Loaded by the worker (grader.sandbox.worker) once it is ready and before any student module is imported, with
libseccomp (through pyseccomp, a ctypes binding of the C library). A seccomp filter is kept across `execve` and
cannot be removed or loosened by the process it filters, and it needs no namespaces, so it holds in the `user`
fallback too (Docker's default profile allows seccomp(2); only namespaces are refused there).

What student code gets when it tries:
- a new process (`os.fork`, `subprocess`, `os.system`, `multiprocessing`: fork, vfork, clone without
  CLONE_THREAD), a program (execve, execveat), another process's memory (ptrace, process_vm_readv/writev,
  pidfd_getfd, kcmp) or a network socket (any address family but AF_UNIX, which is refused): the kernel kills the
  worker at once (SCMP_ACT_KILL_PROCESS), so the call fails the check that made it even where student code would
  catch an error;
  the judge sees the worker end by SIGSYS and names the rule (`Failure.FORBIDDEN`);
- a new thread (clone with CLONE_THREAD): EAGAIN, which Python reports as "can't start new thread". A guard that
  lives in PyTorch's per-thread modes watches only the thread it was entered on, so work done on another thread
  would be unseen: no thread can be made at all once student code may run. The worker's own and PyTorch's
  threads were made before the filter (the worker warms them up);
- clone3, whose flags the filter cannot read (they are behind a pointer): ENOSYS, so the C library falls back to
  clone, which the rules above judge (Docker's default profile does the same);
- namespaces, mounts, kernel keys, BPF, perf events, userfaultfd, signals to other processes (kill, pidfd),
  local sockets: EPERM; io_uring: ENOSYS.
"""

from __future__ import annotations

import errno

CLONE_THREAD = 0x00010000
AF_UNIX = 1

# killed: making any of these is against the rules whatever the student does with the error
KILLED = (
    "fork",
    "vfork",
    "execve",
    "execveat",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
)
# refused with EPERM: nothing a lesson needs, each a way around the sandbox's other walls
REFUSED = (
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "personality",
    "kill",  # another process (in the `user` fallback, other workers run as the same user); tgkill stays for raise()
    "pidfd_open",
    "pidfd_send_signal",
)
UNAVAILABLE = ("clone3", "io_uring_setup", "io_uring_enter", "io_uring_register")  # ENOSYS


class FilterUnavailable(Exception):
    """libseccomp (or its Python binding) cannot be loaded here, or the kernel refused the filter."""


def load_filter() -> None:
    """Load the filter on every thread of this process (TSYNC); libseccomp sets no_new_privs with it, so nothing
    this process runs can gain privileges. Raises FilterUnavailable where it cannot (no libseccomp, not Linux, a
    kernel without seccomp)."""
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError, RuntimeError) as e:  # no pyseccomp, or no libseccomp.so.2 for it to load
        raise FilterUnavailable(f"libseccomp cannot be loaded ({type(e).__name__}: {e})") from None
    try:
        f = seccomp.SyscallFilter(seccomp.ALLOW)
        f.set_attr(seccomp.Attr.CTL_TSYNC, 1)  # every thread, the ones PyTorch made before this included
        for name in KILLED:
            _rule(f, seccomp.KILL_PROCESS, name)
        # clone: a thread (CLONE_THREAD set) is refused, anything else (a process) kills
        f.add_rule(seccomp.KILL_PROCESS, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_THREAD, 0))
        f.add_rule(seccomp.ERRNO(errno.EAGAIN), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_THREAD, CLONE_THREAD))
        for name in ("socket", "socketpair"):  # the network kills; a local socket (abstract ones too) is refused
            f.add_rule(seccomp.KILL_PROCESS, name, seccomp.Arg(0, seccomp.NE, AF_UNIX))
            f.add_rule(seccomp.ERRNO(errno.EPERM), name, seccomp.Arg(0, seccomp.EQ, AF_UNIX))
        for name in REFUSED:
            _rule(f, seccomp.ERRNO(errno.EPERM), name)
        for name in UNAVAILABLE:
            _rule(f, seccomp.ERRNO(errno.ENOSYS), name)
        f.load()
    except Exception as e:  # a libseccomp or kernel error, e.g. EINVAL from a kernel without seccomp filters
        raise FilterUnavailable(f"the seccomp filter could not be loaded ({type(e).__name__}: {e})") from None


def _rule(f, action: int, name: str) -> None:
    """Add a rule for `name`, skipping a call this architecture does not have (e.g. no vfork on arm64)."""
    try:
        f.add_rule(action, name)
    except (ValueError, OSError, RuntimeError):
        pass
