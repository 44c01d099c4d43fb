"""`grader batch`'s record store: each student's folder under DIR, its reports and its record, and the lock.

A submission's files are written atomically to `DIR/<student>/`, its record `batch.json` last, so a killed run
loses only the gradings in flight; a record is reused while its key matches (grader.classroom.keys). One run at a
time writes DIR (Lock).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path

from grader.classroom.inputs import Submission
from grader.errors import GraderError
from grader.reports.formats import write_atomic

RECORD = "batch.json"  # DIR/<student>/batch.json: the record, written last
STATUSES = ("graded", "error", "timeout")


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
            # checks that crashed (the course's error): their points held out, the score not final
            "not_judged": sum(1 for c in extra.get("checks", []) if isinstance(c, dict) and c.get("held_out")),
        }
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}


class Lock:
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
