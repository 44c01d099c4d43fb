"""A notebook's IPython kernel in the same OS sandbox as the grading worker (grader.sandbox.process runs both).

Under bubblewrap the kernel has the worker's namespaces (no network, its own PIDs), sees the Python installation
and the staged tree read-only (the kit's helpers with the student's own `.py` files laid over them, at
`/sandbox/kit`), runs in a private `notebooks/` folder and /tmp, and is bound by the worker's cgroup (processes,
memory) and by limits it sets on itself before any cell runs (address space, open files, file size, one math
thread). It talks to the judge over ZeroMQ through Unix sockets (`transport="ipc"`) in a folder shared with the
judge for that alone, which the judge makes read-only to the kernel once it is up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from grader.sandbox.isolation import SANDBOX_ROOT, Isolation, SandboxConfig, bwrap_base, bwrap_devices
from grader.sandbox.process import Confinement, make_readable, protect, user_ids

MAX_MESSAGE_BYTES = 32 << 20  # one ZeroMQ message from the kernel
KERNEL_MAX_FILES = 1024
KERNEL_MAX_FILE_BYTES = 256 << 20


# -- the kernel in the sandbox ------------------------------------------------------------------------------------

_KERNEL_SETUP = '''\
def _grader_limits(memory_mb, max_files, max_file_bytes, limit_address_space):
    """Set by the grader before your first cell: the same limits as its sandbox worker."""
    import resource, signal
    try:
        import torch
        torch.set_num_threads(1)
    except Exception:
        pass
    if limit_address_space:
        with open("/proc/self/status") as f:
            vm = next((int(l.split()[1]) for l in f if l.startswith("VmSize:")), 0) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + memory_mb * 2**20,) * 2)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for res, value in ((resource.RLIMIT_NOFILE, max_files), (resource.RLIMIT_CORE, 0),
                       (resource.RLIMIT_FSIZE, max_file_bytes)):
        soft, hard = resource.getrlimit(res)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(res, (value, value))
_grader_limits({memory_mb}, {max_files}, {max_file_bytes}, {limit_address_space})
del _grader_limits
'''


class KernelSandbox:
    """Starts ipykernel processes under the isolation `isolation` on the staged tree `root`; one at a time.

    `env`: extra environment for the kernel (the data set). `hide`: paths it must not read (as the worker).
    `read_only`: host folders it may read (a CIFAR-10 folder), bound at the same path."""

    def __init__(
        self,
        root: Path,
        isolation: Isolation,
        *,
        memory_mb: int = 4096,
        device: str = "cpu",
        env: dict[str, str] | None = None,
        hide: list[str] | None = None,
        read_only: list[str] | None = None,
        max_processes: int = 256,
        scratch_mb: int = 256,
        python: str = sys.executable,
    ) -> None:
        self.root, self.isolation = Path(root), isolation
        self.config = SandboxConfig(
            root=self.root,
            student_files=[],
            device=device,
            memory_mb=memory_mb,
            hide=list(hide or []),
            isolation=isolation.mode,
            python=python,
            scratch_mb=scratch_mb,
            max_processes=max_processes,
        )
        self.env, self.read_only = dict(env or {}), list(read_only or [])
        self._tmp = Path(tempfile.mkdtemp(prefix="grader-kernel-"))
        self._empty = self._tmp / "empty"
        self._empty.write_bytes(b"")
        self._log = open(self._tmp / "kernel-output.txt", "ab+")
        (self.root / "notebooks").mkdir(exist_ok=True)  # the kernel's working folder (a private tmpfs in bwrap)
        memory = (memory_mb + 2048) << 20 if device == "cpu" else None
        # started, confined and ended exactly as the grading worker is (grader.sandbox.process)
        self._process = Confinement(
            isolation.mode,
            f"grader-kernel-{os.getpid()}-{id(self):x}",
            max_processes=max_processes,
            memory_bytes=memory,
        )
        self._run_as = self._process.run_as
        self.info = {"isolation": isolation.describe(), "cgroup": self._process.cgroup.describe()}
        if self._run_as:
            os.chmod(self._tmp, 0o711)
            make_readable(self.root)
            os.chown(self.root / "notebooks", *self._run_as)
            self.info["made_unreadable"] = protect(list(self.config.hide))
            self._give_digits()
        self._n = 0
        self.km: Any = None
        self.kc: Any = None
        self._ctx: Any = None
        self.starts = 0
        self.start_seconds = 0.0
        self.peak_rss_mb = 0.0  # the largest peak resident set of a kernel process (VmHWM, MB)

    @property
    def proc(self) -> Any:
        """The running kernel's first process (bubblewrap, or the kernel itself), None when none runs."""
        return self._process.proc

    def _give_digits(self) -> None:
        """The `user` fallback protects scikit-learn's digits file from the unprivileged user (the worker must
        not read the test labels), but the notebooks, run after grading, train on it: the kernel gets a copy
        in its own tree, and dlcv.data reads it from $DLCV_DIGITS_FILE."""
        from grader.course.datafiles import label_files

        for f in label_files():
            if os.path.basename(f) == "digits.csv.gz" and os.path.isfile(f):
                folder = self.root / ".data"
                folder.mkdir(exist_ok=True)
                shutil.copyfile(f, folder / "digits.csv.gz")
                make_readable(folder)
                os.chmod(folder, 0o755)
                os.chmod(folder / "digits.csv.gz", 0o644)
                self.env["DLCV_DIGITS_FILE"] = str(folder / "digits.csv.gz")
                return

    # -- starting -----------------------------------------------------------------------------
    def _inside_cwd(self) -> str:
        return f"{SANDBOX_ROOT}/kit/notebooks" if self.isolation.mode == "bwrap" else str(self.root / "notebooks")

    def _env(self) -> dict[str, str]:
        home = "/tmp" if self.isolation.mode == "bwrap" else str(self._home)
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES")}
        # no MPLBACKEND: the kernel then draws inline (PNG outputs), as in Jupyter
        env.update(
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            OPENBLAS_NUM_THREADS="1",
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONSAFEPATH="1",  # `-m ipykernel_launcher` runs in a writable folder: no module a cell left there
            PYTHONHASHSEED="0",
            HOME=home,
            TMPDIR=home,
            IPYTHONDIR=f"{home}/.ipython",
            MPLCONFIGDIR=f"{home}/.matplotlib",
            JUPYTER_RUNTIME_DIR=f"{home}/.jupyter-runtime",
            JUPYTER_DATA_DIR=f"{home}/.jupyter-data",
            JUPYTER_CONFIG_DIR=f"{home}/.jupyter",
            PYDEVD_DISABLE_FILE_VALIDATION="1",
            JUPYTER_PLATFORM_DIRS="1",
            DLCV_NOTEBOOK_REPORT="1",
        )
        env.update(self.env)
        return env

    def _command(self, connection_file: str, extra: list[str], info_fd: int | None) -> list[str]:
        setup = _KERNEL_SETUP.format(
            memory_mb=int(self.config.memory_mb),
            max_files=KERNEL_MAX_FILES,
            max_file_bytes=KERNEL_MAX_FILE_BYTES,
            limit_address_space=self.config.device == "cpu",
        )
        py = [
            self.config.python,
            "-m",
            "ipykernel_launcher",
            "-f",
            connection_file,
            f"--IPKernelApp.exec_lines={[setup]!r}",
            "--HistoryManager.enabled=False",
            *extra,
        ]
        if self.isolation.mode != "bwrap":
            return py
        argv = bwrap_base(self.config, self._empty, info_fd)
        conn = str(Path(connection_file).parent)
        argv += [
            "--ro-bind",
            str(self.root),
            f"{SANDBOX_ROOT}/kit",
            "--size",
            str(self.config.scratch_mb << 20),
            "--tmpfs",
            self._inside_cwd(),
            "--bind",
            conn,
            conn,
        ]
        for p in self.read_only:
            argv += ["--ro-bind", p, p]
        for p in ("/etc/fonts", "/var/cache/fontconfig"):  # matplotlib's text
            argv += ["--ro-bind-try", p, p]
        argv += ["--chdir", self._inside_cwd(), "--unsetenv", "JPY_PARENT_PID"]
        return argv + bwrap_devices(self.config) + ["--", *py]

    async def start(self) -> None:
        """Start a fresh kernel (ending the one before) and connect to it."""
        import zmq
        import zmq.asyncio
        from jupyter_client.kernelspec import KernelSpec
        from jupyter_client.manager import AsyncKernelManager

        self.kill()
        t0 = time.perf_counter()
        self._n += 1
        conn = self._tmp / f"c{self._n}"
        conn.mkdir()
        self._home = self._tmp / f"home{self._n}"
        self._home.mkdir()
        if self._run_as:
            os.chown(conn, *self._run_as)
            os.chown(self._home, *self._run_as)
        info_w = self._process.info_fd()
        owner = self

        class _Manager(AsyncKernelManager):
            def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
                return owner._command(self.connection_file, list(extra_arguments or []), info_w)

            def write_connection_file(self, **kwargs: Any) -> None:
                super().write_connection_file(**kwargs)
                if owner._run_as:  # jupyter_client writes it 0600 as the judge: the kernel's user must read it
                    os.chown(self.connection_file, *owner._run_as)

            def client(self, **kwargs: Any) -> Any:
                ctx = zmq.asyncio.Context()
                ctx.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)  # a kernel cannot flood the judge's memory
                owner._ctx = ctx
                return super().client(context=ctx, **kwargs)

        km = _Manager(
            kernel_name="python3", transport="ipc", ip=str(conn / "k"), connection_file=str(conn / "kernel.json")
        )
        km._kernel_spec = KernelSpec(
            argv=["python"],
            display_name="Python 3 (sandboxed)",
            language="python",
            interrupt_mode="message",
            metadata={},
        )
        km.cache_ports = False
        self.km = km
        try:
            await km.start_kernel(
                env=self._env(),
                # the notebooks' own folder, as in Jupyter (their first cell puts ".." on sys.path for the kit)
                cwd=str(self._tmp) if self.isolation.mode == "bwrap" else self._inside_cwd(),
                stdout=self._log,
                stderr=self._log,
                preexec_fn=self._process.preexec,
                pass_fds=self._process.pass_fds(),
            )
        finally:
            # takes charge of the kernel's process (nothing to take when it failed to start) and reads its PID
            proc = km.provisioner.process if km.provisioner is not None else None
            self._process.started(proc, time.perf_counter() + 30)
        self.starts += 1
        self.start_seconds += time.perf_counter() - t0

    async def connect(self, client: Any) -> None:
        """Connect nbclient's `client` to the running kernel and wait until it answers; then the kernel may no
        longer create files in the folder it shares with the judge."""
        t0 = time.perf_counter()
        client.km = self.km
        try:
            await client.async_start_new_kernel_client()
        finally:
            self.start_seconds += time.perf_counter() - t0
        self.kc = client.kc
        self._seal(Path(self.km.connection_file).parent)

    def _seal(self, conn: Path) -> None:
        if os.getuid() != 0:
            return  # the kernel runs as the judge's own user outside: nothing to protect from it
        other = user_ids("nobody") or (65534, 65534)
        try:
            if self._run_as:  # the kernel is `nobody` itself: root owns the folder
                os.chown(conn, 0, 0)
            else:  # bubblewrap as root maps the kernel to root outside, without capabilities
                os.chown(conn, *other)
            os.chmod(conn, 0o755)
        except OSError:
            pass

    def output(self, limit: int = 2000) -> str:
        """The last characters the kernel process wrote outside the notebook protocol (startup errors)."""
        self._log.flush()
        self._log.seek(0, os.SEEK_END)
        size = self._log.tell()
        self._log.seek(max(0, size - 4 * limit))
        return self._log.read().decode("utf-8", "replace")[-limit:]

    # -- ending -------------------------------------------------------------------------------
    def kill(self) -> None:
        """End the kernel and everything it started (its PID namespace under bubblewrap)."""
        if self.kc is not None:
            with contextlib.suppress(Exception):
                self.kc.stop_channels()
            self.kc = None
        if self._ctx is not None:
            with contextlib.suppress(Exception):
                self._ctx.destroy(linger=0)
            self._ctx = None
        self.peak_rss_mb = max(self.peak_rss_mb, self._process.kill())
        if self.km is not None:
            conn = Path(self.km.connection_file).parent
            shutil.rmtree(conn, ignore_errors=True)
            self.km = None

    def close(self) -> None:
        self.kill()
        self._process.close()
        self._log.close()
        shutil.rmtree(self._tmp, ignore_errors=True)
