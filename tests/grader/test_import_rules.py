"""Issue 17, items 5 and 6: only the modules the lesson needs, and rules that follow the student's code wherever it
goes. Each attack below scored full marks before; each now costs the named function its points (a use of a module
outside the manifest's list holds back the whole file, as a door does), while the references and the corpus keep
theirs (tests/corpus/, test_staticscan.py's reference scans)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from grader.course import manifest
from grader.course.intake import Staged
from grader.errors import GraderError
from grader.judge.doors import dynamic_uses
from grader.judge.imports import import_uses
from grader.judge.runner import Run, grade, unused_imports
from grader.judge.staticscan import loop_sites, scan
from grader.sandbox.host import Sandbox
from grader.sandbox.isolation import SandboxConfig
from tests.conftest import ROOT, copy_submission, replace_function

A1 = manifest.load("a1_knn", ROOT)
A2 = manifest.load("a2_linear", ROOT)
A3 = manifest.load("a3_networks", ROOT)


def run_for(m: manifest.Manifest, sources: dict[str, str]) -> Run:
    """A grading run's static side only (no sandbox): what `Run.static_problem` says of these sources."""
    staged = Staged(root=Path("/nonexistent"), present=list(sources), missing=[], sources=dict(sources))
    return Run(m, staged, None, "cpu", None, ROOT)


def with_function(path: Path, qualname: str, code: str, tmp_path: Path) -> str:
    """The reference file at `path` with `qualname` replaced by `code` (and anything it needs above it)."""
    copy = tmp_path / path.name
    copy.write_text(path.read_text())
    replace_function(copy, qualname, code)
    return copy.read_text()


# ---- item 5: only the modules the lesson needs ------------------------------------------------------------------

SCIPY = """
def compute_distances_no_loops(x_train, x_test):
    from scipy.spatial import distance
    a = x_train.reshape(x_train.shape[0], -1).double().numpy()
    b = x_test.reshape(x_test.shape[0], -1).double().numpy()
    return torch.from_numpy(distance.cdist(a, b, "sqeuclidean")).to(x_train.dtype)
"""


def test_scipy_cdist_holds_back_the_file_with_a_message_naming_line_and_module(tmp_path):
    src = with_function(ROOT / "a1_knn/knn.py", "compute_distances_no_loops", SCIPY, tmp_path)
    uses = import_uses(src, A1.allowed_imports).refused
    assert [u.name for u in uses] == ["scipy"]
    line = next(i for i, t in enumerate(src.splitlines(), 1) if "distance.cdist" in t)
    assert uses[0].line == line
    text = run_for(A1, {"a1_knn/knn.py": src}).static_problem("compute_distances_no_loops")
    assert text.startswith(
        f"a1_knn/knn.py line {line} uses scipy (distance.cdist): graded files may use only torch, math, random, "
        "statistics, typing, abc, enum, collections, functools, itertools, dataclasses, a1_knn, dlcv, so instead "
        "of scipy, compute it with torch."
    )
    # like a door: every function of the file is held back, since any of them could reach the module
    assert run_for(A1, {"a1_knn/knn.py": src}).static_problem("predict_labels") is not None
    hits = run_for(A1, {"a1_knn/knn.py": src}).static_hits("compute_distances_no_loops")
    assert {"rule": "import", "name": "scipy", "line": line} == {k: hits[0][k] for k in ("rule", "name", "line")}


@pytest.mark.parametrize(
    "snippet, module",
    [
        ("import numpy as np\ndef f(x):\n    return np.sqrt(x)\n", "numpy"),
        ("from sklearn.metrics import pairwise_distances as pd\ndef f(x):\n    return pd(x)\n", "sklearn"),
        ("import threading\ndef f(x):\n    return threading._sys.modules['grader.sandbox.guard']\n", "threading"),
        ("import operator\ndef f(x):\n    return operator.attrgetter('__' + 'globals__')(f)\n", "operator"),
        ("import os\ndef f(x):\n    return os.getcwd()\n", "os"),
        ("import subprocess as sp\ndef f(x):\n    return sp.run\n", "subprocess"),
        ("from os import *\ndef f(x):\n    return x\n", "os"),
        # a module reached through an allowed one is a use of that module
        ("import torch\ndef f(x):\n    return torch.os.system\n", "os"),
        ("import random\ndef f(x):\n    return random._os.getcwd()\n", "os"),
        ("import typing\ndef f(x):\n    return typing.sys.modules\n", "sys"),
        ("from dataclasses import inspect as i\ndef f(x):\n    return i.currentframe()\n", "inspect"),
    ],
)
def test_a_use_of_a_module_outside_the_list_is_refused(snippet, module):
    assert [u.name for u in import_uses(snippet, A1.allowed_imports).refused] == [module]


def test_a_submodule_of_an_allowed_module_is_allowed_under_its_own_name():
    allowed = [*A1.allowed_imports, "os"]
    assert import_uses("import os\ndef f(p):\n    return os.path.join(p, 'x')\n", allowed).refused == []
    assert (
        import_uses("import torch\ndef f(x):\n    return torch.nn.functional.pad(x, (1, 1))\n", allowed).refused == []
    )


def test_the_other_doors_of_the_issue_are_refused_too():
    """`__builtins__["__import__"]` and `threading._sys` are doors as well (grader.judge.doors)."""
    assert dynamic_uses("def f(x):\n    return __builtins__['__import__']('os')\n", "f")
    assert "_sys" in {u.name for u in dynamic_uses("def f(t):\n    return t._sys.modules\n", "f")}


REAL_A3_IMPORTS = "import multiprocessing.pool\n"  # one real student's A3 file: imported, never used


def test_an_import_that_nothing_uses_costs_nothing_and_earns_a_warning():
    for f in A3.files:
        src = (ROOT / f).read_text()
        head, _, rest = src.partition("import torch\n")
        student = head + REAL_A3_IMPORTS + "import torch\n" + rest
        assert import_uses(student, A3.allowed_imports).refused == []
        for part in A3.parts:
            if part.file == f:
                for fn in part.functions:
                    assert dynamic_uses(student, fn) == [], fn
                    assert run_for(A3, {f: student}).static_problem(fn) is None, fn
        staged = Staged(root=Path("/nonexistent"), present=[f], missing=[], sources={f: student})
        warnings = unused_imports(A3, staged)
        line = student.splitlines().index("import multiprocessing.pool") + 1
        assert warnings == [
            f"Warning: {f} line {line} imports multiprocessing.pool but never uses it; that costs nothing, but graded "
            "files may use only torch, math, random, statistics, typing, abc, enum, collections, functools, "
            "itertools, dataclasses, a3_networks, dlcv, so remove the import."
        ]


def test_the_references_and_the_corpus_use_only_allowed_modules():
    for m in (A1, A2, A3):
        files = [ROOT / f for f in m.files] + sorted((ROOT / "tests/corpus" / m.name).rglob("*.py"))
        for path in files:
            found = import_uses(path.read_text(), m.allowed_imports)
            assert found.refused == [] and found.unused == [], path


# ---- the manifest key --------------------------------------------------------------------------------------------

MINI = """
name = "mini"
[[parts]]
name = "p"
module = "mini_pkg.work"
file = "mini_pkg/work.py"
points = 1
[parts.functions]
f = 1
"""


def mini(tmp_path: Path, extra: str = "") -> manifest.Manifest:
    d = tmp_path / "assignments" / "mini"
    d.mkdir(parents=True, exist_ok=True)
    text = textwrap.dedent(MINI)
    (d / "assignment.toml").write_text(text + extra if extra.startswith("[") else extra + text)  # a table: last
    return manifest.load("mini", tmp_path)


def test_allowed_imports_are_the_course_defaults_and_the_kits_packages(tmp_path):
    m = mini(tmp_path)
    assert set(m.allowed_imports) == {*manifest.DEFAULT_IMPORTS, "mini_pkg", "dlcv"}
    assert {"torch", "math", "__future__", "a1_knn", "dlcv"} <= set(A1.allowed_imports)
    assert "numpy" not in A1.allowed_imports and "os" not in A1.allowed_imports


def test_rules_allowed_imports_adds_modules(tmp_path):
    m = mini(tmp_path, '[rules]\nallowed_imports = ["numpy", "scipy"]\n')
    assert {"numpy", "scipy", "torch"} <= set(m.allowed_imports) and m.extra_imports == ["numpy", "scipy"]
    assert import_uses("import numpy as np\ndef f(x):\n    return np.sqrt(x)\n", m.allowed_imports).refused == []


@pytest.mark.parametrize(
    "extra, words",
    [
        ('[rules]\nallowed_imports = "numpy"\n', "'allowed_imports' should be a list of module names"),
        ("[rules]\nallowed_imports = [1]\n", "'allowed_imports' should be a list of module names"),
        ('[rules]\nallowed_imports = ["scipy.spatial"]\n', "top-level module names, found 'scipy.spatial'"),
        ('[rules]\nallowed_imports = ["grader"]\n', "cannot allow 'grader'"),
        ('[rules]\nallowed_import = ["numpy"]\n', "unknown key 'allowed_import' (did you mean 'allowed_imports'?)"),
        ('rules = ["numpy"]\n', "'rules' should be a table"),
    ],
)
def test_a_bad_allowed_imports_is_refused_at_load_naming_the_key(tmp_path, extra, words):
    with pytest.raises(GraderError, match="assignments/mini/assignment.toml") as e:
        mini(tmp_path, extra)
    assert words in str(e.value)


def test_the_worker_receives_the_allowed_modules_in_its_setup(tmp_path, monkeypatch):
    from grader.judge import opening

    staged = Staged(root=tmp_path, present=[], missing=[])
    cfg = opening.sandbox_config(
        A1, ROOT, staged, "cpu", None, opening.choose_isolation("none", hidden=False, allow_weak=True), ""
    )
    assert cfg.allowed_imports == A1.allowed_imports and {"a1_knn", "dlcv", "torch"} <= set(cfg.allowed_imports)
    sent = []
    original = Sandbox._send  # every request to the worker, its setup included

    def spy(self, msg, *args, **kwargs):
        sent.append(msg)
        return original(self, msg, *args, **kwargs)

    monkeypatch.setattr(Sandbox, "_send", spy)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "m.py").write_text("def f():\n    return 1\n")
    config = SandboxConfig(root=tmp_path, student_files=["pkg/m.py"], isolation="none", allowed_imports=["torch"])
    with Sandbox(config) as sb:
        assert sb.call("pkg.m", "f").value == 1
    setup = next(m for m in sent if m.get("op") == "setup")
    assert setup["config"]["allowed_imports"] == ["torch"]


# ---- item 6: rules follow the student's code ----------------------------------------------------------------------

COUNT_HELPER = """
def _size_of(x):
    return x.shape.numel()


def count_tensor_elements(x):
    return _size_of(x)
"""


def test_numel_in_a_helper_is_found(tmp_path):
    src = with_function(ROOT / "a1_knn/pytorch101.py", "count_tensor_elements", COUNT_HELPER, tmp_path)
    uses = scan(src, "count_tensor_elements", A1.forbidden_for("count_tensor_elements"))
    assert [(u.name, u.where) for u in uses] == [("torch.Size.numel", "_size_of")]
    text = run_for(A1, {"a1_knn/pytorch101.py": src}).static_problem("count_tensor_elements")
    assert "x.shape.numel (line" in text and "in _size_of, which count_tensor_elements runs)" in text


@pytest.mark.parametrize(
    "how",
    [
        "_f = _size_of\n\n\ndef count_tensor_elements(x):\n    return _f(x)\n",
        "_f = functools.partial(_size_of)\n\n\ndef count_tensor_elements(x):\n    return _f(x)\n",
        "_f = lambda x: _size_of(x)\n\n\ndef count_tensor_elements(x):\n    return _f(x)\n",
        "def count_tensor_elements(x, how=_size_of):\n    return how(x)\n",
        "def count_tensor_elements(x):\n    return sum(map(_size_of, [x]))\n",
        "class _K:\n    def size(self, x):\n        return _size_of(x)\n\n    def count(self, x):\n"
        "        f = self.size\n        return f(x)\n\n\ndef count_tensor_elements(x):\n    return _K().count(x)\n",
    ],
)
def test_a_helper_is_followed_through_aliases_partials_lambdas_defaults_and_methods(how):
    src = f"import functools\nimport torch\n\n\ndef _size_of(x):\n    return x.shape.numel()\n\n\n{how}"
    assert [u.name for u in scan(src, "count_tensor_elements", A1.forbidden_for("count_tensor_elements"))] == [
        "torch.Size.numel"
    ]


BATCH_NORM = """
def normalize_columns(x):
    y = F.batch_norm(x, None, None, training=True, eps=0.0)
    return y * ((x.shape[0] - 1) / x.shape[0]) ** -0.5
"""


def test_normalize_columns_may_not_use_the_normalisation_ops(tmp_path):
    src = "import torch.nn.functional as F\n" + with_function(
        ROOT / "a1_knn/pytorch101.py", "normalize_columns", BATCH_NORM, tmp_path
    )
    assert [u.name for u in scan(src, "normalize_columns", A1.forbidden_for("normalize_columns"))] == [
        "torch.nn.functional.batch_norm"
    ]
    for name in (
        "torch.nn.functional.layer_norm",
        "torch.nn.functional.instance_norm",
        "torch.nn.functional.group_norm",
        "torch.nn.functional.normalize",
    ):
        assert name in A1.forbidden_for("normalize_columns")
        assert name in A3.forbidden_for("BatchNorm") and name in A3.forbidden_for("SpatialBatchNorm")


MAPPED = """
def make_one_hot(labels):
    n = max(labels) + 1
    return torch.stack(list(map(lambda t: torch.eye(n)[t], labels)))
"""


@pytest.mark.parametrize(
    "body",
    [
        "return list(map(lambda t: t * 2, rows))",
        "return list(filter(None, rows))",
        "return functools.reduce(lambda a, b: a + b, rows)",
        "return list(itertools.starmap(lambda a, b: a + b, rows))",
        "return f(rows[1:]) if rows else []",
    ],
)
def test_map_filter_reduce_itertools_and_recursion_are_loops(body):
    src = f"import functools\nimport itertools\n\n\ndef f(rows):\n    {body}\n"
    assert loop_sites(src, "f") == [(6, "f")]


def test_map_in_a_no_loop_function_loses_its_points(tmp_path):
    src = with_function(ROOT / "a1_knn/pytorch101.py", "make_one_hot", MAPPED, tmp_path)
    text = run_for(A1, {"a1_knn/pytorch101.py": src}).static_problem("make_one_hot")
    assert text.startswith("make_one_hot may contain no loops (for, while, comprehensions, map, filter,")


SVM_ALIAS = """
_svm_slow = svm_loss_naive


def svm_loss_vectorized(W, X, y, reg):
    return _svm_slow(W, X, y, reg)
"""


def test_the_naive_loss_under_another_name_is_still_loops(tmp_path):
    src = with_function(ROOT / "a2_linear/linear_classifier.py", "svm_loss_vectorized", SVM_ALIAS, tmp_path)
    sites = loop_sites(src, "svm_loss_vectorized")
    assert sites and {who for _, who in sites} == {"svm_loss_naive"}
    text = run_for(A2, {"a2_linear/linear_classifier.py": src}).static_problem("svm_loss_vectorized")
    assert "in svm_loss_naive, which svm_loss_vectorized calls" in text


def test_a_local_name_is_not_the_files_function_of_the_same_name():
    src = (
        "def helper(x):\n    return [v for v in x]\n\n\n"
        "def f(x, helper=None):\n    return x\n\n\n"
        "def g(x):\n    helper = x\n    return helper\n"
    )
    assert loop_sites(src, "f") == [] and loop_sites(src, "g") == []


# ---- end to end: A1 grading, the named functions lose their points, the rest keep theirs -------------------------


@pytest.mark.slow
def test_each_attack_costs_the_named_function_and_an_unused_import_costs_nothing(tmp_path):
    sub = copy_submission(tmp_path / "sub")
    py = sub / "a1_knn/pytorch101.py"
    replace_function(py, "count_tensor_elements", COUNT_HELPER)
    replace_function(py, "normalize_columns", BATCH_NORM)
    replace_function(py, "make_one_hot", MAPPED)
    text = py.read_text()  # the imports go after `from __future__ import annotations`, which must come first
    py.write_text(
        text.replace(
            "import torch\n", "import multiprocessing.pool\nimport torch\nimport torch.nn.functional as F\n", 1
        )
    )
    result = grade(sub, "a1_knn", device="cpu", parts=["warmup"])
    failed = {c.function for c in result.checks if not c.passed}
    assert failed == {"count_tensor_elements", "normalize_columns", "make_one_hot"}
    assert result.score == pytest.approx(60 - 3 - 4 - 4)
    assert any("imports multiprocessing.pool but never uses it" in p for p in result.problems)
    knn = sub / "a1_knn/knn.py"
    replace_function(knn, "compute_distances_no_loops", SCIPY)
    result = grade(sub, "a1_knn", device="cpu", parts=["knn"])
    no_loops = [c for c in result.checks if c.function == "compute_distances_no_loops"]
    assert no_loops and all(not c.passed and "uses scipy" in c.output for c in no_loops)
    assert all(not c.passed for c in result.checks)  # the whole file is held back, as for a door
