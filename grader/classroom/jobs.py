"""`grader batch`'s jobs: one submission graded by `grader grade` in a fresh process (grade_job), and the runners
that run the jobs, on this machine (LocalRunner) or on a Dask cluster (DaskRunner).

Each grading process has its own working folder, $HOME and $TMPDIR (and its own sandbox inside), so nothing one
submission does reaches another's score; it dies with the batch run (stop_all, and PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from grader.classroom.keys import assignment_hash
from grader.course import manifest as manifests
from grader.errors import GraderError
from grader.reports.formats import clean_text

MAX_RETURNED_BYTES = 64 * 2**20  # what one grading may hand back (its reports)

_LIVE: set[subprocess.Popen] = set()  # grading processes in flight here (killed on interrupt)
_LIVE_LOCK = threading.Lock()

# The grading process dies with the thread that started it (PR_SET_PDEATHSIG), so a killed batch run leaves no
# grading behind; it then runs `python -m grader ...` in its place.
_CHILD = (
    "import ctypes, os, signal, sys\n"
    "try:\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"
    "except Exception:\n"
    "    pass\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(137)\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'grader', *sys.argv[2:]])\n"
)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all() -> None:
    with _LIVE_LOCK:
        for proc in list(_LIVE):
            _kill_group(proc)


def grade_job(job: dict) -> dict:
    """Grade one submission in a fresh `grader grade` process; returns its status and the files it wrote.

    `job`: path, assignment, kit, kit_hash, args (extra `grader grade` arguments), limit (seconds), threads.
    On a Dask worker the kit may live elsewhere: the installed one is used when its hash matches."""
    t0 = time.perf_counter()
    host = socket.gethostname()

    def outcome(status: str, error: str = "", files: dict | None = None) -> dict:
        return {
            "status": status,
            "error": error,
            "files": files or {},
            "host": host,
            "seconds": round(time.perf_counter() - t0, 3),
        }

    kit = Path(job["kit"])
    if not (kit / "assignments" / job["assignment"]).is_dir():
        kit = manifests.course_root()
    try:
        here = assignment_hash(kit, job["assignment"])
    except GraderError as e:
        return outcome("error", f"{host}: cannot load the assignment: {e}")
    if here != job["kit_hash"]:
        return outcome(
            "error",
            f"{host}: this machine's copy of the course ({kit}) differs from the one the batch "
            "was started with (checks, kit files or grader code); install the same kit there",
        )
    path = Path(job["path"])
    if not path.exists():
        return outcome(
            "error",
            f"{host}: {path} is not visible on this machine; the workers need the submissions "
            "at the same path (a shared file system)",
        )
    with tempfile.TemporaryDirectory(prefix="grader-batch-job-") as tmp:
        tmp = Path(tmp)
        for d in ("out", "home", "tmp", "work"):
            (tmp / d).mkdir()
        env = {
            **os.environ,
            "HOME": str(tmp / "home"),
            "TMPDIR": str(tmp / "tmp"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": str(job.get("threads", 1)),
            "MKL_NUM_THREADS": str(job.get("threads", 1)),
        }
        argv = [
            sys.executable,
            "-c",
            _CHILD,
            str(os.getpid()),
            "--course",
            str(kit),
            "grade",
            str(path),
            "--assignment",
            job["assignment"],
            "--out",
            str(tmp / "out"),
            "--format",
            "json",
            "--no-color",
            *job.get("args", []),
        ]
        proc = subprocess.Popen(
            argv,
            cwd=tmp / "work",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        with _LIVE_LOCK:
            _LIVE.add(proc)
        try:
            _, err = proc.communicate(timeout=job["limit"])
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            return outcome("timeout", f"grading took longer than {job['limit']:g} s and was stopped")
        finally:
            _kill_group(proc)  # whatever it left running in its session
            with _LIVE_LOCK:
                _LIVE.discard(proc)
        files = _collect(tmp / "out")
        if proc.returncode not in (0, 1) or "results.json" not in files:
            tail = clean_text(err.decode("utf-8", "replace")).strip().splitlines()
            why = next((line for line in reversed(tail) if "error" in line.lower()), tail[-1] if tail else "")
            return outcome(
                "error", f"the grader stopped (exit status {proc.returncode}): {why[:500]}".rstrip(": "), files
            )
        return outcome("graded", "", files)


def _collect(out: Path) -> dict[str, bytes]:
    files, total = {}, 0
    for p in sorted(out.rglob("*")):
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
            if total > MAX_RETURNED_BYTES:
                break
            files[p.relative_to(out).as_posix()] = p.read_bytes()
    return files


# -- running jobs -----------------------------------------------------------------------------------------------


class LocalRunner:
    """`--jobs N` grading processes at a time on this machine."""

    def __init__(self, jobs: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="grade")
        self.where = f"this machine, {jobs} at a time"

    def run(self, jobs: list[tuple[Any, dict]]) -> Iterator[tuple[Any, dict]]:
        futures: dict[Future, Any] = {self.pool.submit(grade_job, job): tag for tag, job in jobs}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield futures[f], _result_of(f)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class DaskRunner:
    """The same jobs on a Dask distributed cluster (dask's Client, submit and as_completed)."""

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise GraderError(
                "--scheduler needs Dask's distributed scheduler: pip install 'dask[distributed]' "
                "(`make install` installs it with the instructor's kit)"
            ) from None
        try:
            self.client = Client(address, timeout="30s")
        except Exception as e:  # OSError, TimeoutError, ...
            raise GraderError(f"--scheduler {address}: cannot connect ({type(e).__name__}: {e})") from None
        workers = self.client.scheduler_info().get("workers", {})
        threads = sum(w.get("nthreads", 1) for w in workers.values())
        self.where = f"Dask at {address}, {len(workers)} worker(s), {threads} thread(s)"

    def run(self, jobs: list[tuple[Any, dict]]) -> Iterator[tuple[Any, dict]]:
        from distributed import as_completed

        tags, futures = {}, []
        for tag, job in jobs:
            f = self.client.submit(grade_job, job, pure=False, key=f"grade-{job['slug']}-{uuid.uuid4().hex[:8]}")
            tags[f.key] = tag
            futures.append(f)
        for f in as_completed(futures):
            yield tags[f.key], _result_of(f)
            f.release()

    def close(self) -> None:
        self.client.close()


def _result_of(f: Any) -> dict:
    try:
        return f.result()
    except Exception as e:  # a worker that died, a job that could not run
        return {
            "status": "error",
            "error": f"the grading job failed ({type(e).__name__}: {e})"[:1000],
            "files": {},
            "host": "",
            "seconds": 0.0,
        }
