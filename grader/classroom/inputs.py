"""`grader batch`'s inputs: the submissions of a class, found in INPUT and unpacked when INPUT is a .zip.

INPUT is a folder (or a .zip of one) holding one subfolder or .zip per student (the name is the student's id),
Gradescope's "Export Submissions" archive (`submission_metadata.yml` gives names, emails and ids), or a folder of
cloned GitHub Classroom repositories. A submission that cannot be read becomes one with its error. Nothing here
runs or imports student code.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.course.intake import SubmissionError, safe_extract, show_name
from grader.errors import GraderError
from grader.reports.formats import clean_text

STATE = ".batch"  # DIR/.batch: the lock and the unpacked class archive
METADATA = "submission_metadata.yml"
SKIPPED = {"__MACOSX", "__pycache__"}
MAX_CLASS_BYTES = 20 * 2**30  # a class archive unpacked, all entries together
MAX_CLASS_FILES = 1_000_000  # entries in a class archive
MAX_FIELD = 200  # characters kept of a student id, name or email from a Gradescope export
# what `grader batch` writes in DIR beside the students' folders: no student's folder may take one of these names
RESERVED = (STATE, "gradebook.csv", "canvas.csv", "canvas-review.csv", "class.html", "similarity.csv")


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
        unpack_class(src, target)
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
    assign_slugs(subs)
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
        return f"{METADATA} names a submission folder {show_name(name)}, which is not a plain folder name"
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


def unpack_class(archive: Path, dest: Path) -> None:
    """Unpack a class archive (a Gradescope export, a folder of zips) with the intake's safe extraction: no entry
    may leave `dest`; an entry that is a link or special file, nested too deeply, there twice (the first is kept),
    both a file and a folder, compressed suspiciously well (a zip bomb) or unreadable is skipped (it spoils one
    student's files, not the run); all entries together may unpack to at most MAX_CLASS_BYTES. Each student's own
    zip inside is unpacked later, with the intake's limits."""

    def skipped(why: str) -> None:
        print(f"grader batch: {why}; skipped", file=sys.stderr)

    try:
        safe_extract(
            archive,
            dest,
            max_files=MAX_CLASS_FILES,
            max_bytes=MAX_CLASS_BYTES,
            max_file_bytes=MAX_CLASS_BYTES,
            skip=skipped,
        )
    except SubmissionError as e:  # about INPUT, not about one student: the run stops
        raise GraderError(str(e)) from None


_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


def assign_slugs(subs: list[Submission]) -> None:
    """Give each submission its folder under DIR: a safe form of its first student's id, unique (ignoring case),
    never one of the names RESERVED."""
    used: set[str] = set()
    for s in subs:
        base = _UNSAFE.sub("_", clean_text(s.id)).strip("._")[:80] or "student"
        slug, n = base, 2
        while slug.lower() in used or slug.lower() in RESERVED:
            slug, n = f"{base}-{n}", n + 1
        used.add(slug.lower())
        s.slug = slug
