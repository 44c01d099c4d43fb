import pytest

from grader.judge.staticscan import loops, scan

SRC = """
import torch
import torch.nn.functional as F
from torch import cdist as cd
from torch.linalg import norm

def uses_all(a, b):
    d = torch.cdist(a, b)
    e = cd(a, b)
    f = a.norm(dim=1)
    g = F.pad(a, (1, 1))
    h = norm(a)
    return d

def clean(a, b):
    normed = a.sum()       # a variable named like a forbidden method is fine
    return (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.t()

class Model:
    def predict(self, x):
        return torch.cdist(x, x)

def looped(x):
    for i in range(3):
        while False:
            pass
    return [v for v in x]
"""

FORBIDDEN = ["torch.cdist", "torch.nn", "torch.linalg", "torch.Tensor.norm"]


def test_each_forbidden_use_is_found_with_its_line_through_aliases():
    uses = scan(SRC, "uses_all", FORBIDDEN)
    got = {(u.name, u.text) for u in uses}
    assert ("torch.cdist", "torch.cdist") in got
    assert ("torch.cdist", "cd") in got
    assert ("torch.Tensor.norm", "a.norm") in got
    assert ("torch.nn", "F.pad") in got
    assert ("torch.linalg", "norm") in got
    assert all(u.line > 0 for u in uses)


def test_clean_code_and_other_functions_are_not_flagged():
    assert scan(SRC, "clean", FORBIDDEN) == []
    assert scan(SRC, "not_there", FORBIDDEN) == []


def test_methods_are_scanned_by_qualified_name():
    assert [u.name for u in scan(SRC, "Model.predict", FORBIDDEN)] == ["torch.cdist"]
    assert [u.name for u in scan(SRC, "Model", FORBIDDEN)] == ["torch.cdist"]


def test_loops_counts_for_while_and_comprehensions():
    assert len(loops(SRC, "looped")) == 3
    assert loops(SRC, "clean") == []


def test_autograd_use_is_found_in_every_spelling():
    from grader.course.manifest import AUTOGRAD_NAMES

    src = (
        "import torch\n"
        "from torch.autograd import grad\n"
        "def f(w, x):\n"
        "    a = torch.zeros(3, requires_grad=True)\n"
        "    w.requires_grad_()\n"
        "    x.requires_grad = True\n"
        "    (w * x).sum().backward()\n"
        "    return grad(w.sum(), w), torch.autograd.grad\n"
        "def g(w):\n"
        "    return 2 * w\n"
    )
    found = {(u.name, u.line) for u in scan(src, "f", AUTOGRAD_NAMES)}
    assert {
        ("torch.Tensor.requires_grad", 4),
        ("torch.Tensor.requires_grad_", 5),
        ("torch.Tensor.requires_grad", 6),
        ("torch.Tensor.backward", 7),
        ("torch.autograd", 8),
    } <= found
    assert scan(src, "g", AUTOGRAD_NAMES) == []


def test_a_layer_backward_is_not_tensor_backward():
    from grader.course.manifest import AUTOGRAD_NAMES

    src = (
        "import torch\n"
        "from layers import Conv\n"
        "class Linear:\n"
        "    @staticmethod\n"
        "    def backward(dout, cache):\n"
        "        return dout\n"
        "def net_backward(dout, cache, scores):\n"
        "    dx = Linear.backward(dout, cache)\n"
        "    dy = Conv.backward(dout, cache)\n"
        "    scores.sum().backward()\n"
        "    for layer in (Linear, Conv):\n"
        "        dz = layer.backward(dout, cache)\n"
        "    return dx, dy\n"
    )
    assert [(u.name, u.line) for u in scan(src, "net_backward", AUTOGRAD_NAMES)] == [("torch.Tensor.backward", 10)]


def test_syntax_errors_surface():
    with pytest.raises(SyntaxError):
        scan("def f(:\n", "f", FORBIDDEN)


def test_the_definition_python_keeps_is_the_one_scanned():
    src = "import torch\ndef f(a, b):\n    return a\ndef f(a, b):\n    return torch.cdist(a, b)\n"
    assert [u.line for u in scan(src, "f", ["torch.cdist"])] == [5]


DYNAMIC = """
import builtins
import torch
import torch._C as C
from importlib import import_module

def runs_exec(a):
    exec("r = a")
    return eval("a") if compile("a", "<s>", "eval") else None

def imports_by_name():
    return __import__("torch").cdist, import_module("torch")

def uses_internals(a, b):
    return torch._C._VariableFunctions.cdist(a, b)

def through_builtins(a):
    return builtins.exec("a")

def helper(a):
    return eval("a")

def calls_helper(a):
    return helper(a)

def clean(a):
    return a.sum()
"""


def test_exec_eval_compile_importlib_import_and_torch_c_are_found_anywhere_in_the_file():
    from grader.judge.doors import describe_dynamic, dynamic_uses

    names = lambda fn: {(u.name, u.line) for u in dynamic_uses(DYNAMIC, fn)}  # noqa: E731
    everything = {
        ("torch._C", 4),
        ("importlib", 5),
        ("exec()", 8),
        ("eval()", 9),
        ("compile()", 9),
        ("__import__()", 12),
        ("importlib", 12),
        ("torch._C", 15),
        ("exec()", 18),
        ("builtins", 2),
        ("builtins", 18),
        ("eval()", 21),
    }
    # a helper passed by reference, a decorator or a dunder method runs too: one use counts for every function
    for fn in ("runs_exec", "imports_by_name", "uses_internals", "through_builtins", "calls_helper", "clean"):
        assert names(fn) == everything, fn
    assert dynamic_uses(DYNAMIC, "not_there") == []
    text = describe_dynamic("runs_exec", dynamic_uses(DYNAMIC, "runs_exec"), "a1_knn/knn.py")
    assert (
        "a1_knn/knn.py line 8 uses exec(), line 18 uses builtins.exec: the grader reads your code to check "
        "the rules, so write the calls out directly." in text
    )
    assert text.endswith("No function of a1_knn/knn.py (runs_exec included) can be graded until they are gone.")


def test_code_without_them_is_not_flagged():
    from grader.judge.doors import dynamic_uses

    assert dynamic_uses(SRC, "uses_all") == [] and dynamic_uses(SRC, "Model.predict") == []
    assert dynamic_uses("import re\ndef f(m):\n    return re.compile('a'), m.eval()\n", "f") == []


HELPERS = """
def looping_helper(x):
    for v in x:
        pass
    return x

def inner(x):
    return [v for v in x]

def middle(x):
    return inner(x)

def no_loops(x):
    return looping_helper(x)

def two_levels(x):
    return middle(x)

class Net:
    def loss(self, x):
        return self._step(x) + Net.other(x)
    def _step(self, x):
        while False:
            pass
        return x
    @staticmethod
    def other(x):
        return sum(v for v in x)

def recursive(x):
    return recursive(x) if x else 0
"""


def test_loops_follow_the_calls_into_the_students_own_helpers():
    from grader.judge.staticscan import loop_sites

    assert loop_sites(HELPERS, "no_loops") == [(3, "looping_helper")]
    assert loop_sites(HELPERS, "two_levels") == [(8, "inner")]
    assert loop_sites(HELPERS, "Net.loss") == [(23, "Net._step"), (28, "Net.other")]
    assert loops(HELPERS, "no_loops") == [3]
    assert loop_sites(HELPERS, "recursive") == [(31, "recursive")]  # a call that recurses is a loop


# ---- doors into the grader and the interpreter -------------------------------------------------------------------
# The worker runs the student's code in the process that holds the forbidden-call guard; each of these reaches (or
# could reach) the guard and switch it off, so each is refused anywhere in a graded file.

HEADER = "import torch\n\ndef graded(a, b):\n    return a @ b.t()\n\n"  # the door sits on line 6 onwards

DOORS = {
    # the grader itself, however it is imported
    "import grader": ("import grader", "import grader"),
    "from grader import guard": ("from grader import guard", "import grader"),
    "import grader.sandbox.guard as g": ("import grader.sandbox.guard as g\ng.Guard", "import grader"),
    "from grader.sandbox.guard import Guard": ("from grader.sandbox.guard import Guard", "import grader"),
    # sys
    "sys.modules": ("import sys\nsys.modules['grader.sandbox.guard']", "sys.modules"),
    "sys.modules through an alias": ("import sys as s\ns.modules.get('x')", "sys.modules"),
    "from sys import modules": ("from sys import modules", "sys.modules"),
    "from sys import modules as m": ("from sys import modules as m\nm['x']", "sys.modules"),
    "getattr(sys, 'modules')": ("import sys\ngetattr(sys, 'modules')", "sys.modules"),
    "os.sys": ("import os\nos.sys.modules", "sys"),
    "sys as a value": ("import sys\nm = sys", "module sys passed around as a value"),
    "sys._getframe": ("import sys\nsys._getframe(0)", "sys._getframe"),
    "from sys import _getframe": ("from sys import _getframe as gf\ngf()", "sys._getframe"),
    "sys.settrace": ("import sys\nsys.settrace(None)", "sys.settrace"),
    "sys.setprofile": ("import sys as s\ns.setprofile(None)", "sys.setprofile"),
    "sys.addaudithook": ("import sys\nsys.addaudithook(print)", "sys.addaudithook"),
    "sys.meta_path": ("import sys\nsys.meta_path.insert(0, None)", "sys.meta_path"),
    "sys.path_hooks": ("from sys import path_hooks", "sys.path_hooks"),
    "threading.settrace": ("import threading\nthreading.settrace(print)", "threading.settrace"),
    "from threading import settrace": ("from threading import settrace", "threading.settrace"),
    # modules that hand out the interpreter's objects
    "import gc": ("import gc\ngc.get_objects()", "gc"),
    "import gc as g": ("import gc as g", "gc"),
    "from gc import get_objects": ("from gc import get_objects", "gc"),
    "import inspect": ("import inspect", "inspect"),
    "from inspect import currentframe": ("from inspect import currentframe", "inspect"),
    "import ctypes": ("import ctypes", "ctypes"),
    "from ctypes import pythonapi": ("from ctypes import pythonapi as p", "ctypes"),
    "import builtins": ("import builtins as b\nb.getattr", "builtins"),
    "__builtins__": ("__builtins__['getattr']", "__builtins__"),
    "import pickle": ("import pickle", "pickle"),
    "import pkgutil": ("import pkgutil\npkgutil.resolve_name('grader.sandbox.guard:Guard')", "pkgutil"),
    "unittest.mock": ("from unittest import mock", "unittest"),
    "__main__": ("import __main__", "__main__"),
    "torch's private modules": ("torch._dynamo.reset()", "torch._dynamo"),
    # frame and code internals, on anything
    **{
        attr: (f"x = graded.{attr}", attr)
        for attr in (
            "__globals__",
            "__code__",
            "__closure__",
            "__dict__",
            "__subclasses__",
            "__bases__",
            "__mro__",
            "__self__",
            "__traceback__",
            "f_globals",
            "f_locals",
            "f_back",
            "f_builtins",
            "tb_frame",
            "gi_frame",
            "cr_frame",
        )
    },
    "object.__subclasses__()": ("object.__subclasses__()", "__subclasses__"),
    "getattr(f, '__globals__')": ("getattr(graded, '__globals__')", "__globals__"),
    "a frame from an exception": (
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    e.__traceback__.tb_frame",
        "__traceback__",
    ),
    "attrgetter('f_back')": ("import operator\noperator.attrgetter('f_back')", "f_back"),
    "a format string that reads __globals__": ("'{0.__globals__}'.format(graded)", "__globals__"),
    "a format string that reads f_back": ("text = f'{{0.f_back}}'", "f_back"),
    # namespaces
    "globals()": ("globals()['__builtins__']", "globals()"),
    "vars()": ("vars()", "vars()"),
    "vars(x)": ("vars(torch)", "vars()"),
    "locals()": ("locals()", "locals()"),
    # names computed at run time
    **{
        f"{g}(x, name)": (
            f"name = 'W' + '1'\n{g}(graded, name{', 0' if g == 'setattr' else ''})",
            f"{g}() with a computed name",
        )
        for g in ("getattr", "setattr", "delattr", "hasattr")
    },
    "getattr(torch, 'cd' + 'ist')": ("getattr(torch, 'cd' + 'ist')", "getattr() with a computed name"),
    "getattr as a value": ("g = getattr", "getattr passed around as a value"),
    "object.__setattr__": ("object.__setattr__(graded, 'x', 1)", "__setattr__"),
    "type.__setattr__": ("type.__setattr__(int, 'x', 1)", "__setattr__"),
    "attrgetter with a computed name": (
        "from operator import attrgetter as ag\nag('f_' + 'back')",
        "operator.attrgetter() with a computed name",
    ),
    "a format string built at run time": (
        "fmt = '{0.__glo' + 'bals__}'\nfmt.format(graded)",
        "str.format with a format string built at run time",
    ),
    "torch as a value": ("t = torch", "module torch passed around as a value"),
    # unpickling: runs code by name
    "torch.load(weights_only=False)": ("torch.load('x.pt', weights_only=False)", "torch.load(weights_only=False)"),
    "the environment switch for torch.load": (
        "import os\nos.environ['TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'] = '1'",
        "os.environ",
    ),
}


@pytest.mark.parametrize("door", sorted(DOORS))
def test_each_door_is_refused_at_module_level_and_in_any_function(door):
    from grader.judge.doors import dynamic_uses

    snippet, name = DOORS[door]
    src = HEADER + snippet + "\n"
    found = {(u.name, u.line) for u in dynamic_uses(src, "graded")}
    assert any(n == name and line >= 6 for n, line in found), found
    # inside a function the graded one never calls by name: it may still run (by reference, as a decorator)
    indented = "\n".join("    " + line for line in snippet.splitlines())
    src = HEADER + f"def helper(graded):\n{indented}\n"
    assert name in {u.name for u in dynamic_uses(src, "graded")}


CLEAN = '''
import math
import os
import sys
from typing import Any

import torch
import torch.nn.functional as F


class Net:
    """Keeps its weights in self.params (not in __dict__ tricks)."""

    def __init__(self, W1):
        super().__init__()
        self.params: dict[str, Any] = {"W1": W1}
        setattr(self, "W1", W1)

    def loss(self, X):
        W1 = getattr(self, "W1")
        if hasattr(self, "b1") and not hasattr(torch, "cdist"):
            delattr(self, "b1")
        print(f"{type(self).__name__}: {X.shape}", torch.__version__, sys.version_info, file=sys.stderr)
        debug = os.environ.get("DEBUG", "") or ("DEBUG" in os.environ and os.environ["DEBUG"])
        text = "{} {}".format(W1.shape, debug)
        state = torch.load("net.pt", map_location="cpu")
        safe = torch.load("net.pt", weights_only=True)
        return F.relu(X @ W1).sum() * math.pi, isinstance(X, torch.Tensor), text, state, safe


def graded(model, x):
    model.eval()
    return Net(x).loss(x)


if __name__ == "__main__":
    print(graded.__name__, graded.__doc__, "__init__")
'''


def test_ordinary_code_opens_no_door():
    from grader.judge.doors import dynamic_uses

    assert dynamic_uses(CLEAN, "graded") == []


def test_the_reviewers_one_liner_is_refused_with_kind_feedback():
    from grader.judge.doors import describe_dynamic, dynamic_uses

    src = (
        "import sys\nimport torch\n"
        '_G = sys.modules["grader.sandbox.guard"].Guard; _G.exit = lambda self, _o=_G.exit: _o(self)[:0]\n\n\n'
        "def compute_distances_no_loops(x_train, x_test):\n"
        "    a = x_train.reshape(x_train.shape[0], -1)\n"
        "    b = x_test.reshape(x_test.shape[0], -1)\n"
        '    return getattr(torch, "cd" + "ist")(a, b) ** 2\n\n\n'
        "def predict_labels(dists, y_train, k=1):\n"
        "    return y_train[dists.topk(k, dim=0, largest=False).indices].mode(dim=0).values\n"
    )
    for fn in ("compute_distances_no_loops", "predict_labels"):  # the guard is off for every function
        uses = dynamic_uses(src, fn)
        assert [(u.name, u.line) for u in uses] == [("sys.modules", 3), ("getattr() with a computed name", 9)]
    text = describe_dynamic("predict_labels", uses, "a1_knn/knn.py")
    assert text.startswith(
        "a1_knn/knn.py line 3 uses sys.modules: graded files may not reach into the grader or "
        "the interpreter's internals (sys.modules, gc, inspect, frames, __globals__, ...). "
        "Write the computation directly. "
    )
    assert (
        "a1_knn/knn.py line 9 uses getattr() with a computed name: the grader reads your code to check the "
        'rules, so names must be written out: obj.name, or getattr(obj, "name") with the name as a string '
        "literal." in text
    )
    assert text.endswith("No function of a1_knn/knn.py (predict_labels included) can be graded until they are gone.")


def test_feedback_shows_the_name_behind_an_alias():
    from grader.judge.doors import describe_dynamic, dynamic_uses

    src = "import sys as s\nfrom gc import get_objects\n\ndef f():\n    return s.modules\n"
    text = describe_dynamic("f", dynamic_uses(src, "f"), "a1_knn/knn.py")
    assert "line 2 imports gc.get_objects" in text and "line 5 uses s.modules (sys.modules)" in text


def test_no_reference_file_opens_a_door():
    """Every graded function of every assignment's reference, and of the stubbed kit the students start from."""
    from grader.course.manifest import available, load
    from grader.judge.doors import dynamic_uses
    from grader.kit.release import stub_source
    from tests.conftest import ROOT

    checked = 0
    for name in available(ROOT):
        for part in load(name, ROOT).parts:
            reference = (ROOT / part.file).read_text()
            stubbed, _ = stub_source(reference, part.file)
            for fn in part.functions:
                for src in (reference, stubbed):
                    assert dynamic_uses(src, fn) == [], (part.file, fn)
                    checked += 1
    assert checked >= 2 * 40


FLAGS = """
import torch

def _loop_bmm(x, y):
    return torch.stack([a @ b for a, b in zip(x, y)])

def in_helper(x, y, use_loop=True):
    if use_loop:
        return _loop_bmm(x, y)
    return torch.bmm(x, y)

def early_return(x, y, use_loop=True):
    if not use_loop:
        return torch.bmm(x, y)
    z = []
    for i in range(x.shape[0]):
        z.append(x[i] @ y[i])
    return torch.stack(z)

def hidden_in_helper(x, y, use_loop=True):
    if use_loop is True:
        return _loop_bmm(x, y)
    else:
        return _loop_bmm(x, y)

def passed_on(x, y, use_loop=True):
    return _impl(x, y, loop=use_loop)

def _impl(x, y, loop):
    return _loop_bmm(x, y) if loop else x @ y

def constant(x, y, use_loop=True):
    return _impl(x, y, True) if use_loop == False else _impl(x, y, loop=False)

def unclear(x, y, use_loop=True):
    if use_loop and x.shape[0] > 1:
        return _loop_bmm(x, y)
    return x @ y
"""


def test_loops_are_read_per_value_of_a_flag_through_helpers_both_ways():
    from grader.judge.staticscan import loop_sites_when

    assert loop_sites_when(FLAGS, "in_helper", use_loop=True) == [(5, "_loop_bmm")]
    assert loop_sites_when(FLAGS, "in_helper", use_loop=False) == []
    assert loop_sites_when(FLAGS, "early_return", use_loop=True) == [(16, "early_return")]
    assert loop_sites_when(FLAGS, "early_return", use_loop=False) == []  # the code after `return` never runs
    assert loop_sites_when(FLAGS, "hidden_in_helper", use_loop=False) == [(5, "_loop_bmm")]
    assert loop_sites_when(FLAGS, "passed_on", use_loop=True) == [(5, "_loop_bmm")]
    assert loop_sites_when(FLAGS, "passed_on", use_loop=False) == []
    assert loop_sites_when(FLAGS, "constant", use_loop=True) == []
    assert loop_sites_when(FLAGS, "constant", use_loop=False) == [(5, "_loop_bmm")]
    assert loop_sites_when(FLAGS, "unclear", use_loop=True) is None  # cannot be decided from the code
    assert loop_sites_when(FLAGS, "unclear", use_loop=False) == []
    assert loop_sites_when(FLAGS, "not_there", use_loop=False) is None
    from grader.judge.staticscan import loop_sites

    assert loop_sites(FLAGS, "in_helper") == [(5, "_loop_bmm")]  # no flag fixed: every branch
    assert loop_sites(FLAGS, "constant") == [(5, "_loop_bmm")]
