"""`grader batch`: grade a whole class into a gradebook, resumably, on this machine or on a Dask cluster.

INPUT is a folder (or a .zip of one) holding one subfolder or .zip per student (the name is the student's id),
Gradescope's "Export Submissions" archive (`submission_metadata.yml` gives names, emails and ids), or a folder of
cloned GitHub Classroom repositories. A submission that cannot be read becomes a row with its error.

Each submission is graded by `grader grade` in a fresh process, with its own working folder, $HOME and $TMPDIR
(and its own sandbox inside), so nothing one submission does reaches another's score. The batch process never
runs student code: it reads the submitted files (to hash them and to compare them for similarity) and writes
what the grading processes return. Results are written atomically to `DIR/<student>/`, last `batch.json`, the
record keyed by the content hash of the graded files, the assignment's checks and kit, the grader version and
the options: a second run skips every unchanged submission, and a killed run loses only those in flight.
`DIR/gradebook.csv`, `DIR/canvas.csv` and `DIR/canvas-review.csv` are rewritten as each result arrives;
`DIR/similarity.csv` and `DIR/class.html` at the end.

canvas.csv is for Canvas's gradebook import (app/models/gradebook_importer.rb in canvas-lms), whose rules decide
its shape: a column is matched to an existing assignment by the id ending its header, `Title (12345)` (the id comes
from the manifest's `canvas_assignment_id` or `--canvas-id`; without one the column is unmatched, and Canvas asks
the teacher to map it or create a new assignment); and a blank cell over a score already in Canvas counts as a
change, which would clear that score. So a student without a score (an error, a timeout, not graded yet) has no
row there, which Canvas leaves untouched, and is listed in canvas-review.csv instead, which Canvas refuses to import.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.course import manifest as manifests
from grader.course.manifest import Manifest
from grader.errors import GraderError
from grader.reports.formats import clean_text, write_atomic

STATE = ".batch"  # DIR/.batch: the lock and the unpacked class archive
RECORD = "batch.json"  # DIR/<student>/batch.json: the record, written last
METADATA = "submission_metadata.yml"
SKIPPED = {"__MACOSX", "__pycache__"}
MAX_RETURNED_BYTES = 64 * 2**20  # what one grading may hand back (its reports)
MAX_CLASS_BYTES = 20 * 2**30  # a class archive unpacked, all entries together
MAX_FIELD = 200  # characters kept of a student id, name or email from a Gradescope export
LIMIT_MARGIN = 300.0  # seconds a grading process gets beyond the manifest's own grading budget
STATUSES = ("graded", "error", "timeout")
# the grader's code that only writes tables, kits or annotations: not part of what a cached result depends on
NOT_ENGINE = ("classroom/", "kit/", "reports/annotate.py", "cli.py")
GRADER_ROOT = Path(__file__).resolve().parents[1]


def engine_files(grader_root: Path = GRADER_ROOT) -> list[str]:
    """The grader's grading code, as paths relative to the package (every .py file in every subpackage, less
    NOT_ENGINE): moving or renaming a module changes the list, and so the cache key."""
    rels = sorted(p.relative_to(grader_root).as_posix() for p in grader_root.rglob("*.py"))
    return [r for r in rels if "__pycache__" not in r and not r.startswith(NOT_ENGINE)]


# -- inputs -------------------------------------------------------------------------------------------------------


@dataclass
class Student:
    id: str
    name: str = ""
    email: str = ""


@dataclass
class Submission:
    """One thing to grade: a folder or a zip, for one student (or a Gradescope group)."""

    students: list[Student]
    path: Path | None
    error: str = ""  # why it cannot be graded at all ("" when it can)
    slug: str = ""  # its folder under DIR (a safe, unique form of the first student's id)
    digest: str = ""  # content hash of the graded files (grader.course.intake.stage)
    refused: str = ""  # the archive was refused by the intake: why
    notebooks: str = ""  # content hash of the notebooks kept for the report (names, bytes, problems)
    sources: dict[str, str] = field(default_factory=dict)  # graded file -> text (for similarity)
    key: str = ""  # what a stored result must match to be reused

    @property
    def id(self) -> str:
        return self.students[0].id


def discover(src: Path, state: Path) -> list[Submission]:
    """The submissions in INPUT, sorted by student id. A .zip INPUT is unpacked under `state` first."""
    if not src.exists():
        raise GraderError(f"{src}: no such file or folder")
    if src.is_file():
        if src.suffix.lower() != ".zip":
            raise GraderError(f"{src}: expected a folder of submissions, or a .zip of one")
        target = state / "input"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        _unpack_class(src, target)
        src = target
    meta = _find_metadata(src)
    if meta is not None:
        subs = _gradescope(meta)
    else:
        entries = sorted(e for e in src.iterdir() if not e.name.startswith(".") and e.name not in SKIPPED)
        repos = [e for e in entries if e.is_dir() and (e / ".git").exists()]
        prefix = _common_prefix([e.name for e in repos]) if len(repos) == len(entries) and len(repos) > 1 else ""
        subs = []
        for e in entries:
            sid = e.name[len(prefix) :] if prefix else (e.stem if e.is_file() else e.name)
            if e.is_symlink():
                subs.append(
                    Submission([Student(sid)], None, error=f"{e.name} is a symbolic link; links are not followed")
                )
            elif e.is_dir() or (e.is_file() and e.suffix.lower() == ".zip"):
                subs.append(Submission([Student(sid)], e))
            else:
                subs.append(
                    Submission(
                        [Student(sid)],
                        None,
                        error=f"{e.name} is not a folder or a .zip archive, so it cannot be graded",
                    )
                )
    subs.sort(key=lambda s: (s.id.lower(), s.id))
    _assign_slugs(subs)
    return subs


def _common_prefix(names: list[str]) -> str:
    """GitHub Classroom names each repository `<assignment prefix>-<user>`: the shared prefix up to its last '-'."""
    prefix = os.path.commonprefix(names)  # noqa: RUF071 - characters, not path components
    cut = prefix.rfind("-")
    return prefix[: cut + 1] if cut > 0 else ""


def _find_metadata(src: Path) -> Path | None:
    """The export's metadata: in INPUT itself, or in INPUT's only entry when that is a folder (an export zipped
    with its folder). One student's folder among others, or beside a file, is never taken for an export."""
    if (src / METADATA).is_file():
        return src / METADATA
    tops = [e for e in src.iterdir() if not e.name.startswith(".") and e.name not in SKIPPED]
    if len(tops) != 1:
        return None
    meta = tops[0] / METADATA
    try:
        if tops[0].is_symlink() or not tops[0].is_dir() or meta.is_symlink() or not meta.is_file():
            return None
    except OSError:
        return None
    return meta


def _field(value: Any) -> str:
    """A submitter's id, name or email from the export: a plain scalar (never a list or mapping, whose text could
    be huge), cut to MAX_FIELD characters; "" for anything else."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return ""
    return clean_text(str(value)).strip()[:MAX_FIELD]


def _folder_problem(folder: Any) -> str:
    """Why `folder` (a key of the export's metadata) is not a plain folder name, or ""."""
    from grader.course.intake import _show

    if isinstance(folder, bool) or not isinstance(folder, (str, int)):
        return f"{METADATA} names a submission folder that is not a name ({type(folder).__name__})"
    name = str(folder)
    if (
        not name
        or "/" in name
        or "\\" in name
        or "\0" in name
        or name in (".", "..")
        or len(name.encode("utf-8", "surrogatepass")) > 255
    ):
        return f"{METADATA} names a submission folder {_show(name)}, which is not a plain folder name"
    return ""


def _gradescope(meta: Path) -> list[Submission]:
    """Gradescope's export: `submission_<n>/` folders and a YAML file naming each one's submitters."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - installed with the instructor's kit
        raise GraderError("reading a Gradescope export needs PyYAML (`make install` installs it)") from None
    try:
        data = yaml.safe_load(meta.read_text(encoding="utf-8", errors="replace")) or {}
    except yaml.YAMLError as e:
        raise GraderError(f"{meta}: not readable YAML ({e})") from None
    if not isinstance(data, dict):
        raise GraderError(f"{meta}: expected a mapping of submission folders to their submitters")
    subs = []
    for folder, info in data.items():
        problem = _folder_problem(folder)
        fallback = _field(folder) or "submission"
        info = {k.lstrip(":"): v for k, v in info.items() if isinstance(k, str)} if isinstance(info, dict) else {}
        submitters = info.get("submitters")
        people = []
        for person in submitters if isinstance(submitters, list) else []:
            p = {k.lstrip(":"): v for k, v in person.items() if isinstance(k, str)} if isinstance(person, dict) else {}
            name, email = _field(p.get("name")), _field(p.get("email"))
            sid = _field(p.get("sid")) or email or name
            people.append(Student(sid or fallback, name, email))
        people = people or [Student(fallback)]
        if problem:
            subs.append(Submission(people, None, error=problem))
            continue
        path = meta.parent / str(folder)
        try:
            present = not path.is_symlink() and path.is_dir()
        except (OSError, ValueError):
            present = False
        if present:
            subs.append(Submission(people, path))
        else:
            subs.append(Submission(people, None, error=f"{folder}/ is not in the export (listed in {METADATA})"))
    return subs


def _unpack_class(archive: Path, dest: Path) -> None:
    """Unpack a class archive (a Gradescope export, a folder of zips): no entry may leave `dest`; links and
    special files are skipped, and so are entries nested too deeply or compressed suspiciously well (a zip
    bomb); all entries together may unpack to at most MAX_CLASS_BYTES. Each student's own zip inside is
    unpacked later, with the intake's limits."""
    from grader.course.intake import (
        MAX_DEPTH,
        MAX_RATIO,
        RATIO_FLOOR,
        SubmissionError,
        TooDeepError,
        _entry_parts,
        _show,
    )

    def skip(info: zipfile.ZipInfo, why: str) -> None:  # a bad entry spoils one student's files, not the run
        print(f"grader batch: {archive.name}: entry {_show(info.filename)} {why}; skipped", file=sys.stderr)

    try:
        zf = zipfile.ZipFile(archive)
    except Exception as e:  # whatever a broken archive raises
        raise GraderError(f"{archive}: not a readable zip archive ({type(e).__name__}: {e})") from None
    total = 0
    with zf:
        for info in zf.infolist():
            try:
                parts = _entry_parts(archive.name, info.filename)
            except TooDeepError:
                skip(info, f"lies more than {MAX_DEPTH} folders deep")
                continue
            except SubmissionError as e:
                raise GraderError(str(e)) from None
            kind = (info.external_attr >> 16) & 0o170000
            if not parts or info.is_dir() or (kind and kind != 0o100000):
                continue
            ratio = info.file_size // max(info.compress_size, 1)
            if info.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
                skip(info, f"is compressed {ratio:,} times (a zip bomb?), expected at most {MAX_RATIO} times")
                continue
            if total + info.file_size > MAX_CLASS_BYTES:
                raise GraderError(
                    f"{archive}: unpacks to more than {MAX_CLASS_BYTES:,} bytes; unpack it yourself and pass the folder"
                )
            target = dest.joinpath(*parts)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as f, open(target, "wb") as out:
                    left = info.file_size + 1  # at most the declared size + 1: a lying header cannot exceed it
                    while left > 0:
                        chunk = f.read(min(left, 2**20))
                        if not chunk:
                            break
                        out.write(chunk)
                        left -= len(chunk)
                    if left <= 0:
                        raise ValueError("the entry is larger than its header says")
            except Exception as e:
                with contextlib.suppress(OSError):
                    target.unlink(missing_ok=True)
                skip(info, f"could not be unpacked ({type(e).__name__}: {e})")
                continue
            total += info.file_size


_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


def _assign_slugs(subs: list[Submission]) -> None:
    used: set[str] = set()
    for s in subs:
        base = _UNSAFE.sub("_", clean_text(s.id)).strip("._")[:80] or "student"
        slug, n = base, 2
        while slug.lower() in used or slug.lower() in (
            STATE,
            "gradebook.csv",
            "canvas.csv",
            "canvas-review.csv",
            "class.html",
            "similarity.csv",
        ):
            slug, n = f"{base}-{n}", n + 1
        used.add(slug.lower())
        s.slug = slug


# -- keys: what a stored result must match --------------------------------------------------------------------


def _hash_tree(h: Any, root: Path, skip: set[str] = frozenset()) -> None:
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for p in paths:
        rel = p.relative_to(root.parent).as_posix()
        if "__pycache__" in p.parts or p.suffix == ".pyc" or rel in skip:
            continue
        h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")


def assignment_hash(kit: Path, name: str, engine: Path = GRADER_ROOT) -> str:
    """A hash of what grades `name`: its folder (manifest, checks, oracles), the kit files laid around the
    submission (`sandbox_paths`, the graded files left out), the grader's version and its grading code. Fixing a
    check changes it, so the next run regrades everything."""
    from grader import __version__ as VERSION

    m = manifests.load(name, kit)
    h = hashlib.sha256(f"{name}\0{VERSION}\0".encode())
    _hash_tree(h, m.dir)
    for rel in engine_files(engine):
        h.update(rel.encode() + b"\0" + (engine / rel).read_bytes() + b"\0")
    for rel in m.sandbox_paths:
        if (kit / rel).exists():
            _hash_tree(h, kit / rel, skip=set(m.files))
    return h.hexdigest()


def prepare(sub: Submission, m: Manifest, kit: Path) -> None:
    """Read the submission as the grader will (grader.course.intake.stage: no code runs): its digest and sources."""
    from grader.course.intake import stage

    if sub.error:
        sub.digest = hashlib.sha256(b"error\0" + sub.error.encode()).hexdigest()
        return
    with tempfile.TemporaryDirectory(prefix="grader-batch-stage-") as tmp:
        try:
            staged = stage(m, kit, sub.path, Path(tmp) / "kit")
            notebooks = _notebooks_hash(staged.notebooks, staged.notebook_problems)
        except Exception as e:  # GraderError, or whatever a hostile folder makes the reading raise
            sub.error = str(e) if isinstance(e, GraderError) else f"the submission could not be read ({_why(e)})"
            sub.digest = hashlib.sha256(b"error\0" + sub.error.encode()).hexdigest()
            return
    sub.digest, sub.refused, sub.sources = staged.digest, staged.refused, dict(staged.sources)
    sub.notebooks = notebooks


def _why(e: BaseException) -> str:
    return f"{type(e).__name__}: {clean_text(str(e))[:300]}"


def _notebooks_hash(notebooks: dict[str, Path], problems: dict[str, str]) -> str:
    """A hash of the notebooks a report is made from (names and bytes) and of why any was not taken."""
    h = hashlib.sha256()
    for name in sorted(notebooks):
        h.update(b"nb\0" + name.encode() + b"\0" + Path(notebooks[name]).read_bytes() + b"\0")
    for name in sorted(problems):
        h.update(b"problem\0" + name.encode() + b"\0" + problems[name].encode("utf-8", "replace") + b"\0")
    return h.hexdigest()


def result_key(digest: str, assignment: str, options: dict) -> str:
    return hashlib.sha256(json.dumps([digest, assignment, options], sort_keys=True).encode()).hexdigest()


# -- one grading job (runs on this machine or on a Dask worker) ----------------------------------------------------

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


# -- progress ---------------------------------------------------------------------------------------------------


class Progress:
    """A tqdm bar (done, failed, ETA) on a terminal; plain lines elsewhere (CI, a log file)."""

    def __init__(self, total: int, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.total, self.done, self.failed, self.t0 = total, 0, 0, time.perf_counter()
        tty = getattr(self.stream, "isatty", lambda: False)() and not os.environ.get("CI")
        self.bar = None
        if tty and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=self.stream, unit="submission", dynamic_ncols=True)

    def update(self, who: str, status: str, score: str) -> None:
        self.done += 1
        self.failed += status != "graded"
        if self.bar is not None:
            self.bar.set_postfix_str(f"failed {self.failed}, last {who}: {status} {score}".strip())
            self.bar.update(1)
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        print(
            f"[{self.done}/{self.total}] {who}: {status} {score}".rstrip()
            + f" (failed {self.failed}, ETA {_duration(eta)})",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"


# -- records, gradebook, canvas -----------------------------------------------------------------------------------


def _num(x: Any) -> str:
    if x is None or x == "":
        return ""
    return f"{float(x):.4f}".rstrip("0").rstrip(".")


def _cell(text: Any) -> str:
    """Text for a spreadsheet cell: printable, and never read as a formula (a leading = + - @ gets a quote)."""
    text = clean_text(text).replace("\n", " ").strip()
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    write_atomic(path, buf.getvalue())


def gradebook_rows(m: Manifest, subs: list[Submission], records: dict[str, dict]) -> list[list[str]]:
    head = [
        "student_id",
        "name",
        "email",
        *[p.name for p in m.parts],
        "total",
        "max",
        "status",
        "error",
        "seconds",
        "dataset",
        "device",
        "grader_version",
        "digest",
    ]
    rows = [
        head,
        [
            "Points Possible",
            "",
            "",
            *[_num(p.points) for p in m.parts],
            _num(m.points),
            _num(m.points),
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ],
    ]
    for s in subs:
        r = records.get(s.slug)
        for st in s.students:
            if r is None:
                rows.append(
                    [
                        _cell(st.id),
                        _cell(st.name),
                        _cell(st.email),
                        *[""] * len(m.parts),
                        "",
                        "",
                        "pending",
                        "",
                        "",
                        "",
                        "",
                        "",
                        s.digest,
                    ]
                )
                continue
            parts = r.get("parts") or {}
            rows.append(
                [
                    _cell(st.id),
                    _cell(st.name),
                    _cell(st.email),
                    *[_num(parts.get(p.name)) for p in m.parts],
                    _num(r.get("score")),
                    _num(r.get("max_score")),
                    r["status"],
                    _cell(r.get("error", "")),
                    _num(r.get("seconds")),
                    _cell(r.get("dataset", "")),
                    _cell(r.get("device", "")),
                    _cell(r.get("grader_version", "")),
                    r.get("digest", ""),
                ]
            )
    return rows


CANVAS_INFO = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]  # what Canvas's import reads a student by
# headers Canvas's import takes for totals and ignores: a title holding one would be dropped without a word
# (gradebook_importer.rb NON_ASSIGNMENT_COLUMN_HEADERS, matched anywhere in the header)
CANVAS_TOTALS = (
    "Current Score",
    "Current Points",
    "Current Grade",
    "Final Score",
    "Final Points",
    "Final Grade",
    "Override Score",
    "Override Grade",
    "Override Status",
)


def canvas_id_help(m: Manifest) -> str:
    return (
        f"run `grader batch` again with --canvas-id ID (nothing is regraded), or set canvas_assignment_id = ID in "
        f"assignments/{m.name}/assignment.toml; ID is the number ending the assignment's Canvas address "
        "(.../courses/1/assignments/ID)"
    )


def canvas_title(m: Manifest, canvas_id: int | None) -> str:
    """The assignment's column: `Title (12345)` with the Canvas id, which Canvas matches to that assignment. Without
    one, a title that ends in no number, which Canvas cannot match: its import stops to ask the teacher to map the
    column to an assignment (or create one), and the title says how to set the id."""
    if canvas_id:
        return f"{m.title} ({canvas_id})"
    return f"{m.title} ({m.name}: no Canvas assignment id, set one with grader batch --canvas-id)"


def _canvas_split(subs: list[Submission], records: dict[str, dict]) -> tuple[list, list]:
    """(students with a score, students to review with why): a score is only a graded record's."""
    ready, review = [], []
    for s in subs:
        r = records.get(s.slug)
        score = _num(r.get("score")) if r and r.get("status") == "graded" else ""
        for st in s.students:
            if score:
                ready.append((st, score))
            elif r is None:
                review.append((st, "pending", "not graded yet"))
            elif r.get("status") == "graded":
                review.append((st, "graded", "graded, but its results hold no score"))
            else:
                review.append((st, r.get("status", "error"), r.get("error", "")))
    return ready, review


def canvas_rows(
    m: Manifest, subs: list[Submission], records: dict[str, dict], canvas_id: int | None = None
) -> list[list[str]]:
    """Canvas's grade import: Student, ID, SIS User ID, SIS Login ID, Section, then the assignment's column, a
    Points Possible row, and a row per student with a score. A student without one has no row: Canvas leaves a
    student the file does not name as they are, while a blank cell (or "-") over a score counts as a change."""
    rows = [[*CANVAS_INFO, _cell(canvas_title(m, canvas_id))], ["Points Possible", "", "", "", "", _num(m.points)]]
    ready, _ = _canvas_split(subs, records)
    for st, score in ready:
        rows.append([_cell(st.name or st.id), "", _cell(st.id), _cell(st.email or st.id), "", score])
    return rows


def canvas_review_rows(subs: list[Submission], records: dict[str, dict]) -> list[list[str]]:
    """The students canvas.csv leaves out, so that their Canvas scores stay as they are: to grade again or by hand.
    Its first header is no `Student`, so Canvas refuses it ("Invalid header row") if it is imported by mistake."""
    _, review = _canvas_split(subs, records)
    rows = [["status", "student_id", "name", "email", "why"]]
    for st, status, why in review:
        rows.append([status, _cell(st.id), _cell(st.name), _cell(st.email), _cell(why)])
    return rows


def canvas_notes(m: Manifest, canvas_id: int | None, subs: list[Submission], records: dict[str, dict]) -> list[str]:
    """What the teacher must know before importing canvas.csv."""
    notes = []
    if not canvas_id:
        notes.append(
            "canvas.csv has no Canvas assignment id, so Canvas's import cannot match its column to the assignment "
            f"(it will ask you to pick one or create a new one): {canvas_id_help(m)}"
        )
    totals = [t for t in CANVAS_TOTALS if t in m.title]
    if totals:
        notes.append(
            f"canvas.csv: the title {m.title!r} holds {totals[0]!r}, which Canvas's import takes for a total and "
            "ignores: change the manifest's title"
        )
    _, review = _canvas_split(subs, records)
    if review:
        notes.append(
            f"canvas.csv leaves out {len(review)} student(s) without a score (error, timeout or not graded yet), so "
            "their Canvas scores stay as they are: see canvas-review.csv"
        )
    return notes


def write_tables(
    out: Path, m: Manifest, subs: list[Submission], records: dict[str, dict], canvas_id: int | None = None
) -> None:
    _write_csv(out / "gradebook.csv", gradebook_rows(m, subs, records))
    _write_csv(out / "canvas.csv", canvas_rows(m, subs, records, canvas_id))
    _write_csv(out / "canvas-review.csv", canvas_review_rows(subs, records))


def load_record(folder: Path) -> dict | None:
    try:
        r = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return r if isinstance(r, dict) and r.get("status") in STATUSES and "key" in r else None


def save_result(out: Path, sub: Submission, reply: dict, run_id: str) -> dict:
    """Write one submission's files and then its record (atomically, record last); returns the record."""
    folder = out / sub.slug
    folder.mkdir(parents=True, exist_ok=True)
    old = load_record(folder) or {}
    files: dict[str, bytes] = reply.get("files") or {}
    for rel in sorted(files, key=lambda r: r == "results.json"):  # results.json last of the reports
        target = folder / rel
        if target.resolve().parent != folder.resolve() and folder.resolve() not in target.resolve().parents:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_bytes_atomic(target, files[rel])
    for rel in set(old.get("files", [])) - set(files):  # reports of an earlier grading
        if not rel.startswith("/") and ".." not in Path(rel).parts:
            (folder / rel).unlink(missing_ok=True)
    record = {
        "key": sub.key,
        "status": reply["status"],
        "error": reply.get("error", ""),
        "seconds": reply.get("seconds"),
        "host": reply.get("host", ""),
        "run": run_id,
        "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "digest": sub.digest,
        "students": [s.__dict__ for s in sub.students],
        "files": sorted(files),
    }
    summary = _summary(files.get("results.json"))
    record.update(summary)
    if record["status"] == "graded" and sub.refused:
        record.update(status="error", error=sub.refused)
    write_atomic(folder / RECORD, json.dumps(record, indent=1) + "\n")
    return record


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _summary(results: bytes | None) -> dict:
    if not results:
        return {}
    try:
        data = json.loads(results)
        extra = data.get("extra_data", {})
        return {
            "score": sum(t.get("score", 0) for t in data.get("tests", [])),
            "max_score": sum(t.get("max_score", 0) for t in data.get("tests", [])),
            "parts": {p["name"]: p["score"] for p in extra.get("parts", [])},
            "dataset": extra.get("dataset", ""),
            "device": extra.get("device", ""),
            "grader_version": extra.get("grader_version", ""),
            "graded_digest": extra.get("digest", ""),
        }
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}


# -- the run ----------------------------------------------------------------------------------------------------


@dataclass
class Options:
    input: Path
    assignment: str
    out: Path
    kit: Path
    hidden: bool = False
    report: bool = False
    jobs: int = 0
    scheduler: str | None = None
    force: bool = False
    retry_errors: bool = False
    only: list[str] = field(default_factory=list)
    device: str = "cpu"
    dataset: str | None = None
    sandbox: str = "auto"
    allow_weak_sandbox: bool = False
    limit: float | None = None
    similarity: bool = True
    canvas_id: int | None = None  # the Canvas assignment id for canvas.csv (default: the manifest's)


@dataclass
class Summary:
    graded: int = 0  # gradings run in this run
    skipped: int = 0  # unchanged, reused
    failed: int = 0  # error or timeout, in this run
    total: int = 0
    where: str = ""
    seconds: float = 0.0
    run_id: str = ""
    paths: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what to know before importing (canvas.csv)


class _Lock:
    """One `grader batch` at a time per output folder (an flock, released when the process ends, even killed)."""

    def __init__(self, state: Path) -> None:
        import fcntl

        state.mkdir(parents=True, exist_ok=True)
        self.f = open(state / "lock", "a+")  # held for the run
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.f.seek(0)
            holder = self.f.read().strip()
            self.f.close()
            raise GraderError(
                f"--out {state.parent}: another `grader batch` run is writing there "
                f"({holder or 'pid unknown'}); wait for it to finish or choose another --out"
            ) from None
        self.f.seek(0)
        self.f.truncate()
        self.f.write(f"pid {os.getpid()} on {socket.gethostname()}")
        self.f.flush()

    def release(self) -> None:
        self.f.close()


def grade_args(o: Options) -> list[str]:
    args = ["--device", o.device, "--sandbox", o.sandbox]
    if o.hidden:
        args.append("--hidden")
    if o.allow_weak_sandbox:
        args.append("--allow-weak-sandbox")
    if o.report:
        args.append("--report")
    if o.dataset:
        args += ["--dataset", o.dataset]
    return args


def run_batch(o: Options, on_progress: Callable[[int, int], None] | None = None, stream: Any = None) -> Summary:
    """Grade every submission in `o.input` into `o.out` (see the module docstring)."""
    from grader.judge.runner import choose_isolation, resolve_device

    t0 = time.perf_counter()
    if o.canvas_id is not None:
        o.canvas_id = canvas_id_option(o.canvas_id)
    m = manifests.load(o.assignment, o.kit)
    if o.scheduler is None:
        resolve_device(o.device)  # a bad --device fails here, not once per student
        choose_isolation(o.sandbox, hidden=o.hidden, allow_weak=o.allow_weak_sandbox)
    o.out.mkdir(parents=True, exist_ok=True)
    lock = _Lock(o.out / STATE)
    try:
        return _run(o, m, t0, on_progress, stream or sys.stderr)
    finally:
        lock.release()


def _run(o: Options, m: Manifest, t0: float, on_progress: Callable | None, stream: Any) -> Summary:
    run_id = uuid.uuid4().hex[:12]
    subs = discover(o.input.resolve(), o.out / STATE)
    kit_hash = assignment_hash(o.kit, m.name)
    options = {"hidden": o.hidden, "report": o.report, "device": o.device, "dataset": o.dataset}
    only = {x.lower() for x in o.only}
    unknown = only - {st.id.lower() for s in subs for st in s.students} - {s.slug.lower() for s in subs}
    if unknown:
        raise GraderError(f"--only: no submission for {sorted(unknown)} in {o.input}")
    records: dict[str, dict] = {}
    todo: list[Submission] = []
    for s in subs:
        prepare(s, m, o.kit)
        # with --report the stored result holds the notebook report: a changed notebook is a change
        s.key = result_key(s.digest, kit_hash, {**options, "notebooks": s.notebooks} if o.report else options)
        old = load_record(o.out / s.slug)
        chosen = not only or s.slug.lower() in only or any(st.id.lower() in only for st in s.students)
        if old is not None and (
            not chosen or (old["key"] == s.key and not o.force and not (o.retry_errors and old["status"] != "graded"))
        ):
            records[s.slug] = old
        elif not chosen:
            continue
        elif s.error:
            records[s.slug] = save_result(o.out, s, {"status": "error", "error": s.error}, run_id)
        else:
            todo.append(s)
    subs = [s for s in subs if s.slug in records or s in todo]
    canvas_id = o.canvas_id or m.canvas_assignment_id
    write_tables(o.out, m, subs, records, canvas_id)
    unreadable = sum(1 for s in subs if records.get(s.slug, {}).get("run") == run_id)
    summary = Summary(total=len(subs), skipped=len(subs) - len(todo) - unreadable, failed=unreadable, run_id=run_id)
    limit = o.limit or m.grading_timeout + LIMIT_MARGIN
    jobs_n = o.jobs or os.cpu_count() or 1
    threads = max(1, (os.cpu_count() or 1) // jobs_n)
    args = grade_args(o)
    runner = DaskRunner(o.scheduler) if o.scheduler else LocalRunner(jobs_n)
    summary.where = runner.where
    print(
        f"grader batch: {m.name}: {len(subs)} submission(s), {summary.skipped} unchanged, {len(todo)} to grade "
        f"on {runner.where}",
        file=stream,
        flush=True,
    )
    if not canvas_id:
        print(
            f"grader batch: canvas.csv will have no Canvas assignment id: {canvas_id_help(m)}", file=stream, flush=True
        )
    progress = Progress(len(todo), stream)
    jobs = [
        (
            s,
            {
                "slug": s.slug,
                "path": str(s.path.resolve()),
                "assignment": m.name,
                "kit": str(o.kit),
                "kit_hash": kit_hash,
                "args": args,
                "limit": limit,
                "threads": threads,
            },
        )
        for s in todo
    ]
    try:
        for s, reply in runner.run(jobs):
            r = save_result(o.out, s, reply, run_id)
            records[s.slug] = r
            summary.graded += 1
            summary.failed += r["status"] != "graded"
            write_tables(o.out, m, subs, records, canvas_id)
            progress.update(
                s.id, r["status"], f"{_num(r.get('score'))}/{_num(r.get('max_score'))}" if r.get("max_score") else ""
            )
            if on_progress:
                on_progress(summary.graded, len(todo))
    except BaseException:
        _stop_all()
        raise
    finally:
        progress.close()
        runner.close()
    summary.paths = {
        "gradebook": o.out / "gradebook.csv",
        "canvas": o.out / "canvas.csv",
        "canvas review": o.out / "canvas-review.csv",
    }
    summary.notes = canvas_notes(m, canvas_id, subs, records)
    pairs = []
    if o.similarity:
        from grader.classroom.similarity import find_similar, write_csv

        pairs = find_similar({s.slug: s.sources for s in subs if s.sources}, m, o.kit)
        names = {s.slug: s.id for s in subs}
        summary.paths["similarity"] = write_csv(o.out / "similarity.csv", pairs, names)
    from grader.classroom.classreport import write_class_report

    summary.paths["class report"] = write_class_report(
        o.out, m, subs, records, o.kit, hidden=o.hidden, similar=len(pairs)
    )
    summary.seconds = time.perf_counter() - t0
    return summary


def _stop_all() -> None:
    with _LIVE_LOCK:
        for proc in list(_LIVE):
            _kill_group(proc)


def canvas_id_option(value: Any) -> int:
    """--canvas-id: the Canvas assignment id, a positive whole number (not the assignment's title or address)."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isascii() or not text.isdigit() or int(text) <= 0:
        raise GraderError(
            f"--canvas-id: expected the assignment's id in Canvas, a positive whole number (the number ending its "
            f"Canvas address, .../assignments/12345), found {value!r}"
        )
    return int(text)


def cli(args: Any) -> int:
    """`grader batch` (called by grader.cli)."""
    kit = Path(args.course).resolve() if args.course else manifests.course_root()
    o = Options(
        input=Path(args.input),
        assignment=args.assignment,
        out=Path(args.out),
        kit=kit,
        hidden=args.hidden,
        report=args.report,
        jobs=args.jobs or 0,
        scheduler=args.scheduler,
        force=args.force,
        retry_errors=args.retry_errors,
        only=args.only or [],
        device=args.device,
        dataset=args.dataset,
        sandbox=args.sandbox,
        allow_weak_sandbox=args.allow_weak_sandbox,
        limit=args.limit,
        similarity=not args.no_similarity,
        canvas_id=canvas_id_option(args.canvas_id) if getattr(args, "canvas_id", None) is not None else None,
    )
    if o.jobs < 0:
        raise GraderError(f"--jobs: expected a positive number, found {o.jobs}")

    def on_term(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        s = run_batch(o)
    except KeyboardInterrupt:
        print(
            f"grader batch: interrupted; {o.out / 'gradebook.csv'} holds what was graded. Run the same command "
            "again to go on.",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, old)
    print(
        f"graded {s.graded} ({s.failed} error or timeout), {s.skipped} unchanged and skipped, "
        f"{s.total} in all, in {_duration(s.seconds)}"
    )
    for k, v in s.paths.items():
        print(f"{k}: {v}")
    for note in s.notes:
        print(f"note: {note}")
    return 0
