"""Taking in a submission: a folder or a zip, reduced to the files the manifest names.

Zips are unpacked safely (no absolute paths, no `..`, no links, limits on size and count). A file is found
at its manifest path (`a1_knn/knn.py`), under a single top folder, or by its base name when that is
unique (Gradescope uploads are often flat). The sandbox tree is the pristine kit's `sandbox_paths` with the
submitted files laid over them; nothing else from the submission is used.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from grader.manifest import GraderError, Manifest

MAX_FILES = 2000
MAX_BYTES = 200 * 2**20
MAX_FILE_BYTES = 50 * 2**20


@dataclass
class Staged:
    root: Path                               # the tree the sandbox imports from
    present: list[str]                       # manifest files found in the submission
    missing: list[str]                       # manifest files not found (the kit's stub is NOT used)
    syntax_errors: dict[str, str] = field(default_factory=dict)   # file -> message
    sources: dict[str, str] = field(default_factory=dict)         # file -> submitted text
    notebooks: dict[str, Path] = field(default_factory=dict)      # notebook -> path in the submission
    digest: str = ""                         # content hash of what is graded


def safe_extract(zip_path: Path, dest: Path) -> Path:
    """Unpack `zip_path` into `dest`, refusing anything that could write outside it or fill the disk."""
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise GraderError(f"{zip_path}: not a readable zip archive ({e})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_FILES:
            raise GraderError(f"{zip_path}: holds {len(infos)} entries, expected at most {MAX_FILES}")
        total = 0
        for info in infos:
            name = PurePosixPath(info.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts or (info.filename[1:3] == ":/"):
                raise GraderError(f"{zip_path}: entry {info.filename!r} points outside the archive; refused")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise GraderError(f"{zip_path}: entry {info.filename!r} is a symbolic link; refused")
            if info.file_size > MAX_FILE_BYTES:
                raise GraderError(f"{zip_path}: entry {info.filename!r} is {info.file_size} bytes, "
                                  f"expected at most {MAX_FILE_BYTES}")
            total += info.file_size
            if total > MAX_BYTES:
                raise GraderError(f"{zip_path}: unpacks to more than {MAX_BYTES} bytes; refused")
        for info in infos:
            target = dest / PurePosixPath(info.filename.replace("\\", "/"))
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                # read at most the declared size + 1 so a lying header cannot overflow the limits
                data = src.read(info.file_size + 1)
                if len(data) > info.file_size:
                    raise GraderError(f"{zip_path}: entry {info.filename!r} is larger than its header says")
                out.write(data)
    return dest


def _find(source: Path, rel: str, all_files: list[Path]) -> Path | None:
    direct = source / rel
    if direct.is_file():
        return direct
    tops = [p for p in source.iterdir() if p.is_dir() and not p.name.startswith(("__MACOSX", "."))]
    if len(tops) == 1 and (tops[0] / rel).is_file():
        return tops[0] / rel
    base = PurePosixPath(rel).name
    matches = [p for p in all_files if p.name == base and "__MACOSX" not in p.parts]
    return matches[0] if len(matches) == 1 else None


def stage(manifest: Manifest, kit: Path, submission: Path, dest: Path) -> Staged:
    """Build the sandbox tree in `dest` from the pristine kit and the submitted files."""
    if not submission.exists():
        raise GraderError(f"submission {submission} does not exist")
    tmp = None
    if submission.is_file():
        if submission.suffix.lower() != ".zip":
            raise GraderError(f"submission {submission}: expected a folder or a .zip file")
        tmp = Path(tempfile.mkdtemp(prefix="grader-unzip-"))
        source = safe_extract(submission, tmp)
    else:
        source = submission
    try:
        all_files = [p for p in source.rglob("*") if p.is_file() and ".venv" not in p.parts]
        for rel in manifest.sandbox_paths:
            src = kit / rel
            if src.is_dir():
                shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                                dirs_exist_ok=True)
            elif src.is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)
            else:
                raise GraderError(f"{manifest.dir / 'assignment.toml'}: sandbox path {rel!r} is not in the kit at {kit}")
        staged = Staged(root=dest, present=[], missing=[])
        h = hashlib.sha256(manifest.name.encode())
        for rel in manifest.files:
            found = _find(source, rel, all_files)
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if found is None:
                staged.missing.append(rel)
                target.unlink(missing_ok=True)  # the kit's copy must not stand in for a missing file
                continue
            data = found.read_bytes()
            target.write_bytes(data)
            staged.present.append(rel)
            h.update(rel.encode() + b"\0" + data + b"\0")
            text = data.decode("utf-8", "replace")
            staged.sources[rel] = text
            try:
                compile(text, rel, "exec", dont_inherit=True)   # compiling runs nothing
            except (SyntaxError, ValueError) as e:
                staged.syntax_errors[rel] = (f"{rel} line {getattr(e, 'lineno', '?')}: {getattr(e, 'msg', e)}"
                                             + (f"\n    {e.text.rstrip()}" if getattr(e, "text", None) else ""))
        for nb in manifest.notebooks:
            found = _find(source, nb, all_files)
            if found is not None:
                keep = dest.parent / "notebooks" / PurePosixPath(nb).name
                keep.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(found, keep)
                staged.notebooks[nb] = keep
        staged.digest = h.hexdigest()
        return staged
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
