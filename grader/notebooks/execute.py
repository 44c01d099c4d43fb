"""Running a submission's notebooks, top to bottom, in the same OS sandbox as the grading worker.

Each notebook gets a fresh IPython kernel (ipykernel, driven by nbclient). Under bubblewrap the kernel has the
worker's namespaces (no network, its own PIDs), sees the Python installation and the staged tree read-only
(the kit's helpers with the student's own `.py` files laid over them, at `/sandbox/kit`), runs in a private
`notebooks/` folder and /tmp, and is bound by the worker's cgroup (processes, memory) and by limits it sets on
itself before any cell runs (address space, open files, file size, one math thread). It talks to the judge
over ZeroMQ through Unix sockets (`transport="ipc"`) in a folder shared with the judge for that alone, which
the judge makes read-only to the kernel once it is up. It runs on the offline data set unless told otherwise;
it may see labels, as it decides no score.

A cell that raises is recorded and the next cell runs. A cell that runs past its time limit is interrupted
(and if the kernel does not answer, the kernel is restarted: later cells then lack earlier variables); the
whole notebook has a time limit too, after which the remaining cells are marked as not run. Outputs taken from
the kernel are bounded per cell and per notebook.

The manifest's `[[questions]]` (validated here) name the inline questions a TA grades by hand:

    [[questions]]
    id = "knn_cross_validation"          # letters, digits, _ and -; unique in the assignment
    notebook = "notebooks/knn.ipynb"     # one of the manifest's notebooks
    points = 2                           # for manual grading (never added to the autograder's score)
    tag = "question:knn_cross_validation"   # optional: the cell tag that finds the question's cell
                                            # (default "question:<id>")

The answer is what follows the line `*Your answer:*` in the tagged (Markdown) cell, and any Markdown cells
right after it up to the next heading or code cell.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.course.manifest import Manifest, Question
from grader.sandbox.isolation import SANDBOX_ROOT, Isolation, SandboxConfig, bwrap_base, bwrap_devices
from grader.sandbox.process import Confinement, make_readable, protect, user_ids

CELL_TIMEOUT = 300.0  # seconds per cell ([limits] notebook_cell_timeout)
NOTEBOOK_TIMEOUT = 1800.0  # seconds per notebook, kernel start included ([limits] notebook_timeout)
STARTUP_TIMEOUT = 120.0  # a kernel that is not ready by then is given up
MIN_NOTEBOOK_SECONDS = 20.0  # a notebook is not started with less of the run's budget left (a kernel starts first)
INTERRUPT_GRACE = 10.0  # after an interrupt, how long the kernel has to become responsive again
MAX_CELL_OUTPUT_BYTES = 8 << 20  # outputs taken from the kernel per cell; the rest is dropped, with a note
MAX_NOTEBOOK_OUTPUT_BYTES = 48 << 20  # ... and per notebook
MAX_MESSAGE_BYTES = 32 << 20  # one ZeroMQ message from the kernel
KERNEL_MAX_FILES = 1024
KERNEL_MAX_FILE_BYTES = 256 << 20
ANSWER_MARKER = "*Your answer:*"


# -- the manifest: questions and limits -------------------------------------------------------------------------


def questions(m: Manifest) -> list[Question]:
    """The manifest's `[[questions]]` (validated when the manifest loads: grader.course.manifest)."""
    return list(m.questions)


@dataclass(frozen=True)
class Limits:
    cell_timeout: float = CELL_TIMEOUT
    notebook_timeout: float = NOTEBOOK_TIMEOUT
    memory_mb: int = 4096
    training_scale: float = 1.0  # share of each dlcv.Solver training's iterations the kernel trains


def limits(m: Manifest) -> Limits:
    """The manifest's [limits] for a report run: notebook_cell_timeout, notebook_timeout, memory_mb and
    notebook_training_scale (checked when the manifest loads)."""
    return Limits(m.notebook_cell_timeout, m.notebook_timeout, m.memory_mb, m.notebook_training_scale)


# -- answers ------------------------------------------------------------------------------------------------------


@dataclass
class Answer:
    id: str
    notebook: str
    points: float
    prompt: str  # Markdown, from the course's own notebook when it has the question (else the student's)
    text: str  # the student's answer (Markdown), "" when none
    status: str  # answered | unanswered | missing
    message: str = ""  # why it is missing / what is odd
    cell: int | None = None  # index of the question's cell in the submitted notebook

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "notebook": self.notebook,
            "points": self.points,
            "prompt": self.prompt,
            "answer": self.text,
            "status": self.status,
            "message": self.message,
        }


def _tags(cell: Any) -> list[str]:
    tags = cell.get("metadata", {}).get("tags", []) if isinstance(cell, dict) else []
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def _find(nb: Any, tag: str) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if tag in _tags(c)]


def _split(source: str) -> tuple[str, str | None]:
    """(prompt, answer) of a question cell's text; answer None when the cell has no answer marker."""
    lines = source.split("\n")
    for i, line in enumerate(lines):
        if line.strip().replace("_", "*") == ANSWER_MARKER:
            return "\n".join(lines[:i]).rstrip(), "\n".join(lines[i + 1 :]).strip()
    return source.rstrip(), None


_PLACEHOLDER = re.compile(
    r"^[\s*_]*(todo|your answer( here)?|write your answer here|fill (this )?in)?[\s*_.:]*$", re.IGNORECASE
)


def find_answers(
    qs: list[Question], submitted: dict[str, Any], kit: Path | None = None, problems: dict[str, str] | None = None
) -> list[Answer]:
    """Every question of the manifest, in manifest order, with the student's answer. `submitted`: notebook ->
    its NotebookNode (None when it is missing or unreadable, `problems[notebook]` saying why); `kit`: the course
    folder whose notebooks give the prompts."""
    problems = problems or {}
    kit_nbs: dict[str, Any] = {}
    out = []
    for q in qs:
        if q.notebook not in kit_nbs:
            kit_nbs[q.notebook] = _read_quietly(kit / q.notebook) if kit else None
        course = kit_nbs[q.notebook]
        prompt = ""
        if course is not None:
            found = _find(course, q.tag)
            if found:
                prompt = _split(course.cells[found[0]].source)[0]
        nb = submitted.get(q.notebook)
        if nb is None:
            why = problems.get(q.notebook) or f"{q.notebook} is missing from the submission"
            out.append(Answer(q.id, q.notebook, q.points, prompt or q.title, "", "missing", why))
            continue
        cells = _find(nb, q.tag)
        if not cells:
            out.append(
                Answer(
                    q.id,
                    q.notebook,
                    q.points,
                    prompt or q.title,
                    "",
                    "missing",
                    f"no cell of {q.notebook} carries the tag {q.tag!r} (was the question's cell "
                    "deleted, or its tags removed?)",
                )
            )
            continue
        i = cells[0]
        own_prompt, text = _split(nb.cells[i].source)
        message = "" if len(cells) == 1 else f"{len(cells)} cells carry the tag {q.tag!r}; the first is used"
        if text is None:  # the marker line was removed: the whole cell, less the course's prompt
            text = nb.cells[i].source
            if prompt and text.startswith(prompt):
                text = text[len(prompt) :]
            text = text.strip()
        more = []
        given = {c.source.strip() for c in course.cells} if course is not None else set()
        for c in nb.cells[i + 1 :]:  # an answer continued in Markdown cells the student added below
            if (
                c.cell_type != "markdown"
                or c.source.lstrip().startswith("#")
                or any(t.startswith("question:") for t in _tags(c))
                or ANSWER_MARKER in c.source
                or c.source.strip() in given
            ):
                break
            more.append(c.source.strip())
        text = "\n\n".join(t for t in [text, *more] if t.strip())
        status = "unanswered" if _PLACEHOLDER.match(text) else "answered"
        out.append(
            Answer(
                q.id,
                q.notebook,
                q.points,
                prompt or own_prompt or q.title,
                text if status == "answered" else "",
                status,
                message,
                i,
            )
        )
    return out


def _read_quietly(path: Path) -> Any:
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except Exception:
        return None


def read_notebook(data: bytes, name: str) -> tuple[Any, str]:
    """(NotebookNode, "") for a valid notebook file's bytes, else (None, why, in one sentence)."""
    import nbformat

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return None, f"{name} is not UTF-8 text (byte {e.start}), so it is not a notebook; it was not run."
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as e:
        return None, f"{name} is not valid JSON ({str(e)[:120]}), so it could not be read; it was not run."
    if not isinstance(raw, dict) or not isinstance(raw.get("nbformat"), int):
        return None, f"{name} is JSON but not a notebook (no 'nbformat' version); it was not run."
    if raw["nbformat"] != 4:
        return None, (
            f"{name} is in notebook format version {raw['nbformat']}; this course reads version 4 "
            "(save it again with Jupyter 4 or later); it was not run."
        )
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as e:
        return None, f"{name} is not a valid notebook ({type(e).__name__}: {str(e)[:160]}); it was not run."
    return nb, ""


def never_run(nb: Any) -> bool:
    """Whether no code cell of `nb` has been run (no execution count and no output anywhere)."""
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    return bool(code) and all(c.get("execution_count") is None and not c.get("outputs") for c in code)


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
        from dlcv.data import label_files

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


# -- running notebooks --------------------------------------------------------------------------------------------


@dataclass
class NotebookRun:
    path: str  # the manifest's path of the notebook
    status: str  # ran | missing | unreadable | failed (the kernel could not start) | skipped (no time left)
    message: str = ""
    nb: Any = None  # the executed NotebookNode (None when it could not be read)
    cells: dict[int, str] = field(default_factory=dict)  # cell index -> what happened (raised, timed out, ...)
    seconds: float = 0.0
    kernel_seconds: float = 0.0  # starting kernels (included in seconds)
    kernel_starts: int = 0
    never_run: bool = False  # the submitted file had no output at all (the student never ran it)
    peak_rss_mb: float = 0.0  # the kernel's largest peak resident set while it ran this notebook (VmHWM)

    def summary(self) -> dict:
        return {
            "notebook": self.path,
            "status": self.status,
            "message": self.message,
            "seconds": round(self.seconds, 3),
            "kernel_seconds": round(self.kernel_seconds, 3),
            "kernel_starts": self.kernel_starts,
            "kernel_peak_rss_mb": round(self.peak_rss_mb, 1),
            "cells": {str(k + 1): v for k, v in sorted(self.cells.items())},
        }


def _client_class() -> type:
    from nbclient import NotebookClient

    class BoundedClient(NotebookClient):
        """nbclient's client, taking at most MAX_CELL_OUTPUT_BYTES of outputs per cell from the kernel."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.used: dict[int, int] = {}
            self.total = 0
            self.cut: set[int] = set()

        def process_message(self, msg: dict, cell: Any, cell_index: int) -> Any:
            kind = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
            if kind in ("stream", "display_data", "execute_result", "error", "update_display_data"):
                size = len(json.dumps(msg.get("content", {}), default=str))
                self.used[cell_index] = self.used.get(cell_index, 0) + size
                self.total += size
                if self.used[cell_index] > MAX_CELL_OUTPUT_BYTES or self.total > MAX_NOTEBOOK_OUTPUT_BYTES:
                    self.cut.add(cell_index)
                    return None
            return super().process_message(msg, cell, cell_index)

    return BoundedClient


async def _responsive(kc: Any, timeout: float) -> bool:
    """Whether the kernel answers a kernel_info request within `timeout` seconds (it answers only when idle)."""
    try:
        msg_id = kc.kernel_info()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            reply = await kc.get_shell_msg(timeout=left)
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                return True
    except Exception:
        return False
    return False


async def _execute(
    nb: Any, kernel: KernelSandbox, lim: Limits, run: NotebookRun, out_of_time: str = "the notebook's time limit"
) -> None:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    t0 = time.monotonic()
    deadline = t0 + lim.notebook_timeout
    client = _client_class()(
        nb,
        timeout=int(lim.cell_timeout),
        allow_errors=True,
        kernel_name="python3",
        startup_timeout=int(STARTUP_TIMEOUT),
        iopub_timeout=5,
        record_timing=False,
        interrupt_on_timeout=False,
        raise_on_iopub_timeout=False,
    )

    async def fresh() -> None:  # a start never outlasts the notebook's time (a kernel that hangs as it starts)
        await asyncio.wait_for(kernel.start(), max(1.0, min(STARTUP_TIMEOUT, deadline - time.monotonic())))
        await asyncio.wait_for(kernel.connect(client), max(1.0, min(STARTUP_TIMEOUT, deadline - time.monotonic())))

    try:
        await fresh()
    except Exception as e:
        run.status = "failed"
        run.message = (
            f"the notebook's kernel could not start in the sandbox ({type(e).__name__}: "
            f"{str(e)[:200]}). {kernel.output(600).strip()}"
        ).strip()
        return
    alive = True
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        left = deadline - time.monotonic()
        if left < 1:
            run.cells[index] = f"not run: {out_of_time} ran out"
            cell.outputs = []
            continue
        if not alive:
            if left < MIN_NOTEBOOK_SECONDS:  # no time for a new kernel and the cell
                run.cells[index] = f"not run: {out_of_time} ran out"
                cell.outputs = []
                continue
            try:
                await fresh()
                alive = True
            except Exception as e:
                run.cells[index] = f"not run: the kernel could not be restarted ({type(e).__name__})"
                cell.outputs = []
                continue
        client.timeout = max(1, int(min(lim.cell_timeout, left)))
        try:
            await client.async_execute_cell(cell, index, store_history=True)
        except CellTimeoutError:
            run.cells[index] = f"timed out after {client.timeout} s (interrupted)"
            with contextlib.suppress(Exception):
                await kernel.km.interrupt_kernel()
            if not await _responsive(kernel.kc, INTERRUPT_GRACE):
                run.cells[index] = (
                    f"timed out after {client.timeout} s; the kernel did not stop, so it was "
                    "restarted: later cells run without the variables of earlier ones"
                )
                kernel.kill()
                alive = False
        except DeadKernelError:
            run.cells[index] = (
                "the kernel died while running this cell (out of memory? exit()?); it was "
                "restarted: later cells run without the variables of earlier ones"
            )
            kernel.kill()
            alive = False
        except Exception as e:
            run.cells[index] = f"could not be run ({type(e).__name__}: {str(e)[:200]}); the kernel was restarted"
            kernel.kill()
            alive = False
        else:
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if errors:
                run.cells[index] = f"raised {str(errors[0].get('ename', 'an error'))[:100]}"
        if index in client.cut:
            note = "output cut: it was larger than the grader keeps"
            run.cells[index] = f"{run.cells[index]}; {note}" if index in run.cells else note
    kernel.kill()


def execute_notebooks(
    m: Manifest,
    staged_root: Path,
    notebooks: dict[str, Path],
    isolation: Isolation,
    *,
    problems: dict[str, str] | None = None,
    dataset: str | None = None,
    device: str = "cpu",
    hide: list[str] | None = None,
    lim: Limits | None = None,
    budget: float | None = None,
) -> list[NotebookRun]:
    """Run each of the manifest's notebooks that the submission holds (`notebooks`: manifest path -> the
    submitted copy) on the staged tree `staged_root`, one fresh sandboxed kernel each; in manifest order.

    `budget`: seconds for all of them (what a platform's clock leaves after grading). A notebook gets what is left
    of it, at most its own limit; one that would start with less than MIN_NOTEBOOK_SECONDS left is not run (status
    skipped; its answers are still read from the file as submitted), and cells that the budget cuts off say so."""
    lim = lim or limits(m)
    budget_end = time.monotonic() + budget if budget is not None else None
    problems = problems or {}
    env, read_only = _dataset_env(dataset)
    if lim.training_scale < 1:
        env["DLCV_TRAINING_SCALE"] = repr(lim.training_scale)
    runs: list[NotebookRun] = []
    kernel: KernelSandbox | None = None
    try:
        for path in m.notebooks:
            if path not in notebooks:
                runs.append(
                    NotebookRun(
                        path,
                        "missing",
                        problems.get(path) or f"{path} is missing from the submission, so it was not run.",
                    )
                )
                continue
            try:
                data = Path(notebooks[path]).read_bytes()
            except OSError as e:
                runs.append(NotebookRun(path, "unreadable", f"{path} could not be read ({e.strerror or e})."))
                continue
            nb, why = read_notebook(data, path)
            if nb is None:
                runs.append(NotebookRun(path, "unreadable", why))
                continue
            run = NotebookRun(path, "ran", nb=nb, never_run=never_run(nb))
            own, why = lim, "the notebook's time limit"
            if budget_end is not None:
                left = budget_end - time.monotonic()
                if left < MIN_NOTEBOOK_SECONDS:
                    run.status = "skipped"
                    run.message = (
                        f"{path} was not run: the autograder's time for running notebooks ran out (the platform "
                        "limits each run). Its answers are read from the file as you submitted it."
                    )
                    runs.append(run)
                    continue
                if left < lim.notebook_timeout:
                    own = dataclasses.replace(lim, notebook_timeout=left)
                    why = "the autograder's time for running notebooks"
            if kernel is None:
                kernel = KernelSandbox(
                    staged_root,
                    isolation,
                    memory_mb=lim.memory_mb,
                    device=device,
                    env=env,
                    hide=hide,
                    read_only=read_only,
                )
            starts, seconds = kernel.starts, kernel.start_seconds
            t0 = time.perf_counter()
            asyncio.run(_execute(nb, kernel, own, run, why))
            run.seconds = time.perf_counter() - t0
            run.kernel_seconds = kernel.start_seconds - seconds
            run.kernel_starts = kernel.starts - starts
            run.peak_rss_mb, kernel.peak_rss_mb = kernel.peak_rss_mb, 0.0
            runs.append(run)
    finally:
        if kernel is not None:
            kernel.close()
    return runs


def _dataset_env(dataset: str | None) -> tuple[dict[str, str], list[str]]:
    """The kernel's data set: the offline one (digits) unless `dataset` (or $DLCV_DATASET) says otherwise; for
    CIFAR-10 its folder is bound read-only."""
    name = dataset or "digits"
    env = {"DLCV_DATASET": name}
    read_only: list[str] = []
    if name in ("cifar10", "auto"):
        from dlcv.data import _resolve_root

        root = os.path.realpath(_resolve_root(None))
        if os.path.isdir(root):
            env["DLCV_CIFAR_ROOT"] = root
            read_only.append(root)
    return env, read_only
