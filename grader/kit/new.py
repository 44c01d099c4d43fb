"""`grader new NAME`: the skeleton of a new assignment, every piece in its place and working as written.

It writes, and overwrites nothing:

- `NAME/__init__.py` and `NAME/layers.py`: the package students fill in, one function (`affine_forward`) with its
  solution region, its docstring stating the conventions and the rules block the manifest enforces;
- `assignments/NAME/`: `assignment.toml` (one part, one forbidden name with its reason, one inline question),
  `checks.py` (one check with a named mistake), `hidden.py` (one hidden variant), `oracles.py` (the course's own
  function, for composites built on it);
- `notebooks/NAME.ipynb`: the first cell saying what is graded by hand, the set-up cell, a toy with `Correct:`,
  the self-check and the inline question (a Markdown cell tagged `question:<id>` with a `*Your answer:*` line);
- `tests/NAME/test_NAME.py`: the reference scores full marks, public and hidden; the kit's stub scores 0; a
  planted bug loses exactly its function's points with its mistake named.

As generated, the reference scores 100 and the kit 0 (tests/grader/test_new.py grades both). Then rename, add
functions, checks, hidden variants and oracles: docs/writing-checks.md's checklist says what each piece must hold.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from grader.errors import GraderError

NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


def files_for(name: str, title: str) -> dict[str, str]:
    """Every file of the skeleton, by its path under the course root, before the rules block is filled in."""
    q = f"{name}_bias"
    return {
        f"{name}/__init__.py": f'"""{title}: the package you fill in. Write your code in layers.py."""\n',
        f"{name}/layers.py": LAYERS.format(title=title),
        f"assignments/{name}/assignment.toml": MANIFEST.format(name=name, title=title, question=q),
        f"assignments/{name}/checks.py": CHECKS.format(name=name),
        f"assignments/{name}/hidden.py": HIDDEN.format(name=name),
        f"assignments/{name}/oracles.py": ORACLES.format(name=name),
        f"notebooks/{name}.ipynb": notebook(name, title, q),
        f"tests/{name}/__init__.py": "",
        f"tests/{name}/test_{name}.py": TEST.format(name=name),
    }


def new_assignment(course: Path, name: str, title: str | None = None) -> list[Path]:
    """Write the skeleton of assignment `name` into the course at `course`; returns the files written."""
    from grader.course import manifest as manifests
    from grader.course.rules import rules_block
    from grader.judge.loading import load_checks, load_oracles

    if not NAME.match(name) or keyword.iskeyword(name):
        raise GraderError(
            f"expected a lower-case Python package name of 2 to 40 letters, digits and underscores, starting with a "
            f"letter (for example a4_rnn), found {name!r}",
            option="NAME",
        )
    if not (course / "assignments").is_dir() or not (course / "dlcv").is_dir():
        raise GraderError(f"{course}: not a course folder (expected assignments/ and dlcv/ in it)", option="--course")
    if name in manifests.available(course):
        raise GraderError(f"assignments/{name} already exists; choose another name", option="NAME")
    title = title or f"{name}: a new assignment"
    files = files_for(name, title)
    taken = [p for p in files if (course / p).exists()]
    if taken:
        raise GraderError(f"{taken[0]} already exists; nothing was written (choose another name)", option="NAME")
    written = []
    try:
        for rel, text in files.items():
            path = course / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
        m = manifests.load(name, course)  # the skeleton's manifest loads, and states the rules it enforces
        load_checks(m, hidden=True)  # its checks, hidden variants and oracles load as the grader loads them
        load_oracles(m)
        layers = course / name / "layers.py"
        layers.write_text(layers.read_text().replace(RULES_PLACEHOLDER, rules_block(m, m.parts[0])))
    except BaseException:
        for path in written:  # a half-written skeleton would only confuse: all or nothing
            path.unlink(missing_ok=True)
        raise
    return written


RULES_PLACEHOLDER = "<rules>"

LAYERS = '''"""
{title}: the functions you write. Each returns tensors in the dtype and on the device of its inputs and leaves
its inputs unchanged.

<rules>
"""

from __future__ import annotations

import torch


def affine_forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """
    The affine (fully connected) layer: out = x w + b.

    Inputs:
    - x: (N, D) inputs.
    - w: (D, M) weights.
    - b: (M,) biases.

    Returns:
    - out: (N, M), in x's dtype and on its device.
    """
    out = None
    # TODO: Compute out with one matrix product and a broadcast addition.
    # BEGIN SOLUTION
    out = x @ w + b
    # END SOLUTION
    return out
'''

MANIFEST = """# {title}. Generated by `grader new {name}`: docs/writing-checks.md says what each key means.
name = "{name}"
title = "{title}"
files = ["{name}/layers.py"]            # the only files taken from a submission
notebooks = ["notebooks/{name}.ipynb"]
checks = ["checks.py"]
hidden_checks = ["hidden.py"]                   # left out of the student kit
sandbox_paths = ["{name}", "dlcv"]              # copied from the pristine kit

[[parts]]
name = "layers"
title = "Layers"
module = "{name}.layers"
file = "{name}/layers.py"
points = 100

[parts.functions]
affine_forward = 100

[parts.forbidden]
affine_forward = ["torch.nn.functional.linear"]

[why]
"torch.nn.functional.linear" = "it is the layer you are asked to write"

[[questions]]
id = "{question}"
notebook = "notebooks/{name}.ipynb"
points = 2
"""

CHECKS = '''"""Public checks for {name}. Each computes its expected value here, in the judge, in float64 with
PyTorch's own operations, and never imports the {name} package or the oracles."""

from __future__ import annotations

import torch

from grader.checks import check
from grader.judging import cpu64, fmt_shape

BOUND = {{torch.float64: 1e-10, torch.float32: 1e-5}}


@check("{name}.layers.affine_forward", function="affine_forward", N=4, D=5, M=3, dtype=torch.float64)
def affine_forward(ctx, N, D, M, dtype):
    """affine_forward computes x w + b"""
    x, w, b = ctx.randn(N, D, dtype=dtype), ctx.randn(D, M, dtype=dtype), ctx.randn(M, dtype=dtype)
    reply = ctx.invoke("affine_forward", x, w, b, return_args=True)
    ctx.expect_unchanged([x, w, b], reply, ["x", "w", "b"])
    X, W, B = cpu64(x), cpu64(w), cpu64(b)
    ctx.expect_tensor(
        reply.value,
        (X @ W + B).to(dtype),
        f"out (N={{N}}, D={{D}}, M={{M}})",
        bound=BOUND[dtype],
        mistakes={{"the bias b is missing: out = x w + b": (X @ W).to(dtype)}},
        hint=f"out is (N, M) = {{fmt_shape((N, M))}}.",
    )
'''

HIDDEN = '''"""Hidden checks for {name}: the public checks' code with other shapes and dtypes."""

import torch

from grader.checks import variant

from .checks import affine_forward

layers = [variant(affine_forward, "float32_one_example", N=1, D=7, M=2, dtype=torch.float32)]
'''

ORACLES = '''"""The course's own {name} functions, staff only: when a composite that calls one fails and the
student's own failed its checks, the grader judges the composite again with these in its place ([parts.blocks] in
assignment.toml). Self-contained: imports torch only, never calls student code."""

from __future__ import annotations

import torch


def affine_forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (x.detach() @ w.detach() + b.detach()).to(x.dtype)


ORACLES = {{"affine_forward": affine_forward}}
'''

TEST = '''"""{name}: the reference scores full marks, public and hidden; the kit's stub scores 0; a planted bug
loses exactly its function's points, with its mistake named. `make test-assignment A={name}` runs these."""

import pytest

from grader.course import manifest
from grader.judge.runner import grade
from grader.kit.release import stub_source
from tests.conftest import ROOT, copy_submission, replace_function

pytestmark = pytest.mark.assignment("{name}")  # make test-assignment A={name}

M = manifest.load("{name}", ROOT)


@pytest.mark.parametrize("hidden", [False, True], ids=["public", "hidden"])
def test_the_reference_scores_full_marks(hidden):
    result = grade(ROOT, "{name}", device="cpu", hidden=hidden)
    assert result.score == result.max_score == M.points, [c.output for c in result.checks if not c.passed]


def test_the_kits_stub_scores_nothing(tmp_path):
    sub = copy_submission(tmp_path, packages=("{name}",))
    for f in M.files:
        (sub / f).write_text(stub_source((sub / f).read_text(), f)[0])
    result = grade(sub, "{name}", device="cpu")
    assert result.score == 0 and all("not implemented yet" in c.output for c in result.checks)


def test_a_missing_bias_loses_its_points_and_is_named(tmp_path):
    sub = copy_submission(tmp_path, packages=("{name}",))
    replace_function(sub / "{name}/layers.py", "affine_forward", "def affine_forward(x, w, b):\\n    return x @ w\\n")
    result = grade(sub, "{name}", device="cpu")
    assert result.score == M.points - M.parts[0].functions["affine_forward"]
    assert all("the bias b is missing" in c.output for c in result.checks if not c.passed)
'''


def notebook(name: str, title: str, question: str) -> str:
    import nbformat

    v4 = nbformat.v4
    nb = v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nb.cells = [
        v4.new_markdown_cell(
            f"# {title}\n\nYou write your code in `{name}/layers.py`, in the places marked `TODO`; this notebook runs "
            "it.\n\n**Graded by hand.** The autograder scores your `.py` files. This notebook also has 1 inline "
            "question (2 points each, 2 in all), the Markdown cells headed *Inline question*: write your answer "
            "below their *Your answer:* line. The staff grade them by hand from the notebook you submit, so run it "
            "top to bottom and save it with its outputs."
        ),
        v4.new_code_cell(
            "import os\nimport sys\n\n"
            'sys.path.insert(0, os.path.abspath(".."))  # the course folder: `import '
            f"{name}` finds your code\n\n%matplotlib inline\n%load_ext autoreload\n%autoreload 2\n\n"
            "import torch\n\nimport dlcv\n"
            f"import dlcv.selfcheck\nfrom {name} import layers\n\ndlcv.reset_seed(0)"
        ),
        v4.new_markdown_cell("## 1. An affine layer\n\nWrite `affine_forward` in `layers.py`, then run the cell."),
        v4.new_code_cell(
            "x = torch.tensor([[1.0, 2.0]])\nw = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 3.0]])\n"
            "b = torch.tensor([0.5, -0.5, 1.0])\nout = layers.affine_forward(x, w, b)\n"
            'print("out =", out)\nprint("Correct:", torch.equal(out, torch.tensor([[1.5, 1.5, 9.0]])))'
        ),
        v4.new_code_cell(f'results = dlcv.selfcheck.check("{name}", "layers")'),
        v4.new_markdown_cell(
            "### Inline question\n\nWhy does the layer need the bias b? What can `x w` alone not represent?\n\n"
            "*Your answer:*",
            metadata={"tags": [f"question:{question}"]},
        ),
    ]
    return nbformat.writes(nb) + "\n"
