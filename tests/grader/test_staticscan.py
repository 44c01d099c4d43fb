import pytest

from grader.staticscan import loops, scan

SRC = '''
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
'''

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
    from grader.manifest import AUTOGRAD_NAMES
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
        "    return 2 * w\n")
    found = {(u.name, u.line) for u in scan(src, "f", AUTOGRAD_NAMES)}
    assert {("torch.Tensor.requires_grad", 4), ("torch.Tensor.requires_grad_", 5),
            ("torch.Tensor.requires_grad", 6), ("torch.Tensor.backward", 7), ("torch.autograd", 8)} <= found
    assert scan(src, "g", AUTOGRAD_NAMES) == []


def test_a_layer_backward_is_not_tensor_backward():
    from grader.manifest import AUTOGRAD_NAMES
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
        "    return dx, dy\n")
    assert [(u.name, u.line) for u in scan(src, "net_backward", AUTOGRAD_NAMES)] == [("torch.Tensor.backward", 10)]


def test_syntax_errors_surface():
    with pytest.raises(SyntaxError):
        scan("def f(:\n", "f", FORBIDDEN)


def test_the_definition_python_keeps_is_the_one_scanned():
    src = "import torch\ndef f(a, b):\n    return a\ndef f(a, b):\n    return torch.cdist(a, b)\n"
    assert [u.line for u in scan(src, "f", ["torch.cdist"])] == [5]


DYNAMIC = '''
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
'''


def test_exec_eval_compile_importlib_import_and_torch_c_are_found():
    from grader.staticscan import describe_dynamic, dynamic_uses
    names = lambda fn: {(u.name, u.line) for u in dynamic_uses(DYNAMIC, fn)}   # noqa: E731
    module_level = {("torch._C", 4), ("importlib", 5)}          # count for every function of the file
    assert names("runs_exec") == module_level | {("exec()", 8), ("eval()", 9), ("compile()", 9)}
    assert names("imports_by_name") == module_level | {("__import__()", 12), ("importlib", 12)}
    assert ("torch._C", 15) in names("uses_internals")
    assert ("exec()", 18) in names("through_builtins")
    assert ("eval()", 21) in names("calls_helper")                 # through the student's own helper
    assert names("clean") == module_level
    text = describe_dynamic("runs_exec", dynamic_uses(DYNAMIC, "runs_exec"))
    assert "runs_exec may not use exec() (line 8): the grader reads your code to check the rules, so write the " \
           "calls out directly." in text


def test_code_without_them_is_not_flagged():
    from grader.staticscan import dynamic_uses
    assert dynamic_uses(SRC, "uses_all") == [] and dynamic_uses(SRC, "Model.predict") == []
    assert dynamic_uses("import re\ndef f(m):\n    return re.compile('a'), m.eval()\n", "f") == []


HELPERS = '''
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
'''


def test_loops_follow_the_calls_into_the_students_own_helpers():
    from grader.staticscan import loop_sites
    assert loop_sites(HELPERS, "no_loops") == [(3, "looping_helper")]
    assert loop_sites(HELPERS, "two_levels") == [(8, "inner")]
    assert loop_sites(HELPERS, "Net.loss") == [(23, "Net._step"), (28, "Net.other")]
    assert loops(HELPERS, "no_loops") == [3]
    assert loops(HELPERS, "recursive") == []
