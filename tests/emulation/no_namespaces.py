"""Run a command the way Docker's default seccomp profile runs a container: no new namespaces.

`python -m tests.emulation.no_namespaces COMMAND ...` loads a seccomp filter (libseccomp, through pyseccomp) and
execs COMMAND under it; the filter is inherited by everything COMMAND starts. Docker's default profile
(moby's profiles/seccomp/default.json) lets a container without CAP_SYS_ADMIN call `clone` only when
"value": 2114060288, "op": "SCMP_CMP_MASKED_EQ" holds with a value of 0 (no CLONE_NEW* flag), refuses `unshare`,
`setns` and `mount`, and answers `clone3` with ENOSYS ("errnoRet": 38) so that the C library falls back to
`clone`. So bubblewrap cannot make its namespaces there, and the grader falls back to its `user` mode: the isolation
Gradescope's containers give it.
"""

from __future__ import annotations

import errno
import os
import sys

NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET: 2114060288


def load() -> None:
    import pyseccomp as seccomp

    f = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in ("unshare", "setns", "mount"):
        f.add_rule(seccomp.ERRNO(errno.EPERM), name)
    for bit in range(32):  # clone with any namespace flag: one rule per flag (libseccomp ORs rules)
        flag = 1 << bit
        if NAMESPACE_FLAGS & flag:
            f.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    f.load()


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m tests.emulation.no_namespaces COMMAND [ARG ...]")
    load()
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
