"""Taking in a submission: a folder or a zip, reduced to the files the manifest names.

Zips are unpacked safely: no absolute paths, no `..`, no links or special files, no entry twice or as both
a file and a folder, limits on count, size and compression ratio. A corrupt or hostile archive is refused
with a message naming the archive and the entry; grading still ends in a result (every check fails with
that message). `safe_extract` is the one way archives are unpacked (`grader batch` unpacks a class archive
with it, leaving out a bad entry instead of refusing the whole archive). In a folder, links are never
followed: a graded file that is a link, or lies under one, counts as missing. A file is found at its manifest
path (`a1_knn/knn.py`), under a single top folder, or by its base name when that is unique (Gradescope
uploads are often flat). Each graded file must be UTF-8, at most the manifest's `max_source_bytes`, and
compilable (a file nested too deeply for Python counts as unparseable). The sandbox tree is the pristine
kit's `sandbox_paths` with the submitted files laid over them; nothing else from the submission is used.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from grader.course.manifest import Manifest
from grader.errors import GraderError

MAX_FILES = 2000  # entries in an archive
MAX_BYTES = 200 * 2**20  # an archive unpacked, all entries together
MAX_FILE_BYTES = 50 * 2**20  # one entry unpacked (graded sources have their own, smaller limit)
MAX_RATIO = 100  # unpacked / compressed size of an entry larger than RATIO_FLOOR
RATIO_FLOOR = 2**20
MAX_SOURCE_NODES = 50_000  # syntax nodes in a graded file (the largest file of the course holds 5,000):
# the static scan reads a file once per graded function, so this bounds its time
MAX_WALK = 50_000  # files looked at when a folder is searched by base name
MAX_DEPTH = 64  # folders deep: an archive entry's path, and how far a folder is searched by base name
SKIPPED_FOLDERS = {"__MACOSX", "__pycache__", "node_modules"}  # and every folder whose name starts with "."
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class SubmissionError(GraderError):
    """The submitted archive cannot be taken in (corrupt or hostile). Unlike other GraderErrors this is
    about the submission, not the command: grading ends in a result where every check fails with it."""


class TooDeepError(SubmissionError):
    """An archive entry lies more than MAX_DEPTH folders deep."""


@dataclass
class Staged:
    root: Path  # the tree the sandbox imports from
    present: list[str]  # manifest files found in the submission
    missing: list[str]  # manifest files not found (the kit's stub is NOT used)
    syntax_errors: dict[str, str] = field(default_factory=dict)  # file -> message
    sources: dict[str, str] = field(default_factory=dict)  # file -> submitted text
    notebooks: dict[str, Path] = field(default_factory=dict)  # notebook -> its copy, beside the tree
    notebook_problems: dict[str, str] = field(default_factory=dict)  # notebook -> why it was not taken
    digest: str = ""  # content hash of what is graded
    rejected: dict[str, str] = field(default_factory=dict)  # file -> why it was not taken (a sentence)
    refused: str = ""  # why the whole submission was not taken ("" when it was)


# -- archives ---------------------------------------------------------------------------------------------------


def show_name(name: str | bytes) -> str:
    """A name for a message (an archive entry's, a folder's): quoted, control characters escaped, at most about
    100 characters."""
    return repr(name if len(name) <= 100 else name[:100]) + ("..." if len(name) > 100 else "")


def _entry_parts(zip_name: str, name: str) -> tuple[str, ...]:
    """The path of entry `name` inside the archive, as folder names; refuses any path leaving it."""
    if _CONTROL.search(name):
        raise SubmissionError(f"{zip_name}: entry {show_name(name)} has a control character in its name; refused")
    path = name.replace("\\", "/")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        raise SubmissionError(
            f"{zip_name}: entry {show_name(name)} points outside the archive (an absolute path); refused"
        )
    parts = tuple(p for p in path.split("/") if p not in ("", "."))
    if ".." in parts:
        raise SubmissionError(
            f"{zip_name}: entry {show_name(name)} points outside the archive (a '..' in its path); refused"
        )
    return parts


def safe_extract(
    zip_path: Path,
    dest: Path,
    *,
    max_files: int | None = None,
    max_bytes: int | None = None,
    max_file_bytes: int | None = None,
    skip: Callable[[str], None] | None = None,
) -> Path:
    """Unpack `zip_path` into `dest`, refusing anything that could write outside it, fill the disk, or make
    the graded files ambiguous: a path leaving the archive, an entry more than MAX_DEPTH folders deep, a link or
    special file, an entry twice or both a file and a folder, more than `max_files` entries, an entry larger than
    `max_file_bytes` or compressed more than MAX_RATIO times, more than `max_bytes` in all (the limits default to a
    submission's: MAX_FILES, MAX_BYTES, MAX_FILE_BYTES). Raises SubmissionError naming the archive and the entry.

    With `skip`, an entry that is bad on its own (too deep, a link or special file, twice, too large, compressed
    too well, unreadable) is left out instead, and `skip` gets the sentence saying why; an archive that cannot
    be read, a path leaving it, too many entries or too many bytes in all still refuse the whole archive."""
    where = zip_path.name
    max_files = MAX_FILES if max_files is None else max_files
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    max_file_bytes = MAX_FILE_BYTES if max_file_bytes is None else max_file_bytes

    def bad(name: str, why: str, verdict: str = "; refused", error: type[SubmissionError] = SubmissionError) -> None:
        """Entry `name` cannot be taken: the archive is refused, or (with `skip`) the entry alone is left out."""
        if skip is None:
            raise error(f"{where}: entry {show_name(name)} {why}{verdict}")
        skip(f"{where}: entry {show_name(name)} {why}")

    try:
        zf = zipfile.ZipFile(zip_path)
        infos = zf.infolist()
    except UnicodeDecodeError as e:  # a name flagged as UTF-8 that is not
        raise SubmissionError(
            f"{where}: the name of entry {show_name(e.object)} is marked as UTF-8 but is not valid "
            f"UTF-8 at byte {e.start}; rename the file and zip it again"
        ) from None
    except Exception as e:
        raise SubmissionError(f"{where}: not a readable zip archive ({type(e).__name__}: {e})") from None
    with zf:
        if len(infos) > max_files:
            raise SubmissionError(f"{where}: holds {len(infos)} entries, expected at most {max_files}")
        files: dict[tuple[str, ...], zipfile.ZipInfo] = {}
        folders: dict[tuple[str, ...], str] = {}  # folder -> the entry that makes it one
        total = 0
        for info in infos:
            name = info.filename
            parts = _entry_parts(where, name)
            if len(parts) > MAX_DEPTH:
                bad(name, f"lies {len(parts) - 1:,} folders deep, expected at most {MAX_DEPTH}", error=TooDeepError)
                continue
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind == stat.S_IFLNK:
                bad(name, "is a symbolic link")
                continue
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                bad(name, "is not a regular file or folder")
                continue
            is_dir = (
                info.is_dir() or name.endswith("\\") or kind == stat.S_IFDIR or bool(info.external_attr & 0x10)
            )  # MS-DOS's folder attribute
            if not parts:
                if not is_dir:  # "./" is the archive's own folder
                    bad(name, "names no file (it is the archive's own folder)")
                continue
            for i in range(1, len(parts) + is_dir):
                folders.setdefault(parts[:i], name)
            if is_dir:
                continue
            if parts in files:
                bad(name, "appears twice in the archive", "; refused (which one should be graded?)")
                continue
            if info.file_size > max_file_bytes:
                bad(name, f"is {info.file_size:,} bytes, expected at most {max_file_bytes:,}", "")
                continue
            ratio = info.file_size // max(info.compress_size, 1)
            if info.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
                bad(name, f"is compressed {ratio:,} times (a zip bomb?); expected at most {MAX_RATIO} times")
                continue
            files[parts] = info
            total += info.file_size
            if total > max_bytes:
                raise SubmissionError(f"{where}: unpacks to more than {max_bytes:,} bytes; refused")
        for parts, info in list(files.items()):
            if parts in folders:
                bad(info.filename, f"is both a file and a folder (see entry {show_name(folders[parts])})")
                del files[parts]
        written = 0
        for parts, info in files.items():
            size = _unpack_entry(zf, info, dest.joinpath(*parts), bad)
            if size is None:
                continue
            written += size
            if written > max_bytes:
                raise SubmissionError(f"{where}: unpacks to more than {max_bytes:,} bytes; refused")
    return dest


def _unpack_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, bad: Callable[..., None]) -> int | None:
    """Write entry `info` to `target` (a new file); its size, or None when it could not be (told to `bad`, the
    file removed). At most the declared size + 1 is read, so a lying header cannot overflow the limits."""
    created = False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(target, "xb") as out:
            created = True
            size = 0
            while size <= info.file_size:
                chunk = src.read(min(info.file_size + 1 - size, 2**20))
                if not chunk:
                    break
                out.write(chunk)
                size += len(chunk)
    except Exception as e:
        problem = (f"could not be unpacked ({type(e).__name__}: {e})", "")
    else:
        if size <= info.file_size:
            return size
        problem = ("is larger than its header says", "; refused")
    if created:
        with contextlib.suppress(OSError):
            target.unlink()
    bad(info.filename, *problem)
    return None


# -- folders: never following a link ----------------------------------------------------------------------------


def _lookup(base: Path, parts: tuple[str, ...]) -> tuple[Path | None, str | None]:
    """The regular file at base/parts without following any link on the way: (path, None), or
    (None, the link met, relative to base: "a1_knn" or "a1_knn/knn.py"), or (None, None) when there is none."""
    path = base
    for i, part in enumerate(parts):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except (OSError, ValueError):
            return None, None
        if stat.S_ISLNK(mode):
            return None, "/".join(parts[: i + 1])
        if not (stat.S_ISREG(mode) if i == len(parts) - 1 else stat.S_ISDIR(mode)):
            return None, None
    return path, None


def _walk(source: Path) -> list[Path]:
    """Files under `source` (links included as names, never followed), skipping .git, .venv and the like, at
    most MAX_DEPTH folders deep and about MAX_WALK files (a loop, not recursion: a folder may be very deep)."""
    found: list[Path] = []
    stack: list[tuple[Path, int]] = [(source, 0)]
    while stack and len(found) <= MAX_WALK:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        below = []
        for e in entries:
            try:
                is_dir, is_link = e.is_dir(), e.is_symlink()  # a link to a folder is neither listed nor entered
            except OSError:
                continue
            if not is_dir:
                found.append(Path(e.path))
            elif not is_link and depth < MAX_DEPTH and not e.name.startswith(".") and e.name not in SKIPPED_FOLDERS:
                below.append((Path(e.path), depth + 1))
        stack.extend(reversed(below))
    return found


class _Finder:
    def __init__(self, source: Path) -> None:
        self.source = source
        self._files: list[Path] | None = None

    def find(self, rel: str) -> tuple[Path | None, str | None]:
        """(the file for manifest path `rel`, None), or (None, the symbolic link met), or (None, None)."""
        parts = PurePosixPath(rel).parts
        found, problem = _lookup(self.source, parts)
        if found or problem:
            return found, problem
        try:
            tops = [
                e.name for e in os.scandir(self.source) if e.is_dir() and not e.name.startswith(("__MACOSX", "."))
            ]  # a link to a folder counts
        except OSError:
            tops = []
        if len(tops) == 1:
            found, problem = _lookup(self.source, (tops[0], *parts))
            if found or problem:
                return found, problem
        if self._files is None:
            self._files = _walk(self.source)
        matches = [p for p in self._files if p.name == parts[-1]]
        if len(matches) != 1:
            return None, None
        return _lookup(self.source, matches[0].relative_to(self.source).parts)


def _read(path: Path, limit: int) -> tuple[bytes, int]:
    """At most `limit` + 1 bytes of the regular file at `path` (never through a link), and its size."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        return f.read(limit + 1), info.st_size


def _linked(rel: str, link: str) -> str:
    if link == rel:
        return f"{rel} is a symbolic link; links are not followed, so the file counts as missing."
    if PurePosixPath(link).name == PurePosixPath(rel).name:
        return f"{rel} (found as {link}) is a symbolic link; links are not followed, so the file counts as missing."
    return f"{rel} lies under {link}/, a symbolic link; links are not followed, so the file counts as missing."


def _too_large(rel: str, size: int, limit: int) -> str:
    return (
        f"{rel} is {size:,} bytes; a graded file may hold at most {limit:,} bytes (max_source_bytes), "
        "so it was not graded."
    )


def _check_source(rel: str, data: bytes, staged: Staged) -> str | None:
    """The text of a graded file, or None when it is not taken (recorded in staged.rejected): not UTF-8, or
    too many syntax nodes. A syntax error, or nesting too deep for Python, is recorded in staged.syntax_errors."""
    try:
        text = data.decode("utf-8-sig")  # Python reads a UTF-8 byte order mark too
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        staged.rejected[rel] = (
            f"{rel} is not valid UTF-8 at byte {e.start} (line {line}, "
            f"byte 0x{data[e.start]:02x}), so it was not graded. Save it as UTF-8."
        )
        return None
    try:
        tree = ast.parse(text, rel)  # parsing and compiling run nothing
        nodes = next((i for i, _ in enumerate(ast.walk(tree)) if i >= MAX_SOURCE_NODES), 0)
        if nodes:
            staged.rejected[rel] = (
                f"{rel} holds more than {MAX_SOURCE_NODES:,} syntax nodes (names, numbers, "
                "operators...), about ten times the largest file of the course, so it was "
                "not graded. Load large data from a file instead of writing it in the source."
            )
            return None
        compile(tree, rel, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        staged.syntax_errors[rel] = f"{rel} line {getattr(e, 'lineno', '?')}: {getattr(e, 'msg', e)}" + (
            f"\n    {e.text.rstrip()[:200]}" if getattr(e, "text", None) else ""
        )
    except (RecursionError, MemoryError):
        staged.syntax_errors[rel] = (
            f"{rel}: too deeply nested for Python to compile (an expression or block nested thousands of levels deep)"
        )
    return text


def _lone_zip(folder: Path) -> Path | None:
    """A folder that holds nothing but one .zip file (a zip uploaded to Gradescope and left packed in
    /autograder/submission): that zip, graded as if it had been given itself."""
    if not folder.is_dir() or folder.is_symlink():
        return None
    try:
        entries = [e for e in os.scandir(folder) if not e.name.startswith(".")]
    except OSError:
        return None
    if len(entries) == 1 and entries[0].name.lower().endswith(".zip") and entries[0].is_file(follow_symlinks=False):
        return Path(entries[0].path)
    return None


def stage(manifest: Manifest, kit: Path, submission: Path, dest: Path) -> Staged:
    """Build the sandbox tree in `dest` from the pristine kit and the submitted files.

    Raises GraderError only for what the user must fix in the command (no such path, not a folder or a
    zip) or in the manifest; a bad archive gives a Staged whose `refused` says why, with every graded file
    rejected, and a bad file is rejected alone."""
    if not submission.exists():
        raise GraderError(f"submission {submission} does not exist")
    submission = _lone_zip(submission) or submission
    if submission.is_file() and submission.suffix.lower() != ".zip":
        raise GraderError(f"submission {submission}: expected a folder or a .zip file")
    for rel in manifest.sandbox_paths:
        src = kit / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
        elif src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
        else:
            raise GraderError(f"{manifest.dir / 'assignment.toml'}: sandbox path {rel!r} is not in the kit at {kit}")
    for rel in manifest.files:  # the kit's copy must never stand in for a file that is not taken
        (dest / rel).unlink(missing_ok=True)
    staged = Staged(root=dest, present=[], missing=[])
    h = hashlib.sha256(manifest.name.encode())
    tmp = None
    try:
        if submission.is_file():
            tmp = Path(tempfile.mkdtemp(prefix="grader-unzip-"))
            try:
                source = safe_extract(submission, tmp)
            except SubmissionError as e:
                staged.refused = str(e)
                staged.rejected = {rel: str(e) for rel in manifest.files}
                h.update(b"refused\0" + str(e).encode("utf-8", "replace"))
                staged.digest = h.hexdigest()
                return staged
        else:
            source = submission
        finder = _Finder(source)
        for rel in manifest.files:
            found, link = finder.find(rel)
            if link:
                staged.rejected[rel] = _linked(rel, link)
                continue
            if found is None:
                staged.missing.append(rel)
                continue
            try:
                data, size = _read(found, manifest.max_source_bytes)
            except OSError as e:
                staged.rejected[rel] = (
                    f"{rel} could not be read ({type(e).__name__}: {e.strerror or e}), so it was not graded."
                )
                continue
            if len(data) > manifest.max_source_bytes:
                staged.rejected[rel] = _too_large(rel, max(size, len(data)), manifest.max_source_bytes)
                continue
            text = _check_source(rel, data, staged)
            if text is None:
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            staged.present.append(rel)
            staged.sources[rel] = text
            h.update(rel.encode() + b"\0" + data + b"\0")
        for nb in manifest.notebooks:  # kept aside for the report (grader.notebooks.execute runs them); never graded
            found, link = finder.find(nb)
            if link:
                staged.notebook_problems[nb] = _linked(nb, link)
                continue
            if found is None:
                staged.notebook_problems[nb] = f"{nb} is missing from the submission."
                continue
            try:
                data, size = _read(found, MAX_FILE_BYTES)
            except OSError as e:
                staged.notebook_problems[nb] = f"{nb} could not be read ({type(e).__name__}: {e.strerror or e})."
                continue
            if len(data) > MAX_FILE_BYTES:
                staged.notebook_problems[nb] = (
                    f"{nb} is {max(size, len(data)):,} bytes; a notebook may hold at "
                    f"most {MAX_FILE_BYTES:,} bytes (clear large outputs and save again)."
                )
                continue
            keep = dest.parent / "notebooks" / PurePosixPath(nb).name
            keep.parent.mkdir(parents=True, exist_ok=True)
            keep.write_bytes(data)
            staged.notebooks[nb] = keep
        staged.digest = h.hexdigest()
        return staged
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
