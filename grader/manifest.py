"""Assignment manifests: `assignments/<name>/assignment.toml`.

A manifest says what an assignment is made of (parts, functions and their points), which files are
taken from a submission, which notebooks belong to it, what each function may not call, and the
accuracy targets per data set. The grader knows nothing else about an assignment.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What "no autograd" forbids. torch.Tensor.requires_grad also catches `requires_grad=True` keywords (static scan).
# The worker's guard (grader.guard) reports these names: the engine running or a graph being built as
# torch.autograd, a differentiating torch.func transform as torch.func.
AUTOGRAD_NAMES = ["torch.autograd", "torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward",
                  "torch.Tensor.requires_grad_", "torch.Tensor.requires_grad", "torch.func"]


class GraderError(Exception):
    """A problem the user must fix (bad option, malformed manifest, unreadable submission).
    Its message names the file or option, what was expected and what was found."""


@dataclass(frozen=True)
class Part:
    name: str
    title: str
    module: str                     # e.g. "a1_knn.knn"
    file: str                       # e.g. "a1_knn/knn.py" (relative to the course root)
    points: float
    functions: dict[str, float]     # graded function -> points
    forbidden: dict[str, list[str]]  # function -> dotted names it may not call
    max_loops: dict[str, int] = field(default_factory=dict)  # function -> loops allowed in its body


@dataclass(frozen=True)
class Manifest:
    name: str
    title: str
    dir: Path                       # assignments/<name>
    parts: list[Part]
    files: list[str]                # taken from a submission
    notebooks: list[str]
    checks: list[str]               # public check files, relative to dir
    hidden_checks: list[str]
    sandbox_paths: list[str]        # copied from the pristine kit into the sandbox
    targets: dict[str, dict[str, float]]  # data set -> target name -> value
    call_timeout: float = 60.0
    memory_mb: int = 4096
    max_source_bytes: int = 2**20    # a graded file larger than this is not graded ([limits] max_source_bytes)
    grading_timeout: float = 1800.0  # the whole grading's time budget, every call included ([limits] grading_timeout)
    forbid_autograd: bool = False
    autograd_allowed_in: list[str] = field(default_factory=list)  # kit files whose code may use autograd
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def points(self) -> float:
        return sum(p.points for p in self.parts)

    def part_of(self, function: str) -> Part:
        for p in self.parts:
            if function in p.functions:
                return p
        raise KeyError(function)

    def guarded_names(self) -> list[str]:
        names = {n for p in self.parts for fs in p.forbidden.values() for n in fs}
        if self.forbid_autograd:
            names.update(AUTOGRAD_NAMES)
        return sorted(names)

    def forbidden_for(self, function: str) -> list[str]:
        names = list(self.part_of(function).forbidden.get(function, []))
        return names + (AUTOGRAD_NAMES if self.forbid_autograd else [])


def course_root(start: Path | None = None) -> Path:
    """The folder holding `assignments/`: $GRADER_COURSE_ROOT, else the nearest parent of `start`
    (default: the current folder), else the folder this grader was installed from."""
    env = os.environ.get("GRADER_COURSE_ROOT")
    if env:
        root = Path(env).resolve()
        if not (root / "assignments").is_dir():
            raise GraderError(f"GRADER_COURSE_ROOT={env}: expected a folder with assignments/ inside, found none")
        return root
    here = (start or Path.cwd()).resolve()
    for d in [here, *here.parents]:
        if (d / "assignments").is_dir() and (d / "grader").is_dir():
            return d
    installed = Path(__file__).resolve().parent.parent
    if (installed / "assignments").is_dir():
        return installed
    raise GraderError(f"no course found: expected a folder with assignments/ and grader/ in {here} or above "
                      "(or set GRADER_COURSE_ROOT)")


def available(root: Path) -> list[str]:
    return sorted(p.parent.name for p in (root / "assignments").glob("*/assignment.toml"))


def load(name: str, root: Path) -> Manifest:
    path = root / "assignments" / name / "assignment.toml"
    if not path.is_file():
        names = ", ".join(available(root)) or "none"
        raise GraderError(f"unknown assignment {name!r}: expected {path} to exist (assignments here: {names})")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise GraderError(f"{path}: not valid TOML: {e}") from None
    return _parse(data, path)


def _need(data: dict, key: str, typ: type, where: str) -> Any:
    if key not in data:
        raise GraderError(f"{where}: missing key {key!r}")
    value = data[key]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ):
        raise GraderError(f"{where}: {key!r} should be a {typ.__name__}, found {type(value).__name__} {value!r}")
    return value


def _positive_int(table: dict, key: str, default: int, where: str) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise GraderError(f"{where}: {key!r} should be a positive whole number, found {value!r}")
    return value


def _parse(data: dict, path: Path) -> Manifest:
    where = str(path)
    parts = []
    for i, p in enumerate(_need(data, "parts", list, where)):
        pw = f"{where} [[parts]] #{i + 1}"
        functions = {k: float(v) for k, v in _need(p, "functions", dict, pw).items()}
        points = _need(p, "points", float, pw)
        if abs(sum(functions.values()) - points) > 1e-9:
            raise GraderError(f"{pw}: the functions' points add up to {sum(functions.values()):g}, "
                              f"expected the part's {points:g}")
        forbidden = {k: list(v) for k, v in p.get("forbidden", {}).items()}
        max_loops = {k: int(v) for k, v in p.get("max_loops", {}).items()}
        unknown = (set(forbidden) | set(max_loops)) - set(functions)
        if unknown:
            raise GraderError(f"{pw}: forbidden or max_loops name functions that are not graded: {sorted(unknown)}")
        parts.append(Part(name=_need(p, "name", str, pw), title=p.get("title", p["name"]),
                          module=_need(p, "module", str, pw), file=_need(p, "file", str, pw),
                          points=points, functions=functions, forbidden=forbidden,
                          max_loops=max_loops))
    seen: dict[str, str] = {}
    for p in parts:
        for f in p.functions:
            if f in seen:
                raise GraderError(f"{where}: function {f!r} is graded in two parts ({seen[f]} and {p.name})")
            seen[f] = p.name
    files = list(data.get("files", sorted({p.file for p in parts})))
    missing = [p.file for p in parts if p.file not in files]
    if missing:
        raise GraderError(f"{where}: parts are graded from {missing}, which 'files' does not take from a submission")
    limits = data.get("limits", {})
    allowed = _autograd_allowed_in(data, files, path)
    default_paths = sorted({p.module.split(".")[0] for p in parts} | {"dlcv"})
    return Manifest(
        name=_need(data, "name", str, where), title=data.get("title", data["name"]), dir=path.parent,
        parts=parts, files=files, notebooks=list(data.get("notebooks", [])),
        checks=list(data.get("checks", ["checks.py"])), hidden_checks=list(data.get("hidden_checks", [])),
        sandbox_paths=list(data.get("sandbox_paths", default_paths)),
        targets={k: {kk: float(vv) for kk, vv in v.items()} for k, v in data.get("targets", {}).items()},
        call_timeout=float(limits.get("call_timeout", 60.0)), memory_mb=int(limits.get("memory_mb", 4096)),
        max_source_bytes=_positive_int(limits, "max_source_bytes", 2**20, f"{where} [limits]"),
        grading_timeout=float(_positive_int(limits, "grading_timeout", 1800, f"{where} [limits]")),
        forbid_autograd=bool(data.get("forbid_autograd", False)),
        autograd_allowed_in=allowed,
        extra={k: v for k, v in data.items() if k not in {"parts", "files", "notebooks", "checks", "hidden_checks",
                                                          "sandbox_paths", "targets", "limits", "name", "title",
                                                          "forbid_autograd", "autograd_allowed_in"}},
    )


def _autograd_allowed_in(data: dict, files: list[str], path: Path) -> list[str]:
    """`autograd_allowed_in`: files of the kit (relative to the course root) whose code the guard lets use
    autograd. Each must be a kit file that is never taken from a submission."""
    where = f"{path} autograd_allowed_in"
    value = data.get("autograd_allowed_in", [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GraderError(f"{where}: expected a list of file paths, found {value!r}")
    root = path.parent.parent.parent
    for f in value:
        if not f.endswith(".py") or f.startswith("/") or ".." in Path(f).parts:
            raise GraderError(f"{where}: expected paths of .py files inside the course, like "
                              f"'a3_networks/fast_layers.py', found {f!r}")
        if f in files:
            raise GraderError(f"{where}: {f} is taken from a submission ('files'), so a student could write it; "
                              "only given files of the kit may use autograd")
        if not (root / f).is_file():
            raise GraderError(f"{where}: {f} is not a file of the kit (looked for {root / f})")
    return list(value)
