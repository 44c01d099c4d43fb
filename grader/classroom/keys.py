"""`grader batch`'s cache keys: what a stored result must match to be reused.

A result is keyed by the content hash of the graded files (read as `grader.course.intake.stage` reads them: no
code runs), the assignment's checks and kit, the grader's version and grading code, and the options. Fixing a
check, or changing the grading code (moving or renaming a module included), regrades everything; the grader's code
that only writes tables, kits or annotations (NOT_ENGINE) does not.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from grader.classroom.inputs import Submission
from grader.course import manifest as manifests
from grader.course.intake import stage
from grader.course.manifest import Manifest
from grader.errors import GraderError
from grader.reports.formats import clean_text

# the grader's code that only writes tables, kits or annotations: not part of what a cached result depends on
NOT_ENGINE = ("classroom/", "kit/", "reports/annotate.py", "cli.py")
GRADER_ROOT = Path(__file__).resolve().parents[1]


def engine_files(grader_root: Path = GRADER_ROOT) -> list[str]:
    """The grader's grading code, as paths relative to the package (every .py file in every subpackage, less
    NOT_ENGINE): moving or renaming a module changes the list, and so the cache key."""
    rels = sorted(p.relative_to(grader_root).as_posix() for p in grader_root.rglob("*.py"))
    return [r for r in rels if "__pycache__" not in r and not r.startswith(NOT_ENGINE)]


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
