"""Assignment manifests: `assignments/<name>/assignment.toml`.

A manifest says what an assignment is made of (parts, functions and their points), which files are
taken from a submission, which notebooks belong to it, what each function may not call, and the
accuracy targets per data set. The grader knows nothing else about an assignment.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.errors import GraderError

# What "no autograd" forbids. torch.Tensor.requires_grad also catches `requires_grad=True` keywords (static scan).
# The worker's guard (grader.sandbox.guard) reports these names: the engine running or a graph being built as
# torch.autograd, a differentiating torch.func transform as torch.func.
AUTOGRAD_NAMES = [
    "torch.autograd",
    "torch.autograd.grad",
    "torch.autograd.backward",
    "torch.Tensor.backward",
    "torch.Tensor.requires_grad_",
    "torch.Tensor.requires_grad",
    "torch.func",
]

# The modules a graded file may use without the manifest saying so: what the course's starter files import. The
# kit's own packages (each part's package, the sandbox's packages, dlcv) are added per assignment, and a manifest's
# `[rules] allowed_imports` adds more. A use of any other module in a graded file is refused by the static scan
# (grader.judge.imports); the worker receives the same list (SandboxConfig.allowed_imports).
DEFAULT_IMPORTS = (
    "__future__",
    "torch",
    "math",
    "random",
    "statistics",
    "typing",
    "abc",
    "enum",
    "collections",
    "functools",
    "itertools",
    "dataclasses",
)
KIT_PACKAGES = ("dlcv",)


@dataclass(frozen=True)
class Part:
    name: str
    title: str
    module: str  # e.g. "a1_knn.knn"
    file: str  # e.g. "a1_knn/knn.py" (relative to the course root)
    points: float
    functions: dict[str, float]  # graded function -> points
    forbidden: dict[str, list[str]]  # function -> dotted names it may not call
    max_loops: dict[str, int] = field(default_factory=dict)  # function -> loops allowed in its body
    blocks: dict[str, list[str]] = field(default_factory=dict)  # composite -> graded functions it builds on


@dataclass(frozen=True)
class Question:
    id: str
    notebook: str
    points: float
    tag: str
    title: str = ""  # optional short prompt from the manifest (the notebook's own text is shown in full)


@dataclass(frozen=True)
class Manifest:
    name: str
    title: str
    dir: Path  # assignments/<name>
    parts: list[Part]
    files: list[str]  # taken from a submission
    notebooks: list[str]
    checks: list[str]  # public check files, relative to dir
    hidden_checks: list[str]
    sandbox_paths: list[str]  # copied from the pristine kit into the sandbox
    targets: dict[str, dict[str, float]]  # data set -> target name -> value
    call_timeout: float = 60.0
    memory_mb: int = 4096
    max_source_bytes: int = 2**20  # a graded file larger than this is not graded ([limits] max_source_bytes)
    grading_timeout: float = 1800.0  # the whole grading's time budget, every call included ([limits] grading_timeout)
    # the platform's limit for one run of the autograder bundle, grading and notebook report together ([limits]
    # platform_timeout; Gradescope's default is 10 minutes): the bundle passes it to `grader grade --deadline`
    platform_timeout: float = 600.0
    notebook_cell_timeout: float = 300.0  # seconds per notebook cell in a report run ([limits] notebook_cell_timeout)
    notebook_timeout: float = 1800.0  # seconds per notebook, kernel start included ([limits] notebook_timeout)
    # the share of each dlcv.Solver training's iterations that a report run trains ([limits]
    # notebook_training_scale, in (0, 1]): the notebooks show that the code runs, not the final accuracies
    notebook_training_scale: float = 1.0
    forbid_autograd: bool = False
    autograd_allowed_in: list[str] = field(default_factory=list)  # kit files whose code may use autograd
    why: dict[str, str] = field(default_factory=dict)  # forbidden dotted name -> why it is forbidden
    questions: list[Question] = field(default_factory=list)  # inline questions of the notebooks ([[questions]])
    # the assignment's id in Canvas (the number ending its address, .../assignments/12345): `grader batch` heads
    # canvas.csv's column `Title (12345)`, which Canvas's grade import matches to that assignment by its id
    canvas_assignment_id: int | None = None
    # the top-level modules a graded file may use: DEFAULT_IMPORTS, the kit's packages, `[rules] allowed_imports`
    allowed_imports: list[str] = field(default_factory=lambda: sorted({*DEFAULT_IMPORTS, *KIT_PACKAGES}))
    extra_imports: list[str] = field(default_factory=list)  # `[rules] allowed_imports` as the manifest lists them

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

    def blocks_of(self, function: str) -> list[str]:
        """The graded functions (or classes) `function` calls as building blocks ([parts.blocks])."""
        return list(self.part_of(function).blocks.get(function, []))


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
    installed = Path(__file__).resolve().parents[2]  # grader/course/manifest.py -> the kit's root
    if (installed / "assignments").is_dir():
        return installed
    raise GraderError(
        f"no course found: expected a folder with assignments/ and grader/ in {here} or above "
        "(or set GRADER_COURSE_ROOT)"
    )


def available(root: Path) -> list[str]:
    return sorted(p.parent.name for p in (root / "assignments").glob("*/assignment.toml"))


def assignments_in(submission: Path, kit: Path) -> list[str]:
    """The assignments whose files a submission folder holds (all of them for the instructor's repo)."""
    names = []
    for name in available(kit):
        m = load(name, kit, check_names=False)
        if submission.is_dir() and any((submission / f).is_file() for f in m.files):
            names.append(name)
    return names


def load(name: str, root: Path, *, check_names: bool = True) -> Manifest:
    """The manifest of assignment `name` under `root`, checked. `check_names=False` leaves out one check, that
    each forbidden name names something of PyTorch (it imports PyTorch): for reading a manifest before the judge
    imports PyTorch (grader.judge.opening); grade() loads it again with the check."""
    path = root / "assignments" / name / "assignment.toml"
    if not path.is_file():
        names = ", ".join(available(root)) or "none"
        raise GraderError(f"unknown assignment {name!r}: expected {path} to exist (assignments here: {names})")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise GraderError(f"{path}: not valid TOML: {e}") from None
    return _parse(data, path, shown=f"assignments/{name}/assignment.toml", check_names=check_names)


# The keys a manifest may have; any other key is an error (a typo must not turn a rule off).
TOP_KEYS = (
    "name",
    "title",
    "files",
    "notebooks",
    "checks",
    "hidden_checks",
    "sandbox_paths",
    "forbid_autograd",
    "autograd_allowed_in",
    "limits",
    "parts",
    "targets",
    "why",
    "questions",
    "canvas_assignment_id",
    "rules",
)
RULES_KEYS = ("allowed_imports",)
LIMIT_KEYS = (
    "call_timeout",
    "memory_mb",
    "max_source_bytes",
    "grading_timeout",
    "platform_timeout",
    "notebook_cell_timeout",
    "notebook_timeout",
    "notebook_training_scale",
)
PART_KEYS = ("name", "title", "module", "file", "points", "functions", "forbidden", "max_loops", "blocks")
QUESTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
QUESTION_KEYS = ("id", "notebook", "points", "tag", "prompt")
DATASETS = ("cifar10", "digits")  # the data sets of dlcv.data.load_dataset (targets are per data set)


def _pytorch_name(name: str, where: str) -> None:
    """A forbidden name must name something of PyTorch (a module, function, class, method or property): a name
    that names nothing would be shown to students as a rule and never be enforced. GraderError with the nearest
    real name."""
    import importlib

    parts = name.split(".")
    if parts[0] != "torch":
        raise GraderError(f"{where}: {name!r} is not a PyTorch name (forbidden names start with 'torch.')")
    obj: Any = importlib.import_module("torch")
    for i, part in enumerate(parts[1:], start=1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module(".".join(parts[: i + 1]))
            continue
        except ImportError:
            pass
        known = [n for n in dir(obj) if not n.startswith("__")]
        close = difflib.get_close_matches(part, known, n=1, cutoff=0.6)
        hint = f" (did you mean {'.'.join([*parts[:i], close[0]])!r}?)" if close else ""
        raise GraderError(f"{where}: {name!r} names nothing in PyTorch: {'.'.join(parts[:i])} has no {part!r}{hint}")


def _suggest(word: str, valid: Any) -> str:
    """` (did you mean 'x'?)` with the nearest valid word (case ignored), else the valid words."""
    valid = list(valid)
    lower = {v.lower(): v for v in reversed(valid)}
    close = difflib.get_close_matches(word.lower(), list(lower), n=1, cutoff=0.6)
    return f" (did you mean {lower[close[0]]!r}?)" if close else f" (expected one of: {', '.join(valid)})"


def _known_keys(table: dict, valid: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in valid:
            raise GraderError(f"{where}: unknown key {key!r}{_suggest(key, valid)}")


def _need(data: dict, key: str, typ: type, where: str) -> Any:
    if key not in data:
        raise GraderError(f"{where}: missing key {key!r}")
    return _typed(data[key], key, typ, where)


def _typed(value: Any, key: str, typ: type, where: str) -> Any:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or (typ in (int, float) and isinstance(value, bool)):
        raise GraderError(f"{where}: {key!r} should be a {typ.__name__}, found {type(value).__name__} {value!r}")
    return value


def _table(data: dict, key: str, where: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise GraderError(f"{where}: {key!r} should be a table, found {type(value).__name__} {value!r}")
    return value


def _strings(data: dict, key: str, where: str, default: list[str] | None = None) -> list[str]:
    value = data.get(key, default if default is not None else [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GraderError(f"{where}: {key!r} should be a list of strings, found {value!r}")
    return list(value)


def _positive_int(table: dict, key: str, default: int, where: str) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise GraderError(f"{where}: {key!r} should be a positive whole number, found {value!r}")
    return value


def _positive_number(table: dict, key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise GraderError(f"{where}: {key!r} should be a positive number, found {value!r}")
    return float(value)


def _share(table: dict, key: str, where: str) -> float:
    value = table.get(key, 1.0)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 1:
        raise GraderError(f"{where}: {key!r} should be a number above 0 and at most 1, found {value!r}")
    return float(value)


def _graded_keys(table: dict, functions: dict, graded: dict[str, str], where: str) -> None:
    """The keys of a part's forbidden / max_loops / blocks table must be functions that part grades."""
    for key in table:
        if key in functions:
            continue
        if key in graded:
            raise GraderError(f"{where}: {key!r} is graded in part {graded[key]!r}; list it under that part")
        raise GraderError(f"{where}: {key!r} is not a function this part grades{_suggest(key, list(functions))}")


def _parse(data: dict, path: Path, shown: str | None = None, check_names: bool = True) -> Manifest:
    where = shown or str(path)
    _known_keys(data, TOP_KEYS, where)
    raw_parts = _need(data, "parts", list, where)
    graded: dict[str, str] = {}
    for i, p in enumerate(raw_parts):
        pw = f"{where} [[parts]] #{i + 1}"
        if not isinstance(p, dict):
            raise GraderError(f"{pw}: expected a table, found {p!r}")
        for f in _table(p, "functions", pw):
            if f in graded:
                raise GraderError(f"{where}: function {f!r} is graded in two parts ({graded[f]} and {p.get('name')})")
            graded[f] = str(p.get("name", f"#{i + 1}"))
    parts = [_part(p, i, where, graded, check_names) for i, p in enumerate(raw_parts)]
    _check_blocks(parts, where)
    files = _strings(data, "files", where, sorted({p.file for p in parts}))
    missing = [p.file for p in parts if p.file not in files]
    if missing:
        raise GraderError(f"{where}: parts are graded from {missing}, which 'files' does not take from a submission")
    limits = _table(data, "limits", where)
    _known_keys(limits, LIMIT_KEYS, f"{where} [limits]")
    forbid_autograd = data.get("forbid_autograd", False)
    if not isinstance(forbid_autograd, bool):
        raise GraderError(f"{where}: 'forbid_autograd' should be true or false, found {forbid_autograd!r}")
    notebooks = _strings(data, "notebooks", where)
    questions = _questions(data.get("questions", []), notebooks, where)
    default_paths = sorted({p.module.split(".")[0] for p in parts} | {"dlcv"})
    sandbox_paths = _strings(data, "sandbox_paths", where, default_paths)
    extra_imports = _allowed_imports(_table(data, "rules", where), f"{where} [rules]")
    return Manifest(
        name=_need(data, "name", str, where),
        title=_typed(data.get("title", data["name"]), "title", str, where),
        dir=path.parent,
        parts=parts,
        files=files,
        notebooks=notebooks,
        checks=_strings(data, "checks", where, ["checks.py"]),
        hidden_checks=_strings(data, "hidden_checks", where),
        sandbox_paths=sandbox_paths,
        targets=_targets(_table(data, "targets", where), where),
        call_timeout=_positive_number(limits, "call_timeout", 60.0, f"{where} [limits]"),
        memory_mb=_positive_int(limits, "memory_mb", 4096, f"{where} [limits]"),
        max_source_bytes=_positive_int(limits, "max_source_bytes", 2**20, f"{where} [limits]"),
        grading_timeout=float(_positive_int(limits, "grading_timeout", 1800, f"{where} [limits]")),
        platform_timeout=float(_positive_int(limits, "platform_timeout", 600, f"{where} [limits]")),
        notebook_cell_timeout=_positive_number(limits, "notebook_cell_timeout", 300.0, f"{where} [limits]"),
        notebook_timeout=_positive_number(limits, "notebook_timeout", 1800.0, f"{where} [limits]"),
        notebook_training_scale=_share(limits, "notebook_training_scale", f"{where} [limits]"),
        forbid_autograd=forbid_autograd,
        autograd_allowed_in=_autograd_allowed_in(data, files, path, where),
        why=_why(_table(data, "why", where), parts, where),
        questions=questions,
        canvas_assignment_id=_canvas_assignment_id(data, where),
        allowed_imports=_kit_imports(parts, sandbox_paths, extra_imports),
        extra_imports=extra_imports,
    )


def _allowed_imports(rules: dict, where: str) -> list[str]:
    """`[rules] allowed_imports`: top-level module names a graded file may use beyond DEFAULT_IMPORTS."""
    _known_keys(rules, RULES_KEYS, where)
    value = rules.get("allowed_imports", [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GraderError(
            f"{where}: 'allowed_imports' should be a list of module names such as [\"numpy\"], found {value!r}"
        )
    for v in value:
        if not v.isidentifier():
            hint = f" (allow {v.split('.')[0]!r}: a module is allowed with all it contains)" if "." in v else ""
            raise GraderError(f"{where}: 'allowed_imports' should list top-level module names, found {v!r}{hint}")
        if v == "grader":
            raise GraderError(
                f"{where}: 'allowed_imports' cannot allow 'grader': graded files may never reach into the grader"
            )
    return list(dict.fromkeys(value))


def _kit_imports(parts: list[Part], sandbox_paths: list[str], extra: list[str]) -> list[str]:
    """DEFAULT_IMPORTS, the kit's packages (each part's, the sandbox's, dlcv) and the manifest's own additions."""
    kit = {p.module.split(".")[0] for p in parts} | set(KIT_PACKAGES)
    kit |= {Path(s).parts[0].removesuffix(".py") for s in sandbox_paths if s and not s.startswith("/")}
    return sorted({*DEFAULT_IMPORTS, *(k for k in kit if k.isidentifier()), *extra})


def _questions(raw: Any, notebooks: list[str], where: str) -> list[Question]:
    """The manifest's `[[questions]]` (inline questions of the notebooks), validated: GraderError names the
    manifest and the entry."""
    if not isinstance(raw, list) or not all(isinstance(q, dict) for q in raw):
        raise GraderError(f"{where}: 'questions' should be a list of tables ([[questions]]), found {raw!r}")
    where = f"{where} [[questions]]"
    out: list[Question] = []
    for i, q in enumerate(raw):
        w = f"{where} #{i + 1}"
        if not isinstance(q, dict):
            raise GraderError(f"{w}: expected a table, found {q!r}")
        unknown = sorted(set(q) - set(QUESTION_KEYS))
        if unknown:
            raise GraderError(f"{w}: unknown key {unknown[0]!r} (expected: {', '.join(QUESTION_KEYS)})")
        qid = q.get("id")
        if not isinstance(qid, str) or not QUESTION_ID.match(qid):
            raise GraderError(f"{w}: 'id' should be letters, digits, _ or - (at most 64), found {qid!r}")
        if any(o.id == qid for o in out):
            raise GraderError(f"{w}: id {qid!r} is used twice")
        nb = q.get("notebook")
        if nb not in notebooks:
            raise GraderError(
                f"{w} ({qid}): 'notebook' should be one of the manifest's notebooks "
                f"({', '.join(notebooks) or 'none'}), found {nb!r}"
            )
        points = q.get("points")
        if not isinstance(points, (int, float)) or isinstance(points, bool) or not points >= 0:
            raise GraderError(f"{w} ({qid}): 'points' should be a number of points (0 or more), found {points!r}")
        tag = q.get("tag", f"question:{qid}")
        if not isinstance(tag, str) or not tag or re.search(r"[\s,]", tag):
            raise GraderError(f"{w} ({qid}): 'tag' should be a cell tag (no spaces or commas), found {tag!r}")
        title = q.get("prompt", "")
        if not isinstance(title, str):
            raise GraderError(f"{w} ({qid}): 'prompt' should be a string, found {title!r}")
        out.append(Question(qid, nb, float(points), tag, title))
    return out


def _canvas_assignment_id(data: dict, where: str) -> int | None:
    """`canvas_assignment_id`: optional; a positive whole number (a string or a title is refused, not guessed)."""
    value = data.get("canvas_assignment_id")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise GraderError(
            f"{where}: 'canvas_assignment_id' should be the assignment's id in Canvas, a positive whole number "
            f"(the number ending its Canvas address, .../assignments/12345), found {value!r}"
        )
    return value


def _part(p: dict, i: int, where: str, graded: dict[str, str], check_names: bool = True) -> Part:
    pw = f"{where} [[parts]] #{i + 1}"
    _known_keys(p, PART_KEYS, pw)
    functions = {}
    for k, v in _need(p, "functions", dict, pw).items():
        functions[k] = _typed(v, k, float, f"{pw} [parts.functions]")
    points = _need(p, "points", float, pw)
    if abs(sum(functions.values()) - points) > 1e-9:
        raise GraderError(
            f"{pw}: the functions' points add up to {sum(functions.values()):g}, expected the part's {points:g}"
        )
    forbidden_t = _table(p, "forbidden", pw)
    _graded_keys(forbidden_t, functions, graded, f"{pw} [parts.forbidden]")
    forbidden = {k: _strings(forbidden_t, k, f"{pw} [parts.forbidden]") for k in forbidden_t}
    for k, names in forbidden.items() if check_names else ():
        for name in names:
            _pytorch_name(name, f"{pw} [parts.forbidden] {k!r}")
    loops_t = _table(p, "max_loops", pw)
    _graded_keys(loops_t, functions, graded, f"{pw} [parts.max_loops]")
    max_loops = {}
    for k, v in loops_t.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise GraderError(
                f"{pw} [parts.max_loops]: {k!r} should be a whole number of loops (0 or more), found {v!r}"
            )
        max_loops[k] = v
    blocks_t = _table(p, "blocks", pw)
    _graded_keys(blocks_t, functions, graded, f"{pw} [parts.blocks]")
    blocks = {}
    for k in blocks_t:
        names = _strings(blocks_t, k, f"{pw} [parts.blocks]")
        for b in names:
            if b not in graded:
                raise GraderError(
                    f"{pw} [parts.blocks]: {k!r} lists {b!r}, which no part grades (a building block "
                    f"is a graded function or class){_suggest(b, list(graded))}"
                )
            if b == k:
                raise GraderError(f"{pw} [parts.blocks]: {k!r} lists itself as its own building block")
        blocks[k] = names
    name = _need(p, "name", str, pw)
    return Part(
        name=name,
        title=_typed(p.get("title", name), "title", str, pw),
        module=_need(p, "module", str, pw),
        file=_need(p, "file", str, pw),
        points=points,
        functions=functions,
        forbidden=forbidden,
        max_loops=max_loops,
        blocks=blocks,
    )


def _check_blocks(parts: list[Part], where: str) -> None:
    """No composite builds on itself through other blocks (a cycle could never be graded blocks first)."""
    uses = {k: v for p in parts for k, v in p.blocks.items()}

    def visit(name: str, path: list[str]) -> None:
        for b in uses.get(name, []):
            if b in path:
                cycle = " -> ".join([*path[path.index(b) :], b])
                raise GraderError(f"{where} [parts.blocks]: building blocks form a cycle: {cycle}")
            visit(b, [*path, b])

    for k in uses:
        visit(k, [k])


def _targets(table: dict, where: str) -> dict[str, dict[str, float]]:
    out = {}
    for dataset, values in table.items():
        tw = f"{where} [targets.{dataset}]"
        if dataset not in DATASETS:
            raise GraderError(f"{where} [targets]: unknown data set {dataset!r}{_suggest(dataset, DATASETS)}")
        if not isinstance(values, dict):
            raise GraderError(f"{tw}: expected a table of target values, found {values!r}")
        out[dataset] = {k: _typed(v, k, float, tw) for k, v in values.items()}
    return out


def _why(table: dict, parts: list[Part], where: str) -> dict[str, str]:
    """[why]: a reason for every forbidden name, and only for forbidden names."""
    used = {n for p in parts for names in p.forbidden.values() for n in names}
    for key, reason in table.items():
        if key not in used:
            raise GraderError(
                f"{where} [why]: {key!r} is not forbidden anywhere ([parts.forbidden])"
                f"{_suggest(key, sorted(used)) if used else ''}"
            )
        if not isinstance(reason, str) or not reason.strip():
            raise GraderError(f"{where} [why]: the reason for {key!r} should be a sentence, found {reason!r}")
    unexplained = sorted(used - set(table))
    if unexplained:
        raise GraderError(
            f"{where} [why]: no reason given for forbidding {unexplained[0]!r}"
            + (
                f" (nor {len(unexplained) - 1} other name(s): {', '.join(unexplained[1:4])}"
                + (", ..." if len(unexplained) > 4 else "")
                + ")"
                if len(unexplained) > 1
                else ""
            )
            + "; every forbidden name needs a reason students can read"
        )
    return {k: v.strip() for k, v in table.items()}


def _autograd_allowed_in(data: dict, files: list[str], path: Path, shown: str) -> list[str]:
    """`autograd_allowed_in`: files of the kit (relative to the course root) whose code the guard lets use
    autograd. Each must be a kit file that is never taken from a submission."""
    where = f"{shown} autograd_allowed_in"
    value = data.get("autograd_allowed_in", [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GraderError(f"{where}: expected a list of file paths, found {value!r}")
    root = path.parent.parent.parent
    for f in value:
        if not f.endswith(".py") or f.startswith("/") or ".." in Path(f).parts:
            raise GraderError(
                f"{where}: expected paths of .py files inside the course, like "
                f"'a3_networks/fast_layers.py', found {f!r}"
            )
        if f in files:
            raise GraderError(
                f"{where}: {f} is taken from a submission ('files'), so a student could write it; "
                "only given files of the kit may use autograd"
            )
        if not (root / f).is_file():
            raise GraderError(f"{where}: {f} is not a file of the kit (looked for {root / f})")
    return list(value)
